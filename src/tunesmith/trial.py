"""Trial records: frozen values that samplers, pruners and storages exchange."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any


class TrialState(str, enum.Enum):
    """Where a trial is in its life.

    ``waiting`` trials are queued (enqueued or re-queued) and not yet started;
    ``paused`` ones were stopped by a pruner that may promote them later.
    """

    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    def __str__(self) -> str:
        return self.value


_FINISHED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED})


class Direction(str, enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @classmethod
    def parse(cls, value: str | Direction) -> Direction:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(
                f"direction must be 'minimize' or 'maximize', got {value!r}"
            ) from None

    def sign(self) -> float:
        """Multiplier that turns a value into a loss (smaller is better)."""
        return 1.0 if self is Direction.MINIMIZE else -1.0

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class FrozenTrial:
    """One trial as recorded.

    Attributes:
        number: position of the trial in its study, 0, 1, 2, ... with no gaps.
        state: a :class:`TrialState`.
        params: the configuration; inactive conditional parameters are absent.
        value: the objective's value (``None`` until complete; for a pruned
            trial its last reported value).
        intermediate: reported values by step (epoch), for pruning and plots.
        attrs: free-form attributes (checkpoint path, user notes, ...).
        error: why the trial failed, if it did.
        worker: the worker that ran it (``host:pid``).
        started, completed, heartbeat: wall-clock times (seconds since epoch).
        trial_id: the storage's own key.
    """

    number: int
    state: TrialState
    params: Mapping[str, Any]
    value: float | None = None
    intermediate: Mapping[int, float] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    started: float | None = None
    completed: float | None = None
    heartbeat: float | None = None
    trial_id: int = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialState(self.state))
        if self.value is not None and not isinstance(self.value, float):
            object.__setattr__(self, "value", float(self.value))
        if self.state is TrialState.COMPLETE and (
            self.value is None or not math.isfinite(self.value)
        ):
            raise ValueError(f"trial {self.number}: a complete trial needs a finite value")

    @property
    def duration(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate) if self.intermediate else None

    def replace(self, **changes: Any) -> FrozenTrial:
        """A copy with some fields changed (records themselves never change)."""
        return dataclasses.replace(self, **changes)
