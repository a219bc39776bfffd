"""Study management: known results added as trials, copies (to another storage too),
renames, deletes, and the record of the sampler in use."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import StorageError, StudyNotFound
from ..space import Space
from ..storage import Storage, make_storage
from ..storage.base import check_study_name
from ..trial import FrozenTrial, TrialState, json_attrs
from .trial import _as_float, _as_step, short_repr

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger("tunesmith")

#: set while evaluate_best creates a study's companion, the one place a name may end in ":test"
_MAKING_COMPANION: ContextVar[bool] = ContextVar("tunesmith_making_companion", default=False)

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
    began, ended = _when(started, "started"), _when(completed, "completed")
    ended = time.time() if ended is None else ended
    if began is not None and began > ended:
        raise ValueError(f"add_trial: started ({started!r}) is after completed ({completed!r}); "
                         "a trial ends after it starts")
    return FrozenTrial(
        number=0, state=st, params=canon, value=v, intermediate=steps, attrs=extra,
        error=(error or "added as failed by add_trial()") if st is TrialState.FAILED else error,
        started=began, completed=ended,
    )  # fmt: skip


def _when(t: Any, name: str) -> float | None:
    """A time given to add_trial as seconds since the epoch (``time.time()``); a ``datetime`` is
    converted (a naive one is local time)."""
    if t is None:
        return None
    f = t.timestamp() if isinstance(t, datetime) else _as_float(t)
    if f is None:
        raise ValueError(f"add_trial: {name} must be a time in seconds since the epoch (time.time()) or a "
                         f"datetime, got {t!r}")
    if f > time.time() + 86400:  # a known result ran in the past: milliseconds, most likely
        raise ValueError(f"add_trial: {name}={t!r} is in the future; give seconds since the epoch "
                         "(time.time()), not milliseconds")
    return f


def _addable_state(state: TrialState | str) -> TrialState:
    try:
        st = TrialState(state.lower() if isinstance(state, str) else state)  # any case, as tell's
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
        try:
            out[_as_step(step, -1)] = f
        except ValueError as exc:  # it names no trial: the record has no number yet
            raise ValueError(f"add_trial: intermediate {str(exc).removeprefix('trial -1: ')}") from None
    return dict(sorted(out.items()))


def _json_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return json_attrs(attrs, "add_trial")


def insert_record(storage: Storage, study_id: int, record: FrozenTrial) -> FrozenTrial:
    """Store ``record`` whole as the study's next trial (its own number and storage key)."""
    return storage.insert_trials(study_id, [record])[0]


def copy_study(study: Study, name: str | None, storage: str | Storage | None,
               space: Space | Mapping[str, Any] | None = None, fill: Mapping[str, Any] | None = None) -> Study:
    """A copy of ``study`` (its settings and every trial, same numbers) as ``name`` in ``storage``;
    its test results (the companion ``"<name>:test"`` of ``evaluate_best``) are copied with it.
    With ``space``, the copy has that space and the trials that are configurations of it, each
    given the values of ``fill`` for the parameters it lacks (one the space added)."""
    from .evaluate import SUFFIX
    from .study import Study

    dest = study.storage if storage is None else make_storage(storage)
    name = study.name if name is None else check_new_name(name)
    if dest is study.storage and name == study.name:
        raise ValueError(f"copy study {study.name!r} to another name, or to another storage (storage=...)")
    new_space = None if space is None else space if isinstance(space, Space) else Space(space)
    if fill and new_space is None:
        raise ValueError("fill= gives values for parameters a new space adds: pass that space= too")
    book = exists(study.storage, study.name + SUFFIX)
    _check_book_free(dest, name)
    left = _copy(study, name, dest, new_space, fill)
    _warn_paused(study.trials, study.name, f"copied as {name!r}")
    if new_space is not None:
        _say_left_out(study.name, name, len(study.trials), left, book)
    if book and not left:  # their trial numbers are the copy's
        _copy(Study.load(study.name + SUFFIX, study.storage), name + SUFFIX, dest, new_space, fill)
    return Study(storage=dest, name=name)


def _say_left_out(source: str, name: str, n: int, left: Mapping[int, str], book: bool) -> None:
    if not left:
        logger.info("copied study %r into %r with the new space: all %d trials fit it", source, name, n)
        return
    first = next(iter(left.items()))
    logger.warning(
        "copied study %r into %r with the new space: %d of %d trials left out, their parameters are not a "
        "configuration of it (trial %d: %s)%s", source, name, len(left), n, *first,
        "; the copied trials are numbered anew, so its test results (evaluate_best) are not copied" if book else "",
    )  # fmt: skip


