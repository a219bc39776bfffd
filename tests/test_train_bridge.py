"""The bridge to a study: reports, pruning, checkpoint attrs, resume of a paused trial, adam_space."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, scripted, split  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.pruners import Decision, Pruner  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, adam_space, checkpoint, objective  # noqa: E402

DATA = split(96)
BASE = TrainConfig(epochs=4, batch_size=16)


class StopAt(Pruner):
    """Answers ``answer`` (prune, or pause) from ``step`` on."""

    def __init__(self, step: int, answer: Decision = Decision.PRUNE) -> None:
        self.step, self.answer = step, answer
        self.pauses = answer is Decision.PAUSE

    def decide(self, trial, trials, direction) -> Decision:
        return self.answer if (trial.last_step or 0) >= self.step else Decision.CONTINUE


def build(params):
    return mlp(hidden=params.get("hidden", 16))


def test_objective_reports_each_epoch_and_stores_checkpoint(tmp_path: Path) -> None:
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True), "hidden": ts.Int(4, 32)}, sampler="random", seed=0)
    study.optimize(objective(build, DATA, study.space, base=BASE, checkpoint_root=tmp_path, metrics=["accuracy"]), n_trials=2)
    for t in study.trials:
        assert t.state is ts.TrialState.COMPLETE, t.error
        assert sorted(t.intermediate) == [1, 2, 3, 4]  # validation k reported as step k
        assert t.value == pytest.approx(min(t.intermediate.values()))
        # a complete trial keeps its best checkpoint only: nothing resumes it
        assert t.attrs["checkpoint"] is None and Path(t.attrs["best_checkpoint"]).is_file()
        assert t.attrs["best_checkpoint"].startswith(str(tmp_path))
        assert {p.name for p in Path(t.attrs["best_checkpoint"]).parent.iterdir()} == {"best.pt", ".study"}
        assert t.attrs["samples_per_s"] > 0 and t.attrs["overfit_at"] in (None, *t.intermediate)  # a reported step
        assert len(t.attrs["curves"]["train_loss"]) == len(t.attrs["curves"]["val_loss"]) == len(t.intermediate)


def test_a_relative_checkpoint_root_stores_paths_that_load_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """objective(..., checkpoint_root="ckpt") stored "ckpt/<study>/trial-0/best.pt" in the
    database: read from another folder (a notebook, evaluate_best in another script) the path
    named no file, and load_weights failed."""
    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    url = f"sqlite:///{tmp_path / 'ft.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, storage=url, name="rel")
    study.optimize(objective(build, DATA, study.space, base=BASE, checkpoint_root="ckpt"), n_trials=1)
    monkeypatch.chdir(tmp_path / "elsewhere")
    best = ts.load_study("rel", url).best_trial
    assert Path(best.attrs["best_checkpoint"]).is_file(), best.attrs["best_checkpoint"]
    assert Path(best.attrs["best_checkpoint"]).is_relative_to(tmp_path / "run" / "ckpt")
    ts.train.load_weights(build(best.params), best.attrs["best_checkpoint"])


def test_a_paused_trial_resumes_after_its_project_folder_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the paths stored absolute, a trial paused under checkpoint_root="ckpt" in a project folder
    that then moved (resumed from the new place, the same relative root) was refused ("not inside the
    trial's own checkpoint folder"), where the relative paths stored before resumed it; and the best.pt
    its checkpoint's history named was the old place's."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    obj = objective(lambda p: mlp(dropout=0.2), DATA, base=BASE, checkpoint_root="ckpt")
    (tmp_path / "a" / "proj").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "proj")
    ref = ts.Study(space, sampler="random", seed=3, name="ref")
    ref.optimize(obj, n_trials=1)
    study = ts.Study(space, sampler="random", seed=3, name="moved", storage=f"sqlite:///{tmp_path / 'ft.db'}")
    trial, paused = pause_and_promote(study, obj, 2)
    assert paused.attrs["checkpoint"].startswith(str(tmp_path / "a" / "proj" / "ckpt"))
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b" / "proj")
    done = study.run_trial(obj, trial)
    assert done.state is ts.TrialState.COMPLETE, done.error
    assert dict(done.intermediate) == dict(ref.trials[0].intermediate) and done.value == ref.trials[0].value
    assert Path(done.attrs["best_checkpoint"]).is_relative_to(tmp_path / "b" / "proj" / "ckpt")
    assert Path(done.attrs["best_checkpoint"]).is_file()


@pytest.mark.parametrize("answer", [Decision.PRUNE, Decision.PAUSE])
def test_a_stopped_trial_keeps_its_loss_curves_for_the_overfitting_graph(tmp_path: Path, answer: Decision) -> None:
    # before: only a complete trial stored attrs["curves"]; a pruned or paused one was drawn as
    # "reported values (no training loss recorded)"
    from tunesmith import plots

    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, pruner=StopAt(2, answer))
    study.optimize(objective(build, DATA, study.space, base=BASE, checkpoint_root=tmp_path), n_trials=1)
    t = study.trials[0]
    assert t.state.value == ("pruned" if answer is Decision.PRUNE else "paused") and sorted(t.intermediate) == [1, 2]
    assert len(t.attrs["curves"]["train_loss"]) == len(t.attrs["curves"]["val_loss"]) == 2 and "overfit_at" in t.attrs
    assert plots.overfitting(t).y_label == "loss"


def test_tuned_adam_config_reaches_the_optimizer(tmp_path: Path) -> None:
    tuned = {"lr": 0.0123, "beta1": 0.81, "beta2": 0.951, "eps": 3e-7, "weight_decay": 0.02,
             "warmup_fraction": 0.0, "schedule": "constant"}
    study = ts.Study(adam_space(), sampler="random", seed=0)
    study.enqueue(tuned)
    seen = []
    grab = type("G", (), {"on_eval": lambda self, tr, r: seen.append(tr.optimizer)})()
    base = TrainConfig(epochs=1, batch_size=72)  # one step over all 72 training samples
    study.optimize(objective(lambda p: mlp(), DATA, base=base, callbacks=[grab], checkpoint_root=tmp_path), n_trials=1)
    opt = seen[0]
    assert isinstance(opt, torch.optim.Adam)
    for g in opt.param_groups:
        assert g["lr"] == tuned["lr"] and g["betas"] == (tuned["beta1"], tuned["beta2"]) and g["eps"] == tuned["eps"]
        assert g["weight_decay"] == (tuned["weight_decay"] if g["role"].endswith("/decay") else 0.0)
    # and the step it took is the step torch's Adam takes with those values
    ref = mlp()
    groups = [{"params": [p for p in ref.parameters() if p.ndim >= 2], "weight_decay": tuned["weight_decay"]},
              {"params": [p for p in ref.parameters() if p.ndim < 2], "weight_decay": 0.0}]
    ref_opt = torch.optim.Adam(groups, lr=tuned["lr"], betas=(tuned["beta1"], tuned["beta2"]), eps=tuned["eps"])
    x, y = DATA[0]
    torch.nn.functional.cross_entropy(ref(x), y).backward()
    ref_opt.step()
    trained = torch.load(study.trials[0].attrs["best_checkpoint"], weights_only=True)["model"]
    for k, v in ref.state_dict().items():
        assert torch.allclose(trained[k], v, atol=1e-7), k


def test_pruned_trial_raises_and_leaves_no_checkpoint(tmp_path: Path) -> None:
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=1, pruner=StopAt(2))
    study.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path), n_trials=1)
    t = study.trials[0]
    assert t.state is ts.TrialState.PRUNED
    assert sorted(t.intermediate) == [1, 2]
    assert t.attrs["checkpoint"] is None and t.attrs.get("best_checkpoint") is None  # nothing resumes it
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


class PauseThenContinue(Pruner):
    """Pauses at the first question, then says go on: what a second question can
    hear when another worker's report lands between the two."""

    pauses = True

    def __init__(self) -> None:
        self.asked = 0

    def decide(self, trial, trials, direction) -> Decision:
        self.asked += 1
        return Decision.PAUSE if self.asked == 1 else Decision.CONTINUE


