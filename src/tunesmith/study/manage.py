"""Study management: known results added as trials, copies (to another storage too),
renames, deletes, and the record of the sampler in use."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import StudyNotFound
from ..storage import Storage, make_storage
from ..storage.base import check_study_name
from ..trial import FrozenTrial, TrialState, json_attrs
from .trial import _as_float, _as_step

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger("tunesmith")

#: states a known result may have (``enqueue`` queues a configuration to run instead)
ADDABLE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


def known_result(
    study: Study,
    params: Mapping[str, Any],
    value: Any,
    *,
    state: TrialState | str,
    intermediate: Mapping[int, Any] | None,
    attrs: Mapping[str, Any] | None,
    error: str | None,
    started: float | None,
    completed: float | None,
) -> FrozenTrial:
    """The record of a known result, validated against the study's space (number not yet set)."""
    st = _addable_state(state)
    canon = study.space.validate(params)
    v = _as_float(value)
    if value is not None and v is None:
        raise ValueError(f"add_trial: value must be a finite number (or None), got {value!r}")
    if st is TrialState.COMPLETE and v is None:
        raise ValueError("add_trial: a complete trial needs its value (a finite number); "
                         "pass state='failed' or 'pruned' for a run without one")
    if st is TrialState.FAILED and v is not None:
        raise ValueError("add_trial: a failed trial has no value; pass the reason as error=...")
    steps = _steps(intermediate)
    if st is TrialState.PRUNED and v is None and steps:
        v = steps[max(steps)]  # as tell(): a pruned trial's value is its last report
    extra = _json_attrs(attrs)
    now = time.time()
    return FrozenTrial(
        number=0, state=st, params=canon, value=v, intermediate=steps, attrs=extra,
        error=(error or "added as failed by add_trial()") if st is TrialState.FAILED else error,
        started=started, completed=now if completed is None else float(completed),
    )  # fmt: skip


def _addable_state(state: TrialState | str) -> TrialState:
    try:
        st = TrialState(state)
    except ValueError:
        st = None
    if st not in ADDABLE:
        raise ValueError(
            f"add_trial: state must be 'complete', 'pruned' or 'failed', got {state!r}; "
            "to queue a configuration to run, use study.enqueue(params)"
        )
    assert st is not None
    return st


def _steps(intermediate: Mapping[int, Any] | None) -> dict[int, float]:
    if intermediate is None:
        return {}
    if not isinstance(intermediate, Mapping):
        raise TypeError(f"add_trial: intermediate must be a dict {{step: value}}, got {type(intermediate).__name__}")
    out: dict[int, float] = {}
    for step, val in intermediate.items():
        f = _as_float(val)
        if f is None:
            raise ValueError(f"add_trial: intermediate value at step {step!r} must be a finite number, got {val!r}")
        out[_as_step(step, -1)] = f
    return dict(sorted(out.items()))


def _json_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return json_attrs(attrs, "add_trial")


def insert_record(storage: Storage, study_id: int, record: FrozenTrial) -> FrozenTrial:
    """Store ``record`` whole as the study's next trial (its own number and storage key).
    Created running, then rewritten as it is: no other worker can take it meanwhile."""
    rec = storage.create_trial(study_id, params=record.params, state=TrialState.RUNNING, worker=record.worker,
                               now=record.started, attrs=record.attrs)
    assert rec is not None
    full = record.replace(number=rec.number, trial_id=rec.trial_id)
    storage.update_trial(study_id, full)
    return full


def copy_study(study: Study, name: str | None, storage: str | Storage | None) -> Study:
    """A copy of ``study`` (its settings and every trial, same numbers) as ``name`` in ``storage``;
    its test results (the companion ``"<name>:test"`` of ``evaluate_best``) are copied with it."""
    from .evaluate import SUFFIX
    from .study import Study

    dest = study.storage if storage is None else make_storage(storage)
    name = study.name if name is None else check_study_name(name)
    if dest is study.storage and name == study.name:
        raise ValueError(f"copy study {study.name!r} to another name, or to another storage (storage=...)")
    book = exists(study.storage, study.name + SUFFIX)
    _check_book_free(dest, name)
    _copy(study, name, dest)
    if book:
        _copy(Study.load(study.name + SUFFIX, study.storage), name + SUFFIX, dest)
    return Study(storage=dest, name=name)


def rename_study(study: Study, new_name: str) -> None:
    """Rename ``study`` and the companion holding its test results, if any."""
    from .evaluate import SUFFIX

    check_study_name(new_name)  # before its companion's name is checked (and named in the error)
    book = exists(study.storage, study.name + SUFFIX)
    _check_book_free(study.storage, new_name)
    study.storage.rename_study(study.name, new_name)
    if book:
        study.storage.rename_study(study.name + SUFFIX, new_name + SUFFIX)


def delete_study(storage: Storage, name: str) -> None:
    """Delete study ``name`` and the companion holding its test results, if any: a study
    created later under the same name must not show the deleted one's test results. (By
    name: a study changed outside tunesmith so that it cannot be opened is deleted too.)"""
    from .evaluate import SUFFIX

    storage.delete_study(name)
    if exists(storage, name + SUFFIX):
        storage.delete_study(name + SUFFIX)


def exists(storage: Storage, name: str) -> bool:
    try:
        storage.get_study(name)
    except StudyNotFound:
        return False
    return True


def _check_book_free(storage: Storage, name: str) -> None:
    from ..exceptions import DuplicateStudyError
    from .evaluate import SUFFIX

    if exists(storage, name + SUFFIX):
        raise DuplicateStudyError(
            f"a study named {name + SUFFIX!r} (the test results of a study named {name!r}) already exists in "
            f"{storage.display_url}: the study would show them as its own; choose another name or delete it"
        )


def _copy(study: Study, name: str, dest: Storage) -> None:
    source = study.storage.get_study(study.name)
    rec = dest.create_study(name, direction=source.direction, space=source.space, config=source.config)
    try:
        for t in study.trials:
            if t.state is TrialState.RUNNING:  # nobody will finish it in the copy
                t = t.replace(state=TrialState.FAILED, error="running when the study was copied",
                              completed=time.time(), heartbeat=None)  # fmt: skip
            insert_record(dest, rec.study_id, t)
    except BaseException:  # a full disk, Ctrl-C: a partial copy would pass for the whole study
        try:
            dest.delete_study(name)
        except Exception as again:  # noqa: BLE001 - say what is left, raise the first error
            logger.warning("a partial copy %r is left in %s (%s): delete it", name, dest.display_url, again)
        raise


def record_sampler(study: Study, stored: Mapping[str, Any]) -> None:
    """Store the sampler this process uses when it is not the study's stored one
    (``tunesmith studies`` shows the sampler in use)."""
    now = study.sampler.describe()
    if stored.get("sampler") == now:
        return
    try:
        study.storage.set_study_config(study._study_id, {**stored, "sampler": now})
    except NotImplementedError:
        return
    was = _name(stored.get("sampler"))
    if was != now.get("name"):  # a new seed or setting of the same sampler is recorded silently
        logger.info("study %r: sampler %s recorded (was %r)", study.name, now.get("name"), was)


def _name(sampler: Any) -> Any:
    return sampler.get("name") if isinstance(sampler, Mapping) else sampler
