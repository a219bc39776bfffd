"""The dashboard's HTML: small server-rendered pages; plots are filled in by ``dashboard.js``
from the JSON endpoints (so a page opens at once and its plots update in place)."""

from __future__ import annotations

import html
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from ..cv import fold_metric
from ..report import (
    FOLDS_COLUMN,
    STOPPED_COLUMN,
    TRAIN_COLUMN,
    diverged,
    diverged_cell,
    escape_html,
    folds_cell,
    has_folds,
    has_train,
    html_table,
    overfit_cell,
    stopped,
    stopped_cell,
    train_cell,
)
from ..space.params import plural
from ..space.space import shortened
from ..study.manage import MAX_NOTE, study_notes
from ..trial import FrozenTrial, TrialState
from .aggregate import ORDERS, lost_at, ran_for
from .cache import View

STYLE = """body{font-family:system-ui,sans-serif;margin:0;color:#222}main{margin:1em auto;max-width:1200px;padding:0 1em;overflow-wrap:break-word}
header{background:#0b3d5c;color:#fff;padding:.6em 1.5em}header a{color:#fff;margin-right:1.5em;text-decoration:none}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f6f9}td.l,th.l{text-align:left}.note{color:#666;font-size:13px}.plot{min-height:420px;margin:1em 0}
.state-complete{color:#0072B2}.state-failed{color:#D55E00}.state-running{color:#009E73}.state-pruned{color:#777}.state-paused{color:#CC79A7}.state-waiting{color:#E69F00}
table{display:block;overflow-x:auto;max-width:100%}input{max-width:100%;box-sizing:border-box}
form.inline{display:inline}.danger{color:#fff;background:#b00;border:0;padding:4px 10px}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}
.live{font-size:12px;color:#009E73}section.kind{min-height:460px}.pager a{margin-right:.8em}#trials{overflow-x:auto}"""


def e(text: Any) -> str:
    return escape_html(str(text))


def a(text: Any) -> str:
    """``text`` as an attribute's value that a form sends back or the page's script reads (a study's
    name, a note's text): markup escaped, each character kept (``e``'s ``\\x1b`` named another study)."""
    return html.escape(str(text), quote=True)


def q(name: str) -> str:
    """A study name as one URL path segment."""
    return quote(name, safe="")


def layout(title: str, body: str, *, scripts: bool = False) -> str:
    js = "<script src='/static/plotly.min.js'></script><script src='/static/dashboard.js'></script>" if scripts else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'><link rel='icon' href='data:,'><title>{e(title)} - tunesmith</title>"
            f"<style>{STYLE}</style>{js}</head><body><header><b>tunesmith</b> &nbsp; <a href='/'>studies</a>"
            f"<a href='/compare'>compare</a></header><main>{body}</main></body></html>")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1, raw: bool = False) -> str:
    """An HTML table (the report's); cells are escaped unless ``raw`` (then they are HTML already)."""
    return html_table(head, rows, left=left, raw=raw)


def fmt(v: Any) -> str:
    if v is None:
        return ""
    return shortened(f"{v:.6g}" if isinstance(v, float) else str(v))  # a value in the database may be 100 MB


def when(ts: float | None) -> str:
    try:
        return "" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (TypeError, ValueError, OverflowError, OSError):  # a time changed outside tunesmith: '1e300', 'x'
        return f"? ({ts!r:.40})"


def states(counts: dict[str, int]) -> str:
    return ", ".join(f"<span class='state-{s.value}'>{counts[s.value]} {s.value}</span>"
                     for s in TrialState if counts.get(s.value))


# -- the pages ---------------------------------------------------------------------------------


def studies_page(views: list[View], storage: str) -> str:
    rows = []
    for v in views:
        s = v.summary()
        best = s["best"]
        rows.append([f"<input type=checkbox name=study value='{a(v.name)}'>",
                     f"<a href='/studies/{q(v.name)}'>{e(v.name)}</a>", e(s["direction"]), e(s["sampler"]),
                     str(s["trials"]), states(s["states"]),
                     "" if best is None else f"{best['value']:.6g} (#{best['number']})", e(when(s["last_activity"]))])
    if not rows:
        return layout("studies", f"<h1>Studies</h1><p class='note'>no studies in {e(storage)} yet</p>")
    head = ["", "name", "direction", "sampler", "trials", "by state", "best value", "last activity"]
    body = (f"<h1>Studies</h1><p class='note'>in {e(storage)}</p><form action='/compare' method='get'>"
            f"{table(head, rows, left=4, raw=True)}<button>compare the checked studies</button></form>")
    return layout("studies", body)


