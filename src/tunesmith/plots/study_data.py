"""Data of the plots of one study: history, learning curves, parallel coordinates, slices,
contours and the process diagram. Each takes a Study or a :class:`Snapshot` and returns
a record (see :mod:`.records`); none draws."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cv import CV_ATTR, fold_metric, is_summary
from ..space import display_names, value_labels
from ..space.params import did_you_mean_each, plural
from ..storage.base import command_line, password_note
from ..trial import FrozenTrial, TrialState
from .records import (
    BEST_COLOR,
    STATE_COLORS,
    Axis,
    Chart,
    Diagram,
    Node,
    Parallel,
    Series,
    Snapshot,
    box_for,
    end_ticks,
    nothing,
    on_log_y,
    snapshot,
)

#: each state with a value the history draws, and its marker (paused: the last report, until resumed)
_HISTORY_MARKERS = {TrialState.COMPLETE: "o", TrialState.PRUNED: "x", TrialState.PAUSED: "v"}


def history(study: Any, *, log_y: bool = False) -> Chart:
    """Each finished trial's value by trial number (pruned: their last report), each paused
    trial's last report (marked paused), and the best complete value so far as a step line."""
    s = snapshot(study)
    done = [t for t in s.trials if t.state in _HISTORY_MARKERS and t.value is not None]
    paused = sum(t.state is TrialState.PAUSED for t in done)
    title = (f"{s.name}: {len(done) - paused} finished{f', {paused} paused' if paused else ''} of "
             f"{plural(len(s.trials), 'trial')}{_failed(s)}")
    if not done:
        return nothing("history", title, f"study {s.name!r} has no finished trial (nor a paused one) with a value yet")
    series = [
        Series(f"{state.value}{' (last report)' if state is TrialState.PAUSED else ''} ({len(some)})",
               [t.number for t in some], [t.value for t in some], mode="markers", color=STATE_COLORS[state],
               marker=marker, gid=state.value, hover=[f"trial {t.number}" for t in some])
        for state, marker in _HISTORY_MARKERS.items() if (some := [t for t in done if t.state is state])
    ]
    xs, ys = best_so_far(done, s.sign)
    if xs:
        series.append(Series("best so far", xs, ys, mode="steps", color=BEST_COLOR, gid="best-so-far"))
    return on_log_y(Chart("history", title, "trial", f"value ({s.direction.value})", tuple(series), log_y=log_y,
                          int_x=True), repr(s.name))


def best_so_far(trials: Sequence[FrozenTrial], sign: float) -> tuple[list[int], list[float]]:
    """(trial numbers, best complete value up to each), from the first complete trial on."""
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    for t in sorted(trials, key=lambda t: t.number):
        if t.state is TrialState.COMPLETE and (best is None or sign * float(t.value) < sign * best):  # type: ignore[arg-type]
            best = float(t.value)  # type: ignore[arg-type]
        if best is not None:
            xs.append(t.number)
            ys.append(best)
    return xs, ys


