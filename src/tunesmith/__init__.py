"""tunesmith: hyperparameter optimization and fine-tuning of machine-learning models.

Quickstart::

    import tunesmith as ts

    space = ts.Space({"x": ts.Float(-5, 5), "kind": ts.Categorical(["a", "b"])})
    study = ts.Study(space, direction="minimize", sampler="random", seed=0)
    study.optimize(lambda trial: trial.params["x"] ** 2, n_trials=50)
    print(study.best_trial.params, study.best_trial.value)
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from typing import TYPE_CHECKING

from . import cv
from . import execution as _execution  # noqa: F401 - registers the executors Study.optimize runs on
from .exceptions import (
    DuplicateStudyError,
    MetricNotEvaluated,
    OutOfRoom,
    ResumeRefused,
    SchemaVersionError,
    SearchExhausted,
    StorageError,
    StudyNotFound,
    TrialFinishedError,
    TrialNotFound,
    TrialPaused,
    TrialPruned,
    TrialTakenOver,
    TunesmithError,
    UntrustedPathError,
    WorkersLost,
)
from .pruners import Decision, Pruner
from .samplers import GridSampler, RandomSampler, Sampler, SobolSampler
from .space import Categorical, Fixed, Float, Int, Prior, Space
from .storage import MemoryStorage, Storage
from .study import Study, Trial
from .trial import UNSEEN as _UNSEEN
from .trial import Direction, FrozenTrial, TrialState
from .trial import as_escape as _as_escape

if TYPE_CHECKING:  # what __getattr__ imports on first use, as type checkers should see it
    from . import train as train  # ts.train.objective was an "object" without attributes to mypy
    from .samplers import BayesOptions, BayesSampler, TPESampler
    from .storage import SQLStorage

__version__ = "0.1.0"


class _LogFormatter(logging.Formatter):
    """``[tunesmith] message`` with the message's control characters but line breaks and tabs written
    as escapes (``\\x1b``): a name, error or path read from storage and logged cannot drive the
    terminal of whoever runs the study (a clipboard write, a cleared screen, a line overwritten)."""

    _SHOWN = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_UNSEEN}]")

    def format(self, record: logging.LogRecord) -> str:
        return self._SHOWN.sub(_as_escape, super().format(record))


def _default_logging() -> None:
    log = logging.getLogger("tunesmith")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_LogFormatter("[tunesmith] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def set_verbosity(level: int | str) -> None:
    """Set how much tunesmith logs (``logging.WARNING`` or ``"warning"`` silences the info lines)."""
    names = ["debug", "info", "warning", "error", "critical"]
    if isinstance(level, str) and level.lower() in names:
        level = level.upper()  # logging knows "WARNING" only, not "warning"
    elif isinstance(level, (str, bool)) or not isinstance(level, int):
        from .space.params import did_you_mean

        raise ValueError(f"set_verbosity: unknown level {level!r}{did_you_mean(level, names)}; use one of "
                         f"{names} (any case) or a number such as logging.WARNING")
    logging.getLogger("tunesmith").setLevel(level)


_default_logging()


def __getattr__(name: str) -> object:
    """``ts.train`` (it needs the optional torch), the model-based samplers (they need
    scipy) and ``SQLStorage`` (SQLAlchemy) are imported on first use."""
    if name == "train":
        try:
            return importlib.import_module(".train", __name__)
        except ImportError as exc:  # hasattr(tunesmith, "train") is False without torch, not an error
            raise AttributeError(f"module 'tunesmith' has no attribute 'train': {exc}") from exc
    if name in ("BayesOptions", "BayesSampler", "TPESampler"):
        return getattr(importlib.import_module(".samplers", __name__), name)
    if name == "SQLStorage":
        return importlib.import_module(".storage.sql", __name__).SQLStorage
    if name == "create_study":  # Optuna's
        raise AttributeError("module 'tunesmith' has no attribute 'create_study': write ts.Study(space, direction=..., "
                             "storage=..., name=...) (docs/guide.md, 'Coming from Optuna')")
    raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")


def __dir__() -> list[str]:
    """With the names imported on first use (tab completion, ``help(tunesmith)``); not ``train``,
    which needs torch."""
    return sorted({*globals(), *__all__})


def load_study(name: str, storage: str | os.PathLike[str] | Storage) -> Study:
    """Open an existing study by name (raises StudyNotFound if absent)."""
    return Study.load(name, storage)


__all__ = [
    "BayesOptions",
    "BayesSampler",
    "Categorical",
    "Decision",
    "Direction",
    "DuplicateStudyError",
    "Fixed",
    "Float",
    "FrozenTrial",
    "GridSampler",
    "Int",
    "MemoryStorage",
    "MetricNotEvaluated",
    "OutOfRoom",
    "Prior",
    "Pruner",
    "RandomSampler",
    "ResumeRefused",
    "SQLStorage",
    "Sampler",
    "SchemaVersionError",
    "SearchExhausted",
    "SobolSampler",
    "TPESampler",
    "Space",
    "Storage",
    "StorageError",
    "Study",
    "StudyNotFound",
    "Trial",
    "TrialFinishedError",
    "TrialNotFound",
    "TrialPaused",
    "TrialPruned",
    "TrialState",
    "TrialTakenOver",
    "UntrustedPathError",
    "TunesmithError",
    "WorkersLost",
    "cv",
    "load_study",
    "set_verbosity",
]
