"""Plots of a study: data first (plain records), then plotly (HTML) or matplotlib (PNG/PDF).

    from tunesmith import plots
    chart = plots.history_data(study)         # a Chart: what is drawn, as plain values
    plots.save(chart, "history.html")         # interactive (plotly), or .png/.pdf/.svg (matplotlib)
    ax = plots.learning_curves(study)         # matplotlib Axes, as before
    plots.save(plots.comparison({"random": [s0, s1], "bayes": [s2, s3]}), "compare.png")

Every data function reads the study once (or takes a :class:`Snapshot`) and returns a
record whose ``message`` says why when there is nothing to draw. :data:`KINDS` lists
the kinds ``tunesmith plot --kind`` draws. Needs ``pip install 'tunesmith[plots]'``.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..paths import refuse_foreign_link
from ..space.params import a_type, did_you_mean
from .bars import importance_bars
from .compare import comparison, run_samplers
from .records import (
    PALETTE,
    STATE_COLORS,
    Axis,
    Chart,
    Diagram,
    Node,
    Parallel,
    Record,
    Series,
    Snapshot,
    group_color,
    legend_label,
    snapshot,
)
from .study_data import contour, contours, parallel, process, slices
from .study_data import history as history_data
from .study_data import learning_curves as curves_data
from .training import adam_in_action, adam_path, overfitting, rosenbrock


def _overfitting_of(s: Snapshot, trial: int | None = None) -> list[Record]:
    if trial is None:
        best = s.best()
        with_reports = [t for t in s.trials if t.intermediate]
        pick = best if best is not None and best.intermediate else (with_reports[-1] if with_reports else None)
        if pick is None:
            return [Chart("overfitting", f"{s.name}: overfitting", message=f"no trial of {s.name!r} reported values")]
        return [overfitting(pick)]
    found = [t for t in s.trials if t.number == trial]
    if not found:
        raise ValueError(f"study {s.name!r} has no trial {trial}; it has trials 0-{len(s.trials) - 1}")
    return [overfitting(found[0])]


#: the kinds of ``tunesmith plot --kind``: name -> (help, function(snapshot, **options) -> records)
KINDS: dict[str, tuple[str, Callable[..., list[Record]]]] = {
    "curves": ("every trial's reports by step, coloured by state", lambda s, log_y=False, **_: [curves_data(s, log_y=log_y)]),
    "history": ("values by trial and the best so far", lambda s, log_y=False, **_: [history_data(s, log_y=log_y)]),
    "parallel": ("parallel coordinates of the complete trials", lambda s, params=None, **_: [parallel(s, params=params)]),
    "slice": ("value against each parameter", lambda s, params=None, **_: list(slices(s, params=params))),
    "contour": ("value over pairs of numeric parameters", lambda s, params=None, **_: list(contours(s, params=params))),
    "importance": ("importance bars with bands (--method fanova or ped-anova)",
                   lambda s, method=None, **_: [importance_bars(s, method=method or "fanova")]),
    "overfitting": ("training/validation loss of a trial (--trial; default the best)",
                    lambda s, trial=None, **_: _overfitting_of(s, trial)),
    "process": ("the study's flow with its counts", lambda s, **_: [process(s)]),
}


#: the options of :func:`records_of` (each kind reads those it uses)
OPTIONS = ("log_y", "params", "trial", "method")


def records_of(study: Any, kind: str, **options: Any) -> list[Record]:
    """The records of one kind of :data:`KINDS` for a study (read once). ``options``: ``log_y``,
    ``params``, ``trial``, ``method``, each read by the kinds it applies to."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}{did_you_mean(kind, list(KINDS))}; choose one of {list(KINDS)}")
    for key in options:
        if key not in OPTIONS:
            raise TypeError(f"records_of: unknown option {key!r}{did_you_mean(key, list(OPTIONS))}; "
                            f"the options are {list(OPTIONS)}")
    return KINDS[kind][1](snapshot(study), **options)


def save(records: Record | Sequence[Record], path: str | Path) -> Path:
    """Write records to ``path``: ``.html`` (plotly, plotly.js embedded: opens offline) or
    an image (``.png``, ``.pdf``, ``.svg``: matplotlib, one panel per record)."""
    if hasattr(records, "trials"):  # a Study: "'Study' object is not iterable"
        raise TypeError(f"save takes the records to draw, got {a_type(records)}: "
                        "write plots.save(plots.records_of(study, 'history'), path)")
    items = [records] if isinstance(records, (Chart, Parallel, Diagram)) else list(records)
    path = check_output(path)
    if not items:
        raise ValueError("nothing to save: no records")
    if path.suffix.lower() in HTML:
        from .plotly_render import to_html

        text = to_html(items)
        replace_file(path, lambda f: f.write(text.encode("utf-8")))
    else:
        from .mpl_render import save as save_image

        replace_file(path, lambda f: save_image(items, f, format=path.suffix[1:].lower()))
    return path


HTML = (".html", ".htm")
IMAGES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_output(path: str | Path, suffixes: Sequence[str] = HTML + IMAGES, what: str | None = None) -> Path:
    """``path`` as a Path, or a ValueError when no file can be written there: a file type not in
    ``suffixes`` (empty: any), a folder, or a folder that does not exist; checked before any work is
    done (the command line's ``--output`` too). ``what`` words the file type's refusal
    (``"write {what}, not NAME"``)."""
    shown, path = str(path), Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"write {what}, not {path.name!r}" if what
                         else f"{shown!r}: write to a file ending in {', '.join(suffixes)}")
    if path.is_dir():
        raise ValueError(f"{shown!r} is a folder; name a file in it")
    if not path.parent.is_dir():
        raise ValueError(f"{shown!r}: folder {str(path.parent)!r} does not exist; create it first")
    return path


