"""The Ray executor: trial_timeout, callbacks on the driver, a lost cluster (private instance, loopback)."""

from __future__ import annotations

import errno
import functools
import os
import shutil
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

from tunesmith import Float, Study, TrialPruned, TrialState

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _actor_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """StudyWorker sets what its actor's process says: a test that runs one in pytest's process
    restores them."""
    from tunesmith.samplers import auto
    from tunesmith.space import space

    monkeypatch.setattr(auto, "SAY_PICK", True)
    monkeypatch.setattr(space, "SAY_DROPPED", True, raising=False)  # raising: the sources before it lack it

try:  # Ray workers cannot import this test module: ship its functions by value
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - the tests skip without Ray
    pass


def _hangs_on_one(trial: Any) -> float:
    if trial.number == 1:
        time.sleep(60)  # only trial_timeout ends it within the test
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_trial_timeout_fails_the_trial_and_replaces_the_actor(ray_local: Any, tmp_path: Path, storage: str) -> None:
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  heartbeat_interval=1.0, requeue_failed=True)
    study.optimize(_hangs_on_one, n_trials=6, n_jobs=2, executor="ray", trial_timeout=2.0)
    hung = study.trials[1]
    assert hung.state is TrialState.FAILED and hung.system.requeued_as is None
    assert hung.error == "trial_timeout: the trial ran longer than 2 s; its Ray worker was stopped"
    assert Counter(t.state.value for t in study.trials) == Counter({"complete": 5, "failed": 1})


def _slow(trial: Any) -> float:
    trial.set_attr("began", time.time())
    time.sleep(2.5)
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_starts_no_trial_after_the_timeout(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """A call queued in an actor before optimize's timeout started its trial after it (a whole
    trial late: with trials of an hour, optimize overran its timeout by an hour)."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 't.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="t")
    study.optimize(_slow, n_trials=10, executor="ray", resources_per_trial={"cpu": 2}, timeout=2.0)
    # a trial runs 2.5 s, longer than the timeout: an actor's second trial could only start after it
    began = Counter(t.worker for t in study.trials if "began" in t.attrs)
    assert all(n == 1 for n in began.values()), began  # none at all when the actor started after the timeout
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.WAITING}


def _raises_on_three(trial: Any) -> float:
    time.sleep(0.2)
    if trial.number == 3:
        raise KeyError("not caught")
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_raises_the_uncaught_exception_after_the_running_trials_end(
    ray_local: Any, tmp_path: Path, storage: str
) -> None:
    """Ray raised RayTaskError (SQL) or a RuntimeError (memory), not the objective's exception as
    the other executors do, and left the other actors' trials running for good."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'u.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="u")
    with pytest.raises(KeyError, match="not caught") as info:
        study.optimize(_raises_on_three, n_trials=20, n_jobs=2, executor="ray", catch=(ValueError,))
    assert type(info.value) is KeyError
    states = Counter(t.state.value for t in study.trials)
    assert states["failed"] == 1 and states["complete"] >= 3 and set(states) == {"complete", "failed"}, states


def _diverges(trial: Any) -> float:
    import torch

    from tunesmith.train.hyperloop import OuterStep, TuneDiverged

    raise TuneDiverged("the training loss became inf at step 7", OuterStep(0, {"l2": torch.tensor(0.5)}, 1.0, 2.0, 7))


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_raises_a_tune_divergence_with_its_step(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """tunesmith.train's TuneDiverged, which holds the outer step (tensors): the driver could not unpickle
    it (it wanted the step), so the run failed with Ray's deserialization error instead."""
    pytest.importorskip("torch")
    from tunesmith.train.hyperloop import TuneDiverged

    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'd.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="d")
    with pytest.raises(TuneDiverged, match="the training loss became inf at step 7") as info:
        study.optimize(_diverges, n_trials=2, executor="ray", catch=())
    assert info.value.step.train_steps == 7 and float(info.value.step.hparams["l2"]) == 0.5


def _stops_on_two(trial: Any) -> float:
    time.sleep(0.3)
    if trial.number == 2:
        trial.study.stop()  # as an integration does for a setting every trial would fail alike
    return float(trial.params["x"])


def _stops_on_two_others_wait(gate: str) -> Callable[[Any], float]:
    """:func:`_stops_on_two` whose trials after 2 wait (up to 240 s) until trial 2 has stopped the study (it
    writes ``gate``): under load one actor's first trial, 2, was slow, and the other actor ran trials 4 to 7
    before its stop came (8 trials, where the test asked for fewer)."""

    def objective(trial: Any) -> float:
        if trial.number > 2:
            end = time.monotonic() + BOTH_RUNNING_WITHIN
            while not os.path.exists(gate) and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(2.0)  # the driver takes trial 2's answer (and its stop) first
        value = _stops_on_two(trial)
        if trial.number == 2:
            Path(gate).touch()
        return value

    return objective


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_study_stop_from_the_objective_in_an_actor_stops_the_run(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """An objective's study.stop() in an actor: in memory the actor's trial has only the study's name,
    so it raised AttributeError ('_Named' object has no attribute 'stop') and failed the trial in
    place of its own error; with a database it set the flag of the actor's copy of the study,
    which nothing read. Either way all 20 trials ran. The driver now stops the run, as for a callback.
    Until trial 2 stops it only trials 0 and 1 end: each of the two actors holds two calls, and one more
    for each trial that ended, so at most 6 trials were asked however slowly either actor starts."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="p")
    study.optimize(_stops_on_two_others_wait(str(tmp_path / "stopped")), n_trials=20, n_jobs=2, executor="ray",
                   resources_per_trial={"cpu": 1})
    assert len(study.trials) <= 6 and study.trials[2].state is TrialState.COMPLETE, [t.error for t in study.trials]
    # in memory the trial asked for a call queued behind the stopping one goes back to the queue, unrun
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.WAITING}


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_an_actor_runs_no_trial_after_its_objective_stopped_the_study(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """The call queued behind the trial whose objective called study.stop() ran in the same actor:
    one trial after the stop. It runs nothing now (in memory its trial goes back to the queue)."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="q")
    study.optimize(_stops_on_two, n_trials=10, n_jobs=1, executor="ray", resources_per_trial={"cpu": 2})
    assert [t.number for t in study.trials if t.state is not TrialState.WAITING] == [0, 1, 2]
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.WAITING}


def test_study_stop_from_an_objective_whose_trial_ended_elsewhere_stops_the_run(ray_local: Any, tmp_path: Path) -> None:
    """An objective's study.stop() in an actor: the call queued behind that trial in the same actor
    still ran a trial, and when the stopping trial had been failed elsewhere meanwhile (no record)
    the driver gave the actor one more before it stopped the run. One actor (2 CPUs a trial) runs
    no trial after its stop now."""
    import test_execution_callbacks
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(test_execution_callbacks)  # the actors cannot import it
    _lost_and_stops = test_execution_callbacks._lost_and_stops
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'l.db'}", name="l")
    study.optimize(_lost_and_stops, n_trials=6, n_jobs=1, executor="ray", resources_per_trial={"cpu": 2})
    assert [(t.number, t.state) for t in study.trials] == [(0, TrialState.FAILED)]


def _objective(trial: Any) -> float:
    time.sleep(0.02)
    return float(trial.params["x"])


def _study(storage: str, tmp_path: Path) -> Study:
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    return Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="c")


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_callbacks_run_in_the_driver_and_stop_it(ray_local: Any, tmp_path: Path, storage: str) -> None:
    from test_execution_callbacks import check_driver_side

    study = _study(storage, tmp_path)
    seen: list[Any] = []
    study.optimize(_objective, n_trials=10, n_jobs=2, executor="ray",
                   callbacks=[lambda s, r: seen.append((os.getpid(), threading.get_ident(), r))])
    check_driver_side(study, seen, 10)

    calls: list[int] = []

    def third_raises(s: Study, r: Any) -> None:
        calls.append(r.number)
        if len(calls) == 3:
            raise ValueError("callback says no")

    with pytest.raises(ValueError, match="callback says no"):
        study.optimize(_objective, n_trials=20, n_jobs=2, executor="ray", callbacks=[third_raises])
    states = [t.state for t in study.trials]
    assert len(calls) == 3 and TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert 13 <= len(states) <= 13 + 4  # two actors, two calls each in flight

    def stop_at_three(s: Study, r: Any) -> None:
        calls.append(r.number)
        if len(calls) == 6:
            s.stop()

    before = len(study.trials)
    study.optimize(_objective, n_trials=20, n_jobs=2, executor="ray", callbacks=[stop_at_three])
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert before + 3 <= len(states) <= before + 3 + 4 and len(calls) == len(states) - before + 3


