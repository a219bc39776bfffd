"""A study's report: one self-contained HTML file (plotly.js embedded; opens with no network).

    from tunesmith.report import write_report
    write_report(study, "report.html")

It holds the study's settings and search space, the best trials (validation next to
test where ``study.evaluate_best`` recorded it), the latest failed trials (worker and error), the latest
pruned ones (the step each stopped at, its last report, its parameters), every plot that
applies (history, learning curves, the process diagram, importance, parallel
coordinates, slices, contours, the best trial's overfitting graph) and says which
plots had nothing to draw. From the shell: ``tunesmith report NAME -o report.html``.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cv import CV_ATTR, SETUP_ATTR, fold_metric, is_summary, paired_folds, train_and_validation
from ..plots import Record, Snapshot, snapshot
from ..plots import records_of as _records_of
from ..plots.plotly_render import unseen_as_escapes
from ..plots.records import short_title
from ..plots.reduce import MAX_POINTS, WHOLE, sample, sampled_note, thin
from ..space import display_names, for_display
from ..space.params import plural
from ..space.space import shortened
from ..trial import Direction, FrozenTrial, TrialState, finite_float, ranked

#: the plots a report tries, in order
SECTIONS = ("history", "curves", "process", "importance", "parallel", "slice", "contour", "overfitting")

#: a phone lays the page out as wide as its screen (without it: 980 px, shrunk to fit)
VIEWPORT = "<meta name='viewport' content='width=device-width, initial-scale=1'>"
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222;overflow-wrap:break-word}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f6f9}td.l,th.l{text-align:left}.plot{margin:1.5em 0}.note{color:#666;font-size:13px}
.wide{overflow-x:auto}table{display:block;overflow-x:auto;max-width:100%}"""


def build_report(study: Any, *, top: int = 10, sections: Sequence[str] = SECTIONS) -> str:
    """The report as one HTML string."""
    from ..plots.plotly_render import to_html

    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"top must be a positive integer (the rows of the best trials' table), got {top!r}")
    if isinstance(sections, str):
        raise TypeError(f"sections is a list of plot kinds, got the string {sections!r}; write sections=[{sections!r}]")

    s = snapshot(study)
    drawn, skipped = _plots(s, sections)
    max_resource = getattr(getattr(study, "pruner", None), "max_resource", None)
    parts = [f"<h1>{_e(s.name)}</h1>", _settings(s, max_resource), _space(s), _best(s, top)]
    parts += [_failed(s), _pruned(s)]
    parts.append("<h2>Plots</h2>" + _reduced(s, sections))
    parts.append(to_html(drawn, full=False) if drawn else "<p class='note'>no plot has anything to draw yet</p>")
    if skipped:
        items = "".join(f"<li>{_e(k)}: {_e(short_title(why))}</li>" for k, why in skipped)
        parts.append(f"<p class='note'>not drawn:</p><ul class='note'>{items}</ul>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{VIEWPORT}<title>tunesmith report: {_e(s.name)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


#: what a report is written to, as check_output says when the file is not one
REPORT_FILE = "the report (one HTML page) to a .html file; an image of one plot: tunesmith plot"


def write_report(study: Any, path: str | Path, **options: Any) -> Path:
    from ..plots import HTML, check_output, replace_file

    path = check_output(path, HTML, REPORT_FILE)
    text = build_report(study, **options)
    return replace_file(path, lambda f: f.write(text.encode("utf-8")))


def _plots(s: Snapshot, sections: Sequence[str]) -> tuple[list[Record], list[tuple[str, str]]]:
    """The records to draw, reduced as the dashboard's (a 20,000-trial study took 112 s and 1.7 GB
    to write, and its 13 MB file did not open in a browser within 30 s), and those with nothing to draw."""
    drawn: list[Record] = []
    skipped: list[tuple[str, str]] = []
    sampled = sample(s)
    for kind in sections:
        for r in _records_of(s if kind in WHOLE else sampled, kind):
            if r.empty:
                skipped.append((kind, r.message or ""))
            else:
                drawn.append(thin(r))
    return drawn, skipped


def _reduced(s: Snapshot, sections: Sequence[str]) -> str:
    """The note that says how a large study's plots were reduced; empty for a small one."""
    heavy = [k for k in sections if k not in WHOLE]
    note = sampled_note(sample(s), s)
    if note is None or not heavy:
        return ""
    return (f"<p class='note' id='reduced'>{_e(', '.join(heavy))}: {_e(note)}. Every plot shows at most "
            f"{MAX_POINTS:,} points a series (each stretch of trials keeps its lowest and highest value; "
            "the best-so-far line keeps every step).</p>")


def _settings(s: Snapshot, max_resource: int | None = None) -> str:
    counts = Counter(t.state.value for t in s.trials)
    sampler = (s.sampler or "?") + ("" if s.seed is None else f", seed {s.seed}")  # what runs the study again
    rows = [("direction", s.direction.value), ("sampler", sampler), ("pruner", s.pruner or "none"),
            ("trials", f"{len(s.trials)}" + (" (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")"
                                             if counts else ""))]
    best = s.best()
    if best is not None:
        rows.append(("best", f"trial {best.number}: {best.value:.6g}"))
    search = _search_setting(s.trials)
    if search:
        rows.append(("search", search))
    budget = budget_spent(s.trials, max_resource)
    if budget:
        rows.append(("budget", budget))
    return "<h2>Settings</h2>" + html_table(["setting", "value"], [[k, v] for k, v in rows], left=2)


