"""The HTML report: self-contained, every plot rendered in a real headless browser, no request
leaves the machine; a screenshot goes to test-artifacts/ (kept by CI)."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from browser import (
    ARTIFACTS,
    STILL,
    Pages,
    assert_parallel_titles_apart,
    only,
    read_parallel_titles,
    settled,
)

pytest.importorskip("plotly")
pytest.importorskip("sklearn")

import tunesmith as ts  # noqa: E402
from tunesmith.cli import main  # noqa: E402
from tunesmith.pruners import ASHA  # noqa: E402
from tunesmith.report import build_report, write_report  # noqa: E402

SPACE = {
    "kernel": ts.Categorical(["linear", "rbf"]),
    "C": ts.Float(1e-3, 1e3, log=True),
    "gamma": ts.Float(1e-4, 1.0, log=True, when={"kernel": ["rbf"]}),
    "x": ts.Float(0, 1),
}


def objective(trial: ts.Trial) -> float:
    p = trial.params
    if p["x"] > 0.93:
        raise RuntimeError("diverged")
    base = abs(math.log10(p["C"])) + (math.log10(p.get("gamma", 1e-2)) + 2) ** 2 + 3 * (p["x"] - 0.3) ** 2
    for step in range(1, 10):
        trial.report(base + 1.0 / step, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    trial.set_attr("test_value", 1.1 * base)
    return base + 1 / 9


@pytest.fixture()
def study(tmp_path: Path) -> ts.Study:
    s = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 's.db'}", name="report-demo", sampler="random", seed=0,
                 pruner=ASHA(min_resource=1, reduction_factor=4, max_resource=9))
    s.optimize(objective, n_trials=120, catch=(RuntimeError,))  # over 10 complete: the importance's minimum
    return s


#: what names another machine in HTML: a URL whose scheme fetches, or a scheme-relative one (//host) given to
#: an attribute (src=, href=, srcset=, ...) or to CSS (url(), @import); "// a comment" in a script is neither
ELSEWHERE = re.compile(r"""\b(?:https?|wss?|ftp)://[^\s"'<>)]*|(?<=[=(\s"'])//[\w.-]+\.[\w.-]*[^\s"'<>)]*""", re.I)


def elsewhere(page: str) -> list[str]:
    """The URLs in the report's own HTML: the plotly.js bundle embedded in it, verbatim, is left out. That
    library's code holds URLs as text it never fetches for the report's plots (plotly.js 3.7's map icons,
    `v.src="https://unpkg.com/maki@2.1.0/icons/"`); that no request leaves the machine at all is what the
    browser test checks (test_the_report_renders_offline_in_a_headless_browser)."""
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert page.count(bundle) == 1, "plotly.js is not embedded in the report, once and as plotly ships it"
    return ELSEWHERE.findall(page.replace(bundle, ""))


def test_the_report_has_the_overfit_column_that_show_has() -> None:
    # trials of ts.train.objective: `tunesmith show` printed where overfitting began, the report did not
    study = ts.Study({"x": ts.Float(0, 1)}, name="trained")
    study.add_trial({"x": 0.5}, 0.3, attrs={"overfit_at": 4, "curves": {"gap": [0.1, 0.25]}})
    study.add_trial({"x": 0.7}, 0.4, attrs={"overfit_at": None, "curves": {"gap": [0.05]}})
    page = build_report(study)
    assert "<th>overfit at</th>" in page
    assert "<td>step 4 (gap 0.25)</td>" in page and "<td>- (gap 0.05)</td>" in page