def test_the_bridge_acts_on_the_one_answer_it_asked_for(tmp_path: Path) -> None:
    pruner = PauseThenContinue()
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, pruner=pruner)
    trial = study.ask()
    record = study.run_trial(objective(build, DATA, base=BASE, checkpoint_root=tmp_path), trial)
    assert pruner.asked == 1 and record.state is ts.TrialState.PAUSED  # not pruned on a second answer


class DivergesAtThirdEval(torch.nn.Module):
    """An MLP whose validation output turns NaN from its 3rd batch in eval mode (the
    2nd validation: the validation set is 2 batches), as in a diverged run."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.evals = mlp(), 0

    def forward(self, x):
        out = self.net(x)
        if not self.training:
            self.evals += 1
            if self.evals >= 3:
                out = out * float("nan")
        return out


@pytest.mark.parametrize("pruner", [None, "median"])
def test_a_diverged_run_stops_and_returns_its_best_value(tmp_path: Path, pruner) -> None:
    study = ts.Study({"lr": ts.Float(1e-3, 1e-2, log=True)}, sampler="random", seed=0, pruner=pruner)
    obj = objective(lambda p: DivergesAtThirdEval(), DATA, base=BASE, checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=1)
    t = study.trials[0]
    assert t.state is ts.TrialState.COMPLETE, t.error  # not failed by report(nan)
    assert sorted(t.intermediate) == [1] and t.attrs["diverged_at"] == 2  # of 4 epochs
    assert t.attrs["stopped_early"] is True
    assert t.value == min(t.intermediate.values())


class PromoteAll(Pruner):
    """Goes on, and promotes every paused trial: the study resumes them."""

    pauses = True

    def decide(self, trial, trials, direction) -> Decision:
        return Decision.CONTINUE

    def promotable(self, trials, direction) -> list[int]:
        return [t.number for t in trials if t.state is ts.TrialState.PAUSED]


def pause_and_promote(study: ts.Study, obj, at: int) -> tuple[ts.Trial, ts.FrozenTrial]:
    """Run a new trial of ``study`` until the pruner pauses it at validation ``at``, then
    let the study resume it; the resumed trial and the paused record."""
    study.pruner = StopAt(at, Decision.PAUSE)
    paused = study.run_trial(obj, study.ask())
    assert paused.state is ts.TrialState.PAUSED and sorted(paused.intermediate) == list(range(1, at + 1))
    study.pruner = PromoteAll()
    trial = study.ask()
    assert trial.number == paused.number and trial.is_resumed
    return trial, paused


def test_paused_trial_resumes_from_its_checkpoint_exactly(tmp_path: Path) -> None:
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    obj = objective(lambda p: mlp(dropout=0.2), DATA, base=BASE, checkpoint_root=tmp_path)
    ref = ts.Study(space, sampler="random", seed=3, name="ref")
    ref.optimize(obj, n_trials=1)

    study = ts.Study(space, sampler="random", seed=3, name="paused")
    trial, _ = pause_and_promote(study, obj, 2)
    value = obj(trial)  # resumed by the study: continues from attrs["checkpoint"]
    assert dict(trial.intermediate) == dict(ref.trials[0].intermediate)
    assert value == ref.trials[0].value


def test_adam_space_names_are_config_fields_with_sensible_priors() -> None:
    space = adam_space()
    assert set(space) <= TrainConfig.field_names()
    assert space["lr"].prior.mode == pytest.approx(1e-3)
    assert space["beta1"].prior.mode == 0.9 and space["beta2"].prior.mode == 0.999
    study = ts.Study(space, sampler="random", seed=0)
    for _ in range(20):
        TrainConfig().with_params(study.ask().params)  # every sample is a valid config
    with pytest.raises(ValueError, match="schedules"):
        adam_space(schedules=["onecycle"])


def test_space_parameter_that_breaks_the_config_is_reported_early() -> None:
    with pytest.raises(ValueError, match="beta1"):
        objective(build, DATA, {"beta1": ts.Float(0.5, 1.5)})


def test_one_torch_thread_inside_parallel_workers() -> None:
    from tunesmith.train import set_threads

    before = torch.get_num_threads()
    seen = []
    th = threading.Thread(target=lambda: (set_threads(None), seen.append(torch.get_num_threads())))
    th.start()
    th.join()
    torch.set_num_threads(before)
    assert seen == [1]


def test_missing_torch_names_the_extra() -> None:
    code = ("import sys\nimport tunesmith\nsys.modules['torch'] = None\ntry:\n    tunesmith.train\n"
            "except AttributeError as e:\n    print(e)\ntry:\n    from tunesmith import train\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(Path(__file__).parent.parent / "src")})
    assert out.stdout.count("pip install 'tunesmith[train]'") == 2, out.stderr


def test_trainer_used_alone_needs_no_study() -> None:
    h = Trainer(mlp(), BASE).fit(*DATA)
    assert len(h.records) == 4


def _pause_then_resume(tmp_path: Path, base: TrainConfig, at: int, edit=None) -> tuple[list[int], str]:
    """Pause a trial at validation ``at``, ``edit(trial)``, resume it: its curve and
    value must equal an uninterrupted run's. Returns the steps reported and the
    checkpoint at the pause."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    obj = objective(lambda p: mlp(dropout=0.2), DATA, base=base, checkpoint_root=tmp_path)
    ref = ts.Study(space, sampler="random", seed=3, name="ref")
    ref.optimize(obj, n_trials=1)
    study = ts.Study(space, sampler="random", seed=3, name="paused")
    trial, record = pause_and_promote(study, obj, at)
    paused = (sorted(record.intermediate), record.attrs["checkpoint"])
    if edit is not None:
        edit(trial)
    value = obj(trial)  # resumed by the study: continues from its checkpoint
    assert dict(trial.intermediate) == dict(ref.trials[0].intermediate)
    assert value == ref.trials[0].value
    return paused


def test_a_trial_paused_between_periodic_checkpoints_resumes_exactly(tmp_path: Path) -> None:
    # checkpoint_every=3 writes no "last" checkpoint at validation 2: the bridge writes one to pause
    base = TrainConfig(epochs=5, batch_size=16, checkpoint_every=3)
    steps, ckpt = _pause_then_resume(tmp_path, base, 2)
    assert steps == [1, 2] and ckpt.endswith("last-000000010.pt")  # 2 epochs x 5 steps


def test_a_resume_from_an_older_checkpoint_skips_what_was_reported(tmp_path: Path) -> None:
    # a worker died between two periodic checkpoints: the trial resumes from the older one and
    # replays validations it had reported; those are not reported twice, the curve stays exact
    def older(trial) -> None:
        latest = Path(trial.record.attrs["checkpoint"])
        trial.set_attr("checkpoint", str(latest.with_name("last-000000010.pt")))  # validation 2

    base = TrainConfig(epochs=6, batch_size=16, keep_last=10)
    steps, ckpt = _pause_then_resume(tmp_path, base, 4, older)
    assert steps == [1, 2, 3, 4] and ckpt.endswith("last-000000020.pt")