def _search_setting(trials: Sequence[FrozenTrial]) -> str:
    """What a stored TunedSearchCV searched with, as its first fit recorded it: "TunedSearchCV of Pipeline, scoring
    accuracy, roc_auc (the value: roc_auc), 5-fold cross-validation"; "" for another study."""
    setup = next((t.attrs[SETUP_ATTR] for t in trials if isinstance(t.attrs.get(SETUP_ATTR), dict)), None)
    if setup is None:
        return ""
    scoring = setup.get("scoring")  # another writer's attrs may hold anything
    names = list(scoring) if isinstance(scoring, (list, dict)) else [scoring] if scoring is not None else []
    metric = fold_metric(trials)
    text = f"TunedSearchCV of {shortened(str(setup.get('estimator')))}, scoring " + (
        ", ".join(shortened(str(n)) for n in names) if names else "the estimator's score")
    text += f" (the value: {shortened(metric)})" if metric and len(names) > 1 else ""
    folds = next((t.attrs[CV_ATTR].get("folds") for t in trials if is_summary(t.attrs.get(CV_ATTR))), None)
    return text + (f", {folds}-fold cross-validation" if isinstance(folds, int) else "")


def _space(s: Snapshot) -> str:
    rows = []
    for name, p in s.space.items():
        d = p.to_dict()
        kind = d.pop("type", p.kind)
        when = d.pop("when", None)
        rows.append([short_title(name), kind, _as_json(d),  # 0.01..100's centre: 1, not 1.0000000000000009
                     "" if not when else _as_json(when)])
    return "<h2>Search space</h2>" + html_table(["parameter", "type", "definition", "active when"], rows, left=4)


def _as_json(d: dict[str, Any]) -> str:
    """A parameter's definition or condition as JSON, its letters as written (not ``\\u00fc``)."""
    return json.dumps(_short(for_display(d, 6)), default=str, ensure_ascii=False)


def _best(s: Snapshot, top: int) -> str:
    best = ranked(s.trials, s.direction, top)
    done = [t for t in s.trials if t.state is TrialState.COMPLETE and t.value is not None]
    if not done:
        return "<h2>Best trials</h2><p class='note'>no complete trial yet</p>"
    names = [n for n in s.space if any(n in t.params for t in done)]
    tests = any(s.test_of(t) is not None for t in done)
    shown = display_names(s.space)
    folded = has_folds(best)  # trials of cv.cross_validate, as in `show`
    trained = any("overfit_at" in t.attrs for t in best)  # trials of ts.train.objective, as in `show`
    adapted = any("adapted_lr" in t.attrs for t in best)  # TrainConfig(lr_adapt=...)
    trains = has_train(best)  # TunedSearchCV(return_train_score=True)
    nan = diverged(best)  # a trained trial's value is its best before its metric turned NaN
    metric = fold_metric(s.trials)  # a search's scorer: with several, refit's
    value = "validation value" + ("" if metric is None else f" ({short_title(metric)})")
    head = ["#", value, *([FOLDS_COLUMN] if folded else []), *([TRAIN_COLUMN] if trains else []),
            *(["test value", "gap"] if tests else []), *(short_title(shown[n]) for n in names), "seconds",
            *(["overfit at"] if trained else []), *(["adapted lr"] if adapted else []), *(["diverged at"] if nan else [])]
    rows = [_best_row(t, names, s.test_of(t) if tests else None, tests, s.direction, folded, trains)
            + ([overfit_cell(t)] if trained else []) + ([adapted_cell(t)] if adapted else [])
            + ([diverged_cell(t)] if nan else []) for t in best]
    note = ("<p class='note'>gap: how much the validation value overstated the test value (positive: the "
            "search was optimistic)</p>" if tests else "")
    table = f"<div class='wide'>{html_table(head, rows, left=0)}</div>"  # a column per parameter: it scrolls, not the page
    return f"<h2>Best {len(rows)} of {plural(len(done), 'complete trial')}</h2>" + table + note


