"""Render records with plotly (interactive HTML): ``to_plotly(record) -> plotly Figure``."""

from __future__ import annotations

import functools
import json
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from numbers import Integral, Real
from typing import Any

from ..importance import columns
from ..trial import CONTROL_BUT_LINES, as_escape
from .records import (
    HTML_NAME_WIDTH,
    LINE,
    MOST_LINES,
    Chart,
    Diagram,
    Parallel,
    Record,
    Series,
    axis_label,
    in_lines,
    short_labels,
    short_title,
    wrap_to_width,
)

SYMBOLS = {"o": "circle", "x": "x", "*": "star", "v": "triangle-down", None: "circle"}
DASHES = {":": "dot", "--": "dash", None: "solid"}
TEMPLATE = "plotly_white"  # every figure's plotly template
MERGE_ABOVE = 50  # more line series than this are drawn as one trace per style
#: the width (px) a title is cut into lines for where the figure sets none: plotly's own default (a
#: page's responsive figure is as wide as its container: :data:`FIT_TITLE` cuts it again there)
FIGURE_WIDTH = 700
TITLE_SIZE = 17  # px: plotly's title font (1.4 times its 12 px text)
TITLE_X = 0.05  # the template's title position (left edge, as a share of the figure's width)
TITLE_LINE = 22  # px the top margin grows by with each line of a title
TITLE_PAD = 12  # px above a title of several lines, drawn from the figure's top down
#: advance widths of the printable ASCII characters (space to ~) in thousandths of the font size, in
#: DejaVu Sans: the Verdana that plotly's fonts ("Open Sans", verdana, arial) fall back to on Linux,
#: wider than Open Sans and Arial, so that a line measured with it fits in any of them
ASCII_WIDTHS = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636,
    636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 631, 575, 775, 752, 295, 295, 656, 557, 863,
    748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635,
    615, 352, 635, 634, 278, 279, 579, 278, 974, 634, 611, 635, 635, 412, 521, 392, 634, 592, 818, 592, 592, 525, 637,
    337, 636, 838,
)


def _go() -> Any:
    try:
        import plotly
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("interactive plots need plotly: pip install 'tunesmith[plots]'") from None
    from ..integrations._common import check_floor

    check_floor(plotly, (5, 5), extra="plots", what="an interactive plot")  # to_html(div_id=...)
    return go