def replace_file(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` by ``write`` into a new file beside it, then rename that over ``path``: a
    hard link planted at ``path`` is replaced, never written through to the file it shares, and
    a write cut short leaves the file that was there whole. A symbolic link is followed only
    when it is the user's own (or root's, as /dev/stdout): one planted by another user chooses
    which file would be overwritten. A FIFO or device (/dev/null) is written as it is. The new
    file keeps the permissions of the one it replaces. An error names ``path``, never the new file."""
    try:
        return _write_over(path, write)
    except OSError as exc:  # "Read-only file system: '.report.html.5a4e...tmp'", "No space left on device"
        if exc.errno is None or exc.filename not in (None, str(path)) and not Path(exc.filename).name.startswith(
                f".{path.name}."):
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


def _write_over(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    refuse_foreign_link(path, st, "output file", "remove the link or write elsewhere")
    if st is not None and not stat.S_ISREG(st.st_mode):
        target = os.path.realpath(path)  # the link resolved once, then opened; /dev/stdout into a pipe
        with open(target if os.path.exists(target) else path, "wb") as out:  # resolves to "pipe:[N]", no file
            write(out)
        return path
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except PermissionError:  # a folder the user may not add files to: its file itself, if only one name has it
        if st is None or st.st_nlink > 1:
            raise
        _write_in_place(path, st, write)
        return path
    try:
        with os.fdopen(fd, "wb") as f:  # written through the descriptor: the name may be swapped meanwhile
            if st is not None and hasattr(os, "fchmod"):  # the mode the user gave the file (chmod 600)
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut leaves the old file or the new one
        _replace(tmp, path, st)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_in_place(path: Path, st: os.stat_result, write: Callable[[BinaryIO], object]) -> None:
    """Write the file ``path`` itself, the one of ``st`` (its lstat): in a folder the user may not add files to,
    whoever may (its owner) could put a link or another name of a file of the user's in its place after the
    look, and ``open(path, "wb")`` emptied and wrote that file. Opened without following a link and without
    emptying it, it is emptied only when it is still the file looked at. Opened without blocking: a FIFO put in
    its place (which no one reads) held the command forever."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        swapped = "a link" if os.path.islink(path) else "a FIFO" if exc.errno == errno.ENXIO else None
        raise type(exc)(exc.errno, f"{exc.strerror}: it was swapped for {swapped} while it was written"
                        if swapped else exc.strerror, str(path)) from None
    with os.fdopen(fd, "wb") as out:
        now = os.fstat(out.fileno())
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or now.st_nlink > 1:
            raise PermissionError(f"{str(path)!r} was replaced by another file while it was written, by whoever may "
                                  "change its folder; nothing was written: write to a folder of your own")
        if hasattr(os, "set_blocking"):
            os.set_blocking(out.fileno(), True)
        out.truncate(0)
        write(out)


def _replace(tmp: Path, path: Path, st: os.stat_result | None) -> None:
    """``os.replace``; over another user's file in a folder where only a file's owner may replace
    it (sticky, as /tmp), a sentence naming the path instead of the system's, which names the
    temporary file."""
    try:
        os.replace(tmp, path)
    except PermissionError:
        if st is None or st.st_uid == os.getuid():
            raise
        raise PermissionError(f"cannot replace {str(path)!r}: it belongs to another user (uid {st.st_uid}) in a "
                              "folder where only a file's owner may replace it (sticky, as /tmp); write to another "
                              "path, or have its owner remove it") from None


# -- matplotlib faces kept from the first version: draw into ``ax``, return the Axes -----------


def learning_curves(study: Any, ax: Any = None, *, log_y: bool = False) -> Any:
    """Each trial's reports by step, coloured by state (see :func:`curves_data`)."""
    from .mpl_render import to_matplotlib

    return to_matplotlib(curves_data(study, log_y=log_y), ax)


def history(study: Any, ax: Any = None, *, log_y: bool = False) -> Any:
    """Each trial's value and the best so far. Drawn into an ``ax`` that already holds a
    history, a study gets the next colour and its name in the legend."""
    from dataclasses import replace

    from .mpl_render import to_matplotlib

    snap = snapshot(study)
    chart = history_data(snap, log_y=log_y)
    before = 0 if ax is None else sum(str(line.get_gid() or "").startswith("best-so-far") for line in ax.get_lines())
    chart = replace(chart, series=tuple(
        replace(s, label=legend_label(f"{snap.name}: {s.label}"), gid=f"{s.gid}-{before}" if before else s.gid,
                color=group_color(before) if before else s.color)
        for s in chart.series))
    return to_matplotlib(chart, ax)


__all__ = [
    "KINDS", "PALETTE", "STATE_COLORS", "Axis", "Chart", "Diagram", "Node", "Parallel", "Record", "Series",
    "Snapshot", "adam_in_action", "adam_path", "check_output", "replace_file", "comparison", "contour", "contours", "curves_data", "history",
    "history_data", "importance_bars", "learning_curves", "overfitting", "parallel", "process", "records_of",
    "rosenbrock", "run_samplers", "save", "slices", "snapshot",
]
