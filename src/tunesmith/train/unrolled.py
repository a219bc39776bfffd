"""Hypergradients by truncated unrolled differentiation through the last K optimizer steps.

Notation (as in :mod:`tunesmith.train.implicit`; ``w``: weights, ``lam``: hyperparameters,
``s``: the optimizer's state, e.g. Adam's moments):

    (w_{k+1}, s_{k+1}) = Phi(w_k, s_k, grad_w L_T(w_k, lam; batch_k))     k = 0 .. K-1
    f(lam)             = L_V(w_K(lam))

with ``w_0`` and ``s_0`` held fixed (the truncation: the steps before the last K are not
differentiated). ``Phi`` is the update rule of SGD (momentum, Nesterov, weight decay) or
Adam/AdamW, written as pure tensor functions so that ``torch.func.grad`` differentiates
``f`` through all K steps, second derivatives of ``L_T`` included (reverse-over-reverse).
The result is the exact gradient of the K-step objective; it approximates ``dL_V / dlam``
of fully trained weights, with a bias that shrinks as K grows (Shaban et al., AISTATS 2019).
Cost: K training gradients forward plus about 2K backward, and memory for K steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..space.params import a_type
from .implicit import (
    TrainLoss,
    Tree,
    ValLoss,
    check_finite_result,
    check_losses,
    check_one_batch,
    check_trees,
    explain_in_place,
    hparams_like,
)

KINDS = ("sgd", "adam", "adamw")
SUPPORTED = "torch.optim.SGD, torch.optim.Adam or torch.optim.AdamW"
State = dict[str, dict[str, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class StepRule:
    """One parameter's update rule, read from a torch optimizer's parameter group."""

    kind: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"StepRule.kind must be one of {list(KINDS)}, got {self.kind!r}")


def rules_of(opt: torch.optim.Optimizer, params: Mapping[str, torch.Tensor]) -> dict[str, StepRule]:
    """The update rule of each named parameter of ``opt`` (SGD, Adam or AdamW only)."""
    kind = _kind(opt)
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    rules: dict[str, StepRule] = {}
    for name, p in params.items():
        if id(p) not in by_id:
            raise ValueError(f"parameter {name!r} is not among the inner optimizer's parameters; they are matched by "
                             "identity: pass the very tensors the optimizer was built on (not .detach() or .clone() "
                             "copies of them)")
        rules[name] = _rule(kind, by_id[id(p)])
    return rules


def _kind(opt: torch.optim.Optimizer) -> str:
    # exact types: a subclass may change the update, which the unrolled steps would then miss
    kinds = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}
    kind = kinds.get(type(opt))
    if kind is None:
        raise ValueError(f"unrolled differentiation supports {SUPPORTED} as the inner optimizer, got "
                         f"{type(opt).__name__}; use one of them, or method='implicit' (any optimizer)")
    return kind


def _rule(kind: str, group: Mapping[str, Any]) -> StepRule:
    for flag in ("maximize", "amsgrad"):
        if group.get(flag):
            raise ValueError(f"unrolled differentiation does not support {flag}=True in the inner optimizer")
    if isinstance(group["lr"], torch.Tensor):
        raise ValueError("unrolled differentiation needs a float learning rate in the inner optimizer")
    if kind == "adam" and group.get("decoupled_weight_decay"):
        kind = "adamw"  # torch.optim.Adam(decoupled_weight_decay=True) steps as AdamW does
    if kind == "sgd":
        return StepRule(kind, float(group["lr"]), float(group["weight_decay"]), float(group["momentum"]),
                        float(group["dampening"]), bool(group["nesterov"]))
    b1, b2 = group["betas"]
    return StepRule(kind, float(group["lr"]), float(group["weight_decay"]), betas=(float(b1), float(b2)),
                    eps=float(group["eps"]))


def state_of(opt: torch.optim.Optimizer, params: Mapping[str, torch.Tensor]) -> State:
    """The optimizer's current state per named parameter, as plain tensors (detached copies)."""
    out: State = {}
    for name, p in params.items():
        st = opt.state.get(p, {})
        out[name] = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else torch.tensor(float(v)))
                     for k, v in st.items() if v is not None}
    return out


def load_state(opt: torch.optim.Optimizer, params: Mapping[str, torch.Tensor], state: State) -> None:
    """Write the unrolled steps' end state back into ``opt``, so training continues from it."""
    for name, p in params.items():
        st = opt.state[p]
        group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
        for k, v in state[name].items():
            old = st.get(k)
            if k == "step" and isinstance(old, torch.Tensor):
                st[k] = v.detach().clone().to(device=old.device, dtype=old.dtype)
            elif k == "step":  # a fresh state: where torch keeps the counter (on the weights' device when fused)
                on_device = group.get("fused") or group.get("capturable")
                st[k] = v.detach().clone().to(device=p.device if on_device else "cpu", dtype=torch.float32)
            else:
                st[k] = v.detach().clone()


