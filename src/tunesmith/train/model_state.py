"""What of a model a checkpoint holds, and the checks that it fits the model resumed.

A frozen part (parameters without gradient, buffers of frozen modules) cannot
change while training, so a checkpoint stores only the rest, plus the shapes
of every tensor and a SHA-256 fingerprint of the frozen part. Loading checks
that the model has the same tensors and shapes and the same frozen part; a
model built differently is refused with a message that says what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..paths import PLANTED_FIX
from . import checkpoint as ckpt
from .checkpoint import CheckpointError, CheckpointMismatch
from .finetune import is_frozen_module
from .history import EvalRecord, History
from .schedule import Plateau


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


def load_model_state(model: nn.Module, saved: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None, where: str,
                     *, verb: str = "resume") -> None:
    """Load ``saved`` into ``model`` after checking that it is the model they came from."""
    model.load_state_dict(checked_state(model, saved, meta, where, verb=verb))


def checked_state(model: nn.Module, saved: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None,
                  where: str, *, verb: str = "resume") -> dict[str, torch.Tensor]:
    """The whole state of ``model`` that ``saved`` stores, once checked to come from it (nothing loaded).
    ``verb``, "resume" or "load", says in an error what the model must match to do."""
    check_fields({"model": saved, "model_meta": meta}, where, resumable=False)
    if meta is None:  # a checkpoint that stored the whole model
        check_architecture(model, {k: list(v.shape) for k, v in saved.items()}, where, verb=verb)
        return dict(saved)
    check_architecture(model, meta["shapes"], where, verb=verb)
    return complete_state(model.state_dict(), saved, meta, where, verb=verb)


def complete_state(
    built: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], meta: Mapping[str, Any], where: str,
    *, verb: str = "resume",
) -> dict[str, torch.Tensor]:
    """``saved`` with the part it leaves out (frozen when it was written) taken from ``built``,
    the model's state as built, after checking that part's fingerprint."""
    frozen = {k: built[k] for k in built if k not in saved}
    if fingerprint(frozen) != meta["frozen"]:
        raise CheckpointMismatch(
            f"{where} stores only the trained part of the model; the {len(frozen)} frozen tensors "
            f"(e.g. {sorted(frozen)[:3]}) of this model differ from those it was trained with. Build the "
            f"model with the same pre-trained weights and freeze the same blocks to {verb} it"
        )
    return {**built, **saved}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights of a checkpoint (e.g. a trial's ``best_checkpoint``) into ``model``.

    ``model`` is built as for training (``build_model(params)``: the same pre-trained
    weights and frozen blocks), since a checkpoint leaves out the frozen part. A file another
    user may have chosen is refused (:func:`~tunesmith.paths.refuse_planted`): the path is mostly read
    from a study, which whoever may write its database can change."""
    state = ckpt.load(path, planted=("checkpoint", PLANTED_FIX))
    load_model_state(model, state["model"], state.get("model_meta"), repr(str(path)), verb="load")
    return model


#: counters of a resumable checkpoint: integers >= 0
COUNTERS = ("step", "epoch", "offset", "bad")
#: the saved run's length, which its schedule followed: integers >= 0 where present
RUN_LENGTH = ("steps_per_epoch", "total_steps", "train_samples")


def check_fields(state: Mapping[str, Any], where: str, *, resumable: bool = True) -> None:
    """Refuse a checkpoint that torch reads but whose fields are missing or of the wrong kind (another
    tool's file with "model" and "step", a hand-edited or damaged one), naming each such field, before
    anything of it is loaded (it met KeyError, TypeError or ZeroDivisionError with a model half-loaded).
    ``resumable``: also the fields a resumed run reads (optimizer, counters, history, random states)."""
    problems = _model_problems(state.get("model"), state.get("model_meta"))
    if resumable:
        problems += _run_problems(state)
    if problems:
        raise CheckpointError(
            f"{where} is not a checkpoint this trainer wrote, or it was changed or damaged since: "
            f"{'; '.join(problems)}. Resume from another checkpoint of the run (checkpoint.latest(folder) "
            "gives the newest complete one), or start a new run (no resume_from)")


def _model_problems(model: Any, meta: Any) -> list[str]:
    out = []
    if not (isinstance(model, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in model.items())):
        out.append(f"'model' must map tensor names to tensors, got {_kind(model)}")
    if meta is None:
        return out
    shapes = meta.get("shapes") if isinstance(meta, Mapping) else None
    if not (isinstance(shapes, Mapping) and all(
            isinstance(v, (list, tuple)) and all(_count(n) for n in v) for v in shapes.values())):
        out.append(f"'model_meta' must hold 'shapes' (tensor names to lists of sizes), got {_kind(shapes)}")
    if not (isinstance(meta, Mapping) and isinstance(meta.get("frozen"), str)):
        out.append("'model_meta' must hold 'frozen', the fingerprint of the frozen part (a string)")
    return out


