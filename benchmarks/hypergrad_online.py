"""The one gradient-tuning setting that both benchmark tasks run (benchmarks/hypergrad.md):
hyperparameter steps from early in a single training run, on the task's own training run.

Stated in fractions of the task's full training run, so that nothing in it is fitted to a task:
``WARM`` of the run's training steps first, then a hyperparameter step after every ``INNER``
of them (warm-continued weights); implicit hypergradients by CG (``CG_ITERS`` iterations,
damping ``DAMPING``); Adam at ``HYPER_LR`` on the raw (log / logit) hyperparameters; the last
``HOLDOUT`` of the validation rows held out of the hypergradients, and the step with the lowest
loss on them kept (early stopping of the outer loop; ``tune(select_batch=...)``).

Two general limits (2026-12-04, for runs where a hyperparameter step is expensive): the
hyperparameter steps take at most ``SHARE`` of the compute (the training steps between two of
them are raised until they do), and no raw hyperparameter moves by more than ``MAX_STEP`` in
one step (``LoopOptions.max_hyper_step``: Adam's nominal step, so a spike in the
hypergradient cannot shake the training).

One rule chosen by cost (2026-12-04 17:04 UTC, for task 3): the hyperparameter step is the
implicit one unless an implicit step costs more than ``GREEDY_ABOVE`` of a full run, i.e. unless
the 3/4 compute limit would stretch the interval between hyperparameter steps to more than twice
its nominal ``INNER`` (fewer than half of the scheduled steps); then it is the **greedy** step
(unrolled through the one training step before it, K = 1: Luketina et al. 2016), about
``2 + r`` evaluations instead of ``2 * CG_ITERS + 2 + 4r/3``. Task 1 (0.11 runs) and task 2
(0.05 runs) keep the implicit step; task 3 (0.45 runs) takes the greedy one.
"""

from __future__ import annotations

import math
from typing import Any

import torch

WARM, INNER = 1 / 6, 1 / 30
CG_ITERS, DAMPING, HYPER_LR = 5, 1e-3, 0.2
HOLDOUT = 0.3
SHARE = 0.75  # at most this share of the compute in hyperparameter steps
MAX_STEP = HYPER_LR  # trust limit: no raw hyperparameter moves more than this in one step
GREEDY_ABOVE = 6 * INNER  # = 1/5: an implicit step costing more than this share of a run -> greedy step


def steps(run_steps: float, hyper_evals: float = 0.0) -> tuple[int, int]:
    """(warm-up steps, training steps per hyperparameter step) for a run of ``run_steps``
    training steps and hyperparameter steps of ``hyper_evals`` evaluations each (at most
    ``SHARE`` of the compute goes to them)."""
    return max(1, round(WARM * run_steps)), inner_for_share(max(1, round(INNER * run_steps)), hyper_evals, SHARE)


def method(run_steps: float, implicit_evals: float) -> str:
    """"implicit" or "greedy" for a run of ``run_steps`` training steps (evaluations) whose implicit
    hyperparameter step costs ``implicit_evals`` evaluations (the rule above)."""
    return "greedy" if implicit_evals > GREEDY_ABOVE * run_steps else "implicit"


def inner_for_share(inner: int, hyper_evals: float, share: float) -> int:
    """Training steps per hyperparameter step, at least ``inner``, so that hyperparameter steps
    of ``hyper_evals`` evaluations each take at most ``share`` of the compute."""
    return max(inner, math.ceil(hyper_evals * (1 - share) / share - 1e-9))


def split_holdout(batch: Any, fraction: float = HOLDOUT) -> tuple[Any, Any]:
    """(the first rows, the last ``fraction`` of them) of a batch of tensors (nested tuples)."""
    n = _rows(batch)
    cut = n - round(fraction * n)
    if not 0 < cut < n:
        raise ValueError(f"cannot hold out {fraction} of {n} validation rows")
    return take(batch, slice(0, cut)), take(batch, slice(cut, n))


def _rows(batch: Any) -> int:
    return len(batch) if isinstance(batch, torch.Tensor) else _rows(batch[0])


def take(batch: Any, s: slice | torch.Tensor) -> Any:
    """The rows ``s`` (a slice or an index tensor) of a batch of tensors (nested tuples)."""
    return batch[s] if isinstance(batch, torch.Tensor) else tuple(take(b, s) for b in batch)
