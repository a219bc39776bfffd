"""Plots read the study's records: learning curves by state, rungs, the best-so-far history."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith import plots  # noqa: E402
from tunesmith.cli import main  # noqa: E402
from tunesmith.pruners import ASHA  # noqa: E402
from tunesmith.trial import TrialState  # noqa: E402


def objective(trial: ts.Trial) -> float:
    x = trial.params["x"]
    loss = 1.0
    for step in range(1, 10):
        loss = (x - 0.3) ** 2 + 1.0 / step
        trial.report(loss, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return loss


@pytest.fixture()
def study(tmp_path: Path) -> ts.Study:
    s = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 's.db'}", name="curves",
                 sampler="random", seed=0, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", max_resource=9))
    s.optimize(objective, n_trials=12)
    return s


def _trial_lines(ax) -> dict[int, object]:
    return {int(line.get_gid().split("-")[1]): line for line in ax.get_lines()
            if (line.get_gid() or "").startswith("trial-")}


def test_learning_curves_draw_every_reported_step_by_state(study: ts.Study) -> None:
    ax = plots.learning_curves(study)
    lines = _trial_lines(ax)
    assert set(lines) == {t.number for t in study.trials}
    states = {t.state for t in study.trials}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for t in study.trials:
        line = lines[t.number]
        assert list(line.get_xdata()) == sorted(t.intermediate)
        assert list(line.get_ydata()) == [t.intermediate[s] for s in sorted(t.intermediate)]
        assert line.get_color() == plots.STATE_COLORS[t.state]
    assert lines[study.best_trial.number].get_linewidth() > lines[study.trials_in("pruned")[0].number].get_linewidth()
    rungs = sorted({line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"})
    assert rungs == [1, 3]  # ASHA(min_resource=1, reduction_factor=3, curve="best", max_resource=9, eta=3): rungs at steps 1 and 3
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert f"pruned ({len(study.trials_in('pruned'))})" in legend
    plt.close(ax.figure)


def test_the_last_step_of_a_learnt_budget_is_not_drawn_as_a_rung() -> None:
    # ASHA without max_resource learns the full run (8 steps) from the trials: its rungs are
    # 2 and 4, and a trial that reaches step 8 trained in full. Before: a rung was drawn at 8
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, pruner="asha")

    def eight_steps(trial: ts.Trial) -> float:
        for step in range(1, 9):
            trial.report(trial.params["x"] + 1.0 / step, step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return trial.params["x"] + 1.0 / 8

    study.optimize(eight_steps, n_trials=6)
    ax = plots.learning_curves(study)
    rungs = sorted({line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"})
    assert rungs == [2, 4]
    plt.close(ax.figure)


def test_history_steps_down_with_the_best_complete_value(study: ts.Study) -> None:
    ax = plots.history(study)
    best = next(line for line in ax.get_lines() if line.get_gid() == "best-so-far")
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert best.get_ydata()[-1] == min(t.value for t in complete) == study.best_value
    ys = list(best.get_ydata())
    assert ys == sorted(ys, reverse=True)  # never rises (minimize)
    plt.close(ax.figure)


def test_plot_command_writes_an_image_and_names_a_missing_study(
    study: ts.Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for kind in ("curves", "history"):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", "curves", "--storage", url, "--kind", kind, "-o", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", "nope", "--storage", url, "-o", str(tmp_path / "x.png")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["curves", "history", "parallel", "slice", "importance", "process"])
def test_names_and_choices_with_dollar_signs_are_drawn_as_written(tmp_path: Path, kind: str) -> None:
    """Matplotlib reads text between two $ as math: a study, parameter or choice name such as
    '$\\undefined{x}$' (anyone who writes the database chooses them) ended the plot with a parse error."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    odd = r"$\undefinedcmd{x}^{$"
    study = ts.Study({"p" + odd: ts.Float(0, 1), "c": ts.Categorical(["a" + odd, "b"])}, sampler="random", seed=0,
                     storage=url, name="s" + odd)

    def objective(trial: ts.Trial) -> float:
        for step in range(3):
            trial.report(float(step), step)
        return float(trial.params["p" + odd])

    study.optimize(objective, n_trials=12)
    out = tmp_path / f"{kind}.png"
    assert main(["plot", "s" + odd, "--storage", url, "--kind", kind, "-o", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize("name", ["W" * 200, "a study named at length " * 8 + "$x$", "研究 " * 60 + "x"])
def test_a_long_title_fits_the_figure_on_lines_as_wide_as_the_axes(name: str) -> None:
    """Titles were cut every 60 characters whatever the figure: a study name of 200 capital Ws drew
    lines of 590 points on a 504-point figure, cut at both edges; a panel 11 inches wide had lines of
    half its width. Lines are now measured in the title's font against the axes' width."""
    from tunesmith.plots.mpl_render import new_axes, to_matplotlib

    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0, name=name)
    study.optimize(lambda t: t.params["x"], n_trials=5)
    small = new_axes(4, size=(4.0, 3.0))[3]  # a panel of a grid the user made
    for kind, ax in (("history", None), ("parallel", None), ("history", small)):
        record = plots.records_of(study, kind)[0]
        ax = to_matplotlib(record, ax)
        fig = ax.figure
        fig.tight_layout()
        fig.canvas.draw()
        box = ax.title.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width, (kind, box, fig.bbox.width)
        lines = ax.get_title().replace("\\$", "$").split("\n")
        assert " ".join(lines).replace(" ", "") == record.title.replace(" ", "")  # every letter drawn
        if kind == "parallel":  # 11 inches: lines longer than a fixed count of letters allowed
            assert box.width > fig.bbox.width * 0.6, box
        plt.close(fig)


def test_a_study_whose_name_starts_with_an_underscore_keeps_its_legend_entry() -> None:
    """Matplotlib leaves labels starting with "_" out of a legend: a study named _base vanished from
    the histories drawn into one axes."""
    axes = None
    for name in ("_base", "tuned"):
        study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, name=name)
        study.optimize(lambda t: t.params["x"], n_trials=4)
        axes = plots.history(study, axes)
    labels = [text.lstrip("\u200b") for text in axes.get_legend_handles_labels()[1]]
    assert any(label.startswith("_base") for label in labels), labels
    plt.close(axes.figure)


@pytest.mark.parametrize("kind", ["history", "contour", "parallel"])
def test_values_near_the_largest_float_are_refused_by_matplotlib_with_the_fix(tmp_path: Path, kind: str) -> None:
    """Values near 1.8e308 (a constant 1e308, or +-1.5e308) overflowed matplotlib's axis arithmetic:
    'arange: cannot compute length' from its ticker. Now the image says why and names HTML, which draws."""
    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0)
    study.optimize(lambda t: 1.7e308 * (2 * t.params["x"] - 1), n_trials=8)
    records = plots.records_of(study, kind)
    figures = len(plt.get_fignums())
    with pytest.raises(ValueError, match=r"matplotlib cannot draw values as large as 1\.\d+e\+308.*\.html"):
        plots.save(records, tmp_path / "p.png")
    assert len(plt.get_fignums()) == figures  # the failed figure is closed
    assert plots.save(records, tmp_path / "p.html").stat().st_size > 0


