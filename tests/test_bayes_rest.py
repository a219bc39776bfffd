"""The automatic focus's steps on the held parameters: a separable quadratic model fitted within
groups of trials that share the relevant parameters' values, in a trust region that shrinks."""

from __future__ import annotations

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.samplers.bayes import BayesOptions, rest
from tunesmith.samplers.bayes.encoding import Encoding
from tunesmith.samplers.bayes.focus import (
    FocusedOptimizer,
    FocusRule,
    RestStepOptimizer,
    acq_optimizer,
)

H = 16  # held parameters; coordinate 0 is the relevant one


def small_terms(seed: int) -> tuple[np.ndarray, float]:
    return np.random.default_rng(seed).uniform(0.2, 0.8, H), 0.004


def test_the_model_is_recovered_exactly_within_groups_whatever_the_relevant_part_adds() -> None:
    rng = np.random.default_rng(0)
    centre, w = rng.uniform(0.2, 0.8, 4), np.array([1.0, 2.0, 0.5, 3.0])
    U = np.c_[rng.choice([0.1, 0.5, 0.9], size=40), rng.random((40, 4))]  # 3 groups on coordinate 0
    y = 10.0 * np.sin(7 * U[:, 0]) + np.sum(w * (U[:, 1:] - centre) ** 2, axis=1)
    key, model = np.arange(5) == 0, np.arange(5) > 0
    a, b, n = rest.fit(U, y, key, model, np.zeros(4, dtype=bool))
    u0 = U[int(np.argmin(y)), 1:]
    assert n == 37 and b == pytest.approx(w, rel=1e-4) and a == pytest.approx(2 * w * (u0 - centre), abs=1e-4)
    a, b, _ = rest.fit(U, y - np.sum((w - 1.0) * (U[:, 1:] - centre) ** 2, axis=1), key, model, np.ones(4, dtype=bool))
    assert b == pytest.approx(np.ones(4), rel=1e-4)  # one curvature shared by all four


def test_the_separable_minimizer_stays_in_the_box() -> None:
    a, b = np.array([-1.0, 1.0, -1.0, 0.5]), np.array([1.0, 1.0, -1.0, 0.0])
    t = rest.minimize_separable(a, b, np.full(4, -0.1), np.full(4, 0.1))
    assert t.tolist() == [0.1, -0.1, 0.1, -0.1]
    assert rest.minimize_separable(np.array([-0.1]), np.array([1.0]), np.array([-0.1]), np.array([0.1]))[0] == 0.05


def test_the_trust_region_halves_after_failed_steps_and_resets_on_a_gain() -> None:
    U = np.c_[np.full(6, 0.5), np.linspace(0.1, 0.6, 6)]
    key = np.array([True, False])
    assert rest.trust_side(U, np.array([1.0, 0.5, 0.6, 0.7, 0.8, 0.9]), key, 0.2, 2) == pytest.approx(0.05)
    assert rest.trust_side(U, np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5]), key, 0.2, 2) == pytest.approx(0.2)
    U = np.c_[np.full(42, 0.5), np.linspace(0.0, 1.0, 42)]
    assert rest.trust_side(U, np.r_[1.0, 0.5, np.ones(40)], key, 0.2, 1) == rest.MIN_SIDE  # 40 failures: the floor


def test_a_relevant_parameter_that_steps_on_the_rest_moved_leaves_the_key() -> None:
    # coordinate 1 was held (steps moved it) and then judged relevant: the steps stay one group
    U = np.array([[0.5, 0.5, 0.3], [0.5, 0.6, 0.4], [0.5, 0.4, 0.2], [0.9, 0.1, 0.3]])
    relevant = np.array([True, True, False])
    assert rest.key_dims(U, relevant).tolist() == [True, False, False]
    assert rest.key_dims(U[[0, 3]], relevant).tolist() == [True, True, False]


def walk(seed: int, model: bool, steps: int = 25) -> float:
    """Steps on the rest from a random start on a separable quadratic in 16 held parameters:
    the model's, or (the behaviour before it) a uniform step in the same box, kept if better."""
    rng, (centre, w) = np.random.default_rng(seed), small_terms(seed)
    relevant = np.arange(H + 1) == 0
    U, y = np.r_[0.5, rng.random(H)][None, :], []
    y.append(w * np.sum((U[0, 1:] - centre) ** 2))
    for _ in range(steps):
        if model:
            u = rest.step(U, np.array(y), relevant, ~relevant, rng, side=0.2, shrink_after=2)
        else:
            u = U[int(np.argmin(y))].copy()
            u[1:] = np.clip(u[1:] + rng.uniform(-0.1, 0.1, H), 0.0, 1.0)
        U, y = np.vstack([U, u]), y + [w * np.sum((u[1:] - centre) ** 2)]
    return min(y)


@pytest.mark.parametrize("seed", range(5))
def test_model_steps_converge_where_steps_in_the_box_do_not(seed: int) -> None:
    start = walk(seed, True, steps=0)
    assert walk(seed, True) < 0.05 * walk(seed, False) and walk(seed, False) < start


def test_the_rest_turns_use_the_model_unless_the_rule_says_not() -> None:
    space = ts.Space({f"x{i:02d}": ts.Float(0.0, 1.0) for i in range(12)})
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]
    stalled = np.r_[np.linspace(10.0, 1.0, 24), np.ones(6)]
    rows = np.random.default_rng(0).random((30, 12))
    kw = dict(theta=theta, n_obs=30, index=4, anchors=rows[-1:], losses=stalled, region=None)
    enc, rng = Encoding.of(space), np.random.default_rng(0)
    assert isinstance(acq_optimizer(space, enc, BayesOptions(), rng, rows=rows, **kw)[0], RestStepOptimizer)
    off = FocusRule(rest_model=False)
    assert off.rest_model is False and FocusRule().rest_model is True
    assert isinstance(acq_optimizer(space, enc, BayesOptions(), rng, **kw)[0], FocusedOptimizer)  # no rows