def check_new_name(name: str) -> str:
    """``name`` for a new study (or a copy, a rename): a valid name without white space at either
    end, and not ending in ``":test"`` (the companion in which evaluate_best keeps another study's
    test results)."""
    from .evaluate import SUFFIX

    check_study_name(name)
    if name in (".", ".."):
        raise ValueError(f"a study cannot be named {name!r}: a browser reads it in the dashboard's address "
                         "/studies/NAME as the folder itself, so the study could not be opened there; choose "
                         "another name")
    if name != name.strip():
        raise ValueError(f"study name {name!r} begins or ends with white space, which lists and tables do not "
                         f"show (it would pass for {name.strip()!r}); write {name.strip()!r}")
    if name.endswith(SUFFIX) and not _MAKING_COMPANION.get():
        raise ValueError(
            f"study name {name!r} ends with {SUFFIX!r}, which tunesmith keeps for the test results of study "
            f"{name.removesuffix(SUFFIX)!r} (evaluate_best): such a study is listed, copied and deleted with "
            "that one; choose another name"
        )
    return name


@contextmanager
def making_companion() -> Iterator[None]:
    """Within it, :func:`check_new_name` accepts a ``":test"`` name (evaluate_best's companion)."""
    token = _MAKING_COMPANION.set(True)
    try:
        yield
    finally:
        _MAKING_COMPANION.reset(token)


def rename_study(study: Study, new_name: str) -> None:
    """Rename ``study`` and the companion holding its test results, if any."""
    from .evaluate import SUFFIX

    if new_name == study.name:  # nothing to do (not "a study named ... already exists": it is this one)
        return
    check_new_name(new_name)  # before its companion's name is checked (and named in the error)
    book = exists(study.storage, study.name + SUFFIX)
    _check_book_free(study.storage, new_name)
    study.storage.rename_study(study.name, new_name)
    _warn_paused(study.trials, study.name, f"renamed {new_name!r}")
    if book:
        study.storage.rename_study(study.name + SUFFIX, new_name + SUFFIX)


def _warn_paused(trials: list[FrozenTrial], name: str, done: str) -> None:
    """Paused trials with a checkpoint find it only in the checkpoint folder named after ``name``."""
    paused = [t.number for t in trials if t.state is TrialState.PAUSED and t.attrs.get("checkpoint")]
    if paused:
        logger.warning(
            "study %r, %s: its paused trial(s) %s keep their checkpoints in the folder named after %r, and a "
            "trial resumes only from its own study's folder: promoted there, they fail ('refusing to resume'). "
            "Let them finish under the old name first, or end them with study.tell(n, state='pruned')",
            name, done, paused, name,
        )  # fmt: skip


def delete_study(storage: Storage, name: str) -> None:
    """Delete study ``name`` and the companion holding its test results, if any: a study
    created later under the same name must not show the deleted one's test results. (By
    name: a study changed outside tunesmith so that it cannot be opened is deleted too.)"""
    from .evaluate import SUFFIX

    folders = _checkpoint_folders(storage, name)
    storage.delete_study(name)
    if exists(storage, name + SUFFIX):
        storage.delete_study(name + SUFFIX)
    if folders:
        logger.warning("deleted study %r; its trials' checkpoint files are not deleted: they are in %s",
                       name, ", ".join(folders))


def _checkpoint_folders(storage: Storage, name: str) -> list[str]:
    """The study folders (``<root>/<study>-<hash>``) holding the checkpoints its trials name
    that are still there (a path read from storage is only looked at, never opened)."""
    try:
        trials = storage.get_trials(storage.get_study(name).study_id)
    except StorageError:  # a study that cannot be opened is deleted all the same
        return []
    paths = [t.attrs.get("checkpoint") for t in trials]
    trial_dirs = {os.path.dirname(p) for p in paths if isinstance(p, str) and os.path.isabs(p)}
    return sorted({os.path.dirname(d) for d in trial_dirs if os.path.basename(d).startswith("trial-")
                   and os.path.isdir(d)})


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


def _copy(study: Study, name: str, dest: Storage, space: Space | None = None,
          fill: Mapping[str, Any] | None = None) -> dict[int, str]:
    """Copy ``study``'s settings and trials as ``name`` into ``dest``; with ``space``, the trials
    that fit it, ``fill`` giving the parameters they lack (returns why each other one was left
    out, by number)."""
    source = study.storage.get_study(study.name)
    rec = dest.create_study(name, direction=source.direction,
                            space=source.space if space is None else space.to_dict(), config=source.config)
    left: dict[int, str] = {}
    failed = {"state": TrialState.FAILED, "error": "running when the study was copied", "heartbeat": None}
    try:
        kept = []
        for t in study.trials:
            if space is not None:
                try:
                    t = t.replace(params=space.validate({**(fill or {}), **t.params}))
                except (ValueError, TypeError) as exc:
                    left[t.number] = str(exc)
                    continue
            # a running trial: nobody will finish it in the copy
            kept.append(t.replace(**failed, completed=time.time()) if t.state is TrialState.RUNNING else t)
        dest.insert_trials(rec.study_id, kept)
    except BaseException:  # a full disk, Ctrl-C: a partial copy would pass for the whole study
        try:
            dest.delete_study(name)
        except Exception as again:  # noqa: BLE001 - say what is left, raise the first error
            logger.warning("a partial copy %r is left in %s (%s): delete it", name, dest.display_url, again)
        raise
    return left


