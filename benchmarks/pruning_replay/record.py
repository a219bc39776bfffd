"""Record full learning curves of real training once, for the pruning replay benchmark.

Every task trains a few hundred configurations (a scrambled Sobol sample of its space, so
the recorded points cover it evenly) for ``EPOCHS`` epochs with two training seeds each,
and keeps, after every epoch, the validation and test error (%) and cross-entropy. The
replay (``replay.py``) then runs whole studies on these curves in seconds.

Tasks (scikit-learn's bundled data sets, no download; one fixed split per task:
50 % train, 25 % validation, 25 % test, stratified; features standardized on train):

* ``digits-mlp``: an MLP on the 8x8 digits (1,797 images, 10 classes);
* ``cancer-mlp``: an MLP on breast cancer (569 rows, 30 features, 2 classes);
* ``wine-mlp``: an MLP on wine (178 rows, 13 features, 3 classes);
* ``digits-cnn``: a small CNN (two 3x3 convolutions, max-pooling, a linear head) on digits.

Command (one process, ~10 min on a quiet core, ~60 min at nice 10 on the shared 2-core
machine; the output is committed):

    nice -n 10 env PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/pruning_replay/record.py \
        --out benchmarks/results/pruning-replay-curves.json.gz

``--tasks`` records a subset; ``--configs N`` overrides the number of configurations. A task
already in ``--out`` is kept and not recorded again (so an interrupted run resumes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc

EPOCHS = 27
SEEDS = (0, 1)
SPLIT_SEED = 12345

# name -> (low, high, log, integer); the space every configuration is drawn from
MLP_SPACE: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (1e-4, 3e-1, True, False),
    "weight_decay": (1e-6, 1e-1, True, False),
    "width": (8, 256, True, True),
    "depth": (1, 3, False, True),
    "dropout": (0.0, 0.5, False, False),
    "batch_size": (16, 128, True, True),
}
# digits (the largest data set) gets larger batches, to keep the recording short
BIG_MLP_SPACE = {**MLP_SPACE, "batch_size": (32, 256, True, True)}
CNN_SPACE: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (1e-4, 3e-1, True, False),
    "weight_decay": (1e-6, 1e-1, True, False),
    "channels": (4, 16, True, True),
    "dropout": (0.0, 0.5, False, False),
    "batch_size": (64, 256, True, True),
}
TASKS = ("wine-mlp", "cancer-mlp", "digits-mlp", "digits-cnn")
CONFIGS = {"wine-mlp": 256, "cancer-mlp": 256, "digits-mlp": 128, "digits-cnn": 64}


def space_of(task: str) -> dict[str, tuple[float, float, bool, bool]]:
    if task.endswith("cnn"):
        return CNN_SPACE
    return BIG_MLP_SPACE if task.startswith("digits") else MLP_SPACE


def decode(space: dict[str, tuple[float, float, bool, bool]], u: np.ndarray) -> dict[str, Any]:
    """A configuration from a point of the unit cube (log scale where the space says so)."""
    out: dict[str, Any] = {}
    for (name, (lo, hi, log, integer)), x in zip(space.items(), u, strict=True):
        if integer:
            lo, hi = lo - 0.4999, hi + 0.4999  # every integer gets its share of the interval
        if log:
            v = math.exp(math.log(max(lo, 1e-12)) + x * (math.log(hi) - math.log(max(lo, 1e-12))))
        else:
            v = lo + x * (hi - lo)
        out[name] = int(round(min(max(v, space[name][0]), space[name][1]))) if integer else float(v)
    return out


def configurations(task: str, n: int) -> list[dict[str, Any]]:
    space = space_of(task)
    points = qmc.Sobol(len(space), scramble=True, seed=TASKS.index(task)).random(n)
    return [decode(space, u) for u in points]


# -- data ----------------------------------------------------------------------------------
def load(task: str) -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn import datasets

    if task.startswith("digits"):
        d = datasets.load_digits()
        return d.data.astype(np.float32) / 16.0, d.target, 10
    if task.startswith("cancer"):
        d = datasets.load_breast_cancer()
        return d.data.astype(np.float32), d.target, 2
    if task.startswith("wine"):
        d = datasets.load_wine()
    raise ValueError(f"unknown task {task!r}; one of {TASKS}")


def split(task: str) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """(train, validation, test) tensors: 50/25/25, stratified, standardized on train."""
    from sklearn.model_selection import train_test_split

    x, y, _ = load(task)
    xtr, xrest, ytr, yrest = train_test_split(x, y, train_size=0.5, stratify=y, random_state=SPLIT_SEED)
    xva, xte, yva, yte = train_test_split(xrest, yrest, train_size=0.5, stratify=yrest, random_state=SPLIT_SEED)
    if not task.endswith("cnn"):
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        xtr, xva, xte = (xtr - mu) / sd, (xva - mu) / sd, (xte - mu) / sd
    parts = []
    for xs, ys in ((xtr, ytr), (xva, yva), (xte, yte)):
        xt = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32))
        if task.endswith("cnn"):
            xt = xt.reshape(-1, 1, 8, 8)
        parts.append((xt, torch.from_numpy(np.asarray(ys, dtype=np.int64))))
    return tuple(parts)


# -- models ----------------------------------------------------------------------------------
def mlp(cfg: dict[str, Any], n_in: int, n_out: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for _ in range(cfg["depth"]):
        layers += [torch.nn.Linear(n_in, cfg["width"]), torch.nn.ReLU(), torch.nn.Dropout(cfg["dropout"])]
        n_in = cfg["width"]
    return torch.nn.Sequential(*layers, torch.nn.Linear(n_in, n_out))


def cnn(cfg: dict[str, Any], n_out: int) -> torch.nn.Module:
    c = cfg["channels"]
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, 2 * c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(cfg["dropout"]), torch.nn.Linear(2 * c * 16, n_out),
    )  # fmt: skip


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(error %, cross-entropy); a diverged model scores chance-level loss capped at 10."""
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        err = 100.0 * float((logits.argmax(1) != y).float().mean())
    model.train()
    return err, (loss if math.isfinite(loss) and loss < 10.0 else 10.0)


