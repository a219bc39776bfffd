"""The pruner interface: pure decisions over intermediate reports.

A pruner sees the trial being decided and the other trials of the study
(with their reports) and answers continue, prune (stop for good) or pause
(stop now; may be promoted and resumed later). It keeps no state of its own
in storage: any rung bookkeeping is derived from the reports.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..exceptions import guard_keywords
from ..trial import Direction, FrozenTrial, TrialState

#: every state but waiting: what the built-in pruners read. A queued trial has
#: not reported yet, so leaving it out changes no decision, and a decision then
#: costs the same however long the queue is.
REPORTED_STATES: frozenset[TrialState] = frozenset(TrialState) - {TrialState.WAITING}


class Decision(str, enum.Enum):
    """A pruner's answer for a running trial: go on, stop it for good, or pause it to resume later."""

    CONTINUE = "continue"
    PRUNE = "prune"
    PAUSE = "pause"


class Pruner(ABC):
    """Base class of pruners; subclass it to plug in an early-stopping rule."""

    name = "custom"
    #: whether :meth:`decide` may answer PAUSE. The study records a stopped
    #: trial as paused, and looks for paused trials to resume
    #: (:meth:`promotable`), only for pruners that do; set it in a custom
    #: pruner that pauses.
    pauses: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard_keywords(cls)  # Optuna's argument names answered with ours
    #: the states of the other trials :meth:`decide`, :meth:`promotable` and
    #: :meth:`abandoned` look at; the study may hand them only trials in these
    #: states. Default: every state. The built-in pruners leave out waiting
    #: trials (:data:`REPORTED_STATES`), so a queue does not add to their cost;
    #: a custom pruner that never looks at queued trials can do the same.
    reads: frozenset[TrialState] = frozenset(TrialState)
    #: whether sampler "auto" switches to TPE under this pruner: the trials it stops
    #: are short runs (fewer epochs), which TPE models by their last report. A pruner
    #: whose stopped trials are no such runs (fold racing) sets False, and "auto"
    #: picks as it does without a pruner.
    auto_tpe: bool = True
    #: settings added since studies were stored with this pruner whose default changed its
    #: rule, each with the value that keeps the rule a description stored without it had
    #: (``FoldPruner``'s ``ties``: 0): such a study reopens deciding as it was created to
    stored_before: dict[str, Any] = {}  # noqa: RUF012 (read, never changed)

    @abstractmethod
    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        """Whether ``trial`` (with its latest report) should go on."""

    def needs_trials(self, trial: FrozenTrial) -> bool:
        """Whether deciding ``trial`` now needs the other trials. When False, the study
        skips reading them and :meth:`decide` gets an empty list, so it must then answer
        from ``trial`` alone (a pruner that decides only at some steps says False at the
        others: reports between them cost nothing however many trials the study has).
        Default: True."""
        return True

    def promotable(self, trials: Sequence[FrozenTrial], direction: Direction) -> list[int]:
        """Numbers of the paused trials that now qualify to go on, best first.

        Pure: derived from the trials' reports alone. The study resumes them
        (one per ``ask``) before starting new configurations. Pruners that
        never pause return an empty list.
        """
        return []

    def abandoned(self, trials: Sequence[FrozenTrial], direction: Direction) -> list[int]:
        """Numbers of the paused trials that can no longer be promoted, whatever
        else happens (the study records them as pruned). Default: none."""
        return []

    def can_resume(self, trial: FrozenTrial) -> bool:
        """Whether ``trial``, stopped now, could ever be promoted and resumed.

        The study records a trial stopped by :class:`~tunesmith.TrialPaused` (or
        ``tell(state="paused")``) as paused only when this is true, else as
        pruned, so that no trial waits forever. Default: :attr:`pauses`.
        """
        return self.pauses

    def budget_warning(self, n_total: int) -> str | None:
        """Why ``n_total`` trials would not suit this pruner, if they would not (logged by
        ``optimize``). Default: None."""
        return None

    def idle_warning(self, trial: FrozenTrial) -> str | None:
        """Why this pruner could never stop a trial as long as ``trial``, a complete one, if
        so: settings that put every decision past the end of a full run (logged once per
        study, when a trial completes). Default: None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Name and settings, enough to rebuild the pruner (stored with a study)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


class NopPruner(Pruner):
    """Never prunes."""

    name = "none"
    reads = REPORTED_STATES

    def needs_trials(self, trial: FrozenTrial) -> bool:
        return False

    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        return Decision.CONTINUE
