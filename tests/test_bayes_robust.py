"""The trust region the Bayesian sampler searches when progress stalls (``local_search``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.samplers.bayes import local
from tunesmith.trial import Direction, FrozenTrial, TrialState


def _trials(X: np.ndarray, y: np.ndarray) -> list[FrozenTrial]:
    return [FrozenTrial(i, TrialState.COMPLETE, {"a": float(X[i, 0]), "b": float(X[i, 1])}, float(y[i]))
            for i in range(len(y))]


def test_stall_count_and_phases() -> None:
    assert local.stalled(np.array([])) == 0
    assert local.stalled(np.array([3.0, 2.0, 2.5, 2.0, 4.0])) == 3  # ties are no improvement
    assert local.stalled(np.array([3.0, 2.0, 1.0])) == 0
    d = 2  # patience max(5, d) = 5
    assert [local.side(s, d) for s in (0, 4, 5, 10, 15, 20, 25)] == [None, None, 0.4, 0.2, 0.1, None, 0.4]


def test_box_follows_lengthscales_and_stays_in_the_unit_cube() -> None:
    center = np.array([0.05, 0.5, np.nan, 0.5])
    numeric = np.array([True, True, True, False])
    lo, hi = local.box(center, np.array([1.0, 4.0, 1.0, 1.0]), numeric, 0.2)
    assert lo[0] == 0.0 and hi[0] < 0.2  # clipped at the border
    assert hi[1] - lo[1] > 2 * (hi[0] - lo[0])  # a long lengthscale gets a wide side
    assert (lo[3], hi[3]) == (0.0, 1.0)  # categorical: whole range
    assert np.all((0 <= lo) & (lo <= hi) & (hi <= 1))


def test_stalled_search_suggests_inside_the_box() -> None:
    space = ts.Space({"a": ts.Float(0.0, 1.0), "b": ts.Float(0.0, 1.0)})
    X = np.random.default_rng(2).random((30, 2))
    X[0] = [0.3, 0.7]
    y = np.r_[-1.0, np.sum((X[1:] - 0.5) ** 2, axis=1)]  # the first trial stays best: 29 stalled
    s = ts.BayesSampler(seed=0, local_search=True)
    length = local.side(29, 2)
    assert length is not None
    for _ in range(3):
        sug = s.suggest(space, _trials(X, y), Direction.MINIMIZE)
        u = np.array([sug.params["a"], sug.params["b"]])
        assert s._theta is not None
        lo, hi = local.box(X[0], np.exp(s._theta[:2]), np.array([True, True]), length)
        assert np.all(hi - lo < 1.0) and np.all((lo - 1e-9 <= u) & (u <= hi + 1e-9))
    off = ts.BayesSampler(seed=0).suggest(space, _trials(X, y), Direction.MINIMIZE)  # without: anywhere
    assert off.params != sug.params


def test_default_model_sees_at_most_128_points() -> None:
    # the cap that keeps a suggestion at 1,000 trials within 2x Optuna TPE's time
    s = ts.BayesSampler(seed=0)
    U = np.random.default_rng(0).random((300, 2))
    keep = s._training_subset(U, U.sum(axis=1))
    assert len(keep) == 128 == len(set(keep.tolist()))


def test_plugin_incumbent_is_the_lowest_posterior_mean_not_a_lucky_draw() -> None:
    from tunesmith.samplers.bayes.model import GP

    rng = np.random.default_rng(0)
    Z = rng.random((30, 1))
    y = np.sin(3 * Z[:, 0]) + 0.3 * rng.standard_normal(30)
    y[5] = y.min() - 2.0  # one lucky draw, far below its neighbours
    gp = GP(Z, np.ones_like(Z, dtype=bool), y, np.array([np.log(0.3), 0.0, np.log(0.1)]), np.array([False]), False)
    observed = ts.BayesSampler(seed=0, plugin_incumbent=False)._incumbent(gp, 30)
    plugin = ts.BayesSampler(seed=0)._incumbent(gp, 30)  # the default (benchmarks/LOG.md, issue 22)
    assert observed == y.min()
    assert plugin == pytest.approx(gp.predict(Z, gp.A)[0].min()) and plugin > observed + 0.5
    assert ts.BayesSampler(seed=0)._incumbent(gp, 3) == pytest.approx(
        gp.predict(Z, gp.A)[0][:3].min())  # only the completed trials (the first rows) count


def test_plugin_max_noise_falls_back_to_the_observed_best_when_the_model_calls_the_losses_noisy() -> None:
    from tunesmith.samplers.bayes.model import GP

    rng = np.random.default_rng(0)
    Z = rng.random((30, 1))
    y = np.sin(3 * Z[:, 0]) + 0.3 * rng.standard_normal(30)
    theta = np.array([np.log(0.3), 0.0, np.log(0.1)])  # noise variance 0.1 x the signal's
    gp = GP(Z, np.ones_like(Z, dtype=bool), y, theta, np.array([False]), False)
    plugin = float(gp.train_mean().min())
    assert ts.BayesSampler(seed=0, plugin_max_noise=0.5)._incumbent(gp, 30) == pytest.approx(plugin)
    assert ts.BayesSampler(seed=0, plugin_max_noise=0.05)._incumbent(gp, 30) == y.min() < plugin
    for bad in (0, -1.0, float("inf"), "0.1"):
        with pytest.raises(ValueError, match="plugin_max_noise"):
            ts.BayesSampler(plugin_max_noise=bad)


def _flat_top(p: dict[str, float]) -> float:
    """A flat top with a CV-like wiggle of +-0.0002: the shape of accuracy near its best."""
    x, y = p["x"], p["y"]
    return float(0.9 - 0.3 * max(abs(x - 0.3), abs(y - 0.6)) ** 2 + 0.0002 * np.sin(37 * x + 11 * y))


def _near_copies(study: ts.Study) -> int:
    U = np.array([[t.params["x"], t.params["y"]] for t in study.trials])
    return int(sum(np.min(np.max(np.abs(U[:i] - U[i]), axis=1)) < 0.05 for i in range(1, len(U))))


def test_ei_margin_keeps_a_short_search_from_sampling_beside_its_incumbent() -> None:
    space = ts.Space({"x": ts.Float(0, 1), "y": ts.Float(0, 1)})
    near = {}
    for margin in (0.0, 0.01):
        near[margin] = 0
        for seed in range(3):
            study = ts.Study(space, direction="maximize", sampler=ts.samplers.BayesSampler(seed=seed, ei_margin=margin))
            study.optimize(_flat_top, n_trials=16)
            near[margin] += _near_copies(study)
    assert near[0.0] >= 9  # without a margin, log EI samples beside the incumbent (16 of 45 trials here; 0 with it)
    assert near[0.01] <= near[0.0] // 3


def test_ei_margin_must_be_a_finite_non_negative_number() -> None:
    for bad in (-0.01, float("inf"), "0.01"):
        with pytest.raises(ValueError, match="ei_margin"):
            ts.samplers.BayesSampler(ei_margin=bad)


@pytest.mark.parametrize("param", [ts.Float(1.0, 1.0000000000000002), ts.Float(1.0, 1.0000000000000002, log=True)])
def test_a_range_of_few_floats_is_searched_not_stuck_on_a_taken_point(param: ts.Float) -> None:
    """Distinct unit points of a range holding two floats decode to the same value: the sampler
    checked the point, the study the value, and 'could not claim a configuration after 1000
    attempts' ended the search at its third trial. Now the sampler checks what a point decodes to."""
    study = ts.Study({"x": param}, sampler="bayes", seed=0)
    study.optimize(lambda t: t.params["x"] - 1.0, n_trials=6, catch=())
    assert {t.params["x"] for t in study.trials} <= {1.0, 1.0 + 2.0**-52}  # both floats (log: 1.0), then repeats
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6 and study.best_value == 0.0


