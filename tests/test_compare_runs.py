"""``tunesmith compare --storage`` run for real: two compares at once, a run another machine left, an objective
whose code changed, and the seeds a comparison runs."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tunesmith as ts
from tunesmith.cli import main
from tunesmith.plots import run_samplers
from tunesmith.plots.compare import RUN_KEY, objective_name
from tunesmith.plots.run_lease import HOLDER
from tunesmith.storage import make_storage
from tunesmith.storage.base import process_started
from tunesmith.study import lifecycle
from tunesmith.study.manage import DROP, change_setting
from tunesmith.trial import TrialState

# each process waits at its first trial until two processes are at one (BARRIER: a folder), so the two compares
# surely run at once; SLOW: seconds per trial
OBJECTIVE = """
import os, time

_first = [True]

def objective(trial):
    barrier = os.environ.get("BARRIER")
    if barrier and _first[0]:
        _first[0] = False
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(float(os.environ.get("SLOW", "0")))
    return (trial.params["x"] - 1.0) ** 2
"""

STUDY = "name: q\nobjective: q.py:objective\ndirection: minimize\nspace:\n  x: {type: float, low: -3, high: 3}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "q.py").write_text(OBJECTIVE)
    (tmp_path / "q.yaml").write_text(STUDY)
    return tmp_path


def compare_args(project: Path, *more: str, storage: str | None = None) -> list[str]:
    return ["compare", str(project / "q.yaml"), "--samplers", "random", "-o", str(project / "c.html"),
            "--storage", storage or f"sqlite:///{project / 'runs.db'}", *more]


def stored_names(db: str) -> list[str]:
    storage = make_storage(db)
    try:
        return sorted(s.name for s in storage.list_studies())
    finally:
        storage.close()


def results(db: str, name: str) -> list[TrialState]:
    return [t.state for t in ts.load_study(name, db).trials]


def test_two_compares_at_once_into_one_storage_share_the_runs_and_no_run_passes_its_budget(
        project: Path, subprocess_env: dict[str, str], shared_storage_url: str) -> None:
    """Each compare ran ``--budget`` minus the finished trials it saw: two at once ran a run twice over (12
    trials for ``--budget 6``). A run is now held by one compare at a time; the other runs the other runs, then
    waits for the held one to end."""
    (project / "barrier").mkdir()
    env = {**subprocess_env, "BARRIER": str(project / "barrier"), "SLOW": "0.05"}
    db = shared_storage_url
    argv = [sys.executable, "-m", "tunesmith", *compare_args(project, "--budget", "6", "--seeds", "2", storage=db)]
    both = [subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in both]
    assert [p.returncode for p in both] == [0, 0], outs
    assert len(os.listdir(project / "barrier")) == 2  # both ran a trial, at once
    for name in ("q-random-seed0", "q-random-seed1"):
        assert results(db, name) == [TrialState.COMPLETE] * 6, name
    assert any("is being run by another compare" in err for _, err in outs), outs


def test_a_compare_goes_on_with_a_run_another_machine_left_running_but_never_takes_a_live_one(
        project: Path, subprocess_env: dict[str, str]) -> None:
    """A trial left running by a compare of another machine that is gone (no heartbeat for long) stayed running
    for good. It is now lost by the study's rule (no heartbeat for the grace), said so, failed and run again; a
    run another machine's live compare holds is waited for, its running trial left to it."""
    db = f"sqlite:///{project / 'runs.db'}"
    assert main(compare_args(project, "--budget", "2", "--seeds", "2")) == 0
    storage = make_storage(db)
    stale = storage.create_trial(storage.get_study("q-random-seed0").study_id, params={"x": 0.5},
                                 worker="elsewhere:4242", now=storage.clock() - 3600)  # its last beat an hour ago
    live_run = ts.load_study("q-random-seed1", db)
    live = storage.create_trial(storage.get_study("q-random-seed1").study_id, params={"x": 2.0},
                                worker="elsewhere:4243")
    assert stale is not None and live is not None
    change_setting(live_run, HOLDER, lambda _: {"worker": "elsewhere:4243", "beat": storage.clock()})
    child = subprocess.Popen([sys.executable, "-m", "tunesmith", *compare_args(project, "--budget", "4", "--seeds", "2")],
                             cwd=project, env=subprocess_env, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        said = []
        deadline = time.monotonic() + 120
        while not any("is being run by another compare" in line for line in said) and time.monotonic() < deadline:
            said.append(child.stderr.readline())
            assert said[-1] or child.poll() is None, said
        time.sleep(1.5)  # a look at the held run again, at least
        assert results(db, "q-random-seed1")[2] is TrialState.RUNNING  # never taken
        assert child.poll() is None, said  # waits for it
        sid = storage.get_study("q-random-seed1").study_id  # the other machine's compare ends its trial
        done = lifecycle.finish(storage.get_trial(sid, live.number), 1.0, TrialState.COMPLETE, None, storage.clock())
        assert storage.update_trial(sid, done, expect_state=TrialState.RUNNING)
        change_setting(live_run, HOLDER, lambda _: DROP)
        _, rest = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
        storage.close()
    said_all = "".join(said) + rest
    assert child.returncode == 0, said_all
    assert re.search(r"trial 2: worker 'elsewhere:4242' lost; re-queued as trial 3", said_all), said_all
    seed0 = ts.load_study("q-random-seed0", db).trials
    assert [t.state for t in seed0] == [TrialState.COMPLETE] * 2 + [TrialState.FAILED] + [TrialState.COMPLETE] * 2
    assert seed0[3].params == {"x": 0.5}  # the lost trial's configuration run again
    seed1 = ts.load_study("q-random-seed1", db).trials
    assert [t.state for t in seed1] == [TrialState.COMPLETE] * 4 and seed1[2].value == 1.0  # its own result kept


def test_a_stale_trial_of_another_machine_in_a_run_at_its_budget_is_ended_and_never_drawn_as_run(
        project: Path, shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A trial another machine's compare left running in a run already at its budget stayed running for good (no
    trial of the run is asked again, and only an ask reaped it), and ``--data`` gave it a best so far as if run.
    A compare reading the run now fails it by the run's heartbeat rule (said, queued again for a longer budget),
    and ``--data`` gives a trial the chart does not draw no best so far."""
    db = shared_storage_url
    assert main(compare_args(project, "--budget", "2", "--seeds", "1", storage=db)) == 0
    storage = make_storage(db)
    try:
        sid = storage.get_study("q-random-seed0").study_id
        stale = storage.create_trial(sid, params={"x": 0.5}, worker="elsewhere:4242", now=storage.clock() - 3600)
    finally:
        storage.close()
    assert stale is not None
    data = project / "c.json"
    assert main(compare_args(project, "--budget", "2", "--seeds", "1", "--data", str(data), storage=db)) == 0
    assert "trial 2: worker 'elsewhere:4242' lost; re-queued as trial 3" in caplog.text
    lost = ts.load_study("q-random-seed0", db).trials[2]
    assert lost.state is TrialState.FAILED and "no heartbeat for 60 s" in str(lost.error)
    run = json.loads(data.read_text())["runs"][0]
    trials = run["trials"]
    assert run["best_value"] == min(t["value"] for t in trials[:2])  # not the waiting copy's None
    assert [(t["state"], t["best_so_far"] is None) for t in trials] == [
        ("complete", False), ("complete", False), ("failed", True), ("waiting", True)]
    assert main(compare_args(project, "--budget", "3", "--seeds", "1", storage=db)) == 0  # the copy runs first
    again = ts.load_study("q-random-seed0", db).trials
    assert [t.state for t in again][3] is TrialState.COMPLETE and again[3].params == {"x": 0.5}


def test_a_compare_into_a_storage_refuses_runs_of_the_objective_s_earlier_code_and_new_runs_sets_them_aside(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An objective told apart by ``module:function`` only: runs of its code before an edit were gone on with and
    drawn as one run with the new code's trials. A run is now marked with the code's digest (layout and comments
    aside); other code is refused, naming the fix, and ``--new-runs`` keeps the old runs under another name."""
    db = f"sqlite:///{project / 'runs.db'}"
    assert main(compare_args(project, "--budget", "2", "--seeds", "1")) == 0
    source = project / "q.py"
    source.write_text(source.read_text().replace("import os, time", "import os, time  # a comment: same code"))
    assert main(compare_args(project, "--budget", "3", "--seeds", "1")) == 0
    source.write_text(source.read_text().replace("** 2", "** 4"))
    capsys.readouterr()
    assert main(compare_args(project, "--budget", "4", "--seeds", "1")) == 2
    err = capsys.readouterr().err
    assert re.search(r"study 'q-random-seed0' in .* holds runs of 'q:objective' with other code .* pass "
                     r"--new-runs .* or pass another storage", err), err
    assert len(ts.load_study("q-random-seed0", db).trials) == 3  # nothing run
    assert main(compare_args(project, "--budget", "4", "--seeds", "1", "--new-runs")) == 0
    kept = [n for n in stored_names(db) if n.startswith("q-random-seed0-before-")]
    assert len(kept) == 1 and len(ts.load_study(kept[0], db).trials) == 3
    assert len(ts.load_study("q-random-seed0", db).trials) == 4
    assert main(compare_args(project, "--budget", "5", "--seeds", "1")) == 0  # the new runs go on


# a compare's process once at the line, waiting there until two are (BARRIER: a folder): both set aside at once
AT_ONCE = """
import os, sys, time
from tunesmith.cli import main

barrier = os.environ["BARRIER"]
open(os.path.join(barrier, "set-aside-" + str(os.getpid())), "w").close()
deadline = time.monotonic() + 60
while len([n for n in os.listdir(barrier) if n.startswith("set-aside-")]) < 2 and time.monotonic() < deadline:
    time.sleep(0.001)
sys.exit(main(sys.argv[1:]))
"""


@contextlib.contextmanager
def writes_held(url: str) -> Iterator[None]:
    """Another writer holding the storage's write lock (reads go on): SQLite's, or PostgreSQL's on the studies."""
    if url.startswith("sqlite"):
        held = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        held.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            held.rollback()
            held.close()
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE ts_studies IN EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def test_two_new_runs_at_once_set_each_old_run_aside_once_and_run_the_new_code_s_runs(
        project: Path, subprocess_env: dict[str, str], shared_storage_url: str) -> None:
    """Two ``--new-runs`` started at once each read the old runs and renamed them: one failed (``no study named
    'q-sobol-seed0'``: the other renamed it first, or a taken name), or renamed the new run the other had just
    made, its new code's trials kept as the old code's. Each run is held while set aside (compare-and-set): one
    renames it, the other waits and goes on with the new run."""
    db = shared_storage_url
    samplers = ["--samplers", "random,sobol", "--seeds", "4"]
    assert main([*compare_args(project, "--budget", "1", storage=db), *samplers]) == 0
    source = project / "q.py"
    source.write_text(source.read_text().replace("** 2", "** 4"))
    (project / "barrier").mkdir()
    (project / "at_once.py").write_text(AT_ONCE)
    env = {**subprocess_env, "BARRIER": str(project / "barrier")}
    argv = [sys.executable, str(project / "at_once.py"), *compare_args(project, "--budget", "2", "--new-runs",
                                                                       storage=db), *samplers]
    with writes_held(db):  # each reads the old runs, then waits to rename them: both at once when let go
        both = [subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        deadline = time.monotonic() + 120
        while len(os.listdir(project / "barrier")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(8)  # their reads (the study file, the objective, the runs) go on meanwhile
    outs = [p.communicate(timeout=240) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err[-2000:] for _, err in outs]
    names = stored_names(db)
    storage = make_storage(db)
    try:
        marks = {n: storage.get_study(n).config[RUN_KEY]["code"] for n in names}
    finally:
        storage.close()
    runs = [f"q-{sampler}-seed{seed}" for sampler in ("random", "sobol") for seed in range(4)]
    aside = {run: [n for n in names if n.startswith(run + "-before-")] for run in runs}
    assert all(len(kept) == 1 for kept in aside.values()), aside  # each old run kept once, no new one with it
    assert sorted(names) == sorted([*runs, *(kept[0] for kept in aside.values())]), names
    for run in runs:
        assert marks[aside[run][0]] != marks[run] == marks[runs[0]], run  # the old code's aside, the new in use
        assert len(ts.load_study(aside[run][0], db).trials) == 1 and results(db, run) == [TrialState.COMPLETE] * 2


def test_a_setting_changed_while_its_study_is_renamed_and_made_anew_between_two_tries_reports_nothing_written(
        tmp_path: Path) -> None:
    """``change_setting`` returned what its first try meant to store where another writer changed the settings
    (the compare-and-set tried again) and then renamed the study and made another of its name (the second try
    writes nothing): a run taken to be set aside was taken as held, and the compare renamed the other's new run or
    failed (``no study named ...``). It returns None: nothing written, neither study holding it."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    space = {"x": ts.Float(-3, 3)}
    run = ts.Study(space, storage=db, name="r")
    other = make_storage(db)
    tries: list[Any] = []

    def change(stored: Any) -> Any:
        tries.append(stored)
        if len(tries) == 1:  # another writer between this try's read and its write
            sid = other.get_study("r").study_id
            other.set_study_config(sid, {**other.get_study("r").config, "other": 1})
            other.rename_study("r", "r-before")
            ts.Study(space, storage=other, name="r")
        return {"worker": "this"}

    try:
        assert change_setting(run, HOLDER, change) is None
        assert [HOLDER in other.get_study(n).config for n in ("r", "r-before")] == [False, False]
    finally:
        other.close()


SCRIPT = """
import sys
import tunesmith as ts
from tunesmith.plots import run_samplers
from helpers import shift

def objective(trial):
    return (trial.params["x"] - shift()) ** 2

BUDGET = 2
run_samplers(objective, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=BUDGET, seeds=[0], storage=sys.argv[1],
             prefix="s")
"""


def test_a_refused_run_of_other_code_names_the_files_changed_and_says_what_to_do_with_an_objective_in_the_script(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """An objective defined in the script that calls ``run_samplers`` is refused after any edit of the script (its
    digest is of the whole file), and the refusal said only "its file or a local module it imports was changed".
    It now names the files changed and, for an objective in the script, to move it into a module of its own."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    script, helpers = tmp_path / "s.py", tmp_path / "helpers.py"
    script.write_text(SCRIPT)
    helpers.write_text("def shift():\n    return 1.0\n")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), db], cwd=tmp_path, env=subprocess_env, text=True,
                              capture_output=True, timeout=120)

    assert run().returncode == 0
    script.write_text(SCRIPT.replace("BUDGET = 2", "BUDGET = 3"))
    err = run().stderr
    assert re.search(r"holds runs of '__main__:objective' with other code than this \(changed since: 's\.py'\).* "
                     r"The objective is defined in the script that runs this comparison, so every edit of that "
                     r"script .* move the objective, and what it calls, into a module of its own", err), err
    helpers.write_text("def shift():\n    return 2.0\n")
    assert "(changed since: 'helpers.py', 's.py')" in run().stderr
    assert len(ts.load_study("s-random-seed0", db).trials) == 2  # nothing run


