"""Gradient-based tuning of 64 per-feature L2 weights against black-box search (benchmarks/hypergrad.md).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_hypergrad.py --seeds 0 1 2 \
        --out benchmarks/results/hypergrad.json
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

import numpy as np
import torch
from sklearn.datasets import load_digits

import tunesmith as ts
from tunesmith.train import ImplicitOptions, LoopOptions, tune

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hypergrad_online as online  # noqa: E402
from hypergrad_cost import Cost as Counter  # noqa: E402

D, C = 64, 10
LOW, HIGH, START = 1e-6, 10.0, 1e-3
BUDGET = 50  # full training runs per black-box method
CG_ITERS = 20
Data = tuple[torch.Tensor, torch.Tensor]


def split(seed: int = 0) -> tuple[Data, Data, Data]:
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    xt = torch.tensor(x[perm] / 16.0, dtype=torch.float64)
    yt = torch.tensor(y[perm])
    return (xt[:500], yt[:500]), (xt[500:1000], yt[500:1000]), (xt[1000:], yt[1000:])


def train_loss_fn(counter: Counter):
    def loss(p: dict[str, torch.Tensor], h: dict[str, torch.Tensor], batch: Data) -> torch.Tensor:
        counter.evals += 1
        x, y = batch
        ce = torch.nn.functional.cross_entropy(x @ p["w"] + p["b"], y)
        return ce + torch.sum(h["l2"] * torch.sum(p["w"] ** 2, dim=1))
    return loss


def val_loss(p: dict[str, torch.Tensor], batch: Data) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.cross_entropy(x @ p["w"] + p["b"], y)


def zeros() -> dict[str, torch.Tensor]:
    return {"w": torch.zeros(D, C, dtype=torch.float64), "b": torch.zeros(C, dtype=torch.float64)}


def lbfgs(params: list[torch.Tensor], max_iter: int = 200) -> torch.optim.Optimizer:
    return torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-12,
                             history_size=20, line_search_fn="strong_wolfe")


def full_run(lam: torch.Tensor, train: Data, counter: Counter) -> dict[str, torch.Tensor]:
    """Train from zero to convergence: one full training run."""
    loss = train_loss_fn(counter)
    w = {k: v.requires_grad_(True) for k, v in zeros().items()}
    opt = lbfgs(list(w.values()))

    def closure() -> float:
        opt.zero_grad()
        v = loss(w, {"l2": lam}, train)
        v.backward()
        return float(v.detach())

    opt.step(closure)
    return {k: v.detach() for k, v in w.items()}


def evaluate(lam: torch.Tensor, data: tuple[Data, Data, Data], counter: Counter) -> tuple[float, float]:
    train, val, test = data
    w = full_run(lam, train, counter)
    with torch.no_grad():
        return float(val_loss(w, val)), float(val_loss(w, test))


def run_blackbox(method: str, seed: int, data: tuple[Data, Data, Data], run_evals: float) -> dict[str, Any]:
    counter = Counter()
    curve: list[tuple[float, float, float]] = []  # (cost in runs, val, test) per trial

    def objective_vec(lam: list[float]) -> float:
        v, t = evaluate(torch.tensor(lam, dtype=torch.float64), data, counter)
        curve.append((float(len(curve) + 1), v, t))  # a trial is one full training run
        return v

    t0 = time.perf_counter()
    if method == "optuna-tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda tr: objective_vec([tr.suggest_float(f"l2_{j}", LOW, HIGH, log=True) for j in range(D)]),
                       n_trials=BUDGET)
    else:
        space = ts.Space({f"l2_{j}": ts.Float(LOW, HIGH, log=True) for j in range(D)})
        s = ts.Study(space, direction="minimize", sampler=method, seed=seed)
        s.optimize(lambda tr: objective_vec([tr.params[f"l2_{j}"] for j in range(D)]), n_trials=BUDGET)
    return summarize(method, curve, time.perf_counter() - t0, BUDGET)


def run_hypergrad(seed: int, data: tuple[Data, Data, Data], run_evals: float, max_runs: float, *,
                  hyper_lr: float = 0.1, cg_iters: int = CG_ITERS, method: str = "hypergrad",
                  run_cpu: float = 1.0) -> dict[str, Any]:
    """Each outer step is a point: the loop's own (warm-started L-BFGS) weights, their validation
    and (not counted) test loss, at the compute spent so far (benchmarks/hypergrad_cost.py)."""
    train, val, test = data
    counter = Counter(len(val[1]) / len(train[1]))
    curve: list[tuple[float, ...]] = []
    torch.manual_seed(seed)

    def on_step(step: Any, params: dict[str, torch.Tensor]) -> None:
        counter.implicit_step(cg_iters)  # CG may stop earlier: an upper bound
        counter.pause()
        with torch.no_grad():
            t = float(val_loss(params, test))
        curve.append((counter.evals / run_evals, step.val_loss, t, counter.cpu / run_cpu))
        if counter.evals / run_evals > max_runs:
            raise StopIteration
        counter.start()

    opts = LoopOptions(outer_steps=1000, inner_steps=1, warm_start_steps=1,
                       inner_optimizer=lambda ps: lbfgs(ps, max_iter=20),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=hyper_lr),
                       implicit=ImplicitOptions(method="cg", iters=cg_iters))
    t0 = time.perf_counter()
    counter.start()
    try:
        tune(train_loss_fn(counter), val_loss, zeros(), {"l2": torch.full((D,), START, dtype=torch.float64)},
             train, val, constraints={"l2": "positive"}, options=opts, callback=on_step, check=False)
    except StopIteration:
        pass
    return summarize(method, curve, time.perf_counter() - t0, max_runs)


def run_online(data: tuple[Data, Data, Data], run_evals: float, max_runs: float, *, run_cpu: float = 1.0,
               method: str = "hypergrad-online") -> dict[str, Any]:
    """The setting of both tasks (benchmarks/hypergrad_online.py): a training step is an L-BFGS
    iteration (about one evaluation), the run is ``run_evals`` of them. Each point: the loop's
    own weights, their loss on the whole validation split and on the test split (reporting,
    not counted), chosen by the loss on the held-out part of the validation split (counted)."""
    train, val, test = data
    fit, held = online.split_holdout(val)
    counter = Counter(len(fit[1]) / len(train[1]))
    warm, inner = online.steps(run_evals, counter.hyper_evals(online.CG_ITERS, len(held[1]) / len(train[1])))
    curve: list[tuple[float, ...]] = []

    def on_step(step: Any, params: dict[str, torch.Tensor]) -> None:
        counter.implicit_step(online.CG_ITERS)
        counter.forward(len(held[1]) / len(train[1]))
        counter.pause()
        with torch.no_grad():
            v, t = float(val_loss(params, val)), float(val_loss(params, test))
        curve.append((counter.evals / run_evals, v, t, counter.cpu / run_cpu, step.score))
        if counter.evals / run_evals > max_runs:
            raise StopIteration
        counter.start()

    opts = LoopOptions(outer_steps=10_000, inner_steps=1, warm_start_steps=max(1, round(warm / inner)),
                       inner_optimizer=lambda ps: lbfgs(ps, max_iter=inner),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=online.HYPER_LR),
                       max_hyper_step=online.MAX_STEP,
                       implicit=ImplicitOptions(method="cg", iters=online.CG_ITERS, damping=online.DAMPING))
    t0 = time.perf_counter()
    counter.start()
    try:
        tune(train_loss_fn(counter), val_loss, zeros(), {"l2": torch.full((D,), START, dtype=torch.float64)},
             train, fit, constraints={"l2": "positive"}, options=opts, callback=on_step, check=False, select_batch=held)
    except StopIteration:
        pass
    return summarize(method, curve, time.perf_counter() - t0, max_runs)


def summarize(method: str, curve: list[tuple[float, ...]], seconds: float, budget: float) -> dict[str, Any]:
    def best_within(runs: float) -> tuple[float, ...] | None:
        seen = [c for c in curve if c[0] <= runs + 1e-9]
        if not seen or runs > budget:
            return None
        chosen = min(seen, key=lambda c: c[4] if len(c) > 4 else c[1])  # the held-out loss where there is one
        return chosen[1:4]  # val, test[, CPU time in full runs]

    return {"method": method, "seconds": seconds, "curve": curve,
            "at": {str(r): best_within(r) for r in (1, 2, 5, 10, 20, 50)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["hypergrad", "hypergrad-online", "random", "bayes", "optuna-tpe"])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--hyper-lr", type=float, nargs="+", default=[0.1],
                    help="hypergrad variants: Adam's rate on log(l2) (one variant per value)")
    ap.add_argument("--split-seed", type=int, default=0, help="the train/validation/test permutation")
    ap.add_argument("--cg-iters", type=int, nargs="+", default=[CG_ITERS], help="hypergrad variants: CG iterations")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = split(args.split_seed)
    probe = Counter()
    full_run(torch.full((D,), 1e-3, dtype=torch.float64), data[0], Counter())  # warms up
    probe.start()
    for lam in (1e-5, 1e-3, 1e-1):
        full_run(torch.full((D,), lam, dtype=torch.float64), data[0], probe)
    run_evals, run_cpu = probe.evals / 3, probe.cpu / 3
    print(f"one full training run: {run_evals:.0f} loss+gradient evaluations, {run_cpu:.3f} CPU s", flush=True)
    results = []
    variants = variant_names(args)
    for seed in args.seeds:
        for m in args.methods:
            for r in runs(m, seed, data, run_evals, variants, run_cpu):
                r["seed"] = seed
                results.append(r)
                print(seed, r["method"], {k: v and (round(v[0], 4), round(v[1], 4)) for k, v in r["at"].items()},
                      f"{r['seconds']:.0f}s", flush=True)
    table(results, [v for m in args.methods for v in (variants if m == "hypergrad" else {m: None})])
    gap(results)
    if args.out:
        args.out.write_text(json.dumps({"run_evals": run_evals, "run_cpu": run_cpu, "results": results}, indent=1))


def variant_names(args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """hypergrad variant name -> (hyper_lr, cg_iters); the registered one is plain "hypergrad"."""
    out = {}
    for lr in args.hyper_lr:
        for it in args.cg_iters:
            name = "hypergrad" if (lr, it) == (0.1, CG_ITERS) else f"hypergrad-lr{lr:g}-cg{it}"
            out[name] = (lr, it)
    return out


def runs(m: str, seed: int, data: tuple[Data, Data, Data], run_evals: float,
         variants: dict[str, tuple[float, int]], run_cpu: float) -> list[dict[str, Any]]:
    if m == "hypergrad-online":
        return [run_online(data, run_evals, 10.0, run_cpu=run_cpu)]
    if m != "hypergrad":
        return [run_blackbox(m, seed, data, run_evals)]
    return [run_hypergrad(seed, data, run_evals, 10.0, hyper_lr=lr, cg_iters=it, method=name, run_cpu=run_cpu)
            for name, (lr, it) in variants.items()]


def table(results: list[dict[str, Any]], methods: Any) -> None:
    print("| method | val @5 runs | test @5 | val @10 | test @10 | val @50 | test @50 |")
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        cells = []
        for budget in ("5", "10", "50"):
            got = [r["at"][budget] for r in rs if r["at"][budget] is not None]
            for i in (0, 1):
                cells.append(f"{statistics.median(g[i] for g in got):.4f}" if got else "-")
        print(f"| {m} | " + " | ".join(cells) + " |")
    assert all(math.isfinite(r["seconds"]) for r in results)


def gap(results: list[dict[str, Any]]) -> None:
    """Validation overfitting: the median over seeds of test minus validation loss of the point
    each method chose with its whole budget."""
    for m in dict.fromkeys(r["method"] for r in results):
        last = [next(r["at"][b] for b in ("50", "20", "10", "5") if r["at"][b] is not None)
                for r in results if r["method"] == m]
        print(f"gap {m}: {statistics.median(t - v for v, t, *_ in last):+.4f}")


if __name__ == "__main__":
    main()
