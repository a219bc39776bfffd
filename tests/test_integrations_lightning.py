"""The PyTorch Lightning callback against real Lightning training on CPU (tiny regression)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
from _train_util import PauseAndPromote, paused_and_resumed  # noqa: E402
from lightning.pytorch.callbacks import OnExceptionCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from tunesmith.integrations.lightning import PruningCallback  # noqa: E402

EPOCHS = 6
SPACE = ts.Space({"lr": ts.Float(1e-4, 1.0, log=True)})


class Regression(L.LightningModule):
    """y = 3x - 1 + noise, one linear unit, plain SGD at the trial's learning rate."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr, self.net = lr, torch.nn.Linear(4, 1)
        self.epochs_started: list[int] = []

    def training_step(self, batch: Any, _: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def on_train_epoch_start(self) -> None:
        self.epochs_started.append(self.current_epoch)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def loaders() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([[3.0], [-1.0], [0.5], [2.0]]) - 1 + 0.01 * torch.randn(256, 1, generator=g)
    ds = torch.utils.data.TensorDataset
    dl = torch.utils.data.DataLoader
    return dl(ds(x[:192], y[:192]), batch_size=32), dl(ds(x[192:], y[192:]), batch_size=64)


def trainer(callback: PruningCallback, root: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("devices", 1)
    kwargs.setdefault("logger", False)
    return L.Trainer(max_epochs=EPOCHS, accelerator="cpu",
                     enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                     num_sanity_val_steps=0, default_root_dir=str(root), **kwargs)  # fmt: skip


def objective_for(root: Path, starts: dict[int, list[int]]) -> Any:
    def objective(trial: ts.Trial) -> float:
        torch.manual_seed(0)
        model = Regression(trial.params["lr"])
        cb = PruningCallback(trial, checkpoint_dir=root / "ckpt")
        t = trainer(cb, root, callbacks=[cb])
        train, val = loaders()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning's notes on workers and resuming mid-epoch
            try:
                t.fit(model, train, val, ckpt_path=cb.resume_from, weights_only=True)
            finally:  # the epoch each fit started at
                starts.setdefault(trial.number, []).append(model.epochs_started[0])
        return float(t.callback_metrics["val_loss"])

    return objective


def test_a_bad_trial_is_pruned_and_the_study_completes(tmp_path: Path) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=EPOCHS))
    study.enqueue({"lr": 0.1})
    study.enqueue({"lr": 1e-4})  # barely moves: pruned at the first rung
    starts: dict[int, list[int]] = {}
    study.optimize(objective_for(tmp_path, starts), n_trials=3, show_progress=False)
    good, bad = study.trials[0], study.trials[1]
    assert good.state is ts.TrialState.COMPLETE and sorted(good.intermediate) == list(range(1, EPOCHS + 1))
    assert good.value == pytest.approx(good.intermediate[EPOCHS])
    assert bad.state is ts.TrialState.PRUNED and sorted(bad.intermediate) == [1]
    assert starts[1] == [0]  # Lightning stopped right after the pruning validation
    assert all(t.state.value in ("complete", "pruned") for t in study.trials)


def test_a_paused_trial_resumes_from_lightnings_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=EPOCHS, pause=True))
    for lr in (0.1, 0.02, 0.05, 0.01, 0.2):
        study.enqueue({"lr": lr})
    starts: dict[int, list[int]] = {}
    study.optimize(objective_for(tmp_path, starts), n_trials=5, show_progress=False)
    resumed = [n for n, runs in starts.items() if len(runs) > 1]
    assert resumed, f"no trial was paused and resumed: {starts}"
    for n in resumed:
        t = study.trials[n]
        assert Path(t.attrs["checkpoint"]).parent == tmp_path / "ckpt"
        # each fit after the first starts at the epoch after the pause (epoch e = step e + 1)
        assert starts[n][0] == 0 and starts[n] == sorted(set(starts[n])), starts[n]
        assert sorted(t.intermediate) == list(range(1, max(t.intermediate) + 1))  # each step once
        assert set(starts[n][1:]) <= set(t.intermediate)
    assert any(t.state.value == "paused" for t in study.trials)
    # the pause saved a full checkpoint without Lightning's "`weights_only` was not set" note,
    # which read as if fit(..., weights_only=True) had been ignored
    assert "weights_only" not in caplog.text