def test_compare_s_first_seed_runs_seeds_first_to_first_plus_n_minus_1_and_names_them(project: Path) -> None:
    """Seeds were 0 .. n-1 only: a stored comparison could not be given more seeds. ``--first-seed K`` runs
    seeds K .. K+n-1; the chart's title and ``--data`` name them, and seed K's run is ``Study(seed=K)``'s."""
    db = f"sqlite:///{project / 'runs.db'}"
    assert main(compare_args(project, "--budget", "3", "--seeds", "2", "--first-seed", "3",
                             "--data", str(project / "c.json"))) == 0
    assert stored_names(db) == ["q-random-seed3", "q-random-seed4"]
    data = json.loads((project / "c.json").read_text())
    assert data["seeds"] == [3, 4] and [r["seed"] for r in data["runs"]] == [3, 4]
    assert "q: best so far, 3 trials, seeds 3, 4" in (project / "c.html").read_text()
    again = ts.Study(ts.load_study("q-random-seed4", db).space, sampler="random", seed=4)
    again.optimize(lambda t: 0.0, n_trials=3)
    assert [t.params for t in again.trials] == [t.params for t in ts.load_study("q-random-seed4", db).trials]
    with pytest.raises(SystemExit):
        main(compare_args(project, "--first-seed", "-1"))