def learning_curves(study: Any, *, log_y: bool = False) -> Chart:
    """Each trial's intermediate reports against their step, coloured by state; a pruned
    trial ends in an "x", a paused one in an "o"; the best complete trial is thicker; the
    pruner's rungs are dotted vertical lines."""
    s = snapshot(study)
    left_out = unreadable_reports(s.trials)
    trials = [t if not t.intermediate or all(map(math.isfinite, t.intermediate.values()))
              else t.replace(intermediate={k: v for k, v in t.intermediate.items() if math.isfinite(v)})
              for t in s.trials]
    trials = [t for t in trials if t.intermediate]
    title = f"{s.name}: learning curves of {plural(len(trials), 'trial')}{left_out}"
    if not trials:
        why = (f"each of these reports is {UNPLACEABLE}" if left_out else f"no trial of {s.name!r} reported "
               "intermediate values (call trial.report(value, step) in the objective)")
        return nothing("curves", title, f"{why}; the history (tunesmith plot NAME --kind history, plots.history) "
                                        "draws each trial's value")
    best = s.best()
    counts = Counter(t.state for t in trials)
    labelled: set[TrialState] = set()
    series = []
    for t in trials:
        steps = sorted(t.intermediate)
        label = None if t.state in labelled else f"{t.state.value} ({counts[t.state]})"
        labelled.add(t.state)
        thick = best is not None and t.number == best.number
        # marker: the dot a renderer draws for a line of one report, a pruned trial's its "x" (not the paused "o")
        series.append(Series(label, steps, [t.intermediate[k] for k in steps], color=STATE_COLORS[t.state],
                             width=2.5 if thick else 1.0, opacity=0.6 if t.state is TrialState.PRUNED else 1.0,
                             marker=END_MARKERS.get(t.state), gid=f"trial-{t.number}",
                             hover=[f"trial {t.number}"] * len(steps)))
    ended = tuple(END_MARKERS)  # their last report gets a marker already
    for state in TrialState:  # a line of one report draws nothing: those trials' reports as points
        once = [t for t in trials if t.state is state and state not in ended and len(t.intermediate) == 1]
        if once:
            series.append(Series(None, [next(iter(t.intermediate)) for t in once],
                                 [next(iter(t.intermediate.values())) for t in once], mode="markers", marker="o",
                                 color=STATE_COLORS[state], gid=f"{state.value}-single",
                                 hover=[f"trial {t.number}" for t in once]))
    series.extend(_curve_ends(trials))
    rungs = list(s.rungs(max(max(t.intermediate) for t in trials))) if s.rungs else []
    if rungs:
        series.append(Series("rungs", rungs, mode="vline", color="#555555", width=0.8, dash=":", gid="rungs"))
    x_title, y_title = _curve_axes(trials)
    return on_log_y(Chart("curves", title, x_title, y_title, tuple(series), log_y=log_y, int_x=True),
                    f"the reports of {s.name!r}")


#: why a report stored as NaN or infinite is not drawn: what a plot says where there is no other to draw
UNPLACEABLE = ("NaN or infinite, which a curve cannot place (trial.report takes finite numbers only: another program "
               "wrote them to the database)")


def unreadable_reports(trials: Sequence[FrozenTrial]) -> str:
    """" (3 NaN or infinite reports of 2 trials left out; 1 of them reported no other)": what a plot of the
    reports leaves out and why, said once in its title ("" for none). ``report()`` takes finite numbers only, but
    a row written by hand or by another program may hold NaN or Infinity, which each renderer dropped unsaid."""
    bad = {t.number: sum(not math.isfinite(v) for v in t.intermediate.values()) for t in trials}
    bad = {n: k for n, k in bad.items() if k}
    if not bad:
        return ""
    whole = sum(len(t.intermediate) == bad.get(t.number) for t in trials)
    return (f" ({plural(sum(bad.values()), 'NaN or infinite report')} of {plural(len(bad), 'trial')} left out"
            + (f"; {whole} of them reported no other" if whole else "") + ")")


def _curve_axes(trials: Sequence[FrozenTrial]) -> tuple[str, str]:
    """The learning curves' axis titles: a step and its report, or, where every trial ran folds (``TunedSearchCV``,
    ``cv.cross_validate``: fold k reports the mean of folds 1..k), the fold and that running mean of the score
    the folds averaged ("mean roc_auc of folds 1..k")."""
    if not all(is_summary(t.attrs.get(CV_ATTR)) for t in trials):
        return "step", "reported value"
    return "fold", f"mean {fold_metric(trials) or 'score'} of folds 1..k"


#: the marker that ends a learning curve of a trial the pruner stopped
END_MARKERS = {TrialState.PRUNED: "x", TrialState.PAUSED: "o"}


def _curve_ends(trials: list[FrozenTrial]) -> list[Series]:
    out = []
    for state, marker in END_MARKERS.items():
        ends = [t for t in trials if t.state is state]
        if ends:
            out.append(Series(None, [max(t.intermediate) for t in ends], [t.intermediate[max(t.intermediate)] for t in ends],
                              mode="markers", marker=marker, color=STATE_COLORS[state], gid=f"{state.value}-ends"))
    return out


def parallel(study: Any, *, params: Sequence[str] | None = None) -> Parallel:
    """One line per complete trial through an axis per parameter and the value; categorical
    and inactive values are ticks (an inactive conditional parameter sits below its range)."""
    s = snapshot(study)
    names = _params(s, params)
    done = s.fitting
    title = f"{s.name}: parallel coordinates of {plural(len(done), 'complete trial')}"
    if not done:
        return Parallel("parallel", title, message=_no_complete(s))
    shown = display_names(s.space)  # a list of dicts' "0:C" as "C" or "C [branch 0]"
    made = [_axis(s, n, done) for n in names]
    axes = [dataclasses.replace(axis, name=shown[n]) for n, (axis, _) in zip(names, made, strict=True)]
    notes = [f"{shown[n]}: {note}" for n, (_, note) in zip(names, made, strict=True) if note]
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    axes.append(Axis(f"value ({s.direction.value})", values))
    title += f" ({'; '.join(notes)})" if notes else ""
    return Parallel("parallel", title, tuple(axes), values, reverse_scale=s.sign > 0)


