"""TunedSearchCV as a user migrating from scikit-learn's, skopt's and Optuna's searches meets it:
the same arguments give the same numbers, and what differs is said clearly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from tunesmith.sklearn import TunedSearchCV  # noqa: E402

X, Y = load_iris(return_X_y=True)
WEIGHTS = np.where(Y == 0, 5.0, 1.0)


def _by_param(results: dict, name: str, key: str) -> list[float]:
    order = np.argsort(np.asarray(results[f"param_{name}"], dtype=float))
    return list(np.asarray(results[key])[order])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sample_weight_weights_the_scores_as_grid_search_does() -> None:
    grid = {"C": [0.01, 1.0]}
    ours = TunedSearchCV(LogisticRegression(), grid, cv=3, return_train_score=True).fit(X, Y, sample_weight=WEIGHTS)
    theirs = GridSearchCV(LogisticRegression(), grid, cv=3, return_train_score=True).fit(X, Y, sample_weight=WEIGHTS)
    for key in ("mean_test_score", "split0_test_score", "mean_train_score"):
        np.testing.assert_allclose(_by_param(ours.cv_results_, "C", key), _by_param(theirs.cv_results_, "C", key))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_scorer_without_sample_weight_is_warned_about() -> None:
    def plain(est, X, y):  # noqa: N803
        return est.score(X, y)

    with pytest.warns(UserWarning, match="does not take sample_weight: its scores are unweighted"):
        TunedSearchCV(LogisticRegression(), {"C": [1.0]}, cv=3, scoring=plain).fit(X, Y, sample_weight=WEIGHTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        TunedSearchCV(LogisticRegression(max_iter=1000), {"C": [1.0]}, cv=3).fit(X, Y)  # no weights: no warning


def test_a_scoring_callable_returning_a_dict_is_refused_with_the_way_to_write_it() -> None:
    def both(est, X, y):  # noqa: N803 - scikit-learn's multimetric callable
        return {"acc": est.score(X, y), "one": 1.0}

    search = TunedSearchCV(LogisticRegression(max_iter=1000), {"C": [0.1, 1.0]}, cv=3, scoring=both)
    with pytest.raises(TypeError, match=r"returned a dict \['acc', 'one'\].*scoring=\{'name': scorer, \.\.\.\}"):
        search.fit(X, Y)
    with pytest.raises(ValueError, match=r"pass scoring=\{'acc': scorer, \.\.\.\} \(a scoring callable that returns a dict"):
        search.set_params(refit="acc").fit(X, Y)  # scikit-learn's way: refit names one of the dict's metrics


def test_optuna_and_skopt_spaces_become_the_matching_parameters() -> None:
    import tunesmith as ts
    from tunesmith.sklearn import as_search_space

    want = {"C": ts.Float(1e-3, 1e3, log=True), "n": ts.Int(1, 10), "k": ts.Categorical(["rbf", "poly"])}
    od = pytest.importorskip("optuna.distributions")
    optuna_space = {"C": od.FloatDistribution(1e-3, 1e3, log=True), "n": od.IntDistribution(1, 10),
                    "k": od.CategoricalDistribution(["rbf", "poly"])}
    assert dict(as_search_space(optuna_space).space.items()) == want
    assert as_search_space({"x": od.FloatDistribution(0, 1, step=0.25)}).space["x"] == ts.Float(0, 1, step=0.25)
    skopt_space = pytest.importorskip("skopt.space")
    dims = {"C": skopt_space.Real(1e-3, 1e3, prior="log-uniform"), "n": skopt_space.Integer(1, 10),
            "k": skopt_space.Categorical(["rbf", "poly"])}
    assert dict(as_search_space(dims).space.items()) == want
    shorthand = {"C": (1e-3, 1e3, "log-uniform"), "n": (1, 10, "uniform"), "k": ["rbf", "poly"]}
    assert dict(as_search_space(shorthand).space.items()) == want
    with pytest.warns(UserWarning, match=r"'C': the tuple \(0.1, 1.0\) is two choices, as in GridSearchCV \(skopt"):
        assert as_search_space({"C": (0.1, 1.0)}).space["C"] == ts.Categorical([0.1, 1.0])  # scikit-learn's reading
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_search_space({"C": [0.1, 1.0], "ngram_range": [(1, 1), (1, 2)]})  # lists: no warning
    words = as_search_space({"weights": ("distance", "x", "uniform")}).space["weights"]
    assert words == ts.Categorical(["distance", "x", "uniform"])  # not skopt's (low, high, prior)


def test_skopt_s_space_and_n_iter_pairs_say_how_to_write_them() -> None:
    """BayesSearchCV(search_spaces=[(space1, 8), (space2, 4)]) passed as the space was refused with "a list of
    spaces must hold only dicts", not a word of the n_iter each pair carries."""
    pairs = [({"C": (1e-2, 1e2, "log-uniform")}, 8), ({"tol": (1e-5, 1e-2, "log-uniform")}, 4)]
    with pytest.raises(TypeError, match=r"a list of \(space, n_iter\) pairs is skopt's BayesSearchCV's: pass the "
                                        r"list of the dicts, \[space for space, _ in pairs\], with n_trials= the sum"):
        TunedSearchCV(LogisticRegression(), pairs, n_trials=12).fit(X, Y)
    with pytest.raises(TypeError, match=r"a list of \(space, n_iter\) pairs is skopt's"):  # skopt mixes dicts and pairs
        TunedSearchCV(LogisticRegression(), [pairs[0][0], pairs[1]], n_trials=12).fit(X, Y)
    search = TunedSearchCV(LogisticRegression(), [space for space, _ in pairs], n_trials=3, cv=2).fit(X, Y)
    assert len(search.cv_results_["params"]) == 3


