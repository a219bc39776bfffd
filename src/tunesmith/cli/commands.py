"""The subcommands run, studies, show, export (one pair of functions each; worker is in worker.py; plot,
importance, compare and report in insight.py)."""

from __future__ import annotations

import argparse
import csv
import errno
import fnmatch
import io
import json
import math
import os
import re
import shlex
import sys
import time
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cv import CV_ATTR, SETUP_ATTR, fold_metric
from ..exceptions import (
    StorageError,
    StudyNotFound,
    TrialFinishedError,
    UnreadableSpaceError,
    is_interrupt,
)
from ..paths import NotRegularFile, read_regular
from ..plots import HTML, IMAGES, check_output
from ..plots.records import pruner_label, short_title, stored_seed
from ..report import (
    FAILED_SHOWN,
    FOLDS_COLUMN,
    PRUNED_SHOWN,
    TRAIN_COLUMN,
    budget_of_steps,
    budget_spent,
    diverged,
    diverged_cell,
    folds_cell,
    has_folds,
    has_train,
    held,
    latest_failures,
    latest_pruned,
    overfit_cell,
    train_cell,
    unheld,
)
from ..samplers.simple import GridSampler, grid_remaining
from ..space import Space, display_names, for_display
from ..space.params import plural
from ..space.space import load_yaml, shortened
from ..storage import Storage, make_storage
from ..storage.base import StudyRecord, command_line, mask_url, password_note
from ..study import Study, trial_rows
from ..study.evaluate import SUFFIX as TEST_SUFFIX
from ..study.evaluate import TestResult, results_from, test_results
from ..study.manage import PICKED, delete_study, import_study, sampler_label, with_test_results
from ..study.trial import Trial, _as_float
from ..trial import (
    CONTROL_BUT_LINES,
    FrozenTrial,
    TrialState,
    as_escape,
    best_of,
    json_finite,
    one_line,
    ranked,
)
from .launch import EVERY_TRIAL_FAILED, optimize_options, prepare, run_trials
from .studyfile import DEFAULT_STORAGE, EXECUTORS, SPACE_EXAMPLE, StudyFile

# -- arguments ------------------------------------------------------------------------------


def wide_console() -> Console:
    """Rich's console; when the output is not a terminal (a pipe, a file, a CI log) rich would
    fold tables to 80 columns, cutting every value of a study with a dozen parameters to
    "0.…": there, tables take the width they need (COLUMNS still decides when set; 1,000 cut
    the values of 14 parameters of 90 characters). A COLUMNS that is no width above 0 is taken as not set:
    ``COLUMNS=0`` (a terminal that reports no size) made rich write nothing at all, with status 0; one rich
    does not read (``abc``, empty) folded a pipe's tables to 80 columns; a digit int() does not read (``²``)
    failed the command with "invalid literal for int()"."""
    env: dict[str, str] | os._Environ[str] = os.environ
    columns = env.get("COLUMNS")
    if columns is not None and not (columns.isascii() and columns.isdigit() and int(columns) > 0):
        env = {k: v for k, v in env.items() if k != "COLUMNS"}
    out = _Console(_environ=env)
    if out.is_terminal or "COLUMNS" in env:
        return out
    return _Console(width=100_000, _environ=env)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits with status 1 when the reader went away; raised instead, so that the command
        ends as every command does then (status 141, as one stopped by SIGPIPE; cli.main)."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def at_least(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum`` (a negative count would slice from the end)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


#: the files plot and compare write (plots.save)
PLOT_FILES = HTML + IMAGES


def output_file(suffixes: tuple[str, ...] = (), what: str | None = None, *, stdout: bool = False) -> Any:
    """An argparse type: a file path to write, checked before any work (a ``compare`` that ran
    for an hour then failed on a missing folder or a wrong suffix, losing every run); ``what``
    as for :func:`tunesmith.plots.check_output`; ``stdout``: ``-`` is standard output (a text
    format), else refused."""

    def parse(text: str) -> str:
        if text == STDOUT:
            if stdout:
                return text
            raise argparse.ArgumentTypeError(
                f"'-' (standard output): the file's suffix picks what is written ({', '.join(suffixes)}), so name "
                f"a file, such as out{suffixes[0] if suffixes else ''}")  # not ./-: a name without a suffix is refused too
        try:
            check_output(text, suffixes, what)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if _is_database(text):  # `export NAME -o tunesmith.db` replaced the database, every study in it, by CSV
            raise argparse.ArgumentTypeError(f"{text!r} is a SQLite database, which this would replace with every "
                                             "study in it: name another file (trials.csv)")
        database = next((text[:-len(end)] for end in SQLITE_COMPANIONS if text.endswith(end)), None)
        if database is not None and Path(text).exists() and _is_database(database):
            raise argparse.ArgumentTypeError(f"{text!r} is a file of the SQLite database {database!r} (the -wal one "
                                             "holds trials not yet copied into it): name another file (trials.csv)")
        return text

    parse.__name__ = "output file"
    return parse


#: ``--output -``: standard output (``export``), as for most Unix tools
STDOUT = "-"

#: the files SQLite keeps beside a database ``X``: ``X-wal`` holds committed trials not yet copied into ``X``
SQLITE_COMPANIONS = ("-wal", "-journal", "-shm")


def _is_database(path: str) -> bool:
    """Whether ``path`` is an existing SQLite database file (its first 16 bytes say so). Only a regular
    file is opened: /dev/stdout into a pipe would be opened for reading that pipe, and wait forever."""
    try:  # opened first, then looked at: a FIFO swapped in after a check would block the read
        return read_regular(Path(path), 16) == b"SQLite format 3\x00"
    except (OSError, NotRegularFile):
        return False