def test_a_parameter_range_near_the_largest_float_is_refused_by_matplotlib_with_the_fix(tmp_path: Path) -> None:
    """A slice over Float(-8e307, 8e307), or over a log axis of 537 decades, ended in matplotlib's
    ticker: 'OverflowError: cannot convert float infinity to integer'."""
    study = ts.Study({"x": ts.Float(-8e307, 8e307)}, sampler="random", seed=0)
    study.optimize(lambda t: 1.0 if t.params["x"] > 0 else 2.0, n_trials=6)
    with pytest.raises(ValueError, match=r"matplotlib cannot draw values as large as \d\.\d+e\+307.*\.html"):
        plots.save(plots.records_of(study, "slice"), tmp_path / "p.png")
    # a log range of 1e-300..1e300 drawn at 1e-270 and 1e267: its log ticks overflow the same way
    wide = ts.Study({"lr": ts.Float(1e-300, 1e300, log=True)}, sampler="random", seed=0)
    wide.add_trial({"lr": 1e-270}, 1.0)
    wide.add_trial({"lr": 1e267}, 2.0)
    with pytest.raises(ValueError, match=r"matplotlib cannot draw a log axis over 537 decades \(1e-270 to 1e\+267\)"):
        plots.save(plots.records_of(wide, "slice"), tmp_path / "p.png")
