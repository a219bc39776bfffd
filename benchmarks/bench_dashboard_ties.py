"""The dashboard's list of studies (``cache.listed(r).summary()`` for each study, a fresh
``StudyCache`` each round) where studies tie for their best value, three ways side by side:

- ``heads``: the trials' heads alone (no reports: a tie went to the earliest trial, the rule
  before ties were ranked by the reports; the floor of what listing can cost),
- ``whole study``: a study with a tie read whole (its every trial's parameters and reports),
- ``tied trials``: the heads, and the tied trials alone read whole (``cache.with_tied_whole``).

    nice -n 10 python benchmarks/bench_dashboard_ties.py                      # 40 studies x 2,000 trials
    python benchmarks/bench_dashboard_ties.py --studies 5 --trials 500 --rounds 3   # a quick look

Every study's trials report 30 accuracies on a validation set of 200 samples (multiples of
1/200): most studies tie for their best. Prints each way's median time, of a fresh cache's
first listing and of its next one (a page's poll, past ``cache.MIN_INTERVAL``: ``whole study``
then refreshes what it read), and its ratio to ``heads``, and how many studies tied.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tunesmith as ts
from tunesmith.dashboard import cache
from tunesmith.trial import FrozenTrial, TrialState, tied_best


def build(db: str, studies: int, trials: int, reports: int) -> int:
    """The studies; returns how many tie for their best value."""
    rng = np.random.default_rng(0)
    tied = 0
    for i in range(studies):
        s = ts.Study({"x": ts.Float(0, 1)}, name=f"s{i}", storage=db, sampler="random", direction="maximize")
        records = []
        for _ in range(trials):
            top = rng.uniform(0.80, 0.95)
            curve = np.round(top - 0.3 * np.exp(-np.arange(1, reports + 1) / 5) + rng.normal(0, 0.01, reports), 3)
            curve = np.round(np.clip(curve, 0, 1) * 200) / 200
            records.append(FrozenTrial(number=0, state=TrialState.COMPLETE, params={"x": float(rng.uniform())},
                                       value=float(curve[-1]), intermediate=dict(enumerate(map(float, curve), 1)),
                                       started=1.0, completed=2.0))
        stored = s.storage.insert_trials(s._study_id, records)
        tied += len(tied_best(stored, "maximize")) > 1
    return tied


def listed_whole(self: cache.StudyCache, record: ts.storage.StudyRecord) -> cache.View:
    """``StudyCache.listed`` as it read a study with a tie: the study whole, kept and refreshed as a
    shown study is (its next listing reads only the trials since)."""
    entry = self._entry(record)
    if entry.read_at:
        return self.view(record.name)
    with self.io:
        heads = tuple(self.storage.get_trial_heads(record.study_id))
    if len(tied_best(heads, record.direction)) > 1:
        return self.view(record.name)
    return cache.View(record, heads, entry.version, 0.0, {})


def listing(db: str) -> tuple[float, float]:
    """The first listing of a fresh cache, and the next one past ``cache.MIN_INTERVAL`` (a page's poll)."""
    studies = cache.StudyCache(ts.storage.make_storage(db))
    took = []
    for _ in range(2):
        start = time.perf_counter()
        [studies.listed(r).summary() for r in studies.records()]
        took.append(time.perf_counter() - start)
        time.sleep(cache.MIN_INTERVAL + 0.1)
    return took[0], took[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--reports", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    listed = cache.StudyCache.listed
    ways: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {  # listed, with_tied_whole
        "heads": (listed, lambda storage, record, heads: tuple(heads)),
        "whole study": (listed_whole, cache.with_tied_whole),
        "tied trials": (listed, cache.with_tied_whole),
    }
    times: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'ties.db'}"
        tied = build(db, args.studies, args.trials, args.reports)
        for _ in range(args.rounds):
            for what, (lister, tied_whole) in ways.items():
                cache.StudyCache.listed, cache.with_tied_whole = lister, tied_whole  # type: ignore[method-assign]
                times[what].append(listing(db))
        cache.StudyCache.listed, cache.with_tied_whole = listed, ways["tied trials"][1]
    print(f"{args.studies} studies x {args.trials} trials x {args.reports} reports, SQLite; {tied} tie for their best")
    for i, when in enumerate(("first listing", "next listing (a poll)")):
        floor = statistics.median(t[i] for t in times["heads"])
        for what, took in times.items():
            m = statistics.median(t[i] for t in took)
            print(f"{when}, {what}: median {m * 1e3:.1f} ms, {m / floor:.2f}x heads")


if __name__ == "__main__":
    main()
