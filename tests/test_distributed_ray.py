"""The Ray executor on a real private Ray instance (loopback only)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from tunesmith import Float, Study, TrialPruned, TrialState, WorkersLost
from tunesmith.execution.ray import RayExecutor, check_resources, fit_workers
from tunesmith.pruners import Decision, Pruner

pytestmark = pytest.mark.slow

try:  # Ray workers cannot import this test module: ship its functions by value
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - the tests skip without Ray
    pass


def objective(trial: Any) -> float:
    v = (trial.params["x"] - 0.3) ** 2
    trial.report(v * 2, 0)
    trial.set_attr("pid", os.getpid())
    return float(v)


def _check(study: Study, n: int) -> None:
    trials = study.trials
    assert [t.number for t in trials] == list(range(n))
    for t in trials:
        assert t.state is TrialState.COMPLETE
        assert t.value == pytest.approx((t.params["x"] - 0.3) ** 2)
        assert t.intermediate == {0: pytest.approx(2 * t.value)}
        assert t.attrs["pid"] != os.getpid()  # evaluated in a Ray worker process


def test_ray_in_memory_driver_asks_and_tells(ray_local: Any) -> None:
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    study.optimize(objective, n_trials=30, executor="ray", resources_per_trial={"cpu": 1})
    _check(study, 30)
    # two actors fit the two CPUs; one that starts late may find the trials done (an actor gets trials once up)
    assert 1 <= len({t.attrs["pid"] for t in study.trials}) <= 2
    # the worker that ran each trial, not the driver that asked it
    assert all(t.worker and t.worker.endswith(f":{t.attrs['pid']}") for t in study.trials)


def test_another_address_than_the_initialized_ray_s_is_refused_naming_both(ray_local: Any) -> None:
    """With Ray already initialized, a different ray_address was silently ignored."""
    import ray

    running = ray.get_runtime_context().gcs_address
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    with pytest.raises(ValueError, match=rf"ray_address='127.0.0.1:1', .*connected to '{running}'"):
        study.optimize(objective, n_trials=2, executor="ray", ray_address="127.0.0.1:1")
    assert len(study.trials) == 0 and ray.is_initialized()
    study.optimize(objective, n_trials=2, executor="ray", ray_address=running)  # the same cluster: used
    study.optimize(objective, n_trials=2, executor="ray")  # None: the running instance, as documented
    _check(study, 4)


def test_ray_init_options_ignored_by_an_initialized_ray_are_named(ray_local: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, executor="ray", ray_init={"num_cpus": 8})
    assert "ray_init ['num_cpus'] ignored: Ray is already initialized in this process" in caplog.text


def test_ray_sql_workers_open_the_study_by_url(ray_local: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s")
    study.optimize(objective, n_trials=30, n_jobs=2, executor="ray")
    _check(study, 30)
    workers = {t.worker for t in study.trials}
    assert 1 <= len(workers) <= 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)


def _dies_once(marker: str) -> Any:
    def fn(trial: Any) -> float:
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(trial.number))
            trial.report(7.0, 0)
            os.kill(os.getpid(), signal.SIGKILL)  # the Ray worker process dies mid-trial
        return float(trial.params["x"])

    return fn


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_worker_killed_mid_trial(ray_local: Any, tmp_path: Path, storage: str) -> None:
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  heartbeat_interval=1.0, requeue_failed=True)
    marker = tmp_path / "died"
    study.optimize(_dies_once(str(marker)), n_trials=12, n_jobs=2, executor="ray")
    number = int(marker.read_text())
    trials = {t.number: t for t in study.trials}
    lost = trials[number]
    assert lost.state is TrialState.FAILED and "ray worker lost" in (lost.error or "")
    if storage == "sqlite":
        assert lost.intermediate == {0: 7.0}  # reported before it died, kept
    copy = trials[lost.system.requeued_as]
    assert copy.params == lost.params and copy.state is TrialState.COMPLETE
    finished = [t for t in trials.values() if t.state.is_finished]
    assert len(finished) == len(trials) and sum(t.state is TrialState.COMPLETE for t in finished) >= 11


def _kills_its_worker_at_half(trial: Any) -> float:
    if trial.params["x"] == 0.5:  # the trial and its re-queued copy both kill their actor
        os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params["x"])


def test_ray_lost_queued_trials_and_copies_run_no_extra_trials(ray_local: Any, tmp_path: Path) -> None:
    """Before, each of two losses gave back one budget unit too many, and optimize ran 5 new
    trials for n_trials=3: a lost copy is failed without a copy of its own (once per trial),
    yet a unit was given back for one; a queued trial made before the call was not counted
    among the trials its lost actor had started."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 's.db'}", name="s",
                  heartbeat_interval=5.0, requeue_failed=True)
    study.enqueue({"x": 0.5})
    study.optimize(_kills_its_worker_at_half, n_trials=3, n_jobs=1, executor="ray")
    trials = study.trials
    lost, copy = trials[0], trials[trials[0].system.requeued_as]
    assert lost.state is copy.state is TrialState.FAILED and copy.system.requeued_as is None
    new = [t for t in trials if t.system.retry_of is None]
    assert len(new) == 3 and [t.state for t in new[1:]] == [TrialState.COMPLETE] * 2