# -- the pure update rules -----------------------------------------------------------------------
def apply_rule(rule: StepRule, p: torch.Tensor, g: torch.Tensor, st: Mapping[str, torch.Tensor]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step of ``rule`` on parameter ``p`` with gradient ``g``: (new p, new state),
    equal to what the torch optimizer does, but differentiable in ``p``, ``g`` and ``st``."""
    if rule.kind == "sgd":
        return _sgd(rule, p, g, st)
    return _adam(rule, p, g, st)


def _sgd(rule: StepRule, p: torch.Tensor, g: torch.Tensor, st: Mapping[str, torch.Tensor]
         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if rule.weight_decay:
        g = g + rule.weight_decay * p
    if not rule.momentum:
        return p - rule.lr * g, {}
    buf = st.get("momentum_buffer")
    buf = g if buf is None else rule.momentum * buf + (1 - rule.dampening) * g
    d = g + rule.momentum * buf if rule.nesterov else buf
    return p - rule.lr * d, {"momentum_buffer": buf}


def _adam(rule: StepRule, p: torch.Tensor, g: torch.Tensor, st: Mapping[str, torch.Tensor]
          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    b1, b2 = rule.betas
    # the counter in float32 (as torch keeps it): in a bf16 one, 256 + 1 == 256
    step = st.get("step", torch.zeros((), dtype=torch.float32)).detach() + 1
    if rule.weight_decay and rule.kind == "adamw":
        p = p * (1 - rule.lr * rule.weight_decay)
    elif rule.weight_decay:
        g = g + rule.weight_decay * p
    m = b1 * st.get("exp_avg", torch.zeros_like(p)) + (1 - b1) * g
    v = b2 * st.get("exp_avg_sq", torch.zeros_like(p)) + (1 - b2) * g * g
    wide = torch.promote_types(p.dtype, torch.float32)
    bc1 = (1 - b1 ** step.to(wide)).to(p.dtype)
    bc2 = (1 - b2 ** step.to(wide)).to(p.dtype)
    denom = _safe_sqrt(v) / torch.sqrt(bc2) + rule.eps
    return p - (rule.lr / bc1) * m / denom, {"step": step, "exp_avg": m, "exp_avg_sq": v}


def _safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) derivative at 0, where a gradient entry was exactly 0."""
    pos = v > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, v, torch.ones_like(v))), torch.zeros_like(v))


def unroll(train_loss: TrainLoss, params: Tree, hparams: Tree, batches: Sequence[Any],
           rules: Mapping[str, StepRule], state: State) -> tuple[Tree, State]:
    """``len(batches)`` optimizer steps from ``params``, as differentiable tensor functions."""
    from torch.func import grad

    w, st = dict(params), {k: dict(v) for k, v in state.items()}
    for batch in batches:
        g = grad(train_loss)(w, hparams, batch)
        for name in w:
            w[name], st[name] = apply_rule(rules[name], w[name], g[name], st[name])
    return w, st


def unrolled_hypergradient(
    train_loss: TrainLoss,
    val_loss: ValLoss,
    params: Mapping[str, torch.Tensor],
    hparams: Mapping[str, torch.Tensor],
    train_batches: Sequence[Any],
    val_batch: Any,
    *,
    rules: Mapping[str, StepRule],
    state: State | None = None,
    check: bool = True,
) -> tuple[Tree, Tree, State, float]:
    """``d L_V(w_K) / d lam`` through the ``K = len(train_batches)`` steps started at ``params``.

    ``rules``: each parameter's update rule (:func:`rules_of` reads them from a torch
    optimizer); ``state``: the optimizer state to start from (:func:`state_of`; None: fresh).
    Returns the hypergradient (the keys and shapes of ``hparams``, on the weights' device), the weights ``w_K``
    and state after the K steps (detached), and ``L_V(w_K)``. ``check``: first refuse a
    problem whose hypergradient would be meaningless (:func:`~.implicit.check_losses`);
    ``tune`` checks once and then passes False.
    """
    from torch.func import grad

    one_batch = isinstance(train_batches, tuple) and all(isinstance(t, torch.Tensor) for t in train_batches)
    if one_batch or not isinstance(train_batches, Sequence):
        raise ValueError(f"unrolled_hypergradient takes train_batches as a list of the K batches of the unrolled "
                         f"steps, got {'one (x, y) batch' if one_batch else type(train_batches).__name__}; "
                         "one batch K times: [batch] * K")
    if len(train_batches) < 1:
        raise ValueError("unrolled_hypergradient needs at least one training batch (K >= 1 steps)")
    check_one_batch("unrolled_hypergradient takes val_batch as one batch", val_batch)
    check_trees(params, hparams)
    lacking = [k for k in params if not isinstance(rules, Mapping) or k not in rules]
    if lacking:
        raise ValueError(f"unrolled_hypergradient: rules has no update rule for the weights {lacking[:5]}; read them "
                         "from the optimizer built on these tensors: rules=rules_of(optimizer, params)")
    _check_state(state, params)
    _check_complete(state, {k: rules[k] for k in params})
    if check:
        check_losses(train_loss, val_loss, params, hparams, train_batches[0], val_batch)
    w0 = {k: t.detach() for k, t in params.items()}
    s0 = {k: {n: t.detach() for n, t in (state or {}).get(k, {}).items()} for k in w0}
    lam = hparams_like(hparams, w0)

    def objective(h: Tree) -> tuple[torch.Tensor, tuple[Tree, State, torch.Tensor]]:
        w, st = unroll(train_loss, w0, h, train_batches, rules, s0)
        loss = val_loss(w, val_batch)
        return loss, (w, st, loss)

    with explain_in_place():
        hg, (w, st, loss) = grad(objective, has_aux=True)(lam)
    if check:
        check_finite_result("unrolled_hypergradient", hg, w0)
    return (hg, {k: t.detach() for k, t in w.items()},
            {k: {n: t.detach() for n, t in v.items()} for k, v in st.items()}, float(loss))


