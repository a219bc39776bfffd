"""TunedSearchCV: scikit-learn's own estimator checks, its keys and numbers, and what tunesmith adds."""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
import sklearn  # noqa: E402
from scipy.stats import loguniform, norm, randint, uniform  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_classification  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.sklearn import TunedSearchCV, as_search_space  # noqa: E402
from tunesmith.storage import MemoryStorage  # noqa: E402

X, Y = load_iris(return_X_y=True)

# the instances scikit-learn itself checks GridSearchCV with (error_score="raise" as there)
CHECKED = [
    TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, random_state=0, error_score="raise"),
    TunedSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=2, random_state=0, error_score="raise"),
    TunedSearchCV(Pipeline([("pca", PCA()), ("ridge", Ridge())]), {"ridge__alpha": [0.1, 1.0]}, cv=2,
                  random_state=0, error_score="raise"),
    TunedSearchCV(Pipeline([("pca", PCA()), ("lr", LogisticRegression())]), {"lr__C": [0.1, 1.0]}, cv=2,
                  random_state=0, error_score="raise"),
]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator: TunedSearchCV, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_dict_space_becomes_the_matching_parameters() -> None:
    s = as_search_space({"C": loguniform(1e-3, 1e3), "l1": uniform(0.2, 0.5), "n": randint(1, 5),
                         "kernel": ["rbf", "linear"], "fixed": [3]}).space
    assert s["C"] == ts.Float(1e-3, 1e3, log=True)
    assert s["l1"] == ts.Float(0.2, 0.7)
    assert s["n"] == ts.Int(1, 4)  # scipy's randint excludes its upper bound
    assert s["kernel"] == ts.Categorical(["rbf", "linear"])
    assert s["fixed"] == ts.Fixed(3)
    with pytest.raises(ValueError, match="norm has no tunesmith equivalent"):
        as_search_space({"x": norm(0, 1)})
    with pytest.raises(TypeError, match=r"for a constant write 'C': \[1.0\]"):
        as_search_space({"C": 1.0})
    assert as_search_space({"n": randint(2, 3)}).space["n"] == ts.Fixed(2)  # always 2, as scipy draws it
    with pytest.raises(TypeError, match=r"'C': \{.*\} is a set, which has no order; write a list: \[0.1, 1.0\]"):
        as_search_space({"C": {1.0, 0.1}})


def test_list_of_dicts_is_a_conditional_space_and_objects_round_trip() -> None:
    lr, svc = LogisticRegression(), SVC()
    search = as_search_space([{"clf": [lr], "clf__C": [1, 10]}, {"clf": [svc], "clf__gamma": loguniform(1e-3, 1)}])
    configs = search.space.grid({"1:clf__gamma": 2})
    decoded = [search.decode(c) for c in configs]
    assert {frozenset(d) for d in decoded} == {frozenset({"clf", "clf__C"}), frozenset({"clf", "clf__gamma"})}
    assert all((d["clf"] is lr) == ("clf__C" in d) for d in decoded)
    assert len(decoded) == 4


@pytest.mark.parametrize("sampler", ["auto", "random", "grid"])
def test_a_budget_that_covers_an_int_range_searches_each_of_its_values(sampler: str) -> None:
    search = TunedSearchCV(KNeighborsClassifier(), {"n_neighbors": ts.Int(1, 30)}, n_trials=None, cv=2,
                           sampler=sampler, random_state=0).fit(X, Y)
    # said "30 configurations" and ran the grid's default 5 points of the range
    assert sorted(p["n_neighbors"] for p in search.cv_results_["params"]) == list(range(1, 31))


@pytest.mark.parametrize("sampler", [{"name": "grid", "points": {"n_neighbors": [1, 5, 10]}},
                                     ts.GridSampler({"n_neighbors": [1, 5, 10]})], ids=["settings", "object"])
def test_a_grid_s_own_points_are_searched_where_the_budget_covers_the_space(sampler: object) -> None:
    search = TunedSearchCV(KNeighborsClassifier(), {"n_neighbors": ts.Int(1, 30)}, n_trials=None, cv=2,
                           sampler=sampler, random_state=0).fit(X, Y)
    # the grid given as settings was replaced by one of every value (before, of the default 5 points)
    assert sorted(p["n_neighbors"] for p in search.cv_results_["params"]) == [1, 5, 10]


def test_cv_results_match_grid_search_cv() -> None:
    grid = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}
    est = LogisticRegression(max_iter=500)
    ours = TunedSearchCV(est, grid, sampler="grid", cv=KFold(3, shuffle=True, random_state=0),
                         return_train_score=True).fit(X, Y)
    theirs = GridSearchCV(est, grid, cv=KFold(3, shuffle=True, random_state=0), return_train_score=True).fit(X, Y)
    assert set(theirs.cv_results_) <= set(ours.cv_results_)
    order = [ours.cv_results_["params"].index(p) for p in theirs.cv_results_["params"]]
    for key in ("mean_test_score", "std_test_score", "split2_test_score", "mean_train_score", "rank_test_score"):
        np.testing.assert_allclose(np.asarray(ours.cv_results_[key])[order], theirs.cv_results_[key])
    assert ours.best_params_ == theirs.best_params_ and ours.best_score_ == pytest.approx(theirs.best_score_)
    assert ours.n_splits_ == 3 and ours.refit_time_ > 0
    assert ours.score(X, Y) == pytest.approx(theirs.score(X, Y))
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))


def test_cv_results_keys_come_in_grid_search_cv_s_order_with_several_scorers_and_train_scores() -> None:
    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())])
    grid = {"scale__with_mean": [True, False], "lr__C": [0.1, 1.0]}  # not in sorted order
    kw = {"cv": 2, "scoring": {"acc": "accuracy", "f1": "f1_macro"}, "refit": "acc", "return_train_score": True}
    ours = TunedSearchCV(pipe, grid, **kw).fit(X, Y)
    theirs = GridSearchCV(pipe, grid, **kw).fit(X, Y)
    assert [k for k in ours.cv_results_ if k not in ("state", "trial_number")] == list(theirs.cv_results_)
    assert [list(p) for p in ours.cv_results_["params"]] == [list(p) for p in theirs.cv_results_["params"]]
    assert list(ours.best_params_) == list(theirs.best_params_) == ["lr__C", "scale__with_mean"]


def test_param_columns_have_the_dtypes_of_scikit_learns_searches() -> None:
    grid = [{"kernel": ["linear"], "C": [0.1, 1, 10]}, {"kernel": ["rbf"], "C": [1, 10], "gamma": [0.01, 0.1]},
            {"kernel": ["poly"], "degree": [2, 3], "shrinking": [True, False]}]
    ours = TunedSearchCV(SVC(), grid, cv=2).fit(X, Y).cv_results_
    theirs = GridSearchCV(SVC(), grid, cv=2).fit(X, Y).cv_results_
    for key in ("param_kernel", "param_C", "param_gamma", "param_degree", "param_shrinking"):
        assert isinstance(ours[key], np.ma.MaskedArray) and ours[key].dtype == theirs[key].dtype, key
    assert ours["param_C"].dtype == np.float64 and ours["param_kernel"].dtype == object
    order = [ours["params"].index(p) for p in theirs["params"]]
    np.testing.assert_array_equal(ours["param_gamma"].mask[order], theirs["param_gamma"].mask)
    mlp = TunedSearchCV(Ridge(), {"alpha": [0.5, 1.0], "solver": ["auto"]}, cv=2).fit(X, Y).cv_results_
    assert mlp["param_alpha"].dtype == np.float64 and mlp["param_solver"].dtype == object


def test_a_misspelt_parameter_is_refused_before_any_fit() -> None:
    with pytest.raises(ValueError, match=r"Invalid parameter 'CC'.*did you mean 'C'.*Valid parameters are"):
        TunedSearchCV(SVC(), {"CC": [1, 2]}, cv=2).fit(X, Y)
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    with pytest.raises(ValueError, match=r"Invalid parameter 'svc_C'.*did you mean 'svc__C'"):
        TunedSearchCV(pipe, {"svc_C": loguniform(1e-2, 1)}, n_trials=2, cv=2).fit(X, Y)
    # a parameter of an estimator the search itself sets is not the pipeline's own: accepted
    swap = [{"svc": [LogisticRegression(max_iter=500)], "svc__C": [1.0]}, {"svc__gamma": [0.1]}]
    assert TunedSearchCV(pipe, swap, cv=2).fit(X, Y).study_.trials[0].state.value == "complete"


@pytest.mark.parametrize(("space", "says"), [({}, "a space dict is empty"), ([], r"space=\[\] is empty"),
                                            ([{"C": [1.0]}, {}], "a space dict is empty"),
                                            ({"C": []}, "'C': the list of values is empty"),
                                            ((), r"space=\(\) is empty")])
def test_an_empty_space_is_refused_naming_what_is_empty(space: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):  # [] was a TypeError, as if a list were the wrong type
        TunedSearchCV(LogisticRegression(), space, cv=2).fit(X, Y)


class _Seen(LogisticRegression):
    """Records the rows (by their last column, a row id) of every fit."""

    rows: list[set[float]] = []

    def fit(self, X: np.ndarray, y: np.ndarray, **kw: object) -> _Seen:
        _Seen.rows.append(set(X[:, -1]))
        return super().fit(X, y, **kw)


def test_the_test_split_is_never_seen_by_the_search_nor_by_evaluate_best_s_refits() -> None:
    x = np.c_[X, np.arange(len(Y)) / 1000]  # a row id column (iris holds duplicate rows), small: no effect
    train, test = next(StratifiedKFold(4, shuffle=True, random_state=0).split(x, Y))
    _Seen.rows = []
    search = TunedSearchCV(_Seen(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(x[train], Y[train])
    search.evaluate_best(x[train], Y[train], x[test], Y[test], k=2)
    assert len(_Seen.rows) == 3 * 3 + 1 + 2  # the folds, the refit, the two refits of evaluate_best
    assert all(seen <= set(x[train, -1]) for seen in _Seen.rows)


def test_multimetric_refit_by_name_or_callable() -> None:
    space = {"C": loguniform(1e-3, 1e2)}
    by_name = TunedSearchCV(LogisticRegression(max_iter=500), space, n_trials=5, cv=3, random_state=0,
                            scoring={"acc": "accuracy", "f1": "f1_macro"}, refit="f1").fit(X, Y)
    assert by_name.multimetric_ and set(by_name.scorer_) == {"acc", "f1"}
    assert by_name.best_score_ == max(by_name.cv_results_["mean_test_f1"])
    assert by_name.study_.best_value == pytest.approx(by_name.best_score_)
    pick_last = TunedSearchCV(LogisticRegression(max_iter=500), space, n_trials=5, cv=3, random_state=0,
                              scoring=["accuracy", "f1_macro"], refit=lambda res: len(res["params"]) - 1).fit(X, Y)
    assert pick_last.best_index_ == 4 and not hasattr(pick_last, "best_score_")
    for bad, error in ((-1, IndexError), (5, IndexError), (1.5, TypeError), ("a", TypeError)):
        with pytest.raises(error, match="best_index_ .* refit returned"):
            TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, refit=lambda res, b=bad: b).fit(X, Y)
    for refit in (False, "acc"):  # several scorers, none named: no best, as GridSearchCV has none
        kw = {"cv": 2, "scoring": {"acc": "accuracy", "f1": "f1_macro"}, "refit": refit}
        ours = TunedSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, **kw).fit(X, Y)
        theirs = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, **kw).fit(X, Y)
        for attr in ("best_index_", "best_params_", "best_score_", "best_estimator_"):
            assert hasattr(ours, attr) == hasattr(theirs, attr), (refit, attr)
    with pytest.raises(ValueError, match="refit must name the one to optimize"):
        TunedSearchCV(LogisticRegression(), space, n_trials=2, scoring=["accuracy", "f1_macro"]).fit(X, Y)


