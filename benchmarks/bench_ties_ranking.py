"""Ranking trials tied on the value, through the public API, for two source trees side by side.

    nice -n 10 python benchmarks/bench_ties_ranking.py --trees /path/to/main/src src          # 1k, 10k, 100k
    python benchmarks/bench_ties_ranking.py --trees A/src B/src --sizes 1000 --rounds 3      # a quick look

Each study (SQLite, one per size and kind of tie) holds trials that report 30 accuracies on a
validation set of 200 samples (multiples of 1/200), the last one being the value: ``all`` every
trial's value is the same (an integer metric at its ceiling), ``some`` the values are those
accuracies (ties of ~1,000 trials at 100,000), ``none`` no two values are equal. Each tree runs
in its own fresh process, the trees alternating, ``--rounds`` times. In each process the study is
read once (``load_study(...).trials``, timed as ``read``), then each reader of the ranking is called
3 times, its median kept: ``best_trial`` (again: the history is read already), ``show`` (the best-trials table of
``tunesmith show``), ``report`` (``build_report`` with no plots: the settings, space, best and
failed tables) and ``dashboard`` (the trials page ordered by best, 50 rows, a fresh cache's
sort of a fresh view). Prints each cell's median seconds per tree and the ratio of the medians (B / A).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1000, 10000, 100000)
KINDS = ("all", "some", "none")
STEPS = ("read", "best_trial", "show", "report", "dashboard")
#: calls of each step in a process (its median is the process's time: the first call also imports)
CALLS = 3


def build(path: str, trials: int, kind: str) -> None:
    """The study of ``trials`` trials tied as ``kind`` says, in the SQLite file ``path``."""
    import numpy as np

    import tunesmith as ts
    from tunesmith.trial import FrozenTrial, TrialState

    rng = np.random.default_rng(trials)
    study = ts.Study({"x": ts.Float(0, 1)}, name="ties", storage=f"sqlite:///{path}", sampler="random",
                     direction="maximize")
    records = []
    for number in range(trials):
        top = rng.uniform(0.80, 0.95)
        curve = np.round(top - 0.3 * np.exp(-np.arange(1, 31) / 5) + rng.normal(0, 0.01, 30), 3)
        curve = np.round(np.clip(curve, 0, 1) * 200) / 200
        value = {"all": 0.9, "some": float(curve[-1]), "none": float(curve[-1]) + number * 1e-9}[kind]
        records.append(FrozenTrial(number=0, state=TrialState.COMPLETE, params={"x": float(rng.uniform())},
                                   value=value, intermediate=dict(enumerate(map(float, curve), 1)),
                                   started=1.0, completed=2.0))
    study.storage.insert_trials(study._study_id, records)


def measure(path: str) -> dict[str, float]:
    """Seconds of each step on the study in ``path`` (run under the tree's PYTHONPATH)."""
    import tunesmith as ts
    from tunesmith.cli.commands import best_table
    from tunesmith.dashboard import aggregate, cache
    from tunesmith.report import build_report

    url = f"sqlite:///{path}"
    took: dict[str, float] = {}
    start = time.perf_counter()
    study = ts.load_study("ties", url)
    trials = study.trials
    took["read"] = time.perf_counter() - start
    view = cache.StudyCache(study.storage).view("ties")  # the dashboard's read of the trials, not timed
    steps = {
        "best_trial": lambda: study.best_trial,
        "show": lambda: best_table(study, trials, 10),
        "report": lambda: build_report(study, sections=()),
        # a fresh memo each time: the page sorts once per version of the study
        "dashboard": lambda: aggregate.page(cache.View(view.record, view.trials, view.version, 0.0, {}), order="best"),
    }
    for name, step in steps.items():
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        took[name] = statistics.median(times)
    return took


def tree_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark of two source trees: ``--trees A B``, ``--rounds``, and the hidden
    ``--measure PATH`` that :func:`run_trees` runs in each tree's process."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("A", "B"), help="two src folders")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    return ap


def said_trees(args: argparse.Namespace) -> list[str]:
    """The two trees' folders, printed with how the medians are taken."""
    trees = [str(Path(t).resolve()) for t in args.trees]
    print(f"A = {trees[0]}\nB = {trees[1]}\nmedian seconds of {args.rounds} rounds, each tree in a fresh process")
    return trees


def run_trees(script: str, trees: list[str], rounds: int, path: str) -> list[list[dict[str, float]]]:
    """Each tree's measurements of the study in ``path``: ``script --measure path`` in a fresh process under
    the tree's PYTHONPATH, the trees alternating, ``rounds`` times (its last line of output, JSON)."""
    runs: list[list[dict[str, float]]] = [[] for _ in trees]
    for _ in range(rounds):
        for i, tree in enumerate(trees):
            env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, script, "--trees", *trees, "--measure", path],
                                 env=env, check=True, capture_output=True, text=True).stdout
            runs[i].append(json.loads(out.splitlines()[-1]))
    return runs


def main() -> None:
    ap = tree_parser(__doc__)
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    trees = said_trees(args)
    print(f"{'trials':>7} {'ties':>5} {'step':>11} {'A':>8} {'B':>8} {'B/A':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for kind in args.kinds:
                path = os.path.join(tmp, f"{kind}-{size}.db")
                build(path, size, kind)
                runs = run_trees(__file__, trees, args.rounds, path)
                for step in STEPS:
                    a, b = (statistics.median(r[step] for r in runs[i]) for i in (0, 1))
                    print(f"{size:>7} {kind:>5} {step:>11} {a:8.4f} {b:8.4f} {b / a:6.2f}", flush=True)
                os.remove(path)


if __name__ == "__main__":
    main()
