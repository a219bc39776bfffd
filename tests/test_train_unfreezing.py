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


def test_a_resumed_run_restores_a_best_checkpoint_written_before_blocks_were_thawed(tmp_path) -> None:
    """Before: the resumed run ended in a CheckpointError ("frozen tensors ... differ"): best.pt leaves
    out the blocks frozen at the best validation, and gradual unfreezing had trained them since."""
    from tunesmith.train import checkpoint as ckpt

    train, val = split(96)

    def loss(out, y):  # real in training; validation losses 0.5, 0.4 (the best), then worse
        if torch.is_grad_enabled():
            return torch.nn.functional.cross_entropy(out, y)
        loss.calls += 1
        return torch.tensor([0.5, 0.4][loss.calls - 1] if loss.calls <= 2 else 0.4 + loss.calls / 10)

    def run(epochs: int, resume: bool) -> tuple[Net, list[dict]]:
        loss.calls = 0
        net = thawed_net()
        snaps: list[dict] = []
        cfg = CFG.with_params({"epochs": epochs, "batch_size": 96, "checkpoint_dir": str(tmp_path / str(resume))})
        Trainer(net, cfg, loss=loss, head="head", callbacks=[
            GradualUnfreezing(net.backbone, every=1, start=2), lambda t, r: snaps.append(snapshot(t.model))
        ]).fit(train, val, resume_from=ckpt.latest(tmp_path / "False") if resume else None)
        return net, snaps

    _, snaps = run(4, resume=False)
    net, _ = run(5, resume=True)  # the lowest block was thawed at epoch 2, after the best
    best = snapshot(net)
    assert all(torch.equal(snaps[1][k], best[k]) for k in best)
    assert not torch.equal(snaps[1]["backbone.0.0.weight"], snaps[3]["backbone.0.0.weight"])


def test_gradual_unfreezing_in_a_study_thaws_each_trials_own_model(tmp_path) -> None:
    """Before: the blocks of a model built outside the objective were thawed while each trial trained
    its own model, whose backbone stayed frozen, silently; a function of the model was not taken."""
    import tunesmith as ts

    built: list[Net] = []

    def build(params) -> Net:
        built.append(thawed_net())
        return built[-1]

    def run(callback: GradualUnfreezing) -> ts.Study:
        study = ts.Study({"lr": ts.Float(0.01, 0.02)}, direction="minimize", sampler="random", seed=0)
        study.optimize(ts.train.objective(build, split(96), base=CFG.with_params({"epochs": 3}), head="head",
                                          checkpoint_root=tmp_path, callbacks=[callback]), n_trials=1)
        return study

    outside = thawed_net()
    study = run(GradualUnfreezing(outside.backbone, start=2))
    assert study.trials[0].state.value == "failed"
    assert "blocks are not part of the model being trained" in (study.trials[0].error or "")
    before = snapshot(thawed_net())
    run(GradualUnfreezing(lambda model: model.backbone, start=2))
    assert all(not torch.equal(before[f"backbone.{b}.0.weight"], built[-1].backbone[b][0].weight) for b in range(4))
    with pytest.raises(ValueError, match="integers every >= 1 and start >= 0, got 1.5, 0"):
        GradualUnfreezing(outside.backbone, every=1.5)


def test_a_module_that_is_not_a_sequence_of_blocks_is_named_with_the_sequences_inside_it() -> None:
    """Before: torch's "object of type 'Net' has no len()" and "'Linear' object is not iterable"."""
    net = Net()
    with pytest.raises(TypeError, match=r"blocks must be a sequence of modules .* got one Net; pass the sequence of "
                                        r"its blocks such as 'backbone' inside it"):
        unfreeze_last(net, 1)
    with pytest.raises(TypeError, match="got one Linear; pass the sequence of its blocks, e.g."):
        GradualUnfreezing(net.head)


