"""Batches, losses, metrics and devices for the trainer.

Data is either a tuple of tensors ``(x1, ..., xk, y)`` with the same first
dimension, or a ``torch.utils.data.Dataset`` whose items are such tuples. The
model is called as ``model(x1, ..., xk)`` and the loss as ``loss(output, y)``.
Batch order is a function of ``(seed, epoch)`` alone, so a resumed run sees
the same batches as an uninterrupted one. :class:`Loader` turns that order
into batches: in this process for tensors, through a ``DataLoader`` with
worker processes for a Dataset when ``num_workers > 0``.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from .finetune import is_frozen_module

Data = Union[tuple[torch.Tensor, ...], Dataset]  # noqa: UP007 - runtime alias
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


def check_data(data: Any, what: str) -> int:
    """Number of samples in ``data``; ValueError naming the problem otherwise."""
    if isinstance(data, (tuple, list)):
        if len(data) < 2 or not all(isinstance(t, torch.Tensor) for t in data):
            raise ValueError(f"{what}: pass a tuple of tensors (x, ..., y) or a torch Dataset, got {_not_columns(data)}")
        n = len(data[0])
        if any(len(t) != n for t in data):
            raise ValueError(f"{what}: tensors differ in length {[len(t) for t in data]}; they must share the first dimension")
        if n == 0:
            raise ValueError(_no_samples(what, "its tensors have 0 rows"))
        return n
    if isinstance(data, Dataset):
        n = len(data)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(_no_samples(what, "the Dataset's len() is 0"))
        return n
    hint = ""
    if isinstance(data, torch.Tensor):
        hint = "; pass the inputs with their targets: (x, y)"
    elif isinstance(data, torch.utils.data.DataLoader):
        hint = "; pass its dataset (loader.dataset): the trainer batches it with TrainConfig.batch_size"
    raise TypeError(f"{what}: expected a tuple of tensors or a torch Dataset, got {type(data).__name__}{hint}")


def _not_columns(data: tuple[Any, ...] | list[Any]) -> str:
    """What ``data`` (a tuple or list that is no tuple of tensors) holds, and what to pass instead: a list of
    samples ``[(x, y), ...]`` is told how to stack it (its every item's type was listed, 48 times for 48 samples)."""
    width = {len(t) if isinstance(t, (tuple, list)) else -1 for t in data}
    if len(width) == 1 and 0 < (k := width.pop()) < len(data):
        if k == 1:  # stacked, one tensor: no target
            return (f"a {type(data).__name__} of {len(data)} samples of 1 item each, inputs without targets: each "
                    "sample is (x, ..., y), the target last; stack the inputs into one tensor x and pass (x, y)")
        return (f"a {type(data).__name__} of {len(data)} samples of {k} items each; stack each position into one "
                f"tensor: data = tuple(torch.stack([torch.as_tensor(s[i]) for s in data]) for i in range({k}))")
    kinds = [type_path(t) for t in data]
    shown = ", ".join(kinds) if len(set(kinds)) > 1 or len(kinds) < 3 else f"{len(kinds)} x {kinds[0]}"
    hints = [h for i, t in enumerate(data) if (h := _conversion(t, i, target=i == len(data) - 1))]
    if len(hints) > 3:
        hints = [*hints[:2], f"and {len(hints) - 2} more alike"]
    hint = f"; convert the arrays: {'; '.join(hints)}" if hints else ""
    return f"{type(data).__name__} of {len(data)} items ({shown}){hint}"


def _conversion(value: Any, i: int, *, target: bool) -> str:
    """How to make the array ``value`` (item ``i`` of a data tuple; ``target``: the last) a tensor, for its
    dtype: float32 for features (NumPy's float64 and integer features alike), int64 for indices an ``nn.Embedding``
    takes, integers kept for class labels, text encoded as numbers first; ``""`` for what is no array."""
    if isinstance(value, torch.Tensor) or not hasattr(value, "__array__"):
        return ""
    try:
        dtype = np.asarray(value).dtype
    except Exception:  # noqa: BLE001 - an array-like that cannot be read: the generic advice
        dtype = None
    name, integer = ("y" if target else "x"), dtype is not None and dtype.kind in ("i", "u")
    seen = f"item {i} is {dtype}" if dtype is not None else f"item {i}"
    if dtype is not None and dtype.kind in "OSU":  # text or mixed columns: no tensor holds them as they are
        fix = ("class names: their indices, np.unique(y, return_inverse=True)[1], then torch.as_tensor(...)" if target
               else "encode its text columns as numbers, then torch.as_tensor(x, dtype=torch.float32)")
    elif target:
        fix = ("torch.as_tensor(y) for class labels (int64)" if integer else
               f"torch.as_tensor({name}, dtype=torch.float32) for regression targets, .long() for class labels")
    elif integer:
        fix = (f"torch.as_tensor({name}, dtype=torch.float32) for integer features (a model of Linear layers), "
               f"or torch.as_tensor({name}, dtype=torch.long) for indices an nn.Embedding takes (it refuses uint8, int16)")
    else:
        fix = f"torch.as_tensor({name}, dtype=torch.float32)"
    return f"{seen}: {fix}"


def type_path(value: Any) -> str:
    """A value's type with its package, for a message: "numpy.ndarray", "pandas.DataFrame"."""
    return f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"


def _no_samples(what: str, why: str) -> str:
    skip = ", or val=None to train without validation" if what == "val" else ""
    return f"{what}: no samples ({why}); pass data with rows (check the split that made it){skip}"


def check_items(data: Any, what: str) -> None:
    """A Dataset's items must be tuples ``(x1, ..., xk, y)``: a dict (Hugging Face style) or a bare
    tensor reached the model as its keys or its rows, and failed there with an unrelated error."""
    if isinstance(data, (tuple, list)):
        return
    item = data[0]
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return
    if isinstance(item, Mapping):
        fix = (f"its items are dicts (keys {list(item)[:4]}); return a tuple (inputs..., target) from __getitem__, "
               "e.g. (item['input_ids'], item['attention_mask'], item['labels']), in the order the model takes them")
    else:
        fix = (f"its items are {type(item).__name__}{' of 1' if isinstance(item, (tuple, list)) else ''}; return a "
               "tuple (inputs..., target) from __getitem__: the model is called on all but the last element")
    raise ValueError(f"{what}: the Dataset's items must be tuples (x, ..., y), but {fix}")


def check_dtypes(data: Any, model: torch.nn.Module, what: str) -> None:
    """Refuse float64 inputs (NumPy's default) to a model with other weights, and float32
    inputs to a float64 model: torch says only "mat1 and mat2 must have the same dtype".
    Other dtypes pass (a model may cast them itself); a tuple's targets are the loss's business."""
    if not isinstance(data, (tuple, list)):
        return
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    for i, t in enumerate(data[:-1]):
        if isinstance(t, torch.Tensor) and ((weights not in (None, torch.float64) and t.dtype == torch.float64)
                                            or (weights == torch.float64 and t.dtype == torch.float32)):
            raise ValueError(f"{what}: input {i} is {t.dtype} but the model's weights are {weights}; convert it "
                             f"(x.to({weights}); NumPy's float64 arrays: torch.as_tensor(x, dtype={weights}))")


def batch_count(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def index_batches(
    n: int, batch_size: int, seed: int, epoch: int, *, shuffle: bool = True, drop_last: bool = False
) -> list[torch.Tensor]:
    """Index tensors of the batches of one epoch (a pure function of its arguments).

    ``drop_last``: leave out a last batch smaller than ``batch_size``.
    """
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    batches = list(order.split(batch_size))
    if drop_last and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def batch_norms(model: nn.Module, *, frozen: bool = True) -> list[nn.Module]:
    """The batch norm layers of ``model`` (``frozen=False``: those that train, not in a block
    frozen by ``freeze``, which stays in eval mode and takes a batch of one)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and (frozen or not is_frozen_module(m))]


def has_batch_norm(model: nn.Module, *, frozen: bool = True) -> bool:
    """Whether ``model`` has batch norm (``frozen=False``: batch norm that trains)."""
    return bool(batch_norms(model, frozen=frozen))


#: a batch of one sample gives a batch norm layer one value per channel (an (N, C) input)
ONE_SAMPLE = ("batch_size=1 gives batches of one sample, which the model's batch norm cannot train on (one value "
              "per channel); use batch_size >= 2 (a search: give batch_size a range from 2), or freeze the batch "
              "norm (tunesmith.train.freeze) or use a norm that takes one sample (nn.LayerNorm, nn.GroupNorm)")


@contextlib.contextmanager
def refusing_one_value_per_channel(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Within it, a forward pass that gives one of ``layers`` a single sample with one value per channel
    raises :data:`ONE_SAMPLE`, even in eval mode (a frozen layer GradualUnfreezing thaws later). torch raises
    "Expected more than 1 value per channel when training" only for such an input: a feature map of
    more than one value per channel (BatchNorm2d after a convolution) trains on one sample."""
    def check(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[0] == 1 and math.prod(x.shape[2:]) == 1:
            raise ValueError(ONE_SAMPLE)

    handles = [m.register_forward_pre_hook(check) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def resolve_drop_last(
    drop_last: bool | None, *, n: int, batch_size: int, model: nn.Module, thaws: bool = False
) -> bool:
    """Whether the last training batch is dropped (``drop_last=None``: "auto").

    Auto drops it only when it holds a single sample and the model has batch
    norm that trains (not frozen, or ``thaws``: frozen blocks may be thawed, as
    by GradualUnfreezing), which cannot train on one sample (torch raises "Expected
    more than 1 value per channel"); every other batch is kept. ValueError when no
    batch would be left, or when ``drop_last=False`` keeps a batch that must fail.
    """
    bn = has_batch_norm(model, frozen=thaws)
    single = bn and n % batch_size == 1
    if single and n == 1:
        raise ValueError("train has 1 sample, which the model's batch norm cannot train on; give it more samples")
    if drop_last is None:
        drop_last = single
    if drop_last and n < batch_size:
        raise ValueError(f"train has {n} samples, fewer than batch_size={batch_size}: with drop_last no batch is "
                         "left; lower batch_size or set drop_last=False")
    if single and not drop_last:
        raise ValueError(f"train has {n} samples: batch_size={batch_size} leaves a last batch of 1 sample, which "
                         "the model's batch norm cannot train on; set drop_last=None (auto) or True, or change batch_size")
    return drop_last


def take(data: Data, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if isinstance(data, (tuple, list)):
        return tuple(t[idx] for t in data)
    return tuple(default_collate([data[int(i)] for i in idx]))


def to_device(batch: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    if device.type == "cpu":
        return tuple(batch)
    return tuple(t.to(device, non_blocking=True) for t in batch)


class Batch(list[int]):
    """A batch's indices, with the seed its random augmentations draw from in a worker process."""

    def __init__(self, indices: list[int], seed: int) -> None:
        super().__init__(indices)
        self.seed = seed


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed of batch ``batch`` of ``epoch``: the same whichever worker reads it, before or after a resume."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + batch) % 2**63


class _SeededItems(Dataset):
    """A Dataset read in worker processes: each batch seeds Python's, NumPy's and torch's generators from
    its :func:`batch_seed` first, so random augmentations are those of the batch, not of the worker that
    happens to read it (a resume mid-epoch hands batches to other workers than the run it continues)."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.data[i]

    def __getitems__(self, batch: list[int]) -> list[Any]:
        seed = getattr(batch, "seed", None)
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.default_generator.manual_seed(seed)  # the CPU one: torch.manual_seed took 0.5 ms (devices)
        items = getattr(self.data, "__getitems__", None)
        return list(items(list(batch))) if items else [self.data[i] for i in batch]


class _EpochBatches:
    """A DataLoader ``batch_sampler`` that yields the batches of the epoch set last."""

    def __init__(self, n: int, batch_size: int, seed: int, *, shuffle: bool, drop_last: bool) -> None:
        self.args = (n, batch_size, seed)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.start = 0, 0

    def indices(self) -> list[torch.Tensor]:
        batches = index_batches(*self.args, self.epoch, shuffle=self.shuffle, drop_last=self.drop_last)
        return batches[self.start:]

    def __iter__(self) -> Iterator[list[int]]:
        seed, first = self.args[2], self.start
        return (Batch(b.tolist(), batch_seed(seed, self.epoch, first + i)) for i, b in enumerate(self.indices()))

    def __len__(self) -> int:
        n, batch_size, _ = self.args
        return batch_count(n, batch_size, drop_last=self.drop_last) - self.start


class Loader:
    """The batches of each epoch, in the order of :func:`index_batches`.

    Tensors are indexed in this process (``num_workers`` is ignored: indexing
    is faster than sending tensors to workers). A Dataset with
    ``num_workers > 0`` is read by a ``torch.utils.data.DataLoader`` whose
    workers seed Python's, NumPy's and torch's generators from ``(seed, epoch, batch)``
    before each batch, so its random augmentations repeat on resume (mid-epoch too)
    and do not depend on the number of workers.
    ``pin_memory`` puts batches in page-locked memory for faster copies to a GPU.
    """

    def __init__(
        self, data: Data, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = False,
        num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False,
    ) -> None:
        self.data, self.seed, self.pin_memory = data, seed, pin_memory
        n = check_data(data, "data")
        self.sampler = _EpochBatches(n, batch_size, seed, shuffle=shuffle, drop_last=drop_last)
        self.size = n  # the samples an epoch's order permutes
        self.batches = batch_count(n, batch_size, drop_last=drop_last)
        self.generator = torch.Generator()
        self.loader: DataLoader[Any] | None = None
        if num_workers > 0 and not isinstance(data, (tuple, list)):
            self.loader = DataLoader(
                _SeededItems(data), batch_sampler=self.sampler, num_workers=num_workers, pin_memory=pin_memory,
                persistent_workers=persistent_workers, generator=self.generator,
            )

    def samples(self, first: int, count: int) -> int:
        """The number of samples in the ``count`` batches from batch ``first`` on (each epoch's are the same)."""
        n, batch_size, _ = self.sampler.args
        used = self.batches * batch_size if self.sampler.drop_last else n
        return min(used, (first + count) * batch_size) - first * batch_size

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of ``epoch`` from batch ``start`` on."""
        self.sampler.epoch, self.sampler.start = epoch, start
        if self.loader is not None:
            self.generator.manual_seed(self.seed * 1_000_003 + epoch)
            return (tuple(b) for b in self.loader)
        return self._in_process()

    def _in_process(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in self.sampler.indices():
            batch = take(self.data, idx)
            yield tuple(t.pin_memory() for t in batch) if self.pin_memory else batch


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    if output.ndim == 1 or output.shape[-1] == 1:
        pred = (output.reshape(-1) > 0).long()
    else:
        pred = output.argmax(dim=-1)
    return float((pred == target.reshape(pred.shape).long()).float().mean())


def _tensor(output: Any, loss: str) -> torch.Tensor:
    """The model's output as the built-in losses take it: a tensor. A Hugging Face model's output
    (``SequenceClassifierOutput``), a dict or a tuple is refused saying what to return instead."""
    if isinstance(output, torch.Tensor):
        return output
    logits = " (it holds 'logits': return model(...).logits)" if "logits" in getattr(output, "keys", lambda: ())() else ""
    raise ValueError(f"loss {loss!r} takes the model's output as one tensor, but the model returned a "
                     f"{type(output).__name__}{logits}; wrap the model so that forward returns the logits:\n"
                     f"{LOGITS_WRAPPER}\nand train Logits(model) (its parts then named under 'inner.', e.g. "
                     "head='inner.classifier'), or pass loss=fn(output, target) that reads it")


#: the wrapper the refusal of a model output that is no tensor gives, as Python to paste
LOGITS_WRAPPER = """class Logits(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *x):
        return self.inner(*x).logits"""


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy``, with class indices of any integer dtype (torch takes only int64 and
    uint8: int32 labels, NumPy's default on some systems, failed) and as a column ``(n, 1)``
    against ``(n, classes)`` outputs (torch: "multi-target not supported"); float targets are
    class probabilities of the output's shape, as torch takes them; float targets of another shape
    are refused saying to convert class labels (``y.long()``), labels outside ``0 .. classes - 1``
    are named with the model's number of classes (torch: "Target 2 is out of bounds"), and an output of
    one class, whose loss is 0 whatever the model does (a regression left on the default loss), is refused."""
    output = _tensor(output, "cross_entropy")
    if output.ndim >= 2 and output.shape[1] == 1:  # softmax over one class: a loss of 0 whatever the model does
        raise ValueError(f"loss 'cross_entropy': the model outputs one value per sample {tuple(output.shape)}, and the "
                         "cross-entropy of a single class is 0 whatever it outputs; for a regression pass "
                         "loss='mse', for two classes with one logit pass loss='bce' (or give the model's last "
                         "layer 2 outputs)")
    if target.is_floating_point() and target.shape != output.shape:
        raise ValueError(f"loss 'cross_entropy': the targets are {target.dtype} of shape {tuple(target.shape)} and the "
                         f"output {tuple(output.shape)}: float targets are class probabilities of the output's shape; "
                         "if they are class labels (read as floats, as pandas and NumPy often give them), convert "
                         "them: torch.as_tensor(y).long()")
    if not target.is_floating_point():
        if output.ndim == 2 and target.ndim == 2 and target.shape[1] == 1:
            target = target.reshape(-1)
        if target.dtype not in (torch.long, torch.uint8):
            target = target.long()
    try:
        return F.cross_entropy(output, target)
    except IndexError as e:  # on CPU; CUDA stops on a device-side assert
        classes = output.shape[1] if output.ndim > 1 else 1
        raise ValueError(f"loss 'cross_entropy': a class label lies outside 0 .. {classes - 1} ({e}): the model "
                         f"outputs {classes} classes; number the labels from 0 (e.g. y - y.min() for labels from 1), "
                         "or give the model's last layer one output per class") from e


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of one output per target: an ``(n, 1)`` output against ``(n,)``
    targets is matched value for value, where ``F.mse_loss`` would broadcast it to ``n x n``
    differences (with only a warning); integer targets are taken as floats, and targets are never rounded
    to a bf16 output's precision."""
    output = _tensor(output, "mse")
    if output.shape != target.shape:
        if output.numel() != target.numel():
            raise ValueError(f"loss 'mse': the model's output has shape {tuple(output.shape)} and the targets "
                             f"{tuple(target.shape)}; it needs one output value per target value")
        output = output.reshape(target.shape)
    # at least float32: a bf16 output (autocast) would round the targets to 8 bits (100.3 -> 100.5)
    return F.mse_loss(output, target.to(torch.promote_types(output.dtype, torch.float32)))


LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy,
    "mse": mse,
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(_tensor(out, "bce").reshape(-1), y.reshape(-1).float()),
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
    if isinstance(metrics, Mapping):  # a value may be a built-in metric's name: {"acc": "accuracy"}
        bad = next((k for k, v in metrics.items() if not (isinstance(v, str) or callable(v))), None)
        if bad is not None:  # it failed at the first evaluation
            raise TypeError(f"metric {bad!r} must be a callable(output, target) or a built-in metric's name, "
                            f"got {metrics[bad]!r}")
        return {k: resolve_metrics([v])[v] if isinstance(v, str) else v for k, v in metrics.items()}
    if isinstance(metrics, str):  # metrics="accuracy": one name, not its letters
        metrics = [metrics]
    out = {}
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; use one of {sorted(METRICS)} or a mapping name -> callable")
        out[name] = METRICS[name]
    return out


def pick_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device={name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(
            f"TrainConfig.device={name!r} but {n} CUDA device{'s are' if n > 1 else ' is'} visible "
            f"({', '.join(f'cuda:{i}' for i in range(n))}); use an index below {n}, or check CUDA_VISIBLE_DEVICES "
            "(it renumbers the visible devices from 0)")
    return device


def use_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
