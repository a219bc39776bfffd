"""Study management: trials belong to their study; delete, copy, rename, add_trial."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.paths import study_folder
from tunesmith.storage import make_storage
from tunesmith.study.manage import add_note
from tunesmith.trial import Direction, TrialState

SPACE = {"x": ts.Float(0.0, 1.0), "k": ts.Categorical(["a", "b"])}
OK = {"x": 0.5, "k": "a"}


def test_a_trial_of_another_study_is_refused(storage_url: str | None) -> None:
    a = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="a")
    b = ts.Study(SPACE, sampler="random", seed=1, storage=a.storage, name="b")
    ta, tb = a.ask(), b.ask()
    assert ta.number == tb.number == 0
    with pytest.raises(ValueError, match="trial 0 belongs to study 'b', not to study 'a'"):
        a.tell(tb, 123.0)
    with pytest.raises(ValueError, match="belongs to another study"):
        a.tell(b.trials[0], 123.0)  # a FrozenTrial of b
    # nothing was written: both trials are still running and can be told to their own study
    assert a.trials[0].state is b.trials[0].state is TrialState.RUNNING
    assert a.tell(ta, 1.0).value == 1.0 and b.tell(tb, 2.0).value == 2.0
    assert a.trials[0].params == ta.params and b.trials[0].params == tb.params


def test_a_trial_told_through_another_handle_of_the_same_study_is_accepted(sqlite_url: str) -> None:
    a = ts.Study(SPACE, sampler="random", seed=0, storage=sqlite_url, name="a")
    again = ts.Study.load("a", sqlite_url)
    t = a.ask()
    assert again.tell(t, 0.5).value == 0.5
    t2 = a.ask()
    assert again.tell(a.trials[1], 0.25).value == 0.25 and t2.number == 1


def test_add_trial_records_known_results_that_samplers_and_pruners_see(storage_url: str | None) -> None:
    study = ts.Study({"x": ts.Categorical([0, 1, 2])}, sampler="grid", storage=storage_url, name="g")
    done = study.add_trial({"x": 1}, 0.5, attrs={"source": "paper"})
    assert done.number == 0 and done.state is TrialState.COMPLETE and done.value == 0.5
    assert study.trials[0] == done and done.attrs == {"source": "paper"} and done.completed is not None
    pruned = study.add_trial({"x": 2}, state="pruned", intermediate={0: 0.9, 1: 0.8})
    assert pruned.value == 0.8 and study.trials[1].intermediate == {0: 0.9, 1: 0.8}
    failed = study.add_trial({"x": 0}, state="FAILED", error="diverged")  # any case, as tell(state=...)
    assert failed.error == "diverged" and failed.value is None
    study.optimize(lambda t: float(t.params["x"]), n_trials=5)
    assert len(study.trials) == 3  # the grid had nothing left: the known results count
    assert study.best_trial.number == 0


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"params": {**OK, "nope": 1}}, "unknown parameter"),
    ({"params": {"x": 7.0, "k": "a"}, "value": 1.0}, "x"),
    ({"params": OK, "value": None}, "a complete trial needs its value"),
    ({"params": OK, "value": float("nan")}, "value must be a finite number"),
    ({"params": OK, "value": 1.0, "state": "failed"}, "a failed trial has no value"),
    ({"params": OK, "value": 1.0, "state": "running"}, "use study.enqueue"),
    ({"params": OK, "value": 1.0, "intermediate": {0: float("inf")}}, "intermediate value at step 0"),
    ({"params": OK, "value": 1.0, "intermediate": {-1: 1.0}}, "step must be an integer >= 0"),
    ({"params": OK, "value": 1.0, "attrs": {"f": object()}}, "not stored as JSON"),
    ({"params": OK, "value": 1.0, "intermediate": {"a": 1.0}}, "^add_trial: intermediate step must be an integer"),
    ({"params": OK, "value": 1.0, "started": "yesterday"}, "started must be a time in seconds since the epoch"),
    ({"params": OK, "value": 1.0, "completed": float("nan")}, "completed must be a time in seconds"),
    ({"params": OK, "value": 1.0, "started": 200.0, "completed": 100.0}, "started .200.0. is after completed"),
    ({"params": OK, "value": 1.0, "completed": 1.7e12}, "is in the future; give seconds since the epoch"),
])
def test_add_trial_refuses_what_does_not_fit(kwargs: dict, fragment: str) -> None:
    study = ts.Study(SPACE)
    with pytest.raises(ValueError, match=fragment):
        study.add_trial(**kwargs)
    assert study.trials == []


def test_add_trial_times_are_seconds_or_datetimes_and_survive_a_reload(sqlite_url: str) -> None:
    from datetime import datetime, timezone

    study = ts.Study(SPACE, storage=sqlite_url, name="s")
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    study.add_trial(OK, 1.0, started=t0, completed=t0.timestamp() + 60)
    (back,) = ts.load_study("s", sqlite_url).trials
    assert back.state is TrialState.COMPLETE and back.error is None
    assert (back.started, back.completed) == (t0.timestamp(), t0.timestamp() + 60)


def _strip(t: ts.FrozenTrial) -> tuple:
    return (t.number, t.state, dict(t.params), t.value, dict(t.intermediate), dict(t.attrs), t.error)


def test_copy_to_another_name_and_another_storage(storage_url: str | None, tmp_path: Path) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="src", pruner="median")
    study.optimize(lambda t: t.params["x"], n_trials=4)
    t = study.ask()
    t.report(0.3, 0)  # still running: copied as failed
    study.enqueue({"x": 0.5, "k": "a"})
    twin = study.copy("twin")
    assert twin.name == "twin" and twin.storage is study.storage
    elsewhere = study.copy(storage=f"sqlite:///{tmp_path / 'other.db'}")
    assert elsewhere.name == "src" and elsewhere.storage.url.endswith("other.db")
    for c in (twin, elsewhere):
        assert c.direction == study.direction and c.space.to_dict() == study.space.to_dict()
        assert c.pruner.describe() == study.pruner.describe() and c.sampler.name == "random"
        got = [_strip(x) for x in c.trials]
        assert got[:4] == [_strip(x) for x in study.trials[:4]] and got[6:] == []
        assert got[4][1] is TrialState.FAILED and got[4][4] == {0: 0.3} and got[4][6] == "running when the study was copied"
        assert got[5][1] is TrialState.WAITING
        c.optimize(lambda t: t.params["x"], n_trials=2)  # the copy goes on: the queued trial first
        assert c.trials[5].state is TrialState.COMPLETE and len(c.trials) == 7
    assert study.trials[4].state is TrialState.RUNNING and len(study.trials) == 6  # the original is untouched
    with pytest.raises(ValueError, match="to another name, or to another storage"):
        study.copy()
    with pytest.raises(ValueError, match="already exists"):
        study.copy("twin")


def test_rename_and_delete(storage_url: str | None) -> None:
    study = ts.Study(SPACE, storage=storage_url, name="old")
    ts.Study(SPACE, storage=study.storage, name="taken")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    with pytest.raises(ValueError, match="'taken' already exists"):
        study.rename("taken")
    study.rename("new")
    assert study.name == "new" and len(ts.load_study("new", study.storage).trials) == 2
    with pytest.raises(ts.StudyNotFound):
        ts.load_study("old", study.storage)
    study.optimize(lambda t: t.params["x"], n_trials=1)  # it goes on under its new name
    assert len(ts.load_study("new", study.storage).trials) == 3
    study.delete()
    with pytest.raises(ts.StudyNotFound):
        ts.load_study("new", study.storage)
    assert [r.name for r in study.storage.list_studies()] == ["taken"]


def test_rename_and_copy_refuse_a_bad_new_name_naming_it(storage_url: str | None) -> None:
    # before: rename("") renamed the study to an empty name, and "a\nb" was refused as 'a\nb:test'
    study = ts.Study(SPACE, storage=storage_url, name="old")
    for bad, fragment in [("", "must not be empty"), ("  ", "must not be empty"),
                          ("a\nb", r"study name 'a\nb' contains the control character")]:
        for act in (study.rename, study.copy):
            with pytest.raises(ValueError, match=re.escape(fragment)):
                act(bad)
    for act in (study.rename, study.copy, lambda n: ts.Study(SPACE, storage=study.storage, name=n)):
        with pytest.raises(ValueError, match=r"study name ' old' begins or ends with white space.*write 'old'"):
            act(" old")  # before: a second study listed as 'old'
    study.rename("old")  # its own name: nothing to do (before: "a study named 'old' already exists")
    with pytest.raises(ValueError, match="must not be empty"):
        study.storage.rename_study("old", "")
    assert [r.name for r in study.storage.list_studies()] == ["old"]


def test_a_name_ending_in_colon_test_is_kept_for_test_results(sqlite_url: str) -> None:
    # before: a study of the user's named "exp:test" was taken for exp's test results: listed in
    # exp's row, its trials "not a test result", and deleted with exp
    exp = ts.Study(SPACE, sampler="random", seed=0, storage=sqlite_url, name="exp")
    exp.optimize(lambda t: t.params["x"], n_trials=3)
    for act in (lambda: ts.Study(SPACE, storage=sqlite_url, name="exp:test"),
                lambda: exp.copy("run:test"), lambda: exp.rename("exp:test")):
        with pytest.raises(ValueError, match="ends with ':test', which tunesmith keeps for the test results"):
            act()
    assert [r.name for r in exp.storage.list_studies()] == ["exp"]
    exp.evaluate_best(lambda t: t.params["x"], k=1)  # evaluate_best still makes its companion
    assert ts.load_study("exp:test", sqlite_url).trials[0].attrs["trial"] == exp.best_trial.number
    exp.rename("exp2")
    assert sorted(r.name for r in exp.storage.list_studies()) == ["exp2", "exp2:test"]


def test_a_sampler_override_on_an_existing_study_is_recorded(sqlite_url: str) -> None:
    ts.Study(SPACE, sampler="random", storage=sqlite_url, name="s")
    assert ts.load_study("s", sqlite_url).storage.get_study("s").config["sampler"]["name"] == "random"
    ts.Study(storage=sqlite_url, name="s", sampler="sobol")
    stored = ts.load_study("s", sqlite_url)
    assert stored.sampler.name == "sobol" and stored.storage.get_study("s").config["sampler"]["name"] == "sobol"
    assert stored.storage.get_study("s").config["pruner"] is not None  # the rest is kept


def test_cli_studies_copy_rename_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    url, other = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    study = ts.Study(SPACE, sampler="random", storage=url, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=3)
    ts.Study(storage=url, name="s", sampler="grid")  # an override, as `tunesmith run --sampler grid`
    assert main(["studies", "--storage", url]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip(" │|").startswith("s "))
    assert "grid" in row and "random" not in row
    assert main(["copy", "s", "--storage", url]) == 2  # before: "... or to another storage (storage=...)"
    assert "copy study 's' to a NEW_NAME, or into another database with --to-storage URL" in capsys.readouterr().err
    assert main(["copy", "nope", "--storage", url]) == 2  # before: "copy study 'nope' to a NEW_NAME"
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["copy", "s", "t", "--storage", url]) == 0
    assert main(["copy", "s", "--storage", url, "--to-storage", other]) == 0
    assert "copied study 's' (3 trials) to 's' in" in capsys.readouterr().out
    assert main(["rename", "t", "t", "--storage", url]) == 0  # before: "renamed study 't' to 't'"
    assert "study 't' is already named so; nothing changed" in capsys.readouterr().out
    assert main(["rename", "t", "u", "--storage", url]) == 0
    study.ask()  # a worker's trial: the copy fails it, the delete stops the worker
    assert main(["copy", "s", "v", "--storage", url]) == 0
    assert "(4 trials, 1 of them running, copied as failed" in capsys.readouterr().out
    assert main(["delete", "v", "--storage", url, "--yes"]) == 0
    assert main(["delete", "s", "--storage", url]) == 2  # not a terminal: --yes is needed
    assert "pass --yes to confirm" in capsys.readouterr().err
    assert main(["delete", "s", "--storage", url, "--yes"]) == 0
    assert "(4 trials, 1 of them running: the workers running them stop" in capsys.readouterr().out
    assert [r.name for r in ts.SQLStorage(url).list_studies()] == ["u"]
    assert len(ts.load_study("u", url).trials) == 3 and len(ts.load_study("s", other).trials) == 3


def test_add_trial_attrs_cannot_touch_the_study_s_bookkeeping() -> None:
    """The system's keys and the user's live apart: an attribute named like one marks nothing."""
    study = ts.Study(SPACE)
    rec = study.add_trial({"x": 0.5, "k": "a"}, 1.0, attrs={"resumed_step": 3, "checkpoint": "/tmp/x"})
    assert rec.attrs == {"resumed_step": 3, "checkpoint": "/tmp/x"}
    assert not rec.is_resumed and rec.system == ts.trial.SystemState()


def test_cli_delete_answered_with_end_of_input_deletes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from tunesmith.cli import main

    class Terminal(io.StringIO):  # a terminal where the user pressed Ctrl-D at the prompt
        def isatty(self) -> bool:
            return True

    url = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study(SPACE, storage=url, name="s")
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert main(["delete", "s", "--storage", url]) == 1  # before: an EOFError traceback
    assert "nothing deleted" in capsys.readouterr().out
    assert [r.name for r in ts.SQLStorage(url).list_studies()] == ["s"]


def test_a_copy_into_a_space_its_grid_s_points_do_not_fit_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    """The copy keeps the study's sampler: a grid whose points name a parameter the new space lacks (or lie
    outside it) was stored with the copy, which failed at its first ask and at every reopening."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    space = {"lr": ts.Float(1e-3, 1.0, log=True), "x": ts.Float(0.0, 1.0)}
    study = ts.Study(space, sampler=ts.GridSampler({"lr": [0.01, 0.1], "x": 3}), seed=0, storage=url, name="g")
    study.optimize(lambda t: t.params["lr"] + t.params["x"], n_trials=6)
    for name, new in (("no-x", {"lr": ts.Float(1e-3, 1.0, log=True)}),
                      ("high-lr", {"lr": ts.Float(0.05, 1.0, log=True), "x": ts.Float(0.0, 1.0)})):
        with pytest.raises(ValueError, match=r"the copy keeps the sampler of study 'g' \(grid\): (grid points given "
                                             r"for unknown parameter\(s\) \['x'\]|parameter 'lr': grid value 0.01 is "
                                             r"outside \[0.05, 1.0\]); copy into a space"):
            study.copy(name, space=new)
        with pytest.raises(ts.StudyNotFound):
            ts.load_study(name, url)
    branch = {"opt": ts.Categorical(["sgd", "adam"]), "m": ts.Float(0.0, 1.0, when={"opt": "sgd"}), "x": ts.Float(0.0, 1.0)}
    grid = ts.Study(branch, sampler=ts.GridSampler({"m": 2, "x": 2}), storage=url, name="branch")
    grid.optimize(lambda t: t.params["x"] + (t.params["opt"] == "sgd"), n_trials=6)
    with pytest.raises(ValueError, match=r"the focus keeps the sampler of study 'branch' \(grid\): grid points given "
                                         r"for unknown parameter\(s\) \['m'\]; keep the parameters they name"):
        grid.focus(keep=["x"], name="f")  # opt fixed at the best trial's adam: m, active under sgd only, is dropped
    wider = study.copy("wide", space={"lr": ts.Float(1e-4, 1.0, log=True), "x": ts.Float(0.0, 1.0)})
    wider.optimize(lambda t: t.params["lr"] + t.params["x"], n_trials=6)  # the grid's 6 points, all carried: none left
    assert len(wider.trials) == 6


