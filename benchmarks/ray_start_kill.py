"""How often does optimize's end leave a Ray actor's worker holding its CPU (ray-project/ray#27743)?

Each run: an in-memory study, 2 actors on a private 2-CPU instance, 4 trials; trial 0 SIGKILLs
its actor's process, so a replacement is starting as the other actor ends the budget and
optimize kills it. Two arms, alternated run by run on the same instance: ``grace`` (optimize
gives a starting actor up to START_GRACE seconds to come up before it kills it) and
``nograce`` (START_GRACE = 0: killed at once, as before). After each run: whether the replacement
was killed before it started (its actor record's ``never_started``) and whether both CPUs are
free again within 20 s (else leaked: the instance is restarted). Deciding numbers: leaks per
arm (and kills before start per arm), over all runs.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/ray_start_kill.py --runs 20
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ray_util import kill_all_under, quiet_home, set_ray_env, short_tmp  # noqa: E402

from tunesmith import Float, Study  # noqa: E402
from tunesmith.execution import ray as ray_executor  # noqa: E402


def kills_its_worker_on_trial_0(trial: Any) -> float:
    if trial.number == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params["x"])


def start(ray: Any) -> Path:
    temp = short_tmp("tsb")
    home = os.environ.get("HOME", "")
    os.environ["HOME"] = quiet_home(temp)
    try:
        ray.init(address="local", num_cpus=2, num_gpus=0, _temp_dir=str(temp), _node_ip_address="127.0.0.1",
                 include_dashboard=False, log_to_driver=False)
    finally:
        os.environ["HOME"] = home
    return temp


def actors(ray: Any) -> dict[str, Any]:
    from ray._private import state

    return {k: v for k, v in state.actors().items() if v["ActorClassName"] == "EvalWorker"}


def one_run(ray: Any, grace: float) -> tuple[int, bool, float]:
    """Actors killed before they started, whether both CPUs came back, seconds of optimize."""
    ray_executor.START_GRACE = grace
    before = set(actors(ray))
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    t0 = time.perf_counter()
    study.optimize(kills_its_worker_on_trial_0, n_trials=4, n_jobs=2, executor="ray")
    took = time.perf_counter() - t0
    ours = {k: v for k, v in actors(ray).items() if k not in before}
    never = sum(bool(v["DeathCause"].actor_died_error_context.never_started) for v in ours.values())
    end = time.monotonic() + 20
    while ray.available_resources().get("CPU", 0.0) < 2 and time.monotonic() < end:
        time.sleep(0.2)
    return never, ray.available_resources().get("CPU", 0.0) >= 2, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per arm")
    args = parser.parse_args()
    logging.getLogger("tunesmith").setLevel(logging.ERROR)
    set_ray_env()
    import ray

    arms = {"grace": ray_executor.START_GRACE, "nograce": 0.0}
    tally = {arm: {"never_started": 0, "leaked": 0, "seconds": []} for arm in arms}
    temp = start(ray)
    try:
        for i in range(args.runs):
            for arm, grace in arms.items():
                never, freed, took = one_run(ray, grace)
                t = tally[arm]
                t["never_started"] += never  # type: ignore[operator]
                t["leaked"] += not freed  # type: ignore[operator]
                t["seconds"].append(took)  # type: ignore[union-attr]
                print(f"run {i} {arm:8s} killed before start {never}  CPUs back {freed}  optimize {took:.1f} s",
                      flush=True)
                if not freed:  # a leaked worker holds a CPU for good: a fresh instance
                    ray.shutdown()
                    kill_all_under(temp)
                    temp = start(ray)
    finally:
        ray.shutdown()
        kill_all_under(temp)
    for arm, t in tally.items():
        secs = sorted(t["seconds"])  # type: ignore[type-var]
        print(f"{arm:8s} runs {len(secs)}  killed before start {t['never_started']}  leaked {t['leaked']}  "
              f"median optimize {secs[len(secs) // 2]:.1f} s")


if __name__ == "__main__":
    main()
