"""fANOVA (Hutter, Hoos & Leyton-Brown 2014) on a scikit-learn random forest, computed exactly.

Each regression tree is constant on its leaves, boxes ``(lo, hi]`` in the encoded
space (see :mod:`.data` for ``X``, ``y`` and the reference measure). For one tree
with leaf values ``v`` (L,) and leaf extents ``m`` (L, D) (the measure of the leaf's
side along each column):

- ``vol = prod_j m[:, j]``, ``f0 = sum vol * v``, ``V = sum vol * (v - f0)^2``;
- column ``d`` is cut by the tree's thresholds into intervals ``k`` of measure
  ``w_k``; each leaf covers a run of them; the marginal ``a_d[k]`` is the sum of
  ``v * vol / m[:, d]`` over the leaves covering ``k`` and the main effect
  ``V_d = sum_k w_k (a_d[k] - f0)^2``;
- for a pair (d, e), a leaf covers a rectangle of the (K_d, K_e) grid:
  ``a_de[k, l]`` sums ``v * vol / (m_d m_e)`` over the leaves covering (k, l) and
  ``V_de = sum w_k w_l (a_de - a_d - a_e + f0)^2``.

Both sums over covering leaves are difference arrays (a +/- at each run's ends, then
cumulative sums), so a tree costs O(L D + sum_d K_d) for the main effects and
O(L + K_d K_e) per pair (a few passes over the grid, which is what a pair costs).
K_d K_e grows as the square of the trials (1.4 million cells at 5,000), so a large
pair is summed in bands of rows instead, each band over the cuts of the leaves it
holds (:func:`_pair_banded`: a sixth of the cells at 5,000, the same sum to rounding).

Every sum runs over the tree's own partition, so nothing is sampled. Each tree
gives fractions ``V_d / V`` and ``V_de / V``; the estimate is their mean over the
trees and the band their standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..space.params import check_field_types
from .data import Column, Design


@dataclass(frozen=True)
class FanovaOptions:
    """The forest: ``n_trees`` trees of scikit-learn's RandomForestRegressor, each on a
    bootstrap sample, split down to ``min_samples_leaf`` trials per leaf (``max_depth``
    None: no limit), considering ``max_features`` of the columns at each split."""

    n_trees: int = 64
    min_samples_leaf: int = 1
    max_depth: int | None = None
    max_features: float = 1.0
    pairs: bool = True
    max_pair_params: int = 64

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.max_depth is not None and (not isinstance(self.max_depth, (int, np.integer)) or isinstance(self.max_depth, bool)
                                           or self.max_depth < 1):  # True was a depth of 1
            raise ValueError(f"FanovaOptions.max_depth must be an integer >= 1 or None (no limit), got {self.max_depth!r}")
        if not (isinstance(self.max_pair_params, (int, np.integer)) and self.max_pair_params >= 2):
            raise ValueError(f"max_pair_params must be an integer >= 2, got {self.max_pair_params!r}")
        if self.n_trees < 2:
            raise ValueError(f"n_trees must be >= 2 (the band is a spread over trees), got {self.n_trees}")
        if self.min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf must be >= 1, got {self.min_samples_leaf}")
        if not 0.0 < self.max_features <= 1.0:
            raise ValueError(f"max_features is a fraction of the columns in (0, 1], got {self.max_features}")


@dataclass(frozen=True)
class TreeEffects:
    """One tree's variance fractions: ``main`` (D,); ``pairs`` (P, P), upper triangle, over
    the columns ``pair_columns`` (P,): every column, or with more than
    ``FanovaOptions.max_pair_params`` columns the forest's largest main effects."""

    main: np.ndarray
    pairs: np.ndarray
    pair_columns: np.ndarray


def fanova(design: Design, options: FanovaOptions, seed: int) -> list[TreeEffects]:
    """Per-tree fractions of the forest fitted to ``design`` (constant trees left out).

    Pairs are D * (D - 1) / 2 and each costs a pass over a tree's grid, so with more than
    ``max_pair_params`` columns (a hyperparameter per weight, say) only the pairs among the
    ``max_pair_params`` columns with the largest mean main effect are computed."""
    forest = _fit(design, options, seed)
    D = len(design.columns)
    parts = [p for est in forest.estimators_ if (p := _tree_parts(est.tree_, design.columns)) is not None]
    cols = np.arange(D)
    if D > options.max_pair_params:
        mean = np.mean([p.main for p in parts], axis=0) if parts else np.zeros(D)
        cols = np.sort(np.argsort(-mean, kind="stable")[: options.max_pair_params])
    return [TreeEffects(p.main, _pairs(p, cols) if options.pairs else np.zeros((cols.size, cols.size)), cols)
            for p in parts]


