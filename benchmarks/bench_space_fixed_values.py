"""How long ts.Space takes over large fixed values (it walks them for another library's search distribution).

    PYTHONPATH=src python benchmarks/bench_space_fixed_values.py

Prints the median of 5 constructions of a Space with a fixed tuple of 200,000 NumPy floats and a fixed dict
holding a tuple of 200,000 strings, beside one searched parameter.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import tunesmith as ts


def main() -> None:
    fixed = {"table": tuple(np.arange(200_000, dtype=np.float64)),
             "cfg": {"depth": 3, "names": tuple(f"n{i}" for i in range(200_000))}}
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        ts.Space({**fixed, "x": ts.Float(0, 1)})
        times.append(time.perf_counter() - t0)
    print(f"{ts.__file__}: median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
