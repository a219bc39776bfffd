"""Tasks 2 and 3 of benchmarks/hypergrad.md: gradient-based tuning (implicit and unrolled)
against tunesmith bayes, Optuna TPE and GPSampler and random search, compute counted in
full training runs.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_hypergrad_nets.py \
        --task loan-mlp --seeds 0 1 2 --out benchmarks/results/hypergrad-loan-mlp.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hypergrad_online as online  # noqa: E402
from hypergrad_tasks import TASKS, Counter, Task  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import ImplicitOptions, LoopOptions, tune  # noqa: E402
from tunesmith.train.hyperloop import flat_values  # noqa: E402
from tunesmith.train.hyperstudy import values_of  # noqa: E402

BLACKBOX = ("random", "bayes", "optuna-tpe", "optuna-gp")
HYPER_LR = 0.2  # Adam on the raw (log / logit) hyperparameters
AT = (1, 2, 5, 10, 20, 50)
Curve = list[tuple[float, ...]]  # (compute in full runs, val, test[, CPU time in full runs, selection loss]) per point


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
        print(f"  {method} trial {len(curve)}: {v:.4f} / {t:.4f}", file=sys.stderr, flush=True)  # survives a cut run
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


@dataclasses.dataclass(frozen=True)
class Setting:
    """A gradient method's schedule: ``warm`` training steps, then ``inner`` steps per
    hyperparameter step (Adam at ``hyper_lr`` on the raw hyperparameters, times
    ``1 / (1 + k / decay)`` at outer step k when ``decay``), from every L2 weight ``l2`` and
    label smoothing ``smoothing``. None: the task's own value. ``holdout``: the fraction of
    the validation rows held out of the hypergradients to choose the step by.
    ``fractions``: ``warm`` and ``inner`` from the task's run length (hypergrad_online.py).
    ``max_step``: ``LoopOptions.max_hyper_step``. ``penalty_share``: every L2 start scaled down
    together (never up) until the penalty at the initial weights is at most this share of the
    initial training loss. ``val_frac``: a random minibatch of this share of the fitted
    validation rows per hyperparameter step (a stochastic hypergradient)."""

    method: str
    warm: int | None = None
    inner: int | None = None
    cg: int | None = None
    unroll: int | None = None
    hyper_lr: float = HYPER_LR
    decay: float | None = None
    l2: float | None = None
    smoothing: float | None = None
    holdout: float = 0.0
    fractions: bool = False
    max_step: float | None = None
    penalty_share: float | None = None
    val_frac: float | None = None


#: "implicit" and "unrolled": the registered settings (1 full run of warm-up, the task's
#: inner steps); "-online": hyperparameter steps from early in the one training run
SETTINGS = {
    "implicit": Setting("implicit"),
    "unrolled": Setting("unrolled"),
    "implicit-online": Setting("implicit", warm=50, inner=10, cg=5),
    "unrolled-online": Setting("unrolled", warm=50, inner=10, unroll=3),
    "online": Setting("by-cost", cg=online.CG_ITERS, hyper_lr=online.HYPER_LR, holdout=online.HOLDOUT,
                      fractions=True, max_step=online.MAX_STEP),
    # not registered: "online" with its L2 starts capped (penalty <= 1/4 of the loss at the start)
    "online-capped": Setting("implicit", cg=online.CG_ITERS, hyper_lr=online.HYPER_LR, holdout=online.HOLDOUT,
                             fractions=True, max_step=online.MAX_STEP, penalty_share=0.25),
}


def start_of(task: Task, s: Setting) -> dict[str, torch.Tensor]:
    h = {k: v.clone() for k, v in task.hparams.items()}
    for k in h:
        if k == "label_smoothing" and s.smoothing is not None:
            h[k].fill_(s.smoothing)
        elif k != "label_smoothing" and s.l2 is not None:
            h[k].fill_(s.l2)
    return h if s.penalty_share is None else _cap_penalty(task, h, s.penalty_share)


def _cap_penalty(task: Task, h: dict[str, torch.Tensor], share: float) -> dict[str, torch.Tensor]:
    """``h`` with every L2 weight scaled by one factor <= 1 so that the penalty at the initial
    weights is at most ``share`` of the training loss there."""
    loss = task.make_train_loss(Counter())
    with torch.no_grad():
        total = float(loss(task.params, h, task.splits[0]))
        no_l2 = {k: (v if k == "label_smoothing" else torch.zeros_like(v)) for k, v in h.items()}
        data = float(loss(task.params, no_l2, task.splits[0]))
    factor = min(1.0, share * data / max(total - data, 1e-30))
    print(f"  start: penalty {total - data:.4g}, loss {data:.4g}, L2 starts x {factor:.3g}", flush=True)
    return {k: (v if k == "label_smoothing" else v * factor) for k, v in h.items()}


def run_gradient(task: Task, name: str, seed: int, max_runs: float, run_cpu: float) -> Curve:
    """``tune`` with setting ``name``; every outer step is a point: the loop's own weights there,
    their validation loss and (not counted) test loss, at the compute spent so far (evaluations
    and CPU time, benchmarks/hypergrad_cost.py)."""
    s = SETTINGS[name]
    val, held = online.split_holdout(task.splits[1], s.holdout) if s.holdout else (task.splits[1], None)
    rows = [len(task.splits[0][1]), len(val[1]), len(held[1]) if held else 0]
    cost = Counter(rows[1] * (s.val_frac or 1.0) / rows[0])
    cg, unroll = s.cg or task.cg_iters, s.unroll or task.unroll
    method = s.method
    if method == "by-cost":  # the one setting's rule (hypergrad_online.py): implicit, or greedy (K = 1)
        greedy = online.method(task.run_steps, cost.hyper_evals(cg, rows[2] / rows[0])) == "greedy"
        method, unroll = ("unrolled", 1) if greedy else ("implicit", unroll)
    hyper_evals = (cost.hyper_evals(cg, rows[2] / rows[0]) if method == "implicit"
                   else cost.unrolled_evals(unroll, rows[2] / rows[0]))
    warm, inner = online.steps(task.run_steps, hyper_evals) if s.fractions else (s.warm, s.inner)
    curve: Curve = []
    torch.manual_seed(seed)

    def on_step(step: Any, params: dict[str, torch.Tensor]) -> None:
        cost.implicit_step(cg) if method == "implicit" else cost.unrolled_step(unroll)
        cost.forward(rows[2] / rows[0])
        cost.pause()
        with torch.no_grad():  # reporting, not counted: the whole validation split's loss and the test loss
            full = float(task.val_loss(params, task.splits[1])) if held else step.val_loss
            test = float(task.val_loss(params, task.splits[2]))
        curve.append((cost.evals / task.run_steps, full, test, cost.cpu / run_cpu, step.score))
        if cost.evals / task.run_steps > max_runs:
            raise StopIteration
        cost.start()

    opts = LoopOptions(outer_steps=10_000, inner_steps=inner or task.inner_steps,
                       warm_start_steps=task.run_steps if warm is None else warm,
                       method=method, unroll_steps=unroll,
                       inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=task.lr),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=s.hyper_lr),
                       hyper_schedule=None if s.decay is None else (lambda k: 1.0 / (1.0 + k / s.decay)),
                       max_hyper_step=s.max_step,
                       implicit=ImplicitOptions(method="cg", iters=cg, damping=1e-3))
    if s.val_frac:
        fitted, gen, size = val, torch.Generator().manual_seed(seed), max(1, round(s.val_frac * rows[1]))

        def val(_k: int) -> Any:
            return online.take(fitted, torch.randperm(rows[1], generator=gen)[:size])
    cost.start()
    try:
        tune(task.make_train_loss(cost), task.val_loss, task.params, start_of(task, s), task.splits[0],
             val, constraints=task.constraints, options=opts, callback=on_step, check=False, select_batch=held)
    except StopIteration:
        pass
    return curve


def run_seconds(task: Task, n: int = 3) -> float:
    """The median CPU time of one full training run (the unit of the CPU-time check)."""
    times = []
    for _ in range(n + 1):
        t0 = time.process_time()
        full_run(task, task.hparams, Counter())
        times.append(time.process_time() - t0)
    return statistics.median(times[1:])  # the first warms up


def _chosen(c: tuple[float, ...]) -> float:
    """What a method chooses its point by: the selection loss where it has one, else the validation loss."""
    return c[4] if len(c) > 4 else c[1]


def best_within(curve: Curve, runs: float, budget: float) -> tuple[float, float] | None:
    seen = [c for c in curve if c[0] <= runs + 1e-9]
    if not seen or runs > budget:
        return None
    best = min(seen, key=_chosen)
    return best[1], best[2]


def cpu_within(curve: Curve, runs: float) -> float | None:
    """The CPU time (in full runs) spent by the point that :func:`best_within` chooses."""
    seen = [c for c in curve if c[0] <= runs + 1e-9]
    return min(seen, key=_chosen)[3] if seen and len(seen[0]) > 3 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=sorted(TASKS))
    ap.add_argument("--summarize", type=Path, default=None, help="print the tables of a results file and exit")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=None,
                    help="default: every setting and peer (the -online settings on loan-mlp only: they were made for it)")
    ap.add_argument("--data-seed", type=int, default=0, help="the data and split (0 registered; others: development)")
    ap.add_argument("--blocks", type=int, default=1, help="minilm: the trained transformer blocks (the example has 6)")
    ap.add_argument("--budget", type=int, default=50, help="full training runs per black-box method")
    ap.add_argument("--gradient-runs", type=float, default=10.0, help="compute (in full runs) per gradient method")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.summarize:
        return summarize(args.summarize)
    if args.task is None:
        ap.error("--task is required")
    torch.set_num_threads(1)
    if args.methods is None:
        args.methods = [m for m in SETTINGS if m != "online-capped"
                        and (args.task == "loan-mlp" or not m.endswith("-online"))] + list(BLACKBOX)
    results = []
    for seed in args.seeds:
        extra = {"blocks": args.blocks} if args.task == "minilm" else {}
        task = TASKS[args.task](seed, data_seed=args.data_seed, **extra)
        run_cpu = run_seconds(task) if any(m in SETTINGS for m in args.methods) else float("nan")  # black-box only: no CPU check
        print(f"{task.name} seed {seed}: {len(flat_values(task.hparams))} hyperparameters, "
              f"{sum(v.numel() for v in task.params.values())} weights, one run {run_cpu:.3f} CPU s", flush=True)
        for m in args.methods:
            t0 = time.perf_counter()
            if m in SETTINGS:
                curve, budget = run_gradient(task, m, seed, args.gradient_runs, run_cpu), args.gradient_runs
            else:
                curve, budget = run_blackbox(task, m, seed, args.budget), float(args.budget)
            r = {"method": m, "seed": seed, "seconds": time.perf_counter() - t0, "curve": curve, "run_cpu": run_cpu,
                 "at": {str(a): best_within(curve, a, budget) for a in AT},
                 "cpu_at": {str(a): cpu_within(curve, a) for a in AT}}
            results.append(r)
            print(seed, m, {k: v and (round(v[0], 4), round(v[1], 4)) for k, v in r["at"].items()},
                  f"{r['seconds']:.0f}s", flush=True)
            if args.out:
                args.out.write_text(json.dumps({"task": args.task, "args": vars(args) | {"out": str(args.out)},
                                                "results": results}, indent=1))
    table(results, args.methods)
    verdict(results, [m for m in args.methods if m in SETTINGS])


def table(results: list[dict[str, Any]], methods: list[str], budgets: tuple[str, ...] = ("5", "10", "20", "50")) -> None:
    """Medians over seeds of the validation and test loss at each budget, and the test-minus-validation
    gap of the configuration chosen at the method's largest budget."""
    print("| method | " + " | ".join(f"val @{b} | test @{b}" for b in budgets) + " | gap (test - val) | CPU runs @5 |")
    print("|---|" + "---|" * (2 * len(budgets) + 2))
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        cells = []
        for budget in budgets:
            got = [r["at"][budget] for r in rs if r["at"][budget] is not None]
            for i in (0, 1):
                cells.append(f"{statistics.median(g[i] for g in got):.4f}" if got else "-")
        last = [next(r["at"][b] for b in reversed(AT_NAMES) if r["at"][b] is not None) for r in rs]
        cells.append(f"{statistics.median(t - v for v, t in last):+.4f}" if last else "-")
        cpu = [r["cpu_at"]["5"] for r in rs if r.get("cpu_at", {}).get("5") is not None]
        cells.append(f"{statistics.median(cpu):.2f}" if cpu else "-")
        print(f"| {m} | " + " | ".join(cells) + " |")


