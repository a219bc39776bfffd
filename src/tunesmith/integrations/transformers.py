"""Hugging Face Transformers: a TrainerCallback that reports ``eval_*`` metrics and prunes or
pauses, and a study over a ``Trainer`` in one call.

    study = search(lambda args, params: Trainer(model_init(), args, train_dataset=tr, eval_dataset=ev),
                   base=TrainingArguments("out", eval_strategy="epoch"), n_trials=20)

Each trial's parameters (:func:`trainer_space`: learning rate, warm-up ratio, weight decay,
Adam's betas and epsilon, scheduler type, batch size, epochs) override the ``TrainingArguments``
fields of the same name. With ``eval_strategy="epoch"`` evaluation after epoch ``e`` is step
``e``; otherwise the step is ``state.global_step``. Needs ``tunesmith[transformers]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import MetricNotEvaluated, TrialPaused, TrialPruned
from ..pruners import Decision
from ..space import Categorical, Fixed, Float, Int, Space
from ..study.trial import checkpoint_to_resume
from ._common import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    check_trial,
    did_you_mean_metric,
    diverged,
    guess_direction,
    moved_checkpoint,
    other_framework,
    refuse_fold_racing,
    refuse_unknown,
    reported_before_a_hold,
    require,
    span,
    warn_direction,
)

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "MetricNotEvaluated", "PruningCallback", "default_direction", "objective", "search",
           "trainer_space", "training_args"]

transformers = require("transformers", extra="transformers", what="tunesmith.integrations.transformers")
_TrainerCallback: Any = transformers.TrainerCallback
SCHEDULERS = ("linear", "cosine", "constant_with_warmup", "polynomial")


#: other libraries' names (torch's, tunesmith.train's) for trainer_space's keywords
_HF_ALIASES = {
    "lr": "learning_rate", "warmup_fraction": "warmup_ratio", "warmup": "warmup_ratio", "beta1": "adam_beta1",
    "beta2": "adam_beta2", "eps": "adam_epsilon", "epsilon": "adam_epsilon", "epochs": "num_train_epochs",
    "warmup_steps": "warmup_ratio",  # a TrainingArguments field, but the space's warm-up is warmup_ratio's
    "batch_size": "per_device_train_batch_size", "schedule": "lr_scheduler_type", "schedules": "lr_scheduler_type",
}


def trainer_space(
    *,
    learning_rate: tuple[float, float] | float = (1e-6, 1e-3),
    warmup_ratio: tuple[float, float] | float = (0.0, 0.2),
    weight_decay: tuple[float, float] | float = (1e-6, 0.1),
    adam_beta1: tuple[float, float] | float = (0.8, 0.95),
    adam_beta2: tuple[float, float] | float = (0.95, 0.9999),
    adam_epsilon: tuple[float, float] | float = (1e-10, 1e-6),
    lr_scheduler_type: Sequence[str] = ("linear", "cosine", "constant_with_warmup"),
    per_device_train_batch_size: Sequence[int] = (8, 16, 32),
    num_train_epochs: tuple[int, int] | int = (1, 5),
    **unknown: Any,
) -> Space:
    """A search space over ``TrainingArguments`` fields from common fine-tuning practice.

    Learning rate, weight decay and epsilon are log-uniform; the schedulers and batch sizes are
    categorical. Change a range with its keyword (a plain number fixes it: ``num_train_epochs=3``),
    or edit the result:
    ``ts.Space({**trainer_space(), "max_grad_norm": ts.Float(0.1, 2.0)})``. Another keyword is refused
    naming the one meant (torch's ``lr=`` is ``learning_rate=``).
    """
    refuse_unknown("trainer_space", unknown, list(trainer_space.__kwdefaults__ or {}), _HF_ALIASES,
                   library=transformers.TrainingArguments)
    if isinstance(lr_scheduler_type, str):  # "cosine": one scheduler, not the letters c, o, s...
        lr_scheduler_type = [lr_scheduler_type]
    if isinstance(per_device_train_batch_size, int):  # a plain number fixes it, as for the ranges
        per_device_train_batch_size = [per_device_train_batch_size]
    bad = [s for s in lr_scheduler_type if s not in SCHEDULERS]
    if bad or not lr_scheduler_type:
        raise ValueError(f"trainer_space: lr_scheduler_type must be a non-empty subset of {list(SCHEDULERS)}, got {list(lr_scheduler_type)}")
    return Space({
        "learning_rate": span("trainer_space", "learning_rate", learning_rate, Float, log=True),
        "warmup_ratio": span("trainer_space", "warmup_ratio", warmup_ratio, Float, within="[0, 1)", why=(
            "a ratio of the training steps; transformers 5 takes 1 or more as a number of steps (1.5: one step)")),
        "weight_decay": span("trainer_space", "weight_decay", weight_decay, Float, log=True),
        "adam_beta1": span("trainer_space", "adam_beta1", adam_beta1, Float, within="[0, 1)"),
        "adam_beta2": span("trainer_space", "adam_beta2", adam_beta2, Float, within="[0, 1)"),
        "adam_epsilon": span("trainer_space", "adam_epsilon", adam_epsilon, Float, log=True),
        "lr_scheduler_type": Categorical(list(lr_scheduler_type)),
        "per_device_train_batch_size": Categorical(list(per_device_train_batch_size)),
        "num_train_epochs": span("trainer_space", "num_train_epochs", num_train_epochs, Int),
    })  # fmt: skip


def training_args(trial: Any, base: Any) -> Any:
    """``base`` (``TrainingArguments``) with the trial's parameters that are its fields, and
    ``output_dir`` = ``<base.output_dir>/trial-<n>`` (one folder per trial, for checkpoints).
    ``warmup_ratio`` goes to ``warmup_steps`` where transformers has no such field (5.x)."""
    fields = {f.name for f in dataclasses.fields(base)}
    params = dict(trial.params)
    if "warmup_ratio" in params and "warmup_ratio" not in fields:  # transformers 5: a float < 1
        params["warmup_steps"] = params.pop("warmup_ratio")  # in warmup_steps is the ratio
    params = {k: v for k, v in params.items() if k in fields}
    return dataclasses.replace(base, **params, output_dir=str(Path(base.output_dir) / f"trial-{trial.number}"))


class PruningCallback(_TrainerCallback):
    """Reports ``metric`` after every evaluation; prunes or pauses through the study's pruner.

    Args:
        trial: the running :class:`tunesmith.Trial`.
        metric: an ``eval_*`` metric of ``trainer.evaluate()`` (``eval_loss``, or one your
            ``compute_metrics`` returns, prefixed ``eval_``). When its name says the other
            direction than the study's (``eval_loss`` maximized, ``eval_accuracy`` minimized)
            a UserWarning says so, once per study and metric.

    On a pause the Trainer saves a checkpoint right after the evaluation (``control.should_save``);
    its folder becomes ``trial.attrs["checkpoint"]`` and :class:`tunesmith.TrialPaused` is raised.
    ``resume_from`` gives that folder to ``trainer.train(resume_from_checkpoint=...)``.
    Only the main process (``state.is_world_process_zero``) reports.
    """

    def __init__(self, trial: Any, metric: str = "eval_loss") -> None:
        super().__init__()
        if not isinstance(metric, str) or not metric.startswith("eval_"):
            hint = f" (did you mean 'eval_{metric}'?)" if isinstance(metric, str) else ""
            raise ValueError(f"PruningCallback: metric must be an 'eval_*' name (as trainer.evaluate() returns it), got {metric!r}{hint}")
        check_trial(trial, "transformers PruningCallback")
        refuse_fold_racing(trial, "transformers PruningCallback", "evaluation")
        self.trial, self.metric = trial, metric
        warn_direction(trial, metric, what="transformers PruningCallback")
        self.last: float | None = None
        self._pausing: int | None = None
        # several eval datasets (a dict): one evaluation per set, metrics "eval_<name>_*"; the
        # global steps whose evaluations were all of other sets, and the metrics they gave
        self._found: set[int] = set()
        self._others: dict[int, set[str]] = {}
        self._training = False  # between on_train_begin and on_train_end: evaluations are reported

    def __getattr__(self, name: str) -> Any:  # a Lightning Trainer calls setup, on_fit_start...
        raise other_framework(self, name, mine="tunesmith.integrations.transformers, for a transformers Trainer",
                              use="tunesmith.integrations.lightning.PruningCallback(trial, monitor='val_loss') "
                                  "with a Lightning Trainer")  # fmt: skip

    def resume_from(self, args: Any) -> str | None:
        """The checkpoint folder a resumed trial continues from, else None; it must lie in
        ``args.output_dir`` (a path read from the storage is data), else a ValueError."""
        path = checkpoint_to_resume(self.trial, missing=False)
        if path is None:
            return None
        path = moved_checkpoint(path, Path(args.output_dir).resolve())
        if Path(args.output_dir).resolve() not in Path(path).resolve().parents:
            raise ValueError(f"trial {self.trial.number}: its checkpoint {path} is not in output_dir {args.output_dir} "
                             f"({Path(args.output_dir).absolute()}); give the resumed trial the output_dir it was paused "
                             f"with ({Path(path).parent}; by its absolute path from another working folder)")
        _own_output_dir(args.output_dir, make=False)
        return str(path)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = True
        if checkpoint_to_resume(self.trial, missing=False) is not None and state.global_step == 0:
            raise ValueError(
                f"PruningCallback: trial {self.trial.number} was paused and is resumed, but train() starts "
                "from scratch; pass its checkpoint: trainer.train(resume_from_checkpoint=cb.resume_from(args))"
            )
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            warnings.warn(
                "PruningCallback: the Trainer's eval_strategy is 'no', so it never evaluates during "
                f"training: {self.metric!r} is not reported and the trial cannot be pruned; pass "
                "TrainingArguments(eval_strategy='epoch') (or 'steps' with eval_steps=...)",
                UserWarning, stacklevel=2,
            )  # fmt: skip

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, float] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        metrics = metrics or {}
        if self.metric not in metrics:
            if self._of_another_set(metrics):
                self._others.setdefault(state.global_step, set()).update(metrics)
                self._check_found(before=state.global_step)
                return
            raise MetricNotEvaluated(f"PruningCallback: evaluation gave no {self.metric!r}{did_you_mean_metric(self.metric, list(metrics))}; "
                             f"it gave {sorted(metrics)}")  # fmt: skip
        self._found.add(state.global_step)
        if not self._training:
            return  # trainer.evaluate() before or after train(): not a step of the training
        value = float(metrics[self.metric])
        # epoch e (counted from 1) is step e; a last, partial epoch (num_train_epochs=2.5) is step 3
        step = math.ceil(round(state.epoch, 6)) if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "epoch" else state.global_step
        self.last = value
        if reported_before_a_hold(self.trial, step):
            return  # trained again from the pause's checkpoint after its worker died
        if not math.isfinite(value):
            raise diverged(self.trial, value, step, "step")
        self.trial.report(value, step)
        decision = self.trial.decision()
        if decision is Decision.PAUSE:
            self._pausing = step
            control.should_save = True  # the Trainer saves now, then calls on_save
        elif decision is not Decision.CONTINUE:
            raise TrialPruned(f"pruned at step {step}")

    def _of_another_set(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``metrics`` are of one of several named eval sets (``eval_dataset`` a dict:
        ``eval_<name>_runtime``...), which may not be ``self.metric``'s set: whether any set gave
        the metric is checked once the step's evaluations are done (names may share a prefix:
        sets "a" and "a_b")."""
        return any(k.endswith("_runtime") and k != "eval_runtime" for k in metrics)

    def _check_found(self, *, before: float) -> None:
        """A ValueError when the evaluations of a step before ``before`` never gave the metric."""
        missed = [step for step in self._others if step < before and step not in self._found]
        if missed:
            seen = sorted(set().union(*(self._others[s] for s in missed)))
            raise MetricNotEvaluated(f"PruningCallback: no evaluation gave {self.metric!r}; they gave {seen}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        if state.is_world_process_zero:
            self._check_found(before=math.inf)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_before_save(state, control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._check_before_save(state, control)

    def _check_before_save(self, state: Any, control: Any) -> None:
        """Before the Trainer saves a ``checkpoint-<step>`` folder (``control.should_save``, set by its save
        strategy), stop where another worker took the trial over (:meth:`tunesmith.Trial.check_run`, one read):
        else this run went on writing folders in the trial's ``output_dir`` until its next evaluation's report."""
        if control.should_save and self._training and state.is_world_process_zero:
            self.trial.check_run()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._pausing is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir).absolute() / f"checkpoint-{state.global_step}"  # found from any working folder
        self.trial.set_attr("checkpoint", str(folder))
        raise TrialPaused(f"paused at step {self._pausing}")


def default_direction(metric: str) -> str:
    """"minimize" for a metric that is better lower: its name contains "loss", or one of its
    ``_``-separated words is in :data:`LOWER_IS_BETTER` (word or character error rate,
    perplexity, squared or absolute error...); else "maximize" (accuracy, f1, bleu, and a name
    that says nothing: see :func:`tunesmith.integrations._common.guess_direction`)."""
    return guess_direction(metric) or "maximize"


def objective(
    build_trainer: Callable[[Any, dict[str, Any]], Any], *, base: Any, metric: str = "eval_loss",
) -> Callable[[Any], float]:  # fmt: skip
    """An objective for :meth:`Study.optimize`: ``build_trainer(args, params)`` makes the trial's
    ``Trainer`` from its ``TrainingArguments`` (see :func:`training_args`); the callback is added,
    ``train()`` runs (resuming a paused trial), and the last evaluation's ``metric`` is returned
    (``trainer.evaluate()`` is called when training evaluated nothing). A ``metric`` that the
    evaluations do not give (:class:`MetricNotEvaluated`) fails the trial, and stops the study
    (``study.stop()``) when no evaluation of the trial gave it: every later trial would train to
    its first evaluation and fail alike."""
    if not dataclasses.is_dataclass(base):
        raise TypeError(f"objective: base must be a transformers.TrainingArguments, got {type(base).__name__}")

    def run(trial: Any) -> float:
        args = training_args(trial, base)
        _own_output_dir(args.output_dir, make=True)  # before the Trainer makes it with the umask's mode
        trainer = build_trainer(args, dict(trial.params))
        _check_trial_args(trainer, args, base)
        cb = PruningCallback(trial, metric)
        trainer.add_callback(cb)
        try:
            trainer.train(resume_from_checkpoint=cb.resume_from(args))
            if cb.last is None:
                cb.last = float(trainer.evaluate()[metric])
        except MetricNotEvaluated:
            if not trial.intermediate:  # never given: every trial would train to it and fail alike
                trial.study.stop()
            raise
        return cb.last

    return run


def _own_output_dir(folder: str, *, make: bool) -> None:
    """A CheckpointError where another user could have planted what the Trainer resumes from or chosen where
    it writes, by the rules of the trainer's checkpoint folders (:func:`tunesmith.train.checkpoint.check_dir`):
    a trial's ``output_dir`` (``make``: created 0700 first) of another user's or that others may write, a link
    of theirs on the way to it, or one in a folder of theirs or one all may write without the sticky bit (an
    :class:`~tunesmith.exceptions.UntrustedPathError` too, as the checkpoint folder's own refusal)."""
    from ..train.checkpoint import CheckpointError, check_dir, secure_dir

    try:
        secure_dir(folder) if make else check_dir(folder)
    except CheckpointError as exc:
        said = str(exc).replace(", or set XDG_CACHE_HOME", "")  # tunesmith's default root, not the Trainer's
        said = said.replace("checkpoint_root=... / checkpoint_dir=...", "TrainingArguments(output_dir=...)")
        raise type(exc)(f"transformers' output_dir: {said}") from None  # an UntrustedPathError stays one


def _check_trial_args(trainer: Any, args: Any, base: Any) -> None:
    """A TypeError when the Trainer that ``build_trainer`` made does not hold the trial's
    TrainingArguments (the fields the trial set): every trial would train alike, silently."""
    given = getattr(trainer, "args", None)
    if given is args:
        return
    changed = [f.name for f in dataclasses.fields(args) if getattr(args, f.name) != getattr(base, f.name)]
    wrong = [k for k in changed if getattr(given, k, None) != getattr(args, k)]
    if wrong:
        raise TypeError(
            f"build_trainer made a Trainer with {wrong[0]}={getattr(given, wrong[0], None)!r}, not the trial's "
            f"{getattr(args, wrong[0])!r}: give the Trainer the TrainingArguments build_trainer receives "
            "(def build_trainer(args, params): return Trainer(model=..., args=args, ...)), or every trial "
            "trains with the same settings"
        )


def search(
    build_trainer: Callable[[Any, dict[str, Any]], Any],
    *,
    base: Any,
    n_trials: int | None,
    space: Space | Mapping[str, Any] | None = None,
    metric: str = "eval_loss",
    direction: str | None = None,
    study: Any = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    catch: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    show_progress: bool | None = None,
    optimize_options: Mapping[str, Any] | None = None,
    **study_options: Any,
) -> Any:
    """Run a study over a ``Trainer``; returns the :class:`tunesmith.Study`.

    Args:
        build_trainer: ``build_trainer(args, params) -> Trainer``: a fresh model per trial
            (``params``: the trial's, for those that are not TrainingArguments fields).
        base: the ``TrainingArguments`` the trial's parameters override.
        space: default :func:`trainer_space`.
        metric: what is reported and optimized (an ``eval_*`` name).
        direction: default :func:`default_direction` (``eval_loss``, ``eval_wer``: minimize;
            ``eval_accuracy``: maximize).
        study: an existing :class:`tunesmith.Study` to continue (then ``space``, ``direction``
            and ``study_options`` are its own).
        n_trials, timeout, n_jobs, callbacks, catch, show_progress: passed to
            :meth:`tunesmith.Study.optimize` (``n_trials=None`` with a ``timeout``: trials until
            it passes; ``callbacks``: ``callback(study, record)`` after each trial, e.g.
            :class:`~tunesmith.integrations.mlflow.MLflowCallback` or one that calls
            ``study.stop()``; ``n_jobs > 1``: several Trainers at once, threads sharing this
            process's devices, or processes with a SQL ``storage``).
        optimize_options: the rest of ``optimize``'s options (``executor``, ``gpus``,
            ``trial_timeout``...: docs/distributed.md); an option that ``search`` takes by
            name (``timeout``, ``n_jobs``...) is refused here: give it by name.
        study_options: passed to :class:`tunesmith.Study` (``pruner``, ``sampler``, ``seed``,
            ``storage``, ``name``...); refused with ``study=``, as are ``space`` and ``direction``.
    """
    from ..study import Study

    _check_options(study, space, direction, study_options, optimize_options)
    if study is None:
        direction = direction or default_direction(metric)
        study = Study(space if space is not None else trainer_space(), direction=direction, **study_options)
    _warn_steps_across_batch_sizes(study.space, base)
    _warn_near_fields(study.space, base)
    study.optimize(objective(build_trainer, base=base, metric=metric), n_trials=n_trials, timeout=timeout,
                   n_jobs=n_jobs, catch=catch, callbacks=callbacks, show_progress=show_progress,
                   **dict(optimize_options or {}))
    return study


def _warn_near_fields(space: Space, base: Any) -> None:
    """Warn about a parameter whose name is not a TrainingArguments field but nearly one
    (``learning_rat``, ``num_epochs``): it reaches ``build_trainer`` as ``params`` only, so unless
    build_trainer uses it, the trials differ in nothing (a model's own ``dropout`` is not near one)."""
    fields = [f.name for f in dataclasses.fields(base)]
    for name in space:
        close = difflib.get_close_matches(name, fields, n=1, cutoff=0.75) if name not in fields else []
        if close and not (name == "warmup_ratio" and "warmup_steps" in fields):
            warnings.warn(
                f"search: parameter {name!r} is not a TrainingArguments field (did you mean {close[0]!r}?); "
                f"it reaches build_trainer only as params[{name!r}]",
                UserWarning, stacklevel=3,
            )  # fmt: skip


def _warn_steps_across_batch_sizes(space: Space, base: Any) -> None:
    """Warn when evaluations are per optimizer step (``eval_strategy="steps"``) while the space
    searches the batch size: a step then covers other amounts of data in different trials."""
    size = space["per_device_train_batch_size"] if "per_device_train_batch_size" in space else None
    searched = size is not None and not isinstance(size, Fixed) and len(getattr(size, "choices", (0, 1))) > 1
    if searched and str(getattr(base.eval_strategy, "value", base.eval_strategy)) == "steps":
        warnings.warn(
            "search: eval_strategy='steps' reports each evaluation at its optimizer step, and the space searches "
            "per_device_train_batch_size, so trials are compared after different amounts of data; pass "
            "TrainingArguments(eval_strategy='epoch'), or fix the batch size (trainer_space(per_device_train_batch_size=[16]))",
            UserWarning, stacklevel=3,
        )  # fmt: skip


#: study.optimize's options that search() takes by name (the one way to give them)
_BY_NAME = ("n_trials", "timeout", "n_jobs", "callbacks", "catch", "show_progress")


def _check_options(study: Any, space: Any, direction: Any, study_options: Mapping[str, Any],
                   optimize_options: Mapping[str, Any] | None) -> None:
    """Each option one way: search()'s own keywords, optimize_options for the rest of
    optimize's, and a new study's settings only when no ``study`` is given."""
    if study is not None and not hasattr(study, "optimize"):  # a name: "'str' object has no attribute 'space'"
        raise TypeError(f"search(study=...) takes an existing Study (ts.load_study(name, storage)), got {study!r}; "
                        "a new study is named with name=...")
    twice = [k for k in _BY_NAME if k in (optimize_options or {})]
    if twice:
        raise TypeError(f"search() takes {twice} by name: write search(..., {twice[0]}=...), not "
                        f"optimize_options={{{twice[0]!r}: ...}} (optimize_options is for the other options of "
                        "Study.optimize: executor, gpus, trial_timeout...)")
    given = [*(["space"] if space is not None else []), *(["direction"] if direction is not None else []),
             *study_options]
    if study is not None and given:
        raise TypeError(f"search(study=...) continues that study with its own space, direction and settings, so "
                        f"{given} cannot be given with it: drop them, or leave out study= to make a new study")
