"""The dashboard end to end: ``tunesmith dashboard`` served by uvicorn on 127.0.0.1 (a free port,
in its own process, stopped by its pid) while a study adds trials, looked at in headless
chromium; no request may leave for another address. Screenshots go to test-artifacts/."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser as in_browser
import pytest
from browser import ARTIFACTS, Pages, only
from pg import free_port

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("plotly")

import tunesmith as ts  # noqa: E402
from tunesmith.pruners import ASHA  # noqa: E402

SPACE = {"x": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True)}
HISTORY_POINTS = ("(() => { const d = document.getElementById('plot-history-0');"
                  " return d && d.data ? d.data.filter(t => t.mode === 'markers').reduce((n, t) => n + t.x.length, 0)"
                  " : 0; })()")


def objective(trial: ts.Trial) -> float:
    for step in range(1, 4):
        trial.report(trial.params["x"] + 1 / step, step)
    time.sleep(0.15)
    return (trial.params["x"] - 0.3) ** 2


@pytest.fixture()
def served(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(the dashboard's base URL, the storage URL): a study with a few trials, the server up."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    ts.Study(SPACE, storage=url, name="live", sampler="random", seed=0).optimize(objective, n_trials=5)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "dashboard", "--storage", url, "--port", str(port),
                             "--poll", "0.5"], env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        yield base, url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(base + "/api/studies", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the dashboard did not answer within 60 s")


@pytest.mark.slow
def test_the_dashboard_shows_a_running_study_live_in_a_browser(served: tuple[str, str], chromium: Pages) -> None:
    base, url = served
    done = threading.Event()
    runner = threading.Thread(target=_run_until, args=(url, done))
    outside: list[str] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page = _watched(chromium, base, outside, errors, height=6000)  # every plot in view: all drawn
        _the_list_shows_the_study(page, base)
        runner.start()
        _the_history_gains_points(page, base)
        _a_trial_page_shows_its_curve(page, base)
        _a_wrong_name_gets_the_404_page(page, base)
    finally:
        done.set()
        if runner.is_alive() or runner.ident:
            runner.join()
    assert not errors, errors
    assert not outside, f"requests left 127.0.0.1: {outside}"


def _watched(chromium: Pages, base: str, outside: list[str], errors: list[str], *, height: int) -> Any:
    """A page whose requests beyond ``base`` are refused and listed in ``outside``, its script
    errors in ``errors``; in a 12-hour locale (en-US), where the browser's own time format is not the page's."""
    page = chromium.new_page(viewport={"width": 1200, "height": height}, locale="en-US")
    page.route("**/*", only((base + "/", "data:", "about:"), outside))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _run_until(url: str, done: threading.Event) -> None:
    """The study's worker: adds trials until the test is done (at most 500)."""
    study = ts.load_study("live", url)
    for _ in range(500):
        if done.is_set():
            return
        study.optimize(objective, n_trials=1)


def _whole_trials(base: str, statuses: list[int]) -> None:
    """Read while trials are written: each complete trial whole (its value is its params')."""
    for _ in range(10):
        with urllib.request.urlopen(f"{base}/api/studies/live/trials?limit=500&order=-number", timeout=60) as r:
            statuses.append(r.status)
            for t in json.load(r)["trials"]:
                if t["state"] == "complete":
                    assert t["value"] == pytest.approx((t["params"]["x"] - 0.3) ** 2), t


def _the_list_shows_the_study(page: Any, base: str) -> None:
    page.goto(base + "/")
    link = page.locator("a", has_text="live")
    assert link.count() == 1
    row = page.locator("tr", has=link).inner_text()
    assert "random" in row and "5 complete" in row
    page.screenshot(path=str(ARTIFACTS / "dashboard-studies.png"), full_page=True)


def _the_history_gains_points(page: Any, base: str) -> None:
    page.goto(base + "/studies/live")
    page.wait_for_selector("body[data-all='1']", timeout=90_000)
    before = page.evaluate(HISTORY_POINTS)
    assert before >= 5
    page.wait_for_function(f"{HISTORY_POINTS} >= {before + 5}", timeout=90_000)  # no reload: polled and redrawn
    assert int(page.inner_text("#n-trials")) >= before + 5
    kinds = page.eval_on_selector_all(".plot", "ds => ds.map(d => d.id.split('-')[1])")
    assert {"history", "curves", "process", "parallel", "slice"} <= set(kinds), kinds
    page.screenshot(path=str(ARTIFACTS / "dashboard-study.png"), full_page=True)


def _a_trial_page_shows_its_curve(page: Any, base: str) -> None:
    page.goto(base + "/studies/live/trials/2")
    page.wait_for_selector("body[data-ready='1']", timeout=90_000)
    curve = page.evaluate("document.getElementById('plot-curve-0').data[0]")
    assert curve["x"] == [1, 2, 3] and len(curve["y"]) == 3
    assert "complete" in page.inner_text("table")
    page.screenshot(path=str(ARTIFACTS / "dashboard-trial.png"), full_page=True)


def _a_wrong_name_gets_the_404_page(page: Any, base: str) -> None:
    response = page.goto(base + "/studies/no-such-study")
    assert response.status == 404
    assert page.inner_text("h1") == "Not found" and "no-such-study" in page.inner_text("#message")
    page.screenshot(path=str(ARTIFACTS / "dashboard-404.png"))


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or not os.path.exists("/proc/net/tcp"),
                    reason="a client of another user: root starts it (setuid); Linux's socket tables")