def _best_row(
    t: FrozenTrial, names: list[str], test: float | None, tests: bool, direction: Direction, folded: bool = False,
    trains: bool = False,
) -> list[str]:
    cells = [str(t.number), f"{t.value:.6g}", *([folds_cell(t)] if folded else []), *([train_cell(t)] if trains else [])]
    if tests:
        gap = None if test is None or t.value is None else (
            t.value - test if direction is Direction.MAXIMIZE else test - t.value)
        cells += ["" if test is None else f"{test:.6g}", "" if gap is None else f"{gap:+.3g}"]
    cells += [_fmt(t.params[n]) if n in t.params else "" for n in names]
    cells.append("" if t.duration is None else f"{t.duration:.3g}")
    return cells


#: the column of ``tunesmith show`` and of the report that gives a cross-validated value's spread
FOLDS_COLUMN = "spread over folds"


def has_folds(trials: Sequence[FrozenTrial]) -> bool:
    """Whether any of ``trials`` holds the fold scores of ``cv.cross_validate`` (or ``TunedSearchCV``)."""
    return any(is_summary(t.attrs.get(CV_ATTR)) for t in trials)


def folds_cell(t: FrozenTrial) -> str:
    """The standard deviation of a cross-validated value over its folds, and how many folds it
    averages: "± 0.026 (10 folds)" (the spread to read the differences between values against)."""
    record: Any = t.attrs.get(CV_ATTR)
    if not is_summary(record):
        return ""
    key = record.get("key", "score")  # another writer's attrs may hold anything
    scores = record["scores"].get(key) if isinstance(key, str) else None
    std = finite_float(record.get("std"))
    if not isinstance(scores, list) or std is None:
        return ""
    return f"± {std:.2g} ({plural(len(scores), 'fold')})"


#: the column that gives a cross-validated trial's training score (``TunedSearchCV(return_train_score=True)``, or a
#: ``cv.cross_validate`` fold function's value named "train"), next to its validation value
TRAIN_COLUMN = "train (train − validation)"


def has_train(trials: Sequence[FrozenTrial]) -> bool:
    """Whether any of ``trials`` recorded a training score beside its folds' validation scores."""
    return any(train_cell(t) for t in trials)


def train_cell(t: FrozenTrial) -> str:
    """The mean training score over the folds a trial validated, and how far it is from the validation mean:
    "0.999 (+0.0032)", "-2876 (+511.2)"; a training score well above the validation one (below, for a loss) is
    overfitting. Both to 4 significant digits, as the score: ``.2g`` wrote a gap past 100 as "+5.1e+02". Where
    some validated folds have no training score, both means are over the folds that have both, and the cell
    says how many: "0.999 (+0.0032; 3 of 5 folds)" (its validation mean is then not the trial's value)."""
    record = t.attrs.get(CV_ATTR)
    means, folds = train_and_validation(record), paired_folds(record)
    if means is None or folds is None:
        return ""
    some = f"; {folds[0]} of {folds[1]} folds" if folds[0] < folds[1] else ""
    return f"{means[0]:.4g} ({means[0] - means[1]:+.4g}{some})"


def overfit_cell(t: FrozenTrial) -> str:
    """Where the smoothed train/validation gap began its sustained rise, and the gap at the end
    (the "overfit at" column of ``tunesmith show`` and of the report)."""
    at, curves = t.attrs.get("overfit_at"), t.attrs.get("curves")  # an objective's own attrs may hold anything
    gap = curves.get("gap") if isinstance(curves, dict) else None
    gaps = [g for g in map(finite_float, gap) if g is not None] \
        if isinstance(gap, list) else []  # stored before a NaN validation had no gap: NaN to the end
    end = f" (gap {gaps[-1]:.3g})" if gaps else ""
    return ("step " + str(at) if isinstance(at, int) and finite_float(at) is not None else "-") + end


