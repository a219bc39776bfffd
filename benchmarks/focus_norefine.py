"""The row ``tunesmith`` of bench_focus.py with the focus's refinement after the stall switched
off (the code before it), for benchmarks/focus.md's third run; not a deciding row:

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/focus_norefine.py > benchmarks/results/focus-v3-norefine.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_focus as B  # noqa: E402

from tunesmith.samplers.bayes.focus import FocusRule  # noqa: E402

FocusRule.refine_box = lambda self, *a: None  # type: ignore[assignment,method-assign]  # no box: the whole subspace


def main() -> None:
    probs = B.problems()
    for seed in range(5):
        for p in probs:
            t0 = time.perf_counter()
            values = B.run("tunesmith", probs[p], 100, seed)
            trace = (np.minimum.accumulate(values) - probs[p].f_min).tolist()
            print(json.dumps({"problem": p, "method": "tunesmith-norefine", "seed": seed, "budget": 100,
                              "regret": trace[-1], "trace": trace, "seconds": time.perf_counter() - t0,
                              "f_min": probs[p].f_min}), flush=True)


if __name__ == "__main__":
    main()