def test_show_and_the_report_say_where_a_trained_trial_diverged(tmp_path: Path, capsys: Any) -> None:
    """ts.train.objective completes a run whose metric turned NaN with its best value so far and keeps the step
    as attrs["diverged_at"]; show and the report ranked it with the others, without saying so."""
    url = f"sqlite:///{tmp_path / 'nan.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="trained")
    study.add_trial({"x": 0.5}, 0.3, attrs={"overfit_at": None, "diverged_at": 7})
    study.add_trial({"x": 0.7}, 0.4, attrs={"overfit_at": None, "diverged_at": True})  # not a step: no cell
    page = build_report(study)
    assert "<th>diverged at</th>" in page and page.count("<td>step 7</td>") == 1
    assert main(["show", "trained", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "diverged at" in out and "step 7" in out and "step True" not in out
    study.add_trial({"x": 0.9}, 0.1)  # the only one shown by --top 1: no column
    assert main(["show", "trained", "--storage", url, "--top", "1"]) == 0
    assert "diverged" not in capsys.readouterr().out


def test_the_overfit_column_gives_the_last_finite_gap_of_curves_stored_with_nan_gaps() -> None:
    # a NaN validation made every later smoothed gap NaN in curves stored before that was fixed: "(gap nan)"
    study = ts.Study({"x": ts.Float(0, 1)}, name="trained")
    study.add_trial({"x": 0.5}, 0.3, attrs={"overfit_at": None, "curves": {"gap": [0.1, 0.2, math.nan, math.nan]}})
    study.add_trial({"x": 0.7}, 0.4, attrs={"overfit_at": None, "curves": {"gap": [math.nan]}})
    page = build_report(study)
    assert "<td>- (gap 0.2)</td>" in page and "<td>-</td>" in page and "gap nan" not in page


def test_the_report_says_why_the_latest_trials_failed_as_show_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report counted "2 failed" and said no more: a reader of the page could not tell an
    interrupted worker from an objective's error, which `tunesmith show` lists."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="f", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    for i in range(6):
        study.add_trial({"x": 0.5}, state="failed", error=f"<b>boom {i}</b>\ntraceback line")
    page = build_report(study)
    assert "<h2>Failed trials (the last 5 of 6; tunesmith export lists all)</h2>" in page
    assert "&lt;b&gt;boom 5&lt;/b&gt;" in page and "boom 0" not in page and "traceback line" not in page
    assert main(["show", "f", "--storage", url]) == 0
    shown = capsys.readouterr().out
    assert "failed trials (the last 5 of 6; tunesmith export lists all):" in shown
    assert "#7: <b>boom 5</b>" in shown and "<td class=l>7</td><td class=l>-</td>" in page  # added: no worker
    assert "Failed trials" not in build_report(ts.Study({"x": ts.Float(0, 1)}))
    from tunesmith.plots import Snapshot
    from tunesmith.trial import Direction, FrozenTrial, TrialState

    failed = FrozenTrial(0, TrialState.FAILED, {"x": 0.5}, error="e", worker="w" * 100_000)  # as an imported file may say
    page = build_report(Snapshot("long", Direction.MINIMIZE, ts.Space({"x": ts.Float(0, 1)}), (failed,)))
    assert "(100,000 characters)" in page and "w" * 1000 not in page


def test_the_report_lists_the_latest_pruned_trials_below_the_best_with_the_step_each_stopped_at(
        tmp_path: Path) -> None:
    """The report counted pruned trials but listed none (show, the dashboard and export give each): a reader
    could not tell at which step the pruner stopped them or with what. Now the latest 20 below the best and the
    failed trials, each with its step, its last report, a value told apart from it, NaN's step, its parameters."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = ts.Study({"x": ts.Float(0, 1), "k": ts.Categorical(["a", "<b>"])}, storage=url, name="p",
                     sampler="random", seed=0)
    for i in range(3):
        study.add_trial({"x": i / 10, "k": "a"}, i / 10)
    for i in range(22):
        study.add_trial({"x": 0.5, "k": "<b>"}, state="pruned", intermediate={1: 0.9, 2: 1.0 + i})
    study.add_trial({"x": 0.7, "k": "a"}, state="pruned", intermediate={1: 0.4, 3: 0.6}, attrs={"diverged_at": 4})
    study.add_trial({"x": 0.8, "k": "a"}, 0.95, state="pruned", intermediate={1: 0.3})  # a value told with it
    study.add_trial({"x": 0.9, "k": "a"}, state="pruned")  # before its first report
    page = build_report(study)
    head = "<h2>Pruned trials (the last 20 of 25; tunesmith export lists all)</h2>"
    assert page.index("<h2>Best 3 of 3 complete trials</h2>") < page.index(head) < page.index("<h2>Plots</h2>")
    table = page[page.index(head):page.index("<h2>Plots</h2>")]
    assert ("<tr><th>#</th><th>stopped at</th><th>last report</th><th>value</th><th>diverged at</th><th>x</th>"
            "<th>k</th><th>seconds</th></tr>") in table
    assert table.count("<tr>") == 21 and "<tr><td>8</td>" in table and "<tr><td>7</td>" not in table  # #3-#7 left out
    assert "<td>24</td><td>step 2</td><td>22</td><td></td><td></td><td>0.5</td><td>&lt;b&gt;</td>" in table
    assert "<td>25</td><td>step 3</td><td>0.6</td><td></td><td>step 4</td><td>0.7</td><td>a</td>" in table
    assert "<td>26</td><td>step 1</td><td>0.3</td><td>0.95</td><td></td><td>0.8</td>" in table
    assert "<td>27</td><td>before its first report</td><td></td><td></td><td></td><td>0.9</td>" in table
    assert "Pruned trials" not in build_report(ts.Study({"x": ts.Float(0, 1)}))


def test_control_characters_of_a_failed_trial_are_written_as_escapes_in_the_report_and_the_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failed-trials table escaped markup but kept ESC and BEL raw: the page drew nothing for
    them, where `tunesmith show` prints them as escapes. Both pages now write them as show does."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="c", sampler="random", seed=0)
    study.add_trial({"x": 0.5}, state="failed", error="a\x1b[31mred\x07 <b>\x9bend\ttab")
    page = build_report(study)
    assert "a\\x1b[31mred\\x07 &lt;b&gt;\\x9bend\ttab" in page
    assert not any(c in page for c in "\x1b\x07\x9b")
    assert main(["show", "c", "--storage", url]) == 0
    assert "a\\x1b[31mred\\x07 <b>\\x9bend" in capsys.readouterr().out
    trial = TestClient(create_app(open_storage(url))).get("/studies/c/trials/0").text
    assert "a\\x1b[31mred\\x07 &lt;b&gt;\\x9bend\ttab" in trial and "\x1b" not in trial


def test_line_separators_and_direction_marks_are_written_as_escapes_in_the_report_and_the_dashboard(
        tmp_path: Path) -> None:
    """``tunesmith show`` prints U+2028 and U+202E as escapes; the pages wrote them raw: a space or nothing,
    and the rest of the error, or of a study's name, shown reversed."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="c", sampler="random", seed=0)
    study.add_trial({"x": 0.5}, state="failed", error="bad\u2028line \u202eesrever")
    page = build_report(study)
    trial = TestClient(create_app(open_storage(url))).get("/studies/c/trials/0").text
    for text in (page, trial):
        assert "bad\\u2028line \\u202eesrever" in text and not any(c in text for c in "\u2028\u202e")


def test_a_control_character_of_a_choice_is_written_as_an_escape_in_the_plots_too(tmp_path: Path) -> None:
    """The tables wrote the choice "a\\x1bb" as ``a\\x1bb``, the plots (a parallel axis's ticks, a slice's
    categories, their hover text) kept ESC raw and drew "ab": the report's and the dashboard's alike."""
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = ts.Study({"c": ts.Categorical(["a\x1bb", "d"]), "x": ts.Float(0, 1)}, storage=url, name="p",
                     sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=6)
    client = TestClient(create_app(open_storage(url)))
    for kind in ("parallel", "slice"):
        text = json.dumps(client.get(f"/api/studies/p/plots/{kind}").json(), ensure_ascii=False)
        assert "a\\\\x1bb" in text and "\x1b" not in text, kind
    page = build_report(study)
    assert '"a\\\\x1bb"' in page and '"a\\u001bb"' not in page


def test_the_parallel_plot_draws_a_choice_holding_markup_characters_as_written(tmp_path: Path, chromium: Pages) -> None:
    """The parallel plot's ticks drew the choice "d<&>" as "d&lt;&amp;&gt;" (plotly draws a tick's text as
    it is, its axis labels as HTML): both the report's and the dashboard's. Drawn as written, in chromium."""
    study = ts.Study({"c": ts.Categorical(["a\x1bb", "d<&>", "<b>bold</b>"]), "n<&>": ts.Float(0, 1)},
                     sampler="random", seed=0, name="markup")
    study.optimize(lambda t: t.params["n<&>"], n_trials=8)
    out = write_report(study, tmp_path / "markup.html", sections=["parallel"])

    def read(page: Any) -> tuple[list[str], list[str]]:
        page.wait_for_function("document.querySelectorAll('.parcoords .tick text').length > 0", timeout=30_000)
        return (page.eval_on_selector_all(".parcoords .tick text", "ts => ts.map(t => t.textContent)"),
                page.eval_on_selector_all(".parcoords .axis-title", "ts => ts.map(t => t.textContent)"))

    ticks, labels = _in_chromium(chromium, out, read)
    assert {"a\\x1bb", "d<&>", "<b>bold</b>"} <= set(ticks), ticks
    assert "n<&>" in labels, labels


def test_the_parallel_plot_writes_huge_and_tiny_numbers_without_markup(tmp_path: Path, chromium: Pages) -> None:
    """Beyond plotly's SI prefixes (1e15 and more, under 1e-15) a parallel axis' ticks and ends were
    written "1×10<sup>300</sup>": plotly formats them as HTML and draws parcoords text as it is. They
    are written 1e+300, with the digits that tell the ticks of a narrow axis apart (its 4 digits wrote
    "1.235e+17" at every tick of 1.23456e17 to 1.23457e17); an axis plotly writes with an SI prefix
    (100T) is left so."""
    space = {"big": ts.Float(-1e300, 1e300), "tiny": ts.Float(1e-20, 3e-20), "x": ts.Float(0, 1),
             "near": ts.Float(1.23456e17, 1.23457e17), "mid": ts.Float(1e14, 5e14)}
    study = ts.Study(space, sampler="random", seed=0, name="huge")
    study.optimize(lambda t: t.params["big"], n_trials=8)
    out = write_report(study, tmp_path / "huge.html", sections=["parallel"])

    def read(page: Any) -> list[list[str]]:
        page.wait_for_function("document.querySelectorAll('.parcoords .tick text').length > 0", timeout=30_000)
        return page.eval_on_selector_all(".parcoords .y-axis", "as => as.map(a => Array.from("
                                         "a.querySelectorAll('text'), t => t.textContent))")

    axes = {next(t for t in a if t in space or t.startswith("value")): a for a in _in_chromium(chromium, out, read)}
    texts = [t for a in axes.values() for t in a]
    assert not [t for t in texts if "<" in t], texts
    assert "5e+299" in texts and "2e−20" in texts and "0.2" in texts, texts  # x's ticks as plotly writes them
    assert all(len(t) <= 11 for t in axes["big"] + axes["tiny"] if t[0] in "−0123456789"), axes  # ends to 4 digits, not 16
    near = [t for t in axes["near"] if t != "near"]
    assert len(set(near)) == len(near) and all(t.startswith("1.2345") for t in near), near
    assert all(t.endswith("T") for t in axes["mid"] if t != "mid"), axes["mid"]


def test_the_report_holds_settings_best_trials_with_test_values_and_says_what_it_skipped(study: ts.Study) -> None:
    page = build_report(study)
    for text in ("<h1>report-demo</h1>", "random", "validation value", "test value", "active when"):
        assert text in page, text
    assert "<td class=l>pruner</td><td class=l>asha</td>" in page  # the name `tunesmith show` and the dashboard print
    best = study.best_trial
    assert f"<td>{best.value:.6g}</td><td>{best.attrs['test_value']:.6g}</td>" in page
    assert page.count('class="plotly-graph-div"') >= 8
    assert "<script src=" not in page  # plotly.js inline
    assert not elsewhere(page)  # nothing named to fetch
    planted = page.replace("</body>", "<img src='//198.51.100.1/pixel.png'></body>", 1)
    assert elsewhere(planted) == ["//198.51.100.1/pixel.png"]  # the check finds one in the report's own HTML
    empty = ts.Study(SPACE, name="empty")
    assert "no plot has anything to draw yet" in build_report(empty)


def test_the_report_and_the_process_diagram_show_what_evaluate_best_recorded(tmp_path: Path) -> None:
    s = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'e.db'}", name="evaluated", seed=0,
                 sampler="random")
    s.optimize(lambda t: (t.params["x"] - 0.3) ** 2, n_trials=12)
    s.evaluate_best(lambda t: (t.params["x"] - 0.3) ** 2 + 0.01, k=3)
    best = s.best_trial
    page = build_report(ts.load_study("evaluated", s.storage))
    assert f"<td>{best.value:.6g}</td><td>{best.value + 0.01:.6g}</td><td>+0.01</td>" in page  # minimize: test - validation
    assert "<th>gap</th>" in page and "overstated the test value" in page
    from tunesmith import plots

    test_box = next(n for n in plots.process(s).nodes if n.key == "test")
    assert f"{best.value + 0.01:.4g}" in test_box.detail


