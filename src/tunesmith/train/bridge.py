"""The bridge from a Trainer to a study: ``objective(...)`` and ``adam_space()``.

    study = ts.Study(ts.train.adam_space(), direction="minimize", sampler="bayes")
    study.optimize(ts.train.objective(build_model, (train, val), base=TrainConfig(epochs=5)), n_trials=30)

Each trial: its parameters override the :class:`TrainConfig` fields of the
same name (the rest go to ``build_model(params)``); validation k (counted
from 1: the epoch, when validating each epoch) is reported as
``trial.report(value, k)``, so a pruner's ``max_resource`` is the number of
validations; the newest checkpoint's path is
stored as ``trial.attrs["checkpoint"]`` before the pruner is asked; a pruned
trial raises :class:`tunesmith.TrialPruned`. A run whose monitored value turns
NaN or infinite (diverged) stops there and returns its best value so far
(``trial.attrs["diverged_at"]``: that step). A trial that already holds a
checkpoint (a paused trial run again) resumes from it exactly.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import exceptions
from ..pruners import Decision
from ..space import Categorical, Float, Prior, Space
from .config import SCHEDULES, TrainConfig
from .data import LossFn, MetricFn
from .history import EvalRecord
from .trainer import Trainer

DataSpec = Any  # (train, val) or callable(params) -> (train, val)
logger = logging.getLogger(__name__)


def adam_space(
    *,
    lr: tuple[float, float] = (1e-5, 1e-1),
    schedules: Sequence[str] = ("constant", "cosine", "step", "exponential"),
    weight_decay: tuple[float, float] | None = (1e-6, 1e-1),
    warmup: tuple[float, float] | None = (0.0, 0.2),
) -> Space:
    """A search space for Adam from common practice.

    lr: log-uniform, prior near 1e-3 (start small, as the seed advises); beta1
    0.8..0.99 (prior 0.9); beta2 0.9..0.9999 (prior 0.999); eps 1e-10..1e-6
    log-uniform; weight_decay log-uniform (None: not searched); warmup_fraction
    0..0.2; schedule categorical. Names match :class:`TrainConfig` fields.
    """
    bad = [s for s in schedules if s not in SCHEDULES]
    if bad or not schedules:
        raise ValueError(f"adam_space: schedules must be a non-empty subset of {list(SCHEDULES)}, got {list(schedules)}")
    params: dict[str, Any] = {
        "lr": Float(lr[0], lr[1], log=True, prior=Prior(mode=min(max(1e-3, lr[0]), lr[1]), width=0.25)),
        "beta1": Float(0.8, 0.99, prior=0.9),
        "beta2": Float(0.9, 0.9999, prior=0.999),
        "eps": Float(1e-10, 1e-6, log=True, prior=1e-8),
        "schedule": Categorical(list(schedules)),
    }
    if weight_decay is not None:
        params["weight_decay"] = Float(weight_decay[0], weight_decay[1], log=True)
    if warmup is not None:
        params["warmup_fraction"] = Float(warmup[0], warmup[1])
    return Space(params)


class _Reporter:
    """Trainer callback: checkpoint path to the trial, report, then ask the pruner."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_eval(self, trainer: Trainer, record: EvalRecord) -> None:
        path = trainer.history.last_checkpoint
        if path is not None and self.trial.record.attrs.get("checkpoint") != path:
            self.trial.set_attr("checkpoint", path)
        step = record.index + 1  # validations counted from 1: max_resource = epochs
        last = self.trial.record.last_step
        if last is not None and step <= last:
            return  # resumed from an older checkpoint: replays validations reported (and decided) before
        value = monitored(record, self.monitor)
        if not math.isfinite(value):
            # a diverged run (NaN/inf weights) cannot recover: stop it, keep its best so far
            trainer.history.stopped_early = True
            self.trial.set_attr("diverged_at", step)
            return
        self.trial.report(value, step)
        decision = self.trial.decision()  # asked once: another worker may report meanwhile
        if decision is Decision.CONTINUE:
            return
        if decision is Decision.PAUSE:
            here = trainer.checkpoint_now()  # checkpoint_every may have skipped this validation
            if here is not None:
                self.trial.set_attr("checkpoint", here)
                raise exceptions.TrialPaused(f"paused at step {step}")
        raise exceptions.TrialPruned(f"pruned at step {step}")


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
    threads: int | None = None,
    callbacks: Sequence[Any] = (),
) -> Callable[[Any], float]:
    """An objective for :meth:`Study.optimize` that trains one model per trial.

    Args:
        build_model: ``build_model(params) -> nn.Module`` (params: the trial's).
        data: ``(train, val)`` or ``callable(params) -> (train, val)``.
        space: if given, checked now: its parameters must be TrainConfig
            fields or be used by ``build_model`` (they are passed to it).
        base: the configuration the trial's parameters override.
        monitor: what is reported and returned: "val_loss" (default) or a metric
            name (then make the study's direction fit, e.g. maximize accuracy).
            The value returned is the monitor at the best validation loss.
        checkpoint_root: where each trial's checkpoints go
            (``<root>/<study>/trial-<n>``; default: ``base.checkpoint_dir`` if
            set, else the system's temp folder; always one folder per trial).
        threads: torch threads per trial (default: 1 inside parallel workers).
    Returns the objective; trial attrs get "checkpoint", "best_checkpoint",
    "best_step", "train_loss" (per validation), "overfit_at", "stopped_early" and "samples_per_s" (and "diverged_at" when
    the monitored value turned NaN or infinite: the run stops there).
    """
    base = base or TrainConfig()
    if space is not None:
        _check_space(space, base)
    root = Path(checkpoint_root) if checkpoint_root is not None else Path(tempfile.gettempdir()) / "tunesmith-checkpoints"

    def run(trial: Any) -> float:
        set_threads(threads)
        params = dict(trial.params)
        cfg = base.with_params(params)
        # one folder per trial (under checkpoint_root, else base's checkpoint_dir, else the
        # temp folder): trials sharing one would resume from each other's "last" checkpoints
        parent = root if checkpoint_root is not None or cfg.checkpoint_dir is None else Path(cfg.checkpoint_dir)
        folder = parent / str(getattr(trial.study, "name", "study")) / f"trial-{trial.number}"
        cfg = cfg.with_params({"checkpoint_dir": str(folder)})
        torch.manual_seed(cfg.seed)
        model = build_model(params)
        train, val = data(params) if callable(data) else data
        trainer = Trainer(model, cfg, loss=loss, metrics=metrics, head=head,
                          callbacks=[*callbacks, _Reporter(trial, monitor)])
        resume = _checkpoint_to_resume(trial)
        history = trainer.fit(train, val, resume_from=resume)
        _store_summary(trial, history)
        best = history.best or history.records[-1]
        return monitored(best, monitor)

    return run


