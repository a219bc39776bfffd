"""Checkpoint files: temporary files of dead writers, truncated files, what a resume must match,
what a checkpoint holds of a partly frozen model, and what a study keeps on disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _train_util import Net, PauseAndPromote, mlp, scripted, snapshot, split  # noqa: E402
from test_faults_storage import small_fs  # noqa: E402, F401 - the 1 MiB tmpfs fixture

import tunesmith as ts  # noqa: E402
from tunesmith.pruners import Decision, Pruner  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, checkpoint, freeze, load_weights, objective  # noqa: E402
from tunesmith.train.checkpoint import CheckpointError  # noqa: E402

TESTS = Path(__file__).parent
DATA = split(96)
CFG = TrainConfig(epochs=3, batch_size=16, keep_last=3)

KILLED_WHILE_SAVING = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{tests!r}, {src!r}]
    import torch
    from _train_util import mlp, split
    from tunesmith.train import TrainConfig, Trainer

    def dies_half_way(state, f, *args, **kwargs):
        f.write(b"PK half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dies_half_way
    Trainer(mlp(), TrainConfig(epochs=1, batch_size=16, checkpoint_dir={folder!r})).fit(*split(96))
    """
)


def test_temporary_files_of_dead_writers_are_removed_on_start(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    code = KILLED_WHILE_SAVING.format(tests=str(TESTS), src=str(TESTS.parent / "src"), folder=str(folder))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    left = [p.name for p in folder.iterdir() if p.name != ".lock"]  # (its writer lock's file: the next run's now)
    assert len(left) == 1 and left[0].startswith(f".last-000000005.pt~{socket.gethostname()}~")
    live = folder / f".last-000000009.pt~{socket.gethostname()}~{os.getpid()}~12345678.tmp"  # a writer still running
    other = folder / ".last-000000009.pt~another-host~12345.tmp"  # cannot be checked from here
    live.write_bytes(b"x")
    other.write_bytes(b"x")
    Trainer(mlp(), TrainConfig(epochs=1, batch_size=16, checkpoint_dir=str(folder))).fit(*DATA)
    names = {p.name for p in folder.iterdir()}
    assert left[0] not in names and {live.name, other.name} <= names and ".lock" not in names
    os.utime(other, (0, 0))  # a day old: its writer is gone too
    assert checkpoint.clean_stale(folder) == [other]


def test_a_link_that_cannot_replace_its_target_leaves_no_temporary_file(tmp_path: Path) -> None:
    """checkpoint.link made its temporary hard link, then failed to move it over the target (a folder
    there; a Ctrl-C between the two the same): the hidden ``.best.pt~...tmp`` stayed in the folder."""
    src = tmp_path / "last-000000003.pt"
    src.write_bytes(b"x")
    (tmp_path / "best.pt").mkdir()
    with pytest.raises(OSError):
        checkpoint.link(src, tmp_path / "best.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last-000000003.pt"]
    assert checkpoint.link(src, tmp_path / "best2.pt").read_bytes() == b"x"


def test_a_last_checkpoint_is_on_disk_before_the_previous_one_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With keep_last=1 each save deletes the previous "last" file. Written without os.fsync, a power
    cut just after could keep the deletion and lose the new file's data (an empty or partial file, or
    only its temporary name): no checkpoint left to resume from. Each real call is recorded in order:
    the new file's data must be synced before its rename, and the folder after it, before the deletion."""
    folder = tmp_path / "ck"
    calls: list[tuple[str, str, int]] = []  # (what, file name, inode)
    fsync, replace, unlink = os.fsync, os.replace, os.unlink

    def synced(fd: int) -> None:
        st = os.fstat(fd)
        calls.append(("sync folder" if stat.S_ISDIR(st.st_mode) else "sync file", "", st.st_ino))
        fsync(fd)

    def renamed(src: str, dst: str) -> None:
        calls.append(("rename", Path(dst).name, os.lstat(src).st_ino))
        replace(src, dst)

    def deleted(path: str, **kwargs: object) -> None:
        calls.append(("delete", Path(path).name, 0))
        unlink(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "replace", renamed)
    monkeypatch.setattr(os, "unlink", deleted)
    Trainer(mlp(), TrainConfig(epochs=3, batch_size=16, checkpoint_dir=str(folder))).fit(*DATA)
    monkeypatch.undo()
    deletions = [i for i, (what, name, _) in enumerate(calls) if what == "delete" and name.startswith("last-")]
    assert len(deletions) == 2 and len(checkpoint.list_last(folder)) == 1, calls
    for i in deletions:
        at = max(j for j in range(i) if calls[j][0] == "rename" and calls[j][1].startswith("last-"))
        assert ("sync file", "", calls[at][2]) in calls[:at], calls
        assert ("sync folder", "", folder.stat().st_ino) in calls[at:i], calls


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_new_run_in_a_folder_of_an_earlier_run_sets_the_earlier_files_aside_and_keeps_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a second run of a script (or one started again after a Ctrl-C without resume_from) into the same
    checkpoint_dir had its own "last" files rotated away by the earlier run's higher steps (and checkpoint.latest
    resumed the old run); then the earlier run's "last" files and best.pt were deleted at the new run's first
    checkpoint. Now they are moved into earlier-<time>, from where that run resumes, its own best restored."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    first = Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    assert _names(d) == ["best.pt", "last-000000010.pt", "last-000000015.pt"]
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    torch.manual_seed(0)
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    aside = [p for p in d.iterdir() if p.is_dir()]
    assert len(aside) == 1 and aside[0].name.startswith("earlier-"), _names(d)
    assert _names(d) == ["best.pt", aside[0].name, "last-000000005.pt"]
    assert {name: (aside[0] / name).read_bytes() for name in _names(aside[0])} == earlier  # nothing lost
    assert checkpoint.load(d / "best.pt")["step"] == history.best.step == 5
    said = [r.getMessage() for r in caplog.records if "earlier" in r.getMessage()]
    assert len(said) == 2, caplog.text
    assert "holds 2 \"last\" checkpoints (the newest: last-000000015.pt) and best.pt of an earlier run" in said[0]
    assert f"resume_from=tunesmith.train.checkpoint.latest({str(d)!r})" in said[0]
    assert f"checkpoint_dir={str(aside[0])!r} and resume_from=tunesmith.train.checkpoint.latest" in said[1]
    # the earlier run goes on from its folder, and restores its own best, not the later run's best.pt there
    torch.manual_seed(0)
    more = CFG.with_params({"epochs": 4, "keep_last": 2, "checkpoint_dir": aside[0], "patience": None})
    model = mlp()
    resumed = Trainer(model, more).fit(*DATA, resume_from=checkpoint.latest(aside[0]))
    assert [r.step for r in resumed.records] == [5, 10, 15, 20] and resumed.records[:3] == first.records
    assert resumed.best_checkpoint == str(aside[0] / "best.pt")
    best = checkpoint.load(aside[0] / "best.pt")
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):  # a resume goes on with the folder's own run: nothing said
        Trainer(mlp(), CFG.with_params({"epochs": 2, "keep_last": 2, "checkpoint_dir": d})).fit(
            *DATA, resume_from=checkpoint.latest(d))
    assert "earlier" not in caplog.text
    assert _names(d) == ["best.pt", aside[0].name, "last-000000005.pt", "last-000000010.pt"]


def test_a_run_resumed_from_an_older_checkpoint_sets_the_branch_it_leaves_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: resumed from an older "last" file with keep_last > 1, the abandoned branch's higher steps outranked
    the run's own in rotation (deleted them as written) and checkpoint.latest resumed that branch after a kill."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": d})).fit(*DATA)
    assert [p.name for p in checkpoint.list_last(d)] == ["last-000000010.pt", "last-000000015.pt", "last-000000020.pt"]
    assert checkpoint.load(d / "best.pt")["step"] == 20  # the branch's too: set aside with it
    branch = {name: (d / name).read_bytes() for name in ("best.pt", "last-000000015.pt", "last-000000020.pt")}
    torch.manual_seed(0)
    with caplog.at_level("WARNING", logger="tunesmith"):  # from step 10 to 15, killed there (a run of 3 epochs)
        Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 3, "checkpoint_dir": d})).fit(
            *DATA, resume_from=d / "last-000000010.pt")
    assert ("holds 2 \"last\" checkpoints (the newest: last-000000020.pt) and best.pt above the resumed step 10"
            in caplog.text)
    assert "into a new folder branch-above-step-10-<UTC time> in it" in caplog.text
    aside = next(p for p in d.iterdir() if p.is_dir())
    assert aside.name.startswith("branch-above-step-10-20"), aside  # not earlier-<time>, an earlier run's name
    said = " ".join(caplog.text.split())  # its own later steps, not "the earlier checkpoints" of "that run"
    assert (f"the checkpoints above the resumed step, of the branch this run leaves, of TrainConfig.checkpoint_dir "
            f"'{d}' are in '{aside}' now: to go on with that branch") in said, said
    assert {name: (aside / name).read_bytes() for name in _names(aside)} == branch
    assert [p.name for p in checkpoint.list_last(d)] == ["last-000000010.pt", "last-000000015.pt"]
    assert checkpoint.latest(d) == d / "last-000000015.pt"
    assert checkpoint.load(d / "last-000000015.pt")["config"]["epochs"] == 3
    # the branch goes on from its folder as the warning says: its stored paths read as that folder's files
    torch.manual_seed(0)
    went_on = Trainer(mlp(), CFG.with_params({"epochs": 5, "keep_last": 3, "checkpoint_dir": aside})).fit(
        *DATA, resume_from=checkpoint.latest(aside))
    assert [r.step for r in went_on.records][-2:] == [20, 25] and went_on.last_checkpoint == str(
        aside / "last-000000025.pt")


def _twice(curve: list[float]) -> list[float]:
    """A validation loss curve for :func:`scripted` over DATA's validation set (two batches of 16)."""
    return [v for v in curve for _ in range(2)]


def test_a_run_resumed_below_the_branch_s_best_restores_its_own_best_and_the_branch_its_own(tmp_path: Path) -> None:
    """Before: best.pt of the folder stayed with a run resumed from an older "last" file, though the branch it
    leaves wrote it above the resumed step: restore_best ended the resumed run with the branch's best weights (its
    history naming another step), and the branch, gone on from its folder, with the folder's best.pt (the resumed
    run's). The branch's best.pt is set aside with the branch; the resumed run restores its own best."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice([0.9, 0.5, 0.4, 0.3]))).fit(*DATA)
    assert os.path.samefile(d / "best.pt", d / "last-000000020.pt")
    branch_best, own_best = checkpoint.load(d / "best.pt")["model"], checkpoint.load(d / "last-000000010.pt")["model"]
    resumed = mlp()  # from step 10 (its best, 0.5), no better validation after it; keep_last=1 rotates step 10 away
    history = Trainer(resumed, cfg.with_params({"keep_last": 1}), loss=scripted(_twice([0.8, 0.8]))).fit(
        *DATA, resume_from=d / "last-000000010.pt")
    assert history.best is not None and history.best.step == 10 and _names(d)[-1] == "last-000000020.pt"
    assert all(torch.equal(v, own_best[k]) for k, v in resumed.state_dict().items())
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    assert _names(aside) == ["best.pt", "last-000000015.pt", "last-000000020.pt"]
    went_on = mlp()  # the branch from its folder, no better validation: its own best (step 20)
    Trainer(went_on, cfg.with_params({"epochs": 5, "checkpoint_dir": aside}), loss=scripted(_twice([0.9]))).fit(
        *DATA, resume_from=checkpoint.latest(aside))
    assert all(torch.equal(v, branch_best[k]) for k, v in went_on.state_dict().items())


def _cut(path: Path) -> bytes:
    """``path`` made a file of its own (not a link) cut to half its bytes; its whole bytes."""
    whole = path.read_bytes()
    path.unlink()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


def _resume_at_ten_restoring_its_own_best(d: Path, cfg: TrainConfig, caplog: pytest.LogCaptureFixture) -> None:
    """Resume the run of ``d`` from its step 10 (its best, 0.5) with no better validation after it: it ends with
    step 10's weights, its own best."""
    own_best = checkpoint.load(d / "last-000000010.pt")["model"]
    resumed = mlp()
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(resumed, cfg.with_params({"keep_last": 1}), loss=scripted(_twice([0.8, 0.8]))).fit(
            *DATA, resume_from=d / "last-000000010.pt")
    assert history.best is not None and history.best.step == 10
    assert all(torch.equal(v, own_best[k]) for k, v in resumed.state_dict().items())


