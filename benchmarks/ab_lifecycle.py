"""A/B harness for the trial lifecycle: the storage and distributed measurements, run on two
source trees side by side in one run.

``--before`` and ``--after`` are ``src`` folders of two tunesmith checkouts. For each
measurement the driver starts one fresh process per side (``PYTHONPATH=<tree>``), each with
its own fresh database, and runs the two in lockstep: one side does a block of work (25
ask+tell, one ``optimize``, ...) while the other waits on its pipe, then they swap, so a
burst of load on the shared machine hits both sides at the same point of the same
measurement. Rounds repeat that with new processes and databases (the side that starts
swaps every round); the table gives the median over rounds. Only public calls are timed:
``study.ask``/``tell``/``enqueue``/``optimize`` and ``Study.load(...).optimize(...)``.

Groups (a round runs two process pairs, see PLAN; each group gets its own database):

* ``latency`` on memory and SQLite (and with ``--pg-latency`` on PostgreSQL, ``--pg-history``
  trials: on a loaded machine its A/A spread is too wide to read): ask+tell per
  trial (median, p90) with the random sampler on bench_overhead.py's 4-parameter space while
  the history grows to ``--history`` trials; then ``--queue`` trials enqueued (enqueue timed)
  and popped by ask+tell; then the Sobol sampler (it reads the whole history at every ask)
  growing to ``--sobol-history``.
* ``throughput`` on SQLite and PostgreSQL: trials/s of bench_distributed.py's storage part
  with 2 forked workers (``Study.load(...).optimize``, process start included), and of
  ``study.optimize(n_jobs=2)`` (the process executor), ``--trials`` trials each, cheap
  objective; ``--reps`` times per round, sides alternating, median kept.
* ``heartbeat`` on SQLite (``heartbeat_interval=0.05``, ``grace_period=0.3``,
  ``requeue_failed=True``): a forked worker asks ``--lost`` trials and dies; the first ask
  after the grace period (it fails and re-queues them all) and the ask+tell of the re-queued
  copies are timed; then ask+tell per trial with heartbeats on.
* ``pause`` on memory and SQLite: ``optimize`` with ASHA(pause=True), trials reporting 9 steps,
  paused ones promoted and resumed (trials/s; ``--reps`` times per round).

PostgreSQL is a throwaway server on 127.0.0.1 (tests/pg.py), stopped by its pid at the end;
without one the PostgreSQL rows are skipped. Run from a checkout that has this file::

    /work/main/.venv/bin/python benchmarks/ab_lifecycle.py --before A/src --after B/src \
        --out benchmarks/results/ab-lifecycle.json

Prints a markdown table (metric, before median, after median, after/before, and the range of
the per-round ratios) and writes it next to the JSON of every raw value.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIDES = ("before", "after")
#: One process pair per entry and round (each a fresh process per side); its (group, storage)
#: parts run in this order, each on its own fresh database. Heartbeat goes first in its
#: process: it forks before any database is open.
PLAN = [
    [("latency", "memory"), ("latency", "sqlite"), ("pause", "memory"), ("pause", "sqlite")],
    [("heartbeat", "sqlite"), ("throughput", "sqlite"), ("throughput", "postgresql")],
    [("latency", "postgresql")],  # only with --pg-latency: far noisier than the rest on a loaded machine
]


# == worker side: runs with PYTHONPATH=<tree>, prints one JSON line ===========================
def _import_benchmarks() -> tuple[Any, Any, Any]:
    """tunesmith from PYTHONPATH, then the existing benchmark modules of this checkout.

    bench_distributed.py puts its own checkout's src first on sys.path and in PYTHONPATH
    (for the processes it starts); both are put back, so this process and every process
    it starts (forked or spawned) run the tree under test."""
    saved_path, saved_env = list(sys.path), os.environ.get("PYTHONPATH")
    import tunesmith as ts

    sys.path.insert(0, str(HERE))
    import bench_distributed
    import bench_overhead

    sys.path[:] = saved_path
    if saved_env is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved_env
    return ts, bench_distributed, bench_overhead


def _ms_stats(prefix: str, seconds: list[float]) -> dict[str, dict[str, Any]]:
    """Median and 90th percentile, in ms."""
    xs = sorted(seconds)
    p90 = xs[min(len(xs) - 1, math.ceil(0.9 * len(xs)) - 1)]
    return {f"{prefix}: median": _metric(1e3 * statistics.median(xs), "ms", "lower"),
            f"{prefix}: p90": _metric(1e3 * p90, "ms", "lower")}


def _metric(value: float, unit: str, better: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "better": better}


class Turn:
    """Takes turns with the other side's process, through the driver: ``turn()`` says "ready"
    on the protocol pipe and waits for "go". Called between blocks of timed work (never inside
    a timed span), so the two sides run block by block in alternation and a burst of load hits
    both at the same point of the same measurement."""

    def __init__(self) -> None:
        # the protocol keeps the real stdout; anything else printed (here or in a forked or
        # spawned child) goes to stderr
        self.out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def __call__(self) -> None:
        self.send("ready")
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the driver went away")

    def send(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _ask_tell(study: Any, n: int, turn: Callable[[], None], block: int) -> list[float]:
    """Seconds of ``ask()`` + ``tell()`` for each of ``n`` trials (cheap objective)."""

    def ask_tell(_: int) -> None:
        trial = study.ask()
        study.tell(trial, trial.params["x"] ** 2)

    return _timed_calls(n, ask_tell, turn, block)


def _timed_calls(n: int, call: Callable[[int], Any], turn: Callable[[], None], block: int) -> list[float]:
    """Seconds of each ``call(i)`` for i < n; a turn every ``block`` calls (never inside one)."""
    times = []
    for i in range(n):
        if i % block == 0:
            turn()
        t0 = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - t0)
    return times


def _queued_params(i: int) -> dict[str, Any]:
    return {"x": -4.0 + 0.1 * i, "lr": 1e-3, "n": 1 + i % 64, "act": ("relu", "tanh", "gelu")[i % 3]}


def work_latency(ts: Any, bo: Any, url: str | None, opts: dict[str, Any], turn: Turn) -> dict[str, Any]:
    pg = url is not None and url.startswith("postgresql")
    n, q, block = opts["pg_history" if pg else "history"], opts["queue"], opts["block"]
    study = ts.Study(bo._ts_space(), sampler="random", seed=opts["seed"], storage=url, name="lat-random")
    out = _ms_stats(f"ask+tell, random, history 0-{n}", _ask_tell(study, n, turn, block))
    out.update(_ms_stats(f"enqueue, history {n}", _timed_calls(
        q, lambda i: study.enqueue(_queued_params(i)), turn, block)))

    def pop(i: int) -> None:
        trial = study.ask()
        study.tell(trial, trial.params["x"] ** 2)
        if trial.params["x"] != _queued_params(i)["x"]:
            raise AssertionError(f"ask #{i} after enqueue did not pop the queued trial {i}")

    out.update(_ms_stats(f"ask+tell popping {q} queued", _timed_calls(q, pop, turn, block)))
    sobol = ts.Study(bo._ts_space(), sampler="sobol", seed=opts["seed"], storage=url, name="lat-sobol")
    m = opts["pg_history" if pg else "sobol_history"]
    times = _ask_tell(sobol, m, turn, block)
    out[f"ask+tell, sobol (reads history), 0-{m}: median"] = _metric(1e3 * statistics.median(times), "ms", "lower")
    out[f"ask+tell, sobol (reads history), {max(0, m - 100)}-{m}: median"] = _metric(
        1e3 * statistics.median(times[-100:]), "ms", "lower")
    return out


def _rate(reps: list[float]) -> dict[str, Any]:
    """Trials/s, the median of the in-pair repetitions (each one kept)."""
    return {**_metric(statistics.median(reps), "trials/s", "higher"), "reps": reps}


def work_throughput(ts: Any, bd: Any, url: str, opts: dict[str, Any], turn: Turn) -> dict[str, Any]:
    n = opts["trials"]
    forked, pooled = [], []
    for rep in range(opts["reps"]):
        name = f"dist{rep}"
        bd._ts_create(url, name)
        turn()
        forked.append(bd._timed(bd._ts_worker, url, name, n, 2))
        _check_complete(ts.Study.load(name, url), n)
        study = ts.Study({"x": ts.Float(-5, 5)}, storage=url, name=f"optimize{rep}", sampler="random")
        turn()
        t0 = time.perf_counter()
        study.optimize(lambda t: float(t.params["x"] ** 2), n_trials=n, n_jobs=2, show_progress=False)
        pooled.append(n / (time.perf_counter() - t0))
        _check_complete(study, n)
    return {
        f"2 forked workers, Study.load+optimize, {n} trials (bench_distributed)": _rate(forked),
        f"optimize(n_jobs=2) processes, {n} trials": _rate(pooled),
    }


def _check_complete(study: Any, n: int) -> None:
    done = sum(t.state.value == "complete" for t in study.trials)
    if done != n:
        raise AssertionError(f"study {study.name!r}: {done} complete trials, expected {n}")


def work_heartbeat(ts: Any, bo: Any, url: str, opts: dict[str, Any], turn: Turn) -> dict[str, Any]:
    lost, n, interval, grace = opts["lost"], opts["hb_trials"], 0.05, 0.3
    pid = os.fork()
    if pid == 0:  # the worker that dies: asks trials, never tells them, no heartbeat afterwards
        code = 1
        try:
            dying = ts.Study(bo._ts_space(), sampler="random", seed=opts["seed"], storage=url, name="hb",
                             heartbeat_interval=interval, grace_period=grace, requeue_failed=True)
            for _ in range(lost):
                dying.ask()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"the dying worker failed before asking its trials (status {status})")
    time.sleep(grace + 2 * interval)
    study = ts.Study.load("hb", url, sampler="random", seed=opts["seed"])
    turn()
    t0 = time.perf_counter()
    trial = study.ask()  # fails the lost trials, queues copies, pops the first copy
    first = time.perf_counter() - t0
    study.tell(trial, trial.params["x"] ** 2)
    drain = _ask_tell(study, lost - 1, turn, lost)
    failed = sum(t.state.value == "failed" for t in study.trials)
    if failed != lost or len(study.trials) != 2 * lost:
        raise AssertionError(f"expected {lost} failed and {lost} re-queued trials, got {failed} failed "
                             f"of {len(study.trials)}")
    out = {f"first ask after {lost} lost trials (fail + re-queue them)": _metric(1e3 * first, "ms", "lower")}
    out[f"ask+tell of the {lost - 1} other re-queued copies: median"] = _metric(
        1e3 * statistics.median(drain), "ms", "lower")
    out[f"ask+tell with heartbeats on, {n} trials: median"] = _metric(
        1e3 * statistics.median(_ask_tell(study, n, turn, opts["block"])), "ms", "lower")
    return out


def work_pause(ts: Any, url: str | None, opts: dict[str, Any], turn: Turn) -> dict[str, Any]:
    n = opts["pause_trials"]
    from tunesmith.pruners import ASHA

    def objective(trial: Any) -> float:
        x, value = trial.params["x"], float("nan")
        for step in range(trial.start_step, 9):
            value = (x - 1.0) ** 2 + 1.0 / (step + 1)
            trial.set_attr("checkpoint", f"ckpt-{trial.number}-{step}")
            trial.report(value, step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return value

    rates = []
    for rep in range(opts["reps"]):
        study = ts.Study({"x": ts.Float(-5, 5)}, storage=url, name=f"pause{rep}", sampler="random",
                         seed=opts["seed"], pruner=ASHA(min_resource=1, reduction_factor=3, max_resource=9, pause=True))
        turn()
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=n, show_progress=False)
        rates.append(n / (time.perf_counter() - t0))
    return {f"optimize with ASHA(pause=True), {n} trials x 9 steps": _rate(rates)}


def worker(parts: list[tuple[str, str, str | None]], opts: dict[str, Any]) -> None:
    """Run each (group, storage, database URL) in turn, taking turns with the other side; the
    last protocol line is ``result {json}``: each part's metrics and seconds, or the error."""
    turn = Turn()
    ts, bd, bo = _import_benchmarks()
    ts.set_verbosity(40)  # logging.ERROR: the lost workers' warnings are expected
    works: dict[str, Callable[[str | None], dict[str, Any]]] = {
        "latency": lambda url: work_latency(ts, bo, url, opts, turn),
        "throughput": lambda url: work_throughput(ts, bd, _sql(url), opts, turn),
        "heartbeat": lambda url: work_heartbeat(ts, bo, _sql(url), opts, turn),
        "pause": lambda url: work_pause(ts, url, opts, turn),
    }
    out: dict[str, Any] = {"tunesmith": ts.__file__, "parts": []}
    turn()  # imported: the driver starts the measurements once both sides are here
    for group, storage, url in parts:
        t0 = time.perf_counter()
        part: dict[str, Any] = {"group": group, "storage": storage}
        try:
            part["metrics"] = works[group](url)
        except Exception:  # noqa: BLE001 - reported as this part's error; the next parts still run
            part["error"] = traceback.format_exc()[-1500:]
        out["parts"].append({**part, "seconds": time.perf_counter() - t0})
    turn.send("result " + json.dumps(out))