def test_ray_options_are_checked() -> None:
    with pytest.raises(ValueError, match="auto"):
        RayExecutor(address="auto")
    with pytest.raises(ValueError, match="gpu"):
        check_resources({"gpu": -1}, None)
    with pytest.raises(ValueError, match="either"):
        check_resources({"gpu": 0.5}, 2)
    assert check_resources(None, 4) == {"gpu": 0.25, "cpu": 1.0}
    assert fit_workers({"CPU": 8.0, "GPU": 1.0}, {"cpu": 1.0, "gpu": 0.25}) == 4
    assert fit_workers({"CPU": 3.0}, {"cpu": 1.0}) == 3
    with pytest.raises(ValueError, match="no node of the Ray cluster can run one trial"):
        fit_workers({"CPU": 2.0}, {"cpu": 1.0, "gpu": 1.0})
    study = Study({"x": Float(0, 1)})
    with pytest.raises(TypeError, match="does not take"):
        study.optimize(objective, n_trials=1, executor="ray", gpus=[0])
    with pytest.raises(ValueError, match=r"^start_timeout must be a positive number of seconds or None, got 0$"):
        RayExecutor(start_timeout=0)
    with pytest.raises(ValueError, match=r"^ray_start_timeout must be a positive number of seconds or None, got '9'$"):
        study.optimize(objective, n_trials=1, executor="ray", ray_start_timeout="9")
    assert RayExecutor(start_timeout=30).start_timeout == 30.0
    for bad in ("x", 0, None, float("nan")):
        with pytest.raises(ValueError, match=rf"^lost_after must be a positive number of seconds, got {bad!r}$"):
            RayExecutor(lost_after=bad)


def test_resources_fit_on_one_node_and_take_ray_s_own_names() -> None:
    """A trial needing 3 CPUs on nodes of 2 and 1 was started and waited forever (the cluster's
    total was compared); Ray's names (CPU, num_gpus) failed inside Ray or were taken as custom."""
    assert fit_workers([{"CPU": 2.0}, {"CPU": 1.0}], {"cpu": 1.0}) == 3
    assert fit_workers([{"CPU": 2.0, "GPU": 1.0}, {"CPU": 4.0}], {"cpu": 1.0, "gpu": 0.5}) == 2
    with pytest.raises(ValueError, match=r"CPU 3 per trial, the largest node has 2"):
        fit_workers([{"CPU": 2.0}, {"CPU": 1.0}], {"cpu": 3.0})
    with pytest.raises(ValueError, match=r"foo 1 per trial, the largest node has 0.*ray start --resources"):
        fit_workers([{"CPU": 2.0}], {"cpu": 1.0, "foo": 1.0})
    assert check_resources({"CPU": 2, "num_gpus": 0.5}, None) == {"cpu": 2.0, "gpu": 0.5}
    assert RayExecutor(resources_per_trial={"memory": 1e9})._options() == {
        "num_cpus": 1.0, "num_gpus": 0.0, "max_restarts": 0, "memory": 1e9}
    with pytest.raises(ValueError, match="object_store_memory.*cannot be reserved"):
        check_resources({"object_store_memory": 1e9}, None)
    with pytest.raises(ValueError, match="'cpu' twice"):
        check_resources({"cpu": 1, "num_cpus": 2}, None)