def _axis(s: Snapshot, name: str, trials: list[FrozenTrial]) -> tuple[Axis, str]:
    """The parameter's axis, and what of its choices it leaves unnamed (:func:`shown_choices`; "" for none)."""
    p = s.space[name]
    if p.kind == "categorical":
        labels = value_labels(list(p.choices))  # type: ignore[attr-defined]  # 1.0000000000000009 as 1
        pos = [float(p.index(t.params[name])) if name in t.params else -1.0 for t in trials]  # type: ignore[attr-defined]
        shown, note = shown_choices(len(labels), [int(i) for i in pos if i >= 0], every_drawn=False)  # spans all
        ticks = [(float(i), labels[i]) for i in shown]
        return Axis(name, pos, ticks + ([(-1.0, "inactive")] if -1.0 in pos else [])), note.replace("shown", "named")
    log = bool(getattr(p, "log", False))
    raw = [float(t.params[name]) if name in t.params else None for t in trials]
    vals = [None if v is None else (float(np.log10(v)) if log else v) for v in raw]
    known = [v for v in vals if v is not None]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    below = lo - 0.1 * ((hi - lo) or 1.0)
    pos = [below if v is None else v for v in vals]
    step = int(getattr(p, "step", None) or 1)  # an Int's few values each get a tick
    few = bool(known) and p.kind == "int" and not log and hi - lo <= 10 * step
    each = [(float(k), str(k)) for k in range(int(lo), int(hi) + 1, step)] if few else ()
    if None not in vals:  # else the renderers label the range themselves
        return Axis(name, pos, each, log=log), ""
    # ticks replace the renderers' own labels: the range's ends (or each value) are labelled with "inactive"
    ends = list(each) or (end_ticks(lo, hi, log) if known else [])
    return Axis(name, pos, [(below, "inactive"), *ends], log=log), ""


def slices(study: Any, *, params: Sequence[str] | None = None, max_params: int = 24) -> list[Chart]:
    """For each parameter (default: the first ``max_params`` free ones), the complete trials'
    values against it (where it is active), coloured by trial number. Parameters left out
    are named by a last, empty chart (a study of 1,000 parameters drew 1,000 panels)."""
    s = snapshot(study)
    shown = display_names(s.space)
    names = _params(s, params)
    if not s.fitting:  # one reason, not "no complete trial has 'x' active" for each parameter
        return [nothing("slice", f"{s.name}: value against each parameter", _no_complete(s))]
    drawn = names if params is not None else names[:max_params]
    charts = [_slice(s, n, s.fitting, shown[n]) for n in drawn]
    if len(drawn) < len(names):
        charts.append(nothing("slice", f"{s.name}: value against the other parameters",
                              f"slices of the first {max_params} of {len(names)} parameters; "
                              f"{_draw_others(s, 'slice', names[max_params:max_params + 2])}"))
    return charts


#: the most choices of a categorical parameter a slice's axis holds (a parallel axis names): a space a database's
#: writer stored with 50,000 choices sent every one of them to the page (5 MB) and named every k-th in an image
MAX_CHOICES = 200