def model_data(seed: int, n: int, effect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` steps on the rest from one point (coordinate 0 relevant, 3 groups on it), losses
    with a separable quadratic of weight ``effect`` in the 16 held parameters."""
    rng, (centre, w) = np.random.default_rng(seed), small_terms(seed)
    U = np.c_[rng.choice([0.2, 0.5, 0.8], size=n), 0.5 + rng.uniform(-0.1, 0.1, (n, H))]
    y = 10.0 * np.sin(7 * U[:, 0]) + effect * w * np.sum((U[:, 1:] - centre) ** 2, axis=1)
    return U, y, centre, np.arange(H + 1) == 0


def test_the_centres_are_trusted_only_once_the_fit_can_tell_them() -> None:
    U, y, centre, relevant = model_data(0, 40, 1.0)
    held = ~relevant
    u = rest.pinned(U, y, relevant, held, side=1.0, sure=0.01)
    assert u is not None and u[1:] == pytest.approx(centre, abs=1e-4) and u[0] == U[int(np.argmin(y)), 0]
    assert rest.pinned(U[:18], y[:18], relevant, held, side=1.0, sure=0.01) is None  # 15 differences, 17 unknowns
    U, y, _, _ = model_data(0, 40, 0.0)  # the held parameters do nothing: no curvature, no centre
    assert rest.pinned(U, y, relevant, held, side=1.0, sure=0.01) is None


def test_a_sure_model_steps_to_its_centre_without_the_jitter() -> None:
    rng, (centre, w) = np.random.default_rng(3), small_terms(3)
    relevant = np.arange(H + 1) == 0
    U = np.r_[0.5, centre + rng.uniform(-0.05, 0.05, H)][None, :]
    y = [w * float(np.sum((U[0, 1:] - centre) ** 2))]
    ends = []
    for sure in (0.0, 0.01):
        V, z = U.copy(), list(y)
        for _ in range(30):
            u = rest.step(V, np.array(z), relevant, ~relevant, rng, side=0.2, shrink_after=2, sure=sure)
            V, z = np.vstack([V, u]), z + [w * float(np.sum((u[1:] - centre) ** 2))]
        ends.append(min(z))
    assert ends[1] < 1e-10 < ends[0]  # the jittered steps stay a quarter box around the centre


def test_a_rest_turn_goes_to_the_relevant_parameters_once_the_held_ones_sit_at_the_centres() -> None:
    space = ts.Space({f"x{i:02d}": ts.Float(0.0, 1.0) for i in range(H + 1)})
    enc = Encoding.of(space)
    U, y, centre, relevant = model_data(1, 40, 1.0)
    rule = FocusRule()

    def settled(r: FocusRule, incumbent: np.ndarray, V: np.ndarray, z: np.ndarray) -> bool:
        return r.settled(relevant, enc, incumbent, r.pinned(relevant, enc, incumbent, V, z))

    assert not settled(rule, U[int(np.argmin(y))], U, y)
    best = np.r_[U[int(np.argmin(y)), 0], centre]
    V, z = np.vstack([U, best]), np.r_[y, 10.0 * np.sin(7 * best[0])]
    assert settled(rule, V[-1], V, z)
    assert not settled(FocusRule(pin=False), V[-1], V, z)


def test_a_step_with_no_held_parameter_in_the_model_keeps_the_incumbent() -> None:
    U, y, _, relevant = model_data(2, 40, 1.0)
    none = np.zeros(H + 1, dtype=bool)  # e.g. every held parameter inactive at the incumbent
    u = rest.step(U, y, relevant, none, np.random.default_rng(0), side=0.2, shrink_after=2, sure=0.01)
    assert u.tolist() == U[int(np.argmin(y))].tolist()
    assert rest.pinned(U, y, relevant, none, side=0.2, sure=0.01) is None


def test_a_paused_trial_is_modelled_as_a_pruned_one_not_as_a_pending_one() -> None:
    """Behind a pausing pruner the GP took a paused trial for a pending one, a fantasy at its own mean for as
    long as it stayed paused (forever, unless promoted), though the pruner had stopped it as it stops the
    pruned ones, which count as the worst loss seen. Now a paused trial is modelled as a pruned one."""
    from tunesmith.samplers import BayesSampler
    from tunesmith.trial import Direction, FrozenTrial, TrialState

    space = ts.Space({"x": ts.Float(0, 1), "y": ts.Float(0, 1)})
    rng = np.random.default_rng(0)
    done = [FrozenTrial(i, TrialState.COMPLETE, {"x": float(rng.random()), "y": float(rng.random())},
                        float(rng.random())) for i in range(8)]
    stopped = [FrozenTrial(8 + i, TrialState.PAUSED, {"x": 0.9 + 0.02 * i, "y": 0.5}, 2.0, intermediate={3: 2.0})
               for i in range(4)]
    asked = {}
    for state in (TrialState.PAUSED, TrialState.PRUNED):
        sampler = BayesSampler(seed=1)
        trials = done + [t.replace(state=state) for t in stopped]
        asked[state] = [sampler.suggest(space, trials, Direction.MINIMIZE).params for _ in range(3)]
    assert asked[TrialState.PAUSED] == asked[TrialState.PRUNED]
