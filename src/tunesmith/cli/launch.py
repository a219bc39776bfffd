"""From a study file and command-line flags to a running study; shared by ``run`` and ``worker``.

:func:`settings_from_args` applies the flags over the file, :func:`open_study`
creates or resumes the study it describes, and :func:`optimize_options` gives
``Study.optimize`` its keyword arguments (executor options included).
"""

from __future__ import annotations

import argparse
import errno
import functools
import multiprocessing as mp
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..code import objective_code
from ..exceptions import STOPPING_SIGNALS, ResumeRefused, StudyNotFound, Terminated
from ..execution import runs_in_processes
from ..execution.loop import stopped_by
from ..storage import MemoryStorage, Storage, make_storage
from ..storage.base import command_line, password_note
from ..study import Study
from ..study.manage import check_name_before_file, record_objective_code
from ..trial import FrozenTrial, TrialState
from .studyfile import SPACE_EXAMPLE, StudyFile, StudyFileError, sqlite_path

# StudyFile field <- argparse destination; a command without the flag leaves the file's value
_FLAGS = {
    "name": "name", "storage": "storage", "sampler": "sampler", "direction": "direction",
    "n_trials": "n_trials", "timeout": "timeout", "n_jobs": "n_jobs", "seed": "seed",
    "executor": "executor", "ray_address": "address", "trial_timeout": "trial_timeout",
}


def settings_from_args(args: argparse.Namespace) -> StudyFile:
    """The study file ``args.study_file`` with the command-line flags applied over it."""
    sf = StudyFile.load(args.study_file)
    if getattr(args, "address", None) and (getattr(args, "executor", None) or sf.executor) != "ray":
        raise StudyFileError(
            "--address is the Ray cluster's address: pass --executor ray with it (or set executor: ray in the file)"
        )
    if getattr(args, "storage", None) is None:
        _note_database_elsewhere(sf)
    sf = sf.override(**{key: getattr(args, dest, None) for key, dest in _FLAGS.items()})
    flags = {key: "--" + dest.replace("_", "-") for key, dest in _FLAGS.items() if getattr(args, dest, None) is not None}
    sf.check("command line", flags)  # "--n-trials must be ...": named as it was given
    return sf


def _note_database_elsewhere(sf: StudyFile) -> None:
    """A relative SQLite path in a study file is beside the file: warn when that database
    does not exist but the same path in the current folder does (one made by running the
    file from here, when the path meant the current folder): it is left as it is."""
    written, storage = sf.storage_written, sf.storage
    if written is None or storage is None or storage == written:
        return
    beside, here = _sqlite_file(storage), _sqlite_file(written)
    if beside is None or here is None or beside.exists() or not here.is_file() or here.resolve() == beside:
        return
    print(
        f"warning: {sf.source}: storage {written!r} is relative to the study file's folder, so it is {beside}, "
        f"which does not exist yet; {here.resolve()} in the current folder does: to open that one, write "
        f"storage: sqlite:///{here.resolve()} in the file (or pass --storage sqlite:///{here.resolve()})",
        file=sys.stderr,
    )


def open_study(sf: StudyFile) -> Study:
    """Create the study a file describes, or resume it (then ``space`` may be left out)."""
    return Study(
        sf.build_space(), direction=sf.direction, sampler=_plain(sf.sampler), pruner=_plain(sf.pruner),
        seed=sf.seed, storage=_open_storage(sf), name=sf.name, heartbeat_interval=sf.heartbeat_interval,
        grace_period=sf.grace_period, requeue_failed=sf.requeue_failed,
    )


def _plain(v: Any) -> Any:
    return dict(v) if isinstance(v, Mapping) else v


def _open_storage(sf: StudyFile) -> Storage:
    """The study's storage; without a space the study must already be in it."""
    url = sf.storage_url
    if sf.space is not None:
        check_name_before_file(sf.name, url)
    else:
        db = _sqlite_file(url)
        if db is not None and not db.exists():  # no empty database made just to find no study in it
            raise _no_space(sf, url)
    storage = make_storage(url, retry_window=sf.retry_window)
    if sf.space is None:
        try:
            storage.get_study(sf.name)
        except StudyNotFound:
            raise _no_space(sf, storage.display_url) from None
    return storage


