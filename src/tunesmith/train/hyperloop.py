"""The outer loop of gradient-based tuning: train a few steps, then one hyperparameter step.

Constraints are reparametrizations: the outer optimizer moves an unconstrained ``raw``
tensor and the losses see ``value = transform(raw)``:

    "real"          value = raw
    "positive"      value = exp(raw)                       (log scale)
    (low, high)     value = low + (high - low) * sigmoid(raw)   (logit scale)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from ..exceptions import TunesmithError
from ..space.params import a_type, check_field_types
from .implicit import (
    ImplicitOptions,
    TrainLoss,
    Tree,
    ValLoss,
    check_losses,
    check_not_empty,
    check_not_inference_mode,
    check_one_batch,
    check_start,
    check_trees,
    finite_number,
    hypergradient,
    tree_norm,
)
from .unrolled import load_state, rules_of, state_of, unrolled_hypergradient

Constraint = str | tuple[float, float]
Batches = Callable[[int], Any]  # step -> batch
METHODS = ("implicit", "unrolled")
_T = TypeVar("_T")


def check_constraint(name: str, c: Any) -> Constraint:
    if c in ("real", "positive"):
        return str(c)
    # a list as well as a tuple: JSON and YAML files have no tuples
    if (isinstance(c, (tuple, list)) and len(c) == 2 and all(finite_number(x) for x in c) and c[0] < c[1]
            and math.isfinite(float(c[1]) - float(c[0]))):  # (-1e308, 1e308): every value was "not inside"
        return (float(c[0]), float(c[1]))
    raise ValueError(f"constraint of hyperparameter {name!r} must be 'real', 'positive' or (low, high) with "
                     f"finite low < high and a finite high - low, got {c!r}")



def check_constraints(hparams: Mapping[str, Any], constraints: Mapping[str, Any] | None) -> dict[str, Constraint]:
    """Each hyperparameter's checked constraint ("real" where none is given); a constraint
    for a name that is not a hyperparameter (a typo) is refused, not ignored."""
    unknown = set(constraints or {}) - set(hparams)
    if unknown:
        raise ValueError(f"constraints name unknown hyperparameters {sorted(unknown)}; have {sorted(hparams)}")
    for name, value in hparams.items():
        check_start(name, value)
    return {k: check_constraint(k, (constraints or {}).get(k, "real")) for k in hparams}


def to_raw(value: torch.Tensor, c: Constraint, name: str = "") -> torch.Tensor:
    """The unconstrained tensor whose transform is ``value`` (``name``: for the errors)."""
    which = f"hyperparameter {name!r}" if name else "a hyperparameter"
    if c == "real":
        return value.clone()
    if c == "positive":
        if bool((value <= 0).any()):
            raise ValueError(f"{which} is constrained 'positive' and must start > 0, got {_shown(value)}")
        return value.log()
    assert isinstance(c, tuple)
    low, high = c
    u = (value - low) / (high - low)
    edge = (u <= 0) | (u >= 1)
    if not bool(edge.any()):
        return torch.logit(u)
    # in float32 a value next to an unrepresentable bound (0.7 of (0.2, 0.7): float32 0.69999999) is
    # strictly inside, though its difference to the bound, taken in float32, is 0: measured in float64
    u64 = (value.detach().cpu().double() - low) / (high - low)
    if bool(((u64 <= 0) | (u64 >= 1)).any()):
        raise ValueError(f"{which} is constrained to ({low}, {high}) and must start strictly inside it, "
                         f"got {_shown(value)}")
    return torch.where(edge, torch.logit(u64).to(value.device, value.dtype), torch.logit(u))


def _shown(value: torch.Tensor) -> str:
    flat = value.detach().reshape(-1)
    return repr(float(flat[0])) if flat.numel() == 1 else f"values from {float(flat.min())} to {float(flat.max())}"


def from_raw(raw: torch.Tensor, c: Constraint) -> torch.Tensor:
    if c == "real":
        return raw
    if c == "positive":
        return raw.exp()
    assert isinstance(c, tuple)
    low, high = c
    return low + (high - low) * torch.sigmoid(raw)


def _strict_range(c: Constraint, dtype: torch.dtype) -> tuple[float, float] | None:
    """The closed range of ``dtype``'s values strictly inside constraint ``c`` (None for "real"):
    what rounding put on a bound (a sigmoid that rounds to 1, an exp that rounds to 0 or
    overflows) is clamped into it, so that a recorded value can start another ``tune``."""
    if c == "real":
        return None
    if c == "positive":  # from the smallest positive number of the dtype (subnormal) to the largest
        zero = torch.zeros((), dtype=dtype)
        return float(torch.nextafter(zero, zero + 1)), torch.finfo(dtype).max
    assert isinstance(c, tuple)
    low, high = (torch.tensor(b, dtype=dtype) for b in c)
    if float(low) <= c[0]:
        low = torch.nextafter(low, high)
    if float(high) >= c[1]:
        high = torch.nextafter(high, low)
    return float(low), float(high)


@dataclasses.dataclass(frozen=True)
class OuterStep:
    """One hyperparameter step: the values it was taken at, the validation loss there,
    the hypergradient's norm (in the raw, unconstrained coordinates), the training
    steps done so far and, with a held-out ``select_batch``, the loss on it."""

    step: int
    hparams: dict[str, torch.Tensor]
    val_loss: float
    hypergrad_norm: float
    train_steps: int
    select_loss: float | None = None

    @property
    def score(self) -> float:
        """What the best step is chosen by: the held-out loss if there is one, else the validation loss."""
        return self.val_loss if self.select_loss is None else self.select_loss


class TuneDiverged(TunesmithError, FloatingPointError):
    """Raised by :func:`tune` where the training loss or a hypergradient is not finite. ``step``: the
    outer step it happened in, with the hyperparameter values it was taken at (``val_loss`` and
    ``hypergrad_norm`` nan where the training loss diverged before them), which :func:`hypertune`
    records as a failed trial before it passes the error on. A ``FloatingPointError`` too."""

    def __init__(self, message: str, step: OuterStep) -> None:
        super().__init__(message)
        self.step = step

    def __reduce__(self) -> tuple[Any, ...]:  # pickled from a worker process: rebuilt with its step
        return type(self), (*self.args, self.step), self.__dict__


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """The final hyperparameters and weights, every outer step, and the best of them: the
    step with the lowest finite :attr:`OuterStep.score` (``best``, an index into ``steps``;
    None if none was finite) with the weights it was measured at (``best_params``)."""

    hparams: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    steps: list[OuterStep]
    best: int | None = None
    best_params: dict[str, torch.Tensor] | None = None

    def __repr__(self) -> str:
        """A summary: the dataclass's repr printed every weight tensor (``params``, ``best_params``)."""
        best = ("none finite" if self.steps else "none") if self.best is None else f"steps[{self.best}] (score {self.steps[self.best].score:.4g})"
        n = sum(t.numel() for t in self.params.values())
        return (f"TuneResult({len(self.steps)} outer step{'s' * (len(self.steps) != 1)}; best: {best}; hparams: {_brief(self.hparams)}; "
                f"params: {len(self.params)} tensors, {n:,} weights)")


