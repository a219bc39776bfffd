"""Make the pictures of docs/plots.md with tunesmith's own code (matplotlib renderer).

    PYTHONPATH=src OMP_NUM_THREADS=1 python docs/img/make_images.py      # writes docs/img/*.png
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import tunesmith as ts  # noqa: E402
from tunesmith import plots  # noqa: E402
from tunesmith.pruners import ASHA  # noqa: E402

OUT = Path(__file__).resolve().parent
SPACE = {
    "kernel": ts.Categorical(["linear", "rbf"]),
    "C": ts.Float(1e-3, 1e3, log=True),
    "gamma": ts.Float(1e-4, 1.0, log=True, when={"kernel": ["rbf"]}),
    "x": ts.Float(0, 1),
    "layers": ts.Int(1, 6),
}


def objective(trial: ts.Trial) -> float:
    """A made-up validation loss: C and gamma matter most, x a little, layers hardly."""
    p = trial.params
    if p["x"] > 0.97:
        raise RuntimeError("diverged")
    base = 0.3 * math.log10(p["C"]) ** 2 + (0.8 if "gamma" not in p else 0.4 * (math.log10(p["gamma"]) + 2) ** 2)
    base += 1.5 * (p["x"] - 0.3) ** 2 + 0.02 * p["layers"]
    for step in range(1, 16):
        trial.report(base + 1.5 / step, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    trial.set_attr("test_value", base * 1.05 + 1.5 / 15)
    return base + 1.5 / 15


def demo_study(sampler: str = "bayes", pruned: bool = True, n_trials: int = 120) -> ts.Study:
    logging.getLogger("tunesmith").setLevel(logging.ERROR)
    study = ts.Study(SPACE, name=f"svm-demo-{sampler}", sampler=sampler, seed=0,
                     pruner=ASHA(max_resource=15) if pruned else None)
    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


def trained_trial() -> ts.Study:
    """One real training run through tunesmith.train: a small network on scikit-learn's digits."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from tunesmith.train import TrainConfig
    from tunesmith.train import objective as train_objective

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order][:600], y[order][:600]
    data = ((x[:120], y[:120]), (x[120:], y[120:]))  # few training examples: it overfits
    study = ts.Study({"lr": ts.Float(0.02, 0.021)}, name="digits-overfit", sampler="random", seed=0)
    base = TrainConfig(epochs=80, batch_size=16, patience=10, restore_best=True)  # long enough to see the rise
    with tempfile.TemporaryDirectory() as tmp:
        study.optimize(train_objective(lambda p: nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)),
                                       data, base=base, checkpoint_root=tmp), n_trials=1)
    return study


def comparison() -> plots.Chart:
    def branin(t: ts.Trial) -> float:
        a, b = t.params["a"], t.params["b"]
        return (b - 5.1 / (4 * math.pi**2) * a**2 + 5 / math.pi * a - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(a) + 10

    space = {"a": ts.Float(-5, 10), "b": ts.Float(0, 15)}
    runs = plots.run_samplers(branin, space, samplers=["grid", "random", "bayes"], budget=30, seeds=[0, 1, 2])
    return plots.comparison(runs, title="Branin: best so far, 30 trials, 3 seeds (median and quartiles)", log_y=True)


def main() -> None:
    snap = plots.snapshot(demo_study())  # Bayesian search with ASHA: most trials stopped early
    wide = demo_study("random", pruned=False, n_trials=300)  # every trial complete: the landscape
    every = plots.snapshot(wide)
    figures = {
        "history": plots.history_data(snap),
        "curves": plots.curves_data(snap),
        "process": plots.process(snap),
        "parallel": plots.parallel(every),
        "slice": plots.slices(every, params=["C", "gamma", "kernel", "x"]),
        "contour": plots.contour(every, "C", "gamma"),
        "importance": plots.importance_bars(wide),
        "adam": plots.adam_in_action("lr"),
        "compare": comparison(),
        "overfitting": plots.overfitting(trained_trial().trials[0]),
    }
    only = set(sys.argv[1:])
    for name, records in figures.items():
        if not only or name in only:
            plots.save(records, OUT / f"{name}.png")
            print(f"wrote {OUT / name}.png")


if __name__ == "__main__":
    main()
