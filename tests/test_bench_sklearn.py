"""The scikit-learn search benchmark's cells (benchmarks/bench_sklearn.py) fit on the scikit-learn installed,
without the deprecations that the next release turns into errors."""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_sklearn  # noqa: E402


def test_the_logreg_cell_s_every_choice_fits_without_scikit_learn_s_deprecations() -> None:
    # before: penalty {l1, l2}, deprecated in scikit-learn 1.8 (a FutureWarning at each fit), removed in 1.10;
    # then l1_ratio {1.0, 0.0} on every version, which 1.6 and 1.7 ignore without penalty="elasticnet" (a
    # UserWarning, silenced by the benchmark): the cell's L1 choice fitted L2 models there
    cell = next(c for c in bench_sklearn.cells() if c.name == "logreg-breast-cancer")
    x, y = cell.data()
    grid = bench_sklearn.grid_space(cell.space, {k: 2 for k in cell.space})
    fitted = []
    for values in itertools.product(*grid.values()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est = cell.estimator(0).set_params(**dict(zip(grid, values, strict=True))).fit(x, y)
        fitted.append((dict(zip(grid, values, strict=True)), int((est[-1].coef_ == 0).sum())))
    assert len(fitted) == 4
    (name, kind), = ((k, p) for k, p in cell.space.items() if p.kind == "cat")  # l1_ratio, or penalty before 1.8
    lasso = {v for p, v in fitted if p[name] == kind.choices[0]}
    assert min(lasso) > 0 and all(v == 0 for p, v in fitted if p[name] == kind.choices[1])


def test_each_cell_s_estimator_fits_alike_for_the_same_seed_whatever_the_global_generator() -> None:
    """Before: the logreg cell passed liblinear no random_state, which then drew one from NumPy's global
    generator: its L1 coefficients at C = 10 varied from fit to fit (by up to 1.0), and so did rows."""
    import numpy as np
    from sklearn.base import clone

    for cell in bench_sklearn.cells():
        x, y = cell.data()
        x, y = x[:200], y[:200]
        grid = bench_sklearn.grid_space(cell.space, {k: 2 for k in cell.space})
        params = {k: v[-1] if k.endswith("__C") else v[0] for k, v in grid.items()}  # C = 100, L1
        fitted = []
        for draw in (0, 1):
            np.random.seed(draw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an MLP's 80 iterations: not converged
                est = clone(cell.estimator(7)).set_params(**params).fit(x, y)
            fitted.append(est.predict_proba(x) if hasattr(est, "predict_proba") else est.decision_function(x))
        assert np.array_equal(*fitted), cell.name


def test_the_racing_table_gives_each_cell_s_paired_standard_error_and_the_pooled_one() -> None:
    # target 3's verdict per cell is a mean over a few seeds of test splits of 120-270 samples: the table
    # says how far that mean is from the -0.005 bound in standard errors of the paired differences
    # (before: the mean alone, so a pooled verdict over several runs needed a script of its own)
    diffs = {"svc-digits": [0.01, -0.01, 0.0, 0.03], "knn-moons": [0.0, 0.0, -0.05, 0.0]}
    rows = []
    for cell, ds in diffs.items():
        for seed, d in enumerate(ds):
            rows += [{"cell": cell, "seed": seed, "method": "tunesmith", "test_score": 0.5, "fits": 80, "seconds": 1.0},
                     {"cell": cell, "seed": seed, "method": "tunesmith-racing", "test_score": 0.5 + d, "fits": 30,
                      "seconds": 1.0}]
    table = bench_sklearn.report(rows).split("Variant `tunesmith-racing`")[1]
    # svc: mean +0.0075, standard deviation (ddof 1) sqrt(0.000875 / 3), over sqrt(4): 0.0085; better 2, worse 1,
    # tied 1; knn: mean -0.0125, standard deviation 0.025, over 2
    assert "| svc-digits | 4 | 0.5075 / 30 | +0.0075 | 0.38 | yes | 0.0085 (2, 1, 1) |" in table
    assert "| knn-moons | 4 | 0.4875 / 30 | -0.0125 | 0.38 | no | 0.0125 (0, 1, 3) |" in table
    # the 8 pairs pooled: mean -0.0025, standard deviation sqrt(0.003550 / 7), over sqrt(8): 0.0080
    assert "paired over the 8 pairs, pruned - unpruned -0.0025, standard error 0.0080 (2, 2, 4)" in table


def test_the_large_test_report_reads_a_run_of_racing_against_tunesmith_alone() -> None:
    # the registered large-test checks of racing ran `--methods tunesmith tunesmith-racing`: no (cell, seed)
    # has the six methods the rank tables need, and --report failed with an IndexError, so those rows'
    # numbers had no command to print them
    import bench_sklearn_heldout

    rows = []
    for seed, (d, cv) in enumerate([(-0.004, -0.01), (0.002, 0.0), (-0.004, -0.02)]):
        rows += [{"cell": "forest-classification", "seed": seed, "method": "tunesmith", "cv_score": 0.9,
                  "test_score": 0.85, "fits": 80, "seconds": 1.0},
                 {"cell": "forest-classification", "seed": seed, "method": "tunesmith-racing", "cv_score": 0.9 + cv,
                  "test_score": 0.85 + d, "fits": 32, "seconds": 1.0}]
    text = bench_sklearn_heldout.report(rows)
    # mean -0.002, standard deviation (ddof 1) sqrt(0.000024 / 2), over sqrt(3): 0.0020; fits 96 / 240
    assert "| forest-classification | 3 | -0.0020 | 0.0020 (1, 2, 0) | 0.40 | -0.0100 |" in text
    assert "Average rank" not in text  # no pair of the six methods: no rank table