def test_a_trial_resumed_below_its_best_pt_deletes_that_best_pt_and_ends_with_its_own_best(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A resumed trial's run deletes the "last" files above the step it resumes from (its record never named
    them), but its best.pt written above that step was set aside into a ``branch-above-step-*`` folder in the
    trial's folder, said twice as a branch to go on with, and left there by every later sweep (it deletes no
    folder in a trial's). Deleted now as those files are; the run's best is made again from its own file."""
    def older(trial) -> None:
        latest = Path(trial.record.attrs["checkpoint"])
        trial.set_attr("checkpoint", str(latest.with_name("last-000000010.pt")))  # validation 2

    with caplog.at_level("WARNING", logger="tunesmith"):
        _pause_then_resume(tmp_path, TrainConfig(epochs=6, batch_size=16, keep_last=10), 4, older)
    (folder,) = tmp_path.glob("paused-*/trial-0")
    assert sorted(p.name for p in folder.iterdir()) == [".study", "best.pt"]  # was also branch-above-step-10-...
    assert not [r for r in caplog.records if "branch this run leaves" in r.getMessage()]
    (ref,) = tmp_path.glob("ref-*/trial-0")
    assert checkpoint.load(folder / "best.pt")["step"] == checkpoint.load(ref / "best.pt")["step"]


@pytest.mark.parametrize("pause", [False, True])
def test_max_resource_is_the_number_of_epochs(tmp_path: Path, pause: bool) -> None:
    # rungs 1 and 2 of 3 epochs: a trial that trained all 3 is never stopped at its last one
    pruner = ts.pruners.ASHA(min_resource=1, max_resource=3, reduction_factor=2, pause=pause)
    study = ts.Study({"lr": ts.Float(1e-3, 3e-1, log=True)}, sampler="random", seed=0, pruner=pruner)
    study.optimize(objective(build, DATA, base=TrainConfig(epochs=3, batch_size=16), checkpoint_root=tmp_path), n_trials=8)
    stopped = [t for t in study.trials if t.state is not ts.TrialState.COMPLETE]
    assert stopped and all(max(t.intermediate) in (1, 2) for t in stopped)
    for t in study.trials:
        assert t.state is not ts.TrialState.FAILED, t.error
        assert sorted(t.intermediate) == list(range(1, len(t.intermediate) + 1))
        if max(t.intermediate) == 3:
            assert t.state is ts.TrialState.COMPLETE


@pytest.mark.parametrize("lost", ["file", "folder"])
def test_a_missing_checkpoint_is_said_and_the_run_starts_over(tmp_path: Path, caplog: pytest.LogCaptureFixture, lost: str) -> None:
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    obj = objective(lambda p: mlp(dropout=0.2), DATA, base=BASE, checkpoint_root=tmp_path)
    ref = ts.Study(space, sampler="random", seed=3, name="ref")
    ref.optimize(obj, n_trials=1)
    study = ts.Study(space, sampler="random", seed=3, name="paused")
    trial, _ = pause_and_promote(study, obj, 2)
    gone = Path(trial.record.attrs["checkpoint"])  # e.g. written on another machine
    shutil.rmtree(gone.parent) if lost == "folder" else gone.unlink()
    with caplog.at_level("WARNING", logger="tunesmith"):
        value = obj(trial)
    assert "checkpoint" in caplog.text and "is missing" in caplog.text and "steps 1-2" in caplog.text
    assert dict(trial.intermediate) == dict(ref.trials[0].intermediate) and value == ref.trials[0].value


def test_trials_get_their_own_folder_under_the_base_checkpoint_dir(tmp_path: Path) -> None:
    base = TrainConfig(epochs=2, batch_size=16, checkpoint_dir=str(tmp_path / "runs"))
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s")
    study.optimize(objective(build, DATA, base=base), n_trials=2)
    folders = {Path(t.attrs["best_checkpoint"]).parent for t in study.trials}
    s = checkpoint.study_folder(tmp_path / "runs", "s", study.copy_id)
    assert folders == {s / "trial-0", s / "trial-1"} and s.parent == tmp_path / "runs"


def test_in_ray_memory_mode_each_study_keeps_its_checkpoint_folder(tmp_path: Path) -> None:
    # what a Ray actor runs for an in-memory study: the objective sees the study's name there too
    from tunesmith.execution.ray_worker import EvalWorker, StudySpec

    base = TrainConfig(epochs=1, batch_size=16, checkpoint_dir=str(tmp_path))
    obj = objective(build, DATA, base=base)
    folders, expected = set(), set()
    for name in ("A", "B"):
        study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, name=name, sampler="random", seed=0)
        out = EvalWorker(StudySpec.of(study), obj, (), 0).evaluate(study.ask().record)
        folders.add(Path(out.attrs["best_checkpoint"]).parent)
        expected.add(checkpoint.study_folder(tmp_path, name, study.copy_id) / "trial-0")
    assert folders == expected


def test_min_lr_and_lr_both_searched_are_checked_per_trial(tmp_path: Path) -> None:
    # midpoints 1e-2 (min_lr) > 1e-3 (lr): no error at set-up, since some trials are valid
    space = {"lr": ts.Float(1e-4, 1e-2, log=True), "min_lr": ts.Float(1e-3, 1e-1, log=True)}
    base = TrainConfig(epochs=1, batch_size=16, schedule="cosine")
    obj = objective(lambda p: mlp(), DATA, space, base=base, checkpoint_root=tmp_path)
    study = ts.Study(space, sampler="random", seed=0)
    study.enqueue({"lr": 1e-3, "min_lr": 2e-3})
    with pytest.raises(ValueError, match=r"min_lr \(0\.002\) > TrainConfig\.lr \(0\.001\)"):
        study.optimize(obj, n_trials=1, catch=())
    study.enqueue({"lr": 5e-3, "min_lr": 1e-3})
    study.optimize(obj, n_trials=1, catch=())
    assert study.trials[-1].state.name == "COMPLETE"


ADAPT = {"lr_adapt": ts.Categorical([None, "hypergradient"]), "hyper_lr": ts.Float(1e-4, 1e-2, log=True)}


def test_a_rule_binding_two_searched_fields_is_checked_per_trial(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # hyper_lr alone on the base (lr_adapt None) breaks a rule, yet lr_adapt="hypergradient" trials are valid
    base = TrainConfig(epochs=1, batch_size=16)
    with caplog.at_level("WARNING", logger="tunesmith"):
        obj = objective(lambda p: mlp(), DATA, ADAPT, base=base, checkpoint_root=tmp_path)
    assert "sampled configurations of the space give an invalid TrainConfig" in caplog.text and "when=" in caplog.text
    study = ts.Study(ADAPT, sampler="random", seed=0)
    study.enqueue({"lr_adapt": None, "hyper_lr": 1e-3})
    with pytest.raises(ValueError, match=r"(?s)hyper_lr is set but lr_adapt is None.*lr_adapt=None, hyper_lr=0\.001.*when="):
        study.optimize(obj, n_trials=1, catch=())
    study.enqueue({"lr_adapt": "hypergradient", "hyper_lr": 1e-3})
    study.optimize(obj, n_trials=1, catch=())
    assert study.trials[-1].state.name == "COMPLETE"


def test_the_conditional_space_draws_no_invalid_pair(caplog: pytest.LogCaptureFixture) -> None:
    space = {**ADAPT, "hyper_lr": ts.Float(1e-4, 1e-2, log=True, when={"lr_adapt": ["hypergradient"]})}
    with caplog.at_level("WARNING", logger="tunesmith"):
        objective(build, DATA, space)
    assert caplog.text == ""


@pytest.mark.parametrize("space, match", [
    ({"lr": ts.Float(-1.0, 1.0)}, "space parameter 'lr'.*lr must be a number > 0"),  # midpoint invalid on its own
    ({"warmup_steps": ts.Int(1, 10), "warmup_fraction": ts.Float(0.1, 0.2)},  # every pair breaks the rule
     "no sampled configuration .* warmup_steps or warmup_fraction, not both"),
])
def test_a_space_no_trial_can_satisfy_is_refused_at_set_up(space, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        objective(build, DATA, space)


def test_a_parameter_spelt_like_a_field_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``learning_rate`` is not ``lr``: the trainer ignores it, so every trial trains alike.
    Said once per name, at set-up when the space is given, else at the first trial; a
    parameter that only build_model reads (``hidden``) is not warned about."""
    space = ts.Space({"learning_rate": ts.Float(1e-3, 1e-1, log=True), "weight_decays": ts.Float(1e-5, 1e-2, log=True),
                      "hidden": ts.Int(4, 8)})
    for given in (space, None):
        caplog.clear()
        study = ts.Study(space, sampler="random", seed=0)
        with caplog.at_level("WARNING", logger="tunesmith"):
            study.optimize(objective(build, DATA, given, base=TrainConfig(epochs=1, batch_size=16),
                                     checkpoint_root=tmp_path), n_trials=2)
        said = [r.getMessage() for r in caplog.records if "not a TrainConfig field" in r.getMessage()]
        assert len(said) == 2, said
        assert "'learning_rate'" in said[0] and "did you mean 'lr'" in said[0]
        assert "'weight_decays'" in said[1] and "did you mean 'weight_decay'" in said[1]
        assert not any("'hidden'" in m for m in said)