def test_errors_name_the_fix(tmp_path: Path) -> None:
    study = ts.Study(SPACE, pruner=PauseAndPromote())
    # a resumed trial whose stored checkpoint lies outside the callback's folder is refused
    resumed = paused_and_resumed(study, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="is not in the callback's folder"):
        _ = PruningCallback(resumed, checkpoint_dir=tmp_path / "ckpt").resume_from
    with pytest.raises(ValueError, match=r"x\.ckpt is not the one it was paused with \(.*trial-0\.ckpt\)"):
        _ = PruningCallback(resumed, checkpoint_dir=tmp_path).resume_from  # another trial's file in the folder
    own = paused_and_resumed(ts.Study(SPACE, pruner=PauseAndPromote()), tmp_path / "trial-0.ckpt")
    assert PruningCallback(own, checkpoint_dir=tmp_path).resume_from == str(tmp_path / "trial-0.ckpt")
    with pytest.raises(ValueError, match="step must be one of"):
        PruningCallback(study.ask(), step="batch")
    cb = PruningCallback(study.ask(), monitor="val_acc")
    train, val = loaders()
    with pytest.raises(ValueError, match=r"'val_acc' was not logged.*\['val_loss'\]"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(Regression(0.1), train, val)


def test_several_validations_per_epoch(tmp_path: Path) -> None:
    """val_check_interval < 1 with step="epoch" would report one epoch twice: an error that names
    step="global_step", which reports each validation at its optimizer step."""
    study = ts.Study(SPACE, pruner=ASHA(min_resource=1, max_resource=EPOCHS))
    train, val = loaders()  # 6 batches per epoch: a validation after batches 3 and 6
    cb = PruningCallback(study.ask())
    with pytest.raises(ValueError, match=r"second validation in epoch 1.*step='global_step'"):
        trainer(cb, tmp_path, callbacks=[cb], val_check_interval=0.5).fit(Regression(0.1), train, val)
    trial = study.ask()
    cb = PruningCallback(trial, step="global_step")
    trainer(cb, tmp_path, callbacks=[cb], val_check_interval=0.5).fit(Regression(0.1), train, val)
    assert sorted(trial.intermediate) == list(range(3, 6 * EPOCHS + 1, 3))
    # validating after every batch with gradient accumulation over 2 batches
    cb = PruningCallback(ts.Study(SPACE).ask(), step="global_step")
    with pytest.raises(ValueError, match=r"second validation at optimizer step 1.*once per optimizer step"):
        trainer(cb, tmp_path, callbacks=[cb], val_check_interval=1, accumulate_grad_batches=2).fit(
            Regression(0.1), train, val)


def test_the_default_checkpoint_folder_stays_in_the_temp_folder() -> None:
    """The default folder is named after the study; a name such as "../x" or "/etc" used to lead
    outside <temp>/tunesmith-lightning (a paused trial's checkpoint written there)."""
    import tempfile

    base = (Path(tempfile.gettempdir()) / "tunesmith-lightning").resolve()
    for name in ("../../escape", "/etc", "a/b", "..", "it's odd é"):
        storage = ts.storage.make_storage(None)  # ".." is refused to a new study, not to one made before
        storage.create_study(name, direction=ts.Direction.MINIMIZE, space=SPACE.to_dict(), config={})
        folder = PruningCallback(ts.Study.load(name, storage, sampler="random").ask()).checkpoint_dir
        assert folder is not None and folder.resolve().parent == base, (name, folder)
    storage = ts.storage.make_storage(None)  # a study made before studies had ids: where its checkpoints are
    storage.create_study("my-study_1.0", direction=ts.Direction.MINIMIZE, space=SPACE.to_dict(), config={})
    assert PruningCallback(ts.Study.load("my-study_1.0", storage, sampler="random").ask()).checkpoint_dir == \
        base / "my-study_1.0"
    study = ts.Study(SPACE, name="my-study_1.0")  # made now: a folder of its own, apart from the one above
    copy = study.copy(storage=ts.storage.make_storage(None))  # the same name in another storage: another
    folders = {PruningCallback(s.ask()).checkpoint_dir for s in (study, copy)}
    assert len(folders) == 2 and all(f is not None and f.parent == base and f.name.startswith("my-study_1.0-")
                                     for f in folders), folders


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "tunesmith.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[lightning\]'"):
        importlib.import_module("tunesmith.integrations.lightning")


class RankValues(L.Callback):
    """Writes each rank's own validation loss (unsynced: each rank sees its half) to a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        with open(self.folder / f"rank{trainer.global_rank}.txt", "a") as f:
            f.write(f"{float(trainer.callback_metrics['val_loss'])!r}\n")


def test_ddp_two_processes_report_from_rank_zero_only(tmp_path: Path) -> None:
    """A real 2-process DDP run (gloo, CPU, forked ranks): rank 0 alone reports to the study
    (SQLite, shared by the processes), both ranks stop at the pruning validation."""
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'ts.db'}", sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=EPOCHS))
    study.enqueue({"lr": 0.1})
    study.optimize(objective_for(tmp_path, {}), n_trials=1, show_progress=False)
    study.enqueue({"lr": 1e-4})
    trial = study.ask()
    report = trial.report

    def spy(value: float, step: int | None = None) -> None:  # which ranks report
        with open(tmp_path / "reports.txt", "a") as f:
            f.write(f"{torch.distributed.get_rank()}\n")
        report(value, step)

    trial.report = spy  # type: ignore[method-assign]
    cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
    t = trainer(cb, tmp_path, callbacks=[RankValues(tmp_path), cb], strategy="ddp_fork", devices=2)
    train, val = loaders()
    with warnings.catch_warnings(), pytest.raises(Exception, match="TrialPruned") as info:
        warnings.simplefilter("ignore")
        t.fit(Regression(trial.params["lr"]), train, val)
    assert "pruned at step 1" in str(info.value)
    reported = ts.load_study(study.name, study.storage).trials[1].intermediate
    rank0 = [float(v) for v in (tmp_path / "rank0.txt").read_text().split()]
    rank1 = [float(v) for v in (tmp_path / "rank1.txt").read_text().split()]
    assert len(rank0) == len(rank1) == 1  # both ranks stopped after the first validation
    assert rank0[0] != rank1[0]  # each rank validated its own half
    assert reported == {1: pytest.approx(rank0[0])}
    assert (tmp_path / "reports.txt").read_text().split() == ["0"]
    # the children's reports are in the storage: tell by number keeps them
    final = study.tell(trial.number, state="pruned")
    assert final.state is ts.TrialState.PRUNED and final.intermediate == reported


DDP_SCRIPT = """
import sys, warnings
import torch, lightning.pytorch as L
import tunesmith as ts
from tunesmith.integrations.lightning import PruningCallback