@pytest.mark.slow
def test_the_report_renders_offline_in_a_headless_browser(study: ts.Study, tmp_path: Path, chromium: Pages) -> None:
    out = tmp_path / "report.html"
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["report", "report-demo", "--storage", url, "-o", str(out)]) == 0
    outside: list[str] = []

    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.route("**/*", only(("file:", "data:", "about:"), outside))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri(), wait_until="load")
    page.wait_for_function("window.Plotly !== undefined", timeout=30_000)
    divs = page.eval_on_selector_all(
        ".plotly-graph-div", "ds => ds.map(d => [d.id, !!d._fullLayout, d.querySelectorAll('svg.main-svg').length])")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert not errors, errors
    assert not outside, f"requests left the machine: {outside}"
    assert len(divs) >= 8
    assert all(rendered and svgs > 0 for _, rendered, svgs in divs), divs
    kinds = {d[0].split("-")[1] for d in divs}
    assert {"history", "curves", "process", "importance", "parallel", "slice", "contour", "overfitting"} <= kinds


def test_the_report_of_a_study_of_many_parameters_keeps_the_page_s_width(tmp_path: Path, chromium: Pages) -> None:
    space = ts.Space({f"weight_decay_of_layer_{i}": ts.Float(0, 1) for i in range(300)})
    study = ts.Study(space, sampler="random", seed=0, name="wide")
    study.optimize(lambda t: t.params["weight_decay_of_layer_0"], n_trials=12)
    out = write_report(study, tmp_path / "wide.html")
    width = _in_chromium(chromium, out, lambda page: page.evaluate("document.documentElement.scrollWidth"))
    assert width <= 1200, width  # the best trials' 300 columns scroll in their box (the page was 21,000 px wide)


def test_the_report_of_a_study_with_a_long_name_keeps_the_page_s_width(tmp_path: Path, chromium: Pages) -> None:
    """A study name of 150 letters with no space to break at made the report 1,500 px wide."""
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, name="n" * 150)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    out = write_report(study, tmp_path / "long.html")
    width = _in_chromium(chromium, out, lambda page: page.evaluate("document.documentElement.scrollWidth"))
    assert width <= 1200, width


def test_the_report_fits_a_phone_s_width(tmp_path: Path, chromium: Pages) -> None:
    """A report opened on a phone (a mobile viewport 380 px wide) was laid out 980 px wide and
    shrunk (no viewport declared), its search space table past even that: the page declares its
    viewport and every table scrolls in its own box."""
    study = ts.Study({"c": ts.Categorical(["a" * 90, "b" * 90]), "x": ts.Float(0, 1)}, sampler="random", seed=0,
                     name="phone")
    study.optimize(lambda t: t.params["x"], n_trials=6)
    out = write_report(study, tmp_path / "phone.html")
    page = chromium.new_context(viewport={"width": 380, "height": 800}, is_mobile=True,
                               has_touch=True).new_page()
    page.route("**/*", only(("file:", "data:", "about:"), []))
    page.goto(out.as_uri(), wait_until="load")
    widths = page.evaluate("[document.documentElement.clientWidth, document.documentElement.scrollWidth]")
    assert widths == [380, 380], widths


def test_a_long_title_is_drawn_on_lines_that_fit_the_plot() -> None:
    """plotly draws a title on one line: a study name of 150 letters cut every plot's title at the
    plot's right edge (what it showed of was lost). Titles wider than the figure (plotly's 700 px
    where it sets no width) are now cut into lines, and the top margin grows with them; shorter
    ones are as they were."""
    from tunesmith.plots import records_of
    from tunesmith.plots.plotly_render import _title_width, to_plotly

    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0, name="n" * 150 + " <b>")
    study.optimize(lambda t: t.params["x"], n_trials=5)
    for kind in ("history", "parallel"):
        record = records_of(study, kind)[0]
        layout = to_plotly(record).layout
        lines = [html.unescape(line) for line in layout.title.text.split("<br>")]
        assert len(lines) == {"history": 3, "parallel": 4}[kind], lines
        assert all(_title_width(line) <= 700 * 0.95 - 10 for line in lines), lines
        assert "".join(lines).replace(" ", "") == record.title.replace(" ", "")  # every word, "<b>" as text
        assert layout.margin.t == (110 if kind == "parallel" else 60) + 22 * (len(lines) - 1)
        axes = {"axes": ["x", "y", "value (minimize)"]} if kind == "parallel" else {}  # the page cuts them again
        assert layout.meta == {"title": record.title, "top": 110 if kind == "parallel" else 60, **axes}
    short = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, name="short")
    short.optimize(lambda t: t.params["x"], n_trials=3)
    assert "<br>" not in to_plotly(records_of(short, "history")[0]).layout.title.text


