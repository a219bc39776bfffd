"""Study management: known results added as trials, copies (to another storage too),
renames, deletes, and the record of the sampler in use."""

from __future__ import annotations

import inspect
import logging
import os
import string
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from ..exceptions import StorageError, StudyNotFound
from ..paths import STUDY_FOLDER, study_folder
from ..pruners import as_stored
from ..space import Space
from ..space.params import Fixed
from ..space.space import finite_weights
from ..storage import Storage, make_storage
from ..storage.base import MAX_NAME_LENGTH, NewStudy, check_study_name, command_line, password_note
from ..trial import Direction, FrozenTrial, TrialState, as_count, json_attrs, one_line
from .trial import _as_float, _as_step, short_repr

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger("tunesmith")

#: set while evaluate_best creates a study's companion, the one place a name may end in ":test"
_MAKING_COMPANION: ContextVar[bool] = ContextVar("tunesmith_making_companion", default=False)

#: states a known result may have (``enqueue`` queues a configuration to run instead)
ADDABLE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
#: a study's own id in its settings, made with it (a copy, an import, a focus get a new one): its checkpoint
#: folder is its own, even beside a study of its name in another storage or one deleted before it
#: (``Study.copy_id``, ``checkpoint.study_folder``); studies an earlier tunesmith made have none
COPY_ID = "copy_id"