@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to make a file of another user")
def test_an_output_over_another_user_s_file_in_a_sticky_folder_is_refused_in_a_sentence() -> None:
    """The system's PermissionError named the temporary file beside the output ('.r.html.ab12.tmp')."""
    import shutil
    import tempfile

    from conftest import said_as_nobody

    from tunesmith.plots import replace_file

    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # a folder every user can reach, sticky as /tmp
    try:
        os.chmod(folder, 0o1777)
        theirs = folder / "r.html"
        theirs.write_text("theirs")
        os.chown(theirs, 12345, 12345)
        os.chmod(theirs, 0o666)
        said = said_as_nobody(lambda: replace_file(theirs, lambda f: f.write(b"mine")))  # may not replace it (root may)
        assert said.startswith(f"cannot replace {str(theirs)!r}: it belongs to another user (uid 12345)"), said
        assert theirs.read_text() == "theirs" and [p.name for p in folder.iterdir()] == ["r.html"]
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root: the folder's owner, and the user (nobody) who writes in it")
@pytest.mark.parametrize("swapped_for", ["link", "hard-link"])
def test_an_output_swapped_while_it_is_written_in_place_writes_no_other_file(swapped_for: str) -> None:
    """In a folder the user may not add files to (another user's, 0755), an output of the user's there is written in
    place, since no file can be made beside it. Its folder's owner replaced it, after the look and before the write,
    with a link (or another name) of a file of the user's: ``open(path, "wb")`` emptied that file and wrote the
    report into it. Now the file opened is written only when it is still the one looked at."""
    import shutil
    import sys
    import tempfile
    import threading

    from conftest import said_as_nobody

    from tunesmith.plots import replace_file

    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        theirs, home = base / "team", base / "home"  # the folder's owner: root; the user: nobody
        theirs.mkdir(mode=0o755)
        home.mkdir(mode=0o700)
        os.chown(home, 65534, 65534)
        precious, out = home / "notes.txt", theirs / "report.html"
        for f in (precious, out):
            f.write_text("the user's own")
            os.chown(f, 65534, 65534)
        looked, swapped = os.pipe(), os.pipe()

        def owner() -> None:  # swaps the output once the writer has looked at it (it then tried a file beside it)
            os.read(looked[0], 1)
            out.unlink()
            os.symlink(precious, out) if swapped_for == "link" else os.link(precious, out)
            os.write(swapped[1], b"!")

        def write() -> None:
            sys.addaudithook(lambda event, args: (os.write(looked[1], b"!"), os.read(swapped[0], 1))
                             if event == "open" and str(args[0]).startswith(str(theirs / ".report.html.")) else None)
            replace_file(out, lambda f: f.write(b"<html>the report</html>"))

        thread = threading.Thread(target=owner, daemon=True)
        thread.start()
        said = said_as_nobody(write)
        thread.join(10)
        assert precious.read_text() == "the user's own", said  # before: '<html>the report</html>'
        assert str(out) in said, said
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "mkfifo"), reason="a FIFO, and a child to wait on")
def test_an_output_swapped_for_a_fifo_while_it_is_written_in_place_does_not_hang() -> None:
    """In a folder the user may not add files to, an output of theirs is written in place; whoever may change the
    folder put a FIFO there after the look, and the write waited forever for a reader. Here the folder is the user's
    own, 0555 (root writes anywhere, so as root the user is nobody), swapped when the writer tries its new file."""
    import shutil
    import sys
    import tempfile

    from tunesmith.plots import replace_file

    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        folder = base / "shut"
        folder.mkdir()
        out = folder / "report.html"
        out.write_text("the user's own")
        if os.geteuid() == 0:
            os.chown(folder, 65534, 65534)
            os.chown(out, 65534, 65534)
        os.chmod(folder, 0o555)
        said_r, said_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the user, who also swaps the output (as the folder's owner would)
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)

                def swap(event: str, args: tuple[Any, ...]) -> None:
                    if event == "open" and str(args[0]).startswith(str(folder / ".report.html.")):
                        os.chmod(folder, 0o755)
                        out.unlink()
                        os.mkfifo(out)
                        os.chmod(folder, 0o555)

                sys.addaudithook(swap)
                try:
                    replace_file(out, lambda f: f.write(b"<html>the report</html>"))
                    said = "ok"
                except OSError as exc:
                    said = str(exc)
                os.write(said_w, said.encode())
            finally:
                os._exit(0)
        os.close(said_w)
        for _ in range(600):  # 60 s: the fixed write returns in milliseconds; before, it never returned
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        with os.fdopen(said_r) as answer:
            said = answer.read()
        assert "it was swapped for a FIFO while it was written" in said and str(out) in said, said
    finally:
        os.chmod(base / "shut", 0o755)
        shutil.rmtree(base)