@pytest.mark.timeout(60)
def test_more_ray_workers_than_the_cluster_fits_are_capped(ray_local: Any, caplog: pytest.LogCaptureFixture) -> None:
    """n_jobs=4 actors of 1 CPU on 2 CPUs: two never started, their trials stayed running and optimize hung."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    # memory: bytes of the node's memory, a Ray option that Ray refused among the resources
    study.optimize(objective, n_trials=8, n_jobs=4, executor="ray", resources_per_trial={"cpu": 1, "memory": 1e8})
    _check(study, 8)
    assert "n_jobs=4, but the Ray cluster's nodes fit 2 trial(s)" in caplog.text


def test_an_objective_ray_workers_cannot_import_leaves_no_trial_running(ray_local: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its trials, asked for actors that never started, stayed running for good; the error
    was Ray's whole traceback, with no way to ship the module."""
    (tmp_path / "only_here.py").write_text("def objective(trial):\n    return trial.params['x']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here  # type: ignore[import-not-found]

    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    with pytest.raises(WorkersLost, match=r"could not start in Ray: .*No module named 'only_here'\. .*py_modules"):
        study.optimize(only_here.objective, n_trials=4, executor="ray")
    assert {t.state for t in study.trials} == {TrialState.WAITING}


def test_actors_that_cannot_open_the_storage_are_told_so_not_to_ship_a_module(
        ray_local: Any, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver found the PostgreSQL password in PGPASSWORD, the cluster's workers (started
    without it) did not: the error told the user to install or ship the objective's module."""
    url = pg_server.password_role(f"ray_pw_{os.getpid()}_{time.monotonic_ns()}", "s3cret-pw")
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")  # this process only: the running instance's workers lack it
    study = Study({"x": Float(0, 1)}, storage=url, name="no-pw", sampler="random", seed=0)
    with pytest.raises(WorkersLost, match="could not start in Ray: .*(no password supplied|password authentication failed)") as err:
        study.optimize(objective, n_trials=2, executor="ray")
    assert "where `ray start` ran on each node" in str(err.value) and "py_modules" not in str(err.value)
    assert study.trials == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_an_actor_that_cannot_start_holds_no_trial(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """One of the two CPUs is held by other work: the second actor waited for it with its
    trials queued (in memory: asked, running), and optimize never returned. So did the
    replacement of an actor whose node was lost, while the other nodes were busy."""
    import ray

    @ray.remote(num_cpus=1)
    class Other:
        def ready(self) -> bool:
            return True

    other = Other.remote()  # type: ignore[attr-defined]
    ray.get(other.ready.remote())
    try:
        url = None if storage == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
        study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="b")
        study.optimize(objective, n_trials=6, executor="ray", resources_per_trial={"cpu": 1})
        _check(study, 6)
        assert len({t.attrs["pid"] for t in study.trials}) == 1
    finally:
        ray.kill(other)


def _one_runs_the_others_die(trial: Any) -> float:
    if trial.number == 0:  # still running when optimize gives up on the lost workers, however long the
        time.sleep(600)  # three replacements take to start (over 30 s on a loaded machine): only the kill ends it
    else:
        os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_giving_up_on_lost_ray_workers_leaves_no_trial_running(
    ray_local: Any, tmp_path: Path, storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_REPLACEMENTS lost workers optimize raised WorkersLost and killed the other actors,
    whose trials stayed running for good."""
    monkeypatch.setattr("tunesmith.execution.ray.MAX_REPLACEMENTS", 2)
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'g.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="g")
    with pytest.raises(WorkersLost, match="3 Ray workers were lost"):
        study.optimize(_one_runs_the_others_die, n_trials=20, n_jobs=2, executor="ray")
    running = study.trials[0]
    assert running.state is TrialState.FAILED and running.error.startswith("stopped: 3 Ray workers were lost")
    assert TrialState.RUNNING not in {t.state for t in study.trials}


def _half_a_second(trial: Any) -> float:
    time.sleep(0.5)
    return float(trial.params["x"])


def test_ray_in_memory_a_trial_s_duration_leaves_out_its_wait_in_the_queue(ray_local: Any) -> None:
    """A trial's start was when the driver asked it: the one queued behind another in its
    actor read twice its duration (show's seconds, the plots)."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    study.optimize(_half_a_second, n_trials=4, executor="ray", resources_per_trial={"cpu": 2})
    trials = study.trials
    assert all(t.duration is not None and t.duration >= 0.5 for t in trials), [t.duration for t in trials]
    # one actor (2 CPUs, 2 a trial): each trial started once the one before it had run its 0.5 s,
    # not when it was queued behind it (before: all about at once, durations about 1 s)
    for before, after in zip(trials, trials[1:], strict=False):
        assert before.started is not None and after.started is not None and after.started >= before.started + 0.5


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.execution.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[ray\]'"):
        import_ray()
    # an older Ray than the extra asks for failed later, deep inside Ray (2.9.3: its dashboard imports
    # pkg_resources, which setuptools 81 and later lack; 2.48: "Broken pipe" out of optimize when its node is lost)
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(__version__="2.48.0"))
    with pytest.raises(ImportError, match=r"needs Ray >= 2.49, found Ray 2.48.0: pip install -U 'tunesmith\[ray\]'"):
        import_ray()
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["ray"] == ["ray[default]>=2.49"] and "ray[tune]>=2.49" in extras["bench"]


def test_two_ray_nodes_on_loopback_run_trials_in_two_places(tmp_path: Path) -> None:
    from ray_util import CLUSTER_ENV, TwoNodeCluster
    from workers import env, write_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    Study({"x": Float(0, 1)}, storage=url, name="s", sampler="random", seed=5)
    # A trial waits until a trial has started on each node: the second node's actor starts a
    # second or more after the first (a loaded machine: slower), and meanwhile the first
    # ran all 24 trials of 0.05 s. With only one actor started, the wait runs out and the
    # assertion below fails.
    ran = tmp_path / "ran"
    ran.mkdir()
    (tmp_path / "nodes.py").write_text(
        "import os, pathlib, time, ray\n"
        f"RAN = pathlib.Path({str(ran)!r})\n"
        "def objective(trial):\n"
        "    node = ray.get_runtime_context().get_node_id()\n"
        "    trial.set_attr('node', node)\n"
        "    trial.set_attr('parent', pathlib.Path(f'/proc/{os.getppid()}/comm').read_text().strip())\n"
        "    (RAN / node).touch()\n"
        "    end = time.monotonic() + 60\n"
        "    while len(list(RAN.iterdir())) < 2 and time.monotonic() < end:\n"
        "        time.sleep(0.05)\n"
        "    return trial.params['x']\n"
    )
    path = write_study(tmp_path, url, objective="nodes.py:objective", resources_per_trial={"cpu": 1})
    with TwoNodeCluster(cpus_per_node=1) as cluster:
        res = subprocess.run(
            [sys.executable, "-m", "tunesmith", "run", str(path), "--executor", "ray",
             "--address", cluster.address, "--n-trials", "24"],
            env=env(**CLUSTER_ENV), capture_output=True, timeout=300,
        )
        assert res.returncode == 0, (res.stdout + res.stderr).decode()[-4000:]
    trials = Study.load("s", url).trials
    assert len(trials) == 24 and all(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.attrs["node"] for t in trials}) == 2  # both nodes ran trials
    # an actor's process is its node's raylet's child on each node (StudyWorker.orphaned watches that parent)
    assert {t.attrs["parent"] for t in trials} == {"raylet"}


def _curve_at_x(trial: Any) -> float:
    x = trial.params["x"]
    for epoch in range(max(trial.start_step, 1), 10):
        trial.report(x, epoch)
        if trial.should_prune():
            raise TrialPruned()
    return float(x)


def test_ray_sql_workers_pause_resume_and_finish_earned_promotions(
    ray_local: Any, tmp_path: Path
) -> None:
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 's.db'}"
    # bootstrap_count=2: a trial alone at a rung pauses, so whichever actor gets
    # there first, some trial pauses and later earns its promotion (with the
    # default, x=0.6 could outrun x=0.5 through every rung and nothing pauses
    # that is ever promotable).
    pruner = ASHA(
        pause=True, min_resource=1, reduction_factor=3, max_resource=9, bootstrap_count=2
    )
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s", pruner=pruner)
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})
    study.optimize(_curve_at_x, n_trials=6, executor="ray")  # two actors: any interleaving
    trials = study.trials
    assert len(trials) == 6  # resumes did not count as new trials
    assert pruner.promotable(trials, study.direction) == []  # every earned promotion ran
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PAUSED}
    assert sum(t.system.n_resumes for t in trials) >= 1  # paused trials were resumed
    assert trials[0].state is TrialState.COMPLETE and trials[0].last_step == 9  # the best, x=0.5