def _brief(values: Mapping[str, torch.Tensor], most: int = 8) -> str:
    """Hyperparameter values as numbers (a tensor of several as its shape and range), the first ``most``."""
    def one(t: torch.Tensor) -> str:
        if t.numel() == 1:
            return f"{float(t):.4g}"
        return f"tensor of {tuple(t.shape)} in [{float(t.min()):.3g}, {float(t.max()):.3g}]" if t.numel() else "empty"
    shown = [f"{k!r}: {one(v.detach())}" for k, v in list(values.items())[:most]]
    more = f", ... {len(values) - most} more" if len(values) > most else ""
    return "{" + ", ".join(shown) + more + "}"


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """outer_steps: hyperparameter steps. inner_steps: training steps before each
    (warm_start_steps more before the first). inner_optimizer: ``factory(params list) ->
    torch optimizer`` (stepped with a closure, so LBFGS works). hyper_optimizer: the same
    for the raw hyperparameters. reset_inner: restart the inner optimizer's state after each
    hyperparameter step. method: "implicit" (implicit differentiation at the trained
    weights; ``implicit`` says how the inverse Hessian-vector product is solved) or
    "unrolled" (differentiate through the last ``unroll_steps`` of each ``inner_steps``
    training steps; the inner optimizer must be SGD, Adam or AdamW). max_hyper_step: a trust
    limit, the most any raw (unconstrained: log / logit) hyperparameter may move in one
    hyperparameter step (a 'positive' one by at most a factor ``exp(max_hyper_step)``), so that
    one step cannot shake the training; None: no limit. patience: stop after this many outer
    steps in a row without a new best score (the held-out loss with a ``select_batch``, else
    the validation loss); None: run all ``outer_steps``."""

    outer_steps: int = 20
    inner_steps: int = 50
    warm_start_steps: int = 0
    inner_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer] = lambda ps: torch.optim.Adam(ps, lr=1e-2)
    hyper_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer] = lambda ps: torch.optim.Adam(ps, lr=0.05)
    reset_inner: bool = False
    implicit: ImplicitOptions = dataclasses.field(default_factory=ImplicitOptions)
    method: str = "implicit"
    unroll_steps: int = 10
    hyper_schedule: Callable[[int], float] | None = None
    max_hyper_step: float | None = None
    patience: int | None = None

    def __post_init__(self) -> None:
        for name in ("outer_steps", "inner_steps", "warm_start_steps", "unroll_steps"):
            v = getattr(self, name)
            low = 0 if name == "warm_start_steps" else 1
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low):  # NumPy's: as check_field_types
                raise ValueError(f"LoopOptions.{name} must be an integer >= {low}, got {v!r}")
        if self.patience is not None and not (isinstance(self.patience, (int, np.integer)) and not isinstance(self.patience, bool)
                                              and self.patience >= 1):
            raise ValueError(f"LoopOptions.patience must be an integer >= 1 or None, got {self.patience!r}")
        if self.max_hyper_step is not None and not (finite_number(self.max_hyper_step) and self.max_hyper_step > 0):
            raise ValueError(f"LoopOptions.max_hyper_step must be a finite number > 0 or None, "
                             f"got {self.max_hyper_step!r}")
        if self.method not in METHODS:
            hint = (f"; {self.method!r} is how the implicit method solves: LoopOptions(method='implicit', "
                    f"implicit=ImplicitOptions(method={self.method!r}))" if self.method in ("cg", "neumann") else "")
            raise ValueError(f"LoopOptions.method must be one of {list(METHODS)}, got {self.method!r}{hint}")
        for name in ("inner_optimizer", "hyper_optimizer"):
            v = getattr(self, name)
            if isinstance(v, torch.optim.Optimizer) or not callable(v):
                raise TypeError(f"LoopOptions.{name} must be a factory, params list -> optimizer (e.g. lambda ps: "
                                f"torch.optim.Adam(ps, lr=1e-2)), got {type(v).__name__}: tune builds the optimizer "
                                "for its own copies of the tensors")
        if self.method == "unrolled" and self.unroll_steps > self.inner_steps:
            raise ValueError(f"LoopOptions.unroll_steps ({self.unroll_steps}) must be <= inner_steps "
                             f"({self.inner_steps}): the unrolled steps are the last of each inner phase")
        check_field_types(self)  # reset_inner: a word was read as true
        if not isinstance(self.implicit, ImplicitOptions):
            raise TypeError(f"LoopOptions.implicit must be an ImplicitOptions, got {type(self.implicit).__name__}")
        if self.hyper_schedule is not None and not callable(self.hyper_schedule):
            raise TypeError(f"LoopOptions.hyper_schedule must be a function of the outer step or None, got "
                            f"{self.hyper_schedule!r}")

    @property
    def label(self) -> str:
        """The method as recorded: "cg" / "neumann" (implicit) or "unrolled"."""
        return "unrolled" if self.method == "unrolled" else self.implicit.method