def _sql(url: str | None) -> str:
    if url is None:
        raise ValueError("this group needs a database URL")
    return url


# == driver side =============================================================================
class Databases:
    """Fresh databases: a SQLite file in a temporary folder, or a new PostgreSQL database."""

    def __init__(self, use_pg: bool) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="ab-lifecycle-")
        self.pg: Any = None
        self.count = 0
        if use_pg:
            sys.path.insert(0, str(ROOT / "tests"))
            from pg import PostgresServer, PostgresUnavailable

            try:
                self.pg = PostgresServer().__enter__()
            except PostgresUnavailable as exc:
                print(f"PostgreSQL rows skipped: {exc}", file=sys.stderr)

    def url(self, storage: str) -> str | None:
        self.count += 1
        if storage == "memory":
            return None
        if storage == "sqlite":
            return f"sqlite:///{self.tmp.name}/db{self.count}.db"
        return self.pg.create_database(f"ab{self.count}")

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()  # stops the server by its pid
        self.tmp.cleanup()


def run_pair(
    trees: dict[str, Path], order: tuple[str, ...], parts: dict[str, list[tuple[str, str, str | None]]],
    opts: dict[str, Any], timeout: float,
) -> dict[str, dict[str, Any]]:
    """One fresh worker process per side, run in lockstep: the driver says "go" to one side,
    waits for its "ready" (the end of a block of work), then to the other, until both sent
    their result. The waiting side sleeps on its pipe, so the working side has the machine."""
    procs, logs, results = {}, {}, {}
    t0 = time.perf_counter()
    for side in order:
        env = {**os.environ, "PYTHONPATH": str(trees[side]), "OMP_NUM_THREADS": "1"}
        logs[side] = tempfile.TemporaryFile("w+")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(parts[side]),
               "--opts", json.dumps(opts)]
        procs[side] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=logs[side], text=True)
    watchdog = threading.Timer(timeout, lambda: [p.kill() for p in procs.values()])  # by pid, our own children
    watchdog.start()
    try:
        for side in order:  # wait until both have imported
            _expect(procs[side], "ready")
        live = list(order)
        while live:
            for side in list(live):
                assert procs[side].stdin is not None
                procs[side].stdin.write("go\n")
                procs[side].stdin.flush()
                line = _expect(procs[side], "ready", "result ")
                if line.startswith("result "):
                    results[side] = json.loads(line[len("result "):])
                    live.remove(side)
                    procs[side].wait()  # its exit must not overlap the other side's last block
    except (RuntimeError, BrokenPipeError, OSError) as exc:
        for side in order:
            results.setdefault(side, {"error": f"{exc}"})
    finally:
        watchdog.cancel()
        for side in order:
            procs[side].kill()
            procs[side].wait()
    wall = time.perf_counter() - t0
    for side in order:
        res = results[side]
        logs[side].seek(0)
        if "error" in res:
            res["error"] += "\n" + logs[side].read()[-1500:]
        elif not Path(res["tunesmith"]).resolve().is_relative_to(trees[side].resolve()):
            raise RuntimeError(f"the {side} worker imported {res['tunesmith']}, not tunesmith from {trees[side]}")
        res["wall_s"] = wall
        logs[side].close()
    return results


