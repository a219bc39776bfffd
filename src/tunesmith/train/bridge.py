"""The bridge from a Trainer to a study: ``objective(...)`` and ``adam_space()``.

    study = ts.Study(ts.train.adam_space(), direction="minimize", sampler="bayes")
    study.optimize(ts.train.objective(build_model, (train, val), base=TrainConfig(epochs=5)), n_trials=30)

Each trial: its parameters override the :class:`TrainConfig` fields of the
same name (the rest go to ``build_model(params)``); validation k (counted
from 1: the epoch, when validating each epoch) is reported as
``trial.report(value, k)``, so a pruner's ``max_resource`` is the number of
validations; the newest checkpoint's path is
stored as ``trial.attrs["checkpoint"]`` in the same write as the report, before the pruner is asked (with
``lr_adapt``, each group's adapted learning rate per validation as
``trial.attrs["adapted_lr"]``, at most :data:`MAX_ADAPTED` of them); a pruned
trial raises :class:`tunesmith.TrialPruned`. A run whose monitored value turns
NaN or infinite (diverged) stops there and returns its best value so far
(``trial.attrs["diverged_at"]``: that step). A trial the study paused and then
resumed continues from its checkpoint exactly; checkpoints are only read from
the trial's own folder (``retention.py``).
"""

from __future__ import annotations

import difflib
import logging
import math
import multiprocessing
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import cv, exceptions
from ..pruners import Decision
from ..space import Categorical, Float, Int, Prior, Space
from ..study import lifecycle
from . import checkpoint as ckpt
from . import retention
from .config import SCHEDULES, TrainConfig, lookalike
from .data import LossFn, MetricFn, check_data, resolve_loss, resolve_metrics
from .history import EvalRecord
from .trainer import Trainer, as_callbacks

DataSpec = Any  # (train, val) or callable(params) -> (train, val)
logger = logging.getLogger(__name__)


Range = tuple[float, float]

#: the adapted learning rates a trial keeps per group: every validation's up to this many, beyond it this
#: many spread evenly over the run, the first and the last kept (stored again at each validation, every
#: validation's made the write of the 10,000th 78 ms on SQLite and the attribute 277 KB: benchmarks/LOG.md)
MAX_ADAPTED = 500

# adam_space's decay-rate defaults, told from a range the caller gave by identity (a given range that no searched
# schedule uses is refused, not dropped)
_GAMMA: Range = (0.1, 0.99)
_DECAY_EPOCHS: tuple[int, int] = (1, 10)


def adam_space(
    *,
    lr: Range = (1e-5, 1e-1),
    schedules: Sequence[str] | None = ("constant", "cosine", "step", "exponential"),
    weight_decay: Range | None = (1e-6, 1e-1),
    warmup: Range | None = (0.0, 0.2),
    beta1: Range | None = (0.8, 0.99),
    beta2: Range | None = (0.9, 0.9999),
    eps: Range | None = (1e-10, 1e-6),
    gamma: Range | None = _GAMMA,
    decay_epochs: tuple[int, int] | None = _DECAY_EPOCHS,
    **unknown: Any,
) -> Space:
    """A search space for Adam from common practice; names match :class:`TrainConfig` fields.

    lr: log-uniform, prior near 1e-3 (start small, as the seed advises);
    beta1 (prior 0.9), beta2 (prior 0.999), eps (log-uniform, prior 1e-8);
    weight_decay log-uniform; warmup_fraction; schedule categorical. The decay
    rates are searched only for the schedules that use them: ``gamma`` (the
    factor per decay) for "step" and "exponential", ``decay_epochs`` (epochs
    between two step-decays) for "step", ``plateau_factor`` (gamma's range) for
    "plateau". Any range set to None is left out (the TrainConfig default
    holds), e.g. ``adam_space(beta1=None, beta2=None, eps=None)`` searches the
    learning and decay rates only; ``schedules=None`` leaves the schedule (and its
    decay rates) to the TrainConfig, e.g. ``base=TrainConfig(schedule="cosine")``.
    A decay range given (not its default) that no searched schedule uses is refused. A keyword that is not one of
    these is refused naming the keyword meant (``warmup_fraction=`` is ``warmup=``), or, for a TrainConfig field
    adam_space does not search (``clip_norm``, ``batch_size``), how to add it to the space.
    """
    if unknown:
        raise TypeError(_unknown_keyword(next(iter(unknown))))
    ranges = {"lr": lr, "weight_decay": weight_decay, "warmup": warmup, "beta1": beta1, "beta2": beta2, "eps": eps,
              "gamma": gamma, "decay_epochs": decay_epochs}
    for name, r in ranges.items():
        if not (isinstance(r, (tuple, list)) and len(r) == 2 or r is None and name != "lr"):
            raise ValueError(f"adam_space: {name} must be a (low, high) range, got {r!r}" + (
                "" if name == "lr" else "; None leaves it out of the space (the TrainConfig value holds)"))
    # "cosine": one schedule; None: the TrainConfig's (a one-choice parameter counts as searched in plots and samplers)
    names = [] if schedules is None else [schedules] if isinstance(schedules, str) else list(schedules)
    bad = [s for s in names if s not in SCHEDULES]
    if bad or not names and schedules is not None:
        raise ValueError(f"adam_space: schedules must be a non-empty subset of {list(SCHEDULES)}, got {names}; "
                         "None leaves the schedule to the TrainConfig (base=TrainConfig(schedule='cosine'))")
    params: dict[str, Any] = {
        "lr": Float(lr[0], lr[1], log=True, prior=Prior(mode=min(max(1e-3, lr[0]), lr[1]), width=0.25)),
    }
    if names:
        params["schedule"] = Categorical(names)
    optional: dict[str, tuple[Range | None, Callable[[Range], Any]]] = {
        "beta1": (beta1, lambda r: Float(*r, prior=_clamp(0.9, r))),
        "beta2": (beta2, lambda r: Float(*r, prior=_clamp(0.999, r))),
        "eps": (eps, lambda r: Float(*r, log=True, prior=_clamp(1e-8, r))),
        "weight_decay": (weight_decay, lambda r: Float(*r, log=True)),
        "warmup_fraction": (warmup, lambda r: Float(*r)),
    }
    params.update({name: make(r) for name, (r, make) in optional.items() if r is not None})
    _check_decay_used(names, schedules, gamma, decay_epochs)
    params.update(_decay_params(names, gamma, decay_epochs))
    return Space(params)


