"""TensorBoard HParams summaries written from a study, read back with tensorboard's own reader."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from tunesmith.integrations.tensorboard import TensorBoardCallback, write_hparams  # noqa: E402

SPACE = ts.Space({"x": ts.Float(0.0, 10.0), "layers": ts.Int(1, 4), "act": ts.Categorical(["relu", "gelu"])})


def objective(trial: ts.Trial) -> float:
    for step in range(1, 10):
        trial.report(trial.params["x"] / step, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return trial.params["x"] / 9


def resumable(trial: ts.Trial) -> float:
    """:func:`objective` resumed from its last report where a pausing pruner promoted it."""
    for step in range(max(trial.start_step, 1), 10):
        trial.report(trial.params["x"] / step, step)
        if trial.should_prune():
            raise ts.TrialPruned()
    return trial.params["x"] / 9


def _plugin(folder: Path) -> plugin_data_pb2.HParamsPluginData:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData()
    data.ParseFromString(next(iter(content.values())))
    return data


def test_hparams_sessions_and_curves(tmp_path: Path) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9))
    study.enqueue({"x": 1.0, "layers": 2, "act": "relu"})
    study.enqueue({"x": 9.0, "layers": 3, "act": "gelu"})  # pruned at step 1
    cb = TensorBoardCallback(tmp_path / "tb")
    study.optimize(objective, n_trials=4, callbacks=[cb], show_progress=False)
    assert study.trials[1].state is ts.TrialState.PRUNED

    config = _plugin(tmp_path / "tb").experiment
    assert [h.name for h in config.hparam_infos] == ["x", "layers", "act", "trial_state"]
    assert (config.hparam_infos[0].domain_interval.min_value, config.hparam_infos[0].domain_interval.max_value) == (0, 10)
    assert sorted(v.string_value for v in config.hparam_infos[2].domain_discrete.values) == ["gelu", "relu"]
    assert [m.name.tag for m in config.metric_infos] == ["value", "intermediate"]
    for t in study.trials:
        folder = tmp_path / "tb" / f"trial-{t.number}"
        start = _plugin(folder).session_start_info
        assert start.group_name == f"trial-{t.number}"
        assert start.hparams["x"].number_value == pytest.approx(t.params["x"])
        assert start.hparams["act"].string_value == t.params["act"]
        assert start.hparams["trial_state"].string_value == t.state.value
        acc = EventAccumulator(str(folder))
        acc.Reload()
        curve = [(e.step, e.value) for e in acc.Scalars("intermediate")]
        assert curve == [(s, pytest.approx(v)) for s, v in sorted(t.intermediate.items())]
        assert acc.Scalars("value")[-1].value == pytest.approx(t.value)

    # written again (a reopened study): nothing is duplicated
    write_hparams(study, tmp_path / "tb")
    assert len(list((tmp_path / "tb" / "trial-0").iterdir())) == 1
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1


def test_a_categorical_of_ints_and_floats_is_a_numeric_domain(tmp_path: Path) -> None:
    """Categorical([0.1, 1, 10]) mixes int and float: it had no domain (shown as text), though its
    sessions' values are numbers; a mix of numbers and strings still has none."""
    space = ts.Space({"scale": ts.Categorical([0.1, 1, 10]), "act": ts.Categorical([None, "relu"])})
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: 1.0, n_trials=2, show_progress=False)
    write_hparams(study, tmp_path / "tb")
    scale, act = _plugin(tmp_path / "tb").experiment.hparam_infos[:2]
    assert [v.number_value for v in scale.domain_discrete.values] == [0.1, 1.0, 10.0]
    assert not act.HasField("domain_discrete")
    start = _plugin(tmp_path / "tb" / "trial-0").session_start_info
    assert start.hparams["scale"].number_value == study.trials[0].params["scale"]


def test_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metric_name must be a non-empty string"):
        TensorBoardCallback(tmp_path, metric_name="")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.delitem(sys.modules, "tunesmith.integrations.tensorboard")
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[tensorboard\]'"):
        importlib.import_module("tunesmith.integrations.tensorboard")


