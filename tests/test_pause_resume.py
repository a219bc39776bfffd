"""Pause and resume: paused trials are promoted and continue from their checkpoints."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.exceptions import OutOfRoom
from tunesmith.pruners import ASHA, Decision, Hyperband, Pruner, SuccessiveHalving
from tunesmith.storage import MemoryStorage, SQLStorage
from tunesmith.storage.base import worker_id
from tunesmith.study.lifecycle import claim_paused
from tunesmith.trial import FrozenTrial, TrialState

SPACE = {"lr": ts.Float(0.01, 0.9, log=True)}
N_STEPS = 9
# with these, ASHA(eta=3, min_resource=1) pauses trial 1 at rung 1 and promotes it after trial 5
LRS = [0.45, 0.3, 0.05, 0.04, 0.03, 0.02, 0.015, 0.012]


# -- a resumable pure-Python "training": its whole state is saved to a file -------------
def train_step(state: dict[str, Any], lr: float) -> float:
    """One epoch of gradient descent on (w - 3)^2, with a seeded noise stream."""
    state["w"] -= lr * 2.0 * (state["w"] - 3.0)
    state["seed"] = (state["seed"] * 1103515245 + 12345) % 2**31
    return (state["w"] - 3.0) ** 2 + 1e-3 * state["seed"] / 2**31


def straight_curve(lr: float, seed: int) -> list[float]:
    """The curve an uninterrupted run gives."""
    state = {"w": 0.0, "seed": seed}
    return [train_step(state, lr) for _ in range(N_STEPS)]


def file_objective(trial: ts.Trial, folder: str, after_report: Callable[[ts.Trial, int], None] | None = None) -> float:
    """A user's resumable objective as docs/pruning.md writes it: each step's state saved to a new file, reported
    with it (one write), then the step before's file deleted."""
    if trial.is_resumed:
        state = json.loads(Path(trial.resume_from).read_text())
        assert state["step"] == trial.start_step, (state, trial.start_step)
    else:
        state = {"w": 0.0, "seed": trial.number, "step": 0}
    with open(Path(folder) / "starts.log", "a") as log:  # O_APPEND: safe across processes
        log.write(f"{trial.number} {trial.start_step} {os.getpid()}\n")
    loss = trial.intermediate.get(trial.start_step - 1, float("nan"))  # held after its last report: no step left
    for step in range(trial.start_step, N_STEPS):
        loss = train_step(state, trial.params["lr"])
        state["step"] = step + 1
        path = Path(folder) / f"trial{trial.number}-{step}.json"
        path.write_text(json.dumps(state))
        trial.report(loss, step, checkpoint=str(path))
        Path(folder, f"trial{trial.number}-{step - 1}.json").unlink(missing_ok=True)
        if after_report is not None:
            after_report(trial, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return loss


def starts(folder: Path) -> list[tuple[int, int]]:
    lines = (folder / "starts.log").read_text().split("\n")
    return [(int(a), int(b)) for a, b, _ in (ln.split() for ln in lines if ln)]


def enqueued_study(pruner: Any, storage: Any = None, name: str | None = None, lrs: list[float] = LRS) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=pruner, storage=storage, name=name)
    for lr in lrs:
        study.enqueue({"lr": lr})
    return study


def check_resumed_runs_are_exact(study: ts.Study) -> None:
    """Every trial's reports equal an uninterrupted run's: resumed runs lost nothing."""
    for t in study.trials:
        curve = straight_curve(t.params["lr"], t.number)
        assert list(t.intermediate) == list(range(len(t.intermediate)))
        assert [t.intermediate[s] for s in sorted(t.intermediate)] == curve[: len(t.intermediate)]
        if t.state is TrialState.COMPLETE:
            assert t.value == curve[-1]


# -- the study's side ------------------------------------------------------------------
def test_paused_trial_is_promoted_and_resumed_where_it_stopped(tmp_path: Path) -> None:
    study = enqueued_study(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS))
    study.optimize(functools.partial(file_objective, folder=str(tmp_path)), n_trials=len(LRS))
    states = Counter(t.state for t in study.trials)
    assert TrialState.FAILED not in states and states[TrialState.PAUSED] > 0
    assert len(study.trials) == len(LRS)  # promotions do not use up n_trials
    t1 = study.trials[1]
    assert t1.system.n_resumes >= 1 and t1.system.resumed_step >= 1
    assert (1, 0) in starts(tmp_path) and (1, 2) in starts(tmp_path)  # resumed at step 2
    assert t1.params == {"lr": 0.3}
    check_resumed_runs_are_exact(study)
    assert study.best_trial.number == 0


def test_without_pause_asha_prunes(tmp_path: Path) -> None:
    study = enqueued_study("asha")
    study.optimize(functools.partial(file_objective, folder=str(tmp_path)), n_trials=len(LRS))
    assert {t.state for t in study.trials} == {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(start == 0 for _, start in starts(tmp_path))


def _restarting_objective(trial: ts.Trial, checkpoint: bool = True) -> float:
    """Ignores start_step: runs every resumed trial from step 0 again (a user's mistake)."""
    state = {"w": 0.0, "seed": trial.number}
    loss = float("nan")
    for step in range(N_STEPS):
        loss = train_step(state, trial.params["lr"])
        if checkpoint:
            trial.set_attr("checkpoint", f"trial{trial.number}.json")
        trial.report(loss, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return loss


def test_a_resumed_run_that_starts_over_is_told_how_to_continue() -> None:
    study = enqueued_study(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS))
    study.optimize(_restarting_objective, n_trials=len(LRS))
    failed = study.trials_in("failed")
    assert failed and all("resumed" in t.error for t in failed), [t.error for t in failed]
    assert "Start the loop at trial.start_step and load trial.resume_from" in failed[0].error
    assert all(t.intermediate for t in failed)  # its reports are kept


def test_a_pause_without_a_checkpoint_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    study = enqueued_study(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS))
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(functools.partial(_restarting_objective, checkpoint=False), n_trials=4)
    assert study.trials_in("paused")
    assert caplog.text.count("was paused without attrs['checkpoint']") == 1
    assert "trial.resume_from is None" in caplog.text


def _second_paused(study: ts.Study) -> ts.Trial:
    """Trial 1 paused at rung 1 (ASHA, eta 3) behind trial 0, with a checkpoint; its handle."""
    first, second = study.ask(), study.ask()
    first.report(0.1, 1)
    second.report(0.9, 1)
    second.set_attr("checkpoint", "ck-1")
    assert second.decision() is Decision.PAUSE
    study.tell(second, state="paused")
    return second


def test_the_handle_of_a_paused_trial_writes_nothing_more(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stale.db'}"
    study = ts.Study(SPACE, storage=url, name="stale",
                     pruner=ASHA(min_resource=1, reduction_factor=3, pause=True, max_resource=N_STEPS))
    second = _second_paused(study)
    # before: written, moving the paused trial off its rung (never promotable again), or over the
    # run of a worker that resumed it meanwhile
    with pytest.raises(ts.exceptions.TrialFinishedError, match="trial 1 is paused: this handle ended with the pause"):
        second.report(0.05, 2)
    with pytest.raises(ts.exceptions.TrialFinishedError, match="study.ask\\(\\) \\(or optimize\\) resumes it"):
        second.set_attr("checkpoint", "ck-2")
    stored = ts.Study.load("stale", url).trials[1]
    assert stored.state is TrialState.PAUSED and stored.intermediate == {1: 0.9}
    assert stored.attrs == {"checkpoint": "ck-1"}


def test_a_paused_trial_cannot_be_told_complete() -> None:
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, pause=True, max_resource=N_STEPS))
    second = _second_paused(study)
    # before: completed with that value, a partial run that could become the best trial
    for told, state in ((second, None), (1, None), (1, "complete"), (second, TrialState.COMPLETE)):
        with pytest.raises(ValueError, match=r"trial 1 is paused: stopped before the end of its run, it cannot "
                                             r"complete with a value.*study.tell\(1, state='pruned'\)"):
            study.tell(told, 0.01, state=state)
    assert study.trials[1].state is TrialState.PAUSED
    assert study.tell(1, state="pruned").state is TrialState.PRUNED  # ending it for good still works


def test_a_stale_record_of_a_paused_trial_does_not_undo_newer_training() -> None:
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, pause=True, max_resource=N_STEPS))
    second = _second_paused(study)
    stale = study.trials[1]
    with pytest.raises(ValueError, match="trial 1 is paused already"):
        study.tell(second, state="paused")  # before: written again, over whatever was stored
    for v in (1.5, 1.6, 1.7, 1.8):  # enough worse trials at rung 1 to promote trial 1
        o = study.ask()
        assert not o.is_resumed
        o.report(v, 1)
        study.tell(o, state="pruned")
    again = study.ask()
    assert again.number == 1 and again.is_resumed
    again.report(0.4, 2)
    again.report(0.3, 3)
    study.tell(again, state="paused")  # another worker's run: paused at rung 3
    # before: pruned from the stale record, its reports at steps 2 and 3 lost
    with pytest.raises(ts.exceptions.TrialFinishedError, match="trial 1 was resumed and paused again by this process"):
        study.tell(second, state="pruned")
    assert study.trials[1].state is TrialState.PAUSED and dict(study.trials[1].intermediate) == {1: 0.9, 2: 0.4, 3: 0.3}
    # a record (or a number) is looked up again: the stored trial is ended, its reports kept
    assert study.tell(stale, state="pruned").intermediate == {1: 0.9, 2: 0.4, 3: 0.3}


def test_tell_names_the_states_it_takes() -> None:
    study = ts.Study(SPACE)
    trial = study.ask()
    with pytest.raises(ValueError, match=r"as 'complete', 'pruned' or 'failed', or pauses it \('paused'\), not bogus"):
        study.tell(trial, state="bogus")
    with pytest.raises(ValueError, match="not running"):
        study.tell(trial, state=TrialState.RUNNING)
    assert study.trials[0].state is TrialState.RUNNING  # nothing written


def _second_reported_twice(study: ts.Study) -> ts.Trial:
    """Trial 0 told 0.1 after reports at steps 0 and 1; trial 1 asked and reported 0.5 at both (returned)."""
    first = study.ask()
    first.report(0.1, 0)
    first.report(0.1, 1)
    study.tell(first, 0.1)
    t = study.ask()
    t.report(0.5, 0)
    t.report(0.5, 1)
    return t


def _four_pruned_at_rung_1(study: ts.Study) -> None:
    for v in (0.9, 0.8, 0.7, 0.6):
        o = study.ask()
        o.report(v, 0)
        o.report(v, 1)
        study.tell(o, state="pruned")


