"""Optimizer construction: parameter groups, then Adam / AdamW / SGD.

Groups (nanoGPT style): weight matrices and embeddings (``ndim >= 2``) get
weight decay; biases and normalization scales (``ndim < 2``) never do. When a
head is named, its parameters form separate groups with ``lr`` and the rest
(the backbone) get ``backbone_lr``. Every parameter is in the optimizer, also
frozen ones, so unfreezing later needs no new optimizer (torch's optimizers
skip parameters whose ``grad`` is None, so frozen weights stay bit-identical).
"""

from __future__ import annotations

import difflib
import keyword
import logging
import re
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..space.params import a_type
from ..trial import as_count
from .config import TrainConfig


def _in_head(name: str, head: Sequence[str]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in head)


def head_names(model: nn.Module, head: Any) -> list[str]:
    """``head`` as parameter-name prefixes: a name, a list of names, or the head module itself
    (``head=model.classifier``; it was taken as a list of names and failed inside torch)."""
    items = [head] if isinstance(head, (str, nn.Module)) else list(head)
    names = {id(m): name for name, m in model.named_modules()}
    out = []
    for h in items:
        if isinstance(h, str):
            out.append(h)
        elif isinstance(h, nn.Module) and names.get(id(h)):
            out.append(names[id(h)])
        else:
            what = ("the model itself" if h is model else a_type(h) +
                    (" that is not part of the model" if isinstance(h, nn.Module) else ""))
            raise ValueError(f"head must name the model's head, by name (head='classifier') or as its module "
                             f"(head=model.classifier); got {what}")
    return out