def to_plotly(record: Record, *, template: bool = True, width: int | None = None) -> Any:
    """``record`` as a plotly Figure in the "plotly_white" template; ``template=False``: without it
    (:func:`figure_json` adds it to the JSON, where plotly's copy of it took most of a figure's time).
    ``width``: the figure's width in px (``layout.width``), its title and parallel axes' titles cut into lines
    for it; else they are cut for plotly's default 700 px, which tunesmith's pages cut again as they draw it
    (:data:`FIT_TITLE`), where a figure shown elsewhere (a notebook) keeps them."""
    if width is not None:  # a NumPy integer is a whole number too (plotly's own check takes it)
        if not (isinstance(width, Integral) and not isinstance(width, bool) and width >= 100):
            raise ValueError(f"width must be a whole number of px, at least 100 (plotly's own floor is 10), got {width!r}")
        width = int(width)
    go = _go()
    if isinstance(record, Parallel):
        fig = _parallel(go, record, width or FIGURE_WIDTH)
    elif isinstance(record, Diagram):
        fig = _diagram(go, record)
    else:
        fig = _chart(go, record)
    if width is not None:
        fig.update_layout(width=width)
    title = unseen_as_escapes(short_title(record.title))  # as drawn: an ESC is 4 characters (\x1b)
    lines = _title_lines(title, width or FIGURE_WIDTH)
    top = 110 if isinstance(record, Parallel) else 60
    fig.update_layout(title="<br>".join(_escape(line) for line in lines),
                      margin={"l": 60, "r": 30, "t": top + TITLE_LINE * (len(lines) - 1), "b": 50},
                      meta={**(fig.layout.meta or {}), "title": title, "top": top})  # what FIT_TITLE cuts again
    if template:
        fig.update_layout(template=TEMPLATE)
    if len(lines) > 1:  # from the top down, clear of a legend or axis titles above the plot
        fig.update_layout(title={"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": TITLE_PAD}})
    if record.empty:
        fig.add_annotation(text=_escape(short_title(record.message or "")), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def figure_json(record: Record) -> dict[str, Any]:
    """``to_plotly(record)``'s figure JSON (as ``plotly.io.to_json`` writes it), built without the
    template, which is then added from one JSON copy of it made once."""
    from plotly.io import to_json

    fig: dict[str, Any] = json.loads(to_json(to_plotly(record, template=False), validate=False))
    fig.setdefault("layout", {})["template"] = json.loads(_template_json())
    return fig


@functools.cache
def _template_json() -> str:
    """The figure template's JSON, as a figure carries it in ``layout.template``."""
    from plotly.io import to_json

    return json.dumps(json.loads(to_json(_go().Figure(layout={"template": TEMPLATE}), validate=False))["layout"]["template"])


def _chart(go: Any, c: Chart) -> Any:
    fig = go.Figure()
    lines = [s for s in c.series if s.mode == "lines"]
    rest = [s for s in c.series if s.mode != "lines"]
    for s in (_merged(lines) if len(lines) > MERGE_ABOVE else lines):
        fig.add_trace(_scatter(go, s, c))
    for s in rest:
        for trace in _traces(go, s, c):
            fig.add_trace(trace)
    # as fig.add_vline draws them, all at once: add_vline copies the layout at each line (40 ms a
    # line, a trial's page with its study's rungs took twice as long to draw)
    fig.update_layout(shapes=[{"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain",
                               "line": {"color": s.color, "width": s.width, "dash": DASHES.get(s.dash, "solid")}}
                              for s in rest if s.mode == "vline" for x in s.x])
    if any(s.colors is not None or s.mode == "contour" for s in c.series):  # a colour bar on the right
        fig.update_layout(legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"})
    fig.update_xaxes(title=_escape(short_title(c.x_label)), type="log" if c.log_x else None)
    if c.x_categories:  # the choices in the space's order, and "16" a label, not the number 16
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=_hs(c.x_categories))
        if any(columns(str(x)) > TICK_COLUMNS for x in c.x_categories):  # long choices: lines of their own
            fig.update_xaxes(tickvals=_hs(c.x_categories), ticktext=[_tick_text(str(x)) for x in c.x_categories])
    fig.update_yaxes(title=_escape(short_title(c.y_label)), type="log" if c.log_y else None)
    fig.update_xaxes(**_whole_ticks(c, "x"))
    fig.update_yaxes(**_whole_ticks(c, "y"))
    bars = [s for s in c.series if s.mode == "bars"]
    if bars:  # labels, in their order: parameters named "1", "10", "2" are not numbers on a linear axis
        fig.update_yaxes(type="category", categoryorder="array", categoryarray=_hs(_names(bars[0].y)))
    return fig


def _whole_ticks(c: Chart, axis: str) -> dict[str, Any]:
    """A tick at each whole number on an axis of whole numbers (trials, steps, an Int parameter) that
    spans at most 10 of them: plotly's own ticks there fall on halves ("trial 0.5"), as matplotlib's do not."""
    whole, log = (c.int_x, c.log_x) if axis == "x" else (c.int_y, c.log_y)
    if not whole or log:
        return {}
    values = [float(v) for s in c.series if s.mode != "bars" for v in (s.x if axis == "x" else s.y)
              if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)]
    return {"tick0": 0, "dtick": 1} if values and max(values) - min(values) <= 10 else {}


def _scatter(go: Any, s: Series, c: Chart) -> Any:
    # a line of one point draws nothing: a dot too (the best so far of a study of one trial)
    # (its ``marker``: a pruned trial's curve of one report ends in its "x", not in the "o" of a paused one)
    dot = {"mode": "lines+markers", "marker": {"symbol": SYMBOLS.get(s.marker, "circle")}} if len(s.x) == 1 else {}
    return go.Scatter(x=_hs(s.x), y=list(s.y), name=_legend(s.label), showlegend=s.label is not None,
                      line={"color": s.color, "width": s.width, "dash": DASHES.get(s.dash, "solid"),
                            "shape": "hv" if s.mode == "steps" else "linear"},
                      opacity=s.opacity, hovertext=_hs(s.hover) if s.hover else None, legendgroup=s.color,
                      **(dot or {"mode": "lines"}))


def _traces(go: Any, s: Series, c: Chart) -> list[Any]:
    if s.mode == "steps":
        return [_scatter(go, s, c)]
    if s.mode == "markers":
        marker: dict[str, Any] = {"symbol": SYMBOLS.get(s.marker, "circle"), "size": 11 if s.marker == "*" else 6}
        if s.colors is not None:
            marker.update(color=list(s.colors), colorscale="Viridis", showscale=True,
                          colorbar={"title": _escape(c.color_label or "")})
        else:
            marker.update(color=s.color, line={"width": 0.5, "color": "#333333"})
        return [go.Scatter(x=_hs(s.x), y=list(s.y), mode="markers", name=_legend(s.label), marker=marker,
                           showlegend=s.label is not None, hovertext=_hs(s.hover) if s.hover else None)]
    if s.mode == "band":  # in steps, as the best so far it surrounds (and as matplotlib's step="post")
        fill, edge = _rgba(s.color, s.opacity), {"width": 0, "shape": "hv"}
        return [go.Scatter(x=list(s.x), y=list(s.high or ()), mode="lines", line=edge, showlegend=False,
                           hoverinfo="skip"),
                go.Scatter(x=list(s.x), y=list(s.low or ()), mode="lines", line=edge, fill="tonexty",
                           fillcolor=fill, showlegend=False, hoverinfo="skip")]
    if s.mode == "bars":
        names = _names(s.y)  # a name of 200 characters drawn whole squeezed the bars: its whole in the hover
        return [go.Bar(x=list(s.x), y=_hs(names), orientation="h", marker={"color": s.color},
                       error_x={"type": "data", "array": s.error_above(), "arrayminus": s.error_below()},
                       showlegend=False,
                       hovertext=_hs([short_title(str(y)) for y in s.y]) if names != list(s.y) else None)]
    if s.mode == "contour":
        return [go.Contour(x=list(s.x), y=list(s.y), z=[list(r) for r in (s.z or [])], colorscale=s.color,
                           reversescale=c.reverse_scale, colorbar={"title": _escape(c.color_label or "")}, ncontours=25)]
    if s.label is None:  # vline: drawn as shapes, which have no legend entry
        return []
    return [go.Scatter(x=[None], y=[None], mode="lines", name=_legend(s.label), showlegend=True, hoverinfo="skip",
                       line={"color": s.color, "width": s.width, "dash": DASHES.get(s.dash, "solid")})]


