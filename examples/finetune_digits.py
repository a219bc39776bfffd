"""Pre-train a small CNN on digits 0-4, fine-tune it on digits 5-9 with few labels.

The image case of the seed's medical-imaging story: a network learns general
features on one task (scikit-learn's 8x8 handwritten digits 0-4) and is
repurposed for a related task with little labelled data (digits 5-9, only
``--labels`` training images). The head is replaced (5 new classes), the
convolutional blocks are frozen, partly unfrozen or thawed gradually
(``--freeze head|last1|gradual|none``), and Adam's hyperparameters for the
fine-tuning are chosen by Bayesian optimization ("bayes" sampler when
available, else "auto"). For comparison, the same network is trained from
scratch on the same few labels with the best configuration found.

    python examples/finetune_digits.py --labels 100 --trials 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import tunesmith as ts
from tunesmith.train import (
    GradualUnfreezing,
    TrainConfig,
    Trainer,
    adam_space,
    freeze,
    load_weights,
    objective,
    unfreeze_last,
)


class CNN(nn.Module):
    """Two conv blocks (conv, batch norm, ReLU), a dense neck and a linear head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2)),
        )
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def digits(classes: range, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, list(classes))
    x = torch.tensor(d.images[keep] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[keep] - classes.start)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return x[order], y[order]


def pretrain(epochs: int, seed: int) -> tuple[dict[str, torch.Tensor], float]:
    x, y = digits(range(0, 5), seed)
    k = int(0.8 * len(y))
    torch.manual_seed(seed)
    model = CNN(5)
    h = Trainer(model, TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, schedule="cosine", seed=seed),
                metrics=["accuracy"]).fit((x[:k], y[:k]), (x[k:], y[k:]))
    return model.state_dict(), h.best.metrics["accuracy"] if h.best else float("nan")


def fine_tune_model(pretrained: dict[str, torch.Tensor] | None, mode: str) -> CNN:
    model = CNN(5)
    if pretrained is not None:
        model.load_state_dict(pretrained)
        model.head = nn.Linear(64, 5)  # new task, new head
        if mode == "head":
            freeze(model.blocks)
        elif mode == "last1":
            unfreeze_last(model.blocks, 1)
        elif mode == "gradual":
            freeze(model.blocks)
    return model


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pretrained, pre_acc = pretrain(args.pretrain_epochs, args.seed)
    x, y = digits(range(5, 10), args.seed)
    train, val, test = (x[: args.labels], y[: args.labels]), (x[args.labels: 2 * args.labels], y[args.labels: 2 * args.labels]), (x[2 * args.labels:], y[2 * args.labels:])
    base = TrainConfig(epochs=args.epochs, batch_size=16, patience=5, seed=args.seed)
    callbacks = []
    space = adam_space(lr=(1e-4, 3e-2), schedules=("constant", "cosine"))

    def build(params: dict[str, Any]) -> nn.Module:
        model = fine_tune_model(pretrained, args.freeze)
        callbacks.clear()
        if args.freeze == "gradual":
            callbacks.append(GradualUnfreezing(model.blocks, every=max(args.epochs // 4, 1)))
        return model

    class Gradual:  # forwards epoch starts to the current trial's unfreezing schedule
        def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
            for cb in callbacks:
                cb.on_epoch_start(trainer, epoch)

    obj = objective(build, (train, val), base=base, metrics=["accuracy"], head="head",
                    callbacks=[Gradual()], checkpoint_root=args.checkpoints)
    study = ts.Study(space, direction="minimize", sampler="bayes", seed=args.seed)
    study.optimize(obj, n_trials=args.trials)
    best = study.best_trial

    def test_accuracy(model: nn.Module) -> float:
        return Trainer(model, base, metrics=["accuracy"]).evaluate(test)[1]["accuracy"]

    tuned = fine_tune_model(pretrained, args.freeze)
    load_weights(tuned, best.attrs["best_checkpoint"])
    torch.manual_seed(args.seed)
    scratch = CNN(5)
    Trainer(scratch, base.with_params(best.params), metrics=["accuracy"]).fit(train, val)
    return {
        "pretrain_val_accuracy": pre_acc, "labels": args.labels, "freeze": args.freeze,
        "best_params": best.params, "best_val_loss": best.value,
        "fine_tuned_test_accuracy": test_accuracy(tuned), "scratch_test_accuracy": test_accuracy(scratch),
        "trials": [{"params": t.params, "value": t.value, "state": str(t.state)} for t in study.trials],
        "seconds": time.perf_counter() - t0,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Pre-train a CNN on digits 0-4, fine-tune on 5-9")
    p.add_argument("--labels", type=int, default=100, help="labelled training images of digits 5-9")
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--freeze", default="last1", choices=["head", "last1", "gradual", "none"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoints", default="runs/finetune_digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = run(args)
    print(f"pre-trained on 0-4: val accuracy {out['pretrain_val_accuracy']:.3f}")
    print(f"fine-tuned on {out['labels']} labels of 5-9 ({out['freeze']}): test accuracy "
          f"{out['fine_tuned_test_accuracy']:.3f} vs {out['scratch_test_accuracy']:.3f} from scratch "
          f"({out['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