def test_pipeline_clone_params_and_nested_cross_validation() -> None:
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    search = TunedSearchCV(pipe, {"svc__C": loguniform(1e-2, 1e2)}, n_trials=4, cv=3, random_state=0)
    assert clone(search).get_params()["estimator__svc__C"] == 1.0
    search.set_params(estimator__svc__kernel="linear", n_trials=3)
    assert search.get_params()["n_trials"] == 3
    nested = cross_validate(search, X, Y, cv=3, return_estimator=True)
    assert np.all(nested["test_score"] > 0.8)
    assert {len(e.cv_results_["params"]) for e in nested["estimator"]} == {3}
    assert all(e.best_estimator_.named_steps["svc"].kernel == "linear" for e in nested["estimator"])
    fitted = nested["estimator"][0]
    assert not hasattr(fitted, "transform") and fitted.predict(X[:3]).shape == (3,)  # an SVC does not transform
    assert hasattr(TunedSearchCV(PCA(), {"n_components": [1, 2]}, cv=2).fit(X), "transform")


def test_fold_level_pruning_stops_bad_configurations_after_their_first_folds() -> None:
    x, y = make_classification(300, 10, n_informative=4, random_state=0)
    space = {"C": loguniform(1e-6, 1e2)}
    pruned = TunedSearchCV(LogisticRegression(max_iter=200), space, n_trials=24, cv=5, random_state=0,
                           pruner={"name": "median", "n_startup_trials": 3}).fit(x, y)
    states = pruned.cv_results_["state"]
    assert "pruned" in set(states)
    for i in np.flatnonzero(states == "pruned"):
        reported = pruned.study_.trials[pruned.cv_results_["trial_number"][i]].intermediate
        assert len(reported) < 5 and np.isnan(pruned.cv_results_["split4_test_score"][i])
        assert pruned.cv_results_["rank_test_score"][i] > sum(states == "complete")
    assert pruned.cv_results_["state"][pruned.best_index_] == "complete"


def test_fold_racing_stops_what_is_behind_the_best_and_saves_half_the_fits() -> None:
    x, y = make_classification(300, 10, n_informative=4, random_state=0)
    space = {"C": loguniform(1e-4, 1.0)}  # above C=1 many configurations tie, and ties go on
    racing = TunedSearchCV(LogisticRegression(max_iter=200), space, n_trials=16, cv=5, random_state=0,
                           sampler="random", pruner="folds").fit(x, y)
    trials = racing.study_.trials
    assert sum(len(t.intermediate) for t in trials) <= 40  # the unpruned search fits 80
    for t in trials:
        if t.state is ts.TrialState.PRUNED:  # behind the best finished before it, on the same folds, or tied
            k = t.last_step  # fold by fold with a finished one from fold 2 on (the same predictions, most likely)
            done = [u for u in trials[: t.number] if u.state is ts.TrialState.COMPLETE]
            best = max(done, key=lambda u: u.value)
            tied = k >= 2 and any(all(u.intermediate[j] == t.intermediate[j] for j in range(1, k + 1)) for u in done)
            assert t.intermediate[k] < best.intermediate[k] or tied
    assert racing.cv_results_["state"][racing.best_index_] == "complete"


def test_fold_racing_keeps_auto_on_bayesian_optimization() -> None:
    # with fold racing most trials stop after a fold or two; TPE (what "auto" picks for
    # pruners that cut training short) counts only complete trials, so it stayed quasi-random
    x, y = make_classification(200, 6, random_state=0)
    search = TunedSearchCV(LogisticRegression(max_iter=200), {"C": loguniform(1e-4, 1.0)}, n_trials=3, cv=3,
                           random_state=0, pruner="folds").fit(x, y)
    assert search.study_.sampler.chosen.name == "bayes"  # type: ignore[attr-defined]
    assert ts.Study(ts.Space({"x": ts.Float(0, 1)}), pruner="asha").sampler.choose(
        ts.Space({"x": ts.Float(0, 1)}), 10).name == "tpe"  # type: ignore[attr-defined]


def test_parallel_folds_give_the_same_results() -> None:
    kw = dict(n_trials=3, cv=3, random_state=0, sampler="random")
    one = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_jobs=1, **kw).fit(X, Y)  # type: ignore[arg-type]
    two = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_jobs=2, **kw).fit(X, Y)  # type: ignore[arg-type]
    np.testing.assert_allclose(one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"])
    assert one.cv_results_["params"] == two.cv_results_["params"]


def test_a_fixed_dict_of_number_keys_reaches_the_estimator_as_given(tmp_path: Path) -> None:
    """``ts.Fixed({0: 1, 1: 5})``, a class_weight, is refused in a study's space (its keys would come
    back from JSON as text) with advice an estimator cannot take (string keys, a list of pairs); in
    memory it reached the estimator. The face searches it by position, as a list of it is, in any storage."""
    weights = {0: 1, 1: 5}
    for storage in (None, f"sqlite:///{tmp_path / 'cw.db'}"):
        space = {"C": [0.1, 1.0], "class_weight": ts.Fixed(weights)}
        search = TunedSearchCV(LogisticRegression(max_iter=500), space, n_trials=2, cv=2, random_state=0,
                               storage=storage, name="cw").fit(X, Y)
        assert [p["class_weight"] for p in search.cv_results_["params"]] == [weights] * 2
        assert search.best_estimator_.class_weight == weights
    with pytest.raises(ValueError, match="has the key 0, which is not a string"):  # positions would drop its condition
        as_search_space({"C": [0.1, 1.0], "class_weight": ts.Fixed(weights, when={"C": [1.0]})})


def test_a_nan_value_reaches_the_estimator_as_given_as_grid_search_cv_passes_it(tmp_path: Path) -> None:
    """``{"simpleimputer__missing_values": [np.nan]}`` (SimpleImputer's default) was refused: "fixed value
    nan is not equal to itself ... use None or the string 'nan'", advice an imputer cannot take (None and
    "nan" mean other values to it); with other values, "choice nan is not equal to itself". A value that
    holds NaN is searched by position, as an estimator is, in any storage."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    holes = X.copy()
    holes[::7, 0] = np.nan
    pipe = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
    for storage in (None, f"sqlite:///{tmp_path / 'nan.db'}"):
        for values in ([np.nan], [np.nan, float("nan")], [np.nan, 0.0]):
            space = {"simpleimputer__missing_values": values, "logisticregression__C": [0.1, 1.0]}
            search = TunedSearchCV(pipe, space, n_trials=2, cv=2, random_state=0, error_score=0.0, refit=False,
                                   storage=storage, name=f"nan{len(values)}{type(values[0]).__name__}").fit(holes, Y)
            given = [p["simpleimputer__missing_values"] for p in search.cv_results_["params"]]
            assert all(any(v is c for c in values) for v in given), given  # the objects themselves
    search = TunedSearchCV(pipe, {"simpleimputer__missing_values": [np.nan]}, n_trials=1, cv=2).fit(holes, Y)
    assert np.isnan(search.best_estimator_.steps[0][1].missing_values) and search.best_score_ > 0.5


def test_a_stored_search_resumes_by_name_and_survives_pickling(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kw = dict(cv=3, random_state=0, storage=url, name="svc")
    first = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=3, **kw).fit(X, Y)  # type: ignore[arg-type]
    again = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=5, **kw).fit(X, Y)  # type: ignore[arg-type]
    assert len(again.cv_results_["params"]) == 5
    assert again.cv_results_["params"][:3] == first.cv_results_["params"]
    restored = pickle.loads(pickle.dumps(again))
    assert len(restored.study_.trials) == 5
    np.testing.assert_array_equal(restored.predict(X), again.predict(X))


_WORKER = """
import sys, time
from pathlib import Path
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.svm import SVC
from tunesmith.sklearn import TunedSearchCV
X, Y = load_iris(return_X_y=True)
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=12, cv=3, random_state=0,
                       storage=sys.argv[1], name="shared")
search.fit(X, Y)
print(len(search.cv_results_["params"]))
"""


def test_workers_that_start_one_stored_search_at_once_run_n_trials_in_all(tmp_path: Path) -> None:
    # before: each worker counted only the trials finished when it started, so three workers
    # started at once on one stored search ran up to 3 x 12 trials (20 measured) for n_trials=12
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'search.db'}"
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(go)], stdout=subprocess.PIPE, text=True,
                                env=env) for _ in range(3)]
    go.touch()
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0]
    trials = ts.Study.load("shared", url).trials
    assert sum(t.state.is_finished for t in trials) == 12
    assert all(t.state.is_finished or t.state is ts.TrialState.WAITING for t in trials)
    assert all(int(out.split()[-1]) <= 12 for out in outs)  # each fit's cv_results_: the trials finished by its end


_OTHER_DATA_WORKER = """
import sys, time
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.svm import SVC
from tunesmith.sklearn import TunedSearchCV
X, Y = load_iris(return_X_y=True)
url, folder, rows, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for k in range(rounds):  # a fresh study each round, both fits started at once
    (folder / f"ready-{k}-{rows}").touch()
    while not (folder / f"go-{k}").exists():
        time.sleep(0.002)
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url,
                           name=f"shared-{k}")
    try:
        search.fit(X, Y) if rows == "all" else search.fit(X[:120], Y[:120])  # other data: the first 120 rows
        print(k, "fitted", flush=True)
    except ValueError as exc:
        print(k, "refused:", exc, flush=True)
