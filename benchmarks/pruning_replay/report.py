"""Tables, paired intervals and the registered decisions of the pruning replay (pruning-replay.md).

    python benchmarks/pruning_replay/report.py selection benchmarks/results/pruning-replay-selection.jsonl
    python benchmarks/pruning_replay/report.py comparison benchmarks/results/pruning-replay-comparison.jsonl
    python benchmarks/pruning_replay/report.py versus FILE... --methods A B C --vs C
    python benchmarks/pruning_replay/report.py comparison FILE... --seeds 220-399
    python benchmarks/pruning_replay/report.py comparison FILE --asha CANDIDATE   # T1-T4 of a candidate
    python benchmarks/pruning_replay/report.py schedule benchmarks/results/pruning-replay-selection-v4.jsonl
    python benchmarks/pruning_replay/report.py comparison FILE --rule earliest   # ties named as before (tunesmith rows)
    python benchmarks/pruning_replay/report.py ties FILE   # each tunesmith row: the tie rule's paired effect
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

METRICS = ("epochs", "regret", "reached")
Rows = dict[tuple[str, str, int], dict[str, Any]]


def load(paths: Iterable[str]) -> Rows:
    rows: Rows = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows[r["task"], r["method"], r["seed"]] = r
    return rows


def pairs(rows: Rows, methods: Sequence[str]) -> list[tuple[str, int]]:
    """The (task, seed) studies every one of ``methods`` ran."""
    keys = {(t, s) for (t, m, s) in rows if m == methods[0]}
    return sorted(k for k in keys if all((k[0], m, k[1]) in rows for m in methods))


def values(rows: Rows, method: str, keys: Sequence[tuple[str, int]], metric: str) -> np.ndarray:
    return np.array([float(rows[t, method, s][metric]) for t, s in keys])


def interval(d: np.ndarray, resamples: int = 4000) -> tuple[float, float, float]:
    """Mean of ``d`` and its 90 % bootstrap interval."""
    picks = np.random.default_rng(0).integers(0, len(d), size=(resamples, len(d)))
    lo, hi = np.percentile(d[picks].mean(axis=1), [5, 95])
    return float(d.mean()), float(lo), float(hi)


def diff(rows: Rows, a: str, b: str, metric: str) -> tuple[float, float, float]:
    keys = pairs(rows, [a, b])
    return interval(values(rows, a, keys, metric) - values(rows, b, keys, metric))


def fmt(cell: tuple[float, float, float], digits: int = 3) -> str:
    m, lo, hi = cell
    return f"{m:+.{digits}f} ({lo:+.{digits}f} to {hi:+.{digits}f})"


def table(rows: Rows, methods: Sequence[str]) -> list[str]:
    """Means per task and pooled over the studies every method ran."""
    keys = pairs(rows, methods)
    tasks = sorted({t for t, _ in keys})
    out = [f"{len(keys)} studies ({', '.join(f'{t}: {sum(k[0] == t for k in keys)}' for t in tasks)})", "",
           "| row | " + " | ".join(f"{t} epochs / regret / reached" for t in tasks)
           + " | **pooled epochs** | **pooled regret (pp)** | **pooled reached** |",
           "|---|" + "---|" * (len(tasks) + 3)]  # fmt: skip
    for m in methods:
        cells = []
        for t in tasks:
            sub = [k for k in keys if k[0] == t]
            e, r, h = (values(rows, m, sub, x).mean() for x in METRICS)
            cells.append(f"{e:.3f} / {r:.2f} / {h:.2f}")
        e, r, h = (values(rows, m, keys, x).mean() for x in METRICS)
        out.append(f"| {m} | " + " | ".join(cells) + f" | {e:.3f} | {r:.3f} | {h:.3f} |")
    return out


def cheapest_not_worse(rows: Rows, methods: Sequence[str], bound: float) -> tuple[str, list[str]]:
    """The registered rule: R* = lowest mean regret among rows with mean epochs <= bound; the
    choice is the cheapest row whose paired regret difference to R* has a 90 % interval that
    includes 0 or lies below it."""
    keys = pairs(rows, methods)
    mean = {m: {x: values(rows, m, keys, x).mean() for x in METRICS} for m in methods}
    fit = [m for m in methods if mean[m]["epochs"] <= bound]
    if not fit:
        return "", [f"no row within {bound:.3f} of the epochs"]
    best = min(fit, key=lambda m: mean[m]["regret"])
    notes = [f"R* = {best} (regret {mean[best]['regret']:.3f})"]
    ok = []
    for m in fit:
        d = diff(rows, m, best, "regret")
        notes.append(f"{m}: epochs {mean[m]['epochs']:.3f}, regret vs R* {fmt(d)}")
        if d[1] <= 0.0:
            ok.append(m)
    choice = min(ok, key=lambda m: mean[m]["epochs"])
    return choice, [*notes, f"chosen: {choice}"]


def selection(rows: Rows) -> None:
    methods = sorted({m for (_, m, _) in rows})
    groups = {
        "ASHA (epochs <= 1/3)": ([m for m in methods if m.startswith("ts-asha-eta") and m.endswith("-random")
                                  and "max27" not in m], 1 / 3),
    }  # fmt: skip
    asha = cheapest_not_worse(rows, groups["ASHA (epochs <= 1/3)"][0], 1 / 3)[0] if groups else ""
    eta = asha.split("-")[2] if asha else ""  # Hyperband at the reduction factor chosen for ASHA
    groups["Hyperband (epochs <= 1/2)"] = ([m for m in methods if m.startswith(f"ts-hyperband-{eta}-")], 1 / 2)
    for title, (group, bound) in groups.items():
        if not group:
            continue
        print(f"## {title}\n")
        print("\n".join(table(rows, group)))
        print()
        print("\n".join(f"- {n}" for n in cheapest_not_worse(rows, group, bound)[1]))
        print()
    # the budget (learnt vs max_resource=27) and the sampler (default vs plain TPE) at each setting
    for a, b in [(m.replace("-max27", ""), m) for m in methods if "-max27" in m] + [
        (m[: -len("-tpe")] + "-mf", m) for m in methods if m.endswith("-tpe")
    ]:
        if a in methods and pairs(rows, [a, b]):
            n = len(pairs(rows, [a, b]))
            print(f"- {a} - {b} ({n} studies): "
                  + ", ".join(f"{x} {fmt(diff(rows, a, b, x))}" for x in METRICS))  # fmt: skip


def best_optuna(rows: Rows, methods: Sequence[str]) -> str:
    """The registered rule: Optuna's row with the lowest mean regret (ties within 0.05 pp: fewer epochs)."""
    keys = pairs(rows, methods)
    mean = {m: {x: values(rows, m, keys, x).mean() for x in METRICS} for m in methods}
    theirs = [m for m in methods if m.startswith("optuna")]
    low = min(mean[m]["regret"] for m in theirs)
    return min((m for m in theirs if mean[m]["regret"] <= low + 0.05), key=lambda m: mean[m]["epochs"])