@pytest.mark.parametrize(("arg", "advice"), [
    ("n_iter", "write n_trials="), ("param_distributions", "pass the space as the second argument"),
    ("param_grid", "pass the space"), ("search_spaces", "pass the space"), ("pre_dispatch", "leave it out"),
    ("factor", "pass pruner='folds'"), ("catch", "pass error_score="), ("n_candidates", "write n_trials="), ("fit_params", r"pass them to fit: search.fit\(X, y, \*\*fit_params\)"),
])  # fmt: skip
def test_a_peers_argument_is_refused_with_what_to_write_instead(arg: str, advice: str) -> None:
    with pytest.raises(TypeError, match=rf"TunedSearchCV takes no {arg}= \(an argument of other searches\): {advice}"):
        TunedSearchCV(LogisticRegression(), **{arg: 30})


@pytest.mark.parametrize(("arg", "advice"), [
    ("seed", "write random_state="), ("direction", "leave it out: the search maximizes the score"),
    ("greater_is_better", r".*pass its negated scorer \(scoring='neg_log_loss'"), ("mode", "leave it out"),
    ("metric", "pass scoring="), ("show_progress", "pass verbose=1"), ("num_samples", "write n_trials="),
])  # fmt: skip
def test_a_study_s_argument_is_refused_with_what_to_write_instead(arg: str, advice: str) -> None:
    """seed=, direction=, show_progress= (ts.Study's and optimize's) and Ray Tune's metric=/mode=/num_samples= were
    "unexpected keyword argument" without a word of what TunedSearchCV calls them (num_samples: "did you mean
    sampler=?")."""
    with pytest.raises(TypeError, match=rf"TunedSearchCV takes no {arg}= \(an argument of ts.Study, optimize or Ray "
                                        rf"Tune\): {advice}"):
        TunedSearchCV(LogisticRegression(), {"C": [1.0]}, **{arg: 1})