def diverged(trials: Sequence[FrozenTrial]) -> bool:
    """Whether any of ``trials`` stopped where its monitored value turned NaN or infinite (``attrs["diverged_at"]``,
    which ``ts.train.objective`` and the integrations' pruning callbacks keep)."""
    return any("diverged_at" in t.attrs for t in trials)


def diverged_cell(t: FrozenTrial) -> str:
    """The step where the trial's monitored value turned NaN or infinite (the "diverged at" column of ``tunesmith
    show``, the report and the dashboard), else empty: a pruned trial with it stopped there, not by the pruner."""
    at = t.attrs.get("diverged_at")  # an objective's own attrs may hold anything
    return f"step {at}" if isinstance(at, int) and not isinstance(at, bool) else ""


def adapted_cell(t: FrozenTrial) -> str:
    """The learning rate that ``lr_adapt`` adapted, at the first and the last validation, of the
    weight matrices' group (the head's, with a head; fold 0's, on folds): "0.01 → 0.0134"."""
    rates = t.attrs.get("adapted_lr")
    if not isinstance(rates, dict) or not rates:
        return ""
    roles = sorted(rates, key=lambda k: (not k.endswith("/decay") or k.endswith("no_decay"), "head/" not in k, k))
    xs = [x for x in map(finite_float, rates[roles[0]]) if x is not None] \
        if isinstance(rates[roles[0]], list) else []  # 10**400 from another writer: no float
    return f"{xs[0]:.3g} → {xs[-1]:.3g}" if xs else ""


#: the column a pruned or paused trial's last report's step is in (show's pruned trials, the dashboard)
STOPPED_COLUMN = "stopped at"


def stopped(trials: Sequence[FrozenTrial]) -> bool:
    """Whether any of ``trials`` was stopped (pruned, or paused) after a report: its value is that report's."""
    return any(stopped_cell(t) for t in trials)


def stopped_cell(t: FrozenTrial) -> str:
    """The step of a pruned or paused trial's last report ("step 2"), its value unless another was told; else
    empty (a complete trial's value is its objective's, and a trial stopped before reporting has no step)."""
    step = t.last_step if t.state in (TrialState.PRUNED, TrialState.PAUSED) else None
    return "" if step is None else f"step {step}"


#: the steps the budget line names with the trials stopped at each (those that stopped the most); the others
#: are counted together (a pruner that stops at any step, as the median does on boosting rounds, stopped
#: trials at hundreds of steps: the line ran to 3,500 characters)
STOP_STEPS_SHOWN = 6


def budget_spent(trials: Sequence[FrozenTrial], max_resource: int | None = None) -> str:
    """Where the steps (epochs) went: how many the trials trained, and how many stopping the pruned and paused
    ones early saved against training them in full; "" when no trial was stopped after a report.

    A trial trained up to its last report's step; a full run is ``max_resource`` steps (the pruner's, when it
    has one), else as long as the longest complete trial. A paused trial held to resume first (``system.held``:
    an interrupt or its worker's death stopped it, not the pruner) trains on: counted as a running one. Said by
    ``tunesmith show`` and the report."""
    return budget_of_steps([(t.state, t.last_step) for t in trials if t.last_step is not None and not held(t)]
                           + [(TrialState.RUNNING, t.last_step) for t in trials if t.last_step is not None and held(t)],
                           max_resource)


def held(t: FrozenTrial) -> bool:
    """Whether ``t`` is paused to be resumed first, from its checkpoint (``system.held``: Ctrl-C or SIGTERM
    stopped it, its worker died, or its objective refused the checkpoint), not paused by the pruner."""
    return t.state is TrialState.PAUSED and t.system.held is not None


def unheld(last: Sequence[tuple[TrialState, int]], held_trials: Sequence[FrozenTrial]) -> list[tuple[TrialState, int]]:
    """``Storage.get_last_steps``'s rows with those of ``held_trials`` (:func:`held`) counted as running, as
    :func:`budget_spent` counts them: one paused row at each such trial's last step (the first such rows, in one
    pass: each held trial looked for its row from the start, and 20,000 a writer of the database made took 26 s)."""
    due = Counter(t.last_step for t in held_trials if t.last_step is not None)
    out = []
    for state, step in last:
        if state is TrialState.PAUSED and due[step] > 0:
            due[step] -= 1
            state = TrialState.RUNNING
        out.append((state, step))
    return out


