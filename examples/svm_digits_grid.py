"""Grid search over an SVM's kernel, C and gamma on handwritten digits.

The seed's first worked example. Every configuration of the grid is trained
on a training split and scored on a held-out validation split; the winner is
retrained on train+validation and its accuracy reported on a separate test
split that the search never saw.

    python examples/svm_digits_grid.py                       # 8x8 digits shipped with scikit-learn
    python examples/svm_digits_grid.py --mnist mnist.npz     # a local 28x28 MNIST (.npz or idx folder)
    tunesmith run examples/svm_digits.yaml                   # the same search from a study file

Results go to ``sqlite:///tunesmith.db`` (study ``svm-digits-grid``); running
again resumes the study, and a finished grid only prints its result.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tunesmith as ts

# C as in the article; gamma log-spaced around 1/n_features for pixels scaled to [0, 1]
C_GRID = [0.1, 1, 10, 100]
GAMMA_GRID = [0.001, 0.01, 0.1, 1]


def make_space(c_grid: list[float] = C_GRID, gamma_grid: list[float] = GAMMA_GRID) -> ts.Space:
    return ts.Space({
        "kernel": ts.Categorical(["linear", "poly", "rbf"]),
        "C": ts.Float(0.01, 1000.0, log=True, grid=c_grid),
        "gamma": ts.Float(1e-4, 10.0, log=True, grid=gamma_grid, when={"kernel": ["poly", "rbf"]}),
    })


# -- data ------------------------------------------------------------------------------------------

Split = tuple[np.ndarray, np.ndarray]
DATA: dict[str, Split] = {}


def load_digits() -> tuple[Split, Split | None]:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return (d.data / 16.0, d.target), None


def load_mnist(path: str | Path) -> tuple[Split, Split]:
    """28x28 MNIST from a Keras-style ``.npz`` (x_train, y_train, x_test, y_test)
    or a folder with the four idx files (optionally gzipped)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise SystemExit(f"{path}: missing arrays {sorted(missing)}")
            parts = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    elif path.is_dir():
        parts = [_idx(path, stem) for stem in (
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    else:
        raise SystemExit(f"--mnist {path}: give an .npz file or a folder with the MNIST idx files")
    xtr, ytr, xte, yte = parts
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255.0  # noqa: E731
    return (flat(xtr), ytr.astype(int)), (flat(xte), yte.astype(int))


def _idx(folder: Path, stem: str) -> np.ndarray:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        p = folder / name
        if p.is_file():
            raw = gzip.open(p).read() if name.endswith(".gz") else p.read_bytes()
            ndim = raw[3]
            shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    raise SystemExit(f"{folder}: no {stem}[.gz] (the MNIST idx files)")


def prepare(mnist: str | None, samples: int, seed: int) -> None:
    """Fill DATA with train / val / test splits (stratified, seeded)."""
    from sklearn.model_selection import train_test_split

    (x, y), test = load_mnist(mnist) if mnist else load_digits()
    rng = np.random.default_rng(seed)
    if test is None:  # digits: carve out a test split (20%)
        x, xte, y, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
        test = (xte, yte)
    elif samples and len(x) > samples:  # MNIST: SVMs are quadratic in samples; subsample
        keep = rng.choice(len(x), samples, replace=False)
        x, y = x[keep], y[keep]
        tkeep = rng.choice(len(test[0]), min(len(test[0]), samples // 2), replace=False)
        test = (test[0][tkeep], test[1][tkeep])
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    DATA.update(train=(xtr, ytr), val=(xva, yva), test=test)


def _data() -> dict[str, Split]:
    if not DATA:  # run from a study file: the 8x8 digits (or MNIST from $TUNESMITH_MNIST)
        prepare(os.environ.get("TUNESMITH_MNIST"), 6000, 0)
    return DATA


# -- the objective ---------------------------------------------------------------------------------


def fit(params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.svm import SVC

    return SVC(**params, max_iter=200_000).fit(x, y)


def objective(trial: ts.Trial) -> float:
    """Validation accuracy of an SVC trained on the training split."""
    data = _data()
    model = fit(trial.params, *data["train"])
    return float(model.score(*data["val"]))


def pick_best(study: ts.Study) -> ts.FrozenTrial:
    """The best validation accuracy; ties go to the simplest model (smallest C,
    then smallest gamma), so parallel runs report the same winner."""
    best = study.best_value
    ties = [t for t in study.trials if t.state is ts.TrialState.COMPLETE and t.value == best]
    return min(ties, key=lambda t: (t.params["C"], t.params.get("gamma", 0.0), t.params["kernel"]))


# -- main -------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", help="path to a local 28x28 MNIST: an .npz or a folder of idx files")
    p.add_argument("--samples", type=int, default=6000, help="MNIST training samples to use (default 6000)")
    p.add_argument("--storage", default="sqlite:///tunesmith.db", help="where results go (default sqlite:///tunesmith.db)")
    p.add_argument("--name", help="study name (default: svm-digits-grid, svm-mnist-grid, ...-quick)")
    p.add_argument("--n-jobs", type=int, default=2, help="parallel worker processes (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a small grid (C, gamma in {1, 10} x {0.01, 0.1})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    prepare(args.mnist, args.samples, args.seed)
    space = make_space([1, 10], [0.01, 0.1]) if args.quick else make_space()
    name = args.name or ("svm-mnist-grid" if args.mnist else "svm-digits-grid") + ("-quick" if args.quick else "")
    sizes = ", ".join(f"{k} {len(v[1])}" for k, v in DATA.items())
    print(f"data: {'MNIST ' + args.mnist if args.mnist else '8x8 digits (scikit-learn)'}: {sizes}")
    study = ts.Study(space, direction="maximize", sampler="grid", seed=args.seed, storage=args.storage, name=name)
    print(f"study {name!r} in {study.storage.display_url}: grid of {space.grid_size()} configurations")

    t0, before = time.perf_counter(), len(study.trials)
    study.optimize(objective, n_jobs=args.n_jobs)
    ran = len(study.trials) - before
    if ran:
        print(f"searched {ran} configurations in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"nothing searched: study {name!r} has tried every configuration already "
              "(pass --name to start a new one)")

    best = pick_best(study)
    xtr, ytr = (np.concatenate(parts) for parts in zip(DATA["train"], DATA["val"], strict=True))
    test_acc = fit(dict(best.params), xtr, ytr).score(*DATA["test"])
    print(f"best configuration: {ts.space.for_display(best.params)}")
    print(f"validation accuracy: {best.value:.4f}   test accuracy (retrained on train+val): {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