def test_searched_settings_the_trial_s_optimizer_lacks_are_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: nesterov and amsgrad searched beside the optimizer were silently ignored by the
    optimizers without them (Adam has no nesterov, SGD no amsgrad): trials differing only in them
    trained alike. Now said once per optimizer, with the conditional space that avoids it."""
    space = ts.Space({"optimizer": ts.Categorical(["adam", "sgd"]), "nesterov": ts.Categorical([False, True]),
                      "amsgrad": ts.Categorical([False, True]), "momentum": ts.Float(0.5, 0.9)})
    study = ts.Study(space, sampler="random", seed=0)
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(objective(build, DATA, space, base=TrainConfig(epochs=1, batch_size=16),
                                 checkpoint_root=tmp_path), n_trials=8)
    assert {t.params["optimizer"] for t in study.trials} == {"adam", "sgd"}
    said = [r.getMessage() for r in caplog.records if "no effect under optimizer" in r.getMessage()]
    assert len(said) == 2, said
    adam = next(m for m in said if "optimizer='adam'" in m)
    sgd = next(m for m in said if "optimizer='sgd'" in m)
    assert "'nesterov', 'momentum' have no effect" in adam and "nesterov: sgd only" in adam
    assert "when={'optimizer': ['sgd']}" in adam
    assert "'amsgrad' has no effect" in sgd and "when={'optimizer': ['adam', 'adamw']}" in sgd


def test_a_monitor_the_study_optimizes_the_wrong_way_fails_its_trials(tmp_path: Path) -> None:
    """A study that minimizes accuracy (the default direction) picked the worst model as
    its best, silently; each trial now fails before it trains, saying which direction."""
    space = ts.Space({"lr": ts.Float(1e-3, 1e-1, log=True)})
    for direction, monitor in (("minimize", "accuracy"), ("maximize", "val_loss")):
        study = ts.Study(space, direction=direction, sampler="random", seed=0)
        study.optimize(objective(build, DATA, space, base=TrainConfig(epochs=1, batch_size=16), metrics=["accuracy"],
                                 monitor=monitor, checkpoint_root=tmp_path), n_trials=1)
        t = study.trials[0]
        assert t.state is ts.TrialState.FAILED and t.intermediate == {}
        assert f"monitor {monitor!r}" in (t.error or "") and "direction=" in (t.error or "")
    study = ts.Study(space, direction="maximize", sampler="random", seed=0)
    study.optimize(objective(build, DATA, space, base=TrainConfig(epochs=1, batch_size=16), metrics=["accuracy"],
                             monitor="accuracy", checkpoint_root=tmp_path), n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error
    neg = {"neg_log_loss": lambda out, y: -float(torch.nn.functional.cross_entropy(out, y))}
    study = ts.Study(space, direction="maximize", sampler="random", seed=0)  # a negated loss: not judged
    study.optimize(objective(build, DATA, space, base=TrainConfig(epochs=1, batch_size=16), metrics=neg,
                             monitor="neg_log_loss", checkpoint_root=tmp_path), n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error


def test_fold_racing_on_a_trainer_that_reports_epochs_fails_its_trials(tmp_path: Path) -> None:
    """pruner="folds" compares the mean over folds 1..k; the trainer without folds= reports a
    validation loss per epoch, so fold racing stopped every trial whose first epoch was behind
    the best's first epoch, silently. Each trial now fails before it trains, naming the pruners
    to use; with folds= (one report per fold) fold racing runs as before."""
    space = ts.Space({"lr": ts.Float(1e-3, 1e-1, log=True)})
    study = ts.Study(space, direction="minimize", sampler="random", seed=0, pruner="folds")
    study.optimize(objective(build, DATA, space, base=TrainConfig(epochs=2, batch_size=16), checkpoint_root=tmp_path),
                   n_trials=2)
    for t in study.trials:
        assert t.state is ts.TrialState.FAILED and t.intermediate == {}
        assert "fold racing" in (t.error or "") and "folds=" in (t.error or "") and "'asha'" in (t.error or "")
    study = ts.Study(space, direction="minimize", sampler="random", seed=0, pruner="folds")
    pool = (torch.cat([DATA[0][0], DATA[1][0]]), torch.cat([DATA[0][1], DATA[1][1]]))
    study.optimize(objective(build, pool, space, base=TrainConfig(epochs=1, batch_size=16), folds=2,
                             checkpoint_root=tmp_path), n_trials=2)
    assert all(t.state is not ts.TrialState.FAILED for t in study.trials), [t.error for t in study.trials]


def test_a_monitor_nothing_computes_is_refused_at_set_up() -> None:
    with pytest.raises(ValueError, match="monitor 'acc' is not computed.*did you mean 'accuracy'"):
        objective(build, DATA, base=BASE, metrics=["accuracy"], monitor="acc")
    with pytest.raises(ValueError, match=r"monitor 'accuracy' is not computed.*metrics= \(here \[\]\)"):
        objective(build, DATA, base=BASE, monitor="accuracy")


def test_a_decay_epochs_range_beyond_the_run_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """adam_space()'s decay_epochs (1..10) with 3-epoch trials: most step-decay trials
    never decayed, silently."""
    with caplog.at_level("WARNING", logger="tunesmith"):
        objective(build, DATA, adam_space(), base=TrainConfig(epochs=3))
    assert "'decay_epochs' reaches 10 but each trial trains 3 epoch(s)" in caplog.text
    assert "adam_space(decay_epochs=(1, 2))" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        objective(build, DATA, adam_space(decay_epochs=(1, 2)), base=TrainConfig(epochs=3))
    assert "decay_epochs" not in caplog.text
    caplog.clear()  # for 1- and 2-epoch trials it said adam_space(decay_epochs=(1, 1)), which adam_space refuses
    with caplog.at_level("WARNING", logger="tunesmith"):
        objective(build, DATA, adam_space(), base=TrainConfig(epochs=2))
    assert "adam_space(decay_epochs=" not in caplog.text
    adam_space(schedules=["constant", "cosine", "exponential"])  # what it says instead is accepted
    assert "adam_space(schedules=['constant', 'cosine', 'exponential'])" in caplog.text


def test_a_dict_as_base_is_refused_with_the_train_config_to_write() -> None:
    """base={"epochs": 2} failed each trial with "'dict' object has no attribute 'backbone_lr'"."""
    with pytest.raises(TypeError, match=r"^base must be a TrainConfig, got dict; write base=TrainConfig\(epochs=2\)$"):
        objective(build, DATA, base={"epochs": 2})


@pytest.mark.parametrize("folds", [None, 2])
def test_a_decay_epochs_range_beyond_the_run_is_warned_about_without_space(caplog: pytest.LogCaptureFixture,
                                                                          tmp_path: Path, folds: int | None) -> None:
    """The README's objective(build_model, data, base=TrainConfig(epochs=10)), no space=: each trial said only
    "lower decay_epochs (or decay_steps)", a range the user never set (adam_space's default reaches the
    run's epochs). The study's space is checked at the first trial, once (k-fold objectives too)."""
    space = adam_space(schedules=("step",), decay_epochs=(2, 3))
    study = ts.Study(space, direction="minimize", sampler="random", seed=0)
    with caplog.at_level("WARNING", logger="tunesmith"):
        data = DATA if folds is None else (torch.cat([DATA[0][0], DATA[1][0]]), torch.cat([DATA[0][1], DATA[1][1]]))
        study.optimize(objective(build, data, base=TrainConfig(epochs=3, batch_size=32), checkpoint_root=tmp_path,
                                 folds=folds), n_trials=2)
    assert caplog.text.count("'decay_epochs' reaches 3 but each trial trains 3 epoch(s)") == 1
    assert "adam_space(decay_epochs=(1, 2))" in caplog.text


def test_a_searched_range_whose_bound_is_invalid_is_warned_about_at_set_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: beta2=(0.9, 1.0) passed set-up in silence (random probes never land on a bound), and a
    trial proposed at 1.0 failed."""
    with caplog.at_level("WARNING", logger="tunesmith"):
        objective(lambda p: mlp(), DATA, adam_space(beta2=(0.9, 1.0), decay_epochs=(1, 3)), checkpoint_root=tmp_path)
    assert "give an invalid TrainConfig (TrainConfig.beta2 must be in [0, 1), got 1.0)" in caplog.text
    assert "beta2=1.0 breaks it: narrow its range" in caplog.text


def test_a_checkpoint_root_with_a_tilde_is_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: checkpoint_root="~/ck" put every trial's checkpoints in a folder named "~" in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    study = ts.Study({"lr": ts.Float(1e-3, 1e-2)}, sampler="random", seed=0)
    study.optimize(objective(lambda p: mlp(), DATA, base=TrainConfig(epochs=1, batch_size=16), checkpoint_root="~/ck"),
                   n_trials=1)
    best = Path(study.trials[0].attrs["best_checkpoint"])
    assert best.is_file() and (tmp_path / "home" / "ck") in best.parents and not (tmp_path / "~").exists()


def test_a_model_built_once_and_returned_to_every_trial_is_refused(tmp_path: Path) -> None:
    """Before: the second trial trained on from the first trial's weights (its first validation loss was
    already the first trial's last), and the study compared runs of unequal length, silently."""
    shared = mlp()
    study = ts.Study({"lr": ts.Float(1e-3, 1e-2)}, sampler="random", seed=0)
    study.optimize(objective(lambda p: shared, DATA, base=TrainConfig(epochs=1, batch_size=16), checkpoint_root=tmp_path),
                   n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAILED"]
    assert "build_model returned a model it had returned before" in (study.trials[1].error or "")


def test_a_copy_under_the_same_name_in_another_storage_keeps_its_checkpoints_apart(tmp_path: Path) -> None:
    """The copy shared the study's checkpoint folder (named after the study): its trial 1
    starting fresh deleted the paused trial 1 of the study it was copied from, and a copied
    paused trial resumed from files the other study went on writing. A copy (or an import) now
    has a folder of its own (and its copied paused trial refuses the other's files)."""
    from tunesmith.study.manage import import_study

    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    a = ts.Study(space, sampler="random", seed=0, name="s", storage=f"sqlite:///{tmp_path / 'a.db'}",
                 pruner=StopAt(1, Decision.PAUSE))
    run = objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ckpt")
    a.optimize(run, n_trials=1)
    b = a.copy(storage=f"sqlite:///{tmp_path / 'b.db'}")
    a.optimize(run, n_trials=1)  # trial 1 of the study pauses, as trial 0 did
    paused = [Path(a.trials[n].attrs["checkpoint"]) for n in (0, 1)]
    assert all(p.is_file() for p in paused)
    b.pruner = StopAt(99)  # the copy's trial 1 runs to the end
    b.optimize(run, n_trials=1)
    assert b.trials[1].state is ts.TrialState.COMPLETE and all(p.is_file() for p in paused)  # before: trial-1 deleted
    assert Path(b.trials[1].attrs["best_checkpoint"]).parent.parent != paused[1].parent.parent
    from tunesmith.study.trial import Trial
    from tunesmith.train import retention

    copied = b.trials[0]  # paused in the study, copied paused: promoted in the copy, it refuses the study's files
    promoted = Trial(b, copied.replace(system=dataclasses.replace(copied.system, resumed_step=1)))
    with pytest.raises(checkpoint.CheckpointError, match="a copy of a study .* has a folder of its own"):
        retention.to_resume(promoted, retention.trial_folder(tmp_path / "ckpt", promoted))
    c = import_study({"study": {"name": "s", "direction": "minimize", "space": a.space.to_dict()}, "trials": []},
                     f"sqlite:///{tmp_path / 'c.db'}")
    c.optimize(run, n_trials=1)
    assert all(p.is_file() for p in paused)
    assert Path(c.trials[0].attrs["best_checkpoint"]).parent.parent not in {paused[0].parent.parent,
                                                                            Path(b.trials[1].attrs["best_checkpoint"]).parent.parent}
    assert len({a.copy_id, b.copy_id, c.copy_id} - {None}) == 3


def _made_before_ids(db: Path, name: str, **kwargs: object) -> ts.Study:
    """Study ``name`` of SQLite file ``db`` as an earlier tunesmith made it: no id in its settings."""
    import sqlite3

    with sqlite3.connect(db) as con:
        con.execute("UPDATE ts_studies SET config = json_remove(config, '$.copy_id') WHERE name = ?", (name,))
    return ts.Study.load(name, f"sqlite:///{db}", **kwargs)


def _promoted(study: ts.Study, number: int = 0) -> ts.Trial:
    """Its paused trial ``number``, as the study resumes it."""
    from tunesmith.study.trial import Trial

    paused = ts.load_study(study.name, study.storage).trials[number]
    return Trial(study, paused.replace(system=dataclasses.replace(paused.system, resumed_step=1)))


def test_two_studies_of_one_name_keep_their_checkpoints_apart(tmp_path: Path) -> None:
    """Two unrelated studies named "s" (two projects, two databases; or one deleted and made again)
    with one checkpoint root shared the folder <root>/s-<hash>: a new trial 0 of one emptied the
    other's trial-0, its paused trial's checkpoints lost. Each study now has an id of its own,
    hashed into its folder."""
    from tunesmith.train import retention

    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    run = objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ckpt")
    a, b = (ts.Study(space, sampler="random", seed=seed, name="s", storage=f"sqlite:///{tmp_path / db}",
                     pruner=StopAt(1, Decision.PAUSE)) for seed, db in ((0, "a.db"), (1, "b.db")))
    a.optimize(run, n_trials=1)
    paused = Path(a.trials[0].attrs["checkpoint"])
    b.pruner = StopAt(99)
    b.optimize(run, n_trials=1)  # b's trial 0 runs to the end
    assert b.trials[0].state is ts.TrialState.COMPLETE and paused.is_file()  # before: deleted at b's start
    assert retention.to_resume(_promoted(a), paused.parent) == str(paused)
    deleted = b.trials[0]
    b.delete()  # its handle's trials are then refused (StudyNotFound)
    again = ts.Study(space, sampler="random", seed=2, name="s", storage=f"sqlite:///{tmp_path / 'b.db'}")
    again.optimize(run, n_trials=1)
    folders = {Path(t.attrs["best_checkpoint"]).parent.parent for t in (deleted, again.trials[0])}
    assert len(folders | {paused.parent.parent}) == 3 and paused.is_file()


def test_two_studies_of_one_name_made_before_ids_neither_empty_nor_resume_from_each_other_s_folder(
    tmp_path: Path,
) -> None:
    """Two studies named "s" made before studies had ids (two databases) with one checkpoint root
    share the folder <root>/s-<hash>, where such a study finds its checkpoints. A new trial 0 of
    one emptied the other's trial-0 (its paused or complete trial's files lost), then paused a
    trial there that the other resumed from, silently. A trial of one now refuses to start in (and
    to resume from) a trial folder the other marked as its own; a folder written before marks were
    is still taken."""
    from tunesmith.train import retention

    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    run = objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ckpt")
    for db in ("a.db", "b.db"):
        ts.Study(space, sampler="random", seed=0, name="s", storage=f"sqlite:///{tmp_path / db}")
    a, b = (_made_before_ids(tmp_path / db, "s", pruner=StopAt(1, Decision.PAUSE)) for db in ("a.db", "b.db"))
    assert a.copy_id is None and b.copy_id is None
    a.optimize(run, n_trials=1)
    paused = Path(a.trials[0].attrs["checkpoint"])
    folder = retention.trial_folder(tmp_path / "ckpt", _promoted(a))
    assert paused.parent == folder == checkpoint.study_folder(tmp_path / "ckpt", "s") / "trial-0"  # as before
    b.optimize(run, n_trials=1)
    assert b.trials[0].state is ts.TrialState.FAILED and paused.is_file()  # before: emptied, then b's paused
    assert "refusing to start in" in (b.trials[0].error or "") and "its own checkpoint_root" in (b.trials[0].error or "")
    assert retention.to_resume(_promoted(a), folder) == str(paused)
    (folder / retention.OWNER).write_text(f"created {b.created!r}\n")  # as b would have left it
    with pytest.raises(checkpoint.CheckpointError, match="another study named 's' .* Give each study its own checkpoint_root"):
        retention.to_resume(_promoted(a), folder)
    (folder / retention.OWNER).unlink()  # as written before folders were marked: taken
    assert retention.to_resume(_promoted(a), folder) == str(paused)


@pytest.mark.parametrize("rounded_for", ["the database", "a role"])
def test_a_paused_trial_resumes_in_another_process_when_postgresql_rounds_the_creation_time(
    tmp_path: Path, pg_server: object, rounded_for: str
) -> None:
    """PostgreSQL 11 and older (or extra_float_digits = 0 set for a database or a role) print a
    double with 15 digits: the process that created the study marked its trials' folders with
    the creation time as it had it, a process reading it rounded refused to resume the study's own
    paused trials ("another study named 's' wrote it"): they failed."""
    import psycopg

    from tunesmith.study.trial import Trial
    from tunesmith.train import retention

    db = "rounded_" + rounded_for.split()[-1]
    url = pg_server.create_database(db)  # type: ignore[attr-defined]
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:  # type: ignore[attr-defined]
        if rounded_for == "the database":
            conn.execute(f"ALTER DATABASE {db} SET extra_float_digits = 0")
        else:  # the workers' role reads 15 digits, the creator's 17
            conn.execute("CREATE ROLE rounding LOGIN SUPERUSER")
            conn.execute("ALTER ROLE rounding SET extra_float_digits = 0")
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, name="s", storage=url,
                     pruner=StopAt(1, Decision.PAUSE))
    study.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path), n_trials=1)
    other = ts.load_study("s", url if rounded_for == "the database" else url.replace("//postgres@", "//rounding@"))
    assert rounded_for == "a role" or other.created == study.created  # what it holds, in both processes
    paused = other.trials[0]
    trial = Trial(other, paused.replace(system=dataclasses.replace(paused.system, resumed_step=1)))
    assert retention.to_resume(trial, retention.trial_folder(tmp_path, trial)) == paused.attrs["checkpoint"]