def square(trial: ts.Trial) -> float:
    return (trial.params["x"] - 1.0) ** 2


def compare_in_thread(db: str, seeds: list[int], progress: Any = None) -> tuple[threading.Thread, list[Any]]:
    """``run_samplers`` of :func:`square` into ``db`` (random, 2 trials a run) in a thread: what it returned or
    raised lands in the list (a compare that waits for good is seen as a thread still running)."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=seeds,
                                    storage=db, prefix="q", progress=progress))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_run_held_by_a_process_of_this_machine_whose_pid_a_later_process_took_is_taken_over(
        tmp_path: Path) -> None:
    """A holder of this machine was alive while its pid ran: a compare killed, its pid then a later process's
    (a long one: a server), and every compare after it waited for that process to end. The holder's process
    start is stored with it; a live pid of a process started at another time is no holder."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    thread = None
    try:
        started = process_started(other.pid)
        if started is None:
            pytest.skip("no /proc here: a process's start cannot be read")
        run = ts.Study({"x": ts.Float(-3, 3)}, storage=db, name="q-random-seed0",
                       _settings={RUN_KEY: {"objective": objective_name(square)}})
        holder = {"worker": f"{socket.gethostname()}:{other.pid}", "beat": run.storage.clock(),
                  "started": started - 100}  # the holder's process started long before the process of its pid now
        change_setting(run, HOLDER, lambda _: holder)
        thread, out = compare_in_thread(db, [0])
        thread.join(60)
        assert not thread.is_alive(), "the compare waits for a process that is not the run's holder"
        other_alive = other.poll() is None
    finally:
        other.kill()
        other.wait()
        if thread is not None:
            thread.join(60)
    assert other_alive and not isinstance(out[0], Exception), out
    assert results(db, "q-random-seed0") == [TrialState.COMPLETE] * 2
    storage = make_storage(db)
    try:
        assert HOLDER not in storage.get_study("q-random-seed0").config  # let go after
    finally:
        storage.close()


