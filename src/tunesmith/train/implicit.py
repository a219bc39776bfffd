"""Hypergradients of a validation loss by implicit differentiation (Lorraine et al., AISTATS 2020).

Notation (``w``: the model's weights, a dict name -> tensor; ``lam``: the hyperparameters,
a dict name -> tensor of any shape):

    L_T(w, lam)   training loss:   ``train_loss(params, hparams, batch) -> scalar``
    L_V(w)        validation loss: ``val_loss(params, batch) -> scalar``
    w*(lam)       the trained weights: grad_w L_T(w*, lam) = 0
    H             the Hessian d^2 L_T / dw^2 at (w*, lam)

By the implicit function theorem dw*/dlam = -H^{-1} d^2 L_T / dw dlam, so

    dL_V/dlam = -(d^2 L_T / dlam dw) q,     q = H^{-1} grad_w L_V

``q`` is found without forming ``H``: by conjugate gradient ("cg") or by the truncated
Neumann series ``q ~ alpha * sum_{j<K} (I - alpha H)^j v`` ("neumann"), each from
Hessian-vector products (reverse-over-reverse: one ``torch.func.vjp`` of ``torch.func.grad``, reused);
the mixed product is one vector-Jacobian product (``torch.func.vjp``). The result is exact
at a stationary point of ``L_T``; with weights trained only approximately it is an
approximation whose error shrinks with the remaining training gradient.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from ..space.params import Param, a_type

Tree = dict[str, torch.Tensor]
TrainLoss = Callable[[Tree, Tree, Any], torch.Tensor]
ValLoss = Callable[[Tree, Any], torch.Tensor]
METHODS = ("cg", "neumann")


@dataclasses.dataclass(frozen=True)
class ImplicitOptions:
    """How the inverse Hessian-vector product is solved.

    method: "cg" (conjugate gradient; needs a positive definite ``H``, which
        ``damping`` helps) or "neumann" (truncated Neumann series; needs
        ``0 < alpha < 2 / lambda_max(H)``; None estimates ``1 / lambda_max`` by power iteration).
    iters: CG iterations, or Neumann terms. tol: CG stops when the residual's norm is
        below ``tol`` times the right-hand side's. damping: ``H + damping * I`` is inverted.
    """

    method: str = "cg"
    iters: int = 50
    tol: float = 1e-10
    alpha: float | None = None
    damping: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"ImplicitOptions.method must be one of {list(METHODS)}, got {self.method!r}")
        if not (isinstance(self.iters, (int, np.integer)) and not isinstance(self.iters, bool) and self.iters >= 1):
            raise ValueError(f"ImplicitOptions.iters must be an integer >= 1, got {self.iters!r}")
        if self.alpha is not None and not (finite_number(self.alpha) and self.alpha > 0):
            raise ValueError(f"ImplicitOptions.alpha must be a finite number > 0 (or None to estimate it), got {self.alpha!r}")
        for name in ("damping", "tol"):  # tol=inf would stop CG before its first step: a hypergradient of 0
            v = getattr(self, name)
            if not (finite_number(v) and v >= 0):
                raise ValueError(f"ImplicitOptions.{name} must be a finite number >= 0, got {v!r}")


def finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# -- dicts of tensors as vectors ------------------------------------------------------------
def _dot(a: Tree, b: Tree) -> torch.Tensor:
    """``a . b``, summed in at least float32: float16 squares of small gradients round to 0."""
    wide = torch.promote_types(next(iter(a.values())).dtype, torch.float32)
    return sum((torch.sum(a[k].to(wide) * b[k].to(wide)) for k in a), torch.zeros((), dtype=wide))


def _axpy(alpha: float | torch.Tensor, x: Tree, y: Tree) -> Tree:
    """``alpha * x + y``."""
    return {k: alpha * x[k] + y[k] for k in x}


def _scale(alpha: float | torch.Tensor, x: Tree) -> Tree:
    return {k: alpha * v for k, v in x.items()}


def tree_norm(x: Mapping[str, torch.Tensor]) -> float:
    """The Euclidean norm of all tensors of ``x`` together."""
    return float(torch.sqrt(sum((torch.sum(v.detach().double() ** 2) for v in x.values()), torch.zeros((), dtype=torch.float64))))


# -- the pieces -------------------------------------------------------------------------------
def hvp_fn(train_loss: TrainLoss, params: Tree, hparams: Tree, batch: Any, *, damping: float = 0.0) -> Callable[[Tree], Tree]:
    """``x -> (H + damping I) x``, ``H`` the Hessian of ``L_T`` in the weights at ``params``.

    The training gradient is computed once, with its graph kept (``torch.func.vjp``); each
    product is then one reverse pass through that graph (``H`` is symmetric, so ``H^T x = H x``):
    about the cost of one training step per product, where forward-over-reverse redoes the
    gradient every time (4x slower on a small CPU model)."""
    from torch.func import grad, vjp

    pull = vjp(lambda p: grad(train_loss)(p, hparams, batch), params)[1]

    def hvp(x: Tree) -> Tree:
        hx = pull(x)[0]
        return _axpy(damping, x, hx) if damping else hx

    return hvp


def solve_cg(hvp: Callable[[Tree], Tree], v: Tree, *, iters: int, tol: float = 0.0) -> Tree:
    """Conjugate gradient for ``H q = v``."""
    q = {k: torch.zeros_like(t) for k, t in v.items()}
    r = dict(v)
    p = dict(v)
    rr = _dot(r, r)
    stop = tol**2 * rr
    for _ in range(iters):
        if rr <= stop:
            break
        hp = hvp(p)
        a = rr / _dot(p, hp)
        q, r = _axpy(a, p, q), _axpy(-a, hp, r)
        rr_new = _dot(r, r)
        p = _axpy(rr_new / rr, p, r)
        rr = rr_new
    return q


def solve_neumann(hvp: Callable[[Tree], Tree], v: Tree, *, iters: int, alpha: float) -> Tree:
    """``alpha * sum_{j<iters} (I - alpha H)^j v``, the truncated Neumann series of ``H^{-1} v``."""
    term, total = dict(v), dict(v)
    for _ in range(iters - 1):
        term = _axpy(-alpha, hvp(term), term)
        total = {k: total[k] + term[k] for k in total}
    return _scale(alpha, total)


def largest_eigenvalue(hvp: Callable[[Tree], Tree], like: Tree, *, iters: int = 20, seed: int = 0) -> float:
    """The largest eigenvalue of ``H`` by power iteration (for the Neumann step)."""
    g = torch.Generator().manual_seed(seed)
    x = {k: torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device) for k, t in like.items()}
    lam = 0.0
    for _ in range(iters):
        n = tree_norm(x)
        x = _scale(1.0 / max(n, 1e-30), x)
        hx = hvp(x)
        lam = float(_dot(x, hx))
        x = hx
    return lam


def hparams_like(hparams: Mapping[str, Any], params: Mapping[str, torch.Tensor]) -> Tree:
    """The hyperparameters as detached tensors on the weights' device (numbers and integer
    tensors in the weights' dtype, as ``tune`` takes them: only floating-point tensors can
    have a gradient; floating ones in the wider of their dtype and the weights': a float16 start
    next to float32 weights had its hypergradient rounded to float16, and one above 65504 was inf):
    CPU values next to CUDA weights would fail in every step."""
    ref = next(iter(params.values()))
    return {k: torch.as_tensor(t, dtype=torch.promote_types(t.dtype, ref.dtype) if _floating(t) else ref.dtype,
                               device=ref.device).detach()
            for k, t in hparams.items()}


def _floating(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())


def check_trees(params: Any, hparams: Any) -> None:
    """Refuse weights or hyperparameters that are not a non-empty dict of tensors (a model
    given as ``params``, an empty dict), with the expression that builds the right one."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict name -> tensor of the weights, got {type(params).__name__}; from a "
                        "model: {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}")
    if not params:
        raise ValueError("params is empty: there are no weights to train (pass the model's trainable parameters)")
    bad = [k for k, v in params.items() if not (isinstance(v, torch.Tensor) and v.is_floating_point())]
    if bad:
        raise TypeError(f"params {bad[:5]} are not floating-point tensors; only those can be trained")
    if not isinstance(hparams, Mapping) or not hparams:
        raise ValueError(f"hparams must be a non-empty dict name -> value of the hyperparameters to tune, got "
                         f"{hparams!r}; with nothing to tune, train with tunesmith.train.Trainer")
    for name, value in hparams.items():
        check_start(name, value)


