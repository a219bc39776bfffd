"""The CUDA path: same code, bf16 autocast, exact resume (run with ``-m gpu`` on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import Net, mlp, snapshot, split  # noqa: E402

from tunesmith.train import TrainConfig, Trainer, checkpoint, freeze  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_bf16_trains_and_keeps_fp32_weights() -> None:
    train, val = split(512)
    model = mlp(hidden=64)
    trainer = Trainer(model, TrainConfig(epochs=5, batch_size=32, lr=0.01), metrics=["accuracy"])
    assert trainer.device.type == "cuda" and trainer.bf16
    h = trainer.fit(train, val)
    assert h.records[-1].train_loss < h.records[0].train_loss
    assert h.records[-1].metrics["accuracy"] > 0.7
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())
    assert all(r.samples_per_s > 0 for r in h.records)


def test_cuda_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.01, checkpoint_dir=str(tmp_path / "a"), keep_last=10)
    full_model = mlp(dropout=0.2)
    full = Trainer(full_model, cfg).fit(*split(128))
    mid = checkpoint.list_last(tmp_path / "a")[1]  # after epoch 2
    resumed_model = mlp(dropout=0.2, seed=7)
    resumed = Trainer(resumed_model, cfg.with_params({"checkpoint_dir": str(tmp_path / "b")})).fit(*split(128), resume_from=mid)
    assert resumed.train_losses == pytest.approx(full.train_losses, rel=1e-5)
    assert resumed.val_losses == pytest.approx(full.val_losses, rel=1e-5)


def test_cuda_frozen_backbone_bit_identical() -> None:
    model = Net()
    freeze(model.backbone)
    before = {k: v.cpu() for k, v in snapshot(model).items()}
    Trainer(model, TrainConfig(epochs=2, batch_size=16, optimizer="adamw", weight_decay=0.1)).fit(*split(96))
    after = {k: v.cpu() for k, v in snapshot(model).items()}
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone"))
