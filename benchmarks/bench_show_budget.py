"""What the budget line (steps trained, stopped, saved) costs ``tunesmith show`` and ``tunesmith report``,
through the public CLI, for two source trees side by side.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_show_budget.py --trees A/src B/src --rounds 5

Each study (SQLite, 5,000 trials by default, written in one transaction) holds trials that report
every step up to their last: ``rungs`` as ASHA leaves them (half stopped at step 2, a quarter at 4,
then 8 and 16; 7% complete at step 50), ``full`` every trial complete at step 50 but one pruned
there (one stopped trial is enough for ``show`` to read each trial's last step:
``Storage.get_last_steps``, one query; before, every trial whole), ``paused`` as ``rungs`` with the
stopped trials paused (``ASHA(pause=True)``: ``show`` reads the paused trials whole to name those held to
resume first, none here). The cells, each
run in a fresh process per tree (the trees alternating, ``--rounds`` times; the process's median
of ``CALLS`` calls, output dropped): ``show`` (``tunesmith show NAME``: the heads, then the shown
trials whole), ``show-top200`` (``--top 200``: every trial read whole at once) and ``report``
(``tunesmith report NAME -o FILE``, every plot). Prints each cell's median seconds per tree and the
ratio of the medians (B / A).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import tempfile
import time

# the same alternation of source trees as bench_ties_ranking
from bench_ties_ranking import run_trees, said_trees, tree_parser

KINDS = ("rungs", "full", "paused")
CELLS = {"show": ["show", "b"], "show-top200": ["show", "b", "--top", "200"], "report": ["report", "b"]}
#: calls of each cell in a process (its median is the process's time: the first call also imports)
CALLS = 3
LAST = 50  # a full run's steps


def build(path: str, trials: int, kind: str) -> None:
    """The study of ``trials`` trials stopped as ``kind`` says, in the SQLite file ``path``."""
    import numpy as np

    import tunesmith as ts
    from tunesmith.trial import FrozenTrial, TrialState

    rng = np.random.default_rng(trials)
    study = ts.Study({"x": ts.Float(0, 1)}, name="b", storage=f"sqlite:///{path}", sampler="random",
                     pruner=ts.pruners.ASHA(max_resource=LAST, pause=kind == "paused"))
    records = []
    for number in range(trials):
        if kind in ("rungs", "paused"):
            last = int(rng.choice([2, 4, 8, 16, LAST], p=[0.5, 0.25, 0.12, 0.06, 0.07]))
        else:
            last = LAST
        stopped = TrialState.PAUSED if kind == "paused" else TrialState.PRUNED
        state = stopped if (last < LAST if kind != "full" else number == 0) else TrialState.COMPLETE
        curve = {step: float(1.0 / step + rng.uniform(0, 0.1)) for step in range(1, last + 1)}
        records.append(FrozenTrial(number=0, state=state, params={"x": float(rng.uniform())},
                                   value=None if state is TrialState.PRUNED else curve[last],
                                   intermediate=curve, started=1.0, completed=2.0))
    study.storage.insert_trials(study._study_id, records)


def measure(path: str) -> dict[str, float]:
    """Seconds of each cell on the study in ``path`` (run under the tree's PYTHONPATH)."""
    import logging

    from tunesmith.cli import main as cli

    logging.disable(logging.WARNING)
    url = f"sqlite:///{path}"
    html = path + ".html"
    took: dict[str, float] = {}
    for name, argv in CELLS.items():
        full = [*argv, "--storage", url] + (["-o", html] if name == "report" else [])
        times = []
        for _ in range(CALLS if name != "report" else 1):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert cli(full) == 0
            times.append(time.perf_counter() - start)
        took[name] = statistics.median(times)
    os.remove(html)
    return took


def main() -> None:
    ap = tree_parser(__doc__)
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    trees = said_trees(args)
    print(f"{'trials':>7} {'kind':>6} {'cell':>12} {'A':>8} {'B':>8} {'B/A':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            path = os.path.join(tmp, f"{kind}.db")
            build(path, args.trials, kind)
            runs = run_trees(__file__, trees, args.rounds, path)
            for cell in CELLS:
                a, b = (statistics.median(r[cell] for r in runs[i]) for i in (0, 1))
                print(f"{args.trials:>7} {kind:>6} {cell:>12} {a:8.3f} {b:8.3f} {b / a:6.2f}", flush=True)


if __name__ == "__main__":
    main()