class Regression(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr, self.net = lr, torch.nn.Linear(4, 1)
    def training_step(self, batch, _):
        return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
    def validation_step(self, batch, _):
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

def objective(trial):
    x = torch.randn(64, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
    cb = PruningCallback(trial)
    t = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, callbacks=[cb], logger=False,
                  enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    t.fit(Regression(trial.params["lr"]), data, data)
    return float(t.callback_metrics["val_loss"])

warnings.simplefilter("ignore")
study = ts.Study(ts.Space({"lr": ts.Float(1e-3, 1e-1, log=True)}), storage=sys.argv[1] or None, name="ddp",
                 pruner=ts.pruners.ASHA(min_resource=1, max_resource=2), sampler="random")
study.optimize(objective, n_trials=2, show_progress=False)
said = [(t.state.value, "hold trials of their own" in (t.error or "")) for t in study.trials]
sys.stdout.write(f"trials: {said}\\n")  # one write: the two ranks share the pipe (print writes its parts apart)
sys.stdout.flush()
"""


def run_ddp_script(folder: Path, storage: str) -> str:
    """DDP_SCRIPT run in ``folder`` with the study in ``storage`` ("": in memory): what its ranks printed."""
    import subprocess

    script = folder / "tune.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ts.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), storage], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_ranks_that_run_the_script_again_do_not_make_trials_of_their_own(tmp_path: Path) -> None:
    """``devices=2`` on CPU: Lightning's default strategy ("ddp") starts rank 1 by running the script
    again, whose study.optimize made trials of its own that trained with rank 0's and were recorded
    apart (4 trials for n_trials=2, two without reports). Each rank's fit now fails at its setup,
    naming the cause, and both studies stop: one trial per process, failed."""
    run_ddp_script(tmp_path, "sqlite:///ddp.db")
    trials = ts.load_study("ddp", f"sqlite:///{tmp_path / 'ddp.db'}").trials
    assert [t.state for t in trials] == [ts.TrialState.FAILED] * 2
    assert all("hold trials of their own" in (t.error or "") and "devices=1" in (t.error or "") for t in trials)


def test_ranks_with_in_memory_studies_of_one_name_are_told_apart(tmp_path: Path) -> None:
    """The script run again with an in-memory study of one name: each rank's study numbered its trials
    from 0, so rank 1's trial 0 passed for rank 0's while each rank trained with parameters of its own
    (both trials complete in each rank's study). The study's id tells them apart: both ranks fail."""
    printed = [line for line in run_ddp_script(tmp_path, "").splitlines() if line.startswith("trials:")]
    assert printed == ["trials: [('failed', True)]"] * 2, printed


class Diverging(Regression):
    """Logs a val_loss that turns NaN from the second epoch on."""

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("val_loss", loss * float("nan") if self.current_epoch >= 1 else loss)


def test_a_diverged_fit_is_pruned_and_keeps_the_epoch_it_diverged_at(tmp_path: Path) -> None:
    """A NaN val_loss pruned the trial unreported, with nothing stored that said why (it read as
    stopped by the pruner); the epoch is kept as attrs["diverged_at"], as the trainer's bridge does."""
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=ASHA(min_resource=1, max_resource=EPOCHS))

    def objective(trial: ts.Trial) -> float:
        cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer(cb, tmp_path, callbacks=[cb]).fit(Diverging(0.01), *loaders())
        return 0.0

    study.optimize(objective, n_trials=1, show_progress=False)
    trial = study.trials[0]
    assert trial.state is ts.TrialState.PRUNED and list(trial.intermediate) == [1]
    assert trial.attrs["diverged_at"] == 2


def test_a_strategy_that_pickles_the_trainer_is_refused_naming_the_fix(tmp_path: Path) -> None:
    """strategy='ddp_spawn' pickles the Trainer into its ranks: the callback's trial failed it with
    "cannot pickle '_thread.RLock' object"; the error now names the callback and what to do instead."""
    trial = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'ts.db'}").ask()
    cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
    t = trainer(cb, tmp_path, callbacks=[cb], strategy="ddp_spawn", devices=2)
    with warnings.catch_warnings(), pytest.raises(TypeError, match=r"holds trial 0, .*'ddp_spawn'.*devices=1.*ddp_fork"):
        warnings.simplefilter("ignore")
        t.fit(Regression(0.1), *loaders())
    assert trial.intermediate == {}


def test_a_callback_is_copied_and_one_without_a_trial_pickled(tmp_path: Path) -> None:
    """The refusal to pickle a trial (above) made copy.copy of a callback holding one fail as well (it
    goes through __getstate__), which shares the trial and had worked; a callback without a trial (the
    ranks other than 0) still pickles and copies whole."""
    import copy
    import pickle

    trial = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'ts.db'}").ask()
    cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
    copied = copy.copy(cb)
    assert copied is not cb and copied.trial is trial and copied.checkpoint_dir == cb.checkpoint_dir
    for f in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match="holds trial 0"):
            f(cb)
    rank1 = PruningCallback(None, monitor="val_acc", checkpoint_dir=tmp_path)
    for twin in (pickle.loads(pickle.dumps(rank1)), copy.deepcopy(rank1), copy.copy(rank1)):
        assert (twin.trial, twin.monitor, twin.checkpoint_dir) == (None, "val_acc", tmp_path)