def _began(trial: Any) -> float:
    trial.set_attr("began", time.time())
    time.sleep(0.3 if trial.number == 0 else 1.5)  # trial 0 ends (and stops the study) while another runs
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_starts_no_trial_after_a_callback_stops_the_study(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """After study.stop() in a callback, the call each actor held queued behind its running one
    still started a trial, a whole trial after the stop; with callbacks an actor holds one call."""
    study = _study(storage, tmp_path)
    stopped: list[float] = []

    def stop_at_the_first(s: Study, r: Any) -> None:
        if not stopped:
            stopped.append(time.time())
            s.stop()

    study.optimize(_began, n_trials=20, n_jobs=2, executor="ray", callbacks=[stop_at_the_first])
    # each actor ran the one call it held, none queued behind it (before: a second, after the stop)
    began = Counter(t.worker for t in study.trials if "began" in t.attrs)
    assert began and all(n == 1 for n in began.values()), began
    assert {t.state for t in study.trials} == {TrialState.COMPLETE} and 1 <= len(study.trials) <= 2


LOST_DRIVER = """
import os, sys, time
import tunesmith as ts
from tunesmith.execution.ray import ClusterLost, RayExecutor

def objective(trial):
    time.sleep(0.3)
    return trial.params["x"]

how = sys.argv[4]
beats = {"heartbeat_interval": 1, "grace_period": 2} if how == "driver killed in the wait" else {}
study = ts.Study({"x": ts.Float(0, 1)}, storage=sys.argv[1], name="lost", **beats)
if how in ("ctrl-c in the sweep", "driver killed in the wait"):  # as the driver waits for the actors' processes
    import signal
    from tunesmith.execution.ray import _Driver
    outlived = _Driver._outlived

    def interrupted(self, fail):
        print("WAITING", flush=True)
        os.kill(os.getpid(), signal.SIGINT if how == "ctrl-c in the sweep" else signal.SIGKILL)
        out = outlived(self, fail)
        print("SWEPT", flush=True)
        return out

    _Driver._outlived = interrupted
ex = RayExecutor(n_workers=2, lost_after=float(sys.argv[3]), ray_init={
    "_temp_dir": sys.argv[2], "num_cpus": 2, "log_to_driver": False, "_node_ip_address": "127.0.0.1"})


def optimize():
    try:
        study.optimize(objective, n_trials=10_000, executor=ex)
        print("RETURNED", flush=True)
    except ClusterLost as exc:
        print("LOST", exc, flush=True)


if how == "head lost, optimize in a thread":  # as a web server's or a notebook's pool runs it
    import threading
    thread = threading.Thread(target=optimize)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    print("MAIN THREAD GOES ON", flush=True)
else:
    optimize()
"""


def _homed_under(temp: Path) -> list[str]:
    """The processes still running (zombies aside) whose HOME is in ``temp``: every Ray process of the instance."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and f"HOME={temp}".encode() in (d / "environ").read_bytes() \
                    and (d / "stat").read_bytes().rpartition(b")")[2].split()[:1] != [b"Z"]:
                out.append(f"{d.name} {(d / 'cmdline').read_bytes()[:60]!r}")
        except OSError:
            continue
    return out


def _raylets(temp: Path, name: bytes = b"/raylet") -> list[int]:
    from ray_util import pids_under

    out = []
    for pid in pids_under(temp):
        try:
            exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if exe.endswith(name):
            out.append(pid)
    return out


# "ctrl-c at once": the actors' processes outlive their raylet by about a second, and one may claim a
# trial after optimize failed the running ones (before: left running, in about 1 run of 9 under load)
# "ctrl-c in the sweep": a Ctrl-C as the lost cluster's trials were failed cut the wait for the actors'
# processes short, and the sweep after it: the trial one of them claimed meanwhile stayed running;
# "driver killed in the wait": Ctrl-C at once, the driver SIGKILLed as it waits: the study's heartbeat
# fails what was left running (once the test has killed the actors: see _homed_under)
# "head lost": the GCS process SIGKILLed (the raylet and actors alive): Ray's calls waited on it, and Ray ended the
# driver process after its own 60 s, with no ClusterLost and a trial left running
@pytest.mark.parametrize("how", ["detected", "ctrl-c", "ctrl-c at once", "ctrl-c in the sweep",
                                 "driver killed in the wait", "head lost", "head lost, optimize in a thread"])
def test_ray_losing_the_only_node_fails_the_trials_and_ends_optimize(
    tmp_path: Path, subprocess_env: dict[str, str], how: str
) -> None:
    from ray_util import FAST_NODE_DEATH, RAY_ENV, kill_all_under, quiet_home, short_tmp

    temp = short_tmp("tsl")
    url = f"sqlite:///{tmp_path / 'lost.db'}"
    # the Ctrl-C cases' signal comes while Ray still counts the node alive (its calls unanswered), as a user
    # with Ray's default health checks meets it: with FAST_NODE_DEATH its GCS said the node dead first (at
    # about 3 s, the "ctrl-c" case's wait), the driver replaced both actors, and the Ctrl-C met those instead
    verdict = how in ("detected", "ctrl-c in the sweep") or how.startswith("head lost")  # they wait for Ray's word
    env = {**subprocess_env, **RAY_ENV, **(FAST_NODE_DEATH if verdict else {}), "HOME": quiet_home(temp)}
    lost_after = "3" if verdict else "600"
    driver = subprocess.Popen([sys.executable, "-c", LOST_DRIVER, url, str(temp), lost_after, how], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        study = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.5)
            try:
                study = Study.load("lost", url)
            except Exception:  # noqa: BLE001 - not created yet
                continue
            if len(study.trials_in("complete")) >= 3:
                break
        assert study is not None and driver.poll() is None, "the driver did not get going"
        for pid in _raylets(temp, b"/gcs_server" if how.startswith("head lost") else b"/raylet"):
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        if how in ("ctrl-c", "ctrl-c at once", "driver killed in the wait"):
            time.sleep(3 if how == "ctrl-c" else 0)
            driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=150)  # before the fix: it never returned
        ended = time.monotonic()
    finally:
        if driver.poll() is None:
            driver.kill()
        kill_all_under(temp)
        left = _homed_under(temp)  # before: the actors (their command line renamed by Ray) were not killed, and
        shutil.rmtree(temp, ignore_errors=True)  # one still beating kept its trial running past the reap below
    assert not left, left
    if how == "ctrl-c in the sweep":  # the Ctrl-C comes once the trials are failed (before: it cut the sweep)
        assert "SWEPT" in out and "KeyboardInterrupt" in out, out[-3000:]
    elif how == "driver killed in the wait":
        assert driver.returncode == -9 and "WAITING" in out and "SWEPT" not in out, out[-3000:]
        time.sleep(2.5)  # past the grace period: every heartbeat of the study is older
        Study.load("lost", url, heartbeat_interval=1, grace_period=2)._heartbeat.reap(force=True)
    elif how == "detected":
        assert "LOST the Ray cluster is lost: for 3 s no node had the resources of one trial" in out, out[-3000:]
        assert "Restart the cluster" in out
    elif how.startswith("head lost"):  # before: no LOST, the process ended by Ray after 60 s
        assert "LOST the Ray cluster is lost: its head node (GCS at 127.0.0.1:" in out, out[-3000:]
        assert driver.returncode == 0 and ended - killed < 45, (ended - killed, out[-3000:])
        # in a thread, before: the watch's interrupt hit the main thread (a KeyboardInterrupt in its join),
        # the optimize of the thread went on until Ray ended the process
        assert "KeyboardInterrupt" not in out and ("MAIN THREAD GOES ON" in out) == ("thread" in how), out[-3000:]
    else:
        assert "RETURNED" in out and "interrupted" in out, out[-3000:]
    if not verdict:  # no actor was found dead before the Ctrl-C: Ray had not said the node was lost yet
        assert "ActorDiedError" not in out, out[-3000:]
    states = Counter(t.state.value for t in Study.load("lost", url).trials)
    assert states["running"] == 0 and states["complete"] >= 3, states


@pytest.mark.parametrize("where", ["main thread", "another thread", "own SIGINT handler"])
def test_the_gcs_watch_interrupts_only_a_main_thread_under_python_s_own_sigint_handler(where: str) -> None:
    """GcsWatch, watching a real port nothing listens on, finds it lost after a second. It interrupts the main
    thread only where optimize runs there with Python's own SIGINT handler. Before, it interrupted it
    always: an optimize run by another thread (a web server's, a notebook's pool) raised KeyboardInterrupt in the
    main thread, which ran something else, and a SIGINT handler of the user's (a server's graceful stop) was
    called as for a Ctrl-C. There the driver's loop reads ``lost`` (the "head lost, optimize in a thread" case)."""
    import socket

    from tunesmith.execution.ray import GcsWatch

    with socket.socket() as sock:  # a port of this machine, closed: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        address = sock.getsockname()
    handled: list[int] = []
    before = signal.signal(signal.SIGINT, (lambda signum, frame: handled.append(signum))
                           if where == "own SIGINT handler" else signal.default_int_handler)
    made: list[GcsWatch] = []
    interrupted = False
    try:
        if where == "another thread":
            thread = threading.Thread(target=lambda: made.append(GcsWatch.watching(address, 1.0)))
            thread.start()
            thread.join()
        else:
            made.append(GcsWatch.watching(address, 1.0))
        end = time.monotonic() + 20
        while made[0].lost is None and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)  # an interrupt is raised at the main thread's next instruction
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if made:
            made[0].stop()
        signal.signal(signal.SIGINT, before)
    assert made[0].lost is not None and "did not answer for 1 s (Connection refused)" in made[0].lost, made[0].lost
    assert (interrupted, handled) == (where == "main thread", [])


@pytest.mark.parametrize(("ray_limit", "lost_after", "after"),
                         [("60", 60.0, 30.0), ("60", 3.0, 3.0), ("600", 60.0, 60.0), ("30", 60.0, 15.0),
                          ("10", 60.0, 5.0), ("10", 2.0, 2.0), ("1", 60.0, 1.0)])
def test_the_gcs_watch_counts_the_head_node_lost_well_within_ray_s_own_limit(
        monkeypatch: pytest.MonkeyPatch, ray_limit: str, lost_after: float, after: float) -> None:
    """How long GcsWatch waits before it ends a study: ``lost_after``, at most 30 s before Ray's own limit, and at
    most half of that limit where it is short. Before: under a limit of 30 s or less it waited 1 s, so a
    head node away for 2 s, which Ray outlives (a GCS restarted), ended a healthy study."""
    from tunesmith.execution.ray import gcs_after

    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", ray_limit)
    assert gcs_after(lost_after) == after


