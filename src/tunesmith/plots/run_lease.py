"""Which compare runs a stored run now: one process at a time holds it (the run's setting :data:`HOLDER`), so
two ``tunesmith compare --storage`` at once into one storage share the runs out and no run passes its budget.
A holder is alive while its process runs (this machine) or while it, or its running trial, beat within
:data:`GRACE_S` (another machine): the rule a study judges its lost workers by."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from ..storage.base import STARTED_SLACK_S, local_pid, pid_alive, process_started, worker_id

#: the setting of a stored run naming the compare that runs it now: ``{"worker": "host:pid", "beat": time,
#: "started": time}`` (``started``: when its process started, by its machine's clock, to tell it from a later
#: process its pid went to)
HOLDER = "compare_holder"
#: seconds between heartbeats of a stored run's trials and of its holder
BEAT_S = 10.0
#: seconds without a heartbeat after which a trial of a stored run (or its holder) of another machine is lost
GRACE_S = 60.0


def take(study: Any) -> str | None:
    """Take stored run ``study`` for this process: None, or the worker (``host:pid``) of the live compare
    holding it, which is left to end it. A holder that is gone is taken over, and said so."""
    from ..study.manage import change_setting

    me, seen = worker_id(), [None]

    def change(holder: Any) -> Any:
        seen[0] = holder
        if _holder(holder) not in (None, me) and alive(study.storage, study._study_id, holder):
            return holder
        return {"worker": me, "beat": study.storage.clock(), "started": process_started(os.getpid())}

    stored = change_setting(study, HOLDER, change)
    if stored is None:  # nothing written: the name is another study's now (else it waited for "None" for good)
        raise ValueError(f"run {study.name!r} in {study.storage.display_url} was renamed or deleted, and maybe made "
                         "anew, while this compare looked at it (another compare's --new-runs, or tunesmith "
                         "delete): run the compare again")
    if _holder(stored) != me:
        return str(_holder(stored))
    if _holder(seen[0]) not in (None, me):
        _say(f"run {study.name!r}: compare {_holder(seen[0])!r} that ran it shows no sign of life (its process gone, "
             f"or no heartbeat for {GRACE_S:g} s): this compare goes on with it")
    return None


#: :func:`hold_to_set_aside`'s answer where the run's name is another study's now (or none's)
GONE = "gone"


def hold_to_set_aside(storage: Any, name: str, study_id: int) -> Any:
    """Take stored run ``name`` (study ``study_id``) for this process to rename it, compare-and-set, so that of
    two compares setting it aside at once one renames it: None where taken, :data:`GONE` where ``name`` is no
    longer that study (another compare set it aside), else the live holder's setting (``"aside"`` true: another
    compare sets it aside now)."""
    from ..exceptions import StudyNotFound
    from ..study.manage import change_stored_setting

    me = worker_id()

    def change(holder: Any) -> Any:
        if _holder(holder) not in (None, me) and alive(storage, study_id, holder):
            return holder
        return {"worker": me, "beat": storage.clock(), "started": process_started(os.getpid()), "aside": True}

    try:
        stored = change_stored_setting(storage, name, study_id, HOLDER, change)
    except StudyNotFound:
        return GONE
    return GONE if stored is None else None if _holder(stored) == me else stored


def let_go(storage: Any, name: str, study_id: int) -> None:
    """Let stored run ``name`` (study ``study_id``) go, where this process holds it (a run set aside)."""
    from ..study.manage import DROP, change_stored_setting

    me = worker_id()
    change_stored_setting(storage, name, study_id, HOLDER, lambda h: DROP if _holder(h) == me else h)


def beat(study: Any) -> bool:
    """Say this process still runs ``study``: whether it still holds it (a holder judged gone, its run taken
    over by another compare, stops: two would pass the budget)."""
    from ..study.manage import change_setting

    me = worker_id()
    stored = change_setting(study, HOLDER, lambda h: {**h, "beat": study.storage.clock()} if _holder(h) == me else h)
    return _holder(stored) == me


def release(study: Any) -> None:
    """Let ``study`` go (where this process holds it)."""
    from ..study.manage import DROP, change_setting

    me = worker_id()
    change_setting(study, HOLDER, lambda h: DROP if _holder(h) == me else h)


def alive(storage: Any, study_id: int, holder: Mapping[str, Any]) -> bool:
    """Whether ``holder`` of stored run ``study_id`` runs: its process (this machine's; not a later one its pid
    went to), else a heartbeat within :data:`GRACE_S`, its own or its running trial's (a trial longer than the
    grace beats meanwhile)."""
    worker = holder.get("worker")
    pid = local_pid(worker)
    if pid is not None:
        return pid_alive(pid) and not _pid_reused(pid, holder.get("started"))
    from ..trial import TrialState

    now = storage.clock()
    running = storage.get_trials(study_id, state=TrialState.RUNNING)
    beats = [holder.get("beat"), *(t.heartbeat for t in running if t.worker == worker)]
    return any(isinstance(b, (int, float)) and not isinstance(b, bool) and now - b < GRACE_S for b in beats)


def _pid_reused(pid: int, started: Any) -> bool:
    """Whether process ``pid`` of this machine started at another time than ``started`` (a holder's, by this
    machine's clock; none stored: not told): the holder ended, and its pid is a later process's, which a compare
    waited for as long as that one ran."""
    now = process_started(pid)
    return (isinstance(started, (int, float)) and not isinstance(started, bool) and now is not None
            and abs(now - started) > STARTED_SLACK_S)


def _holder(holder: Any) -> Any:
    """The worker a stored holder names (None: none, or a setting changed by hand into something else)."""
    return holder.get("worker") if isinstance(holder, Mapping) else None


def _say(line: str) -> None:
    import logging

    logging.getLogger("tunesmith").warning("%s", line)


class Beats:
    """A callback of :meth:`Study.optimize` beating for the run it is given after a trial, at most once every
    :data:`BEAT_S`; the run stops where another compare took it over."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, study: Any, record: Any) -> None:
        if time.monotonic() - self.last >= BEAT_S:
            self.last = time.monotonic()
            if not beat(study):
                _say(f"run {study.name!r}: taken over by another compare (this one showed no sign of life for "
                     f"{GRACE_S:g} s): this compare leaves it to that one")
                study.stop()
