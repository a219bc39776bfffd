"""Acquisition optimizer: many candidates, gradient refinement, discrete local search.

1. score ``n_random`` uniform candidates and ``n_local`` perturbations of the
   best observed points (so no basin of the acquisition is left unvisited);
2. refine the ``n_starts`` best by L-BFGS-B on their numeric coordinates
   (integer ones included, snapped afterwards), all starts in one problem;
3. local search over categorical choices and neighbouring integer values.

Points travel as unit vectors U (m, d) (NaN = inactive, see :mod:`.encoding`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ...space import Space
from .acquisition import Acquisition
from .encoding import Encoding, canonical
from .options import BayesOptions


@dataclass
class Scored:
    """Points (m, d) and their acquisition values (m,), best first."""

    U: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, U: np.ndarray, value: np.ndarray) -> Scored:
        order = np.argsort(-value, kind="stable")
        return cls(U[order], value[order])


class AcqOptimizer:
    """Maximizes an :class:`~.acquisition.Acquisition` over a space."""

    def __init__(self, space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator) -> None:
        self.space, self.enc, self.opt, self.rng = space, enc, options, rng
        self.numeric = np.flatnonzero(enc.numeric)
        self.discrete = [
            j for j, dim in enumerate(space.dims) if dim.kind == "categorical" or not math.isinf(dim.levels)
        ]

    def score(self, acq: Acquisition, U: np.ndarray) -> np.ndarray:
        Z, A = self.enc.to_gp(U)
        return acq.value(Z, A, U)

    def maximize(self, acq: Acquisition, anchors: np.ndarray,
                 region: tuple[np.ndarray, np.ndarray] | None = None) -> Scored:
        """Best points found, given anchors (k, d): the best observed points; with
        ``region`` (lo, hi), each (d,), only inside that box (see :mod:`.local`)."""
        whole = (np.zeros(self.space.ndim), np.ones(self.space.ndim))
        self.lo: np.ndarray = (region or whole)[0]
        self.hi: np.ndarray = (region or whole)[1]
        U = np.vstack([self._random(), self._local(anchors)])
        first = Scored.of(U, self.score(acq, U))
        starts = first.U[self._starts(first.value)]
        refined = self._refine(acq, starts) if len(self.numeric) else starts
        refined = canonical(self.space, refined)
        found = Scored.of(refined, self.score(acq, refined))
        found = self._discrete_search(acq, found)
        return Scored.of(np.vstack([found.U, first.U]), np.r_[found.value, first.value])

    def _starts(self, value: np.ndarray) -> np.ndarray:
        """Indices of refinement starts: the best candidate, then a roulette on
        EI (exp of log EI) among the rest, so the starts cover several basins."""
        k = min(self.opt.n_starts, len(value))
        p = np.exp(value[1:] - value[1:].max()) if len(value) > 1 else np.ones(0)
        p = p + 1e-12
        rest = self.rng.choice(len(p), size=min(k - 1, len(p)), replace=False, p=p / p.sum()) + 1
        return np.r_[0, rest].astype(int)

    def _random(self) -> np.ndarray:
        R = self.rng.random((self.opt.n_random, self.space.ndim))
        return canonical(self.space, self.lo + (self.hi - self.lo) * R)

    def _local(self, anchors: np.ndarray) -> np.ndarray:
        if len(anchors) == 0 or self.opt.n_local == 0:
            return np.empty((0, self.space.ndim))
        idx = self.rng.integers(len(anchors), size=self.opt.n_local)
        base = np.where(np.isnan(anchors[idx]), self.rng.random((len(idx), anchors.shape[1])), anchors[idx])
        scale = self.rng.choice([0.01, 0.05, 0.15], size=(len(idx), 1))
        U = base + scale * self.rng.standard_normal(base.shape)
        if self.enc.is_cat.any():
            flip = self.rng.random(base.shape) < 1.0 / max(self.space.ndim, 2)
            flip &= self.enc.is_cat[None, :]
            U = np.where(flip, self.rng.random(base.shape), np.where(self.enc.is_cat, base, U))
        return canonical(self.space, np.clip(U, self.lo, self.hi))

    def _refine(self, acq: Acquisition, starts: np.ndarray) -> np.ndarray:
        """L-BFGS-B on the numeric coordinates of all starts jointly."""
        dims = self.numeric
        active = ~np.isnan(starts[:, dims])
        x0 = np.where(active, starts[:, dims], 0.5).ravel()
        lo, hi = np.tile(self.lo[dims], len(starts)), np.tile(self.hi[dims], len(starts))

        def unpack(x: np.ndarray) -> np.ndarray:
            U = starts.copy()
            U[:, dims] = np.where(active, x.reshape(len(starts), len(dims)), np.nan)
            return U

        def f(x: np.ndarray) -> tuple[float, np.ndarray]:
            U = unpack(x)
            Z, A = self.enc.to_gp(U)
            val, grad = acq.value_grad(Z, A, U, dims)
            return -float(val.sum()), -np.where(active, grad, 0.0).ravel()

        res = scipy.optimize.minimize(
            f, np.clip(x0, lo, hi), jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi, strict=True)),
            options={"maxiter": self.opt.maxiter},
        )
        return unpack(np.asarray(res.x))

    def _discrete_search(self, acq: Acquisition, found: Scored, rounds: int = 3) -> Scored:
        """Greedy moves to other categories / neighbouring integer bins."""
        if not self.discrete:
            return found
        U, val = found.U.copy(), found.value.copy()
        for _ in range(rounds):
            improved = False
            for i in range(min(len(U), 3)):
                nb = self._neighbours(U[i])
                if not len(nb):
                    continue
                v = self.score(acq, nb)
                k = int(np.argmax(v))
                if v[k] > val[i] + 1e-12:
                    U[i], val[i], improved = nb[k], v[k], True
            if not improved:
                break
        return Scored.of(U, val)

    def _neighbours(self, u: np.ndarray) -> np.ndarray:
        out = []
        for j in self.discrete:
            if np.isnan(u[j]):
                continue
            dim = self.space.dims[j]
            L = int(dim.levels)
            cur = min(int(u[j] * L), L - 1)
            others = range(L) if dim.kind == "categorical" else (cur - 1, cur + 1)
            for k in others:
                if k != cur and 0 <= k < L:
                    v = u.copy()
                    v[j] = (k + 0.5) / L
                    out.append(v)
        if not out:
            return np.empty((0, len(u)))
        return canonical(self.space, np.array(out))
