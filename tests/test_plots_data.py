"""The plots' data layer (records of what is drawn), both renderers, and the plot/compare commands."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import struct
import textwrap
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("plotly")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith import plots  # noqa: E402
from tunesmith.cli import build_parser, main  # noqa: E402
from tunesmith.importance import Effect, Importances  # noqa: E402
from tunesmith.plots import mpl_render  # noqa: E402
from tunesmith.plots.mpl_render import short_labels, to_matplotlib  # noqa: E402
from tunesmith.plots.plotly_render import to_plotly  # noqa: E402
from tunesmith.plots.records import Chart, Series  # noqa: E402
from tunesmith.trial import Direction, FrozenTrial, TrialState  # noqa: E402

SPACE = ts.Space({
    "kernel": ts.Categorical(["linear", "rbf"]),
    "C": ts.Float(1e-3, 1e3, log=True),
    "gamma": ts.Float(1e-4, 1.0, log=True, when={"kernel": ["rbf"]}),
    "x": ts.Float(0, 1),
})


def trials_of(values: list[tuple[str, float | None]], space: ts.Space = SPACE, seed: int = 0) -> tuple[FrozenTrial, ...]:
    rng = np.random.default_rng(seed)
    return tuple(FrozenTrial(i, TrialState(state), space.sample(rng), value=v,
                             error="boom" if state == "failed" else None)
                 for i, (state, v) in enumerate(values))


def snap(values: list[tuple[str, float | None]], direction: str = "minimize", **kw) -> plots.Snapshot:
    return plots.Snapshot("s", Direction.parse(direction), SPACE, trials_of(values), sampler="random", **kw)


MIXED = [("complete", 5.0), ("failed", None), ("pruned", 9.0), ("complete", 3.0), ("complete", 4.0),
         ("pruned", 1.0), ("complete", 6.0)]


@pytest.mark.parametrize("direction, best", [("minimize", [5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0]),
                                             ("maximize", [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 6.0])])
def test_history_best_so_far_follows_the_direction_and_skips_failed_and_pruned(direction: str, best: list) -> None:
    chart = plots.history_data(snap(MIXED, direction))
    steps = chart.find("best-so-far")
    assert list(steps.x) == [0, 2, 3, 4, 5, 6] and list(steps.y) == [b for i, b in enumerate(best) if i != 1]
    assert list(chart.find("pruned").y) == [9.0, 1.0]  # drawn, never the best
    assert "(1 failed)" in chart.title and chart.y_label == f"value ({direction})"
    empty = plots.history_data(snap([("failed", None), ("running", None)]))
    assert empty.empty and "no finished trial" in (empty.message or "")


def test_history_shows_paused_trials_at_their_last_report_marked_paused() -> None:
    """Before: paused trials (which hold their last report as value) were left out of the history,
    so a study of mostly paused trials showed few points ("2 finished of 5 trials")."""
    chart = plots.history_data(snap([("complete", 5.0), ("paused", 4.0), ("paused", 2.0), ("pruned", 9.0),
                                     ("complete", 3.0)]))
    paused = chart.find("paused")
    assert list(paused.x) == [1, 2] and list(paused.y) == [4.0, 2.0] and paused.marker == "v"
    assert paused.label == "paused (last report) (2)"
    assert list(chart.find("best-so-far").y) == [5.0, 5.0, 5.0, 5.0, 3.0]  # never the best: not finished
    assert chart.title.startswith("s: 3 finished, 2 paused of 5 trials")
    only = plots.history_data(snap([("paused", 4.0), ("running", None)]))
    assert not only.empty and [x.gid for x in only.series] == ["paused"]
    for render in (to_plotly, to_matplotlib):
        render(chart)
    plt.close("all")


def test_a_log_value_axis_refuses_values_it_would_hide(stored: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    s = snap([("complete", 5.0), ("complete", -2.0), ("complete", 0.0), ("complete", 3.0)], direction="maximize")
    with pytest.raises(ValueError, match=r"cannot show values <= 0: 2 of the 4 values of 's' are \(the smallest -2\)"):
        plots.history_data(s, log_y=True)  # matplotlib dropped them from the picture without a word
    assert plots.history_data(snap([("complete", 5.0), ("complete", 3.0)]), log_y=True).log_y
    with pytest.raises(ValueError, match="cannot show values <= 0"):
        plots.comparison({"a": [[1.0, -1.0]]}, log_y=True)
    out = tmp_path / "h.png"  # the stored study's values: (log10 C)^2 + x, 0 when C = 1 and x = 0 only
    assert main(["plot", "cli", "--storage", stored, "--kind", "history", "--log-y", "-o", str(out)]) == 0


def test_comparison_draws_median_and_band_per_group_in_distinct_colours() -> None:
    chart = plots.comparison({"a": [[3, 2, 5, 1], [4, 4, 1, 0]], "b": [[None, 7, 6, 8]]})
    a, band = chart.find("median-a"), chart.find("band-a")
    assert list(a.y) == [3.5, 3.0, 1.5, 0.5]  # medians of best-so-far [3,2,2,1] and [4,4,1,0]
    assert list(band.low) == pytest.approx([3.25, 2.5, 1.25, 0.25]) and list(band.high) == pytest.approx([3.75, 3.5, 1.75, 0.75])
    b = chart.find("median-b")
    assert list(b.x) == [2, 3, 4] and list(b.y) == [7, 6, 6]
    assert a.color != b.color and a.label == "a (median of 2 runs)" and b.label == "b (1 run)"
    final = chart.find("final-a")  # the step line ends in a drop at the last trial: its value is marked
    assert chart.x_label == "trials run"  # was "trial": x is 1 after the first trial, the history's trial 0
    assert (list(final.x), list(final.y), final.mode, final.color) == ([4], [0.5], "markers", a.color)
    up = plots.comparison({"a": [[3, 2, 5, 1]]}, direction="maximize")
    assert list(up.find("median-a").y) == [3, 3, 5, 5]
    # several studies: each its own colour and legend entry
    s1 = ts.Study({"x": ts.Float(0, 1)}, name="one", sampler="random", seed=0)
    s2 = ts.Study({"x": ts.Float(0, 1)}, name="two", sampler="random", seed=1)
    for s in (s1, s2):
        s.optimize(lambda t: t.params["x"], n_trials=5)
    two = plots.comparison([s1, s2])
    assert {s.label for s in two.series} - {None} == {"one (1 run)", "two (1 run)"}
    assert len({s.color for s in two.series}) == 2


def test_comparison_of_value_lists_refuses_an_infinite_value_and_reads_nan_as_missing() -> None:
    """A run's -inf (minimize) made every later best so far NaN: the run's line ended at the
    trial before it, its final mark said "after 1 trials"."""
    with pytest.raises(ValueError, match=r"run of 'a' has -inf at trial 2; give finite values \(None for a trial"):
        plots.comparison({"a": [[1.0, float("-inf"), 0.5]]})
    with pytest.raises(ValueError, match=r"run of 'up' has inf at trial 1"):
        plots.comparison({"up": [[float("inf"), 2.0]]}, direction="maximize")
    missing = plots.comparison({"a": [[2.0, float("nan"), 1.0, None]]}).find("median-a")
    assert (list(missing.x), list(missing.y)) == ([1, 2, 3, 4], [2.0, 2.0, 1.0, 1.0])


@pytest.mark.parametrize("direction, later", [("minimize", [None, 7, 6]), ("maximize", [None, 5, 6])])
def test_comparison_median_starts_when_every_run_has_a_value_and_never_gets_worse(direction, later) -> None:
    """A run whose first value came later joined the median then: best so far 6 after one trial,
    6.5 after two (the median of 7 and 6), labelled a median of 2 runs throughout."""
    chart = plots.comparison({"b": [later, [6, 6, 5]]}, direction=direction)
    median, band = chart.find("median-b"), chart.find("band-b")
    assert list(median.x) == list(band.x) == [2, 3] and median.label == "b (median of 2 runs)"
    sign = 1 if direction == "minimize" else -1
    assert list(median.y) == ([6.5, 5.5] if direction == "minimize" else [5.5, 6.0])
    assert all(sign * b <= sign * a for a, b in zip(median.y, median.y[1:], strict=False))


def test_comparison_band_is_drawn_in_steps_as_its_median_in_both_renderers() -> None:
    """The band between the quartiles joined its points by slanted lines in the HTML chart (its
    median and matplotlib's band are steps): between two trials it showed values no run had."""
    chart = plots.comparison({"a": [[3, 2, 5, 1], [4, 4, 1, 0]], "b": [[None, 7, 6, 8]]})
    band, median = chart.find("band-a"), chart.find("median-a")
    fig = to_plotly(chart)
    high, low, line = fig.data[0], fig.data[1], fig.data[2]
    assert (list(high.y), list(low.y), list(line.y)) == (list(band.high), list(band.low), list(median.y))
    assert high.line.shape == low.line.shape == line.line.shape == "hv" and low.fill == "tonexty"
    assert low.fillcolor == "rgba(0,114,178,0.2)" and line.line.color == median.color == "#0072B2"
    ax = to_matplotlib(chart)
    filled = next(c for c in ax.collections if c.get_gid() == "band-a")
    assert matplotlib.colors.to_hex(filled.get_facecolor()[0]) == median.color.lower()
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert list(lines["median-a"].get_ydata()) == list(median.y) and lines["median-a"].get_drawstyle() == "steps-post"
    assert matplotlib.colors.to_hex(lines["median-b"].get_color()) == chart.find("median-b").color.lower()
    plt.close(ax.figure)


def test_axes_of_whole_numbers_have_no_half_ticks_in_the_html_plots() -> None:
    """matplotlib puts an axis of trials, steps or an Int parameter's values on whole numbers;
    plotly ticked a history of 3 trials "0 0.5 1 1.5 2" and Int(1, 3) "1 1.5 2 2.5 3"."""
    study = ts.Study({"x": ts.Float(0, 1), "n": ts.Int(1, 3)}, name="three", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + t.params["n"], n_trials=3)
    history, (x_slice, n_slice) = plots.history_data(study), plots.slices(study)
    for chart, whole in ((history, True), (n_slice, True), (x_slice, False)):
        axis = to_plotly(chart).layout.xaxis
        assert (axis.tick0, axis.dtick) == ((0, 1) if whole else (None, None)), chart.title
        ax = to_matplotlib(chart)
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert not whole or all(float(t).is_integer() for t in ticks)
        plt.close(ax.figure)
    long = plots.comparison({"a": [list(range(40, 0, -1))]})  # 40 trials: plotly's own ticks (0, 10, 20, ...)
    assert to_plotly(long).layout.xaxis.dtick is None


def test_comparison_of_studies_with_different_directions_is_refused_unless_told() -> None:
    down = ts.Study({"x": ts.Float(0, 1)}, name="down", sampler="random", seed=0)
    up = ts.Study({"x": ts.Float(0, 1)}, name="up", sampler="random", seed=0, direction="maximize")
    for s in (down, up):
        s.optimize(lambda t: t.params["x"], n_trials=5)
    with pytest.raises(ValueError, match=r"do not share a direction \(down minimize, up maximize\); pass direction="):
        plots.comparison([down, up])
    told = plots.comparison([down, up], direction="maximize")
    assert told.find("median-up").y[-1] == up.best_value


def test_history_overlays_in_one_axes_get_distinct_colours_and_names() -> None:
    s1 = ts.Study({"x": ts.Float(0, 1)}, name="first", sampler="random", seed=0)
    s2 = ts.Study({"x": ts.Float(0, 1)}, name="second", sampler="random", seed=1)
    for s in (s1, s2):
        s.optimize(lambda t: t.params["x"], n_trials=5)
    ax = plots.history(s1)
    plots.history(s2, ax=ax)
    best = [line for line in ax.get_lines() if str(line.get_gid()).startswith("best-so-far")]
    assert len(best) == 2 and best[0].get_color() != best[1].get_color()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "first: best so far" in legend and "second: best so far" in legend
    plt.close(ax.figure)


def test_parallel_coordinates_mark_inactive_and_categorical_values() -> None:
    p = plots.parallel(snap(MIXED * 3))
    done = [t for t in trials_of(MIXED * 3) if t.state is TrialState.COMPLETE]
    assert [a.name for a in p.axes] == ["kernel", "C", "gamma", "x", "value (minimize)"]
    kernel, c, gamma = p.axes[:3]
    assert dict(kernel.ticks)[0.0] == "linear" and c.log
    assert list(c.values) == pytest.approx([math.log10(t.params["C"]) for t in done])
    inactive = [i for i, t in enumerate(done) if "gamma" not in t.params]
    assert inactive and all(gamma.values[i] == min(gamma.values) for i in inactive)
    assert "inactive" in [label for _, label in gamma.ticks]
    assert list(p.color) == [t.value for t in done] and p.reverse_scale  # minimize: small is best
    assert plots.parallel(snap([("failed", None)])).empty
    assert plots.parallel(snap([("complete", 1.0)])).title == "s: parallel coordinates of 1 complete trial"


def test_a_conditional_numeric_axis_keeps_its_range_labels_beside_inactive() -> None:
    # ticks replace the renderers' own labels: with only "inactive" the range went unlabelled
    p = plots.parallel(snap(MIXED * 3))
    gamma, x = p.axes[2], p.axes[3]
    active = [v for v in gamma.values if v != min(gamma.values)]
    labels = dict(gamma.ticks)
    assert labels[min(gamma.values)] == "inactive"
    assert labels[min(active)] == f"{10 ** min(active):.3g}" and labels[max(active)] == f"{10 ** max(active):.3g}"
    assert x.ticks == ()  # always active: the renderers label it
    dims = to_plotly(p).data[0].dimensions
    assert list(dims[2].ticktext) == ["inactive", labels[min(active)], labels[max(active)]]
    assert dims[2].label == "gamma (log scale)" and dims[1].label == "C (log scale)"  # ticks name values, not log10
    # an always-active log axis too: C's decades labelled 0.01, 0.1, ..., not -2, -1, ... beside gamma's values
    decades = [k for k in range(-3, 4) if min(p.axes[1].values) <= k <= max(p.axes[1].values)]
    assert list(dims[1].tickvals) == decades and list(dims[1].ticktext) == [f"{10 ** k:.3g}" for k in decades]


def test_trials_that_reported_once_are_drawn_as_points_on_whole_steps() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)

    def objective(t: ts.Trial) -> float:
        t.report(t.params["x"], 0)
        if t.number % 2:
            t.report(t.params["x"] / 2, 1)  # these draw lines
        return t.params["x"]

    study.optimize(objective, n_trials=6)
    chart = plots.curves_data(study)  # a line of one point drew nothing: the plot looked empty
    once = chart.find("complete-single")
    assert once.mode == "markers" and sorted(once.y) == sorted(t.params["x"] for t in study.trials if t.number % 2 == 0)
    only_once = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
    only_once.optimize(lambda t: (t.report(t.params["x"], 0), t.params["x"])[1], n_trials=3)
    graph = plots.records_of(only_once, "overfitting")[0]  # the best trial's one report: a point, not an empty plot
    assert graph.find("val").mode == "markers" and len(graph.find("val").x) == 1
    ax = to_matplotlib(plots.curves_data(only_once))
    ax.figure.canvas.draw()
    assert all(float(x).is_integer() for x in ax.get_xticks())  # not -0.045, -0.03, ... around step 0
    plt.close(ax.figure)