def _fit(design: Design, options: FanovaOptions, seed: int) -> Any:
    try:
        import sklearn
    except ImportError:
        raise ImportError("fANOVA importance needs scikit-learn: pip install 'tunesmith[importance]' "
                          "(the ped-anova method needs no extra)") from None
    from ..integrations._common import check_floor

    # before 1.4.2 built for NumPy 1: under NumPy 2 the forest's import failed ("numpy.dtype size changed")
    check_floor(sklearn, (1, 4, 2), extra="importance", what="fANOVA importance")
    from sklearn.ensemble import RandomForestRegressor
    forest = RandomForestRegressor(
        n_estimators=options.n_trees, min_samples_leaf=options.min_samples_leaf, max_depth=options.max_depth,
        max_features=options.max_features, random_state=seed, n_jobs=1,
    )
    return forest.fit(design.X, _standardized(design.y))


def _standardized(y: np.ndarray) -> np.ndarray:
    """``y`` centred and scaled to a standard deviation of 1 (fractions of variance do not
    change): values near 1e200 overflowed the variance, and near 1e-300 fell below the
    test for a constant tree; either way every fraction came out 0."""
    span = float(np.max(np.abs(y))) if y.size else 0.0
    if span == 0.0 or not np.isfinite(span):
        return y
    z = y / span
    sd = float(z.std())
    return (z - z.mean()) / sd if sd > 0 else z - z.mean()


