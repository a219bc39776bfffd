"""Study: trial lifecycle, directions, ask/tell, enqueue, failures, records, resuming."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.trial import TrialState

SPACE = {"x": ts.Float(-5.0, 5.0), "k": ts.Categorical(["a", "b"])}


def quadratic(trial: ts.Trial) -> float:
    return (trial.params["x"] - 1.0) ** 2 + (0.5 if trial.params["k"] == "b" else 0.0)


def test_lifecycle_ask_tell(storage_url: str | None) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="life")
    t0 = study.ask()
    assert t0.number == 0 and t0.state is TrialState.RUNNING and set(t0.params) == {"x", "k"}
    assert study.trials[0].state is TrialState.RUNNING
    done = study.tell(t0, 0.93)
    assert done.state is TrialState.COMPLETE and done.value == 0.93 and done.completed is not None
    t1 = study.ask()
    failed = study.tell(t1, state="failed")
    assert failed.state is TrialState.FAILED and failed.error == "marked failed by tell()"
    t2 = study.ask()
    t2.report(0.4, step=0)
    t2.report(0.3)
    assert study.trials[2].intermediate == {0: 0.4, 1: 0.3}
    pruned = study.tell(t2.number, state=TrialState.PRUNED)  # by number
    assert pruned.state is TrialState.PRUNED and pruned.value == 0.3  # its last report
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED]
    with pytest.raises(ts.TrialFinishedError, match="trial 0 is already complete"):
        study.tell(t0, 1.0)
    with pytest.raises(ValueError, match="not running"):
        study.tell(study.ask(), state="running")


@pytest.mark.parametrize("direction, best", [("minimize", 1.0), ("maximize", 9.0)])
def test_directions(direction: str, best: float) -> None:
    study = ts.Study(SPACE, direction=direction, sampler="random", seed=0)
    for v in (5.0, 1.0, 9.0, 3.0):
        study.tell(study.ask(), v)
    assert study.best_value == best
    assert study.best_trial.params == study.best_params
    with pytest.raises(ValueError, match="direction must be 'minimize' or 'maximize'"):
        ts.Study(SPACE, direction="max")


def test_best_trial_needs_a_complete_trial() -> None:
    study = ts.Study(SPACE, name="empty")
    with pytest.raises(ValueError, match="'empty' has no complete trial yet"):
        _ = study.best_trial
    study.tell(study.ask(), state="failed")
    with pytest.raises(ValueError, match="no complete trial"):
        _ = study.best_value


def test_trials_in_takes_a_state_in_any_case_and_names_the_states() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.tell(study.ask(), state="pruned")
    assert [t.number for t in study.trials_in("PRUNED")] == [0] == [t.number for t in study.trials_in("Pruned")]
    # before: "'prune' is not a valid TrialState"
    with pytest.raises(ValueError, match=r"unknown trial state 'prune' \(did you mean 'pruned'\?\); the states are \['waiting'"):
        study.trials_in("prune")
    # tell() too: before, "tell() finishes a trial as 'complete', 'pruned' or 'failed' ..., not Pruned"
    assert study.tell(study.ask(), state="Pruned").state is TrialState.PRUNED


def test_no_best_trial_says_the_pruner_stopped_every_trial() -> None:
    # before: "has no complete trial yet", for a study whose every trial was paused or pruned
    study = ts.Study(SPACE, name="stopped", pruner=ts.pruners.ASHA(min_resource=1, max_resource=9, pause=True))
    first, second, third = study.ask(), study.ask(), study.ask()
    for t, v in ((first, 0.1), (second, 0.9), (third, 0.8)):
        t.report(v, 1)
    study.tell(first, state="pruned")
    second.set_attr("checkpoint", "ck")
    study.tell(second, state="paused")
    study.tell(third, state="failed")
    with pytest.raises(ValueError, match=r"'stopped' has no complete trial yet \(1 paused, 1 pruned, 1 failed\); a paused "
                                         r"trial completes only once its pruner promotes it and optimize resumes it"):
        _ = study.best_trial


@pytest.mark.parametrize(
    "returned, reason",
    [
        (float("nan"), "returned nan"),
        (float("inf"), "returned inf"),
        (None, "returned None"),
        ("0.5", "returned '0.5' (str)"),
        ([0.1, 0.2], "single value"),
        (True, "returned True (bool)"),
        (np.bool_(True), "returned np.True_ (bool)"),  # was taken as 1.0, where Python's True fails
    ],
)
def test_bad_values_fail_the_trial_and_the_study_goes_on(returned: object, reason: str) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: returned if t.number % 2 == 0 else 1.0, n_trials=4)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAILED, TrialState.COMPLETE] * 2
    assert reason in (study.trials[0].error or "")
    assert study.best_value == 1.0


def test_raising_objective_fails_with_reason_stored(storage_url: str | None) -> None:
    def objective(trial: ts.Trial) -> float:
        if trial.number == 1:
            raise RuntimeError("CUDA out of memory")
        return trial.params["x"]

    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="raise")
    study.optimize(objective, n_trials=3)
    t = study.trials[1]
    assert t.state is TrialState.FAILED
    assert t.error is not None and t.error.startswith("RuntimeError: CUDA out of memory at ")
    assert "test_study.py" in t.error
    assert [x.state for x in study.trials].count(TrialState.COMPLETE) == 2


def test_uncaught_exception_propagates_after_marking() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        study.optimize(objective, n_trials=3, catch=(ValueError,))
    assert len(study.trials) == 1 and study.trials[0].state is TrialState.FAILED


def test_trial_pruned_raised_by_objective() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        trial.report(2.0)
        raise ts.TrialPruned()

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert study.trials[0].value == 2.0


def test_report_and_attrs() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    t = study.ask()
    with pytest.raises(ValueError, match="report\\(\\) takes a finite number, got nan"):
        t.report(float("nan"))
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        t.report(1.0, step=-1)
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        t.report(1.0, step=2.5)
    t.report(0.5, step=np.int64(3))  # NumPy integers are integers
    assert t.record.intermediate == {3: 0.5} and type(t.record.last_step) is int
    # a repeated or earlier step would overwrite history silently (a repeated one said "step 3
    # was reported after step 3")
    with pytest.raises(ValueError, match="trial 0: step 3 was reported already; steps must increase"):
        t.report(0.9, step=3)
    with pytest.raises(ValueError, match="step 1 was reported after step 3"):
        t.report(0.9, step=1)
    assert t.record.intermediate == {3: 0.5}
    t.set_attr("ckpt", "/tmp/x")
    assert not t.should_prune()
    assert study.tell(t, 1.0).attrs == {"ckpt": "/tmp/x"}


def test_the_step_a_checkpoint_holds_is_cleared_with_the_checkpoint(tmp_path: Path) -> None:
    """``system.checkpoint_step`` is None where there is no checkpoint: set_attr("checkpoint", None) left the last
    step reported there, naming the step of a checkpoint the trial no longer has."""
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 's.db'}", name="s", sampler="random", seed=0)
    t = study.ask()
    t.report(0.5, 1, checkpoint="ck-1")
    t.report(0.4, 2)
    assert t.record.system.checkpoint_step == 1
    t.set_attr("checkpoint", None)
    assert study.trials[0].system.checkpoint_step is None and study.trials[0].attrs["checkpoint"] is None
    t.set_attr("checkpoint", "ck-2")
    assert study.trials[0].system.checkpoint_step == 2


def test_report_without_a_step_counts_from_1_as_the_pruners_rungs_do() -> None:
    # before: the first report without a step was step 0, so epoch 1 was step 0 and ASHA's
    # first rung (min_resource=2) judged trials after their third epoch, not their second
    study = ts.Study(SPACE, sampler="random", seed=0, pruner="asha")
    t = study.ask()
    for value in (0.9, 0.8, 0.7):
        t.report(value)
    assert t.record.intermediate == {1: 0.9, 2: 0.8, 3: 0.7}


def test_a_step_beyond_64_bits_is_refused_and_the_trial_stays_readable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="steps")
    t = study.ask()
    t.report(1.0, step=0)
    with pytest.raises(ValueError, match=r"step 9223372036854775808 is too large; steps must be below 2\*\*63"):
        t.report(0.5, step=2**63)
    t.report(0.5, step=2**63 - 1)  # the largest step a SQL storage keeps
    assert ts.Study.load("steps", url).trials[0].intermediate == {0: 1.0, 2**63 - 1: 0.5}
    assert study.ask().number == 1


def test_enqueue_runs_known_configurations_first(storage_url: str | None) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="enq")
    assert study.enqueue({"x": 1.0, "k": "a"}) == 0
    assert study.enqueue({"x": 2, "k": "b"}) == 1
    assert study.enqueue({"x": 1.0, "k": "a"}, skip_if_exists=True) is None
    assert study.trials[0].state is TrialState.WAITING
    study.optimize(quadratic, n_trials=3)
    trials = study.trials
    assert [t.params for t in trials[:2]] == [{"x": 1.0, "k": "a"}, {"x": 2.0, "k": "b"}]
    assert study.best_trial.number == 0 and study.best_value == 0.0
    assert len(trials) == 3 and all(t.state is TrialState.COMPLETE for t in trials)
    with pytest.raises(ValueError, match="'x': value 9.0 is outside"):
        study.enqueue({"x": 9, "k": "a"})
    with pytest.raises(ValueError, match="'k' is missing"):
        study.enqueue({"x": 0.0})


def test_enqueued_trial_by_ask() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.enqueue({"x": 0.5, "k": "b"})
    t = study.ask()
    assert t.params == {"x": 0.5, "k": "b"} and t.state is TrialState.RUNNING


# -- reproducibility -------------------------------------------------------------------------------


def run_params(sampler: str, seed: int, n: int = 12) -> list[dict]:
    study = ts.Study(SPACE, sampler=sampler, seed=seed)
    study.optimize(quadratic, n_trials=n)
    return [dict(t.params) for t in study.trials]


REPRO = """
import json, sys, tunesmith as ts
from test_study import SPACE, quadratic
study = ts.Study(SPACE, sampler=sys.argv[1], seed=int(sys.argv[2]))
study.optimize(quadratic, n_trials=12)
print(json.dumps([t.params for t in study.trials]))
"""


@pytest.mark.parametrize("sampler", ["random", "sobol", "grid"])
def test_same_seed_same_trials_other_seed_other(sampler: str, subprocess_env: dict[str, str]) -> None:
    a = run_params(sampler, 0)
    assert run_params(sampler, 0) == a
    assert run_params(sampler, 1) != a
    # and the same again in a freshly spawned interpreter
    subprocess_env["PYTHONPATH"] += os.pathsep + os.path.dirname(__file__)
    out = subprocess.run(
        [sys.executable, "-c", REPRO, sampler, "0"], env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == a


def test_resumed_study_does_not_repeat_its_draws(sqlite_url: str) -> None:
    first = ts.Study(SPACE, sampler="random", seed=3, storage=sqlite_url, name="r")
    first.optimize(quadratic, n_trials=5)
    again = ts.Study(SPACE, sampler="random", seed=3, storage=sqlite_url, name="r")
    again.optimize(quadratic, n_trials=5)
    params = [json.dumps(t.params, sort_keys=True) for t in again.trials]
    assert len(params) == 10 and len(set(params)) == 10


# -- optimize budget ----------------------------------------------------------------------------------------


def test_optimize_n_trials_adds_to_the_study() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(quadratic, n_trials=7)
    study.optimize(quadratic, n_trials=3)
    assert [t.number for t in study.trials] == list(range(10))
    study.optimize(quadratic, n_trials=0)
    assert len(study.trials) == 10


def test_optimize_timeout() -> None:
    import time

    study = ts.Study(SPACE, sampler="random", seed=0)
    t0 = time.time()
    study.optimize(lambda t: time.sleep(0.05) or 1.0, timeout=0.5)
    trials = study.trials
    assert 1 <= len(trials) <= 11  # 0.5 s of 0.05 s trials
    # none starts after the deadline (give or take the moment between the check and the start)
    assert all(t.started is not None and t.started < t0 + 0.5 + 0.3 for t in trials)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    # whichever ends first, n_trials or timeout
    study.optimize(lambda t: time.sleep(0.01) or 1.0, n_trials=1000, timeout=0.3)
    assert len(study.trials) - len(trials) <= 31
    study.optimize(quadratic, n_trials=3, timeout=60)
    assert len(study.trials) - len(trials) <= 34


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"n_trials": -1}, "n_trials must be a non-negative integer"),
        ({"n_trials": 2.5}, "n_trials must be a non-negative integer"),
        ({"timeout": 0}, "timeout must be a positive, finite number"),
        ({"timeout": float("nan")}, "timeout must be a positive, finite number"),
        ({"timeout": float("inf")}, r"timeout must be a positive, finite number of seconds or None \(no limit\)"),
        ({"n_jobs": 100_000_000}, r"n_jobs=100000000 is more parallel workers than tunesmith starts \(at most 1024"),
        ({"n_jobs": 0}, "n_jobs must be a positive integer or -1"),
        ({"n_jobs": 2, "executor": "process"}, "process workers need a storage they can share"),
        ({"n_jobs": 2, "executor": "gpu"}, "executor must be one of"),
    ],
)
def test_bad_optimize_arguments(kwargs: dict, fragment: str) -> None:
    study = ts.Study(SPACE)
    with pytest.raises(ValueError, match=fragment):
        study.optimize(quadratic, **kwargs)
    with pytest.raises(TypeError, match="objective must be callable"):
        study.optimize(3, n_trials=1)  # type: ignore[arg-type]


def test_callbacks_see_every_trial() -> None:
    seen: list[int] = []
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(quadratic, n_trials=5, callbacks=[lambda s, t: seen.append(t.number)])
    assert seen == [0, 1, 2, 3, 4]


# -- records ------------------------------------------------------------------------------------------------


def test_to_dataframe() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(quadratic, n_trials=4)
    df = study.to_dataframe()
    assert list(df.columns[:5]) == ["number", "state", "value", "params_x", "params_k"]
    assert len(df) == 4 and np.allclose(df["value"], [t.value for t in study.trials])


def test_integer_columns_with_empty_rows_stay_integers_in_the_dataframe() -> None:
    """stopped_at_step and a conditional Int parameter were floats (3.0) wherever some rows were empty, as pandas
    makes an int column with gaps; now pandas' nullable Int64, and an Int parameter every trial has stays int64."""
    pd = pytest.importorskip("pandas")
    space = {"k": ts.Categorical(["a", "b"]), "n": ts.Int(1, 9, when={"k": ["a"]}), "m": ts.Int(1, 5)}
    study = ts.Study(space, sampler="random", seed=0)
    study.add_trial({"k": "a", "n": 3, "m": 2}, 0.1, intermediate={1: 0.3})
    study.add_trial({"k": "b", "m": 4}, state="pruned", intermediate={1: 0.9, 3: 0.8})
    df = study.to_dataframe()
    assert str(df["stopped_at_step"].dtype) == "Int64" and str(df["params_n"].dtype) == "Int64"
    assert df["params_m"].dtype == np.int64
    assert df["stopped_at_step"].isna().tolist() == [True, False] and df["stopped_at_step"][1] == 3
    assert df["params_n"][0] == 3 and df["params_n"][1] is pd.NA
    assert ts.Study({"x": ts.Int(0, 3)}).to_dataframe().empty