class Accuracy(Regression):
    """Logs a higher-is-better "val_acc" and a custom "val_gain" next to val_loss."""

    def validation_step(self, batch: Any, _: int) -> None:
        super().validation_step(batch, _)
        x, y = batch
        err = (self.net(x) - y).abs()
        self.log("val_acc", (err < 0.5).float().mean())
        self.log("val_gain", -err.mean())


@pytest.mark.parametrize(("monitor", "direction", "warned"), [
    ("val_loss", "maximize", True), ("val_acc", "minimize", True),
    ("val_loss", "minimize", False), ("val_acc", "maximize", False), ("val_gain", "minimize", False),
])  # fmt: skip
def test_a_metric_against_the_studys_direction_is_warned_once(
    tmp_path: Path, monitor: str, direction: str, warned: bool
) -> None:
    study = ts.Study(SPACE, direction=direction, sampler="random", seed=0, name=f"dir-{monitor}-{direction}")

    def objective(trial: ts.Trial) -> float:
        cb = PruningCallback(trial, monitor=monitor, checkpoint_dir=tmp_path)
        t = trainer(cb, tmp_path, callbacks=[cb], limit_train_batches=2)
        t.fit(Accuracy(trial.params["lr"]), *loaders())
        return float(t.callback_metrics[monitor])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=2, show_progress=False, catch=())
    ours = [str(w.message) for w in caught if "looks better when" in str(w.message)]
    assert len(ours) == (1 if warned else 0), ours
    if warned:
        want = "minimize" if direction == "maximize" else "maximize"
        assert repr(monitor) in ours[0] and f"direction {direction!r}" in ours[0] and f"direction={want!r}" in ours[0]


def test_a_study_instead_of_the_trial_is_refused() -> None:
    study = ts.Study(SPACE)
    with pytest.raises(TypeError, match=r"lightning PruningCallback needs the running trial.*got Study"):
        PruningCallback(study)


@pytest.mark.parametrize(("step", "unit"), [("epoch", "epoch"), ("global_step", "training step")])
def test_fold_racing_is_refused_as_it_would_read_epochs_as_folds(step: str, unit: str) -> None:
    """pruner="folds" compares the mean over folds 1..k: it read epoch k as one, and stopped a trial
    behind the best one's first epoch there, without a word."""
    with pytest.raises(ValueError, match=rf"fold racing \(pruner='folds'\).* but lightning PruningCallback reports a "
                                         rf"value per {unit}: .*cv\.cross_validate.*another pruner \(pruner='asha'"):
        PruningCallback(ts.Study(SPACE, pruner="folds").ask(), step=step)
    assert PruningCallback(ts.Study(SPACE, pruner="median").ask(), step=step).step == step  # a pruner of steps


class SometimesLogged(Regression):
    """Logs val_loss in the validations of epochs 1, 4, 5 and 6 only."""

    def validation_step(self, batch: Any, _: int) -> None:
        if self.current_epoch not in (1, 2):
            super().validation_step(batch, _)
        self.log("val_other", 0.0)


