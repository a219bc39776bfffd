"""study.evaluate_best: the top-k re-evaluated on a test split, recorded apart from the search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.cli import main
from tunesmith.study import evaluate
from tunesmith.study.manage import import_study, making_companion


def _study(url: str | None = None, name: str = "s") -> ts.Study:
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0, storage=url, name=name)
    study.optimize(lambda t: t.params["x"], n_trials=12)
    return study


def test_fewer_complete_trials_than_k_are_evaluated_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # before: 2 rows for k=3 and no word why (fold racing leaves few complete trials)
    study = ts.Study({"x": ts.Float(0, 1)}, name="few")
    study.add_trial({"x": 0.2}, 0.2)
    study.add_trial({"x": 0.4}, 0.4)
    with caplog.at_level("WARNING", logger="tunesmith"):
        result = study.evaluate_best(lambda t: t.params["x"], k=3)
    assert len(result.results) == 2
    assert "study 'few' has 2 complete trial(s) of distinct configurations, fewer than k=3; evaluating those" in caplog.text


@pytest.mark.parametrize("fails", [RuntimeError("no such checkpoint"), float("nan")])
def test_a_test_function_failing_for_one_configuration_says_which_and_what_is_recorded(
    fails: object, caplog: pytest.LogCaptureFixture
) -> None:
    # before: the error alone ("no such checkpoint"), without the trial, while the results of the
    # configurations before it were recorded and those after it were not
    study = _study()
    top = [t.number for t in evaluate.ranked(study)]

    def test_score(trial: ts.FrozenTrial) -> float:
        if trial.number == top[2]:
            if isinstance(fails, Exception):
                raise fails
            return fails  # type: ignore[return-value]
        return 0.5

    with caplog.at_level("WARNING", logger="tunesmith"), pytest.raises((RuntimeError, ValueError)):
        study.evaluate_best(test_score, k=4)
    assert (f"the test function failed for trial {top[2]} (x={study.trials[top[2]].params['x']:.3g}); the test "
            f"results of trial(s) {top[:2]} are recorded, the other 2 of the top 4 are not evaluated") in caplog.text
    assert sorted(evaluate.test_results(study)) == sorted(top[:2])
    caplog.clear()  # the first failing: "the test results of trial(s) none are recorded, the other 2 of the top 2"
    with caplog.at_level("WARNING", logger="tunesmith"), pytest.raises(ZeroDivisionError):
        study.evaluate_best(lambda trial: 1 / 0, k=2)
    assert f"(x={study.trials[top[0]].params['x']:.3g}); no test result is recorded (the top 2 are not evaluated)" in caplog.text
    caplog.clear()  # k=1: "(the top 1 are not evaluated)"
    with caplog.at_level("WARNING", logger="tunesmith"), pytest.raises(ZeroDivisionError):
        study.evaluate_best(lambda trial: 1 / 0, k=1)
    assert caplog.text.rstrip().endswith("; no test result is recorded"), caplog.text
    caplog.clear()  # one left: "the other 1 of the top 2 are not evaluated"
    with caplog.at_level("WARNING", logger="tunesmith"), pytest.raises(ZeroDivisionError):
        study.evaluate_best(lambda trial: 1 / (trial.number != top[1]), k=2)
    assert f"results of trial(s) {top[:1]} are recorded, the other 1 of the top 2 is not evaluated" in caplog.text


def test_evaluating_again_says_nothing_of_the_companion_it_reopens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A second evaluate_best logged "study 's:test' in ... holds 2 trials: resuming it (its trials count
    as this objective's; another name starts a new study)" of the companion keeping the test results,
    a study the user never opened; the study itself, reopened with its space, still says so."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    _study(url).evaluate_best(lambda t: 0.5, k=2)
    with caplog.at_level("INFO", logger="tunesmith"):
        ts.Study({"x": ts.Float(0, 1)}, direction="maximize", storage=url, name="s").evaluate_best(lambda t: 0.6, k=2)
    said = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("study 's' in sqlite:///") and "holds 12 trials" in said[0], said
    assert [r.mean for r in evaluate.test_results(ts.load_study("s", url)).values()] == [0.6, 0.6]


def test_export_and_import_carry_the_test_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: `tunesmith import` of what `export --format json` wrote lost every evaluate_best result
    src, dst = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    study = _study(src)
    study.evaluate_best(lambda t, seed: t.params["x"] - 0.01 * seed, k=2, seeds=[0, 1])
    out = tmp_path / "s.json"
    assert main(["export", "s", "--storage", src, "--format", "json", "-o", str(out)]) == 0
    assert main(["import", str(out), "--storage", dst]) == 0
    before, after = evaluate.test_results(study), evaluate.test_results(ts.load_study("s", dst))
    assert len(after) == 2 and after == before
    doc = json.loads(out.read_text())
    doc["test_results"][0]["values"] = 5  # not what export writes: refused, and nothing half-imported stays
    with pytest.raises(ValueError, match="test_results: the result of trial .*; it is not what tunesmith export wrote"):
        import_study(doc, dst, name="t")
    assert [s.name for s in ts.storage.make_storage(dst).list_studies()] == ["s", "s:test"]


def test_the_winner_is_named_by_test_and_best_trial_stays(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = _study(url)
    best = study.best_trial
    top3 = sorted((t for t in study.trials), key=lambda t: -float(t.value))[:3]  # type: ignore[arg-type]
    # on the test split, the smaller x generalizes better: the search's third is the winner
    ev = study.evaluate_best(lambda t: 1.0 - t.params["x"], k=3)
    assert [r.trial for r in ev.results] == [t.number for t in top3]
    assert ev.winner.trial == top3[2].number
    assert study.best_trial == best and len(study.trials) == 12  # the search's record is unchanged
    r = ev.results[0]
    assert r.gap == pytest.approx(r.validation - r.mean) and r.std == 0.0 and r.seeds == (None,)
    again = ts.load_study("s", url)
    assert {n: x.mean for n, x in evaluate.test_results(again).items()} == {x.trial: x.mean for x in ev.results}
    assert len(again.trials) == 12 and all("test" not in t.attrs for t in again.trials)


def test_the_table_of_single_scores_is_no_wider_than_its_numbers() -> None:
    """Without seeds the test column was 16 wide (room for "0.3751 ± 0.0027"), so a single score stood
    far right of its header's neighbour: "validation              test"."""
    ev = _study().evaluate_best(lambda t: 1.0 - t.params["x"], k=2)  # test scores unlike validation ones
    header, first = str(ev).splitlines()[:2]
    assert header.startswith("trial  validation        test  ")
    assert header.index("test") + 4 == first.index(f"{ev.results[0].mean:.4g}") + len(f"{ev.results[0].mean:.4g}")