def test_a_misspelt_argument_names_the_closest_one_and_clone_still_works() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_trial'; did you mean n_trials=\?"):
        TunedSearchCV(LogisticRegression(), {"C": [1.0]}, n_trial=3)
    from sklearn.base import clone

    search = TunedSearchCV(LogisticRegression(), {"C": [1.0]}, n_trials=1)
    assert clone(search).get_params()["n_trials"] == 1


def test_a_stored_search_is_not_resumed_with_another_estimator_scoring_or_space(tmp_path) -> None:
    from sklearn.base import clone
    from sklearn.svm import SVC

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0]}, cv=3, storage=url, name="svc").fit(X, Y)
    with pytest.raises(ValueError, match=r"searched with another estimator or scoring \(estimator: SVC -> Logistic"):
        clone(search).set_params(estimator=LogisticRegression()).fit(X, Y)
    with pytest.raises(ValueError, match=r"\(scoring: None -> f1_macro\)"):
        clone(search).set_params(scoring="f1_macro").fit(X, Y)
    with pytest.raises(ValueError, match=r"\(kernel: rbf -> linear\)"):
        clone(search).set_params(estimator=SVC(kernel="linear")).fit(X, Y)
    with pytest.raises(ValueError, match=r"searched over another space \(C: .* -> .*100.*\); .* give another name"):
        clone(search).set_params(space={"C": [0.1, 1.0, 100.0]}).fit(X, Y)
    # what the search sets, and how fast a fit runs, may change: the same search resumes
    resumed = clone(search).set_params(estimator=SVC(C=5.0, verbose=False)).fit(X, Y)
    assert len(resumed.cv_results_["params"]) == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_evaluate_best_refits_with_fit_params_and_seeds_and_names_the_estimators_parameters() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    train, test = np.arange(0, 150, 2), np.arange(1, 150, 2)
    search = TunedSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3).fit(X[train], Y[train])
    weighted = search.evaluate_best(X[train], Y[train], X[test], Y[test], k=1, sample_weight=WEIGHTS[train])
    by_hand = LogisticRegression(**weighted.winner.params).fit(X[train], Y[train], sample_weight=WEIGHTS[train])
    assert weighted.winner.mean == pytest.approx(by_hand.score(X[test], Y[test]))
    forest = TunedSearchCV(RandomForestClassifier(n_estimators=3), {"max_depth": [2, 4]}, cv=3).fit(X[train], Y[train])
    seeded = forest.evaluate_best(X[train], Y[train], X[test], Y[test], k=1, seeds=[0, 1, 2, 3])
    assert seeded.winner.seeds == (0, 1, 2, 3) and len(set(seeded.winner.values)) > 1
    with pytest.raises(ValueError, match="has no random_state the search does not set"):
        search.set_params(estimator=KNeighborsClassifier()).evaluate_best(X, Y, X, Y, seeds=[0])
    branches = TunedSearchCV(SVC(), [{"kernel": ["rbf"], "C": [1.0]}, {"kernel": ["linear"], "C": [0.1]}]).fit(X, Y)
    evaluation = branches.evaluate_best(X[train], Y[train], X[test], Y[test], k=2)
    assert sorted(r.params["kernel"] for r in evaluation.results) == ["linear", "rbf"]  # not 'branch', '0:C'
    assert "branch" not in str(evaluation) and "kernel=rbf, C=1" in str(evaluation)


def test_a_shifted_loguniform_is_refused_and_a_scaled_one_kept() -> None:
    from scipy.stats import loguniform

    import tunesmith as ts
    from tunesmith.sklearn import as_search_space

    assert as_search_space({"C": loguniform(1, 10, scale=10)}).space["C"] == ts.Float(10.0, 100.0, log=True)
    for shifted in (loguniform(1, 10, loc=-0.5), loguniform(1, 10, -0.5)):
        with pytest.raises(ValueError, match=r"'C': loguniform\(a, b, loc=...\) .* not log-uniform on \[0.5, 9.5\]"):
            as_search_space({"C": shifted})


