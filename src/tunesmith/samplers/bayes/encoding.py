"""From the space's unit encoding to the GP's inputs, and back.

Notation (shared by the whole ``bayes`` package):

    n      number of training points (completed trials, plus fantasies)
    m      number of candidate points being scored
    d      number of free parameters (``space.ndim``)
    U      (·, d) unit encoding from ``space.encode_many``: [0, 1], NaN = inactive
    Z      (·, d) GP inputs: U on numeric dims, the choice index (0..k-1) on
           categorical dims; inactive coordinates are 0 (numeric) or -1
           (categorical)
    A      (·, d) bool, True where the parameter is active
    y      (n,) losses after warping (standardized; smaller is better)

Integer and stepped dimensions are treated as continuous on [0, 1] and
snapped to the centre of their bin (the value the space decodes to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...space import Space


@dataclass(frozen=True)
class Encoding:
    """What the GP needs to know about each coordinate of ``space``."""

    is_cat: np.ndarray  # (d,) bool
    n_choices: np.ndarray  # (d,) int, 0 for numeric dims
    conditional: bool

    @classmethod
    def of(cls, space: Space) -> Encoding:
        is_cat = np.array([d.kind == "categorical" for d in space.dims], dtype=bool)
        k = np.array([int(d.levels) if d.kind == "categorical" else 0 for d in space.dims])
        return cls(is_cat, k, space.is_conditional)

    @property
    def numeric(self) -> np.ndarray:
        return ~self.is_cat

    def to_gp(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z, A) from unit vectors U (m, d)."""
        A = ~np.isnan(U)
        Z = np.where(A, U, 0.0)
        if self.is_cat.any():
            k = self.n_choices[self.is_cat]
            codes = np.minimum(np.floor(Z[:, self.is_cat] * k), k - 1)
            Z[:, self.is_cat] = np.where(A[:, self.is_cat], codes, -1.0)
        return Z, A

    def to_unit(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        """Unit vectors U (m, d) from (Z, A); inactive coordinates become NaN."""
        U = Z.astype(float).copy()
        if self.is_cat.any():
            U[:, self.is_cat] = (Z[:, self.is_cat] + 0.5) / self.n_choices[self.is_cat]
        return np.where(A, U, np.nan)


def canonical(space: Space, U: np.ndarray) -> np.ndarray:
    """Snap unit vectors (m, d) onto values the space can hold.

    Integer, stepped and categorical coordinates move to their bin centres; in
    conditional spaces, coordinates of inactive parameters become NaN (and a
    parameter that becomes active without a value takes the middle, 0.5).
    """
    if space.is_conditional:
        return space.encode_many([space.decode(u) for u in U])
    out = np.clip(U, 0.0, 1.0)
    for j, dim in enumerate(space.dims):
        if math.isinf(dim.levels):
            continue
        p = space[dim.name]
        if dim.kind == "int" and dim.log:
            out[:, j] = [p.to_unit(p.from_unit(u)) for u in out[:, j]]
        else:
            L = dim.levels
            out[:, j] = (np.minimum(np.floor(out[:, j] * L), L - 1) + 0.5) / L
    return out


def row_keys(U: np.ndarray) -> list[bytes]:
    """Hashable keys of unit vectors, equal for equal configurations."""
    R = np.where(np.isnan(U), -1.0, np.round(U, 9)) + 0.0
    return [r.tobytes() for r in R]
