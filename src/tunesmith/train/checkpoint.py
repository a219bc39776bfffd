"""Checkpoints: model, optimizer, schedule, step, history and every random state.

A checkpoint is one ``torch.save`` file of tensors and plain values (numbers,
strings, lists, dicts), loaded with ``torch.load(weights_only=True)``: a file
that holds anything else is refused, never unpickled. Files are written
atomically and durably (a temporary file ``.<name>~<host>~<pid>~<random>.tmp``, synced to disk,
then renamed, the folder synced), so a run killed while saving, or a power cut, leaves the
previous one intact; :func:`clean_stale` removes the temporary files of writers that died.
Folders are created 0700 and files 0600; a folder owned by another user or writable by group
(but the user's private group, as umask 002 leaves it) or others is refused (:func:`secure_dir`).
"Last" checkpoints are rotated (``keep_last`` newest stay); "best" is one file, a hard link to
the "last" file of the same step when there is one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import secrets
import socket
import stat
import time
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ..exceptions import OutOfRoom, TunesmithError, UntrustedPathError
from ..paths import (
    NotRegularFile,
    every_user_may_add,
    foreign_link_on,
    open_regular,
    own_group,
    study_folder,
)
from ..storage.base import pid_alive

try:
    import fcntl
except ImportError:  # Windows: no advisory lock on a folder; two runs in one folder are not refused there
    fcntl = None  # type: ignore[assignment]


class CheckpointError(TunesmithError, ValueError):
    """A checkpoint or checkpoint folder that is refused: unreadable, unsafe, or not this run's (a
    ``ValueError`` too)."""


class CheckpointNoRoom(CheckpointError, OutOfRoom):  # noqa: N818 - a kind of CheckpointError
    """A checkpoint the disk (or a quota, or ``ulimit -f``) refused for room."""


class UntrustedCheckpointFolder(CheckpointError, UntrustedPathError):  # noqa: N818 - a kind of CheckpointError
    """A checkpoint folder another user owns, may write, or could swap for a link (a ``PermissionError``
    too, as every :class:`~tunesmith.exceptions.UntrustedPathError`)."""


class CheckpointFolderBusy(CheckpointError):  # noqa: N818 - a kind of CheckpointError
    """A checkpoint folder that another run (a process, or another Trainer of this one) is writing now."""


class CheckpointMismatch(CheckpointError):  # noqa: N818 - a kind of CheckpointError
    """A sound checkpoint written for another model (tensors, shapes, frozen part) or other
    optimizer settings than the run that would resume from it."""


__all__ = [
    "CheckpointError", "CheckpointFolderBusy", "CheckpointMismatch", "UntrustedCheckpointFolder", "best_path", "check_dir", "clean_stale", "cut_short", "default_root", "inside", "is_complete",
    "hold", "last_path", "latest", "link", "list_last", "load", "release", "rng_state", "rotate", "save", "secure_dir",
    "set_aside", "aside_name",
    "set_rng_state", "step_of", "study_folder", "unfinished_aside", "end_cut_short",
]

_LAST = re.compile(r"^last-(\d{9})\.pt$")
_TMP = re.compile(r"^\.(?P<name>[^~]+)~(?P<host>[^~]*)~(?P<pid>\d+)(~[0-9a-f]+)?\.tmp$")
_OLD_TMP = re.compile(r"^\.(?P<name>.+\.pt)\.(?P<pid>\d+)\.tmp$")  # before the host was in the name
#: temporary files of another host (whose writer cannot be checked) older than this are stale
STALE_AFTER_S = 24 * 3600.0


# -- random states, as tensors and plain values (loadable with weights_only=True) -------------
def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- folders ------------------------------------------------------------------------------------
def secure_dir(path: str | Path) -> Path:
    """Create ``path`` (``~`` expanded, and missing parents) with mode 0700, then :func:`check_dir` it."""
    p = Path(path).expanduser()
    missing = []
    q = p
    while not os.path.lexists(q) and q != q.parent:
        missing.append(q)
        q = q.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
            os.chmod(d, 0o700)
        except FileExistsError:
            pass  # another worker created it a moment ago: checked below
        except OSError as exc:
            raise CheckpointError(
                f"cannot create the checkpoint folder {str(d)!r} ({exc.strerror or exc}); pass a folder "
                "you can write to (checkpoint_root=... / checkpoint_dir=..., or set XDG_CACHE_HOME)"
            ) from exc
    check_dir(p)
    return p


def check_dir(path: str | Path) -> None:
    """Refuse a checkpoint folder that someone else could have planted files in."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint folder {str(p)!r} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"checkpoint folder {str(p)!r} is not a folder")
    if not hasattr(os, "getuid"):  # Windows: no POSIX owner or mode bits to check
        return
    if st.st_uid != os.getuid():
        raise UntrustedCheckpointFolder(
            f"checkpoint folder {str(p)!r} belongs to another user (uid {st.st_uid}; you are uid "
            f"{os.getuid()}): its owner could plant checkpoints there. Use a folder of your own "
            "(checkpoint_root=... / checkpoint_dir=...), or remove that folder"
        )
    if _others_may_write(st):
        who = " and ".join(w for bit, w in ((0o020, "group"), (0o002, "others")) if st.st_mode & bit)
        raise UntrustedCheckpointFolder(
            f"checkpoint folder {str(p)!r} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"anyone who can write there can plant a checkpoint. Fix it with: chmod go-w {str(p)!r} "
            "(tunesmith creates its folders with mode 0700)"
        )
    _check_parent(p)


