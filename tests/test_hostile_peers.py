"""What a peer can hand tunesmith to read: an export file to import, a study shared in a
database, a checkpoint folder, a browser pointed at the dashboard. Each is refused with a
message that names what is wrong, or read harmlessly; nothing is run."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.cli import main
from tunesmith.storage import make_storage
from tunesmith.study.manage import import_study

SPACE = {"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"])}


def _exported(tmp_path: Path) -> dict[str, Any]:
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'src.db'}", name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    out = tmp_path / "s.json"
    assert main(["export", "s", "--storage", f"sqlite:///{tmp_path / 'src.db'}", "--format", "json", "-o", str(out)]) == 0
    return json.loads(out.read_text())


def _nested(depth: int) -> Any:
    x: Any = 1
    for _ in range(depth):
        x = [x]
    return x


# -- tunesmith import of a hostile export file -------------------------------------------------


@pytest.mark.parametrize(("field", "value", "said"), [
    ("attrs", [1], "attrs must be a dict"),  # was an AttributeError traceback
    ("attrs", {"a": _nested(900)}, "attrs nest more than 100 levels deep"),  # was a RecursionError traceback
    ("error", {"a": 1}, "error must be a text"),  # was an AttributeError in the storage's write
    ("params", {"x": 10**400, "k": "a"}, "'x': value must be a finite number"),  # was an OverflowError
])  # fmt: skip
def test_an_export_file_with_a_trial_of_wrong_types_is_refused_naming_the_trial(
    tmp_path: Path, field: str, value: Any, said: str
) -> None:
    doc = _exported(tmp_path)
    doc["trials"][1][field] = value
    with pytest.raises(ValueError, match=f"trial 1: .*{said}"):
        import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp")
    assert make_storage(f"sqlite:///{tmp_path / 'new.db'}").list_studies() == []  # nothing half imported
    assert len(import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp", skip_invalid=True).trials) == 1


@pytest.mark.parametrize(("attrs", "said"), [([1], "attrs must be a dict"), ({"a": _nested(900)}, "attrs nest more than 100 levels deep")])
def test_an_export_file_with_a_waiting_trial_of_wrong_attrs_is_refused_naming_the_trial(
    tmp_path: Path, attrs: Any, said: str
) -> None:
    doc = _exported(tmp_path)
    doc["trials"][1].update(state="waiting", attrs=attrs)  # queued again by enqueue: its attrs were raised raw
    with pytest.raises(ValueError, match=f"trial 1: enqueue: {said}"):
        import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp")


def test_an_export_file_s_trial_numbers_reach_the_terminal_escaped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    escapes = "\x1b]52;c;cHduZWQ=\x07\x1b[2J"  # a clipboard write, a cleared screen
    doc = _exported(tmp_path)
    doc["trials"][1].update(number="9" + escapes, params={"x": 5.0, "k": "a"})
    doc["test_results"] = [{"trial": escapes}]
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp", skip_invalid=True)
    said = [r.getMessage() for r in caplog.records]
    assert any("trial '9\\x1b]52" in m for m in said) and any("test result of trial '\\x1b" in m for m in said)
    assert not any("\x1b" in m or "\x07" in m for m in said), said


def test_an_export_file_with_a_test_result_beyond_a_float_is_refused_by_name(tmp_path: Path) -> None:
    doc = _exported(tmp_path)
    doc["test_results"] = [{"trial": 0, "params": {}, "validation": 10**400, "values": [], "seeds": []}]
    with pytest.raises(ValueError, match="test_results: the result of trial .*OverflowError"):  # was raised raw
        import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp")


def test_an_export_file_refused_at_its_second_test_result_leaves_no_test_results_behind(tmp_path: Path) -> None:
    """The first result made the companion "imp:test"; the refusal deleted "imp" only, and a
    second try was refused: "a study named 'imp:test' ... already exists"."""
    doc = _exported(tmp_path)
    good = {"trial": 0, "params": doc["trials"][0]["params"], "validation": 0.5, "values": [0.4], "seeds": [0]}
    doc["test_results"] = [good, {**good, "trial": 1, "validation": "bad"}]
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(ValueError, match="test_results: the result of trial"):
        import_study(doc, url, "imp")
    assert make_storage(url).list_studies() == []
    doc["test_results"] = [good]
    assert len(import_study(doc, url, "imp").trials) == 2


def test_an_export_file_of_many_notes_is_imported_in_linear_time(tmp_path: Path) -> None:
    """Each note was written on its own, a compare-and-set write of all the notes before it:
    quadratic, minutes for 20,000. The SQL statements are counted (timed by
    benchmarks/bench_history.py notes)."""
    import sqlalchemy as sa

    doc = _exported(tmp_path)
    doc["study"]["notes"] = [{"time": 1.0, "text": f"note {i}"} for i in range(2_000)]
    statements = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        study = import_study(doc, f"sqlite:///{tmp_path / 'new.db'}", "imp")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert len(statements) < 200, len(statements)  # before: 10,030, five for each note
    assert [n["text"] for n in study.notes[:2]] == ["note 0", "note 1"] and len(study.notes) == 2_000
    assert study.notes[0]["time"] == 1.0


def test_an_export_file_of_an_integer_of_5000_digits_is_named_in_the_message(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_exported(tmp_path)).replace('"value": ', '"value": 1' + "0" * 5000 + ", \"v\": ", 1))
    assert main(["import", str(path), "imp", "--storage", f"sqlite:///{tmp_path / 'new.db'}"]) == 2
    assert f"cannot read {str(path)!r} as a study exported as JSON" in capsys.readouterr().err


# -- a study shared in a database -----------------------------------------------------------------


def test_attributes_nested_hundreds_deep_by_another_writer_are_read_as_a_failed_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row whose attrs nest 700 levels (json.loads takes it) ended export (json and csv) with a
    RecursionError and made the dashboard's trial JSON a 500; now it is read as a failed trial whose
    error names the column, as other rows that tunesmith did not write are."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    with sqlite3.connect(tmp_path / "d.db") as db:
        db.execute("UPDATE ts_trials SET attrs = ? WHERE number = 0", (json.dumps({"a": _nested(700)}),))
    for fmt in ("json", "csv"):
        assert main(["export", "s", "--storage", url, "--format", fmt, "-o", str(tmp_path / f"s.{fmt}")]) == 0
    trial = json.loads((tmp_path / "s.json").read_text())["trials"][0]
    assert trial["state"] == "failed" and "column attrs of trial 0" in trial["error"] and "100 levels" in trial["error"]
    from starlette.testclient import TestClient

    from tunesmith.dashboard.app import create_app

    client = TestClient(create_app(make_storage(url, read_only=True)))
    assert client.get("/api/studies/s/trials/0").status_code == 200
    with pytest.raises(ValueError, match="set_attr: attrs nest more than 100 levels deep"):
        study.ask().set_attr("a", _nested(150))  # what a worker stores reads back


def test_a_row_read_as_unreadable_is_warned_about_once_not_also_as_unfit(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A trial whose attrs another writer made other than JSON is read as a failed trial without
    parameters, with a warning naming the column; the study then warned again that its parameters
    do not fit the space ("parameter 'x' is missing"), which the first warning already explains."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="tpe", seed=0).optimize(lambda t: t.params["x"], n_trials=3)
    with sqlite3.connect(tmp_path / "d.db") as db:
        db.execute("UPDATE ts_trials SET attrs = '{not json' WHERE number = 0")
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        study = ts.Study.load("s", url)
        study.optimize(lambda t: t.params["x"], n_trials=2)
    said = [r.getMessage() for r in caplog.records if "trial 0" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("unreadable record: column attrs of trial 0"), said
    assert study.trials[0].state is ts.TrialState.FAILED and len(study.trials) == 5


def test_a_rename_whose_test_results_name_was_taken_meanwhile_is_undone(tmp_path: Path) -> None:
    """Another writer makes "b:test" between the rename's check and the rename of the test results
    (here a trigger of the real database, fired by the first rename): before, "a" was renamed "b"
    and its test results stayed as "a:test", so "b" lost them and a new "a" would show them."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    doc = _exported(tmp_path)
    doc["test_results"] = [{"trial": 0, "params": doc["trials"][0]["params"], "validation": 0.5, "values": [0.4],
                            "seeds": [0]}]
    study = import_study(doc, url, "a")
    with sqlite3.connect(tmp_path / "d.db") as db:
        db.execute("CREATE TRIGGER peer AFTER UPDATE OF name ON ts_studies WHEN new.name = 'b' BEGIN "
                   "INSERT INTO ts_studies (name, direction, space, config, created) "
                   "SELECT 'b:test', direction, space, config, created FROM ts_studies WHERE name = 'a:test'; END")
    with pytest.raises(ts.DuplicateStudyError, match="'b:test' already exists"):
        study.rename("b")
    names = {r.name for r in make_storage(url).list_studies()}  # the trigger's "b:test" is rolled back with the
    assert {"a", "a:test"} <= names and "b" not in names  # rename: both are written in one transaction
    assert study.name == "a" and len(ts.load_study("a", url).trials) == 2


