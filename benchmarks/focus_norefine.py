"""The row ``tunesmith`` of bench_focus.py with one part of the focus after the stall switched
off (the code before it), to show what that part does; not a deciding row. ``refine`` (the
default): no refining box, for benchmarks/focus.md's third run; ``rest-model``: steps on the rest
in the box by the acquisition, not by the quadratic model of bayes/rest.py, for the fourth run:

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/focus_norefine.py > benchmarks/results/focus-v3-norefine.jsonl
    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/focus_norefine.py rest-model > benchmarks/results/focus-v4-norestmodel.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_focus as B  # noqa: E402

import tunesmith.samplers.bayes.focus as focus  # noqa: E402


def switch_off(part: str) -> str:
    """Patch the focus rule; the method's name in the rows."""
    if part == "rest-model":
        rule = focus.FocusRule
        focus.FocusRule = lambda: rule(rest_model=False)  # type: ignore[assignment,misc]
        return "tunesmith-norestmodel"
    focus.FocusRule.refine_box = lambda self, *a: None  # type: ignore[assignment,method-assign]  # the whole subspace
    return "tunesmith-norefine"


def main(part: str) -> None:
    method, probs = switch_off(part), B.problems()
    for seed in range(5):
        for p in probs:
            t0 = time.perf_counter()
            values = B.run("tunesmith", probs[p], 100, seed)
            trace = (np.minimum.accumulate(values) - probs[p].f_min).tolist()
            print(json.dumps({"problem": p, "method": method, "seed": seed, "budget": 100,
                              "regret": trace[-1], "trace": trace, "seconds": time.perf_counter() - t0,
                              "f_min": probs[p].f_min}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "refine")
