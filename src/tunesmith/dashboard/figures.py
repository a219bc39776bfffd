"""The dashboard's plots: the report's records (:mod:`tunesmith.plots`), reduced on the server
(:mod:`.aggregate`) and rendered by the same plotly renderer, sent as plotly JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..plots import KINDS, Record, comparison, curves_data, importance_bars, records_of
from ..plots.records import NO_REASON, Snapshot
from ..plots.reduce import WHOLE, sample, sampled_note, thin
from ..plots.study_data import unreadable_reports
from .cache import StudyCache, View

#: the plots of the study page, in order (those of the report, importance on its own page)
STUDY_KINDS = ("history", "curves", "process", "parallel", "slice", "contour", "overfitting")


def figure(record: Record) -> dict[str, Any]:
    """One record as the browser draws it: plotly's figure JSON, with its title and message
    (their control characters written as escapes)."""
    from ..plots.plotly_render import figure_json, unseen_as_escapes
    from ..plots.records import short_title

    fig = figure_json(thin(record))
    # an empty reason ("", str() of an exception without a message) says so rather than nothing
    message = None if record.message is None else unseen_as_escapes(short_title(record.message or NO_REASON))
    # title and message as the plot writes its title (a name's ESC as \x1b): the page shows them for a
    # plot with nothing to draw, where an ESC or U+202E was drawn as nothing or turned the line around
    return {"kind": record.kind, "title": unseen_as_escapes(short_title(record.title)), "message": message, "figure": fig}


def study_plots(snap: Snapshot, kind: str) -> list[dict[str, Any]]:
    """The figures of one kind of :data:`STUDY_KINDS` for a study."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of {list(KINDS)}")
    source = snap if kind in WHOLE else sample(snap)
    out = [figure(r) for r in records_of(source, kind)]
    if note := sampled_note(source, snap):
        for f in out:
            f["note"] = note
    return out


def plots_of(cache: StudyCache, v: View, kind: str) -> list[dict[str, Any]]:
    """:func:`study_plots` of the study ``v``, computed once per version."""
    plots: list[dict[str, Any]] = v.cached(("plots", kind), lambda: study_plots(cache.snapshot(v), kind))
    return plots


def trial_curve(snap: Snapshot, number: int) -> dict[str, Any]:
    """The intermediate values of one trial, as the study's learning-curves plot draws them: the
    study's rungs up to the trial's last step, and thick only when it is the study's best (a
    snapshot of the trial alone learnt the budget from it, and made it its own best)."""
    t = next(t for t in snap.trials if t.number == number)
    chart = curves_data(replace(snap, trials=(t,), rungs=_study_rungs(snap)))
    best = snap.best()
    if best is None or best.number != number:
        chart = replace(chart, series=tuple(replace(s, width=1.0) if s.gid == f"trial-{number}" else s
                                            for s in chart.series))
    return figure(replace(chart, title=f"trial {number}: intermediate values{unreadable_reports([t])}"))


def _study_rungs(snap: Snapshot) -> Callable[[int], list[int]] | None:
    """The rungs the study's learning curves draw, cut at any trial's last step."""
    if snap.rungs is None:
        return None
    every = list(snap.rungs(max((max(t.intermediate) for t in snap.trials if t.intermediate), default=0)))
    return lambda last: [r for r in every if r <= last]


def importance_plot(snap: Snapshot, *, method: str = "fanova") -> dict[str, Any]:
    s = sample(snap)
    out = figure(importance_bars(s, method=method))
    if note := sampled_note(s, snap):
        out["note"] = note
    return out


def comparison_plot(snaps: list[Snapshot], direction: str | None = None) -> dict[str, Any]:
    return figure(comparison(snaps, direction=direction))
