"""The callbacks of an optimize call, run in the driver whatever the executor.

Workers hand each record they end to the driver (directly inline, through a
queue from threads, through a pipe from processes, as the answer of a Ray
call); the driver calls ``callback(study, record)`` for each, in the order each
worker ended its trials. The first exception a callback raises stops the
run: no new trial starts, the running ones end as usual (no more callbacks),
and the executor raises it once its workers are done. ``study.stop()`` (from
a callback, or another thread of the driver) stops the run the same way,
without an error. The trial whose objective raised what ``catch`` lets through
is called back too (once, before the executor raises that exception). Of an
objective's exception and a callback's, the one that stopped the run first is
raised: the objective's over a callback's on its trial, a callback's over the
exception of an objective still running when it stopped the run. An interrupt
(Ctrl-C, SIGTERM) or a lost Ray cluster ends the call with no more callbacks:
the trials recorded as it stops (failed, or ended just then with their result)
are not called back, under every executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..trial import FrozenTrial
from .loop import Budget

if TYPE_CHECKING:
    from ..study import Study

logger = logging.getLogger("tunesmith")


class Callbacks:
    """Calls a job's callbacks in the driver; stops the budget on an error or ``study.stop()``."""

    def __init__(self, study: Study, callbacks: Sequence[Callable[[Study, FrozenTrial], None]], budget: Budget) -> None:
        self.study = study
        self.callbacks = tuple(callbacks)
        self.budget = budget
        self.error: Exception | None = None
        self.second = False  # the error came once the run was stopped (by an objective's exception: it wins)

    def __call__(self, record: FrozenTrial) -> None:
        if self.error is None:
            try:
                for cb in self.callbacks:
                    cb(self.study, record)
            except Exception as exc:  # noqa: BLE001 - raised by raise_error once the workers are done
                self.error = exc
                self.second = self.budget.stopped and not self.budget.exhausted
                self.budget.stop()
                logger.warning(
                    "a callback raised %s after trial %d; no new trial starts, optimize raises it once "
                    "the running trials end", type(exc).__name__, record.number,
                )  # fmt: skip
        self.check_stop()

    def check_stop(self) -> None:
        if self.study.stopping:
            self.budget.stop()

    def raise_error(self, raised: BaseException | None = None) -> None:
        """Raise what stopped the run: the callbacks' error, or ``raised`` (the objective's exception
        that ``catch`` let through) when it came first."""
        if raised is not None and (self.error is None or self.second):
            raise raised
        if self.error is not None:
            raise self.error
