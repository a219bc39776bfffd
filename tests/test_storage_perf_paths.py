"""The storage's fast paths: prepared statements on the DBAPI cursor, short
waits on a busy SQLite, idempotent retries, the in-memory waiting cursor,
and 4 processes sharing one SQLite study."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

import tunesmith as ts
from tunesmith import MemoryStorage, SQLStorage, Storage, TrialState
from tunesmith.exceptions import StorageError, TrialFinishedError
from tunesmith.storage import prepared
from tunesmith.storage import sql as sql_module
from tunesmith.storage.prepared import Prepared
from tunesmith.storage.sql_schema import _HOT, trials_table
from tunesmith.study.lifecycle import claim_waiting
from tunesmith.trial import Direction

SPACE = {"x": ts.Float(-5.0, 5.0), "act": ts.Categorical(["relu", "tanh"])}


def _study(st: Storage, name: str = "s") -> int:
    return st.create_study(name, direction=Direction.MINIMIZE, space={}, config={}).study_id


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return MemoryStorage() if request.param == "memory" else SQLStorage(f"sqlite:///{tmp_path / 'db.db'}")


# -- prepared statements -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(_HOT))
def test_every_hot_statement_compiles_for_sqlite_and_postgresql(name: str) -> None:
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):  # type: ignore[attr-defined]
        p = Prepared(_HOT[name], dialect)
        assert "ts_trials" in p.sql or "ts_studies" in p.sql
        assert "POSTCOMPILE" not in p.sql  # no expanding IN: the text is final


def test_prepared_fills_literals_and_orders_positional_args() -> None:
    lit = Prepared(_HOT["trials_in_state"], sqlite.dialect())
    assert lit.names is not None and lit.sql.count("?") == len(lit.names)
    args = lit.args({"sid": 7, "state": "waiting", "min_number": 0})
    assert isinstance(args, tuple) and args[lit.names.index("sid")] == 7 and "waiting" in args
    named = Prepared(_HOT["trials_in_state"], postgresql.psycopg.dialect())  # type: ignore[attr-defined]
    assert named.names is None and "%(sid)s" in named.sql
    assert named.args({"sid": 7, "state": "waiting", "min_number": 0}) == {
        **named.defaults, "sid": 7, "state": "waiting", "min_number": 0,
    }
    with pytest.raises(KeyError, match="min_number"):
        Prepared(_HOT["trials_from"], sqlite.dialect()).args({"sid": 1})


def test_hot_statements_agree_with_sqlalchemy_core(tmp_path: Path) -> None:
    """Rows written by the prepared path read back identically through plain Core."""
    st = SQLStorage(f"sqlite:///{tmp_path / 'db.db'}")
    sid = _study(st)
    rec = st.create_trial(sid, params={"x": 1.5, "act": "relu"}, worker="h:1", now=10.0)
    assert rec is not None
    done = rec.replace(state=TrialState.COMPLETE, value=2.0, completed=11.0, intermediate={0: 3.0}, attrs={"a": [1]})
    st.update_trial(sid, done)
    with st.engine.connect() as c:
        row = c.execute(sa.select(trials_table)).one()
    assert (row.number, row.state, row.value, row.worker, row.started, row.completed) == (
        0, "complete", 2.0, "h:1", 10.0, 11.0,
    )
    assert row.trial_id == rec.trial_id and st.get_trial(sid, 0) == done.replace(trial_id=rec.trial_id)


# -- storage behaviour on both storages ----------------------------------------------
def test_numbers_claims_and_finished_trials(storage: Storage) -> None:
    sid = _study(storage)
    a = storage.create_trial(sid, params={"x": 1})
    b = storage.create_trial(sid, params={"x": 2}, claim="k")
    assert storage.create_trial(sid, params={"x": 2}, claim="k") is None
    assert a is not None and b is not None and (a.number, b.number) == (0, 1)
    final = a.replace(state=TrialState.COMPLETE, value=1.0, completed=time.time())
    storage.update_trial(sid, final)
    with pytest.raises(TrialFinishedError):
        storage.update_trial(sid, final.replace(value=2.0))
    assert storage.get_trial(sid, 0).value == 1.0
    assert [t.number for t in storage.get_trials(sid, min_number=1)] == [1]
    with pytest.raises(KeyError):
        storage.get_trial(sid, 5)


def test_claim_waiting_takes_oldest_and_sees_requeued_trials(storage: Storage) -> None:
    sid = _study(storage)
    for i in range(3):
        storage.create_trial(sid, params={"i": i}, state=TrialState.WAITING)
    got = [claim_waiting(storage, sid, "w", lambda: 1.0) for _ in range(4)]
    assert [g.number if g else None for g in got] == [0, 1, 2, None]
    assert all(g is None or (g.state is TrialState.RUNNING and g.worker == "w") for g in got)
    storage.create_trial(sid, params={"i": 3})  # a running trial after the queue
    first = got[0]
    assert first is not None
    storage.update_trial(sid, first.replace(state=TrialState.WAITING))  # re-queued, below the cursor
    again = claim_waiting(storage, sid, "w2", lambda: 2.0)
    assert again is not None and again.number == 0 and again.worker == "w2"
    assert claim_waiting(storage, sid, "w", lambda: 3.0) is None


def test_study_ask_returns_canonical_params(storage: Storage) -> None:
    study = ts.Study({"x": ts.Float(0.0, 10.0), "n": ts.Int(1, 3)}, sampler="random", seed=1, storage=storage)
    study.enqueue({"x": 2, "n": 3})  # an int for a float parameter is stored canonical
    queued, sampled = study.ask(), study.ask()
    assert queued.params == {"x": 2.0, "n": 3} and isinstance(queued.params["x"], float)
    assert set(sampled.params) == {"x", "n"} and sampled.number == 1
    study.tell(queued, 1.0)
    study.tell(sampled, 2.0)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_opening_a_study_counts_its_trials_without_reading_them(storage: Storage) -> None:
    """Opening read (and decoded) every trial only to count them: 160 ms at 5,000 trials
    on SQLite, paid again by the first read of the trials."""
    study = ts.Study(SPACE, sampler="random", seed=1, storage=storage, name="big")
    for i in range(5):
        study.add_trial({"x": float(i), "act": "relu"}, float(i))
    study.ask()  # a running trial is counted too
    assert storage.count_trials(study._study_id) == 6
    assert storage.count_trials(_study(storage, "empty")) == 0
    reads: list[int] = []
    real, since = storage.get_trials, storage.get_trials_since
    storage.get_trials = lambda *a, **k: reads.append(1) or real(*a, **k)  # type: ignore[method-assign]
    storage.get_trials_since = lambda *a, **k: reads.append(1) or since(*a, **k)  # type: ignore[method-assign]
    again = ts.Study.load("big", storage)
    assert reads == [] and again.session == 6  # the sampler's stream still starts past the trials there
    assert len(again.trials) == 6 and len(reads) == 1


def test_opening_a_study_with_its_space_counts_its_trials_once(storage: Storage) -> None:
    """Opening with a space counted the trials for its "resuming it" line, then again for the session:
    0.18 of 1.65 ms at 5,000 trials on SQLite."""
    study = ts.Study(SPACE, sampler="random", seed=1, storage=storage, name="big")
    for i in range(3):
        study.add_trial({"x": float(i), "act": "relu"}, float(i))
    counts: list[int] = []
    real = storage.count_trials
    storage.count_trials = lambda *a, **k: counts.append(1) or real(*a, **k)  # type: ignore[method-assign]
    again = ts.Study(SPACE, storage=storage, name="big", load_if_exists=True)
    assert len(counts) == 1 and again.session == 3
    counts.clear()
    assert ts.Study.load("big", storage).session == 3 and len(counts) == 1


def test_each_report_encodes_only_the_new_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial is rewritten whole at each report: encoding all its reports again cost 5.6 ms a
    report at 5,000 reports on SQLite. The stored text is still a whole encoding's, exactly."""
    st = SQLStorage(f"sqlite:///{tmp_path / 'db.db'}")
    study = ts.Study(SPACE, sampler="random", seed=1, storage=st, name="s")
    encoded: list[int] = []
    real = sql_module._dumps
    monkeypatch.setattr(sql_module, "_dumps", lambda x: encoded.append(len(x)) or real(x))
    trial = study.ask()
    n = 400
    for step in range(1, n + 1):
        trial.report(0.0 if step % 7 else -0.0 if step % 2 else 1 / step, step)
    assert sum(encoded) < 6 * n  # params, attrs and the new step each time; not n * n / 2 reports
    encoded.clear()
    trial.set_attr("checkpoint", "/ckpt")  # the same reports: not encoded again
    assert sum(encoded) < 10
    with st.engine.connect() as c:
        text = c.execute(sa.select(trials_table.c.intermediate)).scalar_one()
    assert text == real({str(k): v for k, v in trial._record.intermediate.items()})
    stored = st.get_trial(study._study_id, trial.number).intermediate
    assert stored == trial._record.intermediate and str(stored[7]) == "-0.0" and stored[14] == 1 / 14
    # a rewrite that changes a stored step (another writer's record) is encoded whole again
    changed = {**trial._record.intermediate, 3: -0.0, n + 1: 2.0}
    st.update_trial(study._study_id, trial._record.replace(intermediate=changed))
    assert st.get_trial(study._study_id, trial.number).intermediate == changed
    assert str(st.get_trial(study._study_id, trial.number).intermediate[3]) == "-0.0"
    reordered = dict(sorted(changed.items(), key=lambda kv: kv[0] != 2))  # step 2 first, then the rest
    st.update_trial(study._study_id, trial._record.replace(intermediate={**reordered, n + 2: 3.0}))
    with st.engine.connect() as c:
        text = c.execute(sa.select(trials_table.c.intermediate)).scalar_one()
    assert text.startswith('{"2":') and text == real({str(k): v for k, v in {**reordered, n + 2: 3.0}.items()})
    study.tell(trial._record.number, 1.0)
    assert st._reports._last == {}  # dropped once the trial finished
    assert st.get_trial(study._study_id, trial.number).intermediate == {**changed, n + 2: 3.0}