def test_a_distribution_scipy_refuses_is_named_with_the_constant_to_write() -> None:
    """uniform(0.01, 0) (scale 0: a single point) and loguniform(a, a) have no support in scipy
    (NaN bounds): the message was 'low must be a finite number, got nan'."""
    from scipy.stats import loguniform, randint, uniform

    from tunesmith.sklearn import as_search_space

    for dist, shown in ((uniform(0.01, 0), r"uniform\(0.01, 0\)"), (loguniform(1e-3, 1e-3), r"loguniform\(0.001, 0.001\)"),
                        (randint(3, 3), r"randint\(3, 3\)"), (uniform(loc=0.01, scale=0), r"uniform\(loc=0.01, scale=0\)"),
                        (loguniform(0.1, b=0.1), r"loguniform\(0.1, b=0.1\)")):  # keywords were dropped: uniform()
        with pytest.raises(ValueError, match=rf"'C': scipy.stats.{shown} is not a valid distribution .*for a "
                                             r"constant write a list of one value, e.g. \[0.01\]"):
            as_search_space({"C": dist})


def test_randint_beyond_float_precision_keeps_its_exact_bounds() -> None:
    """randint(2**53 + 1, 2**53 + 6) became Int(2**53, 2**53 + 4): its bounds went through float()."""
    from scipy.stats import randint

    import tunesmith as ts
    from tunesmith.sklearn import as_search_space

    assert as_search_space({"n": randint(2**53 + 1, 2**53 + 6)}).space["n"] == ts.Int(2**53 + 1, 2**53 + 5)


@pytest.mark.parametrize("storage", [None, "sqlite"])
def test_an_unknown_sampler_or_pruner_is_named_not_a_missing_study(storage: str | None, tmp_path) -> None:
    url = None if storage is None else f"sqlite:///{tmp_path / 'search.db'}"
    for option in ({"sampler": "optuna"}, {"pruner": "hyperband2"}):
        search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, storage=url, name="s", **option)
        with pytest.raises(ValueError, match=str(next(iter(option.values())))):
            search.fit(X, Y)


def test_a_shuffling_splitter_without_random_state_is_named_when_a_resume_is_refused(tmp_path) -> None:
    from sklearn.model_selection import StratifiedKFold

    url = f"sqlite:///{tmp_path / 'search.db'}"
    model = LogisticRegression(max_iter=1000)
    TunedSearchCV(model, {"C": [0.1, 1.0]}, n_trials=1, cv=StratifiedKFold(3, shuffle=True), storage=url,
                  name="s").fit(X, Y)
    again = TunedSearchCV(model, {"C": [0.1, 1.0]}, cv=StratifiedKFold(3, shuffle=True), storage=url, name="s")
    with pytest.raises(ValueError, match=r"other data or folds \(StratifiedKFold\(shuffle=True\) without random_st"
                                         r"ate draws other folds at every fit: pass random_state=0"):
        again.fit(X, Y)
    seeded = {"cv": StratifiedKFold(3, shuffle=True, random_state=0), "storage": url, "name": "t"}
    TunedSearchCV(model, {"C": [0.1, 1.0]}, n_trials=1, **seeded).fit(X, Y)
    assert len(TunedSearchCV(model, {"C": [0.1, 1.0]}, **seeded).fit(X, Y).cv_results_["params"]) == 2  # resumed


def test_a_configuration_whose_parameters_cannot_be_set_fails_alone() -> None:
    from sklearn.decomposition import PCA
    from sklearn.exceptions import FitFailedWarning
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("r", PCA()), ("c", LogisticRegression(max_iter=1000))])
    space = {"r": ["passthrough", PCA()], "r__n_components": [1, 2]}  # 'passthrough' has no n_components
    with pytest.warns(FitFailedWarning, match="has no attribute 'set_params'"):
        search = TunedSearchCV(pipe, space, cv=3).fit(X, Y)
    rows = zip([str(p["r"]) for p in search.cv_results_["params"]], search.cv_results_["state"], strict=True)
    states = dict(rows)
    assert states == {"passthrough": "failed", "PCA()": "complete"} and search.best_params_["r__n_components"] == 2