def known_result(
    space: Space,
    params: Mapping[str, Any],
    value: Any,
    *,
    state: TrialState | str = TrialState.COMPLETE,
    intermediate: Mapping[int, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    error: str | None = None,
    started: float | None = None,
    completed: float | None = None,
) -> FrozenTrial:
    """The record of a known result, validated against the study's ``space`` (number not yet set)."""
    st = _addable_state(state)
    canon = space.validate(params)
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
    if error is not None and not isinstance(error, str):  # a dict ended the storage's write (AttributeError)
        raise TypeError(f"add_trial: error must be a text saying why the trial failed, got {short_repr(error)}")
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


def insert_record(storage: Storage, study_id: int, record: FrozenTrial, claim: str | None = None) -> FrozenTrial | None:
    """Store ``record`` whole as the study's next trial (its own number and storage key). With
    ``claim``: unless a trial of the study holds that claim already (then None, nothing stored);
    the storage decides atomically, across processes."""
    if claim is None:
        return storage.insert_trials(study_id, [record])[0]
    return storage.insert_claimed(study_id, record, claim)  # one write: a process killed midway leaves no
    # running trial holding the claim (a hypertune run's number taken for good)


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
    if fill is not None and not isinstance(fill, Mapping):  # "'list' object has no attribute 'items'"
        raise TypeError(f"fill= is a dict of parameter name -> the value the trials ran with, got {fill!r}")
    if fill and new_space is None:
        raise ValueError("fill= gives values for parameters a new space adds: pass that space= too")
    if fill and new_space is not None:
        _check_fill(new_space, fill)
    if new_space is not None:
        check_sampler_fits(study, new_space, "copy")
    book = exists(study.storage, study.name + SUFFIX)
    check_book_free(dest, name, book)
    _check_workers_fit(study, book, dest)
    copy, left = _copied(study, name, new_space, fill)
    studies = [copy]
    if book:  # each pointing at its trial's number in the copy (numbered anew when trials were left out)
        kept = [t.number for t in study.trials if t.number not in left]
        studies.append(_copied(Study.load(study.name + SUFFIX, study.storage), name + SUFFIX, new_space, fill,
                               renumber={old: new for new, old in enumerate(kept)} if left else None)[0])
    # with its trials and test results, in one write: a partial copy (a full disk, Ctrl-C, a process killed)
    # would pass for the whole
    dest.create_studies(studies)
    _warn_paused(study.trials, study.name, f"copied as {name!r}", where="the copy, which has a folder of its own",
                 fix=f"Let them finish in study {study.name!r} before copying", now=(name, dest),
                 left=left, copy_id=study.copy_id)
    if new_space is not None:
        from .study import _fill_hint

        known = [*study.space, *(fill or {}), *(p for p, param in new_space.items() if isinstance(param, Fixed))]
        _say_left_out(study.name, name, len(study.trials), left, book, _fill_hint(dict.fromkeys(known), new_space))
    return Study(storage=dest, name=name)


def _say_left_out(source: str, name: str, n: int, left: Mapping[int, str], book: bool, hint: str) -> None:
    if not left:
        logger.info("copied study %r into %r with the new space: all %d trials fit it", source, name, n)
        return
    first = next(iter(left.items()))
    logger.warning(
        "copied study %r into %r with the new space: %d of %d trials left out, their parameters are not a "
        "configuration of it (trial %d: %s)%s%s", source, name, len(left), n, *first,
        hint,
        "; the copied trials are numbered anew, and so are their test results (evaluate_best); those of the "
        "trials left out are not copied" if book else "",
    )  # fmt: skip


def check_new_name(name: str) -> str:
    """``name`` for a new study (or a copy, a rename): a valid name without white space at either
    end, not starting with "-" (the command line would read it as an option), and not ending in
    ``":test"`` (the companion in which evaluate_best keeps another study's test results)."""
    from .evaluate import SUFFIX

    check_study_name(name)
    if _MAKING_COMPANION.get():  # "<study>:test": the study's own name, which may predate these rules
        return name
    if name in (".", ".."):
        raise ValueError(f"a study cannot be named {name!r}: a browser reads it in the dashboard's address "
                         "/studies/NAME as the folder itself, so the study could not be opened there; choose "
                         "another name")
    if name.startswith("-"):
        raise ValueError(f"study name {name!r} starts with '-': the command line (tunesmith show NAME, ...) would "
                         f"read it as an option; start it with another character, e.g. "
                         f"{_without_dashes(name)!r}")
    if name != name.strip():
        raise ValueError(f"study name {name!r} begins or ends with white space, which lists and tables do not "
                         f"show (it would pass for {name.strip()!r}); write {name.strip()!r}")
    if name.endswith(SUFFIX):
        raise ValueError(
            f"study name {name!r} ends with {SUFFIX!r}, which tunesmith keeps for the test results of study "
            f"{name.removesuffix(SUFFIX)!r} (evaluate_best): such a study is listed, copied and deleted with "
            "that one; choose another name"
        )
    return name


def _without_dashes(name: str) -> str:
    """``name`` for the message refusing it for its leading '-': without its leading dashes and white space
    (``'- -a'`` left ``'-a'``, refused again), without the ``":test"`` a new name may not end with."""
    from .evaluate import SUFFIX

    return name.lstrip("-" + string.whitespace).rstrip().removesuffix(SUFFIX).rstrip() or "study"


def check_name_before_file(name: str, storage: Any) -> None:
    """:func:`check_new_name` where ``storage`` (a URL, or a path as make_storage takes it) names a SQLite
    file not made yet, which holds no study: a name refused after the file was made left it behind, empty."""
    spec = os.fspath(storage) if isinstance(storage, os.PathLike) else storage
    if not isinstance(spec, str) or spec == "memory":
        return  # a study in memory: no file, and no SQLAlchemy to import (a third of a second)
    from ..storage.sql import missing_sqlite_file

    if missing_sqlite_file(spec if "://" in spec else f"sqlite:///{spec}"):
        check_new_name(name)


def in_companion() -> bool:
    """Whether :func:`making_companion` is on: the study being opened is evaluate_best's companion."""
    return _MAKING_COMPANION.get()


@contextmanager
def making_companion() -> Iterator[None]:
    """Within it, :func:`check_new_name` accepts evaluate_best's companion ``"<study>:test"`` with
    only the rule of every stored name: the study's own name may predate the rules of new names."""
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
    check_book_free(study.storage, new_name, book)
    # together: a process killed between the two left test results under the old name, which refused it for
    # a new study, and the renamed study without them
    study.storage.rename_studies([(study.name, new_name), *([(study.name + SUFFIX, new_name + SUFFIX)] if book else [])])
    _warn_paused(study.trials, study.name, f"renamed {new_name!r}", now=(new_name, study.storage),
                 copy_id=study.copy_id, back=study_folder("", new_name, study.copy_id).name)


def _warn_paused(trials: list[FrozenTrial], name: str, done: str, *, now: tuple[str, Storage], left: Any = (),
                 where: str = "the renamed study", fix: str = "Let them finish under the old name first",
                 copy_id: str | None = None, back: str | None = None) -> None:
    """Paused trials with a checkpoint find it, under tunesmith's trainer and Lightning callback, only in the
    checkpoint folder of the study that paused them:
    ``name``'s (``copy_id``: its id; a copy's, even under the same name, is another: ``where`` and ``fix`` say
    so), or, for a trial paused under a name the study had before or in the study it was copied from, that
    study's (said apart: neither name can resume it). ``now``: the study (name, storage) that holds them after,
    named in the ``tunesmith tell`` that ends them, with their numbers there (a copy that ``left`` trials out
    numbers the others anew). ``back``: the folder the study has after (a rename's): trials paused under the
    name it takes back resume there, unwarned."""
    elsewhere = _paused_elsewhere(trials, name, copy_id)
    paused = [t.number for t in trials if t.state is TrialState.PAUSED and t.attrs.get("checkpoint")
              and (back is None or elsewhere.get(t.number) != back)]
    elsewhere = {n: folder for n, folder in elsewhere.items() if n in paused}
    here = [n for n in paused if n not in elsewhere]
    if here:
        logger.warning(
            "study %r, %s: its paused trial(s) %s keep their checkpoints in the folder named after %r: "
            "promoted in %s, they fail under tunesmith's trainer and Lightning callback, which resume a trial "
            "only from its own study's folder ('refusing to resume'; an objective that loads trial.resume_from "
            "itself, as docs/pruning.md's, resumes them from the file recorded). %s, or end them with "
            "study.tell(n, state='pruned')%s",
            name, done, here, name, where, fix, _tell_command(here, now, left),
        )  # fmt: skip
    if elsewhere:
        logger.warning(
            "study %r, %s: its paused trial(s) %s were paused under a name it had before or in the study it was "
            "copied from: their checkpoints are in %s, not in the folder of %r, and a trial resumes only from the "
            "folder of the study that paused it: promoted in %r as in %s, they fail ('refusing to resume'). Resume "
            "them in the study that paused them, or end them with study.tell(n, state='pruned')%s",
            name, done, sorted(elsewhere), " and ".join(sorted(set(elsewhere.values()))), name, name, where,
            _tell_command(sorted(elsewhere), now, left),
        )  # fmt: skip


def _paused_elsewhere(trials: list[FrozenTrial], name: str, copy_id: str | None) -> dict[int, str]:
    """The paused trials whose checkpoint, a trainer's ``<root>/<study>-<hash>/trial-N/...`` (a path read from
    storage: only its text is looked at), lies in another study folder than study ``name``'s, with that folder's
    name: paused under a name the study had before, or in the study it was copied from."""
    own = study_folder("", name, copy_id).name
    found = {}
    for t in trials:
        path = t.attrs.get("checkpoint")
        if t.state is TrialState.PAUSED and isinstance(path, str):
            trial_dir = PurePath(path).parent
            folder = trial_dir.parent.name
            if trial_dir.name.startswith("trial-") and STUDY_FOLDER.fullmatch(folder) and folder != own:
                found[t.number] = folder
    return found


def _tell_command(numbers: list[int], now: tuple[str, Storage], left: Any) -> str:
    """`` (or `tunesmith tell ...`)``: the command that ends the paused trials ``numbers`` in study ``now``
    (name, storage), with their numbers there; "" in memory or where a copy ``left`` them all out."""
    from ..storage.memory import MemoryStorage

    holder, storage = now
    there = [str(n - sum(k < n for k in left)) for n in numbers if n not in left]
    if isinstance(storage, MemoryStorage) or not there:
        return ""
    command = command_line("tell", holder, *there, options=["--state", "pruned", "--storage", storage.display_url])
    return f" (or `{command}`{password_note(storage.display_url)})"


def delete_study(storage: Storage, name: str) -> None:
    """Delete study ``name`` and the companion holding its test results, if any: a study
    created later under the same name must not show the deleted one's test results. (By
    name: a study changed outside tunesmith so that it cannot be opened is deleted too.)"""
    from .evaluate import SUFFIX

    folders, theirs = _checkpoint_folders(storage, name)
    if exists(storage, name + SUFFIX):  # first: a process killed between the two leaves the study, which a second
        storage.delete_study(name + SUFFIX)  # delete takes; the other way round, test results no study owns
    storage.delete_study(name)  # (and a study of that name could not be made again)
    # paths read from storage, one line each: a folder named "x\n[tunesmith] ..." cannot add a log line of its own
    if folders:
        logger.warning("deleted study %r; its trials' checkpoint files are not deleted: they are in %s",
                       name, ", ".join(one_line(f, None) for f in folders))
    if theirs:  # before: listed as its own, where deleting them loses the other study's paused trials
        logger.warning("deleted study %r, a copy: the trials it was copied with name checkpoints of the study it "
                       "came from, in %s; those are that study's, left as they are",
                       name, ", ".join(one_line(f, None) for f in theirs))


def with_test_results(storage: Storage, name: str) -> str:
    """What a delete of study ``name`` takes with it besides its trials, said where it asks to confirm."""
    from .evaluate import SUFFIX

    return " and its test results (evaluate_best)" if exists(storage, name + SUFFIX) else ""


def _checkpoint_folders(storage: Storage, name: str) -> tuple[list[str], list[str]]:
    """The study folders (``<root>/<study>-<hash>``) holding the checkpoints its trials name
    that are still there (a path read from storage is only looked at, never opened): its own,
    and those of the study a copy (``copy_id``) came from, which its trials started before the
    copy was made name."""
    try:
        rec = storage.get_study(name)
        trials = storage.get_trials(rec.study_id)
    except StorageError:  # a study that cannot be opened is deleted all the same
        return [], []
    copied = isinstance(rec.config.get(COPY_ID), str)
    found: tuple[set[str], set[str]] = (set(), set())
    for t in trials:  # a trained trial that ended keeps best.pt, its "checkpoint" set to None
        for path in (t.attrs.get("checkpoint"), t.attrs.get("best_checkpoint")):
            trial_dir = os.path.dirname(path) if isinstance(path, str) and os.path.isabs(path) else ""
            if os.path.basename(trial_dir).startswith("trial-") and os.path.isdir(trial_dir):
                found[copied and t.started is not None and t.started < rec.created].add(os.path.dirname(trial_dir))
    return sorted(found[0]), sorted(found[1] - found[0])


def exists(storage: Storage, name: str) -> bool:
    if len(name) > MAX_NAME_LENGTH:  # no study has it (a lookup refuses it): the test results of a long name
        return False
    try:
        storage.get_study(name)
    except StudyNotFound:
        return False
    return True


def check_book_free(storage: Storage, name: str, book: bool = False) -> None:
    """Refuse ``name`` for a new study whose test results' name is taken, or (``book``: it gets
    test results) too long for them."""
    from ..exceptions import DuplicateStudyError
    from .evaluate import SUFFIX, room_for_book

    if book:
        room_for_book(name)
    if exists(storage, name + SUFFIX):
        raise DuplicateStudyError(
            f"a study named {name + SUFFIX!r} (the test results of a study named {name!r}) already exists in "
            f"{storage.display_url}: the study would show them as its own; choose another name or delete it"
        )


def _stored_space(study: Study, stored: Any) -> Any:
    """The source's stored space as the study reads it (:meth:`Space.stored`): without NaN or infinite
    prior weights, which the copy would hold unused and warn of in each process that opens it."""
    return finite_weights(stored, f"study {study.name!r} in {study.storage.display_url}") \
        if isinstance(stored, Mapping) else stored


def _copied(study: Study, name: str, space: Space | None = None, fill: Mapping[str, Any] | None = None,
            renumber: Mapping[int, int] | None = None) -> tuple[NewStudy, dict[int, str]]:
    """``study``'s settings and trials as a new study ``name``; with ``space``, the trials that fit
    it, ``fill`` giving the parameters they lack (and why each other one was left out, by number).
    ``renumber``: ``study`` holds test results, each copied with the new number of its search
    trial (``attrs["trial"]``), none for a trial not in it."""
    source = study.storage.get_study(study.name)
    config = {k: v for k, v in source.config.items() if space is None or k != PICKED}  # a pick fits its space only
    left: dict[int, str] = {}
    failed = {"state": TrialState.FAILED, "error": "running when the study was copied", "heartbeat": None}
    kept = []
    for t in study.trials:
        if renumber is not None:
            number = t.attrs.get("trial")
            if not isinstance(number, int) or number not in renumber:
                continue
            t = t.replace(attrs={**t.attrs, "trial": renumber[number]})
        if space is not None:
            try:
                t = t.replace(params=space.validate(_filled(space, t.params, fill or {})))
            except (ValueError, TypeError) as exc:
                left[t.number] = str(exc)
                continue
        # a running trial: nobody will finish it in the copy
        kept.append(t.replace(**failed, completed=time.time()) if t.state is TrialState.RUNNING else t)
    return NewStudy(name, source.direction, _stored_space(study, source.space) if space is None else space.to_dict(),
                    {**config, COPY_ID: uuid.uuid4().hex}, kept), left


def _check_workers_fit(study: Study, book: bool, dest: Storage) -> None:
    """Before a copy writes: a worker PostgreSQL or MySQL cannot keep (over :data:`MAX_WORKER`
    characters, or holding NUL: only a database edited by hand holds one), in ``study`` or its test
    results (``book``), refused the copy with the database's error, naming neither the trial nor the field."""
    from ..storage.sql import SQLStorage
    from .evaluate import SUFFIX
    from .study import Study

    if not isinstance(dest, SQLStorage) or dest.is_sqlite:
        return
    for one in [study, *([Study.load(study.name + SUFFIX, study.storage)] if book else [])]:
        t = next((t for t in one.trials if not worker_fits(t.worker)), None)
        if t is None:
            continue
        w = str(t.worker)
        raise ValueError(f"trial {t.number} of study {one.name!r}: its worker "
                         f"{w[:40]!r}{f'... ({len(w):,} characters)' if len(w) > 40 else ''} cannot be stored in "
                         f"{dest.display_url} (at most {MAX_WORKER} characters, no NUL): copy the study to SQLite, "
                         "or export it (tunesmith export NAME --format json), correct the worker in the file "
                         "and import it")


def check_sampler_fits(study: Study, space: Space, what: str) -> None:
    """A ValueError where the sampler a copy or focus of ``study`` keeps cannot search ``space`` (a grid's
    points for a parameter it lacks, or outside it): checked before it is stored, where it failed at its
    first ask and at every reopening."""
    try:
        study.sampler.check(space)
    except ValueError as exc:
        fit = "copy into a space those points fit" if what == "copy" else "keep the parameters they name (keep=[...])"
        raise ValueError(
            f"the {what} keeps the sampler of study {study.name!r} ({study.sampler.name}): {exc}; {fit}, or open "
            f"the study with other points first (ts.Study(name={study.name!r}, storage=..., "
            "sampler=ts.GridSampler({...})), which records them)") from None


def _check_fill(space: Space, fill: Mapping[str, Any]) -> None:
    """A ValueError for a ``fill`` name that is no parameter of ``space`` or a value it refuses:
    checked before the copy is made (each trial was left out, and the copy took the name empty)."""
    from ..space.params import did_you_mean

    for n, v in fill.items():
        if n not in space:
            raise ValueError(f"fill= names {n!r}, not a parameter of the new space{did_you_mean(n, list(space))}; "
                             f"it has {list(space)}")
        try:
            space[n].validate(v)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"fill={{{n!r}: {v!r}}}: {exc}") from None