#: adam_space's keywords by the TrainConfig field (space parameter) each searches, where the two names differ
_ADAM_KEYWORD = {"warmup_fraction": "warmup", "schedule": "schedules", "plateau_factor": "gamma"}


def _unknown_keyword(name: str) -> str:
    """Why adam_space refuses the keyword ``name``, with the keyword meant, or how to search that field."""
    keywords = list(adam_space.__kwdefaults__ or {})
    listed = f"its keywords: {', '.join(keywords)} (a (low, high) range each; schedules, a list of schedules)"
    key = name.lower().replace("-", "_")
    if key == "betas":
        return f"adam_space() has no keyword 'betas': give beta1=(low, high) and beta2=(low, high); {listed}"
    field = key if key in TrainConfig.field_names() else lookalike(name)
    close = difflib.get_close_matches(key, keywords, n=1, cutoff=0.8)
    meant = _ADAM_KEYWORD.get(field, field) if field else (close[0] if close else None)
    if meant in keywords:
        what = "plateau_factor is searched with gamma's range" if field == "plateau_factor" else f"did you mean {meant}=?"
        return f"adam_space() has no keyword {name!r} ({what}); {listed}"
    if field:
        return (f"adam_space() has no keyword {name!r}: it searches Adam's rates, warm-up and schedule, not "
                f"TrainConfig.{field}. Add {field} to the space it returns, e.g. ts.Space({{**adam_space(), "
                f"{field!r}: ts.Float(low, high)}}) (ts.Int or ts.Categorical for whole numbers and choices), or "
                f"fix it in the objective's base=TrainConfig({field}=...); {listed}")
    return f"adam_space() has no keyword {name!r}; {listed}"


def _clamp(v: float, r: Range) -> float:
    return min(max(v, r[0]), r[1])


def _check_decay_used(names: list[str], schedules: Any, gamma: Range | None,
                      decay_epochs: tuple[int, int] | None) -> None:
    """Refuse a decay range the caller gave that no searched schedule uses (it was dropped silently)."""
    given = {"gamma": (gamma, _GAMMA, ("step", "exponential", "plateau")),
             "decay_epochs": (decay_epochs, _DECAY_EPOCHS, ("step",))}
    for name, (r, default, users) in given.items():
        if r is None or r is default or any(s in users for s in names):
            continue
        searched = "schedules=None searches no schedule" if schedules is None else f"schedules={names} has none of them"
        raise ValueError(f"adam_space: {name}={r!r} is searched only under the schedules {list(users)}, and "
                         f"{searched}: add one of them to schedules, or leave {name} out ({name}=None); "
                         "a fixed schedule's value goes in the TrainConfig (base=TrainConfig(schedule='step', "
                         f"{name}=...))")


def _decay_params(schedules: list[str], gamma: Range | None, decay_epochs: tuple[int, int] | None) -> dict[str, Any]:
    """The decay rates, each active only under the schedules that use it."""
    out: dict[str, Any] = {}
    decaying = [s for s in schedules if s in ("step", "exponential")]
    if gamma is not None and decaying:
        out["gamma"] = Float(*gamma, when={"schedule": decaying})
    if gamma is not None and "plateau" in schedules:
        out["plateau_factor"] = Float(*gamma, when={"schedule": ["plateau"]})
    if decay_epochs is not None and "step" in schedules:
        out["decay_epochs"] = Int(*decay_epochs, when={"schedule": ["step"]})
    return out