def _legend(label: str | None) -> str:
    """A series' legend entry, escaped, its lines (:func:`~.records.legend_label`) as plotly's ``<br>``."""
    return _escape(label or "").replace("\n", "<br>")


def _names(labels: Sequence[Any]) -> list[str]:
    """Bar labels or axis titles, each parameter name at most :data:`HTML_NAME_WIDTH` characters."""
    return short_labels([str(v) for v in labels], HTML_NAME_WIDTH)


#: the columns of a line of a categorical tick's text in a page; 3 lines at most (longer: the first, "…", the end)
TICK_COLUMNS = 20


def _tick_text(choice: str) -> str:
    """A long choice as a tick's text in lines of :data:`TICK_COLUMNS` (a choice of 152 characters was drawn
    on one line, rotated, and squeezed the plot to a strip; the hover keeps the whole choice)."""
    return _in_lines(choice, TICK_COLUMNS, columns)


def _in_lines(text: str, width: float, measure: Callable[[str], float]) -> str:
    """``text`` escaped, in at most 3 lines of ``width`` as ``measure`` says (longer: the first, "…", the end)."""
    return "<br>".join(_escape(line) for line in in_lines(text, width, measure))


#: px of parallel coordinates' axis titles (plotly's parcoords labels)
AXIS_TITLE_SIZE = 10
#: px an axis title's line takes at most: the first axis is at the figure's left margin (60 px), its title
#: centred on it
AXIS_TITLE_WIDTH = 110


def _axis_titles(names: Sequence[str], width: float) -> list[str]:
    """Parallel coordinates' axis titles in lines no wider than the space between two axes of a figure
    ``width`` px wide (plotly drew each on one line: six names of 38 to 48 characters overlapped by 3 pairs).
    No floor, as the page's own cut has none: lines of at least 50 px overlapped where the axes are closer
    (8 axes in a figure of 400 px, 36 px apart: by 13 px); a line keeps one character at least."""
    between = (width - 60 - 30) / max(len(names) - 1, 1) - 8
    room = min(max(between, 0), AXIS_TITLE_WIDTH)
    return [_in_lines(name, room, lambda line: _title_width(line) * AXIS_TITLE_SIZE / TITLE_SIZE) for name in names]


def _hs(values: Sequence[Any]) -> list[Any]:
    """:func:`_h` of each text in ``values`` (numbers as they are)."""
    return [_escape(v) if isinstance(v, str) else v for v in values]


def _merged(lines: Sequence[Series]) -> list[Series]:
    """Line series of one style joined into one (gaps between them), labels kept."""
    groups: dict[tuple[Any, ...], list[Series]] = {}
    for s in lines:
        groups.setdefault((s.color, s.width, s.dash, s.opacity), []).append(s)
    out = []
    for group in groups.values():
        x: list[Any] = []
        y: list[Any] = []
        hover: list[str] = []
        for s in group:
            x += [*s.x, None]
            y += [*s.y, None]
            hover += [*(s.hover or [""] * len(s.x)), ""]
        label = next((s.label for s in group if s.label), None)
        g = group[0]
        out.append(Series(label, x, y, color=g.color, width=g.width, dash=g.dash, opacity=g.opacity, hover=hover))
    return out


