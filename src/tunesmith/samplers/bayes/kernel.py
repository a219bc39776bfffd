"""Matern-5/2 ARD kernel over mixed numeric, categorical and conditional inputs.

Per coordinate j, the squared difference of two points is

    numeric j:      (z_j - z'_j)^2  if both active, 0 if both inactive, 1 if only one is
    categorical j:  [z_j != z'_j]    (inactive is its own category, code -1)

so an inactive parameter never pulls two points apart by a made-up value.
With lengthscales l (d,) and signal variance s,

    r^2 = sum_j D_j / l_j^2,        k(r) = s (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r).

Shapes follow :mod:`.encoding`: inputs (Z, A) are (·, d) arrays.
"""

from __future__ import annotations

import numpy as np

SQRT5 = float(np.sqrt(5.0))


def dim_sqdist(
    z1: np.ndarray, a1: np.ndarray, z2: np.ndarray, a2: np.ndarray, cat: bool, cond: bool
) -> np.ndarray:
    """(n1, n2) squared differences along one coordinate (see module doc)."""
    if cat:
        return (z1[:, None] != z2[None, :]).astype(float)
    diff2 = (z1[:, None] - z2[None, :]) ** 2
    if not cond:
        return diff2
    both = a1[:, None] & a2[None, :]
    return np.where(both, diff2, (a1[:, None] != a2[None, :]).astype(float))


def sqdists(
    Z1: np.ndarray, A1: np.ndarray, Z2: np.ndarray, A2: np.ndarray, is_cat: np.ndarray, cond: bool
) -> np.ndarray:
    """(d, n1, n2) per-coordinate squared differences."""
    return np.stack(
        [dim_sqdist(Z1[:, j], A1[:, j], Z2[:, j], A2[:, j], bool(is_cat[j]), cond) for j in range(Z1.shape[1])]
    )


def scaled_r2(
    Z1: np.ndarray, A1: np.ndarray, Z2: np.ndarray, A2: np.ndarray,
    is_cat: np.ndarray, cond: bool, inv_l2: np.ndarray,
) -> np.ndarray:
    """(n1, n2) r^2 without materializing the (d, n1, n2) stack."""
    if not cond and not is_cat.any():  # all numeric and always active: one matrix product
        scale = np.sqrt(inv_l2)
        a, b = Z1 * scale, Z2 * scale
        r2 = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
        return np.maximum(r2, 0.0)
    r2 = np.zeros((Z1.shape[0], Z2.shape[0]))
    for j in range(Z1.shape[1]):
        r2 += inv_l2[j] * dim_sqdist(Z1[:, j], A1[:, j], Z2[:, j], A2[:, j], bool(is_cat[j]), cond)
    return r2


def matern52(r2: np.ndarray) -> np.ndarray:
    """Unit-variance Matern-5/2 correlation as a function of r^2."""
    r = np.sqrt(np.maximum(r2, 0.0))
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * np.exp(-SQRT5 * r)


def matern52_dr2(r2: np.ndarray) -> np.ndarray:
    """d k / d(r^2) of :func:`matern52` (finite at r = 0)."""
    r = np.sqrt(np.maximum(r2, 0.0))
    return -(5.0 / 6.0) * (1.0 + SQRT5 * r) * np.exp(-SQRT5 * r)
