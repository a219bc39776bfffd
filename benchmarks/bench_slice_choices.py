"""What a slice of a categorical parameter with many stored choices (a writer of the database can store a
space of 50,000; the trials drew four) costs to draw, for two source trees side by side.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_slice_choices.py --trees A/src B/src --rounds 3

Cells, each in a fresh process per tree (the trees alternating, ``--rounds`` times; ``--limit`` seconds a cell
at most, reported as ">LIMIT"): ``html`` (``to_plotly`` of the slice: the figure an HTML file or the dashboard
draws) and ``png`` (``to_matplotlib`` of it, drawn to a PNG in memory). Prints each cell's median seconds per
tree and the ratio of the medians (B / A).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CELL = """
import io, time
import matplotlib
matplotlib.use("Agg")
import tunesmith as ts
from tunesmith import plots
choices = [f"c{i}" for i in range(CHOICES)]
study = ts.Study(ts.Space({"k": ts.Categorical(choices)}), sampler="random", seed=0)
for i in range(4):
    study.add_trial({"k": choices[i]}, float(i))
(chart,) = plots.slices(study)
start = time.perf_counter()
if "KIND" == "html":
    from tunesmith.plots.plotly_render import to_plotly
    to_plotly(chart)
else:
    from tunesmith.plots.mpl_render import to_matplotlib
    to_matplotlib(chart).figure.savefig(io.BytesIO(), format="png")
print(time.perf_counter() - start)
"""


def cell(tree: str, kind: str, choices: int, limit: float) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "OMP_NUM_THREADS": "1"}
    code = CELL.replace("CHOICES", str(choices)).replace("KIND", kind)
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=limit,
                             check=True).stdout
    except subprocess.TimeoutExpired:
        return float("inf")
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs=2, required=True, metavar=("A", "B"), help="two src folders")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--choices", type=int, default=50_000)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds a cell may take")
    args = parser.parse_args()
    for kind in ("html", "png"):
        times: dict[str, list[float]] = {tree: [] for tree in args.trees}
        for _ in range(args.rounds):
            for tree in args.trees:
                times[tree].append(cell(tree, kind, args.choices, args.limit))
        a, b = (statistics.median(times[t]) for t in args.trees)
        shown = [f">{args.limit:g}" if m == float("inf") else f"{m:.2f}" for m in (a, b)]
        ratio = "n/a" if a == float("inf") or b == float("inf") else f"{b / a:.3f}"
        print(f"{kind:5} {args.choices:,} choices: A {shown[0]} s, B {shown[1]} s, B/A {ratio}")


if __name__ == "__main__":
    main()
