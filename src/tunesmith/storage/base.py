"""The storage interface: records of studies and trials.

Small on purpose: a study is created or loaded once; a trial is created with
an atomic number, then rewritten whole at each change of state (never one
write per parameter); trials are read back in bulk from a cursor.
Finished trials never change: writing to one raises
:class:`~tunesmith.exceptions.TrialFinishedError`.
"""

from __future__ import annotations

import os
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import TrialNotFound
from ..pruners.curves import RESUMED_ATTR
from ..trial import Direction, FrozenTrial, TrialState


@dataclass(frozen=True)
class StudyRecord:
    """A study as stored: its name, direction, space (as a dict) and settings."""

    study_id: int
    name: str
    direction: Direction
    space: Mapping[str, Any]
    config: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0


#: attrs key of a paused trial that holds a promotion: it was resumed from a
#: checkpoint and its worker was lost; the next ``ask`` resumes it before any other
HELD_ATTR = "promotion_held"


#: attrs keys: the last step of a trial when it was last held, and how often it
#: was. It is held again only after reporting past that step, and at most
#: MAX_HOLDS times, so a trial that kills every worker resuming it fails instead
#: of looping
HELD_AT_ATTR = "held_at_step"
HOLDS_ATTR = "n_holds"
MAX_HOLDS = 3


def holds_promotion(t: FrozenTrial) -> bool:
    """Whether ``t`` (running) was resumed after a pause, has a checkpoint,
    progressed since it was last held and was held fewer than MAX_HOLDS times:
    losing its worker must not lose the promotion it earned, nor its training."""
    held_at = t.attrs.get(HELD_AT_ATTR)
    progressed = held_at is None or (t.last_step is not None and t.last_step > held_at)
    return (
        RESUMED_ATTR in t.attrs
        and bool(t.attrs.get("checkpoint"))
        and progressed
        and int(t.attrs.get(HOLDS_ATTR, 0)) < MAX_HOLDS
    )


def held_record(t: FrozenTrial, error: str) -> FrozenTrial:
    """``t`` back to paused by :meth:`Storage.fail_running`, holding its promotion
    (reports and checkpoint kept; ``attrs[HELD_ATTR]`` says why)."""
    last = t.last_step
    value = t.intermediate[last] if last is not None else None
    attrs = {
        **t.attrs, HELD_ATTR: error, HELD_AT_ATTR: -1 if last is None else last,
        HOLDS_ATTR: int(t.attrs.get(HOLDS_ATTR, 0)) + 1,
    }  # fmt: skip
    return t.replace(state=TrialState.PAUSED, value=value, worker=None, heartbeat=None, attrs=attrs)


def lost_record(t: FrozenTrial, error: str, now: float, requeued_as: int | None) -> FrozenTrial:
    """``t`` marked failed by :meth:`Storage.fail_running` (reports kept)."""
    attrs = dict(t.attrs) if requeued_as is None else {**t.attrs, "requeued_as": requeued_as}
    return t.replace(state=TrialState.FAILED, error=error, completed=now, attrs=attrs)


