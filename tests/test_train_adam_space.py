"""adam_space(): the decay rates are searched under the schedules that use them; presets can be dropped."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, split  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, adam_space, lr_at  # noqa: E402


def sample(space: ts.Space, n: int = 60) -> list[dict]:
    study = ts.Study(space, sampler="random", seed=1)
    return [study.ask().params for _ in range(n)]


def test_decay_rates_are_searched_only_under_their_schedules() -> None:
    space = adam_space(schedules=("constant", "cosine", "step", "exponential", "plateau"))
    seen = set()
    for p in sample(space):
        TrainConfig().with_params(p)  # every sample is a valid config
        s = p["schedule"]
        assert ("gamma" in p) == (s in ("step", "exponential")), p
        assert ("decay_epochs" in p) == (s == "step"), p
        assert ("plateau_factor" in p) == (s == "plateau"), p
        seen.add(s)
        if "gamma" in p:
            assert 0.1 <= p["gamma"] <= 0.99
    assert seen == {"constant", "cosine", "step", "exponential", "plateau"}
    assert set(space) <= TrainConfig.field_names()


def test_presets_can_be_dropped_and_ranges_set() -> None:
    space = adam_space(beta1=None, beta2=None, eps=None, weight_decay=None, warmup=None,
                       schedules=("step",), gamma=(0.2, 0.5), decay_epochs=(2, 4))
    assert set(space) == {"lr", "schedule", "gamma", "decay_epochs"}
    for p in sample(space, 20):
        assert 0.2 <= p["gamma"] <= 0.5 and 2 <= p["decay_epochs"] <= 4
    assert "gamma" not in adam_space(schedules=("constant", "cosine"))
    assert set(adam_space(gamma=None, decay_epochs=None)) == {
        "lr", "schedule", "beta1", "beta2", "eps", "weight_decay", "warmup_fraction"}
    assert adam_space(beta1=(0.5, 0.8))["beta1"].prior.mode == 0.8  # the 0.9 prior clamped into the range


def test_decay_epochs_sets_the_step_size_of_step_decay() -> None:
    cfg = TrainConfig(lr=1.0, schedule="step", gamma=0.5, decay_epochs=3)
    lrs = [lr_at(e * 10, cfg, total_steps=100, steps_per_epoch=10) for e in range(7)]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    expo = TrainConfig(lr=1.0, schedule="exponential", gamma=0.25, decay_epochs=2)
    assert lr_at(10, expo, total_steps=100, steps_per_epoch=10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="decay_steps or decay_epochs"):
        TrainConfig(decay_steps=5, decay_epochs=1)


def test_a_searched_step_decay_reaches_the_trainer() -> None:
    params = {"lr": 0.01, "schedule": "step", "gamma": 0.3, "decay_epochs": 2}
    trainer = Trainer(mlp(), TrainConfig(epochs=5, batch_size=16, device="cpu").with_params(params))
    history = trainer.fit(*split(64))
    # lr after epoch k (the next step's rate): 0.01 * 0.3 ** (k // 2)
    assert [r.lr for r in history.records] == pytest.approx([0.01 * 0.3 ** (k // 2) for k in range(1, 6)])


def test_one_schedule_given_as_a_string_is_that_schedule() -> None:
    """Before: "cosine" was read letter by letter and refused: "got ['c', 'o', 's', 'i', 'n', 'e']"."""
    space = adam_space(schedules="cosine")
    assert list(space["schedule"].choices) == ["cosine"]


def test_no_schedules_leaves_the_schedule_to_the_train_config() -> None:
    """A cosine decay for every trial took `schedules=("cosine",)`: a one-choice parameter that the sampler's
    start-up count, the slices, the parallel coordinates and the importance all took for a searched one."""
    space = adam_space(schedules=None)
    assert set(space) == {"lr", "beta1", "beta2", "eps", "weight_decay", "warmup_fraction"}
    assert space.ndim == 6  # with schedules=("cosine",): 7
    base = TrainConfig(epochs=4, batch_size=16, device="cpu", schedule="cosine", min_lr=0.0)
    (params,) = sample(space, 1)
    history = Trainer(mlp(), base.with_params(params)).fit(*split(64))
    assert history.records[-1].lr < 0.2 * params["lr"]  # cosine decay from the trial's lr, as base says
    with pytest.raises(ValueError, match=r"schedules must be a non-empty subset .*got \[\]; None leaves the schedule "
                                         r"to the TrainConfig"):
        adam_space(schedules=())


def test_a_decay_range_no_searched_schedule_uses_is_refused_not_dropped() -> None:
    """Before: adam_space(schedules=None, gamma=(0.2, 0.5)) returned a space without gamma, the range lost."""
    with pytest.raises(ValueError, match=r"gamma=\(0.2, 0.5\) is searched only under the schedules \['step', "
                                         r"'exponential', 'plateau'\], and schedules=None searches no schedule: add "
                                         r"one of them to schedules, or leave gamma out \(gamma=None\)"):
        adam_space(schedules=None, gamma=(0.2, 0.5))
    with pytest.raises(ValueError, match=r"decay_epochs=\(2, 4\) is searched only under the schedules \['step'\], "
                                         r"and schedules=\['cosine', 'exponential'\] has none of them"):
        adam_space(schedules=("cosine", "exponential"), decay_epochs=(2, 4))
    # the defaults, None, and a range a searched schedule uses are taken as before
    assert set(adam_space(schedules=None)) == set(adam_space(schedules=None, gamma=None, decay_epochs=None))
    assert "plateau_factor" in adam_space(schedules=("plateau",), gamma=(0.2, 0.5))
    assert "gamma" not in adam_space(schedules=("cosine",))


def test_a_keyword_spelt_as_the_parameter_or_a_field_names_the_keyword_meant() -> None:
    """Before: ``adam_space(warmup_fraction=(0, 0.1))``, the name of the parameter the space holds, gave Python's bare
    "unexpected keyword argument", as did ``clip_norm=``, which adam_space does not search at all."""
    for given, meant in [("warmup_fraction", "did you mean warmup=?"), ("schedule", "did you mean schedules=?"),
                         ("learning_rate", "did you mean lr=?"), ("Weight_Decays", "did you mean weight_decay=?"),
                         ("betas", "give beta1=(low, high) and beta2=(low, high)")]:
        with pytest.raises(TypeError, match=r"its keywords: lr, schedules, weight_decay, warmup, beta1") as err:
            adam_space(**{given: (0.0, 0.1)})
        assert meant in str(err.value), err.value
    with pytest.raises(TypeError, match=r"not TrainConfig\.clip_norm\. Add clip_norm to the space") as err:
        adam_space(max_grad_norm=(0.1, 10.0))
    fix = "{**adam_space(), 'clip_norm': ts.Float(0.1, 10.0)}"
    assert fix.replace("0.1, 10.0", "low, high") in str(err.value)
    space = ts.Space(eval(fix, {"adam_space": adam_space, "ts": ts}))  # noqa: S307  (the fix as the message gives it)
    assert "clip_norm" in space and "lr" in space
    with pytest.raises(TypeError, match=r"^adam_space\(\) has no keyword 'colour'; its keywords"):
        adam_space(colour=(0, 1))
