"""The dashboard's endpoints through Starlette's test client, on real SQLite studies: pages, JSON,
the live "changes since" endpoint, server-side reduction of large studies, bad input, and the
--allow-writes actions behind their confirmation."""

from __future__ import annotations

import contextlib
import errno
import html
import io
import json
import os
import re
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")
pytest.importorskip("plotly")
pytest.importorskip("httpx")

from pg import free_port  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.cli import main  # noqa: E402
from tunesmith.dashboard import create_app, open_storage  # noqa: E402
from tunesmith.dashboard.aggregate import MAX_POINTS, SAMPLE, sample, thin  # noqa: E402
from tunesmith.exceptions import SchemaVersionError, StorageError  # noqa: E402
from tunesmith.plots import history_data, snapshot  # noqa: E402
from tunesmith.plots.reduce import sampled_note  # noqa: E402
from tunesmith.storage import SCHEMA_VERSION  # noqa: E402

SPACE = {"x": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True), "kind": ts.Categorical(["a", "b"])}


def objective(trial: ts.Trial) -> float:
    p = trial.params
    if p["x"] > 0.9:
        raise RuntimeError("diverged at x > 0.9")
    for step in range(1, 6):
        trial.report(p["x"] + 1 / step, step)
    return (p["x"] - 0.3) ** 2 + (0.1 if p["kind"] == "b" else 0.0)


@pytest.fixture(scope="module")
def _studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database every ``url`` test starts from, made once for the module (40 trials)."""
    path = tmp_path_factory.mktemp("dash") / "dash.db"
    url = f"sqlite:///{path}"
    s = ts.Study(SPACE, storage=url, name="alpha", sampler="random", seed=0)
    s.optimize(objective, n_trials=30, catch=(RuntimeError,))
    running = s.ask()  # stays running: the one a worker holds now
    running.report(0.7, 1)
    s.enqueue({"x": 0.5, "lr": 0.01, "kind": "a"})
    b = ts.Study(SPACE, storage=url, name="beta", sampler="random", seed=1, direction="minimize")
    b.optimize(objective, n_trials=10, catch=(RuntimeError,))
    return path


@pytest.fixture()
def url(_studies: Path, tmp_path: Path) -> str:
    """A copy of :func:`_studies`' database of this test's own, which it may write to (SQLite's backup:
    whole, with what is still in the write-ahead log)."""
    copy = tmp_path / "dash.db"
    with contextlib.closing(sqlite3.connect(_studies)) as src, contextlib.closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    return f"sqlite:///{copy}"


def client(url: str, **kw: Any) -> TestClient:
    return TestClient(create_app(open_storage(url, allow_writes=kw.get("allow_writes", False)), **kw))


def test_the_studies_page_and_api_list_each_study_with_its_counts_and_best(url: str) -> None:
    c = client(url)
    page = c.get("/")
    assert page.status_code == 200
    for text in ("alpha", "beta", "random", "minimize", "failed", "running", "waiting"):
        assert text in page.text, text
    studies = {s["name"]: s for s in c.get("/api/studies").json()["studies"]}
    alpha = ts.load_study("alpha", url)
    assert studies["alpha"]["trials"] == len(alpha.trials)
    assert studies["alpha"]["best"] == {"number": alpha.best_trial.number, "value": alpha.best_value}
    assert studies["alpha"]["states"]["running"] == 1 and studies["alpha"]["states"]["waiting"] == 1
    assert studies["alpha"]["last_activity"] > 0


def test_the_study_page_and_every_plot_endpoint(url: str) -> None:
    c = client(url)
    page = c.get("/studies/alpha")
    assert page.status_code == 200 and "data-src='/api/studies/alpha/plots/history'" in page.text
    assert "<script src='/static/plotly.min.js'>" in page.text and "http" not in re.sub(r"<a [^>]*>", "", page.text)
    for kind in ("history", "curves", "process", "parallel", "slice", "contour", "overfitting"):
        body = c.get(f"/api/studies/alpha/plots/{kind}").json()
        assert body["plots"], kind
        assert all(p["kind"] == kind and "data" in p["figure"] for p in body["plots"]), kind
    history = c.get("/api/studies/alpha/plots/history").json()["plots"][0]
    xs = sorted(x for tr in history["figure"]["data"] if tr["mode"] == "markers" for x in tr["x"])
    finished = [t.number for t in ts.load_study("alpha", url).trials if t.state.value in ("complete", "pruned")]
    assert xs == finished
    assert c.get("/api/studies/alpha/plots/nope").status_code == 404


def test_the_changes_endpoint_says_when_trials_arrive(url: str) -> None:
    c = client(url, poll_seconds=0.5)
    first = c.get("/api/studies/alpha/changes?since=").json()
    assert first["changed"] and first["summary"]["trials"] == 32
    same = c.get(f"/api/studies/alpha/changes?since={first['version']}").json()
    assert same == {"version": first["version"], "changed": False}
    ts.load_study("alpha", url).add_trial({"x": 0.31, "lr": 0.01, "kind": "a"}, -1.0)
    import time

    time.sleep(0.6)  # past the minimum interval between two reads of a study
    after = c.get(f"/api/studies/alpha/changes?since={first['version']}").json()
    assert after["changed"] and after["summary"]["trials"] == 33 and after["summary"]["best"] == {"number": 32, "value": -1.0}
    # the page's lines and its trials table as the page renders them (one time format, newest first here)
    paged = c.get(f"/api/studies/alpha/changes?since={first['version']}&order=-number&limit=5").json()["html"]
    page = c.get("/studies/alpha?order=-number&limit=5").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", paged["last"]) and f"<span id='last'>{paged['last']}<" in page
    assert f"<span id='best'>{paged['best']}<" in page and paged["best"] == "-1 (#32)"
    assert f"<div id='trials'>{paged['trials']}</div>" in page and ">32</a>" in paged["trials"]
    assert paged["trials"].count("<tr>") - 1 == 5  # the page's 5 rows (a head row and 5)


def test_a_lost_trial_s_seconds_end_at_its_last_heartbeat_and_a_deleted_checkpoint_is_said_gone(
        tmp_path: Path) -> None:
    """A trial whose worker was killed ran "seconds" to when another worker judged it lost (a grace period
    later, or a day later where no worker came by), and its checkpoint folder, tidied away since, was shown
    as if it were there. A folder still there, and another machine's, are shown as they are."""
    import shutil

    url = f"sqlite:///{tmp_path / 'lost.db'}"
    study = ts.Study(SPACE, storage=url, name="s", heartbeat_interval=1, grace_period=5)
    storage, sid = open_storage(url, allow_writes=True), study._study_id
    start = time.time() - 100
    for n, (host, folder) in enumerate([(socket.gethostname(), "gone"), (socket.gethostname(), "kept"),
                                        ("elsewhere.example", "gone")]):
        (tmp_path / folder).mkdir(exist_ok=True)
        storage.create_trial(sid, params={"x": 0.5, "lr": 0.01, "kind": "a"}, worker=f"{host}:4194304#{n}",
                             now=start, attrs={"checkpoint": str(tmp_path / folder)})
        storage.heartbeat(sid, [n], start + 12.5)  # its worker killed after 12.5 s
    shutil.rmtree(tmp_path / "gone")
    assert [t.number for t in study._heartbeat.reap(force=True)] == [0, 1, 2]  # judged lost ~87.5 s later
    c = client(url)
    pages = [c.get(f"/studies/s/trials/{n}").text for n in range(3)]
    seconds = re.search(r"<td[^>]*>seconds</td><td[^>]*>([^<]*) <span class='note'>\(to its last heartbeat; "
                        r"judged lost ([0-9.]+) s later\)", pages[0])
    assert seconds is not None and seconds.group(1) == "12.5" and 85 < float(seconds.group(2)) < 120, pages[0]
    assert f"{tmp_path / 'gone'} <span class='note'>(gone: deleted since)</span>" in pages[0]
    assert str(tmp_path / "kept") in pages[1] and "(gone" not in pages[1]
    assert str(tmp_path / "gone") in pages[2] and "(gone" not in pages[2]  # another machine's: not looked for
    table = c.get("/studies/s").text
    assert table.count("<td>12.5</td>") == 3, table
    assert c.get("/api/studies/s/trials/0").json()["duration"] == pytest.approx(12.5)  # as the pages: not ~100
    assert [t["duration"] for t in c.get("/api/studies/s/trials").json()["trials"]] == pytest.approx([12.5] * 3)


def test_the_trial_page_and_api_show_everything_of_a_trial(url: str) -> None:
    c = client(url)
    alpha = ts.load_study("alpha", url)
    failed = next(t for t in alpha.trials if t.state.value == "failed")
    page = c.get(f"/studies/alpha/trials/{failed.number}")
    assert page.status_code == 200 and "diverged at x &gt; 0.9" in page.text and "worker" in page.text
    data = c.get(f"/api/studies/alpha/trials/{failed.number}").json()
    assert data["state"] == "failed" and data["error"] == failed.error and data["params"] == dict(failed.params)
    done = alpha.best_trial
    data = c.get(f"/api/studies/alpha/trials/{done.number}").json()
    assert data["intermediate"] == {str(k): v for k, v in done.intermediate.items()}
    assert data["duration"] == pytest.approx(done.duration)
    curve = c.get(f"/api/studies/alpha/trials/{done.number}/curve").json()["plots"][0]
    line = curve["figure"]["data"][0]
    assert line["x"] == sorted(done.intermediate) and line["y"] == [done.intermediate[k] for k in line["x"]]


