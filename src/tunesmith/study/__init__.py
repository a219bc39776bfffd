"""Orchestration: Study (ask, tell, optimize); the only layer that knows storage."""

from .study import Study, trial_rows
from .trial import Trial

__all__ = ["Study", "Trial", "trial_rows"]