def test_a_copy_into_a_new_space_takes_the_trials_that_fit_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=6)
    study.evaluate_best(lambda t: t.params["x"], k=1)
    wider = {"x": ts.Float(0.0, 2.0), "k": ts.Categorical(["a", "b", "c"])}
    with pytest.raises(ValueError, match=r"copy it: Study.load\('s', storage\).copy\(NEW_NAME, space=...\)"):
        ts.Study(wider, storage=url, name="s")  # the refusal names the way out
    wide = study.copy("wide", space=wider)
    assert wide.space.to_dict() == ts.Space(wider).to_dict() and len(wide.trials) == 6
    assert [t.params for t in wide.trials] == [t.params for t in study.trials]
    assert len(ts.load_study("wide:test", url).trials) == 1  # same numbers: the test results come along
    wide.optimize(lambda t: t.params["x"], n_trials=2)
    with pytest.raises(ValueError, match=r"the old trials lack \['wd'\]: give the values they ran with, "
                                         r"fill=\{'wd': VALUE\} \(--fill wd=VALUE\)"):
        ts.Study({**SPACE, "wd": ts.Float(0.0, 0.1)}, storage=url, name="s")
    narrower = {"x": ts.Float(0.0, 0.5), "k": ts.Categorical(["a", "b"])}
    kept = sum(t.params["x"] <= 0.5 for t in study.trials)
    assert 0 < kept < 6
    path = tmp_path / "narrow.yaml"
    path.write_text("objective: m:f\nspace:\n  x: {type: float, low: 0.0, high: 0.5}\n  k: [a, b]\n")
    assert main(["copy", "s", "narrow", "--storage", url, "--space", str(path)]) == 0
    narrow = ts.load_study("narrow", url)
    assert narrow.space.to_dict() == ts.Space(narrower).to_dict() and len(narrow.trials) == kept
    assert f"{6 - kept} of 6 trials left out" in caplog.text and "and so are their test results" in caplog.text
    path.write_text("objective: m:f\n")
    assert main(["copy", "s", "none", "--storage", url, "--space", str(path)]) == 2
    assert "has no space: to give the copy" in capsys.readouterr().err
    # a parameter the new space adds: the old trials ran with one value of it, which --fill gives
    path.write_text("objective: m:f\nspace:\n  x: {type: float, low: 0.0, high: 1.0}\n  k: [a, b]\n"
                    "  wd: {type: float, low: 0.0, high: 0.1}\n")
    caplog.clear()  # without --fill every old trial is left out: the warning names the way in
    assert main(["copy", "s", "bare", "--storage", url, "--space", str(path)]) == 0
    assert "6 of 6 trials left out" in caplog.text
    assert "the old trials lack ['wd']: give the values they ran with, fill={'wd': VALUE} (--fill wd=VALUE)" in caplog.text
    assert main(["copy", "s", "wd", "--storage", url, "--space", str(path), "--fill", "wd=0.0"]) == 0
    assert [t.params for t in ts.load_study("wd", url).trials[:6]] == [{**t.params, "wd": 0.0} for t in study.trials]
    assert main(["copy", "s", "wd2", "--storage", url, "--space", str(path), "--fill", "wd"]) == 2
    assert "--fill takes NAME=VALUE (wd=0.0), got 'wd'" in capsys.readouterr().err
    assert main(["copy", "s", "wd2", "--storage", url, "--fill", "wd=0.0"]) == 2  # it said "pass that space= too"
    assert "--fill gives the values of parameters a new space adds: pass --space STUDY.yaml too" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fill= gives values for parameters a new space adds: pass that space="):
        study.copy("wd3", fill={"wd": 0.0})


