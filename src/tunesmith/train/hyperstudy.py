"""Gradient-based tuning as a strategy of a study: each hyperparameter step is a trial.

    space = hyper_space(problem.hparams, problem.constraints)
    study = ts.Study(space, direction="minimize", storage="sqlite:///hyper.db", name="l2")
    result = hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams,
                       train, val, constraints=problem.constraints)

Each outer step becomes one finished trial (through the study's public ``add_trial``):
its parameters are the hyperparameters it was taken at
(a tensor hyperparameter ``name`` as ``name[i]``, flattened), its value the validation
loss there (with a held-out ``select_batch``: the loss on it, the one the best step is
chosen by, and ``attrs["val_loss"]`` the loss on the validation data the hypergradients
fit), and ``attrs``: ``hypergrad_norm``, ``train_steps``, ``outer_step`` and
``method`` ("cg" or "neumann" for implicit differentiation; "unrolled", then also
``unroll_steps``). ``tunesmith show``, plots, reports and importance then read it like any study.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..space import Float, Space
from ..space.params import MAX_INT
from .hyperloop import (
    Batches,
    Constraint,
    LoopOptions,
    OuterStep,
    TuneDiverged,
    TuneResult,
    check_constraints,
    flat_values,
    to_raw,
    tune,
)
from .implicit import TrainLoss, Tree, ValLoss, check_start

logger = logging.getLogger(__name__)

#: a "positive" or "real" hyperparameter's study range reaches this factor around its start
SPAN = 1e4


def hyper_space(hparams: Mapping[str, Any], constraints: Mapping[str, Constraint] | None = None, *,
                span: float = SPAN) -> Space:
    """The study space of ``hparams``: "positive" ones log-uniform over ``[v / span, v * span]``,
    (low, high) ones uniform over it, "real" ones over ``v +- span * max(|v|, 1)``."""
    if not (isinstance(span, (int, float)) and not isinstance(span, bool) and 1 < span < math.inf):
        raise ValueError(f"hyper_space: span must be a finite number > 1 (the factor the range reaches around each "
                         f"start), got {span!r}")
    if not isinstance(hparams, Mapping) or not hparams:
        raise ValueError(f"hyper_space: hparams must be a non-empty dict name -> start value, got {hparams!r} "
                         "(classifier_losses(model).hparams is one)")
    params: dict[str, Float] = {}
    cons = check_constraints(hparams, constraints)
    for name, value in hparams.items():
        c = cons[name]
        start = torch.as_tensor(value, dtype=torch.float64)
        if not bool(torch.isfinite(start).all()):
            raise ValueError(f"hyperparameter {name!r} must start at finite values, got {value!r}")
        to_raw(start, c, name)  # refuses a start outside its constraint, as tune does
        for flat, v in flat_values({name: _as_given(value)}).items():
            params[flat] = _float(v, c, span)
    return Space(params)


def _as_given(value: Any) -> torch.Tensor:
    """A start as a tensor: a tensor or NumPy value in its own dtype (a float32 one's values are then
    its short decimals), numbers in float64 (torch's default float32 made 1e-50 a 0 and 1e300 an inf,
    refused as a range from nan)."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return torch.as_tensor(value)
    return torch.as_tensor(value, dtype=torch.float64)


def _float(v: float, c: Constraint, span: float) -> Float:
    if c == "positive":
        return Float(v / span, v * span, log=True)
    if isinstance(c, tuple):
        return Float(c[0], c[1])
    width = span * max(abs(v), 1.0)
    return Float(v - width, v + width)


def hypertune(
    study: Any,
    train_loss: TrainLoss,
    val_loss: ValLoss,
    params: Mapping[str, torch.Tensor],
    hparams: Mapping[str, Any],
    train_batches: Batches | Any,
    val_batch: Batches | Any,
    *,
    constraints: Mapping[str, Constraint] | None = None,
    options: LoopOptions | None = None,
    select_batch: Any = None,
    append: bool = False,
) -> TuneResult:
    """:func:`tunesmith.train.hyperloop.tune`, each outer step recorded as a trial of ``study``.

    The batches are taken as ``tune`` takes them: ``train_batches`` and ``val_batch`` are one
    batch each, or functions of the step (a callable batch object: pass ``lambda _: batch``).

    ``study.space`` must hold every (flattened) hyperparameter name (see :func:`hyper_space`);
    values that leave its range are clipped in the record (the loop keeps the exact ones,
    stored as ``attrs["outside_space"]``). The study must minimize.

    A study that already holds the steps of an earlier run is refused (running the same script
    again would record a second run under the same step numbers) unless ``append=True``: this
    run's steps then go after them, each with ``attrs["run"]`` (the earlier run counts as 1).

    Runs started at the same time on one study (several processes) each take a run number of
    their own: the first step a run records claims its number in the storage, atomically. A run
    whose number another run claimed first takes the next free one with ``append=True`` (and
    logs it), and is refused at its first step otherwise (nothing of it recorded), as a second
    run is: its steps are never mixed with another run's.
    """
    _check_study(study, hparams)
    run = _Run(_run_number(study, append), append)
    opts = options or LoopOptions()
    since = [time.time()]  # each trial's time: from the previous step's record (the first: from the start)

    def record(step: OuterStep, _params: Tree) -> None:
        now = time.time()
        _record(study, step, opts, since[0], now, run=run)
        since[0] = now

    try:
        return tune(train_loss, val_loss, params, hparams, train_batches, val_batch, constraints=constraints,
                    options=opts, callback=record, select_batch=select_batch)
    except TuneDiverged as e:  # the step that diverged, a failed trial with the error: show and report list it
        _record(study, e.step, opts, since[0], time.time(), error=str(e), run=run)
        raise


