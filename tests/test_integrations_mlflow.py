"""MLflowCallback against a real MLflow tracking store in a temporary folder."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA

pytest.importorskip("mlflow")
from tunesmith.integrations.mlflow import MLflowCallback, experiment_by_name, trial_runs  # noqa: E402

SPACE = ts.Space({"x": ts.Float(0.0, 10.0), "kind": ts.Categorical(["a", "b"])})


def _file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store opt-in
    return (tmp_path / "mlruns").as_uri()


# MLflow's SQLite store migrates its schema when it opens a new file: ~10 s
@pytest.fixture(params=["file", pytest.param("sqlite", marks=pytest.mark.slow)])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "file":
        return _file_store(tmp_path, monkeypatch)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def objective(trial: ts.Trial) -> float:
    """Curves x / step (lower is better); x > 9 fails."""
    if trial.params["x"] > 9:
        raise ValueError("x too large")
    for step in range(max(trial.start_step, 1), 10):
        trial.report(trial.params["x"] / step, step)
        trial.set_attr("checkpoint", "none")  # the curve is its own state: nothing to load
        if trial.should_prune():
            raise ts.TrialPruned()
    return trial.params["x"] / 9


def _check_runs(cb: MLflowCallback, study: ts.Study) -> list[Any]:
    """One run per trial: its params, state, value and reports as the metric history."""
    experiment = cb.client.get_experiment_by_name(study.name)
    runs = trial_runs(cb.client, experiment.experiment_id, study.name)
    assert [int(r.data.tags["tunesmith.trial"]) for r in runs] == [t.number for t in study.trials]
    status = {"complete": "FINISHED", "pruned": "KILLED", "paused": "KILLED", "failed": "FAILED"}
    for run, t in zip(runs, study.trials, strict=True):
        assert run.data.params == {"x": repr(t.params["x"]), "kind": t.params["kind"]}
        assert run.data.tags["tunesmith.state"] == t.state.value
        assert run.info.status == status[t.state.value]
        history = cb.client.get_metric_history(run.info.run_id, "intermediate")
        assert sorted((m.step, m.value) for m in history) == sorted(t.intermediate.items())
        if t.value is not None:
            assert run.data.metrics["value"] == pytest.approx(t.value)
        parent = cb.client.get_run(run.data.tags["mlflow.parentRunId"])
        assert parent.data.tags["tunesmith.study"] == study.name
    return runs


def test_each_trial_is_a_run_under_the_study(tracking_uri: str, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="mlf", sampler="random", seed=1,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9))
    for x in (1.0, 8.0, 9.5):  # a good trial, one ASHA prunes, one that fails
        study.enqueue({"x": x, "kind": "a"})
    cb = MLflowCallback(tracking_uri=tracking_uri)
    study.optimize(objective, n_trials=5, callbacks=[cb], show_progress=False)
    assert [t.state.value for t in study.trials[:3]] == ["complete", "pruned", "failed"]
    assert study.trials[1].last_step is not None and study.trials[1].last_step < 9
    _check_runs(cb, study)

    # reopened in another session: new trials get runs, old ones are not logged twice
    again = ts.Study(storage=storage, name="mlf")
    cb2 = MLflowCallback(tracking_uri=tracking_uri)
    again.optimize(objective, n_trials=2, callbacks=[cb2], show_progress=False)
    cb2.log_study(again)
    assert len(_check_runs(cb2, again)) == 7


def test_a_paused_then_resumed_trial_keeps_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9, pause=True))
    for x in (1.0, 2.0, 3.0, 4.0, 0.5):
        study.enqueue({"x": x, "kind": "b"})
    calls: list[int] = []
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch), experiment="paused")

    def counting(study: ts.Study, trial: ts.FrozenTrial) -> None:
        calls.append(trial.number)
        cb(study, trial)

    study.optimize(objective, n_trials=5, callbacks=[counting], show_progress=False)
    assert len(calls) > len(set(calls)), "no trial was paused and resumed"
    experiment = cb.client.get_experiment_by_name("paused")
    runs = trial_runs(cb.client, experiment.experiment_id, study.name)
    assert len(runs) == len(study.trials)
    for run, t in zip(runs, study.trials, strict=True):
        history = cb.client.get_metric_history(run.info.run_id, "intermediate")
        assert sorted(m.step for m in history) == sorted(t.intermediate)  # each step once


def test_odd_parameter_and_study_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parameter name MLflow refuses is logged with its odd characters as "_" (the study's names
    in a tag); a study name with a quote or a backslash, which an MLflow filter cannot hold, is
    still found again: logging the study twice adds no run."""
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    space = ts.Space({"layers (n)": ts.Int(1, 3), "lr/head": ts.Float(1e-3, 1.0, log=True)})
    name = 'back\\slash "quoted" é'
    study = ts.Study(space, name=name, seed=0)
    study.optimize(lambda t: t.params["lr/head"], n_trials=3, callbacks=[cb], show_progress=False)
    cb.log_study(study)
    MLflowCallback(tracking_uri=cb.client.tracking_uri).log_study(study)  # a new session
    experiment = experiment_by_name(cb.client, name)
    runs = cb.client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 + len(study.trials)  # the study's parent run and one per trial
    logged = trial_runs(cb.client, experiment.experiment_id, name)
    for run, trial in zip(logged, study.trials, strict=True):
        assert run.data.params == {"layers _n_": str(trial.params["layers (n)"]),
                                   "lr/head": repr(trial.params["lr/head"])}  # fmt: skip
        assert json.loads(run.data.tags["tunesmith.param_names"]) == {"layers _n_": "layers (n)"}
    # the file store cannot name an experiment with a quote: an error that gives the way out
    quoted = ts.Study(space, name="it's")
    with pytest.raises(ValueError, match=r"MLflowCallback\(experiment=\.\.\.\).*sqlite"):
        quoted.optimize(lambda t: 1.0, n_trials=1, callbacks=[cb], show_progress=False)
    MLflowCallback(tracking_uri=cb.client.tracking_uri, experiment="its").log_study(quoted)
    assert len(trial_runs(cb.client, experiment_by_name(cb.client, "its").experiment_id, "it's")) == 1


def test_the_names_of_many_renamed_parameters_stay_valid_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 renamed parameters (and one name of 6,000 characters) overflow one tag's 5,000
    characters: the mapping is split over tunesmith.param_names, .2, .3..., each valid JSON."""
    names = [f"layer ({i}) width" for i in range(300)] + ["(" * 6000]
    space = ts.Space({name: ts.Int(1, 3) for name in names})
    study = ts.Study(space, name="wide", seed=0)
    study.optimize(lambda t: 1.0, n_trials=1, show_progress=False)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    cb.log_study(study)
    run = trial_runs(cb.client, experiment_by_name(cb.client, "wide").experiment_id, "wide")[0]
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("tunesmith.param_names")}
    assert len(tags) > 1 and all(len(v) <= 5000 for v in tags.values())
    mapping = {k: v for tag in tags.values() for k, v in json.loads(tag).items()}
    assert sorted(mapping) == sorted(run.data.params)
    assert set(names[:300]) <= set(mapping.values())
    (cut,) = set(mapping.values()) - set(names[:300])  # the long name, cut to fit in a tag
    assert len(cut) > 100 and names[300].startswith(cut)


def test_bad_metric_name_and_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="metric_name must be a non-empty string"):
        MLflowCallback(tracking_uri="sqlite:///:memory:", metric_name="intermediate")
    # MLflow refused it only when the first trial was logged, which stopped the study
    with pytest.raises(ValueError, match=r"refuses the metric name 'val acc \(%\)'.*'val acc ___'"):
        MLflowCallback(tracking_uri="sqlite:///:memory:", metric_name="val acc (%)")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.delitem(sys.modules, "tunesmith.integrations.mlflow")
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[mlflow\]'"):
        importlib.import_module("tunesmith.integrations.mlflow")


def test_a_keyword_that_is_not_one_names_the_one_meant() -> None:
    """MLflowCallback(tracking_url=...) and Optuna's MLflowCallback keywords were a bare "unexpected keyword
    argument", naming neither the keyword meant nor what stands for it here."""
    with pytest.raises(TypeError, match=r"no keyword 'tracking_url' \(did you mean tracking_uri=\?\); its keywords: "
                                        r"tracking_uri, experiment, metric_name, artifact_location"):
        MLflowCallback(tracking_url="sqlite:///:memory:")
    with pytest.raises(TypeError, match=r"'experiment_name' \(did you mean experiment=\?\)"):
        MLflowCallback(experiment_name="cancer")
    with pytest.raises(TypeError, match=r"'tag_trial_user_attrs': a trial's attributes \(trial.set_attr\) are always logged"):
        MLflowCallback(tag_trial_user_attrs=True)
    with pytest.raises(TypeError, match=r"'tag_study_user_attrs': a study has no attributes here, and its dated notes"):
        MLflowCallback(tag_study_user_attrs=True)  # said a trial's attributes were logged, of a study's


