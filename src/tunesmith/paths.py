"""Files at a path the user gives: a link another user planted where tunesmith writes is refused, and
what it reads is read only from a regular file (a FIFO planted in a shared folder never blocks it)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from .exceptions import UntrustedPathError


def refuse_foreign_link(path: Path, st: os.stat_result | None, what: str, fix: str) -> None:
    """An :class:`~tunesmith.exceptions.UntrustedPathError` where ``st`` (``path``'s lstat, None where there is nothing) is a symbolic link of
    another user (but root): in a folder others can write, they chose which of this user's files is
    written. ``what`` begins the message (what was being written), ``fix`` ends it."""
    if st is None or not stat.S_ISLNK(st.st_mode) or not hasattr(os, "getuid") or st.st_uid in (0, os.getuid()):
        return
    raise UntrustedPathError(f"{what}: {path} is a link owned by another user (uid {st.st_uid}), who chose the file it "
                     f"writes to ({os.path.realpath(path)}); {fix}")


def others_may_change(st: os.stat_result) -> str | None:
    """Why another user may have chosen what a file or folder of this ``st`` (its stat) holds: it is theirs
    (root aside), or they may write it (a folder's sticky bit keeps them from replacing this user's entries;
    this user's own primary group is this user's); None where neither (and where no owner is told, Windows)."""
    if not hasattr(os, "getuid"):
        return None
    if st.st_uid not in (0, os.getuid()):
        return f"is owned by another user (uid {st.st_uid})"
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if not sticky and (st.st_mode & stat.S_IWOTH or st.st_mode & stat.S_IWGRP and st.st_gid != os.getgid()):
        return f"can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
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


def open_regular(path: Path) -> BinaryIO:
    """The regular file ``path``, open for reading (blocking reads). It is opened first (non-blocking:
    opening a FIFO, one swapped in after any check too, never waits for a writer) and the open file is
    looked at: anything but a regular file raises :class:`NotRegularFile`, unread; a failed open, its OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it) cannot be opened
            raise NotRegularFile(path, kind_of(os.stat(path).st_mode)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
