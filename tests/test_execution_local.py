"""Local executors: real parallel processes, GPU slot packing and out-of-memory retries (on CPU)."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tunesmith import Float, Study, TrialState
from tunesmith.execution import ProcessExecutor, ThreadExecutor, make_executor
from tunesmith.execution.gpu import (
    MAX_OOM_RETRIES,
    Slot,
    SlotPool,
    is_oom_error,
    may_retry_oom,
    parse_gpus,
    plan_slots,
)
from tunesmith.samplers import RandomSampler
from tunesmith.storage import MemoryStorage, SQLStorage
from tunesmith.trial import FrozenTrial, SystemState


# -- device assignment (pure) ---------------------------------------------------------------
def test_plan_slots_fills_devices_round_robin_never_beyond_capacity() -> None:
    slots = plan_slots(None, ["0", "1"], 4)
    assert len(slots) == 8
    assert [s.device for s in slots] == ["0", "1"] * 4
    assert all(s.share == 0.25 for s in slots)
    assert len(plan_slots(20, ["0", "1"], 4)) == 8  # n_jobs beyond capacity is capped
    assert [s.device for s in plan_slots(3, ["0", "1"], 4)] == ["0", "1", "0"]
    assert [s.device for s in plan_slots(3, None)] == [None, None, None]


def test_slot_env_sets_device_and_threads() -> None:
    env = Slot(0, "1", 0.25).env(threads=1)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert env["TUNESMITH_GPU_SHARE"] == "0.25"
    assert "CUDA_VISIBLE_DEVICES" not in Slot(0).env()


def test_parse_gpus_and_bad_input() -> None:
    assert parse_gpus("0,2") == ["0", "2"] and parse_gpus(2) == ["0", "1"] and parse_gpus([3]) == ["3"]
    assert parse_gpus(None) is None
    for bad in (0, "", [1, 1], True):
        with pytest.raises((ValueError, TypeError)):
            parse_gpus(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trials_per_gpu"):
        plan_slots(None, ["0"], 0)


def test_slot_pool_shrinks_a_device_after_oom_and_keeps_its_last_worker() -> None:
    pool = SlotPool(plan_slots(None, ["0"], 3))
    a, b, c = pool.live.values()
    assert pool.exited(a, oom=True) is None and pool.on_device("0") == 2  # fewer neighbours
    assert pool.exited(b, oom=True) is None and pool.on_device("0") == 1
    new = pool.exited(c, oom=True)  # the device's last worker: replaced, the retry runs alone
    assert new is not None and new.device == "0" and pool.on_device("0") == 1
    assert pool.exited(new, oom=False) is None and pool.on_device("0") == 0


def test_oom_detection_and_retry_budget() -> None:
    assert is_oom_error("OutOfMemoryError: CUDA out of memory at x.py:3")
    assert not is_oom_error("ValueError: nope")
    oom = FrozenTrial(number=4, state=TrialState.FAILED, params={}, error="OutOfMemoryError")
    assert may_retry_oom(oom)
    assert not may_retry_oom(oom.replace(system=SystemState(oom_retries=MAX_OOM_RETRIES)))


# -- executors ---------------------------------------------------------------------------------
def test_make_executor_defaults_and_errors(tmp_path: Path) -> None:
    mem, sql = MemoryStorage(), SQLStorage(f"sqlite:///{tmp_path / 'a.db'}")
    assert make_executor(None, 1, mem, {}).name == "inline"
    assert isinstance(make_executor(None, 3, mem, {}), ThreadExecutor)
    assert isinstance(make_executor(None, 3, sql, {}), ProcessExecutor)
    assert isinstance(make_executor(None, 1, sql, {"gpus": [0]}), ProcessExecutor)
    with pytest.raises(ValueError, match="share"):
        make_executor("process", 2, mem, {})
    with pytest.raises(ValueError, match="executor='inline' runs one trial at a time .* n_jobs=3 would be ignored"):
        make_executor("inline", 3, sql, {})  # before: an inline executor, n_jobs silently dropped
    assert make_executor("inline", 1, sql, {}).name == "inline"
    with pytest.raises(ValueError, match="executor must be"):
        make_executor("dask", 2, mem, {})
    with pytest.raises(TypeError, match="does not take"):
        make_executor("thread", 2, mem, {"gpus": [0]})


def test_ray_tune_s_argument_names_are_answered_with_tunesmith_s() -> None:
    """A Ray Tune user's max_concurrent_trials/num_samples/metric got only "does not take";
    n_jobs=-1 under Ray started one actor per core of the driver, not what the cluster fits."""
    mem = MemoryStorage()
    with pytest.raises(TypeError, match=r"max_concurrent_trials: write n_jobs=.*num_samples: write n_trials="):
        make_executor("ray", 1, mem, {"num_samples": 10, "max_concurrent_trials": 4})
    with pytest.raises(TypeError, match=r"mode: write ts.Study\(\.\.\., direction="):
        make_executor("thread", 2, mem, {"mode": "min"})
    assert make_executor("ray", -1, mem, {}).n_workers is None  # type: ignore[attr-defined]


def test_optuna_s_optimize_arguments_are_answered_with_tunesmith_s() -> None:
    # before: gc_after_trial got "did you mean 'resources_per_trial'?", an option of Ray's
    with pytest.raises(TypeError, match=r"gc_after_trial: no such option here: call gc.collect\(\) at the end of the objective \(a callback runs in the calling process, not in a worker process or Ray actor\)$"):
        make_executor(None, 1, MemoryStorage(), {"gc_after_trial": True})
    with pytest.raises(TypeError, match=r"show_progress_bar: write show_progress="):
        make_executor(None, 1, MemoryStorage(), {"show_progress_bar": False})


def _busy(trial: Any) -> float:
    """The first two trials: CPU-bound pure Python (holds the GIL) until a trial of another
    process has started (up to 60 s); workers that took turns never meet."""
    met = False
    if trial.number < 2:
        folder = Path(os.environ["TS_TEST_MEET"])
        (folder / f"{trial.number}.{os.getpid()}").touch()  # left there: the other one may look later
        end = time.monotonic() + 60
        while not met and time.monotonic() < end:  # no sleep: busy, holding the GIL
            met = any(not f.name.endswith(f".{os.getpid()}") for f in folder.iterdir())
    trial.set_attr("pid", os.getpid())
    trial.set_attr("met", met)
    return float(trial.params["x"])


def test_process_workers_run_cpu_bound_trials_at_the_same_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "meet").mkdir()
    monkeypatch.setenv("TS_TEST_MEET", str(tmp_path / "meet"))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'a.db'}", name="p", sampler="random")
    study.optimize(_busy, n_trials=8, n_jobs=2)
    trials = study.trials
    assert len(trials) == 8 and all(t.state is TrialState.COMPLETE for t in trials)
    pids = {t.attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids
    # two GIL-holding trials in different processes ran at the same time: true parallel workers
    # (an event, not a measured overlap of their spans, which a loaded machine shrank)
    assert trials[0].attrs["met"] and trials[1].attrs["met"]


def _gpu_trial(trial: Any) -> float:
    """Records the device it was given; 'runs out of memory' when it has neighbours
    on a device marked as small (the marker file), like a real CUDA OOM."""
    dev = os.environ.get("CUDA_VISIBLE_DEVICES")
    t0 = time.time()
    trial.set_attr("device", dev)
    trial.set_attr("threads", os.environ.get("OMP_NUM_THREADS"))
    folder = Path(os.environ["GPU_TEST_DIR"])
    mine = folder / f"{dev}.{os.getpid()}"
    mine.touch()
    try:
        time.sleep(0.15)
        neighbours = len(list(folder.glob(f"{dev}.*")))
        if (folder / f"small-{dev}").exists() and neighbours > 1:
            raise _FakeCudaOOM("CUDA out of memory. Tried to allocate 20.00 MiB")
    finally:
        mine.unlink()
    trial.set_attr("span", [t0, time.time()])
    return float(trial.params["x"])


class _FakeCudaOOM(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError on a machine without a GPU."""