def test_ask_resumes_with_trial_attributes() -> None:
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=27), seed=1)
    t = _second_reported_twice(study)
    t.set_attr("checkpoint", "ck.pt")
    assert t.decision() is Decision.PAUSE
    paused = study.tell(t, state="paused")
    assert paused.state is TrialState.PAUSED and paused.value == 0.5
    assert study.trials_in("failed") == []
    _four_pruned_at_rung_1(study)  # rung 1 now holds 6 trials: quota 2, trial 1 qualifies
    again = study.ask()
    assert again.number == t.number and again.params == t.params and again.is_resumed
    assert again.start_step == 2 and again.resume_from == "ck.pt"
    assert dict(again.intermediate) == {0: 0.5, 1: 0.5}
    again.report(0.4, 2)
    with pytest.raises(ValueError, match="step 2 was reported already; steps must increase"):
        again.report(0.4, 2)  # a repeat after the resume point is a plain repeat, not a restart
    assert again.state is TrialState.RUNNING
    assert not again.should_prune()  # not stopped again at the rung it was promoted from
    assert study.ask().number == 6  # nothing else promotable: a new trial


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_claim_paused_is_atomic(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    shared = MemoryStorage() if kind == "memory" else SQLStorage(url)
    study = ts.Study(SPACE, storage=shared, name="c", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    t = study.ask()
    t.report(1.0, 1)
    study.tell(t, state="paused")
    sid = study._study_id
    paused = shared.get_trial(sid, t.number)
    wins: list[Any] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        st = shared if kind == "memory" else SQLStorage(url)
        barrier.wait()
        wins.append(claim_paused(st, sid, paused, f"w{i}", float(i)))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    won = [w for w in wins if w is not None]
    assert len(won) == 1 and won[0].state is TrialState.RUNNING
    assert shared.get_trial(sid, t.number).worker == won[0].worker
    assert claim_paused(shared, sid, paused, "late", 9.0) is None
    assert won[0].is_resumed and won[0].system.n_resumes == 1


def test_decisions_survive_a_worker_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    folder = str(tmp_path)
    first = enqueued_study(
        Hyperband(min_resource=1, curve="best", n_brackets=3, pause=True, max_resource=N_STEPS, reduction_factor=3), url, "r"
    )
    first.optimize(functools.partial(file_objective, folder=folder), n_trials=6)
    # a new worker: a new Study object on the same file, its pruner rebuilt from the stored config
    second = ts.Study(storage=url, name="r")
    assert second.pruner.describe() == first.pruner.describe()
    history = second.trials
    assert history == first.trials
    for t in history:
        assert second.decide(t) is first.decide(t)
    assert second.pruner.promotable(history, second.direction) == first.pruner.promotable(
        history, first.direction
    )
    second.optimize(functools.partial(file_objective, folder=folder), n_trials=len(LRS))
    assert any(t.system.n_resumes for t in second.trials)
    assert not second.trials_in("failed")
    check_resumed_runs_are_exact(second)


# -- parallel workers ------------------------------------------------------------------
# trial 0 leads at rung 1, trial 1 comes second, and every later trial is worse (lr <= 0.3, in a
# shuffled order: they pause, and are promoted as the workers' timing decides)
PARALLEL_LRS = [0.5, 0.45] + [0.3 * (0.01 / 0.3) ** (11 * i % 28 / 27) for i in range(28)]


def a_promotion_to_come(folder: Path, storage: str | None = None, name: str | None = None) -> ts.Study:
    """Trials 0 and 1 run alone: trial 1 pauses at rung 1 (ASHA keeps 1 of 2 there). Once 6 trials
    reached the rung (keep 2) it is promotable whatever order the parallel workers' trials arrive in:
    the parallel run that follows must resume it (which of its own pauses it promotes depends on
    the order its trials reach the rungs, and may be none)."""
    pruner = ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS)
    study = enqueued_study(pruner, storage, name, lrs=PARALLEL_LRS)
    study.optimize(functools.partial(file_objective, folder=str(folder)), n_trials=2)
    assert [t.state for t in study.trials[:2]] == [TrialState.COMPLETE, TrialState.PAUSED]
    assert pruner.promotable(study.trials, study.direction) == []
    return study


def _check_parallel(study: ts.Study, folder: Path) -> list[int]:
    """The processes that resumed trial 1 at step 2 (one)."""
    assert len(study.trials) == len(PARALLEL_LRS) and not study.trials_in("failed")
    runs = starts(folder)
    assert len(runs) == len(set(runs)), "a trial was resumed twice from the same step"
    check_resumed_runs_are_exact(study)
    lines = (ln.split() for ln in (folder / "starts.log").read_text().splitlines())
    pids = [int(pid) for number, start, pid in lines if (number, start) == ("1", "2")]
    assert len(pids) == 1, "trial 1 was not resumed"
    return pids


@pytest.mark.parametrize("planted", [None, "folder-others-may-write", "theirs", "not-there-in-a-folder-others-may-add-to",
                                     "own-link-to-nothing-there", "not-there-in-an-own-folder"])
def test_a_checkpoint_a_storage_writer_named_is_not_handed_to_the_resumed_trial(tmp_path: Path, planted: str | None) -> None:
    """``trial.resume_from`` is ``attrs["checkpoint"]`` as stored, and docs/pruning.md's objective loads it: whoever
    may write the study's database pointed a paused trial's at a file of theirs, whose weights the resumed trial
    then trained on (and torch before 2.6 ran code from such a file even with weights_only=True)."""
    import sqlite3

    if planted == "theirs" and os.getuid() != 0:
        pytest.skip("a file of another user: root makes it (chown)")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = ts.Study(SPACE, storage=url, name="s", seed=1,
                     pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=27))
    t = _second_reported_twice(study)
    own = tmp_path / "ck.pt"
    own.write_bytes(b"the user's weights")
    t.set_attr("checkpoint", str(own))
    assert study.tell(t, state="paused").state is TrialState.PAUSED
    shared = tmp_path / "shared"
    shared.mkdir()
    theirs = shared / "ck.pt"
    theirs.write_bytes(b"their weights")
    if planted == "folder-others-may-write":
        shared.chmod(0o777)
    elif planted == "theirs":
        os.chown(theirs, 65534, 65534)
    elif planted in ("not-there-in-a-folder-others-may-add-to", "own-link-to-nothing-there"):
        theirs.unlink()  # they put their file there once the path is handed on (sticky, as /tmp: they may add one)
        shared.chmod(0o1777)
        if planted == "own-link-to-nothing-there":
            theirs, link = tmp_path / "link.pt", theirs
            theirs.symlink_to(link)
    elif planted == "not-there-in-an-own-folder":
        theirs.unlink()
    if planted:
        with sqlite3.connect(tmp_path / "study.db") as db:  # a writer of the database
            db.execute("UPDATE ts_trials SET attrs = json_set(attrs, '$.checkpoint', ?) WHERE number = ?",
                       (str(theirs), t.number))
    _four_pruned_at_rung_1(study)  # rung 1 now holds 6 trials: trial 1 is promoted
    again = study.ask()
    assert again.number == t.number and again.is_resumed
    if not planted:
        assert again.resume_from == str(own)
        return
    if planted == "not-there-in-an-own-folder":  # no one else may add it: handed on, the user's load says it is missing
        assert again.resume_from == str(theirs)
        return
    with pytest.raises(ts.UntrustedPathError, match=rf"trial {t.number}'s checkpoint to resume from .*(ck|link)\.pt.*"
                                                    r"(owned by another user|can be written by other users)"):
        again.resume_from  # noqa: B018 - the property refuses


def test_pause_resume_with_threads_on_memory(tmp_path: Path) -> None:
    study = a_promotion_to_come(tmp_path)
    study.optimize(functools.partial(file_objective, folder=str(tmp_path)), n_trials=28, n_jobs=3)
    _check_parallel(study, tmp_path)


def test_a_study_reopened_in_another_process_resumes_its_promoted_trial_once(
    tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str]
) -> None:
    study = a_promotion_to_come(tmp_path, shared_storage_url, "p")  # trial 1 paused at rung 1 (step 1)
    for _ in range(4):  # 4 worse trials reach the rung: 6 there, 2 go on, trial 1 is the second
        trial = study.ask()
        trial.report(10.0, 0)
        trial.report(10.0, 1)
        study.tell(trial, state="pruned")
    assert study.pruner.promotable(study.trials, study.direction) == [1]
    script = (
        "import functools, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import tunesmith as ts\n"
        "from test_pause_resume import file_objective\n"
        f"study = ts.load_study('p', {shared_storage_url!r})\n"
        f"study.optimize(functools.partial(file_objective, folder={str(tmp_path)!r}), n_trials=0)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    trials = [t for t in ts.load_study("p", shared_storage_url).trials if t.state is not TrialState.WAITING]
    assert len(trials) == 6  # no new trial run
    resumed = trials[1]  # on to rung 2 (step 3), where trial 0 alone is ahead of it: paused again
    assert resumed.state is TrialState.PAUSED and resumed.system.n_resumes == 1 and resumed.system.resumed_step == 1
    assert starts(tmp_path) == [(0, 0), (1, 0), (1, 2)]  # run from the step after its pause, once
    curve = straight_curve(resumed.params["lr"], 1)
    assert [resumed.intermediate[s] for s in sorted(resumed.intermediate)] == curve[:4] and resumed.last_step == 3


def test_pause_resume_with_processes_on_a_shared_storage(tmp_path: Path, shared_storage_url: str) -> None:
    study = a_promotion_to_come(tmp_path, shared_storage_url, "p")
    study.optimize(functools.partial(file_objective, folder=str(tmp_path)), n_trials=28, n_jobs=2)
    assert _check_parallel(study, tmp_path) != [os.getpid()]  # a worker process resumed it


# -- a real torch training loop: resumed weights are identical ---------------------------
TORCH_LRS = [0.05, 0.01, 1e-4, 8e-5, 6e-5, 4e-5, 3e-5, 2e-5]


def torch_objective(trial: ts.Trial, folder: str, snaps: dict[Any, Any]) -> float:
    """Train a small MLP with Adam; checkpoint model, optimizer and data-order RNG each epoch."""
    import torch

    torch.set_num_threads(1)
    data = torch.Generator().manual_seed(0)
    x = torch.randn(160, 8, generator=data)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3]
    torch.manual_seed(trial.number)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=trial.params["lr"])
    order = torch.Generator().manual_seed(trial.number)
    if trial.is_resumed:
        ck = torch.load(trial.resume_from)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        order.set_state(ck["order"])
        snaps["loaded", trial.number, trial.start_step] = _weights(model)
    val = float("nan")
    for epoch in range(trial.start_step, N_STEPS):
        perm = torch.randperm(128, generator=order)
        for i in range(0, 128, 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(model(x[128:]), y[128:]))
        path = str(Path(folder) / f"t{trial.number}-{epoch}.pt")
        torch.save(
            {"model": model.state_dict(), "opt": opt.state_dict(), "order": order.get_state()}, path
        )
        snaps["saved", trial.number, epoch + 1] = _weights(model)
        trial.report(val, epoch, checkpoint=path)
        if trial.should_prune():
            raise ts.TrialPruned()
    snaps["final", trial.number] = _weights(model)
    return val


def _weights(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.state_dict().values()]


def _run_torch(pruner: Any, folder: Path) -> tuple[ts.Study, dict[Any, Any]]:
    snaps: dict[Any, Any] = {}
    folder.mkdir()
    study = ts.Study(SPACE | {"lr": ts.Float(1e-6, 1.0, log=True)}, seed=0, pruner=pruner)
    for lr in TORCH_LRS:
        study.enqueue({"lr": lr})
    objective = functools.partial(torch_objective, folder=str(folder), snaps=snaps)
    study.optimize(objective, n_trials=len(TORCH_LRS), catch=())
    return study, snaps


def test_torch_trial_resumes_at_its_step_with_identical_weights(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    paused, snaps = _run_torch(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS), tmp_path / "a")
    loaded = [k for k in snaps if k[0] == "loaded"]
    assert loaded, "no trial was resumed"
    for _, number, step in loaded:
        assert step - 1 in (1, 3)  # it paused at a rung (steps 1 and 3) and goes on from the next
        saved, got = snaps["saved", number, step], snaps["loaded", number, step]
        assert all(torch.equal(a, b) for a, b in zip(got, saved, strict=True))
    # after resuming, every epoch matches an uninterrupted run of the same trial bit for bit
    straight, ref = _run_torch(None, tmp_path / "b")
    for _, n, step in loaded:
        last = max(e for k, m, e in (k for k in snaps if k[0] == "saved") if m == n)
        assert last > step
        assert all(
            torch.equal(a, b)
            for a, b in zip(snaps["saved", n, last], ref["saved", n, last], strict=True)
        )
        curve = dict(paused.trials[n].intermediate)
        assert curve == {s: v for s, v in straight.trials[n].intermediate.items() if s in curve}