class _Reporter:
    """Trainer callback: checkpoint path to the trial, report, then ask the pruner. The trainer deletes no
    older checkpoint where a callback listed before this one stops the trial (``records_checkpoint``): the
    trial's record still names the older file, which it resumes from."""

    records_checkpoint = True

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_eval(self, trainer: Trainer, record: EvalRecord) -> None:
        path = trainer.history.last_checkpoint
        new = path if path is not None and self.trial.record.attrs.get("checkpoint") != path else None
        n = len(trainer.history.records)
        if record.lrs and (n <= MAX_ADAPTED or n % (n // MAX_ADAPTED) == 0):  # lr_adapt: at the end too
            self.trial.set_attr("adapted_lr", _adapted(trainer.history.records))
        step = record.index + 1  # validations counted from 1: max_resource = epochs
        last = self.trial.record.last_step
        value = monitored(record, self.monitor)
        if last is not None and step <= last or not math.isfinite(value):
            if new is not None:  # no report goes with it: an older checkpoint than the reports replays them
                self.trial.set_attr("checkpoint", new, step=step)
            if last is not None and step <= last:
                return  # resumed from an older checkpoint: replays validations reported (and decided) before
            # a diverged run (NaN/inf weights) cannot recover: stop it, keep its best so far
            trainer.history.stopped_early = True
            self.trial.set_attr("diverged_at", step)
            return
        # one write: a worker killed between a checkpoint's record and its report resumed a validation ahead of
        # its reports (that report missing for good)
        self.trial.report(value, step, checkpoint=new)
        decision = self.trial.decision()  # asked once: another worker may report meanwhile
        if decision is Decision.CONTINUE:
            return
        _store_curves(self.trial, trainer.history)  # the overfitting graph of a stopped trial
        if decision is Decision.PAUSE:
            here = trainer.checkpoint_now()  # checkpoint_every may have skipped this validation
            if here is not None:
                self.trial.set_attr("checkpoint", here)
                raise exceptions.TrialPaused(f"paused at step {step}")
        raise exceptions.TrialPruned(f"pruned at step {step}")


def _adapted(records: Sequence[EvalRecord], prefix: str = "") -> dict[str, list[float]]:
    """With ``lr_adapt``: each group's adapted learning rate per validation, by ``prefix + role``: those of at
    most :data:`MAX_ADAPTED` validations (:func:`spread`)."""
    roles = records[-1].lrs if records else {}
    kept = [records[i] for i in spread(len(records), MAX_ADAPTED)]
    return {prefix + k: [r.lrs[k] for r in kept] for k in roles}


def spread(n: int, most: int) -> list[int]:
    """The indices of ``n`` items: all of them up to ``most``, else ``most`` of them spread evenly, the
    first and the last among them."""
    return list(range(n)) if n <= most else [round(k * (n - 1) / (most - 1)) for k in range(most)]


# what a monitored value's name says about its direction: the study must agree
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "perplexity")
_HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "auc", "roc_auc", "precision", "recall", "r2")


def _check_monitor(monitor: str, metrics: Mapping[str, MetricFn] | Sequence[str] | None) -> None:
    """Refuse at set-up a monitor that no validation computes (it failed after the first epoch)."""
    if not isinstance(monitor, str):  # difflib: "'int' object is not iterable"
        raise TypeError(f"monitor is the name of what is reported ('val_loss' or a metric's name), got {monitor!r}")
    have = ["val_loss", "train_loss", *([] if metrics is None else [metrics] if isinstance(metrics, str) else metrics)]
    if monitor not in have:
        close = difflib.get_close_matches(monitor, have, n=1, cutoff=0.5)
        raise ValueError(f"monitor {monitor!r} is not computed: it is 'val_loss', 'train_loss' or a name in "
                         f"metrics= (here {have[2:]}){f'; did you mean {close[0]!r}?' if close else ''}")


def _check_direction(trial: Any, monitor: str) -> None:
    """Fail a trial (before it trains) whose study optimizes its monitor the wrong way: a
    study that minimizes accuracy, or maximizes a loss, picks the worst model as its best."""
    direction = getattr(getattr(trial, "study", None), "direction", None)
    direction = getattr(direction, "value", direction)
    words = set(monitor.lower().replace("-", "_").split("_"))
    if words & {"neg", "negative", "minus", "inv", "inverse"}:  # scikit-learn's neg_log_loss: not judged
        return
    wants = ("minimize" if words & set(_LOWER_IS_BETTER) else
             "maximize" if monitor.lower() in _HIGHER_IS_BETTER or words & set(_HIGHER_IS_BETTER) else None)
    if wants is not None and direction in ("minimize", "maximize") and direction != wants:
        raise ValueError(f"the study {direction}s, but monitor {monitor!r} is better {'lower' if wants == 'minimize' else 'higher'}: "
                         f"its best trial would be the worst model. Create the study with direction={wants!r}")


