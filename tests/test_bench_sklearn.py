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
