"""TunedSearchCV against scikit-learn's, skopt's and Optuna's search estimators.

Six (estimator, data set) cells from data that ships with scikit-learn or is
generated, 5 seeds. Per seed: a stratified 30% test split that no search sees,
and the same 5-fold StratifiedKFold for every search. Every method gets the same
space (each in its own package's form) and, except the fine grid, the same number
of configurations (16). Appends one JSON line per (cell, seed, method) to
``benchmarks/results/sklearn.jsonl``; ``--report`` prints the tables of
benchmarks/sklearn.md from it.

    OMP_NUM_THREADS=1 nice -n 10 PYTHONPATH=src python benchmarks/bench_sklearn.py --deadline 40
    PYTHONPATH=src python benchmarks/bench_sklearn.py --report

Seeds are the outer loop, so a run cut by ``--deadline`` (minutes; no new
(cell, seed) starts after it) has every cell at the seeds it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sklearn.jsonl"
N_TRIALS = 16
FOLDS = 5
EQUAL = ["tunesmith", "grid-16", "random", "halving-random", "skopt-bayes", "optuna"]
METHODS = [*EQUAL, "tunesmith-pruned", "grid-64"]
#: registered after the first run (benchmarks/sklearn.md, "Variant"): fold racing, pruner="folds"
VARIANTS = ["tunesmith-racing"]
#: registered 2026-12-06 (sklearn.md, "Racing that stops ties"), run with --methods: racing as it was
#: before ties were stopped (ties=0), and racing with the sampler "auto" gives (what pruner="folds" alone runs)
RACING = ["tunesmith-racing-noties", "tunesmith-racing-auto"]


@dataclasses.dataclass(frozen=True)
class P:
    """One parameter, written once: ('float' | 'int', low, high, log) or ('cat', choices)."""

    kind: str
    low: Any = None
    high: Any = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def grid(self, n: int) -> list[Any]:
        if self.kind == "cat":
            return list(self.choices)
        xs = np.geomspace(self.low, self.high, n) if self.log else np.linspace(self.low, self.high, n)
        return [int(round(x)) for x in xs] if self.kind == "int" else [float(x) for x in xs]


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    data: Callable[[], tuple[np.ndarray, np.ndarray]]
    estimator: Callable[[int], Any]  # the seed -> a new estimator; a random one's random_state from the seed or fixed
    space: dict[str, P]
    coarse: dict[str, int]  # grid points per numeric parameter: 16 configurations
    fine: dict[str, int]  # 64 configurations


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:900] / 16.0, y[:900]


def _cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def _made(seed: int, n: int = 500) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def make() -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_classification

        return make_classification(n, 20, n_informative=6, n_redundant=4, flip_y=0.05, random_state=seed)

    return make


def _moons() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(500, noise=0.35, random_state=0)


def _l1_or_l2() -> dict[str, P]:
    """liblinear's L1 or L2 model, the first choice L1, as the installed scikit-learn names it: ``l1_ratio``
    1.0 / 0.0 from 1.8 (which deprecates ``penalty``; 1.10 removes it), ``penalty`` l1 / l2 before, where
    ``l1_ratio`` without ``penalty="elasticnet"`` is ignored (a warning, which :func:`quiet` silences: every
    model was L2). The same models either way: rows stored with either name are the same cell."""
    import sklearn

    if tuple(int(v) for v in re.findall(r"\d+", sklearn.__version__)[:2]) >= (1, 8):
        return {"logisticregression__l1_ratio": P("cat", choices=(1.0, 0.0))}
    return {"logisticregression__penalty": P("cat", choices=("l1", "l2"))}


def cells() -> list[Cell]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [
        Cell("svc-digits", _digits, lambda seed: SVC(),
             {"C": P("float", 1e-2, 1e3, True), "gamma": P("float", 1e-4, 1.0, True)},
             {"C": 4, "gamma": 4}, {"C": 8, "gamma": 8}),
        Cell("logreg-breast-cancer", _cancer,
             lambda seed: make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", random_state=seed)),
             {"logisticregression__C": P("float", 1e-4, 1e2, True), **_l1_or_l2()},
             {"logisticregression__C": 8}, {"logisticregression__C": 32}),
        Cell("forest-classification", _made(1), lambda seed: RandomForestClassifier(n_estimators=25, random_state=0),
             {"max_features": P("float", 0.05, 1.0), "min_samples_leaf": P("int", 1, 40)},
             {"max_features": 4, "min_samples_leaf": 4}, {"max_features": 8, "min_samples_leaf": 8}),
        Cell("boosting-classification", _made(2), lambda seed: HistGradientBoostingClassifier(max_iter=40, random_state=0),
             {"learning_rate": P("float", 1e-3, 1.0, True), "max_leaf_nodes": P("int", 2, 64)},
             {"learning_rate": 4, "max_leaf_nodes": 4}, {"learning_rate": 8, "max_leaf_nodes": 8}),
        Cell("knn-moons", _moons, lambda seed: KNeighborsClassifier(),
             {"n_neighbors": P("int", 1, 100), "weights": P("cat", choices=("uniform", "distance")),
              "p": P("cat", choices=(1, 2))},
             {"n_neighbors": 4}, {"n_neighbors": 16}),
        Cell("mlp-classification", _made(3, 400),
             lambda seed: make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=80, random_state=0)),
             {"mlpclassifier__alpha": P("float", 1e-6, 10.0, True),
              "mlpclassifier__learning_rate_init": P("float", 1e-4, 0.3, True)},
             {"mlpclassifier__alpha": 4, "mlpclassifier__learning_rate_init": 4},
             {"mlpclassifier__alpha": 8, "mlpclassifier__learning_rate_init": 8}),
    ]


# -- each package's form of the space -------------------------------------------------------------


def scipy_space(space: dict[str, P]) -> dict[str, Any]:
    from scipy.stats import loguniform, randint, uniform

    def one(p: P) -> Any:
        if p.kind == "cat":
            return list(p.choices)
        if p.kind == "int":
            return randint(p.low, p.high + 1)
        return loguniform(p.low, p.high) if p.log else uniform(p.low, p.high - p.low)

    return {k: one(p) for k, p in space.items()}


def skopt_space(space: dict[str, P]) -> dict[str, Any]:
    from skopt.space import Categorical, Integer, Real

    def one(p: P) -> Any:
        if p.kind == "cat":
            return Categorical(list(p.choices))
        if p.kind == "int":
            return Integer(p.low, p.high)
        return Real(p.low, p.high, prior="log-uniform" if p.log else "uniform")

    return {k: one(p) for k, p in space.items()}


def optuna_space(space: dict[str, P]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    def one(p: P) -> Any:
        if p.kind == "cat":
            return CategoricalDistribution(list(p.choices))
        if p.kind == "int":
            return IntDistribution(p.low, p.high)
        return FloatDistribution(p.low, p.high, log=p.log)

    return {k: one(p) for k, p in space.items()}


def grid_space(space: dict[str, P], points: dict[str, int]) -> dict[str, list[Any]]:
    return {k: p.grid(points.get(k, 0)) for k, p in space.items()}


# -- one search -------------------------------------------------------------------------------------


def build(method: str, cell: Cell, seed: int, cv: Any) -> Any:
    est = cell.estimator(seed)
    if method in ("tunesmith", "tunesmith-pruned", *VARIANTS, *RACING):
        from tunesmith.sklearn import TunedSearchCV

        pruner = {"tunesmith": None, "tunesmith-pruned": {"name": "median", "n_startup_trials": 4},
                  "tunesmith-racing": "folds", "tunesmith-racing-noties": {"name": "folds", "ties": 0},
                  "tunesmith-racing-auto": "folds"}[method]
        auto = pruner is None or method == "tunesmith-racing-auto"
        return TunedSearchCV(est, scipy_space(cell.space), n_trials=N_TRIALS, cv=cv, random_state=seed,
                             sampler="auto" if auto else "bayes", pruner=pruner)
    if method in ("grid-16", "grid-64"):
        from sklearn.model_selection import GridSearchCV

        return GridSearchCV(est, grid_space(cell.space, cell.coarse if method == "grid-16" else cell.fine), cv=cv)
    if method == "random":
        from sklearn.model_selection import RandomizedSearchCV

        return RandomizedSearchCV(est, scipy_space(cell.space), n_iter=N_TRIALS, cv=cv, random_state=seed)
    if method == "halving-random":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingRandomSearchCV

        return HalvingRandomSearchCV(est, scipy_space(cell.space), n_candidates=N_TRIALS, factor=2, cv=cv,
                                     random_state=seed)
    if method == "skopt-bayes":
        from skopt import BayesSearchCV

        return BayesSearchCV(est, skopt_space(cell.space), n_iter=N_TRIALS, cv=cv, random_state=seed)
    if method == "optuna":
        from optuna_integration import OptunaSearchCV

        return OptunaSearchCV(est, optuna_space(cell.space), n_trials=N_TRIALS, cv=cv, random_state=seed)
    raise ValueError(method)


def fits(method: str, search: Any) -> int:
    """Model fits of the search (the final refit excluded)."""
    if method.startswith("tunesmith"):
        return int(sum(len(t.intermediate) for t in search.study_.trials))
    if method == "optuna":
        return FOLDS * len(search.trials_)
    return FOLDS * len(search.cv_results_["params"])


def run_one(method: str, cell: Cell, seed: int) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    x, y = cell.data()
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    cv = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    search = build(method, cell, seed, cv)
    start = time.perf_counter()
    search.fit(xtr, ytr)
    wall = time.perf_counter() - start
    return {
        "cell": cell.name, "seed": seed, "method": method, "cv_score": float(search.best_score_),
        "test_score": float(search.score(xte, yte)), "fits": fits(method, search), "seconds": wall,
        "params": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in search.best_params_.items()},
    }


# -- the report ---------------------------------------------------------------------------------------


def report(rows: list[dict[str, Any]]) -> str:
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    by = {(r["cell"], r["seed"], r["method"]): r for r in rows}
    names = [c.name for c in cells() if any(r["cell"] == c.name for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    out = [_rank_table(by, names, seeds), _cell_table(by, names, seeds), _targets(by, names, seeds)]
    for variant in [*VARIANTS, *RACING]:
        if any(r["method"] == variant for r in rows):
            out.append(_variant_table(by, names, seeds, variant))
    if failed:
        out.append("Runs that failed:\n\n" + "\n".join(f"- {r['cell']} seed {r['seed']} {r['method']}: {r['error']}"
                                                         for r in failed))
    return "\n\n".join(out) + "\n"


def _complete(by: dict[Any, Any], cell: str, seed: int, methods: list[str]) -> bool:
    return all((cell, seed, m) in by for m in methods)


def _rank_table(by: dict[Any, Any], names: list[str], seeds: list[int]) -> str:
    from scipy.stats import rankdata

    ranks: dict[str, list[float]] = {m: [] for m in EQUAL}
    for c in names:
        for s in seeds:
            if not _complete(by, c, s, EQUAL):
                continue
            r = rankdata([-by[(c, s, m)]["test_score"] for m in EQUAL])  # 1 = best; ties share the mean rank
            for m, v in zip(EQUAL, r, strict=True):
                ranks[m].append(float(v))
    n = len(ranks[EQUAL[0]])
    lines = [f"Average rank of test score at {N_TRIALS} configurations ({n} (cell, seed) pairs; 1 = best)", "",
             "| method | average rank |", "|---|---|"]
    for m in sorted(EQUAL, key=lambda m: np.mean(ranks[m]) if ranks[m] else 9):
        lines.append(f"| {m} | {np.mean(ranks[m]):.2f} |" if ranks[m] else f"| {m} | - |")
    return "\n".join(lines)


def _cell_table(by: dict[Any, Any], names: list[str], seeds: list[int], methods: list[str] = METHODS,
                complete: list[str] = METHODS) -> str:
    """Per cell: the seeds where every ``complete`` method ran, and each method's test score
    (mean), fits (median) and wall seconds (median)."""
    lines = ["Test score (mean over seeds), model fits (median) and wall seconds (median) per cell", "",
             "| cell | seeds | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for c in names:
        cells_ = []
        for m in methods:
            rs = [by[(c, s, m)] for s in seeds if (c, s, m) in by]
            if not rs:
                cells_.append("-")
                continue
            cells_.append(f"{np.mean([r['test_score'] for r in rs]):.4f} / {int(np.median([r['fits'] for r in rs]))}"
                          f" / {np.median([r['seconds'] for r in rs]):.1f}s")
        n = sum(_complete(by, c, s, complete) for s in seeds)
        lines.append(f"| {c} | {n} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def _paired(by: dict[Any, Any], c: str, seeds: list[int], a: str, b: str) -> tuple[float, float, int]:
    """Mean test-score difference a - b over the seeds both ran, and the fits ratio a / b."""
    ss = [s for s in seeds if (c, s, a) in by and (c, s, b) in by]
    if not ss:
        return float("nan"), float("nan"), 0
    diff = float(np.mean([by[(c, s, a)]["test_score"] - by[(c, s, b)]["test_score"] for s in ss]))
    ratio = sum(by[(c, s, a)]["fits"] for s in ss) / sum(by[(c, s, b)]["fits"] for s in ss)
    return diff, ratio, len(ss)


def _targets(by: dict[Any, Any], names: list[str], seeds: list[int]) -> str:
    lines = ["Targets per cell (difference in mean test score over the seeds both ran; reached: >= -0.005)", "",
             "| cell | tunesmith - grid-64 | fits tunesmith / grid-64 | 2: reached | "
             "pruned - unpruned | fits pruned / unpruned | 3: reached |", "|---|---|---|---|---|---|---|"]
    t2 = 0
    for c in names:
        d2, r2, _ = _paired(by, c, seeds, "tunesmith", "grid-64")
        ok2 = d2 >= -0.005 and r2 <= 0.25
        t2 += ok2
        lines.append(f"| {c} | {d2:+.4f} | {r2:.2f} | {'yes' if ok2 else 'no'} | {_pruning_cells(by, c, seeds, 'tunesmith-pruned')}")
    t3, overall = _pruning_summary(by, names, seeds, "tunesmith-pruned")
    lines += ["", f"Target 2 reached in {t2} of {len(names)} cells; target 3 in {t3} of {len(names)} cells "
              f"(all cells: pruned / unpruned fits = {overall:.2f})."]
    return "\n".join(lines)


def _pruning_cells(by: dict[Any, Any], c: str, seeds: list[int], pruned: str) -> str:
    """Target 3's columns of one cell: pruned - unpruned, fits ratio, reached."""
    d3, r3, _ = _paired(by, c, seeds, pruned, "tunesmith")
    return f"{d3:+.4f} | {r3:.2f} | {'yes' if _reached3(d3, r3) else 'no'} |"