def test_the_dashboard_s_figure_json_is_plotly_s_json_of_the_figure(study: ts.Study) -> None:
    """figure_json adds the template to the JSON instead of letting plotly copy it into the figure, and
    the process diagram sets its boxes at once: the browser must get the same figure either way."""
    import json

    from plotly.io import to_json

    from tunesmith.plots.plotly_render import figure_json, to_plotly

    empty = plots.records_of(ts.Study({"x": ts.Float(0, 1)}, name="empty"), "history")  # a message, nothing drawn
    records = [r for kind in plots.KINDS for r in plots.records_of(study, kind)] + empty
    assert {r.kind for r in records} >= {"history", "process", "curves", "slice"} and empty[0].empty
    for r in records:
        fig = figure_json(r)
        assert fig == json.loads(to_json(to_plotly(r), validate=False)), r.kind
        assert fig["layout"]["template"]["layout"]["plot_bgcolor"] == "white"


def test_the_process_diagram_draws_a_box_per_node_and_an_arrow_and_a_label_per_edge() -> None:
    """The diagram's boxes and arrows are set in one call, not added one by one: each node is still
    its box with its label, each edge its arrow from box edge to box edge and its label, in both
    directions between two nodes; a diagram with nothing to draw carries its message alone."""
    from tunesmith.plots.plotly_render import figure_json

    nodes = (plots.Node("a", "ask <x>", "one\ntwo", 0.0, 0.0), plots.Node("b", "tell", "", 2.0, 0.0),
             plots.Node("c", "prune", "asha", 0.0, -1.0))
    edges = (("a", "b", "params"), ("b", "a", "value"), ("a", "c", "report"))
    d = plots.Diagram("process", "s: process", nodes=nodes, edges=edges)
    layout = figure_json(d)["layout"]
    w, h = d.box
    assert [(s["type"], s["x0"], s["x1"], s["y0"], s["y1"]) for s in layout["shapes"]] == [
        ("rect", n.x - w, n.x + w, n.y - h, n.y + h) for n in nodes]
    notes = layout["annotations"]
    assert [a["text"] for a in notes if not a["showarrow"]] == [
        "<b>ask &lt;x&gt;</b><br>one<br>two", "<b>tell</b><br>", "<b>prune</b><br>asha", "params", "value", "report"]
    arrows = [(a["ax"], a["ay"], a["x"], a["y"]) for a in notes if a["showarrow"]]
    assert arrows == [d.arrow(a, b) for a, b, _ in edges] and arrows[0] != arrows[1][2:] + arrows[1][:2]
    empty = figure_json(plots.Diagram("process", "s: process", message="no trials yet"))["layout"]
    assert not empty.get("shapes") and [a["text"] for a in empty["annotations"]] == ["no trials yet"]


