"""Loan default: a deep network on tabular credit data, tuned by random search.

The seed's loan-default scenario: predict whether a borrower defaults, with a
deep feed-forward network whose learning rate, batch size and number of layers
are searched at random (``sampler="random"``).

No real credit data set ships inside a PyPI package, so by default the data
come from :func:`synthetic_credit`, a documented generator; pass your own CSV
with ``--csv loans.csv --label defaulted`` instead.

Synthetic data structure (one row per loan, seedable):

=================  ==========================================================
age                uniform integer 21..70
income             log-normal, median 50,000 a year
employment_years   min(age - 18, exponential with mean 6)
loan_amount        log-normal around 30% of income
term               36 or 60 months (30% are 60)
credit_score       normal(680, 70) clipped to 300..850, lower with delinquencies
delinquencies      Poisson(0.4) missed payments in the last two years
debt_to_income     beta(2, 5) (mean 0.29)
home               "rent" / "mortgage" / "own" (45/40/15%)
purpose            "debt" / "home" / "car" / "business" / "other"
=================  ==========================================================

Default follows a logistic model with interactions, so a linear model cannot
fit it exactly: logit = -2.2 + 4 (dti - 0.3) + 0.012 (660 - score)
+ 0.5 delinquencies + 1.2 [loan/income > 0.45] + 1.0 [term 60 and score < 620]
- 0.06 employment_years + 0.35 [rent] + 0.5 [business] - 0.01 (age - 40)
+ 0.8 [dti > 0.45 and delinquencies > 0]; about 18% of loans default.

    python examples/loan_default.py --rows 6000 --trials 12 --epochs 15
    python examples/loan_default.py --csv my_loans.csv --label default
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

import tunesmith as ts
from tunesmith.train import TrainConfig, objective


def synthetic_credit(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Loans with the structure stated in the module docstring; column "default" is the label."""
    r = np.random.default_rng(seed)
    age = r.integers(21, 71, rows)
    income = np.exp(r.normal(np.log(50_000), 0.5, rows))
    employment = np.minimum(age - 18, r.exponential(6, rows)).round(1)
    loan = np.exp(r.normal(np.log(0.3 * income), 0.5))
    term = np.where(r.random(rows) < 0.3, 60, 36)
    delinq = r.poisson(0.4, rows)
    score = np.clip(r.normal(680, 70, rows) - 25 * delinq, 300, 850).round()
    dti = r.beta(2, 5, rows)
    home = r.choice(["rent", "mortgage", "own"], rows, p=[0.45, 0.4, 0.15])
    purpose = r.choice(["debt", "home", "car", "business", "other"], rows, p=[0.4, 0.15, 0.2, 0.1, 0.15])
    logit = (-2.2 + 4 * (dti - 0.3) + 0.012 * (660 - score) + 0.5 * delinq + 1.2 * (loan / income > 0.45)
             + 1.0 * ((term == 60) & (score < 620)) - 0.06 * employment + 0.35 * (home == "rent")
             + 0.5 * (purpose == "business") - 0.01 * (age - 40) + 0.8 * ((dti > 0.45) & (delinq > 0)))
    default = (r.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "age": age, "income": income.round(), "employment_years": employment, "loan_amount": loan.round(),
        "term": term, "credit_score": score, "delinquencies": delinq, "debt_to_income": dti.round(3),
        "home": home, "purpose": purpose, "default": default,
    })


def load_csv(path: str | Path, label: str) -> pd.DataFrame:
    """Your own loans: any numeric and text columns plus a two-valued ``label`` column."""
    df = pd.read_csv(path)
    if label not in df.columns:
        raise ValueError(f"--label {label!r} is not a column of {path}; columns are {list(df.columns)}")
    values = sorted(df[label].dropna().unique(), key=str)
    if len(values) != 2:
        raise ValueError(f"label column {label!r} must have exactly two values, has {values[:10]}")
    df = df.dropna(subset=[label]).copy()
    df[label] = (df[label] == values[1]).astype(int)
    return df


def to_tensors(df: pd.DataFrame, label: str, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One-hot text columns, standardize numbers (train statistics), split 70/15/15."""
    y = df[label].to_numpy()
    x = pd.get_dummies(df.drop(columns=[label]), dtype=float)
    x = x.fillna(x.median(numeric_only=True)).to_numpy(dtype=np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    a, b = int(0.7 * len(y)), int(0.85 * len(y))
    parts = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    mu, sd = x[parts["train"]].mean(0), x[parts["train"]].std(0) + 1e-6
    x = (x - mu) / sd
    return {k: (torch.tensor(x[i]), torch.tensor(y[i])) for k, i in parts.items()}


def deep_net(inputs: int, layers: int, width: int = 64, dropout: float = 0.1) -> nn.Module:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inputs if i == 0 else width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
    mods.append(nn.Linear(width if layers else inputs, 2))
    return nn.Sequential(*mods)


def auc(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Area under the ROC curve (probability a defaulter outranks a payer)."""
    s = scores[:, 1] - scores[:, 0] if scores.ndim == 2 else scores
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float((pos[:, None] > neg[None, :]).float().mean() + 0.5 * (pos[:, None] == neg[None, :]).float().mean())


SPACE = {
    "lr": ts.Float(1e-4, 1e-1, log=True),
    "batch_size": ts.Categorical([32, 64, 128, 256]),
    "layers": ts.Int(1, 6),
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    df = load_csv(args.csv, args.label) if args.csv else synthetic_credit(args.rows, args.seed)
    label = args.label if args.csv else "default"
    data = to_tensors(df, label, args.seed)
    inputs = data["train"][0].shape[1]
    base = TrainConfig(optimizer="adamw", weight_decay=1e-4, epochs=args.epochs, patience=4, seed=args.seed,
                       schedule="cosine", warmup_fraction=0.05)
    obj = objective(lambda p: deep_net(inputs, p["layers"]), (data["train"], data["val"]), SPACE, base=base,
                    metrics={"auc": auc, "accuracy": lambda o, y: float((o.argmax(1) == y).float().mean())},
                    checkpoint_root=args.checkpoints)
    study = ts.Study(SPACE, direction="minimize", sampler="random", seed=args.seed)
    t0 = time.perf_counter()
    study.optimize(obj, n_trials=args.trials)
    best = study.best_trial
    model = deep_net(inputs, best.params["layers"])
    model.load_state_dict(torch.load(best.attrs["best_checkpoint"], weights_only=False)["model"])
    model.eval()
    with torch.no_grad():
        out = model(data["test"][0])
    return {
        "rows": len(df), "default_rate": float(df[label].mean()), "best_params": best.params,
        "best_val_loss": best.value, "test_auc": auc(out, data["test"][1]),
        "test_accuracy": float((out.argmax(1) == data["test"][1]).float().mean()),
        "trials": [{"params": t.params, "value": t.value, "overfit_at": t.attrs.get("overfit_at")} for t in study.trials],
        "seconds": time.perf_counter() - t0,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Loan default: deep net on tabular credit data, random search")
    p.add_argument("--csv", help="your own CSV file (default: synthetic data)")
    p.add_argument("--label", default="default", help="the CSV column that holds the label")
    p.add_argument("--rows", type=int, default=6000, help="synthetic rows")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoints", default="runs/loan_default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = run(args)
    print(f"default rate {out['default_rate']:.1%}; best {out['best_params']} val loss {out['best_val_loss']:.4f}; "
          f"test AUC {out['test_auc']:.3f}, accuracy {out['test_accuracy']:.3f} ({out['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
