"""Rows written by a hostile (or careless) user of a shared database: a trial row that does not
hold what tunesmith writes is read as a failed trial whose error names the row and the column;
the study's other trials stay readable, and nothing is written back over the row."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

import tunesmith as ts
from tunesmith.cli import main
from tunesmith.study.manage import making_companion

SPACE = {"x": ts.Float(-5, 5), "k": ts.Categorical(["a", "b"])}

#: what a user with write access to the tables can put in trial 1 (any SQL database)
JSON_ATTACKS = {
    "params": ("params", "{bad"),
    "params-list": ("params", "[1, 2]"),
    "params-deep": ("params", '{"x": ' + "[" * 100_000 + "}"),
    "attrs-null": ("attrs", "null"),
    "intermediate-text": ("intermediate", '{"0": "abc"}'),
    "intermediate-step": ("intermediate", '{"x": 1.0}'),
    "intermediate-huge-step": ("intermediate", '{"' + "9" * 3000 + '": 1.0}'),
    "intermediate-list": ("intermediate", "[1, 2]"),
    # int() took these as steps 1, -5, 1, 10 and 3; report() writes none of them
    "intermediate-spaced-step": ("intermediate", '{"0": 1.0, " 1": 2.0}'),
    "intermediate-negative-step": ("intermediate", '{"-5": 1.0}'),
    "intermediate-padded-step": ("intermediate", '{"01": 1.0}'),
    "intermediate-underscore-step": ("intermediate", '{"1_0": 1.0}'),
    "intermediate-arabic-step": ("intermediate", '{"\u0663": 1.0}'),
    "system": ("system", '{"resumed_step": "x", "zzz": 1}'),
    "state": ("state", "hacked"),
}
#: what only SQLite's loose column types let in
SQLITE_ATTACKS = {
    "value-text": ("value", "abc"),
    "value-blob": ("value", b"\x00\xff"),
    "value-infinite": ("value", float("inf")),
    "started-text": ("started", "yesterday"),
    "params-blob": ("params", b"{}"),
}


def _study(url: str) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="victim")
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=4)
    return study


def _row(url: str, column: str) -> object:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        out = c.execute(sa.text(f"SELECT {column} FROM ts_trials WHERE number = 1")).scalar_one()
    engine.dispose()
    return out


def _write(url: str, column: str, value: object) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:  # whoever can write the database
        c.execute(sa.text(f"UPDATE ts_trials SET {column} = :v WHERE number = 1"), {"v": value})
    engine.dispose()


def _check(url: str, column: str, value: object, capsys: pytest.CaptureFixture[str]) -> None:
    before = _study(url)
    best = min((t for t in before.trials if t.number != 1), key=lambda t: t.value)  # type: ignore[arg-type,return-value]
    _write(url, column, value)
    study = ts.Study.load("victim", storage=url)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    bad = trials[1]
    assert bad.state is ts.TrialState.FAILED and bad.params == {}
    assert f"column {column} of trial 1" in str(bad.error) and "changed outside tunesmith" in str(bad.error)
    assert len(str(bad.error)) < 500  # a 100 MB value is not copied into the message
    assert [t.state for t in trials if t.number != 1] == [ts.TrialState.COMPLETE] * 3
    assert study.storage.get_last_steps(study._study_id) == []  # the failed row's reports are not read either
    assert study.best_trial.number == best.number
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=1)  # the study goes on
    assert len(study.trials) == 5 and study.trials[4].state is ts.TrialState.COMPLETE
    assert main(["show", "victim", "--storage", url]) == 0
    assert "victim" in capsys.readouterr().out
    assert _row(url, column) == value  # nothing was written back over the row


@pytest.mark.parametrize("attack", [*JSON_ATTACKS, *SQLITE_ATTACKS])
def test_an_unreadable_trial_row_is_a_failed_trial_naming_the_row(
    shared_storage_url: str, attack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if attack in SQLITE_ATTACKS and not shared_storage_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's column types refuse a value of the wrong type")
    column, value = {**JSON_ATTACKS, **SQLITE_ATTACKS}[attack]
    _check(shared_storage_url, column, value, capsys)


def test_a_row_without_an_integer_number_is_left_out(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    _study(sqlite_url)
    _write(sqlite_url, "number", "abc")
    study = ts.Study.load("victim", storage=sqlite_url)
    assert [t.number for t in study.trials] == [0, 2, 3]
    for _ in range(5):  # it comes back with each incremental read (text sorts after every integer)
        assert [t.number for t in study.trials] == [0, 2, 3]
    assert caplog.text.count("column number holds 'abc'") == 1  # said once, not at every read


@pytest.mark.parametrize("number", ["'abc'", str(2**63 - 1), "2.5"])
def test_trial_numbers_changed_by_hand_stop_new_trials_with_a_clear_error(sqlite_url: str, number: str) -> None:
    _study(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE ts_trials SET number = {number} WHERE number = 3"))
    engine.dispose()
    study = ts.Study.load("victim", storage=sqlite_url)
    with pytest.raises(ts.StorageError, match="changed outside tunesmith"):
        study.optimize(lambda t: t.params["x"] ** 2, n_trials=2)
    assert len(study.trials) in (3, 4)  # those read before; nothing recorded was lost


STUDY_ATTACKS = {
    "space": ("space", "not json", "column space"),
    "space-list": ("space", "[1]", "column space"),
    "space-type": ("space", '{"x": {"type": "evil"}}', "stored space is unreadable"),
    "space-range": ("space", '{"x": {"type": "float", "low": 5, "high": -5}}', "stored space is unreadable"),
    "config": ("config", "[", "column config"),
    "direction": ("direction", "sideways", "column direction"),
    "config-sampler": ("config", '{"sampler": {"name": "tpe", "n_startup": "x"}}', "stored sampler cannot be rebuilt"),
    "config-heartbeat": ("config", '{"sampler": {"name": "random"}, "heartbeat": "x"}', "stored heartbeat cannot be"),
}


@pytest.mark.parametrize("attack", list(STUDY_ATTACKS))
def test_an_unreadable_study_row_hides_no_other_study_and_can_be_deleted(
    shared_storage_url: str, attack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    column, value, message = STUDY_ATTACKS[attack]
    url = shared_storage_url
    _study(url)
    ts.Study(SPACE, storage=url, name="other", sampler="random").optimize(lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE ts_studies SET {column} = :v WHERE name = 'victim'"), {"v": value})
    engine.dispose()
    listed = [r.name for r in ts.storage.make_storage(url).list_studies()]
    assert listed == (["other"] if message.startswith("column") else ["victim", "other"])
    assert main(["studies", "--storage", url]) == 0
    assert "other" in capsys.readouterr().out
    with pytest.raises(ts.StorageError, match=f"study 'victim'.*{message}.*changed outside tunesmith"):
        ts.Study.load("victim", storage=url)
    assert main(["show", "victim", "--storage", url]) != 0
    assert message in capsys.readouterr().err
    if importlib.util.find_spec("httpx") and message.startswith("column"):  # the dashboard says what is wrong
        from starlette.testclient import TestClient

        from tunesmith.dashboard import create_app, open_storage

        client = TestClient(create_app(open_storage(url)), raise_server_exceptions=False)
        assert [s["name"] for s in client.get("/api/studies").json()["studies"]] == ["other"]
        page = client.get("/api/studies/victim")
        assert page.status_code == 500 and "changed outside tunesmith" in page.json()["error"]
        assert "changed outside tunesmith" in client.get("/studies/victim").text
    from tunesmith.study.evaluate import SUFFIX

    with making_companion():  # where evaluate_best's test results live
        ts.Study(SPACE, storage=url, name="victim" + SUFFIX)
    assert main(["delete", "victim", "--storage", url, "--yes"]) == 0
    assert [r.name for r in ts.storage.make_storage(url).list_studies()] == ["other"]  # its test results went too
    assert len(ts.Study.load("other", storage=url).trials) == 2


#: parameters that parse but do not fit the study's space (changed outside tunesmith)
OUT_OF_SPACE = {
    "choice": '{"x": 1.0, "k": "zzz"}',
    "range": '{"x": 99.0, "k": "a"}',
    "nan": '{"x": NaN, "k": "a"}',
    "type": '{"x": "abc", "k": 3}',
    "huge": '{"x": 1.0, "k": "a", "n": ' + "9" * 400 + "}",
}


@pytest.mark.parametrize("attack", list(OUT_OF_SPACE))
def test_parameters_outside_the_space_are_left_out_of_the_parameter_plots(
    sqlite_url: str, attack: str, tmp_path: Path
) -> None:
    pytest.importorskip("plotly")
    from tunesmith.plots import records_of
    from tunesmith.report import write_report

    space = {**SPACE, "n": ts.Int(1, 10)}
    study = ts.Study(space, sampler="random", seed=0, storage=sqlite_url, name="victim")
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=6)
    _write(sqlite_url, "params", OUT_OF_SPACE[attack])
    study = ts.Study.load("victim", storage=sqlite_url)
    assert len(study.trials) == 6 and study.trials[1].state is ts.TrialState.COMPLETE
    (parallel,) = records_of(study, "parallel")
    assert "of 5 complete trials" in parallel.title
    for kind in ("slice", "contour", "importance"):
        assert records_of(study, kind)
    write_report(study, tmp_path / "r.html")
    assert main(["report", "victim", "--storage", sqlite_url, "--output", str(tmp_path / "c.html")]) == 0


class _Racing(ts.storage.SQLStorage):
    """Another process creates the study between this one's look-up and its create (as when
    two processes start at once): ``rival`` is that process's space."""

    def __init__(self, url: str, rival: dict) -> None:
        super().__init__(url)
        self.rival = rival

    def create_study(self, name, **kwargs):  # type: ignore[no-untyped-def]
        ts.Study(self.rival, storage=ts.storage.SQLStorage(self.url), name=name, direction="maximize")
        return super().create_study(name, **kwargs)


