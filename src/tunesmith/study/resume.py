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

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..trial import FrozenTrial, TrialState, short_repr
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
    for number in set(paused_numbers(study, "abandoned", history, by_number)) - set(held):
        lifecycle.abandon_paused(st, sid, by_number[number], now)  # no promotion can reach it any more
    for number in [*held, *paused_numbers(study, "promotable", history, by_number)]:
        claimed = lifecycle.claim_paused(st, sid, by_number[number], worker, now)
        if claimed is not None:
            return claimed
    return None  # each was resumed by another worker first


def paused_numbers(
    study: Study, method: str, history: Sequence[FrozenTrial], by_number: Mapping[int, FrozenTrial]
) -> list[int]:
    """The pruner's ``promotable`` or ``abandoned`` answer over ``history`` (``by_number``: by number), checked:
    trial numbers of paused trials. A custom pruner's bug would otherwise surface as a KeyError or
    a TypeError naming nothing of it, or resume a trial that is not paused."""
    answer = getattr(study.pruner, method)(history, study.direction)
    where = f"{type(study.pruner).__name__}.{method}"
    if isinstance(answer, (str, bytes, Mapping)) or not isinstance(answer, Iterable):
        raise TypeError(f"{where} returned {short_repr(answer)}: it must return a list of the numbers of paused trials "
                        "(an empty list when there are none)")
    given = list(answer)
    for n in given:
        trial = by_number.get(int(n)) if isinstance(n, numbers.Integral) and not isinstance(n, bool) else None
        if trial is None or trial.state is not TrialState.PAUSED:
            what = "no trial's number" if trial is None else f"trial {n}, which is {trial.state.value}"
            raise ValueError(f"{where} returned {short_repr(given)}, and {short_repr(n)} is {what}: it must return the numbers "
                             "of paused trials among those it was given")
    return [int(n) for n in given]
