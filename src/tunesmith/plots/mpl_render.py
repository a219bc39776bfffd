"""Render records with matplotlib (PNG, PDF, SVG): ``to_matplotlib(record, ax=None) -> Axes``."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from ..space.params import plural
from .records import (
    LINE,
    MAX_TITLE,
    MOST_LINES,
    Axis,
    Chart,
    Diagram,
    Parallel,
    Record,
    Series,
    end_ticks,
    in_lines,
    longest_fit,
    short_labels,
    short_title,
    wrap_to_width,
)


@overload
def plain(text: str) -> str: ...
@overload
def plain(text: None) -> None: ...
def plain(text: str | None) -> str | None:
    """``text`` drawn as it is: each ``$`` escaped, so that a name or a choice holding two of them
    (``$\\foo$``) is not read as math (a formula matplotlib cannot parse ended the plot)."""
    return None if text is None else text.replace("$", "\\$")


def _legend(label: str | None) -> str | None:
    """A series' legend label: :func:`plain`, and one starting with ``_`` (a study named ``_base``)
    after a zero-width space, since matplotlib leaves such labels out of the legend."""
    return None if label is None else ("\u200b" if label.startswith("_") else "") + plain(label)


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("image plots need matplotlib: pip install 'tunesmith[plots]'") from None
    from ..integrations._common import check_floor

    # before 3.8.4 built for NumPy 1: under NumPy 2 pyplot failed with "numpy.core.multiarray failed to import"
    return check_floor(matplotlib, (3, 8, 4), extra="plots", what="an image plot")


def _plt() -> Any:
    _matplotlib()
    import matplotlib.pyplot as plt

    return plt


def new_axes(n: int = 1, *, size: tuple[float, float] = (7.0, 4.5)) -> list[Any]:
    plt = _plt()
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    flat = list(axes.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return flat[:n]


def to_matplotlib(record: Record, ax: Any = None) -> Any:
    ax = ax if ax is not None else new_axes(1, size=(11, 4.5) if isinstance(record, (Parallel, Diagram)) else (7, 4.5))[0]
    if isinstance(record, Parallel):
        _parallel(ax, record)
    elif isinstance(record, Diagram):
        _diagram(ax, record)
    else:
        _chart(ax, record)
    lines = _title_lines(ax, short_title(record.title))
    if len(record.title) > MAX_TITLE and len(lines) > TITLE_LINES:  # already not whole: its start and end
        lines = [*lines[:TITLE_LINES - 2], "…", lines[-1]]
    ax.set_title(plain("\n".join(lines)), fontsize="medium")
    if record.empty:
        ax.text(0.5, 0.5, plain(short_title(record.message or "")), ha="center", va="center", transform=ax.transAxes,
                wrap=True)
    return ax


#: the lines of an image's title longer than :data:`MAX_TITLE` (cut): its first lines, "…" and its last (the figure
#: does not grow: the 27 lines of a name of a megabyte ran off its top, with the start that says what the plot is)
TITLE_LINES = 6
#: points at which a title's letters are measured: at 100 a hinted advance is within 1%
_MEASURED_AT = 100


def _title_lines(ax: Any, title: str) -> list[str]:
    """``title`` in lines as wide as ``ax`` at most (matplotlib centres a title over its axes and
    draws it on one line however long, cut at the figure's edge), measured in the title's font:
    the sum of its characters' advances (kerning only narrows a line), unhinted: matplotlib before
    3.9 hints them at 8 times the width (text.hinting_factor), and titles were wrapped 8 times too narrow."""
    from matplotlib.font_manager import FontProperties, findfont, get_font

    font = FontProperties(size="medium", weight=_matplotlib().rcParams["axes.titleweight"])
    face = get_font(findfont(font))
    face.set_size(_MEASURED_AT, 72)  # matplotlib sets its size before drawing
    scale = font.get_size_in_points() / _MEASURED_AT
    advances: dict[str, float] = {}

    def measure(line: str) -> float:
        for c in set(line) - advances.keys():
            advances[c] = _advance(face, c) * scale
        return sum(advances[c] for c in line)

    width = ax.get_position().width * ax.figure.get_figwidth() * 72  # points, as the text is measured
    return wrap_to_width(title, width, measure)


def _advance(face: Any, c: str) -> float:
    """The advance of ``c`` in ``face`` (in points); a whole em for one the font lacks (a study named
    '研究' raised "No glyphs have been loaded"), as wide as such letters are: the line is never cut."""
    try:
        if c.isascii():  # every font has it: nothing to silence, and the warning filters stay as they are
            return float(face.load_char(ord(c)).linearHoriAdvance) / 65536  # FreeType's 16.16 fixed point
        with warnings.catch_warnings():  # "Glyph ... missing from font": matplotlib says it as it draws the title
            warnings.simplefilter("ignore")
            return float(face.load_char(ord(c)).linearHoriAdvance) / 65536
    except RuntimeError:
        return float(_MEASURED_AT)


def save(records: Sequence[Record], path: Any, *, dpi: int = 120, format: str | None = None) -> None:
    """All records into one image file (a path or a binary file of ``format``), one panel each. Characters
    the font lacks (a study named in Chinese) are drawn in an installed font that has them, where one is."""
    import io

    buf = io.BytesIO()
    said = _image(records, buf, dpi=dpi, format=format or _format_of(path))
    missing = _missing(said)
    fallback = _font_with(set(missing)) if missing else None
    failed: tuple[str, str] | None = None
    if fallback is not None:  # drawn again, that font after the families set: matplotlib takes it for what they lack
        again = io.BytesIO()
        try:
            with _matplotlib().rc_context({"font.family": [*_matplotlib().rcParams["font.family"], fallback]}):
                said_again = _image(records, again, dpi=dpi, format=format or _format_of(path))
        except (RuntimeError, ValueError, OSError) as e:  # a font FreeType cannot size (a colour emoji's bitmaps)
            failed = (fallback, str(e))
        else:
            buf, said = again, said_again
    _pass_on(said, failed)
    if hasattr(path, "write"):
        path.write(buf.getvalue())
    else:
        with open(path, "wb") as f:
            f.write(buf.getvalue())


def _format_of(path: Any) -> str | None:
    name = path if isinstance(path, str) else getattr(path, "name", None)
    suffix = str(name).rsplit(".", 1)[-1].lower() if name and "." in str(name) else ""
    return suffix or None


def _image(records: Sequence[Record], path: Any, *, dpi: int, format: str | None) -> list[warnings.WarningMessage]:
    """Draw ``records`` into ``path``; what matplotlib warned while drawing."""
    axes = new_axes(len(records), size=(11, 4.5) if len(records) == 1 and records[0].kind in ("parallel", "process")
                    else (7, 4.5))
    fig = axes[0].figure

    # numpy's overflow warnings of matplotlib's arithmetic on values near a float's limit: a drawing that fails
    # of them raises the error below, which says what to do
    @np.errstate(over="ignore", invalid="ignore", divide="ignore")
    def draw() -> None:
        for r, ax in zip(records, axes, strict=True):
            to_matplotlib(r, ax)
        if len(axes) == 1:
            _widen_for_labels(axes[0])
        fig.tight_layout()
        fig.savefig(path, dpi=dpi, format=format)

    try:
        if all(text.isascii() for text in _texts(records)):  # no glyph to miss: matplotlib warns as it would,
            draw()  # and the filters stay as they are (a change makes Python forget the warnings it has shown,
            return []  # so a library's warning came again each trial where a callback saved an image)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            draw()
        return list(said)
    except (ValueError, OverflowError, IndexError) as e:  # matplotlib's "arange: cannot compute length", "cannot
        # convert float infinity", and before 3.9 "index 0 is out of bounds" (its ticker found no tick)
        huge, (lo, hi) = _largest(records), _log_span(records)
        decades = math.log10(hi) - math.log10(lo)
        if huge < HUGE and decades < WIDE_LOG:
            raise
        what = (f"values as large as {huge:.4g}: its axis arithmetic overflows past the largest float" if huge >= HUGE
                else f"a log axis over {decades:.0f} decades ({lo:.3g} to {hi:.3g}): its ticks overflow")
        raise ValueError(f"matplotlib cannot draw {what}. Write the plot as HTML (a path ending in .html), which "
                         "plotly draws, or draw a transformed value") from e
    finally:
        _plt().close(fig)


def _texts(item: Any) -> Iterator[str]:
    """Every string in ``item`` (records, their series, labels and categories), where a glyph could be missing."""
    if isinstance(item, str):
        yield item
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        for field in dataclasses.fields(item):
            yield from _texts(getattr(item, field.name))
    elif isinstance(item, np.ndarray):
        if item.dtype.kind in "OUS":
            yield from (str(x) for x in item.ravel())
    elif isinstance(item, Mapping):
        for key, value in item.items():
            yield from _texts(key)
            yield from _texts(value)
    elif isinstance(item, (list, tuple)):
        for x in item:
            yield from _texts(x)


#: matplotlib's warning for a character its font lacks, drawn as a box: one a character, each time it is drawn
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font\(s\) (.+?)\.?$")


def _missing(said: Sequence[warnings.WarningMessage]) -> dict[str, str]:
    """The characters matplotlib drew as boxes, each with the fonts it looked in."""
    missing: dict[str, str] = {}
    for w in said:
        glyph = _MISSING_GLYPH.match(str(w.message))
        if glyph:
            missing.setdefault(chr(int(glyph.group(1))), glyph.group(2))
    return missing


#: whether each installed font file has a character, by file and code point: asked once a process, and only
#: when a text needs another font
_HAS: dict[str, dict[int, bool]] = {}


def _font_with(chars: set[str]) -> str | None:
    """The family of an installed font (matplotlib's list) that has every one of ``chars``, else of the one
    that has the most of them; None where none has any."""
    from matplotlib import font_manager

    wanted = sorted({ord(c) for c in chars})
    best, most = None, 0
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: (e.name, e.fname)):
        if entry.name.startswith("Last Resort"):  # matplotlib's own: a box for every character
            continue
        has = _how_many(entry.fname, wanted)
        if has > most:
            best, most = entry.name, has
            if has == len(wanted):
                break
    return best


def _how_many(fname: str, codes: Sequence[int]) -> int:
    """How many of ``codes`` the font file has: each asked of FreeType once, not the file's whole character map
    (45,000 code points a CJK font): a first search through this machine's fonts and ten CJK-sized ones took
    1.20 s reading the maps, 0.26 s asking (benchmarks/bench_font_search.py)."""
    from matplotlib.ft2font import FT2Font

    known = _HAS.setdefault(fname, {})
    unknown = [c for c in codes if c not in known]
    if unknown:
        try:
            font = FT2Font(fname)
            known.update({c: font.get_char_index(c) != 0 for c in unknown})
        except (OSError, RuntimeError, ValueError):  # a font file gone or unreadable since matplotlib listed it
            known.update(dict.fromkeys(unknown, False))
    return sum(known[c] for c in codes)


def _pass_on(said: Sequence[warnings.WarningMessage], failed: tuple[str, str] | None = None) -> None:
    """Warn again what matplotlib warned while drawing an image, but its "Glyph 27169 (...) missing from font(s)
    DejaVu Sans" for each character and each time it is drawn (81 lines for a study named in Chinese) as one
    warning that names the characters and what to do. ``failed``: the installed font that has them and the error
    it failed to draw with, said instead of "no installed font has them"."""
    missing = _missing(said)
    for w in said:
        if not _MISSING_GLYPH.match(str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if not missing:
        return
    fonts = ", ".join(sorted(set(missing.values())))
    chars = "".join(list(missing)[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
    drawn, them = ("it is drawn as a box", "it") if len(missing) == 1 else ("they are drawn as boxes", "them")
    head = f"the image's font ({fonts}) has no glyph for {plural(len(missing), 'character')} of its text ({chars}): "
    if failed:
        font, error = failed
        why = (": its pictures come in fixed sizes, as a colour emoji font's, and matplotlib draws outlines only"
               if "pixel size" in error else "")
        warnings.warn(f"{head}{drawn}. The installed font {font} has {them}, but matplotlib failed to draw in it "
                      f"({error}){why}. Install a font that draws {them} in outlines (emoji: Symbola; Debian and "
                      "Ubuntu: apt install fonts-symbola), which tunesmith then finds, or write the plot as HTML "
                      "(the browser draws colour emoji)", UserWarning, stacklevel=2)
        return
    warnings.warn(f"{head}{drawn}, and no installed font has {them}. Install one that has {them} (Chinese, "
                  "Japanese, Korean: the Noto Sans CJK fonts; Debian and Ubuntu: apt install fonts-noto-cjk), "
                  "which tunesmith then finds, or name it first in matplotlib's font.family "
                  "(matplotlib.rcParams['font.family'] = ['Noto Sans CJK JP', 'DejaVu Sans']), or write the plot "
                  "as HTML (the browser finds a font)", UserWarning, stacklevel=2)


def _widen_for_labels(ax: Any) -> None:
    """Widen ``ax``'s figure where its labels need more than the margins beside the axes (a pair of two long
    parameter names as an importance bar's label, 67 characters, ran off a 7-inch image, and ``tight_layout``
    squeezed the bars to a sliver): the axes keep the width they were drawn at (their title was cut into lines
    that wide), the labels get what they measure."""
    fig = ax.figure
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, every label and colour bar included
    box = ax.get_position()  # fractions of the figure
    width = fig.get_figwidth()
    left, right = box.x0 * width - drawn.x0, drawn.x1 - box.x1 * width
    needed = left + box.width * width + right + 0.3  # tight_layout's padding, about 0.1 inch a side
    if needed > width:
        fig.set_figwidth(needed)


#: magnitudes from which matplotlib's axis limits, ticks and colour bars can overflow (1e308 fails, 1e300 draws)
HUGE = 1e300


#: decades from which matplotlib's log ticks can overflow (1e-250..1e250 fails, 1e-200..1e200 draws)
WIDE_LOG = 200


def _log_span(records: Sequence[Record]) -> tuple[float, float]:
    """The smallest and largest positive numbers drawn on a log axis of ``records`` ((1.0, 1.0) if none)."""
    seqs = [v for r in records if isinstance(r, Chart) for s in r.series
            for v, log in ((s.x, r.log_x), (s.y, r.log_y)) if log]
    nums = [float(v) for seq in seqs for v in seq
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and 0 < float(v) < math.inf]
    return (min(nums), max(nums)) if nums else (1.0, 1.0)


def _largest(records: Sequence[Record]) -> float:
    """The largest finite magnitude among the numbers that ``records`` draw (0.0 if none)."""
    seqs: list[Any] = []
    for r in records:
        if isinstance(r, Parallel):
            seqs += [r.color, *(a.values for a in r.axes)]
        elif isinstance(r, Chart):
            seqs += [v for s in r.series for v in (s.x, s.y, s.low, s.high, s.colors, *(s.z or ()))]
    nums = [abs(float(v)) for seq in seqs for v in seq or ()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
    return max((v for v in nums if np.isfinite(v)), default=0.0)


def _chart(ax: Any, c: Chart) -> None:
    if c.x_categories:  # the choices in the space's order, not in the order the trials drew them
        ax.xaxis.update_units(np.array(c.x_categories))
    for s in c.series:
        _draw(ax, s, c)
    if c.x_categories:  # each choice at its position (0, 1, ...), cut into lines that fit its slot
        _fit_ticks(ax, [plain(choice) for choice in short_labels([str(x) for x in c.x_categories])], fontsize=None)
    ax.set_xlabel(plain(short_labels([c.x_label])[0]))
    ax.set_ylabel(plain(short_labels([c.y_label])[0]))
    if c.log_x:
        ax.set_xscale("log")
    if c.log_y:
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    for axis, whole, log in ((ax.xaxis, c.int_x, c.log_x), (ax.yaxis, c.int_y, c.log_y)):
        if whole and not log:
            axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no "epoch 2.5", "degree 3.25"
        elif whole:  # a log integer (n_estimators from 5 to 200) ticked 40, 60, not 4×10¹, 6×10¹
            axis.set_major_formatter(_plain_log())
            axis.set_minor_formatter(_plain_log(minor=True))
    if any(s.label for s in c.series):
        ax.legend(loc="best", fontsize="small")


def _plain_log(*, minor: bool = False) -> Any:
    """matplotlib's ``LogFormatter`` (the ticks it labels: decades, and between them where the axis spans
    about one), each label as a plain number: its own wrote "1000 1e4 1e+05" on one axis."""
    from matplotlib.ticker import LogFormatter

    class PlainLog(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLog(labelOnlyBase=not minor)


def _draw(ax: Any, s: Series, c: Chart) -> None:
    style = {"color": s.color, "lw": s.width, "alpha": s.opacity, "label": _legend(s.label), "gid": s.gid}
    if s.dash:
        style["ls"] = s.dash
    if s.mode in ("lines", "steps") and len(s.x) == 1:  # a line of one point draws nothing: a dot (one trial's best)
        style["marker"] = s.marker or "o"
    if s.mode == "lines":
        ax.plot(list(s.x), list(s.y), **style)
    elif s.mode == "steps":
        ax.step(list(s.x), list(s.y), where="post", **style)
    elif s.mode == "markers":
        _markers(ax, s, c)
    elif s.mode == "band":
        ax.fill_between(list(s.x), list(s.low or ()), list(s.high or ()), color=s.color, alpha=s.opacity, lw=0,
                        step="post", gid=s.gid)
    elif s.mode == "bars":
        ax.barh(range(len(s.y)), list(s.x), xerr=[s.error_below(), s.error_above()] if s.error else None,
                color=s.color, capsize=3, gid=s.gid)
        ax.set_yticks(range(len(s.y)), [plain(y) for y in short_labels([str(y) for y in s.y])])
    elif s.mode == "contour":
        cs = ax.contourf(list(s.x), list(s.y), np.array(s.z), levels=25,
                         cmap=_cmap(s.color) + ("_r" if c.reverse_scale else ""))
        ax.figure.colorbar(cs, ax=ax, label=plain(c.color_label or ""))
    elif s.mode == "vline":
        for i, x in enumerate(s.x):
            ax.axvline(x, color=s.color, ls=s.dash or "-", lw=s.width, label=_legend(s.label) if i == 0 else None,
                       zorder=1)


def _markers(ax: Any, s: Series, c: Chart) -> None:
    size = 120 if s.marker == "*" else 16
    if s.colors is not None:
        sc = ax.scatter(list(s.x), list(s.y), c=list(s.colors), cmap="viridis", s=size, marker=s.marker or "o",
                        edgecolors="#333333", linewidths=0.3, label=_legend(s.label), gid=s.gid, zorder=3)
        ax.figure.colorbar(sc, ax=ax, label=plain(c.color_label or ""))
    else:
        ax.plot(list(s.x), list(s.y), s.marker or "o", color=s.color, ms=11 if s.marker == "*" else 4,
                mec="#333333" if s.color == "#ffffff" else s.color, mew=0.5, label=_legend(s.label), gid=s.gid,
                alpha=s.opacity, zorder=3)


def _cmap(name: str) -> str:
    return {"Viridis": "viridis", "Greys": "Greys"}.get(name, "viridis")


#: the lines a tick label may take; a longer one keeps its first and last lines, "…" between them
TICK_LINES = MOST_LINES
#: the characters ("0") a slot between two ticks must hold for labels to be cut into lines there; in a narrower
#: one (many choices) labels wider than it are drawn upright instead
TICK_CHARACTERS = 6
#: the pixels between two ticks from which each choice not named keeps a (minor) tick mark: closer, the marks
#: of 5,000 choices drew a black bar
MARK_GAP = 3.0


def _fit_ticks(ax: Any, labels: Sequence[str], *, fontsize: float | None) -> None:
    """``labels`` on ``ax``'s x ticks 0, 1, ..., each cut into lines no wider than the space between two ticks
    (at spaces, and a word wider than that, a long choice or a name in wide characters, where it must be), at most
    :data:`TICK_LINES` (a longer one: its first line, "…" and as much of its end as fits a line): long choices of
    a slice and long parameter names of parallel coordinates ran into each other (rotated or not), where each now
    keeps to its own slot. Where that space holds fewer than :data:`TICK_CHARACTERS` characters and a label is wider
    (20 choices of 12 characters, 60 numbers) they are drawn upright instead, not cut into lines of a character
    or two that all read alike, and only every k-th is named where a line is taller than the space between two
    ticks: the labels measured and set are as many as the axis has room for, whatever the number of choices
    (a space's 50,000, of which the trials drew two, measured and set 50,002 labels for minutes)."""
    from matplotlib.font_manager import FontProperties

    renderer = ax.figure.canvas.get_renderer()
    ax.get_xlim()  # the limits the drawn data set
    ax.xaxis.set_view_interval(0, len(labels) - 1)  # and every label's tick, as set_xticks widens them (after)
    step = abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0])  # pixels
    slot = 0.9 * step
    prop = FontProperties(size=fontsize or _matplotlib().rcParams["xtick.labelsize"])

    def measure(text: str) -> float:
        return float(renderer.get_text_width_height_descent(text, prop, ismath=False)[0])

    # (a label narrower than a pixel is none: the second test measures at most as many as the axis has pixels)
    if slot >= measure("0" * TICK_CHARACTERS) or (step >= 1 and all(measure(label) <= slot for label in labels)):
        ax.set_xticks(range(len(labels)), ["\n".join(in_lines(label, slot, measure)) for label in labels],
                      fontsize=fontsize)
        return
    # upright, as long as a third of the figure's height at most (longer: its start, "…", its end), and on every
    # k-th tick where a line is taller than the space between two ticks
    tall = ax.figure.bbox.height / 3

    def upright(label: str) -> str:
        if measure(label) <= tall:
            return label
        head, tail = longest_fit(label, tall / 2, measure), longest_fit(label[::-1], tall / 2, lambda end: measure(end[::-1]))
        return label[:head] + "…" + label[-tail:]

    line = renderer.points_to_pixels(prop.get_size_in_points()) * 1.2  # a line as drawn: 1.2 times the size
    named = range(0, len(labels), max(1, math.ceil(line / step)))
    ax.set_xticks(named, [upright(labels[i]) for i in named], fontsize=fontsize, rotation=90)
    if named.step > 1 and step >= MARK_GAP:
        ax.set_xticks(range(len(labels)), minor=True)


