"""A study's checkpoint folders: where a trial writes, what it may resume from, what is deleted.

``<root>/<study>-<hash>/trial-<n>`` (see :func:`checkpoint.study_folder`). A trial
resumes only when the study itself resumed it (``trial.is_resumed``), and only
from a file that resolves inside its own folder. Files nothing can resume are
deleted: a pruned or failed trial's folder, a complete trial's "last" files
(its ``best.pt`` stays with ``keep="best"``); a paused trial keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from ..paths import NotRegularFile, read_regular
from ..trial import as_count, one_line
from . import checkpoint as ckpt

logger = logging.getLogger(__name__)

#: what a finished trial keeps: "best" (its best.pt), "none", or "all" (nothing deleted)
KEEP = ("best", "none", "all")
#: the trial attribute saying its objective keeps every file (``keep="all"``): ``tunesmith tell`` then deletes none
KEEP_ALL = "keep_checkpoints"


def trial_folder(root: Path, trial: Any) -> Path:
    """The trial's own folder, absolute: the paths the study stores (``attrs["checkpoint"]``,
    ``["best_checkpoint"]``) name the same files from any working folder."""
    study = trial.study
    return ckpt.study_folder(root.absolute(), str(getattr(study, "name", "study")), getattr(study, "copy_id", None)) / \
        f"trial-{trial.number}"


def to_resume(trial: Any, folder: Path) -> str | None:
    """The checkpoint a study-resumed ``trial`` continues from, or None (a new trial).

    Refuses a path outside ``folder`` (:class:`checkpoint.CheckpointError`); a missing
    or truncated file falls back to the newest complete one no newer than it."""
    if not getattr(trial, "is_resumed", False):
        return None
    path = trial.record.attrs.get("checkpoint")
    if not path:
        return None
    if isinstance(path, str) and _paused_before(trial, path, folder):
        raise ckpt.CheckpointError(
            f"trial {trial.number}: it was paused by a tunesmith older than 2026-12-03, in "
            f"{str(Path(path).parent)!r}: that version's checkpoints load only by unpickling, which could run "
            "code, so none resumes; the trial keeps its reports. End the study's other trials paused then with "
            "study.tell(n, state='pruned') (or they fail in turn when promoted)"
        )
    if isinstance(path, str) and not _paused_before(trial, path, folder):
        path = ckpt.moved_into(path, folder)  # its checkpoint_root moved since (a relative one too)
    if not isinstance(path, str) or not ckpt.inside(path, folder):
        raise ckpt.CheckpointError(
            f"trial {trial.number}: refusing to resume from {path!r}: it is not inside the trial's own "
            f"checkpoint folder {str(folder)!r}, where the study wrote its checkpoints. Checkpoints are "
            "loaded only from there (a path in the database may have been planted). If the folder moved, "
            "pass the same checkpoint_root as the run that paused the trial; a copy of a study (copy, import) "
            "has a folder of its own: resume the trial in the study that paused it"
        )
    if folder.is_dir():  # else: deleted, or on another machine (said below)
        ckpt.check_dir(folder)
        _check_owner(trial, folder)
    if ckpt.is_complete(path):
        return path
    older = _older_complete(folder, ckpt.step_of(path))
    logger.warning(
        "trial %d: its checkpoint %s is %s (deleted, cut short, or written on another machine: give "
        "every worker the same checkpoint_root folder); %s", trial.number, one_line(path),
        "truncated" if Path(path).exists() else "missing",
        f"it resumes from the older {older}" if older else
        f"it trains again from the start, without reporting its steps 1-{trial.record.last_step} again",
    )  # fmt: skip
    return older


def _paused_before(trial: Any, path: str, folder: Path) -> bool:
    """Whether ``path`` is in ``<root>/<study name>/trial-<n>``, where versions before 2026-12-03
    (pickled checkpoints, no hashed study folder) wrote."""
    name = str(getattr(trial.study, "name", ""))
    return "/" not in name and name not in ("", ".", "..") and ckpt.inside(path, folder.parent.parent / name / folder.name)


def drop_beyond(folder: Path, resume: str) -> None:
    """Delete a resumed trial's "last" files above the step it resumes from: its run wrote them before it was
    killed, before the trial's record named them (or they were cut short), and the resumed run writes those steps
    again, and its ``best.pt`` where that run wrote it above that step. The study's record says what the trial holds,
    so they are not set aside as another run's would be."""
    step = ckpt.step_of(resume)
    if step is None or not ckpt.inside(resume, folder):
        return
    for p in ckpt.list_last(folder):
        if (ckpt.step_of(p) or 0) > step and not p.is_dir():  # a folder of that name: the trainer sets it aside
            p.unlink(missing_ok=True)
    best = ckpt.best_path(folder)
    if _written_above(best, step):  # set aside, it would stay in a branch-above-* folder no sweep deletes
        best.unlink()


def _written_above(best: Path, step: int) -> bool:
    """Whether ``best`` (a resumed trial's ``best.pt``) holds a step above ``step``, its pickle read, not its tensors.
    One that cannot be read is left to the trainer (made again from the run's own file, or set aside)."""
    try:
        written = ckpt.load(best, map_location="meta").get("step") if best.is_file() else None
    except (OSError, ckpt.CheckpointError):
        return False
    return isinstance(written, int) and written > step