def add_storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL (default: {DEFAULT_STORAGE})")


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_file", metavar="STUDY.yaml", help="the study description")
    p.add_argument("--name", help="study name (resumes the study if it exists)")
    p.add_argument("--storage", help=f"database URL (default: the file's, else {DEFAULT_STORAGE})")
    p.add_argument("--sampler", help="grid, random, sobol, tpe, bayes, multifidelity, auto (default: the file's, else a study's own; a new study's auto)")
    p.add_argument("--direction", choices=["minimize", "maximize"], help="default: the file's, else a study's own; a new study's minimize")
    p.add_argument("--n-trials", type=int, help="trials to run now (default: the file's n_trials; with neither it nor a timeout, until Ctrl-C)")
    p.add_argument("--timeout", type=float, help="seconds after which no trial starts (default: the file's, else none)")
    p.add_argument("--trial-timeout", type=float, help="seconds a trial may run before it is stopped and failed")
    p.add_argument("--n-jobs", type=int, help="parallel workers, -1: one per core (default: the file's n_jobs, else 1)")
    p.add_argument("--seed", type=int, help="seed of the sampler (default: the file's, else a random one)")
    p.add_argument("--top", type=at_least(1), default=5, help="best trials to print at the end (default 5)")
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where trials run (default: processes for SQL storage with --n-jobs > 1)")
    p.add_argument("--address", help="Ray cluster address HOST:PORT (with --executor ray)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def add_show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    add_storage_arg(p)
    p.add_argument("--top", type=at_least(1), default=10, help="how many of the best trials (default 10)")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    add_storage_arg(p)
    p.add_argument("--format", choices=["csv", "json"],
                   help="csv: a row per trial (default, unless --output ends in .json); json: the study's space "
                        "and full trial records")
    p.add_argument("--output", "-o", type=output_file(stdout=True),
                   help="file to write (default, or '-': standard output; a file named '-' is ./-)")


# -- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    sf, study, objective = prepare(args)
    before = {t.number: (t.state, t.system.n_resumes) for t in study.trials}
    status = run_trials(study, objective, optimize_options(sf, args.progress))
    try:
        _print_run(study, before, args.top)
        if status == EVERY_TRIAL_FAILED:
            wide_console().print(f"every trial run now failed (exit status {status}); their errors: "
                                 f"{literal(_show_command(study))}", soft_wrap=True)
    except OSError:
        if status <= 128:  # stopped by a signal: a terminal that closed (SIGHUP) takes no summary, the status says it
            raise
    return status


def _show_command(study: Study) -> str:
    """The ``tunesmith show`` that reads ``study`` where it is stored (without ``--storage`` it read
    tunesmith.db in the current folder: "no study" for a study file's own storage)."""
    url = study.storage.display_url
    if "://" not in url:  # in memory: nothing to show after the run
        return command_line("show", study.name)
    return command_line("show", study.name, options=["--storage", url]) + password_note(url)


def _print_run(study: Study, before: dict[int, tuple[TrialState, int]], top: int) -> None:
    trials = study.trials
    console = wide_console()
    console.print(f"study [bold]{literal(study.name)}[/] in {escape(study.storage.display_url)}: "
                  f"{_ran_now(study, trials, before)}, {len(trials)} in all ({_state_counts(trials)})", soft_wrap=True)
    if any(t.state is TrialState.COMPLETE for t in trials):
        console.print(best_table(study, trials, top))
        console.print(f"best configuration: {json.dumps(for_display(study.best_params))}  "
                      f"value: {study.best_value:.6g}",
                      soft_wrap=True, markup=False)


def _ran_now(study: Study, trials: list[FrozenTrial], before: dict[int, tuple[TrialState, int]]) -> str:
    """What this run ran: new trials, trials that waited in the queue before it (enqueued, or copies
    of an earlier run's lost trials) and paused trials it resumed."""
    new = sum(t.number not in before for t in trials)
    queued = sum(t.number in before and before[t.number][0] is TrialState.WAITING and t.state is not TrialState.WAITING
                 for t in trials)  # fmt: skip
    resumes = [t.system.n_resumes - before[t.number][1] for t in trials  # by trial: a run may resume one again
               if t.number in before and before[t.number][0] is not TrialState.WAITING
               and t.system.n_resumes > before[t.number][1]]  # fmt: skip
    resumed = len(resumes)
    ran = new + queued + resumed
    if ran == 0 and isinstance(study.sampler, GridSampler) and not grid_remaining(study.sampler, study.space, trials):
        return "nothing searched now (the grid is exhausted: every configuration has been tried)"
    times = f" {plural(sum(resumes), 'time')}" if sum(resumes) > resumed else ""  # paused again, resumed again
    older = [f"{queued} queued before it" if queued else "", f"{resumed} paused, resumed{times}" if resumed else ""]
    said = ", ".join(w for w in older if w)
    return f"{plural(ran, 'trial')} run now" + (f" ({said})" if said else "")


# -- studies / show / export --------------------------------------------------------------------


def literal(text: str) -> str:
    """Text read from a database as the terminal shows it: markup literal, control characters (and
    Unicode's line separators and direction marks) as escapes (``\\x1b``, ``\\u2028``), so a name or
    value written into a shared database cannot drive the terminal (colours, a title, a hidden line,
    text shown reversed) of whoever lists it."""
    return escape(one_line(text, None))


#: ``tunesmith studies --sort``: how each key orders the rows (by record, trials, last trial time)
STUDY_ORDER = {
    "created": lambda rec, trials, last: rec.study_id,
    "name": lambda rec, trials, last: rec.name,
    "trials": lambda rec, trials, last: -len(trials),
    "last": lambda rec, trials, last: -last,
}


def add_studies_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*",
                   help="list only the studies whose name matches this pattern ('mlp-*', '*2026*'; quote it)")
    add_storage_arg(p)
    p.add_argument("--sort", choices=list(STUDY_ORDER), default="created",
                   help="row order: created (default), name, trials (most first), last (latest trial first)")
    p.add_argument("--all", action="store_true",
                   help=f"also list the companion studies NAME{TEST_SUFFIX} where evaluate_best keeps test "
                        "results (by default counted in their study's row)")
    p.add_argument("--json", action="store_true",
                   help="print JSON instead of a table: a list of studies, one object each with the table's columns")


def cmd_studies(args: argparse.Namespace) -> int:
    from ..storage.sql import log_alone, missing_sqlite_file, storage_options
    from .studyfile import sqlite_path

    storage = make_storage(args.storage, read_only=True)
    records = storage.list_studies()
    if not records:
        if missing_sqlite_file(storage.display_url):  # a typo, or run from another folder: an error, as show's
            db = sqlite_path(storage.url)
            if alone := log_alone(Path(db[1]).expanduser().resolve()) if db else "":  # deleted while open
                raise StorageError(f"no studies in {storage.display_url}: {alone}")
            found = storage_options(storage.url)  # the study written to boost.db, read from the default
            raise StorageError(f"no studies in {storage.display_url}: there is no such database file "
                               f"(--storage names the one to read{': ' + found if found else ''})")
        print(f"no studies in {storage.display_url}", file=sys.stderr)  # a note, on stderr: `| grep -q NAME` found it
        return _no_rows(args)
    names = {rec.name for rec in records}
    companions = {rec.name: rec for rec in records
                  if rec.name.endswith(TEST_SUFFIX) and rec.name.removesuffix(TEST_SUFFIX) in names}
    shown = [rec for rec in records if (args.all or rec.name not in companions)
             and (rec.name == args.pattern or fnmatch.fnmatchcase(rec.name, args.pattern))]
    if not shown:
        tests = [n for n in companions if n == args.pattern or fnmatch.fnmatchcase(n, args.pattern)]
        print(f"no study matches {args.pattern!r} in {storage.display_url} ({plural(len(records), 'study', 'studies')}"
              + (f"; it matches {plural(len(tests), 'companion study', 'companion studies')} of test results, listed with --all)"
                 if tests else "; the pattern is case-sensitive, * matches any text)"), file=sys.stderr)
        return _no_rows(args)
    rows = []
    for rec in shown:
        trials = storage.get_trial_heads(rec.study_id)  # not each trial's reports: a row may hold 60 MB
        rows.append((rec, trials, _last_time(trials)))
    rows.sort(key=lambda row: STUDY_ORDER[args.sort](*row))
    entries = [_study_entry(storage, rec, trials, last, companions.get(rec.name + TEST_SUFFIX))
               for rec, trials, last in rows]
    if args.json:
        print(json.dumps(json_finite(entries), indent=2, allow_nan=False))
        return 0
    table = Table(title=f"studies in {escape(storage.display_url)}")
    numeric = ("trials", "complete", "best value", "last trial", "test results")
    for col in ("name", "direction", "sampler", *numeric):
        table.add_column(col, justify="right" if col in numeric else "left")
    for e in entries:
        table.add_row(
            literal(e["name"]), e["direction"], literal(e["sampler"]), str(e["trials"]), str(e["complete"]),
            "-" if e["best_value"] is None else f"{e['best_value']:.6g}", _local_time(e["last_trial"] or 0.0),
            "-" if e["test_results"] is None else str(e["test_results"]),
        )
    wide_console().print(table)
    if companions and not args.all:
        print(f"test results of evaluate_best ({len(companions)} companion study(ies) NAME{TEST_SUFFIX}) are "
              "counted in their study's row; --all lists them too", file=sys.stderr)  # a note, as all notes
    return 0


