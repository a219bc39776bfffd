"""Freezing leaves frozen weights bit-identical; last-k and gradual unfreezing; head replacement."""

from __future__ import annotations

import weakref

import pytest

torch = pytest.importorskip("torch")
from _train_util import Net, snapshot, split  # noqa: E402
from torch import nn  # noqa: E402

from tunesmith.train import (  # noqa: E402
    GradualUnfreezing,
    TrainConfig,
    Trainer,
    freeze,
    replace_head,
    trainable,
    unfreeze,
    unfreeze_last,
)
from tunesmith.train.finetune import keep_frozen_in_eval  # noqa: E402

CFG = TrainConfig(optimizer="adamw", lr=0.05, weight_decay=0.1, l2=1e-3, epochs=2, batch_size=16)


def changed(before: dict, after: dict, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_frozen_backbone_is_bit_identical_including_batchnorm_stats() -> None:
    train, val = split(96)
    model = Net()
    freeze(model.backbone)
    before = snapshot(model)
    Trainer(model, CFG, head="head").fit(train, val)
    after = snapshot(model)
    backbone = [k for k in before if k.startswith("backbone")]
    assert any("running_mean" in k for k in backbone)
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert changed(before, after, "head")


def test_unfreeze_last_k_blocks_trains_only_those() -> None:
    train, val = split(96)
    model = Net(blocks=3)
    unfreeze_last(model.backbone, 1)
    before = snapshot(model)
    Trainer(model, CFG, head="head").fit(train, val)
    after = snapshot(model)
    assert not changed(before, after, "backbone.0") and not changed(before, after, "backbone.1")
    assert changed(before, after, "backbone.2") and changed(before, after, "head")


def test_gradual_unfreezing_thaws_one_block_per_epoch_from_the_top() -> None:
    train, val = split(96)
    model = Net(blocks=3)
    states = [snapshot(model)]
    cb = GradualUnfreezing(model.backbone, every=1, start=0)
    record = type("R", (), {"on_eval": lambda self, tr, r: states.append(snapshot(tr.model))})()
    Trainer(model, CFG.with_params({"epochs": 3}), head="head", callbacks=[cb, record]).fit(train, val)
    trained = [[changed(states[e], states[e + 1], f"backbone.{b}") for b in range(3)] for e in range(3)]
    assert trained == [[False, False, False], [False, False, True], [False, True, True]]
    assert all(changed(states[e], states[e + 1], "head") for e in range(3))


def test_backbone_lr_zero_keeps_backbone_still_and_head_lr_applies() -> None:
    train, val = split(96)
    model = Net()
    before = snapshot(model)
    cfg = TrainConfig(lr=0.05, backbone_lr=0.0, epochs=1, batch_size=16, optimizer="sgd", momentum=0.0)
    Trainer(model, cfg, head="head").fit(train, val)
    after = snapshot(model)
    params = [k for k, _ in model.named_parameters() if k.startswith("backbone")]
    assert all(torch.equal(before[k], after[k]) for k in params)
    assert changed(before, after, "head")


def test_backbone_lr_without_a_head_is_refused() -> None:
    """Before, backbone_lr without a head was silently ignored: every parameter trained at lr."""
    train, val = split(96)
    cfg = TrainConfig(lr=0.05, backbone_lr=0.0, epochs=1)
    with pytest.raises(ValueError, match=r"backbone_lr \(0.0\) is the rate of the parameters outside the head, but no head"):
        Trainer(Net(), cfg).fit(train, val)
    with pytest.raises(ValueError, match=r"head=\['head'\]\) \('head': the model's last part with parameters\)"):
        Trainer(Net(), cfg).fit(train, val)  # the model's own head named, not a 'classifier' it does not have
    Trainer(Net(), cfg, head="head").fit(train, val)
    Trainer(Net(), TrainConfig(lr=0.05, epochs=1)).fit(train, val)
    # a trainer that only evaluates may hold the training config (as the fine-tuning examples do)
    loss, _ = Trainer(Net(), cfg).evaluate(val)
    assert loss > 0


def test_replace_head_and_trainable_count() -> None:
    model = Net(out=2)
    old = replace_head(model, "head", nn.Linear(16, 5))
    assert isinstance(old, nn.Linear) and old.out_features == 2
    assert model(torch.randn(4, 8)).shape == (4, 5)
    freeze(model.backbone)
    assert trainable(model) == 16 * 5 + 5
    with pytest.raises(ValueError, match="no submodule"):
        replace_head(model, "classifier", nn.Linear(1, 1))


def test_blocks_unfrozen_inside_a_frozen_backbone_train_in_train_mode() -> None:
    # the usual pattern: freeze the whole backbone, then thaw its last block; the thawed
    # block's batch norm (and dropout) must be in train mode while the frozen ones are not
    train, val = split(96)
    model = Net(blocks=3)
    freeze(model.backbone)
    unfreeze_last(model.backbone, 1)
    before = snapshot(model)
    Trainer(model, CFG, head="head").fit(train, val)
    after = snapshot(model)
    assert not changed(before, after, "backbone.0") and not changed(before, after, "backbone.1")
    assert not torch.equal(before["backbone.2.1.running_mean"], after["backbone.2.1.running_mean"])
    model.train()
    keep_frozen_in_eval(model)
    assert [model.backbone[i][1].training for i in range(3)] == [False, False, True]


def test_a_model_with_nothing_to_train_is_said_plainly() -> None:
    """Everything frozen: torch's "element 0 of tensors does not require grad" became an
    error that says the model is frozen and how to thaw a part; thawing the head trains."""
    train, val = split(96)
    model = Net()
    freeze(model)
    with pytest.raises(ValueError, match="everything is frozen.*unfreeze"):
        Trainer(model, CFG).fit(train, val)
    from tunesmith.train import unfreeze

    unfreeze(model.head)
    assert len(Trainer(model, CFG).fit(train, val).records) == 2


def test_gradients_left_before_fit_do_not_move_frozen_weights() -> None:
    """Before: a backward run before fit (a look at the gradients, an earlier stage) left .grad on
    weights frozen afterwards, and the first optimizer step applied it to them."""
    train, val = split(96)
    model = Net()
    torch.nn.functional.cross_entropy(model(train[0]), train[1]).backward()
    freeze(model.backbone)
    before = snapshot(model)
    Trainer(model, CFG, head="head").fit(train, val)
    assert not changed(before, snapshot(model), "backbone")


def test_a_study_that_searches_backbone_lr_without_a_head_is_refused_at_set_up(tmp_path) -> None:
    """Before: objective() took it, and every trial then failed before training with check_head's error."""
    import tunesmith as ts

    space = {"backbone_lr": ts.Float(1e-5, 1e-3, log=True)}
    with pytest.raises(ValueError, match="objective.* names no head, so every trial would fail.*head="):
        ts.train.objective(lambda p: Net(), split(96), space, checkpoint_root=tmp_path)
    with pytest.raises(ValueError, match="names no head"):
        ts.train.objective(lambda p: Net(), split(96), base=CFG.with_params({"backbone_lr": 1e-4}))
    assert callable(ts.train.objective(lambda p: Net(), split(96), space, head="head", checkpoint_root=tmp_path))


def test_the_head_may_be_given_as_its_module() -> None:
    """Before: head=model.head was read as a list of names ("'Linear' object is not iterable"), a
    Sequential head failed inside torch ("add operator supports only objects of Sequential class")."""
    model = Net()
    by_module = Trainer(model, CFG.with_params({"backbone_lr": 1e-4}), head=model.head)
    by_name = Trainer(model, CFG.with_params({"backbone_lr": 1e-4}), head="head")
    assert [g["role"] for g in by_module.optimizer.param_groups] == [g["role"] for g in by_name.optimizer.param_groups]
    assert Trainer(model, CFG, head=model.backbone).head == ["backbone"]
    with pytest.raises(ValueError, match=r"head must name the model's head.*got a Linear that is not part of the model"):
        Trainer(model, CFG, head=nn.Linear(2, 2))


def test_freeze_takes_a_list_of_modules_and_names_a_parameter() -> None:
    """Before: freeze([a, b]) and freeze(model.head.weight) failed with "object has no attribute 'parameters'"."""
    from tunesmith.train import unfreeze

    model = Net()
    freeze([model.backbone[0], model.backbone[1]])
    assert trainable(model) == sum(p.numel() for m in (model.backbone[2], model.head) for p in m.parameters())
    unfreeze((model.backbone[0],))
    assert all(p.requires_grad for p in model.backbone[0].parameters())
    with pytest.raises(TypeError, match=r"freeze takes a module or a list of modules .* got Parameter \(for one weight"):
        freeze(model.head.weight)


def test_a_head_replaced_after_the_trainer_was_built_is_said_not_to_train() -> None:
    """Before: the new head's weights were not the optimizer's, and fit left them as initialized, silently."""
    model = Net()
    trainer = Trainer(model, CFG, head="head")
    replace_head(model, "head", nn.Linear(16, 2))
    with pytest.raises(ValueError, match=r"parameters its optimizer does not hold \(head.weight, head.bias\).*"
                                         r"Build the Trainer after changing the model"):
        trainer.fit(*split(96))


def test_batch_norm_frozen_by_hand_is_said_to_learn_its_running_statistics(caplog, monkeypatch) -> None:
    """Before: a backbone frozen the usual PyTorch way (requires_grad_(False), then .eval()) kept its weights,
    but the trainer's model.train() each epoch ran its batch norm in train mode, and the running statistics
    followed the new data without a word. freeze() keeps them, and is named."""
    from tunesmith.train import finetune

    monkeypatch.setattr(finetune, "_SAID", weakref.WeakSet())
    train, val = split(96)
    model = Net()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    model.backbone.eval()
    before = snapshot(model)
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, CFG, head="head").fit(train, val)
        Trainer(Net(), CFG, head="head").fit(train, val)  # not frozen by hand: nothing to say
    assert changed(before, snapshot(model), "backbone.0.1.running_mean")  # what the warning is about
    said = [r.getMessage() for r in caplog.records if "frozen by hand" in r.getMessage()]
    assert len(said) == 1, said
    assert "3 batch norm layers of the Net (backbone.0.1, backbone.1.1, backbone.2.1)" in said[0]
    assert "tunesmith.train.freeze(module)" in said[0]
    caplog.clear()
    monkeypatch.setattr(finetune, "_SAID", weakref.WeakSet())
    model = Net()
    freeze(model.backbone)
    before = snapshot(model)
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, CFG, head="head").fit(train, val)
    assert not changed(before, snapshot(model), "backbone")
    assert not [r for r in caplog.records if "frozen by hand" in r.getMessage()]


