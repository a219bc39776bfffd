"""The broad sampler benchmark (registered in benchmarks/samplers-broad.md).

Runs the registered cells (``samplerbench.broad``: 96 BBOB cells, noisy, integer,
mixed-integer and conditional problems, 9 real tasks, and the parallel family with 4
and 8 pending suggestions) for tunesmith samplers and peers, seeds 0-2, appending raw
results to ``benchmarks/results/samplers-broad.jsonl``, then writes the summary:

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_samplers_broad.py --reuse

Options: ``--families synthetic real parallel`` (default all; or a sub-family such as
``bbob noisy int mixint cond``), ``--match REGEX`` (problem names), ``--samplers``,
``--peers``, ``--seeds``, ``--jobs``, ``--report-only`` (with ``--peers``: a report on
those optimizers only, e.g. into another ``--report`` file), ``--list`` (print the cells).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PEERS = ("optuna-tpe", "optuna-gp", "optuna-cmaes", "ngopt", "skopt-gp", "smac-hpo", "hyperopt-tpe", "ax",
         "random")
PARALLEL_PEERS = ("optuna-tpe", "optuna-gp", "optuna-cmaes", "ngopt", "random")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["synthetic", "real", "parallel"])
    ap.add_argument("--match", default=None, help="regular expression on problem names")
    ap.add_argument("--samplers", nargs="*", default=["auto"], help="tunesmith samplers")
    ap.add_argument("--peers", nargs="*", default=None, help="peers (default: all registered)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--results", type=Path, default=HERE / "results" / "samplers-broad.jsonl")
    ap.add_argument("--report", type=Path, default=HERE / "results" / "samplers-broad-report.md")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--tunesmith-src", default=None)
    return ap.parse_args(argv)


def registered(families: list[str]) -> list:
    """Every registered problem of the families asked for."""
    from samplerbench import broad, problems
    from samplerbench.problems import Problem

    import tunesmith as ts  # noqa: F401 - before samplerbench, which imports it

    subs = [f for f in families if f in broad.SYNTHETIC]
    if "synthetic" in families:
        subs = list(broad.SYNTHETIC)
    out = [Problem(n, f, broad.space(n), broad.BUDGET_SYNTHETIC) for f in subs for n in broad.synthetic_names(f)]
    tasks = problems.real_tasks()
    if "real" in families:
        out += [Problem(t, "real", tasks[t][0](), broad.BUDGET_REAL) for t in tasks]
    if "parallel" in families:
        base = [Problem(broad.bbob_cells((f,), (d,))[0], "bbob", problems.bbob_space(d), broad.BUDGET_SYNTHETIC)
                for f, d in broad.PARALLEL_BBOB]
        base += [Problem(t, "real", tasks[t][0](), broad.BUDGET_REAL) for t in broad.PARALLEL_REAL]
        out += [Problem(f"p{k}:{p.name}", p.family, p.space, p.budget, k) for k in broad.PENDING for p in base]
    return out


def jobs_for(args: argparse.Namespace, probs: list) -> list:
    from samplerbench.runner import Job

    mine = [f"ts-{s}" for s in args.samplers]
    peers = list(PEERS if args.peers is None else args.peers)
    jobs = []
    for seed in args.seeds:
        for p in probs:
            names = mine + [n for n in peers if p.pending == 1 or n in PARALLEL_PEERS]
            jobs += [Job(n, p, seed) for n in names]
    return jobs


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.tunesmith_src:
        sys.path.insert(0, str(Path(args.tunesmith_src).resolve()))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    probs = registered(args.families)
    if args.match:
        probs = [p for p in probs if re.search(args.match, p.name)]
    if args.list:
        for p in probs:
            print(p.name, p.family, p.space.ndim, p.budget, p.pending)
        print(f"{len(probs)} problems")
        return
    from samplerbench import broad_report, runner

    os.environ["TS_BENCH_COMMAND"] = "python " + " ".join(sys.argv)
    if not args.report_only:
        todo = runner.pending(jobs_for(args, probs), args.results, args.reuse)
        print(f"{len(todo)} runs to do -> {args.results}", flush=True)
        t0 = time.time()
        for i, r in enumerate(runner.execute(todo, args.results, args.jobs, args.tunesmith_src), 1):
            status = f"ERROR {r['error']}" if r["error"] else f"best {min(r['values']):.4g}"
            print(f"[{i}/{len(todo)} {time.time() - t0:6.0f}s] {r['optimizer']:13s} {r['problem']:26s} "
                  f"seed {r['seed']} {status} ({r['wall_s']:.1f}s)", flush=True)
    records = runner.load(args.results)
    if args.report_only and args.peers is not None:  # a report on these optimizers only
        keep = {*args.peers, *(f"ts-{s}" for s in args.samplers)}
        records = [r for r in records if r["optimizer"] in keep]
    header = ["# Broad sampler benchmark: results so far", "",
              "Generated by `benchmarks/bench_samplers_broad.py`; registration and reading: "
              "`benchmarks/samplers-broad.md`."]
    args.report.write_text(broad_report.markdown(records, header))
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
