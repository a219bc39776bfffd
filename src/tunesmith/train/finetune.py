"""Fine-tuning helpers: replace a head, freeze and unfreeze blocks.

Frozen parameters get ``requires_grad = False`` (no gradient, so the optimizer
leaves them bit-identical) and frozen modules are kept in eval mode during
training, so batch-norm running statistics and dropout in them do not change.

    model.classifier = nn.Linear(384, 2)          # or replace_head(model, "classifier", ...)
    freeze(model.encoder)                          # whole backbone
    unfreeze_last(model.encoder.layer, 2)          # ... except its last 2 blocks
    Trainer(model, cfg, head="classifier")
    # or thaw gradually, from those 2 blocks on (start= counts the blocks thawed already):
    Trainer(model, cfg, head="classifier", callbacks=[GradualUnfreezing(model.encoder.layer, start=2)])
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

_FLAG = "_tunesmith_frozen"


def replace_head(model: nn.Module, name: str, head: nn.Module) -> nn.Module:
    """Set ``model.<name> = head`` (dotted names reach into submodules); returns the old head."""
    *path, last = name.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    old = getattr(parent, last, None)
    if not isinstance(old, nn.Module):
        raise ValueError(f"model has no submodule {name!r} to replace")
    setattr(parent, last, head)
    return old


def _modules(module: Any, what: str) -> list[nn.Module]:
    """``module`` or a list/tuple of modules, as a list; anything else refused saying what to pass
    (a parameter or a list met "object has no attribute 'parameters'")."""
    items = list(module) if isinstance(module, (list, tuple)) else [module]
    bad = [type(m).__name__ for m in items if not isinstance(m, nn.Module)]
    if bad:
        hint = " (for one weight: w.requires_grad_(False))" if "Parameter" in bad or "Tensor" in bad else ""
        raise TypeError(f"{what} takes a module or a list of modules (e.g. model.encoder, model.encoder.layer[:4]), "
                        f"got {', '.join(sorted(set(bad)))}{hint}")
    return items


def freeze(module: nn.Module | Sequence[nn.Module]) -> Any:
    """Stop training ``module`` (or each module of a list): no gradients, eval mode while the trainer runs."""
    for m in _modules(module, "freeze"):
        _set_frozen(m, True)
    return module


def unfreeze(module: nn.Module | Sequence[nn.Module]) -> Any:
    """Train ``module`` (or each module of a list) again: gradients, train mode."""
    for m in _modules(module, "unfreeze"):
        _set_frozen(m, False)
    return module


def _set_frozen(module: nn.Module, frozen: bool) -> None:
    """Freeze ``module`` (no gradients, eval mode, each submodule flagged) or train it again."""
    for p in module.parameters():
        p.requires_grad_(not frozen)
    for m in module.modules():
        setattr(m, _FLAG, frozen)
    module.train(not frozen)


def unfreeze_last(blocks: Sequence[nn.Module], k: int) -> None:
    """Unfreeze the last ``k`` of ``blocks`` (e.g. a transformer's layers); freeze the others."""
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    blocks = as_blocks(blocks)
    n = len(blocks)
    _check_count("unfreeze_last", "k", k, n)
    for i, block in enumerate(blocks):
        _set_frozen(block, i < n - k)


def _check_count(where: str, name: str, k: int, n: int) -> None:
    """Refuse to thaw more blocks than there are: every value from ``n`` up trains the same model, so a
    searched count beyond it repeats trials (or the sequence given is not the one meant)."""
    if k > n:
        raise ValueError(f"{where}: {name}={k}, but the blocks given are {n}, so {name} is at most {n} (all of them "
                         f"trainable); lower it (a searched range: up to {n}), or pass the sequence of blocks meant")


def as_blocks(blocks: Any) -> list[nn.Module]:
    """``blocks`` as a list of modules; a module that is not a sequence of blocks (a whole model, one
    layer) is refused naming the sequences inside it (torch: "object of type ... has no len()")."""
    if isinstance(blocks, nn.Module) and not isinstance(blocks, (nn.Sequential, nn.ModuleList)):
        inside = [name for name, m in blocks.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m)]
        outer = [n for n in inside if not any(n.startswith(o + ".") for o in inside)]  # not blocks of blocks
        hint = f" such as {', '.join(repr(n) for n in outer[:3])} inside it" if outer else ""
        raise TypeError(f"blocks must be a sequence of modules (an nn.ModuleList or nn.Sequential, a list), ordered "
                        f"from the input up, got one {type(blocks).__name__}; pass the sequence of its blocks{hint}, "
                        "e.g. model.encoder.layer")
    out = list(blocks)
    if not all(isinstance(b, nn.Module) for b in out):
        raise TypeError(f"blocks must be modules, got {sorted({type(b).__name__ for b in out})}")
    return out