def test_a_corrupt_best_pt_above_a_resumed_step_is_set_aside_with_the_branch_not_read_again_at_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: best.pt that could not be read (cut short) stayed in the folder of a run resumed below the branch
    that wrote it: the run trained to its end, then restore_best read it again and raised CheckpointError (the
    resumed run's result lost), and the next run resumed there met it again. It is set aside with the branch, said,
    and the resumed run restores its own best."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice([0.9, 0.5, 0.4, 0.3]))).fit(*DATA)
    whole = _cut(d / "best.pt")  # (a hard link to last-20: that one stays whole)
    _resume_at_ten_restoring_its_own_best(d, cfg, caplog)
    said = " ".join(caplog.text.split())
    assert (f"best.pt of TrainConfig.checkpoint_dir '{d}' cannot be read, so it is set aside with the branch this run "
            "leaves, not restored; this run's best validation (step 10) restores from its own") in said, said
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    assert _names(aside) == ["best.pt", "last-000000015.pt", "last-000000020.pt"]
    assert (aside / "best.pt").read_bytes() == whole[: len(whole) // 2] and checkpoint.is_complete(
        aside / "last-000000020.pt")  # nothing lost: the cut file kept as it was, the branch's good files whole
    assert checkpoint.load(d / "best.pt")["step"] == 10  # the folder's best.pt is the resumed run's own


@pytest.mark.parametrize("curve, linked, damage", [([0.9, 0.5, 0.4, 0.3], True, "cut short"),
                                                   ([0.9, 0.5, 0.6, 0.7], False, "cut short"),
                                                   ([0.9, 0.5, 0.4, 0.3], True, "corrupt inside")])
def test_a_resumed_run_s_own_best_pt_cut_short_is_said_at_its_start_not_raised_at_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, curve: list[float], linked: bool, damage: str
) -> None:
    """Before: a run resumed in its folder whose best.pt was cut short trained to its end, then restore_best read
    that file and raised CheckpointError. Said at the start now; best.pt is made again from the run's "last" file of
    its best step where one is left (``linked``), else the run ends with its last weights (no better validation).
    ``corrupt inside``: a whole zip whose pickle is corrupt passed the start's check (the zip directory only) and
    raised at the end; its pickle is read at the start now, not its tensors."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 1, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice(curve))).fit(*DATA)
    whole = (_cut if damage == "cut short" else _corrupt_inside)(d / "best.pt")
    resumed = mlp()
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(resumed, cfg.with_params({"epochs": 5}), loss=scripted(_twice([0.8]))).fit(
            *DATA, resume_from=d / "last-000000020.pt")
    said = " ".join(caplog.text.split())
    assert f"best.pt of TrainConfig.checkpoint_dir '{d}' is not a whole checkpoint (cut short" in said, said
    assert history.best is not None and history.best.step == (20 if linked else 10)
    if linked:  # made again from last-20 (since rotated away): the weights of the best step, restored
        assert "made again from last-000000020.pt" in said and (d / "best.pt").read_bytes() == whole
        best = checkpoint.load(d / "best.pt")["model"]
        assert all(torch.equal(v, best[k]) for k, v in resumed.state_dict().items())
    else:  # no file of step 10 left: the last weights, as said
        assert "restore_best ends this run with a later best, or its last weights" in said
        last = checkpoint.load(d / "last-000000025.pt")["model"]
        assert all(torch.equal(v, last[k]) for k, v in resumed.state_dict().items())


def test_a_branch_s_best_pt_whose_last_files_are_gone_is_set_aside_not_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a run resumed below the step of its folder's best.pt, with none of that branch's "last" files left
    (deleted by hand, or by a study's resumed trial: ``drop_beyond``), kept that best.pt and ended with the branch's
    weights (step 20), its history's best naming step 10. Its step is read (its pickle only) at the start now."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice([0.9, 0.5, 0.4, 0.3]))).fit(*DATA)
    branch_best = (d / "best.pt").read_bytes()
    (d / "last-000000015.pt").unlink()
    (d / "last-000000020.pt").unlink()
    _resume_at_ten_restoring_its_own_best(d, cfg, caplog)
    assert "holds best.pt above the resumed step 10, of the branch this run leaves" in " ".join(caplog.text.split())
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    assert _names(aside) == ["best.pt"] and (aside / "best.pt").read_bytes() == branch_best  # kept as it was
    assert checkpoint.load(d / "best.pt")["step"] == 10


def test_a_resumed_run_whose_best_pt_is_gone_restores_its_own_best_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A study's resumed trial deletes its branch's best.pt with the branch's "last" files (``drop_beyond``). Before:
    the run resumed below it kept naming that best.pt, restored nothing at its end (its own best's "last" file
    rotated away meanwhile) and ended with its last weights. Made again from that file at the start now."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice([0.9, 0.5, 0.4, 0.3]))).fit(*DATA)
    for name in ("last-000000015.pt", "last-000000020.pt", "best.pt"):
        (d / name).unlink()
    _resume_at_ten_restoring_its_own_best(d, cfg, caplog)
    assert not caplog.records and _names(d) == ["best.pt", "last-000000020.pt"]
    assert checkpoint.load(d / "best.pt")["step"] == 10


def _corrupt_inside(path: Path) -> bytes:
    """``path`` made a file of its own whose zip is whole but whose pickle is corrupt (its first byte changed)."""
    whole = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    name, extra = struct.unpack("<HH", whole[info.header_offset + 26:info.header_offset + 30])  # the local header's
    at = info.header_offset + 30 + name + extra
    path.unlink()
    path.write_bytes(whole[:at] + bytes([whole[at] ^ 0x5A]) + whole[at + 1:])
    assert checkpoint.is_complete(path)  # the zip directory whole: only a read of the pickle finds it
    return whole


UNREADABLE_BEST_UNPRIVILEGED = textwrap.dedent(
    """
    import json, logging, os, sys
    sys.path[:0] = [{tests!r}, {src!r}]
    import torch
    from pathlib import Path
    from _train_util import mlp, scripted, split
    from tunesmith.train import TrainConfig, Trainer, checkpoint

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    twice = lambda c: [v for v in c for _ in range(2)]
    d, data = Path({d!r}), split(96)
    cfg = TrainConfig(epochs=4, batch_size=16, keep_last=3, checkpoint_dir=d)
    Trainer(mlp(), cfg, loss=scripted(twice([0.9, 0.5, 0.4, 0.3]))).fit(*data)
    best = (d / "best.pt").read_bytes()
    (d / "best.pt").unlink()  # a file of its own (not the link to last-20), that this user may not read
    (d / "best.pt").write_bytes(best)
    (d / "best.pt").chmod(0)
    own = checkpoint.load(d / "last-000000010.pt")["model"]
    m = mlp()
    h = Trainer(m, cfg.with_params({{"keep_last": 1}}), loss=scripted(twice([0.8, 0.8]))).fit(
        *data, resume_from=d / "last-000000010.pt")
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    (aside / "best.pt").chmod(0o600)
    print(json.dumps({{"best": h.best.step, "own": all(torch.equal(v, own[k]) for k, v in m.state_dict().items()),
                      "kept": (aside / "best.pt").read_bytes() == best, "aside": sorted(os.listdir(aside))}}))
    """
)


#: root without its capabilities: a user whom a file's mode binds (root reads any file), who can still import this
#: checkout's .venv and src wherever they lie (another user could not where CI clones into a private folder)
UNPRIVILEGED = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="drops root's capabilities (setpriv): root only")
def test_a_best_pt_the_user_may_not_read_is_set_aside_saying_the_permission_to_fix_not_cut_short(
    tmp_path: Path,
) -> None:
    """Before: a resumed run's best.pt that its user may not read (mode 0) was said as "cut short" and replaced by a
    link to the run's own file (its bytes lost), or, with the branch's files beside it, left in place. It is set
    aside now (moved: a rename needs no read), said as unreadable with the fix (chmod u+r), not restored."""
    d = Path(tempfile.mkdtemp(prefix="tunesmith-unreadable-", dir="/tmp"))
    try:
        run = subprocess.run(
            [*UNPRIVILEGED, sys.executable, "-c",
             UNREADABLE_BEST_UNPRIVILEGED.format(tests=str(TESTS), src=str(TESTS.parent / "src"), d=str(d / "run"))],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(d)})
        assert run.returncode == 0, run.stderr[-3000:]
        said = " ".join(run.stderr.split())
        assert "best.pt of TrainConfig.checkpoint_dir" in said and "cut short" not in said, said
        assert ("cannot be read, so it is set aside (moved, its bytes kept), not restored: to use it, give yourself "
                "read permission on it (chmod u+r") in said, said
        assert json.loads(run.stdout) == {"best": 10, "own": True, "kept": True,
                                          "aside": ["best.pt", "last-000000015.pt", "last-000000020.pt"]}
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("best", ["cut short", "the branch's, unreadable"])
def test_a_resumed_run_s_best_pt_is_made_again_as_a_copy_on_a_file_system_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, best: str
) -> None:
    """Before: where a resumed run makes its best.pt again from its own "last" file (its own best.pt cut short, made
    again at its start; a branch's set aside at its first checkpoint), only a hard link was tried: on a file system
    without them the run raised PermissionError (at its start, or after its first epoch), its result lost. The
    other saves of best.pt fall back to a copy there; so do these, the weights of its best step restored."""
    def no_links(src: object, dst: object) -> None:  # what such a file system answers (none can be mounted here)
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 4, "keep_last": 1 if best == "cut short" else 3, "checkpoint_dir": d})
    Trainer(mlp(), cfg, loss=scripted(_twice([0.9, 0.5, 0.4, 0.3]))).fit(*DATA)
    _cut(d / "best.pt")
    step = 20 if best == "cut short" else 10  # the resumed run's best validation, its "last" file kept
    own_best = checkpoint.load(checkpoint.last_path(d, step))["model"]
    resumed = mlp()
    history = Trainer(resumed, cfg.with_params({"epochs": 5, "keep_last": 1}), loss=scripted(_twice([0.8] * 3))).fit(
        *DATA, resume_from=checkpoint.last_path(d, step))
    assert history.best is not None and history.best.step == step
    assert checkpoint.load(d / "best.pt")["step"] == step and (d / "best.pt").stat().st_nlink == 1  # a copy
    assert all(torch.equal(v, own_best[k]) for k, v in resumed.state_dict().items())


KILLED_MID_MOVE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{tests!r}, {src!r}]
    import torch
    from _train_util import mlp, split
    from tunesmith.train import TrainConfig, Trainer

    replace, unlink = os.replace, os.unlink

    def dies_before_best(src, dst):
        if os.path.basename(os.path.dirname(dst)).startswith("earlier-") and os.path.basename(dst) == "best.pt":
            os.kill(os.getpid(), signal.SIGKILL)  # the "last" files moved, best.pt not yet
        replace(src, dst)

    def dies_at_the_end(path, *args, **kwargs):
        if os.path.basename(path) == ".moving":
            os.kill(os.getpid(), signal.SIGKILL)  # every file moved, the move not yet said done
        unlink(path, *args, **kwargs)

    os.replace, os.unlink = (dies_before_best, unlink) if {at_best!r} else (replace, dies_at_the_end)
    mkdir = os.mkdir

    def dies_once_made(path, *args, **kwargs):
        mkdir(path, *args, **kwargs)
        if os.path.basename(path).startswith("earlier-"):
            os.kill(os.getpid(), signal.SIGKILL)  # the folder made, not yet marked nor locked

    if {once_made!r}:
        os.mkdir = dies_once_made
    Trainer(mlp(), TrainConfig(epochs=1, batch_size=16, keep_last=2, checkpoint_dir={folder!r})).fit(*split(96))
    """
)


@pytest.mark.parametrize("resumed", [False, True], ids=["new run", "resumed below it"])
def test_a_folder_named_like_a_last_checkpoint_is_set_aside_with_what_it_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, resumed: bool
) -> None:
    """Before: a folder named like a "last" checkpoint (last-000000099.pt) in checkpoint_dir made the run's first
    checkpoint raise a bare IsADirectoryError (set_aside took it for a cut-short file and unlinked it). It is moved
    with the other run's files now, what it holds kept, and said as what it is."""
    d = tmp_path / "run"
    cfg = CFG.with_params({"epochs": 2, "checkpoint_dir": d})
    if resumed:
        Trainer(mlp(), cfg).fit(*DATA)
    (d / "last-000000099.pt").mkdir(parents=True)
    (d / "last-000000099.pt" / "notes.txt").write_text("kept")
    d.chmod(0o700)
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"epochs": 3})).fit(
            *DATA, resume_from=d / "last-000000010.pt" if resumed else None)
    assert history.records[-1].step == 15
    said = " ".join(caplog.text.split())
    assert "last-000000099.pt (not a file, named like a \"last\" checkpoint)" in said, said
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    assert aside.name.startswith("branch-above-step-10-" if resumed else "earlier-"), aside
    assert (aside / "last-000000099.pt" / "notes.txt").read_text() == "kept"
    assert checkpoint.latest(d) == d / "last-000000015.pt"


def _killed_mid_move(d: Path, *, at_best: bool, once_made: bool = False) -> None:
    """A new run in ``d`` SIGKILLed as it sets the earlier run's files aside: before best.pt moves, or at the end
    (``once_made``: as soon as it made the ``earlier-*`` folder)."""
    code = KILLED_MID_MOVE.format(tests=str(TESTS), src=str(TESTS.parent / "src"), folder=str(d), at_best=at_best,
                                  once_made=once_made)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr


def _cut_short_before_best(d: Path) -> tuple[Path, bytes]:
    """A run of 3 epochs in ``d``, then a new run there SIGKILLed as it moved them aside, before best.pt: the
    ``earlier-*`` folder marked as a move cut short, and the earlier run's best.pt (still in ``d``)."""
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    left = (d / "best.pt").read_bytes()
    _killed_mid_move(d, at_best=True)
    aside = checkpoint.unfinished_aside(d)
    assert aside is not None and "best.pt" in _names(d) and "best.pt" not in _names(aside)
    return aside, left


def test_a_new_run_killed_while_it_sets_an_earlier_run_aside_leaves_that_run_whole_in_one_folder(
    tmp_path: Path,
) -> None:
    """Before: a new run SIGKILLed between moving the earlier run's "last" files and its best.pt into earlier-<time>
    left best.pt in the folder; the next run moved it into a second earlier-* folder, and the earlier run resumed
    from its "last" files restored the newest run's best.pt there as its own best model (no error). The next run
    now finishes the cut-short move into the same folder."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    _killed_mid_move(d, at_best=True)
    assert "best.pt" in _names(d)  # the kill came mid-move
    torch.manual_seed(1)
    Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    aside = [p for p in d.iterdir() if p.is_dir()]
    assert len(aside) == 1, _names(d)
    assert {name: (aside[0] / name).read_bytes() for name in _names(aside[0])} == earlier  # whole, nothing else
    model = mlp()
    resumed = Trainer(model, CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": aside[0]})).fit(
        *DATA, resume_from=checkpoint.latest(aside[0]))
    assert resumed.best_checkpoint == str(aside[0] / "best.pt")
    best = checkpoint.load(aside[0] / "best.pt")
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())


def _first_warning(caplog: pytest.LogCaptureFixture) -> str:
    return next(" ".join(r.getMessage().split()) for r in caplog.records if "this run moves" in r.getMessage())


def test_the_first_set_aside_warning_names_the_cut_short_move_s_folder_the_files_go_to(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the warning at a run's start named a new folder of the kind the run would make ("a new folder
    branch-above-step-10-<UTC time>"), where a move a kill cut short, of either kind, took the files at the first
    checkpoint: the user looked for a folder that was never made."""
    d = tmp_path / "killed"  # an earlier run's move cut short by a real SIGKILL, then a new run
    aside, _ = _cut_short_before_best(d)
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    assert f"holds best.pt of an earlier run: this run moves it into the folder {aside.name} in it (a move into it " \
        "that was cut short" in _first_warning(caplog)  # (not "holds 0 \"last\" checkpoints and best.pt")
    assert [p.name for p in d.iterdir() if p.is_dir()] == [aside.name] and "best.pt" in _names(aside)
    for kind, resumed in (("earlier-20261207-000000", True), ("branch-above-step-5-20261207-000000", False)):
        e = tmp_path / kind  # a move of the other kind cut short once its folder was made and marked
        torch.manual_seed(0)
        Trainer(mlp(), CFG.with_params({"epochs": 4, "keep_last": 3, "checkpoint_dir": e})).fit(*DATA)
        (e / kind).mkdir(0o700)
        (e / kind / checkpoint.MOVING).touch(0o600)
        caplog.clear()
        with caplog.at_level("WARNING", logger="tunesmith"):  # a resumed run leaves a branch; a new run, a run
            Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 3, "checkpoint_dir": e})).fit(
                *DATA, resume_from=e / "last-000000010.pt" if resumed else None)
        assert f"into the folder {kind} in it" in _first_warning(caplog), _first_warning(caplog)
        assert [p.name for p in e.iterdir() if p.is_dir()] == [kind] and "best.pt" in _names(e / kind)


