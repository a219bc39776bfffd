"""Sampler variants on the broad benchmark's development subset (benchmarks/samplers-broad.md).

The registered development subset: the ``bbob`` cells at d 5 and 10 of the rugged f15, f16,
f21, f22, f23, f24 and the smooth f1, f2, f8, f10, f12, f14, budget 100, seeds 0-2. Each
variant is ``BayesSampler`` (what ``auto`` picks on these cells) with some options, run
through the public study API; rows go to ``results/samplers-broad-dev.jsonl``. The summary
applies the registered keep-rule: a variant is kept when it lowers the mean regret at 100 %
on the rugged functions and raises neither the smooth functions' mean regret nor the
subset's average rank (ranked against the baseline ``default``):

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_samplers_dev.py \\
        --variants default local_search --seeds 0 1 2
    python benchmarks/bench_samplers_dev.py --report-only
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BUDGET = 100
RESULTS = HERE / "results" / "samplers-broad-dev.jsonl"

#: variant label -> BayesSampler options
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"plugin_incumbent": False},  # the default before plug-in EI was kept
    "local_search": {"local_search": True, "plugin_incumbent": False},
    "ls_patience2": {"local_search": True, "plugin_incumbent": False},
    "ls_alternate": {"local_search": True, "plugin_incumbent": False},
    "plugin": {"plugin_incumbent": True},
    "ls_gated": {"local_search": True, "plugin_incumbent": False},
    "ls_alt_gated": {"local_search": True, "plugin_incumbent": False},
    "plugin_alt": {"local_search": True, "plugin_incumbent": True},
    "plugin_alt_gated": {"local_search": True, "plugin_incumbent": True},
    "shipped": {},  # the default of the sources run (plug-in EI, focus of issue 21)
    "plugin_noise_gated": {"plugin_incumbent": True},
    "plugin_xi": {"plugin_incumbent": True},
    "plugin_alternate": {"plugin_incumbent": True},
    "plugin_stall_observed": {"plugin_incumbent": True},
    "center": {},  # design point 0 at the space's center, the design's length unchanged
    "center_short": {},  # and a shorter design: min(max(5, d // 2 + 1), 10) points
    "center_extra": {},  # the center, then min(max(5, d + 1), 20) Sobol points (kept: the default)
}

#: plug-in EI only while the fitted noise / signal stays below this (``plugin_noise_gated``)
NOISE_GATE = 0.1
#: EI's margin on the warped scale (``plugin_xi``; scikit-optimize's default xi)
XI = 0.01


def _patched(label: str) -> Any:
    """Experimental changes to the trust region's schedule, applied while ``label`` runs."""
    import contextlib

    from tunesmith.samplers.bayes import local

    side = local.side

    def patience2(s: int, d: int) -> float | None:
        return side(s - max(5, d), d) if s >= max(5, d) else None

    def alternate(s: int, d: int) -> float | None:
        return side(s, d) if s % 2 == 0 else None

    patch = {"ls_patience2": patience2, "ls_alternate": alternate, "ls_alt_gated": alternate,
             "plugin_alt": alternate, "plugin_alt_gated": alternate}.get(label)
    from tunesmith.samplers.bayes.sampler import BayesSampler

    region = BayesSampler._trust_region
    incumbent = BayesSampler._incumbent

    def noise_gated(self: Any, gp: Any, n_done: int) -> float:
        """Plug-in EI while the model calls less than NOISE_GATE of the variance noise; the
        observed best once it says the observations are noisy."""
        if n_done and gp.noise >= NOISE_GATE * gp.signal:
            return float(gp.y[:n_done].min())
        return incumbent(self, gp, n_done)

    def with_xi(self: Any, gp: Any, n_done: int) -> float:
        """EI of an improvement by at least XI (standardized loss units) on the plug-in bar."""
        return incumbent(self, gp, n_done) - XI

    def alternate_bar(self: Any, gp: Any, n_done: int) -> float:
        """An ensemble of two bars in time: plug-in on odd trials, the observed best on even ones."""
        return incumbent(self, gp, n_done) if n_done % 2 else float(gp.y[:n_done].min())

    def stall_observed(self: Any, gp: Any, n_done: int) -> float:
        """Plug-in EI until the observed best has not improved for max(5, d) trials, then the
        observed best (the more exploring bar) until it improves. The first ``n_done`` rows are
        the completed trials in order (all of them up to ``max_train``; budgets here are 100)."""
        stalled = local.stalled(gp.y[:n_done]) >= max(5, gp.Z.shape[1])
        return float(gp.y[:n_done].min()) if n_done and stalled else incumbent(self, gp, n_done)

    bar = {"plugin_noise_gated": noise_gated, "plugin_xi": with_xi, "plugin_alternate": alternate_bar,
           "plugin_stall_observed": stall_observed}.get(label)

    def gated(self: Any, enc: Any, losses: Any, incumbent: Any, log_ls: Any) -> Any:
        """Local search only when the model explains part of the losses as noise (noise /
        signal >= 1e-3): rugged landscapes; smooth ones are left alone."""
        th, d = self._theta, len(log_ls)
        return None if th is None or th[d + 1] - th[d] < np.log(1e-3) else region(self, enc, losses, incumbent, log_ls)

    n_init = BayesSampler.n_init
    from tunesmith.samplers.bayes import sampler as bayes_sampler

    design = bayes_sampler.initial_point

    def centered(space: Any, index: int, seed: int, prior: Any, rng: Any) -> Any:
        """Design point 0 at the center of the space (prior coordinates at their modes)."""
        if index:
            return design(space, index, seed, prior, rng)
        u = np.full((1, space.ndim), 0.5)
        return (prior.mode(u) if prior is not None else u)[0]

    def short_design(self: Any, space: Any) -> int:
        return min(max(5, space.ndim // 2 + 1), 10)

    def extra(self: Any, space: Any) -> int:
        return 1 + min(max(5, space.ndim + 1), 20)  # the default since it was kept

    def before(self: Any, space: Any) -> int:
        return min(max(5, space.ndim + 1), 20)  # the default before

    designs = {"center": before, "center_short": short_design, "center_extra": extra}

    @contextlib.contextmanager
    def ctx() -> Any:
        if label.startswith("center"):
            bayes_sampler.initial_point = centered
        if label in designs:
            BayesSampler.n_init = designs[label]  # type: ignore[method-assign]
        if patch is not None:
            local.side = patch  # type: ignore[assignment]
        if label in ("ls_gated", "ls_alt_gated", "plugin_alt_gated"):
            BayesSampler._trust_region = gated  # type: ignore[method-assign]
        if bar is not None:
            BayesSampler._incumbent = bar  # type: ignore[method-assign]
        try:
            yield
        finally:
            local.side = side  # type: ignore[assignment]
            BayesSampler._trust_region = region  # type: ignore[method-assign]
            BayesSampler._incumbent = incumbent  # type: ignore[method-assign]
            BayesSampler.n_init = n_init  # type: ignore[method-assign]
            bayes_sampler.initial_point = design

    return ctx()


def run_one(label: str, name: str, seed: int) -> dict[str, Any]:
    from samplerbench import broad
    from samplerbench.runner import tunesmith_fingerprint

    import tunesmith as ts

    loss = broad.objective(name)
    values: list[float] = []

    def objective(trial: Any) -> float:
        out = loss(dict(trial.params))  # a noisy problem: (observed, noiseless); regret is on the latter
        seen, true = (float(out[0]), float(out[1])) if isinstance(out, tuple) else (float(out), float(out))
        values.append(true)
        return seen

    ts.set_verbosity(logging.WARNING)
    t0 = time.perf_counter()
    sampler = ts.samplers.BayesSampler(seed=seed, **VARIANTS[label])
    study = ts.Study(broad.space(name), direction="minimize", sampler=sampler, seed=seed)
    with _patched(label):
        study.optimize(objective, n_trials=BUDGET, show_progress=False)
    return {"label": label, "problem": name, "seed": seed, "values": values,
            "wall_s": time.perf_counter() - t0, "code": tunesmith_fingerprint(), "finished": time.time()}


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def latest(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["finished"]):
        out[(r["label"], r["problem"], r["seed"])] = r
    return out


def pair_stats(runs: dict[tuple[str, str, int], dict[str, Any]], label: str, base: str) -> dict[str, Any]:
    """``label`` against ``base`` on the cells both completed: regrets per (who, family, t)
    and ranks (of the two) per who."""
    from samplerbench import broad
    from samplerbench.report import regret

    reg: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    ranks: dict[str, list[float]] = defaultdict(list)
    for (lab, p, s), new in runs.items():
        old = runs.get((base, p, s))
        if lab != label or old is None:
            continue
        fam = "rugged" if int(p[6:8]) in broad.DEV_RUGGED else "smooth"
        for who, r in ((base, old), (label, new)):
            for t in (25, 50, 100):
                reg[(who, fam, t)].append(regret(r["values"], t, broad.reference(p)))
        b, n = min(old["values"]), min(new["values"])
        ranks[base].append(1.5 if b == n else 1.0 + (b > n))
        ranks[label].append(1.5 if b == n else 1.0 + (n > b))
    keys = [(w, f, t) for w in (base, label) for f in ("rugged", "smooth") for t in (25, 50, 100)]
    return {"regret": {k: float(np.mean(reg[k])) if reg[k] else float("nan") for k in keys},
            "rank": {k: float(np.mean(v)) for k, v in ranks.items()}, "cells": len(ranks[base])}


def keep(st: dict[str, Any], label: str, base: str) -> bool:
    """The registered keep-rule (benchmarks/samplers-broad.md, development subset)."""
    r, k = st["regret"], st["rank"]
    return bool(r[(label, "rugged", 100)] < r[(base, "rugged", 100)]
                and r[(label, "smooth", 100)] <= r[(base, "smooth", 100)] and k[label] <= k[base])


def summary(rows: list[dict[str, Any]], labels: list[str], base: str = "default") -> list[str]:
    """Per variant against ``base``: regret at 25/50/100 % on the rugged and the smooth
    cells, average rank of the pair, and the keep-rule's verdict."""
    runs = latest(rows)
    out = ["| variant | cells | rugged regret @25/50/100 | smooth regret @25/50/100 | rank (of 2) | kept |",
           "|---|---|---|---|---|---|"]
    for label in (x for x in labels if x != base):
        st = pair_stats(runs, label, base)
        if not st["cells"]:
            continue
        for who in (base, label):
            rg = " / ".join(f"{st['regret'][(who, 'rugged', t)]:.3f}" for t in (25, 50, 100))
            sm = " / ".join(f"{st['regret'][(who, 'smooth', t)]:.4f}" for t in (25, 50, 100))
            verdict = ("yes" if keep(st, label, base) else "no") if who == label else ""
            out.append(f"| `{who}` | {st['cells']} | {rg} | {sm} | {st['rank'][who]:.2f} | {verdict} |")
    return out


def heldout_cells() -> list[str]:
    """The held-out check of a kept change (registered in benchmarks/samplers-broad.md): the 12
    noisy cells and the BBOB cells at d 5 and 10 of the 12 functions outside the subset."""
    from samplerbench import broad

    others = tuple(f for f in broad.BBOB_ALL if f not in broad.DEV_RUGGED + broad.DEV_SMOOTH)
    return broad.synthetic_names("noisy") + broad.bbob_cells(others, broad.DEV_DIMS)


def heldout_summary(rows: list[dict[str, Any]], labels: list[str], base: str) -> list[str]:
    """Per group (noisy, bbob) and variant against ``base``: mean regret at 50 and 100 % and the
    average rank of the pair, on the cells both completed."""
    from samplerbench import broad
    from samplerbench.report import regret

    runs = latest(rows)
    out = ["| cells | variant | n | regret@50 | regret@100 | rank (of 2) |", "|---|---|---|---|---|---|"]
    for label in (x for x in labels if x != base):
        for group in ("noisy", "bbob"):
            pairs = [(runs[(base, p, s)], r) for (lab, p, s), r in runs.items()
                     if lab == label and p.startswith(group) and (base, p, s) in runs]
            if not pairs:
                continue
            for i, who in enumerate((base, label)):
                reg = {t: np.mean([regret(pr[i]["values"], t, broad.reference(pr[i]["problem"])) for pr in pairs])
                       for t in (50, 100)}
                best = [(min(pr[i]["values"]), min(pr[1 - i]["values"])) for pr in pairs]
                ranks = [1.5 if mine == other else 1.0 + (mine > other) for mine, other in best]
                out.append(f"| {group} | `{who}` | {len(pairs)} | {reg[50]:.3f} | {reg[100]:.3f} | "
                           f"{np.mean(ranks):.2f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--match", default="", help="substring of the cell names to run")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--base", default="default", help="the variant the others are compared with")
    ap.add_argument("--cells", choices=("dev", "heldout"), default="dev",
                    help="the development subset, or the registered held-out check of a kept change")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from samplerbench import broad

    if not args.report_only:
        done = set(latest(load(args.results)))  # by label: rename a variant whose code changed
        for seed in args.seeds:
            for name in (c for c in (broad.dev_cells() if args.cells == "dev" else heldout_cells())
                         if args.match in c):
                for label in args.variants:
                    if (label, name, seed) in done:
                        continue
                    r = run_one(label, name, seed)
                    with args.results.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(f"{label:16s} {name} seed {seed} best {min(r['values']):.4g} ({r['wall_s']:.1f}s)",
                          flush=True)
    rows = load(args.results)
    dev = set(broad.dev_cells())
    print("\n".join(summary([r for r in rows if r["problem"] in dev], list(VARIANTS), args.base)))
    held = [r for r in rows if r["problem"] not in dev]
    if held:
        print("\nHeld-out check:\n")
        print("\n".join(heldout_summary(held, list(VARIANTS), args.base)))


if __name__ == "__main__":
    main()