def keep_frozen_in_eval(model: nn.Module) -> None:
    """Put frozen submodules back in eval mode (after ``model.train()``).

    Module by module, not ``m.eval()``: a block thawed inside a frozen backbone
    (``freeze(backbone); unfreeze_last(backbone.layers, 2)``) stays in train mode.
    """
    for m in model.modules():
        if getattr(m, _FLAG, False):
            m.training = False


def is_frozen_module(module: nn.Module) -> bool:
    """Whether ``module`` was frozen by :func:`freeze` (its buffers do not change in training)."""
    return bool(getattr(module, _FLAG, False))


def hand_frozen_batch_norms(model: nn.Module) -> list[str]:
    """Names of the batch norm layers whose scale and shift were frozen by hand (``requires_grad_(False)``),
    not with :func:`freeze`: the trainer runs them in train mode, so their running statistics move."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and not is_frozen_module(m)
            and (own := list(m.parameters(recurse=False))) and not any(p.requires_grad for p in own)]


def warn_hand_frozen_batch_norms(model: nn.Module) -> None:
    """Say once per model class that batch norm frozen by hand still learns its running statistics:
    the weights stay, but the layer's output drifts from the pre-trained one."""
    names = hand_frozen_batch_norms(model)
    kind = type(model)
    if not names or kind in _SAID or not any(p.requires_grad for p in model.parameters()):
        return
    _SAID.add(kind)
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    one = len(names) == 1
    logging.getLogger("tunesmith").warning(
        "%d batch norm %s of the %s (%s%s) %s weights frozen by hand (requires_grad False) but train%s: "
        "the trainer puts the model in train mode each epoch (over an earlier .eval()), so their running statistics "
        "follow the new data and the pre-trained ones are lost. Freeze with tunesmith.train.freeze(module), which "
        "keeps the module in eval mode; if the statistics are meant to adapt, ignore this (said once per model class)",
        len(names), "layer" if one else "layers", kind.__qualname__, ", ".join(names[:3]), more,
        "has its" if one else "have their", "s" if one else "")


#: model classes whose batch norm frozen by hand was warned about (two classes of one name are two)
_SAID: weakref.WeakSet[type] = weakref.WeakSet()

#: torch's default batch-norm momentum; Keras' 0.99 (and TensorFlow ports': EfficientNet-Lite) is torch's 0.01
TORCH_BN_MOMENTUM = 0.1
#: a run whose batch norm keeps more than this share of its running statistics' starting values is told
STALE_SHARE = 0.1


def warn_slow_batch_norms(model: nn.Module, batches: int, thawing: Sequence[nn.Module] = ()) -> None:
    """Say once per model class that batch norm trained with a momentum below torch's default keeps most of its
    starting running statistics over a run of ``batches`` training batches: evaluation normalizes with them, so
    validation lags training (EfficientNet-Lite0's package sets 0.01: 1.72 against a training loss of 0.39, 0.90 at 0.1).
    ``thawing``: frozen blocks that the run thaws (GradualUnfreezing), whose batch norm trains from then on."""
    thawed = {id(m) for block in thawing for m in block.modules()}
    slow = [(name, m.momentum) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            and (not is_frozen_module(m) or id(m) in thawed)
            and m.momentum is not None and 0 < m.momentum < TORCH_BN_MOMENTUM]
    kind = type(model)
    if not slow or kind in _SAID_SLOW or batches <= 0:
        return
    least = min(m for _, m in slow)
    kept = (1 - least) ** batches
    if kept <= STALE_SHARE:
        return
    _SAID_SLOW.add(kind)
    names = [n for n, _ in slow]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    logging.getLogger("tunesmith").warning(
        "%d batch norm %s of the %s (%s%s) %s momentum %s, below torch's default %g: over this run's %d training "
        "batches %s running statistics, which evaluation normalizes with, keep %.0f%% of their values at the start, "
        "so validation lags training. For a short run set it to %g: %s; ignore this if the statistics are meant to "
        "stay near their start (said once per model class)",
        len(names), "layer" if len(names) == 1 else "layers", kind.__qualname__, ", ".join(names[:3]), more,
        "has" if len(names) == 1 else "have", f"{least:g}" if all(m == least for _, m in slow) else f"{least:g} or more",
        TORCH_BN_MOMENTUM, batches, "its" if len(names) == 1 else "their", 100 * kept, TORCH_BN_MOMENTUM,
        SET_BN_MOMENTUM % TORCH_BN_MOMENTUM)