def _mlp16(params):
    return mlp(hidden=16, dropout=0.2)


def _mlp32(params):
    return mlp(hidden=32, dropout=0.2)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_study_reopened_with_another_model_keeps_its_paused_trial(tmp_path: Path, executor: str) -> None:
    """Before: the promoted trial failed with a CheckpointError ("written for another model architecture")
    and its checkpoints were deleted, so its training was lost for a mistake in build_model that is
    fixed by passing the one it was paused with. Now the trial stays paused with its files, optimize
    stops saying what differs, and the model it was paused with resumes it exactly."""
    db = f"sqlite:///{tmp_path / 's.db'}"
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    paused_with = objective(_mlp16, DATA, base=BASE, checkpoint_root=tmp_path / "ckpt")
    study = ts.Study(space, sampler="random", seed=3, name="s", storage=db, pruner=StopAt(2, Decision.PAUSE))
    study.optimize(paused_with, n_trials=1)
    folder = Path(study.trials[0].attrs["checkpoint"]).parent
    files = {p.name: p.read_bytes() for p in folder.iterdir()}

    changed = objective(_mlp32, DATA, base=BASE, checkpoint_root=tmp_path / "ckpt")
    reopened = ts.Study.load("s", db, pruner=PromoteAll())
    jobs = {"n_jobs": 2} if executor == "process" else {}  # each new worker resumed it again, died, and was replaced
    with pytest.raises(ts.ResumeRefused, match=r"trial 0 cannot resume: .*shapes differ: 0.bias \[16\] in the "
                                               r"checkpoint, \[32\] here.* It stays paused, its checkpoints kept in "
                                               r".* study.tell\(0, state='pruned'\)"):
        reopened.optimize(changed, n_trials=1, executor=executor, **jobs)
    kept = ts.Study.load("s", db).trials[0]  # (the other worker may have run a new trial meanwhile)
    assert kept.state is ts.TrialState.PAUSED and sorted(kept.intermediate) == [1, 2]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    # each refused try counts a resume: one, or with two workers a second one that took it before the run stopped
    assert kept.system.n_resumes in ((1, 2) if executor == "process" else (1,))

    reopened.optimize(paused_with, n_trials=1)  # the model it was paused with
    ref = ts.Study(space, sampler="random", seed=3, name="ref")
    ref.optimize(paused_with, n_trials=1)
    resumed = ts.Study.load("s", db).trials[0]
    assert resumed.state is ts.TrialState.COMPLETE and resumed.system.n_resumes == kept.system.n_resumes + 1
    assert dict(resumed.intermediate) == dict(ref.trials[0].intermediate) and resumed.value == ref.trials[0].value


