"""Faults of the storage: many workers starting at once, a full disk, a damaged or
altered database, an outage past the retry window, read-only media, hostile names
and values. Real SQLite files and a real PostgreSQL server (tests/pg.py); a full
disk and read-only media are real small file systems mounted for the test where
the machine allows it (root with mount rights), else the test skips and says why.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://u:p%40ss@db.internal:5432/t?sslmode=require",
     "postgresql+psycopg://u:***@db.internal:5432/t?sslmode=require"),
    ("postgresql+psycopg://u@h/t?password=s3cret&x=1", "postgresql+psycopg://u@h/t?password=***&x=1"),
    ("sqlite:////tmp/x@y:z.db", "sqlite:////tmp/x@y:z.db"),  # nothing to hide: exactly as given
    ("weird://u:s3cret@host", "weird://u:***@host"),
    # an '@' in the password not percent-encoded: the rest of it was shown as host and database
    ("postgresql+psycopg://u:p@ss/w:rd@db:5432/t", "postgresql+psycopg://***@db:5432/t"),
    ("sqlite:////tmp/x@y@z.db", "sqlite:////tmp/x@y@z.db"),

    ("postgresql+psycopg://u:p@ss@h/t", "postgresql+psycopg://***@h/t"),  # an @ not written %40: "u:***@ss@h"
    ("postgresql+psycopg://u:p@s/s@h/t?password=x", "postgresql+psycopg://***@h/t?password=***"),
])
def test_mask_url(url: str, shown: str) -> None:
    from tunesmith.storage.base import mask_url

    assert mask_url(url) == shown


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


def test_every_command_line_printed_with_a_masked_password_says_to_put_it_back(
    secret_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`tunesmith run`'s summary and an option before the command said "(with the password in place of ***)"
    after a command line holding a masked URL; show's `tunesmith tell` line, the copy's warning about paused
    trials and show's hint for a study file printed the same `***` without a word (the last not even quoted
    for the shell), to run as printed and fail to connect."""
    import tunesmith as ts
    from tunesmith.cli import main

    study = ts.Study({"x": ts.Float(0, 1)}, storage=secret_url, name="s", sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(pause=True, min_resource=1, reduction_factor=3, max_resource=9))
    trial = study.ask()
    trial.set_attr("checkpoint", "ck")
    trial.report(0.5, 1)
    study.tell(trial, state="paused")
    (tmp_path / "s.yaml").write_text(f"name: s\nstorage: {secret_url}\nobjective: obj.py:objective\n")
    monkeypatch.chdir(tmp_path)
    note = "(with the password in place of ***)"
    assert main(["show", "s", "--storage", secret_url]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--state pruned --storage 'postgresql+psycopg://postgres:***@" in shown and f"{note} ends one" in shown
    assert main(["copy", "s", "s2", "--storage", secret_url]) == 0
    warned = " ".join(r.getMessage() for r in caplog.records if "paused trial" in r.getMessage())
    assert "`tunesmith tell s2 0 --state pruned --storage 'postgresql+psycopg://postgres:***@" in warned
    assert warned.endswith(f"` {note})"), warned
    assert main(["show", "s.yaml", "--storage", secret_url]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "pass its study's name and storage, s --storage 'postgresql+psycopg://postgres:***@" in said
    assert said.endswith(f" {note}"), said
    assert SECRET not in shown + warned + said


# -- a full disk, a damaged or altered database, an outage, read-only media ----------------------
@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 1 MiB file system (tmpfs) mounted for the test; skipped where mounting is impossible."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root with mount rights): {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC: the disk is full
    finally:
        os.close(fd)


def _main(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from tunesmith.cli import main

    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_full_disk_fails_with_storage_error_naming_the_file(small_fs: Path) -> None:
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'study.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="full", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    _fill(small_fs)
    with pytest.raises(StorageError) as err:
        study.optimize(lambda t: t.params["x"], n_trials=2000)
    assert str(small_fs / "study.db") in str(err.value)
    assert "disk is full" in str(err.value) and "free space" in str(err.value)
    assert len(ts.Study.load("full", url).trials) >= 3  # what was written is still there


def test_corrupt_page_mid_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    path = tmp_path / "c.db"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{path}", name="c", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=300)
    study.storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    pages = path.stat().st_size // 4096
    assert pages >= 8
    with open(path, "r+b") as f:  # one page in the middle overwritten with garbage
        f.seek(pages // 2 * 4096)
        f.write(bytes(range(256)) * 16)
    with pytest.raises(StorageError, match="malformed") as err:
        _ = ts.Study.load("c", f"sqlite:///{path}").trials
    assert str(path) in str(err.value) and "backup" in str(err.value)
    rc, _, stderr = _main("show", "c", "--storage", f"sqlite:///{path}", capsys=capsys)
    assert rc != 0 and stderr.count("\n") == 1 and "malformed" in stderr and "Traceback" not in stderr


def _altered(tmp_path: Path, sql: str) -> str:
    import sqlite3

    from tunesmith.storage import SQLStorage

    path = tmp_path / "a.db"
    SQLStorage(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    return f"sqlite:///{path}"


@pytest.mark.parametrize(("sql", "message"), [
    ("ALTER TABLE ts_trials DROP COLUMN heartbeat", r"table ts_trials lacks column\(s\) \['heartbeat'\]"),
    ("DELETE FROM ts_meta", "ts_meta has no schema_version row"),
    ("UPDATE ts_meta SET value = 'one' WHERE key = 'schema_version'", "schema version 'one' .* not an integer"),
    ("UPDATE ts_meta SET value = '99' WHERE key = 'schema_version'", "schema version 99, written by a newer"),
    ("DROP TABLE ts_trials", r"not \['ts_trials'\]"),
])
def test_altered_tables_are_refused_with_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, message: str
) -> None:
    from tunesmith.exceptions import SchemaVersionError
    from tunesmith.storage import SQLStorage

    url = _altered(tmp_path, sql)
    with pytest.raises(SchemaVersionError, match=message):
        SQLStorage(url)
    with pytest.raises(SchemaVersionError, match=message):
        SQLStorage(url, read_only=True)
    rc, _, stderr = _main("studies", "--storage", url, capsys=capsys)
    assert rc != 0 and stderr.count("\n") == 1 and str(tmp_path / "a.db") in stderr


def test_postgres_outage_past_the_retry_window_is_a_storage_error(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    from tunesmith.exceptions import StorageError
    from tunesmith.storage import SQLStorage

    st = SQLStorage(pg_url.replace("postgres@", "postgres:pw@"), retry_window=1.0)
    assert st.list_studies() == []
    pg_server.stop()
    try:
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=r"still failing after retry_window=1 s") as err:
            st.list_studies()
        assert 1.0 <= time.monotonic() - t0 < 15.0
        assert "pw@" not in str(err.value) and "***@" in str(err.value)
    finally:
        pg_server.start()
    assert st.list_studies() == []  # the same storage works again once the server is back
    with pytest.raises(ValueError, match="retry_window must be a finite number of seconds"):
        SQLStorage(pg_url, retry_window=float("nan"))


def test_read_only_database_can_be_listed_shown_and_exported(
    small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'ro.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="ro", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=4)
    study.storage.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    for argv in (["studies"], ["show", "ro"], ["export", "ro", "--format", "json"]):
        rc, out, err = _main(argv[0], *argv[1:], "--storage", url, capsys=capsys)
        assert rc == 0, err
        assert "ro" in out
    assert _main("export", "ro", "--storage", url, capsys=capsys)[1].count("\n") == 5  # header + 4 trials
    reader = ts.SQLStorage(url, read_only=True)
    with pytest.raises(StorageError, match="opened read-only"):
        reader.create_study("new", direction=ts.Direction.MINIMIZE, space={}, config={})
    with pytest.raises(StorageError, match="unable to open.*write its folder"):  # a run must write
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="ro2")


def test_registered_sampler_is_rebuilt_when_its_study_is_reopened(tmp_path: Path) -> None:
    import tunesmith as ts
    from tunesmith.samplers import RandomSampler, register

    class Mine(RandomSampler):
        pass

    register("Mine-Sampler", Mine)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="r", sampler="mine-sampler", seed=3)
    reopened = ts.Study.load("r", url)
    assert type(reopened.sampler) is Mine and reopened.sampler.seed == 3
    with pytest.raises(ValueError, match="registered as 'random' already"):
        register("other", RandomSampler)
    assert RandomSampler.name == "random"


def test_error_classes(tmp_path: Path) -> None:
    import tunesmith as ts

    for url in (None, f"sqlite:///{tmp_path / 'e.db'}"):
        st = ts.storage.make_storage(url)
        st.create_study("a", direction=ts.Direction.MINIMIZE, space={}, config={})
        with pytest.raises(ts.DuplicateStudyError, match="'a' already exists") as dup:
            st.create_study("a", direction=ts.Direction.MINIMIZE, space={}, config={})
        assert isinstance(dup.value, ValueError)
        with pytest.raises(ts.TrialNotFound, match="no trial number 7") as missing:
            st.get_trial(st.get_study("a").study_id, 7)
        assert isinstance(missing.value, KeyError)


# -- hostile names and values --------------------------------------------------------------------
@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'h.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize(("name", "message"), [
    ("n" * 10_000, "study name of 10000 characters .* is too long; use at most 512"),
    ("a\x00b", r"contains the control character '\\x00'"),
    ("two\nlines", r"control character '\\n'"),
    ("   ", "must not be empty or blank"),
    ("-neg", "study name '-neg' starts with '-': the command line .* would read it as an option; start it with "
             "another character, e.g. 'neg'"),
])
def test_hostile_study_names_are_refused_before_the_database(any_url: str | None, name: str, message: str) -> None:
    import tunesmith as ts
    from tunesmith.exceptions import StudyNotFound
    from tunesmith.storage import make_storage

    st = make_storage(any_url)
    with pytest.raises(ValueError, match=message):
        ts.Study({"x": ts.Float(0, 1)}, storage=st, name=name)
    if "\n" in name or name.startswith("-"):  # a lookup passes them (a study stored so by another program)
        with pytest.raises(StudyNotFound):
            st.get_study(name)
    else:
        with pytest.raises(ValueError, match=message):
            st.get_study(name)
    assert st.list_studies() == []
    ok = ts.Study({"x": ts.Float(0, 1)}, storage=st, name="é" * 512)  # the longest accepted, any letters
    assert ts.Study.load("é" * 512, st).name == ok.name


def _huge(trial):  # type: ignore[no-untyped-def]
    return 10**400


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_objective_returning_10_to_the_400_fails_its_trial(tmp_path: Path, n_jobs: int) -> None:
    import tunesmith as ts

    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'v.db'}", sampler="random", seed=0)
    study.optimize(_huge, n_trials=4, n_jobs=n_jobs)  # the workers survive it
    assert [t.state for t in study.trials] == [ts.TrialState.FAILED] * 4
    assert "objective returned 1000" in str(study.trials[0].error)
    assert "(401 characters) (int); return a finite number" in str(study.trials[0].error)
    trial = study.ask()
    with pytest.raises(ValueError, match=r"report\(\) takes a finite number, got 1000.*\(401 characters\)"):
        trial.report(10**400)
    trial.report(-(10**300))  # a big integer that fits a float is a number like any other
    assert trial.intermediate == {1: -1e300}  # a report without a step is step 1 (steps count from 1)


