"""Data of the comparison chart: several studies or samplers on one chart, each labelled and
coloured, with the median best-so-far over seeds and a band."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..storage.base import MAX_NAME_LENGTH, worker_gone
from ..trial import Direction, TrialState, best_of
from .records import (
    Chart,
    Series,
    Snapshot,
    group_color,
    legend_label,
    nothing,
    on_log_y,
    short_title,
    snapshot,
)
from .run_lease import (
    BEAT_S,
    GONE,
    GRACE_S,
    HOLDER,
    Beats,
    alive,
    hold_to_set_aside,
    let_go,
    release,
    take,
)


def comparison(
    runs: Mapping[str, Sequence[Any]] | Sequence[Any],
    *,
    direction: Direction | str | None = None,
    band: tuple[float, float] = (0.25, 0.75),
    title: str | None = None,
    log_y: bool = False,
) -> Chart:
    """Best value so far by trial, one colour per group.

    ``runs``: ``{label: [run, run, ...]}`` (one run per seed) or a list of studies (each
    its own group, labelled by its name). A run is a Study, a :class:`Snapshot`, or a
    list of values in trial order (None for a trial without one). Each group draws its
    median over runs and, with two runs or more, the band between the ``band``
    quantiles. ``direction`` defaults to the studies' own.
    """
    groups = _groups(runs)
    direction = Direction.parse(direction or _direction(groups))
    sign = direction.sign()
    series: list[Series] = []
    labels = []
    for i, (label, group) in enumerate(groups.items()):
        curves = [_best_curve(r, sign, label) for r in group]
        curves = [c for c in curves if c.size and np.isfinite(c).any()]
        if not curves:
            continue
        labels.append(label)
        series.extend(_group_series(label, curves, group_color(i), band))
    head = title or "best so far: " + ", ".join(groups)
    if not series:
        return nothing("compare", head, "no run has a complete trial yet")
    # x counts the trials run (1 after the first), not trial numbers (from 0, as the history's axis)
    return on_log_y(Chart("compare", head, "trials run", f"best value so far ({direction.value})", tuple(series),
                          log_y=log_y, int_x=True), "the best so far")


def _groups(runs: Mapping[str, Sequence[Any]] | Sequence[Any]) -> dict[str, list[Any]]:
    if hasattr(runs, "trials") or isinstance(runs, str) or not isinstance(runs, (Mapping, Iterable)):
        raise TypeError(f"comparison takes a list of studies ([study] for one) or {{label: [run, ...]}}, "
                        f"got {type(runs).__name__}")  # a Study: "'Study' object is not iterable"
    if isinstance(runs, Mapping):
        out = {str(k): list(v) for k, v in runs.items()}
    else:
        out = {}
        for r in runs:
            name = snapshot(r).name
            if name in out:
                raise ValueError(f"two studies named {name!r}: pass {{label: [study, ...]}} to label them")
            out[name] = [r]
    if not out or any(not v for v in out.values()):
        raise ValueError("comparison needs at least one group, each with at least one run")
    return out


def _direction(groups: dict[str, list[Any]]) -> Direction:
    """The studies' common direction (minimize for plain lists); studies that disagree are
    refused: the best so far of one would be taken the other way."""
    seen = {snapshot(r).name: snapshot(r).direction for group in groups.values() for r in group
            if not isinstance(r, (list, tuple, np.ndarray))}
    if len(set(seen.values())) > 1:
        which = ", ".join(f"{name} {d.value}" for name, d in seen.items())
        raise ValueError(f"the studies to compare do not share a direction ({which}); pass direction= "
                         "to draw them all one way")
    return next(iter(seen.values()), Direction.MINIMIZE)


def _best_curve(run: Any, sign: float, label: str = "") -> np.ndarray:
    """Best value so far after each trial (NaN before the first value)."""
    if isinstance(run, (list, tuple, np.ndarray)):
        values = [np.nan if v is None else float(v) for v in run]
        if infinite := [i for i, v in enumerate(values) if np.isinf(v)]:  # -inf ended the curve where it stood
            raise ValueError(f"comparison: run of {label!r} has {values[infinite[0]]} at trial {infinite[0] + 1}; "
                             "give finite values (None for a trial without one), as a study records them")
    else:
        s: Snapshot = snapshot(run)
        values = [float(t.value) if t.state is TrialState.COMPLETE else np.nan  # type: ignore[arg-type]
                  for t in s.trials if counted(t)]
    loss = sign * np.array(values, dtype=float)
    best = np.fmin.accumulate(np.where(np.isnan(loss), np.inf, loss)) if loss.size else loss
    return sign * np.where(np.isinf(best), np.nan, best)


def counted(trial: Any) -> bool:
    """Whether the comparison draws ``trial`` as a trial run. Not a lost trial queued again (its copy ran it), nor
    one still running (or left running by a killed process) or waiting: it has not been run yet (counted, a
    resumed run drew one trial more than its budget, and ``--data`` gave a half-run trial a best so far)."""
    return trial.system.requeued_as is None and trial.state not in (TrialState.RUNNING, TrialState.WAITING)


def _group_series(label: str, curves: list[np.ndarray], color: str, band: tuple[float, float]) -> list[Series]:
    n = max(c.size for c in curves)
    m = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        m[i, : c.size] = c
        m[i, c.size:] = c[-1]  # a shorter run keeps its last best
    # from the first trial after which every run has a value: a median over the runs that have one
    # rose when a worse run joined it (a best so far that got worse), and was labelled "of N runs"
    ok = ~np.any(np.isnan(m), axis=0)
    x = (np.arange(n) + 1)[ok].tolist()
    with np.errstate(all="ignore"):
        med = np.nanmedian(m[:, ok], axis=0)
    out = []
    if len(curves) > 1:
        lo, hi = np.nanquantile(m[:, ok], band, axis=0)
        out.append(Series(None, x, med.tolist(), mode="band", low=lo.tolist(), high=hi.tolist(), color=color,
                          opacity=0.2, gid=f"band-{label}"))
    seeds = f"median of {len(curves)} runs" if len(curves) > 1 else "1 run"
    out.append(Series(legend_label(label, f"({seeds})"), x, med.tolist(), mode="steps", color=color, width=2.0,
                      gid=f"median-{label}"))
    # a step line holds each value until the next trial, so the last trial's value (the
    # result compared) would only show as a vertical drop at the right edge: mark it
    out.append(Series(None, x[-1:], med[-1:].tolist(), mode="markers", color=color, gid=f"final-{label}",
                      hover=[f"{short_title(label)}: {med[-1]:.6g} after {x[-1]} trials ({seeds})"]))
    return out


def run_samplers(
    objective: Any,
    space: Any,
    *,
    samplers: Sequence[str] = ("grid", "random", "bayes"),
    budget: int = 30,
    seeds: Sequence[int] = (0, 1, 2),
    direction: Direction | str = Direction.MINIMIZE,
    pruner: Any = None,
    progress: Callable[[str], None] | None = None,
    storage: Any = None,
    prefix: str = "compare",
    new_runs: bool = False,
) -> dict[str, list[Any]]:
    """Run each sampler on ``objective`` for ``budget`` trials with each seed (in memory)
    and return ``{sampler: [study per seed]}`` for :func:`comparison`. ``progress``: called with a line of
    text as each run ends and, within a run, after a trial once :data:`PROGRESS_EVERY` seconds have passed
    since the last line (``tunesmith compare`` prints them where no progress bar is drawn). ``storage`` (a
    URL or a Storage): each run is kept there as study ``{prefix}-{sampler}-seed{seed}`` (:func:`run_name`), and
    a run stored already goes on to ``budget`` finished trials (a stopped comparison resumed, or lengthened). A
    run another process runs now is left to it (this one runs the others, then waits for it); a stored run of
    other code is refused, or with ``new_runs`` renamed aside (:func:`_set_aside`) and run anew."""
    from ..storage import make_storage

    if storage is not None:
        storage = make_storage(storage)

    if isinstance(samplers, str) or isinstance(seeds, (str, int)):  # a name's letters, or "3 seeds"?
        raise TypeError(f"run_samplers takes lists: samplers=['random', 'bayes'] and seeds=[0, 1, 2] (the command "
                        f"line's --seeds 3), got samplers={samplers!r}, seeds={seeds!r}")
    if budget < 1 or not seeds or not samplers:
        raise ValueError("compare needs budget >= 1, at least one seed and at least one sampler")
    runs = [(name, seed) for name in samplers for seed in seeds]
    mark = _check_all(storage, prefix, runs, objective, budget, new_runs) if storage is not None else {}
    def open_run(name: str, seed: int) -> Any:
        return None if storage is None else _open_run(space, storage, run_name(prefix, name, seed), mark,
                                                      direction=direction, sampler=name, seed=seed, pruner=pruner)

    def run_one(run: Any, name: str, seed: int) -> Any:
        if run is not None:  # taken: a compare of other code may have made the run, or set it aside, since the check
            _check_stored(storage, run.name, mark, None)
        return _run_one(run, objective, space, name, seed, budget, direction, pruner, progress)

    done = _each_run(runs, open_run, run_one, lambda study: _run_state(study, budget), progress)
    return {name: [done[name, seed] for seed in seeds] for name in samplers}


def _each_run(runs: list[tuple[str, int]], open_run: Callable[[str, int], Any], run_one: Callable[..., Any],
              state: Callable[[Any], str], progress: Callable[[str], None] | None) -> dict[tuple[str, int], Any]:
    """Run each of ``runs``: a stored run (``open_run``'s, None in memory) another process holds is left to it
    and looked at again once the others are done, every :data:`WAIT_S`."""
    done: dict[tuple[str, int], Any] = {}
    opened: dict[tuple[str, int], Any] = {}  # each stored run opened once, however often it is looked at
    pending, told = list(runs), set()
    while pending:
        for name, seed in list(pending):
            run = opened[name, seed] = opened[name, seed] if (name, seed) in opened else open_run(name, seed)
            if run is not None and (holder := take(run)) is not None:
                if (name, seed) not in told:  # said once; the run is looked at again after the others
                    told.add((name, seed))
                    _say_held(run, holder)
                continue
            started = time.monotonic()
            try:
                done[name, seed] = run_one(run, name, seed)
            finally:
                if run is not None:
                    release(run)
            pending.remove((name, seed))
            if progress is not None:
                progress(f"{name}, seed {seed}: done, {state(done[name, seed])} (run {len(done)} of {len(runs)}, "
                         f"{time.monotonic() - started:.1f} s)")
        if pending:
            time.sleep(WAIT_S)
    return done


def _check_all(storage: Any, prefix: str, runs: list[tuple[str, int]], objective: Any, budget: int,
               new_runs: bool) -> dict[str, Any]:
    """The objective's mark, every stored run checked (:func:`_check_stored`) before any runs (a refusal after
    an hour of runs), and with ``new_runs`` those of other code set aside."""
    mark = _mark(objective)
    for name, seed in runs:
        _check_stored(storage, run_name(prefix, name, seed), mark, budget, new_runs=new_runs)
    for name, seed in runs if new_runs else ():
        _set_aside(storage, run_name(prefix, name, seed), mark)
    return mark


#: seconds between two looks at a stored run that another compare runs now
WAIT_S = 1.0


def _run_one(run: Any, objective: Any, space: Any, name: str, seed: int, budget: int, direction: Any, pruner: Any,
             progress: Callable[[str], None] | None) -> Any:
    """Run ``name`` with ``seed`` to ``budget`` results: stored run ``run`` (taken by this process) or, with
    None, a study in memory."""
    from ..study import Study

    if run is None:
        study, left = Study(space, direction=direction, sampler=name, seed=seed, pruner=pruner,
                            name=f"{name}-seed{seed}"), budget
    else:
        _end_lost(run)
        run.reap_lost()  # another machine's, by the run's heartbeat rule: at its budget, no trial is asked to
        _count_copies(run)
        study, left = run, budget - _finished(run, budget)
    said = [time.monotonic()]

    def say(study: Any, record: Any) -> None:
        if progress is not None and time.monotonic() - said[0] >= PROGRESS_EVERY:
            said[0] = time.monotonic()
            progress(f"{name}, seed {seed}: {_run_state(study, budget)}")

    if left > 0:
        study.optimize(objective, n_trials=left, callbacks=[say] if run is None else [say, Beats()])
    return study


def _count_copies(run: Any) -> None:
    """Make each waiting copy of a lost run one of this call's ``n_trials`` (the lost run's unit given back, as
    its own call would): a run goes to ``budget`` results, and a copy run free of any unit was one result more
    than the budget (the next compare then refused the run as longer than its budget)."""
    for t in run.trials:
        if t.state is TrialState.FAILED:
            run.refunds(t)


def _say_held(run: Any, holder: str) -> None:
    logging.getLogger("tunesmith").warning(
        "run %r is being run by another compare (%r) now: this one goes on with its other runs, then waits for "
        "it to end there", run.name, holder)


#: the study setting a stored run of :func:`run_samplers` is marked with: ``{"objective": "module:function",
#: "code": digest, "files": {path: digest}}`` (the digest of the objective's file and the local modules it imports,
#: where it has a file, and each file's, to name those changed)
RUN_KEY = "compare_run"


def _mark(objective: Any) -> dict[str, Any]:
    from ..code import objective_code

    code = objective_code(getattr(objective, "func", objective))
    return {"objective": objective_name(objective), **({"code": code[2], "files": code[3]} if code is not None else {})}


def _open_run(space: Any, storage: Any, name: str, mark: dict[str, Any], **options: Any) -> Any:
    """Run ``name`` in ``storage``, opened or made, marked with its objective (:func:`_check_stored` refused a
    study of that name made otherwise before any run began: its trials would be drawn as this comparison's). Its
    trials beat: one of another machine with no heartbeat for :data:`~.run_lease.GRACE_S` is lost, failed and
    queued again when the run goes on (the study's own rule)."""
    from ..study import Study
    from ..study.manage import change_setting

    study = Study(space, storage=storage, name=name, _settings={RUN_KEY: mark}, heartbeat_interval=BEAT_S,
                  grace_period=GRACE_S, requeue_failed=True, **options)
    if "code" in mark:  # a run an earlier tunesmith stored without the digest takes this one's (not its files
        # alone: they would name other files than the stored digest's as changed)
        change_setting(study, RUN_KEY, lambda stored: {**mark, **stored}
                       if isinstance(stored, Mapping) and "code" not in stored else stored)
    beats = study.heartbeat_config.to_dict()  # stored where an earlier tunesmith stored none: said once, not each run
    change_setting(study, "heartbeat", lambda stored: stored if isinstance(stored, Mapping) and stored.get("interval")
                   else beats)
    return study


def _end_lost(study: Any) -> None:
    """Fail and queue again each trial of ``study`` (a run this process took) that a killed compare left running
    on this machine: its configuration runs once more, as the uninterrupted run ran it."""
    for t in study.trials:
        if t.state is TrialState.RUNNING and worker_gone(t.worker):
            study.fail_trial(t.number, "its compare's process is gone (killed before the trial ended)",
                             requeue=t.system.retry_of is None)


def _check_stored(storage: Any, name: str, mark: dict[str, Any], budget: int | None, *,
                  new_runs: bool = False) -> None:
    """Refuse stored run ``name`` where it is another objective's, no compare's, of other code (unless
    ``new_runs``), or (with ``budget``) longer."""
    from ..exceptions import StudyNotFound

    try:
        record = storage.get_study(name)
    except StudyNotFound:
        return
    stored = record.config.get(RUN_KEY)
    if not isinstance(stored, Mapping) or stored.get("objective") != mark["objective"]:
        made = ("was not made by a compare" if stored is None else
                f"holds a compare of objective {_said(stored)}, not {mark['objective']!r}")
        raise ValueError(f"study {name!r} in {storage.display_url} {made}: going on with it would draw its trials "
                         "as this comparison's; give the study file another name (prefix= in Python), or pass "
                         "another storage")
    if _other_code(stored, mark):
        if new_runs:
            _not_held(storage, record, record.config.get(HOLDER))
            _aside_name(storage, record)  # refused before any run is set aside
            return
        raise ValueError(f"study {name!r} in {storage.display_url} holds runs of {mark['objective']!r} with other code "
                         f"than this ({_changed(stored, mark)}): going on would draw both codes' trials as one run; "
                         "pass --new-runs (new_runs=True in Python) to keep those runs under another name and start "
                         f"new ones, or pass another storage{_in_script(mark)}")
    if budget is not None:
        _over_budget(name, storage, len(_results_of(storage.get_trials(record.study_id))), budget)


def _not_held(storage: Any, record: Any, holder: Any) -> None:
    """Refuse to set stored run ``record`` aside while a live compare runs it (``holder``, its setting: that one's
    trials would go on into the run set aside, and it would stop as if taken over)."""
    # one setting it aside now (another --new-runs) is no compare running it
    if isinstance(holder, Mapping) and not holder.get("aside") and alive(storage, record.study_id, holder):
        raise ValueError(f"study {record.name!r} in {storage.display_url} is being run now by another compare "
                         f"({holder.get('worker')!r}), with the code it was made with: --new-runs sets a run aside "
                         "once no compare runs it; let that one end (or stop it), then run this again")


def _changed(stored: Mapping[str, Any], mark: Mapping[str, Any]) -> str:
    """Which files of the objective's code differ from a stored run's (a run an earlier tunesmith stored holds one
    digest of them all: not told which)."""
    files, now = stored.get("files"), mark.get("files", {})
    if not isinstance(files, Mapping):
        return "its file or a local module it imports was changed since"
    changed = sorted({*files, *now} - {f for f in files if files[f] == now.get(f)}, key=str)
    return "changed since: " + ", ".join(f"{f!r}" + (" (gone)" if f not in now else " (new)" if f not in files else "") for f in changed[:5]) + \
        (f" and {len(changed) - 5} more" if len(changed) > 5 else "")


def _in_script(mark: Mapping[str, Any]) -> str:
    """What to do where the objective is defined in the script that runs the comparison: its digest is of that
    whole file (the function's own code and what it calls cannot be told apart from the rest, as a module-level
    value it reads), so each edit of the script is other code."""
    if not str(mark.get("objective")).startswith("__main__:"):
        return ""
    return (". The objective is defined in the script that runs this comparison, so every edit of that script "
            "(another budget=, a print) counts as other code: move the objective, and what it calls, into a module "
            "of its own and import it (then only edits of that module and the local modules it imports count; the "
            "runs stored so far are then another objective's: pass another prefix= for the new ones)")


def _other_code(stored: Mapping[str, Any], mark: Mapping[str, Any]) -> bool:
    """Whether a stored run's code digest is another than ``mark``'s (none stored, or none now: not told)."""
    return "code" in stored and "code" in mark and stored["code"] != mark["code"]


def _set_aside(storage: Any, name: str, mark: dict[str, Any]) -> None:
    """Rename stored run ``name`` of other code than ``mark``'s to ``NAME-before-YYYYmmdd-HHMMSS`` (its creation
    time; ``-2``, ... where that is taken), kept to look at, so that the run starts anew under its name. Held while
    renamed (:func:`~.run_lease.hold_to_set_aside`): of two ``--new-runs`` at once, one renames it and the other
    waits, then finds the new run (two renamed the new run of one, or failed on a name gone or taken)."""
    while (record := _to_set_aside(storage, name, mark)) is not None:
        holder = hold_to_set_aside(storage, name, record.study_id)
        if holder is None:
            break
        if holder != GONE:  # a compare of the old code may have taken it since the check
            _not_held(storage, record, holder)
        time.sleep(WAIT_S)
    else:
        return
    try:  # let go whatever ends it before the rename (Ctrl-C, a storage error): a live holder is waited for
        new = _aside_name(storage, record)
        storage.rename_study(name, new)
    except BaseException:
        let_go(storage, name, record.study_id)
        raise
    let_go(storage, new, record.study_id)
    logging.getLogger("tunesmith").warning("run %r of the objective's earlier code kept as %r", name, new)


def _to_set_aside(storage: Any, name: str, mark: dict[str, Any]) -> Any:
    """Stored run ``name``'s record where it holds other code than ``mark``'s, else None (none of that name, or
    another compare's ``--new-runs`` set it aside and made it anew)."""
    from ..exceptions import StudyNotFound

    try:
        record = storage.get_study(name)
    except StudyNotFound:
        return None
    return record if _other_code(record.config.get(RUN_KEY), mark) else None


def _aside_name(storage: Any, record: Any) -> str:
    """The name stored run ``record`` is set aside as; a ValueError where it is longer than a study's may be (a
    long ``prefix=``: the storage's refusal named neither the run nor how to go on)."""
    base = f"{record.name}-before-{_stamp(record.created)}"
    taken = {s.name for s in storage.list_studies()}
    new = next(n for n in (base, *(f"{base}-{k}" for k in range(2, len(taken) + 3))) if n not in taken)
    if len(new) > MAX_NAME_LENGTH:
        raise ValueError(f"--new-runs cannot keep run {record.name[:40]!r}... of the objective's earlier code aside: "
                         f"its name and '-before-<time>' make {len(new)} characters, more than a study name's "
                         f"{MAX_NAME_LENGTH}; pass a shorter prefix, or rename or delete that run first (tunesmith "
                         "rename, tunesmith delete)")
    return new


def _stamp(created: float) -> str:
    """``YYYYmmdd-HHMMSS`` of a stored run's creation time, or of the time now where no calendar holds that one (a
    row changed by hand: 1e20 raised OverflowError, which ended ``compare --new-runs`` with a traceback)."""
    try:
        return time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
    except (OverflowError, OSError, ValueError):
        return time.strftime("%Y%m%d-%H%M%S")


def objective_name(objective: Any) -> str:
    """``module:function`` of an objective (a ``functools.partial``'s function's), as a stored run names it. A
    study file's script by its file's stem: the module it is loaded as is another name where a module of that stem
    was imported already or is installed, so one process could name it otherwise than the next and refuse its own
    runs."""
    func = getattr(objective, "func", objective)
    module = getattr(func, "__module__", None)
    script = getattr(sys.modules.get(str(module)), "__dict__", {}).get("__tunesmith_file__")
    return f"{Path(script).stem if isinstance(script, str) else module}:{getattr(func, '__qualname__', type(func).__name__)}"


def _said(stored: Any) -> str:
    """A stored run's objective as a message names it (a setting changed by hand: its type)."""
    got = stored.get("objective") if isinstance(stored, Mapping) else None
    return repr(got) if isinstance(got, str) else f"{type(stored).__name__} data"


def _results(study: Any) -> list[Any]:
    """A run's trials that are its results: finished, and not a lost trial queued again (its copy is)."""
    return _results_of(study.trials)


def _results_of(trials: Iterable[Any]) -> list[Any]:
    return [t for t in trials if t.state.is_finished and t.system.requeued_as is None]


def _finished(study: Any, budget: int) -> int:
    """How many trials a stored run has finished: at most ``budget``, or the comparison would draw runs of
    another budget than its title's (a run stored by a longer comparison is refused, saying what to pass)."""
    done = len(_results(study))
    _over_budget(study.name, study.storage, done, budget)
    return done


def _over_budget(name: str, storage: Any, done: int, budget: int) -> None:
    if done > budget:
        raise ValueError(f"study {name!r} in {storage.display_url} holds {done} finished trials, more "
                         f"than the budget of {budget}: pass a budget of {done} or more to go on with its runs, or "
                         "another storage (or prefix) for a shorter comparison")


def run_name(prefix: str, sampler: str, seed: int) -> str:
    """The study a stored run of :func:`run_samplers` is kept as: ``svm-random-seed0``."""
    return f"{prefix}-{sampler}-seed{seed}"


#: seconds between two progress lines within one run of :func:`run_samplers` (one line at each run's end)
PROGRESS_EVERY = 30.0


def _run_state(study: Any, budget: int) -> str:
    """"12/30 trials, best 0.0123" (or "none complete") for a progress line."""
    best = best_of(study.trials, study.direction)
    return (f"{len(_results(study))}/{budget} trials, "
            + (f"best {best.value:.6g}" if best is not None else "none complete"))