def test_negative_n_jobs_count_as_in_joblib() -> None:
    import os

    from tunesmith.sklearn.search import _jobs

    cpus = os.cpu_count() or 1
    assert [_jobs(None), _jobs(1), _jobs(3), _jobs(-1)] == [1, 1, 3, cpus]
    assert _jobs(-2) == max(1, cpus - 1) and _jobs(-cpus - 5) == 1  # all but one; never fewer than one


def test_values_equal_across_types_stay_apart_as_in_grid_search() -> None:
    from sklearn.tree import DecisionTreeClassifier

    grid = {"max_features": [1, 1.0, "sqrt"], "min_samples_split": [2, 2.0]}  # 1 feature or all; 2.0 fails
    ours = TunedSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3).fit(X, Y)
    theirs = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3).fit(X, Y)

    def by_params(search: object) -> dict:
        results = search.cv_results_  # type: ignore[attr-defined]
        keys = [tuple((k, type(v).__name__, v) for k, v in p.items()) for p in results["params"]]
        return dict(zip(keys, results["mean_test_score"], strict=True))

    assert len(ours.cv_results_["params"]) == 6 and by_params(ours) == pytest.approx(by_params(theirs), nan_ok=True)


@pytest.mark.parametrize("grid", [{"C": [0.1, 1.0, 10.0]}, {"C": [10.0, 1.0, 0.1]}, [{"C": [10.0]}, {"C": [1.0]}],
                                  {"n_neighbors": np.arange(1, 12)}])
def test_a_tie_picks_what_grid_search_picks_whatever_order_the_grid_ran_in(grid: object) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    # C=1 and C=10 tie on iris (0.9733); so do n_neighbors 6, 7, 10 and 11 (0.98), given as NumPy integers
    model = KNeighborsClassifier() if "n_neighbors" in grid else LogisticRegression(max_iter=2000)
    theirs = GridSearchCV(model, grid).fit(X, Y)
    ours = [TunedSearchCV(model, grid, random_state=seed).fit(X, Y) for seed in range(4)]
    assert all(s.best_params_ == theirs.best_params_ and s.best_score_ == theirs.best_score_ for s in ours)


def test_an_estimator_or_splitter_class_or_a_metric_function_in_a_scoring_dict_is_refused() -> None:
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import KFold

    model = LogisticRegression(max_iter=1000)
    with pytest.raises(TypeError, match=r"estimator=LogisticRegression is the class; pass an instance: Logistic"):
        TunedSearchCV(LogisticRegression, {"C": [0.1, 1.0]}).fit(X, Y)
    with pytest.raises(TypeError, match=r"cv=KFold is the class; pass an instance, e.g. cv=KFold\(5\)"):
        TunedSearchCV(model, {"C": [0.1, 1.0]}, cv=KFold).fit(X, Y)
    scoring = {"acc": accuracy_score, "f1": "f1_macro"}  # GridSearchCV refuses this too
    with pytest.raises(ValueError, match="looks like it is a metric function rather than a scorer"):
        TunedSearchCV(model, {"C": [0.1, 1.0]}, scoring=scoring, refit="acc").fit(X, Y)


