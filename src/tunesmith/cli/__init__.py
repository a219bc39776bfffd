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
import contextlib
import errno
import io
import os
import select
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import TunesmithError
from ..space.params import did_you_mean
from ..storage.base import mask_url, password_note
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
    Subcommand("worker", "run a shared study's trials from this machine (storage shared by URL; the first creates it)",
               worker.add_worker_args, worker.cmd_worker),
    Subcommand("delete", "delete a study and its trials", commands.add_delete_args, commands.cmd_delete),
    Subcommand("copy", "copy a study (to another name or storage)", commands.add_copy_args, commands.cmd_copy),
    Subcommand("rename", "rename a study", commands.add_rename_args, commands.cmd_rename),
    Subcommand("note", "add a note to a study (tunesmith show lists them)", commands.add_note_args,
               commands.cmd_note),
    Subcommand("tell", "end paused trials for good (--state pruned or failed), as study.tell(n, state=...)",
               commands.add_tell_args, commands.cmd_tell),
    Subcommand("import", "create a study from a file that tunesmith export --format json wrote",
               commands.add_import_args, commands.cmd_import),
]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.suggest_on_error = False  # argparse's own hint (on by default from Python 3.15) would repeat ours

    _intermixing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """A command's options before, between or after its positional arguments: argparse alone gave
        an optional one (``copy``'s NEW_NAME) nothing at the first positional, so that ``tunesmith copy
        s --storage URL s2`` ended in "unrecognized arguments: s2" while ``rename`` took the same order.
        The parser of the commands themselves (holding the subcommands) parses as argparse does."""
        if self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        if self._intermixing:
            return self._parse_around_double_dash(list(sys.argv[1:] if args is None else args), namespace)
        self._intermixing = True  # argparse's intermixed parse calls this again, to parse as it did
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def _parse_around_double_dash(self, args: list[str], namespace: Any) -> Any:
        """One of argparse's intermixed passes. The first (positionals off) reads no option after ``--``
        and keeps ``--`` in what it leaves: argparse dropped it, then read ``show --storage URL -- -s``'s
        ``-s`` as an option (the following arguments are required: name)."""
        if not any(a.nargs == argparse.SUPPRESS for a in self._get_positional_actions()):
            return super().parse_known_args(args, namespace)
        cut = args.index("--") if "--" in args else len(args)
        namespace, rest = super().parse_known_args(args[:cut], namespace)
        return namespace, rest + args[cut:]

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's refusal of a value that is not among the choices, with the closest one
        (``tunesmith shwo``, ``--kind histry``: did you mean 'show', 'history'?)."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            hint = did_you_mean(value, [str(c) for c in action.choices or ()])
            raise argparse.ArgumentError(action, f"{exc.message}{hint}") from None

    def _print_message(self, message: str, file: Any = None) -> None:
        """argparse drops an error writing ``--help`` or ``--version`` (status 0, nothing shown): raised
        here, for :func:`main` to say."""
        if message:
            (file or sys.stderr).write(message)


#: a command line each subcommand's ``--help`` ends with
EXAMPLES = {
    "run": "tunesmith run svm.yaml --n-trials 50 --n-jobs 4 --storage sqlite:///svm.db",
    "studies": "tunesmith studies 'svm-*' --sort last --storage sqlite:///svm.db",
    "show": "tunesmith show svm --top 5 --storage sqlite:///svm.db",
    "export": "tunesmith export svm --format json > svm.json  # or -o trials.csv",
    "plot": "tunesmith plot svm --kind history --log-y -o history.html",
    "importance": "tunesmith importance svm --method ped-anova --json > importance.json",
    "compare": "tunesmith compare svm.yaml --samplers random,bayes --budget 20 -o compare.png",
    "report": "tunesmith report svm -o svm-report.html",
    "focus": "tunesmith focus svm --keep C gamma --to svm-focus",
    "dashboard": "tunesmith dashboard --storage sqlite:///svm.db --port 8080",
    "worker": "tunesmith worker svm.yaml --n-jobs 2 --storage \"$DB_URL\"  # on each machine",
    "delete": "tunesmith delete svm-old --yes",
    "copy": "tunesmith copy svm svm-backup --to-storage sqlite:///backup.db",
    "rename": "tunesmith rename svm svm-2026",
    "note": "tunesmith note svm 'stopped: the learning rate range was wrong'",
    "tell": "tunesmith tell svm 12 14 --state pruned --storage sqlite:///svm.db",
    "import": "tunesmith import svm.json svm-copy --storage sqlite:///other.db",
}


