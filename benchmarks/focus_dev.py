"""Development functions for the automatic focus (not the benchmark's): Rosenbrock-4, Levy-4 and a
weighted quadratic, embedded in 20 dimensions as benchmarks/bench_focus.py embeds its functions
(16 irrelevant or small-effect parameters). One JSON line per run: regret after 100 trials, at 50
and 75, and how much of the regret the small terms make up at the best trial.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/focus_dev.py TAG 11,12,13 small,irrelevant quad4,rosenbrock4,levy4

RULE='{"rest_every": 4}' overrides FocusRule's defaults (a JSON object of its fields); METHOD=nofocus runs
``BayesSampler(focus=False)``, METHOD=ref4d the 4-d function alone (``small_part`` then means nothing).
Rows of the development runs: results/focus-dev.jsonl (see LOG.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_focus as B  # noqa: E402


def rosenbrock4(x: np.ndarray) -> float:
    z = 4.0 * x - 2.0
    return float(np.sum(100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2) / 100.0)


def levy4(x: np.ndarray) -> float:
    w = 1 + (20.0 * x - 10.0 - 1) / 4
    return float(np.sin(np.pi * w[0]) ** 2 + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
                 + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def quad4(x: np.ndarray) -> float:
    return float(np.sum(np.array([1.0, 2.0, 4.0, 8.0]) * (x - np.array([0.3, 0.7, 0.45, 0.6])) ** 2))


_SHIFT = np.array([0.31, 0.62, 0.43, 0.71])  # the optimum of the two below (not the center)


def rastrigin4(x: np.ndarray) -> float:
    """Rastrigin on [-2.5, 2.5]^4 around the shifted optimum (4-6 basins per coordinate), / 10."""
    z = 5.0 * (x - _SHIFT)
    return float((10 * 4 + np.sum(z**2 - 10 * np.cos(2 * np.pi * z))) / 10.0)


def ackley4(x: np.ndarray) -> float:
    """Ackley on [-5, 5]^4 around the shifted optimum."""
    z = 10.0 * (x - _SHIFT)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.mean(z**2))) - np.exp(np.mean(np.cos(2 * np.pi * z))) + 20 + np.e)


FUNCTIONS = {"rosenbrock4": rosenbrock4, "levy4": levy4, "quad4": quad4, "rastrigin4": rastrigin4,
             "ackley4": ackley4}


def _embed(z: np.ndarray, eff: np.ndarray) -> np.ndarray:
    x = np.zeros(B.D)
    x[eff] = z
    return x


def main(tag: str, seeds: list[int], variants: list[str], names: list[str]) -> None:
    if os.environ.get("RULE"):
        import tunesmith.samplers.bayes.focus as focus

        rule, kw = focus.FocusRule, json.loads(os.environ["RULE"])
        focus.FocusRule = lambda: rule(**kw)  # type: ignore[assignment,misc]
    for name in names:
        f = FUNCTIONS[name]
        lo, sd = (0.0 if name in ("rastrigin4", "ackley4") else B.minimum(f)), B.spread(f)  # known minima
        for variant in variants:
            prob = B.Problem(f"{name}-{variant}", f, variant == "small", lo, sd)
            for s in seeds:
                t0, g, xs = time.time(), prob.full(s), []
                method = os.environ.get("METHOD", "tunesmith")
                if method == "ref4d":
                    eff = prob.instance(s)[0]
                    values = B.run_tunesmith(lambda z: (xs.append(z.copy()), f(z))[1], B.EFFECTIVE, 100, s)  # noqa: B023
                    xs = [_embed(z, eff) for z in xs]
                else:
                    opts = {"focus": False} if method == "nofocus" else {}
                    values = B.run_tunesmith(lambda x: (xs.append(x.copy()), g(x))[1], B.D, 100, s, **opts)  # noqa: B023
                best = np.minimum.accumulate(values) - lo
                xb = xs[int(np.argmin(values))]
                small = g(xb) - f(xb[prob.instance(s)[0]])
                print(json.dumps({"tag": tag, "problem": prob.name, "seed": s, "regret": best[-1], "at50": best[49],
                                  "at75": best[74], "sec": time.time() - t0, "small_part": small}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3].split(","), sys.argv[4].split(","))