def _expect(proc: subprocess.Popen[str], *starts: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    if not line.startswith(starts):
        raise RuntimeError(f"a worker stopped (exit code {proc.poll()}) instead of answering; it said {line!r}")
    return line


def describe_tree(tree: Path) -> str:
    def git(*args: str) -> str:
        res = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
        return res.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{tree} @ {head}{' + uncommitted changes' if dirty else ''}"


def drive(args: argparse.Namespace) -> dict[str, Any]:
    trees = {"before": args.before, "after": args.after}
    opts = {k: getattr(args, k) for k in ("history", "sobol_history", "pg_history", "queue", "trials", "lost",
                                     "hb_trials", "pause_trials", "reps", "block")}
    dbs = Databases(use_pg=not args.no_pg)
    plan = [[(g, st) for g, st in entry if st != "postgresql" or dbs.pg is not None] for entry in PLAN]
    plan = [entry for entry in plan if entry and (args.pg_latency or entry != [("latency", "postgresql")])]
    runs: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    try:
        for r in range(args.rounds):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for entry in plan:
                parts = {side: [(g, st, dbs.url(st)) for g, st in entry] for side in order}
                pair = run_pair(trees, order, parts, {**opts, "seed": r}, args.timeout)
                for side, res in pair.items():
                    for part in res.get("parts", []):
                        runs.append({"round": r, "side": side, **part})
                    if "error" in res:  # the process pair itself failed
                        runs.append({"round": r, "side": side, "group": "+".join(g for g, _ in entry),
                                     "storage": "", "error": res["error"]})
                    for run in [p for p in res.get("parts", []) if "error" in p] + ([res] if "error" in res else []):
                        print(f"[round {r + 1}/{args.rounds}] {side} {run.get('group', '')}/{run.get('storage', '')} "
                              f"FAILED: {run['error']}", file=sys.stderr)
                done = ", ".join(f"{p['group']}/{p['storage']} {p['seconds']:.1f} s" for p in res.get("parts", []))
                print(f"[round {r + 1}/{args.rounds}] {res['wall_s']:.1f} s for both sides (the last: {done})",
                      file=sys.stderr, flush=True)
    finally:
        dbs.close()
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "trees": {side: describe_tree(t) for side, t in trees.items()},
        "options": {**opts, "rounds": args.rounds},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_avg_at_start_end": [args.load_start, os.getloadavg()],
        "total_s": time.perf_counter() - t_start,
        "runs": runs,
    }


