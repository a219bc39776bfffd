"""The same seed gives the same trials: inline, with parallel workers, after a resume (guide.md, section 2)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import tunesmith as ts

SPACE = ts.Space({"C": ts.Float(1e-3, 1e2, log=True), "penalty": ts.Categorical(["l1", "l2"]),
                  "tol": ts.Float(1e-5, 1e-2, log=True)})  # a grid of 5 x 2 x 5 = 50 points


def objective(trial: ts.Trial) -> float:
    time.sleep(0.01 * (len(trial.params["penalty"]) + trial.number % 3))  # workers finish out of step
    return float(trial.params["C"])


def configs(study: ts.Study) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in sorted(study.trials, key=lambda t: t.number)]


def run(sampler: str, n_trials: int, **options: Any) -> ts.Study:
    study = ts.Study(SPACE, sampler=sampler, seed=0, **{k: v for k, v in options.items() if k in ("storage", "name")})
    study.optimize(objective, n_trials=n_trials, n_jobs=options.get("n_jobs", 1))
    return study


def test_a_grid_gives_the_same_points_with_worker_processes_and_after_a_resume(tmp_path: Path) -> None:
    # Each worker process drew its pick among the points left from its own stream (seeded by the session
    # and its index): 12 points of 50 taken by two processes were another set than inline, and a study run
    # as 6 + 6 another than 12 in one go. The pick now follows the seed and the number of points taken.
    inline = configs(run("grid", 12))
    assert configs(run("grid", 12)) == inline
    url = f"sqlite:///{tmp_path}/grid.db"
    parallel = run("grid", 12, storage=url, name="parallel", n_jobs=2)
    assert sorted(configs(parallel)) == sorted(inline)
    run("grid", 6, storage=url, name="resumed")
    assert configs(run("grid", 6, storage=url, name="resumed")) == inline