def shown(s: dict[str, Any]) -> dict[str, str]:
    """A study summary's lines as the study page shows them (HTML), on the first render and at each
    live update alike: one format for the times and values."""
    best = s["best"]
    return {"n-trials": str(s["trials"]), "states": states(s["states"]),
            "best": "" if best is None else e(fmt(best["value"])) + f" (#{best['number']})",
            "last": e(when(s["last_activity"]))}


NOTES_SHOWN = 20  # the latest notes on a study's page; ?notes=all lists every one


#: characters of a note a study page shows (the longest note tunesmith writes); a longer one, written
#: outside tunesmith, is cut there with a link to its own page (a note of 5 MB made the page as large)
NOTE_CHARS = MAX_NOTE


def _notes(v: View, every: bool, page: Mapping[str, str]) -> str:
    """The study's notes, the latest :data:`NOTES_SHOWN` unless ``every`` (an import may bring 100,000);
    the link to all of them keeps ``page`` (the trials table's offset, order, ... as the page was asked)."""
    notes = study_notes(v.record.config)
    first = 0 if every else max(0, len(notes) - NOTES_SHOWN)
    shown_notes = notes[first:]
    listed = "".join(_note_item(v, first + i, n) for i, n in enumerate(shown_notes))
    more = (f"<p class='note'>the latest {len(shown_notes)} of {len(notes):,} notes: "
            f"<a href='/studies/{q(v.name)}?{e(urlencode({**page, 'notes': 'all'}))}'>all notes</a></p>"
            ) if len(shown_notes) < len(notes) else ""
    return f"<h2>Notes</h2>{more}<ul>{listed}</ul>" if listed else ""


def _note_item(v: View, number: int, note: Mapping[str, Any]) -> str:
    """A note as the study page lists it: its first :data:`NOTE_CHARS` characters, and a link to the
    whole note where it is longer."""
    text = str(note.get("text", ""))
    cut = "" if len(text) <= NOTE_CHARS else (
        f"... <a href='/studies/{q(v.name)}/notes/{number}'>the whole note ({len(text):,} characters)</a>")
    return f"<li>{e(when(note.get('time')))}: {e(text[:NOTE_CHARS])}{cut}</li>"


def note_page(v: View, number: int, note: Mapping[str, Any]) -> str:
    """One note whole (the study page cuts a long one)."""
    text = str(note.get("text", ""))
    body = (f"<h1><a href='/studies/{q(v.name)}'>{e(v.name)}</a>: note {number}</h1>"
            f"<p class='note'>{e(when(note.get('time')))}, {len(text):,} characters</p>"
            f"<pre id='note'>{e(text)}</pre>")
    return layout(f"{v.name} note {number}", body)


def study_page(v: View, kinds: Sequence[str], trials_html: str, writes: str, *, all_notes: bool = False,
               page: Mapping[str, str] | None = None) -> str:
    s = v.summary()
    h = shown(s)
    info = [["direction", e(s["direction"])], ["sampler", e(s["sampler"])], ["pruner", e(s["pruner"] or "none")],
            ["trials", f"<span id='n-trials'>{h['n-trials']}</span> (<span id='states'>{h['states']}</span>)"],
            ["best", f"<span id='best'>{h['best']}</span>"],
            ["last activity", f"<span id='last'>{h['last']}</span>"]]
    plots = "".join(f"<section class='kind' data-kind='{k}' data-src='/api/studies/{q(v.name)}/plots/{k}'></section>"
                    for k in kinds)
    body = (f"<h1>{e(v.name)}</h1><p><a href='/studies/{q(v.name)}/importance'>importance</a> &middot; "
            f"<span class='live' id='live'>live</span></p>{table(['', ''], info, raw=True, left=1)}"
            + _notes(v, all_notes, page or {})
            + f"<div id='plots' data-study='{a(v.name)}' data-version='{v.version}'>{plots}</div>"
            f"<h2>Trials</h2><div id='trials'>{trials_html}</div>{writes}")
    return layout(v.name, body, scripts=True)


