"""Options of the Bayesian-optimization sampler (one small frozen dataclass)."""

from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass, fields
from typing import Any

from ...exceptions import peer_hint
from ...space.params import check_count, check_field_types, check_int
from ...trial import short_repr


@dataclass(frozen=True)
class BayesOptions:
    """Settings of :class:`~tunesmith.samplers.BayesSampler`.

    Attributes:
        n_init: trials of the initial design before the model takes over:
            the center of the space, then quasi-random (Sobol) points;
            None sizes it from the dimension: ``1 + min(max(5, d + 1), 20)``.
        warping: transform of losses before the GP: "auto" (at each refit,
            "power" or "none", whichever fitted model makes the losses
            likelier: maximized log posterior plus the transform's
            log-Jacobian), "power" (Yeo-Johnson), "rank" (normal scores) or
            "none".
        max_train: cap on GP training points; beyond it the model sees the
            best points, the incumbent's neighbours and a random sample.
        refit_every: refit hyperparameters when the number of observations
            grew by this fraction since the last fit (warm-started fits).
        n_random: random candidates scored per suggestion.
        n_local: candidates perturbed around the best observed points.
        n_starts: candidates refined by L-BFGS-B.
        maxiter: L-BFGS-B iterations of the acquisition refinement.
        prior_beta: piBO strength; the prior's exponent is prior_beta / n.
        failure_penalty: failed trials count as the worst observed loss.
        branch_design: in conditional spaces, a branch (trials sharing the
            same active parameters) with fewer than 1 + its numeric parameters
            trials gets its next quasi-random point instead of the model's.
        focus: with many parameters (12 or more) and enough trials (2 per
            parameter), maximize the acquisition over the parameters whose
            learned lengthscales say they matter, the others held at the best
            trial's values, three suggestions in four; once that search has
            stalled, every other suggestion (and the one after such a step that
            gained) steps the held parameters near the best trial instead (to the minimum of a quadratic model of them, in a
            trust region that shrinks on failure; :mod:`.rest`), and the focused
            ones search a small box around it (:mod:`.focus`); once that model is
            sure of the held parameters' best values, the focused ones hold them there.
        local_search: when the best loss has not improved for a while, search
            a shrinking box around the incumbent, then the whole space again
            (trust-region refinement with restarts, see ``bayes/local.py``).
        plugin_incumbent: expected improvement is measured from the lowest
            posterior mean at the completed trials (plug-in EI) instead of
            the lowest observed loss, so one lucky noisy draw (or a rugged
            spike the model calls noise) does not set the bar.
        plugin_max_noise: with ``plugin_incumbent``, use the plug-in bar only
            while the fitted noise variance is below this fraction of the
            signal variance, and the lowest observed loss once the model
            calls more of the losses noise (for very noisy objectives, where
            the plug-in bar settles too early; e.g. 0.1). None: always.
        ei_margin: expected improvement is measured against the incumbent
            improved by this margin, in the objective's units (scikit-optimize's
            ``xi``), converted to the model's standardized scale by the standard
            deviation of the observed values (exact without output warping). A
            margin about the size of the differences between good configurations
            keeps a short search from sampling beside its incumbent; 0: none.
        half_rank: before the model, losses worse than the median are replaced
            by the normal quantiles of their ranks at the spread of the better
            half (the better half unchanged), so that a few collapsed
            configurations (a score at chance level) do not flatten the
            differences among the good ones.
        ls_penalty: strength a of the penalty a (x + 1/x) on each inverse
            squared lengthscale x (unit cube), which keeps the model from
            explaining few points by very short lengthscales; 0 turns it off.
    """

    n_init: int | None = None
    warping: str = "auto"
    max_train: int = 128
    refit_every: float = 0.05
    n_random: int = 1024
    n_local: int = 256
    n_starts: int = 8
    maxiter: int = 50
    prior_beta: float = 10.0
    failure_penalty: bool = True
    ls_penalty: float = 0.1
    branch_design: bool = True
    focus: bool = True
    local_search: bool = False
    plugin_incumbent: bool = True
    plugin_max_noise: float | None = None
    ei_margin: float = 0.0
    half_rank: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        object.__setattr__(self, "n_init", check_count("n_init", self.n_init, optional=True))  # frozen: a NumPy one as int
        if self.warping not in ("auto", "power", "rank", "none"):
            raise ValueError(f"warping must be 'auto', 'power', 'rank' or 'none', got {self.warping!r}")
        for name, least in (("max_train", 16), ("n_random", 1), ("n_local", 0), ("n_starts", 1), ("maxiter", 1)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), least))  # a NumPy one as int
        if not (0 <= self.refit_every <= 1):
            raise ValueError(f"refit_every must be in [0, 1], got {self.refit_every!r}")
        # <= float_info.max: NaN and infinities out, and an int past a float (a stored 10**400 failed every ask)
        if not (isinstance(self.ls_penalty, numbers.Real) and 0 <= self.ls_penalty <= sys.float_info.max):
            raise ValueError(f"ls_penalty must be a finite number >= 0, got {short_repr(self.ls_penalty)}")
        gate = self.plugin_max_noise
        if gate is not None and not (isinstance(gate, numbers.Real) and not isinstance(gate, bool) and 0 < gate <= sys.float_info.max):
            raise ValueError(f"plugin_max_noise must be a finite number > 0 or None, got {short_repr(gate)}")
        if not (isinstance(self.ei_margin, numbers.Real) and 0 <= self.ei_margin <= sys.float_info.max):
            raise ValueError(f"ei_margin must be a finite number >= 0 (in the objective's units), got {short_repr(self.ei_margin)}")
        if not 0 <= self.prior_beta <= sys.float_info.max:  # NaN: every prior's exponent NaN; 10**400: an OverflowError
            raise ValueError(f"prior_beta must be a finite number >= 0, got {self.prior_beta!r}")

    @classmethod
    def build(cls, options: dict[str, Any]) -> BayesOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown BayesSampler option(s) {unknown}{peer_hint(unknown[0], known)}; known: {sorted(known)}")
        return cls(**options)
