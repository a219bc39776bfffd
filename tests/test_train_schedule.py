"""Each schedule's learning-rate curve, as the trainer applies it, against its formula."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, split  # noqa: E402

from tunesmith.train import Plateau, TrainConfig, Trainer, lr_factor  # noqa: E402

LR = 0.01


def applied_lrs(cfg: TrainConfig, val=None) -> tuple[list[float], Trainer]:
    train, v = split(64)
    trainer = Trainer(mlp(), cfg)
    seen: list[float] = []
    trainer.optimizer.register_step_pre_hook(lambda opt, a, k: seen.append(opt.param_groups[0]["lr"]))
    trainer.fit(train, v if val is None else val)
    return seen, trainer


# 64*0.75 = 48 samples, batch 8 -> 6 steps per epoch, 5 epochs -> 30 steps
FORMULAS = {
    "constant": lambda s: 1.0,
    "step": lambda s: 0.5 ** (s // 6),
    "exponential": lambda s: 0.5 ** (s / 6),
    "cosine": lambda s: 0.5 * (1 + math.cos(math.pi * s / 30)),
    "linear": lambda s: 1 - s / 30,
}


@pytest.mark.parametrize("schedule", sorted(FORMULAS))
def test_schedule_curve_matches_formula(schedule: str) -> None:
    cfg = TrainConfig(lr=LR, schedule=schedule, epochs=5, batch_size=8, gamma=0.5)
    seen, _ = applied_lrs(cfg)
    assert len(seen) == 30
    expected = [LR * FORMULAS[schedule](s) for s in range(30)]
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_linear_warmup_then_cosine_to_min_lr() -> None:
    cfg = TrainConfig(lr=LR, schedule="cosine", epochs=5, batch_size=8, warmup_steps=5, min_lr=1e-3)
    seen, _ = applied_lrs(cfg)
    m = 1e-3 / LR
    expected = [LR * (s + 1) / 5 for s in range(5)]
    expected += [LR * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * (s - 5) / 25))) for s in range(5, 30)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert max(seen) == pytest.approx(LR)


def test_linear_warmup_then_linear_decay_to_min_lr() -> None:
    """Before: "linear" (Hugging Face's default, warm-up then a straight line down) was refused;
    a study could not compare it with cosine."""
    cfg = TrainConfig(lr=LR, schedule="linear", epochs=5, batch_size=8, warmup_steps=5, min_lr=1e-3)
    seen, _ = applied_lrs(cfg)
    m = 1e-3 / LR
    expected = [LR * (s + 1) / 5 for s in range(5)] + [LR * (m + (1 - m) * (1 - (s - 5) / 25)) for s in range(5, 30)]
    assert seen == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"min_lr \(0\.01\) > TrainConfig\.lr \(0\.001\) with schedule='linear'"):
        TrainConfig(lr=1e-3, min_lr=1e-2, schedule="linear")


def test_warmup_fraction_counts_steps_of_the_whole_run() -> None:
    cfg = TrainConfig(lr=LR, epochs=5, batch_size=8, warmup_fraction=0.2)  # 6 of 30 steps
    seen, _ = applied_lrs(cfg)
    assert seen[:7] == pytest.approx([LR * (s + 1) / 6 for s in range(6)] + [LR])


def test_a_warmup_fraction_on_half_a_step_rounds_up_every_time() -> None:
    """``round()`` took 2.5 steps to 2 and 3.5 to 4 (halves to even): two fractions of the same
    kind gave warm-ups on different sides of the exact value."""
    from tunesmith.train.schedule import warmup_steps

    assert [warmup_steps(TrainConfig(warmup_fraction=f), 10) for f in (0.05, 0.15, 0.25, 0.35)] == [1, 2, 3, 4]
    assert warmup_steps(TrainConfig(warmup_fraction=0.1), 30) == 3  # 3.0000000000000004: to the nearest step


def test_decay_steps_overrides_the_epoch() -> None:
    cfg = TrainConfig(lr=LR, schedule="step", decay_steps=4, gamma=0.1, epochs=2, batch_size=8)
    seen, _ = applied_lrs(cfg)
    assert seen == pytest.approx([LR * 0.1 ** (s // 4) for s in range(12)])


def test_plateau_reduces_after_patience_bad_validations() -> None:
    p = Plateau(patience=2)
    counts = [p.update(v) for v in [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.8]]
    # 0.95, 0.93 -> first reduction; 0.92, 0.91 -> second; 0.8 improves
    assert counts == [0, 0, 0, 1, 1, 2, 2]
    cfg = TrainConfig(lr=LR, schedule="plateau", plateau_factor=0.5)
    assert [lr_factor(10, cfg, total_steps=20, steps_per_epoch=5, reductions=r) for r in range(3)] == [1, 0.5, 0.25]


def test_plateau_in_the_trainer_follows_validation() -> None:
    # learning rate 0 -> validation loss never improves after the first epoch
    cfg = TrainConfig(lr=1e-9, schedule="plateau", plateau_patience=1, plateau_factor=0.5, epochs=4, batch_size=48, min_delta=1.0)
    seen, trainer = applied_lrs(cfg)
    assert seen == pytest.approx([1e-9, 1e-9, 0.5e-9, 0.25e-9])
    assert trainer.plateau.reductions == 3


def test_min_lr_above_lr_is_refused_naming_both() -> None:
    # it used to be clamped to min_lr = lr: a constant rate under the cosine schedule's name
    with pytest.raises(ValueError, match=r"min_lr \(0\.01\) > TrainConfig\.lr \(0\.001\)"):
        TrainConfig(lr=1e-3, min_lr=1e-2, schedule="cosine")
    TrainConfig(lr=1e-3, min_lr=1e-3, schedule="cosine")  # equal: allowed
    for schedule in ("constant", "step", "exponential", "plateau"):  # min_lr unused there: a study that
        TrainConfig(lr=1e-3, min_lr=1e-2, schedule=schedule)  # searches the schedule keeps those trials


def test_a_warmup_longer_than_the_run_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """warmup_steps=50 in a 10-step run: the rate never reached lr and no schedule ran,
    silently."""
    train, val = split(96)
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), TrainConfig(epochs=2, batch_size=16, warmup_steps=50)).fit(train, val)
    assert history.records[-1].lr < 1e-3
    assert "warmup_steps (50) is not below the run's 10 optimizer steps" in caplog.text
    assert "never reaches lr" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(mlp(), TrainConfig(epochs=2, batch_size=16, warmup_steps=6)).fit(train, val)
    assert "warmup_steps" not in caplog.text


def test_a_warmup_as_long_as_the_run_says_lr_is_reached_at_the_last_step(caplog: pytest.LogCaptureFixture) -> None:
    """Before: warmup_steps equal to the run's steps was warned about as "never reaches lr", while the
    warm-up's last step runs at lr itself."""
    seen: list[float] = []
    train, val = split(96)
    with caplog.at_level("WARNING", logger="tunesmith"):
        trainer = Trainer(mlp(), TrainConfig(epochs=2, batch_size=16, lr=LR, warmup_steps=10))
        trainer.optimizer.register_step_pre_hook(lambda opt, a, k: seen.append(opt.param_groups[0]["lr"]))
        trainer.fit(train, val)
    assert len(seen) == 10 and seen[-1] == pytest.approx(LR)
    assert "warmup_steps (10) is not below the run's 10 optimizer steps" in caplog.text
    assert "reaches lr (0.01) only at the last step" in caplog.text and "never reaches" not in caplog.text


@pytest.mark.parametrize("schedule", ["constant", "step", "exponential", "cosine", "linear", "plateau"])
def test_each_records_lr_is_the_rate_of_the_next_step(schedule: str) -> None:
    """Before: under "plateau" a record showed the rate before the reduction its own validation
    caused (lr where the next step ran at lr / 2)."""
    cfg = TrainConfig(lr=1e-9, schedule=schedule, plateau_patience=1, min_delta=1.0, warmup_steps=2, epochs=5, batch_size=16)
    seen, trainer = applied_lrs(cfg)
    records = [r for r in trainer.history.records if r.step < len(seen)]
    assert len(records) == 4 and [r.lr for r in records] == pytest.approx([seen[r.step] for r in records], rel=1e-12)


def test_a_step_schedule_that_never_decays_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Before: decay_epochs=5 in a 3-epoch run trained at a constant rate under the name "step", silently."""
    with caplog.at_level("WARNING", logger="tunesmith"):
        seen, _ = applied_lrs(TrainConfig(lr=LR, schedule="step", decay_epochs=5, epochs=3, batch_size=8))
    assert set(seen) == {LR} and "decays every 30 optimizer steps" in caplog.text and "has 18 after warm-up" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        seen, _ = applied_lrs(TrainConfig(lr=LR, schedule="step", decay_epochs=2, epochs=3, batch_size=8))
    assert len(set(seen)) == 2 and "never decays" not in caplog.text


def test_plateau_loads_its_own_fields_only() -> None:
    """Before: every key of the stored state was set as an attribute ({"__class__": 1} reached setattr)."""
    p = Plateau(patience=2)
    p.load_state_dict({"bad": 1, "reductions": 3, "__class__": 1, "update": 0})
    assert (p.bad, p.reductions, type(p)) == (1, 3, Plateau)
    assert p.update(math.inf) == 4  # its method is still its own: a second bad evaluation reduces again
