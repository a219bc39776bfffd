"""How often the trainer's overfitting signal fires on noise, and where it fires on real overfitting.

Plateaus: training loss 0.30 + N(0, s/4), validation loss 0.35 + N(0, s) for 20 and 50
validations (no trend in either): the share of runs whose summary (``overfit_at``) reports
overfitting. Real overfitting: a 64-512-512-10 MLP on 150 digits (validation on 500, Adam 3e-3, batch 32, 30 epochs), per
seed, the record of its best validation loss and the signal's ``overfit_at``; a linear model
on the same data should never fire. ``--noise 0`` replays the runs without the noise condition;
``--summary first`` replays the earlier summary (``overfit_at`` from the first firing, also one
before the best validation) instead of the first firing after the best.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_signal.py --runs 300 --seed 1
"""

from __future__ import annotations

import argparse

import numpy as np

from tunesmith.train import history as hist

SUMMARY = "after_best"


def overfit_at(train: list[float], val: list[float]) -> int | None:
    """The signal of a run that recorded these losses (its best validation tracked as the trainer does)."""
    h = hist.History()
    for i, (t, v) in enumerate(zip(train, val, strict=True)):
        fired, improved = h.overfits(t, v), v < h.best_loss
        h.records.append(hist.EvalRecord(index=i, epoch=i + 1, step=i + 1, train_loss=t, val_loss=v, metrics={},
                                         lr=0.01, samples_per_s=1.0, seconds=1.0, improved=improved, overfitting=fired))
        if improved:
            h.best_loss, h.best_index = v, i
    if SUMMARY == "first":
        return hist.overfit_start([r.index for r in h.records if r.overfitting], None, h.overfit_patience)
    return h.overfit_at


def plateaus(runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (20, 50):
        for s in (0.005, 0.02):
            fired = sum(overfit_at(list(0.30 + rng.normal(0, s / 4, n)), list(0.35 + rng.normal(0, s, n))) is not None
                        for _ in range(runs))
            print(f"plateau of {n} validations, s={s}: fired in {fired}/{runs} = {fired / runs:.2f}", flush=True)


def networks(seeds: int) -> None:
    import torch
    from sklearn.datasets import load_digits

    from tunesmith.train import TrainConfig, Trainer

    x, y = load_digits(return_X_y=True)
    xs, ys = torch.as_tensor(x / 16, dtype=torch.float32), torch.as_tensor(y)
    train, val = (xs[:150], ys[:150]), (xs[1000:1500], ys[1000:1500])
    cfg = TrainConfig(epochs=30, batch_size=32, lr=3e-3)
    for seed in range(seeds):
        torch.manual_seed(seed)
        wide = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                   torch.nn.ReLU(), torch.nn.Linear(512, 10))
        h = Trainer(wide, cfg).fit(train, val)
        losses = [float(v) for v in h.val_losses if v is not None]
        at = overfit_at(h.train_losses, losses)  # replayed: --noise applies
        torch.manual_seed(seed)
        lin = Trainer(torch.nn.Linear(64, 10), cfg).fit(train, val)
        linear = overfit_at(lin.train_losses, [float(v) for v in lin.val_losses if v is not None])
        print(f"MLP seed {seed}: best validation at {int(np.argmin(losses))}, overfit_at {at}; linear: {linear}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="plateau runs per setting")
    parser.add_argument("--seeds", type=int, default=8, help="MLP seeds")
    parser.add_argument("--noise", type=float, default=hist.OVERFIT_NOISE, help="OVERFIT_NOISE (0: without the condition)")
    parser.add_argument("--seed", type=int, default=1, help="the plateaus' random seed")
    parser.add_argument("--summary", default="after_best", choices=("after_best", "first"),
                        help="overfit_at from the first firing after the best validation, or from the first firing")
    args = parser.parse_args()
    global SUMMARY
    hist.OVERFIT_NOISE, SUMMARY = args.noise, args.summary
    plateaus(args.runs, seed=args.seed)
    networks(args.seeds)


if __name__ == "__main__":
    main()
