"""The storage interface: records of studies and trials.

Small on purpose, and without policy: reads, and two writes of trials: an
atomic :meth:`Storage.create_trial` and a compare-and-set
:meth:`Storage.update_trial` (the record is written only if the stored one is
still in the state it was read in), plus heartbeats. Which state follows which
is the study's business (:mod:`tunesmith.study.lifecycle`). A trial is
rewritten whole at each change (never one write per parameter); trials are
read back in bulk from a cursor. Finished trials never change: writing to one
raises :class:`~tunesmith.exceptions.TrialFinishedError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import StorageError, TrialNotFound
from ..trial import Direction, FrozenTrial, SystemState, TrialState


@dataclass(frozen=True)
class StudyRecord:
    """A study as stored: its name, direction, space (as a dict) and settings."""

    study_id: int
    name: str
    direction: Direction
    space: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True)
class NewStudy:
    """A study to create with its trials (:meth:`Storage.create_studies`): a copy and its test results."""

    name: str
    direction: Direction
    space: Mapping[str, Any]
    config: Mapping[str, Any]
    trials: Sequence[FrozenTrial] = ()


#: the longest study name every storage keeps (the SQL column's width)
MAX_NAME_LENGTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_expect(expect_state: TrialState | None, expect: object) -> None:
    """``update_trial``'s ``expect`` narrows a compare-and-set: it needs ``expect_state``."""
    if expect is not None and expect_state is None:
        raise ValueError("update_trial(expect=...) needs expect_state: it narrows a compare-and-set")


def check_study_name(name: object, *, lookup: bool = False) -> str:
    """``name`` if it is a valid study name, else a ValueError that says why.

    The same rule on every storage: a non-empty string of at most
    :data:`MAX_NAME_LENGTH` characters without control characters (NUL, line
    breaks, tabs, ...), checked before anything reaches a database. With
    ``lookup`` (reading or deleting a study that is there), control characters
    other than NUL pass: a study written by another program under such a name
    could otherwise be neither shown nor deleted.
    """
    if not isinstance(name, str):
        raise TypeError(f"a study name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("a study name must not be empty or blank")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"study name of {len(name)} characters ({name[:40]!r}...) is too long; "
            f"use at most {MAX_NAME_LENGTH} characters"
        )
    bad = _CONTROL.search(name)
    if bad and not (lookup and "\x00" not in name):
        raise ValueError(
            f"study name {name[:80]!r} contains the control character "
            f"{chr(0) if lookup else bad.group()!r}; use printable characters only"
        )
    return name


def unencoded_at(url: str) -> str | None:
    """``url`` masked up to its last ``@`` when its credentials hold an ``@`` that is not
    percent-encoded (``user:p@ss@host``), else None. Parsed as given, the rest of such a
    password became the host and the database name, and was printed in every message."""
    scheme, sep, rest = url.partition("://")
    if not sep or rest.startswith("/") or rest.split("?", 1)[0].count("@") < 2:
        return None
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def mask_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query value) shown as ``***``."""
    if "@" not in url and "password" not in url:
        return url  # no credentials (memory, a SQLite file): SQLAlchemy not imported for it
    import sqlalchemy as sa

    ambiguous = unencoded_at(url)
    if ambiguous is not None:  # with a password= query value hidden too
        return re.sub(r"password=[^&]*", "password=***", ambiguous)
    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: mask by pattern
        return re.sub(r"password=[^&]*", "password=***", re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url))
    if parsed.password is None and "password" not in parsed.query:
        return url  # nothing to hide: shown exactly as given
    head, sep, query = url.partition("?")
    masked = re.sub(r"(://[^/:@]*:).*@", r"\1***@", head)  # u:p@ss@h: SQLAlchemy's password ends at the
    if parsed.password is not None and head.count("@") > 1 and masked != head:  # first @; hide to the last
        return mask_url(masked + sep + query)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", "password=***")


def password_note(*shown: str) -> str:
    """What every command line or code printed with a masked storage URL adds, so that it is run with the
    password put back: " (with the password in place of ***)" where one of ``shown`` holds ``***``, else ""."""
    return " (with the password in place of ***)" if any("***" in s for s in shown) else ""


def command_words(command: str, name: str, *rest: str, options: Sequence[str] = ()) -> list[str]:
    """``tunesmith COMMAND NAME REST... OPTIONS...`` as words; a study name that begins with '-' (stored before
    such names were refused: the command line reads it as an option) goes after the options and ``--``."""
    words = [*options, "--", name, *rest] if name.startswith("-") else [name, *rest, *options]
    return ["tunesmith", command, *words]


def command_line(command: str, name: str, *rest: str, options: Sequence[str] = ()) -> str:
    """:func:`command_words` as one line a shell reads back."""
    return shlex.join(command_words(command, name, *rest, options=options))


def worker_id() -> str:
    """``host:pid`` of the calling process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (True where it cannot tell)."""
    if pid == os.getpid() or os.name == "nt":  # Windows: os.kill(pid, 0) is not a probe
        return True
    if pid <= 0:  # no process's (a stored "host:0"): os.kill(0, 0) probes this process's group, always there
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: past the system's pids (a stored "host:2147483648")
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell
    return True


#: more digits than any system's pid has (2**64 has 20): no process's, and not read as a number
MAX_PID_DIGITS = 20


def local_pid(worker: Any) -> int | None:
    """The pid of ``worker`` (a trial's ``host:pid``) when it names a process of this machine (0, no
    process's, for more digits than any system's pid has: int() of 4,301 digits or more raises); None
    for another machine's, and for anything but such text (a setting changed by hand)."""
    host, _, pid = (worker if isinstance(worker, str) else "").rpartition(":")
    if host != socket.gethostname() or not (pid.isascii() and pid.isdigit()):
        return None
    return 0 if len(pid) > MAX_PID_DIGITS else int(pid)