def _dies_in_its_first_resumed_run(trial: Any) -> float:
    from tunesmith import TrialPaused

    if trial.is_resumed:
        if trial.system.n_resumes == 1:
            os._exit(1)  # the Ray worker dies in the trial's first resumed run (OOM-killed, say)
        for step in range(trial.start_step, 4):
            trial.report(0.5, step)
        return 0.5
    trial.report(1.0 + trial.number, 1)
    trial.set_attr("checkpoint", f"ck{trial.number}.pt")
    if trial.should_prune():
        raise TrialPaused()
    return 1.0 + trial.number


def test_ray_a_promotion_held_by_a_lost_worker_runs_before_optimize_returns(
    ray_local: Any, tmp_path: Path
) -> None:
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  pruner=ASHA(min_resource=1, reduction_factor=4, pause=True, bootstrap_count=2, max_resource=4))  # fmt: skip
    # one actor: trials 0 and 1 in turn (n_jobs=1 under Ray starts as many as fit, two here, and
    # trial 0 went on to complete whenever trial 1 reported first)
    study.optimize(_dies_in_its_first_resumed_run, n_trials=2, executor=RayExecutor(n_workers=1))
    first = study.trials[0]  # paused at rung 1 (waiting for a 2nd trial), promoted, its worker died
    assert first.state is TrialState.COMPLETE and first.system.n_resumes == 2
    assert study.trials_in("failed") == []


def _its_raylet_gone_after_the_last_trial(trial: Any) -> float:
    from tunesmith import TrialPaused

    if trial.is_resumed:
        for step in range(trial.start_step, 4):
            trial.report(0.5, step)
        return 0.5
    trial.report(1.0 + trial.number, 1)
    if trial.number == 1:  # the last new trial: its actor's raylet is gone from now on, its process outliving it
        import gc

        from tunesmith.execution.ray_worker import StudyWorker

        actor = next(o for o in gc.get_objects() if isinstance(o, StudyWorker))
        actor.raylet = -1  # its parent is no longer the raylet that started it, as once that raylet died
    if trial.should_prune():
        raise TrialPaused()
    return 1.0 + trial.number


