"""The handle an objective receives: its configuration, reports and pruning."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..pruners import Decision
from ..trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from .study import Study


class Trial:
    """One running trial of a study.

    Attributes:
        number: the trial's number in its study.
        params: its configuration (inactive conditional parameters absent).
        study: the study it belongs to.
    """

    def __init__(self, study: Study, record: FrozenTrial) -> None:
        self.study = study
        self._record = record

    @property
    def number(self) -> int:
        return self._record.number

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._record.params)

    @property
    def record(self) -> FrozenTrial:
        """The latest record of this trial as written to the storage."""
        return self._record

    @property
    def state(self) -> TrialState:
        return self._record.state

    @property
    def value(self) -> float | None:
        return self._record.value

    @property
    def intermediate(self) -> Mapping[int, float]:
        return self._record.intermediate

    def __getitem__(self, name: str) -> Any:
        return self._record.params[name]

    def report(self, value: float, step: int | None = None) -> None:
        """Record an intermediate value (a validation score after an epoch).

        ``step`` defaults to one past the last reported step. Values are
        stored with the trial, survive restarts, and drive pruning.
        """
        v = _as_float(value)
        if v is None:
            raise ValueError(f"trial {self.number}: report() takes a number, got {value!r}")
        if step is None:
            last = self._record.last_step
            step = 0 if last is None else last + 1
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"trial {self.number}: step must be an integer >= 0, got {step!r}")
        inter = {**self._record.intermediate, step: v}
        self._write(self._record.replace(intermediate=inter, heartbeat=time.time()))

    def should_prune(self) -> bool:
        """Whether the study's pruner says to stop this trial now.

        End the objective by raising :class:`tunesmith.TrialPruned` when true.
        """
        return self.study._decide(self._record) is not Decision.CONTINUE

    def decision(self) -> Decision:
        """The pruner's full answer: continue, prune, or pause (resumable)."""
        return self.study._decide(self._record)

    def set_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serializable attribute with the trial (checkpoint path, notes)."""
        self._write(self._record.replace(attrs={**self._record.attrs, key: value}))

    def _write(self, record: FrozenTrial) -> None:
        self.study._storage.update_trial(self.study._study_id, record)
        self._record = record

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params})"


def _as_float(value: Any) -> float | None:
    """``float(value)`` for finite real numbers (Python, NumPy, 0-d tensors), else None."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