"""


def _fits_started_at_once(script: str, url: str, folder: Path, sides: tuple[str, str], rounds: int,
                          env: dict[str, str]) -> list[list[str]]:
    """Run ``script`` in two processes (``url``, ``folder``, a side, ``rounds``), releasing both at once in each
    round; the words of every line they printed (``[round, "fitted" | "refused:", message]``)."""
    import subprocess
    import sys
    import time

    workers = [subprocess.Popen([sys.executable, "-c", script, url, str(folder), side, str(rounds)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for side in sides]
    for k in range(rounds):
        while not all((folder / f"ready-{k}-{side}").exists() for side in sides):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.002)
        (folder / f"go-{k}").touch()
    outs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outs]
    return [line.split(" ", 2) for out, _ in outs for line in out.splitlines()]


def test_fits_on_other_data_that_start_one_stored_search_at_once_one_is_refused(
    shared_storage_url: str, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # before: both read the study before either had recorded a trial (and its fingerprint), so both
    # passed the "same data" check and one study held the scores of two data sets (in 1 to 5 rounds of 6)
    rounds = 6
    lines = _fits_started_at_once(_OTHER_DATA_WORKER, shared_storage_url, tmp_path, ("all", "some"), rounds,
                                  subprocess_env)
    for k in range(rounds):
        said = sorted(rest for n, *rest in lines if n == str(k))
        assert [s[0] for s in said] == ["fitted", "refused:"], (k, said)
        assert "'shared-" in said[1][1] and "searched on other data or folds" in said[1][1]
        trials = ts.load_study(f"shared-{k}", shared_storage_url).trials
        assert [t.state for t in trials] == [ts.TrialState.COMPLETE] * 3  # the fitted one's three, intact
        assert len({t.attrs["search_data"] for t in trials if "search_data" in t.attrs}) == 1

_OTHER_REFIT_WORKER = """
import sys, time
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.svm import SVC
from tunesmith.sklearn import TunedSearchCV
X, Y = load_iris(return_X_y=True)
url, folder, refit, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])


class SlowSVC(SVC):  # a round's first trial recorded only after both fits started, however busy the machine
    first = True  # the round's first fold fit sleeps, the others do not (9 of them a round: the test's time)

    def fit(self, X, y, **kwargs):
        if SlowSVC.first:
            SlowSVC.first = False
            time.sleep(1.0)
        return super().fit(X, y, **kwargs)


for k in range(rounds):  # a fresh study each round, both fits started at once
    SlowSVC.first = True
    (folder / f"ready-{k}-{refit}").touch()
    while not (folder / f"go-{k}").exists():
        time.sleep(0.002)
    search = TunedSearchCV(SlowSVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url,
                           name=f"refit-{k}", scoring=["accuracy", "f1_macro"], refit=refit)
    try:
        search.fit(X, Y)
        print(k, "fitted", flush=True)
    except ValueError as exc:
        print(k, "refused:", exc, flush=True)
"""


def test_fits_with_another_refit_that_start_one_stored_search_at_once_one_is_refused(
    shared_storage_url: str, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Two fits on the same data and scorers but another ``refit`` started at once on an empty stored study: both
    passed the check of its trials (none recorded yet) and joined one claim (the same data), so the study held
    the values of two scorers ranked as one. The claim records refit's scorer: the second is refused with the
    message a later fit gets ("holds values of the scorer ..."), and the study holds one scorer's values."""
    rounds = 3
    lines = _fits_started_at_once(_OTHER_REFIT_WORKER, shared_storage_url, tmp_path, ("accuracy", "f1_macro"),
                                  rounds, subprocess_env)
    for k in range(rounds):
        said = sorted(rest for n, *rest in lines if n == str(k))
        assert [s[0] for s in said] == ["fitted", "refused:"], (k, said)
        trials = ts.load_study(f"refit-{k}", shared_storage_url).trials
        (key,) = {t.attrs["cv"]["key"] for t in trials}
        kept = key.removeprefix("test_")
        assert f"study 'refit-{k}'" in said[1][1] and f"holds values of the scorer {kept!r}" in said[1][1], said
        assert f"Pass refit={kept!r} to resume it" in said[1][1], said
        assert [t.state for t in trials] == [ts.TrialState.COMPLETE] * 3  # the fitted one's three, intact


def test_a_fit_that_recorded_no_trial_leaves_the_study_to_a_fit_on_other_data(tmp_path: Path,
                                                                              subprocess_env: dict[str, str]) -> None:
    """The first fit claims the study for its data; one that recorded no trial gives it up (its
    timeout passed first), and so does one whose process is gone."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X[:120], Y[:120])
    assert "search_claim" not in ts.load_study("svc", url).storage.get_study("svc").config
    claim = ("import tunesmith as ts; from tunesmith.storage.base import worker_id; "
             "from tunesmith.study.manage import change_setting; "
             f"change_setting(ts.load_study('svc', {url!r}), 'search_claim', lambda stored: stored or "
             "{'search_data': 'other', 'worker': worker_id()})")  # as a fit killed before its first trial leaves it
    subprocess.run([sys.executable, "-c", claim], check=True, env=subprocess_env)
    assert ts.load_study("svc", url).storage.get_study("svc").config["search_claim"]["search_data"] == "other"
    assert len(clone(search).fit(X, Y).cv_results_["params"]) == 3
    with pytest.raises(ValueError, match="searched on other data or folds"):
        clone(search).fit(X[:120], Y[:120])



_SAME_DATA_FIT = """
import os, sys, time
from sklearn.datasets import load_iris
from sklearn.svm import SVC
from tunesmith.samplers import RandomSampler
import tunesmith as ts
from tunesmith.sklearn import TunedSearchCV
X, Y = load_iris(return_X_y=True)
url, joined, go = sys.argv[1:4]

class Waits(RandomSampler):  # its first trial waits until the test lets it go
    def suggest(self, *args, **kwargs):
        open(joined, "w").close()
        while not os.path.exists(go):
            time.sleep(0.02)
        return super().suggest(*args, **kwargs)

search = TunedSearchCV(SVC(), {"C": ts.Float(0.1, 10, log=True)}, n_trials=3, cv=3, random_state=0, storage=url,
                       name="svc", sampler=Waits(0))
print(len(search.fit(X, Y).cv_results_["params"]))
"""


class _GaveUp(Exception):
    pass


def test_a_fit_that_records_nothing_keeps_the_claim_a_fit_on_the_same_data_relies_on(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Fit A claims the study; fit B, on the same data, finds the claim and starts; A gives up before its
    first trial (interrupted, its timeout). A gave its claim up though B relied on it, and a fit C on
    other data, started before B recorded a trial, ran on the same study."""
    import subprocess
    import sys
    import time

    from tunesmith.samplers import RandomSampler

    url = f"sqlite:///{tmp_path / 'search.db'}"
    joined, go = tmp_path / "joined", tmp_path / "go"
    search = TunedSearchCV(SVC(), {"C": ts.Float(0.1, 10, log=True)}, n_trials=3, cv=3, random_state=0, storage=url,
                           name="svc", sampler="random")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    fits: list[subprocess.Popen[str]] = []

    class StartsBThenGivesUp(RandomSampler):
        def suggest(self, *args: object, **kwargs: object) -> object:
            fits.append(subprocess.Popen([sys.executable, "-c", _SAME_DATA_FIT, url, str(joined), str(go)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env))
            deadline = time.monotonic() + 120
            while not joined.exists():  # B holds the claim too, and asks for its first trial
                assert fits[0].poll() is None and time.monotonic() < deadline, fits[0].communicate()
                time.sleep(0.02)
            raise _GaveUp

    try:
        with pytest.raises(_GaveUp):
            clone(search).set_params(sampler=StartsBThenGivesUp(0)).fit(X, Y)
        claim = ts.load_study("svc", url).storage.get_study("svc").config.get("search_claim")
        assert claim is not None and [h.partition("#")[0].rpartition(":")[2] for h in claim["holders"]] == [
            str(fits[0].pid)]
        with pytest.raises(ValueError, match="searched on other data or folds"):
            clone(search).fit(X[:120], Y[:120])  # before: it ran, and the study held two data sets' scores
    finally:
        go.touch()
        out, err = fits[0].communicate(timeout=300) if fits else ("", "")
    assert fits[0].returncode == 0 and out.split() == ["3"], err
    trials = ts.load_study("svc", url).trials
    assert len(trials) == 3 and len({t.attrs["search_data"] for t in trials if "search_data" in t.attrs}) == 1


def test_a_fit_in_another_thread_that_records_nothing_keeps_the_claim_of_a_fit_on_the_same_data(
        tmp_path: Path) -> None:
    """Fits A and B on the same data in threads of one process; A gives up before its first trial. Before,
    both held the claim as one holder (``host:pid``): A took it away from B, and a fit on other data,
    started before B recorded a trial, ran on the same study."""
    import threading

    from tunesmith.samplers import RandomSampler

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": ts.Float(0.1, 10, log=True)}, n_trials=3, cv=3, random_state=0, storage=url,
                           name="svc", sampler="random")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    joined, go = threading.Event(), threading.Event()
    done: list[object] = []

    class Waits(RandomSampler):  # B's first trial waits until the test lets it go
        def suggest(self, *args: object, **kwargs: object) -> object:
            joined.set()
            assert go.wait(120)
            return super().suggest(*args, **kwargs)

    def fit_b() -> None:
        done.append(len(clone(search).set_params(sampler=Waits(0)).fit(X, Y).cv_results_["params"]))

    b = threading.Thread(target=fit_b)

    class StartsBThenGivesUp(RandomSampler):
        def suggest(self, *args: object, **kwargs: object) -> object:
            b.start()
            assert joined.wait(120)  # B holds the claim too, and asks for its first trial
            raise _GaveUp

    try:
        with pytest.raises(_GaveUp):
            clone(search).set_params(sampler=StartsBThenGivesUp(0)).fit(X, Y)
        claim = ts.load_study("svc", url).storage.get_study("svc").config.get("search_claim")
        assert claim is not None and len(claim["holders"]) == 1, claim  # B's
        with pytest.raises(ValueError, match="searched on other data or folds"):
            clone(search).fit(X[:120], Y[:120])  # before: it ran, and the study held two data sets' scores
    finally:
        go.set()
        b.join(300)
    assert done == [3]
    trials = ts.load_study("svc", url).trials
    assert len(trials) == 3 and len({t.attrs["search_data"] for t in trials if "search_data" in t.attrs}) == 1