def monitored(record: EvalRecord, monitor: str) -> float:
    if monitor == "val_loss":
        return record.train_loss if record.val_loss is None else record.val_loss
    if monitor == "train_loss":
        return record.train_loss
    if monitor not in record.metrics:
        raise ValueError(f"monitor {monitor!r} is not a computed metric; have {['val_loss', 'train_loss', *record.metrics]}")
    return record.metrics[monitor]


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads``: ``threads``, or 1 when running inside a parallel worker."""
    if threads is None:
        parallel = threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is not None
        threads = 1 if parallel else None
    if threads is not None:
        torch.set_num_threads(threads)


class _Fresh:
    """Refuses a model that ``build_model`` returned before: one model shared by the trials (built once,
    returned each time) carried each trial's training into the next, in silence."""

    def __init__(self, build_model: Callable[[dict[str, Any]], nn.Module]) -> None:
        self.build_model, self.seen = build_model, weakref.WeakSet[nn.Module]()

    def __call__(self, params: dict[str, Any]) -> nn.Module:
        model = self.build_model(params)
        if model in self.seen:
            raise ValueError("build_model returned a model it had returned before, so this trial would start from "
                             "the weights an earlier trial trained; build a new model in each call (load the "
                             "pre-trained weights inside build_model, or return copy.deepcopy(pretrained))")
        if isinstance(model, nn.Module):
            self.seen.add(model)
        return model


def objective(
    build_model: Callable[[dict[str, Any]], nn.Module],
    data: DataSpec,
    space: Space | Mapping[str, Any] | None = None,
    *,
    base: TrainConfig | None = None,
    loss: str | LossFn = "cross_entropy",
    metrics: Mapping[str, MetricFn] | Sequence[str] | None = None,
    monitor: str = "val_loss",
    head: str | Sequence[str] = (),
    checkpoint_root: str | Path | None = None,
    keep: str = "best",
    threads: int | None = None,
    callbacks: Sequence[Any] = (),
    folds: int | Sequence[tuple[Any, Any]] | None = None,
) -> Callable[[Any], float]:
    """An objective for :meth:`Study.optimize` that trains one model per trial.

    Args:
        build_model: ``build_model(params) -> nn.Module`` (params: the trial's).
        data: ``(train, val)`` or ``callable(params) -> (train, val)``.
        space: if given, checked now: its parameters must be TrainConfig
            fields or be used by ``build_model`` (they are passed to it). Refused
            here only when no trial could be valid; rules binding two searched
            fields (nesterov needs momentum, lr_adapt needs hyper_lr, min_lr <= lr)
            are checked per trial: an invalid pair fails that trial, naming the pair
            and the conditional space that avoids it (a warning at set-up says so).
        base: the configuration the trial's parameters override.
        monitor: what is reported and returned: "val_loss" (default) or a metric
            name (then make the study's direction fit, e.g. maximize accuracy).
            The value returned is the monitor at the best validation loss.
        checkpoint_root: where each trial's checkpoints go
            (``<root>/<study>-<hash>/trial-<n>``, see ``checkpoint.study_folder``;
            default: ``base.checkpoint_dir`` if set, else the per-user
            ``checkpoint.default_root()``; always one folder per trial).
        keep: what a finished trial keeps: "best" (its ``best.pt``; default),
            "none", or "all". A pruned or failed trial keeps nothing; a paused
            one keeps its files until it finishes.
        threads: torch threads per trial (default: 1 inside parallel workers).
        folds: k-fold training instead of one train/validation split: ``data``
            is then one data set (or ``callable(params) -> data``) and ``folds``
            a number of folds (shuffled with ``base.seed``), ``(train_idx,
            val_idx)`` pairs (:mod:`tunesmith.cv`; taken once, so a generator works),
            or a scikit-learn splitter (``StratifiedKFold(5)``: it gets the last
            tensor of a tuple as the labels). Each fold trains a fresh
            model; fold k is reported as step k (the mean of the first k folds'
            values, :func:`tunesmith.cv.cross_validate`), so the pruner stops a
            configuration between folds; the value is the mean over folds and
            ``trial.attrs["cv"]`` holds every fold's value and their spread.
    Returns the objective; trial attrs get "checkpoint", "best_checkpoint",
    "best_step" (the reported step of the best validation, whose checkpoint is restored),
    "overfit_at" (the reported step where the smoothed generalization gap began
    its sustained rise after the best validation, or None: :attr:`History.overfit_at`), "curves" (training loss,
    validation loss and smoothed gap by step), "stopped_early" and "samples_per_s"
    (and "diverged_at" when the monitored value turned NaN or infinite: the run
    stops there).
    """
    base = _as_base(base)
    folds = int(folds) if isinstance(folds, np.integer) else folds  # a count from NumPy is a count
    _check_call(build_model, data, loss, metrics, threads, checkpoint_root, folds)
    build_model = _Fresh(build_model)
    callbacks = as_callbacks(callbacks)
    _check_monitor(monitor, metrics)
    if not head and (base.backbone_lr is not None or (space is not None and "backbone_lr" in space)):
        raise ValueError("backbone_lr (in base= or the space) is the rate of the parameters outside the head, but "
                         "objective(...) names no head, so every trial would fail before training; pass head= (the "
                         "name of the model's head, e.g. head='classifier'), or drop backbone_lr")
    if space is not None:
        _check_space(space, base)
    warned: set[str] = set() if space is None else {*_warn_lookalikes(space, set()), "decay range"}
    if keep not in retention.KEEP:
        raise ValueError(f"keep must be one of {list(retention.KEEP)}, got {keep!r}")
    if folds is not None:
        return _fold_objective(build_model, data, folds, base=base, loss=loss, metrics=metrics, monitor=monitor,
                               head=head, root=checkpoint_root, keep=keep, threads=threads, callbacks=callbacks,
                               warned=warned)

    def run(trial: Any) -> float:
        _check_direction(trial, monitor)
        cv.refuse_racing(trial, "this objective", "epoch", "Pass folds=k to objective(...) for one report per fold, or")
        params, cfg = _trial_setup(trial, base, threads, warned)
        # one folder per trial (under checkpoint_root, else base's checkpoint_dir, else the
        # per-user default): trials sharing one would resume from each other's "last" checkpoints
        root = checkpoint_root if checkpoint_root is not None else cfg.checkpoint_dir or ckpt.default_root()
        folder = retention.trial_folder(ckpt.secure_dir(root), trial)
        cfg = cfg.with_params({"checkpoint_dir": str(folder)})
        torch.manual_seed(cfg.seed)
        model = build_model(params)
        train, val = data(params) if callable(data) else data
        trainer = Trainer(model, cfg, loss=loss, metrics=metrics, head=head,
                          callbacks=[*callbacks, _Reporter(trial, monitor)])
        history = _fit(trainer, trial, folder, keep, train, val)
        _store_summary(trial, history, retention.retire(folder, keep))
        best = history.best or history.records[-1]
        return monitored(best, monitor)

    return run


