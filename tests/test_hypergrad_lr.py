"""Online learning-rate adaptation by hypergradient descent in the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, snapshot, split  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, checkpoint, objective  # noqa: E402
from tunesmith.train.hypergrad import HypergradientLR  # noqa: E402
from tunesmith.train.optim import make_optimizer  # noqa: E402

DATA = split(96)


def _loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def _one_step(optimizer: str, lr: float):
    """A float64 model after one optimizer step at ``lr`` (fresh optimizer state), the
    hypergradient tracker, and the batch."""
    torch.manual_seed(0)
    model = mlp().double()
    (x, y), _ = DATA
    x = x.double()
    opt = make_optimizer(model, TrainConfig(optimizer=optimizer, lr=lr, weight_decay=0.1, momentum=0.0))
    hyper = HypergradientLR(opt, hyper_lr=1.0)
    _loss(model, x, y).backward()
    hyper.before_step()
    opt.step()
    hyper.after_step()
    opt.zero_grad()
    return model, hyper, x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_hypergradient_is_the_derivative_of_the_next_loss_in_the_learning_rate(optimizer: str) -> None:
    """h_1 = grad_1 . u_0 = -dL(theta_1)/d(lr), checked by central differences in float64
    (all groups' rates moved together: the sum of the groups' h)."""
    lr, d = 0.01, 1e-6
    model, hyper, x, y = _one_step(optimizer, lr)
    _loss(model, x, y).backward()
    h = sum(hyper._dot(g["params"], hyper.directions[i])[0] for i, g in enumerate(hyper.optimizer.param_groups))
    up = float(_loss(_one_step(optimizer, lr + d)[0], x, y))
    down = float(_loss(_one_step(optimizer, lr - d)[0], x, y))
    fd = (up - down) / (2 * d)
    assert abs(-h - fd) < 1e-4 * abs(fd), (h, fd)
    assert abs(fd) > 1e-3  # not vacuous


def test_the_rate_adapts_per_group_and_is_recorded_each_epoch() -> None:
    cfg = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=3, batch_size=16, lr_adapt="hypergradient",
                      hyper_lr=1e-2, device="cpu")
    history = Trainer(mlp(), cfg).fit(*DATA)
    lrs = [r.lrs for r in history.records]
    assert len(lrs) == 3 and set(lrs[0]) == {"all/decay", "all/no_decay"}
    assert lrs[-1]["all/decay"] != pytest.approx(0.01) and lrs[-1]["all/decay"] != lrs[-1]["all/no_decay"]
    assert history.records[-1].lr == pytest.approx(lrs[-1]["all/decay"])  # the weight matrices' adapted rate
    fixed = Trainer(mlp(), TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=3, batch_size=16)).fit(*DATA)
    assert fixed.records[-1].lrs == {} and fixed.records[-1].lr == pytest.approx(0.01)


def test_schedules_multiply_the_adapted_base_rate() -> None:
    cfg = TrainConfig(optimizer="adam", lr=0.01, epochs=2, batch_size=16, lr_adapt="hypergradient-mult",
                      hyper_lr=0.02, schedule="cosine", warmup_steps=2, device="cpu")
    trainer = Trainer(mlp(), cfg)
    trainer.fit(*DATA)
    main = trainer.optimizer.param_groups[0]
    assert trainer._factor() < 1.0  # cosine decay has begun
    assert trainer.lr_now() == pytest.approx(main["base_lr"] * trainer._factor())
    assert main["base_lr"] != pytest.approx(0.01)


@pytest.mark.parametrize("lr_adapt", ["hypergradient", "hypergradient-mult"])
def test_resume_restores_the_adapted_rates_exactly(lr_adapt: str, tmp_path: Path) -> None:
    cfg = TrainConfig(optimizer="adam", lr=0.01, epochs=4, batch_size=16, lr_adapt=lr_adapt,
                      hyper_lr=1e-4 if lr_adapt == "hypergradient" else 0.05, schedule="cosine",
                      checkpoint_dir=str(tmp_path), keep_last=10, restore_best=False, device="cpu", seed=3)
    full = Trainer(mlp(seed=1), cfg)
    h_full = full.fit(*DATA)
    mid = checkpoint.last_path(tmp_path, h_full.records[1].step)
    state = checkpoint.load(mid)  # weights_only=True: the hypergradient state is tensors and numbers
    assert state["hypergrad"]["directions"][0][0].shape == full.model[0].bias.shape
    resumed = Trainer(mlp(seed=2), cfg)
    h_res = resumed.fit(*DATA, resume_from=mid)
    assert [r.lrs for r in h_res.records] == [r.lrs for r in h_full.records]
    a, b = snapshot(full.model), snapshot(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_without_the_saved_directions_the_resume_differs(tmp_path: Path) -> None:
    """The saved directions matter (so the test above can fail)."""
    cfg = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=3, batch_size=16, lr_adapt="hypergradient",
                      hyper_lr=1e-2, checkpoint_dir=str(tmp_path / "run"), keep_last=10, restore_best=False,
                      device="cpu")
    h_full = Trainer(mlp(), cfg).fit(*DATA)
    state = checkpoint.load(checkpoint.last_path(tmp_path / "run", h_full.records[0].step))
    state["hypergrad"] = None
    other = checkpoint.save(tmp_path / "other" / "mid.pt", state)
    cfg2 = TrainConfig(**{**cfg.to_dict(), "checkpoint_dir": str(tmp_path / "resumed")})
    h_res = Trainer(mlp(), cfg2).fit(*DATA, resume_from=other)
    assert h_res.records[-1].lrs != h_full.records[-1].lrs


def test_bad_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="needs hyper_lr"):
        TrainConfig(lr_adapt="hypergradient")
    with pytest.raises(ValueError, match="hyper_lr is set but lr_adapt is None"):
        TrainConfig(hyper_lr=1e-3)
    with pytest.raises(ValueError, match="lr_adapt must be one of"):
        TrainConfig(lr_adapt="baydin", hyper_lr=1e-3)
    with pytest.raises(ValueError, match="hyper_lr must be a number > 0"):
        TrainConfig(lr_adapt="hypergradient", hyper_lr=-1.0)
    # the multiplicative rule's hyper_lr is a relative change per step: at 1 or more the rate could
    # reach 0 or go negative (before: accepted, and the rate sat at its floor after one disagreeing step)
    for bad in (1.0, 5.0):
        with pytest.raises(ValueError, match="needs hyper_lr < 1"):
            TrainConfig(lr_adapt="hypergradient-mult", hyper_lr=bad)
    TrainConfig(lr_adapt="hypergradient-mult", hyper_lr=0.99)
    TrainConfig(lr_adapt="hypergradient", hyper_lr=5.0)  # additive: its scale depends on the model


def test_a_trial_records_the_adapted_rate_per_validation(tmp_path: Path) -> None:
    base = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=3, batch_size=16, lr_adapt="hypergradient",
                       hyper_lr=1e-2, device="cpu")
    study = ts.Study(ts.Space({"hidden": ts.Int(8, 16)}), sampler="random", seed=0)
    study.optimize(objective(lambda p: mlp(hidden=p["hidden"]), DATA, base=base, checkpoint_root=tmp_path),
                   n_trials=1)
    adapted = study.trials[0].attrs["adapted_lr"]
    assert set(adapted) == {"all/decay", "all/no_decay"} and len(adapted["all/decay"]) == 3


def test_a_long_run_keeps_a_bounded_spread_of_its_adapted_rates_the_first_and_last_among_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: every validation's rates, written again at each validation: the 10,000th write took 78 ms on
    # SQLite and stored 277 KB (quadratic in the run); the bound is lowered here to keep the run short
    from tunesmith.train import bridge

    base = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=23, batch_size=32, lr_adapt="hypergradient",
                       hyper_lr=1e-2, device="cpu")

    def adapted(bound: int) -> dict[str, list[float]]:
        monkeypatch.setattr(bridge, "MAX_ADAPTED", bound, raising=False)
        study = ts.Study(ts.Space({"hidden": ts.Int(8, 16)}), storage=f"sqlite:///{tmp_path / f'{bound}.db'}",
                         sampler="random", seed=0)
        study.optimize(objective(lambda p: mlp(hidden=p["hidden"]), DATA, base=base,
                                 checkpoint_root=tmp_path / str(bound)), n_trials=1)
        return study.trials[0].attrs["adapted_lr"]

    every, kept = adapted(100), adapted(5)
    assert {k: len(v) for k, v in every.items()} == {"all/decay": 23, "all/no_decay": 23}
    assert kept == {k: [v[i] for i in (0, 6, 11, 16, 22)] for k, v in every.items()}  # the last, though the
    assert len(set(every["all/decay"])) > 10  # 23rd validation's write was skipped (23 % (23 // 5) != 0)
    assert bridge.spread(23, 5) == [0, 6, 11, 16, 22] and bridge.spread(4, 5) == [0, 1, 2, 3]


def test_a_plain_torch_optimizer_is_refused_saying_what_base_lr_is() -> None:
    """Before: KeyError 'base_lr' from HypergradientLR's constructor (it is exported, so a loop of
    one's own would try it with torch.optim.Adam)."""
    import torch

    opt = torch.optim.Adam(mlp().parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=r"lack; in a loop of your own set g\['base_lr'\] = g\['lr'\]"):
        HypergradientLR(opt, hyper_lr=1e-4)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    assert HypergradientLR(opt, hyper_lr=1e-4).initial == [1e-3]


