"""A run killed mid-epoch (SIGKILL, in a subprocess) and resumed equals the uninterrupted run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, snapshot, split  # noqa: E402

from tunesmith.train import TrainConfig, Trainer, checkpoint  # noqa: E402

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{tests!r}, {src!r}]
    import torch
    torch.set_num_threads(1)
    from _train_util import mlp, split
    from tunesmith.train import TrainConfig, Trainer
    cfg = TrainConfig(**{cfg!r})
    model = mlp(dropout=0.3)
    calls = [0]
    def kill(module, args):
        calls[0] += 1
        if calls[0] == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
    model.register_forward_pre_hook(kill)
    Trainer(model, cfg).fit(*split(96))
    print("not killed")
    """
)

CASES = {
    # 72 samples, batch 8 -> 9 batches; accumulate 2 -> 5 steps per epoch
    "epochs": dict(epochs=5, batch_size=8, accumulate=2, lr=0.01, schedule="cosine", warmup_steps=3),
    "mid-epoch": dict(epochs=4, batch_size=8, accumulate=2, eval_every=3, lr=0.01, schedule="exponential",
                      clip_norm=1.0, l2=1e-3, optimizer="adamw", weight_decay=0.01),
    "plateau+early-stop": dict(epochs=8, batch_size=8, lr=0.02, schedule="plateau", plateau_patience=1,
                               patience=3, amsgrad=True),
}


# forward calls before the kill: 9 training + 3 validation batches per epoch -> inside epoch 2
KILL_AT = 23


@pytest.mark.parametrize(
    "case", [c if c == "epochs" else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)]
)
def test_resume_after_kill_equals_uninterrupted_run(case: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = dict(CASES[case], checkpoint_dir=str(tmp_path / "killed"), keep_last=2)
    code = CHILD.format(tests=str(TESTS), src=str(SRC), cfg=cfg, kill_at=KILL_AT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr  # really killed
    assert "not killed" not in proc.stdout
    last = checkpoint.latest(tmp_path / "killed")
    assert last is not None
    assert len(checkpoint.list_last(tmp_path / "killed")) <= 2  # rotation bounds disk use

    saved_step = checkpoint.load(last)["step"]
    resumed_model = mlp(dropout=0.3, seed=123)  # a different init: the checkpoint must override it
    resumed = Trainer(resumed_model, TrainConfig(**cfg)).fit(*split(96), resume_from=last)
    assert 0 < saved_step < resumed.records[-1].step  # it did continue

    ref_cfg = TrainConfig(**dict(cfg, checkpoint_dir=str(tmp_path / "ref")))
    ref_model = mlp(dropout=0.3)
    reference = Trainer(ref_model, ref_cfg).fit(*split(96))

    assert resumed.train_losses == reference.train_losses
    assert resumed.val_losses == reference.val_losses
    assert [r.lr for r in resumed.records] == [r.lr for r in reference.records]
    assert resumed.best_index == reference.best_index
    assert resumed.stopped_early == reference.stopped_early
    a, b = snapshot(resumed_model), snapshot(ref_model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Trainer(mlp()).fit(*split(32), resume_from=tmp_path / "nope.pt")


def test_resume_with_another_learning_rate_is_refused(tmp_path: Path) -> None:
    """Before: the optimizer's restored groups kept the checkpoint's rate (and betas, eps,
    decay, momentum), so the new lr was silently ignored for the rest of the run."""
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path), keep_last=5, device="cpu")
    Trainer(mlp(), cfg).fit(*split(64))
    first = sorted(tmp_path.glob("last-*.pt"))[0]
    for change in ({"lr": 1e-2}, {"weight_decay": 0.1}, {"beta1": 0.5}):
        with pytest.raises(checkpoint.CheckpointError, match=f"{next(iter(change))}=.* there, .* here"):
            Trainer(mlp(), cfg.with_params(change)).fit(*split(64), resume_from=first)
    history = Trainer(mlp(), cfg.with_params({"epochs": 4})).fit(*split(64), resume_from=first)
    assert len(history.records) == 4 and history.records[-1].lr == pytest.approx(1e-3)  # more epochs: resumed


@pytest.mark.parametrize(("schedule", "said"), [("cosine", "schedule='cosine': a jump in its decay"),
                                                ("warmup_fraction", "schedule='constant': back inside a warm-up of 9 steps")])
def test_a_longer_resumed_run_whose_schedule_stretches_says_the_rate_jumps(
    schedule: str, said: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: resuming a cosine run with more epochs restarted its decay without a word (the rate
    at the resumed step jumped from the saved run's to the longer schedule's); the same with a
    warm-up given as a fraction of the run, which grows with it."""
    kind = {"schedule": "cosine"} if schedule == "cosine" else {"warmup_fraction": 0.75}
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path), device="cpu", **kind)
    Trainer(mlp(), cfg).fit(*split(64))
    last = checkpoint.latest(tmp_path)
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"epochs": 4})).fit(*split(64), resume_from=last)
    assert len(history.records) == 4  # resumed all the same
    assert "epochs=2 there, 4 here" in caplog.text and said in caplog.text, caplog.text


def test_a_resume_past_the_shorter_runs_end_names_no_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: a cosine run's checkpoint at step 9 of 12 resumed with epochs=2 (6 steps) warned that
    "the learning rate at this step becomes 0", though the run trains no step at all from there."""
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-3, schedule="cosine", checkpoint_dir=str(tmp_path), keep_last=4,
                      device="cpu")
    Trainer(mlp(), cfg).fit(*split(64))
    step_9 = tmp_path / "last-000000009.pt"
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"epochs": 2})).fit(*split(64), resume_from=step_9)
    assert [r.step for r in history.records] == [3, 6, 9]  # nothing trained after the checkpoint
    assert "rate at this step" not in caplog.text and "trains nothing" in caplog.text, caplog.text