def test_an_int_column_with_empty_rows_keeps_large_integers_and_a_value_a_writer_changed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The conditional Int column was cast from the floats pandas made of it: 2**60 + 1 read 2**60; and a value
    a writer of the database made 2.5 raised "cannot safely cast non-equivalent object to int64" out of
    to_dataframe. Now the integers are read as stored, and a column holding another value stays as pandas
    makes it."""
    import sqlite3

    pytest.importorskip("pandas")
    space = {"k": ts.Categorical(["a", "b"]), "n": ts.Int(0, 2**62, when={"k": ["a"]})}
    big = ts.Study(space)
    big.add_trial({"k": "a", "n": 2**60 + 1}, 0.1)
    big.add_trial({"k": "b"}, 0.2)
    assert big.to_dataframe()["params_n"].tolist()[0] == 2**60 + 1
    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = ts.Study(space, storage=url, name="s")
    study.add_trial({"k": "a", "n": 3}, 0.1)
    study.add_trial({"k": "b"}, 0.2, state="pruned", intermediate={2: 0.3})
    with sqlite3.connect(tmp_path / "w.db") as c:
        c.execute("UPDATE ts_trials SET params = ? WHERE params LIKE '%\"n\"%'", (json.dumps({"k": "a", "n": 2.5}),))
    df = ts.load_study("s", url).to_dataframe()
    assert df["params_n"].tolist()[0] == 2.5 and str(df["params_n"].dtype) != "Int64", df.dtypes
    assert str(df["stopped_at_step"].dtype) == "Int64" and df["stopped_at_step"][1] == 2


def test_study_survives_its_process_and_resumes_by_name(sqlite_url: str, subprocess_env: dict[str, str]) -> None:
    code = (
        "import sys, tunesmith as ts\n"
        "s = ts.Study({'x': ts.Float(0, 1)}, direction='maximize', sampler='random', seed=1,"
        " storage=sys.argv[1], name='persist')\n"
        "s.optimize(lambda t: t.params['x'], n_trials=6)\n"
    )
    subprocess.run([sys.executable, "-c", code, sqlite_url], env=subprocess_env, check=True, timeout=120)
    study = ts.load_study("persist", sqlite_url)
    assert len(study.trials) == 6 and study.direction is ts.Direction.MAXIMIZE
    assert study.space == ts.Space({"x": ts.Float(0, 1)})
    assert study.sampler.name == "random" and study.sampler.seed == 1
    assert ts.Study(storage=sqlite_url, name="persist", seed=9).sampler.seed == 9  # an explicit seed wins
    best = study.best_value
    study.optimize(lambda t: t.params["x"], n_trials=4)
    assert [t.number for t in study.trials] == list(range(10))
    assert study.best_value >= best
    with pytest.raises(ts.StudyNotFound, match="no study named 'nope'"):
        ts.load_study("nope", sqlite_url)
    with pytest.raises(ValueError, match="exists with a different space") as err:
        ts.Study({"x": ts.Float(0, 2)}, storage=sqlite_url, name="persist")
    # which parameter differs, and how to resume from a study file too (it said only "omit space=")
    assert '(x: stored {"type": "float", "low": 0, "high": 1}' in str(err.value)
    assert 'given {"type": "float", "low": 0, "high": 2}' in str(err.value)
    assert "space: in a study file" in str(err.value)
    with pytest.raises(ValueError, match="exists with direction maximize, not minimize; use another name, or leave "
                                         "the direction out"):
        ts.Study(storage=sqlite_url, name="persist", direction="minimize")
    with pytest.raises(ts.DuplicateStudyError, match="already exists"):  # a plain ValueError before
        ts.Study(storage=sqlite_url, name="persist", load_if_exists=False)
    with pytest.raises(ValueError, match="pass a space to create it"):
        ts.Study(storage=sqlite_url, name="other")
    with pytest.raises(ValueError, match=r"no study named 'persit' .*\(did you mean 'persist'\?\): pass a space"):
        ts.Study(storage=sqlite_url, name="persit")  # a typo when resuming: before, only "pass a space"


def test_resuming_from_a_misspelt_sqlite_path_names_the_missing_file_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_study`` (and ``Study`` without a space) made an empty database at a misspelt path and
    said only "no study named ..."; ``Study()`` with neither space nor name named a study never given."""
    monkeypatch.chdir(tmp_path)
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///tunesmith.db", name="svm")
    for spec, beside in (("sqlite:///tunesmth.db", "sqlite:///tunesmith.db"), ("tunesmth.db", "sqlite:///tunesmith.db"),
                         (tmp_path / "tunesmth.db", f"sqlite:///{tmp_path / 'tunesmith.db'}")):
        with pytest.raises(ts.StudyNotFound, match=re.escape(
                f"no study named 'svm' in sqlite:///{tmp_path / 'tunesmth.db'} "
                f"(there is no database file at '{tmp_path / 'tunesmth.db'}'; its folder holds {beside})")):
            ts.load_study("svm", spec)
        with pytest.raises(ValueError, match="there is no database file at .*: pass a space to create it"):
            ts.Study(storage=spec, name="svm")
    assert sorted(p.name for p in tmp_path.iterdir() if "tunesmth" in p.name) == []
    # a misspelt folder: it said "folder ... does not exist; create it first", which finds no study
    with pytest.raises(ts.StudyNotFound, match=re.escape(
            f"(there is no database file at '{tmp_path / 'runz' / 'tunesmith.db'}')")):
        ts.load_study("svm", "runz/tunesmith.db")
    with pytest.raises(ValueError, match="there is no database file at .*: pass a space to create it"):
        ts.Study(storage="sqlite:///runz/tunesmith.db", name="svm")
    assert not (tmp_path / "runz").exists()
    assert len(ts.load_study("svm", "tunesmith.db").trials) == 0  # a file that is there opens as before
    made = ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///new.db", name="svm")  # a space creates it
    assert made.storage.display_url.endswith("new.db") and (tmp_path / "new.db").is_file()
    with pytest.raises(ValueError, match=r"^a new study needs a space: ts\.Study\(space, direction=\.\.\.\); to resume "
                                         r"a stored study, give its name and storage: ts\.load_study\(name, storage\)$"):
        ts.Study()


