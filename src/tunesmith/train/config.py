"""The trainer's configuration: one frozen, validated dataclass (no torch here).

Every field is a plain value, so a trial's parameters map onto it by name:
``TrainConfig(**{**base.to_dict(), **trial.params})`` (see :func:`TrainConfig.with_params`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..space.params import did_you_mean

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "exponential", "cosine", "linear", "plateau")
#: the schedules that decay over the whole run to ``min_lr`` (the only ones that use it)
ENDING_AT_MIN_LR = ("cosine", "linear")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
LR_ADAPT = (None, "hypergradient", "hypergradient-mult")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Optimizer:
        optimizer: "adam", "adamw" (decoupled weight decay) or "sgd" (with momentum).
        lr: peak learning rate (after warm-up). backbone_lr: learning rate of
            the parameters outside the head when fine-tuning (None: ``lr``).
        beta1, beta2, eps, amsgrad: Adam's moment decays, epsilon and AMSGrad.
        momentum, nesterov: SGD only.
        weight_decay: applied only to weight matrices (``ndim >= 2``), never to
            biases or normalization scales.
        l1, l2: penalties ``l1 * sum|w| + l2 * sum w^2`` over the same weight
            matrices, added to the training loss.
    Learning-rate adaptation:
        lr_adapt: None (off) or "hypergradient": each parameter group's base
            rate (``lr``, ``backbone_lr``) is adapted online by hypergradient
            descent (Baydin et al. 2018; see ``hypergrad.py``) with step size
            ``hyper_lr`` (required then): ``lr += hyper_lr * grad . u_prev``;
            "hypergradient-mult": the scale-free multiplicative rule,
            ``lr *= 1 + hyper_lr * cos(grad, u_prev)`` (hyper_lr < 1, ~ 0.01-0.05 for
            any model). Warm-up and the schedule multiply the adapted base
            rate as they multiply a fixed one.
    Schedule (a pure function of the optimizer step, see ``schedule.lr_at``):
        warmup_steps or warmup_fraction (of all steps, to the nearest step, halves up): linear warm-up from 0.
        schedule: "constant", "step" (``gamma ** floor(t / decay_steps)``),
            "exponential" (``gamma ** (t / decay_steps)``), "cosine" and "linear" (to
            ``min_lr`` at the run's last step, at most ``lr``: a larger one is refused; the other
            schedules do not use ``min_lr``) or "plateau" (times ``plateau_factor`` after
            ``plateau_patience`` evaluations without improvement).
        decay_steps or decay_epochs: optimizer steps, or epochs, per decay for
            step/exponential (neither: one epoch).
    Loop:
        batch_size, epochs or max_steps (the first reached ends training),
        accumulate (gradient accumulation: optimizer step every N batches, with the gradient of one
        batch of all their samples),
        clip_norm / clip_value (gradient clipping), eval_every (optimizer steps
        between validations; None: each epoch).
    Data loading (training set; validation is read in order, nothing dropped):
        shuffle (a new order each epoch, a function of ``(seed, epoch)``);
        drop_last: True drops a last batch smaller than ``batch_size``, False
        keeps it, None ("auto", the default) drops it only when it holds one
        sample and the model has batch norm (which cannot train on one sample);
        num_workers: worker processes reading a Dataset (0: in this process;
        tensors are always indexed in this process); pin_memory (None: on
        when training on CUDA); persistent_workers: keep workers between epochs.
    Early stopping: patience (evaluations without an improvement of the
        validation loss by more than min_delta; None: off), restore_best.
    Checkpoints: checkpoint_dir (None: none written), checkpoint_every
        (evaluations between "last" checkpoints), keep_last (rotation: at most
        this many "last" checkpoints plus one "best" stay on disk).
    Device: device "auto" (CUDA when present) / "cpu" / "cuda" / "cuda:N" (the
        CUDA device of index N) or a ``torch.device`` (kept as its name); precision
        "auto" (bf16 autocast on CUDA, fp32 on CPU) / "fp32" / "bf16".
    seed: seeds the batch order and dropout (the random states are set when ``fit`` starts,
        after the model was built: its initialization is the caller's; ``objective`` seeds
        torch with it before ``build_model``).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    backbone_lr: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    amsgrad: bool = False
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    lr_adapt: str | None = None
    hyper_lr: float | None = None
    warmup_steps: int = 0
    warmup_fraction: float = 0.0
    schedule: str = "constant"
    decay_steps: int | None = None
    decay_epochs: int | None = None
    gamma: float = 0.5
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    batch_size: int = 32
    epochs: int | None = 10
    max_steps: int | None = None
    accumulate: int = 1
    clip_norm: float | None = None
    clip_value: float | None = None
    eval_every: int | None = None
    shuffle: bool = True
    drop_last: bool | None = None
    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool = False
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    checkpoint_dir: str | None = None  # a pathlib.Path is taken, and kept as its string
    checkpoint_every: int = 1
    keep_last: int = 1
    device: str | torch.device = "auto"
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        self._as_python_scalars()
        self._check_checkpoint_dir()
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        self._check_device()
        _choice("precision", self.precision, PRECISIONS)
        self._check_rates()
        self._check_counts()

    def _as_python_scalars(self) -> None:
        """NumPy's scalars (a grid of np.arange, a DataFrame's row) as Python's."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
                object.__setattr__(self, f.name, value.item())  # "must be an integer >= 1, got np.int64(32)"

    def _check_rates(self) -> None:
        """Learning rates, decays, warmup and schedule factors."""
        if self.lr == 0:  # the usual reasons for 0 have their own settings
            raise ValueError("TrainConfig.lr must be a number > 0, got 0; to keep part of the model still, freeze it "
                             "(tunesmith.train.freeze) or give it backbone_lr=0 with a head; to evaluate only, "
                             "use Trainer(...).evaluate(data)")
        _positive("lr", self.lr)
        self._check_lr_adapt()
        if self.backbone_lr is not None:
            _at_least("backbone_lr", self.backbone_lr, 0.0)
        for name in ("beta1", "beta2", "momentum"):  # a decay of 1 or more never forgets: the steps grow without end
            v = getattr(self, name)
            if not (_num(v) and 0.0 <= v < 1.0):
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {v!r}")
        _positive("eps", self.eps)
        for name in ("weight_decay", "l1", "l2", "min_delta", "min_lr", "warmup_fraction"):
            _at_least(name, getattr(self, name), 0.0)
        if self.schedule in ENDING_AT_MIN_LR and _num(self.min_lr) and self.min_lr > self.lr:
            raise ValueError(
                f"TrainConfig.min_lr ({self.min_lr!r}) > TrainConfig.lr ({self.lr!r}) with schedule={self.schedule!r}: "
                f"min_lr is the rate the {self.schedule} schedule ends at, so it must not exceed the peak lr (it was once "
                "clamped to lr, a constant schedule); lower min_lr or raise lr (when both are searched, give "
                "min_lr a range below lr's, or search a ratio and set min_lr = ratio * lr in the objective)"
            )
        if self.warmup_fraction >= 1.0:
            raise ValueError(f"TrainConfig.warmup_fraction must be < 1, got {self.warmup_fraction!r}")
        if self.warmup_steps and self.warmup_fraction:
            raise ValueError("TrainConfig: set warmup_steps or warmup_fraction, not both")
        for name in ("gamma", "plateau_factor"):
            v = getattr(self, name)
            if not (_num(v) and 0.0 < v <= 1.0):
                raise ValueError(f"TrainConfig.{name} must be in (0, 1], got {v!r}")

    def _check_counts(self) -> None:
        """Sizes, step counts, flags, the seed and clipping."""
        for name in ("batch_size", "accumulate", "checkpoint_every", "keep_last", "plateau_patience"):
            _int_at_least(name, getattr(self, name), 1)
        _int_at_least("warmup_steps", self.warmup_steps, 0)
        _int_at_least("num_workers", self.num_workers, 0)
        for name in ("amsgrad", "nesterov", "restore_best", "shuffle", "persistent_workers", "drop_last", "pin_memory"):
            _flag(name, getattr(self, name), optional=name in ("drop_last", "pin_memory"))
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("TrainConfig.nesterov needs momentum > 0 (Nesterov's method is a kind of "
                             "momentum); set momentum (e.g. 0.9) or nesterov=False")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"TrainConfig.seed must be an integer, got {self.seed!r}")
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError("TrainConfig.persistent_workers needs num_workers > 0")
        if self.decay_steps is not None and self.decay_epochs is not None:
            raise ValueError("TrainConfig: set decay_steps or decay_epochs, not both")
        for name in ("epochs", "max_steps", "decay_steps", "decay_epochs", "eval_every"):
            if getattr(self, name) is not None:
                _int_at_least(name, getattr(self, name), 1)
        if self.patience is not None and not (isinstance(self.patience, int) and not isinstance(self.patience, bool)
                                              and self.patience >= 1):
            raise ValueError(f"TrainConfig.patience must be an integer >= 1 (validations without improvement before "
                             f"stopping), got {self.patience!r}; patience=None turns early stopping off")
        if self.epochs is None and self.max_steps is None:
            raise ValueError("TrainConfig: set epochs or max_steps (or both)")
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))

    def _check_checkpoint_dir(self) -> None:
        """A folder's name, kept as a string: a pathlib.Path reached the checkpoint's config as a Python
        object, which ``torch.load(weights_only=True)`` refuses, so the run's own checkpoints did not load."""
        d = self.checkpoint_dir
        if isinstance(d, os.PathLike) and isinstance(os.fspath(d), str):
            d = os.fspath(d)
        if d is not None and not (isinstance(d, str) and d):
            raise ValueError(f"TrainConfig.checkpoint_dir must be a folder's path (a str or pathlib.Path) or None "
                             f"(no checkpoints), got {d!r}")
        if d is not None and d.startswith("~"):  # "~/runs" made a folder named "~" in the working directory
            d = os.path.expanduser(d)
        object.__setattr__(self, "checkpoint_dir", d)

    def _check_device(self) -> None:
        object.__setattr__(self, "device", _device_name(self.device))  # stays a plain string (checkpoints, JSON)

    def _check_lr_adapt(self) -> None:
        _choice("lr_adapt", self.lr_adapt, LR_ADAPT)
        if self.lr_adapt is None and self.hyper_lr is not None:
            raise ValueError("TrainConfig.hyper_lr is set but lr_adapt is None; set lr_adapt='hypergradient' "
                             "(or 'hypergradient-mult') to use it")
        if self.lr_adapt is not None and self.hyper_lr is None:
            raise ValueError(
                "TrainConfig(lr_adapt=...) needs hyper_lr, the step size of the learning rate "
                "(additive 'hypergradient': its scale depends on the gradients, try 1e-3 for SGD and 1e-4 "
                "for Adam; 'hypergradient-mult': a relative change per step, try 0.02)"
            )
        if self.hyper_lr is not None:
            _positive("hyper_lr", self.hyper_lr)
        if self.lr_adapt == "hypergradient-mult" and self.hyper_lr is not None and self.hyper_lr >= 1.0:
            raise ValueError(
                f"TrainConfig(lr_adapt='hypergradient-mult') needs hyper_lr < 1, got {self.hyper_lr!r}: it is the "
                "largest relative change of the rate per step, lr *= 1 + hyper_lr * cos(grad, previous step), so at "
                "1 or more one step against the previous direction sets the rate to 0 or below; try 0.02-0.1 "
                "(or the additive lr_adapt='hypergradient', whose hyper_lr has the units of lr^2 / loss)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_params(self, params: Mapping[str, Any]) -> TrainConfig:
        """A copy with the fields named in ``params`` replaced; other keys ignored."""
        known = {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: v for k, v in params.items() if k in known})

    @staticmethod
    def field_names() -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(TrainConfig))


