"""TunedSearchCV side by side with GridSearchCV on the same input: metadata routing, pandas,
delegation, nesting; each test compares with what scikit-learn itself does."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("sklearn")
import sklearn  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import UnsetMetadataPassedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, make_scorer  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate  # noqa: E402

from tunesmith.sklearn import TunedSearchCV  # noqa: E402

X, Y = load_iris(return_X_y=True)
WEIGHTS = np.where(Y == 0, 5.0, 1.0)
GROUPS = np.arange(len(Y)) % 5
GRID = {"C": [0.01, 1.0]}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _means(search: object, key: str = "mean_test_score") -> list[float]:
    results = search.cv_results_  # type: ignore[attr-defined]
    order = np.argsort([p["C"] for p in results["params"]])
    return list(np.asarray(results[key])[order])


def _both(make: object, fit: object) -> tuple[object, object]:
    """(TunedSearchCV's, GridSearchCV's) result of ``fit(search)`` for ``make(cls, **kw)``."""
    return fit(make(TunedSearchCV)), fit(make(GridSearchCV))  # type: ignore[operator]


def _weighted_scorer() -> object:
    return make_scorer(accuracy_score).set_score_request(sample_weight=True)


def test_metadata_routing_gives_each_part_what_it_requested_as_grid_search_does() -> None:
    with sklearn.config_context(enable_metadata_routing=True):
        def make(cls: type) -> object:  # weighted scores of unweighted fits: what the requests say
            est = LogisticRegression().set_fit_request(sample_weight=False)
            scoring = {"weighted": _weighted_scorer(), "plain": make_scorer(accuracy_score).set_score_request(sample_weight=False)}
            return cls(est, GRID, cv=GroupKFold(3), scoring=scoring, refit="weighted")

        ours, theirs = _both(make, lambda s: s.fit(X, Y, sample_weight=WEIGHTS, groups=GROUPS))
        for key in ("mean_test_weighted", "mean_test_plain", "split2_test_weighted"):
            np.testing.assert_allclose(_means(ours, key), _means(theirs, key))
        assert _means(ours, "mean_test_weighted") != _means(ours, "mean_test_plain")
        assert ours.score(X, Y, sample_weight=WEIGHTS) == theirs.score(X, Y, sample_weight=WEIGHTS)


def test_metadata_routing_refuses_metadata_nobody_requested_as_grid_search_does() -> None:
    with sklearn.config_context(enable_metadata_routing=True):
        for cls in (GridSearchCV, TunedSearchCV):
            with pytest.raises(UnsetMetadataPassedError, match="LogisticRegression.set_fit_request"):
                cls(LogisticRegression(), GRID, cv=3).fit(X, Y, sample_weight=WEIGHTS)
            with pytest.raises(TypeError, match="groups"):  # KFold takes no groups
                cls(LogisticRegression(), GRID, cv=3).fit(X, Y, groups=GROUPS)


def test_a_search_inside_cross_validate_gets_its_routed_sample_weight() -> None:
    with sklearn.config_context(enable_metadata_routing=True):
        def make(cls: type) -> object:
            est = LogisticRegression().set_fit_request(sample_weight=True)
            return cls(est, GRID, cv=3, scoring=_weighted_scorer())

        def outer(search: object) -> list[np.ndarray]:
            scores = cross_validate(search, X, Y, cv=3, scoring=_weighted_scorer(), params={"sample_weight": WEIGHTS},
                                    return_estimator=True)
            return [s.best_estimator_.coef_ for s in scores["estimator"]]  # weighted fits: other coefficients

        ours, theirs = _both(make, outer)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_score_takes_metadata_only_with_routing_as_grid_search_does() -> None:
    search = TunedSearchCV(LogisticRegression(), GRID, cv=3).fit(X, Y)
    with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
        search.score(X, Y, sample_weight=WEIGHTS)


def test_the_html_diagram_draws_the_best_estimator_once_refitted_as_grid_search_does() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(cls: type, refit: bool = True) -> object:
        return cls(make_pipeline(StandardScaler(), LogisticRegression(C=5)), {"logisticregression__C": [0.01, 7]},
                   cv=3, refit=refit)

    ours, theirs = _both(make, lambda s: s.fit(X, Y)._repr_html_())
    for html in (ours, theirs):
        assert "best_estimator_: Pipeline" in html and "C=7" in html  # the best one, not the C=5 given
    ours, theirs = _both(lambda cls: make(cls, refit=False), lambda s: s.fit(X, Y)._repr_html_())
    for html in (ours, theirs):
        assert "estimator: Pipeline" in html and "best_estimator_: Pipeline" not in html and "C=7" not in html


def test_error_score_raise_raises_the_fit_error_without_a_log_line_as_grid_search_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for cls in (GridSearchCV, TunedSearchCV):
        with pytest.raises(ValueError, match="'C' parameter of LogisticRegression must be"):
            cls(LogisticRegression(), {"C": [-1.0, 1.0]}, cv=3, error_score="raise").fit(X, Y)
    assert not [r.getMessage() for r in caplog.records if r.name == "tunesmith"]


def test_a_stored_search_is_not_resumed_with_other_sample_weights(tmp_path: object) -> None:
    def search(n_trials: int) -> TunedSearchCV:
        return TunedSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, n_trials=n_trials, cv=3,
                             random_state=0, storage=f"sqlite:///{tmp_path}/search.db", name="weighted")

    search(2).fit(X, Y, sample_weight=WEIGHTS)
    with pytest.raises(ValueError, match=r"other data or folds, or other per-sample fit parameters \(this fit's: none\)"):
        search(4).fit(X, Y)  # the first two scores are weighted, the next two would not be
    with pytest.raises(ValueError, match="this fit's: sample_weight"):
        search(4).fit(X, Y, sample_weight=np.where(Y == 1, 5.0, 1.0))
    resumed = search(4).fit(X, Y, sample_weight=WEIGHTS.tolist())  # the same weights: resumed
    assert len(resumed.cv_results_["params"]) == 4


def test_a_weighted_search_stored_before_weights_were_fingerprinted_still_resumes(tmp_path: object) -> None:
    """A search stored before the per-sample fit parameters joined the fingerprint (its trials hold
    that of X, y and the folds alone, whatever the weights) was refused at every later fit with
    sample_weight: it resumes, and from then on its weights are checked."""
    import json
    import sqlite3

    def search(n_trials: int) -> TunedSearchCV:
        return TunedSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, n_trials=n_trials, cv=3,
                             random_state=0, storage=f"sqlite:///{tmp_path}/search.db", name="old")

    search(2).fit(X, Y)  # then its first trial's attributes as the code before wrote them
    with sqlite3.connect(f"{tmp_path}/search.db") as db:
        (trial_id, attrs), = db.execute("SELECT trial_id, attrs FROM ts_trials WHERE attrs LIKE '%search_data%'")
        db.execute("UPDATE ts_trials SET attrs = ? WHERE trial_id = ?",
                   (json.dumps({k: v for k, v in json.loads(attrs).items() if k != "search_fit_params"}), trial_id))
        (config,), = db.execute("SELECT config FROM ts_studies")  # nor did it claim the study in its settings
        db.execute("UPDATE ts_studies SET config = ?",
                   (json.dumps({k: v for k, v in json.loads(config).items() if k != "search_claim"}),))
    resumed = search(3).fit(X, Y, sample_weight=WEIGHTS)
    assert len(resumed.cv_results_["params"]) == 3
    with pytest.raises(ValueError, match="this fit's: none"):  # the third trial's weights are known
        search(4).fit(X, Y)


@pytest.mark.parametrize("pruner", [None, "median"])  # folds in joblib workers; trials in threads
def test_parallel_fits_see_the_callers_scikit_learn_config(pruner: str | None) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with sklearn.config_context(enable_metadata_routing=True):  # thread-local: workers start without it
        def make(cls: type, n_jobs: int = 2) -> object:
            est = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                                LogisticRegression().set_fit_request(sample_weight=True))
            kw = {"pruner": pruner} if cls is TunedSearchCV else {}
            return cls(est, {"logisticregression__C": [0.1, 1.0]}, cv=3, scoring=_weighted_scorer(), n_jobs=n_jobs,
                       **kw)

        ours, theirs = _both(make, lambda s: sorted(s.fit(X, Y, sample_weight=WEIGHTS).cv_results_["mean_test_score"]))
        np.testing.assert_allclose(ours, theirs)


def _nan_for_c_1(est: object, x: object, y: object) -> float:
    return float("nan") if est.C == 1.0 else float(est.score(x, y))  # type: ignore[attr-defined]


@pytest.mark.parametrize("error_score", [np.nan, "raise"])
def test_a_scorer_returning_nan_gives_a_nan_row_as_grid_search_does(
    error_score: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A scorer that returns NaN (it does not raise) failed its configuration with "objective
    returned nan" and a log line; a NaN on every configuration ended fit with "All the 2
    configurations failed to fit. Errors: no trial completed". GridSearchCV keeps NaN rows, ranked
    last, with its "non-finite" warning, under error_score="raise" too (a NaN is no error)."""
    def fit(cls: type, space: dict[str, list[float]]) -> object:
        with pytest.warns(UserWarning, match="test scores are non-finite"):
            return cls(LogisticRegression(), space, cv=3, scoring=_nan_for_c_1, error_score=error_score).fit(X, Y)

    ours, theirs = _both(lambda cls: cls, lambda cls: fit(cls, {"C": [0.01, 1.0, 10.0]}))
    for search in (ours, theirs):
        means = _means(search)
        assert np.isnan(means[1]) and np.isfinite([means[0], means[2]]).all()
        assert search.best_params_ == {"C": 10.0}  # type: ignore[attr-defined]
        assert _means(search, "rank_test_score")[1] == 3
    ours, theirs = _both(lambda cls: cls, lambda cls: fit(cls, {"C": [1.0]}))
    assert np.isnan(ours.best_score_) and np.isnan(theirs.best_score_)  # type: ignore[attr-defined]
    assert not [r.getMessage() for r in caplog.records if r.name == "tunesmith"]


