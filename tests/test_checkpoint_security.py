"""Data in storage or in a checkpoint folder never runs code, and is followed only where the study put it."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, split  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, checkpoint, objective  # noqa: E402
from tunesmith.train.checkpoint import CheckpointError  # noqa: E402

DATA = split(64)
BASE = TrainConfig(epochs=1, batch_size=16)
SPACE = {"lr": ts.Float(1e-3, 1e-1, log=True)}


class Plant:
    """Unpickling it creates ``marker``: what a malicious checkpoint does (any code could run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, *, raw: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {"model": Plant(marker), "step": 1}
    if raw:
        path.write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("raw", [False, True])
def test_loading_a_planted_checkpoint_runs_no_code(tmp_path: Path, raw: bool) -> None:
    marker = tmp_path / "pwned"
    path = plant(tmp_path / "ck" / "last-000000001.pt", marker, raw=raw)
    with pytest.raises(CheckpointError, match="could run code") as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        Trainer(mlp(), BASE).fit(*DATA, resume_from=path)
    assert not marker.exists()


def test_attrs_named_like_the_studys_bookkeeping_mark_nothing() -> None:
    """The study's bookkeeping is ``record.system``: no attribute a user (or an enqueued
    configuration) sets can make a trial look resumed and load a checkpoint."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    legacy = ("resumed_step", "n_resumes", "promotion_held", "held_at_step", "n_holds", "requeued_as", "retry_of")
    study.enqueue({"lr": 0.01}, attrs={"checkpoint": "x.pt", **dict.fromkeys(legacy, 0)})
    trial = study.ask()
    assert not trial.is_resumed and trial.resume_from is None and trial.start_step == 0
    for key in ("resumed_step", "retry_of", "oom_retries", "promotion_held"):
        trial.set_attr(key, 0)
    assert not trial.is_resumed and trial.resume_from is None
    assert trial.record.system == ts.trial.SystemState()


def test_a_checkpoint_path_enqueued_with_a_trial_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = plant(tmp_path / "elsewhere" / "last-000000001.pt", marker)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.enqueue({"lr": 0.01}, attrs={"checkpoint": str(evil)})  # no bookkeeping key: allowed, not resumed
    study.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck"), n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error  # trained from the start
    assert not marker.exists()


def _write_attrs(db: Path, number: int, attrs: dict, system: dict) -> None:
    with sqlite3.connect(db) as con:  # whoever can write the database
        con.execute("UPDATE ts_trials SET attrs = ?, system = ? WHERE number = ?",
                    (json.dumps(attrs), json.dumps(system), number))


@pytest.mark.parametrize("where", ["outside", "inside", "symlink"])
def test_a_checkpoint_planted_through_the_database_is_refused(tmp_path: Path, where: str) -> None:
    marker, db, root = tmp_path / "pwned", tmp_path / "s.db", tmp_path / "ck"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{db}", name="victim")
    study.enqueue({"lr": 0.01})
    folder = checkpoint.study_folder(root, "victim", study.copy_id) / "trial-0"
    if where == "outside":
        evil = plant(tmp_path / "elsewhere" / "last-000000001.pt", marker)
    elif where == "inside":  # even in the trial's own folder: loaded as weights only
        evil = plant(checkpoint.secure_dir(folder) / "last-000000001.pt", marker)
    else:  # a link inside the folder to a file outside it
        target = plant(tmp_path / "elsewhere" / "x.pt", marker)
        evil = checkpoint.secure_dir(folder) / "last-000000001.pt"
        evil.symlink_to(target)
    _write_attrs(db, 0, {"checkpoint": str(evil)}, {"resumed_step": 0})  # as if the study had resumed it
    study.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=root), n_trials=1)
    t = study.trials[0]
    assert not marker.exists()
    assert t.state is ts.TrialState.FAILED
    expected = "could run code" if where == "inside" else "not inside the trial's own checkpoint folder"
    assert expected in t.error


def test_a_folder_writable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(CheckpointError, match="writable by group and others.*chmod go-w"):
        Trainer(mlp(), BASE.with_params({"checkpoint_dir": str(shared)})).fit(*DATA)
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=shared), n_trials=1)
    assert study.trials[0].state is ts.TrialState.FAILED and "chmod go-w" in study.trials[0].error
    assert list(shared.iterdir()) == []  # nothing written there
    os.chmod(shared, 0o700)
    Trainer(mlp(), BASE.with_params({"checkpoint_dir": str(shared)})).fit(*DATA)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(CheckpointError, match="belongs to another user") as err:
        checkpoint.secure_dir(theirs)
    assert isinstance(err.value, ts.UntrustedPathError) and isinstance(err.value, PermissionError)


def test_folders_are_0700_and_files_0600(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    Trainer(mlp(), BASE.with_params({"checkpoint_dir": str(d)})).fit(*DATA)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700 and d.stat().st_mode & 0o777 == 0o700
    files = list(d.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)


@pytest.mark.parametrize("name", ["/etc/cron.d", "../../escape", "a/../../b", "..", ".", "", "x" * 300, "C:\\win"])
def test_a_study_name_never_leads_outside_the_root(tmp_path: Path, name: str) -> None:
    folder = checkpoint.study_folder(tmp_path, name)
    assert folder.parent == tmp_path and checkpoint.inside(folder, tmp_path)
    assert len(folder.name) <= 80
    assert checkpoint.study_folder(tmp_path, name) == folder  # the same study finds it again
    assert checkpoint.study_folder(tmp_path, name + "x") != folder


def test_a_hostile_study_name_checkpoints_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    study = ts.Study(SPACE, sampler="random", seed=0, name=str(tmp_path / "outside"))
    study.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=root), n_trials=1)
    best = study.trials[0].attrs["best_checkpoint"]
    assert best and checkpoint.inside(best, root)
    assert not (tmp_path / "outside").exists()


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot create the checkpoint folder .*pass a folder you can write to"):
        checkpoint.secure_dir(blocked / "ck")


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the XDG specification says; it put checkpoints under the folder the process started in."""
    from tunesmith.train.checkpoint import default_root

    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    assert default_root() == Path.home() / ".cache" / "tunesmith" / "checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert default_root() == Path("/srv/cache/tunesmith/checkpoints")


def test_a_folder_only_the_user_s_private_group_may_write_is_the_user_s(tmp_path: Path) -> None:
    """umask 002 with a private group per user (Ubuntu) leaves folders 0775: one that only the user's own group
    may write was refused ("writable by group"), as a framework's Trainer makes them. A primary group that other
    users share (nobody's nogroup is also _apt's and sync's on Debian) is still refused."""
    import grp
    import pwd
    import shutil
    import tempfile

    from tunesmith.paths import own_group

    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o770)
    if own_group(os.getgid()):
        checkpoint.check_dir(mine)
    else:
        with pytest.raises(CheckpointError, match=r"writable by group \(mode 0770\).*chmod go-w"):
            checkpoint.check_dir(mine)
    if os.getuid() != 0:
        return  # giving a folder to another user needs root
    if len([u for u in pwd.getpwall() if u.pw_gid == 65534]) + len(grp.getgrgid(65534).gr_mem) < 2:
        pytest.skip("needs a primary group other users share")
    from conftest import said_as_nobody

    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        os.chown(shared, 65534, 65534)
        os.chmod(shared, 0o770)
        said = said_as_nobody(lambda: checkpoint.check_dir(shared))
        assert f"checkpoint folder '{shared}' is writable by group (mode 0770)" in said, said
    finally:
        shutil.rmtree(shared)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_a_primary_group_not_named_as_the_user_is_not_taken_for_the_user_s(tmp_path: Path) -> None:
    """A directory service that lists no users (LDAP, AD without enumeration) hides the other members of a shared
    primary group ("domain users"): with none in the databases, such a group was taken for the user's own, and a
    folder it may write was taken as the user's. Only a group named as the user (a user-private group) is."""
    import grp
    import pwd
    import shutil
    import tempfile

    from conftest import said_as

    try:
        users, daemon = grp.getgrnam("users"), pwd.getpwuid(1)
    except KeyError:
        pytest.skip("needs a group 'users' and a user of uid 1")
    if users.gr_mem or any(u.pw_gid == users.gr_gid for u in pwd.getpwall()):
        pytest.skip("needs a group 'users' whose members the databases do not list")
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        os.chown(folder, daemon.pw_uid, users.gr_gid)
        os.chmod(folder, 0o770)
        said = said_as(daemon.pw_uid, users.gr_gid, lambda: checkpoint.check_dir(folder))
        assert f"checkpoint folder '{folder}' is writable by group (mode 0770)" in said, said
        os.chown(folder, daemon.pw_uid, daemon.pw_gid)  # daemon's own group ("daemon"): the user's alone
        assert said_as(daemon.pw_uid, daemon.pw_gid, lambda: checkpoint.check_dir(folder)) == "ok"
    finally:
        shutil.rmtree(folder)
