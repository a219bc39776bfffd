"""Importance against closed-form variance decompositions; what counts; the Study and CLI faces."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

import tunesmith as ts  # noqa: E402
from tunesmith.cli import main  # noqa: E402
from tunesmith.importance import FanovaOptions, PedAnovaOptions, importance  # noqa: E402
from tunesmith.importance.data import design  # noqa: E402
from tunesmith.importance.fanova import fanova  # noqa: E402
from tunesmith.importance.ped_anova import SUBCELLS, _kernels, ped_anova  # noqa: E402
from tunesmith.trial import FrozenTrial, TrialState  # noqa: E402

# f = 3 (x - 1/2) + 2 (u - 1/2) + level(opt) + 4 (x - 1/2)(u - 1/2), u = lr on its log scale, "noise" unused.
# Under the uniform measure: V_x = 9/12, V_lr = 4/12, V_opt = Var{0, 1, 2} = 2/3, V_x,lr = 16/144.
SPACE = ts.Space({"x": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True),
                  "opt": ts.Categorical(["sgd", "adam", "rms"]), "noise": ts.Float(0, 1)})
LEVEL = {"sgd": 0.0, "adam": 1.0, "rms": 2.0}
PARTS = {"x": 9 / 12, "lr": 4 / 12, "opt": 2 / 3, "noise": 0.0}
PAIR = 16 / 144
TOTAL = sum(PARTS.values()) + PAIR


def closed_form(p: dict) -> float:
    x, u = p["x"], (math.log10(p["lr"]) + 4) / 3
    return 3 * (x - 0.5) + 2 * (u - 0.5) + LEVEL[p["opt"]] + 4 * (x - 0.5) * (u - 0.5)


def random_trials(space: ts.Space, f, n: int, seed: int, *, sign: float = 1.0) -> list[FrozenTrial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cfg = space.sample(rng)
        out.append(FrozenTrial(i, TrialState.COMPLETE, cfg, value=sign * f(cfg)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fanova_recovers_the_closed_form_decomposition_at_300_trials(seed: int) -> None:
    imp = importance(random_trials(SPACE, closed_form, 300, seed), SPACE, method="fanova", seed=seed)
    for name, part in PARTS.items():
        assert imp[name] == pytest.approx(part / TOTAL, abs=0.05), name
    top = imp.interactions[0]
    assert set(top.names) == {"x", "lr"}
    assert top.fraction == pytest.approx(PAIR / TOTAL, abs=0.05)
    assert [e.names[0] for e in imp.main] == ["x", "opt", "lr", "noise"]  # largest first
    assert all(e.std > 0 for e in imp.main[:3])  # the band: a spread over trees


# g = 3 (u - 1/2) + n / 4 + 1.5 [c2 = b] + LEVEL7(c7) + 4 (u - 1/2)(s - 1/2) + branch, u = lr on its log scale,
# s = [c2 = b], branch = 2 momentum for sgd and 0.5 for adam (momentum active for sgd only, drawn where inactive).
# V_lr = 9/12, V_n = 63/192 (8 levels), V_c2 = 9/16, V_c7 = 26/49, V_lr,c2 = 1/3; the branch: V_opt = 1/16 (means 1
# and 0.5), V_momentum = 1/12 (m + 1/4), V_opt,momentum = 1/12 (the rest of its variance, 11/48).
SPACE7 = ts.Space({"lr": ts.Float(1e-5, 1e-1, log=True), "n": ts.Int(1, 8), "c2": ts.Categorical(["a", "b"]),
                   "c7": ts.Categorical([f"k{i}" for i in range(7)]), "opt": ts.Categorical(["sgd", "adam"]),
                   "momentum": ts.Float(0, 1, when={"opt": ["sgd"]}), "noise": ts.Float(0, 1)})
LEVEL7 = [0, 0, 0, 0, 0, 1, 2]
PARTS7 = {"lr": 9 / 12, "n": 63 / 192, "c2": 9 / 16, "c7": 26 / 49, "opt": 1 / 16, "momentum": 1 / 12, "noise": 0.0}
PAIRS7 = {frozenset(("lr", "c2")): 1 / 3, frozenset(("opt", "momentum")): 1 / 12}
TOTAL7 = sum(PARTS7.values()) + sum(PAIRS7.values())


def closed_form7(p: dict) -> float:
    u, s = (math.log10(p["lr"]) + 5) / 4, float(p["c2"] == "b")
    branch = 2 * p["momentum"] if p["opt"] == "sgd" else 0.5
    return 3 * (u - 0.5) + p["n"] / 4 + 1.5 * s + LEVEL7[int(p["c7"][1])] + 4 * (u - 0.5) * (s - 0.5) + branch


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_fanova_recovers_a_seven_parameter_decomposition_with_a_branch_at_1000_trials(direction: str) -> None:
    """Integers, categoricals of 2 and 7 choices, a conditional parameter: within 0.05 at 1,000 trials
    (0.03 at most over 5 seeds; at 300 the 7-way choice and the 8-level integer come out up to 0.09 low)."""
    sign = 1.0 if direction == "minimize" else -1.0
    imp = importance(random_trials(SPACE7, closed_form7, 1000, 1, sign=sign), SPACE7, direction=direction, seed=1)
    for name, part in PARTS7.items():
        assert imp[name] == pytest.approx(part / TOTAL7, abs=0.05), (name, imp.fractions)
    pairs = {frozenset(e.names): e.fraction for e in imp.interactions}
    for names, part in PAIRS7.items():
        assert pairs[names] == pytest.approx(part / TOTAL7, abs=0.05), names
    assert max(f for n, f in pairs.items() if n not in PAIRS7) < 0.02


def test_each_tree_splits_its_variance_exactly_into_main_effects_and_the_pair() -> None:
    # with two columns there is nothing beyond the pair: the parts of every tree sum to 1
    space = ts.Space({"a": ts.Float(0, 1), "b": ts.Categorical(["p", "q", "r", "s"])})
    trials = random_trials(space, lambda p: math.sin(5 * p["a"]) * (1 + "pqrs".index(p["b"])), 200, 0)
    trees = fanova(design(trials, space), FanovaOptions(n_trees=8), seed=0)
    assert len(trees) == 8
    for t in trees:
        assert t.main.sum() + t.pairs[0, 1] == pytest.approx(1.0, abs=1e-9)


def _pair_by_definition(weight, cut_d, cut_e, a_d, a_e, f0):  # type: ignore[no-untyped-def]
    """V_de summed leaf by leaf over the (K_d, K_e) grid: the definition the fast path must equal."""
    (s_d, e_d, w_d), (s_e, e_e, w_e) = cut_d, cut_e
    joint = np.zeros((w_d.size, w_e.size))
    for v, a, b, c, d in zip(weight, s_d, e_d, s_e, e_e, strict=True):
        joint[a:b, c:d] += v
    return float(w_d @ (joint - a_d[:, None] - a_e[None, :] + f0) ** 2 @ w_e)


def test_every_pair_of_every_tree_equals_its_definition() -> None:
    """The pair variances, computed with one pass of difference arrays (fANOVA took 5.4 s at 5,000
    trials), are the grid sums of their definition, to rounding, on trees of the tests' functions."""
    from tunesmith.importance.fanova import _fit, _pair, _pair_banded, _tree_parts, _without

    for space, f in ((SPACE, closed_form), (ts.Space({"a": ts.Float(0, 1), "b": ts.Categorical(["p", "q", "r"]),
                                                      "c": ts.Int(1, 64, log=True)}),
                                            lambda p: math.sin(5 * p["a"]) * (1 + "pqr".index(p["b"])) + p["c"] / 64)):
        d = design(random_trials(space, f, 150, 0), space)
        forest = _fit(d, FanovaOptions(n_trees=4), seed=0)
        checked = 0
        for est in forest.estimators_:
            p = _tree_parts(est.tree_, d.columns)
            assert p is not None
            split = [i for i in range(len(d.columns)) if p.pos[i] >= 0]
            for i, a in enumerate(split):
                for b in split[i + 1:]:
                    args = (p.v * _without(p.m, (p.pos[a], p.pos[b])), p.cuts[a], p.cuts[b], p.marg[a], p.marg[b], p.f0)
                    exact = _pair_by_definition(*args)
                    assert _pair(*args) == pytest.approx(exact, rel=1e-12, abs=1e-15)
                    for rows in (1, 3, 64):  # bands of one row, of a few, one band of every row
                        assert _pair_banded(*args, rows=rows) == pytest.approx(exact, rel=1e-12, abs=1e-14)
                    checked += 1
        assert checked >= 4
    # leaves that all span the pair's plane (they differ in other columns): each band would hold every cut
    rng = np.random.default_rng(0)
    start, end, w = np.zeros(12, dtype=np.intp), np.full(12, 2), np.array([0.25, 0.75])
    args = (rng.normal(size=12), (start, end, w), (start, end, w), rng.normal(size=2), rng.normal(size=2), 0.1)
    assert _pair_banded(*args, rows=1) == pytest.approx(_pair_by_definition(*args), rel=1e-12)


