"""A checkpoint that torch reads but whose fields are missing or of the wrong kind (another tool's
file with "model" and "step", a hand-edited or damaged one) is refused naming the field, before
anything of it is loaded; nothing of it is set as an attribute it does not name."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, snapshot, split  # noqa: E402

from tunesmith.train import TrainConfig, Trainer, checkpoint, load_weights  # noqa: E402
from tunesmith.train.checkpoint import CheckpointError  # noqa: E402

DATA = split(64)
CFG = TrainConfig(epochs=2, batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("run")
    Trainer(mlp(), CFG.with_params({"checkpoint_dir": str(folder)})).fit(*DATA)
    last = checkpoint.latest(folder)
    assert last is not None
    return checkpoint.load(last)


BROKEN = {
    "no plateau": ("plateau", None),
    "no rng": ("rng", None),
    "rng not a mapping": ("rng", {"python": 1}),
    "step a string": ("step", "x"),
    "negative step": ("step", -5),
    "bool epoch": ("epoch", True),
    "record of other fields": ("history", {"records": [{"foo": 1}]}),
    "record of a string loss": ("history", "bad loss"),
    "best index past the records": ("history", "bad index"),
    "best checkpoint a number": ("history", "bad path"),
    "finished not a bool": ("history", "bad finished"),
    "model a list": ("model", [1, 2]),
    "model of numbers": ("model", {"0.weight": 1.0}),
    "optimizer of another model": ("optimizer", {"state": {}, "param_groups": []}),
    "plateau sets __class__": ("plateau", {"__class__": 1}),
    "plateau of a string": ("plateau", {"best": "low"}),
    "shapes not a mapping": ("model_meta", {"shapes": 3, "frozen": ""}),
    "acc a number": ("acc", 5),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_field_is_refused_naming_it_and_nothing_is_loaded(case: str, saved: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    key, value = BROKEN[case]
    state = dict(saved)
    if value in ("bad loss", "bad index", "bad path", "bad finished"):  # the saved history, one field changed
        history = dict(saved["history"], records=[dict(r) for r in saved["history"]["records"]])
        if value == "bad loss":
            history["records"][0]["train_loss"] = "0.5"
        elif value == "bad index":
            history["best_index"] = len(history["records"])
        elif value == "bad finished":
            history["finished"] = "yes"
        else:  # before: taken, then Path(5) raised TypeError once the model was loaded
            history["best_checkpoint"] = 5
        value = history
    if value is None:
        del state[key]
    else:
        state[key] = value
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    model = mlp(seed=7)
    before, rng = snapshot(model), (random.getstate(), torch.get_rng_state())
    trainer = Trainer(model, CFG.with_params({"epochs": 3}))
    with pytest.raises(CheckpointError, match=repr(key)) as err:
        trainer.fit(*DATA, resume_from=path)
    assert "resume" in str(err.value)  # what to do instead
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded
    assert trainer.step == 0 and trainer.history.records == []
    assert (random.getstate(), torch.get_rng_state().tolist()) == (rng[0], rng[1].tolist())
    assert not hasattr(trainer.plateau, "__dict__") or set(vars(trainer.plateau)) <= {
        "patience", "min_delta", "best", "bad", "reductions"}


def test_a_checkpoint_holds_the_history_fields_a_tunesmith_before_history_finished_reads(
        saved: dict[str, Any]) -> None:
    """History.finished is of a returned run, never of a checkpoint (written mid-run): left out, so a
    tunesmith before it, whose History.from_dict refuses a field it does not know, resumes the file."""
    from tunesmith.train.history import History

    assert set(saved["history"]) == {f for f in History.__dataclass_fields__ if f != "finished"}


@pytest.mark.parametrize("case", ["model a list", "model of numbers", "shapes not a mapping"])
def test_load_weights_refuses_malformed_model_fields(case: str, saved: dict[str, Any], tmp_path: Path) -> None:
    key, value = BROKEN[case]
    path = tmp_path / "broken.pt"
    torch.save({**saved, key: value}, path)
    with pytest.raises(CheckpointError, match=repr(key)):
        load_weights(mlp(), path)


def test_well_formed_checkpoint_still_resumes(saved: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "good.pt"
    torch.save(saved, path)
    history = Trainer(mlp(seed=7), CFG.with_params({"epochs": 3})).fit(*DATA, resume_from=path)
    assert history.records[-1].epoch == 3


def test_adapted_rates_of_a_checkpoint_that_does_not_fit_are_not_half_loaded(tmp_path: Path) -> None:
    """Before: the hypergradient's directions were set, then its "last_h" raised: the error said nothing
    was loaded, yet a fit without resume_from started from the broken file's directions."""
    cfg = CFG.with_params({"lr_adapt": "hypergradient-mult", "hyper_lr": 0.02, "checkpoint_dir": str(tmp_path / "run")})
    Trainer(mlp(), cfg).fit(*DATA)
    last = checkpoint.latest(tmp_path / "run")
    assert last is not None
    state = checkpoint.load(last)
    state["hypergrad"] = {k: v for k, v in state["hypergrad"].items() if k != "last_h"}
    torch.save(state, tmp_path / "broken.pt")
    trainer = Trainer(mlp(seed=7), cfg.with_params({"epochs": 3, "checkpoint_dir": None}))
    assert trainer.hyper is not None
    assert all(d is None for ds in trainer.hyper.directions for d in ds)  # no step taken yet
    initial = list(trainer.hyper.initial)
    with pytest.raises(CheckpointError, match="does not fit this run.*last_h"):
        trainer.fit(*DATA, resume_from=tmp_path / "broken.pt")
    assert all(d is None for ds in trainer.hyper.directions for d in ds) and trainer.hyper.initial == initial
