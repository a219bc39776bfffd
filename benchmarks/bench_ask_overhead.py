"""Time per trial of the public ask/tell loop, the history growing: tunesmith vs Optuna.

Each optimizer runs a fresh in-memory study of ``--trials`` trials on a 5-d function and
records ``ask`` + ``tell`` of every trial (the objective's time left out), model refits
included. Reported: median and 90th percentile over the last 100 trials (a history of
900-1,000 at the default) and over all. The optimizers alternate within each repeat trial by trial
(lockstep), so machine noise hits all of them at the same history size. Run it as users run: with the default thread settings
(no OMP_NUM_THREADS), and again with ``OMP_NUM_THREADS=1`` to see the difference.

    PYTHONPATH=src python benchmarks/bench_ask_overhead.py --trials 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from samplerbench import overhead  # noqa: E402

import tunesmith as ts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000, help="trials per study")
    ap.add_argument("--repeats", type=int, default=3, help="studies per optimizer")
    ap.add_argument("--samplers", nargs="+", default=["auto", "tpe"], help="tunesmith samplers")
    ap.add_argument("--peers", nargs="*", default=["tpe"], help="Optuna samplers: tpe, gp")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ask-overhead.jsonl")
    args = ap.parse_args()
    ts.set_verbosity(logging.WARNING)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    rows = []
    for rep in range(args.repeats):
        loops = {f"ts-{s}": overhead.loop_tunesmith(s, args.trials, seed=rep) for s in args.samplers}
        loops.update({f"optuna-{p}": overhead.loop_optuna(p, args.trials, seed=rep) for p in args.peers})
        for name, times in overhead.lockstep(loops).items():
            row = {**overhead.loop_summary(name, times), "repeat": rep, "threads": threads}
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"\nthreads={threads}: median over repeats of the per-repeat medians (last 100 trials)")
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    ref = float(np.median([r["median_last_s"] for r in rows if r["optimizer"] == "optuna-tpe"] or [np.nan]))
    for name in names:
        med = float(np.median([r["median_last_s"] for r in rows if r["optimizer"] == name]))
        p90 = float(np.median([r["p90_last_s"] for r in rows if r["optimizer"] == name]))
        print(f"  {name:12s} median {med * 1e3:7.2f} ms  p90 {p90 * 1e3:7.2f} ms  vs optuna-tpe {med / ref:5.2f}x")


if __name__ == "__main__":
    main()
