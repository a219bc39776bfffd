"""Reduction of a large study for drawing, so that neither the dashboard's browser nor a report
receives its every trial (the dashboard and :mod:`tunesmith.report` use the same):

- :func:`sample`: the trials a heavy plot is computed on (evenly spaced by number, the
  best one always kept) when a study has more than ``limit``;
- :func:`thin`: a record's series cut to at most ``max_points`` points (the envelope of
  each bucket kept: its lowest and highest value; a step line kept at its steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .records import Chart, Record, Series, Snapshot

#: kinds drawn from every trial (cheap); the others from :func:`sample`
WHOLE = ("history", "process", "overfitting")
#: trials a heavy plot (curves, parallel, slices, contours, importance) is computed on at most
SAMPLE = 1000
#: points one series sends to the browser at most
MAX_POINTS = 2000


def sample(s: Snapshot, limit: int = SAMPLE) -> Snapshot:
    """``s`` with exactly ``limit`` trials when it has more: the best, and the others evenly spaced
    by number (the first and last among them always kept)."""
    if len(s.trials) <= limit:
        return s
    best = s.best()
    others = [t for t in s.trials if t.number != best.number] if best is not None else list(s.trials)
    n = limit - 1 if best is not None else limit
    # len(others) >= n, so the rounded positions are n distinct indices
    idx = np.linspace(0, len(others) - 1, n).round().astype(int) if n > 1 else np.zeros(n, dtype=int)
    picked = [others[i] for i in idx.tolist()]
    if best is not None:
        picked = sorted([*picked, best], key=lambda t: t.number)
    return replace(s, trials=tuple(picked))


def thin(record: Record, max_points: int = MAX_POINTS) -> Record:
    """``record`` with each of its chart series at most ``max_points`` long."""
    if not isinstance(record, Chart):
        return record
    return replace(record, series=tuple(_thin_series(s, max_points) for s in record.series))


def _thin_series(s: Series, n: int) -> Series:
    if len(s.x) <= n or s.mode in ("contour", "bars", "vline", "band"):
        return s
    keep = _steps(s.y) if s.mode == "steps" else _envelope(s.y, n)
    if len(keep) > n:
        keep = keep[np.linspace(0, len(keep) - 1, n).round().astype(int)]
    return _take(s, keep)


def _steps(y: Sequence[Any]) -> np.ndarray:
    """Indices where a step line changes level, and its last point."""
    v = np.asarray(y, dtype=float)
    change = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    return np.unique(np.r_[change, len(v) - 1])


def _envelope(y: Sequence[Any], n: int) -> np.ndarray:
    """Indices of the lowest and highest point of each of ``n // 2`` equal buckets."""
    try:
        v = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        return np.linspace(0, len(y) - 1, n).round().astype(int)
    v = np.where(np.isfinite(v), v, np.nan)
    buckets = max(1, n // 2)
    edges = np.linspace(0, len(v), buckets + 1).round().astype(int)
    keep: list[int] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = v[a:b]
        if b <= a:
            continue
        if np.all(np.isnan(part)):
            keep.append(a)
            continue
        keep += [a + int(np.nanargmin(part)), a + int(np.nanargmax(part))]
    return np.unique(np.asarray(keep, dtype=int))


def _take(s: Series, idx: np.ndarray) -> Series:
    def pick(seq: Sequence[Any] | None) -> Any:
        return None if seq is None else [seq[i] for i in idx]

    return replace(s, x=pick(s.x), y=pick(s.y) if len(s.y) else s.y, hover=pick(s.hover), colors=pick(s.colors),
                   low=pick(s.low), high=pick(s.high), error=pick(s.error))


def sampled_note(sampled: Snapshot, whole: Snapshot) -> str | None:
    """What a plot computed on ``sampled`` says below it; None when it is the whole study."""
    if sampled is whole:
        return None
    return f"computed on {len(sampled.trials)} of {len(whole.trials)} trials (evenly spaced, and the best)"


__all__ = ["MAX_POINTS", "SAMPLE", "WHOLE", "sample", "sampled_note", "thin"]