def test_ray_an_actor_that_outlived_its_raylet_in_the_last_promotions_round_is_replaced(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The driver's last round asks each actor for a promotion; one that outlived its node's raylet runs
    none: its "none was promotable" ended optimize with trial 0's earned promotion left for the next run. It
    answers late now; the driver replaces it and asks again. (An actor really outliving its raylet is
    tests/test_execution_ray.py's; this one is told its raylet is gone, as such an actor finds it.)"""
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  pruner=ASHA(min_resource=1, reduction_factor=4, pause=True, bootstrap_count=2, max_resource=4))  # fmt: skip
    # one actor: trial 0 pauses alone at rung 1, trial 1 (worse) promotes it as the budget ends
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(_its_raylet_gone_after_the_last_trial, n_trials=2, executor=RayExecutor(n_workers=1))
    first = study.trials[0]
    assert first.state is TrialState.COMPLETE and first.system.n_resumes == 1, study.trials  # before: paused
    assert "its node's raylet is gone" in caplog.text, caplog.text
    assert len(study.trials) == 2 and study.trials_in("failed") == []


def _dies_resuming_without_a_checkpoint(trial: Any) -> float:
    from tunesmith import TrialPaused

    if trial.system.retry_of is not None:
        return 0.1  # the re-queued copy of the lost trial
    if trial.is_resumed:
        os._exit(1)  # no checkpoint: the lost trial is failed and re-queued
    trial.report(1.0 + trial.number, 1)
    if trial.should_prune():
        raise TrialPaused()
    return 1.0 + trial.number


def test_ray_a_copy_requeued_while_draining_promotions_runs(ray_local: Any, tmp_path: Path) -> None:
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  pruner=ASHA(min_resource=1, reduction_factor=4, pause=True, bootstrap_count=2, max_resource=4), heartbeat_interval=1.0,
                  requeue_failed=True)  # fmt: skip
    seen: list[int] = []
    # one actor, as above: with two, trial 0 completed whenever trial 1 reported first
    study.optimize(_dies_resuming_without_a_checkpoint, n_trials=2, executor=RayExecutor(n_workers=1),
                   callbacks=[lambda s, r: seen.append(r.number)])  # fmt: skip
    lost = study.trials[0]
    assert lost.state is TrialState.FAILED and lost.system.n_resumes == 1 and lost.system.requeued_as is not None
    # a resume took no unit, so its lost run gives none back: the copy, a new trial, waits for a call with one
    assert study.trials[lost.system.requeued_as].state is TrialState.WAITING, study.trials
    study.optimize(_dies_resuming_without_a_checkpoint, n_trials=1, executor=RayExecutor(n_workers=1),
                   callbacks=[lambda s, r: seen.append(r.number)])  # fmt: skip
    copy = study.trials[lost.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.value == 0.1 and copy.number in seen
    assert len(study.trials) == 3, study.trials


def test_the_private_ray_instance_stays_on_loopback(ray_local: Any) -> None:
    # no test may reach the machine's own network address: every node must be on 127.0.0.1
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
    gcs = ray_local.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:"), gcs


def _dies_once_after_the_grid_ran_out(trial: Any) -> float:
    import time

    if trial.params["x"] == 1 and trial.system.retry_of is None:
        time.sleep(2.0)  # meanwhile the other actor finds the grid exhausted
        os._exit(1)
    return float(trial.params["x"])


def test_ray_runs_a_requeued_copy_after_the_grid_is_exhausted(ray_local: Any, tmp_path: Path) -> None:
    from tunesmith import Categorical

    study = Study({"x": Categorical([0, 1])}, sampler="grid", storage=f"sqlite:///{tmp_path / 's.db'}",
                  name="s", heartbeat_interval=1.0, requeue_failed=True)  # fmt: skip
    study.optimize(_dies_once_after_the_grid_ran_out, n_jobs=2, executor="ray")
    lost = next(t for t in study.trials if t.system.requeued_as is not None)
    copy = study.trials[lost.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.params == lost.params == {"x": 1}


@pytest.mark.timeout(120)
def test_ray_returns_with_a_held_promotion_its_pruner_cannot_resume(ray_local: Any, tmp_path: Path) -> None:
    from tunesmith.pruners import ASHA
    from tunesmith.storage.base import worker_id

    url = f"sqlite:///{tmp_path / 's.db'}"
    first = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s", pruner=ASHA(min_resource=1, reduction_factor=4, pause=True))
    t = first.ask()
    t.report(1.0, 1)
    t.set_attr("checkpoint", "ck.pt")
    first.tell(t, state="paused")
    assert first.ask().is_resumed
    first.fail_worker(worker_id(), "worker process died", dead=True)  # held: paused, keeps its promotion
    later = Study(storage=url, name="s", pruner="median")  # a pruner that never resumes anything
    later.optimize(objective, n_trials=2, executor="ray")  # must not spin on the held trial
    assert later.trials[0].state is TrialState.PAUSED and len(later.trials) == 3


class _PausesNone(Pruner):
    """Stops no trial, but pauses: the study resumes a held trial."""

    pauses = True

    def decide(self, trial: Any, trials: Any, direction: Any) -> Decision:
        return Decision.CONTINUE

    def promotable(self, trials: Any, direction: Any) -> list[int]:
        return []


def _killed_after_its_first_report(marker: str, trial: Any) -> float:
    """Trial 0's actor process is SIGKILLed once, after its first report and that report's checkpoint."""
    for step in range(max(trial.start_step, 1), 4):
        trial.report(float(trial.params["x"]) + step, step, checkpoint=f"ck{trial.number}-{step}")
        if trial.number == 0 and not trial.is_resumed:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params["x"])


@pytest.mark.timeout(180)
def test_ray_a_dead_actor_s_trial_never_paused_is_held_and_resumed_without_requeue_failed(
        ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An actor SIGKILLed in a trial never paused that reported with a checkpoint, under a pruner that
    pauses, without requeue_failed or heartbeats: the trial goes back to paused (as a worker process's),
    is resumed from its checkpoint by the actor put in its place, and counts once in n_trials (its unit was
    given back, the hold having cleared its worker: 4 new trials ran for n_trials=3)."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 's.db'}",
                  name="s", pruner=_PausesNone())
    marker = tmp_path / "killed"
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(functools.partial(_killed_after_its_first_report, str(marker)), n_trials=3,
                       executor=RayExecutor(n_workers=1))
    assert "0 running trial(s) failed, 1 paused to go on from a checkpoint" in caplog.text
    assert marker.exists()
    trials = study.trials
    killed = trials[0]
    assert killed.state is TrialState.COMPLETE and killed.system.n_holds == 1 and killed.system.n_resumes == 1, killed
    assert sorted(killed.intermediate) == [1, 2, 3]  # on from its checkpoint: step 1 reported once
    assert len(trials) == 3 and not study.trials_in("failed"), [(t.number, t.state, t.error) for t in trials]


def _queues_trials_that_fail_in_the_drain(url: str, trial: Any) -> float:
    import time

    if trial.params["x"] == 1 and not trial.attrs:
        other = Study(storage=url, name="s")
        deadline = time.monotonic() + 60  # the other actor finishes its grid point (a loaded machine: slowly) ...
        while time.monotonic() < deadline and not any(
                t.params == {"x": 0} and t.state.value == "complete" for t in other.trials):
            time.sleep(0.05)
        time.sleep(1.0)  # ... and meanwhile finds the grid exhausted at its next ask
        for role in ("filler", "lost", "dies", "queued"):  # the filler goes to this actor's next call
            other.enqueue({"x": 0}, attrs={role: True})
        time.sleep(1.0)
    if trial.attrs.get("lost"):  # another worker judges this trial lost while it runs
        from tunesmith.storage.base import worker_id

        other = Study(storage=url, name="s")
        other.fail_worker(worker_id(), "judged lost", requeue=False)
    if trial.attrs.get("dies"):
        os._exit(1)
    return float(trial.params["x"])


def test_ray_drain_goes_on_past_waiting_trials_that_fail(ray_local: Any, tmp_path: Path) -> None:
    from tunesmith import Categorical

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Categorical([0, 1])}, sampler="grid", storage=url, name="s")
    study.optimize(functools.partial(_queues_trials_that_fail_in_the_drain, url), n_jobs=2, executor="ray")
    states = {next(iter(t.attrs), "grid"): t.state.value for t in study.trials}
    assert len(study.trials) == 6
    assert states == {"grid": "complete", "filler": "complete", "lost": "failed", "dies": "failed",
                      "queued": "complete"}  # fmt: skip