def test_a_resume_that_trains_nothing_says_so_naming_the_epochs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: a resume at or past the run's end (the same epochs as the finished run, a max_steps already reached)
    or of a run that had stopped early returned the checkpoint's history without a word."""
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path / "a"), device="cpu")
    Trainer(mlp(), cfg).fit(*split(64))
    done = checkpoint.latest(tmp_path / "a")
    stopping = cfg.with_params({"checkpoint_dir": str(tmp_path / "s"), "epochs": 30, "lr": 0.5, "patience": 1})
    stopped = Trainer(mlp(), stopping).fit(*split(64))
    assert stopped.stopped_early
    cases = [
        (cfg, done, "saved after epoch 2 (step 6), trains nothing: this run ends with epoch 2 (epochs=2). fit returns "
                    "the checkpoint's history and its best weights (restore_best); to train longer, resume with more "
                    "than 2 epochs (config.with_params({'epochs': 4}))"),
        (cfg.with_params({"epochs": None, "max_steps": 5, "restore_best": False}), done,
         "trains nothing: this run ends at step 5 (max_steps=5). fit returns the checkpoint's history; to train longer, "
         "resume with max_steps above 6"),
        (stopping, checkpoint.latest(tmp_path / "s"),
         "trains nothing: the saved run had stopped early (1 validation without an improvement, patience=1 here). "
         "fit returns the checkpoint's history and its best weights (restore_best); to train on, resume with patience "
         "above 1 (or None)"),
    ]
    for i, (run, path, said) in enumerate(cases):
        caplog.clear()
        with caplog.at_level("WARNING", logger="tunesmith"):
            history = Trainer(mlp(), run.with_params({"checkpoint_dir": str(tmp_path / str(i))})).fit(
                *split(64), resume_from=path)
        assert history.records[-1].step == checkpoint.step_of(path)  # trained nothing, as before
        assert said in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):  # a run with epochs left says nothing
        Trainer(mlp(), cfg.with_params({"epochs": 3, "checkpoint_dir": str(tmp_path / "m")})).fit(*split(64), resume_from=done)
    assert "trains nothing" not in caplog.text, caplog.text