def _older_complete(folder: Path, step: int | None) -> str | None:
    if step is None:
        return None
    for p in reversed(ckpt.list_last(folder)):
        s = ckpt.step_of(p)
        if s is not None and s <= step and ckpt.is_complete(p):
            return str(p)
    return None


def start_fresh(folder: Path, trial: Any = None) -> None:
    """A new trial: files left in its folder (a trial of its number that did not finish) are not
    its own; the folder is marked as ``trial``'s study's (see :func:`_check_owner`). A folder that
    another study marked (two studies made before ids, of one name, sharing a root) is refused,
    never emptied: its trial may be paused there."""
    if folder.is_dir():
        if _marked_by_another(trial, folder / OWNER):
            raise ckpt.CheckpointError(
                f"trial {trial.number}: refusing to start in {str(folder)!r}: another study named "
                f"{str(trial.study.name)!r} (in another storage, or deleted since) wrote it, and emptying it "
                "could delete that study's paused trial. Give each study its own checkpoint_root "
                "(objective(..., checkpoint_root=...)), or delete that folder if its study is gone"
            )
        try:
            retire(folder, "none")
        except OSError as exc:  # e.g. a checkpoint's name taken by a folder: the trial would write there
            raise ckpt.CheckpointError(
                f"trial {trial.number}: cannot start in {str(folder)!r}: {str(exc.filename or folder)!r}, left by "
                f"an earlier run of this trial number, cannot be deleted ({exc.strerror or exc}); delete or move "
                "it by hand and run the trial again"
            ) from exc
    if _owner(trial) is not None:
        ckpt.secure_dir(folder)
        try:
            mark(trial, folder / OWNER, exclusive=True)
        except BaseException:  # a full disk refused the marker: the folder secure_dir checked as ours stays, empty
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
            raise


def mark(trial: Any, path: Path, *, exclusive: bool = False) -> None:
    """Write ``path``, naming the study of ``trial`` (its creation time), unless it has none (a Ray
    actor's trial of a study in memory); ``exclusive``: a file there already is an error."""
    owner = _owner(trial)
    if owner is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
                 | getattr(os, "O_NOFOLLOW", 0), 0o600)  # fmt: skip
    try:
        with os.fdopen(fd, "w") as f:
            f.write(owner)
    except OSError as exc:  # a full disk: an empty marker would name no study
        path.unlink(missing_ok=True)
        no_room = ckpt.out_of_room(path, exc, ckpt.TRAIN_ROOM)
        if no_room is None:
            raise
        raise no_room from exc


#: the file of a trial's folder naming the study that wrote it (its creation time)
OWNER = ".study"


def _owner(trial: Any) -> str | None:
    created = getattr(getattr(trial, "study", None), "created", None)
    return None if not isinstance(created, float) else f"created {created!r}\n"


def _check_owner(trial: Any, folder: Path) -> None:
    """Refuse to resume from a folder that another study of the same name (in another storage)
    marked as its own: with the default checkpoint root both write to ``<name>-<hash>``. An
    unmarked folder (written before marks were) is taken."""
    check_mark(trial, folder / OWNER, folder, "a checkpoint root's folder",
               "Give each study its own checkpoint_root (objective(..., checkpoint_root=...))")


def _marked_by_another(trial: Any, path: Path) -> bool:
    """Whether the mark at ``path`` (:func:`mark`) names a study other than ``trial``'s; no mark
    (written before marks were, or for a study that knows no creation time) is no one else's."""
    if _owner(trial) is None:
        return False
    try:  # opened first, then looked at: a FIFO swapped into a shared folder after a check would block the read
        written = read_regular(path, 256).decode("utf-8", "replace")
    except (FileNotFoundError, NotRegularFile):
        return False
    return not _same_time(written, trial.study.created)


def check_mark(trial: Any, path: Path, written_to: Path, shared: str, fix: str) -> None:
    """Refuse to resume ``trial`` from ``written_to`` when the mark at ``path`` (:func:`mark`) names
    another study of its name; no mark (written before marks were) is no refusal."""
    if _marked_by_another(trial, path):
        raise ckpt.CheckpointError(
            f"trial {trial.number}: refusing to resume from {str(written_to)!r}: another study named "
            f"{str(trial.study.name)!r} (in another storage) wrote it since this one paused the trial: two studies of "
            f"one name share {shared}. {fix}; this trial cannot resume from there"
        )


def _same_time(written: str, created: float) -> bool:
    """Whether a mark names the study created at ``created``, to 10 microseconds: a database may
    print its creation time with 15 digits to one process and 17 to another (PostgreSQL's
    ``extra_float_digits`` of a role)."""
    word, _, value = written.strip().partition(" ")
    try:
        return word == "created" and abs(float(value) - created) < 1e-5
    except ValueError:
        return False