# -- retries --------------------------------------------------------------------------
def _lose_connection_after_commit(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The next ``times`` transactions commit, then the client sees a lost connection."""
    real, left = prepared.run_transaction, [times]

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real(*args, **kwargs)
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return out

    monkeypatch.setattr(sql_module, "run_transaction", flaky)
    return left


def test_retried_create_after_commit_writes_no_duplicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = SQLStorage(f"sqlite:///{tmp_path / 'db.db'}")
    sid = _study(st)
    left = _lose_connection_after_commit(monkeypatch, 1)
    rec = st.create_trial(sid, params={"x": 1}, worker="w")
    assert left == [0] and rec is not None and rec.number == 0
    _lose_connection_after_commit(monkeypatch, 1)
    st.update_trial(sid, rec.replace(state=TrialState.COMPLETE, value=1.0, completed=1.0))  # no error
    assert [(t.number, t.state) for t in st.get_trials(sid)] == [(0, TrialState.COMPLETE)]


def test_retried_insert_of_many_trials_after_commit_writes_no_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = SQLStorage(f"sqlite:///{tmp_path / 'db.db'}")
    sid = _study(st)
    st.create_trial(sid, params={"x": 0})
    done = [ts.FrozenTrial(number=0, state=TrialState.COMPLETE, params={"x": i}, value=float(i), intermediate={1: 2.0},
                           attrs={"a": i}, started=1.0, completed=2.0) for i in range(1, 4)]
    left = _lose_connection_after_commit(monkeypatch, 1)
    got = st.insert_trials(sid, done)
    assert left == [0] and [t.number for t in got] == [1, 2, 3]
    assert [t.replace(trial_id=-1) for t in st.get_trials(sid, min_number=1)] == [
        t.replace(number=i + 1) for i, t in enumerate(done)]
    assert got == st.get_trials(sid, min_number=1)


def test_copy_and_focus_write_all_trials_in_one_transaction(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A copy (and a focus) committed twice a trial: 2 s for 5,000 trials on SQLite, now 0.4 s. Now one
    write in all: the study with its trials (a process killed midway leaves neither)."""
    url = f"sqlite:///{tmp_path / 'db.db'}"
    study = ts.Study(SPACE, sampler="random", seed=1, storage=url, name="s")
    for i in range(30):
        t = study.ask()
        t.report(float(i), 1)
        t.set_attr("k", i)
        study.tell(t, float(i))
    study.ask()  # running: copied as failed
    writes = request.getfixturevalue("sql_writes")  # from now on
    copy = study.copy("c")
    assert writes == ["_run"], writes
    strip = lambda t: (t.number, t.state, t.params, t.value, t.intermediate, t.attrs, t.started)  # noqa: E731
    assert [strip(t) for t in copy.trials[:30]] == [strip(t) for t in study.trials[:30]]
    last = copy.trials[30]
    assert (last.state, last.error) == (TrialState.FAILED, "running when the study was copied")
    writes.clear()
    focused = study.focus(["x"], name="f")
    assert writes == ["_run"] and len(focused.trials) == 30
    assert focused.best_trial.value == 0.0 and focused.trials[0].intermediate == {1: 0.0}


def test_busy_database_is_waited_on_then_given_up(tmp_path: Path) -> None:
    path = tmp_path / "db.db"
    st = SQLStorage(f"sqlite:///{path}", busy_timeout=0.3)
    sid = _study(st)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    release = threading.Timer(0.15, lambda: holder.execute("COMMIT"))
    release.start()
    t0 = time.monotonic()
    rec = st.create_trial(sid, params={"x": 1})  # waits in short steps, then writes
    assert rec is not None and rec.number == 0 and time.monotonic() - t0 >= 0.1
    release.join()
    holder.execute("BEGIN IMMEDIATE")
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="locked.*busy_timeout=0.3 s"):
        st.create_trial(sid, params={"x": 2})
    assert 0.3 <= time.monotonic() - t0 < 4.5  # liveness (takes about 0.5 s), under one wait of sqlite3's default 5 s
    holder.execute("ROLLBACK")
    holder.close()
    assert len(st.get_trials(sid)) == 1