_FakeCudaOOM.__name__ = "OutOfMemoryError"


@pytest.mark.slow
def test_gpu_packing_assigns_devices_and_retries_oom_with_fewer_neighbours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "devices"
    folder.mkdir()
    (folder / "small-1").touch()  # device 1 holds one trial at a time
    monkeypatch.setenv("GPU_TEST_DIR", str(folder))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'g.db'}", name="g", sampler="random")
    study.optimize(_gpu_trial, n_trials=24, gpus=["0", "1"], trials_per_gpu=2, allow_missing_gpus=True)
    trials = study.trials
    assert len(trials) >= 24
    assert {t.attrs["device"] for t in trials} == {"0", "1"}
    assert {t.attrs["threads"] for t in trials} == {"1"}
    ooms = [t for t in trials if t.state is TrialState.FAILED]
    assert ooms and all("CUDA out of memory" in (t.error or "") for t in ooms)
    by_number = {t.number: t for t in trials}
    for t in ooms:  # each OOM trial was queued again with the same parameters
        copies = [c for c in trials if c.system.retry_of == t.number]
        assert len(copies) == 1 and copies[0].params == t.params
    assert all(t.attrs["device"] == "1" for t in ooms)  # only the small device ran out
    assert any(by_number[c.number].state is TrialState.COMPLETE for c in trials if c.system.retry_of is not None)
    # never more than trials_per_gpu trials at once on a device
    for dev in ("0", "1"):
        spans = [t.attrs["span"] for t in trials if t.attrs.get("device") == dev and "span" in t.attrs]
        for s, _ in spans:
            assert sum(1 for (a, b) in spans if a <= s < b) <= 2, dev
    # once its OOM worker retired, device 1 runs its trials alone: no two overlap
    last_oom = max(t.completed or 0 for t in ooms)
    alone = [t.attrs["span"] for t in trials if t.attrs.get("device") == "1" and "span" in t.attrs and t.attrs["span"][0] > last_oom]
    assert alone, "device 1 completed nothing after its out-of-memory trial"
    for s, _ in alone:
        assert sum(1 for (a, b) in alone if a <= s < b) == 1