def _with_bn_momentum(momentum: float) -> nn.Module:
    model = Net()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = momentum
    return model


def test_batch_norm_slower_than_torch_s_default_in_a_short_run_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a model whose batch norm momentum is 0.01 (EfficientNet-Lite0's package, Keras ports) trained a short
    run whose running statistics barely moved from their start, so validation lagged training, without a word."""
    from tunesmith.train import finetune

    monkeypatch.setattr(finetune, "_SAID_SLOW", weakref.WeakSet(), raising=False)
    train, val = split(96)  # 72 samples: 5 batches per epoch at batch_size 16, 10 in the run
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(_with_bn_momentum(0.01), CFG, head="head").fit(train, val)
        Trainer(_with_bn_momentum(0.01), CFG, head="head").fit(train, val)  # said once per model class
    said = [r.getMessage() for r in caplog.records if "below torch's default" in r.getMessage()]
    assert len(said) == 1, said
    assert ("3 batch norm layers of the Net (backbone.0.1, backbone.1.1, backbone.2.1) have momentum 0.01, below "
            "torch's default 0.1: over this run's 10 training batches their running statistics, which evaluation "
            "normalizes with, keep 90% of their values at the start") in said[0]
    # the fix as printed is one line of Python, which sets every batch norm of the model to 0.1 (it said
    # "for m in model.modules(): if isinstance(m, nn.BatchNorm2d): m.momentum = 0.1", a syntax error, and 2d alone)
    fix = said[0].split("For a short run set it to 0.1: ")[1].split("; ignore this")[0]
    model = _with_bn_momentum(0.01)
    exec(compile(fix, "<the warning's fix>", "exec"), {"torch": torch, "model": model})  # noqa: S102
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm1d)} == {0.1}
    frozen = _with_bn_momentum(0.01)
    freeze(frozen.backbone)  # its batch norm does not train: its statistics stay by design
    quiet = [
        (Net(), CFG),  # torch's default
        (_with_bn_momentum(0.05), CFG.with_params({"epochs": 9})),  # 45 batches: 0.95 ** 45 < 10% kept
        (frozen, CFG),
    ]
    caplog.clear()
    for model, cfg in quiet:
        monkeypatch.setattr(finetune, "_SAID_SLOW", weakref.WeakSet(), raising=False)
        with caplog.at_level("WARNING", logger="tunesmith"):
            Trainer(model, cfg, head="head").fit(train, val)
    assert "below torch's default" not in caplog.text, caplog.text


def test_slow_batch_norm_in_the_blocks_gradual_unfreezing_thaws_is_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the warning looked at the model as frozen when fit began, so a backbone frozen whole and thawed by
    GradualUnfreezing (every batch norm frozen at the start) trained its momentum-0.01 batch norm without a word;
    the blocks it never thaws within the run stay out of the warning."""
    from tunesmith.train import finetune

    train, val = split(96)  # 5 batches per epoch at batch_size 16
    model = _with_bn_momentum(0.01)
    freeze(model.backbone)
    monkeypatch.setattr(finetune, "_SAID_SLOW", weakref.WeakSet(), raising=False)
    with caplog.at_level("WARNING", logger="tunesmith"):  # 2 epochs: the last block thawed at epoch 1
        Trainer(model, CFG, head="head", callbacks=[GradualUnfreezing(model.backbone, start=0)]).fit(train, val)
    said = [r.getMessage() for r in caplog.records if "below torch's default" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert "1 batch norm layer of the Net (backbone.2.1) has momentum 0.01" in said[0], said[0]
    caplog.clear()
    model = _with_bn_momentum(0.01)
    freeze(model.backbone)
    monkeypatch.setattr(finetune, "_SAID_SLOW", weakref.WeakSet(), raising=False)
    with caplog.at_level("WARNING", logger="tunesmith"):  # every 2 epochs: nothing thawed in a run of 2
        Trainer(model, CFG, head="head", callbacks=[GradualUnfreezing(model.backbone, every=2)]).fit(train, val)
    assert "below torch's default" not in caplog.text, caplog.text


def test_efficientnet_lite0_s_batch_norm_momentum_is_said_where_its_last_block_is_fine_tuned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The package's EfficientNet-Lite0 sets momentum 0.01 (validation loss 2.06 against a training loss of 0.7 in a
    short run of its last block); examples/finetune_digits.py sets 0.1, a user's own script was not told."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    from tunesmith.train import finetune

    monkeypatch.setattr(finetune, "_SAID_SLOW", weakref.WeakSet(), raising=False)
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=10, image_size=32)
    freeze(model)
    unfreeze_last(model._blocks, 1)
    unfreeze(model._fc)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, TrainConfig(epochs=1, batch_size=8, device="cpu"), head="_fc").fit((x, y))
    assert ("3 batch norm layers of the EfficientNet (_blocks.15._bn0, _blocks.15._bn1, _blocks.15._bn2) have "
            "momentum 0.01") in caplog.text, caplog.text