def test_rich_markup_in_names_is_shown_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tunesmith as ts

    monkeypatch.setenv("COLUMNS", "250")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.params['[/nope]']\n")
    (tmp_path / "m.yaml").write_text(
        "name: '[bold red]x[/]'\nobjective: obj.py:objective\nsampler: random\nn_trials: 3\n"
        f"storage: {url}\nspace: {{'[/nope]': {{type: float, low: 0, high: 1}}}}\n"
    )
    rc, out, err = _main("run", str(tmp_path / "m.yaml"), "--progress", capsys=capsys)
    assert rc == 0, err
    assert "[bold red]x[/]" in out and "[/nope]" in out and "[bold red]x[/]" in err  # summary, table, bar
    for argv in (["studies"], ["show", "[bold red]x[/]"]):
        rc, out, err = _main(*argv, "--storage", url, capsys=capsys)
        assert rc == 0, err
        assert "[bold red]x[/]" in out
    assert "[/nope]" in out
    assert ts.Study.load("[bold red]x[/]", url).best_params.keys() == {"[/nope]"}


# -- study files that used to be accepted and fail later -----------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("n_trials: 3\nn_trials: 5\n", r"line 4: the key 'n_trials' is given twice \(first on line 3\)"),
    ("timeout: .nan\n", "timeout must be a positive, finite number of seconds, got nan"),
    ("n_jobs: 100000000\n", "n_jobs must be an integer from 1 to 1024, or -1"),
])
def test_study_file_refuses_duplicates_nan_timeout_and_absurd_n_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    import re

    (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.params['x']\n")
    db = tmp_path / "s.db"
    (tmp_path / "s.yaml").write_text(
        f"objective: obj.py:objective\nstorage: sqlite:///{db}\n{text}space: {{x: {{type: float, low: 0, high: 1}}}}\n"
    )
    rc, _, err = _main("run", str(tmp_path / "s.yaml"), "--no-progress", capsys=capsys)
    assert rc == 2 and re.search(message, err) and err.count("\n") == 1, err
    assert not db.exists()  # refused before anything started


# -- messages ----------------------------------------------------------------------------------------
def test_messages_exhausted_grid_missing_script_and_rounded_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunesmith as ts

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return abs(trial.params['x'] - 0.3)\n")
    (tmp_path / "g.yaml").write_text(
        f"name: g\nobjective: obj.py:objective\nsampler: grid\nstorage: sqlite:///{tmp_path / 'g.db'}\n"
        "space: {x: {type: float, low: 0, high: 0.5, step: 0.1}}\n"
    )
    rc, out, err = _main("run", "g.yaml", "--no-progress", capsys=capsys)
    assert rc == 0, err
    assert "6 trials run now" in out and '"x": 0.3}' in out and "0.30000000000000004" not in out
    stored = ts.Study.load("g", f"sqlite:///{tmp_path / 'g.db'}").best_params["x"]
    assert stored == 0.3 != 3 * 0.1  # the step lattice's value as written (stored as shown since 6550e4d)
    rc, out, err = _main("run", "g.yaml", "--no-progress", capsys=capsys)
    assert rc == 0 and "nothing searched now (the grid is exhausted" in out and "trials run now" not in out
    (tmp_path / "m.yaml").write_text("name: m\nobjective: nope.py:objective\n")
    rc, _, err = _main("run", "m.yaml", capsys=capsys)
    assert rc == 2 and err.count(str(tmp_path / "nope.py")) == 1, err


def test_gpus_this_machine_lacks_are_refused_unless_allowed(tmp_path: Path) -> None:
    import tunesmith as ts
    from tunesmith.execution.gpu import parse_nvidia_smi, present_gpus

    listing = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-4a5b)\n"
               "  MIG 1g.10gb     Device  0: (UUID: MIG-9f8e)\n"
               "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-77aa)\n")
    assert parse_nvidia_smi(listing) == {"0", "1", "GPU-4a5b", "MIG-9f8e", "GPU-77aa"}
    missing = [g for g in ("0", "1") if g not in present_gpus()]
    if not missing:
        pytest.skip("this machine has GPUs 0 and 1")
    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'gpu.db'}", sampler="random", seed=0)
    with pytest.raises(ValueError, match=rf"gpus=\[0, 1\]: this machine has no GPU \[{', '.join(missing)}\]"
                                         ".*allow_missing_gpus=True"):
        study.optimize(lambda t: t.params["x"], n_trials=2, gpus=[0, 1])
    assert study.trials == []  # refused before anything started
    study.optimize(lambda t: t.params["x"], n_trials=2, gpus=[0, 1], allow_missing_gpus=True)
    assert len(study.trials) == 2