def test_resuming_while_another_worker_makes_the_database_opens_it_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file another worker made between resuming's check (missing) and its opening was opened read-only:
    ``load_study`` found the study and every write of it failed ("opened read-only")."""
    import tunesmith.storage.sql as sql

    url, real, seen = f"sqlite:///{tmp_path / 'shared.db'}", sql.missing_sqlite_file, []

    def made_just_after_the_first_check(checked: str) -> bool:
        missing, first = real(checked), not seen
        seen.append(missing)
        if first:  # the other worker creates the study now (which checks for the file too)
            ts.Study(SPACE, storage=url, name="svm", sampler="random", seed=0)
        return missing

    monkeypatch.setattr(sql, "missing_sqlite_file", made_just_after_the_first_check)
    study = ts.load_study("svm", url)
    study.optimize(quadratic, n_trials=2)
    assert seen[0] is True and len(ts.load_study("svm", url).trials) == 2


def test_numpy_and_tensor_like_values_are_accepted() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.tell(study.ask(), np.float32(0.25))
    study.tell(study.ask(), np.array(0.5))
    assert [t.value for t in study.trials] == [0.25, 0.5]
    assert all(isinstance(t.value, float) and math.isfinite(t.value) for t in study.trials)


def test_a_loss_tensor_with_a_graph_is_taken_without_a_warning() -> None:
    """``return loss`` (a tensor that requires grad) is its value; float() of it made torch
    warn 'Converting a tensor with requires_grad=True to a scalar' from tunesmith's frame.
    A boolean tensor is no score, as a Python bool is not."""
    torch = pytest.importorskip("torch")
    study = ts.Study(SPACE, sampler="random", seed=0)
    w = torch.tensor(0.5, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.tell(study.ask(), w * 3)
        study.tell(study.ask(), torch.nn.Parameter(torch.tensor(0.25)))
    study.tell(study.ask(), torch.tensor(0.4) > 0.3)
    assert [t.value for t in study.trials] == [1.5, 0.25, None]
    assert "(Tensor); tell it a finite number" in (study.trials[2].error or "")


def test_a_one_element_array_and_tensor_fail_their_trial_alike() -> None:
    """As the guide says (0-d arrays and tensors are numbers): ``np.array([0.5])`` failed its
    trial while ``torch.tensor([0.5])`` was taken as 0.5. Both fail now, saying the shape and
    the fix, and report() refuses both; the 0-d ones are taken."""
    torch = pytest.importorskip("torch")
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: np.array([0.5]), n_trials=1)
    study.optimize(lambda t: torch.tensor([0.5]), n_trials=1)
    study.optimize(lambda t: torch.tensor(0.5), n_trials=1)
    assert [t.value for t in study.trials] == [None, None, 0.5]
    for trial, kind in zip(study.trials[:2], ("ndarray", "Tensor"), strict=True):
        assert f"({kind} of shape (1,)); return a finite number (a 0-d array or tensor, or .item()" in (trial.error or "")
    for value, kind in ((np.array([0.5]), "an ndarray"), (torch.tensor([0.5]), "a Tensor")):  # was "a ndarray"
        with pytest.raises(ValueError, match="report\\(\\) takes a finite number") as refused:
            study.ask().report(value)
        assert f"this is {kind} of shape (1,) (.item() of a one-element one is its number)" in str(refused.value)


def test_a_sampler_that_keeps_proposing_a_taken_configuration_is_named_with_the_cause() -> None:
    """Before: "could not claim a configuration after 1000 attempts", naming neither the sampler nor why."""

    class Stuck(ts.samplers.Sampler):
        name = "stuck"

        def suggest(self, space: ts.Space, trials: Any, direction: Any) -> ts.samplers.Suggestion:
            return ts.samplers.Suggestion({"x": 0.5, "k": "a"}, unique=True)

    study = ts.Study(SPACE, sampler=Stuck())
    study.ask()
    with pytest.raises(RuntimeError, match=r"Stuck \('stuck'\) proposed 1000 configurations in a row that trials "
                                           r"of study '.*' already hold, the last \{'x': 0.5, 'k': 'a'\}: .*"
                                           r"return unique=False to let a configuration repeat"):
        study.ask()
    assert len(study.trials) == 1
    Stuck.uses_history = False  # then it is given no trials to skip: the message says so
    with pytest.raises(RuntimeError, match=r"unique=False to let a configuration repeat; Stuck.uses_history is "
                                           r"False, so it is given no trials: set it to True$"):
        study.ask()


def test_an_unnamed_study_in_a_database_says_its_name_and_how_to_resume_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A script rerun with storage= but no name= made a new study each run, without a word, so
    the second run did not resume the first; the name made up is now logged with the advice."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with caplog.at_level("INFO", logger="tunesmith"):
        first = ts.Study(SPACE, storage=url)
        ts.Study(SPACE)  # in memory: nothing to resume, nothing said
        ts.Study(SPACE, storage=url, name="named")
    said = [r.getMessage() for r in caplog.records if "without name=" in r.getMessage()]
    assert said == [f"created study {first.name!r} in {first.storage.display_url}; a study made without "
                    "name= gets a new name at each run: pass name=... to resume it from a later run"]


def test_a_study_given_a_space_and_the_name_of_one_with_trials_says_it_resumes_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The guide's first block, run after the README's quickstart in the same folder (the same
    name and database, another objective), added its trials to the quickstart's study without a
    word, mixing two objectives' values; reopening a study that holds trials now says so."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with caplog.at_level("INFO", logger="tunesmith"):
        ts.Study(SPACE, storage=url, name="s")  # new: nothing to say
        ts.Study(SPACE, storage=url, name="s")  # no trial yet: nothing to say
        ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
        assert not [r for r in caplog.records if "resum" in r.getMessage()]
        reopened = ts.Study(SPACE, storage=url, name="s")
        ts.load_study("s", url)  # asked for by name: it is the study wanted
    said = [r.getMessage() for r in caplog.records if "resum" in r.getMessage()]
    assert said == [f"study 's' in {reopened.storage.display_url} holds 2 trials: resuming it (its trials "
                    "count as this objective's; another name starts a new study)"]


def test_a_pruner_whose_objective_never_reports_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """pruner="median" with an objective that never calls trial.report stopped nothing, without a
    word (and made sampler "auto" pick TPE for pruned runs); a warning now says so, once."""
    def reporting(trial: ts.Trial) -> float:
        trial.report(trial.params["x"], step=1)
        return float(trial.params["x"])

    with caplog.at_level("WARNING", logger="tunesmith"):
        silent = ts.Study(SPACE, sampler="random", seed=0, pruner="median")
        silent.optimize(lambda t: t.params["x"], n_trials=3)
        silent.optimize(lambda t: t.params["x"], n_trials=3)
        ts.Study(SPACE, sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=3)
        ts.Study(SPACE, sampler="random", seed=0, pruner="median").optimize(reporting, n_trials=3)
    said = [r.getMessage() for r in caplog.records if "no trial reported" in r.getMessage()]
    assert said == [f"study {silent.name!r} has a pruner (MedianPruner), but no trial reported an intermediate "
                    "value, so none can be stopped early: call trial.report(value, step) in the objective (each "
                    "epoch; ts.cv.cross_validate reports each fold), or leave pruner= out"]


def test_should_prune_in_a_study_without_a_pruner_says_once_that_nothing_is_stopped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A practitioner who kept the default pruner (none) and called trial.should_prune() each epoch had no
    trial stopped and no word of why (Optuna's default pruner is the median); the first call now says so,
    once per study. With a pruner, with pruner="none" given (the user's choice), and in cross-validation (whose
    folds are reported either way), nothing."""
    from tunesmith import cv

    def epochs(trial: ts.Trial) -> float:
        for epoch in range(1, 4):
            trial.report(float(trial.params["x"]) / epoch, epoch)
            if trial.should_prune():
                raise ts.TrialPruned()
        return float(trial.params["x"])

    url = f"sqlite:///{tmp_path / 'p.db'}"
    with caplog.at_level("WARNING", logger="tunesmith"):
        plain = ts.Study(SPACE, storage=url, name="plain", sampler="random", seed=0)
        plain.optimize(epochs, n_trials=3)
        plain.optimize(epochs, n_trials=2)
        ts.Study(SPACE, storage=url, name="asha", sampler="random", seed=0, pruner="asha").optimize(epochs, n_trials=3)
        # pruner="none" given: no early stopping is meant (the message says so), nothing to say
        ts.Study(SPACE, storage=url, name="none", sampler="random", seed=0, pruner="none").optimize(epochs, n_trials=2)
        folds = cv.kfold(6, 3, shuffle=False)
        ts.Study(SPACE, storage=url, name="cv", sampler="random", seed=0).optimize(
            lambda t: cv.cross_validate(t, lambda tr, va: float(va[0]), folds), n_trials=2)
    said = [r.getMessage() for r in caplog.records if "should_prune" in r.getMessage()]
    assert said == ["study 'plain' has no pruner (pruner=None, the default), so trial.should_prune() is always "
                    "False and no trial is stopped early: pass pruner='asha' (or 'median', 'hyperband'; Optuna's "
                    "default is the median) to ts.Study, or a study file's pruner: (docs/pruning.md); pruner='none' "
                    "says that no early stopping is meant, and silences this"]


