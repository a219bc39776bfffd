"""The sampler interface.

A sampler is a pure designer: given the space, the direction and the trials
known so far (finished and pending alike), it returns the next configuration.
It never opens a storage or a study, so it can be tested and benchmarked on
plain lists of :class:`~tunesmith.trial.FrozenTrial`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import guard_keywords
from ..space import Config, Space
from ..space.params import check_seed
from ..trial import Direction, FrozenTrial, TrialState


@dataclass(frozen=True)
class Suggestion:
    """A configuration to evaluate next.

    ``unique`` asks the study to run this configuration at most once, even
    when several workers ask at the same moment (grid points are unique).
    """

    params: Config
    unique: bool = False
    #: with ``unique``: the configurations to run instead, in order, where another worker took ``params``
    #: at the same moment (a grid's next points): claimed in the same write, not asked for again
    then: tuple[Config, ...] = ()
    #: with ``unique``: what the study claims in place of the configuration's key, for a configuration tried
    #: before that runs again once per claim (Sobol's repeat of a space every configuration of which was tried:
    #: two workers asking at the same moment run it once, the other asks again)
    claim: str | None = None


class PerTrial:
    """``fn(trial.params)`` cached per trial number, recomputed only when a trial's params
    differ from those it was computed for: a sampler that reads the whole history pays for
    each trial once, not on every ask."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self._hits: dict[int, tuple[Any, Any]] = {}

    def of(self, trials: Sequence[FrozenTrial]) -> list[Any]:
        out = []
        for t in trials:
            hit = self._hits.get(t.number)
            # the same params object (a study hands the same finished records on every ask): no comparison
            if hit is None or (hit[0] is not t.params and hit[0] != t.params):
                hit = (t.params, self.fn(t.params))
                self._hits[t.number] = hit
            out.append(hit[1])
        return out


class EncodedTrials:
    """``space.encode_many`` of trials' params, cached per trial number (:class:`PerTrial`)."""

    def __init__(self) -> None:
        self._cache: PerTrial | None = None
        self._key = ""

    def rows(self, space: Space, trials: Sequence[FrozenTrial]) -> np.ndarray:
        """(len(trials), space.ndim) unit rows, NaN where a parameter is inactive."""
        key = space.to_json()
        if self._cache is None or key != self._key:
            self._cache, self._key = PerTrial(space.encode), key
        return np.array(self._cache.of(trials), dtype=float).reshape(len(trials), space.ndim)


class Sampler(ABC):
    """Base class of samplers; subclass it to plug in a search strategy.

    Subclasses implement :meth:`suggest`. ``uses_history = False`` tells the
    study it may skip reading trials before asking (random search), which
    keeps ask cheap on a shared database.
    """

    name: str = "custom"
    uses_history: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard_keywords(cls)  # Optuna's argument names answered with ours

    def __init__(self, seed: int | None = None) -> None:
        seed = check_seed(seed)
        self.seed = seed if seed is not None else int(np.random.default_rng().integers(2**63))
        self._rng = np.random.default_rng(self.seed)

    def reseed(self, *key: int) -> None:
        """Start an independent random stream, keyed by e.g. (session, worker).

        The study calls this when it starts a worker, so that parallel workers
        draw different configurations and a resumed study does not repeat the
        first session's draws, while a fresh sequential run stays reproducible.
        """
        self._rng = np.random.default_rng([self.seed, *map(int, key)])

    def check(self, space: Space) -> None:  # noqa: B027 - optional hook
        """Refuse, with a ValueError naming the fix, a space this sampler cannot search (a grid's
        points for parameters it lacks): a study calls it when opened with this sampler."""

    def set_budget(self, n_trials: int | None) -> None:  # noqa: B027 - optional hook
        """Hint of how many trials the coming run has (used by "auto")."""

    def set_early_stopping(self, stops: bool) -> None:  # noqa: B027 - optional hook
        """Hint that the study's pruner stops trials early (used by "auto")."""

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @abstractmethod
    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion | None:
        """The next configuration, or ``None`` when there is nothing left to try."""

    def describe(self) -> dict[str, Any]:
        """Name and settings, enough to rebuild the sampler (stored with a study)."""
        return {"name": self.name, "seed": self.seed}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


def completed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state is TrialState.COMPLETE]


def pending(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if not t.state.is_finished]


def losses(trials: Sequence[FrozenTrial], direction: Direction) -> np.ndarray:
    """Values turned into losses (smaller is better) for completed trials."""
    return np.array([direction.sign() * float(t.value) for t in trials if t.value is not None])