def test_whole_number_axes_get_whole_number_ticks() -> None:
    # trials, epochs and an Int parameter were ticked 2.25, 2.5, 2.75 by matplotlib
    study = ts.Study({"degree": ts.Int(2, 4), "x": ts.Float(0, 1)}, sampler="random", seed=0)

    def objective(t: ts.Trial) -> float:
        for step in (1, 2, 3):
            t.report(t.params["x"] / step, step)
        return t.params["x"] + t.params["degree"]

    study.optimize(objective, n_trials=4)
    charts = [plots.history_data(study), plots.curves_data(study), *plots.slices(study)]
    assert [c.int_x for c in charts] == [True, True, True, False]
    for chart in charts[:3]:
        fig, ax = plt.subplots()
        to_matplotlib(chart, ax)
        fig.canvas.draw()
        assert all(float(t).is_integer() for t in ax.get_xticks()), chart.kind
        plt.close(fig)


def test_parallel_lines_pass_through_their_labels_on_every_axis_in_both_renderers() -> None:
    """matplotlib spread each axis over the values drawn: a choice no trial took ('a') was labelled
    below the axes, the other labels sat off their lines (trial 'b' crossed at 'c''s height), and
    an axis of one value drew its lines at mid-height but its label at the bottom."""
    space = ts.Space({"k": ts.Categorical(["a", "b", "c"]), "x": ts.Float(0, 1)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"k": k, "x": 0.5}, value=v)
                   for i, (k, v) in enumerate([("b", 1.0), ("c", 2.0)]))
    par = plots.parallel(plots.Snapshot("s", Direction.MINIMIZE, space, trials))
    ax = to_matplotlib(par)
    labels = {(round(t.get_position()[0] - 0.03), t.get_text()): t.get_position()[1] for t in ax.texts}
    lines = {round(seg[-1][1], 9): seg[:, 1].tolist() for seg in ax.collections[0].get_segments()}  # by value's height
    b, c = lines[0.0], lines[1.0]  # the value axis: 1.0 (trial 'b') at the bottom, 2.0 at the top
    assert (b[0], c[0]) == (labels[(0, "b")], labels[(0, "c")]) == (0.5, 1.0) and labels[(0, "a")] == 0.0
    assert b[1] == c[1] == labels[(1, "0.5")] == 0.5
    plt.close(ax.figure)
    dims = to_plotly(par).data[0].dimensions
    assert list(dims[0].range) == [0.0, 2.0] and list(dims[0].ticktext) == ["a", "b", "c"]


def test_parallel_lines_of_one_value_take_that_value_s_colour_on_the_bar() -> None:
    """Every trial of value 2: matplotlib's bar ran from 1.8 to 2.2 and the lines took its 1.8 end
    (a Normalize of one value maps it to 0)."""
    space = ts.Space({"x": ts.Float(0, 1)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"x": i / 4}, value=2.0) for i in range(5))
    ax = to_matplotlib(plots.parallel(plots.Snapshot("s", Direction.MAXIMIZE, space, trials)))
    assert np.mean(ax.figure.axes[-1].get_ylim()) == pytest.approx(2.0)  # the bar: 2 in its middle
    assert np.allclose(ax.collections[0].get_colors()[:, :3], plt.get_cmap("viridis")(0.5)[:3], atol=0.01)
    plt.close(ax.figure)


def test_parallel_axes_label_whole_numbers_whole() -> None:
    """Labels were written to 3 significant digits: an axis of units up to 4999 ended in "5e+03",
    1234 read "1.23e+03", a log axis' 1000 "1e+03" (the image's ends, an inactive axis' ends)."""
    space = ts.Space({"k": ts.Categorical(["a", "b"]), "units": ts.Int(100, 5000), "m": ts.Int(1, 4096, log=True),
                      "y": ts.Int(1000, 9999, when={"k": ["a"]}), "lr": ts.Float(1e-5, 1.0, log=True)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, p, value=v) for i, (p, v) in enumerate([
        ({"k": "a", "units": 1234, "m": 1000, "y": 4321, "lr": 3.3e-4}, 1.0),
        ({"k": "b", "units": 4999, "m": 3, "lr": 0.012345}, 2.0)]))
    par = plots.parallel(plots.Snapshot("s", Direction.MINIMIZE, space, trials))
    assert dict(par.axes[3].ticks)[4321.0] == "4321"
    ax = to_matplotlib(par)
    assert [t.get_text() for t in ax.texts] == ["a", "b", "1234", "4999", "3", "1000", "inactive", "4321",
                                                "0.00033", "0.0123", "1", "2"]
    plt.close(ax.figure)
    dims = to_plotly(par).data[0].dimensions
    assert list(dims[2].ticktext) == ["10", "100", "1000"] and list(dims[4].ticktext) == ["0.001", "0.01"]


def test_parallel_axes_label_tiny_values_as_they_are_not_as_zero() -> None:
    """A label was made whole within 1e-9 of 1 (not of the value): every value below 1e-9 (a
    weight decay of 2e-10) was labelled "0"."""
    space = ts.Space({"k": ts.Categorical(["a", "b"]), "wd": ts.Float(0.0, 1e-9),
                      "eps": ts.Float(0.0, 1e-9, when={"k": ["a"]})})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, p, value=v) for i, (p, v) in enumerate([
        ({"k": "a", "wd": 2e-10, "eps": 3e-10}, 1.0), ({"k": "b", "wd": 8e-10}, 2.0), ({"k": "a", "wd": 0.0, "eps": 7e-10}, 1.5)]))
    par = plots.parallel(plots.Snapshot("s", Direction.MINIMIZE, space, trials))
    assert [label for _, label in par.axes[2].ticks] == ["inactive", "3e-10", "7e-10"]
    ax = to_matplotlib(par)
    assert [t.get_text() for t in ax.texts][2:7] == ["0", "8e-10", "inactive", "3e-10", "7e-10"]
    plt.close(ax.figure)


def test_a_narrow_parallel_axis_labels_its_ends_apart() -> None:
    """Ends were written to 3 significant digits: an axis of 1000.13 to 1000.19 was labelled "1e+03" at
    both ends (the image's, an inactive axis'), as if it held one value. They get the digits that
    tell them apart (1000.1, 1000.2); a wide axis keeps 3."""
    space = ts.Space({"k": ts.Categorical(["a", "b"]), "w": ts.Float(1000.1, 1000.2),
                      "c": ts.Float(1000.1, 1000.2, when={"k": ["a"]}), "wide": ts.Float(0.0, 1.0)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, p, value=v) for i, (p, v) in enumerate([
        ({"k": "a", "w": 1000.13, "c": 1000.19, "wide": 0.12345}, 1.0), ({"k": "b", "w": 1000.19, "wide": 0.98765}, 2.0),
        ({"k": "a", "w": 1000.15, "c": 1000.13, "wide": 0.5}, 1.5)]))
    par = plots.parallel(plots.Snapshot("s", Direction.MINIMIZE, space, trials))
    assert [label for _, label in par.axes[2].ticks] == ["inactive", "1000.1", "1000.2"]
    ax = to_matplotlib(par)
    assert [t.get_text() for t in ax.texts][2:9] == ["1000.1", "1000.2", "inactive", "1000.1", "1000.2", "0.123", "0.988"]
    plt.close(ax.figure)


def test_a_parallel_axis_of_a_few_whole_numbers_is_ticked_at_each() -> None:
    """plotly ticked an Int(1, 3) axis "1 1.5 2 2.5 3"; now each value a tick (its step's), in both renderers,
    and with "inactive" on a conditional one (which labelled its ends only: "inactive", "1", "3")."""
    space = ts.Space({"n": ts.Int(1, 3), "even": ts.Int(0, 20, step=2), "wide": ts.Int(0, 100),
                      "cond": ts.Int(1, 3, when={"n": [1, 3]})})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"n": n, "even": e, "wide": w, **c}, value=float(i))
                   for i, (n, e, w, c) in enumerate([(1, 4, 0, {"cond": 1}), (3, 10, 100, {"cond": 3}), (2, 6, 50, {})]))
    par = plots.parallel(plots.Snapshot("s", Direction.MINIMIZE, space, trials))
    assert [label for _, label in par.axes[0].ticks] == ["1", "2", "3"]
    assert [label for _, label in par.axes[1].ticks] == ["4", "6", "8", "10"] and par.axes[2].ticks == ()
    assert [label for _, label in par.axes[3].ticks] == ["inactive", "1", "2", "3"]
    assert list(to_plotly(par).data[0].dimensions[0].ticktext) == ["1", "2", "3"]
    ax = to_matplotlib(par)
    assert [t.get_text() for t in ax.texts][:3] == ["1", "2", "3"]
    plt.close(ax.figure)


def test_contour_of_an_unknown_or_categorical_parameter_says_which() -> None:
    s = snap(MIXED * 3)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['gama'\]"):
        plots.contour(s, "C", "gama")
    with pytest.raises(ValueError, match=r"numeric parameters; \['kernel'\] categorical"):
        plots.contour(s, "kernel", "C")


def test_a_parameter_named_twice_or_as_a_string_is_refused_or_drawn_once(stored: str, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    s = snap(MIXED * 3)
    with pytest.raises(ValueError, match="two different parameters, got 'C' twice"):
        plots.contour(s, "C", "C")
    assert [(c.x_label, c.y_label) for c in plots.contours(s, params=["C", "x", "C"])] == [("C", "x")]
    assert [c.x_label for c in plots.slices(s, params=["x", "x"])] == ["x"]
    with pytest.raises(TypeError, match=r"write params=\['gamma'\]"):
        plots.parallel(s, params="gamma")  # type: ignore[arg-type]
    out = tmp_path / "c.png"  # the command said so instead of a Qhull traceback
    assert main(["plot", "cli", "--storage", stored, "--kind", "contour", "--params", "C,C", "-o", str(out)]) == 1
    assert "needs two numeric parameters" in capsys.readouterr().err and not out.exists()
    # it said "'cli' has ['C']", as if the study had no other numeric parameter
    assert main(["plot", "cli", "--storage", stored, "--kind", "contour", "--params", "C,kernel", "-o", str(out)]) == 1
    assert ("a contour needs two numeric parameters; of those asked for, ['C', 'kernel'], only ['C'] is numeric "
            "(see the slice plot for the others)") in capsys.readouterr().err
    assert main(["plot", "cli", "--storage", stored, "--kind", "contour", "--params", "C", "-o", str(out)]) == 1
    assert "a contour needs two numeric parameters; only ['C'] was asked for (see" in capsys.readouterr().err


def test_a_categorical_slice_keeps_the_choices_in_the_space_s_order_in_both_renderers() -> None:
    space = ts.Space({"batch": ts.Categorical([64, 16, 32, 8]), "x": ts.Float(0, 1)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"batch": b, "x": 0.5}, value=float(i))
                   for i, b in enumerate([32, 16, 32, 64]))  # drawn in another order; 8 never
    chart = plots.slices(plots.Snapshot("s", Direction.MINIMIZE, space, trials), params=["batch"])[0]
    assert chart.x_categories == ("64", "16", "32", "8")
    ax = to_matplotlib(chart)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "16", "32", "8"]
    plt.close(ax.figure)
    axis = to_plotly(chart).layout.xaxis  # a category axis: "16" is a label, not the number 16
    assert axis.type == "category" and list(axis.categoryarray) == ["64", "16", "32", "8"]


