"""bench_pruning.py's process pool with a time limit, and its Markdown report.

The report can also be made again from saved rows, several ``--results`` files together
(a row of a later file replaces the same method and seed of an earlier one; the seeds
reported are those where every chosen method has a row):

    python benchmarks/pruning_harness.py benchmarks/results/pruning-tabular-vm-60seeds.jsonl \
        --methods "TPE + ASHA (pause" Optuna
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

REF_TOTAL = "random search, full budget (total)"
REF_BEST = "random search, full budget (to its best)"


def schedule(
    args: argparse.Namespace,
    names: list[str],
    emit: Callable[[dict[str, Any]], None],
    reference: Callable[..., dict[str, Any]],
    run_method: Callable[..., dict[str, Any]],
    set_task: Callable[[str, dict[str, Any]], None],
    done: list[dict[str, Any]] | None = None,
) -> None:
    """Run every reference and (method, seed) job, lowest seed first, until done or the time limit.

    A job is handed to the pool only when a worker is free, so the queue never holds more
    than the workers can start, and the methods of a seed go before the next seed's reference.
    Rows in ``done`` (from ``--resume``) are emitted again and not rerun.
    """
    cap = args.trials * args.max_epochs
    deadline = time.monotonic() + (args.time_limit or float("inf"))
    ctx = mp.get_context("spawn" if args.task == "finetune" else "fork")
    opts = {
        "texts": args.texts, "train_frac": args.train_frac,
        "device": args.device, "precision": args.precision,
        "train_blocks": args.train_blocks,
    }  # fmt: skip
    refs_todo = list(range(args.seeds))
    jobs_todo: list[tuple[str, int, float, int, int]] = []
    running: list[Any] = []
    done = done or []
    refs = {r["seed"]: r for r in done if r["method"] == "reference" and r["seed"] < args.seeds}
    finished = {
        (r["method"], r["seed"]) for r in done if r["seed"] in refs and r["method"] in names
    }
    for r in done:
        if r["seed"] in refs and (r["method"] == "reference" or r["method"] in names):
            emit(r)
    for seed, r in sorted(refs.items()):
        refs_todo.remove(seed)
        jobs_todo += [
            (n, seed, r["target"], cap, args.max_epochs) for n in names if (n, seed) not in finished
        ]
    pool = ctx.Pool(max(1, args.jobs), initializer=set_task, initargs=(args.task, opts))
    try:
        while (refs_todo or jobs_todo or running) and time.monotonic() < deadline:
            for r in [r for r in running if r.ready()]:
                running.remove(r)
                row = r.get()
                emit(row)
                if row["method"] == "reference":
                    jobs_todo += [
                        (n, row["seed"], row["target"], cap, args.max_epochs) for n in names
                    ]
                    jobs_todo.sort(key=lambda j: j[1])
            while len(running) < max(1, args.jobs) and (refs_todo or jobs_todo):
                if jobs_todo and (not refs_todo or jobs_todo[0][1] < refs_todo[0]):
                    running.append(pool.apply_async(run_method, jobs_todo.pop(0)))
                else:
                    s = refs_todo.pop(0)
                    running.append(pool.apply_async(reference, (args.trials, args.max_epochs, s)))
            time.sleep(0.05)
        if running or refs_todo or jobs_todo:
            print(f"time limit reached: {len(running)} runs stopped, {len(refs_todo)} references "
                  f"and {len(jobs_todo)} runs not started", flush=True)  # fmt: skip
    finally:
        pool.terminate()
        pool.join()


def earlier_rows(path: str, task: str, cap: int) -> list[dict[str, Any]]:
    """The rows of an earlier ``--results`` file with the same task and compute cap."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("task") == task]
    seeds = {r["seed"] for r in rows if r["method"] == "reference" and r["epochs"] == cap}
    return [r for r in rows if r["seed"] in seeds]