# names users give TrainConfig fields; a space parameter spelt so reaches only build_model
_ALIASES = {
    "learning_rate": "lr", "lr_rate": "lr", "learningrate": "lr", "base_lr": "lr", "max_lr": "lr",
    "beta_1": "beta1", "beta_2": "beta2", "b1": "beta1", "b2": "beta2", "epsilon": "eps", "adam_eps": "eps",
    "wd": "weight_decay", "l2_reg": "l2", "l1_reg": "l1",
    "optim": "optimizer", "opt": "optimizer", "scheduler": "schedule", "lr_schedule": "schedule",
    "lr_scheduler": "schedule", "warmup": "warmup_fraction", "warmup_ratio": "warmup_fraction",
    "bs": "batch_size", "batchsize": "batch_size", "n_epochs": "epochs", "num_epochs": "epochs",
    "max_epochs": "epochs", "clip": "clip_norm", "grad_clip": "clip_norm", "max_grad_norm": "clip_norm",
    "gradient_clip_val": "clip_norm", "early_stopping_patience": "patience",
    # Hugging Face TrainingArguments, Lightning, Keras and torch's schedulers
    "adam_beta1": "beta1", "adam_beta2": "beta2", "adam_epsilon": "eps", "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size", "lr_scheduler_type": "schedule",
    "gradient_accumulation_steps": "accumulate", "accumulate_grad_batches": "accumulate",
    "clipnorm": "clip_norm", "clipvalue": "clip_value", "gradient_clip_value": "clip_value",
    "eval_steps": "eval_every", "save_total_limit": "keep_last", "output_dir": "checkpoint_dir",
    "eta_min": "min_lr",
}
#: names whose field a sentence names: two fields at once, or a flag that is one value of a field
_EXPLAINED = {
    "betas": "give beta1=..., beta2=...: torch's betas=(b1, b2) is beta1=b1, beta2=b2",
    "fp16": "tunesmith's mixed precision is bf16, not fp16: give precision='bf16' (or 'auto', the default: bf16 "
            "autocast on CUDA, fp32 on the CPU); fp16=False is precision='fp32'",
    "bf16": "give precision='bf16' (bf16=False is precision='fp32'; 'auto', the default, is bf16 on CUDA)",
}