def test_cli_studies_filters_by_pattern_and_sorts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tunesmith.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    for name, n in [("mlp-b", 1), ("svm", 3), ("mlp-a", 2), ("run[1]", 1)]:
        ts.Study(SPACE, sampler="random", storage=url, name=name).optimize(lambda t: t.params["x"], n_trials=n)

    def listed(*args: str) -> list[str]:
        assert main(["studies", *args, "--storage", url]) == 0
        lines = capsys.readouterr().out.splitlines()
        return [line.strip(" │").split()[0] for line in lines if line.startswith("│")]

    assert listed() == ["mlp-b", "svm", "mlp-a", "run[1]"]  # created first, first
    assert listed("mlp-*", "--sort", "name") == ["mlp-a", "mlp-b"]
    assert listed("--sort", "trials") == ["svm", "mlp-a", "mlp-b", "run[1]"]
    assert listed("--sort", "last") == ["run[1]", "mlp-a", "svm", "mlp-b"]
    assert listed("run[1]") == ["run[1]"]  # a name is itself, though [1] is a pattern's class
    assert main(["studies", "MLP*", "--storage", url]) == 0
    assert "no study matches 'MLP*'" in capsys.readouterr().err  # stdout empty, for `| grep -q`
    ts.Study(SPACE, sampler="random", seed=0, storage=url, name="svm").evaluate_best(lambda t: t.params["x"], k=1)
    assert main(["studies", "svm:test", "--storage", url]) == 0  # listed with --all only: it said the pattern is case-sensitive
    assert "it matches 1 companion study of test results, listed with --all" in capsys.readouterr().err
    assert listed("svm:test", "--all") == ["svm:test"]
    assert main(["studies", "--storage", url]) == 0
    assert re.search(r"│ mlp-b .* \d{4}-\d\d-\d\d \d\d:\d\d │", capsys.readouterr().out)  # the last trial's time