def shown_choices(n: int, drawn: Sequence[int], *, every_drawn: bool = True) -> tuple[list[int], str]:
    """The indices of a categorical's ``n`` choices an axis holds, in the space's order: all of them up to
    :data:`MAX_CHOICES`; more, those the trials drew (``drawn``), the first, the last and one in k of the rest,
    about :data:`MAX_CHOICES` in all; and a note that says what was left out ("" when none was).

    A slice's axis holds every choice the trials drew (``every_drawn``: its points lie on them), however many;
    a parallel axis, whose lines reach their choice's place named or not, names 1 in j of them where they are
    more than that: 1,000 trials that drew 1,000 choices of 50,000 named 1,001 ticks on one axis."""
    if n <= MAX_CHOICES:
        return list(range(n)), ""
    used = sorted(set(drawn))
    what = f"{len(used):,} choice{'' if len(used) == 1 else 's'} the trials drew"
    if not every_drawn and len(used) > MAX_CHOICES - 2:  # room for the axis' ends
        j = math.ceil(len(used) / (MAX_CHOICES - 2))
        what = f"1 in {j:,} of the {len(used):,} choices the trials drew"
        used = used[::j]
    room = MAX_CHOICES - len(used)
    if room <= 2:  # the trials' choices fill the axis: its ends besides (1 in 50,000 of the rest said nothing)
        shown, rest = sorted({*used, 0, n - 1}), "the first and the last"
    else:
        k = math.ceil(n / room)
        shown, rest = sorted({*used, *range(0, n, k), n - 1}), f"1 in {k:,} of the rest"
    return shown, f"{len(shown):,} of {n:,} choices shown: {what} and {rest}"


def _slice(s: Snapshot, name: str, done: list[FrozenTrial], label: str) -> Chart:
    on = [t for t in done if name in t.params]
    title = f"{s.name}: value against {label} ({plural(len(on), 'complete trial')})"
    if not on:
        return nothing("slice", title, f"no complete trial of {s.name!r} has {name!r} active")
    p = s.space[name]
    labels = value_labels(list(p.choices)) if p.kind == "categorical" else None  # type: ignore[attr-defined]
    categories: list[str] = []
    if labels is not None:
        shown, note = shown_choices(len(labels), [p.index(t.params[name]) for t in on])  # type: ignore[attr-defined]
        categories = [labels[i] for i in shown]
        title = f"{title[:-1]}; {note})" if note else title

    def x(v: Any) -> Any:  # a choice's label (by its index: 1, 1.0 and True are distinct choices)
        return v if labels is None else labels[p.index(v)]  # type: ignore[attr-defined]

    xs = [x(t.params[name]) for t in on]
    pts = Series(None, xs, [t.value for t in on], mode="markers", marker="o", gid="trials",
                 colors=[float(t.number) for t in on], hover=[f"trial {t.number}" for t in on])
    best = s.best()
    extra = []
    if best is not None and name in best.params and s.space.fits(best.params):
        extra.append(Series(f"best (trial {best.number})", [x(best.params[name])], [best.value], mode="markers", marker="*",
                            color=BEST_COLOR, gid="best"))
    return Chart("slice", title, label, f"value ({s.direction.value})", (pts, *extra),
                 log_x=bool(getattr(p, "log", False)), color_label="trial", int_x=p.kind == "int",
                 x_categories=tuple(categories))


def contours(study: Any, *, params: Sequence[str] | None = None, max_params: int = 3) -> list[Chart]:
    """A contour of the value over each pair of numeric parameters (default: the first
    ``max_params`` numeric ones, the best trial's first, and only the pairs some complete
    trial has active together), interpolated between the complete trials."""
    s = snapshot(study)
    numeric = [n for n in _params(s, params) if s.space[n].kind != "categorical"]
    names = numeric
    if params is None:  # in a conditional space the best trial's branch, not two parameters that never meet
        best = s.best()
        first = sorted(numeric, key=lambda n: best is None or n not in best.params)[:max_params]
        names = [n for n in numeric if n in first]
    if len(names) < 2:  # of those asked for: "'svm' has ['C']" read as if the study had no other
        asked, shown = _params(s, params) if params else [], _shown(s, names)
        which = (f"{s.name!r} has {shown or 'none'}" if params is None else f"only {shown} was asked for"
                 if names == asked else f"of those asked for, {_shown(s, asked)}, "
                 f"{f'only {shown} is' if names else 'none is'} numeric")
        return [nothing("contour", f"{s.name}: contour", f"a contour needs two numeric parameters; {which} "
                        "(see the slice plot for the others)")]
    if not s.fitting:  # one reason, as the slices give it, not "needs at least 3 complete trials" for each pair
        return [nothing("contour", f"{s.name}: contour", _no_complete(s))]
    if len(s.fitting) < 3:  # the same: one reason, not the same count said again for each pair
        return [nothing("contour", f"{s.name}: contour", f"a contour needs at least 3 complete trials; "
                        f"{s.name!r} has {len(s.fitting)} (only complete trials are drawn)")]
    pairs = _pairs(names)
    met = [(x, y) for x, y in pairs if _together(s, x, y)]
    if params is None and not any(_together(s, x, y) for x, y in _pairs(numeric)):
        return [nothing("contour", f"{s.name}: contour", f"no complete trial of {s.name!r} has two numeric parameters "
                        "active together (its conditional space puts them in different branches); see the slice plot")]
    drawn = met if params is None and met else pairs
    charts = [contour(s, x, y) for x, y in drawn]
    if len(names) < len(numeric):  # a pair not drawn that some trial has
        others = [(x, y) for x, y in _pairs(numeric) if (x, y) not in drawn and not {x, y} <= set(names)]
        hint = next((p for p in others if _together(s, *p)), None)
        if hint is not None:
            charts.append(nothing("contour", f"{s.name}: contours of the other parameters",
                                  f"contours of the first {max_params} of {len(numeric)} numeric parameters; "
                                  f"{_draw_others(s, 'contour', hint)}"))
    return charts


