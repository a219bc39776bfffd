"""Gaussian-process model: output warping, marginal-likelihood fit, posterior.

Notation as in :mod:`.encoding` and :mod:`.kernel`. Hyperparameters are kept
as one vector ``theta = [log l (d), log s, log noise]`` of shape (d + 2,).

Priors (inputs on the unit cube, outputs standardized):

    log l_j   ~ N(0, 3^2)      (weak: a lengthscale of the whole range is typical;
                                a prior pulling lengthscales long, as in
                                Hvarfner et al. 2024, stalled on Hartmann-6)
    plus, on x_j = 1 / l_j^2, the penalty a (x_j + 1 / x_j) (``ls_penalty``,
    default a = 0.1), which keeps lengthscales near the unit range unless the
    data insist: with few points, a GP free to pick very short lengthscales
    fits every bump, becomes uncertain everywhere and spends trials exploring
    corners (measured on BBOB d = 5 and 10: mean regret@50 0.103 -> 0.088)
    log s     ~ N(0, 2^2)
    log noise ~ N(-4, 2^2)     noise >= 1e-6
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.stats

from .kernel import matern52, matern52_dr2, scaled_r2, sqdists

_NOISE_MIN = 1e-6


def warp(losses: np.ndarray, how: str = "power") -> np.ndarray:
    """Order-preserving transform of losses to roughly standard-normal values.

    "power" fits a Yeo-Johnson transform (tames heavy tails such as a few
    diverged runs), "rank" maps ranks to normal quantiles, "none" only
    standardizes. ("auto" is the sampler's choice between "power" and "none",
    see :func:`power_warp`.)
    """
    y = np.asarray(losses, dtype=float)
    if y.size < 2 or np.ptp(y) == 0:
        return np.zeros_like(y)
    if how == "rank":
        ranks = scipy.stats.rankdata(y)
        z = np.asarray(scipy.stats.norm.ppf((ranks - 0.5) / y.size))
        return (z - z.mean()) / z.std()
    if how == "power":
        return power_warp(y)[0]
    return (y - y.mean()) / y.std()


def half_rank(losses: np.ndarray) -> np.ndarray:
    """Losses worse than the median replaced by the normal quantiles of their ranks, scaled by
    the spread of the better half around the median (the better half is kept as it is): a few
    collapsed configurations (a score at chance level) no longer dwarf the differences among the
    good ones that the model must tell apart. Order-preserving; unchanged when the better half
    does not vary or there are fewer than 4 losses."""
    y = np.asarray(losses, dtype=float)
    if y.size < 4:
        return y
    med = float(np.median(y))
    good = y[y <= med]
    spread = float(np.sqrt(np.mean((good - med) ** 2)))
    worse = y > med
    if spread == 0 or not worse.any():
        return y
    out = y.copy()
    q = (scipy.stats.rankdata(y)[worse] - 0.5) / y.size
    out[worse] = med + spread * np.asarray(scipy.stats.norm.ppf(q))
    return out


def _yj(x: np.ndarray, lmb: float) -> np.ndarray:
    pos = x >= 0
    out = np.empty_like(x)
    out[pos] = np.log1p(x[pos]) if abs(lmb) < 1e-8 else np.expm1(lmb * np.log1p(x[pos])) / lmb
    neg = ~pos
    out[neg] = (-np.log1p(-x[neg]) if abs(lmb - 2) < 1e-8
                else -np.expm1((2 - lmb) * np.log1p(-x[neg])) / (2 - lmb))
    return out


def _yj_lambda(x: np.ndarray) -> float:
    """Maximum-likelihood Yeo-Johnson lambda of ``x`` in [-2, 2] (as
    ``scipy.stats.yeojohnson``, without its per-call overhead)."""
    tail = float(np.sum(np.sign(x) * np.log1p(np.abs(x))))

    def neg_llf(lmb: float) -> float:
        var = np.var(_yj(x, lmb))
        return np.inf if var <= 0 else float(0.5 * len(x) * np.log(var) - (lmb - 1) * tail)

    return float(scipy.optimize.fminbound(neg_llf, -2.0, 2.0, xtol=1e-5))


def power_warp(losses: np.ndarray) -> tuple[np.ndarray, float]:
    """``warp(losses, "power")`` and the log-determinant of its Jacobian with
    respect to the standardized losses (0 where it falls back to standardizing),
    so that GP likelihoods of warped and merely standardized losses compare."""
    y = np.asarray(losses, dtype=float)
    if y.size < 2 or np.ptp(y) == 0:
        return np.zeros_like(y), 0.0
    x = (y - y.mean()) / y.std()
    lmb = _yj_lambda(x)
    z = _yj(x, lmb)
    sd = float(z.std())
    if not np.all(np.isfinite(z)) or sd == 0:
        return x, 0.0
    slope = np.where(x >= 0, (lmb - 1) * np.log1p(np.abs(x)), (1 - lmb) * np.log1p(np.abs(x)))
    return (z - z.mean()) / sd, float(slope.sum() - len(x) * np.log(sd))


@dataclass(frozen=True)
class Prior:
    """Gaussian priors on the log hyperparameters (see module doc)."""

    d: int
    #: strength a of the extra penalty a (x + 1/x) on x = 1/l^2, which keeps
    #: lengthscales near the unit range when data are few (0 turns it off)
    ls_penalty: float = 0.0

    @property
    def mean(self) -> np.ndarray:
        return np.r_[np.zeros(self.d), 0.0, -4.0]

    @property
    def std(self) -> np.ndarray:
        return np.r_[np.full(self.d, 3.0), 2.0, 2.0]

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [(np.log(5e-3), np.log(1e2))] * self.d + [(np.log(1e-2), np.log(1e2)), (np.log(_NOISE_MIN), 0.0)]

    def default(self) -> np.ndarray:
        return np.r_[np.full(self.d, np.log(0.5)), 0.0, np.log(1e-3)]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = np.array(self.bounds).T
        return np.clip(self.mean + self.std * rng.standard_normal(self.d + 2), lo, hi)


def _cholesky(K: np.ndarray) -> np.ndarray:
    jitter = 0.0
    for _ in range(6):
        try:
            return np.asarray(scipy.linalg.cholesky(K + jitter * np.eye(len(K)), lower=True))
        except np.linalg.LinAlgError:
            jitter = max(jitter * 10, 1e-8)
    raise np.linalg.LinAlgError("covariance matrix is not positive definite")


class GP:
    """A zero-mean GP posterior on standardized outputs.

    Args:
        Z, A: (n, d) training inputs and activity (see :mod:`.encoding`).
        y: (n,) standardized training outputs.
        theta: (d + 2,) log hyperparameters.
        is_cat: (d,) which coordinates are categorical.
        cond: whether any coordinate can be inactive.
    """

    def __init__(
        self, Z: np.ndarray, A: np.ndarray, y: np.ndarray, theta: np.ndarray,
        is_cat: np.ndarray, cond: bool,
    ) -> None:
        self.Z, self.A, self.y = Z, A, np.asarray(y, dtype=float)
        self.theta, self.is_cat, self.cond = np.asarray(theta, dtype=float), is_cat, cond
        d = Z.shape[1]
        self.inv_l2 = np.exp(-2.0 * self.theta[:d])
        self.signal = float(np.exp(self.theta[d]))
        self.noise = float(np.exp(self.theta[d + 1]))
        self.K = self.kernel(Z, A, Z, A) + self.noise * np.eye(len(Z))
        self.L = _cholesky(self.K)
        self.alpha = scipy.linalg.cho_solve((self.L, True), self.y)

    def kernel(self, Z1: np.ndarray, A1: np.ndarray, Z2: np.ndarray, A2: np.ndarray) -> np.ndarray:
        """(n1, n2) prior covariance of the latent function."""
        return self.signal * matern52(scaled_r2(Z1, A1, Z2, A2, self.is_cat, self.cond, self.inv_l2))

    def predict(self, Z: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (m,) and latent variance (m,) at (Z, A) (m, d)."""
        Ks = self.kernel(Z, A, self.Z, self.A)
        mu = Ks @ self.alpha
        v = scipy.linalg.solve_triangular(self.L, Ks.T, lower=True)
        var = np.maximum(self.signal - np.einsum("ij,ij->j", v, v), 1e-12)
        return mu, var

    def train_mean(self) -> np.ndarray:
        """Posterior mean (n,) at the training points, in O(n): K_s alpha = y - noise alpha."""
        return self.y - self.noise * self.alpha

    def predict_grad(
        self, Z: np.ndarray, A: np.ndarray, dims: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean (m,), variance (m,) and their gradients (m, len(dims)) along
        the numeric coordinates ``dims`` (zero where the point is inactive)."""
        r2 = scaled_r2(Z, A, self.Z, self.A, self.is_cat, self.cond, self.inv_l2)
        Ks = self.signal * matern52(r2)
        dk = self.signal * matern52_dr2(r2)  # (m, n)
        mu = Ks @ self.alpha
        Kinv_ks = scipy.linalg.cho_solve((self.L, True), Ks.T).T  # (m, n)
        var = np.maximum(self.signal - np.einsum("ij,ij->i", Ks, Kinv_ks), 1e-12)
        dmu = np.zeros((len(Z), len(dims)))
        dvar = np.zeros_like(dmu)
        for c, j in enumerate(dims):
            diff = 2.0 * self.inv_l2[j] * (Z[:, j][:, None] - self.Z[:, j][None, :])
            if self.cond:
                diff = diff * (A[:, j][:, None] & self.A[:, j][None, :])
            g = dk * diff  # dK*/dz_j, (m, n)
            dmu[:, c] = g @ self.alpha
            dvar[:, c] = -2.0 * np.einsum("ij,ij->i", g, Kinv_ks)
        return mu, var, dmu, dvar


def neg_log_posterior(
    theta: np.ndarray, D: np.ndarray, y: np.ndarray, prior: Prior
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient.

    ``D`` is the (d, n, n) stack of per-coordinate squared differences.
    """
    d, n = D.shape[0], len(y)
    inv_l2, s, noise = np.exp(-2.0 * theta[:d]), np.exp(theta[d]), np.exp(theta[d + 1])
    r2 = np.tensordot(inv_l2, D, axes=1)
    M = matern52(r2)
    K = s * M + noise * np.eye(n)
    try:
        L = scipy.linalg.cholesky(K, lower=True)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = scipy.linalg.cho_solve((L, True), y)
    nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * np.log(2 * np.pi)
    W = np.outer(alpha, alpha) - scipy.linalg.cho_solve((L, True), np.eye(n))
    G = W * (s * matern52_dr2(r2))
    grad = np.empty_like(theta)
    grad[:d] = inv_l2 * np.tensordot(D, G, axes=([1, 2], [0, 1]))  # -0.5 tr(W dK/dlog l)
    grad[d] = -0.5 * np.sum(W * (s * M))
    grad[d + 1] = -0.5 * noise * np.trace(W)
    z = (theta - prior.mean) / prior.std
    nlp, g = 0.5 * z @ z, z / prior.std
    if prior.ls_penalty:
        up, down = np.exp(2.0 * theta[:d]), np.exp(-2.0 * theta[:d])
        nlp += prior.ls_penalty * float(np.sum(up + down))
        g = g.copy()
        g[:d] += 2.0 * prior.ls_penalty * (up - down)
    return float(nll + nlp), grad + g


def fit_theta(
    Z: np.ndarray, A: np.ndarray, y: np.ndarray, is_cat: np.ndarray, cond: bool,
    starts: Sequence[np.ndarray], maxiter: int = 100, ls_penalty: float = 0.0,
) -> np.ndarray:
    """Maximum a posteriori hyperparameters by L-BFGS-B from each start."""
    return fit_theta_value(Z, A, y, is_cat, cond, starts, maxiter, ls_penalty)[0]


def fit_theta_value(
    Z: np.ndarray, A: np.ndarray, y: np.ndarray, is_cat: np.ndarray, cond: bool,
    starts: Sequence[np.ndarray], maxiter: int = 100, ls_penalty: float = 0.0,
) -> tuple[np.ndarray, float]:
    """:func:`fit_theta` and its negative log posterior."""
    prior = Prior(Z.shape[1], ls_penalty)
    D = sqdists(Z, A, Z, A, is_cat, cond)
    best, best_f = np.asarray(starts[0], dtype=float), np.inf
    lo, hi = np.array(prior.bounds).T
    for x0 in starts:
        res = scipy.optimize.minimize(
            neg_log_posterior, np.clip(x0, lo, hi), args=(D, y, prior), jac=True,
            method="L-BFGS-B", bounds=prior.bounds, options={"maxiter": maxiter},
        )
        if np.isfinite(res.fun) and res.fun < best_f:
            best, best_f = np.asarray(res.x), float(res.fun)
    return best, best_f