def test_a_run_stopped_by_its_patience_goes_on_when_resumed_with_a_larger_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The checkpoint's stopped_early ended a resumed run whatever patience it was given: patience=3 on a run that
    had stopped after 1 validation without an improvement trained nothing. Now it trains until 3 (or to its
    epochs with patience=None); the same patience still trains nothing, and a diverged run stays stopped."""
    stopping = TrainConfig(epochs=12, batch_size=16, lr=1e-3, min_delta=10.0, patience=1,
                           checkpoint_dir=str(tmp_path / "s"), device="cpu")
    saved = Trainer(mlp(), stopping).fit(*split(64))
    assert saved.stopped_early and len(saved.records) == 2  # min_delta 10: no validation improves enough
    last = checkpoint.latest(tmp_path / "s")
    for i, (patience, records) in enumerate(((3, 4), (None, 12))):
        caplog.clear()
        run = stopping.with_params({"patience": patience, "checkpoint_dir": str(tmp_path / str(i))})
        with caplog.at_level("INFO", logger="tunesmith"):
            history = Trainer(mlp(), run).fit(*split(64), resume_from=last)
        assert len(history.records) == records and history.stopped_early == (patience is not None), history
        assert [r.step for r in history.records[:2]] == [r.step for r in saved.records]
        assert (f"stopped early after 1 validation without an improvement; patience={patience} here, so training "
                "goes on") in caplog.text, caplog.text
    (x, y), val = split(64)
    x = x.clone()
    x[5, 0] = float("nan")  # a NaN in the data: the training loss is NaN, the run stops (diverged)
    diverging = stopping.with_params({"min_delta": 0.0, "patience": None, "epochs": 4,
                                      "checkpoint_dir": str(tmp_path / "d")})
    diverged = Trainer(mlp(), diverging).fit((x, y), val)
    assert diverged.stopped_early and not math.isfinite(diverged.records[-1].train_loss)
    caplog.clear()
    with caplog.at_level("INFO", logger="tunesmith"):
        again = Trainer(mlp(), diverging.with_params({"checkpoint_dir": str(tmp_path / "e"), "patience": 5})).fit(
            (x, y), val, resume_from=checkpoint.latest(tmp_path / "d"))
    assert len(again.records) == len(diverged.records) and "its training loss diverged" in caplog.text, caplog.text


def test_a_run_a_callback_stopped_stays_stopped_when_resumed_without_a_patience(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A resume went on with any run whose training loss was finite and whose patience allowed more than its
    validations without an improvement: one a callback had stopped (a target reached, with no patience set)
    went on training when resumed, saying "stopped early after 0 validations without an improvement;
    patience=None here". Only a stop its saved patience explains goes on."""

    def stop_at_second(trainer: Trainer, record: object) -> None:
        if len(trainer.history.records) == 2:
            trainer.history.stopped_early = True  # a target reached

    cfg = TrainConfig(epochs=6, batch_size=16, lr=1e-3, device="cpu", checkpoint_dir=str(tmp_path / "c"))
    trainer = Trainer(mlp(), cfg, callbacks=[stop_at_second])
    assert len(trainer.fit(*split(64)).records) == 2
    saved = trainer.save(tmp_path / "stopped.pt")
    with caplog.at_level("INFO", logger="tunesmith"):
        again = Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(tmp_path / "r")})).fit(*split(64), resume_from=saved)
    assert len(again.records) == 2 and again.stopped_early, again
    assert ("trains nothing: the saved run had been stopped by a callback (history.stopped_early), not by its patience"
            in caplog.text and "load_weights" in caplog.text and "so training goes on" not in caplog.text), caplog.text


