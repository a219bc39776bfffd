"""Successive halving: asynchronous (ASHA) and synchronous, in cohorts (SH).

Notation: ``r`` = ``min_resource``, ``eta`` = ``reduction_factor``, ``s`` =
``min_early_stopping_rate``. Rung ``k`` sits at step ``r * eta**(s + k)``
(steps are the ``step`` of ``trial.report``, e.g. epochs), below
the full budget. A trial *reaches* rung ``k`` with its first report at a step
``>=`` the rung's; its *rung score* is its score at that report (see
:mod:`tunesmith.pruners.curves`). Everything is derived from the reports: no
rung table is stored.

The full budget is ``max_resource`` when given, else learnt from the trials
(:func:`full_budget`): a trial that reports the last step of a full run has
trained in full and is never stopped there, so the study's best trial is
always chosen among every trial that finished its training.
"""

from __future__ import annotations

import bisect
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..exceptions import PEER_ARGUMENTS, peer_hint
from ..space.params import check_int, did_you_mean
from ..trial import Direction, FrozenTrial, TrialState
from .base import REPORTED_STATES, Decision, Pruner
from .curves import (
    Runs,
    already_resumed,
    check_curve,
    comparable,
    crossing,
    rung_score,
)

QUOTAS = ("rung", "first")