def check_start(name: str, value: Any) -> None:
    """Refuse a start that is not a number or numbers (a tensor, an array, a list): a search-space
    parameter (``ts.Float(...)``, ``ts.Categorical(...)``), text or None failed in torch with "must be
    real number, not Float" or "new(): invalid data type 'str'"; a yes/no value (:func:`check_not_bool`)."""
    choice = ("a categorical or integer choice has no gradient: search it with a sampler (ts.Study) and tune the "
              "continuous hyperparameters by gradient inside each trial")
    if isinstance(value, Param):
        raise TypeError(f"hyperparameter {name!r} is a search-space parameter, {value!r}: gradient-based tuning moves "
                        "a start value, so give one (e.g. 1e-3) and its range as a constraint ('positive' for a "
                        f"log-scale one, (low, high) for an interval); {choice}")
    check_not_bool(name, value)
    if isinstance(value, torch.Tensor):
        return
    try:
        torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"hyperparameter {name!r} must start at a number or a tensor (or numbers), got "
                        f"{value!r}; {choice}") from None


def check_not_bool(name: str, value: Any) -> None:
    """Refuse a yes/no start (True, a bool tensor, NumPy's np.True_ or bool array, a list of
    bools): it would be taken as 1.0 or 0.0 and given a gradient it does not have."""
    if isinstance(value, (bool, torch.Tensor)):
        is_bool = isinstance(value, bool) or value.dtype == torch.bool
    else:
        try:
            is_bool = torch.as_tensor(value).dtype == torch.bool
        except (TypeError, ValueError, RuntimeError):  # not a number: refused, with its message, where it is used
            is_bool = False
    if is_bool:
        raise TypeError(f"hyperparameter {name!r} is a bool, {value!r}: a yes/no choice has no gradient (it was "
                        "taken as 1.0 or 0.0); search it with a sampler (ts.Categorical([False, True]))")


