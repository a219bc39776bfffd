"""Grid search over an SVM's kernel, C and gamma on handwritten digits.

The seed's first worked example. A test split is set aside first and never
seen by the search. Every configuration of the grid is scored by 5-fold
stratified cross-validation on the training split (``ts.cv``: each fold is
reported, so a pruner could stop a configuration after its first folds); then
``study.evaluate_best`` retrains the top configurations on the whole training
split and scores them on the test split, and a summary puts the baseline,
validation and test side by side.

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

try:  # the models and the data; imported where used, checked here: a study file run without it
    import sklearn  # noqa: F401  (tunesmith run) failed all 36 trials on "No module named 'sklearn'"
except ModuleNotFoundError:
    raise ImportError("this example needs scikit-learn: pip install 'tunesmith[sklearn]'") from None

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
FOLDS: list[ts.cv.Fold] = []


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


def prepare(mnist: str | None, samples: int, seed: int, folds: int = 5) -> None:
    """Fill DATA with the train and test splits (stratified, seeded) and FOLDS with the
    cross-validation folds of the training split."""
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
    DATA.update(train=(x, y), test=test)
    FOLDS[:] = ts.cv.stratified(y, k=folds, seed=seed)


def _data() -> dict[str, Split]:
    if not DATA:  # run from a study file: the 8x8 digits (or MNIST from $TUNESMITH_MNIST)
        prepare(os.environ.get("TUNESMITH_MNIST"), 6000, 0)
    return DATA


# -- the objective ---------------------------------------------------------------------------------


def fit(params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.svm import SVC

    return SVC(**params, max_iter=200_000).fit(x, y)


def objective(trial: ts.Trial) -> float:
    """Mean validation accuracy over the folds of the training split (each fold reported)."""
    x, y = _data()["train"]

    def fold(train: np.ndarray, val: np.ndarray) -> float:
        return float(fit(trial.params, x[train], y[train]).score(x[val], y[val]))

    return ts.cv.cross_validate(trial, fold, FOLDS)


def test_accuracy(trial: ts.FrozenTrial) -> float:
    """Retrained on the whole training split, scored on the test split the search never saw."""
    data = _data()
    return float(fit(dict(trial.params), *data["train"]).score(*data["test"]))


def pick_best(study: ts.Study) -> ts.FrozenTrial:
    """The best validation accuracy; ties go to the simplest model (smallest C,
    then smallest gamma), so parallel runs report the same winner."""
    best = study.best_value
    ties = [t for t in study.trials if t.state is ts.TrialState.COMPLETE and t.value == best]
    return min(ties, key=lambda t: (t.params["C"], t.params.get("gamma", 0.0), t.params["kernel"]))


# -- main -------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", help="path to a local 28x28 MNIST: an .npz or a folder of idx files "
                                   "(default: the 8x8 digits that ship with scikit-learn)")
    p.add_argument("--samples", type=int, default=6000, help="MNIST training samples to use (SVMs are quadratic) (default: %(default)s)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the training split (default: %(default)s)")
    p.add_argument("--top", type=int, default=3, help="best configurations re-evaluated on the test split (default: %(default)s)")
    p.add_argument("--storage", default="sqlite:///tunesmith.db", help="where the study is stored (default: %(default)s)")
    p.add_argument("--name", help="study name (default: svm-digits-grid, svm-mnist-grid, with -quick for --quick)")
    p.add_argument("--n-jobs", type=int, default=2, help="parallel worker processes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test split and the folds (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a small grid: C in {1, 10}, gamma in {0.01, 0.1}")
    args = p.parse_args(argv)
    for option, low in (("samples", 2), ("folds", 2), ("top", 1)):
        if getattr(args, option) < low:
            p.error(f"--{option} must be at least {low}, got {getattr(args, option)}")
    if args.n_jobs < 1 and args.n_jobs != -1:
        p.error(f"--n-jobs must be at least 1 (or -1: all cores), got {args.n_jobs}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    prepare(args.mnist, args.samples, args.seed, args.folds)
    space = make_space([1, 10], [0.01, 0.1]) if args.quick else make_space()
    name = args.name or ("svm-mnist-grid" if args.mnist else "svm-digits-grid") + ("-quick" if args.quick else "")
    sizes = ", ".join(f"{k} {len(v[1])}" for k, v in DATA.items())
    print(f"data: {'MNIST ' + args.mnist if args.mnist else '8x8 digits (scikit-learn)'}: {sizes}")
    study = ts.Study(space, direction="maximize", sampler="grid", seed=args.seed, storage=args.storage, name=name)
    print(f"study {name!r} in {study.storage.display_url}: grid of {space.grid_size()} configurations, "
          f"{args.folds}-fold cross-validation")

    t0, before = time.perf_counter(), len(study.trials)
    study.optimize(objective, n_jobs=args.n_jobs)
    ran = len(study.trials) - before
    if ran:
        print(f"searched {ran} configurations in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"nothing searched: study {name!r} has tried every configuration already "
              "(pass --name to start a new one)")
    done = [t for t in study.trials if t.state is ts.TrialState.COMPLETE]
    best = pick_best(study)
    print(f"best configuration: {ts.space.for_display(best.params)}")
    evaluation = study.evaluate_best(test_accuracy, k=min(args.top, len(done)))
    print(f"top {len(evaluation.results)} by validation, retrained on the training split and scored on the test split:")
    print(evaluation)
    print(summary(study, best, evaluation))
    return 0


def summary(study: ts.Study, best: ts.FrozenTrial, evaluation: Any) -> str:
    """Baseline, validation, test and what the search changed, in a few lines."""
    from sklearn.dummy import DummyClassifier
    from sklearn.svm import SVC

    (x, y), (xt, yt) = DATA["train"], DATA["test"]
    majority = DummyClassifier().fit(x, y).score(xt, yt)
    default = SVC().fit(x, y).score(xt, yt)
    result = next(r for r in evaluation.results if r.trial == best.number) if any(
        r.trial == best.number for r in evaluation.results) else None
    test = test_accuracy(best) if result is None else result.mean
    cv = best.attrs.get("cv", {})
    spread = f" ± {cv['std']:.3f} over {cv['folds']} folds" if cv.get("std") is not None else ""
    changed = ", ".join(f"{k} {_default(k)} -> {v}" for k, v in best.params.items() if _default(k) != v)
    return "\n".join([
        "summary",
        f"  baseline    test accuracy {majority:.3f} (majority class), {default:.3f} (SVC with its defaults)",
        f"  validation  {best.value:.4f}{spread} (cross-validation on {len(y)} training images)",
        f"  test        {test:.4f} on {len(yt)} images the search never saw (gap {best.value - test:+.4f})",
        f"  search      {len(study.trials_in(ts.TrialState.COMPLETE))} configurations; changed {changed or 'nothing'}"
        f" (test {default:.3f} -> {test:.3f})",
    ])


def _default(name: str) -> Any:
    return {"kernel": "rbf", "C": 1.0, "gamma": "scale"}.get(name)


if __name__ == "__main__":
    sys.exit(main())
