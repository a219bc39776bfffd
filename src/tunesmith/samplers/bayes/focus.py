"""Automatic focus: with many parameters and enough trials, search the ones that matter.

The GP learns one lengthscale ``l_j`` per parameter; its relevance is the inverse
squared lengthscale ``x_j = 1 / l_j^2`` (how fast the objective can change along it).
In a space of ``d >= min_dims`` parameters, once ``n >= per_dim * d`` observations
are in, the parameters whose relevance is at least ``ratio`` times the largest are
*relevant*. If fewer than all are, the acquisition is maximized in the subspace of the
relevant ones: every candidate takes the incumbent's values (the best trial's) on
the others, which stay where the best configuration has them (as Dropout BO, Li et
al. 2017, fills the dimensions it does not search from the best point). One
suggestion in ``explore`` (every ``round(1 / explore)``-th) searches the whole
space, so a parameter wrongly judged irrelevant is still searched and its lengthscale
learned.

Once the relevant parameters have converged (since focus began, the best went
``patience = max(5, int(patience_frac * d))`` trials without gaining more than ``tol`` of
the losses' interquartile range), the held parameters may still have small effects that the
model cannot resolve: from then on every ``rest_every``-th suggestion (the others focused as
above, no more whole-space turns) is a step on *the rest*; with ``follow_gain``, a suggestion
after one that set a new best is of that one's kind instead (:meth:`FocusRule.gained`), so
a run of gaining model steps on the rest, or of gaining focused turns, is not interrupted.
A step on the rest is the acquisition maximized over
the held parameters in a box of side ``rest_side`` around the incumbent, the relevant
ones at the incumbent's values. A deterministic objective keeps whatever such a step
gains, which a model whose lengthscales call those parameters irrelevant would not find.
With ``rest_model`` (and the completed trials' rows given), the step is the minimizer of a
separable quadratic model of the held parameters instead, in a trust region that halves
after ``shrink_after`` failed steps (:mod:`.rest`). Once that model's fit tells every held
parameter's centre within ``sure`` (a standard error; :func:`.rest.centre_error`), with ``pin``
the focused turns hold the held parameters at the model's minimum (in the ``rest_side`` box)
instead of the incumbent's values, and a step on the rest whose incumbent already sits there is
a focused turn instead (:meth:`FocusRule.settled`): the small effects are kept without spending
turns on them.
The focused turns, from then on, refine: they search a box of side ``refine_side`` around the
incumbent on the relevant parameters (scaled by their lengthscales, as TuRBO's trust region in
:mod:`.local`), so a narrow basin found is resolved instead of left for the whole subspace.

Notation as in :mod:`.encoding`; ``theta = [log l (d), log s, log noise]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...space import Space
from . import local, rest
from .acquisition import Acquisition
from .encoding import Encoding, canonical
from .optimizer import AcqOptimizer, Scored
from .options import BayesOptions


@dataclass(frozen=True)
class FocusRule:
    """When and where the acquisition is searched in the subspace of relevant parameters."""

    min_dims: int = 12
    per_dim: float = 2.0
    ratio: float = 0.1
    explore: float = 0.25
    rest_side: float = 0.2
    tol: float = 1e-3
    rest_every: int = 2
    refine_side: float = 0.2
    rest_model: bool = True
    shrink_after: int = 2
    follow_gain: bool = True
    patience_frac: float = 0.25
    sure: float = 0.01
    pin: bool = True

    def relevant(self, theta: np.ndarray, d: int, n_obs: int, index: int) -> np.ndarray | None:
        """(d,) bool mask of relevant parameters, or None to search the whole space
        (few parameters, few observations, every parameter relevant, or an exploring turn)."""
        if d < self.min_dims or n_obs < self.per_dim * d:
            return None
        if self.explore > 0 and index % max(1, round(1 / self.explore)) == 0:
            return None
        return self._mask(theta, d)

    def _mask(self, theta: np.ndarray, d: int) -> np.ndarray | None:
        x = np.exp(-2.0 * np.asarray(theta[:d], dtype=float))
        mask = x >= self.ratio * x.max()
        return None if mask.all() else mask

    def rest(self, theta: np.ndarray, d: int, n_obs: int, index: int, losses: np.ndarray,
             rows: np.ndarray | None = None) -> np.ndarray | None:
        """Every ``rest_every``-th turn once the search has stalled (:meth:`stalled`, on
        ``losses``): the relevant mask, whose complement (the rest) takes a local step around
        the incumbent (:meth:`rest_box`); None: a turn as :meth:`relevant` says. With
        ``follow_gain`` and the completed trials' unit ``rows``, a turn after one that gained
        is of the same kind instead (:meth:`gained`)."""
        if not self.after_stall(losses, d, n_obs):
            return None
        mask = self._mask(theta, d)
        kind = self.gained(mask, rows, losses) if mask is not None and rows is not None else None
        if kind is not None:
            return mask if kind == "rest" else None
        return None if index % self.rest_every else mask

    def gained(self, relevant: np.ndarray, rows: np.ndarray, losses: np.ndarray) -> str | None:
        """"rest" if the last completed trial was a step on the rest (its values on the
        ``relevant`` parameters are an earlier trial's) and set a new best by more than ``tol``
        of the losses' interquartile range, "focus" if it was a focused turn (its held values
        are an earlier trial's) that did; None otherwise (or without ``follow_gain``): a
        turn that pays is followed by another of its kind, as a line search keeps a step
        that gains."""
        if not self.follow_gain or len(losses) < 3 or len(rows) != len(losses):
            return None
        q1, q3 = np.percentile(losses, [25, 75])
        if not losses[-1] < losses[:-1].min() - self.tol * (q3 - q1):
            return None
        filled = np.where(np.isnan(rows), -1.0, rows)
        last, earlier = filled[-1], filled[:-1]
        if np.any(np.all(earlier[:, relevant] == last[relevant], axis=1)):
            return "rest"
        if np.any(np.all(earlier[:, ~relevant] == last[~relevant], axis=1)):
            return "focus"
        return None

    def stalled(self, losses: np.ndarray, d: int) -> bool:
        """Whether the best of ``losses`` (trial order) has, since focus began (``per_dim * d``
        trials), gone ``patience(d)`` trials without improving by more than ``tol`` times the
        losses' interquartile range: the relevant parameters have converged once, and from
        then on the rest is worth stepping (a gain it brings does not undo that)."""
        if len(losses) < 2:
            return False
        q1, q3 = np.percentile(losses, [25, 75])
        best = np.minimum.accumulate(losses)
        last, since = 0, np.zeros(len(best), dtype=int)
        for i in range(1, len(best)):
            if best[i] < best[last] - self.tol * (q3 - q1):
                last = i
            since[i] = i - last
        return bool(np.any(since[int(self.per_dim * d):] >= self.patience(d)))

    def after_stall(self, losses: np.ndarray, d: int, n_obs: int) -> bool:
        """Whether focus has begun and the search has stalled since (:meth:`stalled`)."""
        return d >= self.min_dims and n_obs >= self.per_dim * d and self.stalled(losses, d)

    def pinned(self, relevant: np.ndarray, enc: Encoding, incumbent: np.ndarray, rows: np.ndarray | None,
               losses: np.ndarray) -> np.ndarray | None:
        """The incumbent with its held parameters at the centres the rest model is sure of
        (:func:`.rest.pinned`); None without ``pin`` or while the model is not sure."""
        if not (self.pin and self.sure > 0 and self.rest_model) or rows is None or len(rows) != len(losses):
            return None
        held = ~relevant & enc.numeric & ~np.isnan(incumbent)
        return rest.pinned(rows, losses, relevant, held, side=self.rest_side, sure=self.sure)

    def settled(self, relevant: np.ndarray, enc: Encoding, incumbent: np.ndarray, centred: np.ndarray | None) -> bool:
        """Whether the incumbent's held parameters are within ``sure`` of the ``centred`` ones
        (:meth:`pinned`): a step on the rest has nothing left to find."""
        held = ~relevant & enc.numeric & ~np.isnan(incumbent)
        return centred is not None and bool(np.max(np.abs(centred[held] - incumbent[held])) <= self.sure)

    def patience(self, d: int) -> int:
        return max(5, int(d * self.patience_frac))

    def rest_box(self, incumbent: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A box of side ``rest_side`` around the incumbent on the rest, the incumbent's
        value elsewhere (unit coordinates; an inactive one spans its range)."""
        c = np.where(np.isnan(incumbent), 0.5, incumbent)
        half = np.where(np.isnan(incumbent), 0.5, np.where(rest, self.rest_side / 2.0, 0.0))
        return np.clip(c - half, 0.0, 1.0), np.clip(c + half, 0.0, 1.0)

    def refine_box(self, incumbent: np.ndarray, theta: np.ndarray, relevant: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """A box around the incumbent on the relevant numeric parameters, side ``refine_side``
        scaled by each one's lengthscale over their geometric mean (as TuRBO's trust region,
        :mod:`.local`); the held parameters keep the incumbent's values in a focused turn."""
        return local.box(incumbent, np.exp(np.asarray(theta[: len(relevant)], dtype=float)), relevant,
                         self.refine_side)


class FocusedOptimizer(AcqOptimizer):
    """:class:`AcqOptimizer` over the relevant coordinates only: random candidates take
    the incumbent's values elsewhere, perturbations of the anchors move only relevant
    coordinates, and refinement and discrete moves touch relevant ones only."""

    def __init__(self, space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator,
                 relevant: np.ndarray, incumbent: np.ndarray) -> None:
        super().__init__(space, enc, options, rng)
        self.relevant, self.incumbent = relevant, incumbent
        self.numeric = self.numeric[relevant[self.numeric]]
        self.discrete = [j for j in self.discrete if relevant[j]]

    def _random(self) -> np.ndarray:
        return self._pinned(super()._random(), self.incumbent[None, :])

    def _local(self, anchors: np.ndarray) -> np.ndarray:
        return self._pinned(super()._local(anchors), self.incumbent[None, :])

    def _pinned(self, U: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``U`` on relevant coordinates, ``base`` elsewhere (NaN where inactive there)."""
        return canonical(self.space, np.where(self.relevant[None, :], U, base))


class RestStepOptimizer(AcqOptimizer):
    """A step on the rest by the separable quadratic model of :mod:`.rest` (``rows``: the
    completed trials' unit rows, ``losses`` theirs, in trial order), the acquisition's choice
    in the rest box after it (should the step be a configuration already tried)."""

    def __init__(self, space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator,
                 relevant: np.ndarray, rule: FocusRule, rows: np.ndarray, losses: np.ndarray) -> None:
        super().__init__(space, enc, options, rng)
        self.relevant, self.rule, self.rows, self.losses = relevant, rule, rows, losses

    def maximize(self, acq: Acquisition, anchors: np.ndarray,
                 region: tuple[np.ndarray, np.ndarray] | None = None) -> Scored:
        held = ~self.relevant & self.enc.numeric & ~np.isnan(anchors[0])
        u = rest.step(self.rows, self.losses, self.relevant, held, self.rng, side=self.rule.rest_side,
                      shrink_after=self.rule.shrink_after, sure=self.rule.sure)
        found = FocusedOptimizer(self.space, self.enc, self.opt, self.rng, ~self.relevant, anchors[0]
                                 ).maximize(acq, anchors, region)
        return Scored(np.vstack([canonical(self.space, u[None, :]), found.U]), np.r_[np.inf, found.value])


def acq_optimizer(space: Space, enc: Encoding, options: BayesOptions, rng: np.random.Generator, *,
                  theta: np.ndarray, n_obs: int, index: int, anchors: np.ndarray, losses: np.ndarray,
                  region: tuple[np.ndarray, np.ndarray] | None, rows: np.ndarray | None = None
                  ) -> tuple[AcqOptimizer, tuple[np.ndarray, np.ndarray] | None]:
    """The optimizer of this suggestion and the box it searches (``region``, the trust
    region, unless a step on the rest replaces it): focused on the relevant parameters when
    ``options.focus`` and :meth:`FocusRule.relevant` say so (``anchors[0]``: the
    incumbent; ``index``: the number of trials so far; ``losses``: the complete trials'
    losses in trial order), else the whole space's."""
    if not options.focus or not len(anchors):
        return AcqOptimizer(space, enc, options, rng), region
    rule = FocusRule()
    d, incumbent = space.ndim, anchors[0]
    stalled = rule.after_stall(losses, d, n_obs)
    relevant = rule._mask(theta, d) if stalled else None  # after the stall, every turn's relevant mask
    centred = rule.pinned(relevant, enc, incumbent, rows, losses) if relevant is not None else None
    mask = rule.rest(theta, d, n_obs, index, losses, rows)
    if mask is not None and rule.settled(mask, enc, incumbent, centred):
        mask = None  # the held parameters sit at the model's centre: the turn goes to the relevant ones
    if mask is not None and rule.rest_model and rows is not None:
        return RestStepOptimizer(space, enc, options, rng, mask, rule, rows, losses), rule.rest_box(incumbent, ~mask)
    if mask is not None:
        return FocusedOptimizer(space, enc, options, rng, ~mask, incumbent), rule.rest_box(incumbent, ~mask)
    mask = relevant if stalled else rule.relevant(theta, d, n_obs, index)
    if mask is None:
        return AcqOptimizer(space, enc, options, rng), region
    if region is None and stalled:
        region = rule.refine_box(incumbent, theta, mask & enc.numeric)
    if centred is not None:  # the focused turn holds the held parameters at the model's centres
        incumbent = canonical(space, centred[None, :])[0]
    return FocusedOptimizer(space, enc, options, rng, mask, incumbent), region