def _last_time(trials: list[FrozenTrial]) -> float:
    """When the latest trial ended (or started), 0.0 without one; a time no clock gives (inf, nan: a row
    written by hand) is passed over, not taken for the latest (the study's time was lost)."""
    times = (t.completed or t.started or 0.0 for t in trials)
    return max((x for x in times if math.isfinite(x)), default=0.0)


def _no_rows(args: argparse.Namespace) -> int:
    """``studies`` found nothing to list: stdout stays empty (``| grep -q`` is false), or ``[]`` with ``--json``."""
    if args.json:
        print("[]")
    return 0


def _study_entry(storage: Storage, rec: StudyRecord, trials: list[FrozenTrial], last: float,
                 book: StudyRecord | None) -> dict[str, Any]:
    """A study's row of ``tunesmith studies`` as plain values, ``--json``'s object (``book``: its test
    results' companion study; ``last_trial`` in seconds since the epoch, None without trials)."""
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    top = best_of(done, rec.direction)
    tested = None if book is None else len(results_from(storage.get_trials(book.study_id), rec.direction,
                                                        where=book.name, quiet=True))
    return {
        "name": rec.name, "direction": rec.direction.value, "sampler": sampler_label(rec.config),
        "trials": len(trials), "complete": len(done), "best_value": None if top is None else top.value,
        "last_trial": last or None, "test_results": tested,
    }


