"""The Trainer: a short, explicit training loop (nanoGPT style).

    trainer = Trainer(model, TrainConfig(lr=3e-4, epochs=5, patience=2), metrics=["accuracy"])
    history = trainer.fit((x_train, y_train), (x_val, y_val))
    history = trainer.fit(train, val, resume_from="ckpt/last-000000120.pt")  # exact resume

One optimizer step: set each group's learning rate from the pure schedule,
forward (bf16 autocast on CUDA), loss (+ L1/L2 penalty on weight matrices),
backward weighted by the batch's share of its accumulation group's samples, clip, step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..exceptions import TrialPaused, TrialPruned, UntrustedPathError
from ..paths import PLANTED_FIX, refuse_planted
from ..space.params import a_type, plural
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import (
    Data,
    Loader,
    LossFn,
    MetricFn,
    batch_norms,
    check_data,
    check_dtypes,
    check_items,
    pick_device,
    refusing_one_value_per_channel,
    resolve_drop_last,
    resolve_loss,
    resolve_metrics,
    to_device,
    use_bf16,
)
from .finetune import (
    GradualUnfreezing,
    keep_frozen_in_eval,
    warn_hand_frozen_batch_norms,
    warn_slow_batch_norms,
)
from .history import EvalRecord, History
from .hypergrad import HypergradientLR
from .model_state import FrozenFingerprint, check_fields, checked_state, complete_state, model_state
from .optim import (
    check_head,
    head_names,
    l1_l2_penalty,
    make_optimizer,
    penalized,
    warn_frozen_head,
)
from .schedule import (
    SCHEDULE_FIELDS,
    Plateau,
    factor_moved,
    lr_factor,
    total_steps_of,
    warmup_steps,
)

Callback = Callable[["Trainer", EvalRecord], None]


class Trainer:
    """Trains ``model`` with ``config``.

    Args:
        model: any ``nn.Module``; called as ``model(*inputs)``.
        config: a :class:`TrainConfig`.
        loss: "cross_entropy" (default), "mse", "bce" or ``callable(output, target)``.
        metrics: names ("accuracy") or a mapping name -> ``fn(outputs, targets) -> float``,
            computed on the whole validation set.
        head: names (prefixes) of the head's parameters, e.g. ``["classifier"]``, or the
            head module (``model.classifier``); they train at ``lr``, the rest at ``backbone_lr``.
        callbacks: ``fn(trainer, record)`` after each validation (and checkpoint),
            or objects with ``on_epoch_start(trainer, epoch)`` and/or ``on_eval``. One that records the
            validation's checkpoint in a study's trial (``trial.report(..., checkpoint=...)``) is marked
            ``records_checkpoint = True``: a ``TrialPaused``/``TrialPruned`` raised by a callback listed before it
            then deletes no older checkpoint (the trial's record still names one).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        loss: str | LossFn = "cross_entropy",
        metrics: Mapping[str, MetricFn] | Sequence[str] | None = None,
        head: str | nn.Module | Sequence[str | nn.Module] = (),
        callbacks: Sequence[Any] = (),
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.config = config or TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.device = pick_device(str(self.config.device))  # TrainConfig keeps a torch.device as its name
        self.bf16 = use_bf16(self.config.precision, self.device)
        self.model = model.to(self.device)
        self.loss_fn = resolve_loss(loss)
        self.metrics = resolve_metrics(metrics)
        self.head = head_names(self.model, head)
        self.callbacks = as_callbacks(callbacks)
        self.optimizer = make_optimizer(self.model, self.config, self.head)
        self._penalized = penalized(self.model)
        self.hyper = _hyper(self.optimizer, self.config)
        self.plateau = Plateau(self.config.plateau_patience, self.config.min_delta)
        self.history = History()
        self._in_callbacks, self._rotate_due = False, False
        self.step = 0  # optimizer steps done
        self.epoch = 0  # epochs finished
        self._offset = 0  # batches of the current epoch already consumed
        self._acc = [0.0, 0, 0]  # train loss sum (by sample), samples in it, samples since the last evaluation
        self._bad = 0  # evaluations without improvement
        self._ref = math.inf  # the loss of the last improvement by more than min_delta
        self._best_state: dict[str, torch.Tensor] | None = None
        self._built: dict[str, torch.Tensor] | None = None  # a resumed model's state before loading
        self._resumed_from = ""  # the checkpoint a resumed run was loaded from
        self._own: set[str] = set()  # this run's "last" files in checkpoint_dir: the only ones its rotation deletes
        self._others: list[Path] = []  # another run's files there, set aside at this run's first checkpoint
        # the resumed step where those are the steps above it (this run's own, a branch it leaves), else None
        self._branch: int | None = None
        self.steps_per_epoch = 0
        self.total_steps = 0
        self.train_samples = 0  # the training set's size: a resume mid-epoch on another size starts anew
        self._frozen_hash = FrozenFingerprint()
        self._warned_val = False
        self._one_checked = False  # batch_size=1: batch norm's input checked at the first forward

    # -- public --------------------------------------------------------------------------
    def fit(self, train: Data, val: Data | None = None, *, resume_from: str | Path | None = None) -> History:
        """Train until ``epochs``/``max_steps`` or early stopping; returns the :class:`History`.

        ``resume_from``: a checkpoint written by this trainer (any "last" or
        "best" file); training continues exactly where it was saved. A
        checkpoint of another model, optimizer or batch size is refused
        (:class:`~tunesmith.train.checkpoint.CheckpointError`), and so is a file another
        user may have chosen (:func:`~tunesmith.paths.refuse_planted`, as ``load_weights``).
        """
        cfg = self.config
        if self.step and resume_from is None:  # its run is done: the loop below would not take a step
            raise RuntimeError(
                f"this Trainer has already trained ({self.step} steps, {len(self.history.records)} validations); "
                "fit again would return the same history without training. Build a new Trainer for a new run; "
                "to train longer, resume from its checkpoint with more epochs (cfg.with_params({'epochs': ...}))")
        check_head(cfg, self.head, self.model)
        warn_frozen_head(self.model, self.head)
        self._check_optimizer_holds_model()
        warn_hand_frozen_batch_norms(self.model)
        loader = self.train_loader(train)
        check_items(train, "train")
        check_dtypes(train, self.model, "train")
        if val is not None:
            check_data(val, "val")
            check_items(val, "val")
            check_dtypes(val, self.model, "val")
        self.steps_per_epoch = math.ceil(loader.batches / cfg.accumulate)
        self.total_steps = total_steps_of(cfg, self.steps_per_epoch)
        self.train_samples = loader.size
        lock = None
        if cfg.checkpoint_dir is not None:
            ckpt.secure_dir(cfg.checkpoint_dir)
            lock = ckpt.hold(cfg.checkpoint_dir)  # another run writing there now is refused
            ckpt.clean_stale(cfg.checkpoint_dir)  # temporary files of writers killed while saving
        try:
            return self._fit(loader, val, resume_from)
        finally:
            ckpt.release(lock)

    def _fit(self, loader: Loader, val: Data | None, resume_from: str | Path | None) -> History:
        cfg = self.config
        if resume_from is not None:
            # as load_weights and a study's trial.resume_from: a user's path may name a team's or a shared folder
            # the model as built: what a best.pt written before the resumed checkpoint leaves out
            self._built = _cpu_state(self.model) if cfg.restore_best else None
            state = ckpt.load(resume_from, planted=("checkpoint to resume from", PLANTED_FIX))  # CPU: RNG states too
            self.load_state(state, where=str(resume_from))
            self._resumed_from = str(resume_from)
            self._resumed(state, str(resume_from), loader.batches)
        else:
            _seed_all(cfg.seed)
        self._sort_folder(resume_from)
        # said with the run's length as resumed: on a larger or smaller training set it is not epochs x steps per epoch
        if cfg.warmup_steps and cfg.warmup_steps >= self.total_steps:
            # the warm-up's step s runs at (s + 1) / warmup_steps of lr: lr itself only at its last step
            reached = "reaches lr (%g) only at the last step" if cfg.warmup_steps == self.total_steps else \
                "never reaches lr (%g)"
            logging.getLogger("tunesmith").warning(
                "TrainConfig.warmup_steps (%d) is not below the run's %d optimizer steps: the learning rate "
                + reached + " and the schedule never starts; lower warmup_steps or use warmup_fraction",
                cfg.warmup_steps, self.total_steps, cfg.lr)
        self._warn_schedule_never_decays()
        warn_slow_batch_norms(self.model, (self.total_steps - self.step) * cfg.accumulate, self._thawing())
        # gradients left by a backward before fit would move frozen weights (and add to the first step's)
        self.optimizer.zero_grad(set_to_none=True)
        while not self._done():
            self._run_epoch(loader, val)
        if cfg.restore_best:
            self._restore_best()
        self.history.finished = True
        return self.history

    def _resumed(self, state: Mapping[str, Any], where: str, batches: int) -> None:
        """After a checkpoint was loaded: the run's length at this training set's size, and what the user
        should know (the schedule moved, an epoch past this set's end skipped, nothing left to train)."""
        self._resume_epoch_on(state, where, batches)
        best = self.history.best_checkpoint
        if self.config.restore_best and best:  # loaded at the run's end where no validation improves on it
            refuse_planted(Path(best), *self._best_planted(where))  # said before the training, and again as read
        stop = self._stop_of(state)
        if stop == "patience":
            self._go_on_with_patience(where)
        self.total_steps = self._run_steps(batches)
        self._warn_schedule_moved(state, where)
        if self._done():
            self._warn_nothing_left(where, stop)

    def _stop_of(self, state: Mapping[str, Any]) -> str | None:
        """Why the saved run had stopped early: "diverged" (a non-finite training loss), "patience" (its
        validations without an improvement reached the saved run's ``patience``), "other" (a callback set
        ``history.stopped_early``: a target reached, a non-finite validation a study's trial stops at), or None."""
        h = self.history
        if not h.stopped_early:
            return None
        last = h.records[-1] if h.records else None
        if last is not None and not math.isfinite(last.train_loss):
            return "diverged"
        saved = (state.get("config") or {}).get("patience")
        return "patience" if isinstance(saved, int) and self._bad >= saved else "other"

    def _go_on_with_patience(self, where: str) -> None:
        """A saved run stopped early by its patience goes on where this run's patience allows more validations
        without an improvement than it had (or none is set): the checkpoint's ``stopped_early`` ended the resumed
        run whatever ``patience`` it was given. A run that diverged or a callback stopped stays stopped."""
        h, patience = self.history, self.config.patience
        if patience is not None and self._bad >= patience:
            return
        h.stopped_early = False
        logging.getLogger("tunesmith").info(
            "resuming %s: the saved run had stopped early after %d validation%s without an improvement; patience=%s "
            "here, so training goes on", where, self._bad, "s" if self._bad != 1 else "", patience)

    def _resume_epoch_on(self, state: Mapping[str, Any], where: str, batches: int) -> None:
        """A checkpoint written inside an epoch, resumed on a training set of another size: the saved epoch's
        order (a permutation of the saved set's samples) cannot be continued on this one, whose permutation from
        the saved batch on skipped some samples and repeated others in that epoch (and, past a smaller set's
        end, yielded no batch: the epoch never ended). The epoch is read again from its start where fewer
        batches were read than remain, else its rest is skipped; either way said."""
        saved = state.get("train_samples")  # (not saved by an older tunesmith: its steps per epoch tell)
        other = (saved != self.train_samples if saved is not None
                 else (state.get("steps_per_epoch") or self.steps_per_epoch) != self.steps_per_epoch)
        if not (self._offset and other):
            return
        sizes = (f"{self.train_samples} samples where the saved run's had {saved}" if saved is not None
                 else f"{batches} batches per epoch, another number than the saved run's")
        left = batches - self._offset
        then = (f"epoch {self.epoch + 1} is read again from its start (the {self._offset} batches read before the "
                "checkpoint are seen twice in it, whichever samples they were)" if left > self._offset else
                f"the rest of epoch {self.epoch + 1} is skipped and training goes on with epoch {self.epoch + 2}")
        logging.getLogger("tunesmith").warning(
            "resuming %s in epoch %d after its batch %d, but this training set has %s: the saved epoch's order of "
            "samples cannot go on on it (it would skip some and repeat others), so %s", where, self.epoch + 1,
            self._offset, sizes, then)
        self.epoch, self._offset = (self.epoch, 0) if left > self._offset else (self.epoch + 1, 0)

    @staticmethod
    def _best_planted(where: str) -> tuple[str, str]:
        """What a resumed run's best.pt is named as where refused, and what to do instead."""
        return (f"best checkpoint named in {where} (restore_best loads it)",
                "resume with restore_best=False: the run then ends with its last weights, not those of that file")

    def _run_steps(self, batches: int) -> int:
        """The run's optimizer steps: those done, the rest of the current epoch and the epochs after it at
        this training set's size (``epochs`` times the steps per epoch, unless a resumed run's set is larger or
        smaller than the saved run's: its schedule then still ends with its last epoch), or ``max_steps``."""
        cfg = self.config
        if cfg.epochs is None:
            return total_steps_of(cfg, self.steps_per_epoch)
        rest = math.ceil((batches - self._offset) / cfg.accumulate) if self.epoch < cfg.epochs else 0
        by_epochs = self.step + rest + max(cfg.epochs - self.epoch - 1, 0) * self.steps_per_epoch
        return min(by_epochs, cfg.max_steps or by_epochs)

    def _warn_schedule_moved(self, state: Mapping[str, Any], where: str) -> None:
        """A resumed run whose schedule settings, length or training set size differ from the checkpoint's,
        such that the rate at the resumed step is not the one the saved run would have used there."""
        cfg, saved = self.config, state.get("config") or {}
        changed = {k: saved[k] for k in SCHEDULE_FIELDS if k in saved and saved[k] != getattr(cfg, k)}
        per_epoch = state.get("steps_per_epoch") or self.steps_per_epoch  # (not saved by an older tunesmith)
        if not (changed or per_epoch != self.steps_per_epoch) or self.step >= self.total_steps:
            return  # (at or past this run's end no step runs at the rate it would name)
        try:
            before = cfg.with_params(changed)
        except (TypeError, ValueError):  # a checkpoint of an older tunesmith whose values no longer pass
            return
        total = state.get("total_steps") or total_steps_of(before, per_epoch)
        moved = factor_moved(self.step, before, cfg, total_steps=(total, self.total_steps),
                             steps_per_epoch=(per_epoch, self.steps_per_epoch), reductions=self.plateau.reductions)
        if moved is None:
            return
        differ = [f"{k}={v!r} there, {getattr(cfg, k)!r} here" for k, v in changed.items()]
        if per_epoch != self.steps_per_epoch:
            differ.append(f"{per_epoch} optimizer steps per epoch there, {self.steps_per_epoch} here: a training set "
                          f"{'larger' if self.steps_per_epoch > per_epoch else 'smaller'} than the saved run's")
        warm = warmup_steps(cfg, self.total_steps)
        # a longer warmup_fraction puts the step back inside the warm-up: no decay restarts there
        jump = f"back inside a warm-up of {warm} steps" if self.step < warm else "a jump in its decay"
        other = [w for w, on in (("other schedule settings", changed),
                                 ("another training set size", per_epoch != self.steps_per_epoch)) if on]
        same = "settings and training set size" if per_epoch != self.steps_per_epoch else "settings"
        logging.getLogger("tunesmith").warning(
            "resuming %s at step %d with %s (%s): the schedule is a function of the step and "
            "of the run's total steps (%d there, %d here), so the learning rate at this step becomes %.4g where the "
            "saved run had %.4g (schedule=%r: %s, not the saved run's rates continued); resume with "
            "the checkpoint's %s to continue its rates, or start a new run from its weights "
            "(tunesmith.train.load_weights) with a schedule of its own", where, self.step, " and ".join(other),
            "; ".join(differ),
            total, self.total_steps, cfg.lr * moved[1], cfg.lr * moved[0], cfg.schedule, jump, same)

    def _warn_nothing_left(self, where: str, stop: str | None) -> None:
        """A resume at or past the run's end, or of a run that had stopped, trains nothing: said, naming the
        epochs (fit returned the checkpoint's history without a word). ``stop``: :meth:`_stop_of`."""
        cfg, h = self.config, self.history
        if h.stopped_early:
            why = {"diverged": "the saved run had stopped: its training loss diverged",
                   "patience": f"the saved run had stopped early ({plural(self._bad, 'validation')} without an "
                               f"improvement, patience={cfg.patience} here)"}.get(
                stop or "", "the saved run had been stopped by a callback (history.stopped_early), not by its "
                            "patience")
            fix = (f"to train on, resume with patience above {self._bad} (or None)" if stop == "patience" else
                   "to train on from its weights, start a new run: tunesmith.train.load_weights(model, path)")
        elif cfg.epochs is not None and self.epoch >= cfg.epochs:
            why = f"this run ends with epoch {cfg.epochs} (epochs={cfg.epochs})"
            fix = (f"to train longer, resume with more than {self.epoch} epochs "
                   f"(config.with_params({{'epochs': {self.epoch + cfg.epochs}}}))")
        else:
            why = f"this run ends at step {self.total_steps} (max_steps={cfg.max_steps})"
            fix = f"to train longer, resume with max_steps above {self.step}"
        logging.getLogger("tunesmith").warning(
            "resuming %s, saved after epoch %d (step %d), trains nothing: %s. fit returns the checkpoint's "
            "history%s; %s", where, self.epoch, self.step, why,
            " and its best weights (restore_best)" if cfg.restore_best else "", fix)

    def _warn_schedule_never_decays(self) -> None:
        """A step schedule whose first decay falls after the run's last step trains at a constant rate."""
        cfg = self.config
        if cfg.schedule != "step":
            return
        d = cfg.decay_steps or (cfg.decay_epochs or 1) * max(self.steps_per_epoch, 1)
        after_warmup = self.total_steps - warmup_steps(cfg, self.total_steps)
        if 0 < after_warmup <= d:  # (no step after warm-up: the warm-up warning says so)
            logging.getLogger("tunesmith").warning(
                "schedule='step' decays every %d optimizer steps (decay_steps or decay_epochs), but the run has %d "
                "after warm-up: the rate never decays and the run trains at a constant lr; lower decay_epochs "
                "(or decay_steps), or train longer", d, after_warmup)

    def _check_optimizer_holds_model(self) -> None:
        """Every parameter of the model is the optimizer's: a head replaced (or a layer added) after the
        Trainer was built would never train, in silence."""
        held = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        new = [name for name, p in self.model.named_parameters() if id(p) not in held]
        if new:
            raise ValueError(
                f"the model has parameters its optimizer does not hold ({', '.join(new[:3])}"
                f"{f' and {len(new) - 3} more' if len(new) > 3 else ''}): they were added after the Trainer was built "
                "(replace_head or a new layer), so they would never train. Build the Trainer after changing the model")

    def evaluate(self, data: Data) -> tuple[float, dict[str, float]]:
        """Mean loss and metrics of the model on ``data`` (no gradients, eval mode; each module's
        mode is then set back as it was)."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        outs, ys, total, count = [], [], 0.0, 0
        try:
            with torch.no_grad(), self._autocast():
                for batch in self._loader(data, shuffle=False, drop_last=False).epoch(0):
                    *inputs, y = to_device(batch, self.device)
                    out = self._call(inputs)
                    total += float(self._loss(out, y)) * len(y)
                    count += len(y)
                    if self.metrics:
                        outs.append(out.float().cpu())
                        ys.append(y.cpu())
        finally:  # also after an error: a caller that catches it goes on with the modes it had
            for m, training in modes:
                m.training = training
        if not self.metrics:
            return total / count, {}
        out_all, y_all = torch.cat(outs), torch.cat(ys)
        return total / count, {k: float(fn(out_all, y_all)) for k, fn in self.metrics.items()}

    def train_loader(self, train: Data) -> Loader:
        """The :class:`Loader` that ``fit`` reads ``train`` with (drop_last resolved for this model)."""
        n = check_data(train, "train")
        drop = resolve_drop_last(self.config.drop_last, n=n, batch_size=self.config.batch_size, model=self.model,
                                 thaws=self._thaws())
        return self._loader(train, shuffle=self.config.shuffle, drop_last=drop, persistent=self.config.persistent_workers)

    def _thaws(self) -> bool:
        """Whether a callback may thaw frozen blocks (their batch norm may train later)."""
        return any(isinstance(cb, GradualUnfreezing) for cb in self.callbacks)

    def _thawing(self) -> list[nn.Module]:
        """The blocks that a callback (GradualUnfreezing) makes trainable by the run's last epoch."""
        last_epoch = max(self.total_steps - 1, 0) // max(self.steps_per_epoch, 1)
        return [b for cb in self.callbacks if isinstance(cb, GradualUnfreezing)
                for b in cb.thawed_by(self.model, last_epoch)]

    def _loader(self, data: Data, *, shuffle: bool, drop_last: bool, persistent: bool = False) -> Loader:
        cfg = self.config
        pin = cfg.pin_memory is not False and self.device.type == "cuda"  # None: on with CUDA
        return Loader(data, cfg.batch_size, seed=cfg.seed, shuffle=shuffle, drop_last=drop_last,
                      num_workers=cfg.num_workers, pin_memory=pin, persistent_workers=persistent)

    def lr_now(self) -> float:
        """The main learning rate at the current step: that of the head's (or the only)
        weight matrices, which differs from the other groups' only with ``lr_adapt``."""
        groups = [g for g in self.optimizer.param_groups if not g["role"].startswith("backbone")]
        main = next((g for g in groups if g["role"].endswith("/decay")), groups[0])
        return float(main["base_lr"]) * self._factor()

    # -- the loop ------------------------------------------------------------------------
    def _done(self) -> bool:
        return self.history.stopped_early or self._out_of_budget()

    def _run_epoch(self, loader: Loader, val: Data | None) -> None:
        cfg = self.config
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch_start"):
                cb.on_epoch_start(self, self.epoch)
        self._train_mode()
        t0 = time.perf_counter()
        n_batches = loader.batches
        loss_sum, since, start = torch.zeros((), device=self.device), 0, self._offset  # fp32 sum
        for i, batch in enumerate(loader.epoch(self.epoch, start=start)):
            b = start + i
            group_start = b - b % cfg.accumulate
            group = min(cfg.accumulate, n_batches - group_start)
            n = len(batch[-1])  # a short last batch weighs by its samples, as in evaluate()
            # and so in its accumulation group's gradient: the group's is that of one batch of all its samples
            loss_sum += self._forward_backward(batch, n / loader.samples(group_start, group)) * n
            since += n
            self._acc[2] += len(batch[0])
            if b + 1 - group_start < group:
                continue
            self._optimizer_step()
            last = b + 1 == n_batches
            self.epoch, self._offset = (self.epoch + 1, 0) if last else (self.epoch, b + 1)
            at_end = self._out_of_budget()
            if at_end or (cfg.eval_every and self.step % cfg.eval_every == 0) or (last and not cfg.eval_every):
                self._acc[0] += float(loss_sum)
                self._acc[1] += since
                loss_sum.zero_()
                since = 0
                self._eval_point(val, t0)
                t0 = time.perf_counter()
            if self._done():
                return

    def _out_of_budget(self) -> bool:
        cfg = self.config
        return self.step >= self.total_steps or (cfg.epochs is not None and self.epoch >= cfg.epochs)

    def _forward_backward(self, batch: tuple[torch.Tensor, ...], weight: float) -> torch.Tensor:
        """Forward, loss (+ penalty) and backward of ``weight`` times it (the batch's share of the
        samples of its accumulation group); returns the batch's loss."""
        *inputs, y = to_device(batch, self.device)
        with self._autocast(), self._one_sample_check():
            out = self._call(inputs)
            loss = self._loss(out, y)
        pen = l1_l2_penalty(self._penalized, self.config.l1, self.config.l2)
        total = loss if pen is None else loss + pen
        if not loss.requires_grad:  # torch: "element 0 of tensors does not require grad" (with L1/L2: the penalty alone trained)
            raise ValueError(self._no_gradient())
        (total if weight == 1 else total * weight).backward()
        return loss.detach()

    def _one_sample_check(self) -> contextlib.AbstractContextManager[None]:
        """With batch_size=1, the first forward refuses batch norm given one value per channel, before
        anything trains (torch's "Expected more than 1 value per channel when training"); its input's
        shape tells, so a BatchNorm2d over feature maps trains on one sample."""
        if self.config.batch_size != 1 or self._one_checked:
            return contextlib.nullcontext()
        self._one_checked = True
        return refusing_one_value_per_channel(batch_norms(self.model, frozen=self._thaws()))

    def _no_gradient(self) -> str:
        """Why a training loss has no gradient: nothing trainable, or a loss cut off from the model."""
        if not any(p.requires_grad for p in self.model.parameters()):
            return ("no parameter of the model requires a gradient: everything is frozen, so there is nothing to "
                    "train. Thaw what should learn (tunesmith.train.unfreeze(model.head), unfreeze_last(blocks, k))")
        return ("the loss does not depend on the model's trainable parameters, so training would not change them: "
                "it is a constant, or computed from detached outputs (.detach(), .item(), .numpy(), "
                "torch.tensor(...)) or under torch.no_grad(); compute it from the model's output with torch operations")

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of a batch: one number (a per-sample vector met torch's "grad can be implicitly
        created only for scalar outputs" in training, "only one element tensors" in evaluation)."""
        loss = self.loss_fn(out, y)
        if not (isinstance(loss, torch.Tensor) and loss.ndim == 0):
            if not isinstance(loss, torch.Tensor):  # a float has no gradient: "not one number" was said of it
                raise ValueError(f"the loss function returned {a_type(loss)}, not a tensor: return the loss as a "
                                 "scalar tensor computed from the model's output with torch operations (no .item())")
            raise ValueError(f"the loss function returned shape {tuple(loss.shape)}, not one number: reduce it to a "
                             "scalar tensor (a mean over the batch: reduction='mean', or .mean())")
        return loss

    def _call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """``model(*inputs)``; torch's dtype mismatch on integer inputs (pixels or features read as
        int64) says which input to convert."""
        try:
            return self.model(*inputs)
        except RuntimeError as e:
            if "dtype" not in str(e):
                raise
            ints = [i for i, t in enumerate(inputs) if not (t.is_floating_point() or t.is_complex())]
            if ints:
                raise ValueError(f"the model failed on input {ints[0]}, which is {inputs[ints[0]].dtype} ({e}); if it "
                                 "holds numbers rather than indices, convert it: x.float()") from e
            weights = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), None)
            other = [i for i, t in enumerate(inputs) if t.is_floating_point() and t.dtype != weights]
            if weights is None or not other:
                raise
            # a Dataset's items are not checked before training (check_dtypes reads tuples of tensors)
            raise ValueError(f"the model failed on input {other[0]}, which is {inputs[other[0]].dtype} while its weights "
                             f"are {weights} ({e}); convert it: x.to({weights}) (a Dataset: return "
                             f"torch.as_tensor(x, dtype={weights}) from __getitem__)") from e

    def _optimizer_step(self) -> None:
        cfg = self.config
        f = self._factor()
        if self.hyper is not None:
            self.hyper.before_step()
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        if cfg.clip_norm is not None or cfg.clip_value is not None:
            params = [p for p in self.model.parameters() if p.grad is not None]
            if cfg.clip_value is not None:
                nn.utils.clip_grad_value_(params, cfg.clip_value)
            if cfg.clip_norm is not None:
                nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        self.optimizer.step()
        if self.hyper is not None:
            self.hyper.after_step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def _factor(self) -> float:
        return lr_factor(self.step, self.config, total_steps=self.total_steps,
                         steps_per_epoch=self.steps_per_epoch, reductions=self.plateau.reductions)

    def _train_mode(self) -> None:
        self.model.train()
        keep_frozen_in_eval(self.model)

    def _autocast(self) -> Any:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # -- validation, early stopping, checkpoints -------------------------------------------
    def _eval_point(self, val: Data | None, t0: float) -> None:
        cfg = self.config
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        loss_sum, counted, samples = self._acc
        self._acc = [0.0, 0, 0]
        train_loss = loss_sum / max(counted, 1)
        val_loss, metrics = self.evaluate(val) if val is not None else (None, {})
        score = train_loss if val_loss is None else val_loss
        h = self.history
        improved = score < h.best_loss  # the best so far: restored, checkpointed as best, returned
        # patience counts validations without a real improvement: min_delta below the loss of the
        # last one that was (a run creeping down by less than min_delta each time still stops)
        progressed = score < self._ref - cfg.min_delta
        if cfg.schedule == "plateau":  # before the record: its lr is that of the next step
            self.plateau.update(score)
        record = EvalRecord(
            index=len(h.records), epoch=self.epoch, step=self.step, train_loss=train_loss,
            val_loss=val_loss, metrics=metrics, lr=self.lr_now(), samples_per_s=samples / max(seconds, 1e-12),
            seconds=seconds, improved=improved, overfitting=h.live_flag(train_loss, val_loss, improved),
            lrs=self.hyper.learning_rates() if self.hyper is not None else {},
        )
        h.records.append(record)
        if improved:
            h.best_loss, h.best_index = score, record.index
            if cfg.restore_best:
                self._best_state = _cpu_state(self.model)
        if progressed:
            self._ref, self._bad = score, 0
        else:
            self._bad += 1
        if cfg.patience is not None and self._bad >= cfg.patience:
            h.stopped_early = True
        if val_loss is not None and not math.isfinite(val_loss) and math.isfinite(train_loss) and not self._warned_val:
            self._warned_val = True  # training goes on, but no validation can be the best: say so once
            logging.getLogger("tunesmith").warning(
                "the validation loss is %s at step %d while the training loss is finite: the validation data hold "
                "a NaN or inf (or the model fails in evaluation mode); no such validation counts as the best",
                val_loss, self.step)
        if not math.isfinite(train_loss):  # NaN/inf weights: no later step can recover them
            h.stopped_early = True
            logging.getLogger("tunesmith").warning(
                "the training loss is %s at step %d: the run diverged (a learning rate too high?) or the training "
                "data hold a NaN or inf; training stops here", train_loss, self.step)
        self._in_callbacks = True  # the older checkpoints are deleted after the callbacks (_rotate)
        recorded, done = False, 0
        try:
            self._checkpoint(improved)
            for cb in self.callbacks:
                if hasattr(cb, "on_eval"):
                    cb.on_eval(self, record)
                elif callable(cb):
                    cb(self, record)
                done += 1
            recorded = True
        except (TrialPaused, TrialPruned):  # raised once the validation's report (with its checkpoint) is written,
            # unless a callback before the one that records it (the study bridge's) raised: not yet written
            recorded = not any(getattr(cb, "records_checkpoint", False) for cb in self.callbacks[done + 1:])
            raise
        finally:
            self._in_callbacks = False
            if recorded:  # else (a Ctrl-C, a storage that refused the report) the record may name an older file
                self._rotate()

    def _checkpoint(self, improved: bool) -> None:
        d = self.config.checkpoint_dir
        if d is None:
            return
        write_last = len(self.history.records) % self.config.checkpoint_every == 0 or self._done()
        if improved:
            self.history.best_checkpoint = str(ckpt.best_path(d))
        if write_last:
            self.history.last_checkpoint = str(ckpt.last_path(d, self.step))
        if not (improved or write_last):
            return
        self._set_aside_others()
        state = self.state_dict()
        if write_last:
            self._save_last(d, state)
        if improved and write_last:
            _link_or_save(ckpt.last_path(d, self.step), ckpt.best_path(d), state)  # one file on disk
        elif improved:
            ckpt.save(ckpt.best_path(d), state, room=ckpt.TRAIN_ROOM)

    def _save_last(self, d: str, state: dict[str, Any]) -> None:
        self._set_aside_others()
        ckpt.save(ckpt.last_path(d, self.step), state, room=ckpt.TRAIN_ROOM)
        self._own.add(ckpt.last_path(d, self.step).name)
        self._rotate_due = True
        if not self._in_callbacks:
            self._rotate()

    def _rotate(self) -> None:
        """The older "last" checkpoints deleted, once the validation's callbacks have run: one of them (a
        study's trial) records the new file's path, and a process killed before it wrote it left a record
        naming a file already deleted (a resumed trial then trained again from the start)."""
        d = self.config.checkpoint_dir
        if self._rotate_due and d is not None:
            self._rotate_due = False
            mine = [Path(d) / name for name in sorted(self._own)]
            for p in ckpt.rotate(d, self.config.keep_last, among=mine):
                self._own.discard(p.name)

    def _sort_folder(self, resume_from: str | Path | None) -> None:
        """Which files of ``checkpoint_dir`` are this run's (a resume from a file there continues those of its
        step and below) and which another run's: an earlier run's (a script run again, a run started again without
        ``resume_from``) or, above a resumed step, a branch this run leaves. Those are set aside at this run's first
        checkpoint (:func:`checkpoint.set_aside`), never deleted: rotation keeps the highest steps and
        ``checkpoint.latest`` resumes the highest, so left in place they would outrank this run's own files."""
        d = self.config.checkpoint_dir
        if d is None:
            return
        here = Path(d).expanduser()
        ours = resume_from is not None and Path(resume_from).expanduser().resolve().parent == here.resolve()
        files = ckpt.list_last(here)
        self._own = {p.name for p in files if ours and (ckpt.step_of(p) or 0) <= self.step}
        self._others = [p for p in files if p.name not in self._own]
        best = ckpt.best_path(here)
        step, why = self._read_best(best) if ours and best.is_file() else (None, None)
        if best.is_file() and (not ours or self._branch_best(best, step, why)):
            self._others.append(best)
        elif ours and self.config.restore_best:
            self._cut_best(best, why)
        # what of another run there is: the steps above a resumed one (its step), or an earlier run's (None)
        self._branch = self.step if ours else None
        if not self._others:
            ckpt.end_cut_short(here)
        self._warn_others(d, ours)

    def _read_best(self, best: Path) -> tuple[int | None, OSError | ckpt.CheckpointError | None]:
        """The step of ``best`` (``best.pt`` of the folder this run resumed from), read cheaply (its pickle, not its
        tensors: ``map_location="meta"``), or why it cannot be read: cut short or corrupt (``CheckpointError``), or a
        permission (``PermissionError``). A file another user may have chosen is none of these: left as it is."""
        try:
            return ckpt.load(best, map_location="meta", planted=self._best_planted(self._resumed_from)).get("step"), None
        except UntrustedPathError:
            return None, None
        except (ckpt.CheckpointError, OSError) as exc:
            return None, exc

    def _branch_best(self, best: Path, step: int | None, why: Exception | None) -> bool:
        """Whether ``best`` (``best.pt`` of the folder this run resumed from; ``step`` or ``why`` not read) is set
        aside, not this run's to restore: written above the resumed step (by the branch this run leaves, whether or
        not that branch's "last" files are left: a study's resumed trial deletes them first); cut short or corrupt
        with that branch's files beside it; or unreadable for a permission (moved, its bytes kept; replaced, they
        would be lost). This run's best then restores from its own "last" file of that step where one is left (else
        from a later best, or its last weights, said). A cut one with no branch beside it is this run's own
        (:meth:`_cut_best`)."""
        branch = any((ckpt.step_of(p) or 0) > self.step for p in self._others)
        cut = isinstance(why, ckpt.CheckpointError)
        if (cut and not branch) or (why is None and (not isinstance(step, int) or step <= self.step)):
            return False
        mine, kept = self.history.best, self._own_best_file(best.parent)
        self.history.best_checkpoint = str(kept) if kept else None  # best.pt again once the branch's is moved
        if why is not None or (not kept and mine is not None):
            logging.getLogger("tunesmith").warning(
                "best.pt of TrainConfig.checkpoint_dir %r %s; %s%s", str(best.parent), _why_aside(step, why),
                _own_best(mine.step if mine is not None else None, kept is not None), "" if why is None else f". ({why})")
        return True

    def _own_best_file(self, folder: Path) -> Path | None:
        """This resumed run's "last" file of its best validation's step, where one is left whole in ``folder``."""
        mine = self.history.best
        own = ckpt.last_path(folder, mine.step) if mine is not None else None
        return own if own is not None and own.name in self._own and ckpt.is_complete(own) else None

    def _cut_best(self, best: Path, why: Exception | None) -> None:
        """A resumed run's own ``best.pt`` cut short (a copy, a full disk) or corrupt inside (``why``, as read at the
        start), or gone: restore_best would read it only after the whole run, and raise (or restore nothing). It is said now, and made again from
        this run's "last" file of that step where one is left (a hard link, kept past rotation); else this run ends
        with a later best, or its last weights."""
        named, gone = self.history.best_checkpoint, not os.path.lexists(best)
        if not (named and (gone or isinstance(why, ckpt.CheckpointError))
                and Path(named).expanduser().resolve() == best.resolve()):
            return
        kept = self._own_best_file(best.parent)
        self.history.best_checkpoint = str(_link_or_save(kept, best)) if kept else None
        if gone:  # deleted (a study's resumed trial drops a branch's): nothing to say, nothing was lost
            return
        mine = self.history.best
        logging.getLogger("tunesmith").warning(
            "best.pt of TrainConfig.checkpoint_dir %r is not a whole checkpoint (cut short or corrupt inside: a copy, a "
            "full disk); %s. "
            "(%s)", str(best.parent), f"made again from {kept.name}, this run's file of its best step" if kept else
            _own_best(mine.step if mine is not None else None, False), why)

    def _warn_others(self, d: str | Path, resumed: bool) -> None:
        """Say what of another run ``checkpoint_dir`` holds, where this run moves it, and how to go on with it."""
        kept = [p for p in self._others if not ckpt.cut_short(p)]  # a truncated one: none (deleted, not moved)
        if not kept:
            return
        last = [p for p in kept if ckpt.step_of(p) is not None and p.is_file()]
        odd = [p.name for p in kept if ckpt.step_of(p) is not None and not p.is_file()]  # a folder of that name
        what = " and ".join(  # not "0 ... and best.pt"
            ([f"{len(last)} \"last\" checkpoint{'' if len(last) == 1 else 's'} (the newest: {last[-1].name})"]
             if last else []) + (["best.pt"] if any(ckpt.step_of(p) is None for p in kept) else [])
            + ([f"{', '.join(odd)} (not a file, named like a \"last\" checkpoint)"] if odd else []))
        whose = (f"above the resumed step {self.step}, of the branch this run leaves" if resumed
                 else "of an earlier run")
        it = "it" if len(kept) == 1 else "them"
        logging.getLogger("tunesmith").warning(
            "TrainConfig.checkpoint_dir %r holds %s %s: this run moves %s into %s at "
            "its first checkpoint (where checkpoint.latest, which resumes the highest step, no longer finds %s and "
            "nothing deletes %s), so that the folder holds this run's files alone. To go on with that run instead, "
            "stop now and pass fit(..., resume_from=tunesmith.train.checkpoint.latest(%r)); after the move, train "
            "with that folder as checkpoint_dir and resume_from=tunesmith.train.checkpoint.latest(<that folder>)",
            str(d), what, whose, it, ckpt.aside_for(d, kept, above=self._branch), it, it, str(d))

    def _set_aside_others(self) -> None:
        """Move another run's files out of this run's way, before this run's first checkpoint is written."""
        d = self.config.checkpoint_dir
        if self._others and d is not None:
            others, self._others = self._others, []
            aside = ckpt.set_aside(d, others, above=self._branch)
            own = self.history.best_checkpoint
            if own and ckpt.step_of(own) is not None and Path(own).is_file():  # this run's best, the branch's aside
                self.history.best_checkpoint = str(_link_or_save(Path(own), ckpt.best_path(d)))  # past rotation
            if aside is not None:
                what, which = (("the checkpoints above the resumed step, of the branch this run leaves,", "branch")
                               if self._branch is not None else ("the earlier checkpoints", "run"))
                logging.getLogger("tunesmith").warning(
                    "%s of TrainConfig.checkpoint_dir %r are in %r now: to go on with that %s, train with "
                    "checkpoint_dir=%r and resume_from=tunesmith.train.checkpoint.latest(%r)",
                    what, str(d), str(aside), which, str(aside), str(aside))

    def checkpoint_now(self) -> str | None:
        """Write the "last" checkpoint of the current step if ``checkpoint_every``
        skipped it (a run paused here must resume from exactly here); its path,
        or None without a ``checkpoint_dir``."""
        d = self.config.checkpoint_dir
        if d is None:
            return None
        path = str(ckpt.last_path(d, self.step))
        if self.history.last_checkpoint != path or not Path(path).is_file():
            self.history.last_checkpoint = path
            self._save_last(d, self.state_dict())
        return path

    def _restore_best(self) -> None:
        best = self._best_state if self._best_state is not None else self._saved_best()
        if best is not None:
            self.model.load_state_dict(best)

    def _saved_best(self) -> dict[str, torch.Tensor] | None:
        """The best weights of a resumed run, from its ``best.pt``: the part that file leaves out (frozen
        when it was written) is taken from the model as built, since gradual unfreezing may have
        trained that part after the best validation."""
        path = self.history.best_checkpoint
        if self._built is None or not (path and Path(path).is_file()):
            return None
        best = ckpt.load(path, planted=self._best_planted(self._resumed_from))
        check_fields(best, repr(path), resumable=False)
        meta = best.get("model_meta")
        return dict(best["model"]) if meta is None else complete_state(self._built, best["model"], meta, repr(path))

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (see :meth:`save` / ``fit(resume_from=...)``): the
        model without its frozen part (fingerprinted), as tensors and plain values."""
        model, meta = model_state(self.model, self._frozen_hash)
        return {
            "format": "tunesmith.train/2",
            "model": model,
            "model_meta": meta,
            "optimizer": self.optimizer.state_dict(),
            "plateau": self.plateau.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "offset": self._offset,
            "acc": list(self._acc),
            "bad": self._bad,
            "ref": self._ref,
            # mid-run, so never finished: left out, the checkpoint reads in a tunesmith before History.finished
            "history": {k: v for k, v in self.history.to_dict().items() if k != "finished"},
            # what the schedule followed: a resume on a larger or smaller training set is compared with it
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "train_samples": self.train_samples,
            "rng": ckpt.rng_state(),
            "config": self.config.to_dict(),
            "hypergrad": None if self.hyper is None else self.hyper.state_dict(),
        }

    def load_state(self, state: dict[str, Any], *, where: str = "the checkpoint") -> None:
        """Continue from ``state`` (see :meth:`state_dict`); refuses one of another model,
        optimizer or batch size, saying what differs."""
        if "optimizer" not in state:
            raise ckpt.CheckpointError(
                f"{where} holds a finished trial's weights only (no optimizer or random states), so "
                "training cannot resume from it; load it with tunesmith.train.load_weights(model, path)"
            )
        check_fields(state, where)
        _check_same_run(state.get("config") or {}, self.config, where)
        self._load_tensors(state, where)
        self.plateau.load_state_dict(state["plateau"])
        self.step, self.epoch, self._offset = state["step"], state["epoch"], state["offset"]
        self._acc, self._bad = list(state["acc"]), state["bad"]
        self.history = History.from_dict(state["history"])
        d = self.config.checkpoint_dir
        for key in ("best_checkpoint", "last_checkpoint"):
            path = getattr(self.history, key)  # written where the folder was before it moved: here now
            moved = ckpt.moved_into(path, d) if d is not None and path else path
            # the moved folder's own file, even where another is at the old place (someone's, after the move)
            if moved != path and (Path(moved).is_file() or not Path(path).is_file()):
                setattr(self.history, key, moved)
        self._ref = state.get("ref", self.history.best_loss)  # older checkpoints: the same
        self._best_state = None

    def _load_tensors(self, state: dict[str, Any], where: str) -> None:
        """Load the model, optimizer, adapted rates and random states of ``state``, or none of them:
        torch refuses some mismatches only after part of it was loaded. The model, checked first, loads
        last: copying it to undo a failure cost as much as the rest of the resume."""
        model = checked_state(self.model, state["model"], state.get("model_meta"), where)
        undo = copy.deepcopy(self.optimizer.state_dict()), ckpt.rng_state()
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.hyper is not None and state.get("hypergrad") is not None:
                self.hyper.load_state_dict(state["hypergrad"])
            ckpt.set_rng_state(state["rng"])
        except Exception as exc:
            self.optimizer.load_state_dict(undo[0])
            ckpt.set_rng_state(undo[1])
            raise ckpt.CheckpointMismatch(
                f"{where} does not fit this run ({type(exc).__name__}: {exc}); resume from a checkpoint this "
                "model and optimizer wrote, or start a new run (no resume_from)") from exc
        self.model.load_state_dict(model)

    def save(self, path: str | Path) -> Path:
        """Write a resumable checkpoint to ``path``."""
        return ckpt.save(path, self.state_dict())


#: settings a resumed run must share with the checkpoint (the optimizer's state and the
#: step and batch accounting depend on them; the optimizer's groups hold the rates, betas, eps,
#: decay and momentum, and loading its state restores them, so another value would be ignored)
SAME_RUN = ("optimizer", "batch_size", "accumulate", "lr_adapt", "lr", "backbone_lr", "beta1", "beta2", "eps",
            "weight_decay", "amsgrad", "momentum", "nesterov")


def _own_best(step: int | None, kept: bool) -> str:
    """What a resumed run whose folder's best.pt is set aside restores at its end (``step``: its best validation's)."""
    if step is None:
        return "this run restores its own best once it has one"
    if kept:
        return f"this run's best validation (step {step}) restores from its own \"last\" file of that step"
    return (f"this run's best validation (step {step}) has no file left there, so restore_best ends this run with a "
            "later best, or its last weights")


def _why_aside(step: int | None, why: Exception | None) -> str:
    """Why a resumed run's folder's best.pt is set aside (:meth:`Trainer._branch_best`)."""
    if why is None:
        return f"is of step {step}, of the branch this run leaves (set aside with it)"
    if isinstance(why, ckpt.CheckpointError):
        return "cannot be read, so it is set aside with the branch this run leaves, not restored"
    fix = (": to use it, give yourself read permission on it (chmod u+r; a file of another user: its owner may chown "
           "it to you)" if isinstance(why, PermissionError) else "")
    return f"cannot be read, so it is set aside (moved, its bytes kept), not restored{fix}"


def _check_same_run(saved: dict[str, Any], config: TrainConfig, where: str) -> None:
    now = config.to_dict()
    differ = [f"{k}={saved[k]!r} there, {now[k]!r} here" for k in SAME_RUN if k in saved and saved[k] != now[k]]
    if differ:
        raise ckpt.CheckpointMismatch(
            f"{where} was written by a run with other settings ({'; '.join(differ)}); resuming would not "
            "continue that run. Resume with the same settings, or start a new run (no resume_from)"
        )


def _link_or_save(src: Path, dst: Path, state: dict[str, Any] | None = None) -> Path:
    """``dst`` made to name the file ``src`` (a hard link); a copy of it on a file system without hard links, saved
    from ``state`` (read from ``src`` where not given): a run there raised ``PermissionError`` at its start where
    it made its cut-short ``best.pt`` again, and at its first checkpoint where it set a branch's ``best.pt`` aside."""
    try:
        return ckpt.link(src, dst)
    except OSError:  # a file system without hard links
        return ckpt.save(dst, ckpt.load(src) if state is None else state, room=ckpt.TRAIN_ROOM)


def _hyper(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> HypergradientLR | None:
    if cfg.lr_adapt is None or cfg.hyper_lr is None:
        return None
    rule = "multiplicative" if cfg.lr_adapt == "hypergradient-mult" else "additive"
    return HypergradientLR(optimizer, hyper_lr=cfg.hyper_lr, rule=rule)


def as_callbacks(callbacks: Any) -> list[Any]:
    """``callbacks`` as a list: one callback given alone (``callbacks=GradualUnfreezing(...)``) was
    "object is not iterable"."""
    many = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
    for cb in many:
        if isinstance(cb, type):  # its methods are found on the class, then fail when called
            raise TypeError(f"callbacks take instances: {cb.__name__} is the class; pass {cb.__name__}(...)")
    one = callable(callbacks) or hasattr(callbacks, "on_epoch_start") or hasattr(callbacks, "on_eval")
    if not one and (isinstance(callbacks, (str, bytes, Mapping)) or not isinstance(callbacks, Iterable)):
        raise TypeError(f"callbacks is a callback or a list of them, got {callbacks!r}")  # "'int' object is not iterable"
    return [callbacks] if one else list(callbacks)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