def test_the_parent_run_ends_with_optimize_and_is_reopened_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracking, storage = _file_store(tmp_path, monkeypatch), f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="ends", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=tracking)

    def parents() -> list[Any]:
        experiment = cb.client.get_experiment_by_name("ends")
        return [r for r in cb.client.search_runs([experiment.experiment_id])
                if r.data.tags.get("tunesmith.parent") == "true"]

    seen: list[str] = []

    def watch(study: ts.Study, trial: ts.FrozenTrial) -> None:  # after cb: the parent run's status
        seen.append(cb.client.get_run(cb._ids["ends", study.copy_id][1]).info.status)

    study.optimize(objective, n_trials=2, callbacks=[cb, watch], show_progress=False)
    (parent,) = parents()
    assert seen == ["RUNNING", "RUNNING"] and parent.info.status == "FINISHED"
    assert parent.info.end_time is not None

    # resumed in another session: the same parent run, RUNNING while trials log, then FINISHED
    seen.clear()
    cb = MLflowCallback(tracking_uri=tracking)
    again = ts.Study(storage=storage, name="ends")
    study.enqueue({"x": 1.0, "kind": "a"})
    again.optimize(objective, n_trials=1, callbacks=[cb, watch], show_progress=False)
    assert seen == ["RUNNING"]
    (after,) = parents()
    assert after.info.run_id == parent.info.run_id and after.info.status == "FINISHED"
    assert len(trial_runs(cb.client, after.info.experiment_id, "ends")) == 3

    # optimize raises (a callback error, or catch=()): the parent run ends FAILED
    again.enqueue({"x": 2.0, "kind": "a"})
    again.enqueue({"x": 9.5, "kind": "a"})
    with pytest.raises(ValueError, match="x too large"):
        again.optimize(objective, n_trials=3, callbacks=[cb], catch=(), show_progress=False)
    (failed,) = parents()
    assert failed.info.run_id == parent.info.run_id and failed.info.status == "FAILED"

    # a backfill with log_study outside optimize leaves it ended (FINISHED)
    cb.log_study(again)
    assert parents()[0].info.status == "FINISHED"


def _count_searches(cb: MLflowCallback, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filter of each search the callback's (real) client makes from now on."""
    searches: list[str] = []
    search_runs = cb.client.search_runs

    def counted(*args: Any, **kwargs: Any) -> Any:
        searches.append(kwargs.get("filter_string", ""))
        return search_runs(*args, **kwargs)

    monkeypatch.setattr(cb.client, "search_runs", counted)
    return searches


def test_log_study_again_logs_nothing_twice_and_reads_the_runs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_study after optimize logged each trial's value a second time (two points in the
    metric's history) and searched MLflow once per trial (26 s for 200 trials in a file store)."""
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9))
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(objective, n_trials=8, callbacks=[cb], show_progress=False)
    searches = _count_searches(cb, monkeypatch)
    cb.log_study(study)
    cb.log_study(study)
    assert len(searches) == 2, searches  # one read of the study's runs per call
    runs = _check_runs(cb, study)
    for run, t in zip(runs, study.trials, strict=True):
        values = cb.client.get_metric_history(run.info.run_id, "value")
        assert [m.value for m in values] == ([t.value] if t.value is not None else []), t.number


def test_a_trials_attributes_are_tags_of_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """trial.set_attr(...) (a best iteration, a note) reached neither the run nor MLflow's UI."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))

    def with_attrs(trial: ts.Trial) -> float:
        trial.set_attr("best_iteration", 12)
        trial.set_attr("note (why)", "early stop")
        for i in range(120):  # more than MLflow takes in one call
            trial.set_attr(f"fold_{i}", i)
        return trial.params["x"]

    study.optimize(with_attrs, n_trials=1, callbacks=[cb], show_progress=False)
    [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(study.name).experiment_id, study.name)
    assert run.data.tags["attr.best_iteration"] == "12"
    assert run.data.tags["attr.note _why_"] == "early stop"
    assert run.data.tags["attr.fold_119"] == "119"


def test_logging_a_trial_does_not_search_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each trial's run was looked up with a search, which reads every run of a file store: the
    time to log a trial grew with the study (55 ms at the start of a 400-trial study, 213 ms at its
    end). The runs are read once; a paused and resumed trial still keeps its one run."""
    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9, pause=True))
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    searches = _count_searches(cb, monkeypatch)
    study.optimize(objective, n_trials=12, callbacks=[cb], show_progress=False)
    assert len(searches) <= 2, searches  # the parent run, then the study's runs
    _check_runs(cb, study)


