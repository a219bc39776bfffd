"""PyTorch Lightning: a callback that reports a monitored metric at each validation and
prunes or pauses the trial through the study's pruner.

    cb = PruningCallback(trial, monitor="val_loss")
    trainer = L.Trainer(max_epochs=20, callbacks=[cb])
    trainer.fit(model, datamodule, ckpt_path=cb.resume_from, weights_only=True)  # None unless resumed

Validation after epoch ``e`` (counted from 1) is step ``e`` (``step="global_step"``: the
optimizer step), so a pruner's ``max_resource`` is ``max_epochs``. When the pruner pauses the
trial, the callback saves Lightning's own checkpoint (``trainer.save_checkpoint``), stores its
path as ``trial.attrs["checkpoint"]`` and raises :class:`tunesmith.TrialPaused`; the resumed
trial's ``cb.resume_from`` is that path (``trial.resume_from``, checked to lie in the
callback's checkpoint folder), and ``fit(..., ckpt_path=...)`` continues from it.
Under DDP and other multi-process strategies only rank 0 reports and asks the pruner; its
decision is broadcast so every rank stops at the same validation. Needs
``tunesmith[lightning]``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from ..exceptions import TrialPaused, TrialPruned
from ..pruners import Decision
from ..study.trial import checkpoint_to_resume
from ._common import (
    check_trial,
    did_you_mean_metric,
    moved_checkpoint,
    other_framework,
    refuse_fold_racing,
    reported_before_a_hold,
    require,
    warn_direction,
)

L = require("lightning.pytorch", extra="lightning", what="tunesmith.integrations.lightning")
_Callback: Any = L.Callback
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher  # noqa: E402
from lightning.pytorch.trainer.call import _get_sigkill_signal  # noqa: E402

STEPS = ("epoch", "global_step")
#: beside a paused trial's ``trial-<n>.ckpt``: ``trial-<n>.study``, naming the study that wrote it
MARK = ".study"


class PruningCallback(_Callback):
    """Reports ``monitor`` to the trial at each validation; prunes or pauses through the study.

    Args:
        trial: the running :class:`tunesmith.Trial` (on ranks other than 0 under DDP it may
            be None: they never touch it).
        monitor: a metric the LightningModule logs in validation (``self.log("val_loss", ...)``).
            When its name says the other direction than the study's (``val_loss`` maximized,
            ``val_acc`` minimized) a UserWarning says so, once per study and metric.
        step: "epoch" (default: epoch ``e`` is step ``e``, counted from 1) or "global_step"
            (the optimizer step; use it when validating several times per epoch).
        checkpoint_dir: where a paused trial's checkpoint goes (``<dir>/trial-<n>.ckpt``);
            default: ``<temp folder>/tunesmith-lightning/<study name>-<hash of the name and
            study.copy_id>`` (a study an earlier tunesmith made has no id: ``<study name>``, a name that is
            not a plain folder name, such as ``../x``, made one, with a hash). Every worker that may
            resume the trial must see this folder.
    """

    def __init__(
        self, trial: Any, monitor: str = "val_loss", *, step: str = "epoch",
        checkpoint_dir: str | Path | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if step not in STEPS:
            raise ValueError(f"PruningCallback: step must be one of {STEPS}, got {step!r}")
        if not isinstance(monitor, str) or not monitor:  # 5: "'int' object has no attribute 'lower'"
            raise TypeError(f"PruningCallback: monitor is the name of a logged metric (e.g. 'val_loss'), got {monitor!r}")
        if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(f"PruningCallback: checkpoint_dir must be a folder (a str or a Path), got {checkpoint_dir!r}")
        self.trial, self.monitor, self.step = trial, monitor, step
        if trial is not None:
            check_trial(trial, "lightning PruningCallback")
            refuse_fold_racing(trial, "lightning PruningCallback", step.replace("global_", "training "))
            warn_direction(trial, monitor, what="lightning PruningCallback")
        if checkpoint_dir is None and trial is not None:
            checkpoint_dir = _study_folder(Path(tempfile.gettempdir()) / "tunesmith-lightning", str(trial.study.name),
                                           getattr(trial.study, "copy_id", None))
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir).expanduser()
        self._reported: int | None = None  # the last step reported (step="epoch": the epoch)
        self._before: Any = None  # the monitored metric's value before this validation
        self._stale_warned = False
        self._missing: str | None = None  # why the metric was never found (warned once); None once it was
        self._found = False  # the metric was in a validation's metrics
        self._sigint: Any = None  # the SIGINT handler as the fit started, put back after a Ctrl-C (on_exception)

    def __getattr__(self, name: str) -> Any:  # a Transformers Trainer calls on_init_end, on_train_begin...
        raise other_framework(self, name, mine="tunesmith.integrations.lightning, for a Lightning Trainer",
                              use="tunesmith.integrations.transformers.PruningCallback(trial, metric='eval_loss') "
                                  "with a transformers Trainer")  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        """Refused with the fix while it holds a trial: a strategy that starts its ranks by pickling the Trainer
        ("ddp_spawn", "ddp_notebook" where fork is not there) failed with "cannot pickle '_thread.RLock' object"
        (the trial's storage); a copy of the trial in each rank would report into copies anyway."""
        if self.trial is not None:
            raise TypeError(
                f"PruningCallback holds trial {self.trial.number}, which cannot be pickled into the processes a "
                "strategy such as 'ddp_spawn' starts; train one process per trial (devices=1; one trial per GPU: "
                "study.optimize(..., gpus=[0, 1])), or on CPU fork the ranks (strategy='ddp_fork') with "
                "study.ask() and study.tell() (docs/integrations.md, 'DDP and other strategies')"
            )
        return self.__dict__

    def __copy__(self) -> PruningCallback:
        """A shallow copy sharing the trial, as before :meth:`__getstate__` (which copy.copy calls) refused it."""
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    @property
    def resume_from(self) -> str | None:
        """The checkpoint a resumed trial continues from (for ``fit(ckpt_path=...)``), else None.

        A path from the storage is data: it must lie in this callback's checkpoint folder,
        else a ValueError (load it with ``fit(..., weights_only=True)``)."""
        path = None if self.trial is None else checkpoint_to_resume(self.trial, missing=False)
        if path is None or self.checkpoint_dir is None:
            return None
        folder = self.checkpoint_dir.resolve()
        path = moved_checkpoint(path, folder)
        if folder not in Path(path).resolve().parents:
            raise ValueError(
                f"trial {self.trial.number}: its checkpoint {path} is not in the callback's folder "
                f"{folder}; give the resumed trial the checkpoint_dir it was paused with"
            )
        own = folder / f"trial-{self.trial.number}.ckpt"
        if Path(path).resolve() != own:  # another trial's file: it would go on from that trial's weights
            raise ValueError(
                f"trial {self.trial.number}: its checkpoint {path} is not the one it was paused with ({own}), "
                "where each trial's pause saves its own; a path in the database may have been changed"
            )
        from ..train.checkpoint import check_dir
        from ..train.retention import check_mark

        check_dir(folder)  # a folder another user owns or can write: its checkpoint may be planted
        check_mark(self.trial, own.with_suffix(MARK), own, "a checkpoint_dir (by default <temp>/tunesmith-lightning/<name>)",
                   "Give each study its own checkpoint_dir (PruningCallback(trial, checkpoint_dir=...))")
        return str(path)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and trainer.world_size > 1:
            self._check_one_trial(trainer)

    def _check_one_trial(self, trainer: Any) -> None:
        """A ValueError on every rank when a rank other than 0 holds a trial other than rank 0's: Lightning's
        default strategy for ``devices=2`` ("ddp") starts the other ranks by running the script again (torchrun
        runs it once per rank), so each rank's ``study.optimize`` made trials of its own, which trained together
        and were recorded apart: 4 trials for ``n_trials=2``, half of them without reports. Every rank stops
        its study, so that no rank goes on to a next fit that waits for the others. A trial is told by its study's
        name, id (``copy_id``) and number: in-memory studies of one name, one per rank, each numbered theirs from 0,
        and passed for one trial while each rank sampled its own parameters."""
        study = None if self.trial is None else self.trial.study
        mine = None if study is None else (str(study.name), getattr(study, "copy_id", None), self.trial.number)
        zero = trainer.strategy.broadcast(mine, src=0)
        if not trainer.strategy.reduce_boolean_decision(mine is not None and mine != zero, all=False):
            return
        if self.trial is not None:
            self.trial.study.stop()
        strategy = type(trainer.strategy).__name__
        raise ValueError(
            f"PruningCallback: the ranks of this {trainer.world_size}-process fit ({strategy}) hold trials "
            f"of their own (this is rank {trainer.global_rank}, {_named(mine)}; rank 0's: {_named(zero)}): the strategy started "
            "the other ranks by running your script again (torchrun runs it once per rank), so each rank's study made "
            "trials of its own; the study is stopped. Tune with one process per trial (devices=1; one trial per GPU: "
            "study.optimize(..., gpus=[0, 1])), or run the study on rank 0 only and give the other ranks "
            "PruningCallback(None) (docs/integrations.md, 'DDP and other strategies')"
        )

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._sigint = signal.getsignal(signal.SIGINT)
        if self.trial is not None and checkpoint_to_resume(self.trial, missing=False) is not None and trainer.ckpt_path is None:
            raise ValueError(
                f"PruningCallback: trial {self.trial.number} was paused and is resumed, but trainer.fit "
                "starts from scratch; pass its checkpoint: trainer.fit(model, ..., ckpt_path=cb.resume_from, "
                "weights_only=True)"
            )

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._missing is not None and not self._found:  # after every validation: misspelt, or never logged
            if self.trial is not None:  # every trial would train to its end and fail alike
                self.trial.study.stop()
            raise ValueError(f"{self._missing}; it was in no validation of this fit, so the study is stopped "
                             "(every trial would train to its end and fail alike)")
        if self._reported is None and self.trial is not None:
            warnings.warn(
                f"PruningCallback: no validation ran in this fit, so {self.monitor!r} was never reported "
                f"and trial {self.trial.number} could not be pruned; give trainer.fit validation data "
                "(val_dataloaders= or a datamodule's val_dataloader) and the module a validation_step, "
                "with limit_val_batches above 0",
                UserWarning, stacklevel=2,
            )  # fmt: skip

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """A Ctrl-C in the fit goes on as one: Lightning would ignore SIGINT from then on and end the process
        (``sys.exit(1)``), so the study recorded the trial as failed by ``SystemExit``, not paused where it could
        go on, and raised out of ``optimize``; a notebook's next Ctrl-C did nothing. Lightning's shutdown is
        finished first (:func:`_shut_down`), the handler the fit began with put back and the KeyboardInterrupt
        raised, as the study handles a Ctrl-C."""
        if not isinstance(exception, KeyboardInterrupt):
            return
        try:
            _shut_down(self, trainer, pl_module, exception)
        finally:
            if self._sigint is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, self._sigint)
        raise exception

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._before = trainer.callback_metrics.get(self.monitor)  # kept by Lightning when not logged again

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return  # trainer.validate() after fit is not a step of the training
        step = trainer.current_epoch + 1 if self.step == "epoch" else trainer.global_step
        if self._reported == step and self.step == "epoch":
            raise ValueError(
                f"PruningCallback: a second validation in epoch {step} (val_check_interval="
                f"{trainer.val_check_interval!r}); with step='epoch' each epoch is one step, so pass "
                "step='global_step' to report every validation, or validate once per epoch"
            )
        if self._reported == step:
            raise ValueError(
                f"PruningCallback: a second validation at optimizer step {step} (accumulate_grad_batches="
                f"{trainer.accumulate_grad_batches}); validate at most once per optimizer step "
                "(val_check_interval a multiple of accumulate_grad_batches)"
            )
        self._reported = step
        decision = self._decide(trainer, step) if trainer.is_global_zero else Decision.CONTINUE
        decision = Decision(trainer.strategy.broadcast(decision.value, src=0))
        if decision is Decision.CONTINUE:
            return
        if decision is Decision.PAUSE:
            from ..train.checkpoint import secure_dir
            from ..train.retention import mark

            path = self._checkpoint_path(trainer)
            secure_dir(path.parent)  # 0700; before, Lightning made <temp>/tunesmith-lightning/<study> readable by all
            if trainer.is_global_zero:  # first: a checkpoint never passes for another study's
                mark(self.trial, path.with_suffix(MARK))
            trainer.save_checkpoint(path, weights_only=False)  # all the state; every rank calls it, rank 0 writes
            if trainer.is_global_zero:  # absolute: a worker in another working folder finds it
                self.trial.set_attr("checkpoint", str(path.absolute()))
            raise TrialPaused(f"paused at step {step}")
        raise TrialPruned(f"pruned at step {step}")

    def _decide(self, trainer: Any, step: int) -> Decision:
        if self.trial is None:
            raise ValueError("PruningCallback: rank 0 needs the trial; pass it (trial=None only on other ranks)")
        if reported_before_a_hold(self.trial, step):
            return Decision.CONTINUE  # trained again from the pause's checkpoint after its worker died
        value = self._value(trainer)
        if value is None:
            return Decision.CONTINUE  # not logged in this validation: nothing to report
        if not math.isfinite(value):  # diverged: it cannot recover
            self.trial.set_attr("diverged_at", step)
            return Decision.PRUNE
        self.trial.report(value, step)
        decision: Decision = self.trial.decision()
        return decision

    def _value(self, trainer: Any) -> float | None:
        """The monitored metric as this validation logged it; None (warned once) when it was not
        logged in this validation, whose metrics still hold an earlier value, or when it was not logged
        yet (a metric logged from the second epoch on; warned once, and the fit fails at its end if it never is)."""
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:  # not yet (a metric logged from epoch 2 on), or misspelt
            if self._missing is None:
                self._missing = (
                    f"PruningCallback: the metric {self.monitor!r} was not logged in validation"
                    f"{did_you_mean_metric(self.monitor, list(metrics))}; logged: {sorted(metrics)} (log it in "
                    f"validation_step: self.log({self.monitor!r}, value))")
                warnings.warn(f"{self._missing}; nothing is reported until it is, and the fit fails at its end "
                              "if it never is", UserWarning, stacklevel=2)
            return None
        self._found = True
        if metrics[self.monitor] is self._before:
            if not self._stale_warned:
                self._stale_warned = True
                warnings.warn(
                    f"PruningCallback: {self.monitor!r} was not logged in the validation of epoch "
                    f"{trainer.current_epoch + 1} (its value is an earlier one), so nothing is reported "
                    f"for it; such validations are passed over (log it in validation_step: "
                    f"self.log({self.monitor!r}, value), every validation)",
                    UserWarning, stacklevel=2,
                )  # fmt: skip
            return None
        return float(metrics[self.monitor])

    def _checkpoint_path(self, trainer: Any) -> Path:
        number = self.trial.number if self.trial is not None else "rank"
        folder = self.checkpoint_dir or Path(trainer.default_root_dir)
        return folder / f"trial-{number}.ckpt"


