"""The Bayesian sampler's automatic focus: the parameters that matter are searched,
the others stay at the best trial's values."""

from __future__ import annotations

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.samplers.bayes import BayesOptions
from tunesmith.samplers.bayes.acquisition import Acquisition
from tunesmith.samplers.bayes.encoding import Encoding
from tunesmith.samplers.bayes.focus import FocusedOptimizer, FocusRule, acq_optimizer
from tunesmith.samplers.bayes.model import GP
from tunesmith.trial import Direction, FrozenTrial, TrialState

D = 12
EFFECTIVE = (1, 6, 10)
SPACE = ts.Space({f"x{i:02d}": ts.Float(0.0, 1.0) for i in range(D)})


def loss(u: np.ndarray) -> float:
    return float(sum(w * (u[j] - 0.3) ** 2 for w, j in zip((3.0, 2.0, 1.0), EFFECTIVE, strict=True)))


def history(n: int, seed: int = 0) -> list[FrozenTrial]:
    rng = np.random.default_rng(seed)
    out = []
    for i, u in enumerate(rng.random((n, D))):
        out.append(FrozenTrial(i, TrialState.COMPLETE, SPACE.decode(u), loss(u)))
    return out


def test_the_rule_focuses_only_with_many_parameters_enough_trials_and_not_on_exploring_turns() -> None:
    rule = FocusRule()
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]  # 2 short lengthscales of 12
    assert rule.relevant(theta, 12, 24, 1).tolist() == [True, False, True] + [False] * 9
    assert rule.relevant(theta, 12, 23, 1) is None  # fewer than 2 trials per parameter
    assert rule.relevant(theta, 12, 24, 4) is None  # every fourth suggestion searches the whole space
    assert rule.relevant(theta[2:], 10, 100, 1) is None  # 10 parameters: too few to focus
    flat = np.r_[np.full(12, np.log(0.5)), 0.0, -4.0]
    assert rule.relevant(flat, 12, 100, 1) is None  # every parameter relevant: the whole space


def test_once_the_search_has_stalled_every_other_turn_steps_the_rest_around_the_incumbent() -> None:
    rule = FocusRule()
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]
    assert rule.patience(12) == 5 and rule.patience(20) == 5 and rule.patience(40) == 10
    improving = np.r_[np.linspace(10.0, 1.0, 24), 1.0 - 0.1 * np.arange(1, 7)]
    stalled = np.r_[np.linspace(10.0, 1.0, 24), np.ones(6)]
    assert rule.rest(theta, 12, 30, 4, improving) is None  # still improving: turns as before
    assert rule.rest(theta, 12, 30, 4, stalled).tolist() == [True, False, True] + [False] * 9
    assert rule.rest(theta, 12, 30, 5, stalled) is None  # the other turns: focused as before
    assert rule.rest(theta, 12, 23, 4, stalled) is None  # too few trials to tell what matters
    lo, hi = rule.rest_box(np.full(12, 0.95), np.arange(12) >= 2)
    assert lo.tolist() == [0.95, 0.95] + [pytest.approx(0.85)] * 10 and hi.tolist() == [0.95, 0.95] + [1.0] * 10


def test_once_the_search_has_stalled_the_focused_turns_refine_around_the_incumbent() -> None:
    # relevant: x00 (lengthscale 0.2) and x02 (0.3); the box has side 0.2 scaled by each one's lengthscale
    # over their geometric mean (0.245), the held ones keep the incumbent's values in a focused turn
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]
    stalled = np.r_[np.linspace(10.0, 1.0, 24), np.ones(6)]
    improving = np.r_[np.linspace(10.0, 1.0, 24), 1.0 - 0.1 * np.arange(1, 7)]
    incumbent = np.full(12, 0.5)
    kw = dict(theta=theta, n_obs=30, anchors=incumbent[None, :], region=None)
    enc, rng = Encoding.of(SPACE), np.random.default_rng(0)
    optimizer, region = acq_optimizer(SPACE, enc, BayesOptions(), rng, index=5, losses=stalled, **kw)
    assert isinstance(optimizer, FocusedOptimizer) and region is not None
    half = 0.1 * np.array([0.2, 0.3]) / np.sqrt(0.2 * 0.3)
    assert region[0][[0, 2]] == pytest.approx(0.5 - half) and region[1][[0, 2]] == pytest.approx(0.5 + half)
    assert acq_optimizer(SPACE, enc, BayesOptions(), rng, index=5, losses=improving, **kw)[1] is None
    _, rest_box = acq_optimizer(SPACE, enc, BayesOptions(), rng, index=4, losses=stalled, **kw)
    assert rest_box is not None and rest_box[0][0] == rest_box[1][0] == 0.5  # the other turns step the rest


