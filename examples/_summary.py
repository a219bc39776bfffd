"""The closing summary the fine-tuning examples print: baselines, validation, test, what the search changed;
and the check of their numeric options."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by the examples before they know torch is there
    from tunesmith.train import TrainConfig


def missing(exc: ModuleNotFoundError, extra: str) -> ImportError:
    """What an example raises when a library it needs is not installed: which one, and the extra
    to install (not a bare "No module named 'torch'")."""
    return ImportError(f"this example needs {exc.name}: pip install 'tunesmith[{extra}]'")


def show(value: Any) -> str:
    """A parameter value for reading: 4 significant digits, never floating-point noise."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def changes(params: Mapping[str, Any], base: TrainConfig) -> list[str]:
    """``name default -> found`` for each searched TrainConfig field; ``name = found`` where the
    search kept the default, or for a parameter that is not a TrainConfig field."""
    defaults = base.to_dict()
    out = []
    for name, value in params.items():
        if name in defaults and show(defaults[name]) != show(value):
            out.append(f"{name} {show(defaults[name])} -> {show(value)}")
        else:
            out.append(f"{name} = {show(value)}")
    return out


def table(rows: Sequence[tuple[str, str]]) -> str:
    """Two left-aligned columns."""
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


def score(accuracy: float, loss: float | None = None) -> str:
    return f"accuracy {accuracy:.3f}" + ("" if loss is None else f", loss {loss:.3f}")


def at_least(p: argparse.ArgumentParser, args: argparse.Namespace, minimums: Mapping[str, int]) -> argparse.Namespace:
    """A usage error naming the option whose value is below its minimum (``--trials 0``), before
    anything runs; ``None`` (an option left unset) passes."""
    for dest, low in minimums.items():
        value = getattr(args, dest)
        if value is not None and value < low:
            p.error(f"--{dest.replace('_', '-')} must be at least {low}, got {value}")
    return args