def _check_state(state: State | None, params: Mapping[str, torch.Tensor]) -> None:
    """A state of another model's optimizer failed deep in torch ("The size of tensor a (8) must match ..."),
    one not a mapping of tensors (``"step": 3``) with AttributeError's "'int' object has no attribute 'detach'"."""
    fix = "state=state_of(optimizer, params), or None for a fresh one"
    if state is not None and not (isinstance(state, Mapping) and all(isinstance(b, Mapping) for b in state.values())):
        raise TypeError(f"unrolled_hypergradient: state is a dict of weight name -> dict of buffer name -> tensor, "
                        f"got {_kind_of(state)}: pass {fix}")
    for k, buffers in (state or {}).items():
        for n, t in (buffers.items() if k in params else ()):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"unrolled_hypergradient: state[{k!r}][{n!r}] is {t!r}, not a tensor: pass {fix}")
            if isinstance(t, torch.Tensor) and t.ndim and t.shape != params[k].shape:
                raise ValueError(f"unrolled_hypergradient: state[{k!r}][{n!r}] has the shape {tuple(t.shape)}, not the "
                                 f"weight's {tuple(params[k].shape)}: pass the state of the optimizer built on these "
                                 f"tensors, {fix}")


#: the buffers an Adam or AdamW step reads (what torch keeps after a step); none at all is a fresh state
ADAM_BUFFERS = ("step", "exp_avg", "exp_avg_sq")


def _check_complete(state: State | None, rules: Mapping[str, StepRule]) -> None:
    """An Adam state with some of its buffers left out (a hand-made one) ran with zeros for them: another
    hypergradient, without a word (-0.91 against -0.12 without ``exp_avg_sq``). ``rules``: the given
    weights' (the state of a weight not given is not read)."""
    for k, buffers in (state or {}).items():
        lacking = [n for n in ADAM_BUFFERS if n not in buffers] if buffers and k in rules else []
        if lacking and rules[k].kind in ("adam", "adamw"):
            raise ValueError(f"unrolled_hypergradient: state[{k!r}] has no {', '.join(map(repr, lacking))}: an Adam "
                             f"state holds {', '.join(ADAM_BUFFERS)} (or nothing, a fresh one); pass "
                             "state=state_of(optimizer, params), or None for a fresh one")


def _kind_of(state: Any) -> str:
    if not isinstance(state, Mapping):
        return a_type(state)
    return f"{a_type(next(b for b in state.values() if not isinstance(b, Mapping)))} among its values"


def unrolled_objective(train_loss: TrainLoss, val_loss: ValLoss, params: Mapping[str, torch.Tensor],
                       hparams: Mapping[str, torch.Tensor], train_batches: Sequence[Any], val_batch: Any, *,
                       rules: Mapping[str, StepRule], state: State | None = None) -> float:
    """``L_V(w_K)`` of the K steps from ``params`` (the function whose gradient
    :func:`unrolled_hypergradient` returns; for checks by finite differences)."""
    with torch.no_grad():
        w0 = {k: t.detach() for k, t in params.items()}
        s0 = {k: dict((state or {}).get(k, {})) for k in w0}
    w, _ = unroll(train_loss, w0, hparams_like(hparams, w0), train_batches, rules, s0)
    return float(val_loss(w, val_batch))