def test_seeds_give_a_mean_and_a_spread() -> None:
    study = _study()
    ev = study.evaluate_best(lambda t, seed: t.params["x"] - 0.01 * seed, k=2, seeds=[0, 1, 2])
    for r in ev.results:
        assert r.values == pytest.approx((r.validation, r.validation - 0.01, r.validation - 0.02))
        assert r.mean == pytest.approx(r.validation - 0.01) and r.std == pytest.approx(0.00816, abs=1e-4)
        assert r.gap == pytest.approx(0.01)
    assert "winner by test" in str(ev) and "±" in str(ev)


def test_scores_near_the_float_limit_have_a_finite_mean_and_spread() -> None:
    """The mean of 1e308 and 1.5e308 overflowed to inf, refused as "add_trial: value must be a finite
    number", naming a call the user never made."""
    study = _study()
    ev = study.evaluate_best(lambda t, seed: (1.0 + 0.5 * seed) * 1e308, k=1, seeds=[0, 1])
    assert ev.results[0].mean == pytest.approx(1.25e308) and ev.results[0].std == pytest.approx(0.25e308)


def test_seeds_an_estimator_ignores_give_a_spread_of_zero() -> None:
    """A Ridge inside TunedSearchCV.evaluate_best(seeds=[0, 1, 2]) scores the same on every seed:
    the table printed "0.3589 ± 5.6e-17" (np.std of three equal floats) and a mean off by an ulp."""
    study = _study()
    v = 0.3589184202814383
    ev = study.evaluate_best(lambda t, seed: v, k=2, seeds=[0, 1, 2])
    assert all(r.std == 0.0 and r.mean == v for r in ev.results)
    assert "0.3589 ± 0 " in str(ev) and "e-17" not in str(ev)


def test_bad_arguments_are_named() -> None:
    study = _study()
    with pytest.raises(ValueError, match="k must be a positive integer"):
        study.evaluate_best(lambda t: 0.0, k=0)
    with pytest.raises(TypeError, match=r"calls fn\(trial, seed\)"):
        study.evaluate_best(lambda t: 0.0, seeds=[1, 2])
    with pytest.raises(ValueError, match="return a finite number"):
        study.evaluate_best(lambda t: float("nan"))
    # 10**400 ended with Python's 'int too large to convert to float'; a boolean was the score 1.0
    with pytest.raises(ValueError, match="the test function returned inf for trial .*; return a finite number"):
        study.evaluate_best(lambda t: 10**400)
    with pytest.raises(TypeError, match=r"the test function returned np.True_ for trial .*; return a number"):
        study.evaluate_best(lambda t: np.bool_(True))
    empty = ts.Study({"x": ts.Float(0, 1)})
    with pytest.raises(ValueError, match="no complete trial"):
        empty.evaluate_best(lambda t: 0.0)


