"""Batches, losses, metrics and devices for the trainer.

Data is either a tuple of tensors ``(x1, ..., xk, y)`` with the same first
dimension, or a ``torch.utils.data.Dataset`` whose items are such tuples. The
model is called as ``model(x1, ..., xk)`` and the loss as ``loss(output, y)``.
Batch order is a function of ``(seed, epoch)`` alone, so a resumed run sees
the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

Data = Union[tuple[torch.Tensor, ...], Dataset]  # noqa: UP007 - runtime alias
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


def check_data(data: Any, what: str) -> int:
    """Number of samples in ``data``; ValueError naming the problem otherwise."""
    if isinstance(data, (tuple, list)):
        if len(data) < 2 or not all(isinstance(t, torch.Tensor) for t in data):
            raise ValueError(f"{what}: pass a tuple of tensors (x, ..., y) or a torch Dataset, got {type(data).__name__} of {len(data)} items")
        n = len(data[0])
        if any(len(t) != n for t in data):
            raise ValueError(f"{what}: tensors differ in length {[len(t) for t in data]}; they must share the first dimension")
        if n == 0:
            raise ValueError(f"{what}: no samples")
        return n
    if isinstance(data, Dataset):
        n = len(data)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(f"{what}: no samples")
        return n
    raise TypeError(f"{what}: expected a tuple of tensors or a torch Dataset, got {type(data).__name__}")


def batch_count(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def index_batches(n: int, batch_size: int, seed: int, epoch: int, *, shuffle: bool = True) -> list[torch.Tensor]:
    """Index tensors of the batches of one epoch (a pure function of its arguments)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    return list(order.split(batch_size))


def take(data: Data, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if isinstance(data, (tuple, list)):
        return tuple(t[idx] for t in data)
    return tuple(default_collate([data[int(i)] for i in idx]))


def to_device(batch: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    if device.type == "cpu":
        return tuple(batch)
    return tuple(t.to(device, non_blocking=True) for t in batch)


def iterate(data: Data, batch_size: int, seed: int, epoch: int, *, start: int = 0, shuffle: bool = True) -> Iterator[tuple[torch.Tensor, ...]]:
    n = check_data(data, "data")
    for idx in index_batches(n, batch_size, seed, epoch, shuffle=shuffle)[start:]:
        yield take(data, idx)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    if output.ndim == 1 or output.shape[-1] == 1:
        pred = (output.reshape(-1) > 0).long()
    else:
        pred = output.argmax(dim=-1)
    return float((pred == target.reshape(pred.shape).long()).float().mean())


LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(out.reshape(-1), y.reshape(-1).float()),
}
METRICS: dict[str, MetricFn] = {"accuracy": accuracy}


def resolve_loss(loss: str | LossFn) -> LossFn:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)} or a callable(output, target)")
    return LOSSES[loss]


def resolve_metrics(metrics: Mapping[str, MetricFn] | Sequence[str] | None) -> dict[str, MetricFn]:
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out = {}
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; use one of {sorted(METRICS)} or a mapping name -> callable")
        out[name] = METRICS[name]
    return out


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device='cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