class _Formatter(argparse.HelpFormatter):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """The example as written, on lines of its own (folded, it cannot be copied)."""
        head, sep, example = text.partition("example:\n")
        if not sep:
            return super()._fill_text(text, width, indent)
        return super()._fill_text(head, width, indent) + f"{indent}example:\n{indent}{example}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunesmith",
        description="Hyperparameter optimization from the command line.",
        epilog=f"A command's options come after its name (tunesmith show NAME --storage URL); tunesmith COMMAND "
               f"--help lists them. Storage defaults to {DEFAULT_STORAGE} (a file in the current folder).",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS:
        example = EXAMPLES.get(cmd.name)
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help,
                           epilog=f"example:\n  {example}" if example else None, formatter_class=_Formatter)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tunesmith`` command; returns the exit status."""
    stdout = sys.stdout
    before = (getattr(stdout, "encoding", None), getattr(stdout, "errors", None))
    try:
        return _main(argv)
    finally:  # called from a program: its standard output writes as it did (export switched it to UTF-8)
        if sys.stdout is not stdout:  # the whole-writes wrapper: let go of it without closing the file
            _let_go(sys.stdout)
            sys.stdout = stdout
        if hasattr(stdout, "reconfigure") and (stdout.encoding, stdout.errors) != before:
            with contextlib.suppress(OSError, ValueError):
                stdout.reconfigure(encoding=before[0], errors=before[1])


def _main(argv: Sequence[str] | None) -> int:
    _open_standard_streams()
    _whole_writes()
    _escape_what_cannot_be_encoded()
    command = "tunesmith"
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):  # `tunesmith` alone: the commands, not only the usage line
            parser.print_help(sys.stderr)
            print("tunesmith: error: name a command (tunesmith COMMAND --help lists its options)", file=sys.stderr)
            return 2
        try:
            _refuse_option_before_command(parser, list(sys.argv[1:] if argv is None else argv))
            args, extra = parser.parse_known_args(argv)
            if extra:  # said with the command's own usage line, not that of `tunesmith` alone
                _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit:  # --help, --version, a usage error: once their text is out
            if getattr(sys.stdout, "closed", False) is not True:
                sys.stdout.flush()
            raise
        command = f"tunesmith {args.command}"
        status = _run(command, args)
        if status > 128:  # stopped by a signal (SIGHUP: the terminal closed), which the status says
            _drop_unwritable()
        elif getattr(sys.stdout, "closed", False) is not True:  # closed by a caller: _run met it if it wrote
            sys.stdout.flush()  # a write error (a full disk, a closed stdout) is found here, not at Python's exit
        return status
    except BrokenPipeError:  # the reader went away (`tunesmith show NAME | head -1`): stop quietly
        _drop_stdout()
        return 141  # as a command stopped by SIGPIPE
    except (OSError, ValueError) as exc:  # standard output could not take what was written
        closed = isinstance(exc, ValueError)  # sys.stdout closed by the program that called main
        if closed and getattr(sys.stdout, "closed", False) is not True:
            raise
        _drop_stdout()
        why = ("it is closed" if not isinstance(exc, OSError) or exc.errno == errno.EBADF
               else exc.strerror or str(exc))
        print(f"{command}: error: cannot write to standard output: {why}", file=sys.stderr)
        return 2


def _refuse_option_before_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``tunesmith --storage URL show NAME`` (as ``git -C DIR log``): argparse took the URL for the
    command ("invalid choice: 'sqlite:///...'"); said here with the command line that works, quoted for
    the shell and with a URL's password as ``***``, as the other messages show a storage."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("-h", "--help", "--version", "--"):
        return
    names = [cmd.name for cmd in SUBCOMMANDS]
    at = next((i for i, word in enumerate(argv) if word in names), None)
    words = [_masked_word(w) for w in ([argv[at], *argv[:at], *argv[at + 1:]] if at is not None else argv)]
    password = password_note(*words)
    first = _masked_word(argv[0])
    if at is None:
        parser.error(f"{first} comes before the command, and no command is named (tunesmith --help lists "
                     f"them); a command's options come after its name: tunesmith COMMAND {shlex.join(words)}"
                     f"{password}")
    parser.error(f"{first} comes before the command; a command's options come after its name: "
                 f"tunesmith {shlex.join(words)}{password}")


def _masked_word(word: str) -> str:
    """``word`` of a command line with a storage URL's password as ``***`` (``URL``, ``--storage=URL``)."""
    if "://" not in word:
        return word
    flag, sep, value = word.partition("=") if word.startswith("-") else ("", "", word)
    return flag + sep + mask_url(value)


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (``show``) among ``parser``'s subcommands."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def _run(command: str, args: argparse.Namespace) -> int:
    """Run the parsed command: its status, or 2 with its error said in one line (130 on Ctrl-C). An
    error met writing standard output is raised for :func:`main`."""
    try:
        return int(args._run(args))
    except (StudyFileError, TunesmithError, ValueError, TypeError, ImportError, OSError) as exc:
        if isinstance(exc, (OSError, ValueError)) and (
                _stdout_broken() or isinstance(exc, BrokenPipeError) and _reader_gone()):
            raise
        # a name or path read from storage or a study file, in the message, cannot drive the terminal
        print(f"{command}: error: {commands.spoken(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130


def _stdout_broken() -> bool:
    """Whether standard output refuses what it holds (the error at hand was met writing it). Under
    ``PYTHONUNBUFFERED`` nothing is held, so a write of no bytes asks it (``/dev/full`` refuses one)."""
    if getattr(sys.stdout, "closed", False) is True:  # by a program calling main
        return True
    try:
        sys.stdout.flush()
    except OSError:
        return True
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (captured in a test)
        return False
    try:
        os.write(fd, b"")
    except OSError:
        return True
    return False


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reader went away (poll says so): a broken pipe met
    elsewhere (``-o FIFO``, a socket) is an error to say, not a reason to silence standard output."""
    if not hasattr(select, "poll"):  # Windows: every broken pipe is taken for standard output's
        return True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a notebook's own writer: no pipe to lose
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _drop_unwritable() -> None:
    """Standard output and error, each where it cannot be written (a terminal hung up), pointed at
    /dev/null: what is left buffered there fails no more at Python's exit (status 120)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that Python's flush at exit does not fail a second time
    ("Exception ignored ... BrokenPipeError", exit status 120)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or a writer of its own: nothing left to flush
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def _whole_writes() -> None:
    """Under ``PYTHONUNBUFFERED`` (``python -u``) standard output writes straight to the file, and a
    write the system takes only part of (the reader of a pipe gone midway, a disk filling) lost the
    rest without a word: ``tunesmith export NAME | head -1`` ended with status 0. A buffer writes
    all of it or raises; flushed at each line, output still comes as it is printed."""
    out = sys.stdout  # the process's own only (not a test's capture): sys.__stdout__ keeps its file open
    raw = getattr(out, "buffer", None)
    if out is sys.__stdout__ and isinstance(raw, io.RawIOBase):
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=sys.stdout.encoding,
                                      errors=sys.stdout.errors, line_buffering=True)


