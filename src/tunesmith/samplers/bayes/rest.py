"""A model step on the held parameters: a separable quadratic in a shrinking trust region.

Once the automatic focus (:mod:`.focus`) has stalled, its steps on *the rest* (the held
parameters ``H``, ``h = |H|``) move them near the incumbent while the relevant ones (``R``)
keep the incumbent's values. The GP cannot resolve parameters with small effects (their
lengthscales say "irrelevant"), so these steps are modelled apart, as a BOBYQA-like local
phase:

    y_i = c_g(i) + sum_{k in H} a_k t_ik + b_k t_ik^2,   t_ik = u_ik - u*_k

``u*``: the incumbent; ``g(i)``: the group of trial ``i``, the completed trials with the same
values on ``R`` (a step on the rest shares its group's values there, so ``c_g`` absorbs
whatever ``R`` contributes and no model of it is needed). ``a, b`` (2h) are fitted by least
squares within groups (ridge-stabilized); the step goes to the model's minimizer, per
coordinate, inside a box of side ``side`` around ``u*``. The side halves after every
``shrink_after`` failed steps in a row (the trials of the incumbent's group that came after
it), as a trust region shrinks on failure; a gain resets it (a new incumbent, no trial after
it). With fewer than ``h / 2`` within-group differences, the step is uniform in the box
(a design for the model).

Notation as in :mod:`.encoding` (``U``: unit rows, NaN = inactive).
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 1.0 / 64


def groups(U: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """(n,) int: the group of each row, rows with equal values on ``relevant`` together."""
    keys = np.round(np.where(np.isnan(U[:, relevant]), -1.0, U[:, relevant]), 12)
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def key_dims(U: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The relevant coordinates that define the groups: those of ``relevant`` on which no two
    trials differ alone (a parameter that joined the relevant ones after steps on the rest
    moved it is left out, so those steps stay one group and it joins the model instead)."""
    key = relevant.copy()
    for j in np.flatnonzero(relevant):
        fewer = key.copy()
        fewer[j] = False
        if fewer.any() and dof(groups(U, fewer)) > dof(groups(U, key)):
            key = fewer
    return key


def dof(g: np.ndarray) -> int:
    """Within-group differences: rows minus groups."""
    return len(g) - len(np.unique(g))