def trials_table(v: View, total: int, rows: list[FrozenTrial], *, offset: int, limit: int, order: str,
                 state: str | None, keep: Mapping[str, str] | None = None) -> str:
    """The trials table and its pager; the pager's links keep ``keep`` (``notes=all``: the page's other view)."""
    names = list(v.record.space)
    extra = _extra_columns(rows)
    # a search's scorer, as show and the report head the column: read off every trial, as one scorer's name is
    # recorded by each fit's first trial only, which a page of rows may not hold
    metric = v.cached("fold_metric", lambda: fold_metric(v.trials))
    head = ["#", "state", "value" if metric is None else f"value ({shortened(metric)})", *extra, *names, "seconds", "worker"]
    cells = [[f"<a href='/studies/{q(v.name)}/trials/{t.number}'>{t.number}</a>",
              f"<span class='state-{t.state.value}'>{t.state.value}</span>", fmt(t.value),
              *(e(cell(t)) for cell in extra.values()),
              *(e(fmt(t.params.get(n))) for n in names), fmt(ran_for(t)), e(fmt(t.worker))] for t in rows]
    ties = _ties(v, rows) if order == "best" else ""
    return _pager(v, total, offset, limit, order, state, keep or {}) + ties + table(head, cells, raw=True)


#: the tied values a page names at most (the rest: "and N more")
TIES_NAMED = 5


#: how trials tied on the value are ordered, as ``study.best_trial`` ranks them (the page's and the API's words)
TIE_ORDER = ("by their reports, the last one first (the better at the first step they differ), those that reported "
             "nothing after them, then by trial number, the earliest first; the order stays as it is until a trial "
             "joins the tie")


def tied_values(v: View, rows: Sequence[FrozenTrial]) -> list[tuple[float, int]]:
    """The values ``rows``' complete trials tie on, in their order, each with how many trials of the study hold it."""
    counts: Counter[float | None] = v.cached(("tied values",), lambda: Counter(
        t.value for t in v.trials if t.state is TrialState.COMPLETE and t.value is not None))
    tied = dict.fromkeys(t.value for t in rows if t.state is TrialState.COMPLETE and counts.get(t.value, 0) > 1)
    return [(x, counts[x]) for x in tied if x is not None]


def _ties(v: View, rows: Sequence[FrozenTrial]) -> str:
    """A line saying which values the page's complete trials tie on, with how many trials of the study hold each,
    and how a tie is ordered ("" where none does): a study whose trials all tied showed a page of one value in
    an order nothing explained."""
    tied = tied_values(v, rows)
    if not tied:
        return ""
    said = ", ".join(f"{e(fmt(x))} ({n:,} trials)" for x, n in tied[:TIES_NAMED])
    more = f" and {plural(len(tied) - TIES_NAMED, 'other value')}" if len(tied) > TIES_NAMED else ""
    return (f"<p class='note ties'>trials tie on the value here: {said}{more}. Tied trials are ordered as "
            f"<code>study.best_trial</code> ranks them: {TIE_ORDER}.</p>")


def _extra_columns(rows: Sequence[FrozenTrial]) -> dict[str, Callable[[FrozenTrial], str]]:
    """The columns ``tunesmith show`` adds for what ``rows`` hold: the spread of a cross-validated
    value over its folds, its training score, where a trained trial began to overfit, where a trial's metric
    turned NaN, and the step of a pruned or paused trial's last report, its value (show lists pruned trials so)."""
    out: dict[str, Callable[[FrozenTrial], str]] = {}
    if has_folds(rows):
        out[FOLDS_COLUMN] = folds_cell
    if has_train(rows):
        out[TRAIN_COLUMN] = train_cell
    if any("overfit_at" in t.attrs for t in rows):
        out["overfit at"] = overfit_cell
    if diverged(rows):  # pruned by an integration's callback, or stopped by ts.train.objective, at a NaN metric
        out["diverged at"] = diverged_cell
    if stopped(rows):  # a pruned or paused trial's value is its last report: at which step
        out[STOPPED_COLUMN] = stopped_cell
    return out