@pytest.mark.parametrize("width", [1200, 420])
def test_a_long_title_fits_the_plot_as_the_page_draws_it(tmp_path: Path, width: int, chromium: Pages) -> None:
    """Titles were cut every 80 characters whatever the plot's width: 80 capital Ws are 1,350 px at
    plotly's 17 px, past the edge of a plot of 700 (and of one on a phone), a plot 1,200 px wide
    had lines of half its width. Each title is now cut to the width the page draws its plot at,
    measured in its font, and again when the window is resized. On a phone the title's lines took
    the whole figure's height, and plotly.js before 4 (plotly < 7) then failed the redraw, leaving
    the title as wide as before."""
    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0, name="W" * 200)
    study.optimize(lambda t: t.params["x"], n_trials=5)
    out = write_report(study, tmp_path / "long.html")
    read = """() => [...document.querySelectorAll('.js-plotly-plot')].map((gd) => {
        const svg = gd.querySelector('.main-svg').getBoundingClientRect(), title = gd.querySelector('.gtitle');
        const box = title.getBoundingClientRect();
        return [box.left - svg.left, box.right - svg.left, svg.width, title.textContent, gd.layout.title.text,
                gd._fullLayout._size.h, gd.parentElement.clientWidth];
    })"""
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.route("**/*", only(("file:", "data:", "about:"), []))
    page.goto(out.as_uri(), wait_until="load")
    settled(page)
    drawn = page.evaluate(read)
    settled(page, width // 2)  # narrower: cut again
    narrower = page.evaluate(read)
    assert len(drawn) >= 3, drawn
    for (left, right, plot_width, text, lines, high, seen), (_, right2, width2, text2, lines2, high2, _) in zip(
            drawn, narrower, strict=True):
        assert 0 <= left and right <= plot_width and right2 <= width2, (left, right, plot_width, right2, width2)
        assert min(high, high2) > 100, (high, high2)  # the figure grows with its title: the plot keeps its height
        assert "W" * 200 in text and text2.replace(" ", "") == text.replace(" ", "")  # every letter, on lines
        # more lines where drawn narrower (a process diagram is kept as wide as its boxes' texts need: not narrower)
        assert lines.count("<br>") < lines2.count("<br>") or width2 == plot_width, (lines, lines2, width2)
        # lines as wide as the plot, not a fixed count of letters (a process diagram wider than its box, scrolled
        # sideways: as wide as the box, in sight)
        assert right > min(plot_width, seen) * 0.6 and right <= seen, (right, plot_width, seen)


def test_a_title_of_control_characters_is_cut_into_lines_as_drawn(tmp_path: Path) -> None:
    """A name a peer wrote into the database with 100 ESCs (tunesmith refuses such a name, the
    database does not): the title was cut into lines of 80 characters before each ESC was written
    ``\\x1b``, so its first line was drawn 320 characters (2,600 px) long, past the plot's edge."""
    import sqlite3

    from tunesmith.plots import records_of
    from tunesmith.plots.plotly_render import to_plotly

    url = f"sqlite:///{tmp_path / 'esc.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="esc", sampler="random", seed=0).optimize(
        lambda t: t.params["x"], n_trials=3)
    with sqlite3.connect(tmp_path / "esc.db") as db:
        db.execute("UPDATE ts_studies SET name = ?", ("\x1b" * 100,))
    record = records_of(ts.load_study("\x1b" * 100, url), "history")[0]
    lines = [html.unescape(line) for line in to_plotly(record).layout.title.text.split("<br>")]
    assert all(len(line) <= 80 for line in lines) and "\x1b" not in "".join(lines), lines
    assert "".join(lines).replace(" ", "").count("\\x1b") == 100, lines


def _in_chromium(chromium: Pages, out: Path, read: Callable[[Any], Any], widths: Sequence[int] = (1200,)) -> Any:
    """What ``read`` gets from the report ``out`` opened in headless chromium, 1200 x 900 (or each of ``widths``
    px wide: a list of what it got), with no request leaving the machine."""
    got = []
    for width in widths:
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.route("**/*", only(("file:", "data:", "about:"), []))
        page.goto(out.as_uri(), wait_until="load")
        got.append(read(page))
    return got if len(widths) > 1 else got[0]


def test_a_plot_with_an_empty_reason_says_nothing_to_draw_in_the_report_and_the_plot_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Importance's reason for nothing to draw is its error's text: an error without a message (here
    scikit-learn's forest failing so) was listed as "importance: " in the report, and the plot command
    said "no records". Both now say "nothing to draw"."""
    from sklearn.ensemble import RandomForestRegressor

    def fails_without_a_message(*args: Any, **kwargs: Any) -> None:
        raise ValueError()

    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=url, name="r", sampler="random", seed=0)
    s.optimize(lambda t: t.params["x"] + t.params["y"], n_trials=12)  # importance needs 10 complete trials
    monkeypatch.setattr(RandomForestRegressor, "fit", fails_without_a_message)
    assert "<li>importance: nothing to draw</li>" in build_report(s)
    assert main(["plot", "r", "--storage", url, "--kind", "importance", "-o", str(tmp_path / "i.png")]) == 1
    assert "nothing to draw for the importance of 'r': nothing to draw" in capsys.readouterr().err


def test_report_command_names_a_missing_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["report", "nope", "--storage", url, "-o", str(tmp_path / "r.html")]) == 2
    assert "nope" in capsys.readouterr().err


def test_the_report_is_written_only_to_an_html_file_in_a_folder_that_exists(
    study: ts.Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    out = tmp_path / "report.png"  # was an HTML page under an image's name
    with pytest.raises(SystemExit) as exit_:  # the command line's check, before the study is read (was: after)
        main(["report", "report-demo", "--storage", url, "-o", str(out)])
    assert exit_.value.code == 2
    assert "to a .html file; an image of one plot: tunesmith plot, not 'report.png'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_:  # the command line's check, before the study is read
        main(["report", "report-demo", "--storage", url, "-o", str(tmp_path / "no" / "r.html")])
    assert exit_.value.code == 2
    assert f"folder {str(tmp_path / 'no')!r} does not exist" in capsys.readouterr().err


def test_the_search_space_shows_choices_and_conditions_in_their_own_letters() -> None:
    """The search space table wrote every letter beyond ASCII as a JSON escape: the choice
    "ünï 日本" read ``\\u00fcn\\u00ef \\u65e5\\u672c``, in its definition and in a condition on it."""
    space = {"c": ts.Categorical(["ünï 日本", "<b>"]), "x": ts.Float(0, 1, when={"c": ["ünï 日本"]})}
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: t.params.get("x", 1.0), n_trials=4)
    page = build_report(study)
    assert "\\u00fc" not in page.split("<h2>Plots</h2>")[0]
    assert "[&quot;ünï 日本&quot;, &quot;&lt;b&gt;&quot;]" in page
    assert "{&quot;c&quot;: [&quot;ünï 日本&quot;]}" in page


def test_the_report_of_a_study_with_no_trial_says_so(tmp_path: Path) -> None:
    s = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'n.db'}", name="nothing-yet")
    page = build_report(s)
    assert "<td class=l>0</td>" in page and "0 ()" not in page
    assert "no complete trial yet" in page and "no plot has anything to draw yet" in page


def test_a_large_study_s_report_is_reduced_as_the_dashboard_s() -> None:
    """A 20,000-trial study's report took 112 s and 1.7 GB and did not open in a browser within
    30 s; its heavy plots are now computed on 1,000 trials and every series cut to 2,000 points."""
    from tunesmith.plots.reduce import MAX_POINTS, SAMPLE

    s = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0, name="wide")

    def f(t: ts.Trial) -> float:
        t.report(t.params["x"], 1)
        return t.params["x"] + t.params["y"]

    s.optimize(f, n_trials=SAMPLE + 1500)
    page = build_report(s)
    m = re.search(rf"id='reduced'>[^<]*computed on (\d+) of {SAMPLE + 1500} trials", page)
    assert m and int(m.group(1)) == SAMPLE, page[page.find("<h2>Plots"):][:400]
    assert f"at most {MAX_POINTS:,} points a series" in page and len(page) < 8_000_000


def test_names_that_look_like_html_are_shown_as_text_in_the_plots(tmp_path: Path, chromium: Pages) -> None:
    """Plotly reads a little HTML in texts: a choice or parameter named <a href=...> drew a link
    (to anywhere) in the report's plots, and <b> bold text."""
    link = "<a href='https://198.51.100.1/'>sign in</a>"
    study = ts.Study({"p<b>x</b>": ts.Float(0, 1), "c": ts.Categorical([link, "b"])}, sampler="random", seed=0,
                     name="s" + link)

    def objective(trial: ts.Trial) -> float:
        trial.report(1.0, 1)
        return float(trial.params["p<b>x</b>"])

    study.optimize(objective, n_trials=12)
    out = write_report(study, tmp_path / "r.html")
    page = chromium.new_page()
    page.route("**/*", only(("file:", "data:", "about:"), []))
    page.goto(out.as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div svg.main-svg').length > 8",
                           timeout=30_000)
    links = page.eval_on_selector_all("svg a", "as => as.map(a => a.getAttribute('href') || a.getAttribute('xlink:href'))")
    bold = page.eval_on_selector_all("svg tspan", "ts => ts.filter(t => /bold/.test(t.getAttribute('style')"
                                                  " || '') && t.textContent === 'x').length")
    shown = page.eval_on_selector_all("svg text", "ts => ts.map(t => t.textContent).join(' ')")
    assert not [h for h in links if h and "198.51.100.1" in h], links
    assert bold == 0 and "sign in</a>" in shown and "p<b>x</b>" in shown


def test_a_huge_choice_is_cut_in_the_report_s_tables_and_plots_as_in_show() -> None:
    """Before: a 1 MB choice was written whole into the report's space and best-trials tables and
    into its slice and parallel plots (the dashboard's tables and ``show`` print 200 characters and
    the length): a report of some MB. Two long choices that start alike still read apart, in order."""
    from tunesmith.plots import slices

    big, twin = "a" * 999_999 + "y", "a" * 999_999 + "z"
    study = ts.Study({"x": ts.Float(0, 1), "c": ts.Categorical([big, "b", twin])}, sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + (t.params["c"] == "b"), n_trials=12)
    html = build_report(study)
    assert "a" * 1000 not in html  # (the page holds plotly.js, 4.8 MB)
    assert "a" * 100 + "... (choice 1, 1,000,000 characters)" in html
    chart = next(c for c in slices(study) if c.x_label == "c")
    assert list(chart.x_categories) == [
        "a" * 100 + "... (choice 1, 1,000,000 characters)", "b", "a" * 100 + "... (choice 3, 1,000,000 characters)"]


@pytest.mark.slow
def test_long_names_of_parallel_coordinates_are_titles_in_lines_apart_in_the_page(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """plotly drew each parallel axis' title on one line: six names of 28 to 48 characters overlapped by 3 pairs
    in a page 1200 px wide. Now each is cut into at most 3 lines as wide as the space between two axes of a
    figure 700 px wide, and again by the page to the width it draws the figure at (below 700 px they overlapped:
    at 600 px 6 pairs), their lines above the range written over each axis (the lines ran into it): measured in
    the browser 1200, 700, 600 and 400 px wide, the titles are apart, inside the figure and above the ticks."""
    from tunesmith import plots
    from tunesmith.plots.plotly_render import to_plotly

    names = [f"layer_{i}_" + "dropout_probability_of_the_attention_block"[:20 + 5 * i] for i in range(6)]
    study = ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), sampler="random", seed=0)
    study.optimize(lambda t: sum(t.params.values()), n_trials=12)
    record = plots.parallel(study)
    titles = [d.label.split("<br>") for d in to_plotly(record).data[0].dimensions]
    assert titles[0] == ["layer_0_dropout_p", "robability_"] and max(map(len, titles)) == 3, titles
    assert [t[0] for t in titles[:6]] == [n[:17] for n in names]
    chromium: Pages = request.getfixturevalue("chromium")  # after what needs no browser
    out = plots.save(record, tmp_path / "parallel.html")

    assert_parallel_titles_apart(_in_chromium(chromium, out, read_parallel_titles, (1200, 700, 600, 400)))