def _filled(space: Space, params: Mapping[str, Any], fill: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the values of ``fill`` for the parameters it lacks that are active in it
    (one that needs another branch is left out: validate refuses an inactive value)."""
    context = {**fill, **params}
    return {**params, **{n: v for n, v in fill.items() if n not in params and space.is_active(n, context)}}


def import_study(doc: Any, storage: str | Storage | None, name: str | None = None, *,
                 skip_invalid: bool = False) -> Study:
    """A new study from what ``tunesmith export --format json`` wrote (``doc``, parsed): its
    settings, trials and test results (evaluate_best), each trial checked as add_trial checks a
    known result; a trial that was waiting is queued again, one that was running is failed, one
    that was paused is pruned. A trial that does not fit refuses the whole file, naming it, unless
    ``skip_invalid``: then it is left out (and its test result), each logged with why."""
    from .study import Study

    head = doc.get("study") if isinstance(doc, Mapping) else None
    trials = doc.get("trials") if isinstance(doc, Mapping) else None
    if not isinstance(head, Mapping) or not isinstance(trials, list):
        raise ValueError("not a study exported by tunesmith export --format json: it needs 'study' and 'trials'")
    if name is None and not isinstance(head.get("name"), str):
        raise ValueError("the exported study names no study: give it a name (name=..., on the command line NEW_NAME)")
    for key, example in (("direction", "'minimize' or 'maximize'"), ("space", "{x: {type: float, ...}}")):
        if head.get(key) is None:  # Study would take the default direction, or ask for a space
            raise ValueError(f"the exported study has no {key} (its 'study' entry needs '{key}': {example})")
    name = check_new_name(name if name is not None else head["name"])
    dest = make_storage(storage)
    if exists(dest, name):
        from ..exceptions import DuplicateStudyError

        raise DuplicateStudyError(f"a study named {name!r} already exists in {dest.display_url}: import under "
                                  "another name (name=..., on the command line NEW_NAME)")
    check_book_free(dest, name, bool(doc.get("test_results")))
    space = Space.from_dict(head["space"]) if isinstance(head.get("space"), Mapping) else Space(head["space"])
    numbers, records = _import_trials(space, trials, skip_invalid)
    notes = _imported_notes(study_notes(head))
    book = _import_test_results(space, Direction.parse(head["direction"]), doc.get("test_results"), numbers)
    # its notes, trials and test results in the write that creates it: a partial import (a process killed)
    # would pass for the whole
    return Study(space, direction=head.get("direction"), sampler=head.get("sampler"), pruner=as_stored(head.get("pruner")),
                 storage=dest, name=name, load_if_exists=False, _trials=records, _book=book or None,
                 _settings={COPY_ID: uuid.uuid4().hex, **_exported_pick(head), **({"notes": notes} if notes else {})})


def _exported_pick(head: Mapping[str, Any]) -> dict[str, str]:
    """What sampler "auto" picked, as the file says (``sampler_picked``), to be shown as "auto (bayes)":
    kept only for a study whose sampler is "auto", and only a sampler's own name (the file may hold any text)."""
    from ..samplers import is_known, make_sampler

    picked = head.get(PICKED)
    if _name(head.get("sampler")) not in (None, "auto") or not isinstance(picked, str) or not is_known(picked):
        return {}
    return {PICKED: picked} if make_sampler(picked).name == picked != "auto" else {}  # auto picks another


def _imported_notes(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's notes that hold a text, as the study keeps them (written with it, at once: one write
    per note made 100,000 notes take minutes)."""
    return [_note(n["text"], _as_float(n.get("time"))) for n in notes if isinstance(n.get("text"), str)
            and n["text"].strip()]


def _import_trials(space: Space, trials: list[Any], skip_invalid: bool) -> tuple[dict[int, int], list[FrozenTrial]]:
    """The records of ``trials`` to import, each checked against ``space`` (the queued ones in their place
    among the others), and the number each will have (0, 1, ... in order) by its number in the file."""
    olds, records = [], []
    for i, t in enumerate(trials):
        old = t.get("number", i) if isinstance(t, Mapping) else i
        try:
            label = f"trial {old if isinstance(old, int) else short_repr(old)}"  # repr: a text may hold escapes
            records.append(_import_trial(space, t, label))
            olds.append(old)
        except ValueError as exc:
            if not skip_invalid:
                raise ValueError(f"{exc}; to import the other trials without it: tunesmith import --skip-invalid "
                                 "(import_study(..., skip_invalid=True))") from None
            logger.warning("import: %s; left out", exc)
    return {old: new for new, old in enumerate(olds) if isinstance(old, int) and not isinstance(old, bool)}, records


def _import_test_results(space: Space, direction: Direction, results: Any,
                         numbers: Mapping[int, int]) -> list[FrozenTrial]:
    """The records of the file's test results (``test_results``, as export writes them; absent in files
    written before it did) for the study's companion, each pointing at its trial's new number."""
    from .evaluate import _result_from, book_record

    if results is None:
        return []
    if not isinstance(results, list):
        raise ValueError(f"test_results must be a list of test results, got {type(results).__name__}")
    book = []
    for r in results:
        try:
            old = r["trial"]
            if old not in numbers:
                logger.warning("import: the test result of trial %s is left out: that trial was not imported",
                               short_repr(old))  # repr: a text from the file may hold terminal escapes
                continue
            result = _result_from(numbers[old], r["params"], float(r["validation"]),
                                  [float(v) for v in r["values"]], list(r["seeds"]), direction)
            book.append(book_record(space, result))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: float(10**400)
            raise ValueError(f"test_results: the result of trial {short_repr(r)}: {type(exc).__name__}: {exc}; "
                             "it is not what tunesmith export wrote") from None
    return book


#: the longest worker name (host:pid) a trial keeps: the SQL storages' column
MAX_WORKER = 256


def worker_fits(worker: Any) -> bool:
    """Whether ``worker`` is one the SQL storages keep: None, or text of at most :data:`MAX_WORKER`
    characters without NUL (the column's size; PostgreSQL's text refuses NUL)."""
    return worker is None or (isinstance(worker, str) and len(worker) <= MAX_WORKER and "\x00" not in worker)


def _import_trial(space: Space, t: Any, where: str) -> FrozenTrial:
    """One trial record of the file, checked against the study's ``space`` (its number not yet set)."""
    if not isinstance(t, Mapping):
        raise ValueError(f"{where}: expected a trial's record, got {type(t).__name__}")
    try:
        state = TrialState(t.get("state"))
        if state is TrialState.WAITING:  # queued again, as enqueue() queues it
            attrs = t.get("attrs")
            return FrozenTrial(number=0, state=state, params=space.validate(t.get("params") or {}),
                               attrs=json_attrs(attrs, "enqueue") if attrs is not None else {})
        steps = t.get("intermediate") or {}
        if not isinstance(steps, Mapping):
            raise ValueError(f"intermediate must be a dict {{step: value}}, got {type(steps).__name__}")
        # a key "²" (a digit to str.isdigit, no int) stays text, which the step check names; one past 2**63
        # is read (int() reads 640 digits under any limit) for the check to say it is too large
        steps = {n if (n := as_count(k, digits=640)) is not None else k: v for k, v in steps.items()}
        as_state = {TrialState.RUNNING: TrialState.FAILED, TrialState.PAUSED: TrialState.PRUNED}.get(state, state)
        error = t.get("error") or ("running when the study was exported" if state is TrialState.RUNNING else None)
        worker = t.get("worker")
        if not worker_fits(worker):
            # a SQL column of 256 characters; PostgreSQL's text refuses NUL (the storage's error named neither)
            raise ValueError(f"worker must be the text export wrote (host:pid, at most {MAX_WORKER} characters, "
                             f"no NUL) or null, got {short_repr(worker)}")
        return known_result(space, t.get("params") or {}, None if as_state is TrialState.FAILED else t.get("value"),
                            state=as_state, intermediate=steps, attrs=t.get("attrs"), error=error,
                            started=t.get("started"), completed=t.get("completed")).replace(worker=worker)  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