#: seconds a process of this machine may seem to have started after a time it wrote (the boot time /proc gives is
#: whole seconds, a database server's clock is measured against this one): past it, its pid is another process's
STARTED_SLACK_S = 2.0


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this machine started, by this process's clock (seconds since the epoch), or None
    where that cannot be read (no such process, no ``/proc``: not Linux).

    Its start ticks count from boot (suspended time included, on current kernels) and the kernel gives the boot
    time as the wall clock now less that count, so the result moves with the wall clock: a clock slewed (NTP's rate
    and offset corrections move both) or a machine suspended and woken leaves it where it was; a clock stepped (set
    by hand, or an NTP client correcting a large offset at once) moves it by the step, a time written before the
    step does not."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/stat", "rb") as f:
            boot = next(line for line in f if line.startswith(b"btime "))
        ticks = int(stat.rpartition(b")")[2].split()[19])  # the 22nd field, the 20th after the name
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def who(worker: Any, since: float | None = None) -> str:
    """Who ``worker`` (a trial's ``host:pid``) is, as far as this process can tell: this process, a process of this
    machine (running, or an earlier run that has ended), a worker of another host, or "another worker". ``since``:
    a time (this process's clock) the worker wrote in the trial (its heartbeat): a process of that pid started after
    it is not that worker but a later one the pid went to (a pid used again: this one, in a container whose every
    run has the same host name and pid), and the worker is said to have ended. Wrong only where this machine's clock
    was stepped between that time and now (:func:`process_started`): forward by more than the worker ran before it
    (a running worker said to have ended) or back by more than a later process started after it (that process
    named as the worker): words of a message, nothing recorded. Telling them apart whatever the clock does needs
    the worker's boot id and start ticks stored in its trial (a field older versions refuse to read)."""
    pid = local_pid(worker)
    if pid is not None:
        started = process_started(pid) if since is not None and pid_alive(pid) else None
        if started is not None and since is not None and started > since + STARTED_SLACK_S:
            return f"process {pid} of this machine (an earlier run, no longer running: its pid is a later process's)"
        if pid == os.getpid():
            return f"this process (pid {pid}: another Study object or thread of it)"
        return f"process {pid} of this machine" + (" (running now)" if pid_alive(pid) else
                                                   " (an earlier run, no longer running)")
    host, _, number = (worker if isinstance(worker, str) else "").rpartition(":")
    if host and number.isascii() and number.isdigit() and len(number) <= MAX_PID_DIGITS:
        return f"process {number} of host {host[:200]!r}"
    return "another worker"


