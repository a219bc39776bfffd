"""What a training run records: one :class:`EvalRecord` per validation."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """One validation point.

    index: 0, 1, 2, ... (the epoch when validating each epoch). epoch: epochs
    finished. step: optimizer steps done. train_loss: mean training loss over the
    samples since the previous record (a short last batch weighs by its samples).
    val_loss / metrics: on the validation data (None / {} without one). lr: the learning rate of the next step. samples_per_s:
    training throughput since the previous record (validation excluded).
    improved: best validation loss so far. overfitting: the live overfitting
    signal, what the run's summary would say if the run ended here (see
    :meth:`History.live_flag`). lrs: with ``lr_adapt``, each parameter group's
    adapted base learning rate by role (else empty).
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
    lrs: dict[str, float] = dataclasses.field(default_factory=dict)


#: smoothing of the generalization gap (weight of the newest value in its moving average)
GAP_SMOOTHING = 0.5
#: validations in a row the smoothed gap must grow, without a new best validation loss
OVERFIT_PATIENCE = 3
#: how many times the noise of the gap (its standard deviation from one validation to the next over
#: the last NOISE_WINDOW validations, trends left out) the smoothed gap must have risen over those
#: validations: on a plateau of pure noise, three rises in a row of the moving average came in most
#: runs (benchmarks/LOG.md)
OVERFIT_NOISE = 2.5
NOISE_WINDOW = 10


