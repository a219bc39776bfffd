"""The live overfitting flag (each record's ``overfitting``) against the run's summary (``overfit_at``).

Live rules replayed on the same losses (benchmarks/LOG.md, sig3 pass):

- momentary: the signal's test at that validation alone (:meth:`History.overfits`, since sig4 at the bar
  of 2 x the noise that the trainer's flag needs at two validations in a row);
- sticky: the summary's rule on the run so far (:meth:`History.live_flag`): on from the first firing
  after the best validation so far until a new best, the trainer's flag (since sig4 a firing needs
  two rises in a row, or one with a training loss still falling: benchmarks/LOG.md);
- confirm3: sticky, but on only once 3 more validations passed without a new best.

Plateaus as in bench_overfit_signal.py (training loss 0.30 + N(0, s/4), validation loss 0.35 + N(0, s)):
per rule the share of runs whose flag comes on at all, the mean share of validations flagged and the
share of runs whose last record's flag disagrees with the summary. Recorded curves
(``bench_overfit_candidates.py --record digits|breast_cancer --curves FILE``): per seed the best
validation, the summary's ``overfit_at`` and the first flag after the best; the seeds detected, the
median delay (first flag after the best - best; never = 30 - best) and the seeds flagged before their best.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_live.py --runs 300 --seed 1 --curves digits.json cancer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import numpy as np

from tunesmith.train import history as hist

Live = Callable[[list[bool], list[bool]], list[bool]]


def replay(train: list[float], val: list[float]) -> tuple[hist.History, list[bool], list[bool]]:
    """The trainer's records of a run with these losses, with each validation's firing and new best."""
    h = hist.History()
    fired, improved = [], []
    for i, (t, v) in enumerate(zip(train, val, strict=True)):
        fires, better = h.overfits(t, v), v < h.best_loss
        h.records.append(hist.EvalRecord(index=i, epoch=i + 1, step=i + 1, train_loss=t, val_loss=v, metrics={},
                                         lr=0.01, samples_per_s=1.0, seconds=1.0, improved=better,
                                         overfitting=h.live_flag(t, v, better)))
        if better:
            h.best_loss, h.best_index = v, i
        fired.append(fires)
        improved.append(better)
    return h, fired, improved


def confirmed(wait: int) -> Live:
    def live(fired: list[bool], improved: list[bool]) -> list[bool]:
        out, since = [], None
        for i, (f, better) in enumerate(zip(fired, improved, strict=True)):
            since = None if better else (i if f and since is None else since)
            out.append(since is not None and i - since >= wait)
        return out
    return live


def rules(h: hist.History, fired: list[bool], improved: list[bool]) -> dict[str, list[bool]]:
    return {"momentary": fired, "sticky": [r.overfitting for r in h.records], "confirm3": confirmed(3)(fired, improved)}


def plateaus(runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (20, 50):
        for s in (0.005, 0.02):
            on: dict[str, list[float]] = {}
            summary = 0
            for _ in range(runs):
                h, fired, improved = replay(list(0.30 + rng.normal(0, s / 4, n)), list(0.35 + rng.normal(0, s, n)))
                summary += h.overfit_at is not None
                for name, flags in rules(h, fired, improved).items():
                    on.setdefault(name, []).extend([any(flags), sum(flags) / n, flags[-1] != (h.overfit_at is not None)])
            cells = ", ".join(f"{name} {np.mean(v[0::3]):.3f} / {np.mean(v[1::3]):.3f} / {np.mean(v[2::3]):.3f}"
                              for name, v in on.items())
            print(f"plateau of {n}, s={s}: summary {summary / runs:.3f}; on / flagged / disagrees: {cells}", flush=True)


def curves(path: str) -> None:
    with open(path) as f:
        nets = json.load(f)
    for kind in ("mlp", "linear"):
        table: dict[str, list[tuple[int, int | None, int | None]]] = {}
        early: dict[str, int] = {}
        for net in nets:
            h, fired, improved = replay(*net[kind])
            best = h.best_index if h.best_index is not None else 0
            for name, flags in rules(h, fired, improved).items():
                after = next((i for i, x in enumerate(flags) if x and i > best), None)
                table.setdefault(name, []).append((best, h.overfit_at, after))
                early[name] = early.get(name, 0) + any(flags[:best])
        for name, rows in table.items():
            delay = statistics.median((30 if a is None else a) - b for b, _, a in rows)
            found = sum(a is not None for _, _, a in rows)
            print(f"{path} {kind} {name}: (best, overfit_at, first flag after the best) {rows}; detected "
                  f"{found}/{len(rows)}, median delay {delay}, flagged before the best {early[name]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="plateau runs per setting")
    parser.add_argument("--seed", type=int, default=1, help="the plateaus' random seed")
    parser.add_argument("--curves", nargs="*", default=[], help="curves recorded by bench_overfit_candidates.py")
    args = parser.parse_args()
    plateaus(args.runs, args.seed)
    for path in args.curves:
        curves(path)


if __name__ == "__main__":
    main()