@torch.enable_grad()  # it trains: inside torch.no_grad() the checks blamed the training loss
def tune(
    train_loss: TrainLoss,
    val_loss: ValLoss,
    params: Mapping[str, torch.Tensor],
    hparams: Mapping[str, Any],
    train_batches: Batches | Any,
    val_batch: Batches | Any,
    *,
    constraints: Mapping[str, Constraint] | None = None,
    options: LoopOptions | None = None,
    callback: Callable[[OuterStep, Tree], None] | None = None,
    select_batch: Any = None,
    check: bool = True,
) -> TuneResult:
    """Alternate training of ``params`` and hypergradient steps on ``hparams`` (implicit or
    unrolled, ``options.method``).

    ``train_batches``: one batch (full-batch training) or ``fn(step) -> batch``.
    ``val_batch``: one batch, or ``fn(outer_step) -> batch`` (a validation minibatch per
    hyperparameter step: a stochastic hypergradient; ``OuterStep.val_loss`` is then that
    minibatch's loss, so choose the step by a fixed ``select_batch``).
    ``constraints``: per hyperparameter name, "real" (default), "positive" or (low, high).
    ``callback(OuterStep, params)`` after each outer step's validation, before its
    hyperparameter step (``params``: the live weights; copy what you keep). Returns the
    final hyperparameters, the trained weights, every outer step and the best one (lowest
    validation loss) with its weights: with warm-continued weights the best step's weights
    are a trained model whose cost is the loop's own, no retraining needed.

    ``select_batch``: held-out validation data that the hypergradients never see (early
    stopping of the outer loop). The best step is then the one with the lowest loss on it
    (``OuterStep.select_loss``, one more forward pass per step): with many hyperparameters the
    hypergradient steps fit ``val_batch`` itself, and its loss flatters the later steps.

    ``check``: before any training, run each loss once (step 0's batches, reused by the loop)
    and refuse a problem whose hypergradient would be 0 or nan at every step
    (:func:`~.implicit.check_losses`). False skips it (one training-loss evaluation fewer, for
    benchmarks that count evaluations).
    """
    opts = _checked_call(options, params, hparams, callback, select_batch)
    cons = check_constraints(hparams, constraints)
    w = {k: t.detach().clone().requires_grad_(True) for k, t in params.items()}
    # the raw hyperparameters of a float16/bfloat16 model are kept in float32 (the losses see them in the
    # weights' dtype): in half precision Adam's eps rounds to 0 and small steps round away
    dtype = _dtype(params)
    raw = {k: _start_raw(k, v, cons[k], dtype, _device(params)).requires_grad_(True) for k, v in hparams.items()}
    batch_at, val_at = _by_step("train_batches", train_batches), _by_step("val_batch", val_batch)

    ranges = {k: _strict_range(c, dtype) for k, c in cons.items()}

    def values() -> Tree:
        return {k: _clamped(from_raw(r, cons[k]).to(dtype), ranges[k]) for k, r in raw.items()}

    def raw_loss(p: Tree, r: Tree, b: Any) -> torch.Tensor:
        return train_loss(p, {k: from_raw(r[k], cons[k]).to(dtype) for k in r}, b)

    # a hyperparameter the training loss ignores, a non-differentiable or non-finite loss: refused
    # here, with a message, instead of a hypergradient that is 0 (or nan) at every step
    if check:  # it reads step 0's batches: the loop reuses them, so a batch function is still called once a step
        batch_at, first_train = _first_kept(batch_at)
        val_at, first_val = _first_kept(val_at)
        check_losses(raw_loss, val_loss, w, {k: r.detach() for k, r in raw.items()}, first_train, first_val,
                     implicit=opts.method == "implicit")
    hopt = _hyper_optimizer(opts, raw)
    inner = _built(opts, "inner_optimizer", list(w.values()))
    if opts.method == "unrolled":
        rules_of(inner, w)  # refuses an unsupported inner optimizer before any training
    steps: list[OuterStep] = []
    best: tuple[int, Tree] | None = None
    base_lrs = [float(g["lr"]) for g in hopt.param_groups]
    done = _at_outer_step(0, lambda: _train(train_loss, w, values, inner, batch_at, 0, opts.warm_start_steps))
    for k in range(opts.outer_steps):
        if opts.reset_inner:
            inner = _built(opts, "inner_optimizer", list(w.values()))
        val_k = val_at(k)
        if callable(val_batch):  # an empty one gave a nan loss and a hypergradient of 0, without a word
            check_not_empty(f"val_batch({k})", val_k)
        hg, vl, done, taken_on = _at_outer_step(k, functools.partial(_phase, train_loss, raw_loss, val_loss, w, raw,
                                                                     values, inner, batch_at, val_k, done, opts))
        rec = OuterStep(k, {k2: v.detach().clone() for k2, v in values().items()}, vl, tree_norm(hg), done,
                        _loss_on(val_loss, w, select_batch))
        steps.append(rec)
        if not math.isfinite(rec.hypergrad_norm):
            raise TuneDiverged(f"the hypergradient at outer step {k} is not finite (validation loss there: {vl}); "
                               + _nonfinite_cause(steps, val_k, taken_on, inner, w), rec)
        if math.isfinite(rec.score) and (best is None or rec.score < steps[best[0]].score):
            best = (k, {n: t.detach().clone() for n, t in w.items()})
        if callback is not None:
            callback(rec, {n: t.detach() for n, t in w.items()})
        if opts.patience is not None and k - (best[0] if best else -1) >= opts.patience:
            break  # early stopping of the outer loop: no new best for `patience` steps
        if opts.hyper_schedule is not None:
            _schedule_rate(hopt, base_lrs, opts.hyper_schedule, k)
        _hyper_step(hopt, raw, hg, opts.max_hyper_step)
    final = {k: v.detach().clone() for k, v in values().items()}
    return TuneResult(final, {k: t.detach() for k, t in w.items()}, steps,
                      best[0] if best else None, best[1] if best else None)