def test_thawing_more_blocks_than_there_are_is_refused_naming_the_count(tmp_path) -> None:
    """Before: unfreeze_last(blocks, 40) over 3 blocks thawed the 3 without a word, so a searched count
    beyond the model's blocks repeated the same training under other values; GradualUnfreezing(start=5) too."""
    import tunesmith as ts

    net = Net()
    with pytest.raises(ValueError, match=r"unfreeze_last: k=4, but the blocks given are 3, so k is at most 3"):
        unfreeze_last(net.backbone, 4)
    unfreeze_last(net.backbone, 3)  # all of them: allowed
    with pytest.raises(ValueError, match=r"GradualUnfreezing: start=4, but the blocks given are 3"):
        GradualUnfreezing(net.backbone, start=4)

    def build(params):
        model = Net()
        freeze(model.backbone)
        unfreeze_last(model.backbone, params["blocks"])
        return model

    study = ts.Study({"blocks": ts.Int(0, 5)}, sampler="grid")
    study.optimize(ts.train.objective(build, split(96), base=CFG, head="head", checkpoint_root=tmp_path), n_trials=6)
    failed = {t.params["blocks"]: t.error for t in study.trials if t.state.name == "FAILED"}
    assert sorted(failed) == [4, 5] and "a searched range: up to 3" in failed[4]
    with pytest.raises(ValueError, match="GradualUnfreezing: start=5, but the blocks given are 4"):  # a function of the model
        Trainer(thawed_net(), CFG, head="head", callbacks=[GradualUnfreezing(lambda m: m.backbone, start=5)]).fit(*split(96))


def test_one_callback_given_alone_and_a_metric_given_by_name_in_a_mapping_are_taken(tmp_path) -> None:
    """Before: callbacks=GradualUnfreezing(...) failed with "object is not iterable" (in Trainer and in
    objective), and metrics={"acc": "accuracy"} with "'str' object is not callable" after the first epoch."""
    import tunesmith as ts

    net = thawed_net()
    history = Trainer(net, CFG, head="head", metrics={"acc": "accuracy"},
                      callbacks=GradualUnfreezing(net.backbone, start=2)).fit(*split(96))
    assert all(p.requires_grad for p in net.backbone[1].parameters()) and "acc" in history.records[-1].metrics
    study = ts.Study({"lr": ts.Float(0.01, 0.02)}, direction="minimize", sampler="random", seed=0)
    study.optimize(ts.train.objective(lambda p: thawed_net(), split(96), base=CFG, head="head", checkpoint_root=tmp_path,
                                      callbacks=GradualUnfreezing(lambda m: m.backbone, start=2)), n_trials=1)
    assert study.trials[0].state.name == "COMPLETE"


def test_blocks_without_parameters_do_not_count_as_frozen() -> None:
    """Before: in blocks such as a features Sequential (Linear, ReLU, Linear), the ReLU, having no parameter,
    counted as frozen, so a model with nothing frozen was refused as "undoing the thawing done before it"."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    first = snapshot(model)
    Trainer(model, TrainConfig(epochs=2, batch_size=16, device="cpu", restore_best=False),
            callbacks=[GradualUnfreezing(model, start=1)]).fit(*split(64))
    after = snapshot(model)
    assert torch.equal(first["0.weight"], after["0.weight"])  # epoch 1 thaws the ReLU: the first layer stays
    assert not torch.equal(first["2.weight"], after["2.weight"])


def test_the_start_suggested_after_a_thawing_with_blocks_without_parameters_works() -> None:
    """Before: unfreeze_last(blocks, 3) over Linear, ReLU, Linear, ReLU, Linear thaws two Linear blocks, and
    the refusal said "Pass start=2", which was refused in turn: the thawed blocks span the last 3."""
    import re

    def thawed_last_three() -> torch.nn.Sequential:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                    torch.nn.Linear(16, 2))
        freeze(model)
        unfreeze_last(list(model), 3)
        return model

    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu")
    model = thawed_last_three()
    with pytest.raises(ValueError, match=r"unfreeze_last\(blocks, 3\)\)\. Pass start=3") as err:
        Trainer(model, cfg, callbacks=[GradualUnfreezing(model)]).fit(*split(64))
    start = int(re.search(r"start=(\d+) to thaw", str(err.value)).group(1))  # type: ignore[union-attr]
    model = thawed_last_three()
    Trainer(model, cfg, callbacks=[GradualUnfreezing(model, start=start)]).fit(*split(64))