def import_study(doc: Any, storage: str | Storage | None, name: str | None = None) -> Study:
    """A new study from what ``tunesmith export --format json`` wrote (``doc``, parsed): its
    settings and trials, each checked as add_trial checks a known result; a trial that was
    waiting is queued again, one that was running is failed, one that was paused is pruned."""
    from .study import Study

    head = doc.get("study") if isinstance(doc, Mapping) else None
    trials = doc.get("trials") if isinstance(doc, Mapping) else None
    if not isinstance(head, Mapping) or not isinstance(trials, list):
        raise ValueError("not a study exported by tunesmith export --format json: it needs 'study' and 'trials'")
    name = check_new_name(name if name is not None else str(head.get("name")))
    dest = make_storage(storage)
    if exists(dest, name):
        from ..exceptions import DuplicateStudyError

        raise DuplicateStudyError(f"a study named {name!r} already exists in {dest.display_url}: import under "
                                  "another name (name=..., on the command line NEW_NAME)")
    space = Space.from_dict(head["space"]) if isinstance(head.get("space"), Mapping) else head.get("space")
    study = Study(space, direction=head.get("direction"), sampler=head.get("sampler"), pruner=head.get("pruner"),
                  storage=dest, name=name, load_if_exists=False)
    try:
        for note in study_notes(head):
            text = note.get("text")
            if isinstance(text, str) and text.strip():
                add_note(dest, name, text, _as_float(note.get("time")))
        for i, t in enumerate(trials):
            _import_trial(study, t, f"trial {t.get('number', i) if isinstance(t, Mapping) else i}")
        _import_tests(study, doc.get("tests") or [])
    except BaseException:  # a partial import would pass for the whole study
        study.delete()
        raise
    return study


def _import_tests(study: Study, tests: Any) -> None:
    """evaluate_best's results as export wrote them, recorded again in the new study's companion
    (the trials were imported in order, so the numbers they name are the same)."""
    from .evaluate import _companion, _record, _result_from

    if not isinstance(tests, list):
        raise ValueError(f"'tests' must be a list of evaluate_best's results, got {type(tests).__name__}")
    book = _companion(study) if tests else None
    for i, r in enumerate(tests):
        try:
            result = _result_from(int(r["trial"]), dict(r["params"]), float(r["validation"]),
                                  [float(v) for v in r["values"]], list(r["seeds"]), study.direction)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"test result {i}: not what tunesmith export wrote ({type(exc).__name__}: {exc})") from None
        _record(book, result)  # type: ignore[arg-type]


def _import_trial(study: Study, t: Any, where: str) -> None:
    if not isinstance(t, Mapping):
        raise ValueError(f"{where}: expected a trial's record, got {type(t).__name__}")
    try:
        state = TrialState(t.get("state"))
        if state is TrialState.WAITING:
            study.enqueue(t.get("params") or {}, attrs=t.get("attrs"))
            return
        steps = t.get("intermediate") or {}
        if not isinstance(steps, Mapping):
            raise ValueError(f"intermediate must be a dict {{step: value}}, got {type(steps).__name__}")
        steps = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in steps.items()}
        as_state = {TrialState.RUNNING: TrialState.FAILED, TrialState.PAUSED: TrialState.PRUNED}.get(state, state)
        error = t.get("error") or ("running when the study was exported" if state is TrialState.RUNNING else None)
        rec = known_result(study, t.get("params") or {}, None if as_state is TrialState.FAILED else t.get("value"),
                           state=as_state, intermediate=steps, attrs=t.get("attrs"), error=error,
                           started=t.get("started"), completed=t.get("completed"))  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    insert_record(study.storage, study._study_id, rec)


#: the longest note a study keeps (characters)
MAX_NOTE = 2000


def study_notes(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A study's notes (``config["notes"]``: ``{"time", "text"}`` each, oldest first); one changed
    outside tunesmith into something else than such a list is read as its text."""
    stored = config.get("notes") or []
    return [n if isinstance(n, dict) else {"text": n} for n in (stored if isinstance(stored, list) else [stored])]


def add_note(storage: Storage, name: str, text: str, when: float | None = None) -> None:
    """Add a note to study ``name``, after the notes it holds."""
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > MAX_NOTE:
        raise ValueError(f"a note is a text of 1 to {MAX_NOTE} characters, got {short_repr(text)}")
    rec = storage.get_study(name)
    note = {"time": time.time() if when is None else when, "text": text.strip()}
    storage.set_study_config(rec.study_id, {**rec.config, "notes": [*study_notes(rec.config), note]})


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