def test_a_longer_resumed_run_whose_rates_go_on_as_saved_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A constant or exponential schedule, or a warm-up in steps, does not depend on the run's length."""
    for i, kind in enumerate(({"schedule": "exponential", "gamma": 0.5}, {"warmup_steps": 2})):
        cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path / str(i)), device="cpu", **kind)
        Trainer(mlp(), cfg).fit(*split(64))
        with caplog.at_level("WARNING", logger="tunesmith"):
            Trainer(mlp(), cfg.with_params({"epochs": 4})).fit(*split(64), resume_from=checkpoint.latest(tmp_path / str(i)))
    assert "resuming" not in caplog.text, caplog.text


class _EpochGuard:
    """Fails a run that starts more epochs than it has: a resume whose epoch yields no batch looped for ever."""

    def __init__(self, most: int) -> None:
        self.most, self.started = most, 0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.started += 1
        assert self.started <= self.most, f"epoch {epoch} started {self.started} times: the run does not advance"


def test_a_resume_on_a_larger_training_set_says_the_rate_jumps_and_ends_its_decay_with_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the checkpoint did not hold the saved run's steps per epoch, so a cosine run resumed on four
    times the data said nothing, and its schedule, stretched over epochs x the new steps per epoch, was still
    at a third of its rate when the last epoch ended (it never reached min_lr)."""
    from _train_util import blobs

    x, y = blobs(192)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-3, schedule="cosine", checkpoint_dir=str(tmp_path / "a"),
                      keep_last=4, device="cpu")
    Trainer(mlp(), cfg).fit((x[:48], y[:48]))  # 3 steps per epoch
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(tmp_path / "b")}), callbacks=_EpochGuard(2)).fit(
            (x, y), resume_from=tmp_path / "a" / "last-000000006.pt")  # after epoch 2; then 12 steps per epoch
    assert [r.step for r in history.records] == [3, 6, 18, 30]
    assert history.records[-1].lr == pytest.approx(0.0, abs=1e-12), history.records[-1].lr  # min_lr at the run's end
    said = caplog.text
    assert ("with another training set size (3 optimizer steps per epoch there, 12 here: a training set larger than the "
            "saved run's)") in said and "total steps (12 there, 30 here)" in said, said
    assert "becomes 0.0009045 where the saved run had 0.0005" in said and "training set size to continue" in said, said


def test_a_resume_mid_epoch_on_a_smaller_training_set_goes_on_with_the_next_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a checkpoint written after batch 4 of an epoch, resumed on a set of 2 batches, started that epoch
    after its end, which yielded no batch and never ended: fit looped for ever."""
    from _train_util import blobs

    x, y = blobs(96)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, eval_every=2, checkpoint_dir=str(tmp_path / "a"), keep_last=9,
                      device="cpu")
    Trainer(mlp(), cfg).fit((x, y))  # 6 steps per epoch, a checkpoint every 2
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(tmp_path / "b")}), callbacks=_EpochGuard(3)).fit(
            (x[:32], y[:32]), resume_from=tmp_path / "a" / "last-000000004.pt")
    assert [(r.epoch, r.step) for r in history.records] == [(0, 2), (0, 4), (2, 6), (3, 8)]
    assert ("in epoch 1 after its batch 4, but this training set has 32 samples where the saved run's had 96: the "
            "saved epoch's order of samples cannot go on on it (it would skip some and repeat others), so the rest of "
            "epoch 1 is skipped and training goes on with epoch 2") in caplog.text, caplog.text