def _oom_once(trial: Any) -> float:
    try:  # the first trial runs out of GPU memory
        os.close(os.open(os.environ["OOM_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    raise _FakeCudaOOM("CUDA out of memory. Tried to allocate 20.00 MiB")


def test_an_oom_trial_whose_worker_is_killed_before_it_is_queued_again_keeps_its_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The worker failed its out-of-memory trial in one write and queued it again in another: killed
    between them (SIGKILL, the kernel's OOM killer), the trial stayed failed and its retry was lost. The
    retry is now queued before the failure is written: the worker killed as its failure is written leaves it."""
    parent = os.getpid()
    tell = Study.tell

    def killed_in_a_worker(self: Study, trial: Any, *args: Any, **kw: Any) -> FrozenTrial:
        out = tell(self, trial, *args, **kw)
        if os.getpid() != parent and out.state is TrialState.FAILED:  # the worker, its failure written
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    monkeypatch.setattr(Study, "tell", killed_in_a_worker)
    monkeypatch.setenv("OOM_MARKER", str(tmp_path / "oom"))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'g.db'}", name="g", sampler="random")
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_oom_once, n_trials=3, gpus=["0"], trials_per_gpu=1, allow_missing_gpus=True)
    first = study.trials[0]
    assert first.state is TrialState.FAILED and "CUDA out of memory" in (first.error or "")
    copies = [t for t in study.trials if t.system.retry_of == 0]
    assert len(copies) == 1 and copies[0].params == first.params and copies[0].system.oom_retries == 1, study.trials
    assert copies[0].state is TrialState.COMPLETE



def _oom_once_the_others_ran(trial: Any) -> float:
    """Trial 0 runs out of GPU memory once two other trials have run (so the call's budget is taken)."""
    folder = Path(os.environ["OOM_FOLDER"])
    if trial.number != 0:
        (folder / f"ran-{trial.number}").touch()
        return float(trial.params["x"])
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ran-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    raise _FakeCudaOOM("CUDA out of memory. Tried to allocate 20.00 MiB")


def test_an_oom_retry_queued_once_the_budget_is_spent_waits_for_the_next_optimize(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/distributed.md: the retry counts as one of the call's n_trials; where the other workers took the
    last ones while the out-of-memory trial ran, it waits, and the study's next optimize runs it first."""
    monkeypatch.setenv("OOM_FOLDER", str(tmp_path))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'g.db'}", name="g", sampler="random")
    study.optimize(_oom_once_the_others_ran, n_trials=3, gpus=["0"], trials_per_gpu=2, allow_missing_gpus=True)
    assert [t.state for t in study.trials] == [TrialState.FAILED, TrialState.COMPLETE, TrialState.COMPLETE,
                                               TrialState.WAITING], study.trials
    copy = study.trials[3]
    assert copy.system.retry_of == 0 and copy.params == study.trials[0].params
    study.optimize(_oom_once_the_others_ran, n_trials=1, gpus=["0"], allow_missing_gpus=True)
    assert len(study.trials) == 4 and study.trials[3].state is TrialState.COMPLETE

OOM_RUN_KILLED = """
import os, signal, sys
from tunesmith import Float, Study, TrialState

class OutOfMemoryError(RuntimeError):  # torch.cuda's, on a machine without a GPU
    pass

def oom_once(trial):
    try:
        os.close(os.open(sys.argv[2], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

run, tell = os.getpid(), Study.tell
def killed(self, trial, *args, **kw):
    out = tell(self, trial, *args, **kw)
    if os.getpid() != run and out.state is TrialState.FAILED:  # the worker, its failure written: its run, then it
        os.kill(run, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    return out
Study.tell = killed
study = Study({"x": Float(0, 1)}, storage=sys.argv[1], name="g", sampler="random")
study.optimize(oom_once, n_trials=3, gpus=["0"], trials_per_gpu=1, allow_missing_gpus=True)
"""


def test_an_oom_retry_outlives_the_run_killed_with_its_worker(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The run killed too as its worker's out-of-memory failure was written (before the worker queued the
    retry): nobody queued it, and the next run left the trial failed without a copy. The retry, queued
    before the failure, is now run by the next optimize of the study."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'g.db'}"
    killed = subprocess.run([sys.executable, "-c", OOM_RUN_KILLED, url, str(tmp_path / "oom")], env=subprocess_env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    study = Study.load("g", url)
    assert study.trials[0].state is TrialState.FAILED and "CUDA out of memory" in (study.trials[0].error or "")
    study.optimize(_oom_once_more, n_trials=1)
    copies = [t for t in study.trials if t.system.retry_of == 0]
    assert len(copies) == 1 and copies[0].state is TrialState.COMPLETE, study.trials  # before: no copy
    assert copies[0].params == study.trials[0].params and copies[0].system.oom_retries == 1


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_an_oom_trial_whose_worker_is_killed_once_its_copy_is_queued_points_to_that_copy(
        which: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two workers on one device; the one whose trial runs out of memory is SIGKILLed between queueing the
    copy and writing the failure (the other may run the copy meanwhile). The parent failed the trial as a
    dead worker's without pointing to its copy: the summary said "0 of them re-queued" and the record had no
    ``requeued_as``, while the copy ran. It points to the copy, which runs once: in this call, one of its
    n_trials, or where the other worker took the last one first, in the next."""
    from conftest import STORAGE_BACKENDS

    url = STORAGE_BACKENDS[which](request, tmp_path)
    assert url is not None
    parent, requeue = os.getpid(), Study.requeue

    def killed_once_queued(self: Study, trial: Any, *args: Any, **kw: Any) -> int | None:
        out = requeue(self, trial, *args, **kw)
        if os.getpid() != parent and out is not None:  # the worker, the copy queued, the failure not written
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    monkeypatch.setattr(Study, "requeue", killed_once_queued)
    monkeypatch.setenv("OOM_MARKER", str(tmp_path / "oom"))
    study = Study({"x": Float(0, 1)}, storage=url, name="g", sampler="random")
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_oom_once, n_trials=3, gpus=["0"], trials_per_gpu=2, allow_missing_gpus=True)
    first = study.trials[0]
    copies = [t for t in study.trials if t.system.retry_of == 0]
    assert len([t for t in study.trials if t.state is not TrialState.WAITING]) == 3, study.trials  # the copy counts
    assert first.state is TrialState.FAILED and "exit code -9" in (first.error or "")
    assert len(copies) == 1 and first.system.requeued_as == copies[0].number, first  # before: None
    assert f"trial 0 failed, re-queued as {copies[0].number}" in caplog.text
    if copies[0].state is TrialState.WAITING:
        study.optimize(_oom_once, n_trials=1, gpus=["0"], trials_per_gpu=2, allow_missing_gpus=True)
    assert [t.state for t in study.trials if t.system.retry_of == 0] == [TrialState.COMPLETE], study.trials  # once


def _oom_once_more(trial: Any) -> float:
    return float(trial.params["x"])


def _refuse_copies_while_a_trial_runs(url: str, which: str) -> Any:
    """A trigger that makes the database refuse (an error, not a claim already held) a waiting trial
    inserted while a trial of the file runs, as a busy or failing server refuses a write; the SQL that
    takes it out again."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if which == "sqlite":  # an integer overflow: SQLite's RAISE() would read as a claim already held
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON ts_trials WHEN NEW.state = 'waiting' "
                                 "AND EXISTS (SELECT 1 FROM ts_trials WHERE state = 'running') "
                                 "BEGIN SELECT abs(-9223372036854775807 - 1); END")
            drop = "DROP TRIGGER refuse"
        else:
            schema = SQLStorage(url).engine.get_execution_options().get("schema_translate_map", {}).get(None)
            table = f"{schema or 'public'}.ts_trials"
            conn.exec_driver_sql(f"CREATE OR REPLACE FUNCTION {schema or 'public'}.refuse() RETURNS trigger "
                                 f"LANGUAGE plpgsql AS $$ BEGIN IF EXISTS (SELECT 1 FROM {table} WHERE state = "
                                 "'running') THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$")
            conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW WHEN "
                                 f"(NEW.state = 'waiting') EXECUTE FUNCTION {schema or 'public'}.refuse()")
            drop = f"DROP TRIGGER refuse ON {table}; DROP FUNCTION {schema or 'public'}.refuse()"

    def undo() -> None:
        with engine.begin() as conn:
            for statement in drop.split("; "):
                conn.exec_driver_sql(statement)
        engine.dispose()

    return undo


@pytest.mark.parametrize("killed", [False, True], ids=["retired", "killed"])
@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_an_oom_copy_the_storage_refuses_as_it_fails_is_queued_after_and_the_error_kept(
        which: str, killed: bool, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The copy queued as the out-of-memory error leaves the objective, refused by the storage: its error
    was recorded in place of the out-of-memory one, so nothing retired the worker nor queued the retry. The
    out-of-memory error is recorded as it is, and the copy queued after: by the retiring worker, or, killed
    once its failure is written, by its parent."""
    from conftest import STORAGE_BACKENDS

    url = STORAGE_BACKENDS[which](request, tmp_path)
    assert url is not None
    parent, tell = os.getpid(), Study.tell

    def killed_in_a_worker(self: Study, trial: Any, *args: Any, **kw: Any) -> FrozenTrial:
        out = tell(self, trial, *args, **kw)
        if os.getpid() != parent and out.state is TrialState.FAILED:  # the worker, its failure written
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    if killed:
        monkeypatch.setattr(Study, "tell", killed_in_a_worker)
    monkeypatch.setenv("OOM_MARKER", str(tmp_path / "oom"))
    study = Study({"x": Float(0, 1)}, storage=url, name="g", sampler="random")
    undo = _refuse_copies_while_a_trial_runs(url, which)
    try:
        with caplog.at_level("WARNING", logger="tunesmith"):
            study.optimize(_oom_once, n_trials=3, gpus=["0"], trials_per_gpu=1, allow_missing_gpus=True)
    finally:
        undo()
    first = study.trials[0]
    # before: the storage's error ("integer overflow", "refused") recorded, and no copy
    assert first.state is TrialState.FAILED and "CUDA out of memory" in (first.error or ""), first.error
    copies = [t for t in study.trials if t.system.retry_of == 0]
    assert len(copies) == 1 and copies[0].params == first.params and copies[0].system.oom_retries == 1, study.trials
    # queued by the parent as it finds the worker dead, the copy may find the budget spent by the worker that
    # took its place: it waits for the next run
    assert copies[0].state in ({TrialState.COMPLETE, TrialState.WAITING} if killed else {TrialState.COMPLETE})
    assert ("1 out-of-memory trial(s) they had failed re-queued" in caplog.text) is killed, caplog.text
    study.storage.close()


def _dies_after_an_earlier_oom_of_its_pid(trial: Any) -> float:
    """The first trial: an out-of-memory failure is recorded under this worker's ``host:pid`` 10 minutes
    ago (an earlier process with the same pid, its retry not queued: a run without ``gpus``), then the
    worker is killed."""
    from tunesmith.storage.base import worker_id

    try:
        os.close(os.open(os.environ["DIE_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    storage = SQLStorage(os.environ["STUDY_URL"])
    sid, now = storage.get_study("g").study_id, storage.clock()
    old = storage.create_trial(sid, params={"x": 0.5}, worker=worker_id(), now=now - 600)
    assert old is not None
    storage.update_trial(sid, old.replace(state=TrialState.FAILED, error="CUDA out of memory. Tried to allocate 2 GiB",
                                          completed=now - 590))  # fmt: skip
    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


def test_a_dead_gpu_worker_queues_no_retry_of_an_oom_trial_of_an_earlier_process_with_its_pid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU worker's death queued again every failed out-of-memory trial recorded under its ``host:pid``
    whose retry was not queued, those of an earlier process that had the same pid (pids are reused, in a
    container from the same small numbers on each start) too: one it failed before it started is not its own."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    monkeypatch.setenv("DIE_MARKER", str(tmp_path / "died"))
    monkeypatch.setenv("STUDY_URL", url)
    study = Study({"x": Float(0, 1)}, storage=url, name="g", sampler="random")
    study.optimize(_dies_after_an_earlier_oom_of_its_pid, n_trials=3, gpus=["0"], trials_per_gpu=1,
                   allow_missing_gpus=True)  # fmt: skip
    earlier = [t for t in study.trials if "CUDA out of memory" in (t.error or "")]
    assert len(earlier) == 1, study.trials
    assert [t for t in study.trials if t.system.retry_of == earlier[0].number] == [], study.trials


def _dies_once(trial: Any) -> float:
    try:  # created atomically: two workers that both looked before either wrote it once both died
        fd = os.open(os.environ["DIE_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return float(trial.params["x"])
    os.write(fd, str(trial.number).encode())
    os.close(fd)
    os.kill(os.getpid(), 9)  # a worker process killed mid-trial
    return 0.0


def test_a_dead_worker_process_has_its_trial_failed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIE_MARKER", str(tmp_path / "died"))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'd.db'}", name="d", sampler="random")
    study.optimize(_dies_once, n_trials=10, n_jobs=2)  # no heartbeats: the parent notices the death
    number = int((tmp_path / "died").read_text())
    trials = {t.number: t for t in study.trials}
    assert trials[number].state is TrialState.FAILED
    assert "worker process died (exit code -9)" in (trials[number].error or "")
    assert len(trials) == 10 and sum(t.state is TrialState.COMPLETE for t in trials.values()) == 9


def test_a_dead_worker_process_s_requeued_trial_runs_within_the_same_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIE_MARKER", str(tmp_path / "died"))
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'r.db'}", name="r",
                  sampler="random", heartbeat_interval=5, requeue_failed=True)
    study.optimize(_dies_once, n_trials=10, n_jobs=2)
    number = int((tmp_path / "died").read_text())
    trials = {t.number: t for t in study.trials}
    lost = trials[number]
    assert lost.state is TrialState.FAILED and lost.system.requeued_as is not None
    copy = trials[lost.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.params == lost.params
    # the lost attempt did not use up a slot: ten trials completed, plus the failed one
    assert sum(t.state is TrialState.COMPLETE for t in trials.values()) == 10 and len(trials) == 11


def _dies_after_its_neighbour(trial: Any) -> float:
    """Worker 0's trial dies once worker 1's death is being handled; worker 1's at once."""
    folder = Path(os.environ["DIE_DIR"])
    if os.environ["CUDA_VISIBLE_DEVICES"] == "1":
        os.kill(os.getpid(), 9)
    (folder / "pid").write_text(str(os.getpid()))
    end = time.monotonic() + 30
    while not (folder / "go").exists() and time.monotonic() < end:
        time.sleep(0.01)
    os.kill(os.getpid(), 9)
    return 0.0


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid")
def test_a_worker_that_dies_while_another_s_death_is_handled_is_handled_at_its_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # worker 1 dies first; the parent, handling that, runs the callback below, during
    # which worker 0 (already looked at in this round, alive) dies: its death must be
    # handled like any other (it was once left to the final sweep)
    monkeypatch.setenv("DIE_DIR", str(tmp_path))
    seen = []

    def callback(study: Study, record: FrozenTrial) -> None:
        if not seen:
            seen.append(record.number)
            (tmp_path / "go").touch()
            os.waitid(os.P_PID, int((tmp_path / "pid").read_text()), os.WEXITED | os.WNOWAIT)

    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'n.db'}", name="n", sampler="random")
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_dies_after_its_neighbour, n_trials=2, gpus=["0", "1"], allow_missing_gpus=True,
                       callbacks=[callback])  # fmt: skip
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 2
    assert all("worker process died (exit code -9)" in (t.error or "") for t in study.trials)
    assert "found running at the end" not in caplog.text
    assert "2 worker process(es) died" in caplog.text


def test_a_trial_of_a_dead_worker_found_only_at_the_end_is_requeued_and_run_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a running trial of a dead worker that the parent's look at its exit missed (its
    # creation committed later: planted here by the callback, which runs in the parent
    # right after that look) is found by the final sweep and handled like one found at
    # the exit: failed, re-queued, and its copy run by a fresh worker within the budget
    monkeypatch.setenv("DIE_MARKER", str(tmp_path / "died"))
    planted = []

    def callback(study: Study, record: FrozenTrial) -> None:
        if record.state is TrialState.FAILED and not planted:
            late = study._storage.create_trial(study._study_id, params={"x": 0.5}, worker=record.worker)
            assert late is not None
            planted.append(late.number)

    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'l.db'}", name="l",
                  sampler="random", heartbeat_interval=5, requeue_failed=True)
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_dies_once, n_trials=6, n_jobs=2, callbacks=[callback])
    trials = {t.number: t for t in study.trials}
    late = trials[planted[0]]
    assert late.state is TrialState.FAILED and late.system.requeued_as is not None
    copy = trials[late.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.params == late.params
    assert "found running at the end" in caplog.text
    # neither lost attempt used up a slot; the planted trial took none of the budget, so its
    # copy runs on the one its lost attempt gives back: seven completed, plus the two failed
    assert sum(t.state is TrialState.COMPLETE for t in trials.values()) == 7 and len(trials) == 9
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def _always_dies(trial: Any) -> float:
    os.kill(os.getpid(), 9)
    return 0.0


def test_a_trial_that_kills_every_worker_is_retried_once_then_given_up(tmp_path: Path) -> None:
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'p.db'}", name="p",
                  sampler="random", heartbeat_interval=5, requeue_failed=True)
    study.optimize(_always_dies, n_trials=3, executor="process")  # ends: a retry dying costs its slot
    first = study.trials[0]  # (its retry may come after new trials: a killed worker is replaced at once)
    retry = study.trials[first.system.requeued_as]
    assert first.state is TrialState.FAILED and retry.state is TrialState.FAILED
    assert retry.system.retry_of == first.number and retry.system.requeued_as is None
    assert not [t for t in study.trials if t.state is TrialState.RUNNING]


