"""Ready-made differentiable hyperparameters of a classifier: L2 per weight matrix or per
weight, and label smoothing, as the losses :func:`tunesmith.train.implicit.hypergradient`
and :func:`tunesmith.train.hyperloop.tune` take."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from .data import type_path
from .hyperloop import Constraint
from .implicit import TrainLoss, Tree, ValLoss, finite_number

L2_KINDS = (None, "tensor", "weight")
#: label smoothing is kept inside (0, SMOOTHING_MAX) by a logit reparametrization
SMOOTHING_MAX = 0.5


@dataclasses.dataclass(frozen=True)
class Problem:
    """A bilevel problem: the losses, the model's weights and the starting hyperparameters
    with their constraints (pass them on to ``tune``)."""

    train_loss: TrainLoss
    val_loss: ValLoss
    params: Tree
    hparams: Tree
    constraints: dict[str, Constraint]


def smoothed_cross_entropy(logits: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """Cross-entropy with label smoothing ``eps``, differentiable in ``eps``."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, y.reshape(-1, 1)).squeeze(-1)
    return torch.mean((1 - eps) * nll - eps * logp.mean(-1))


def classifier_losses(
    model: nn.Module,
    *,
    l2: str | None = "tensor",
    l2_init: float = 1e-3,
    label_smoothing: float | None = None,
) -> Problem:
    """The training loss ``CE_eps(model(x), y) + sum_i l2_i * |W_i|^2`` of a classifier.

    l2: "tensor" (one L2 weight per weight matrix, ``l2.<name>``), "weight" (one per
    weight: ``l2.<name>`` has the matrix's shape) or None. label_smoothing: its start
    value (a hyperparameter ``label_smoothing`` in (0, 0.5)), or None (no smoothing).
    The validation loss is the plain cross-entropy. Batches are ``(x, y)``.

    Only the trainable weights (``requires_grad``) are in ``params`` and get an L2 weight: a
    frozen layer stays as the model holds it. The training loss runs the model in training
    mode and the validation loss in evaluation mode (no dropout); batch norm normalizes each
    batch with its own statistics in both, and its running statistics stay as they are.
    """
    if not isinstance(model, nn.Module):
        what = "the class" if isinstance(model, type) else type(model).__name__
        raise TypeError(f"classifier_losses takes the model (a torch.nn.Module instance), got {what} {model!r}")
    if l2 not in L2_KINDS:
        raise ValueError(f"classifier_losses: l2 must be one of {list(L2_KINDS)}, got {l2!r}")
    if label_smoothing is not None and not (finite_number(label_smoothing) and 0 < label_smoothing < SMOOTHING_MAX):
        raise ValueError(f"classifier_losses: label_smoothing must be a number in (0, {SMOOTHING_MAX}) (its start), got "
                         f"{label_smoothing!r}")
    if l2 is not None and not (finite_number(l2_init) and l2_init > 0):
        raise ValueError(f"classifier_losses: l2_init must be a finite number > 0 (the L2 weights are positive and "
                         f"tuned on a log scale), got {l2_init!r}")
    params = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError("classifier_losses: the model has no trainable parameters (all are frozen); unfreeze "
                         "the layers to tune, e.g. tunesmith.train.unfreeze(model)")
    dtype, device = next(iter(params.values())).dtype, next(iter(params.values())).device
    if l2 is not None:
        _check_rounded_start("l2_init", l2_init, dtype, math.inf)
    if label_smoothing is not None:
        _check_rounded_start("label_smoothing", label_smoothing, dtype, SMOOTHING_MAX)
    hparams: Tree = {}
    constraints: dict[str, Constraint] = {}
    for name, p in params.items():
        if l2 is not None and p.ndim >= 2:
            hparams[f"l2.{name}"] = torch.full(() if l2 == "tensor" else p.shape, l2_init, dtype=dtype, device=device)
            constraints[f"l2.{name}"] = "positive"
    if label_smoothing is not None:
        hparams["label_smoothing"] = torch.tensor(label_smoothing, dtype=dtype, device=device)
        constraints["label_smoothing"] = (0.0, SMOOTHING_MAX)
    return Problem(_train_loss(model), _val_loss(model), params, hparams, constraints)


