"""The Executor interface: where an optimize run's trials are evaluated.

An executor receives a :class:`Job` (the study, the objective, the budget and
the hooks) and runs trials until the budget ends or the search is exhausted.
Executors use only the study's public verbs (ask, run_trial, tell, enqueue)
and the storage's record operations; no engine type leaks out of this package.
Subclass :class:`Executor` to plug in another engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..trial import FrozenTrial

if TYPE_CHECKING:
    from ..study import Study

OnTrial = Callable[[FrozenTrial], None]


@dataclass
class Job:
    """One optimize call, as an executor sees it.

    Attributes:
        study: the study to run trials of.
        objective: ``objective(trial) -> float``.
        n_trials: trials to run over all workers (None: until timeout/exhausted).
        timeout: seconds after which no new trial starts.
        catch: exceptions that fail a trial without stopping the run.
        callbacks: ``callback(study, record)`` after each trial, in the driver
            (see :class:`~tunesmith.execution.callbacks.Callbacks`: a custom
            executor calls one for each record its workers end, then
            ``raise_error()`` once they are done).
        on_trial: progress hook for each finished trial seen by the driver.
        poll: progress hook that re-reads the storage (workers elsewhere).
        interrupted: set by the executor when an interrupt (Ctrl-C, SIGTERM) stopped
            the run: the error its stopped trials got (``exceptions.interrupted``), which
            ``study.interrupted`` gives after ``optimize`` returns.
    """

    study: Study
    objective: Callable[..., Any]
    n_trials: int | None
    timeout: float | None
    catch: tuple[type[BaseException], ...]
    callbacks: tuple[Callable[[Study, FrozenTrial], None], ...] = ()
    on_trial: OnTrial | None = None
    poll: Callable[[], None] | None = None
    interrupted: str | None = None


class Executor(ABC):
    """Base class of executors (public extension point)."""

    name: str = "custom"

    @abstractmethod
    def run(self, job: Job) -> str | None:
        """Run the job's trials; return why the search stopped early, if it did
        (an exhausted grid), else None. Ctrl-C must leave no trial running."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