def test_a_study_without_a_complete_trial_gets_one_reason_per_plot_with_its_counts() -> None:
    s = snap([("failed", None), ("pruned", 2.0), ("failed", None)])
    charts = plots.slices(s)  # was one "no complete trial has 'x' active" per parameter
    assert len(charts) == 1 and charts[0].message == "study 's' has no complete trial yet (1 pruned, 2 failed)"
    assert plots.parallel(s).message == charts[0].message


def test_a_study_of_many_parameters_draws_the_first_slices_and_contours_and_names_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = ts.Space({f"w{i}": ts.Float(0, 1) for i in range(30)})
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    study = ts.Study(space, storage=url, name="wide", sampler="random", seed=0)
    study.optimize(lambda t: t.params["w0"], n_trials=8)
    charts = plots.slices(study)  # was 30 panels (a 1,000-parameter study's report drew 1,000)
    assert [c.x_label for c in charts[:-1]] == [f"w{i}" for i in range(24)]
    assert charts[-1].empty and "slices of the first 24 of 30 parameters" in (charts[-1].message or "")
    assert len(plots.slices(study, params=[f"w{i}" for i in range(30)])) == 30  # named: every one
    cs = plots.contours(study)
    assert len(cs) == 4 and cs[-1].empty and "first 3 of 30 numeric parameters" in (cs[-1].message or "")
    out = tmp_path / "s.png"
    assert main(["plot", "wide", "--storage", url, "--kind", "slice", "-o", str(out)]) == 0
    assert "not drawn: wide: value against the other parameters: slices of the first 24" in capsys.readouterr().err


def test_the_plots_left_out_name_the_command_that_draws_them_which_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report listed "contours of the first 3 of 7 numeric parameters; name others with --params",
    an option `tunesmith report` does not take: it names the `tunesmith plot` command now, with the
    study's storage (without it the command read the current folder's tunesmith.db: "no study named"),
    and ``--params=-x,y`` for names that start with "-" (``--params -x,y`` was read as an option)."""
    import html
    import shlex

    from tunesmith.report import build_report

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'runs' / 'wide.db'}"
    (tmp_path / "runs").mkdir()
    space = ts.Space({f"w{i}": ts.Float(0, 1) for i in range(30)})
    study = ts.Study(space, storage=url, name="wide one", sampler="random", seed=0)
    study.optimize(lambda t: t.params["w0"] + t.params["w29"], n_trials=8)
    dashed = ts.Study({f"-d{i}": ts.Float(0, 1) for i in range(4)}, storage=url, name="dashed", sampler="random", seed=0)
    dashed.optimize(lambda t: t.params["-d0"], n_trials=8)
    cases = [(build_report(study), "slice", "'wide one'", "--params w24,w25"),
             (build_report(study), "contour", "'wide one'", "--params w0,w3"),
             (build_report(dashed), "contour", "dashed", "--params=-d0,-d3")]
    for page, kind, name, params in cases:
        command = f"tunesmith plot {name} --kind {kind} {params} -o {kind}.html --storage {url}"
        assert command in html.unescape(page)
        assert main(shlex.split(command)[1:]) == 0
        assert f"wrote the {kind} of {shlex.split(name)[0]!r}" in capsys.readouterr().err
        (tmp_path / f"{kind}.html").unlink()
    memory = ts.Study(space, sampler="random", seed=0)  # no command reads it: the call that draws them
    memory.optimize(lambda t: t.params["w0"], n_trials=8)
    assert (plots.slices(memory)[-1].message or "").endswith("draw others with plots.slices(study, params=['w24', 'w25'])")


def test_choices_that_print_alike_get_labels_apart_on_a_slice_and_a_parallel_axis() -> None:
    space = ts.Space({"v": ts.Categorical([1, "1", None, "None"]), "x": ts.Float(0, 1)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"v": c, "x": 0.5}, value=float(i))
                   for i, c in enumerate([1, "1", None, "None"]))
    snap_ = plots.Snapshot("s", Direction.MINIMIZE, space, trials)
    chart = plots.slices(snap_, params=["v"])[0]  # 1 and "1" were both "1": drawn at one place
    assert chart.x_categories == ("1", "'1'", "None", "'None'") and list(chart.find("trials").x) == list(chart.x_categories)
    assert [label for _, label in plots.parallel(snap_).axes[0].ticks] == ["1", "'1'", "None", "'None'"]


def test_a_contour_of_trials_on_a_line_is_drawn_and_the_report_written() -> None:
    from tunesmith.report import build_report

    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, name="diagonal")
    for i, v in enumerate([0.0, 0.5, 1.0, 0.25]):  # y set equal to x: a Qhull error ended the report
        study.add_trial({"x": v, "y": v}, float(i))
    surface = plots.contour(study, "x", "y").find("surface")
    assert np.isfinite(np.array(surface.z)).all() and surface.z[0][0] == 0.0 and surface.z[-1][-1] == 2.0
    assert "plot-contour" in build_report(study)


@pytest.mark.parametrize("param", [ts.Int(1, 4), ts.Float(1.0, 4.0, step=0.5), ts.Int(1, 16, log=True)])
def test_a_contour_over_an_int_or_stepped_parameter_lies_under_its_trials(param) -> None:
    """The surface was interpolated at each level's cell middle (Int(1, 4)'s 1 at 0.125 of the
    axis) but drawn at the value: shifted from the dots, 1.5 where a linear value is 1.75."""
    space = ts.Space({"n": param, "x": ts.Float(0, 1)})
    lo, hi = float(param.low), float(param.high)
    corners = [(param.low, 0.0), (param.low, 1.0), (param.high, 0.0), (param.high, 1.0), (2, 0.5)]
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"n": n, "x": x}, value=n + 10 * x)
                   for i, (n, x) in enumerate(corners))
    chart = plots.contour(plots.Snapshot("s", Direction.MINIMIZE, space, trials), "n", "x", resolution=7)
    surface = chart.find("surface")
    if not param.log:  # a linear value, interpolated linearly: exact everywhere (log: on log n)
        assert np.array(surface.z) == pytest.approx(np.array([[n + 10 * x for n in surface.x] for x in surface.y]))
    assert surface.z[0][0] == pytest.approx(lo) and surface.z[-1][-1] == pytest.approx(hi + 10)
    at = next(t for t in to_plotly(chart).data if t.type == "contour")
    assert list(at.x) == list(surface.x) and list(at.z[3]) == list(surface.z[3])


def test_a_contour_draws_trials_at_one_point_by_their_mean() -> None:
    """Three trials at (2, 2) with values 1, 3 and 5 drew 1 there: the one Qhull kept."""
    space = ts.Space({"a": ts.Int(1, 3), "b": ts.Int(1, 3)})
    pts = [(1, 1, 0.0), (1, 3, 0.0), (3, 1, 0.0), (3, 3, 0.0), (2, 2, 5.0), (2, 2, 1.0), (2, 2, 3.0)]
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"a": a, "b": b}, value=v) for i, (a, b, v) in enumerate(pts))
    chart = plots.contour(plots.Snapshot("s", Direction.MINIMIZE, space, trials), "a", "b", resolution=5)
    z = np.array(chart.find("surface").z)
    assert z[2, 2] == 3.0 and z[1, 1] == 1.5 and z[0, 0] == 0.0
    assert len(chart.find("trials").x) == 7  # every trial still a dot


def test_a_contour_of_trials_that_span_no_surface_says_why_not_only_how_many() -> None:
    """Three complete trials that all ran with b = 2 were refused as "needs at least 3 complete
    trials spread over both; 's' has 3": the count was enough, the reason left out."""
    space = ts.Space({"a": ts.Int(1, 3), "b": ts.Int(1, 3)})

    def chart(pts: list[tuple[int, int]]) -> str:
        trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"a": a, "b": b}, value=float(i)) for i, (a, b) in enumerate(pts))
        c = plots.contour(plots.Snapshot("s", Direction.MINIMIZE, space, trials), "a", "b")
        assert c.empty
        return c.message or ""

    head = "a contour over a and b needs at least 3 complete trials spread over both; 's' has "
    assert chart([(1, 2), (2, 2), (3, 2)]) == head + "3, all at b = 2"
    assert chart([(1, 1), (3, 3), (1, 1), (3, 3)]) == head + "4, at 2 distinct points"
    assert chart([(1, 1), (3, 3)]) == head + "2"


def test_contours_of_a_study_without_a_complete_trial_say_so_once_as_the_slices_do() -> None:
    """Every trial failed: the contours said "a contour over C and x needs at least 3 complete trials spread
    over both; 's' has 0" once for each pair, where the slices said why in one line."""
    s = snap([("failed", None)] * 4 + [("pruned", 0.5)])
    charts = plots.contours(s)
    assert [c.message for c in charts] == ["study 's' has no complete trial yet (1 pruned, 4 failed)"]
    assert charts[0].message == plots.slices(s)[0].message and charts[0].empty
    asked = plots.contours(s, params=["C", "x"])
    assert [c.message for c in asked] == [charts[0].message]


def test_contours_of_a_study_with_two_complete_trials_say_so_once() -> None:
    """Two complete trials of ten (fold racing pruned the rest): `plot --kind contour` said "a contour over
    C and x needs at least 3 complete trials spread over both; 's' has 2" once for each pair."""
    s = snap([("complete", 1.0), ("pruned", 0.5), ("complete", 2.0), ("failed", None)])
    charts = plots.contours(s)
    assert [c.message for c in charts] == ["a contour needs at least 3 complete trials; 's' has 2 "
                                           "(only complete trials are drawn)"]
    assert charts[0].empty


def test_a_contour_of_one_value_says_so_rather_than_draw_a_scale_of_rounding() -> None:
    """Thirty trials of value 2 drew one colour under a scale labelled -1.998 to 1.998 (offset
    "1e-14+2") in matplotlib: the value's rounding, read as a range."""
    space = ts.Space({"a": ts.Float(0, 1), "b": ts.Float(1e-3, 1.0, log=True)})
    rng = np.random.default_rng(0)
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, space.sample(rng), value=2.0) for i in range(30))
    chart = plots.contour(plots.Snapshot("s", Direction.MAXIMIZE, space, trials), "a", "b")
    assert chart.empty
    assert chart.message == "the value was 2 in all 30 complete trials over a and b: nothing varies to draw"
    # values apart by rounding only (a mean summed in another order: 2 and 2 + 4e-16) drew that same scale
    trials = tuple(dataclasses.replace(t, value=2.0 + 4.4e-16 * (t.number % 2)) for t in trials)
    chart = plots.contour(plots.Snapshot("s", Direction.MAXIMIZE, space, trials), "a", "b")
    assert chart.message == "the value was 2 in all 30 complete trials over a and b: nothing varies to draw"
    trials = tuple(dataclasses.replace(t, value=2.0 + 1e-9 * (t.number % 2)) for t in trials)  # a difference: drawn
    assert not plots.contour(plots.Snapshot("s", Direction.MAXIMIZE, space, trials), "a", "b").empty


def test_slices_and_contours_use_only_complete_trials_where_the_parameters_are_active() -> None:
    s = snap(MIXED * 3)
    charts = plots.slices(s)
    assert [c.x_label for c in charts] == ["kernel", "C", "gamma", "x"]
    done = [t for t in s.trials if t.state is TrialState.COMPLETE]
    gamma = charts[2].find("trials")
    assert len(gamma.x) == sum("gamma" in t.params for t in done) and charts[2].log_x
    assert set(charts[0].find("trials").x) <= {"linear", "rbf"}
    cs = plots.contours(s)
    assert [(c.x_label, c.y_label) for c in cs] == [("C", "gamma"), ("C", "x"), ("gamma", "x")]
    surface = cs[1].find("surface")
    assert np.array(surface.z).shape == (40, 40) and np.isfinite(np.array(surface.z)).all()
    assert surface.x[0] == pytest.approx(1e-3) and surface.x[-1] == pytest.approx(1e3)
    only_cat = plots.contours(s, params=["kernel", "x"])
    assert only_cat[0].empty and "two numeric parameters" in (only_cat[0].message or "")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['nope'\]"):
        plots.slices(s, params=["nope"])
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['gama'\] \(did you mean 'gamma'\?\)"):
        plots.slices(s, params=["gama"])
    with pytest.raises(ValueError, match=r"\['gama', 'C_'\] \('gama': did you mean 'gamma'\?; 'C_': did you mean 'C'\?\)"):
        plots.slices(s, params=["gama", "C_"])  # each its own (was: none for two)
    fixed = plots.Snapshot("s", Direction.MINIMIZE, ts.Space({"x": ts.Float(0, 1), "epochs": 20}), ())
    with pytest.raises(ValueError, match=r"\['epochs'\] fixed, not searched"):  # was "unknown parameter(s)"
        plots.slices(fixed, params=["epochs"])


def test_importance_bars_show_each_effect_with_its_band() -> None:
    imp = Importances("fanova", (Effect(("a",), 0.6, 0.05), Effect(("b",), 0.3, 0.02)),
                      (Effect(("a", "b"), 0.1, 0.01),), 50)
    bars = plots.importance_bars(imp).find("bars")
    assert list(bars.y) == ["a × b", "b", "a"] and list(bars.x) == [0.1, 0.3, 0.6]
    assert list(bars.error) == [0.01, 0.02, 0.05]
    few = plots.importance_bars(snap([("complete", 1.0)]))
    assert few.empty and "at least 10 complete trials, got 1" in (few.message or "")


