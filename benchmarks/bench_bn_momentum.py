"""Validation against training loss of a short fine-tuning run, batch-norm momentum 0.01 against torch's 0.1.

EfficientNet-Lite0 with its ImageNet weights (``examples/finetune_digits.py``'s model), frozen but for its last
block and a new 10-class head, trained on scikit-learn's digits at 32 px (10 labelled images per class, 10 per
class for validation), Adam at lr 1e-3, batch size 16. The package sets momentum 0.01 on every batch norm; the
last block's then keep most of their ImageNet running statistics over the run, which evaluation normalizes
with, while training normalizes with each batch's own. Both momentums run side by side on the same seeds and
splits; training losses agree (train mode uses batch statistics), so the gap is the validation loss.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_bn_momentum.py --epochs 5 --seeds 3

Needs: pip install 'tunesmith[finetune]'.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import finetune_digits as fd  # noqa: E402

from tunesmith.train import TrainConfig, Trainer, freeze, unfreeze, unfreeze_last  # noqa: E402


def run(momentum: float, seed: int, epochs: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Final training and validation loss of one run."""
    train, val, _ = fd.few_labels(y, 10, 10, None, seed)
    torch.manual_seed(seed)
    model = fd.efficientnet(pretrained=True, size=32)  # sets 0.1; the package's own is 0.01
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    freeze(model)
    unfreeze_last(model._blocks, 1)
    unfreeze(model._fc)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, seed=seed, device="cpu")
    last = Trainer(model, cfg, head="_fc").fit((x[train], y[train]), (x[val], y[val])).records[-1]
    assert last.val_loss is not None
    return last.train_loss, last.val_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the trainer's slow batch-norm warning is what this measures
    torch.set_num_threads(1)
    x, y, _ = fd.digits(32)
    val: dict[float, list[float]] = {0.01: [], 0.1: []}
    for seed in range(args.seeds):
        for momentum in val:
            train_loss, val_loss = run(momentum, seed, args.epochs, x, y)
            val[momentum].append(val_loss)
            print(f"seed {seed} momentum {momentum:<4}: train loss {train_loss:.3f}  validation loss {val_loss:.3f}")
    slow, default = (statistics.median(v) for v in val.values())
    print(f"median validation loss: {slow:.3f} at 0.01, {default:.3f} at 0.1 ({slow / default:.2f}x)")


if __name__ == "__main__":
    main()
