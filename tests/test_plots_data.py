"""The plots' data layer (records of what is drawn), both renderers, and the plot/compare commands."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

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
from tunesmith.plots.mpl_render import to_matplotlib  # noqa: E402
from tunesmith.plots.plotly_render import to_plotly  # noqa: E402
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


def test_comparison_draws_median_and_band_per_group_in_distinct_colours() -> None:
    chart = plots.comparison({"a": [[3, 2, 5, 1], [4, 4, 1, 0]], "b": [[None, 7, 6, 8]]})
    a, band = chart.find("median-a"), chart.find("band-a")
    assert list(a.y) == [3.5, 3.0, 1.5, 0.5]  # medians of best-so-far [3,2,2,1] and [4,4,1,0]
    assert list(band.low) == pytest.approx([3.25, 2.5, 1.25, 0.25]) and list(band.high) == pytest.approx([3.75, 3.5, 1.75, 0.75])
    b = chart.find("median-b")
    assert list(b.x) == [2, 3, 4] and list(b.y) == [7, 6, 6]
    assert a.color != b.color and a.label == "a (median of 2 runs)" and b.label == "b (1 run)"
    up = plots.comparison({"a": [[3, 2, 5, 1]]}, direction="maximize")
    assert list(up.find("median-a").y) == [3, 3, 5, 5]
    # several studies: each its own colour and legend entry
    s1 = ts.Study({"x": ts.Float(0, 1)}, name="one", sampler="random", seed=0)
    s2 = ts.Study({"x": ts.Float(0, 1)}, name="two", sampler="random", seed=1)
    for s in (s1, s2):
        s.optimize(lambda t: t.params["x"], n_trials=5)
    two = plots.comparison([s1, s2])
    assert {s.label for s in two.series} == {"one (1 run)", "two (1 run)"}
    assert len({s.color for s in two.series}) == 2


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
    assert dims[2].label == "gamma (log scale)" and dims[1].label == "log10 C"  # ticks name values, not log10


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


def test_contour_of_an_unknown_or_categorical_parameter_says_which() -> None:
    s = snap(MIXED * 3)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['gama'\]"):
        plots.contour(s, "C", "gama")
    with pytest.raises(ValueError, match=r"numeric parameters; \['kernel'\] categorical"):
        plots.contour(s, "kernel", "C")


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


def test_importance_bars_show_each_effect_with_its_band() -> None:
    imp = Importances("fanova", (Effect(("a",), 0.6, 0.05), Effect(("b",), 0.3, 0.02)),
                      (Effect(("a", "b"), 0.1, 0.01),), 50)
    bars = plots.importance_bars(imp).find("bars")
    assert list(bars.y) == ["a × b", "b", "a"] and list(bars.x) == [0.1, 0.3, 0.6]
    assert list(bars.error) == [0.01, 0.02, 0.05]
    few = plots.importance_bars(snap([("complete", 1.0)]))
    assert few.empty and "at least 2 complete trials" in (few.message or "")


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


def test_plot_with_nothing_to_draw_says_so_and_exits_nonzero(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", "cli", "--storage", stored, "--kind", "curves", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nothing to draw" in err and "reported intermediate values" in err and not out.exists()
    assert main(["plot", "cli", "--storage", stored, "--kind", "overfitting", "--trial", "99", "-o", str(out)]) == 2
    assert "has no trial 99" in capsys.readouterr().err
    # an option the kind does not use is named, not ignored
    assert main(["plot", "cli", "--storage", stored, "--kind", "history", "--trial", "3", "-o", str(out)]) == 2
    assert "--trial applies to --kind overfitting, not history" in capsys.readouterr().err
    assert main(["plot", "cli", "--storage", stored, "--kind", "importance", "--params", "C", "-o", str(out)]) == 2
    assert "--params applies to --kind parallel, slice, contour, not importance" in capsys.readouterr().err
    assert main(["plot", "cli", "--storage", stored, "--kind", "slice", "--log-y", "-o", str(out)]) == 2
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
    assert [len(s.trials) for s in runs["random"]] == [4, 4]
    assert runs["random"][0].trials[0].params != runs["random"][1].trials[0].params  # seeds differ


def test_compare_table_gives_the_median_of_an_even_number_of_runs() -> None:
    from tunesmith.cli.insight import _compare_table

    runs = plots.run_samplers(lambda t: t.params["x"], {"x": ts.Float(0, 1)}, samplers=["random"], budget=3,
                              seeds=[0, 1])
    bests = sorted(s.best_value for s in runs["random"])
    sampler, median, best, worst, n = (list(c._cells) for c in _compare_table(runs, "minimize").columns)
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

    centre = ts.Float(0.01, 100, log=True).from_unit(0.5)
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