def test_a_study_created_at_once_by_another_process_with_another_space_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="exists with a different space"):
        ts.Study({"y": ts.Float(0, 1)}, storage=_Racing(sqlite_url, {"x": ts.Float(0, 1)}), name="same",
                 direction="maximize")
    with pytest.raises(ValueError, match="exists with direction maximize"):
        ts.Study({"y": ts.Float(0, 1)}, storage=_Racing(sqlite_url + "2", {"y": ts.Float(0, 1)}), name="same")
    study = ts.Study({"y": ts.Float(0, 1)}, storage=_Racing(sqlite_url + "3", {"y": ts.Float(0, 1)}), name="same",
                     direction="maximize")  # the same study: joined
    assert list(study.space) == ["y"]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_under_a_running_study_stops_it(tmp_path: Path, how: str) -> None:
    db = tmp_path / "s.db"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{db}", name="victim")

    def objective(trial: ts.Trial) -> float:
        if trial.number == 2:  # what a user's clean-up script or a restore from a backup does
            if how == "deleted":
                db.unlink()
            else:
                shutil.copy(db, tmp_path / "copy.db")
                os.replace(tmp_path / "copy.db", db)
        return float(trial.params["x"])

    with pytest.raises(ts.StorageError, match="(deleted|replaced) while this process had it open"):
        study.optimize(objective, n_trials=5)  # before: 'finished', every result written to no file