def _reached3(diff: float, ratio: float) -> bool:
    return diff >= -0.005 and ratio <= 0.5


def _pruning_summary(by: dict[Any, Any], names: list[str], seeds: list[int], pruned: str) -> tuple[int, float]:
    """Cells where target 3 is reached, and the fits ratio pruned / unpruned over all cells."""
    met = tot_p = tot_u = 0
    for c in names:
        d3, r3, _ = _paired(by, c, seeds, pruned, "tunesmith")
        met += _reached3(d3, r3)
        ss = [s for s in seeds if (c, s, pruned) in by and (c, s, "tunesmith") in by]
        tot_p += sum(by[(c, s, pruned)]["fits"] for s in ss)
        tot_u += sum(by[(c, s, "tunesmith")]["fits"] for s in ss)
    return met, tot_p / tot_u if tot_u else float("nan")


def _variant_table(by: dict[Any, Any], names: list[str], seeds: list[int], variant: str) -> str:
    lines = [f"Variant `{variant}` against `tunesmith` (target 3's rule; test score mean over the seeds both ran)",
             "", f"| cell | seeds | {variant} test / fits (median) | pruned - unpruned | fits pruned / unpruned "
             "| 3: reached | standard error of pruned - unpruned (better, worse, tied) |", "|---|---|---|---|---|---|---|"]
    every: list[float] = []
    for c in names:
        rs = [by[(c, s, variant)] for s in seeds if (c, s, variant) in by]
        if not rs:
            continue
        diffs = _differences(by, c, seeds, variant, "tunesmith")
        every += diffs
        lines.append(f"| {c} | {len(diffs)} | {np.mean([r['test_score'] for r in rs]):.4f} / "
                     f"{int(np.median([r['fits'] for r in rs]))} | {_pruning_cells(by, c, seeds, variant)} "
                     f"{_spread(diffs)} |")
    met, overall = _pruning_summary(by, names, seeds, variant)
    lines += ["", f"Target 3 with `{variant}` reached in {met} of {len(names)} cells "
              f"(all cells: pruned / unpruned fits = {overall:.2f}; paired over the {len(every)} pairs, "
              f"pruned - unpruned {np.mean(every) if every else float('nan'):+.4f}, standard error {_spread(every)})."]
    return "\n".join(lines)