def _others_may_write(st: os.stat_result) -> bool:
    """Whether users other than this one may write a file of this ``st`` (its stat): everyone may, or its group
    may, unless that group is the user's private one (umask 002 with a group per user: the user's own)."""
    return bool(st.st_mode & 0o002 or st.st_mode & 0o020 and not own_group(st.st_gid))


def _check_parent(p: Path) -> None:
    """Refuse a folder that another user can swap: a link of theirs, or an entry of a folder they
    own or that all may write without the sticky bit (``<temp>/tunesmith-lightning`` made first by someone
    else: its owner could replace a study's folder by a link to any folder of the user's)."""
    link = os.lstat(p)
    parent = p.absolute().parent
    st = os.stat(parent)
    mine = (0, os.getuid())
    # group-writable parents pass (with a private group per user, umask 002, every folder is one; a team's group is
    # the team's), but not the user's primary group where every user shares it (users): every_user_may_add
    everyone = None if st.st_mode & stat.S_ISVTX else every_user_may_add(st)
    if link.st_uid not in mine or st.st_uid not in mine or everyone:
        whose = (f"a link of uid {link.st_uid}" if link.st_uid not in mine
                 else f"in {str(parent)!r}, which " + (f"belongs to uid {st.st_uid}" if st.st_uid not in mine
                                                      else f"others can write (mode {stat.S_IMODE(st.st_mode):04o})"
                                                      if st.st_mode & stat.S_IWOTH else str(everyone)))
        raise UntrustedCheckpointFolder(
            f"checkpoint folder {str(p)!r} is {whose}: another user could swap it for a folder of their "
            "choosing. Use a folder of your own (checkpoint_root=... / checkpoint_dir=...)"
            + (f", or chmod {'o' if st.st_mode & stat.S_IWOTH else 'g'}-w {str(parent)!r}"
               if st.st_uid in mine and link.st_uid in mine else "")
        )
    theirs = foreign_link_on(p)
    if theirs is not None:  # a chain of links, or a folder on the way that is a link of theirs
        raise UntrustedCheckpointFolder(
            f"checkpoint folder {str(p)!r} leads through {str(theirs[0])!r}, a link of uid {theirs[1]}, who chose "
            f"where it leads ({os.path.realpath(p)}). Use a folder of your own (checkpoint_root=... / checkpoint_dir=...)"
        )