def test_a_claim_of_a_fit_that_died_on_another_machine_is_taken_once_old(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A fit on another machine that died before its first trial left its claim, and the empty study was
    bound to that fit's data for good (its process cannot be looked up from here)."""

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    study = ts.load_study("svc", url)
    young = study.storage.clock() - 60  # a minute ago: its fit may still be starting
    _plant_claim(study, {"search_data": "other", "worker": "elsewhere:1", "since": young})
    with pytest.raises(ValueError, match="searched on other data or folds"):  # alive, as far as can be told
        clone(search).fit(X, Y)
    old = study.storage.clock() - 2 * 86400  # two days ago, and still no trial
    _plant_claim(study, {"search_data": "other", "worker": "elsewhere:1", "since": old}, over=True)
    with caplog.at_level("WARNING", logger="tunesmith"):
        assert len(clone(search).fit(X, Y).cv_results_["params"]) == 3
    assert re.search(r"the search claim of elsewhere:1 \(made \d+ s ago, no trial recorded since: its fit died "
                     r"before its first trial\) is taken over by this fit", caplog.text), caplog.text


def test_a_claim_changed_by_hand_is_read_not_crashed_on(tmp_path: Path) -> None:
    # before: a claim whose worker is not "host:pid" text stopped every fit with
    # AttributeError: 'int' object has no attribute 'rpartition'

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    _plant_claim(ts.load_study("svc", url), {"search_data": "other", "worker": 12345})
    with pytest.raises(ValueError, match="searched on other data or folds"):  # whose it is cannot be told: kept
        clone(search).fit(X, Y)
    assert ts.load_study("svc", url).trials == []


def test_a_study_set_aside_while_a_fit_claims_it_is_said_so(tmp_path: Path) -> None:
    """A study renamed and made anew between two tries of a fit's claim (another writer changed its settings
    first): nothing is written, and the fit was refused as if another program had written no mapping as the
    claim ("its search claim ... is NoneType data ..., run ... DROP"), advice that fits no study. Said as it is."""
    from tunesmith.storage import make_storage

    url = f"sqlite:///{tmp_path / 'search.db'}"
    plain = make_storage(url)
    moved: list[int] = []

    class SetAside(type(plain)):  # type: ignore[misc]  # the real storage; another writer acts in the claim's write
        def set_study_config(self, study_id: int, config: dict, *, expect: dict | None = None) -> bool | None:
            if "search_claim" in config and not moved:
                moved.append(study_id)
                plain.set_study_config(study_id, {**plain.get_study("svc").config, "other": 1})
                plain.rename_study("svc", "svc-before")
                ts.Study({"C": ts.Float(0.1, 10, log=True)}, storage=plain, name="svc")
            return super().set_study_config(study_id, config, expect=expect)

    storage = SetAside(url)
    search = TunedSearchCV(SVC(), {"C": ts.Float(0.1, 10, log=True)}, n_trials=2, cv=3, random_state=0,
                           storage=storage, name="svc")
    try:
        with pytest.raises(ValueError, match=r"study 'svc' in .* was renamed or deleted .* while this fit claimed "
                                             r"it.* fit again"):
            search.fit(X, Y)
        assert moved
        assert "search_claim" not in plain.get_study("svc").config  # the study made anew holds no claim
    finally:
        storage.close()
        plain.close()


def test_a_fit_refused_by_a_claim_leaves_the_study_as_it_was(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # before: the claim was read only after the fit had opened the study, which recorded this fit's
    # sampler as the one in use ("sampler tpe recorded (was 'random')") though it then was refused

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": ts.Float(0.1, 10, log=True)}, n_trials=3, cv=3, random_state=0,
                           storage=url, name="svc", sampler="random")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    _plant_claim(ts.load_study("svc", url), {"search_data": "other", "worker": "elsewhere:1"})
    before = ts.load_study("svc", url).storage.get_study("svc").config  # a live fit's, on another machine
    with caplog.at_level("INFO", logger="tunesmith"), pytest.raises(ValueError, match="searched on other data"):
        clone(search).set_params(sampler="tpe").fit(X, Y)
    assert ts.load_study("svc", url).storage.get_study("svc").config == before
    assert "recorded" not in caplog.text

def test_a_trial_left_running_by_a_killed_fit_does_not_hold_the_budget(tmp_path: Path) -> None:
    # before: the trial a killed fit left running counted toward n_trials for ever: each fit after it
    # put its last trial back in the queue and stopped one short (3 of n_trials=4, every time)
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    subprocess.run([sys.executable, "-c", f"import tunesmith as ts; ts.load_study('svc', {url!r}).ask()"],
                   check=True)  # a fit killed in its trial: left running by a process that is gone
    assert [t.state for t in ts.load_study("svc", url).trials][-1] is ts.TrialState.RUNNING
    assert len(clone(search).set_params(n_trials=4).fit(X, Y).cv_results_["params"]) == 4
    assert len(clone(search).set_params(n_trials=5).fit(X, Y).cv_results_["params"]) == 5



@pytest.mark.parametrize("pid", ["2147483648", "9" * 30, "0", "9" * 5000])
def test_a_running_trial_of_a_pid_past_the_system_s_is_taken_as_gone(tmp_path: Path, pid: str) -> None:
    """A running trial whose worker names this machine and a pid no process can have (another writer
    of the database; the host is in every row's worker): the probe of that pid raised OverflowError
    ('signed integer is greater than maximum'), which ended every later fit of the stored search; pid 0
    probed this process's group, so that trial held the budget for good. A pid of 5,000 digits (SQLite
    keeps a longer worker than the column's 256) ended it in int()'s 'Exceeds the limit (4300 digits)'."""
    import socket
    import sqlite3

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    with sqlite3.connect(tmp_path / "search.db") as db:
        db.execute("UPDATE ts_trials SET state = 'running', value = NULL, completed = NULL, worker = ? "
                   "WHERE number = 1", (f"{socket.gethostname()}:{pid}",))
    assert len(clone(search).set_params(n_trials=3).fit(X, Y).cv_results_["params"]) == 3


def test_a_search_claim_of_a_pid_of_thousands_of_digits_is_taken_as_gone(tmp_path: Path) -> None:
    """The search claim is read from the study's settings, which anyone who may write the database
    may change: a claim whose worker names this machine and a pid of 5,000 digits ended every fit of
    the stored search in int()'s bare 'Exceeds the limit (4300 digits)'. Such a claim is a gone
    fit's (no process has that pid), which a fit over the empty study takes over."""
    import json
    import socket
    import sqlite3

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    with sqlite3.connect(tmp_path / "search.db") as db:
        config = json.loads(db.execute("SELECT config FROM ts_studies").fetchone()[0])
        config["search_claim"]["worker"] = f"{socket.gethostname()}:{'9' * 5000}"
        db.execute("UPDATE ts_studies SET config = ?", (json.dumps(config),))
        db.execute("DELETE FROM ts_trials")
    assert len(clone(search).fit(X, Y).cv_results_["params"]) == 2


def _taken_over_claim(tmp_path: Path, caplog: pytest.LogCaptureFixture, claim: Callable[[float], object]) -> str:
    """What a fit over an empty stored search says once another writer stored ``claim`` (a function of the
    storage's clock: its value) as its search claim; the fit must run."""
    import json
    import sqlite3

    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=2, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    now = ts.load_study("svc", url).storage.clock()
    with sqlite3.connect(tmp_path / "search.db") as db:
        config = json.loads(db.execute("SELECT config FROM ts_studies").fetchone()[0])
        config["search_claim"] = claim(now)
        db.execute("UPDATE ts_studies SET config = ?", (json.dumps(config),))
    with caplog.at_level("WARNING", logger="tunesmith"):
        assert len(clone(search).fit(X, Y).cv_results_["params"]) == 2
    return caplog.text


@pytest.mark.parametrize("since", [10**400, math.nan, math.inf, "1", "two days ahead"])
def test_a_claim_whose_time_is_no_clock_s_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         since: object) -> None:
    """The search claim's time is read from the study's settings, which anyone who may write the
    database may change: a time of 400 digits ended every fit of the stored search in float()'s
    OverflowError ('int too large to convert to float'); NaN, infinity or a time two days ahead never
    grew an hour old (nor did text), so a claim of another machine's fit bound the empty study to other
    data for good."""
    said = _taken_over_claim(tmp_path, caplog, lambda now: {
        "search_data": "other", "worker": "elsewhere:1", "since": now + 2 * 86400 if since == "two days ahead" else since})
    assert "the search claim of elsewhere:1 (made at no readable time, no trial recorded since" in said


@pytest.mark.parametrize("claim", ["other", [1, 2]])
def test_a_claim_that_names_no_fit_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 claim: object) -> None:
    """A search claim that another writer replaced by text or a list names no fit that could ever give
    it up: each fit of the empty study was refused for good ('searched on other data or folds')."""
    said = _taken_over_claim(tmp_path, caplog, lambda now: claim)
    assert "the search claim that names no fit (no trial recorded since" in said


@pytest.mark.parametrize("claim", [[1, 2], 7, "other"])
def test_a_claim_that_is_no_mapping_over_a_study_with_trials_says_what_is_wrong_and_how_to_clear_it(
        tmp_path: Path, claim: object) -> None:
    """Over a study that holds trials, a search claim another writer replaced by a list, a number or text
    refused every fit as "searched on other data or folds", which it was not; the message now names the
    claim, and following it lets the search resume on its data."""
    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    _plant_claim(ts.load_study("svc", url), claim, over=True)
    with pytest.raises(ValueError) as refused:
        clone(search).set_params(n_trials=3).fit(X, Y)
    said = str(refused.value)
    assert "other data" not in said and f"search claim (the study setting 'search_claim') is {type(claim).__name__} " \
        "data, not the mapping TunedSearchCV stores" in said and "lambda stored: DROP)` and fit again" in said, said
    advice = re.search(r"run `([^`]+)`", said)
    assert advice, said
    # the code as the message gives it, pasted into a new Python (it named ts and NAME, which none defines)
    subprocess.run([sys.executable, "-c", advice[1]], check=True, timeout=120)
    assert len(clone(search).set_params(n_trials=3).fit(X, Y).cv_results_["params"]) == 3


_RACING_FIT = """
import os, sys, time
from sklearn.datasets import load_iris
from sklearn.svm import SVC
from tunesmith.sklearn import TunedSearchCV
X, Y = load_iris(return_X_y=True)
url, rows, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=2, cv=3, random_state=0, storage=url, name="svc")
while not os.path.exists(go):
    time.sleep(0.005)
try:
    print(len(search.fit(X[:rows], Y[:rows]).cv_results_["params"]))
except ValueError as exc:
    print("refused" if "searched on other data" in str(exc) else exc)
"""


