"""Shared fixtures.

``storage_url`` runs a test once per storage backend: memory, SQLite, and
PostgreSQL (a throwaway server the session starts on 127.0.0.1, a fresh
database per test; skipped with the reason where no server can be started,
a failure in CI). To add a backend, add an entry to ``STORAGE_BACKENDS``: a
name and a function ``(request, tmp_path) -> url`` (``None`` means in memory).
``TUNESMITH_TEST_POSTGRES_URL`` uses an existing server instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_util import set_ray_env

import tunesmith as ts
from tunesmith.storage import make_storage

# before any test module imports Ray: Ray imported without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# starts its local instance on the machine's network address, whatever _node_ip_address says
set_ray_env()

# A test run started as a background job of a script (`bash .ci/run &`, `nohup ... &`) inherits SIGINT
# ignored, and so would every child the tests start: the Ctrl-C tests' children then never see their
# SIGINT. Ctrl-C is what those tests are about, so the run takes it back (children start with it at
# default). The test of an inherited ignored SIGINT ignores it in its own child on purpose.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Under nohup SIGHUP comes ignored, and the command keeps an ignored SIGHUP (by design), so the tests of a
# terminal closing would see it live on. A handler that does nothing leaves this run as deaf to a hang-up
# as nohup made it, while every child starts with SIGHUP at its default (exec resets a caught signal,
# not an ignored one): children start as from a terminal.
if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tunesmith.db'}"


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    given = os.environ.get("TUNESMITH_TEST_POSTGRES_URL")
    return given if given else str(request.getfixturevalue("pg_url"))


STORAGE_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str | None]] = {
    "memory": lambda request, tmp_path: None,
    "sqlite": lambda request, tmp_path: _sqlite(tmp_path),
    "postgresql": _postgresql,
}

# backends that several processes can share
SHARED_BACKENDS = [name for name in STORAGE_BACKENDS if name != "memory"]


def _wipe(url: str | None) -> None:
    """Delete every study: a database server outlives the test (a SQLite file does not)."""
    if url is None or url.startswith("sqlite"):
        return
    st = make_storage(url)
    for rec in st.list_studies():
        st.delete_study(rec.name)
    st.close()


@pytest.fixture(params=list(STORAGE_BACKENDS))
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A fresh, empty storage URL per backend (``None``: in memory)."""
    url = STORAGE_BACKENDS[request.param](request, tmp_path)
    _wipe(url)
    yield url
    _wipe(url)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty URL of a storage that processes can share."""
    url = STORAGE_BACKENDS[request.param](request, tmp_path)
    assert url is not None
    _wipe(url)
    yield url
    _wipe(url)


@pytest.fixture
def storage(storage_url: str | None) -> Iterator[ts.Storage]:
    st = make_storage(storage_url)
    yield st
    st.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return _sqlite(tmp_path)


@pytest.fixture
def sql_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The write transactions SQL storages run from now on, each named by the path it took: ``_run``
    (SQLAlchemy's) or ``_tx`` (the hot path's prepared statements)."""
    writes: list[str] = []
    for method in ("_run", "_tx"):
        real = getattr(ts.SQLStorage, method)
        monkeypatch.setattr(ts.SQLStorage, method, lambda self, fn, *, write, _m=method, _real=real:
                            (writes.append(_m) if write else None) or _real(self, fn, write=write))
    return writes


@pytest.fixture
def matplotlib_fonts_alone() -> Iterator[None]:
    """matplotlib's font list as on a machine with only its own fonts (DejaVu, STIX: no Chinese, no emoji),
    whatever this one has installed: a desktop with Noto Sans CJK drew these names, and the tests of the
    warning failed there. The real list, cut to matplotlib's folder and put back after."""
    from matplotlib import font_manager, get_data_path

    listed = font_manager.fontManager.ttflist
    own = str(Path(get_data_path()) / "fonts")
    font_manager.fontManager.ttflist = [e for e in listed if str(e.fname).startswith(own)]
    font_manager.FontManager._findfont_cached.cache_clear()
    yield
    font_manager.fontManager.ttflist = listed
    font_manager.FontManager._findfont_cached.cache_clear()


