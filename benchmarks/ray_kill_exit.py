"""Does optimize's end leave the CPUs of the Ray actors it killed held after it returns?

Each run: an in-memory study, 2 actors on a private 2-CPU instance, 4 quick trials. Two arms, alternated
run by run on the same instance: ``wait`` (optimize waits, up to EXIT_WAIT seconds, for the processes of
the actors it killed to end) and ``nowait`` (EXIT_WAIT = 0: it returns once the kills are sent, as before).
Right as optimize returns: how many of its actors' processes still run and whether both CPUs are free
(Ray's view); then how long until they are. Deciding numbers, registered before the first run: per arm,
the runs that returned with an actor's process still running, and the median seconds of the optimize call
(the wait's cost).

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/ray_kill_exit.py --runs 10
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ray_start_kill import actors, start  # noqa: E402
from ray_util import kill_all_under, set_ray_env  # noqa: E402

from tunesmith import Float, Study  # noqa: E402
from tunesmith.execution import ray as ray_executor  # noqa: E402


def quick(trial: Any) -> float:
    time.sleep(0.2)
    return float(trial.params["x"])


def one_run(ray: Any, wait: float) -> tuple[int, bool, float, float]:
    """Processes still running as optimize returned, both CPUs free then, seconds of optimize, seconds
    after its return until both CPUs were free (Ray's view)."""
    ray_executor.EXIT_WAIT = wait
    before = set(actors(ray))
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    t0 = time.perf_counter()
    study.optimize(quick, n_trials=4, n_jobs=2, executor="ray")
    took = time.perf_counter() - t0
    pids = [v["Pid"] for k, v in actors(ray).items() if k not in before and v["Pid"]]
    running = sum(ray_executor.process_runs(p) for p in pids)
    free_now = ray.available_resources().get("CPU", 0.0) >= 2
    t1 = time.perf_counter()
    while ray.available_resources().get("CPU", 0.0) < 2 and time.perf_counter() - t1 < 60:
        time.sleep(0.05)
    return running, free_now, took, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per arm")
    args = parser.parse_args()
    logging.getLogger("tunesmith").setLevel(logging.ERROR)
    set_ray_env()
    import ray

    arms = {"wait": ray_executor.EXIT_WAIT, "nowait": 0.0}
    tally: dict[str, dict[str, list[float]]] = {arm: {"running": [], "free": [], "s": [], "back": []} for arm in arms}
    temp = start(ray)
    try:
        for i in range(args.runs):
            for arm, wait in arms.items():
                running, free_now, took, back = one_run(ray, wait)
                for key, value in (("running", running), ("free", free_now), ("s", took), ("back", back)):
                    tally[arm][key].append(float(value))
                print(f"run {i} {arm:6s} processes running at return {running}  CPUs free at return {free_now}  "
                      f"optimize {took:.1f} s  CPUs back {back:.2f} s after", flush=True)
    finally:
        ray.shutdown()
        kill_all_under(temp)
    for arm, t in tally.items():
        print(f"{arm:6s} runs {len(t['s'])}  returned with a process running {sum(x > 0 for x in t['running'])}  "
              f"CPUs free at return {int(sum(t['free']))}  median optimize {statistics.median(t['s']):.1f} s  "
              f"median CPUs back after return {statistics.median(t['back']):.2f} s (max {max(t['back']):.2f})")


if __name__ == "__main__":
    main()