def test_two_fits_on_other_data_racing_for_a_stale_claim_take_it_once(
        shared_storage_url: str, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A claim left by a gone fit over an empty study: two fits on other data find it stale at once. The
    compare-and-set gives it to one; the other reads the winner's claim, alive, and is refused."""
    import subprocess
    import sys


    url, go = shared_storage_url, tmp_path / "go"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=2, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    _plant_claim(ts.load_study("svc", url), {"search_data": "gone", "worker": "elsewhere:1",
                                                               "since": 0.0})  # two days old: stale
    fits = [subprocess.Popen([sys.executable, "-c", _RACING_FIT, url, str(rows), str(go)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=subprocess_env) for rows in (150, 120)]
    go.touch()
    said = sorted(f.communicate(timeout=300)[0].strip() for f in fits)
    assert said == ["2", "refused"], said
    trials = ts.load_study("svc", url).trials
    assert len(trials) == 2 and len({t.attrs["search_data"] for t in trials if "search_data" in t.attrs}) == 1


def test_a_claim_of_many_fits_is_named_by_a_few(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A claim that another writer gave 100,000 gone fits was named whole in the warning of the fit that
    took it over: a line of 1.3 MB."""
    import socket

    said = _taken_over_claim(tmp_path, caplog, lambda now: {
        "search_data": "other", "holders": [f"{socket.gethostname()}:0"] * 100_000})
    assert "and 99995 more (no trial recorded since" in said and len(said) < 2000


def test_a_trial_past_the_shared_budget_goes_back_to_the_queue_quietly(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # another fit's trial runs (this process's: alive), so this fit's trial is past n_trials=2
    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=1, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    ts.load_study("svc", url).ask()
    with caplog.at_level("INFO", logger="tunesmith"):
        again = clone(search).set_params(n_trials=2).fit(X, Y)
    assert len(again.cv_results_["params"]) == 1
    assert [t.state.value for t in ts.load_study("svc", url).trials] == ["complete", "running", "waiting"]
    assert "ended elsewhere" not in caplog.text  # before: a warning, as if the trial had been lost


def test_a_search_given_a_storage_object_pickles_clones_and_nests(tmp_path: Path, monkeypatch) -> None:
    # before: pickle of the fitted search failed ("Can't pickle local object 'create_engine.<locals>.connect'"),
    # and so did clone ("cannot pickle 'module' object"), hence cross_validate of the search
    from tunesmith.storage import make_storage

    monkeypatch.chdir(tmp_path)
    storage = make_storage("sqlite:///search.db")  # a relative path: the copies keep the same file
    search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, storage=storage, name="obj").fit(X, Y)
    monkeypatch.chdir(tmp_path.parent)
    restored = pickle.loads(pickle.dumps(search))
    assert restored.storage.url == f"sqlite:///{tmp_path / 'search.db'}" and restored.storage is not storage
    assert [t.params for t in restored.study_.trials] == [t.params for t in search.study_.trials]
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))
    assert clone(search).get_params()["storage"].display_url == storage.display_url
    outer = cross_validate(clone(search).set_params(name=None), X, Y, cv=2)
    assert len(outer["test_score"]) == 2
    assert len(ts.Study.load("obj", storage).trials) == 2  # the nested fits made studies of their own
    # a relative SQLite URL as text: the unpickled search read the file of the cwd it was loaded in
    monkeypatch.chdir(tmp_path)
    by_url = TunedSearchCV(LogisticRegression(), {"C": [0.1]}, cv=3, storage="sqlite:///text.db", name="t").fit(X, Y)
    monkeypatch.chdir(tmp_path.parent)
    assert len(pickle.loads(pickle.dumps(by_url)).study_.trials) == 1


def test_a_fitted_search_unpickles_where_its_database_is_out_of_reach(tmp_path: Path) -> None:
    # before: the study's storage was pickled as an object that opened the database when loaded, so a model
    # loaded on a machine without the database's folder failed ("folder ... does not exist; create it first")
    (tmp_path / "runs").mkdir()
    search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, storage=f"sqlite:///{tmp_path}/runs/s.db",
                           name="s").fit(X, Y)
    saved = pickle.dumps(search)
    (tmp_path / "runs").rename(tmp_path / "away")
    restored = pickle.loads(saved)
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))
    assert not (tmp_path / "runs").exists()  # nothing opened or created by loading the model
    (tmp_path / "away").rename(tmp_path / "runs")
    assert len(restored.study_.trials) == 2  # the study is read when it is asked for
    assert restored.study_ is restored.study_  # and opened once (a new storage and study at each access before)
    assert len(pickle.loads(pickle.dumps(restored)).study_.trials) == 2


def test_a_search_given_a_storage_object_unpickles_where_its_database_is_out_of_reach(tmp_path: Path) -> None:
    # before: the Storage object passed as storage= was pickled as one that opened its database when loaded:
    # loading the model without the database's folder failed ("folder ... does not exist; create it first")
    from tunesmith.storage import make_storage

    (tmp_path / "runs").mkdir()
    storage = make_storage(f"sqlite:///{tmp_path}/runs/s.db")
    search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, storage=storage, name="s").fit(X, Y)
    saved = pickle.dumps(search)
    (tmp_path / "runs").rename(tmp_path / "away")
    restored = pickle.loads(saved)
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))
    assert repr(restored) == repr(search)  # printed without opening it
    assert len(pickle.loads(pickle.dumps(restored)).predict(X)) == len(X)  # pickled again, still unopened
    assert not (tmp_path / "runs").exists()
    (tmp_path / "away").rename(tmp_path / "runs")
    assert restored.get_params()["storage"] is restored.storage  # opened on use, once
    assert restored.storage.display_url == storage.display_url
    assert len(clone(restored).set_params(name="again").fit(X, Y).study_.trials) == 2


def test_threads_using_an_unpickled_search_at_once_open_its_storage_and_study_once(tmp_path: Path) -> None:
    """An unpickled search opens its Storage object and its study when first used; two threads using
    it at the same moment each opened one (two connection pools, two studies, one of them kept).
    Real threads, switching every microsecond, on a SQLite file; several unpickled copies, each raced."""
    import sys
    import threading

    from tunesmith.storage import make_storage

    storage = make_storage(f"sqlite:///{tmp_path / 's.db'}")
    saved = pickle.dumps(TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, storage=storage,
                                       name="s").fit(X, Y))

    def use(restored: TunedSearchCV, start: threading.Barrier, seen: list[tuple[object, object]]) -> None:
        start.wait()
        seen.append((restored.storage, restored.study_))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            restored = pickle.loads(saved)
            start = threading.Barrier(8)
            seen: list[tuple[object, object]] = []
            threads = [threading.Thread(target=use, args=(restored, start, seen)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(seen) == 8
            assert all(s is restored.storage for s, _ in seen), "the storage was opened more than once"
            assert all(st is restored.study_ for _, st in seen), "the study was opened more than once"
    finally:
        sys.setswitchinterval(interval)


def test_a_storage_password_is_hidden_where_the_search_is_printed() -> None:
    # before: print(search) and the Jupyter diagram showed storage='postgresql+psycopg://alice:s3cr3t@...'
    url = "postgresql+psycopg://alice:s3cr3t@127.0.0.1:1/db"
    search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, storage=url, name="x")
    shown = [repr(search), str(search), *search._repr_mimebundle_().values()]
    with sklearn.config_context(display="diagram"):
        shown.append(search._repr_html_())
    assert all("s3cr3t" not in text and "alice:***@127.0.0.1" in text for text in shown)
    assert search.get_params()["storage"] == url  # as passed, as scikit-learn requires (clone, set_params)
    assert clone(search).storage == url


def test_a_stored_search_is_not_resumed_on_other_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=3, cv=3, random_state=0, storage=url,
                           name="svc", error_score="raise")
    # nested cross-validation with a fixed name: each outer fold would reuse the first fold's search
    # (its scores from a training set that holds this fold's test samples)
    with pytest.raises(ValueError, match="'svc' .* was searched on other data or folds.*leave name=None"):
        cross_validate(search, X, Y, cv=3, error_score="raise")
    settings = ts.load_study("svc", url).storage.get_study("svc").config
    with pytest.raises(ValueError, match="searched on other data or folds"):
        clone(search).set_params(sampler="tpe").fit(X[:100], Y[:100])
    assert ts.load_study("svc", url).storage.get_study("svc").config == settings  # its sampler was "tpe" then
    with pytest.raises(ValueError, match="searched on other data or folds"):
        clone(search).set_params(cv=KFold(3, shuffle=True, random_state=1)).fit(X, Y)
    first = [dict(t.params) for t in ts.load_study("svc", url).trials]
    train, _ = next(StratifiedKFold(3).split(X, Y))  # the outer fold that ran
    resumed = clone(search).set_params(n_trials=4).fit(X[train], Y[train])  # the same data and folds
    assert len(first) == 3 and resumed.cv_results_["params"][:3] == first
    # the fingerprint is written once per fit (before: once per trial), on the fit's first trial
    marked = [t.number for t in ts.load_study("svc", url).trials if "search_data" in t.attrs]
    assert marked == [0, 3]


@pytest.mark.parametrize("stored", [True, False])
def test_a_study_of_the_same_name_that_no_search_filled_is_not_resumed(stored: bool, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}" if stored else MemoryStorage()
    other = ts.Study(ts.Space({"C": ts.Categorical([0.1, 1.0])}), direction="maximize", storage=storage, name="c")
    other.optimize(lambda trial: 5.0 + trial["C"], n_trials=2)  # the grid a search of C would run
    settings = ts.load_study("c", storage).storage.get_study("c").config
    search = TunedSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=2, storage=storage, name="c")
    with pytest.raises(ValueError, match=r"'c' .* holds 2 finished trials that no TunedSearchCV recorded"):
        search.fit(X, Y)  # was: "resumed", every score NaN and best_params_ the first of the other's trials
    assert sorted(t.value for t in ts.load_study("c", storage).trials) == [5.1, 6.0]  # no trial added or changed
    assert ts.load_study("c", storage).storage.get_study("c").config == settings  # nor its sampler
    assert len(TunedSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=2, storage=storage).fit(X, Y)
               .cv_results_["params"]) == 2  # name=None: a study of its own beside it


def test_a_search_stored_before_the_data_fingerprint_is_still_resumed(tmp_path: Path) -> None:
    """A search's study written before its trials recorded the data and setup (no search_* attributes):
    its fold records (with fit times) say a search filled it, so it resumes, not refused as an objective's."""
    import json
    import sqlite3

    def search(n_trials: int) -> TunedSearchCV:
        return TunedSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0, 10.0]}, n_trials=n_trials,
                             cv=3, random_state=0, storage=f"sqlite:///{tmp_path}/old.db", name="old")

    search(2).fit(X, Y)
    with sqlite3.connect(f"{tmp_path}/old.db") as db:
        for trial_id, attrs in db.execute("SELECT trial_id, attrs FROM ts_trials").fetchall():
            kept = {k: v for k, v in json.loads(attrs).items() if not k.startswith("search_")}
            db.execute("UPDATE ts_trials SET attrs = ? WHERE trial_id = ?", (json.dumps(kept), trial_id))
        (config,), = db.execute("SELECT config FROM ts_studies")  # nor claimed the study in its settings
        db.execute("UPDATE ts_studies SET config = ?",
                   (json.dumps({k: v for k, v in json.loads(config).items() if k != "search_claim"}),))
    assert not any(k.startswith("search_") for t in ts.load_study("old", f"sqlite:///{tmp_path}/old.db").trials
                   for k in t.attrs)
    assert len(search(3).fit(X, Y).cv_results_["params"]) == 3



