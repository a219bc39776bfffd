"""How often the trainer's overfitting signal fires on noise, and where it fires on real overfitting.

Each run's losses are replayed through the trainer's records (:meth:`History.live_flag` at each
validation, the best tracked as the trainer does), so the benchmark reads what a run knows: the live
flag (each record's ``overfitting``) at every validation, and the run's summary (``overfit_at``).

Plateaus: training loss 0.30 + N(0, s/4), validation loss 0.35 + N(0, s) for 20 and 50 validations
(no trend in either). Per cell: the share of runs whose summary reports overfitting, the share whose
live flag came on at any validation (each a false alarm, also one that a new best turned off again),
the share whose flag came on and went off again, and the mean share of validations flagged.
Real overfitting: a 64-512-512-10 MLP on 150 digits (validation on 500, Adam 3e-3, batch 32,
30 epochs), trained per seed (``--net-seeds``), or curves recorded by ``bench_overfit_candidates.py
--record`` (``--curves``); per seed (best validation, ``overfit_at``, first live flag after the best),
per family the seeds detected, the median delay (first flag after the best - best; never = 30 - best)
and the seeds flagged before their best. A linear model on the same data should never be flagged.
``--noise 0`` replays the runs without the noise conditions (the smoothed gap's rises alone fire). ``--cost N ...``: instead, the milliseconds
of one report (:meth:`History.live_flag` and the record appended, the flag off as on most plateaus)
after N validations, median of 5 rounds of 200 reports.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_signal.py --runs 300 --seed 1
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_signal.py --cost 200 2000 20000
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_signal.py --seed 4 --curves cancer.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
from bench_overfit_candidates import record

from tunesmith.train import history as hist


def replay(train: list[float], val: list[float]) -> hist.History:
    """The trainer's records of a run with these losses: each record's flag is the live flag."""
    h = hist.History()
    for t, v in zip(train, val, strict=True):
        add(h, t, v)
    return h


def add(h: hist.History, t: float, v: float, flag: bool | None = None) -> None:
    """Append the record the trainer makes for these losses, the best tracked as it does; its flag
    the live flag (or ``flag``)."""
    i, improved = len(h.records), v < h.best_loss
    on = h.live_flag(t, v, improved) if flag is None else flag
    h.records.append(hist.EvalRecord(index=i, epoch=i + 1, step=i + 1, train_loss=t, val_loss=v, metrics={},
                                     lr=0.01, samples_per_s=1.0, seconds=1.0, improved=improved, overfitting=on))
    if improved:
        h.best_loss, h.best_index = v, i


def cost(lengths: list[int], reports: int = 200, rounds: int = 5) -> None:
    """Milliseconds of one report (the live flag, then the record) after n validations of a plateau,
    every flag kept off (the test runs in full at each report)."""
    rng = np.random.default_rng(0)
    for n in lengths:
        h = hist.History()
        for t, v in zip(0.30 + rng.normal(0, 0.005, n), 0.35 + rng.normal(0, 0.02, n), strict=True):
            add(h, float(t), float(v), flag=False)
        times = []
        for _ in range(rounds):
            losses = zip(0.30 + rng.normal(0, 0.005, reports), 0.35 + rng.normal(0, 0.02, reports), strict=True)
            t0 = time.perf_counter()
            for t, v in losses:
                h.live_flag(float(t), float(v), v < h.best_loss)
                add(h, float(t), float(v), flag=False)
            times.append((time.perf_counter() - t0) / reports * 1e3)
        print(f"one report after {n} validations: {statistics.median(times):.3f} ms "
              f"(rounds {' '.join(f'{t:.3f}' for t in times)})", flush=True)


def plateaus(runs: int, seed: int, levels: list[float]) -> None:
    rng = np.random.default_rng(seed)
    for n in (20, 50):
        for s in levels:
            summary = came_on = went_off = 0
            flagged = 0.0
            for _ in range(runs):
                h = replay(list(0.30 + rng.normal(0, s / 4, n)), list(0.35 + rng.normal(0, s, n)))
                flags = [r.overfitting for r in h.records]
                summary += h.overfit_at is not None
                came_on += any(flags)
                went_off += any(a and not b for a, b in zip(flags, flags[1:], strict=False))
                flagged += sum(flags) / n
            print(f"plateau of {n} validations, s={s}, seed {seed}: summary {summary / runs:.3f}, live flag came on "
                  f"{came_on / runs:.3f} (went off again {went_off / runs:.3f}), validations flagged "
                  f"{flagged / runs:.3f}", flush=True)


def networks(name: str, nets: list[dict[str, list[list[float]]]]) -> None:
    for kind in ("mlp", "linear"):
        rows, early = [], 0
        for net in nets:
            h = replay(*net[kind])
            best = h.best_index if h.best_index is not None else 0
            flags = [r.overfitting for r in h.records]
            rows.append((best, h.overfit_at, next((i for i, f in enumerate(flags) if f and i > best), None)))
            early += any(flags[:best])
        delay = statistics.median((len(nets[0][kind][1]) if a is None else a) - b for b, _, a in rows)
        print(f"{name} {kind}: (best, overfit_at, first flag after the best) {rows}; "
              f"detected {sum(a is not None for *_, a in rows)}/{len(rows)}, median delay {delay}, "
              f"flagged before the best {early}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="plateau runs per setting")
    parser.add_argument("--seed", type=int, default=1, help="the plateaus' random seed")
    parser.add_argument("--s", type=float, nargs="+", default=[0.005, 0.02], help="the validation noise levels")
    parser.add_argument("--net-seeds", type=int, nargs=2, default=[0, 8], metavar=("FROM", "TO"),
                        help="the digits MLP's torch seeds (FROM up to TO, not included; 0 0: none)")
    parser.add_argument("--curves", nargs="*", default=[], help="curves recorded by bench_overfit_candidates.py")
    parser.add_argument("--noise", type=float, default=hist.OVERFIT_NOISE,
                        help="OVERFIT_NOISE (0: without the noise conditions, OVERFIT_NOISE_ONCE's and OVERFIT_LEARNING's too)")
    parser.add_argument("--cost", type=int, nargs="+", help="time one report after these numbers of validations instead")
    args = parser.parse_args()
    if args.cost:
        cost(args.cost)
        return
    hist.OVERFIT_NOISE = args.noise
    if args.noise == 0:
        hist.OVERFIT_NOISE_ONCE, hist.OVERFIT_LEARNING = 0.0, -math.inf
    plateaus(args.runs, args.seed, args.s)
    if args.net_seeds[1] > args.net_seeds[0]:
        seeds = range(*args.net_seeds)
        networks(f"digits seeds {seeds.start}-{seeds.stop - 1}", record("digits", None, seeds))
    for path in args.curves:
        with open(path) as f:
            nets = json.load(f)
        networks(path, nets)


if __name__ == "__main__":
    main()