def leaf_boxes(tree: Any, n_columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The leaves' boxes ``(lo, hi]`` (each (L, D)) and values (L,), level by level."""
    left, right, feature, threshold = tree.children_left, tree.children_right, tree.feature, tree.threshold
    n = left.shape[0]
    lo = np.full((n, n_columns), -np.inf)
    hi = np.full((n, n_columns), np.inf)
    level = np.array([0])
    while level.size:
        inner = level[left[level] >= 0]
        f, t = feature[inner], threshold[inner]
        lk, rk = left[inner], right[inner]
        lo[lk], hi[lk] = lo[inner], hi[inner]
        lo[rk], hi[rk] = lo[inner], hi[inner]
        hi[lk, f] = t
        lo[rk, f] = t
        level = np.concatenate([lk, rk])
    leaves = left < 0
    return lo[leaves], hi[leaves], tree.value[leaves, 0, 0]


@dataclass(frozen=True)
class _TreeParts:
    """What a tree's pairs are computed from: leaf extents ``m`` (L, S) over the ``S``
    columns the tree splits on (``pos`` (D,): each column's index among them, -1 for one it
    never splits on: its extent is 1 in every leaf, its effects 0), values ``v``, the
    mean ``f0`` and variance ``total``, each column's cuts and marginal, the main effects."""

    m: np.ndarray
    pos: np.ndarray
    v: np.ndarray
    f0: float
    total: float
    cuts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    marg: list[np.ndarray]
    main: np.ndarray


def _tree_parts(tree: Any, columns: tuple[Column, ...]) -> _TreeParts | None:
    """One tree's main effects and what its pairs need; None for a constant tree."""
    lo, hi, v = leaf_boxes(tree, len(columns))
    m = np.stack([c.measure(lo[:, j], hi[:, j]) for j, c in enumerate(columns)], axis=1)
    vol = m.prod(axis=1)
    f0 = float(vol @ v)
    total = float(vol @ (v - f0) ** 2)
    if total <= 1e-12 * max(1.0, f0 * f0):
        return None
    D = len(columns)
    split = np.unique(tree.feature[tree.feature >= 0])  # a tree of n trials splits on at most n - 1 columns
    pos = np.full(D, -1)
    pos[split] = np.arange(split.size)
    m = m[:, split]  # the other columns' extents are 1: products over them change nothing
    whole = (np.zeros(v.size, dtype=np.intp), np.ones(v.size, dtype=np.intp), np.ones(1))
    main = np.zeros(D)
    cuts = [_intervals(lo[:, d], hi[:, d], c) if pos[d] >= 0 else whole for d, c in enumerate(columns)]
    marg = []
    for d in range(D):
        if pos[d] < 0:  # never split on: its marginal is the mean, its effect 0
            marg.append(np.array([f0]))
            continue
        start, end, w = cuts[d]
        a = _ranges(start, end, v * _without(m, (pos[d],)), w.size)
        main[d] = w @ (a - f0) ** 2 / total
        marg.append(a)
    return _TreeParts(m, pos, v, f0, total, cuts, marg, main)


def _pairs(p: _TreeParts, cols: np.ndarray) -> np.ndarray:
    """The pair fractions among ``cols`` (P, P), upper triangle (0 where the tree never
    splits on one of the two)."""
    pair = np.zeros((cols.size, cols.size))
    for i, d in enumerate(cols):
        for j in range(i + 1, cols.size):
            e = cols[j]
            if p.pos[d] >= 0 and p.pos[e] >= 0:
                weight = p.v * _without(p.m, (p.pos[d], p.pos[e]))
                args = (weight, p.cuts[d], p.cuts[e], p.marg[d], p.marg[e], p.f0)
                big = p.cuts[d][2].size * p.cuts[e][2].size > BANDED_CELLS
                pair[i, j] = (_pair_banded(*args) if big else _pair(*args)) / p.total
    return pair


#: a pair's grid of more cells than this is summed band by band (:func:`_pair_banded`); below (trees
#: of about 1,000 trials and fewer), the whole grid at once costs no more than the bands' bookkeeping
BANDED_CELLS = 80_000


def _intervals(lo: np.ndarray, hi: np.ndarray, column: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The column cut at every leaf boundary into intervals ``(p_k, p_k+1]``: each leaf
    covers the intervals ``start <= k < end`` (two (L,) index arrays); their measures (K,)."""
    points = np.unique(np.concatenate([lo, hi]))
    w = column.measure(points[:-1], points[1:])
    return np.searchsorted(points, lo), np.searchsorted(points, hi), w


def _ranges(start: np.ndarray, end: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    """``sum of weight over the leaves covering interval k``, for every k (K,): a
    difference array, O(L + K)."""
    acc = np.bincount(start, weights=weight, minlength=k + 1) - np.bincount(end, weights=weight, minlength=k + 1)
    return np.cumsum(acc)[:k]


def _without(m: np.ndarray, skip: tuple[int, ...]) -> np.ndarray:
    """Product of the leaves' extents over every column but ``skip``."""
    keep = np.ones(m.shape[1], dtype=bool)
    keep[list(skip)] = False
    return m[:, keep].prod(axis=1)


def _pair(weight: np.ndarray, cut_d: tuple[np.ndarray, np.ndarray, np.ndarray],
          cut_e: tuple[np.ndarray, np.ndarray, np.ndarray], a_d: np.ndarray, a_e: np.ndarray, f0: float) -> float:
    """V_de: the joint marginal over the (K_d, K_e) grid from a 2-D difference array: one
    bincount of the four corners of every leaf's rectangle (a corner at the last cut adds
    nothing inside the grid), cumulative sums and the residual in place."""
    (s_d, e_d, w_d), (s_e, e_e, w_e) = cut_d, cut_e
    kd, ke = w_d.size, w_e.size
    rows = np.concatenate([s_d, e_d, s_d, e_d])
    cols = np.concatenate([s_e, s_e, e_e, e_e])
    signed = np.concatenate([weight, -weight, -weight, weight])
    inside = (rows < kd) & (cols < ke)
    joint: np.ndarray = np.bincount(rows[inside] * ke + cols[inside], weights=signed[inside],
                                    minlength=kd * ke).reshape(kd, ke)
    np.cumsum(joint, axis=0, out=joint)
    np.cumsum(joint, axis=1, out=joint)
    joint -= a_d[:, None]
    joint -= a_e[None, :]
    joint += f0
    np.square(joint, out=joint)
    return float(w_d @ joint @ w_e)


def _pair_banded(weight: np.ndarray, cut_d: tuple[np.ndarray, np.ndarray, np.ndarray],
                 cut_e: tuple[np.ndarray, np.ndarray, np.ndarray], a_d: np.ndarray, a_e: np.ndarray, f0: float,
                 rows: int = 64) -> float:
    """V_de as :func:`_pair` gives it, summed over bands of ``rows`` cells of the axis the leaves
    span less of (d below). A band's joint marginal changes along e only at the cuts of the leaves
    it holds, a few hundred of the grid's K_e at 5,000 trials: each band gets a grid of its own
    cuts (all bands in one (bands, rows, cuts) array, built and summed as the whole grid is)."""
    (s_d, e_d, w_d), (s_e, e_e, w_e) = cut_d, cut_e
    if int((e_d - s_d).sum()) > int((e_e - s_e).sum()):
        (s_d, e_d, w_d), (s_e, e_e, w_e), a_d, a_e = (s_e, e_e, w_e), (s_d, e_d, w_d), a_e, a_d
    kd, ke = w_d.size, w_e.size
    rows = min(rows, kd)
    nb = -(-kd // rows)
    first = s_d // rows
    n = (e_d - 1) // rows - first + 1  # the bands each leaf spans
    if int(n.sum()) > 4 * nb * ke:  # long runs both ways: each band would hold most of the grid's cuts
        return _pair(weight, (s_d, e_d, w_d), (s_e, e_e, w_e), a_d, a_e, f0)
    leaf = np.repeat(np.arange(weight.size), n)
    band = np.repeat(first - np.cumsum(n) + n, n) + np.arange(leaf.size)
    lo = np.maximum(s_d[leaf] - band * rows, 0)
    hi = np.minimum(e_d[leaf] - band * rows, rows)  # a run past the band ends in the row dropped below
    c_s, c_e, at = _band_cuts(band, s_e[leaf], e_e[leaf], nb, ke)
    m = at.shape[1]
    corner = (np.concatenate([band, band, band, band]) * (rows + 1) + np.concatenate([lo, hi, lo, hi])) * m \
        + np.concatenate([c_s, c_s, c_e, c_e])
    u = weight[leaf]
    grid: np.ndarray = np.bincount(corner, weights=np.concatenate([u, -u, -u, u]),
                                   minlength=nb * (rows + 1) * m).reshape(nb, rows + 1, m)
    np.cumsum(grid, axis=1, out=grid)
    np.cumsum(grid, axis=2, out=grid)
    c = np.zeros(nb * rows)
    c[:kd] = a_d - f0
    per_row = _band_residuals(grid[:, :rows, : m - 1], c.reshape(nb, rows, 1), at, w_e, a_e)
    return float(w_d @ per_row[:kd])


def _band_cuts(band: np.ndarray, start: np.ndarray, end: np.ndarray, nb: int,
               ke: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each band's cuts along e: the ends of the runs it holds (0 and ``ke`` among them, as its
    leaves cover e). The runs' ``start`` and ``end`` as indices among their band's cuts, and the
    cuts (bands, m), a band with fewer padded with ``ke`` (intervals of measure 0)."""
    keys = np.concatenate([band * (ke + 1) + start, band * (ke + 1) + end])
    cut = np.zeros(nb * (ke + 1), dtype=bool)
    cut[keys] = True
    count = cut.reshape(nb, ke + 1).sum(axis=1)
    offset = np.cumsum(count) - count
    col = np.cumsum(cut)[keys] - 1 - offset[np.concatenate([band, band])]
    points = np.flatnonzero(cut)
    owner = points // (ke + 1)
    at = np.full((nb, int(count.max())), ke, dtype=np.intp)
    at[owner, np.arange(points.size) - offset[owner]] = points - owner * (ke + 1)
    return col[: band.size], col[band.size:], at


def _band_residuals(joint: np.ndarray, c: np.ndarray, at: np.ndarray, w_e: np.ndarray, a_e: np.ndarray) -> np.ndarray:
    """Each row's ``sum_l w_l (J - c - a_e[l])^2`` from the bands' joint marginals (bands, rows, m - 1),
    constant over each interval between a band's cuts ``at``: ``(J - c)^2 W - 2 (J - c) A`` summed over
    the intervals (W, A: sums of ``w_e`` and ``w_e a_e`` over each, from prefix sums) plus
    ``sum w_e a_e^2``. ``joint`` is overwritten (an array of its size is what a band grid costs)."""
    total = np.concatenate([[0.0], np.cumsum(w_e)])
    moment = np.concatenate([[0.0], np.cumsum(w_e * a_e)])
    width = (total[at[:, 1:]] - total[at[:, :-1]])[:, :, None]
    first_moment = (moment[at[:, 1:]] - moment[at[:, :-1]])[:, :, None]
    joint -= c
    per_row = -2 * np.matmul(joint, first_moment)
    np.square(joint, out=joint)
    per_row += np.matmul(joint, width)
    return per_row.ravel() + w_e @ (a_e * a_e)