def _tick_boxes(ax: Any) -> list[Any]:
    """The drawn extents of ``ax``'s x tick labels, after the figure's layout (as saved)."""
    fig = ax.figure
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.filterwarnings("ignore:Glyph:UserWarning")  # matplotlib's font here has no Chinese: boxes, measured
def test_long_choices_of_a_slice_and_long_names_of_parallel_coordinates_do_not_run_into_each_other() -> None:
    """A slice of six choices of 152 characters drew each on one line across its neighbours (the image only
    widened), and parallel coordinates rotated long names, in wide characters too, into each other. Now each
    label is cut into lines that fit its slot (first line, "…", its end where more than 3): measured apart."""
    from tunesmith.plots.mpl_render import TICK_LINES, to_matplotlib

    choices = [f"preprocessing pipeline number {i} with standard scaling then a principal component analysis "
               f"keeping ninety five percent of the variance and a final step {i}" for i in range(6)]
    names = ["学习率调度器的预热步数与衰减因子", "正则化强度系数以及权重衰减的比例", "批量大小与梯度累积步数的乘积值",
             *(f"{c}_" + "very_long_parameter_name" * 2 for c in "xyz")]
    space = ts.Space({"pipe": ts.Categorical(choices), **{n: ts.Float(0, 1) for n in names}})
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: t.params[names[0]] + choices.index(t.params["pipe"]), n_trials=20)
    (chart,) = [c for c in plots.slices(study) if c.x_categories]
    assert list(chart.x_categories) == choices  # the record keeps each choice whole: the renderer fits it
    parallel = plots.parallel(study)
    assert set(names) <= {a.name for a in parallel.axes}
    for record in (chart, parallel):
        ax = to_matplotlib(record)
        try:
            boxes = sorted(_tick_boxes(ax), key=lambda b: b.x0)
            labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
            assert len(boxes) >= 4 and all(len(label.split("\n")) <= TICK_LINES for label in labels), labels
            overlaps = [(a.x1, b.x0) for a, b in zip(boxes, boxes[1:], strict=False) if a.x1 > b.x0]
            assert overlaps == [], (record.kind, labels)
            assert all(ax.figure.bbox.x0 <= b.x0 and b.x1 <= ax.figure.bbox.x1 for b in boxes), labels
            if record is chart:  # each choice's end, which tells them apart, is drawn
                assert [label.split("\n")[-1][-6:] for label in labels] == [f"step {i}" for i in range(6)]
        finally:
            plt.close(ax.figure)


def test_many_choices_of_a_slice_are_drawn_upright_whole_and_apart() -> None:
    """Twenty choices of 12 characters, or 60 numbers, leave a slot of two or three characters between ticks:
    cut into lines that narrow, every label read "op…w" (or "1…0") and none could be told apart. Now labels too
    wide for a slot that narrow are drawn upright and whole, on every k-th tick where a line is taller than
    the slot, apart; a few short choices stay as they are."""
    from tunesmith.plots.mpl_render import to_matplotlib

    for choices, every in (([f"opt_{i}_adamw" for i in range(20)], 1), (list(range(1000, 1060)), 3),
                           (["relu", "tanh", "gelu"], 1)):
        study = ts.Study(ts.Space({"c": ts.Categorical(choices), "x": ts.Float(0, 1)}), sampler="random", seed=0)
        study.optimize(lambda t: t.params["x"], n_trials=40)
        (chart,) = [c for c in plots.slices(study) if c.x_categories]
        ax = to_matplotlib(chart)
        try:
            boxes = sorted(_tick_boxes(ax), key=lambda b: b.x0)
            labels = [t.get_text() for t in ax.get_xticklabels()]
            shown = [int(x) for x in ax.get_xticks()]
            k = shown[1] - shown[0]  # every k-th: at most every 3rd (a line is about 2.4 slots of 60 choices)
            assert shown == list(range(0, len(choices), k)) and k <= every, shown
            assert labels == [str(choices[i]) for i in shown], labels
            # each choice keeps its mark
            assert sorted({*shown, *(int(x) for x in ax.get_xticks(minor=True))}) == list(range(len(choices)))
            assert [(a.x1, b.x0) for a, b in zip(boxes, boxes[1:], strict=False) if a.x1 > b.x0] == [], labels
            assert {t.get_rotation() for t in ax.get_xticklabels()} == {0.0 if len(choices) == 3 else 90.0}
        finally:
            plt.close(ax.figure)


