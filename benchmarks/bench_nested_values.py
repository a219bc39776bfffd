"""Time of the code that walks nested parameter values (fixed mappings, tuple choices), against an older tunesmith.

The tunesmith on the path and another one (``--against``: a ``src`` folder, e.g. from ``git archive``) are
imported side by side (the other as ``tunesmith_against``) and timed in turns in one process, so the load
of the machine hits both alike. Reported: the median of each, and their ratio (new/old), for

- ``ask_tell_random``, ``ask_tell_tpe``: one ``ask`` + ``tell`` of a memory study, trial by trial in
  lockstep, on a space of 20 parameters (floats, ints, categoricals with nested tuple choices) and a
  fixed mapping holding tuples (TPE writes the space as JSON at each ask);
- the walks one by one: ``Fixed.validate`` of that mapping, ``to_dict``, ``frozen``, ``same_definition``,
  a tuple choice with NumPy scalars, JSON's lists as tuples, the tuples' paths, ``too_deep`` of a large
  JSON value, and the spaces of 100,000 choices (``_typed``, ``frozen``) and a fixed list of 10^6 numbers;
- hostile values, each refused by name (a ValueError), or the error that ended it instead: a fixed list
  5,000 levels deep, a stored choice 5,000 levels deep, 10,000 tuple marks on numbers.

    git archive <commit> src | tar -x -C /tmp/old
    PYTHONPATH=src python benchmarks/bench_nested_values.py --against /tmp/old/src
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tunesmith as ts

FIXED = {"shape": (3, 4), "layers": [1, (2, [3, (4,)])], "opts": {"lr": 1e-3, "tags": ["a", "b"]}}


def _space(m: ModuleType) -> Any:
    params: dict[str, Any] = {}
    for i in range(8):
        params[f"f{i}"] = m.Float(1e-4, 1.0, log=i % 2 == 0)
    for i in range(6):
        params[f"i{i}"] = m.Int(1, 64)
    for i in range(5):
        params[f"c{i}"] = m.Categorical([None, (1, 2), ((3, 4), 5), "relu", 0.5])
    params["fixed"] = m.Fixed(FIXED)
    return m.Space(params)


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def _ops(m: ModuleType) -> dict[str, tuple[Callable[[], Any], int]]:
    """Each walk to time, with how many calls make one timing."""
    params, trial = importlib.import_module(f"{m.__name__}.space.params"), importlib.import_module(f"{m.__name__}.trial")
    space = _space(m)
    d = space.to_dict()
    big = {"c": {"type": "categorical", "choices": list(range(100_000))}}
    large = {"a": [[{"b": [1, 2, 3]} for _ in range(10)] for _ in range(1_000)]}
    million = list(range(1_000_000))
    return {
        "fixed_validate": (lambda: space["fixed"].validate(FIXED), 5_000),
        "to_dict": (space.to_dict, 500),
        "frozen": (lambda: params.frozen(d), 500),
        "same_definition": (lambda: params.same_definition(d["c0"], d["c0"]), 5_000),
        "tuple_choice": (lambda: params._plain_choice((np.int64(1), (2, 3))), 20_000),
        "json_lists_as_tuples": (lambda: params._tuples([[1, 2], 3]), 20_000),
        "tuple_paths": (lambda: params._tuple_paths(FIXED), 5_000),
        "too_deep_large": (lambda: trial.too_deep(large), 2),
        "typed_100k": (lambda: params._typed(big), 2),
        "frozen_100k": (lambda: params.frozen(big), 2),
        "fixed_1e6": (lambda: m.Space({"f": m.Fixed(million)}).to_dict(), 1),
    }


def _hostile(m: ModuleType) -> dict[str, Callable[[], Any]]:
    marks = {"f": {"type": "fixed", "value": [[0] * 10 for _ in range(1_000)],
                   "tuples": [[i, j] for i in range(1_000) for j in range(10)]}}
    return {
        "deep_fixed": lambda: m.Space({"f": m.Fixed(_deep(5_000))}),
        "deep_stored_choice": lambda: m.Space.from_dict({"c": {"type": "categorical", "choices": [_deep(5_000)]}}),
        "marks_on_numbers": lambda: m.Space.from_dict(marks),
    }


def _refused_ms(fn: Callable[[], Any], repeats: int) -> float | str:
    """The median time to refuse a hostile value with a ValueError; the error's name where another ends it."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            fn()
        except ValueError:
            pass
        except RecursionError as exc:  # as an older tunesmith did
            return type(exc).__name__
        else:
            raise AssertionError("a hostile value was accepted")
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _ask_tell(mods: dict[str, ModuleType], sampler: str, n: int) -> dict[str, float]:
    studies = {k: m.Study(_space(m), sampler=sampler, seed=0) for k, m in mods.items()}
    times: dict[str, list[float]] = {k: [] for k in mods}
    for _ in range(n):  # lockstep: trial by trial
        for k, study in studies.items():
            t0 = time.perf_counter()
            trial = study.ask()
            study.tell(trial, sum(v for v in trial.params.values() if isinstance(v, float)))
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


def _line(name: str, old: float, new: float, unit: str = "us") -> str:
    return f"{name:22s} old {old:10.2f} {unit}  new {new:10.2f} {unit}  new/old {new / old:.2f}"


def _against(src: Path) -> ModuleType:
    """The tunesmith in ``src`` imported as ``tunesmith_against`` (its imports inside are relative)."""
    home = Path(tempfile.mkdtemp(prefix="tunesmith_against_"))
    atexit.register(shutil.rmtree, home, True)
    shutil.copytree(src / "tunesmith", home / "tunesmith_against")
    sys.path.insert(0, str(home))
    return importlib.import_module("tunesmith_against")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, required=True, help="the src folder of the tunesmith to compare with")
    ap.add_argument("--repeats", type=int, default=11, help="timings of each walk, in turns")
    args = ap.parse_args()
    mods = {"old": _against(args.against), "new": ts}
    for m in mods.values():
        m.set_verbosity(logging.WARNING)
    for sampler, n in (("random", 300), ("tpe", 150)):
        t = _ask_tell(mods, sampler, n)
        print(_line(f"ask_tell_{sampler}", t["old"], t["new"]), flush=True)
    ops = {k: _ops(m) for k, m in mods.items()}
    for name in ops["new"]:
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.repeats):
            for k in mods:
                fn, number = ops[k][name]
                times[k].append(timeit.timeit(fn, number=number) / number * 1e6)
        print(_line(name, statistics.median(times["old"]), statistics.median(times["new"])), flush=True)
    for name in _hostile(ts):
        old, new = (_refused_ms(_hostile(m)[name], 5) for m in mods.values())
        show = {k: f"{v:.2f} ms" if isinstance(v, float) else v for k, v in (("old", old), ("new", new))}
        print(f"{name + '_refused':22s} old {show['old']:>12s}  new {show['new']:>12s}", flush=True)


if __name__ == "__main__":
    main()
