"""Initial design: the space's center, then scrambled Sobol points, pulled toward user priors if any."""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

from ...space import Space
from .acquisition import PriorDensity


def initial_point(
    space: Space, index: int, seed: int, prior: PriorDensity | None, rng: np.random.Generator
) -> np.ndarray:
    """Unit vector (d,) of design point ``index``.

    Point 0 is the center of the space (0.5 on every unit axis: the middle of
    a range, the geometric middle of a log range, the middle choice), where a
    single point is on average closest to an optimum anywhere in the space;
    with priors, its prior coordinates sit at the priors' modes. Point
    ``index`` > 0 is point ``index`` of one scrambled Sobol sequence fixed by
    ``seed``, so parallel workers (which see each other's pending trials)
    take different points; with priors, every odd point draws its prior
    coordinates from the prior, so a wrong prior still leaves half of the
    design spread out.
    """
    if index == 0:
        u = np.full((1, space.ndim), 0.5)
        return np.asarray((prior.mode(u) if prior is not None else u)[0])
    engine = qmc.Sobol(space.ndim, scramble=True, seed=seed)
    engine.fast_forward(index)
    u = engine.random(1)
    if prior is not None and index % 2 == 1:
        u = prior.sample(space, u, rng)
    return np.asarray(u[0])