def _rgba(color: str, alpha: float) -> str:
    h = color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _parallel(go: Any, p: Parallel, width: float) -> Any:
    dims = []
    names = [f"{name} (log scale)" if a.log else name for a, name in zip(p.axes, _names([a.name for a in p.axes]),
                                                                           strict=True)]
    for a, title, whole in zip(p.axes, _axis_titles(names, width), names, strict=True):
        # ``name``: the title whole, which an axis dragged elsewhere takes with it (FIT_TITLE cuts it again)
        d: dict[str, Any] = {"label": title, "values": list(a.values), "name": unseen_as_escapes(whole)}
        ticks = a.ticks or (_decades(a.values) if a.log else ())
        if ticks:  # a log axis's ticks name values (0.001, 0.01), never their log10 (-3, -2); plotly draws a tick's
            # text as it is (the choice "d<&>" was drawn "d&lt;&amp;&gt;"), its label and titles as HTML
            d.update(tickvals=[t for t, _ in ticks], ticktext=[unseen_as_escapes(label) for _, label in ticks])
        if a.ticks and a.span[0] < a.span[1]:  # every choice on the axis, the unused ones too
            d.update(range=list(a.span))
        elif not ticks and (plain := _plain_format(a.values)):
            d.update(tickformat=plain)
        dims.append(d)
    line = {"color": list(p.color), "colorscale": "Viridis", "reversescale": p.reverse_scale, "showscale": True,
            "colorbar": {"title": _escape(p.color_label)}}
    # the names whole, for FIT_TITLE to cut again to the space between two axes as the page draws them
    return go.Figure(go.Parcoords(line=line, dimensions=dims) if p.axes else None,
                     layout={"meta": {"axes": [unseen_as_escapes(name) for name in names]}})


def _plain_format(values: Sequence[float]) -> str | None:
    """The tick format of an axis plotly would write in powers of ten (beyond its SI prefixes, f to
    T): "1×10<sup>300</sup>", HTML that parcoords draws as text, where ".4~g" writes 1e+300. As many
    digits as tell its ticks apart (1.234562e+17 and 1.234564e+17, not 1.235e+17 twice); None for
    an axis plotly writes plainly (0.2, 500T, 3f)."""
    top = max((abs(float(v)) for v in values), default=0.0)
    if top == 0:
        return None
    exponent = math.log10(top) + 0.01  # plotly's: floor of this, beyond SI above 14 or below -15
    if -14.995 < exponent < 14.995:
        return None
    span = max(values) - min(values)
    digits = 4 if not 0 < span < math.inf else min(max(math.ceil(math.log10(top / span)) + 2, 4), 15)
    return f".{digits}~g"


def _decades(positions: Sequence[float]) -> list[tuple[float, str]]:
    """Ticks of a log axis whose positions are log10 values: each power of ten in the range
    (the range's ends when it holds fewer than two), labelled with the value."""
    lo, hi = min(positions), max(positions)
    inside = [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1)]
    at = inside if len(inside) >= 2 else list(dict.fromkeys((lo, hi)))
    return [(t, axis_label(t, log=True)) for t in at]


def _diagram(go: Any, d: Diagram) -> Any:
    row = _diagram_layout(d)
    fig = go.Figure()
    fig.update_layout(shapes=row["shapes"], annotations=row["annotations"], height=row["height"])
    fig.update_xaxes(visible=False, range=row["x"])
    fig.update_yaxes(visible=False, range=row["y"])
    # what FIT_TITLE keeps it at, at least; in a narrower box it draws ``stack`` instead (its own min_width)
    fig.update_layout(meta={"min_width": row["min_width"], "stack": _diagram_layout(stacked(d), left=STACK_LEFT)})
    return fig


def _diagram_layout(d: Diagram, left: int = 60) -> dict[str, Any]:
    """The shapes, annotations, axis ranges, height and least width (px) of a figure of ``d`` whose left margin
    is ``left`` px (``margin``)."""
    w, h = d.box
    shapes, notes = [], []  # set at once: each add_shape/add_annotation copied all those before it
    for n in d.nodes:
        shapes.append({"type": "rect", "x0": n.x - w, "x1": n.x + w, "y0": n.y - h, "y1": n.y + h,
                       "line": {"color": "#0072B2"}, "fillcolor": "#E8F1F8"})
        notes.append({"x": n.x, "y": n.y, "text": f"<b>{_escape(n.label)}</b><br>{_escape(n.detail).replace(chr(10), '<br>')}",
                      "showarrow": False, "font": {"size": 11}})
    for a, b, label in d.edges:
        x0, y0, x1, y1 = d.arrow(a, b)
        notes.append({"x": x1, "y": y1, "ax": x0, "ay": y0, "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
                      "showarrow": True, "arrowhead": 2, "text": "", "arrowcolor": "#555555"})
        notes.append({"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "text": _escape(label), "showarrow": False,
                      "yshift": 10 if y0 == y1 else 0, "xshift": 0 if y0 == y1 else (45 if x0 >= d.node(a).x else -45),
                      "font": {"size": 9, "color": "#555555"}})
    low, high = min((n.y for n in d.nodes), default=0) - h - 0.28, max((n.y for n in d.nodes), default=0) + h + 0.28
    x0, x1 = min((n.x for n in d.nodes), default=0) - w - 0.1, max((n.x for n in d.nodes), default=1) + w + 0.1
    # a box's text needs about LINE of the y range per line at 11 px: the figure grows with the boxes
    return {"shapes": shapes, "annotations": notes, "x": [x0, x1], "y": [low, high], "margin": left,
            "height": max(450, int(160 + (high - low) * 15 / LINE)), "min_width": _diagram_width(d, x1 - x0, left)}