def _differences(by: dict[Any, Any], c: str, seeds: list[int], a: str, b: str) -> list[float]:
    """The test-score differences a - b of cell ``c``, one per seed both ran."""
    return [by[(c, s, a)]["test_score"] - by[(c, s, b)]["test_score"] for s in seeds
            if (c, s, a) in by and (c, s, b) in by]


def _spread(diffs: list[float]) -> str:
    """The standard error of the mean of paired ``diffs`` (their standard deviation, ddof 1, over the
    square root of their number; "-" for fewer than two) and how many are above, below and at zero."""
    se = f"{np.std(diffs, ddof=1) / np.sqrt(len(diffs)):.4f}" if len(diffs) > 1 else "-"
    up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return f"{se} ({up}, {down}, {len(diffs) - up - down})"


# -- main ---------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default 0 1 2 3 4)")
    ap.add_argument("--cells", nargs="+", default=None, help="cell names (default: all six)")
    ap.add_argument("--methods", nargs="+", default=[*METHODS, *VARIANTS], choices=[*METHODS, *VARIANTS, *RACING],
                    help="methods (default: all)")
    ap.add_argument("--deadline", type=float, default=None, help="minutes after which no new (cell, seed) starts")
    ap.add_argument("--results", type=Path, default=RESULTS, help=f"JSON lines file (default {RESULTS})")
    ap.add_argument("--report", action="store_true", help="print the tables from the results file and exit")
    ap.add_argument("--missing", action="store_true",
                    help="run only the (cell, seed, method) rows the results file lacks (continues a cut run)")
    return ap.parse_args(argv)