def _folder(trial: Any) -> float:
    from tunesmith.train import retention

    trial.set_attr("folder", str(retention.trial_folder(Path("/ckpt"), trial)))
    return 0.0


def test_ray_in_memory_actors_give_a_copy_its_own_checkpoint_folder(ray_local: Any) -> None:
    """An actor's trial knows only the study's name and id (``DetachedTrial``): a copy under the
    same name in another storage must write to its own folder there too, not the original's."""
    from tunesmith.storage import make_storage
    from tunesmith.train import checkpoint

    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, name="s")
    copy = study.copy(storage=make_storage(None))
    copy.optimize(_folder, n_trials=2, executor="ray", resources_per_trial={"cpu": 1})
    own = checkpoint.study_folder("/ckpt", "s", copy.copy_id)
    assert copy.copy_id is not None and own != checkpoint.study_folder("/ckpt", "s")
    assert [t.attrs["folder"] for t in copy.trials] == [str(own / f"trial-{n}") for n in range(2)]


def test_ray_in_memory_a_lost_actor_s_answered_call_keeps_its_result(ray_local: Any) -> None:
    """An actor that answered its first call and died in its second, the driver seeing the death
    first (both ended between two of its looks; which Ray's wait names first is not fixed): before,
    the first queued trial was taken as the one running, failed and its result dropped, and the
    trial that killed the actor was put back in the queue as never started."""
    from tunesmith.execution.base import Job
    from tunesmith.execution.ray import _Driver

    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    study.enqueue({"x": 0.25})
    study.enqueue({"x": 0.5})
    driver = _Driver(ray_local, RayExecutor(n_workers=1), Job(study, _kills_its_worker_at_half, 2, None, ()))
    try:
        driver._spawn()
        actor = driver.actors[0]
        ray_local.get(actor.who, timeout=60)
        actor.up = True
        assert driver._submit(actor)
        (first,) = list(actor.calls)
        # the first answer reaches the driver before the second call kills the actor: sent just
        # before a SIGKILL, Ray fails it with the death (under load, now and then), and then
        # no driver could keep its result
        assert ray_local.wait([first], timeout=60)[0]
        assert driver._submit(actor)
        second = list(actor.calls)[1]
        ray_local.wait([second], timeout=60)
        driver._collect(second)  # the death, collected before the first call's answer
        done, lost = study.trials
        assert done.state is TrialState.COMPLETE and done.value == 0.25
        assert lost.state is TrialState.FAILED and "ray worker lost" in (lost.error or "")
        assert first not in actor.calls and driver.actors[0] is not actor  # replaced
    finally:
        for a in driver.actors:
            ray_local.kill(a.handle)