def _check_rounded_start(what: str, start: float, dtype: torch.dtype, high: float) -> None:
    """A start in (0, high) that the model's dtype rounds onto a bound (1e-8 is 0 in float16)."""
    rounded = float(torch.tensor(start, dtype=dtype))
    if not 0 < rounded < high:
        raise ValueError(f"classifier_losses: {what}={start!r} is {rounded} in {dtype}, the model's dtype, on a bound "
                         "of its constraint: start it further inside")


def _call(model: nn.Module, p: Tree, x: torch.Tensor, *, train: bool) -> torch.Tensor:
    """``model(x)`` with the weights ``p``, in training mode or in evaluation mode but for
    batch norm (the batch's statistics: the running ones are not tracked while tuning). The
    buffers are copies, so batch norm's update of its running statistics neither changes the
    model nor fails inside ``torch.func``'s transforms (an in-place change of a captured tensor).
    Each module's mode is set and restored as one attribute (this runs at every step)."""
    from torch.func import functional_call

    mods = list(model.modules())
    want = [train or isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods]
    was = [m.training for m in mods]
    try:
        for m, w in zip(mods, want, strict=True):
            m.training = w
        buffers = {k: b.clone() for k, b in model.named_buffers()}
        out = functional_call(model, {**buffers, **p} if buffers else p, (x,))
    except ValueError as e:
        if "more than 1 value per channel" not in str(e):
            raise
        raise ValueError(f"classifier_losses: batch norm normalizes each batch with its own statistics, in the "
                         f"validation loss too, so a batch needs 2 rows or more; this one has {len(x)} ({e})") from e
    finally:
        for m, w in zip(mods, was, strict=True):
            m.training = w
    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(f"classifier_losses needs the model's output to be one logit per class, (n, classes >= 2), "
                         f"got shape {tuple(out.shape)}; a binary classifier needs 2 outputs (nn.Linear(d, 2))")
    return out


def _labels(x: Any, y: Any, p: Tree) -> torch.Tensor:
    """The class indices of a batch as int64 of shape (n,) (a column (n, 1) is taken too);
    refused, saying what to convert, what torch would meet with "mat1 and mat2 must have the
    same dtype" or "gather(): Expected dtype int32/int64 for index"."""
    weights = next(iter(p.values())).dtype
    if not isinstance(x, torch.Tensor) and hasattr(x, "__array__"):  # scikit-learn's datasets are NumPy arrays
        indices = getattr(getattr(x, "dtype", None), "kind", "") in ("i", "u")  # an nn.Embedding's: kept integers
        dtype = "" if indices else f", dtype={weights}"
        raise ValueError(f"classifier_losses: the inputs are {type_path(x)}, not a tensor; convert them "
                         f"(torch.as_tensor(x{dtype}))")
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != weights:
        raise ValueError(f"classifier_losses: the inputs are {x.dtype} but the weights are {weights}; convert them "
                         f"(x.to({weights}))")
    if not (isinstance(y, torch.Tensor) and not y.is_floating_point()
            and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1))):
        got = f"{y.dtype} of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type_path(y)
        fix = "y" if isinstance(y, torch.Tensor) else "torch.as_tensor(y)"
        raise ValueError(f"classifier_losses: the targets must be class indices, an integer tensor of shape (n,), "
                         f"got {got}; convert them ({fix}.long().reshape(-1))")
    return y.reshape(-1).long()


def _train_loss(model: nn.Module) -> TrainLoss:
    def loss(p: Tree, h: Tree, batch: Any) -> torch.Tensor:
        x, y = batch
        labels = _labels(x, y, p)
        out = _call(model, p, x, train=True)
        eps = h.get("label_smoothing", 0.0)
        penalty = sum((torch.sum(v * p[k[3:]] ** 2) for k, v in h.items() if k.startswith("l2.")),
                      torch.zeros((), dtype=out.dtype))
        return smoothed_cross_entropy(out, labels, eps) + penalty

    return loss


def _val_loss(model: nn.Module) -> ValLoss:
    def loss(p: Tree, batch: Any) -> torch.Tensor:
        x, y = batch
        labels = _labels(x, y, p)
        return nn.functional.cross_entropy(_call(model, p, x, train=False), labels)

    return loss