def test_a_resume_refused_by_an_objective_of_a_trial_not_resumed_fails_it() -> None:
    def objective(trial):
        raise ts.ResumeRefused("no checkpoint fits")

    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is ts.TrialState.FAILED and "no checkpoint fits" in study.trials[0].error


def test_a_trial_stores_where_overfitting_began_after_its_best_step(tmp_path: Path) -> None:
    # the validation loss rises from epoch 4 (the live signal fires at 6 and 7), falls to its best at
    # epoch 9, then rises for good: the stored "overfit at" is 10, after the best step, not 4
    from tunesmith import plots

    loss = scripted([1.0, 0.8, 0.7, 0.72, 0.76, 0.8, 0.85, 0.6, 0.55, 0.6, 0.68, 0.78, 0.9])
    study = ts.Study({"lr": ts.Float(0.01, 0.02)}, sampler="random", seed=0)
    study.optimize(objective(build, split(64), study.space, base=TrainConfig(epochs=13, batch_size=16), loss=loss,
                             checkpoint_root=tmp_path), n_trials=1)
    t = study.trials[0]
    assert t.state is ts.TrialState.COMPLETE, t.error
    assert t.attrs["best_step"] == 9 and t.attrs["overfit_at"] == 10
    assert list(plots.overfitting(t).find("overfitting").x) == [10, 11, 12, 13]


