"""The broad benchmark (benchmarks/samplers-broad.md): registered cells and the
synthetic families beyond plain BBOB.

Families and problem names (every name fixes its problem; nothing is drawn at run time):

* ``bbob``: ``bbob-fFF-dDD-iI``, all 24 noiseless BBOB functions, d in 2, 5, 10, 20,
  instances 1, 3, 5. The 24 x 4 x 3 = 288 (function, d, instance) combinations are
  subsampled to 96 by a Latin-square rule: every function runs at every d, and the
  instance of (function f, d-index k) is ``(1, 3, 5)[(f + k) % 3]``, so every
  instance appears 32 times and at every d 8 times.
* ``noisy``: ``noisy-fFF-dDD``, BBOB instance 1 with COCO's severe Gaussian noise model
  f~ = f* + (f - f*) exp(N(0, 1)) (bbob-noisy's beta = 1), f in 1, 8, 15, 21, d in 2, 5, 10.
  The optimizer sees the noisy value; regret is on the noiseless value of the points it
  evaluated.
* ``int``: ``int-fFF-dDD``, BBOB instance 1 with every coordinate an integer in
  -5..5; f* is the best of the 11^d grid (enumerated), f in 1, 8, 15, 21, 24, d = 5.
* ``mixint``: ``mixint-fFF-dDD``, COCO's bbob-mixint suite (4 integer coordinates of
  2, 4, 8, 16 levels per 5, the rest continuous), instance 1, f in 1, 8, 10, 15, 20, 21,
  d in 5, 10.
* ``cond``: ``cond-dDD``, a conditional space: ``branch`` picks one of three BBOB
  functions (f1, f8, f15, instance 1), each with its own d coordinates; loss
  log10(1 + f_b(x) - f*_b) + (0.6, 0.3, 0)[b]; d in 3, 5. f* = 0 (rastrigin's optimum).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

import tunesmith as ts

from . import problems as P

BBOB_ALL = tuple(range(1, 25))
BROAD_DIMS = (2, 5, 10, 20)
INSTANCES = (1, 3, 5)
NOISY = {"functions": (1, 8, 15, 21), "dims": (2, 5, 10)}
INTEGER = {"functions": (1, 8, 15, 21, 24), "dims": (5,)}
MIXINT = {"functions": (1, 8, 10, 15, 20, 21), "dims": (5, 10)}
COND_DIMS = (3, 5)
COND_BRANCHES = (("sphere", 1, 0.6), ("rosenbrock", 8, 0.3), ("rastrigin", 15, 0.0))
SYNTHETIC = ("bbob", "noisy", "int", "mixint", "cond")
BUDGET_SYNTHETIC = 100
BUDGET_REAL = 50
PENDING = (4, 8)
#: the parallel family: these problems, run with 4 and 8 pending suggestions
PARALLEL_BBOB = ((1, 5), (8, 5), (10, 5), (15, 5), (17, 5), (21, 5), (22, 10), (24, 10))
PARALLEL_REAL = ("svm-digits", "hgb-breast-cancer")


#: the development subset (sampler changes are judged here only; the rest is held out)
DEV_RUGGED = (15, 16, 21, 22, 23, 24)
DEV_SMOOTH = (1, 2, 8, 10, 12, 14)
DEV_DIMS = (5, 10)
#: the slow GP peers' subsample: every k-th cell of each synthetic sub-family, in registered order
GP_SUBSAMPLE_STEP = {"bbob": 7, "noisy": 3, "int": 1, "mixint": 2, "cond": 1}


def dev_cells() -> list[str]:
    """The registered development subset: BBOB d 5 and 10, rugged and smooth functions."""
    return bbob_cells(DEV_RUGGED + DEV_SMOOTH, DEV_DIMS)


def gp_subsample() -> list[str]:
    """The registered synthetic cells of the slow GP peers (``optuna-gp``, ``skopt-gp``)."""
    return [n for fam, k in GP_SUBSAMPLE_STEP.items() for n in synthetic_names(fam)[::k]]


def latin_instance(f: int, d: int) -> int:
    """The registered instance of BBOB function ``f`` at dimension ``d``."""
    return INSTANCES[(f + BROAD_DIMS.index(d)) % len(INSTANCES)]


def bbob_cells(functions: tuple[int, ...] = BBOB_ALL, dims: tuple[int, ...] = BROAD_DIMS) -> list[str]:
    return [f"bbob-f{f:02d}-d{d:02d}-i{latin_instance(f, d)}" for d in dims for f in functions]


def synthetic_names(family: str) -> list[str]:
    if family == "bbob":
        return bbob_cells()
    if family == "cond":
        return [f"cond-d{d:02d}" for d in COND_DIMS]
    grid = {"noisy": NOISY, "int": INTEGER, "mixint": MIXINT}[family]
    return [f"{family}-f{f:02d}-d{d:02d}" for d in grid["dims"] for f in grid["functions"]]


def _fd(name: str) -> tuple[int, int]:
    _, f, d = name.split("-")
    return int(f[1:]), int(d[1:])


# -- spaces --------------------------------------------------------------------------
def space(name: str) -> ts.Space:
    family = name.split("-")[0]
    if family in ("bbob", "noisy"):
        return P.bbob_space(_dim(name))
    if family == "int":
        return ts.Space({f"x{i}": ts.Int(-5, 5) for i in range(_fd(name)[1])})
    if family == "mixint":
        prob = _mixint(name)
        n_int = prob.number_of_integer_variables
        return ts.Space({
            f"x{i}": (ts.Int(int(lo), int(hi)) if i < n_int else ts.Float(float(lo), float(hi)))
            for i, (lo, hi) in enumerate(zip(prob.lower_bounds, prob.upper_bounds, strict=True))
        })
    if family == "cond":
        d = _dim(name)
        params: dict[str, ts.Param] = {"branch": ts.Categorical([b for b, _, _ in COND_BRANCHES])}
        for b, _, _ in COND_BRANCHES:
            params.update({f"{b}_x{i}": ts.Float(-5.0, 5.0, when={"branch": [b]}) for i in range(d)})
        return ts.Space(params)
    raise ValueError(f"unknown synthetic problem {name!r}")


def _dim(name: str) -> int:
    return int(next(p for p in name.split("-") if p.startswith("d"))[1:])


# -- objectives ----------------------------------------------------------------------
@cache
def _mixint_suite() -> Any:
    import cocoex

    return cocoex.Suite("bbob-mixint", "", "dimensions:5,10 instance_indices:1")


def _mixint(name: str) -> Any:
    f, d = _fd(name)
    return _mixint_suite().get_problem_by_function_dimension_instance(f, d, 1)


def _vector(cfg: dict[str, Any], d: int, prefix: str = "x") -> np.ndarray:
    return np.array([cfg[f"{prefix}{i}"] for i in range(d)], dtype=float)


def objective(name: str) -> Callable[[dict[str, Any]], Any]:
    """The loss of a synthetic problem; a noisy one returns (observed, noiseless)."""
    family = name.split("-")[0]
    if family == "noisy":
        return _noisy(name)
    if family == "cond":
        return _conditional(_dim(name))
    prob = _mixint(name) if family == "mixint" else P.bbob_problem(_bbob_name(name))
    d = prob.dimension
    return lambda cfg: float(prob(_vector(cfg, d)))


def _bbob_name(name: str) -> str:
    """The BBOB problem behind a synthetic name (instance 1 unless it says)."""
    if name.startswith("bbob-"):
        return name
    f, d = _fd(name)
    return P.bbob_name(f, d)


def _noisy(name: str) -> Callable[[dict[str, Any]], tuple[float, float]]:
    prob = P.bbob_problem(_bbob_name(name))
    f_star = P.bbob_optimum(_bbob_name(name))
    d = prob.dimension
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # every optimizer meets the same draws

    def loss(cfg: dict[str, Any]) -> tuple[float, float]:
        true = float(prob(_vector(cfg, d)))
        return f_star + (true - f_star) * float(np.exp(rng.standard_normal())), true

    return loss


def _conditional(d: int) -> Callable[[dict[str, Any]], float]:
    probs = {b: (P.bbob_problem(P.bbob_name(f, d)), P.bbob_optimum(P.bbob_name(f, d)), off)
             for b, f, off in COND_BRANCHES}

    def loss(cfg: dict[str, Any]) -> float:
        prob, f_star, offset = probs[cfg["branch"]]
        x = _vector(cfg, d, f"{cfg['branch']}_x")
        return float(np.log10(1.0 + max(float(prob(x)) - f_star, 0.0)) + offset)

    return loss


# -- references: (f*, f_ref = median of 1,000 uniform random configurations) ---------------
@cache
def reference(name: str) -> tuple[float, float]:
    family = name.split("-")[0]
    if family in ("bbob", "noisy"):
        base = _bbob_name(name)
        return P.bbob_optimum(base), P.bbob_random_median(base)
    loss = objective(name)
    sp = space(name)
    rng = np.random.default_rng(12345)
    f_ref = float(np.median([loss(sp.sample(rng)) for _ in range(1000)]))
    if family == "cond":
        return 0.0, f_ref
    if family == "int":
        return _grid_optimum(name), f_ref
    return _mixint_optimum(name), f_ref


def _grid_optimum(name: str) -> float:
    prob = P.bbob_problem(_bbob_name(name))
    d = prob.dimension
    return min(float(prob(np.array(x, dtype=float))) for x in itertools.product(range(-5, 6), repeat=d))


def _mixint_optimum(name: str) -> float:
    prob = _mixint(name)
    return float(prob(P.optimal_point(prob)))
