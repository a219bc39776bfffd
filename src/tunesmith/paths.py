"""Files tunesmith writes at a path the user gives: a link another user planted there is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def refuse_foreign_link(path: Path, st: os.stat_result | None, what: str, fix: str) -> None:
    """A ValueError where ``st`` (``path``'s lstat, None where there is nothing) is a symbolic link of
    another user (but root): in a folder others can write, they chose which of this user's files is
    written. ``what`` begins the message (what was being written), ``fix`` ends it."""
    if st is None or not stat.S_ISLNK(st.st_mode) or not hasattr(os, "getuid") or st.st_uid in (0, os.getuid()):
        return
    raise ValueError(f"{what}: {path} is a link owned by another user (uid {st.st_uid}), who chose the file it "
                     f"writes to ({os.path.realpath(path)}); {fix}")
