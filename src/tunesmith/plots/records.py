"""The data layer's records: plain values saying what a plot draws, for any renderer.

A plot function reads trials and returns one of :class:`Chart` (series on x/y axes),
:class:`Parallel` (parallel coordinates) or :class:`Diagram` (boxes and arrows).
Each has ``kind``, ``title`` and ``message``: when there is nothing to draw,
``message`` says why (and ``empty`` is true). Renderers (:mod:`.plotly_render`,
:mod:`.mpl_render`) only draw what a record says; tests assert on records.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import Any

from ..space import Space
from ..trial import Direction, FrozenTrial, TrialState, best_of, finite_float

#: the longest parameter name drawn whole on an image's axis (longer: its middle becomes "…"); an HTML
#: plot's bar labels and axis titles draw :data:`HTML_NAME_WIDTH` (a name of 200 squeezed the bars)
NAME_WIDTH = 32
HTML_NAME_WIDTH = 48


def short_labels(labels: Sequence[str], width: int = NAME_WIDTH) -> list[str]:
    """Labels whose parameter names (a pair's "a × b": each name) fit ``width`` characters,
    their middle cut out; the labels whole where cutting would make two of them alike, up to
    :data:`MAX_TITLE` characters (:func:`short_title`: two names of a megabyte a database's writer made
    alike in their ends were drawn whole, an image's parallel axes measuring them for minutes)."""
    def cut(name: str) -> str:
        return name if len(name) <= width else name[: (width - 1) // 2] + "…" + name[-(width // 2):]

    short = [" × ".join(cut(part) for part in label.split(" × ")) for label in labels]
    return short if len(set(short)) == len(set(labels)) else [short_title(label) for label in labels]


def wrap_to_width(text: str, width: float, measure: Callable[[str], float], *, most: int | None = None) -> list[str]:
    """``text`` cut into lines no wider than ``width`` as ``measure`` (a line's drawn width) says:
    at spaces, and a word wider than a line (a long study name) wherever it must be cut. Each cut
    measures no more than twice the line it makes: a word of a megabyte (a name a database's writer
    chose) is cut in time proportional to it, where measuring what was left of it for each line took hours.
    ``most``: only the first ``most`` lines, cut and measured (a tick label shows three: a choice of a
    megabyte was cut into 50,000 lines first)."""
    return list(islice(_lines(text, width, measure), most))


def _lines(text: str, width: float, measure: Callable[[str], float]) -> Iterator[str]:
    """The lines of :func:`wrap_to_width`, each cut as it is asked for."""
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            joined = f"{line} {word}" if line else word
            if measure(joined) <= width:
                line = joined
                continue
            if line:
                yield line
            start = 0
            while len(word) - start > 1:
                cut = longest_fit(word, width, measure, start)
                if start + cut >= len(word):
                    break
                yield word[start:start + cut]
                start += cut
            line = word[start:]
        yield line


#: the lines a tick's text or an axis' title may take (a longer one: its first line, "…" and its end)
MOST_LINES = 3


def in_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` in lines no wider than ``width`` (:func:`wrap_to_width`), at most :data:`MOST_LINES`: a longer
    one keeps its first line, "…" and as much of its end as fits a line (an image's and a page's ticks and
    parallel axes' titles alike)."""
    lines = wrap_to_width(text, width, measure, most=MOST_LINES + 1) or [""]  # those shown, and one: cut or not
    if len(lines) <= MOST_LINES:
        return lines
    text = text.rstrip()
    tail = longest_fit(text[::-1], width, lambda end: measure(end[::-1]))
    end = text[-tail:]
    return [lines[0], "…", end[end.rfind("\n") + 1:].lstrip()]  # its last line's end: one line, as the others


def longest_fit(word: str, width: float, measure: Callable[[str], float], start: int = 0) -> int:
    """How many of ``word``'s characters from ``start`` on fit ``width`` (at least one: a line shows
    something), measuring pieces no longer than twice what fits (doubling, then halving)."""
    low, high, probe = 1, len(word) - start, 2
    while probe < high:
        if measure(word[start:start + probe]) > width:
            high = probe - 1
            break
        low, probe = probe, 2 * probe
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if measure(word[start:start + mid]) <= width else (low, mid - 1)
    return low


#: the most characters of a plot's title drawn: a longer one (a name a database's writer made a megabyte
#: long) keeps its start, "…" and its end (a study name and a parameter's name, 512 each, fit whole)
MAX_TITLE = 1200


def short_title(title: str) -> str:
    """``title``, or its first and last characters and "…" between them where it is longer than :data:`MAX_TITLE`."""
    if len(title) <= MAX_TITLE:
        return title
    head = (MAX_TITLE - 1) // 2
    return title[:head] + "…" + title[-(MAX_TITLE - 1 - head):]


#: the columns of a line of a legend's entry (a study's or a sampler's name): at most :data:`MOST_LINES` lines,
#: as an axis' title (a longer name: its first line, "…" and its end)
LEGEND_COLUMNS = 32


def legend_label(name: str, note: str = "") -> str:
    """``name`` as a legend's entry, in lines of at most :data:`LEGEND_COLUMNS` columns (:func:`in_lines`), ``note``
    ("(median of 3 runs)") after it, or under it where the line would be longer: a legend drew a study's or a sampler's name whole on one line, however long
    (a name of 300 characters took the figure's whole width, the plot squeezed beside it)."""
    from ..importance import columns

    lines = in_lines(name, LEGEND_COLUMNS, columns)
    if note:  # after the name's last line where it fits there, else on a line of its own
        lines = [*lines[:-1], f"{lines[-1]} {note}"] if columns(f"{lines[-1]} {note}") <= LEGEND_COLUMNS else [*lines, note]
    return "\n".join(lines)


#: colour of each trial state (a colour-blind-safe palette)
STATE_COLORS = {
    TrialState.COMPLETE: "#0072B2",
    TrialState.PRUNED: "#999999",
    TrialState.PAUSED: "#E69F00",
    TrialState.RUNNING: "#009E73",
    TrialState.FAILED: "#D55E00",
    TrialState.WAITING: "#CC79A7",
}
#: colours for several groups on one chart (Okabe-Ito, then Tableau): distinct, in this order
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
           "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1")
BEST_COLOR = "#000000"


def group_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    """One drawn thing on x/y axes.

    mode: "lines", "markers", "steps" (a step line, post), "band" (filled between
    ``low`` and ``high``), "bars" (horizontal bars of length ``x`` at labels ``y``,
    error ``error`` above and under, kept within 0..1: :meth:`error_above`, :meth:`error_below`), "contour"
    (``z[i][j]`` at ``x[j]``, ``y[i]``), "vline" (vertical lines at ``x``). ``gid`` names it for tests and for the renderers' ids.
    ``marker``: of "markers", and of a line or step series of one point, which is drawn as that marker
    ("o" where none is named).
    """

    label: str | None
    x: Sequence[Any]
    y: Sequence[Any] = ()
    mode: str = "lines"
    color: str = "#0072B2"
    width: float = 1.5
    dash: str | None = None
    marker: str | None = None
    opacity: float = 1.0
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    error: Sequence[float] | None = None
    z: Sequence[Sequence[float]] | None = None
    hover: Sequence[str] | None = None
    gid: str | None = None
    colors: Sequence[float] | None = None  # per-point values for a colour scale (markers)

    def error_below(self) -> list[float]:
        """A bar's error under its length, down to 0 at most: a share of the variance is never negative, and
        fANOVA's band (the trees' spread) drawn whole reached -0.08 under a fraction of 0.04."""
        return [min(float(e), max(float(x), 0.0)) for x, e in zip(self.x, self.error or (), strict=False)]

    def error_above(self) -> list[float]:
        """A bar's error over its length, up to 1 at most: a share is never past the whole, and a search's band
        drawn whole passed it (0.968 ± 0.160 to 1.13)."""
        return [min(float(e), max(1.0 - float(x), 0.0)) for x, e in zip(self.x, self.error or (), strict=False)]


@dataclass(frozen=True)
class Chart:
    kind: str
    title: str
    x_label: str = ""
    y_label: str = ""
    series: tuple[Series, ...] = ()
    log_x: bool = False
    log_y: bool = False
    message: str | None = None
    color_label: str | None = None  # the colour scale's title, when markers carry ``colors``
    int_x: bool = False  # whole numbers only on the x axis (trials, steps, epochs, an Int parameter)
    int_y: bool = False
    reverse_scale: bool = False  # a value colour scale (contour) reversed: small values drawn as best (minimize)
    x_categories: tuple[str, ...] = ()  # a categorical x axis's labels in their order (a parameter's choices)

    @property
    def empty(self) -> bool:
        return self.message is not None

    def find(self, gid: str) -> Series:
        return next(s for s in self.series if s.gid == gid)


def axis_label(position: float, log: bool = False, digits: int = 3) -> str:
    """The value at a parallel axis' ``position`` (``10**position`` on a log axis) as a tick
    label: a whole number whole (4999, not "5e+03"), any other to ``digits`` significant digits (2e-10,
    not "0": whole within a part in 10^9 of the value, not of 1)."""
    v = 10**position if log else position
    whole = round(v)
    return str(whole) if abs(v) < 1e15 and abs(v - whole) <= 1e-9 * abs(v) else f"{v:.{digits}g}"


def end_ticks(lo: float, hi: float, log: bool = False) -> list[tuple[float, str]]:
    """The ends of a parallel axis as ticks (one for an axis of one value), labelled by
    :func:`axis_label` with the digits that tell them apart (1000.13 and 1000.19, not "1e+03" twice)."""
    ends = list(dict.fromkeys((lo, hi)))
    digits = next((d for d in range(3, 17) if len({axis_label(v, log, d) for v in ends}) == len(ends)), 17)
    return [(v, axis_label(v, log, digits)) for v in ends]


@dataclass(frozen=True)
class Axis:
    """One axis of parallel coordinates: ``values`` per line (positions), with ``ticks``
    (position, label) for categorical or inactive values; ``log``: positions are log10."""

    name: str
    values: Sequence[float]
    ticks: Sequence[tuple[float, str]] = ()
    log: bool = False

    @property
    def span(self) -> tuple[float, float]:
        """The axis' range: its values' and its ticks' (every choice of a categorical, used or not)."""
        at = [*self.values, *(t for t, _ in self.ticks)]
        return float(min(at)), float(max(at))


@dataclass(frozen=True)
class Parallel:
    kind: str
    title: str
    axes: tuple[Axis, ...] = ()
    color: Sequence[float] = ()  # each line's objective value
    color_label: str = "value"
    reverse_scale: bool = False  # True: small values drawn as best (minimize); best is the scale's yellow end
    message: str | None = None

    @property
    def empty(self) -> bool:
        return self.message is not None


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    detail: str
    x: float
    y: float


@dataclass(frozen=True)
class Diagram:
    kind: str
    title: str
    nodes: tuple[Node, ...] = ()
    edges: tuple[tuple[str, str, str], ...] = ()  # (from, to, label)
    message: str | None = None
    box: tuple[float, float] = (0.5, 0.32)  # half-width and half-height of every box (grows with its text)

    @property
    def empty(self) -> bool:
        return self.message is not None

    def node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)

    def arrow(self, a: str, b: str) -> tuple[float, float, float, float]:
        """Where the arrow from node ``a`` to node ``b`` starts and ends (x0, y0, x1, y1):
        box edge to box edge, shifted aside when the two nodes have arrows both ways."""
        na, nb = self.node(a), self.node(b)
        both = any(e[0] == b and e[1] == a for e in self.edges)
        if na.y == nb.y:
            d = 1.0 if nb.x > na.x else -1.0
            off = (0.1 * d) if both else 0.0
            return na.x + d * self.box[0], na.y + off, nb.x - d * self.box[0], nb.y + off
        d = 1.0 if nb.y > na.y else -1.0
        off = (0.12 * d) if both else 0.0
        return na.x + off, na.y + d * self.box[1], nb.x + off, nb.y - d * self.box[1]


#: half-width and half-height of a diagram's smallest boxes, in its coordinates
BOX = (0.5, 0.32)
#: the height of a line of a box's text, in the diagram's coordinates (both renderers scale to it)
LINE = 0.085


def box_for(texts: Sequence[str]) -> tuple[float, float]:
    """Half-width and half-height of boxes that hold a bold label line and ``texts``' lines."""
    lines = 1 + max((len(t.splitlines()) for t in texts), default=1)
    return BOX[0], max(BOX[1], 0.5 * LINE * lines + 0.08)


Record = Chart | Parallel | Diagram


@dataclass(frozen=True)
class Snapshot:
    """What the plots read of a study, read once: its name, direction, space, trials,
    sampler and pruner names, the pruner's rungs (``rungs(upto)`` -> steps), the test
    scores ``study.evaluate_best`` recorded (search trial number -> mean test score), and
    its storage's URL as commands print it (password masked; "" for a study in memory)."""

    name: str
    direction: Direction
    space: Space
    trials: tuple[FrozenTrial, ...]
    sampler: str = ""
    pruner: str = ""
    rungs: Callable[[int], Sequence[int]] | None = field(default=None, compare=False)
    tests: Mapping[int, float] = field(default_factory=dict)
    storage: str = ""
    seed: int | None = None  # the sampler's, as stored: the study's ``seed=`` (drawn where none was given)

    @property
    def sign(self) -> float:
        return self.direction.sign()

    def in_state(self, *states: TrialState) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state in states]

    @cached_property
    def fitting(self) -> list[FrozenTrial]:
        """The complete trials whose parameters fit the space: what the plots over parameters
        draw (a trial whose parameters were changed outside tunesmith is left out)."""
        return [t for t in self.in_state(TrialState.COMPLETE) if self.space.fits(t.params)]

    def test_of(self, t: FrozenTrial | None) -> float | None:
        """The trial's test score: recorded by ``study.evaluate_best``, else a number the user
        stored as ``trial.set_attr("test_value", x)``; None when there is none."""
        if t is None:
            return None
        if t.number in self.tests:
            return float(self.tests[t.number])
        return finite_float(t.attrs.get("test_value"))  # NaN, or 10**400 (JSON keeps it whole): none

    def best(self) -> FrozenTrial | None:
        return best_of(self.trials, self.direction)


def snapshot(study: Any) -> Snapshot:
    """A :class:`Snapshot` of a Study (one read of its storage); a Snapshot as it is."""
    if isinstance(study, Snapshot):
        return study
    if not all(hasattr(study, a) for a in ("name", "direction", "space", "trials")):
        by_name = "; a study by its name: ts.load_study(name, storage)" if isinstance(study, (str, os.PathLike)) else ""
        raise TypeError(f"this takes a Study (or a plots.snapshot of one), got {type(study).__name__} {study!r}{by_name}")
    from ..study.evaluate import test_results

    pruner = getattr(study, "pruner", None)
    sampler = getattr(study, "sampler", None)
    return Snapshot(
        name=study.name, direction=study.direction, space=study.space, trials=tuple(study.trials),
        sampler=str(getattr(study, "sampler_label", None) or getattr(sampler, "name", "")), pruner=pruner_label(pruner),
        rungs=pruner_rungs(pruner),
        tests={n: r.mean for n, r in test_results(study).items()}, storage=command_url(getattr(study, "storage", None)),
        seed=stored_seed(study),
    )


def stored_seed(study: Any) -> int | None:
    """The sampler's seed a study's settings hold: what runs its trials again. Not the open sampler's: settings
    holding none (an older tunesmith's) open it with a seed drawn anew, another at each open. Where the study
    is not stored by that name (an object of another kind), its sampler's own."""
    from ..exceptions import StudyNotFound

    storage: Any = getattr(study, "storage", None)
    if hasattr(storage, "get_study"):
        try:
            return sampler_seed(storage.get_study(study.name).config.get("sampler"))
        except StudyNotFound:
            pass
    return sampler_seed(getattr(getattr(study, "sampler", None), "describe", dict)())


def sampler_seed(described: Any) -> int | None:
    """The seed in a sampler's description (``describe()``, or the ``sampler`` of a study's stored settings):
    an int, else None (a custom sampler without one, a value changed by hand)."""
    seed = described.get("seed") if isinstance(described, Mapping) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def command_url(storage: Any) -> str:
    """A storage's URL for a command line (password masked), "" for one in memory: no command reads it."""
    from ..storage.memory import MemoryStorage

    return "" if storage is None or isinstance(storage, MemoryStorage) else str(storage.display_url)


def pruner_rungs(pruner: Any) -> Callable[[int], Sequence[int]] | None:
    """The pruner's rungs up to the last step drawn. Without ``max_resource`` the pruner learns
    the full budget from the trials, and the last step reported is not a rung (a trial that
    reaches it trained in full): the step the curves end at is not drawn as one."""
    from ..pruners import ASHA

    if not isinstance(pruner, ASHA):
        return getattr(pruner, "rung_steps", None)
    return lambda upto: pruner.rung_steps(upto, budget=upto)


def pruner_label(pruner: Any) -> str:
    """The registered name (``folds``, ``asha``), and ``(pause=True)`` for one that pauses, as
    ``tunesmith show``, the report, the process diagram and the dashboard print it; "" for none."""
    if pruner is None or type(pruner).__name__ == "NopPruner":
        return ""
    name = str(getattr(pruner, "name", "") or "")
    name = type(pruner).__name__ if name in ("", "custom") else name
    return f"{name} (pause=True)" if getattr(pruner, "pauses", False) else name


def on_log_y(chart: Chart, what: str) -> Chart:
    """The chart, or a ValueError when its logarithmic value axis would silently drop values <= 0."""
    if chart.log_y:
        ys = [float(y) for s in chart.series if s.mode in ("lines", "markers", "steps")
              and not str(s.gid or "").startswith("best-so-far")  # a copy of values counted already
              for y in s.y if y is not None]
        bad = [y for y in ys if y <= 0]
        if bad:
            raise ValueError(f"a logarithmic value axis (--log-y, log_y=True) cannot show values <= 0: {len(bad)} of "
                             f"the {len(ys)} values of {what} are (the smallest {min(bad):.6g}); draw it without it")
    return chart


#: the reason a plot with nothing to draw gives when its own is empty (an error without a message)
NO_REASON = "nothing to draw"


def nothing(kind: str, title: str, why: str) -> Chart:
    return Chart(kind, title, message=why or NO_REASON)