class _Seen:
    """The first feature of each sample trained on (a sample's number there), by epoch."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, list[int]] = {}
        self.epoch = -1

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.epoch = epoch
        if not self.by_epoch:
            trainer.model.register_forward_pre_hook(
                lambda m, args: self.by_epoch.setdefault(self.epoch, []).extend(args[0][:, 0].long().tolist())
                if m.training else None)


@pytest.mark.parametrize(("samples", "said"), [(128, "96"), (90, "96")])
def test_a_resume_early_in_an_epoch_on_a_set_of_another_size_reads_that_epoch_again_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, samples: int, said: str
) -> None:
    """Before: a checkpoint after batch 2 of an epoch, resumed on a set of another size, went on at batch 2 of the
    new set's permutation: 96 of 128 samples trained in that epoch (32 never, and of the 90 of a set of the same
    batch count, some twice with the 2 batches before). Now that epoch is read again from its start: each sample of
    the new set once after the resume."""
    from _train_util import blobs

    x, y = blobs(max(samples, 96))
    x[:, 0] = torch.arange(len(x), dtype=x.dtype)  # each sample's number
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, eval_every=2, checkpoint_dir=str(tmp_path / "a"), keep_last=9,
                      device="cpu")
    Trainer(mlp(), cfg).fit((x[:96], y[:96]))  # 6 steps per epoch, a checkpoint every 2
    seen = _Seen()
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(tmp_path / "b")}), callbacks=seen).fit(
            (x[:samples], y[:samples]), resume_from=tmp_path / "a" / "last-000000008.pt")
    assert sorted(seen.by_epoch[1]) == list(range(samples)), seen.by_epoch
    assert (f"in epoch 2 after its batch 2, but this training set has {samples} samples where the saved run's had "
            f"{said}: the saved epoch's order of samples cannot go on on it (it would skip some and repeat others), "
            "so epoch 2 is read again from its start") in caplog.text, caplog.text


@pytest.mark.parametrize(("settings", "false"), [
    ({"schedule": "cosine", "warmup_steps": 20}, "warmup_steps (20) is not below the run's 12 optimizer steps"),
    ({"schedule": "step", "decay_steps": 20}, "the run has 12 after warm-up: the rate never decays"),
])
def test_a_resume_on_a_smaller_training_set_judges_its_warm_up_and_decay_by_the_run_s_length(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, settings: dict[str, object], false: str
) -> None:
    """Before: the warm-up and step-decay warnings took the run as epochs x the smaller set's steps per epoch
    (4 x 3 = 12), not its length as resumed (24 steps done, 6 to go): a run past its warm-up at step 20, and
    decayed there, was told its rate never reaches lr or never decays."""
    from _train_util import blobs

    x, y = blobs(192)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path / "a"), keep_last=4,
                      device="cpu", **settings)
    Trainer(mlp(), cfg).fit((x, y))  # 12 steps per epoch
    with caplog.at_level("WARNING", logger="tunesmith"):
        history = Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(tmp_path / "b")})).fit(
            (x[:48], y[:48]), resume_from=tmp_path / "a" / "last-000000024.pt")  # after epoch 2; then 3 per epoch
    assert [r.step for r in history.records] == [12, 24, 27, 30]
    if settings["schedule"] == "cosine":  # the resume's own warning stays (a step decay's rate goes on as saved)
        assert "total steps (48 there, 30 here)" in caplog.text, caplog.text
    assert false not in caplog.text and "is not below" not in caplog.text and "never decays" not in caplog.text, \
        caplog.text


def test_a_run_resumed_from_its_moved_folder_names_its_best_checkpoint_there(tmp_path: Path) -> None:
    """The history inside a checkpoint names best.pt by the path it was written at: resumed from
    the folder moved elsewhere (a project folder moved, another machine), the run kept the old
    place's path, stored it as the trial's best_checkpoint and could not load its best weights."""
    import shutil

    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, checkpoint_dir=str(tmp_path / "a" / "x" / "run"), device="cpu")
    Trainer(mlp(), cfg).fit(*split(64))
    shutil.move(tmp_path / "a", tmp_path / "b")
    here = tmp_path / "b" / "x" / "run"
    last = sorted(here.glob("last-*.pt"))[-1]
    history = Trainer(mlp(), cfg.with_params({"checkpoint_dir": str(here)})).fit(*split(64), resume_from=last)
    assert history.best_checkpoint == str(here / "best.pt") and history.last_checkpoint == str(last)