def test_a_new_study_or_focus_does_not_take_test_results_another_writer_left(tmp_path: Path) -> None:
    """"f:test" written by another program (or left when it deleted "f" alone): a new study "f",
    made by Study() or by focus, showed those test results as its own; copy, import and rename
    already refused the name."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    doc = _exported(tmp_path)
    doc["test_results"] = [{"trial": 0, "params": doc["trials"][0]["params"], "validation": 0.5, "values": [0.4],
                            "seeds": [0]}]
    source = import_study(doc, url, "f")
    make_storage(url).delete_study("f")  # by name, outside tunesmith: "f:test" stays
    with pytest.raises(ts.DuplicateStudyError, match="'f:test' \\(the test results of a study named 'f'\\)"):
        ts.Study(SPACE, storage=url, name="f")
    with pytest.raises(ts.DuplicateStudyError, match="'f:test'"):
        import_study(doc, url, "g").focus(["x"], name="f")
    assert source.name == "f" and "f" not in {r.name for r in make_storage(url).list_studies()}


# -- the dashboard as a web server ---------------------------------------------------------------


def test_the_dashboard_closes_connections_that_send_no_whole_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slowloris: connections that send part of a request and wait held the server's file
    descriptors forever (a thousand made it answer nobody). Now the one waiting longest is closed
    when too many wait, and any after REQUEST_S; a whole request is answered meanwhile."""
    uvicorn = pytest.importorskip("uvicorn")
    from pg import free_port

    from tunesmith.dashboard import server

    url = f"sqlite:///{tmp_path / 'd.db'}"
    ts.Study(SPACE, storage=url, name="s").add_trial({"x": 0.5, "k": "a"}, 0.5)
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    port = free_port()
    assert main(["dashboard", "--storage", url, "--port", str(port)]) == 0
    monkeypatch.setattr(server, "REQUEST_S", 1.5)
    monkeypatch.setattr(server, "MAX_WAITING", 5)
    config = uvicorn.Config(served["app"], host="127.0.0.1", port=port, log_level="warning",
                            http=served.get("http", "h11"))
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    try:
        while not web.started:
            time.sleep(0.05)
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        for s in stalled:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line that ends it
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as answer:
            assert json.loads(answer.read())["studies"][0]["name"] == "s"
        time.sleep(0.5)
        assert sum(_open(s) for s in stalled) <= 5  # the oldest closed
        time.sleep(1.5)
        assert sum(_open(s) for s in stalled) == 0  # every one past its time
    finally:
        web.should_exit = True
        thread.join(10)