def test_a_value_longer_than_a_tag_is_kept_whole_as_an_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: attributes and errors were cut at 5,000 characters (MLflow 3 takes 8,000), the rest
    lost without a word. Now the tag holds the start and says where the whole value is."""
    from mlflow.utils.validation import (
        MAX_TAG_VAL_LENGTH as _TAG_LIMIT,  # the installed MLflow's limit
    )

    study = ts.Study(SPACE, sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    log, error = "step loss\n" * 2_000, "x" * (_TAG_LIMIT + 1)

    def noisy(trial: ts.Trial) -> float:
        trial.set_attr("log", log)
        trial.set_attr("short", "ok")
        raise ValueError(error)

    study.optimize(noisy, n_trials=1, callbacks=[cb], catch=(ValueError,), show_progress=False)
    [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(study.name).experiment_id, study.name)
    tags = run.data.tags
    assert tags["attr.short"] == "ok"
    for key, whole in (("attr.log", log), ("tunesmith.error", study.trials[0].error)):
        assert len(tags[key]) <= _TAG_LIMIT and whole.startswith(tags[key].split("... (")[0])
        assert tags[key].endswith(f"({len(whole):,} characters; the whole value: tunesmith/{key}.txt)")
        path = cb.client.download_artifacts(run.info.run_id, f"tunesmith/{key}.txt", str(tmp_path))
        assert Path(path).read_text() == whole


def test_two_studies_of_one_name_log_to_runs_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs were found by the study's name: a second study named "s" (another storage, or one
    deleted and made again) had its complete trials 0 and 1 taken as already logged, its runs
    holding the first study's parameters and values, and its trial 2 nested under the first
    study's parent run. Runs now carry the study's id (study.copy_id); runs logged before that
    tag are the study's when they started once it existed."""
    uri = _file_store(tmp_path, monkeypatch)
    space = ts.Space({"x": ts.Float(0.0, 10.0)})
    a = ts.Study(space, name="s", sampler="random", seed=0)
    a.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    b = ts.Study(space, name="s", sampler="random", seed=1)
    b.optimize(lambda t: t.params["x"], n_trials=3, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    cb = MLflowCallback(tracking_uri=uri)
    experiment = cb.client.get_experiment_by_name("s").experiment_id
    runs = trial_runs(cb.client, experiment, "s")
    logged = {(int(r.data.tags["tunesmith.trial"]), r.data.params["x"], r.data.metrics["value"]) for r in runs}
    assert {(t.number, repr(t.value), t.value) for t in a.trials + b.trials} == logged
    parents = {r.data.tags["tunesmith.study_id"]: r.info.run_id for r in cb.client.search_runs(
        [experiment], "tags.`tunesmith.parent` = 'true'")}  # fmt: skip
    assert set(parents) == {a.copy_id, b.copy_id}
    for study in (a, b):
        own = {int(r.data.tags["tunesmith.trial"]): r for r in runs if r.data.tags["tunesmith.study_id"] == study.copy_id}
        assert sorted(own) == [t.number for t in study.trials]
        for t in study.trials:
            assert own[t.number].data.metrics["value"] == t.value and own[t.number].data.params == {"x": repr(t.value)}
            assert own[t.number].data.tags["mlflow.parentRunId"] == parents[study.copy_id]
    for run in cb.client.search_runs([experiment]):  # as an earlier tunesmith logged them: no id tag
        cb.client.delete_tag(run.info.run_id, "tunesmith.study_id")
    with pytest.warns(UserWarning, match=r"3 run\(s\) of study 's' carry no 'tunesmith.study_id' tag"):
        cb.log_study(b)  # b's runs (started once b existed) are found again, a's are not taken for b's
    assert len(cb.client.search_runs([experiment])) == 2 + 2 + 3


def test_one_callback_logs_two_studies_of_one_name_to_runs_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One MLflowCallback given to two studies named "s" (deleted and made again in a notebook,
    or two storages) kept the first study's parent run and trial runs by the name: the second
    study's trials 0 and 1 updated the first study's runs (their values, states and reports
    over the first's) and its trials were nested under the first study's parent."""
    uri = _file_store(tmp_path, monkeypatch)
    space = ts.Space({"x": ts.Float(0.0, 10.0)})
    cb = MLflowCallback(tracking_uri=uri)
    a = ts.Study(space, name="s", sampler="random", seed=0)
    a.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[cb], show_progress=False)
    b = ts.Study(space, name="s", sampler="random", seed=1)
    b.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[cb], show_progress=False)
    experiment = cb.client.get_experiment_by_name("s").experiment_id
    runs = trial_runs(cb.client, experiment, "s")
    logged = {(r.data.tags["tunesmith.study_id"], int(r.data.tags["tunesmith.trial"]), r.data.metrics["value"]) for r in runs}
    assert logged == {(s.copy_id, t.number, t.value) for s in (a, b) for t in s.trials}
    parents = {r.data.tags["tunesmith.study_id"]: r for r in cb.client.search_runs([experiment], "tags.`tunesmith.parent` = 'true'")}
    assert set(parents) == {a.copy_id, b.copy_id} and {p.info.status for p in parents.values()} == {"FINISHED"}
    assert all(r.data.tags["mlflow.parentRunId"] == parents[r.data.tags["tunesmith.study_id"]].info.run_id for r in runs)


@pytest.mark.slow  # MLflow's SQLite store migrates a new file (~10 s)
def test_a_sql_store_s_artifacts_go_where_artifact_location_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a SQLite store an experiment's artifacts (a value longer than a tag) went to ./mlruns of
    whatever folder the process ran in, outside the store's folder; artifact_location= puts them
    where it says, and nothing is written in the working folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cb = MLflowCallback(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=tmp_path / "artifacts")
    study = ts.Study(SPACE, sampler="random", seed=0, name="sql-artifacts")
    long = "y" * 9_000

    def keeps_a_long_attr(trial: ts.Trial) -> float:
        trial.set_attr("long", long)
        return 0.0

    study.optimize(keeps_a_long_attr, n_trials=1, callbacks=[cb], show_progress=False)
    [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(study.name).experiment_id, study.name)
    assert run.info.artifact_uri.startswith(str(tmp_path / "artifacts"))
    assert [p.read_text() for p in (tmp_path / "artifacts").rglob("attr.long.txt")] == [long]
    assert list(work.iterdir()) == []
    with pytest.raises(TypeError, match="artifact_location must be a string or None"):
        MLflowCallback(artifact_location=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="artifact_location is empty; pass a folder or URI, or None"):
        MLflowCallback(artifact_location=" ")  # taken as MLflow's default before


@pytest.mark.slow  # MLflow's SQLite store migrates a new file (~10 s)
def test_an_artifact_location_under_home_lands_in_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """artifact_location="~/x" was handed to MLflow as it was, and MLflow (which expands no ~) kept the
    artifacts in a folder literally named "~" in the working folder. Now "~" is the home folder, as a
    string and as a Path; a home that does not exist ("~nosuchuser") is refused, as a Path too (not
    pathlib's "Could not determine home directory")."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    long = "y" * 9_000  # longer than a tag: kept as an artifact

    def keeps_a_long_attr(trial: ts.Trial) -> float:
        trial.set_attr("long", long)
        return 0.0

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name, location in (("as-text", "~/arts"), ("as-path", Path("~") / "arts-path")):
        cb = MLflowCallback(tracking_uri=uri, artifact_location=location)
        study = ts.Study(SPACE, sampler="random", seed=0, name=name)
        study.optimize(keeps_a_long_attr, n_trials=1, callbacks=[cb], show_progress=False)
        [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(name).experiment_id, name)
        folder = home / Path(location).name
        assert run.info.artifact_uri.startswith(str(folder)), run.info.artifact_uri
        assert [p.read_text() for p in folder.rglob("attr.long.txt")] == [long]
    assert list(work.iterdir()) == []  # no folder named "~"
    for nowhere in ("~tunesmith-no-such-user/arts", Path("~tunesmith-no-such-user/arts")):  # a Path: a RuntimeError
        with pytest.raises(ValueError, match=r"'~tunesmith-no-such-user/arts' starts with a home folder that does not exist"):
            MLflowCallback(tracking_uri=uri, artifact_location=nowhere)


def test_a_failing_mlflow_store_ends_optimize_but_keeps_the_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow failing in the callback (here its file store's folder is a file) ends optimize with
    MLflow's error once the trial is recorded: the trial stays complete in the study, and
    log_study logs it once the store works."""
    failing = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch).replace("mlruns", "blocked"))
    shutil.rmtree(tmp_path / "blocked")
    (tmp_path / "blocked").write_text("not a folder")  # the store's folder gone: each call of MLflow fails
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'ts.db'}", name="kept")
    with pytest.raises(Exception) as raised:  # noqa: PT011 - MLflow's own error, whichever it raises
        study.optimize(objective, n_trials=3, callbacks=[failing], show_progress=False)
    assert "blocked" in str(raised.value)
    assert [t.state for t in ts.load_study("kept", f"sqlite:///{tmp_path / 'ts.db'}").trials] == [ts.TrialState.COMPLETE]
    cb = MLflowCallback(tracking_uri=(tmp_path / "mlruns").as_uri())
    cb.log_study(study)
    _check_runs(cb, study)


@pytest.mark.parametrize("tag", ["not a number", "1" * 5000, "-1", "٣"])
def test_a_run_whose_trial_tag_is_no_number_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str) -> None:
    """A run of the study's experiment tagged with its name and a trial tag that is no trial number
    (another user of a shared tracking store made it) ended every later optimize logging the study
    with int()'s "invalid literal"; it is none of the study's runs, and the trials are logged."""
    uri = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, sampler="random", seed=0, name="shared")
    study.optimize(objective, n_trials=2, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    client = MLflowCallback(tracking_uri=uri).client
    experiment = client.get_experiment_by_name("shared").experiment_id
    client.create_run(experiment, tags={"tunesmith.study": "shared", "tunesmith.trial": tag})
    cb = MLflowCallback(tracking_uri=uri)
    study.optimize(objective, n_trials=2, callbacks=[cb], show_progress=False)
    cb.log_study(study)
    _check_runs(cb, study)


def test_runs_without_the_study_id_are_taken_only_when_unambiguous_and_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs logged before the study-id tag (an earlier tunesmith) were taken for any trial of their number
    that started once the study existed, silently: two studies of one name made before either logged had
    trials 0 and 1 each matched to one of two runs, either study's. A trial with one such run takes it, and a
    warning says how many; a trial with several takes none (logged to a new run), and the warning names it."""
    uri = _file_store(tmp_path, monkeypatch)
    space = ts.Space({"x": ts.Float(0.0, 10.0)})
    a = ts.Study(space, name="s", sampler="random", seed=0)
    b = ts.Study(space, name="s", sampler="random", seed=1)  # made before a logged: a's runs started once b existed
    a.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    b.optimize(lambda t: t.params["x"], n_trials=3, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    cb = MLflowCallback(tracking_uri=uri)
    experiment = cb.client.get_experiment_by_name("s").experiment_id
    for run in cb.client.search_runs([experiment]):  # as an earlier tunesmith logged them: no id tag
        cb.client.delete_tag(run.info.run_id, "tunesmith.study_id")
    before = {r.info.run_id: (r.data.params, r.data.metrics) for r in cb.client.search_runs([experiment])}
    with pytest.warns(UserWarning, match=r"2 parent runs without"), \
         pytest.warns(UserWarning, match=r"1 run\(s\) of study 's' carry no 'tunesmith.study_id' tag.*"
                                         r"trial\(s\) \[0, 1\] of study 's' each have several such runs") as seen:
        cb.log_study(b)
        cb.log_study(b)  # warned once
    assert len([w for w in seen if "carry no" in str(w.message)]) == 1
    after = cb.client.search_runs([experiment])
    assert {r.info.run_id: (r.data.params, r.data.metrics) for r in after if r.info.run_id in before} == before
    new = {int(r.data.tags["tunesmith.trial"]): r for r in after if r.info.run_id not in before and "tunesmith.trial" in r.data.tags}
    assert sorted(new) == [0, 1]  # the ambiguous trials, logged anew with b's values and id
    assert all(new[t.number].data.metrics["value"] == t.value and new[t.number].data.tags["tunesmith.study_id"] == b.copy_id
               for t in b.trials[:2])


def test_runs_taken_without_the_study_id_are_tagged_so_a_later_session_does_not_warn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs matched without the study-id tag (an earlier tunesmith logged them) were left untagged, so each
    later session matched them again and warned again. They get the tag once taken."""
    import warnings

    uri = _file_store(tmp_path, monkeypatch)
    study = ts.Study(ts.Space({"x": ts.Float(0.0, 10.0)}), name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[MLflowCallback(tracking_uri=uri)],
                   show_progress=False)
    cb = MLflowCallback(tracking_uri=uri)
    experiment = cb.client.get_experiment_by_name("s").experiment_id
    for run in cb.client.search_runs([experiment]):  # as an earlier tunesmith logged them: no id tag
        cb.client.delete_tag(run.info.run_id, "tunesmith.study_id")
    with pytest.warns(UserWarning, match=r"2 run\(s\) of study 's' carry no .* they are given the tag now"):
        cb.log_study(study)
    runs = cb.client.search_runs([experiment])
    assert len(runs) == 3 and all(r.data.tags["tunesmith.study_id"] == study.copy_id for r in runs)  # parent too
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a later session: nothing to warn about
        MLflowCallback(tracking_uri=uri).log_study(study)
    assert len(cb.client.search_runs([experiment])) == 3


def test_a_parent_run_without_the_study_id_is_taken_only_when_unambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two studies of one name made before either logged, their runs untagged (an earlier tunesmith): the
    parent run was the newest untagged one, so b's trials logged anew went under a's parent run. With two
    candidates none is taken: a warning says so, and b's new runs go under a new parent run of b's."""
    uri = _file_store(tmp_path, monkeypatch)
    space = ts.Space({"x": ts.Float(0.0, 10.0)})
    a = ts.Study(space, name="s", sampler="random", seed=0)
    b = ts.Study(space, name="s", sampler="random", seed=1)
    b.optimize(lambda t: t.params["x"], n_trials=3, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    a.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    cb = MLflowCallback(tracking_uri=uri)
    experiment = cb.client.get_experiment_by_name("s").experiment_id
    old = {r.info.run_id for r in cb.client.search_runs([experiment])}
    for run_id in old:  # as an earlier tunesmith logged them: no id tag
        cb.client.delete_tag(run_id, "tunesmith.study_id")
    with pytest.warns(UserWarning, match=r"trial\(s\) \[0, 1\] of study 's' each have several such runs"), \
         pytest.warns(UserWarning, match=r"study 's' has 2 parent runs without the 'tunesmith.study_id' tag .* none is "
                                         r"taken: its trials are logged under a new parent run"):
        cb.log_study(b)
    new = [r for r in cb.client.search_runs([experiment]) if r.info.run_id not in old]
    [parent] = [r for r in new if r.data.tags.get("tunesmith.parent") == "true"]
    assert parent.data.tags["tunesmith.study_id"] == b.copy_id
    trials = [r for r in new if "tunesmith.trial" in r.data.tags]
    assert len(trials) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)


def test_an_experiment_deleted_in_mlflow_is_refused_naming_how_to_restore_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: MLflow's own "INVALID_PARAMETER_VALUE: The experiment 1 must be in the 'active' state. Current
    # state is deleted." out of optimize after the first trial, naming neither the experiment nor a fix
    uri = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, seed=0, name="trashed")
    first = MLflowCallback(tracking_uri=uri)
    study.optimize(lambda t: t.params["x"], n_trials=1, callbacks=[first], show_progress=False)
    experiment = first.client.get_experiment_by_name("trashed")
    first.client.delete_experiment(experiment.experiment_id)  # the UI's delete: the experiment goes to the trash
    again = MLflowCallback(tracking_uri=uri)
    with pytest.raises(ValueError, match=rf"experiment 'trashed' \(id {experiment.experiment_id}\) is deleted.*"
                                         rf"mlflow experiments restore --experiment-id {experiment.experiment_id}"):
        study.optimize(lambda t: t.params["x"], n_trials=2, callbacks=[again], show_progress=False)
    assert len(study.trials) == 2  # the trial is kept in the study, for log_study once the experiment is back
    again.client.restore_experiment(experiment.experiment_id)
    MLflowCallback(tracking_uri=uri).log_study(study)
    assert len(trial_runs(again.client, experiment.experiment_id, "trashed")) == 2


def test_trials_a_ctrl_c_stops_are_logged_when_optimize_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trials an interrupt fails are not called back, so they had no run, in this session or a later
    one (a resumed optimize logged only its own trials): MLflow silently lacked them."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="ctrl-c", sampler="random", seed=0)

    def interrupted_third(trial: ts.Trial) -> float:
        if trial.number == 2:
            trial.report(1.0, 1)
            raise KeyboardInterrupt  # as a Ctrl-C in the objective
        return objective(trial)

    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(interrupted_third, n_trials=5, callbacks=[cb], show_progress=False)
    assert study.interrupted and [t.state.value for t in study.trials] == ["complete", "complete", "failed"]
    _check_runs(cb, study)

    # a Ctrl-C in the first trial of a session, before the callback logged any: logged all the same
    def interrupted_first(trial: ts.Trial) -> float:
        raise KeyboardInterrupt

    first = ts.Study(SPACE, name="ctrl-c-first", sampler="random", seed=0)
    first.optimize(interrupted_first, n_trials=3, callbacks=[cb], show_progress=False)
    assert first.interrupted and [t.state.value for t in first.trials] == ["failed"]
    _check_runs(cb, first)

    # a session whose callback was not given the first trials: its optimize logs them as it ends
    plain = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'plain.db'}", name="plain", sampler="random", seed=0)
    plain.optimize(objective, n_trials=2, show_progress=False)
    later = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    plain.optimize(objective, n_trials=1, callbacks=[later], show_progress=False)
    assert len(_check_runs(later, plain)) == 3


class _CutOnce(MLflowCallback):
    """An MLflowCallback that a Ctrl-C stops once while it logs trial 1, after its run was made: before its
    parameters (``where="_log_params"``) or after them (``"_log"``)."""

    def __init__(self, where: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.where, self.cut = where, False

    def _stop(self, where: str, trial: ts.FrozenTrial) -> None:
        if where == self.where and trial.number == 1 and not self.cut:
            self.cut = True
            raise KeyboardInterrupt

    def _log_params(self, run_id: str, trial: ts.FrozenTrial) -> None:
        self._stop("_log_params", trial)
        super()._log_params(run_id, trial)

    def _log(self, run_id: str, trial: ts.FrozenTrial, **kwargs: Any) -> None:
        self._stop("_log", trial)
        super()._log(run_id, trial, **kwargs)


@pytest.mark.parametrize("where", ["_log_params", "_log"])
def test_a_run_whose_logging_a_ctrl_c_cut_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """A Ctrl-C while the callback logged a trial left that run RUNNING, without its metrics or state, for good."""
    tracking = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, sampler="random", seed=0, name="cut")
    cb = _CutOnce(where, tracking_uri=tracking)
    study.optimize(objective, n_trials=4, callbacks=[cb], show_progress=False)
    assert cb.cut and study.interrupted and len(study.trials) == 2
    _check_runs(cb, study)  # completed as optimize returned

    # cut in an earlier session (the callback given as a function: nothing ran at its end): completed by the next
    other = ts.Study(SPACE, sampler="random", seed=0, name="cut-before")
    cut = _CutOnce(where, tracking_uri=tracking)
    other.optimize(objective, n_trials=4, callbacks=[lambda s, t: cut(s, t)], show_progress=False)
    [run] = [r for r in trial_runs(cut.client, experiment_by_name(cut.client, "cut-before").experiment_id, "cut-before")
             if r.data.tags["tunesmith.trial"] == "1"]
    assert run.info.status == "KILLED" and "tunesmith.state" not in run.data.tags  # ended, not RUNNING for good
    later = MLflowCallback(tracking_uri=tracking)
    other.optimize(objective, n_trials=1, callbacks=[later], show_progress=False)
    assert len(_check_runs(later, other)) == 3


def _marked(cb: MLflowCallback, study: ts.Study) -> tuple[list[int], str | None]:
    """The trials whose run carries the tag tunesmith.best, and the parent run's tunesmith.best_trial."""
    experiment = experiment_by_name(cb.client, study.name).experiment_id
    runs = trial_runs(cb.client, experiment, study.name)
    parent = cb.client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    return ([int(r.data.tags["tunesmith.trial"]) for r in runs if r.data.tags.get("tunesmith.best") == "true"],
            parent.data.tags.get("tunesmith.best_trial"))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_best_trial_s_run_is_tagged_and_named_by_the_parent_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direction: str
) -> None:
    """Nothing in MLflow said which run was the study's best: a user sorted the runs by value, where pruned
    and paused trials' last reports stand among the complete trials' values."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, direction=direction, storage=storage, name="best", sampler="random", seed=0)
    for x in (5.0, 3.0, 8.0, 1.0):  # objective: x / 9
        study.enqueue({"x": x, "kind": "a"})
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    seen: list[tuple[list[int], str | None]] = []
    study.optimize(objective, n_trials=4, callbacks=[cb, lambda s, t: seen.append(_marked(cb, s))], show_progress=False)
    if direction == "minimize":
        assert seen == [([0], "0"), ([1], "1"), ([1], "1"), ([3], "3")]  # as each trial ends, one run tagged
    else:
        assert seen == [([0], "0"), ([0], "0"), ([2], "2"), ([2], "2")]
    best = study.best_trial.number
    assert _marked(cb, study) == ([best], str(best))
    parent = cb.client.get_run(cb._ids["best", study.copy_id][1])
    history = cb.client.get_metric_history(parent.info.run_id, "best_value")
    assert [(m.step, m.value) for m in history] == [(t.number, t.value) for t in study.trials
                                                     if t.number in ([0, 1, 3] if direction == "minimize" else [0, 2])]

    # a later session's better trial moves the tag; log_study from a new callback keeps it where it is
    study.enqueue({"x": 0.5 if direction == "minimize" else 8.5, "kind": "b"})
    again = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    ts.Study(storage=storage, name="best").optimize(objective, n_trials=1, callbacks=[again], show_progress=False)
    assert _marked(again, study) == ([4], "4")
    MLflowCallback(tracking_uri=cb.client.tracking_uri).log_study(study)
    assert _marked(again, study) == ([4], "4")


def test_the_best_tag_moves_off_a_run_another_driver_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two drivers of one study, each with its callback: the run of the best trial that the other driver logged
    since this one read the runs kept its tunesmith.best tag when this one's better trial took it (two runs tagged)."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    tracking = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, storage=storage, name="two", sampler="random", seed=0)
    for x in (5.0, 3.0, 1.0, 0.5):  # objective: x / 9, each better than the last
        study.enqueue({"x": x, "kind": "a"})
    first, second = MLflowCallback(tracking_uri=tracking), MLflowCallback(tracking_uri=tracking)
    other = ts.Study(storage=storage, name="two")  # the second driver's handle
    for number, (driver, cb) in enumerate(((other, second), (study, first), (other, second), (study, first))):
        driver.optimize(objective, n_trials=1, callbacks=[cb], show_progress=False)
        assert _marked(cb, study) == ([number], str(number))
    assert len(_check_runs(first, study)) == 4


def test_a_long_catch_up_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A resumed study given the callback for the first time (or a new experiment) has all its earlier trials
    logged as optimize returns: 1,000 trials took 157 s on a SQLite store, and nothing said why optimize hung."""
    monkeypatch.setattr("tunesmith.integrations.mlflow._CATCH_UP_NOTICE", 3)
    study = ts.Study(SPACE, name="resumed", sampler="random", seed=0)
    study.optimize(objective, n_trials=3, show_progress=False)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective, n_trials=1, callbacks=[cb], show_progress=False)
    [notice] = [r.getMessage() for r in caplog.records if "MLflowCallback" in r.getMessage()]
    assert "logging 3 trials of study 'resumed' that have no run in MLflow experiment 'resumed'" in notice
    assert len(_check_runs(cb, study)) == 4
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective, n_trials=1, callbacks=[cb], show_progress=False)  # nothing behind: no notice
    assert not [r for r in caplog.records if "MLflowCallback" in r.getMessage()]