def test_a_grid_sampler_over_a_distribution_says_its_grid_is_smaller_than_n_trials() -> None:
    from scipy.stats import loguniform

    import tunesmith as ts

    model = LogisticRegression(max_iter=2000)
    with pytest.warns(UserWarning, match=r"grid of sampler='grid' .* has 5 configurations, fewer than n_trials=10"):
        search = TunedSearchCV(model, {"C": loguniform(1e-3, 1e3)}, n_trials=10, sampler="grid").fit(X, Y)
    assert len(search.cv_results_["params"]) == 5
    with pytest.warns(UserWarning, match="has 3 configurations, fewer than n_trials=4"):
        TunedSearchCV(model, {"C": ts.Float(1e-3, 1e3, log=True, grid=3)}, n_trials=4, sampler="grid").fit(X, Y)
    # n_trials=None is "the whole grid": it was refused as "this space is continuous" under sampler="grid" too
    search = TunedSearchCV(model, {"C": loguniform(1e-3, 1e3), "fit_intercept": [True, False]}, sampler="grid",
                           cv=3).fit(X, Y)
    assert sorted(search.cv_results_["param_C"].tolist()) == pytest.approx(sorted([1e-3, 3e-2, 1.0, 3e1, 1e3] * 2),
                                                                            rel=0.1)
    with pytest.raises(ValueError, match="n_trials=None searches the whole grid, but this space is continuous"):
        TunedSearchCV(model, {"C": loguniform(1e-3, 1e3)}, sampler="tpe").fit(X, Y)
    # a grid too large to run whole says how large, and why (its points per continuous parameter)
    many = {"C": loguniform(1e-3, 1e3), "tol": loguniform(1e-6, 1e-2), "intercept_scaling": loguniform(0.1, 10),
            "l1_ratio": ts.Float(0.0, 1.0), "max_iter": ts.Int(100, 2000), "warm_start": [True, False],
            "class_weight": [None, "balanced"], "fit_intercept": [True, False], "penalty": ["l2", None]}
    with pytest.raises(ValueError, match=r"continuous or huge \(the grid of sampler='grid' \(5 points on a continuous "
                                         r"parameter .*\) has 200,000 configurations\): pass n_trials="):
        TunedSearchCV(model, {**many, "dual": [False, True], "solver": ["lbfgs", "saga"]}, sampler="grid").fit(X, Y)


def test_a_misspelt_scorer_names_the_closest_and_refit_naming_an_unscored_metric_is_refused() -> None:
    model = LogisticRegression(max_iter=1000)
    for scoring in ("acuracy", ["acuracy", "f1_macro"], {"a": "acuracy"}):
        with pytest.raises(ValueError, match=r"'acuracy' is not a scikit-learn scorer name; did you mean 'accuracy'\?"):
            TunedSearchCV(model, {"C": [1.0]}, scoring=scoring, refit="a" if isinstance(scoring, dict) else True).fit(X, Y)
    with pytest.raises(ValueError, match=r"refit='f1_macro' names a scorer, but the search scores with one, scoring=None"):
        TunedSearchCV(model, {"C": [1.0]}, refit="f1_macro").fit(X, Y)
    same = TunedSearchCV(model, {"C": [1.0]}, scoring="f1_macro", refit="f1_macro").fit(X, Y)
    assert same.best_score_ == same.cv_results_["mean_test_score"][0]
    # a misspelt refit named the scorers, with no "did you mean" as a misspelt scorer has
    with pytest.raises(ValueError, match=r"refit='f1_macor' is not one of the scorers \['accuracy', 'f1_macro'\] "
                                         r"\(did you mean 'f1_macro'\?\)"):
        TunedSearchCV(model, {"C": [1.0]}, scoring=["accuracy", "f1_macro"], refit="f1_macor").fit(X, Y)


def test_a_ts_categorical_of_estimators_is_searched_as_the_list_of_them() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    import tunesmith as ts

    pipe = Pipeline([("c", SVC())])
    choices = [SVC(), LogisticRegression(max_iter=1000)]
    search = TunedSearchCV(pipe, {"c": ts.Categorical(choices)}, cv=3).fit(X, Y)
    assert sorted(type(p["c"]).__name__ for p in search.cv_results_["params"]) == ["LogisticRegression", "SVC"]
    with pytest.raises(TypeError, match=r"'c': a ts.Categorical holds plain values .* write a list"):
        TunedSearchCV(pipe, {"c": ts.Categorical(choices, prior=choices[0])}).fit(X, Y)
