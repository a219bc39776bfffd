"""Data of the training pictures: the overfitting graph of one trial (or a Trainer's
History), and Adam in action on a two-dimensional loss surface."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Sized
from typing import Any

import numpy as np

from ..cv import CV_ATTR, train_and_validation
from ..trial import FrozenTrial, TrialState, finite_float
from .records import BEST_COLOR, Chart, Series, group_color, nothing


def overfitting(source: Any, *, log_y: bool = False) -> Chart:
    """Training and validation loss per epoch, the early-stopping point and the restored
    best checkpoint marked, the epochs that showed overfitting dotted.

    ``source``: a trial (a :class:`FrozenTrial`, as ``study.trials[k]``, run through
    ``tunesmith.train.objective``: validation = its reports; training loss, best step
    and stopping from its attrs) or a :class:`tunesmith.train.History`.
    """
    if isinstance(source, FrozenTrial):
        curves = _from_trial(source)
        name = f"trial {source.number}"
    elif hasattr(source, "records"):
        curves = _from_history(source)
        name = "training run"
    else:
        raise TypeError(f"overfitting() takes a trial or a train History, got {type(source).__name__}")
    title = f"{name}: training and validation loss"
    if isinstance(source, FrozenTrial) and not curves["losses"] and isinstance(source.attrs.get(CV_ATTR), Mapping):
        kept = ("; its training score over the folds is the 'train (train − validation)' column of tunesmith show "
                "and of the report" if train_and_validation(source.attrs[CV_ATTR]) else "")
        return nothing("overfitting", title, f"{name} reported the running mean of its cross-validation folds, "
                                             f"not a loss by epoch (one fold's training curve is not kept{kept})")
    val = curves["val"]
    from .study_data import UNPLACEABLE, unreadable_reports

    left_out = unreadable_reports([source]) if isinstance(source, FrozenTrial) and not curves["losses"] else ""
    if not val:
        why = f": its reports are all {UNPLACEABLE}" if left_out else " (no reports)"
        return nothing("overfitting", title + left_out, f"{name} has no validation values{why}")
    if not curves["losses"]:  # not a tunesmith.train trial: its reports may be any metric
        return Chart("overfitting", f"{name}: reported values (no training loss recorded){left_out}", "step",
                     "reported value", tuple(_overfit_series(curves, "reported value", "step")), log_y=log_y,
                     int_x=True)
    unit = curves.get("unit", "epoch")
    return Chart("overfitting", title, unit, "loss", tuple(_overfit_series(curves, unit=unit)), log_y=log_y,
                 int_x=True)


def _from_trial(t: FrozenTrial) -> dict[str, Any]:
    """The validation curve is the trainer's validation loss (``attrs["curves"]``): a trial
    that monitors a metric such as accuracy reports that metric instead. Without the trainer's
    curves, the reports, as they are."""
    steps = sorted(t.intermediate)
    curves = t.attrs.get("curves")
    curves = curves if isinstance(curves, Mapping) else {}  # the trainer's; an objective's own "curves" is not
    val_loss = _losses(curves.get("val_loss"))
    if val_loss:
        val = [(k, float(v)) for k, v in enumerate(val_loss, start=1) if v is not None]
    else:
        val = [(k, t.intermediate[k]) for k in steps if math.isfinite(t.intermediate[k])]  # the title says how many not
    train = [float("nan") if v is None else float(v) for v in _losses(curves.get("train_loss"))]
    best = t.attrs.get("best_step") if _number(t.attrs.get("best_step")) else None
    if best is None and val and t.attrs.get("best_checkpoint"):
        best = min(((k, v) for k, v in val if math.isfinite(v)), key=lambda kv: kv[1], default=(None,))[0]
    stopped = t.attrs.get("stopped_early") or t.state in (TrialState.PRUNED, TrialState.PAUSED)
    stop = steps[-1] if steps and stopped else None
    at: Any = t.attrs.get("overfit_at")
    at = at if finite_float(at) is not None else None  # an objective's own attrs may hold NaN, or 10**400
    return {"val": val, "train": list(enumerate(train, start=1)), "best": best, "stop": stop,
            "overfit": _overfit_steps(at, steps), "overfit_at": at, "pruned": t.state is TrialState.PRUNED,
            "paused": t.state is TrialState.PAUSED, "so_far": t.state in (TrialState.RUNNING, TrialState.PAUSED),
            "losses": bool(val_loss or train), "unit": _unit(_losses(curves.get("epoch")))}


def _unit(epochs: Sequence[Any]) -> str:
    """What the k-th record is: epoch k, unless the run validated every ``eval_every`` steps."""
    return "epoch" if all(e == k for k, e in enumerate(epochs, start=1)) else "validation"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _losses(v: Any) -> list[Any]:
    """A list of losses (numbers, None for a validation skipped) as the trainer stores them; [] otherwise.
    A number beyond a float's range (an int such as ``10**400``, which JSON keeps whole) is None."""
    if not isinstance(v, list) or not all(x is None or _number(x) for x in v):
        return []
    return [x if isinstance(x, float) or x is None else finite_float(x) for x in v]


def _overfit_steps(at: Any, steps: Sequence[int]) -> list[int]:
    """The epochs drawn as overfitting: from the step where the sustained rise began on."""
    if at is None:
        return []
    return [k for k in steps if k >= int(at)]