def test_a_run_killed_as_it_made_its_earlier_folder_leaves_no_empty_folder_beside_the_earlier_run_s(
    tmp_path: Path,
) -> None:
    """A new run SIGKILLed right after it made earlier-<time> (before it marked it as a move under way) left that
    folder empty for good: the next run moved the earlier run into earlier-<time>-2 beside it, two earlier-* folders
    for one earlier run, one of them with nothing to resume from."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    _killed_mid_move(d, at_best=False, once_made=True)
    (made,) = [p for p in d.iterdir() if p.is_dir()]
    assert _names(made) == [] and set(earlier) <= set(_names(d))  # the kill came before anything moved
    Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    (aside,) = [p for p in d.iterdir() if p.is_dir()]
    assert {name: (aside / name).read_bytes() for name in _names(aside)} == earlier


def test_a_cut_short_move_into_a_folder_only_the_user_s_private_group_may_write_is_finished_there(
    tmp_path: Path,
) -> None:
    """With a group per user (umask 002), ``chmod -R g+w`` of a run's folder after a kill cut a move into earlier-*
    short leaves that folder the user's alone, as check_dir takes the folder above it. The next run passed it over
    (it took only one no group may write): the rest of the earlier run went into a second earlier-* folder, its
    best.pt apart from its "last" files, and the marker stayed for good. The move is finished into the same folder."""
    from tunesmith.paths import own_group

    if not hasattr(os, "getgid") or not own_group(os.getgid()):
        pytest.skip("the user's primary group is shared with other users here")
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 3, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    _killed_mid_move(d, at_best=True)
    (cut,) = [p for p in d.iterdir() if p.is_dir()]
    cut.chmod(0o770)
    assert "best.pt" in _names(d) and checkpoint.MOVING in _names(cut)
    Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    assert [p for p in d.iterdir() if p.is_dir()] == [cut], _names(d)
    assert {name: (cut / name).read_bytes() for name in _names(cut)} == earlier  # whole, the marker gone
def test_a_ctrl_c_as_a_run_sets_an_earlier_run_aside_leaves_no_folder_locked_for_the_rest_of_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a Ctrl-C (KeyboardInterrupt) after set_aside made and locked its new earlier-* folder, before the
    move began (marking it), kept that folder's lock for the rest of the process (a notebook's): the earlier run
    resumed there later in it was refused as busy, and the folder was left empty. Now the lock goes with the
    interrupt and the empty folder is removed; a Ctrl-C mid-move frees the lock as well and leaves the marker, and
    the next run finishes that move."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 2, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    touch = Path.touch

    def ctrl_c_at_the_marker(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == checkpoint.MOVING:
            raise KeyboardInterrupt
        touch(self, *args, **kwargs)

    monkeypatch.setattr(Path, "touch", ctrl_c_at_the_marker)
    made: list[Path] = []
    mkdir = os.mkdir
    monkeypatch.setattr(os, "mkdir", lambda path, *a, **k: (made.append(Path(path)), mkdir(path, *a, **k))[1])
    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    monkeypatch.undo()
    (aside,) = (p for p in made if p.parent == d)
    if aside.is_dir():  # before: left, and locked by this process
        checkpoint.release(checkpoint.hold(aside))
    assert not aside.exists() and _names(d) == sorted(earlier)

    replace = os.replace

    def ctrl_c_before_best(src: Any, dst: Any) -> None:
        if Path(dst).name == "best.pt":
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", ctrl_c_before_best)
    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    monkeypatch.undo()
    cut = checkpoint.unfinished_aside(d)
    assert cut is not None and "best.pt" in _names(d)
    checkpoint.release(checkpoint.hold(cut))  # not busy: the interrupted move freed it
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    assert [p for p in d.iterdir() if p.is_dir()] == [cut] and checkpoint.unfinished_aside(d) is None
    assert {name: (cut / name).read_bytes() for name in _names(cut)} == earlier


def test_a_move_a_kill_cut_short_as_it_ended_is_not_taken_for_the_next_run_s(tmp_path: Path) -> None:
    """A run SIGKILLed after its last rename into earlier-*, its marker left: the next run, with nothing to move,
    clears it, so that the run after it sets that run's files aside in a folder of their own, not the earlier's."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    _killed_mid_move(d, at_best=False)
    first = checkpoint.unfinished_aside(d)
    assert first is not None and _names(first) == [".lock", ".moving", "best.pt", "last-000000005.pt"]
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    assert checkpoint.unfinished_aside(d) is None
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    assert len([p for p in d.iterdir() if p.is_dir()]) == 2 and _names(first) == ["best.pt", "last-000000005.pt"]


def test_a_run_that_finds_every_numbered_earlier_folder_of_its_second_taken_moves_into_none_of_them(
    tmp_path: Path,
) -> None:
    """Before: set_aside tried earlier-<time>, then -2 to -998, and moved into earlier-<time>-999 whatever it was:
    a folder there (another run's, set aside before) had its best.pt replaced by this one. The numbers go on.
    The folders are made for a second to come, and the move starts as it begins (made for the 9 seconds around
    the test's start, 9,000 folders that set_aside scans twice, a loaded machine's test ran past them)."""
    for attempt in range(1, 4):
        if _all_of_a_second_taken(tmp_path / f"try-{attempt}", lead=2 * attempt):
            return
    pytest.fail("3 times the clock passed the second whose folders were made before set_aside read it: too loaded")


def _all_of_a_second_taken(d: Path, lead: int) -> bool:
    """:func:`set_aside` in ``d`` whose every earlier-<second>, -2 to -999 is taken, at the start of that second,
    ``lead`` seconds on: False where that second had passed before it named its folder (nothing checked)."""
    d.mkdir(mode=0o700)
    best = checkpoint.save(d / "best.pt", {"model": {}, "step": 3})  # first: torch's first save takes a second
    second = int(time.time()) + lead
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(second))
    for name in [f"earlier-{stamp}"] + [f"earlier-{stamp}-{n}" for n in range(2, 1000)]:
        (d / name).mkdir()
        (d / name / "best.pt").touch()  # another run's (an empty folder, left by a kill, is removed)
    (d / f"earlier-{stamp}-999" / "best.pt").write_bytes(b"another run's best")
    while (now := time.time()) < second:
        time.sleep(second - now)
    aside = checkpoint.set_aside(d, [best])
    assert aside is not None and _names(aside) == ["best.pt"] and checkpoint.load(aside / "best.pt")["step"] == 3
    assert (d / f"earlier-{stamp}-999" / "best.pt").read_bytes() == b"another run's best"
    if aside.name[len("earlier-"):][:len(stamp)] != stamp:
        assert time.time() >= second + 1  # its own second, one that came later
        return False
    assert aside.name == f"earlier-{stamp}-1000"
    return True


RACING_RUN = textwrap.dedent(
    """
    import os, sys, time
    sys.path[:0] = [{tests!r}, {src!r}]
    from _train_util import mlp, scripted, split
    from tunesmith.train import TrainConfig, Trainer, checkpoint

    clean, replace, signals = checkpoint.clean_stale, os.replace, {signals!r}

    def say(name):
        open(os.path.join(signals, name), "w").close()

    def wait(name):  # for the other process's moment; at most two minutes, then on (the test then says what)
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(signals, name)) and time.monotonic() < deadline:
            time.sleep(0.01)

    def held_then_waits(folder):  # fit cleans its folder once it holds the folder's lock
        say("resumed-holds")
        wait("mover-checked")
        clean(folder)

    def moves_after_the_resumed_wrote(src, dst):
        parent = os.path.dirname(dst)
        if (os.path.dirname(src) == {folder!r} and os.path.dirname(parent) == {folder!r}
                and not os.path.exists(os.path.join(signals, "mover-checked"))):
            say("mover-checked")  # its folder chosen (and names checked): the first move into it
            wait("resumed-wrote")
        replace(src, dst)
        if os.path.basename(dst) == "best.pt" and os.path.dirname(src) == {aside!r}:
            say("resumed-wrote")

    if {resumed!r}:
        checkpoint.clean_stale, os.replace = held_then_waits, moves_after_the_resumed_wrote
        cfg = TrainConfig(epochs=4, batch_size=16, keep_last=2, checkpoint_dir={aside!r})
        Trainer(mlp(), cfg, loss=scripted([0.0] * 100)).fit(*split(96), resume_from=checkpoint.latest({aside!r}))
    else:
        os.replace = moves_after_the_resumed_wrote
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16, keep_last=2, checkpoint_dir={folder!r})).fit(*split(96))
    """
)


def test_a_move_finished_while_the_earlier_run_resumes_in_its_folder_replaces_none_of_that_run_s_files(
    tmp_path: Path,
) -> None:
    """Two real processes at once: the earlier run resumed in the earlier-* folder of a cut-short move (its lock
    held, its best.pt not yet written), and a new run in the folder above that finishes the move. Before: the new
    run checked that no name was taken, the resumed run then wrote its best.pt, and the move's os.replace put the
    old best.pt over it. The move now takes that folder's lock first: held by the resumed run, the rest goes into
    a new folder."""
    d = tmp_path / "run"
    aside, left = _cut_short_before_best(d)
    signals = tmp_path / "signals"
    signals.mkdir()

    def script(resumed: bool) -> list[str]:
        code = RACING_RUN.format(tests=str(TESTS), src=str(TESTS.parent / "src"), signals=str(signals),
                                 folder=str(d), aside=str(aside), resumed=resumed)
        return [sys.executable, "-c", code]

    resumed = subprocess.Popen(script(True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(12000):  # its import and load first: at most two minutes
            if (signals / "resumed-holds").exists() or resumed.poll() is not None:
                break
            time.sleep(0.01)
        assert (signals / "resumed-holds").exists(), resumed.communicate(timeout=60)[0]
        mover = subprocess.run(script(False), capture_output=True, text=True, timeout=300)
        out = resumed.communicate(timeout=300)[0]
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()
    assert mover.returncode == 0 and resumed.returncode == 0, (mover.stderr, out)
    assert (signals / "resumed-wrote").exists() and (signals / "mover-checked").exists()
    assert os.path.samefile(aside / "best.pt", aside / "last-000000020.pt"), _names(aside)  # the resumed run's own
    assert checkpoint.load(aside / "best.pt")["step"] == 20
    (other,) = [p for p in d.iterdir() if p.is_dir() and p != aside]
    assert (other / "best.pt").read_bytes() == left and checkpoint.unfinished_aside(d) is None


HOLDS_THE_FOLDER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{src!r}]
    from tunesmith.train import checkpoint
    try:
        checkpoint.hold({d!r})
    except checkpoint.CheckpointFolderBusy as exc:
        print("refused:", exc)
    else:
        print("held")
    """
)


def test_a_second_run_writing_one_checkpoint_folder_at_once_is_refused(tmp_path: Path) -> None:
    """Before: two processes training into one checkpoint_dir at once replaced each other's best.pt, each one's
    rotation deleted the other's "last" files, and checkpoint.latest mixed the two runs."""
    d = tmp_path / "run"
    seen: list[str] = []

    def second_process(trainer: Trainer, record: object) -> None:
        if not seen:
            script = HOLDS_THE_FOLDER.format(src=str(TESTS.parent / "src"), d=str(d))
            seen.append(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       timeout=300, check=True).stdout)
            with pytest.raises(checkpoint.CheckpointFolderBusy, match="being written by another run now"):
                Trainer(mlp(), CFG.with_params({"checkpoint_dir": d})).fit(*DATA)

    Trainer(mlp(), CFG.with_params({"checkpoint_dir": d}), callbacks=[second_process]).fit(*DATA)
    assert seen[0].startswith("refused: checkpoint folder"), seen
    assert "Give this run its own TrainConfig.checkpoint_dir" in seen[0]
    assert _names(d) == ["best.pt", "last-000000005.pt", "last-000000010.pt", "last-000000015.pt"]
    script = HOLDS_THE_FOLDER.format(src=str(TESTS.parent / "src"), d=str(d))  # fit's end freed it
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=True).stdout == "held\n"


def test_a_folder_the_file_system_cannot_sync_still_takes_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some network file systems refuse to sync a folder (EINVAL): the save stands, as SQLite's does."""
    fsync = os.fsync

    def refuses_folders(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", refuses_folders)
    path = checkpoint.save(tmp_path / "ck" / "last-000000001.pt", {"model": {}, "step": 1})
    assert checkpoint.load(path)["step"] == 1 and [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(folder)})).fit(*DATA)
    files = checkpoint.list_last(folder)
    assert len(files) == 3 and checkpoint.latest(folder) == files[-1]
    data = files[-1].read_bytes()
    files[-1].write_bytes(data[: len(data) // 2])  # a copy cut short
    assert checkpoint.latest(folder) == files[-2]
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        checkpoint.load(files[-1])
    assert str(files[-1]) in str(err.value)
    history = Trainer(mlp(), CFG).fit(*DATA, resume_from=checkpoint.latest(folder))
    assert len(history.records) == 3


@pytest.mark.parametrize(
    ("model", "changes", "match"),
    [
        (lambda: mlp(), {"optimizer": "sgd"}, "optimizer='adam' there, 'sgd' here"),
        (lambda: mlp(), {"batch_size": 32}, "batch_size=16 there, 32 here"),
        (lambda: mlp(hidden=32), {}, r"another model architecture \(shapes differ: 0.bias \[16\] in the checkpoint, \[32\] here"),
        (lambda: torch.nn.Sequential(mlp(), torch.nn.Linear(2, 2)), {}, "another model architecture.*only in this model: 0.0.bias"),
    ],
)
def test_resuming_another_run_is_refused_saying_what_differs(tmp_path: Path, model, changes, match) -> None:
    folder = tmp_path / "ck"
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(folder), "epochs": 1})).fit(*DATA)
    with pytest.raises(CheckpointError, match=match):
        Trainer(model(), CFG.with_params(changes)).fit(*DATA, resume_from=checkpoint.latest(folder))


