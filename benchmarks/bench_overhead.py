"""Ask+tell overhead per trial: tunesmith vs Optuna, side by side in one run.

The objective is trivial (``x ** 2``), so every millisecond measured is the
framework's own cost: sampling four parameters, recording the trial, and
recording its result. The random sampler is used on both sides.

Configurations (each repeated ``--repeats`` times, interleaved, medians reported):

* one process, ``--trials`` trials: tunesmith in memory and on SQLite (as it ships: WAL,
  ``synchronous=NORMAL``, no wait for the disk at a commit; and with ``synchronous=FULL``, which
  waits for it as Optuna's storages do); Optuna in memory, RDB (SQLite) and JournalFile;
* ``--procs`` processes sharing one study (``--trials`` trials in all):
  tunesmith on SQLite; Optuna RDB (SQLite) and JournalFile (throughput, trials/s);
* in memory at ``--long`` trials, to show the per-trial cost does not grow.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_overhead.py

Optuna comes from the ``bench`` extra (``pip install 'tunesmith[bench]'``);
it is never a dependency of tunesmith itself.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

SPACE_DOC = "x: Float(-5, 5); lr: Float(1e-5, 1e-1, log); n: Int(1, 64); act: Categorical(3)"


# -- tunesmith ---------------------------------------------------------------------
def _ts_space() -> Any:
    import tunesmith as ts

    return ts.Space(
        {
            "x": ts.Float(-5.0, 5.0),
            "lr": ts.Float(1e-5, 1e-1, log=True),
            "n": ts.Int(1, 64),
            "act": ts.Categorical(["relu", "tanh", "gelu"]),
        }
    )


def ts_open(url: str | None, seed: int) -> Callable[[int], None]:
    """A tunesmith study on ``url`` (None: memory) and a loop of ``n`` ask+tell."""
    import tunesmith as ts

    study = ts.Study(_ts_space(), sampler="random", seed=seed, storage=url, name="bench")

    def loop(n: int) -> None:
        for _ in range(n):
            trial = study.ask()
            study.tell(trial, trial.params["x"] ** 2)

    return loop


# -- Optuna ---------------------------------------------------------------------------
def _optuna_storage(kind: str, folder: str) -> Any:
    import optuna

    if kind == "memory":
        return None
    if kind == "rdb":
        return f"sqlite:///{folder}/optuna.db"
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(f"{folder}/optuna.log"))
    raise ValueError(kind)


def optuna_open(kind: str, folder: str, seed: int) -> Callable[[int], None]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        storage=_optuna_storage(kind, folder),
        study_name="bench",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        load_if_exists=True,
    )
    return optuna_loop(study)


def optuna_objective(trial: Any) -> float:
    """The trivial objective on an Optuna trial: the space of :func:`_ts_space` suggested, ``x ** 2``."""
    x = trial.suggest_float("x", -5.0, 5.0)
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_int("n", 1, 64)
    trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
    return float(x**2)


def optuna_loop(study: Any) -> Callable[[int], None]:
    """A loop of ``n`` ask+tell on the Optuna ``study``, the space of :func:`_ts_space`."""

    def loop(n: int) -> None:
        for _ in range(n):
            trial = study.ask()
            study.tell(trial, optuna_objective(trial))

    return loop


def opener(lib: str, kind: str, folder: str, seed: int) -> Callable[[int], None]:
    if lib == "tunesmith":
        # sqlite-full: each commit waits for the disk (synchronous=FULL), as Optuna's storages do
        sync = "?synchronous=full" if kind == "sqlite-full" else ""
        return ts_open(None if kind == "memory" else f"sqlite:///{folder}/ts.db{sync}", seed)
    return optuna_open(kind, folder, seed)


# -- measurement ----------------------------------------------------------------------
def time_single(lib: str, kind: str, n: int) -> float:
    """Seconds per trial of ``n`` ask+tell in this process, on a fresh study."""
    folder = tempfile.mkdtemp(prefix="bench-")
    try:
        loop = opener(lib, kind, folder, seed=0)
        t0 = time.perf_counter()
        loop(n)
        return (time.perf_counter() - t0) / n
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _worker(lib: str, kind: str, folder: str, seed: int, n: int, barrier: Any, out: Any) -> None:
    loop = opener(lib, kind, folder, seed)
    barrier.wait()
    t0 = time.time()
    loop(n)
    out.put((t0, time.time()))


def time_parallel(lib: str, kind: str, n: int, procs: int) -> float:
    """Trials per second of ``procs`` processes sharing one fresh study (``n`` trials in all)."""
    folder = tempfile.mkdtemp(prefix="bench-")
    ctx = mp.get_context("spawn")
    try:
        opener(lib, kind, folder, seed=0)  # create the study (and schema) before the race
        barrier, out = ctx.Barrier(procs), ctx.Queue()
        share = [n // procs + (i < n % procs) for i in range(procs)]
        ps = [
            ctx.Process(target=_worker, args=(lib, kind, folder, i + 1, share[i], barrier, out))
            for i in range(procs)
        ]
        for p in ps:
            p.start()
        spans = _collect(out, ps)
        for p in ps:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"{lib}/{kind} worker exited with {p.exitcode}")
        return n / (max(e for _, e in spans) - min(s for s, _ in spans))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _collect(out: Any, ps: list[Any]) -> list[tuple[float, float]]:
    """The workers' (start, end) times; raise if a worker dies without reporting."""
    import queue

    spans: list[tuple[float, float]] = []
    while len(spans) < len(ps):
        try:
            spans.append(out.get(timeout=1.0))
        except queue.Empty:
            dead = [p.exitcode for p in ps if p.exitcode not in (None, 0)]
            if dead:
                for p in ps:
                    p.terminate()
                raise RuntimeError(f"a benchmark worker died (exit code {dead[0]})") from None
    return spans