# -- several processes ----------------------------------------------------------------
def _ask_tell_worker(url: str, n: int, seed: int) -> None:
    study = ts.Study(SPACE, sampler="random", seed=seed, storage=url, name="shared")
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.params["x"] ** 2)


def _grid_worker(url: str) -> None:
    study = ts.Study({"x": ts.Categorical(list(range(40)))}, sampler="grid", seed=0, storage=url, name="grid")
    while True:
        try:
            trial = study.ask()
        except ts.SearchExhausted:
            return
        study.tell(trial, float(trial.params["x"]))


def _run_procs(target: object, args: list[tuple[object, ...]]) -> None:
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    procs = [ctx.Process(target=target, args=a) for a in args]  # type: ignore[attr-defined]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_four_processes_share_one_sqlite_study_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.db'}"
    ts.Study(SPACE, sampler="random", seed=0, storage=url, name="shared")
    _run_procs(_ask_tell_worker, [(url, 60, i) for i in range(4)])
    trials = ts.Study.load("shared", url).trials
    assert [t.number for t in trials] == list(range(240))  # no gap, no duplicate
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.trial_id for t in trials}) == 240


def test_four_processes_never_take_the_same_grid_point(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.db'}"
    ts.Study({"x": ts.Categorical(list(range(40)))}, sampler="grid", seed=0, storage=url, name="grid")
    _run_procs(_grid_worker, [(url,)] * 4)
    xs = sorted(t.params["x"] for t in ts.Study.load("grid", url).trials)
    assert xs == list(range(40))


# -- PostgreSQL (when a throwaway server can run; see tests/pg.py) ---------------------------
def test_hot_path_on_postgresql(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from pg import PostgresServer, PostgresUnavailable  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("tests/pg.py (throwaway PostgreSQL server) is not in this tree")
    try:
        server = PostgresServer()
        server.__enter__()
    except (PostgresUnavailable, ImportError, OSError) as exc:
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    try:
        for check in (test_numbers_claims_and_finished_trials, test_claim_waiting_takes_oldest_and_sees_requeued_trials,
                      test_opening_a_study_counts_its_trials_without_reading_them):
            st = SQLStorage(server.create_database(check.__name__[5:20]))
            check(st)
            st.close()
    finally:
        server.close()