def _infinite_scorer(est: object, x: object, y: object) -> float:
    """+inf for C=0.01, -inf for C=1, +inf on one fold only for C=100 (its first sample's first feature > 5)."""
    c = est.C  # type: ignore[attr-defined]
    if c == 100.0:
        return np.inf if x[0, 0] > 5.0 else 0.3  # type: ignore[index]
    return {0.01: np.inf, 1.0: -np.inf}.get(c, float(est.score(x, y)))  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")  # GridSearchCV's std
@pytest.mark.parametrize("stored", [False, True])
def test_a_scorer_returning_inf_gives_grid_search_rows_and_best(stored: bool, tmp_path: object) -> None:
    """A scorer returning inf or -inf: the first infinite fold ended the configuration and its row
    was all NaN (folds, mean, rank among the failed). GridSearchCV scores every fold, keeps the
    infinite scores, their mean (inf, -inf) with a NaN std, and ranks by the mean: +inf is best."""
    space = {"C": [0.01, 1.0, 10.0, 100.0]}
    kw = {"storage": f"sqlite:///{tmp_path}/inf.db", "name": "inf"} if stored else {}

    def fit(cls: type) -> object:
        extra = kw if cls is TunedSearchCV else {}
        with pytest.warns(UserWarning, match="test scores are non-finite"):
            return cls(LogisticRegression(), space, cv=3, scoring=_infinite_scorer, **extra).fit(X, Y)

    ours, theirs = _both(lambda cls: cls, fit)
    for key in ("split0_test_score", "split1_test_score", "split2_test_score", "mean_test_score",
                "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(_means(ours, key), _means(theirs, key), err_msg=key)
    assert _means(ours) == [np.inf, -np.inf, pytest.approx(_means(theirs)[2]), np.inf]
    assert ours.best_params_ == theirs.best_params_ == {"C": 0.01}  # type: ignore[attr-defined]
    assert ours.best_score_ == theirs.best_score_ == np.inf  # type: ignore[attr-defined]
    errors = [t.error or "" for t in ours.study_.trials]  # type: ignore[attr-defined]
    assert sum("the scorer returned infinite scores" in e for e in errors) == 3


def _signed_infinite_scorer(est: object, x: object, y: object) -> float:
    """Training folds (100 samples) scored as usual; on the validation folds C=10 scores inf, C=1 -inf,
    inf on the second fold (its first sample's last feature > 0.25), -inf."""
    c = est.C  # type: ignore[attr-defined]
    if len(x) > 60 or c == 0.1:  # type: ignore[arg-type]
        return float(est.score(x, y))  # type: ignore[attr-defined]
    return np.inf if c == 10.0 or x[0, 3] > 0.25 else -np.inf  # type: ignore[index]


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")  # GridSearchCV's std
def test_infinite_scores_of_both_signs_and_the_training_scores_are_grid_search_s() -> None:
    """inf on one fold and -inf on the next ended the configuration there (its later folds NaN, where
    GridSearchCV scores them), and a configuration failed by infinite test scores had NaN training
    scores, where GridSearchCV shows their mean and std."""
    def fit(cls: type) -> object:
        with pytest.warns(UserWarning, match="test scores are non-finite"):
            return cls(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3, scoring=_signed_infinite_scorer,
                       return_train_score=True).fit(X, Y)

    ours, theirs = _both(lambda cls: cls, fit)
    for key in ("split0_test_score", "split1_test_score", "split2_test_score", "mean_test_score", "std_test_score",
                "rank_test_score", "mean_train_score", "std_train_score"):
        np.testing.assert_allclose(_means(ours, key), _means(theirs, key), err_msg=key)
    assert _means(ours, "split2_test_score")[1] == -np.inf and np.isnan(_means(ours)[1])
    errors = [t.error for t in ours.study_.trials if t.error]  # type: ignore[attr-defined]
    assert len(errors) == 2 and all("the scorer returned infinite scores" in e for e in errors), errors


def test_a_used_up_generator_cv_is_refused_before_a_trial_is_recorded(tmp_path: object) -> None:
    """cv=KFold(3).split(X) is a generator: the second fit found no fold, and failed its first trial
    (recorded in the stored study) with cross_validate's "folds is empty", which does not say why."""
    from sklearn.model_selection import KFold

    url = f"sqlite:///{tmp_path}/search.db"
    search = TunedSearchCV(LogisticRegression(), GRID, cv=KFold(3, shuffle=True, random_state=0).split(X),
                           n_trials=1, storage=url, name="gen")
    search.fit(X, Y)
    assert search.n_splits_ == 3
    search.set_params(n_trials=2)
    with pytest.raises(ValueError, match=r"used up by the first fit; pass cv=KFold\(5\)"):
        search.fit(X, Y)
    assert [t.state.value for t in search.study_.trials] == ["complete"]  # no trial failed for it
    with pytest.raises(ValueError, match=r"cv=\[\] gave no \(train, test\) fold"):
        TunedSearchCV(LogisticRegression(), GRID, cv=[]).fit(X, Y)


def test_a_timeout_before_the_first_configuration_says_so() -> None:
    # before: "All the 0 configurations failed to fit. Errors: no trial completed"
    with pytest.raises(ValueError, match=r"no configuration was evaluated: timeout=1e-09 s passed before the first"):
        TunedSearchCV(LogisticRegression(), GRID, cv=3, timeout=1e-9).fit(X, Y)


@pytest.mark.parametrize("values", [np.array([[0.01, 1.0]]), np.array(1.0)])
def test_an_array_of_values_that_is_not_one_dimensional_is_refused_before_a_fit(values: np.ndarray) -> None:
    # before: a 2-D array was one choice (its row), failing every fit; a 0-d one a bare TypeError
    # ("iteration over a 0-d array"); GridSearchCV refuses both (a 2-D one as not one-dimensional)
    with pytest.raises((ValueError, TypeError), match="one-dimensional|unsized"):
        GridSearchCV(LogisticRegression(), {"C": values}).fit(X, Y)
    shape = re.escape(str(values.shape))
    with pytest.raises(ValueError, match=f"parameter 'C': an array of values is one-dimensional, got one of shape {shape}"):
        TunedSearchCV(LogisticRegression(), {"C": values}, cv=3).fit(X, Y)