def test_cli_import_reads_back_what_export_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunesmith.cli import main

    url, other = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s ü", pruner="median")
    study.optimize(lambda t: t.params["x"], n_trials=3)
    study.add_trial({"x": 0.5, "k": "b"}, state="pruned", intermediate={0: 0.9, 3: 0.8}, attrs={"note": "n"})
    study.add_trial({"x": 0.25, "k": "a"}, state="failed", error="diverged")
    study.ask()  # running: imported as failed
    study.enqueue({"x": 0.75, "k": "b"})  # waiting: queued again
    path = tmp_path / "s.json"
    assert main(["export", "s ü", "--storage", url, "--format", "json", "-o", str(path)]) == 0
    assert main(["import", str(path), "--storage", other]) == 0
    assert "imported study 's ü' (7 trials)" in capsys.readouterr().out
    back = ts.load_study("s ü", other)
    assert back.space.to_dict() == study.space.to_dict() and back.pruner.describe() == study.pruner.describe()
    assert [_strip(t) for t in back.trials[:5]] == [_strip(t) for t in study.trials[:5]]
    assert back.trials[5].state is TrialState.FAILED and back.trials[5].error == "running when the study was exported"
    assert back.trials[6].state is TrialState.WAITING and back.trials[6].params == study.trials[6].params
    assert [t.started for t in back.trials[:3]] == [t.started for t in study.trials[:3]]
    assert [t.worker for t in back.trials[:6]] == [t.worker for t in study.trials[:6]]  # was None: show's failures
    assert back.trials[0].worker  # ran "on no worker"
    assert main(["import", str(path), "--storage", other]) == 2
    assert "already exists" in capsys.readouterr().err
    doc = json.loads(path.read_text())
    doc["trials"][1]["params"]["x"] = 7.0
    path.write_text(json.dumps(doc))
    assert main(["import", str(path), "again", "--storage", other]) == 2
    assert "trial 1: parameter 'x': value 7.0 is outside" in capsys.readouterr().err
    doc["trials"][1]["params"]["x"], doc["trials"][0]["worker"] = 0.5, {"host": "h"}
    path.write_text(json.dumps(doc))
    assert main(["import", str(path), "again", "--storage", other]) == 2
    assert "trial 0: worker must be the text export wrote (host:pid, at most 256 characters, no NUL) or null, got {'host': 'h'}" in capsys.readouterr().err
    assert [r.name for r in ts.SQLStorage(other).list_studies()] == ["s ü"]  # nothing half-imported is left
    for text in ("{not json", "[" * 100_000):  # the second: a RecursionError's traceback before
        path.write_text(text)
        assert main(["import", str(path), "--storage", other]) == 2
        assert "cannot read" in capsys.readouterr().err