def test_a_log_dir_under_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorBoardCallback("~/tb") wrote to a folder named "~" in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, show_progress=False)
    assert write_hparams(study, "~/tb") == tmp_path / "home" / "tb"
    assert (tmp_path / "home" / "tb" / "trial-0").is_dir() and not (tmp_path / "~").exists()


def test_a_trial_left_paused_is_written_and_replaced_once_it_finishes(tmp_path: Path) -> None:
    """A trial still paused when optimize ends is the run trial-<n>-paused (state paused, its reports
    so far; rewritten after a later optimize); once it finishes, trial-<n> replaces it."""

    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=9, pause=True))  # fmt: skip
    cb, tb = TensorBoardCallback(tmp_path / "tb"), tmp_path / "tb"

    def run(xs: tuple[float, ...]) -> None:
        for x in xs:
            study.enqueue({"x": x, "layers": 1, "act": "relu"})
        study.optimize(resumable, n_trials=len(xs), callbacks=[cb], show_progress=False)

    def curve(folder: Path) -> list[int]:
        acc = EventAccumulator(str(folder))
        acc.Reload()
        return [e.step for e in acc.Scalars("intermediate")]

    run((3.0, 4.0))
    assert study.trials[1].state is ts.TrialState.PAUSED and not (tb / "trial-1").exists()
    assert _plugin(tb / "trial-1-paused").session_start_info.hparams["trial_state"].string_value == "paused"
    assert curve(tb / "trial-1-paused") == [1]
    run((9.0, 9.5, 9.8))  # trial 1 resumed, paused again
    assert study.trials[1].state is ts.TrialState.PAUSED and curve(tb / "trial-1-paused") == [1, 2]
    run((9.9,) * 8)  # every trial finishes
    assert all(t.state is ts.TrialState.COMPLETE for t in study.trials)
    assert _plugin(tb / "trial-1").session_start_info.hparams["trial_state"].string_value == "complete"
    assert curve(tb / "trial-1") == list(range(1, 10)) and not list(tb.glob("*-paused"))
    config = _plugin(tb).experiment.hparam_infos[-1]
    assert sorted(v.string_value for v in config.domain_discrete.values) == ["complete", "failed", "paused", "pruned"]


def test_a_log_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    """Any user could make a run folder in it first, or a link in its place."""
    shared = tmp_path / "tb"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match=r"log folder .*tb can be written by every user \(mode 777, without"):
        TensorBoardCallback(shared)
    shared.chmod(0o775)  # a team's folder: taken
    TensorBoardCallback(shared)
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot replace this user's entries
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, show_progress=False)
    assert write_hparams(study, shared) == shared and (shared / "trial-0").is_dir()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="gives a folder to another user: root only")