def test_a_trial_on_folds_records_each_folds_adapted_rate(tmp_path: Path) -> None:
    """Before: with objective(..., folds=k) no adapted rate was recorded at all (the guide
    promises them for every trial of objective)."""
    base = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=2, batch_size=16, lr_adapt="hypergradient",
                       hyper_lr=1e-2, device="cpu")
    pool = tuple(torch.cat(ts_) for ts_ in zip(*DATA, strict=True))
    study = ts.Study(ts.Space({"hidden": ts.Int(8, 16)}), sampler="random", seed=0)
    study.optimize(objective(lambda p: mlp(hidden=p["hidden"]), pool, base=base, checkpoint_root=tmp_path, folds=2),
                   n_trials=1)
    adapted = study.trials[0].attrs["adapted_lr"]
    assert set(adapted) == {f"fold-{k}/{role}" for k in (0, 1) for role in ("all/decay", "all/no_decay")}
    assert all(len(v) == 2 for v in adapted.values())
    assert adapted["fold-0/all/decay"] != adapted["fold-1/all/decay"]  # each fold's own run


def test_hypergradient_lr_refuses_a_step_size_that_would_break_the_rate() -> None:
    """Before: HypergradientLR (exported, for a loop of one's own) took any hyper_lr: a negative one
    climbed the loss, nan made every rate nan, '0.1' was read by float(), and the multiplicative
    rule took 2.0, which TrainConfig refuses; a model given as the optimizer failed with an AttributeError."""
    opt = make_optimizer(mlp(), TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0))
    for bad in (-1.0, float("nan"), float("inf"), 0, "0.1", None, True):
        with pytest.raises(ValueError, match=f"hyper_lr must be a finite number > 0 .*, got {bad!r}"):
            HypergradientLR(opt, hyper_lr=bad)
    with pytest.raises(ValueError, match=r"HypergradientLR\(rule='multiplicative'\) needs hyper_lr < 1, got 2.0"):
        HypergradientLR(opt, hyper_lr=2.0, rule="multiplicative")
    with pytest.raises(TypeError, match="HypergradientLR adapts the rates of a torch optimizer, got Sequential"):
        HypergradientLR(mlp(), hyper_lr=0.1)
    HypergradientLR(opt, hyper_lr=1e-3)