def test_an_image_saved_each_trial_leaves_a_library_s_warning_shown_once(tmp_path: Path) -> None:
    # Python shows a warning once per place until the warning filters change: each image saved changed them
    # (to record matplotlib's warnings), so with a callback saving the history after each trial, a warning
    # the objective's library gives once was printed again every trial
    def warns(trial: ts.Trial) -> float:
        warnings.warn("the library says this once", UserWarning, stacklevel=1)
        return float(trial.params["x"])

    def save_history(study: ts.Study, record: Any) -> None:
        plots.save(plots.records_of(study, "history"), tmp_path / "history.png")

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("default")
        ts.Study({"x": ts.Float(0.0, 1.0)}, sampler="random", seed=0).optimize(
            warns, n_trials=4, callbacks=[save_history], show_progress=False)
    assert [str(w.message) for w in said].count("the library says this once") == 1, [str(w.message) for w in said]
    assert (tmp_path / "history.png").stat().st_size > 0


@pytest.mark.parametrize("drawn", [("c0", "c1"), ("c0", "c49999")])
def test_an_image_slice_of_a_choice_among_50000_measures_and_names_as_many_labels_as_the_axis_has_room_for(
    monkeypatch: Any, drawn: tuple[str, str]
) -> None:
    """A space of 50,000 choices (a writer of the database can store one) whose trials drew two: the image's
    slice measured a label for each choice with the renderer and set 50,002 tick labels, for minutes (its slot
    was measured on the drawn choices' view, before every choice's tick widened it). Now every choice is on the
    axis and only every k-th is named: the measures and labels are bounded by the axis, not by the choices."""
    from matplotlib.backends.backend_agg import RendererAgg

    from tunesmith.plots.mpl_render import to_matplotlib

    choices = [f"c{i}" for i in range(50_000)]
    study = ts.Study(ts.Space({"k": ts.Categorical(choices)}), sampler="random", seed=0)
    for i in range(6):
        study.add_trial({"k": drawn[i % 2]}, float(i))
    (chart,) = plots.slices(study)
    measured = 0
    real = RendererAgg.get_text_width_height_descent

    def counted(self: Any, *args: Any, **kw: Any) -> Any:
        nonlocal measured
        measured += 1
        return real(self, *args, **kw)

    monkeypatch.setattr(RendererAgg, "get_text_width_height_descent", counted)
    ax = to_matplotlib(chart)
    try:
        assert measured < 500, measured  # 50,000 and more before
        ticks = [int(x) for x in ax.get_xticks()]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        shown = chart.x_categories  # the data layer's: those drawn, the last and 1 in k of the rest
        assert set(drawn) <= set(shown) and len(shown) <= 202 and "of 50,000 choices shown" in chart.title
        assert 2 <= len(ticks) <= 100 and ticks == list(range(0, len(shown), ticks[1])), ticks[:5]
        assert labels == [shown[i] for i in ticks] and ax.get_xlim()[1] >= len(shown) - 1
        assert len(ax.get_xticks(minor=True)) == 0  # a mark for each choice would draw a black bar
    finally:
        plt.close(ax.figure)


def test_an_html_slice_of_50000_ascii_choices_counts_their_columns_at_once(monkeypatch: Any) -> None:
    """An HTML slice asks whether any choice is longer than a tick's line: each of 50,000 choices was
    measured a character at a time in Python (seconds, most of the figure's time). Printable ASCII is now counted at
    once (one column a character); other text as before."""
    import tunesmith.importance as importance
    from tunesmith.plots.plotly_render import to_plotly

    assert importance.columns("c49999 x~") == 9 and importance.columns("研究 e\u0301") == 6
    one_at_a_time = 0
    real = importance._columns

    def counted(c: str) -> int:
        nonlocal one_at_a_time
        one_at_a_time += 1
        return real(c)

    monkeypatch.setattr(importance, "_columns", counted)
    choices = [f"c{i}" for i in range(50_000)]
    study = ts.Study(ts.Space({"k": ts.Categorical(choices)}), sampler="random", seed=0)
    for i in range(4):
        study.add_trial({"k": choices[i]}, float(i))
    fig = to_plotly(plots.slices(study)[0])
    shown = list(fig.layout.xaxis.categoryarray)  # the data layer's bounded choices (200 and those drawn)
    assert choices[:4] == [c for c in shown if c in choices[:4]] and one_at_a_time < 1_000, one_at_a_time
