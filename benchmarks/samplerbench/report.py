"""Turn the raw results file into Markdown tables.

Normalized regret of a run after t evaluations:

    r(t) = (best of the first t losses - f*) / (f_ref - f*),  clipped below at 0

* BBOB: f* is the known optimum the suite exposes; f_ref is the median loss
  of 1,000 uniformly random points (seed 12345) of the same problem.
* real tasks: f* is the best loss any run of any optimizer found on the task
  (best known); f_ref is the median loss of the random configurations that
  the random-search runs evaluated (Optuna RandomSampler and tunesmith
  "random"; all evaluations of all runs if neither ran).

0 is the optimum (best known), 1 is "as good as a typical random
configuration". Ranks: per (problem, seed), optimizers are ranked by their
best loss after t evaluations (ties share the mean rank), then averaged; only
(problem, seed) cells where every optimizer of the table ran are ranked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .problems import bbob_optimum, bbob_random_median

CHECKPOINTS = (10, 25, 50, 100)
RANDOM_RUNS = ("random", "ts-random")


def latest(records: Sequence[dict[str, Any]], optimizers: Sequence[str] | None) -> list[dict[str, Any]]:
    """The newest error-free record per (optimizer, problem, seed, budget)."""
    best: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for r in records:
        if r.get("error") or (optimizers and r["optimizer"] not in optimizers):
            continue
        k = (r["optimizer"], r["problem"], int(r["seed"]), int(r["budget"]))
        if k not in best or r["finished"] > best[k]["finished"]:
            best[k] = r
    return list(best.values())


def references(records: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """(f*, f_ref) per problem."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_problem[r["problem"]].append(r)
    out = {}
    for name, runs in by_problem.items():
        if runs[0]["family"] == "bbob":
            out[name] = (bbob_optimum(name), bbob_random_median(name))
            continue
        f_star = min(min(r["values"]) for r in runs if r["values"])
        rand = [v for r in runs if r["optimizer"] in RANDOM_RUNS for v in r["values"]]
        pool = rand or [v for r in runs for v in r["values"]]
        out[name] = (f_star, float(np.median(pool)))
    return out


def regret(values: Sequence[float], t: int, ref: tuple[float, float]) -> float:
    f_star, f_ref = ref
    best = min(values[:t])
    return max(best - f_star, 0.0) / max(f_ref - f_star, 1e-12)


def checkpoints(budget: int) -> list[int]:
    return [t for t in CHECKPOINTS if t < budget] + [budget]


def mean_regret(runs: list[dict[str, Any]], refs: dict[str, tuple[float, float]], t: int) -> float:
    vals = [regret(r["values"], t, refs[r["problem"]]) for r in runs if len(r["values"]) >= t]
    return float(np.mean(vals)) if vals else float("nan")


def average_ranks(runs: list[dict[str, Any]], names: list[str], t: int) -> tuple[dict[str, float], int]:
    cells: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in runs:
        if len(r["values"]) >= t:
            cells[(r["problem"], int(r["seed"]))][r["optimizer"]] = min(r["values"][:t])
    full = [c for c in cells.values() if all(n in c for n in names)]
    ranks: dict[str, list[float]] = defaultdict(list)
    for c in full:
        for n, rank in zip(names, rankdata([c[n] for n in names]), strict=True):
            ranks[n].append(float(rank))
    return {n: float(np.mean(ranks[n])) if ranks[n] else float("nan") for n in names}, len(full)


def fmt(x: float, digits: int = 3) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{digits}f}"


