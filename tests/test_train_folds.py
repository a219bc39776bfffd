"""k-fold fine-tuning through ts.train.objective(..., folds=): a fresh model per fold, a report per fold."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import blobs, mlp  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.pruners import Decision, Pruner  # noqa: E402
from tunesmith.train import TrainConfig, objective  # noqa: E402
from tunesmith.train.checkpoint import study_folder  # noqa: E402

POOL = blobs(90)


def test_each_fold_trains_a_fresh_model_and_is_reported(tmp_path: Path) -> None:
    built: list[int] = []

    def build(params: dict) -> torch.nn.Module:
        built.append(1)
        return mlp()

    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, direction="maximize", sampler="random", seed=0)
    obj = objective(build, POOL, base=TrainConfig(epochs=2, batch_size=16), checkpoint_root=tmp_path, folds=3,
                    metrics=["accuracy"], monitor="accuracy")
    study.optimize(obj, n_trials=1)
    t = study.trials[0]
    assert t.state is ts.TrialState.COMPLETE, t.error
    assert len(built) == 3 and sorted(t.intermediate) == [1, 2, 3]
    per_fold = t.attrs["cv"]["scores"]["score"]
    assert len(per_fold) == 3 and t.value == pytest.approx(sum(per_fold) / 3)
    folder = study_folder(tmp_path, study.name, study.copy_id) / "trial-0"
    assert sorted(p.name for p in folder.iterdir()) == ["fold-0", "fold-1", "fold-2"]
    assert all([f.name for f in (folder / k).iterdir()] == ["best.pt"] for k in ("fold-0", "fold-1", "fold-2"))


class StopSecond(Pruner):
    """Stops trial 1 after its first report."""

    def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
        return Decision.PRUNE if trial.number == 1 else Decision.CONTINUE


def test_fold_training_honours_the_pruner(tmp_path: Path) -> None:
    study = ts.Study({"lr": ts.Float(1e-4, 1.0, log=True)}, sampler="random", seed=1, pruner=StopSecond())
    obj = objective(lambda p: mlp(), POOL, base=TrainConfig(epochs=1, batch_size=16), checkpoint_root=tmp_path,
                    folds=[(list(range(30, 90)), list(range(30))), (list(range(60)), list(range(60, 90)))])
    study.optimize(obj, n_trials=2)
    assert study.trials[0].state is ts.TrialState.COMPLETE and list(study.trials[0].intermediate) == [1, 2]
    stopped = study.trials[1]
    assert stopped.state is ts.TrialState.PRUNED and list(stopped.intermediate) == [1]
    assert len(stopped.attrs["cv"]["scores"]["score"]) == 1
    assert not (tmp_path / study.name / "trial-1" / "fold-1").exists()  # the second fold never trained


def test_folds_may_be_a_generator_made_once_or_a_scikit_learn_splitter(tmp_path: Path) -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    import numpy as np

    labels = POOL[-1].numpy()
    for folds in (model_selection.KFold(3).split(np.arange(len(labels))), model_selection.StratifiedKFold(3)):
        study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, direction="maximize", sampler="random", seed=0)
        obj = objective(lambda p: mlp(), POOL, base=TrainConfig(epochs=1, batch_size=16), checkpoint_root=tmp_path,
                        folds=folds, metrics=["accuracy"], monitor="accuracy")
        study.optimize(obj, n_trials=2)  # the generator's folds serve the second trial too
        assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 2, [t.error for t in study.trials]
        assert all(len(t.attrs["cv"]["scores"]["score"]) == 3 for t in study.trials)


def test_folds_made_for_other_data_are_named_before_training(tmp_path: Path) -> None:
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0)
    obj = objective(lambda p: mlp(), POOL, base=TrainConfig(epochs=1), checkpoint_root=tmp_path,
                    folds=ts.cv.kfold(len(POOL[0]) + 10, 3))
    study.optimize(obj, n_trials=1)
    assert f"but data has {len(POOL[0])} samples: the folds were made for other data" in (study.trials[0].error or "")
