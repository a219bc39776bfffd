"""The ``tunesmith`` command line.

Each subcommand is a :class:`Subcommand` in :data:`SUBCOMMANDS`: a function
that adds its arguments and a function that runs it. To add one, write the two
functions and append an entry. ``run`` and ``worker`` read the same study file
(:class:`~tunesmith.cli.studyfile.StudyFile`) and share
:mod:`~tunesmith.cli.launch`: to add a flag that overrides a study-file key,
add the argument and its entry in ``launch._FLAGS``; to pass a new key on to
``Study.optimize``, extend :func:`~tunesmith.cli.launch.optimize_options`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..exceptions import TunesmithError
from . import commands, dashboard, focus, insight, worker
from .studyfile import DEFAULT_STORAGE, StudyFile, StudyFileError


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("run", "run a study described in a YAML file", commands.add_run_args, commands.cmd_run),
    Subcommand("studies", "list the studies in a storage", commands.add_studies_args, commands.cmd_studies),
    Subcommand("show", "print a study's best trials as a table", commands.add_show_args, commands.cmd_show),
    Subcommand("export", "write a study's trials as CSV or JSON", commands.add_export_args, commands.cmd_export),
    Subcommand("plot", "draw a study's plots to an HTML or image file (--kind: curves, history, parallel, "
               "slice, contour, importance, overfitting, process)", insight.add_plot_args, insight.cmd_plot),
    Subcommand("importance", "which parameters matter (fANOVA or PED-ANOVA)", insight.add_importance_args,
               insight.cmd_importance),
    Subcommand("compare", "run grid, random and Bayesian search (and others) on a study file and draw them",
               insight.add_compare_args, insight.cmd_compare),
    Subcommand("report", "write a study's self-contained HTML report", insight.add_report_args, insight.cmd_report),
    Subcommand("focus", "start a study in the space of the parameters that matter (the others fixed at the "
               "best trial's values)", focus.add_focus_args, focus.cmd_focus),
    Subcommand("dashboard", "serve a live dashboard of a storage's studies in the browser",
               dashboard.add_dashboard_args, dashboard.cmd_dashboard),
    Subcommand("worker", "join an existing study from this machine (storage shared by URL)",
               worker.add_worker_args, worker.cmd_worker),
    Subcommand("delete", "delete a study and its trials", commands.add_delete_args, commands.cmd_delete),
    Subcommand("copy", "copy a study (to another name or storage)", commands.add_copy_args, commands.cmd_copy),
    Subcommand("rename", "rename a study", commands.add_rename_args, commands.cmd_rename),
    Subcommand("note", "add a note to a study (tunesmith show lists them)", commands.add_note_args,
               commands.cmd_note),
    Subcommand("import", "create a study from a file that tunesmith export --format json wrote",
               commands.add_import_args, commands.cmd_import),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunesmith",
        description="Hyperparameter optimization from the command line.",
        epilog=f"Storage defaults to {DEFAULT_STORAGE} (a file in the current folder).",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tunesmith`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except BrokenPipeError:  # the reader went away (`tunesmith importance NAME | head -3`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141  # as a command stopped by SIGPIPE
    except (StudyFileError, TunesmithError, ValueError, TypeError, ImportError, OSError) as exc:
        print(f"tunesmith {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130


__all__ = ["SUBCOMMANDS", "StudyFile", "StudyFileError", "Subcommand", "build_parser", "main"]