def trust_side(U: np.ndarray, losses: np.ndarray, key: np.ndarray, side: float, shrink_after: int) -> float:
    """The box side: ``side`` halved once per ``shrink_after`` trials of the incumbent's group
    after the incumbent (failed steps since the last gain), at least :data:`MIN_SIDE`."""
    best = int(np.argmin(losses))
    g = groups(U, key)
    fails = int(np.sum(g[best + 1:] == g[best]))
    return max(side * 0.5 ** (fails // shrink_after), MIN_SIDE)


def fit(U: np.ndarray, losses: np.ndarray, key: np.ndarray, model: np.ndarray, shared: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, int]:
    """(a, b, dof): per ``model`` coordinate, the linear and quadratic coefficients around the
    incumbent (each (m,)), fitted within the groups of equal values on ``key``, and the number
    of within-group differences behind them. The ``shared`` ones (a mask over ``model``) have
    one curvature in common, so ``m`` parameters take about ``m + 1`` steps to fit, not ``2m``."""
    Phi, y, g = within_groups(U, losses, key, model, shared)
    beta = ridge(Phi, y)
    m = int(model.sum())
    b = np.full(m, beta[-1])
    b[~shared] = beta[m:-1]
    return beta[:m], b, dof(g)


def centre_error(U: np.ndarray, losses: np.ndarray, key: np.ndarray, model: np.ndarray, shared: np.ndarray
                 ) -> np.ndarray | None:
    """(m,) the standard errors of the fitted centres ``-a / 2b`` of the ``model`` coordinates
    (the fit of :func:`fit`, by least squares within groups, delta method), or None while the
    fit cannot tell them: fewer within-group differences than unknowns plus two, or a
    curvature not positive at three standard errors."""
    Phi, y, g = within_groups(U, losses, key, model, shared)
    n, p = dof(g), Phi.shape[1]
    G = Phi.T @ Phi
    if n < p + 2 or not shared.any() or not np.isfinite(G).all() or float(np.trace(G)) <= 0.0:
        return None
    inv = np.linalg.pinv(G + 1e-12 * float(np.trace(G)) / p * np.eye(p))
    beta = inv @ Phi.T @ y
    s2 = float(np.sum((y - Phi @ beta) ** 2)) / (n - p)
    cov = s2 * inv
    m = int(model.sum())
    bi = np.full(m, p - 1)
    bi[~shared] = m + np.arange(int((~shared).sum()))
    a, b = beta[:m], beta[bi]
    var_b = cov[bi, bi]
    if np.any(b <= 3.0 * np.sqrt(np.maximum(var_b, 0.0))):
        return None
    ia = np.arange(m)
    # c = -a / (2b): dc/da = -1/(2b), dc/db = a/(2b^2)
    var_c = (cov[ia, ia] / (4 * b**2) + a**2 * var_b / (4 * b**4) - 2 * a * cov[ia, bi] / (4 * b**3))
    return np.sqrt(np.maximum(var_c, 0.0))


def within_groups(U: np.ndarray, losses: np.ndarray, key: np.ndarray, model: np.ndarray, shared: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's features (the ``model`` coordinates around the incumbent, their squares, the
    ``shared`` ones' summed) and the losses, both centred within the groups of equal values on
    ``key``, and the groups."""
    t = np.nan_to_num(U[:, model] - U[int(np.argmin(losses)), model])
    Phi = np.hstack([t, t[:, ~shared] ** 2, np.sum(t[:, shared] ** 2, axis=1, keepdims=True)])
    y = np.asarray(losses, dtype=float).copy()
    g = groups(U, key)
    for k in np.unique(g):
        rows = g == k
        Phi[rows] -= Phi[rows].mean(axis=0)
        y[rows] -= y[rows].mean()
    return Phi, y, g


def ridge(Phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge regression coefficients, the penalty chosen by leave-one-out error among
    ``trace(Phi^T Phi) / p`` times 1e-6 ... 1e2 (closed form through the hat matrix)."""
    G = Phi.T @ Phi
    scale = max(float(np.trace(G)) / max(len(G), 1), 1e-12)
    best, out = np.inf, np.zeros(len(G))
    for lam in scale * np.logspace(-6, 2, 5):
        inv = np.linalg.inv(G + lam * np.eye(len(G)))
        beta = inv @ Phi.T @ y
        lev = np.einsum("ij,jk,ik->i", Phi, inv, Phi)
        loo = float(np.sum(((y - Phi @ beta) / np.maximum(1.0 - lev, 1e-6)) ** 2))
        if loo < best:
            best, out = loo, beta
    return out


def minimize_separable(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """argmin over ``lo <= t <= hi`` of ``sum a t + b t^2`` (each coordinate on its own)."""
    inner = np.where(b > 0, -a / (2.0 * np.where(b > 0, b, 1.0)), lo)
    cand = np.stack([lo, hi, np.clip(inner, lo, hi)])
    return cand[np.argmin(a * cand + b * cand**2, axis=0), np.arange(len(a))]


def step(U: np.ndarray, losses: np.ndarray, relevant: np.ndarray, held: np.ndarray, rng: np.random.Generator,
         *, side: float, shrink_after: int, sure: float = 0.0) -> np.ndarray:
    """The next point (d,): the incumbent with its ``held`` coordinates stepped (unit rows ``U``
    of the completed trials and their ``losses``, in trial order; ``held``: numeric and active
    at the incumbent, not ``relevant``)."""
    u = U[int(np.argmin(losses))].copy()
    key = key_dims(U, relevant)
    model = ~key & (held | relevant) & ~np.isnan(u)
    half = trust_side(U, losses, key, side, shrink_after) / 2.0
    lo, hi = np.maximum(-half, -u[held]), np.minimum(half, 1.0 - u[held])
    a, b, n = fit(U, losses, key, model, held[model])
    if n < max(1, int(held.sum()) // 2):
        t = lo + (hi - lo) * rng.random(int(held.sum()))
    else:
        t = minimize_separable(a[held[model]], b[held[model]], lo, hi)
        se = centre_error(U, losses, key, model, held[model]) if sure > 0 else None
        if se is None or not sure_of(se[held[model]], sure):
            t = np.clip(t + (hi - lo) / 4.0 * rng.uniform(-1.0, 1.0, len(t)), lo, hi)  # varied, so b stays identifiable
    u[held] = u[held] + t
    return u


def sure_of(se: np.ndarray, sure: float) -> bool:
    """Whether there are centres and every one's standard error is at most ``sure``."""
    return bool(se.size) and bool(np.all(np.isfinite(se))) and float(np.max(se)) <= sure


def pinned(U: np.ndarray, losses: np.ndarray, relevant: np.ndarray, held: np.ndarray, *, side: float,
           sure: float) -> np.ndarray | None:
    """The incumbent with its ``held`` coordinates at the model's minimizer in the box of side
    ``side`` around it, if every held centre's standard error (:func:`centre_error`) is at most
    ``sure``; None otherwise (a focused turn then holds the incumbent's values)."""
    u = U[int(np.argmin(losses))].copy()
    key = key_dims(U, relevant)
    model = ~key & (held | relevant) & ~np.isnan(u)
    if not held.any():
        return None
    se = centre_error(U, losses, key, model, held[model])
    if se is None or not sure_of(se[held[model]], sure):
        return None
    a, b, _ = fit(U, losses, key, model, held[model])
    half = side / 2.0
    lo, hi = np.maximum(-half, -u[held]), np.minimum(half, 1.0 - u[held])
    u[held] = u[held] + minimize_separable(a[held[model]], b[held[model]], lo, hi)
    return u