def report(
    rows: list[dict[str, Any]], names: list[str], args: Any, started: str | None, wall: float
) -> str:
    """Medians over the seeds whose reference and every method finished, and the pairs.

    ``started`` None: the rows were read back from files (no run to describe)."""
    cap = args.trials * args.max_epochs
    refs = {r["seed"]: r for r in rows if r["method"] == "reference"}
    runs = {(r["method"], r["seed"]): r for r in rows if r["method"] != "reference"}
    seeds = [s for s in sorted(refs) if all((n, s) in runs for n in names)]
    devices = sorted({r["device"] for r in rows})
    run = (
        f"started {started}, {wall:.0f} s, {args.jobs} processes, "
        if started
        else "saved rows, "
    )
    lines = [
        f"task {args.task}, {run}device(s) {', '.join(devices)}; complete seeds {seeds} of "
        f"{args.seeds}; cap {cap} epochs ({args.trials} trials x {args.max_epochs})",
        "",
        f"| method | reached (of {len(seeds)}) | median epochs to target (miss = {cap}) "
        f"| / random's {cap} | median wall s (reached runs) | median best AUC |",
        "|---|---|---|---|---|---|",
    ]
    if not seeds:
        return "\n".join(lines + ["", "no complete seed"])
    table: dict[str, list[tuple[int | None, float | None, float]]] = {
        REF_TOTAL: [(cap, refs[s]["wall"], refs[s]["target"]) for s in seeds],
        REF_BEST: [(refs[s]["epochs_to_best"], None, refs[s]["target"]) for s in seeds],
    }
    for n in names:
        table[n] = [(runs[n, s]["epochs"], runs[n, s]["wall"], runs[n, s]["best"]) for s in seeds]
    for name, rs in table.items():
        # a miss counts as the whole cap, so medians are never flattered
        epochs = statistics.median([r[0] if r[0] is not None else cap for r in rs])
        walls = [r[1] for r in rs if r[0] is not None and r[1] is not None]
        shown = f"{statistics.median(walls):.1f}" if walls else "-"
        best = statistics.median(r[2] for r in rs)
        reached = sum(r[0] is not None for r in rs)
        lines.append(
            f"| {name} | {reached}/{len(rs)} | {epochs:.0f} | {epochs / cap:.2f} | {shown} | {best:.4f} |"
        )
    lines += ["", "Per seed (epochs to target; - = not reached):", ""]
    lines.append(
        "| method | " + " | ".join(f"seed {s} ({refs[s]['target']:.4f})" for s in seeds) + " |"
    )
    lines.append("|---|" + "---|" * len(seeds))
    for n in names:
        cells = [str(runs[n, s]["epochs"]) if runs[n, s]["epochs"] else "-" for s in seeds]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", *paired(runs, names, seeds, cap)]
    return "\n".join(lines) + "\n"


def paired(
    runs: dict[tuple[str, int], dict[str, Any]],
    names: Sequence[str],
    seeds: Sequence[int],
    cap: int,
    resamples: int = 4000,
) -> list[str]:
    """Each tunesmith row against each Optuna row, seed by seed (a miss counts as the cap).

    A cell reads "wins-losses, mean difference in epochs (90 % bootstrap interval of the
    mean over seeds)"; negative means tunesmith needed less compute.
    """
    ours = [n for n in names if n.startswith("tunesmith")]
    theirs = [n for n in names if n.startswith("Optuna")]
    if not ours or not theirs or len(seeds) < 2:
        return []

    def epochs(name: str) -> np.ndarray:
        return np.array([runs[name, s]["epochs"] or cap for s in seeds], dtype=float)

    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    lines = [
        f"Paired by seed ({len(seeds)} seeds; wins-losses, mean difference in epochs, "
        f"90 % bootstrap interval of the mean, {resamples} resamples):",
        "",
        "| tunesmith row | " + " | ".join(f"vs {t}" for t in theirs) + " |",
        "|---|" + "---|" * len(theirs),
    ]
    for ours_name in ours:
        cells = []
        for their_name in theirs:
            d = epochs(ours_name) - epochs(their_name)
            lo, hi = np.percentile(d[picks].mean(axis=1), [5, 95])
            cells.append(
                f"{(d < 0).sum()}-{(d > 0).sum()}, {d.mean():+.0f} ({lo:+.0f} to {hi:+.0f})"
            )
        lines.append(f"| {ours_name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="report again from saved --results rows")
    ap.add_argument("files", nargs="+", help="--results files; later rows replace earlier ones")
    ap.add_argument("--task", help="the task label to report (default: the first row's)")
    ap.add_argument("--methods", nargs="+", help="only the methods whose name contains one of these")
    args = ap.parse_args(argv)
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for path in args.files:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows[r["task"], r["method"], r["seed"]] = r
    task = args.task or next(iter(rows))[0]
    chosen = [r for (t, _, _), r in rows.items() if t == task]
    if not chosen:
        ap.error(f"no row of task {task!r} in {args.files}")
    cap = chosen[0]["cap"]
    names = sorted({r["method"] for r in chosen if r["method"] != "reference"})
    if args.methods:
        names = [n for n in names if any(text in n for text in args.methods)]
    seeds = {r["seed"] for r in chosen if r["method"] == "reference"}
    epochs = 27 if task == "tabular" else 9  # bench_pruning.py's default full budget
    info = SimpleNamespace(task=task, trials=cap // epochs, max_epochs=epochs, seeds=len(seeds))
    print(report(chosen, names, info, None, 0.0))


if __name__ == "__main__":
    main()