def test_the_report_shows_the_rate_each_trial_adapted(tmp_path: Path) -> None:
    """Before: the report of a study of lr_adapt trials showed only the starting lr; the adapted
    rates were in the trials' attrs alone."""
    pytest.importorskip("plotly")
    from tunesmith.report import build_report

    base = TrainConfig(optimizer="sgd", momentum=0.0, epochs=3, batch_size=16, lr_adapt="hypergradient-mult",
                       hyper_lr=0.2, device="cpu")
    study = ts.Study(ts.Space({"lr": ts.Float(1e-3, 1e-1, log=True)}), sampler="random", seed=0)
    study.optimize(objective(lambda p: mlp(), DATA, base=base, checkpoint_root=tmp_path), n_trials=2)
    page = build_report(study)
    assert "<th>adapted lr</th>" in page
    for t in study.trials:
        rates = t.attrs["adapted_lr"]["all/decay"]
        assert f"<td>{rates[0]:.3g} → {rates[-1]:.3g}</td>" in page


def test_a_paused_trial_on_folds_keeps_the_adapted_rates_of_the_folds_before_its_pause(tmp_path: Path) -> None:
    """Before: a trial on folds paused by ASHA and resumed ran its remaining folds and recorded
    their adapted rates alone, so the rates of the folds before the pause were lost."""
    from tunesmith.pruners import ASHA

    base = TrainConfig(optimizer="sgd", momentum=0.0, epochs=1, batch_size=16, lr_adapt="hypergradient",
                       hyper_lr=1e-3, device="cpu")
    pool = tuple(torch.cat(ts_) for ts_ in zip(*DATA, strict=True))
    study = ts.Study(ts.Space({"lr": ts.Float(1e-4, 1.0, log=True)}), sampler="random", seed=0,
                     pruner=ASHA(pause=True, min_resource=1, reduction_factor=2, max_resource=4))
    for lr in (0.05, 0.1, 0.02, 1e-3, 5e-3, 5e-4, 2e-4, 1e-4):  # worse later trials promote paused ones
        study.enqueue({"lr": lr})
    study.optimize(objective(lambda p: mlp(), pool, base=base, checkpoint_root=tmp_path, folds=4), n_trials=8)
    resumed = [t for t in study.trials if t.is_resumed]
    assert resumed
    for t in study.trials:
        folds = len(t.attrs["cv"]["scores"]["score"])
        assert set(t.attrs["adapted_lr"]) == {f"fold-{k}/{role}" for k in range(folds)
                                              for role in ("all/decay", "all/no_decay")}, t.number