def _pager(v: View, total: int, offset: int, limit: int, order: str, state: str | None, keep: Mapping[str, str]) -> str:
    def link(label: str, **kw: Any) -> str:
        args = {"offset": offset, "limit": limit, "order": order, **({"state": state} if state else {}), **kw, **keep}
        args = {k: a for k, a in args.items() if a is not None}
        return f"<a href='/studies/{q(v.name)}?{e(urlencode(args))}'>{e(label)}</a>"

    last = (total - 1) // limit * limit if total else 0  # where the last page starts
    shown = (f"{offset + 1 if total else 0}-{min(offset + limit, total)}" if offset < max(total, 1)
             else f"none: the last page starts at {last + 1}")  # trials left a filtered page, or a typed offset
    parts = [f"{plural(total, 'trial')}{'' if not state else ' ' + e(state)}; showing {shown}"]
    if offset > 0:
        parts.append(link("previous", offset=max(0, min(offset - limit, last))))
    if offset + limit < total:
        parts.append(link("next", offset=offset + limit))
    parts.append("order: " + " ".join(link(o, order=o, offset=0) for o in ORDERS))
    parts.append("state: " + " ".join([link("all", state=None, offset=0)]
                                      + [link(s.value, state=s.value, offset=0) for s in TrialState]))
    return "<p class='pager'>" + " &middot; ".join(parts) + "</p>"


def _seconds_cell(t: FrozenTrial) -> str:
    lost = lost_at(t)
    if lost is None:
        return fmt(t.duration)
    started, beat, end = lost
    return f"{fmt(beat - started)} <span class='note'>(to its last heartbeat; judged lost {fmt(end - beat)} s later)</span>"


def _checkpoint_cell(t: FrozenTrial) -> str:
    """The trial's ``attrs["checkpoint"]``, said to be gone where a worker of this machine wrote it and no file
    or folder is there now (tidied away: a failed trial's, a finished study's); another machine's is not looked
    for, nor a relative path (relative to the worker's folder, not the dashboard's)."""
    path = t.attrs.get("checkpoint")
    if not path:
        return ""
    here = isinstance(t.worker, str) and t.worker.rpartition(":")[0] == socket.gethostname()
    if not (here and isinstance(path, str) and os.path.isabs(path)):
        return e(path)
    try:
        os.lstat(path)
    except FileNotFoundError:
        return e(path) + " <span class='note'>(gone: deleted since)</span>"
    except (OSError, ValueError):  # not ours to read, a NUL in it: shown as stored
        pass
    return e(path)


def trial_page(v: View, t: FrozenTrial, writes: str) -> str:
    rows = [["state", f"<span class='state-{t.state.value}'>{t.state.value}</span>"], ["value", fmt(t.value)],
            ["worker", e(t.worker or "")], ["started", when(t.started)], ["completed", when(t.completed)],
            ["seconds", _seconds_cell(t)], ["last heartbeat", when(t.heartbeat)],
            ["checkpoint", _checkpoint_cell(t)]]
    rows[2:2] = [[name, e(cell(t))] for name, cell in _extra_columns([t]).items()]
    params = [[e(k), e(fmt(val))] for k, val in t.params.items()]
    body = (f"<h1><a href='/studies/{q(v.name)}'>{e(v.name)}</a>: trial {t.number}</h1>"
            + table(["", ""], rows, raw=True) + "<h2>Parameters</h2>" + table(["parameter", "value"], params, raw=True)
            + (f"<h2>Error</h2><pre id='error'>{e(t.error)}</pre>" if t.error else "")
            + f"<section class='kind' data-kind='curve' data-src='/api/studies/{q(v.name)}/trials/{t.number}/curve'>"
            "</section><h2>Attributes</h2>"
            + f"<pre>{e(json.dumps(dict(t.attrs), indent=1, default=str, ensure_ascii=False))}</pre>{writes}")
    return layout(f"{v.name} trial {t.number}", f"<div id='plots' data-static='1'>{body}</div>", scripts=True)


