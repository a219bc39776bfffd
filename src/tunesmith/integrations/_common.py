"""What every integration shares: the lazy import and report-then-decide."""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import numbers
import os
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..cv import refuse_racing
from ..exceptions import TrialPruned
from ..pruners import Decision
from ..space import Fixed, Float, Int

#: the oldest version of each integration's package tunesmith works with, as its extra in pyproject.toml asks
#: (an older one installed apart from the extra failed inside a callback, not at the import)
FLOORS: dict[str, tuple[int, ...]] = {
    "xgboost": (3, 1, 3),  # XGBClassifier under scikit-learn >= 1.8; callbacks called in the order given (3.1.2)
    "lightgbm": (4, 7),  # LGBMModel.fit(eval_X=, eval_y=), as docs/integrations.md writes it
    "lightning": (2, 6),  # Trainer.fit(..., weights_only=True), as docs/integrations.md writes it
    "transformers": (4, 41),  # TrainingArguments.eval_strategy, which the callback reads
    "mlflow": (2, 10),
    "tensorboard": (2, 18),  # 2.14-2.17 fail to import under NumPy 2 (np.string_)
}


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """``import module``, or an ImportError that names the extra to install (or, when the package
    is there but its own import fails, one that says so and gives that error; or, when it is older
    than its :data:`FLOORS` entry, the version needed)."""
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and (missing == module or module.startswith(f"{missing}.")):
            raise ImportError(
                f"{what} needs the '{module}' package, which is not installed: "
                f"pip install 'tunesmith[{extra}]'"
            ) from exc
        raise _broken(module, exc, extra=extra, what=what) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. TensorBoard 2.17 under NumPy 2: AttributeError np.string_
        raise _broken(module, exc, extra=extra, what=what) from exc
    package = module.partition(".")[0]
    check_floor(importlib.import_module(package), FLOORS.get(package, ()), extra=extra, what=what)
    return found


def _broken(module: str, exc: Exception, *, extra: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the '{module}' package, which is installed but failed to import: "
        f"{type(exc).__name__}: {exc} (fix that installation, e.g. pip install -U --force-reinstall "
        f"'tunesmith[{extra}]', or install what the error names)"
    )


def check_floor(module: ModuleType, floor: tuple[int, ...], *, extra: str, what: str) -> ModuleType:
    """``module`` if its ``__version__`` is at least ``floor``, else an ImportError naming the
    version needed and the upgrade (an older one failed later, deep inside, on a missing name)."""
    have = tuple(int(n) for n in re.findall(r"\d+", getattr(module, "__version__", ""))[: len(floor)])
    if have and have < floor:
        raise ImportError(f"{what} needs {module.__name__} >= {'.'.join(map(str, floor))}, "
                          f"this is {module.__version__}: pip install -U 'tunesmith[{extra}]'")
    return module


