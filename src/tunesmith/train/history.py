"""What a training run records: one :class:`EvalRecord` per validation."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """One validation point.

    index: 0, 1, 2, ... (the epoch when validating each epoch). epoch: epochs
    finished. step: optimizer steps done. train_loss: mean training loss since
    the previous record. val_loss / metrics: on the validation data (None / {}
    without one). lr: the learning rate of the next step. samples_per_s:
    training throughput since the previous record (validation excluded).
    improved: best validation loss so far. overfitting: validation loss rose
    while training loss fell, against the previous record.
    """

    index: int
    epoch: int
    step: int
    train_loss: float
    val_loss: float | None
    metrics: dict[str, float]
    lr: float
    samples_per_s: float
    seconds: float
    improved: bool
    overfitting: bool


@dataclasses.dataclass
class History:
    records: list[EvalRecord] = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_index: int | None = None
    stopped_early: bool = False
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None

    @property
    def best(self) -> EvalRecord | None:
        return None if self.best_index is None else self.records[self.best_index]

    @property
    def overfit_at(self) -> list[int]:
        """Indices of the records that showed the overfitting signal."""
        return [r.index for r in self.records if r.overfitting]

    @property
    def train_losses(self) -> list[float]:
        return [r.train_loss for r in self.records]

    @property
    def val_losses(self) -> list[float | None]:
        return [r.val_loss for r in self.records]

    def overfits(self, train_loss: float, val_loss: float | None) -> bool:
        if not self.records or val_loss is None:
            return False
        prev = self.records[-1]
        return prev.val_loss is not None and val_loss > prev.val_loss and train_loss < prev.train_loss

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        d = dict(d)
        records = [EvalRecord(**r) for r in d.pop("records")]
        return cls(records=records, **d)
