"""PED-ANOVA (Watanabe, Bansal & Hutter 2023): what matters among the good configurations.

Of the trials in the region (the best ``region_quantile`` of them; 1.0: all), take the
best ``target_quantile`` (the good ones). For each column ``d`` (see :mod:`.data`),
``p_good`` and ``p_region`` are the distributions of its values in the two sets,
estimated on ``bins`` equal cells of [0, 1] with a Gaussian kernel (Scott's
bandwidth, cut to [0, 1]; a categorical's choices are its cells, smoothed by
``prior`` pseudo-trials). The
score is the Pearson divergence

    PE_d = sum_cells p_good^2 / p_region - 1,

zero when the good trials spread over ``d`` as all trials do, large when they
gather in a small part of its range. Fractions are ``PE_d / sum PE``; the band is
their standard deviation over ``n_bootstrap`` resamples of the trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Column, Design


@dataclass(frozen=True)
class PedAnovaOptions:
    target_quantile: float = 0.1
    region_quantile: float = 1.0
    bins: int = 50
    prior: float = 1.0
    n_bootstrap: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.target_quantile < self.region_quantile <= 1.0:
            raise ValueError(
                "need 0 < target_quantile < region_quantile <= 1, got "
                f"target_quantile={self.target_quantile}, region_quantile={self.region_quantile}"
            )
        if self.bins < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")


def ped_anova(design: Design, options: PedAnovaOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson divergences (D,) of the trials, and (n_bootstrap, D) of resampled ones."""
    order = np.argsort(design.y, kind="stable")
    region = order[: max(2, int(np.ceil(options.region_quantile * len(order))))]
    X = design.X[region]  # best first
    point = _divergences(X, design.columns, options)
    rng = np.random.default_rng(seed)
    boot = [_divergences(X[np.sort(rng.integers(0, len(X), len(X)))], design.columns, options)
            for _ in range(options.n_bootstrap)]
    return point, np.array(boot).reshape(options.n_bootstrap, len(design.columns))


def _divergences(X: np.ndarray, columns: tuple[Column, ...], options: PedAnovaOptions) -> np.ndarray:
    """``X``: the region's rows, best first (repeats allowed)."""
    n_good = max(2, int(np.ceil(options.target_quantile / options.region_quantile * len(X))))
    return np.array([_pearson(_density(X[:n_good, j], c, options), _density(X[:, j], c, options))
                     for j, c in enumerate(columns)])


def _pearson(p: np.ndarray, q: np.ndarray) -> float:
    q = np.maximum(q, 1e-12)
    return float(max(0.0, np.sum(p * p / q) - 1.0))


def _density(x: np.ndarray, column: Column, options: PedAnovaOptions) -> np.ndarray:
    """The distribution of ``x`` over the column's cells."""
    if column.choices:
        return _categorical(x, column.choices, options.prior)
    return _gaussian(x, options.bins)


def _gaussian(x: np.ndarray, bins: int) -> np.ndarray:
    centers = (np.arange(bins) + 0.5) / bins
    h = max(1.06 * float(np.std(x)) * len(x) ** -0.2, 1.0 / bins)
    k = np.exp(-0.5 * ((centers[None, :] - x[:, None]) / h) ** 2)
    return (k / k.sum(axis=1, keepdims=True)).mean(axis=0)


def _categorical(x: np.ndarray, choices: int, prior: float) -> np.ndarray:
    counts = np.bincount(np.minimum((x * choices).astype(int), choices - 1), minlength=choices)
    p = counts + prior / choices
    return p / p.sum()
