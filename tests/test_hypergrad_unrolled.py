"""Unrolled hypergradients: the pure update rules against torch's optimizers, the gradient
against central finite differences of the same K-step objective, the ridge known answer,
the outer loop, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_hypergrad_study import _problem as _loop_problem  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import LoopOptions, classifier_losses, hyper_space, hypertune, tune  # noqa: E402
from tunesmith.train.unrolled import (  # noqa: E402
    apply_rule,
    load_state,
    rules_of,
    state_of,
    unroll,
    unrolled_hypergradient,
    unrolled_objective,
)

OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd-nesterov-wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "sgd-dampening": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.02, weight_decay=1e-3),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1),
    # torch's Adam with decoupled decay steps as AdamW (before: unrolled as Adam's L2, 0.13 off in 3 steps)
    "adam-decoupled": lambda ps: torch.optim.Adam(ps, lr=0.02, weight_decay=0.5, decoupled_weight_decay=True),
}


def _data(n: int = 60, d: int = 5, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(d, classes, generator=g, dtype=torch.float64)
         + 0.5 * torch.randn(n, classes, generator=g, dtype=torch.float64)).argmax(1)
    return (x[: n // 2], y[: n // 2]), (x[n // 2:], y[n // 2:])


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    return classifier_losses(model, l2="tensor", l2_init=0.05, label_smoothing=0.1)


def _warm(problem, train, factory, steps: int = 4):
    """A few torch-optimizer steps, so that the unrolled steps start from a non-trivial state."""
    w = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
    opt = factory(list(w.values()))
    for _ in range(steps):
        opt.zero_grad()
        problem.train_loss(w, problem.hparams, train).backward()
        opt.step()
    return w, opt


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_pure_update_rules_equal_torch_optimizers(name: str) -> None:
    problem, (train, _) = _problem(), _data()
    w, opt = _warm(problem, train, OPTIMIZERS[name])
    got, _ = unroll(problem.train_loss, {k: v.detach() for k, v in w.items()}, problem.hparams, [train] * 3,
                    rules_of(opt, w), state_of(opt, w))
    for _ in range(3):
        opt.zero_grad()
        problem.train_loss(w, problem.hparams, train).backward()
        opt.step()
    for k in w:
        assert torch.allclose(got[k], w[k].detach(), rtol=1e-10, atol=1e-12), k


def _fd(problem, w, opt, batches, val, name, h=1e-5):
    def at(delta):
        hp = {k: v.clone() for k, v in problem.hparams.items()}
        hp[name] = hp[name] + delta
        return unrolled_objective(problem.train_loss, problem.val_loss, w, hp, batches, val,
                                  rules=rules_of(opt, w), state=state_of(opt, w))
    return (at(h) - at(-h)) / (2 * h)


@pytest.mark.parametrize("name", ["sgd-nesterov-wd", "adam"])
def test_unrolled_hypergradient_matches_central_finite_differences(name: str) -> None:
    problem = _problem()
    train, val = _data()
    w, opt = _warm(problem, train, OPTIMIZERS[name])
    batches = [(train[0][i::2], train[1][i::2]) for i in range(2)] * 3  # K = 6 steps, two alternating batches
    hg, w_k, _, loss = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, batches, val,
                                              rules=rules_of(opt, w), state=state_of(opt, w))
    assert loss == pytest.approx(unrolled_objective(problem.train_loss, problem.val_loss, w, problem.hparams, batches,
                                                    val, rules=rules_of(opt, w), state=state_of(opt, w)), rel=1e-12)
    assert not torch.allclose(w_k["0.weight"], w["0.weight"])
    for hname in problem.hparams:
        fd = _fd(problem, w, opt, batches, val, hname)
        got = float(hg[hname])
        assert abs(fd) > 1e-6, hname
        assert abs(got - fd) <= 1e-3 * abs(fd), (hname, got, fd)
        assert abs(-got - fd) > 1e-3 * abs(fd)  # a wrong sign would be caught


@pytest.mark.parametrize("name", ["sgd-nesterov-wd", "adam", "adamw"])
def test_the_greedy_one_step_hypergradient_matches_finite_differences(name: str) -> None:
    """K = 1 (the greedy hypergradient of Luketina et al. / Baydin et al.): the derivative of the
    validation loss after the one training step the loop takes next, Adam's normalization included."""
    problem = _problem()
    train, val = _data()
    w, opt = _warm(problem, train, OPTIMIZERS[name])
    hg, w_1, _, loss = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], val,
                                              rules=rules_of(opt, w), state=state_of(opt, w))
    opt.zero_grad()
    problem.train_loss(w, problem.hparams, train).backward()
    opt.step()  # the step training takes: the greedy objective is the validation loss after it
    assert torch.allclose(w_1["0.weight"], w["0.weight"].detach(), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(float(problem.val_loss({k: v.detach() for k, v in w.items()}, val)), rel=1e-12)
    w0, opt0 = _warm(problem, train, OPTIMIZERS[name])
    for hname in problem.hparams:
        fd = _fd(problem, w0, opt0, [train], val, hname, h=1e-6)
        got = float(hg[hname])
        assert abs(fd) > 1e-8, hname
        assert abs(got - fd) <= 1e-3 * abs(fd), (hname, got, fd)


def test_the_optimizer_state_is_part_of_the_unrolled_objective() -> None:
    """Started from Adam's state after warm-up, not from a fresh one: the gradients differ."""
    problem = _problem()
    train, val = _data()
    w, opt = _warm(problem, train, OPTIMIZERS["adam"])
    kw = {"rules": rules_of(opt, w)}
    warm = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train] * 3, val,
                                  state=state_of(opt, w), **kw)[0]
    fresh = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train] * 3, val, **kw)[0]
    assert not torch.allclose(warm["label_smoothing"], fresh["label_smoothing"], rtol=1e-3)


def test_adams_step_counter_is_float32_and_goes_back_where_torch_keeps_it() -> None:
    """In bf16 weights' dtype the counter would stop at 256 (256 + 1 == 256 in bf16), and Adam's
    bias correction with it; a fresh state written back must be what torch itself would hold."""
    p = torch.ones(3, dtype=torch.bfloat16)
    rule = rules_of(torch.optim.Adam([p], lr=0.01), {"p": p})["p"]
    _, st = apply_rule(rule, p, torch.ones_like(p), {})
    assert st["step"].dtype == torch.float32 and float(st["step"]) == 1
    _, st = apply_rule(rule, p, torch.ones_like(p), {"step": torch.tensor(256.0)})
    assert float(st["step"]) == 257
    problem = _problem()
    train, val = _data()
    w = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
    opt = torch.optim.Adam(list(w.values()), lr=0.02)
    _, w1, state, _ = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], val,
                                             rules=rules_of(opt, w))
    with torch.no_grad():
        for k in w:
            w[k].copy_(w1[k])
    load_state(opt, w, state)
    ref = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
    ref_opt = torch.optim.Adam(list(ref.values()), lr=0.02)
    for weights, optimizer in ((w, opt), (ref, ref_opt)):  # one more torch step on both
        if optimizer is ref_opt:  # the reference takes its first step with torch itself
            optimizer.zero_grad()
            problem.train_loss(weights, problem.hparams, train).backward()
            optimizer.step()
        optimizer.zero_grad()
        problem.train_loss(weights, problem.hparams, train).backward()
        optimizer.step()
    for k in w:
        a, b = opt.state[w[k]], ref_opt.state[ref[k]]
        assert a["step"].dtype == b["step"].dtype and a["step"].device == b["step"].device and float(a["step"]) == 2
        assert torch.allclose(w[k], ref[k], rtol=1e-10, atol=1e-12), k


def _ridge():
    rng = np.random.default_rng(0)
    n, d = 40, 10
    x = rng.normal(size=(2 * n, d))
    y = x @ rng.normal(size=d) + 2.0 * rng.normal(size=2 * n)
    return (x[:n], y[:n]), (x[n:], y[n:])


def _ridge_solution(lam: float, train) -> np.ndarray:
    xt, yt = train
    return np.linalg.solve(xt.T @ xt / len(yt) + lam * np.eye(xt.shape[1]), xt.T @ yt / len(yt))


def test_ridge_long_unroll_from_the_optimum_gives_the_closed_form_hypergradient() -> None:
    """At the exact ridge solution, K SGD steps leave the weights there, and their hypergradient
    tends (geometrically in K) to the derivative of the closed-form validation loss."""
    train_np, val_np = _ridge()
    lam = 0.3

    def closed(lam_: float) -> float:
        return float(np.mean((val_np[0] @ _ridge_solution(lam_, train_np) - val_np[1]) ** 2))

    want = (closed(lam + 1e-6) - closed(lam - 1e-6)) / 2e-6
    train = tuple(torch.tensor(a) for a in train_np)
    val = tuple(torch.tensor(a) for a in val_np)

    def train_loss(p, h, b):
        return 0.5 * torch.mean((b[0] @ p["w"] - b[1]) ** 2) + 0.5 * h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2)

    w = {"w": torch.tensor(_ridge_solution(lam, train_np)).requires_grad_(True)}
    opt = torch.optim.SGD(list(w.values()), lr=0.1)
    grads = {}
    for k in (3, 300):
        hg, w_k, _, _ = unrolled_hypergradient(train_loss, val_loss, w, {"l2": torch.tensor(lam, dtype=torch.float64)},
                                               [train] * k, val, rules=rules_of(opt, w))
        assert torch.allclose(w_k["w"], w["w"].detach(), atol=1e-10)
        grads[k] = float(hg["l2"])
    assert grads[300] == pytest.approx(want, rel=1e-3)
    assert abs(grads[3] - want) > 0.05 * abs(want)  # the truncation's bias is real at small K


def test_unrolled_outer_loop_records_each_step_as_a_trial() -> None:
    problem, train, val = _loop_problem()
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize")
    opts = LoopOptions(method="unrolled", unroll_steps=10, outer_steps=6, inner_steps=30, warm_start_steps=300,
                       inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.3))
    result = hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                       constraints=problem.constraints, options=opts)
    trials = study.trials
    assert [t.attrs["method"] for t in trials] == ["unrolled"] * 6
    assert all(t.attrs["unroll_steps"] == 10 and t.attrs["hypergrad_norm"] > 0 for t in trials)
    assert [t.attrs["train_steps"] for t in trials] == [300 + 30 * (i + 1) for i in range(6)]
    assert trials[-1].value < trials[0].value
    assert 0 < float(result.hparams["label_smoothing"]) < 0.5 and float(result.hparams["l2.0.weight"]) > 0
    assert all(math.isfinite(float(v)) for v in result.params["0.weight"].reshape(-1))


def test_bad_unroll_settings_and_optimizers_are_refused() -> None:
    with pytest.raises(ValueError, match="unroll_steps must be an integer >= 1"):
        LoopOptions(method="unrolled", unroll_steps=0)
    with pytest.raises(ValueError, match=r"unroll_steps \(20\) must be <= inner_steps \(10\)"):
        LoopOptions(method="unrolled", unroll_steps=20, inner_steps=10)
    with pytest.raises(ValueError, match="method must be one of"):
        LoopOptions(method="backprop")
    LoopOptions(unroll_steps=20, inner_steps=10)  # ignored by the implicit method
    problem, train, val = _loop_problem()
    for factory, msg in ((lambda ps: torch.optim.LBFGS(ps), "supports torch.optim.SGD, .* got LBFGS"),
                         (lambda ps: torch.optim.Adam(ps, amsgrad=True), "does not support amsgrad")):
        opts = LoopOptions(method="unrolled", unroll_steps=2, inner_steps=5, inner_optimizer=factory)
        with pytest.raises(ValueError, match=msg):
            tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                 constraints=problem.constraints, options=opts)
    with pytest.raises(ValueError, match="at least one training batch"):
        w = {k: v.clone() for k, v in problem.params.items()}
        unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [], val,
                               rules=rules_of(torch.optim.SGD(list(w.values()), lr=0.1), w))


def test_rules_of_copies_of_the_weights_says_they_are_matched_by_identity() -> None:
    """Before: "parameter '0.weight' is not among the inner optimizer's parameters", for the very
    weights the optimizer was built on, only detached."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"'0.weight' is not among .* matched by identity: pass the very tensors"):
        rules_of(opt, {k: v.detach() for k, v in model.named_parameters()})
    assert set(rules_of(opt, dict(model.named_parameters()))) == {"0.weight", "0.bias"}


def test_train_batches_that_are_not_a_list_of_batches_are_refused() -> None:
    """Before: one (x, y) batch was taken as two batches, x and y ("too many values to unpack"),
    a generator failed with "object of type 'generator' has no len()"."""
    problem, train, val = _loop_problem()
    w = {k: v.clone().requires_grad_(True) for k, v in problem.params.items()}
    rules = rules_of(torch.optim.SGD(list(w.values()), lr=0.1), w)
    for wrong, what in [(train, r"one \(x, y\) batch"), ((b for b in [train]), "generator")]:
        with pytest.raises(ValueError, match=f"train_batches as a list of the K batches .*got {what}; one batch K"):
            unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, wrong, val, rules=rules)
    with pytest.raises(TypeError, match="unrolled_hypergradient takes val_batch as one batch, got a list_iterator"):
        unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], iter([val]),
                               rules=rules)
    hg, *_ = unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, (train, train), val,
                                    rules=rules)
    assert set(hg) == set(problem.hparams)


def test_an_adam_state_missing_a_buffer_is_refused_by_name() -> None:
    """A hand-made Adam state without ``exp_avg_sq`` (its step and first moment kept) ran with zeros for
    it and gave another hypergradient without a word; it is refused, naming the buffer. A fresh (empty)
    state and a complete one still run."""
    problem = _problem()
    train, val = _data()
    w, opt = _warm(problem, train, OPTIMIZERS["adam"])
    kw = {"rules": rules_of(opt, w)}
    full = state_of(opt, w)
    name = next(iter(w))
    partial = {**full, name: {k: v for k, v in full[name].items() if k != "exp_avg_sq"}}
    with pytest.raises(ValueError, match=rf"state\['{name}'\] has no 'exp_avg_sq': an Adam state holds step, exp_avg"):
        unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], val, state=partial, **kw)
    for state in (full, {**full, name: {}}, None, {**full, "not a weight": {"step": torch.tensor(1.0)}}):
        unrolled_hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, [train], val, state=state, **kw)
