"""Files at a path the user gives: a link another user planted where tunesmith writes is refused, and
what it reads is read only from a regular file (a FIFO planted in a shared folder never blocks it)."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .exceptions import UntrustedPathError


def refuse_foreign_link(path: Path, st: os.stat_result | None, what: str, fix: str) -> None:
    """An :class:`~tunesmith.exceptions.UntrustedPathError` where ``st`` (``path``'s lstat, None where there is nothing) is a symbolic link of
    another user (but root), or where reaching ``path`` follows one (a chain of links: the user's own link to
    another user's link in a folder of theirs, or a folder on the way that is their link): in a folder others
    can write, they chose which of this user's files is written. ``what`` begins the message (what was being
    written), ``fix`` ends it."""
    if not hasattr(os, "getuid"):
        return
    if st is not None and stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, os.getuid()):
        raise UntrustedPathError(f"{what}: {path} is a link owned by another user (uid {st.st_uid}), who chose the file it "
                         f"writes to ({os.path.realpath(path)}); {fix}")
    theirs = foreign_link_on(path)
    if theirs is not None:
        link, uid = theirs
        raise UntrustedPathError(f"{what}: {path} leads through {link}, a link owned by another user (uid {uid}), who chose "
                         f"where it leads ({os.path.realpath(path)}); {fix}")


#: at most this many links are followed in resolving a path (Linux's own limit)
MAX_LINKS = 40


def foreign_link_on(path: str | Path) -> tuple[Path, int] | None:
    """The first symbolic link of another user (root aside) that resolving ``path`` follows, with its owner's
    uid, at any link of a chain and at any folder on the way; None where there is none (and where no owner is
    told, Windows). Resolving stops at the first name that is not there."""
    if not hasattr(os, "getuid"):
        return None
    try:
        whole = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)  # no normpath: "link/.." is not "."
    except OSError:  # the working folder was deleted: a relative path names nothing
        return None
    todo = list(reversed(Path(whole).parts))
    here = Path(todo.pop())
    followed = 0
    while todo:
        name = todo.pop()
        if name == "..":
            here = here.parent  # ``here`` is resolved, so its parent is the real one
            continue
        step = here / name
        try:
            st = os.lstat(step)
        except OSError:
            return None
        if not stat.S_ISLNK(st.st_mode):
            here = step
            continue
        if st.st_uid not in (0, os.getuid()):
            return step, st.st_uid
        followed += 1
        if followed > MAX_LINKS:
            return None  # a loop: opening it fails (ELOOP)
        target = Path(os.readlink(step))
        if target.is_absolute():
            here = Path(target.anchor)
        todo.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
    return None


def own_group(gid: int) -> bool:
    """Whether group ``gid`` is this user's alone: the user's primary group, named as the user (a user-private
    group), with no other member (root aside) in the group or password database. Where every user's primary
    group is one shared group (``users``), a file that group may write is one every user may write."""
    if not hasattr(os, "getgid") or gid != os.getgid():
        return False
    return _private_group(gid, os.getuid())


@functools.lru_cache(maxsize=8)
def _private_group(gid: int, uid: int) -> bool:
    import grp
    import pwd

    try:
        me = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid)
    except KeyError:  # a user or group the databases do not name: nothing says it is private
        return False
    if group.gr_name != me:  # not a user-private group: a directory that lists no users (LDAP, AD) hides
        return False  # its other members ("domain users", "staff")
    root = {p.pw_name for p in _users() if p.pw_uid == 0}
    return not set(group.gr_mem) - {me} - root and all(p.pw_uid in (0, uid) for p in _users() if p.pw_gid == gid)


def _users() -> list[Any]:
    import pwd

    return pwd.getpwall()


def others_may_change(st: os.stat_result) -> str | None:
    """Why another user may have chosen what a file or folder of this ``st`` (its stat) holds: it is theirs
    (root aside), or they may write it (a folder's sticky bit keeps them from replacing this user's entries;
    a group counts as this user's own only where no one else is in it: :func:`own_group`); None where neither
    (and where no owner is told, Windows)."""
    if not hasattr(os, "getuid"):
        return None
    if st.st_uid not in (0, os.getuid()):
        return f"is owned by another user (uid {st.st_uid})"
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if not sticky and (st.st_mode & stat.S_IWOTH or st.st_mode & stat.S_IWGRP and not own_group(st.st_gid)):
        return f"can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


#: what to do instead of loading a checkpoint :func:`refuse_planted` refused
PLANTED_FIX = ("load a checkpoint your own runs wrote (a trial's folder under its checkpoint_root), or copy it to a "
               "folder of yours")


def refuse_planted(path: Path, what: str, fix: str, *, missing: bool = True) -> None:
    """An :class:`~tunesmith.exceptions.UntrustedPathError` where another user may have chosen what ``path`` holds:
    it is theirs (root aside) or others may write it, its folder is theirs or others may replace files in it (not
    sticky), or reaching it follows a link of theirs. For a path read from a study (``attrs["checkpoint"]``,
    ``["best_checkpoint"]``), which whoever may write its database can change: to a file of theirs (/tmp/theirs.pt),
    whose weights were then loaded as the trial's (and torch before 2.6 ran code from such a file even with
    ``weights_only=True``). ``what`` names it in the message, ``fix`` ends it (after the ``chmod`` that fixes a file
    or folder of the user's own that others may write: a team's folder, a ``cp`` under umask 002). A path not there
    (a link to nothing too) is refused where another user may put a file there before it is read: the nearest folder
    on its way that is there is theirs or others may add to it (sticky or not, as /tmp); elsewhere nothing is
    refused (its reader says it is missing), nor where no owner is told (Windows). ``missing=False``: a path not
    there is not refused for its folder (its reader loads only a file of a folder it checks itself)."""
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    refuse_foreign_link(path, st, f"{what} {str(path)!r}", fix)
    real = Path(os.path.realpath(path))
    try:
        checked = ((real, os.stat(real)), (real.parent, os.stat(real.parent)))
    except FileNotFoundError:
        if missing:
            _refuse_missing(path, real, what, fix)
        return
    for name, found in checked:
        why = others_may_change(found)
        if why:
            mode_only = found.st_uid == os.getuid()  # the user's own: the mode is what lets others in
            raise UntrustedPathError(f"{what} {str(path)!r}: {str(name)!r} {why}, so they may have chosen what it "
                                     f"holds; " + (f"if no one else should write it: chmod go-w {str(name)!r}; "
                                                   "else " if mode_only else "") + fix)


def _refuse_missing(path: Path, real: Path, what: str, fix: str) -> None:
    """:func:`refuse_planted` of ``path``, which resolves to ``real``, not there: refused where the nearest folder
    of ``real`` that is there lets another user add to it (theirs, root aside, or written by others; the sticky bit
    keeps them from replacing entries, not from making new ones), since they may put their file there before it
    is read (a checkpoint path handed on by ``trial.resume_from`` is loaded by the user's code, later)."""
    if not hasattr(os, "getuid"):
        return
    for folder in real.parents:
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            continue
        except OSError:
            return  # not to be looked at: not to be added to either (its reader says what it cannot open)
        if st.st_uid not in (0, os.getuid()):
            why = f"is owned by another user (uid {st.st_uid})"
        elif st.st_mode & stat.S_IWOTH or st.st_mode & stat.S_IWGRP and not own_group(st.st_gid):
            why = f"can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
        else:
            return
        mode_only = st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX  # the user's own, not as /tmp
        chmod = f"if no one else should write it: chmod go-w {str(folder)!r}; else " if mode_only else ""
        raise UntrustedPathError(f"{what} {str(path)!r} is not there, and {str(folder)!r} {why}, so they may put a "
                                 f"file of theirs there before it is read; {chmod}{fix}")


def every_user_may_add(st: os.stat_result) -> str | None:
    """Why any user of the machine may have put a file in a folder of this ``st`` (its stat): everyone may
    write it, sticky or not (the sticky bit keeps them from replacing entries, not from adding new ones), or
    the group that may write it is the user's primary group, shared by other users (``users``: every user);
    None where neither (a team's group, another user's folder: as the people who may change the files there)."""
    if not hasattr(os, "getuid"):
        return None
    if st.st_mode & stat.S_IWOTH:
        return f"can be written by every user (mode {stat.S_IMODE(st.st_mode):o})"
    if st.st_mode & stat.S_IWGRP and st.st_gid == os.getgid() and not own_group(st.st_gid):
        return (f"can be written by your primary group (gid {st.st_gid}, mode {stat.S_IMODE(st.st_mode):o}), "
                "which other users may share")
    return None


class NotRegularFile(ValueError):
    """What :func:`open_regular` opened is no regular file; ``kind`` says what it is ("a FIFO", ...)."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.kind = kind


def kind_of(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is, as a message names it: "a directory", "a FIFO", ..."""
    return ("a regular file" if stat.S_ISREG(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "no regular file")


#: how a file is opened to be read: without waiting (a FIFO), not handed on to child processes, and never taken as
#: the process's controlling terminal (a terminal swapped in, opened by a session leader that has none)
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOCTTY", 0))
#: how a folder is opened to be read in: as a path only where the system can (Linux), which needs the right to pass
#: through it, not to list it
_FOLDER_FLAGS = (getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0)
                 | getattr(os, "O_CLOEXEC", 0))


def open_regular(path: Path, *, planted: tuple[str, str] | None = None) -> BinaryIO:
    """The regular file ``path``, open for reading (blocking reads). It is opened first (non-blocking:
    opening a FIFO, one swapped in after any check too, never waits for a writer) and the open file is
    looked at: anything but a regular file raises :class:`NotRegularFile`, unread; a failed open, its OSError.
    ``planted``: ``(what, fix)`` of :func:`refuse_planted`, which it runs first; then the folder and the file are
    opened and checked as opened (:func:`_open_in_checked_folder`), so a folder swapped after the look (its parent
    is another user's) is not read from."""
    try:
        if planted is not None:
            refuse_planted(path, *planted)
            fd = _open_in_checked_folder(path, *planted)
        else:
            fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it) cannot be opened
            raise NotRegularFile(path, kind_of(os.stat(path).st_mode)) from None
        raise
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        why = others_may_change(st) if planted is not None else None
        if planted is not None and why:
            raise UntrustedPathError(f"{planted[0]} {str(path)!r} {why} (it changed since it was looked at), so they "
                                     f"may have chosen what it holds; {planted[1]}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_in_checked_folder(path: Path, what: str, fix: str) -> int:
    """A descriptor of ``path`` read in its folder (links resolved) as opened: that folder's descriptor is checked
    (another user's, or one others may replace files in, is refused) and the file opened in it without following a
    link. Between a look by name and an open by name, a folder above that is another user's can be renamed away
    and one of theirs put in its place; a folder held open is the one read from. The folder is opened as a path
    only (Linux's ``O_PATH``), which needs no right to list it: a file in a folder the user may pass through but not
    list (``chmod 711``: a shared models folder, a home folder) is read as it was by name. Where descriptors of
    folders are not supported (Windows), or elsewhere the folder may not be listed, the path is opened by name (the
    file is still checked as opened). An error names the whole path."""
    real = Path(os.path.realpath(path))
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_DIRECTORY"):
        return os.open(real, _READ_FLAGS)
    try:
        folder = os.open(real.parent, _FOLDER_FLAGS)
    except PermissionError:
        if _FOLDER_FLAGS & getattr(os, "O_PATH", 0):  # no right to pass through: the file cannot be opened either
            raise
        return os.open(real, _READ_FLAGS)
    try:
        why = others_may_change(os.fstat(folder))
        if why:
            raise UntrustedPathError(f"{what} {str(path)!r}: its folder {str(real.parent)!r} {why} (it changed since "
                                     f"it was looked at), so they may have chosen what it holds; {fix}")
        try:
            return os.open(real.name, _READ_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise OSError(exc.errno, exc.strerror, str(real)) from None  # the path, not its last name alone
            raise UntrustedPathError(f"{what} {str(path)!r} became a link after it was looked at, so someone may "
                                     f"have chosen what it holds; {fix}") from None
    finally:
        os.close(folder)


def read_regular(path: Path, limit: int) -> bytes:
    """Up to ``limit`` bytes of the regular file ``path``, opened by :func:`open_regular`."""
    with open_regular(path) as f:
        return f.read(limit)


#: the name :func:`study_folder` gives a study's folder
STUDY_FOLDER = re.compile(r"[A-Za-z0-9_.-]{1,64}-[0-9a-f]{8}")


def study_folder(root: str | Path, study: str, copy_id: str | None = None) -> Path:
    """``<root>/<study name made safe for a folder>-<hash of the name and copy_id>``: the same study
    finds its folder again; no name (``/etc``, ``..``, ``a/../../b``) leads outside ``root``. ``copy_id``
    (``Study.copy_id``, made with each study; a copy, import or focus gets a new one) gives each study a
    folder of its own, apart from any other of its name (in another storage, or deleted before it); a
    study an earlier tunesmith made has none, and keeps the folder of its name alone."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", study).strip("._-")[:64] or "study"
    key = study if copy_id is None else f"{study}\n{copy_id}"
    return Path(root) / f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