def _killed_as_it_reports(trial, folder: str, at: int):
    """The bridge's objective, its process SIGKILLed once as trial 0's report of validation ``at`` begins:
    after the trainer saved that validation's checkpoint and the bridge took it, before anything of the
    report was written."""
    report = trial.report

    def killing(value, step=None, **kwargs):
        if trial.number == 0 and step == at and not trial.is_resumed:
            try:
                os.close(os.open(Path(folder) / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return report(value, step, **kwargs)

    trial.report = killing
    return objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=Path(folder) / "ck")(trial)


def test_a_worker_killed_between_the_bridge_s_checkpoint_and_its_report_resumes_with_every_report(
        tmp_path: Path, shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The bridge recorded a validation's checkpoint, then (a second write) its report: a worker killed
    between the two left the trial to resume from the newer checkpoint with that validation's report
    missing for good (the pruner's rung, the curve). Both are now one write: the trial resumes from the
    checkpoint of its last report, trains the lost validation again and reports every one. (The kill lands
    before that write; test_a_worker_killed_as_it_records_a_checkpoint_... kills just after it commits.)"""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    ref = ts.Study(space, name="ref")
    ref.enqueue({"lr": 0.05})
    ref.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ref"), n_trials=1)
    pruner = ts.pruners.ASHA(min_resource=2, max_resource=BASE.epochs, reduction_factor=3, pause=True)  # no stop before 2
    study = ts.Study(space, storage=shared_storage_url, name="k", pruner=pruner, heartbeat_interval=0.5,
                     requeue_failed=True)
    for lr in (0.05, 0.01, 0.02):
        study.enqueue({"lr": lr})
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(functools.partial(_killed_as_it_reports, folder=str(tmp_path), at=2), n_trials=3, n_jobs=2,
                       executor="process")
    # never paused before: the log said it "had been resumed from a checkpoint"
    assert "trial 0 paused to go on from its checkpoint (never paused before)" in caplog.text
    assert (tmp_path / "killed").exists()
    killed = study.trials[0]
    assert len(study.trials) == 3 and not study.trials_in("failed") and not study.trials_in("waiting")
    assert killed.system.n_holds == 1 and killed.state is ts.TrialState.COMPLETE, killed
    assert dict(killed.intermediate) == dict(ref.trials[0].intermediate)  # validation 2 reported too
_KILLED_AS_IT_RECORDS_A_CHECKPOINT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import tunesmith as ts
from tunesmith.storage import SQLStorage
from test_train_bridge import BASE, DATA, PromoteAll, build

class KilledAtTheSecondCheckpoint(SQLStorage):
    seen = set()

    def update_trial(self, study_id, trial, **kwargs):
        done = super().update_trial(study_id, trial, **kwargs)
        if trial.state is ts.TrialState.RUNNING and trial.attrs.get("checkpoint"):
            self.seen.add(trial.attrs["checkpoint"])
            if len(self.seen) == 2:  # the write that recorded validation 2's checkpoint has committed
                os.kill(os.getpid(), signal.SIGKILL)
        return done

url, root = sys.argv[1:]
study = ts.Study({{"lr": ts.Float(1e-3, 1e-1, log=True)}}, storage=KilledAtTheSecondCheckpoint(url), name="k",
                 sampler="random", seed=3, pruner=PromoteAll())
study.optimize(ts.train.objective(build, DATA, base=BASE, checkpoint_root=root), n_trials=1)
"""


def test_a_worker_killed_as_it_records_a_checkpoint_resumes_without_a_report_missing(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The bridge recorded each validation's checkpoint (set_attr), then its report: two writes. A process
    SIGKILLed between them left a checkpoint one validation ahead of the reports, and the resumed trial never
    reported that validation. Now one write records both: resumed, its reports equal an uninterrupted run's.
    (The kill lands just after the write commits; the test above kills before it, in a worker process.)"""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    script = _KILLED_AS_IT_RECORDS_A_CHECKPOINT.format(tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", script, url, str(tmp_path / "ck")], env=subprocess_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="k", load_if_exists=True,
                     sampler="random", seed=3, pruner=PromoteAll())
    (killed,) = study.trials
    assert killed.state is ts.TrialState.RUNNING and killed.attrs["checkpoint"]
    held = study.fail_worker(killed.worker, "worker process died (exit code -9)", dead=True, requeue=True)
    assert [t.state for t in held] == [ts.TrialState.PAUSED]  # its process is dead: goes on from its checkpoint
    study.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ck"), n_trials=0)

    ref = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=3, name="ref", pruner=PromoteAll())
    ref.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ref"), n_trials=1)
    (resumed,) = study.trials
    assert resumed.state is ts.TrialState.COMPLETE and resumed.system.n_resumes == 1, resumed
    assert dict(resumed.intermediate) == dict(ref.trials[0].intermediate)  # was {1, 3, 4}: validation 2 lost
    assert resumed.value == ref.trials[0].value


def _interrupted_before_its_report(trainer: Trainer, record, folder: Path) -> None:
    """A callback run before the bridge's report: a real SIGINT to this process, once, at validation 2, after
    the trainer saved its checkpoint and before the report that records it."""
    if record.step == 2 * trainer.steps_per_epoch and not (folder / "interrupted").exists():
        (folder / "interrupted").touch()
        os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_between_a_validation_s_checkpoint_and_its_report_keeps_the_checkpoint_the_record_names(
        tmp_path: Path, shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The trainer deleted the older "last" checkpoint after the validation's callbacks however they ended: a
    Ctrl-C in them before the report was written left the trial paused (an interrupted trial with a checkpoint
    goes on) naming validation 1's file, deleted; the next optimize trained it again from the start. The older
    file is deleted only once the callbacks ran (or paused or pruned the trial): the trial resumes from it."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    pruner = ts.pruners.ASHA(min_resource=2, max_resource=BASE.epochs, reduction_factor=3, pause=True)
    study = ts.Study(space, storage=shared_storage_url, name="k", pruner=pruner, sampler="random", seed=3)
    obj = objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck",
                    callbacks=[functools.partial(_interrupted_before_its_report, folder=tmp_path)])
    study.optimize(obj, n_trials=1)
    (paused,) = study.trials
    assert (tmp_path / "interrupted").exists() and paused.state is ts.TrialState.PAUSED, paused
    assert sorted(paused.intermediate) == [1] and Path(paused.attrs["checkpoint"]).is_file(), paused.attrs
    with caplog.at_level("WARNING", logger="tunesmith"):
        study.optimize(obj, n_trials=0)
    assert "is missing" not in caplog.text
    ref = ts.Study(space, name="ref", pruner=pruner, sampler="random", seed=3)
    ref.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ref"), n_trials=1)
    (resumed,) = study.trials
    assert resumed.state is ts.TrialState.COMPLETE and resumed.system.resumed_step == 1, resumed
    assert dict(resumed.intermediate) == dict(ref.trials[0].intermediate)


def _refuses_writes_before_its_report(trainer: Trainer, record, folder: Path) -> None:
    """A callback run before the bridge's report: at the resumed run's first validation, this process may no
    longer grow a file (``ulimit -f``: the database's writes fail with a disk I/O error); its parent may."""
    import resource

    if record.step == 3 * trainer.steps_per_epoch and not (folder / "limited").exists():
        (folder / "limited").touch()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))


def test_a_resumed_trial_whose_report_the_storage_refused_keeps_the_checkpoints_it_is_held_with(
        tmp_path: Path) -> None:
    """A worker process whose database refused a resumed trial's report (its writes over a file size limit, as a
    full disk or a database outage past retry_window refuse them) could not end the trial; its parent, which can
    write, held the trial to go on from its checkpoint. The bridge had deleted the trial's folder as a failed
    trial's and the trainer its recorded checkpoint: the next optimize trained it again from the start. Both
    leave the files now: the trial resumes from the checkpoint it was held with. The error the run raised said
    the trial "stays running" and to tell it failed: it says the parent paused it since."""
    from tunesmith.exceptions import StorageError

    url = f"sqlite:///{tmp_path / 'k.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="k", sampler="random", seed=3)
    obj = objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck",
                    callbacks=[functools.partial(_refuses_writes_before_its_report, folder=tmp_path)])
    study.pruner = StopAt(2, Decision.PAUSE)
    study.optimize(obj, n_trials=1)
    study.pruner = PromoteAll()
    with pytest.raises(StorageError, match="disk I/O error") as raised:
        study.optimize(obj, n_trials=0, n_jobs=1, executor="process")
    # the worker's advice (tell it failed) was given for a trial left running: its parent held it since
    said = " ".join(str(raised.value).split())
    assert said.endswith("this run recorded trial 0 as paused: the next optimize resumes it from its checkpoint; do "
                         "not tell it failed]"), said
    (held,) = study.trials
    assert (tmp_path / "limited").exists() and held.state is ts.TrialState.PAUSED, held
    assert held.system.n_holds == 1 and held.system.held_at_step == 2, held.system
    assert Path(held.attrs["checkpoint"]).is_file(), held.attrs
    study.optimize(obj, n_trials=0)
    ref = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, name="ref", sampler="random", seed=3)
    ref.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ref"), n_trials=1)
    (resumed,) = study.trials
    assert resumed.state is ts.TrialState.COMPLETE and resumed.system.n_resumes == 2, resumed
    assert resumed.system.resumed_step == 2 and dict(resumed.intermediate) == dict(ref.trials[0].intermediate)
def test_a_study_seed_repeats_the_trials_values_and_the_best_trains_again_to_its_value(tmp_path: Path) -> None:
    """train.md: the objective seeds torch with the config's seed before each build_model, so a model built
    without a seed of its own (weights, dropout) gives the same values when the study runs again, and the best
    trial's configuration trained again as the page says (torch seeded the same way) gives its value."""
    def unseeded(params):
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))

    space = ts.Space({"lr": ts.Float(1e-3, 1e-1, log=True), "weight_decay": ts.Float(1e-6, 1e-2, log=True)})

    def run() -> ts.Study:
        study = ts.Study(space, sampler="tpe", seed=0)
        study.optimize(objective(unseeded, DATA, space, base=BASE, checkpoint_root=tmp_path), n_trials=3)
        return study

    first, second = run(), run()
    assert [t.value for t in first.trials] == [t.value for t in second.trials]
    best = first.best_trial.params
    cfg = BASE.with_params(best).with_params({"checkpoint_dir": str(tmp_path / "again")})
    torch.manual_seed(cfg.seed)
    assert Trainer(unseeded(best), cfg).fit(*DATA).best.val_loss == first.best_value


