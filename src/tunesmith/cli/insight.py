"""The subcommands that look at a study: importance, plot, compare, report."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from ..importance import METHODS, Importances
from ..importance.data import left_out_text
from ..plots import HTML
from ..plots.compare import counted
from ..plots.records import short_title
from ..report import REPORT_FILE
from ..space import Space, display_names
from ..space.params import plural
from ..study import Study, trial_rows
from ..trial import FrozenTrial, TrialState, json_finite, one_line
from .commands import (
    PLOT_FILES,
    STDOUT,
    _a_terminal,
    _load,
    _write_utf8,
    at_least,
    literal,
    output_file,
    rows_csv,
    trial_dict,
    wide_console,
)
from .launch import check_name
from .studyfile import DEFAULT_STORAGE


def load(name: str, url: str) -> Study:
    """The study, opened read-only (these commands only read it)."""
    return _load(name, url)


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL (default: {DEFAULT_STORAGE})")


# -- importance ---------------------------------------------------------------------------------


def add_importance_args(p: argparse.ArgumentParser) -> None:
    _study_args(p)
    p.add_argument("--method", choices=METHODS, default="fanova",
                   help="fanova: shares of the variance (default); ped-anova: what sets the good trials apart")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the forest / the bootstrap (default 0)")
    p.add_argument("--pairs", type=at_least(0), help="how many pairs to list (fanova; default 5)")
    p.add_argument("--params", help="comma-separated parameters to measure (default: every searched one)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_importance(args: argparse.Namespace) -> int:
    if args.pairs is not None and args.method == "ped-anova":
        raise ValueError("--pairs lists fANOVA's pairs of parameters; ped-anova measures each parameter "
                         "alone: leave --pairs out, or use --method fanova")
    study = load(args.name, args.storage)
    imp = study.importance(args.method, seed=args.seed, params=_names(args.params))
    if args.json:
        print(json.dumps(imp.to_dict(), indent=2))
        return 0
    pairs = 5 if args.pairs is None else args.pairs
    wide_console().print(importance_table(study.name, imp, pairs, display_names(study.space)))
    return 0


def importance_table(name: str, imp: Importances, pairs: int, shown: Mapping[str, str] | None = None) -> Table:
    """``shown``: the names to print (:func:`tunesmith.space.display_names`)."""
    left = left_out_text(imp.left_out)
    table = Table(title=f"{literal(name)}: importance ({imp.method}, {imp.n_trials} complete trials"
                        f"{'; left out: ' + left if left else ''})")
    for col in ("parameter", "fraction", "± band", ""):
        table.add_column(col, justify="left" if col in ("parameter", "") else "right")
    if imp.note:
        table.caption = literal(imp.note)
    for e in [*imp.main, *imp.interactions[:pairs]]:
        table.add_row(literal(_label(e.names, shown)), f"{e.fraction:.3f}", f"{e.std:.3f}", "█" * round(40 * max(e.fraction, 0.0)))
    return table


# -- plot ---------------------------------------------------------------------------------------


def add_plot_args(p: argparse.ArgumentParser) -> None:
    from ..plots import KINDS

    _study_args(p)
    kinds = "; ".join(f"{k}: {help_}" for k, (help_, _) in KINDS.items())
    p.add_argument("--kind", choices=list(KINDS), default="curves", metavar="KIND",
                   help=f"what to draw (default curves). {kinds}")
    p.add_argument("--output", "-o", required=True, type=output_file(PLOT_FILES),
                   help="file to write: .html (interactive, opens offline) or .png, .svg, .pdf")
    p.add_argument("--params", help="comma-separated parameters to draw (default: parallel all, slice the first 24, "
                                    "contour the first 3 numeric ones, the best trial's first)")
    p.add_argument("--trial", type=int, help="the trial's number (overfitting; default the best)")
    p.add_argument("--log-y", action="store_true", help="logarithmic value axis (curves, history)")
    p.add_argument("--method", choices=METHODS, help="importance: fanova (default) or ped-anova")


#: the kinds each of plot's options applies to (given with another kind, it would be ignored)
OPTION_KINDS = {"params": ("parallel", "slice", "contour"), "trial": ("overfitting",), "log_y": ("curves", "history"),
                "method": ("importance",)}


def cmd_plot(args: argparse.Namespace) -> int:
    from .. import plots

    for option, kinds in OPTION_KINDS.items():
        if getattr(args, option) not in (None, False) and args.kind not in kinds:
            raise ValueError(f"--{option.replace('_', '-')} applies to --kind {', '.join(kinds)}, not {args.kind}")
    study = load(args.name, args.storage)
    records = plots.records_of(study, args.kind, log_y=args.log_y, params=_names(args.params), trial=args.trial,
                               method=args.method)
    return write_records(records, args.output, f"the {args.kind} of {study.name!r}")


def write_records(records: list, output: str, what: str) -> int:
    """Write what can be drawn; nothing to draw: say why and return 1."""
    from .. import plots

    drawn = [r for r in records if not r.empty]
    if not drawn:
        why = "; ".join(sorted({one_line(short_title(r.message or ""), None) for r in records})) or "no records"
        print(f"nothing to draw for {what}: {why}", file=sys.stderr)
        return 1
    from ..plots.reduce import MAX_POINTS, thin

    _mpl_to_file(output)
    # as the report and the dashboard: a trial of millions of reports wrote a file of hundreds
    # of MB (2 million: 78 MB in 32 s) that no browser opens
    long = any(len(series.x) > MAX_POINTS for r in drawn for series in getattr(r, "series", ()))
    plots.save([thin(r) for r in drawn], output)
    print(f"wrote {what} ({_describe(drawn)}) to {output}", file=sys.stderr)
    if long:
        print(f"series of more than {MAX_POINTS:,} points are drawn with {MAX_POINTS:,} (each stretch keeps its "
              "lowest and highest value)", file=sys.stderr)
    for r in records:
        if r.empty:
            print(f"not drawn: {one_line(short_title(r.title), None)}: {one_line(short_title(r.message or ''), None)}", file=sys.stderr)
    return 0


def _describe(records: list) -> str:
    return "; ".join(one_line(short_title(r.title), None) for r in records[:3]) + (f"; and {len(records) - 3} more" if len(records) > 3 else "")


def _mpl_to_file(output: str) -> None:
    """Import what draws ``output`` (plotly for a page, matplotlib for an image), before any
    work: ``compare`` ran every sampler, then failed on a missing library with a bare
    "No module named 'matplotlib'"; now the error names the extra to install."""
    if output.lower().endswith((".html", ".htm")):
        from ..plots.plotly_render import _go

        _go()
    else:
        from ..plots.mpl_render import _matplotlib

        _matplotlib().use("Agg")  # a file, never a window


# -- compare ------------------------------------------------------------------------------------


def add_compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_file", metavar="STUDY.yaml", help="the study file: its objective, space and direction")
    p.add_argument("--samplers", default="grid,random,bayes",
                   help="comma-separated samplers to run (default grid,random,bayes; also sobol, tpe, multifidelity, auto)")
    p.add_argument("--budget", type=at_least(1), default=30, help="trials per run (default 30)")
    p.add_argument("--seeds", type=at_least(1), default=3, help="runs per sampler (default 3)")
    p.add_argument("--first-seed", type=at_least(0), default=0, metavar="K",
                   help="seed of each sampler's first run: the runs take seeds K, K+1, ... (default 0); with "
                        "--storage, to add seeds to a stored comparison")
    p.add_argument("--output", "-o", required=True, type=output_file(PLOT_FILES),
                   help="chart to write: .html, .png, .svg or .pdf")
    p.add_argument("--log-y", action="store_true", help="logarithmic value axis")
    p.add_argument("--data", type=output_file(COMPARE_DATA, "the runs' trials to a .csv or .json file"),
                   help="also write every run's trials (sampler, seed, value, best so far, parameters) "
                        "to a .csv or .json file (the JSON with the summary table)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="keep each run as study NAME-SAMPLER-seedK there (NAME: the study file's), to look at "
                        "with show or the dashboard; run again, each run goes on to --budget trials (default: "
                        "in memory)")
    p.add_argument("--new-runs", action="store_true",
                   help="with --storage: where the objective's code changed since its runs were stored, keep "
                        "those runs as NAME-SAMPLER-seedK-before-DATE and start new ones (default: refused)")


#: the files ``compare --data`` writes
COMPARE_DATA = (".csv", ".json")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..plots import comparison, run_samplers
    from .studyfile import StudyFile

    _mpl_to_file(args.output)
    sf = StudyFile.load(args.study_file)
    space = sf.build_space()
    if space is None:
        raise ValueError(f"{args.study_file}: compare needs the study file's space: to run the samplers on it")
    if args.new_runs and args.storage is None:  # the runs in memory are new each time
        raise ValueError("--new-runs sets stored runs aside: it goes with --storage URL")
    samplers = _names(args.samplers)
    if not samplers:
        raise ValueError("--samplers names no sampler: give them comma-separated, e.g. --samplers grid,random,bayes")
    objective = sf.load_objective()  # first: its module may register a sampler of its own
    for name in samplers:
        check_name("sampler", name, "--samplers")
    direction = sf.direction or "minimize"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = run_samplers(objective, space, samplers=samplers, budget=args.budget, seeds=seeds,
                        direction=direction, pruner=sf.pruner, progress=_progress_lines(), storage=args.storage,
                        prefix=sf.name, new_runs=args.new_runs)
    chart = comparison(runs, direction=direction, log_y=args.log_y,
                       title=f"{sf.name}: best so far, {plural(args.budget, 'trial')}, {seeds_named(seeds)}")
    summary = _compare_summary(runs, direction)
    if summary:  # no run with a complete trial: nothing on standard output, as nothing is drawn
        wide_console().print(_compare_table(summary, direction))
    if args.data:  # first: the runs' numbers are kept even where nothing can be drawn
        write_compare_data(runs, space, direction, summary, args.data, title=sf.name, budget=args.budget)
    return write_records([chart], args.output, f"the comparison of {', '.join(samplers)}")


def seeds_named(seeds: range) -> str:
    """"seed 4", "seeds 0, 1", "seeds 0 to 2": the seeds a comparison ran, as its title names them."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {seeds[0]}, {seeds[1]}" if len(seeds) == 2 else f"seeds {seeds[0]} to {seeds[-1]}"