def test_another_user_of_the_machine_cannot_read_the_dashboard(served: tuple[str, str],
                                                               subprocess_env: dict[str, str]) -> None:
    """On loopback, any user of the machine read every study (the database file may be the owner's
    alone) and the write forms' token, so with --allow-writes they could delete studies. Then still
    with an X-Forwarded-For header (uvicorn took its address for the client's), from an IPv6 socket
    (listed as ::ffff:127.0.0.1) or from the machine's own network address: none was looked up."""
    base, _ = served
    port = base.rsplit(":", 1)[1]
    code = ("import encodings.idna, os, socket, sys\n"  # raw, all imported first: nobody cannot read this Python
            "port, header, source, to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]\n"
            "if sys.argv[5] == 'nobody':\n"
            "    os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_INET6 if ':' in to else socket.AF_INET)\n"
            "if source:\n"
            "    s.bind((source, 0))\n"
            "s.settimeout(20); s.connect((to, port))\n"
            "s.sendall(f'GET /api/studies HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n{header}Connection: close\\r\\n\\r\\n'"
            ".encode())\n"
            "data = b''\n"
            "while chunk := s.recv(65536):\n"
            "    data += chunk\n"
            "head, _, body = data.partition(b'\\r\\n\\r\\n')\n"
            "print(head.split()[1].decode(), body.decode()[:200])\n")
    ways = [("", "", "127.0.0.1"), ("X-Forwarded-For: 10.0.0.1\r\n", "", "127.0.0.1"),
            ("X-Forwarded-For: 127.0.0.1\r\n", "", "127.0.0.1"), ("", "", "::ffff:127.0.0.1")]
    ways += [("", address, "127.0.0.1") for address in _own_network_address()]
    for header, source, to in ways:
        for user, answer in (("nobody", "403 this dashboard answers the user who started it only"),
                             ("root", '200 {"studies":[{"name":"live"')):  # its own user (root: any) still reads
            got = subprocess.run([sys.executable, "-c", code, port, header, source, to, user], env=subprocess_env,
                                 capture_output=True, text=True, timeout=60, cwd="/")
            assert got.stdout.startswith(answer), (header, source, to, user, got.stdout + got.stderr)


def test_another_user_cannot_serve_http_localhost_beside_the_dashboard(
        served: tuple[str, str], chromium: Pages) -> None:
    """The dashboard listened on 127.0.0.1 only, and [::1] of its port was anyone's: another user's server there got
    the browser's http://localhost:PORT/ (IPv6 first), and its page, of the dashboard's own origin, read every study
    from the dashboard once that server had closed (the browser then went on to 127.0.0.1; the Host was localhost).
    Now the dashboard holds [::1] of its port, so no one else can listen there and the browser reaches the dashboard."""
    import socket

    base, _ = served
    port = int(base.rsplit(":", 1)[1])
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    page_of_theirs = (b"<!doctype html><title>theirs</title><script>setTimeout(async () => { const r = await "
                      b"fetch('/api/studies'); document.title = 'read: ' + (await r.text()).slice(0, 60); }, 1000)"
                      b"</script>")
    squatter = socket.socket(socket.AF_INET6)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        squatter.bind(("::1", port))
        squatter.listen()
    except OSError:
        squatter.close()
    else:
        def serve_once() -> None:  # one page, then gone: the page's next requests go on to 127.0.0.1
            with squatter:
                squatter.settimeout(30)
                with contextlib.suppress(OSError), squatter.accept()[0] as c:
                    c.recv(65536)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(page_of_theirs) + page_of_theirs)

        threading.Thread(target=serve_once, daemon=True).start()
    page = chromium.new_page()
    page.goto(f"http://localhost:{port}/")
    page.wait_for_timeout(2000)
    title = page.title()
    assert title == "studies - tunesmith", title  # before: 'read: {"studies":[{"name":"live",...'


def _own_network_address() -> list[str]:
    """This machine's IPv4 address on its route out, if it has one: a UDP socket's connect sends nothing."""
    import socket

    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: where the route goes, not a host
        address = probe.getsockname()[0]
        return [] if address.startswith("127.") else [address]
    return []


@pytest.mark.slow
def test_the_server_survives_parallel_reads_while_a_worker_writes(served: tuple[str, str]) -> None:
    """The server's threads read one storage at once while a worker adds trials: every answer
    whole, the server alive (a read-only SQLite storage used from many threads at once crashed it)."""
    base, url = served
    done = threading.Event()
    runner = threading.Thread(target=_run_until, args=(url, done))
    runner.start()
    statuses: list[int] = []

    def read(kind: str) -> None:
        for _ in range(10):
            with urllib.request.urlopen(f"{base}/api/studies/live/plots/{kind}", timeout=60) as r:
                statuses.append(r.status)
            with urllib.request.urlopen(f"{base}/api/studies/live/changes?since=0", timeout=60) as r:
                statuses.append(r.status)

    kinds = ("history", "curves", "process", "parallel", "slice", "contour", "overfitting", "history")
    readers = [threading.Thread(target=read, args=(k,)) for k in kinds * 2]
    readers.append(threading.Thread(target=_whole_trials, args=(base, statuses)))
    try:
        for t in readers:
            t.start()
        for t in readers:
            t.join()
    finally:
        done.set()
        runner.join()
    assert statuses == [200] * 330


