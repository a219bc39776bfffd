"""Cheap test functions with recorded optima (as in BoTorch's test_functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import tunesmith as ts

BRANIN_SPACE = ts.Space({"x1": ts.Float(-5, 10), "x2": ts.Float(0, 15)})
BRANIN_MIN = 0.397887  # at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)


def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * np.pi**2), 5 / np.pi
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x1) + 10)


H3_SPACE = ts.Space({f"x{i}": ts.Float(0, 1) for i in range(3)})
H3_MIN = -3.86278  # at (0.114614, 0.555649, 0.852547)
_H3_A = np.array([[3, 10, 30], [0.1, 10, 35], [3, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(p: Mapping[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(3)])
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_H3_A * (x - _H3_P) ** 2, axis=1))))


H6_SPACE = ts.Space({f"x{i}": ts.Float(0, 1) for i in range(6)})
H6_MIN = -3.32237  # at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


# A conditional, categorical space: the best is model="b", x=0.7, depth=3.
MIXED_SPACE = ts.Space({
    "model": ts.Categorical(["a", "b", "c"]),
    "x": ts.Float(0, 1, when={"model": ["a", "b"]}),
    "depth": ts.Int(1, 10),
    "y": ts.Float(1e-3, 1.0, log=True, when={"model": "c"}),
})
MIXED_MIN = 0.0


def mixed(p: Mapping[str, Any]) -> float:
    shift = {"a": 0.5, "b": 0.0, "c": 0.8}[p["model"]]
    loss = shift + 0.1 * (p["depth"] - 3) ** 2 / 9
    if p["model"] == "c":
        return loss + 0.2 * abs(np.log10(p["y"]) + 2)
    return loss + 2 * (p["x"] - 0.7) ** 2


def run(space: ts.Space, f: Any, sampler: Any, n: int, seed: int) -> ts.Study:
    study = ts.Study(space, sampler=sampler, seed=seed)
    study.optimize(lambda t: f(t.params), n_trials=n)
    return study