def _deletes_the_file_at_2(trial: ts.Trial) -> float:
    if trial.number == 2:
        Path(trial.study.storage.display_url.removeprefix("sqlite:///")).unlink()
    return float(trial.params["x"])


def test_a_database_file_deleted_under_worker_processes_stops_the_run_with_the_storage_s_error(
    tmp_path: Path,
) -> None:
    """The worker whose write found the file gone stops the run and the parent raises its StorageError;
    were it taken for a crash of the worker, each replacement would fail the same way (after its retries)
    until WorkersLost, which does not say that the file is gone."""
    storage = ts.storage.SQLStorage(f"sqlite:///{tmp_path / 's.db'}", retry_window=5.0)
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage, name="victim")
    with pytest.raises(ts.StorageError, match="deleted while this process had it open"):
        study.optimize(_deletes_the_file_at_2, n_trials=8, n_jobs=2)


def _replace_file(db: Path, by: Path) -> None:
    """What a restore from a backup does: a consistent copy (SQLite's backup API) moved
    over the database's name."""
    import sqlite3

    copy = db.with_suffix(".tmp")
    with sqlite3.connect(by) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    os.replace(copy, db)


def test_a_reader_follows_a_database_file_restored_from_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that only reads (a dashboard, ``tunesmith show``) saw a mix of the old
    and the new file through its pooled connections (the old study with no trials)."""
    monkeypatch.setattr(ts.storage.sql, "FILE_CHECK", 0.0)
    db, backup = tmp_path / "s.db", tmp_path / "backup.db"
    ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{backup}", name="kept").optimize(
        lambda t: float(t.params["x"]), n_trials=3)
    writer = ts.storage.SQLStorage(f"sqlite:///{db}")
    ts.Study(SPACE, sampler="random", seed=0, storage=writer, name="lost").optimize(
        lambda t: float(t.params["x"]), n_trials=2)
    writer.close()
    reader = ts.storage.SQLStorage(f"sqlite:///{db}")
    assert [s.name for s in reader.list_studies()] == ["lost"]
    _replace_file(db, backup)
    assert [s.name for s in reader.list_studies()] == ["kept"]
    kept = reader.get_study("kept")
    assert len(reader.get_trials(kept.study_id)) == 3


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_reads_of_a_writer_after_its_database_file_went_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             how: str) -> None:
    monkeypatch.setattr(ts.storage.sql, "FILE_CHECK", 0.0)
    db = tmp_path / "s.db"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{db}", name="victim")
    study.optimize(lambda t: float(t.params["x"]), n_trials=2)
    if how == "deleted":
        db.unlink()
    else:
        other = tmp_path / "other.db"
        ts.Study(SPACE, storage=f"sqlite:///{other}", name="other")
        _replace_file(db, other)
    with pytest.raises(ts.StorageError, match=f"{how} while this process had it open, so what it reads would be stale"):
        study.trials  # noqa: B018 - the read is the test


def test_a_storage_that_reconnects_after_its_file_was_deleted_makes_no_new_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage whose file was opened reconnects (after close(), or in a forked worker) with SQLite's
    mode=rw: a read between two file checks (FILE_CHECK) of a file deleted meanwhile fails. Opened to
    create, the read would make a new, empty database there (with -wal and -shm) for the next write to go to."""
    monkeypatch.setattr(ts.storage.sql, "FILE_CHECK", 3600.0)  # the read comes before the next check
    db = tmp_path / "s.db"
    storage = ts.storage.SQLStorage(f"sqlite:///{db}")
    ts.Study(SPACE, storage=storage, name="kept")
    assert [s.name for s in storage.list_studies()] == ["kept"]
    storage.close()
    db.unlink()
    with pytest.raises(ts.StorageError, match="unable to open database file; check that the file exists"):
        storage.list_studies()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_disk_io_error_is_not_retried(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database whose file was deleted under a worker (its -wal and -shm left beside the
    new one) gives "disk I/O error": retried for the whole retry window (30 s) per worker."""
    import sqlite3

    import sqlalchemy as sa

    from tunesmith.storage import sql

    class Cursor(sqlite3.Cursor):
        def execute(self, *args: object, **kw: object) -> sqlite3.Cursor:
            raise sqlite3.OperationalError("disk I/O error")  # what the driver raises on such a file

    class Connection(sqlite3.Connection):
        def cursor(self, factory: object = None) -> sqlite3.Cursor:  # type: ignore[override]
            return super().cursor(Cursor)

    storage = ts.storage.SQLStorage(sqlite_url, retry_window=5.0)
    sid = storage.create_study("victim", direction=ts.trial.Direction.MINIMIZE, space={}, config={}).study_id
    sa.event.listen(storage.engine, "do_connect",
                    lambda dialect, record, cargs, cparams: sqlite3.connect(*cargs, **{**cparams, "factory": Connection}))
    storage.engine.dispose()  # connections from now on are the failing ones
    waits = []
    wait = sql._Backoff.wait
    monkeypatch.setattr(sql._Backoff, "wait", lambda self, **kw: waits.append(kw) or wait(self, **kw))
    for read in (lambda: storage.get_study("victim"), lambda: storage.get_trials(sid)):
        with pytest.raises(ts.StorageError, match="disk I/O error"):
            read()
    assert waits == []  # not retried for the 5 s window: no wait before another attempt


def test_names_and_values_from_the_database_cannot_drive_the_terminal(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _study(sqlite_url)
    ts.Study({"k": ts.Categorical(["a"])}, storage=sqlite_url, name="other").optimize(lambda t: 1.0, n_trials=1)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:  # an escape sequence that sets the terminal's title, and one that colours
        c.execute(sa.text("UPDATE ts_studies SET name = :n WHERE name = 'other'"), {"n": "x\x1b]0;pwned\x07"})
        c.execute(sa.text("UPDATE ts_trials SET params = :p WHERE number = 0"), {"p": '{"x": 0.5, "k": "\\u001b[31m"}'})
    engine.dispose()
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert main(["show", "victim", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "x\\x1b]0;pwned\\x07" in out and "\\x1b[31m" in out


@pytest.mark.parametrize("attrs", [{"trial": "x"}, {"trial": 0, "values": "ab", "validation": 1.0, "seeds": [0]}, {}])
def test_a_test_result_that_evaluate_best_did_not_write_is_left_out(
    sqlite_url: str, attrs: dict, tmp_path: Path
) -> None:
    """Anyone can create the companion study ``NAME:test`` (or write its rows)."""
    pytest.importorskip("plotly")
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.plots import snapshot
    from tunesmith.report import write_report

    study = _study(sqlite_url)
    with making_companion():  # as a writer of the database can
        ts.Study(SPACE, storage=sqlite_url, name="victim:test").add_trial({"x": 0.5, "k": "a"}, 1.0, attrs=attrs)
    assert main(["show", "victim", "--storage", sqlite_url]) == 0
    assert snapshot(study).tests == {}
    write_report(study, tmp_path / "r.html")
    cache = StudyCache(ts.storage.make_storage(sqlite_url))
    assert cache.snapshot(cache.view("victim")).tests == {}


@pytest.mark.parametrize("sampler", ["tpe", "bayes"])
@pytest.mark.parametrize("attack", ["choice", "type", "huge"])
def test_the_sampler_leaves_out_a_trial_whose_parameters_do_not_fit(
    sqlite_url: str, sampler: str, attack: str, caplog: pytest.LogCaptureFixture
) -> None:
    space = {**SPACE, "n": ts.Int(1, 10)}
    study = ts.Study(space, sampler=sampler, seed=0, storage=sqlite_url, name="victim")
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=10)
    _write(sqlite_url, "params", OUT_OF_SPACE[attack])
    study = ts.Study.load("victim", storage=sqlite_url)
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=3)  # before: the sampler raised, the study stopped
    assert len(study.trials) == 13 and study.trials[1].params == json.loads(OUT_OF_SPACE[attack])
    assert "trial 1: its parameters do not fit the space" in caplog.text


@pytest.mark.parametrize("when", ["during", "between"])
def test_a_study_deleted_while_it_runs_stops_it_saying_so(shared_storage_url: str, when: str) -> None:
    """``tunesmith delete victim`` from another terminal, while a trial runs or between two."""
    url = shared_storage_url
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="victim")

    def delete(number: int) -> None:
        if number == 2:
            ts.storage.make_storage(url).delete_study("victim")

    def objective(trial: ts.Trial) -> float:
        if when == "during":
            delete(trial.number)
        return float(trial.params["x"])

    with pytest.raises(ts.StudyNotFound, match="deleted while this process ran it"):  # before: "study has no
        study.optimize(objective, n_trials=5,  # trial number 2", or an IntegrityError (FOREIGN KEY)
                       callbacks=[lambda s, t: delete(t.number)] if when == "between" else [])


def test_a_huge_value_is_shown_cut_short(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _study(sqlite_url)
    _write(sqlite_url, "params", json.dumps({"x": 0.1, "k": "a" * 10_000_000}))
    assert main(["show", "victim", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "characters" in out  # "aaa... (10,000,000 characters)", wrapped in its column
    assert len(out) < 20_000  # before: the 10 MB value in the table



def test_a_worker_process_stopped_by_its_storage_stops_the_run_with_that_error(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """A storage error in a worker process of n_jobs (here the database file deleted) was logged
    as 'worker N crashed' with three chained tracebacks, and the parent started replacement after
    replacement (10), each failing again or opening a new empty file at the path; optimize ended
    with 'worker processes in a row died'. Now the run stops and optimize raises the error."""
    db = tmp_path / "s.db"
    script = textwrap.dedent(f"""
        import pathlib, tunesmith as ts
        db = pathlib.Path({str(db)!r})
        study = ts.Study({{"x": ts.Float(0, 1)}}, sampler="random", seed=0, storage=f"sqlite:///{{db}}", name="v")
        def objective(trial):
            if db.exists():
                db.unlink()
            return trial.params["x"]
        try:
            study.optimize(objective, n_trials=20, n_jobs=2)
        except ts.StorageError as exc:
            print("raised:", exc)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env,
                         timeout=120)
    assert "raised: storage 'sqlite:///" in res.stdout and "deleted while this process had it open" in res.stdout, (
        res.stdout + res.stderr)
    assert "crashed" not in res.stderr and "replacement worker" not in res.stderr, res.stderr
    assert not db.exists()  # no new, empty database made at the path by a replacement