def test_a_validation_that_does_not_log_the_metric_is_passed_over(tmp_path: Path) -> None:
    """Lightning keeps a metric's last value when a validation does not log it again; that
    earlier value was reported as the epoch's (steps 2 and 3 repeated step 1's value)."""
    trial = ts.Study(SPACE).ask()
    cb = PruningCallback(trial)
    train, val = loaders()
    with pytest.warns(UserWarning, match=r"'val_loss' was not logged in the validation of epoch 2"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(SometimesLogged(0.05), train, val)
    assert sorted(trial.intermediate) == [1, 4, 5, 6]


@pytest.mark.parametrize(("extra", "package", "floor", "why"), [
    ("lightning", "lightning", (2, 6), "Trainer.fit(..., weights_only=True), as the docs write it"),
    ("transformers", "transformers", (4, 41), "TrainingArguments.eval_strategy, which the callback reads"),
])  # fmt: skip
def test_the_extras_floors_have_what_the_integrations_use(extra: str, package: str, floor: tuple[int, ...], why: str) -> None:
    """The lightning extra allowed Lightning 2.1, whose fit() has no weights_only (2.6 added it),
    and the transformers extra 4.40, whose TrainingArguments has no eval_strategy (4.41)."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    spec = next(r for r in pyproject["project"]["optional-dependencies"][extra] if r.startswith(f"{package}>="))
    have = tuple(int(p) for p in re.findall(r"\d+", spec.split(">=")[1]))
    assert have >= floor, f"{spec}: needs {'.'.join(map(str, floor))} for {why}"


def test_a_misspelt_metric_gets_the_closest_logged_name(tmp_path: Path) -> None:
    cb = PruningCallback(ts.Study(SPACE).ask(), monitor="val_los")
    train, val = loaders()
    with pytest.raises(ValueError, match=r"'val_los' was not logged in validation \(did you mean 'val_loss'\?\)"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(Regression(0.1), train, val)


def test_trainer_validate_after_fit_reports_nothing(tmp_path: Path) -> None:
    """trainer.validate() after fit (for the final metrics) was reported as one epoch more
    (step max_epochs + 1), past the pruner's max_resource."""
    trial = ts.Study(SPACE).ask()
    cb = PruningCallback(trial)
    train, val = loaders()
    t = trainer(cb, tmp_path, callbacks=[cb])
    model = Regression(0.05)
    t.fit(model, train, val)
    t.validate(model, val, verbose=False)
    assert sorted(trial.intermediate) == list(range(1, EPOCHS + 1))


def test_a_resumed_trial_fit_without_its_checkpoint_is_refused_before_training(tmp_path: Path) -> None:
    """A resumed trial whose fit() was not given ckpt_path=cb.resume_from trained an epoch from
    scratch, then failed with report()'s generic 'start the loop at trial.start_step'."""
    resumed = paused_and_resumed(ts.Study(SPACE, pruner=PauseAndPromote()), tmp_path / "trial-0.ckpt")
    cb = PruningCallback(resumed, checkpoint_dir=tmp_path)
    model = Regression(0.1)
    train, val = loaders()
    with pytest.raises(ValueError, match=r"trial 0 was paused and is resumed.*ckpt_path=cb\.resume_from"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(model, train, val)
    assert model.epochs_started == []


def test_a_fit_without_validation_is_warned_about(tmp_path: Path) -> None:
    """A fit without validation data never reported the trial, which could not be pruned,
    without a word."""
    trial = ts.Study(SPACE).ask()
    cb = PruningCallback(trial)
    train, _ = loaders()
    with pytest.warns(UserWarning, match="no validation ran in this fit.*val_dataloaders="):
        trainer(cb, tmp_path, callbacks=[cb]).fit(Regression(0.1), train)
    assert trial.intermediate == {}


def test_a_checkpoint_dir_under_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint_dir="~/ckpt" put paused trials' checkpoints in a folder named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert PruningCallback(ts.Study(SPACE).ask(), checkpoint_dir="~/ckpt").checkpoint_dir == tmp_path / "ckpt"


def test_a_paused_trial_s_checkpoint_folder_is_private_and_checked_on_resume(tmp_path: Path) -> None:
    """Lightning created the default <temp>/tunesmith-lightning/<study> readable by everyone, and a
    folder others could write (where they could plant a checkpoint) was resumed from as it was."""
    import os

    from tunesmith.train.checkpoint import CheckpointError

    study = ts.Study(SPACE, sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=EPOCHS, pause=True))
    for lr in (0.1, 0.02, 0.05):
        study.enqueue({"lr": lr})
    study.optimize(objective_for(tmp_path, {}), n_trials=3, show_progress=False)
    assert any(t.state.value == "paused" for t in study.trials)
    assert os.stat(tmp_path / "ckpt").st_mode & 0o777 == 0o700
    os.chmod(tmp_path / "ckpt", 0o777)  # now anyone could replace a paused trial's checkpoint
    resumed = paused_and_resumed(ts.Study(SPACE, pruner=PauseAndPromote()), tmp_path / "ckpt" / "trial-0.ckpt")
    with pytest.raises(CheckpointError, match="writable by group and others.*chmod go-w"):
        PruningCallback(resumed, checkpoint_dir=tmp_path / "ckpt").resume_from  # noqa: B018 - the property checks


class LoggedFromEpoch2(Regression):
    def validation_step(self, batch: Any, _: int) -> None:
        if self.current_epoch >= 1:
            super().validation_step(batch, _)
        else:
            self.log("val_other", 0.0)


def test_a_metric_logged_from_the_second_epoch_on_is_reported_from_there(tmp_path: Path) -> None:
    """Before: a metric absent from the first validation (logged from epoch 2 on, or after a sanity
    check that logs other metrics) failed the fit at once; Lightning's own ModelCheckpoint waits for
    it. Now warned about, reported from where it appears; a metric that never appears fails the fit
    at its end, with the closest logged name."""
    trial = ts.Study(SPACE).ask()
    cb = PruningCallback(trial)
    train, val = loaders()
    with pytest.warns(UserWarning, match=r"'val_loss' was not logged in validation.*nothing is reported until it is"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(LoggedFromEpoch2(0.05), train, val)
    assert sorted(trial.intermediate) == [2, 3, 4, 5, 6]
    cb = PruningCallback(ts.Study(SPACE).ask(), monitor="val_los")
    model = Regression(0.05)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"did you mean 'val_loss'.*in no validation"):
        trainer(cb, tmp_path, callbacks=[cb]).fit(model, train, val)
    assert model.epochs_started == list(range(EPOCHS))  # (the whole fit ran: it could appear late)


def test_two_studies_of_one_name_do_not_resume_from_each_other_s_checkpoint(tmp_path: Path) -> None:
    """Two unrelated studies named "s" (two storages) share the default folder
    <temp>/tunesmith-lightning/s: a paused trial of one resumed, silently, from the trial-<n>.ckpt the
    other's trial of its number saved there since. A pause now writes trial-<n>.study beside it,
    naming its study, and the other study's trial refuses the checkpoint."""
    import time

    def pause(study: ts.Study) -> None:
        trial = study.ask()
        cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
        train, val = loaders()
        with warnings.catch_warnings(), pytest.raises(ts.TrialPaused):
            warnings.simplefilter("ignore")
            trainer(cb, tmp_path, callbacks=[cb]).fit(Regression(trial.params["lr"]), train, val)
        study.tell(trial, state="paused")

    a = ts.Study(SPACE, sampler="random", seed=0, name="s", pruner=PauseOnce())
    time.sleep(0.01)
    b = ts.Study(SPACE, sampler="random", seed=1, name="s", pruner=PauseOnce())  # in another storage
    pause(a)
    pause(b)  # its trial 0's checkpoint where a's was
    with pytest.raises(ValueError, match="another study named 's' .* its own checkpoint_dir"):
        _ = PruningCallback(a.ask(), checkpoint_dir=tmp_path / "ckpt").resume_from
    assert PruningCallback(b.ask(), checkpoint_dir=tmp_path / "ckpt").resume_from == str(tmp_path / "ckpt" / "trial-0.ckpt")


class PauseOnce(PauseAndPromote):
    """Pauses every trial at its first decision, once; a resumed trial runs to its end."""

    def decide(self, trial, trials, direction):  # type: ignore[no-untyped-def]
        from tunesmith.pruners import Decision

        return Decision.PAUSE if trial.system.n_resumes == 0 else Decision.CONTINUE


def _fit_noting_start(trial: ts.Trial, checkpoint_dir: str | Path, tmp_path: Path, starts: list[int]) -> None:
    """Fit the trial's Regression with a PruningCallback on ``checkpoint_dir``; the epoch it started at noted."""
    cb = PruningCallback(trial, checkpoint_dir=checkpoint_dir)
    model = Regression(trial.params["lr"])
    train, val = loaders()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer(cb, tmp_path, callbacks=[cb]).fit(model, train, val, ckpt_path=cb.resume_from, weights_only=True)
        finally:
            starts.append(model.epochs_started[0])


def test_a_paused_trial_s_checkpoint_is_stored_absolute_and_resumes_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PruningCallback(trial, checkpoint_dir="checkpoints"), as the guide writes it, stored
    "checkpoints/trial-0.ckpt": a worker in another working folder, given that folder by its
    absolute path, refused the trial as "not in the callback's folder" (the stored path read from
    its own folder), and `tunesmith show` named no file. The stored path is now absolute."""
    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    url = f"sqlite:///{tmp_path / 'ts.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, name="rel", storage=url, pruner=PauseOnce())
    starts: list[int] = []

    def fit(trial: ts.Trial, checkpoint_dir: str | Path) -> None:
        _fit_noting_start(trial, checkpoint_dir, tmp_path, starts)

    monkeypatch.chdir(tmp_path / "run")
    trial = study.ask()
    with pytest.raises(ts.TrialPaused):
        fit(trial, "checkpoints")
    study.tell(trial, state="paused")
    monkeypatch.chdir(tmp_path / "elsewhere")
    stored = ts.Study.load("rel", url, pruner=PauseOnce()).trials[0].attrs["checkpoint"]
    assert stored == str(tmp_path / "run" / "checkpoints" / "trial-0.ckpt") and Path(stored).is_file()
    resumed = ts.Study.load("rel", url, pruner=PauseOnce()).ask()
    assert resumed.is_resumed
    fit(resumed, tmp_path / "run" / "checkpoints")
    assert starts == [0, 1] and sorted(resumed.intermediate) == list(range(1, EPOCHS + 1))


class DieOnce(L.Callback):
    """SIGKILLs its process after the validation of epoch 3 in a resumed fit, once (a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 2 and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_resumed_trial_whose_worker_died_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    """A resumed trial whose worker process dies goes back to paused holding its promotion and its
    reports (steps 1-3 here), and is resumed from its pause's checkpoint (epoch 1). Lightning
    then trained epoch 2 again and the callback reported step 2 again: the trial failed with
    "reported step 2 again", its promotion and training lost. The epochs reported before the worker
    died are now trained again without being reported twice."""
    from tunesmith.pruners import Decision

    class PauseAtOne(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 and trial.last_step == 1 else Decision.CONTINUE

    def objective(trial: ts.Trial) -> float:
        torch.manual_seed(0)
        cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
        t = trainer(cb, tmp_path, callbacks=[cb, DieOnce(tmp_path / "died")])
        train, val = loaders()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(Regression(trial.params["lr"]), train, val, ckpt_path=cb.resume_from, weights_only=True)
        return float(t.callback_metrics["val_loss"])

    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'ts.db'}", sampler="random", seed=0, pruner=PauseAtOne())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the summary of the worker that died
        study.optimize(objective, n_trials=1, n_jobs=1, executor="process", show_progress=False)
    (trial,) = study.trials
    assert (tmp_path / "died").exists() and trial.system.n_holds == 1
    assert trial.state is ts.TrialState.COMPLETE, trial.error
    assert sorted(trial.intermediate) == list(range(1, EPOCHS + 1)) and trial.value == trial.intermediate[EPOCHS]


def misspelt_monitor(root: Path) -> Any:
    """An objective whose callback monitors "val_los", which no validation logs."""
    def objective(trial: ts.Trial) -> float:
        cb = PruningCallback(trial, monitor="val_los")
        train, val = loaders()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer(cb, root, callbacks=[cb]).fit(Regression(trial.params["lr"]), train, val)
        return 0.0

    return objective


def test_a_monitor_no_validation_logs_stops_the_study(tmp_path: Path) -> None:
    """A misspelt monitor failed each trial at the end of its whole fit: n_trials full trainings,
    each failed alike. The first such trial now stops the study, as the Transformers search does."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(misspelt_monitor(tmp_path), n_trials=3, show_progress=False)
    assert [t.state for t in study.trials] == [ts.TrialState.FAILED]
    assert "did you mean 'val_loss'" in (study.trials[0].error or "") and "study is stopped" in (study.trials[0].error or "")


def test_a_monitor_no_validation_logs_stops_the_study_from_worker_processes(tmp_path: Path) -> None:
    """Under the process executor the callback's study.stop() set the flag of the worker's own copy
    of the study, which nothing read: all 6 trials trained to their end and failed, each saying
    "so the study is stopped". A worker now stops the run's shared budget: the trials running at
    that moment end, none starts after them."""
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'ts.db'}", name="stop")
    study.optimize(misspelt_monitor(tmp_path), n_trials=6, n_jobs=2, executor="process", show_progress=False)
    assert 1 <= len(study.trials) <= 3 and {t.state for t in study.trials} == {ts.TrialState.FAILED}
    assert all("study is stopped" in (t.error or "") for t in study.trials)


@pytest.mark.parametrize("was_in", ["own-folder", "sticky-folder"])
def test_a_paused_trial_resumes_after_its_project_folder_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               was_in: str) -> None:
    """A trial paused with PruningCallback(trial, checkpoint_dir="checkpoints") stores its checkpoint
    absolute; its project folder (database and checkpoints) then moved, the study opened from the new
    place refused it ("not in the callback's folder"), where the relative paths stored before resumed
    it. Its file in the new place's checkpoint folder is taken, as the trainer's are. Moved out of a
    folder every user may add to (/tmp), the old path is refused to the user's own code (another user may
    put a file there), not to the callback, which loads only its own folder's file."""
    import shutil

    if was_in == "sticky-folder":
        (tmp_path / "shared").mkdir(mode=0o1777)
        os.chmod(tmp_path / "shared", 0o1777)
        tmp_path = tmp_path / "shared"
    (tmp_path / "proj").mkdir()
    starts: list[int] = []

    def fit(trial: ts.Trial) -> None:
        _fit_noting_start(trial, "checkpoints", tmp_path, starts)

    monkeypatch.chdir(tmp_path / "proj")
    study = ts.Study(SPACE, sampler="random", seed=0, name="moved", storage="sqlite:///ts.db", pruner=PauseOnce())
    trial = study.ask()
    with pytest.raises(ts.TrialPaused):
        fit(trial)
    study.tell(trial, state="paused")
    shutil.copytree(tmp_path / "proj", tmp_path / "proj2")
    shutil.rmtree(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj2")
    resumed = ts.Study.load("moved", "sqlite:///ts.db", pruner=PauseOnce()).ask()
    stored = str(tmp_path / "proj" / "checkpoints" / "trial-0.ckpt")
    if was_in == "sticky-folder":
        with pytest.raises(ts.UntrustedPathError, match="is not there, and .*shared.* can be written by other users"):
            resumed.resume_from  # noqa: B018 - the property refuses
    else:
        assert resumed.is_resumed and resumed.resume_from == stored
    fit(resumed)
    assert starts == [0, 1] and sorted(resumed.intermediate) == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_a_trial_paused_in_one_worker_process_goes_on_in_another(tmp_path: Path) -> None:
    """Under the process executor a trial paused by ASHA in one worker is resumed by whichever worker
    the pruner promotes it in: from its checkpoint, so its curve goes on (lower after the pause than at
    it; a fit from scratch would start high again), each epoch reported once, none failed."""
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'ts.db'}", name="procs",
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=EPOCHS, pause=True))
    for lr in (0.1, 0.02, 0.05, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3):
        study.enqueue({"lr": lr})
    study.optimize(objective_for(tmp_path, {}), n_trials=8, n_jobs=2, executor="process", show_progress=False)
    resumed = [t for t in study.trials if t.system.n_resumes]
    assert resumed and not [t for t in study.trials if t.state is ts.TrialState.FAILED]
    for t in resumed:
        assert sorted(t.intermediate) == list(range(1, max(t.intermediate) + 1))
        at = t.system.resumed_step
        assert at is not None and t.intermediate[at + 1] < t.intermediate[at], (t.number, t.intermediate)


