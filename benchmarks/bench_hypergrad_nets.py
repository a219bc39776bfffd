"""Tasks 2 and 3 of benchmarks/hypergrad.md: gradient-based tuning (implicit and unrolled)
against tunesmith bayes, Optuna TPE and GPSampler and random search, compute counted in
full training runs.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_hypergrad_nets.py \
        --task loan-mlp --seeds 0 1 2 --out benchmarks/results/hypergrad-loan-mlp.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hypergrad_tasks import TASKS, Counter, Task  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import ImplicitOptions, LoopOptions, tune  # noqa: E402
from tunesmith.train.hyperloop import flat_values  # noqa: E402
from tunesmith.train.hyperstudy import values_of  # noqa: E402

BLACKBOX = ("random", "bayes", "optuna-tpe", "optuna-gp")
GRADIENT = ("implicit", "unrolled")
HYPER_LR = 0.2  # Adam on the raw (log / logit) hyperparameters
AT = (1, 2, 5, 10, 20, 50)
Curve = list[tuple[float, float, float]]  # (compute in full runs, val, test) per scored point


def full_run(task: Task, h: dict[str, torch.Tensor], counter: Counter) -> dict[str, torch.Tensor]:
    """One full training run: full-batch Adam for ``task.run_steps`` steps from the initial weights."""
    loss = task.make_train_loss(counter)
    w = {k: v.clone().requires_grad_(True) for k, v in task.params.items()}
    opt = torch.optim.Adam(list(w.values()), lr=task.lr)
    for _ in range(task.run_steps):
        opt.zero_grad()
        loss(w, h, task.splits[0]).backward()
        opt.step()
    return {k: v.detach() for k, v in w.items()}


def score(task: Task, h: dict[str, torch.Tensor]) -> tuple[float, float]:
    w = full_run(task, h, Counter())
    with torch.no_grad():
        return float(task.val_loss(w, task.splits[1])), float(task.val_loss(w, task.splits[2]))


def run_blackbox(task: Task, method: str, seed: int, budget: int) -> Curve:
    curve: Curve = []

    def objective(flat: dict[str, float]) -> float:
        v, t = score(task, values_of(flat, task.hparams))
        curve.append((float(len(curve) + 1), v, t))
        return v if math.isfinite(v) else 1e6

    if method.startswith("optuna"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = (optuna.samplers.TPESampler(seed=seed) if method == "optuna-tpe"
                   else optuna.samplers.GPSampler(seed=seed))
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda tr: objective({k: tr.suggest_float(k, f.low, f.high, log=f.log)
                                             for k, f in task.space.items()}), n_trials=budget)
    else:
        s = ts.Study(ts.Space(dict(task.space)), direction="minimize", sampler=method, seed=seed)
        s.optimize(lambda tr: objective(dict(tr.params)), n_trials=budget)
    return curve


def run_gradient(task: Task, method: str, seed: int, max_runs: float) -> Curve:
    """``tune`` from the default start; each outer step's hyperparameters are scored by a fresh
    full run (not counted), the compute is the loop's own training-loss evaluations."""
    counter = Counter()
    curve: Curve = []
    torch.manual_seed(seed)
    # a Hessian-vector product costs 2 evaluations (1 counted in its call), the validation
    # gradient and mixed product 1 more; the K unrolled steps' backward pass about 2K
    extra = task.cg_iters + 1 if method == "implicit" else 2 * task.unroll + 1

    def on_step(step: Any) -> None:
        counter.evals += extra
        v, t = score(task, step.hparams)
        curve.append((counter.evals / task.run_steps, v, t))
        if counter.evals / task.run_steps > max_runs:
            raise StopIteration

    opts = LoopOptions(outer_steps=10_000, inner_steps=task.inner_steps, warm_start_steps=task.run_steps,
                       method=method, unroll_steps=task.unroll,
                       inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=task.lr),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=HYPER_LR),
                       implicit=ImplicitOptions(method="cg", iters=task.cg_iters, damping=1e-3))
    try:
        tune(task.make_train_loss(counter), task.val_loss, task.params, task.hparams, task.splits[0],
             task.splits[1], constraints=task.constraints, options=opts, callback=on_step)
    except StopIteration:
        pass
    return curve


def best_within(curve: Curve, runs: float, budget: float) -> tuple[float, float] | None:
    seen = [c for c in curve if c[0] <= runs + 1e-9]
    if not seen or runs > budget:
        return None
    best = min(seen, key=lambda c: c[1])
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=sorted(TASKS))
    ap.add_argument("--summarize", type=Path, default=None, help="print the tables of a results file and exit")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=list(GRADIENT + BLACKBOX))
    ap.add_argument("--budget", type=int, default=50, help="full training runs per black-box method")
    ap.add_argument("--gradient-runs", type=float, default=10.0, help="compute (in full runs) per gradient method")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.summarize:
        return summarize(args.summarize)
    if args.task is None:
        ap.error("--task is required")
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        task = TASKS[args.task](seed)
        print(f"{task.name} seed {seed}: {len(flat_values(task.hparams))} hyperparameters, {sum(v.numel() for v in task.params.values())} weights", flush=True)
        for m in args.methods:
            t0 = time.perf_counter()
            if m in GRADIENT:
                curve, budget = run_gradient(task, m, seed, args.gradient_runs), args.gradient_runs
            else:
                curve, budget = run_blackbox(task, m, seed, args.budget), float(args.budget)
            r = {"method": m, "seed": seed, "seconds": time.perf_counter() - t0, "curve": curve,
                 "at": {str(a): best_within(curve, a, budget) for a in AT}}
            results.append(r)
            print(seed, m, {k: v and (round(v[0], 4), round(v[1], 4)) for k, v in r["at"].items()},
                  f"{r['seconds']:.0f}s", flush=True)
            if args.out:
                args.out.write_text(json.dumps({"task": args.task, "args": vars(args) | {"out": str(args.out)},
                                                "results": results}, indent=1))
    table(results, args.methods)


def table(results: list[dict[str, Any]], methods: list[str], budgets: tuple[str, ...] = ("5", "10", "20", "50")) -> None:
    """Medians over seeds of the validation and test loss at each budget, and the test-minus-validation
    gap of the configuration chosen at the method's largest budget."""
    print("| method | " + " | ".join(f"val @{b} | test @{b}" for b in budgets) + " | gap (test - val) |")
    print("|---|" + "---|" * (2 * len(budgets) + 1))
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        cells = []
        for budget in budgets:
            got = [r["at"][budget] for r in rs if r["at"][budget] is not None]
            for i in (0, 1):
                cells.append(f"{statistics.median(g[i] for g in got):.4f}" if got else "-")
        last = [next(r["at"][b] for b in reversed(AT_NAMES) if r["at"][b] is not None) for r in rs]
        cells.append(f"{statistics.median(t - v for v, t in last):+.4f}" if last else "-")
        print(f"| {m} | " + " | ".join(cells) + " |")


AT_NAMES = tuple(str(a) for a in AT)


def summarize(path: Path) -> None:
    """The tables of a results file (``--summarize FILE``)."""
    d = json.loads(path.read_text())
    methods = list(dict.fromkeys(r["method"] for r in d["results"]))
    table(d["results"], methods)


if __name__ == "__main__":
    main()
