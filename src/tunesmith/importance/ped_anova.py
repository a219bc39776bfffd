"""PED-ANOVA (Watanabe, Bansal & Hutter 2023): what matters among the good configurations.

Of the trials in the region (the best ``region_quantile`` of them; 1.0: all), take the
best ``target_quantile`` (the good ones). For each column ``d`` (see :mod:`.data`),
``p_good`` and ``p_region`` are the distributions of its values in the two sets,
estimated on ``bins`` equal cells of [0, 1] with a Gaussian kernel reflected at 0 and 1
(half of Scott's bandwidth; a categorical's choices,
or the levels of a parameter with a step when there are at most ``bins``, are its cells,
both sets' shares mixed with even ones as ``prior`` pseudo-trials among the good trials would).
The score is the Pearson divergence

    PE_d = sum_cells p_good^2 / p_region - 1,

zero when the good trials spread over ``d`` as all trials do, large when they
gather in a small part of its range. ``p_good^2`` is estimated over pairs of distinct
good trials (a U-statistic): the plug-in square also pairs each trial's kernel with
itself, which adds about ``1 / (n_good h)`` to every parameter, one that does nothing
included. Fractions are ``PE_d / sum PE``; the band is
their standard deviation over ``n_bootstrap`` resamples of the trials.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..space.params import check_field_types
from .data import Column, Design

MAX_BINS = 1000
#: divergences below this are rounding: each is a sum of up to ``bins`` shares less 1, and a
#: parameter that never changed (one choice, or a branch no trial took) came to 2e-16, which
#: made it the whole when every other divergence was 0
ROUNDING = 1e-12


@dataclass(frozen=True)
class PedAnovaOptions:
    target_quantile: float = 0.1
    region_quantile: float = 1.0
    bins: int = 50
    prior: float = 1.0
    n_bootstrap: int = 32

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0.0 < self.target_quantile < self.region_quantile <= 1.0:
            raise ValueError(
                "need 0 < target_quantile < region_quantile <= 1, got "
                f"target_quantile={self.target_quantile}, region_quantile={self.region_quantile}"
            )
        if not 2 <= self.bins <= MAX_BINS:  # the kernels are a (8 bins, bins) matrix
            raise ValueError(f"bins must be between 2 and {MAX_BINS}, got {self.bins}")
        if not 0 <= self.prior <= sys.float_info.max:  # not math.isfinite, which overflows at an int of 10**400
            raise ValueError(f"PedAnovaOptions.prior must be a finite number >= 0 (pseudo-trials; 0: none), "
                             f"got {self.prior}")
        if self.n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be >= 0 (0: no band), got {self.n_bootstrap}")


def ped_anova(design: Design, options: PedAnovaOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson divergences (D,) of the trials, and (n_bootstrap, D) of resampled ones.

    Each density is a mixture of its trials' kernels (rows of ``K``, (n, cells)), so a set
    of trials is a weight vector over the region: ``p = w @ K``. A resample reuses the
    kernels (bandwidths of the full sample) with its own counts as weights.
    """
    order = np.argsort(design.y, kind="stable")
    n, n_good = sizes(len(order), options)
    X = design.X[order[:n]]  # the region, best first
    weights_good = np.zeros((1 + options.n_bootstrap, n))
    weights_all = np.zeros_like(weights_good)
    weights_good[0, :n_good] = 1.0
    weights_all[0] = 1.0
    picks = np.sort(np.random.default_rng(seed).integers(0, n, (options.n_bootstrap, n)), axis=1)
    rows = np.arange(options.n_bootstrap)[:, None] + 1
    np.add.at(weights_good, (rows, picks[:, :n_good]), 1.0)
    np.add.at(weights_all, (rows, picks), 1.0)
    weights_good /= n_good
    weights_all /= n
    div = np.stack([_divergence(X[:, j], n_good, c, options, weights_good, weights_all)
                    for j, c in enumerate(design.columns)], axis=1)
    div[div < ROUNDING] = 0.0
    return div[0], div[1:]


def sizes(n_trials: int, options: PedAnovaOptions) -> tuple[int, int]:
    """How many trials are in the region, and how many of them are good."""
    n = max(2, int(np.ceil(options.region_quantile * n_trials)))
    return n, max(2, int(np.ceil(options.target_quantile / options.region_quantile * n)))


def _divergence(x: np.ndarray, n_good: int, column: Column, options: PedAnovaOptions,
                w_good: np.ndarray, w_all: np.ndarray) -> np.ndarray:
    """Pearson divergence of each weighting's good set from its whole set, (weightings,)."""
    discrete = column.choices or (column.levels if column.levels <= options.bins else 0)
    if discrete:
        return _discrete_divergence(_one_hot(x, discrete), n_good, options.prior, w_good, w_all)
    else:
        hist_good, hist_all = _fine_histograms(x, options.bins, w_good, w_all)
        kernel_good = _kernels(_bandwidth(x[:n_good], options.bins), options.bins)
        p = hist_good @ kernel_good
        q = hist_all @ _kernels(_bandwidth(x, options.bins), options.bins)
        self_terms = hist_good @ kernel_good**2
    return _pearson(p, np.maximum(q, 1e-12), self_terms, n_good)