def retire(folder: Path, keep: str) -> bool:
    """Delete what nothing can resume from ``folder``; whether ``best.pt`` was kept."""
    if keep == "all" or not folder.is_dir():
        return folder.is_dir()
    try:
        ckpt.check_dir(folder)
    except ckpt.CheckpointError:
        return True  # not ours to clean
    ckpt.rotate(folder, 0)
    ckpt.clean_stale(folder)
    best = ckpt.best_path(folder)
    if keep == "none":
        best.unlink(missing_ok=True)
    elif best.is_file():
        _weights_only(best)
    if not best.is_file():  # nothing resumes it now; a kept best.pt stays marked as its study's
        (folder / OWNER).unlink(missing_ok=True)
    ckpt.drop_empty(folder)  # only when empty (but for a killed run's lock file)
    return best.is_file()


#: what a finished trial's best.pt keeps: enough to use the model, not to resume training
USE_KEYS = ("format", "model", "model_meta", "step", "epoch", "history", "config")


def _weights_only(path: Path) -> None:
    """Rewrite a finished trial's best checkpoint without optimizer and random states."""
    try:
        state = ckpt.load(path)
    except (ckpt.CheckpointError, OSError) as exc:
        logger.warning("could not slim %s: %s", path, exc)
        return
    if "optimizer" in state:
        ckpt.save(path, {k: state[k] for k in USE_KEYS if k in state}, room=ckpt.TRAIN_ROOM)


def sweep(trial: Any, study_dir: Path, keep: str) -> None:
    """Retire the folders of the study's other finished trials (pruned when abandoned,
    failed with a lost worker) and remove temporary files of dead writers; a folder another
    study of its name marked (:func:`start_fresh`), or a symbolic link, is left as it is."""
    trials = getattr(trial.study, "trials", None)
    if keep == "all" or trials is None or not study_dir.is_dir():
        return
    states = {t.number: str(t.state) for t in trials}
    for sub in study_dir.iterdir():
        number = as_count(sub.name.removeprefix("trial-")) if sub.name.startswith("trial-") else None
        # a link (a folder moved elsewhere by hand) is never followed: what it points to is not the root's
        if number is None or number == trial.number or sub.is_symlink():
            continue
        try:  # a mark that cannot be read (or vanished as another worker retired the folder) too
            if not _marked_by_another(trial, sub / OWNER):
                _tidy(sub, states.get(number), keep)
        except OSError as exc:  # housekeeping: the trial starting here must not fail for it
            if str(sub) not in _UNTIDY:
                _UNTIDY.add(str(sub))
                logger.warning("could not tidy %s (%s: %s): left as it is; delete it by hand if nothing "
                               "resumes from it. (Said once per folder in each process.)", sub, type(exc).__name__, exc)


#: the folders :func:`sweep` could not tidy, said once each
_UNTIDY: set[str] = set()


def _tidy(sub: Path, state: str | None, keep: str) -> None:
    """Retire another trial's folder as its state allows (``sweep``)."""
    if state in ("pruned", "failed"):
        retire(sub, "none")
    elif state == "complete":
        retire(sub, keep)
    elif sub.is_dir():
        ckpt.clean_stale(sub)


def release(trial: Any) -> Path | None:
    """Delete the checkpoints of ``trial``, a paused trial just ended for good (pruned or failed by
    ``tunesmith tell``), as the next trial start's :func:`sweep` would: the folder its recorded checkpoint
    is in, only where that is an objective's own ``trial-<n>`` folder marked as this study's
    (:func:`mark`), not a symbolic link; the folder released, or None (left as it is: another layout, an
    unmarked folder, a path that is not this trial's, a trial whose objective keeps all, :data:`KEEP_ALL`).
    A folder :func:`checkpoint.check_dir` refuses (another user's, or one others may write) raises its
    :class:`checkpoint.UntrustedCheckpointFolder`, a ``PermissionError``: nothing in it is deleted, as the
    sweep deletes nothing there. A folder deleted meanwhile (a trial start's sweep in another worker) is None:
    nothing of it is left."""
    folder = releasable(trial)
    if folder is None:
        return None
    try:
        ckpt.check_dir(folder)  # else retire deletes nothing, and the folder would be said deleted
        retire(folder, "none")
    except (OSError, ckpt.CheckpointError):
        if not os.path.lexists(folder):
            return None
        raise
    return folder


def releasable(trial: Any) -> Path | None:
    """The folder :func:`release` would delete for ``trial`` (its objective's own, marked as its study's, a
    checkpoint recorded there), or None. Resolved (links and ``..`` followed) once, here: a stored path led
    through a folder that another user may swap (``/tmp/theirs/../..``, written by a writer of the database) would
    lead each of the deletes after the checks elsewhere, into a folder of the same names (a copy of the root)."""
    path = trial.record.attrs.get("checkpoint")
    if not isinstance(path, str) or _owner(trial) is None or trial.record.attrs.get(KEEP_ALL) == "all":
        return None
    named = Path(path).parent
    if named.name != f"trial-{trial.number}" or named.is_symlink():
        return None
    folder = Path(os.path.realpath(named))
    if folder.name != named.name or not (folder / OWNER).is_file():
        return None
    return None if _marked_by_another(trial, folder / OWNER) else folder