def _sqlite_file(url: str) -> Path | None:
    parts = sqlite_path(url)
    return None if parts is None else Path(parts[1]).expanduser()


def _no_space(sf: StudyFile, url: str) -> StudyFileError:
    return StudyFileError(
        f"{sf.source}: missing key(s) ['space']: there is no study {sf.name!r} in {url} to resume, "
        f"so the file must give the space to create it, e.g. {SPACE_EXAMPLE}"
    )


def optimize_options(sf: StudyFile, show_progress: bool | None) -> dict[str, Any]:
    """Keyword arguments of ``Study.optimize`` from the settings (Ray-only ones only on Ray, ``gpus``
    only on processes); settings the executor does not take are left out with one warning naming them."""
    opts: dict[str, Any] = {
        "n_trials": sf.n_trials, "timeout": sf.timeout, "n_jobs": sf.n_jobs,
        "show_progress": show_progress, "executor": sf.executor,
    }
    ignored: list[str] = []
    if sf.executor == "ray":
        if sf.ray_address:
            opts["ray_address"] = sf.ray_address
        if sf.resources_per_trial:
            opts["resources_per_trial"] = dict(sf.resources_per_trial)
    else:
        ignored += [k for k in ("ray_address", "resources_per_trial") if getattr(sf, k)]
    if sf.trials_per_gpu is not None:
        opts["trials_per_gpu"] = sf.trials_per_gpu
    if sf.trial_timeout is not None:  # the inline and thread executors refuse it, saying why
        opts["trial_timeout"] = sf.trial_timeout
    if sf.gpus is not None and sf.executor in (None, "process"):
        opts["gpus"] = sf.gpus
        if sf.allow_missing_gpus:
            opts["allow_missing_gpus"] = True
    elif sf.gpus is not None:
        ignored.append("gpus")
    if ignored:
        only = {"gpus": "the process executor"}
        why = ", ".join(f"{k} (only {only.get(k, 'the Ray executor')} takes it)" for k in ignored)
        executor = f"executor {sf.executor!r}" if sf.executor else "the default executor (inline, thread or process)"
        print(f"warning: {sf.source}: ignored with {executor}: {why}", file=sys.stderr)
    return opts


