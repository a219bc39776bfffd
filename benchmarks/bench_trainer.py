"""Trainer overhead vs a plain hand-written PyTorch loop, and the cost of a checkpoint.

Both loops train the same model (an MLP, 64 -> 512 -> 512 -> 10) from the same
initial weights on the same data with the same batch order and Adam; the only
difference is the Trainer's machinery (schedule, groups, accounting, one
validation-free record per epoch). Runs alternate (plain, trainer, plain, ...)
so both see the same machine load; we report the median samples/s of each and
their ratio. Then: time and size of one checkpoint for two model sizes, and a
whole run with a checkpoint every epoch vs none.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_trainer.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from tunesmith.train import TrainConfig, Trainer, checkpoint
from tunesmith.train.data import index_batches


def make_model(width: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 64, generator=g)
    return x, (x[:, :10].argmax(1) + (x[:, 10] > 1).long()) % 10


def plain_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for idx in index_batches(len(y), batch, 0, epoch):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return epochs * len(y) / (time.perf_counter() - t0)


def trainer_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, ckpt_dir: str | None = None) -> float:
    cfg = TrainConfig(lr=1e-3, epochs=epochs, batch_size=batch, device="cpu", checkpoint_dir=ckpt_dir, seed=0)
    trainer = Trainer(model, cfg)
    t0 = time.perf_counter()
    trainer.fit((x, y))
    return epochs * len(y) / (time.perf_counter() - t0)


def overhead(args: argparse.Namespace) -> dict[str, float]:
    x, y = data(args.samples)
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(make_model(args.width), x, y, args.epochs, args.batch))
        ours.append(trainer_loop(make_model(args.width), x, y, args.epochs, args.batch))
    p, t = statistics.median(plain), statistics.median(ours)
    return {"plain_samples_per_s": p, "trainer_samples_per_s": t, "ratio": t / p, "overhead_pct": 100 * (1 - t / p),
            "plain_all": plain, "trainer_all": ours}


def checkpoint_cost(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out = {}
    x, y = data(args.samples)
    for width in (args.width, 2048):
        model = make_model(width)
        trainer = Trainer(model, TrainConfig(epochs=1, batch_size=args.batch, device="cpu"))
        trainer.fit((x[:512], y[:512]))  # Adam state exists
        times = []
        with tempfile.TemporaryDirectory() as d:
            for i in range(args.repeats):
                t0 = time.perf_counter()
                path = checkpoint.save(Path(d) / f"c{i}.pt", trainer.state_dict())
                times.append(time.perf_counter() - t0)
            size = path.stat().st_size
        params = sum(p.numel() for p in model.parameters())
        out[f"width={width}"] = {"params": params, "ms_per_checkpoint": 1000 * statistics.median(times), "mb": size / 1e6}
    # whole runs: a checkpoint every epoch vs none (alternating)
    every, none = [], []
    for _ in range(args.repeats):
        none.append(trainer_loop(make_model(args.width), x, y, args.epochs, args.batch))
        with tempfile.TemporaryDirectory() as d:
            every.append(trainer_loop(make_model(args.width), x, y, args.epochs, args.batch, ckpt_dir=d))
    out["run"] = {"no_checkpoint_samples_per_s": statistics.median(none),
                  "checkpoint_each_epoch_samples_per_s": statistics.median(every),
                  "ratio": statistics.median(every) / statistics.median(none)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res = {"config": vars(args), "torch": torch.__version__, "overhead": overhead(args), "checkpoint": checkpoint_cost(args)}
    o = res["overhead"]
    print(f"plain loop {o['plain_samples_per_s']:.0f} samples/s, Trainer {o['trainer_samples_per_s']:.0f} samples/s, "
          f"ratio {o['ratio']:.3f} (overhead {o['overhead_pct']:.1f}%)")
    for k, v in res["checkpoint"].items():
        print(k, {kk: round(vv, 3) for kk, vv in v.items()})
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