def check_not_empty(what: str, batch: Any) -> None:
    """Refuse a batch with a tensor of 0 rows: its mean loss would be nan, blamed on the model."""
    if 0 in _rows(batch):
        raise ValueError(f"{what} is empty (a tensor in it has 0 rows): its loss would be nan; pass data with rows")


def check_one_batch(what: str, batch: Any) -> None:
    """Refuse a DataLoader, an iterator or a Dataset where one batch is wanted: those hold many batches
    or samples, and the loss would fail on them with an unpacking error that does not say why (a Dataset
    of two samples would unpack into them)."""
    if batch is None:  # the loss would fail unpacking it, without saying which batch
        raise TypeError(f"{what}, got None")
    if isinstance(batch, torch.utils.data.Dataset):  # Trainer.fit takes one, so a reader passes the same here
        tensors = " (a TensorDataset's: dataset.tensors)" if hasattr(batch, "tensors") else ""
        raise TypeError(f"{what}, got {a_type(batch)}, which holds samples, not a batch; pass the batch itself, "
                        f"e.g. (x_train, y_train){tensors}, or a function of the step that returns one")
    if isinstance(batch, torch.utils.data.DataLoader) or hasattr(batch, "__next__"):
        raise TypeError(f"{what}, got {a_type(batch)}; for minibatches from a DataLoader pass e.g. "
                        "it = (b for _ in itertools.count() for b in loader) and lambda _step: next(it)")


def _rows(batch: Any) -> list[int]:
    """The first dimensions of the tensors in a batch (a tensor, a tuple/list or a dict of them)."""
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (tuple, list)) else [batch]
    return [t.shape[0] for t in items if isinstance(t, torch.Tensor) and t.ndim > 0]


