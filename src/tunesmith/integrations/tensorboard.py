"""TensorBoard: a study's trials in the HParams dashboard, with their learning curves.

    cb = TensorBoardCallback("runs/my-study")
    study.optimize(objective, n_trials=50, callbacks=[cb])     # or: write_hparams(study, "runs/x")

Then ``tensorboard --logdir runs/my-study``: the HParams tab lists one session per finished
trial (its parameters and ``trial_state``, its value as the metric ``value``), the Scalars tab the
reports as ``intermediate``. A trial still paused when ``optimize`` ends is written as the run
``trial-<n>-paused`` (state ``paused``), replaced by ``trial-<n>`` once it finishes. Written with tensorboard's own writer; TensorFlow is not needed.
Needs ``tunesmith[tensorboard]``.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import UntrustedPathError
from ..paths import every_user_may_add, refuse_foreign_link
from ..space import Categorical, Fixed, Float, Int, Param, Space
from ..trial import FrozenTrial, TrialState
from ._common import require

require("tensorboard", extra="tensorboard", what="tunesmith.integrations.tensorboard")
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins.hparams import summary_v2 as hp  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402

STATE = "trial_state"


class TensorBoardCallback:
    """``study.optimize(..., callbacks=[TensorBoardCallback(log_dir)])``: each finished trial
    becomes a run ``<log_dir>/trial-<n>`` with its HParams session and scalars.

    Args:
        log_dir: the folder to point ``tensorboard --logdir`` at (one per study).
        metric_name: the name of the objective's value in TensorBoard.
    """

    def __init__(self, log_dir: str | Path, *, metric_name: str = "value") -> None:
        if not isinstance(metric_name, str) or not metric_name or metric_name == "intermediate":
            raise ValueError(f"TensorBoardCallback: metric_name must be a non-empty string other than 'intermediate', got {metric_name!r}")
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"TensorBoardCallback: log_dir must be a folder (a str or a Path), got {type(log_dir).__name__} {log_dir!r}")
        self.log_dir, self.metric_name = Path(log_dir).expanduser(), metric_name  # "~/runs/x" as a shell reads it
        _check_log_dir(self.log_dir)

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        """Write ``trial`` once it is finished (complete, pruned or failed); a paused trial is
        written when ``optimize`` ends (:meth:`on_optimize_end`), as it may be resumed before."""
        if not trial.state.is_finished:
            return
        folder = self.log_dir / f"trial-{trial.number}"
        if _check_own(folder):
            return  # written before (a study reopened, or write_hparams called again)
        self._write_config(study.space)
        _write(folder, _events(trial, study.space, self.metric_name))
        paused = self.log_dir / f"trial-{trial.number}-paused"
        if _check_own(paused):
            shutil.rmtree(paused, ignore_errors=True)  # replaced

    def on_optimize_end(self, study: Any, error: BaseException | None) -> None:
        """Write each trial left paused as the run ``trial-<n>-paused`` (again, with its new
        reports, after a later ``optimize``): TensorBoard reads a run's state from its first
        event, so the run of a paused trial is replaced, not updated, when the trial finishes."""
        for trial in study.trials:
            if trial.state is TrialState.PAUSED and not _check_own(self.log_dir / f"trial-{trial.number}"):
                folder = self.log_dir / f"trial-{trial.number}-paused"
                if _check_own(folder):
                    shutil.rmtree(folder, ignore_errors=True)
                self._write_config(study.space)
                _write(folder, _events(trial, study.space, self.metric_name))

    def _write_config(self, space: Space) -> None:
        if any(self.log_dir.glob("events.out.tfevents.*")):
            return
        metrics = [hp.Metric(self.metric_name), hp.Metric("intermediate")]
        hparams = [_hparam(name, space[name]) for name in space]
        if STATE not in space:
            hparams.append(hp.HParam(STATE, hp.Discrete(["complete", "pruned", "failed", "paused"])))
        config = hp.hparams_config_pb(hparams, metrics)
        _write(self.log_dir, [event_pb2.Event(wall_time=time.time(), summary=config)], _check_log_dir)


def write_hparams(study: Any, log_dir: str | Path, *, metric_name: str = "value") -> Path:
    """Write every finished trial of ``study`` not written yet under ``log_dir``, and each paused
    one as ``trial-<n>-paused``; returns ``log_dir``."""
    cb = TensorBoardCallback(log_dir, metric_name=metric_name)
    if not hasattr(study, "trials"):  # a study's name: "'str' object has no attribute 'trials'"
        raise TypeError(f"write_hparams takes a Study (ts.load_study(name, storage) opens one by name), got {study!r}")
    for trial in study.trials:
        cb(study, trial)
    cb.on_optimize_end(study, None)
    return cb.log_dir


def _hparam(name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return hp.HParam(name, hp.RealInterval(float(param.low), float(param.high)))
    if isinstance(param, Int):
        return hp.HParam(name, hp.IntInterval(int(param.low), int(param.high)))
    if isinstance(param, (Categorical, Fixed)):
        choices = list(param.choices) if isinstance(param, Categorical) else [param.value]
        if all(isinstance(c, (int, float, str, bool)) for c in choices) and len({type(c) for c in choices}) == 1:
            return hp.HParam(name, hp.Discrete(choices))
        numbers = [float(c) for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if len(numbers) == len(choices):
            return hp.HParam(name, hp.Discrete(numbers))  # 1 and 0.5: numbers
    return hp.HParam(name)  # mixed or other values: shown as text


def _events(trial: FrozenTrial, space: Space, metric_name: str) -> list[Any]:
    params = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in trial.params.items()}
    params.setdefault(STATE, trial.state.value)
    started = trial.started or time.time()
    session = hp.hparams_pb(params, trial_id=f"trial-{trial.number}", start_time_secs=started)
    events = [event_pb2.Event(wall_time=started, summary=session)]
    for step, value in sorted(trial.intermediate.items()):
        events.append(event_pb2.Event(wall_time=started, step=step, summary=_scalar("intermediate", value)))
    if trial.value is not None:
        last = max(trial.intermediate, default=0)
        events.append(event_pb2.Event(wall_time=trial.completed or started, step=last,
                                      summary=_scalar(metric_name, trial.value)))  # fmt: skip
    return events


def _scalar(tag: str, value: float) -> Any:
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])


#: what a refused log or run folder's message ends with
_FIX = "give the callback (or write_hparams) a log folder of your own"


def _check_log_dir(folder: Path) -> None:
    """An UntrustedPathError (a PermissionError) where every user may write ``folder`` without the sticky bit
    (as /tmp has), or with it in a folder of another user's (root aside: the folder's owner may replace any
    entry): any of them could replace the runs written there; or where a link of another user's is in its
    place (they chose where the runs go). A folder a team shares (group-writable, a teammate's) is taken, but
    not one of the user's primary group where every user shares it (``users``: :func:`paths.every_user_may_add`)."""
    try:
        refuse_foreign_link(folder, folder.lstat(), "TensorBoard's log folder", _FIX)
        st = folder.stat()
    except FileNotFoundError:
        return
    why = every_user_may_add(st)  # None on Windows: no owner, every folder reads 0777
    if why is None:
        return
    if not st.st_mode & stat.S_ISVTX:
        mode = f"(mode {stat.S_IMODE(st.st_mode):o}, without the sticky bit /tmp has), who"
        raise UntrustedPathError(f"TensorBoard's log folder {folder} " + (
            f"can be written by every user {mode}" if st.st_mode & stat.S_IWOTH
            else f"{why}, without the sticky bit /tmp has: any of them") + f" could replace its runs; {_FIX}")
    if st.st_uid not in (0, os.getuid()):
        raise UntrustedPathError(f"TensorBoard's log folder {folder} {why} and is owned by another user (uid "
                              f"{st.st_uid}), who may replace its runs, sticky bit or not; {_FIX}")


def _check_own(folder: Path) -> bool:
    """Whether the run folder ``folder`` exists; an UntrustedPathError (a PermissionError) where it is
    another user's link (root aside), or another user's folder in a log folder every user may write (sticky, as
    /tmp). There another user made ``trial-3`` first: that trial was never written and TensorBoard showed
    their run as it, or made ``trial-3-paused`` a link: the run was written into the folder it names. In a
    team's folder (group-writable) a teammate's run is taken, as one of this user's: they wrote it."""
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return False
    refuse_foreign_link(folder, st, "TensorBoard's run folder", _FIX)
    if every_user_may_add(folder.parent.stat()) is None:
        return True
    owner = folder.stat().st_uid
    if owner not in (0, os.getuid()):
        raise UntrustedPathError(f"TensorBoard's run folder {folder} is owned by another user (uid {owner}), who "
                              f"may have put a run of theirs there; {_FIX}")
    return True


def _write(folder: Path, events: list[Any], check: Callable[[Path], object] = _check_own) -> None:
    """``events`` in a new event file in ``folder`` (made if need be), once ``check`` (of a run folder; of
    the log folder for its config) has taken it: made by another user between the look and the mkdir."""
    folder.mkdir(parents=True, exist_ok=True)
    check(folder)
    writer = EventFileWriter(str(folder))
    for event in events:
        writer.add_event(event)
    writer.close()
