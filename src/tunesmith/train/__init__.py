"""PyTorch training and fine-tuning, every setting a searchable hyperparameter.

Needs the ``train`` extra: ``pip install 'tunesmith[train]'``.

- :class:`TrainConfig`: optimizer (Adam/AdamW/SGD), schedule, clipping,
  accumulation, early stopping, checkpoints, device (frozen, validated).
- :class:`Trainer`: ``fit(train, val, resume_from=None) -> History``.
- :func:`objective` / :func:`adam_space`: the bridge to :class:`tunesmith.Study`.
- fine-tuning: :func:`freeze`, :func:`unfreeze_last`, :class:`GradualUnfreezing`,
  :func:`replace_head`, separate ``backbone_lr``.
- learning-rate adaptation by hypergradient descent: ``TrainConfig(lr_adapt=...)``
  (:class:`HypergradientLR`; docs/hypergradients.md).
- hypergradients of the validation loss in continuous hyperparameters (implicit
  differentiation, or unrolled through the last K optimizer steps):
  :func:`hypergradient`, :func:`unrolled_hypergradient`, :func:`tune`, :func:`classifier_losses`,
  and :func:`hypertune` (each hyperparameter step a trial of a study).
- :mod:`checkpoint` (files, folders, what is trusted) and :func:`load_weights`
  (a checkpoint's weights into a model built as for training).
"""

from __future__ import annotations

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "tunesmith.train needs PyTorch, which is not installed; install it with "
        "pip install 'tunesmith[train]'"
    ) from exc
else:  # before 2.6 torch.load(weights_only=True), which reads every checkpoint, ran the code of a TorchScript
    # archive named as one (CVE-2025-32434); 2.1 and 2.2 are also built for NumPy 1 ("Numpy is not available")
    from ..integrations._common import check_floor

    check_floor(torch, (2, 6), extra="train", what="tunesmith.train")

from . import checkpoint
from .bridge import adam_space, objective, set_threads
from .config import TrainConfig
from .finetune import GradualUnfreezing, freeze, replace_head, trainable, unfreeze, unfreeze_last
from .history import EvalRecord, History
from .hypergrad import HypergradientLR
from .hyperloop import LoopOptions, OuterStep, TuneResult, tune
from .hyperlosses import Problem, classifier_losses, smoothed_cross_entropy
from .hyperstudy import hyper_space, hypertune, values_of
from .implicit import ImplicitOptions, hypergradient
from .model_state import load_weights
from .schedule import Plateau, lr_at, lr_factor
from .trainer import Trainer
from .unrolled import unrolled_hypergradient

__all__ = [
    "EvalRecord",
    "GradualUnfreezing",
    "History",
    "HypergradientLR",
    "ImplicitOptions",
    "LoopOptions",
    "OuterStep",
    "Problem",
    "TuneResult",
    "Plateau",
    "TrainConfig",
    "Trainer",
    "adam_space",
    "checkpoint",
    "classifier_losses",
    "freeze",
    "hyper_space",
    "hypergradient",
    "hypertune",
    "load_weights",
    "lr_at",
    "lr_factor",
    "objective",
    "replace_head",
    "set_threads",
    "smoothed_cross_entropy",
    "trainable",
    "tune",
    "unfreeze",
    "unfreeze_last",
    "unrolled_hypergradient",
    "values_of",
]