def _let_go(wrapper: Any) -> None:
    """Flush and detach the wrapper :func:`_whole_writes` made: dropped whole, it would close the
    process's standard output under it."""
    with contextlib.suppress(OSError, ValueError):
        wrapper.flush()
    with contextlib.suppress(AttributeError, ValueError):
        wrapper.detach().detach()


def _escape_what_cannot_be_encoded() -> None:
    """Under an encoding other than UTF-8 (an ASCII or Latin-1 locale, Windows' cp1252 redirected),
    a study name or value it cannot encode is written as ``\\u65e5``, as standard error writes it:
    ``show`` and ``studies`` failed on the first '日' ("'ascii' codec can't encode")."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if not encoding.startswith("utf") and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")


def _open_standard_streams() -> None:
    """Give a standard stream the caller closed (``tunesmith export NAME >&-``) /dev/null in its
    place, so that no file opened later (the database) takes its number and receives what is printed
    there. Standard output is opened for reading, so that writing to it fails as writing to a closed
    one does (the command says so, status 2); standard input reads nothing (``delete`` asks for
    ``--yes``); what goes to standard error is dropped, as there is nowhere to say it."""
    for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_RDONLY), (2, "stderr", os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            null = os.open(os.devnull, flags)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:  # Python started without it
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False))  # noqa: SIM115


__all__ = ["SUBCOMMANDS", "StudyFile", "StudyFileError", "Subcommand", "build_parser", "main"]