def test_the_trials_table_is_paged_filtered_and_sorted_on_the_server(url: str) -> None:
    c = client(url)
    alpha = ts.load_study("alpha", url)
    body = c.get("/api/studies/alpha/trials?limit=5&offset=5").json()
    assert body["total"] == len(alpha.trials) and [t["number"] for t in body["trials"]] == [5, 6, 7, 8, 9]
    best = c.get("/api/studies/alpha/trials?order=best&limit=3").json()["trials"]
    ranked = sorted(alpha.trials_in("complete"), key=lambda t: t.value)[:3]
    assert [t["number"] for t in best] == [t.number for t in ranked]
    failed = c.get("/api/studies/alpha/trials?state=failed").json()
    assert failed["total"] == len(alpha.trials_in("failed")) and {t["state"] for t in failed["trials"]} == {"failed"}
    page = c.get("/studies/alpha?limit=10&offset=10&order=-number")
    assert page.status_code == 200 and "showing 11-20" in page.text
    assert c.get("/api/studies/alpha/trials?order=sideways").status_code == 400
    assert c.get("/api/studies/alpha/trials?limit=-3").status_code == 400
    empty = c.get("/studies/alpha?limit=0")  # was a page "showing 1-0" with a "next" link
    assert empty.status_code == 400 and "limit must be a whole number &gt;= 1, not &#x27;0&#x27;" in empty.text



def test_a_page_past_the_last_trial_says_so_and_links_the_last_page(url: str) -> None:
    """A filtered page that trials left while it was open (2 running trials of a page 2 finish, and the
    live update re-renders it), or an offset typed past the end: the pager said "showing 51-1" with a
    "previous" link to another empty page."""
    c = client(url)
    total = len(ts.load_study("alpha", url).trials)
    page = c.get(f"/studies/alpha?limit=10&offset={total + 95}").text
    assert f"showing none: the last page starts at {(total - 1) // 10 * 10 + 1}" in page, page
    assert f"?offset={(total - 1) // 10 * 10}&amp;limit=10&amp;order=number'>previous</a>" in page
    running = c.get("/api/studies/alpha/changes?since=0&state=running&offset=50&limit=50").json()["html"]["trials"]
    assert "1 trial running; showing none: the last page starts at 1" in running
    assert "offset=0&amp;limit=50&amp;order=number&amp;state=running'>previous</a>" in running


def test_a_study_deleted_and_made_again_under_its_name_is_a_change(url: str) -> None:
    """An open page of 'beta' while a script deletes beta and makes a new, empty beta (a notebook run
    again): the new study's first version was the old one's, so the page kept showing the old trials."""
    c = client(url)
    version = c.get("/api/studies/beta").json()["version"]
    ts.load_study("beta", url).delete()
    ts.Study(SPACE, storage=url, name="beta", sampler="random", seed=1)
    changes = c.get(f"/api/studies/beta/changes?since={version}").json()
    assert changes["changed"] and changes["summary"]["trials"] == 0, changes

def test_a_page_left_open_across_a_restart_of_the_dashboard_sees_what_changed_meanwhile(url: str) -> None:
    """A study page kept open while the dashboard was stopped, trials were added and the dashboard
    started again: both runs called the study's first state version 1, so the page's poll heard
    "unchanged" and it showed the old trials under "live: checked" until the next change."""
    version = client(url).get("/api/studies/beta").json()["version"]
    ts.load_study("beta", url).optimize(objective, n_trials=3, catch=(RuntimeError,))
    changes = client(url).get(f"/api/studies/beta/changes?since={version}").json()
    assert changes["changed"] and changes["summary"]["trials"] == 13, changes


def test_importance_and_comparison(url: str) -> None:
    pytest.importorskip("sklearn")
    c = client(url)
    assert c.get("/studies/alpha/importance").status_code == 200
    bars = c.get("/api/studies/alpha/importance").json()["plots"][0]
    assert bars["kind"] == "importance" and set(bars["figure"]["data"][0]["y"]) >= {"x", "kind"}
    assert c.get("/api/studies/alpha/importance?method=ped-anova").status_code == 200
    assert c.get("/api/studies/alpha/importance?method=guess").status_code == 400
    assert c.get("/api/studies/alpha/importance?method=ped_anova").status_code == 200  # as study.importance
    assert "alpha" in c.get("/compare?study=alpha&study=beta").text
    fig = c.get("/api/compare?study=alpha&study=beta").json()["plots"][0]["figure"]
    assert {tr["name"].split(" ")[0] for tr in fig["data"] if tr["name"]} == {"alpha", "beta"}  # and unnamed end marks
    assert c.get("/api/compare").status_code == 400
    assert c.get("/compare?study=alpha&study=gamma").status_code == 404


def test_a_study_named_twice_in_a_comparison_is_drawn_once(url: str) -> None:
    """/compare?study=alpha&study=alpha (a link edited by hand, a study checked on the list and kept in
    the address): the chart said "two studies named 'alpha': pass {label: [study, ...]} to label them",
    advice for Python, in place of the plot."""
    c = client(url)
    fig = c.get("/api/compare?study=alpha&study=beta&study=alpha").json()["plots"][0]["figure"]
    assert sorted(tr["name"].split(" ")[0] for tr in fig["data"] if tr["name"]) == ["alpha", "beta"]
    assert "<h1>Compare: alpha, beta</h1>" in c.get("/compare?study=alpha&study=beta&study=alpha").text


def test_unknown_names_get_a_404_page_or_json(url: str) -> None:
    c = client(url)
    page = c.get("/studies/gamma")
    assert page.status_code == 404 and "no study named &#x27;gamma&#x27;" in page.text and "<h1>Not found" in page.text
    assert c.get("/studies/alpha/trials/999").status_code == 404
    assert c.get("/studies/alpha/trials/x").status_code == 404
    bad = c.get("/api/studies/alpha/trials?state=complet")
    assert bad.status_code == 400 and "state must be one of" in bad.json()["error"]
    assert c.get("/studies/alpha?state=complet").status_code == 400
    assert c.get("/no/such/page").status_code == 404
    assert c.get("/api/studies/gamma").json() == {"error": f"no study named 'gamma' in {url}"}
    assert c.get("/api/studies/alpha/trials/999").status_code == 404


def test_the_plotly_js_is_served_from_the_installed_package() -> None:
    import plotly

    c = TestClient(create_app(ts.MemoryStorage()))
    js = c.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.content == (Path(plotly.__file__).parent / "package_data/plotly.min.js").read_bytes()
    assert "Plotly.react" in c.get("/static/dashboard.js").text


def test_a_large_study_is_reduced_on_the_server(tmp_path: Path) -> None:
    n = 6_000
    s = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'big.db'}", name="big", sampler="random", seed=0)
    for i in range(n):
        s.add_trial({"x": (i * 0.618) % 1, "lr": 0.01, "kind": "a"}, ((i * 0.618) % 1 - 0.3) ** 2 + 1 / (i + 1))
    c = TestClient(create_app(s.storage))
    history = c.get("/api/studies/big/plots/history").json()["plots"][0]["figure"]["data"]
    markers = next(tr for tr in history if tr["mode"] == "markers")
    assert len(markers["x"]) <= MAX_POINTS
    best = next(tr for tr in history if tr["name"] == "best so far")
    assert best["y"][-1] == pytest.approx(s.best_value)  # thinning keeps every step of the best line
    assert min(markers["y"]) == pytest.approx(s.best_value)  # and each bucket's extremes
    parallel = c.get("/api/studies/big/plots/parallel").json()["plots"][0]
    assert "of 6000 trials" in parallel["note"] and len(parallel["figure"]["data"][0]["line"]["color"]) <= SAMPLE
    rows = c.get("/api/studies/big/trials?limit=100000").json()["trials"]
    assert len(rows) == 500  # a page, never the whole study


def test_thinning_and_sampling_keep_what_matters() -> None:
    s = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
    for i in range(9000):
        s.add_trial({"x": (i * 0.37) % 1}, -5.0 if i == 4321 else float((i * 7919) % 1000))
    chart = history_data(s)
    small = thin(chart, 1000)
    for full, cut in zip(chart.series, small.series, strict=True):
        assert len(cut.x) <= 1000
        assert min(cut.y) == min(full.y) and max(cut.y) == max(full.y)
    few = sample(snapshot(s), 300)
    assert len(few.trials) <= 300 and any(t.number == 4321 for t in few.trials)


def test_sampling_keeps_exactly_the_limit_whether_or_not_the_best_falls_on_the_grid() -> None:
    """With the best among the evenly spaced trials (here trial 0), 999 of 1,000 were kept."""
    for best_at in (0, 777, 2999):
        s = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
        for i in range(3000):
            s.add_trial({"x": i / 3000}, -1.0 if i == best_at else float(i % 97))
        for limit in (SAMPLE, 300, 2):
            few = sample(snapshot(s), limit)
            numbers = [t.number for t in few.trials]
            assert len(numbers) == limit == len(set(numbers)) and best_at in numbers
            assert numbers == sorted(numbers)
        assert sampled_note(sample(snapshot(s)), snapshot(s)) == \
            f"computed on {SAMPLE} of 3000 trials (evenly spaced, and the best)"


# -- bad input at start ----------------------------------------------------------------------


def test_a_storage_that_cannot_be_opened_is_refused_at_start_with_a_clear_message(tmp_path: Path,
                                                                                 capsys: Any) -> None:
    with pytest.raises(StorageError, match="no SQLite database at .*missing.db"):
        open_storage(f"sqlite:///{tmp_path / 'missing.db'}")
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no SQLite database" in capsys.readouterr().err
    ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'boost.db'}", name="xgb")
    with pytest.raises(StorageError, match=re.escape(f"check the path (in its folder: --storage sqlite:///{tmp_path / 'boost.db'})")):
        open_storage(f"sqlite:///{tmp_path / 'missing.db'}")  # the study went to boost.db, the dashboard read another
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="junk.db"):
        open_storage(f"sqlite:///{tmp_path / 'junk.db'}")
    with pytest.raises(ValueError, match="reads a database"):
        open_storage("memory")