def test_large_trees_sum_their_pairs_band_by_band_to_the_same_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    """fANOVA took 2.3-3.6 s at 5,000 trials, two thirds of it the pairs: each a pass of cumulative
    sums over a tree's (K_d x K_e) grid of cuts, quadratic in the trials (1.4 million cells a pair at
    5,000). A large pair is now summed in bands of rows, each over the cuts of the leaves it holds
    (a sixth of the cells at 5,000); the fractions and bands are the grid's, to rounding."""
    import importlib

    module = importlib.import_module("tunesmith.importance.fanova")
    cells: list[int] = []
    grid = module._pair

    def counted(weight, cut_d, cut_e, a_d, a_e, f0):  # type: ignore[no-untyped-def]
        cells.append(cut_d[2].size * cut_e[2].size)
        return grid(weight, cut_d, cut_e, a_d, a_e, f0)

    trials = random_trials(SPACE, closed_form, 2000, 0)
    options = FanovaOptions(n_trees=6)
    monkeypatch.setattr(module, "_pair", counted)
    banded = importance(trials, SPACE, options=options).to_dict()
    assert cells and max(cells) <= 80_000, max(cells)  # before: every pair on its whole grid, 200,000+ cells
    monkeypatch.setattr(module, "BANDED_CELLS", math.inf)  # every pair on its whole grid, as before
    whole = importance(trials, SPACE, options=options).to_dict()
    assert max(cells) > 150_000
    for part in ("main", "interactions"):
        assert [e["params" if part == "interactions" else "param"] for e in banded[part]] == \
            [e["params" if part == "interactions" else "param"] for e in whole[part]]
        for b, w in zip(banded[part], whole[part], strict=True):
            assert b["fraction"] == pytest.approx(w["fraction"], abs=1e-12)
            assert b["std"] == pytest.approx(w["std"], abs=1e-12)


def test_ped_anova_matches_the_closed_form_among_the_best_tenth() -> None:
    # f = max(x1, 2 x2): the best 10% is the box x1 < t, x2 < t/2 with t = sqrt(0.2), so in it x1 is
    # uniform on [0, t] and x2 on [0, t/2]: Pearson divergences 1/t - 1 and 2/t - 1; x3 and opt: 0.
    space = ts.Space({"x1": ts.Float(0, 1), "x2": ts.Float(0, 1), "x3": ts.Float(0, 1),
                      "opt": ts.Categorical(["a", "b", "c", "d"])})
    t = math.sqrt(0.2)
    truth = {"x1": 1 / t - 1, "x2": 2 / t - 1, "x3": 0.0, "opt": 0.0}
    total = sum(truth.values())
    for seed in (0, 1):
        # maximizing -f is minimizing f: the direction decides which trials are good
        trials = random_trials(space, lambda p: -max(p["x1"], 2 * p["x2"]), 1000, seed)
        imp = importance(trials, space, method="ped-anova", direction="maximize", seed=seed)
        for name, div in truth.items():
            assert imp[name] == pytest.approx(div / total, abs=0.05), name
        assert imp.main[0].std > 0


def test_ped_anova_gives_a_parameter_that_does_nothing_no_divergence_on_average() -> None:
    # among 300 trials the best 30 carry sampling noise: the plug-in square of their density pairs each
    # trial's kernel with itself and adds about (k - 1) / 30 = 0.1 to a 4-way categorical that does
    # nothing (1 / (30 h sqrt(4 pi)) to a float); pairs of distinct trials add nothing on average, so
    # (clipped at 0) most seeds give such a parameter exactly 0
    space = ts.Space({"x": ts.Float(0, 1), "z": ts.Float(0, 1), "opt": ts.Categorical(["a", "b", "c", "d"])})
    divergences = np.array([
        ped_anova(design(random_trials(space, lambda p: p["x"], 300, seed), space),
                  PedAnovaOptions(n_bootstrap=0), seed)[0]
        for seed in range(20)
    ])
    x, z, opt = np.median(divergences, axis=0)
    assert x == pytest.approx(1 / 0.1 - 1, rel=0.15)  # x uniform on [0, 0.1] among the best tenth
    assert z < 0.01 and opt < 0.01, (z, opt)  # the plug-in square: 0.033 and 0.046