def test_loading_weights_into_another_model_says_how_to_load_them(tmp_path: Path) -> None:
    """load_weights(build_model(...), best.pt) into a model of other sizes said "resume with the model it was
    trained with, or start a new run", advice for a resume, where the user was loading a result; so did a
    frozen part that differs ("... freeze the same blocks to resume it")."""
    folder = tmp_path / "ck"
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(folder), "epochs": 1})).fit(*DATA)
    with pytest.raises(CheckpointError, match=r"shapes differ.*; load it into a model built as for training") as err:
        load_weights(mlp(hidden=32), folder / "best.pt")
    assert "resume" not in str(err.value)
    Trainer(frozen_net(), CFG.with_params({"checkpoint_dir": str(tmp_path / "fr"), "epochs": 1})).fit(*DATA)
    with pytest.raises(CheckpointError, match="freeze the same blocks to load it$"):
        load_weights(frozen_net(seed=1), tmp_path / "fr" / "best.pt")  # other "pre-trained" weights


def frozen_net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    net = Net(hidden=64, blocks=3)
    freeze(net.backbone)
    return net


def test_a_frozen_backbone_is_fingerprinted_not_stored_and_resume_is_exact(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=4, batch_size=16, keep_last=4, lr=0.01)
    ref = frozen_net()
    Trainer(ref, cfg.with_params({"checkpoint_dir": str(tmp_path / "ref")})).fit(*DATA)
    first = checkpoint.list_last(tmp_path / "ref")[1]  # after epoch 2
    state = checkpoint.load(first)
    assert set(state["model"]) == {"head.weight", "head.bias"}  # the backbone is frozen
    assert state["model_meta"]["n_frozen"] == len(ref.backbone.state_dict())
    full = Trainer(frozen_net(), cfg)
    full.model.backbone.requires_grad_(True)  # the same model, nothing frozen: all of it stored
    full_file = checkpoint.save(tmp_path / "full.pt", full.state_dict())
    backbone_bytes = sum(v.numel() * v.element_size() for v in ref.backbone.state_dict().values())
    assert full_file.stat().st_size - first.stat().st_size > 0.9 * backbone_bytes

    resumed = frozen_net(seed=1)  # another head init: the checkpoint must override it ...
    resumed.backbone.load_state_dict(frozen_net().backbone.state_dict())  # ... the same backbone
    Trainer(resumed, cfg).fit(*DATA, resume_from=first)
    after, expected = snapshot(resumed), snapshot(ref)
    assert all(torch.equal(after[k], expected[k]) for k in expected)

    other = frozen_net(seed=2)  # another pre-trained backbone
    with pytest.raises(CheckpointError, match="frozen tensors .* differ from those it was trained with"):
        Trainer(other, cfg).fit(*DATA, resume_from=first)


class PauseAt(Pruner):
    """Pauses every trial at ``step``; promotes nothing."""

    pauses = True

    def __init__(self, step: int) -> None:
        self.step = step

    def decide(self, trial, trials, direction) -> Decision:
        return Decision.PAUSE if trial.last_step == self.step else Decision.CONTINUE


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_a_study_keeps_what_can_resume_and_the_best_of_finished_trials(tmp_path: Path) -> None:
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=2)
    root = checkpoint.study_folder(tmp_path, "s", study.copy_id)
    assert [t.state for t in study.trials] == [ts.TrialState.PAUSED] * 2
    assert files(root / "trial-0") == {"best.pt", "last-000000010.pt", ".study"}  # a paused trial keeps its own
    study.tell(0, state="pruned")  # e.g. abandoned: nothing can resume it now
    study.pruner = ts.pruners.NopPruner()
    study.optimize(obj, n_trials=1)  # trial 2 runs to the end
    assert files(root / "trial-0") == set()  # swept at the next trial's start
    assert files(root / "trial-1") == {"best.pt", "last-000000010.pt", ".study"}  # and the study that wrote them
    done = study.trials[2]
    assert done.state is ts.TrialState.COMPLETE and files(root / "trial-2") == {"best.pt", ".study"}
    best = checkpoint.load(done.attrs["best_checkpoint"])
    assert "optimizer" not in best and "rng" not in best  # for use, not for resuming
    load_weights(mlp(seed=5), done.attrs["best_checkpoint"])
    with pytest.raises(CheckpointError, match="load_weights"):
        Trainer(mlp(), TrainConfig(epochs=3, batch_size=16)).fit(*DATA, resume_from=done.attrs["best_checkpoint"])


def _wait(event: object) -> None:
    event.wait(120)  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_that_outlives_the_run_does_not_hold_its_folder(tmp_path: Path) -> None:
    """A process forked during fit (a DataLoader's persistent worker, kept alive by a traceback) shares the
    folder lock's open file: without closing its copy, a resume in that folder was refused as a second writer."""
    import multiprocessing

    d = tmp_path / "run"
    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    children: list = []

    def fork_a_child(trainer: Trainer, record: object) -> None:
        if not children:
            children.append(ctx.Process(target=_wait, args=(done,)))
            children[0].start()

    try:
        Trainer(mlp(), CFG.with_params({"checkpoint_dir": d}), callbacks=[fork_a_child]).fit(*DATA)
        assert children[0].is_alive()
        history = Trainer(mlp(), CFG.with_params({"epochs": 4, "checkpoint_dir": d})).fit(
            *DATA, resume_from=checkpoint.latest(d))
        assert history.records[-1].step == 20
    finally:
        done.set()
        for child in children:
            child.join(60)


def test_a_resumed_trial_drops_the_steps_its_record_never_named_leaving_no_folder_aside(tmp_path: Path) -> None:
    """A worker killed after writing a "last" file but before the trial's record named it: the resumed trial
    writes that step again, and the study's folder keeps no earlier-* copy of it (which retire never tidies)."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    folder = checkpoint.study_folder(tmp_path, "s", study.copy_id) / "trial-0"
    assert study.trials[0].attrs["checkpoint"] == str(folder / "last-000000010.pt")
    shutil.copy(folder / "last-000000010.pt", folder / "last-000000015.pt")  # written, never recorded
    study.pruner = PauseAndPromote()
    study.optimize(obj, n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE
    assert files(folder) == {"best.pt", ".study"}


@pytest.mark.parametrize("planted", ["others-may-write", "folder-others-may-write", "theirs", "own-in-sticky-folder",
                                     "theirs-made-as-it-is-read"])
def test_a_best_checkpoint_a_storage_writer_named_loads_only_where_no_other_user_chose_it(
        tmp_path: Path, planted: str) -> None:
    """``load_weights(model, trial.attrs["best_checkpoint"])``, as docs/train.md writes it, loaded whatever file the
    stored path named: whoever may write the study's database pointed it at a file of theirs (here: the best trial's
    weights zeroed), and their weights were loaded as the best trial's (torch before 2.6 ran code from such a file
    even with weights_only=True). A file of the user's own in a sticky folder (/tmp) still loads. A path not there
    yet in a sticky folder passed the look, and their file made there after it (here as torch opens it) loaded."""
    import sqlite3

    if planted.startswith("theirs") and os.getuid() != 0:
        pytest.skip("a file of another user: root makes it (chown)")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", storage=url)
    study.optimize(objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=1, batch_size=16),
                             checkpoint_root=tmp_path / "ckpt"), n_trials=1)
    own = study.best_trial.attrs["best_checkpoint"]
    load_weights(mlp(seed=5), own)  # the user's own run's: loaded
    shared = tmp_path / "shared"
    shared.mkdir()
    theirs = shared / "best.pt"
    state = checkpoint.load(own)
    checkpoint.save(theirs, {**state, "model": {k: torch.zeros_like(v) for k, v in state["model"].items()}})
    if planted == "others-may-write":
        theirs.chmod(0o666)
    elif planted == "folder-others-may-write":
        shared.chmod(0o777)
    elif planted == "theirs":
        os.chown(theirs, 65534, 65534)
    else:
        shared.chmod(0o1777)
    if planted == "theirs-made-as-it-is-read":
        kept = tmp_path / "kept.pt"
        theirs.rename(kept)
        os.chown(kept, 65534, 65534)
        armed = [True]

        def plant(event: str, args: tuple[object, ...]) -> None:  # after every look, as the file is opened to be read
            if event == "open" and armed and str(args[0]) == str(theirs):
                armed.clear()
                kept.rename(theirs)

        sys.addaudithook(plant)  # stays for the session, disarmed after its one plant
    with sqlite3.connect(tmp_path / "study.db") as db:  # a writer of the database
        db.execute("UPDATE ts_trials SET attrs = json_set(attrs, '$.best_checkpoint', ?)", (str(theirs),))
    named = ts.load_study("s", url).best_trial.attrs["best_checkpoint"]
    assert named == str(theirs)
    if planted == "own-in-sticky-folder":
        model = load_weights(mlp(seed=5), named)
        assert all(not p.any() for p in model.parameters())
        return
    with pytest.raises(ts.UntrustedPathError, match=r"checkpoint .*best\.pt.*(owned by another user|can be written by "
                                                    r"other users).*so they may (have chosen what it holds|put a file)"):
        load_weights(mlp(seed=5), named)
    if planted == "theirs-made-as-it-is-read":
        armed.clear()


@pytest.mark.parametrize("reader", ["load_weights", "resume_from"])
def test_a_folder_of_the_user_s_own_swapped_by_the_owner_of_the_folder_above_as_it_is_read_is_refused(
        tmp_path: Path, reader: str) -> None:
    """The checks looked at the file and its folder by name, then the file was opened by name: a folder of the
    user's own inside another user's folder was renamed away by them between the two and one of theirs put in its
    place, and their weights (here zeroed) were loaded. The folder is now opened, checked as opened, and the file
    read in it."""
    if os.getuid() != 0:
        pytest.skip("a folder of another user: root makes it (chown)")
    run = CFG.with_params({"epochs": 1, "checkpoint_dir": str(tmp_path / "run")})
    Trainer(mlp(), run).fit(*DATA)
    theirs = tmp_path / "theirs"
    mine = theirs / "mine"
    mine.mkdir(parents=True, mode=0o700)
    target = mine / "last.pt"
    shutil.copy(checkpoint.latest(tmp_path / "run"), target)
    state = checkpoint.load(target)
    planted = tmp_path / "planted"  # their folder, to be put in place of mine
    planted.mkdir()
    checkpoint.save(planted / "last.pt", {**state, "model": {k: torch.zeros_like(v) for k, v in state["model"].items()}})
    for p in (theirs, planted, planted / "last.pt"):
        os.chown(p, 65534, 65534)
    armed = [True]

    def swap(event: str, args: tuple[object, ...]) -> None:  # after the look, as the checkpoint is opened
        if event == "open" and armed and str(args[0]) in (str(target), str(mine)):
            armed.clear()
            mine.rename(theirs / "mine.old")  # as the owner of theirs may
            planted.rename(mine)

    model = mlp(seed=5)
    before = snapshot(model)
    sys.addaudithook(swap)  # stays for the session, disarmed after its one swap
    try:
        with pytest.raises(ts.UntrustedPathError, match=r"mine'? is owned by another user \(uid 65534\) \(it changed "
                                                        r"since it was looked at\)"):
            if reader == "load_weights":
                load_weights(model, target)
            else:
                Trainer(model, run.with_params({"epochs": 2, "checkpoint_dir": str(tmp_path / "again")})).fit(
                    *DATA, resume_from=target)
    finally:
        armed.clear()
    assert (theirs / "mine.old" / "last.pt").is_file()  # swapped as it was read
    assert all(torch.equal(v, snapshot(model)[k]) for k, v in before.items())  # nothing of theirs loaded


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_a_checkpoint_in_a_folder_the_user_may_pass_through_but_not_list_loads(tmp_path: Path) -> None:
    """A shared models folder of root's, or a home folder, at mode 711: its files are opened by name, but the folder
    cannot be listed. Opening the folder to read the checkpoint in it (a folder swapped after the look is not read
    from) failed with "Permission denied" on the folder, for a checkpoint that loaded by name before."""
    from conftest import said_as_nobody

    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": str(tmp_path / "run")})).fit(*DATA)
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        models = shared / "models"
        models.mkdir()
        shutil.copy(checkpoint.latest(tmp_path / "run"), models / "last.pt")
        (models / "last.pt").chmod(0o644)
        (models / "locked.pt").write_bytes(b"")
        (models / "locked.pt").chmod(0o600)
        models.chmod(0o711)
        shared.chmod(0o755)
        # (fit(resume_from=...) reads it as load_weights does: no training in a forked child, whose thread pools
        # the parent's may have left unusable)
        assert said_as_nobody(lambda: load_weights(mlp(seed=5), models / "last.pt")) == "ok"
        said = said_as_nobody(lambda: load_weights(mlp(seed=5), models / "locked.pt"))
        assert said == f"[Errno 13] Permission denied: {str(models / 'locked.pt')!r}", said  # the whole path
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize("open_to_others", ["folder", "file"])
def test_a_checkpoint_of_the_user_s_own_others_may_write_is_refused_with_the_chmod_that_fixes_it(
        tmp_path: Path, open_to_others: str) -> None:
    """A best checkpoint copied into a team's folder of the user's (group-writable), or copied under umask 002 with a
    group others share, is refused by load_weights (others may have changed it); the message said to load one the
    user's runs wrote or to copy it "to a folder of yours", which that folder already is. It names the chmod."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s")
    study.optimize(objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=1, batch_size=16),
                             checkpoint_root=tmp_path / "ckpt"), n_trials=1)
    team = tmp_path / "team"
    team.mkdir()
    copied = team / "best.pt"
    shutil.copy(study.best_trial.attrs["best_checkpoint"], copied)
    loose = team if open_to_others == "folder" else copied
    loose.chmod(0o777 if open_to_others == "folder" else 0o666)
    with pytest.raises(ts.UntrustedPathError) as refused:
        load_weights(mlp(seed=5), copied)
    assert f"can be written by other users (mode {'777' if open_to_others == 'folder' else '666'})" in str(refused.value)
    assert f"if no one else should write it: chmod go-w {str(loose)!r}; else load a checkpoint" in str(refused.value)
    subprocess.run(["chmod", "go-w", str(loose)], check=True)  # as the message says
    load_weights(mlp(seed=5), copied)


