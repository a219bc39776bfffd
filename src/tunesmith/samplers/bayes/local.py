"""Local refinement when progress stalls: a trust region around the incumbent (TuRBO-like).

Notation as in :mod:`.encoding`. ``s`` counts the completed trials since the best loss
last improved; ``p = max(5, d)`` is the patience. While ``s < p`` the acquisition is
maximized over the whole space. After that the search cycles through phases of ``p``
trials each: three local phases, in a box around the incumbent whose side is 0.4, 0.2 and
0.1 of the unit range (per coordinate scaled by its lengthscale over their geometric mean,
as TuRBO does, and capped at the unit range), then one global phase (a restart of the
search over the whole space), and again. An improvement resets ``s`` to 0.

Eriksson et al. 2019, "Scalable global optimization via local Bayesian optimization".
"""

from __future__ import annotations

import numpy as np

SIDES = (0.4, 0.2, 0.1)


def stalled(losses: np.ndarray) -> int:
    """Trials since the running best of ``losses`` (in trial order) last improved."""
    if len(losses) == 0:
        return 0
    best = np.minimum.accumulate(losses)
    improved = np.flatnonzero(np.r_[True, best[1:] < best[:-1]])
    return int(len(losses) - 1 - improved[-1])


def side(s: int, d: int) -> float | None:
    """The box side for ``s`` stalled trials in ``d`` dimensions; None: search globally."""
    p = max(5, d)
    if s < p:
        return None
    phase = ((s - p) // p) % (len(SIDES) + 1)
    return SIDES[phase] if phase < len(SIDES) else None


def box(center: np.ndarray, lengthscales: np.ndarray, numeric: np.ndarray, length: float
        ) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (d,): the trust region around ``center`` (unit coordinates; NaN =
    inactive) with side ``length`` on the numeric coordinates, the whole range elsewhere."""
    ls = np.where(numeric, lengthscales, 1.0)
    scale = ls / np.exp(np.mean(np.log(ls[numeric]))) if numeric.any() else ls
    half = np.minimum(length * scale, 1.0) / 2.0
    c = np.where(np.isnan(center), 0.5, center)
    lo = np.where(numeric, np.clip(c - half, 0.0, 1.0), 0.0)
    hi = np.where(numeric, np.clip(c + half, 0.0, 1.0), 1.0)
    return lo, hi