def full_budget(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int | None:
    """The last step of a full run, learnt from the other trials (no ``max_resource``).

    The largest last step of a complete trial; before any trial completed, the
    largest step another trial reported (a step some trial went past is not the
    last one). None when no other trial reported: nothing is known yet, and no
    step can be a rung.
    """
    done = [t.last_step for t in trials if t.state is TrialState.COMPLETE and t.number != trial.number]
    steps = [s for s in done if s is not None]
    if not steps:
        steps = [t.last_step for t in comparable(trials, trial) if t.last_step is not None]
    return max(steps) if steps else None


def check_options(what: str, options: dict[str, Any], own: Sequence[str], drop: Sequence[str] = ()) -> None:
    """A TypeError naming the closest option for a keyword that neither ASHA (less ``drop``)
    nor a subclass's ``own`` settings take: the subclass passes ``**options`` on to ASHA,
    whose own error would name ASHA and none of the subclass's settings."""
    allowed = [n for n in inspect.signature(ASHA.__init__).parameters if n not in ("self", *drop)]
    allowed += own
    for key in options:
        if key not in allowed:
            hint = peer_hint(key, allowed) if key in PEER_ARGUMENTS else did_you_mean(key, allowed)
            raise TypeError(f"{what}: unknown option {key!r}{hint}; its options are {allowed}")


#: the largest ``min_early_stopping_rate``: with ``reduction_factor`` >= 2, a larger one puts the first
#: rung at step 2**63 or later, where no trial reports (steps are 64-bit integers)
MAX_RATE = 62


class Ranks:
    """The rung scores of each peer group (:meth:`ASHA.group`), sorted once per check.

    Looking for a promotion ranks every paused trial against its peers; scoring and
    counting the peers again for each paused trial made the check cost paused trials x
    all trials (11.0 s at 2,000 complete trials and as many paused). Here each trial is
    filed in its group once, and each group's scores at a rung are sorted once; the
    calibration margin (:meth:`ASHA.overturned`) is computed once per rung. One decision
    (``without``: the deciding trial, whose stored record may be older) uses the same."""

    def __init__(
        self, pruner: ASHA, trials: Sequence[FrozenTrial], direction: Direction, *, without: int | None = None
    ) -> None:
        self.pruner, self.direction, self.trials, self.without = pruner, direction, trials, without
        ranked = pruner.competitors(trials)
        self.groups = pruner.filed(ranked if without is None else [t for t in ranked if t.number != without])
        self._numbers: set[int] | None = None if without is not None else {t.number for t in ranked}
        self._scores: dict[tuple[int, int], tuple[list[float], int]] = {}
        self._margins: dict[int, float] = {}
        self._members: Mapping[int, Sequence[FrozenTrial]] | None = None
        self.settled: dict[tuple[int, int], bool] = {}  # SH's cohorts, by (cohort, rung step)

    def members(self, group: int) -> Sequence[FrozenTrial]:
        """Every trial of ``group``, whatever its state (filed on the first call)."""
        if self._members is None:
            self._members = self.pruner.filed(self.trials)
        return self._members.get(group, [])

    def scores(self, trial: FrozenTrial, step: int) -> tuple[list[float], int]:
        """The rung scores at ``step`` of ``trial``'s group that are not NaN, sorted (no NaN is
        better than any score; in a check ``trial``'s own is among them), and how many of the
        group reached the rung, ``trial`` counted once whether it is among them or not."""
        key = (self.pruner.group(trial.number), step)
        hit = self._scores.get(key)
        if hit is None:
            runs, how = self.pruner._runs, self.pruner.curve
            group = self.groups.get(key[0], [])
            got = [v for t in group if (v := runs.rung_score(t, step, self.direction, how)) is not None]
            clean = [v for v in got if not math.isnan(v)] if any(map(math.isnan, got)) else got
            hit = self._scores[key] = (sorted(clean), len(got))
        counted = trial.number != self.without and self._numbers is not None and trial.number in self._numbers
        return hit[0], hit[1] + (not counted)

    def margin(self, step: int, overturned: Callable[[], float]) -> float:
        """:meth:`ASHA.overturned` at ``step``, computed once (it reads only the complete trials)."""
        if step not in self._margins:
            self._margins[step] = overturned()
        return self._margins[step]


class ASHA(Pruner):
    """Asynchronous successive halving (Li et al., 2018).

    When a trial reaches a rung it goes on only if its rung score is among the
    best ``max(1, n // eta)`` of the ``n`` trials that reached that rung so
    far (itself included; see ``quota`` for the alternative); otherwise it is
    stopped: pruned, or *paused* when ``pause=True``. A paused trial is
    promoted later, when enough trials have reached its rung for it to rank
    within the quota; the study then resumes it from its checkpoint (see
    ``docs/pruning.md``).

    Args:
        min_resource: step of the first rung (epochs every trial gets; default 2:
            no trial is judged on its first report alone).
        reduction_factor: ``eta``; keep ``1/eta`` of the trials at each rung (default 2).
        max_resource: the full budget (last epoch); no rung at or beyond it.
            Default: learnt from the trials (:func:`full_budget`): the last
            step of the complete trials.
        min_early_stopping_rate: ``s``, skips the first ``s`` rungs.
        warmup_steps: never stop a trial before this step (rungs below are skipped).
        bootstrap_count: stop (pause) rather than promote while fewer than this
            many trials reached the rung.
        pause: pause non-promoted trials instead of pruning them (the objective
            must be able to resume from ``trial.resume_from``).
        curve: "last" (default: the value reported at the rung, the kind of value
            the objective returns and the study's best is chosen by), "best"
            or "ema": how a curve is scored.
        quota: how many go on at rung ``k``: "rung" (default: the best
            ``max(1, n // eta)`` of the ``n`` trials that reached rung ``k``, as in
            the ASHA paper) or "first" (the best ``max(1, n0 // eta**(k+1))``, ``n0``
            the trials that reached the first rung: synchronous halving's
            proportions; the trials that reach a later rung are already the better
            ones, so "rung" lets more than ``1/eta`` of them on, "first" stops more).
        calibrate: once this many other trials completed past the rung (0, the default: never),
            a trial outside the quota at a rung still goes on when its rung score
            trails the quota's last trial by no more than the complete trial that
            ended best trailed, at that rung, the one that led there
            (:meth:`overturned`): where the complete curves keep their order, the
            plain rule; where the best one came from behind, a trial as close as
            it was goes on.
    """

    name = "asha"
    reads = REPORTED_STATES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "peers" in vars(cls):  # the hook was replaced: an override would be ignored without a word
            raise TypeError(
                f"{cls.__qualname__} overrides peers(trial, trials), which the halving pruners no longer "
                "call: override group(number) (the peer group of a trial number; trials compete within "
                "theirs) and competitors(trials) (the trials ranked at all) instead"
            )

    def __init__(
        self,
        *,
        min_resource: int = 2,
        reduction_factor: int = 2,
        max_resource: int | None = None,
        min_early_stopping_rate: int = 0,
        warmup_steps: int = 0,
        bootstrap_count: int = 0,
        pause: bool = False,
        curve: str = "last",
        quota: str = "rung",
        calibrate: int = 0,
    ) -> None:
        if quota not in QUOTAS:
            raise ValueError(f"quota must be one of {QUOTAS}, got {quota!r}")
        self.quota_rule = quota
        self.min_resource = check_int("min_resource", min_resource, 1)
        self.reduction_factor = check_int("reduction_factor", reduction_factor, 2)
        if max_resource is not None:
            max_resource = check_int("max_resource", max_resource, 1)
            if max_resource <= min_resource:
                raise ValueError(
                    f"max_resource ({max_resource}) must be larger than min_resource ({min_resource}), the "
                    "step of the first rung; "
                    + (f"pass min_resource={max_resource - 1} or less" if max_resource > 1 else
                       "a run of one step cannot be stopped early: use pruner='none'")
                )
        self.max_resource = max_resource
        self.min_early_stopping_rate = check_int(
            "min_early_stopping_rate", min_early_stopping_rate, 0
        )
        if self.min_early_stopping_rate > MAX_RATE:  # reduction_factor ** 10**12 fills the memory, and never ends
            raise ValueError(
                f"min_early_stopping_rate must be at most {MAX_RATE}, got {self.min_early_stopping_rate}: the first "
                "rung, min_resource * reduction_factor ** min_early_stopping_rate, would lie at step 2**63 or later, "
                "past any step a trial reports"
            )
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        if max_resource is not None and warmup_steps >= max_resource:
            raise ValueError(
                f"warmup_steps ({warmup_steps}) must be smaller than max_resource ({max_resource}): "
                "no trial could ever be stopped"
            )
        if max_resource is not None and not self.rung_steps(max_resource):
            first = min_resource * self.reduction_factor**self.min_early_stopping_rate
            raise ValueError(
                f"no rung lies at or after warmup_steps ({warmup_steps}) and before max_resource "
                f"({max_resource}): rungs are min_resource ({min_resource}) * reduction_factor "
                f"({self.reduction_factor}) ** k from k = min_early_stopping_rate "
                f"({self.min_early_stopping_rate}), the first at step {first}, so no trial could "
                "ever be stopped. Lower warmup_steps, min_resource or min_early_stopping_rate, or raise max_resource"
            )
        self.bootstrap_count = check_int("bootstrap_count", bootstrap_count, 0)
        if not isinstance(pause, bool):
            raise TypeError(f"pause must be True or False, got {pause!r}")
        self.pause = pause
        self.pauses = pause
        self.curve = check_curve(curve)
        self.calibrate = check_int("calibrate", calibrate, 0)
        self._runs = Runs()  # finished peers' running scores, computed once

    # -- rungs ------------------------------------------------------------------
    def rung_steps(
        self, upto: int, trial: FrozenTrial | None = None, *, budget: int | None = None
    ) -> list[int]:
        """Rung steps ``<= upto`` (ascending) that apply to ``trial``, below the full
        budget (``max_resource``, else ``budget`` when given)."""
        out: list[int] = []
        k = self._first_rate(trial)
        limit = self.max_resource if self.max_resource is not None else budget
        while True:
            step = self.min_resource * self.reduction_factor**k
            if step > upto or (limit is not None and step >= limit):
                return out
            if step >= self.warmup_steps:
                out.append(step)
            k += 1

    def _first_rate(self, trial: FrozenTrial | None) -> int:
        return self.min_early_stopping_rate

    def _first_rung(self) -> int:
        """The step of the first rung that can stop a trial: the first at or after ``warmup_steps``
        (those below it are skipped)."""
        step = self.min_resource * self.reduction_factor**self._first_rate(None)
        while step < self.warmup_steps:
            step *= self.reduction_factor
        return step

    def competitors(self, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """The trials ranked at a rung: every one that reported, except failed; each competes
        within its :meth:`group`."""
        return [t for t in trials if t.intermediate and t.state is not TrialState.FAILED]

    def quota(self, n_at_rung: int, rung_index: int, trial: FrozenTrial) -> int:
        """How many of the ``n_at_rung`` trials at the rung go on (``quota="rung"``;
        with "first", ``n_at_rung`` counts the trials at the first rung)."""
        shrink = rung_index + 1 if self.quota_rule == "first" else 1
        return max(1, n_at_rung // self.reduction_factor**shrink)

    def budget(self, trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int:
        """The full budget ``trial`` is judged under: ``max_resource``, else learnt
        (:func:`full_budget`; 0, no rung at all, while nothing is known)."""
        if self.max_resource is not None:
            return self.max_resource
        return full_budget(trial, trials) or 0

    def _rung_of(self, trial: FrozenTrial, budget: int | None = None) -> tuple[int, int] | None:
        """(index, step) of the highest rung the latest report reached, if it did."""
        last = trial.last_step
        if last is None:
            return None
        steps = self.rung_steps(last, trial, budget=budget)
        for i in range(len(steps) - 1, -1, -1):
            if crossing(trial.intermediate, steps[i]) == last:
                return i, steps[i]
        return None

    def can_resume(self, trial: FrozenTrial) -> bool:
        """Only a trial paused at a rung can be promoted from it, and only past
        the step it was last resumed from (no progress since: it would loop)."""
        last = trial.last_step
        return (
            self.pauses
            and self._rung_of(trial) is not None
            and not (last is not None and already_resumed(trial, last))
        )

    def idle_warning(self, trial: FrozenTrial) -> str | None:
        """``trial`` (the longest complete one) completed before the first rung, so trials of its
        length are never stopped (with ``max_resource`` learnt, or given but beyond where it ended)."""
        last = trial.last_step
        if last is None or self.rung_steps(last - 1, budget=last):  # a rung at the last step saves nothing
            return None
        first = self._first_rung()
        said = (f"{self!r}: trial {trial.number} completed at step {last}, and no rung lies at or after "
                f"warmup_steps ({self.warmup_steps}) and before it (the first rung is at step {first}), so "
                f"trials of {last} steps are never stopped. ")
        if self.max_resource is None:
            return said + "Lower min_resource or warmup_steps, and give max_resource, the last step of a full run"
        # given: the trial may have stopped early by its own patience, max_resource being right
        return said + (f"If full runs end at step {last} (the longest complete trial's last step), lower "
                       f"min_resource or warmup_steps and set max_resource ({self.max_resource}) to {last}; if "
                       f"they run on to step {self.max_resource} (this trial stopped early, by its own patience), "
                       f"the trials that reach step {first} can still be stopped")

    # -- decisions ---------------------------------------------------------------
    def needs_trials(self, trial: FrozenTrial) -> bool:
        """Only at a rung (a full budget, given or learnt, can only remove rungs)."""
        rung = self._rung_of(trial)
        return rung is not None and not already_resumed(trial, rung[1])

    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        rung = self._rung_of(trial, self.budget(trial, trials))
        if rung is None or already_resumed(trial, rung[1]):
            return Decision.CONTINUE
        return self._decide_at(trial, trials, direction, rung)

    def _decide_at(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction, rung: tuple[int, int]
    ) -> Decision:
        """The decision on ``trial`` at ``rung`` (index, step), which its latest report reached."""
        return Decision.CONTINUE if self._promoted(trial, trials, direction, *rung) else self._stop()

    def _stop(self) -> Decision:
        return Decision.PAUSE if self.pause else Decision.PRUNE

    def _promoted(
        self,
        trial: FrozenTrial,
        trials: Sequence[FrozenTrial],
        direction: Direction,
        index: int,
        step: int,
        ranks: Ranks | None = None,
    ) -> bool:
        """Whether ``trial`` goes on from its rung; ``ranks``, shared by the paused trials of one
        :meth:`promotable` or :meth:`abandoned` check, sorts each peer group's scores once."""
        mine = rung_score(trial, step, direction, self.curve)
        if mine is None:
            return False
        if ranks is None:  # one decision: ``trials`` may hold an older record of ``trial``
            ranks = Ranks(self, trials, direction, without=trial.number)
        ranked, n = ranks.scores(trial, step)
        if n < self.bootstrap_count:
            return False
        if self.quota_rule == "first" and index > 0:
            n = ranks.scores(trial, self.rung_steps(step, trial)[0])[1]
        keep = self.quota(n, index, trial)
        if (0 if math.isnan(mine) else bisect.bisect_left(ranked, mine)) < keep:  # the others strictly better
            return True
        if not self.calibrate:
            return False
        last_kept = ranked[keep - 1]  # outside the quota: at least ``keep`` others are better (``trial`` after them)
        return mine - last_kept <= ranks.margin(step, lambda: self.overturned(trial, trials, direction, step))

    def group(self, number: int) -> int:
        """The peer group of trial ``number``: trials compete within theirs (one here; a
        bracket in Hyperband, a cohort in SH)."""
        return 0

    def filed(self, trials: Sequence[FrozenTrial]) -> Mapping[int, Sequence[FrozenTrial]]:
        """``trials`` by :meth:`group`."""
        if type(self).group is ASHA.group:  # one group: no call per trial
            return {0: trials}
        out: dict[int, list[FrozenTrial]] = {}
        for t in trials:
            out.setdefault(self.group(t.number), []).append(t)
        return out

    def overturned(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction, step: int
    ) -> float:
        """How far, at the rung at ``step``, the complete trial that ended best (by its last
        report's score) trailed the complete trial that led there: the lead a curve made up
        after that rung (0 when the one that led ended best; -inf, the plain rule, while fewer
        than ``calibrate`` other trials completed after reaching the rung, or when one of their
        scores is NaN)."""
        ends = []
        for t in comparable(trials, trial):
            if t.state is TrialState.COMPLETE:
                at = self._runs.rung_score(t, step, direction, self.curve)
                if at is not None:
                    ends.append((self._runs.of(t, direction, self.curve)[1][-1], at))
        if not ends or len(ends) < self.calibrate or any(math.isnan(end + at) for end, at in ends):
            return float("-inf")  # a NaN (a peer's write; tunesmith stores none) teaches no margin
        best = min(end for end, _ in ends)  # once: in the filter below it made each call quadratic
        return max(at for end, at in ends if end == best) - min(at for _, at in ends)

    def promotable(self, trials: Sequence[FrozenTrial], direction: Direction) -> list[int]:
        """Paused trials now within the quota of the rung they paused at, best first."""
        ranked: list[tuple[float, int]] = []
        ranks = Ranks(self, trials, direction)
        for t in trials:
            if t.state is not TrialState.PAUSED:
                continue
            rung = self._rung_of(t)
            if rung is not None and self._ready(t, trials, direction, rung, ranks):
                ranked.append((rung_score(t, rung[1], direction, self.curve) or 0.0, t.number))
        return [n for _, n in sorted(ranked)]

    def _ready(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction, rung: tuple[int, int],
        ranks: Ranks,
    ) -> bool:
        """Whether the paused ``trial`` is promoted now from ``rung`` (index, step)."""
        return self._promoted(trial, trials, direction, *rung, ranks)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min_resource": self.min_resource,
            "reduction_factor": self.reduction_factor,
            "max_resource": self.max_resource,
            "min_early_stopping_rate": self.min_early_stopping_rate,
            "warmup_steps": self.warmup_steps,
            "bootstrap_count": self.bootstrap_count,
            "pause": self.pause,
            "curve": self.curve,
            "quota": self.quota_rule,
            "calibrate": self.calibrate,
        }


class SuccessiveHalving(ASHA):
    """Synchronous successive halving (Jamieson and Talwalkar, 2016), in cohorts.

    Trials are grouped by number into cohorts of ``cohort_size`` (default
    ``eta**n_rungs`` with ``max_resource``, else ``eta**3``). At rung ``k`` a
    fixed quota of each cohort goes on: the best ``cohort_size // eta**(k+1)``
    (at least one). Without pausing, the decision is made on arrival against
    the cohort members that reached the rung so far (a trial already ranked
    beyond the quota can only fall further). With ``pause=True`` it is truly
    synchronous: a trial inside the quota so far is paused until every member
    of its cohort has reached the rung (or finished), then the quota is
    promoted together.
    """

    name = "sh"

    def __init__(self, *, cohort_size: int | None = None, **options: Any) -> None:
        check_options("SuccessiveHalving", options, ["cohort_size"])
        super().__init__(**options)
        if cohort_size is None:
            n_rungs = len(self.rung_steps(self.max_resource or 0)) if self.max_resource else 3
            cohort_size = self.reduction_factor ** max(1, n_rungs)
        self.cohort_size = check_int("cohort_size", cohort_size, 2)

    def budget_warning(self, n_total: int) -> str | None:
        short = -n_total % self.cohort_size
        if not self.pause or not short:
            return None
        first = n_total - n_total % self.cohort_size
        who = f"trial {first}" if first == n_total - 1 else f"trials {first}-{n_total - 1}"
        return (
            f"SuccessiveHalving(pause=True, cohort_size={self.cohort_size}): with {n_total} trials "
            f"in all, the last cohort ({who}) is {short} trial{'s' if short > 1 else ''} short, so it "
            "cannot settle until more trials join it: its trials inside the quota stay paused. Run a multiple of "
            f"{self.cohort_size} trials, set cohort_size, or use ASHA"
        )

    def group(self, number: int) -> int:
        return number // self.cohort_size

    def quota(self, n_at_rung: int, rung_index: int, trial: FrozenTrial) -> int:
        return max(1, self.cohort_size // self.reduction_factor ** (rung_index + 1))

    def _settled(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], step: int, ranks: Ranks | None = None
    ) -> bool:
        """Every cohort member reached the rung or finished without reaching it (with ``ranks``,
        the check's: its cohorts filed once, the answer kept per cohort and rung)."""
        key = (self.group(trial.number), step)
        if ranks is not None and key in ranks.settled:
            return ranks.settled[key]
        group = ranks.members(key[0]) if ranks is not None else self.filed(trials).get(key[0], [])
        members = {t.number: t for t in group}
        members[trial.number] = trial
        done = len(members) >= self.cohort_size and all(
            crossing(t.intermediate, step) is not None or t.state.is_finished
            for t in members.values()
        )
        if ranks is not None:
            ranks.settled[key] = done
        return done

    def _decide_at(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction, rung: tuple[int, int]
    ) -> Decision:
        if not self._promoted(trial, trials, direction, *rung):
            return Decision.PRUNE
        if self.pause and not self._settled(trial, trials, rung[1]):
            return Decision.PAUSE
        return Decision.CONTINUE

    def _ready(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction, rung: tuple[int, int],
        ranks: Ranks,
    ) -> bool:
        return super()._ready(trial, trials, direction, rung, ranks) and self._settled(trial, trials, rung[1], ranks)

    def abandoned(self, trials: Sequence[FrozenTrial], direction: Direction) -> list[int]:
        """Paused trials whose cohort has settled at their rung without them in the quota."""
        out = []
        ranks = Ranks(self, trials, direction)
        for t in trials:
            if t.state is not TrialState.PAUSED:
                continue
            rung = self._rung_of(t)
            if rung is None or (
                self._settled(t, trials, rung[1], ranks) and not self._promoted(t, trials, direction, *rung, ranks)
            ):
                out.append(t.number)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cohort_size": self.cohort_size}