def test_a_parameter_read_as_an_attribute_says_to_index_the_dict() -> None:
    """``trial.params.lr`` (as a namespace or OmegaConf reads) said only "'Params' object has
    no attribute 'lr'"; it now says to write ``trial.params['lr']``, and why an inactive one is absent."""
    space = ts.Space({"lr": ts.Float(1e-5, 1e-1, log=True), "opt": ts.Categorical(["sgd", "adam"]),
                      "nest": ts.Categorical([True, False], when={"opt": "sgd"})})
    study = ts.Study(space, sampler="random", seed=0)
    study.enqueue({"lr": 1e-3, "opt": "adam"})
    adam = study.ask()
    with pytest.raises(AttributeError, match=r"trial.params is a dict: write trial.params\['lr'\]$"):
        _ = adam.params.lr
    with pytest.raises(AttributeError, match=r"write trial.params\['nest'\] \('nest' is inactive in this trial"):
        _ = adam.params.nest
    with pytest.raises(AttributeError, match="'Params' object has no attribute 'zz'"):
        _ = adam.params.zz
    assert not hasattr(adam.params, "lr") and adam.params.keys() == {"lr", "opt"}


def _report_backwards(trial: ts.Trial) -> float:
    trial.report(1.0, step=2)
    trial.report(0.5, step=1)
    return 0.0


