"""The same seed gives the same trials: inline, with parallel workers, after a resume (guide.md, section 2)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

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
    study.optimize(objective, n_trials=n_trials, n_jobs=options.get("n_jobs", 1), executor=options.get("executor"))
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


def test_a_worker_that_lost_the_grid_s_pick_takes_the_next_point_in_the_same_write(
        shared_storage_url: str, sql_writes: list[str]) -> None:
    # Workers asking at once all picked the same point; each loser wrote a failed claim and asked again,
    # where it met the others again: two failed writes a trial with 4 workers on PostgreSQL. The pick now
    # comes with the points that follow it, and the storage takes the first free one in one write.
    first = run("grid", 1)
    inline = configs(run("grid", 4))
    a = ts.Study(SPACE, sampler="grid", seed=0, storage=shared_storage_url, name="race")
    b = ts.load_study("race", shared_storage_url)
    picked = b.sampler.suggest(b.space, [], b.direction)  # b read the history before a claimed its pick
    assert picked is not None and [tuple(sorted(c.items())) for c in (picked.params, *picked.then)] == inline
    a.ask()
    assert configs(a) == configs(first)
    del sql_writes[:]
    took = b.storage.create_first_free(b._study_id, [(c, b.space.key(c)) for c in (picked.params, *picked.then)])
    assert took is not None and tuple(sorted(took.params.items())) == inline[1] and len(sql_writes) == 1
    for _ in range(2):
        b.ask()
    assert configs(b) == inline[:4]


def test_a_quasi_random_search_gives_the_same_set_with_workers_of_any_kind_and_after_a_resume(
        shared_storage_url: str) -> None:
    # guide.md, section 2: Sobol's point follows the trial's number and is claimed, so its set repeats with
    # threads or processes, in SQLite or PostgreSQL, and run as 6 + 6 (random search's does not: documented there).
    inline = configs(run("sobol", 12))
    assert configs(run("sobol", 12)) == inline
    assert sorted(configs(run("sobol", 12, n_jobs=2, executor="thread"))) == sorted(inline)  # in memory
    for executor in ("thread", "process"):
        parallel = run("sobol", 12, storage=shared_storage_url, name=executor, n_jobs=2, executor=executor)
        assert sorted(configs(parallel)) == sorted(inline), executor
    run("sobol", 6, storage=shared_storage_url, name="resumed")
    assert configs(run("sobol", 6, storage=shared_storage_url, name="resumed")) == inline
    assert configs(run("sobol", 12, storage=shared_storage_url, name="resumed")) == configs(run("sobol", 24))


LOG_INTS = ts.Space({"n": ts.Int(1, 64, log=True)})  # Sobol's points fall mostly on small n, tried early


def by_n(trial: ts.Trial) -> float:
    time.sleep(0.002 * (trial.number % 3))  # workers finish out of step
    return float(trial.params["n"])


def test_a_quasi_random_search_past_64_tried_points_gives_the_same_set_with_worker_processes(
        shared_storage_url: str) -> None:
    # Where 64 Sobol points in a row fall on configurations tried (here from about trial 20 on), Sobol drew at
    # random from each worker process's own stream (seeded by its session and index): two processes ran another
    # set than inline, and repeated configurations while untried ones were left (45 distinct of 60). The draws now
    # follow the seed and the number of trials, the first untried one is claimed, and a repeat (trials 58, and 64
    # on: all 64 values tried) is claimed as that configuration's k-th repeat, so two workers never repeat at once.
    def run(n_jobs: int, name: str) -> list[tuple[Any, ...]]:
        study = ts.Study(LOG_INTS, sampler="sobol", seed=0, storage=shared_storage_url, name=name)
        study.optimize(by_n, n_trials=72, n_jobs=n_jobs, executor="process" if n_jobs > 1 else None)
        return configs(study)

    inline = run(1, "inline")
    assert sorted(run(2, "two")) == sorted(inline)
    assert sorted(run(3, "three")) == sorted(inline)


def test_a_grid_takes_the_same_points_with_one_and_with_four_worker_processes(shared_storage_url: str) -> None:
    inline = configs(run("grid", 16))
    one = run("grid", 16, storage=shared_storage_url, name="one", n_jobs=1)
    assert configs(one) == inline
    four = run("grid", 16, storage=shared_storage_url, name="four", n_jobs=4)
    assert sorted(configs(four)) == sorted(inline)


def test_a_grid_s_write_refuses_a_next_number_changed_outside_tunesmith(shared_storage_url: str) -> None:
    # A grid's write (the pick and its next points under one hold of the lock) checks the next number too.
    study = ts.Study(SPACE, sampler="grid", seed=0, storage=shared_storage_url, name="numbers")
    study.ask()
    engine = sa.create_engine(shared_storage_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ts_trials SET number = :n"), {"n": -5})  # a number tunesmith never writes
    with pytest.raises(ts.StorageError, match="next trial number .* would be -4"):
        study.ask()
    with engine.connect() as conn:  # nothing written
        assert conn.execute(sa.text("SELECT count(*) FROM ts_trials")).scalar() == 1
    engine.dispose()
