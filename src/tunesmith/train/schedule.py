"""Learning-rate schedules as a pure function of the optimizer step (no torch).

``lr_factor(step, ...)`` returns the multiplier of each parameter group's base
learning rate at optimizer step ``step`` (0-based): linear warm-up over ``w``
steps, ``(step + 1) / w``, then with ``t = step - w`` and ``T = total - w``:

=============  ==============================================================
constant       1
step           gamma ** floor(t / d)
exponential    gamma ** (t / d)
cosine         m + (1 - m) * (1 + cos(pi * min(t, T) / T)) / 2,  m = min_lr / lr
linear         m + (1 - m) * (1 - min(t, T) / T)                  (Hugging Face's default)
plateau        plateau_factor ** reductions  (reductions counted by :class:`Plateau`)
=============  ==============================================================
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .config import ENDING_AT_MIN_LR, TrainConfig


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.warmup_steps:
        return cfg.warmup_steps
    return math.floor(cfg.warmup_fraction * total_steps + 0.5)  # halves up: round() took 2.5 to 2 and 3.5 to 4


def lr_factor(
    step: int, cfg: TrainConfig, *, total_steps: int, steps_per_epoch: int, reductions: int = 0
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``."""
    w = warmup_steps(cfg, total_steps)
    if step < w:
        return (step + 1) / w
    t = step - w
    d = cfg.decay_steps or (cfg.decay_epochs or 1) * max(steps_per_epoch, 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return float(cfg.gamma ** (t // d))
    if cfg.schedule == "exponential":
        return float(cfg.gamma ** (t / d))
    if cfg.schedule in ENDING_AT_MIN_LR:
        big_t = max(total_steps - w, 1)
        m = cfg.min_lr / cfg.lr  # <= 1: TrainConfig refuses min_lr > lr
        if cfg.schedule == "cosine":
            return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * min(t, big_t) / big_t))
        return m + (1.0 - m) * (1.0 - min(t, big_t) / big_t)
    return float(cfg.plateau_factor**reductions)


#: the settings the schedule's factor at a step depends on (with the run's total steps)
SCHEDULE_FIELDS = ("epochs", "max_steps", "schedule", "warmup_steps", "warmup_fraction", "decay_steps", "decay_epochs",
                   "gamma", "min_lr", "plateau_factor")


def total_steps_of(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The run's optimizer steps: ``epochs`` epochs or ``max_steps``, whichever ends it first."""
    by_epochs = cfg.epochs * steps_per_epoch if cfg.epochs else math.inf
    return int(min(by_epochs, cfg.max_steps or math.inf))


def factor_moved(
    step: int, saved: TrainConfig, now: TrainConfig, *, total_steps: tuple[int, int],
    steps_per_epoch: tuple[int, int], reductions: int = 0
) -> tuple[float, float] | None:
    """The schedule's factors at ``step`` under the run ``saved`` and under ``now`` (the same model
    and optimizer, other schedule settings, length or training set size), each with its run's total
    steps and steps per epoch, or None where they agree: a resumed run whose longer ``epochs`` or
    larger training set stretches a cosine, or moves a ``warmup_fraction``, jumps in rate."""
    before, after = (lr_factor(step, c, total_steps=t, steps_per_epoch=s, reductions=reductions)
                     for c, t, s in zip((saved, now), total_steps, steps_per_epoch, strict=True))
    return None if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12) else (before, after)


def lr_at(step: int, cfg: TrainConfig, *, total_steps: int, steps_per_epoch: int, reductions: int = 0) -> float:
    """The main learning rate (``cfg.lr`` times :func:`lr_factor`)."""
    f = lr_factor(step, cfg, total_steps=total_steps, steps_per_epoch=steps_per_epoch, reductions=reductions)
    return cfg.lr * f


@dataclasses.dataclass
class Plateau:
    """Counts learning-rate reductions for the "plateau" schedule.

    After ``patience`` evaluations whose validation loss did not beat the best
    by more than ``min_delta``, one more reduction is counted (and the count of
    bad evaluations restarts), like torch's ReduceLROnPlateau.
    """

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    bad: int = 0
    reductions: int = 0

    def update(self, val_loss: float) -> int:
        if val_loss < self.best - self.min_delta:
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.reductions += 1
                self.bad = 0
        return self.reductions

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set the fields named in ``state`` (read from a checkpoint: no other attribute)."""
        fields = {f.name for f in dataclasses.fields(self)}
        for k, v in state.items():
            if k in fields:
                setattr(self, k, v)
