"""Weight decay and L1/L2 penalties touch only weight matrices; clipping bounds gradients."""

from __future__ import annotations

import re
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _train_util import Net, mlp, snapshot, split  # noqa: E402

from tunesmith.train import TrainConfig, Trainer  # noqa: E402


def zero_loss(out, y):
    return out.sum() * 0.0  # every parameter gets a gradient of exactly zero


def matrices(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.ndim >= 2}


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_weight_decay_only_shrinks_weight_matrices(optimizer: str) -> None:
    train, val = split(64)
    model = mlp()
    before = snapshot(model)
    lr, wd = 0.1, 0.5
    cfg = TrainConfig(optimizer=optimizer, lr=lr, weight_decay=wd, momentum=0.0, epochs=1, batch_size=48)
    Trainer(model, cfg, loss=zero_loss).fit(train, val)
    after = snapshot(model)
    for name in before:
        if name in matrices(model):
            assert torch.allclose(after[name], before[name] * (1 - lr * wd), rtol=1e-6), name
        else:  # biases and the LayerNorm scale/shift
            assert torch.equal(after[name], before[name]), name


def test_param_groups_split_by_shape_and_head() -> None:
    model = mlp()
    cfg = TrainConfig(lr=1e-3, backbone_lr=1e-5, weight_decay=0.1)
    opt = Trainer(model, cfg, head="4").optimizer
    by_role = {g["role"]: (g["lr"], g["weight_decay"], {id(p) for p in g["params"]}) for g in opt.param_groups}
    assert set(by_role) == {"backbone/decay", "backbone/no_decay", "head/decay", "head/no_decay"}
    assert by_role["head/decay"][:2] == (1e-3, 0.1)
    assert by_role["head/no_decay"][:2] == (1e-3, 0.0)
    assert by_role["backbone/decay"][:2] == (1e-5, 0.1)
    assert by_role["backbone/no_decay"][:2] == (1e-5, 0.0)
    assert by_role["head/decay"][2] == {id(model[4].weight)}
    assert by_role["backbone/decay"][2] == {id(model[0].weight)}


def test_unknown_head_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="classifier"):
        Trainer(mlp(), TrainConfig(), head="classifier")


def test_a_misspelt_head_names_the_part_meant() -> None:
    """Before: head='haed' listed the first parameter names in sorted order ('backbone.0.0.bias', ...),
    the backbone's first block, and never named the head it resembled."""
    with pytest.raises(ValueError, match=r"head 'haed' names no parameter of the model; did you mean 'head'\? "
                                         r"The model's parts with parameters are 'backbone', 'head'"):
        Trainer(Net(), TrainConfig(), head="haed")
    with pytest.raises(ValueError, match=r"did you mean 'backbone.2.0.weight'\?"):  # a dotted name inside a part
        Trainer(Net(), TrainConfig(), head="backbone.2.0.wieght")
    with pytest.raises(ValueError, match=r"'classifier' names no parameter of the model\. The model's parts"):
        Trainer(Net(), TrainConfig(), head="classifier")  # nothing alike: the parts, no guess


def test_a_head_suggestion_is_no_name_given_and_an_index_past_the_blocks_says_how_many() -> None:
    """head=["head", "haed"] suggested 'head', given already; head="backbone.9" (3 blocks) suggested
    'backbone.2', a close string but another block."""
    with pytest.raises(ValueError, match=r"head 'haed' names no parameter of the model\. The model's parts"):
        Trainer(Net(), TrainConfig(), head=["head", "haed"])
    with pytest.raises(ValueError, match=r"head 'backbone\.9' names no parameter of the model: 'backbone' has 3 "
                                         r"blocks, the last is 'backbone\.2' \(indices count from 0\)$"):
        Trainer(Net(), TrainConfig(), head="backbone.9")
    with pytest.raises(ValueError, match=r"'backbone\.1\.7' .*: 'backbone\.1' has 3 blocks, the last is 'backbone\.1\.2'"):
        Trainer(Net(), TrainConfig(), head="backbone.1.7")  # a block's own layers
    with pytest.raises(ValueError, match=r"'5' .*: the model has 5 blocks, the last is '4'"):
        Trainer(mlp(), TrainConfig(), head="5")  # an nn.Sequential model
    with pytest.raises(ValueError, match=r"head 'backbone\.\u00b2' names no parameter of the model"):
        Trainer(Net(), TrainConfig(), head="backbone.\u00b2")  # a digit to str.isdigit, none to int()


@pytest.mark.parametrize("head", ["backbone.-1", "backbone.²"])
def test_a_negative_or_non_ascii_block_index_says_how_many_blocks_or_suggests(head: str) -> None:
    """head="backbone.-1" (Python's last) suggested 'backbone.1', another block than the last; "backbone.²"
    (a digit to str.isdigit, not to int) failed with int()'s own "invalid literal" message."""
    said = f"head {head!r} names no parameter of the model"
    expected = ": 'backbone' has 3 blocks, the last is 'backbone.2'" if "-" in head else "; did you mean"
    with pytest.raises(ValueError, match=re.escape(said + expected)):
        Trainer(Net(), TrainConfig(), head=head)


@pytest.mark.parametrize("l1,l2", [(0.0, 0.05), (0.05, 0.0)])
def test_l1_l2_penalties_act_on_weight_matrices_only(l1: float, l2: float) -> None:
    train, val = split(64)
    model = mlp()
    before = snapshot(model)
    lr = 0.1
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=lr, l1=l1, l2=l2, epochs=1, batch_size=48)
    Trainer(model, cfg, loss=zero_loss).fit(train, val)
    after = snapshot(model)
    for name in before:
        w = before[name]
        if name in matrices(model):
            expected = w - lr * (l1 * torch.sign(w) + 2 * l2 * w)
            assert torch.allclose(after[name], expected, atol=1e-7), name
        else:
            assert torch.equal(after[name], w), name