def test_a_parallel_axis_dragged_elsewhere_keeps_its_own_title_when_the_page_cuts_titles_again(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The page cut each parallel axis' title again from the names in their first order (``layout.meta.axes``), but
    a reader who drags an axis elsewhere reorders the figure's dimensions: at the next redraw (the window resized)
    each moved axis was titled with another parameter's name. Now each axis' name travels with it."""
    from tunesmith import plots
    from tunesmith.plots.plotly_render import to_plotly

    names = [w + "_dropout_probability_of_attention" for w in ("alpha", "beta", "gamma", "delta")]
    study = ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), sampler="random", seed=0)
    study.optimize(lambda t: sum(t.params.values()), n_trials=8)
    record = plots.parallel(study)
    assert [d.name for d in to_plotly(record).data[0].dimensions] == [*names, "value (minimize)"]
    chromium: Pages = request.getfixturevalue("chromium")  # after what needs no browser
    out = plots.save(record, tmp_path / "parallel.html")
    by_values = {json.dumps(list(a.values), separators=(",", ":")): a.name for a in record.axes}
    own = "gd => gd.data[0].dimensions.map(d => [JSON.stringify(d.values), d.label])"

    def drag_then_narrow(page: Any) -> tuple[list[str], list[list[str]]]:
        read_parallel_titles(page)
        gd = page.query_selector(".js-plotly-plot")
        title = next(t for t in page.query_selector_all(".axis-title") if t.text_content().startswith("alpha"))
        box = title.query_selector("tspan.line").bounding_box()  # its first line (the rest is not a handle)
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for k in range(1, 21):  # past two axes to the right, in steps as a hand moves
            page.mouse.move(x + 15 * k, y)
            page.wait_for_timeout(20)
        page.mouse.up()
        page.wait_for_function("gd => !String(gd.data[0].dimensions[0].name).startsWith('alpha')", arg=gd)
        moved = [by_values[v] for v, _ in gd.evaluate(own)]
        before = gd.evaluate("gd => gd.data[0].dimensions[0].label")
        page.set_viewport_size({"width": 420, "height": 900})
        page.wait_for_function("([gd, before]) => gd.data[0].dimensions[0].label !== before && "
                               "!gd.tunesmithFittingAxes", arg=[gd, before])
        return moved, gd.evaluate(own)

    moved, dims = _in_chromium(chromium, out, drag_then_narrow, (600,))
    assert moved[:3] != names[:3], moved  # the drag moved "alpha" past other axes
    for values, label in dims:
        lines = [html.unescape(line) for line in label.split("<br>")]
        assert by_values[values].startswith(lines[0]) and len(lines) > 1, (by_values[values], lines)


def test_a_slice_of_long_choices_draws_them_in_lines_apart_in_the_page(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Six choices of 152 characters were each one rotated line in the HTML slice, which plotly's margin
    squeezed to a strip of 50 px. Now each tick is at most 3 lines of 20 columns (the first, "…", the end;
    its hover keeps the whole choice): measured in the browser, the labels are apart and the plot keeps its height."""
    from tunesmith import plots

    choices = [f"preprocessing pipeline number {i} with standard scaling then a principal component analysis "
               f"keeping ninety five percent of the <b>variance</b> and a final step {i}" for i in range(6)]
    study = ts.Study(ts.Space({"pipe": ts.Categorical(choices), "x": ts.Float(0, 1)}), sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + choices.index(t.params["pipe"]), n_trials=20)
    (chart,) = [c for c in plots.slices(study) if c.x_categories]
    from tunesmith.plots.plotly_render import to_plotly

    axis = to_plotly(chart).layout.xaxis
    assert [t.split("<br>") for t in axis.ticktext] == [["preprocessing", "…", f"&gt; and a final step {i}"]
                                                        for i in range(6)]
    assert list(axis.tickvals) == [c.replace("<", "&lt;").replace(">", "&gt;") for c in choices]
    chromium: Pages = request.getfixturevalue("chromium")  # after what needs no browser
    out = plots.save(chart, tmp_path / "slice.html")

    def read(page: Any) -> tuple[list[list[float]], float]:
        page.wait_for_function("window.Plotly !== undefined", timeout=30_000)
        boxes = page.eval_on_selector_all(".xtick text", "ts => ts.map(t => { const r = t.getBoundingClientRect();"
                                          " return [r.left, r.right]; })")
        return boxes, page.eval_on_selector("rect.nsewdrag", "r => r.getBoundingClientRect().height")

    boxes, plot = _in_chromium(chromium, out, read)
    boxes.sort()
    assert len(boxes) == 6 and all(a[1] <= b[0] for a, b in zip(boxes, boxes[1:], strict=False)), boxes
    assert plot > 200, plot


def test_a_compare_legend_of_a_long_name_leaves_the_plot_its_width_in_the_page(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """plotly drew a comparison's legend entry whole on one line: a sampler's name of 300 characters made the
    legend wider than the page and the plot a sliver. Now the entry is in lines (as the data layer cuts it):
    measured in the browser, the legend is under a third of the figure and the plot keeps most of it."""
    from tunesmith import plots

    long = "a_sampler_registered_by_the_objective_module_" * 7 + "end"
    out = plots.save(plots.comparison({long: [[3, 2, 1], [4, 1, 0]], "random": [[2, 2, 2]]}),
                     tmp_path / "compare.html")
    chromium: Pages = request.getfixturevalue("chromium")  # after what needs no browser

    def read(page: Any) -> tuple[float, float, float]:
        page.wait_for_function("window.Plotly !== undefined", timeout=30_000)
        page.wait_for_selector(".legend")
        width = lambda selector: page.eval_on_selector(selector, "e => e.getBoundingClientRect().width")  # noqa: E731
        return width(".legend"), width("rect.nsewdrag"), width(".main-svg")

    legend, plot, figure = _in_chromium(chromium, out, read)
    assert legend < figure / 3 and plot > figure / 2, (legend, plot, figure)


def test_the_report_names_the_sampler_s_seed_which_runs_the_same_trials_again(tmp_path: Path) -> None:
    """A report attached as supplementary material named the sampler, not its seed: a study made without
    ``seed=`` (its seed drawn and stored) could not be run again from it."""
    space = ts.Space({"x": ts.Float(-1.0, 1.0), "k": ts.Categorical(["a", "b"])})
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = ts.Study(space, sampler="random", storage=url, name="drawn")
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=4)
    text = re.sub(r"<[^>]+>", " ", build_report(ts.load_study("drawn", url)))
    seed = int(re.search(r"sampler\s+random, seed (\d+)", text).group(1))  # type: ignore[union-attr]
    again = ts.Study(space, sampler="random", seed=seed)
    again.optimize(lambda t: t.params["x"] ** 2, n_trials=4)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    seeded = ts.Study(space, sampler="tpe", seed=7)
    assert re.search(r"sampler\s+tpe, seed 7\s", re.sub(r"<[^>]+>", " ", build_report(seeded)))
#: a live update drawn as the dashboard draws it (``Plotly.react``, then the titles cut: a relayout in flight), the
#: plot narrowed to 400 px meanwhile and plotly's resize run; then what a fresh cut would change (nothing if fitted)
LIVE_UPDATE_WHILE_RESIZED = """async ([kind, fig]) => {
  const gd = document.querySelector(`.js-plotly-plot[id^="plot-${kind}-"]`), still = STILL, end = performance.now() + 30000;
  const settle = async () => {  // until the page is still (its cuts done), 30 s at most
    window.tunesmithStill = null;
    while (!still(400)) {
      if (performance.now() > end) { throw new Error("the page was not still within 30 s"); }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const texts = () => [gd._fullLayout.width, gd.layout.title.text, gd.data[0].dimensions ?
                       gd.data[0].dimensions.map((d) => d.label) : null];
  Plotly.react(gd, fig.data, fig.layout, {responsive: true});
  tunesmithFitTitles(gd);
  const inFlight = [gd.tunesmithFitting, gd.tunesmithFittingAxes];
  gd.style.width = "400px";
  Plotly.relayout(gd, {autosize: true});
  await settle();
  const drawn = texts();
  gd.tunesmithFit();
  await settle();
  return [inFlight, drawn, texts()];
}""".replace("STILL", STILL)


def test_a_plot_resized_during_a_live_update_is_cut_for_the_width_it_is_drawn_at(
        tmp_path: Path, chromium: Pages) -> None:
    """A redraw that came while the page's last cut was being drawn (a window resized during a live update) was
    dropped: the title, and a parallel plot's axis titles, stayed cut for the width before (1,200 px on a plot
    of 400). Each fitter now cuts again once its own redraw is done. The parallel plot's study has a short name,
    so that its axes' cut alone is in flight (a title cut again redraws the axes too)."""
    from tunesmith.plots import records_of
    from tunesmith.plots.plotly_render import figure_json

    names = [f"layer_{i}_" + "dropout_probability_of_the_attention_block"[:20 + 5 * i] for i in range(6)]
    for kind, name in (("history", " ".join(["validation_loss_of_the_transformer"] * 4)), ("parallel", "p")):
        study = ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), sampler="random", seed=0, name=name)
        study.optimize(lambda t: sum(t.params.values()), n_trials=8)
        out = write_report(study, tmp_path / f"{kind}.html")
        study.optimize(lambda t: sum(t.params.values()), n_trials=4)  # the update: 12 trials
        fig = figure_json(records_of(study, kind)[0])
        in_flight, drawn, fitted = _in_chromium(chromium, out, lambda page, arg=[kind, fig]: page.evaluate(
            LIVE_UPDATE_WHILE_RESIZED, arg))
        assert any(in_flight), f"the update's cut of the {kind} plot was not in flight as it narrowed"
        assert drawn[0] == 400 and "of 12" in drawn[1], drawn
        assert drawn == fitted, (drawn, fitted)  # cut for 400 px already: a fresh cut changes nothing


