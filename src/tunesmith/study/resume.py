"""Pause and resume: the study's half of pausing pruners (ASHA, Hyperband).

The pruner (pure) says PAUSE and, later, which paused trials are promotable.
The study does the writing:

* pausing records the trial as ``paused`` (not finished, not failed) with its
  reports and attributes (e.g. ``attrs["checkpoint"]``) kept;
* on ``ask``, before sampling anything new, the study resumes the best
  promotable paused trial: a compare-and-set on ``paused`` makes it running
  for exactly one worker, marked with ``system.resumed_step`` (the last step
  it had reported) and ``system.n_resumes``. The objective sees ``trial.is_resumed``,
  ``trial.start_step`` and ``trial.resume_from`` and continues training from
  its checkpoint;
* a resumed trial whose worker is lost goes back to ``paused`` holding its
  promotion (``system.held``; its reports and checkpoint kept, see
  :func:`lifecycle.fail_lost`) and is resumed first;
* paused trials the pruner calls ``abandoned`` (synchronous successive
  halving: their cohort settled at the rung without them in its quota) are
  recorded as pruned on the next ``ask``, so none waits forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..trial import FrozenTrial, TrialState
from . import lifecycle

if TYPE_CHECKING:
    from .study import Study


def resume_next(study: Study, worker: str) -> FrozenTrial | None:
    """Claim and mark the best promotable paused trial, or None if there is none."""
    if not study.pruner.pauses:
        return None
    history = study._history()
    if not any(t.state is TrialState.PAUSED for t in history):
        return None
    st, sid = study._storage, study._study_id
    now = st.clock()
    by_number = {t.number: t for t in history}
    held = lifecycle.held_promotions(history)
    for number in set(study.pruner.abandoned(history, study.direction)) - set(held):
        lifecycle.abandon_paused(st, sid, by_number[number], now)  # no promotion can reach it any more
    for number in [*held, *study.pruner.promotable(history, study.direction)]:
        claimed = lifecycle.claim_paused(st, sid, by_number[number], worker, now)
        if claimed is not None:
            return claimed
    return None  # each was resumed by another worker first