def _raises_in_its_first_resumed_run(trial: Any) -> float:
    from tunesmith import TrialPaused

    if trial.is_resumed:
        raise KeyError("no checkpoint at resume")
    trial.report(1.0 + trial.number, 1)
    if trial.should_prune():
        raise TrialPaused()
    return 1.0 + trial.number


def test_ray_an_uncaught_exception_in_a_promoted_trial_is_raised_as_raised(ray_local: Any, tmp_path: Path) -> None:
    """Raised while the driver ran earned promotions, it came out of optimize as Ray's
    RayTaskError(KeyError), not the objective's KeyError as from a new trial."""
    from tunesmith.pruners import ASHA

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  pruner=ASHA(min_resource=1, reduction_factor=4, pause=True, bootstrap_count=2, max_resource=4))  # fmt: skip
    with pytest.raises(KeyError, match="no checkpoint at resume") as info:
        study.optimize(_raises_in_its_first_resumed_run, n_trials=2, executor=RayExecutor(n_workers=1),
                       catch=(ValueError,))
    assert type(info.value) is KeyError
    first = study.trials[0]
    assert first.state is TrialState.FAILED and "no checkpoint at resume" in (first.error or "")
    assert len(study.trials) == 2 and study.trials_in("running") == []


_OOM_SCRIPT = """
import json, os, sys, time
import numpy as np
import tunesmith as ts

def objective(trial):
    if trial.number == 1:  # grows until Ray's memory monitor kills its worker
        chunks = []
        for _ in range(int(os.environ["TS_CHUNKS"])):
            chunks.append(np.ones(2**27 // 8))
            time.sleep(0.02)
        time.sleep(60)
        return -float(len(chunks))
    return trial.params["x"]

storage = None if sys.argv[1] == "memory" else "sqlite:///" + sys.argv[2] + "/s.db"
study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=storage, name="s")
study.optimize(objective, n_trials=3, executor="ray",
               ray_init={"num_cpus": 1, "_temp_dir": sys.argv[3], "include_dashboard": False})
print(json.dumps([[t.state.value, t.error] for t in study.trials]))
"""


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_trial_whose_worker_ray_killed_for_memory_is_failed_saying_so(
    tmp_path: Path, subprocess_env: dict[str, str], storage: str
) -> None:
    """Ray's memory monitor killing an actor mid-trial ended optimize with Ray's OutOfMemoryError
    (not a RayActorError, which a lost worker was told by), its trial left running.

    The node counts as low on memory a quarter of its free memory (1.5 to 3 GiB) above what it uses
    now, by Ray's own measure (under a container's limit, not the host's memory); trial 1 grows until
    its worker is killed, 2 GiB past that line at most. Other jobs that take or free memory meanwhile
    only move the moment it is killed; one that takes more than the margin (less Ray's own processes)
    may get another trial's worker killed too, which is failed the same way (and if it holds it, every
    replacement: optimize gives up with WorkersLost, as it should). It cannot hang: trial 1 returns
    after 60 s if never killed (then this fails), and the run is killed after 150 s."""
    pytest.importorskip("ray")
    from ray._private.utils import get_system_memory, get_used_memory
    from ray_util import RAY_ENV, kill_all_under, quiet_home, short_tmp

    used, total = get_used_memory(), get_system_memory()
    margin = min(max((total - used) // 4, 3 * 2**29), 3 * 2**30)
    if total - used < margin + 3 * 2**30:
        pytest.skip(f"needs {margin / 2**30 + 3:.1f} GiB of free memory")
    temp = short_tmp("tso")
    env = {**subprocess_env, **RAY_ENV, "HOME": quiet_home(temp), "TS_CHUNKS": str((margin + 2**31) // 2**27),
           "RAY_memory_usage_threshold": f"{(used + margin) / total:.4f}", "RAY_memory_monitor_refresh_ms": "100"}
    try:
        done = subprocess.run([sys.executable, "-c", _OOM_SCRIPT, storage, str(tmp_path), str(temp)],
                              env=env, capture_output=True, text=True, timeout=150)
    finally:
        kill_all_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(trials) >= 3 and all(state in ("complete", "failed") for state, _ in trials), trials
    state, error = trials[1]
    assert state == "failed" and "ray worker lost: OutOfMemoryError" in error and "low on memory" in error, error


class _CudaOOM(RuntimeError):
    """torch.cuda.OutOfMemoryError's name and message, on a machine without a GPU."""


_CudaOOM.__name__ = "OutOfMemoryError"


def _oom_once_in_ray(marker: str, trial: Any) -> float:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return float(trial.params["x"])
    raise _CudaOOM("CUDA out of memory. Tried to allocate 20.00 MiB")


def test_ray_queues_one_retry_of_an_oom_trial_before_its_failure(ray_local: Any, tmp_path: Path) -> None:
    """An actor queues the retry of its out-of-memory trial before the failure is written (the driver, which
    queued it after the actor's answer, could die between the two); the driver's own queueing then finds it
    queued: one copy, run within the call."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'o.db'}", name="o")
    study.optimize(functools.partial(_oom_once_in_ray, str(tmp_path / "oom")), n_trials=3, executor="ray", n_jobs=1)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert len(failed) == 1 and "CUDA out of memory" in (failed[0].error or ""), study.trials
    copies = [t for t in study.trials if t.system.retry_of == failed[0].number]
    assert len(copies) == 1 and copies[0].system.oom_retries == 1 and copies[0].params == failed[0].params
    assert copies[0].state is TrialState.COMPLETE and copies[0].attrs.get("reason") == "CUDA out of memory"


def _oom_once_killed_once_queued(marker: str, trial: Any) -> float:
    """``_oom_once_in_ray``, whose actor process is SIGKILLed once the copy is queued, before the failure is
    written (the actor's own ``Study.requeue``, patched in its process)."""
    from tunesmith.study.study import Study as ActorStudy

    requeue = ActorStudy.requeue

    def killed(self: Any, *args: Any, **kw: Any) -> int | None:
        out = requeue(self, *args, **kw)
        if out is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    ActorStudy.requeue = killed  # type: ignore[method-assign]  # in this actor alone, killed with it
    return _oom_once_in_ray(marker, trial)


def test_ray_an_oom_trial_whose_actor_is_killed_once_its_copy_is_queued_points_to_that_copy(
        ray_local: Any, tmp_path: Path) -> None:
    """The actor killed between queueing the copy and writing the failure: the driver failed the trial as a
    lost actor's without pointing to the copy that ran. It points to it; one copy, run once, one of the call's
    n_trials (the lost attempt gave its unit back as for a lost worker's re-queued trial: 4 trials for 3)."""
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'o.db'}", name="o")
    study.optimize(functools.partial(_oom_once_killed_once_queued, str(tmp_path / "oom")), n_trials=3,
                   executor=RayExecutor(n_workers=1))
    first = study.trials[0]
    copies = [t for t in study.trials if t.system.retry_of == 0]
    assert len(copies) == 1 and copies[0].state is TrialState.COMPLETE, study.trials
    assert first.state is TrialState.FAILED and first.system.requeued_as == copies[0].number, (first.error, first.worker)
    assert len(study.trials) == 3, study.trials


def test_ray_an_oom_copy_the_storage_refuses_in_the_actor_is_queued_by_the_driver(
        ray_local: Any, tmp_path: Path) -> None:
    """The actor's early copy refused by the storage: its error was recorded in place of the out-of-memory one
    and the driver queued no retry. The out-of-memory failure is recorded as it is; the driver queues the copy."""
    from test_execution_local import _refuse_copies_while_a_trial_runs

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="o")
    undo = _refuse_copies_while_a_trial_runs(url, "sqlite")
    try:
        study.optimize(functools.partial(_oom_once_in_ray, str(tmp_path / "oom")), n_trials=3,
                       executor=RayExecutor(n_workers=1))
    finally:
        undo()
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert len(failed) == 1 and "CUDA out of memory" in (failed[0].error or ""), study.trials  # before: the storage's
    copies = [t for t in study.trials if t.system.retry_of == failed[0].number]
    assert len(copies) == 1 and copies[0].state is TrialState.COMPLETE and copies[0].system.oom_retries == 1


_JOIN_SCRIPT = """
import sys
from tunesmith import Float, Study
study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
try:
    study.optimize(lambda t: t.params["x"], n_trials=2, executor="ray", ray_address=sys.argv[1])
except ConnectionError as exc:
    print("ConnectionError:", exc)
print("trials:", len(study.trials))
"""


@pytest.mark.timeout(240)
def test_a_cluster_that_asks_for_a_token_is_named_in_one_line_with_the_fix(subprocess_env: dict[str, str]) -> None:
    """A `ray start` cluster with token authentication (on where ~/.ray/auth_token exists), joined by
    address without RAY_AUTH_MODE=token: Ray printed "InvalidAuthToken" each second for 20 s, then
    "Failed to connect to Ray cluster". One line now says that it asks for a token and how to send it;
    a wrong token is named as such; the right one joins."""
    pytest.importorskip("ray")
    from ray_util import RAY_ENV, TokenHead

    with TokenHead() as head:
        def join(**env: str) -> tuple[str, str]:
            base = {k: v for k, v in {**subprocess_env, **RAY_ENV}.items() if k != "RAY_AUTH_MODE"}
            done = subprocess.run([sys.executable, "-c", _JOIN_SCRIPT, head.address], capture_output=True,
                                  text=True, timeout=120, env={**base, "HOME": str(head.temp / "home"), **env})
            assert done.returncode == 0, done.stderr[-3000:]
            return done.stdout, done.stderr

        out, err = join()
        assert "asks for a token" in out and "set RAY_AUTH_MODE=token here" in out and "trials: 0" in out, out
        assert "InvalidAuthToken" not in err, err
        out, err = join(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
        assert "refused this process's token" in out and "trials: 0" in out and "InvalidAuthToken" not in err, out
        out, _ = join(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.token)
        assert "ConnectionError" not in out and "trials: 2" in out, out