def budget_of_steps(last: Sequence[tuple[TrialState, int]], max_resource: int | None = None) -> str:
    """:func:`budget_spent` from each trial with a report's state and last step alone, as
    ``Storage.get_last_steps`` reads them without reading the trials whole."""
    trained = sum(step for _, step in last)
    stopped_at = sorted(step for state, step in last if state in (TrialState.PRUNED, TrialState.PAUSED))
    if not stopped_at:
        return ""
    trials = f"{len(last):,} trial{'' if len(last) == 1 else 's'}"  # as the steps: "4,000", not "4000"
    said = (f"{trained:,} steps trained by {trials}; {len(stopped_at):,} stopped early "
            f"(pruned or paused: {_stopped_when(Counter(stopped_at))})")
    complete = [step for state, step in last if state is TrialState.COMPLETE]
    full, whose = (max_resource, "the pruner's max_resource") if max_resource else (
        max(complete, default=None), "the longest complete trial")
    if full is None:
        return said + "; what that saved shows once a trial completes (a full run's steps)"
    saved = sum(max(full - step, 0) for step in stopped_at)
    share = trained / (trained + saved) if trained + saved else 1.0
    return (said + f", saving {saved:,} steps against running them in full ({full:,} steps, {whose}): "
            f"{share:.2f} of the steps without early stopping")


def _stopped_when(at: Counter[int]) -> str:
    """``4 at step 2, 1 at step 4``: the trials stopped at each step, in step order, for the
    ``STOP_STEPS_SHOWN`` steps that stopped the most; the rest in one count with their range."""
    shown = sorted(sorted(at, key=lambda step: (-at[step], step))[:STOP_STEPS_SHOWN])
    said = ", ".join(f"{at[step]:,} at step {step}" for step in shown)
    rest = sorted(set(at) - set(shown))
    if rest:
        said += (f"; {sum(at[step] for step in rest):,} at {len(rest):,} other steps "
                 f"from {rest[0]} to {rest[-1]}")
    return said


#: the pruned trials ``tunesmith show`` lists with their last report (the latest)
PRUNED_SHOWN = 5


def latest_pruned(trials: Sequence[FrozenTrial]) -> tuple[list[str], str]:
    """The latest pruned trials as ``show`` lists them, "#7 at step 2: 0.4013" (and where its metric turned
    NaN: "(diverged at step 3)"), and a note when more were pruned. A value told with the pruning
    (``study.tell(n, 0.9, state="pruned")``, ``add_trial``) is not the last report: it follows, "(value 0.9)"."""
    pruned, more = _latest(trials, TrialState.PRUNED, PRUNED_SHOWN)
    return [_pruned_row(t) for t in pruned], more


def _latest(trials: Sequence[FrozenTrial], state: TrialState, shown: int) -> tuple[list[FrozenTrial], str]:
    """The latest ``shown`` trials in ``state``, and a note when there are more."""
    some = [t for t in trials if t.state is state]
    return some[-shown:], f"the last {shown} of {len(some)}; tunesmith export lists all" if len(some) > shown else ""


def _pruned_row(t: FrozenTrial) -> str:
    """"#7 at step 2: 0.4013": a pruned trial's last report and its step, and its value where that is another."""
    value = "no value" if t.value is None else f"value {t.value:.6g}"
    step = t.last_step
    if step is None:
        return f"#{t.number} before its first report: {value}"
    last = t.intermediate[step]
    nan = diverged_cell(t)
    return (f"#{t.number} at step {step}: {last:.6g}" + ("" if t.value == last else f" ({value})")
            + (f" (diverged at {nan})" if nan else ""))


#: the failed trials ``tunesmith show`` and the report list with their worker and error (the latest)
FAILED_SHOWN = 5


def latest_failures(trials: Sequence[FrozenTrial]) -> tuple[list[tuple[int, str, str]], str]:
    """The latest failed trials as (number, where it failed, the error's first line), and a note when more
    failed. Where: ``on <worker>``; for a trial no worker ran (recorded with ``add_trial``), hypertune's outer
    step it records, or ``""``."""
    failed, more = _latest(trials, TrialState.FAILED, FAILED_SHOWN)
    return [(t.number, _where_failed(t), _first_line(t.error or "no error recorded")[:300]) for t in failed], more