def _fit(trainer: Trainer, trial: Any, folder: Path, keep: str, train: Any, val: Any) -> Any:
    """``trainer.fit``, resumed when the study resumed the trial; a trial that ends other
    than paused or complete leaves no files (nothing can resume it). A storage that refused a write
    (a :class:`~tunesmith.exceptions.StorageError`) refuses the trial's end too: the trial stays running as
    stored, or its dead worker's trial is held to resume from these files, so they stay (the sweep deletes
    them once it is failed); a study deleted meanwhile leaves none (:func:`_ended`)."""
    retention.sweep(trial, folder.parent, keep)
    kept = "all" if keep == "all" else None  # what tunesmith tell, ending the trial paused, deletes (nothing: all)
    if trial.record.attrs.get(retention.KEEP_ALL) != kept:
        trial.set_attr(retention.KEEP_ALL, kept)
    resume = retention.to_resume(trial, folder)
    if resume is None:
        retention.start_fresh(folder, trial)
    else:
        retention.drop_beyond(folder, resume)
    try:
        return trainer.fit(train, val, resume_from=resume)
    except exceptions.TrialPaused:
        raise
    except Exception as exc:
        if resume is not None and isinstance(exc, ckpt.CheckpointMismatch):
            raise _refused(trial, folder, exc) from exc  # its files kept: the study pauses it again
        if isinstance(exc, exceptions.OutOfRoom) and (resume is not None or _held_on_no_room(trial)):
            raise  # a full disk: its files kept, the study pauses it (again) at its recorded checkpoint (run_trial)
        if keep != "all" and _ended(exc):
            retention.retire(folder, "none")
            for key in ("checkpoint", "best_checkpoint"):  # (a deleted study's: nothing to write)
                if not isinstance(exc, exceptions.StudyNotFound) and trial.record.attrs.get(key) is not None:
                    trial.set_attr(key, None)
        raise


def _held_on_no_room(trial: Any) -> bool:
    """Whether the study pauses ``trial``, never paused, rather than fail it where a full disk refused its
    checkpoint (:meth:`Study.run_trial`): it recorded a checkpoint and a report under a pruner that pauses, so it
    goes on from there, as after a Ctrl-C."""
    pruner = getattr(getattr(trial, "study", None), "pruner", None)
    return lifecycle.resumable(trial.record, pauses=bool(getattr(pruner, "pauses", False)))


def _ended(exc: Exception) -> bool:
    """Whether the trial ``exc`` stopped ends with it, its files then of no use: not where a storage refused a
    write (the trial stays running as stored, or its parent holds it to resume), nor where the trial was taken
    over (held, or resumed by another worker, which goes on from its files), but where the study was deleted
    meanwhile (no sweep of it comes again)."""
    return not isinstance(exc, (exceptions.StorageError, exceptions.TrialTakenOver)) or isinstance(
        exc, exceptions.StudyNotFound)


def _refused(trial: Any, folder: Path, exc: Exception) -> exceptions.ResumeRefused:
    """A resumed trial whose checkpoint the model built now does not fit: the study was reopened with
    another ``build_model`` or other settings; failing the trial would delete its checkpoints."""
    return exceptions.ResumeRefused(
        f"trial {trial.number} cannot resume: {exc}. build_model or base= give another model or other settings "
        f"than those it was paused with. It stays paused, its checkpoints kept in {str(folder)!r}: run the study "
        f"with the build_model and settings it was paused with, or end the trial for good with "
        f"study.tell({trial.number}, state='pruned')")


