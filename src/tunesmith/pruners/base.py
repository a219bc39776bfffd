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

from ..trial import Direction, FrozenTrial


class Decision(str, enum.Enum):
    CONTINUE = "continue"
    PRUNE = "prune"
    PAUSE = "pause"


class Pruner(ABC):
    """Base class of pruners; subclass it to plug in an early-stopping rule."""

    name = "custom"

    @abstractmethod
    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        """Whether ``trial`` (with its latest report) should go on."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class NopPruner(Pruner):
    """Never prunes."""

    name = "none"

    def decide(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Decision:
        return Decision.CONTINUE
