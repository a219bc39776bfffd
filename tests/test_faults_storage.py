"""Faults of the storage: many workers starting at once, a full disk, a damaged or
altered database, an outage past the retry window, read-only media, hostile names
and values. Real SQLite files and a real PostgreSQL server (tests/pg.py); a full
disk and read-only media are real small file systems mounted for the test where
the machine allows it (root with mount rights), else the test skips and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPAWN_OPEN = (
    "import sys, time\n"
    "from tunesmith.storage import SQLStorage\n"
    "start = float(sys.argv[2])\n"
    "time.sleep(max(0.0, start - time.time()))\n"
    "st = SQLStorage(sys.argv[1])\n"
    "print(len(st.list_studies()))\n"
)


def _start_together(url: str, n: int, env: dict[str, str]) -> list[tuple[int, str]]:
    """``n`` processes open ``url`` at the same instant; their exit codes and errors."""
    start = time.time() + 2.0  # every interpreter is up and has imported tunesmith by then
    procs = [
        subprocess.Popen([sys.executable, "-c", SPAWN_OPEN, url, repr(start)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return [(p.wait(60), p.communicate()[1][-400:]) for p in procs]


@pytest.mark.slow
def test_eight_workers_start_at_once_on_an_empty_postgres_database(pg_server, subprocess_env) -> None:  # type: ignore[no-untyped-def]
    # without a lock on schema creation 4-7 of 8 fail (concurrent CREATE TABLE);
    # three fresh databases make a lucky pass without the lock unlikely
    for i in range(3):
        url = pg_server.create_database(f"fresh_start_{os.getpid()}_{i}")
        results = _start_together(url, 8, subprocess_env)
        assert [rc for rc, _ in results] == [0] * 8, [err for rc, err in results if rc]


# -- the PostgreSQL password is never shown -------------------------------------------------------
SECRET = "Hunter2-s3cret"


@pytest.fixture
def secret_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    """A fresh database by a URL with a password (the test server trusts 127.0.0.1, so any works)."""
    url = pg_server.create_database(f"secret_{os.getpid()}_{time.monotonic_ns()}")
    return url.replace("postgres@", f"postgres:{SECRET}@")


def _cli(*argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunesmith", *argv], cwd=cwd, env={**env, "COLUMNS": "300"},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_postgres_password_is_masked_everywhere_it_is_shown(
    secret_url: str, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    import tunesmith as ts

    study = ts.Study({"x": ts.Float(0, 1)}, storage=secret_url, name="masked", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    shown = [repr(study), repr(study.storage), str(study.storage.display_url)]
    with pytest.raises(ValueError) as dup:
        ts.Study({"x": ts.Float(0, 1)}, storage=secret_url, name="masked", load_if_exists=False)
    shown.append(str(dup.value))
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.params['x']\n")
    spec = (f"name: masked\nstorage: {secret_url}\nobjective: obj.py:objective\n"
            "space: {x: {type: float, low: 0, high: 1}}\nn_trials: 2\n")
    (tmp_path / "s.yaml").write_text(spec)
    (tmp_path / "none.yaml").write_text(f"name: nope\nstorage: {secret_url}\nobjective: obj.py:objective\n")
    bad_db = secret_url.rsplit("/", 1)[0] + "/no_such_database"
    runs = {
        "run": _cli("run", "s.yaml", "--no-progress", cwd=tmp_path, env=subprocess_env),
        "worker": _cli("worker", "s.yaml", cwd=tmp_path, env=subprocess_env),
        "studies": _cli("studies", "--storage", secret_url, cwd=tmp_path, env=subprocess_env),
        "show missing": _cli("show", "nope", "--storage", secret_url, cwd=tmp_path, env=subprocess_env),
        "worker missing": _cli("worker", "none.yaml", cwd=tmp_path, env=subprocess_env),
        "cannot open": _cli("studies", "--storage", bad_db, cwd=tmp_path, env=subprocess_env),
        "export": _cli("export", "nope", "--storage", bad_db, cwd=tmp_path, env=subprocess_env),
    }
    assert [runs[k].returncode for k in ("run", "worker", "studies")] == [0, 0, 0], runs
    assert "masked" in runs["studies"].stdout and "***" in runs["studies"].stdout
    assert "***" in runs["run"].stdout and "***" in runs["worker"].stdout
    for name in ("show missing", "worker missing", "cannot open", "export"):
        assert runs[name].returncode != 0 and "***@" in runs[name].stderr, (name, runs[name].stderr)
        assert "Traceback" not in runs[name].stderr
    assert "cannot open storage" in runs["cannot open"].stderr
    assert "no_such_database" in runs["cannot open"].stderr and "does not exist" in runs["cannot open"].stderr
    for text in shown + [r.stdout + r.stderr for r in runs.values()]:
        assert SECRET not in text, text
    assert all("***" in s for s in shown)
    # the real URL still connects: worker processes and Ray actors are given it
    assert study.storage.url == secret_url
    assert len(ts.Study.load("masked", study.storage.url).trials) == 6