def _progress_lines() -> Callable[[str], None] | None:
    """Where standard error is no terminal (a CI log, ``2>&1 | tee``), where the runs' progress bars are not
    drawn: a line there as each run ends (and every 30 s within one), flushed; compare printed nothing until
    its table."""
    if _a_terminal(sys.stderr):
        return None
    return lambda line: print(f"compare: {line}", file=sys.stderr, flush=True)


def _compare_summary(runs: Mapping[str, Sequence[Study]], direction: str) -> list[dict[str, Any]]:
    """Per sampler with a complete trial in a run: the median, best and worst of the runs' best values."""
    sign = -1.0 if direction == "maximize" else 1.0
    summary = []
    for name, studies in runs.items():
        bests = sorted((s.best_value for s in studies if s.trials_in("complete")), key=lambda v: sign * v)
        if bests:
            summary.append({"sampler": name, "median": statistics.median(bests), "best": bests[0],
                            "worst": bests[-1], "runs": len(bests)})
    return summary


def _compare_table(summary: list[dict[str, Any]], direction: str) -> Table:
    table = Table(title=f"best value after the budget ({direction})")
    for col in ("sampler", "median", "best", "worst", "runs"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for row in summary:
        table.add_row(row["sampler"], *(f"{row[k]:.6g}" for k in ("median", "best", "worst")), str(row["runs"]))
    return table


def best_so_far(trials: Sequence[FrozenTrial], direction: str) -> list[float | None]:
    """After each trial (in order), the best complete value so far, as the comparison draws it (None before
    the first complete trial, and for a trial the chart does not count: running, waiting, lost and re-queued)."""
    sign = -1.0 if direction == "maximize" else 1.0
    best: float | None = None
    out = []
    for t in trials:
        if t.state is TrialState.COMPLETE and t.value is not None and (best is None or sign * t.value < sign * best):
            best = t.value
        out.append(best if counted(t) else None)
    return out


def write_compare_data(runs: Mapping[str, Sequence[Study]], space: Space, direction: str,
                       summary: list[dict[str, Any]], output: str, *, title: str, budget: int) -> None:
    """``compare --data``: a row per trial of every run (CSV), or the runs with their trials and the summary
    table (JSON); ``best_so_far`` is the line the chart draws, each run's own."""
    from ..plots import replace_file

    runs_out, rows, trials = [], [], []
    for name, studies in runs.items():
        for study in studies:
            ordered = sorted(study.trials, key=lambda t: t.number)
            bests = best_so_far(ordered, direction)
            seed = study.sampler.seed
            last = next((b for b in reversed(bests) if b is not None), None)  # a waiting copy last has none
            runs_out.append({"sampler": name, "seed": seed, "best_value": last,
                             "trials": [{**trial_dict(t), "best_so_far": b} for t, b in zip(ordered, bests, strict=True)]})
            for row, b in zip(trial_rows(ordered, space), bests, strict=True):
                rows.append({"sampler": name, "seed": seed, **dict(list(row.items())[:3]), "best_so_far": b,
                             **dict(list(row.items())[3:])})
            trials.extend(ordered)
    if output.lower().endswith(".json"):
        seeds = list(dict.fromkeys(r["seed"] for r in runs_out))
        doc = {"study": title, "direction": direction, "budget": budget, "seeds": seeds, "summary": summary,
               "runs": runs_out}
        text = json.dumps(json_finite(doc), indent=2, default=repr, allow_nan=False) + "\n"
    else:
        text = rows_csv(rows, trials)
    replace_file(Path(output), lambda f: f.write(text.encode("utf-8")))
    print(f"wrote {plural(len(trials), 'trial')} of {plural(len(runs_out), 'run')} to {output}", file=sys.stderr)


# -- report -------------------------------------------------------------------------------------


def add_report_args(p: argparse.ArgumentParser) -> None:
    _study_args(p)
    p.add_argument("--output", "-o", default="report.html", type=output_file(HTML, REPORT_FILE, stdout=True),
                   help="HTML file to write (default report.html; '-': standard output)")
    p.add_argument("--top", type=at_least(1), default=10, help="best trials in the table (default 10)")


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report, write_report

    study = load(args.name, args.storage)
    if args.output == STDOUT:
        _write_utf8(build_report(study, top=args.top))
        return 0
    path = write_report(study, args.output, top=args.top)
    print(f"wrote the report of {study.name!r} ({plural(len(study.trials), 'trial')}) to {path}", file=sys.stderr)
    return 0


def _names(text: str | None) -> list[str] | None:
    """``--params a,b``: the names, each once (``x,x`` drew the same plot twice, ran a sampler twice);
    None when not given."""
    return list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip())) if text else None


def _label(names: Sequence[str], shown: Mapping[str, str] | None) -> str:
    return " × ".join((shown or {}).get(n, n) for n in names)