@pytest.mark.parametrize("edit", [
    {"cv": [1]}, {"cv": "ab"}, {"cv": {"folds": 3, "scores": [1]}},
    {"cv": {"folds": 3, "scores": {"test_score": 5, "error": 7}}},
    {"cv": {"folds": 3, "scores": {"error": [{"a": 1}, ["b"]]}}},
    {"cv": {"folds": 3, "scores": {"test_score": [10**400] * 3, "fit_time": [-(10**400), 1.0, 1.0]}}},
    {"search_setup": {"estimator": "LogisticRegression", "params": 5}},
    {"search_setup": {"estimator": "LogisticRegression", "params": [1, 2]}},
])
def test_a_stored_search_whose_records_another_writer_changed_is_read_or_refused_by_name(
    edit: dict, tmp_path: Path
) -> None:
    """A trial's fold record or setup of another shape than a search writes (another writer of the
    database) ended the next fit of the stored search in a bare TypeError, ValueError or
    AttributeError ('dictionary update sequence', "'list' object has no attribute 'get'"), a fold
    score of 10**400 (JSON keeps it whole) in an OverflowError: a fold record is read as none (that
    row's scores NaN), a score no float holds as no number, a setup as another setup (refused, named)."""
    import json
    import sqlite3

    def search(n_trials: int) -> TunedSearchCV:
        return TunedSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0, 10.0]}, n_trials=n_trials,
                             cv=3, random_state=0, storage=f"sqlite:///{tmp_path}/s.db", name="s")

    search(2).fit(X, Y)
    with sqlite3.connect(f"{tmp_path}/s.db") as db:
        (attrs,) = db.execute("SELECT attrs FROM ts_trials WHERE number = 1").fetchone()
        db.execute("UPDATE ts_trials SET attrs = ? WHERE number = 1", (json.dumps({**json.loads(attrs), **edit}),))
    if "search_setup" in edit:
        with pytest.raises(ValueError, match="'s' .* was searched with another estimator or scoring"):
            search(3).fit(X, Y)
        return
    resumed = search(3).fit(X, Y)
    assert len(resumed.cv_results_["params"]) == 3 and np.isnan(resumed.cv_results_["mean_test_score"][1])


def test_a_memory_storage_object_is_checked_as_a_stored_search_is_and_clones(tmp_path: Path) -> None:
    storage = MemoryStorage()
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=2, cv=3, random_state=0, storage=storage,
                           name="svc")
    assert clone(search).storage is storage  # clone failed: "cannot pickle '_thread.RLock' object"
    with pytest.raises(ValueError, match="'svc' .* was searched on other data or folds"):
        cross_validate(search, X, Y, cv=3, error_score="raise")  # was: every outer fold got the first one's scores
    train, _ = next(StratifiedKFold(3).split(X, Y))  # the outer fold that ran
    assert len(clone(search).set_params(n_trials=3).fit(X[train], Y[train]).cv_results_["params"]) == 3
    with pytest.raises(ValueError, match="searched with another estimator or scoring"):
        clone(search).set_params(scoring="f1_macro").fit(X[train], Y[train])
    nested = cross_validate(clone(search).set_params(name=None), X, Y, cv=3, return_estimator=True)
    assert len({e.study_.name for e in nested["estimator"]}) == 3  # name=None: one study per outer fold


def test_a_fitted_search_given_a_memory_storage_object_pickles() -> None:
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0]}, cv=2, storage=MemoryStorage(), name="svc").fit(X, Y)
    loaded = pickle.loads(pickle.dumps(search))  # failed: "cannot pickle '_thread.RLock' object"
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))
    assert "MemoryStorage" in repr(loaded) and loaded.best_params_ == search.best_params_
    assert isinstance(loaded.storage, MemoryStorage) and loaded.storage is not search.storage  # a new, empty one
    assert len(clone(loaded).fit(X, Y).cv_results_["params"]) == 2
    with pytest.raises(AttributeError, match="a MemoryStorage, is not pickled: pass storage= a database URL"):
        loaded.study_  # noqa: B018  (it said "pass storage=", which was passed)


class _LabelledMemory(MemoryStorage):
    """A MemoryStorage of the user's own (the storage guide invites subclasses)."""


def test_a_pickled_memory_storage_subclass_opens_as_that_class() -> None:
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0]}, cv=2, storage=_LabelledMemory(), name="svc").fit(X, Y)
    loaded = pickle.loads(pickle.dumps(search))
    assert type(loaded.storage) is _LabelledMemory  # was: a plain MemoryStorage


def test_a_search_left_running_is_not_resumed_on_other_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = TunedSearchCV(SVC(), {"C": loguniform(1e-2, 1e2)}, n_trials=1, cv=3, random_state=0, storage=url,
                           name="svc").fit(X, Y)
    # another fit on other data, killed in its first trial: running, its fingerprint written
    ts.load_study("svc", url).ask().set_attr("search_data", "the fingerprint of other data")
    with pytest.raises(ValueError, match="searched on other data or folds"):
        clone(search).set_params(n_trials=3).fit(X, Y)
    # a fingerprint that is not text (the storage was changed by hand): refused the same, not a TypeError
    ts.load_study("svc", url).ask().set_attr("search_data", ["not", "text"])
    with pytest.raises(ValueError, match="searched on other data or folds"):
        clone(search).set_params(n_trials=3).fit(X, Y)


def test_failures_follow_scikit_learns_rules() -> None:
    space = {"C": [-1.0, 1.0]}  # C must be positive: half the configurations fail
    with pytest.warns(Warning, match="fits failed"):
        search = TunedSearchCV(LogisticRegression(), space, cv=2).fit(X, Y)
    assert search.best_params_ == {"C": 1.0}
    failed = [t for t in search.study_.trials if t.state is ts.TrialState.FAILED]
    # the failed trial's error (and the log line) names the fit's error, not "objective returned nan"
    assert len(failed) == 1 and "the fit of fold 1 failed (error_score=nan)" in (failed[0].error or "")
    assert "parameter of LogisticRegression" in (failed[0].error or "")
    with pytest.raises(ValueError, match="All the 1 configurations failed"):
        TunedSearchCV(LogisticRegression(), {"C": [-1.0]}, cv=2).fit(X, Y)
    with pytest.raises(ValueError, match="pass n_trials"):
        TunedSearchCV(LogisticRegression(), {"C": loguniform(1e-2, 1)}).fit(X, Y)


def test_evaluate_best_scores_the_top_configurations_on_a_test_split() -> None:
    from sklearn.model_selection import train_test_split

    xtr, xte, ytr, yte = train_test_split(X, Y, test_size=0.3, stratify=Y, random_state=0)
    search = TunedSearchCV(SVC(), [{"kernel": ["linear"], "C": [0.01, 1.0]}, {"kernel": ["rbf"], "C": [0.1, 10.0]}],
                           cv=3).fit(xtr, ytr)
    ev = search.evaluate_best(xtr, ytr, xte, yte, k=2)
    assert len(ev.results) == 2 and ev.results[0].trial == search.cv_results_["trial_number"][search.best_index_]
    for r in ev.results:
        params = search.cv_results_["params"][list(search.cv_results_["trial_number"]).index(r.trial)]
        assert r.mean == pytest.approx(SVC(**params).fit(xtr, ytr).score(xte, yte))
        assert r.gap == pytest.approx(r.validation - r.mean)
    # train_test_split's order passed through: "y should be a 1d array" from the first refit, a warning
    # that the test function failed, and nothing said of the order
    with pytest.raises(ValueError, match=r"got \d+ rows of X with \d+ of y and \d+ rows of X_test with \d+ of "
                                         r"y_test: pass the training data, then the test data .* write "
                                         r"evaluate_best\(X_train, y_train, X_test, y_test\)"):
        search.evaluate_best(xtr, xte, ytr, yte, k=2)
    from tunesmith.study.evaluate import test_results as stored_results

    assert len(stored_results(search.study_)) == 2  # the first call's results, nothing more recorded
    # a split in halves has as many rows on both sides: the rows pair up, X_test (y_train) is one value per row
    xa, xb, ya, yb = train_test_split(X[:100], Y[:100], test_size=0.5, random_state=0)
    with pytest.raises(ValueError, match=r"got X of 2 dimension\(s\) and X_test of 1: pass the training data, then the "
                                         r"test data .* write evaluate_best\(X_train, y_train, X_test, y_test\)"):
        search.evaluate_best(xa, xb, ya, yb, k=1)
    assert len(stored_results(search.study_)) == 2


def test_tunesmith_imports_no_private_scikit_learn_function_an_upgrade_may_move() -> None:
    """evaluate_best counted rows with scikit-learn's private ``_num_samples``; the imports of private names
    that remain are those scikit-learn offers other packages (``BaseSearchCV``'s module, ``_safe_indexing``,
    listed in its API reference, and the metadata-routing helpers its public ``metadata_routing`` module
    exports for third-party estimators)."""
    import ast

    private = set()
    for path in (Path(ts.__file__).parent).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sklearn":
                private |= {f"{node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") or "._" in f".{node.module}"}
    assert private == {"sklearn.model_selection._search.BaseSearchCV", "sklearn.utils._safe_indexing",
                       "sklearn.utils.metadata_routing._raise_for_params",
                       "sklearn.utils.metadata_routing._routing_enabled"}
    import pandas as pd
    from scipy import sparse

    from tunesmith.sklearn.search import _n_samples

    rows = np.arange(12.0).reshape(4, 3)
    for data in (rows, rows.tolist(), pd.DataFrame(rows), pd.Series(rows[:, 0]), sparse.csr_matrix(rows), rows[:, 0]):
        assert _n_samples(data) == 4
    with pytest.raises(TypeError, match="evaluate_best expects arrays of samples .* got int"):
        _n_samples(4)


def test_parallel_trials_with_a_pruner() -> None:
    search = TunedSearchCV(LogisticRegression(max_iter=300), {"C": loguniform(1e-3, 1e2)}, n_trials=6, cv=3,
                           random_state=0, n_jobs=2, pruner="median").fit(X, Y)
    assert len(search.cv_results_["params"]) == 6 and len(search.study_.trials) == 6
    assert search.cv_results_["state"][search.best_index_] == "complete"


def test_auto_measures_improvement_against_the_best_score_plus_a_margin() -> None:
    space = {"C": loguniform(1e-2, 1e2), "gamma": loguniform(1e-3, 1e1)}
    default = TunedSearchCV(SVC(), space, n_trials=7, cv=3, random_state=0).fit(X, Y)
    chosen = default.study_.sampler.chosen  # type: ignore[attr-defined]
    assert chosen.name == "bayes" and chosen.options.ei_margin == 0.01
    assert default.study_.sampler.describe()["bayes"] == {"ei_margin": 0.01}
    plain = TunedSearchCV(SVC(), space, n_trials=7, cv=3, random_state=0, sampler={"name": "auto"}).fit(X, Y)
    assert plain.study_.sampler.chosen.options.ei_margin == 0.0  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unknown BayesSampler option"):
        ts.samplers.AutoSampler(bayes={"xi": 0.01})


@pytest.mark.parametrize("sampler", ["random", "sobol", "tpe", "bayes", "auto"])
def test_a_finite_space_smaller_than_n_trials_is_searched_once_per_configuration(sampler: str) -> None:
    """As RandomizedSearchCV caps n_iter at the grid's size: a warning naming both sizes, then
    each of the 6 configurations once (random draws repeated configurations)."""
    space = {"C": [0.1, 1.0, 10.0], "fit_intercept": [True, False]}
    search = TunedSearchCV(LogisticRegression(max_iter=300), space, n_trials=10, sampler=sampler, cv=2,
                           random_state=0)
    with pytest.warns(UserWarning, match="has 6 configurations, fewer than n_trials=10: running 6 trials"):
        search.fit(X, Y)
    seen = [tuple(sorted(p.items())) for p in search.cv_results_["params"]]
    assert len(seen) == 6 and len(set(seen)) == 6


def _raises(estimator: object, X: object, y: object) -> float:
    raise RuntimeError("scorer broke")