def test_importance_bars_of_parameters_named_by_numbers_keep_their_order_in_both_renderers() -> None:
    """Parameters named "1", "10", "2" drew their HTML bars on a linear axis at 1, 10 and 2,
    out of the order of importance (largest on top), as matplotlib draws them."""
    imp = Importances("fanova", (Effect(("10",), 0.6, 0.05), Effect(("1",), 0.3, 0.02), Effect(("2",), 0.1, 0.01)))
    chart = plots.importance_bars(imp)
    bars = chart.find("bars")
    html = to_plotly(chart)
    assert html.layout.yaxis.type == "category" and list(html.layout.yaxis.categoryarray) == ["2", "1", "10"]
    assert list(html.data[0].y) == list(bars.y) and list(html.data[0].x) == [0.1, 0.3, 0.6]
    assert list(html.data[0].error_x.array) == [0.01, 0.02, 0.05]
    ax = to_matplotlib(chart)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "1", "10"]
    assert [p.get_width() for p in ax.patches] == [0.1, 0.3, 0.6]
    plt.close(ax.figure)


def test_a_long_parameter_name_is_cut_on_html_bars_and_parallel_axes_whole_in_the_hover() -> None:
    """A name of 200 characters was drawn whole as an HTML importance bar's label and a parallel
    axis' title, squeezing the bars into a sliver (the image renderer cut it already)."""
    long = "p" * 200
    imp = Importances("fanova", (Effect((long,), 0.6, 0.05), Effect(("lr",), 0.3, 0.02)),
                      (Effect((long, "lr"), 0.1, 0.01),), 50)
    html = to_plotly(plots.importance_bars(imp))
    short = "p" * 23 + "…" + "p" * 24
    assert list(html.data[0].y) == [f"{short} × lr", "lr", short]
    assert list(html.layout.yaxis.categoryarray) == list(html.data[0].y)
    assert list(html.data[0].hovertext) == [f"{long} × lr", "lr", long]
    space = ts.Space({long: ts.Float(1e-3, 1.0, log=True), "x": ts.Float(0, 1)})
    study = plots.Snapshot("s", Direction.MINIMIZE, space, trials_of([("complete", 1.0), ("complete", 2.0)], space))
    dims = to_plotly(plots.parallel(study)).data[0].dimensions
    # cut, then in lines of at most 110 px (17 p at 10 px), three at most: the first, "…", the end
    assert [d.label for d in dims] == ["p" * 17 + "<br>…<br>" + "p" * 8 + " (log scale)", "x", "value (minimize)"]
    few = to_plotly(plots.importance_bars(Importances("fanova", (Effect(("lr",), 1.0, 0.0),), (), 50)))
    assert few.data[0].hovertext is None  # nothing cut: plotly's own hover


def test_long_parameter_names_are_cut_in_the_middle_on_image_axes_and_never_made_alike() -> None:
    long = "encoder_layer_attention_dropout_probability_of_the_second_block" * 2
    imp = Importances("fanova", (Effect((long,), 0.6, 0.05), Effect(("lr",), 0.3, 0.02)),
                      (Effect((long, "lr"), 0.1, 0.01),), 50)
    ax = to_matplotlib(plots.importance_bars(imp))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["encoder_layer_a…the_second_block × lr", "lr", "encoder_layer_a…the_second_block"]
    ax.figure.tight_layout()  # as plots.save does; each label then starts inside the figure (a whole name ran off it)
    ax.figure.canvas.draw()
    assert all(t.get_window_extent().x0 >= 0 for t in ax.get_yticklabels())
    plt.close(ax.figure)
    alike = ["a" * 20 + "X" + "b" * 20, "a" * 20 + "Y" + "b" * 20]  # cut, both would read "aaaaaaaaa…bbbbbbbbbb"
    assert short_labels(alike, width=20) == alike


def test_an_image_of_pairs_of_long_names_is_widened_so_no_label_runs_off_its_edge(tmp_path: Path) -> None:
    """A pair of two long names ("a…b × c…d", 67 characters) ran off a 7-inch image's left edge (matplotlib:
    "Tight layout not applied"); the image is widened for its labels, the bars keeping their width."""
    from PIL import Image

    a = "Lernrate_für_den_Optimierer_der_ersten_Schicht_des_Netzwerks"
    b = "Gewichtsabnahme_für_alle_Faltungsschichten_und_vollverbundenen"
    imp = Importances("fanova", (Effect((a,), 0.6, 0.05), Effect((b,), 0.2, 0.02)), (Effect((a, b), 0.1, 0.01),), 50)
    out = tmp_path / "importance.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied": the labels did not fit
        plots.save(plots.importance_bars(imp), out)
    pixels = np.asarray(Image.open(out).convert("L"))
    assert pixels[:, :2].min() == 255 and pixels[:, -2:].min() == 255  # nothing drawn across either edge
    plain = tmp_path / "short.png"  # short names: the image keeps its size
    plots.save(plots.importance_bars(Importances("fanova", (Effect(("lr",), 1.0, 0.0),), (), 50)), plain)
    assert Image.open(plain).size == (840, 540) and Image.open(out).size[0] > 840


def test_a_log_integer_parameter_is_ticked_with_its_values_in_an_image() -> None:
    """n_estimators (5 to 200, log) over trials from 34 to 94 was ticked "2×10¹ 3×10¹ 4×10¹ 6×10¹"."""
    space = ts.Space({"n_estimators": ts.Int(5, 200, log=True), "lr": ts.Float(1e-3, 1.0, log=True)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"n_estimators": n, "lr": lr}, value=float(i))
                   for i, (n, lr) in enumerate([(34, 0.01), (44, 0.02), (71, 0.05), (94, 0.03)]))
    study = plots.Snapshot("s", Direction.MINIMIZE, space, trials)
    n, lr = plots.slices(study)
    ax = to_matplotlib(n)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)) if t.get_text()]
    assert labels and all(label.isdigit() for label in labels) and "40" in labels, labels
    plt.close(ax.figure)
    ax = to_matplotlib(lr)  # a float's log axis keeps matplotlib's powers of ten
    ax.figure.canvas.draw()
    assert any("10^" in t.get_text() for t in ax.get_xticklabels())
    plt.close(ax.figure)


def test_a_log_integer_over_decades_is_ticked_in_one_notation() -> None:
    """n from 1 to 100,000 (log) was ticked "1000 1e4 1e+05": the decades each as its number."""
    space = ts.Space({"n": ts.Int(1, 100_000, log=True)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"n": n}, value=float(i))
                   for i, n in enumerate([1, 30, 700, 20_000, 100_000]))
    ax = to_matplotlib(plots.slices(plots.Snapshot("s", Direction.MINIMIZE, space, trials))[0])
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    labels = [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_xticklabels(minor=True))
              if t.get_text() and low <= t.get_position()[0] <= high]
    assert labels == ["1", "10", "100", "1000", "10000", "100000"]
    plt.close(ax.figure)


def test_importance_bands_stop_at_zero_in_both_renderers() -> None:
    """fANOVA's band (the trees' spread, 0.07) under a fraction of 0.04 was drawn down to -0.03: no share
    of the variance is negative. The band above keeps its whole length."""
    imp = Importances("fanova", (Effect(("C",), 0.55, 0.26), Effect(("gamma",), 0.04, 0.07)),
                      (Effect(("C", "gamma"), 0.0, 0.02),), 99)
    bars = plots.importance_bars(imp)
    html = to_plotly(bars).data[0]
    assert list(html.x) == [0.0, 0.04, 0.55] and list(html.error_x.array) == [0.02, 0.07, 0.26]
    assert list(html.error_x.arrayminus) == [0.0, 0.04, 0.26]
    ax = to_matplotlib(bars)
    ends = [x for line in ax.collections for seg in line.get_segments() for x, _ in seg]  # the error bars' lines
    assert ends and min(ends) == 0.0 and max(ends) == pytest.approx(0.81)
    plt.close(ax.figure)


@pytest.mark.usefixtures("matplotlib_fonts_alone")
def test_characters_the_image_font_lacks_are_said_once_with_the_fix(tmp_path: Path) -> None:
    """A study named in Chinese printed matplotlib's "Glyph 27169 (...) missing from font(s) DejaVu Sans" for
    each character each time it was drawn: 81 lines before the command's own."""
    imp = Importances("fanova", (Effect(("学习率_模型",), 0.7, 0.05), Effect(("lr",), 0.3, 0.02)), (), 50)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        plots.save(plots.importance_bars(imp), tmp_path / "i.png")
    texts = [str(w.message) for w in said]
    assert not any(t.startswith("Glyph") for t in texts), texts
    (glyphs,) = [t for t in texts if "has no glyph" in t]
    assert "5 characters of its text (学习率模型)" in glyphs and "font.family" in glyphs and "HTML" in glyphs
    with warnings.catch_warnings(record=True) as said:  # one: "1 characters" read as a slip
        warnings.simplefilter("always")
        plots.save(plots.importance_bars(Importances("fanova", (Effect(("lr🚀",), 1.0, 0.0),), (), 50)),
                   tmp_path / "one.png")
    (one,) = [str(w.message) for w in said if "has no glyph" in str(w.message)]
    assert "no glyph for 1 character of its text (🚀): it is drawn as a box, and no installed font has it" in one
    assert "apt install fonts-noto-cjk" in glyphs and "which tunesmith then finds" in glyphs