@pytest.mark.parametrize(
    ("pruner", "steps", "state"),
    [
        (ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True), [1], "paused"),  # at ASHA's first rung (min_resource=1)
        (ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True), [1, 2], "pruned"),  # past the rung: nothing could ever promote it
        ("asha", [1], "pruned"),  # a pruner that does not pause
        (None, [1], "pruned"),
    ],
)
@pytest.mark.parametrize("how", ["TrialPaused", "tell"])
def test_a_trial_is_paused_only_where_it_can_be_resumed(
    pruner: Any, steps: list[int], state: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    study = ts.Study(SPACE, pruner=pruner, seed=0)

    def objective(trial: ts.Trial) -> float:
        for step in steps:
            trial.report(1.0, step)
        raise ts.TrialPaused()

    trial = study.ask()
    with caplog.at_level("WARNING", logger="tunesmith"):
        if how == "tell":
            for step in steps:
                trial.report(1.0, step)
            record = study.tell(trial, state="paused")
        else:
            record = study.run_trial(objective, trial)
    assert record.state.value == state
    assert study.trials[0].state.value == state
    # a pause turned into pruning says so and why (before: silently)
    said = "trial 0 was asked to pause, but " in caplog.text and "recorded as pruned" in caplog.text
    assert said == (state == "pruned")
    if state == "pruned":
        why = "does not pause (e.g. ASHA(pause=True) does)" if not study.pruner.pauses else "not at a rung"
        assert why in caplog.text


def _constant_curve(trial: ts.Trial) -> float:
    """A curve at the trial's x for epochs 1..9, continued from where it paused."""
    x = trial["x"]
    for epoch in range(max(trial.start_step, 1), 10):
        trial.report(x, epoch)
        if trial.should_prune():
            raise ts.TrialPruned()
    return x


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_optimize_runs_the_promotions_its_last_trials_earned(n_jobs: int) -> None:
    # ASHA (eta=3, rungs 1 and 3): the 6th arrival at rung 1 lifts its quota to 2,
    # which promotes the paused trial 1; optimize must not return before resuming it
    pruner = ASHA(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0)
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})
    study.optimize(_constant_curve, n_trials=6, n_jobs=n_jobs)
    assert len(study.trials) == 6  # resumes are not new trials
    assert pruner.promotable(study.trials, study.direction) == []
    assert study.trials[0].state is TrialState.COMPLETE  # the best one, x=0.5
    if n_jobs == 1:  # in order: only the 6th arrival promotes trial 1, to rung 3 where it waits
        assert study.trials[1].system.n_resumes == 1 and study.trials[1].last_step == 3


def test_synchronous_halving_finishes_its_cohort_and_prunes_the_rest() -> None:
    pruner = SuccessiveHalving(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0)
    study.optimize(_constant_curve, n_trials=pruner.cohort_size)
    states = Counter(t.state.value for t in study.trials)
    assert states == {"complete": 1, "pruned": pruner.cohort_size - 1}  # none left paused
    best = min(study.trials, key=lambda t: t.params["x"])
    assert study.best_trial.number == best.number and best.last_step == 9
    # each rung kept the cohort's best third: 3 of 9 went past step 1, 1 of them past step 3
    assert Counter(t.last_step for t in study.trials) == {1: 6, 3: 2, 9: 1}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_promoted_trial_whose_worker_is_lost_keeps_its_promotion(kind: str, tmp_path: Path) -> None:
    url = None if kind == "memory" else f"sqlite:///{tmp_path / 'h.db'}"
    study = ts.Study(SPACE, storage=url, name="h", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True), heartbeat_interval=60.0,
                     requeue_failed=True)  # fmt: skip
    first = study.ask()
    first.report(1.0, 1)
    first.set_attr("checkpoint", str(tmp_path / "ck1.pt"))
    study.tell(first, state="paused")
    resumed = study.ask()
    assert resumed.number == first.number and resumed.is_resumed  # promoted: alone at its rung
    resumed.report(0.9, 2)  # it trains on, then its worker dies
    plain = study.ask()  # a trial never paused: its loss fails it, as before
    plain.report(2.0, 0)
    lost = study.fail_worker(worker_id(), "worker process died (exit code -9)", dead=True)
    by_number = {t.number: t for t in lost}
    held = by_number[first.number]
    assert held.state is TrialState.PAUSED and held.worker is None and held.heartbeat is None
    assert held.attrs["checkpoint"] == str(tmp_path / "ck1.pt") and dict(held.intermediate) == {1: 1.0, 2: 0.9}
    assert held.system.requeued_as is None  # no copy from scratch
    assert by_number[plain.number].state is TrialState.FAILED and by_number[plain.number].system.requeued_as is not None
    again = study.ask()  # the held promotion goes first, ahead of the re-queued copy
    assert again.number == first.number and again.start_step == 3 and again.resume_from == str(tmp_path / "ck1.pt")
    assert again.record.system.held is None and again.record.system.n_resumes == 2
    # held again after progress (a later, unrelated death)...
    again.report(0.8, 3)
    (twice,) = study.fail_worker(worker_id(), "worker process died again", dead=True)
    assert twice.number == first.number and twice.state is TrialState.PAUSED
    # ...but not when it dies before reporting anything new: it would loop
    third = study.ask()
    assert third.number == first.number and third.start_step == 4
    (dead,) = study.fail_worker(worker_id(), "worker process died on resume", dead=True)
    assert dead.number == first.number and dead.state is TrialState.FAILED


@pytest.mark.parametrize("held", [False, True])
def test_a_resume_the_objective_refused_keeps_the_promotion(held: bool, storage_url: str | None) -> None:
    """Before: a resumed trial whose objective raised ts.ResumeRefused (its checkpoint written for
    another model) went back to paused as if newly paused: resumed again only if the pruner still
    ranked it within its rung's quota, which better trials had filled meanwhile, and never once it
    was held past a rung (its worker had died there): run with the right model, it stayed paused."""
    study = ts.Study(SPACE, storage=storage_url, name="r",
                     pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    first = study.ask()
    first.report(1.0, 1)
    first.set_attr("checkpoint", "ck.pt")
    study.tell(first, state="paused")
    resumed = study.ask()
    assert resumed.number == first.number  # promoted: alone at its rung
    if held:
        resumed.report(0.9, 2)  # step 2 is at no rung
        study.fail_worker(worker_id(), "worker process died", dead=True)
        resumed = study.ask()
        assert resumed.number == first.number and resumed.start_step == 3
    better = [study.ask(), study.ask()]  # ASHA's quota at the rung (1 of 3) goes to one of them
    for t, value in zip(better, [0.5, 0.4], strict=True):
        t.report(value, 1)
        t.set_attr("checkpoint", f"ck{t.number}.pt")
        study.tell(t, state="paused")

    def refused(trial: ts.Trial) -> float:
        raise ts.ResumeRefused("its checkpoint was written for another model")

    with pytest.raises(ts.ResumeRefused):
        study.run_trial(refused, resumed)
    kept = study.trials[first.number]
    assert kept.state is TrialState.PAUSED and kept.system.n_holds == int(held)  # a refusal is no lost worker
    assert "another model" in kept.system.held
    again = study.ask()  # run with the right model: it goes on from where it paused
    assert again.number == first.number and again.is_resumed and again.start_step == (3 if held else 2)


def _paused_with_checkpoint(study: ts.Study, checkpoint: str = "ck.pt") -> int:
    """A new trial reported at ASHA's first rung, with a checkpoint, paused; its number."""
    t = study.ask()
    t.report(1.0, 1)
    t.set_attr("checkpoint", checkpoint)
    study.tell(t, state="paused")
    return t.number


def test_only_a_worker_seen_dead_holds_a_promotion() -> None:
    # fail_worker without dead=True (e.g. Ctrl-C while worker threads still run): failed as before
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    _paused_with_checkpoint(study)
    assert study.ask().is_resumed
    (lost,) = study.fail_worker(worker_id(), "interrupted (KeyboardInterrupt)", requeue=False)
    assert lost.state is TrialState.FAILED


def test_synchronous_halving_resumes_a_held_trial_instead_of_abandoning_it() -> None:
    pruner = SuccessiveHalving(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0)
    t = study.ask()
    t.report(0.1, 1)
    t.set_attr("checkpoint", "ck.pt")
    study.tell(t, state="paused")  # inside its cohort's quota so far
    others = [study.ask() for _ in range(8)]
    for o in others:  # the cohort settles at rung 1 with trial 0 on top: promoted
        o.report(0.9, 1)
        study.tell(o, state="paused")
    resumed = study.ask()
    assert resumed.number == t.number and resumed.is_resumed
    resumed.report(0.1, 2)  # between rungs, then its worker dies
    study.fail_worker(worker_id(), "worker process died", dead=True)
    again = study.ask()
    assert again.number == t.number and again.is_resumed and again.start_step == 3


def test_a_trial_paused_again_without_progress_is_pruned() -> None:
    # an objective that raises TrialPaused on resume, before any report, would loop forever
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))

    def objective(trial: ts.Trial) -> float:
        if not trial.is_resumed:
            trial.report(1.0, 1)
        raise ts.TrialPaused()

    study.optimize(objective, n_trials=2)
    assert {t.state.value for t in study.trials} <= {"paused", "pruned"}
    assert all(t.system.n_resumes <= 1 for t in study.trials)


def _read_or_empty(marker: Path) -> str:
    """What ``marker`` (of :func:`_first_to_claim`) says, "" where it is not there yet."""
    try:
        return marker.read_text()
    except FileNotFoundError:
        return ""