@pytest.mark.parametrize("value", ["abc", "", "1.5", "60 ", "1e3", "-", "inf", "nan"])
def test_a_malformed_ray_gcs_limit_is_refused_naming_the_variable_and_the_form(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A ``RAY_gcs_rpc_server_reconnect_timeout_s`` Ray cannot read is refused before Ray starts, naming the
    variable, its value and the form it takes. Before: a bare "could not convert string to float: 'abc'" once Ray
    had started; an empty value was taken for 60 s and a decimal as it was, though Ray cannot load with either."""
    from tunesmith.execution.ray import RayExecutor, gcs_after

    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", value)
    want = f"RAY_gcs_rpc_server_reconnect_timeout_s={value!r}: .* whole number of seconds, such as 60"
    with pytest.raises(ValueError, match=want):
        gcs_after(60.0)
    with pytest.raises(ValueError, match=want):
        Study({"x": Float(0, 1)}).optimize(lambda t: 0.0, n_trials=1, executor=RayExecutor(n_workers=1))


@pytest.mark.parametrize(("value", "limit", "after"),
                         [(" 60", 60.0, 30.0), ("+60", 60.0, 30.0), ("\t600", 600.0, 60.0), ("0", 0.0, 1.0),
                          ("-1", 2.0**32 - 1, 60.0), ("-5", 2.0**32 - 5, 60.0)])
def test_a_ray_gcs_limit_ray_reads_is_taken(
        monkeypatch: pytest.MonkeyPatch, value: str, limit: float, after: float) -> None:
    """The forms Ray reads (a space before the number, a plus sign, 0: Ray ends the process as soon as it loses the
    head node; a negative number, which Ray reads as an unsigned one: -1 is over a century) are taken as Ray takes
    them. Before: 0 and negative numbers were refused."""
    from tunesmith.execution.ray import gcs_after, ray_gcs_limit

    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", value)
    assert (ray_gcs_limit(), gcs_after(60.0)) == (limit, after)


@pytest.mark.parametrize("entry", ["optimize", "cli"])
def test_a_malformed_ray_gcs_limit_is_refused_before_ray_is_imported(
        tmp_path: Path, subprocess_env: dict[str, str], entry: str) -> None:
    """In a process that has not imported Ray yet (``optimize`` with a RayExecutor; ``tunesmith run --executor ray``
    of a script's objective, which ships it by value), a value Ray cannot read is refused with the ValueError.
    Before: the check ran after ``import ray`` (the command line's, none), which ended the process with a
    segmentation fault (exit status -11) and no word of why."""
    env = {**subprocess_env, "RAY_gcs_rpc_server_reconnect_timeout_s": "abc"}
    if entry == "optimize":
        script = ("import sys, tunesmith as ts\n"
                  "from tunesmith.execution.ray import RayExecutor\n"
                  "try:\n"
                  "    ts.Study({'x': ts.Float(0, 1)}).optimize(lambda t: 0.0, n_trials=1,\n"
                  "                                              executor=RayExecutor(n_workers=1))\n"
                  "except ValueError as exc:\n"
                  "    print('REFUSED', exc, 'ray' in sys.modules)\n")
        command = [sys.executable, "-c", script]
    else:
        (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.suggest_float('x', 0, 1)\n")
        (tmp_path / "s.yaml").write_text(f"name: s\nobjective: obj.py:objective\nstorage: sqlite:///{tmp_path}/s.db\n")
        command = [sys.executable, "-m", "tunesmith", "run", str(tmp_path / "s.yaml"), "--executor", "ray",
                   "--n-trials", "1", "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == (0 if entry == "optimize" else 2), (done.returncode, said[-2000:])
    assert "RAY_gcs_rpc_server_reconnect_timeout_s='abc': Ray's limit" in said, said[-2000:]
    assert entry == "cli" or "False" in done.stdout, done.stdout


def _run_own_instance(script: str, prefix: str, subprocess_env: dict[str, str], *, timeout: float
                      ) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (its first argument: a temp dir for the Ray instance it starts) in a child Python, then kill
    every process of that instance and remove the dir."""
    from ray_util import RAY_ENV, kill_all_under, quiet_home, short_tmp

    temp = short_tmp(prefix)
    env = {**subprocess_env, **RAY_ENV, "HOME": quiet_home(temp)}
    try:
        return subprocess.run([sys.executable, "-c", script, str(temp)], env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        kill_all_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


GCS_GONE_DRIVER = r"""
import os, sys, time
from pathlib import Path
import ray
import tunesmith as ts
from tunesmith.execution.ray import ClusterLost, RayExecutor

ray.init(address="local", num_cpus=2, _temp_dir=sys.argv[1], _node_ip_address="127.0.0.1", include_dashboard=False,
         log_to_driver=False)  # as a notebook does: the user's Ray, on which optimize is called again
study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
study.optimize(lambda t: t.params["x"], n_trials=2, executor=RayExecutor(n_workers=1, lost_after=3))
for proc in Path("/proc").iterdir():  # this instance's GCS
    try:
        if proc.name.isdigit() and (proc / "cmdline").read_bytes().split(b"\0")[0].endswith(b"/gcs_server") \
                and sys.argv[1].encode() in (proc / "cmdline").read_bytes():
            os.kill(int(proc.name), 9)
    except OSError:
        pass
killed = time.monotonic()
try:
    study.optimize(lambda t: t.params["x"], n_trials=2, executor=RayExecutor(n_workers=1, lost_after=3))
    print("RETURNED", flush=True)
except ClusterLost as exc:
    print(f"LOST after {time.monotonic() - killed:.0f} s:", exc, flush=True)
ray.shutdown()
print("SHUT DOWN", len(study.trials), flush=True)
"""


@pytest.mark.timeout(240)
def test_an_optimize_called_once_the_head_node_is_lost_ends_within_the_watch_s_bound(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """optimize called again on the user's Ray once its head node (GCS) is gone ends with ClusterLost within the
    watch's bound (``lost_after``, 3 s here), and the process lives on. Before: its first call to the GCS
    (``ray.nodes()``, as it counts the actors the cluster fits) waited on it until Ray ended the process at its own
    60 s ("Failed to connect to GCS within 60 seconds ... The program will terminate", exit status 1)."""
    done = _run_own_instance(GCS_GONE_DRIVER, "tsg", subprocess_env, timeout=200)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "SHUT DOWN 2" in out, out[-3000:]
    lost = [line for line in out.splitlines() if line.startswith("LOST after ")]
    assert lost and "its head node (GCS at 127.0.0.1:" in lost[0] and "did not answer for 3 s" in lost[0], out[-3000:]
    assert int(lost[0].split()[2]) <= 20, lost[0]


def test_the_job_table_is_read_once_for_the_notes_keys_it_has_looked_up(
        ray_local: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep of dead drivers' no-pruner notes reads the GCS's job table only for a key whose job this process
    has not looked up lately. Before: every optimize call read it while any key was there (a running
    driver's, or one naming no job)."""
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    from tunesmith.execution import ray as ray_ex
    from tunesmith.execution.ray_worker import NOTES

    client = ray_ex._gcs_client()
    reads: list[int] = []

    class Counting:  # the real client, its job-table reads counted
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def get_all_job_info(self, **kwargs: Any) -> Any:
            reads.append(1)
            return client.get_all_job_info(**kwargs)

    monkeypatch.setattr(ray_ex, "_gcs_client", Counting)
    monkeypatch.setattr(ray_ex, "_LIVE_JOBS", {})
    live = f"no-pruner-{ray_local.get_runtime_context().get_job_id()}-00112233445566ff"
    _internal_kv_put(live, b"1", namespace=NOTES)
    try:
        study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
        for _ in range(3):
            study.optimize(lambda t: 0.0, n_trials=1, executor="ray")
        assert len(reads) == 1, reads  # before: 3, one per optimize call
        assert ray_ex.sweep_notes() == 0 and len(reads) == 1
        monkeypatch.setattr(ray_ex, "JOBS_RECHECK", 0.0)  # a job looked up long ago is looked up again
        assert ray_ex.sweep_notes() == 0 and len(reads) == 2
    finally:
        _internal_kv_del(live, namespace=NOTES)


def test_a_lost_cluster_s_message_counts_held_trials_apart_from_failed_ones(tmp_path: Path) -> None:
    """What ClusterLost's message says of the lost actors' running trials (as the lost-actor line does): one
    that reported with a checkpoint under a pruner that pauses is held to go on, not failed (the message said
    "2 running trial(s) failed"), and in memory the answers that had come back are recorded as finished. The
    records are a real SQLite study's, ended as the driver ends them (fail_worker with dead=True)."""
    from tunesmith.execution.ray import ended_line
    from tunesmith.pruners import ASHA
    from tunesmith.storage import worker_id

    study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'c.db'}", name="c", sampler="random",
                  seed=0, pruner=ASHA(pause=True, min_resource=1, max_resource=9))
    reported, _ = study.ask(), study.ask()
    reported.report(0.5, 1, checkpoint=str(tmp_path / "ck"))
    ended = study.fail_worker(worker_id(), "ray cluster lost: the test's", dead=True)
    assert sorted(t.state.value for t in ended) == ["failed", "paused"], ended
    assert ended_line(ended) == "1 running trial(s) failed, 1 paused to go on from a checkpoint"
    assert ended_line(ended[:0], 2) == "0 running trial(s) failed, 2 that had just ended recorded with their results"


def _asks_the_pruner(trial: Any) -> float:
    trial.report(float(trial.params["x"]), 1)
    assert not trial.should_prune()
    return float(trial.params["x"])


def test_ray_in_memory_warns_that_its_pruner_stops_nothing(ray_local: Any, caplog: pytest.LogCaptureFixture) -> None:
    # before: silent; trials ran in full, as if the pruner had found nothing to stop
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, pruner="asha")
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_asks_the_pruner, n_trials=2, n_jobs=1, executor="ray")
    assert "its pruner 'asha' stops no trial under Ray with an in-memory study" in caplog.text
    assert "storage='sqlite:///study.db'" in caplog.text
    assert [t.intermediate for t in study.trials] == [{1: t.value} for t in study.trials]


@pytest.mark.parametrize("given", ["flag", "RAY_ADDRESS"])
def test_a_ray_address_where_nothing_listens_is_refused_at_once(tmp_path: Path, subprocess_env: dict[str, str],
                                                                given: str) -> None:
    """Ray itself retried such an address for minutes (`tunesmith run --executor ray --address
    127.0.0.1:1` still hung after 2 minutes), printing only its connection warnings. In its own
    process: a Ray already initialized here (another test's) is used as is, address or not.
    RAY_ADDRESS (which `ray job submit` sets) was ignored: a private instance started instead."""
    pytest.importorskip("ray")
    from pg import free_port

    port = free_port()  # closed again: nothing listens there
    (tmp_path / "obj.py").write_text("def f(trial):\n    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text(f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'r.db'}\n"
                                     "space: {x: {type: float, low: 0, high: 1}}\n")
    flag = ["--address", f"127.0.0.1:{port}"] if given == "flag" else []
    env = subprocess_env if given == "flag" else {**subprocess_env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    done = subprocess.run([sys.executable, "-m", "tunesmith", "run", str(tmp_path / "s.yaml"), "--n-trials", "1",
                           "--executor", "ray", *flag, "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    # said by the connection check before Ray is asked (Ray itself retried for minutes: the timeout above)
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in done.stderr


def test_a_malformed_ray_address_is_refused_naming_the_argument_and_the_form(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray said only "Invalid address format: x" (from ray.init, once the run started)."""
    from tunesmith.execution.ray import RayExecutor, env_address

    for address in ("x", "10.0.0.5", "ray://head", "10.0.0.5:70000", "", "auto", "10.0.0.5:²", "head:６３７９"):
        with pytest.raises(ValueError, match=r"^address must be a Ray cluster's address: HOST:PORT of its head node"):
            RayExecutor(address=address)
    study = Study({"x": Float(0, 1)}, sampler="random")
    with pytest.raises(ValueError, match=r"^ray_address must be a Ray cluster's address: .*got 'x'"):
        study.optimize(lambda t: t.params["x"], n_trials=1, executor="ray", ray_address="x")
    monkeypatch.setenv("RAY_ADDRESS", "x")
    with pytest.raises(ValueError, match=r"^RAY_ADDRESS must be a Ray cluster's address"):
        env_address()
    assert study.trials == []
    for address in ("10.0.0.5:6379", "head-node:6379", "ray://head:10001", "[::1]:6379"):
        assert RayExecutor(address=address).address == address


def test_an_actor_opens_the_storage_with_the_drivers_retry_window(tmp_path: Path) -> None:
    """StudyWorker (the class a Ray actor runs) opened the study by URL alone, so a storage made
    with retry_window=120 gave its actors the default 30 s: an outage the driver rode out
    stopped them."""
    from tunesmith import SQLStorage
    from tunesmith.execution.ray_worker import StudySpec, StudyWorker

    storage = SQLStorage(f"sqlite:///{tmp_path / 'w.db'}", retry_window=120.0, busy_timeout=7.0)
    study = Study({"x": Float(0, 1)}, storage=storage, name="w", sampler="random")
    worker = StudyWorker(StudySpec.of(study), lambda t: t.params["x"], (), 0)
    opened = worker.run.study.storage
    assert isinstance(opened, SQLStorage) and opened is not storage
    assert (opened.retry_window, opened.busy_timeout) == (120.0, 7.0)
    assert worker.run_one().record is not None  # and it runs trials of that study
    assert len(study.trials) == 1


def test_an_actor_judges_lost_trials_with_its_driver_s_heartbeat_settings(tmp_path: Path) -> None:
    """StudyWorker (the class a Ray actor runs) opened the study by name with the stored heartbeat settings,
    which the run that made it wrote: a driver given ``requeue_failed=True`` had its actors fail a lost trial
    with no copy (process and thread workers share the driver's study and re-queue it)."""
    from tunesmith.execution.ray_worker import StudySpec, StudyWorker

    url = f"sqlite:///{tmp_path / 'w.db'}"
    Study({"x": Float(0, 1)}, storage=url, name="w", sampler="random", heartbeat_interval=1, grace_period=2)
    driver = Study(storage=url, name="w", heartbeat_interval=1, grace_period=2, requeue_failed=True)
    st, sid = driver.storage, driver._study_id
    lost = st.create_trial(sid, params={"x": 0.5}, worker="another-machine:12345")
    assert lost is not None
    st.heartbeat(sid, [lost.number], st.clock() - 60)
    worker = StudyWorker(StudySpec.of(driver), lambda t: t.params["x"], (), 0)
    assert worker.run_one().record is not None  # its ask judged the trial lost, then ran its copy
    failed = driver.trials[lost.number]
    assert failed.state is TrialState.FAILED and failed.system.requeued_as is not None, failed
    assert worker.run.study.heartbeat_config == driver.heartbeat_config
    assert driver.trials[failed.system.requeued_as].state is TrialState.COMPLETE


def test_in_memory_mode_the_step_a_checkpoint_holds_comes_back_with_it(tmp_path: Path) -> None:
    """An in-memory study's actor (EvalWorker) sent back the checkpoint its trial recorded but not the step it
    holds: the driver wrote the record it had sent, so ``system.checkpoint_step`` stayed that of the run before
    (None for a new trial), and a later run held on a full disk named no step, or an older one."""
    from tunesmith.execution.ray_worker import EvalWorker, StudySpec, apply_outcome

    def reports(trial: Any) -> float:
        trial.report(0.5, 0, checkpoint=str(tmp_path / "a"))
        trial.report(0.4, 1)
        trial.set_attr("checkpoint", str(tmp_path / "b"), step=2)  # saved before its step's report
        trial.report(0.3, 2)
        return 0.3

    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    out = EvalWorker(StudySpec.of(study), reports, (), 0).evaluate(study.ask().record)
    record = apply_outcome(study, out)
    assert record.attrs["checkpoint"] == str(tmp_path / "b")
    assert record.system.checkpoint_step == study.trials[0].system.checkpoint_step == 2


STRAY_ACTOR = """
import os, sys, time
import tunesmith as ts
from tunesmith.execution.ray_worker import StudySpec, StudyWorker
url, ready, answer = sys.argv[1:4]
study = ts.Study.load("stray", url)
raylet = os.getpid()
if os.fork() == 0:  # the actor, started by this process as a raylet starts it
    worker = StudyWorker(StudySpec.of(study), lambda t: t.params["x"], (), 0)
    ok = worker.run_one().record is not None  # while its raylet runs: a trial
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while os.getppid() == raylet and time.monotonic() < deadline:  # until its raylet is gone
        time.sleep(0.01)
    out = worker.run_one()  # a call that was queued to it
    last = worker.run_only("waiting")  # the driver's last round: "none waiting" would end it with one left
    with open(answer + ".part", "w") as f:
        f.write(f"{ok} {out.late} {out.record is not None} {last.record is not None} {last.late}")
    os.rename(answer + ".part", answer)
    os._exit(0)
while not os.path.exists(ready):
    time.sleep(0.01)
os._exit(0)  # the raylet dies; its actor's process outlives it
"""


def test_an_actor_that_outlives_its_raylet_starts_no_queued_call(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """An actor's process that outlived its node's raylet (on another machine: the driver cannot wait for it)
    still ran the calls queued to it: it claimed a trial after the driver had failed that node's trials,
    left running until the study's heartbeat failed it. Real processes: the actor's parent exits."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, storage=url, name="stray", sampler="random")
    study.enqueue({"x": 0.5})
    study.enqueue({"x": 0.25})
    answer = tmp_path / "answer"
    subprocess.run([sys.executable, "-c", STRAY_ACTOR, url, str(tmp_path / "ready"), str(answer)], check=True,
                   env=subprocess_env, timeout=120)
    deadline = time.monotonic() + 60
    while not answer.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # before: "True False True False" (it ran the trial), then "... False False" (run_only answered "none")
    assert answer.read_text() == "True True False False True"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.WAITING]


def test_in_memory_a_lost_actors_copy_is_failed_not_copied_again() -> None:
    """fail_or_unqueue (what the driver does for a lost actor, in-memory mode) re-queued a copy
    of a copy each time its actor died, forever; now the first copy is the last."""
    from tunesmith.execution.ray_worker import fail_or_unqueue

    study = Study({"x": Float(0, 1)}, sampler="random", heartbeat_interval=5, requeue_failed=True)
    first = study.ask()
    lost = fail_or_unqueue(study, first.number, "ray worker lost", requeue=True, started=True)
    assert lost is not None and lost.system.requeued_as is not None
    copy = study.ask()
    assert copy.number == lost.system.requeued_as
    again = fail_or_unqueue(study, copy.number, "ray worker lost", requeue=True, started=True)
    assert again is not None and again.state is TrialState.FAILED and again.system.requeued_as is None
    assert len(study.trials) == 2


#: seconds the SIGTERM tests wait for both actors to run a trial (a worker took over 30 s to start at load 30)
BOTH_RUNNING_WITHIN = 240


def _sleeps(trial: Any) -> float:
    time.sleep(600)  # running until the SIGTERM's kill ends it, however late the other actor starts
    return float(trial.params["x"])


def _terminate_once_running(name: str, url: str) -> None:
    """A SIGTERM to this process once two trials of study ``name`` run (or at the deadline), unless optimize has
    ended meanwhile (it ran trials, none runs): the signal would end a later test's xdist worker."""
    deadline = time.monotonic() + BOTH_RUNNING_WITHIN
    while time.monotonic() < deadline:
        if sum(t.state is TrialState.RUNNING for t in Study.load(name, url).trials) == 2:
            break
        time.sleep(0.2)
    trials = Study.load(name, url).trials
    if not trials or any(t.state is TrialState.RUNNING for t in trials):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_to_the_command_records_sigterm_under_ray(ray_local: Any, tmp_path: Path) -> None:
    """A SIGTERM to `tunesmith run` under Ray recorded the trials it stopped as "interrupted
    (KeyboardInterrupt)": Ray's wait turns the command's Terminated into a KeyboardInterrupt."""
    from tunesmith.cli.launch import optimize_interruptibly

    url = f"sqlite:///{tmp_path / 'term.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="term")

    threading.Thread(target=_terminate_once_running, args=("term", url), daemon=True).start()
    code = optimize_interruptibly(study, _sleeps, {"n_trials": 4, "n_jobs": 2, "executor": "ray"})
    assert code == 128 + signal.SIGTERM
    errors = [t.error for t in Study.load("term", url).trials]
    assert errors and set(errors) == {"interrupted (SIGTERM)"}, errors


def test_a_second_sigterm_under_ray_waits_until_the_trials_are_recorded(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second SIGTERM (or Ctrl-C) while the driver failed the stopped actors' trials was raised in
    the middle of those writes: the trials after it stayed running for good."""
    from tunesmith.cli.launch import optimize_interruptibly

    url = f"sqlite:///{tmp_path / 'term2.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="term2")
    storage, update = study._storage, study._storage.update_trial
    sent: list[int] = []

    def update_trial(study_id: int, record: Any, **kw: Any) -> bool:
        if (record.error or "").startswith("interrupted"):  # another SIGTERM as each is written
            sent.append(record.number)
            os.kill(os.getpid(), signal.SIGTERM)
        return update(study_id, record, **kw)

    monkeypatch.setattr(storage, "update_trial", update_trial)

    threading.Thread(target=_terminate_once_running, args=("term2", url), daemon=True).start()
    code = optimize_interruptibly(study, _sleeps, {"n_trials": 4, "n_jobs": 2, "executor": "ray"})
    assert code == 128 + signal.SIGTERM
    assert sent
    states = [t.state for t in Study.load("term2", url).trials]
    assert states == [TrialState.FAILED] * 2, states


@pytest.mark.parametrize("let_go", [True, False], ids=["lets-go", "holds-for-good"])
def test_trials_a_busy_database_kept_ray_from_failing_are_failed_once_it_is_free(
        ray_local: Any, tmp_path: Path, let_go: bool) -> None:
    """Another writer held the SQLite database past busy_timeout as a SIGTERM stopped a Ray run: the
    driver's write failing the first actor's trial raised its StorageError out of optimize, the
    interrupt turned into a storage error, and every stopped actor's trial stayed running for good,
    though the writer let go a moment later. Each actor's trials are looked at twice now (the writer
    lets go after the first failed look here), and the last line says when trials stay running.
    A writer that holds it for good: each actor was looked at twice, each look waiting busy_timeout
    (2 x n_jobs waits); a refusal ends the round now, two looks in all."""
    import logging
    import sqlite3

    from tunesmith import SQLStorage
    from tunesmith.cli.launch import optimize_interruptibly

    db = tmp_path / "busy.db"
    url = f"sqlite:///{db}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=SQLStorage(url, busy_timeout=2.0), name="busy")
    busy = sqlite3.connect(db, isolation_level=None, check_same_thread=False)

    def lock_once_running() -> None:
        deadline = time.monotonic() + BOTH_RUNNING_WITHIN
        while time.monotonic() < deadline:
            if sum(t.state is TrialState.RUNNING for t in Study.load("busy", url).trials) == 2:
                break
            time.sleep(0.2)
        busy.execute("BEGIN EXCLUSIVE")  # another writer, for longer than busy_timeout
        os.kill(os.getpid(), signal.SIGTERM)

    class LetGo(logging.Handler):  # the writer lets go once a first look has failed
        def emit(self, record: logging.LogRecord) -> None:
            if "could not mark the interrupted trial failed" in record.getMessage() and busy.in_transaction:
                busy.execute("ROLLBACK")

    said: list[str] = []

    class Said(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handlers = [LetGo(), Said()] if let_go else [Said()]
    for h in handlers:
        logging.getLogger("tunesmith").addHandler(h)
    try:
        threading.Thread(target=lock_once_running, daemon=True).start()
        code = optimize_interruptibly(study, _sleeps, {"n_trials": 4, "n_jobs": 2, "executor": "ray"})
    finally:
        for h in handlers:
            logging.getLogger("tunesmith").removeHandler(h)
        if busy.in_transaction:
            busy.execute("ROLLBACK")
        busy.close()
    assert code == 128 + signal.SIGTERM, said
    if not let_go:
        assert sum(m.startswith("could not mark the interrupted trial failed") for m in said) == 2, said
        assert said[-1] == ("interrupted: the running trials of 2 actor(s) could not be marked failed (said above): "
                            "they stay running in the storage; optimize stopped"), said
        assert [t.state for t in Study.load("busy", url).trials] == [TrialState.RUNNING] * 2
        return
    trials = Study.load("busy", url).trials
    assert [t.state for t in trials] == [TrialState.FAILED] * 2, said
    assert {t.error for t in trials} == {"interrupted (SIGTERM)"}
    assert "interrupted: running trials marked failed; optimize stopped" in said


def test_a_database_taken_between_two_actors_writes_says_how_many_trials_were_failed(
        ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer took the SQLite database for good once the driver had failed the first stopped
    actor's trial: the last line said "the running trials could not be marked failed" though one was.
    It counts both now, as the process pool counts its workers."""
    import logging
    import sqlite3

    from tunesmith import SQLStorage
    from tunesmith.cli.launch import optimize_interruptibly

    db = tmp_path / "busy.db"
    url = f"sqlite:///{db}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=SQLStorage(url, busy_timeout=1.0), name="busy")
    busy = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    storage, update = study._storage, study._storage.update_trial

    def update_trial(study_id: int, record: Any, **kw: Any) -> bool:
        done = update(study_id, record, **kw)
        if (record.error or "").startswith("interrupted") and not busy.in_transaction:
            busy.execute("BEGIN EXCLUSIVE")  # another writer, from the first actor's failed trial on
        return done

    monkeypatch.setattr(storage, "update_trial", update_trial)
    said: list[str] = []

    class Said(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Said()
    logging.getLogger("tunesmith").addHandler(handler)
    try:
        threading.Thread(target=_terminate_once_running, args=("busy", url), daemon=True).start()
        code = optimize_interruptibly(study, _sleeps, {"n_trials": 4, "n_jobs": 2, "executor": "ray"})
    finally:
        logging.getLogger("tunesmith").removeHandler(handler)
        if busy.in_transaction:
            busy.execute("ROLLBACK")
        busy.close()
    assert code == 128 + signal.SIGTERM, said
    assert sum(m.startswith("could not mark the interrupted trial failed") for m in said) == 2, said
    assert said[-1] == ("interrupted: 1 running trial(s) marked failed, but those of 1 actor(s) could not be "
                        "(said above): they stay running in the storage; optimize stopped"), said
    assert sorted(t.state.value for t in Study.load("busy", url).trials) == ["failed", "running"]


def test_a_sigterm_as_the_ray_actors_start_kills_those_started(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A SIGTERM (or Ctrl-C) while the driver started its actors was raised outside its interrupt
    handling: the actors started were never killed, and lived on in the Ray session."""
    import ray

    from tunesmith.cli.launch import optimize_interruptibly
    from tunesmith.execution import ray as ray_executor

    spawn = ray_executor._Driver._spawn
    drivers: list[Any] = []

    def spawn_then_signal(driver: Any) -> None:
        spawn(driver)
        if len(driver.actors) == 2:
            drivers.append(driver)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)

    monkeypatch.setattr(ray_executor._Driver, "_spawn", spawn_then_signal)
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 's.db'}", name="s")
    with caplog.at_level("INFO", logger="tunesmith"):
        code = optimize_interruptibly(study, _sleeps, {"n_trials": 4, "n_jobs": 3, "executor": "ray"})
    assert code == 128 + signal.SIGTERM
    assert drivers and len(drivers[0].actors) == 2
    assert "still starting" not in caplog.text  # the user stops now: no grace for the starting actors
    for actor in drivers[0].actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.handle.whoami.remote(), timeout=60)
    assert all(t.state is not TrialState.RUNNING for t in study.trials)


def test_the_sampler_auto_picked_is_said_by_the_first_actor_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under Ray's SQL mode each actor opens the study and, started together, each picks the same
    sampler before any pick is stored; each said so at info level ("sampler 'auto' picked ..." once
    per actor). The first actor says it; the others log it at debug level, as the process pool's
    workers do."""
    from tunesmith.execution.ray_worker import StudySpec, StudyWorker
    from tunesmith.samplers import auto

    levels = []
    for index in (0, 1, 2):  # StudyWorker is what the actor of that index runs, in a process of its own
        study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'a.db'}", name=f"a{index}")
        auto.SAY_PICK = True  # as in a fresh process
        with caplog.at_level("DEBUG", logger="tunesmith"):
            caplog.clear()
            assert StudyWorker(StudySpec.of(study), lambda t: t.params["x"], (), index).run_one().record is not None
        levels += [r.levelname for r in caplog.records if "sampler 'auto' picked" in r.getMessage()]
    assert levels == ["INFO", "DEBUG", "DEBUG"], levels


def _reports_and_asks_the_pruner(trial: Any) -> float:
    trial.report(float(trial.params["x"]), 1)
    trial.should_prune()
    return float(trial.params["x"])


def test_should_prune_without_a_pruner_is_noted_by_each_actor_once_and_said_by_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under Ray's SQL mode each actor opens the study itself: each said that the study has no pruner at its
    objective's first should_prune() (once per actor), then one named actor did, which a lost or idle actor
    left said twice or unsaid. Now no actor says it: each notes it in its first such answer (the driver says
    it, see the test after), and an actor started once the driver said it notes nothing."""
    from dataclasses import replace

    from tunesmith.execution.ray_worker import StudySpec, StudyWorker

    said, noted = [], []
    for index, notes in ((0, True), (1, True), (2, False)):  # what the actor of that index runs, in its own process
        study = Study({"x": Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'p.db'}", name=f"p{index}")
        spec = replace(StudySpec.of(study), notes_no_pruner=notes)
        with caplog.at_level("WARNING", logger="tunesmith"):
            caplog.clear()
            worker = StudyWorker(spec, _reports_and_asks_the_pruner, (), index)
            noted += [worker.run_one().asked_no_pruner, worker.run_one().asked_no_pruner]
        said.append(sum("should_prune() is always False" in r.getMessage() for r in caplog.records))
    assert said == [0, 0, 0], said
    assert noted == [True, False, True, False, False, False], noted


def _first_dies_and_asks_the_pruner(trial: Any, marker: str, asks_first: bool) -> float:
    try:  # the study's first trial anywhere: its actor's process dies before (or just after) should_prune()
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return _reports_and_asks_the_pruner(trial)
    if asks_first:
        _reports_and_asks_the_pruner(trial)
        time.sleep(1.0)  # a line said in the actor reaches its log file before the process dies
    os._exit(1)


def _worker_log_lines(temp: str, text: str) -> list[str]:
    """The lines holding ``text`` in Ray's worker log files under ``temp``."""
    return [line for path in Path(temp).rglob("worker-*") if path.is_file()
            for line in path.read_text(errors="replace").splitlines() if text in line]  # fmt: skip


@pytest.mark.parametrize("dies", ["before", "after"])
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_should_prune_without_a_pruner_is_said_once_under_ray_across_lost_actors_and_calls(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, storage: str, dies: str) -> None:
    """Under Ray the no-pruner warning is said exactly once per study object, as inline, by the driver when the
    first answer notes it: in memory and on SQL, with the study's first trial's actor lost before its
    should_prune() or just after it (before: the actor named to say it said it and died, and its replacement
    said it again; or, under load, the named actor ran no such trial and nothing said it), and a second
    optimize call on the same study does not say it again. No actor says it in its own log."""
    from conftest import _RAY

    name = f"nopruner-{storage}-{dies}-{os.getpid()}-{time.time_ns()}"
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'n.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name=name)
    objective = functools.partial(_first_dies_and_asks_the_pruner, marker=str(tmp_path / "died"),
                                  asks_first=dies == "after")
    with caplog.at_level("WARNING", logger="tunesmith"):
        for _ in range(2):
            study.optimize(objective, n_trials=4, n_jobs=2, executor="ray")
    assert (tmp_path / "died").exists()
    text = f"study {name!r} has no pruner"
    by_driver = [r.getMessage() for r in caplog.records if text in r.getMessage()]
    time.sleep(1.0)  # a line an actor said, if any, has had time to reach its file
    by_actors = _worker_log_lines(_RAY["temp"], text)
    trials = [(t.number, t.state.value, t.worker) for t in study.trials]
    assert (len(by_driver), by_actors) == (1, []), f"{by_driver} {by_actors} {trials}"


def _first_asks_the_pruner_then_hangs(trial: Any, folder: str) -> float:
    """The study's first trial asks should_prune() (no other does), says its pid in ``asked``, then waits until
    it is stopped: its answer never comes back."""
    try:
        os.close(os.open(os.path.join(folder, "first"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    trial.should_prune()
    Path(folder, "asked.tmp").write_text(str(os.getpid()))
    os.replace(os.path.join(folder, "asked.tmp"), os.path.join(folder, "asked"))
    threading.Event().wait()  # the test's signal, or trial_timeout, ends this process
    return 0.0


def _await_file(marker: Path, act: Callable[[int], None]) -> None:
    """Call ``act`` with the pid written in ``marker`` once it is there (up to 120 s)."""
    end = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.05)
    if marker.exists():
        act(int(marker.read_text()))


def _once_asked(folder: Path, act: Callable[[int], None]) -> threading.Thread:
    """A thread that calls ``act`` with the asking trial's pid once it has written ``asked``."""
    thread = threading.Thread(target=_await_file, args=(folder / "asked", act), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["sigkill", "trial_timeout", "ctrl-c"])
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_should_prune_without_a_pruner_is_said_once_under_ray_when_the_asking_trial_never_answers(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, storage: str, how: str) -> None:
    """The only trial whose objective asks should_prune() without a pruner never answers: its actor's process
    SIGKILLed, stopped by trial_timeout, or the driver interrupted (a real SIGINT) once it has asked. The driver
    said the warning only from an answer's note, so nothing said it; the actor now notes it as it asks (Ray's
    key-value store), and the driver says it exactly once."""
    name = f"nopruner-lost-{storage}-{how}-{os.getpid()}-{time.time_ns()}"
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'n.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name=name)
    objective = functools.partial(_first_asks_the_pruner_then_hangs, folder=str(tmp_path))
    acts: dict[str, Callable[[int], None]] = {
        "sigkill": lambda pid: os.kill(pid, signal.SIGKILL), "trial_timeout": lambda pid: None,
        "ctrl-c": lambda pid: os.kill(os.getpid(), signal.SIGINT)}
    thread = _once_asked(tmp_path, acts[how])
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective, n_trials=2, n_jobs=1, executor="ray",
                       trial_timeout=15.0 if how == "trial_timeout" else None)
    thread.join(timeout=5)
    assert (tmp_path / "asked").exists()
    trials = [(t.number, t.state.value, t.error) for t in study.trials]
    assert study.trials[0].state is TrialState.FAILED, trials
    said = [r.getMessage() for r in caplog.records if f"study {name!r} has no pruner" in r.getMessage()]
    assert len(said) == 1, f"{said} {trials}"


def test_the_driver_reads_the_no_pruner_note_only_where_an_actor_could_write_it(tmp_path: Path) -> None:
    """The key an optimize call's actors note should_prune() in (and the driver reads once a second, and
    deletes): one of its own per call, and none where nothing can be noted. A study reopened without pruner=
    has its stored pruner: the driver read a key no actor would write, once a second for the whole call."""
    from tunesmith.execution.ray_worker import StudySpec, note_key_for

    url = f"sqlite:///{tmp_path / 'k.db'}"
    Study({"x": Float(0, 1)}, storage=url, name="median", pruner="median")
    reopened = Study(storage=url, name="median")
    assert type(reopened.pruner).__name__ == "MedianPruner"
    unpruned = Study({"x": Float(0, 1)}, storage=url, name="unpruned")
    keys = {note_key_for(unpruned), note_key_for(unpruned)}
    assert None not in keys and len(keys) == 2  # two calls on one cluster never share a key
    assert StudySpec.of(unpruned, keys.pop()).to_driver() is not None
    for study in (reopened, Study({"x": Float(0, 1)}, storage=url, name="none", pruner="none")):
        assert note_key_for(study) is None, study.name
    unpruned._said_no_pruner = True  # said by an earlier call on this object
    assert note_key_for(unpruned) is None


NOTING_DRIVER = """
import sys, time
import tunesmith as ts
from tunesmith.execution.ray import RayExecutor

def objective(trial, asked=sys.argv[2]):  # (the actor's own sys.argv is another)
    trial.should_prune()  # no pruner: the actor notes it in Ray's key-value store
    open(asked, "w").close()
    time.sleep(120)  # the driver is SIGKILLed meanwhile
    return 0.0

study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
study.optimize(objective, n_trials=1, executor=RayExecutor(address=sys.argv[1], n_workers=1))
"""


def _note_keys() -> set[bytes]:
    from ray.experimental.internal_kv import _internal_kv_list

    from tunesmith.execution.ray_worker import NOTES

    return set(_internal_kv_list("no-pruner-", namespace=NOTES))


@pytest.mark.timeout(120)
def test_a_killed_driver_s_no_pruner_note_is_deleted_by_the_next_driver_and_no_live_one_s(
        ray_local: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A driver SIGKILLed after its actor noted should_prune() without a pruner never deleted its key: it stayed in
    the cluster's key-value store until the cluster stopped, one a kill. The next optimize on the cluster deletes
    the keys of jobs the GCS counts dead; a running driver's key, and one that names no job, stay."""
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put
    from ray_util import RAY_ENV

    from tunesmith.execution.ray_worker import NOTES

    live = f"no-pruner-{ray_local.get_runtime_context().get_job_id()}-0123456789abcdef"
    nameless = "no-pruner-fedcba9876543210"  # an older tunesmith's: whose it is cannot be told
    before = _note_keys()
    asked = tmp_path / "asked"
    driver = subprocess.Popen([sys.executable, "-c", NOTING_DRIVER, ray_local.get_runtime_context().gcs_address,
                               str(asked)], env={**subprocess_env, **RAY_ENV}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 60
        while not asked.exists() and driver.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        left = _note_keys() - before
    finally:
        driver.kill()
        out = driver.communicate(timeout=30)[0]
    assert asked.exists() and len(left) == 1, f"{left} {out[-3000:]}"  # the actor noted it as it asked
    for key in (live, nameless):
        _internal_kv_put(key, b"1", namespace=NOTES)
    try:
        end = time.monotonic() + 30  # until the GCS counts the killed driver's job dead
        while not any(j["IsDead"] and j["DriverPid"] == driver.pid for j in ray_local._private.state.jobs()):
            assert time.monotonic() < end, "the killed driver's job was never counted dead"
            time.sleep(0.2)
        Study({"x": Float(0, 1)}, sampler="random", seed=0).optimize(lambda t: 0.0, n_trials=1, executor="ray")
        keys = _note_keys()
        assert not left & keys, keys  # before: the killed driver's key stayed
        assert {live.encode(), nameless.encode()} <= keys
    finally:
        for key in (live, nameless):
            _internal_kv_del(key, namespace=NOTES)


def _first_waits_to_be_failed_elsewhere(trial: Any, folder: str) -> float:
    """The study's first trial says its pid in ``running`` and waits for ``go`` (or its process to be killed);
    the others, its re-queued copy included, return at once."""
    if trial.number == 0:
        Path(folder, "running.tmp").write_text(str(os.getpid()))
        os.replace(os.path.join(folder, "running.tmp"), os.path.join(folder, "running"))
        end = time.monotonic() + 120
        while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < end:
            time.sleep(0.05)
    return float(trial.params["x"])


@pytest.mark.parametrize("then", ["answers", "sigkill"])
def test_a_ray_trial_failed_and_requeued_elsewhere_does_not_count_in_n_trials(
        ray_local: Any, tmp_path: Path, then: str) -> None:
    """A trial running in an actor is failed and re-queued by another process (its heartbeat taken for lost):
    its copy runs under this call's n_trials, the lost attempt does not count, as with threads and worker
    processes. Under Ray its unit was spent all the same, whether the actor then answered (the actor's
    refund stayed in its own budget) or was SIGKILLed (the driver counted the trial as started by it), so
    n_trials=3 gave 2 results."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="r")
    objective = functools.partial(_first_waits_to_be_failed_elsewhere, folder=str(tmp_path))

    def fail_elsewhere(pid: int) -> None:  # another process's heartbeat check, as it fails a lost trial
        failed = Study.load("r", url).fail_trial(0, "heartbeat lost (the test's)", requeue=True)
        assert failed is not None and failed.system.requeued_as is not None
        if then == "sigkill":
            os.kill(pid, signal.SIGKILL)
        (tmp_path / "go").touch()

    thread = threading.Thread(target=lambda: _await_file(tmp_path / "running", fail_elsewhere), daemon=True)
    thread.start()
    study.optimize(objective, n_trials=3, n_jobs=1, executor="ray")
    thread.join(timeout=5)
    trials = [(t.number, t.state.value, t.system.retry_of, t.error) for t in study.trials]
    assert Counter(t.state.value for t in study.trials) == {"failed": 1, "complete": 3}, trials
    assert [t.state.value for t in study.trials if t.system.retry_of == 0] == ["complete"], trials  # the copy ran


def _resumed_0_failed_elsewhere(trial: Any, url: str) -> float:
    """Trial 0 pauses at step 1; its resumed run is failed and re-queued by another process (its heartbeat taken
    for lost), then returns."""
    if trial.number == 0 and trial.is_resumed:
        Study.load("r", url).fail_trial(0, "heartbeat lost (the test's)", requeue=True)
    for step in range(max(trial.start_step, 1), 3):
        trial.report(float(step), step, checkpoint=f"ck{trial.number}-{step}")
        if trial.should_prune():
            raise TrialPruned()
    return float(trial.params["x"])


@pytest.mark.parametrize("n_trials", [1, 3])
def test_a_ray_resumed_trial_failed_and_requeued_elsewhere_gives_back_no_unit_its_resume_never_took(
        ray_local: Any, tmp_path: Path, n_trials: int) -> None:
    """As with threads and processes (tests/test_pause_resume.py): the actor's answer refunded the unit of a
    resume, which took none. Resumed once the budget was spent (n_trials=1, the driver's ``run_only``), one new
    trial more than n_trials; resumed by a call that took a unit (3, ``run_one``), the unit came back only by
    that refund: the driver gives back the unit of a call that resumed a trial, its record there or not."""
    import test_pause_resume
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(test_pause_resume)  # the actors cannot import it
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="r",
                  pruner=test_pause_resume._PausesTrial0Once())
    study.optimize(functools.partial(_resumed_0_failed_elsewhere, url=url), n_trials=n_trials, n_jobs=1,
                   executor="ray")
    first = study.trials[0]
    assert first.state is TrialState.FAILED and first.system.n_resumes == 1 and first.system.requeued_as is not None
    ran = Counter(t.state.value for t in study.trials if t.state is not TrialState.WAITING)
    assert ran == Counter(failed=1, complete=n_trials - 1), [(t.number, t.state.value) for t in study.trials]


def _kills_its_actor_on_resumed_trial_0(trial: Any) -> float:
    if trial.number == 0 and trial.is_resumed:
        os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params["x"])


@pytest.mark.parametrize("requeue", [True, False])
def test_in_memory_a_ray_resumed_trial_whose_actor_is_lost_takes_no_unit(ray_local: Any, requeue: bool) -> None:
    """In memory the driver asks each trial, a unit per call, and gives a resumed trial's back as it answers. Its
    actor lost, the failed resumed trial kept that unit as a new trial's (2 new trials for n_trials=3), once
    the refund of its copy no longer made up for it (a resume gives none back)."""
    import test_pause_resume
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(test_pause_resume)  # the actors cannot import it
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, pruner=test_pause_resume._PausesTrial0Once(),
                  heartbeat_interval=5, requeue_failed=requeue)
    paused = study.ask()  # paused by an earlier inline run, promoted: the driver's ask resumes it
    paused.report(0.5, 1)
    study.tell(paused, state=TrialState.PAUSED)
    study.optimize(_kills_its_actor_on_resumed_trial_0, n_trials=3, n_jobs=1, executor="ray")
    trials = [(t.number, t.state.value, t.system.n_resumes, t.system.retry_of) for t in study.trials]
    assert trials[0][1:3] == ("failed", 1) and (study.trials[0].system.requeued_as is not None) == requeue, trials
    assert Counter(t.state.value for t in study.trials) == {"failed": 1, "complete": 3}, trials  # the copy: one


def _first_failed_elsewhere_then_the_next_killed(trial: Any, folder: str) -> float:
    """Trial 0 waits for ``go`` as in :func:`_first_waits_to_be_failed_elsewhere`; the trial that starts next says
    its pid in ``next`` and waits to be SIGKILLed (once: the others return at once)."""
    if trial.number == 0:
        return _first_waits_to_be_failed_elsewhere(trial, folder)
    try:
        os.close(os.open(os.path.join(folder, "started-next"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    Path(folder, "next.tmp").write_text(str(os.getpid()))
    os.replace(os.path.join(folder, "next.tmp"), os.path.join(folder, "next"))
    threading.Event().wait()  # the test's SIGKILL ends this process
    return 0.0


@pytest.mark.parametrize("requeue", [True, False])
def test_a_ray_trial_failed_elsewhere_counts_once_when_its_actor_is_lost_after_answering(
        ray_local: Any, tmp_path: Path, requeue: bool) -> None:
    """Trial 0 is failed by another process (its heartbeat taken for lost; re-queued or not) as it runs in an
    actor, which answers with no record; the actor's next trial is SIGKILLed. The driver counted trial 0 among
    the lost actor's trials started but never answered: not re-queued, the unit of a call the actor never began
    was kept (2 results for n_trials=3); re-queued, its unit came back a second time (offset by the first)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="r")
    objective = functools.partial(_first_failed_elsewhere_then_the_next_killed, folder=str(tmp_path))

    def fail_elsewhere_then_kill_the_next(pid: int) -> None:
        failed = Study.load("r", url).fail_trial(0, "heartbeat lost (the test's)", requeue=requeue)
        assert failed is not None and (failed.system.requeued_as is not None) == requeue
        (tmp_path / "go").touch()
        _await_file(tmp_path / "next", lambda pid: os.kill(pid, signal.SIGKILL))

    thread = threading.Thread(target=lambda: _await_file(tmp_path / "running", fail_elsewhere_then_kill_the_next),
                              daemon=True)
    thread.start()
    study.optimize(objective, n_trials=3, n_jobs=1, executor="ray")
    thread.join(timeout=5)
    assert (tmp_path / "next").exists()
    trials = [(t.number, t.state.value, t.system.retry_of, t.error) for t in study.trials]
    # the killed trial counts; trial 0 counts unless re-queued (its copy counts then): 3 results
    complete = 2 if requeue else 1
    assert Counter(t.state.value for t in study.trials) == {"failed": 2, "complete": complete}, trials


def test_weights_a_stored_space_leaves_out_are_said_by_the_driver_not_by_each_actor(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A study stored with a NaN prior weight opens without those weights, with a warning once per
    study; under Ray's SQL mode the driver said it and then each actor, opening the study in its own
    process, said it again. The actors log it at debug level."""
    import json

    import sqlalchemy as sa

    from tunesmith import Categorical
    from tunesmith.execution.ray_worker import StudySpec, StudyWorker
    from tunesmith.space import space as stored_space

    url = f"sqlite:///{tmp_path / 'w.db'}"
    Study({"k": Categorical(["a", "b"], prior={"a": 1.0, "b": 2.0})}, storage=url, name="w", sampler="random")
    engine = sa.create_engine(url)
    with engine.begin() as c:
        stored = json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'w'")).scalar_one())
        stored["k"]["prior"]["weight"]["a"] = float("nan")  # as an older tunesmith stored it
        c.execute(sa.text("UPDATE ts_studies SET space = :v WHERE name = 'w'"), {"v": json.dumps(stored)})
    engine.dispose()
    with caplog.at_level("DEBUG", logger="tunesmith"):
        study = Study.load("w", storage=url)  # the driver
        for index in (0, 1):  # StudyWorker is what the actor of that index runs, in a process of its own
            stored_space._say_weights_dropped.cache_clear()  # as in a fresh process
            assert StudyWorker(StudySpec.of(study), lambda t: 1.0, (), index).run_one().record is not None
    levels = [r.levelname for r in caplog.records if "prior weights of 'k' are not all finite" in r.getMessage()]
    assert levels == ["WARNING", "DEBUG", "DEBUG"], levels


def test_a_ctrl_c_after_the_last_ray_trial_ended_says_no_trial_was_running(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As with processes and threads: an interrupt once every trial had ended logged "running trials
    marked failed" (none was)."""
    from test_execution_process import _ctrl_c_in_the_callback

    study = _study("sqlite", tmp_path)
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_objective, n_trials=1, n_jobs=1, executor="ray", callbacks=[_ctrl_c_in_the_callback])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert "interrupted: no trial was running; optimize stopped" in caplog.text and "marked failed" not in caplog.text


def _stops_the_study(trial: Any) -> float:
    trial.study.stop()
    return float(trial.params["x"])


@pytest.mark.parametrize("objective", [_objective, _stops_the_study], ids=["plain", "stops"])
def test_a_ctrl_c_before_the_driver_collected_an_answer_keeps_that_trial_s_value(
        ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objective: Any) -> None:
    """In memory the driver records the actors' trials. A Ctrl-C after an actor's answers came back, but
    before the driver collected them, failed that finished trial as interrupted (its value lost), and the
    next call's trial too, though an actor whose objective stopped the study ran nothing for it."""
    from tunesmith.execution.ray import _Driver

    collect = _Driver._collect

    def ctrl_c_first(self: Any, ref: Any) -> None:
        monkeypatch.setattr(_Driver, "_collect", collect)
        refs = [r for a in self.actors for r in a.calls]  # one actor, two calls: both answered
        assert len(self.ray.wait(refs, num_returns=len(refs), timeout=60)[0]) == 2
        os.kill(os.getpid(), signal.SIGINT)  # lands here, the answers at hand and not collected
        time.sleep(10.0)

    monkeypatch.setattr(_Driver, "_collect", ctrl_c_first)
    study = _study("memory", tmp_path)
    study.optimize(objective, n_trials=4, n_jobs=1, executor="ray", resources_per_trial={"cpu": 2})
    trials = study.trials
    assert [(t.state, t.value) for t in trials[:1]] == [(TrialState.COMPLETE, trials[0].params["x"])], trials[0].error
    second = TrialState.WAITING if objective is _stops_the_study else TrialState.COMPLETE
    assert [t.state for t in trials] == [TrialState.COMPLETE, second], [t.error for t in trials]


def _second_raises_keyboard_interrupt(trial: Any) -> float:
    if trial.number == 1:
        raise KeyboardInterrupt
    time.sleep(0.05)
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_an_objective_raising_keyboard_interrupt_in_an_actor_stops_the_run(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, storage: str) -> None:
    """No Ctrl-C came: the objective raised KeyboardInterrupt itself in an actor. It stops the run, as
    inline and in worker processes; optimize raised Ray's TaskCancelledError (SQL: a traceback out of
    ``tunesmith run``) or the KeyboardInterrupt (in memory, the trial's error "KeyboardInterrupt")."""
    study = _study(storage, tmp_path)
    with caplog.at_level("WARNING", logger="tunesmith"):
        try:
            study.optimize(_second_raises_keyboard_interrupt, n_trials=8, n_jobs=1, executor="ray",
                           resources_per_trial={"cpu": 2})
        except (KeyboardInterrupt, Exception) as exc:  # pytest would stop at a KeyboardInterrupt
            pytest.fail(f"optimize raised {exc!r}")
    trials = study.trials
    assert (TrialState.FAILED, "interrupted (KeyboardInterrupt)") in {(t.state, t.error) for t in trials}
    assert len(trials) <= 3 and TrialState.RUNNING not in {t.state for t in trials}, [t.state for t in trials]
    assert "raised KeyboardInterrupt" in caplog.text


def test_a_command_whose_objective_raised_keyboard_interrupt_in_an_actor_exits_130(
        ray_local: Any, tmp_path: Path) -> None:
    """``tunesmith run`` (and ``worker``) under Ray whose objective raised KeyboardInterrupt itself: the
    run stopped and the trial said "interrupted", but the command exited 0, where the other executors
    exit 130, as on Ctrl-C (in SQL mode the actor's answer held no record for the command to see)."""
    from tunesmith.cli.launch import optimize_interruptibly

    study = _study("sqlite", tmp_path)
    options = {"n_trials": 8, "n_jobs": 1, "executor": "ray", "resources_per_trial": {"cpu": 2}}
    assert optimize_interruptibly(study, _second_raises_keyboard_interrupt, options) == 130
    assert (TrialState.FAILED, "interrupted (KeyboardInterrupt)") in {(t.state, t.error) for t in study.trials}
    assert optimize_interruptibly(study, _slow, {**options, "n_trials": 1}) == 0


def _second_checkpoints_then_raises_keyboard_interrupt(trial: Any, folder: str) -> float:
    for step in range(max(trial.start_step, 1), 3):  # on from its checkpoint when resumed
        trial.set_attr("checkpoint", str(Path(folder) / f"ck{trial.number}"))
        trial.report(float(trial.params["x"]), step)
        if trial.number == 1 and not trial.is_resumed:
            raise KeyboardInterrupt
    return float(trial.params["x"])


def test_a_command_whose_actor_paused_the_trial_its_keyboard_interrupt_stopped_exits_130(
        ray_local: Any, tmp_path: Path) -> None:
    """Under a pruner that pauses, an actor's objective that raised KeyboardInterrupt after its trial
    recorded a checkpoint and a report puts that trial back to paused (to resume from there), not failed:
    ``tunesmith run`` must still exit 130, as for the failed one; the next run resumes it and exits 0."""
    from tunesmith.cli.launch import optimize_interruptibly
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="c",
                  pruner=ASHA(pause=True, min_resource=1, max_resource=2))
    objective = functools.partial(_second_checkpoints_then_raises_keyboard_interrupt, folder=str(tmp_path))
    options = {"n_trials": 8, "n_jobs": 1, "executor": "ray", "resources_per_trial": {"cpu": 2}}
    assert optimize_interruptibly(study, objective, options) == 130
    held = study.trials[1]
    assert held.state is TrialState.PAUSED and held.system.held == "interrupted (KeyboardInterrupt)", held
    assert not study.trials_in("failed")
    assert optimize_interruptibly(study, objective, {**options, "n_trials": 0}) == 0
    resumed = study.trials[1]
    assert resumed.state is TrialState.COMPLETE and resumed.system.n_resumes == 1, resumed
    assert sorted(resumed.intermediate) == [1, 2]


class _NeedsTwo(Exception):
    """Pickles, but its copy cannot be made: pickle calls ``_NeedsTwo(message)``."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


class _HoldsALock(Exception):
    """Does not pickle at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def _raises_what_cannot_travel(trial: Any) -> float:
    time.sleep(0.2)
    if trial.number == 1:
        raise _NeedsTwo("bad batch", "no labels") if trial.params["x"] < 0.5 else _HoldsALock("bad batch: no labels")
    return float(trial.params["x"])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_an_uncaught_exception_that_cannot_be_copied_back_from_an_actor_is_named(
    ray_local: Any, tmp_path: Path, storage: str, seed: int
) -> None:
    """Under SQL storage an uncaught exception that pickles but cannot be rebuilt ended optimize with
    Ray's UnserializableException (its whole traceback) and the other actor's trial killed running;
    one that does not pickle at all with "RayError: Exception ... isn't serializable"."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'u.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=seed, storage=url, name="u")
    with pytest.raises(RuntimeError, match="raised an exception the study does not catch: "
                                           r"_(NeedsTwo|HoldsALock): bad batch: no labels at ") as info:
        study.optimize(_raises_what_cannot_travel, n_trials=6, n_jobs=2, executor="ray", catch=(ValueError,))
    assert type(info.value) is RuntimeError
    states = Counter(t.state.value for t in study.trials)
    assert states["failed"] == 1 and set(states) == {"complete", "failed"}, states
    assert "no labels" in (study.trials[1].error or "")


def _returns_a_lock_on_one(trial: Any) -> Any:
    time.sleep(0.2)
    return threading.Lock() if trial.number == 1 else float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_value_that_does_not_pickle_fails_its_trial_as_inline(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """In memory an objective returning what does not pickle ended optimize with Ray's TypeError
    ("cannot pickle '_thread.lock' object") and left its trial and the other actor's running."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'v.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="v")
    study.optimize(_returns_a_lock_on_one, n_trials=4, n_jobs=2, executor="ray")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED] + [TrialState.COMPLETE] * 2
    assert "objective returned <unlocked _thread.lock object" in (trials[1].error or "")
    assert "return a finite number" in (trials[1].error or "")


_NOT_NUMBERS: list[Any] = [float("nan"), [0.5, 0.25], "0.5", None]


def _returns_what_is_not_a_number(trial: Any) -> Any:
    return _NOT_NUMBERS[trial.number % len(_NOT_NUMBERS)]


def test_a_value_that_is_not_a_number_is_failed_in_memory_ray_as_inline(ray_local: Any) -> None:
    """In memory under Ray, nan, a list or a string returned was failed as told by hand ("tell() got
    nan (float); tell it a finite number"), not as returned by the objective, as inline."""
    errors = []
    for executor in ("inline", "ray"):
        study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
        study.optimize(_returns_what_is_not_a_number, n_trials=len(_NOT_NUMBERS), executor=executor)
        errors.append([t.error for t in study.trials])
    assert errors[1] == errors[0] and all((e or "").startswith("objective returned") for e in errors[0]), errors


def _exits_on_one(trial: Any) -> float:
    time.sleep(0.2)
    if trial.number == 1:
        sys.exit(3)
    return float(trial.params["x"])


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_sys_exit_in_an_actor_s_objective_is_raised_as_inline(
    ray_local: Any, tmp_path: Path, storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With SQL storage a SystemExit out of the objective ended its Ray actor: the driver took it for a
    lost worker, started another and went on, and optimize returned as if nothing was raised."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'e.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="e")
    with pytest.raises(SystemExit) as info:
        study.optimize(_exits_on_one, n_trials=6, n_jobs=2, executor="ray")
    assert info.value.code == 3
    states = Counter(t.state.value for t in study.trials)
    assert states["failed"] == 1 and set(states) == {"complete", "failed"}, states
    assert "SystemExit: 3" in (study.trials[1].error or "")
    assert "worker was lost" not in caplog.text


def _synchronous(trial: Any) -> float:
    """``PRAGMA synchronous`` of the actor's own connection (2: FULL)."""
    with trial.study.storage.engine.connect() as conn:
        return float(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_ray_actors_open_sqlite_with_the_urls_synchronous(ray_local: Any, tmp_path: Path) -> None:
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'f.db'}?synchronous=full",
                  name="f")
    study.optimize(_synchronous, n_trials=2, n_jobs=2, executor="ray")
    assert [t.value for t in study.trials] == [2.0, 2.0]
    assert all(t.worker and t.worker.split(":")[1] != str(os.getpid()) for t in study.trials)  # read in the actors


def test_a_private_instance_s_token_is_readable_by_this_user_alone(tmp_path: Path,
                                                                   subprocess_env: dict[str, str]) -> None:
    """Ray turns token authentication on for a private instance and wrote a missing token to
    ~/.ray/auth_token with the umask's mode (0644 in a 0755 folder): any user of the machine could read
    it, connect to the instance on 127.0.0.1 and run code as this user."""
    pytest.importorskip("ray")
    from ray_util import kill_all_under, quiet_home, short_tmp

    temp = short_tmp("tstok")
    home = Path(quiet_home(temp))
    (tmp_path / "obj.py").write_text("def f(trial):\n    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text(f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'r.db'}\n"
                                     "space: {x: {type: float, low: 0, high: 1}}\n")
    env = {**subprocess_env, "HOME": str(home), "RAY_TMPDIR": str(temp)}
    env.pop("RAY_AUTH_MODE")  # Ray's own default: token authentication, as a user gets it
    try:
        done = subprocess.run([sys.executable, "-m", "tunesmith", "run", str(tmp_path / "s.yaml"), "--n-trials", "2",
                               "--executor", "ray", "--no-progress"],
                              env=env, capture_output=True, text=True, timeout=240, umask=0o022)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "2 trials run now" in done.stdout
        token = home / ".ray" / "auth_token"
        assert oct(token.stat().st_mode & 0o777) == "0o600" and oct(token.parent.stat().st_mode & 0o777) == "0o700"
        assert len(token.read_text()) == 64
    finally:
        kill_all_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


TOKEN_SLOW_WRITER = """
import secrets, sys, time
from pathlib import Path
from tunesmith.execution.ray import keep_token_private
token_hex = secrets.token_hex
def held(n):  # the token is made: tell the test, then take a while to write it
    Path(sys.argv[1]).touch()
    time.sleep(3)
    return token_hex(n)
secrets.token_hex = held
keep_token_private()
"""
TOKEN_READER = """
from pathlib import Path
from tunesmith.execution.ray import keep_token_private
keep_token_private()
print(repr((Path.home() / ".ray" / "auth_token").read_text()))  # what Ray, started now, reads
"""


def test_two_processes_starting_ray_on_a_fresh_home_read_one_whole_token(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The token was created, then written: a second process starting Ray at that moment found the file, left
    it, and read it empty. It is now written beside and linked in place whole."""
    env = {**subprocess_env, "HOME": str(tmp_path / "home")}
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    marker = tmp_path / "writing"
    slow = subprocess.Popen([sys.executable, "-c", TOKEN_SLOW_WRITER, str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert slow.poll() is None and time.monotonic() < deadline, "the first process never made its token"
            time.sleep(0.01)
        read = subprocess.run([sys.executable, "-c", TOKEN_READER], env=env, capture_output=True, text=True,
                              timeout=60)
        assert read.returncode == 0, read.stderr
        assert slow.wait(60) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    token = tmp_path / "home" / ".ray" / "auth_token"
    seen = read.stdout.strip().strip("'")
    assert len(seen) == 64 and seen == token.read_text(), (seen, token.read_text())  # before: ''
    assert token.stat().st_mode & 0o777 == 0o600 and sorted(p.name for p in token.parent.iterdir()) == ["auth_token"]


def test_a_token_others_may_read_is_made_private_before_a_private_instance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from tunesmith.execution.ray import keep_token_private

    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir(mode=0o755)
    token.write_text("a" * 64)
    token.chmod(0o644)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # tokens unused: left as they are
    keep_token_private()
    assert token.stat().st_mode & 0o777 == 0o644
    monkeypatch.delenv("RAY_AUTH_MODE")
    keep_token_private()
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == "a" * 64
    assert f"Ray's token {token} could be read by other users (mode 644)" in caplog.text


def _token_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="gives a file to another user: root only")
@pytest.mark.parametrize("planted", ["token", "link", "dangling", "folder"])
def test_a_token_another_user_chose_is_refused_before_a_private_instance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str) -> None:
    """A home another user could write into (HOME in /tmp, a shared folder) let them leave ~/.ray/auth_token
    (a token they know, or a link to a file of this user's they can read) or ~/.ray itself: the private
    instance then let them in with that token, to run code as this user."""
    from tunesmith.execution.ray import keep_token_private

    other = 65534
    folder = tmp_path / ".ray"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777 if planted == "folder" else 0o755)
    token = folder / "auth_token"
    if planted == "token":
        token.write_text("b" * 64)
        os.chown(token, other, other)
    elif planted == "link":
        readable = tmp_path / "notes.txt"  # a file of this user's that the other one can read
        readable.write_text("known text")
        token.symlink_to(readable)
        os.lchown(token, other, other)
    elif planted == "dangling":  # a link to nothing: Ray would write its new token through it, where they read
        token.symlink_to(tmp_path / "theirs" / "token")
        os.lchown(token, other, other)
    else:
        os.chown(folder, other, other)  # made by the other user before this one's first run
    _token_env(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match="another user") as err:  # a link of theirs as their file
        keep_token_private()
    assert "RAY_AUTH_TOKEN_PATH" in str(err.value)
    assert planted != "folder" or not token.exists()  # nothing written into their folder


def test_a_token_in_a_folder_others_may_change_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token of this user's in a folder every user may write (no sticky bit): another user can put a
    token of theirs in its place at any time."""
    from tunesmith.execution.ray import keep_token_private

    folder = tmp_path / ".ray"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "auth_token").write_text("a" * 64)
    _token_env(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match=r"folder of Ray's token .* can be written by other users \(mode 777\)"):
        keep_token_private()
    (folder / "auth_token").unlink()
    with pytest.raises(PermissionError, match="can be written by other users"):
        keep_token_private()  # none there yet: none is written in it
    assert not (folder / "auth_token").exists()
    folder.chmod(0o700)
    keep_token_private()
    assert (folder / "auth_token").stat().st_mode & 0o777 == 0o600


def test_a_link_of_yours_to_nothing_gets_a_private_token_where_it_points(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~/.ray/auth_token a link of this user's to a file not made yet (dotfiles kept elsewhere): nothing was
    written, and Ray wrote its token through the link with the umask's mode (0644), which others could read;
    where the link points into a folder others may write, that folder was not checked."""
    from tunesmith.execution.ray import keep_token_private

    (tmp_path / ".ray").mkdir(mode=0o700)
    kept = tmp_path / "kept"
    kept.mkdir(mode=0o700)
    link = tmp_path / ".ray" / "auth_token"
    link.symlink_to(kept / "ray_token")
    _token_env(monkeypatch, tmp_path)
    keep_token_private()
    assert link.is_symlink() and len(link.read_text()) == 64
    assert (kept / "ray_token").stat().st_mode & 0o777 == 0o600 and sorted(os.listdir(kept)) == ["ray_token"]
    (kept / "ray_token").unlink()
    kept.chmod(0o777)  # every user may put a token of theirs there, before or after it is written
    with pytest.raises(PermissionError, match=r"folder of Ray's token .*kept can be written by other users"):
        keep_token_private()
    assert os.listdir(kept) == []


def test_a_token_that_cannot_be_written_whole_is_not_left_cut_short(tmp_path: Path) -> None:
    """A write that failed (a full disk; here a file size limit of 10 bytes) made tunesmith create the
    token in place and write it again: its first 10 characters were left as the token, 40 bits that
    every later run took (and the run ended with the write's OSError)."""
    code = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))\n"
        "from tunesmith.execution.ray import keep_token_private\n"
        "keep_token_private()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / ".ray") == []  # none: Ray says what it cannot write


def test_a_new_token_on_a_file_system_without_hard_links_is_still_written_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is written beside its place and linked in; where the file system has no hard links
    (link() fails with EPERM), none was written and Ray wrote its own with the umask's mode (0644)."""
    from tunesmith.execution.ray import keep_token_private

    def no_links(src: object, dst: object) -> None:  # what such a file system answers (none can be mounted here)
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    _token_env(monkeypatch, tmp_path)
    keep_token_private()
    token = tmp_path / ".ray" / "auth_token"
    assert len(token.read_text()) == 64 and token.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in token.parent.iterdir()) == ["auth_token"]  # the file beside it removed


def test_a_link_to_the_token_in_a_folder_others_may_change_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link of this user's to a private token, in a folder every user may write: the token's own folder was
    checked, not the link's, where another user may put a link or token of theirs in its place."""
    from tunesmith.execution.ray import keep_token_private

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "token").write_text("a" * 64)
    (private / "token").chmod(0o600)
    folder = tmp_path / ".ray"
    folder.mkdir()
    (folder / "auth_token").symlink_to(private / "token")
    folder.chmod(0o777)
    _token_env(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match=rf"folder of Ray's token {folder} can be written by other users"):
        keep_token_private()
    folder.chmod(0o755)
    keep_token_private()  # the link's folder and the token's are this user's alone


def test_a_token_path_naming_a_folder_is_refused_not_chmodded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RAY_AUTH_TOKEN_PATH=~/.ray (the folder, not its token): it was made 0700 with the warning 'made it 0600',
    and Ray then failed on it; a folder at ~/.ray/auth_token, the same."""
    from tunesmith.execution.ray import keep_token_private

    folder = tmp_path / ".ray"
    folder.mkdir()
    folder.chmod(0o755)
    _token_env(monkeypatch, tmp_path)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(folder))
    with pytest.raises(ValueError, match=rf"Ray's token {folder} is a directory, not a file: .* point "
                                         r"RAY_AUTH_TOKEN_PATH at the token file itself"):
        keep_token_private()
    assert folder.stat().st_mode & 0o777 == 0o755
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    (folder / "auth_token").mkdir(mode=0o755)
    with pytest.raises(ValueError, match=r"auth_token is a directory, not a file: .*; move it away"):
        keep_token_private()
    assert (folder / "auth_token").stat().st_mode & 0o777 == 0o755


def test_a_token_others_may_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.execution.ray import keep_token_private

    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir(mode=0o700)
    token.write_text("a" * 64)
    token.chmod(0o646)
    _token_env(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match=r"Ray's token .* can be written by other users \(mode 646\)"):
        keep_token_private()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_a_token_of_root_s_that_others_may_read_is_refused_not_chmodded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token root wrote in the user's home (`sudo` keeping HOME) could not be made 0600: the private
    instance failed with chmod's bare 'Operation not permitted'. Every user may read it, so it is refused by
    name; one only the user's own group may read is taken as it is."""
    import tempfile

    from conftest import said_as_nobody

    from tunesmith.execution.ray import keep_token_private

    home = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        home.chmod(0o755)
        os.chown(home, 65534, 65534)
        token = home / ".ray" / "auth_token"
        token.parent.mkdir(mode=0o755)  # root's, as root's `ray start` left it
        token.write_text("a" * 64)
        token.chmod(0o644)
        _token_env(monkeypatch, home)
        said = said_as_nobody(keep_token_private)
        assert said.startswith(f"Ray's token {token} is root's and can be read by other users "
                               "(mode 644)") and "RAY_AUTH_TOKEN_PATH" in said, said
        assert token.stat().st_mode & 0o777 == 0o644 and token.read_text() == "a" * 64
        os.chown(token, 0, 65534)
        token.chmod(0o640)  # nobody's primary group, nogroup, is also _apt's and sync's (Debian): they read it
        said = said_as_nobody(keep_token_private)
        assert said.startswith(f"Ray's token {token} is root's and can be read by other users (mode 640)"), said
        token.chmod(0o600)  # root's alone
        assert said_as_nobody(keep_token_private) == "ok"
        assert token.stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(home)


def _sharing_primary_group(gid: int) -> bool:
    import grp
    import pwd

    return len([p for p in pwd.getpwall() if p.pw_gid == gid]) > 1 or len(grp.getgrgid(gid).gr_mem) > 1


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
@pytest.mark.skipif(not _sharing_primary_group(65534), reason="needs a primary group other users share")
def test_a_primary_group_other_users_share_is_not_taken_for_the_user_s_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group-writable token folder of the user's primary group was taken as the user's own: where users share
    one primary group (``users``; nobody's nogroup is also _apt's), any of them could put their token there."""
    import tempfile

    from conftest import said_as_nobody

    from tunesmith.execution.ray import keep_token_private

    home = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        home.chmod(0o755)
        os.chown(home, 65534, 65534)
        folder = home / ".ray"
        folder.mkdir(mode=0o770)
        folder.chmod(0o770)
        os.chown(folder, 65534, 65534)
        _token_env(monkeypatch, home)
        said = said_as_nobody(keep_token_private)
        assert said.startswith(f"the folder of Ray's token {folder} can be written by other users (mode 770)"), said
        assert os.listdir(folder) == []  # no token written where they could put theirs
        folder.chmod(0o700)
        assert said_as_nobody(keep_token_private) == "ok"
        assert (folder / "auth_token").stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(home)


TOKEN_KILLED_WRITER = """
import os, signal, sys
from tunesmith.execution import ray

link = os.link
def killed(src, dst, **kw):  # as it links its draft in place: before, or after
    if sys.argv[1] == "after":
        link(src, dst, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
os.link = killed
ray.keep_token_private()
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_token_draft_left_by_a_process_killed_as_it_links_it_is_removed_later(
        when: str, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A process killed between writing the token's draft and removing it (before its link: no token; after:
    a second name of it) left ``.auth_token.XXXX.tmp`` in ``~/.ray`` for good, one a kill. A later start of a
    private instance writes the token if none is there, and removes such drafts once a minute old."""
    env = {**subprocess_env, "HOME": str(tmp_path / "home")}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    killed = subprocess.run([sys.executable, "-c", TOKEN_KILLED_WRITER, when], env=env, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    folder = tmp_path / "home" / ".ray"
    drafts = list(folder.glob(".auth_token.*.tmp"))
    assert len(drafts) == 1 and (folder / "auth_token").exists() == (when == "after"), list(folder.iterdir())
    again = subprocess.run([sys.executable, "-c", TOKEN_READER], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert drafts[0].exists()  # a moment old: it may be another process's, being written
    old = time.time() - 120
    os.utime(drafts[0], (old, old))
    again = subprocess.run([sys.executable, "-c", TOKEN_READER], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    token = folder / "auth_token"
    assert sorted(p.name for p in folder.iterdir()) == ["auth_token"]  # before: the draft kept
    assert len(token.read_text()) == 64 and token.stat().st_mode & 0o777 == 0o600
    assert again.stdout.strip().strip("'") == token.read_text()


def _kills_its_worker_on_trial_0(trial: Any) -> float:
    if trial.number == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params["x"])


def _tunesmith_actors(ray: Any) -> dict[str, Any]:
    from ray._private import state  # the GCS's actor table: no dashboard needed

    return {k: v for k, v in state.actors().items() if v["ActorClassName"] in ("EvalWorker", "StudyWorker")}


def _cpus_free(ray: Any, cpus: float, within: float = 60.0) -> bool:
    end = time.monotonic() + within
    while ray.available_resources().get("CPU", 0.0) < cpus and time.monotonic() < end:
        time.sleep(0.2)
    return bool(ray.available_resources().get("CPU", 0.0) >= cpus)


def test_an_actor_starting_as_optimize_ends_is_killed_once_it_is_up(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, optimize's end killed a replacement actor still starting: Ray may ignore that kill
    (ray-project/ray#27743) and its worker then becomes the actor anyway, holding a CPU for the
    rest of the instance (a second optimize needing it waited forever). Its actor's record said
    ``never_started``: it is now given time to come up first, then killed."""
    from tunesmith.execution import ray as ray_executor

    monkeypatch.setattr(ray_executor, "START_GRACE", 300.0)  # a loaded machine starts a worker slowly
    before = set(_tunesmith_actors(ray_local))
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    study.optimize(_kills_its_worker_on_trial_0, n_trials=4, n_jobs=2, executor="ray")
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3
    ours = {k: v for k, v in _tunesmith_actors(ray_local).items() if k not in before}
    assert len(ours) == 3  # the two actors and the lost one's replacement
    # a record's DeathCause is a protobuf message
    never = [k for k, v in ours.items() if v["DeathCause"].actor_died_error_context.never_started]
    assert not never, f"killed before they started: {never}"
    assert _cpus_free(ray_local, 2.0)


class _Holder:
    def up(self) -> bool:
        return True


def _hold_a_cpu(ray: Any) -> Any:
    assert _cpus_free(ray, 2.0)  # an earlier test's killed actors give theirs back in a while
    holder = ray.remote(_Holder).options(num_cpus=1).remote()
    ray.get(holder.up.remote(), timeout=120)
    return holder


def test_an_actor_that_cannot_start_for_ray_start_timeout_fails_optimize_naming_what_holds_it(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a trial needing both CPUs of the instance, one held by other work (here an actor; a
    worker Ray leaked after a kill as it started holds one the same way), waited forever, silently
    (the cluster's nodes fit it, so no ClusterLost)."""
    from tunesmith.execution import ray as ray_executor

    monkeypatch.setattr(ray_executor, "START_WARN_AFTER", 1.0)
    holder = _hold_a_cpu(ray_local)
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    try:
        with caplog.at_level("WARNING", logger="tunesmith"), \
                pytest.raises(ray_executor.ActorsNotStarted) as err:
            study.optimize(_objective, n_trials=2, executor="ray", resources_per_trial={"cpu": 2},
                           ray_start_timeout=4.0)
    finally:
        ray_local.kill(holder)
    said = str(err.value)
    assert "no Ray actor could start in 4 s (ray_start_timeout)" in said
    assert "a trial needs {'CPU': 2.0}, the cluster has {'CPU': 1.0} free of {'CPU': 2.0}" in said
    assert "ray-project/ray#27743" in said and "ray.shutdown()" in said
    assert "1 Ray actor(s) waited over 1 s to start: a trial needs {'CPU': 2.0}" in caplog.text
    assert "this optimize's actors: 1 still starting. Other work on the cluster holds {'CPU': 1.0}" in said
    assert study.trials == []  # an actor gets trials only once it is up
    assert _cpus_free(ray_local, 2.0)
    study.optimize(_objective, n_trials=2, executor="ray", resources_per_trial={"cpu": 2}, ray_start_timeout=120.0)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_an_actor_waiting_for_resources_is_said_and_starts_once_they_are_freed(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tunesmith.execution import ray as ray_executor

    monkeypatch.setattr(ray_executor, "START_WARN_AFTER", 1.0)
    holder = _hold_a_cpu(ray_local)
    said = "waited over 1 s to start"

    def free_once_said() -> None:
        end = time.monotonic() + 300
        while said not in caplog.text and time.monotonic() < end:
            time.sleep(0.1)
        ray_local.kill(holder)

    freer = threading.Thread(target=free_once_said, daemon=True)
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    with caplog.at_level("WARNING", logger="tunesmith"):
        freer.start()
        try:
            study.optimize(_objective, n_trials=2, executor="ray", resources_per_trial={"cpu": 2})
        finally:
            freer.join()
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert caplog.text.count(said) == 1  # once per actor
    assert "free of {'CPU': 2.0}; this optimize's actors: 1 still starting. Other work on the cluster holds" in caplog.text


def test_the_warning_on_a_slow_start_counts_what_optimizes_own_actors_can_hold() -> None:
    """It blamed other work on the cluster for every resource held, where only optimize's own actors held
    them (two actors still starting on a loaded machine: Ray holds their CPUs from when their workers are
    leased, "{'CPU': 0.0} free of {'CPU': 2.0}" with nothing else on the instance)."""
    from tunesmith.execution.ray import Holders, held_resources

    cpu, two = {"CPU": 1.0}, {"CPU": 2.0}
    all_own = held_resources(cpu, {"CPU": 0.0}, two, Holders(starting=2))
    assert "this optimize's actors: 2 still starting. This optimize's own actors may hold all of it" in all_own
    assert "Other work" not in all_own and "ray.shutdown()" not in all_own
    assert "Other work" not in held_resources(cpu, {"CPU": 0.0}, two, Holders(up=1, ending=1))
    # one up and one starting on three CPUs, none free: one CPU is held by something else at least
    other = held_resources(cpu, {"CPU": 0.0}, {"CPU": 3.0}, Holders(up=1, starting=1))
    assert "1 up, 1 still starting. Other work on the cluster holds {'CPU': 1.0}" in other and "ray.shutdown()" in other
    # a 2-CPU actor cannot be starting on the one CPU held: it waits, and the CPU held is another's
    assert "Other work on the cluster holds {'CPU': 1.0}" in held_resources(two, {"CPU": 1.0}, two, Holders(starting=1))
    assert "Other work on the cluster holds {'CPU': 1.0}" in held_resources(cpu, {"CPU": 1.0}, two, Holders())


def _sleeps_briefly(trial: Any) -> float:
    time.sleep(1.5)
    return float(trial.params["x"])


def test_an_actor_waiting_for_resources_longer_than_the_grace_is_killed_at_once_as_optimize_ends(
    ray_local: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, an actor waiting for resources held elsewhere (here a CPU another actor holds) kept
    every optimize's end waiting the whole grace (30 s) for it, though it had waited that long
    already: its kill cancels a request for resources, which Ray's race does not touch. The grace
    now counts from when the actor was asked for."""
    from tunesmith.execution import ray as ray_executor

    monkeypatch.setattr(ray_executor, "START_GRACE", 2.0)
    holder = _hold_a_cpu(ray_local)
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    try:
        with caplog.at_level("INFO", logger="tunesmith"):  # 2 trials of 1.5 s: the second actor waits 3 s at least
            study.optimize(_sleeps_briefly, n_trials=2, n_jobs=2, executor="ray")
    finally:
        ray_local.kill(holder)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert "still starting" not in caplog.text
    assert _cpus_free(ray_local, 2.0)


_PRIVATE_SCRIPT = """
import logging, os, signal, sys
import tunesmith as ts
from tunesmith.execution import ray as ray_executor

ray_executor.START_GRACE = 300.0  # as in a loaded machine's test above: the replacement is still starting
logging.getLogger("tunesmith").setLevel(logging.INFO)

def objective(trial):
    if trial.number == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return trial.params["x"]

study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
study.optimize(objective, n_trials=4, n_jobs=2, executor="ray", ray_init={
    "num_cpus": 2, "_temp_dir": sys.argv[1], "include_dashboard": False, "log_to_driver": False,
    "_node_ip_address": "127.0.0.1"})
print("STATES", sorted(t.state.value for t in study.trials), flush=True)
"""


def test_optimize_on_the_private_instance_it_started_does_not_wait_for_an_actor_still_starting(
    subprocess_env: dict[str, str]
) -> None:
    """Before, optimize waited (about 6 s, up to 30 s) for the replacement actor still starting as it
    ended, though it then stops the instance it started itself, with every worker of it: a worker
    Ray leaked would hold nothing past that."""
    done = _run_own_instance(_PRIVATE_SCRIPT, "tsp", subprocess_env, timeout=240)
    said = done.stdout + done.stderr
    assert "STATES ['complete', 'complete', 'complete', 'failed']" in done.stdout, said[-3000:]
    assert "a Ray worker was lost" in said  # a replacement was asked for
    assert "still starting" not in said, said[-3000:]


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_optimize_returns_once_the_processes_of_the_actors_it_killed_have_ended(
    ray_local: Any, tmp_path: Path, storage: str
) -> None:
    """Ray's kill only asks: optimize returned while the processes of the actors it killed (at its end, and
    one replaced on trial_timeout) still ran, holding their CPUs: whatever ran next on the same
    ``ray.init()`` (a second optimize, the next test) could find them held."""
    from tunesmith.execution.ray import process_runs

    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'e.db'}"
    before = set(_tunesmith_actors(ray_local))
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="e")
    study.optimize(_hangs_on_one, n_trials=4, n_jobs=2, executor="ray", trial_timeout=2.0)
    ours = {k: v for k, v in _tunesmith_actors(ray_local).items() if k not in before}
    pids = [v["Pid"] for v in ours.values() if v["Pid"]]
    assert len(pids) >= 3, ours  # the two actors and the timed-out one's replacement
    assert not [pid for pid in pids if process_runs(pid)], "killed actors' processes still ran as optimize returned"
    assert Counter(t.state.value for t in study.trials) == Counter({"complete": 3, "failed": 1})