def grad_norms(cfg: TrainConfig) -> tuple[list[float], list[float]]:
    train, val = split(128)
    trainer = Trainer(mlp(), cfg, loss="cross_entropy")
    norms: list[float] = []
    maxabs: list[float] = []

    def hook(opt, args, kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        maxabs.append(max(float(g.abs().max()) for g in grads))

    trainer.optimizer.register_step_pre_hook(hook)
    trainer.fit(train, val)
    return norms, maxabs


def test_clip_norm_bounds_the_gradient_norm() -> None:
    base = TrainConfig(lr=0.05, epochs=2, batch_size=16)
    free, _ = grad_norms(base)
    bound = 0.5 * min(free)
    assert max(free) > bound  # clipping has something to do
    clipped, _ = grad_norms(base.with_params({"clip_norm": bound}))
    assert max(clipped) <= bound * (1 + 1e-5)
    assert min(clipped) >= bound * (1 - 1e-5)  # every step was above the bound, so sits on it


def test_clip_value_bounds_each_gradient_entry() -> None:
    base = TrainConfig(lr=0.05, epochs=2, batch_size=16)
    _, free = grad_norms(base)
    bound = 0.25 * max(free)
    _, clipped = grad_norms(base.with_params({"clip_value": bound}))
    assert max(clipped) <= bound + 1e-9


def test_gradient_accumulation_equals_one_big_batch() -> None:
    train, val = split(64)
    a, b = mlp(), mlp()
    Trainer(a, TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, epochs=2, batch_size=48)).fit(train, val)
    Trainer(b, TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, epochs=2, batch_size=12, accumulate=4)).fit(train, val)
    # same samples per step (the shuffles differ but every epoch is one step over all 48)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_gradient_accumulation_with_a_short_last_batch_equals_one_big_batch() -> None:
    """Before: each batch's mean loss counted 1/accumulate, so a short last batch (46 samples in
    batches of 10: 10, 10, 10, 10, 6) weighed as much as a full one: 2e-3 off one batch of 46."""
    (x, y), _ = split(64)
    for train, drop in (((x[:46], y[:46]), False), ((x[:47], y[:47]), True)):
        a, b = mlp(), mlp()
        one = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, epochs=1, batch_size=40 if drop else 46,
                          shuffle=False, drop_last=drop, device="cpu")
        Trainer(a, one).fit(train)
        Trainer(b, one.with_params({"batch_size": 10, "accumulate": 5 if not drop else 4})).fit(train)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.allclose(pa, pb, atol=1e-6), (drop, (pa - pb).abs().max())


def test_an_unknown_field_names_the_one_meant() -> None:
    """``TrainConfig(learning_rate=...)`` said only "unexpected keyword argument"."""
    with pytest.raises(TypeError, match=r"no field 'learning_rate' \(did you mean 'lr'\?\).*weight_decay"):
        TrainConfig(learning_rate=1e-3)
    with pytest.raises(TypeError, match=r"no field 'betas1' \(did you mean 'beta1'\?\), 'zz';"):
        TrainConfig(betas1=0.9, zz=1)
    assert TrainConfig(lr=0.1).with_params({"lr": 0.2, "hidden": 3}).lr == 0.2  # other keys: build_model's


@pytest.mark.parametrize(("name", "field"), [("adam_beta2", "beta2"), ("adam_epsilon", "eps"),
                                             ("num_train_epochs", "epochs"), ("lr_scheduler_type", "schedule"),
                                             ("gradient_accumulation_steps", "accumulate"), ("save_total_limit", "keep_last"),
                                             ("eta_min", "min_lr"), ("per_device_train_batch_size", "batch_size")])
def test_a_field_named_as_torch_hugging_face_or_keras_name_it_names_the_one_meant(name: str, field: str) -> None:
    """Before: ``TrainConfig(adam_beta2=0.98)``, as Hugging Face's TrainingArguments spells it, said only
    "no field 'adam_beta2'" and listed every field."""
    with pytest.raises(TypeError, match=rf"no field '{name}' \(did you mean '{field}'\?\)"):
        TrainConfig(**{name: 1})


def test_torch_betas_says_to_give_beta1_and_beta2() -> None:
    with pytest.raises(TypeError, match=r"no field 'betas' \(give beta1=\.\.\., beta2=\.\.\.: torch's betas"):
        TrainConfig(betas=(0.9, 0.99))


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"Betas": (0.9, 0.99)}, r"no field 'Betas' \(give beta1=\.\.\., beta2=\.\.\."),
    ({"fp16": True}, r"no field 'fp16' \(tunesmith's mixed precision is bf16, not fp16: give precision='bf16'"),
    ({"bf16": True}, r"no field 'bf16' \(give precision='bf16' \(bf16=False is precision='fp32'"),
    ({"BF16": True, "Adam_Beta2": 0.98}, r"no field 'BF16' \(give precision='bf16'.*'Adam_Beta2' \(did you mean 'beta2'"),
])
def test_betas_in_any_case_and_hugging_faces_fp16_and_bf16_name_the_field(kwargs: dict[str, Any], said: str) -> None:
    """Before: the betas hint matched only the lower-case name, and Hugging Face's ``fp16=True`` /
    ``bf16=True`` said only "no field" (tunesmith's is ``precision``)."""
    with pytest.raises(TypeError, match=said):
        TrainConfig(**kwargs)