#: each plot's title, legend and plot area (px from the figure's top) and the figure's height
TITLE_LEGEND_PLOT = """() => [...document.querySelectorAll('.js-plotly-plot')].map((gd) => {
  const top = gd.querySelector('.main-svg').getBoundingClientRect().top, legend = gd.querySelector('g.legend');
  const box = (el) => el ? [el.getBoundingClientRect().top - top, el.getBoundingClientRect().bottom - top] : null;
  const after = gd.parentElement.nextElementSibling;  // the next plot's box (plotly's own outer div)
  const next = after && after.querySelector('.js-plotly-plot') ? after : null;
  return {id: gd.id, title: box(gd.querySelector('.gtitle')), legend: box(legend), plot: gd._fullLayout._size.t,
          height: gd._fullLayout.height, lines: gd.layout.title.text.split('<br>').length, area: gd._fullLayout._size.h,
          over: next ? gd.querySelector('.main-svg').getBoundingClientRect().bottom - next.getBoundingClientRect().top : 0};
})"""


@pytest.mark.parametrize("name", ["adam", "long name"])
def test_a_plot_s_title_legend_and_plot_stay_apart_as_the_window_is_resized(
        tmp_path: Path, name: str, chromium: Pages) -> None:
    """Re-cut to more lines as the window narrowed, a title ran over the legend written in rows above a plot with
    a colour bar (Adam in action at 400 and 700 px: its four entries in four rows, up over the title's two
    lines); and a figure grown for a title of more lines kept that height once the window was wide again (the
    report's 450 px figures stayed 494). A figure of a set height (the process diagram) grew for its title's lines
    past its box, over the next plot (by 22 px at 700 px, 66 at 400), and the next resize (to 390 px) shrank it
    back to its box, its plot squeezed under the taller title. Checked from 1200 px to 700, 400, 390, and back."""
    from tunesmith import plots

    if name == "adam":
        out = tmp_path / "adam.html"
        plots.save(plots.adam_in_action("lr"), out)
    else:
        study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0,
                         name=" ".join(["validation_loss_of_the_transformer"] * 4))
        study.optimize(lambda t: t.params["x"], n_trials=12)
        out = write_report(study, tmp_path / "long.html")
    drawn = {}
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.route("**/*", only(("file:", "data:", "about:"), []))
    page.goto(out.as_uri(), wait_until="load")
    for step, width in enumerate((1200, 700, 400, 390, 1200)):
        settled(page, width)
        drawn[step, width] = page.evaluate(TITLE_LEGEND_PLOT)
    for (_, width), figures in drawn.items():
        for f in figures:
            assert f["title"][1] <= f["plot"] and f["over"] <= 1, (width, f)
            if f["legend"] and f["legend"][1] <= f["plot"] + 1:  # a legend above the plot: under the title
                assert f["title"][1] <= f["legend"][0] + 1, (width, f)
    assert [f["lines"] for f in drawn[2, 400]] > [f["lines"] for f in drawn[0, 1200]]  # cut again, narrower
    assert [f["height"] for f in drawn[4, 1200]] == [f["height"] for f in drawn[0, 1200]], drawn  # given back
    assert [f["area"] for f in drawn[3, 390]] == [f["area"] for f in drawn[2, 400]], drawn  # titles alike: plots too