def _where_failed(trial: FrozenTrial) -> str:
    """``on <worker>`` (a worker from an imported file or a database may be long: shortened), ``at hypertune's
    outer step N`` for a hypertune step (no worker runs it; ``of run R`` after a study's second run), else ``""``
    (a trial recorded without a worker)."""
    if trial.worker:
        return f"on {shortened(trial.worker)}"
    step, run = (trial.attrs.get(key) for key in ("outer_step", "run"))
    if not _whole(step):
        return ""
    return f"at hypertune's outer step {step}{f' of run {run}' if _whole(run) else ''}"  # runs 2, 3... say theirs


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first_line(text: str) -> str:
    """``text`` up to its first line end (not splitlines', which also ends a line at ``\x1c``,
    ``\x85`` or U+2028: an error holding one was cut there)."""
    return text.split("\n", 1)[0].split("\r", 1)[0]


def _failed(s: Snapshot) -> str:
    """Why the latest trials failed and where they ran, as ``tunesmith show`` lists them."""
    rows, more = latest_failures(s.trials)
    if not rows:
        return ""
    return f"<h2>Failed trials{f' ({_e(more)})' if more else ''}</h2>" + html_table(["#", "where", "error"], [(n, where or "-", error) for n, where, error in rows], left=3)


#: the pruned trials the report lists (the latest), below the best and the failed ones
PRUNED_REPORTED = 20


def _pruned(s: Snapshot) -> str:
    """The latest pruned trials: the step each stopped at, its last report (its value, and the value told with
    the pruning where that is another), where its metric turned NaN, and its parameters."""
    pruned, more = _latest(s.trials, TrialState.PRUNED, PRUNED_REPORTED)
    if not pruned:
        return ""
    names = [n for n in s.space if any(n in t.params for t in pruned)]
    told = any(t.last_step is not None and t.value != t.intermediate[t.last_step] for t in pruned)
    nan = diverged(pruned)
    head = ["#", "stopped at", "last report", *(["value"] if told else []), *(["diverged at"] if nan else []),
            *(short_title(display_names(s.space)[n]) for n in names), "seconds"]
    rows = []
    for t in pruned:
        last = None if t.last_step is None else t.intermediate[t.last_step]
        rows.append([str(t.number), stopped_cell(t) or "before its first report", "" if last is None else f"{last:.6g}",
                     *(["" if t.value is None or t.value == last else f"{t.value:.6g}"] if told else []),
                     *([diverged_cell(t)] if nan else []), *(_fmt(t.params[n]) if n in t.params else "" for n in names),
                     "" if t.duration is None else f"{t.duration:.3g}"])
    note = f" ({_e(more)})" if more else ""
    return f"<h2>Pruned trials{note}</h2><div class='wide'>{html_table(head, rows, left=0)}</div>"


def html_table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int, raw: bool = False) -> str:
    """An HTML table, its first ``left`` columns aligned left; cells escaped unless ``raw`` (HTML
    already); no header row when every heading is empty. The dashboard's tables too."""
    def cell(tag: str, i: int, v: Any) -> str:
        return f"<{tag}{' class=l' if i < left else ''}>{v if raw and tag == 'td' else _e(str(v))}</{tag}>"

    h = "".join(cell("th", i, v) for i, v in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{f'<tr>{h}</tr>' if any(head) else ''}{body}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else shortened(str(v))


def _short(v: Any) -> Any:
    """``v`` with each text in it :func:`shortened` (a 10 MB choice in a space's definition)."""
    if isinstance(v, str):
        return shortened(v)
    if isinstance(v, (list, tuple)):
        return [_short(x) for x in v]
    if isinstance(v, dict):
        return {short_title(k) if isinstance(k, str) else k: _short(x) for k, x in v.items()}  # a condition's names
    return v


def escape_html(text: str) -> str:
    """``text`` for an HTML page: markup escaped, and control characters but tabs and line ends
    written as escapes (``\\x1b``), as ``tunesmith show`` prints them (the page drew nothing for them)."""
    return html.escape(unseen_as_escapes(text), quote=True)


_e = escape_html


__all__ = ["SECTIONS", "build_report", "escape_html", "html_table", "write_report"]
