"""unfreeze_last followed by GradualUnfreezing: refused where it would undo the thawing (docs/train.md)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _train_util import Net, snapshot, split  # noqa: E402

from tunesmith.train import GradualUnfreezing, TrainConfig, Trainer, freeze, unfreeze_last  # noqa: E402

CFG = TrainConfig(epochs=2, batch_size=16, lr=0.01)


def thawed_net() -> Net:
    """The docs' snippet: a frozen backbone whose last 2 of 4 blocks are thawed."""
    torch.manual_seed(0)
    net = Net(blocks=4)
    freeze(net.backbone)
    unfreeze_last(net.backbone, 2)
    return net


def test_gradual_unfreezing_from_zero_after_unfreeze_last_is_refused() -> None:
    net = thawed_net()
    with pytest.raises(ValueError, match=r"would freeze 2 of the 2 blocks that are trainable now .* Pass start=2"):
        Trainer(net, CFG, head="head", callbacks=[GradualUnfreezing(net.backbone, every=1)]).fit(*split(96))


def test_the_documented_combination_trains_the_thawed_blocks_from_the_first_epoch() -> None:
    net = thawed_net()
    before = snapshot(net)
    Trainer(net, CFG.with_params({"epochs": 1}), head="head",
            callbacks=[GradualUnfreezing(net.backbone, every=1, start=2)]).fit(*split(96))
    after = snapshot(net)
    changed = [any(not torch.equal(before[k], after[k]) for k in before if k.startswith(f"backbone.{b}.")) for b in range(4)]
    assert changed == [False, False, True, True]
