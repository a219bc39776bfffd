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
#: validations, at two validations in a row: on a plateau of pure noise, three rises in a row of the
#: moving average came in most runs, and one rise past 2.5 x its noise in a quarter to a third of runs
#: of 50 validations (benchmarks/LOG.md, sig4)
OVERFIT_NOISE = 2.0
#: the rise (x the gap's noise) that fires at one validation, where the training loss fell over the
#: same validations by more than OVERFIT_LEARNING times its own noise (the model still learning its
#: training data while the gap grows; a plateau's training loss only fluctuates)
OVERFIT_NOISE_ONCE = 2.5
OVERFIT_LEARNING = 4.0
NOISE_WINDOW = 10


@dataclasses.dataclass
class History:
    """The records of a training run, and what they say.

    The overfitting signal: the generalization gap (validation loss - training
    loss), smoothed by an exponential moving average (``gap_smoothing``: the
    newest value's weight), grew at each of the last ``overfit_patience``
    validations while the validation loss set no new best in them, by more than
    ``OVERFIT_NOISE`` times the noise of the gap (:func:`gap_noise`): :meth:`overfits`.
    The signal fires where that holds at two validations in a row, or at one where the rise
    passes ``OVERFIT_NOISE_ONCE`` times the noise while the training loss fell over those
    validations by more than ``OVERFIT_LEARNING`` times its own noise (:func:`fires`). Each
    record's ``overfitting`` flag is the live signal (:meth:`live_flag`): on from the first
    firing after the best validation so far until a new best. :attr:`overfit_at`, the run's
    summary, is where the rise of the first firing after the run's best validation began
    (one that a new best followed was a false alarm), so the last record's flag is the
    summary. Noise alone (a plateau whose losses only fluctuate) turns the live flag on in
    about one in nine runs of 50 validations (in nine of ten without the noise conditions).
    ``finished``: the run is over (``Trainer.fit`` returned); until then its summary is of the run so far.
    """

    records: list[EvalRecord] = dataclasses.field(default_factory=lambda: Records())
    best_loss: float = math.inf
    best_index: int | None = None
    stopped_early: bool = False
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    gap_smoothing: float = GAP_SMOOTHING
    overfit_patience: int = OVERFIT_PATIENCE
    finished: bool = False  # last: a History built by position before it gets each field where it was

    def __post_init__(self) -> None:
        self._seen = Seen(self.gap_smoothing)  # not a field: never in to_dict (checkpoints)
        w, p = self.gap_smoothing, self.overfit_patience
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise ValueError(f"gap_smoothing is the newest gap's weight, in (0, 1] (default {GAP_SMOOTHING}); got {w!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"overfit_patience is a number of validations, an integer >= 1 (default "
                             f"{OVERFIT_PATIENCE}); got {p!r}")

    @property
    def best(self) -> EvalRecord | None:
        return None if self.best_index is None else self.records[self.best_index]

    def __repr__(self) -> str:
        """A summary: printing a run's History printed every record's every field (``records`` holds them)."""
        parts = [f"{len(self.records)} validation{'s' * (len(self.records) != 1)}"]
        best = self.best
        if best is not None:
            parts.append(f"best: records[{best.index}] (epoch {best.epoch}, step {best.step}, loss {self.best_loss:.4g})")
        at = self.overfit_at
        if at is not None:
            parts.append(f"overfit_at: records[{at}] (epoch {self.records[at].epoch})")
        parts += ["stopped early"] * self.stopped_early + ["running"] * (not self.finished)
        parts += [f"best_checkpoint={self.best_checkpoint!r}"] * bool(self.best_checkpoint)
        return f"History({'; '.join(parts)})"

    @property
    def overfit_at(self) -> int | None:
        """Index of the record where the run's overfitting began, or None: the first of the rising
        validations (at most ``overfit_patience + 1``, all after the best validation record) that
        led to the first firing after it (:func:`overfit_start`). A record's ``overfitting`` flag
        is the live signal, what the run knew then (this rule on the run so far); a firing that a
        new best validation loss followed was a false alarm and is not reported here."""
        fired = [r.index for r in self.records if r.overfitting]
        first = overfit_start(fired, self.best_index, 1)
        if first is None:
            return None
        gaps, start, floor = self.gaps, first, -1 if self.best_index is None else self.best_index
        while first - start < self.overfit_patience and start - 1 > max(floor, 0) and \
                None not in (gaps[start - 1], gaps[start - 2]) and gaps[start - 1] > gaps[start - 2]:  # type: ignore[operator]
            start -= 1
        return start

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
        new best): what :attr:`overfit_at` would report if the run ended at it. On where the
        signal fires (:func:`fires`) and from then on, off at a new best validation loss. It reads
        every flag since the best, as :attr:`overfit_at` does, not only the last record's: a
        checkpoint written by an earlier tunesmith keeps its flags. It reads the losses of the last
        few records (``NOISE_WINDOW``, ``overfit_patience``), however long the run: what it needs of
        those before is kept as the records are appended (:class:`Seen`), and read again where one
        of them was replaced, moved or removed."""
        if improved:
            return False
        seen = self._seen = self._seen.of(self.records, self.gap_smoothing)
        if seen.flagged > (-1 if self.best_index is None else self.best_index):
            return True
        start = max(0, len(self.records) - max(NOISE_WINDOW, self.overfit_patience + 1))  # the test's records
        tail = self.records[start:]
        gaps = [*seen.gaps[start:], smoothed_step(seen.avg, train_loss, val_loss, self.gap_smoothing)[1]]
        return fires([*(r.train_loss for r in tail), train_loss], [*(r.val_loss for r in tail), val_loss], gaps,
                     self.overfit_patience, seen.lowest[start])

    def overfits(self, train_loss: float, val_loss: float | None) -> bool:
        """Whether the smoothed gap rose at each of the last ``overfit_patience`` validations, by
        more than ``OVERFIT_NOISE`` times its noise, without a new best, at a new record with these
        losses (the signal fires where this holds at two records in a row: :func:`fires`)."""
        train, val = [*self.train_losses, train_loss], [*self.val_losses, val_loss]
        return gap_rise(train, val, smoothed_gaps(train, val, self.gap_smoothing), self.overfit_patience, math.inf) \
            > OVERFIT_NOISE

    def curves(self) -> dict[str, list[float | None]]:
        """Training loss, validation loss, smoothed gap and epochs finished by record (JSON-ready):
        the epochs tell a run validated each epoch from one validated every ``eval_every`` steps."""
        return {"train_loss": list[float | None](self.train_losses), "val_loss": self.val_losses, "gap": self.gaps,
                "epoch": [float(r.epoch) for r in self.records]}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["records"] = list(d["records"])  # a plain list: a checkpoint holds no class of ours
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        d = dict(d)
        records = Records(EvalRecord(**r) for r in d.pop("records"))
        return cls(records=records, **d)


class Records(list[EvalRecord]):
    """A History's records: a list that counts its changes other than records appended at its end
    (``edits``), so that what the live flag kept of them is known current without comparing every record
    (:meth:`Seen.of`): that comparison cost 0.27 ms a report after 20,000 validations, 2.5 ms after
    100,000 (benchmarks/overfitting.md)."""

    edits = 0

    def _edit(self, name: str, *args: Any) -> Any:
        self.edits += 1
        return getattr(super(), name)(*args)

    def __setitem__(self, i: Any, v: Any) -> None:
        self._edit("__setitem__", i, v)

    def __delitem__(self, i: Any) -> None:
        self._edit("__delitem__", i)

    def __imul__(self, n: Any) -> Records:  # type: ignore[misc]
        return self._edit("__imul__", n)

    def insert(self, i: Any, v: Any) -> None:
        self._edit("insert", i, v)

    def pop(self, i: Any = -1) -> Any:
        return self._edit("pop", i)

    def remove(self, v: Any) -> None:
        self._edit("remove", v)

    def clear(self) -> None:
        self._edit("clear")

    def sort(self, **kwargs: Any) -> None:
        self.edits += 1
        super().sort(**kwargs)

    def reverse(self) -> None:
        self._edit("reverse")


def overfit_start(fired: list[int], best: int | None, rising: int) -> int | None:
    """Where a run's overfitting began, from the indices of the records whose signal fired (or whose
    live flag is on: a firing and the records after it until a new best): the start (``rising - 1``
    records before, the ``rising`` validations whose gap rose) of the first of them after the ``best``
    validation record (the first of all without one), a firing since a new best turns the flag off.
    Such a start always follows the best: the signal holds only after those validations without a new best."""
    after = next((i for i in fired if best is None or i > best), None)
    return None if after is None else after - rising + 1


@dataclasses.dataclass
class Seen:
    """What the live flag reads of the records before the last few, kept as records are appended
    (:meth:`of`): the records read (``read``, by reference), the smoothed gap of each (``avg`` the
    last moving average), ``lowest[i]`` the lowest finite validation loss of the records before i,
    and the place in the records of the last one flagged."""

    weight: float
    read: list[EvalRecord] = dataclasses.field(default_factory=list)
    source: list[EvalRecord] | None = None  # the Records read, and their edits then (:meth:`of`)
    edits: int = -1
    avg: float | None = None
    gaps: list[float | None] = dataclasses.field(default_factory=list)
    lowest: list[float] = dataclasses.field(default_factory=lambda: [math.inf])
    flagged: int = -1

    def of(self, records: list[EvalRecord], weight: float) -> Seen:
        """These, brought up to ``records``: read from the start again where the records are not
        those read plus records appended (one replaced, moved or removed, another ``weight``): a History's
        own :class:`Records` say so by their count of edits; other lists are compared with those read by
        reference (0.27 ms after 20,000 validations, 2.5 ms after 100,000)."""
        n = len(self.read)
        same = self.weight == weight and len(self.gaps) == n and len(records) >= n and (  # gaps: one cut short
            self.appended_to(records) or records[:n] == self.read)
        seen = self if same else Seen(weight)
        for r in records[len(seen.read):]:
            seen.avg, gap = smoothed_step(seen.avg, r.train_loss, r.val_loss, weight)
            seen.gaps.append(gap)
            v = r.val_loss
            seen.lowest.append(min(seen.lowest[-1], v) if v is not None and math.isfinite(v) else seen.lowest[-1])
            seen.flagged = len(seen.read) if r.overfitting else seen.flagged  # its place, as best_index
            seen.read.append(r)
        seen.source, seen.edits = records, getattr(records, "edits", -1)
        return seen

    def appended_to(self, records: list[EvalRecord]) -> bool:
        """Whether ``records`` are the :class:`Records` read, changed since by records appended only (the
        last read still in its place: two threads reading at once may have read some twice)."""
        return isinstance(records, Records) and records is self.source and records.edits == self.edits and \
            (not self.read or records[len(self.read) - 1] is self.read[-1])


def fires(train: list[float], val: list[float | None], gaps: list[float | None], patience: int, floor: float) -> bool:
    """Whether the overfitting signal fires at the last of these records (the last of a run; ``gaps``
    their smoothed gaps, ``floor`` the lowest finite validation loss of the run's records before them):
    the smoothed gap rose at each of the last ``patience`` by more than ``OVERFIT_NOISE`` times its
    noise at this record and the one before, or by more than ``OVERFIT_NOISE_ONCE`` times at this one
    while the training loss fell over them by more than ``OVERFIT_LEARNING`` times its own noise."""
    rise = gap_rise(train, val, gaps, patience, floor)
    if rise <= OVERFIT_NOISE:
        return False
    if gap_rise(train[:-1], val[:-1], gaps[:-1], patience, floor) > OVERFIT_NOISE:
        return True
    fell = train[-patience - 1] - train[-1]
    return rise > OVERFIT_NOISE_ONCE and fell > OVERFIT_LEARNING * step_noise(train[-NOISE_WINDOW:])


def gap_rise(train: list[float], val: list[float | None], gaps: list[float | None], patience: int,
             floor: float) -> float:
    """How many times its noise over the last ``NOISE_WINDOW`` (:func:`gap_noise`) the smoothed ``gaps``
    of these losses rose over the last ``patience`` records, having risen at each while the validation
    loss set no new best in them (below ``floor``, that of the records before these, and those of
    these before them); 0 where not (or where the last has no validation loss)."""
    window = gaps[-patience - 1:]
    if len(gaps) <= patience or val[-1] is None or any(g is None for g in window):
        return 0.0
    if not all(b > a for a, b in zip(window, window[1:], strict=False)):  # type: ignore[operator]
        return 0.0
    before = min([floor, *(v for v in val[:-patience] if v is not None and math.isfinite(v))])
    recent = [v for v in val[-patience:] if v is not None and math.isfinite(v)]
    if not min(recent) >= before:  # none before: inf
        return 0.0
    rise, noise = window[-1] - window[0], gap_noise(train[-NOISE_WINDOW:], val[-NOISE_WINDOW:])  # type: ignore[operator]
    return rise / noise if noise > 0 else math.inf


def gap_noise(train: list[float], val: list[float | None]) -> float:
    """The standard deviation of the gap ``val - train`` from one validation to the next, trends
    left out (:func:`step_noise`)."""
    return step_noise([v - t for t, v in zip(train, val, strict=True) if v is not None])


def step_noise(values: list[float]) -> float:
    """The standard deviation of the finite ``values`` from one to the next, trends left out: from
    the median absolute second difference (a straight rise or fall has none), scaled to a standard
    deviation for Gaussian noise; 0 with fewer than 3 finite values."""
    xs = [x for x in values if math.isfinite(x)]
    second = [abs(c - 2 * b + a) for a, b, c in zip(xs, xs[1:], xs[2:], strict=False)]
    return 1.4826 * statistics.median(second) / math.sqrt(6) if second else 0.0


def smoothed_gaps(train: list[float], val: list[float | None], weight: float) -> list[float | None]:
    """Exponential moving average of ``val - train`` (None where there is no validation loss, or
    where either loss is NaN or infinite: the average goes on from the gaps before, which one
    such validation would otherwise turn NaN or infinite for the rest of the run)."""
    out: list[float | None] = []
    avg: float | None = None
    for t, v in zip(train, val, strict=True):
        avg, gap = smoothed_step(avg, t, v, weight)
        out.append(gap)
    return out


def smoothed_step(avg: float | None, train: float, val: float | None, weight: float) -> tuple[float | None, float | None]:
    """The moving average after one more record with these losses, and that record's smoothed gap
    (None where it has none: :func:`smoothed_gaps`)."""
    gap = None if val is None else val - train
    if gap is None or not math.isfinite(gap):
        return avg, None
    avg = gap if avg is None else weight * gap + (1 - weight) * avg
    return avg, avg