def _from_history(h: Any) -> dict[str, Any]:
    val = [(r.index + 1, r.val_loss) for r in h.records if r.val_loss is not None]
    at = None if h.overfit_at is None else h.overfit_at + 1
    return {"val": val, "train": [(r.index + 1, r.train_loss) for r in h.records],
            "best": None if h.best_index is None else h.best_index + 1,
            "stop": len(h.records) if h.stopped_early else None,
            "overfit": _overfit_steps(at, [r.index + 1 for r in h.records]), "overfit_at": at,
            "so_far": not (getattr(h, "finished", True) or h.stopped_early),
            "pruned": False, "losses": True, "unit": _unit([r.epoch for r in h.records])}


def _overfit_label(at: Any, unit: str, so_far: bool) -> str:
    """The legend of the overfitting markers: they are the run's summary (``overfit_at``, the
    smoothed gap's rise after the best validation) from where it began, not the live flag."""
    return f"overfitting from {unit} {int(at)} (summary{' so far' if so_far else ''}: the gap's rise after the best)"


def _overfit_series(c: dict[str, Any], val_label: str = "validation loss", unit: str = "epoch") -> list[Series]:
    val = dict(c["val"])
    out = []
    def mode(points: Sized) -> str:  # a line of one point draws nothing
        return "lines" if len(points) > 1 else "markers"

    if c["train"]:
        out.append(Series("training loss", [k for k, _ in c["train"]], [v for _, v in c["train"]],
                          color=group_color(0), gid="train", mode=mode(c["train"])))
    out.append(Series(val_label, list(val), list(val.values()), color=group_color(1), gid="val", mode=mode(val)))
    over = [k for k in c["overfit"] if k in val]
    if over:
        out.append(Series(_overfit_label(c["overfit_at"], unit, c["so_far"]), over, [val[k] for k in over],
                          mode="markers", marker="v", color=group_color(4), gid="overfitting"))
    if c["stop"] is not None:
        what = "pruned" if c["pruned"] else "paused" if c.get("paused") else "early stopping"
        out.append(Series(f"{what} ({unit} {c['stop']})", [c["stop"]], mode="vline", color="#555555",
                          dash="--", gid="early-stop"))
    if c["best"] in val:
        out.append(Series(f"restored best checkpoint ({unit} {c['best']})", [c["best"]], [val[c["best"]]],
                          mode="markers", marker="*", color=BEST_COLOR, gid="best"))
    return out


# -- Adam in action ---------------------------------------------------------------------------

ROSENBROCK_START = (-1.5, 2.0)
ADAM_DEFAULT = {"lr": 0.05, "beta1": 0.9, "beta2": 0.999}
ADAM_SWEEPS = {"lr": (0.005, 0.05, 0.3), "beta1": (0.0, 0.9, 0.99), "beta2": (0.9, 0.999, 0.99999)}


def rosenbrock(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss surface: a curved narrow valley, minimum 0 at (1, 1)."""
    return (1 - x) ** 2 + 10 * (y - x**2) ** 2


def _rosenbrock_grad(p: np.ndarray) -> np.ndarray:
    x, y = p
    return np.array([-2 * (1 - x) - 40 * x * (y - x * x), 20 * (y - x * x)])


def adam_path(lr: float, beta1: float, beta2: float, *, steps: int = 300, eps: float = 1e-8,
              start: Sequence[float] = ROSENBROCK_START) -> np.ndarray:
    """Adam's iterates on :func:`rosenbrock` (steps + 1, 2): the update of torch.optim.Adam."""
    p = np.array(start, dtype=float)
    m, v = np.zeros(2), np.zeros(2)
    path = [p.copy()]
    for t in range(1, steps + 1):
        g = _rosenbrock_grad(p)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        path.append(p.copy())
    return np.array(path)


def adam_in_action(vary: str = "lr", values: Sequence[float] | None = None, *, steps: int = 300,
                   base: Mapping[str, float] | None = None) -> Chart:
    """Adam's path on Rosenbrock's valley from (-1.5, 2) for each value of one
    hyperparameter (``vary``: "lr", "beta1" or "beta2"), the others at ``base``."""
    if vary not in ADAM_SWEEPS:
        raise ValueError(f"vary must be one of {list(ADAM_SWEEPS)}, got {vary!r}")
    hp = {**ADAM_DEFAULT, **(base or {})}
    xs, ys = np.linspace(-2, 2, 81), np.linspace(-1, 3, 81)
    z = np.log1p(rosenbrock(*np.meshgrid(xs, ys)))
    series = [Series(None, xs.tolist(), ys.tolist(), mode="contour", z=z.tolist(), color="Greys", gid="surface")]
    for i, v in enumerate(values or ADAM_SWEEPS[vary]):
        run = {**hp, vary: float(v)}
        path = adam_path(run["lr"], run["beta1"], run["beta2"], steps=steps)
        loss = float(rosenbrock(*path[-1]))
        series.append(Series(f"{vary}={v:g} (loss {loss:.2g} after {steps} steps)", path[:, 0].tolist(),
                             path[:, 1].tolist(), color=group_color(i), width=1.2, gid=f"path-{vary}={v:g}"))
    series.append(Series("minimum (1, 1)", [1.0], [1.0], mode="markers", marker="*", color=BEST_COLOR, gid="minimum"))
    others = ", ".join(f"{k}={hp[k]:g}" for k in ADAM_DEFAULT if k != vary)
    return Chart("adam", f"Adam on Rosenbrock's valley: varying {vary} ({others})", "x", "y", tuple(series),
                 color_label="log(1 + loss)")
