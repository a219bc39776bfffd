"""Why a study misses no-pruning's validation error: which trials would have reached it, and
where they were stopped; and what the trial a study names best costs in test error.

For each row and study (``replay.py``'s) the 40 trials are replayed and each one's *full*
recorded curve is looked up, trained or not. A trial *would reach* when its full curve ends at
or below the target (no-pruning random search's best final validation error on the stream).
A study that misses the target is either a **sampler miss** (no trial proposed would reach:
only rows that are not the shared random stream can have one) or a **pruner loss** (some
trial would reach; every one of them was stopped). For the pruner losses, the would-reach
trial that went furthest: the epoch it was stopped at, and its rank then among the study's
40 full curves at that epoch (full information: a *late bloomer* ranks in the worse half
there, a trial a rung keeping half could not keep even knowing every curve), and whether its
curve rose at that epoch (a *bump*: its value there was worse than the epoch before).

Per study it also records the named best's validation and test error and how many trials
completed, for the regret part (``--regret``): where two rows on the same stream name
different bests, which one has the lower validation error and which the lower test error.

    PYTHONPATH=src python benchmarks/pruning_replay/losses.py --seeds 0-99 \
        --methods ts-asha ts-asha-random optuna-median-random --out /tmp/losses.jsonl
    python benchmarks/pruning_replay/losses.py --summary /tmp/losses.jsonl
    python benchmarks/pruning_replay/losses.py --regret ts-hyperband-random ts-asha-random /tmp/losses.jsonl
    python benchmarks/pruning_replay/losses.py --frontier --seeds 0-99
    PYTHONPATH=src python benchmarks/pruning_replay/losses.py --frontier ts-none-sobol --seeds 0-99

``--frontier`` needs no replay: synchronous successive halving on the shared random stream with
the whole cohort of 40 known at every rung (what no sequential study can do without pausing), to
tell what the rung decisions lose to the order the trials arrive in; ``--frontier ts-none-sobol``
does the same on the configurations the default sampler proposes behind a pruner (its start-up
sequence), against the stream's target.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np
from replay import (
    METHODS_HELP,
    N_TRIALS,
    Stream,
    Task,
    load_tasks,
    resolve,
    run_optuna,
    run_tunesmith,
    seed_range,
)


def study(task: Task, opts: dict[str, Any], seed: int) -> dict[str, Any]:
    """One replayed study, trial by trial against the full recorded curves."""
    stream = Stream.of(task, seed)
    run = run_optuna if opts["lib"] == "optuna" else run_tunesmith
    count, best = run(task, stream, seed, opts)
    numbers = sorted(n for n in count.chosen if n < N_TRIALS)
    curves = np.array(
        [task.val[count.chosen[n], stream.seeds[n]] for n in numbers]
    )  # (trials, epochs)
    tests = np.array([task.test[count.chosen[n], stream.seeds[n], -1] for n in numbers])
    trained = np.array([count.trained.get(n, 0) for n in numbers])
    full, target = task.epochs, stream.target(task)
    done = trained >= full
    would = np.flatnonzero(curves[:, -1] <= target)
    out: dict[str, Any] = {
        "task": task.name, "seed": seed, "target": target, "n_complete": int(done.sum()),
        "epochs": count.epochs / (N_TRIALS * full),
        "best_val": float(task.val[count.chosen[best], stream.seeds[best], -1]),
        "best_test": float(task.test[count.chosen[best], stream.seeds[best], -1]),
        "best_test_complete": float(tests[done].min()), "oracle": task.oracle,
        "proposed_best": float(curves[:, -1].min()), "distinct": len({count.chosen[n] for n in numbers}),
        "best_number": best, "complete": [n for n, d in zip(numbers, done, strict=True) if d],
    }  # fmt: skip
    out["reached"] = out["best_val"] <= target
    if out["reached"]:
        out["why"] = "reached"
    elif not len(would):
        out["why"] = "sampler"
    else:
        w = int(max(would, key=lambda i: trained[i]))
        e = int(trained[w])
        at = curves[:, e - 1]
        rank = float((at < at[w]).sum() / len(at))  # share of the 40 strictly better at that epoch
        out.update(why="pruner", stop=e, rank=rank, would=len(would),
                   bump=bool(e > 1 and curves[w, e - 2] < at[w]), late=rank >= 0.5)  # fmt: skip
    return out


def summary(path: str) -> None:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[r["method"]].append(r)
    print(
        "| row | studies | epochs | regret (pp) | reached | sampler miss | pruner loss | stopped at epoch 1 / 2 / 3-4 / 5-8 / 9-16 / 17-26"
        " | late bloomer (worse half at that epoch) | a bump (worse than the epoch before) | complete trials |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m, rs in sorted(rows.items()):
        n = len(rs)
        lost = [r for r in rs if r["why"] == "pruner"]
        bins = [(1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 26)]
        where = " / ".join(f"{sum(lo <= r['stop'] <= hi for r in lost) / n:.3f}" for lo, hi in bins)
        late = sum(r["late"] for r in lost) / n
        bump = sum(r["bump"] for r in lost) / n
        regret = np.mean([r["best_test"] - r["oracle"] for r in rs])
        print(
            f"| {m} | {n} | {np.mean([r['epochs'] for r in rs]):.3f} | {regret:.3f} | {sum(r['reached'] for r in rs) / n:.3f} | {sum(r['why'] == 'sampler' for r in rs) / n:.3f}"
            f" | {len(lost) / n:.3f} | {where} | {late:.3f} | {bump:.3f} | {np.mean([r['n_complete'] for r in rs]):.1f} |"
        )


def regret(a: str, b: str, path: str) -> None:
    """Studies where ``a`` and ``b`` name different bests: which has the lower validation / test error."""
    by: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            by[r["task"], r["seed"]][r["method"]] = r
    keys = sorted(k for k, v in by.items() if a in v and b in v)
    tasks = sorted({k[0] for k in keys})
    print(
        f"| task | studies | {a} regret - {b} regret | studies with other bests | {a}'s lower val | {a}'s lower test"
        f" | of those where {a}'s val is lower: its test higher | complete trials {a} / {b} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for t in [*tasks, None]:
        ks = [k for k in keys if t is None or k[0] == t]
        d = np.array([by[k][a]["best_test"] - by[k][b]["best_test"] for k in ks])
        other = [
            k
            for k in ks
            if (by[k][a]["best_val"], by[k][a]["best_test"])
            != (by[k][b]["best_val"], by[k][b]["best_test"])
        ]
        lv = [k for k in other if by[k][a]["best_val"] < by[k][b]["best_val"]]
        lt = [k for k in other if by[k][a]["best_test"] < by[k][b]["best_test"]]
        worse = [k for k in lv if by[k][a]["best_test"] > by[k][b]["best_test"]]
        nc = (
            np.mean([by[k][a]["n_complete"] for k in ks]),
            np.mean([by[k][b]["n_complete"] for k in ks]),
        )
        print(
            f"| {t or 'pooled'} | {len(ks)} | {d.mean():+.3f} | {len(other)} | {len(lv)} | {len(lt)} | {len(worse)}"
            f" | {nc[0]:.1f} / {nc[1]:.1f} |"
        )


def synchronous(val: np.ndarray, rungs: tuple[int, ...], keep: float) -> tuple[np.ndarray, float]:
    """Successive halving with the whole cohort known at each rung (full information, no
    arrival order): the best ``ceil(keep * n)`` of the ``n`` alive at each rung go on, ties too.
    The trials that complete, and the epochs over no pruning's."""
    alive, epochs, prev = np.arange(len(val)), 0, 0
    for r in rungs:
        epochs, prev = epochs + len(alive) * (r - prev), r
        at = val[alive, r - 1]
        alive = alive[at <= np.sort(at)[max(1, int(np.ceil(len(alive) * keep))) - 1]]
    return alive, (epochs + len(alive) * (val.shape[1] - prev)) / val.size