def _checked_call(options: LoopOptions | None, params: Mapping[str, torch.Tensor], hparams: Mapping[str, Any],
                  callback: Any, select_batch: Any) -> LoopOptions:
    """The options :func:`tune` runs with, once its arguments are checked (before any training)."""
    opts = options or LoopOptions()
    if not isinstance(opts, LoopOptions):
        hint = " (pass it as LoopOptions(implicit=...))" if isinstance(opts, ImplicitOptions) else ""
        raise TypeError(f"tune's options must be a LoopOptions, got {type(opts).__name__}{hint}")
    check_trees(params, hparams)
    check_not_inference_mode()
    if callback is not None and not callable(callback):  # called after the first outer step's training
        raise TypeError(f"tune's callback must be a function callback(step, params) or None, got {callback!r}")
    if callable(select_batch) and not isinstance(select_batch, (tuple, list, Mapping, torch.Tensor)):
        raise TypeError("tune takes select_batch as one fixed batch (the held-out rows every step is scored on), got "
                        f"{a_type(select_batch)}; a function of the step is for val_batch only")
    check_not_empty("select_batch", select_batch)
    if select_batch is not None and _nonfinite_inputs(select_batch):  # every step's score would be nan, none the best
        raise ValueError(f"select_batch holds NaN or inf values (in {_nonfinite_inputs(select_batch)}): clean the data")
    return opts