def test_ped_anova_gives_a_choice_that_never_changes_nothing_at_any_size() -> None:
    # the prior's pseudo-trials do not pair with each other: scaling all of p^2 for the pairs of distinct
    # good trials gave a one-choice parameter (1 - a^2) / (n_good - 1), 0.053 at 60 trials (a share of 0.03)
    space = ts.Space({"x": ts.Float(0, 1), "one": ts.Categorical(["a"]), "b": ts.Categorical([True, False])})
    for seed in range(5):
        trials = random_trials(space, lambda p: p["x"] + (p["b"] is True), 60, seed)
        x, one, b = ped_anova(design(trials, space), PedAnovaOptions(), seed)[0]
        assert one == pytest.approx(0.0, abs=1e-12) and b > 0.5 and x > 0.5, (x, one, b)
        assert importance(trials, space, method="ped-anova", seed=seed)["one"] == pytest.approx(0.0, abs=1e-12)


def test_ped_anova_density_of_evenly_spread_trials_is_flat_up_to_the_bounds() -> None:
    # kernels cut at 0 and 1 and rescaled estimate a flat density at ln 2 = 0.69 of its value on the
    # bound (a kernel there keeps its mass but only half of its neighbours reach it); reflected, flat
    for bins, h in ((50, 0.05), (50, 0.01), (20, 0.2)):
        n_fine = bins * SUBCELLS
        density = np.full(n_fine, 1.0 / n_fine) @ _kernels(h, bins) * bins
        assert density == pytest.approx(np.ones(bins), abs=1e-6), (bins, h)
        assert _kernels(h, bins).sum(axis=1) == pytest.approx(np.ones(n_fine))


def test_ped_anova_counts_an_integer_with_few_levels_by_its_levels() -> None:
    # f = layers + x / 10: the best 100 of 1,000 all have layers = 1, so if c trials have layers = 1 its
    # divergence is 1000 / c - 1 (about 3). Smoothed as a continuous value, the good trials' single level
    # was a spike far narrower than its level: ~10
    space = ts.Space({"x": ts.Float(0, 1), "layers": ts.Int(1, 4), "size": ts.Float(0, 1, step=0.25)})
    for seed in (0, 1, 2):
        trials = random_trials(space, lambda p: p["layers"] + p["x"] / 10, 1000, seed)
        c = sum(t.params["layers"] == 1 for t in trials)
        _, layers, size = ped_anova(design(trials, space), PedAnovaOptions(n_bootstrap=0), seed)[0]
        assert layers == pytest.approx(1000 / c - 1, rel=0.05)
        assert size < 0.05  # 5 levels, unused (it was ~0.5)


def test_only_complete_trials_count_and_the_rest_are_counted() -> None:
    trials = random_trials(SPACE, closed_form, 60, 0)
    extra = [
        FrozenTrial(60, TrialState.FAILED, trials[0].params, error="boom"),
        FrozenTrial(61, TrialState.PRUNED, trials[1].params, value=1e9),
        FrozenTrial(62, TrialState.RUNNING, trials[2].params),
        FrozenTrial(63, TrialState.COMPLETE, {"x": 0.5}, value=1e9),  # another space's trial
    ]
    imp = importance(trials + extra, SPACE, seed=0)
    assert imp.n_trials == 60
    assert imp.left_out == {"failed": 1, "pruned": 1, "running": 1, "outside the space": 1}
    assert imp.to_dict()["main"][0]["param"] == imp.main[0].names[0]
    with pytest.raises(ValueError, match="at least 10 complete trials, got 1"):
        importance(trials[:1] + extra, SPACE)
    with pytest.raises(ValueError, match="unknown importance method 'shap'"):
        importance(trials, SPACE, method="shap")
    with pytest.raises(ValueError, match=r"params \['y'\] are not free parameters"):
        importance(trials, SPACE, params=["y"])
    with pytest.raises(ValueError, match=r"params \['nois'\] are not free parameters of the space \(did you mean 'noise'\?\)"):
        importance(trials, SPACE, params=["x", "nois"])  # a misspelt name is named, as plot --params does
    with pytest.raises(TypeError, match="FanovaOptions"):
        importance(trials, SPACE, options=PedAnovaOptions())


def test_params_reports_the_named_parameters_shares_of_the_whole_not_of_a_model_of_them_alone() -> None:
    trials = random_trials(SPACE, closed_form, 300, 0)
    whole = importance(trials, SPACE, seed=0)
    alone = importance(trials, SPACE, params=["noise"], seed=0)  # was 1.0: a forest of noise alone fits noise
    assert alone.fractions == {"noise": whole["noise"]} and alone["noise"] < 0.02
    pair = importance(trials, SPACE, params=["x", "lr"], seed=0)
    assert pair.fractions == {"x": whole["x"], "lr": whole["lr"]}
    assert [e.names for e in pair.interactions] == [("x", "lr")]
    good = importance(trials, SPACE, method="ped-anova", params=["noise", "opt"], seed=0)
    assert good["noise"] < 0.05 < good["opt"]  # shares of all four, not of these two


def test_params_named_twice_empty_or_as_a_string_and_a_misspelt_lookup_say_what_to_write() -> None:
    trials = random_trials(SPACE, closed_form, 60, 0)
    once = importance(trials, SPACE, params=["x", "lr"], seed=0)
    twice = importance(trials, SPACE, params=["x", "lr", "x"], seed=0)
    assert twice.fractions == once.fractions  # one column for x, not two sharing its effect
    with pytest.raises(ValueError, match=r"params names no parameter; name at least one of \['x'"):
        importance(trials, SPACE, params=[])
    with pytest.raises(TypeError, match=r"write params=\['lr'\]"):
        importance(trials, SPACE, params="lr")
    with pytest.raises(KeyError, match=r"'l' was not measured \(did you mean 'lr'\?\)"):
        once["l"]
    assert importance(trials, SPACE, method="PED_ANOVA", seed=0).method == "ped-anova"
    with pytest.raises(ValueError, match=r"unknown importance method 'fanva' \(did you mean 'fanova'\?\)"):
        importance(trials, SPACE, method="fanva")