def _deletes_the_study(trainer: Trainer, record, url: str) -> None:
    from tunesmith.storage import SQLStorage
    from tunesmith.study.manage import delete_study

    if record.index == 1:
        delete_study(SQLStorage(url), "gone")


def test_a_trial_whose_study_was_deleted_as_it_ran_leaves_no_checkpoints(tmp_path: Path) -> None:
    """A study deleted while its trial trains (tunesmith delete from another shell): the report raises
    StudyNotFound, a StorageError, which the bridge took for a storage that refused the trial's end and kept the
    folder for a later sweep; no sweep of that study ever comes, so the files stayed for good. Nothing can resume
    that trial: its folder is deleted as a failed trial's."""
    from tunesmith.exceptions import StudyNotFound

    url = f"sqlite:///{tmp_path / 'g.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="gone", sampler="random", seed=3)
    obj = objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck",
                    callbacks=[functools.partial(_deletes_the_study, url=url)])
    with pytest.raises(StudyNotFound, match="deleted while this process ran it") as raised:
        study.optimize(obj, n_trials=1)
    assert raised.value.__context__ is None or not isinstance(raised.value.__context__, StudyNotFound)
    (folder,) = (tmp_path / "ck").iterdir()
    assert not (folder / "trial-0").exists(), sorted(p.name for p in folder.rglob("*"))


def _pauses_before_the_report(trainer: Trainer, record) -> None:
    """A user's callback, listed before the bridge's reporter, that pauses the trial at validation 2 (a time
    budget of the user's, say): validation 2's report is never written."""
    if record.step == 2 * trainer.steps_per_epoch:
        raise ts.TrialPaused("the user's own pause")


def test_a_user_callback_that_pauses_before_the_bridge_s_report_keeps_the_checkpoint_the_record_names(
        tmp_path: Path) -> None:
    """The trainer deleted the older "last" checkpoint whenever a callback raised TrialPaused, taken for the report
    having been written; a user's callback before the bridge's reporter raised it before that report: the trial was
    paused naming validation 1's file, deleted, and its next run trained it again from the start. Nothing is
    deleted until the callback that records it has run: the trial resumes from validation 1."""
    space = {"lr": ts.Float(1e-3, 1e-1, log=True)}
    study = ts.Study(space, storage=f"sqlite:///{tmp_path / 'k.db'}", name="k", pruner=StopAt(99, Decision.PAUSE),
                     sampler="random", seed=3)
    obj = objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck",
                    callbacks=[_pauses_before_the_report])
    study.optimize(obj, n_trials=1)
    (paused,) = study.trials
    assert paused.state is ts.TrialState.PAUSED and sorted(paused.intermediate) == [1], paused
    kept = Path(paused.attrs["checkpoint"])
    assert kept.is_file(), (kept, sorted(p.name for p in kept.parent.iterdir()))
    study.pruner = PromoteAll()
    study.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ck"), n_trials=0)
    ref = ts.Study(space, name="ref", sampler="random", seed=3)
    ref.optimize(objective(lambda p: mlp(), DATA, base=BASE, checkpoint_root=tmp_path / "ref"), n_trials=1)
    (resumed,) = study.trials
    assert resumed.state is ts.TrialState.COMPLETE and resumed.system.resumed_step == 1, resumed
    assert dict(resumed.intermediate) == dict(ref.trials[0].intermediate)


class _OwnReporter:
    """A user's own study reporter for a plain Trainer, marked as recording each validation's checkpoint."""

    records_checkpoint = True

    def __init__(self, trial: ts.Trial) -> None:
        self.trial = trial

    def on_eval(self, trainer: Trainer, record) -> None:
        self.trial.report(record.val_loss, record.index + 1, checkpoint=trainer.history.last_checkpoint)


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_plain_trainer_s_own_reporter_marked_records_checkpoint_keeps_the_file_its_trial_names(
        tmp_path: Path, marked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/train.md: an objective of one's own that trains with ``Trainer`` and records each checkpoint with a
    callback of its own marks that callback ``records_checkpoint = True``, so that a callback listed before it that
    pauses the trial deletes nothing: the trial resumes from the file its record names. Unmarked, the trainer
    takes the pause for one raised after the report, and deletes that file (as the docs say)."""
    monkeypatch.setattr(_OwnReporter, "records_checkpoint", marked)
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=f"sqlite:///{tmp_path / 'k.db'}", name="k",
                     pruner=StopAt(99, Decision.PAUSE), sampler="random", seed=3)

    def own(trial: ts.Trial) -> float:
        cfg = dataclasses.replace(BASE, lr=trial.params["lr"], checkpoint_dir=str(tmp_path / f"t{trial.number}"))
        history = Trainer(mlp(), cfg, callbacks=[_pauses_before_the_report, _OwnReporter(trial)]).fit(*DATA)
        return history.best.val_loss

    study.optimize(own, n_trials=1)
    (paused,) = study.trials
    assert paused.state is ts.TrialState.PAUSED and sorted(paused.intermediate) == [1], paused
    assert Path(paused.attrs["checkpoint"]).is_file() is marked, sorted(p.name for p in (tmp_path / "t0").iterdir())


def test_a_lost_worker_s_run_whose_trial_another_worker_resumed_stops_and_leaves_the_trial_s_files(
        tmp_path: Path) -> None:
    """A resumed trial's worker taken for lost (held, then resumed by another worker) went on training: its next
    report is refused (TrialTakenOver), and the objective must not take that for the trial's end: deleting the
    trial's folder would take the checkpoint the other run resumes from."""
    from tunesmith.storage.base import worker_id

    url = f"sqlite:///{tmp_path / 'k.db'}"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, storage=url, name="k", sampler="random", seed=3,
                     pruner=StopAt(1, Decision.PAUSE))
    study.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ck"), n_trials=1)
    assert study.trials[0].state is ts.TrialState.PAUSED
    study.pruner = PromoteAll()
    other = ts.Study.load("k", url, pruner=PromoteAll())  # another worker on the same study
    taken: list[ts.Trial] = []

    def taken_over_at_2(trainer: Trainer, record) -> None:  # listed before the reporter: before validation 2's report
        if record.index + 1 == 2 and not taken:
            study.fail_worker(worker_id(), "worker lost", dead=True)
            taken.append(other.ask())

    study.optimize(objective(build, DATA, base=BASE, checkpoint_root=tmp_path / "ck", callbacks=[taken_over_at_2]),
                   n_trials=0)
    stored = study.trials[0]
    assert [t.number for t in taken] == [0] and stored.state is ts.TrialState.RUNNING, stored
    assert stored.system.n_resumes == 2 and sorted(stored.intermediate) == [1], stored
    assert Path(stored.attrs["checkpoint"]).is_file(), sorted(p.name for p in (tmp_path / "ck").rglob("*"))