def importance_page(v: View, method: str) -> str:
    other = "ped-anova" if method == "fanova" else "fanova"
    body = (f"<h1><a href='/studies/{q(v.name)}'>{e(v.name)}</a>: importance ({e(method)})</h1>"
            f"<p><a href='/studies/{q(v.name)}/importance?method={other}'>{other} instead</a></p>"
            f"<div id='plots' data-static='1'><section class='kind' data-kind='importance' "
            f"data-src='/api/studies/{q(v.name)}/importance?method={e(method)}'></section></div>")
    return layout(f"{v.name} importance", body, scripts=True)


def compare_page(names: list[str], all_names: list[str], directions: list[str], direction: str | None) -> str:
    """``directions``: each named study's; studies that disagree are drawn one way, ``direction``,
    chosen with the links the page shows (minimize by default)."""
    boxes = "".join(f"<label><input type=checkbox name=study value='{a(n)}'{' checked' if n in names else ''}> "
                    f"{e(n)}</label><br>" for n in all_names)
    form = f"<form action='/compare' method='get'>{boxes}<button>compare</button></form>"
    if not names:
        return layout("compare", f"<h1>Compare studies</h1><p>check two studies or more:</p>{form}")
    mixed = len(set(directions)) > 1
    if mixed and direction is None:
        direction = "minimize"
    query = [("study", n) for n in names] + ([("direction", direction)] if direction else [])
    note = ""
    if mixed:
        which = ", ".join(f"{n} ({d})" for n, d in zip(names, directions, strict=True))
        links = " or ".join(f"<a href='/compare?{e(urlencode([*query[:len(names)], ('direction', d)]))}'>{d}</a>"
                            for d in ("minimize", "maximize") if d != direction)
        note = (f"<p class='note' id='directions'>The studies do not share a direction ({e(which)}): "
                f"best so far is drawn as {e(direction)}; draw it as {links}.</p>")
    src = "/api/compare?" + urlencode(query)
    plot = f"<div id='plots' data-static='1'><section class='kind' data-kind='compare' data-src='{e(src)}'></section></div>"
    return layout("compare", f"<h1>Compare: {e(', '.join(names))}</h1>{note}{plot}{form}", scripts=True)


def message_page(status: int, title: str, text: str, study: str | None = None) -> str:
    """An error's page; one of a study's (a refused enqueue) links back to the study too."""
    back = f"<a href='/studies/{q(study)}'>study {e(study)}</a> &middot; " if study is not None else ""
    return layout(title, f"<h1>{e(title)}</h1><p id='message'>{e(text)}</p><p>{back}<a href='/'>all studies</a></p>")


def confirm_page(action: str, what: str, fields: dict[str, str]) -> str:
    hidden = "".join(f"<input type=hidden name='{a(k)}' value='{a(val)}'>" for k, val in fields.items())
    body = (f"<h1>Confirm</h1><p id='message'>{e(what)}</p><form method='post' action='{e(action)}'>{hidden}"
            "<input type=hidden name=confirm value=yes><button class=danger>yes, do it</button> "
            "<a href='javascript:history.back()'>cancel</a></form>")
    return layout("confirm", body)


def write_forms(v: View, token: str, trial: FrozenTrial | None = None) -> str:
    """The forms of ``--allow-writes`` (each asks for confirmation on the next page)."""
    base = f"/studies/{q(v.name)}"
    tok = f"<input type=hidden name=token value='{a(token)}'>"
    if trial is not None:
        if trial.state.is_finished:
            return ""
        return (f"<h2>Change</h2><form method=post action='{base}/trials/{trial.number}/fail'>{tok}"
                "<input name=error placeholder='why' size=40> <button class=danger>mark failed</button></form>")
    return (f"<h2>Change</h2><form method=post action='{base}/notes'>{tok}<input name=text size=60 "
            "placeholder='a note on this study'> <button>add note</button></form>"
            f"<form method=post action='{base}/enqueue'>{tok}<input name=params size=60 "
            "placeholder='{\"x\": 0.5} (JSON)'> <button>enqueue configuration</button></form>"
            f"<form method=post action='{base}/delete'>{tok}<button class=danger>delete study</button></form>")
