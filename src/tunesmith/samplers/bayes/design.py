"""Initial design: scrambled Sobol points, pulled toward user priors if any."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import qmc

from ...space import Space
from .acquisition import PriorDensity


def initial_point(
    space: Space, index: int, seed: int, prior: PriorDensity | None, rng: np.random.Generator
) -> np.ndarray:
    """Unit vector (d,) of design point ``index``.

    Point ``index`` of one scrambled Sobol sequence fixed by ``seed``, so
    parallel workers (which see each other's pending trials) take different
    points. With priors, point 0 sits at the priors' modes and every other
    point draws its prior coordinates from the prior; the rest stay Sobol,
    so a wrong prior still leaves half of the design spread out.
    """
    engine = qmc.Sobol(space.ndim, scramble=True, seed=seed)
    if index:
        engine.fast_forward(index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance warnings for non-powers of 2
        u = engine.random(1)
    if prior is not None:
        if index == 0:
            u = prior.mode(u)
        elif index % 2 == 1:
            u = prior.sample(space, u, rng)
    return np.asarray(u[0])