def test_the_dashboard_drops_a_client_that_reads_nothing_of_a_large_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that asked for a trial's JSON of 20 MB and read none of it kept the answer in the
    server's memory for as long as it stayed connected; now it is dropped after REQUEST_S."""
    uvicorn = pytest.importorskip("uvicorn")
    from pg import free_port

    from tunesmith.dashboard import server

    url = f"sqlite:///{tmp_path / 'd.db'}"
    ts.Study(SPACE, storage=url, name="s").add_trial({"x": 0.5, "k": "a"}, 0.5, attrs={"log": "x" * 20_000_000})
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    port = free_port()
    assert main(["dashboard", "--storage", url, "--port", str(port)]) == 0
    monkeypatch.setattr(server, "REQUEST_S", 1.0)
    web = uvicorn.Server(uvicorn.Config(served["app"], host="127.0.0.1", port=port, log_level="warning",
                                        http=served.get("http", "h11")))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    try:
        while not web.started:
            time.sleep(0.05)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /api/studies/s/trials/0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(4)  # reads nothing meanwhile
        got = 0
        client.settimeout(5)
        try:
            while chunk := client.recv(1 << 20):
                got += len(chunk)
        except OSError:  # reset: the server dropped what it had not sent
            pass
        assert got < 20_000_000
    finally:
        web.should_exit = True
        thread.join(10)


