"""What a pruning decision reads: nothing between decision steps, each queued trial checked once."""

from __future__ import annotations

from typing import Any

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA, MedianPruner
from tunesmith.storage import MemoryStorage

SPACE = {"x": ts.Float(0.0, 1.0), "n": ts.Int(1, 100, log=True)}


class CountingStorage(MemoryStorage):
    """A memory storage that counts the trials it hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    def get_trials(self, study_id: int, **kw: Any) -> list[Any]:
        out = super().get_trials(study_id, **kw)
        self.read += len(out)
        return out

    def get_trials_since(self, study_id: int, min_number: int, **kw: Any) -> list[Any]:
        out = super().get_trials_since(study_id, min_number, **kw)
        self.read += len(out)
        return out


def reads_per_step(pruner: Any, queued: int = 0) -> list[int]:
    """Trials read from storage by each ``should_prune()`` of a trial reporting steps 1..27."""
    storage = CountingStorage()
    study = ts.Study(SPACE, pruner=pruner, sampler="random", seed=0, storage=storage)
    for _ in range(queued):
        study.enqueue({"x": 0.5, "n": 3})
    trial = study.ask()
    out = []
    for step in range(1, 28):
        trial.report(1.0 / step, step)
        before = storage.read
        assert not trial.should_prune()
        out.append(storage.read - before)
    return out


def test_no_pruner_reads_no_trials() -> None:
    assert reads_per_step("none", queued=100) == [0] * 27


def test_asha_reads_the_trials_only_at_its_rungs() -> None:
    reads = reads_per_step(ASHA(max_resource=27))
    assert [s for s, n in enumerate(reads, 1) if n] == [2, 4, 8, 16]


def test_the_median_rule_reads_only_at_the_steps_it_checks() -> None:
    reads = reads_per_step(MedianPruner(warmup_steps=5, interval=10))
    assert [s for s, n in enumerate(reads, 1) if n] == [5, 15, 25]


@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_queued_trials_are_validated_once_not_on_every_decision(
    pruner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = ts.Study(SPACE, pruner=pruner, sampler="random", seed=0)
    for _ in range(50):
        study.enqueue({"x": 0.5, "n": 3})
    calls = []
    validate = study.space.validate
    monkeypatch.setattr(study.space, "validate", lambda p: calls.append(1) or validate(p))
    trial = study.ask()
    for step in range(1, 28):
        trial.report(1.0 / step, step)
        trial.should_prune()
    assert len(calls) <= 51 + 5  # each queued trial and the running one once, not 27 times


def test_a_queue_of_waiting_trials_adds_no_reads_to_a_decision() -> None:
    assert reads_per_step("median", queued=100) == reads_per_step("median", queued=0)