def test_a_tie_the_study_ranks_first_takes_the_best_tag_as_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Among trials tied on the value the study's best is the one whose reports were better: the tag stayed on
    the earlier trial until optimize returned (a strictly better value alone moved it)."""
    study = ts.Study(SPACE, name="tie", sampler="random", seed=0)
    for x in (5.0, 2.0, 7.0):  # each ends at 1.0; their one report is x: 2.0 ranks first
        study.enqueue({"x": x, "kind": "a"})

    def tied(trial: ts.Trial) -> float:
        trial.report(trial.params["x"], 1)
        return 1.0

    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    seen: list[tuple[list[int], str | None]] = []
    study.optimize(tied, n_trials=3, callbacks=[cb, lambda s, t: seen.append(_marked(cb, s))], show_progress=False)
    assert study.best_trial.number == 1
    assert seen == [([0], "0"), ([1], "1"), ([1], "1")]


def test_the_best_trial_s_run_deleted_in_mlflow_is_tagged_when_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-up makes a deleted run again; when it was the best trial's, the parent run still named that trial,
    so the new run was never tagged tunesmith.best (no run was)."""
    study = ts.Study(SPACE, name="deleted-best", sampler="random", seed=0)
    for x in (5.0, 1.0, 3.0, 8.0):
        study.enqueue({"x": x, "kind": "a"})
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(objective, n_trials=3, callbacks=[cb], show_progress=False)
    assert _marked(cb, study) == ([1], "1")
    experiment = experiment_by_name(cb.client, "deleted-best").experiment_id
    cb.client.delete_run(trial_runs(cb.client, experiment, "deleted-best")[1].info.run_id)
    again = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    study.optimize(objective, n_trials=1, callbacks=[again], show_progress=False)
    assert len(_check_runs(again, study)) == 4
    assert _marked(again, study) == ([1], "1")