def test_stalled_means_the_best_once_went_patience_trials_without_a_real_gain_after_focus_began() -> None:
    rule = FocusRule()  # d = 12: focus from trial 24, patience 5, a real gain: 1e-3 of the IQR
    steady = np.r_[np.linspace(10.0, 1.0, 24), 1.0 - 0.1 * np.arange(1, 30)]  # gains every trial
    assert not rule.stalled(steady, 12)
    tiny = np.r_[np.linspace(10.0, 1.0, 24), 1.0 - 1e-6 * np.arange(1, 8)]  # gains only in the last digits
    assert rule.stalled(tiny, 12)
    assert rule.stalled(np.r_[tiny, 0.0], 12)  # a gain afterwards (of a step on the rest) does not undo it
    assert not rule.stalled(np.r_[np.full(10, 1.0), np.linspace(0.9, 0.1, 20)], 12)  # flat before focus only


def test_the_sampler_steps_the_held_parameters_near_the_best_when_the_search_stalls() -> None:
    trials = history(44)
    k = min(range(len(trials)), key=lambda i: float(trials[i].value))  # type: ignore[arg-type]
    order = [k] + [i for i in range(len(trials)) if i != k]  # the best first: 43 trials without improvement
    trials = [FrozenTrial(n, TrialState.COMPLETE, trials[i].params, trials[i].value) for n, i in enumerate(order)]
    best = trials[0]
    params = ts.samplers.BayesSampler(seed=0).suggest(SPACE, trials, Direction.MINIMIZE).params  # trial 44: exploring
    kept = [f"x{i:02d}" for i in EFFECTIVE]
    assert all(params[n] == best.params[n] for n in kept)  # what matters stays where the best has it
    rest = [f"x{i:02d}" for i in range(D) if i not in EFFECTIVE]
    steps = np.array([params[n] - best.params[n] for n in rest])
    assert np.abs(steps).max() <= 0.1 + 1e-9 and np.count_nonzero(steps) >= len(rest) - 1


def test_the_focused_optimizer_moves_only_the_relevant_coordinates() -> None:
    trials = history(30)
    U = SPACE.encode_many([t.params for t in trials])
    y = np.array([t.value for t in trials], dtype=float)
    enc = Encoding.of(SPACE)
    gp = GP(*enc.to_gp(U), (y - y.mean()) / y.std(), np.r_[np.zeros(D), 0.0, -4.0], enc.is_cat, False)
    relevant = np.isin(np.arange(D), EFFECTIVE)
    incumbent = U[int(np.argmin(y))]
    opt = FocusedOptimizer(SPACE, enc, BayesOptions(), np.random.default_rng(0), relevant, incumbent)
    found = opt.maximize(Acquisition(gp, float(((y - y.mean()) / y.std()).min()), None, 0.0), U[np.argsort(y)[:5]])
    assert np.array_equal(found.U[:, ~relevant], np.broadcast_to(incumbent[~relevant], found.U[:, ~relevant].shape))
    assert np.ptp(found.U[:, relevant], axis=0).min() > 0.1  # while the relevant ones are searched