def targets(rows: Rows, methods: Sequence[str], asha: str = "ts-asha") -> list[tuple[str, str, bool]]:
    """T1-T5 (pruning-replay.md) on ``rows``: (target, measured, met); ``asha``: the row judged
    as ``pruner="asha"`` (T1-T4), a candidate's in a verdict."""
    keys = pairs(rows, methods)
    mean = {m: {x: values(rows, m, keys, x).mean() for x in METRICS} for m in methods}
    best = best_optuna(rows, methods)
    hb = "ts-hyperband"
    e, r, h = (diff(rows, asha, best, x) for x in METRICS)
    low = min(mean, key=lambda m: mean[m]["regret"])
    d = diff(rows, hb, low, "regret")
    return [
        ("T1", f"{mean[asha]['epochs']:.3f}", mean[asha]["epochs"] <= 1 / 3),
        ("T2", f"vs {best}: {fmt(e)}", e[2] < 0),
        ("T3", f"vs {best}: {fmt(r)}", r[1] <= 0),
        ("T4", f"vs {best}: {fmt(h)}", h[2] >= 0),
        ("T5", f"{mean[hb]['epochs']:.3f}; vs {low}: {fmt(d)}", mean[hb]["epochs"] <= 0.5 and d[1] <= 0),
    ]


def schedule(rows: Rows, candidates: Sequence[str]) -> None:
    """The fourth selection's rule (pruning-replay.md): candidates within 0.30 of the epochs,
    fewer epochs than Optuna's best setup B and both its SuccessiveHalving rows, regret equal
    or better than B's, reached as often; the highest reached rate (ties within 0.01: fewer epochs)."""
    theirs = sorted({m for (_, m, _) in rows if m.startswith("optuna")})
    methods = [*candidates, *theirs]
    rows = {k: r for k, r in rows.items() if (k[0], k[2]) in set(pairs(rows, methods))}
    print("\n".join(table(rows, methods)))
    best = best_optuna(rows, methods)
    print(f"\nB = Optuna's best setup: {best}\n")
    refs = [best] + [m for m in ("optuna-sh-random", "optuna-sh-tpe") if m != best]
    print("| row | epochs | " + " | ".join(f"epochs vs {m}" for m in refs)
          + f" | regret vs {best} | reached vs {best} | qualifies |\n|---|---|" + "---|" * (len(refs) + 3))  # fmt: skip
    fit = []
    for m in candidates:
        epochs = values(rows, m, pairs(rows, [m]), "epochs").mean()
        e = [diff(rows, m, ref, "epochs") for ref in refs]
        r, h = diff(rows, m, best, "regret"), diff(rows, m, best, "reached")
        ok = epochs <= 0.30 and all(x[2] < 0 for x in e) and r[1] <= 0 and h[2] >= 0
        fit += [m] if ok else []
        print(f"| {m} | {epochs:.3f} | " + " | ".join(map(fmt, e)) + f" | {fmt(r)} | {fmt(h)} | {'yes' if ok else 'no'} |")
    if not fit:
        print("\nNo candidate qualifies: the defaults stay.")
        return
    reach = {m: values(rows, m, pairs(rows, [m]), "reached").mean() for m in fit}
    top = max(reach.values())
    near = [m for m in fit if reach[m] >= top - 0.01]
    print(f"\nChosen: {min(near, key=lambda m: values(rows, m, pairs(rows, [m]), 'epochs').mean())}")


