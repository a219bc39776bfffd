"""Compute of a gradient-based tuning method, counted in full training runs (benchmarks/hypergrad.md).

Unit: one *evaluation* = a forward and backward pass of the training loss on the training
batch. Training-loss calls are counted as they happen (each call: 1); what a call does beyond
that is added per hyperparameter step from this table (a backward pass costs about two
forward passes, and a pass over ``r`` times the training rows costs ``r`` times as much):

    Hessian-vector product (a reverse pass through the training gradient's graph)    2
    mixed product d/dlam (grad_w L_T . q) (its gradient call counted, its reverse)   2
    validation gradient (forward + backward over the validation rows)                r
    validation loss alone (forward)                                                  r / 3
    held-out selection loss (forward over h times the training rows)                  h / 3
    backward pass through K unrolled optimizer steps (their K calls counted)         2 K

with ``r`` = validation rows / training rows. One full training run is the evaluations of
the task's run (its steps; its one validation forward pass is left out: < 1%). Scoring a
configuration on the test split is reporting, not search, and is counted for no method.
Alongside, the CPU time of the method (test scoring excluded) divided by the CPU time of one
full run measured in the same process: the check that the table does not flatter it.
"""

from __future__ import annotations

import time


class Cost:
    """Evaluations and CPU seconds of one method; ``evals`` is incremented by the training loss."""

    def __init__(self, val_ratio: float = 1.0) -> None:
        self.evals = 0.0
        self.r = float(val_ratio)
        self._cpu = 0.0
        self._since: float | None = None

    def implicit_step(self, cg_iters: int) -> None:
        """The implicit hypergradient (CG) and the validation loss recorded with it."""
        self.evals += self.hyper_evals(cg_iters)

    def hyper_evals(self, cg_iters: int, held_ratio: float = 0.0) -> float:
        """What one implicit hyperparameter step adds (:meth:`implicit_step` and a held-out loss)."""
        return 2 * cg_iters + 2 + self.r + self.r / 3 + held_ratio / 3

    def unrolled_evals(self, k: int, held_ratio: float = 0.0) -> float:
        """What one unrolled hyperparameter step adds beyond its ``k`` training calls
        (:meth:`unrolled_step` and a held-out loss)."""
        return 2 * k + self.r + held_ratio / 3

    def unrolled_step(self, k: int) -> None:
        """The backward pass through ``k`` unrolled steps and the validation gradient at their end."""
        self.evals += 2 * k + self.r

    def forward(self, ratio: float) -> None:
        """A loss alone (forward) over ``ratio`` times the training rows: a held-out selection loss."""
        self.evals += ratio / 3

    def start(self) -> None:
        self._since = time.process_time()

    def pause(self) -> None:
        if self._since is not None:
            self._cpu += time.process_time() - self._since
            self._since = None

    @property
    def cpu(self) -> float:
        return self._cpu + (time.process_time() - self._since if self._since is not None else 0.0)
