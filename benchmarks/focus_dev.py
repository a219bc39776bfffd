"""Development functions for the automatic focus (not the benchmark's): Rosenbrock-4, Levy-4, a
weighted quadratic, Rastrigin-4, Ackley-4, Powell-4 and Colville-4, embedded in 20 dimensions as benchmarks/bench_focus.py embeds its functions
(16 irrelevant or small-effect parameters). One JSON line per run: regret after 100 trials, at 50
and 75 (and the best-so-far regret after every trial), how much of the regret the small terms make up at the
best trial, and how many trials were steps on the rest (their effective values an earlier trial's).
Variants: ``irrelevant``, ``small`` (as the benchmark's) and ``smallmix`` (unequal, non-quadratic small
effects, :class:`MixedSmall`).

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
from collections.abc import Callable
from dataclasses import dataclass
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


def powell4(x: np.ndarray) -> float:
    """Powell's singular function on [-4, 5]^4 (minimum 0 at the origin: quartic, not separable), / 100."""
    z = 9.0 * x - 4.0
    return float(((z[0] + 10 * z[1]) ** 2 + 5 * (z[2] - z[3]) ** 2 + (z[1] - 2 * z[2]) ** 4
                  + 10 * (z[0] - z[3]) ** 4) / 100.0)


def colville4(x: np.ndarray) -> float:
    """Colville's function on [-2, 3]^4 (minimum 0 at (1, 1, 1, 1)), / 100."""
    z = 5.0 * x - 2.0
    return float((100 * (z[0] ** 2 - z[1]) ** 2 + (z[0] - 1) ** 2 + (z[2] - 1) ** 2 + 90 * (z[2] ** 2 - z[3]) ** 2
                  + 10.1 * ((z[1] - 1) ** 2 + (z[3] - 1) ** 2) + 19.8 * (z[1] - 1) * (z[3] - 1)) / 100.0)


FUNCTIONS = {"rosenbrock4": rosenbrock4, "levy4": levy4, "quad4": quad4, "rastrigin4": rastrigin4,
             "ackley4": ackley4, "powell4": powell4, "colville4": colville4}
KNOWN_MINIMA = {"rastrigin4": 0.0, "ackley4": 0.0, "powell4": 0.0, "colville4": 0.0}


@dataclass(frozen=True)
class MixedSmall(B.Problem):
    """The small variant with unequal, non-quadratic small effects: ``SMALL * sd(f) * sum_k w_k |z_k - c_k|^1.5``
    over the 16 others, the weights ``w_k`` log-uniform in [1/3, 3] (drawn per seed), so neither one shared
    curvature nor a quadratic describes them."""

    def full(self, seed: int) -> Callable[[np.ndarray], float]:
        eff, centre = self.instance(seed)
        others = np.setdiff1d(np.arange(B.D), eff)
        w = np.exp(np.random.default_rng(2000 + seed).uniform(np.log(1 / 3), np.log(3), len(others)))

        def g(x: np.ndarray) -> float:
            return self.f(x[eff]) + B.SMALL * self.sd * float(np.sum(w * np.abs(x[others] - centre[others]) ** 1.5))

        return g


def rest_steps(xs: list[np.ndarray], eff: np.ndarray) -> list[int]:
    """The trials (1-based) whose effective coordinates repeat an earlier trial's: steps on the rest."""
    seen: set[bytes] = set()
    out = []
    for i, x in enumerate(xs):
        key = np.round(x[eff], 12).tobytes()
        if key in seen:
            out.append(i + 1)
        seen.add(key)
    return out


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
        lo, sd = KNOWN_MINIMA.get(name, None), B.spread(f)
        lo = B.minimum(f) if lo is None else lo
        for variant in variants:
            kind = MixedSmall if variant == "smallmix" else B.Problem
            prob = kind(f"{name}-{variant}", f, variant != "irrelevant", lo, sd)
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
                eff = prob.instance(s)[0]
                small = g(xb) - f(xb[eff])
                steps = rest_steps(xs, eff)
                print(json.dumps({"tag": tag, "problem": prob.name, "seed": s, "regret": best[-1], "at50": best[49],
                                  "at75": best[74], "sec": time.time() - t0, "small_part": small,
                                  "rest_steps": len(steps), "first_rest": steps[0] if steps else None,
                                  "trace": [float(v) for v in best]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3].split(","), sys.argv[4].split(","))