def optimize_interruptibly(study: Study, objective: Callable[..., Any], options: Mapping[str, Any]) -> int:
    """``study.optimize(objective, **options)``; the command's exit status: 0, or 128 + the signal
    that stopped it (130 too where the objective raised KeyboardInterrupt itself, under Ray too).
    Ctrl-C (SIGINT) and SIGTERM (``kill``, systemd, a batch scheduler) both stop it
    as Ctrl-C does: the running trials are failed ("interrupted"), nothing half-written. optimize
    returns normally then, so without this a script's ``tunesmith worker a.yaml && ...`` went on
    after a Ctrl-C (status 0), and a SIGTERM left the trial ``running`` until a heartbeat check."""
    stopped_by: list[int] = []
    owner = os.getpid()

    def on_signal(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked process (a worker of n_jobs takes it itself): as it did before
            came.append(signum)  # its trial's KeyboardInterrupt is this signal's, not the objective's own
            before = previous.get(signum, signal.SIG_DFL)
            if callable(before):
                before(signum, frame)
                return
            signal.signal(signum, before if before is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stopped_by.append(signum)
        if over:  # optimize is over, its handlers being put back: the status says it
            return
        if signum != signal.SIGINT:  # optimize's own handling of KeyboardInterrupt, recorded as a SIGTERM
            STOPPING_SIGNALS.append(signal.Signals(signum).name)  # for Ray, whose wait raises KeyboardInterrupt
            raise Terminated(signal.Signals(signum).name)
        signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt: optimize's own handling

    on_signal.stops_optimize = True  # type: ignore[attr-defined]  # an n_jobs worker takes SIGTERM as the command's

    previous: dict[int, Any] = {}
    over: list[bool] = []
    raised = _interrupt_flag(study, options)
    came: list[int] = []  # in a worker process: the signals that reached it during its trial
    if getattr(options.get("executor"), "name", options.get("executor")) != "ray":  # not sent to an actor
        objective = functools.wraps(objective)(functools.partial(_noting_interrupts, objective, raised, came))
    else:  # in an actor: its KeyboardInterrupt comes back as its trial's failed record, and the run stops
        options = {**options, "callbacks": (*options.get("callbacks", ()), functools.partial(_noting_actors, raised))}
    try:  # a signal as the handlers are set is handled as one during optimize: all put back after
        _take_signals(on_signal, previous)
        study.optimize(objective, **options)
    except ResumeRefused as exc:  # its advice is a Python call: the command that does it instead
        raise ResumeRefused(tell_as_command(str(exc), study)) from None
    except KeyboardInterrupt:  # landed outside optimize's own handling
        stopped_by.append(signal.SIGINT)
    except OSError as exc:  # the progress bar or a log line met the terminal that closed (SIGHUP): the signal says it
        if not stopped_by or exc.errno not in (errno.EIO, errno.EPIPE):
            raise
    finally:
        over.append(True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        STOPPING_SIGNALS.clear()
    if not stopped_by and raised.value:  # the objective's own KeyboardInterrupt stopped the run, as a Ctrl-C
        stopped_by.append(signal.SIGINT)
    return 128 + stopped_by[0] if stopped_by else 0


def tell_as_command(message: str, study: Study) -> str:
    """``message`` with its advice ``study.tell(N, state='pruned')`` as the ``tunesmith tell`` command; none
    for a study in memory, which this run takes with it (``--storage memory`` would find no study)."""
    url = study.storage.display_url

    def advice(m: re.Match[str]) -> str:
        if isinstance(study.storage, MemoryStorage):
            return ("`tunesmith tell` on a database storage (this study was in memory, gone with this run: give the "
                    "study file a `storage:` to keep its paused trials)")
        options = ["--state", "pruned", "--storage", url]
        return f"`{command_line('tell', study.name, m[1], options=options)}`{password_note(url)}"

    return re.sub(r"study\.tell\((\d+), state='pruned'\)", advice, message)


class _Flag:
    value = 0


def _interrupt_flag(study: Study, options: Mapping[str, Any]) -> Any:
    """Where the objective notes a KeyboardInterrupt it raised itself: shared memory where it runs in
    forked worker processes, else a plain object (a shared value took 30-40 ms to make, each command)."""
    n_jobs = options.get("n_jobs")
    if runs_in_processes(options.get("executor"), 1 if n_jobs is None else n_jobs, study.storage, options):
        return mp.Value("b", 0, lock=False)
    return _Flag()


def _noting_interrupts(objective: Callable[..., Any], raised: Any, came: list[int], trial: Any) -> Any:
    """``objective(trial)``, noting in ``raised`` a KeyboardInterrupt the objective raised itself: optimize
    stops and returns then, as on Ctrl-C, and the command exits 130 as it does on Ctrl-C (it exited 0).
    One a signal raised in a worker process (``came``) is not: a SIGINT to that worker alone, whose
    place a new worker takes, does not stop the run."""
    came.clear()  # a Ctrl-C an earlier trial caught
    try:
        return objective(trial)
    except KeyboardInterrupt:
        if not came:
            raised.value = 1
        raise


def _noting_actors(raised: Any, _: Study, record: FrozenTrial) -> None:
    """A callback under Ray: notes in ``raised`` a trial an actor's objective failed by raising
    KeyboardInterrupt itself (the driver stops the run then), or paused to resume from its checkpoint:
    the command exits 130 (it exited 0)."""
    if stopped_by(record, "interrupted (KeyboardInterrupt)"):
        raised.value = 1


def _take_signals(on_signal: Callable[[int, Any], None], previous: dict[int, Any]) -> None:
    """``on_signal`` for SIGINT, SIGTERM and SIGHUP, each handler it replaces put in ``previous`` as it is."""
    # SIGHUP: the terminal closed (an ssh session dropped) killed the command outright, its trials left running
    for sig in (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])):
        if signal.getsignal(sig) is signal.SIG_IGN:  # stays ignored: SIGHUP under nohup, SIGINT of a script's `cmd &` job
            continue
        if signal.getsignal(sig) is None:  # set outside Python (a program that embeds it): stays, as
            continue  # Python could not put it back
        try:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, on_signal)
        except ValueError:  # not the main thread (a command run from a thread): no handler of ours
            previous.pop(sig)
            return