def test_batch_norm_frozen_by_hand_is_said_in_the_singular_and_per_class(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One layer read "1 batch norm layers ... have their weights"; a second model class of the same
    name (each call of a function that defines it) was never warned about: classes were told apart by name."""
    from tunesmith.train import finetune

    monkeypatch.setattr(finetune, "_SAID", weakref.WeakSet())
    train, val = split(96)

    def one_layer() -> nn.Module:
        class Net(nn.Module):  # one class per call, all of one name
            def __init__(self) -> None:
                super().__init__()
                self.backbone = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
                self.head = nn.Linear(8, 2)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(self.backbone(x))

        model = Net()
        model.backbone.requires_grad_(False)
        return model

    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(one_layer(), CFG, head="head").fit(train, val)
        Trainer(one_layer(), CFG, head="head").fit(train, val)
    said = [r.getMessage() for r in caplog.records if "frozen by hand" in r.getMessage()]
    assert len(said) == 2, said
    assert "1 batch norm layer of the " in said[0] and "has its weights frozen by hand" in said[0]


def test_a_head_frozen_with_the_whole_model_is_said_to_keep_its_first_weights(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: freeze(model) then unfreeze_last(blocks, 1) and head="head" trained the last block only; the
    head (a new one: random) never moved and nothing said so."""
    from tunesmith.train import optim, unfreeze

    monkeypatch.setattr(optim, "_SAID_HEAD", weakref.WeakSet(), raising=False)
    train, val = split(96)
    model = Net()
    freeze(model)
    unfreeze_last(model.backbone, 1)
    before = snapshot(model)
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, CFG, head="head").fit(train, val)
    assert not changed(before, snapshot(model), "head.weight")  # what the warning is about
    said = [r.getMessage() for r in caplog.records if "is frozen" in r.getMessage()]
    assert len(said) == 1 and "the head 'head' of the Net is frozen" in said[0], said
    assert "tunesmith.train.unfreeze(model.head)" in said[0]
    caplog.clear()
    monkeypatch.setattr(optim, "_SAID_HEAD", weakref.WeakSet())
    model = Net()
    freeze(model)
    unfreeze_last(model.backbone, 1)
    unfreeze(model.head)  # the fix: the head trains, nothing to say
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, CFG, head="head").fit(train, val)
    assert not [r for r in caplog.records if "is frozen" in r.getMessage()]