@pytest.mark.parametrize("where", ["own-folder", "own-in-sticky-folder", "folder-others-may-write", "others-may-write"])
def test_a_checkpoint_to_resume_from_is_checked_as_one_load_weights_reads(tmp_path: Path, where: str) -> None:
    """Before: ``fit(resume_from=...)`` loaded a file others may write, or one in a folder where they may replace it,
    which load_weights and a study's ``trial.resume_from`` refuse; the user's own file in a folder of theirs, or in a
    shared folder with the sticky bit (/tmp), resumes as before."""
    run = CFG.with_params({"epochs": 1, "checkpoint_dir": str(tmp_path / "run")})
    Trainer(mlp(), run).fit(*DATA)
    folder = tmp_path / "shared"
    folder.mkdir()
    copied = folder / "last.pt"
    shutil.copy(checkpoint.latest(tmp_path / "run"), copied)
    loose = {"own-in-sticky-folder": None, "folder-others-may-write": folder, "others-may-write": copied}.get(where)
    if where == "own-in-sticky-folder":
        folder.chmod(0o1777)
    elif loose is not None:
        loose.chmod(0o777 if loose == folder else 0o666)
    again = run.with_params({"epochs": 2, "checkpoint_dir": str(tmp_path / "again")})
    model = mlp(seed=3)
    if loose is None:
        assert Trainer(model, again).fit(*DATA, resume_from=copied).records[-1].epoch == 2
        return
    before = snapshot(model)
    with pytest.raises(ts.UntrustedPathError, match=r"checkpoint to resume from .*can be written by other users \(mode "
                                                    r"(777|666)\), so they may have chosen what it holds; if no one else "
                                                    rf"should write it: chmod go-w '{loose}'"):
        Trainer(model, again).fit(*DATA, resume_from=copied)
    assert all(torch.equal(v, snapshot(model)[k]) for k, v in before.items())  # nothing of it loaded
    subprocess.run(["chmod", "go-w", str(loose)], check=True)  # as the message says
    assert Trainer(mlp(seed=3), again).fit(*DATA, resume_from=copied).records[-1].epoch == 2


def test_the_best_checkpoint_a_resumed_run_restores_is_checked_as_the_checkpoint_is(tmp_path: Path) -> None:
    """Before: a resumed run restored the best.pt its checkpoint names (restore_best) whoever had put it there: a
    file at the old place of a moved run folder (anyone may make /tmp/<old name> after the move) or in a folder
    others may write; the run ended with those weights as its best."""
    run = CFG.with_params({"epochs": 2, "checkpoint_dir": str(tmp_path / "a" / "x" / "run")})
    Trainer(mlp(), run).fit(*DATA)
    shutil.move(tmp_path / "a", tmp_path / "b")
    here = tmp_path / "b" / "x" / "run"
    theirs = CFG.with_params({"epochs": 1, "lr": 0.5, "checkpoint_dir": str(tmp_path / "theirs")})
    Trainer(mlp(seed=9), theirs).fit(*DATA)
    (tmp_path / "a" / "x" / "run").mkdir(parents=True)  # the old place, taken after the move
    shutil.copy(tmp_path / "theirs" / "best.pt", tmp_path / "a" / "x" / "run" / "best.pt")
    model = mlp()
    history = Trainer(model, run.with_params({"checkpoint_dir": str(here)})).fit(
        *DATA, resume_from=checkpoint.latest(here))  # nothing left to train: the best weights are restored
    assert history.best_checkpoint == str(here / "best.pt")  # the moved folder's own, not the one at the old place
    own = torch.load(here / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in own.items())

    team = CFG.with_params({"epochs": 2, "checkpoint_dir": str(tmp_path / "team" / "run")})
    Trainer(mlp(), team).fit(*DATA)
    (tmp_path / "team" / "run").chmod(0o777)  # others may replace its best.pt
    (tmp_path / "mine").mkdir()
    copied = tmp_path / "mine" / "last.pt"
    shutil.copy(checkpoint.latest(tmp_path / "team" / "run"), copied)  # the user's own file in their folder
    again = team.with_params({"epochs": 3, "checkpoint_dir": str(tmp_path / "mine" / "run")})
    with pytest.raises(ts.UntrustedPathError, match=r"best checkpoint named in .*last.pt \(restore_best loads it\) "
                                                    r".*can be written by other users \(mode 777\).*resume with "
                                                    r"restore_best=False"):
        Trainer(mlp(), again).fit(*DATA, resume_from=copied)
    history = Trainer(mlp(), again.with_params({"restore_best": False})).fit(*DATA, resume_from=copied)
    assert history.records[-1].epoch == 3  # as the message says


@pytest.mark.parametrize("where", ["own-folder", "sticky-folder", "folder-others-may-write"])
def test_a_checkpoint_to_resume_from_not_there_is_refused_where_another_user_may_make_it(tmp_path: Path,
                                                                                        where: str) -> None:
    """``fit(resume_from=...)`` on a path not there: in a folder of the user's own it says the file does not
    exist; in one others may add files to (sticky, as /tmp, or not) they may make it between the look and the load,
    so it is refused as not there, with the ``chmod go-w`` where the folder is the user's own and not sticky (no
    such hint for a shared sticky folder: it would shut the others out)."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod({"own-folder": 0o755, "sticky-folder": 0o1777, "folder-others-may-write": 0o777}[where])
    gone = folder / "run" / "last.pt"
    model = mlp(seed=3)
    before = snapshot(model)
    cfg = CFG.with_params({"epochs": 1, "checkpoint_dir": str(tmp_path / "again")})
    if where == "own-folder":
        with pytest.raises(FileNotFoundError, match=r"checkpoint '.*last\.pt' does not exist"):
            Trainer(model, cfg).fit(*DATA, resume_from=gone)
        return
    with pytest.raises(ts.UntrustedPathError, match=rf"checkpoint to resume from '{gone}' is not there, and '{folder}' "
                                                    r"can be written by other users \(mode 1?777\), so they may put a "
                                                    r"file of theirs there before it is read; ") as refused:
        Trainer(model, cfg).fit(*DATA, resume_from=gone)
    assert all(torch.equal(v, snapshot(model)[k]) for k, v in before.items())
    assert ("chmod go-w" in str(refused.value)) == (where == "folder-others-may-write"), refused.value
    if where == "folder-others-may-write":
        subprocess.run(["chmod", "go-w", str(folder)], check=True)  # as the message says: then it is only missing
        with pytest.raises(FileNotFoundError, match="does not exist"):
            Trainer(mlp(seed=3), cfg).fit(*DATA, resume_from=gone)


def test_a_folder_the_sweep_cannot_tidy_fails_no_other_trial(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tidying another trial's folder is housekeeping: before, an entry it could not delete (here a
    folder named like a checkpoint) failed every later trial of the study with IsADirectoryError."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    folder = Path(study.trials[0].attrs["checkpoint"]).parent
    (folder / "last-000000099.pt").mkdir()
    study.tell(0, state="pruned")  # nothing resumes it: its folder is swept at the next trial's start
    study.pruner = ts.pruners.NopPruner()
    study.optimize(obj, n_trials=2)
    assert [t.state for t in study.trials[1:]] == [ts.TrialState.COMPLETE] * 2
    assert f"could not tidy {folder}" in caplog.text and "Is a directory" in caplog.text
    assert caplog.text.count("could not tidy") == 1  # once, though each trial's start finds it


def test_the_sweep_never_follows_a_trial_folder_that_is_a_link(tmp_path: Path) -> None:
    """A finished trial's folder replaced by a symbolic link to a folder outside the checkpoint
    root (its files kept elsewhere by hand): before, the sweep deleted that folder's checkpoints."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path / "ck")
    study.optimize(obj, n_trials=1)
    folder = Path(study.trials[0].attrs["checkpoint"]).parent
    kept = tmp_path / "kept"
    folder.rename(kept)
    folder.symlink_to(kept)
    study.tell(0, state="pruned")
    study.pruner = ts.pruners.NopPruner()
    study.optimize(obj, n_trials=1)
    assert study.trials[1].state is ts.TrialState.COMPLETE
    assert files(kept) == {"best.pt", "last-000000010.pt", ".study"} and folder.is_symlink()


def test_a_folder_named_like_no_trial_number_fails_no_trial(tmp_path: Path) -> None:
    """The sweep reads each ``trial-N`` folder of the study's checkpoint folder as a trial number: one
    planted there (a shared folder) as ``trial-²`` (a digit to str.isdigit, none to int()) failed
    every trial that started with a bare ValueError."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s")
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    (Path(study.trials[0].attrs["best_checkpoint"]).parent.parent / "trial-\u00b2").mkdir()
    study.optimize(obj, n_trials=1)
    assert study.trials[1].state is ts.TrialState.COMPLETE, study.trials[1].error


def test_a_mark_the_sweep_cannot_read_fails_no_other_trial(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The sweep reads each finished trial's ``.study`` mark before tidying its folder: before, a mark
    that could not be read (here a link to /proc/self/mem, whose first bytes give EIO even to root)
    failed the trial that was starting, outside the sweep's housekeeping ``try``."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    folder = Path(study.trials[0].attrs["checkpoint"]).parent
    (folder / ".study").unlink()
    (folder / ".study").symlink_to("/proc/self/mem")
    study.tell(0, state="pruned")
    study.pruner = ts.pruners.NopPruner()
    study.optimize(obj, n_trials=1)
    assert study.trials[1].state is ts.TrialState.COMPLETE
    assert f"could not tidy {folder}" in caplog.text and "Input/output error" in caplog.text
    assert "last-000000010.pt" in files(folder)  # whose folder it is is unknown: left as it is


def test_a_checkpoint_name_taken_by_a_folder_fails_the_trial_naming_it(tmp_path: Path) -> None:
    """A paused trial's checkpoint replaced by a folder of its name: its resume falls back to a fresh
    start, which cannot empty the trial's folder. Before: a bare IsADirectoryError."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    path = Path(study.trials[0].attrs["checkpoint"])
    path.unlink()
    path.mkdir()
    study.pruner = PauseAndPromote()
    trial = study.ask()
    assert trial.is_resumed
    with pytest.raises(CheckpointError, match=f"cannot start in .*{path.name}.* cannot be deleted .*delete or move it"):
        obj(trial)
    assert path.is_dir()  # nothing of it deleted


def test_the_default_folder_is_per_user_and_per_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    db = f"sqlite:///{tmp_path / 's.db'}"
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=1, batch_size=16))
    seen = []
    for _ in range(2):  # the study reopened (another run) finds the same folder
        study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=db, name="exp", sampler="random", seed=0)
        study.optimize(obj, n_trials=1)
        seen.append(Path(study.trials[-1].attrs["best_checkpoint"]).parent.parent)
    expected = checkpoint.study_folder(tmp_path / "cache" / "tunesmith" / "checkpoints", "exp", study.copy_id)
    assert seen == [expected, expected]
    for d in (tmp_path / "cache" / "tunesmith", tmp_path / "cache" / "tunesmith" / "checkpoints", expected):
        assert d.stat().st_mode & 0o777 == 0o700
    assert files(expected) == {"trial-0", "trial-1"}


def test_resuming_from_a_folder_or_a_file_that_is_no_checkpoint_says_so(tmp_path: Path) -> None:
    """Before: a folder "does not exist"; any file that is not a torch archive (a script, a text
    file) "holds Python objects other than tensors ... unpickling them could run code"."""
    folder = tmp_path / "ck"
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(folder)})).fit(*DATA)
    with pytest.raises(IsADirectoryError, match=r"is a folder; pass a checkpoint file in it, .*checkpoint.latest\(folder\)"):
        Trainer(mlp(), CFG).fit(*DATA, resume_from=folder)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a complete torch.save archive"):
        Trainer(mlp(), CFG).fit(*DATA, resume_from=text)


def test_a_torchscript_archive_named_as_a_checkpoint_is_refused_before_torch_reads_it(tmp_path: Path) -> None:
    """torch.load hands a TorchScript archive to torch.jit.load, whose code ran even with weights_only=True
    before torch 2.6 (CVE-2025-32434). Before: torch 2.6+ refused it, and the message called the file
    "truncated or corrupt", quoting torch's advice to retry with weights_only=False."""
    script = tmp_path / "last-000000003.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: deprecated in recent torch
        torch.jit.save(torch.jit.script(mlp()), str(script))
    model = mlp()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for load in (lambda: Trainer(model, CFG).fit(*DATA, resume_from=script), lambda: load_weights(model, script)):
            with pytest.raises(CheckpointError, match=r"is a TorchScript archive \(torch.jit.save\), which holds code"):
                load()
    assert not [w for w in seen if "TorchScript" in str(w.message)]  # torch's "dispatching to 'torch.jit.load'"


def test_resuming_from_a_fifo_says_it_is_no_regular_file(tmp_path: Path) -> None:
    """Before: a named pipe (or a device) given as the checkpoint "does not exist"."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="'.*pipe' is a FIFO, not a regular file; pass a file torch.save wrote"):
        Trainer(mlp(), CFG).fit(*DATA, resume_from=fifo)
    with pytest.raises(CheckpointError, match="'/dev/null' is a character device, not a regular file"):
        checkpoint.load("/dev/null")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")


def test_a_checkpoint_is_opened_before_it_is_looked_at_so_a_fifo_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load checked is_file() and then opened: a FIFO swapped in between (a shared checkpoint folder)
    blocked the load until a writer came. is_file() answers True here, as at the swap."""
    from conftest import ended_without_blocking

    fifo = tmp_path / "last-00000010.pt"
    os.mkfifo(fifo)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    monkeypatch.setattr(Path, "is_dir", lambda self: False)
    seen = ended_without_blocking(lambda: checkpoint.load(fifo), fifo, "loading a checkpoint")
    assert len(seen) == 1 and isinstance(seen[0], CheckpointError), seen
    assert "last-00000010.pt' is a FIFO, not a regular file" in str(seen[0])