@dataclasses.dataclass
class History:
    """The records of a training run, and what they say.

    The overfitting signal: the generalization gap (validation loss - training
    loss), smoothed by an exponential moving average (``gap_smoothing``: the
    newest value's weight), grew at each of the last ``overfit_patience``
    validations while the validation loss set no new best in them, by more than
    ``OVERFIT_NOISE`` times the noise of the gap (:func:`gap_noise`): :meth:`overfits`.
    :attr:`overfit_at`, the run's summary, is where the first firing after the run's
    best validation began (one that a new best followed was a false alarm). Each
    record's ``overfitting`` flag is the live signal, the same rule on the run so far
    (:meth:`live_flag`): on from the first firing after the best validation so far
    until a new best, so the last record's flag is the summary. Noise alone (a plateau
    whose losses only fluctuate) turns the live flag on in a quarter to a third of
    runs of 50 validations (in nine of ten without the noise condition); a new best
    turns it off again in about half of them, and the summary reports about one in six.
    ``finished``: the run is over (``Trainer.fit`` returned); until then its summary is of the run so far.
    """

    records: list[EvalRecord] = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_index: int | None = None
    stopped_early: bool = False
    finished: bool = False
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    gap_smoothing: float = GAP_SMOOTHING
    overfit_patience: int = OVERFIT_PATIENCE

    def __post_init__(self) -> None:
        w, p = self.gap_smoothing, self.overfit_patience
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise ValueError(f"gap_smoothing is the newest gap's weight, in (0, 1] (default {GAP_SMOOTHING}); got {w!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"overfit_patience is a number of validations, an integer >= 1 (default "
                             f"{OVERFIT_PATIENCE}); got {p!r}")

    @property
    def best(self) -> EvalRecord | None:
        return None if self.best_index is None else self.records[self.best_index]

    @property
    def overfit_at(self) -> int | None:
        """Index of the record where the run's overfitting began, or None: the first of the
        ``overfit_patience`` rising validations of the first firing after the best validation
        record (:func:`overfit_start`). A record's ``overfitting`` flag is the live signal, what
        the run knew then (this rule on the run so far); a firing that a new best validation loss
        followed was a false alarm and is not reported here."""
        fired = [r.index for r in self.records if r.overfitting]
        return overfit_start(fired, self.best_index, self.overfit_patience)

    @property
    def gaps(self) -> list[float | None]:
        """The smoothed generalization gap per record (None without validation data)."""
        return smoothed_gaps(self.train_losses, self.val_losses, self.gap_smoothing)

    @property
    def train_losses(self) -> list[float]:
        return [r.train_loss for r in self.records]

    @property
    def val_losses(self) -> list[float | None]:
        return [r.val_loss for r in self.records]

    def live_flag(self, train_loss: float, val_loss: float | None, improved: bool) -> bool:
        """The ``overfitting`` flag of a new record with these losses (``improved``: it sets a
        new best): what :attr:`overfit_at` would report if the run ended at it. On at a firing
        (:meth:`overfits`) and from then on, off at a new best validation loss. It reads every flag
        since the best, as :attr:`overfit_at` does, not only the last record's: a checkpoint written
        before the flag held keeps each record's firing alone."""
        if improved:
            return False
        since_best = self.records[0 if self.best_index is None else self.best_index + 1:]
        return any(r.overfitting for r in since_best) or self.overfits(train_loss, val_loss)

    def overfits(self, train_loss: float, val_loss: float | None) -> bool:
        """Whether the signal fires at a new record with these losses: the smoothed gap rose at
        each of the last ``overfit_patience`` validations, beyond its noise, without a new best."""
        p = self.overfit_patience
        if val_loss is None or len(self.records) < p:
            return False
        gaps = smoothed_gaps([*self.train_losses, train_loss], [*self.val_losses, val_loss], self.gap_smoothing)
        window = gaps[-p - 1:]
        if any(g is None for g in window):
            return False
        rising = all(b > a for a, b in zip(window, window[1:], strict=False))  # type: ignore[operator]
        vals = [v for v in self.val_losses[:-p + 1 or None] if v is not None and math.isfinite(v)]
        recent = [v for v in [*self.val_losses[len(self.val_losses) - p + 1:], val_loss]
                  if v is not None and math.isfinite(v)]
        if not (rising and vals and min(recent) >= min(vals)):
            return False
        noise = gap_noise([*self.train_losses, train_loss][-NOISE_WINDOW:], [*self.val_losses, val_loss][-NOISE_WINDOW:])
        return window[-1] - window[0] > OVERFIT_NOISE * noise  # type: ignore[operator]

    def curves(self) -> dict[str, list[float | None]]:
        """Training loss, validation loss, smoothed gap and epochs finished by record (JSON-ready):
        the epochs tell a run validated each epoch from one validated every ``eval_every`` steps."""
        return {"train_loss": list[float | None](self.train_losses), "val_loss": self.val_losses, "gap": self.gaps,
                "epoch": [float(r.epoch) for r in self.records]}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        d = dict(d)
        records = [EvalRecord(**r) for r in d.pop("records")]
        return cls(records=records, **d)


def overfit_start(fired: list[int], best: int | None, patience: int) -> int | None:
    """Where a run's overfitting began, from the indices of the records whose signal fired (or whose
    live flag is on: a firing and the records after it until a new best): the start (``patience - 1``
    records before) of the first of them after the ``best`` validation record (the first of all
    without one), a firing since a new best turns the flag off. Such a start always follows the best:
    the signal holds only after ``patience`` validations without a new best."""
    after = next((i for i in fired if best is None or i > best), None)
    return None if after is None else after - patience + 1


def gap_noise(train: list[float], val: list[float | None]) -> float:
    """The standard deviation of the gap ``val - train`` from one validation to the next, trends
    left out: from the median absolute second difference (a straight rise or fall has none),
    scaled to a standard deviation for Gaussian noise; 0 with fewer than 3 finite gaps."""
    gaps = [v - t for t, v in zip(train, val, strict=True) if v is not None and math.isfinite(v - t)]
    second = [abs(c - 2 * b + a) for a, b, c in zip(gaps, gaps[1:], gaps[2:], strict=False)]
    return 1.4826 * statistics.median(second) / math.sqrt(6) if second else 0.0


def smoothed_gaps(train: list[float], val: list[float | None], weight: float) -> list[float | None]:
    """Exponential moving average of ``val - train`` (None where there is no validation loss, or
    where either loss is NaN or infinite: the average goes on from the gaps before, which one
    such validation would otherwise turn NaN or infinite for the rest of the run)."""
    out: list[float | None] = []
    avg: float | None = None
    for t, v in zip(train, val, strict=True):
        gap = None if v is None else v - t
        if gap is None or not math.isfinite(gap):
            out.append(None)
            continue
        avg = gap if avg is None else weight * gap + (1 - weight) * avg
        out.append(avg)
    return out
