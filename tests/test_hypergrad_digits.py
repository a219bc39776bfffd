"""Hypergradient descent on the digits MLP against the best fixed learning rate of a grid."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from tunesmith.train import TrainConfig, Trainer  # noqa: E402

GRID = [0.005, 0.01, 0.02, 0.04, 0.08]  # Adam, 20 epochs: the best (0.02) is inside
# the same warm-up (300 of 380 steps) for the fixed rates and the adapted ones
BASE = dict(optimizer="adam", epochs=20, batch_size=64, warmup_steps=300, device="cpu", restore_best=True)
ADAPT = dict(lr_adapt="hypergradient-mult", hyper_lr=0.15)


def _data():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return (x[perm[:1200]], y[perm[:1200]]), (x[perm[1200:]], y[perm[1200:]])


def _best_val_loss(**cfg) -> float:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return Trainer(net, TrainConfig(**{**BASE, **cfg})).fit(*_data()).best_loss


@pytest.fixture(scope="module")
def grid() -> dict[float, float]:
    return {lr: _best_val_loss(lr=lr) for lr in GRID}


@pytest.mark.slow
@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_from_10x_off_it_ends_within_5_percent_of_the_best_fixed_rate(grid, factor: float) -> None:
    """Measured (best validation loss relative to the best fixed rate's): 0.99 from 10x
    above, 0.91 from 10x below; the fixed rates there reach 1.45 and 2.44."""
    best_lr = min(grid, key=grid.__getitem__)
    assert best_lr not in (GRID[0], GRID[-1])  # the grid brackets the best rate
    adapted = _best_val_loss(lr=best_lr * factor, **ADAPT)
    fixed = _best_val_loss(lr=best_lr * factor)
    assert adapted <= 1.05 * grid[best_lr], (adapted, grid)
    assert fixed > 1.3 * grid[best_lr]  # the start alone is far from it