def _checkpoint_to_resume(trial: Any) -> str | None:
    """The trial's checkpoint when it holds one; a missing file is said, then training starts over."""
    path = trial.record.attrs.get("checkpoint")
    if not path:
        return None
    if not Path(path).is_file():
        logger.warning(
            "trial %d: its checkpoint %s is missing (deleted, or written on another machine: give "
            "every worker the same checkpoint_root folder); it trains again from the start, "
            "without reporting its steps 1-%s again", trial.number, path, trial.record.last_step,
        )
        return None
    return str(path)


def _store_summary(trial: Any, history: Any) -> None:
    speeds = [r.samples_per_s for r in history.records]
    trial.set_attr("best_checkpoint", history.best_checkpoint)
    trial.set_attr("best_step", None if history.best_index is None else history.best_index + 1)
    # per validation, for the overfitting graph (a diverged loss stored as None)
    trial.set_attr("train_loss", [v if math.isfinite(v) else None for v in history.train_losses])
    trial.set_attr("overfit_at", [i + 1 for i in history.overfit_at])  # as reported steps
    trial.set_attr("stopped_early", history.stopped_early)
    trial.set_attr("samples_per_s", sorted(speeds)[len(speeds) // 2] if speeds else None)


def _check_space(space: Space | Mapping[str, Any], base: TrainConfig) -> None:
    sp = space if isinstance(space, Space) else Space(dict(space))
    for name in sp:
        if name in TrainConfig.field_names():
            try:
                base.with_params({name: sp[name].from_unit(0.5)})
            except (ValueError, TypeError) as exc:
                raise ValueError(f"space parameter {name!r} gives an invalid TrainConfig: {exc}") from None