def test_threads_raise_what_catch_lets_through() -> None:
    """``catch=()`` with threads raises the objective's error as inline does, after
    the other threads end their trials; before, the threads died with a traceback
    on stderr and ``optimize`` returned as if all went well."""
    study = Study({"x": Float(0.0, 1.0)}, sampler="random", seed=0)

    def objective(trial: Any) -> float:
        if trial.number == 3:
            raise ZeroDivisionError("trial 3")
        time.sleep(0.01)
        return trial.params["x"]

    with pytest.raises(ZeroDivisionError, match="trial 3"):
        study.optimize(objective, n_trials=50, n_jobs=2, catch=(KeyError,))
    states = [t.state for t in study.trials]
    assert states[3] is TrialState.FAILED
    assert len(states) < 50 and TrialState.RUNNING not in states


def _terms_itself(started: threading.Barrier, trial: Any) -> float:
    started.wait()  # every worker's trial is running
    if trial.number == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    return 1.0


@pytest.mark.parametrize("executor,n_jobs,at", [("inline", 1, "writes"), ("thread", 2, "writes"), ("thread", 2, "stop")])
def test_a_second_sigterm_while_the_first_is_recorded_waits_for_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str, n_jobs: int, at: str
) -> None:
    """A second SIGTERM (or Ctrl-C) that came while the running trials were being failed as
    interrupted (or the budget stopped, just before) was raised in the middle: the trials not failed
    yet were left running for good."""
    from tunesmith.cli.launch import optimize_interruptibly
    from tunesmith.execution.loop import Budget

    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'f.db'}", name="f", sampler="random")
    storage, update = study._storage, study._storage.update_trial
    sent: list[int] = []

    def update_trial(study_id: int, record: FrozenTrial, **kw: Any) -> bool:
        if (record.error or "").startswith("interrupted"):  # more come while each is written (Ctrl-C hammered)
            sent.append(record.number)
            os.kill(os.getpid(), signal.SIGTERM)  # taken here, in the main thread, amid the writes
        return update(study_id, record, **kw)

    def stop(budget: Budget, **kw: Any) -> None:
        stopped(budget, **kw)
        if threading.current_thread() is threading.main_thread():  # the interrupt's stop
            sent.append(-1)
            os.kill(os.getpid(), signal.SIGTERM)

    if at == "writes":
        monkeypatch.setattr(storage, "update_trial", update_trial)
    else:
        stopped = Budget.stop
        monkeypatch.setattr(Budget, "stop", stop)
    options = {"n_trials": 4, "n_jobs": n_jobs, "executor": executor}
    objective = functools.partial(_terms_itself, threading.Barrier(n_jobs))
    threads = set(threading.enumerate())
    assert optimize_interruptibly(study, objective, options) == 128 + signal.SIGTERM
    for t in set(threading.enumerate()) - threads:  # the threads whose objectives still ran: their
        t.join(10)  # "ended elsewhere" warnings belong to this test, not to one that counts warnings
    assert sent
    assert [t.state for t in study.trials] == [TrialState.FAILED] * n_jobs
    assert all(t.error == "interrupted (SIGTERM)" for t in study.trials)


