"""Importance: tunesmith's fANOVA and PED-ANOVA against Optuna's evaluators, same trials, one run.

Registered before running (see benchmarks/importance.md): three closed-form functions, each
with 1,000 trials drawn uniformly on the parameters' own scales (log for log parameters),
seeds 0-4; both libraries read the same trials. Time: the public call a user makes
(tunesmith.importance.importance / optuna.importance.get_param_importances), median of
``--repeats`` on the first seed. Accuracy: the largest absolute error of the main-effect fractions
against the closed form, mean over the seeds. What decides: the speed ratio (target >= 5x)
at an equal or smaller mean error, on the rows that compute what Optuna computes (main
effects; PED-ANOVA without a band); the rows with pairs / a band are shown beside them.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_importance.py
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tunesmith as ts
from tunesmith.importance import FanovaOptions, PedAnovaOptions, importance
from tunesmith.trial import FrozenTrial, TrialState

LEVEL = {"sgd": 0.0, "adam": 1.0, "rms": 2.0}


@dataclass(frozen=True)
class Problem:
    name: str
    space: ts.Space
    f: Callable[[dict[str, Any]], float]
    truth: dict[str, float]  # main-effect fractions (fanova) or shares of the divergence (ped-anova)
    method: str


def _u(v: float, lo: float, hi: float) -> float:
    return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))


def additive_4d() -> Problem:
    """3 (x - 1/2) + 2 (u - 1/2) + level(opt) + 4 (x - 1/2)(u - 1/2), "noise" unused."""
    space = ts.Space({"x": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True),
                      "opt": ts.Categorical(list(LEVEL)), "noise": ts.Float(0, 1)})
    parts = {"x": 9 / 12, "lr": 4 / 12, "opt": 2 / 3, "noise": 0.0}
    total = sum(parts.values()) + 16 / 144

    def f(p: dict[str, Any]) -> float:
        x, u = p["x"], _u(p["lr"], 1e-4, 1e-1)
        return 3 * (x - 0.5) + 2 * (u - 0.5) + LEVEL[p["opt"]] + 4 * (x - 0.5) * (u - 0.5)

    return Problem("additive-4d", space, f, {k: v / total for k, v in parts.items()}, "fanova")


def wavy_6d() -> Problem:
    """3 (a - 1/2) + 2 (u_b - 1/2) + cos(2 pi c) + 6 (a - 1/2)(c - 1/2) + level(opt); d, e unused."""
    space = ts.Space({"a": ts.Float(0, 1), "b": ts.Float(1e-3, 1.0, log=True), "c": ts.Float(0, 1),
                      "opt": ts.Categorical(list(LEVEL)), "d": ts.Float(0, 1), "e": ts.Int(1, 100)})
    parts = {"a": 9 / 12, "b": 4 / 12, "c": 0.5, "opt": 2 / 3, "d": 0.0, "e": 0.0}
    total = sum(parts.values()) + 36 / 144

    def f(p: dict[str, Any]) -> float:
        a, b, c = p["a"], _u(p["b"], 1e-3, 1.0), p["c"]
        return 3 * (a - 0.5) + 2 * (b - 0.5) + math.cos(2 * math.pi * c) + 6 * (a - 0.5) * (c - 0.5) + LEVEL[p["opt"]]

    return Problem("wavy-6d", space, f, {k: v / total for k, v in parts.items()}, "fanova")


def corner_4d() -> Problem:
    """max(x1, 2 x2): the best 10% is x1 < t, x2 < t/2 (t = sqrt(0.2)); Pearson divergences
    1/t - 1 and 2/t - 1, 0 for x3 and opt."""
    space = ts.Space({"x1": ts.Float(0, 1), "x2": ts.Float(0, 1), "x3": ts.Float(0, 1),
                      "opt": ts.Categorical(["a", "b", "c", "d"])})
    t = math.sqrt(0.2)
    div = {"x1": 1 / t - 1, "x2": 2 / t - 1, "x3": 0.0, "opt": 0.0}
    total = sum(div.values())
    return Problem("corner-4d", space, lambda p: max(p["x1"], 2 * p["x2"]), {k: v / total for k, v in div.items()},
                   "ped-anova")


def box_5d() -> Problem:
    """max(x1, 2 x2, u_lr, level(opt)) with level 0 for a, b and 1 for c, d: the best 10% is the box
    x1, u_lr < c, x2 < c/2, opt in {a, b} (c^3 / 4 = 0.1); Pearson divergences 1/c - 1, 2/c - 1,
    1/c - 1 and 1 (half the choices), 0 for x3."""
    space = ts.Space({"x1": ts.Float(0, 1), "x2": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True),
                      "opt": ts.Categorical(["a", "b", "c", "d"]), "x3": ts.Float(0, 1)})
    level = {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0}
    c = 0.4 ** (1 / 3)
    div = {"x1": 1 / c - 1, "x2": 2 / c - 1, "lr": 1 / c - 1, "opt": 1.0, "x3": 0.0}
    total = sum(div.values())

    def f(p: dict[str, Any]) -> float:
        return max(p["x1"], 2 * p["x2"], _u(p["lr"], 1e-4, 1e-1), level[p["opt"]])

    return Problem("box-5d", space, f, {k: v / total for k, v in div.items()}, "ped-anova")


def sample(problem: Problem, n: int, seed: int) -> list[FrozenTrial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cfg = problem.space.sample(rng)
        out.append(FrozenTrial(i, TrialState.COMPLETE, cfg, value=problem.f(cfg)))
    return out


def optuna_study(problem: Problem, trials: list[FrozenTrial]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {name: _distribution(problem.space[name]) for name in problem.space.free}
    study = optuna.create_study(direction="minimize")
    study.add_trials([optuna.trial.create_trial(params=dict(t.params), distributions=dists, value=t.value)
                      for t in trials])
    return study


def _distribution(p: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.kind == "categorical":
        return CategoricalDistribution(list(p.choices))
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), log=bool(p.log))
    return FloatDistribution(float(p.low), float(p.high), log=bool(p.log))


def run_tunesmith(problem: Problem, trials: list[FrozenTrial], seed: int, extra: bool) -> dict[str, float]:
    """``extra``: fANOVA with the pairs; PED-ANOVA with its band (32 bootstrap resamples)."""
    if problem.method == "fanova":
        options: Any = FanovaOptions(pairs=extra)
    else:
        options = PedAnovaOptions(n_bootstrap=32 if extra else 0)
    return importance(trials, problem.space, method=problem.method, seed=seed, options=options).fractions


def run_optuna(problem: Problem, study: Any, seed: int) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if problem.method == "fanova":  # raw fractions of variance, as tunesmith's
        return optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed),
                                                       normalize=False)
    return optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), normalize=True)


def error(found: dict[str, float], truth: dict[str, float]) -> float:
    return max(abs(found.get(k, 0.0) - v) for k, v in truth.items())


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall-clock and median CPU seconds of ``repeats`` calls, and the result (the CPU
    time of this process is what a loaded shared machine leaves least distorted)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu), out


def bench(problem: Problem, n: int, seeds: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    configs: list[tuple[str, Callable[[list[FrozenTrial], Any, int], dict[str, float]]]] = [
        ("tunesmith", lambda tr, st, s: run_tunesmith(problem, tr, s, extra=False)),
        ("tunesmith +pairs" if problem.method == "fanova" else "tunesmith +band",
         lambda tr, st, s: run_tunesmith(problem, tr, s, extra=True)),
        ("optuna", lambda tr, st, s: run_optuna(problem, st, s)),
    ]
    data = {s: sample(problem, n, s) for s in seeds}
    studies = {s: optuna_study(problem, data[s]) for s in seeds}
    for _, fn in configs:  # warm-up: imports and caches, untimed
        fn(data[seeds[0]][:50], optuna_study(problem, data[seeds[0]][:50]), 0)
    for label, fn in configs:
        sec, cpu, first = timed(lambda fn=fn: fn(data[seeds[0]], studies[seeds[0]], seeds[0]), repeats)
        errs = [error(first, problem.truth)] + [error(fn(data[s], studies[s], s), problem.truth) for s in seeds[1:]]
        rows.append({"problem": problem.name, "method": problem.method, "library": label, "trials": n,
                     "seconds_median": sec, "cpu_seconds_median": cpu, "max_error_mean": statistics.mean(errs), "max_error_worst": max(errs),
                     "max_error_per_seed": dict(zip(seeds, errs, strict=True)), "found_first_seed": first})
        print(f"{problem.name:12s} {problem.method:9s} {label:17s} {sec:8.4f} s (cpu {cpu:.4f} s)   error mean "
              f"{statistics.mean(errs):.3f} worst {max(errs):.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--problems", default="additive-4d,wavy-6d,corner-4d,box-5d", help="comma-separated subset")
    p.add_argument("--out", default="benchmarks/results/importance.json")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*experimental.*")  # Optuna's normalize= argument
    rows = []
    wanted = args.problems.split(",")
    for problem in (p for p in (additive_4d(), wavy_6d(), corner_4d(), box_5d()) if p.name in wanted):
        rows += bench(problem, args.trials, list(range(args.seeds)), args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