def _hyper_optimizer(opts: LoopOptions, raw: Tree) -> torch.optim.Optimizer:
    """The optimizer of the raw hyperparameters; LBFGS refused."""
    hopt = _built(opts, "hyper_optimizer", list(raw.values()))
    if isinstance(hopt, torch.optim.LBFGS):
        raise ValueError("LoopOptions.hyper_optimizer: LBFGS re-evaluates its objective through a closure, and a "
                         "hyperparameter step has only the one hypergradient; use a first-order optimizer "
                         "(lambda ps: torch.optim.Adam(ps, lr=0.05))")
    return hopt


def _schedule_rate(hopt: torch.optim.Optimizer, base_lrs: list[float], schedule: Callable[[int], float], k: int) -> None:
    """Set each group's rate of ``hopt`` to its first rate times ``schedule(k)``."""
    factor = float(schedule(k))
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"LoopOptions.hyper_schedule({k}) is {factor}; it must be a finite factor >= 0 of the "
                         "hyperparameter optimizer's rate (a negative one would step uphill)")
    for g, lr in zip(hopt.param_groups, base_lrs, strict=True):
        g["lr"] = lr * factor


def _built(opts: LoopOptions, name: str, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """``opts.<name>(params)``, refused unless it is a torch optimizer (a factory that returns None, e.g. a
    ``def`` without ``return``, failed later with "'NoneType' object has no attribute 'step'")."""
    opt = getattr(opts, name)(params)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"LoopOptions.{name} returned {a_type(opt)}, not a torch optimizer: the factory must return "
                        "the optimizer it builds on the list it is given (lambda ps: torch.optim.Adam(ps, lr=1e-2))")
    return opt


