"""Ready-made differentiable hyperparameters of a classifier: L2 per weight matrix or per
weight, and label smoothing, as the losses :func:`tunesmith.train.implicit.hypergradient`
and :func:`tunesmith.train.hyperloop.tune` take."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .hyperloop import Constraint
from .implicit import TrainLoss, Tree, ValLoss

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
    """
    if l2 not in L2_KINDS:
        raise ValueError(f"classifier_losses: l2 must be one of {list(L2_KINDS)}, got {l2!r}")
    if label_smoothing is not None and not 0 < label_smoothing < SMOOTHING_MAX:
        raise ValueError(f"classifier_losses: label_smoothing must start in (0, {SMOOTHING_MAX}), got {label_smoothing!r}")
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    dtype, device = next(iter(params.values())).dtype, next(iter(params.values())).device
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


def _train_loss(model: nn.Module) -> TrainLoss:
    from torch.func import functional_call

    def loss(p: Tree, h: Tree, batch: Any) -> torch.Tensor:
        x, y = batch
        out = functional_call(model, p, (x,))
        eps = h.get("label_smoothing", 0.0)
        penalty = sum((torch.sum(v * p[k[3:]] ** 2) for k, v in h.items() if k.startswith("l2.")),
                      torch.zeros((), dtype=out.dtype))
        return smoothed_cross_entropy(out, y, eps) + penalty

    return loss


def _val_loss(model: nn.Module) -> ValLoss:
    from torch.func import functional_call

    def loss(p: Tree, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    return loss
