"""Adam in action: how lr, beta1 and beta2 change its path, and real training curves.

Part 1 runs torch's Adam on a 2-D loss surface, a curved narrow valley
(Rosenbrock's function, ``f(x, y) = (1 - x)^2 + 10 (y - x^2)^2``, minimum at
(1, 1)), from (-1.5, 2), once per setting, varying one hyperparameter at a
time around lr=0.05, beta1=0.9, beta2=0.999:

- lr 0.005 / 0.05 / 0.3: too small crawls (far from the minimum after 300
  steps); larger steps get there, the largest zig-zagging across the valley;
- beta1 0 / 0.9 / 0.99: without momentum the path zig-zags near the minimum;
  too much overshoots and circles (0.99 is still far off after 300 steps);
- beta2 0.9 / 0.999 / 0.99999: how fast the per-coordinate step size adapts.

Part 2 trains a small network on scikit-learn's digits with the Trainer for
three learning rates and records its training and validation curves.

The data are computed first (``compute()``, plain lists, written as JSON) and
rendered second (``render()``, matplotlib PNG), so tests check the data.

    python examples/adam_in_action.py --out runs/adam_in_action
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from _summary import missing  # examples/_summary.py

try:
    import torch
    from torch import nn

    from tunesmith.train import TrainConfig, Trainer
except ModuleNotFoundError as exc:
    raise missing(exc, "train") from None

START = (-1.5, 2.0)
DEFAULT = {"lr": 0.05, "beta1": 0.9, "beta2": 0.999}
SWEEPS = {"lr": [0.005, 0.05, 0.3], "beta1": [0.0, 0.9, 0.99], "beta2": [0.9, 0.999, 0.99999]}


def surface(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1 - x) ** 2 + 10 * (y - x**2) ** 2


def adam_path(lr: float, beta1: float, beta2: float, steps: int) -> list[list[float]]:
    p = torch.tensor(START, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2))
    path = [p.detach().tolist()]
    for _ in range(steps):
        opt.zero_grad()
        surface(p[0], p[1]).backward()
        opt.step()
        path.append(p.detach().tolist())
    return path


def grid(n: int = 80) -> dict[str, Any]:
    xs = torch.linspace(-2, 2, n)
    ys = torch.linspace(-1, 3, n)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return {"x": xs.tolist(), "y": ys.tolist(), "z": surface(xx, yy).tolist()}


def training_curves(lrs: list[float], epochs: int, seed: int = 0) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    k = int(0.8 * len(y))
    curves = {}
    for lr in lrs:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        h = Trainer(model, TrainConfig(lr=lr, epochs=epochs, batch_size=64, seed=seed), metrics=["accuracy"]).fit(
            (x[:k], y[:k]), (x[k:], y[k:]))
        curves[f"lr={lr:g}"] = {"train_loss": h.train_losses, "val_loss": h.val_losses,
                                "val_accuracy": [r.metrics["accuracy"] for r in h.records]}
    return curves


def compute(steps: int = 300, epochs: int = 15, curve_lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-1)) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for name, values in SWEEPS.items():
        paths[name] = {}
        for v in values:
            hp = {**DEFAULT, name: v}
            path = adam_path(hp["lr"], hp["beta1"], hp["beta2"], steps)
            end = path[-1]
            paths[name][f"{name}={v:g}"] = {
                "path": path, "final_loss": float(surface(torch.tensor(end[0]), torch.tensor(end[1]))),
                "distance_to_minimum": math.dist(end, (1.0, 1.0)),
            }
    return {"start": list(START), "minimum": [1.0, 1.0], "default": DEFAULT, "surface": grid(),
            "paths": paths, "curves": training_curves(list(curve_lrs), epochs)}


def render(data: dict[str, Any], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    s = data["surface"]
    for ax, (name, runs) in zip(axes[:3], data["paths"].items(), strict=True):
        ax.contour(s["x"], s["y"], np.log1p(np.array(s["z"])), levels=25, cmap="Greys", linewidths=0.6)
        for label, run in runs.items():
            p = np.array(run["path"])
            ax.plot(p[:, 0], p[:, 1], lw=1.2, label=f"{label} (loss {run['final_loss']:.2g})")
        ax.plot(*data["minimum"], "k*", ms=12)
        ax.set_title(f"Adam on Rosenbrock: varying {name}")
        ax.legend(fontsize=7)
    ax = axes[3]
    for label, c in data["curves"].items():
        line, = ax.plot(c["train_loss"], label=f"{label} train")
        ax.plot(c["val_loss"], "--", color=line.get_color(), label=f"{label} val")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title("digits MLP: training curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/adam_in_action", help="folder for adam_in_action.json and .png")
    p.add_argument("--steps", type=int, default=300, help="Adam steps on the Rosenbrock valley, per setting")
    p.add_argument("--epochs", type=int, default=15, help="training epochs of the digits network, per learning rate")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    data = compute(args.steps, args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adam_in_action.json").write_text(json.dumps(data))
    render(data, out / "adam_in_action.png")
    for name, runs in data["paths"].items():
        print(name + ": " + ", ".join(f"{k} -> loss {v['final_loss']:.3g}" for k, v in runs.items()))
    for label, c in data["curves"].items():
        print(f"{label}: val loss {c['val_loss'][0]:.3f} -> {c['val_loss'][-1]:.3f}, accuracy {c['val_accuracy'][-1]:.3f}")
    print(f"wrote {out / 'adam_in_action.json'} and {out / 'adam_in_action.png'}")
    return data


if __name__ == "__main__":
    main()