SCHEDULES = {"2,4,8,16 keep 1/2": ((2, 4, 8, 16), 1 / 2), "2,4,8,16 keep 0.6": ((2, 4, 8, 16), 0.6),
             "4,8,16 keep 1/2": ((4, 8, 16), 1 / 2), "1,4,16 keep 1/4": ((1, 4, 16), 1 / 4),
             "3,9 keep 1/3": ((3, 9), 1 / 3)}  # fmt: skip


def proposals(task: Task, seed: int, row: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """The recorded configurations and training seeds of a study's 40 trials: the shared random
    stream's, or those ``row`` (a row without pruning) proposes."""
    st = Stream.of(task, seed)
    if row is None:
        return st.configs, st.seeds[:N_TRIALS]
    count = (run_optuna if row["lib"] == "optuna" else run_tunesmith)(task, st, seed, row)[0]
    return np.array([count.chosen[n] for n in range(N_TRIALS)]), st.seeds[:N_TRIALS]


def frontier(seeds: list[int], row: str | None = None) -> None:
    """Synchronous successive halving with full information on the trials of the shared random
    stream (or of ``row``, a row without pruning): what a rung schedule could reach if no
    decision depended on the order the trials arrive in. ``reached`` as in replay.py: at most
    the stream's no-pruning best."""
    tasks, opts = load_tasks(), (resolve([row])[row] if row else None)
    print("| schedule (full cohort) | " + " | ".join(f"{t} epochs / regret / reached" for t in tasks)
          + " | pooled epochs | pooled regret (pp) | pooled reached | complete trials |")  # fmt: skip
    print("|---|" + "---|" * (len(tasks) + 4))
    for label, (rungs, keep) in SCHEDULES.items():
        cells, pooled = [], []
        for task in tasks.values():
            got = []
            for seed in seeds:
                cfg, sd = proposals(task, seed, opts)
                val = task.val[cfg, sd]
                alive, epochs = synchronous(val, rungs, keep)
                best = alive[np.argmin(val[alive, -1])]
                got.append((epochs, task.test[cfg[best], sd[best], -1] - task.oracle,
                            val[best, -1] <= Stream.of(task, seed).target(task), len(alive)))  # fmt: skip
            g = np.array(got, dtype=float)
            cells.append(f"{g[:, 0].mean():.3f} / {g[:, 1].mean():.2f} / {g[:, 2].mean():.2f}")
            pooled.append(g)
        p = np.concatenate(pooled).mean(axis=0)
        print(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} | {p[3]:.1f} |"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=[], help=METHODS_HELP)
    ap.add_argument("--tasks", nargs="+")
    ap.add_argument("--seeds", default="0-49")
    ap.add_argument("--out")
    ap.add_argument("--summary")
    ap.add_argument("--regret", nargs=3, metavar=("A", "B", "FILE"))
    ap.add_argument(
        "--frontier",
        nargs="?",
        const="stream",
        metavar="ROW",
        help="synchronous halving with full information on the stream's trials or ROW's (no pruning)",
    )
    args = ap.parse_args(argv)
    if args.frontier:
        import tunesmith as ts

        ts.set_verbosity(logging.ERROR)
        frontier(seed_range(args.seeds), None if args.frontier == "stream" else args.frontier)
        return
    if args.summary:
        summary(args.summary)
        return
    if args.regret:
        regret(*args.regret)
        return
    if not args.methods or not args.out:
        ap.error("a replay needs --methods and --out (or one of --summary, --regret, --frontier)")
    import optuna

    import tunesmith as ts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ts.set_verbosity(logging.ERROR)
    tasks, methods = load_tasks(), resolve(args.methods)
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["task"], r["method"], r["seed"]) for r in map(json.loads, f)}
    with open(args.out, "a") as out:
        for seed in seed_range(args.seeds):
            for name in args.tasks or list(tasks):
                for m in args.methods:
                    if (name, m, seed) not in done:
                        out.write(
                            json.dumps({"method": m, **study(tasks[name], methods[m], seed)}) + "\n"
                        )
                        out.flush()


if __name__ == "__main__":
    main()