def _draw_others(s: Snapshot, kind: str, names: Sequence[str]) -> str:
    """The command that draws ``names`` (a report, which takes no ``--params``, said "name others with
    --params"), with the study's storage: the command's default is the current folder's tunesmith.db;
    for a study in memory, which no command reads, the call."""
    if not s.storage:
        return f"draw others with plots.{kind}s(study, params={list(names)!r})"
    listed = ",".join(names)  # "--params=-x,y": "--params -x,y" reads -x,y as an option
    params = [f"--params={listed}"] if listed.startswith("-") else ["--params", listed]
    command = command_line("plot", s.name, options=["--kind", kind, *params, "-o", f"{kind}.html", "--storage", s.storage])
    return f"draw others with {command}{password_note(s.storage)} (in Python: params=[...])"


def _pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    return [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]


def _together(s: Snapshot, x: str, y: str) -> bool:
    """Whether a complete trial has both ``x`` and ``y`` active (in a conditional space, two
    parameters of different branches never are)."""
    return any(x in t.params and y in t.params for t in s.fitting)


def contour(study: Any, x: str, y: str, *, resolution: int = 40) -> Chart:
    """The value over (x, y): linear interpolation between complete trials where both are
    active (nearest trial outside their hull; trials at one point by their mean), the trials
    as dots, the best as a star."""
    s = snapshot(study)
    x, y = (_params(s, [n])[0] for n in (x, y))  # a displayed name as its stored key
    shown = display_names(s.space)
    if x == y:
        raise ValueError(f"a contour needs two different parameters, got {shown[x]!r} twice (see the slice plot for one)")
    categorical = _shown(s, [n for n in (x, y) if s.space[n].kind == "categorical"])
    if categorical:
        raise ValueError(f"a contour needs numeric parameters; {categorical} categorical (see the slice plot)")
    on = [t for t in s.fitting if x in t.params and y in t.params]
    title = f"{s.name}: value over {shown[x]} and {shown[y]} ({plural(len(on), 'trial')})"
    px, py = s.space[x], s.space[y]
    pts = np.array([[_unit(px, t.params[x]), _unit(py, t.params[y])] for t in on]).reshape(-1, 2)
    flat = _flat(pts, [t.params for t in on], x, y, shown)
    if not on and _apart(s.space, x, y):  # "needs at least 3 complete trials ... has 0" read as "run more"
        alone = [sum(n in t.params for t in s.fitting) for n in (x, y)]
        return nothing("contour", title, f"{shown[x]} and {shown[y]} are never active together: the conditional "
                                         f"space puts them in different branches ({s.name!r} has {shown[x]} in "
                                         f"{alone[0]} and {shown[y]} in {alone[1]} of its "
                                         f"{plural(len(s.fitting), 'complete trial')}); see the slice plot for each")
    if flat:
        return nothing("contour", title, f"a contour over {shown[x]} and {shown[y]} needs at least 3 complete "
                                         f"trials spread over both; {s.name!r} has {flat}")
    values = np.array([float(t.value) for t in on])  # type: ignore[arg-type]
    lo, hi = values.min(), values.max()  # one value, or values apart by rounding only (2 and 2 + 4e-16):
    if hi <= lo + 1e-12 * max(abs(lo), abs(hi)):  # a surface under a scale of rounding (1.998e-14 + 2)
        return nothing("contour", title, f"the value was {values[0]:.6g} in all {len(on)} complete trials over "
                                         f"{shown[x]} and {shown[y]}: nothing varies to draw")
    z = _interpolate(pts, values, resolution)
    u = np.linspace(0, 1, resolution)
    gx = [_at(px, v) for v in u]
    gy = [_at(py, v) for v in u]
    series = [
        Series(None, gx, gy, mode="contour", z=z.tolist(), gid="surface", color="Viridis"),
        Series("trials", [t.params[x] for t in on], [t.params[y] for t in on], mode="markers", marker="o",
               color="#ffffff", gid="trials", hover=[f"trial {t.number}: {t.value:.4g}" for t in on]),
    ]
    best = s.best()
    if best is not None and x in best.params and y in best.params and s.space.fits(best.params):
        series.append(Series(f"best (trial {best.number})", [best.params[x]], [best.params[y]], mode="markers",
                             marker="*", color="#D55E00", gid="best"))
    return Chart("contour", title, shown[x], shown[y], tuple(series), log_x=bool(getattr(px, "log", False)),
                 log_y=bool(getattr(py, "log", False)), color_label=f"value ({s.direction.value})",
                 int_x=px.kind == "int", int_y=py.kind == "int", reverse_scale=s.sign > 0)  # best: yellow, as parallel


