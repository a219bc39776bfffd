"""Random, Sobol and grid samplers: pure designers tested on plain trial lists.

Statistical checks use fixed seeds, so each run is deterministic; the stated
false-failure odds are those of the check over a random seed (what a change
of seed, or of the generator's stream, risks).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.stats import qmc

import tunesmith as ts
from tunesmith.samplers import AutoSampler, make_sampler
from tunesmith.samplers.auto import pick
from tunesmith.trial import Direction, FrozenTrial, TrialState

MIN = Direction.MINIMIZE


def draw(sampler: ts.Sampler, space: ts.Space, n: int) -> list[dict]:
    """n suggestions, each added to the history as a running trial."""
    trials: list[FrozenTrial] = []
    for i in range(n):
        s = sampler.suggest(space, trials, MIN)
        assert s is not None
        trials.append(FrozenTrial(number=i, state=TrialState.RUNNING, params=s.params))
    return [dict(t.params) for t in trials]


# -- random ---------------------------------------------------------------------------------------


def test_random_log_scale_is_uniform_in_log() -> None:
    space = ts.Space({"C": ts.Float(1e-3, 1e3, log=True)})
    xs = np.array([c["C"] for c in draw(ts.RandomSampler(seed=1), space, 4000)])
    assert xs.min() >= 1e-3 and xs.max() <= 1e3
    # on a log scale, each decade holds 1/6 of the draws. Kolmogorov-Smirnov on
    # log10(x) against U(-3, 3): false failure 1e-4.
    assert stats.kstest(np.log10(xs), stats.uniform(-3, 6).cdf).pvalue > 1e-4
    # a linear sampler would put ~99.9% above 1; log puts half there
    assert abs(np.mean(xs > 1.0) - 0.5) < 0.05  # 6.3 sigma: false failure < 1e-9


def test_random_steps_and_ints_hit_every_level_evenly() -> None:
    space = ts.Space({"x": ts.Float(0.0, 1.0, step=0.25), "n": ts.Int(10, 30, step=5)})
    configs = draw(ts.RandomSampler(seed=2), space, 3000)
    xs = [c["x"] for c in configs]
    ns = [c["n"] for c in configs]
    assert set(xs) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(ns) == {10, 15, 20, 25, 30} and all(isinstance(n, int) for n in ns)
    # chi-squared goodness of fit to uniform levels: false failure 1e-4 each
    for values in (xs, ns):
        counts = np.unique(values, return_counts=True)[1]
        assert stats.chisquare(counts).pvalue > 1e-4


def test_random_log_int_bins_equal_in_log() -> None:
    space = ts.Space({"n": ts.Int(1, 100, log=True)})
    ns = np.array([c["n"] for c in draw(ts.RandomSampler(seed=3), space, 4000)])
    # P(n <= 10) = (ln 10.5 - ln 0.5) / (ln 100.5 - ln 0.5) = 0.574
    p = (math.log(10.5) - math.log(0.5)) / (math.log(100.5) - math.log(0.5))
    assert stats.binomtest(int(np.sum(ns <= 10)), len(ns), p).pvalue > 1e-4  # false failure 1e-4


def test_random_honours_conditions(svm_space: ts.Space) -> None:
    configs = draw(ts.RandomSampler(seed=4), svm_space, 3000)
    for c in configs:
        assert svm_space.validate(c) == c
        assert ("gamma" in c) == (c["kernel"] in ("poly", "rbf"))
        assert ("degree" in c) == (c["kernel"] == "poly")
    counts = [sum(c["kernel"] == k for c in configs) for k in ("linear", "poly", "rbf")]
    assert stats.chisquare(counts).pvalue > 1e-4  # false failure 1e-4
    degrees = [c["degree"] for c in configs if "degree" in c]
    assert stats.chisquare(np.unique(degrees, return_counts=True)[1]).pvalue > 1e-4


def test_random_is_seeded(svm_space: ts.Space) -> None:
    a = draw(ts.RandomSampler(seed=7), svm_space, 20)
    assert draw(ts.RandomSampler(seed=7), svm_space, 20) == a
    assert draw(ts.RandomSampler(seed=8), svm_space, 20) != a
    s = ts.RandomSampler(seed=7)
    s.reseed(0, 1)  # another worker's stream
    assert draw(s, svm_space, 20) != a


def test_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        ts.RandomSampler(seed=-1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None, got True"):
        ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=True)  # was seed 1, as TrainConfig refuses it
    with pytest.raises(ValueError, match="unknown sampler 'grdi'"):
        make_sampler("grdi")


# -- sobol ------------------------------------------------------------------------------------------


def test_sobol_covers_more_evenly_than_random() -> None:
    space = ts.Space({"a": ts.Float(0, 1), "b": ts.Float(1e-4, 1.0, log=True), "c": ts.Float(-5, 5)})
    n = 128

    def disc(sampler: ts.Sampler) -> float:
        return float(qmc.discrepancy(space.encode_many(draw(sampler, space, n))))

    sobol = [disc(ts.SobolSampler(seed=s)) for s in range(5)]
    rand = [disc(ts.RandomSampler(seed=s)) for s in range(5)]
    # centred L2 discrepancy: scrambled Sobol ~1.2e-4 at n=128 in 3-d, random 4e-3 to 1e-2;
    # the worst Sobol run beating the best random run fails by chance well under 1e-6
    assert max(sobol) < min(rand)


def test_sobol_is_seeded_unique_and_valid(svm_space: ts.Space) -> None:
    a = draw(ts.SobolSampler(seed=0), svm_space, 32)
    assert draw(ts.SobolSampler(seed=0), svm_space, 32) == a
    assert draw(ts.SobolSampler(seed=1), svm_space, 32) != a
    assert len({svm_space.key(c) for c in a}) == len(a)
    assert all(svm_space.validate(c) == c for c in a)
    s = ts.SobolSampler(seed=0).suggest(svm_space, [], MIN)
    assert s is not None and s.unique


def test_sobol_on_small_discrete_space_does_not_repeat_while_it_can() -> None:
    space = ts.Space({"k": ts.Categorical(["a", "b"]), "n": ts.Int(1, 4)})
    got = draw(ts.SobolSampler(seed=3), space, 8)
    assert len({space.key(c) for c in got}) == 8



@pytest.mark.parametrize("sampler", ["sobol", "bayes", "auto"])
def test_a_library_s_warning_is_shown_once_in_a_study_not_again_each_trial(sampler: str) -> None:
    # Python shows a warning once per place, until any code changes the warning filters: the Sobol draws
    # had changed them (a catch_warnings around each draw), so a warning the user's training library gives
    # at each fit (Lightning's "LeafSpec is deprecated" under torch 2.13) was printed again every trial.
    space = ts.Space({"x": ts.Float(0.0, 1.0), "k": ts.Int(1, 8)})

    def objective(trial: ts.Trial) -> float:
        warnings.warn("the library says this once", UserWarning, stacklevel=1)
        return float(trial.params["x"])

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("default")
        ts.Study(space, sampler=sampler, seed=0).optimize(objective, n_trials=6)
    assert [str(w.message) for w in said].count("the library says this once") == 1, [str(w.message) for w in said]


# -- grid -----------------------------------------------------------------------------------------------


def test_grid_is_exhaustive_then_none(svm_space: ts.Space) -> None:
    sampler = ts.GridSampler({"C": [0.1, 1, 10, 100], "gamma": 4, "degree": [2, 3]}, seed=0)
    configs = draw(sampler, svm_space, 52)
    assert len({svm_space.key(c) for c in configs}) == 52
    assert sorted(map(svm_space.key, configs)) == sorted(map(svm_space.key, sampler.grid(svm_space)))
    trials = [FrozenTrial(number=i, state=TrialState.COMPLETE, params=c, value=1.0) for i, c in enumerate(configs)]
    assert sampler.suggest(svm_space, trials, MIN) is None


def test_grid_skips_points_tried_in_any_state(svm_space: ts.Space) -> None:
    sampler = ts.GridSampler({"C": [1, 10], "gamma": [0.1], "degree": [2]}, seed=0)
    grid = sampler.grid(svm_space)
    assert len(grid) == 2 + 2 + 2
    states = [TrialState.COMPLETE, TrialState.FAILED, TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED]
    trials = [
        FrozenTrial(number=i, state=s, params=c, value=1.0 if s is TrialState.COMPLETE else None)
        for i, (s, c) in enumerate(zip(states, grid, strict=False))
    ]
    s = sampler.suggest(svm_space, trials, MIN)
    assert s is not None and s.unique and s.params == grid[5]


def test_grid_order_is_seeded(svm_space: ts.Space) -> None:
    pts = {"C": [0.1, 1, 10, 100], "gamma": 4, "degree": [2, 3]}
    assert draw(ts.GridSampler(pts, seed=1), svm_space, 10) == draw(ts.GridSampler(pts, seed=1), svm_space, 10)
    assert draw(ts.GridSampler(pts, seed=1), svm_space, 10) != draw(ts.GridSampler(pts, seed=2), svm_space, 10)


def test_grid_picks_as_a_scan_of_the_grid_would_without_scanning_it_at_each_ask(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ask listed every point left (O(G) an ask, O(G^2) a whole grid: 6.5 ms an ask on a
    10,000-point grid). The points taken are now kept sorted and the pick found in them: the
    same points, in the same order, for the same seed."""
    from tunesmith.samplers import simple

    space = ts.Space({"a": ts.Categorical(list(range(30))), "b": ts.Categorical(list(range(20)))})
    sampler = ts.GridSampler(seed=5)
    keys = [simple._key(c) for c in sampler.grid(space)]
    rng = np.random.default_rng(0)
    trials: list[FrozenTrial] = []
    for c in rng.permutation(len(keys))[:150]:  # tried elsewhere first: enqueued, added, another worker
        trials.append(FrozenTrial(number=len(trials), state=TrialState.COMPLETE, params=sampler.grid(space)[c],
                                  value=1.0))
    scanned = []
    real_enumerate = enumerate
    monkeypatch.setattr(simple, "enumerate", lambda xs: scanned.append(len(xs)) or real_enumerate(xs), raising=False)
    while True:
        got = sampler.suggest(space, trials, MIN)
        taken = {simple._key(t.params) for t in trials}
        left = [i for i, k in real_enumerate(keys) if k not in taken]  # what each ask computed before
        if not left:
            assert got is None
            break
        i = left[0] if len(left) == 1 else left[int(np.random.default_rng([5, len(taken)]).integers(len(left)))]
        assert got is not None and got.params == sampler.grid(space)[i]
        trials.append(FrozenTrial(number=len(trials), state=TrialState.RUNNING, params=got.params))
        if len(trials) % 97 == 0:  # a point the sampler did not pick, tried meanwhile
            extra = next(c for c in sampler.grid(space) if simple._key(c) not in taken | {simple._key(got.params)})
            trials.append(FrozenTrial(number=len(trials), state=TrialState.WAITING, params=extra))
    assert len(trials) == len(keys) and sum(scanned) <= len(keys)  # the grid indexed once, never scanned again