def span(what: str, name: str, value: Any, kind: type[Float] | type[Int], *, within: str | None = None,
         why: str = "the library refuses such a value, so every trial drawing it would fail",
         **options: Any) -> Float | Int | Fixed:
    """A preset space's parameter from its keyword: a ``(low, high)`` range, or a plain number
    that fixes it (``xgboost_space(max_depth=6)``); anything else is a ValueError naming it. ``within``,
    a key of ``_WITHIN``, refuses a bound outside it, saying ``why``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_within(what, name, (value,), within, why)
        return Fixed(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{what}: {name} must be a (low, high) range or a plain number that fixes it, got {value!r}")
    _check_within(what, name, value, within, why)
    return kind(*value, **options)


#: the intervals a preset parameter may be held to: fractions of rows or columns, Adam's betas, LightGBM's leaves
_WITHIN = {"(0, 1]": lambda v: 0 < v <= 1, "[0, 1)": lambda v: 0 <= v < 1, "[2, 131072]": lambda v: 2 <= v <= 131072}


def _check_within(what: str, name: str, values: Sequence[Any], within: str | None, why: str) -> None:
    inside = _WITHIN.get(within or "")
    # numbers.Real: a bound may be a NumPy scalar (np.float32 is no float), which the Float takes as well
    bad = [v for v in values if inside and isinstance(v, numbers.Real) and not isinstance(v, bool) and not inside(v)]
    if bad:
        got = f"{bad[0]!r} in {tuple(values)!r}" if len(values) > 1 else repr(bad[0])
        raise ValueError(f"{what}: {name} must lie in {within}, got {got}: {why}")


#: why a preset boosting space has no keyword for the number of rounds ({}: where to give it instead)
ROUNDS = ("the number of boosting rounds is not searched: give it to the training ({}) and let the pruning callback "
          "stop the weak trials; to search it anyway, add a ts.Int to the space it returns")


def refuse_unknown(what: str, unknown: Mapping[str, Any], keywords: Sequence[str], aliases: Mapping[str, str],
                   *, space: bool = True, library: Callable[..., Any] | None = None) -> None:
    """A TypeError for a keyword that is none of ``keywords``, naming the one meant (a close spelling, or
    another library's name for it in ``aliases``) or, for a preset space, how to search it anyway. A
    parameter of ``library`` (the model or arguments class the space is for) is never taken for a close
    spelling: ``colsample_bylevel`` is XGBoost's own, not a slip for ``colsample_bytree``."""
    if not unknown:
        return
    name = next(iter(unknown))
    listed = f"its keywords: {', '.join(keywords)}"
    own = library is not None and name in inspect.signature(library).parameters
    meant = aliases.get(name.lower()) or (None if own else next(iter(difflib.get_close_matches(name, list(keywords), n=1)), None))
    if meant in keywords:
        raise TypeError(f"{what}() has no keyword {name!r} (did you mean {meant}=?); {listed}")
    if meant:  # a note, such as why the number of rounds is not searched
        raise TypeError(f"{what}() has no keyword {name!r}: {meant}; {listed}")
    if not space:
        raise TypeError(f"{what}() has no keyword {name!r}; {listed}")
    raise TypeError(f"{what}() has no keyword {name!r}; to search it, add it to the space it returns: "
                    f"ts.Space({{**{what}(), {name!r}: ts.Float(low, high)}}) (ts.Int or ts.Categorical for "
                    f"whole numbers and choices); {listed}")


def check_trial(trial: Any, what: str) -> None:
    """A TypeError unless ``trial`` is a running trial (what the objective receives): a Study, a
    finished trial's record or a trial number fails here rather than at the first report."""
    if all(hasattr(trial, name) for name in ("report", "decision", "study")):
        return
    hint = "study.ask()" if hasattr(trial, "ask") else "the trial your objective is called with"
    raise TypeError(
        f"{what} needs the running trial (the argument of your objective: def objective(trial): ...), "
        f"got {type(trial).__name__}; pass {hint}"
    )


_SET_PREFIX = re.compile(r"^(eval|val|valid|validation|test|train)[_/\-]")


def did_you_mean_metric(metric: str, names: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the name closest to ``metric``, judged on what follows a
    prefix such as ``eval_`` or ``val_`` (``eval_score`` is not close to ``eval_runtime``); a
    name with ``metric``'s own prefix first; or ``""``."""
    def rest(name: str) -> str:
        return _SET_PREFIX.sub("", name)

    close = difflib.get_close_matches(rest(metric), [rest(n) for n in names], n=1)
    if not close:
        return ""
    prefix = metric[: len(metric) - len(rest(metric))]
    found = sorted((n for n in names if rest(n) == close[0]), key=lambda n: not n.startswith(prefix))
    return f" (did you mean {found[0]!r}?)"


def report_and_decide(trial: Any, value: float, step: int) -> None:
    """Report ``value`` at ``step``, ask the pruner once, and raise :class:`TrialPruned` when it
    stops the trial (for callbacks that cannot pause: see :func:`refuse_pausing`), or at once
    when ``value`` is not finite (the run diverged)."""
    with _lock_of(trial):  # trainings in threads sharing one trial's callback: one of them reports a round
        reported = trial.intermediate
        if step in reported:  # a second training starts again at round 1 (a dict lookup: called every round)
            raise ValueError(
                f"trial {trial.number} reported boosting round {max(reported)} and now round {step} again: "
                "one trial's callback follows one training (clones of one estimator fitted in threads, as "
                "GridSearchCV or cross_val_score with n_jobs under joblib's threading backend, share it). To "
                "cross-validate, use xgb.cv / lgb.cv with the callback (it reports the folds' mean), or train "
                "the folds without it and report their mean yourself"
            )
        if not math.isfinite(value):  # diverged: it cannot recover (as the Lightning callback decides)
            raise diverged(trial, value, step, "boosting round")
        trial.report(value, step)
    if trial.decision() is not Decision.CONTINUE:  # asked once: another worker may report meanwhile
        raise TrialPruned(f"trial {trial.number} pruned at step {step}")


def stop_alike(trial: Any, exc: ValueError) -> ValueError:
    """``exc``, a setting the study's trials share that a boosting callback refused at the first round (no
    validation data, a metric not evaluated, a metric better the other way than the study): the study is
    stopped, as the Lightning and Transformers callbacks stop it, where each trial failed alike (optimize
    catches Exception by default)."""
    trial.study.stop()
    return ValueError(f"{exc}; the study is stopped (every trial would fail alike)")


def diverged(trial: Any, value: float, step: int, unit: str) -> TrialPruned:
    """The TrialPruned for a monitored ``value`` that is NaN or infinite at ``step`` (the run diverged), which is
    not reported; the step is kept as ``trial.attrs["diverged_at"]``, as the trainer's bridge keeps it: the
    study drops the exception's message, and the trial read as pruned by the pruner, with no report of that step."""
    trial.set_attr("diverged_at", step)
    return TrialPruned(f"trial {trial.number}: the metric is {value} at {unit} {step}: diverged")


#: a lock per trial object, for :func:`report_and_decide`'s look at the reports and its report to be one step:
#: two trainings in threads reporting round 1 at once both found it unreported, and one value replaced the other
_trial_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_trial_locks_lock = threading.Lock()


def _lock_of(trial: Any) -> threading.Lock:
    with _trial_locks_lock:
        try:
            return _trial_locks.setdefault(trial, threading.Lock())
        except TypeError:  # a trial that cannot be referenced weakly: its own lock, guarding nothing shared
            return threading.Lock()


def reported_before_a_hold(trial: Any, step: int) -> bool:
    """Whether ``step`` is one a resumed trial reported before its worker died: such a trial goes back
    to paused keeping its reports (held) and is resumed from its pause's checkpoint, older than those
    reports, so the steps between are trained again; they are not reported twice (report() refuses
    a step again) nor decided again."""
    paused_at = getattr(getattr(trial, "system", None), "resumed_step", None)
    return paused_at is not None and step <= paused_at and step in trial.intermediate


def moved_checkpoint(path: str, folder: Path) -> str:
    """``path``, a paused trial's checkpoint (stored absolute), or its file in ``folder`` when ``path`` is
    elsewhere in a folder of ``folder``'s last name and that file is there: the project folder moved or
    was copied since the pause (as the trainer's checkpoints, :func:`tunesmith.train.checkpoint.moved_into`).
    Otherwise ``path``, which the caller refuses as outside ``folder``, naming the folder to give."""
    from ..train.checkpoint import moved_into

    moved = moved_into(path, folder, names=1)
    return moved if os.path.exists(moved) else path


def check_pruner(trial: Any, what: str) -> None:
    """A ValueError when the study's pruner pauses (``what``, a boosting callback, cannot resume a
    paused run) or races folds (its steps are boosting rounds), and :func:`check_trial`'s TypeError
    when ``trial`` is not a running trial."""
    check_trial(trial, what)
    if getattr(trial.study.pruner, "pauses", False):  # the interface's flag: a custom pruner has no 'pause'
        raise ValueError(
            f"{what} cannot resume a paused trial, but study {trial.study.name!r} has a pruner "
            f"that pauses ({trial.study.pruner.describe()}); use it without pause=True "
            "(e.g. ts.pruners.ASHA(max_resource=...))"
        )
    refuse_fold_racing(trial, what, "boosting round")


def refuse_fold_racing(trial: Any, what: str, unit: str) -> None:
    """A ValueError when the study races folds (``pruner="folds"``): ``what`` reports a step per ``unit``."""
    refuse_racing(trial, what, unit, "Race folds with tunesmith.cv.cross_validate (one report per fold) and "
                                     "without this callback, or")


def other_framework(owner: Any, name: str, *, mine: str, use: str) -> AttributeError:
    """The AttributeError for ``owner``'s missing attribute ``name``: for a hook name (``on_*``, ``setup``...)
    one that says ``owner`` is ``mine``'s callback and names the one to ``use``. The Lightning and
    Transformers callbacks share the name PruningCallback; handed to the other trainer, each failed
    with "'PruningCallback' object has no attribute 'on_init_end'" (or 'setup')."""
    prop = getattr(type(owner), name, None)
    if isinstance(prop, property):  # the property raised AttributeError itself: that error, not another trainer's
        prop.__get__(owner)
    if name.startswith("_"):  # copy, pickle and hasattr probes: as without this
        return AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}")
    return AttributeError(
        f"{type(owner).__name__} has no {name!r}: this is the callback of {mine}, handed to another trainer; use {use}"
    )


def check_names(what: str, **names: Any) -> None:
    """Each of ``names`` (``data=``, ``metric=``) is None or a non-empty string: a number was kept and
    compared with the evaluation's names at the first iteration, then refused as no such set or metric."""
    for key, value in names.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError(f"{what}: {key} must be a name (a non-empty string) or None, got {value!r}")


def check_direction(trial: Any, metric: str, *, maximize: bool, what: str, others: Sequence[str] = ()) -> None:
    """A ValueError when the study's direction is not the metric's (``maximize``), naming ``others``: the
    metrics the same validation data evaluates that are better the study's way. With ``eval_metric=["auc",
    "logloss"]`` in a study that maximizes, the callback follows the library's early stopping, which takes the
    last metric (XGBoost) or the first (LightGBM), and the error said only "monitor another metric"."""
    want = "maximize" if maximize else "minimize"
    have = str(getattr(trial.study.direction, "value", trial.study.direction))
    if have != want:
        pick = f": {what}(trial, metric={others[0]!r}) (evaluated, and better {'lower' if maximize else 'higher'}: " \
               f"{list(others)})" if others else f" ({what}(trial, metric=...))"
        raise ValueError(
            f"{what}: the metric {metric!r} is better when {'higher' if maximize else 'lower'}, "
            f"but the study's direction is {have!r}; create the study with direction={want!r} "
            f"or monitor another metric{pick}"
        )


# metrics that are better lower, as whole words of the name (eval_wer, val/rmse); "loss" anywhere
# in the name (eval_nll_loss, val_myloss)
LOWER_IS_BETTER = ("error", "err", "wer", "cer", "ter", "perplexity", "ppl", "nll", "mse", "mae",
                   "rmse", "rmsle", "mape", "smape", "distance")  # fmt: skip
# metrics that are better higher, as whole words of the name (val_acc, eval_accuracy, val/f1)
HIGHER_IS_BETTER = ("acc", "accuracy", "f1", "auc", "auroc", "aucpr", "ap", "map", "ndcg", "precision",
                    "recall", "bleu", "rouge", "rouge1", "rouge2", "rougel", "r2", "iou", "miou", "dice",
                    "mcc", "matthews", "correlation", "top1", "top5")  # fmt: skip


def _words(metric: str) -> list[str]:
    return [w for w in re.split(r"[_\-/.\s]+", metric.lower()) if w]


def guess_direction(metric: str) -> str | None:
    """"minimize" for a metric whose name says it is better lower (it contains "loss", or a word
    of :data:`LOWER_IS_BETTER`), "maximize" for one whose name says higher (a word of
    :data:`HIGHER_IS_BETTER`: acc, accuracy, f1, auc...), else None (a custom metric)."""
    words = _words(metric)
    if "loss" in metric.lower() or any(w in LOWER_IS_BETTER for w in words):
        return "minimize"
    if any(w in HIGHER_IS_BETTER for w in words):
        return "maximize"
    return None


#: (metric, direction) pairs warned about, per study object: dropped with the study (keyed by
#: ``id(study)``, every study a long process made stayed here, and a new study that got a freed
#: one's id was never warned)
_warned: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
_warned_lock = threading.Lock()


def warn_direction(trial: Any, metric: str, *, what: str) -> None:
    """Warn once per study and metric when the metric's name says the other direction than the
    study's (:func:`guess_direction`; a name that says nothing is not warned about). A warning,
    not an error as with XGBoost's and LightGBM's known metrics: a custom metric may be named
    ``val_loss_gain`` and be better higher."""
    guess = guess_direction(metric)
    study = getattr(trial, "study", None)
    have = getattr(study, "direction", None)
    have = str(getattr(have, "value", have))
    if guess is None or have not in ("minimize", "maximize") or have == guess:
        return
    key = (metric, have)  # per study object: another of the same name is warned too
    with _warned_lock:
        try:
            seen = _warned.setdefault(study, set())
        except TypeError:  # no study, or one that cannot be referenced weakly: warned each time
            seen = set()
        if key in seen:
            return
        seen.add(key)
    warnings.warn(
        f"{what}: the metric {metric!r} looks better when {'lower' if guess == 'minimize' else 'higher'} "
        f"(from its name), but study {getattr(study, 'name', '?')!r} has direction {have!r}, so the search "
        f"would look for the worst trials; create the study with direction={guess!r} (or monitor another "
        f"metric). If {metric!r} is a custom metric that is better when "
        f"{'higher' if have == 'maximize' else 'lower'}, ignore this warning "
        "(warnings.filterwarnings('ignore', message='.*looks better when'))",
        UserWarning,
        stacklevel=3,
    )