#: the fix the slow batch-norm warning gives, one line of Python as printed (every batch norm kind: 1d, 2d, 3d, sync)
SET_BN_MOMENTUM = ("for m in [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]: "
                   "m.momentum = %g")


#: model classes whose slow batch norm was warned about
_SAID_SLOW: weakref.WeakSet[type] = weakref.WeakSet()


def trainable(model: nn.Module) -> int:
    """Number of trainable parameter values."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class GradualUnfreezing:
    """Callback: at epoch ``e`` the last ``start + e // every`` blocks are trainable.

    ULMFiT's gradual unfreezing: train the head first, then thaw one block
    more every ``every`` epochs, from the top of the network down. ``start``
    counts the blocks trainable from the first epoch: after
    ``unfreeze_last(blocks, 2)`` pass ``start=2``. On blocks partly frozen
    already, a schedule that would freeze blocks that are trainable now
    (``start`` below the blocks thawed) is refused, since it would undo the
    thawing; on a model with nothing frozen it freezes the blocks itself.
    ``blocks`` may be a function of the model (``lambda model: model.encoder.layer``),
    which a study's ``objective(..., callbacks=[...])`` needs: each trial builds a new model.
    """

    def __init__(
        self, blocks: Sequence[nn.Module] | Callable[[nn.Module], Sequence[nn.Module]], *, every: int = 1, start: int = 0
    ) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (every, start)) or every < 1 or start < 0:
            raise ValueError(f"GradualUnfreezing needs integers every >= 1 and start >= 0, got {every!r}, {start!r}")
        self.every, self.start = every, start
        # a function of the model serves a study, where each trial trains a model of its own
        self.of_model = blocks if callable(blocks) and not isinstance(blocks, nn.Module) else None
        self.blocks: list[nn.Module] = [] if self.of_model is not None else as_blocks(blocks)
        if self.of_model is None:
            _check_count("GradualUnfreezing", "start", start, len(self.blocks))

    def thawed_by(self, model: nn.Module, last_epoch: int) -> list[nn.Module]:
        """The blocks of ``model`` that are trainable at some epoch up to ``last_epoch`` (the last blocks)."""
        blocks = self.blocks_of(model)
        k = self.unfrozen_at(last_epoch, len(blocks))
        return blocks[len(blocks) - k:] if k else []

    def unfrozen_at(self, epoch: int, n: int | None = None) -> int:
        """How many of the last blocks are trainable at ``epoch`` (of ``n`` blocks; default: the list given)."""
        return min(len(self.blocks) if n is None else n, self.start + epoch // self.every)

    def blocks_of(self, model: nn.Module) -> list[nn.Module]:
        """The blocks to thaw in ``model``; refused when they are not part of it."""
        blocks = as_blocks(self.of_model(model)) if self.of_model is not None else self.blocks
        _check_count("GradualUnfreezing", "start", self.start, len(blocks))
        inside = {id(m) for m in model.modules()}
        if not all(id(b) in inside for b in blocks):
            raise ValueError(
                "GradualUnfreezing's blocks are not part of the model being trained, so thawing them would train "
                "nothing of it (in a study each trial builds its own model); pass a function of the model "
                "instead, e.g. GradualUnfreezing(lambda model: model.encoder.layer, start=2)")
        return blocks

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        blocks = self.blocks_of(trainer.model)
        k = self.unfrozen_at(epoch, len(blocks))
        thawed = [i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())]
        n = len(blocks)
        # blocks without parameters (ReLU, pooling between the layers of model.features) are neither
        # frozen nor trainable: counted as frozen, they made a model with nothing frozen look partly thawed
        weighted = sum(any(True for _ in b.parameters()) for b in blocks)
        # all blocks trainable: nothing was frozen yet, the schedule does the freezing
        if len(thawed) < weighted and any(i < n - k for i in thawed):
            last = n - min(thawed)  # the last blocks that hold every trainable one (parameter-free ones too)
            raise ValueError(
                f"GradualUnfreezing(every={self.every}, start={self.start}) would freeze "
                f"{sum(i < n - k for i in thawed)} of the {len(thawed)} blocks that are trainable now "
                f"(blocks {thawed} of {n}) at epoch {epoch}, undoing the thawing done before it "
                f"(e.g. unfreeze_last(blocks, {last})). Pass start={last} to thaw further from "
                "there, or leave out either unfreeze_last or GradualUnfreezing"
            )
        unfreeze_last(blocks, k)