def _discrete_divergence(k: np.ndarray, n_good: int, prior: float, w_good: np.ndarray,
                         w_all: np.ndarray) -> np.ndarray:
    """:func:`_pearson` over the cells ``k`` (one-hot, (n, cells)) with the good shares ``s``
    smoothed by ``prior``: ``p = a s + b`` (``a = n_good / (n_good + prior)``, ``b = (1 - a) / cells``),
    and all trials' shares ``r`` as much: ``q = a r + b``, so that good trials spread as all trials
    do diverge by nothing (``r`` smoothed by ``prior`` among all the trials, a choice no trial took
    got ``b`` in ``p`` and ten times less in ``q``: 0.56 for a parameter every trial left at one choice).
    Only ``s^2`` in ``p^2 = a^2 s^2 + 2 a b s + b^2`` pairs trials: it alone gets the pairs of
    distinct trials (scaling all of ``p^2`` gave a parameter with one choice, or any that does
    nothing, ``(1 - a^2) / (n_good - 1)``: 0.05 at 60 trials)."""
    shares = w_good @ k
    a = n_good / (n_good + prior)
    b = (1.0 - a) / k.shape[1]
    q = np.maximum(a * (w_all @ k) + b, 1e-12)
    pairs = (shares * shares - shares / n_good) * n_good / (n_good - 1)
    return np.maximum(0.0, np.sum((a * a * pairs + 2 * a * b * shares + b * b) / q, axis=1) - 1.0)


def _pearson(p: np.ndarray, q: np.ndarray, self_terms: np.ndarray, n_good: int) -> np.ndarray:
    """``sum p^2 / q - 1`` over the pairs of distinct good trials: ``p^2`` is a sum over
    pairs of kernels, and the ``n_good`` pairs of a kernel with itself (``self_terms``,
    the weighted squared kernels) would add ``~1 / (n_good h)`` to every divergence,
    important or not."""
    plug_in = np.sum(p * p / q, axis=1)
    self_sum = np.sum(self_terms / q, axis=1) / n_good
    return np.maximum(0.0, (plug_in - self_sum) * n_good / (n_good - 1) - 1.0)


def _fine_histograms(x: np.ndarray, bins: int, *weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """The values rounded to ``SUBCELLS`` sub-cells per cell: each weighting's mass on the
    sub-cells, (weightings, sub-cells), so kernels are computed per sub-cell."""
    n_fine = bins * SUBCELLS
    idx = np.minimum((x * n_fine).astype(int), n_fine - 1)
    return tuple(np.stack([np.bincount(idx, weights=row, minlength=n_fine) for row in w]) for w in weights)


SUBCELLS = 8  # the values' rounding: 1/400 of the range with 50 cells, far below any bandwidth


def _bandwidth(x: np.ndarray, bins: int) -> float:
    """Half of Scott's rule, at least half a cell: a divergence, an integral of the
    squared density, wants less smoothing than the density itself (smoothing flattens
    the edges of the good region, and the variance it would otherwise damp no longer
    biases the estimate: see :func:`_pearson`). The density of all trials gets the same
    half: the good trials are among them, and a narrower kernel keeps the two estimates'
    noise over the good region in step (a wider one raised the error)."""
    return 0.5 * max(1.06 * float(np.std(x)) * len(x) ** -0.2, 1.0 / bins)


def _kernels(h: float, bins: int) -> np.ndarray:
    """Each sub-cell's Gaussian kernel of bandwidth ``h`` over the cells, reflected at 0 and 1
    and summing to 1, (sub-cells, cells). Reflection estimates a density that is flat up to
    an edge as flat there; kernels cut at the edge and rescaled estimate it at ``ln 2`` (0.69)
    of its value on the edge, and good regions often lie at a bound.

    A cell's centre minus a sub-cell's centre is ``(SUBCELLS i - k + (SUBCELLS - 1) / 2) / n_fine``,
    their sum ``(SUBCELLS i + k + (SUBCELLS + 1) / 2) / n_fine``: the kernel matrix takes its
    values from two rows of ``2 n_fine`` offsets (the mirror images at 0 and 2 share the sums)."""
    lag, offsets, total, sums = _lags(bins)
    k = np.exp(-0.5 * (offsets / h) ** 2)[lag] + (np.exp(-0.5 * (sums / h) ** 2)
                                                  + np.exp(-0.5 * ((sums - 2.0) / h) ** 2))[total]
    return k / k.sum(axis=1, keepdims=True)


@cache
def _lags(bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index of each (sub-cell, cell) pair's difference and the differences; the same for sums."""
    n_fine = bins * SUBCELLS
    lag = SUBCELLS * np.arange(bins)[None, :] - np.arange(n_fine)[:, None] + n_fine
    offsets = (np.arange(2 * n_fine) - n_fine + (SUBCELLS - 1) / 2) / n_fine
    total = SUBCELLS * np.arange(bins)[None, :] + np.arange(n_fine)[:, None]
    sums = (np.arange(2 * n_fine) + (SUBCELLS + 1) / 2) / n_fine
    return lag, offsets, total, sums


def _one_hot(x: np.ndarray, choices: int) -> np.ndarray:
    return np.eye(choices)[np.minimum((x * choices).astype(int), choices - 1)]