def param_groups(model: nn.Module, cfg: TrainConfig, head: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Parameter groups with ``base_lr`` and ``weight_decay`` set per group."""
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    names = {n for n, _ in model.named_parameters()}
    if not names:  # torch: "optimizer got an empty parameter list"
        raise ValueError(f"the model ({type(model).__name__}) has no parameters, so there is nothing to train; "
                         "pass the model that holds the layers to train (a module whose layers are attributes or "
                         "in an nn.ModuleList, not in a plain Python list, which torch does not register)")
    for h in head:
        if not any(_in_head(n, [h]) for n in names):
            raise ValueError(_unknown_head(model, h, {n for n in names if not _in_head(n, head)}))
    for name, p in model.named_parameters():
        key = (bool(head) and _in_head(name, head), p.ndim >= 2)
        buckets.setdefault(key, []).append(p)
    groups = []
    for (is_head, decays), params in sorted(buckets.items()):
        base = cfg.lr if (is_head or not head or cfg.backbone_lr is None) else cfg.backbone_lr
        groups.append({
            "params": params,
            "base_lr": base,
            "lr": base,
            "weight_decay": cfg.weight_decay if decays else 0.0,
            "role": ("head" if is_head else "backbone" if head else "all") + ("/decay" if decays else "/no_decay"),
        })
    return groups


def _unknown_head(model: nn.Module, head: str, names: set[str]) -> str:
    """Why ``head`` names no parameter: for an index past a sequence of blocks, how many blocks there are;
    else the part of the model it most resembles among ``names`` (the parameters outside the heads given: a
    name given already is no suggestion), and the parts there are (the first parameter names in sorted order
    were those of the backbone's first block)."""
    parts = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    top = [name for name, child in model.named_children() if any(True for _ in child.parameters())] or sorted(names)
    said = f"head {head!r} names no parameter of the model"
    if past := _past_the_blocks(model, head):
        return f"{said}: {past} (indices count from 0)"
    close = difflib.get_close_matches(head, [p for p in _prefixes(parts) if any(_in_head(n, [p]) for n in names)]
                                      + sorted(names), n=1, cutoff=0.6)  # fmt: skip
    return (f"{said}{f'; did you mean {close[0]!r}?' if close else '.'} "
            f"The model's parts with parameters are {', '.join(map(repr, top[:8]))}{' ...' if len(top) > 8 else ''} "
            "(head= takes a part's name, dotted for a part inside another: 'classifier', 'encoder.pooler')")


def _past_the_blocks(model: nn.Module, head: str) -> str:
    """For ``head`` that indexes a sequence of blocks past its end (``'backbone.9'`` of 3 blocks; a negative
    index, which no module name has, too), how many blocks it has and the last one's name; else ``""``."""
    modules = dict(model.named_modules())
    words = head.split(".")
    for i, word in enumerate(words):
        outer = ".".join(words[:i])
        seq = modules.get(outer)
        # "backbone.²" passed str.isdigit and failed int(); "-1" is no name (any negative index is out of range)
        index = -1 if re.fullmatch(r"-[0-9]+", word) else as_count(word)
        if index is not None and isinstance(seq, (nn.Sequential, nn.ModuleList)) and not 0 <= index < len(seq):
            where = f"{outer}." if outer else ""
            last = f", the last is {where + str(len(seq) - 1)!r}" if len(seq) else ""
            return f"{repr(outer) if outer else 'the model'} has {len(seq)} block{'' if len(seq) == 1 else 's'}{last}"
        if seq is None:
            break
    return ""


def _prefixes(parts: list[str]) -> set[str]:
    """Every dotted prefix of the modules that hold parameters: the names ``head=`` takes."""
    return {".".join(p.split(".")[:k]) for p in parts for k in range(1, p.count(".") + 2)}


def penalized(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the L1/L2 penalties cover: weight matrices only."""
    return [p for p in model.parameters() if p.ndim >= 2]


def check_head(cfg: TrainConfig, head: Sequence[str], model: nn.Module | None = None) -> None:
    """Refuse to train with ``backbone_lr`` and no head: every parameter would train at ``lr``
    and ``backbone_lr`` be ignored. (A trainer that only evaluates may hold such a config.)"""
    if cfg.backbone_lr is not None and not head:
        guess = _last_child(model) if model is not None else None
        which = f" ({guess!r}: the model's last part with parameters)" if guess else ""
        raise ValueError(
            f"TrainConfig.backbone_lr ({cfg.backbone_lr!r}) is the rate of the parameters outside the head, but no "
            "head is named, so every parameter trains at lr and backbone_lr would be ignored. Name the head: "
            f"Trainer(model, cfg, head=[{guess or 'classifier'!r}]){which} (objective(..., head=...) in a study), "
            "or drop backbone_lr"
        )


def warn_frozen_head(model: nn.Module, head: Sequence[str]) -> None:
    """Say (once per model class) that a head named with ``head=`` is frozen while other parts train:
    after ``freeze(model)``, which freezes the head too, it kept its first weights without a word
    (a new head stays random) while only the thawed blocks trained."""
    params = list(model.named_parameters())
    frozen = [h for h in head if not any(p.requires_grad for n, p in params if _in_head(n, [h]))]
    kind = type(model)
    if not frozen or kind in _SAID_HEAD or not any(p.requires_grad for _, p in params):
        return  # (nothing trainable at all: the first step refuses it)
    _SAID_HEAD.add(kind)
    logging.getLogger("tunesmith").warning(
        "the head %s of the %s is frozen (none of its parameters requires grad, as after freeze(model), which freezes "
        "the head too), so it keeps its first weights while the rest trains; thaw it after freezing the model "
        "(%s), or freeze the backbone alone (said once per model class)",
        ", ".join(map(repr, frozen)), kind.__qualname__, _thaw_code(model, frozen, {n for n, _ in params}))


def _thaw_code(model: nn.Module, head: Sequence[str], params: set[str]) -> str:
    """The code that thaws the frozen head parts: ``unfreeze`` for modules (``model.backbone[2]``, not
    ``model.backbone.2``), ``requires_grad_(True)`` for a head named by a parameter."""
    modules = [_attribute_code(model, h, "get_submodule") for h in head if h not in params]
    code = [f"{_attribute_code(model, h, 'get_parameter')}.requires_grad_(True)" for h in head if h in params]
    if modules:
        code.insert(0, f"tunesmith.train.unfreeze({modules[0] if len(modules) == 1 else '[' + ', '.join(modules) + ']'})")
    return "; ".join(code)


def _attribute_code(model: nn.Module, name: str, getter: str) -> str:
    """``model``'s part ``name`` as Python: ``[2]`` in a Sequential or ModuleList, ``['k']`` in a
    ModuleDict, ``.name`` elsewhere, and ``model.getter(name)`` where that is no Python."""
    code, owner = "model", model
    for part in name.split("."):
        if isinstance(owner, (nn.Sequential, nn.ModuleList)) and part.isdigit():
            code += f"[{part}]"
        elif isinstance(owner, nn.ModuleDict):
            code += f"[{part!r}]"
        elif part.isidentifier() and not keyword.iskeyword(part):
            code += f".{part}"
        else:
            return f"model.{getter}({name!r})"
        owner = owner._modules.get(part) or nn.Module()  # a parameter's name ends the walk
    return code


#: model classes whose frozen head was warned about
_SAID_HEAD: weakref.WeakSet[type] = weakref.WeakSet()


def _last_child(model: nn.Module) -> str | None:
    """The name of the model's last direct part that has parameters (its head, most often)."""
    named = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    return named[-1] if named else None


def make_optimizer(model: nn.Module, cfg: TrainConfig, head: Sequence[str] = ()) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg, head)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, amsgrad=cfg.amsgrad)


def l1_l2_penalty(params: list[nn.Parameter], l1: float, l2: float) -> torch.Tensor | None:
    """``l1 * sum|w| + l2 * sum w^2`` over trainable ``params`` (None when both are 0)."""
    if l1 == 0.0 and l2 == 0.0:
        return None
    live = [p for p in params if p.requires_grad]
    if not live:
        return None
    total = torch.zeros((), device=live[0].device)
    for p in live:
        if l1:
            total = total + l1 * p.abs().sum()
        if l2:
            total = total + l2 * p.pow(2).sum()
    return total