def family_table(runs: list[dict[str, Any]], refs: dict[str, tuple[float, float]]) -> list[str]:
    names = sorted({r["optimizer"] for r in runs})
    budget = max(int(r["budget"]) for r in runs)
    ts_ = checkpoints(budget)
    ranks, n_cells = average_ranks(runs, names, budget)
    by_opt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_opt[r["optimizer"]].append(r)
    head = ["optimizer", *[f"regret@{t}" for t in ts_], f"avg rank@{budget}", "runs", "overhead s/suggestion"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sorted(names, key=lambda n: (np.nan_to_num(ranks[n], nan=1e9), n)):
        rs = by_opt[n]
        over = float(np.median([r["overhead_per_suggestion_s"] for r in rs]))
        cols = [f"`{n}`", *[fmt(mean_regret(rs, refs, t)) for t in ts_], fmt(ranks[n], 2),
                str(len(rs)), fmt(over, 4)]
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    lines.append(f"Mean normalized regret over problems x seeds; ranks over {n_cells} complete "
                 "(problem, seed) cells; overhead = median over runs of (wall - evaluation time) / evaluations.")
    return lines


def rank_table(runs: list[dict[str, Any]]) -> list[str]:
    names = sorted({r["optimizer"] for r in runs})
    budget = max(int(r["budget"]) for r in runs)
    ts_ = checkpoints(budget)
    per_t = {t: average_ranks(runs, names, t)[0] for t in ts_}
    head = ["optimizer", *[f"rank@{t}" for t in ts_]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sorted(names, key=lambda n: np.nan_to_num(per_t[budget][n], nan=1e9)):
        lines.append("| " + " | ".join([f"`{n}`", *[fmt(per_t[t][n], 2) for t in ts_]]) + " |")
    return lines


def split_table(runs: list[dict[str, Any]], refs: dict[str, tuple[float, float]], key: str) -> list[str]:
    """Mean normalized regret at the full budget, one column per group."""
    def group(r: dict[str, Any]) -> str:
        return r["problem"].split("-")[2] if key == "dim" else r["problem"]

    groups = sorted({group(r) for r in runs})
    names = sorted({r["optimizer"] for r in runs})
    budget = max(int(r["budget"]) for r in runs)
    head = ["optimizer", *groups]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        cols = [f"`{n}`"]
        for g in groups:
            rs = [r for r in runs if r["optimizer"] == n and group(r) == g]
            cols.append(fmt(mean_regret(rs, refs, budget)))
        lines.append("| " + " | ".join(cols) + " |")
    return lines


def best_loss_table(runs: list[dict[str, Any]]) -> list[str]:
    """Real tasks: mean +- sd of the best loss after the full budget."""
    tasks = sorted({r["problem"] for r in runs})
    names = sorted({r["optimizer"] for r in runs})
    head = ["optimizer", *tasks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        cols = [f"`{n}`"]
        for task in tasks:
            best = [min(r["values"]) for r in runs if r["optimizer"] == n and r["problem"] == task]
            cols.append(f"{np.mean(best):.4f} ± {np.std(best):.4f}" if best else "–")
        lines.append("| " + " | ".join(cols) + " |")
    return lines


def overhead_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| completed trials | optimizer | median s/suggestion | ratio to optuna-gp | ratio to optuna-tpe |",
             "|---|---|---|---|---|"]
    for n in sorted({r["n_trials"] for r in rows}):
        at = {r["optimizer"]: r["median_s"] for r in rows if r["n_trials"] == n}
        for name, s in at.items():
            gp, tpe = at.get("optuna-gp"), at.get("optuna-tpe")
            lines.append(f"| {n} | `{name}` | {s:.4f} | {fmt(s / gp if gp else np.nan)} | "
                         f"{fmt(s / tpe if tpe else np.nan, 2)} |")
    return lines


def provenance(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Where the runs in the tables came from: host, command, code versions."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[(r.get("host", "?"), r.get("command", "") or "?")].append(r)
    lines = ["| runs | host | command | optimizers (code) |", "|---|---|---|---|"]
    for (host, cmd), rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        codes = sorted({f"{r['optimizer']} ({r['code']})" for r in rs})
        lines.append(f"| {len(rs)} | {host} | `{cmd}` | {', '.join(codes)} |")
    return lines


def coverage(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Runs restricted to the (problem, seed) cells every optimizer completed,
    the optimizers that completed every cell, and a Markdown note on coverage."""
    cells: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for r in runs:
        cells[r["optimizer"]].add((r["problem"], int(r["seed"])))
    grid = set().union(*cells.values()) if cells else set()
    common = set.intersection(*cells.values()) if cells else set()
    complete = sorted(n for n, c in cells.items() if c == grid)
    kept = [r for r in runs if (r["problem"], int(r["seed"])) in common]
    n_problems = len({p for p, _ in grid})
    note = [f"Coverage: {len(grid)} (problem, seed) cells over {n_problems} problems; "
            f"{len(common)} cells completed by every optimizer. Runs per optimizer: " +
            ", ".join(f"`{n}` {len(c)}" for n, c in sorted(cells.items())) + "."]
    return kept, complete, note


OPTUNA = ("optuna-tpe", "optuna-tpe-mv", "optuna-tpe-indep", "optuna-gp")


def verdict(runs: list[dict[str, Any]], refs: dict[str, tuple[float, float]], default: str) -> list[str]:
    """The issue's bar, checked per family: best average rank, and lower mean
    regret than Optuna's best sampler at budget 50 and 100."""
    lines = []
    for family in ("bbob", "real"):
        fam = [r for r in runs if r["family"] == family]
        names = sorted({r["optimizer"] for r in fam})
        if default not in names:
            continue
        budget = max(int(r["budget"]) for r in fam)
        ranks, _ = average_ranks(fam, names, budget)
        leader = min(names, key=lambda n: np.nan_to_num(ranks[n], nan=1e9))
        ok = leader == default
        lines.append(f"- {family}: best average rank at {budget}: `{leader}` ({fmt(ranks[leader], 2)}); "
                     f"`{default}`: {fmt(ranks[default], 2)} -> {'MET' if ok else 'NOT MET'}")
        for t in (50, 100):
            if t > budget:
                continue
            ours = mean_regret([r for r in fam if r["optimizer"] == default], refs, t)
            peers = {n: mean_regret([r for r in fam if r["optimizer"] == n], refs, t) for n in OPTUNA if n in names}
            if not peers:
                continue
            best = min(peers, key=lambda n: peers[n])
            ok = ours < peers[best]
            lines.append(f"- {family}: mean regret@{t} `{default}` {fmt(ours)} vs Optuna's best `{best}` "
                         f"{fmt(peers[best])} -> {'MET' if ok else 'NOT MET'}")
    return lines


def overhead_verdict(rows: Sequence[dict[str, Any]], ours: str = "ts-bayes") -> list[str]:
    at = {r["optimizer"]: r["median_s"] for r in rows if r["n_trials"] == 1000}
    if not {ours, "optuna-gp", "optuna-tpe"} <= set(at):
        return []
    gp, tpe = at[ours] / at["optuna-gp"], at[ours] / at["optuna-tpe"]
    return [f"- overhead at 1,000 trials: `{ours}` = {gp:.3f} x GPSampler (bar <= 0.05: "
            f"{'MET' if gp <= 0.05 else 'NOT MET'}), {tpe:.2f} x Optuna TPE (bar <= 3: "
            f"{'MET' if tpe <= 3 else 'NOT MET'})"]


def markdown(records: Sequence[dict[str, Any]], optimizers: Sequence[str] | None,
             overhead: Sequence[dict[str, Any]], header: Sequence[str]) -> str:
    runs = latest(records, optimizers)
    refs = references(runs)
    out = [*header]
    common = [r for fam in ("bbob", "real") for r in coverage([x for x in runs if x["family"] == fam])[0]]
    checks = verdict(common, refs, "ts-auto") + overhead_verdict(overhead)
    if checks:
        out += ["", "## Verdict (the bar of issue 3, default sampler `ts-auto`)", "", *checks]
    for family, title in (("bbob", "BBOB (coco-experiment)"), ("real", "Real tuning tasks (scikit-learn data)")):
        every = [r for r in runs if r["family"] == family]
        if not every:
            continue
        fam, complete, lines = coverage(every)
        out += ["", f"## {title}", "", *lines]
        if complete and len(complete) < len({r["optimizer"] for r in every}):
            out += ["", f"Optimizers that completed every run ({len(complete)}), on all cells:", "",
                    *family_table([r for r in every if r["optimizer"] in complete], refs)]
        if not fam:
            continue
        out += ["", "All optimizers, on the cells all of them completed:", "", *family_table(fam, refs), "",
                "Average rank by evaluations:", "", *rank_table(fam), ""]
        if family == "bbob":
            out += ["Mean normalized regret at the full budget, by dimension:", "", *split_table(fam, refs, "dim")]
        else:
            out += ["Best loss after the full budget (mean ± sd over seeds; loss = 1 - CV accuracy for "
                    "svm/mlp, 1 - CV ROC AUC for hgb):", "", *best_loss_table(fam), "",
                    "Mean normalized regret at the full budget, by task:", "", *split_table(fam, refs, "task")]
    out += ["", "## Provenance", "", *provenance(runs)]
    if overhead:
        out += ["", "## Suggestion overhead (5-d function, N completed trials)", "", *overhead_table(overhead)]
    return "\n".join(out) + "\n"