def _store_summary(trial: Any, history: Any, kept_best: bool) -> None:
    speeds = [r.samples_per_s for r in history.records]
    if history.last_checkpoint is not None and not Path(history.last_checkpoint).is_file():
        trial.set_attr("checkpoint", None)  # retired: nothing resumes a finished trial
    trial.set_attr("best_checkpoint", history.best_checkpoint if kept_best else None)
    trial.set_attr("best_step", None if history.best_index is None else history.best_index + 1)
    _store_curves(trial, history)
    trial.set_attr("stopped_early", history.stopped_early)
    trial.set_attr("samples_per_s", sorted(speeds)[len(speeds) // 2] if speeds else None)


def _store_curves(trial: Any, history: Any) -> None:
    """Both loss curves, the smoothed gap and where overfitting began, as reported steps (with ``lr_adapt``,
    the adapted rates, the last validation's among them)."""
    at = history.overfit_at
    trial.set_attr("overfit_at", None if at is None else at + 1)
    trial.set_attr("curves", history.curves())
    if len(history.records) > MAX_ADAPTED and history.records[-1].lrs:  # lr_adapt: the last validation's rate
        trial.set_attr("adapted_lr", _adapted(history.records))  # too (written at each one up to MAX_ADAPTED)


def _trial_setup(trial: Any, base: TrainConfig, threads: int | None, warned: set[str]) -> tuple[dict[str, Any], TrainConfig]:
    """The trial's parameters and training config, the threads of numeric libraries set; a name that
    looks like a setting, or a setting that has no effect, is warned about once per objective (and, at
    the first trial, a study space's ``decay_epochs`` range that the run cannot reach)."""
    _check_study_space(trial, base, warned)
    set_threads(threads)
    params = dict(trial.params)
    _warn_lookalikes(params, warned)
    cfg = trial_config(base, params)
    _warn_no_effect(cfg, params, warned)
    return params, cfg


def _warn_lookalikes(names: Any, warned: set[str]) -> list[str]:
    """Warn once per name about parameters spelt like a TrainConfig field but not one: the
    trainer ignores them (they only reach ``build_model``), so every trial would train alike."""
    found = []
    for name in names:
        field = lookalike(name) if name not in warned else None
        if field is not None:
            found.append(name)
            warned.add(name)
            logger.warning(
                "search parameter %r is not a TrainConfig field, so the trainer ignores it (it only reaches "
                "build_model(params)); did you mean %r? Rename it, or ignore this if build_model uses it",
                name, field)
    return found


#: TrainConfig fields that only some optimizers use (the others take no such option)
_ONLY_UNDER = {"momentum": ("sgd",), "nesterov": ("sgd",), "amsgrad": ("adam", "adamw"), "beta1": ("adam", "adamw"),
               "beta2": ("adam", "adamw"), "eps": ("adam", "adamw")}


def _warn_no_effect(cfg: TrainConfig, params: Mapping[str, Any], warned: set[str]) -> None:
    """Warn once per optimizer about searched fields it has no option for (nesterov under Adam): the
    trials that differ only in them train alike, and an importance analysis would find them useless."""
    idle = [n for n in params if n in _ONLY_UNDER and cfg.optimizer not in _ONLY_UNDER[n]
            and f"{n}@{cfg.optimizer}" not in warned]
    if not idle:
        return
    warned.update(f"{n}@{cfg.optimizer}" for n in idle)
    logger.warning(
        "searched %s ha%s no effect under optimizer=%r (%s), so this trial ignores %s; make %s conditional on "
        "the optimizer, e.g. when={'optimizer': %r}", ", ".join(map(repr, idle)), "ve" if len(idle) > 1 else "s",
        cfg.optimizer, "; ".join(f"{n}: {'/'.join(_ONLY_UNDER[n])} only" for n in idle),
        "them" if len(idle) > 1 else "it", "them" if len(idle) > 1 else "it", list(_ONLY_UNDER[idle[0]]))


_PROBES = 256  # joint samples of the space that the set-up check tries


def _as_base(base: Any) -> TrainConfig:
    """``base=`` as a TrainConfig: a dict of its fields failed the first trial with "'dict' object has no
    attribute 'backbone_lr'"."""
    if base is None:
        return TrainConfig()
    if not isinstance(base, TrainConfig):
        fields = ", ".join(f"{k}={v!r}" for k, v in base.items()) if isinstance(base, Mapping) else "epochs=10, ..."
        fix = f"TrainConfig({fields})"
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}; write base={fix}")
    return base


def _warn_decay_range(sp: Space | None, base: TrainConfig) -> None:
    """Warn when the space's ``decay_epochs`` reaches the trials' epochs: step schedules that never decay."""
    decay = sp["decay_epochs"] if sp is not None and "decay_epochs" in sp else None
    if isinstance(decay, Int) and base.epochs is not None and decay.high >= base.epochs:
        logger.warning(
            "space parameter 'decay_epochs' reaches %d but each trial trains %d epoch(s): a step schedule with "
            "decay_epochs >= %d never decays, so those trials are constant-rate runs; %s", decay.high, base.epochs,
            base.epochs, f"narrow it to fit, e.g. adam_space(decay_epochs=(1, {base.epochs - 1}))" if base.epochs > 2
            else "leave the step schedule out, e.g. adam_space(schedules=['constant', 'cosine', 'exponential']), "
                 "or train more epochs")  # (1, 1) is no range: adam_space refuses it


def _check_study_space(trial: Any, base: TrainConfig, warned: set[str]) -> None:
    """At the first trial of an objective given no ``space=``, what :func:`_check_space` warns of the study's."""
    if "decay range" not in warned:
        warned.add("decay range")
        _warn_decay_range(getattr(trial.study, "space", None), base)  # a Ray stand-in's study has none


def _check_space(space: Space | Mapping[str, Any], base: TrainConfig) -> None:
    """Refuse at set-up only what no trial can satisfy.

    A parameter whose midpoint breaks a rule of its own (``lr=0``, ``beta1=1``) is
    refused; one whose rule binds another searched field (nesterov needs momentum,
    lr_adapt needs hyper_lr, min_lr <= lr) is checked per trial, with the trial's
    values (:func:`trial_config`), unless no sample of the space is valid. A space whose
    samples are partly invalid is accepted with a warning naming an invalid pair.
    """
    sp = space if isinstance(space, Space) else Space(dict(space))
    _warn_decay_range(sp, base)
    fields = [n for n in sp if n in TrainConfig.field_names()]
    if not fields:
        return
    rng = np.random.default_rng(0)
    # the center, each parameter at its bounds (a sampler may propose them: beta2=(0.9, 1.0) reaches 1), random points
    bounds = [np.where(np.arange(sp.ndim) == i, end, 0.5) for i in range(sp.ndim) for end in (0.0, 1.0)]
    configs = [sp.decode(x) for x in [np.full(sp.ndim, 0.5), *bounds, *rng.random((_PROBES, sp.ndim))]]
    for name in fields:
        mid = {name: sp[name].from_unit(0.5)}
        error = _config_error(base, mid)
        others = [q for q in fields if q != name]
        if error is not None and all(_config_error(base, {**mid, q: c[q]}) == error
                                     for c in configs for q in others if q in c):
            raise ValueError(f"space parameter {name!r} gives an invalid TrainConfig: {error}")
    errors = [e for e in (_config_error(base, c) for c in configs) if e is not None]
    if len(errors) == len(configs):
        raise ValueError(f"no sampled configuration of the space gives a valid TrainConfig: {errors[0]}")
    if errors:
        bad = next(c for c in configs if _config_error(base, c) is not None)
        logger.warning("%d of %d sampled configurations of the space give an invalid TrainConfig (%s); such "
                       "trials will fail. %s", len(errors), len(configs), errors[0], _combination_advice(base, bad))


def _config_error(base: TrainConfig, params: Mapping[str, Any]) -> str | None:
    try:
        base.with_params(params)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def trial_config(base: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """``base.with_params(params)``; an invalid combination of searched values fails the
    trial with the rule's message and how to write the space so that no trial draws it."""
    try:
        return base.with_params(params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"this trial's values give an invalid TrainConfig: {exc}. "
                         f"{_combination_advice(base, params)}") from None


def _combination_advice(base: TrainConfig, params: Mapping[str, Any]) -> str:
    """How to write the space so that no trial draws ``params``: the searched fields that
    the broken rule names (each rule's message names every field it binds)."""
    searched = {k: v for k, v in params.items() if k in TrainConfig.field_names()}
    error = _config_error(base, searched) or ""
    named = [k for k in searched if re.search(rf"\b{k}\b", error)]
    values = ", ".join(f"{k}={searched[k]!r}" for k in named)
    choices = [k for k in named if searched[k] is None or isinstance(searched[k], (str, bool))]
    if len(named) >= 2 and choices:  # a choice can be a condition's parent
        parent = choices[0]
        child = next(k for k in named if k != parent)
        return (f"The searched {values} break it together: write the space so that no trial draws such a "
                f"combination, e.g. search {child!r} only where {parent!r} allows it, with "
                f"when={{{parent!r}: [the values that allow it]}} (docs/guide.md, Conditions), or narrow the ranges.")
    if len(named) >= 2:
        return f"The searched {values} break it together: narrow their ranges so that no trial draws such a pair."
    if named:
        return f"The searched {values} breaks it: narrow its range, or set the field it depends on in base=."
    return "Narrow the searched ranges or make some of them conditional (when=...)."


def _check_call(build_model: Any, data: Any, loss: Any, metrics: Any, threads: Any, root: Any, folds: Any) -> None:
    """What every trial would fail on (a line of log and a failed record each), refused when
    :func:`objective` is called."""
    if isinstance(build_model, nn.Module) or not callable(build_model):
        raise TypeError(f"build_model is a function params -> a new model, got {type(build_model).__name__}; "
                        "write build_model=lambda params: MyModel(...) (a fresh model for each trial)")
    resolve_loss(loss)
    resolve_metrics(metrics)
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None (1 inside parallel workers), got {threads!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"checkpoint_root must be a folder (a str or a Path), got {type(root).__name__} {root!r}")
    if folds is not None:
        _check_folds(folds, data)
    elif not callable(data) and (not isinstance(data, (tuple, list)) or len(data) != 2
                                 or all(isinstance(t, torch.Tensor) for t in data)):
        got = type(data).__name__
        if isinstance(data, (tuple, list)):
            got += f" of {len(data)} {'tensors' if data and all(isinstance(t, torch.Tensor) for t in data) else 'items'}"
        raise ValueError(f"data is (train, val), each a tuple of tensors (x, y) or a torch Dataset, or a "
                         f"callable(params) -> (train, val); got {got}; to train on folds of one data set, pass folds=k")


def _check_folds(folds: Any, data: Any) -> None:
    """A number of folds that cannot split ``data`` (when given, not a callable), or no folds at all."""
    if isinstance(folds, (str, bytes, bool)) or not isinstance(folds, (int, Iterable)) and not hasattr(folds, "split"):
        raise TypeError(f"folds is a number of folds, (train_idx, val_idx) pairs or a scikit-learn splitter, "
                        f"got {folds!r}")
    if isinstance(folds, int):
        try:
            cv.kfold(check_data(data, "data") if not callable(data) else max(folds, 2), folds)
        except ValueError as exc:
            raise ValueError(f"folds={folds}: {exc}") from None


def _fold_objective(
    build_model: Callable[[dict[str, Any]], nn.Module], data: DataSpec, folds: int | Sequence[tuple[Any, Any]], *,
    base: TrainConfig, loss: str | LossFn, metrics: Any, monitor: str, head: Any, root: str | Path | None,
    keep: str, threads: int | None,
    callbacks: Sequence[Any], warned: set[str],
) -> Callable[[Any], float]:  # fmt: skip
    """k-fold training: a fresh model per fold, one report per fold (``objective(..., folds=)``)."""
    # pairs are taken once (a generator such as KFold(5).split(x) would be used up by the first trial)
    pairs = None if isinstance(folds, int) or hasattr(folds, "split") else list(folds)

    def run(trial: Any) -> float:
        _check_direction(trial, monitor)
        params, cfg = _trial_setup(trial, base, threads, warned)
        pool = data(params) if callable(data) else data
        n = check_data(pool, "data")
        if isinstance(folds, int):
            splits = cv.kfold(n, folds, seed=cfg.seed % 2**32)  # a negative seed, as the trainer reduces it
        else:  # a scikit-learn splitter sees the labels: the last tensor of a tuple
            labels = pool[-1].cpu().numpy() if isinstance(pool, (tuple, list)) and len(pool) > 1 else None
            splits = cv.split(folds, np.zeros((n, 1)), labels) if pairs is None else pairs
        _check_fold_indices(splits, n)
        parent = root if root is not None else cfg.checkpoint_dir or ckpt.default_root()
        folder = retention.trial_folder(ckpt.secure_dir(parent), trial)
        # lr_adapt: a trial resumed after a pause runs its remaining folds; the earlier folds' rates stay
        adapted: dict[str, list[float]] = (dict(trial.attrs.get("adapted_lr") or {})
                                               if getattr(trial, "is_resumed", False) else {})

        def fold(train_idx: Any, val_idx: Any) -> float:
            k = next(i for i, (_, v) in enumerate(splits) if np.array_equal(v, val_idx))
            fold_cfg = cfg.with_params({"checkpoint_dir": str(folder / f"fold-{k}")})
            torch.manual_seed(fold_cfg.seed)
            trainer = Trainer(build_model(params), fold_cfg, loss=loss, metrics=metrics, head=head,
                              callbacks=list(callbacks))
            history = trainer.fit(subset(pool, train_idx), subset(pool, val_idx))
            retention.retire(folder / f"fold-{k}", keep)  # a fold is never resumed: its best at most
            adapted.update(_adapted(history.records, f"fold-{k}/"))
            if adapted:  # lr_adapt: as without folds, each fold's groups by "fold-<k>/<role>"
                trial.set_attr("adapted_lr", dict(adapted))
            return monitored(history.best or history.records[-1], monitor)

        return cv.cross_validate(trial, fold, splits)

    return run


def _check_fold_indices(splits: Sequence[tuple[Any, Any]], n: int) -> None:
    """Every fold's indices lie in ``range(n)``: folds made for other data are named before training."""
    for k, (train_idx, val_idx) in enumerate(splits, start=1):
        top = max((int(np.max(i)) for i in (train_idx, val_idx) if len(i)), default=-1)
        if top >= n:
            raise ValueError(f"fold {k} holds sample index {top}, but data has {n} samples: the folds were made "
                             f"for other data (folds=ts.cv.kfold({n}, k) or a number of folds fits this data)")


def subset(data: Any, idx: Any) -> Any:
    """The samples ``idx`` of a tuple of tensors or a torch Dataset."""
    index = torch.as_tensor(idx, dtype=torch.long)
    if isinstance(data, (tuple, list)):
        return tuple(t[index] for t in data)
    return torch.utils.data.Subset(data, index.tolist())
