"""Checkpoints: model, optimizer, schedule, step, history and every random state.

A checkpoint is one ``torch.save`` file written atomically (temporary file,
then rename), so a run killed while saving leaves the previous one intact.
"Last" checkpoints are rotated (``keep_last`` newest stay); "best" is one file
overwritten in place, so disk use is bounded by ``keep_last + 1`` files.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_LAST = re.compile(r"^last-(\d{9})\.pt$")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise ValueError(f"{str(path)!r} is not a tunesmith checkpoint (no model/step)")
    return state


def last_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"last-{step:09d}.pt"


def best_path(directory: str | Path) -> Path:
    return Path(directory) / "best.pt"


def list_last(directory: str | Path) -> list[Path]:
    """The rotated "last" checkpoints of ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _LAST.match(p.name))


def latest(directory: str | Path) -> Path | None:
    """The newest "last" checkpoint in ``directory`` (None if there is none)."""
    found = list_last(directory)
    return found[-1] if found else None


def rotate(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest "last" checkpoints; returns the deleted."""
    old = list_last(directory)[:-keep] if keep > 0 else list_last(directory)
    for p in old:
        p.unlink(missing_ok=True)
    return old