def test_half_rank_tames_collapsed_scores_and_keeps_the_good_half() -> None:
    """Cross-validated accuracies near 0.8 and two at chance level (an l1 penalty that zeroed every
    coefficient): standardized as they are, the two dwarf the 0.01 differences among the good ones."""
    from tunesmith.samplers.bayes.model import half_rank

    losses = -np.array([0.814, 0.8164, 0.8266, 0.8166, 0.814, 0.4975, 0.8191, 0.4975])
    out = half_rank(losses)
    good = losses <= np.median(losses)
    assert np.array_equal(out[good], losses[good])  # the better half as it was
    assert np.array_equal(np.argsort(out, kind="stable"), np.argsort(losses, kind="stable"))  # order kept
    assert out.max() < -0.79  # chance level (-0.4975) now within a few good-half spreads of the median
    assert (np.ptp(out[good]) / out.std()) > 3 * (np.ptp(losses[good]) / losses.std())
    assert np.array_equal(half_rank(losses[:3]), losses[:3])  # too few to tell a half
    assert np.array_equal(half_rank(np.array([1.0, 1.0, 1.0, 5.0])), [1.0, 1.0, 1.0, 5.0])  # no spread in the good half


def test_half_rank_is_an_option_of_the_bayes_sampler() -> None:
    space = ts.Space({"x": ts.Float(0, 1)})
    study = ts.Study(space, sampler=ts.samplers.BayesSampler(seed=0, half_rank=True))
    study.optimize(lambda t: 0.5 if t.params["x"] < 0.2 else (t.params["x"] - 0.7) ** 2, n_trials=10)
    assert study.sampler.options.half_rank and len(study.trials) == 10  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="half_rank"):
        ts.samplers.BayesSampler(half_rank="yes")


def test_half_rank_reaches_the_model_and_off_leaves_the_search_as_it_was() -> None:
    """The option changes what the Gaussian process is fitted to (an option the sampler ignored passed the
    test above): on an objective with collapsed values the points proposed after the design differ, the
    design itself does not, and half_rank=False proposes exactly what the default does."""
    def objective(t: ts.Trial) -> float:
        x = t.params["x"]
        return 5.0 if x < 0.3 else (x - 0.7) ** 2  # a third of the range collapsed, far above the rest

    def points(**options: Any) -> list[float]:
        study = ts.Study({"x": ts.Float(0, 1)}, sampler=ts.samplers.BayesSampler(seed=0, **options))
        study.optimize(objective, n_trials=14)
        return [t.params["x"] for t in study.trials]

    on, off, default = points(half_rank=True), points(half_rank=False), points()
    n_init = ts.samplers.BayesSampler(seed=0).n_init(ts.Space({"x": ts.Float(0, 1)}))
    assert off == default
    assert on[:n_init] == off[:n_init] and on[n_init:] != off[n_init:]