def moved_into(path: str, folder: str | Path, names: int = 2) -> str:
    """``path``, or its file in ``folder`` when ``path`` names a file of a folder elsewhere whose last
    ``names`` names are ``folder``'s: the checkpoint root moved (a project folder moved, or another machine
    with the same layout), and the absolute paths stored before name the old place; or ``folder`` is an
    ``earlier-*`` or ``branch-above-*`` folder that :func:`set_aside` moved the files of ``path``'s folder into."""
    old, here = Path(path), Path(folder).absolute()
    if old.parent.parts[-names:] == here.parts[-names:] and len(here.parts) > names and not inside(path, here):
        return str(here / old.name)
    if here.name.startswith(ASIDE) and Path(os.path.abspath(old.parent)) == here.parent:
        return str(here / old.name)  # set aside (set_aside) by a later run in its folder
    return path


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` resolves (symbolic links followed) to a place inside ``folder``."""
    real, top = os.path.realpath(path), os.path.realpath(folder)
    try:
        return os.path.commonpath([real, top]) == top and real != top
    except ValueError:  # another drive (Windows)
        return False


def default_root() -> Path:
    """Where :func:`tunesmith.train.objective` checkpoints by default: a per-user cache folder,
    ``$XDG_CACHE_HOME/tunesmith/checkpoints`` (else ``~/.cache/tunesmith/checkpoints``). A relative
    ``XDG_CACHE_HOME`` is ignored, as the XDG specification says: it put checkpoints under whatever
    folder the process started in, stored as paths relative to it."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(_home(), ".cache")
    return Path(cache) / "tunesmith" / "checkpoints"


def _home() -> str:
    """The user's home: ``$HOME`` when it is an absolute path, else the user's entry in the
    password database (a relative ``HOME`` put checkpoints under the starting folder, as a
    relative XDG_CACHE_HOME did)."""
    home = os.path.expanduser("~")
    if os.path.isabs(home) or not hasattr(os, "getuid"):
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


# -- files --------------------------------------------------------------------------------------
def save(path: str | Path, state: dict[str, Any], *, room: str | None = None) -> Path:
    """Write ``state`` to ``path`` atomically and durably, as a file of mode 0600 in a 0700 folder:
    on disk under its name before this returns, so that a power cut after it (when :func:`rotate` has
    deleted the previous "last" file) leaves this one whole, never an empty or partial file. On a full disk
    the error says where to make room and how to keep fewer files: ``room``, the caller's options for it
    (:data:`TRAIN_ROOM` for ``tunesmith.train``'s own saves; by default :data:`OWN_ROOM`, a loop of one's own)."""
    path = Path(path)
    secure_dir(path.parent)
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # the data on disk before the name points to it
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        no_room = isinstance(exc, OSError) and out_of_room(path, exc, room)
        if no_room:
            raise no_room from exc
        raise
    _sync_dir(path.parent)  # the new name on disk before an older file is deleted
    return path


#: a write refused for room: the disk (or the user's quota) is full, or the file is over a limit on file size
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


#: how a user of ``tunesmith.train`` (the Trainer, its study objective) saves elsewhere or keeps fewer files
TRAIN_ROOM = ("or pass a folder on another disk (checkpoint_root=... / checkpoint_dir=...); keep_last=1 and the "
              "objective's keep='none' keep fewer files")
#: the same for a loop of one's own calling :func:`save`, where those options are not there to pass
OWN_ROOM = ("or save into a folder on another disk; keep fewer checkpoint files there (only the last: delete each "
            "older one once a newer one is saved, as checkpoint.rotate(folder, keep=1) does for files named by "
            "checkpoint.last_path)")


def out_of_room(path: Path, exc: OSError, room: str | None = None) -> CheckpointNoRoom | None:
    """Where writing ``path`` failed for room, the error naming it and where to make room (the trial's error
    said "[Errno 28] No space left on device" at a line of this module: which disk, which folder?), and
    ``room``: the caller's ways to save elsewhere or fewer files (:data:`OWN_ROOM` by default)."""
    if exc.errno not in _NO_ROOM:
        return None
    fix = ("raise the limit on file size (ulimit -f) of the processes that train" if exc.errno == errno.EFBIG
           else f"free space on the disk that holds {str(path.parent)!r}")
    return CheckpointNoRoom(
        f"cannot save the checkpoint {str(path)!r} ({exc.strerror or exc}; nothing of it was left): {fix}, "
        f"{OWN_ROOM if room is None else room}")


def _sync_dir(folder: Path) -> None:
    """Have the folder's entries (a rename into it) on disk. Where the system cannot (a folder
    cannot be opened on Windows; a network file system may refuse to sync one), the rename is as
    durable as the file system makes it, as SQLite does: the file's own data is synced already."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def link(src: str | Path, dst: str | Path) -> Path:
    """Make ``dst`` name the same file as ``src`` (a hard link, replacing ``dst`` atomically)."""
    dst = Path(dst)
    tmp = _tmp_name(dst)
    os.link(src, tmp)
    try:
        os.replace(tmp, dst)
    except BaseException:  # dst a folder, Ctrl-C: the temporary link would stay behind, hidden
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _tmp_name(path: Path) -> Path:
    host = socket.gethostname().replace("~", "-").replace(os.sep, "-")
    return path.with_name(f".{path.name}~{host}~{os.getpid()}~{secrets.token_hex(4)}.tmp")  # threads too


def load(path: str | Path, map_location: str | torch.device = "cpu", *,
         planted: tuple[str, str] | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors and plain values only.
    ``planted``: ``(what, fix)``: refuse a file another user may have chosen, as opened
    (:func:`~tunesmith.paths.open_regular`)."""
    path = Path(path).expanduser()
    try:
        f = open_regular(path, planted=planted)  # opened first, then looked at: a FIFO swapped in never blocks
    except NotRegularFile as exc:
        if exc.kind == "a directory":
            raise IsADirectoryError(f"checkpoint {str(path)!r} is a folder; pass a checkpoint file in it, e.g. its "
                                    "newest complete one: tunesmith.train.checkpoint.latest(folder)") from None
        raise CheckpointError(f"checkpoint {str(path)!r} is {exc.kind}, not a regular file; pass a file torch.save "
                              "wrote") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist") from None
    with f:
        if not is_complete(f) and not _raw_pickle(f):  # torch would say it "holds Python objects"
            raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: it is not a complete torch.save archive "
                                  "(truncated or corrupt, a copy cut short, a full disk, or not a checkpoint at all). "
                                  "checkpoint.latest(folder) skips such files; delete it, or resume from an older one")
        if _torchscript(f):  # torch.load hands it to torch.jit.load: before torch 2.6 it ran (CVE-2025-32434)
            raise CheckpointError(f"checkpoint {str(path)!r} was not loaded: it is a TorchScript archive "
                                  "(torch.jit.save), which holds code that loading it would run; tunesmith "
                                  "writes none, so something else wrote it: delete it")
        f.seek(0)
        try:
            state: Any = torch.load(f, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types; all mean "cannot read"
            raise CheckpointError(_unreadable(path, exc)) from exc
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{str(path)!r} is not a tunesmith checkpoint (no model/step)")
    return state


def _torchscript(f: BinaryIO) -> bool:
    """Whether the open file ``f`` is a TorchScript archive (its constants, as torch itself tells one)."""
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as z:
            return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())
    except (zipfile.BadZipFile, ValueError):
        return False


def _raw_pickle(f: BinaryIO) -> bool:
    """Whether the open file ``f`` starts as a pickle of protocol 2 or later (torch's legacy format) does."""
    f.seek(0)
    return f.read(1) == b"\x80"


def _unreadable(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "Weights only load failed" in text or "Unsupported global" in text:
        return (
            f"checkpoint {str(path)!r} was not loaded: it holds Python objects other than tensors and "
            "plain values, and unpickling them could run code. tunesmith writes none; a file like this "
            "was written by something else (or by a tunesmith older than 2026-12), so delete it"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return (
        f"checkpoint {str(path)!r} cannot be read ({first}): it is truncated or corrupt (a copy cut "
        "short, a full disk). checkpoint.latest(folder) skips such files; delete it, or resume from "
        "an older one"
    )


def is_complete(path: str | Path | BinaryIO) -> bool:
    """Whether ``path`` (or an open file) is a whole ``torch.save`` archive (its zip directory, written
    last, is there). A path is opened first (:func:`~tunesmith.paths.open_regular`): a FIFO named as a
    checkpoint is none, and never waits for a writer."""
    try:
        with contextlib.ExitStack() as stack:
            f = path if hasattr(path, "read") else stack.enter_context(open_regular(Path(path).expanduser()))
            with zipfile.ZipFile(f) as z:
                return any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist())
    except (OSError, NotRegularFile, zipfile.BadZipFile, ValueError):
        return False


def cut_short(path: str | Path) -> bool:
    """Whether ``path`` is a regular file (or a link to one) that its user may read and that is no whole ``torch.save``
    archive: a checkpoint cut short, which resumes nothing. A folder, a FIFO or a file this user may not read is
    none: :func:`set_aside` moves it with the rest, never deletes it (``unlink`` raised ``IsADirectoryError`` on a
    folder named like a "last" file; a file unreadable for a permission was deleted as cut short)."""
    try:
        with open_regular(Path(path).expanduser()) as f:
            return not is_complete(f)
    except (OSError, NotRegularFile):
        return False


def step_of(path: str | Path) -> int | None:
    """The step of a "last" checkpoint's file name (None for other names)."""
    m = _LAST.match(Path(path).name)
    return int(m[1]) if m else None


def last_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"last-{step:09d}.pt"


def best_path(directory: str | Path) -> Path:
    return Path(directory) / "best.pt"


def list_last(directory: str | Path) -> list[Path]:
    """The rotated "last" checkpoints of ``directory`` (``~`` expanded), oldest first."""
    d = Path(directory).expanduser()  # "~/runs" read as a folder named "~": no checkpoint, a silent fresh start
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _LAST.match(p.name))


def latest(directory: str | Path) -> Path | None:
    """The newest complete "last" checkpoint in ``directory`` (None if there is none);
    a truncated newer file is skipped."""
    for p in reversed(list_last(directory)):
        if is_complete(p):
            return p
    return None


def rotate(directory: str | Path, keep: int, among: list[Path] | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest "last" checkpoints (of ``among`` only, where given: a run's own
    files, so that another run's in the folder stay); returns the deleted."""
    files = list_last(directory) if among is None else sorted(p for p in among if _LAST.match(p.name))
    old = files[:-keep] if keep > 0 else files
    for p in old:
        p.unlink(missing_ok=True)
    return old


def set_aside(directory: str | Path, files: list[Path], *, above: int | None = None) -> Path | None:
    """Move ``files`` of ``directory`` (another run's "last" checkpoints and ``best.pt``) into a new folder
    ``earlier-<UTC time>`` in it (``branch-above-step-<above>-<UTC time>`` for the steps above ``above`` that a run
    resumed from that step leaves), names and hard links kept, where :func:`latest` no longer finds them and no
    rotation deletes them: resume that run with ``checkpoint_dir`` and ``resume_from=latest(...)`` of that
    folder. A truncated "last" file (it resumes nothing) is deleted instead. Returns the folder (None: nothing
    moved). A move a kill cut short (its folder still holds :data:`MOVING`) is finished first: what it left goes
    into the same folder, not a second one, so that the run's "last" files and its ``best.pt`` stay together (into a
    new one where a file of the same name is there: a run went on in that folder since, and none of its files is
    replaced)."""
    d = Path(directory).expanduser()
    cut = [p for p in files if step_of(p) is not None and cut_short(p)]
    whole = [p for p in files if p not in cut and os.path.lexists(p)]
    for p in cut:
        p.unlink(missing_ok=True)
    if not whole:
        end_cut_short(d)
        return None
    _drop_unmarked_empty(d)
    with contextlib.ExitStack() as held:  # the folder's lock freed however the move ends (a Ctrl-C before it)
        aside = _unfinished_held(d, whole, held) or _new_aside(d, aside_name(above), held)
        for p in whole:
            os.replace(p, aside / p.name)  # one folder: a rename, nothing copied, nothing lost at a kill
        _sync_dir(aside)
        _sync_dir(d)
        (aside / MOVING).unlink(missing_ok=True)
    return aside


def _held(folder: Path, held: contextlib.ExitStack) -> None:
    """Take ``folder``'s writer lock (:func:`hold`), freed as ``held`` ends."""
    held.callback(release, hold(folder))


def _drop_unmarked_empty(d: Path) -> None:
    """Remove the empty ``earlier-*`` (``branch-above-*``) folders of ``d`` that :func:`_new_aside` made (the user's,
    no one else may write them) and no run writes (their lock is free): a kill between its ``mkdir`` and the
    :data:`MOVING` mark left one, which the next move passed over for a folder beside it, for good."""
    for p in sorted(q for q in d.glob("*-*") if q.name.startswith(ASIDE)):
        if _made_aside(p):
            drop_empty(p)


def drop_empty(folder: Path) -> None:
    """Remove ``folder`` where it holds nothing but a lock file (:data:`LOCK`) no run holds: a kill's, left behind."""
    try:
        if any(q.name != LOCK for q in folder.iterdir()):
            return
        lock = hold(folder)
    except (OSError, CheckpointError):  # unreadable, a run writes it, or a lock file not the user's
        return
    try:
        (folder / LOCK).unlink(missing_ok=True)
        folder.rmdir()  # refused (OSError) where a file came in meanwhile: kept
    except OSError:
        pass
    finally:
        release(lock)


def _unfinished_held(d: Path, whole: list[Path], held: contextlib.ExitStack) -> Path | None:
    """The folder of a cut-short move to finish with ``whole``, its writer lock (:func:`hold`) held until ``held``
    ends, the move's: a run resumed in that folder now (its own lock) would write files that a move's
    ``os.replace`` puts the earlier ones over. None (the marker cleared) where such a run is writing it, or went on
    in it since and wrote a file of one of those names: its files are never replaced, the rest go into a new
    folder."""
    aside = unfinished_aside(d)
    if aside is None:
        return None
    with contextlib.ExitStack() as mine:
        try:
            _held(aside, mine)
        except CheckpointFolderBusy:
            pass
        else:
            if _takes(aside, whole):
                held.push(mine.pop_all())  # kept until the move ends
                return aside
    (aside / MOVING).unlink(missing_ok=True)
    return None


def _takes(aside: Path, files: list[Path]) -> bool:
    """Whether the cut-short move's folder ``aside`` can take ``files``: none of their names is there."""
    return not any((aside / p.name).exists() for p in files)


def aside_for(directory: str | Path, files: list[Path], *, above: int | None = None) -> str:
    """Where :func:`set_aside` moves ``files`` of ``directory``, as said before the move: the folder of a move a
    kill cut short (of either kind), which it finishes, or a new folder (:func:`aside_name`). A run that holds that
    folder when the move comes sends them to a new one instead (the move's own warning names it)."""
    aside = unfinished_aside(directory)
    if aside is not None and _takes(aside, files):
        return f"the folder {aside.name} in it (a move into it that was cut short, finished with them)"
    return f"a new folder {aside_name(above, '<UTC time>')} in it"


#: the file in an ``earlier-*`` folder while :func:`set_aside` moves files into it: one a kill left says that the
#: move was cut short, and the next set-aside in the folder above finishes it there
MOVING = ".moving"


#: how the names of the folders :func:`set_aside` makes begin: an earlier run's files, a resumed run's left branch
ASIDE = ("earlier-", "branch-above-step-")


def aside_name(above: int | None = None, stamp: str | None = None) -> str:
    """The name :func:`set_aside` gives a folder made now (before any ``-<n>`` that tells two of one second
    apart): ``earlier-<UTC time>``, or ``branch-above-step-<above>-<UTC time>`` (``stamp`` for the time)."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{ASIDE[0]}{stamp}" if above is None else f"{ASIDE[1]}{above}-{stamp}"


def _new_aside(d: Path, name: str, held: contextlib.ExitStack) -> Path:
    """A new folder ``name`` (``name-2``, ``name-3``, ... where taken: no end, as a folder already there, another
    run's, is never moved into) of ``d``, marked :data:`MOVING`, its writer lock held until ``held`` ends. Made
    and left empty (a Ctrl-C before its marker), it is removed."""
    aside, n = d / name, 1
    while True:
        try:
            os.mkdir(aside, 0o700)
        except FileExistsError:
            n += 1
            aside = d / f"{name}-{n}"
            continue
        try:
            _held(aside, held)  # a run started in it between the two: as if taken
            (aside / MOVING).touch(0o600)
            return aside
        except CheckpointFolderBusy:
            n += 1
            aside = d / f"{name}-{n}"
        except BaseException:
            with contextlib.suppress(OSError):
                (aside / LOCK).unlink(missing_ok=True)  # a lock file is made before a run could refuse it
                aside.rmdir()  # only while empty
            raise


def end_cut_short(directory: str | Path) -> None:
    """Say done the move a kill cut short in ``directory`` when nothing of it is left to move (the kill came after
    its last rename): else a later run's files would be moved in beside the earlier run's."""
    aside = unfinished_aside(directory)
    if aside is not None:
        (aside / MOVING).unlink(missing_ok=True)
        with contextlib.suppress(OSError, CheckpointError):  # the killed move's lock file: taken, then deleted
            release(hold(aside))


def unfinished_aside(directory: str | Path) -> Path | None:
    """The ``earlier-*`` (or ``branch-above-*``) folder of ``directory`` whose move (:func:`set_aside`) a kill cut
    short, or None. Only a folder of the user's that no one else may write, no link, is one (:func:`set_aside`
    makes them 0700; a ``chmod g+w`` with a private group per user keeps one the user's, as :func:`check_dir` takes
    it): another user's, or one others may write (planted while ``directory`` was writable, before the ``chmod
    go-w`` :func:`check_dir` advises), would be handed the run's checkpoints to replace or delete."""
    d = Path(directory).expanduser()
    for p in sorted(q for q in d.glob("*-*") if q.name.startswith(ASIDE)):
        if _made_aside(p) and (p / MOVING).is_file():
            return p
    return None


def _made_aside(p: Path) -> bool:
    """Whether ``p`` is a folder (not a link) of this user that no one else may write (:func:`_others_may_write`),
    as :func:`_new_aside` makes them."""
    try:
        st = os.lstat(p)
    except OSError:
        return False
    if not hasattr(os, "getuid"):  # Windows: no POSIX owner or mode bits to check (as check_dir)
        return stat.S_ISDIR(st.st_mode)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not _others_may_write(st)


#: the folder locks :func:`hold` took in this process
_HELD: dict[int, Path] = {}


def _forget_held_in_child() -> None:
    """A forked process (a DataLoader worker, a study's worker) closes its copies of the locks: a child that
    outlives the run (a persistent worker kept by a traceback) would otherwise hold its folder for it."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_held_in_child)


#: the writer lock's file in a checkpoint folder (:func:`hold`): the user's own, mode 0600, deleted as it is released
LOCK = ".lock"


def hold(directory: str | Path) -> int | None:
    """Take ``directory``'s writer lock (an advisory lock on its file :data:`LOCK`, freed when the process ends,
    however it ends): the descriptor to :func:`release`, or None where the system has none (Windows; a network file
    system that refuses it). Raises :class:`CheckpointFolderBusy` while another run (a process, or another Trainer of
    this one) holds it: two runs writing one folder replace each other's ``best.pt`` and "last" files. The lock is a
    file of the user's own that only the user may open (0600): a lock on the folder itself could be taken by any
    user who may open the folder (0755), keeping every run out for as long as they liked."""
    if fcntl is None:
        return None
    d = Path(directory).expanduser()
    while True:
        fd = _open_lock(d / LOCK)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            theirs = _not_yours(fd, d)
            os.close(fd)
            if theirs:
                raise CheckpointFolderBusy(theirs) from None
            raise CheckpointFolderBusy(
                f"checkpoint folder {str(d)!r} is being written by another run now (another process, or another "
                "Trainer of this one): two runs in one folder would replace each other's best.pt and \"last\" files, "
                "and checkpoint.latest would mix them. Give this run its own TrainConfig.checkpoint_dir, or let that "
                f"run end first (to go on with it then: fit(..., resume_from=tunesmith.train.checkpoint.latest({str(d)!r})))"
            ) from None
        except OSError:  # a file system without such locks
            os.close(fd)
            return None
        if _still_there(fd, d / LOCK):
            _HELD[fd] = d / LOCK
            return fd
        os.close(fd)  # its holder released (deleted) it between the open and the lock: a lock on nothing; again


def _open_lock(path: Path) -> int | None:
    """The lock file ``path`` open (made 0600 where missing, ``O_EXCL``; an old one opened without following a link),
    or None where it cannot be made (a folder this user may not write: it takes no checkpoint either). One that is
    a link, no regular file, another user's or one others may open is refused: its owner could hold the lock."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    while True:
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError:
            return None
        try:
            fd: int | None = os.open(path, flags)
        except FileNotFoundError:
            continue  # released (deleted) between the two
        except OSError as exc:  # a link (ELOOP), a file of another user's this one may not open
            fd, failed = None, exc
        why = _not_a_lock(os.fstat(fd) if fd is not None else os.lstat(path))
        if why is None and fd is None:  # the user's own, 0400 (a chmod -R a-w): None would write unlocked
            if not isinstance(failed, PermissionError):
                raise failed
            why = f"cannot be opened by you (mode {stat.S_IMODE(os.lstat(path).st_mode):04o})"
        if why is None:
            return fd
        if fd is not None:
            os.close(fd)
        raise UntrustedCheckpointFolder(
            f"the lock file {str(path)!r} of checkpoint folder {str(path.parent)!r} {why}: tunesmith makes it a "
            "file of yours only you may open (0600), as one another user may open lets them hold the folder's "
            f"lock and keep every run out. Delete it (rm {str(path)!r}; no run of yours is writing the folder "
            "then) and run again")


def _not_a_lock(st: os.stat_result) -> str | None:
    """What is wrong with a lock file of this ``st`` (:func:`_open_lock`), or None."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "is no regular file"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid}; you are uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"may be opened by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _still_there(fd: int, path: Path) -> bool:
    """Whether the file open as ``fd`` is the one at ``path`` now."""
    try:
        st, now = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _not_yours(fd: int, d: Path) -> str | None:
    """What :func:`hold` says of the folder ``d`` (open as ``fd``) whose lock no process of this user holds, or None:
    a run of this user's holds it, or Linux's ``/proc/locks`` cannot tell (elsewhere; a holder in a pid namespace
    this one cannot see). Any user who may open a folder (mode 0755) may lock it."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            pids = sorted({pid for line in f if (pid := _flock_on(line.split(), where))})
    except OSError:
        return None
    if not pids or _yours_hold(where):
        return None
    theirs = []
    for pid in pids:  # the process that took the lock; it may have ended since, its lock passed to one it started
        with contextlib.suppress(OSError):
            if (uid := os.stat(f"/proc/{pid}").st_uid) == os.getuid():
                return None  # the user's, its fdinfo unreadable (undumpable), or a pid of theirs reused: cannot tell
            theirs.append((pid, uid))
    return _not_yours_words(d, *(theirs[0] if theirs else (pids[0], None)))


def _flock_on(fields: list[str], where: str) -> int | None:
    """The pid of a line of ``/proc/locks`` (its fields; an fdinfo file's ``lock:`` line) that says a flock on the
    file ``where`` (``major:minor:inode``) is held, else None (another lock, a waiter's ``->`` line)."""
    if fields[:1] == ["lock:"]:
        fields = fields[1:]
    if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
        return int(fields[4])
    return None


def _yours_hold(where: str) -> bool:
    """Whether a process of this user (this one too) holds the flock on ``where``, as its ``/proc/<pid>/fdinfo``
    says. ``/proc/locks`` names only the process that took a lock: one that took it and ended (a daemon's parent)
    leaves it to a child that is named nowhere else, and a process of another user may reuse its pid."""
    me = os.getuid()
    for proc in os.scandir("/proc"):
        try:
            if not proc.name.isdigit() or proc.stat().st_uid != me:
                continue
            for info in os.scandir(f"/proc/{proc.name}/fdinfo"):
                with open(info.path, encoding="ascii", errors="replace") as f:
                    if any(_flock_on(line.split(), where) for line in f):
                        return True
        except OSError:  # ended meanwhile, or one of this user's that made itself unreadable (no run of tunesmith)
            continue
    return False


def _not_yours_words(d: Path, pid: int, uid: int | None) -> str:
    """What :func:`hold` says of a folder whose lock process ``pid`` of another user (``uid``) holds, or (``uid``
    None) a process of no run of this user's that process ``pid``, ended since, left it to."""
    who = (f"a process that is no run of yours: process {pid}, which took the lock, has ended and left it to a "
           "process it started" if uid is None else f"process {pid} of another user (uid {uid}), not by a run of yours")
    return (f"checkpoint folder {str(d)!r} is locked by {who}: its lock file {str(d / LOCK)!r} is yours and only you "
            "may open it (0600), so that process runs as root or was handed it by a process of yours. Let that "
            "process end, or give this run another folder (TrainConfig.checkpoint_dir)")


def release(fd: int | None) -> None:
    """Free a lock :func:`hold` took, its file deleted first (a folder left empty can be removed; one that waited
    to take it finds it gone and makes a new one)."""
    if fd is not None and fd in _HELD:
        path = _HELD.pop(fd)
        with contextlib.suppress(OSError):
            if _still_there(fd, path):
                path.unlink()
        os.close(fd)


def clean_stale(directory: str | Path, *, now: float | None = None) -> list[Path]:
    """Delete the temporary files in ``directory`` whose writer is dead (a process of this
    host that no longer runs; on another host: older than :data:`STALE_AFTER_S`)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    here, now = socket.gethostname().replace("~", "-").replace(os.sep, "-"), now or time.time()
    gone = []
    for p in d.iterdir():
        m = _TMP.match(p.name) or _OLD_TMP.match(p.name)
        if m is None:
            continue
        host = m.groupdict().get("host")
        try:
            age = now - p.lstat().st_mtime
        except FileNotFoundError:
            continue
        if host not in (None, here):
            dead = age > STALE_AFTER_S
        else:
            dead = not pid_alive(int(m["pid"])) and (host is not None or age > 3600)
        if dead:
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone
