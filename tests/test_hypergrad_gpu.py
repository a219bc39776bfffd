"""Gradient-based tuning on CUDA: the same hypergradients and outer loop as on the CPU, and the
adapted learning rate through the bf16 trainer (run with ``-m gpu`` on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import mlp, snapshot, split  # noqa: E402

from tunesmith.train import TrainConfig, Trainer, checkpoint  # noqa: E402
from tunesmith.train.hyperloop import LoopOptions, tune  # noqa: E402
from tunesmith.train.hyperlosses import classifier_losses  # noqa: E402
from tunesmith.train.hyperstudy import values_of  # noqa: E402
from tunesmith.train.implicit import ImplicitOptions, hypergradient  # noqa: E402
from tunesmith.train.unrolled import (  # noqa: E402
    load_state,
    rules_of,
    unrolled_hypergradient,
    unrolled_objective,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _problem(device: str, l2: str = "weight"):
    """A float64 two-layer classifier with L2 weights (``"weight"``: tensors shaped like the
    matrices) and label smoothing, on ``device``; its data on the same device."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] - x[:, 1] + 0.5 * torch.randn(80, generator=g, dtype=torch.float64) > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double().to(device)
    problem = classifier_losses(model, l2=l2, l2_init=1e-2, label_smoothing=0.05)
    x, y = x.to(device), y.to(device)
    return problem, (x[:40], y[:40]), (x[40:], y[40:])


def _cpu(tree):
    return {k: v.detach().cpu() for k, v in tree.items()}


def test_implicit_and_unrolled_hypergradients_on_cuda_equal_the_cpu_ones() -> None:
    out = {}
    for device in ("cpu", "cuda"):
        problem, train, val = _problem(device)
        assert all(v.device.type == device for v in problem.hparams.values())
        hp = _cpu(problem.hparams)  # given on the CPU, shaped like the weights: placed with them
        implicit = hypergradient(problem.train_loss, problem.val_loss, problem.params, hp, train, val,
                                 options=ImplicitOptions(method="cg", iters=20))
        w = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
        rules = rules_of(torch.optim.Adam(list(w.values()), lr=0.01), w)
        unrolled, *_ = unrolled_hypergradient(problem.train_loss, problem.val_loss, problem.params, hp,
                                              [train] * 3, val, rules=rules)
        objective = unrolled_objective(problem.train_loss, problem.val_loss, problem.params, hp, [train] * 3, val,
                                       rules=rules)
        assert all(v.device.type == device for v in (*implicit.values(), *unrolled.values()))
        out[device] = (_cpu(implicit), _cpu(unrolled), objective)
    assert out["cuda"][2] == pytest.approx(out["cpu"][2], rel=1e-12)
    out = {k: v[:2] for k, v in out.items()}
    # the K unrolled steps are a fixed computation: equal to rounding. CG amplifies the rounding
    # differences of sums taken in another order (seen on an H200: 5.6e-6 of the largest entry)
    for (cpu, cuda), tol in zip(zip(out["cpu"], out["cuda"], strict=True), (1e-4, 1e-9), strict=True):
        for k in cpu:
            diff = float((cuda[k] - cpu[k]).abs().max()) / float(cpu[k].abs().max())
            print(f"{k}: largest difference {diff:.2e} of the largest entry (tolerance {tol:g})")
            assert diff <= tol, k


def test_the_outer_loop_on_cuda_follows_the_cpu_loop() -> None:
    results = {}
    for device in ("cpu", "cuda"):  # one L2 weight per matrix: Adam's first steps follow the signs of the
        problem, train, val = _problem(device, l2="tensor")  # hypergradient, so none may be near zero
        opts = LoopOptions(outer_steps=6, inner_steps=10, inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                           hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.2))
        # plain floats as the starting hyperparameters: the loop places them with the weights
        start = {k: (float(v) if v.ndim == 0 else v.cpu()) for k, v in problem.hparams.items()}
        results[device] = tune(problem.train_loss, problem.val_loss, problem.params, start, train, val,
                               constraints=problem.constraints, options=opts)
    cpu, cuda = results["cpu"], results["cuda"]
    print("validation losses, cpu:", [s.val_loss for s in cpu.steps], "cuda:", [s.val_loss for s in cuda.steps])
    # each outer step's CG carries its rounding differences into the next (see above; on an H200 the
    # losses drifted apart by 1.4e-4 relative in 6 steps, label smoothing by 0.14%)
    assert [s.val_loss for s in cuda.steps] == pytest.approx([s.val_loss for s in cpu.steps], rel=1e-3)
    for k, v in cpu.hparams.items():
        assert torch.allclose(torch.as_tensor(cuda.hparams[k]).cpu(), torch.as_tensor(v), rtol=1e-2), k
    assert cpu.hparams["label_smoothing"] != pytest.approx(0.05)  # the loop moved them


def test_the_greedy_loop_runs_on_cuda_with_per_weight_hyperparameters_from_a_trial() -> None:
    """The greedy step (unrolled, one training step) on CUDA: per-weight L2 rebuilt from flat trial
    values (values_of) lands on the weights' device, and follows the CPU's loop."""
    losses = {}
    for device in ("cpu", "cuda"):
        problem, train, val = _problem(device)
        flat = {f"{k}[{i}]" if v.ndim else k: float(x) for k, v in problem.hparams.items()
                for i, x in enumerate(v.reshape(-1).tolist())}
        start = values_of(flat, problem.hparams)
        assert all(v.device.type == device for v in start.values())
        opts = LoopOptions(method="unrolled", unroll_steps=1, outer_steps=8, inner_steps=1,
                           inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                           hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05))
        result = tune(problem.train_loss, problem.val_loss, problem.params, start, train, val,
                      constraints=problem.constraints, options=opts)
        assert all(v.device.type == device for v in result.hparams.values())
        losses[device] = [s.val_loss for s in result.steps]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-6)


def test_the_unrolled_state_goes_back_into_a_fused_adam_on_cuda() -> None:
    problem, train, val = _problem("cuda")
    w = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
    opt = torch.optim.Adam(list(w.values()), lr=0.01, fused=True)
    _, w1, state, _ = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], val,
                                             rules=rules_of(opt, w))
    with torch.no_grad():
        for k in w:
            w[k].copy_(w1[k])
    load_state(opt, w, state)  # a fresh state: the fused kernel wants its counter on the device
    assert all(opt.state[p]["step"].device == p.device for p in w.values())
    opt.zero_grad()
    problem.train_loss(w, problem.hparams, train).backward()
    opt.step()
    assert all(float(opt.state[p]["step"]) == 2 for p in w.values())


def test_the_adapted_learning_rate_trains_on_cuda_and_resumes_exactly(tmp_path: Path) -> None:
    data = split(128)
    cfg = TrainConfig(optimizer="adam", lr=0.01, epochs=4, batch_size=16, lr_adapt="hypergradient", hyper_lr=1e-4,
                      checkpoint_dir=str(tmp_path / "a"), keep_last=10, restore_best=False, seed=3)
    full = Trainer(mlp(seed=1), cfg)
    assert full.device.type == "cuda" and full.bf16
    h_full = full.fit(*data)
    assert h_full.records[-1].train_loss < h_full.records[0].train_loss
    assert h_full.records[-1].lrs["all/decay"] != pytest.approx(0.01)  # the rate moved
    mid = checkpoint.last_path(tmp_path / "a", h_full.records[1].step)
    resumed = Trainer(mlp(seed=2), cfg.with_params({"checkpoint_dir": str(tmp_path / "b")}))
    h_res = resumed.fit(*data, resume_from=mid)
    assert [r.lrs for r in h_res.records] == [r.lrs for r in h_full.records]
    a, b = snapshot(full.model), snapshot(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
