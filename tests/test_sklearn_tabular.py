"""TunedSearchCV as a tabular-data practitioner meets it: a Pipeline with a ColumnTransformer over a frame of
numeric and categorical columns, several scorers, the study read back from the shell and the report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")
from scipy.stats import loguniform  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from tunesmith.cli import main  # noqa: E402
from tunesmith.cv import SETUP_ATTR  # noqa: E402
from tunesmith.plots.study_data import learning_curves  # noqa: E402
from tunesmith.report import build_report  # noqa: E402
from tunesmith.sklearn import TunedSearchCV  # noqa: E402


def _frame(n: int = 160) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(45, 12, n), "city": rng.choice(["paris", "lyon", "nice"], n)})  # noqa: N806
    y = ((X["age"] > 45) ^ (rng.random(n) < 0.2) | (X["city"] == "nice")).to_numpy().astype(int)
    return X, y


def _pipe() -> Pipeline:
    pre = ColumnTransformer([("num", StandardScaler(), ["age"]), ("cat", OneHotEncoder(), ["city"])])
    return Pipeline([("pre", pre), ("clf", LogisticRegression())])


@pytest.mark.parametrize(("scoring", "refit", "shown", "setting"), [
    (["accuracy", "roc_auc"], "roc_auc", "roc_auc", "scoring accuracy, roc_auc (the value: roc_auc)"),  # not the first
    ("f1", True, "f1", "scoring f1"),
    (None, True, None, "scoring the estimator's score"),  # nothing to name in the value column
])
def test_show_the_report_and_the_curves_name_the_scorer_a_search_optimized(
    scoring: object, refit: object, shown: str | None, setting: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-2, 1e2)}, n_trials=3, cv=3, scoring=scoring,
                           refit=refit, random_state=0, storage=url, name="tab").fit(X, y)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", "tab", "--storage", url]) == 0
    out = capsys.readouterr().out
    report = build_report(search.study_, sections=[])
    chart = learning_curves(search.study_)
    page = _dashboard_page(url, "/studies/tab")
    assert chart.x_label == "fold"  # fold k reports the mean of folds 1..k, not an epoch
    search_row = f"TunedSearchCV of Pipeline, {setting}, 3-fold cross-validation"
    assert f"<td class=l>search</td><td class=l>{html.escape(search_row)}</td>" in report  # the settings' row
    if shown is None:
        assert "value (" not in out and "validation value (" not in report and "<th>value</th>" in page
        assert chart.y_label == "mean score of folds 1..k"
    else:
        assert f"value ({shown})" in out and f"validation value ({shown})" in report
        assert f"<th>value ({shown})</th>" in page  # the dashboard's trials table
        assert chart.y_label == f"mean {shown} of folds 1..k"


def _dashboard_page(url: str, path: str) -> str:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    return TestClient(create_app(open_storage(url, allow_writes=False))).get(path).text


def test_a_study_without_folds_keeps_its_steps_and_reports() -> None:
    import tunesmith as ts

    study = ts.Study(ts.Space({"x": ts.Float(0.0, 1.0)}), sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        trial.report(trial.params["x"], 1)
        return float(trial.params["x"])

    study.optimize(objective, n_trials=2)
    chart = learning_curves(study)
    assert (chart.x_label, chart.y_label) == ("step", "reported value")


def test_a_space_naming_a_steps_parameters_without_its_prefix_is_told_to_prefix_them() -> None:
    X, y = _frame()  # noqa: N806
    preset = {"C": loguniform(1e-2, 1e2), "tol": [1e-4, 1e-3]}  # a model's own names, as a preset space gives them
    with pytest.raises(ValueError, match=r"step 'clf' without the step's prefix") as err:
        TunedSearchCV(_pipe(), preset, n_trials=2, cv=3).fit(X, y)
    assert "{'clf__' + k: v for k, v in space.items()}" in str(err.value)
    prefixed = {"clf__" + k: v for k, v in preset.items()}  # what the message says to write runs
    assert set(TunedSearchCV(_pipe(), prefixed, n_trials=2, cv=3, random_state=0).fit(X, y).best_params_) == set(prefixed)
    with pytest.raises(ValueError, match=r"did you mean 'clf__tol'"):  # one misspelt name: the closest one
        TunedSearchCV(_pipe(), {"clf__C": [1.0], "clf__tl": [1e-4]}, cv=3).fit(X, y)


def test_optuna_search_cv_s_attributes_say_what_to_write() -> None:
    X, y = _frame()  # noqa: N806
    search = TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-2, 1e2)}, n_trials=3, cv=3, random_state=0).fit(X, y)
    with pytest.raises(AttributeError, match=r"OptunaSearchCV's name; write search\.study_\.trials"):
        search.trials_  # noqa: B018
    with pytest.raises(AttributeError, match=r"write search\.study_\.best_trial"):
        search.best_trial_  # noqa: B018
    with pytest.raises(AttributeError, match=r"write len\(search\.cv_results_\['params'\]\)"):
        search.n_trials_  # noqa: B018
    assert len(search.cv_results_["params"]) == len(search.study_.trials) == 3
    assert search.study_.best_trial.number == search.cv_results_["trial_number"][search.best_index_]
    with pytest.raises(AttributeError, match=r"no attribute 'nothing_'$"):  # any other name: a plain error
        search.nothing_  # noqa: B018
    assert hasattr(search, "predict_proba") and not hasattr(search, "transform")  # the delegation still answers


def test_a_frame_of_text_columns_without_an_encoder_says_how_to_see_the_first_error() -> None:
    X, y = _frame()  # noqa: N806
    with pytest.raises(ValueError, match=r"All the 2 configurations failed to fit\. Errors: ValueError: could not "
                                         r"convert string to float.*error_score='raise' raises the first error"):
        TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)  # "city" holds text
    with pytest.raises(ValueError, match=r"could not convert string to float"):  # what the advice gives
        TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, error_score="raise").fit(X, y)


def test_focus_from_the_shell_tells_a_search_to_fit_a_search_on_the_focused_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tunesmith as ts

    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = {"clf__C": loguniform(1e-2, 1e2), "clf__tol": [1e-4, 1e-3]}
    TunedSearchCV(_pipe(), space, n_trials=3, cv=3, random_state=0, storage=url, name="tab").fit(X, y)
    assert main(["focus", "tab", "--keep", "clf__C", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "fit a search on it" in out and "TunedSearchCV(estimator, Study.load('tab-focus'" in out
    assert "scoring=..., refit=...," in out  # a search resumed with another refit is refused
    assert "optimize(objective" not in out and "tunesmith run" not in out  # a search has no objective
    narrow = ts.Study.load("tab-focus", url)  # what the advice says to write runs, the carried trials counting
    search = TunedSearchCV(_pipe(), narrow.space, n_trials=5, cv=3, storage=url, name="tab-focus").fit(X, y)
    assert len(search.cv_results_["params"]) == 5 and set(search.best_params_) == set(space)


def test_show_and_the_dashboard_name_a_single_scorer_when_the_fit_s_first_trial_is_not_among_the_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-3, 1e2)}, n_trials=6, cv=3, scoring="f1",
                           sampler="random", random_state=0, storage=url, name="tab").fit(X, y)
    first = min(t.number for t in search.study_.trials if SETUP_ATTR in t.attrs)  # the one naming "f1"
    best = search.study_.best_trial.number
    assert first != best  # the fixed seed's draw: the scorer's name is on a trial show --top 1 does not print
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", "tab", "--storage", url, "--top", "1"]) == 0
    assert "value (f1)" in capsys.readouterr().out
    page = _dashboard_page(url, f"/studies/tab?order=best&limit=1&offset={0 if best != first else 1}")
    assert "<th>value (f1)</th>" in page  # a page of the best row only


def test_a_stored_search_resumed_with_refit_naming_another_scorer_is_refused_before_it_mixes_two_scores(
    tmp_path: Path,
) -> None:
    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = {"clf__C": loguniform(1e-2, 1e2)}

    def search(refit: str, n_trials: int) -> TunedSearchCV:
        return TunedSearchCV(_pipe(), space, n_trials=n_trials, cv=3, scoring=["accuracy", "roc_auc"], refit=refit,
                             random_state=0, storage=url, name="tab")

    first = search("roc_auc", 3).fit(X, y)
    values = [t.value for t in first.study_.trials]
    with pytest.raises(ValueError, match=r"holds values of the scorer 'roc_auc'.*Pass refit='roc_auc' to resume"):
        search("accuracy", 5).fit(X, y)
    resumed = search("roc_auc", 5).fit(X, y)  # what the message says to write resumes it
    assert [t.value for t in resumed.study_.trials][:3] == values and len(resumed.study_.trials) == 5
    assert {t.attrs["cv"]["key"] for t in resumed.study_.trials} == {"test_roc_auc"}


def test_the_refusal_of_another_scorer_s_study_words_refit_as_it_was_passed(tmp_path: Path) -> None:
    """refit=False (or a callable) optimizes the first scorer: the refusal said ``(refit='accuracy')``, which the
    user never passed, as if it were their argument."""
    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"

    def search(refit: Any) -> TunedSearchCV:
        return TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3, random_state=0,
                             scoring=["accuracy", "roc_auc"], refit=refit, storage=url, name="tab")

    search("roc_auc").fit(X, y)

    def first(results: Any) -> int:
        return 0

    for refit, words in ((False, "refit=False"), (first, "refit=first")):
        with pytest.raises(ValueError) as got:
            search(refit).fit(X, y)
        said = str(got.value)
        assert f"this search's are 'accuracy''s ({words} optimizes the first scorer)" in said, said
        assert "refit='accuracy'" not in said and "Pass refit='roc_auc' to resume it" in said, said


def test_study_before_fit_raises_scikit_learn_s_not_fitted_error() -> None:
    from sklearn.exceptions import NotFittedError

    search = TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-2, 1e2)}, n_trials=2, cv=3)
    with pytest.raises(NotFittedError, match=r"TunedSearchCV instance is not fitted yet.*before using study_"):
        search.study_  # noqa: B018
    assert not hasattr(search, "study_")  # NotFittedError is an AttributeError: hasattr still answers


def test_evaluate_best_and_show_s_test_table_name_the_scorer_of_the_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = _frame()  # noqa: N806
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = TunedSearchCV(_pipe(), {"clf__C": loguniform(1e-2, 1e2)}, n_trials=4, cv=3,
                           scoring=["accuracy", "roc_auc"], refit="roc_auc", random_state=0, storage=url,
                           name="tab").fit(X[:120], y[:120])
    result = search.evaluate_best(X[:120], y[:120], X[120:], y[120:], k=2)
    assert result.metric == "roc_auc"
    header = str(result).splitlines()[0]
    assert header.split() == ["trial", "validation", "(roc_auc)", "test", "(roc_auc)", "gap", "params"]
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", "tab", "--storage", url]) == 0
    assert "validation (roc_auc)" in capsys.readouterr().out  # the held-out test table's column


def test_the_prefix_advice_keeps_the_names_that_have_theirs_and_names_one_step_of_several_alike() -> None:
    from sklearn.ensemble import VotingClassifier

    X, y = _frame()  # noqa: N806
    mixed = {"pre__num__with_mean": [True, False], "C": loguniform(1e-2, 1e2), "tol": [1e-4, 1e-3]}
    with pytest.raises(ValueError, match=r"Invalid parameters \['C', 'tol'\].*Prefix these names with 'clf__' "
                                         r"\(the space's other names have their prefix\)"):
        TunedSearchCV(_pipe(), mixed, n_trials=2, cv=3).fit(X, y)
    vote = VotingClassifier([("b", LogisticRegression()), ("a", LogisticRegression())])  # C and tol of both
    with pytest.raises(ValueError, match=r"its step 'a' without"):  # the same step whatever the hash seed
        TunedSearchCV(vote, {"C": [1.0], "tol": [1e-4]}, cv=3).fit(np.c_[X["age"]], y)


def test_a_score_of_a_long_name_heads_the_dashboard_s_value_column_cut_as_its_cells_are(tmp_path: Path) -> None:
    import tunesmith as ts

    long = "validation_" + "x" * 5000  # a fold function's own name for its score, or another writer's attrs
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(ts.Space({"x": ts.Float(0.0, 1.0)}), storage=url, name="long", sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        return ts.cv.cross_validate(trial, lambda train, val: {long: trial.params["x"]}, ts.cv.kfold(10, k=2),
                                    key=long)

    study.optimize(objective, n_trials=2)
    page = _dashboard_page(url, "/studies/long")
    assert "<th>value (validation_xxx" in page and "(5,011 characters))</th>" in page and long not in page