def time_long(n: int) -> tuple[float, float]:
    """tunesmith in memory: seconds per trial over the first and the last 1,000 of ``n``."""
    loop = ts_open(None, seed=0)
    t0 = time.perf_counter()
    loop(1000)
    first = (time.perf_counter() - t0) / 1000
    loop(n - 2000)
    t0 = time.perf_counter()
    loop(1000)
    return first, (time.perf_counter() - t0) / 1000


# -- report ---------------------------------------------------------------------------
SINGLE = [
    ("tunesmith", "memory"),
    ("optuna", "memory"),
    ("tunesmith", "sqlite"),
    ("tunesmith", "sqlite-full"),
    ("optuna", "rdb"),
    ("optuna", "journal"),
]
PARALLEL = [("tunesmith", "sqlite"), ("optuna", "rdb"), ("optuna", "journal")]
LABEL = {
    ("tunesmith", "memory"): "tunesmith in memory",
    ("tunesmith", "sqlite"): "tunesmith SQLite",
    ("tunesmith", "sqlite-full"): "tunesmith SQLite, synchronous=FULL",
    ("optuna", "memory"): "Optuna in memory",
    ("optuna", "rdb"): "Optuna RDB (SQLite)",
    ("optuna", "journal"): "Optuna JournalFile",
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=1000, help="trials per configuration")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions of each configuration")
    ap.add_argument("--procs", type=int, default=4, help="processes sharing one study")
    ap.add_argument("--long", type=int, default=10_000, help="in-memory run length (0: skip)")
    ap.add_argument(
        "--optuna-rdb-trials", type=int, default=None,
        help="fewer trials for Optuna's slow RDB storage (default: --trials)",
    )
    ap.add_argument("--only", choices=["single", "parallel", "long"], action="append")
    args = ap.parse_args(argv)
    parts = set(args.only or ["single", "parallel", "long"])
    rdb_n = args.optuna_rdb_trials or args.trials

    def n_for(cfg: tuple[str, str]) -> int:
        return rdb_n if cfg == ("optuna", "rdb") else args.trials

    single: dict[tuple[str, str], list[float]] = {c: [] for c in SINGLE}
    par: dict[tuple[str, str], list[float]] = {c: [] for c in PARALLEL}
    longs: list[tuple[float, float]] = []
    for r in range(args.repeats):  # interleaved, so machine noise hits every configuration
        if "single" in parts:
            for cfg in SINGLE:
                single[cfg].append(time_single(*cfg, n_for(cfg)))
                _progress(f"[{r + 1}] single {LABEL[cfg]}: {single[cfg][-1] * 1e3:.3f} ms/trial")
        if "parallel" in parts:
            for cfg in PARALLEL:
                try:
                    par[cfg].append(time_parallel(*cfg, n_for(cfg), args.procs))
                except RuntimeError as exc:  # Optuna RDB on SQLite can die of "database is locked"
                    par[cfg].append(float("nan"))
                    _progress(f"[{r + 1}] {args.procs} procs {LABEL[cfg]} FAILED: {exc}")
                _progress(f"[{r + 1}] {args.procs} procs {LABEL[cfg]}: {par[cfg][-1]:.1f} trials/s")
        if "long" in parts and args.long >= 2000:
            longs.append(time_long(args.long))
            _progress(f"[{r + 1}] long: {longs[-1][0] * 1e3:.3f} / {longs[-1][1] * 1e3:.3f} ms")
    print(report(args, single, par, longs, rdb_n))


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def report(
    args: argparse.Namespace,
    single: dict[tuple[str, str], list[float]],
    par: dict[tuple[str, str], list[float]],
    longs: list[tuple[float, float]],
    rdb_n: int,
) -> str:
    import optuna
    import sqlalchemy

    med = statistics.median
    lines = [
        f"Python {sys.version.split()[0]}, SQLite {__import__('sqlite3').sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, Optuna {optuna.__version__}, {os.cpu_count()} cores; "
        f"space: {SPACE_DOC}; random sampler; objective x**2; median of {args.repeats} runs.",
        "",
    ]
    if all(single.values()):
        base = med(single[("tunesmith", "sqlite")])
        full = med(single[("tunesmith", "sqlite-full")])
        lines += [
            f"One process, {args.trials} trials (Optuna RDB: {rdb_n}):",
            "",
            "| storage | ms per trial (median) | runs | vs tunesmith SQLite |",
            "|---|---:|---|---:|",
        ]
        for cfg, xs in single.items():
            runs = ", ".join(f"{x * 1e3:.3g}" for x in xs)
            lines.append(f"| {LABEL[cfg]} | {med(xs) * 1e3:.3f} | {runs} | {med(xs) / base:.2f}x |")
        lines += [
            "",
            f"tunesmith SQLite is **{med(single[('optuna', 'rdb')]) / base:.1f}x** faster than "
            f"Optuna RDB (target >= 10x); tunesmith in memory: "
            f"{med(single[('tunesmith', 'memory')]) * 1e3:.3f} ms per trial (target < 0.5 ms). "
            f"Both waiting for the disk at each commit (tunesmith with synchronous=FULL): Optuna RDB "
            f"{med(single[('optuna', 'rdb')]) / full:.1f}x, Optuna JournalFile "
            f"{med(single[('optuna', 'journal')]) / full:.1f}x tunesmith's time.",
            "",
        ]
    if all(par.values()):
        ts_rate = med(x for x in par[("tunesmith", "sqlite")] if x == x)
        lines += [
            f"{args.procs} processes sharing one study, {args.trials} trials in all "
            f"(Optuna RDB: {rdb_n}):",
            "",
            "| storage | trials/s (median) | runs | tunesmith SQLite / this |",
            "|---|---:|---|---:|",
        ]
        for cfg, xs in par.items():
            ok = [x for x in xs if x == x] or [float("nan")]  # failed runs (NaN) are listed, not counted
            runs = ", ".join("failed" if x != x else f"{x:.0f}" for x in xs)
            lines.append(f"| {LABEL[cfg]} | {med(ok):.1f} | {runs} | {ts_rate / med(ok):.1f}x |")
        lines += [
            "",
            f"tunesmith SQLite with {args.procs} processes is **"
            f"{ts_rate / med(x for x in par[('optuna', 'journal')] if x == x):.1f}x** Optuna JournalFile "
            "(target >= 2x).",
            "",
        ]
    if longs:
        first = med(f for f, _ in longs) * 1e3
        last = med(x for _, x in longs) * 1e3
        lines += [
            f"tunesmith in memory, per trial over trials 1-1,000 vs {args.long - 999:,}-"
            f"{args.long:,} of one study: {first:.3f} ms vs {last:.3f} ms (ratio {last / first:.2f}).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