#: the longest study name every storage keeps (the SQL column's width)
MAX_NAME_LENGTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_study_name(name: object) -> str:
    """``name`` if it is a valid study name, else a ValueError that says why.

    The same rule on every storage: a non-empty string of at most
    :data:`MAX_NAME_LENGTH` characters without control characters (NUL, line
    breaks, tabs, ...), checked before anything reaches a database.
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
    if bad:
        raise ValueError(
            f"study name {name[:80]!r} contains the control character {bad.group()!r}; "
            "use printable characters only"
        )
    return name


def mask_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query value) shown as ``***``."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: mask by pattern
        return re.sub(r"password=[^&]*", "password=***", re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url))
    if parsed.password is None and "password" not in parsed.query:
        return url  # nothing to hide: shown exactly as given
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", "password=***")


def worker_id() -> str:
    """``host:pid`` of the calling process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Storage(ABC):
    """Base class of storages. Implementations must be safe to share between
    threads; SQL ones also between processes and machines."""

    #: the location, as given (a SQL URL keeps its password: use it to connect,
    #: never to display; see :attr:`display_url`)
    url: str = "memory"

    @property
    def display_url(self) -> str:
        """:attr:`url` with any password hidden: the form to print, log or put in an error."""
        return mask_url(self.url)

    @abstractmethod
    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        """Create a study; raise DuplicateStudyError if one of that name exists."""

    @abstractmethod
    def get_study(self, name: str) -> StudyRecord:
        """The study of that name; raise StudyNotFound if there is none."""

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
    ) -> FrozenTrial | None:
        """Insert a trial numbered one past the last; atomically.

        ``attrs`` are the new trial's attributes (a re-queued copy's origin).
        With ``claim`` set, return ``None`` instead if a trial of the study
        already holds that claim (a grid point another worker took).
        """

    @abstractmethod
    def pop_waiting(self, study_id: int, *, worker: str, now: float) -> FrozenTrial | None:
        """Atomically turn the oldest waiting trial into a running one, or ``None``."""

    def claim_paused(
        self, study_id: int, number: int, *, worker: str, now: float
    ) -> FrozenTrial | None:
        """Atomically turn paused trial ``number`` into a running one held by ``worker``.

        Returns the running record, or ``None`` if the trial is not paused
        (another worker resumed it first): two workers never resume the same
        trial. Storages that support pausing pruners implement it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot resume paused trials; implement claim_paused()"
        )

    @abstractmethod
    def update_trial(self, study_id: int, trial: FrozenTrial) -> None:
        """Rewrite a trial record whole (state, value, reports, attrs, ...).

        Raises TrialFinishedError if the stored record is already finished.
        """

    @abstractmethod
    def get_trials(self, study_id: int, *, min_number: int = 0) -> list[FrozenTrial]:
        """Trials numbered ``min_number`` and up, by number."""

    def get_trial(self, study_id: int, number: int) -> FrozenTrial:
        for t in self.get_trials(study_id, min_number=number):
            if t.number == number:
                return t
        raise TrialNotFound(f"study has no trial number {number}")

    @abstractmethod
    def heartbeat(self, study_id: int, numbers: Sequence[int], now: float) -> None:
        """Record that the workers of these running trials are alive."""

    @abstractmethod
    def fail_running(
        self,
        study_id: int,
        *,
        error: str,
        now: float,
        stale_before: float | None = None,
        worker: str | None = None,
        requeue: bool = False,
        dead: bool = False,
    ) -> list[FrozenTrial]:
        """Atomically mark running trials failed; return the records changed.

        Selects running trials whose heartbeat is older than ``stale_before``
        and/or that belong to ``worker`` (both given: both must hold). Their
        intermediate reports and attributes are kept. With ``requeue``, each
        gets a waiting copy with the same parameters (attribute ``retry_of``),
        and the failed record points to it (``requeued_as``). With ``dead``
        (the caller saw the worker process exit), a trial that
        :func:`holds_promotion` (resumed from a checkpoint) goes back to
        ``paused`` instead (:func:`held_record`): no copy, nothing failed. Not
        otherwise: a worker judged lost by its heartbeat, or one interrupted
        with threads still running, may write again, which a failed trial
        refuses. Two workers calling this at once never fail or re-queue the
        same trial twice.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections (optional)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    # -- study management (optional for custom storages) -------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        """Rename a study; ValueError if ``new_name`` is taken, StudyNotFound if ``name`` is absent."""
        raise NotImplementedError(f"{type(self).__name__} cannot rename studies; implement rename_study()")

    def set_study_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        """Replace a study's settings (the sampler in use, its pruner, heartbeats)."""
        raise NotImplementedError(f"{type(self).__name__} cannot change settings; implement set_study_config()")
