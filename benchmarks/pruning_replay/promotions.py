"""What pausing ASHA's promotions do in a replayed study (pruning-replay.md, sixth selection).

Per study, means over the studies: trials resumed after a pause, those of them that completed,
whether the trial the study named best was one, trials still paused at the end, complete trials.

    PYTHONPATH=src python benchmarks/pruning_replay/promotions.py --seeds 0-9 \
        --method ts-asha-eta4-min1-last-qfirst-pause-random
"""

from __future__ import annotations

import argparse
import collections
import logging
from typing import Any

import replay  # type: ignore[import-not-found]

import tunesmith as ts
from tunesmith.trial import TrialState


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--method", default="ts-asha-eta4-min1-last-qfirst-pause-random")
    args = ap.parse_args(argv)
    ts.set_verbosity(logging.ERROR)
    tasks = replay.load_tasks()
    opts = replay.resolve([args.method])[args.method]
    studies: list[Any] = []
    optimize = ts.Study.optimize

    def keep(self: Any, *a: Any, **k: Any) -> Any:  # the study run_tunesmith builds
        studies.append(self)
        return optimize(self, *a, **k)

    ts.Study.optimize = keep  # type: ignore[method-assign]
    total: collections.Counter[str] = collections.Counter()
    for seed in replay.seed_range(args.seeds):
        for task in tasks.values():
            _, best = replay.run_tunesmith(task, replay.Stream.of(task, seed), seed, opts)
            trials = studies[-1].trials
            resumed = [t for t in trials if (t.system.n_resumes or 0) > 0]
            total["studies"] += 1
            total["resumed"] += len(resumed)
            total["resumed and completed"] += sum(t.state is TrialState.COMPLETE for t in resumed)
            total["named best was resumed"] += any(t.number == best for t in resumed)
            total["paused at the end"] += sum(t.state is TrialState.PAUSED for t in trials)
            total["complete"] += sum(t.state is TrialState.COMPLETE for t in trials)
    n = total.pop("studies")
    print(f"{args.method}, {n} studies (seeds {args.seeds}), per study:")
    for key, value in total.items():
        print(f"  {key}: {value / n:.2f}")


if __name__ == "__main__":
    main()