AT_NAMES = tuple(str(a) for a in AT)


def summarize(path: Path) -> None:
    """The tables of a results file (``--summarize FILE``)."""
    d = json.loads(path.read_text())
    methods = list(dict.fromkeys(r["method"] for r in d["results"]))
    table(d["results"], methods)
    peers = [r for r in d["results"] if r["method"] in BLACKBOX]
    largest = max((a for a in AT_NAMES if any(r["at"][a] for r in peers)), key=float, default="50")
    verdict(d["results"], [m for m in methods if m in SETTINGS], peers_at=largest)


def verdict(results: list[dict[str, Any]], gradient: list[str], at: str = "5", peers_at: str = "50") -> None:
    """The registered comparison: each gradient method at ``at`` runs against the best peer
    (lowest median validation loss) at ``peers_at``, per seed and on the medians."""
    peers = {m: [r for r in results if r["method"] == m and r["at"][peers_at]] for m in BLACKBOX}
    peers = {m: rs for m, rs in peers.items() if rs}
    if not peers:
        return
    best = min(peers, key=lambda m: statistics.median(r["at"][peers_at][0] for r in peers[m]))
    ref = {r["seed"]: r["at"][peers_at] for r in peers[best]}
    med = [statistics.median(x[i] for x in ref.values()) for i in (0, 1)]
    print(f"\nbest peer on the medians @{peers_at}: {best} {med[0]:.4f} / {med[1]:.4f}")
    for m in gradient:
        rs = sorted((r for r in results if r["method"] == m and r["at"][at]), key=lambda r: r["seed"])
        for r in rs:
            v, t = r["at"][at][:2]
            rv, rt = ref[r["seed"]][:2]
            print(f"  {m} seed {r['seed']}: {v:.4f} / {t:.4f} against {rv:.4f} / {rt:.4f}: "
                  f"val {'pass' if v <= rv else 'fail'}, test {'pass' if t <= rt * 1.01 else 'fail'}")
        if rs:
            v, t = (statistics.median(r["at"][at][i] for r in rs) for i in (0, 1))
            print(f"  {m} medians: {v:.4f} / {t:.4f}: val {'pass' if v <= med[0] else 'fail'}, "
                  f"test {'pass' if t <= med[1] * 1.01 else 'fail'}")


if __name__ == "__main__":
    main()