def test_a_figure_shown_outside_tunesmith_s_pages_is_cut_for_the_width_it_is_given(
        tmp_path: Path, chromium: Pages) -> None:
    """``to_plotly``'s figure shown in a notebook or written by the user's own ``fig.write_html`` has no page
    script to cut its title again: it was cut for 700 px whatever width the user drew it at (a title of 400 px
    ran past the edge of a figure of 400, a parallel plot's axis titles into each other). ``width=`` sets the
    figure's width and cuts its titles for it, a parallel plot's axis titles as narrow as its axes are apart; a width that is no whole number of px from 100 is refused."""
    from tunesmith.plots import records_of
    from tunesmith.plots.plotly_render import _title_width, to_plotly

    names = [f"layer_{i}_" + "dropout_probability_of_the_attention_block"[:10 + 4 * i] for i in range(8)]
    study = ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), sampler="random", seed=0,
                     name=" ".join(["validation_loss_of_the_transformer"] * 3))
    study.optimize(lambda t: sum(t.params.values()), n_trials=8)
    for kind in ("history", "parallel"):
        record = records_of(study, kind)[0]
        wide, narrow = to_plotly(record, width=1200), to_plotly(record, width=400)
        assert (wide.layout.width, narrow.layout.width) == (1200, 400)
        for fig, width in ((wide, 1200), (narrow, 400)):
            lines = [html.unescape(line) for line in fig.layout.title.text.split("<br>")]
            assert all(_title_width(line) <= width * 0.95 - 10 for line in lines), (width, lines)
        assert narrow.layout.title.text.count("<br>") > to_plotly(record).layout.title.text.count("<br>")
        assert wide.layout.title.text.count("<br>") <= to_plotly(record).layout.title.text.count("<br>")
        narrow.write_html(tmp_path / f"{kind}.html", include_plotlyjs=True)  # the user's own page: no tunesmith script
    for bad in (0, 99, 400.5, True, "400"):
        with pytest.raises(ValueError, match="width must be a whole number of px, at least 100"):
            to_plotly(record, width=bad)  # type: ignore[arg-type]
    read = """() => {
      const gd = document.querySelector('.js-plotly-plot'), svg = gd.querySelector('.main-svg').getBoundingClientRect();
      const right = (el) => el.getBoundingClientRect().right - svg.left;
      return [svg.width, right(gd.querySelector('.gtitle')),
              [...gd.querySelectorAll('.axis-title')].map((t) => [t.getBoundingClientRect().left - svg.left, right(t)])];
    }"""
    for kind in ("history", "parallel"):
        width, title_right, axes = _in_chromium(chromium, tmp_path / f"{kind}.html", lambda page: page.evaluate(read))
        assert width == 400 and title_right <= 400, (width, title_right)
        axes.sort()  # apart: 8 axes 36 px apart (a floor of 50 px a line left them 13 px over)
        assert all(a[1] <= b[0] for a, b in zip(axes, axes[1:], strict=False)), axes


@pytest.mark.parametrize("name", ["bert-base fine-tune on sst2", "s"])
def test_a_process_diagram_s_texts_stay_apart_in_a_narrow_window(tmp_path: Path, name: str, chromium: Pages) -> None:
    """At 400 px the process diagram's boxes were drawn 30 px wide, their texts ("search space", "sampler",
    "30 complete") and arrow labels run into each other; kept as wide as its texts need (780 px), it was read by
    scrolling sideways. In a box narrower than that the boxes are drawn in a column (the pruner beside the
    trials), read without scrolling sideways; the row again once the window is wide (a window widened, too).
    A short name, whose title keeps its one line: the column was left 778 px wide in a box of 368 (the switch
    turned plotly's autosize off, which only a re-cut title turned on again), and stayed a column at 1200 px."""
    out = _report_of_30_trials(tmp_path, name, pruner=ASHA(min_resource=1))
    read = """() => {
      const gd = document.querySelector('.js-plotly-plot[id^="plot-process-"]');
      const boxes = [...gd.querySelectorAll('g.annotation-text-g')].filter((g) => g.textContent.trim())
        .map((g) => { const b = g.getBoundingClientRect(); return [b.left, b.right, b.top, b.bottom, g.textContent]; });
      return [boxes, document.documentElement.scrollWidth, gd.parentElement.scrollWidth, gd.parentElement.clientWidth,
              gd._fullLayout.height];
    }"""

    def drawn(page: Any) -> list[Any]:
        settled(page)
        got = [page.evaluate(read)]
        settled(page, 1200)  # widened: the row again
        return [*got, page.evaluate(read)]

    seen = [*_in_chromium(chromium, out, drawn, widths=(400, 1200))]
    assert seen[0][1][4] == seen[1][0][4], seen  # widened: the row's own height, as drawn at 1200 px
    for width, (boxes, page_width, scrolled, box, _) in zip((400, 1200, 1200, 1200), [*seen[0], *seen[1]],
                                                                     strict=True):
        over = [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[0] < b[1] - 1 and b[0] < a[1] - 1 and a[2] < b[3] - 1 and b[2] < a[3] - 1]
        assert len(boxes) >= 13 and not over, (width, over)
        assert page_width <= width and scrolled <= box, (width, page_width, scrolled, box)
        middles = {round((b[2] + b[3]) / 2) for b in boxes if b[4].startswith(("search", "sampler", "trials", "best", "test"))}
        assert len(middles) == (5 if width == 400 else 1), (width, boxes)  # a column at 400 px, a row at 1200


