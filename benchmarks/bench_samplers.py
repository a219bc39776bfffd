"""Benchmark tunesmith's samplers side by side with Optuna, Hyperopt and skopt.

One command runs every (optimizer, problem, seed), appends raw results to
``benchmarks/results/samplers.jsonl`` and writes ``benchmarks/samplers.md``:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_samplers.py --reuse

Useful options: ``--quick`` (smoke test, a minute), ``--families bbob``,
``--samplers bayes tpe`` (tunesmith sampler names), ``--peers optuna-tpe
random`` (``--peers`` alone: none), ``--tunesmith-src /path/to/src`` (benchmark
another checkout), ``--reuse`` (skip runs already in the results file with
the same code), ``--report-only``, ``--overhead`` (time per suggestion at
100 and 1,000 trials). Peers come from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["bbob", "real"], choices=["bbob", "real"])
    ap.add_argument("--samplers", nargs="*", default=None,
                    help="tunesmith samplers (default: bayes tpe auto random sobol, those that exist)")
    ap.add_argument("--peers", nargs="*", default=None, help="peer optimizers (default: all)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--functions", type=int, nargs="+", default=None, help="BBOB function ids")
    ap.add_argument("--dims", type=int, nargs="+", default=None, help="BBOB dimensions")
    ap.add_argument("--tasks", nargs="+", default=None, help="real tasks")
    ap.add_argument("--budget-bbob", type=int, default=100)
    ap.add_argument("--budget-real", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "samplers.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "samplers.md")
    ap.add_argument("--reuse", action="store_true", help="skip runs already in the results file")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--overhead", action="store_true", help="measure time per suggestion and exit")
    ap.add_argument("--overhead-sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--overhead-repeats", type=int, default=5)
    ap.add_argument("--overhead-results", type=Path, default=HERE / "results" / "overhead.json")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 functions, 1 task, 2 seeds, small budgets")
    ap.add_argument("--tunesmith-src", default=None, help="put this tunesmith src/ first on the path")
    ap.add_argument("--note", action="append", default=[], help="a paragraph for the report's header")
    args = ap.parse_args(argv)
    if args.quick:
        args.functions = args.functions or [1, 8]
        args.dims = args.dims or [2]
        args.tasks = args.tasks or ["svm-digits"]
        args.seeds = min(args.seeds, 2)
        args.budget_bbob, args.budget_real = min(args.budget_bbob, 20), min(args.budget_real, 12)
        if args.results == HERE / "results" / "samplers.jsonl":
            args.results = HERE / "results" / "quick.jsonl"
        if args.report == HERE / "samplers.md":
            args.report = HERE / "results" / "quick.md"
    return args


def setup_path(src: str | None) -> None:
    if src:
        src = str(Path(src).resolve())
        sys.path.insert(0, src)
        os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def optimizer_names(args: argparse.Namespace) -> list[str]:
    from samplerbench import optimizers

    known = optimizers.tunesmith_samplers()
    wanted = list(optimizers.DEFAULT_SAMPLERS) if args.samplers is None else args.samplers
    missing = [s for s in wanted if s not in known]
    if missing and args.samplers is not None:
        raise SystemExit(f"tunesmith has no sampler(s) {missing}; it knows {known}")
    if missing:
        print(f"note: skipping tunesmith samplers not in this checkout: {missing}", flush=True)
    peers = list(optimizers.DEFAULT_PEERS) if args.peers is None else args.peers
    for p in peers:
        optimizers.runner(p)  # unknown names fail here, before any work
    return [f"ts-{s}" for s in wanted if s in known] + peers


def build_jobs(args: argparse.Namespace, names: list[str]) -> list:
    from samplerbench import problems
    from samplerbench.runner import Job

    probs = []
    for fam in args.families:
        kw = {}
        if fam == "bbob":
            kw = {"functions": tuple(args.functions or problems.BBOB_FUNCTIONS),
                  "dims": tuple(args.dims or problems.BBOB_DIMS)}
        else:
            kw = {"tasks": tuple(args.tasks or problems.REAL_TASKS)}
        budget = args.budget_bbob if fam == "bbob" else args.budget_real
        probs += problems.problems(fam, budget, **kw)
    # seed by seed (an interrupted run leaves whole seeds, every problem and optimizer
    # alike), and within a seed the expensive problems first so the pool ends evenly
    probs.sort(key=lambda p: (p.family != "real", -p.space.ndim))
    return [Job(n, p, s) for s in range(args.seeds) for p in probs for n in names], probs


def command_line() -> str:
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("OMP_NUM_THREADS", "PYTHONPATH")
                   if os.environ.get(k))
    return f"{env} python {' '.join(shlex.quote(a) for a in sys.argv)}".strip()


def write_report(args: argparse.Namespace, names: list[str], problem_names: set[str]) -> None:
    from samplerbench import report, runner
    from samplerbench.problems import BBOB_NAMES

    records = [r for r in runner.load(args.results) if r["problem"] in problem_names]
    overhead = json.loads(args.overhead_results.read_text()) if args.overhead_results.exists() else []
    header = [
        "# tunesmith samplers vs Optuna, Hyperopt, scikit-optimize",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by:",
        "", "```", command_line(), "```", "",
        "Reproduce everything on one machine (peers from the `bench` extra; `--reuse` skips runs already in "
        "`benchmarks/results/samplers.jsonl` with the same code, so only changed tunesmith samplers rerun):", "",
        "```", "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_samplers.py --reuse", "```", "",
        "Problems: BBOB functions " + ", ".join(f"f{f} {n}" for f, n in BBOB_NAMES.items()) +
        " at d = 2, 5, 10 (instance 1), budget 100; real tasks: `svm-digits` (conditional: kernel, C, "
        "gamma for poly/rbf, degree for poly; 900 digits), `mlp-adam-digits` (MLPClassifier(32), Adam: "
        "learning_rate_init, beta_1, beta_2, epsilon, alpha, batch_size; 500 digits, 12 epochs), "
        "`hgb-breast-cancer` (HistGradientBoosting: learning_rate, max_iter, max_leaf_nodes, "
        "min_samples_leaf, l2_regularization, max_features; 1 - ROC AUC), 3-fold CV, budget 50. "
        "Seeds 0-4 for every optimizer. Peers: Optuna TPESampler default (`optuna-tpe`; in Optuna 5 the "
        "default IS multivariate=True, so a separate multivariate=True run repeats it exactly and "
        "`optuna-tpe-indep`, multivariate=False, the old default, is run instead), "
        "GPSampler, RandomSampler (`random`); Hyperopt TPE; scikit-optimize gp_minimize's defaults through "
        "its ask/tell Optimizer. Same spaces (log scales, integers, conditions mapped per peer; "
        "see `benchmarks/samplerbench/spaces.py`), same budgets.", "",
        *[line for note in args.note for line in (note, "")],
        "Definitions (normalized regret, ranks):", "",
        *[f"> {line}" if line else ">" for line in report.__doc__.strip().splitlines()[2:]],
    ]
    args.report.write_text(report.markdown(records, names, overhead, header))
    print(f"wrote {args.report}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    setup_path(args.tunesmith_src)
    if args.overhead:
        from samplerbench import overhead

        samplers = [s for s in (args.samplers or ["bayes", "tpe"])]
        rows = overhead.measure(args.overhead_sizes, samplers, args.overhead_repeats)
        args.overhead_results.parent.mkdir(parents=True, exist_ok=True)
        args.overhead_results.write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.overhead_results}")
        return
    from samplerbench import runner

    names = optimizer_names(args)
    os.environ["TS_BENCH_COMMAND"] = command_line()
    jobs, probs = build_jobs(args, names)
    if not args.report_only:
        todo = runner.pending(jobs, args.results, args.reuse)
        print(f"{len(jobs)} runs, {len(jobs) - len(todo)} reused, {len(todo)} to do "
              f"on {args.jobs} process(es) -> {args.results}", flush=True)
        t0 = time.time()
        for i, r in enumerate(runner.execute(todo, args.results, args.jobs, args.tunesmith_src), 1):
            status = f"ERROR {r['error']}" if r["error"] else f"best {min(r['values']):.4g}"
            print(f"[{i}/{len(todo)} {time.time() - t0:6.0f}s] {r['optimizer']:14s} {r['problem']:20s} "
                  f"seed {r['seed']} {status} ({r['wall_s']:.1f}s)", flush=True)
    write_report(args, names, {p.name for p in probs})


if __name__ == "__main__":
    main()