def _open(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        return s.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_another_site_in_chromium_can_neither_change_nor_read_a_dashboard(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """The attacker's tool is a browser: a page of another origin auto-posts the note form (no
    token: 403, no note), fetches the studies (no CORS: unreadable), and a name of its own
    resolved to 127.0.0.1 (DNS rebinding) gets 421. The server runs with --allow-writes."""
    import http.server
    import os
    import signal
    import subprocess
    import sys

    from browser import BROWSER_ARGS, CHROMIUM, browser_or_skip
    from pg import free_port

    sync_api = browser_or_skip()
    url = f"sqlite:///{tmp_path / 'd.db'}"
    ts.Study(SPACE, storage=url, name="s").add_trial({"x": 0.5, "k": "a"}, 0.5)
    port, evil_port = free_port(), free_port()
    dash = f"http://127.0.0.1:{port}"
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "index.html").write_text(
        "<form id=f method=post action='" + dash + "/studies/s/notes' target=sink>"
        "<input name=text value=owned><input name=confirm value=yes></form><iframe name=sink></iframe><script>"
        "fetch('" + dash + "/api/studies').then(r => r.text()).then(t => { window.read = t; })"
        ".catch(e => { window.read = 'blocked'; }); document.getElementById('f').submit();</script>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "evil"))  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", evil_port), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "dashboard", "--storage", url, "--port", str(port),
                             "--allow-writes"], env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(dash + "/api/studies", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=[*BROWSER_ARGS, "--host-resolver-rules=MAP rebound.test 127.0.0.1"])
            try:
                page = browser.new_page()
                posted: list[int] = []
                page.on("response", lambda r: posted.append(r.status) if r.url.endswith("/notes") else None)
                page.goto(f"http://127.0.0.1:{evil_port}/index.html")
                page.wait_for_function("window.read !== undefined", timeout=20_000)
                assert page.evaluate("window.read") == "blocked"
                for _ in range(50):
                    if posted:
                        break
                    page.wait_for_timeout(100)
                assert posted == [403]  # the form was posted, and refused: it has no token
                answer = page.goto(f"http://rebound.test:{port}/api/studies")
                assert answer is not None and answer.status == 421
            finally:
                browser.close()
        assert ts.load_study("s", url).notes == []
    finally:
        evil.shutdown()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_an_integer_attribute_too_long_for_json_text_is_refused_by_name(tmp_path: Path) -> None:
    """An int of 5,000 digits passed the attributes' check: the SQLite write ended in json's
    "Exceeds the limit (4300 digits)" naming no attribute, and a study in memory kept it and then
    failed its export the same way."""
    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'd.db'}", name="s", sampler="random")
    trial = study.ask()
    with pytest.raises(ValueError, match=r"trial 0: set_attr: attribute 'big' is an integer of more than 4300 digits"):
        trial.set_attr("big", 10**5000)
    trial.set_attr("fine", 10**4000)  # long, but JSON text holds it
    study.tell(trial, 0.5)
    assert ts.load_study("s", study.storage).trials[0].attrs["fine"] == 10**4000
    memory = ts.Study({"x": ts.Float(0, 1)}, sampler="random")
    with pytest.raises(ValueError, match=r"enqueue: attribute 'n' is an integer of more than"):
        memory.enqueue({"x": 0.5}, attrs={"n": [-(10**5000)]})
    assert memory.trials == []


@pytest.mark.parametrize("attrs", [
    {"overfit_at": 10**400},  # an int that JSON keeps whole, beyond a float's range
    {"overfit_at": 2, "curves": {"gap": [0.1, 10**400]}},
    {"curves": {"val_loss": [0.5, 10**400, 0.3], "train_loss": [0.4, -(10**400), 0.2]}},
    {"adapted_lr": {"w/decay": [10**400, 0.01, 0.02]}, "overfit_at": 1},
    {"test_value": 10**400},
])  # fmt: skip
def test_numbers_beyond_a_float_in_a_trained_trial_s_attributes_leave_show_report_and_plots_readable(
        tmp_path: Path, attrs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "OverflowError: int too large to convert to float" from show, report, plot and the
    dashboard's overfitting plot (500), for a number another writer (or an objective) stored."""
    pytest.importorskip("plotly")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url = f"sqlite:///{tmp_path / 'big.db'}"

    def objective(t: ts.Trial) -> float:
        for step in (1, 2, 3):
            t.report(1.0 / step, step)
        return t.params["x"]

    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=2)
    with sqlite3.connect(tmp_path / "big.db") as db:
        db.execute("UPDATE ts_trials SET attrs = ?", (json.dumps(attrs),))
    for args in (["show", "s"], ["report", "s", "-o", str(tmp_path / "r.html")],
                 ["plot", "s", "--kind", "overfitting", "-o", str(tmp_path / "o.html")]):
        assert main([*args, "--storage", url]) == 0, args
    assert "OverflowError" not in capsys.readouterr().err
    c = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
    assert c.get("/api/studies/s/plots/overfitting").status_code == 200
    assert c.get("/api/studies/s/trials/0/curve").status_code == 200


@pytest.mark.parametrize("record", [
    {"folds": 5, "key": "score", "scores": {"score": [0.5, 0.7]}, "mean": 0.6, "std": 10**400},
    {"folds": 5, "key": ["score"], "scores": {"score": [0.5]}, "mean": 0.5, "std": 0.0},  # unhashable: a TypeError
    {"folds": 5, "key": "score", "scores": {"score": "0.5, 0.7"}, "mean": 0.6, "std": 0.1},
])  # fmt: skip
def test_fold_scores_another_writer_stored_leave_show_and_the_report_readable(
        tmp_path: Path, record: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("plotly")
    url = f"sqlite:///{tmp_path / 'cv.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    with sqlite3.connect(tmp_path / "cv.db") as db:
        db.execute("UPDATE ts_trials SET attrs = ?", (json.dumps({"cv": record}),))
    for args in (["show", "s"], ["report", "s", "-o", str(tmp_path / "r.html")]):
        assert main([*args, "--storage", url]) == 0, args
    out = capsys.readouterr().out
    assert "spread over folds" in out and "± " not in out  # the column, each cell empty