def test_a_process_diagram_on_a_phone_has_its_title_in_sight(tmp_path: Path, chromium: Pages) -> None:
    """On a phone the process diagram was drawn as wide as its boxes' texts need (780 px) in a box scrolled
    sideways, its title cut for those 780 px, the end of a long one out of sight (to 675 px in a box of 384).
    Its boxes are drawn in a column there now, as wide as the box, and the title is cut for the width in sight."""
    out = _report_of_30_trials(tmp_path, "bert-base fine-tune on sst2 with a longer name of the run")
    read = """() => {
      const gd = document.querySelector('.js-plotly-plot[id^="plot-process-"]');
      return [gd.querySelector('.gtitle').getBoundingClientRect().right, gd.parentElement.getBoundingClientRect().right,
              gd._fullLayout.width, gd.layout.title.text];
    }"""
    title, box, figure, text = _in_chromium(chromium, out, lambda page: (settled(page), page.evaluate(read))[1],
                                       widths=(400,))
    assert figure <= 400 and box <= 400, (figure, box)
    assert title <= box and "the optimization process" in text.replace("<br>", " "), (title, box, text)


def _report_of_30_trials(tmp_path: Path, name: str, pruner: Any = None) -> Path:
    """The report of a study ``name`` of two parameters and 30 trials: its process diagram has five boxes (six
    with a ``pruner``: the trials report 3 steps)."""
    study = ts.Study({"learning_rate": ts.Float(1e-5, 1e-1, log=True), "weight_decay": ts.Float(0, 0.3)},
                     sampler="random", seed=0, name=name, pruner=pruner)

    def objective(trial: ts.Trial) -> float:
        for step in range(3 if pruner else 0):
            trial.report(trial.params["weight_decay"] + step, step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return float(trial.params["weight_decay"])

    study.optimize(objective, n_trials=30)
    return write_report(study, tmp_path / "process.html")


def _plotly_page(path: Path, script: str) -> Path:
    """A page of one figure's div (``p``) and ``script``, with plotly.js from its package (a file: URL)."""
    import plotly

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    path.write_text(f"<!DOCTYPE html><html><body><div id='p' class='plotly-graph-div'></div>"
                    f"<script src='{js.as_uri()}'></script><script>{script}</script></body></html>")
    return path


def test_settled_waits_for_a_figure_that_a_page_draws_after_it_loads(tmp_path: Path, chromium: Pages) -> None:
    """``settled`` took a page whose figures plotly had not begun to draw (no ``js-plotly-plot`` yet) as still:
    it returned 0.4 s after the load, before the figure a script draws 2 s later, and a check read an empty div."""
    out = _plotly_page(tmp_path / "later.html",
                       "setTimeout(() => Plotly.newPlot('p', [{y: [1, 3, 2]}], {}, {responsive: true}), 2000)")
    drawn = _in_chromium(chromium, out, lambda page: (settled(page), page.evaluate(
        "document.querySelectorAll('#p .main-svg').length"))[1])
    assert drawn > 0, "settled returned before the page drew its figure"


def test_settled_returns_on_a_page_holding_a_figure_of_a_set_size(tmp_path: Path, chromium: Pages) -> None:
    """plotly's resize of a figure of a set width and height draws nothing and leaves ``_resolveResize`` set:
    ``settled`` took that for a resize pending, and a window resized over such a figure timed out after 30 s."""
    out = _plotly_page(tmp_path / "set.html", "Plotly.newPlot('p', [{y: [1, 3, 2]}], {width: 400, height: 300}, "
                                              "{responsive: true})")
    width = _in_chromium(chromium, out, lambda page: (settled(page, 600), page.evaluate(
        "document.getElementById('p')._fullLayout.width"))[1])
    assert width == 400


def test_a_name_holding_a_plotly_template_draws_no_markup_in_the_report(tmp_path: Path, chromium: Pages) -> None:
    """plotly fills ``%{meta.title}`` in a title, an annotation or a legend entry with ``layout.meta``, which holds
    the title and the parallel axes' names unescaped (the page's script cuts them again): a study, a parameter or
    a choice named ``<a href=...>...%{meta.title}`` drew a link and styled text in every plot (18 links here, in
    chromium, the process diagram's column at 400 px too). Drawn as written, ``%{...}`` too."""
    mark = '<a href="https://198.51.100.1/x">CLICK</a><span style="font-family:Zebrafont">BIG</span>'
    study = ts.Study({"x": ts.Float(0, 1), "y" + mark + "%{meta.axes[0]}": ts.Float(0, 1),
                      "c": ts.Categorical(["A" + mark + "%{meta.title}", "B"])},
                     name="n" + mark + "%{meta.title}", sampler="random", seed=0, pruner=ASHA(max_resource=3))

    def objective(t: ts.Trial) -> float:
        for step in (1, 2, 3):
            t.report(t.params["x"], step)
        return t.params["x"]

    study.optimize(objective, n_trials=8)
    out = write_report(study, tmp_path / "template.html")

    def read(page: Any) -> tuple[int, int, list[str]]:
        page.wait_for_function("document.querySelectorAll('.gtitle').length >= 3", timeout=30_000)
        settled(page)  # the titles' and the process diagram's column's relayouts
        return page.evaluate("""() => [document.querySelectorAll('svg a').length,
          [...document.querySelectorAll('svg [style]')].filter(t => t.getAttribute('style').includes("Zebrafont")).length,
          [...document.querySelectorAll('.gtitle')].map(t => t.textContent)]""")

    for links, styled, titles in _in_chromium(chromium, out, read, widths=(1200, 400)):
        assert (links, styled) == (0, 0), titles
        assert any("%{meta.title}" in t and "CLICK</a>" in t for t in titles), titles


def test_the_dashboard_s_plots_hold_no_plotly_template_of_a_name(tmp_path: Path) -> None:
    """The dashboard draws the same figures: no text plotly fills from ``layout.meta`` (``%{meta.title}``) in the
    JSON it sends for any plot of a study whose names hold one (their titles, boxes, legends, axes)."""
    pytest.importorskip("starlette")
    from urllib.parse import quote

    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url = f"sqlite:///{tmp_path / 't.db'}"
    study = ts.Study({"x%{meta.axes[0]}": ts.Float(0, 1), "c": ts.Categorical(["A%{meta.title}", "B"])},
                     storage=url, name="n%{meta.title}", sampler="random", seed=0, pruner=ASHA(max_resource=3))

    def objective(t: ts.Trial) -> float:
        for step in (1, 2, 3):
            t.report(t.params["x%{meta.axes[0]}"], step)
        return t.params["x%{meta.axes[0]}"]

    study.optimize(objective, n_trials=8)
    client = TestClient(create_app(open_storage(url)))
    drawn: list[str] = []

    def texts(node: Any) -> None:  # every text plotly draws as HTML: titles, annotations, legend entries
        if isinstance(node, dict):  # (a parallel axis's name is the page's script's, which cuts it into its label)
            drawn.extend(v for k, v in node.items() if k in ("text", "name", "title", "label") and isinstance(v, str)
                         and not (k == "name" and "values" in node))
            for k, v in node.items():
                if k != "meta":  # data the page's script reads, never drawn as it is
                    texts(v)
        elif isinstance(node, list):
            for v in node:
                texts(v)

    for kind in ("history", "curves", "process", "parallel", "slice"):
        got = client.get(f"/api/studies/{quote(study.name, safe='')}/plots/{kind}")
        assert got.status_code == 200, got.text
        texts([p["figure"] for p in got.json()["plots"]])
    assert any("&#37;{meta.title}" in t for t in drawn), drawn  # the study's name, in the titles
    assert not [t for t in drawn if "%{" in t], drawn