#: the gap between two boxes of a stacked diagram, in its coordinates: an arrow and its label; the px of its left
#: margin (its leftmost box is the one beside the column: the arrow labels left of the column lie above or below it)
STACK_GAP, STACK_LEFT = 0.35, 10


def stacked(d: Diagram) -> Diagram:
    """``d``'s row of boxes as a column, top to bottom in the row's order, a box off the row (the pruner, below
    the trials) left of the box it hangs from, and each box only as tall as its lines: a page narrower than the
    row's texts need (a phone: about 780 px for five boxes) draws this, read without scrolling sideways."""
    w = d.box[0]
    h = 0.5 * LINE * (1 + max((len(n.detail.splitlines()) for n in d.nodes), default=1)) + 0.08  # as box_for, no floor
    row = sorted((n for n in d.nodes if n.y == 0), key=lambda n: n.x)
    at = {n.key: (0.0, -i * (2 * h + STACK_GAP)) for i, n in enumerate(row)}
    for n in d.nodes:
        if n.key not in at and row:
            under = min(row, key=lambda r: abs(r.x - n.x))
            at[n.key] = (-(2 * w + 2 * STACK_GAP), at[under.key][1])  # room for the labels of arrows both ways
    nodes = tuple(replace(n, x=at[n.key][0], y=at[n.key][1]) for n in d.nodes)
    return replace(d, nodes=nodes, box=(w, h))


#: px of a diagram's box text and arrow labels, and of the room kept about them
BOX_TEXT, EDGE_TEXT, BOX_ROOM = 11, 9, 10


def _diagram_width(d: Diagram, span: float, left: int = 60) -> int:
    """The narrowest a figure of ``d`` can be drawn with each box's text inside its box and each arrow's label
    over the gap it crosses and a quarter of each box beside it (px, the margins with them); its x range is
    ``span`` wide. In a narrower window (a
    phone, 400 px) the boxes' texts ran into each other: the page keeps the figure this wide and scrolls it."""
    w = d.box[0]
    text = lambda line, size: _title_width(line) * size / TITLE_SIZE  # noqa: E731
    per_unit = [(text(line, BOX_TEXT) * 1.1 + BOX_ROOM) / (2 * w)  # the label is bold: about a tenth wider
                for n in d.nodes for line in (n.label, *n.detail.split("\n"))]
    for a, b, label in d.edges:
        na, nb = d.node(a), d.node(b)
        if na.y == nb.y and abs(nb.x - na.x) > 2 * w:
            per_unit.append((text(label, EDGE_TEXT) + BOX_ROOM) / (abs(nb.x - na.x) - w))  # a quarter box each side
    return math.ceil(max(per_unit, default=0) * span) + left + 30  # the margins: ``left``, 30 right