def _local_time(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
    except (OverflowError, OSError, ValueError):  # a time no calendar holds (a row written by hand)
        return "-"


def _load(name: str, url: str, *, write: bool = False) -> Study:
    """The study; opened read-only unless the command writes (reading commands work on
    read-only media). A misspelt SQLite path is not found, never made (as ``load_study``)."""
    storage: Storage = make_storage(url, read_only=not write, create=False)
    try:
        return Study.load(name, storage)
    except StudyNotFound as exc:
        raise StudyNotFound(f"{exc}{_study_file_hint(name)}") from None


def _study_file_hint(name: str) -> str:
    """What to pass instead when ``name`` is a study file (``tunesmith show mlp.yaml``)."""
    from .studyfile import StudyFile

    if not name.lower().endswith((".yaml", ".yml", ".json")) or not Path(name).is_file():
        return ""
    try:
        sf = StudyFile.load(name)
    except (ValueError, OSError):
        return f"; {name!r} is a file: pass the study's name, and its storage with --storage"
    words = shlex.join([sf.name, "--storage", mask_url(sf.storage_url)])
    return f"; {name!r} is a study file: pass its study's name and storage, {words}{password_note(words)}"


def cmd_show(args: argparse.Namespace) -> int:
    study = _load(args.name, args.storage)
    trials, whole = _shown_and_whole(study, args.top)
    held_trials = _held_trials(study, trials, whole)
    console = wide_console()
    console.print(f"study [bold]{literal(study.name)}[/] ({study.direction.value}, sampler {literal(_sampler_words(study))}): "
                  f"{plural(len(trials), 'trial')} ({_state_counts(trials)})", soft_wrap=True)
    for note in study.notes:
        console.print(f"note {_local_time(_as_float(note.get('time')) or 0.0)}: {literal(str(note.get('text')))}",
                      soft_wrap=True)
    if not any(t.state is TrialState.COMPLETE for t in trials):
        console.print("no complete trial yet")
        _show_failed(console, trials)
        _show_pruner(console, study, trials, args.storage, held_trials)
        _show_budget(console, study, trials, whole, held_trials)
        _show_running(console, study, trials)
        _show_pruned(console, trials)
        return 0
    console.print(best_table(study, trials, args.top))
    tests = test_results(study)
    if tests:  # the validation values are the best table's: of its scorer
        console.print(test_table(study, tests, _value_metric(study, ranked(trials, study.direction, args.top), trials)))
    _show_failed(console, trials)
    _show_pruner(console, study, trials, args.storage, held_trials)
    _show_budget(console, study, trials, whole, held_trials)
    _show_running(console, study, trials)
    _show_pruned(console, trials)
    return 0


def _sampler_words(study: Study) -> str:
    """The sampler as ``show``'s header names it: with its seed, as the report does (``tpe, seed 7``), the
    stored one where the study was made without ``seed=``: what runs the same trials again."""
    seed = stored_seed(study)
    return study.sampler_label + ("" if seed is None else f", seed {seed}")


#: ``show --top`` up to this reads each printed trial whole by itself, and beyond it the whole history at once
WHOLE_READS = 100


def _shown_trials(study: Study, top: int) -> list[FrozenTrial]:
    """:func:`_shown_and_whole`'s trials."""
    return _shown_and_whole(study, top)[0]


def _shown_and_whole(study: Study, top: int) -> tuple[list[FrozenTrial], bool]:
    """The trials as ``show`` prints them: every trial's head (number, state, value, times: what is
    counted and ranked) and, whole and in the space's form as ``study.trials`` gives them, the ``top``
    best complete trials and the last failed ones (what is printed). Reading every trial whole cost
    0.4 s at 5,000 trials of 50 reports. A row whole-read as unreadable takes its head's place (a
    failed trial). The whole history where that would not print the same: a parameter of the
    space that none of the top trials has (a column only another trial may fill), or a long ``--top``;
    and whether that was read (every trial whole)."""
    if top > WHOLE_READS:  # read whole at once, without the heads first (the heads made it 15% slower)
        return study.trials, True
    storage = study.storage
    sid = study._study_id  # the study opened: its id is known
    trials = storage.get_trial_heads(sid)
    if len(trials) <= top:
        return study.trials, True
    at = {t.number: i for i, t in enumerate(trials)}
    whole: set[int] = set()

    def read(number: int) -> FrozenTrial:
        # as study.trials gives it: one whose parameters do not fit the space is shown as stored, with its warning
        t = study._canonical(storage.get_trial(sid, number))
        trials[at[number]] = t
        whole.add(number)
        return t

    shown: list[FrozenTrial] = []
    for head in ranked(trials, study.direction):
        if len(shown) >= top and head.value != shown[-1].value:
            break  # the last shown value's ties are read too: their reports rank them (tie_key)
        if len(whole) == WHOLE_READS:
            return study.trials, True
        t = read(head.number)
        if t.state is TrialState.COMPLETE and t.value is not None:
            shown.append(t)
    if shown and any(not any(n in t.params for t in shown) for n in study.space):
        return study.trials, True
    listed = ([t for t in trials if t.state is TrialState.FAILED][-FAILED_SHOWN:]
              + [t for t in trials if t.state is TrialState.PRUNED][-PRUNED_SHOWN:])  # their reports: the step
    for t in listed:
        if t.number not in whole:
            read(t.number)
    return trials, False


def _show_running(console: Any, study: Study, trials: list[FrozenTrial]) -> None:
    """Without heartbeats, a trial whose whole run was killed (the optimize process itself, or
    its machine), or whose end a full disk refused, stays running forever: say how to have such trials failed."""
    running = [t.number for t in trials if t.state is TrialState.RUNNING]
    cfg = study.heartbeat_config
    if running and cfg.interval is not None and cfg.grace is not None:
        _show_silent(console, study, [t for t in trials if t.state is TrialState.RUNNING], cfg.grace)
    if running and cfg.interval is None:
        console.print(f"{plural(len(running), 'running trial')} ({_numbers(running, 5)}): this study has no "
                      "heartbeats, so a trial whose process was killed with its optimize call, or whose end its storage "
                      "refused (a full disk: that run ended with a StorageError naming the trial), stays running; "
                      f"to end one no process runs, call study.tell({running[0]}, state='failed') in Python; to "
                      "fail those, open the study with heartbeat_interval=S (and grace_period=G; in a study file, "
                      "heartbeat_interval: S for tunesmith run or worker): the next trial asked fails running trials "
                      "with no heartbeat for G seconds", soft_wrap=True, highlight=False)


def _show_silent(console: Any, study: Study, running: list[FrozenTrial], grace: float) -> None:
    """Running trials whose last heartbeat is older than the grace period (a worker killed with its
    optimize call): show counted them as running, with nothing to tell them from live ones."""
    now = study.storage.clock()  # the clock the beats were written with
    silent = [t for t in running if (t.heartbeat or t.started or now) < now - grace]
    if not silent:
        return
    since = max(now - (t.heartbeat or t.started or now) for t in silent)
    one = len(silent) == 1
    it, last, lost = ("it", "its last", "its worker looks lost (killed, or its machine)") if one else (
        "them", "the oldest", "their workers look lost (killed, or their machines)")
    again = f" and re-queues {it}" if study.heartbeat_config.requeue else ""
    console.print(f"{plural(len(silent), 'running trial')} ({_numbers([t.number for t in silent], 5)}) with no "
                  f"heartbeat for over the grace period of {grace:g} s ({last} {since:.0f} s ago): {lost}; the next "
                  f"trial asked of this study (optimize, tunesmith run or worker) fails {it} as lost{again}",
                  soft_wrap=True, highlight=False)


#: ``show`` lists the numbers of this many paused trials, for ``tunesmith tell``
PAUSED_SHOWN = 20


def _numbers(numbers: list[int], most: int, mark: str = "#") -> str:
    """``"#1, #3, ..."``: trial numbers as show lists them, the first ``most`` (``mark=""``: as tell takes them)."""
    return f"{mark}{f', {mark}'.join(map(str, numbers[:most]))}{', ...' if len(numbers) > most else ''}"


def _show_failed(console: Any, trials: list[FrozenTrial]) -> None:
    """Why the latest trials failed and where they ran (a lost Ray worker, a timeout, the objective's error)."""
    rows, more = latest_failures(trials)
    if not rows:
        return
    console.print(f"failed trials{f' ({more})' if more else ''}:", soft_wrap=True)
    for number, where, error in rows:
        # literal: both read from the database (an objective's message may hold terminal escapes)
        console.print(f"  #{number}{' ' if where else ''}{literal(where)}: {literal(error)}", soft_wrap=True, highlight=False)


def _show_pruned(console: Any, trials: list[FrozenTrial]) -> None:
    """The latest pruned trials, each with its value (its last report) and that report's step, as the
    dashboard's trials table and ``export`` give them."""
    rows, more = latest_pruned(trials)
    if rows:
        console.print(f"pruned trials{f' ({more})' if more else ''}, each with its last report: {'; '.join(rows)}",
                      soft_wrap=True, highlight=False)


def _show_budget(console: Any, study: Study, trials: list[FrozenTrial], whole: bool,
                 held_trials: list[FrozenTrial]) -> None:
    """Where the steps went, once a trial was stopped early: trained, saved by the pruner, and when it stopped
    trials. ``trials`` may be heads without reports (``whole`` false): each trial's state and last step are
    read then, only when one was stopped, in one query (each row's reports walked once, in the database), not
    every trial whole (its cost against the whole read: benchmarks/bench_show_budget.py)."""
    if not any(t.state in (TrialState.PRUNED, TrialState.PAUSED) for t in trials):
        return
    max_resource = getattr(study.pruner, "max_resource", None)
    said = budget_spent(trials, max_resource) if whole else budget_of_steps(
        unheld(study.storage.get_last_steps(study._study_id), held_trials), max_resource)
    if said:
        console.print(f"budget: {said}", soft_wrap=True, highlight=False)


def _show_pruner(console: Any, study: Study, trials: list[FrozenTrial], storage: str,
                 held: list[FrozenTrial]) -> None:
    """The pruner that stopped the study's pruned and paused trials, and what becomes of the paused: their
    numbers, which ``tunesmith tell`` takes (its errors say show lists them). Paused trials are listed
    whatever the stored pruner: a study created without one may hold trials a later session paused under
    another. ``held``: the paused trials held to resume first (:func:`_held_trials`)."""
    paused = [t.number for t in trials if t.state is TrialState.PAUSED]
    if study.pruner.name == "none" and not paused:
        return
    tell = command_line("tell", study.name, "N", options=[
        "--state", "pruned", *(["--storage", mask_url(storage)] if storage != DEFAULT_STORAGE else [])])
    resumes = ("a later optimize (tunesmith run or worker) resumes those it promotes" if study.pruner.pauses else
               "the study's pruner pauses none: an optimize given the pruner that paused them resumes those it promotes")
    console.print(f"pruner {escape(pruner_label(study.pruner) or 'none')}"
                  + (f"; {len(paused)} paused ({_numbers(paused, PAUSED_SHOWN)}): {resumes}; "
                     f"{literal(tell)}{password_note(tell)} ends one for good" if paused else "")
                  + _held_note(held), soft_wrap=True, highlight=False)


def _held_trials(study: Study, trials: list[FrozenTrial], whole: bool) -> list[FrozenTrial]:
    """The paused trials held to resume first, from their checkpoints (``report.held``). ``trials`` may be
    heads (``whole`` false), which have no ``system``: the storage finds them then (``Storage.get_held``:
    reading every paused trial whole made a plain show of 5,000 trials, 93% paused, 1.5 times as slow)."""
    if not any(t.state is TrialState.PAUSED for t in trials):
        return []
    return [t for t in trials if held(t)] if whole else study.storage.get_held(study._study_id)


def _held_note(held: list[FrozenTrial]) -> str:
    """The paused trials held to resume from their checkpoints, first, by the next optimize: stopped by an
    interrupt (Ctrl-C, SIGTERM, SIGHUP: each named), or their worker died; "" when none is."""
    if not held:
        return ""
    by: dict[str, list[int]] = {}  # what stopped them, each once, in the trials' order
    for t in held:
        by.setdefault(_stopped_by(t.system.held), []).append(t.number)
    whys = list(by.items())
    why = [f"{_numbers(numbers, PAUSED_SHOWN)} {what}" for what, numbers in whys[:HELD_WHYS_SHOWN]]
    if len(whys) > HELD_WHYS_SHOWN:  # a writer of the database can make each held trial's differ
        rest = sorted(n for _, numbers in whys[HELD_WHYS_SHOWN:] for n in numbers)
        # not "signals": a dead worker's trials are among them where a writer's names came first
        why.append(f"{_numbers(rest, PAUSED_SHOWN)} held for {plural(len(whys) - HELD_WHYS_SHOWN, 'other reason')}")
    return f"; the next optimize resumes first, from their checkpoints: {'; '.join(why)}"


#: the reasons ``show`` names for held trials (Ctrl-C, SIGTERM, SIGHUP, a dead worker), the others counted
HELD_WHYS_SHOWN = 4


def _stopped_by(why: str | None) -> str:
    """Why a held trial waits, as show says it: the signal that stopped it (``interrupted (SIGHUP)``: "stopped
    by SIGHUP"; Ctrl-C for a KeyboardInterrupt), else its worker died or refused the checkpoint. The name is
    read from the database: shown literal and cut (a writer's "[/x]" failed show, and escapes drove the terminal)."""
    if not is_interrupt(why):
        return "whose worker died or refused the checkpoint"
    name = (why or "").removeprefix("interrupted (").removesuffix(")")
    if name.startswith(_DIED):  # its worker ended (killed, or a Ctrl-C of its own) just before the run's interrupt
        return f"whose worker ended ({literal(short_title(name.removeprefix('worker ')))}) as the run was interrupted"
    return f"stopped by {'Ctrl-C' if name == 'KeyboardInterrupt' else literal(short_title(name))}"


#: how an interrupt records the trial of a worker that had ended before it ("interrupted (worker exit code -9)")
_DIED = "worker exit code "


def test_table(study: Study, tests: dict[int, TestResult], metric: str | None = None) -> Table:
    """Validation next to test for the configurations ``evaluate_best`` re-evaluated; ``metric``: the scorer of
    the validation values (the test function's is the caller's own)."""
    sign = study.direction.sign()
    rows = sorted(tests.values(), key=lambda r: (sign * r.validation, r.trial))
    winner = min(rows, key=lambda r: sign * r.mean).trial
    table = Table(title="held-out test (study.evaluate_best); gap: how much validation overstated test")
    for col in ("#", "validation" if metric is None else f"validation ({literal(short_title(metric))})", "test", "gap",
                ""):
        table.add_column(col, justify="right" if col else "left")
    for r in rows:
        test = f"{r.mean:.4g}" + (f" ± {r.std:.2g} ({len(r.values)} seeds)" if len(r.values) > 1 else "")
        table.add_row(str(r.trial), f"{r.validation:.4g}", test, f"{r.gap:+.3g}", "winner by test" if r.trial == winner else "")
    return table


#: parameter columns of the best-trials table: with more than MAX, the first SHOWN, the rest
#: left to ``tunesmith export``
MAX_PARAM_COLUMNS = 16
SHOWN_PARAM_COLUMNS = 6


def _export_command(study: Study) -> str:
    """The ``tunesmith export`` of ``study`` where it is stored: without ``--storage`` it read tunesmith.db
    in the current folder (another study of that name, or none), unless that is where the study is."""
    url = study.storage.display_url
    where = [] if "://" not in url or study.storage.url == DEFAULT_STORAGE else ["--storage", url]
    return command_line("export", study.name, options=where) + password_note(*where)


def _value_metric(study: Study, best: list[FrozenTrial], trials: list[FrozenTrial]) -> str | None:
    """The scorer that ``best``'s values are of (:func:`cv.fold_metric`). A search with one scorer records its name
    on each fit's first trial only (with ``n_jobs``, not always the lowest number), which ``trials`` may hold as a
    head without attrs (``show`` reads the printed ones whole): the first heads are then read whole for it."""
    metric = fold_metric(best)
    if metric is not None or not any(isinstance(t.attrs.get(CV_ATTR), dict)
                                     and t.attrs[CV_ATTR].get("key") == "test_score" for t in best):
        return metric
    metric = fold_metric([*best, *trials])  # read whole already (every trial where show read them all)
    heads = sorted(t.number for t in trials if not t.attrs)[:HEADS_READ_FOR_SCORER]
    for number in heads if metric is None else []:
        t = study.storage.get_trial(study._study_id, number)
        if SETUP_ATTR in t.attrs:  # a fit's first trial: its scorer, or none (the estimator's score)
            return fold_metric([*best, t])
    return metric


#: how many of the lowest-numbered trials read as heads show reads whole to find a search's one scorer's name
HEADS_READ_FOR_SCORER = 32


def best_table(study: Study, trials: list[FrozenTrial], top: int) -> Table:
    """The ``top`` complete trials, best first, a column per parameter."""
    best = ranked(trials, study.direction, top)
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    table = Table(title=f"best {len(best)} of {plural(len(done), 'complete trial')} ({study.direction.value})")
    table.add_column("#", justify="right")
    metric = _value_metric(study, best, trials)  # a search's scorer: with several, refit's, not the first
    value = "value" if metric is None else f"value ({literal(short_title(metric))})"
    table.add_column(value, justify="right", no_wrap=True, min_width=8)  # never squeezed to "0…"
    folded = has_folds(best)  # trials of cv.cross_validate: the spread to read the values against
    if folded:
        table.add_column(FOLDS_COLUMN, justify="right")
    trains = has_train(best)  # TunedSearchCV(return_train_score=True): the train/validation gap
    if trains:
        table.add_column(TRAIN_COLUMN, justify="right")
    names = [n for n in study.space if any(n in t.params for t in done)]
    if len(names) > MAX_PARAM_COLUMNS:  # thousands (a hyperparameter per weight) leave no column readable
        table.caption = (f"the first {SHOWN_PARAM_COLUMNS} of {len(names)} parameters; "
                         f"{literal(_export_command(study))} writes them all")
        names = names[:SHOWN_PARAM_COLUMNS]
    shown = display_names(study.space)  # a list of dicts' "0:C" as "C" or "C [branch 0]"
    for n in names:
        table.add_column(literal(short_title(shown[n])))  # a name of a megabyte: its start, "…", its end
    table.add_column("seconds", justify="right")
    trained = any("overfit_at" in t.attrs for t in best)  # trials of ts.train.objective
    if trained:
        table.add_column("overfit at", justify="right")
    nan = diverged(best)  # a trained trial's value is its best before its metric turned NaN
    if nan:
        table.add_column("diverged at", justify="right")
    for t in best:
        cells = [literal(_fmt(t.params[n])) if n in t.params else "" for n in names]
        secs = "" if t.duration is None else f"{t.duration:.3g}"
        extra = ([overfit_cell(t)] if trained else []) + ([diverged_cell(t)] if nan else [])
        spread = ([folds_cell(t)] if folded else []) + ([train_cell(t)] if trains else [])
        table.add_row(str(t.number), f"{t.value:.6g}", *spread, *cells, secs, *extra)
    return table


def cmd_export(args: argparse.Namespace) -> int:
    fmt = _export_format(args.format, args.output)
    study = _load(args.name, args.storage)
    text = export_csv(study) if fmt == "csv" else export_json(study)
    if args.output and args.output != STDOUT:
        from ..plots import replace_file

        replace_file(Path(args.output), lambda f: f.write(text.encode("utf-8")))
        print(f"wrote {plural(len(study.trials), 'trial')} of {study.name!r} to {args.output}", file=sys.stderr)
    else:
        _write_utf8(text)
    return 0


def _write_utf8(text: str) -> None:
    """``text`` to standard output in UTF-8, as ``--output`` writes it, whatever the locale's encoding
    (Latin-1, or cp1252 on Windows, failed on the first '日' of a parameter value); to a terminal, its
    control characters but line ends and tabs as escapes (``\\x1b``), as :func:`literal` prints them."""
    encoding = getattr(sys.stdout, "encoding", None) or ""  # a notebook's own writer may have none
    if encoding.lower().replace("-", "") != "utf8" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.flush()
        sys.stdout.reconfigure(encoding="utf-8")
    if _a_terminal(sys.stdout):  # a worker name of "\x1b]52;c;...\a" wrote the reader's clipboard
        text = spoken(text)
    sys.stdout.write(text)


#: the control characters a terminal acts on, but line ends and tabs (a CSV's rows end "\r\n"), and UNSEEN
_SPOKEN = re.compile(rf"{CONTROL_BUT_LINES.pattern}|\r(?!\n)")


def spoken(text: str) -> str:
    """``text`` of several lines (a CSV, an error message) with the control characters a terminal acts
    on, but line ends and tabs, written as escapes (``\\x1b``)."""
    return _SPOKEN.sub(as_escape, text)


def _a_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # a notebook's writer, a closed stream
        return False


def _export_format(given: str | None, output: str | None) -> str:
    """``--format``, else the one ``--output``'s suffix names (``-o trials.json`` wrote CSV into it)."""
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    if given and suffix in ("csv", "json") and suffix != given:
        raise ValueError(f"--format {given} writes {given.upper()}, but --output {output!r} names a .{suffix} file: "
                         f"drop --format to write {suffix.upper()}, or name a .{given} file")
    return given or (suffix if suffix in ("csv", "json") else "csv")


def export_csv(study: Study) -> str:
    trials = study.trials
    return rows_csv(trial_rows(trials, study.space), trials)


def rows_csv(rows: Sequence[Mapping[str, Any]], trials: Sequence[FrozenTrial]) -> str:
    """CSV of ``rows`` (:func:`~tunesmith.study.study.trial_rows`' and more columns), each row the trial's
    of ``trials`` at its place; the columns are every row's, in order of first use (a cell a row lacks
    is empty)."""
    buf = _LineFeedRows()
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["number", "state", "value"]
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\r\n")
    writer.writeheader()
    for row, t in zip(rows, trials, strict=True):
        # an empty cell is an inactive parameter (or no value); a None the trial took is written "None"
        writer.writerow({k: "None" if v is None and k.startswith("params_") and k[7:] in t.params else
                         "" if v is None else _inert(_attr_cell(k, v)) for k, v in row.items()})
    return buf.getvalue()


class _LineFeedRows(io.StringIO):
    """Rows that csv wrote ending in "\r\n" kept ending in "\n". csv quotes a text holding a
    character of its line end only: with "\n" a text with a lone "\r" was written bare, and readers
    (spreadsheets too) split its row there, the rest of the text starting a row of its own."""

    def write(self, s: str) -> int:  # csv writes each row, its line end included, in one call
        return super().write(s[:-2] + "\n" if s.endswith("\r\n") else s)


def _attr_cell(column: str, v: Any) -> Any:
    """An attribute that is a list or a dict (fold scores, curves) as strict JSON, which
    ``json.loads`` reads back; Python's repr (single quotes, None, nan) is not JSON."""
    if column.startswith("attrs_") and isinstance(v, (list, tuple, dict)):
        return json.dumps(json_finite(v), default=repr, allow_nan=False)
    return v


FORMULA_STARTS = frozenset("=+-@")


def _inert(v: Any) -> Any:
    """A text a spreadsheet would read as a formula (``=HYPERLINK(...)``, ``@SUM(...)``, ``+``, ``-``)
    with a ``'`` before it, so that opening the file runs nothing (a value, an error or a worker
    name can come from whoever writes the database). Also where white space (a line break, U+3000)
    comes before one, which an import that trims spaces removes, and for the characters that read
    as one under NFKC (full-width ``＝ ＋ － ＠``, small ``﹦``), which a spreadsheet may take for
    the ASCII ones: a ``'`` costs the reader of a text nothing, a formula run costs them more. NULs are
    looked through: LibreOffice Calc drops them as it imports, and ran ``\\x00=1+1`` as ``=1+1``. Other
    characters before one (a zero-width space, a BOM, U+2060) are the cell's first: it read those as text."""
    if not isinstance(v, str) or not v:
        return v
    seen = v.replace("\x00", "")
    if seen.startswith(("\t", "\r")) or unicodedata.normalize("NFKC", seen.lstrip()[:1])[:1] in FORMULA_STARTS:
        return "'" + v
    return v


def export_json(study: Study) -> str:
    study._current_name()  # renamed by another process since it was opened: the file says its name now
    head = {"name": study.name, "direction": study.direction.value, "space": study.space.to_dict(),
            "sampler": study.sampler.describe(), "pruner": study.pruner.describe(), "notes": study.notes}
    picked = study.storage.get_study(study.name).config.get(PICKED) if study.sampler.name == "auto" else None
    doc = {
        "study": {**head, **({PICKED: picked} if isinstance(picked, str) else {})},  # shown as "auto (bayes)"
        "trials": [trial_dict(t) for t in study.trials],
        "test_results": [_test_dict(r) for r in test_results(study).values()],  # evaluate_best's
    }
    return json.dumps(json_finite(doc), indent=2, default=repr, allow_nan=False) + "\n"


def _test_dict(r: TestResult) -> dict[str, Any]:
    return {"trial": r.trial, "params": dict(r.params), "validation": r.validation, "values": list(r.values),
            "seeds": list(r.seeds)}


def trial_dict(t: FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number, "state": t.state.value, "value": t.value, "params": dict(t.params),
        "intermediate": {str(k): v for k, v in t.intermediate.items()}, "attrs": dict(t.attrs),
        "system": t.system.to_dict(), "error": t.error, "worker": t.worker, "started": t.started, "completed": t.completed,
    }


def _state_counts(trials: list[FrozenTrial]) -> str:
    counts = {s.value: sum(t.state is s for t in trials) for s in TrialState}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"


def _fmt(v: Any) -> str:
    return shortened(f"{v:.4g}" if isinstance(v, float) else str(v))  # a value in the database may be 100 MB


# -- delete / copy / rename ----------------------------------------------------------------------


def add_delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    add_storage_arg(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def cmd_delete(args: argparse.Namespace) -> int:
    storage = make_storage(args.storage, create=False)  # a misspelt path: not found, no empty file left there
    try:
        trials = Study.load(args.name, storage).trials
        n = _counted(len(trials), trials, "running: the workers running them stop with an error")
    except StudyNotFound:
        raise
    except StorageError as exc:  # a study changed outside tunesmith so that it cannot be opened: deletable
        print(f"tunesmith delete: {spoken(str(exc))}", file=sys.stderr)
        n = "? trials"
    name, url = args.name, storage.display_url
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"deleting study {name!r} ({n}) cannot be undone: pass --yes to confirm")
        # asked on stderr, as rm -i asks: with stdout redirected (> log) the question went into the file
        print(f"delete study {name!r} and its {n}{with_test_results(storage, name)} from {url}? [y/N] ",
              end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:  # Ctrl-D: a no (it was a traceback)
            print(file=sys.stderr)
        if answer.strip().lower() != "y":
            print("nothing deleted")
            return 1
    delete_study(storage, name)  # with its test results; by name, as the study may not open
    print(f"deleted study {name!r} ({n}) from {url}")
    return 0


def _counted(n: int, trials: list[FrozenTrial], running: str) -> str:
    """``"N trials"``, and how many of ``trials`` are running, with ``running`` said of them."""
    busy = sum(t.state is TrialState.RUNNING for t in trials)
    return plural(n, "trial") + (f", {busy} of them {running}" if busy else "")


def add_copy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("new_name", nargs="?", help="the copy's name (default: the same, with --to-storage)")
    add_storage_arg(p)
    p.add_argument("--to-storage", help="database URL to copy into (default: the same storage)")
    p.add_argument("--space", metavar="STUDY.yaml",
                   help="give the copy the space of this study file (only the trials that fit it are copied)")
    p.add_argument("--fill", metavar="NAME=VALUE", action="append", default=[],
                   help="with --space: the value the trials ran with of a parameter the space adds (wd=0.0); "
                        "repeat it for several")


def cmd_copy(args: argparse.Namespace) -> int:
    study = _copied(args)
    copy = study.copy(args.new_name, storage=args.to_storage, space=_space_of(args.space), fill=_fill(args.fill))
    n = _counted(len(copy.trials), study.trials, "running, copied as failed (no worker runs them in the copy)")
    print(f"copied study {study.name!r} ({n}) to {copy.name!r} in {copy.storage.display_url}")
    return 0


def _copied(args: argparse.Namespace) -> Study:
    """The study to copy (first: a wrong NAME is said so); one whose stored space is unreadable (changed
    outside tunesmith) is read in the --space given, so that the trials that fit it can be kept. The
    arguments are checked before that is said."""
    try:
        study: Study | None = _load(args.name, args.storage, write=args.to_storage is None)
    except UnreadableSpaceError:
        if args.space is None:
            raise
        study = None
    if args.to_storage is None and args.new_name in (None, args.name):
        raise ValueError(f"copy study {args.name!r} to a NEW_NAME, or into another database with --to-storage URL")
    if args.fill and args.space is None:
        raise ValueError("--fill gives the values of parameters a new space adds: pass --space STUDY.yaml too")
    if study is not None:
        return study
    space = _space_of(args.space)
    print(f"study {args.name!r}: its stored space is unreadable; its trials are read in the space of "
          f"{args.space}", file=sys.stderr)
    storage = make_storage(args.storage, read_only=args.to_storage is not None)
    return Study(storage=storage, name=args.name, _read_in=space)


def _space_of(path: str | None) -> Space | None:
    """The space of the study file at ``path`` (None without one)."""
    if path is None:
        return None
    space = StudyFile.load(path).build_space()
    if space is None:
        raise ValueError(f"{path} has no space: to give the copy; add one ({SPACE_EXAMPLE})")
    return space


#: megabytes ``tunesmith import`` reads by default (``--max-mb``): 100,000 trials of 100 reports are about 300
IMPORT_MAX_MB = 1024
#: ``--max-mb``'s megabyte: 10**6 bytes, as ``ls -l --si`` and ``du --si`` count (not 2**20, a mebibyte)
MEGABYTE = 1_000_000


def add_import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a study written by tunesmith export --format json ('-': standard input)")
    p.add_argument("new_name", nargs="?", help="the study's name (default: the name in the file)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="leave out (and list) the trials that do not fit the file's space, instead of refusing the file")
    p.add_argument("--max-mb", type=at_least(1), default=IMPORT_MAX_MB, metavar="MB",
                   help=f"refuse a file larger than MB megabytes of {MEGABYTE:,} bytes (default {IMPORT_MAX_MB}: "
                        "reading a file takes several times its size in memory)")
    add_storage_arg(p)


def _read_export(file: str, max_mb: int) -> bytes:
    """The bytes of the export ``file`` ('-': standard input), refused past ``max_mb`` megabytes; a FIFO, a
    device or a folder is refused unread (a FIFO would wait for a writer, /dev/zero fill the memory)."""
    limit = max_mb * MEGABYTE
    try:
        raw = sys.stdin.buffer.read(limit + 1) if file == STDOUT else read_regular(Path(file), limit + 1)
    except NotRegularFile as exc:
        raise ValueError(f"cannot read {file!r}: it is {exc.kind}, not a regular file; name the file tunesmith "
                         "export wrote, or '-' to read standard input (a pipe)") from None
    except OSError as exc:
        raise ValueError(f"cannot read {file!r} as a study exported as JSON: {exc}") from None
    if len(raw) > limit:
        raise ValueError(f"{file!r} is larger than {max_mb:,} MB ({limit:,} bytes), the limit of --max-mb (reading it "
                         "takes several times that in memory): raise it (--max-mb N, in megabytes of "
                         f"{MEGABYTE:,} bytes) if the file is an export you mean to import")
    return raw


def cmd_import(args: argparse.Namespace) -> int:
    raw = _read_export(args.file, args.max_mb)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # Recursion: nested deep; Value: not UTF-8, JSON or 5,000 digits
        csv = isinstance(exc, json.JSONDecodeError) and exc.doc.startswith("number,")
        if type(exc) is ValueError:  # json's own words say to call sys.set_int_max_str_digits()
            exc = ValueError(f"it holds an integer of more than {sys.get_int_max_str_digits()} digits, which no "
                             "tunesmith export writes")
        raise ValueError(f"cannot read {args.file!r} as a study exported as JSON: {exc}" + (
            "; it is the CSV export, a table of the trials without the space: import reads "
            "tunesmith export NAME --format json" if csv else "")) from None
    study = import_study(doc, args.storage, args.new_name, skip_invalid=args.skip_invalid)
    left = len(doc["trials"]) - len(study.trials)
    print(f"imported study {study.name!r} ({plural(len(study.trials), 'trial')}"
          f"{f'; {left} left out, each named above' if left else ''}) into {study.storage.display_url}")
    return 0


def _add_name_and(p: argparse.ArgumentParser, second: str, help: str) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument(second, help=help)
    add_storage_arg(p)


def add_note_args(p: argparse.ArgumentParser) -> None:
    _add_name_and(p, "text", "the note (quote it): what changed, why a run was stopped")


def cmd_note(args: argparse.Namespace) -> int:
    study = _load(args.name, args.storage, write=True)
    study.add_note(args.text)
    print(f"study {study.name!r} has {plural(len(study.notes), 'note')}; tunesmith show lists them")
    return 0


def add_tell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("numbers", nargs="+", type=int, metavar="N", help="the paused trials to end")
    p.add_argument("--state", required=True, choices=("pruned", "failed"),
                   help="how they end (as study.tell(n, state=...)): pruned keeps their reports as a stopped "
                        "run's, failed records them as errors")
    add_storage_arg(p)


def cmd_tell(args: argparse.Namespace) -> int:
    """End paused trials for good (one whose checkpoint cannot resume, say): a study file's user has no
    Python session to call ``study.tell(n, state='pruned')`` in. Each trial is ended on its own: one a worker
    resumed since is refused and named, the others ended; every ended trial's checkpoints are deleted, also
    where a later one's write failed (its state recorded is final: nothing resumes from them)."""
    study = _load(args.name, args.storage, write=True)
    numbers = list(dict.fromkeys(args.numbers))  # a number given twice: ended once, not refused the second time
    ended: list[Trial] = []
    try:
        refused = end_paused(study, study.trials, numbers, args.state, ended)
    finally:  # a storage error midway: those ended before it are said, and their files go as for the others
        _said_ended(study, ended, args.state)
    if refused:
        raise TrialFinishedError(f"not {args.state}: {'; '.join(refused)}" + (
            f" (the {plural(len(ended), 'other trial')} {'was' if len(ended) == 1 else 'were'} {args.state})"
            if ended else ""))
    return 0


def _said_ended(study: Study, ended: list[Trial], state: str) -> None:
    """Say which trials were ended as ``state`` and delete their checkpoints (:func:`_release`)."""
    if not ended:
        return
    print(f"study {study.name!r}: {plural(len(ended), 'paused trial')} {state}: "
          f"{', '.join(str(t.number) for t in ended)}")
    freed = _release(ended)
    if freed:  # resolved from a path as stored (a writer of the database may lead it through a name holding escapes)
        print(spoken(f"deleted the checkpoints of {plural(len(freed), 'trial')} in {', '.join(map(str, freed))}"))


def _release(trials: list[Trial]) -> list[Path]:
    """The checkpoint folders of ``trials`` (ended for good) deleted, as a trial start's sweep deletes them
    (:func:`tunesmith.train.retention.release`; needs torch, else left to that sweep)."""
    if not any(t.record.attrs.get("checkpoint") for t in trials):
        return []
    try:
        from ..train import retention
    except ImportError:
        return []
    freed = []
    for t in trials:
        try:
            folder = retention.release(t)
        except (OSError, retention.ckpt.CheckpointError) as exc:  # housekeeping: the trial is ended all the same
            print(spoken(f"trial {t.number}'s checkpoints are left as they are: {exc}; the trial is ended, nothing "
                         "resumes from them: delete them by hand"))
            continue
        if folder is not None:
            freed.append(folder)
    return freed


def _left(study: Study, record: FrozenTrial | None) -> str:
    """What to do with the checkpoint folder an ended trial still has, which its tell would have deleted (one
    stopped before it did: killed, interrupted), said where that trial is refused; "" where there is none."""
    if record is None or record.state not in (TrialState.PRUNED, TrialState.FAILED) \
            or not record.attrs.get("checkpoint"):
        return ""
    try:
        from ..train import retention
    except ImportError:
        return ""
    folder = retention.releasable(Trial(study, record))
    if folder is None or not folder.is_dir():
        return ""
    return (f". Its checkpoints are still in {str(folder)!r} (a tunesmith tell stopped before it deleted them?); "
            "nothing resumes from them: the study's next trial start deletes them, or delete that folder by hand")


def end_paused(study: Study, trials: list[FrozenTrial], numbers: list[int], state: str,
               ended: list[Trial]) -> list[str]:
    """End the trials ``numbers``, paused in ``trials`` (the study's, as read), as ``state``, each ended one
    added to ``ended`` as it is written; returns why each refused trial was. Each write is a compare-and-set on
    the paused record read (a handle's, not a number, which is looked up again): a trial that a worker resumed
    since is refused, never ended while it runs, and the others are ended all the same. A number that names no
    paused trial as read ends none of them (a mistyped command)."""
    records = {t.number: t for t in trials}
    for n in numbers:
        if n not in records or records[n].state is not TrialState.PAUSED:
            what = "no such trial" if n not in records else f"it is {records[n].state.value}"
            paused = [t.number for t in trials if t.state is TrialState.PAUSED]
            now = f"paused now: {_numbers(paused, PAUSED_SHOWN, '')}" if paused else "none is paused now"
            raise ValueError(f"trial {n} of study {study.name!r}: {what}; tunesmith tell ends paused trials "
                             f"({now}), its objective or a worker ends the others{_left(study, records.get(n))}")
    refused = []
    for n in numbers:
        handle = Trial(study, records[n])
        try:
            study.tell(handle, state=state, error="ended by tunesmith tell" if state == "failed" else None)
        except TrialFinishedError as exc:
            refused.append(str(exc))
            continue
        ended.append(handle)
    return refused


def _fill(pairs: list[str]) -> dict[str, Any]:
    """``--fill NAME=VALUE`` as a dict, each value read as YAML reads it (0.0, adam, true)."""
    out = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"--fill takes NAME=VALUE (wd=0.0), got {pair!r}")
        try:
            out[key.strip()] = load_yaml(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--fill {pair!r}: the value is not read as YAML ({exc})") from None
    return out


def add_rename_args(p: argparse.ArgumentParser) -> None:
    _add_name_and(p, "new_name", "its new name")


def cmd_rename(args: argparse.Namespace) -> int:
    study = _load(args.name, args.storage, write=True)
    if args.new_name == args.name:
        print(f"study {args.name!r} is already named so; nothing changed")
        return 0
    study.rename(args.new_name)
    print(f"renamed study {args.name!r} to {args.new_name!r} in {study.storage.display_url}")
    return 0