@pytest.mark.slow
def test_a_renamed_study_says_so_and_studies_of_both_directions_compare(
        served: tuple[str, str], chromium: Pages) -> None:
    """A study renamed while its page is open: the page says it is gone (deleted or renamed) and
    links the list; a comparison of a minimized and a maximized study is drawn, not a raw error."""
    base, url = served
    ts.Study(SPACE, storage=url, name="up", sampler="random", seed=1, direction="maximize").optimize(
        objective, n_trials=3)
    outside: list[str] = []
    errors: list[str] = []
    page = _watched(chromium, base, outside, errors, height=3000)
    plain = chromium.new_page()  # no route: with one, chromium does not ask for /favicon.ico
    console: list[str] = []  # e.g. the 404 of /favicon.ico that every page asked for
    plain.on("console", lambda m: console.append(f"{plain.url}: {m.text}") if m.type == "error" else None)
    for path in ("/", "/studies/live", "/studies/live/trials/0"):
        plain.goto(base + path)
        plain.wait_for_timeout(500)
    plain.close()
    page.goto(base + "/compare?study=live&study=up")
    page.wait_for_selector("body[data-all='1']", timeout=90_000)
    assert page.evaluate("document.getElementById('plot-compare-0').data.length") >= 2
    assert "do not share a direction" in page.inner_text("#directions")
    page.goto(base + "/studies/up")
    page.wait_for_selector("body[data-all='1']", timeout=90_000)
    assert not console, console  # before the rename (its 404 is logged as a failed request)
    ts.load_study("up", url).rename("up-renamed")
    page.wait_for_function("document.getElementById('live').textContent.includes('renamed')",
                           timeout=30_000)
    assert page.locator("#live a").get_attribute("href") == "/"
    assert not errors, errors
    assert not outside, f"requests left 127.0.0.1: {outside}"


@pytest.mark.slow
def test_the_trials_table_and_last_activity_update_live_in_one_format(served: tuple[str, str], chromium: Pages) -> None:
    """The history plot updated live but the trials table did not, and "last activity" changed
    format (toLocaleString) at the first update: both now come from the server as on first load, and
    "live: checked" gives its time in the same 24-hour form."""
    base, url = served
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"
    errors: list[str] = []
    outside: list[str] = []
    page = _watched(chromium, base, outside, errors, height=3000)
    page.goto(base + "/studies/live?order=-number&limit=3")
    page.wait_for_selector("body[data-ready='1']", timeout=90_000)
    first = page.inner_text("#last")
    assert re.match(stamp, first.strip()), first
    study = ts.load_study("live", url)
    running = study.ask()  # a new trial appears in the table, running
    page.wait_for_selector(f"#trials a[href='/studies/live/trials/{running.number}']", timeout=30_000)
    row = page.locator("#trials tr", has=page.locator(f"a[href='/studies/live/trials/{running.number}']"))
    assert "running" in row.inner_text()
    study.tell(running, 0.0)  # ... and changes to complete, still on top (newest first)
    page.wait_for_function(
        "[...document.querySelectorAll('#trials tr')].some(r => r.innerText.includes('complete')"
        f" && r.querySelector(\"a[href='/studies/live/trials/{running.number}']\"))", timeout=30_000)
    assert page.locator("#trials tr").count() == 4  # the page's 3 rows kept (and the head)
    assert "showing 1-3" in page.inner_text("#trials .pager") and "6 trials" in page.inner_text("#trials")
    last = page.inner_text("#last")
    assert re.match(stamp, last.strip()), last  # the first load's format after a live update
    checked = page.inner_text("#live")  # was "live: checked 11:16:14 PM" beside "2026-12-05 23:16:14"
    assert re.fullmatch(r"live: checked \d\d:\d\d:\d\d", checked.strip()), checked
    assert page.inner_text("#best") == f"0 (#{running.number})"
    assert not errors, errors
    assert not outside, f"requests left 127.0.0.1: {outside}"


@contextlib.contextmanager
def _dashboard(url: str, env: dict[str, str], *args: str, port: int = 0) -> Iterator[str]:
    """``tunesmith dashboard`` of ``url`` (with ``args``) in its own process, on ``port`` (else a free
    one); yields its base URL."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "dashboard", "--storage", url, "--port", str(port),
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_up(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_a_study_of_many_parameters_keeps_the_page_s_width(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    space = {f"weight_decay_of_layer_{i}": ts.Float(0, 1) for i in range(200)}
    ts.Study(space, storage=url, name="wide", sampler="random", seed=0).optimize(
        lambda t: t.params["weight_decay_of_layer_0"], n_trials=6)
    with _dashboard(url, subprocess_env) as base:
        width = _read(chromium, f"{base}/studies/wide", lambda page: page.evaluate("document.documentElement.scrollWidth"))
    assert width <= 1300, width  # the trials table's 200 columns scroll in their box (the page was 18,000 px wide)


def _read(chromium: Pages, url: str, read: Any, *, width: int = 1300) -> Any:
    """What ``read(page)`` gets from the dashboard's page ``url`` in headless chromium ``width`` px wide, no
    request leaving the dashboard."""
    base = url.split("/", 3)
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.route("**/*", only(("/".join(base[:3]) + "/",), []))
    page.goto(url, wait_until="load")
    try:
        return read(page)
    finally:
        page.close()  # before the dashboard it reads stops, as its own browser was


@contextlib.contextmanager
def _proxy(port: int) -> Iterator[str]:
    """A reverse proxy on 127.0.0.1 (a free port) to the dashboard on ``port``, answering GETs as a
    gateway does: 502 Bad Gateway while the dashboard cannot be reached. Yields its base URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{self.path}", timeout=60) as r:
                    status, kind, body = r.status, r.headers.get("Content-Type", ""), r.read()
            except urllib.error.HTTPError as exc:
                status, kind, body = exc.code, exc.headers.get("Content-Type", ""), exc.read()
            except OSError:
                status, kind, body = 502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_plots_asked_for_while_the_dashboard_is_unreachable_are_drawn_once_it_is_back(
        tmp_path: Path, subprocess_env: dict[str, str], proxied: bool, chromium: Pages) -> None:
    """Scrolled down while the dashboard was stopped, a study page asked for its lower plots, failed
    (an uncaught "Failed to fetch") and never asked again: after the restart they stayed blank.
    Behind a reverse proxy, which answers 502 Bad Gateway meanwhile, they said "could not load
    contour: <html>...502 Bad Gateway..." for good."""
    url = f"sqlite:///{tmp_path / 'back.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=6)
    port, errors = free_port(), []
    last = "document.querySelector('section.kind:last-of-type').dataset"
    with _proxy(port) as proxy:
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 700})
            page.on("pageerror", lambda e: errors.append(str(e)))
            with _dashboard(url, subprocess_env, "--poll", "0.5", port=port) as base:
                page.goto((proxy if proxied else base) + "/studies/s", wait_until="load")
                page.wait_for_function("document.body.dataset.ready === '1'")
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_timeout(1000)  # the lower plots asked for, refused
            assert page.inner_text("#live") == "cannot reach the dashboard server; retrying"
            with _dashboard(url, subprocess_env, "--poll", "0.5", port=port):
                page.wait_for_function(f"{last}.version !== undefined", timeout=20_000)
            assert "could not load" not in page.inner_text("#plots")
        finally:
            chromium.close()
    assert not errors, errors