#: a page's script that cuts a figure's title (``layout.meta``: the title and the top margin of one
#: line) into lines as wide as the figure is drawn, measured in its font, again at each redraw (a
#: responsive figure is as wide as its container, a window resized or a phone): as _title_lines
FIT_TITLE = """
function tunesmithFitTitle(gd) {
  "use strict";
  const meta = gd.layout && gd.layout.meta, full = gd._fullLayout;
  if (!meta || typeof meta.title !== "string" || !full || !full.title) { return; }
  // a redraw while the last cut's relayout is in flight (a window resized during a live update) is fitted once
  // that relayout is done: dropped, the title stayed cut for the width before
  if (gd.tunesmithFitting) { gd.tunesmithRefit = true; return; }
  if (gd.tunesmithStacking) { return; }  // a process diagram redrawn as a column or a row: fitted once it is drawn
  const ctx = tunesmithFitTitle.ctx || (tunesmithFitTitle.ctx = document.createElement("canvas").getContext("2d"));
  ctx.font = full.title.font.size + "px " + full.title.font.family;
  // as wide as the reader sees it: a figure wider than its box (a process diagram on a phone, scrolled sideways)
  // had its title cut for the figure's width, its end out of sight until scrolled to
  const box = gd.parentElement && gd.parentElement.clientWidth, seen = box ? Math.min(full.width, box) : full.width;
  const width = seen - full.width * full.title.x - 10;
  const lines = tunesmithLines(meta.title, (t) => ctx.measureText(t).width <= width);
  const text = tunesmithHtml(lines);
  // the figure as first drawn: a taller title grows it by as much, so that the plot keeps its height
  // (a top margin past the figure's height squeezed the plot away, and plotly.js before 4 threw
  // "Something went wrong with axis scaling" with the relayout left unfinished); a shorter one gives the
  // figure that height back (left to plotly, a page's figure kept the height its tallest title gave it)
  const drawn = gd.layout.tunesmithDrawn || "row";  // a process diagram's row or column (tunesmithFitWidth)
  if (gd.tunesmithFirst && gd.tunesmithFirst.drawn !== drawn) { gd.tunesmithFirst = null; }
  const first = gd.tunesmithFirst || (gd.tunesmithFirst = {"height": full.height, "top": full.margin.t,
                                                           "set": gd.layout.height || null, "drawn": drawn});
  // a legend above the plot (beside a colour bar) is written in rows under the title: as the plot narrows its
  // rows grow in number, and they ran up over the title's lines
  const legend = full.showlegend && full.legend && full.legend.yanchor === "bottom" && full.legend.y >= 1 &&
    gd.querySelector("g.legend");
  const rows = legend ? legend.getBoundingClientRect().height : 0;
  const many = lines.length > 1 || rows > 0;
  const top = Math.max(meta.top + TITLE_LINE * (lines.length - 1), rows ? TITLE_PAD + TITLE_LINE * lines.length + rows + 6 : 0);
  if (text === full.title.text && top === full.margin.t) { return; }
  gd.tunesmithFitting = true;
  const done = () => { gd.tunesmithFitting = false; tunesmithAgain(gd, "tunesmithRefit", tunesmithFitTitle); };
  const height = top > first.top ? first.height + top - first.top : first.height;
  // its box too, where it has a set height (plotly's resize takes the figure's height from it): left as first drawn,
  // a figure grown for its title ran over the next plot, and the next resize shrank it back to the box, its plot
  // squeezed under the taller title
  tunesmithHeight(gd, height);
  Plotly.relayout(gd, {"title.text": text, "margin.t": top, "height": height, "autosize": true,
                       "title.y": many ? 1 : null, "title.yref": many ? "container" : null,
                       "title.yanchor": many ? "top" : null, "title.pad.t": many ? TITLE_PAD : null}).then(done, done);
}
function tunesmithAgain(gd, flag, fit) {
  if (gd[flag]) { gd[flag] = false; fit(gd); }  // the redraw that came in flight, fitted now (once: flag cleared)
}
function tunesmithLines(text, fits) {
  "use strict";
  const lines = [];
  for (const paragraph of text.split("\\n")) {
    let line = "";
    for (let word of paragraph.split(" ")) {
      const joined = line ? line + " " + word : word;
      if (fits(joined)) { line = joined; continue; }
      if (line) { lines.push(line); }
      while (word.length > 1 && !fits(word)) {
        let cut = 1;
        while (cut < word.length && fits(word.slice(0, cut + 1))) { cut++; }
        lines.push(word.slice(0, cut));
        word = word.slice(cut);
      }
      line = word;
    }
    lines.push(line);
  }
  return lines;
}
function tunesmithHtml(lines) {
  return lines.map((l) => l.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/%\\{/g, "&#37;{")).join("<br>");  // as _escape: no %{meta...} template
}
// parallel coordinates' axis titles (``layout.meta.axes``: the names whole) cut into lines as wide as the space
// between two axes as the figure is drawn, MOST_LINES at most (longer: the first, "…", the end), as _axis_titles
// cuts them for a figure 700 px wide: a page narrower than that (a laptop's half screen) overlapped them
function tunesmithFitAxes(gd) {
  "use strict";
  const meta = gd.layout && gd.layout.meta, full = gd._fullLayout, trace = gd._fullData && gd._fullData[0];
  if (!meta || !Array.isArray(meta.axes) || !full || !full._size || !trace || trace.type !== "parcoords") { return; }
  tunesmithRaiseAxes(gd);
  if (gd.tunesmithFittingAxes) { gd.tunesmithRefitAxes = true; return; }  // fitted once the restyle is done
  const ctx = tunesmithFitTitle.ctx || (tunesmithFitTitle.ctx = document.createElement("canvas").getContext("2d"));
  ctx.font = trace.labelfont.size + "px " + trace.labelfont.family;
  const between = full._size.w * (trace.domain.x[1] - trace.domain.x[0]) / Math.max(meta.axes.length - 1, 1) - 8;
  const room = Math.min(between, AXIS_TITLE_WIDTH);
  const fits = (t) => ctx.measureText(t).width <= room;
  // each axis' whole name travels with it (``name``): the reader who drags an axis elsewhere reorders
  // ``gd.data``'s dimensions, where meta.axes keeps the first order (their titles were swapped at the next redraw)
  const dims = gd.data[0].dimensions;
  const labels = dims.map((d, i) => typeof d.name === "string" ? d.name : meta.axes[i]).map((name) => {
    const lines = tunesmithLines(name, fits);
    if (lines.length <= MOST_LINES) { return tunesmithHtml(lines); }
    let tail = 1;
    while (tail < name.length && fits(name.slice(-(tail + 1)))) { tail++; }
    return tunesmithHtml([lines[0], "…", name.slice(-tail).trimStart()]);
  });
  const update = {};
  labels.forEach((label, i) => { if (dims[i].label !== label) { update["dimensions[" + i + "].label"] = label; } });
  if (!Object.keys(update).length) { return; }
  gd.tunesmithFittingAxes = true;
  const done = () => {
    gd.tunesmithFittingAxes = false;
    tunesmithRaiseAxes(gd);
    tunesmithAgain(gd, "tunesmithRefitAxes", tunesmithFitAxes);
  };
  Plotly.restyle(gd, update, [0]).then(done, done);
}
// plotly draws a title's lines down from where its first line goes, into the range's end written above each axis:
// a title of several lines is moved up by its lines after the first (plotly sets the place again at each redraw)
function tunesmithRaiseAxes(gd) {
  "use strict";
  for (const t of gd.querySelectorAll("text.axis-title")) {
    const lines = t.querySelectorAll("tspan.line").length, at = t.getAttribute("transform") || "";
    const place = at.match(/translate\\(\\s*([-\\d.e]+)[\\s,]+([-\\d.e]+)\\s*\\)/);
    if (lines < 2 || !place || at === t.tunesmithRaised) { continue; }
    const up = 1.3 * (lines - 1) * (parseFloat(t.style.fontSize) || 10);
    t.tunesmithRaised = "translate(" + place[1] + "," + (parseFloat(place[2]) - up) + ")";
    t.setAttribute("transform", t.tunesmithRaised);
  }
}
// a figure that cannot be drawn narrower (``layout.meta.min_width``: a process diagram's boxes and their texts)
// draws ``meta.stack`` instead in a narrower box (its boxes in a column: at 400 px the row's texts ran into each
// other, and a row kept that wide scrolled sideways), and the row again once the box is wide enough for it; what
// neither fits is kept as wide as it needs, its container scrolled sideways. True while it redraws the figure.
function tunesmithFitWidth(gd) {
  "use strict";
  const meta = gd.layout && gd.layout.meta, box = gd.parentElement && gd.parentElement.clientWidth;
  if (!meta || typeof meta.min_width !== "number" || !box) { return false; }
  if (gd.tunesmithStacking) { return true; }
  const drawn = gd.layout.tunesmithDrawn || "row";  // a figure drawn anew (Plotly.react) is the row again
  const want = meta.stack && box < meta.min_width ? "stack" : "row";
  if (want !== drawn) {
    const row = gd.tunesmithRow && gd.tunesmithRow.layout === gd.layout ? gd.tunesmithRow : null;
    const to = want === "stack" ? meta.stack : row;
    if (to) {
      if (drawn === "row") {  // as drawn (a live update's counts): taken back when the box widens
        const first = gd.tunesmithFirst && gd.tunesmithFirst.drawn === "row" ? gd.tunesmithFirst : null;
        tunesmithKeepRow(gd, gd.layout, gd.layout, first ? first.height : gd._fullLayout.height);
      }
      gd.tunesmithStacking = true;
      gd.tunesmithFirst = null;  // the title's fitter takes this height as the figure's own
      gd.style.minWidth = "";
      tunesmithHeight(gd, to.height);
      const done = () => { gd.tunesmithStacking = false; gd.layout.tunesmithDrawn = want; gd.tunesmithFit(); };
      Plotly.relayout(gd, {"shapes": to.shapes, "annotations": to.annotations, "xaxis.range": to.x,
                           "yaxis.range": to.y, "height": to.height, "margin.l": to.margin,
                           "autosize": true}).then(done, done);
      return true;
    }
  }
  const least = (drawn === "stack" ? meta.stack : meta).min_width;
  if (gd.style.minWidth === least + "px") { return false; }
  gd.style.minWidth = least + "px";
  gd.parentElement.style.overflowX = "auto";
  if (gd.getBoundingClientRect().width > gd._fullLayout.width + 1) { Plotly.Plots.resize(gd); }
  return false;
}
// the layout to draw a figure of ``layout`` with in ``gd`` (the dashboard's live update, Plotly.react): a process
// diagram's column where the box is narrower than its row needs, drawn at once (drawn as the row and then relaid
// out as the column by tunesmithFitWidth, each update of a narrow page drew the diagram twice)
function tunesmithLayout(gd, layout) {
  "use strict";
  const meta = layout && layout.meta, box = gd.parentElement && gd.parentElement.clientWidth, to = meta && meta.stack;
  if (!to || typeof meta.min_width !== "number" || !box || box >= meta.min_width) { return layout; }
  const drawn = Object.assign({}, layout, {
    "shapes": to.shapes, "annotations": to.annotations, "height": to.height, "tunesmithDrawn": "stack",
    "xaxis": Object.assign({}, layout.xaxis, {"range": to.x}), "yaxis": Object.assign({}, layout.yaxis, {"range": to.y}),
    "margin": Object.assign({}, layout.margin, {"l": to.margin})});
  tunesmithKeepRow(gd, layout, drawn, layout.height);
  return drawn;
}
// the row of a process diagram drawn as ``drawn`` (its column, or the row itself): what tunesmithFitWidth draws
// again once the box is wide enough, the figure ``height`` px tall
function tunesmithKeepRow(gd, row, drawn, height) {
  gd.tunesmithRow = {"layout": drawn, "shapes": row.shapes, "annotations": row.annotations, "x": row.xaxis.range.slice(),
                     "y": row.yaxis.range.slice(), "height": height, "margin": row.margin.l};
}
// a figure's box of a set height (plotly's own outer div in the report and a saved page: the figure's first height)
// is what plotly's resize takes the height from: set to the figure's height, as a box of no set height follows it
function tunesmithHeight(gd, height) {
  for (const box of [gd, gd.parentElement]) {
    if (box && /px$/.test(box.style.height)) { box.style.height = height + "px"; }
  }
}
function tunesmithFitTitles(gd) {
  // on every redraw; a figure drawn anew (the dashboard's live update: Plotly.react) lost its listeners, so the
  // one listener is set again each call (once on the page's first draw, it was never again: a window resized
  // after an update left the titles and the axes' titles cut for the width before)
  gd.tunesmithFit = gd.tunesmithFit || (() => {
    if (!tunesmithFitWidth(gd)) { tunesmithFitTitle(gd); tunesmithFitAxes(gd); }
  });
  if (gd.tunesmithFirst && gd.tunesmithFirst.set !== (gd.layout.height || null)) {
    gd.tunesmithFirst = null;  // a figure drawn anew at another height (a process diagram grown by a live update)
  }
  if (gd.removeListener) { gd.removeListener("plotly_afterplot", gd.tunesmithFit); }
  gd.on("plotly_afterplot", gd.tunesmithFit);
  gd.tunesmithFitted = true;
  gd.tunesmithFit();
}
""".replace("TITLE_LINE", str(TITLE_LINE)).replace("TITLE_PAD", str(TITLE_PAD)).replace("AXIS_TITLE_WIDTH", str(AXIS_TITLE_WIDTH)).replace(
    "MOST_LINES", str(MOST_LINES))