def test_a_fifo_among_the_checkpoints_is_skipped_not_waited_on(tmp_path: Path) -> None:
    """load opened first, but is_complete, which latest(folder) and the resume of a paused trial call
    before it, opened a FIFO named as a checkpoint blocking: the resume waited for a writer for good."""
    from conftest import ended_without_blocking

    older = checkpoint.last_path(tmp_path, 5)
    checkpoint.save(older, {"model": {}, "step": 5})
    fifo = checkpoint.last_path(tmp_path, 10)
    os.mkfifo(fifo)
    assert ended_without_blocking(lambda: checkpoint.is_complete(fifo), fifo, "is_complete") == [False]
    assert ended_without_blocking(lambda: checkpoint.latest(tmp_path), fifo, "latest") == [older]
    assert checkpoint.is_complete(older) and not checkpoint.is_complete(tmp_path)


def test_a_checkpoint_dir_under_home_written_with_a_tilde_goes_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: checkpoint_dir="~/runs/exp1" made a folder named "~" in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    history = Trainer(mlp(), CFG.with_params({"checkpoint_dir": "~/runs/exp1"})).fit(*DATA)
    assert Path(history.best_checkpoint).is_file() and not (tmp_path / "~").exists()
    assert Path(history.best_checkpoint).parent == tmp_path / "home" / "runs" / "exp1"


def test_latest_and_load_expand_a_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: latest("~/runs/exp1") looked for a folder named "~", found none and returned None, so
    fit(resume_from=latest(...)) trained from the start in silence; load("~/...") said "does not exist"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(tmp_path / "runs")})).fit(*DATA)
    found = checkpoint.latest("~/runs")
    assert found is not None and found.parent == tmp_path / "runs"
    assert checkpoint.load(f"~/runs/{found.name}")["step"] == checkpoint.load(found)["step"]


def test_a_checkpoint_the_full_disk_refused_fails_its_trial_naming_the_folder(small_fs: Path, tmp_path: Path) -> None:  # noqa: F811
    """The trainer's save on a full disk failed the trial with "OSError: [Errno 28] No space left on device at
    .../checkpoint.py:229": which file, which disk? It names both and what to do; nothing of the file is left,
    what the study recorded stays, and the next trial, with room again, trains. The new trial's folder, refused
    its marker (``.study``), is removed, not left empty."""
    from test_faults_storage import _fill

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="s", sampler="random", seed=0)
    obj = objective(lambda p: mlp(hidden=64), split(96), base=TrainConfig(epochs=2, batch_size=16),
                    checkpoint_root=small_fs / "ck")
    study.optimize(obj, n_trials=1)
    _fill(small_fs)
    study.optimize(obj, n_trials=1)
    failed = study.trials[1]
    assert failed.state is ts.TrialState.FAILED and failed.error.startswith("CheckpointNoRoom: cannot save the "
                                                                            "checkpoint"), failed.error
    assert f"free space on the disk that holds '{small_fs / 'ck'}" in failed.error
    assert "checkpoint_root=... / checkpoint_dir=..." in failed.error and "keep_last=1" in failed.error
    assert not [p for p in small_fs.rglob("*") if p.name.startswith(".") and p.is_file() and p.name != ".study"]
    root = checkpoint.study_folder(small_fs / "ck", "s", study.copy_id)
    assert sorted(p.name for p in root.iterdir()) == ["trial-0"]  # no empty trial-1 folder
    (small_fs / "filler").unlink()
    study.optimize(obj, n_trials=1)
    assert [t.state for t in ts.Study.load("s", url).trials] == [ts.TrialState.COMPLETE, ts.TrialState.FAILED,
                                                                  ts.TrialState.COMPLETE]


def test_a_checkpoint_a_full_disk_refused_in_a_loop_of_one_s_own_names_what_that_loop_can_do(
        small_fs: Path) -> None:  # noqa: F811
    """``checkpoint.save`` called from a user's own training loop (docs/pruning.md) advised
    ``checkpoint_root=... / checkpoint_dir=...``, ``keep_last=1`` and ``keep='none'``: options of
    ``tunesmith.train`` that such a loop has nowhere to pass. It names what that user can do: free space, another
    folder, fewer files kept (``checkpoint.rotate``); the trainer's saves keep naming its options (the test above)."""
    from test_faults_storage import _fill

    model = mlp(hidden=64)
    folder = small_fs / "mine"
    checkpoint.save(checkpoint.last_path(folder, 1), {"model": model.state_dict(), "step": 1})
    _fill(small_fs)
    with pytest.raises(CheckpointError) as caught:
        checkpoint.save(checkpoint.last_path(folder, 2), {"model": model.state_dict(), "step": 2})
    said = str(caught.value)
    assert f"free space on the disk that holds '{folder}'" in said, said
    assert "save into a folder on another disk" in said and "checkpoint.rotate(folder, keep=1)" in said, said
    for option in ("checkpoint_root", "checkpoint_dir", "keep_last", "keep='none'"):
        assert option not in said, said
    assert files(folder) == {"last-000000001.pt"}  # nothing of the refused file left
    with pytest.raises(CheckpointError) as caught:  # a Trainer's own save, called by the user: the same
        Trainer(model, CFG).save(folder / "mine.pt")
    assert "checkpoint.rotate(folder, keep=1)" in str(caught.value) and "keep_last" not in str(caught.value)
@pytest.mark.parametrize("jobs", [1, 2], ids=["inline", "processes"])
def test_a_promoted_trial_whose_checkpoint_the_full_disk_refused_is_paused_again_keeping_its_promotion(
        small_fs: Path, tmp_path: Path, jobs: int) -> None:  # noqa: F811
    """A resumed (promoted) trial whose checkpoint save met a full disk was failed: its promotion and the
    epochs it had trained lost for good. It is paused again now, promotion and checkpoint kept, and optimize
    stops with the error saying so (resumed first again, it would meet the full disk again); with room
    again the next optimize resumes it from that checkpoint."""
    from test_faults_storage import _fill

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="s", sampler="random", seed=0,
                     pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16),
                    checkpoint_root=small_fs / "ck")
    study.optimize(obj, n_trials=1)
    paused = study.trials[0]
    assert paused.state is ts.TrialState.PAUSED and paused.last_step == 2, paused
    study.pruner = PauseAndPromote()  # promotes it: the next optimize resumes it to the end
    _fill(small_fs)
    with pytest.raises(CheckpointError) as err:
        study.optimize(obj, n_trials=0, n_jobs=jobs)
    said = str(err.value)
    assert "cannot save the checkpoint" in said and "free space on the disk" in said, said
    assert "trial 0 (resumed after a pause) was paused again, its checkpoint and promotion kept" in said, said
    held = ts.Study.load("s", url).trials[0]
    # with worker processes the other worker may resume it once more before the stop reaches it (each worker
    # that meets the full disk stops: at most one resume each), paused again the same way
    assert held.state is ts.TrialState.PAUSED and 1 <= held.system.n_resumes <= jobs, held
    assert held.system.held is not None and "cannot save the checkpoint" in held.system.held, held.system
    assert held.attrs.get("checkpoint") == paused.attrs["checkpoint"] and sorted(held.intermediate) == [1, 2], (held.attrs, held.intermediate)
    (small_fs / "filler").unlink()
    study.optimize(obj, n_trials=0)
    done = ts.Study.load("s", url).trials
    assert len(done) == 1 and done[0].state is ts.TrialState.COMPLETE, done
    assert done[0].system.n_resumes == held.system.n_resumes + 1, done
    assert sorted(done[0].intermediate) == [1, 2, 3]


class _FillsTheDiskAt:
    """A callback that fills ``disk`` as epoch ``epoch`` (from 0) starts, once (``marker``, outside that disk):
    that epoch's checkpoint save meets a full disk, the ones before it recorded."""

    def __init__(self, disk: Path, epoch: int, marker: Path) -> None:
        self.disk, self.epoch, self.marker = disk, epoch, marker

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        from test_faults_storage import _fill

        if epoch == self.epoch and not self.marker.exists():
            self.marker.touch()
            _fill(self.disk)


@pytest.mark.parametrize("jobs", [1, 2], ids=["inline", "processes"])
def test_a_trial_never_paused_whose_checkpoint_the_full_disk_refused_is_held_at_its_recorded_one_as_on_ctrl_c(
        small_fs: Path, tmp_path: Path, jobs: int) -> None:  # noqa: F811
    """A trial never paused that recorded a checkpoint and a report under a pruner that pauses is held to go on
    from there on a Ctrl-C or a dead worker, but a full disk at its next save failed it and deleted its files:
    the epochs trained were lost. It is held now, as on a Ctrl-C (and as a resumed trial on a full disk): paused
    at its recorded step, its checkpoint kept, optimize stopped with the error saying so; with room again the next
    optimize resumes it from there to the end, as an uninterrupted run."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = TrainConfig(epochs=3, batch_size=16)
    study = ts.Study(space, storage=url, name="s", sampler="random", seed=0, pruner=PauseAt(99))  # never pauses itself
    obj = objective(lambda p: mlp(), DATA, base=base, checkpoint_root=small_fs / "ck",
                    callbacks=[_FillsTheDiskAt(small_fs, 1, tmp_path / "filled")])
    with pytest.raises(CheckpointError) as err:
        study.optimize(obj, n_trials=1, n_jobs=jobs)
    said = str(err.value)
    assert "cannot save the checkpoint" in said and "free space on the disk" in said, said
    assert "trial 0 was paused at step 1, its last recorded checkpoint kept: once there is room, the next optimize " \
           "resumes it first" in said, said
    (held,) = ts.Study.load("s", url).trials
    assert held.state is ts.TrialState.PAUSED and held.system.n_resumes == 0 and sorted(held.intermediate) == [1], held
    assert held.system.held is not None and "cannot save the checkpoint" in held.system.held, held.system
    assert Path(held.attrs["checkpoint"]).is_file(), held.attrs
    (small_fs / "filler").unlink()
    study.optimize(obj, n_trials=0)
    (done,) = ts.Study.load("s", url).trials
    ref = ts.Study(space, name="ref")
    ref.enqueue(done.params)  # (worker processes draw from their own streams)
    ref.optimize(objective(lambda p: mlp(), DATA, base=base, checkpoint_root=tmp_path / "ref"), n_trials=1)
    assert done.state is ts.TrialState.COMPLETE and done.system.resumed_step == 1, done
    assert dict(done.intermediate) == dict(ref.trials[0].intermediate)


def test_a_held_trial_s_error_names_the_step_of_its_recorded_checkpoint_where_older_than_its_last_report(
        small_fs: Path, tmp_path: Path) -> None:  # noqa: F811
    """With ``checkpoint_every=2`` the trial held on a full disk at validation 4's save reported step 3 with no
    checkpoint: the error said "paused at step 3, its last recorded checkpoint kept", where that checkpoint holds
    step 2 and the next optimize trains step 3 again from it."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = TrainConfig(epochs=4, batch_size=16, checkpoint_every=2)  # validations 2 and 4 save a "last" file
    study = ts.Study(space, storage=url, name="s", sampler="random", seed=0, pruner=PauseAt(99))
    obj = objective(lambda p: mlp(), DATA, base=base, checkpoint_root=small_fs / "ck",
                    callbacks=[_FillsTheDiskAt(small_fs, 3, tmp_path / "filled")])
    with pytest.raises(CheckpointError) as err:
        study.optimize(obj, n_trials=1)
    said = str(err.value)
    assert "trial 0 was paused at step 3, its last recorded checkpoint kept, that of step 2 (the steps after it are " \
           "trained again): once there is room, the next optimize resumes it first" in said, said
    (held,) = ts.Study.load("s", url).trials
    assert held.state is ts.TrialState.PAUSED and sorted(held.intermediate) == [1, 2, 3], held
    assert held.attrs["checkpoint"].endswith("last-000000010.pt"), held.attrs  # 5 batches an epoch: step 2's
    with pytest.raises(CheckpointError) as err:  # the disk still full: resumed, it replays step 3 and meets it again
        study.optimize(obj, n_trials=0)
    said = str(err.value)  # that run recorded no checkpoint of its own: the step was not known, and not said
    assert "trial 0 (resumed after a pause) was paused again, its checkpoint and promotion kept, that of step 2 " \
           "(the steps after it are trained again): once there is room" in said, said
    assert ts.Study.load("s", url).trials[0].system.checkpoint_step == 2  # recorded with it, for the runs after
    (small_fs / "filler").unlink()
    study.optimize(obj, n_trials=0)
    (done,) = ts.Study.load("s", url).trials
    ref = ts.Study(space, name="ref")
    ref.enqueue(done.params)
    ref.optimize(objective(lambda p: mlp(), DATA, base=base, checkpoint_root=tmp_path / "ref"), n_trials=1)
    assert done.state is ts.TrialState.COMPLETE and dict(done.intermediate) == dict(ref.trials[0].intermediate)


def _saves_then_reports(folder: Path, marker: Path, trial: Any) -> float:
    """An objective of its own that records each epoch's checkpoint before that epoch's report (saying the step it
    holds), under a pruner that pauses; the disk at ``folder`` fills once epoch 2 is reported, so epoch 3's save
    meets it."""
    from test_faults_storage import _fill

    for epoch in range(max(trial.start_step, 1), 5):
        path = checkpoint.save(folder / f"t{trial.number}-{epoch}.pt", {"model": {}, "step": epoch})
        trial.set_attr("checkpoint", str(path), step=epoch)
        trial.report(1.0 / epoch, epoch)
        if epoch == 2 and not marker.exists():
            marker.touch()
            _fill(folder)
    return 0.0


def test_a_checkpoint_recorded_before_its_step_s_report_is_named_by_the_step_it_holds(
        small_fs: Path, tmp_path: Path) -> None:  # noqa: F811
    """set_attr("checkpoint") before the report of the step it holds was taken to hold the step reported before
    (the error said "that of step 1" of step 2's checkpoint); ``step=`` says which, and a step= for any other
    attribute is refused by name."""
    import functools

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0, pruner=PauseAt(99))
    with pytest.raises(CheckpointError) as err:
        study.optimize(functools.partial(_saves_then_reports, checkpoint.secure_dir(small_fs / "ck"),
                                         tmp_path / "filled"), n_trials=1)
    said = str(err.value)
    assert "trial 0 was paused at step 2, its last recorded checkpoint kept: once there is room" in said, said
    (held,) = ts.Study.load("s", url).trials
    assert held.system.checkpoint_step == 2 and held.attrs["checkpoint"].endswith("t0-2.pt"), held
    trial = study.ask()
    with pytest.raises(ValueError, match=r"set_attr\('note', \.\.\., step=3\): step= is the step a checkpoint holds"):
        trial.set_attr("note", "x", step=3)