def _font_of(path: Path, family: str, chars: str, *, bitmaps: bool = False) -> Path:
    """A TrueType font named ``family`` whose glyphs for ``chars`` are squares (fontTools, matplotlib's own);
    ``bitmaps``: PNG pictures of one size in an sbix table and no outlines, as a colour emoji font has them."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def square() -> object:
        pen = TTGlyphPen(None)
        if bitmaps:
            return pen.glyph()
        for point in ((100, 0), (100, 700), (900, 700), (900, 0)):
            (pen.lineTo if point != (100, 0) else pen.moveTo)(point)
        pen.closePath()
        return pen.glyph()

    names = [".notdef", *(f"uni{ord(c):04X}" for c in chars)]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in chars})
    fb.setupGlyf({name: square() for name in names})
    fb.setupHorizontalMetrics({name: (1000, 100) for name in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    if bitmaps:
        _only_pictures(fb.font, names[1:])
    fb.save(str(path))
    return path


def _only_pictures(font: Any, names: list[str]) -> None:
    """``font``'s outlines replaced by a red 8x8 PNG a glyph at 109 pixels an em (Noto Color Emoji's size)."""
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables import sbixGlyph, sbixStrike

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    del font["glyf"], font["loca"]
    font["maxp"].tableVersion = 0x00005000  # no outlines: FreeType then knows the font's fixed sizes alone
    strike = sbixStrike.Strike(ppem=109, resolution=72)
    for name in names:
        strike.glyphs[name] = sbixGlyph.Glyph(glyphName=name, graphicType="png ", imageData=png,
                                              originOffsetX=0, originOffsetY=0)
    sbix = newTable("sbix")
    sbix.version, sbix.flags, sbix.strikes = 1, 1, {109: strike}
    font["sbix"] = sbix


@pytest.mark.usefixtures("matplotlib_fonts_alone")
def test_a_colour_emoji_font_that_cannot_be_drawn_is_named_with_why(tmp_path: Path) -> None:
    """An installed font that had the characters but that FreeType cannot size (a colour emoji font's pictures
    come in fixed sizes) was found, failed to draw, and the warning said "no installed font has it": the user
    looked for a font they had. Now the warning names that font and matplotlib's error, and what draws them."""
    from matplotlib import font_manager

    font = _font_of(tmp_path / "emoji.ttf", "Tunesmith Test Emoji", "🚀", bitmaps=True)
    # listed as a font cache can list it (matplotlib's addfont refuses a font without outlines today)
    font_manager.fontManager.ttflist.append(font_manager.FontEntry(fname=str(font), name="Tunesmith Test Emoji"))
    imp = Importances("fanova", (Effect(("lr🚀",), 1.0, 0.0),), (), 50)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            plots.save(plots.importance_bars(imp), tmp_path / "one.png")
    finally:
        font_manager.fontManager.ttflist = [e for e in font_manager.fontManager.ttflist if e.fname != str(font)]
        font_manager.FontManager._findfont_cached.cache_clear()
    (one,) = [str(w.message) for w in said if "has no glyph" in str(w.message)]
    assert "no installed font" not in one, one
    assert "(🚀): it is drawn as a box. The installed font Tunesmith Test Emoji has it, but matplotlib failed" in one
    assert "invalid pixel size)" in one and "as a colour emoji font's" in one and "fonts-symbola" in one, one
    assert (tmp_path / "one.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.usefixtures("matplotlib_fonts_alone")
def test_characters_the_image_font_lacks_are_drawn_in_an_installed_font_that_has_them(tmp_path: Path) -> None:
    """A name in Chinese was drawn as boxes even where an installed font had its characters (matplotlib looks in
    its font.family alone). Now an installed font that has them is found and drawn after the families set: no
    warning, and the image's text is drawn (not the boxes: the picture differs from the one without the font)."""
    from matplotlib import font_manager

    imp = Importances("fanova", (Effect(("学习率_模型",), 0.7, 0.05), Effect(("lr",), 0.3, 0.02)), (), 50)
    with pytest.warns(UserWarning, match="no installed font has them"):
        plots.save(plots.importance_bars(imp), tmp_path / "boxes.svg")
    font = _font_of(tmp_path / "cjk.ttf", "Tunesmith Test CJK", "学习率模型")
    font_manager.fontManager.addfont(str(font))
    mpl_render._HAS.clear()  # what other tests' searches asked
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            plots.save(plots.importance_bars(imp), tmp_path / "drawn.svg")
        assert not [str(w.message) for w in said if "glyph" in str(w.message).lower()], [str(w.message) for w in said]
        assert (tmp_path / "drawn.svg").read_bytes() != (tmp_path / "boxes.svg").read_bytes()
        assert font_manager.fontManager.ttflist[-1].name == "Tunesmith Test CJK"
        # each listed file was asked for these characters alone, not read whole (a CJK font's map: 45,000)
        assert {code for known in mpl_render._HAS.values() for code in known} == {ord(c) for c in "学习率模型"}
        assert mpl_render._HAS[str(font)] == dict.fromkeys(map(ord, "学习率模型"), True)
    finally:
        font_manager.fontManager.ttflist = [e for e in font_manager.fontManager.ttflist if e.fname != str(font)]
        font_manager.FontManager._findfont_cached.cache_clear()


def test_the_best_so_far_of_a_study_of_one_trial_is_drawn_as_a_dot() -> None:
    """With one trial the history's "best so far" was a step line of one point: a legend entry, nothing drawn."""
    chart = plots.history_data(snap([("complete", 0.3)]))
    assert chart.find("best-so-far").x == [0]
    (best,) = [t for t in to_plotly(chart).data if t.name == "best so far"]
    assert best.mode == "lines+markers"
    ax = to_matplotlib(chart)
    (line,) = [line for line in ax.get_lines() if line.get_gid() == "best-so-far"]
    assert line.get_marker() == "o"
    plt.close(ax.figure)
    two = to_plotly(plots.history_data(snap([("complete", 0.3), ("complete", 0.2)])))
    assert [t.mode for t in two.data if t.name == "best so far"] == ["lines"]


def test_a_trial_pruned_at_its_first_report_ends_in_an_x_not_the_paused_o() -> None:
    """A curve of one report is drawn as a dot: a pruned trial's read as the "o" that marks a paused one."""
    trials = tuple(FrozenTrial(i, state, {"x": 0.5}, value=0.5 if state is TrialState.COMPLETE else None,
                               intermediate={1: 0.5 + i})
                   for i, state in enumerate((TrialState.PRUNED, TrialState.PAUSED, TrialState.COMPLETE)))
    chart = plots.curves_data(plots.Snapshot("s", Direction.MINIMIZE, ts.Space({"x": ts.Float(0, 1)}), trials))
    ax = to_matplotlib(chart)
    assert {line.get_gid(): line.get_marker() for line in ax.get_lines() if line.get_gid().startswith("trial-")} == {
        "trial-0": "x", "trial-1": "o", "trial-2": "o"}
    plt.close(ax.figure)
    dots = {t.hovertext[0]: t.marker.symbol for t in to_plotly(chart).data if t.hovertext and t.mode == "lines+markers"}
    assert dots == {"trial 0": "x", "trial 1": "circle", "trial 2": "circle"}


def test_overfitting_graph_of_a_trial_marks_the_stop_and_the_restored_best() -> None:
    t = FrozenTrial(3, TrialState.COMPLETE, {"x": 0.1}, value=0.4, intermediate={1: 0.9, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.6},
                    attrs={"curves": {"train_loss": [1.0, 0.6, 0.4, 0.3, None]}, "best_step": 3,
                           "stopped_early": True, "overfit_at": 4})
    chart = plots.overfitting(t)
    assert list(chart.find("val").y) == [0.9, 0.5, 0.4, 0.45, 0.6]
    assert chart.find("train").y[:4] == [1.0, 0.6, 0.4, 0.3] and math.isnan(chart.find("train").y[4])
    assert list(chart.find("early-stop").x) == [5] and "early stopping (epoch 5)" == chart.find("early-stop").label
    assert list(chart.find("best").x) == [3] and list(chart.find("overfitting").x) == [4, 5]
    assert plots.overfitting(FrozenTrial(0, TrialState.FAILED, {}, error="x")).empty


def test_the_overfitting_legend_names_the_summary_it_draws_not_the_live_flag() -> None:
    """The markers are the stored summary (``overfit_at``) from where it began, and their legend said
    "overfitting signal (2 epochs)", the live flag's name; a paused trial's summary is of the run so far."""
    attrs = {"curves": {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.2]}, "best_step": 3, "overfit_at": 4}
    for state, said in ((TrialState.COMPLETE, "summary"), (TrialState.PAUSED, "summary so far")):
        t = FrozenTrial(3, state, {"x": 0.1}, value=0.4, intermediate={1: 0.9, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.6},
                        attrs=attrs)
        marked = plots.overfitting(t).find("overfitting")
        assert marked.label == f"overfitting from epoch 4 ({said}: the gap's rise after the best)", marked.label
        assert list(marked.x) == [4, 5]


def test_the_overfitting_legend_of_a_history_whose_run_goes_on_says_so_far() -> None:
    """A History plotted while its run went on (from a Trainer callback) was labelled "summary", as a
    finished run: only a trial's state said "so far". ``Trainer.fit`` marks its history finished on return."""
    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import EvalRecord, History, TrainConfig, Trainer

    def rec(i: int, train: float, val: float, flag: bool) -> EvalRecord:
        return EvalRecord(i, i + 1, 10 * (i + 1), train, val, {}, 0.1, 100.0, 0.1, False, flag)

    losses = [(1.0, 0.9), (0.6, 0.5), (0.4, 0.4), (0.3, 0.45), (0.2, 0.6), (0.1, 0.8)]
    h = History(records=[rec(i, t, v, i >= 5) for i, (t, v) in enumerate(losses)], best_loss=0.4, best_index=2)
    for done, said in ((False, "summary so far"), (True, "summary")):
        marked = plots.overfitting(dataclasses.replace(h, finished=done)).find("overfitting")
        assert marked.label == f"overfitting from epoch 4 ({said}: the gap's rise after the best)", marked.label
    seen: list[bool] = []
    train, val = split(48)
    trainer = Trainer(mlp(), TrainConfig(epochs=2, batch_size=8),
                      callbacks=[lambda tr, record: seen.append(tr.history.finished)])
    assert trainer.fit(train, val).finished and seen == [False, False]


def test_overfitting_graph_marks_the_same_points_and_legend_in_both_renderers() -> None:
    """The HTML graph drew the early stopping's (and the pruner's rungs') vertical line as a shape,
    which has no legend entry: only the image said at which epoch the run stopped."""
    t = FrozenTrial(3, TrialState.COMPLETE, {"x": 0.1}, value=0.4, intermediate={1: 0.9, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.6},
                    attrs={"curves": {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.2]}, "best_step": 3,
                           "stopped_early": True, "overfit_at": 4})
    chart = plots.overfitting(t)
    fig, ax = to_plotly(chart), to_matplotlib(chart)
    html = {tr.name: tr for tr in fig.data}
    image = {line.get_label(): line for line in ax.get_lines()}
    for gid, symbol in (("train", None), ("val", None), ("overfitting", "triangle-down"), ("best", "star")):
        s = chart.find(gid)
        assert list(html[s.label].x) == list(image[s.label].get_xdata()) == list(s.x)
        assert list(html[s.label].y) == list(image[s.label].get_ydata()) == list(s.y)
        assert symbol is None or html[s.label].marker.symbol == symbol
    stop = chart.find("early-stop")
    assert stop.label == "early stopping (epoch 5)" and stop.label in html and stop.label in image
    assert [shape.x0 for shape in fig.layout.shapes] == [5] and list(image[stop.label].get_xdata()) == [5, 5]
    assert {tr.name for tr in fig.data if tr.showlegend} == {s.label for s in chart.series}
    plt.close(ax.figure)


def test_vertical_lines_are_added_to_the_html_plot_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """plotly's add_vline copies the whole layout at each line: 30 rungs took 0.47 s to draw against
    0.03 s without them, and a dashboard trial page, drawn with its study's rungs, twice as long.
    The layout writes are counted (timed by benchmarks/bench_history.py vlines)."""
    import plotly.graph_objects as go

    writes: list[str] = []
    for name in ("add_vline", "add_hline", "add_shape", "update_layout"):
        real = getattr(go.Figure, name)
        monkeypatch.setattr(go.Figure, name, lambda self, *a, _real=real, _name=name, **kw: (
            writes.append(_name), _real(self, *a, **kw))[1])

    def chart(n: int) -> Chart:
        return Chart("curves", "t", "step", "v", (Series("a", list(range(100)), [float(i) for i in range(100)]),
                     Series("rungs", list(range(1, n + 1)), mode="vline", color="#555555", dash=":")), int_x=True)

    to_plotly(chart(0))
    without = len(writes)
    writes.clear()
    fig = to_plotly(chart(30))
    assert [(s.x0, s.x1, s.yref, s.line.dash) for s in fig.layout.shapes] == [(x, x, "y domain", "dot") for x in range(1, 31)]
    assert len(writes) == without, writes  # as many as without a line (before: one more add_vline for each)


def test_an_objective_s_own_curves_attrs_are_not_read_as_the_trainer_s() -> None:
    from tunesmith.report import build_report

    study = ts.Study({"x": ts.Float(0, 1)}, name="own-attrs", sampler="random", seed=0)

    def objective(t: ts.Trial) -> float:
        t.report(t.params["x"], 1)
        t.report(t.params["x"] / 2, 2)
        t.set_attr("curves", [0.9, 0.5, 0.3])  # the user's own, not tunesmith.train's {"val_loss": [...]}
        t.set_attr("overfit_at", "epoch 2")
        return t.params["x"]

    study.optimize(objective, n_trials=3)
    graph = plots.records_of(study, "overfitting")[0]  # was AttributeError: 'list' object has no attribute 'get'
    assert graph.title.endswith("reported values (no training loss recorded)") and len(graph.find("val").x) == 2
    assert "plot-overfitting" in build_report(study)  # the whole report failed with it
    from tunesmith.cli.commands import best_table

    assert best_table(study, study.trials, 3).row_count == 3  # show's "overfit at" column read them as a dict


@pytest.mark.parametrize("at", [float("nan"), float("inf"), -float("inf")])
def test_overfitting_graph_of_a_trial_whose_overfit_at_is_not_finite_draws_no_signal(at: float) -> None:
    # attrs are written by the objective (or an import): before, int(nan) raised ValueError, int(inf) OverflowError
    trial = FrozenTrial(1, TrialState.COMPLETE, {"x": 0.1}, value=0.4, intermediate={1: 0.5, 2: 0.4},
                        attrs={"curves": {"train_loss": [0.3, 0.2], "val_loss": [0.5, 0.4]}, "overfit_at": at})
    chart = plots.overfitting(trial)
    assert list(chart.find("val").y) == [0.5, 0.4] and "overfitting" not in [s.gid for s in chart.series]


def test_overfitting_graph_marks_the_best_checkpoint_at_a_finite_validation_loss() -> None:
    # a trial without best_step (an objective's own attrs): the first validation's NaN loss was taken as the best
    trial = FrozenTrial(1, TrialState.COMPLETE, {"x": 0.1}, value=0.4, intermediate={1: 0.9, 2: 0.5, 3: 0.4},
                        attrs={"curves": {"train_loss": [1.0, 0.6, 0.4], "val_loss": [math.nan, 0.5, 0.4]},
                               "best_checkpoint": "best.pt"})
    assert list(plots.overfitting(trial).find("best").x) == [3]
    trial.attrs["curves"]["val_loss"] = [math.nan, math.nan, math.nan]
    assert "best" not in [s.gid for s in plots.overfitting(trial).series]


def test_overfitting_graph_draws_losses_only_where_the_trial_recorded_losses() -> None:
    # monitor="accuracy": the reports are accuracies; the trainer's curves hold the losses
    acc = FrozenTrial(1, TrialState.COMPLETE, {"x": 0.1}, value=0.9, intermediate={1: 0.8, 2: 0.9, 3: 0.88},
                      attrs={"curves": {"train_loss": [0.5, 0.3, 0.2], "val_loss": [0.6, 0.4, 0.45]}, "best_step": 2})
    chart = plots.overfitting(acc)
    assert list(chart.find("val").y) == [0.6, 0.4, 0.45] and chart.y_label == "loss"
    assert chart.find("best").y == [0.4]
    # k-fold: the reports are running means over folds, not a curve by epoch
    folds = FrozenTrial(2, TrialState.COMPLETE, {"x": 0.1}, value=0.95, intermediate={1: 0.92, 2: 0.945, 3: 0.957},
                        attrs={"cv": {"folds": 3, "key": "score", "scores": {"score": [0.92, 0.97, 0.98]}}})
    empty = plots.overfitting(folds)
    assert empty.empty and "cross-validation folds" in (empty.message or "")
    # any other objective's reports: drawn as what they are, never called a loss
    plain = plots.overfitting(FrozenTrial(3, TrialState.PRUNED, {"x": 0.1}, value=0.7, intermediate={0: 0.6, 1: 0.7}))
    assert plain.y_label == "reported value" and plain.x_label == "step" and "validation loss" not in plain.title
    assert plain.find("val").label == "reported value" and plain.find("early-stop").label == "pruned (step 1)"