def test_import_refuses_a_worker_the_database_cannot_store(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """import keeps each trial's worker: one of 300 characters or holding NUL ended an import into
    PostgreSQL with the database's error ("value too long for type character varying(256)"), naming
    neither the trial nor the field; it is refused as bad input, a worker of 256 characters kept."""
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s").optimize(lambda t: t.params["x"], n_trials=2)
    path = tmp_path / "s.json"
    assert main(["export", "s", "--storage", url, "--format", "json", "-o", str(path)]) == 0
    doc = json.loads(path.read_text())
    for worker in ("h" * 300, "h\x00:1"):
        doc["trials"][1]["worker"] = worker
        path.write_text(json.dumps(doc))
        assert main(["import", str(path), "--storage", pg_url]) == 2
        err = capsys.readouterr().err
        assert "trial 1: worker must be the text export wrote (host:pid, at most 256 characters, no NUL)" in err
    assert ts.SQLStorage(pg_url).list_studies() == []
    doc["trials"][1]["worker"] = "h" * 252 + ":123"
    path.write_text(json.dumps(doc))
    assert main(["import", str(path), "--storage", pg_url]) == 0
    assert ts.load_study("s", pg_url).trials[1].worker == "h" * 252 + ":123"


def test_a_copy_to_postgresql_refuses_a_worker_the_database_cannot_store(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SQLite study whose worker was made 300 characters long by hand, copied to PostgreSQL, ended
    with the database's error ("value too long for type character varying(256)"), naming neither
    the trial nor the field; one in its test results failed the second write, the study copied
    without them. Refused before anything is written, naming the trial; SQLite copies it."""
    import sqlite3

    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    study.evaluate_best(lambda t: t.params["x"], k=1)
    for name, number in (("s", 1), ("s:test", 0)):
        with sqlite3.connect(tmp_path / "a.db") as con:  # whoever can write the database
            con.execute("UPDATE ts_trials SET worker = ? WHERE number = ? AND study_id = (SELECT study_id FROM "
                        "ts_studies WHERE name = ?)", ("h" * 300, number, name))
        with pytest.raises(ValueError, match=rf"trial {number} of study '{name}': its worker 'h{{40}}'\.\.\. \(300 "
                                             r"characters\) cannot be stored in postgresql.* \(at most 256 characters, no "
                                             r"NUL\): copy the study to SQLite, or export it"):
            ts.load_study("s", url).copy("s", storage=pg_url)
        assert ts.SQLStorage(pg_url).list_studies() == []
        with sqlite3.connect(tmp_path / "a.db") as con:
            con.execute("UPDATE ts_trials SET worker = NULL")
    with sqlite3.connect(tmp_path / "a.db") as con:
        con.execute("UPDATE ts_trials SET worker = ? WHERE number = 1", ("h" * 300,))
    assert main(["copy", "s", "t", "--storage", url, "--to-storage", pg_url]) == 2
    assert "trial 1 of study 's'" in capsys.readouterr().err and ts.SQLStorage(pg_url).list_studies() == []
    assert ts.load_study("s", url).copy("t").trials[1].worker == "h" * 300  # SQLite keeps it


def test_notes_are_kept_with_the_study_shown_copied_and_exported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunesmith.cli import main

    url, other = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s")
    study.add_note("  widened x after week 1 ")
    assert main(["note", "s", "stopped: GPU quota", "--storage", url]) == 0
    assert [n["text"] for n in study.notes] == ["widened x after week 1", "stopped: GPU quota"]
    assert study.notes[0]["time"] <= study.notes[1]["time"]
    for bad in ("", "   ", "x" * 2001):
        with pytest.raises(ValueError, match="a note is a text of 1 to 2000 characters"):
            study.add_note(bad)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    assert main(["show", "s", "--storage", url]) == 0
    assert re.search(r"note \d{4}-\d\d-\d\d \d\d:\d\d: widened x after week 1", capsys.readouterr().out)
    assert [n["text"] for n in study.copy("t").notes] == ["widened x after week 1", "stopped: GPU quota"]
    path = tmp_path / "s.json"
    assert main(["export", "s", "--storage", url, "--format", "json", "-o", str(path)]) == 0
    assert main(["import", str(path), "--storage", other]) == 0
    assert ts.load_study("s", other).notes == study.notes


def test_rename_and_copy_warn_that_paused_trials_cannot_resume_under_the_new_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tunesmith.pruners import ASHA

    study = ts.Study(SPACE, sampler="random", seed=0, name="p", pruner=ASHA(min_resource=1, pause=True, max_resource=9))
    trial = study.ask()
    trial.set_attr("checkpoint", str(study_folder(tmp_path, "p", study.copy_id) / "trial-0" / "last-1.pt"))
    trial.report(0.5, 1)
    study.tell(trial, state="paused")
    assert study.trials[0].state is TrialState.PAUSED
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.copy("q")
        study.copy(storage=f"sqlite:///{tmp_path / 'other.db'}")  # the same name: the copy's folder is another all the same
        study.rename("r")
    assert "study 'p', copied as 'q': its paused trial(s) [0] keep their checkpoints in the folder named" in caplog.text
    assert "study 'p', renamed 'r': its paused trial(s) [0]" in caplog.text
    copied = [r.getMessage() for r in caplog.records if "copied as 'p'" in r.getMessage()]
    assert len(copied) == 1 and "under the old name" not in copied[0]  # before: no name was old
    assert "promoted in the copy, which has a folder of its own, they fail" in copied[0]
    assert "Let them finish in study 'p' before copying, or end them" in copied[0]


def test_a_copy_renamed_names_the_folder_of_the_study_that_paused_its_trials(
    shared_storage_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy of a study with a paused trial, then renamed: the warning said the trial's checkpoints were in
    the folder named after the copy ('b') and to let it finish under that name first, where they are in the
    folder of the study that paused it ('a'), and the trial resumes in 'a' alone."""
    from tunesmith.pruners import ASHA

    a = ts.Study(SPACE, sampler="random", seed=0, name="a", storage=shared_storage_url,
                 pruner=ASHA(min_resource=1, pause=True, max_resource=9))
    trial = a.ask()
    folder = study_folder(tmp_path, "a", a.copy_id)  # where ts.train.objective checkpoints trial 0 of 'a'
    trial.set_attr("checkpoint", str(folder / "trial-0" / "last-1.pt"))
    trial.report(0.5, 1)
    a.tell(trial, state="paused")
    b = a.copy("b")
    with caplog.at_level("WARNING", logger="tunesmith"):
        b.rename("c")
    said = " ".join(r.getMessage() for r in caplog.records if "paused trial" in r.getMessage())
    assert "folder named after 'b'" not in said and "under the old name" not in said, said
    assert (f"study 'b', renamed 'c': its paused trial(s) [0] were paused under a name it had before or in the "
            f"study it was copied from: their checkpoints are in {folder.name}, not in the folder of 'b'") in said
    assert "Resume them in the study that paused them, or end them with study.tell(n, state='pruned') (or " \
           "`tunesmith tell c 0 --state pruned --storage" in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        ts.load_study("c", shared_storage_url).rename("b")  # its own earlier name: still not the folder of 'a'
        a.rename("a2")
    said = [r.getMessage() for r in caplog.records if "paused trial" in r.getMessage()]
    assert "study 'c', renamed 'b': its paused trial(s) [0] were paused under a name" in said[0]
    assert "study 'a', renamed 'a2': its paused trial(s) [0] keep their checkpoints in the folder named " \
           "after 'a'" in said[1]
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        a.rename("a")  # back to the name it paused them under: they resume there, nothing to warn of
    assert not [r for r in caplog.records if "paused trial" in r.getMessage()], caplog.text


@pytest.mark.parametrize("root", ["ckpt", "ckpt\n[tunesmith] checkpoint files deleted"])
def test_delete_names_the_checkpoint_folders_it_leaves(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       root: str) -> None:
    """A checkpoint path is read from storage (another writer's) and the folder it names may be another user's
    (a shared checkpoint root): a line break in it started a log line of its own under tunesmith's name."""
    folder = tmp_path / root / "s-0123abcd"
    (folder / "trial-0").mkdir(parents=True)
    (folder / "trial-0" / "best.pt").write_bytes(b"x")
    study = ts.Study(SPACE, sampler="random", seed=0, name="s")

    def objective(t: ts.Trial) -> float:
        t.set_attr("checkpoint", str(folder / f"trial-{t.number}" / "best.pt"))
        return t.params["x"]

    study.optimize(objective, n_trials=2)
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.delete()
    shown = str(folder).replace("\n", "\\n")  # one line
    assert f"deleted study 's'; its trials' checkpoint files are not deleted: they are in {shown}" in caplog.text
    assert (folder / "trial-0" / "best.pt").exists()  # named, never touched


def test_deleting_a_copy_does_not_name_the_original_s_checkpoints_as_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The trials a copy was made with name the checkpoint folder of the study it came from: the
    delete listed that folder as the copy's files (a user removing them loses the other study's)."""
    def objective(t: ts.Trial) -> float:
        folder = tmp_path / ("ckpt-a" if t.study.copy_id == study.copy_id else "ckpt-b") / "s-0123abcd" / f"trial-{t.number}"
        folder.mkdir(parents=True)
        t.set_attr("checkpoint", str(folder / "last.pt"))
        return t.params["x"]

    study = ts.Study(SPACE, sampler="random", seed=0, name="s", storage=f"sqlite:///{tmp_path / 'a.db'}")
    study.optimize(objective, n_trials=2)
    copy = study.copy(storage=f"sqlite:///{tmp_path / 'b.db'}")
    copy.optimize(objective, n_trials=1)
    with caplog.at_level("WARNING", logger="tunesmith"):
        copy.delete()
    own, theirs = tmp_path / "ckpt-b" / "s-0123abcd", tmp_path / "ckpt-a" / "s-0123abcd"
    assert f"deleted study 's'; its trials' checkpoint files are not deleted: they are in {own}\n" in caplog.text + "\n"
    assert (f"deleted study 's', a copy: the trials it was copied with name checkpoints of the study it came from, "
            f"in {theirs}; those are that study's, left as they are") in caplog.text
    assert (theirs / "trial-0").is_dir() and len(study.trials) == 2


def test_a_handle_on_a_deleted_study_writes_nowhere(storage_url: str | None) -> None:
    # before, in memory: trials told, added and queued after the delete went on silently into a
    # study no one could open again (a SQL storage raised)
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="d")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    ts.load_study("d", study.storage).delete()
    again = ts.Study(SPACE, sampler="random", seed=0, storage=study.storage, name="d")  # the name is free
    for act in (lambda: study.optimize(lambda t: t.params["x"], n_trials=1), lambda: study.add_trial(OK, 1.0),
                lambda: study.enqueue(OK)):
        with pytest.raises(ts.StudyNotFound, match="deleted while this process ran it"):
            act()
    assert again.trials == [] and ts.load_study("d", study.storage).trials == []
    with pytest.raises(ts.StudyNotFound, match="deleted while this process had it open"):
        study.delete()  # before: deleted the new study of that name
    assert [r.name for r in study.storage.list_studies()] == ["d"]


@pytest.mark.parametrize("running", [False, True])
def test_the_trials_of_a_study_deleted_by_another_handle_say_it_was_deleted(storage_url: str | None,
                                                                           running: bool) -> None:
    # before: study.trials kept returning what the handle last read; with a trial running, only
    # its finished ones (1 of 2 trials)
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="d")
    study.optimize(lambda t: t.params["x"], n_trials=1)
    if running:
        study.ask()
    assert len(study.trials) == 1 + running
    ts.load_study("d", study.storage).delete()
    with pytest.raises(ts.StudyNotFound, match="no longer in .*: it was deleted while this process had it open"):
        study.trials  # noqa: B018 - the property reads the storage
    with pytest.raises(ts.StudyNotFound, match="deleted while this process had it open"):
        study.best_trial  # noqa: B018


def test_a_handle_opened_before_a_rename_acts_on_the_study_under_its_new_name(storage_url: str | None) -> None:
    # before: its evaluate_best wrote the test results under the old name (shown by no study),
    # and its copy, notes and delete answered "no study named 'h'"
    a = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="h")
    b = ts.load_study("h", a.storage)
    a.optimize(lambda t: t.params["x"], n_trials=3)
    a.rename("h2")
    b.evaluate_best(lambda t: t.params["x"], k=1)
    assert b.name == "h2" and sorted(r.name for r in a.storage.list_studies()) == ["h2", "h2:test"]
    b.add_note("after the rename")
    assert [n["text"] for n in a.notes] == ["after the rename"]
    assert len(b.copy("h3").trials) == 3
    b.delete()
    assert sorted(r.name for r in a.storage.list_studies()) == ["h3", "h3:test"]
    with pytest.raises(ts.StudyNotFound, match="no longer in .*: it was deleted while this process had it open"):
        a.add_note("gone")


def test_a_result_added_with_an_old_start_is_not_taken_for_a_lost_worker_s_trial(sqlite_url: str) -> None:
    # before: the row was created running with its heartbeat at `started` (an hour ago), so a worker
    # reaping lost trials between the add's two writes failed it (and the add raised
    # TrialFinishedError); now the add is one write, and the trial it wrote is no lost worker's
    class Interleaved(ts.SQLStorage):
        def update_trial(self, study_id: int, trial: ts.FrozenTrial, **kw: object) -> bool:
            raise AssertionError("add_trial writes its trial once, whole")

        def insert_trials(self, study_id: int, records: Sequence[ts.FrozenTrial]) -> list[ts.FrozenTrial]:
            done = super().insert_trials(study_id, records)
            hook, self.hook = getattr(self, "hook", None), None
            if hook:
                hook()  # another worker asks (and looks for lost trials) right after
            return done

    study = ts.Study(SPACE, sampler="random", seed=0, storage=Interleaved(sqlite_url), name="s",
                     heartbeat_interval=1.0, grace_period=2.0)
    other = ts.load_study("s", sqlite_url)
    study.storage.hook = lambda: other.tell(other.ask(), 0.5)  # type: ignore[attr-defined]
    added = study.add_trial(OK, 1.0, started=time.time() - 3600)
    assert added.state is TrialState.COMPLETE
    assert [(t.state, t.value) for t in other.trials] == [(TrialState.COMPLETE, 1.0), (TrialState.COMPLETE, 0.5)]


def test_a_storage_without_its_own_insert_trials_adds_an_old_result_with_a_fresh_heartbeat() -> None:
    # Storage.insert_trials (memory, custom storages) creates the row running, then rewrites it:
    # it was created with its heartbeat at `started` (an hour ago), so a worker reaping lost trials
    # between the two writes failed it and the add raised TrialFinishedError
    class Interleaved(ts.MemoryStorage):
        hook = None

        def update_trial(self, study_id: int, trial: ts.FrozenTrial, **kw: object) -> bool:
            hook, self.hook = self.hook, None
            if hook:
                hook()  # another worker asks between the add's two writes
            return super().update_trial(study_id, trial, **kw)  # type: ignore[arg-type]

    storage = Interleaved()
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage, name="s", heartbeat_interval=1.0,
                     grace_period=2.0)
    other = ts.load_study("s", storage)
    storage.hook = lambda: other.tell(other.ask(), 0.5)  # type: ignore[assignment]
    added = study.add_trial(OK, 1.0, started=time.time() - 3600)
    assert added.state is TrialState.COMPLETE and added.started is not None and added.started < time.time() - 3000
    assert [(t.state, t.value) for t in other.trials] == [(TrialState.COMPLETE, 1.0), (TrialState.COMPLETE, 0.5)]


def test_a_copy_s_fill_is_checked_first_and_given_only_where_its_parameter_is_active() -> None:
    # before: a misspelt or out-of-range fill left every trial out (a warning) and took the name with an
    # empty copy; a conditional parameter's fill left out every trial of the other branch ("inactive here")
    study = ts.Study(SPACE, sampler="random", seed=0, name="f")
    for x, k in [(0.1, "a"), (0.2, "b"), (0.3, "a")]:
        study.add_trial({"x": x, "k": k}, x)
    new = {**SPACE, "wd": ts.Float(0.0, 0.1), "m": ts.Float(0.0, 1.0, when={"k": "b"})}
    with pytest.raises(ValueError, match=r"fill= names 'wdd', not a parameter of the new space \(did you mean 'wd'"):
        study.copy("f2", space=new, fill={"wdd": 0.0, "m": 0.5})
    with pytest.raises(ValueError, match=r"fill=\{'wd': 5.0\}: parameter 'wd': .*outside"):
        study.copy("f2", space=new, fill={"wd": 5.0, "m": 0.5})
    assert [r.name for r in study.storage.list_studies()] == ["f"]  # the name is still free
    copy = study.copy("f2", space=new, fill={"wd": 0.0, "m": 0.5})
    assert [t.params for t in copy.trials] == [{"x": 0.1, "k": "a", "wd": 0.0}, {"x": 0.2, "k": "b", "wd": 0.0, "m": 0.5},
                                               {"x": 0.3, "k": "a", "wd": 0.0}]


def test_import_refuses_a_file_whose_study_lacks_its_name_space_or_direction() -> None:
    # before: no name imported the study as 'None', no direction as a minimizing one (the best trial
    # turned upside down), no space said "no study named ...: pass a space to create it"
    from tunesmith.study.manage import import_study

    head = {"name": "a", "direction": "maximize", "space": ts.Space(SPACE).to_dict()}
    for key, said in [("name", "names no study: give it a name"), ("direction", "has no direction"),
                      ("space", "has no space")]:
        doc = {"study": {k: v for k, v in head.items() if k != key}, "trials": []}
        with pytest.raises(ValueError, match=f"the exported study {said}"):
            import_study(doc, None)
    assert import_study({"study": {k: v for k, v in head.items() if k != "name"}, "trials": []}, None,
                        "b").direction.value == "maximize"


def test_a_study_named_before_the_white_space_rule_still_gets_its_test_results() -> None:
    # a name with white space at one end, stored before new names refused it, stays readable; its
    # evaluate_best refused the companion ' x:test' as a new name with white space
    from tunesmith.trial import Direction

    storage = ts.MemoryStorage()
    storage.create_study(" x", direction=Direction.MINIMIZE, space=ts.Space(SPACE).to_dict(),
                         config={"sampler": {"name": "random"}, "pruner": {"name": "none"}})
    study = ts.Study.load(" x", storage)
    study.add_trial(OK, 1.0)
    (result,) = study.evaluate_best(lambda t: 2.0, k=1).results
    assert result.mean == 2.0 and [r.name for r in storage.list_studies()] == [" x", " x:test"]
    with pytest.raises(ValueError, match="begins or ends with white space"):
        study.copy(" y")  # a new name still may not


def test_add_trial_off_a_parameter_s_step_names_the_nearest_allowed_value() -> None:
    """A result measured at 0.3 with step 0.25 was refused without saying which value fits."""
    study = ts.Study({"x": ts.Float(0, 1, step=0.25), "n": ts.Int(1, 10, step=3)})
    with pytest.raises(ValueError, match=r"'x'.* 0\.3 is not on the step 0\.25 .*nearest allowed value is 0\.25"):
        study.add_trial({"x": 0.3, "n": 4}, 1.0)
    with pytest.raises(ValueError, match=r"'n'.* 5 is not on the step 3 from 1; the nearest allowed value is 4"):
        study.add_trial({"x": 0.25, "n": 5}, 1.0)
    assert study.trials == []


def test_set_study_config_with_expect_writes_only_over_what_was_read(storage: ts.Storage) -> None:
    ts.Study(SPACE, storage=storage, name="c")
    read = storage.get_study("c")
    assert storage.set_study_config(read.study_id, {**read.config, "notes": ["a"]}, expect=read.config) is True
    assert storage.set_study_config(read.study_id, {**read.config, "notes": ["b"]}, expect=read.config) is False
    assert storage.get_study("c").config["notes"] == ["a"]  # the stale write changed nothing


def test_notes_added_at_the_same_moment_are_all_kept(shared_storage_url: str) -> None:
    """Each writer rewrote the settings it had read: of two notes added at once, or a note and a
    sampler recorded by a process opening the study with another one, one was lost."""
    import threading

    ts.Study(SPACE, storage=shared_storage_url, name="n")
    writers, each = 4, 10
    start = threading.Barrier(writers + 2)

    def write(w: int) -> None:
        storage = make_storage(shared_storage_url)
        start.wait()
        for i in range(each):
            add_note(storage, "n", f"{w}-{i}")
        storage.close()

    def reopen(w: int) -> None:
        storage = make_storage(shared_storage_url)
        start.wait()
        for i in range(each):
            ts.Study(name="n", storage=storage, sampler="tpe" if i % 2 else "random", seed=w)
        storage.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    threads += [threading.Thread(target=reopen, args=(w,)) for w in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    texts = [n["text"] for n in ts.load_study("n", shared_storage_url).notes]
    assert sorted(texts) == sorted(f"{w}-{i}" for w in range(writers) for i in range(each))


def _exported_with_test_results(tmp_path: Path) -> tuple[ts.Study, Path]:
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=0, storage=url, name="e")
    study.optimize(lambda t: t.params["x"], n_trials=6)
    study.evaluate_best(lambda t, seed: 1.0 - t.params["x"] + 0.01 * seed, k=3, seeds=[0, 1])
    path = tmp_path / "e.json"
    assert main(["export", "e", "--storage", url, "--format", "json", "-o", str(path)]) == 0
    return study, path


def test_export_and_import_carry_the_test_results_and_old_files_still_import(tmp_path: Path) -> None:
    """export --format json left out evaluate_best's test results, so import could not bring them back."""
    from tunesmith.cli import main
    from tunesmith.study.evaluate import test_results

    study, path = _exported_with_test_results(tmp_path)
    other = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["import", str(path), "--storage", other]) == 0
    assert test_results(ts.load_study("e", other)) == test_results(study) != {}
    doc = json.loads(path.read_text())
    del doc["test_results"]  # a file written before export held them
    path.write_text(json.dumps(doc))
    assert main(["import", str(path), "old", "--storage", other]) == 0
    assert test_results(ts.load_study("old", other)) == {} and len(ts.load_study("old", other).trials) == 6
    ts.SQLStorage(other).create_study("n:test", direction=Direction.MAXIMIZE, space={}, config={})
    assert main(["import", str(path), "n", "--storage", other]) == 2  # it would show another's test results