def _at_outer_step(k: int, run: Callable[[], _T]) -> _T:
    """``run()``, with the outer step of a :class:`TuneDiverged` it raises set to ``k``."""
    try:
        return run()
    except TuneDiverged as e:
        e.step = dataclasses.replace(e.step, step=k)
        raise


def _start_raw(name: str, value: Any, c: Constraint, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The raw tensor (in :func:`_wide` of ``dtype``) of a start as the losses see it, in the weights'
    dtype; a start inside its constraint that this rounding puts on a bound is refused, saying so. The
    start as given is checked first, in float64: 0.7 of (0.2, 0.7) is float32's 0.69999999, inside."""
    given = torch.as_tensor(value, dtype=torch.float64, device="cpu").detach()
    to_raw(given, c, name)  # off its constraint as given: the message names the value given
    if isinstance(c, tuple) and not _room(c, dtype):  # (0, 2e-300) in float32: every start is 0, "not finite"
        raise ValueError(f"constraint {c!r} of hyperparameter {name!r} holds no value of {dtype} (the weights' "
                         "dtype) strictly inside it: widen it, or tune in a wider dtype")
    start = torch.as_tensor(value, dtype=dtype, device=device).detach()
    wide = start.to(_wide(dtype))
    try:
        return to_raw(wide, c, name)
    except ValueError:
        pass
    past = isinstance(c, tuple) and bool(((wide < c[0]) | (wide > c[1])).any())  # 0.69999999 of (0.2, 0.7) in float16
    raise ValueError(f"hyperparameter {name!r} starts at {_shown(given)}, which is {_shown(start)} in {dtype} (the "
                     f"weights' dtype), {'past' if past else 'on'} a bound of its constraint {c!r}: start it further "
                     "inside")


def _room(c: tuple[float, float], dtype: torch.dtype) -> bool:
    """Whether some value of ``dtype`` lies strictly inside the interval ``c``."""
    low = torch.tensor(c[0], dtype=dtype)
    if float(low) <= c[0]:
        low = torch.nextafter(low, torch.tensor(math.inf, dtype=dtype))
    return float(low) < c[1]


def _clamped(value: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    return value if bounds is None else value.clamp(*bounds)


def _one_batch(name: str, batch: Any) -> Any:
    """``batch`` itself, unless it is a DataLoader or an iterator (:func:`~.implicit.check_one_batch`)."""
    check_one_batch(f"tune takes {name} as one batch or a function step -> batch", batch)
    return batch


def _by_step(name: str, given: Batches | Any) -> Batches:
    """``given`` as a function of the step: a batch function (its StopIteration said), or one batch
    for every step."""
    return _endless(name, given) if callable(given) else (lambda _s: _one_batch(name, given))


def _endless(name: str, at: Batches) -> Batches:
    """``at``, with its StopIteration (an iterator over a DataLoader ends after one pass) said."""
    def call(step: int) -> Any:
        try:
            return at(step)
        except StopIteration as e:
            raise ValueError(f"{name}({step}) ran out of batches (StopIteration): an iterator over a DataLoader "
                             "ends after one pass; cycle it: it = (b for _ in itertools.count() for b in loader)") from e

    return call


def _first_kept(at: Batches) -> tuple[Batches, Any]:
    """``at(0)`` now, and a function that returns it for step 0 instead of calling ``at`` again."""
    first = at(0)
    return (lambda s: first if s == 0 else at(s)), first


def _phase(train_loss: TrainLoss, raw_loss: TrainLoss, val_loss: ValLoss, w: Tree, raw: Tree,
           values: Callable[[], Tree], inner: torch.optim.Optimizer, batch_at: Batches, val_batch: Any, done: int,
           opts: LoopOptions) -> tuple[Tree, float, int, dict[int, Any]]:
    """One inner phase (``inner_steps`` training steps) and the hypergradient at its end:
    (hypergradient in the raw coordinates, validation loss, training steps done, the training batches
    the hypergradient was taken on by step)."""
    r = {k: t.detach() for k, t in raw.items()}
    if opts.method == "unrolled":
        done = _train(train_loss, w, values, inner, batch_at, done, opts.inner_steps - opts.unroll_steps)
        taken_on = _batches_at(batch_at, range(done, done + opts.unroll_steps))
        hg, w_k, state, vl = unrolled_hypergradient(raw_loss, val_loss, w, r, list(taken_on.values()), val_batch,
                                                     rules=rules_of(inner, w), state=state_of(inner, w), check=False)
        with torch.no_grad():
            for k, t in w.items():
                t.copy_(w_k[k])
        load_state(inner, w, state)
        return hg, vl, done + opts.unroll_steps, taken_on
    done = _train(train_loss, w, values, inner, batch_at, done, opts.inner_steps)
    taken_on = _batches_at(batch_at, [done])
    hg = hypergradient(raw_loss, val_loss, w, r, taken_on[done], val_batch, options=opts.implicit, check=False)
    with torch.no_grad():
        vl = float(val_loss({k: t.detach() for k, t in w.items()}, val_batch))
    return hg, vl, done, taken_on


def _batches_at(batch_at: Batches, steps: Sequence[int]) -> dict[int, Any]:
    """The training batches of ``steps``, by step, refused if empty: a hypergradient taken on one trained
    on nothing (its gradient in the weights is 0) without a word, or was 0."""
    batches = {s: batch_at(s) for s in steps}
    for s, batch in batches.items():
        check_not_empty(f"train_batches({s})", batch)
    return batches


def _loss_on(val_loss: ValLoss, w: Tree, batch: Any) -> float | None:
    if batch is None:
        return None
    with torch.no_grad():
        return float(val_loss({k: t.detach() for k, t in w.items()}, batch))


def _dtype(params: Mapping[str, torch.Tensor]) -> torch.dtype:
    return next(iter(params.values())).dtype


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype the raw hyperparameters are kept in: the weights' own, at least float32."""
    return torch.promote_types(dtype, torch.float32)


def _device(params: Mapping[str, torch.Tensor]) -> torch.device:
    return next(iter(params.values())).device


def _train(train_loss: TrainLoss, w: Tree, values: Callable[[], Tree], opt: torch.optim.Optimizer,
           batch_at: Batches, start: int, n: int) -> int:
    for s in range(start, start + n):
        batch = batch_at(s)
        with torch.no_grad():
            lam = {k: v.detach() for k, v in values().items()}

        def closure(batch: Any = batch, lam: Tree = lam) -> float:
            opt.zero_grad()
            loss = train_loss(w, lam, batch)
            loss.backward()
            return float(loss.detach())

        loss = opt.step(closure)
        if loss is not None and not math.isfinite(float(loss)):
            check_not_empty(f"train_batches({s})", batch)  # not the learning rate's fault
            bad = _nonfinite_inputs(batch)
            raise TuneDiverged(
                f"the training loss became {float(loss)} at step {s}; "
                + (f"that step's batch holds NaN or inf values (in {bad}): clean the data" if bad else
                   _half_eps(opt, w) or "lower the inner optimizer's learning rate or constrain the hyperparameters"),
                OuterStep(-1, {k: v.clone() for k, v in lam.items()}, math.nan, math.nan, s))
    return start + n


#: a validation loss this many times the lowest of the steps before: the training diverges
DIVERGED = 1e6


def _nonfinite_cause(steps: list[OuterStep], val_batch: Any, taken_on: Mapping[int, Any], inner: torch.optim.Optimizer,
                     w: Tree) -> str:
    """What the error of a hypergradient that is not finite names as its likely cause and fix: NaN
    or inf in the step's validation data or in a training batch it was taken on (``taken_on``, by
    step), float16's eps, a validation loss that grew by orders of
    magnitude (weights that diverge overflow the hypergradient's second derivatives before the losses
    themselves), else a hyperparameter step too large."""
    bad = _nonfinite_inputs(val_batch)
    if bad:
        return f"that step's validation batch holds NaN or inf values (in {bad}): clean the data"
    for s, batch in taken_on.items():
        bad = _nonfinite_inputs(batch)
        if bad:
            return f"the training batch it was taken on, train_batches({s}), holds NaN or inf values (in {bad}): clean the data"
    half = _half_eps(inner, w)
    if half:
        return half
    before = [(s.val_loss, s.step) for s in steps[:-1] if math.isfinite(s.val_loss)]
    low, at = min(before, default=(math.inf, 0))
    now = steps[-1].val_loss
    if before and low > 0 and now > DIVERGED * low:  # inf too; a ratio of positive losses only
        return (f"the validation loss grew from {low} at outer step {at} to {now}: the training diverges; lower "
                "the inner optimizer's learning rate (or constrain the hyperparameters that make it diverge)")
    return ("a hyperparameter step would make the hyperparameters nan. Lower the hyperparameter optimizer's rate or "
            "set LoopOptions.max_hyper_step, add ImplicitOptions.damping, or constrain the hyperparameters; if "
            "the weights diverge, lower the inner optimizer's learning rate")


def _half_eps(opt: torch.optim.Optimizer, w: Tree) -> str:
    """The cause of a nan in float16 training that the message should name: an ``eps`` (Adam's
    1e-8) that rounds to 0 in float16, so that a zero gradient's step is 0 / 0. "" if not that."""
    if not any(t.dtype == torch.float16 for t in w.values()):
        return ""
    tiny = [float(g["eps"]) for g in opt.param_groups if isinstance(g.get("eps"), float) and
            float(torch.tensor(g["eps"], dtype=torch.float16)) == 0.0]
    return (f"the weights are float16, where the inner optimizer's eps ({tiny[0]}) rounds to 0 and a step divides "
            "0 by 0: pass eps=1e-4 (lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-4)), or tune in float32 or "
            "bfloat16") if tiny else ""


def _nonfinite_inputs(batch: Any) -> list[str]:
    """Which tensors of a batch (a tensor, or a tuple/list/dict of them) hold NaN or inf."""
    items = batch.items() if isinstance(batch, Mapping) else enumerate(batch if isinstance(batch, (tuple, list)) else [batch])
    return [f"item {k}" if isinstance(k, int) else repr(k) for k, t in items
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _hyper_step(opt: torch.optim.Optimizer, raw: Tree, hg: Tree, limit: float | None = None) -> None:
    before = {k: r.detach().clone() for k, r in raw.items()} if limit is not None else {}
    opt.zero_grad()
    for k, r in raw.items():
        r.grad = hg[k].detach().to(r.dtype).reshape(r.shape).clone()
    opt.step()
    if limit is not None:
        with torch.no_grad():
            for k, r in raw.items():
                r.copy_(before[k] + (r - before[k]).clamp(-limit, limit))


def flat_values(hparams: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Scalars by name: a scalar hyperparameter as itself, a tensor one as ``name[i]``
    (flattened index), so that each is one parameter of a study. Values of a single- or
    half-precision tensor are the shortest decimals that give back the same float32
    (1e-3, not its float64 expansion 0.0009999999310821295)."""
    out: dict[str, float] = {}
    for k, v in hparams.items():
        t = torch.as_tensor(v).detach()
        short = t.dtype in (torch.float32, torch.float16, torch.bfloat16)
        xs = [float(str(np.float32(x))) if short else float(x) for x in t.reshape(-1).tolist()]
        if t.ndim == 0:
            out[k] = xs[0]
        else:
            out.update({f"{k}[{i}]": x for i, x in enumerate(xs)})
    return out


def names(hparams: Mapping[str, Any]) -> Sequence[str]:
    return list(flat_values({k: torch.as_tensor(v) for k, v in hparams.items()}))