@pytest.fixture
def svm_space() -> ts.Space:
    """The seed's example space (issue 2)."""
    return ts.Space({
        "kernel": ts.Categorical(["linear", "poly", "rbf"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "gamma": ts.Float(1e-5, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
        "degree": ts.Int(2, 5, when={"kernel": ["poly"]}),
    })


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a child ``python`` that imports this checkout's tunesmith."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])  # not "src:"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


sys.path.insert(0, str(Path(__file__).parent))

from browser import BROWSER_ARGS, CHROMIUM, Pages, browser_or_skip  # noqa: E402
from pg import PostgresServer, PostgresUnavailable  # noqa: E402

_db_numbers = itertools.count()

# The command line's tables take their width from COLUMNS when it is set (else the width they need when
# not writing to a terminal); pytest-xdist's workers set COLUMNS=80, which the table tests do not expect.
os.environ.pop("COLUMNS", None)


@pytest.fixture(scope="module")
def _module_chromium() -> Iterator[Callable[[], Any]]:
    """One headless chromium for a module's browser tests, started again if it went away: a driver and a
    browser started per test took 1-2 s of each (5-9 s on a loaded machine). Playwright's sync API holds the
    thread's event loop as running while it is started, so a module that uses it must take every browser from
    ``chromium`` and run no ``asyncio.run`` of its own in this thread."""
    sync_api = browser_or_skip()
    with sync_api.sync_playwright() as pw:
        held: list[Any] = []

        def browser() -> Any:
            if not held or not held[-1].is_connected():
                held.append(pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS))
            return held[-1]

        try:
            yield browser
        finally:
            for b in held:
                with contextlib.suppress(Exception):
                    b.close()


@pytest.fixture
def chromium(_module_chromium: Callable[[], Any]) -> Iterator[Pages]:
    """The test's own pages in its module's headless chromium (Debian's, driven by Playwright), closed after it."""
    pages = Pages(_module_chromium())
    try:
        yield pages
    finally:
        pages.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session.

    Skipped with the reason when none can be started, except in CI (env var
    ``CI`` set), where that is a failure: CI installs PostgreSQL.
    """
    try:
        server = PostgresServer()
        server.__enter__()
    except (PostgresUnavailable, ImportError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests but no server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started ({exc}); apt-get install -y postgresql")
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a SQLAlchemy URL."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_numbers)}")


#: the session's Ray instance: its temp dir, and the last test that ran on it (see _ray_all_free)
_RAY: dict[str, Any] = {}


def _start_ray(ray: Any) -> None:
    """Start the session's Ray instance: private, single-node, on 127.0.0.1, 2 CPUs."""
    from ray_util import quiet_home, short_tmp

    temp = _RAY["temp"] = short_tmp("tsr")
    home = os.environ.get("HOME")
    os.environ["HOME"] = quiet_home(temp)  # for the Ray processes ray.init starts (see quiet_home)
    try:
        ray.init(address="local", num_cpus=2, num_gpus=0, _temp_dir=str(temp), _node_ip_address="127.0.0.1",
                 include_dashboard=False, log_to_driver=False)
    finally:
        if home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = home


def _stop_ray(ray: Any) -> None:
    from ray_util import kill_all_under

    ray.shutdown()
    kill_all_under(_RAY["temp"])
    shutil.rmtree(_RAY["temp"], ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A private single-node Ray instance on 127.0.0.1 (2 CPUs), for the session."""
    from ray_util import set_ray_env

    set_ray_env()
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Ray tests: install the extra, pip install 'tunesmith[ray]'")
        pytest.skip("Ray is not installed: pip install 'tunesmith[ray]'")
    _start_ray(ray)
    yield ray
    _stop_ray(ray)


#: seconds past which a test waiting for the resources the test before it held says so (a warning)
RAY_SLOW_FREE = 20.0


@pytest.fixture(autouse=True)
def _ray_all_free(request: pytest.FixtureRequest) -> None:
    """A test on the session's Ray instance starts with all of its resources free: an earlier test's
    killed actors or tasks still holding some would start its actors late (a two-actor test saw one
    actor run every trial). Waits for them (up to 60 s; over :data:`RAY_SLOW_FREE` s is a warning naming
    the test before), else fails naming what holds them and the test before, and restarts the instance:
    one leak fails the test that found it, not every later one of its xdist worker after 60 s each."""
    if "ray_local" not in request.fixturenames:
        return
    from ray_util import wait_all_free

    ray = request.getfixturevalue("ray_local")
    before, _RAY["last"] = _RAY.get("last"), request.node.nodeid
    start = time.monotonic()
    held = wait_all_free(ray)
    if held:
        _stop_ray(ray)
        _start_ray(ray)
        pytest.fail(f"the session's Ray instance is not free as this test starts (the test before on it: {before}), "
                    f"{held}. It was restarted for the tests after", pytrace=False)
    waited = time.monotonic() - start
    if waited > RAY_SLOW_FREE:
        warnings.warn(f"the session's Ray instance had resources held {waited:.0f} s after {before} ended",
                      stacklevel=1)


def ended_without_blocking(fn: Callable[[], object], fifo: Path, what: str) -> list[object]:
    """What ``fn()`` returned or raised, run in a thread: it must end within 20 s, not wait for a writer of
    ``fifo`` (then a writer's open releases it, and the test fails saying that ``what`` blocked)."""
    import threading

    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001  # what it raised, for the test's thread to hand over
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"{what} blocked on a FIFO until a writer came")
    return out


def said_as_nobody(call: Callable[[], object]) -> str:
    """What ``call()`` says run as another user (uid and gid 65534) in a forked child: "ok", or its error's
    text (root only: setuid)."""
    return said_as(65534, 65534, call)


def said_as(uid: int, gid: int, call: Callable[[], object]) -> str:
    """What ``call()`` says run as user ``uid`` with primary group ``gid`` in a forked child (root only)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(gid)
            os.setuid(uid)
            try:
                call()
                said = "ok"
            except Exception as exc:  # noqa: BLE001  # told to the parent, which asserts on it
                said = str(exc)
            os.write(write, said.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as answer:
        return answer.read()