def _apart(space: Any, x: str, y: str) -> bool:
    """Whether the conditions of ``x`` and ``y`` (theirs and those of the parameters they depend on) ask one
    parameter for values they do not share, so that no configuration has both active."""
    asked = [_conditions(space, n) for n in (x, y)]
    return any(not asked[0][k] & asked[1][k] for k in asked[0].keys() & asked[1].keys())


def _conditions(space: Any, name: str) -> dict[str, set[Any]]:
    """The values each parameter must take for ``name`` to be active, through the parameters it depends on."""
    out: dict[str, set[Any]] = {}
    todo, seen = [name], set()
    while todo:
        n = todo.pop()
        if n in seen or n not in space:
            continue
        seen.add(n)
        for parent, values in space[n].when.items():
            out[parent] = out[parent] & set(values) if parent in out else set(values)
            todo.append(parent)
    return out


def _flat(pts: np.ndarray, params: list[Mapping[str, Any]], x: str, y: str, shown: Mapping[str, str]) -> str:
    """Why the trials at ``pts`` span no surface ("" when they do): too few, or all at one value
    of a parameter, or at fewer than 3 points ("has 3" alone read as enough)."""
    n = len(pts)
    if n < 3:
        return str(n)
    for j, name in enumerate((x, y)):
        if np.ptp(pts[:, j]) == 0:
            return f"{n}, all at {shown[name]} = {params[0][name]!r}"
    points = len(np.unique(pts, axis=0))
    return f"{n}, at {points} distinct points" if points < 3 else ""


def _at(p: Any, u: float) -> float:
    lo, hi = float(p.low), float(p.high)
    return float(lo * (hi / lo) ** u) if getattr(p, "log", False) else lo + (hi - lo) * u


def _unit(p: Any, v: Any) -> float:
    """The inverse of :func:`_at`: where ``v`` lies between low (0) and high (1), on a log scale for
    a log parameter. Not ``p.to_unit``: it puts an Int's or a stepped value's levels at the middles
    of equal cells (Int(1, 4)'s 1 at 0.125), so the surface was drawn shifted from the trials' dots."""
    lo, hi, x = float(p.low), float(p.high), float(v)
    if getattr(p, "log", False):
        return math.log(x / lo) / math.log(hi / lo)
    return (x - lo) / (hi - lo)