def test_a_misuse_of_the_trial_is_located_at_the_objective_s_line() -> None:
    """A failed trial's error named the line inside tunesmith's trial module that raised
    (trial.py:101 for a step reported twice, the suggest_float hint, an attribute of params);
    it names the objective's line, as a misspelt trial.params[...] already did."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(_report_backwards, n_trials=1)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    line = _line() - 1
    study.optimize(lambda t: t.params.x, n_trials=1)
    errors = [t.error or "" for t in study.trials]
    assert "steps must increase" in errors[0] and errors[0].endswith(f"test_study.py:{_report_backwards.__code__.co_firstlineno + 2}")
    assert "no suggest_float()" in errors[1] and errors[1].endswith(f"test_study.py:{line}")
    assert "write trial.params['x']" in errors[2] and errors[2].endswith(f"test_study.py:{line + 2}")


def test_a_missing_parameter_says_why() -> None:
    """``trial.params[name]`` for a misspelt name suggests the parameter; for an inactive
    conditional one (under a parent that is itself conditional) it names the condition.
    Before, a bare ``KeyError: 'lrr'`` left the user to guess. The dict stays a dict."""
    import pickle

    space = ts.Space({"lr": ts.Float(1e-5, 1e-1, log=True), "opt": ts.Categorical(["sgd", "adam"]),
                      "nest": ts.Categorical([True, False], when={"opt": "sgd"}),
                      "damp": ts.Float(0.0, 0.5, when={"nest": True})})
    study = ts.Study(space, sampler="random", seed=0)
    study.enqueue({"lr": 1e-3, "opt": "adam"})
    study.enqueue({"lr": 1e-3, "opt": "sgd", "nest": False})
    adam, sgd = study.ask(), study.ask()
    with pytest.raises(KeyError, match="'lrr' is not a parameter.*did you mean 'lr'"):
        adam.params["lrr"]
    with pytest.raises(KeyError, match=r"'nest' is inactive in this trial: it needs opt in \['sgd'\], here opt='adam'"):
        adam["nest"]
    with pytest.raises(KeyError, match=r"'damp' is inactive.*needs nest in \[True\], here nest \(inactive itself\)"):
        adam.params["damp"]
    with pytest.raises(KeyError, match=r"'damp' is inactive.*here nest=False"):
        sgd.params["damp"]
    assert adam.params == {"lr": 1e-3, "opt": "adam"} and adam.params.get("nest") is None
    assert type(pickle.loads(pickle.dumps(adam.params))) is dict
    import yaml

    assert yaml.safe_load(yaml.safe_dump(adam.params)) == {"lr": 1e-3, "opt": "adam"}  # a plain mapping
    assert "python/" not in yaml.dump(adam.params)
    study.tell(adam, 1.0)
    study.optimize(lambda t: t.params["lrr"], n_trials=1)
    error = study.trials[-1].error or ""
    assert "did you mean 'lr'" in error and error.endswith(f"test_study.py:{_line() - 2}")  # the caller's line
    study.optimize(lambda t: t["lrr"], n_trials=1)
    assert (study.trials[-1].error or "").endswith(f"test_study.py:{_line() - 1}")


def _line() -> int:
    """The line number of the caller."""
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_a_direction_list_or_short_name_says_what_to_do() -> None:
    """``direction=["minimize", "maximize"]`` (several objectives) and ``"max"`` were
    refused without saying that one objective is supported, or what was meant."""
    with pytest.raises(ValueError, match="tunesmith optimizes one objective"):
        ts.Study({"x": ts.Float(0.0, 1.0)}, direction=["minimize", "maximize"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did you mean 'maximize'"):
        ts.Study({"x": ts.Float(0.0, 1.0)}, direction="max")


def test_a_sampler_repeating_a_finished_finite_space_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """Sobol, TPE and bayes go on after every configuration of a finite space was tried,
    re-evaluating them; nothing said so (grid stops). Said once; not for continuous spaces."""
    space = ts.Space({"k": ts.Categorical(["a", "b"]), "n": ts.Int(1, 2)})
    with caplog.at_level("WARNING", logger="tunesmith"):
        ts.Study(space, sampler="sobol", seed=0).optimize(lambda t: t.params["n"], n_trials=12)
        ts.Study({"x": ts.Float(0.0, 1.0)}, sampler="sobol", seed=0).optimize(lambda t: t.params["x"], n_trials=12)
    said = [r.getMessage() for r in caplog.records if "configurations of its finite space" in r.getMessage()]
    assert len(said) == 1 and "every one of the 4 configurations" in said[0] and "sampler 'sobol'" in said[0]


def test_a_bad_value_told_by_hand_is_said_as_told() -> None:
    """study.tell(trial, nan) stored "objective returned nan" though no objective ran."""
    study = ts.Study({"x": ts.Float(0.0, 1.0)}, sampler="random", seed=0)
    study.tell(study.ask(), float("nan"))
    study.optimize(lambda t: None, n_trials=1)
    assert [t.error for t in study.trials] == ["tell() got nan (float); tell it a finite number",
                                               "objective returned None (NoneType); return a finite number"]


def test_catch_as_a_list_fails_the_trial_instead_of_leaving_it_running() -> None:
    # catch=[ZeroDivisionError] made `except` raise TypeError: the trials stayed 'running' for good
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: 1 / 0, n_trials=2, catch=[ZeroDivisionError])
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 2
    with pytest.raises(TypeError, match=r"catch= takes exception classes .*got ZeroDivisionError\(\)"):
        study.optimize(quadratic, n_trials=1, catch=ZeroDivisionError())  # type: ignore[arg-type]
    assert len(study.trials) == 2


def test_one_callback_needs_no_list_and_a_bad_one_is_refused_before_a_trial() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    seen: list[int] = []
    study.optimize(quadratic, n_trials=2, callbacks=lambda s, r: seen.append(r.number))
    assert seen == [0, 1]
    with pytest.raises(TypeError, match=r"callbacks= takes functions callback\(study, record\), got 1"):
        study.optimize(quadratic, n_trials=1, callbacks=[1])  # type: ignore[list-item]
    for bad in (1, "cb"):  # before: "'int' object is not iterable", and a string's letters were judged one by one
        with pytest.raises(TypeError, match=r"callbacks= takes a function callback\(study, record\) or a list of them, got"):
            study.optimize(quadratic, n_trials=1, callbacks=bad)  # type: ignore[arg-type]
    assert len(study.trials) == 2


def test_callbacks_none_means_no_callbacks() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(quadratic, n_trials=2, callbacks=None)  # before: "callbacks= takes a function ..., got None"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_an_empty_study_name_is_refused_not_replaced_by_a_random_one(tmp_path: os.PathLike) -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        ts.Study(SPACE, storage=f"sqlite:///{tmp_path}/e.db", name="")


def test_a_sampler_class_is_built_with_the_seed() -> None:
    from tunesmith.samplers import TPESampler

    runs = [ts.Study(SPACE, sampler=cls, seed=3) for cls in (ts.RandomSampler, ts.RandomSampler, TPESampler)]
    for study in runs:
        study.optimize(quadratic, n_trials=4)
    assert isinstance(runs[2].sampler, TPESampler)
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_attrs_read_the_same_after_a_reload_and_non_json_values_are_refused(storage_url: str | None) -> None:
    # before: SQL storage wrote a Path as "PosixPath('/tmp/ck')" (a checkpoint path nothing could open),
    # any object as its repr, a NumPy array raised "can only convert an array of size 1", memory kept all as given
    import pathlib

    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="attrs")
    trial = study.ask()
    trial.set_attr("checkpoint", pathlib.Path("/tmp/ck"))
    trial.set_attr("curve", np.array([0.5, 0.25]))
    trial.set_attr("folds", {0: np.float32(0.5), 1: (1, 2)})
    for bad in (object(), b"raw"):
        with pytest.raises(ValueError, match=r"trial 0: set_attr: attribute 'note' is of type .* not stored as JSON"):
            trial.set_attr("note", bad)
    with pytest.raises(TypeError, match=r"names .* are strings, got 1"):
        trial.set_attr(1, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"enqueue: attribute 'a' is of type object"):
        study.enqueue({"x": 0.0, "k": "a"}, attrs={"a": object()})
    done = study.tell(trial, 1.0)
    want = {"checkpoint": "/tmp/ck", "curve": [0.5, 0.25], "folds": {"0": 0.5, "1": [1, 2]}}
    assert done.attrs == want
    assert ts.load_study("attrs", study.storage).trials[0].attrs == want


def test_optunas_suggest_calls_say_to_declare_the_parameter_in_the_space() -> None:
    # before: AttributeError: 'Trial' object has no attribute 'suggest_float', with nothing on what to do
    study = ts.Study(SPACE, sampler="random", seed=0)
    trial = study.ask()
    with pytest.raises(AttributeError, match=r"no suggest_float\(\): .* in the Space .* trial.params\['name'\]"):
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        trial.nope  # type: ignore[attr-defined]  # noqa: B018


def test_optunas_names_on_a_study_a_trial_and_a_record_say_what_to_write() -> None:
    # before: a bare "'Study' object has no attribute 'trials_dataframe'", nothing on what it is called here
    study = ts.Study(SPACE, sampler="random", seed=0)
    trial = study.ask()
    record = study.tell(trial, 1.0)
    for obj, name, fix in [(study, "enqueue_trial", r"study.enqueue\(params\)"), (study, "trials_dataframe", r"study.to_dataframe\(\)"),
                           (trial, "set_user_attr", r"trial.set_attr\(key, value\)"), (record, "user_attrs", r"trial.attrs or record.attrs"),
                           (record, "intermediate_values", r"\.intermediate"), (record, "datetime_start", r"\.started")]:
        with pytest.raises(AttributeError, match=rf"'{type(obj).__name__}' object has no attribute '{name}': this is Optuna's name; write {fix}"):
            getattr(obj, name)
    with pytest.raises(AttributeError, match=r"no attribute 'create_study': write ts.Study\(space, direction="):
        ts.create_study  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"^'FrozenTrial' object has no attribute 'nope'$"):
        record.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(study, "nope") and not hasattr(record, "__setstate__") and record.attrs == {}


def test_records_and_studies_answer_optunas_names_without_slowing_every_attribute_read() -> None:
    # before: FrozenTrial and Study answered Optuna's names with a __getattr__, with which CPython reads
    # every attribute of every instance the slow way: a pruner's scan of 300 records took 1.7x the time
    # of the same scan without it, at each report of each trial
    from tunesmith.trial import FrozenTrial

    study = ts.Study(SPACE, sampler="random", seed=0)
    record = study.tell(study.ask(), 1.0)
    for obj in (study, record):
        assert [k for k in type(obj).__mro__ if "__getattr__" in vars(k)] == []
        assert type(obj).__getattribute__ is object.__getattribute__
        assert "user_attrs" not in dir(obj) and "enqueue_trial" not in dir(obj) and "params" in dir(record)
        with pytest.raises(AttributeError, match="this is Optuna's name; write .intermediate"):
            obj.intermediate_values  # noqa: B018
    assert getattr(record, "user_attrs", None) is None and not hasattr(FrozenTrial, "nope")


def test_an_optuna_name_is_still_free_for_an_instance_a_subclass_and_its_fields() -> None:
    # before (Optuna's names as properties, data descriptors): study.user_attrs = ... and a subclass's __init__ setting
    # study_name failed with "property of 'Study' object has no setter", a FrozenTrial subclass could not have a
    # user_attrs field, dir() hid a subclass's own user_attrs, and hasattr(ts.Study, "user_attrs") was true
    import dataclasses

    from tunesmith.trial import FrozenTrial

    class Named(ts.Study):
        notes_of_mine = "kept"

        def __init__(self) -> None:
            super().__init__(SPACE, sampler="random", seed=0)
            self.study_name = "mine"

    @dataclasses.dataclass(frozen=True)
    class Record(FrozenTrial):
        user_attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    study = Named()
    study.user_attrs = {"a": 1}  # type: ignore[attr-defined]
    assert (study.study_name, study.user_attrs) == ("mine", {"a": 1})  # type: ignore[attr-defined]
    assert {"study_name", "user_attrs"} <= set(dir(study)) and "enqueue_trial" not in dir(study)
    record = Record(number=0, state="running", params={}, user_attrs={"b": 2})
    assert record.user_attrs == {"b": 2} and record.replace(worker="w").user_attrs == {"b": 2}
    assert "user_attrs" in dir(record) and "intermediate_values" not in dir(record)
    with pytest.raises(AttributeError, match="'Record' object has no attribute 'intermediate_values': this is Optuna's"):
        record.intermediate_values  # noqa: B018
    assert not any(hasattr(cls, "user_attrs") for cls in (ts.Study, FrozenTrial))
    with pytest.raises(AttributeError, match="type object 'Study' has no attribute 'enqueue_trial': .* study.enqueue"):
        ts.Study.enqueue_trial  # type: ignore[attr-defined]  # noqa: B018


def test_a_replaced_record_keeps_its_fields_where_the_interpreter_reads_them_fast() -> None:
    # before: FrozenTrial.replace filled the new record's __dict__ with update(), which made a dict object of
    # the old record's fields and the new one's, and CPython reads such an instance's fields the slower way: a
    # pruner's scan of records made by replace took 1.4x that of records made by the constructor
    import gc

    from tunesmith.trial import FrozenTrial

    def fields_in_a_dict(record: FrozenTrial) -> bool:
        return any(isinstance(x, dict) and "number" in x for x in gc.get_referents(record))

    study = ts.Study(SPACE, sampler="random", pruner="median", seed=0)
    trial = study.ask()
    trial.report(0.5, 1)
    record = study.tell(trial, 1.0)
    started = FrozenTrial(number=7, state="running", params={"x": 1.0}, worker="w")
    ended = started.replace(state="complete", value=2)
    assert ended == FrozenTrial(number=7, state="complete", params={"x": 1.0}, value=2.0, worker="w")
    if sys.version_info >= (3, 11):  # 3.10 keeps every instance's fields in a dict object: no faster form to lose
        assert [fields_in_a_dict(r) for r in (started, ended, record, *study.trials)] == [False] * 4
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        started.replace(nope=1)


def test_an_attribute_error_inside_a_property_is_not_replaced_by_no_such_attribute() -> None:
    # before: the answer to Optuna's names hid it: "'Study' object has no attribute 'trials'", for a
    # custom storage's missing method (or a record's, a trial's property) raising AttributeError inside
    from tunesmith.storage import MemoryStorage

    class Partial(MemoryStorage):
        def get_trials_since(self, *args: Any, **kwargs: Any) -> Any:
            return self.trials_after(*args)  # type: ignore[attr-defined]  # a method it never wrote

    study = ts.Study(SPACE, storage=Partial(), sampler="random", seed=0)
    with pytest.raises(AttributeError, match=r"^'Partial' object has no attribute 'trials_after'$"):
        study.trials  # noqa: B018
    with pytest.raises(AttributeError, match=r"'Study' object has no attribute 'trials_dataframe': this is Optuna's"):
        study.trials_dataframe  # noqa: B018


def test_optunas_trial_pruned_fails_the_trial_with_the_fix() -> None:
    # before: "TrialPruned:  at file:line", a failed trial the user meant as pruned, with no word why
    optuna = pytest.importorskip("optuna")
    study = ts.Study(SPACE, sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        raise optuna.TrialPruned()

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAILED
    assert "(optuna's TrialPruned fails the trial: raise ts.TrialPruned() (or subclass it) to prune it)" \
        in (study.trials[0].error or "")


def test_a_users_subclass_of_optunas_trial_pruned_is_treated_as_optunas_own() -> None:
    # before: a class of the user's made from optuna.TrialPruned (another name) failed the trial with no word why
    optuna = pytest.importorskip("optuna")

    class Skip(optuna.TrialPruned):  # type: ignore[misc]
        pass

    class Later(Skip):
        pass

    def raising(cls: type[Exception], text: str) -> Callable[[ts.Trial], float]:
        def objective(trial: ts.Trial) -> float:
            raise cls(text)

        return objective

    study = ts.Study(SPACE, sampler="random", seed=0)
    for cls in (Skip, Later):
        study.optimize(raising(cls, "too slow"), n_trials=1)
    for trial, name in zip(study.trials, ("Skip", "Later"), strict=True):
        assert trial.state is TrialState.FAILED, "optuna.TrialPruned itself fails the trial: so does a subclass"
        assert f"{name}: too slow at " in (trial.error or "")
        assert (f"({name} subclasses optuna's TrialPruned, which fails the trial: raise ts.TrialPruned() "
                "(or subclass it) to prune it)") in (trial.error or "")

    class Mine(ts.TrialPruned):  # tunesmith's own, under another name: pruned, no note
        pass

    study.optimize(raising(Mine, "enough"), n_trials=1)
    assert study.trials[-1].state is TrialState.PRUNED


def test_a_parameter_name_in_the_wrong_case_gets_the_likely_one() -> None:
    trial = ts.Study(SPACE, sampler="random", seed=0).ask()
    with pytest.raises(KeyError, match=r"'X' is not a parameter .*did you mean 'x'"):
        trial.params["X"]
    with pytest.raises(ValueError, match=r"did you mean 'tpe'"):
        ts.Study(SPACE, sampler="TPEE")


def test_trials_in_takes_state_names_in_any_case_and_says_which_exist() -> None:
    # before: trials_in("completed") raised "'completed' is not a valid TrialState"
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(quadratic, n_trials=np.int64(1), timeout=np.float32(60.0), n_jobs=np.int64(1))  # were refused
    study.optimize(quadratic, n_trials=1)
    assert len(study.trials_in("COMPLETE")) == 2
    with pytest.raises(ValueError, match=r"unknown trial state 'completed' \(did you mean 'complete'\?\); the states"):
        study.trials_in("completed")


def test_a_sqlite_url_with_too_few_slashes_or_a_path_object(tmp_path: os.PathLike) -> None:
    # before: "sqlite:/tmp/x.db" was read as a file path and failed with "folder .../sqlite:/tmp does not exist";
    # a pathlib.Path was refused as not a URL string
    import pathlib

    with pytest.raises(ValueError, match=r"not a SQLite URL: write 'sqlite:///relative/path.db' or 'sqlite:////abs"):
        ts.Study(SPACE, storage="sqlite:/tmp/x.db")
    path = pathlib.Path(tmp_path) / "p.db"
    ts.Study(SPACE, storage=path, name="p", sampler="random", seed=0).optimize(quadratic, n_trials=1)
    assert len(ts.load_study("p", path).trials) == 1


def test_to_dataframe_and_csv_export_carry_the_trials_attrs(tmp_path: os.PathLike) -> None:
    # before: what an objective stored with set_attr (a test score, a fold's score) was in neither
    from tunesmith.cli.commands import export_csv

    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path}/a.db", name="attrs")

    def objective(trial: ts.Trial) -> float:
        trial.set_attr("test_score", 0.5 + trial.number)
        if trial.number == 1:
            trial.set_attr("note", "slow")
        return quadratic(trial)

    study.optimize(objective, n_trials=3)
    df = study.to_dataframe()
    assert list(df["attrs_test_score"]) == [0.5, 1.5, 2.5]
    assert list(df["attrs_note"].fillna("-")) == ["-", "slow", "-"]
    lines = export_csv(study).splitlines()
    assert "attrs_test_score,attrs_note" in lines[0] and ",1.5,slow," in lines[2]


def test_numpy_choices_upper_case_states_and_an_exhausted_grid_with_trials_running() -> None:
    # before: enqueue({"k": np.str_("b")}) said np.str_('b') "is not one of the choices ['a', 'b']";
    # tell(state="FAILED") was refused; an exhausted grid said every point "has been tried" while all ran
    study = ts.Study(SPACE, sampler="random", seed=0)
    number = study.enqueue({"x": np.float32(0.25), "k": np.str_("b")})
    assert study.ask().params == {"x": 0.25, "k": "b"} and type(study.trials[number].params["k"]) is str
    assert study.tell(number, state="FAILED").state is TrialState.FAILED
    grid = ts.Study({"k": ts.Categorical(["a", "b"])}, sampler="grid")
    running = [grid.ask(), grid.ask()]
    with pytest.raises(ts.SearchExhausted, match=r"tried or is running \(2 trials\)"):
        grid.ask()
    assert all(t.state is TrialState.RUNNING for t in running)


def test_a_study_of_an_unregistered_sampler_still_opens_and_asking_says_what_to_do(tmp_path: os.PathLike) -> None:
    # before: load_study, tunesmith show/export/report of such a study failed with "unknown sampler 'custom'"
    from tunesmith.cli import main as cli_main
    from tunesmith.samplers import Sampler, Suggestion

    class Center(Sampler):
        def suggest(self, space, trials, direction):  # type: ignore[no-untyped-def]
            return Suggestion(space.decode([0.5] * space.ndim))

    url = f"sqlite:///{tmp_path}/c.db"
    ts.Study(SPACE, sampler=Center(seed=0), storage=url, name="c").optimize(quadratic, n_trials=2)
    study = ts.load_study("c", url)
    assert len(study.trials_in("complete")) == 2 and study.sampler.describe()["name"] == "custom"
    with pytest.raises(ValueError, match=r"cannot rebuild .*register.*ts.Study\(name='c', storage=..., sampler='auto'\)"):
        study.ask()
    assert cli_main(["show", "c", "--storage", url]) == 0
    ts.Study(name="c", storage=url, sampler="random").optimize(quadratic, n_trials=1)
    assert len(ts.load_study("c", url).trials) == 3


def test_an_integer_value_beyond_float_precision_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """2**53 + 1 is stored as 2**53 (values are floats): it ties with 2**53, and the earlier
    trial (neither reported) is then the best, silently. The study now says so, once."""
    study = ts.Study(SPACE, sampler="random", seed=0, name="counts")
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(lambda t: 2**53 + 1 - t.number, n_trials=2)  # 2**53 + 1, then 2**53
        study.tell(study.ask(), np.int64(2**53 + 3))
    said = [r.getMessage() for r in caplog.records if "no exact float" in r.getMessage()]
    assert said == ["study 'counts': trial 0's value 9007199254740993 has no exact float and is stored as "
                    "9007199254740992.0; values beyond 2**53 differing by less than their float spacing tie (a tie "
                    "goes to the better reports, then the earlier trial): return a scaled value, e.g. value / 1e6"]
    assert [t.value for t in study.trials[:2]] == [2.0**53, 2.0**53] and study.best_trial.number == 0
