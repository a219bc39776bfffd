"""What of a model a checkpoint holds, and the checks that it fits the model resumed.

A frozen part (parameters without gradient, buffers of frozen modules) cannot
change while training, so a checkpoint stores only the rest, plus the shapes
of every tensor and a SHA-256 fingerprint of the frozen part. Loading checks
that the model has the same tensors and shapes and the same frozen part; a
model built differently is refused with a message that says what differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from .checkpoint import CheckpointError
from .finetune import is_frozen_module


class FrozenFingerprint:
    """SHA-256 of named tensors, recomputed only when one of them changed (its
    storage or its in-place version counter)."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._digest = ""

    def __call__(self, tensors: Mapping[str, torch.Tensor]) -> str:
        key = tuple((k, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for k, t in sorted(tensors.items()))
        if key != self._key:
            self._key, self._digest = key, fingerprint(tensors)
        return self._digest


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def frozen_names(model: nn.Module) -> set[str]:
    """Names (``state_dict`` keys) of the tensors training cannot change."""
    names = set()
    for key, value in model.state_dict(keep_vars=True).items():
        if isinstance(value, nn.Parameter):
            if not value.requires_grad:
                names.add(key)
        else:
            owner = key.rpartition(".")[0]
            if is_frozen_module(model.get_submodule(owner) if owner else model):
                names.add(key)
    return names


def model_state(model: nn.Module, frozen_hash: FrozenFingerprint) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors to store (all but the frozen part) and what load checks against."""
    full = model.state_dict()
    frozen = frozen_names(model)
    kept = {k: v for k, v in full.items() if k not in frozen}
    meta = {
        "shapes": {k: list(v.shape) for k, v in full.items()},
        "frozen": frozen_hash({k: full[k] for k in frozen}),
        "n_frozen": len(frozen),
    }
    return kept, meta


def load_model_state(model: nn.Module, saved: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None, where: str) -> None:
    """Load ``saved`` into ``model`` after checking that it is the model they came from."""
    if meta is None:  # a checkpoint that stored the whole model
        check_architecture(model, {k: list(v.shape) for k, v in saved.items()}, where)
        model.load_state_dict(saved)
        return
    check_architecture(model, meta["shapes"], where)
    model.load_state_dict(complete_state(model.state_dict(), saved, meta, where))


def complete_state(
    built: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], meta: Mapping[str, Any], where: str
) -> dict[str, torch.Tensor]:
    """``saved`` with the part it leaves out (frozen when it was written) taken from ``built``,
    the model's state as built, after checking that part's fingerprint."""
    frozen = {k: built[k] for k in built if k not in saved}
    if fingerprint(frozen) != meta["frozen"]:
        raise CheckpointError(
            f"{where} stores only the trained part of the model; the {len(frozen)} frozen tensors "
            f"(e.g. {sorted(frozen)[:3]}) of this model differ from those it was trained with. Build the "
            "model with the same pre-trained weights and freeze the same blocks to resume it"
        )
    return {**built, **saved}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights of a checkpoint (e.g. a trial's ``best_checkpoint``) into ``model``.

    ``model`` is built as for training (``build_model(params)``: the same pre-trained
    weights and frozen blocks), since a checkpoint leaves out the frozen part."""
    state = ckpt.load(path)
    load_model_state(model, state["model"], state.get("model_meta"), repr(str(path)))
    return model


def check_architecture(model: nn.Module, shapes: Mapping[str, list[int]], where: str) -> None:
    """Refuse a model whose tensors (names, shapes) are not the checkpoint's."""
    mine = {k: list(v.shape) for k, v in model.state_dict().items()}
    extra, missing = sorted(set(mine) - set(shapes)), sorted(set(shapes) - set(mine))
    differ = [f"{k} {shapes[k]} in the checkpoint, {mine[k]} here" for k in sorted(set(mine) & set(shapes))
              if list(shapes[k]) != mine[k]]
    if not (extra or missing or differ):
        return
    parts = [f"only in the checkpoint: {_few(missing)}" if missing else "",
             f"only in this model: {_few(extra)}" if extra else "",
             f"shapes differ: {_few(differ)}" if differ else ""]
    raise CheckpointError(
        f"{where} was written for another model architecture ({'; '.join(p for p in parts if p)}); "
        "resume with the model it was trained with, or start a new run"
    )


def _few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