def test_a_failed_fit_is_said_once_at_verbose_0() -> None:
    """At verbose=0 a failed fit is said by scikit-learn's FitFailedWarning alone, as
    GridSearchCV says it, not also by a "trial N failed" line per trial; verbose=1 keeps the lines."""
    import logging

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("tunesmith").addHandler(handler)
    try:
        for verbose in (0, 1):
            with pytest.warns(Warning, match="fits failed"):
                TunedSearchCV(LogisticRegression(), {"C": [-1.0, 1.0]}, cv=2, verbose=verbose).fit(X, Y)
            failed = [line for line in lines if "failed: FitFailedError" in line]  # "trial n failed: ..."
            assert len(failed) == verbose, lines
    finally:
        logging.getLogger("tunesmith").removeHandler(handler)


def test_a_scorer_that_fails_everywhere_gives_nan_rows_as_grid_search_does() -> None:
    """GridSearchCV (error_score=nan) records NaN scores and warns when the scorer, not the
    fit, raises; the search failed with 'failed to fit'. The warning names the fold and the error."""
    space = {"C": [0.1, 1.0]}
    grid = GridSearchCV(LogisticRegression(), space, scoring=_raises, cv=2)
    with pytest.warns(UserWarning, match="Scoring failed"):
        grid.fit(X, Y)
    search = TunedSearchCV(LogisticRegression(), space, scoring=_raises, cv=2, sampler="grid")
    with pytest.warns(UserWarning, match="Scoring failed on fold 1 of trial 0.*scorer 'score' raised RuntimeError: scorer broke"):
        search.fit(X, Y)
    for key in ("mean_test_score", "split0_test_score"):
        assert np.isnan(search.cv_results_[key]).all() and np.isnan(grid.cv_results_[key]).all()
    # every row ties (NaN): the first of the grid, as GridSearchCV (its row 0; ours in trial order)
    assert search.best_params_ == grid.best_params_ == {"C": 0.1} and np.isnan(search.best_score_)
    assert search.best_estimator_.C == search.cv_results_["params"][search.best_index_]["C"] == 0.1
    with pytest.raises(RuntimeError, match="scorer broke"):
        TunedSearchCV(LogisticRegression(), space, scoring=_raises, cv=2, error_score="raise").fit(X, Y)


def test_a_list_of_dicts_shows_the_estimators_names_not_the_stored_keys(tmp_path: Path, capsys) -> None:
    """A list of dicts stores dict i's C as "i:C": tables, importance and plots showed "0:C" and
    "1:C". Shown now as the estimator's name, with the dict where two share it; stored as before."""
    from tunesmith import plots
    from tunesmith.cli import main
    from tunesmith.space import display_names

    space = [{"kernel": ["rbf"], "C": loguniform(1e-2, 1e2), "gamma": loguniform(1e-3, 1e1)},
             {"kernel": ["linear"], "C": loguniform(1e-2, 1e2)}]
    stored = as_search_space(space).space
    assert display_names(stored) == {"branch": "branch", "0:kernel": "kernel [branch 0]", "0:C": "C [branch 0]",
                                     "0:gamma": "gamma", "1:kernel": "kernel [branch 1]", "1:C": "C [branch 1]"}
    assert display_names(ts.Space({"0:C": ts.Float(0, 1), "C": ts.Float(0, 1)})) == {"0:C": "0:C", "C": "C"}
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(SVC(), space, n_trials=16, cv=2, sampler="random", random_state=0, storage=url,
                           name="svc").fit(X, Y)
    assert set(search.study_.space) == set(stored)  # what is stored is unchanged
    study = search.study_
    assert [a.name for a in plots.parallel(study).axes][:3] == ["branch", "C [branch 0]", "gamma"]
    assert [c.x_label for c in plots.slices(study)] == ["branch", "C [branch 0]", "gamma", "C [branch 1]"]
    assert "C [branch 1]" in plots.importance_bars(study).find("bars").y
    assert main(["show", "svc", "--storage", url]) == 0 and main(["importance", "svc", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "C [branch 0]" in out and "C [branch 1]" in out and "0:C" not in out


def test_a_list_of_estimators_is_stored_and_shown_by_name_not_position(tmp_path: Path, capsys) -> None:
    """A list of estimators or functions was stored as positions: tunesmith show, the plots and
    study_.best_params printed "clf 0" and "clf 1". Each is stored as a label a user recognises
    (scikit-learn's repr, a function's name); a study stored with positions still resumes."""
    from sklearn.feature_selection import SelectKBest, chi2, f_classif

    from tunesmith.cli import main

    pipe = Pipeline([("select", SelectKBest(k=2)), ("clf", LogisticRegression())])
    space = {"clf": [LogisticRegression(C=10.0), SVC()], "select__score_func": [f_classif, chi2]}
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(pipe, space, cv=2, storage=url, name="pipe").fit(X, Y)
    assert search.study_.space["clf"] == ts.Categorical(["LogisticRegression(C=10.0)", "SVC()"])
    assert {t.params["select__score_func"] for t in search.study_.trials} == {"f_classif", "chi2"}
    assert {type(p["clf"]) for p in search.cv_results_["params"]} == {LogisticRegression, SVC}  # the objects
    assert search.cv_results_["params"][0]["select__score_func"] in (f_classif, chi2)
    assert main(["show", "pipe", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "LogisticRegression(C=10.0)" in out and "SVC()" in out and "f_classif" in out
    # alike or without a stable text (an address): by position, as before
    assert as_search_space({"clf": [SVC(), SVC()]}).space["clf"] == ts.Categorical([0, 1])
    assert as_search_space({"f": [lambda x: x, lambda x: -x]}).space["f"] == ts.Categorical([0, 1])
    # a study stored before labels (positions) is resumed as it is stored
    ts.Study(as_search_space(space, labels=False).space, direction="maximize", storage=url, name="old")
    old = TunedSearchCV(pipe, space, cv=2, n_trials=2, sampler="random", storage=url, name="old").fit(X, Y)
    resumed = clone(old).set_params(n_trials=4).fit(X, Y)
    assert {t.params["clf"] for t in resumed.study_.trials} <= {0, 1} and len(resumed.cv_results_["params"]) == 4
    assert {type(p["clf"]) for p in resumed.cv_results_["params"]} <= {LogisticRegression, SVC}
    assert len(resumed.evaluate_best(X[:100], Y[:100], X[100:], Y[100:], k=2).results) == 2


def test_an_estimator_s_label_does_not_follow_scikit_learn_s_print_setting(tmp_path: Path) -> None:
    """Labels were the estimators' repr under the caller's sklearn.set_config: with print_changed_only=False
    (every parameter printed) a stored search read as another space and did not resume."""
    pipe = Pipeline([("clf", LogisticRegression())])
    space = {"clf": [LogisticRegression(C=10.0), SVC()]}
    url = f"sqlite:///{tmp_path / 's.db'}"
    TunedSearchCV(pipe, space, cv=2, n_trials=1, sampler="random", storage=url, name="s").fit(X, Y)
    with sklearn.config_context(print_changed_only=False):
        assert as_search_space(space).space["clf"] == ts.Categorical(["LogisticRegression(C=10.0)", "SVC()"])
        resumed = TunedSearchCV(pipe, space, cv=2, n_trials=2, sampler="random", storage=url, name="s").fit(X, Y)
    assert len(resumed.study_.trials) == 2


def _fails_on_class_2(estimator: object, X: object, y: np.ndarray) -> float:
    if y[0] == 2 and estimator.C < 0.5:  # type: ignore[attr-defined]
        raise RuntimeError("scorer broke")
    return float(estimator.score(X, y))  # type: ignore[attr-defined]


def test_a_row_whose_last_fold_failed_has_a_nan_mean_as_in_grid_search() -> None:
    """The mean of a failed configuration was over the folds before the failure (0.0 here, ranked
    last but a number); GridSearchCV's is NaN: a NaN error_score enters the mean."""
    space, cv = {"C": [0.1, 1.0]}, KFold(3)  # iris unshuffled: the third fold is all class 2
    grid = GridSearchCV(LogisticRegression(max_iter=500), space, scoring=_fails_on_class_2, cv=cv)
    search = TunedSearchCV(LogisticRegression(max_iter=500), space, scoring=_fails_on_class_2, cv=cv,
                           sampler="grid")
    with pytest.warns(UserWarning, match="Scoring failed"):
        grid.fit(X, Y)
    with pytest.warns(UserWarning, match="Scoring failed on fold 3"):
        search.fit(X, Y)
    order = [p["C"] for p in search.cv_results_["params"]]
    ours = {c: search.cv_results_["mean_test_score"][i] for i, c in enumerate(order)}
    theirs = dict(zip((0.1, 1.0), grid.cv_results_["mean_test_score"], strict=True))
    assert np.isnan(ours[0.1]) and np.isnan(theirs[0.1]) and ours[1.0] == pytest.approx(theirs[1.0])
    assert search.best_params_ == grid.best_params_ == {"C": 1.0}


def test_stateful_fit_callbacks_are_not_shared_by_parallel_trials() -> None:
    """lgb.early_stopping(...) given to fit() holds its best round: trials in parallel threads
    (n_jobs=2 with a pruner) shared the one object, stopped each other's fits (a model of one
    round scores the majority class, 0.627 here) and scored otherwise than n_jobs=1."""
    lgb = pytest.importorskip("lightgbm")
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, random_state=0)
    space = {"learning_rate": ts.Float(0.01, 0.3, log=True), "num_leaves": ts.Int(4, 64, log=True)}
    scores = []
    for n_jobs in (1, 2):
        search = TunedSearchCV(lgb.LGBMClassifier(n_estimators=300, verbose=-1, n_jobs=1), space, n_trials=8,
                               cv=3, n_jobs=n_jobs, random_state=0, pruner="median")
        search.fit(X_tr, y_tr, eval_X=(X_va,), eval_y=(y_va,), callbacks=[lgb.early_stopping(5, verbose=False)])
        scores.append(search.cv_results_["mean_test_score"])
    np.testing.assert_allclose(scores[1], scores[0])

    class Locked:  # a callback that cannot be copied is passed as it is, as before
        def __init__(self) -> None:
            import threading

            self.lock, self.calls = threading.Lock(), 0

        def __call__(self, env: object) -> None:
            with self.lock:
                self.calls += 1

    locked = Locked()
    TunedSearchCV(lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1), space, n_trials=2, cv=2,
                  random_state=0).fit(X_tr, y_tr, callbacks=[locked])
    assert locked.calls == 3 * (2 * 2 + 1)  # 3 rounds in each of 2 folds of 2 trials, and the refit


def _fit_killed(url: str, rows: int) -> None:
    """In a forked process: a fit on the first ``rows`` rows, SIGKILLed by the file's trigger (``die()``)."""
    from test_faults_storage import _die_armed

    TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=_die_armed(url),
                  name="svc").fit(X[:rows], Y[:rows])


def _killed_at(path: Path, trigger: str, rows: int) -> None:
    """A fit on ``rows`` rows run in a forked process that ``trigger`` (SQL calling ``die()``) kills."""
    import multiprocessing
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER die {trigger} BEGIN SELECT die(); END")
    child = multiprocessing.get_context("fork").Process(target=_fit_killed, args=(f"sqlite:///{path}", rows))
    child.start()
    child.join(120)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER die")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert child.exitcode == -9


@pytest.mark.parametrize("point", ["taking the claim", "first trial", "first result"])
def test_a_fit_killed_while_it_takes_a_stale_claim_over_leaves_the_study_to_the_next_fit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, point: str) -> None:
    """Fit A (120 rows) dies before its first trial; fit B (135 rows) takes its claim over and is SIGKILLed
    as it writes the claim, as it creates its first trial, or as it records it. A fit C then runs: on
    other data (150 rows) where no trial was recorded, taking B's or A's claim over with a warning; else on
    B's data, resuming. Nothing is left running, no study holds two data sets' trials."""
    path = tmp_path / "search.db"
    url = f"sqlite:///{path}"
    search = TunedSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, n_trials=3, cv=3, random_state=0, storage=url, name="svc")
    with pytest.raises(ValueError, match="passed before the first one started"):
        clone(search).set_params(timeout=1e-9).fit(X, Y)  # the study, stored empty
    _killed_at(path, "BEFORE INSERT ON ts_trials", 120)
    a = ts.SQLStorage(url).get_study("svc").config["search_claim"]["worker"]
    b_trigger = {"taking the claim": f"BEFORE UPDATE OF config ON ts_studies WHEN instr(OLD.config, '\"{a}\"') > 0 "
                                     f"AND instr(NEW.config, '\"{a}\"') = 0",
                 "first trial": "BEFORE INSERT ON ts_trials",
                 "first result": "BEFORE UPDATE ON ts_trials WHEN NEW.state = 'complete'"}[point]
    _killed_at(path, b_trigger, 135)
    claim = ts.SQLStorage(url).get_study("svc").config["search_claim"]
    assert claim["worker"] != a if point != "taking the claim" else claim["worker"] == a
    rows = 135 if point == "first result" else 150
    if point == "first result":  # B's trial is recorded: the study is B's data's
        with pytest.raises(ValueError, match="searched on other data or folds"):
            clone(search).fit(X, Y)
    with caplog.at_level("WARNING", logger="tunesmith"):
        done = clone(search).fit(X[:rows], Y[:rows])
    if point != "first result":
        assert f"the search claim of {claim['worker']} (made" in caplog.text, caplog.text
    trials = ts.load_study("svc", url).trials
    assert not {ts.TrialState.RUNNING, ts.TrialState.WAITING} & {t.state for t in trials}, trials
    assert len({t.attrs["search_data"] for t in trials if "search_data" in t.attrs}) == 1
    assert len(done.cv_results_["params"]) == 3
    if point == "first result":  # before: B's trial stayed running for good; now failed, its copy run by C
        killed = trials[0]
        assert killed.state is ts.TrialState.FAILED and "its fit's process is gone" in (killed.error or "")
        copy = trials[killed.system.requeued_as]
        assert copy.state is ts.TrialState.COMPLETE and copy.params == killed.params and copy.system.retry_of == 0