def check_not_inference_mode() -> None:
    """Refuse a call inside ``torch.inference_mode()``, where autograd records nothing whatever
    ``torch.enable_grad()`` says (every loss was "not differentiable"); ``torch.no_grad()`` is lifted."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError("called inside torch.inference_mode(), where autograd records nothing: the checks, the "
                           "training and tune's hypergradients need it; call it outside that block")


@torch.enable_grad()  # called inside torch.no_grad(), every loss was "not differentiable"
def check_losses(train_loss: TrainLoss, val_loss: ValLoss, params: Mapping[str, torch.Tensor],
                 hparams: Mapping[str, Any], train_batch: Any, val_batch: Any, *, implicit: bool = False) -> None:
    """Refuse, with a message that says what is wrong, a problem whose hypergradient would be
    meaningless: a hyperparameter that is not finite, a loss that is not a finite scalar, a
    training loss that does not depend on the weights or on some hyperparameter through
    differentiable torch operations (its hypergradient would be 0 forever), a validation loss
    that is not differentiable in the weights (accuracy, argmax: the same). One forward and
    backward pass of each loss (torch autograd, which can tell a disconnected input from a
    zero gradient). ``implicit``: also refuse weights that the validation loss uses and the training
    loss does not (the training loss's Hessian is singular there: CG's solve turned nan)."""
    check_not_inference_mode()
    w = {k: t.detach().requires_grad_(t.is_floating_point()) for k, t in params.items()}
    lam = {k: t.clone().requires_grad_(True) for k, t in hparams_like(hparams, w).items()}
    for what, batch in (("the training batch", train_batch), ("the validation batch", val_batch)):
        check_not_empty(what, batch)
    bad = [k for k, t in lam.items() if not bool(torch.isfinite(t.detach()).all())]
    if bad:
        raise ValueError(f"hyperparameter(s) {bad} are not finite (nan or inf); start them at finite values")
    lt = _scalar("train_loss(params, hparams, batch)", train_loss(w, lam, train_batch))
    if not lt.requires_grad:
        raise ValueError("train_loss(params, hparams, batch) depends neither on the weights nor on the "
                         "hyperparameters through differentiable torch operations (a .detach(), .item(), NumPy "
                         "or a comparison in it?): there is no hypergradient to take")
    grads = torch.autograd.grad(lt, [*w.values(), *lam.values()], allow_unused=True)
    if all(g is None for g in grads[:len(w)]):
        raise ValueError("train_loss(params, hparams, batch) does not depend on the weights it is given "
                         "(call the model with them: torch.func.functional_call(model, params, (x,)))")
    unused = [k for k, g in zip(lam, grads[len(w):], strict=True) if g is None]
    if unused:
        raise ValueError(f"train_loss(params, hparams, batch) does not use the hyperparameter(s) {unused} "
                         "(or not through differentiable torch operations): their hypergradient would be 0 and "
                         "they would never move. Use them in the training loss, or leave them out of hparams")
    lv = _scalar("val_loss(params, batch)", val_loss(w, val_batch))
    if not lv.requires_grad:
        raise ValueError("val_loss(params, batch) is not differentiable in the weights (accuracy, argmax, a "
                         "comparison, .item()?): every hypergradient would be 0. Tune a differentiable loss such "
                         "as cross-entropy (docs/hypergradients.md, 'When it helps, and when it does not')")
    if implicit:
        _check_trained(list(w), grads[:len(w)], torch.autograd.grad(lv, list(w.values()), allow_unused=True))


def _check_trained(names: list[str], train_grads: Any, val_grads: Any) -> None:
    """Refuse weights the validation loss uses and the training loss does not: training never moves them,
    the Hessian is singular in them, and CG's solve diverged to nan (blamed on an overflow)."""
    untrained = [k for k, gt, gv in zip(names, train_grads, val_grads, strict=True) if gt is None and gv is not None]
    if untrained:
        raise ValueError(f"val_loss(params, batch) uses the weights {untrained[:5]}, which train_loss(params, hparams, "
                         "batch) does not: training leaves them as they are, and implicit differentiation needs the "
                         "training loss's Hessian invertible in every weight given. Leave them out of params (fixed "
                         "in the losses), or use the unrolled method")