def _interpolate(pts: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    # trials at one point (a small Int grid, a configuration run again): their mean, not the one
    # Qhull happens to keep
    pts, at = np.unique(pts, axis=0, return_inverse=True)
    values = np.bincount(at.ravel(), weights=values) / np.bincount(at.ravel())
    u = np.linspace(0, 1, n)
    gx, gy = np.meshgrid(u, u)
    near = griddata(pts, values, (gx, gy), method="nearest")
    try:
        lin = griddata(pts, values, (gx, gy), method="linear")
    except QhullError:  # the trials lie on a line (x set from y, say): no triangle to interpolate in
        return near
    return np.where(np.isnan(lin), near, lin)


def process(study: Any) -> Diagram:
    """The study's own flow with its counts: space -> sampler -> trials -> (pruner) -> best -> test."""
    s = snapshot(study)
    title = f"{s.name}: the optimization process"
    if not s.trials:
        return Diagram("process", title, message=f"study {s.name!r} has no trials yet")
    n = Counter(t.state for t in s.trials)
    cond = sum(bool(s.space[p].when) for p in s.space.free)
    best = s.best()
    nodes = [
        Node("space", "search space", plural(s.space.ndim, "parameter") + (f"\n{cond} conditional" if cond else ""), 0, 0),
        Node("sampler", "sampler", s.sampler or "?", STEP, 0),
        Node("trials", "trials", f"{len(s.trials)} run\n" + "\n".join(f"{c} {st.value}" for st, c in n.items()),
             2 * STEP, 0),  # a state a line: "204 complete, 1632 pruned, 164 failed" ran over the box's sides
        Node("best", "best trial", "none yet" if best is None else f"#{best.number}: {best.value:.4g}", 3 * STEP, 0),
        Node("test", "test", _test_detail(s, best), 4 * STEP, 0),
    ]
    edges = [("space", "sampler", "defines"), ("sampler", "trials", plural(len(s.trials), "configuration")),
             ("trials", "sampler", plural(n[TrialState.COMPLETE], "result")),
             ("trials", "best", f"{s.direction.value}"), ("best", "test", "evaluate once")]
    box = box_for([nd.detail for nd in nodes])  # every state a line: 6 states ran out of a fixed box
    if s.pruner:
        nodes.append(Node("pruner", "pruner", f"{s.pruner}\nstopped {n[TrialState.PRUNED]}"
                          + (f", paused {n[TrialState.PAUSED]}" if n[TrialState.PAUSED] else ""), 2 * STEP,
                          -(2 * box[1] + 0.56)))
        edges += [("trials", "pruner", "reports"), ("pruner", "trials", "continue / stop")]
    return Diagram("process", title, tuple(nodes), tuple(edges), box=box)


STEP = 1.4  # distance between the diagram's boxes
def _test_detail(s: Snapshot, best: FrozenTrial | None) -> str:
    v = s.test_of(best)
    return "not recorded" if v is None else f"{v:.4g}\n(validation {best.value:.4g})"  # type: ignore[union-attr]


def _params(s: Snapshot, params: Sequence[str] | None) -> list[str]:
    """The parameters to draw: every free one, or those named (each once, in the order given)."""
    if params is None:
        return list(s.space.free)
    if isinstance(params, str):
        raise TypeError(f"params is a list of parameter names, got the string {params!r}; write params=[{params!r}]")
    stored = {shown: key for key, shown in display_names(s.space).items() if key in s.space.free}
    params = list(dict.fromkeys(p if p in s.space else stored.get(p, p) for p in params))
    if not params:  # drew nothing, without a word
        raise ValueError(f"params names no parameter; name at least one of {list(stored)} (or None for all)")
    fixed = [p for p in params if p in s.space and p not in s.space.free]
    if fixed:  # in the space, but one value: nothing to draw against
        raise ValueError(f"{_shown(s, fixed)} fixed, not searched: nothing varies to draw; {s.name!r} searches {list(stored)}")
    unknown = [p for p in params if p not in s.space.free]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}{did_you_mean_each(unknown, list({**stored, **dict.fromkeys(s.space.free)}))}; "
                         f"{s.name!r} searches {list(stored)}")
    return params


def _shown(s: Snapshot, names: Sequence[str]) -> list[str]:
    """``names`` as tables and plots show them (a list of dicts' ``0:C`` as ``C [branch 0]``)."""
    shown = display_names(s.space)
    return [shown.get(n, n) for n in names]


def _no_complete(s: Snapshot) -> str:
    """Why a plot over parameters has nothing to draw: no complete trial (fitting the space)."""
    done = len(s.in_state(TrialState.COMPLETE))
    if done:
        return f"none of the {plural(done, 'complete trial')} of {s.name!r} fits its space (their parameters were changed)"
    counts = ", ".join(f"{n} {state.value}" for state in TrialState if (n := len(s.in_state(state))))
    return f"study {s.name!r} has no complete trial yet" + (f" ({counts})" if counts else "")


def _failed(s: Snapshot) -> str:
    k = len(s.in_state(TrialState.FAILED))
    return f" ({k} failed)" if k else ""