def test_the_design_encodes_as_the_space_does() -> None:
    space = ts.Space({
        "f": ts.Float(0.5, 8.0), "flog": ts.Float(1e-4, 1.0, log=True), "fstep": ts.Float(0.0, 1.0, step=0.25),
        "i": ts.Int(1, 9), "ilog": ts.Int(1, 1000, log=True), "istep": ts.Int(0, 20, step=5),
        "c": ts.Categorical(["a", 3, None]), "cond": ts.Float(0, 1, when={"c": ["a"]}),
    })
    trials = random_trials(space, lambda p: 0.0, 200, 3)
    d = design(trials, space, seed=0)
    want = space.encode_many([t.params for t in trials])
    active = ~np.isnan(want)
    assert np.allclose(d.X[active], want[active], atol=1e-12)
    assert 0.3 < d.columns[d.names.index("cond")].inactive < 0.9


def test_a_conditional_parameter_counts_where_it_is_active_and_its_parent_for_the_switch() -> None:
    space = ts.Space({
        "kernel": ts.Categorical(["linear", "rbf"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "gamma": ts.Float(1e-4, 1.0, log=True, when={"kernel": ["rbf"]}),
        "unused": ts.Float(0, 1, when={"kernel": ["linear"]}),
    })

    def f(p: dict) -> float:  # gamma matters when active; "unused" never does
        g = 0.0 if "gamma" not in p else (math.log10(p["gamma"]) + 2) ** 2
        return 0.5 * math.log10(p["C"]) + g

    trials = random_trials(space, f, 300, 0)
    imp = importance(trials, space, method="fanova", seed=0)
    assert imp["unused"] < 0.06, imp.fractions
    assert min(imp["gamma"], imp["C"]) > 2 * imp["unused"], imp.fractions
    # the best tenth is mostly linear kernels (g = 0) with small C: there gamma is off
    good = importance(trials, space, method="ped-anova", seed=0)
    assert good.main[0].names == ("C",) and max(good["unused"], good["gamma"]) < 0.06, good.fractions
    d = design(trials, space)
    gamma = d.columns[d.names.index("gamma")]
    assert 0.3 < gamma.inactive < 0.7
    assert np.all((d.X >= 0) & (d.X <= 1))  # inactive entries drawn from the parameter's own range


def test_a_conditional_parameter_active_in_no_trial_has_no_importance() -> None:
    """A branch no complete trial took (an optimizer the study never tried): its parameter's values
    were drawn at random, and fANOVA split the trials on them: momentum was the most important of
    five trials (0.72) and 0.41 of two, though the objective never depended on it (now both
    are refused: fewer than 10 complete trials)."""
    space = ts.Space({"opt": ts.Categorical(["sgd", "adam"]), "lr": ts.Float(1e-5, 1e-1, log=True),
                      "momentum": ts.Float(0, 1, when={"opt": ["sgd"]}), "n": ts.Int(1, 8)})
    rng = np.random.default_rng(0)
    trials = []
    for i in range(50):
        p = space.validate({"opt": "adam", "lr": float(10 ** rng.uniform(-5, -1)), "n": int(rng.integers(1, 9))})
        trials.append(FrozenTrial(i, TrialState.COMPLETE, p, value=(math.log10(p["lr"]) + 3) ** 2 + 0.1 * p["n"]))
    for n in (10, 50):
        imp = importance(trials[:n], space, seed=0)
        assert imp["momentum"] == 0.0 and imp.main[0].names != ("momentum",), (n, imp.fractions)
        assert all(e.fraction == 0.0 for e in imp.interactions if "momentum" in e.names), imp.interactions
    assert importance(trials, space, method="ped-anova", seed=0)["momentum"] == 0.0


def test_ped_anova_gives_a_choice_every_trial_took_no_divergence() -> None:
    """Every trial ran with adam (a study that never tried sgd): the good trials spread over the
    choices as all trials do. The good trials' shares were smoothed by one pseudo-trial among their
    5 and all trials' among 50, so adam's 1.0 became 0.92 against 0.99 and sgd's 0 became 0.08
    against 0.01: a divergence of 0.56 and a share of 0.20 for a parameter that never changed."""
    space = ts.Space({"x": ts.Float(0, 1), "opt": ts.Categorical(["sgd", "adam"]),
                      "act": ts.Categorical(["relu", "gelu", "tanh"])})
    rng = np.random.default_rng(0)
    for n in (50, 300):
        trials = [FrozenTrial(i, TrialState.COMPLETE, {"x": float(x), "opt": "adam", "act": "relu"}, value=float(x))
                  for i, x in enumerate(rng.random(n))]
        x, opt, act = ped_anova(design(trials, space), PedAnovaOptions(n_bootstrap=4), 0)[0]
        assert opt == pytest.approx(0.0, abs=1e-12) and act == pytest.approx(0.0, abs=1e-12), (n, opt, act)
        assert importance(trials, space, method="ped-anova", seed=0)["x"] == pytest.approx(1.0)


def test_parameters_of_two_branches_have_no_interaction_listed() -> None:
    """Ridge's alpha and SVR's C are never active together, so their interaction is zero by
    construction; fANOVA listed the noise of their randomly drawn inactive entries as one
    (a 30-trial TunedSearchCV study ranked "alpha x C" third of its interactions, at 0.05)."""
    space = ts.Space({
        "model": ts.Categorical(["ridge", "svr"]),
        "alpha": ts.Float(1e-3, 1e3, log=True, when={"model": ["ridge"]}),
        "C": ts.Float(1e-1, 1e3, log=True, when={"model": ["svr"]}),
        "gamma": ts.Float(1e-4, 1.0, log=True, when={"model": ["svr"]}),
        "x": ts.Float(0, 1),
    })

    def f(p: dict) -> float:
        if p["model"] == "ridge":
            return math.log10(p["alpha"]) ** 2 + p["x"]
        return (math.log10(p["C"]) - 1) * (math.log10(p["gamma"]) + 2) + p["x"]

    trials = random_trials(space, f, 30, 0)
    pairs = {frozenset(e.names) for e in importance(trials, space, method="fanova", seed=0).interactions}
    assert frozenset(("alpha", "C")) not in pairs and frozenset(("alpha", "gamma")) not in pairs
    assert {frozenset(("C", "gamma")), frozenset(("alpha", "x")), frozenset(("model", "alpha"))} <= pairs
    d = design(trials, space)
    assert d.apart == {(d.names.index("alpha"), d.names.index("C")), (d.names.index("alpha"), d.names.index("gamma"))}
    assert design(random_trials(SPACE, lambda p: 1.0, 10, 0), SPACE).apart == frozenset()


def test_a_constant_objective_has_no_important_parameter_and_says_why() -> None:
    from tunesmith.plots import importance_bars

    imp = importance(random_trials(SPACE, lambda p: 1.0, 30, 0), SPACE)
    assert all(e.fraction == 0.0 for e in imp.main)
    assert imp.note == "the value was 1 in all 30 complete trials: no parameter can explain a difference"
    bars = importance_bars(imp)  # not six bars of length 0 that read as "nothing matters"
    assert bars.empty and bars.message == imp.note
    flat = importance(random_trials(SPACE, lambda p: -2.5, 30, 0, sign=-1.0), SPACE, method="ped-anova",
                      direction="maximize")
    assert flat.note.startswith("the value was 2.5 in all 30")
    # PED-ANOVA's good set among ties was the first trials: it gave a parameter 1.0 beside that note
    assert all(e.fraction == 0.0 and e.std == 0.0 for e in flat.main), flat.main
    assert importance(random_trials(SPACE, closed_form, 30, 0), SPACE).note == ""


def test_ped_anova_says_why_when_no_parameter_sets_the_good_trials_apart() -> None:
    """Three good trials at both ends and the middle of every range (a maximized objective that is
    best at both ends of lr gave this): every divergence is 0, and the shares of 0 were reported with
    no note, read as "nothing matters"; the bars drew four bars of length 0."""
    from tunesmith.plots import importance_bars

    space = ts.Space({"x": ts.Float(0, 1), "z": ts.Float(0, 1), "c": ts.Categorical(["a", "b", "c"])})
    good = {0: 0.0, 15: 1.0, 29: 2.0}
    trials = [FrozenTrial(i, TrialState.COMPLETE, {"x": (i + 0.5) / 30, "z": ((7 * i) % 30 + 0.5) / 30, "c": "abc"[i % 3]},
                          value=good.get(i, 10.0 + i)) for i in range(30)]
    imp = importance(trials, space, method="ped-anova", seed=0)
    assert all(e.fraction == 0.0 for e in imp.main)
    assert imp.note == ("no parameter sets the best 3 of 30 complete trials apart: each is spread over them as over "
                        "all; run more trials, use fanova, or raise PedAnovaOptions.target_quantile")
    assert importance_bars(imp).message == imp.note
    assert importance(random_trials(SPACE, closed_form, 60, 0), SPACE, method="ped-anova").note == ""


def test_ped_anova_gives_a_parameter_that_never_changed_no_share_of_rounding() -> None:
    """A choice every trial took (act) and a branch no trial took (m) diverge by nothing, but their
    sums of shares came to 1 + 2e-16: with every other divergence 0 those were the whole, act got
    a share of 1.0 (m 0.67 with another seed) and the note was gone."""
    space = ts.Space({"x": ts.Float(0, 1), "z": ts.Float(0, 1), "act": ts.Categorical([f"k{i}" for i in range(7)]),
                      "opt": ts.Categorical(["sgd", "adam"]), "m": ts.Float(0, 1, when={"opt": ["sgd"]})})
    good = {0: 0.0, 15: 1.0, 29: 2.0}
    trials = [FrozenTrial(i, TrialState.COMPLETE, {"x": (i + 0.5) / 30, "z": ((7 * i) % 30 + 0.5) / 30, "act": "k1",
                                                   "opt": "adam"}, value=good.get(i, 10.0 + i)) for i in range(30)]
    for seed in range(4):
        imp = importance(trials, space, method="ped-anova", seed=seed)
        assert all(e.fraction == 0.0 for e in imp.main), (seed, imp.fractions)
        assert imp.note.startswith("no parameter sets the best 3 of 30 complete trials apart"), seed
    for n in (10, 30, 300):  # beside a parameter that matters: exactly nothing, at any number of trials
        trials = [FrozenTrial(i, TrialState.COMPLETE, {"x": float(x), "z": 0.5, "act": "k1", "opt": "adam"}, value=float(x))
                  for i, x in enumerate(np.random.default_rng(n).random(n))]
        assert importance(trials, space, method="ped-anova")["act"] == 0.0, n


def test_values_near_the_largest_float_raise_no_overflow_warning() -> None:
    """np.ptp of values of +-1.7e308 (to tell a constant objective) overflowed: a RuntimeWarning
    "overflow encountered in subtract" from NumPy for every importance of such a study."""
    import warnings

    trials = random_trials(SPACE, lambda p: 1.7e308 * math.tanh(closed_form(p)), 30, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("fanova", "ped-anova"):
            assert importance(trials, SPACE, method=method).note == ""


@pytest.mark.parametrize("scale", [1e200, 1e-300, -1e-250])
def test_fanova_fractions_do_not_depend_on_the_values_scale(scale: float) -> None:
    # near 1e200 the variance overflowed, near 1e-300 it fell below the constant-tree test: all 0
    trials = random_trials(SPACE, closed_form, 200, 0)
    scaled = [FrozenTrial(t.number, t.state, t.params, value=scale * float(t.value)) for t in trials]  # type: ignore[arg-type]
    base, other = importance(trials, SPACE, seed=0), importance(scaled, SPACE, seed=0)
    assert other.note == ""
    for name, fraction in base.fractions.items():
        assert other[name] == pytest.approx(fraction, abs=0.01), (name, other.fractions)


def test_options_are_checked_where_they_enter() -> None:
    with pytest.raises(ValueError, match="n_trees must be >= 2"):
        FanovaOptions(n_trees=1)
    with pytest.raises(ValueError, match="target_quantile < region_quantile"):
        PedAnovaOptions(target_quantile=0.5, region_quantile=0.3)
    # a prior of NaN gave every parameter 0 with no note, -n_good a ZeroDivisionError, a negative one
    # shares below 0; bins of 10^5 a kernel matrix of 8 * 10^10 numbers
    for prior in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match=rf"PedAnovaOptions.prior must be a finite number >= 0 .*, got {prior}"):
            PedAnovaOptions(prior=prior)
    with pytest.raises(ValueError, match=r"PedAnovaOptions.prior must be a finite number >= 0 .*, got 1000000"):
        PedAnovaOptions(prior=10**400)  # an OverflowError from math.isfinite
    with pytest.raises(ValueError, match="bins must be between 2 and 1000, got 100000"):
        PedAnovaOptions(bins=100_000)
    assert PedAnovaOptions(prior=0.0, bins=1000).prior == 0.0


def test_study_importance_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="imp", sampler="random", seed=0, direction="maximize")
    study.optimize(lambda t: -closed_form(t.params), n_trials=40)
    imp = study.importance("fanova", seed=1)
    assert imp.n_trials == 40 and set(imp.fractions) == set(SPACE.free)
    assert main(["importance", "imp", "--storage", url, "--json", "--method", "ped-anova"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "ped-anova" and {m["param"] for m in doc["main"]} == set(SPACE.free)
    assert main(["importance", "imp", "--storage", url]) == 0
    assert "x × lr" in capsys.readouterr().out
    assert main(["importance", "imp", "--storage", url, "--params", "x, opt", "--json"]) == 0  # as study.importance(params=)
    assert {m["param"] for m in json.loads(capsys.readouterr().out)["main"]} == {"x", "opt"}
    assert main(["importance", "imp", "--storage", url, "--params", "x,lx"]) == 2
    assert "params ['lx'] are not free parameters" in capsys.readouterr().err
    assert main(["importance", "nope", "--storage", url]) == 2


@pytest.mark.parametrize("method", ["fanova", "ped-anova"])
def test_both_methods_refuse_under_ten_complete_trials_in_every_face(
    method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fANOVA answered on 2 complete trials with fractions of the trees' arbitrary splits (bands of
    about +-0.5) where PED-ANOVA refused under 10: both refuse, naming how many more trials to run."""
    from tunesmith.report import build_report

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="few", sampler="random", seed=0)
    study.optimize(lambda t: closed_form(t.params), n_trials=9)
    said = "importance needs at least 10 complete trials, got 9; run at least 1 more"  # was "(left out: none)"
    with pytest.raises(ValueError, match=rf"^{re.escape(said)} \(study.optimize\(objective, n_trials=1\)"):
        study.importance(method)
    assert main(["importance", "few", "--storage", url, "--method", method]) == 2
    err = capsys.readouterr().err
    assert said in err and "tunesmith run STUDY.yaml --n-trials 1," in err  # before: Python's call alone
    assert said in build_report(ts.load_study("few", url), sections=["importance"])
    bars = ts.plots.importance_bars(study, method=method)
    assert bars.empty and said in (bars.message or "")
    study.tell(study.ask(), state="failed")
    study.tell(study.ask(), state="pruned")
    study.tell(study.ask(), state="pruned")  # was "(left out: {'failed': 1, 'pruned': 2})", a dict's repr
    with pytest.raises(ValueError, match=r"got 9 \(left out: 1 failed, 2 pruned\); run about 2 more, as 4 of the last 6 "
                       r"completed \(9 of 11 in all: the pruner stopped the others, and lets fewer complete as its "
                       r"rungs fill\) \(study.optimize\(objective, n_trials=2\)"):
        study.importance(method)
    study.optimize(lambda t: closed_form(t.params), n_trials=1)
    assert study.importance(method).n_trials == 10


def test_the_trials_to_run_for_importance_count_those_a_pruner_stops() -> None:
    """ASHA completed 2 of 24 trials: "run at least 8 more" gave about one more complete trial, not 8."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: closed_form(t.params), n_trials=2)
    for _ in range(22):
        study.tell(study.ask(), state="pruned")
    with pytest.raises(ValueError, match=r"got 2 \(left out: 22 pruned\); run more than 96 more, as 2 of 24 completed "
                                         r"and none of the last 12 \(the pruner stopped the others, and lets fewer"):
        study.importance()
    only_pruned = ts.Study(SPACE, sampler="random", seed=0)
    only_pruned.tell(only_pruned.ask(), state="pruned")
    with pytest.raises(ValueError, match=r"run at least 10 more complete ones \(the pruner stopped 1 trial and let none complete"):
        only_pruned.importance()


def test_importance_of_a_study_whose_every_trial_failed_names_the_error_to_fix_first(tmp_path: Path, capsys) -> None:
    """Every trial failed: "run at least 10 more" was all it said, though more trials would fail alike."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="broken", sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        raise FileNotFoundError(f"no data at /data/train.csv\x1b[2J (trial {trial.number})")

    study.optimize(objective, n_trials=3)
    said = (r"got 0 \(left out: 3 failed\); every one of the 3 finished trials failed \(the last, #2: FileNotFoundError: "
            r"no data at /data/train.csv\\x1b\[2J \(trial 2\).*\): fix what fails in the objective \(tunesmith show lists "
            r"each trial's error\), then run at least 10 more and ask again$")
    with pytest.raises(ValueError, match=said):
        study.importance()
    assert main(["importance", "broken", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "every one of the 3 finished trials failed" in err and "\x1b" not in err  # the ESC as its escape
    one = ts.Study(SPACE, sampler="random", seed=0)
    one.tell(one.ask(), state="failed")
    with pytest.raises(ValueError, match=r"the one finished trial failed \(the last, #0: marked failed by tell\(\)\)"):
        one.importance()
    one.optimize(lambda t: closed_form(t.params), n_trials=1)  # one complete: the rate advice as before
    with pytest.raises(ValueError, match=r"got 1 \(left out: 1 failed\); run at least 9 more \(study"):
        one.importance()


def test_the_trials_to_run_for_importance_follow_a_completion_rate_that_falls() -> None:
    """ASHA lets fewer trials complete as its rungs fill: at 2 of its first 20, "run at least 80 more" gave 3
    complete trials, not 8. The advice follows the later half of the trials where it completed fewer, and
    says it is an estimate and on what."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    for states in (["complete"] * 3 + ["pruned"] * 7, ["pruned"] * 6 + ["complete"] + ["pruned"] * 3):
        for state in states:
            trial = study.ask()
            if state == "complete":
                study.tell(trial, closed_form(trial.params))
            else:
                trial.report(1.0, 1)
                study.tell(trial, state=state)
    with pytest.raises(ValueError, match=r"got 4 \(left out: 16 pruned\); run about 60 more, as 1 of the last "
                                         r"10 completed \(4 of 20 in all: the pruner stopped the others, and "
                                         r"lets fewer complete as its rungs fill\) \(study.optimize\(objective, "
                                         r"n_trials=60\)"):
        study.importance()


def test_the_trials_to_run_for_importance_count_those_a_pausing_pruner_stops() -> None:
    """ASHA(pause=True) completed 8 of 33 trials (25 paused): "run at least 2 more" gave about half a
    complete trial, since the paused trials were not counted as stopped."""
    def objective(trial: ts.Trial) -> float:
        value = closed_form(trial.params)
        for step in range(max(trial.start_step, 1), 10):
            trial.report(value + 1 / step, step)
            if trial.should_prune():  # paused or pruned: the study knows which
                raise ts.TrialPruned()
        return value

    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(min_resource=1, reduction_factor=3, max_resource=9, pause=True))
    study.optimize(objective, n_trials=12)
    states = [t.state for t in study.trials]
    complete, paused = states.count(TrialState.COMPLETE), states.count(TrialState.PAUSED)
    assert 0 < complete < 10 and paused and states.count(TrialState.PRUNED) == 0
    with pytest.raises(ValueError, match=rf"more, as .*\b{complete} of {complete + paused} (completed|in all)\b.*"
                                         r"\(?the pruner paused the others"):
        study.importance()


def test_an_importance_prints_as_a_table() -> None:
    """``print(imp)`` gave the dataclass's one line: every Effect of 4 parameters and their 6 pairs."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: closed_form(t.params), n_trials=2)
    for _ in range(2):
        study.tell(study.ask(), state="pruned")
    study.optimize(lambda t: closed_form(t.params), n_trials=10)
    imp = study.importance()
    lines = str(imp).splitlines()
    assert lines[0] == "importance (fanova, 12 complete trials; left out: 2 pruned)"
    for e, line in zip([*imp.main, *imp.interactions[:5]], lines[1:-1], strict=True):
        label, numbers = line.strip().rsplit("  ", 1)
        assert (label.strip(), numbers) == (e.label, f"{e.fraction:.3f} ± {e.std:.3f}")
    assert len(imp.interactions) == 6 and lines[-1] == "  ... 1 more pair in .interactions"
    assert "Effect(" not in str(imp) and "Effect(" in repr(imp)


def test_the_command_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path,
                                                                       subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="imp", sampler="random", seed=0).optimize(
        lambda t: closed_form(t.params), n_trials=12)
    child = subprocess.Popen([sys.executable, "-m", "tunesmith", "importance", "imp", "--storage", url, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # as `| head -0`: every write the command makes meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141
    assert err == ""  # was "tunesmith importance: error: [Errno 32] Broken pipe"


def test_the_importance_package_is_pure() -> None:
    root = Path(ts.__file__).parent / "importance"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not {"study", "storage", "execution"} & set(node.module.split(".")), (path, node.module)


def test_a_study_of_thousands_of_parameters_gets_its_importance_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree of n trials splits on at most n - 1 of the columns; the others' effects are 0. Products
    over every column for every column (L * D^2 per tree) took 20 s for 1,000 parameters and 60
    trials, and a report of such a study spent most of its time there; now 1.2 s. Results unchanged.
    The columns multiplied are counted (timed by benchmarks/bench_history.py wide)."""
    import importlib

    module = importlib.import_module("tunesmith.importance.fanova")  # the package's ``fanova`` is the function
    widths: list[int] = []
    without = module._without

    def counted(m: np.ndarray, skip: tuple[int, ...]) -> np.ndarray:
        widths.append(m.shape[1])
        return without(m, skip)

    monkeypatch.setattr(module, "_without", counted)
    space = ts.Space({f"w{i}": ts.Float(0, 1) for i in range(2000)})
    trials = random_trials(space, lambda p: 3 * p["w7"] + p["w2"], 40, 0)
    imp = importance(trials, space, seed=0)
    assert imp.main[0].names == ("w7",)
    # each product over the columns a tree of 40 trials splits on (at most 39), for each of them;
    # before: over all 2,000 columns for each of the 2,000 (48 s on the shared 2-core machine)
    assert widths and max(widths) < 40, (max(widths), len(widths))


def test_many_parameters_compute_pairs_only_among_the_largest_main_effects() -> None:
    """A hyperparameter per weight (hypertune with l2="weight") gives studies of thousands of
    parameters: every pair, D * (D - 1) / 2 per tree, made study.importance() run for hours
    (2,368 parameters: none of 2.8 million pairs per tree was skipped). Above max_pair_params
    only the pairs among the largest main effects are computed."""
    names = [f"w{i}" for i in range(12)]
    space = ts.Space({n: ts.Float(0, 1) for n in names})
    trials = random_trials(space, lambda p: 3 * p["w7"] + p["w2"] * p["w7"] + 0.5 * p["w4"], 120, 0)
    full = importance(trials, space, options=FanovaOptions(n_trees=8))
    few = importance(trials, space, options=FanovaOptions(n_trees=8, max_pair_params=3))
    assert few.main == full.main  # main effects are untouched
    top3 = {e.names[0] for e in full.main[:3]}
    assert top3 == {"w7", "w2", "w4"}
    assert len(full.interactions) == 66 and len(few.interactions) == 3
    assert all(set(e.names) <= top3 for e in few.interactions)
    by_pair = {e.names: e for e in full.interactions}
    assert all(by_pair[e.names] == e for e in few.interactions)  # the same numbers, fewer pairs
    with pytest.raises(ValueError, match="max_pair_params must be an integer >= 2"):
        FanovaOptions(max_pair_params=1)


def test_the_design_asks_for_as_many_trials_as_importance_does() -> None:
    # design() defaulted to 2 complete trials while importance() asked for 10: one constant now
    from tunesmith.importance import MIN_TRIALS

    space = ts.Space({"x": ts.Float(0, 1)})
    with pytest.raises(ValueError, match=f"importance needs at least {MIN_TRIALS} complete trials, got 9"):
        design(random_trials(space, lambda p: p["x"], 9, 0), space)
    assert MIN_TRIALS == 10 and len(design(random_trials(space, lambda p: p["x"], 10, 0), space).y) == 10


def test_the_printed_table_aligns_wide_and_combining_names_by_the_columns_they_take() -> None:
    """Before: aligned by len(): a CJK name (two columns a character) pushed its numbers right, a name with
    a combining accent (a character taking no column) pulled them left."""
    from rich.cells import cell_len

    space = {"学习率": ts.Float(0, 1), "e\u0301ta": ts.Float(0, 1), "x": ts.Float(0, 1)}
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: 3 * t.params["学习率"] + t.params["e\u0301ta"] ** 2 + 0.1 * t.params["x"], n_trials=14)
    rows = str(study.importance()).splitlines()[1:]
    starts = {cell_len(row[:row.rindex("  ") + 2]) for row in rows if "±" in row}  # where the numbers begin
    assert len(starts) == 1, rows
    # a Hangul syllable written decomposed (its vowel takes no column of its own: 2 columns, not 3), a soft
    # hyphen (printed: 1 column, not 0) and a zero-width space (0) were counted otherwise than a terminal draws them
    space = {"\u1112\u1161\u11a8\u1109\u1173\u11b8": ts.Float(0, 1), "learn\u00adrate": ts.Float(0, 1),
             "zero\u200bwidth": ts.Float(0, 1), "x": ts.Float(0, 1)}
    study = ts.Study(space, sampler="random", seed=0)
    names = list(space)
    study.optimize(lambda t: 3 * t.params[names[0]] + t.params[names[1]] ** 2 + t.params[names[2]], n_trials=14)
    rows = str(study.importance()).splitlines()[1:]
    starts = {cell_len(row[:row.rindex("  ") + 2]) for row in rows if "±" in row}
    assert len(starts) == 1, rows


def test_columns_agrees_with_rich_on_every_assigned_character() -> None:
    """columns differed from rich (and the terminals it measures for) on spacing marks (U+093E: 1, drawn on its
    letter's column), the Hangul fillers (U+3164: 2, U+FFA0: 1), emoji skin tones (2, they join the emoji), the
    Arabic number signs (U+0600-U+0605: 0, printed) and the hexagrams (1, wide since Unicode 16). Every assigned
    printable character is checked, and names that mix them."""
    import unicodedata
    from importlib.metadata import version

    from rich.cells import cell_len

    from tunesmith.importance import columns

    if int(version("rich").split(".")[0]) < 15:  # older rich measures by older Unicode tables (the hexagrams: 1)
        pytest.skip(f"rich {version('rich')} measures by older tables; this compares with rich 15 or later")
    off = [hex(cp) for cp in range(0x20, 0x110000)
           if not (0x7F <= cp < 0xA0 or 0xD800 <= cp <= 0xDFFF) and unicodedata.category(chr(cp)) != "Cn"
           and columns(chr(cp)) != cell_len(chr(cp))]
    assert off == [], off[:20]
    for name in ("ह\u093e\u093f", "\u3164x\uffa0", "\U0001f44d\U0001f3fd ok", "\u0600\u0601 5", "\u4dc0\u2630 y"):
        assert columns(name) == cell_len(name), name


def test_a_search_whose_every_fit_failed_is_told_to_fix_the_fit_and_fit_a_new_search(tmp_path: Path) -> None:
    """A TunedSearchCV whose every fit failed was told to "fix what fails in the objective ..., then run at
    least 10 more": it has no objective, and the fixed estimator is refused as a resume of the same name."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tunesmith.sklearn import TunedSearchCV

    X, y = load_iris(return_X_y=True)
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = {"C": ts.Float(0.01, 10, log=True)}
    with pytest.raises(ValueError, match="configurations failed to fit"):
        TunedSearchCV(LogisticRegression(solver="nosuch"), space, n_trials=3, cv=3, storage=url, name="lr").fit(X, y)
    with pytest.raises(ValueError, match=r"every one of the 3 finished trials failed \(the last, #2: FitFailedError: .*"
                                         r"\): fix what fails in the estimator's fit \(tunesmith show lists each "
                                         r"trial's error\), then fit the search again with n_trials=10 or more under "
                                         r"another name= \(a stored search resumes only with the same estimator, data "
                                         r"and space\) and ask again$"):
        ts.load_study("lr", url).importance()
    fixed = LogisticRegression(max_iter=300)
    with pytest.raises(ValueError, match="searched with another estimator"):  # as the message says: refused
        TunedSearchCV(fixed, space, n_trials=13, cv=3, storage=url, name="lr").fit(X, y)
    search = TunedSearchCV(fixed, space, n_trials=10, cv=3, storage=url, name="lr-fixed").fit(X, y)
    assert search.study_.importance().n_trials == 10


def test_a_searchs_study_is_told_to_fit_the_search_again_not_to_optimize(tmp_path: Path) -> None:
    """A TunedSearchCV's study too few trials for importance was told "study.optimize(objective, n_trials=6),
    tunesmith run STUDY.yaml ...": it has no objective nor YAML; fitting the search again with a larger
    n_trials is what records more, and doing as the message says gives importance its trials."""
    from scipy.stats import loguniform
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from tunesmith.report import build_report
    from tunesmith.sklearn import TunedSearchCV

    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :4]
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(LogisticRegression(max_iter=200), {"C": loguniform(1e-3, 1e2), "tol": loguniform(1e-5, 1e-2)},
                           n_trials=4, cv=3, sampler="random", storage=url, name="lr", random_state=0).fit(X, y)
    advice = ("run at least 6 more (fit the search again with n_trials=10: search.set_params(n_trials=10).fit(X, y); "
              "with its storage= and name= it resumes")
    with pytest.raises(ValueError, match=re.escape(advice)) as caught:
        search.study_.importance()
    assert "study.optimize" not in str(caught.value)
    assert advice in build_report(ts.load_study("lr", url), sections=["importance"])
    search.set_params(n_trials=10).fit(X, y)
    assert search.study_.importance().n_trials == 10
    # a search without storage is told the same (its trials hold the folds' fit times, no setup)
    memory = TunedSearchCV(LogisticRegression(max_iter=200), {"C": loguniform(1e-3, 1e2)}, n_trials=3, cv=3,
                           sampler="random", random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=re.escape("run at least 7 more (fit the search again with n_trials=10:")):
        memory.study_.importance()
    # fold racing has no rungs: a falling rate is said as what a pruner on folds does
    for _ in range(9):
        memory.study_.tell(memory.study_.ask(), state="pruned")
    with pytest.raises(ValueError, match=r"none of the last 6 \(the pruner stopped the others, and lets fewer "
                                         r"complete as better configurations are found\) \(fit the search again"):
        memory.study_.importance()
    # a search that ran its whole finite space (n_trials=None, GridSearchCV's habit) has nothing more to run:
    # "search.n_trials + 2" was None + 2, and a larger n_trials is capped at the 8 configurations
    grid = TunedSearchCV(LogisticRegression(max_iter=200), {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]},
                         cv=3).fit(X, y)
    with pytest.raises(ValueError, match=r"got 8; the search evaluated each of the 8 configurations of its space: "
                                         r"give its parameters more values \(or distributions, with n_trials=...\), "
                                         r"fit it again and ask again"):
        grid.study_.importance()