def _rows_in(path: Path) -> set[tuple[str, int, str]]:
    """(cell, seed, method) of the rows that ran (failed ones run again)."""
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["cell"], r["seed"], r["method"]) for r in rows if "error" not in r}


def quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("tunesmith").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        print(report(rows))
        return 0
    quiet()
    todo = [c for c in cells() if args.cells is None or c.name in args.cells]
    have = _rows_in(args.results) if args.missing else set()
    start = time.monotonic()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for cell in todo:
            methods = [m for m in args.methods if (cell.name, seed, m) not in have]
            if not methods:
                continue
            if args.deadline is not None and time.monotonic() - start > 60 * args.deadline:
                print(f"deadline: not run: seed {seed} {cell.name}", flush=True)
                continue
            for method in methods:
                try:
                    row = run_one(method, cell, seed)
                except Exception as exc:  # recorded and reported, never silently dropped
                    row = {"cell": cell.name, "seed": seed, "method": method, "error": f"{type(exc).__name__}: {exc}"}
                    print(f"{cell.name} seed {seed} {method}: FAILED {row['error']}", flush=True)
                    with args.results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    continue
                with args.results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{cell.name} seed {seed} {method}: test {row['test_score']:.4f} fits {row['fits']} "
                      f"{row['seconds']:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