_KILLED_AT_THE_END = """
import os, sys, time
import tunesmith as ts
from tunesmith.integrations.mlflow import MLflowCallback

marker, storage = sys.argv[1], sys.argv[2]


class Stalled(MLflowCallback):
    def _log(self, run_id, trial, **kwargs):
        if trial.number == 0:  # caught up as optimize returns: held between its last batch and its run's end
            end = self.client.set_terminated

            def stall(*args, **kw):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(120)
                end(*args, **kw)

            self.client.set_terminated = stall
        super()._log(run_id, trial, **kwargs)


study = ts.Study(ts.Space({"x": ts.Float(0.0, 10.0)}), storage=storage, name="late", sampler="random", seed=0)
study.optimize(lambda t: t.params["x"], n_trials=1, callbacks=[Stalled()], show_progress=False)
"""


def test_a_run_whose_catch_up_a_kill_cut_before_its_end_is_ended_by_the_next_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subprocess_env: dict[str, str]
) -> None:
    """A SIGKILL of the process as the catch-up had logged a trial's metrics and state but not yet ended its run
    left that run RUNNING for good: the state tag read as "logged to the end", so no later session touched it."""
    import os
    import signal
    import subprocess
    import time

    tracking = _file_store(tmp_path, monkeypatch)
    storage = f"sqlite:///{tmp_path / 'late.db'}"
    space = ts.Space({"x": ts.Float(0.0, 10.0)})
    study = ts.Study(space, storage=storage, name="late", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2, show_progress=False)  # a session without the callback
    marker, script = tmp_path / "stalled", tmp_path / "late.py"
    script.write_text(_KILLED_AT_THE_END)
    env = {**subprocess_env, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_ALLOW_FILE_STORE": "true"}
    child = subprocess.Popen([sys.executable, str(script), str(marker), storage], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the catch-up never reached trial 0's end (exit {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    again = ts.Study(space, storage=storage, name="late")
    cb = MLflowCallback(tracking_uri=tracking)
    again.optimize(lambda t: t.params["x"], n_trials=1, callbacks=[cb], show_progress=False)
    runs = trial_runs(cb.client, experiment_by_name(cb.client, "late").experiment_id, "late")
    assert sorted(int(r.data.tags["tunesmith.trial"]) for r in runs) == [0, 1, 2, 3]  # none twice
    assert {r.data.tags["tunesmith.trial"]: r.info.status for r in runs} == dict.fromkeys("0123", "FINISHED")


def _all_runs(cb: MLflowCallback, name: str) -> list[Any]:
    """Every run of experiment ``name``, those in MLflow's trash (deleted) too."""
    from mlflow.entities import ViewType

    experiment = experiment_by_name(cb.client, name).experiment_id
    return list(cb.client.search_runs([experiment], run_view_type=ViewType.ALL))


def test_a_run_deleted_in_mlflow_is_restored_not_made_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-up made a new run for a trial whose run the user had deleted (MLflow's trash): restoring the
    deleted one then gave the trial two runs. A deleted parent run was made again alike (two parents)."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="trash", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(objective, n_trials=3, callbacks=[cb], show_progress=False)
    experiment = experiment_by_name(cb.client, "trash").experiment_id
    deleted = trial_runs(cb.client, experiment, "trash")[1].info.run_id
    parent = cb._ids["trash", study.copy_id][1]
    cb.client.delete_run(deleted)
    cb.client.delete_run(parent)
    again = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    ts.Study(storage=storage, name="trash").optimize(objective, n_trials=1, callbacks=[again], show_progress=False)
    runs = _all_runs(again, "trash")
    assert sorted(r.data.tags.get("tunesmith.trial", "parent") for r in runs) == ["0", "1", "2", "3", "parent"]
    assert all(r.info.lifecycle_stage == "active" for r in runs)  # restored, so restoring it by hand adds nothing
    assert trial_runs(again.client, experiment, "trash")[1].info.run_id == deleted
    assert again._ids["trash", study.copy_id][1] == parent
    assert len(_check_runs(again, study)) == 4
    again.client.delete_run(deleted)  # log_study restores it as well
    MLflowCallback(tracking_uri=cb.client.tracking_uri).log_study(study)
    assert [r.info.lifecycle_stage for r in _all_runs(again, "trash") if r.info.run_id == deleted] == ["active"]
    assert len(_all_runs(again, "trash")) == 5


def test_two_callbacks_logging_one_study_to_one_experiment_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two MLflowCallbacks of one tracking store and experiment in one optimize made two runs per trial
    (each kept its own runs); callbacks to two experiments still log to each."""
    tracking = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, name="twice", sampler="random", seed=0)
    first, second = MLflowCallback(tracking_uri=tracking), MLflowCallback(tracking_uri=tracking)
    with pytest.raises(ValueError, match=r"another MLflowCallback.*'twice'.*pass one MLflowCallback"):
        study.optimize(objective, n_trials=3, callbacks=[first, second], show_progress=False)
    runs = trial_runs(first.client, experiment_by_name(first.client, "twice").experiment_id, "twice")
    assert [r.data.tags["tunesmith.trial"] for r in runs] == [str(t.number) for t in study.trials]  # one each
    assert len(study.trials) == 2  # refused as the second trial ended
    other = MLflowCallback(tracking_uri=tracking, experiment="twice-copy")
    study.optimize(objective, n_trials=1, callbacks=[first, other], show_progress=False)
    assert len(_check_runs(first, study)) == 3
    assert len(trial_runs(other.client, experiment_by_name(other.client, "twice-copy").experiment_id, "twice")) == 3


@pytest.mark.parametrize("kind", ["file", pytest.param("sqlite", marks=pytest.mark.slow)])
def test_two_callbacks_of_one_store_spelled_two_ways_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """One store written two ways (a relative folder and its file: URI; a relative and an absolute SQLite path,
    through a link) is one store to the two-callbacks refusal. Before: taken for two stores, DID NOT
    RAISE, and two runs of each trial."""
    from tunesmith.integrations.mlflow import _store

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").symlink_to(tmp_path)
    if kind == "file":
        spellings = ["./mlruns", (tmp_path / "here" / "mlruns").as_uri()]
        assert _store("mlruns") == _store(f"file://{tmp_path}/sub/../mlruns") == _store(spellings[1])
    else:
        spellings = ["sqlite:///x.db", f"sqlite:///{tmp_path / 'here' / 'x.db'}"]
    assert _store(spellings[0]) == _store(spellings[1]) != _store(spellings[0].replace("x.db", "y.db") + "/b")
    assert _store("http://host:5000") == "http://host:5000"
    first, second = (MLflowCallback(tracking_uri=uri) for uri in spellings)
    study = ts.Study(SPACE, name="twice", sampler="random", seed=0)
    with pytest.raises(ValueError, match=r"another MLflowCallback.*'twice'.*pass one MLflowCallback"):
        study.optimize(objective, n_trials=3, callbacks=[first, second], show_progress=False)
    runs = trial_runs(first.client, experiment_by_name(first.client, "twice").experiment_id, "twice")
    assert [r.data.tags["tunesmith.trial"] for r in runs] == [str(t.number) for t in study.trials]  # one each


class _StoppedInCatchUp(MLflowCallback):
    """An MLflowCallback that a (real) second Ctrl-C, or an MLflow error, stops as it logs trial 1's metrics
    (``how`` None: no longer)."""

    def __init__(self, how: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.how = how

    def _log(self, run_id: str, trial: ts.FrozenTrial, **kwargs: Any) -> None:
        if self.how is None:
            return super()._log(run_id, trial, **kwargs)
        if trial.number == 1 and self.how == "ctrl-c":
            import signal

            signal.raise_signal(signal.SIGINT)
        if trial.number == 1:
            from mlflow.exceptions import MlflowException

            raise MlflowException("the tracking server went away")
        super()._log(run_id, trial, **kwargs)


@pytest.mark.parametrize(("how", "raised", "parent", "cut"), [("ctrl-c", KeyboardInterrupt, "KILLED", "KILLED"),
                                                               ("error", Exception, "FAILED", "RUNNING")])
def test_a_second_ctrl_c_during_the_catch_up_ends_the_parent_run_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, raised: type[BaseException], parent: str, cut: str
) -> None:
    """A Ctrl-C (or MLflow's error) while optimize's end logged the trials behind left the parent run RUNNING for
    good, and the trial being logged RUNNING too; the next session completes the trials' runs."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="second", sampler="random", seed=0)
    study.optimize(objective, n_trials=3, show_progress=False)  # a session without the callback
    cb = _StoppedInCatchUp(how, tracking_uri=_file_store(tmp_path, monkeypatch))
    with pytest.raises(raised):
        study.optimize(objective, n_trials=1, callbacks=[cb], show_progress=False)
    status = {r.data.tags.get("tunesmith.trial", "parent"): r.info.status for r in _all_runs(cb, "second")}
    assert status == {"parent": parent, "0": "FINISHED", "1": cut, "3": "FINISHED"}
    later = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    ts.Study(storage=storage, name="second").optimize(objective, n_trials=1, callbacks=[later], show_progress=False)
    assert len(_check_runs(later, study)) == 5
    assert len(_all_runs(later, "second")) == 6  # one parent, five trials: none twice


@pytest.mark.parametrize("truncate", ["true", "false"])
def test_a_parameter_longer_than_mlflow_takes_is_kept_whole_as_an_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, truncate: str
) -> None:
    """A parameter value past MLflow's 6,000 characters (a long choice, a Fixed config) was cut by MLflow 3, the
    rest lost; an older MLflow (and MLFLOW_TRUNCATE_LONG_VALUES=false) refused it, which stopped optimize."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit

    monkeypatch.setenv("MLFLOW_TRUNCATE_LONG_VALUES", truncate)
    config = {"layers": list(range(2000))}
    space = ts.Space({"cfg": ts.Fixed(config), "x": ts.Float(0.0, 1.0)})
    study = ts.Study(space, name="long-param", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(lambda t: t.params["x"], n_trials=1, callbacks=[cb], show_progress=False)
    [run] = trial_runs(cb.client, experiment_by_name(cb.client, "long-param").experiment_id, "long-param")
    whole = json.dumps(config)
    logged = run.data.params["cfg"]
    assert len(logged) <= limit and whole.startswith(logged.split("... (")[0])
    assert logged.endswith(f"({len(whole):,} characters; the whole value: tunesmith/params/cfg.txt)")
    path = cb.client.download_artifacts(run.info.run_id, "tunesmith/params/cfg.txt", str(tmp_path))
    assert json.loads(Path(path).read_text()) == config
    assert run.data.params["x"] == repr(study.trials[0].params["x"])


def test_a_study_name_longer_than_an_experiment_name_is_refused_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study name of 501 to 512 characters (tunesmith takes 512) stopped optimize at the first trial with
    MLflow's "'name' exceeds the maximum length of 500 characters", naming neither the experiment nor a fix."""
    name = "n" * 512
    study = ts.Study(SPACE, name=name, sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    with pytest.raises(ValueError, match=r"experiment name of more than 500 characters.*has 512; pass "
                                         r"MLflowCallback\(experiment=\.\.\.\)"):  # fmt: skip
        study.optimize(objective, n_trials=1, callbacks=[cb], show_progress=False)
    short = MLflowCallback(tracking_uri=cb.client.tracking_uri, experiment="long-study")
    short.log_study(study)  # the trial kept in the study, logged with the name the error asks for
    [run] = trial_runs(short.client, experiment_by_name(short.client, "long-study").experiment_id, name)
    assert run.data.tags["tunesmith.study"] == name


def test_a_second_ctrl_c_in_one_callbacks_catch_up_still_ends_the_others_parent_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C during the first callback's catch-up skipped the other callbacks' on_optimize_end: the
    parent run of a callback logging to another experiment stayed RUNNING for good."""
    storage = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, storage=storage, name="both", sampler="random", seed=0)
    study.optimize(objective, n_trials=3, show_progress=False)  # a session without the callbacks
    tracking = _file_store(tmp_path, monkeypatch)
    stopped = _StoppedInCatchUp("ctrl-c", tracking_uri=tracking, experiment="first")
    other = MLflowCallback(tracking_uri=tracking, experiment="second")
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=1, callbacks=[stopped, other], show_progress=False)
    status = {r.data.tags.get("tunesmith.trial", "parent"): r.info.status for r in _all_runs(other, "second")}
    assert status == {"parent": "KILLED", "3": "FINISHED"}  # ended at once, its catch-up left to the next logging
    later = MLflowCallback(tracking_uri=tracking, experiment="second")
    later.log_study(study)
    status = {r.data.tags.get("tunesmith.trial", "parent"): r.info.status for r in _all_runs(later, "second")}
    assert status == {"parent": "FINISHED", **dict.fromkeys("0123", "FINISHED")}


def test_an_mlflow_error_making_a_run_leaves_no_claim_that_refuses_a_later_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial whose run MLflow refused to make (its experiment deleted meanwhile) stayed 'made' by that callback:
    log_study with a new callback, once the experiment was restored, was refused as a second callback of one
    optimize ("another MLflowCallback logged trial 2 ... just now")."""
    study = ts.Study(SPACE, name="gone", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))

    def delete_experiment(s: ts.Study, t: ts.FrozenTrial) -> None:
        if t.number == 1:
            cb.client.delete_experiment(experiment_by_name(cb.client, "gone").experiment_id)

    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="non-active experiment"):
        study.optimize(objective, n_trials=4, callbacks=[cb, delete_experiment], show_progress=False)
    cb.client.restore_experiment(experiment_by_name(cb.client, "gone").experiment_id)
    later = MLflowCallback(tracking_uri=cb.client.tracking_uri)
    later.log_study(study)
    assert len(_check_runs(later, study)) == len(study.trials) == 3


def test_a_run_another_driver_thread_logged_first_is_taken_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two driver threads of one study, each with its callback: where the other one's logging made a trial's run
    first (its catch-up, between the trial's end and this callback's call), the callback raised the ValueError
    meant for two callbacks in one optimize, stopping this optimize; the run is now taken (one run a trial)."""
    import threading

    study = ts.Study(SPACE, name="drivers", sampler="random", seed=0)
    tracking = _file_store(tmp_path, monkeypatch)
    mine, theirs = MLflowCallback(tracking_uri=tracking), MLflowCallback(tracking_uri=tracking)

    def the_other_driver_logs_first(s: ts.Study, t: ts.FrozenTrial) -> None:
        if t.number == 1:  # its optimize runs trials 2 and 3, and its end catches trial 1 up before this one's callback
            other = threading.Thread(target=lambda: s.optimize(objective, n_trials=2, callbacks=[theirs], show_progress=False))
            other.start()
            other.join()

    study.optimize(objective, n_trials=3, callbacks=[the_other_driver_logs_first, mine], show_progress=False)
    assert len(_check_runs(mine, study)) == len(study.trials) == 5
    assert len(_all_runs(mine, "drivers")) == 6  # five trials and one parent: none twice


@pytest.mark.parametrize(("how", "raised", "parent"), [("ctrl-c", KeyboardInterrupt, "KILLED"), ("error", Exception, "FAILED")])
def test_log_study_stopped_midway_ends_the_parent_run_and_a_retry_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, raised: type[BaseException], parent: str
) -> None:
    """A Ctrl-C (or MLflow's error) during log_study (a long catch-up: 1,000 trials take minutes) left the parent
    run RUNNING, and the callback took it for one of a running optimize: its next log_study did not end it either."""
    study = ts.Study(SPACE, name="later", sampler="random", seed=0)
    study.optimize(objective, n_trials=3, show_progress=False)  # the workers ran without the callback
    cb = _StoppedInCatchUp(how, tracking_uri=_file_store(tmp_path, monkeypatch))
    with pytest.raises(raised):
        cb.log_study(study)
    status = {r.data.tags.get("tunesmith.trial", "parent"): r.info.status for r in _all_runs(cb, "later")}
    assert status["parent"] == parent
    cb.how = None
    cb.log_study(study)  # the same callback, again
    status = {r.data.tags.get("tunesmith.trial", "parent"): r.info.status for r in _all_runs(cb, "later")}
    assert status == {"parent": "FINISHED", **dict.fromkeys("012", "FINISHED")}


def test_a_run_removed_for_good_is_made_again_by_a_later_callback_of_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's run removed for good (deleted, then `mlflow gc`) is made again by the next logging, as the docs
    say; but where an earlier callback of the process (a notebook's previous cell) had made it, a new callback was
    refused as a second callback of one optimize, though that callback's optimize had ended."""
    study = ts.Study(SPACE, name="gc", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study.optimize(objective, n_trials=3, callbacks=[cb], show_progress=False)
    [removed] = [r.info.run_id for r in _all_runs(cb, "gc") if r.data.tags.get("tunesmith.trial") == "2"]
    cb.client.delete_run(removed)
    shutil.rmtree(tmp_path / "mlruns" / experiment_by_name(cb.client, "gc").experiment_id / removed)  # as mlflow gc does
    MLflowCallback(tracking_uri=cb.client.tracking_uri).log_study(study)
    assert len(_check_runs(cb, study)) == 3
    assert removed not in {r.info.run_id for r in _all_runs(cb, "gc")}


def test_a_pruned_trial_whose_long_history_a_ctrl_c_cut_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C between two batches of a pruned trial's 1,500 reports ended its run KILLED, with the state tag (in
    the first batch): as a pruned trial's run ends KILLED, it was taken as logged whole, its last 500 reports lost
    for good. The state tag now goes in the last batch."""
    import signal

    import mlflow

    class CutClient(mlflow.MlflowClient):
        """A real client that a (real) Ctrl-C stops before the second batch of metrics, once."""

        cut = False

        def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kwargs: Any) -> None:
            if metrics and not tags and not self.cut:
                self.cut = True
                signal.raise_signal(signal.SIGINT)
            super().log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def long_history(trial: ts.Trial) -> float:
        for step in range(1500):
            trial.report(trial.params["x"], step)
        raise ts.TrialPruned()

    study = ts.Study(SPACE, name="long", sampler="random", seed=0)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    cb.client = CutClient(cb.client.tracking_uri)
    study.optimize(long_history, n_trials=2, callbacks=[cb], show_progress=False)  # the Ctrl-C stops it after trial 0
    assert cb.client.cut and [t.state.value for t in study.trials] == ["pruned"]
    [run] = _check_runs(cb, study)  # caught up as optimize returned: its 1,500 reports, KILLED as pruned
    assert len(cb.client.get_metric_history(run.info.run_id, "intermediate")) == 1500


def test_names_past_mlflow_s_key_limit_are_logged_and_long_values_kept_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial of the study (a teammate's too: every callback catches the study's trials up) with an attribute named
    in 246 characters or more, or two parameters alike in their first 250, made keys MLflow refuses (``attr.`` and
    ``_2`` past its 250), and every optimize with the callback ended with MlflowException. A value too long for a
    key of 250 characters, or one of letters of two bytes, was cut: its artifact's file name was too long."""
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_TAG_VAL_LENGTH

    alike, wide = "p" * 251, "é" * 200  # (a file name of 400 bytes)
    space = ts.Space({alike + "1": ts.Float(0.0, 1.0), alike + "2": ts.Float(0.0, 1.0),
                      wide: ts.Categorical(["c" * 7_000])})
    attr, value = "a" * 250, "v" * (MAX_TAG_VAL_LENGTH + 1)
    cb = MLflowCallback(tracking_uri=_file_store(tmp_path, monkeypatch))
    study = ts.Study(space, sampler="random", seed=0, name="long-names")

    def noted(trial: ts.Trial) -> float:
        trial.set_attr(attr, value)
        return 1.0

    study.optimize(noted, n_trials=1, callbacks=[cb], show_progress=False)
    [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(study.name).experiment_id, study.name)
    keys = [*run.data.params, *run.data.tags]
    assert max(map(len, keys)) <= MAX_ENTITY_KEY_LENGTH and len(run.data.params) == 3
    names = json.loads(run.data.tags["tunesmith.param_names"])
    assert sorted(names.values()) == sorted(space.free) and len(set(names)) == 3
    [tag] = [k for k in run.data.tags if k.startswith("attr.")]
    logged = {names[k]: v for k, v in run.data.params.items()}
    for kept, whole in ((run.data.tags[tag], value), (logged[wide], "c" * 7_000)):
        where = kept.rpartition("the whole value: ")[2].rstrip(")")
        assert where.startswith("tunesmith/"), kept  # not "nowhere: storing it failed"
        path = cb.client.download_artifacts(run.info.run_id, where, str(tmp_path / "got"))
        assert Path(path).read_text() == whole


def test_an_attribute_an_earlier_tunesmith_logged_under_a_longer_key_gets_no_second_tag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attribute named in letters of two bytes (124 ``é``: 248 bytes, a file name of 253 with ``attr.``) an
    earlier tunesmith logged under its whole name, which keys are now cut to 245 bytes of: catching the run up (its
    logging cut before its end) wrote the attribute again under the shorter key, two tags of one attribute."""
    name = "é" * 124
    uri = _file_store(tmp_path, monkeypatch)
    study = ts.Study(SPACE, sampler="random", seed=0)

    def noted(trial: ts.Trial) -> float:
        trial.set_attr(name, "kept")
        return 1.0

    study.optimize(noted, n_trials=1, callbacks=[MLflowCallback(tracking_uri=uri)], show_progress=False)
    cb = MLflowCallback(tracking_uri=uri)
    [run] = trial_runs(cb.client, cb.client.get_experiment_by_name(study.name).experiment_id, study.name)
    [cut] = [k for k in run.data.tags if k.startswith("attr.")]
    assert len(cut.encode()) <= 250  # as this tunesmith logs it; the run as an earlier one left it, cut by a Ctrl-C:
    cb.client.delete_tag(run.info.run_id, cut)
    cb.client.set_tag(run.info.run_id, f"attr.{name}", "kept")
    cb.client.update_run(run.info.run_id, status="RUNNING")
    cb.log_study(study)
    run = cb.client.get_run(run.info.run_id)
    assert {k: v for k, v in run.data.tags.items() if k.startswith("attr.")} == {f"attr.{name}": "kept"}
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize(("name", "fits"), [("m" * 246, "m" * 245), ("é" * 126, "é" * 125)])
def test_a_metric_name_whose_best_key_mlflow_refuses_is_refused_at_once(name: str, fits: str) -> None:
    """The parent run logs ``best_<metric_name>``: a metric name of 246 to 250 characters passed, and the first
    complete trial's logging ended optimize with MlflowException (``'Metric name' exceeds the maximum length``);
    one of letters of two bytes past 250 bytes was refused as if its letters were not letters."""
    with pytest.raises(ValueError, match=r"has \d+ characters \(2\d\d bytes.* at most 245 characters and 250 bytes"):
        MLflowCallback(tracking_uri="sqlite:///:memory:", metric_name=name)
    MLflowCallback(tracking_uri="sqlite:///:memory:", metric_name=fits)
