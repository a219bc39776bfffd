"""Server-side reduction, so the browser never receives a large study's every trial:
:func:`sample` and :func:`thin` (:mod:`tunesmith.plots.reduce`, shared with the report) and
:func:`page`: one page of the trials table, filtered and sorted.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import threading
from collections.abc import Iterator, Sequence
from typing import overload

from ..plots.reduce import MAX_POINTS, SAMPLE, sample, thin
from ..study.heartbeat import LOST
from ..trial import Direction, FrozenTrial, TrialState, by_value, tie_key
from .cache import View

__all__ = ["MAX_POINTS", "ORDERS", "SAMPLE", "page", "sample", "thin"]

#: the orders the trials table offers
ORDERS = ("number", "-number", "best", "duration")


def page(v: View, *, offset: int = 0, limit: int = 50, state: str | None = None,
         order: str = "number") -> tuple[int, list[FrozenTrial]]:
    """(how many trials of ``v`` match, the ``limit`` of them from ``offset``) in ``order``:
    "number", "-number" (newest first), "best" (complete ones first, best first), "duration" (:func:`ran_for`).
    Each order is sorted once per version of the study."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    rows: Sequence[FrozenTrial] = v.cached(("rows", state, order), lambda: _ordered(v, state, order))
    return len(rows), list(rows[offset:offset + limit])


def _ordered(v: View, state: str | None, order: str) -> Sequence[FrozenTrial]:
    rows = list(v.trials) if state is None else [t for t in v.trials if t.state.value == state]
    if order == "-number":
        rows.reverse()
    elif order == "best":
        return ByBest(rows, v.record.direction)
    elif order == "duration":
        rows.sort(key=lambda t: (-(ran_for(t) or 0.0), t.number))
    return rows


class ByBest(Sequence[FrozenTrial]):
    """``rows`` by best: the complete trials as ``best_trial`` ranks them (:func:`~tunesmith.trial.ranked`), then
    the rest by value. Each run of trials tied on the value is ranked by its reports
    (:func:`~tunesmith.trial.tie_key`) only once a page shows one of them: the page of 50 of 5,000 trials tied in
    groups of ~100 ranked every tie of the study. Pages read at once (the server's threads) rank a run once."""

    def __init__(self, rows: Sequence[FrozenTrial], direction: Direction) -> None:
        self._sign = direction.sign()
        done = by_value(rows, self._sign)
        first = {t.number for t in done}
        rest = [t for t in rows if t.number not in first]
        rest.sort(key=lambda t: (t.state is not TrialState.COMPLETE, _loss(t, self._sign), t.number))
        self._rows = done + rest
        self._ties: list[tuple[int, int]] = []  # (start, end) of each run of equal values not ranked yet
        start, value = 0, operator.attrgetter("value")
        runs = itertools.groupby(done, key=value) if len(set(map(value, done))) < len(done) else ()
        for _, run in runs:  # == decides, as in ranked (two values equal: a tie)
            end = start + sum(1 for _ in run)
            if end - start > 1:
                self._ties.append((start, end))
            start = end
        self._starts = [a for a, _ in self._ties]
        self._ranked: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> FrozenTrial: ...

    @overload
    def __getitem__(self, i: slice) -> list[FrozenTrial]: ...

    def __getitem__(self, i: int | slice) -> FrozenTrial | list[FrozenTrial]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self._rows))
            self._rank(*((start, stop) if step == 1 else (0, len(self._rows))))
            return self._rows[i]
        at = range(len(self._rows))[i]  # an IndexError past either end
        self._rank(at, at + 1)
        return self._rows[at]

    def __iter__(self) -> Iterator[FrozenTrial]:
        return iter(self[:])

    def _rank(self, start: int, stop: int) -> None:
        """Rank the runs of ties that rows ``start`` to ``stop`` (not included) reach into."""
        with self._lock:
            k = max(bisect.bisect_right(self._starts, start) - 1, 0)
            for a, b in itertools.takewhile(lambda ab: ab[0] < stop, itertools.islice(self._ties, k, None)):
                if b > start and a not in self._ranked:
                    self._rows[a:b] = sorted(self._rows[a:b], key=lambda t: tie_key(t, self._sign))
                    self._ranked.add(a)


#: how the error of a trial failed by the heartbeat check starts
_LOST_BY_HEARTBEAT = LOST.split("{", 1)[0]


def lost_at(t: FrozenTrial) -> tuple[float, float, float] | None:
    """A trial failed by the heartbeat check: its start, last heartbeat (its worker's last sign of life) and
    end (when it was judged lost, a grace period later)."""
    started, beat, end = t.started, t.heartbeat, t.completed
    if t.state is not TrialState.FAILED or not (t.error or "").startswith(_LOST_BY_HEARTBEAT):
        return None
    if not (isinstance(started, (int, float)) and isinstance(beat, (int, float)) and isinstance(end, (int, float))):
        return None
    return (started, beat, end) if started <= beat <= end else None


def ran_for(t: FrozenTrial) -> float | None:
    """The seconds trial ``t`` ran: to its last heartbeat for one lost by the heartbeat check, not to when it
    was judged lost (a grace period after its worker was killed)."""
    lost = lost_at(t)
    return t.duration if lost is None else lost[1] - lost[0]


def _loss(t: FrozenTrial, sign: float) -> float:
    return sign * float(t.value) if t.value is not None and math.isfinite(t.value) else math.inf