def test_the_slower_plots_draw_the_last_change_once_their_10_seconds_are_up(
        served: tuple[str, str], chromium: Pages) -> None:
    """The plots other than history, curves and process are redrawn at most every 10 seconds: a
    change within 10 s of their last redraw left them as they were, and when no change came after it
    (the study's last trial) they never showed it; the slice kept 5 points of 6 while the page said
    "live: checked"."""
    base, url = served
    points = "document.getElementById('plot-slice-0').data[0].x.length"  # the trials' points, not the best's
    page = chromium.new_page(viewport={"width": 1200, "height": 6000})  # every plot in view
    page.goto(base + "/studies/live", wait_until="load")
    page.wait_for_function("document.body.dataset.all === '1'")
    assert page.evaluate(points) == 5
    ts.load_study("live", url).optimize(objective, n_trials=1)  # the last change, within the 10 s
    page.wait_for_function(f"{HISTORY_POINTS} === 6")
    page.wait_for_function(f"{points} === 6", timeout=20_000)


def test_every_page_fits_a_phone_s_width(tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """On a phone (a mobile viewport 380 px wide) no page is wider than the screen: the pages
    declare their viewport (without it a phone lays them out 980 px wide and shrinks them), wide
    tables scroll in their own box, the forms of --allow-writes shrink to fit and a name with no
    space to break at wraps (one of 120 letters made each of its pages 1,500 px wide), as do a trial's
    error and attributes (a path of 200 letters in them made its page 1,900 px wide)."""
    url = f"sqlite:///{tmp_path / 'phone.db'}"
    for name in ("a study with a rather long name", "b", "n" * 120):
        ts.Study(SPACE, storage=url, name=name, sampler="random", seed=0).optimize(objective, n_trials=3)
    study = ts.load_study("b", url)
    trial = study.ask()
    trial.set_attr("checkpoint", "/runs/" + "r" * 200 + ".pt")
    study.tell(trial, state="failed", error="OSError: no space left writing /runs/" + "r" * 200 + ".pt")
    widths = {}
    with _dashboard(url, subprocess_env, "--allow-writes") as base:
        try:
            page = chromium.new_context(viewport={"width": 380, "height": 800}, is_mobile=True,
                                       has_touch=True).new_page()
            page.route("**/*", only((base + "/",), []))
            for path in ("/", "/studies/b", "/studies/b/trials/0", "/studies/b/trials/3", "/compare?study=b",
                         f"/studies/{'n' * 120}",
                         f"/studies/{'n' * 120}/trials/0", f"/studies/{'n' * 120}/importance", f"/studies/{'n' * 120}/x",
                         f"/compare?study={'n' * 120}"):
                page.goto(base + path, wait_until="load")
                widths[path] = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"))
        finally:
            chromium.close()
    assert all(w <= 380 for w in widths.values()), widths


def test_the_notes_of_a_study_page_and_all_of_them_stay_live(served: tuple[str, str], chromium: Pages) -> None:
    """The study page lists the latest 20 notes with a link to ``?notes=all``; that page lists
    every note and still polls (the changes it asks carry ``notes=all``); another value of
    ``notes`` is a 400 page linking back to the study."""
    base, url = served
    study = ts.load_study("live", url)
    for i in range(23):
        study.add_note(f"note {i}")
    outside: list[str] = []
    errors: list[str] = []
    page = _watched(chromium, base, outside, errors, height=1500)
    page.goto(base + "/studies/live")
    assert page.locator("h2:has-text('Notes') + p + ul li").count() == 20
    assert "the latest 20 of 23 notes" in page.inner_text("main")
    page.click("text=all notes")
    page.wait_for_url(base + "/studies/live?notes=all")
    assert page.locator("h2:has-text('Notes') + ul li").count() == 23
    study.optimize(objective, n_trials=1)  # the page polls the changes and shows the new trial
    page.wait_for_function("document.getElementById('n-trials').textContent.trim() === '6'", timeout=60_000)
    assert page.locator("h2:has-text('Notes') + ul li").count() == 23
    response = page.goto(base + "/studies/live?notes=some")
    assert response.status == 400 and "notes must be 'all'" in page.inner_text("#message")
    page.click("text=study live")
    page.wait_for_url(base + "/studies/live")
    assert not errors, errors
    assert not outside, f"requests left 127.0.0.1: {outside}"


@pytest.mark.parametrize("nohup", [False, True], ids=["a terminal that closed", "under nohup"])
def test_sighup_stops_the_dashboard_as_sigterm_does_and_nohup_keeps_it(tmp_path: Path, subprocess_env: dict[str, str],
                                                                       nohup: bool) -> None:
    """SIGHUP (the terminal closed) killed the dashboard outright, mid-request (uvicorn stops on SIGINT and
    SIGTERM only); it now stops the server as SIGTERM does and ends with status 129, as run and worker.
    Under nohup (SIGHUP ignored) it keeps serving."""
    url = f"sqlite:///{tmp_path / 'hup.db'}"
    ts.Study(SPACE, storage=url, name="hup", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "dashboard", "--storage", url, "--port", str(port)], env=subprocess_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None)  # noqa: PLW1509
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        os.kill(proc.pid, signal.SIGHUP)
        if nohup:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
            with urllib.request.urlopen(base + "/api/studies", timeout=10) as answer:
                assert answer.status == 200
        else:
            assert proc.wait(timeout=20) == 128 + signal.SIGHUP
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def test_serve_leaves_a_program_s_own_sighup_handler_in_place(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """``serve()`` took SIGHUP over wherever it was not ignored, so a program whose own handler reloads
    its settings on SIGHUP had its dashboard stopped instead; only the default (the process dies) is
    taken over now, and the program's handler runs while the dashboard keeps serving."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    ts.Study(SPACE, storage=url, name="own", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=1)
    port, mark = free_port(), tmp_path / "reloaded"
    program = (f"import signal, pathlib, tunesmith.dashboard.server as s\n"
               f"signal.signal(signal.SIGHUP, lambda *a: pathlib.Path({str(mark)!r}).write_text('yes'))\n"
               f"print('returned', s.serve({url!r}, port={port}), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", program], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists() and proc.poll() is None
        with urllib.request.urlopen(base + "/api/studies", timeout=10) as answer:
            assert answer.status == 200
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)


def test_serve_returns_signal_sighup_after_a_hangup(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The library's ``serve()`` returned the bare number 1, not ``signal.SIGHUP`` as its docs say."""
    url = f"sqlite:///{tmp_path / 'ret.db'}"
    ts.Study(SPACE, storage=url, name="ret", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=1)
    port = free_port()
    program = f"import tunesmith.dashboard.server as s\nprint('returned', repr(s.serve({url!r}, port={port})))\n"
    proc = subprocess.Popen([sys.executable, "-c", program], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_up(f"http://127.0.0.1:{port}", proc)
        os.kill(proc.pid, signal.SIGHUP)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "returned <Signals.SIGHUP: 1>" in out.decode(), out.decode()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_study_named_with_a_control_character_stays_live_and_is_compared_by_its_name(
    tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages,
) -> None:
    """A study name holding ESC (written into the database by hand: tunesmith refuses one) was
    written as ``a\\x1bb`` in the page's ``data-study`` and the compare form's values too, where the
    script and the form read the name itself: the page polled another study, got a 404 and said
    the study was deleted, and comparing it asked for a study that does not exist. The name is
    shown as ``a\\x1bb`` (in the note of a plot with nothing to draw too) and sent back as it is."""
    import sqlite3

    path = tmp_path / "esc.db"
    url = f"sqlite:///{path}"
    ts.Study(SPACE, storage=url, name="ab", sampler="random", seed=0).optimize(objective, n_trials=3)
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute("UPDATE ts_studies SET name = ? WHERE name = 'ab'", ("a\x1bb",))
    outside: list[str] = []
    errors: list[str] = []
    with _dashboard(url, subprocess_env, "--poll", "0.3") as base:
        try:
            page = _watched(chromium, base, outside, errors, height=900)
            page.goto(base + "/studies/a%1Bb")
            assert page.inner_text("h1") == "a\\x1bb"
            page.wait_for_function("document.getElementById('live').textContent !== 'live'", timeout=30_000)
            assert page.inner_text("#live").startswith("live: checked"), page.inner_text("#live")
            page.goto(base + "/")
            page.check("input[name=study]")
            page.click("text=compare the checked studies")
            page.wait_for_url(base + "/compare?study=a%1Bb")
            page.wait_for_function("document.body.dataset.all === '1'", timeout=30_000)
            assert page.inner_text("h1") == "Compare: a\\x1bb"
            assert page.evaluate("document.getElementById('plot-compare-0').data.length") >= 1
            # a plot with nothing to draw says why in its place: its title (the study's name) as the
            # drawn ones write it (it was written raw there, the ESC drawn as nothing)
            page.goto(base + "/studies/a%1Bb/importance?method=ped-anova")
            page.wait_for_function("document.body.dataset.all === '1'", timeout=30_000)
            said = page.inner_text("#plot-importance-0")
            assert said.startswith("a\\x1bb: importance: importance needs at least 10 complete trials"), said
        finally:
            chromium.close()
    assert not errors, errors
    assert not outside, f"requests left 127.0.0.1: {outside}"


def test_a_static_page_s_plot_that_failed_while_the_dashboard_was_away_says_so_and_is_drawn_once_it_is_back(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """A trial page (like the importance and compare pages: no poll) scrolled to its curve while
    the dashboard was stopped left the plot blank, with no word of why, until reloaded."""
    url = f"sqlite:///{tmp_path / 'back.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=2)
    port, errors = free_port(), []
    curve = "document.querySelector('section.kind')"
    page = chromium.new_page(viewport={"width": 1200, "height": 60})
    page.on("pageerror", lambda e: errors.append(str(e)))
    with _dashboard(url, subprocess_env, port=port) as base:
        page.goto(base + "/studies/s/trials/0", wait_until="load")
        page.wait_for_function("document.body.dataset.ready === '1'")
        assert page.evaluate(f"{curve}.dataset.answered === undefined")  # below the first screen
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(f"{curve}.dataset.failed === '1'", timeout=20_000)
    assert page.inner_text("section.kind") == "could not load curve: cannot reach the dashboard server; retrying"
    with _dashboard(url, subprocess_env, port=port):
        page.wait_for_function(f"{curve}.dataset.version !== undefined", timeout=20_000)
    assert "could not load" not in page.inner_text("#plots")
    assert page.evaluate("document.getElementById('plot-curve-0').classList.contains('plot')")  # drawn
    assert not errors, errors


def test_a_study_page_says_the_storage_could_not_be_read_and_goes_back_to_live_once_it_can(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """The SQLite file replaced by one that is not a database while the page was open: the
    dashboard answered its polls with 500 and the storage's error, which the page read as
    "unchanged" and said "live: checked" over stale data. The error is shown as text (the file's
    name carries markup), the page keeps polling and says "live: checked" once the file is back."""
    db = tmp_path / "a<b>.db"
    url = f"sqlite:///{db}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=3)
    errors: list[str] = []
    live = "document.getElementById('live').textContent"
    last = "document.querySelector('section.kind:last-of-type').dataset"
    with _dashboard(url, subprocess_env, "--poll", "0.5") as base:
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 700})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/studies/s", wait_until="load")
            page.wait_for_function(f"{live}.startsWith('live: checked')", timeout=20_000)
            assert page.evaluate(f"{last}.answered === undefined")  # below the first screen
            good = db.read_bytes()
            db.write_bytes(b"not a database")
            page.wait_for_function(f"{live}.includes('could not read')", timeout=20_000)
            said = page.inner_text("#live")
            assert said.startswith("live: the dashboard could not read the storage: storage 'sqlite:///"), said
            assert "a<b>.db" in said and said.endswith("; retrying"), said
            assert page.evaluate("document.querySelector('#live b') === null")  # text, not markup
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # a plot asked for meanwhile
            page.wait_for_function(f"{last}.failed === '1'", timeout=20_000)
            assert "a<b>.db" in page.inner_text("section.kind:last-of-type")
            db.write_bytes(good)
            page.wait_for_function(f"{live}.startsWith('live: checked')", timeout=20_000)
            page.wait_for_function(f"{last}.version !== undefined", timeout=20_000)
            assert "could not load" not in page.inner_text("#plots")
        finally:
            chromium.close()
    assert not errors, errors


def test_a_static_page_s_retry_timer_stops_once_every_plot_is_drawn(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """A trial page (no poll) kept a 2 s retry timer running for as long as it was open, with no plot
    left to ask for: only a plot that could not be loaded starts it now."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=2)
    with _dashboard(url, subprocess_env) as base:
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 6000})
            page.add_init_script("window.timers = 0; const set = window.setTimeout;"
                                 " window.setTimeout = (f, ms, ...a) => { if (ms === 2000) { window.timers++; }"
                                 " return set(f, ms, ...a); };")
            page.goto(base + "/studies/s/trials/0", wait_until="load")
            page.wait_for_function("document.body.dataset.all === '1'")
            page.wait_for_timeout(4500)
            assert page.evaluate("window.timers") == 0
        finally:
            chromium.close()


def test_plots_scrolled_past_in_one_jump_are_drawn(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """A plot drawn when it came near the viewport: one jump over it (the End key, a link to an anchor
    further down, ~3,000 px) left it undrawn until scrolled back to. Sections passed are drawn too."""
    url = f"sqlite:///{tmp_path / 'jump.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(objective, n_trials=4)
    answered = "Array.from(document.querySelectorAll('section.kind')).map(s => s.dataset.answered === '1')"
    with _dashboard(url, subprocess_env) as base:
        try:
            for jump in ("window.scrollTo(0, document.body.scrollHeight)", "window.scrollBy(0, 3000)"):
                page = chromium.new_page(viewport={"width": 1200, "height": 600})
                page.goto(base + "/studies/s", wait_until="load")
                page.wait_for_function("document.body.dataset.ready === '1'")
                page.wait_for_timeout(500)
                before = page.evaluate(answered)
                assert not all(before), before  # sections below the first screen wait
                page.evaluate(jump)
                top = page.evaluate("window.scrollY")
                assert top >= 2500, top  # one jump past sections never in view
                page.wait_for_function("document.body.dataset.all === '1'", timeout=20_000)
                assert page.evaluate("window.scrollY") >= 2500  # drawn out of view: not scrolled back to
                assert page.evaluate("document.querySelectorAll('#plots .plot, #plots .note.empty').length") >= 7
                page.close()
        finally:
            chromium.close()


def test_a_plot_with_an_empty_reason_shows_a_note_not_an_empty_figure(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """A plot with nothing to draw comes with its reason; an empty reason ("", as str() of an exception
    without a message) was taken as none, and the page drew the plot's empty figure instead of a note.
    The dashboard sends a reason that says so, and the page shows any reason given, even an empty one
    (here the dashboard's answer with its reason emptied on the way)."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=3)
    curves = "document.getElementById('plot-curves-0')"

    def emptied(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        assert body["plots"][0]["message"].startswith("no trial of 's' reported intermediate values")
        body["plots"][0]["message"] = ""
        route.fulfill(response=answer, json=body)

    with _dashboard(url, subprocess_env) as base:
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 6000})
            page.route(f"{base}/api/studies/s/plots/curves", emptied)
            page.goto(base + "/studies/s", wait_until="load")
            page.wait_for_function(f"{curves} !== null")
            assert page.evaluate(f"{curves}.className") == "note empty"
            said = page.inner_text("#plot-curves-0")
            assert said.startswith("s: learning curves") and said.endswith(": nothing to draw"), said
        finally:
            chromium.close()


OVERFIT_LEGEND = ("Array.from(document.querySelectorAll('[id^=\"plot-overfitting\"] .legendtext'))"
                  ".map(e => e.textContent)")


def test_the_overfitting_legend_names_the_summary_in_the_report_and_the_dashboard(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """The overfitting plot's markers are the stored summary (``overfit_at``, from where the rise after
    the best began); their legend, as chromium draws it in the report and on the dashboard, said
    "overfitting signal (2 epochs)", the live flag's name."""
    from tunesmith.report import build_report

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="o")
    study.add_trial({"x": 0.5}, 0.4, intermediate={1: 0.9, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.6}, attrs={
        "curves": {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.2], "val_loss": [0.9, 0.5, 0.4, 0.45, 0.6]},
        "best_step": 3, "overfit_at": 4})
    report = tmp_path / "o.html"
    report.write_text(build_report(study), encoding="utf-8")
    outside: list[str] = []
    legends = []
    with _dashboard(url, subprocess_env) as base:
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 6000})
            page.route("**/*", only(("file:", "data:", "about:", base), outside))
            for where in (report.as_uri(), f"{base}/studies/o"):
                page.goto(where, wait_until="load")
                page.wait_for_function(f"{OVERFIT_LEGEND}.length > 0", timeout=60_000)
                legends.append(page.evaluate(OVERFIT_LEGEND))
        finally:
            chromium.close()
    assert not outside, outside
    for legend in legends:
        assert "overfitting from epoch 4 (summary: the gap's rise after the best)" in legend, legend
        assert not any("signal" in text for text in legend), legend