def test_a_compare_refuses_a_run_a_compare_of_other_code_made_after_its_check_and_one_renamed_while_it_waits(
        tmp_path: Path) -> None:
    """Every run was checked once, before any ran: a run a compare of other code made meanwhile (after its
    ``--new-runs`` set the old one aside) was gone on with, its trials and this code's drawn as one run; and a
    run renamed while this compare waited for it was waited for for good (its holder read as 'None'). A run is
    checked again once taken, and one whose name is another study's now is refused, naming why."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=1, seeds=[0, 1, 2], storage=db, prefix="q")
    storage = make_storage(db)

    def other_code(line: str) -> None:  # as seed 0 ends, a compare of other code makes seed 1 anew
        if line.startswith("random, seed 0: done"):
            change_setting(ts.load_study("q-random-seed1", db), RUN_KEY, lambda mark: {**mark, "code": "0" * 64})

    def renamed(line: str) -> None:  # as seed 0 ends, seed 2 (held, waited for) is set aside and made anew
        if line.startswith("random, seed 0: done"):
            storage.rename_study("q-random-seed2", "q-random-seed2-before-x")
            ts.Study({"x": ts.Float(-3, 3)}, storage=db, name="q-random-seed2",
                     _settings={RUN_KEY: {"objective": objective_name(square)}})

    try:
        thread, out = compare_in_thread(db, [0, 1], progress=other_code)
        thread.join(60)
        assert not thread.is_alive()
        assert isinstance(out[0], ValueError), out
        assert re.search(r"'q-random-seed1' .* holds runs of .* other code", str(out[0])), out
        assert len(ts.load_study("q-random-seed1", db).trials) == 1  # none of this code's trials added
        change_setting(ts.load_study("q-random-seed2", db), HOLDER, lambda _: {"worker": "elsewhere:7",
                                                                                "beat": storage.clock()})
        thread, out = compare_in_thread(db, [2, 0], progress=renamed)
        thread.join(60)
        assert not thread.is_alive(), "the compare waits for good"
        assert isinstance(out[0], ValueError) and "'q-random-seed2' in " in str(out[0]) \
            and "was renamed or deleted" in str(out[0]), out
    finally:
        storage.close()


def test_new_runs_refuses_to_set_aside_a_run_a_live_compare_of_the_other_code_runs_now(tmp_path: Path) -> None:
    """``--new-runs`` renamed every run of other code, one a live compare was running too: that one's trials went
    on into the run set aside and it stopped as if taken over. A run held by a live compare is refused, naming
    it, and nothing is renamed; once it is let go, ``--new-runs`` sets it aside."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=1, seeds=[0, 1], storage=db, prefix="q")
    storage = make_storage(db)
    try:
        for seed in (0, 1):  # made by the objective's earlier code
            change_setting(ts.load_study(f"q-random-seed{seed}", db), RUN_KEY, lambda mark: {**mark, "code": "0" * 64})
        held = ts.load_study("q-random-seed1", db)
        change_setting(held, HOLDER, lambda _: {"worker": "elsewhere:7", "beat": storage.clock()})
        with pytest.raises(ValueError, match=r"'q-random-seed1' in .* is being run now by another compare "
                                             r"\('elsewhere:7'\).* let that one end"):
            run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=[0, 1], storage=db,
                         prefix="q", new_runs=True)
        assert stored_names(db) == ["q-random-seed0", "q-random-seed1"]  # nothing renamed
        change_setting(held, HOLDER, lambda _: DROP)
        run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=[0, 1], storage=db,
                     prefix="q", new_runs=True)
        assert len([n for n in stored_names(db) if "-before-" in n]) == 2
    finally:
        storage.close()


