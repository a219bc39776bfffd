"""Model-free samplers: random, quasi-random (Sobol) and grid search."""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..space import Config, Space
from ..trial import Direction, FrozenTrial
from .base import PerTrial, Sampler, Suggestion


class RandomSampler(Sampler):
    """Independent uniform draws on each parameter's scale (log, step, conditions)."""

    name = "random"
    uses_history = False

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion:
        return Suggestion(space.sample(self.rng))


class SobolSampler(Sampler):
    """Scrambled Sobol points: covers the space more evenly than random draws.

    Trial ``n`` of a study takes point ``n`` of one scrambled sequence fixed by
    the seed, so a resumed study continues the sequence; the point is claimed
    as unique, so parallel workers never evaluate the same one.
    """

    name = "sobol"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        qmc()  # import now, before any worker process forks

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion:
        return sobol_point(space, trials, self.seed)


def sobol_point(space: Space, trials: Sequence[FrozenTrial], seed: int) -> Suggestion:
    """Point ``len(trials)`` of the scrambled Sobol sequence of ``seed``, or the next one
    whose configuration no trial has (a discrete space maps many points to one
    configuration); when 64 in a row were taken, the first untried of 64 random draws
    of a stream fixed by ``seed`` and ``len(trials)`` (not the sampler's own stream, each
    worker's: the same seed gives the same points however many workers ask), else its first draw
    (every one tried: a repeat, claimed as such, :func:`_repeat`)."""
    if space.ndim == 0:
        return Suggestion(space.decode([]))
    engine = qmc().Sobol(space.ndim, scramble=True, seed=seed)
    if trials:
        engine.fast_forward(len(trials))
    for _ in range(64):
        config = space.decode(engine.random(1)[0])
        if _untried(config, trials):
            return Suggestion(config, unique=True)
    draws = np.random.default_rng([seed, len(trials)])
    tries = [space.sample(draws) for _ in range(64)]
    untried = next((Suggestion(c, unique=True) for c in tries if _untried(c, trials)), None)
    return untried or _repeat(space, tries[0], trials)


def _repeat(space: Space, config: Config, trials: Sequence[FrozenTrial]) -> Suggestion:
    """``config`` run again, claimed as its ``k``-th repeat (``k`` the trials that hold it): a worker that asked at
    the same moment loses the claim and asks again with that trial in its history, drawing what one worker would
    have drawn next. (The configuration's digest: a claim holds 2,048 characters, a key may be longer.)"""
    k = sum(1 for t in trials if t.params == config)
    digest = hashlib.sha256(space.key(config).encode()).hexdigest()
    return Suggestion(config, unique=True, claim=f"sobol repeat {k} of {digest}")


def _untried(config: Config, trials: Sequence[FrozenTrial]) -> bool:
    # compared with each trial, not by keys of the whole history: that cost 22 ms per ask at 2,000 trials
    return not any(t.params == config for t in trials)


class GridSampler(Sampler):
    """Exhaustive search over the grid of the space (conditional-aware).

    Args:
        points: per parameter, a number of points or a list of values,
            overriding the parameters' own ``grid=``. Floats default to 5
            points (log-spaced on log scales), small integer ranges and
            categoricals to all their values.
        seed: the order in which untried points are picked.

    Each point is evaluated once: points already tried in the study (in any
    state) are skipped, so a resumed grid study runs only what is left, and
    :meth:`suggest` returns ``None`` when the grid is exhausted. The pick among
    the points left is drawn from the seed and the number of points taken, not
    from a stream each worker or session draws on: the ``k``-th point a study
    takes is the same inline, with parallel workers (two that pick the same
    point at once: the claim lets one run it, the other takes the point that
    comes next, in the same write) and after a resume, so the same seed and
    number of trials give the same set of points.
    """

    name = "grid"

    def __init__(self, points: Mapping[str, Any] | None = None, *, seed: int | None = None) -> None:
        super().__init__(seed)
        if points is not None and not isinstance(points, Mapping):
            raise TypeError(f"GridSampler takes points as a mapping of parameter name -> grid points (a count "
                            f"or a list of values), e.g. GridSampler({{'lr': 5}}), got {points!r}")
        self.points = dict(points or {})
        self._cache: tuple[str, list[Config], list[str]] | None = None
        self._keys = PerTrial(_key)  # each trial's key once, not the whole history's on every ask
        self._taken: tuple[list[str], set[str], list[int]] = ([], set(), [])  # grid keys, tried keys, their indices
        self._index_of: tuple[list[str], dict[str, int]] = ([], {})  # grid keys, the index of each
        self._near_of: tuple[list[str], dict[str, int]] = ([], {})  # grid keys, the index of each near key
        self._picks: dict[tuple[int, int, int], int] = {}  # (seed, taken, left) -> grid_pick, kept a few asks

    def grid(self, space: Space) -> list[Config]:
        return self._grid(space)[0]

    def check(self, space: Space) -> None:
        space.grid_values(self.points)  # the points of each parameter, not the whole grid: opening stays quick

    def _grid(self, space: Space) -> tuple[list[Config], list[str]]:
        sig = space.to_json()
        if self._cache is None or self._cache[0] != sig:
            configs = space.grid(self.points)
            self._cache = (sig, configs, [_key(c) for c in configs])
        return self._cache[1], self._cache[2]

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion | None:
        configs, keys = self._grid(space)
        taken = self._taken_indices(keys, trials)
        n_left = len(keys) - len(taken)
        if n_left == 0:
            return None
        if len(self._picks) > 4 * (1 + GRID_NEXT):  # those of fewer points taken are asked for no more
            self._picks = {k: v for k, v in self._picks.items() if k[1] >= len(taken)}
        picks: list[int] = []  # the pick, then the points the sequence takes once the picks before are taken
        for _ in range(min(1 + GRID_NEXT, n_left)):
            picks.append(_nth_left_besides(taken, sorted(picks), self._pick(len(taken) + len(picks),
                                                                             n_left - len(picks))))
        return Suggestion(dict(configs[picks[0]]), unique=True, then=tuple(dict(configs[i]) for i in picks[1:]))

    def _pick(self, n_taken: int, n_left: int) -> int:
        """:func:`grid_pick` kept from the asks before: the points an ask lists after its pick are the
        picks of the asks that see them taken, and a seeded generator costs more than the rest of an ask
        (a worker asking after one trial more reuses 3 of its 4 picks)."""
        key = (self.seed, n_taken, n_left)
        got = self._picks.get(key)
        if got is None:
            got = self._picks[key] = grid_pick(self.seed, n_taken, n_left)
        return got

    def _taken_indices(self, keys: list[str], trials: Sequence[FrozenTrial]) -> list[int]:
        """The sorted grid indices of the ``trials``' keys, kept from the last ask and updated
        (not found by a scan of the whole grid at every ask: O(G) an ask, O(G^2) a grid)."""
        of = self._keys.of(trials)
        tried = set(of)
        grid, seen, taken = self._taken
        if grid is not keys or not seen <= tried:  # another grid, or a trial gone: start again
            grid, seen, taken = keys, set(), []
        new = tried - seen
        if new:
            index = self._index(keys)
            # the configurations of keys off the grid, matched by their near key (an older version's points)
            params = {k: t.params for k, t in zip(of, trials, strict=True)} if not new <= index.keys() else {}
            for k in new:
                i = index[k] if k in index else self._near_index(keys).get(_near(params[k]))
                if i is None:
                    continue
                at = bisect.bisect_left(taken, i)
                if at == len(taken) or taken[at] != i:  # a point tried twice (0.7425, 0.7424999999999999) counts once
                    taken.insert(at, i)
            seen = seen | new
        self._taken = (grid, seen, taken)
        return taken

    def _index(self, keys: list[str]) -> dict[str, int]:
        if self._index_of[0] is not keys:
            self._index_of = (keys, {k: i for i, k in enumerate(keys)})
        return self._index_of[1]

    def _near_index(self, keys: list[str]) -> dict[str, int]:
        """The index of each near key (:func:`_near`) that only one point of the grid (of ``keys``,
        the cached one) has; built the first time a trial matches no grid point exactly."""
        if self._near_of[0] is not keys:
            near = [_near(c) for c in (self._cache[1] if self._cache else ())]
            count = Counter(near)
            self._near_of = (keys, {n: i for i, n in enumerate(near) if count[n] == 1})
        return self._near_of[1]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "points": self.points}