class _FillsTheDiskAtValidation:
    """A callback, listed before the study's reporter, that fills ``disk`` at validation ``n`` (from 1), once
    (``marker``, outside that disk): that validation's report is written, a checkpoint saved after it refused."""

    def __init__(self, disk: Path, n: int, marker: Path) -> None:
        self.disk, self.n, self.marker = disk, n, marker

    def on_eval(self, trainer: Trainer, record: Any) -> None:
        from test_faults_storage import _fill

        if record.index + 1 == self.n and not self.marker.exists():
            self.marker.touch()
            _fill(self.disk)


@pytest.mark.parametrize("jobs", [1, 2], ids=["inline", "processes"])
def test_a_trial_the_pruner_paused_whose_pause_checkpoint_the_full_disk_refused_stays_paused_not_run_on_unpromoted(
        small_fs: Path, tmp_path: Path, jobs: int) -> None:  # noqa: F811
    """The pruner paused a trial at a validation ``checkpoint_every`` had skipped; the checkpoint the pause writes
    met a full disk. The trial was held as for a full disk anywhere else, and the next optimize resumed it first,
    before any promotion, and trained it past the rung it was paused at (to the end here, under a pruner that
    promotes nothing). It is paused as the pruner asked, at its last recorded checkpoint: left paused until
    promoted, then resumed from that checkpoint to reports equal to an uninterrupted run's."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    url = f"sqlite:///{tmp_path / 's.db'}"
    base = TrainConfig(epochs=4, batch_size=16, checkpoint_every=2)  # validation 3 writes no "last" file
    study = ts.Study(space, storage=url, name="s", sampler="random", seed=0, pruner=PauseAt(3))
    obj = objective(lambda p: mlp(), DATA, base=base, checkpoint_root=small_fs / "ck",
                    callbacks=[_FillsTheDiskAtValidation(small_fs, 3, tmp_path / "filled")])
    with pytest.raises(CheckpointError) as err:
        study.optimize(obj, n_trials=1, n_jobs=jobs)
    (paused,) = ts.Study.load("s", url).trials
    assert paused.state is ts.TrialState.PAUSED and paused.system.held is None, paused.system  # not held
    said = str(err.value)
    assert "cannot save the checkpoint" in said and "trial 0 was paused at step 3 as its pruner asked, its last " \
           "recorded checkpoint kept, that of step 2 (the steps after it are trained again): a promotion resumes it " \
           "from there" in said, said
    assert sorted(paused.intermediate) == [1, 2, 3] and paused.attrs["checkpoint"].endswith("last-000000010.pt")
    assert Path(paused.attrs["checkpoint"]).is_file(), paused.attrs
    (small_fs / "filler").unlink()
    study.optimize(obj, n_trials=0)  # nothing promoted: nothing to run
    (still,) = ts.Study.load("s", url).trials
    assert still.state is ts.TrialState.PAUSED and still.system.n_resumes == 0, still
    study.pruner = PauseAndPromote()
    study.optimize(obj, n_trials=0)
    (done,) = ts.Study.load("s", url).trials
    ref = ts.Study(space, name="ref")
    ref.enqueue(done.params)
    ref.optimize(objective(lambda p: mlp(), DATA, base=base, checkpoint_root=tmp_path / "ref"), n_trials=1)
    assert done.state is ts.TrialState.COMPLETE and done.system.n_resumes == 1, done
    assert dict(done.intermediate) == dict(ref.trials[0].intermediate)


def test_tunesmith_tell_deletes_the_checkpoints_of_the_paused_trials_it_ends(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tunesmith tell N --state pruned`` ended a paused trial and left its last and best checkpoints on disk
    until another trial of the study started (none may: a fine-tune's user frees disk with it): it deletes
    them as that start's sweep would, and leaves a folder that is a symbolic link, as the sweep does."""
    from tunesmith.cli import main

    db = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=db, sampler="random", seed=0, name="s",
                     pruner=PauseAt(2))
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path / "ck")
    study.optimize(obj, n_trials=2)
    ended, linked = (Path(t.attrs["checkpoint"]).parent for t in study.trials)
    assert ".study" in files(ended) and "best.pt" in files(ended)
    kept = tmp_path / "kept"
    linked.rename(kept)
    linked.symlink_to(kept)
    assert main(["tell", "s", "0", "1", "--state", "pruned", "--storage", db]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"deleted the checkpoints of 1 trial in {ended}" in out, out
    assert not ended.exists()
    assert files(kept) >= {"best.pt", ".study"} and linked.is_symlink()  # a link is never followed
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED] * 2


def _paused_two(tmp_path: Path, **kw: Any) -> tuple[str, list[Path]]:
    """A study ``s`` in SQLite with two trials paused by ``ts.train``'s objective (``kw``: its options), and their
    folders."""
    db = f"sqlite:///{tmp_path / 's.db'}"
    return db, _paused(db, tmp_path / "ck", 2, **kw)


def _paused(url: str, root: Path, n: int, **kw: Any) -> list[Path]:
    """``n`` trials of a new study ``s`` of ``url`` paused by ``ts.train``'s objective (checkpoints under
    ``root``; ``kw``: its options); their folders."""
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, sampler="random", seed=0, name="s",
                     pruner=PauseAt(2))
    study.optimize(objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16),
                             checkpoint_root=root, **kw), n_trials=n)
    return [Path(t.attrs["checkpoint"]).parent for t in study.trials]


class PromoteOne(PauseAt):
    """Promotes trial ``number`` alone (another worker's study, resuming it)."""

    def __init__(self, number: int) -> None:
        super().__init__(2)
        self.number = number

    def promotable(self, trials, direction) -> list[int]:  # type: ignore[no-untyped-def]
        return [t.number for t in trials if t.number == self.number and t.state is ts.TrialState.PAUSED]


def test_tunesmith_tell_ends_the_others_of_a_trial_a_worker_resumed_midway_and_frees_their_folders(
        shared_storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``tunesmith tell s 0 1 2`` where a worker resumed trial 1 after tell read the study: trial 0 was pruned,
    its folder left on disk (the folders were deleted only once every trial was told), trial 1 refused and
    trial 2 left paused, the error saying "ended before it: [0]" alone. Each trial is told on its own: 0 and 2
    end, their folders deleted, 1 runs on with its folder, and the output names each outcome."""
    from tunesmith.cli import main

    folders = _paused(shared_storage_url, tmp_path / "ck", 3)
    worker = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=shared_storage_url, name="s",
                      sampler="random", seed=0, pruner=PromoteOne(1))
    tell = ts.Study.tell
    resumed: list[ts.Trial] = []

    def a_worker_resumes_trial_1_first(self: ts.Study, trial: Any, *args: Any, **kwargs: Any) -> Any:
        if trial.number == 1 and not resumed:  # after tell read the study, before it writes trial 1
            resumed.append(worker.ask())
        return tell(self, trial, *args, **kwargs)

    monkeypatch.setattr(ts.Study, "tell", a_worker_resumes_trial_1_first)
    assert main(["tell", "s", "0", "1", "2", "--state", "pruned", "--storage", shared_storage_url]) == 2
    assert resumed[0].number == 1 and resumed[0].is_resumed
    out, err = (" ".join(text.split()) for text in capsys.readouterr())
    assert "study 's': 2 paused trials pruned: 0, 2" in out, out
    assert f"deleted the checkpoints of 2 trials in {folders[0]}, {folders[2]}" in out, out
    assert "not pruned: trial 1 is no longer paused but running" in err and "(the 2 other trials were pruned)" in err
    assert [t.state for t in ts.Study.load("s", shared_storage_url).trials] == [
        ts.TrialState.PRUNED, ts.TrialState.RUNNING, ts.TrialState.PRUNED]
    assert not folders[0].exists() and not folders[2].exists()
    assert {"best.pt", ".study"} <= files(folders[1])  # the running trial's, which it resumed from


def test_tunesmith_tell_says_a_folder_others_may_write_is_left_not_deleted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trial folder the checkpoint checks refuse (writable by others: anyone could have planted files there) is
    never emptied, by the sweep or by ``tunesmith tell``; tell said "deleted the checkpoints of 1 trial in" it
    all the same, its files still there. It says the folder is left, why, and what to do."""
    from tunesmith.cli import main

    db, (shared, own) = _paused_two(tmp_path)
    shared.chmod(0o777)
    assert main(["tell", "s", "0", "1", "--state", "pruned", "--storage", db]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"deleted the checkpoints of 1 trial in {own}" in out and not own.exists(), out
    assert "trial 0's checkpoints are left as they are" in out and "chmod go-w" in out, out
    assert {"best.pt", ".study"} <= files(shared)
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED] * 2


def test_tunesmith_tell_keeps_the_files_of_an_objective_that_keeps_all(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``keep="all"`` deletes nothing, a pruned trial's files included; ``tunesmith tell``, which cannot see the
    objective's options, deleted the folders of the paused trials it ended. The objective records keep="all"
    on its trials, and tell leaves their folders."""
    from tunesmith.cli import main

    db, folders = _paused_two(tmp_path, keep="all")
    assert main(["tell", "s", "0", "1", "--state", "pruned", "--storage", db]) == 0
    assert "deleted" not in capsys.readouterr().out
    assert all({"best.pt", ".study"} <= files(f) for f in folders)
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED] * 2


def test_tunesmith_tell_deletes_no_folder_a_stored_path_names_outside_the_trial_s_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer of the database points a paused trial's recorded checkpoint at another study's paused trial of
    the same number (its folder under the same root, named by path or through ``..``), or at a folder that is no
    trial's: ``tunesmith tell`` ends the trial and deletes nothing there (the other study's mark names another
    study; a folder without the ``trial-<n>`` name or a mark is never emptied)."""
    import sqlite3

    from tunesmith.cli import main

    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path / "ck")
    for name in ("s", "o"):
        ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, sampler="random", seed=0, name=name,
                 pruner=PauseAt(2)).optimize(obj, n_trials=3)
    own = [Path(t.attrs["checkpoint"]) for t in ts.load_study("s", url).trials]
    other = Path(ts.load_study("o", url).trials[0].attrs["checkpoint"])
    plain = tmp_path / "mine" / "trial-2"  # the user's own folder, no mark
    plain.mkdir(parents=True)
    (plain / "best.pt").write_bytes(b"the user's")
    planted = {0: str(other), 1: str(own[1].parent / ".." / ".." / other.parent.parent.name / "trial-1" / other.name),
               2: str(plain / "best.pt")}
    with sqlite3.connect(db) as c:
        for number, path in planted.items():
            c.execute("UPDATE ts_trials SET attrs = json_set(attrs, '$.checkpoint', ?) WHERE number = ? AND "
                      "study_id = (SELECT study_id FROM ts_studies WHERE name = 's')", (path, number))
    before = {p: files(p) for p in (other.parent, other.parent.parent / "trial-1", plain)}
    assert all(before.values())
    assert main(["tell", "s", "0", "1", "2", "--state", "pruned", "--storage", url]) == 0
    assert "deleted" not in capsys.readouterr().out
    assert {p: files(p) for p in before} == before
    assert [t.state for t in ts.load_study("s", url).trials] == [ts.TrialState.PRUNED] * 3
    assert [t.state for t in ts.load_study("o", url).trials] == [ts.TrialState.PAUSED] * 3


def _one_paused_trial(tmp_path: Path) -> tuple[str, Path]:
    """Study "s" in ``tmp_path``/s.db with one trial paused by ``ts.train``'s objective (checkpoints under
    ``tmp_path``/ck): the storage's URL and the trial's recorded checkpoint."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    obj = objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path / "ck")
    ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, sampler="random", seed=0, name="s",
             pruner=PauseAt(2)).optimize(obj, n_trials=1)
    return url, Path(ts.load_study("s", url).trials[0].attrs["checkpoint"])


def _record_checkpoint(tmp_path: Path, path: Path) -> None:
    """As a writer of the database: trial 0's recorded checkpoint is ``path``."""
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("UPDATE ts_trials SET attrs = json_set(attrs, '$.checkpoint', ?) WHERE number = 0", (str(path),))


