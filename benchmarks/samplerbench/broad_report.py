"""The broad benchmark's summary (registered in benchmarks/samplers-broad.md).

Per family (synthetic = bbob + noisy + int + mixint + cond; real; parallel) and over
everything: mean normalized regret and average rank at 25 %, 50 % and 100 % of the
budget, on the (problem, seed) cells every optimizer of the table completed.
Normalized regret as in :mod:`.report`; synthetic f* and f_ref from :func:`.broad.reference`
(noisy problems: the noiseless values are recorded); real tasks (and parallel runs of
them): f* = best loss any run found on the task, f_ref = median loss of the random runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import broad
from .report import RANDOM_RUNS, average_ranks, fmt, latest, mean_regret

FRACTIONS = (0.25, 0.5, 1.0)
FAMILIES = ("all", "synthetic", "real", "parallel")


def family_of(r: dict[str, Any]) -> str:
    if r.get("pending", 1) > 1:
        return "parallel"
    return "synthetic" if r["family"] in broad.SYNTHETIC else "real"


def base(problem: str) -> str:
    return problem.split(":", 1)[-1]


def references(runs: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    by_base: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_base[base(r["problem"])].append(r)
    refs = {}
    for name, rs in by_base.items():
        if name.split("-")[0] in broad.SYNTHETIC:
            refs[name] = broad.reference(name)
            continue
        f_star = min(min(r["values"]) for r in rs if r["values"])
        rand = [v for r in rs if r["optimizer"] in RANDOM_RUNS for v in r["values"]]
        refs[name] = (f_star, float(np.median(rand or [v for r in rs for v in r["values"]])))
    return {r["problem"]: refs[base(r["problem"])] for r in runs}


def complete_cells(runs: list[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    cells: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in runs:
        cells[(r["problem"], int(r["seed"]))].add(r["optimizer"])
    full = {c for c, have in cells.items() if set(names) <= have}
    return [r for r in runs if (r["problem"], int(r["seed"])) in full and r["optimizer"] in names]


def at_fraction(runs: list[dict[str, Any]], frac: float) -> list[dict[str, Any]]:
    """Runs cut to ``frac`` of their budget, as one value: the best loss by then (so
    problems of different budgets mix, and ``t = 1`` in :mod:`.report` reads it)."""
    return [{**r, "values": [min(r["values"][: max(1, round(frac * int(r["budget"])))])], "budget": 1}
            for r in runs]


def table(runs: list[dict[str, Any]], names: Sequence[str], refs: dict[str, tuple[float, float]]) -> list[str]:
    runs = complete_cells(runs, names)
    n_cells = len({(r["problem"], r["seed"]) for r in runs})
    cols: dict[str, list[str]] = {n: [] for n in names}
    rank_full: dict[str, float] = {}
    for frac in FRACTIONS:
        cut = at_fraction(runs, frac)
        ranks, _ = average_ranks(cut, list(names), 1) if cut else ({n: np.nan for n in names}, 0)
        for n in names:
            mine = [r for r in cut if r["optimizer"] == n]
            cols[n] += [fmt(mean_regret(mine, refs, 1) if mine else np.nan), fmt(ranks[n], 2)]
        rank_full = ranks
    head = ["optimizer", *[f"{h}@{int(f * 100)}%" for f in FRACTIONS for h in ("regret", "rank")]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sorted(names, key=lambda n: np.nan_to_num(rank_full.get(n, np.nan), nan=1e9)):
        out.append("| " + " | ".join([f"`{n}`", *cols[n]]) + " |")
    out += ["", f"{n_cells} (problem, seed) cells completed by every optimizer of this table."]
    return out


def verdict(runs: list[dict[str, Any]], names: Sequence[str], refs: dict[str, tuple[float, float]],
            ours: str = "ts-auto") -> list[str]:
    runs = complete_cells(runs, names)
    if ours not in names or not runs:
        return [f"- `{ours}` not run on these cells"]
    lines = []
    full = at_fraction(runs, 1.0)
    ranks, _ = average_ranks(full, list(names), 1)
    leader = min(names, key=lambda n: ranks[n])
    lines.append(f"- best average rank at 100%: `{leader}` ({fmt(ranks[leader], 2)}), `{ours}` "
                 f"{fmt(ranks[ours], 2)} -> {'MET' if leader == ours else 'NOT MET'}")
    for frac in (0.5, 1.0):
        cut = at_fraction(runs, frac)
        reg = {n: mean_regret([r for r in cut if r["optimizer"] == n], refs, 1) for n in names}
        rival = min((n for n in names if n != ours), key=lambda n: reg[n])
        lines.append(f"- mean regret@{int(frac * 100)}%: `{ours}` {fmt(reg[ours])}, best peer `{rival}` "
                     f"{fmt(reg[rival])} -> {'MET' if reg[ours] < reg[rival] else 'NOT MET'}")
    return lines


def widely_run(runs: list[dict[str, Any]]) -> list[str]:
    """The optimizers that completed at least half of the (problem, seed) cells of ``runs``
    (the slow peers run on a registered subsample; a stopped run leaves a cell half done)."""
    cells: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for r in runs:
        cells[r["optimizer"]].add((r["problem"], int(r["seed"])))
    n = len(set().union(*cells.values())) if cells else 0
    return sorted(k for k, v in cells.items() if 2 * len(v) >= n)


def cells_table(runs: list[dict[str, Any]]) -> list[str]:
    """Which (problem, optimizer) ran, with how many seeds."""
    names = sorted({r["optimizer"] for r in runs})
    seeds: dict[tuple[str, str], int] = defaultdict(int)
    for r in runs:
        seeds[(r["problem"], r["optimizer"])] += 1
    out = ["| problem | " + " | ".join(f"`{n}`" for n in names) + " |", "|" + "---|" * (len(names) + 1)]
    for p in sorted({r["problem"] for r in runs}):
        out.append(f"| {p} | " + " | ".join(str(seeds.get((p, n), "")) for n in names) + " |")
    return out


def by_source(records: Sequence[dict[str, Any]], ours: str = "ts-auto") -> list[dict[str, Any]]:
    """The newest error-free run of ``ours`` per (cell, sources hash), renamed ``ours@hash``."""
    newest: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in records:
        k = (r["problem"], int(r["seed"]), r.get("code", "?"))
        if r["optimizer"] == ours and not r.get("error") and (k not in newest or r["finished"] > newest[k]["finished"]):
            newest[k] = r
    return [{**r, "optimizer": f"{ours}@{code}"} for (_, _, code), r in newest.items()]


def sources(records: Sequence[dict[str, Any]], runs: list[dict[str, Any]], ours: str = "ts-auto") -> list[str]:
    """Which sources (hash of tunesmith's ``src/``) the ``ours`` rows of the tables are for, per
    family, and, in each family, the sources that ran there against each other on the cells
    all of them ran."""
    count: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in runs:
        if r["optimizer"] == ours:
            count[r.get("code", "?")][family_of(r)] += 1
    out = ["## Sources of the tunesmith rows", "", f"The `{ours}` rows of the tables below (the newest per cell), by sources hash:", ""]
    out += [f"- `{code}`: " + ", ".join(f"{fam} {n}" for fam, n in sorted(fams.items())) for code, fams in count.items()]
    mine = by_source(records, ours)
    names = sorted({r["optimizer"] for r in mine})
    if len(names) > 1:
        refs = references([*runs, *mine])
        for fam in FAMILIES[1:]:
            rs = [r for r in mine if family_of(r) == fam]
            here = sorted({r["optimizer"] for r in rs})
            if len(here) > 1 and complete_cells(rs, here):
                out += ["", f"{fam}, the sources against each other on the cells all of them ran:", "",
                        *table(rs, here, refs)]
    return out


def markdown(records: Sequence[dict[str, Any]], header: Sequence[str]) -> str:
    runs = latest(records, None)
    refs = references(runs)
    dev = set(broad.dev_cells())
    out = [*header, "", *sources(records, runs)]
    for fam in FAMILIES:
        rs = [r for r in runs if fam == "all" or family_of(r) == fam]
        if not rs:
            continue
        names = sorted({r["optimizer"] for r in rs})
        wide = widely_run(rs)
        out += ["", f"## {fam}", "", "All optimizers that ran here, on the cells all of them completed:", "",
                *table(rs, names, refs), "", "Verdict on those cells:", "", *verdict(rs, names, refs)]
        if wide and len(wide) < len(names):
            out += ["", "The optimizers that ran at least half of this family's cells, on the cells all of "
                    "them completed:", "", *table(rs, wide, refs), "", "Verdict on those cells:", "",
                    *verdict(rs, wide, refs)]
        held = [r for r in rs if r["problem"] not in dev]
        if fam in ("all", "synthetic") and len(held) < len(rs):
            out += ["", "Held out (the cells outside the development subset), the optimizers of the table above:", "",
                    *table(held, wide, refs), "", "Verdict on those cells:", "", *verdict(held, wide, refs)]
        if fam != "all":
            out += ["", "<details><summary>cells run (seeds per optimizer)</summary>", "", *cells_table(rs), "",
                    "</details>"]
    return "\n".join(out) + "\n"