def _one_value(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1


def _scalar(what: str, value: Any) -> torch.Tensor:
    if not (isinstance(value, torch.Tensor) and value.dim() == 0):  # shape (1,): torch.func's "Expected f(*args)"
        raise ValueError(f"{what} must return a scalar tensor, got {type(value).__name__}"
                         + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
                         + ("; return loss.reshape(()) for its one value" if _one_value(value) else ""))
    if not bool(torch.isfinite(value.detach()).all()):
        raise ValueError(f"{what} is {float(value.detach())} at the given weights and hyperparameters; the hypergradient "
                         "needs finite losses (a diverged model, a log of 0, a nan in the data?)")
    return value.reshape(())


def hypergradient(
    train_loss: TrainLoss,
    val_loss: ValLoss,
    params: Mapping[str, torch.Tensor],
    hparams: Mapping[str, torch.Tensor],
    train_batch: Any,
    val_batch: Any,
    *,
    options: ImplicitOptions | None = None,
    check: bool = True,
) -> Tree:
    """``dL_V / dlam`` at the trained weights ``params``, by implicit differentiation.

    ``params`` should be (close to) a minimum of ``train_loss(., hparams, train_batch)``.
    Returns a dict with the keys and shapes of ``hparams``, on the weights' device.
    ``check``: first refuse a problem whose hypergradient would be meaningless
    (:func:`check_losses`: a hyperparameter the training loss does not use, a
    non-differentiable or non-finite loss); ``tune`` checks once and then passes False.
    """
    from torch.func import grad, vjp

    opts = options or ImplicitOptions()
    for name, batch in (("train_batch", train_batch), ("val_batch", val_batch)):
        check_one_batch(f"hypergradient takes {name} as one batch", batch)
    if not isinstance(opts, ImplicitOptions):
        hint = " (a LoopOptions is tune's: pass its .implicit here)" if hasattr(opts, "implicit") else ""
        raise TypeError(f"hypergradient's options must be an ImplicitOptions, got {type(opts).__name__}{hint}")
    check_trees(params, hparams)
    if check:
        check_losses(train_loss, val_loss, params, hparams, train_batch, val_batch, implicit=True)
    w = {k: t.detach() for k, t in params.items()}
    lam = hparams_like(hparams, w)
    with explain_in_place():
        v = grad(val_loss)(w, val_batch)
        hvp = hvp_fn(train_loss, w, lam, train_batch, damping=opts.damping)
        q = _inverse_hvp(hvp, v, opts)
        pull = vjp(lambda h: grad(train_loss)(w, h, train_batch), lam)[1]
        mixed = pull(q)[0]
    out = {k: -t for k, t in mixed.items()}
    if check:
        check_finite_result("hypergradient", out, w)
    return out


def check_finite_result(what: str, hg: Tree, weights: Tree) -> None:
    """A hypergradient that overflowed (a hyperparameter of 1e30 in float32) was returned as nan, silently."""
    bad = [k for k, t in hg.items() if not bool(torch.isfinite(t).all())]
    if bad:
        dtype = next(iter(weights.values())).dtype
        raise FloatingPointError(
            f"{what}: the hypergradient of {bad} is not finite (nan or inf): the computation overflowed in "
            f"{dtype}, though both losses were finite at the start; start these hyperparameters at smaller values"
            + (" or compute in float64" if dtype != torch.float64 else "")
            + (", or add ImplicitOptions.damping (a Hessian that is singular or not positive definite there)"
               if what == "hypergradient" else "") + " (check=False returns it as it is)")


@contextlib.contextmanager
def explain_in_place() -> Iterator[None]:
    """torch.func's refusal of an in-place change of a captured tensor, with its usual cause and the fix."""
    try:
        yield
    except RuntimeError as e:
        if "mutate a captured Tensor" not in str(e):
            raise
        raise RuntimeError(
            "a loss changed in place a tensor it did not create, which torch.func cannot differentiate; the usual "
            "cause is batch norm updating its running statistics in training mode. Call the model with copies of "
            "its buffers, torch.func.functional_call(model, {**{k: b.clone() for k, b in model.named_buffers()}, "
            "**params}, (x,)), as classifier_losses does") from e


def _inverse_hvp(hvp: Callable[[Tree], Tree], v: Tree, opts: ImplicitOptions) -> Tree:
    if opts.method == "cg":
        return solve_cg(hvp, v, iters=opts.iters, tol=opts.tol)
    alpha = opts.alpha
    if alpha is None:
        top = largest_eigenvalue(hvp, v)
        if not top > 0:
            raise ValueError("the training loss's Hessian has no positive curvature here; set ImplicitOptions.damping "
                             "or train the weights closer to a minimum")
        alpha = 1.0 / top
    return solve_neumann(hvp, v, iters=opts.iters, alpha=alpha)