def test_tunesmith_tell_deletes_in_the_folder_it_checked_where_a_stored_path_leads_through_a_shared_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer of the database leads a paused trial's checkpoint through a folder in a shared temporary folder and
    ``..`` to the trial's own folder; once tell has checked that folder, the folder's maker swaps it for a link, so
    that the same path now leads to a copy of the study's checkpoint root elsewhere (a backup: the same marks).
    Before, tell checked one folder and deleted the other's checkpoints (each delete walked the stored path again);
    the folder is now resolved once, and what it checked is what it empties."""
    from tunesmith.cli import main
    from tunesmith.train import retention

    url, own = _one_paused_trial(tmp_path)
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "ck", backup / "ck")
    (backup / "a" / "b").mkdir(parents=True)
    kept = {p: p.read_bytes() for p in (backup / own.relative_to(tmp_path)).parent.iterdir()}
    shared = tmp_path / "shared"
    (shared / "x").mkdir(parents=True)
    shared.chmod(0o1777)
    through = shared / "x" / ".." / ".." / own.relative_to(tmp_path)
    _record_checkpoint(tmp_path, through)
    checked = retention.ckpt.check_dir
    swapped: list[str] = []

    def then_swapped(path: Any) -> None:
        checked(path)
        if not swapped:  # the maker of shared/x, after tell's check: shared/x/../.. now leads into the backup
            swapped.append(str(path))
            (shared / "x").rename(shared / "x-was")
            (shared / "x").symlink_to(backup / "a" / "b")

    monkeypatch.setattr(retention.ckpt, "check_dir", then_swapped)
    assert main(["tell", "s", "0", "--state", "pruned", "--storage", url]) == 0
    assert swapped
    assert {p: p.read_bytes() if p.is_file() else None for p in kept} == kept  # the backup's checkpoints whole
    assert not own.parent.exists()

def test_tunesmith_tell_names_a_freed_folder_whose_stored_path_holds_terminal_escapes_without_running_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer of the database points a paused trial's checkpoint at its own folder through a folder whose name
    holds terminal escapes (one anyone may make in a shared temporary folder, then ``..``): ``tunesmith tell``
    deletes the trial's own checkpoints, as it should, and names the folder as resolved, the escapes not sent to
    the terminal (they cleared it and set its title)."""
    from tunesmith.cli import main

    url, own = _one_paused_trial(tmp_path)
    escapes = tmp_path / "\x1b]0;owned\x07\x1b[2J"
    escapes.mkdir()
    through = escapes / ".." / own.relative_to(tmp_path)
    assert through.is_file()
    _record_checkpoint(tmp_path, through)
    assert main(["tell", "s", "0", "--state", "pruned", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert f"deleted the checkpoints of 1 trial in {own.parent}\n" in out, out
    assert "\x1b" not in out and "\x07" not in out, out
    assert not own.exists()


def test_tunesmith_tell_names_a_freed_folder_whose_real_name_holds_terminal_escapes_without_running_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The folder tell names is the resolved one, so the test above keeps escapes of a ``..`` route out; a
    checkpoint root whose own name holds them (a name taken from a run's config or an unpacked archive) is said as
    it is resolved: escaped (``spoken``), never sent to the terminal raw."""
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 's.db'}"
    (own,) = _paused(url, tmp_path / "\x1b]0;owned\x07\x1b[2J", 1)
    assert main(["tell", "s", "0", "--state", "pruned", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "deleted the checkpoints of 1 trial in" in out and "\x1b" not in out and "\x07" not in out, out
    assert not own.exists()


def test_tunesmith_tell_ends_every_trial_and_frees_the_rest_where_a_worker_s_sweep_deleted_a_folder_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``tunesmith tell s 0 1`` while another worker's trial start sweeps: the sweep deletes trial 0's folder
    after tell found it and before tell checked it. The check's "does not exist" (a CheckpointError, no OSError)
    came out of tell's clean-up: exit 2 after both trials were ended, and trial 1's folder was left. The folder
    gone is nothing left to delete: tell exits 0, frees trial 1's and names it alone."""
    from tunesmith.cli import main
    from tunesmith.train import retention

    db, (swept, own) = _paused_two(tmp_path)
    found = retention.releasable

    def then_swept(trial: Any) -> Path | None:
        folder = found(trial)
        if folder == swept:  # the other worker's sweep (trial 0 is pruned now), between the look and the check
            retention.retire(folder, "none")
        return folder

    monkeypatch.setattr(retention, "releasable", then_swept)
    assert main(["tell", "s", "0", "1", "--state", "pruned", "--storage", db]) == 0
    out, err = (" ".join(text.split()) for text in capsys.readouterr())
    assert f"deleted the checkpoints of 1 trial in {own}" in out and "left as they are" not in out, (out, err)
    assert not swept.exists() and not own.exists()
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED] * 2


TELL_KILLED_BEFORE_ITS_DELETE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{src!r}]
    from tunesmith.cli import main
    from tunesmith.train import retention

    def killed(trial):
        os.kill(os.getpid(), signal.SIGKILL)  # the trial's end written, its folder not yet deleted

    retention.release = killed
    sys.exit(main(["tell", "s", "0", "--state", "pruned", "--storage", {db!r}]))
    """
)


def test_tunesmith_tell_killed_before_it_deleted_the_checkpoints_says_so_when_run_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tunesmith tell`` SIGKILLed (or stopped by Ctrl-C) between ending a paused trial and deleting its folder: run
    again, it was refused ("it is pruned") without a word of the folder left on disk. It says where the
    checkpoints are and what deletes them; the study's next trial start does, and leaves the paused trial's."""
    from tunesmith.cli import main

    db, (ended, paused) = _paused_two(tmp_path)
    code = TELL_KILLED_BEFORE_ITS_DELETE.format(src=str(TESTS.parent / "src"), db=db)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED, ts.TrialState.PAUSED]
    assert {"best.pt", ".study"} <= files(ended)
    assert main(["tell", "s", "0", "--state", "pruned", "--storage", db]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "it is pruned; tunesmith tell ends paused trials (paused now: 1)" in err, err
    assert f"Its checkpoints are still in '{ended}'" in err, err
    assert "the study's next trial start deletes them" in err, err
    study = ts.Study.load("s", db, pruner=PauseAt(2))
    study.optimize(objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=3, batch_size=16),
                             checkpoint_root=tmp_path / "ck"), n_trials=1)
    assert not ended.exists() and {"best.pt", ".study"} <= files(paused)
    assert [t.state for t in ts.Study.load("s", db).trials] == [ts.TrialState.PRUNED] + [ts.TrialState.PAUSED] * 2
    assert main(["tell", "s", "0", "--state", "pruned", "--storage", db]) == 2
    assert "still in" not in capsys.readouterr().err  # deleted now: nothing to say


def test_a_cut_short_move_into_a_folder_a_run_went_on_in_since_overwrites_none_of_its_files(tmp_path: Path) -> None:
    """A move into earlier-* SIGKILLed before best.pt, then the earlier run resumed in that folder (its "last" files
    are there) and wrote a best.pt of its own there: the next run in the folder above finished the move into it,
    os.replace putting the old best.pt over the resumed run's. Files whose names are taken there now go into a
    folder of their own."""
    d = tmp_path / "run"
    aside, left = _cut_short_before_best(d)
    Trainer(mlp(), CFG.with_params({"epochs": 12, "keep_last": 2, "checkpoint_dir": aside})).fit(
        *DATA, resume_from=checkpoint.latest(aside))
    went_on = {name: (aside / name).read_bytes() for name in _names(aside) if name != checkpoint.MOVING}
    assert "best.pt" in went_on and went_on["best.pt"] != left
    Trainer(mlp(), CFG.with_params({"epochs": 1, "keep_last": 2, "checkpoint_dir": d})).fit(*DATA)
    assert {name: (aside / name).read_bytes() for name in _names(aside)} == went_on  # nothing overwritten
    (other,) = [p for p in d.iterdir() if p.is_dir() and p != aside]
    assert (other / "best.pt").read_bytes() == left and checkpoint.unfinished_aside(d) is None
def test_tunesmith_tell_that_loses_its_postgresql_server_midway_frees_only_the_trials_it_ended(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``tunesmith tell s 0 1 2`` whose PostgreSQL server stops after trial 0 was ended: the command fails (exit 2,
    the storage's error said), trial 0 is said ended and its folder deleted, and trials 1 and 2, whose end was
    never recorded, keep theirs (a restarted server still has them paused, resumable from those files)."""
    from pg import PostgresServer, PostgresUnavailable

    from tunesmith.cli import main
    from tunesmith.storage.sql import SQLStorage

    try:
        server = PostgresServer().__enter__()
    except (PostgresUnavailable, ImportError, OSError) as exc:
        pytest.skip(f"no PostgreSQL server could be started ({exc})")
    try:
        url = server.create_database("tell")
        folders = _paused(url, tmp_path / "ck", 3)
        tell = ts.Study.tell

        def the_server_stops_before_trial_1(self: ts.Study, trial: Any, *args: Any, **kwargs: Any) -> Any:
            if trial.number == 1:
                server.stop()
            return tell(self, trial, *args, **kwargs)

        monkeypatch.setattr(ts.Study, "tell", the_server_stops_before_trial_1)
        # the outage is said after 0.5 s of retries, not the default 30 s
        monkeypatch.setitem(SQLStorage.__init__.__kwdefaults__, "retry_window", 0.5)
        assert main(["tell", "s", "0", "1", "2", "--state", "pruned", "--storage", url]) == 2
        out, err = (" ".join(text.split()) for text in capsys.readouterr())
        assert "study 's': 1 paused trial pruned: 0" in out, out
        assert f"deleted the checkpoints of 1 trial in {folders[0]}" in out, out
        assert "tunesmith tell: error: storage" in err and "still failing after retry_window=0.5 s" in err, err
        assert not folders[0].exists() and folders[1].is_dir() and folders[2].is_dir()
        monkeypatch.undo()
        server.start()
        assert [t.state for t in ts.Study.load("s", url).trials] == [
            ts.TrialState.PRUNED, ts.TrialState.PAUSED, ts.TrialState.PAUSED]
    finally:
        server.close()


@pytest.mark.parametrize("planted", ["others_may_write", "another_user"])
def test_a_planted_cut_short_move_marker_never_draws_a_run_s_files_into_a_folder_others_control(
    tmp_path: Path, planted: str
) -> None:
    """An ``earlier-*`` folder with a ``.moving`` marker that a teammate made while the checkpoint folder was
    writable (before the ``chmod go-w`` its refusal advises): the next run "finished the move" into it, putting the
    earlier run's checkpoints in a folder that others may write or that another user owns (there to be replaced by
    a checkpoint of theirs, or deleted). Such a folder is passed over: the files go into a new folder of the user's."""
    d = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    earlier = {name: (d / name).read_bytes() for name in _names(d)}
    trap = d / "earlier-20000101-000000"
    trap.mkdir()
    (trap / checkpoint.MOVING).touch()
    if planted == "another_user":
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(trap, 65534, 65534)
        os.chown(trap / checkpoint.MOVING, 65534, 65534)
    else:
        trap.chmod(0o777)
    Trainer(mlp(), CFG.with_params({"epochs": 1, "checkpoint_dir": d})).fit(*DATA)
    assert _names(trap) == [checkpoint.MOVING]  # nothing of the user's moved in, its marker left as found
    (aside,) = [p for p in d.iterdir() if p.is_dir() and p != trap]
    assert {name: (aside / name).read_bytes() for name in _names(aside)} == earlier
    st = aside.stat()
    assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert checkpoint.unfinished_aside(d) is None


LOCKS_AS_NOBODY = textwrap.dedent(
    """
    import errno, fcntl, os, sys
    fd = os.open({d!r}, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the folder's own lock: what held every run out before
    try:
        os.open(os.path.join({d!r}, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        print("lock file opened", flush=True)
    except OSError as exc:
        print("lock file refused:", errno.errorcode[exc.errno], flush=True)
    sys.stdin.read()
    os.close(fd)
    """
)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or checkpoint.fcntl is None,
                    reason="takes a lock as another user (setuid): root only")
def test_another_user_who_may_open_a_checkpoint_folder_cannot_hold_its_writer_lock(tmp_path: Path) -> None:
    """Before: the writer lock was a flock on the folder itself, which any user who may open the folder (mode 0755,
    umask 022) may take and keep: every run there was refused (CheckpointFolderBusy) for as long as that process
    lived. The lock is a file of the user's own now, 0600, made in a folder only the user may write: another user
    can neither make it nor open it, and their lock on the folder holds nothing."""
    d = Path(tempfile.mkdtemp(prefix="tunesmith-locked-", dir="/tmp"))  # a folder another user can reach
    try:
        d.chmod(0o755)
        locker = subprocess.Popen(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
             LOCKS_AS_NOBODY.format(d=str(d))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline() == "lock file refused: EACCES\n"
            seen = []
            Trainer(mlp(), CFG.with_params({"checkpoint_dir": d, "epochs": 1}),
                    callbacks=[lambda t, r: seen.append(stat.S_IMODE(os.lstat(d / ".lock").st_mode))]).fit(
                *DATA)
        finally:
            locker.communicate("", timeout=60)
        assert seen == [0o600]  # held as a private file while the run writes
        assert _names(d) == ["best.pt", "last-000000005.pt"]  # released: the lock file deleted
    finally:
        shutil.rmtree(d)


HOLDS_TWICE_UNPRIVILEGED = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{src!r}]
    from tunesmith.train import checkpoint
    try:
        print("held", checkpoint.hold({d!r}), checkpoint.hold({d!r}))
    except checkpoint.UntrustedCheckpointFolder as exc:
        print("refused:", exc)
    """
)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or checkpoint.fcntl is None
                    or shutil.which("setpriv") is None,
                    reason="a file its owner may not open: root opens any, so the check runs without root's capabilities")
def test_a_lock_file_of_the_user_s_own_it_may_not_open_is_refused_not_passed_over(tmp_path: Path) -> None:
    """Before: a ``.lock`` of the user's own that the user may not open (0400 after a ``chmod -R a-w``) made
    ``hold`` answer None, as on a file system without locks: every run there wrote the folder unlocked, two at once
    (``held None None``). Refused now, naming the file and the fix."""
    d = Path(tempfile.mkdtemp(prefix="tunesmith-readonly-lock-", dir="/tmp"))
    try:
        (d / ".lock").touch(0o400)
        run = subprocess.run(
            [*UNPRIVILEGED, sys.executable, "-c",
             HOLDS_TWICE_UNPRIVILEGED.format(src=str(TESTS.parent / "src"), d=str(d))],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(d)})
        said = " ".join(run.stdout.split())
        assert run.returncode == 0 and said.startswith("refused:"), (said, run.stderr[-3000:])
        assert f"the lock file '{d / '.lock'}' of checkpoint folder '{d}' cannot be opened by you (mode 0400)" in said
        assert f"rm '{d / '.lock'}'" in said, said
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("planted", ["a link", "open to others", "another user's"])
def test_a_lock_file_that_is_not_the_user_s_own_and_private_is_refused_naming_it_and_the_fix(
    tmp_path: Path, planted: str
) -> None:
    """A lock file someone else could hold (another user's, one others may open, a link to where another user
    chose) is refused before anything is written, naming the file and the fix; nothing of the folder is touched."""
    if planted == "another user's" and (not hasattr(os, "getuid") or os.getuid() != 0):
        pytest.skip("chown to another user: root only")
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    lock = d / ".lock"
    if planted == "a link":
        lock.symlink_to(tmp_path / "elsewhere")
    else:
        lock.touch(0o644 if planted == "open to others" else 0o600)
        lock.chmod(0o644 if planted == "open to others" else 0o600)
        if planted == "another user's":
            os.chown(lock, 65534, 65534)
    with pytest.raises(checkpoint.UntrustedCheckpointFolder) as refused:
        Trainer(mlp(), CFG.with_params({"checkpoint_dir": d})).fit(*DATA)
    said = str(refused.value)
    assert f"the lock file '{lock}' of checkpoint folder '{d}'" in said and f"rm '{lock}'" in said, said
    assert {"a link": "is a symbolic link", "open to others": "may be opened by others (mode 0644)",
            "another user's": "belongs to another user (uid 65534"}[planted] in said, said
    assert _names(d) == [".lock"] and not (tmp_path / "elsewhere").exists()
    lock.unlink()  # as the message says
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": d})).fit(*DATA)
    assert checkpoint.latest(d) is not None and not lock.exists()