def comparison(rows: Rows, asha: str = "ts-asha") -> None:
    methods = sorted({m for (_, m, _) in rows})
    print("\n".join(table(rows, methods)))
    theirs = [m for m in methods if m.startswith("optuna")]
    best = best_optuna(rows, methods)
    print(f"\nOptuna's best setup: {best}\n")
    print("| tunesmith row | vs | epochs | regret (pp) | reached |\n|---|---|---|---|---|")
    for ours in (m for m in methods if m.startswith("ts-")):
        for other in theirs:
            cells = [fmt(diff(rows, ours, other, x)) for x in METRICS]
            print(f"| {ours} | {other} | " + " | ".join(cells) + " |")
    if asha not in methods or "ts-hyperband" not in methods:
        return
    tasks = sorted({t for (t, _, _) in rows})
    subsets = [("pooled", rows)] + [(t, {k: v for k, v in rows.items() if k[0] == t}) for t in tasks]
    print("\n| studies | " + " | ".join(f"T{i}" for i in range(1, 6)) + " |\n|---|" + "---|" * 5)
    for name, sub in subsets:
        cells = [f"{m}: {'**met**' if ok else '**not met**'}" for _, m, ok in targets(sub, methods, asha)]
        print(f"| {name} | " + " | ".join(cells) + " |")


def earliest(rows: Rows) -> Rows:
    """``rows`` with each tunesmith study's regret as it was when ties on the value went to the
    earliest trial (``regret_earliest``, written by replay.py since ties are ranked by the reports)."""
    return {k: {**r, "regret": r.get("regret_earliest", r["regret"])} for k, r in rows.items()}


def ties(rows: Rows) -> None:
    """Per tunesmith row, per task and pooled: the share of studies whose named best the tie rule
    changed, the regret with ties to the earliest trial, and the paired difference (rule - earliest)."""
    print("| row | studies | best changed | regret, ties to the earliest (pp) | regret, ties by the reports "
          "| difference (90 % interval) |\n|---|---|---|---|---|---|")
    for m in sorted({m for (_, m, _) in rows if m.startswith("ts-")}):
        mine = {k: r for k, r in rows.items() if k[1] == m and "regret_earliest" in r}
        for task in [None, *sorted({t for (t, _, _) in mine})]:
            sub = [r for k, r in mine.items() if task is None or k[0] == task]
            new, old = (np.array([float(r[x]) for r in sub]) for x in ("regret", "regret_earliest"))
            changed = np.mean([r["best"] != r["earliest"] for r in sub])
            print(f"| {m} | {task or 'pooled'} ({len(sub)}) | {changed:.3f} | {old.mean():.3f} | {new.mean():.3f} "
                  f"| {fmt(interval(new - old))} |")


def versus(rows: Rows, methods: Sequence[str], ref: str) -> None:
    """The table of ``methods`` and each one's paired differences to ``ref``."""
    print("\n".join(table(rows, [m for m in methods if m != ref] + [ref])))
    print(f"\n| row | vs {ref}: epochs | regret (pp) | reached |\n|---|---|---|---|")
    for m in methods:
        if m != ref:
            print(f"| {m} | " + " | ".join(fmt(diff(rows, m, ref, x)) for x in METRICS) + " |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["selection", "comparison", "versus", "schedule", "ties"])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--methods", nargs="+", help="only these rows")
    ap.add_argument("--vs", help="versus: the reference row")
    ap.add_argument("--seeds", help="only these study seeds, a range: 220-399")
    ap.add_argument("--asha", default="ts-asha", help="comparison: the row judged as pruner='asha' (T1-T4)")
    ap.add_argument("--rule", choices=["reports", "earliest"], default="reports",
                    help="tunesmith's tie rule for the named best: the reports (now), the earliest trial (before)")
    args = ap.parse_args(argv)
    rows = load(args.files)
    if args.rule == "earliest":
        rows = earliest(rows)
    if args.seeds:
        lo, _, hi = args.seeds.partition("-")
        rows = {k: r for k, r in rows.items() if int(lo) <= k[2] <= int(hi or lo)}
    if args.methods:
        rows = {k: r for k, r in rows.items() if k[1] in args.methods}
    if args.what == "versus":
        versus(rows, args.methods or sorted({m for (_, m, _) in rows}), args.vs)
        return
    if args.what == "ties":
        ties(rows)
        return
    if args.what == "schedule":
        schedule(rows, sorted({m for (_, m, _) in rows if m.startswith("ts-")}))
        return
    selection(rows) if args.what == "selection" else comparison(rows, args.asha)


if __name__ == "__main__":
    main()
