"""Time of the code that walks nested parameter values (fixed mappings, tuple choices).

Reports medians (in microseconds, or milliseconds for the hostile values) of:

- ``ask_tell``: one ``ask`` + ``tell`` of a memory study, random sampler, on a space of 20
  parameters (floats, ints, categoricals with tuple choices) and a fixed mapping holding tuples;
- ``validate``: ``Space.validate`` of one configuration of that space (a stored trial read back);
- ``to_dict``, ``eq_hash``: the space's definition as stored, and ``==`` plus ``hash`` of two such
  spaces (each study open compares the given space with the stored one);
- ``big_categorical``: ``==``, ``hash`` and ``to_dict`` of two spaces of 100,000 int choices;
- hostile values, each refused by name: a fixed list 5,000 levels deep, a stored choice 5,000
  levels deep, a stored fixed value marked with 10,000 tuple paths, a fixed list of 10^6 numbers
  (accepted: the time to check it).

    PYTHONPATH=src python benchmarks/bench_nested_values.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import tunesmith as ts


def _space() -> ts.Space:
    params: dict[str, Any] = {}
    for i in range(8):
        params[f"f{i}"] = ts.Float(1e-4, 1.0, log=i % 2 == 0)
    for i in range(6):
        params[f"i{i}"] = ts.Int(1, 64)
    for i in range(5):
        params[f"c{i}"] = ts.Categorical([None, (1, 2), ((3, 4), 5), "relu", 0.5])
    params["fixed"] = ts.Fixed({"shape": (3, 4), "layers": [1, (2, [3, (4,)])], "opts": {"lr": 1e-3, "tags": ["a", "b"]}})
    return ts.Space(params)


def _median_us(fn: Callable[[], Any], n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times) * 1e6


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


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    ts.set_verbosity(logging.WARNING)
    space = _space()
    study = ts.Study(space, sampler="random", seed=0)

    def ask_tell() -> None:
        trial = study.ask()
        study.tell(trial, 0.5)

    first = study.ask()
    config = first.params
    study.tell(first, 0.5)
    other = _space()
    stored = space.to_dict()
    big_a, big_b = (ts.Space({"c": ts.Categorical(list(range(100_000)))}) for _ in range(2))
    deep_choice = {"c": {"type": "categorical", "choices": [_deep(5_000)]}}
    marks = {"f": {"type": "fixed", "value": [[0] * 10 for _ in range(1_000)], "tuples": [[i, j] for i in range(1_000) for j in range(10)]}}
    million = list(range(1_000_000))
    out: dict[str, float | str] = {
        "ask_tell_us": _median_us(ask_tell, 200, args.repeats),
        "validate_us": _median_us(lambda: space.validate(config), 2_000, args.repeats),
        "to_dict_us": _median_us(space.to_dict, 2_000, args.repeats),
        "eq_hash_us": _median_us(lambda: (space == other, hash(space), hash(other)), 500, args.repeats),
        "from_dict_us": _median_us(lambda: ts.Space.from_dict(stored), 500, args.repeats),
        "big_categorical_ms": _median_us(lambda: (big_a == big_b, hash(big_a), big_a.to_dict()), 1, args.repeats) / 1e3,
        "deep_fixed_refused_ms": _refused_ms(lambda: ts.Space({"f": ts.Fixed(_deep(5_000))}), args.repeats),
        "deep_stored_choice_refused_ms": _refused_ms(lambda: ts.Space.from_dict(deep_choice), args.repeats),
        "marks_on_numbers_refused_ms": _refused_ms(lambda: ts.Space.from_dict(marks), args.repeats),
        "million_fixed_ms": _median_us(lambda: ts.Space({"f": ts.Fixed(million)}).to_dict(), 1, args.repeats) / 1e3,
    }
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