#: the grid's points after its pick that a worker claims instead where another took the pick at the same
#: moment (in the same write: a lost race costs no write of its own; 3 covers 4 workers asking at once)
GRID_NEXT = 3


def grid_pick(seed: int, n_taken: int, n_left: int) -> int:
    """Which of the ``n_left`` points left (from 0) a grid of ``seed`` takes once ``n_taken`` are
    taken: a function of these alone, so every worker and session picks the same one."""
    return 0 if n_left == 1 else int(np.random.default_rng([seed, n_taken]).integers(n_left))


def _nth_left(taken: list[int], r: int) -> int:
    """The ``r``-th (from 0) grid index not in ``taken`` (sorted): the ``r``-th of the points
    left, as a scan of the grid would list them."""
    lo, hi = 0, len(taken)  # how many taken indices come before the answer: r + that many
    while lo < hi:
        mid = (lo + hi) // 2
        if taken[mid] - mid <= r:  # taken[mid] has taken[mid] - mid untaken indices below it
            lo = mid + 1
        else:
            hi = mid
    return r + lo


def _nth_left_besides(taken: list[int], more: list[int], r: int) -> int:
    """The ``r``-th grid index in neither ``taken`` nor ``more`` (both sorted, ``more`` a few indices
    not in ``taken``), without merging them: the ``(r + m)``-th not in ``taken``, ``m`` the ones of
    ``more`` below it."""
    i = _nth_left(taken, r)
    while True:
        m = bisect.bisect_right(more, i)
        j = _nth_left(taken, r + m)
        if j == i and (m == 0 or more[m - 1] != i):
            return i
        i = j if j != i else _nth_left(taken, r + m + 1)


def qmc() -> Any:
    """``scipy.stats.qmc``, imported on first use: scipy.stats takes about a
    second to import, which ``import tunesmith`` and the CLI need not pay."""
    from scipy.stats import qmc as module

    return module


def _key(params: Mapping[str, Any]) -> str:
    """A configuration's grid point, exactly (a numpy float as the float storage reads back; -0.0 as
    0.0, the point it equals: an enqueued -0.0 ran beside the grid's 0.0)."""
    return repr(sorted((k, repr(float(v) + 0.0) if isinstance(v, float) else repr(v)) for k, v in params.items()))


def _near(params: Mapping[str, Any]) -> str:
    """A configuration's grid point with each float to 12 significant digits: a trial with no
    exact grid point is the one grid point with its near key, so a point an older tunesmith
    wrote otherwise (0.7424999999999999 for 0.7425, a log-scale point's last digits) is the point
    tried, not one left to run again. Grid points that share a near key (a user's 1.0 and
    1.0000000000001) are each matched exactly only."""
    return repr(sorted((k, f"{v + 0.0:.12g}" if isinstance(v, float) else repr(v)) for k, v in params.items()))


def grid_remaining(sampler: GridSampler, space: Space, trials: Sequence[FrozenTrial]) -> int:
    _, keys = sampler._grid(space)
    return len(keys) - len(sampler._taken_indices(keys, trials))