def prepare(
    args: argparse.Namespace, check: Callable[[StudyFile], None] | None = None
) -> tuple[StudyFile, Study, Callable[..., Any]]:
    """Settings (passed to ``check`` first, if given), study and objective for ``run`` and ``worker``."""
    sf = settings_from_args(args)
    if check is not None:
        check(sf)
    objective = sf.load_objective()
    _check_algorithms(sf, args)
    if sf.executor == "ray":
        ship_by_value(objective)
    study = open_study(sf)
    code = objective_code(objective)
    if code is not None:
        record_objective_code(study, *code)
    if sf.n_trials is None and sf.timeout is None:
        print(f"note: {_open_ended(sf, study)}", file=sys.stderr)
    return sf, study, objective


def _open_ended(sf: StudyFile, study: Study) -> str:
    """What a run with neither n_trials nor a timeout does: "until the search is exhausted" was said of a
    random search too, which never is (it runs until Ctrl-C), and nothing said how to bound it."""
    from ..samplers import GridSampler

    if isinstance(study.sampler, GridSampler):
        return "no n_trials or timeout: running until every point of the grid is tried, or Ctrl-C"
    return (f"{sf.source} sets no n_trials or timeout: running until Ctrl-C; to stop on its own, write "
            "n_trials: 100 or timeout: 3600 (seconds) in it, or pass --n-trials 100")


def _check_algorithms(sf: StudyFile, args: argparse.Namespace) -> None:
    """Refuse a sampler or pruner that cannot be built, naming where it was written; after the
    objective's module is imported (it may register a sampler of its own)."""
    from ..pruners import make_pruner
    from ..samplers import make_sampler

    for key, make in (("sampler", make_sampler), ("pruner", make_pruner)):
        spec = getattr(sf, key)
        if spec is not None:
            where = f"--{key}" if getattr(args, key, None) is not None else f"{sf.source}: {key}"
            check_name(key, spec.get("name") if isinstance(spec, Mapping) else spec, where)
            try:
                make(_plain(spec))
            except (ValueError, TypeError) as exc:
                raise StudyFileError(f"{where}: {exc}") from None


def check_name(key: str, name: Any, where: str) -> None:
    """Refuse a sampler or pruner (``key``) ``name`` that none has, as a command-line user can mend it:
    the closest name and the names there are (the library's advice, a Python instance, is not theirs)."""
    from .. import pruners, samplers

    module = samplers if key == "sampler" else pruners
    if isinstance(name, str) and not module.is_known(name):
        raise StudyFileError(f"{where}: {module.unknown(name)}; the {key}s are {', '.join(module.names())}")


def ship_by_value(objective: Callable[..., Any]) -> None:
    """An objective loaded from a script is not importable on Ray's nodes: send its code along."""
    module = sys.modules.get(getattr(objective, "__module__", ""))
    if module is not None and "__tunesmith_file__" in module.__dict__:
        from ..execution.ray import import_ray

        import_ray()  # says which extra to install when Ray is missing
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(module)


#: the exit status of a ``run`` or ``worker`` whose every trial failed (none complete or pruned)
EVERY_TRIAL_FAILED = 1


def run_trials(study: Study, objective: Callable[..., Any], options: Mapping[str, Any],
               ended: dict[int, TrialState] | None = None) -> int:
    """:func:`optimize_interruptibly`, whose status becomes :data:`EVERY_TRIAL_FAILED` where the trials
    this command's workers ended (handed to optimize's callbacks, whatever the executor) hold a failed
    one and none complete or pruned: the objective raised each time, which a script must be able to
    tell. Nothing left to run (a grid exhausted) stays 0. ``study.name`` is then the study's name now. Trials that other workers of a shared study
    finished meanwhile are not this command's (a worker whose every trial failed exited 0 while
    another completed some), nor is a lost worker's trial that this command's heartbeat check failed.
    ``ended``, when given, receives each trial this command ended and its last state (a worker's summary
    counts them)."""
    ended = {} if ended is None else ended

    def note(_: Study, record: FrozenTrial) -> None:
        ended[record.number] = record.state  # a paused trial resumed here ends again: its last state

    status = optimize_interruptibly(study, objective, {**options, "callbacks": (*options.get("callbacks", ()), note)})
    study._current_name()  # renamed by another process meanwhile: the summary names the study as it is now
    if status == 0 and {s for s in ended.values() if s.is_finished} == {TrialState.FAILED}:
        return EVERY_TRIAL_FAILED
    return status