def test_import_names_a_trial_that_does_not_fit_and_skips_it_only_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A trial that did not fit its own space refused the whole file with no way to import the rest."""
    from tunesmith.cli import main
    from tunesmith.study.evaluate import test_results

    study, path = _exported_with_test_results(tmp_path)
    tested = sorted(test_results(study))
    doc = json.loads(path.read_text())
    bad = tested[0]
    doc["trials"][bad]["params"]["x"] = 7.0
    path.write_text(json.dumps(doc))
    other = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["import", str(path), "--storage", other]) == 2
    err = capsys.readouterr().err
    assert f"trial {bad}: parameter 'x': value 7.0 is outside" in err and "tunesmith import --skip-invalid" in err
    assert ts.SQLStorage(other).list_studies() == []
    assert main(["import", str(path), "--storage", other, "--skip-invalid"]) == 0
    assert "imported study 'e' (5 trials; 1 left out, each named above)" in capsys.readouterr().out
    err = caplog.text
    assert f"trial {bad}: parameter 'x': value 7.0 is outside [0, 1]; left out" in err, err
    assert f"the test result of trial {bad} is left out" in err
    back = ts.load_study("e", other)
    assert len(back.trials) == 5
    kept = {n - (n > bad): r for n, r in test_results(study).items() if n != bad}  # numbered anew after it
    assert {n: (r.params, r.mean) for n, r in test_results(back).items()} == {
        n: (r.params, r.mean) for n, r in kept.items()}
    assert all(back.trials[n].params == r.params for n, r in test_results(back).items())


def test_studies_lists_a_study_without_decoding_its_trials_reports(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`tunesmith studies` decoded every trial whole: a row of reports of tens of MB cost seconds and
    hundreds of MB. It reads the number, state, value and times only; a row whose state or value was
    changed outside tunesmith is still counted as the failed trial `show` reads it as."""
    import tracemalloc

    import sqlalchemy as sa

    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'big.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="big")
    study.optimize(lambda t: t.params["x"], n_trials=3)
    reports = json.dumps({str(i): 0.5 for i in range(1_000_000)})  # 16 MB of text, a dict of a million when read
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE ts_trials SET intermediate = :r WHERE number = 0"), {"r": reports})
        c.execute(sa.text("UPDATE ts_trials SET state = 'bogus' WHERE number = 2"))
    engine.dispose()
    tracemalloc.start()
    try:
        assert main(["studies", "--storage", url]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8e6, peak
    row = next(line for line in capsys.readouterr().out.splitlines() if "big" in line and "random" in line)
    assert re.search(r"│\s+3 │\s+2 │", row), row  # 3 trials, 2 complete: the changed state reads as failed


def test_trial_heads_are_the_trials_numbers_states_values_and_times(storage: ts.Storage) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage, name="h")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    study.add_trial({"x": 0.5, "k": "a"}, state="pruned", intermediate={0: 0.9})
    study.ask()  # running: its heartbeat is what show tells a lost worker's trial by
    heads = storage.get_trial_heads(study._study_id)
    assert [(h.number, h.state, h.value, h.started, h.completed, h.heartbeat) for h in heads] == [
        (t.number, t.state, t.value, t.started, t.completed, t.heartbeat) for t in study.trials]
    assert heads[-1].heartbeat is not None


