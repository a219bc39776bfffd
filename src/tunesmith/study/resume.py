"""Pause and resume: the study's half of pausing pruners (ASHA, Hyperband).

The pruner (pure) says PAUSE and, later, which paused trials are promotable.
The study does the writing:

* pausing records the trial as ``paused`` (not finished, not failed) with its
  reports and attributes (e.g. ``attrs["checkpoint"]``) kept;
* on ``ask``, before sampling anything new, the study resumes the best
  promotable paused trial: the storage's atomic ``claim_paused`` makes it
  running for exactly one worker, and the study marks it with
  ``attrs["resumed_step"]`` (the last step it had reported) and
  ``attrs["n_resumes"]``. The objective sees ``trial.is_resumed``,
  ``trial.start_step`` and ``trial.resume_from`` and continues training from
  its checkpoint;
* a resumed trial whose worker is lost goes back to ``paused`` holding its
  promotion (``attrs[HELD_ATTR]``; its reports and checkpoint kept, see
  ``Storage.fail_running``) and is resumed first;
* paused trials the pruner calls ``abandoned`` (synchronous successive
  halving: their cohort settled at the rung without them in its quota) are
  recorded as pruned on the next ``ask``, so none waits forever.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..pruners import RESUMED_ATTR
from ..storage.base import HELD_ATTR
from ..trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from .study import Study

RESUMES_ATTR = "n_resumes"


def pause_record(record: FrozenTrial) -> FrozenTrial:
    """``record`` as paused: state paused, value = its last report, no worker heartbeat."""
    last = record.last_step
    value = record.intermediate[last] if last is not None else None
    return record.replace(state=TrialState.PAUSED, value=value, heartbeat=None)


def held_promotions(trials: Sequence[FrozenTrial]) -> list[int]:
    """Numbers of the paused trials that hold a promotion (their worker died while
    resuming them); they are resumed before any other."""
    return [t.number for t in trials if t.state is TrialState.PAUSED and HELD_ATTR in t.attrs]


def resume_next(study: Study, worker: str) -> FrozenTrial | None:
    """Claim and mark the best promotable paused trial, or None if there is none."""
    if not study.pruner.pauses:
        return None
    history = study._history()
    if not any(t.state is TrialState.PAUSED for t in history):
        return None
    held = held_promotions(history)
    for number in set(study.pruner.abandoned(history, study.direction)) - set(held):
        lost = study._storage.claim_paused(study._study_id, number, worker=worker, now=time.time())
        if lost is not None:  # no promotion can reach it any more: stopped for good
            pruned = study._finish(lost, lost.value, TrialState.PRUNED, None)
            study._storage.update_trial(study._study_id, pruned.replace(heartbeat=None))
    for number in [*held, *study.pruner.promotable(history, study.direction)]:
        claimed = study._storage.claim_paused(
            study._study_id, number, worker=worker, now=time.time()
        )
        if claimed is None:
            continue  # another worker resumed it first
        attrs = {
            **{k: v for k, v in claimed.attrs.items() if k != HELD_ATTR},
            RESUMED_ATTR: claimed.last_step if claimed.last_step is not None else -1,
            RESUMES_ATTR: int(claimed.attrs.get(RESUMES_ATTR, 0)) + 1,
        }
        record = claimed.replace(attrs=attrs, value=None)
        study._storage.update_trial(study._study_id, record)
        return record
    return None