def test_show_prints_validation_next_to_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = _study(url)
    assert main(["show", "s", "--storage", url]) == 0
    assert "held-out test" not in capsys.readouterr().out
    study.evaluate_best(lambda t: t.params["x"] - 0.25, k=2)
    assert main(["show", "s", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "held-out test" in out and "+0.25" in out and "winner by test" in out


def test_test_results_follow_their_study_through_rename_copy_and_delete(tmp_path: Path) -> None:
    from tunesmith.study.evaluate import test_results

    url = f"sqlite:///{tmp_path / 'm.db'}"
    s = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="ev", sampler="random", seed=0)
    s.optimize(lambda t: t.params["x"], n_trials=6)
    s.evaluate_best(lambda t: t.params["x"] + 0.1, k=2)
    s.rename("ev2")  # the companion 'ev:test' was left behind: show lost the test table
    assert len(test_results(ts.load_study("ev2", url))) == 2
    copy = s.copy("ev3")
    assert len(test_results(copy)) == 2 and len(test_results(ts.load_study("ev2", url))) == 2
    s.delete()  # an orphan 'ev2:test' would be shown by a new study named 'ev2'
    fresh = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="ev2", sampler="random", seed=0)
    assert test_results(fresh) == {}
    with making_companion():  # results left by an older version (a name users cannot create)
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="old:test")
    with pytest.raises(ValueError, match=r"'old:test' \(the test results of a study named 'old'\) already exists"):
        copy.rename("old")
    names = {r.name for r in copy.storage.list_studies()}
    assert names == {"ev2", "ev3", "ev3:test", "old:test"}


def test_tunesmith_delete_removes_the_test_results_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    study = _study(url)
    study.evaluate_best(lambda t: t.params["x"], k=2)
    assert main(["delete", "s", "--storage", url, "--yes"]) == 0
    assert [r.name for r in ts.storage.make_storage(url).list_studies()] == []


def test_studies_lists_test_results_in_their_study_s_row_and_all_lists_the_companion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'s:test' was listed as a study of its own by ``tunesmith studies``."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    study = _study(url)
    study.evaluate_best(lambda t: t.params["x"], k=2)
    with making_companion():  # made by an older version: no study 'lone', so listed as a study
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="lone:test")
    assert main(["studies", "--storage", url]) == 0
    out, err = capsys.readouterr()
    # the note went to stdout, where `tunesmith studies | grep test` found it: notes go to stderr
    assert "s:test" not in out and "lone:test" in out and "--all lists them too" in err and "--all" not in out
    row = next(line for line in out.splitlines() if "│ s " in line)
    assert row.rstrip(" │").endswith(" 2")  # the test results column: 2 trials evaluated on test
    assert main(["studies", "--storage", url, "--all"]) == 0
    out = capsys.readouterr().out
    assert "s:test" in out and "--all" not in out
    assert main(["copy", "s", "t", "--storage", url]) == 0
    assert main(["rename", "t", "u", "--storage", url]) == 0
    assert main(["studies", "--storage", url, "--all"]) == 0
    out = capsys.readouterr().out
    assert "u:test" in out and "t:test" not in out


def test_numpy_counts_and_seeds_work_as_python_ones(tmp_path: Path) -> None:
    import numpy as np

    study = _study(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ev = study.evaluate_best(lambda t, seed: t.params["x"] - 0.01 * seed, k=np.int64(2), seeds=np.arange(3))
    assert len(ev.results) == 2 and ev.results[0].seeds == (0, 1, 2)
    assert all(type(s) is int for s in ev.results[0].seeds)  # stored as JSON integers
    assert evaluate.test_results(study)[ev.results[0].trial].seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="seeds must be a non-empty list of integers"):
        study.evaluate_best(lambda t, seed: 0.0, seeds=np.array([0.5]))


def test_the_printed_table_keeps_its_columns_in_line_for_any_gap() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=4)
    top = evaluate.ranked(study)
    shift = {top[0].number: 0.000774, top[1].number: -0.02, top[2].number: 7.7e-05}  # gaps 9, 5 and 9 wide
    text = str(study.evaluate_best(lambda t: t.value + shift[t.number], k=3))
    starts = {line.index("x=") for line in text.splitlines()[1:]}
    assert len(starts) == 1 and text.splitlines()[0].index("params") in starts