def _parallel(ax: Any, p: Parallel) -> None:
    plt = _plt()
    if not p.axes:
        ax.set_axis_off()
        return
    n = len(p.axes)
    cols = np.array([_unit(a.values, a) for a in p.axes]).T  # (lines, axes) on [0, 1]
    color = np.asarray(p.color, dtype=float)
    lo, hi = color.min(), color.max()
    pad = 0.0 if hi > lo else 0.1 * abs(lo) or 1.0  # one value: its lines at the middle of the scale the bar shows
    norm = plt.Normalize(lo - pad, hi + pad)
    cmap = plt.get_cmap("viridis_r" if p.reverse_scale else "viridis")
    order = np.argsort(color)[::-1] if p.reverse_scale else np.argsort(color)  # best drawn last (on top)
    from matplotlib.collections import LineCollection

    xs = np.arange(n)
    lines = LineCollection([np.column_stack([xs, cols[i]]) for i in order], colors=cmap(norm(color[order])),
                           linewidths=0.8, alpha=0.6, gid="lines")
    ax.add_collection(lines)
    ax.set_ylim(-0.05, 1.05)
    for j, a in enumerate(p.axes):
        ax.axvline(j, color="#333333", lw=0.8)
        lo, hi = a.span
        ticks = a.ticks or end_ticks(lo, hi, a.log)
        for t, label in ticks:  # at the height of the lines through it (0.5 for an axis of one value)
            ax.text(j + 0.03, float(_unit([t], a)[0]), plain(label), fontsize=7, va="center")
    ax.set_yticks([])
    ax.set_xlim(-0.1, n - 0.6)
    _fit_ticks(ax, [plain(a) for a in short_labels([a.name for a in p.axes])], fontsize=8)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(sm, ax=ax, label=plain(p.color_label))


