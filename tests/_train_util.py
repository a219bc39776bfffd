"""Tiny models and data shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import tunesmith as ts
from tunesmith.pruners import Decision, Pruner


def blobs(n: int = 256, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = ((x[:, 0] - 0.5 * x[:, 1] + 0.3 * torch.randn(n, generator=g)) > 0).long()
    return x, y


def split(n: int = 256, d: int = 8, seed: int = 0):
    x, y = blobs(n, d, seed)
    k = int(0.75 * n)
    return (x[:k], y[:k]), (x[k:], y[k:])


def scripted(curve: list[float]):
    """A loss that is real in training and follows ``curve`` in validation (one batch per validation)."""
    it = iter(curve)

    def loss(out, y):
        if torch.is_grad_enabled():
            return torch.nn.functional.cross_entropy(out, y)
        return torch.tensor(next(it))

    return loss


def mlp(d: int = 8, hidden: int = 16, out: int = 2, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out)
    )


class Net(nn.Module):
    """A backbone of blocks (with batch norm) and a head, for fine-tuning tests."""

    def __init__(self, d: int = 8, hidden: int = 16, out: int = 2, blocks: int = 3) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Linear(d if i == 0 else hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU()) for i in range(blocks)]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}



class PauseAndPromote(Pruner):
    """A pruner that never stops a trial itself and promotes every paused trial at once."""

    pauses = True

    def decide(self, trial, trials, direction) -> Decision:  # type: ignore[no-untyped-def]
        return Decision.CONTINUE

    def promotable(self, trials, direction) -> list[int]:  # type: ignore[no-untyped-def]
        return [t.number for t in trials if t.state is ts.TrialState.PAUSED]


def paused_and_resumed(study: ts.Study, checkpoint: Path) -> ts.Trial:
    """A trial of ``study`` (pruner: :class:`PauseAndPromote`) that reported step 1, paused with
    ``checkpoint`` as its attribute, and was resumed."""
    first = study.ask()
    first.report(1.0, 1)
    first.set_attr("checkpoint", str(checkpoint))
    study.tell(first, state="paused")
    resumed = study.ask()
    assert resumed.is_resumed
    return resumed