def said_frozen(model: nn.Module, head: list[str], monkeypatch: pytest.MonkeyPatch,
                caplog: pytest.LogCaptureFixture) -> list[str]:
    """The frozen-head warnings of one fit of ``model`` with ``head``, as the first of its class."""
    from tunesmith.train import optim

    monkeypatch.setattr(optim, "_SAID_HEAD", weakref.WeakSet())
    caplog.clear()
    with caplog.at_level("WARNING", logger="tunesmith"):
        Trainer(model, CFG, head=head).fit(*split(96))
    return [r.getMessage() for r in caplog.records if "is frozen" in r.getMessage()]


def test_the_frozen_heads_fix_is_python_for_an_index_and_a_parameter(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a head inside a Sequential was told to thaw with ``unfreeze(model.backbone.2)`` (a
    syntax error) and a second frozen head or a head named by a parameter was left out of the fix."""
    from tunesmith.train import unfreeze

    models = [Net(), Net()]
    for model in models:
        freeze(model)
        model.backbone[0].requires_grad_(True)
    said = said_frozen(models[0], ["backbone.2", "head.weight"], monkeypatch, caplog)
    assert len(said) == 1 and "the head 'backbone.2', 'head.weight' of the Net" in said[0], said
    assert "(tunesmith.train.unfreeze(model.backbone[2]); model.head.weight.requires_grad_(True))" in said[0]
    unfreeze(models[1].backbone[2])  # the fix as said
    models[1].head.weight.requires_grad_(True)
    assert not said_frozen(models[1], ["backbone.2", "head.weight"], monkeypatch, caplog)