@pytest.mark.parametrize("requeue", [False, True])
def test_a_trial_left_running_by_a_killed_fit_is_queued_again_as_the_study_s_requeue_failed_says(
        tmp_path: Path, requeue: bool) -> None:
    # before: the next fit queued a copy of it whatever the study's requeue_failed (False: no copy, as its
    # heartbeat check does)
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'search.db'}"
    space = {"C": loguniform(1e-2, 1e2)}
    ts.Study(as_search_space(space).space, direction="maximize", storage=url, name="svc", heartbeat_interval=60,
             requeue_failed=requeue)
    search = TunedSearchCV(SVC(), space, n_trials=2, cv=3, random_state=0, storage=url, name="svc").fit(X, Y)
    subprocess.run([sys.executable, "-c", f"import tunesmith as ts; ts.load_study('svc', {url!r}).ask()"],
                   check=True)  # a fit killed in its trial: left running by a process that is gone
    clone(search).set_params(n_trials=4).fit(X, Y)
    killed = ts.load_study("svc", url).trials[2]
    assert killed.state is ts.TrialState.FAILED and "its fit's process is gone" in (killed.error or "")
    copies = [t for t in ts.load_study("svc", url).trials if t.system.retry_of == 2]
    assert (killed.system.requeued_as is not None, len(copies)) == ((True, 1) if requeue else (False, 0))


def _plant_claim(study: ts.Study, claim: object, *, over: bool = False) -> None:
    """Store a search claim as another fit (or writer) would: where none is stored, or ``over`` one."""
    from tunesmith.study.manage import change_setting

    change_setting(study, "search_claim", lambda stored: claim if over or stored is None else stored)


def test_a_fit_opening_its_study_leaves_another_thread_s_resume_line_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a fit opens its study, the filter that drops the Study's resume line (the fit says its own) was
    on the process's logger for every thread: a study another thread resumed meanwhile said nothing."""
    import logging
    import threading

    from tunesmith.sklearn.search import _opening

    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="other").optimize(lambda t: t.params["x"], n_trials=2)
    with caplog.at_level("INFO", logger="tunesmith"), _opening(0):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="other", load_if_exists=True)  # this thread's: dropped
        assert not [r for r in caplog.records if "resuming it" in r.getMessage()]
        elsewhere = threading.Thread(target=ts.Study, args=({"x": ts.Float(0, 1)},),
                                     kwargs={"storage": url, "name": "other", "load_if_exists": True})
        elsewhere.start()
        elsewhere.join()
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "'other'" in m and "holds 2 trials: resuming it" in m], said
    # records without their thread (logging.logThreads = False, a documented saving) read as another
    # thread's: a resumed fit said the Study's resume line beside its own
    caplog.clear()
    monkeypatch.setattr(logging, "logThreads", False)
    with caplog.at_level("INFO", logger="tunesmith"), _opening(0):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="other", load_if_exists=True)
    assert not [r for r in caplog.records if "resuming it" in r.getMessage()], caplog.records


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_resumed_fit_says_so_in_one_line_of_its_own_and_verbose_0_nothing_else(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, verbose: int) -> None:
    """At verbose=0 (silent, as scikit-learn's searches) a resumed fit logged the Study's "holds 3 trials:
    resuming it (its trials count as this objective's ...)" and "sampler random recorded (was 'auto')".
    Now one line of the search's, at any verbose (the earlier fits' trials change this one's results);
    the sampler line with verbose=1 only. A first fit says nothing at verbose=0."""
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(LogisticRegression(), {"C": loguniform(1e-2, 1e2)}, n_trials=3, cv=3, storage=url,
                           name="bc", verbose=verbose)
    with caplog.at_level("INFO", logger="tunesmith"):
        search.fit(X, y)
        first = [r.getMessage() for r in caplog.records]
        caplog.clear()
        search.set_params(n_trials=5, sampler="random").fit(X, y)
    said = [r.getMessage() for r in caplog.records]
    resumed = (f"TunedSearchCV resumes study 'bc' in {search.study_.storage.display_url}: its 3 trials from earlier "
               "fits count toward n_trials (5); another name (or name=None) starts a new search")
    assert resumed in said and not [m for m in said if "resuming it" in m]
    if verbose == 0:
        assert (first, said) == ([], [resumed])
    else:
        assert "study 'bc': sampler random recorded (was 'auto')" in said


class _SaysMidFit(LogisticRegression):
    """A fit that, once, sets the user's level and has another thread log an info line."""

    said: list[str] = []

    def fit(self, X: object, y: object, **kw: object) -> _SaysMidFit:
        import logging
        import threading

        if not self.said:
            self.said.append("set")
            ts.set_verbosity("debug")
            other = threading.Thread(target=logging.getLogger("tunesmith").info, args=("another thread's line",))
            other.start()
            other.join()
        return super().fit(X, y, **kw)


def test_a_quiet_fit_is_quiet_for_itself_alone_and_keeps_the_level_the_user_set(
        caplog: pytest.LogCaptureFixture) -> None:
    """verbose=0 raised the process's "tunesmith" logger to WARNING for the whole fit and put back the
    level it found: another thread's info lines were dropped meanwhile, and a level the user set during the
    fit was undone (two quiet fits in threads could leave it at WARNING). Now a filter scoped to the fit's
    context (its thread and its trial threads) drops its info lines; the level is never touched."""
    import logging

    log = logging.getLogger("tunesmith")
    _SaysMidFit.said.clear()
    with caplog.at_level("INFO", logger="tunesmith"):
        TunedSearchCV(_SaysMidFit(), {"C": [0.1, 1.0]}, cv=2).fit(X, Y)
        assert log.level == logging.DEBUG  # what the user set during the fit stays
        assert [r.getMessage() for r in caplog.records] == ["another thread's line"]
        caplog.clear()
        # a pruned search runs its trials in threads (n_jobs=2): theirs are the fit's own, silent
        search = TunedSearchCV(LogisticRegression(max_iter=500), {"C": loguniform(1e-3, 1e2)}, n_trials=8, cv=3,
                               pruner="median", n_jobs=2, random_state=0).fit(X, Y)
        assert len(search.study_.trials) == 8
        assert [r.getMessage() for r in caplog.records if r.levelno < logging.WARNING] == []
        search.set_params(verbose=1, name=None).fit(X, Y)
        assert [r for r in caplog.records if r.levelno == logging.INFO]  # the same fit said its lines at verbose=1
    log.setLevel(logging.INFO)


class _FoldPattern(LogisticRegression):
    """Scores 1 then 0.5 on KFold(2)'s two folds with good_first, else 0.5 then 1: tied on the mean."""

    def __init__(self, good_first: bool = False) -> None:
        super().__init__()
        self.good_first = good_first

    def score(self, X: np.ndarray, y: np.ndarray, sample_weight: object = None) -> float:
        first = bool(X[0, 0] == 0)  # fold 1 tests rows 0-9
        return 1.0 if first == self.good_first else 0.5


@pytest.mark.parametrize("seed", range(4))
def test_tied_configurations_of_a_space_without_grid_order_take_the_study_s_best_trial(seed: int) -> None:
    """Among tied configurations of a space with no grid order (a ts.Space, distributions) best_index_ was
    the first trial run, study_.best_trial the study's pick (the running means read from the last fold
    backwards): two stories. Now best_index_, best_params_, rank 1 and study_.best_trial name one trial."""
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.array([0, 1] * 10)
    search = TunedSearchCV(_FoldPattern(), ts.Space({"good_first": ts.Categorical([False, True])}), n_trials=2,
                           cv=KFold(2), sampler="grid", random_state=seed).fit(X, y)
    results = search.cv_results_
    assert list(results["mean_test_score"]) == [0.75, 0.75] and list(results["rank_test_score"]) == [1, 1]
    assert results["trial_number"][search.best_index_] == search.study_.best_trial.number
    assert search.best_params_ == search.study_.best_params == {"good_first": True}