@pytest.mark.parametrize("planted", ["run", "link"])
def test_a_run_folder_another_user_made_first_is_refused_not_taken(tmp_path: Path, planted: str) -> None:
    """In a log folder all may write (/tmp, sticky), another user's `trial-0` was taken for this trial's
    run, written before (the trial never was, and TensorBoard showed theirs), and their link
    `trial-0-paused` had the run written into the folder it names."""
    shared = tmp_path / "tb"
    shared.mkdir()
    shared.chmod(0o1777)
    other = 65534
    elsewhere = tmp_path / "elsewhere"  # a folder of this user's that the other one chose
    elsewhere.mkdir()
    pruner = ASHA(min_resource=1, reduction_factor=2, max_resource=9, pause=True)
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=pruner)
    if planted == "run":
        (shared / "trial-0").mkdir()
        os.chown(shared / "trial-0", other, other)
    else:
        (shared / "trial-1-paused").symlink_to(elsewhere)
        os.lchown(shared / "trial-1-paused", other, other)

    for x in (3.0, 4.0):
        study.enqueue({"x": x, "layers": 1, "act": "relu"})
    study.optimize(resumable, n_trials=2, show_progress=False)  # trial 1 paused
    with pytest.raises(PermissionError, match="another user"):  # a link or a folder of theirs alike
        write_hparams(study, shared)
    assert not list(elsewhere.iterdir())


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="gives a folder to another user: root only")
def test_a_team_s_log_folder_a_teammate_made_is_taken(tmp_path: Path) -> None:
    """A group-writable (setgid) folder a teammate made, as the docs say, is taken: its config was checked as a
    run folder and the first trial refused ("run folder ... is owned by another user")."""
    team = tmp_path / "team"
    team.mkdir()
    os.chown(team, 65534, os.getgid())
    team.chmod(0o2775)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=2, show_progress=False)
    assert write_hparams(study, team) == team
    assert {p.name for p in team.iterdir() if not p.name.startswith("events.")} == {"trial-0", "trial-1"}
    assert len(_plugin(team).experiment.hparam_infos) == 4  # the config, written in their folder


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="gives a folder to another user: root only")
def test_a_teammate_s_runs_in_a_team_s_log_folder_are_taken(tmp_path: Path) -> None:
    """Workers of one study run by two users of a team, each with the callback on the team's folder: the runs
    one wrote were refused to the other ('owned by another user'), which ended its write_hparams (and its
    optimize, at a paused run of theirs). A run of another user's in a folder every user may write still is."""
    team = tmp_path / "team"
    team.mkdir()
    team.chmod(0o2775)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, show_progress=False)
    write_hparams(study, team)  # the teammate's worker wrote trial 0
    for path in [team / "trial-0", *(team / "trial-0").iterdir()]:
        os.chown(path, 65534, os.getgid())
    written = sorted((team / "trial-0").iterdir())
    study.optimize(objective, n_trials=1, show_progress=False)
    assert write_hparams(study, team) == team
    assert sorted((team / "trial-0").iterdir()) == written and (team / "trial-1").is_dir()  # theirs, kept
    team.chmod(0o1777)  # every user may write it (sticky): their trial-0 may be anyone's
    with pytest.raises(PermissionError, match=r"run folder .*trial-0 is owned by another user \(uid 65534\)"):
        write_hparams(study, team)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="gives a folder to another user: root only")
def test_a_log_folder_another_user_chose_is_refused_by_what_it_is(tmp_path: Path) -> None:
    """Their sticky folder every user may write was refused as one 'without the sticky bit'; their link in the
    log folder's place, to a log folder of this user's already holding a config, was taken: they chose where
    the runs went."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    theirs.chmod(0o1777)
    with pytest.raises(PermissionError, match=r"log folder .*theirs can be written by every user \(mode 1777\) "
                                              r"and is owned by another user \(uid 65534\)"):
        TensorBoardCallback(theirs)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, show_progress=False)
    mine = write_hparams(study, tmp_path / "mine")  # a log folder of this user's, its config written
    link = tmp_path / "runs"
    link.symlink_to(mine)
    os.lchown(link, 65534, 65534)
    with pytest.raises(PermissionError, match=r"log folder: .*runs is a link owned by another user \(uid 65534\)"):
        write_hparams(study, link)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_a_log_folder_a_primary_group_every_user_shares_may_write_is_refused_as_one_all_may_write() -> None:
    """A team's log folder (group-writable) is taken; one of the user's primary group where every user shares
    it (nobody's nogroup, also _apt's and sync's; ``users`` elsewhere) was taken too, though any of them
    could make a run folder in it first, as in a folder every user may write."""
    import grp
    import pwd
    import shutil
    import tempfile

    from conftest import said_as_nobody

    if len([u for u in pwd.getpwall() if u.pw_gid == 65534]) + len(grp.getgrgid(65534).gr_mem) < 2:
        pytest.skip("needs a primary group other users share")
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        os.chown(shared, 65534, 65534)
        shared.chmod(0o775)
        said = said_as_nobody(lambda: TensorBoardCallback(shared))
        assert f"log folder {shared} can be written by your primary group (gid 65534, mode 775), which other users " \
               "may share, without the sticky bit /tmp has" in said, said
        shared.chmod(0o1775)
        assert said_as_nobody(lambda: TensorBoardCallback(shared)) == "ok"
    finally:
        shutil.rmtree(shared)


def test_a_log_folder_is_taken_where_no_owner_or_mode_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no os.getuid, and its stat reads every writable folder as mode 777: each log folder there
    was refused as one every user may write. The mode is that stat's; os.getuid is taken away as Windows has none."""
    folder = tmp_path / "tb"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.delattr(os, "getuid")
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective, n_trials=1, show_progress=False)
    assert write_hparams(study, folder) == folder and (folder / "trial-0").is_dir()
