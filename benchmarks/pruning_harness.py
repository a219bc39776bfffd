"""bench_pruning.py's process pool with a time limit, and its Markdown report."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from typing import Any

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
    rows: list[dict[str, Any]], names: list[str], args: Any, started: str, wall: float
) -> str:
    """Medians over the seeds whose reference and every method finished."""
    cap = args.trials * args.max_epochs
    refs = {r["seed"]: r for r in rows if r["method"] == "reference"}
    runs = {(r["method"], r["seed"]): r for r in rows if r["method"] != "reference"}
    seeds = [s for s in sorted(refs) if all((n, s) in runs for n in names)]
    devices = sorted({r["device"] for r in rows})
    lines = [
        f"task {args.task}, started {started}, {wall:.0f} s, {args.jobs} processes, device(s) "
        f"{', '.join(devices)}; complete seeds {seeds} of {args.seeds}; cap {cap} epochs "
        f"({args.trials} trials x {args.max_epochs})",
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
    return "\n".join(lines) + "\n"