def test_a_database_under_the_home_folder_opens_by_a_tilde_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'sqlite:///~/runs.db' was refused ("no SQLite database at '~/runs.db'") though the file was there:
    the check looked for a folder named "~", where the storage (and every other command) expands it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'runs.db'}", name="s")
    assert [r.name for r in open_storage("sqlite:///~/runs.db").list_studies()] == ["s"]
    with pytest.raises(StorageError, match="no SQLite database at '~/gone.db'"):
        open_storage("sqlite:///~/gone.db")


def test_a_database_of_a_newer_schema_is_refused_with_the_version(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE ts_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}, written by a newer"):
        open_storage(url)


def test_binding_beyond_loopback_warns(url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import uvicorn

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    assert main(["dashboard", "--storage", url, "--port", str(free_port())]) == 0
    assert served["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    assert TestClient(served["app"], base_url="http://rebound.example").get("/").status_code == 421  # DNS rebinding
    assert main(["dashboard", "--storage", url, "--host", "0.0.0.0", "--port", str(free_port()), "--allow-writes"]) == 0
    err = capsys.readouterr().err
    assert served["host"] == "0.0.0.0" and "warning: the dashboard listens on 0.0.0.0" in err and "delete" in err


def test_a_missing_package_is_named_at_start(url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "plotly", None)  # as if not installed: it served pages whose plots all failed
    assert main(["dashboard", "--storage", url, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "the dashboard needs plotly: pip install 'tunesmith[dashboard]'" in err and "read " not in err, err


def test_a_port_in_use_is_refused_before_reading_with_a_clear_message(url: str, capsys: Any) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err, err
    assert "read 2 of 2" not in err and "Ctrl-C" not in err  # refused before reading, never claims to serve
    assert main(["dashboard", "--storage", url, "--host", "192.0.2.1", "--port", str(port)]) == 2  # not ours
    assert f"cannot listen on 192.0.2.1:{port}" in capsys.readouterr().err


def _ipv6_loopback_or_skip() -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")


@pytest.mark.parametrize("first", ["bound", "listening"])
def test_a_program_on_localhost_s_other_address_is_refused_before_reading(
        url: str, first: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """A dashboard on 127.0.0.1 left [::1] of its port to anyone: a browser opening http://localhost:PORT/ reached
    their server first, and a page of theirs shares the dashboard's origin (tests/test_dashboard_browser.py shows the
    attack). Another program there is named, before the studies are read, and nothing is served."""
    import uvicorn

    _ipv6_loopback_or_skip()
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    with socket.socket(socket.AF_INET6) as other:
        other.bind(("::1", 0))
        if first == "listening":
            other.listen()
        port = other.getsockname()[1]
        assert main(["dashboard", "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port} safely: another program is bound to [::1]:{port}" in err, err
    assert "http://localhost:" in err and "--port N" in err and "read 2 of 2" not in err and not served, err


def test_no_other_program_can_listen_on_localhost_s_other_address_while_the_dashboard_serves(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    _ipv6_loopback_or_skip()
    tried: list[str] = []

    def run(app: Any, *, host: str, port: int, **kw: Any) -> None:  # another user's server, while it serves
        other = "127.0.0.1" if ":" in host else "::1"
        with socket.socket(socket.AF_INET6 if ":" in other else socket.AF_INET) as theirs:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                theirs.bind((other, port))
                theirs.listen()
                tried.append(f"{other} taken")
            except OSError as exc:
                tried.append(f"{other} {errno.errorcode.get(exc.errno or 0, exc)}")

    monkeypatch.setattr(uvicorn, "run", run)
    port = free_port()
    assert main(["dashboard", "--storage", url, "--port", str(port)]) == 0
    assert main(["dashboard", "--storage", url, "--host", "::1", "--port", str(port)]) == 0
    assert main(["dashboard", "--storage", url, "--host", "127.0.0.2", "--port", str(port)]) == 0  # not localhost's
    assert tried == ["::1 EADDRINUSE", "127.0.0.1 EADDRINUSE", "::1 taken"]
    with socket.socket(socket.AF_INET6) as after:  # given back when the server stops
        after.bind(("::1", port))


def test_localhost_s_other_address_held_by_closed_connections_says_to_wait(url: str, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: Any) -> None:
    """A dashboard on 127.0.0.1 that served a browser and stopped leaves its closed connections on 127.0.0.1:PORT
    for a minute (TIME_WAIT: the server closed them); one started then with --host ::1 on that port cannot hold
    127.0.0.1:PORT, and was told another program was bound there, which none was."""
    import uvicorn

    _ipv6_loopback_or_skip()
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    with socket.create_server(("127.0.0.1", 0)) as before:  # a server that closes its connection first, then stops
        port = before.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as browser:
            conn, _ = before.accept()
            conn.close()
            assert browser.recv(1) == b""
    assert main(["dashboard", "--storage", url, "--host", "::1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"nothing listens on 127.0.0.1:{port}" in err and "start it again in a minute, or pass --port N" in err, err
    assert "another program is bound" not in err and not served, err


def test_the_server_reads_every_study_before_it_answers(url: str, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: Any) -> None:
    """So that the first view of a large study is as fast as any later one."""
    import uvicorn

    from tunesmith.dashboard.figures import STUDY_KINDS

    ready: dict[str, bool] = {}

    def run(app: Any, **kw: Any) -> None:  # what the server knows when it starts answering
        cache = app.state.dashboard.cache
        for name in ("alpha", "beta"):
            memo = cache.view(name).memo
            ready[name] = all(any(k[0] == ("plots", kind) for k in memo) for kind in STUDY_KINDS)

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["dashboard", "--storage", url, "--port", str(free_port())]) == 0
    assert ready == {"alpha": True, "beta": True}
    assert "read 2 of 2 studies in" in capsys.readouterr().err


def test_reading_at_start_stops_at_its_budget_and_says_what_is_left(url: str) -> None:
    from tunesmith.dashboard.server import warm

    app = create_app(open_storage(url))
    records = app.state.dashboard.cache.records()
    assert [r.name for r in warm(app, records, budget_s=0)] == ["alpha", "beta"]
    assert warm(app, records) == []


# -- writes ----------------------------------------------------------------------------------


def _token(c: TestClient, path: str) -> str:
    m = re.search(r"name=token value='([^']+)'", c.get(path).text)
    assert m, "no write form on " + path
    return m.group(1)


def test_the_delete_confirmation_says_the_test_results_go_too(url: str) -> None:
    """Study.delete deletes evaluate_best's test results with the study; the page asking to
    confirm named only the trials."""
    ts.load_study("beta", url).evaluate_best(lambda t: t.params["x"], k=1)
    c = client(url, allow_writes=True)
    ask = c.post("/studies/beta/delete", data={"token": _token(c, "/studies/beta")}).text
    assert "trials and its test results (evaluate_best)? This cannot be undone." in ask
    ask = c.post("/studies/alpha/delete", data={"token": _token(c, "/studies/alpha")}).text
    assert "test results" not in ask and "This cannot be undone." in ask


def test_every_trial_state_has_a_colour_of_its_own(url: str) -> None:
    """Paused and waiting trials were drawn in the text's colour, unlike the other states."""
    page = client(url).get("/studies/alpha").text
    colours = {s.value: re.search(rf"\.state-{s.value}{{color:(#[0-9A-Fa-f]+)}}", page) for s in ts.TrialState}
    assert all(colours.values()), colours
    assert len({m.group(1) for m in colours.values() if m}) == len(ts.TrialState)


def test_writes_are_refused_unless_allowed(url: str) -> None:
    c = client(url)
    assert "name=token" not in c.get("/studies/alpha").text
    r = c.post("/studies/alpha/delete", data={"token": "x", "confirm": "yes"})
    assert r.status_code == 403 and "--allow-writes" in r.text
    assert "alpha" in [s.name for s in open_storage(url).list_studies()]


def test_each_write_asks_for_confirmation_then_applies(url: str) -> None:
    c = client(url, allow_writes=True)
    token = _token(c, "/studies/alpha")
    assert c.post("/studies/alpha/notes", data={"token": "forged", "text": "hi", "confirm": "yes"}).status_code == 403
    ask = c.post("/studies/alpha/notes", data={"token": token, "text": "lr sweep looks flat"})
    assert ask.status_code == 200 and "Confirm" in ask.text and "name=confirm value=yes" in ask.text
    assert c.get("/api/studies/alpha").json()["notes"] == []  # nothing written yet
    done = c.post("/studies/alpha/notes", data={"token": token, "text": "lr sweep looks flat", "confirm": "yes"},
                  follow_redirects=False)
    assert done.status_code == 303
    assert c.get("/api/studies/alpha").json()["notes"][0]["text"] == "lr sweep looks flat"

    number = c.post("/studies/alpha/enqueue", data={"token": token, "params": '{"x": 0.25, "lr": 0.001, "kind": "b"}',
                                                    "confirm": "yes"}, follow_redirects=False)
    queued = int(number.headers["location"].rsplit("/", 1)[1])
    assert ts.load_study("alpha", url).trials[queued].params == {"x": 0.25, "lr": 0.001, "kind": "b"}
    bad = c.post("/studies/alpha/enqueue", data={"token": token, "params": '{"x": 7}', "confirm": "yes"})
    assert bad.status_code == 400 and "x" in bad.text
    assert "<a href='/studies/alpha'>study alpha</a>" in bad.text  # before: only "all studies"

    running = ts.load_study("alpha", url).trials_in("running")[0]
    c.post(f"/studies/alpha/trials/{running.number}/fail", data={"token": token, "error": "stuck GPU"})
    assert ts.load_study("alpha", url).trials[running.number].state.value == "running"  # not confirmed yet
    c.post(f"/studies/alpha/trials/{running.number}/fail", data={"token": token, "error": "stuck GPU", "confirm": "yes"})
    failed = ts.load_study("alpha", url).trials[running.number]
    assert failed.state.value == "failed" and failed.error == "stuck GPU"
    again = c.post(f"/studies/alpha/trials/{running.number}/fail", data={"token": token, "confirm": "yes"})
    assert again.status_code == 400 and "already failed" in again.text

    c.post("/studies/beta/delete", data={"token": token})
    assert "beta" in [s.name for s in open_storage(url).list_studies()]
    c.post("/studies/beta/delete", data={"token": token, "confirm": "yes"})
    assert "beta" not in [s.name for s in open_storage(url).list_studies()]
    assert c.get("/studies/beta").status_code == 404


def test_a_trial_s_attributes_and_an_enqueue_confirmation_show_letters_as_written(tmp_path: Path) -> None:
    """A trial's attributes and the configuration an enqueue asks to confirm were JSON with every
    letter beyond ASCII escaped: the choice "ünï 日本" read ``\\u00fcn\\u00ef \\u65e5\\u672c``."""
    url = f"sqlite:///{tmp_path / 'u.db'}"
    study = ts.Study({"c": ts.Categorical(["ünï 日本", "<b>"])}, storage=url, name="u", sampler="random", seed=0)
    trial = study.ask()
    trial.set_attr("note", "größer 日本 \x1b")
    study.tell(trial, 1.0)
    c = client(url, allow_writes=True)
    page = c.get("/studies/u/trials/0").text
    assert "größer 日本 \\u001b" in page and "\\u00f6" not in page
    ask = c.post("/studies/u/enqueue", data={"token": _token(c, "/studies/u"), "params": '{"c": "ünï 日本"}'}).text
    assert "enqueue {&quot;c&quot;: &quot;ünï 日本&quot;}" in ask and "\\u00fc" not in ask


def test_a_confirmation_posts_back_the_note_as_it_was_written(url: str) -> None:
    """The confirmation page's hidden fields wrote a note's ESC as the text \\x1b (the escape a page
    shows): confirming stored another note than the one written. The fields are posted back as sent."""
    c = client(url, allow_writes=True)
    token = _token(c, "/studies/alpha")
    ask = c.post("/studies/alpha/notes", data={"token": token, "text": "red \x1b[31m <b>'q'"}).text
    assert "<p id='message'>add the note &quot;red \\x1b[31m &lt;b&gt;" in ask  # shown as an escape
    fields = dict(re.findall(r"<input type=hidden name='?(\w+)'? value='([^']*)'>", ask))
    assert c.post("/studies/alpha/notes", data={**{k: html.unescape(v) for k, v in fields.items()}, "confirm": "yes"},
                  follow_redirects=False).status_code == 303
    assert c.get("/api/studies/alpha").json()["notes"][-1]["text"] == "red \x1b[31m <b>'q'"


def test_the_dashboard_reads_a_postgresql_storage(pg_url: str) -> None:
    s = ts.Study(SPACE, storage=pg_url, name="on-pg", sampler="random", seed=0)
    s.optimize(objective, n_trials=12, catch=(RuntimeError,))
    c = client(pg_url)
    assert "on-pg" in c.get("/").text
    summary = c.get("/api/studies/on-pg").json()
    assert summary["trials"] == 12 and summary["best"]["value"] == s.best_value
    history = c.get("/api/studies/on-pg/plots/history").json()["plots"][0]
    assert history["message"] is None and history["figure"]["data"]


def test_the_dashboard_reads_the_test_results_that_the_report_reads(url: str) -> None:
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.study.evaluate import test_results

    study = ts.load_study("beta", url)
    study.evaluate_best(lambda t, seed: t.params["x"] + seed, k=2, seeds=[0, 1])
    cache = StudyCache(ts.storage.make_storage(url))
    expected = {n: r.mean for n, r in test_results(study).items()}
    assert len(expected) == 2 and cache.snapshot(cache.view("beta")).tests == expected == snapshot(study).tests


def _halving_curve(trial: ts.Trial) -> float:
    for step in range(1, 9):
        trial.report(trial.params["x"] / step, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return trial.params["x"] / 8


def test_the_dashboard_draws_the_rungs_that_the_report_draws(tmp_path: Path) -> None:
    # ASHA without max_resource: the last step reported is the full budget, never a rung
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.plots import curves_data

    db = f"sqlite:///{tmp_path / 'r.db'}"
    study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), name="asha", storage=db, sampler="random", seed=0,
                     pruner="asha")

    study.optimize(_halving_curve, n_trials=8)
    cache = StudyCache(ts.storage.make_storage(db))

    def rungs(chart: Any) -> list[Any]:
        return [list(s.x) for s in chart.series if s.mode == "vline"]

    assert rungs(curves_data(study)) == [[2, 4]]
    assert rungs(curves_data(cache.snapshot(cache.view("asha")))) == [[2, 4]]


def test_a_trial_s_page_draws_the_study_s_rungs_and_thick_only_the_best(tmp_path: Path) -> None:
    """A trial's page drew its curve from a snapshot of that trial alone: the budget was learnt from
    it (a trial pruned at rung 2 showed no rung, one pruned at 4 only rung 2), and any complete
    trial was that snapshot's best, drawn thick."""
    from tunesmith.dashboard.figures import trial_curve
    from tunesmith.plots import snapshot

    study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), name="asha", sampler="random", seed=0, pruner="asha")

    study.optimize(_halving_curve, n_trials=12)
    snap = snapshot(study)
    for t in snap.trials:
        fig = trial_curve(snap, t.number)["figure"]
        drawn = [shape["x0"] for shape in fig["layout"].get("shapes", [])]
        assert drawn == [r for r in (2, 4) if r <= max(t.intermediate)], t.number
        width = next(d["line"]["width"] for d in fig["data"] if d.get("mode") == "lines" and d["x"] != [None])
        assert width == (2.5 if t.number == study.best_trial.number else 1.0), t.number


ODD_NAMES = ["<script>alert(1)</script>", "a/b?c#d&e", "my study ü ☃", "x'\"y", "50%2F off", "q?x#y"]


def test_studies_with_odd_names_are_reachable_from_their_links_and_escaped_everywhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    for name in ODD_NAMES:
        ts.Study(SPACE, storage=url, name=name, sampler="random", seed=0).optimize(objective, n_trials=4,
                                                                                 catch=(RuntimeError,))
    c = client(url, allow_writes=True)
    index = c.get("/").text
    links = re.findall(r"<a href='(/studies/[^']*)'>", index)
    assert len(links) == len(ODD_NAMES)
    for link in links:  # a name with "/" (sent as %2F) must not split the path
        page = c.get(link)
        assert page.status_code == 200, (link, page.text[-300:])
        for src in re.findall(r"data-src='([^']*)'", page.text):
            assert c.get(src.replace("&amp;", "&")).status_code == 200, src
        for path in ("/trials/0", "/importance"):
            assert c.get(link + path).status_code == 200, link + path
        api = link.replace("/studies/", "/api/studies/", 1)
        name = c.get(api).json()["name"]
        assert name in ODD_NAMES
        for path in ("/trials/0", "/trials/0/curve", "/changes?since=0", "/trials?limit=5"):
            assert c.get(api + path).status_code == 200, api + path
        assert "<script>alert" not in page.text and "<script>alert" not in c.get(link + "/trials/0").text
        token = _token(c, link)  # a write: its confirmation page posts back to the same study
        ask = c.post(link + "/notes", data={"token": token, "text": "<b>seen</b>"})
        action = re.search(r"action='([^']*)'", ask.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
        assert action == link + "/notes", (action, link)
        assert c.post(action, data={"token": token, "text": "<b>seen</b>", "confirm": "yes"}).status_code == 200
        assert c.get(api).json()["notes"][0]["text"] == "<b>seen</b>" and "&lt;b&gt;seen" in c.get(link).text
    assert "<script>alert" not in index


def test_a_plot_with_nothing_to_draw_writes_the_control_characters_of_its_reason_as_escapes(tmp_path: Path) -> None:
    """The page shows an empty plot's title and reason as text: a parameter named with U+202E or
    ESC, which the reason of a contour of trials that span no surface names, turned the rest of that line around
    or was drawn as nothing. Both are sent as the drawn plots write them (``\\u202e``, ``\\x1b``)."""
    url = f"sqlite:///{tmp_path / 'unseen.db'}"
    space = {"a\u202eb": ts.Int(1, 3), "c\x1bd": ts.Int(1, 3)}
    study = ts.Study(space, storage=url, name="unseen", sampler="random", seed=0)
    for a in (1, 2, 3):  # three trials that span no surface: the reason names both parameters
        study.enqueue({"a\u202eb": a, "c\x1bd": 2})
    study.optimize(lambda t: 1.0, n_trials=3)
    [plot] = client(url).get("/api/studies/unseen/plots/contour").json()["plots"]
    assert plot["message"] == ("a contour over a\\u202eb and c\\x1bd needs at least 3 complete trials spread over "
                               "both; 'unseen' has 3, all at c\\x1bd = 2"), plot["message"]
    assert plot["title"] == "unseen: value over a\\u202eb and c\\x1bd (3 trials)", plot["title"]


def test_a_name_holding_the_character_that_stood_for_a_slash_is_its_own_study(tmp_path: Path) -> None:
    """The server once read U+FFFF in a study's address as the "/" of a name (sent as %2F): the link of
    a study named "x\uffffy" opened "x/y", and its delete form deleted "x/y"."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    names = ["x/y", "x\uffffy", "\uffff/", "/\uffff"]
    for name in names:
        ts.Study(SPACE, storage=url, name=name, sampler="random", seed=0).optimize(objective, n_trials=2,
                                                                                 catch=(RuntimeError,))
    c = client(url, allow_writes=True)
    links = re.findall(r"<a href='(/studies/[^']*)'>", c.get("/").text)
    assert len(links) == len(names)
    for link in links:
        name = c.get(link.replace("/studies/", "/api/studies/", 1)).json()["name"]
        assert html.unescape(re.search(r"<h1>(.*?)</h1>", c.get(link).text).group(1)) == name  # type: ignore[union-attr]
        assert c.get(link + "/trials/0").status_code == 200
    odd = next(link for link in links if link == "/studies/x%EF%BF%BFy")
    token = _token(c, odd)
    assert "delete study 'x\\uffffy'" in html.unescape(c.post(odd + "/delete", data={"token": token}).text)
    assert c.post(odd + "/delete", data={"token": token, "confirm": "yes"}).status_code == 200
    left = sorted(s["name"] for s in c.get("/api/studies").json()["studies"])
    assert left == sorted(["x/y", "\uffff/", "/\uffff"])


def test_an_address_ending_in_a_slash_opens_the_study_it_names(tmp_path: Path) -> None:
    """Before: the router sent /studies/x%2Fy/ to the address it had escaped the name into, which named
    another study (404); before U+FFFF was escaped, it opened x/y as it should."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    names = ["x/y", "x\uffffy", "q?#%2F", "plain"]
    for name in names:
        ts.Study(SPACE, storage=url, name=name, sampler="random", seed=0).optimize(objective, n_trials=1,
                                                                                 catch=(RuntimeError,))
    c = client(url)
    for name in names:
        r = c.get(f"/studies/{quote(name, safe='')}/?order=value", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (307, f"/studies/{quote(name, safe='')}?order=value")
        page = c.get(f"/studies/{quote(name, safe='')}/")
        assert html.unescape(re.search(r"<h1>(.*?)</h1>", page.text).group(1)) == name  # type: ignore[union-attr]
        assert c.get(f"/api/studies/{quote(name, safe='')}/").json()["name"] == name
    assert c.get("http://testserver//elsewhere.example/", follow_redirects=False).headers["location"] == "/elsewhere.example"


def test_studies_of_both_directions_compare_one_way_chosen_on_the_page(url: str, tmp_path: Path) -> None:
    ts.Study(SPACE, storage=url, name="up", sampler="random", seed=2, direction="maximize").optimize(
        objective, n_trials=6, catch=(RuntimeError,))
    c = client(url)
    page = c.get("/compare?study=alpha&study=up")
    assert page.status_code == 200 and "do not share a direction" in page.text
    src = re.search(r"data-src='([^']*)'", page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert "direction=minimize" in src
    fig = c.get(src).json()["plots"][0]["figure"]  # drawn, not a 400 the page showed as raw JSON
    assert "minimize" in fig["layout"]["yaxis"]["title"]["text"]
    assert "direction=maximize" in page.text.replace("&amp;", "&")
    assert "maximize" in c.get("/api/compare?study=alpha&study=up&direction=maximize").text
    assert c.get("/api/compare?study=alpha&study=up&direction=up").status_code == 400
    assert "do not share a direction" not in c.get("/compare?study=alpha&study=beta").text


def test_a_loopback_dashboard_answers_only_requests_addressed_to_loopback(url: str) -> None:
    """A page of another site that points its own name at 127.0.0.1 (DNS rebinding) read every
    study, and the write forms' token, through the visitor's browser."""
    app = create_app(open_storage(url, allow_writes=True), allow_writes=True, host="127.0.0.1")
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as mine:
        for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"):  # a connection of this user's
            assert _answer(app, host, mine.getsockname(), listener.getsockname())[0] == 200, host
    evil = TestClient(app, base_url="http://rebound.example:8080")
    for r in (evil.get("/studies/alpha"), evil.get("/api/studies"),
              evil.post("/studies/alpha/delete", data={"token": "x", "confirm": "yes"})):
        assert r.status_code == 421 and "rebound.example" in r.text and "token" not in r.text
    assert "alpha" in [s.name for s in open_storage(url).list_studies()]
    outside = TestClient(create_app(open_storage(url), host="0.0.0.0"), base_url="http://box.example:8080")
    assert outside.get("/api/studies").status_code == 200  # listening beyond loopback: any name reaches it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
def test_a_loopback_dashboard_refuses_a_client_it_cannot_find_as_its_user_s(url: str) -> None:
    """Only a client at a loopback address was looked up: one at another address (a process that bound
    the machine's own network address and connected to 127.0.0.1; or uvicorn's reading of an X-Forwarded-For
    header, which any local process could send) was let through, as was a connection not found."""
    app = create_app(open_storage(url), host="127.0.0.1")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        for client in [("10.0.0.1", 0), ("127.0.0.1", 0), ("testclient", 50000), ("127.0.0.1", 1)]:
            status, text = _answer(app, "localhost", client, listener.getsockname())
            assert status == 403 and "this connection is not theirs" in text, client
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/studies").status_code == 403  # its made-up client


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
def test_a_connection_s_user_is_read_from_the_socket_tables_however_it_is_listed() -> None:
    """As the kernel's sock_diag gives it, and as /proc/net/tcp{,6} list it (where sock_diag cannot be asked)."""
    import ipaddress

    from tunesmith.dashboard import server as srv

    def uids(client: tuple[str, int], server: tuple[str, int]) -> tuple[int | None, int | None]:
        ends = [(ipaddress.ip_address(host), port) for host, port in (client, server)]
        return srv.peer_uid(client, server), srv.listed_uid(ends)

    me = (os.getuid(), os.getuid())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = listener.getsockname()
        with socket.create_connection(server) as v4:
            assert uids(v4.getsockname(), server) == me
            if socket.has_ipv6:  # before: None (and let through): tcp6 lists it as ::ffff:127.0.0.1, the server sees 127.0.0.1
                with socket.create_connection(("::ffff:127.0.0.1", server[1])) as v6:
                    assert uids(("127.0.0.1", v6.getsockname()[1]), server) == me
            closed = v4.getsockname()
        deadline = time.monotonic() + 10  # before: 0, root's, read from the closed socket's row
        while uids(closed, server) != (None, None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uids(closed, server) == (None, None)
        assert uids(server, ("127.0.0.1", 1)) == (None, None)  # a listener there is no connection (sock_diag finds it)
    assert srv.peer_uid(("testclient", 50000), server) is None and uids(("::1", 1), server) == (None, None)
    assert uids(("127.0.0.1", 70000), server) == (None, None)  # no port of a socket: not found, not an error
    with contextlib.suppress(OSError), socket.create_server(("::1", 0), family=socket.AF_INET6) as listener6, \
            socket.create_connection(listener6.getsockname()[:2]) as v6:
        assert uids(v6.getsockname()[:2], listener6.getsockname()[:2]) == me


#: a seccomp filter that makes socket(AF_NETLINK, ...) fail with EPERM, as a sandbox that forbids netlink
_NO_NETLINK = """
import ctypes, platform, struct
nr = {"x86_64": 41, "aarch64": 198}[platform.machine()]  # socket(2)
ins = lambda code, jt, jf, k: struct.pack("=HBBI", code, jt, jf, k)  # load nr; if socket: load family; if AF_NETLINK: EPERM
prog = ctypes.create_string_buffer(b"".join([ins(0x20, 0, 0, 0), ins(0x15, 0, 3, nr), ins(0x20, 0, 0, 16),
    ins(0x15, 0, 1, 16), ins(0x06, 0, 0, 0x50001), ins(0x06, 0, 0, 0x7FFF0000)]))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, ctypes.byref(Prog(6, ctypes.addressof(prog))), 0, 0) == 0
"""


def _confined(code: str, *, netlink: bool = True, proc_net: bool | tuple[str, ...] = True) -> str:
    """Run ``code`` in a Python process that cannot open a netlink socket (``netlink=False``), or that sees
    no /proc (``proc_net=False``: a tmpfs over it, in a user and mount namespace of its own) or only these
    tables of /proc/net (``proc_net=("tcp6",)``); its output."""
    import platform
    import shutil
    import subprocess
    import tempfile

    if not netlink and platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the seccomp filter names x86_64's and aarch64's socket(2)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", ("" if netlink else _NO_NETLINK) + code]
    with tempfile.TemporaryDirectory(prefix="tunesmith-proc-") as real:  # where the real /proc stays seen
        if proc_net is not True:
            if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
                pytest.skip("no user namespace to hide /proc in")
            kept = "".join(f' && touch /proc/net/{t} && mount --bind "$0/net/{t}" /proc/net/{t}' for t in proc_net or ())
            hide = f'mount --rbind /proc "$0" && mount -t tmpfs none /proc && mkdir /proc/net{kept} && exec "$@"'
            command = ["unshare", "-rm", "sh", "-c", hide, real, *command]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_OWN_AND_MADE_UP = """
import asyncio, socket, sys
import tunesmith as ts
from tunesmith.dashboard.app import _another_user
with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as mine:
    server = listener.getsockname()
    print(asyncio.run(_another_user({"client": mine.getsockname(), "server": server})),
          asyncio.run(_another_user({"client": ("127.0.0.1", 1), "server": server})))
    from tunesmith.dashboard import serve  # its port taken: it stops after its warnings
    try:
        serve(ts.MemoryStorage(), port=server[1], out=sys.stdout)
    except OSError:
        pass
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
@pytest.mark.parametrize(("netlink", "proc_net", "told"), [(False, True, True), (True, False, True), (False, False, False)])
def test_a_loopback_dashboard_answers_its_user_where_the_system_tells_no_connection_s_user(
        netlink: bool, proc_net: bool, told: bool) -> None:
    """Where netlink is forbidden the tables tell, and without /proc/net sock_diag does; where neither can be read
    (a sandbox), every request was refused, its own user's too ("this connection is not theirs"): it now
    answers every user there, as on other systems, and ``tunesmith dashboard`` says so when it starts."""
    said = _confined(_OWN_AND_MADE_UP, netlink=netlink, proc_net=proc_net)
    assert said.splitlines()[0] == ("False True" if told else "False False")  # refused: its own connection, a made-up one
    assert ("any user of this machine can read the dashboard" in said) is not told, said


@pytest.mark.skipif(not sys.platform.startswith("linux") or not socket.has_ipv6, reason="Linux's socket tables, IPv6")
def test_a_dashboard_on_ipv6_loopback_checks_its_clients_where_only_the_ipv6_table_tells() -> None:
    """Whether the system tells a connection's user was tried over IPv4 only: where only tcp6 can be read (no
    netlink, no /proc/net/tcp), a dashboard on ``--host ::1`` answered every user of the machine."""
    code = """
import asyncio, socket
from tunesmith.dashboard.app import _another_user
with socket.create_server(("::1", 0), family=socket.AF_INET6) as listener, \\
        socket.create_connection(listener.getsockname()[:2]) as mine:
    server = listener.getsockname()[:2]
    print(asyncio.run(_another_user({"client": mine.getsockname()[:2], "server": server})),
          asyncio.run(_another_user({"client": ("::1", 1), "server": server})))
"""
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    assert _confined(code, netlink=False, proc_net=("tcp6",)) == "False True"  # its own answered, a made-up one refused


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
def test_the_socket_tables_are_read_off_the_event_loop() -> None:
    """Where netlink is forbidden, /proc/net/tcp and tcp6 were read on the server's event loop at each request:
    tens of ms with thousands of sockets, during which no other request was answered."""
    code = """
import asyncio, socket, sys, threading
from tunesmith.dashboard.app import _another_user
from tunesmith.dashboard.server import users_listed
where = []
sys.addaudithook(lambda event, args: where.append(threading.current_thread() is threading.main_thread())
                 if event == "open" and str(args[0]).startswith("/proc/net") else None)
with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as mine:
    users_listed(False)  # whether the system tells: once, as the dashboard starts (tunesmith.dashboard.serve)
    where.clear()
    print(asyncio.run(_another_user({"client": mine.getsockname(), "server": listener.getsockname()})), where[:1])
"""
    assert _confined(code, netlink=False) == "False [False]"  # read, and not on the loop's thread


def test_an_ipv4_address_written_as_ipv6_is_refused_naming_the_host_to_pass() -> None:
    # before: a warning that other machines could reach it, the studies read, then uvicorn's "[Errno 22] error
    # while attempting to bind on address ('::ffff:127.0.0.1', 8080, 0, 0): invalid argument"
    from tunesmith.dashboard import serve

    for host in ("::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "::ffff:10.0.0.1"):
        v4 = host.strip("[]").removeprefix("::ffff:")
        with pytest.raises(ValueError, match=rf"--host {re.escape(host)} is the IPv4 address {v4} written as IPv6, "
                                             rf"which the dashboard cannot listen on: pass --host {v4}"):
            serve(ts.MemoryStorage(), host=host, port=8080, out=io.StringIO())


def test_create_app_takes_hosts_as_serve_does(url: str) -> None:
    """``create_app``, the documented API for serving the dashboard oneself, took ``::ffff:127.0.0.1`` (no
    server can listen there) and ``[::1]``, which it did not take for loopback: no check of the Host a
    request names, nor of the connection's user (a page of another site rebound to ::1 read every study)."""
    for host in ("::ffff:127.0.0.1", "[::ffff:127.0.0.1]"):
        with pytest.raises(ValueError, match=rf"host={re.escape(repr(host))} is the IPv4 address 127\.0\.0\.1 "
                                             r"written as IPv6, .*: pass host='127\.0\.0\.1'"):
            create_app(open_storage(url), host=host)
    evil = TestClient(create_app(open_storage(url), host="[::1]"), base_url="http://rebound.example:8080")
    assert evil.get("/api/studies").status_code == 421


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
def test_create_app_asks_whether_connections_users_are_listed_before_its_first_request() -> None:
    """``serve`` asked once as it started; an app of ``create_app`` served otherwise asked on the server's event
    loop at its first request (a socket pair and a kernel lookup, every other request waiting)."""
    code = """
import tunesmith as ts
from tunesmith.dashboard import create_app
from tunesmith.dashboard.server import users_listed
asked = []
for host in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
    users_listed.cache_clear()
    create_app(ts.MemoryStorage(), host=host)
    asked.append(users_listed.cache_info().currsize)
print(asked)
"""
    assert _confined(code) == "[1, 1, 2, 0]"


def test_an_ipv6_host_in_brackets_is_listened_on_without_them() -> None:
    # before: --host [::1], as the URL it prints writes it, warned that other machines could reach it, then
    # failed with "cannot listen on [[::1]]:PORT: [Errno -2] Name or service not known (check --host)"
    from tunesmith.dashboard import serve

    try:
        taken = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with taken:  # its port taken: serve stops after its warnings, naming the address it tried
        port, out = taken.getsockname()[1], io.StringIO()
        with pytest.raises(OSError, match=rf"^cannot listen on \[::1\]:{port}: .*pass --port N"):
            serve(ts.MemoryStorage(), host="[::1]", port=port, out=out)
    assert "other machines" not in out.getvalue(), out.getvalue()


def test_any_ipv6_address_is_checked_as_the_server_binds_it_ipv6_only() -> None:
    """``--host ::`` where another program listens on 0.0.0.0 of the port: the server (asyncio's create_server, as
    uvicorn starts it) binds [::] IPv6 only and serves, but check_port bound it for both families and refused it
    before any study was read ("another program (another dashboard?) listens there"). [::] itself taken is refused."""
    import asyncio

    from tunesmith.dashboard.server import check_port

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6")
    with socket.create_server(("0.0.0.0", 0)) as other:
        port = other.getsockname()[1]
        check_port("::", port)

        async def bind() -> list[Any]:  # what the server does next
            server = await asyncio.get_running_loop().create_server(asyncio.Protocol, host="::", port=port)
            bound = [s.getsockname()[:2] for s in server.sockets]
            server.close()
            return bound

        assert asyncio.run(bind()) == [("::", port)]
    with socket.create_server(("::", 0), family=socket.AF_INET6) as taken:
        with pytest.raises(OSError, match=rf"cannot listen on \[::\]:{taken.getsockname()[1]}: .*pass --port N"):
            check_port("::", taken.getsockname()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's socket tables")
def test_a_connection_sock_diag_does_not_find_is_not_looked_for_in_the_tables() -> None:
    """The kernel's "no such socket" (ENOENT) was taken as "cannot ask", and /proc/net/tcp and tcp6 were read
    whole (tens of ms with thousands of sockets, on the server's event loop) for every request of a client that
    reset its connection: any local user could stall the dashboard so, with requests it then got a 403 for."""
    code = """
import socket, sys
from tunesmith.dashboard.server import peer_uid
opened = []
sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and str(args[0]).startswith("/proc/net") else None)
with socket.create_server(("127.0.0.1", 0)) as listener:
    print(peer_uid(("127.0.0.1", 1), listener.getsockname()), opened)
"""
    assert _confined(code) == "None []"


def _answer(app: Any, host: str, client: tuple[str, int], server: tuple[str, int]) -> tuple[int, str]:
    """GET /api/studies as uvicorn hands it to the app: addressed to ``host``, from ``client`` to ``server``."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/studies", "raw_path": b"/api/studies", "query_string": b"",
             "headers": [(b"host", host.encode())], "http_version": "1.1", "scheme": "http", "server": server,
             "client": client, "root_path": "", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()


def test_a_posted_body_is_read_only_where_writes_are_allowed_and_only_so_far(url: str) -> None:
    """Before, any POST body was read whole into memory, a read-only dashboard's too."""
    import asyncio

    from tunesmith.dashboard.app import MAX_FORM

    def post(app: Any) -> tuple[int, int]:  # the status, and the bytes the server read of an endless body
        read, sent = [0], []

        async def receive() -> dict[str, Any]:
            read[0] += 65536
            return {"type": "http.request", "body": b"x" * 65536, "more_body": read[0] < 100 * MAX_FORM}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/studies/alpha/notes", "raw_path": b"/studies/alpha/notes",
                 "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "http_version": "1.1", "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "", "asgi": {"version": "3.0"}}
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"], read[0]

    assert post(create_app(open_storage(url), host="127.0.0.1")) == (403, 0)  # refused before a byte was read
    status, read = post(create_app(open_storage(url, allow_writes=True), allow_writes=True))
    assert status == 413 and read <= MAX_FORM + 65536


@pytest.mark.parametrize("trial_sql, config", [
    ("started = 1e300, completed = 1e300", None),  # before: every page that shows a time, the list of studies too: 500
    ("heartbeat = -1e300, state = 'running', completed = NULL, value = NULL", None),
    (None, {"sampler": {"name": "random"}, "notes": "x"}),  # before: the study page, 500
    (None, {"sampler": {"name": "random"}, "notes": [1, {"time": "x", "text": 5}, {"time": 1e300, "text": "far"}]}),
])
def test_times_and_notes_changed_outside_tunesmith_leave_every_page_readable(
        url: str, trial_sql: str | None, config: dict[str, Any] | None) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        if trial_sql:
            db.execute(f"UPDATE ts_trials SET {trial_sql} WHERE number = 1")
        if config:
            db.execute("UPDATE ts_studies SET config = ? WHERE name = 'alpha'", (json.dumps(config),))
    c = TestClient(create_app(open_storage(url, allow_writes=True), allow_writes=True), raise_server_exceptions=False)
    for path in ("/", "/studies/alpha", "/studies/alpha/trials/1", "/api/studies/alpha", "/api/studies"):
        assert c.get(path).status_code == 200, path
    if config:
        token = _token(c, "/studies/alpha")
        c.post("/studies/alpha/notes", data={"token": token, "text": "new", "confirm": "yes"})
        kept = [n.get("text") for n in c.get("/api/studies/alpha").json()["notes"]]
        assert kept[-1] == "new" and len(kept) == (2 if config["notes"] == "x" else 4)  # the old ones kept
        assert "far" in c.get("/studies/alpha").text or config["notes"] == "x"


def test_the_study_page_lists_the_latest_notes_and_links_to_all(url: str) -> None:
    """An import (or any writer) may give a study 100,000 notes: the page listed them all."""
    notes = [{"time": 1.7e9 + i, "text": f"note {i}"} for i in range(30_000)]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        config = json.loads(db.execute("SELECT config FROM ts_studies WHERE name = 'alpha'").fetchone()[0])
        db.execute("UPDATE ts_studies SET config = ? WHERE name = 'alpha'", (json.dumps({**config, "notes": notes}),))
    c = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
    page = c.get("/studies/alpha").text
    assert page.count("<li>") == 20 and "note 29999" in page and "note 29979" not in page
    assert "the latest 20 of 30,000 notes: <a href='/studies/alpha?notes=all'>all notes</a>" in page
    assert c.get("/studies/alpha?notes=all").text.count("<li>") == 30_000
    r = c.get("/studies/alpha?notes=al")
    assert r.status_code == 400 and "notes must be &#x27;all&#x27;" in r.text


def test_a_note_of_megabytes_is_cut_on_the_study_page_and_shown_whole_on_its_own(url: str) -> None:
    """A note written outside tunesmith (tunesmith keeps 2,000 characters at most) of 5 MB made the
    study page 5 MB: it is cut at 2,000 characters there, with a link to the note's own page."""
    huge = "<b>" + "x" * 5_000_000
    notes = [{"time": 1.7e9, "text": "short one"}, {"time": 1.7e9 + 1, "text": huge}, {"time": 1.7e9 + 2, "text": "y" * 2000}]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        config = json.loads(db.execute("SELECT config FROM ts_studies WHERE name = 'alpha'").fetchone()[0])
        db.execute("UPDATE ts_studies SET config = ? WHERE name = 'alpha'", (json.dumps({**config, "notes": notes}),))
    c = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
    for page in (c.get("/studies/alpha").text, c.get("/studies/alpha?notes=all").text):
        assert len(page) < 100_000, len(page)
        assert "short one</li>" in page and "y" * 2000 + "</li>" in page  # notes of up to 2,000 characters: whole
        cut = "&lt;b&gt;" + "x" * 1997 + "... <a href='/studies/alpha/notes/1'>the whole note (5,000,003 characters)</a>"
        assert cut in page and page.count("/notes/") == 1
    whole = c.get("/studies/alpha/notes/1")
    assert whole.status_code == 200 and f"<pre id='note'>&lt;b&gt;{'x' * 5_000_000}</pre>" in whole.text
    assert "5,000,003 characters" in whole.text and "<a href='/studies/alpha'>alpha</a>: note 1" in whole.text
    assert "short one" in c.get("/studies/alpha/notes/0").text
    for number in ("3", "-1", "x", "\u00b2", "9" * 30):
        r = c.get(f"/studies/alpha/notes/{number}")
        assert r.status_code == 404 and "has no note" in r.text and "(its notes: 0-2)" in r.text, number


def test_a_trial_number_or_limit_written_as_a_digit_no_int_reads_is_named(url: str) -> None:
    """``/studies/alpha/trials/²`` (a digit to str.isdigit, none to int()) answered int()'s "invalid
    literal for int() with base 10"; ``?limit=²`` too, and ``/trials/--1`` (``-0`` showed trial 0). A
    trial of no number is a 404 naming the study's trials, a limit of no number a 400 naming the limit."""
    c = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
    for path in ("/studies/alpha/trials/\u00b2", "/api/studies/alpha/trials/\u00b2/curve",
                 "/studies/alpha/trials/--1", "/api/studies/alpha/trials/--1", "/studies/alpha/trials/-0"):
        r = c.get(path)
        assert r.status_code == 404 and "has no trial" in r.text and "invalid literal" not in r.text, (path, r.text)
    r = c.get("/studies/alpha?limit=\u00b2")
    assert r.status_code == 400 and "must be a whole number" in r.text and "invalid literal" not in r.text, r.text


def test_the_notes_link_and_the_trials_pager_keep_each_other_s_view(url: str) -> None:
    """Paging the trials of ``?notes=all`` went back to the latest 20 notes, and "all notes" went back
    to the first page of trials."""
    study = ts.load_study("alpha", url)
    for i in range(25):
        study.add_note(f"note {i}")
    c = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
    page = c.get("/studies/alpha?offset=1&limit=1&order=best").text
    assert "<a href='/studies/alpha?offset=1&amp;limit=1&amp;order=best&amp;notes=all'>all notes</a>" in page
    every = c.get("/studies/alpha?notes=all&offset=1&limit=1").text
    assert every.count("note ") >= 25
    pager = every[every.index("class='pager'"):]
    assert "offset=2&amp;limit=1&amp;order=number&amp;notes=all'>next</a>" in pager
    assert "offset=0&amp;limit=1&amp;order=number&amp;notes=all'>previous</a>" in pager
    changes = c.get("/api/studies/alpha/changes?since=x&notes=all&offset=1&limit=1").json()
    assert "notes=all'>next</a>" in changes["html"]["trials"]
    assert c.get("/api/studies/alpha/changes?since=x&notes=some").status_code == 400


def test_numbers_of_thousands_of_digits_and_a_deeply_nested_configuration_are_plain_errors(url: str) -> None:
    """Before: int()'s "Exceeds the limit (4300 digits) ... sys.set_int_max_str_digits()" for a
    trial number or an offset, and a 500 for an enqueued '[[[[...'."""
    c = TestClient(create_app(open_storage(url, allow_writes=True), allow_writes=True), raise_server_exceptions=False)
    r = c.get("/studies/alpha/trials/" + "1" * 5000)
    assert r.status_code == 404 and "has no trial" in r.text
    r = c.get("/api/studies/alpha/trials?offset=" + "1" * 5000)
    assert r.status_code == 400 and "offset must be a whole number" in r.json()["error"]
    token = _token(c, "/studies/alpha")
    r = c.post("/studies/alpha/enqueue", data={"token": token, "params": "[" * 100_000, "confirm": "yes"})
    assert r.status_code == 400 and "nests too deep" in r.text


def test_no_other_site_may_frame_a_page(url: str) -> None:
    """Framed in a page of another site, the write forms could be clicked through unseen
    ("delete study", then "yes, do it"): clickjacking."""
    c = client(url, allow_writes=True)
    for r in (c.get("/"), c.get("/studies/alpha"), c.get("/api/studies"), c.get("/studies/gamma"),
              c.post("/studies/alpha/delete", data={"token": _token(c, "/studies/alpha")})):
        assert r.headers["x-frame-options"] == "DENY", r.url
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy


@pytest.mark.parametrize("poll", ["nan", "inf", "0", "3000000"])
def test_a_poll_interval_that_is_not_a_positive_number_is_refused(url: str, poll: str, capsys: Any) -> None:
    """--poll nan was taken: the page's timer then fired at once, polling the server without pause. So
    did --poll 3000000: a browser's timer waits at most 2**31 - 1 ms, and fires a longer one at once
    (in chromium, 50 such waits took 189 ms)."""
    assert main(["dashboard", "--storage", url, "--port", str(free_port()), "--poll", poll]) == 2
    assert "--poll must be a positive number of seconds" in capsys.readouterr().err
    with pytest.raises(ValueError, match="poll_seconds must be a positive number of seconds"):
        create_app(open_storage(url), poll_seconds=float(poll))


def test_a_huge_value_or_worker_name_is_cut_short_in_the_trials_table(url: str) -> None:
    """A 10 MB text written into one row made the study page (and each live update) 10 MB."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE ts_trials SET worker = ?, params = ? WHERE number = 1",
                   ("w" * 10_000_000, json.dumps({"x": 0.5, "lr": 0.01, "kind": "k" * 10_000_000})))
    c = client(url)
    page = c.get("/studies/alpha")
    assert page.status_code == 200 and len(page.content) < 100_000 and "(10,000,000 characters)" in page.text
    assert len(c.get("/api/studies/alpha/changes?since=x").content) < 100_000


def test_the_dashboard_says_what_sampler_auto_picked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="a").optimize(lambda t: t.params["x"], n_trials=3)
    c = client(url)
    assert c.get("/api/studies").json()["studies"][0]["sampler"] == "auto (bayes)"
    assert "auto (bayes)" in c.get("/").text and "auto (bayes)" in c.get("/studies/a").text


def test_the_list_of_studies_reads_no_trial_s_reports_until_the_study_is_shown(tmp_path: Path) -> None:
    """The first list of studies read every trial whole: a row of reports of tens of MB cost seconds
    and hundreds of MB before the page answered. It reads the trials' heads (number, state, value,
    times); a study read whole once (shown) is listed from its view."""
    import tracemalloc

    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'big.db'}"
    study = ts.Study(SPACE, storage=url, name="big", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    reports = json.dumps({str(i): 0.5 for i in range(1_000_000)})  # 16 MB of text, a dict of a million when read
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ts_trials SET intermediate = :r WHERE number = 0"), {"r": reports})
    engine.dispose()
    c = client(url)
    tracemalloc.start()
    try:
        listed = c.get("/api/studies").json()["studies"][0]
        page = c.get("/")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30e6, peak
    assert listed["trials"] == 3 and listed["states"] == {"complete": 3} and page.status_code == 200
    assert listed["best"]["value"] == min(t.value for t in study.trials)
    assert c.get("/studies/big").status_code == 200  # read whole now: listed from that view
    assert c.get("/api/studies").json()["studies"][0]["version"] >= 1


def test_a_study_deleted_or_renamed_elsewhere_is_not_kept_by_a_long_running_dashboard(url: str) -> None:
    """A dashboard kept up for weeks while scripts make, show and delete studies: every study it had
    shown stayed in its cache with all its trials, deleted or not (memory grew with each one)."""
    c = client(url)
    cache = c.app.state.dashboard.cache  # type: ignore[attr-defined]
    for i in range(5):
        s = ts.Study(SPACE, storage=url, name=f"tmp{i}", sampler="random", seed=i)
        s.optimize(objective, n_trials=3, catch=(RuntimeError,))
        assert c.get(f"/studies/tmp{i}").status_code == 200
        s.delete()
    assert c.get("/studies/tmp4").status_code == 404  # shown, then found deleted
    assert c.get("/api/studies").status_code == 200  # the list drops the rest
    ts.load_study("beta", url).rename("gamma")
    c.get("/")
    assert set(cache._entries) <= {"alpha", "gamma"}, set(cache._entries)
    version = c.get("/api/studies/gamma").json()["version"]
    ts.load_study("gamma", url).delete()
    c.get("/api/studies")  # dropped from the cache; a page open on it still sees the new study as a change
    ts.Study(SPACE, storage=url, name="gamma", sampler="random", seed=1)
    changes = c.get(f"/api/studies/gamma/changes?since={version}").json()
    assert changes["changed"] and changes["summary"]["trials"] == 0, changes


def test_the_study_page_names_a_pausing_pruner_as_its_process_diagram_does(tmp_path: Path) -> None:
    """The study page's settings (from the study's summary) said "asha" while its process diagram and
    `tunesmith show` said "asha (pause=True)" for the same study."""
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.plots import process

    db = f"sqlite:///{tmp_path / 'p.db'}"
    for name, pruner in (("pausing", ts.pruners.ASHA(pause=True, max_resource=9)), ("plain", "asha"), ("none", None)):
        study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), name=name, storage=db, sampler="random", pruner=pruner)
        study.tell(study.ask(), 0.5)
    cache = StudyCache(ts.storage.make_storage(db))
    labels = {n: (cache.view(n).summary()["pruner"], cache.snapshot(cache.view(n)).pruner) for n in ("pausing", "plain", "none")}
    assert labels == {"pausing": ("asha (pause=True)",) * 2, "plain": ("asha",) * 2, "none": ("", "")}
    assert process(cache.snapshot(cache.view("pausing"))).node("pruner").detail.startswith("asha (pause=True)\n")


def test_a_plot_with_an_empty_reason_is_sent_with_one_that_says_so() -> None:
    """A record with nothing to draw and an empty reason (str() of an exception without a message) was
    sent with message "", which the page took as no message: it drew the empty figure."""
    from tunesmith.dashboard.figures import figure
    from tunesmith.plots.records import nothing

    assert figure(nothing("importance", "s: importance", ""))["message"] == "nothing to draw"
    assert figure(nothing("importance", "s: importance", "too few trials"))["message"] == "too few trials"


def test_importance_of_too_few_complete_trials_shows_why(tmp_path: Path) -> None:
    """fANOVA drew bars of 2 complete trials (each tree's arbitrary split, bands of about +-0.5):
    the page shows the refusal, for both methods, and stays up."""
    pytest.importorskip("sklearn")
    url = f"sqlite:///{tmp_path / 'few.db'}"
    ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=url, name="few", seed=0).optimize(
        lambda t: t.params["x"] + t.params["y"], n_trials=2)
    c = client(url)
    assert c.get("/studies/few/importance").status_code == 200
    for method in ("fanova", "ped-anova"):
        plot = c.get(f"/api/studies/few/importance?method={method}").json()["plots"][0]
        assert plot["message"].startswith("importance needs at least 10 complete trials, got 2"), plot


def test_the_trials_table_and_trial_page_say_where_a_trial_diverged(tmp_path: Path) -> None:
    """A trial an integration's callback pruned at a NaN metric keeps the step as attrs["diverged_at"],
    which only the trial's raw attributes showed: it read as stopped by the pruner."""
    url = f"sqlite:///{tmp_path / 'nan.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="nan")
    study.add_trial({"x": 0.5}, 0.3)
    study.add_trial({"x": 0.7}, state="pruned", intermediate={1: 0.4, 2: 0.5}, attrs={"diverged_at": 3})
    c = client(url)
    table = c.get("/studies/nan").text
    assert "<th>diverged at</th>" in table and "<td>step 3</td>" in table
    assert "<td class=l>diverged at</td><td>step 3</td>" in c.get("/studies/nan/trials/1").text
    assert "diverged at" not in c.get("/studies/nan/trials/0").text


def test_the_trials_table_and_trial_page_have_the_overfit_column_that_show_has(tmp_path: Path) -> None:
    # trials of ts.train.objective: show and the report said where overfitting began, the dashboard only
    # inside the trial's raw attributes
    url = f"sqlite:///{tmp_path / 'trained.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="trained")
    study.add_trial({"x": 0.5}, 0.3, attrs={"overfit_at": 4, "curves": {"gap": [0.1, 0.25]}})
    study.add_trial({"x": 0.7}, 0.4, attrs={"overfit_at": None, "curves": {"gap": [0.05]}})
    c = client(url)
    table = c.get("/studies/trained").text
    assert "<th>overfit at</th>" in table
    assert "<td>step 4 (gap 0.25)</td>" in table and "<td>- (gap 0.05)</td>" in table
    page = c.get("/studies/trained/trials/0").text
    assert "<td class=l>overfit at</td><td>step 4 (gap 0.25)</td>" in page
    ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'plain.db'}", name="p").add_trial({"x": 0.1}, 1.0)
    plain = client(f"sqlite:///{tmp_path / 'plain.db'}")
    assert "overfit at" not in plain.get("/studies/p").text and "spread over folds" not in plain.get("/studies/p").text


def test_a_websocket_handshake_gets_the_checks_a_request_gets(url: str) -> None:
    """With a websocket library installed (``uvicorn[standard]``) a handshake's scope is ``websocket``, which
    the Host and user checks let through unchecked: a websocket route, once added, would have answered a page of
    another site that points its name at 127.0.0.1, or another user. Here such a route is added to the
    dashboard's application, and handshakes are handed to it as uvicorn hands them."""
    import asyncio

    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    app = create_app(open_storage(url), host="127.0.0.1")

    async def studies(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("every study")
        await ws.close()

    app.router.routes.append(WebSocketRoute("/ws", studies))

    def handshake(host: str, client: tuple[str, int], server: tuple[str, int]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        asked = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}])

        async def receive() -> dict[str, Any]:
            return next(asked)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "query_string": b"", "root_path": "",
                 "headers": [(b"host", host.encode())], "scheme": "ws", "server": server, "client": client,
                 "subprotocols": [], "asgi": {"version": "3.0"}}
        asyncio.run(app(scope, receive, send))
        return sent

    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as mine:
        ends = (mine.getsockname(), listener.getsockname())
        assert [m["type"] for m in handshake("localhost:8080", *ends)][:2] == ["websocket.accept", "websocket.send"]
        refused = handshake("rebound.example:8080", *ends)
        assert refused[0]["type"] == "websocket.close" and refused[0]["code"] == 1008, refused
        assert "rebound.example" in refused[0]["reason"] and len(refused) == 1
        if sys.platform.startswith("linux"):  # a connection not found as this user's: another user's, for all it knows
            refused = handshake("localhost:8080", ("127.0.0.1", 1), listener.getsockname())
            assert [(m["type"], m["code"]) for m in refused] == [("websocket.close", 1008)], refused
            assert "answers the user who started it" in refused[0]["reason"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's namespaces")
def test_localhost_naming_an_address_the_machine_lacks_is_refused_before_the_studies_are_read(
        url: str, tmp_path: Path) -> None:
    """Where /etc/hosts names ::1 for localhost too (Docker's hosts file) but the machine has no IPv6, the server
    binds every address localhost names and failed on ::1 only after the studies were read (check_port tried the
    first address). Run in a network and mount namespace of its own: IPv6 off on its loopback, such a hosts file."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rnm", "true"], capture_output=True).returncode:
        pytest.skip("no user and network namespace to run in")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    code = ("import sys; from tunesmith.cli import main; "
            f"sys.exit(main(['dashboard', '--storage', {url!r}, '--host', 'localhost', '--port', '8093']))")
    setup = ('{ mount --bind "$0" /etc/hosts && ip link set lo up && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1; } '
             '|| exit 97; exec "$@"')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(["unshare", "-rnm", "sh", "-c", setup, str(hosts), sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=120)
    if done.returncode == 97:
        pytest.skip(f"the namespace could not be set up: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr
    assert "cannot listen on localhost:8093 (localhost names [::1]:8093)" in done.stderr
    assert "pass --host 127.0.0.1" in done.stderr and "read " not in done.stderr + done.stdout