def test_grid_draws_each_pick_once_where_asks_see_one_or_a_few_trials_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ask seeded a generator for its pick and each of its next points (4 an ask, most of an
    ask's time on a 10,000-point grid), though the next points are the picks of the asks that
    follow. Those are now kept: the same picks and next points, each drawn once."""
    from tunesmith.samplers import simple

    space = ts.Space({"a": ts.Categorical(list(range(30))), "b": ts.Categorical(list(range(20)))})
    real_pick = simple.grid_pick
    drawn: list[tuple[int, int, int]] = []
    monkeypatch.setattr(simple, "grid_pick", lambda *a: drawn.append(a) or real_pick(*a))
    sampler = ts.GridSampler(seed=5)
    trials: list[FrozenTrial] = []
    steps = [1, 1, 3, 2, 4, 1, 5, 1, 1, 2] * 8  # trials added between asks: inline (1), other workers (more)
    ours: list[tuple[int, int, int]] = []
    for step in steps:
        before = len(drawn)
        got = sampler.suggest(space, trials, MIN)
        ours += drawn[before:]
        fresh = ts.GridSampler(seed=5).suggest(space, trials, MIN)  # nothing kept: every pick drawn
        assert got is not None and fresh is not None and (got.params, got.then) == (fresh.params, fresh.then)
        for c in (got.params, *got.then)[:step]:
            trials.append(FrozenTrial(number=len(trials), state=TrialState.RUNNING, params=c))
    assert len(set(ours)) == len(ours)  # each pick drawn once
    assert len(ours) == 4 + sum(min(step, 4) for step in steps[:-1])  # (4 an ask before: 320)


@pytest.mark.parametrize("param", [
    ts.Float(0.0, 2.0, grid=[1.0, 1.0000000000001]),  # equal to 12 significant digits, as are these
    ts.Float(1e-301, 1e-299, grid=[1e-300, 1.000000000001e-300]),
    ts.Categorical([0.1, 0.1000000000000001, "a"]),
    ts.Categorical([np.float64(0.1), np.float64(0.1000000000000001), "a"]),  # read back as floats
])
def test_grid_points_equal_to_12_digits_are_each_run_once(param: ts.Float | ts.Categorical,
                                                            storage_url: str | None) -> None:
    """Grid points were compared to 12 significant digits (to match the points older versions
    wrote with other last digits): two user points equal to 12 digits were one, so the second
    never ran, or the grid never ended ("proposed 1000 configurations in a row")."""
    from tunesmith.samplers.simple import grid_remaining

    space = ts.Space({"x": param})
    study = ts.Study(space, sampler="grid", storage=storage_url, name="g")
    assert grid_remaining(study.sampler, space, study.trials) == len(study.sampler.grid(space))
    study.optimize(lambda t: 1.0, n_trials=10)
    want = param.choices if isinstance(param, ts.Categorical) else param.grid()
    def plain(v: object) -> str:  # memory keeps a numpy float, a database reads back a float
        return repr(v if isinstance(v, str) else float(v))  # type: ignore[arg-type]

    assert sorted(plain(t.params["x"]) for t in study.trials) == sorted(map(plain, want))
    assert grid_remaining(study.sampler, space, study.trials) == 0


@pytest.mark.parametrize(("grid", "enqueued"), [([-1.0, 0.0, 1.0], -0.0), ([-1.0, -0.0, 1.0], 0.0)])
def test_an_enqueued_negative_zero_is_the_grid_s_zero(grid: list[float], enqueued: float,
                                                       storage_url: str | None) -> None:
    """An enqueued -0.0 on a grid holding 0.0 (or the reverse) ran both points: the grid told them apart."""
    from tunesmith.samplers.simple import grid_remaining

    study = ts.Study({"x": ts.Float(-1.0, 1.0, grid=grid)}, sampler="grid", storage=storage_url, name="z")
    study.enqueue({"x": enqueued})
    study.optimize(lambda t: t.params["x"], n_trials=10)
    assert sorted(t.params["x"] for t in study.trials) == [-1.0, 0.0, 1.0]
    assert grid_remaining(study.sampler, study.space, study.trials) == 0


def test_grid_points_that_do_not_fit_the_space_are_refused_before_the_study_is_stored(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path}/grid.db"
    space = {"lr": ts.Float(1e-4, 1e-1, log=True), "k": ts.Categorical(["a", "b"])}
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['l_r'\] \(did you mean 'lr'\?\)"):
        ts.Study(space, sampler=ts.GridSampler({"l_r": 3}), storage=storage, name="g")
    with pytest.raises(ValueError, match="parameter 'lr': grid needs at least 1 point, got 0"):
        ts.Study(space, sampler={"name": "grid", "points": {"lr": 0}}, storage=storage, name="g")
    with pytest.raises(ts.StudyNotFound):  # neither was stored (each failed at its first ask, stored, every reopening)
        ts.load_study("g", storage)
    ts.Study(space, sampler="grid", storage=storage, name="g")
    with pytest.raises(ValueError, match="parameter 'k': grid value 'c' is not one of the choices"):
        ts.Study(space, sampler=ts.GridSampler({"k": ["c"]}), storage=storage, name="g")  # reopened with it


def test_grid_default_points_and_description() -> None:
    space = ts.Space({"lr": ts.Float(1e-4, 1.0, log=True), "n": ts.Int(1, 3)})
    g = ts.GridSampler(seed=0)
    assert len(g.grid(space)) == 5 * 3
    rebuilt = make_sampler(g.describe())
    assert isinstance(rebuilt, ts.GridSampler) and rebuilt.seed == 0


# -- auto -------------------------------------------------------------------------------------------------


def test_auto_picks_grid_when_the_budget_covers_the_space() -> None:
    small = ts.Space({"k": ts.Categorical(["a", "b"]), "n": ts.Int(1, 3)})
    a = AutoSampler(seed=0)
    a.set_budget(10)
    assert a.suggest(small, [], MIN) is not None and isinstance(a.chosen, ts.GridSampler)
    b = AutoSampler(seed=0)
    b.set_budget(3)
    b.suggest(small, [], MIN)
    assert isinstance(b.chosen, ts.BayesSampler)
    c = AutoSampler(seed=0)
    c.suggest(ts.Space({"x": ts.Float(0, 1)}), [], MIN)
    assert isinstance(c.chosen, ts.BayesSampler)


@pytest.mark.parametrize("param", [ts.Int(1, 50), ts.Int(1, 300, log=True), ts.Float(0, 1, step=0.01),
                                   ts.Int(1, 50, grid=5)], ids=repr)
def test_auto_s_grid_runs_every_configuration_of_the_space_the_budget_covers(param: Any) -> None:
    study = ts.Study({"n": param, "k": ts.Categorical([None, True])}, seed=0)
    study.optimize(lambda t: 0.0, n_trials=1000)  # the default grid of 5 points ran 10 trials, then stopped
    size = int(study.space.cardinality)
    assert len(study.trials) == size == 2 * param.n_values
    assert len({study.space.key(t.params) for t in study.trials}) == size


def test_auto_does_not_pick_a_grid_too_big_to_list_however_large_the_budget() -> None:
    """Eight stepped floats of 11 values (214 million configurations) with n_trials=10**9 (a run
    bounded by its timeout): auto picked a grid of every value, which failed at the first ask with
    "the grid has more than 1,000,000 configurations ... search this space with sampler='auto'"."""
    space = {f"f{i}": ts.Float(0, 1, step=0.1) for i in range(8)}
    study = ts.Study(space, sampler=AutoSampler(seed=0, budget=10**9), seed=0)
    study.optimize(lambda t: sum(t.params.values()), n_trials=3)
    assert isinstance(study.sampler.chosen, ts.TPESampler) and len(study.trials) == 3
    million = ts.Space({"a": ts.Int(1, 1000), "b": ts.Int(1, 1000)})  # the largest grid listed: still a grid
    assert isinstance(pick(million, 10**6, 0)[0], ts.GridSampler)
    assert isinstance(pick(ts.Space({"a": ts.Int(1, 1000), "b": ts.Int(0, 1000)}), 10**7, 0)[0], ts.TPESampler)


def test_one_auto_sampler_given_to_a_second_study_picks_again_for_its_space() -> None:
    sampler = AutoSampler(seed=0)
    first = ts.Study({"k": ts.Categorical(["a", "b"]), "n": ts.Int(0, 1)}, sampler=sampler)
    first.optimize(lambda t: t.params["n"], n_trials=10)
    assert isinstance(sampler.chosen, ts.GridSampler) and len(first.trials) == 4
    second = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler=sampler)
    second.optimize(lambda t: t.params["x"], n_trials=30)  # a grid kept from the first: 25 points, then "exhausted"
    assert isinstance(sampler.chosen, ts.BayesSampler) and len(second.trials) == 30


def test_auto_picks_tpe_when_a_pruner_stops_trials() -> None:
    space = {"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"])}
    pruned = ts.Study(space, pruner="asha", seed=0)
    pruned.ask()
    chosen = pruned.sampler.chosen  # type: ignore[attr-defined]
    assert isinstance(chosen, ts.TPESampler)
    plain = ts.Study(space, seed=0)
    plain.ask()
    assert isinstance(plain.sampler.chosen, ts.BayesSampler)  # type: ignore[attr-defined]
    later = ts.Study(space, seed=0)
    later.pruner = ts.pruners.ASHA(min_resource=1, reduction_factor=4)  # set before the first suggestion: it counts
    later.ask()
    assert isinstance(later.sampler.chosen, ts.TPESampler)  # type: ignore[attr-defined]
    # a grid that the budget covers stays a grid, pruner or not
    small = AutoSampler(seed=0)
    small.set_early_stopping(True)
    small.set_budget(10)
    small.suggest(ts.Space({"k": ts.Categorical(["a", "b"]), "n": ts.Int(1, 3)}), [], MIN)
    assert isinstance(small.chosen, ts.GridSampler)


def test_the_readme_names_of_strategies_work_and_a_misspelling_is_suggested() -> None:
    """README lists "quasi-random (Sobol)" and "Gaussian process"; sampler="quasi-random"
    was "unknown sampler". Aliases build the sampler, which records its own name."""
    import tunesmith as ts

    for alias, name in (("quasi-random", "sobol"), ("QMC", "sobol"), ("gp", "bayes"), ("exhaustive", "grid")):
        study = ts.Study({"x": ts.Float(0.0, 1.0)}, sampler=alias, seed=0)
        assert study.sampler.describe()["name"] == name
    with pytest.raises(ValueError, match=r"unknown sampler 'bayse' \(did you mean 'bayes'\?\)"):
        ts.Study({"x": ts.Float(0.0, 1.0)}, sampler="bayse")


@pytest.mark.parametrize("sampler", ["sobol", "tpe", "grid"])
def test_ask_stays_fast_as_the_history_grows(sampler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: Sobol and grid built a text key of every past trial on each ask (22 ms per ask at 2,000 trials),
    # TPE encoded every past trial again on each ask (50 ms at 2,000 trials, 90% of its time). The work
    # per past trial is counted, not timed (benchmarks/bench_history.py ask and grid time it).
    from tunesmith.samplers import simple
    from tunesmith.space.space import Space

    calls = Counter[str]()

    def counted(name: str, fn: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return fn(*args, **kwargs)
        return spy

    monkeypatch.setattr(simple, "_key", counted("key", simple._key))
    if hasattr(simple, "_near"):
        monkeypatch.setattr(simple, "_near", counted("near", simple._near))
    monkeypatch.setattr(Space, "encode", counted("encode", Space.encode))
    space = ts.Space({f"x{i}": ts.Float(0.0, 1.0) for i in range(5)})
    first = ts.Study(space, sampler="random", seed=0, name="hist")
    for _ in range(2000):
        first.tell(first.ask(), float(np.random.default_rng(len(first.trials)).random()))
    study = ts.Study(storage=first.storage, name="hist", sampler=sampler, seed=0)
    study.tell(study.ask(), 1.0)  # the first ask reads the history
    calls.clear()
    for _ in range(21):
        study.tell(study.ask(), 1.0)
    assert sum(calls.values()) <= 21 * 4, calls  # a few per ask (the new trials), not 2,000