#: the longest note a study keeps (characters)
MAX_NOTE = 2000
#: how often a study's settings are read and written again when another writer changed them in between
CONFIG_TRIES = 50


def study_notes(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A study's notes (``config["notes"]``: ``{"time", "text"}`` each, oldest first); one changed
    outside tunesmith into something else than such a list is read as its text."""
    stored = config.get("notes") or []
    return [n if isinstance(n, dict) else {"text": n} for n in (stored if isinstance(stored, list) else [stored])]


def note_text(text: Any) -> str:
    """``text`` stripped, or a ValueError when it is no note (1 to :data:`MAX_NOTE` characters)."""
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > MAX_NOTE:
        raise ValueError(f"a note is a text of 1 to {MAX_NOTE} characters, got {short_repr(text)}")
    return text.strip()


def add_note(storage: Storage, name: str, text: str, when: float | None = None) -> None:
    """Add a note to study ``name``, after the notes it holds; written compare-and-set, so a note
    added by another process at the same moment is kept too."""
    note = _note(text, when)
    _update_config(storage, name, lambda config: {**config, "notes": [*study_notes(config), note]})


def _note(text: str, when: float | None) -> dict[str, Any]:
    return {"time": time.time() if when is None else when, "text": note_text(text)}


def _update_config(storage: Storage, name: str, change: Callable[[dict[str, Any]], dict[str, Any]],
                   study_id: int | None = None) -> bool:
    """Write ``change`` of study ``name``'s settings compare-and-set, reading them again when
    another writer changed them in between (a note, a sampler recorded by another process).
    ``study_id``: only while ``name`` is still that study (else nothing is written: False, though an
    earlier try called ``change``)."""
    cas = "expect" in inspect.signature(storage.set_study_config).parameters  # a custom storage may lack it
    for _ in range(CONFIG_TRIES):
        rec = storage.get_study(name)
        if study_id is not None and rec.study_id != study_id:
            return False
        config = change(dict(rec.config))
        if config == dict(rec.config):  # nothing to write
            return True
        if storage.set_study_config(rec.study_id, config, **({"expect": rec.config} if cas else {})) is not False:
            return True
    raise StorageError(f"study {name!r}: its settings changed {CONFIG_TRIES} times while being written; "
                       "try again")


#: what :func:`change_setting`'s ``change`` returns to remove the setting
DROP = object()


def change_setting(study: Study, key: str, change: Callable[[Any], Any]) -> Any:
    """Set ``key`` of ``study``'s settings to ``change(stored)`` (``stored``: None where none is;
    :data:`DROP`: removed), compare-and-set: ``change`` is called again on what another writer stored
    meanwhile. Returns what is stored after (None: nothing); ``change(None)`` where the storage
    cannot write settings."""
    return change_stored_setting(study.storage, study.name, study._study_id, key, change)


def change_stored_setting(storage: Storage, name: str, study_id: int, key: str, change: Callable[[Any], Any]) -> Any:
    """:func:`change_setting` of study ``study_id`` while it is named ``name``, with no Study opened (a stored
    comparison's run to set aside)."""
    stored: list[Any] = [None]

    def write(config: dict[str, Any]) -> dict[str, Any]:
        value = change(config.get(key))
        stored[0] = None if value is DROP else value
        return {k: v for k, v in config.items() if k != key} if value is DROP else {**config, key: value}

    try:
        # renamed between two tries: what the first stored is no longer there (taken as held, a run was renamed)
        written = _update_config(storage, name, write, study_id)
    except NotImplementedError:
        value = change(None)
        return None if value is DROP else value
    return stored[0] if written else None


#: the line of a study whose sampler changed (TunedSearchCV at verbose=0 drops it)
SAMPLER_RECORDED = "study %r: sampler %s recorded (was %r)"


def record_sampler(study: Study, stored: Mapping[str, Any]) -> None:
    """Store the sampler this process uses when it is not the study's stored one
    (``tunesmith studies`` shows the sampler in use)."""
    now = study.sampler.describe()
    if stored.get("sampler") == now:
        return
    try:
        _update_config(study.storage, study.name,  # another sampler's pick no longer holds; "auto" of
                       lambda config: {**{k: v for k, v in config.items()  # another seed picks as it did
                                          if k != PICKED or now.get("name") == "auto"}, "sampler": now})
    except NotImplementedError:
        return
    was = _name(stored.get("sampler"))
    if was != now.get("name"):  # a new seed or setting of the same sampler is recorded silently
        logger.info(SAMPLER_RECORDED, study.name, now.get("name"), was)


#: the key of a study's settings holding the objective's file, function and code digest, as last run
OBJECTIVE_CODE = "objective_code"


def record_objective_code(study: Study, file: str, function: str, sha256: str,
                          files: Mapping[str, str] | None = None) -> None:
    """Store the objective's file name, function name and code digest (``tunesmith run`` and
    ``worker``), warning when the study was last run with other code or another function of the same
    file: workers on machines whose copies differ rank the results of two objectives as one, which
    nothing else would show. ``files``: each file's digest (the objective's first, then the local modules
    it imports), which lets the warning name the files that differ. What was stored is only shown (one
    line, cut), never opened or run."""
    now: dict[str, Any] = {"file": file, "function": function, "sha256": sha256}
    if files:
        now["files"] = dict(files)
    was: list[Any] = [None]

    def change(stored: Any) -> Any:
        was[0] = stored
        return now

    try:
        change_setting(study, OBJECTIVE_CODE, change)
    except StudyNotFound:  # renamed or deleted meanwhile: said by the run itself
        return
    old = was[0]
    if not isinstance(old, Mapping):
        return
    other_function = isinstance(old.get("function"), str) and old["function"] != function
    if not other_function and _first_covering_modules(study, old, file, function, files):
        return
    if old.get("sha256") != sha256 or other_function:
        then = f"{old.get('file')}:{old['function']}" if isinstance(old.get("function"), str) else f"{old.get('file')}"
        logger.warning(
            "study %r was last run with other code for its objective: %s (sha256 %.12s) then, %s:%s (sha256 %.12s) "
            "here%s; the trials of both are ranked together in this study. Bring this machine's copy up to date, "
            "or, if the change is meant, run the new code as another study (--name NEW)",
            study.name, one_line(then, 200), one_line(str(old.get("sha256"))), file, function, sha256,
            _files_changed(old, files))


def _first_covering_modules(study: Study, old: Mapping[str, Any], file: str, function: str,
                            files: Mapping[str, str] | None) -> bool:
    """Whether the study was last run by a tunesmith whose digest covered the objective's file alone (no
    ``files`` stored) and that file is unchanged (``files``: the objective's first), where this one's
    covers the local modules it imports too: the digests differ, the code may not. Said (info) and True;
    False otherwise. A changed file is warned of as other code (naming it)."""
    if "files" in old or not files or len(files) < 2 or old.get("sha256") != next(iter(files.values())):
        return False
    modules = [name for name in files][1:]
    shown = ", ".join(modules[:5]) + (f" and {len(modules) - 5} more" if len(modules) > 5 else "")
    logger.info(
        "study %r: its objective %s:%s is unchanged since it last ran; the code recorded now also covers the "
        "local modules it imports (%s), which the tunesmith that last ran it did not record, so a change made "
        "to them before now is not seen. From now on a copy whose modules differ is warned of",
        study.name, file, function, one_line(shown, 300))
    return True


def _files_changed(old: Mapping[str, Any], now: Mapping[str, str] | None) -> str:
    """``" (files that differ: a.py, lib/b.py)"``, of the digests stored then (``old``) and those here; ""
    where this run has none, or only the function differs. A record without files (an earlier tunesmith's)
    covered the objective's file alone: that file, where it differs."""
    then = old.get("files")
    if not now:
        return ""
    if not isinstance(then, Mapping):
        objective, digest = next(iter(now.items()))
        if len(now) < 2 or old.get("sha256") == digest:
            return ""
        return f" (files that differ: {one_line(objective, 200)}; the modules it imports were not recorded then)"
    changed = sorted(str(name) for name in set(then) | set(now) if then.get(name) != now.get(name))
    if not changed:
        return ""
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f" (files that differ: {one_line(shown, 300)})"


#: the key of a study's settings holding what sampler "auto" picked, written by the process that picked it
PICKED = "sampler_picked"


def record_pick(study: Study, picked: str) -> None:
    """Store what sampler "auto" picked in this process (``tunesmith show``, the report and
    the dashboard print "auto (bayes)"); written only when the stored pick differs."""
    try:
        rec = study.storage.get_study(study.name)
        if rec.study_id == study._study_id and rec.config.get(PICKED) != picked:  # not renamed meanwhile
            _update_config(study.storage, study.name, lambda config: {**config, PICKED: picked},
                           study._study_id)  # renamed since the read above: not the study made under its name
    except (NotImplementedError, StudyNotFound, StorageError) as exc:  # what is shown: never fails an ask
        logger.debug("study %r: the sampler auto picked is not recorded: %s", study.name, exc)


def sampler_label(config: Mapping[str, Any]) -> str:
    """The sampler a study's settings name, as printed: "auto (bayes)" once a process has
    recorded what "auto" picked, else the name ("auto" of a study stored before picks were)."""
    name = str(_name(config.get("sampler", "")) or "?")
    picked = config.get(PICKED)
    return f"{name} ({picked})" if name == "auto" and isinstance(picked, str) and picked else name


def _name(sampler: Any) -> Any:
    return sampler.get("name") if isinstance(sampler, Mapping) else sampler