def test_new_runs_stopped_between_holding_a_run_and_renaming_it_lets_the_run_go(shared_storage_url: str) -> None:
    """``--new-runs`` held a run to set it aside and let it go only where the rename itself failed: a Ctrl-C (or
    a storage error) while it picked the new name left the run held, marked as being set aside, by a process that
    goes on (Python: a notebook's kernel), so every other compare waited for it for good, saying nothing. The
    hold is let go whatever ends the set-aside before the rename, and the run is set aside by the next."""
    db = shared_storage_url
    run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=1, seeds=[0], storage=db, prefix="q")
    change_setting(ts.load_study("q-random-seed0", db), RUN_KEY, lambda mark: {**mark, "code": "0" * 64})
    plain = make_storage(db)

    class CtrlC(type(plain)):  # type: ignore[misc]  # the real storage, Ctrl-C pressed as the new name is picked
        def list_studies(self) -> list[Any]:
            found = super().list_studies()
            if any(isinstance(s.config.get(HOLDER), dict) and s.config[HOLDER].get("aside") for s in found):
                raise KeyboardInterrupt
            return found

    storage = CtrlC(db)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=[0], storage=storage,
                         prefix="q", new_runs=True)
        assert stored_names(db) == ["q-random-seed0"]  # not renamed
        assert HOLDER not in plain.get_study("q-random-seed0").config
    finally:
        storage.close()
        plain.close()
    run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=[0], storage=db, prefix="q",
                 new_runs=True)
    assert len([n for n in stored_names(db) if "-before-" in n]) == 1 and results(db, "q-random-seed0") == [
        TrialState.COMPLETE] * 2