def test_a_text_that_is_not_utf8_spoils_only_its_own_row(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Another program can write any bytes into SQLite's TEXT columns; before, one such row ended
    every read of the file ("Could not decode to UTF-8"), the study list's too."""
    _study(sqlite_url)
    ts.Study(SPACE, storage=sqlite_url, name="other", sampler="random").optimize(lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE ts_trials SET params = CAST(X'7b2278223aff7d' AS TEXT) WHERE number = 1"))
        c.execute(sa.text("UPDATE ts_trials SET worker = CAST(X'77ff' AS TEXT) WHERE number = 2"))
        c.execute(sa.text("UPDATE ts_studies SET name = CAST(X'6fff' AS TEXT) WHERE name = 'other'"))
    engine.dispose()
    trials = ts.Study.load("victim", storage=sqlite_url).trials
    assert trials[1].state is ts.TrialState.FAILED and "column params of trial 1" in str(trials[1].error)
    assert trials[2].worker == "w\ufffd" and trials[2].state is ts.TrialState.COMPLETE
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "victim" in capsys.readouterr().out
    assert main(["show", "victim", "--storage", sqlite_url]) == 0


@pytest.mark.parametrize("column, value", [("params", r'{"x": 0.5, "k": "\ud800"}'), ("attrs", r'{"\udfff": "a\ud800"}')])
def test_half_a_surrogate_pair_in_json_is_read_as_a_replacement_character(
        shared_storage_url: str, column: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800"), which no file or terminal takes: before,
    ``show``, ``export`` and the report ended in "surrogates not allowed"."""
    pytest.importorskip("plotly")
    url = shared_storage_url
    _study(url)
    _write(url, column, value)
    trial = ts.Study.load("victim", storage=url).trials[1]
    assert "\ufffd" in json.dumps({**trial.params, **trial.attrs}, ensure_ascii=False)
    for cmd in (["show", "victim"], ["export", "victim", "-o", str(tmp_path / "t.csv")],
                ["report", "victim", "-o", str(tmp_path / "r.html")]):
        assert main([*cmd, "--storage", url]) == 0, capsys.readouterr().err
    assert _row(url, column) == value  # nothing was written back over the row


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a_prior_weight_that_is_not_finite_is_refused_and_a_stored_one_is_read_without_its_weights(
        sqlite_url: str, bad: float, caplog: pytest.LogCaptureFixture) -> None:
    """A NaN or infinite prior weight was accepted and the bayes sampler then failed at its first
    model-based pick ("Probabilities contain NaN"). A new space refuses it; a study stored with one
    (SQLite holds {"a": Infinity}) still opens, its weights dropped with a warning, and runs."""
    for make in (lambda: ts.Space({"k": ts.Categorical(["a", "b"], prior={"a": bad, "b": 1.0})}),
                 lambda: ts.Space.from_dict({"k": {"type": "categorical", "choices": ["a", "b"],
                                                   "prior": {"weight": {"a": bad, "b": 1.0}}}})):
        with pytest.raises(ValueError, match=r"prior weight of 'a' must be a finite number >= 0, got (inf|nan)"):
            make()
    space = {"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"], prior={"a": 1.0, "b": 1.0})}
    ts.Study(space, storage=sqlite_url, name="w", sampler={"name": "bayes", "n_init": 2}).optimize(
        lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        stored = json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'w'")).scalar_one())
        stored["k"]["prior"]["weight"]["a"] = bad  # as an older tunesmith stored it
        c.execute(sa.text("UPDATE ts_studies SET space = :v WHERE name = 'w'"), {"v": json.dumps(stored)})
    engine.dispose()
    with caplog.at_level("WARNING", logger="tunesmith"):
        study = ts.Study.load("w", storage=sqlite_url)
    assert study.space["k"].prior is None and len(study.trials) == 2
    assert "prior weights of 'k' are not all finite" in caplog.text
    study.optimize(lambda t: t.params["x"], n_trials=2)  # before: "Probabilities contain NaN"
    assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 4


def test_a_study_stored_with_weights_on_a_float_prior_still_opens(sqlite_url: str) -> None:
    """Weights on the prior of a Float or Int were stored and never read; refused in new spaces now, a
    study stored with them opened as "its stored space is unreadable". It opens, its prior's mode and
    width kept, its trials whole."""
    space = {"x": ts.Float(0, 1, prior=ts.Prior(0.3, 0.1)), "n": ts.Int(1, 9, prior=ts.Prior(4))}
    ts.Study(space, storage=sqlite_url, name="fw", sampler="random", seed=0).optimize(
        lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        stored = json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'fw'")).scalar_one())
        stored["x"]["prior"]["weight"] = {"0.3": 2.0}  # as an older tunesmith stored it
        stored["n"]["prior"]["weight"] = {"4": 1.0}
        c.execute(sa.text("UPDATE ts_studies SET space = :v WHERE name = 'fw'"), {"v": json.dumps(stored)})
    engine.dispose()
    study = ts.Study.load("fw", storage=sqlite_url)
    assert study.space == ts.Space(space) and len(study.trials) == 2
    study.optimize(lambda t: t.params["x"], n_trials=1)
    assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 3


def test_a_stored_fixed_mapping_with_a_prior_key_is_read_as_it_is() -> None:
    """Reading a stored space left out the ``weight`` of any ``prior`` mapping in a definition that is
    not a categorical: also inside a mapping without ``type``, which is a fixed value (a storage written
    outside tunesmith), so the study got another constant than the one stored. Only a Float's or an
    Int's prior loses its weights."""
    stored = {"cfg": {"prior": {"mode": 1, "weight": {"a": 1.0}}},
              "x": {"type": "float", "low": 0, "high": 1, "prior": {"mode": 0.3, "weight": {"0.3": 2.0}}}}
    space = ts.Space.stored(stored, "study 'f'")
    assert space["cfg"].value == {"prior": {"mode": 1, "weight": {"a": 1.0}}}
    assert space["x"].prior is not None and space["x"].prior.weight is None and space["x"].prior.mode == 0.3
    fixed = {"c": {"type": "fixed", "value": 1, "prior": {"weight": {"a": float("nan")}}}}
    with pytest.raises(ts.StorageError, match="unknown key 'prior' in a fixed parameter"):  # as any prior there
        ts.Space.stored(fixed, "study 'f'")


def test_a_study_whose_stored_space_a_peer_broke_is_copied_out_in_the_owner_s_space(
        shared_storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A writer of the database put prior weights of a list into the study's space: `show`, `export`
    and `copy` (with `--space` too) all refused the study as "its stored space is unreadable", and the
    way the message gave (export with the tunesmith that wrote it) does not exist for such an edit: the
    owner had no way to their recorded trials. `copy NAME NEW --space STUDY.yaml` reads them in the
    space given; nothing of the original study is changed."""
    _study(shared_storage_url)
    engine = sa.create_engine(shared_storage_url)
    with engine.begin() as c:
        stored = json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'victim'")).scalar_one())
        stored["k"]["prior"] = {"weight": [1, 2], "mode": "__import__('os').system('false')"}
        c.execute(sa.text("UPDATE ts_studies SET space = :v WHERE name = 'victim'"), {"v": json.dumps(stored)})
    engine.dispose()
    with pytest.raises(ts.StorageError, match="its stored space is unreadable .* tunesmith copy NAME NEW_NAME --space"):
        ts.Study.load("victim", shared_storage_url)
    assert main(["copy", "victim", "kept", "--storage", shared_storage_url]) == 2  # without a space: refused
    assert "tunesmith copy NAME NEW_NAME --space STUDY.yaml" in capsys.readouterr().err
    study_file = tmp_path / "study.yaml"
    study_file.write_text("objective: train.py:objective\nspace:\n  x: {type: float, low: -5, high: 5}\n  k: [a, b]\n")
    assert main(["copy", "victim", "--space", str(study_file), "--storage", shared_storage_url]) == 2  # no NEW_NAME
    err = capsys.readouterr().err  # it said "its trials are read in the space of ..." before the refusal
    assert "to a NEW_NAME" in err and "read in the space" not in err
    assert main(["copy", "victim", "kept", "--space", str(study_file), "--storage", shared_storage_url]) == 0
    assert "its trials are read in the space of" in capsys.readouterr().err
    narrow = tmp_path / "narrow.yaml"  # x within [-5, 0]: some trials are left out, said once, by the copy
    narrow.write_text("objective: train.py:objective\nspace:\n  x: {type: float, low: -5, high: 0}\n  k: [a, b]\n")
    assert main(["copy", "victim", "narrow", "--space", str(narrow), "--storage", shared_storage_url]) == 0
    said = caplog.text  # each was also warned of as left out by the sampler, which plays no part
    assert "trials left out" in said and "so the sampler leaves it out" not in said
    kept = ts.Study.load("kept", shared_storage_url)
    assert kept.space == ts.Space(SPACE) and [t.state for t in kept.trials] == [ts.TrialState.COMPLETE] * 4
    engine = sa.create_engine(shared_storage_url)
    with engine.connect() as c:
        assert json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'victim'")).scalar_one()) == stored
    engine.dispose()


def test_a_study_whose_stored_choices_read_back_alike_still_opens(sqlite_url: str, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A tunesmith before 2026-12-05 took ts.Categorical(os.listdir(folder)) with two Latin-1 file names
    ("caf\\udce9", "caf\\udce8"); the storage reads each half of a surrogate pair back as U+FFFD, so both
    read as "caf\\ufffd\\ufffd\\ufffd", and the study opened nowhere ("its stored space is unreadable
    (... is listed twice)"): not shown, exported or copied. It opens, with a warning, the two as one choice."""
    ts.Study({"d": ts.Categorical(["x1", "x2", "b"]), "x": ts.Int(0, 1)}, storage=sqlite_url, name="ls",
             sampler="grid").optimize(lambda t: t.params["x"], n_trials=6)  # each configuration once
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:  # the names as an older tunesmith stored them: JSON escapes of the surrogates
        for table, column in (("ts_studies", "space"), ("ts_trials", "params")):
            c.execute(sa.text(f"UPDATE {table} SET {column} = replace(replace({column}, '\"x1\"', :a), '\"x2\"', :b)"),
                      {"a": json.dumps("caf\udce9"), "b": json.dumps("caf\udce8")})
    engine.dispose()
    with caplog.at_level("WARNING", logger="tunesmith"):
        study = ts.Study.load("ls", storage=sqlite_url)
    alike = "caf\ufffd\ufffd\ufffd"
    assert study.space["d"].choices == (alike, "b")  # type: ignore[attr-defined]
    assert sorted(t.params["d"] for t in study.trials) == ["b"] * 2 + [alike] * 4
    assert f"choice {alike!r} is stored 2 times" in caplog.text and "read as one choice (a new space refuses" in caplog.text
    assert main(["export", "ls", "--storage", sqlite_url, "--format", "json", "-o", str(tmp_path / "ls.json")]) == 0
    assert len(study.copy("ls2").trials) == 6


@pytest.mark.parametrize("reports", ['{"1": NaN, "4": 2.5}', '{"2":1.0,"5":-Infinity}', ' { "3" : 1 } ',
                                     '{"1": 2, "1": 3, "6": 1E+2}', '{"' + "9" * 19 + '": 0.5}',
                                     '{"1":01}', '{"1":1e999999}', '{"2":1' + "0" * 200_000 + '.5}',
                                     '{"1":-0,"3":1.5E-999999}', '{"1":0.5,"2":1' + "0" * 400 + '}'])
def test_each_trial_s_last_step_reads_reports_the_database_s_json_does_not_parse_as_the_whole_read(
        shared_storage_url: str, reports: str) -> None:
    """Reports written outside tunesmith that Python's JSON reads but SQLite's or PostgreSQL's does not
    (NaN, Infinity), that the query does not take (spaces, a repeated step, a step past 64 bits), or whose
    numbers PostgreSQL's jsonb refuses (a leading zero, out of its numeric range), or an integer past a float's
    range (SQLite reads it as an infinity, the whole read fails the trial): each trial's last step, for
    the budget line, is still what the whole trials give, not an error."""
    url = shared_storage_url
    _study(url)
    _write(url, "intermediate", reports)
    _write(url, "state", "pruned")
    study = ts.Study.load("victim", storage=url)
    whole = [(t.state, t.last_step) for t in study.trials if t.last_step is not None]
    assert study.storage.get_last_steps(study._study_id) == whole


@pytest.mark.parametrize("reports", [b'{"1":0.5,"3":0.25}', b"\x00\xff", b"7"])
def test_each_trial_s_last_step_refuses_reports_stored_as_a_blob_as_the_whole_read(
        sqlite_url: str, reports: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    """SQLite keeps bytes written into the reports' text column as a blob, and its json_valid reads a blob's bytes
    as text: the budget line counted the steps of a trial the whole read refuses (its reports are not JSON text),
    took a blob of one number for a step, and ``tunesmith show`` failed on any other blob (int() of the bytes)."""
    _study(sqlite_url)
    _write(sqlite_url, "intermediate", reports)
    _write(sqlite_url, "state", "pruned")
    study = ts.Study.load("victim", storage=sqlite_url)
    whole = [(t.state, t.last_step) for t in study.trials if t.last_step is not None]
    assert whole == [] and study.storage.get_last_steps(study._study_id) == whole
    assert main(["show", "victim", "--storage", sqlite_url]) == 0
    assert "budget" not in capsys.readouterr().out  # no trial stopped early with a step the whole read gives


def test_each_trial_s_last_step_is_read_without_sqlite_s_json_functions_where_the_library_lacks_them(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite before 3.38 had its JSON functions as a compile option: where a build left them out, the budget line's
    query failed and with it ``tunesmith show``. Where the library lacks them the whole read gives the steps. (No
    such build here: the storage's connections get a json_valid that fails, and the library is said to lack them.)"""
    from tunesmith.storage import sql

    assert getattr(sql, "_sqlite_json", lambda: True)()  # this SQLite has them
    _study(sqlite_url)
    _write(sqlite_url, "intermediate", '{"1":0.5,"3":0.25}')
    _write(sqlite_url, "state", "pruned")

    def no_json(dbapi_conn: object, _: object) -> None:
        def missing(*_: object) -> None:
            raise ValueError("no such function: json_valid")

        dbapi_conn.create_function("json_valid", 1, missing)  # type: ignore[attr-defined]

    study = ts.Study.load("victim", storage=sqlite_url)
    sa.event.listen(study.storage.engine, "connect", no_json)
    study.storage.engine.dispose()
    monkeypatch.setattr(sql, "_sqlite_json", lambda: False, raising=False)
    whole = [(t.state, t.last_step) for t in study.trials if t.last_step is not None]
    assert whole and study.storage.get_last_steps(study._study_id) == whole


@pytest.mark.parametrize(("state", "value"), [("complete", None), ("pruned", math.inf), ("stopped", 0.5)])
def test_each_trial_s_last_step_leaves_out_a_row_the_head_read_fails(
        shared_storage_url: str, state: str, value: float | None) -> None:
    """A trial with reports whose state or value was changed outside tunesmith (a complete trial without a
    finite value) is counted by ``show`` as a failed trial: the budget line does not count its steps either."""
    url = shared_storage_url
    _study(url)
    _write(url, "intermediate", '{"1":0.5,"3":0.25}')
    _write(url, "state", state)
    _write(url, "value", value)
    study = ts.Study.load("victim", storage=url)
    assert study.storage.get_trial_heads(study._study_id)[1].state is ts.TrialState.FAILED
    whole = [(t.state, t.last_step) for t in study.trials if t.last_step is not None]
    assert whole == [] and study.storage.get_last_steps(study._study_id) == whole