def lookalike(name: str) -> str | None:
    """The TrainConfig field that ``name`` (not a field) most likely means, or None."""
    fields = TrainConfig.field_names()
    if name in fields:
        return None
    key = name.lower().replace("-", "_")
    if key in fields:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.85)
    return close[0] if close else None


def _hint(name: str) -> str:
    """``name`` (not a field) as the unknown-field error names it, with the field meant where one is."""
    key = name.lower().replace("-", "_")
    if key in _EXPLAINED:  # Betas= as betas=
        return f"{name!r} ({_EXPLAINED[key]})"
    field = lookalike(name)
    return repr(name) if field is None else f"{name!r} (did you mean {field!r}?)"


def _refuse_unknown_fields(init: Any) -> Any:
    """``TrainConfig(learning_rate=...)`` names the field meant, not only the unknown keyword."""

    @functools.wraps(init)
    def checked(self: TrainConfig, *args: Any, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in TrainConfig.field_names()]
        if unknown:
            raise TypeError(f"TrainConfig has no field {', '.join(map(_hint, unknown))}; its fields: "
                            f"{', '.join(sorted(TrainConfig.field_names()))}")
        init(self, *args, **kwargs)

    return checked


TrainConfig.__init__ = _refuse_unknown_fields(TrainConfig.__init__)  # type: ignore[method-assign]


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _device_name(value: Any) -> str:
    """A device's name ("cuda:1" for torch.device("cuda", 1)); ValueError naming the accepted forms."""
    name = str(value) if type(value).__name__ == "device" else value  # a torch.device, without importing torch
    if name in DEVICES or (isinstance(name, str) and re.fullmatch(r"cuda:[0-9]+", name)):
        return str(name)
    raise ValueError(f"TrainConfig.device must be one of {list(DEVICES)} or 'cuda:N' (the CUDA device of index N, "
                     f"e.g. 'cuda:1'), got {value!r}")


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"TrainConfig.{name} must be one of {list(allowed)}, got {value!r}"
                         f"{did_you_mean(value, [str(a) for a in allowed])}")


def _flag(name: str, value: Any, *, optional: bool) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        allowed = "True, False or None" if optional else "True or False"
        raise ValueError(f"TrainConfig.{name} must be {allowed}, got {value!r}")


def _positive(name: str, value: Any) -> None:
    if not (_num(value) and value > 0):
        raise ValueError(f"TrainConfig.{name} must be a number > 0, got {value!r}")


def _at_least(name: str, value: Any, low: float) -> None:
    if not (_num(value) and value >= low):
        raise ValueError(f"TrainConfig.{name} must be a number >= {low}, got {value!r}")


def _int_at_least(name: str, value: Any, low: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, got {value!r}")