def test_no_module_outside_the_cli_imports_the_cli() -> None:
    """plots/compare.py imported ``cli.code`` for the objective's digest (a face importing a face, which an
    earlier pass had removed on purpose). The digest lives beside ``paths.py`` now, below both; each module
    outside cli/ is parsed and its imports (in functions too) resolved."""
    root = Path(ts.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts  # ("tunesmith", "plots", "compare")
        if parts[1] in ("cli", "__main__"):  # the CLI, and its entry point
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):  # an __init__'s package is its own parts[:-1] too
                base = [*parts[:len(parts) - node.level], *([node.module] if node.module else [])] if node.level \
                    else [node.module or ""]
                names = [".".join(base), *(".".join([*base, a.name]) for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(re.match(r"tunesmith\.cli(\.|$)", n) for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, found


def test_new_runs_sets_aside_a_run_whose_stored_creation_time_no_calendar_holds(project: Path) -> None:
    """A run whose creation time was changed in the database to one no calendar holds (1e20): ``--new-runs``
    ended with an OverflowError traceback naming no run. It is kept under the time it is set aside at."""
    import sqlite3

    db = f"sqlite:///{project / 'runs.db'}"
    assert main(compare_args(project, "--budget", "2", "--seeds", "1")) == 0
    source = project / "q.py"
    source.write_text(source.read_text().replace("** 2", "** 4"))
    with sqlite3.connect(project / "runs.db") as conn:
        conn.execute("UPDATE ts_studies SET created = 1e20")
    before = time.strftime("%Y%m%d-%H%M%S")
    assert main(compare_args(project, "--budget", "3", "--seeds", "1", "--new-runs")) == 0
    [kept] = [n for n in stored_names(db) if n.startswith("q-random-seed0-before-")]
    assert kept.removeprefix("q-random-seed0-before-") >= before and len(ts.load_study(kept, db).trials) == 2
    assert len(ts.load_study("q-random-seed0", db).trials) == 3


def test_new_runs_refuses_a_run_whose_set_aside_name_is_too_long_before_setting_any_aside(tmp_path: Path) -> None:
    """A ``prefix=`` of 476 characters makes runs of 489 and 490 characters, set aside as 512 and 513: ``new_runs``
    set the first run aside, then stopped at the second with the storage's "study name of 513 characters is too
    long", naming neither the run nor ``--new-runs``. Refused before any is set aside, saying what to do."""
    db, prefix = f"sqlite:///{tmp_path / 'runs.db'}", "q" * 476
    run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=1, seeds=[0, 10], storage=db, prefix=prefix)
    for seed in (0, 10):  # made by the objective's earlier code
        change_setting(ts.load_study(f"{prefix}-random-seed{seed}", db), RUN_KEY, lambda mark: {**mark, "code": "0" * 64})
    with pytest.raises(ValueError, match=r"--new-runs cannot keep run 'qqq.*earlier code aside: .* make 513 "
                                         r"characters, more than a study name's 512; pass a shorter prefix"):
        run_samplers(square, {"x": ts.Float(-3, 3)}, samplers=["random"], budget=2, seeds=[0, 10], storage=db,
                     prefix=prefix, new_runs=True)
    assert stored_names(db) == [f"{prefix}-random-seed0", f"{prefix}-random-seed10"]  # nothing renamed