class _CtrlC(L.Callback):
    """A real Ctrl-C (SIGINT to this process) at the end of the fit's second epoch."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)


def _optimize_with_ctrl_c(study: ts.Study, objective: Any) -> None:
    """``study.optimize`` stopped by a Ctrl-C in its first fit: interrupted, the SIGINT handler as before."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        study.optimize(objective, n_trials=3, show_progress=False)
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, handler)
    assert study.interrupted == "interrupted (KeyboardInterrupt)"


def test_a_ctrl_c_in_the_fit_stops_the_study_as_a_ctrl_c(tmp_path: Path) -> None:
    """Lightning catches the KeyboardInterrupt, ignores SIGINT from then on and calls sys.exit(1): the trial
    failed as "SystemExit: 1 at .../trainer/call.py", SystemExit left optimize (a script ended there), and
    the next Ctrl-C did nothing (a notebook's kernel could no longer be interrupted)."""
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=ASHA(min_resource=1, max_resource=EPOCHS))

    def objective(trial: ts.Trial) -> float:
        cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
        t = trainer(cb, tmp_path, callbacks=[cb, _CtrlC()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(Regression(trial.params["lr"]), *loaders(), ckpt_path=cb.resume_from, weights_only=True)
        return float(t.callback_metrics["val_loss"])

    _optimize_with_ctrl_c(study, objective)
    [trial] = study.trials
    assert trial.state is ts.TrialState.FAILED and trial.error == "interrupted (KeyboardInterrupt)"
    assert sorted(trial.intermediate) == [1, 2]


def test_a_ctrl_c_in_the_fit_lets_lightning_shut_down_first(tmp_path: Path) -> None:
    """The KeyboardInterrupt raised from on_exception skipped the rest of Lightning's shutdown: the callbacks after
    PruningCallback (OnExceptionCheckpoint, which Lightning puts last, wrote no checkpoint), the loggers' finalize,
    and the teardown that puts back the signal handlers the fit replaced (its SIGTERM handler stayed)."""
    study = ts.Study(SPACE, sampler="random", seed=0, pruner=ASHA(min_resource=1, max_resource=EPOCHS))
    seen: dict[str, Any] = {}

    def objective(trial: ts.Trial) -> float:
        cb = PruningCallback(trial)
        t = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path),
                      logger=CSVLogger(tmp_path), callbacks=[cb, _CtrlC(), OnExceptionCheckpoint(tmp_path / "on-exception")])
        seen["sigterm"] = signal.getsignal(signal.SIGTERM)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t.fit(Regression(trial.params["lr"]), *loaders())
        finally:
            seen["after"], seen["status"] = signal.getsignal(signal.SIGTERM), t.state.status.value
        return float(t.callback_metrics["val_loss"])

    _optimize_with_ctrl_c(study, objective)
    assert seen["after"] is seen["sigterm"] and seen["status"] == "interrupted"
    assert (tmp_path / "on-exception" / "on_exception.ckpt").is_file()
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").is_file()