def to_html(records: Sequence[Record], *, full: bool = True, include_js: bool = True) -> str:
    """The records as HTML: one ``<div>`` each, plotly.js embedded once (no network), each title
    cut into lines to the width its figure is drawn at (:data:`FIT_TITLE`)."""
    parts = [f"<script>{FIT_TITLE}</script>"] if records else []
    for i, r in enumerate(records):
        parts.append(to_plotly(r).to_html(full_html=False, include_plotlyjs=include_js and i == 0,
                                           div_id=f"plot-{r.kind}-{i}", config={"responsive": True},
                                           post_script="tunesmithFitTitles(document.getElementById('{plot_id}'));"))
    body = "\n".join(parts)
    if not full:
        return body
    title = short_title(records[0].title) if records else "tunesmith"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_escape(title)}</title></head><body>{body}</body></html>"


def _title_lines(title: str, figure_width: float) -> list[str]:
    """A title as it is, or, wider than the figure, cut into lines at spaces (a word wider than a
    line anywhere): plotly draws a title on one line however long, cut at the figure's edge."""
    return wrap_to_width(title, figure_width * (1 - TITLE_X) - 10, _title_width)


def _title_width(text: str) -> float:
    """``text``'s width in px in plotly's title font, by :data:`ASCII_WIDTHS` (a character beyond
    ASCII: a wide East Asian one 1 em, any other 0.9 em, more than most are)."""
    per_mille = sum(ASCII_WIDTHS[ord(c) - 32] if " " <= c <= "~" else
                    1000 if unicodedata.east_asian_width(c) in "WF" else 900 for c in text)
    return per_mille * TITLE_SIZE / 1000


def _escape(text: str) -> str:
    """``text`` as plotly draws it as written: its HTML escaped, and no ``%{...}`` template. plotly fills a
    title's, an annotation's or a legend entry's ``%{meta.title}`` with ``layout.meta``, which holds the title and
    parallel axis names as they are (:data:`FIT_TITLE` cuts them again), unescaped: a study named
    ``<a href=...>x</a>%{meta.title}`` drew a link and styled text in every plot of the report and dashboard."""
    return (unseen_as_escapes(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%{", "&#37;{"))


def unseen_as_escapes(text: str) -> str:
    """``text`` with its control characters but tabs and line ends written as escapes (``\\x1b``), as
    ``tunesmith show`` prints them: a page (a table, a plot's title, axis or hover text) draws nothing for them."""
    return CONTROL_BUT_LINES.sub(as_escape, text)