@pytest.mark.parametrize("focus", [True, False])
def test_the_sampler_learns_which_parameters_matter_and_holds_the_others(focus: bool) -> None:
    trials = history(41)
    best = min(trials, key=lambda t: float(t.value))  # type: ignore[arg-type]
    sampler = ts.samplers.BayesSampler(seed=0, focus=focus)
    params = sampler.suggest(SPACE, trials, Direction.MINIMIZE).params  # trial 41: a focused turn
    held = [f"x{i:02d}" for i in range(D) if i not in EFFECTIVE]
    same = sum(params[n] == best.params[n] for n in held)
    assert same == (len(held) if focus else 0)
    moved = [f"x{i:02d}" for i in EFFECTIVE]
    assert all(params[n] != best.params[n] for n in moved)


def test_focus_is_an_option_that_can_be_turned_off_and_is_recorded() -> None:
    assert BayesOptions().focus is True
    assert ts.samplers.BayesSampler(focus=False).describe()["focus"] is False
    with pytest.raises(TypeError, match="unknown BayesSampler option"):
        ts.samplers.BayesSampler(focuss=False)  # type: ignore[arg-type]


def test_once_stalled_a_turn_that_gained_is_followed_by_one_of_its_kind() -> None:
    rule = FocusRule()
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]  # relevant: x00 and x02
    relevant = np.isin(np.arange(12), (0, 2))
    rng = np.random.default_rng(0)
    rows = rng.random((31, 12))
    losses = np.r_[np.linspace(10.0, 1.0, 24), np.ones(6), 0.5]  # stalled, then the last trial gained
    rest_step = rows.copy()
    rest_step[-1, relevant] = rows[5, relevant]  # the relevant values of an earlier trial: a step on the rest
    focused = rows.copy()
    focused[-1, ~relevant] = rows[5, ~relevant]  # the held values of an earlier trial: a focused turn
    assert rule.gained(relevant, rest_step, losses) == "rest" and rule.gained(relevant, focused, losses) == "focus"
    assert rule.rest(theta, 12, 31, 5, losses, rest_step).tolist() == relevant.tolist()  # odd turn, but it gained
    assert rule.rest(theta, 12, 31, 4, losses, focused) is None  # even turn, but a focused one gained
    flat = np.r_[losses[:-1], 1.0]  # no gain: the turns alternate as before
    assert rule.gained(relevant, rest_step, flat) is None
    assert rule.rest(theta, 12, 31, 5, flat, rest_step) is None
    assert rule.rest(theta, 12, 31, 4, flat, focused).tolist() == relevant.tolist()
    assert FocusRule(follow_gain=False).rest(theta, 12, 31, 5, losses, rest_step) is None
    tiny = np.r_[losses[:-1], 1.0 - 1e-9]  # a gain below tol of the losses' interquartile range is none
    assert rule.gained(relevant, rest_step, tiny) is None


def test_after_a_focused_turn_that_gained_the_sampler_refines_again_instead_of_stepping_the_rest() -> None:
    theta = np.r_[np.log([0.2, 3.0, 0.3, 3.0, 2.0] + [3.0] * 7), 0.0, -4.0]  # relevant: x00 and x02
    rows = np.random.default_rng(1).random((31, 12))
    rows[-1, 2:] = rows[5, 2:]
    rows[-1, 1] = rows[5, 1]  # the last trial moved only x00 and x02: a focused turn
    losses = np.r_[np.linspace(10.0, 1.0, 24), np.ones(6), 0.5]  # stalled, then it gained
    enc, rng = Encoding.of(SPACE), np.random.default_rng(0)
    kw = dict(theta=theta, n_obs=31, anchors=rows[-1][None, :], region=None, losses=losses)
    optimizer, region = acq_optimizer(SPACE, enc, BayesOptions(), rng, index=4, rows=rows, **kw)
    assert isinstance(optimizer, FocusedOptimizer) and region is not None  # a refining turn, on an even index
    assert optimizer.relevant.tolist() == [True, False, True] + [False] * 9
    optimizer, _ = acq_optimizer(SPACE, enc, BayesOptions(), rng, index=4, rows=rows,
                                 **{**kw, "losses": np.r_[losses[:-1], 1.0]})
    assert type(optimizer).__name__ == "RestStepOptimizer"  # no gain: the even turn steps the rest
