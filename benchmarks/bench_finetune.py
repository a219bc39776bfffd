"""Throughput of the fine-tuning example (MiniLM + VADER lexicon) on CPU or CUDA.

Fine-tunes all-MiniLM-L6-v2 (``--train-blocks`` of its 6 blocks + the head)
with the Trainer for a few epochs and reports samples/s per epoch (the first
epoch is warm-up and left out of the median), peak GPU memory
(torch.cuda.max_memory_allocated) and the final validation accuracy, as JSON.

    # CPU (here): 2 threads
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/bench_finetune.py --device cpu --texts 512 --epochs 2
    # GPU: bf16 autocast (default on CUDA) and fp32 for comparison
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/bench_finetune.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import finetune_text as ex  # noqa: E402

from tunesmith.train import TrainConfig, Trainer  # noqa: E402


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    texts, labels = ex.load_sentiment(args.texts, seed=0)
    train, val = ex.split(ex.tokenize(texts, labels, args.seq_len or 16, pad_to_max=bool(args.seq_len)))
    torch.manual_seed(0)
    model = ex.build_model(args.train_blocks)
    cfg = TrainConfig(lr=args.lr, backbone_lr=args.lr * 0.5, epochs=args.epochs, batch_size=args.batch,
                      device=args.device, precision=args.precision, schedule="cosine", warmup_fraction=0.1)
    trainer = Trainer(model, cfg, metrics=["accuracy"], head="head")
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    h = trainer.fit(train, val)
    speeds = [r.samples_per_s for r in h.records]
    return {
        "device": torch.cuda.get_device_name() if trainer.device.type == "cuda" else f"cpu x{args.threads} threads",
        "precision": "bf16" if trainer.bf16 else "fp32", "train_blocks": args.train_blocks, "batch": args.batch,
        "texts": args.texts, "seq_len": int(train[0].shape[1]), "epochs": args.epochs,
        "samples_per_s_each_epoch": speeds,
        "samples_per_s": statistics.median(speeds[1:] if len(speeds) > 1 else speeds),
        "max_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if trainer.device.type == "cuda" else None,
        "val_accuracy": h.records[-1].metrics["accuracy"], "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--texts", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-blocks", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=0, help="pad every text to this many tokens (0: to the longest)")
    p.add_argument("--json")
    args = p.parse_args()
    res = run(args)
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
