"""Acquisition: log expected improvement, optionally weighted by user priors.

For a posterior mean mu (m,) and latent variance var (m,) on warped losses,
with incumbent ``best`` (the smallest warped loss observed),

    z = (best - mu) / sigma,     EI = sigma * h(z),   h(z) = phi(z) + z Phi(z)
    logEI = log sigma + log h(z)           (computed stably for z << 0)

A prior pi(x) on the parameters (``Prior`` in the space) multiplies EI by
pi(x)^(beta / n) (piBO): strong while few trials are known, fading as data
accumulate. Each factor of pi is a mixture of the user's belief and a uniform
floor, so a wrong prior costs a bounded amount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.special

from ...space import Categorical, Space
from .model import GP

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2 * math.pi)


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z Phi(z)), accurate from z = -1e10 to z = +40."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    pos = z > -1.0
    zp = z[pos]
    out[pos] = np.log(np.exp(-0.5 * zp * zp) * _INV_SQRT_2PI + zp * scipy.special.ndtr(zp))
    zn = z[~pos]
    # phi(z) + z Phi(z) = phi(z) * (1 - |z| * sqrt(pi/2) * erfcx(|z|/sqrt2)), for z < -1
    mid = zn > -1e4
    t = np.empty_like(zn)
    t[mid] = np.log1p(-np.abs(zn[mid]) * math.sqrt(math.pi / 2) * scipy.special.erfcx(np.abs(zn[mid]) / math.sqrt(2)))
    t[~mid] = -2.0 * np.log(np.abs(zn[~mid]))  # asymptotic: 1/z^2
    out[~pos] = -0.5 * zn * zn - _LOG_SQRT_2PI + t
    return out


def log_ei(mu: np.ndarray, var: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log EI (m,) and its derivatives with respect to mu and var (m,)."""
    sigma = np.sqrt(var)
    z = (best - mu) / sigma
    lh = log_h(z)
    ratio = np.exp(scipy.special.log_ndtr(z) - lh)  # h'(z) / h(z)
    d_mu = -ratio / sigma
    d_sigma = 1.0 / sigma - ratio * z / sigma
    return np.log(sigma) + lh, d_mu, d_sigma / (2.0 * sigma)


@dataclass(frozen=True)
class PriorDensity:
    """log pi(U) up to a constant, from the ``Prior`` of each parameter.

    ``center``/``width`` (d,) are in unit coordinates (NaN: no numeric prior);
    ``logw`` holds per categorical coordinate the log weights of its choices.
    """

    center: np.ndarray
    width: np.ndarray
    logw: dict[int, np.ndarray]
    floor: float = 0.05

    @classmethod
    def of(cls, space: Space) -> PriorDensity | None:
        d = space.ndim
        center, width = np.full(d, np.nan), np.full(d, np.nan)
        logw: dict[int, np.ndarray] = {}
        for j, name in enumerate(space.free):
            p = space[name]
            if p.prior is None:
                continue
            if isinstance(p, Categorical):
                w = np.ones(int(p.n_values))
                if p.prior.weight is not None:
                    w = np.array([float(p.prior.weight.get(c, 0.0)) for c in p.choices])
                elif p.prior.mode is not None:
                    w = np.full(len(w), 0.2 / max(len(w) - 1, 1))
                    w[p.index(p.prior.mode)] = 0.8
                w = w / w.max()
                logw[j] = np.log(cls.floor + (1 - cls.floor) * w)
            else:
                center[j], width[j] = p.to_unit(p.prior.mode), p.prior.width
        if not logw and np.isnan(center).all():
            return None
        return cls(center, width, logw)

    def __call__(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log pi (m,) and its gradient (m, d) in unit coordinates (0 where inactive)."""
        val = np.zeros(len(U))
        grad = np.zeros_like(U)
        for j in map(int, np.flatnonzero(~np.isnan(self.center))):
            u = U[:, j]
            act = ~np.isnan(u)
            with np.errstate(over="ignore"):  # a width of 1e-300: z overflows where the density is 0
                z = (np.where(act, u, self.center[j]) - self.center[j]) / self.width[j]
                g = np.exp(-0.5 * z * z)
                slope = np.where(g > 0, -z / self.width[j], 0.0)  # g * slope -> 0 as g -> 0 (inf * 0 was NaN)
            mix = self.floor + (1 - self.floor) * g
            val += np.where(act, np.log(mix), 0.0)
            grad[:, j] = np.where(act, (1 - self.floor) * g * slope / mix, 0.0)
        for j, lw in self.logw.items():
            u = U[:, j]
            act = ~np.isnan(u)
            idx = np.minimum((np.where(act, u, 0.0) * len(lw)).astype(int), len(lw) - 1)
            val += np.where(act, lw[idx], 0.0)
        return val, grad

    def sample(self, space: Space, U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Move the coordinates of (m, d) unit points that carry a prior onto draws from it."""
        U = U.copy()
        for j in map(int, np.flatnonzero(~np.isnan(self.center))):
            U[:, j] = np.clip(self.center[j] + self.width[j] * rng.standard_normal(len(U)), 0, 1)
        for j, lw in self.logw.items():
            w = np.exp(lw) - self.floor
            idx = rng.choice(len(lw), size=len(U), p=w / w.sum())
            U[:, j] = (idx + rng.random(len(U))) / len(lw)
        return U

    def mode(self, U: np.ndarray) -> np.ndarray:
        """(m, d) copy of U with every prior coordinate set to its mode."""
        U = U.copy()
        for j in map(int, np.flatnonzero(~np.isnan(self.center))):
            U[:, j] = self.center[j]
        for j, lw in self.logw.items():
            U[:, j] = (np.argmax(lw) + 0.5) / len(lw)
        return U


class Acquisition:
    """log EI at unit points, plus (beta / n) log pi when priors are given.

    Args:
        model: a fitted :class:`~.model.GP`.
        best: incumbent (smallest warped loss).
        prior: the prior density, or None.
        prior_weight: beta / n, the exponent on pi.
    """

    def __init__(self, model: GP, best: float, prior: PriorDensity | None, prior_weight: float) -> None:
        self.model = model
        self.best = best
        self.prior = prior
        self.prior_weight = prior_weight

    def value(self, Z: np.ndarray, A: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Acquisition (m,) at points given both as GP inputs and unit vectors."""
        mu, var = self.model.predict(Z, A)
        val = log_ei(mu, var, self.best)[0]
        if self.prior is not None and self.prior_weight > 0:
            val = val + self.prior_weight * self.prior(U)[0]
        return val

    def value_grad(
        self, Z: np.ndarray, A: np.ndarray, U: np.ndarray, dims: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition (m,) and gradient (m, len(dims)) along numeric ``dims``."""
        mu, var, dmu, dvar = self.model.predict_grad(Z, A, dims)
        val, g_mu, g_var = log_ei(mu, var, self.best)
        grad = g_mu[:, None] * dmu + g_var[:, None] * dvar
        if self.prior is not None and self.prior_weight > 0:
            pv, pg = self.prior(U)
            val = val + self.prior_weight * pv
            grad = grad + self.prior_weight * pg[:, dims]
        return val, grad
