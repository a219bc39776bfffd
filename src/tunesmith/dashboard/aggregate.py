"""Server-side reduction, so the browser never receives a large study's every trial:
:func:`sample` and :func:`thin` (:mod:`tunesmith.plots.reduce`, shared with the report) and
:func:`page`: one page of the trials table, filtered and sorted.
"""

from __future__ import annotations

import math

from ..plots.reduce import MAX_POINTS, SAMPLE, sample, thin
from ..study.heartbeat import LOST
from ..trial import FrozenTrial, TrialState, ranked
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
    rows: list[FrozenTrial] = v.cached(("rows", state, order), lambda: _ordered(v, state, order))
    return len(rows), rows[offset:offset + limit]


def _ordered(v: View, state: str | None, order: str) -> list[FrozenTrial]:
    sign = v.record.direction.sign()
    rows = list(v.trials) if state is None else [t for t in v.trials if t.state.value == state]
    if order == "-number":
        rows.reverse()
    elif order == "best":  # the complete trials as best_trial ranks them, then the rest by value
        done = ranked(rows, v.record.direction)
        first = {t.number for t in done}
        rest = [t for t in rows if t.number not in first]
        rest.sort(key=lambda t: (t.state is not TrialState.COMPLETE, _loss(t, sign), t.number))
        rows = done + rest
    elif order == "duration":
        rows.sort(key=lambda t: (-(ran_for(t) or 0.0), t.number))
    return rows


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
