"""Online learning-rate adaptation by hypergradient descent (Baydin et al., ICLR 2018).

Notation, per parameter group ``g`` (shapes: those of the group's parameters):

    alpha_t   the group's base learning rate before optimizer step t (``group["base_lr"]``)
    f_t       the schedule's factor at step t (warm-up, decay), so step t uses alpha_t * f_t
    grad_t    the gradient of the training loss at the weights before step t
    u_t       the update direction of step t:  theta_{t+1} = theta_t - alpha_t * f_t * u_t
              (plain SGD: grad_t; SGD with momentum: its buffer; Adam: m_hat / (sqrt(v_hat) + eps);
              AdamW: that plus weight_decay * theta_t)

Then d loss(theta_t) / d alpha = -f_{t-1} * grad_t . u_{t-1}, and hypergradient descent on alpha is

    h_t       = f_{t-1} * grad_t . u_{t-1}        (summed over the group's parameters)
    alpha_t   = alpha_{t-1} + hyper_lr * h_t      (rule "additive"; floored at ``FLOOR * alpha_0``)
    alpha_t   = alpha_{t-1} * (1 + hyper_lr * cos(grad_t, u_{t-1}))   (rule "multiplicative")

The multiplicative rule (the paper's normalized variant) does not depend on the scale
of the gradients: ``hyper_lr`` is the largest relative change of the rate per step, so
one value (about 0.01-0.05) serves every model, and a rate 10x off is corrected in
``ln(10) / hyper_lr`` steps of agreeing gradients.

``u`` is measured, not re-derived: ``(theta_before - theta_after) / alpha_{t-1}`` holds
``f_{t-1} * u_{t-1}`` for every torch optimizer (momentum, Nesterov, AMSGrad, weight
decay and gradient clipping included), so one rule serves SGD, Adam and AdamW (HD-SGD
and HD-Adam of the paper), and the schedule multiplies the adapted base rate.
"""

from __future__ import annotations

import math
from typing import Any

import torch

#: the adapted learning rate never falls below this fraction of the group's initial one
#: (at 0 the step would vanish, and with it the signal that could raise it again)
FLOOR = 1e-4
RULES = ("additive", "multiplicative")


class HypergradientLR:
    """Adapts each parameter group's ``base_lr`` of ``optimizer`` by hypergradient descent.

    Call :meth:`before_step` after the backward pass (gradients in ``.grad``) and
    before the trainer sets ``lr = base_lr * factor``; call :meth:`after_step` right
    after ``optimizer.step()``. Groups whose initial rate is 0 (a frozen backbone) stay 0.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, hyper_lr: float, rule: str = "additive") -> None:
        if rule not in RULES:
            raise ValueError(f"HypergradientLR: rule must be one of {list(RULES)}, got {rule!r}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"HypergradientLR adapts the rates of a torch optimizer, got {type(optimizer).__name__}; "
                            "pass the optimizer that steps the model (torch.optim.SGD(model.parameters(), ...))")
        if not (isinstance(hyper_lr, (int, float)) and not isinstance(hyper_lr, bool) and 0 < hyper_lr < math.inf):
            raise ValueError(f"HypergradientLR: hyper_lr must be a finite number > 0 (the rate's step size), got "
                             f"{hyper_lr!r}")
        if rule == "multiplicative" and hyper_lr >= 1.0:
            raise ValueError(f"HypergradientLR(rule='multiplicative') needs hyper_lr < 1, got {hyper_lr!r}: it is the "
                             "largest relative change of the rate per step, so at 1 or more one step against the "
                             "previous direction sets the rate to 0 or below; try 0.02-0.1")
        self.optimizer = optimizer
        self.hyper_lr = float(hyper_lr)
        self.rule = rule
        groups = optimizer.param_groups
        if any("base_lr" not in g for g in groups):
            raise ValueError("HypergradientLR adapts each parameter group's 'base_lr' (the rate before the schedule's "
                             "factor), which this optimizer's groups lack; in a loop of your own set g['base_lr'] = "
                             "g['lr'] and, before each step, g['lr'] = g['base_lr'] * factor; or let the trainer do "
                             "it: TrainConfig(lr_adapt='hypergradient', hyper_lr=...)")
        self.initial = [float(g["base_lr"]) for g in groups]
        self.directions: list[list[torch.Tensor | None]] = [[None] * len(g["params"]) for g in groups]
        self.last_h = [0.0] * len(groups)
        self._before: list[list[torch.Tensor | None]] = []

    def before_step(self) -> None:
        """Update each group's base rate from the current gradients and the previous
        directions, then remember the weights to measure this step's direction."""
        for i, g in enumerate(self.optimizer.param_groups):
            h, norms = self._dot(g["params"], self.directions[i])
            self.last_h[i] = h
            if self.initial[i] > 0 and h != 0.0:
                g["base_lr"] = max(self._updated(float(g["base_lr"]), h, norms), FLOOR * self.initial[i])
        self._before = [[p.detach().clone() if p.grad is not None else None for p in g["params"]]
                        for g in self.optimizer.param_groups]

    def after_step(self) -> None:
        """Measure each parameter's direction of the step just taken (per unit base rate)."""
        for i, g in enumerate(self.optimizer.param_groups):
            base = float(g["base_lr"])
            for j, (p, before) in enumerate(zip(g["params"], self._before[i], strict=True)):
                self.directions[i][j] = None if before is None or base <= 0 else before.sub_(p.detach()).div_(base)
        self._before = []

    def _updated(self, lr: float, h: float, norms: float) -> float:
        if self.rule == "additive":
            return lr + self.hyper_lr * h
        return lr * (1.0 + self.hyper_lr * h / norms) if norms > 0 else lr

    @staticmethod
    def _dot(params: list[torch.Tensor], directions: list[torch.Tensor | None]) -> tuple[float, float]:
        """``grad . d`` over the group, and ``|grad| * |d|`` (for the cosine)."""
        dot, gg, dd = 0.0, 0.0, 0.0
        for p, d in zip(params, directions, strict=True):
            if p.grad is not None and d is not None:
                gv, dv = p.grad.detach().reshape(-1).double(), d.reshape(-1).double()
                dot += float(gv @ dv)
                gg += float(gv @ gv)
                dd += float(dv @ dv)
        return dot, (gg * dd) ** 0.5

    def learning_rates(self) -> dict[str, float]:
        """Each group's adapted base rate, by the group's role (``"all/decay"``, ...)."""
        return {str(g.get("role", i)): float(g["base_lr"]) for i, g in enumerate(self.optimizer.param_groups)}

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain numbers only (checkpoints load with ``weights_only=True``);
        the base rates themselves travel in the optimizer's state."""
        return {"directions": [[None if d is None else d.detach().cpu() for d in ds] for ds in self.directions],
                "initial": list(self.initial), "last_h": list(self.last_h)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        groups = self.optimizer.param_groups
        dirs = state["directions"]
        if [len(d) for d in dirs] != [len(g["params"]) for g in groups]:
            raise ValueError("the checkpoint's hypergradient state has other parameter groups than this optimizer")
        directions = [[None if d is None else d.to(p.device, p.dtype) for d, p in zip(ds, g["params"], strict=True)]
                      for ds, g in zip(dirs, groups, strict=True)]
        initial, last_h = [float(x) for x in state["initial"]], [float(x) for x in state["last_h"]]
        self.directions, self.initial, self.last_h = directions, initial, last_h  # all or none