class TakenOverOnce(L.Callback):
    """Listed before the study's callback: at the validation of epoch 2 of a resumed fit, once (a marker file),
    another process judges this worker lost and holds its trial back to paused (``fail_worker(dead=True)``)."""

    def __init__(self, url: str, marker: Path) -> None:
        self.url, self.marker = url, marker

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        from tunesmith.storage import worker_id

        if trainer.current_epoch == 1 and not trainer.sanity_checking and not self.marker.exists():
            self.marker.touch()
            held = ts.Study.load("s", self.url).fail_worker(worker_id(), "judged lost (the test's)", dead=True)
            assert [t.state for t in held] == [ts.TrialState.PAUSED], held


class Finalized(CSVLogger):
    """A CSV logger that notes each ``finalize`` status."""

    statuses: list[str] = []  # noqa: RUF012 - the test's record, read after the fit

    def finalize(self, status: str) -> None:
        Finalized.statuses.append(status)
        super().finalize(status)


def test_a_lightning_trial_taken_over_as_it_reports_stops_cleanly_and_goes_on_from_its_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A resumed trial held back to paused by another process (this worker taken for lost) as it ran: its next
    report raises TrialTakenOver in the callback. Lightning ends the fit as for any error there (the loggers
    finalized "failed", its teardown run), nothing of the trial's checkpoint is touched, the trial stays held,
    and the same optimize resumes it from its pause's checkpoint to the end, each step reported once."""
    from tunesmith.pruners import Decision

    class PauseAtOne(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 and trial.last_step == 1 else Decision.CONTINUE

    monkeypatch.setattr(Finalized, "statuses", [])
    url = f"sqlite:///{tmp_path / 'ts.db'}"
    saved: list[bytes] = []

    def objective(trial: ts.Trial) -> float:
        torch.manual_seed(0)
        if trial.is_resumed:  # the pause's checkpoint, the same at each resume: the run taken over wrote nothing
            saved.append(Path(trial.resume_from).read_bytes())
        cb = PruningCallback(trial, checkpoint_dir=tmp_path / "ckpt")
        t = trainer(cb, tmp_path, callbacks=[TakenOverOnce(url, tmp_path / "taken"), cb],
                    logger=Finalized(tmp_path / "logs"))
        train, val = loaders()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.fit(Regression(trial.params["lr"]), train, val, ckpt_path=cb.resume_from, weights_only=True)
        return float(t.callback_metrics["val_loss"])

    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0, pruner=PauseAtOne())
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective, n_trials=1, show_progress=False)
    (trial,) = study.trials
    assert (tmp_path / "taken").exists() and trial.system.n_holds == 1 and trial.system.n_resumes == 2, trial.system
    assert Finalized.statuses == ["failed", "failed", "success"], Finalized.statuses  # paused, taken over, done
    said = [r.getMessage() for r in caplog.records]
    assert any("trial 0 was held back to paused while it ran here (judged lost (the test's))" in m for m in said), said
    assert trial.state is ts.TrialState.COMPLETE, trial.error
    assert sorted(trial.intermediate) == list(range(1, EPOCHS + 1)) and trial.value == trial.intermediate[EPOCHS]
    assert len(saved) == 2 and saved[0] == saved[1]