#: the claim a run's first recorded step holds in the storage: one run per number
RUN_CLAIM = "hypertune-run:{run}"


class _Run:
    """This run's number (None: the study's first run, recorded without ``attrs["run"]``),
    claimed in the storage with its first recorded step."""

    def __init__(self, number: int | None, append: bool) -> None:
        self.number = number
        self.append = append
        self.claimed = False

    def add(self, study: Any, params: Mapping[str, Any], value: Any, attrs: dict[str, Any], **known: Any) -> None:
        """Record a step: the first one claims the run's number (the next free one with ``append``)."""
        if self.claimed or not hasattr(study, "_add_claimed"):  # a study-like object: no claims to take
            study.add_trial(params, value, attrs=self._numbered(attrs), **known)
            return
        while study._add_claimed(RUN_CLAIM.format(run=self.number or 1), params, value,
                                 attrs=self._numbered(attrs), **known) is None:
            self._taken(study)
        self.claimed = True

    def _numbered(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs if self.number is None else {**attrs, "run": self.number}

    def _taken(self, study: Any) -> None:
        """Another run started at the same time claimed this number first: take the next, or refuse."""
        taken = self.number or 1
        if not self.append:
            raise ValueError(f"study {study.name!r}: another hypertune run started at the same time recorded its "
                             f"steps first (run {taken}), so this run records none beside them; give hypertune a "
                             "new study (another name), or pass append=True to record this run as the next run")
        steps = [t for t in study.trials if "outer_step" in _attrs(t)]
        self.number = max(_runs_held(steps) if steps else 1, taken) + 1
        logger.warning("study %r: run %d was taken by another hypertune run started at the same time; this run "
                       "records its steps as run %d (attrs['run'])", study.name, taken, self.number)


def _check_study(study: Any, hparams: Mapping[str, Any]) -> None:
    if not (hasattr(study, "add_trial") and hasattr(study, "space") and hasattr(study, "direction")):
        raise TypeError(f"hypertune records each step as a trial of a study: pass a tunesmith.Study, ts.Study("
                        f"hyper_space(hparams, constraints), direction='minimize'), got {type(study).__name__}")
    if str(getattr(study.direction, "value", study.direction)) != "minimize":
        raise ValueError("hypertune records validation losses: create the study with direction='minimize'")
    for name, value in hparams.items():  # a ts.Float(...) start failed below in torch: "Could not infer dtype"
        check_start(name, value)
    wanted = set(flat_values({k: torch.as_tensor(v) for k, v in hparams.items()}))
    missing = sorted(wanted - set(study.space))
    if missing:
        raise ValueError(f"study {study.name!r}: its space lacks the hyperparameters {missing[:5]}"
                         f"{' and more' if len(missing) > 5 else ''}; build it with "
                         "tunesmith.train.hyper_space(hparams, constraints)")
    fixed = [f"{k!r} ({study.space[k]!r})" for k in sorted(wanted) if not _continuous(study.space[k])]
    if fixed:
        raise ValueError(f"study {study.name!r}: its space holds {', '.join(fixed[:3])}"
                         f"{' and more' if len(fixed) > 3 else ''}, where each step's value needs a continuous range "
                         "(a ts.Float without a step): give hypertune a study of its own, built by "
                         "tunesmith.train.hyper_space(hparams, constraints)")
    extra = sorted(set(study.space) - wanted)
    if extra:
        raise ValueError(f"study {study.name!r}: its space has parameters that hypertune does not tune, {extra[:5]}"
                         f"{' and more' if len(extra) > 5 else ''}, so no step could be recorded in it; give hypertune "
                         "a study of its own, built by tunesmith.train.hyper_space(hparams, constraints)")


def _continuous(param: Any) -> bool:
    """Whether a space parameter can hold any value a step reaches in its range (not an Int, a
    Categorical, a Fixed one as a focused study holds, nor a Float on a step's grid)."""
    return isinstance(param, Float) and param.step is None


def _run_number(study: Any, append: bool) -> int | None:
    """This run's number in ``study`` (None: its first run), refusing a second one unless ``append``."""
    if not isinstance(append, bool):
        raise TypeError(f"hypertune: append must be True or False, got {append!r}")
    earlier = [t for t in getattr(study, "trials", ()) if "outer_step" in _attrs(t)]
    if not earlier:
        return None
    last = _runs_held(earlier)
    if not append:
        steps = [t.attrs["outer_step"] for t in earlier if isinstance(t.attrs["outer_step"], int)]
        span = "" if not steps else f" (outer step {steps[0]})" if min(steps) == max(steps) else \
            f" (outer steps {min(steps)}-{max(steps)})"
        failed = sum(getattr(getattr(t, "state", None), "value", None) == "failed" for t in earlier)
        held = f"{len(earlier)} step{'s' if len(earlier) > 1 else ''}{f', {failed} failed,' if failed else ''}"
        runs_text = "an earlier hypertune run" if last == 1 else f"{last} earlier hypertune runs"
        raise ValueError(f"study {study.name!r} already holds {held} of {runs_text}{span}; running "
                         "again would record another run beside them under the same step numbers: give hypertune "
                         "a new study (another name), or pass "
                         f"append=True to record this run's steps after them (attrs['run'] = {last + 1})")
    return last + 1


def _attrs(trial: Any) -> Mapping[str, Any]:
    attrs = getattr(trial, "attrs", None)
    return attrs if isinstance(attrs, Mapping) else {}


def _runs_held(steps: list[Any]) -> int:
    """How many runs recorded ``steps``: the largest ``attrs["run"]``; steps without one (the first
    run, or runs recorded before ``run`` existed, one after another) count by their repeated step numbers.
    A run number no run takes (0, negative, past 2**63 - 1: another writer's) counts for none: one of
    4,300 digits made the next number one Python cannot write as text (a bare ValueError)."""
    numbered = [r for t in steps if isinstance(r := t.attrs.get("run"), int) and not isinstance(r, bool)
                and 0 < r < MAX_INT]
    unnumbered = Counter(s for t in steps if "run" not in t.attrs and isinstance(s := t.attrs["outer_step"], int))
    return max([*numbered, max(unnumbered.values(), default=1)])


def _record(study: Any, step: OuterStep, opts: LoopOptions, started: float, completed: float, *,
            run: _Run, error: str | None = None) -> None:
    """``step`` as a trial: complete with its score, or failed (``error``: why; else a score that is not finite)."""
    values = flat_values(step.hparams)
    space: Space = study.space
    clipped = {k: min(max(v, space[k].low), space[k].high) for k, v in values.items()}  # type: ignore[attr-defined]
    attrs: dict[str, Any] = {"train_steps": step.train_steps, "outer_step": step.step, "method": opts.label}
    if math.isfinite(step.hypergrad_norm):  # not where the training diverged before it
        attrs["hypergrad_norm"] = step.hypergrad_norm
    if opts.method == "unrolled":
        attrs["unroll_steps"] = opts.unroll_steps
    if step.select_loss is not None and math.isfinite(step.val_loss):
        attrs["val_loss"] = step.val_loss
    outside = {k: v for k, v in values.items() if clipped[k] != v}
    if outside:
        attrs["outside_space"] = outside
    when = {"started": started, "completed": completed}
    if error is None and math.isfinite(step.score):
        run.add(study, clipped, step.score, attrs, **when)
    else:
        run.add(study, clipped, None, attrs, state="failed", error=error or f"validation loss {step.score}", **when)


def values_of(trial_params: Any, like: Mapping[str, Any]) -> Tree:
    """The hyperparameter tensors of a recorded trial (the inverse of the flattening), with the
    dtypes and devices of ``like``. ``trial_params``: a trial's ``params``, or the trial itself,
    whose values that left the study's range are then the exact ones (``attrs["outside_space"]``)
    rather than the clipped record."""
    if hasattr(trial_params, "params") and hasattr(trial_params, "attrs"):
        trial_params = {**trial_params.params, **(trial_params.attrs.get("outside_space") or {})}
    if not isinstance(trial_params, Mapping):
        raise TypeError(f"values_of takes a trial (study.best_trial) or its params, got {type(trial_params).__name__}")
    missing = [k for k in flat_values({n: torch.as_tensor(v) for n, v in like.items()}) if k not in trial_params]
    if missing:
        raise ValueError(f"values_of: the trial's parameters lack {missing[:5]}{' and more' if len(missing) > 5 else ''}"
                         f" of the hyperparameters given as like (has {sorted(trial_params)[:5]}); pass the hparams the "
                         "study was tuned with")
    out: Tree = {}
    for name, value in like.items():
        t = torch.as_tensor(value)
        if t.ndim == 0:
            out[name] = torch.tensor(trial_params[name], dtype=t.dtype, device=t.device)
        else:
            flat = [trial_params[f"{name}[{i}]"] for i in range(t.numel())]
            out[name] = torch.tensor(flat, dtype=t.dtype, device=t.device).reshape(t.shape)
    return out