def test_reading_an_empty_database_creates_nothing(tmp_path: Path, pg_url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy as sa

    import tunesmith as ts

    empty = tmp_path / "empty.db"
    empty.touch()  # a 0-byte file: SQLite's empty database
    for url in (f"sqlite:///{empty}", pg_url):
        reader = ts.SQLStorage(url, read_only=True)
        assert reader.list_studies() == []
        with pytest.raises(ts.StudyNotFound, match="no study named 'x'"):
            reader.get_study("x")
        rc, out, err = _main("studies", "--storage", url, capsys=capsys)
        assert rc == 0 and out == "" and "no studies in" in err
        assert sa.inspect(sa.create_engine(url)).get_table_names() == []  # no table was made
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(("query", "cause"), [
    ("?sslmode=bogus", 'invalid sslmode value: "bogus"'),
    ("?connect_timeout=x", "connect_timeout"),
    ("?sslmod=require", 'invalid connection option "sslmod"'),
])
def test_a_bad_connection_option_is_refused_at_once_not_retried(query: str, cause: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL's bad option fails the same on every try: it was retried for the whole
    retry_window (30 s by default) before the error came. The waits between tries are counted."""
    pytest.importorskip("psycopg")
    from pg import free_port

    from tunesmith.exceptions import StorageError
    from tunesmith.storage import SQLStorage, sql

    waits = []
    wait = sql._Backoff.wait
    monkeypatch.setattr(sql._Backoff, "wait", lambda self, **kw: waits.append(kw) or wait(self, **kw))
    with pytest.raises(StorageError, match="cannot open storage") as err:
        SQLStorage(f"postgresql+psycopg://u:pw@127.0.0.1:{free_port()}/db{query}", retry_window=20.0)
    assert waits == [] and cause in str(err.value) and "retry_window" not in str(err.value)  # no second try


def test_a_missing_password_is_refused_at_once_saying_where_to_give_it(
        pg_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A role that needs a password, opened without one (a Ray node whose `ray start` lacked
    PGPASSWORD): libpq's "no password supplied" was retried for the whole retry_window (60 s
    from a study file), then given with no word on where the password goes."""
    from tunesmith.exceptions import StorageError
    from tunesmith.storage import SQLStorage, sql

    url = pg_server.password_role(f"pw_{os.getpid()}_{time.monotonic_ns()}", SECRET)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    waits = []
    wait = sql._Backoff.wait
    monkeypatch.setattr(sql._Backoff, "wait", lambda self, **kw: waits.append(kw) or wait(self, **kw))
    with pytest.raises(StorageError, match="no password supplied") as err:
        SQLStorage(url, retry_window=20.0)
    assert waits == [] and "set PGPASSWORD" in str(err.value) and "ray start" in str(err.value)
    with pytest.raises(StorageError, match="password authentication failed") as err:
        SQLStorage(url.replace("@", ":wrong@"), retry_window=20.0)
    assert waits == [] and "check the password" in str(err.value) and "wrong" not in str(err.value)
    monkeypatch.setenv("PGPASSWORD", SECRET)  # given where the hint says, it opens
    assert SQLStorage(url).list_studies() == []


def test_a_password_role_rides_out_a_server_restart(pg_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing or refused password fails at once; a server that is only restarting, under a role
    whose password PGPASSWORD gives, must still be waited for (it answers "the database system is
    starting up", or refuses the connection, before it asks for any password): the study is read
    once it is back, nothing lost."""
    import threading

    import tunesmith as ts
    from tunesmith.storage import SQLStorage

    url = pg_server.password_role(f"pwr_{os.getpid()}_{time.monotonic_ns()}", SECRET)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="r", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    storage = SQLStorage(url, retry_window=60.0)
    pg_server.stop()
    back = threading.Thread(target=pg_server.start)
    timer = threading.Timer(2.0, back.start)
    timer.start()
    try:
        assert [s.name for s in storage.list_studies()] == ["r"]  # waited for the restart, not refused
        assert storage.count_trials(storage.get_study("r").study_id) == 3
    finally:
        timer.join()
        back.join()


def test_a_port_that_is_not_a_number_is_named_with_the_storage() -> None:
    from tunesmith.storage import SQLStorage

    with pytest.raises(ValueError, match=r"storage 'postgresql\+psycopg://u:\*\*\*@h:abc/db': its port must be a number"):
        SQLStorage("postgresql+psycopg://u:pw@h:abc/db")  # before: "invalid literal for int() with base 10: 'abc'"


def test_a_password_with_an_unencoded_at_sign_is_refused_without_showing_it() -> None:
    from tunesmith.storage import SQLStorage

    with pytest.raises(ValueError, match="holds an '@' that is not percent-encoded") as err:
        SQLStorage("postgresql+psycopg://u:p@ss/w:rd@127.0.0.1:5432/t")  # before: "failed to resolve host 'ss'"
    assert "ss/w" not in str(err.value) and "'postgresql+psycopg://***@127.0.0.1:5432/t'" in str(err.value)


def test_a_sqlite_path_under_the_home_folder_opens_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: the folder check expanded "~" but SQLite did not: "unable to open database file"
    import tunesmith as ts

    monkeypatch.setenv("HOME", str(tmp_path))
    study = ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///~/home.db", name="h", sampler="random")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    assert (tmp_path / "home.db").is_file() and len(ts.load_study("h", f"sqlite:///{tmp_path / 'home.db'}").trials) == 2
    assert study.storage.display_url == f"sqlite:///{tmp_path / 'home.db'}"  # shown as the file it opens


def test_a_copy_that_fails_midway_leaves_no_partial_study(small_fs: Path, tmp_path: Path) -> None:
    # before: the destination kept a study of that name with the trials copied so far, as if whole
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'src.db'}", name="src", sampler="random")
    for i in range(400):
        study.add_trial({"x": i / 400}, i / 400, attrs={"blob": "x" * 4000})  # 1.6 MB: more than the disk
    with pytest.raises(StorageError, match="disk is full"):
        study.copy(storage=f"sqlite:///{small_fs / 'dst.db'}")
    left = [r.name for r in ts.SQLStorage(f"sqlite:///{small_fs / 'dst.db'}", read_only=True).list_studies()]
    assert left == []  # the study and its trials are one transaction, rolled back



def _die_armed(url: str) -> Any:
    """A storage of ``url`` whose connections have ``die()``, which SIGKILLs this process: a SQLite function,
    or a PostgreSQL notice 'die' (a trigger raises it; it reaches the client as the statement runs)."""
    import signal

    import sqlalchemy as sa

    import tunesmith as ts

    def die(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def armed(conn, _):  # type: ignore[no-untyped-def]
        if url.startswith("sqlite"):
            conn.create_function("die", 0, die)
        else:
            conn.add_notice_handler(lambda diag: diag.message_primary == "die" and die())

    storage = ts.SQLStorage(url)
    sa.event.listen(storage.engine, "connect", armed)
    storage.engine.dispose()  # every connection from now on has die()
    return storage


def _killed_by_the_trigger(url: str, what: str, doc: str) -> None:
    """In a forked process: ``what`` (copy, focus, import of study ``src`` into ``dst``, its delete or
    rename to ``dst``), this process SIGKILLed by the file's trigger as it calls ``die()``."""
    import json

    import tunesmith as ts
    from tunesmith.study.manage import delete_study, import_study

    storage = _die_armed(url)
    if what == "import":
        import_study(json.loads(doc), storage, "dst")
        return
    study = ts.load_study("src", storage)
    {"copy": lambda: study.copy("dst"), "focus": lambda: study.focus(keep=["x"], name="dst"),
     "delete": lambda: delete_study(storage, "src"), "rename": lambda: study.rename("dst"),
     "claimed": lambda: study._add_claimed("run:1", {"x": 0.5, "y": 0.5}, 1.0),
     "evaluate": lambda: study.evaluate_best(lambda t: t.params["x"], k=2)}[what]()


def _kill_by_trigger(path: Path, trigger: str, what: str, doc: str = "", *, code: int = -9) -> None:
    """Run ``what`` in a forked process that ``trigger`` (SQL calling ``die()``) kills (ends with ``code``);
    then drop the trigger and check the file."""
    import multiprocessing
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER die {trigger} BEGIN SELECT die(); END")
    child = multiprocessing.get_context("fork").Process(target=_killed_by_the_trigger,
                                                        args=(f"sqlite:///{path}", what, doc))
    child.start()
    child.join(60)
    assert child.exitcode == code
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER die")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _searched(path: Path, n: int = 6, *, book: bool = False):  # type: ignore[no-untyped-def]
    import tunesmith as ts

    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=f"sqlite:///{path}", name="src", seed=0,
                     sampler="random")
    study.optimize(lambda t: t.params["x"] + t.params["y"], n_trials=n)
    if book:
        study.evaluate_best(lambda t: t.params["x"], k=2)
    return study


@pytest.mark.parametrize("what", ["copy", "focus", "import"])
def test_a_copy_focus_or_import_killed_midway_leaves_no_study_under_its_name(tmp_path: Path, what: str) -> None:
    # before: the new study was written, then its trials: a process killed between the two left an empty study
    # that passed for the copy, and a second try was refused ("a study named 'dst' already exists")
    import json

    import tunesmith as ts
    from tunesmith.cli.commands import export_json
    from tunesmith.study.manage import import_study

    path = tmp_path / "s.db"
    study = _searched(path)
    before = [(t.number, t.params, t.value) for t in study.trials]
    doc = export_json(study)
    _kill_by_trigger(path, "BEFORE INSERT ON ts_trials", what, doc)  # as the first trial of dst is written
    assert [r.name for r in ts.SQLStorage(f"sqlite:///{path}").list_studies()] == ["src"]
    if what == "copy":  # a second try makes it whole
        study.copy("dst")
    elif what == "focus":
        study.focus(keep=["x"], name="dst")
    else:
        import_study(json.loads(doc), f"sqlite:///{path}", "dst")
    copied = ts.load_study("dst", f"sqlite:///{path}").trials
    assert len(copied) == 6 and [(t.number, t.params, t.value) for t in ts.load_study("src", f"sqlite:///{path}").trials] == before


@pytest.mark.parametrize("what", ["copy", "import"])
def test_a_copy_or_import_killed_before_its_test_results_leaves_no_study(tmp_path: Path, what: str) -> None:
    # before: the copy was written, then its test results (the study "dst:test"): a process killed between
    # the two left a copy without them, and a second try was refused ("a study named 'dst' already exists");
    # an import wrote its test results one write each after the study, as evaluate_best does
    import json

    import tunesmith as ts
    from tunesmith.cli.commands import export_json
    from tunesmith.study.evaluate import test_results
    from tunesmith.study.manage import import_study

    path = tmp_path / "s.db"
    study = _searched(path, book=True)
    doc = export_json(study)
    _kill_by_trigger(path, "BEFORE INSERT ON ts_studies WHEN NEW.name = 'dst:test'", what, doc)
    assert sorted(r.name for r in ts.SQLStorage(f"sqlite:///{path}").list_studies()) == ["src", "src:test"]
    if what == "copy":
        study.copy("dst")
    else:
        import_study(json.loads(doc), f"sqlite:///{path}", "dst")
    assert test_results(ts.load_study("dst", f"sqlite:///{path}")) == test_results(study)


def test_a_delete_killed_midway_is_finished_by_a_second_delete(tmp_path: Path) -> None:
    # before: the study went first, then its test results: a process killed between the two left "src:test",
    # which a second delete could not reach (no study 'src') and which refused a new study named 'src'
    import tunesmith as ts
    from tunesmith.study.manage import delete_study

    path = tmp_path / "s.db"
    _searched(path, book=True)
    _kill_by_trigger(path, "BEFORE DELETE ON ts_studies WHEN (SELECT count(*) FROM ts_studies) < 2", "delete")
    delete_study(ts.SQLStorage(f"sqlite:///{path}"), "src")
    assert ts.SQLStorage(f"sqlite:///{path}").list_studies() == []
    _searched(path)  # the name is free again


def test_a_rename_killed_midway_splits_no_study_from_its_test_results(tmp_path: Path) -> None:
    # before: the study was renamed, then its test results: a process killed between the two left 'dst'
    # without them and 'src:test' owned by no study (refusing a new 'src'); a second rename found no 'src'
    import tunesmith as ts
    from tunesmith.study.evaluate import test_results

    path = tmp_path / "s.db"
    _searched(path, book=True)
    _kill_by_trigger(path, "BEFORE UPDATE OF name ON ts_studies WHEN NEW.name = 'dst:test'", "rename")
    storage = ts.SQLStorage(f"sqlite:///{path}")
    assert sorted(r.name for r in storage.list_studies()) == ["src", "src:test"]
    ts.load_study("src", storage).rename("dst")
    assert sorted(r.name for r in storage.list_studies()) == ["dst", "dst:test"]
    assert len(test_results(ts.load_study("dst", storage))) == 2


def test_a_claimed_result_killed_midway_leaves_no_running_trial_holding_the_claim(tmp_path: Path) -> None:
    # before: the trial was created running with its claim, then rewritten whole: a process killed between the
    # two left it running for good (no heartbeats) and the claim (a hypertune run's number) taken
    import tunesmith as ts

    path = tmp_path / "s.db"
    _searched(path)
    _kill_by_trigger(path, "BEFORE UPDATE ON ts_trials", "claimed", code=0)  # no second write to die in
    (added,) = ts.load_study("src", f"sqlite:///{path}").trials[6:]
    assert (added.state, added.value) == (ts.TrialState.COMPLETE, 1.0)


def test_an_evaluate_best_killed_midway_leaves_no_test_result_another_takes(tmp_path: Path) -> None:
    # before: each test result was queued, taken and told (three writes): a process killed after the first
    # left a waiting trial in "src:test", which the next evaluate_best took for its own first result (the
    # killed run's trial and numbers, this run's value), leaving its own queued for good
    import tunesmith as ts
    from tunesmith.study.evaluate import test_results

    path = tmp_path / "s.db"
    study = _searched(path)
    _kill_by_trigger(path, "BEFORE UPDATE ON ts_trials", "evaluate", code=0)  # no second write to die in
    study.evaluate_best(lambda t: t.params["x"] + 1, k=2)  # evaluated again, another score
    book = ts.load_study("src:test", f"sqlite:///{path}").trials
    assert {t.state for t in book} == {ts.TrialState.COMPLETE}
    best = sorted(study.trials, key=lambda t: t.value)[:2]
    assert {(r.trial, r.values) for r in test_results(study).values()} == {(t.number, (t.params["x"] + 1,)) for t in best}


def test_a_copy_killed_midway_on_postgresql_leaves_no_study_under_its_name(pg_url: str) -> None:
    # as on SQLite (test_a_copy_killed_before_its_test_results_leaves_no_copy): the copy and its test results,
    # one transaction, which the server rolls back when the connection of the killed process drops
    import multiprocessing

    import sqlalchemy as sa

    import tunesmith as ts
    from tunesmith.study.evaluate import test_results

    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=pg_url, name="src", seed=0,
                     sampler="random")
    study.optimize(lambda t: t.params["x"] + t.params["y"], n_trials=6)
    study.evaluate_best(lambda t: t.params["x"], k=2)
    schema = ts.SQLStorage(pg_url).engine.get_execution_options().get("schema_translate_map", {}).get(None) or "public"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # a notice as the first test result of the copy is written
        conn.exec_driver_sql("CREATE FUNCTION public.die() RETURNS trigger LANGUAGE plpgsql AS "
                             "$$ BEGIN RAISE NOTICE 'die'; RETURN NEW; END $$")
        conn.exec_driver_sql(f"CREATE TRIGGER die BEFORE INSERT ON {schema}.ts_studies FOR EACH ROW "
                             "WHEN (NEW.name = 'dst:test') EXECUTE FUNCTION public.die()")
    child = multiprocessing.get_context("fork").Process(target=_killed_by_the_trigger, args=(pg_url, "copy", ""))
    child.start()
    child.join(60)
    assert child.exitcode == -9
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER die ON {schema}.ts_studies")
    engine.dispose()
    storage = ts.SQLStorage(pg_url)
    assert sorted(r.name for r in storage.list_studies()) == ["src", "src:test"]
    study.copy("dst")
    assert len(ts.load_study("dst", storage).trials) == 6 and len(test_results(ts.load_study("dst", storage))) == 2


def _cut_between(url: str, which: str, when: str, *, die: bool = False) -> Any:
    """A trigger that makes each write of a trial's state from running to ``when`` fail, as a process killed
    at that write would leave it (with ``die``: calls ``die()``, which SIGKILLs the writing process); the SQL
    that takes it out again (``which``: the backend)."""
    import sqlalchemy as sa

    import tunesmith as ts

    engine = sa.create_engine(url)
    cond = f"NEW.state = '{when}' AND OLD.state = 'running'"
    with engine.begin() as conn:
        if which == "sqlite":
            body = "SELECT die()" if die else "SELECT RAISE(ABORT, 'cut')"
            conn.exec_driver_sql(f"CREATE TRIGGER cut BEFORE UPDATE ON ts_trials WHEN {cond} BEGIN {body}; END")
            drop = "DROP TRIGGER cut"
        else:
            schema = ts.SQLStorage(url).engine.get_execution_options().get("schema_translate_map", {}).get(None)
            table = f"{schema or 'public'}.ts_trials"
            body = "RAISE NOTICE 'die'; RETURN NEW;" if die else "RAISE EXCEPTION 'cut';"
            conn.exec_driver_sql("CREATE OR REPLACE FUNCTION public.cut() RETURNS trigger LANGUAGE plpgsql AS "
                                 f"$$ BEGIN {body} END $$")
            conn.exec_driver_sql(f"CREATE TRIGGER cut BEFORE UPDATE ON {table} FOR EACH ROW WHEN ({cond}) "
                                 "EXECUTE FUNCTION public.cut()")
            drop = f"DROP TRIGGER cut ON {table}"

    def undo() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(drop)
        engine.dispose()

    return undo


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_a_heartbeat_check_cut_short_queues_no_copy_of_a_live_trial(
        which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The heartbeat check queued a lost trial's copy in one write and failed the trial in another: cut
    short between them (killed, the database refusing the second), the copy stayed queued with the trial
    still running; its worker, alive after all, completed it, and the copy ran it a second time. Both are
    one transaction now: neither is written."""
    from conftest import STORAGE_BACKENDS

    import tunesmith as ts

    url = STORAGE_BACKENDS[which](request, tmp_path)
    assert url is not None
    worker = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="hb", sampler="random")
    trial = worker.ask()
    reaper = ts.Study.load("hb", url, heartbeat_interval=1, grace_period=2, requeue_failed=True)
    reaper.storage.heartbeat(reaper._study_id, [trial.number], reaper.storage.clock() - 60)  # looks lost
    undo = _cut_between(url, which, "failed")
    try:
        with pytest.raises(Exception, match="cut"):
            reaper._heartbeat.reap(force=True)
    finally:
        undo()
    worker.tell(trial, 0.5)  # its worker was alive after all
    states = [t.state for t in ts.load_study("hb", url).trials]
    assert states == [ts.TrialState.COMPLETE], states  # before: [complete, waiting], run a second time
    reaper.storage.close()
    worker.storage.close()
    ts.SQLStorage(url).delete_study("hb")  # a PostgreSQL database outlives the test


def _reap_killed(url: str) -> None:
    """In a forked process: the heartbeat check of study ``hb``, SIGKILLed by the database's trigger
    (``die()``) as it writes the lost trial's failure, after its copy was inserted in the same write."""
    import tunesmith as ts

    reaper = ts.Study.load("hb", _die_armed(url), heartbeat_interval=1, grace_period=2, requeue_failed=True)
    reaper._heartbeat.reap(force=True)


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_a_heartbeat_check_killed_inside_fail_with_copy_leaves_neither_and_the_next_check_copies_once(
        which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The heartbeat check SIGKILLed between inserting a lost trial's copy and failing the trial (the same
    transaction): neither is written, the file or server is whole, and the next check fails the trial
    with exactly one copy; the lost worker's late result is refused."""
    import multiprocessing

    from conftest import STORAGE_BACKENDS

    import tunesmith as ts

    url = STORAGE_BACKENDS[which](request, tmp_path)
    assert url is not None
    worker = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="hb", sampler="random")
    trial = worker.ask()
    worker.storage.heartbeat(worker._study_id, [trial.number], worker.storage.clock() - 60)  # looks lost
    undo = _cut_between(url, which, "failed", die=True)
    try:
        child = multiprocessing.get_context("fork").Process(target=_reap_killed, args=(url,))
        child.start()
        child.join(60)
        assert child.exitcode == -9
    finally:
        undo()
    assert [t.state for t in ts.load_study("hb", url).trials] == [ts.TrialState.RUNNING]  # neither written
    if which == "sqlite":
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    reaper = ts.Study.load("hb", url, heartbeat_interval=1, grace_period=2, requeue_failed=True)
    (lost,) = reaper._heartbeat.reap(force=True)
    assert lost.system.requeued_as == 1
    with pytest.raises(Exception, match="failed|finished|not running"):
        worker.tell(trial, 0.5)  # judged lost: its late result is refused
    failed, copy = ts.load_study("hb", url).trials
    assert failed.state is ts.TrialState.FAILED and failed.system.requeued_as == 1
    assert copy.state is ts.TrialState.WAITING and copy.system.retry_of == 0 and copy.params == trial.params
    reaper.storage.close()
    worker.storage.close()
    ts.SQLStorage(url).delete_study("hb")  # a PostgreSQL database outlives the test


REAP_AT = (
    "import sys, time\n"
    "import tunesmith as ts\n"
    "reaper = ts.Study.load('hb', sys.argv[1], heartbeat_interval=1, grace_period=30, requeue_failed=True)\n"
    "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
    "print(' '.join(str(t.number) for t in reaper._heartbeat.reap(force=True)))\n"
)


def test_two_heartbeat_checks_at_once_on_postgresql_copy_each_lost_trial_once(
        pg_url: str, subprocess_env: dict[str, str]) -> None:
    """Two processes check the heartbeats of one study at the same instant, 3 rounds: each lost trial is
    failed by exactly one of them and copied once; no trial with a fresh heartbeat is failed."""
    import tunesmith as ts

    worker = ts.Study({"x": ts.Float(0, 1)}, storage=pg_url, name="hb", sampler="random", seed=0)
    storage, sid = worker.storage, worker._study_id
    try:
        for _ in range(3):
            trials = [worker.ask() for _ in range(30)]
            lost = {t.number for t in trials[::2]}
            storage.heartbeat(sid, sorted(lost), storage.clock() - 600)
            storage.heartbeat(sid, [t.number for t in trials if t.number not in lost], storage.clock())
            start = time.time() + 4
            procs = [subprocess.Popen([sys.executable, "-c", REAP_AT, pg_url, str(start)], env=subprocess_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            outs = [p.communicate(timeout=120) for p in procs]
            assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
            failed = [int(n) for out, _ in outs for n in out.split()]
            assert sorted(failed) == sorted(lost)  # each once, by one of the two
            by_number = {t.number: t for t in ts.load_study("hb", pg_url).trials}
            copies = [t for t in by_number.values() if t.system.retry_of in lost]
            assert sorted(t.system.retry_of for t in copies) == sorted(lost)  # one copy each
            assert all(by_number[n].system.requeued_as == c.number for c in copies for n in [c.system.retry_of])
            assert {by_number[t.number].state for t in trials if t.number not in lost} == {ts.TrialState.RUNNING}
            for t in trials:
                if t.number not in lost:
                    worker.tell(t, 0.5)
            for _ in copies:  # the copies run, so the next round starts from no waiting trial
                worker.tell(worker.ask(), 0.5)
    finally:
        storage.close()
        ts.SQLStorage(pg_url).delete_study("hb")


def test_a_study_named_with_a_leading_dash_before_the_rule_is_read_after_two_dashes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A new name may not begin with '-' (`tunesmith show -neg` read it as an option and failed with "the
    following arguments are required: name"); one stored before the rule, or by another program, is shown
    and deleted with `--` before it, and cannot be taken by a rename or a copy."""
    import sqlite3

    import tunesmith as ts
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'd.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="neg", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    with pytest.raises(ValueError, match="starts with '-'"):
        study.rename("-neg")
    with pytest.raises(ValueError, match="starts with '-'"):
        study.copy("--x")
    with pytest.raises(ValueError, match=r"starts with '-'.* e\.g\. 'x'$"):  # suggested before: '-x', ':test' kept
        study.copy("- -x:test")
    with sqlite3.connect(tmp_path / "d.db") as db:
        db.execute("UPDATE ts_studies SET name = '-neg'")
    assert main(["show", "--storage", url, "--", "-neg"]) == 0
    assert "study -neg" in capsys.readouterr().out
    assert main(["delete", "--storage", url, "--yes", "--", "-neg"]) == 0
    assert ts.storage.make_storage(url).list_studies() == []


def test_a_database_on_a_full_disk_opened_anew_says_the_disk_is_full(small_fs: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A study on a disk that filled up, opened by a new process (evaluate_best, show): SQLite cannot make
    the WAL index it needs to open the file and says "disk I/O error", and the hint named a moved file, a
    file size limit or a failing disk, not the full disk it was."""
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'study.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="full", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    study.storage.close()
    _fill(small_fs)
    with pytest.raises(StorageError) as err:
        ts.Study.load("full", url).evaluate_best(lambda t: t.params["x"], k=2)
    assert "disk i/o error" in str(err.value).lower() and f"{small_fs} is full" in str(err.value), err.value
    rc, _, stderr = _main("show", "full", "--storage", url, capsys=capsys)
    assert rc != 0 and f"{small_fs} is full" in stderr and "Traceback" not in stderr, stderr
    (small_fs / "filler").unlink()  # space again: the study is whole, and goes on
    again = ts.Study.load("full", url)
    assert len(again.trials) == 3
    again.evaluate_best(lambda t: t.params["x"], k=2)
    again.optimize(lambda t: t.params["x"], n_trials=1)
    assert len(again.trials) == 4


def _fills_the_disk(folder: Path, trial: Any) -> float:
    """An objective that fills ``folder``'s file system before its value is told."""
    _fill(folder)
    return 0.5


def test_a_trial_whose_end_the_full_disk_refused_is_named_with_how_to_end_it(
        small_fs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The disk filled while a trial ran: its end could not be written and it stays running (no heartbeats
    fail it). The error said only "disk is full", and show said its process "was killed": the error names the
    trial left running and how to end it, and show says a refused end is one cause, with what to call."""
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'study.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="full", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    with pytest.raises(StorageError) as err:
        study.optimize(functools.partial(_fills_the_disk, small_fs), n_trials=1)
    said = str(err.value)
    assert "disk is full" in said and "trial 2 of study 'full' stays running, its end not written" in said, said
    assert "study.tell(2, state='failed')" in said, said
    (small_fs / "filler").unlink()
    rc, out, _ = _main("show", "full", "--storage", url, capsys=capsys)
    out = " ".join(out.split())
    assert rc == 0 and "1 running trial (#2)" in out and "whose end its storage refused (a full disk" in out, out
    assert "study.tell(2, state='failed')" in out, out
    again = ts.Study.load("full", url)
    again.tell(2, state="failed")  # as both advise
    assert again.trials[2].state is ts.TrialState.FAILED


def test_a_trial_whose_end_the_full_disk_refused_in_a_study_with_heartbeats_is_left_to_them(small_fs: Path) -> None:
    """In a study with heartbeats the error told to open the study with heartbeat_interval=S, as if it had
    none: it says that a later run fails the trial once its grace has passed."""
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'study.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="full", sampler="random", seed=1,
                     heartbeat_interval=30, grace_period=90)

    with pytest.raises(StorageError) as err:
        study.optimize(functools.partial(_fills_the_disk, small_fs), n_trials=1)
    said = str(err.value)
    assert "trial 0 of study 'full' stays running" in said and "study.tell(0, state='failed')" in said, said
    assert "a later run of this study fails it 90 s after its last heartbeat" in said, said
    assert "heartbeat_interval=S" not in said, said


def test_a_worker_process_trial_whose_end_the_full_disk_refused_is_named_by_the_pool_too(
        small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With worker processes the pool's parent, failing the trial its worker left as it stopped with the
    StorageError, met the full disk too: "could not mark the dead worker's trial failed: ... disk is full",
    naming no trial. That line names it now, with how to end it, as the worker's own error does."""
    import tunesmith as ts
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{small_fs / 'study.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="full", sampler="random", seed=1)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    with pytest.raises(StorageError) as err:
        # one worker process: a second one's trial, asked or told as trial 2 fills the disk, could fail first
        study.optimize(functools.partial(_fills_the_disk, small_fs), n_trials=1, n_jobs=1,
                       executor="process")
    assert "trial 2 of study 'full' stays running" in str(err.value), err.value
    said = [r.getMessage() for r in caplog.records if "could not mark the dead worker's trial" in r.getMessage()]
    assert said, [r.getMessage() for r in caplog.records]
    assert all("disk is full" in line and "trial 2 of study 'full' stays running, its end not written" in line
               and "study.tell(2, state='failed')" in line for line in said), said
    (small_fs / "filler").unlink()
    again = ts.Study.load("full", url)
    assert again.trials[2].state is ts.TrialState.RUNNING
    again.tell(2, state="failed")  # as the line advises
    assert again.trials[2].state is ts.TrialState.FAILED
