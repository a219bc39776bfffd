"""What does optimize's end cost on the private Ray instance it starts itself, with a replacement actor starting?

Each run is a fresh ``python`` that runs ``study.optimize(..., executor="ray", n_jobs=2, n_trials=4)``
on an in-memory study with no Ray running before (optimize starts a private 2-CPU instance and stops
it as it ends); trial 0 SIGKILLs its actor's process, so a replacement is starting as the other
actor ends the budget. Also timed: the end alone, from the last trial's record (a callback on the
driver, which makes each actor hold one call at a time, in both trees) to optimize's return. Two source trees are compared, alternated run by run: ``--before`` (the
sources that wait for the starting actor) and ``--after``. Deciding numbers: the median seconds of
the ``optimize`` call per tree, and their ratio; then the same for the end alone.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/ray_private_end.py --before OLD/src --after src --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ray_util import RAY_ENV, kill_all_under, quiet_home, short_tmp  # noqa: E402

CHILD = """
import logging, os, signal, sys, time
import tunesmith as ts

logging.getLogger("tunesmith").setLevel(logging.ERROR)

def objective(trial):
    if trial.number == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return trial.params["x"]

last = []
study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
t0 = time.perf_counter()
study.optimize(objective, n_trials=4, n_jobs=2, executor="ray", callbacks=[lambda s, t: last.append(time.perf_counter())],
               ray_init={
    "num_cpus": 2, "_temp_dir": sys.argv[1], "include_dashboard": False, "log_to_driver": False,
    "_node_ip_address": "127.0.0.1"})
t1 = time.perf_counter()
print(f"SECONDS {t1 - t0:.3f} {t1 - last[-1]:.3f}", flush=True)
"""


def one_run(src: str) -> tuple[float, float]:
    temp = short_tmp("tse")
    env = {**os.environ, **RAY_ENV, "HOME": quiet_home(temp), "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(temp)], env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        kill_all_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("SECONDS ")]
    if not line:
        raise SystemExit(f"the run under {src} failed:\n{done.stderr[-3000:]}")
    return float(line[0].split()[1]), float(line[0].split()[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the src folder of the sources to compare against")
    parser.add_argument("--after", required=True, help="the src folder of the sources measured")
    parser.add_argument("--runs", type=int, default=5, help="runs per tree")
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    ends: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(args.runs):
        for arm in ("before", "after") if i % 2 == 0 else ("after", "before"):
            took, end = one_run(str(Path(getattr(args, arm)).resolve()))
            seconds[arm].append(took)
            ends[arm].append(end)
            print(f"run {i} {arm:6s} optimize {took:.1f} s, its end {end:.1f} s", flush=True)
    for what, table in (("optimize", seconds), ("its end", ends)):
        med = {arm: statistics.median(s) for arm, s in table.items()}
        for arm, s in table.items():
            print(f"{arm:6s} runs {len(s)}  median {what} {med[arm]:.1f} s  all {[round(x, 1) for x in s]}")
        print(f"{what}: after / before {med['after'] / med['before']:.2f}")


if __name__ == "__main__":
    main()