def test_a_stored_study_without_a_sampler_says_how_to_open_it_with_one(sqlite_url: str) -> None:
    """A study whose stored settings lack the sampler (written by hand) was refused with
    "cannot be rebuilt ('sampler')" and no word of sampler=, which opens it."""
    import sqlalchemy as sa

    ts.Study(SPACE, sampler="tpe", storage=sqlite_url, name="bare").optimize(lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE ts_studies SET config = '{}' WHERE name = 'bare'"))
    engine.dispose()
    with pytest.raises(ts.StorageError, match=r"stored sampler cannot be rebuilt .*sampler='random'\), on the "
                                              r"command line --sampler random"):
        ts.Study(name="bare", storage=sqlite_url)
    ts.Study(name="bare", storage=sqlite_url, sampler="random")
    assert ts.load_study("bare", sqlite_url).sampler.describe()["name"] == "random"  # recorded


def test_import_writes_its_trials_in_one_transaction_keeping_a_queued_one_in_its_place(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """import wrote a transaction (a commit) per trial: 2,000 trials into SQLite took 0.5 s. Now one
    write in all: the study with its trials (a process killed midway leaves neither)."""
    from tunesmith.cli.commands import export_json
    from tunesmith.storage import SQLStorage
    from tunesmith.study.manage import import_study

    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'a.db'}", name="s")
    study.optimize(lambda t: t.params["x"], n_trials=20)
    study.enqueue({"x": 0.75, "k": "b"}, attrs={"why": "queued"})
    study.add_trial({"x": 0.5, "k": "a"}, 0.5)  # after the queued trial
    dest = SQLStorage(f"sqlite:///{tmp_path / 'b.db'}")  # its tables made
    writes = request.getfixturevalue("sql_writes")  # from now on
    back = import_study(json.loads(export_json(study)), dest, name="t")
    assert writes == ["_run"], writes
    assert [_strip(t) for t in back.trials] == [_strip(t) for t in study.trials]
    assert back.trials[20].state is TrialState.WAITING and back.trials[20].attrs == {"why": "queued"}


def test_a_copy_that_leaves_trials_out_takes_the_others_test_results_to_their_new_numbers(tmp_path: Path) -> None:
    """A copy into a space that left trials out numbered the rest anew and dropped every test result."""
    from tunesmith.study.evaluate import test_results

    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=8)
    study.evaluate_best(lambda t: 1.0 - t.params["x"], k=8)  # every trial tested
    narrow = study.copy("narrow", space={"x": ts.Float(0.0, 0.5), "k": ts.Categorical(["a", "b"])})
    assert 0 < len(narrow.trials) < 8
    moved = test_results(narrow)
    assert sorted(moved) == [t.number for t in narrow.trials]  # those of the trials left out are not copied
    by_params = {json.dumps(r.params, sort_keys=True): r.mean for r in test_results(study).values()}
    for number, r in moved.items():
        assert r.params == narrow.trials[number].params and r.mean == by_params[json.dumps(r.params, sort_keys=True)]