def _quick(trial: Any) -> float:
    return 1.0


@pytest.mark.parametrize("when", ["as its handlers are set", "as its handlers are put back"])
def test_a_sigterm_as_the_command_sets_or_puts_back_its_handlers_leaves_none_behind(
    monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A SIGTERM that came while the command set its signal handlers, or put them back once optimize
    returned, was raised there: out of the command as a plain interruption (status 130, not 143),
    its handlers left in force in the process and the SIGTERM it noted left for later records."""
    from tunesmith.cli.launch import optimize_interruptibly
    from tunesmith.exceptions import STOPPING_SIGNALS

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    set_signal = signal.signal
    sent: list[bool] = []

    def set_and_signal(signum: int, handler: Any) -> Any:
        old = set_signal(signum, handler)
        # set: right after the SIGTERM handler; put back: right after the first (SIGINT), SIGTERM's still ours
        setting = getattr(handler, "stops_optimize", False)
        if not sent and setting == (when == "as its handlers are set") and signum == (
                signal.SIGTERM if setting else signal.SIGINT):
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # taken in this thread: raised at its next instruction
        return old

    study = Study({"x": Float(0, 1)}, sampler="random")
    monkeypatch.setattr(signal, "signal", set_and_signal)
    try:
        code: int | str = optimize_interruptibly(study, _quick, {"n_trials": 2})
    except KeyboardInterrupt as exc:
        code = repr(exc)
    finally:
        monkeypatch.undo()
        left = {s: signal.getsignal(s) for s in before}
        for s, handler in before.items():
            signal.signal(s, handler)
    assert sent
    assert code == 128 + signal.SIGTERM
    assert left == before
    assert STOPPING_SIGNALS == []


class _AsksSlowlyAfterTheFirst(RandomSampler):
    """Its second suggestion (the second thread's first trial) waits until ``ready()``."""

    def __init__(self, ready: Any) -> None:
        super().__init__(0)
        self.ready, self.calls = ready, 0

    def suggest(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        deadline = time.monotonic() + 30
        while self.calls == 2 and not self.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        return super().suggest(*args, **kwargs)


def test_a_thread_still_asking_when_the_interrupt_came_runs_no_trial(tmp_path: Path) -> None:
    """A thread whose sampler was still working when Ctrl-C (or SIGTERM) came created its trial
    after the interrupt had failed the running ones, and ran it after optimize returned (the command
    line then exited under it, leaving that trial running)."""
    from tunesmith.cli.launch import optimize_interruptibly

    ran: list[int] = []
    url = f"sqlite:///{tmp_path / 'f.db'}"
    first_failed = lambda: any(t.state is TrialState.FAILED for t in Study.load("f", url).trials)  # noqa: E731
    sampler = _AsksSlowlyAfterTheFirst(first_failed)

    def objective(trial: Any) -> float:
        ran.append(trial.number)
        deadline = time.monotonic() + 30
        while sampler.calls < 2 and time.monotonic() < deadline:  # the other thread is asking
            time.sleep(0.01)
        if trial.number == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
        return 1.0

    study = Study({"x": Float(0, 1)}, storage=url, name="f", sampler=sampler)
    threads = set(threading.enumerate())
    assert optimize_interruptibly(study, objective, {"n_trials": 4, "n_jobs": 2, "executor": "thread"}) == 143
    for t in set(threading.enumerate()) - threads:
        t.join(10)
    assert ran == [0]
    assert [(t.state, t.error) for t in study.trials] == [(TrialState.FAILED, "interrupted (SIGTERM)")] * 2


def test_a_sigterm_as_the_thread_executor_starts_its_threads_stops_those_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM (or Ctrl-C) while the thread executor started its threads was raised outside its
    interrupt handling: optimize returned with the trial of a thread already started left running, and
    that thread went on with its next trials in the background."""
    from tunesmith.cli.launch import optimize_interruptibly
    from tunesmith.execution import local

    class SignalsAtTheSecondStart(threading.Thread):
        started_: list[bool] = []

        def start(self) -> None:
            super().start()
            if len(self.started_) == 1:  # the first runs a trial by now: its objective says so
                assert ran_one.wait(30)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
            self.started_.append(True)

    ran_one = threading.Event()
    ran: list[int] = []

    def objective(trial: Any) -> float:
        ran.append(trial.number)
        ran_one.set()
        time.sleep(0.3)
        return 1.0

    monkeypatch.setattr(local.threading, "Thread", SignalsAtTheSecondStart)
    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'f.db'}", name="f", sampler="random")
    threads = set(threading.enumerate())
    assert optimize_interruptibly(study, objective, {"n_trials": 4, "n_jobs": 3, "executor": "thread"}) == 143
    monkeypatch.undo()
    for t in set(threading.enumerate()) - threads:
        t.join(10)
    assert set(ran) <= {0, 1}  # the first two threads' trials (the second started as the signal came)
    ended = [(t.state, t.error) for t in study.trials]
    assert ended == [(TrialState.FAILED, "interrupted (SIGTERM)")] * len(ended) and len(ended) <= 2, ended


_HOLD_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


def _handlers_and_mask() -> tuple[list[Any], set[int]]:
    return [signal.getsignal(s) for s in _HOLD_SIGNALS], set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))


def _ctrl_c_at(where: Any) -> Any:
    """A trace that raises KeyboardInterrupt (a handler that ran there) at the first line ``where(frame)`` picks."""
    import sys

    fired: list[bool] = []

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not fired and where(frame):
            fired.append(True)
            raise KeyboardInterrupt
        return trace

    sys.settrace(trace)
    return fired


@pytest.mark.parametrize("when", ["as the hold starts", "as it ends"])
def test_a_ctrl_c_as_a_hold_starts_or_ends_leaves_the_signals_neither_blocked_nor_only_noted(when: str) -> None:
    """A handler that raised while the hold set itself up (another thread took a second Ctrl-C) or just
    after it put the handlers back left the signals blocked in the main thread for good (a SIGTERM then
    never ended the process), or a handler that only notes them: every later Ctrl-C was swallowed."""
    import linecache
    import sys

    from tunesmith.execution import local

    if not hasattr(signal, "pthread_sigmask"):
        pytest.skip("no signal.pthread_sigmask")
    before = _handlers_and_mask()
    restored: list[bool] = []
    getsignals: list[bool] = []

    def where(frame: Any) -> bool:
        if frame.f_code.co_filename != local.__file__:
            return False
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        if when == "as the hold starts":  # the second handler looked at, the first replaced
            if "before = signal.getsignal(signum)" in line:
                getsignals.append(True)
            return len(getsignals) == 2
        return frame.f_code.co_name == "_held" and bool(restored)  # the line after the handlers are back

    def note_restore(frame: Any, event: str, arg: Any) -> None:
        if frame.f_code.co_name == "restore" and event == "return":
            restored.append(True)

    fired = _ctrl_c_at(where)
    sys.setprofile(note_restore)
    try:
        with pytest.raises(KeyboardInterrupt), local._held(local.STOPS):
            pass
    finally:
        sys.settrace(None)
        sys.setprofile(None)
        after = _handlers_and_mask()
        for s, h in zip(_HOLD_SIGNALS, before[0], strict=True):  # whatever it left, none for the tests after
            signal.signal(s, h)
        signal.pthread_sigmask(signal.SIG_SETMASK, before[1])
        local._HOLDS.clear()
    assert fired
    assert after == before


@pytest.fixture
def sigterm_at_default() -> Iterator[None]:
    """SIGTERM left to the system, as in a program without a handler of its own (a whole-suite run has
    one by now: Ray's driver installs one at ``ray.init`` and keeps it)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigint_then_sigterm_held() -> None:  # run in a fresh interpreter: SIGTERM at SIG_DFL ends it
    import sys

    from tunesmith.execution import local

    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    assert other.ident is not None
    try:
        with local._held(local.STOPS):
            for signum in (signal.SIGINT, signal.SIGTERM):  # taken by a thread a library started
                signal.pthread_kill(other.ident, signum)
                while signum not in local._HOLDS[-1].kept:
                    time.sleep(0.001)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
    idle.set()
    sys.exit(0)


def test_a_sigterm_held_after_a_ctrl_c_still_ends_the_process() -> None:
    """The hold raised the signals it kept one after another and stopped at the first that raised: a
    Ctrl-C then a SIGTERM held together left the program (SIGTERM at the system's default, the library
    without the command line) running on after its KeyboardInterrupt, where unheld the SIGTERM ends it."""
    import subprocess
    import sys

    if not hasattr(signal, "pthread_kill"):
        pytest.skip("no signal.pthread_kill")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import test_execution_local as t; t._sigint_then_sigterm_held()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == -signal.SIGTERM, (out.returncode, out.stdout, out.stderr)


def test_a_handler_set_outside_python_is_left_to_the_command_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM handler that the program embedding Python set before it (``signal.getsignal`` says
    None) was replaced by the command's own, which could not put it back: ``signal.signal(SIGTERM,
    None)`` raised TypeError once optimize was over, losing its exit status and leaving the command's
    handler in force. (An embedding host cannot run in a test: ``getsignal`` answers as under one.)"""
    from tunesmith.cli.launch import optimize_interruptibly

    before = {s: signal.getsignal(s) for s in _HOLD_SIGNALS}
    getsignal = signal.getsignal
    monkeypatch.setattr(signal, "getsignal", lambda s: None if s == signal.SIGTERM else getsignal(s))
    study = Study({"x": Float(0, 1)}, sampler="random")
    try:
        code = optimize_interruptibly(study, _quick, {"n_trials": 2})
    finally:
        monkeypatch.undo()
        left = {s: signal.getsignal(s) for s in _HOLD_SIGNALS}
        for s, handler in before.items():
            signal.signal(s, handler)
    assert code == 0
    assert left == before


def _terms_itself_at_once() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)  # not ended by it: exits 0


def test_a_process_another_thread_forks_during_a_hold_takes_its_signals(sigterm_at_default: None) -> None:
    """A process forked by another thread while the main thread held the signals (an objective's
    DataLoader workers, as the thread executor marked interrupted trials failed) kept the handlers that
    only note them, noting for good: a SIGTERM (a pool's terminate) left it running."""
    import multiprocessing as mp

    from tunesmith.execution import local

    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    codes: list[int | None] = []
    go = threading.Event()

    def fork_one() -> None:  # a thread started before the hold: the signals are not blocked in it
        assert go.wait(30)
        p = mp.get_context("fork").Process(target=_terms_itself_at_once)
        p.start()
        p.join(30)
        codes.append(p.exitcode)

    t = threading.Thread(target=fork_one)
    t.start()
    with local._held(local.STOPS):
        go.set()
        t.join(60)
    assert codes == [-signal.SIGTERM]


def test_a_ctrl_c_as_a_hold_puts_the_handlers_back_loses_neither_them_nor_what_it_kept() -> None:
    """A Ctrl-C that came as the hold put the handlers back (the first back, raised at once) left the
    later signals' stand-ins in force and dropped the signals the hold had kept: a SIGTERM that came
    during the hold never reached its handler."""
    import linecache
    import sys

    from tunesmith.execution import local

    if not hasattr(signal, "pthread_kill"):
        pytest.skip("no signal.pthread_kill")
    got: list[int] = []
    before = _handlers_and_mask()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    expected = _handlers_and_mask()
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    assert other.ident is not None
    put_back: list[bool] = []

    def where(frame: Any) -> bool:  # the line after the first handler put back
        if frame.f_code.co_name != "restore" or frame.f_code.co_filename != local.__file__:
            return False
        if put_back:
            return True
        put_back.extend([True] * ("signal.signal(signum, handler)" in linecache.getline(local.__file__, frame.f_lineno)))
        return False

    try:
        with pytest.raises(KeyboardInterrupt), local._held(local.STOPS):
            signal.pthread_kill(other.ident, signal.SIGTERM)  # taken by a thread a library started
            while not local._HOLDS[-1].kept:
                time.sleep(0.001)
            fired = _ctrl_c_at(where)
    finally:
        sys.settrace(None)
        idle.set()
        after = _handlers_and_mask()
        signal.signal(signal.SIGTERM, previous)
        for s, h in zip(_HOLD_SIGNALS, before[0], strict=True):
            signal.signal(s, h)
        local._HOLDS.clear()
    assert fired
    assert got == [signal.SIGTERM]
    assert after == expected


def test_a_sigterm_handler_that_exits_is_not_dropped_for_a_ctrl_c_held_before_it() -> None:
    """A Ctrl-C then a SIGTERM whose handler calls ``sys.exit`` (a program's own), held together (as a
    worker forks), raised the KeyboardInterrupt and dropped the SystemExit: ``optimize`` took the
    interrupt, marked the trials and returned, and the program ran on where unheld it exited."""
    import sys

    from tunesmith.execution import local

    if not hasattr(signal, "pthread_kill"):
        pytest.skip("no signal.pthread_kill")
    before = _handlers_and_mask()
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    assert other.ident is not None
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        with pytest.raises(SystemExit) as exited, local._held(local.STOPS):
            for signum in (signal.SIGINT, signal.SIGTERM):  # taken by a thread a library started
                signal.pthread_kill(other.ident, signum)
                while signum not in local._HOLDS[-1].kept:
                    time.sleep(0.001)
    finally:
        idle.set()
        other.join()
        for s, h in zip(_HOLD_SIGNALS, before[0], strict=True):
            signal.signal(s, h)
    assert exited.value.code == 143
    assert _handlers_and_mask() == before


def test_a_process_another_thread_forks_as_a_hold_ends_takes_its_signals(sigterm_at_default: None) -> None:
    """The hold left the list of holds before it put the handlers back: a process another thread forked
    in between (an objective's DataLoader workers) found no hold to undo and kept the handlers that only
    note its signals, for good: a SIGTERM (a pool's terminate) left it running."""
    import linecache
    import multiprocessing as mp
    import sys

    from tunesmith.execution import local

    if not hasattr(os, "fork") or not hasattr(signal, "pthread_sigmask"):
        pytest.skip("no fork")
    codes: list[int | None] = []
    go, forked = threading.Event(), threading.Event()

    def fork_one() -> None:  # a thread started before the hold: the signals are not blocked in it
        assert go.wait(30)
        p = mp.get_context("fork").Process(target=_terms_itself_at_once)
        p.start()
        forked.set()
        p.join(30)
        codes.append(p.exitcode)

    def where(frame: Any) -> bool:  # the hold's end, the signals' mask about to be put back
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        return frame.f_code.co_name == "_held" and "# first: a signal it kept back" in line

    def fork_there(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not go.is_set() and where(frame):
            go.set()
            assert forked.wait(30)
        return fork_there

    t = threading.Thread(target=fork_one)
    t.start()
    sys.settrace(fork_there)
    try:
        with local._held(local.STOPS):
            pass
    finally:
        sys.settrace(None)
        go.set()
        t.join(60)
    assert codes == [-signal.SIGTERM]


def test_a_ctrl_c_as_a_forked_process_undoes_nested_holds_leaves_none_of_their_handlers() -> None:
    """A process forked inside two holds (the thread executor's around the marking's) whose own Ctrl-C
    came as it put the inner hold's handlers back stopped there: the outer hold's handlers, which only
    note its signals, stayed for good (a SIGTERM left it running). Run here as the fork's hook runs it."""
    import sys

    from tunesmith.execution import local

    before = _handlers_and_mask()
    holds = []
    for _ in range(2):  # as two nested holds set them up in the main thread
        holds.append(local._Noting())
        holds[-1].take(local.STOPS)
        local._HOLDS.append(holds[-1])
    undone: list[bool] = []

    def where(frame: Any) -> bool:  # the hook's next line once the inner hold's handlers are back
        if frame.f_code.co_name == "restore":
            undone.append(True)
        return frame.f_code.co_name == "_unhold_in_worker" and bool(undone)

    try:
        fired = _ctrl_c_at(where)
        with pytest.raises(KeyboardInterrupt):
            local._unhold_in_worker()
    finally:
        sys.settrace(None)
        after = _handlers_and_mask()
        for s, h in zip(_HOLD_SIGNALS, before[0], strict=True):
            signal.signal(s, h)
        local._HOLDS.clear()
    assert fired
    assert after == before