def test_the_dashboard_benchmark_times_the_poll_that_finds_nothing_changed(
        tmp_path: Path, subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/bench_dashboard.py's "what changed since" row is the poll a live page makes when
    nothing changed: the server's versions start at its start time, so a fixed ``since`` is never
    current and got the changed answer (the summary and the trials table)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_dashboard

    db = tmp_path / "bench.db"
    bench_dashboard.make_tunesmith(db, bench_dashboard.workload(30))
    with _dashboard(f"sqlite:///{db}", subprocess_env) as base:
        answers = {}
        for label, url in bench_dashboard.tunesmith_endpoints(base).items():
            with urllib.request.urlopen(bench_dashboard.with_version(url), timeout=30) as r:
                answers[label] = json.loads(r.read())
        assert answers["what changed since"] == {"version": answers["history plot"]["version"], "changed": False}
        assert answers["trials page (50)"]["total"] == 30
        with urllib.request.urlopen(f"{base}/api/studies/{bench_dashboard.STUDY}/changes?since=1", timeout=30) as r:
            assert json.loads(r.read())["changed"] is True


def test_a_page_of_tied_trials_ordered_by_best_says_they_tie_in_the_browser(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """Ordered by best, a study whose trials all tie on the value showed a page of one value without a word:
    the page says they tie and how they are ordered, and the rows are in that order (here by number: no reports)."""
    url = f"sqlite:///{tmp_path / 'ties.db'}"
    study = ts.Study(SPACE, storage=url, name="ties", sampler="random", seed=0)
    for _ in range(8):
        study.tell(study.ask(), 0.5)
    with _dashboard(url, subprocess_env) as base:
        said, rows = _read(chromium, f"{base}/studies/ties?order=best&limit=5", lambda page: (
            page.inner_text("p.ties"),
            page.eval_on_selector_all("table tr td:first-child", "cells => cells.map(c => c.innerText)")))
    assert said.startswith("trials tie on the value here: 0.5 (8 trials). Tied trials are ordered as study.best_trial"), said
    assert [r for r in rows if r.isdigit()][:5] == ["0", "1", "2", "3", "4"], rows


def test_parallel_axis_titles_stay_apart_in_a_narrow_window(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """The titles of parallel coordinates were cut for a figure 700 px wide: in a narrower window (600 px: 6
    pairs overlapped; 400 px) they ran into each other. The page cuts them again to the width it draws the
    figure at, their lines above the range written over each axis."""
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    names = [f"layer_{i}_" + "dropout_probability_of_the_attention_block"[:20 + 5 * i] for i in range(6)]
    ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), storage=url, name="narrow", sampler="random",
             seed=0).optimize(lambda t: sum(t.params.values()), n_trials=12)
    with _dashboard(url, subprocess_env) as base:
        pages = [_read(chromium, f"{base}/studies/narrow", lambda page: (
            page.locator("section[data-kind='parallel']").scroll_into_view_if_needed(), in_browser.read_parallel_titles(page))[1],
            width=width) for width in (600, 400)]
    in_browser.assert_parallel_titles_apart(pages)


def test_parallel_axis_titles_are_cut_again_when_the_window_narrows_after_a_live_update(
    tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages
) -> None:
    """The live update draws a study's figures anew (``Plotly.react``), which drops their listeners: the page's
    script that cuts titles again at each redraw was never set again, so a window narrowed after an update
    (500 -> 380 px) kept the parallel axes' titles cut for 500 px, overlapping."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    url = f"sqlite:///{tmp_path / 'live.db'}"
    names = [f"layer_{i}_" + "dropout_probability_of_the_attention_block"[:20 + 5 * i] for i in range(6)]
    ts.Study(ts.Space({name: ts.Float(0, 1) for name in names}), storage=url, name="live", sampler="random",
             seed=0).optimize(lambda t: sum(t.params.values()), n_trials=12)
    label = ("() => [...document.querySelectorAll('.js-plotly-plot')].find(gd => gd.querySelector('.axis-title'))"
             ".data[0].dimensions[0].label")
    with _dashboard(url, subprocess_env) as base:
        try:
            page = chromium.new_page(viewport={"width": 500, "height": 900})
            page.route("**/*", only((base + "/",), []))
            page.goto(f"{base}/studies/live", wait_until="load")
            page.locator("section[data-kind='parallel']").scroll_into_view_if_needed()
            in_browser.read_parallel_titles(page)
            ts.load_study("live", url).optimize(lambda t: sum(t.params.values()), n_trials=8)
            page.wait_for_function("[...document.querySelectorAll('.gtitle')].some(t => t.textContent.includes("
                                   "'of 20 complete trials'))", timeout=60_000)  # the update drew the figure anew
            updated = in_browser.read_parallel_titles(page)
            before = page.evaluate(label)
            page.set_viewport_size({"width": 380, "height": 900})
            with contextlib.suppress(PlaywrightTimeout):  # cut again (else the titles below overlap)
                page.wait_for_function(f"({label})() !== {json.dumps(before)}", timeout=15_000)
            narrowed = in_browser.read_parallel_titles(page)
        finally:
            chromium.close()
    assert narrowed[2] < updated[2], (narrowed[2], updated[2])  # the figure was drawn narrower
    in_browser.assert_parallel_titles_apart([updated, narrowed])


def test_a_process_diagram_that_becomes_a_note_in_a_live_update_leaves_the_note_the_phone_s_width(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """The process diagram is kept as wide as its boxes' texts need (its column of boxes, the pruner beside the
    trials: about 330 px), scrolled sideways in a narrower box. When a live update brought a reason instead of a
    figure (the plot could not be computed), the note kept that width: its words ran wider than the window, to be
    read by scrolling sideways. The note takes the page's width."""
    url = f"sqlite:///{tmp_path / 'note.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0, pruner=ASHA()).optimize(
        lambda t: t.params["x"], n_trials=3)
    process = "document.getElementById('plot-process-0')"
    answers: list[str] = []

    def failing_after_the_first(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        if answers:  # the live update's answer: the plot could not be drawn
            body["plots"][0] = {"title": body["plots"][0]["title"], "message": "the storage could not be read"}
        answers.append("reason" if answers else "figure")
        route.fulfill(response=answer, json=body)

    with _dashboard(url, subprocess_env, "--poll", "0.5") as base:
        try:
            page = chromium.new_page(viewport={"width": 300, "height": 6000})  # every plot on the first screen
            page.route(f"{base}/api/studies/s/plots/process", failing_after_the_first)
            page.goto(base + "/studies/s", wait_until="load")
            page.wait_for_function(f"{process} !== null && {process}.classList.contains('plot') && {process}.tunesmithFitted",
                                   timeout=30_000)
            drawn = page.evaluate(f"{process}.getBoundingClientRect().width")
            ts.load_study("s", url).optimize(lambda t: t.params["x"], n_trials=1)  # the change the page polls for
            page.wait_for_function(f"{process}.className === 'note empty'", timeout=30_000)
            note = page.evaluate(f"[{process}.getBoundingClientRect().width, {process}.textContent]")
        finally:
            chromium.close()
    assert drawn > 300, drawn  # the diagram kept as wide as its texts need
    assert note[1].endswith("the storage could not be read") and note[0] <= 300, note


def test_a_live_update_on_a_phone_draws_the_process_diagram_s_column_once_and_it_follows_the_window(
        tmp_path: Path, subprocess_env: dict[str, str], chromium: Pages) -> None:
    """On a page narrower than the process diagram's row, each live update drew the row (``Plotly.react``) and then
    relaid it out as the column: the diagram drawn twice an update (163 + 237 ms on a loaded machine). It is drawn
    as the column at once. And the switch between the row and the column left the figure at the width it was
    switched at where its title kept its lines (a short name): widened to 1200 px, the row stayed 368 px wide,
    narrowed again, the column 717 px wide in a box of 368. Both follow the window now."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    url = f"sqlite:///{tmp_path / 'phone.db'}"

    def objective(t: ts.Trial) -> float:
        for step in range(3):
            t.report(t.params["x"] + step, step)
            if t.should_prune():
                raise ts.TrialPruned()
        return t.params["x"]

    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0, pruner=ASHA(min_resource=1)).optimize(
        objective, n_trials=3)
    process = "document.getElementById('plot-process-0')"
    drawn = (f"(() => {{ const gd = {process}; return [gd.layout.tunesmithDrawn || 'row', gd._fullLayout.width, "
             "gd.parentElement.clientWidth]; })()")
    seen: dict[Any, Any] = {}
    with _dashboard(url, subprocess_env, "--poll", "0.5") as base:
        try:
            page = chromium.new_page(viewport={"width": 400, "height": 900})
            page.route("**/*", only((base + "/",), []))
            page.goto(base + "/studies/s", wait_until="load")
            page.wait_for_function(f"{process} && {process}.tunesmithFitted && {process}.layout.tunesmithDrawn === 'stack'",
                                   timeout=60_000)
            page.evaluate(f"""() => {{ window.relaid = [];  // the process diagram's shapes drawn anew after a draw
              const relayout = Plotly.relayout;
              Plotly.relayout = function (gd, update, ...rest) {{
                if (gd === {process} && update && update.shapes) {{ window.relaid.push(update.height); }}
                return relayout.call(this, gd, update, ...rest);
              }}; }}""")
            version = page.evaluate(f"{process}.dataset.version")
            ts.load_study("s", url).optimize(objective, n_trials=1)  # the change the page polls for
            page.wait_for_function(f"{process}.dataset.version !== {json.dumps(version)} && {process}.tunesmithFitted",
                                   timeout=60_000)
            seen["updated"] = [page.evaluate(drawn), page.evaluate("window.relaid")]
            for step, width in enumerate((1200, 400, 1200)):
                page.set_viewport_size({"width": width, "height": 900})
                want = "row" if width == 1200 else "stack"
                with contextlib.suppress(PlaywrightTimeout):  # drawn so (else what it is drawn as fails below)
                    page.wait_for_function(f"(([k, w, box]) => k === '{want}' && Math.abs(w - box) <= 1)({drawn})",
                                           timeout=20_000)
                seen[step, width] = page.evaluate(drawn)
        finally:
            chromium.close()
    assert seen["updated"][0][0] == "stack" and seen["updated"][1] == [], seen  # the column, drawn once
    for (_, width), (kind, figure, box) in [(k, v) for k, v in seen.items() if k != "updated"]:
        assert kind == ("row" if width == 1200 else "stack") and abs(figure - box) <= 1, (width, seen)