def test_an_import_and_a_focus_are_created_with_their_copy_id(tmp_path: Path) -> None:
    """import and focus created the study, then wrote its copy_id in a second write: a process killed
    between the two left a copy without one, sharing the checkpoint folder of its name."""
    import sqlite3

    from tunesmith.cli.commands import export_json
    from tunesmith.study.manage import import_study

    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'a.db'}", name="s")
    study.optimize(lambda t: t.params["x"], n_trials=6)
    dest = f"sqlite:///{tmp_path / 'b.db'}"
    make_storage(dest)  # the tables, then a trigger keeping each study's settings as its row was created
    with sqlite3.connect(tmp_path / "b.db") as db:
        db.execute("CREATE TABLE created (name TEXT, config TEXT)")
        db.execute("CREATE TRIGGER keep AFTER INSERT ON ts_studies BEGIN "
                   "INSERT INTO created VALUES (NEW.name, NEW.config); END")
    copies = [import_study(json.loads(export_json(study)), dest, name="imp"),
              study.focus(keep=["x"], name="s", storage=dest)]
    with sqlite3.connect(tmp_path / "b.db") as db:
        created = {n: json.loads(c).get("copy_id") for n, c in db.execute("SELECT name, config FROM created")}
    assert created == {"imp": copies[0].copy_id, "s": copies[1].copy_id}
    assert None not in created.values()


def test_a_study_made_meanwhile_under_its_name_is_not_joined_without_load_if_exists(tmp_path: Path) -> None:
    """Study(..., load_if_exists=False) (import and focus make their study so) found no study of its
    name, then another writer made one before its own write: it went on in that one, without the
    copy_id it was to be created with (an import added its trials to the other study)."""
    from typing import Any

    from tunesmith.exceptions import DuplicateStudyError, StudyNotFound
    from tunesmith.storage.base import StudyRecord
    from tunesmith.storage.sql import SQLStorage

    url = f"sqlite:///{tmp_path / 'a.db'}"

    class Meanwhile(SQLStorage):  # the other writer makes "s" just after this handle found none
        def get_study(self, name: str) -> StudyRecord:
            try:
                return super().get_study(name)
            except StudyNotFound:
                if name == "s" and not made:
                    made.append(ts.Study(SPACE, sampler="random", name="s", storage=url))
                raise

    made: list[ts.Study] = []
    with pytest.raises(DuplicateStudyError, match="a study named 's' already exists"):
        ts.Study(SPACE, sampler="random", name="s", storage=Meanwhile(url), load_if_exists=False,
                 _settings={"copy_id": "c0ffee"})
    assert len(made) == 1 and ts.load_study("s", url).copy_id == made[0].copy_id != "c0ffee"  # the other study, as made

    class Retried(SQLStorage):  # the create committed, its acknowledgement was lost, the retry found it
        def create_study(self, name: str, **kwargs: Any) -> StudyRecord:
            super().create_study(name, **kwargs)
            raise DuplicateStudyError(f"a study named {name!r} already exists")

    mine = ts.Study(SPACE, sampler="random", name="t", storage=Retried(url), load_if_exists=False,
                    _settings={"copy_id": "c0ffee"})
    assert mine.copy_id == "c0ffee"  # its own write: taken
    plain = ts.Study(SPACE, sampler="random", name="u", storage=Retried(url), load_if_exists=False)
    assert plain.copy_id is not None  # every study's write carries its id now: taken too (before: refused as another's)


@pytest.mark.parametrize("dest", ["sqlite", "postgresql"])
def test_a_copy_of_a_study_stored_with_nan_prior_weights_stores_its_space_as_the_study_reads_it(
    tmp_path: Path, dest: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """An older tunesmith stored NaN prior weights; the study reads its space without them (and says
    so). ``copy`` wrote the stored space raw: the copy, a study made now, held the NaN weights the study
    does not use and warned of them in each process that opened it. The copy stores the space as read."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'a.db'}"
    space = {"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"], prior={"a": 2.0, "b": 1.0})}
    ts.Study(space, storage=url, name="w", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # as an older tunesmith stored it
        stored = json.loads(c.execute(sa.text("SELECT space FROM ts_studies WHERE name = 'w'")).scalar_one())
        stored["k"]["prior"]["weight"]["a"] = float("nan")
        c.execute(sa.text("UPDATE ts_studies SET space = :v WHERE name = 'w'"), {"v": json.dumps(stored)})
    engine.dispose()
    study = ts.Study.load("w", url)
    assert study.space["k"].prior is None
    other = request.getfixturevalue("pg_url") if dest == "postgresql" else f"sqlite:///{tmp_path / 'b.db'}"
    copy = study.copy("w2", storage=other)
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        reopened = ts.load_study("w2", other)
    assert "not all finite" not in caplog.text and "weight" not in json.dumps(copy.storage.get_study("w2").space)
    assert reopened.space == study.space and len(reopened.trials) == 2