def test_overfitting_graph_of_a_paused_trial_marks_where_it_paused() -> None:
    """Before: a trial ASHA paused at epoch 4 (its validation loss rising since epoch 2) was drawn as a finished
    run, with nothing to say that it stopped there and may go on; a pruned one is marked where it stopped."""
    paused = FrozenTrial(19, TrialState.PAUSED, {"x": 0.1}, value=2.84, intermediate={1: 1.99, 2: 1.85, 3: 2.52, 4: 2.84},
                         attrs={"curves": {"train_loss": [1.78, 0.71, 0.30, 0.24], "val_loss": [1.99, 1.85, 2.52, 2.84]},
                                "best_step": 2})
    chart = plots.overfitting(paused)
    assert chart.find("early-stop").label == "paused (epoch 4)" and list(chart.find("early-stop").x) == [4]
    running = FrozenTrial(20, TrialState.RUNNING, {"x": 0.1}, intermediate={1: 1.99, 2: 1.85},
                          attrs={"curves": {"train_loss": [1.78, 0.71], "val_loss": [1.99, 1.85]}})
    assert "early-stop" not in {s.gid for s in plots.overfitting(running).series}


def test_overfitting_graph_from_a_real_training_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, objective

    study = ts.Study({"lr": ts.Float(0.05, 0.2, log=True)}, sampler="random", seed=0)
    base = TrainConfig(epochs=12, batch_size=8, patience=2, restore_best=True)
    study.optimize(objective(lambda p: mlp(hidden=64), split(48), base=base, checkpoint_root=tmp_path), n_trials=1)
    t = study.trials[0]
    chart = plots.overfitting(t)
    assert len(chart.find("train").x) == len(t.intermediate) == len(chart.find("val").x)
    assert chart.find("best").x == [t.attrs["best_step"]]
    assert t.value == pytest.approx(t.intermediate[t.attrs["best_step"]])  # the restored best is the value
    if t.attrs["stopped_early"]:
        assert list(chart.find("early-stop").x) == [max(t.intermediate)]


def test_overfitting_graph_of_a_run_validating_every_few_steps_counts_validations() -> None:
    """Validating every 4 optimizer steps, the k-th record is the k-th validation: the graph
    labelled it "epoch k" (its 3 points stood at epochs 1, 2, 3 of a run of under 2 epochs)."""
    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, Trainer

    train, val = split(64)  # 48 samples, batch 8 -> 6 steps per epoch
    h = Trainer(mlp(), TrainConfig(epochs=None, max_steps=10, eval_every=4, batch_size=8)).fit(train, val)
    chart = plots.overfitting(h)
    assert chart.x_label == "validation" and list(chart.find("val").x) == [1, 2, 3]
    assert all("epoch" not in (s.label or "") for s in chart.series)
    whole = Trainer(mlp(), TrainConfig(epochs=2, batch_size=8)).fit(train, val)
    assert plots.overfitting(whole).x_label == "epoch"


@pytest.mark.parametrize("every, unit", [(4, "validation"), (None, "epoch")])
def test_overfitting_graph_of_a_trial_validating_every_few_steps_counts_validations(tmp_path: Path, every, unit) -> None:
    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, objective

    study = ts.Study({"lr": ts.Float(0.05, 0.2, log=True)}, sampler="random", seed=0)
    base = TrainConfig(epochs=None if every else 2, max_steps=10 if every else None, eval_every=every, batch_size=8)
    study.optimize(objective(lambda p: mlp(), split(64), base=base, checkpoint_root=tmp_path), n_trials=1)
    chart = plots.overfitting(study.trials[0])
    assert chart.x_label == unit and len(chart.find("val").x) == (3 if every else 2)


def test_adam_in_action_runs_torch_adams_update_and_the_smallest_lr_crawls() -> None:
    torch = pytest.importorskip("torch")
    p = torch.tensor([-1.5, 2.0], requires_grad=True, dtype=torch.float64)
    opt = torch.optim.Adam([p], lr=0.05, betas=(0.9, 0.999))
    for _ in range(60):
        opt.zero_grad()
        ((1 - p[0]) ** 2 + 10 * (p[1] - p[0] ** 2) ** 2).backward()
        opt.step()
    assert plots.adam_path(0.05, 0.9, 0.999, steps=60)[-1] == pytest.approx(p.detach().numpy(), abs=1e-9)
    chart = plots.adam_in_action("lr")
    ends = {s.gid: math.dist((s.x[-1], s.y[-1]), (1, 1)) for s in chart.series if (s.gid or "").startswith("path-")}
    assert set(ends) == {"path-lr=0.005", "path-lr=0.05", "path-lr=0.3"}
    assert ends["path-lr=0.005"] > ends["path-lr=0.05"]
    with pytest.raises(ValueError, match="vary must be one of"):
        plots.adam_in_action("momentum")


def test_process_diagram_counts_the_studys_own_flow() -> None:
    d = plots.process(snap(MIXED, pruner="ASHA"))
    assert d.node("trials").detail.startswith("7 run") and "3 complete" not in d.node("trials").detail
    assert d.node("trials").detail.splitlines()[1:] == ["4 complete", "1 failed", "2 pruned"]  # fits the box
    assert d.node("pruner").detail == "ASHA\nstopped 2" and d.node("sampler").detail == "random"
    assert d.node("best").detail == "#3: 3" and d.node("test").detail == "not recorded"
    assert ("trials", "pruner", "reports") in d.edges
    no_pruner = plots.process(snap(MIXED))
    assert "pruner" not in {n.key for n in no_pruner.nodes} and plots.process(snap([])).empty


def test_thousands_of_curves_render_as_few_plotly_traces() -> None:
    rng = np.random.default_rng(0)
    trials = tuple(FrozenTrial(i, TrialState.PRUNED if i % 3 else TrialState.COMPLETE, {"x": float(rng.random())},
                               value=1.0 + i % 7, intermediate={k: 1.0 / k + i * 1e-4 for k in range(1, 6)})
                   for i in range(3000))
    s = plots.Snapshot("big", Direction.MINIMIZE, ts.Space({"x": ts.Float(0, 1)}), trials)
    chart = plots.curves_data(s)
    assert sum(1 for x in chart.series if (x.gid or "").startswith("trial-")) == 3000
    fig = to_plotly(chart)
    assert len(fig.data) < 10  # merged per style: the HTML stays small
    assert sum(len([v for v in tr.x if v is not None]) for tr in fig.data if tr.mode == "lines") == 15000