def _run_problems(state: Mapping[str, Any]) -> list[str]:
    out = [f"{k!r} must be an integer >= 0, got {_kind(state.get(k))}" for k in COUNTERS if not _count(state.get(k))]
    opt = state.get("optimizer")
    if not (isinstance(opt, Mapping) and isinstance(opt.get("state"), Mapping)
            and isinstance(opt.get("param_groups"), list) and opt["param_groups"]):
        out.append(f"'optimizer' must be an optimizer's state_dict, got {_kind(opt)}")
    plateau = state.get("plateau")
    if not (isinstance(plateau, Mapping) and all(k in PLATEAU and _number(v) for k, v in plateau.items())):
        out.append(f"'plateau' must map {sorted(PLATEAU)} to numbers, got {_kind(plateau)}")
    acc = state.get("acc")
    if not (isinstance(acc, (list, tuple)) and len(acc) == 3 and all(_number(v) for v in acc)):
        out.append(f"'acc' must be a list of 3 numbers, got {_kind(acc)}")
    out += [f"{k!r} must be an integer >= 0, got {_kind(state[k])}" for k in RUN_LENGTH
            if k in state and not _count(state[k])]  # (absent from a checkpoint of an older tunesmith)
    if "ref" in state and not _number(state["ref"]):
        out.append(f"'ref' must be a number, got {_kind(state['ref'])}")
    if not _history_ok(state.get("history")):
        out.append(f"'history' must be a training history (records of {sorted(_RECORD)}), got {_kind(state.get('history'))}")
    if not _rng_ok(state.get("rng")):
        out.append(f"'rng' must hold the random states of Python, NumPy and torch, got {_kind(state.get('rng'))}")
    for key in ("config", "hypergrad"):
        if state.get(key) is not None and not isinstance(state[key], Mapping):
            out.append(f"{key!r} must be a mapping, got {_kind(state[key])}")
    return out


PLATEAU = frozenset(f.name for f in dataclasses.fields(Plateau))
_RECORD = frozenset(f.name for f in dataclasses.fields(EvalRecord))
_HISTORY = frozenset(f.name for f in dataclasses.fields(History))


def _history_ok(history: Any) -> bool:
    if not (isinstance(history, Mapping) and set(history) <= _HISTORY and isinstance(history.get("records"), list)):
        return False
    records = history["records"]
    best = history.get("best_index")
    if not (all(_record_ok(r) for r in records) and _number(history.get("best_loss", 0.0))
            and (best is None or (_count(best) and best < len(records)))  # History.best reads records[best]
            and all(history.get(k) is None or isinstance(history[k], str) for k in ("best_checkpoint", "last_checkpoint"))
            and all(isinstance(history.get(k, False), bool) for k in ("stopped_early", "finished"))):
        return False
    try:
        History.from_dict(dict(history))
    except (TypeError, ValueError):  # a smoothing out of range
        return False
    return True


def _record_ok(record: Any) -> bool:
    """A validation record of the fields and kinds of :class:`EvalRecord`."""
    if not (isinstance(record, Mapping) and set(record) <= _RECORD):
        return False
    numbers = ("train_loss", "lr", "samples_per_s", "seconds")
    return (all(_count(record.get(k)) for k in ("index", "epoch", "step")) and all(_number(record.get(k)) for k in numbers)
            and (record.get("val_loss") is None or _number(record["val_loss"]))
            and all(isinstance(record.get(k), bool) for k in ("improved", "overfitting"))
            and all(isinstance(v, Mapping) and all(_number(x) for x in v.values())
                    for v in (record.get("metrics"), record.get("lrs", {}))))


def _rng_ok(rng: Any) -> bool:
    if not isinstance(rng, Mapping):
        return False
    py, np_state, cpu = rng.get("python"), rng.get("numpy"), rng.get("torch")
    return (isinstance(py, (list, tuple)) and len(py) == 3 and isinstance(py[1], (list, tuple))
            and isinstance(np_state, Mapping) and isinstance(np_state.get("keys"), torch.Tensor)
            and all(_number(np_state.get(k)) for k in ("pos", "has_gauss", "cached"))
            and isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else type(v).__name__


def check_architecture(model: nn.Module, shapes: Mapping[str, list[int]], where: str, *, verb: str = "resume") -> None:
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
    raise CheckpointMismatch(
        f"{where} was written for another model architecture ({'; '.join(p for p in parts if p)}); "
        + ("resume with the model it was trained with, or start a new run" if verb == "resume" else
           "load it into a model built as for training (build_model(trial.params): the same layers and sizes)")
    )


def _few(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
