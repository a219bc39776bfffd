"""The Bayesian-optimization sampler: wires design, model, acquisition and optimizer.

Per suggestion (notation in :mod:`.encoding`):

1. fewer than ``n_init`` observations: the next point of the initial design
   (the center of the space, then quasi-random points);
2. else: losses of completed trials (failed, pruned and paused ones count as the
   worst loss seen, so the model learns to avoid regions that fail or that a
   pruner stopped) are warped and
   a GP is fitted on at most ``max_train`` of them; hyperparameters (and, with
   ``warping="auto"``, the warping: Yeo-Johnson or none, whichever makes the
   losses likelier) are refit by marginal likelihood when the data grew by
   ``refit_every`` (warm started);
3. pending trials (running, waiting; not paused ones: a pruner stopped them,
   and one resumed is running again) are added as fantasies at their
   posterior mean (kriging believer), so parallel workers spread out;
4. the acquisition (log EI, prior weighted) is maximized and the best
   candidate not yet tried is returned.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...space import Space
from ...trial import Direction, FrozenTrial, TrialState
from ..base import EncodedTrials, Sampler, Suggestion
from . import local
from .acquisition import Acquisition, PriorDensity
from .design import initial_point
from .encoding import Encoding, canonical, row_keys
from .focus import acq_optimizer
from .model import GP, Prior, fit_theta_value, half_rank, power_warp, warp
from .options import BayesOptions


class BayesSampler(Sampler):
    """Gaussian-process Bayesian optimization (``sampler="bayes"``).

    Matern-5/2 kernel with one lengthscale per parameter, a categorical
    (Hamming) kernel for choices, inactive conditional parameters left out of
    distances, learned noise, log expected improvement, priors (piBO) and
    fantasies for parallel workers. Options: see :class:`BayesOptions`.
    """

    name = "bayes"

    def __init__(self, seed: int | None = None, **options: Any) -> None:
        super().__init__(seed)
        self.options = BayesOptions.build(options)
        self._theta: np.ndarray | None = None
        self._fit_n = 0
        self._fit_spread = 0.0
        self._fit_key = ""
        self._warping = ""
        self._encoded = EncodedTrials()
        self._loss_exp = 0  # the model's losses were divided by 2**_loss_exp (see in_safe_range)

    def describe(self) -> dict[str, Any]:
        defaults = BayesOptions()
        changed = {k: v for k, v in vars(self.options).items() if getattr(defaults, k) != v}
        return {**super().describe(), **changed}

    @property
    def model_warping(self) -> str | None:
        """The output warping of the last model ("none", "power" or "rank";
        with ``warping="auto"``, the one chosen); None before the first model."""
        return self._warping or None

    def n_init(self, space: Space) -> int:
        """Trials of the initial design: the center, then min(max(5, d + 1), 20) Sobol points."""
        if self.options.n_init is not None:
            return self.options.n_init
        return 1 + min(max(5, space.ndim + 1), 20)

    def suggest(self, space: Space, trials: Sequence[FrozenTrial], direction: Direction) -> Suggestion:
        with one_blas_thread():
            return self._suggest(space, trials, direction)

    def _suggest(self, space: Space, trials: Sequence[FrozenTrial], direction: Direction) -> Suggestion:
        if space.ndim == 0:
            return Suggestion(space.decode([]))
        rows = self._encode(space, trials)
        taken = set(row_keys(rows)) if trials else set()
        prior = PriorDensity.of(space)
        done = [t for t in trials if t.state is TrialState.COMPLETE]
        bad = [t for t in trials if t.state in _STOPPED]
        losses, self._loss_exp = in_safe_range(np.array([direction.sign() * float(t.value) for t in done]))  # type: ignore[arg-type]
        if self.options.half_rank:
            losses = half_rank(losses)
        if len(done) + len(bad) < self.n_init(space) or len(done) < 2 or np.ptp(losses) == 0:
            return self._design(space, len(trials), taken, prior)
        U = self._model_point(space, trials, done, bad, losses, rows, taken, prior)
        if U is None:
            return self._design(space, len(trials), taken, prior)
        return Suggestion(space.decode(U), unique=True)

    def _encode(self, space: Space, trials: Sequence[FrozenTrial]) -> np.ndarray:
        """``space.encode_many`` of the trials' params, cached per trial number."""
        return self._encoded.rows(space, trials)

    # -- initial design ----------------------------------------------------
    def _design(self, space: Space, index: int, taken: set[bytes], prior: PriorDensity | None) -> Suggestion:
        for i in range(index, index + 64):
            u = canonical(space, initial_point(space, i, self.seed, prior, self.rng)[None, :])
            if self._held(space, u[0]) not in taken:
                return Suggestion(space.decode(u[0]), unique=True)
        return Suggestion(space.sample(self.rng), unique=False)

    # -- model-based point -------------------------------------------------
    def _model_point(
        self, space: Space, trials: Sequence[FrozenTrial], done: list[FrozenTrial],
        bad: list[FrozenTrial], losses: np.ndarray, rows: np.ndarray, taken: set[bytes],
        prior: PriorDensity | None,
    ) -> np.ndarray | None:
        enc = Encoding.of(space)
        obs = done + (bad if self.options.failure_penalty else [])
        loss = np.r_[losses, np.full(len(obs) - len(done), losses.max())]
        U_obs = self._encode(space, obs)
        keep = self._training_subset(U_obs, loss)
        U_tr = U_obs[keep]
        Z, A = enc.to_gp(U_tr)
        theta, y = self._hyperparameters(space, Z, A, loss[keep], enc, len(obs))
        gp = GP(Z, A, y, theta, enc.is_cat, enc.conditional)
        best = self._incumbent(gp, int(np.sum(keep < len(done)))) - self._margin(losses)
        gp = self._with_fantasies(space, enc, gp, trials)
        weight = self.options.prior_beta / max(len(obs), 1) if prior is not None else 0.0
        acq = Acquisition(gp, best, prior, weight)
        anchors = U_obs[np.argsort(loss[: len(done)], kind="stable")[:5]]
        region = self._trust_region(enc, losses, anchors[0], gp.theta[: space.ndim])
        optimizer, region = acq_optimizer(space, enc, self.options, self.rng, theta=theta, n_obs=len(obs),
                                          index=len(trials), anchors=anchors, losses=losses, region=region,
                                          rows=U_obs[: len(done)])
        found = optimizer.maximize(acq, anchors, region)
        near = self._pending_rows(space, trials)
        for u in found.U:
            if not np.isfinite(u[~np.isnan(u)]).all() or self._held(space, u) in taken:
                continue
            if len(near) and np.min(np.nanmax(np.abs(near - u), axis=1)) < 1e-3:
                continue  # a pending trial is already there
            if enc.conditional and self.options.branch_design:
                u = self._branch_design(space, enc, u, rows, taken)
            return u
        return None

    @staticmethod
    def _held(space: Space, u: np.ndarray) -> bytes:
        """The key of the configuration ``u`` decodes to: two points of a range that holds few
        floats (``Float(1.0, 1.0000000000000002)``) decode alike, and the study could not claim it."""
        return row_keys(space.encode(space.decode(u))[None, :])[0]

    def _margin(self, losses: np.ndarray) -> float:
        """``ei_margin`` on the model's standardized scale (0 while the losses do not vary)."""
        spread = float(np.std(losses))
        if not (self.options.ei_margin and spread > 0):
            return 0.0
        try:  # ei_margin is in the objective's units, the losses were divided by 2**_loss_exp
            return math.ldexp(self.options.ei_margin / spread, -self._loss_exp)
        except OverflowError:  # a margin of more than 1e308 standard deviations: none is reachable
            return 1e3

    def _incumbent(self, gp: GP, n_done: int) -> float:
        """EI's reference (warped) loss: the best of the first ``n_done`` training rows (the
        completed trials), observed or, with ``plugin_incumbent``, the GP's posterior mean
        (unless ``plugin_max_noise`` says the model calls too much of the losses noise)."""
        if n_done == 0:
            return float(gp.y.min())
        gate = self.options.plugin_max_noise
        if self.options.plugin_incumbent and (gate is None or gp.noise < gate * gp.signal):
            return float(gp.train_mean()[:n_done].min())
        return float(gp.y[:n_done].min())

    def _trust_region(self, enc: Encoding, losses: np.ndarray, incumbent: np.ndarray, log_ls: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray] | None:
        """The box to search when progress stalled (``local_search``; see :mod:`.local`)."""
        length = local.side(local.stalled(losses), len(log_ls)) if self.options.local_search else None
        return None if length is None else local.box(incumbent, np.exp(log_ls), enc.numeric, length)

    def _branch_design(
        self, space: Space, enc: Encoding, u: np.ndarray, rows: np.ndarray, taken: set[bytes]
    ) -> np.ndarray:
        """In a conditional space, a branch (the trials with the same active
        parameters) that holds fewer than 1 + its numeric parameters trials
        gets its next quasi-random point instead of the model's: with a
        handful of points the model's uncertainty peaks at the branch's
        corners, and corners are where branches such as an SVM kernel with an
        extreme C or gamma fail. ``rows``: the encoded trials (all states)."""
        active = ~np.isnan(u)
        n_b = int(np.sum(np.all(~np.isnan(rows) == active, axis=1)))
        numeric = active & enc.numeric
        if n_b >= 1 + int(numeric.sum()):
            return u
        salt = int.from_bytes(np.packbits(active).tobytes().ljust(8, b"\0")[:8], "little")
        for i in range(n_b, n_b + 16):
            v = initial_point(space, i, (self.seed + salt) % 2**63, None, self.rng)
            w = canonical(space, np.where(numeric, v, u)[None, :])
            if np.array_equal(~np.isnan(w[0]), active) and row_keys(w)[0] not in taken:
                return w[0]
        return u

    def _pending_rows(self, space: Space, trials: Sequence[FrozenTrial]) -> np.ndarray:
        pend = _pending(trials)
        return self._encode(space, pend) if pend else np.empty((0, space.ndim))

    def _training_subset(self, U: np.ndarray, loss: np.ndarray) -> np.ndarray:
        """Indices (sorted: completed first) of at most ``max_train`` points:
        the best half, the incumbent's nearest neighbours, and a random rest."""
        n, cap = len(loss), self.options.max_train
        if n <= cap:
            return np.arange(n)
        order = np.argsort(loss, kind="stable")
        chosen = set(order[: cap // 2].tolist())
        filled = np.where(np.isnan(U), -1.0, U)
        dist = np.sum((filled - filled[order[0]]) ** 2, axis=1)
        for i in np.argsort(dist, kind="stable"):
            if len(chosen) >= 3 * cap // 4:
                break
            chosen.add(int(i))
        rest = np.setdiff1d(np.arange(n), np.fromiter(chosen, int))
        extra = self.rng.choice(rest, size=cap - len(chosen), replace=False)
        return np.sort(np.r_[np.fromiter(chosen, int), extra])

    @staticmethod
    def _target(loss: np.ndarray, how: str) -> tuple[np.ndarray, float]:
        """The GP target for warping ``how`` and its log-Jacobian relative to
        the standardized losses (0 unless "power")."""
        return power_warp(loss) if how == "power" else (warp(loss, how), 0.0)

    def _hyperparameters(
        self, space: Space, Z: np.ndarray, A: np.ndarray, loss: np.ndarray, enc: Encoding, n_obs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hyperparameters and the GP target (with ``warping="auto"``, of the
        warping whose fitted model makes the standardized losses likeliest,
        Jacobian included). Refitted when the observations grew by
        ``refit_every`` or the losses' range more than doubled since the last
        fit: a diverged run arriving between two refits must not leave the
        others squeezed flat. Between refits only the chosen target is built."""
        key, spread = space.to_json(), float(np.ptp(loss))
        candidates = ("none", "power") if self.options.warping == "auto" else (self.options.warping,)
        stale = self._theta is None or self._fit_key != key or self._warping not in candidates
        grown = n_obs - self._fit_n >= max(1.0, self.options.refit_every * n_obs) or n_obs < self._fit_n
        if not (stale or grown or spread > 2.0 * self._fit_spread):
            assert self._theta is not None
            return self._theta, self._target(loss, self._warping)[0]
        pri = Prior(space.ndim)
        starts = [pri.default()] if stale else [self._theta, pri.default()]
        if n_obs <= 60:
            starts.append(pri.sample(self.rng))
        best, y_best = np.inf, np.empty(0)
        for how in candidates:
            y, logjac = self._target(loss, how)
            theta, nlp = fit_theta_value(
                Z, A, y, enc.is_cat, enc.conditional, starts, ls_penalty=self.options.ls_penalty  # type: ignore[arg-type]
            )
            if nlp - logjac < best:
                best, y_best, self._theta, self._warping = nlp - logjac, y, theta, how
        self._fit_n, self._fit_key, self._fit_spread = n_obs, key, spread
        assert self._theta is not None
        return self._theta, y_best

    def _with_fantasies(self, space: Space, enc: Encoding, gp: GP, trials: Sequence[FrozenTrial]) -> GP:
        pend = _pending(trials)
        if not pend:
            return gp
        Zp, Ap = enc.to_gp(self._encode(space, pend))
        mu, _ = gp.predict(Zp, Ap)
        theta = gp.theta.copy()
        theta[-1] = min(theta[-1], np.log(1e-4))  # a fantasy is believed: its variance collapses
        return GP(np.vstack([gp.Z, Zp]), np.vstack([gp.A, Ap]), np.r_[gp.y, mu], theta, enc.is_cat, enc.conditional)




_CONTROLLER: list[Any] = []

#: trials that ended without a value of their own, or that a pruner stopped: the worst loss seen (failure_penalty).
#: A paused trial is one (as TPE models it as a pruned one): taken for a pending one, it was a fantasy at the
#: model's mean for good, though the pruner had found it worse than those it let go on
_STOPPED = frozenset({TrialState.FAILED, TrialState.PRUNED, TrialState.PAUSED})


def _pending(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials running or waiting to run (a paused one is stopped, not pending)."""
    return [t for t in trials if not t.state.is_finished and t.state is not TrialState.PAUSED]


#: losses whose largest magnitude lies outside [2**-500, 2**500] are scaled into it: their squares
#: (a variance) would overflow to inf (1e300) or underflow to 0 (subnormals such as 1e-320)
_SAFE_EXPONENT = 500


def in_safe_range(losses: np.ndarray) -> tuple[np.ndarray, int]:
    """``losses`` divided by a power of two (exact) that brings their largest magnitude near 1 when it
    is beyond 2**+-500, and that power's exponent (0 otherwise: the model, which standardizes its
    losses, sees the same values)."""
    top = float(np.max(np.abs(losses))) if len(losses) else 0.0
    exponent = math.frexp(top)[1]
    if top == 0.0 or abs(exponent) <= _SAFE_EXPONENT:
        return losses, 0
    return np.ldexp(losses, -exponent), exponent


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS runs on one thread inside: the model's matrices (at most ``max_train`` points) are
    too small to gain from more, and threads contending for the cores cost several times the
    work (benchmarks/samplers.md, "Time per trial of the ask/tell loop"). The threads of the
    caller's own numeric code are restored on exit. Without threadpoolctl, nothing changes."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a core dependency; kept optional at run time
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())  # after numpy and scipy are loaded
    controller = _CONTROLLER[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
