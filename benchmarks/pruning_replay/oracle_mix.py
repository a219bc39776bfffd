"""An upper bound for choosing the schedule per task (pruning-replay.md, sixth selection).

Among the tunesmith rows behind the default sampler (names ending in ``-auto``) that ran on
every study of the given files' seeds, the per-task choice of a row (an oracle: it knows the
task and the results) with the highest pooled reached rate at pooled epochs below
``ref``'s minus ``margin``. If even this stays below ``ref``'s reached rate, a rule that picks
one of these schedules per task, from the study's own curves, cannot meet T2 and T4 together.

    python benchmarks/pruning_replay/oracle_mix.py benchmarks/results/pruning-replay-selection-v3.jsonl \
        benchmarks/results/pruning-replay-selection-v4.jsonl benchmarks/results/pruning-replay-selection-v5.jsonl \
        --seeds 0-49
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--seeds", default="0-49")
    ap.add_argument("--ref", default="optuna-sh-random")
    ap.add_argument("--margin", type=float, default=0.005)
    args = ap.parse_args(argv)
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    rows: dict[tuple[str, str, int], tuple[float, float]] = {}
    for path in args.files:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r["seed"] in seeds and (r["method"].endswith("-auto") or r["method"] == args.ref):
                    rows[r["method"], r["task"], r["seed"]] = (r["epochs"], float(r["reached"]))
    by: dict[str, dict[str, list[tuple[float, float]]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for (method, task, _), v in rows.items():
        by[method][task].append(v)
    tasks = sorted(by[args.ref])
    n = len(seeds)
    mean = {
        m: {t: tuple(sum(x[i] for x in v[t]) / n for i in (0, 1)) for t in tasks}
        for m, v in by.items()
        if all(len(v[t]) == n for t in tasks)
    }
    ref_e = sum(mean[args.ref][t][0] for t in tasks) / len(tasks)
    ref_h = sum(mean[args.ref][t][1] for t in tasks) / len(tasks)
    ours = sorted(m for m in mean if m != args.ref)
    best = None
    for combo in itertools.product(ours, repeat=len(tasks)):
        e = sum(mean[c][t][0] for c, t in zip(combo, tasks, strict=True)) / len(tasks)
        h = sum(mean[c][t][1] for c, t in zip(combo, tasks, strict=True)) / len(tasks)
        if e < ref_e - args.margin and (best is None or h > best[0]):
            best = (h, e, combo)
    print(f"{args.ref}: epochs {ref_e:.3f}, reached {ref_h:.3f}; {len(ours)} rows")
    if best is None:
        print("no per-task choice trains less")
        return
    print(f"best per-task choice below {ref_e - args.margin:.3f} of the epochs: epochs {best[1]:.3f}, reached {best[0]:.3f}")
    for task, m in zip(tasks, best[2], strict=True):
        print(f"  {task}: {m} ({mean[m][task][0]:.3f} / {mean[m][task][1]:.2f})")


if __name__ == "__main__":
    main()
