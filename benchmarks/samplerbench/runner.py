"""Jobs (optimizer x problem x seed), worker processes and the results file.

Results are JSON lines, one per finished run, appended as runs finish (an
interrupted benchmark keeps what it did). ``--reuse`` skips a job whose key is
already in the file: (optimizer, problem, seed, budget, code), where ``code``
is the library version for a peer and a hash of tunesmith's sources for a
tunesmith sampler, so a changed sampler is rerun and an unchanged peer is not.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from . import optimizers
from .problems import Problem


@dataclass(frozen=True)
class Job:
    optimizer: str
    problem: Problem
    seed: int

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        return (self.optimizer, self.problem.name, self.seed, self.problem.budget, code_version(self.optimizer))


@cache
def tunesmith_fingerprint() -> str:
    """Hash of tunesmith's Python sources (what a tunesmith run depends on)."""
    import tunesmith

    root = Path(tunesmith.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return "ts-" + h.hexdigest()[:12]


@cache
def code_version(optimizer: str) -> str:
    if optimizers.is_tunesmith(optimizer):
        return tunesmith_fingerprint()
    from importlib.metadata import version

    lib = {"optuna": "optuna", "random": "optuna", "hyperopt": "hyperopt", "skopt": "scikit-optimize",
           "ngopt": "nevergrad", "smac": "smac", "ax": "ax-platform"}
    dist = lib[optimizer.split("-")[0]]
    return f"{dist}-{version(dist)}"


def run_job(job: Job) -> dict[str, Any]:
    """Run one optimizer on one problem with one seed (inside a worker)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    loss = job.problem.objective()
    rec = optimizers.Recorder(loss)
    t0, c0 = time.perf_counter(), time.process_time()
    error = None
    try:
        p = job.problem
        if p.pending > 1:
            optimizers.parallel_runner(job.optimizer)(p.space, rec, p.budget, job.seed, p.pending)
        else:
            optimizers.runner(job.optimizer)(p.space, rec, p.budget, job.seed)
    except Exception as exc:  # noqa: BLE001 - recorded, reported, never hidden
        error = f"{type(exc).__name__}: {exc}"
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = max(len(rec.values), 1)
    return {
        "optimizer": job.optimizer, "problem": job.problem.name, "family": job.problem.family,
        "pending": job.problem.pending,
        "seed": job.seed, "budget": job.problem.budget, "code": code_version(job.optimizer),
        "values": rec.values, "wall_s": wall, "cpu_s": cpu, "eval_s": rec.eval_seconds,
        "overhead_per_suggestion_s": (wall - rec.eval_seconds) / n, "error": error,
        "command": os.environ.get("TS_BENCH_COMMAND", ""), "host": socket.gethostname(), "python": platform.python_version(), "finished": time.time(),
    }


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def record_key(r: dict[str, Any]) -> tuple[str, str, int, int, str]:
    return (r["optimizer"], r["problem"], int(r["seed"]), int(r["budget"]), r["code"])


def pending(jobs: Iterable[Job], path: Path, reuse: bool) -> list[Job]:
    if not reuse:
        return list(jobs)
    done = {record_key(r) for r in load(path) if not r.get("error")}
    return [j for j in jobs if j.key not in done]


def _init_worker(src: str | None) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    if src and src not in sys.path:
        sys.path.insert(0, src)


def execute(jobs: list[Job], path: Path, processes: int, src: str | None) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` on ``processes`` workers, appending each result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if processes <= 1:
        results: Iterable[dict[str, Any]] = map(run_job, jobs)
        yield from _append(results, path)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes, initializer=_init_worker, initargs=(src,), maxtasksperchild=20) as pool:
        yield from _append(pool.imap_unordered(run_job, jobs, chunksize=1), path)


def _append(results: Iterable[dict[str, Any]], path: Path) -> Iterator[dict[str, Any]]:
    for r in results:
        with path.open("a") as f:
            f.write(json.dumps(r) + "\n")
        yield r