def _unit(values: Sequence[float], axis: Axis) -> np.ndarray:
    """``values`` on [0, 1] of ``axis``' span (a categorical's unused choices included)."""
    v = np.asarray(values, dtype=float)
    lo, hi = axis.span
    return (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)


def _diagram(ax: Any, d: Diagram) -> None:
    from matplotlib.patches import FancyBboxPatch

    w, h = d.box
    for n in d.nodes:
        ax.add_patch(FancyBboxPatch((n.x - w, n.y - h), 2 * w, 2 * h, boxstyle="round,pad=0.02",
                                    fc="#E8F1F8", ec="#0072B2", gid=f"node-{n.key}"))
        lines = 1 + len(n.detail.splitlines())  # the label's line on top, the detail's lines below it
        top = n.y + 0.5 * LINE * lines
        ax.text(n.x, top - 0.5 * LINE, plain(n.label), ha="center", va="center", fontsize=9, weight="bold")
        ax.text(n.x, top - LINE - 0.5 * LINE * (lines - 1), plain(n.detail), ha="center", va="center", fontsize=7,
                linespacing=1.2)
    for a, b, label in d.edges:
        x0, y0, x1, y1 = d.arrow(a, b)
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "#555555"})
        right = x0 >= d.node(a).x
        dx, dy = (0, 0.04) if y0 == y1 else ((0.04 if right else -0.04), 0)
        ax.text((x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy, plain(label), fontsize=6, color="#555555",
                ha="center" if y0 == y1 else ("left" if right else "right"), va="bottom" if y0 == y1 else "center")
    xs = [n.x for n in d.nodes] or [0.0]
    ys = [n.y for n in d.nodes] or [0.0]
    ax.set_xlim(min(xs) - w - 0.1, max(xs) + w + 0.1)
    ax.set_ylim(min(ys) - h - 0.28, max(ys) + h + 0.28)
    ax.set_aspect("equal")
    ax.set_axis_off()