@pytest.mark.parametrize("name", ["model:test", ".", ".."])
def test_a_new_study_is_refused_a_name_it_could_not_be_told_apart_by(name: str, tmp_path) -> None:
    """Before: a study named "model:test" was taken for the test results of a study "model" (left out
    of the studies list, its trials read as test results), and one named "." or ".." could not be
    opened from the dashboard (a browser reads /studies/.. as the folder itself)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match="choose another name"):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name=name)
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="model")
    study.add_trial({"x": 0.5}, 1.0)
    for move in (lambda: study.rename(name), lambda: study.copy(name)):
        with pytest.raises(ValueError, match="choose another name"):
            move()
    assert [s.name for s in ts.storage.make_storage(url).list_studies()] == ["model"]
    # one that exists already (made before this rule, or by the storage) stays readable
    assert _stored(url, name).trials == []
    ev = study.evaluate_best(lambda t: t.params["x"], k=1)  # evaluate_best's own companion is still made
    assert ev.results[0].mean == 0.5


def _stored(url: str, name: str) -> ts.Study:
    """A study made in the storage itself (as an older version or a script could), under any name."""
    ts.storage.make_storage(url).create_study(name, direction=ts.Direction.MINIMIZE,
                                              space=ts.Space({"x": ts.Float(0, 1)}).to_dict(), config={})
    return ts.Study.load(name, url, sampler="random")


def test_the_objective_s_own_reading_of_a_trial_works_in_the_test_function() -> None:
    """evaluate_best hands fn a FrozenTrial, which had no ``trial["x"]`` as the running Trial has,
    so a test function sharing the objective's code failed with "not subscriptable"."""
    def score(trial: ts.Trial | ts.FrozenTrial) -> float:
        return float(trial["x"])

    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0)
    study.optimize(score, n_trials=4)
    ev = study.evaluate_best(score, k=2)
    assert [r.mean for r in ev.results] == [r.validation for r in ev.results]


def test_a_study_named_too_long_for_test_results_is_shown_deleted_and_told_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study of 508 to 512 characters (allowed) could not be shown, reported or deleted: each looked
    up its test results under a name over the limit; evaluate_best said '515 characters is too long'."""
    from tunesmith.dashboard.cache import StudyCache

    url, name = f"sqlite:///{tmp_path / 'l.db'}", "a" * 510
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=url, name=name)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    with pytest.raises(ValueError, match="has 510 characters: the study's test results .* at most 507"):
        study.evaluate_best(lambda t: t.params["x"], k=1)
    assert main(["show", name, "--storage", url]) == 0
    assert main(["report", name, "--storage", url, "-o", str(tmp_path / "r.html")]) == 0
    cache = StudyCache(study.storage)
    assert cache.snapshot(cache.view(name)).tests == {}
    assert main(["delete", name, "--storage", url, "--yes"]) == 0
    assert ts.SQLStorage(url).list_studies() == []
    tested = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=url, name="t")
    tested.optimize(lambda t: t.params["x"], n_trials=3)
    tested.evaluate_best(lambda t: t.params["x"], k=1)
    for move in (tested.rename, tested.copy):  # its test results would have no name: refused before any change
        with pytest.raises(ValueError, match="has 510 characters: the study's test results .* at most 507"):
            move(name)
    assert sorted(r.name for r in ts.SQLStorage(url).list_studies()) == ["t", "t:test"]


def test_many_repeated_configurations_are_logged_as_a_count_and_the_first_ten(caplog: pytest.LogCaptureFixture) -> None:
    """A space of two configurations searched 300 times: the repeats passed over were logged as the whole
    list of their numbers, a line of some 1,500 characters."""
    study = ts.Study({"c": ts.Categorical(["a", "b"])}, direction="minimize", sampler="random", seed=0)
    study.optimize(lambda t: 0.0 if t.params["c"] == "a" else 1.0, n_trials=300, show_progress=False)
    with caplog.at_level("INFO", logger="tunesmith"):
        result = study.evaluate_best(lambda t: 1.0, k=3)
    assert sorted(r.params["c"] for r in result.results) == ["a", "b"]
    [said] = [r.getMessage() for r in caplog.records if "repeat the configuration" in r.getMessage()]
    assert said.startswith("evaluate_best: study") and ", 298 trial(s) [" in said and "] ... repeat" in said
    assert len(said) < 300