def process_runs(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs: one ended but not yet reaped by its parent (a zombie)
    does not (its parent never waits for it: a Python program as a container's pid 1 adopts the workers of a
    run killed whole and keeps them so)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:  # no /proc (macOS), or ended meanwhile: as pid_alive said
        return True
    return stat_line.rpartition(b")")[2].split()[:1] != [b"Z"]


def worker_gone(worker: Any, since: float | None = None) -> bool:
    """Whether ``worker`` (a trial's ``host:pid``) is a process of this machine that no longer runs:
    its running trial will never finish. False for another machine's (it cannot be told), and for
    anything but text (a setting changed by hand). ``since``: a time (this process's clock) the worker
    wrote in the trial: a process of that pid started after it is a later one the pid went to (see
    :func:`who`), and the worker is gone."""
    pid = local_pid(worker)
    if pid is None:
        return False
    if not process_runs(pid):
        return True
    started = process_started(pid) if since is not None else None
    return started is not None and since is not None and started > since + STARTED_SLACK_S


def reads_through_get_trials(storage: Storage, cls: type[Storage]) -> bool:
    """Whether ``storage`` is of a subclass of ``cls`` that overrides ``get_trials`` (to filter or count
    the trials) but not ``get_trials_since``: then ``cls``'s refresh reads go through that ``get_trials``,
    as its writer expects, not around it. A subclass overriding both reads its own way."""
    own = type(storage)
    return own.get_trials is not cls.get_trials and own.get_trials_since is cls.get_trials_since


def still_lost(stored: FrozenTrial, failed: FrozenTrial) -> bool:
    """Whether trial ``stored`` is still running with the heartbeat it had when it was read and judged lost
    (``failed``, its end): a beat since says its worker is alive, and it is neither failed nor copied."""
    return stored.state is TrialState.RUNNING and stored.heartbeat == failed.heartbeat


#: how the error of a copy :meth:`Storage.fail_with_copy`'s default took back starts (its trial beat or ended)
NOT_NEEDED = "not needed: trial "


def taken_back(copy: FrozenTrial) -> bool:
    """Whether ``copy`` was taken back by :meth:`Storage.fail_with_copy`'s default before it ran."""
    return copy.state is TrialState.FAILED and copy.started is None and (copy.error or "").startswith(NOT_NEEDED)


def copy_missing(number: int, claim: str) -> StorageError:
    """The error where trial ``number``'s re-queue ``claim`` is held by no copy of it."""
    return StorageError(f"trial {number}'s re-queue claim {claim!r} is taken but no trial is its copy: "
                        "the trials table was changed by hand; restore it from a backup")


class Storage(ABC):
    """Base class of storages. Implementations must be safe to share between
    threads; SQL ones also between processes and machines."""

    #: this process's clock, seconds since the epoch (a test may skew it on one instance)
    local_clock: Callable[[], float] = staticmethod(time.time)

    #: the location, as given (a SQL URL keeps its password: use it to connect,
    #: never to display; see :attr:`display_url`)
    url: str = "memory"

    def clock(self) -> float:
        """Now, by the clock that heartbeats are written with and judged by (and trial
        start and end times taken). Here this process's; a database server's own where
        workers on several machines share it (see :meth:`SQLStorage.clock`): one
        machine's clock running minutes apart from another's must neither fail a live
        trial as lost nor keep a dead one running."""
        return self.local_clock()

    def outages(self) -> Sequence[tuple[float, float]]:
        """The recent outages this process met, each ``(last, again)`` by :meth:`clock`: its last
        write that got through before (or its opening), and when it got through again. An outage
        is a lost connection, a database server restarting, or a SQLite file locked by another
        process for a second or more; none on memory. The heartbeat check does not count a trial
        lost by beats it missed then (its worker could not write them either) unless it was lost
        already at ``last``: see :func:`tunesmith.study.heartbeat.excused`."""
        return ()

    def share_outage_lines(self, said: Any) -> None:
        """Let the processes of one run (forked from this one, holding copies of this object) say each outage
        they ride out once between them: ``said`` is a ``multiprocessing`` ``Value("d")`` of the monotonic
        time the last said outage ended (None: this process alone). Nothing to say on memory."""
        return None

    @property
    def display_url(self) -> str:
        """:attr:`url` with any password hidden: the form to print, log or put in an error."""
        return mask_url(self.url)

    @abstractmethod
    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        """Create a study; raise DuplicateStudyError if one of that name exists."""

    def create_study_with_trials(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any],
        trials: Sequence[FrozenTrial],
    ) -> StudyRecord:
        """:meth:`create_study`, then :meth:`insert_trials` of ``trials`` (a copy's, a focus's,
        an import's). SQL storages write both in one transaction: a process killed midway
        leaves no study that would pass for the whole one, its name taken."""
        rec = self.create_study(name, direction=direction, space=space, config=config)
        try:
            if trials:
                self.insert_trials(rec.study_id, trials)
        except BaseException:  # Ctrl-C, a full disk: nothing cut short is left under the name
            with contextlib.suppress(Exception):
                self.delete_study(name)
            raise
        return rec

    def create_studies(self, new: Sequence[NewStudy]) -> list[StudyRecord]:
        """Create each study with its trials (:meth:`create_study_with_trials`), all or none: a
        copy and its test results. SQL storages write them in one transaction."""
        made: list[StudyRecord] = []
        try:
            for n in new:
                made.append(self.create_study_with_trials(n.name, direction=n.direction, space=n.space,
                                                          config=n.config, trials=n.trials))
        except BaseException:
            for rec in made:
                with contextlib.suppress(Exception):
                    self.delete_study(rec.name)
            raise
        return made

    @abstractmethod
    def get_study(self, name: str) -> StudyRecord:
        """The study of that name; raise StudyNotFound if there is none."""

    def held_beside(self, name: str) -> str:
        """A hint naming where else a study ``name`` that this storage lacks is kept (`` (sqlite:///search.db in
        its folder holds one)``), or ``""``. Only an error shown to the user asks: a new study's lookup does not."""
        return ""

    @abstractmethod
    def list_studies(self) -> list[StudyRecord]: ...

    @abstractmethod
    def delete_study(self, name: str) -> None: ...

    @abstractmethod
    def create_trial(
        self,
        study_id: int,
        *,
        params: Mapping[str, Any],
        state: TrialState = TrialState.RUNNING,
        claim: str | None = None,
        worker: str | None = None,
        now: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        system: SystemState | None = None,
    ) -> FrozenTrial | None:
        """Insert a trial numbered one past the last; atomically.

        ``attrs`` are the new trial's user attributes, ``system`` its bookkeeping
        (a re-queued copy's origin). With ``claim`` set, return ``None`` instead
        if a trial of the study already holds that claim (a grid point another
        worker took, a lost trial another worker re-queued).
        """

    def create_first_free(
        self, study_id: int, candidates: Sequence[tuple[Mapping[str, Any], str]], *, worker: str | None = None,
    ) -> FrozenTrial | None:
        """A running trial of the first of ``candidates`` (params, claim) whose claim no trial holds, or
        ``None`` where all are held. SQL storages try them all under one hold of the study's write lock,
        so that a worker that lost the first to another asking at once takes the next in the same write."""
        for params, claim in candidates:
            rec = self.create_trial(study_id, params=params, claim=claim, worker=worker)
            if rec is not None:
                return rec
        return None

    def insert_trials(self, study_id: int, records: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """Store ``records`` whole (any state, a copied study's or known results) as the study's
        next trials, in order; returns them with their numbers and storage keys. Each is
        created running, then rewritten as it is: no worker can take it meanwhile. SQL
        storages write them all in one transaction."""
        out = []
        for record in records:
            full = self.insert_claimed(study_id, record, None)
            assert full is not None
            out.append(full)
        return out

    def insert_claimed(self, study_id: int, record: FrozenTrial, claim: str | None) -> FrozenTrial | None:
        """Store ``record`` whole as the study's next trial, unless a trial of the study holds
        ``claim`` already (then None, nothing stored): decided atomically, across processes.
        Created running, then rewritten as it is; SQL storages write it in one transaction, so
        a process killed midway leaves no running trial holding the claim."""
        rec = self.create_trial(study_id, params=record.params, state=TrialState.RUNNING, claim=claim,
                                worker=record.worker, attrs=record.attrs)  # a fresh heartbeat: no lost worker's
        if rec is None:
            return None
        full = record.replace(number=rec.number, trial_id=rec.trial_id)
        self.update_trial(study_id, full)
        return full

    def fail_with_copy(
        self, study_id: int, failed: FrozenTrial, *, claim: str, confirm: Callable[[], bool] | None = None
    ) -> FrozenTrial | None:
        """Write ``failed`` (the end of a running trial: a compare-and-set on ``running``) and queue a
        waiting copy of it holding ``claim`` (same parameters, ``system.retry_of``), the failed record
        pointing to it (``system.requeued_as``): both or neither. Returns the failed record written, or
        None where the trial was no longer running, or beat since ``failed`` was read (its heartbeat is
        another: its worker was alive after all; then no copy is left queued). A copy already holding ``claim`` (queued by an earlier call) is the one pointed to.
        SQL storages write both in one transaction: a process killed midway leaves neither. This default
        queues the copy, then writes the record, and takes the copy back when the write loses; it reads the
        trial first, as the write's condition would judge it, so that a trial that beat since it was read gets
        no copy to take back. A copy taken back (a beat between that read and the write) holds ``claim`` for
        good: a later call queues the trial's copy under a claim naming it (:meth:`_queue_copy`).
        ``confirm()``, where given, is asked in the write too: False leaves the trial as it is (None)."""
        if not still_lost(self.get_trial(study_id, failed.number), failed):
            return None
        made, number = self._queue_copy(study_id, failed, claim)
        new = failed.replace(system=failed.system.replace(requeued_as=number))
        if self.update_trial(study_id, new, expect_state=TrialState.RUNNING,
                             expect=lambda old: still_lost(old, failed) and (confirm is None or confirm())):
            return new
        stored = self.get_trial(study_id, failed.number)
        if made is not None and stored.system.requeued_as != number and not still_lost(stored, failed):
            ended = "was still running (it beat)" if stored.state is TrialState.RUNNING else "ended"
            why = f"{NOT_NEEDED}{failed.number} {ended} before its copy ran"  # unless another call pointed to it
            self.update_trial(study_id, made.replace(state=TrialState.FAILED, error=why, completed=self.clock()),
                              expect_state=TrialState.WAITING)  # fmt: skip
        return None

    def _queue_copy(self, study_id: int, failed: FrozenTrial, claim: str) -> tuple[FrozenTrial | None, int]:
        """A waiting copy of ``failed`` under ``claim`` (the one made, and its number), or the number of the copy
        an earlier call queued (None made). A copy this default took back (:data:`NOT_NEEDED`, never run) holds
        its claim for good: the next one is queued under a claim naming the last copy taken back (``claim/N``), so that
        a trial beat between this default's read and its write, then lost after all, still gets a copy to run. The
        claim is the trial's and one number however many copies were taken back (a claim is 2,048 characters at
        most in PostgreSQL)."""
        at = claim
        for _ in range(3):  # another call queued the copy a moment ago: read again
            made = self.create_trial(study_id, params=failed.params, state=TrialState.WAITING, claim=at,
                                     system=failed.system.copy_of(failed.number))  # fmt: skip
            if made is not None:
                return made, made.number
            copies = [t for t in self.get_trials(study_id, min_number=failed.number + 1)
                      if t.system.retry_of == failed.number]  # by number: the one holding claim, claim/N, ...
            if not copies:
                raise copy_missing(failed.number, at)
            if live := [c for c in copies if not taken_back(c)]:
                return None, live[0].number
            at = f"{claim}/{copies[-1].number}"  # as any caller reading these copies names it; bounded however many
        raise copy_missing(failed.number, at)

    @abstractmethod
    def update_trial(
        self,
        study_id: int,
        trial: FrozenTrial,
        *,
        expect_state: TrialState | None = None,
        expect: Callable[[FrozenTrial], bool] | None = None,
    ) -> bool:
        """Rewrite a trial record whole (state, value, reports, attrs, system, ...).

        With ``expect_state``, a compare-and-set: the record is written only if
        the stored one is in that state; returns whether it was (two workers
        claiming the same waiting or paused trial: exactly one wins). ``expect``
        (only with ``expect_state``) narrows it: the stored record must also
        satisfy this predicate, checked in the same transaction as the write
        (a paused trial must still be the pause the caller saw). Without it,
        any unfinished record is overwritten (returns True), and a finished one
        raises TrialFinishedError. A write that finds its own record already
        stored (a retry whose first attempt had committed) returns True; no such
        trial raises TrialNotFound.
        """

    @abstractmethod
    def get_trials(
        self,
        study_id: int,
        *,
        min_number: int = 0,
        state: TrialState | None = None,
        limit: int | None = None,
        exclude: TrialState | None = None,
    ) -> list[FrozenTrial]:
        """Trials numbered ``min_number`` and up (only those in ``state``, if
        given: the queue, the paused or the running trials; none in ``exclude``,
        e.g. a pruner's decision skips the queue), by number; the first ``limit``
        of them if given (the head of the queue)."""

    def get_trials_since(
        self, study_id: int, min_number: int, *, also: Collection[int] = (), exclude: TrialState | None = None
    ) -> list[FrozenTrial]:
        """Trials numbered ``min_number`` and up, and those numbered in ``also`` (none in
        ``exclude``), by number, read at once: a study's refresh reads the trials after the last
        one it saw and again the unfinished ones it holds, never the finished ones between (one
        trial that stays running or paused early in a long study no longer makes each refresh read
        every later trial). This default reads from the lowest of them on and keeps those asked
        for; SQL and memory storages read only those, unless a subclass overrides only
        :meth:`get_trials` (this default then reads through it)."""
        wanted = set(also)
        low = min(min_number, *wanted) if wanted else min_number
        return [t for t in self.get_trials(study_id, min_number=low, exclude=exclude)
                if t.number >= min_number or t.number in wanted]

    def get_trial_heads(self, study_id: int) -> list[FrozenTrial]:
        """Every trial's number, state, value and times (started, completed, heartbeat), by number, the
        rest (parameters, reports, attrs) left empty where a storage can skip reading it: what a list of
        studies shows, without decoding what each trial holds. A row changed outside tunesmith in a column not read here
        shows as the failed trial it is read as by :meth:`get_trials`."""
        return self.get_trials(study_id)

    def get_last_steps(self, study_id: int) -> list[tuple[TrialState, int]]:
        """Each trial with a report: its state and its last report's step (its highest), by number; what
        the budget line counts (``report.budget_spent``), without reading each trial whole. A row changed
        outside tunesmith in its number, state, value, times or reports (what :meth:`get_trial_heads` and the
        reports' read check) has no reports here, as :meth:`get_trials` reads it as a failed trial; a storage
        may still count one whose other columns (parameters, attrs) alone were changed."""
        return [(t.state, t.last_step) for t in self.get_trials(study_id) if t.last_step is not None]

    def get_held(self, study_id: int) -> list[FrozenTrial]:
        """The paused trials held to resume first, from their checkpoints (``system.held``: an interrupt
        stopped them, their worker died, or their objective refused the checkpoint), whole, by number; what
        ``show`` names, without reading every paused trial's reports (a storage may skip them)."""
        return [t for t in self.get_trials(study_id, state=TrialState.PAUSED) if t.system.held is not None]

    def count_trials(self, study_id: int) -> int:
        """How many trials the study has, in any state (a storage may count them without
        reading them: opening a study of thousands of trials needs only their number)."""
        return len(self.get_trials(study_id))

    def get_trial(self, study_id: int, number: int) -> FrozenTrial:
        for t in self.get_trials(study_id, min_number=number):
            if t.number == number:
                return t
        raise TrialNotFound(f"study has no trial number {number}")

    @abstractmethod
    def heartbeat(self, study_id: int, numbers: Sequence[int], now: float) -> None:
        """Record that the workers of these running trials are alive."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections (optional)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    # -- study management (optional for custom storages) -------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        """Rename a study; ValueError if ``new_name`` is taken, StudyNotFound if ``name`` is absent."""
        raise NotImplementedError(f"{type(self).__name__} cannot rename studies; implement rename_study()")

    def rename_studies(self, renames: Sequence[tuple[str, str]]) -> None:
        """Rename each study ``(name, new_name)``, all or none (a study and its test results).
        SQL storages write them in one transaction, so a process killed midway splits no pair;
        here each is undone if a later one fails."""
        done: list[tuple[str, str]] = []
        try:
            for name, new_name in renames:
                self.rename_study(name, new_name)
                done.append((name, new_name))
        except BaseException:  # another writer took a new name since it was checked: keep the pair together
            for name, new_name in reversed(done):
                self.rename_study(new_name, name)
            raise

    def set_study_config(
        self, study_id: int, config: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        """Replace a study's settings (the sampler in use, its pruner, heartbeats, notes). With
        ``expect``, only while the stored settings still equal it (compare-and-set): False, and
        nothing written, when another writer changed them since they were read."""
        raise NotImplementedError(f"{type(self).__name__} cannot change settings; implement set_study_config()")