def _first_to_claim(marker: Path, number: int) -> bool:
    """Create ``marker`` atomically: True for the one caller that created it (two workers that
    both looked before either wrote it would otherwise both go on)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(number).encode())
    os.close(fd)
    return True


def _dies_in_its_first_resumed_run(folder: str) -> Any:
    return _ends_its_first_resumed_run(folder, lambda: os.kill(os.getpid(), signal.SIGKILL))


def _ends_its_first_resumed_run(folder: str, end: Callable[[], None]) -> Any:
    """A resumable training whose first resumed run (of one trial, the one written to ``folder/killed``)
    calls ``end`` after its first report."""
    def objective(trial: ts.Trial) -> float:
        w = json.loads(Path(trial.resume_from).read_text())["w"] if trial.is_resumed else 0.0
        for step in range(trial.start_step, 9):
            w -= trial.params["lr"] * 2 * (w - 3)
            path = Path(folder) / f"ck{trial.number}-{step}.json"
            path.write_text(json.dumps({"w": w}))
            trial.report((w - 3) ** 2, step, checkpoint=str(path))
            if trial.is_resumed and _first_to_claim(Path(folder) / "killed", trial.number):
                end()
            if trial.should_prune():
                raise ts.TrialPruned()
        return (w - 3) ** 2

    return objective


def test_a_worker_process_killed_in_a_resumed_trial_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    study = ts.Study(SPACE, storage=url, name="k", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=9),
                     heartbeat_interval=0.5, requeue_failed=True)  # fmt: skip
    for lr in (0.45, 0.3, 0.05, 0.04, 0.03, 0.02):
        study.enqueue({"lr": lr})
    study.optimize(_dies_in_its_first_resumed_run(str(tmp_path)), n_trials=6, executor="process")
    killed = int((tmp_path / "killed").read_text())
    trials = study.trials
    assert len(trials) == 6 and study.trials_in("failed") == []  # no failure, no copy
    victim = trials[killed]
    assert victim.system.n_resumes >= 2  # resumed again after its worker died
    steps = sorted(victim.intermediate)
    assert steps == list(range(steps[-1] + 1))  # continued from its checkpoint: no step twice or missing


def stop_once(trial: ts.Trial, step: int, folder: str, which: str) -> None:
    """``file_objective``'s ``after_report`` that waits, once, for the test's signal (writing ``folder/stopped``):
    in the first report of a resumed run (``which="resumed"``), or in trial 0's first, before any rung. Any
    other run that reports its first step after that (another worker process's) waits for it too: it trains
    as the signal reaches the workers, 2 s after the command (a trial that ended meanwhile is recorded as it
    ended, and whether one did was the machine's speed)."""
    first = step == trial.record.system.resumed_step + 1 if trial.is_resumed else step == 0
    here = first and (trial.is_resumed if which == "resumed" else trial.number == 0)
    stopped = Path(folder) / "stopped"
    if here and _first_to_claim(stopped, trial.number) or which != "again" and first and stopped.exists():
        time.sleep(120)  # the signal comes meanwhile


_RUN_STOPPABLE = """
import functools, sys
sys.path.insert(0, {tests!r})
import tunesmith as ts
from tunesmith.cli.launch import optimize_interruptibly
from test_pause_resume import LRS, file_objective, stop_once

url, folder, which, jobs = sys.argv[1:]
study = ts.Study({{"lr": ts.Float(0.01, 0.9, log=True)}}, storage=url, name="s", load_if_exists=True,
                 pruner=ts.pruners.ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=9))
if which != "again":
    for lr in LRS:
        study.enqueue({{"lr": lr}})
stop = functools.partial(stop_once, folder=folder, which=which)
sys.exit(optimize_interruptibly(study, functools.partial(file_objective, folder=folder, after_report=stop),
                                {{"n_trials": 0 if which == "again" else len(LRS), "n_jobs": int(jobs)}}))
"""


def _said(proc: subprocess.Popen[str]) -> str:
    """What an ended ``proc`` wrote to stderr ("" while it runs)."""
    return "" if proc.poll() is None else proc.communicate()[1]


@pytest.mark.parametrize("which, sig, jobs", [
    ("resumed", signal.SIGINT, "1"), ("resumed", signal.SIGTERM, "2"),
    ("never-paused", signal.SIGINT, "2"), ("never-paused", signal.SIGTERM, "1"),
], ids=["resumed-ctrl-c-inline", "resumed-sigterm-processes", "never-paused-ctrl-c-processes", "never-paused-sigterm-inline"])
def test_a_trial_stopped_by_ctrl_c_or_sigterm_is_resumed_from_its_checkpoint_by_the_next_optimize(
        tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str], which: str, sig: int, jobs: str) -> None:
    """A run stopped by Ctrl-C or SIGTERM failed the trial it was training ("interrupted"), though its
    checkpoint was recorded: the next optimize never resumed it (a promoted trial lost its promotion and
    its epochs; a trial not paused yet reran nothing of it). A trial that can go on from its checkpoint
    (resumed after a pause, or any trial that reported under a pruner that pauses) goes back to paused,
    ``system.held`` saying why, no hold counted, and the next optimize resumes it first, from there
    (inline, and in n_jobs worker processes, which the signal sent to the command alone reaches 2 s later)."""
    script = _RUN_STOPPABLE.format(tests=str(Path(__file__).parent))
    run = [sys.executable, "-c", script, shared_storage_url, str(tmp_path)]
    proc = subprocess.Popen([*run, which, jobs], env=subprocess_env, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "stopped"
    try:
        deadline = time.monotonic() + 120  # until the trial waits in stop_once (its number written)
        while not (marker.exists() and marker.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists() and marker.read_text(), f"no trial was stopped: {proc.poll()=} {_said(proc)}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    number = int(marker.read_text())
    trials = ts.load_study("s", shared_storage_url).trials
    # with worker processes, the other one's trial (waiting in stop_once too) is held as well
    held = [t for t in trials if t.system.held is not None]
    assert number in [t.number for t in held] and len(held) <= int(jobs), held
    name = "KeyboardInterrupt" if sig == signal.SIGINT else "SIGTERM"
    for t in held:
        assert t.state is TrialState.PAUSED and t.system.held == f"interrupted ({name})", t
        assert t.system.n_holds == 0 and t.attrs["checkpoint"] and t.last_step is not None, t
    assert "interrupted" in err and "Traceback" not in err, err
    shown = subprocess.run([sys.executable, "-m", "tunesmith", "show", "s", "--storage", shared_storage_url],
                           env={**subprocess_env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=120)
    said = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"  # the signal that stopped it (was "Ctrl-C or SIGTERM")
    listed = ", ".join(f"#{t.number}" for t in held)
    assert f"from their checkpoints: {listed} stopped by {said}\n" in shown.stdout, shown
    if jobs == "2":  # the workers' trials were paused, not failed, as the last line said
        assert "interrupted: running trials paused where they can go on from their checkpoints" in err, err
    before = len(starts(tmp_path))

    again = subprocess.run([*run, "again", "1"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    study = ts.load_study("s", shared_storage_url)
    assert not study.trials_in("failed") and len(study.trials) == len(LRS)
    assert [n for n, _ in starts(tmp_path)[before:before + len(held)]] == [t.number for t in held]  # first
    for t in held:  # each once, on from the step after its last report
        resumed = study.trials[t.number]
        assert resumed.system.n_resumes == t.system.n_resumes + 1 and resumed.system.held is None
        assert starts(tmp_path).count((t.number, t.last_step + 1)) == 1 and (t.number, 0) not in starts(tmp_path)[before:]
    check_resumed_runs_are_exact(study)  # every report as an uninterrupted run's


def _killed_once_before_any_rung(trial: ts.Trial, step: int, folder: str) -> None:
    if trial.number == 2 and step == 0 and not trial.is_resumed and _first_to_claim(Path(folder) / "killed", 2):
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("beats", [True, False], ids=["requeue_failed", "without-heartbeats"])
def test_a_worker_killed_in_a_trial_never_paused_resumes_it_from_its_checkpoint_under_requeue_failed(
        tmp_path: Path, shared_storage_url: str, beats: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A worker process SIGKILLed in a new trial that had recorded a checkpoint (never paused) had the
    trial failed and, with requeue_failed, a copy run from the start, though the checkpoint was recorded.
    Under a pruner that pauses, the trial goes back to paused (as a resumed trial of a dead worker does,
    one hold counted) and is resumed first, from its checkpoint; n_trials still counts it once. Without
    heartbeats (no requeue_failed) the parent that saw the worker die failed it: held the same way now."""
    beat: dict[str, Any] = {"heartbeat_interval": 0.5, "requeue_failed": True} if beats else {}
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="k", **beat,
                     pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS))
    for lr in LRS:
        study.enqueue({"lr": lr})
    after = functools.partial(_killed_once_before_any_rung, folder=str(tmp_path))
    study.optimize(functools.partial(file_objective, folder=str(tmp_path), after_report=after), n_trials=len(LRS),
                   n_jobs=2, executor="process")
    trials = study.trials
    assert (tmp_path / "killed").exists()
    assert len(trials) == len(LRS) and not study.trials_in("failed") and not study.trials_in("waiting")  # no copy
    killed = trials[2]
    assert killed.system.n_resumes >= 1 and killed.system.n_holds == 1, killed.system
    assert (2, 1) in starts(tmp_path) and starts(tmp_path).count((2, 0)) == 1  # on from its checkpoint at step 0
    check_resumed_runs_are_exact(study)
    assert "trial 2 paused to go on from its checkpoint (never paused before)" in caplog.text


def test_a_promoted_trial_judged_lost_by_heartbeat_alone_is_failed(tmp_path: Path) -> None:
    # its worker may be alive and write again: only a failed trial refuses those writes
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 's.db'}", name="s", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    _paused_with_checkpoint(study, str(tmp_path / "ck.pt"))
    resumed = study.ask()
    assert resumed.is_resumed
    lost = study.fail_trial(resumed.number, "worker lost")
    assert lost is not None and lost.state is TrialState.FAILED
    with pytest.raises(ts.TrialFinishedError):
        resumed.report(0.5, 2)


def test_a_trial_is_held_at_most_max_holds_times() -> None:
    # each resumed run reports one step, then kills its worker: bounded, then failed
    from tunesmith.study.lifecycle import MAX_HOLDS

    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    number = _paused_with_checkpoint(study)
    states = []
    for _ in range(MAX_HOLDS + 1):
        again = study.ask()
        assert again.number == number and again.is_resumed
        again.report(0.5, again.start_step)  # progress...
        (lost,) = study.fail_worker(worker_id(), "worker process died", dead=True)  # ...then death
        states.append(lost.state.value)
    assert states == ["paused"] * MAX_HOLDS + ["failed"]


def _marks_exhaustion(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``Study.ask`` creates ``folder/exhausted`` when it finds the search exhausted: a signal
    that threads and forked workers (patched before the fork) see."""
    ask = ts.Study.ask

    def marking(self: ts.Study) -> ts.Trial:
        try:
            return ask(self)
        except ts.SearchExhausted:
            (folder / "exhausted").touch()
            raise

    monkeypatch.setattr(ts.Study, "ask", marking)


def _wait_for_exhaustion(folder: str, deadline: float = 120.0) -> None:
    """Until another worker found the grid exhausted (see _marks_exhaustion), however loaded the machine."""
    marker, end = Path(folder) / "exhausted", time.monotonic() + deadline
    while not marker.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"no worker found the grid exhausted within {deadline} s")
        time.sleep(0.01)


def _dies_on_resume_after_the_grid_ran_out(trial: ts.Trial, folder: str) -> float:
    if trial.is_resumed:
        if trial.system.n_resumes == 1:
            os._exit(1)  # the worker dies in the trial's first resumed run
        for step in range(trial.start_step, 4):
            trial.report(0.5, step)
        return 0.5
    if trial.number == 1:
        _wait_for_exhaustion(folder)  # trial 0 paused alone at rung 1, its worker found the grid exhausted
    trial.report(1.0 + trial.number, 1)
    trial.set_attr("checkpoint", f"ck{trial.number}.pt")
    if trial.should_prune():
        raise ts.TrialPaused()
    return 1.0 + trial.number


def test_processes_run_held_promotions_after_the_grid_is_exhausted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _marks_exhaustion(monkeypatch, tmp_path)
    study = ts.Study({"x": ts.Categorical([0, 1])}, sampler="grid", storage=f"sqlite:///{tmp_path / 'g.db'}",
                     name="g", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, bootstrap_count=2, max_resource=4))  # fmt: skip
    study.optimize(functools.partial(_dies_on_resume_after_the_grid_ran_out, folder=str(tmp_path)), n_jobs=2, executor="process")
    first = study.trials[0]
    assert first.state is TrialState.COMPLETE and first.system.n_resumes == 2
    assert study.trials_in("failed") == []


def _dies_once_after_the_grid_ran_out(trial: ts.Trial, folder: str) -> float:
    if trial.number == 1 and trial.system.retry_of is None:
        _wait_for_exhaustion(folder)
        os._exit(1)  # then this worker dies
    return float(trial.params["x"])


def test_processes_run_a_requeued_copy_after_the_grid_is_exhausted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _marks_exhaustion(monkeypatch, tmp_path)
    study = ts.Study({"x": ts.Categorical([0, 1])}, sampler="grid", storage=f"sqlite:///{tmp_path / 'g.db'}",
                     name="g", requeue_failed=True, heartbeat_interval=1.0)  # fmt: skip
    study.optimize(functools.partial(_dies_once_after_the_grid_ran_out, folder=str(tmp_path)), n_jobs=2, executor="process")
    lost = study.trials[1]
    assert lost.state is TrialState.FAILED
    copy = study.trials[lost.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.params == lost.params


def test_waiting_trials_run_after_the_grid_is_exhausted_within_n_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _marks_exhaustion(monkeypatch, tmp_path)
    study = ts.Study({"x": ts.Categorical([0, 1])}, sampler="grid", storage=f"sqlite:///{tmp_path / 's.db'}",
                     name="s")  # fmt: skip

    def objective(trial: ts.Trial) -> float:
        if trial.params["x"] == 1 and "follow" not in trial.attrs:
            _wait_for_exhaustion(str(tmp_path))  # the other thread finds the grid exhausted first
        return float(trial.params["x"])

    def queue_more(study: ts.Study, record: FrozenTrial) -> None:
        if record.params["x"] == 1 and "follow" not in record.attrs:
            for _ in range(5):
                study.enqueue({"x": 0}, attrs={"follow": True})

    study.optimize(objective, n_trials=3, n_jobs=2, executor="thread", callbacks=[queue_more])
    states = [t.state.value for t in study.trials]
    assert states == ["complete"] * 3 + ["waiting"] * 4  # queued trials count against n_trials


def test_the_drain_goes_on_past_a_waiting_trial_failed_elsewhere(tmp_path: Path) -> None:
    from tunesmith.execution.loop import Budget, Run, finish_promoted

    study = ts.Study({"x": ts.Float(0.0, 1.0)}, storage=f"sqlite:///{tmp_path / 'd.db'}", name="d")
    study.enqueue({"x": 0.1}, attrs={"lost": True})
    study.enqueue({"x": 0.2})

    def objective(trial: ts.Trial) -> float:
        if trial.attrs.get("lost"):  # another worker judges this trial lost while it runs
            study.fail_trial(trial.number, "judged lost")
        return float(trial.params["x"])

    budget = Budget(5, None)
    budget.stop(exhausted=True)  # as after an exhausted grid
    finish_promoted(Run(study, objective, budget, catch=()))
    assert [t.state.value for t in study.trials] == ["failed", "complete"]


def test_a_worker_killed_as_it_resumes_a_trial_leaves_n_trials_new_ones(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process SIGKILLs itself right after it claimed a promoted trial, before its
    budget unit went back (a resume is no new trial): still exactly n_trials new trials,
    the resumed one paused again and run later."""
    from tunesmith.execution import loop

    counter = tmp_path / "passed"

    def hook(name: str) -> None:
        if name == "resumed":
            with open(counter, "ab") as f:
                f.write(b"x")
                f.flush()
                if f.tell() == 1:
                    os.kill(os.getpid(), signal.SIGKILL)

    study = a_promotion_to_come(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", "p")  # a worker's ask resumes trial 1
    monkeypatch.setattr(loop, "KILL_POINT", hook)
    study.optimize(functools.partial(file_objective, folder=str(tmp_path)), n_trials=28, n_jobs=2)
    assert counter.stat().st_size >= 1  # the kill happened
    assert len(study.trials) == 30
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in study.trials)


def _tags_cv(trial: ts.Trial) -> float:
    trial.set_attr("cv", "5-fold")  # the objective's own attribute, not cross_validate's record of its folds
    return _restarting_objective(trial, checkpoint=False)


def test_an_attribute_named_cv_that_cross_validate_did_not_write_still_gets_the_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """The warning was skipped for any trial with an attribute named "cv"; only cross_validate's
    record of its folds (which resumes after them) needs no checkpoint."""
    study = enqueued_study(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS))
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_tags_cv, n_trials=4)
    assert study.trials_in("paused")
    assert caplog.text.count("was paused without attrs['checkpoint']") == 1


class _DiesAsItClaimsTheLastPromotion(ASHA):
    """ASHA whose worker process is SIGKILLed the first time it finds a promotion once every
    trial of the run exists: the worker dies in optimize's drain, before its claim is written."""

    def __init__(self, marker: str, n_trials: int, *, always: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.marker, self.n_trials, self.parent, self.always = marker, n_trials, os.getpid(), always

    def promotable(self, trials: Any, direction: Any) -> list[int]:
        found = super().promotable(trials, direction)
        if found and len(trials) == self.n_trials and os.getpid() != self.parent:
            if self.always:  # every time (a native crash in the pruner): counted in the marker
                with open(self.marker, "a") as f:
                    f.write("x")
                os.kill(os.getpid(), signal.SIGKILL)
            if _first_to_claim(Path(self.marker), found[0]):
                os.kill(os.getpid(), signal.SIGKILL)
        return found


def test_a_worker_killed_as_it_looks_for_the_last_promotion_leaves_none_behind(tmp_path: Path) -> None:
    """The 6th trial promotes paused trial 1 (see the test above); the worker that would resume it
    is killed before its claim is written. Another worker must run the promotion before optimize
    returns: before, the death found no running trial and nothing replaced the worker."""
    pruner = _DiesAsItClaimsTheLastPromotion(str(tmp_path / "killed"), 6, curve="best", pause=True,
                                             min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0,
                     storage=f"sqlite:///{tmp_path / 'd.db'}", name="d")
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})
    study.optimize(_constant_curve, n_trials=6, executor="process")
    assert (tmp_path / "killed").read_text() == "1"  # the kill happened, as trial 1 was found
    trials = study.trials
    assert len(trials) == 6 and study.trials_in("failed") == []
    assert pruner.promotable(trials, study.direction) == []  # no promotion left behind
    assert trials[1].system.n_resumes == 1 and trials[1].last_step == 3


def test_workers_that_die_each_time_they_look_for_a_promotion_are_not_replaced_for_good(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Once no new trial may start, a worker that died with nothing found is replaced to look for
    promotions again; before, one killed by a signal each time it looked (not counted among the
    workers that cannot start) was replaced until the timeout, forever without one."""
    from tunesmith.execution import process

    monkeypatch.setattr(process, "MAX_BARREN_DEATHS", 2)
    marker = tmp_path / "deaths"
    pruner = _DiesAsItClaimsTheLastPromotion(str(marker), 6, always=True, curve="best", pause=True,
                                             min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0,
                     storage=f"sqlite:///{tmp_path / 'd.db'}", name="d")
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})
    study.optimize(_constant_curve, n_trials=6, n_jobs=1, executor="process", timeout=30)
    assert marker.read_text() == "xxx"  # the first, then two replacements
    assert "3 worker processes in a row died looking for promotions" in caplog.text
    assert pruner.promotable(study.trials, study.direction) == [1]  # left paused, for a later call
    study.pruner = ASHA(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study.optimize(_constant_curve, n_trials=0, executor="process")
    assert study.trials[1].system.n_resumes == 1


def test_promotions_left_by_study_stop_run_in_a_later_optimize_of_no_new_trials() -> None:
    pruner = ASHA(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, pruner=pruner, sampler="random", seed=0)
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})

    def stop_after_the_sixth(study: ts.Study, record: FrozenTrial) -> None:
        if record.number == 5:  # its arrival at rung 1 promoted paused trial 1
            study.stop()

    study.optimize(_constant_curve, n_trials=50, callbacks=[stop_after_the_sixth])
    assert len(study.trials) == 6 and pruner.promotable(study.trials, study.direction) == [1]  # kept, not run
    study.optimize(_constant_curve, n_trials=0)
    assert len(study.trials) == 6 and pruner.promotable(study.trials, study.direction) == []
    assert study.trials[1].system.n_resumes == 1


class OutOfMemoryError(RuntimeError):  # torch.cuda's, on a machine without a GPU
    pass


def _out_of_memory() -> None:
    raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def _kill_the_worker_once_its_copy_is_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process that queues a trial's copy (``Study.requeue``) is SIGKILLed at once, its failure not
    written."""
    parent, requeue = os.getpid(), ts.Study.requeue

    def killed_once_queued(self: ts.Study, trial: Any, *args: Any, **kw: Any) -> int | None:
        out = requeue(self, trial, *args, **kw)
        if os.getpid() != parent and out is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    monkeypatch.setattr(ts.Study, "requeue", killed_once_queued)


def test_a_resumed_trial_killed_once_its_oom_copy_is_queued_is_not_run_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A promoted trial runs out of GPU memory; its copy is queued before its failure is written, and its
    worker is SIGKILLed between the two. The parent, seeing the worker dead, held the trial back to paused
    (a resumed trial keeps its promotion), so the configuration ran twice: the held trial resumed, and the
    copy from the start. It is failed, pointing to the copy, which runs once."""
    _kill_the_worker_once_its_copy_is_queued(monkeypatch)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    study = ts.Study(SPACE, storage=url, name="k", pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=9))  # fmt: skip
    for lr in (0.45, 0.3, 0.05, 0.04, 0.03, 0.02):
        study.enqueue({"lr": lr})
    study.optimize(_ends_its_first_resumed_run(str(tmp_path), _out_of_memory), n_trials=6, gpus=["0"], trials_per_gpu=1,
                   allow_missing_gpus=True)  # fmt: skip
    victim = study.trials[int((tmp_path / "killed").read_text())]
    copies = [t for t in study.trials if t.system.retry_of == victim.number]
    assert len(copies) == 1 and copies[0].system.oom_retries == 1, study.trials
    assert victim.state is TrialState.FAILED and victim.system.n_resumes == 1, victim  # before: paused, or resumed
    assert victim.system.requeued_as == copies[0].number and "exit code -9" in (victim.error or "")
    # the six units went to the six new trials (a resume takes none, so its lost run gives none back): the copy,
    # a new trial, runs in the next call
    assert copies[0].state is TrialState.WAITING, copies[0]
    study.optimize(_ends_its_first_resumed_run(str(tmp_path), _out_of_memory), n_trials=1, gpus=["0"],
                   trials_per_gpu=1, allow_missing_gpus=True)  # fmt: skip
    copy = study.trials[copies[0].number]
    assert copy.state is not TrialState.WAITING and copy.system.n_resumes == 0, copy
    assert len([t for t in study.trials if t.system.retry_of == victim.number]) == 1


def _first_out_of_memory(trial: ts.Trial) -> float:
    if trial.number == 0:
        _out_of_memory()
    return trial.params["lr"]


def test_a_trial_killed_once_its_oom_copy_is_queued_counts_its_copy_in_n_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new trial runs out of GPU memory; its worker is SIGKILLed between queueing the copy and writing the
    failure (no requeue_failed). The parent failed it pointing to the copy and gave its unit back, as for a lost
    worker's re-queued trial: the copy ran free, 4 trials for n_trials=3, where a worker that lives runs 3 (the
    failed trial, its copy and one more: the retry counts, docs/distributed.md)."""
    _kill_the_worker_once_its_copy_is_queued(monkeypatch)
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'k.db'}", name="k", sampler="random", seed=0)
    study.optimize(_first_out_of_memory, n_trials=3, gpus=["0"], trials_per_gpu=1, allow_missing_gpus=True)
    trials = [(t.number, t.state.value, t.system.retry_of, t.system.requeued_as, t.error) for t in study.trials]
    first = study.trials[0]
    assert first.state is TrialState.FAILED and "exit code -9" in (first.error or ""), trials  # killed, as meant
    assert first.system.requeued_as is not None and study.trials[first.system.requeued_as].system.oom_retries == 1
    assert Counter(t.state.value for t in study.trials) == {"failed": 1, "complete": 2}, trials


def test_a_resumed_trial_killed_as_it_records_its_new_checkpoint_resumes_from_the_one_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The trainer deleted the previous "last" checkpoint (keep_last=1) as it saved the new one, before the
    trial recorded the new path: a worker killed between them left the record naming a deleted file, and the
    trial, held back to paused, trained again from the start ("its checkpoint ... is missing"). The older
    file now stays until the validation's callbacks have run."""
    torch = pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, objective

    first: dict[int, int] = {}
    url = f"sqlite:///{tmp_path / 's.db'}"

    def killer(trainer: Any, record: Any) -> None:  # before the trial's own callback records the checkpoint
        start = first.setdefault(id(trainer), record.index)
        if start > 0 and record.index == start + 1 and _first_to_claim(tmp_path / "killed", start):
            running = ts.load_study("s", url).trials_in("running")  # a resumed run's second validation
            named = [Path(t.attrs["checkpoint"]).is_file() for t in running]
            (tmp_path / "named").write_text(json.dumps(named))  # the checkpoint its record names, on disk?
            os.kill(os.getpid(), signal.SIGKILL)

    base = TrainConfig(optimizer="sgd", momentum=0.0, epochs=9, batch_size=16, lr_adapt="hypergradient", hyper_lr=1e-2,
                       device="cpu")
    study = ts.Study({"lr": ts.Float(1e-3, 0.5, log=True)}, storage=url, name="s",
                     pruner=ASHA(min_resource=1, reduction_factor=3, max_resource=9, pause=True))
    for lr in (0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001):
        study.enqueue({"lr": lr})
    torch.set_num_threads(1)
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective(lambda p: mlp(), split(96), base=base, checkpoint_root=tmp_path / "ck",
                                 callbacks=[killer]), n_trials=9, executor="process", n_jobs=1)
    assert (tmp_path / "killed").exists(), caplog.text
    assert "paused again (it had been resumed from a checkpoint)" in caplog.text
    assert json.loads((tmp_path / "named").read_text()) == [True]  # before: deleted, the trial trained again
    # from the start ("its checkpoint ... is missing")
    held = [t for t in study.trials if t.system.n_holds]
    assert len(held) == 1 and held[0].system.n_resumes == 2, study.trials


def _docs_checkpoint_objective() -> tuple[Callable[[ts.Trial], float], Any]:
    """docs/pruning.md's objective that resumes from its checkpoint, and its space, as the page runs them
    (its setup block and its example, which runs a study of 12 trials in the current folder)."""
    from test_docs_snippets import ROOT, python_blocks

    found = python_blocks((ROOT / "docs" / "pruning.md").read_text())
    at = next(i for i, b in enumerate(found) if "trial.resume_from" in b.code and "def objective" in b.code)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for block in found[:at + 1]:
        if block.run:
            exec(compile(block.code, f"docs/pruning.md, block at line {block.line}", "exec"), namespace)
    return namespace["objective"], namespace["space"]


def test_the_docs_objective_resumes_a_trial_stopped_between_its_last_report_and_its_return(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C after a trial's last report (in its last ``should_prune``, or in what the objective does after
    its loop) holds it, paused, to resume from its checkpoint: resumed, ``trial.start_step`` is past the loop,
    which runs no epoch. docs/pruning.md's objective then raised UnboundLocalError (``val`` never set) and the
    trial, trained in full, failed; it returns its last report."""
    monkeypatch.chdir(tmp_path)
    objective, space = _docs_checkpoint_objective()
    stopped: list[int] = []

    def stopped_after_its_loop(trial: ts.Trial) -> float:
        value = objective(trial)
        if not stopped:  # the first trial to run in full: Ctrl-C as it returns
            stopped.append(trial.number)
            raise KeyboardInterrupt
        return value

    study = ts.Study(space, sampler="random", seed=0, pruner=ASHA(pause=True, max_resource=27))
    study.optimize(stopped_after_its_loop, n_trials=12)
    assert stopped and study.interrupted == "interrupted (KeyboardInterrupt)"
    held = study.trials[stopped[0]]
    assert held.state is TrialState.PAUSED and held.system.held == "interrupted (KeyboardInterrupt)", held
    assert held.last_step == 27
    study.optimize(objective, n_trials=0)
    done = study.trials[stopped[0]]
    assert done.state is TrialState.COMPLETE, done.error
    assert done.value == done.intermediate[27] and done.system.n_resumes == held.system.n_resumes + 1


def test_the_docs_objective_of_two_studies_in_one_folder_resumes_each_from_its_own_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/pruning.md's objective named its files by trial number alone (``checkpoints/trial-N-EPOCH.pt``), and
    trial numbers repeat across studies: study ``a``'s trial 0, Ctrl-C'd after epoch 3 and held, then study ``b``
    run in the same folder (its trial 0 saved ``trial-0-3.pt`` over ``a``'s and deleted it at epoch 4), and ``a``'s
    resume failed (the file gone; had ``b`` stopped at epoch 3, ``a`` would have resumed from ``b``'s weights). Each
    study now has its own folder; ``a``'s reports are an uninterrupted run's."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    objective, space = _docs_checkpoint_objective()
    train = objective.__globals__["train_one_epoch"]
    epochs: list[int] = []

    def interrupted_in_epoch_4(model: Any, opt: Any) -> float:  # a's trial 0: Ctrl-C after epoch 3's report
        epochs.append(1)
        if len(epochs) == 4:
            raise KeyboardInterrupt
        return float(train(model, opt))

    objective.__globals__.update(build=_seeded_build, train_one_epoch=interrupted_in_epoch_4)
    url = f"sqlite:///{tmp_path / 'two.db'}"
    a = ts.Study(space, storage=url, name="a", pruner=ASHA(pause=True, max_resource=27))
    a.enqueue({"lr": 0.01})
    a.optimize(objective, n_trials=1)
    assert a.trials[0].system.held == "interrupted (KeyboardInterrupt)" and a.trials[0].last_step == 3, a.trials[0]
    objective.__globals__["train_one_epoch"] = train
    b = ts.Study(space, storage=url, name="b")  # no pruner: its trial 0 trains 27 epochs, past a's epoch 3
    b.enqueue({"lr": 0.3})
    b.optimize(objective, n_trials=1)
    assert b.trials[0].state is TrialState.COMPLETE
    a.optimize(objective, n_trials=0)  # resumes the held trial first
    resumed = a.trials[0]
    assert resumed.state is not TrialState.FAILED, resumed.error
    model, opt = _seeded_build(resumed.params)
    straight = [train(model, opt) for _ in range(27)]
    assert [resumed.intermediate[e] for e in sorted(resumed.intermediate)] == straight[:len(resumed.intermediate)]
    assert len(resumed.intermediate) > 3


def test_the_docs_objective_resumes_a_held_trial_after_a_rename_and_in_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """docs/pruning.md's objective keeps its files in its study's folder, named after the study's name and copy
    id: renamed, then copied, the study's held trial resumes from the file it recorded (the old name's folder) in
    both, the copy writing its own folder alone, and the renamed study's reports are an uninterrupted run's. The
    rename and the copy warned that the trial would fail ('refusing to resume'), which holds for tunesmith's
    trainer and Lightning callback, and advised ending it: they now say that such an objective resumes it."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    objective, space = _docs_checkpoint_objective()
    train = objective.__globals__["train_one_epoch"]
    epochs: list[int] = []

    def interrupted_in_epoch_4(model: Any, opt: Any) -> float:
        epochs.append(1)
        if len(epochs) == 4:
            raise KeyboardInterrupt
        return float(train(model, opt))

    objective.__globals__.update(build=_seeded_build, train_one_epoch=interrupted_in_epoch_4)
    a = ts.Study(space, storage=f"sqlite:///{tmp_path / 'r.db'}", name="a", pruner=ASHA(pause=True, max_resource=27))
    a.enqueue({"lr": 0.01})
    a.optimize(objective, n_trials=1)
    recorded = Path(a.trials[0].attrs["checkpoint"])
    assert a.trials[0].system.held is not None and recorded.exists(), a.trials[0]
    objective.__globals__["train_one_epoch"] = train
    with caplog.at_level("WARNING", logger="tunesmith"):
        a.rename("a2")
        c = a.copy("c")
    said = [r.getMessage() for r in caplog.records if "its paused trial(s) [0]" in r.getMessage()]
    assert len(said) == 2 and all("an objective that loads trial.resume_from itself, as docs/pruning.md's, "
                                  "resumes them from the file recorded" in m for m in said), said
    c.optimize(objective, n_trials=0)
    assert recorded.exists() and c.trials[0].state is TrialState.COMPLETE, c.trials[0].error
    a.optimize(objective, n_trials=0)
    resumed = a.trials[0]
    assert resumed.state is TrialState.COMPLETE and resumed.system.n_resumes == 1, resumed.error
    model, opt = _seeded_build(resumed.params)
    assert [resumed.intermediate[e] for e in range(1, 28)] == [train(model, opt) for _ in range(27)]


def _seeded_build(params: dict[str, Any]) -> Any:
    """docs/pruning.md's model and optimizer, the same weights for each run: a resumed run is compared
    with an uninterrupted one."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=params["lr"])


class _KillsAfterTheSave:
    """The ``checkpoint`` module a docs objective sees: its ``save`` writes the checkpoint, and once, at trial 0's
    second save, SIGKILLs its worker process as it returns: the checkpoint saved, its report not written."""

    def __init__(self, folder: Path) -> None:
        from tunesmith.train import checkpoint

        self._checkpoint, self._folder = checkpoint, folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._checkpoint, name)

    def save(self, path: Any, obj: Any) -> None:
        self._checkpoint.save(path, obj)
        if Path(path).name.startswith("trial-0") and not (self._folder / "killed").exists():
            with open(self._folder / "saves", "a") as log:
                log.write(f"{path}\n")
            if len((self._folder / "saves").read_text().split()) == 2 and _first_to_claim(self._folder / "killed", 0):
                os.kill(os.getpid(), signal.SIGKILL)


def test_the_docs_objective_killed_between_its_checkpoint_save_and_its_report_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed after the objective saved epoch 2's checkpoint and before it reported epoch 2: the trial
    is held (a dead worker, a pruner that pauses, requeue_failed) and resumed. docs/pruning.md's objective
    saved one file per trial in place and recorded it apart from the report, so the trial resumed at epoch 2
    from epoch 2's weights (that epoch trained twice: every later report off an uninterrupted run's); it now
    saves each epoch to a new file, recorded with its report in one write (``report(checkpoint=...)``)."""
    import torch

    monkeypatch.chdir(tmp_path)
    objective, space = _docs_checkpoint_objective()
    objective.__globals__.update(build=_seeded_build, checkpoint=_KillsAfterTheSave(tmp_path))
    study = ts.Study(space, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'k.db'}", name="k",
                     pruner=ASHA(pause=True, max_resource=27), heartbeat_interval=0.5, requeue_failed=True)
    study.optimize(objective, n_trials=3, n_jobs=1, executor="process")
    assert (tmp_path / "killed").exists()
    trials = study.trials
    assert len(trials) == 3 and not study.trials_in("failed") and not study.trials_in("running"), trials
    killed = trials[0]
    assert killed.system.n_holds == 1 and killed.system.n_resumes >= 1, killed.system
    model, opt = _seeded_build(killed.params)
    straight = [objective.__globals__["train_one_epoch"](model, opt) for _ in range(27)]
    assert sorted(killed.intermediate) == list(range(1, len(killed.intermediate) + 1))
    assert [killed.intermediate[e] for e in sorted(killed.intermediate)] == straight[:len(killed.intermediate)]
    assert torch.load(killed.attrs["checkpoint"], weights_only=True)  # the one recorded is whole


_SAVES_AND_IS_KILLED = """
import os, sys, torch
sys.path.insert(0, {tests!r})
from test_docs_snippets import ROOT, python_blocks

found = python_blocks((ROOT / "docs" / "pruning.md").read_text())
at = next(i for i, b in enumerate(found) if "trial.resume_from" in b.code and "def objective" in b.code)
namespace = {{"__name__": "__main__"}}
for block in found[:at]:
    if block.run:
        exec(compile(block.code, "docs/pruning.md", "exec"), namespace)
saving = torch.save

def announced(obj, f, *args, **kwargs):  # the real torch.save, after a line the test kills on
    os.write(1, b"saving\\n")
    return saving(obj, f, *args, **kwargs)

torch.save = announced
namespace["build"] = lambda params: (lambda m: (m, torch.optim.SGD(m.parameters(), lr=params["lr"])))(
    torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Linear(1, 4_000_000)))  # 32 MB: a save takes a while
namespace["train_one_epoch"] = lambda model, opt: 1.0
exec(compile(found[at].code, "docs/pruning.md", "exec"), namespace)  # the page's study of 12 trials
"""


def test_the_docs_objective_killed_while_it_saves_leaves_a_checkpoint_the_resumed_trial_loads(tmp_path: Path) -> None:
    """docs/pruning.md's objective saved with ``torch.save(state, path)`` in place: a kill (or Ctrl-C)
    inside the save left a truncated file under the trial's name, which its resume could not load. Saved
    with ``checkpoint.save`` (temporary file, fsync, rename), the file is the previous epoch's, whole; and a
    file truncated some other way is refused by the page's load with an error naming it and what to do."""
    pytest.importorskip("torch")
    from tunesmith.train import checkpoint

    folder = tmp_path / "checkpoints"  # a folder in it for each run's study
    for kill_at in (2, 3):
        child = subprocess.Popen([sys.executable, "-c", _SAVES_AND_IS_KILLED.format(tests=str(Path(__file__).parent))],
                                 cwd=tmp_path, stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None
            for _ in range(kill_at):
                assert child.stdout.readline() == b"saving\n"
            end = time.monotonic() + 5.0
            while (time.monotonic() < end and not any(folder.glob(f"*/trial-0-{kill_at}.pt"))
                   and not any(folder.glob("*/.*.tmp"))):
                pass  # until the save is under way: the file written in place, or a temporary one
            child.kill()  # inside the save of its kill_at-th epoch
        finally:
            child.kill()
            child.wait()
    # each killed in its kill_at-th epoch's save: the epoch before's file, whole, the others deleted
    saved = sorted(folder.glob("*/*.pt"), key=lambda p: p.name)
    assert [p.name for p in saved] == ["trial-0-1.pt", "trial-0-2.pt"], saved
    for step, f in enumerate(saved, 1):
        assert checkpoint.is_complete(f), f"{f.name} was left truncated"
        assert checkpoint.load(f)["step"] == step  # the last epoch saved whole
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # cut short all the same (a full disk, a copy)
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(f"checkpoint {str(f)!r} cannot be read: it is "
                                                                   "not a complete torch.save archive")):
        checkpoint.load(f)


_RUN_BESIDE = """
import functools, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import tunesmith as ts
from tunesmith.cli.launch import optimize_interruptibly
from test_pause_resume import SPACE, _first_to_claim, file_objective

url, folder, role = sys.argv[1:]
here = Path(folder)

def after_report(trial, step):
    if role == "stopped" and step == 0 and _first_to_claim(here / "stopped", trial.number):
        time.sleep(120)  # the test's Ctrl-C comes meanwhile
    while role == "beside" and not (here / "release").exists():
        time.sleep(0.02)  # training as the other process is stopped
    if role == "beside":
        time.sleep(0.1)  # an epoch: still running as the other records its stop

study = ts.Study(SPACE, storage=url, name="s", load_if_exists=True)
objective = functools.partial(file_objective, folder=folder, after_report=after_report)
sys.exit(optimize_interruptibly(study, objective, {{"n_trials": 0 if role == "again" else 3}}))
"""


def test_a_trial_ctrl_c_paused_in_one_process_is_resumed_once_by_another_on_the_same_study(
        tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str]) -> None:
    """Two processes run one study; Ctrl-C stops one in a trial that recorded a checkpoint and a report. The
    trial goes back to paused in one write, and the other process (still running) resumes it from its
    checkpoint: once, after the stopped process let go of it (no report or step twice, none missing)."""
    study = enqueued_study(ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=N_STEPS),
                           shared_storage_url, "s")
    script = _RUN_BESIDE.format(tests=str(Path(__file__).parent))
    run = [sys.executable, "-c", script, shared_storage_url, str(tmp_path)]
    stopped = subprocess.Popen([*run, "stopped"], env=subprocess_env, stderr=subprocess.PIPE, text=True)
    beside = subprocess.Popen([*run, "beside"], env=subprocess_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # the marker's number written too: a Ctrl-C between its creation and that write left it empty (under load)
        while not _read_or_empty(tmp_path / "stopped") and stopped.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _read_or_empty(tmp_path / "stopped"), "no trial was stopped"
        stopped.send_signal(signal.SIGINT)
        (tmp_path / "release").touch()  # the other process goes on, asking for trials as the stop is recorded
        _, err = stopped.communicate(timeout=60)
        _, err_beside = beside.communicate(timeout=120)
    finally:
        stopped.kill()
        beside.kill()
    assert stopped.returncode == 130, err
    assert beside.returncode == 0, err_beside
    number = int((tmp_path / "stopped").read_text())
    again = subprocess.run([*run, "again"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # resumes it if the other process ended before it was paused
    trials = study.trials
    assert not study.trials_in("failed") and not study.trials_in("running"), trials
    held = trials[number]
    assert held.system.n_holds == 0 and held.system.n_resumes >= 1, held.system
    assert starts(tmp_path).count((number, 0)) == 1 and starts(tmp_path).count((number, 1)) == 1, starts(tmp_path)
    check_resumed_runs_are_exact(study)


def _held_by_ctrl_c(trial: ts.Trial) -> float:
    if trial.is_resumed:  # promoted
        return float(trial.number)
    trial.set_attr("checkpoint", f"ck{trial.number}")
    trial.report(float(trial.number), 1)
    if trial.number == 2:
        raise KeyboardInterrupt  # as a Ctrl-C in the objective
    raise ts.TrialPaused()


def test_the_storage_finds_the_held_trials_without_reading_every_paused_one(storage_url: str | None) -> None:
    """``Storage.get_held``: what ``show`` names as resumed first; the paused trials' reports are not read."""
    study = ts.Study(SPACE, storage=storage_url, name="h", sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=3, pause=True, max_resource=N_STEPS))
    study.optimize(_held_by_ctrl_c, n_trials=4)
    assert study.interrupted == "interrupted (KeyboardInterrupt)"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PAUSED, TrialState.PAUSED]
    held = study.storage.get_held(study._study_id)
    assert [(t.number, t.system.held, t.intermediate) for t in held] == [(2, "interrupted (KeyboardInterrupt)", {1: 2.0})]


def signal_parent_then_die(trial: ts.Trial, step: int, folder: str) -> None:
    """``file_objective``'s ``after_report``: trial 0's worker, after its first report, sends SIGTERM to the
    optimize process (its parent) and then SIGKILLs itself, once: the parent's interrupt finds a worker that
    died before it (the parent looks for a dead worker's trial half a second after the death)."""
    if trial.number == 0 and step == 0 and not trial.is_resumed and _first_to_claim(Path(folder) / "killed", 0):
        os.kill(os.getppid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGKILL)


_RUN_SIGNALLED = """
import functools, sys
sys.path.insert(0, {tests!r})
import tunesmith as ts
from tunesmith.cli.launch import optimize_interruptibly
from test_pause_resume import LRS, file_objective, signal_parent_then_die

url, folder, again, lost = sys.argv[1:]
study = ts.Study({{"lr": ts.Float(0.01, 0.9, log=True)}}, storage=url, name="s", load_if_exists=True,
                 pruner=ts.pruners.ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True, max_resource=9),
                 **(dict(heartbeat_interval=0.5, requeue_failed=True) if lost == "requeue_failed" else {{}}))
if again == "no":
    for lr in LRS:
        study.enqueue({{"lr": lr}})
end = functools.partial(signal_parent_then_die, folder=folder)
sys.exit(optimize_interruptibly(study, functools.partial(file_objective, folder=folder, after_report=end),
                                {{"n_trials": 0 if again == "yes" else len(LRS), "n_jobs": 2}}))
"""


@pytest.mark.parametrize("lost", ["requeue_failed", "without heartbeats"])
def test_a_worker_killed_just_before_a_sigterm_has_its_trial_resumed_by_the_next_optimize(
        tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str], lost: str) -> None:
    """A worker SIGKILLed in a trial that recorded a checkpoint, the run SIGTERMed before the parent looked
    for the dead worker's trial: the interrupt failed it ("interrupted (worker exit code -9)"), though
    without the signal it was held (a pruner that pauses; requeue_failed or not) and the interrupted workers
    hold theirs; its checkpoint was never resumed. Now it is held, and the next optimize resumes it first."""
    run = [sys.executable, "-c", _RUN_SIGNALLED.format(tests=str(Path(__file__).parent)), shared_storage_url,
           str(tmp_path)]
    first = subprocess.run([*run, "no", lost], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 143 and (tmp_path / "killed").exists(), first.stderr
    stopped = ts.load_study("s", shared_storage_url).trials[0]
    assert stopped.state is TrialState.PAUSED and stopped.system.held == "interrupted (worker exit code -9)", stopped
    assert stopped.last_step == 0 and not [t for t in ts.load_study("s", shared_storage_url).trials
                                           if t.system.retry_of is not None]  # no copy queued
    again = subprocess.run([*run, "yes", lost], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    study = ts.load_study("s", shared_storage_url)
    assert len(study.trials) == len(LRS) and not study.trials_in("failed")
    assert starts(tmp_path).count((0, 1)) == 1 and starts(tmp_path).count((0, 0)) == 1  # on from its checkpoint
_INTERRUPTED_AROUND_A_WRITE = """
import functools, os, signal, sys
sys.path.insert(0, {tests!r})
import tunesmith as ts
from tunesmith.cli.launch import optimize_interruptibly
from tunesmith.storage import SQLStorage
from test_pause_resume import SPACE, Goes, file_objective

url, folder, where = sys.argv[1:]

def ctrl_c():  # a real SIGINT: Python raises its KeyboardInterrupt at the next instruction
    if not os.path.exists(os.path.join(folder, "sent")):
        open(os.path.join(folder, "sent"), "w").close()
        os.kill(os.getpid(), signal.SIGINT)

class InterruptedAroundAWrite(SQLStorage):
    def update_trial(self, study_id, trial, **kwargs):
        if where == "in-tell-before-its-write" and trial.state is ts.TrialState.COMPLETE:
            ctrl_c()  # the objective returned; its value is not written
        done = super().update_trial(study_id, trial, **kwargs)
        if where == "report-committed" and trial.state is ts.TrialState.RUNNING and trial.last_step == 2:
            ctrl_c()  # the report and its checkpoint committed, the handle not given the record yet
        return done

def after_report(trial, step):
    if where == "after-report-returned" and step == 2:
        ctrl_c()

study = ts.Study(SPACE, storage=InterruptedAroundAWrite(url), name="s", load_if_exists=True, pruner=Goes())
if where != "again":
    study.enqueue({{"lr": 0.3}})
sys.exit(optimize_interruptibly(study, functools.partial(file_objective, folder=folder, after_report=after_report),
                                {{"n_trials": 0 if where == "again" else 1}}))
"""


class Goes(Pruner):
    """Never stops a trial, but pauses (a held trial is resumed)."""

    pauses = True

    def decide(self, trial: Any, trials: Any, direction: Any) -> Decision:
        return Decision.CONTINUE

    def promotable(self, trials: Any, direction: Any) -> list[int]:
        return []


@pytest.mark.parametrize("where", ["after-report-returned", "report-committed", "in-tell-before-its-write"])
def test_a_ctrl_c_around_a_report_s_write_holds_the_trial_at_its_last_recorded_report(
        tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str], where: str) -> None:
    """A KeyboardInterrupt raised after a report's write committed but before the handle took the record
    failed the trial (its first report) or held it a report behind, that report and its checkpoint
    overwritten; one after the objective returned, before its value was written, failed it. The last recorded
    report with a checkpoint decides: held there (a real SIGINT at each point, inline), resumed exactly."""
    script = _INTERRUPTED_AROUND_A_WRITE.format(tests=str(Path(__file__).parent))
    run = [sys.executable, "-c", script, shared_storage_url, str(tmp_path)]
    first = subprocess.run([*run, where], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 130 and (tmp_path / "sent").exists(), first.stderr
    stopped = ts.load_study("s", shared_storage_url).trials[0]
    reported = N_STEPS - 1 if where == "in-tell-before-its-write" else 2
    assert stopped.state is TrialState.PAUSED and stopped.system.held == "interrupted (KeyboardInterrupt)", stopped
    assert stopped.last_step == reported and stopped.attrs["checkpoint"].endswith(f"trial0-{reported}.json")

    again = subprocess.run([*run, "again"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    study = ts.load_study("s", shared_storage_url)
    (resumed,) = study.trials
    assert resumed.state is TrialState.COMPLETE and resumed.system.n_resumes == 1, resumed
    assert starts(tmp_path) == [(0, 0), (0, reported + 1)]
    check_resumed_runs_are_exact(study)


_RUN_TAKEN_FOR_DEAD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import tunesmith as ts
from test_pause_resume import SPACE

url, folder, role = sys.argv[1:]
here = Path(folder)

def wait(name):
    while not (here / name).exists():
        time.sleep(0.02)

def objective(trial):
    if role == "alive":  # its process taken for dead, its trial held, then a Ctrl-C in its objective
        trial.report(0.5, 1, checkpoint="ck-0")
        (here / "reported").touch()
        wait("interrupt")
        raise KeyboardInterrupt
    (here / f"resumed-{{trial.system.n_resumes}}").touch()  # the other process resumes the held trial
    wait("finish")
    trial.report(0.4, 2, checkpoint="ck-1")
    return 0.4

study = ts.Study(SPACE, storage=url, name="s", load_if_exists=True)
study.optimize(objective, n_trials=1 if role == "alive" else 0)
"""


def test_a_ctrl_c_in_a_worker_taken_for_dead_leaves_the_run_that_resumed_its_held_trial_alone(
        tmp_path: Path, shared_storage_url: str, subprocess_env: dict[str, str]) -> None:
    """A worker taken for dead that was not (a Ray node cut off from its cluster, not from the database: the
    driver calls ``fail_worker(dead=True)``) has its trial held; another process resumes it; then a Ctrl-C
    stops the first one's objective. Its pause was a compare-and-set on the state alone (running): it paused
    the other process's run with its own older record, whose end was then refused and which was resumed
    twice. Now it writes only over its own run, and the other run completes the trial, resumed once."""
    study = ts.Study(SPACE, storage=shared_storage_url, name="s", sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=3, pause=True, max_resource=N_STEPS))
    script = _RUN_TAKEN_FOR_DEAD.format(tests=str(Path(__file__).parent))
    run = [sys.executable, "-c", script, shared_storage_url, str(tmp_path)]
    alive = subprocess.Popen([*run, "alive"], env=subprocess_env, stderr=subprocess.PIPE, text=True)
    other = None
    try:
        _wait_for(tmp_path / "reported", alive)
        worker = study.trials[0].worker
        assert worker is not None
        held = study.fail_worker(worker, "ray worker lost", dead=True)  # as Ray's driver does for a lost actor
        assert [(t.number, t.state) for t in held] == [(0, TrialState.PAUSED)], held
        other = subprocess.Popen([*run, "other"], env=subprocess_env, stderr=subprocess.PIPE, text=True)
        _wait_for(tmp_path / "resumed-1", other)
        (tmp_path / "interrupt").touch()
        _, err = alive.communicate(timeout=60)
        stored = study.storage.get_trial(study._study_id, 0)
        assert (stored.state, stored.system.n_resumes) == (TrialState.RUNNING, 1), (stored, err)
        assert stored.worker is not None and stored.worker != worker, stored
        (tmp_path / "finish").touch()
        _, err_other = other.communicate(timeout=60)
    finally:
        alive.kill()
        if other is not None:
            other.kill()
    assert other.returncode == 0, err_other
    trial = study.trials[0]
    assert (trial.state, trial.value, trial.system.n_resumes) == (TrialState.COMPLETE, 0.4, 1), (trial, err_other)
    assert trial.intermediate == {1: 0.5, 2: 0.4}
    assert not (tmp_path / "resumed-2").exists(), err_other


def _wait_for(marker: Path, proc: subprocess.Popen[str], deadline: float = 120.0) -> None:
    """Until ``marker`` exists (``proc`` still running), however loaded the machine."""
    end = time.monotonic() + deadline
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {marker.name}: {proc.communicate()[1]}")
        if time.monotonic() > end:
            raise TimeoutError(f"no {marker.name} within {deadline} s")
        time.sleep(0.02)


class _DiskFull(OutOfRoom):  # noqa: N818 - as a user's own kind of OutOfRoom, with its own arguments
    def __init__(self, path: str, needed: int) -> None:
        super().__init__(f"no room for {path} ({needed} bytes)")
        self.path, self.needed = path, needed


def test_a_resumed_trial_s_own_kind_of_out_of_room_is_raised_as_itself_saying_the_trial_was_paused_again(
        storage_url: str | None) -> None:
    """A resumed trial's OutOfRoom was raised again as a new exception of its type built from one message:
    a subclass whose __init__ takes other arguments (a path and a size) made optimize raise "TypeError:
    __init__() missing 1 required positional argument" instead, saying nothing of the full disk or of the
    trial paused again. The error raised is the objective's own, its fields kept, with the trial's fate."""
    study = ts.Study(SPACE, storage=storage_url, name="r",
                     pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    number = _paused_with_checkpoint(study)
    resumed = study.ask()
    assert resumed.number == number and resumed.is_resumed

    def full(trial: ts.Trial) -> float:
        raise _DiskFull("/data/ck.pt", 4096)

    with pytest.raises(_DiskFull) as err:
        study.run_trial(full, resumed)
    said = str(err.value)
    assert said.startswith("no room for /data/ck.pt (4096 bytes); trial 0 (resumed after a pause) was paused "
                           "again, its checkpoint and promotion kept"), said
    assert (err.value.path, err.value.needed) == ("/data/ck.pt", 4096)
    kept = study.trials[number]
    assert kept.state is TrialState.PAUSED and kept.system.n_holds == 0 and "no room for" in kept.system.held, kept
    assert study.ask().number == number  # resumed first, as the error says


def test_a_resumed_trial_another_worker_took_over_is_said_to_be_taken_over_not_ended(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A resumed trial whose worker was taken for dead while it ran (held), then resumed by another worker,
    and whose objective here then refused its checkpoint: this run records nothing and goes on, as it
    should, but said "trial 0 ended elsewhere while it ran here (running)", a trial that had not ended. It
    says the trial was taken over, and the other worker's run stands."""
    pruner = ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True)
    study = ts.Study(SPACE, storage=sqlite_url, name="s", pruner=pruner)
    other = ts.Study.load("s", sqlite_url, pruner=pruner)  # another worker on the same study
    number = _paused_with_checkpoint(study)
    taken: list[ts.Trial] = []

    def refused_after_a_takeover(trial: ts.Trial) -> float:
        assert trial.is_resumed
        study.fail_worker(worker_id(), "ray worker lost", dead=True)  # as Ray's driver does for a lost actor
        taken.append(other.ask())  # the other worker resumes the held trial
        raise ts.ResumeRefused("its checkpoint was written for another model")

    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(refused_after_a_takeover, n_trials=0)
    assert [t.number for t in taken] == [number]
    said = [r.getMessage() for r in caplog.records if f"trial {number}" in r.getMessage()]
    assert any(f"trial {number} was taken over by another worker while it ran here" in line
               and "this run's result is not recorded" in line for line in said), said
    assert not any("ended elsewhere" in line for line in said), said
    stored = study.trials[number]
    assert (stored.state, stored.system.n_resumes) == (TrialState.RUNNING, 2), stored  # the other's run stands
    other.tell(taken[0], 0.25)
    assert study.trials[number].state is TrialState.COMPLETE


def test_a_worker_taken_for_lost_whose_objective_returns_after_another_resumed_its_trial_does_not_end_that_run(
        shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A resumed trial whose worker was taken for dead (held back to paused) and then resumed by another worker:
    the first worker's objective returned after all, and its tell, a compare-and-set on ``running`` alone, wrote
    its value over the other worker's run (which then could not end it: "already complete"). The end of a running
    trial is written only while it is still the run its handle began; the other run stands and ends it."""
    pruner = ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True)
    study = ts.Study(SPACE, storage=shared_storage_url, name="s", pruner=pruner)
    other = ts.Study.load("s", shared_storage_url, pruner=pruner)  # another worker on the same study
    number = _paused_with_checkpoint(study)
    taken: list[ts.Trial] = []
    mine: list[ts.Trial] = []

    def returns_after_a_takeover(trial: ts.Trial) -> float:
        assert trial.is_resumed
        mine.append(trial)
        study.fail_worker(worker_id(), "worker lost", dead=True)  # as Ray's driver does for an actor cut off
        taken.append(other.ask())  # the other worker resumes the held trial
        return 0.75

    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(returns_after_a_takeover, n_trials=0)
    assert [t.number for t in taken] == [number]
    said = [r.getMessage() for r in caplog.records if f"trial {number}" in r.getMessage()]
    assert any(f"trial {number} was taken over by another worker while it ran here" in line for line in said), said
    stored = study.trials[number]
    assert (stored.state, stored.system.n_resumes) == (TrialState.RUNNING, 2), stored  # the other's run stands
    with pytest.raises(ts.TrialFinishedError, match=f"trial {number} was started again by this process \\(pid \\d+"):
        study.tell(mine[0], 0.5)  # its handle, told again by hand
    other.tell(taken[0], 0.25)
    assert (study.trials[number].state, study.trials[number].value) == (TrialState.COMPLETE, 0.25)


def test_a_worker_taken_for_lost_that_reports_after_another_resumed_its_trial_does_not_take_that_run_back(
        shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """As above, but the first worker's objective reports once more before it returns (as ``ts.train`` does each
    validation): the report rewrote the trial whole, with no check, taking the other worker's run back for the
    first (its worker, resume count and reports), whose tell then passed the run check and ended the trial with
    its value; the other run could not end it. A report of a trial that can be held is written only while it is
    still the handle's run: it raises TrialTakenOver (a TrialFinishedError) and the other run stands."""
    from tunesmith.exceptions import TrialTakenOver

    pruner = ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True)
    study = ts.Study(SPACE, storage=shared_storage_url, name="s", pruner=pruner)
    other = ts.Study.load("s", shared_storage_url, pruner=pruner)
    number = _paused_with_checkpoint(study)
    taken: list[ts.Trial] = []
    refused: list[BaseException] = []

    def reports_after_a_takeover(trial: ts.Trial) -> float:
        study.fail_worker(worker_id(), "worker lost", dead=True)
        taken.append(other.ask())  # the other worker resumes the held trial
        try:
            trial.report(0.5, 2)
        except TrialTakenOver as exc:
            refused.append(exc)
            raise
        return 0.75

    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(reports_after_a_takeover, n_trials=0)
    assert [t.number for t in taken] == [number]
    assert refused and f"trial {number} was started again by this process" in str(refused[0]), refused
    said = [r.getMessage() for r in caplog.records]
    assert any(f"trial {number} was taken over by another worker while it ran here" in line for line in said), said
    stored = study.trials[number]
    assert (stored.state, stored.system.n_resumes, sorted(stored.intermediate)) == (TrialState.RUNNING, 2, [1])
    taken[0].report(0.25, 2)
    other.tell(taken[0], 0.25)
    assert (study.trials[number].state, study.trials[number].value) == (TrialState.COMPLETE, 0.25)


def test_a_held_trial_s_lost_run_that_reports_stops_and_leaves_it_held() -> None:
    """A worker taken for lost whose trial was held (not yet resumed) reported again: the report set the trial back
    to running for it, out of the held state. It is refused; the trial stays held for the next ask."""
    from tunesmith.exceptions import TrialTakenOver

    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, reduction_factor=3, curve="best", pause=True))
    number = _paused_with_checkpoint(study)
    resumed = study.ask()
    assert resumed.is_resumed
    study.fail_worker(worker_id(), "worker lost", dead=True)
    with pytest.raises(TrialTakenOver, match=f"trial {number} was held back to paused"):
        resumed.report(0.5, 2)
    stored = study.trials[number]
    assert stored.state is TrialState.PAUSED and stored.system.held == "worker lost" and sorted(stored.intermediate) == [1]


class _PausesTrial0Once(Pruner):
    """Pauses trial 0 at step 1 and promotes it at once; never stops another trial."""

    pauses = True

    def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
        first = trial.number == 0 and trial.system.n_resumes == 0 and trial.last_step == 1
        return Decision.PAUSE if first else Decision.CONTINUE

    def promotable(self, trials, direction) -> list[int]:  # type: ignore[no-untyped-def]
        return [t.number for t in trials if t.state is TrialState.PAUSED]


def _resumed_trial_0_failed_elsewhere(trial: ts.Trial, url: str, folder: str) -> float:
    """Trial 0 pauses at step 1; its resumed run is failed and re-queued by another process (its heartbeat taken
    for lost) and then returns. Every other trial waits for that first, so that units are left to take."""
    if trial.number == 0 and trial.is_resumed:
        ts.Study.load("s", url).fail_trial(0, "heartbeat lost (the test's)", requeue=True)
        Path(folder, "failed").touch()
    elif trial.number != 0:
        end = time.monotonic() + 60
        while not Path(folder, "failed").exists() and time.monotonic() < end:
            time.sleep(0.01)
    for step in range(max(trial.start_step, 1), 3):
        trial.report(float(step), step, checkpoint=f"ck{trial.number}-{step}")
        if trial.should_prune():
            raise ts.TrialPruned()
    return 1.0


@pytest.mark.parametrize("executor", ["inline", "thread", "process"])
def test_a_resumed_trial_failed_and_requeued_elsewhere_gives_back_no_unit_its_resume_never_took(
        executor: str, tmp_path: Path) -> None:
    """A resume takes no unit of n_trials; its run failed and re-queued elsewhere as it ran gave one back all the
    same (as for a new trial, whose copy takes its unit): one new trial more than n_trials."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0, pruner=_PausesTrial0Once())
    objective = functools.partial(_resumed_trial_0_failed_elsewhere, url=url, folder=str(tmp_path))
    study.optimize(objective, n_trials=3, n_jobs=1 if executor == "inline" else 2,
                   executor=None if executor == "inline" else executor)
    first = study.trials[0]
    assert first.state is TrialState.FAILED and first.system.n_resumes == 1 and first.system.requeued_as is not None
    ran = Counter(t.state.value for t in study.trials if t.state is not TrialState.WAITING)
    assert ran == {"failed": 1, "complete": 2}, [(t.number, t.state.value, t.system) for t in study.trials]