def train(task: str, data: Any, cfg: dict[str, Any], seed: int) -> list[list[float]]:
    """Per epoch: [val error %, val loss, test error %, test loss]."""
    (xtr, ytr), (xva, yva), (xte, yte) = data
    n_out = int(max(ytr.max(), yva.max(), yte.max())) + 1
    torch.manual_seed(seed)
    model = cnn(cfg, n_out) if task.endswith("cnn") else mlp(cfg, xtr.shape[1], n_out)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    order = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(EPOCHS):
        perm = torch.randperm(len(xtr), generator=order)
        for i in range(0, len(xtr), cfg["batch_size"]):
            idx = perm[i : i + cfg["batch_size"]]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        out.append([*evaluate(model, xva, yva), *evaluate(model, xte, yte)])
    return out


def record_task(task: str, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    data = split(task)
    cfgs = configurations(task, n)
    curves = []
    start = time.time()
    for i, cfg in enumerate(cfgs):
        curves.append([train(task, data, cfg, s) for s in SEEDS])
        if (i + 1) % 32 == 0:
            log(f"{task}: {i + 1}/{len(cfgs)} configurations, {time.time() - start:.0f} s")
    return {
        "space": {k: list(v) for k, v in space_of(task).items()},
        "configs": cfgs,
        "seeds": list(SEEDS),
        "epochs": EPOCHS,
        "columns": ["val_error", "val_loss", "test_error", "test_loss"],
        # [config][seed][epoch][column], rounded to keep the file small
        "curves": [[[[round(v, 5) for v in row] for row in run] for run in cfg] for cfg in curves],
        "n_train": len(data[0][1]), "n_val": len(data[1][1]), "n_test": len(data[2][1]),
        "seconds": round(time.time() - start, 1),
    }  # fmt: skip


def read(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with gzip.open(path, "rt") as f:
        return dict(json.load(f))


def write(path: str, recorded: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with gzip.open(tmp, "wt") as f:
        json.dump(recorded, f, separators=(",", ":"))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/pruning-replay-curves.json.gz")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--configs", type=int, help="configurations per task (default: 256; digits 128 and 64)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    recorded = read(args.out)
    for task in args.tasks:
        if task in recorded:
            print(f"{task}: already in {args.out}, kept", flush=True)
            continue
        recorded[task] = record_task(task, args.configs or CONFIGS[task], lambda m: print(m, flush=True))
        write(args.out, recorded)
        print(f"{task}: done in {recorded[task]['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