@pytest.fixture()
def stored(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    s = ts.Study(SPACE, storage=url, name="cli", sampler="random", seed=0)
    s.optimize(lambda t: (math.log10(t.params["C"])) ** 2 + t.params["x"], n_trials=20)
    return url


@pytest.mark.slow
def test_plot_command_draws_every_kind_to_html_and_png(stored: str, tmp_path: Path) -> None:
    for kind in plots.KINDS:
        if kind in ("curves", "overfitting"):
            continue  # no reports in this study: below
        for ext in ("png", "html"):
            out = tmp_path / f"{kind}.{ext}"
            assert main(["plot", "cli", "--storage", stored, "--kind", kind, "-o", str(out)]) == 0, kind
            head = out.read_bytes()[:15]
            assert head.startswith(b"\x89PNG" if ext == "png" else b"<!DOCTYPE html>"), kind
    help_text = build_parser()._subparsers._group_actions[0].choices["plot"].format_help()  # type: ignore[union-attr]
    for kind in plots.KINDS:
        assert kind in help_text
    assert "contour the first 3 numeric ones" in " ".join(help_text.split())  # not "default all"


def test_plot_with_nothing_to_draw_says_so_and_exits_nonzero(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", "cli", "--storage", stored, "--kind", "curves", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nothing to draw" in err and "reported intermediate values" in err and not out.exists()
    assert "the history (tunesmith plot NAME --kind history, plots.history) draws each trial's value" in err
    assert main(["plot", "cli", "--storage", stored, "--kind", "overfitting", "--trial", "99", "-o", str(out)]) == 2
    assert "has no trial 99" in capsys.readouterr().err
    # an option the kind does not use is named, not ignored
    assert main(["plot", "cli", "--storage", stored, "--kind", "history", "--trial", "3", "-o", str(out)]) == 2
    assert "--trial applies to --kind overfitting, not history" in capsys.readouterr().err
    assert main(["plot", "cli", "--storage", stored, "--kind", "importance", "--params", "C", "-o", str(out)]) == 2
    assert "--params applies to --kind parallel, slice, contour, not importance" in capsys.readouterr().err
    assert main(["plot", "cli", "--storage", stored, "--kind", "slice", "--log-y", "-o", str(out)]) == 2
    assert main(["plot", "cli", "--storage", stored, "--kind", "slice", "--method", "ped-anova", "-o", str(out)]) == 2
    assert "--method applies to --kind importance, not slice" in capsys.readouterr().err
    assert not out.exists()
    capsys.readouterr()
    # a name given twice draws once (before: "--params C,C" drew C's slice twice)
    assert main(["plot", "cli", "--storage", stored, "--kind", "slice", "--params", "C, C", "-o", str(out)]) == 0
    assert capsys.readouterr().err.count("value against C") == 1


def test_compare_runs_each_sampler_over_seeds_on_a_study_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return (trial.params['x'] - 0.3) ** 2\n")
    (tmp_path / "study.yaml").write_text(textwrap.dedent("""\
        objective: obj.py:objective
        direction: minimize
        space:
          x: {type: float, low: 0, high: 1, grid: [0, 0.5, 1]}
        """))
    out = tmp_path / "compare.png"
    argv = ["compare", str(tmp_path / "study.yaml"), "--samplers", "grid,random,sobol", "--budget", "6",
            "--seeds", "2", "-o", str(out)]
    assert main(argv) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "grid" in text and "random" in text and "sobol" in text
    runs = plots.run_samplers(lambda t: t.params["x"], {"x": ts.Float(0, 1)}, samplers=["random"], budget=4, seeds=[0, 1])
    for bad in ({"seeds": 2}, {"samplers": "random"}):  # before: "'int' object is not iterable", sampler 'r'
        with pytest.raises(TypeError, match=r"run_samplers takes lists: samplers=\['random', 'bayes'\] and seeds=\[0, 1, 2\]"):
            plots.run_samplers(lambda t: t.params["x"], {"x": ts.Float(0, 1)}, **{"samplers": ["random"], "seeds": [0], **bad})
    assert [len(s.trials) for s in runs["random"]] == [4, 4]
    assert runs["random"][0].trials[0].params != runs["random"][1].trials[0].params  # seeds differ


def test_the_importance_plot_draws_either_method(stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "i.png"  # the command drew fANOVA only, though importance_bars and the dashboard take both
    assert main(["plot", "cli", "--storage", stored, "--kind", "importance", "--method", "ped-anova", "-o", str(out)]) == 0
    assert "importance (ped-anova, 20 complete trials)" in capsys.readouterr().err and out.exists()
    assert plots.records_of(ts.load_study("cli", stored), "importance")[0].title.startswith("cli: importance (fanova")


def test_compare_refuses_an_output_it_cannot_write_before_running_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = tmp_path / "ran"
    (tmp_path / "obj.py").write_text(f"def objective(trial):\n    open({str(ran)!r}, 'a').write('x')\n    return 1.0\n")
    (tmp_path / "study.yaml").write_text("objective: obj.py:objective\nspace:\n  x: {type: float, low: 0, high: 1}\n")
    for out, why in ((tmp_path / "compare.jpgg", "compare.jpgg': write to a file ending in .html"),
                     (tmp_path / "no" / "compare.png", "does not exist; create it first")):
        argv = ["compare", str(tmp_path / "study.yaml"), "--samplers", "random", "--budget", "3", "-o", str(out)]
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert why in capsys.readouterr().err
    assert not ran.exists()  # refused before the first trial, not after every run


def test_compare_table_gives_the_median_of_an_even_number_of_runs() -> None:
    from tunesmith.cli.insight import _compare_summary, _compare_table

    runs = plots.run_samplers(lambda t: t.params["x"], {"x": ts.Float(0, 1)}, samplers=["random"], budget=3,
                              seeds=[0, 1])
    bests = sorted(s.best_value for s in runs["random"])
    sampler, median, best, worst, n = (list(c._cells) for c in _compare_table(_compare_summary(runs, "minimize"), "minimize").columns)
    assert (best, worst, n) == ([f"{bests[0]:.6g}"], [f"{bests[1]:.6g}"], ["2"])
    assert median == [f"{(bests[0] + bests[1]) / 2:.6g}"]  # it printed the worse run as the median


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_better_is_the_same_colour_end_in_contour_and_parallel_coordinates(direction: str) -> None:
    """A contour of a minimized value drew the best trials dark (viridis's low end) where parallel
    coordinates drew them yellow: both reverse the scale for minimize, in both renderers."""
    s = snap(MIXED * 3, direction)
    flip = direction == "minimize"
    chart, par = plots.contour(s, "C", "x"), plots.parallel(s)
    assert chart.reverse_scale is flip and par.reverse_scale is flip
    surface = next(t for t in to_plotly(chart).data if t.type == "contour")
    assert surface.reversescale is flip and to_plotly(par).data[0].line.reversescale is flip
    ax = to_matplotlib(chart)
    assert ax.collections[0].get_cmap().name == ("viridis_r" if flip else "viridis")
    plt.close(ax.figure)


def _every_state() -> plots.Snapshot:
    states = ["complete", "pruned", "failed", "running", "waiting", "paused"] * 3
    return snap([(st, 1.0 + i if st in ("complete", "pruned") else None) for i, st in enumerate(states)],
                pruner="ASHA")


@pytest.mark.parametrize("snapshot", [_every_state, lambda: snap(MIXED, pruner="ASHA")])
def test_process_diagram_boxes_hold_their_text_with_every_trial_state(snapshot) -> None:
    """With 6 trial states the trials box's 7 detail lines ran out of its box (matplotlib):
    every box grows with its text, and the image keeps every box and text inside it; the
    plotly figure grows so that the box holds its lines at 11 px."""
    d = plots.process(snapshot())
    ax = to_matplotlib(d)
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = {p.get_gid(): p.get_window_extent(r) for p in ax.patches}
    for n in d.nodes:
        box = boxes[f"node-{n.key}"]
        inside = [t.get_window_extent(r) for t in ax.texts if t.get_text() in (n.label, n.detail)
                  and abs(t.get_position()[0] - n.x) < 1e-9]
        assert inside and all(box.y0 <= e.y0 and e.y1 <= box.y1 and box.x0 <= e.x0 and e.x1 <= box.x1
                              for e in inside), n.key
    frame = ax.get_window_extent(r)
    assert all(frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes.values())
    plt.close(fig)
    layout = to_plotly(d).layout  # HTML: the figure grows so that a text line keeps about 15 px
    low, high = layout.yaxis.range
    assert (layout.height - 160) / (high - low) * 2 * d.box[1] >= 15 * (1 + len(d.node("trials").detail.splitlines()))


def test_parameter_values_are_labelled_with_sensible_digits_and_stored_with_every_bit() -> None:
    """A log range's centre, 10 ** 0 computed as 1.0000000000000009, was a tick label of parallel
    coordinates and slices and a number of the report's space table: shown as 1, kept as it is."""
    from tunesmith.report import _space
    from tunesmith.space import value_labels

    centre = 1.0000000000000009  # a value recorded with roundoff (log-scale decoding before it read as written)
    assert centre != 1.0 and value_labels([0.1, centre]) == ["0.1", "1"]
    assert value_labels([0.1, 0.1000000001, "rbf", (0.30000000000000004, 2)]) == [
        "0.1", "0.1000000001", "rbf", "(0.3, 2)"]  # more digits only where 6 would print two alike
    space = ts.Space({"k": ts.Categorical([0.1, centre]), "x": ts.Float(0, 1)})
    trials = tuple(FrozenTrial(i, TrialState.COMPLETE, {"k": [0.1, centre][i % 2], "x": i / 10}, value=float(i))
                   for i in range(6))
    s = plots.Snapshot("s", Direction.MINIMIZE, space, trials)
    assert [label for _, label in plots.parallel(s).axes[0].ticks] == ["0.1", "1"]
    assert set(plots.slices(s)[0].find("trials").x) == {"0.1", "1"} and plots.slices(s)[0].find("best").x == ["0.1"]
    assert "1.0000000000000009" not in _space(s) and trials[1].params["k"] == centre


def test_a_plot_or_report_into_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    # before: the command line refused a folder, but plots.save and write_report computed
    # everything, then failed with IsADirectoryError
    from tunesmith.report import write_report

    study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", seed=0)
    study.optimize(lambda trial: trial.params["x"], n_trials=3)
    folder = tmp_path / "plots.html"
    folder.mkdir()
    for write in (lambda: plots.save(plots.history_data(study), folder), lambda: write_report(study, folder)):
        with pytest.raises(ValueError, match=r"plots.html' is a folder; name a file in it"):
            write()
    with pytest.raises(ValueError, match=r"'c.txt': write to a file ending in .html, .htm, .png, .pdf, .svg"):
        plots.save(plots.history_data(study), "c.txt")


def test_contours_of_a_conditional_space_pair_the_parameters_of_the_best_trials_branch() -> None:
    """A space of two branches drew, by default, its first 3 numeric parameters: the Ridge
    branch's alpha against the SVR branch's C and gamma, which no trial has together (two
    empty panels), and named two more of different branches as the ones to ask for."""
    space = ts.Space({
        "model": ts.Categorical(["ridge", "svr", "gbr"]),
        "alpha": ts.Float(1e-3, 1e3, log=True, when={"model": ["ridge"]}),
        "C": ts.Float(1e-1, 1e3, log=True, when={"model": ["svr"]}),
        "gamma": ts.Float(1e-4, 1.0, log=True, when={"model": ["svr"]}),
        "epsilon": ts.Float(0.01, 10, when={"model": ["svr"]}),
        "depth": ts.Int(1, 4, when={"model": ["gbr"]}),
        "rate": ts.Float(0.01, 0.3, log=True, when={"model": ["gbr"]}),
    })
    study = ts.Study(space, direction="maximize", name="branches", sampler="random", seed=0)
    study.optimize(lambda t: {"ridge": 0.5, "svr": 0.6, "gbr": 0.4}[t.params["model"]] + 0.01 * t.number, n_trials=40)
    assert study.best_trial.params["model"] == "svr"
    cs = plots.contours(study)
    assert [(c.x_label, c.y_label) for c in cs[:-1]] == [("C", "gamma"), ("C", "epsilon"), ("gamma", "epsilon")]
    assert not any(c.empty for c in cs[:-1])
    assert cs[-1].empty and (cs[-1].message or "").endswith("plots.contours(study, params=['depth', 'rate'])")
    named = plots.contours(study, params=["alpha", "C"])  # asked for: drawn as asked, with the reason
    assert len(named) == 1 and named[0].empty and "alpha and C are never active together" in (named[0].message or "")


def test_contours_of_branches_that_share_no_pair_say_so_and_hint_only_a_pair_that_meets() -> None:
    """A space of one numeric parameter per branch drew three empty panels ("needs at least 3
    complete trials ... has 0"); two branches of two drew the best one's pair and hinted the single
    "x2" (a contour of one parameter is refused), and a parameter alone in its branch was hinted too."""
    one = ts.Space({"model": ts.Categorical(["a", "b", "c"]), **{
        n: ts.Float(0, 1, when={"model": [m]}) for n, m in (("x", "a"), ("y", "b"), ("z", "c"))}})
    study = ts.Study(one, name="one", sampler="random", seed=0)
    study.optimize(lambda t: t.number, n_trials=12)
    cs = plots.contours(study)
    assert len(cs) == 1 and cs[0].empty and "no complete trial of 'one' has two numeric parameters" in (cs[0].message or "")
    two = ts.Space({"model": ts.Categorical(["a", "b", "c"]), **{
        n: ts.Float(0, 1, when={"model": [m]}) for n, m in (("x1", "a"), ("x2", "a"), ("y1", "b"), ("y2", "b"), ("w", "c"))}})
    study = ts.Study(two, name="two", direction="maximize", sampler="random", seed=0)
    study.optimize(lambda t: {"a": 1, "b": 2, "c": 0}[t.params["model"]] + 0.01 * t.number, n_trials=30)
    cs = plots.contours(study)
    assert [(c.x_label, c.y_label) for c in cs[:-1]] == [("y1", "y2")]
    assert (cs[-1].message or "").endswith("plots.contours(study, params=['x1', 'x2'])")
    study = ts.Study(two, name="three", sampler="random", seed=0)
    study.optimize(lambda t: {"a": 1, "b": 2, "c": 0}[t.params["model"]] + 0.01 * t.number, n_trials=30)
    cs = plots.contours(study)  # the best trial's branch has one numeric parameter (w): the pair met next
    assert [(c.x_label, c.y_label) for c in cs[:-1]] == [("x1", "x2")] and (cs[-1].message or "").endswith("plots.contours(study, params=['y1', 'y2'])")
    nested = ts.Space({"model": ts.Categorical(["a", "b", "c"]), "lr": ts.Float(0, 1, when={"model": ["a", "b"]}), **{
        n: ts.Float(0, 1, when={"model": [m]}) for n, m in (("x", "a"), ("y", "b"), ("w", "c"))}})
    study = ts.Study(nested, name="nested", sampler="random", seed=0)
    study.optimize(lambda t: {"a": 1, "b": 0, "c": 3}[t.params["model"]] + 0.01 * t.number, n_trials=30)
    cs = plots.contours(study)  # w has no partner: no hint to draw it
    assert [(c.x_label, c.y_label) for c in cs] == [("lr", "x"), ("lr", "y")]
    empty = ts.Study(two, name="empty")  # no trial yet: said once, as the slices say it
    assert [c.message for c in plots.contours(empty)] == ["study 'empty' has no complete trial yet"]


def test_contour_messages_name_a_list_of_dicts_parameters_as_show_does_and_take_those_names() -> None:
    """A list of dicts' "0:C" (stored) is shown as "C [branch 0]" by show, the tables and the plots'
    titles, but the contour's refusals named "0:C", and params= took the stored key alone."""
    space = ts.Space({"branch": ts.Categorical([0, 1]), "0:C": ts.Float(0.1, 10, log=True, when={"branch": [0]}),
                      "0:gamma": ts.Float(0.01, 1, log=True, when={"branch": [0]}),
                      "1:C": ts.Float(0.1, 10, log=True, when={"branch": [1]})})
    study = ts.Study(space, direction="maximize", name="svm", sampler="random", seed=0)
    study.optimize(lambda t: 1.0 if t.params["branch"] else float(t.number), n_trials=12)
    one = plots.contours(study, params=["0:C"])
    assert one[0].message == ("a contour needs two numeric parameters; only ['C [branch 0]'] was asked for (see the "
                              "slice plot for the others)")
    apart = plots.contours(study, params=["C [branch 1]", "0:C"])  # each name taken as show gives it
    # two branches' parameters never meet: "needs at least 3 complete trials ... has 0" read as "run more"
    assert apart[0].message == ("C [branch 1] and C [branch 0] are never active together: the conditional space puts "
                                "them in different branches ('svm' has C [branch 1] in 8 and C [branch 0] in 4 of its "
                                "12 complete trials); see the slice plot for each"), apart[0].message
    nested = ts.Space({"model": ts.Categorical(["svm", "tree"]), "kernel": ts.Categorical(["rbf", "poly"],
                       when={"model": ["svm"]}), "gamma": ts.Float(0.01, 1, when={"kernel": ["rbf"]}),
                       "depth": ts.Int(1, 9, when={"model": ["tree"]}), "degree": ts.Int(2, 5, when={"kernel": ["poly"]})})
    deep = ts.Study(nested, name="deep", sampler="random", seed=0)
    deep.optimize(lambda t: float(t.number), n_trials=8)
    assert "never active together" in plots.contour(deep, "gamma", "depth").message  # apart through 'kernel'
    assert "never active together" in plots.contour(deep, "gamma", "degree").message
    few = ts.Space({"a": ts.Float(0, 1), "b": ts.Float(0, 1, when={"c": ["on"]}), "c": ts.Categorical(["on", "off"])})
    assert "needs at least 3" in plots.contour(ts.Study(few, name="few"), "a", "b").message  # could meet: no trial yet
    drawn = plots.contours(study, params=["C [branch 0]", "gamma"])
    assert [(c.x_label, c.y_label, c.empty) for c in drawn] == [("C [branch 0]", "gamma", False)]
    with pytest.raises(ValueError, match=r"got 'C \[branch 0\]' twice"):
        plots.contour(study, "C [branch 0]", "0:C")
    with pytest.raises(ValueError, match=r"\['branch'\] categorical"):
        plots.contour(study, "branch", "0:C")
    with pytest.raises(ValueError, match=r"searches \['branch', 'C \[branch 0\]', 'gamma', 'C \[branch 1\]'\]"):
        plots.contours(study, params=["C [branch 2]"])


def test_report_and_diagram_say_the_pruner_pauses_as_show_does() -> None:
    """A study whose ASHA pauses: `tunesmith show` printed "pruner asha (pause=True)" while the
    report's settings and the process diagram said "asha" alone, hiding that its paused trials
    may still be resumed."""
    from tunesmith.report import build_report

    study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(pause=True, max_resource=9))
    for _ in range(3):
        t = study.ask()
        t.report(t.params["x"], 1)
        study.tell(t, t.params["x"])
    assert plots.process(study).node("pruner").detail.startswith("asha (pause=True)\n")
    assert "<td class=l>pruner</td><td class=l>asha (pause=True)</td>" in build_report(study, sections=())
    pruning = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", pruner="asha")
    pruning.tell(pruning.ask(), 0.5)
    assert plots.process(pruning).node("pruner").detail.startswith("asha\n")


def test_a_compare_legend_cuts_a_long_study_or_sampler_name_into_lines_as_titles_are() -> None:
    """The comparison's legend named each group whole on one line: a sampler's name of 300 characters took the
    image's whole width, the plot squeezed to a strip beside it. Now each entry is at most 3 lines of 32
    columns (a longer name: its first line, "…" and its end), the runs' note after it (or under it); the hover names it
    whole up to a title's length; the history drawn into one Axes per study likewise."""
    from tunesmith.importance import columns

    LEGEND_COLUMNS, MOST_LINES = 32, 3  # noqa: N806  # records' constants, as the docstring says
    long = "a_sampler_registered_by_the_objective_module_" * 7 + "end"
    chart = plots.comparison({long: [[3, 2, 1], [4, 1, 0]], "random": [[2, 2, 2]]})
    entry = chart.find(f"median-{long}").label
    lines = entry.split("\n")
    assert lines[0] == long[:LEGEND_COLUMNS] and lines[1] == "…" and long.endswith(lines[2]), lines
    assert lines[3:] == ["(median of 2 runs)"] and all(columns(line) <= LEGEND_COLUMNS for line in lines), lines
    assert chart.find("median-random").label == "random (1 run)"
    fig = to_plotly(chart)
    assert [tr.name for tr in fig.data if tr.showlegend][0] == "<br>".join(lines)
    ax = to_matplotlib(chart)
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.width < 0.4 * ax.figure.bbox.width, (legend.width, ax.figure.bbox.width)
    plt.close(ax.figure)
    studies = [ts.Study({"x": ts.Float(0, 1)}, name=name, sampler="random", seed=0) for name in (long, "short")]
    for s in studies:
        s.optimize(lambda t: t.params["x"], n_trials=3)
    ax = plots.history(studies[0])
    plots.history(studies[1], ax)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(len(t.split("\n")) <= MOST_LINES and max(map(len, t.split("\n"))) <= LEGEND_COLUMNS for t in texts), texts
    assert "short: best so far" in texts
    plt.close(ax.figure)


def test_a_compare_legend_of_a_group_named_on_many_lines_is_three_lines_at_most() -> None:
    """A group's name is any string: one written on 40 lines kept all of its end's lines (13 in the legend),
    and one ending in a line end had an empty last line. The end is its last line's end now."""
    from tunesmith.plots.records import in_lines

    many = "step\nby" * 40
    chart = plots.comparison({many: [[3, 2, 1]], "trailing " * 8 + "\n": [[2, 2, 2]]})
    for s in chart.series:
        if s.label is not None:
            lines = s.label.split("\n")
            assert len(lines) <= 4 and all(line.strip() for line in lines), lines  # 3 and the runs' note
    assert in_lines(many, 10, len) == ["step", "…", "by"]


@pytest.mark.parametrize("drawn", [(3, 7), (0, 49_999), (12_345, 12_346)])
def test_a_categorical_of_50000_stored_choices_is_drawn_with_a_bounded_axis_that_says_what_it_left_out(
    drawn: tuple[int, int]
) -> None:
    """A space a database's writer stored with 50,000 choices (the trials drew two): the HTML slice sent every
    choice to the page (0.8 MB of figure JSON; a parallel axis 1.2 MB), the image named every k-th, whether the trials drew it or not, and
    neither said so; a parallel axis likewise had 50,000 ticks. Now an axis holds about 200 of them (those drawn,
    the first, the last and 1 in k of the rest, in the space's order) and the title says how many of how many."""
    import json
    import re

    from tunesmith.plots.plotly_render import figure_json

    MAX_CHOICES = 200  # noqa: N806  # study_data's

    choices = [f"choice-{i}" for i in range(50_000)]
    study = ts.Study(ts.Space({"k": ts.Categorical(choices), "x": ts.Float(0, 1)}), sampler="random", seed=0)
    for i in range(6):
        study.add_trial({"k": choices[drawn[i % 2]], "x": i / 10}, float(i))
    (chart, _) = plots.slices(study)
    shown = list(chart.x_categories)
    index = {c: i for i, c in enumerate(choices)}
    assert {choices[d] for d in drawn} <= set(shown) and shown[0] == choices[0] and shown[-1] == choices[-1]
    assert len(shown) <= MAX_CHOICES + 2 and [index[c] for c in shown] == sorted(index[c] for c in shown)
    said = re.search(r"(\d+) of 50,000 choices shown: 2 choices the trials drew and 1 in (\d+) of the rest", chart.title)
    assert said and int(said[1]) == len(shown), chart.title
    k = int(said[2])
    assert {index[c] for c in shown} == {*drawn, *range(0, 50_000, k), 49_999}
    assert set(chart.find("trials").x) <= set(shown)
    page = json.dumps(figure_json(chart))
    assert len(page) < 60_000, len(page)  # 797 KB before (the labels, twice; the parallel figure's 1.2 MB)
    parallel = plots.parallel(study)
    ticks = parallel.axes[0].ticks
    assert len(ticks) == len(shown) and [label for _, label in ticks] == shown
    assert parallel.axes[0].span == (0.0, 49_999.0) and f"(k: {len(shown)} of 50,000 choices named" in parallel.title
    ax = to_matplotlib(chart)
    try:
        named = [t.get_text() for t in ax.get_xticklabels()]
        assert 2 <= len(named) <= len(shown) and set(named) <= set(shown), named[:5]
    finally:
        plt.close(ax.figure)


def test_a_categorical_whose_trials_drew_more_than_200_of_its_choices_names_about_200_on_a_parallel_axis() -> None:
    """1,000 trials that drew 1,000 of 50,000 choices: a slice's axis holds each of them (its points lie there), but
    a parallel axis named 1,001 ticks, drawn over each other, and both titles said "1 in 50,000 of the rest". Now
    the parallel axis names 1 in j of the drawn choices, the first and the last, about 200 in all, and each title
    says what it holds."""
    import re

    choices = [f"choice-{i}" for i in range(50_000)]
    study = ts.Study(ts.Space({"k": ts.Categorical(choices), "x": ts.Float(0, 1)}), sampler="random", seed=0)
    drawn = [(37 * i + 5) % 50_000 for i in range(1_000)]
    for i, d in enumerate(drawn):
        study.add_trial({"k": choices[d], "x": i / 1_000}, float(i))
    (chart, _) = plots.slices(study)
    assert {choices[d] for d in drawn} <= set(chart.x_categories) and len(chart.x_categories) == 1_002
    assert "1,002 of 50,000 choices shown: 1,000 choices the trials drew and the first and the last" in chart.title
    parallel = plots.parallel(study)
    ticks = parallel.axes[0].ticks
    assert 150 <= len(ticks) <= 202 and ticks[0] == (0.0, choices[0]) and ticks[-1] == (49_999.0, choices[-1])
    said = re.search(r"\(k: (\d+) of 50,000 choices named: 1 in (\d+) of the 1,000 choices the trials drew and 1 in "
                     r"([\d,]+) of the rest\)", parallel.title)
    assert said and int(said[1]) == len(ticks), parallel.title
    named = {int(v) for v, _ in ticks}
    assert sorted(drawn)[::int(said[2])] == sorted(named & set(drawn)), "1 in j of the drawn, in the space's order"
    assert list(parallel.axes[0].values) == [float(d) for d in drawn]  # each line at its choice, named or not


def test_reports_a_database_holds_as_nan_or_infinity_are_left_out_of_the_curves_and_the_plot_says_how_many(
    tmp_path: Path, shared_storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report()`` takes finite numbers only, but a row written by hand or by another program may hold NaN or
    Infinity: each renderer dropped them without a word (matplotlib under a silenced NumPy warning, plotly as a
    gap). The learning curves, the overfitting graph of reports and the dashboard's curve of a trial now leave
    them out in the data layer and say once, in the title, how many reports of how many trials and why. On
    SQLite and PostgreSQL alike (a text column on both: PostgreSQL's JSON refuses NaN, its read takes the
    text), and the report, the dashboard's plots and ``tunesmith show`` read such a study."""
    import sqlalchemy as sa

    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.cli import main
    from tunesmith.dashboard import create_app
    from tunesmith.report import build_report

    url = shared_storage_url
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0)

    def objective(t: ts.Trial) -> float:
        for k in range(4):
            t.report(t.params["x"] + k, k)
        return t.params["x"]

    study.optimize(objective, n_trials=5)
    engine = sa.create_engine(url)
    with engine.begin() as db:  # as another program writes them
        for number, reports in ((1, '{"0": NaN, "1": Infinity, "2": 2.0, "3": -Infinity}'), (2, '{"0": NaN}')):
            db.execute(sa.text("UPDATE ts_trials SET intermediate = :r WHERE number = :n"), {"r": reports, "n": number})
    engine.dispose()
    study = ts.load_study("s", url)
    curves = plots.records_of(study, "curves")[0]
    assert curves.title == "s: learning curves of 4 trials (4 NaN or infinite reports of 2 trials left out; 1 of them reported no other)"
    assert (list(curves.find("trial-1").x), list(curves.find("trial-1").y)) == ([2], [2.0])
    assert not [s for s in curves.series if s.gid == "trial-2"]
    assert all(math.isfinite(y) for s in curves.series for y in s.y)
    graph = plots.records_of(study, "overfitting", trial=1)[0]
    assert graph.title.endswith("(3 NaN or infinite reports of 1 trial left out)") and not graph.empty
    assert plots.records_of(study, "curves")[0].title == curves.title  # said the same on each read, not per draw
    with TestClient(create_app(ts.storage.make_storage(url))) as c:
        page = c.get("/api/studies/s/trials/1/curve").json()
        shown = c.get("/api/studies/s/plots/curves").json()
        assert c.get("/studies/s").status_code == 200
    assert "(3 NaN or infinite reports of 1 trial left out)" in json.dumps(page)
    assert shown["plots"][0]["title"] == curves.title
    assert html.escape(curves.title) in build_report(study)
    assert main(["show", "s", "--storage", url]) == 0 and "5 trials (5 complete)" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # drawn without a warning: nothing non-finite reaches matplotlib
        plots.save([curves, graph], tmp_path / "c.png")


def test_importance_bands_stop_at_the_whole_in_both_renderers() -> None:
    """A search's fANOVA of one parameter gave clf__C 0.968 ± 0.160: its band was drawn to 1.128, past the whole
    that a share is part of (the band under a bar already stopped at 0)."""
    imp = Importances("fanova", (Effect(("C",), 0.968, 0.16), Effect(("tol",), 0.03, 0.05)), (), 50)
    chart = plots.importance_bars(imp)
    html = to_plotly(chart)
    ends = [x + up for x, up in zip(html.data[0].x, html.data[0].error_x.array, strict=True)]
    assert ends == pytest.approx([0.08, 1.0])  # tol's band whole (0.03 + 0.05), C's to 1
    assert list(html.data[0].error_x.arrayminus) == pytest.approx([0.03, 0.16])
    ax = to_matplotlib(chart)
    bands = next(c for c in ax.containers if c.has_xerr)  # the ErrorbarContainer barh draws
    segments = bands.lines[2][0].get_segments()
    assert [round(float(seg[1][0]), 6) for seg in segments] == pytest.approx([0.08, 1.0])
    plt.close(ax.figure)


def test_a_trial_whose_reports_are_all_nan_is_not_said_to_have_reported_nothing(tmp_path: Path) -> None:
    """Every report of a study stored as NaN or infinite (by another program): the learning curves, the overfitting
    graph and the dashboard's curve of a trial said "no trial reported intermediate values (call trial.report(...)
    in the objective)" and "no validation values (no reports)", sending the user to add what was there. Now each
    says that its reports are all NaN or infinite, with the count in the title."""
    import sqlite3

    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app

    url = f"sqlite:///{tmp_path / 'n.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0)

    def objective(t: ts.Trial) -> float:
        t.report(t.params["x"], 0)
        return t.params["x"]

    study.optimize(objective, n_trials=2)
    with sqlite3.connect(tmp_path / "n.db") as db:
        db.execute("UPDATE ts_trials SET intermediate = ?", ('{"0": NaN, "1": Infinity}',))
    study = ts.load_study("s", url)
    curves = plots.records_of(study, "curves")[0]
    graph = plots.records_of(study, "overfitting", trial=1)[0]
    with TestClient(create_app(ts.storage.make_storage(url))) as c:
        (curve,) = c.get("/api/studies/s/trials/1/curve").json()["plots"]
    for title, message in ((curves.title, curves.message), (graph.title, graph.message),
                           (curve["title"], curve["message"])):
        assert "NaN or infinite reports of" in title and "reported no other" in title, title
        assert "NaN or infinite, which a curve cannot place" in message, message
        assert "call trial.report" not in message and "no reports" not in message, message


def test_to_plotly_takes_a_numpy_integer_as_the_width_a_python_one_is() -> None:
    """``to_plotly(record, width=...)`` refused ``np.int64(400)`` (a width read from an array or a DataFrame) as
    "not a whole number of px": it is one, and plotly's own ``layout.width`` takes it. The figure is the same as
    with ``width=400``; a NumPy float or bool is still refused with the message that says what to pass."""
    np = pytest.importorskip("numpy")
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0,
                     name=" ".join(["validation_loss_of_the_transformer"] * 3))
    study.optimize(lambda t: t.params["x"], n_trials=4)
    for kind in ("history", "parallel"):
        record = plots.records_of(study, kind)[0]
        assert to_plotly(record, width=np.int64(400)) == to_plotly(record, width=400), kind
        assert to_plotly(record, width=np.int32(400)).layout.width == 400
    for bad in (np.float64(400.0), np.bool_(True), np.int64(99)):
        with pytest.raises(ValueError, match="width must be a whole number of px, at least 100"):
            to_plotly(record, width=bad)