def summarize(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: medians over rounds per side, their ratio, the per-round ratios."""
    values: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    meta: dict[tuple[str, str], dict[str, Any]] = {}
    for run in result["runs"]:
        for name, m in run.get("metrics", {}).items():
            key = (run["storage"], name)
            values.setdefault(key, {s: {} for s in SIDES})[run["side"]][run["round"]] = m["value"]
            meta[key] = m
    rows = []
    for (storage, name), by_side in values.items():
        before, after = by_side["before"], by_side["after"]
        paired = [after[r] / before[r] for r in before if r in after and before[r] > 0]
        b = statistics.median(before.values()) if before else math.nan
        a = statistics.median(after.values()) if after else math.nan
        rows.append({
            "storage": storage, "metric": name, "unit": meta[(storage, name)]["unit"],
            "better": meta[(storage, name)]["better"], "before": b, "after": a,
            "ratio": a / b if b else math.nan,
            "round_ratio_min": min(paired, default=math.nan), "round_ratio_max": max(paired, default=math.nan),
            "rounds": [len(before), len(after)],
        })
    return rows


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}" if v >= 1 else f"{v:.3f}"


def markdown(result: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"before: {result['trees']['before']}  ",
        f"after: {result['trees']['after']}  ",
        f"{result['options']['rounds']} interleaved rounds, fresh process and database per measurement; "
        f"medians over rounds; total {result['total_s']:.0f} s; load average at start/end "
        f"{result['load_avg_at_start_end'][0][0]:.1f}/{result['load_avg_at_start_end'][1][0]:.1f} "
        f"on {result['cpus']} CPUs; Python {result['python']}.",
        "",
        "| storage | metric | unit | better | before | after | after/before | per-round ratios |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['storage']} | {row['metric']} | {row['unit']} | {row['better']} | {_fmt(row['before'])} "
            f"| {_fmt(row['after'])} | {row['ratio']:.2f} | {row['round_ratio_min']:.2f}-{row['round_ratio_max']:.2f} |"
        )
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"\nFAILED in round {r['round'] + 1}, {r['side']}, {r['group']}/{r['storage']}: "
                         f"{r['error'].strip().splitlines()[-1]}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="src folder of the 'before' checkout")
    ap.add_argument("--after", type=Path, help="src folder of the 'after' checkout")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each: every group, both sides)")
    ap.add_argument("--history", type=int, default=500, help="trials per latency study (history grows to it)")
    ap.add_argument("--sobol-history", type=int, default=300, help="trials of the Sobol latency study")
    ap.add_argument("--queue", type=int, default=50, help="trials enqueued then popped")
    ap.add_argument("--trials", type=int, default=200, help="trials per throughput measurement")
    ap.add_argument("--lost", type=int, default=20, help="trials of the worker that dies (heartbeat group)")
    ap.add_argument("--hb-trials", type=int, default=200, help="ask+tell with heartbeats on")
    ap.add_argument("--pause-trials", type=int, default=60, help="trials of the ASHA(pause=True) run")
    ap.add_argument("--pg-latency", action="store_true", help="also the latency group on PostgreSQL")
    ap.add_argument("--pg-history", type=int, default=200, help="trials per PostgreSQL latency study")
    ap.add_argument("--reps", type=int, default=3,
                    help="repetitions of each throughput and pause measurement per round (sides alternating)")
    ap.add_argument("--block", type=int, default=25, help="calls per turn in the latency loops")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per process pair")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ab-lifecycle.json",
                    help="JSON of every raw value; the table goes next to it (.md)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--opts", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker), json.loads(args.opts))
        return
    for side in SIDES:
        tree = getattr(args, side)
        if tree is None or not (tree / "tunesmith" / "__init__.py").is_file():
            ap.error(f"--{side} must be the src folder of a tunesmith checkout (holding tunesmith/__init__.py), "
                     f"got {tree}")
    for name in ("rounds", "history", "sobol_history", "pg_history", "queue", "trials", "lost", "hb_trials",
                 "pause_trials", "reps", "block"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.lost < 2:
        ap.error(f"--lost must be at least 2 (one re-queued copy is popped by the first ask), got {args.lost}")
    args.load_start = os.getloadavg()
    result = drive(args)
    rows = summarize(result)
    result["summary"] = rows
    table = markdown(result, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