def _named(trial: tuple[str, str | None, int] | None) -> str:
    """A trial as :meth:`PruningCallback._check_one_trial` tells it, ``(study name, copy_id, number)``, for its error."""
    if trial is None:
        return "no trial"
    name, copy_id, number = trial
    return f"trial {number} of study {name!r}" + ("" if copy_id is None else f" (id {copy_id[:8]})")


def _study_folder(root: Path, study: str, copy_id: str | None = None) -> Path:
    """The study's folder under ``root``: its name when that is one folder name already
    (letters, digits, ``_ . -``: where earlier versions put it, so paused trials resume),
    else (or for a study with an id, ``copy_id``) :func:`~tunesmith.train.checkpoint.study_folder` (no name leads outside ``root``)."""
    if copy_id is None and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", study) and study.strip(".") and not study.startswith("-"):
        return root / study
    from ..train.checkpoint import study_folder

    return study_folder(root, study, copy_id)


def _shut_down(callback: PruningCallback, trainer: Any, pl_module: Any, exception: BaseException) -> None:
    """What Lightning does after ``callback.on_exception`` for a Ctrl-C, before its ``sys.exit(1)``, which the
    KeyboardInterrupt raised from that hook would skip: the later callbacks' ``on_exception`` (Lightning puts
    checkpoint callbacks such as OnExceptionCheckpoint last), the datamodule's and the strategy's, the
    loggers' ``finalize("failed")``, and its teardown, which puts back the signal handlers the fit replaced
    (else its SIGTERM handler stays, and a SIGTERM no longer ends the process) and stops a DDP script's
    processes."""
    for later in trainer.callbacks[trainer.callbacks.index(callback) + 1 :]:
        later.on_exception(trainer, pl_module, exception)
    if trainer.datamodule is not None:
        trainer.datamodule.on_exception(exception)
    trainer.strategy.on_exception(exception)
    for logger in trainer.loggers:
        logger.finalize("failed")
    trainer._teardown()
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        trainer.strategy.launcher.kill(_get_sigkill_signal())
