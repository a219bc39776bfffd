"""Implicit hypergradients: against central finite differences, and the ridge known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from test_hypergrad_study import _diverging

import tunesmith as ts
from tunesmith.train import hyper_space, hypertune
from tunesmith.train.hyperloop import LoopOptions, from_raw, to_raw, tune
from tunesmith.train.hyperlosses import classifier_losses
from tunesmith.train.implicit import ImplicitOptions, hypergradient


def _data(n: int = 60, d: int = 5, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(d, classes, generator=g, dtype=torch.float64) + 0.5 * torch.randn(n, classes, generator=g,
         dtype=torch.float64)).argmax(1)
    return (x[: n // 2], y[: n // 2]), (x[n // 2:], y[n // 2:])


def _solve(train_loss, params, hparams, batch):
    """The weights minimizing the training loss, to float64 precision (Newton-like LBFGS)."""
    w = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.LBFGS(list(w.values()), lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = train_loss(w, hparams, batch)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    return {k: v.detach() for k, v in w.items()}


def _finite_difference(problem, params, hparams, train, val, name, index, h=1e-5):
    def val_at(delta):
        hp = {k: v.clone() for k, v in hparams.items()}
        hp[name].view(-1)[index] += delta
        w = _solve(problem.train_loss, params, hp, train)
        return float(problem.val_loss(w, val))
    return (val_at(h) - val_at(-h)) / (2 * h)


@pytest.mark.parametrize("l2", ["tensor", "weight"])
@pytest.mark.parametrize("method", ["cg", pytest.param("neumann", marks=pytest.mark.slow)])
def test_hypergradient_matches_central_finite_differences(l2: str, method: str) -> None:
    train, val = _data()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    problem = classifier_losses(model, l2=l2, l2_init=0.05, label_smoothing=0.1)
    w = _solve(problem.train_loss, problem.params, problem.hparams, train)
    iters = 50 if method == "cg" else 3000
    hg = hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, train, val,
                       options=ImplicitOptions(method=method, iters=iters))
    checked = 0
    for name, value in problem.hparams.items():
        for index in range(min(value.numel(), 3)):
            fd = _finite_difference(problem, problem.params, problem.hparams, train, val, name, index)
            got = float(hg[name].reshape(-1)[index])
            assert abs(got - fd) <= 1e-3 * max(abs(fd), 1e-8), (name, index, got, fd)
            checked += 1
    assert checked >= 2


def test_neumann_agrees_with_conjugate_gradient() -> None:
    train, val = _data()
    torch.manual_seed(0)
    problem = classifier_losses(torch.nn.Linear(5, 3).double(), l2="tensor", l2_init=0.5, label_smoothing=0.1)
    w = _solve(problem.train_loss, problem.params, problem.hparams, train)
    cg = hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, train, val)
    neumann = hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, train, val,
                            options=ImplicitOptions(method="neumann", iters=200))
    few = hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, train, val,
                        options=ImplicitOptions(method="neumann", iters=2))
    for k in cg:
        assert torch.allclose(neumann[k], cg[k], rtol=1e-3, atol=0), k
    assert any(not torch.allclose(few[k], cg[k], rtol=1e-3, atol=0) for k in cg)  # truncation matters


def test_a_wrong_hypergradient_would_be_caught() -> None:
    """The check above is not vacuous: without the mixed term's sign the gradients disagree."""
    train, val = _data()
    torch.manual_seed(0)
    problem = classifier_losses(torch.nn.Linear(5, 3).double(), l2="tensor", l2_init=0.05)
    w = _solve(problem.train_loss, problem.params, problem.hparams, train)
    hg = hypergradient(problem.train_loss, problem.val_loss, w, problem.hparams, train, val)
    name = next(iter(problem.hparams))
    fd = _finite_difference(problem, problem.params, problem.hparams, train, val, name, 0)
    assert abs(fd) > 1e-6 and abs(float(-hg[name].reshape(-1)[0]) - fd) > 1e-3 * abs(fd)


def _ridge_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d = 40, 10
    x = rng.normal(size=(2 * n, d))
    w_true = rng.normal(size=d)
    y = x @ w_true + 2.0 * rng.normal(size=2 * n)
    return (x[:n], y[:n]), (x[n:], y[n:])


def _ridge_val_loss(lam: float, train, val) -> float:
    (xt, yt), (xv, yv) = train, val
    n, d = xt.shape
    w = np.linalg.solve(xt.T @ xt / n + lam * np.eye(d), xt.T @ yt / n)
    return float(np.mean((xv @ w - yv) ** 2))


@pytest.mark.slow
def test_ridge_converges_to_the_closed_form_optimum() -> None:
    train_np, val_np = _ridge_data()
    best = minimize_scalar(lambda t: _ridge_val_loss(math.exp(t), train_np, val_np), bounds=(-12, 6),
                           method="bounded", options={"xatol": 1e-10}).x
    lam_star = math.exp(best)
    train = tuple(torch.tensor(a) for a in train_np)
    val = tuple(torch.tensor(a) for a in val_np)

    def train_loss(p, h, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2) + h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2)

    for start in (lam_star * 10, lam_star / 10):
        result = tune(train_loss, val_loss, {"w": torch.zeros(10, dtype=torch.float64)}, {"l2": torch.tensor(start)}, train, val,
                      constraints={"l2": "positive"},
                      options=LoopOptions(outer_steps=150, inner_steps=100,
                                          inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1),
                                          hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05)))
        got = float(result.hparams["l2"])
        assert abs(got - lam_star) <= 0.01 * lam_star, (start, got, lam_star)


@pytest.mark.parametrize("c", ["positive", (0.0, 0.5), "real"])
def test_reparametrizations_round_trip(c) -> None:
    v = torch.tensor([0.01, 0.2, 0.4])
    assert torch.allclose(from_raw(to_raw(v, c), c), v)


def test_bad_constraints_and_starts_are_refused() -> None:
    with pytest.raises(ValueError, match="constrained 'positive' and must start > 0"):
        to_raw(torch.tensor(0.0), "positive")
    with pytest.raises(ValueError, match="hyperparameter 'l2' is constrained 'positive' and must start > 0, got -1.0"):
        tune(lambda p, h, b: p["w"].sum(), lambda p, b: p["w"].sum(), {"w": torch.zeros(1)},
             {"l2": torch.tensor(-1.0)}, None, None, constraints={"l2": "positive"})
    with pytest.raises(ValueError, match="strictly inside"):
        to_raw(torch.tensor(0.5), (0.0, 0.5))
    with pytest.raises(ValueError, match="must be 'real', 'positive' or"):
        tune(lambda p, h, b: p["w"].sum(), lambda p, b: p["w"].sum(), {"w": torch.zeros(1)},
             {"l2": torch.tensor(1.0)}, None, None, constraints={"l2": "log"})
    with pytest.raises(ValueError, match="method must be one of"):
        ImplicitOptions(method="newton")


def test_implicit_options_are_validated() -> None:
    """Before, tol=inf (CG stopped before its first step: a hypergradient of exactly 0), alpha=inf
    and iters=True were accepted."""
    for bad, message in [(dict(tol=math.inf), "tol must be a finite number >= 0"),
                         (dict(damping=math.nan), "damping must be a finite number >= 0"),
                         (dict(alpha=math.inf), "alpha must be a finite number > 0"),
                         (dict(iters=True), "iters must be an integer >= 1")]:
        with pytest.raises(ValueError, match=message):
            ImplicitOptions(**bad)
    ImplicitOptions(tol=0, damping=0, alpha=0.5, iters=1)


def test_loop_options_are_validated() -> None:
    with pytest.raises(ValueError, match="outer_steps must be an integer >= 1"):
        LoopOptions(outer_steps=0)
    LoopOptions(warm_start_steps=0)
    with pytest.raises(ValueError, match="max_hyper_step must be a finite number > 0 or None, got True"):
        LoopOptions(max_hyper_step=True)  # before: taken as 1


def test_loop_options_of_the_wrong_kind_are_refused_with_the_fix() -> None:
    """Before: an optimizer instance failed inside tune with "'Adam' object is not callable", "cg"
    as method named no fix, a dict or ImplicitOptions as options gave an AttributeError, and a
    negative or nan hyper_schedule factor stepped uphill or made the hyperparameters nan (then an
    error that blamed the inner optimizer's learning rate)."""
    instance = torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    with pytest.raises(TypeError, match="LoopOptions.inner_optimizer must be a factory, params list -> optimizer"):
        LoopOptions(inner_optimizer=instance)
    with pytest.raises(TypeError, match="LoopOptions.hyper_optimizer must be a factory"):
        LoopOptions(hyper_optimizer=None)
    with pytest.raises(ValueError, match=r"implicit=ImplicitOptions\(method='cg'\)"):
        LoopOptions(method="cg")
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    for wrong, message in [({"outer_steps": 1}, "got dict"), (ImplicitOptions(), r"got ImplicitOptions \(pass it as LoopOptions\(implicit=...\)\)")]:
        with pytest.raises(TypeError, match=f"tune's options must be a LoopOptions, {message}"):
            tune(train_loss, val_loss, params, l2, train, val, options=wrong)
    with pytest.raises(TypeError, match=r"hypergradient's options must be an ImplicitOptions, got LoopOptions \(a "):
        hypergradient(train_loss, val_loss, params, l2, train, val, options=LoopOptions())  # was AttributeError 'alpha'
    for factor in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=r"hyper_schedule\(0\) is (-1.0|nan); it must be a finite factor >= 0"):
            tune(train_loss, val_loss, params, l2, train, val, constraints={"l2": "positive"},
                 options=LoopOptions(outer_steps=2, inner_steps=2, hyper_schedule=lambda k, f=factor: f))
    for name in ("inner_optimizer", "hyper_optimizer"):  # before: "'NoneType' object has no attribute 'step'"
        with pytest.raises(TypeError, match=f"LoopOptions.{name} returned None, not a torch optimizer"):
            tune(train_loss, val_loss, params, l2, train, val, options=LoopOptions(**{name: lambda ps: None}))


def _small_problem():
    train, val = _data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    fc = torch.nn.functional

    def out(p, x):
        return torch.func.functional_call(model, p, (x,))

    def train_loss(p, h, b):
        return fc.cross_entropy(out(p, b[0]), b[1]) + h["l2"] * p["2.weight"].pow(2).sum()

    def val_loss(p, b):
        return fc.cross_entropy(out(p, b[0]), b[1])

    params = {k: v.detach() for k, v in model.named_parameters()}
    return out, train_loss, val_loss, params, train, val


def _each_entry_point(train_loss, val_loss, params, hparams, train, val, like=None) -> list:
    """The hypergradient's three entry points on one problem: each must refuse it (``like``:
    the weights the unrolled optimizer's rules are built for, when ``params`` cannot be)."""
    from tunesmith.train.unrolled import rules_of, unrolled_hypergradient

    w = {k: v.clone().requires_grad_(True) for k, v in (params if like is None else like).items()}
    rules = rules_of(torch.optim.SGD(list(w.values()), lr=0.1), w)
    calls = [lambda m=m: hypergradient(train_loss, val_loss, params, hparams, train, val,
                                       options=ImplicitOptions(method=m, iters=5)) for m in ("cg", "neumann")]
    calls.append(lambda: unrolled_hypergradient(train_loss, val_loss, params, hparams, [train], val, rules=rules))
    calls += [lambda m=m: tune(train_loss, val_loss, params, hparams, train, val,
                               options=LoopOptions(method=m, outer_steps=2, inner_steps=2, unroll_steps=1))
              for m in ("implicit", "unrolled")]
    return calls


def test_problems_without_a_meaningful_hypergradient_are_refused() -> None:
    """A hyperparameter the training loss does not use, a non-differentiable or non-finite loss:
    before, the hypergradient was silently 0 (or nan, then a training-loss error that blamed the
    inner optimizer's rate); each entry point now refuses the problem saying what is wrong."""
    out, train_loss, val_loss, params, train, val = _small_problem()
    fc = torch.nn.functional
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    cases = [
        (train_loss, val_loss, {**l2, "unused": torch.tensor(1.0)}, r"does not use the hyperparameter\(s\) \['unused'\]"),
        (lambda p, h, b: fc.cross_entropy(out(p, b[0]), b[1]), val_loss, l2, r"does not use the hyperparameter"),
        (lambda p, h, b: train_loss(p, h, b).detach(), val_loss, l2, "depends neither on the weights"),
        (train_loss, lambda p, b: (out(p, b[0]).argmax(1) != b[1]).double().mean(), l2, "not differentiable in the weights"),
        (train_loss, lambda p, b: val_loss(p, b) * float("nan"), l2, r"val_loss\(params, batch\) is nan"),
        (lambda p, h, b: train_loss(p, h, b) + float("inf"), val_loss, l2, r"train_loss\(params, hparams, batch\) is inf"),
        (train_loss, val_loss, {"l2": torch.tensor(float("nan"))}, r"hyperparameter\(s\) \['l2'\] are not finite"),
        (train_loss, lambda p, b: fc.cross_entropy(out(p, b[0]), b[1], reduction="none"), l2, "must return a scalar"),
    ]
    for tl, vl, hp, message in cases:
        for call in _each_entry_point(tl, vl, params, hp, train, val):
            with pytest.raises(ValueError, match=message):
                call()


def test_an_integer_hyperparameter_is_taken_as_a_float_as_tune_takes_it() -> None:
    """``torch.tensor(1)`` failed in ``hypergradient`` with torch's "only Tensors of floating point
    dtype can require gradients" (``tune`` and a Python ``1`` already meant 1.0)."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    as_int = hypergradient(train_loss, val_loss, params, {"l2": torch.tensor(1)}, train, val)
    as_float = hypergradient(train_loss, val_loss, params, {"l2": 1.0}, train, val)
    assert as_int["l2"].dtype == torch.float64
    assert torch.equal(as_int["l2"], as_float["l2"])


@pytest.mark.parametrize("start", [True, torch.tensor(False), np.True_], ids=["bool", "tensor", "np.bool_"])
def test_a_yes_no_hyperparameter_is_refused_by_every_entry_point(start) -> None:
    """Before: only ``tune`` refused a bool; ``hypergradient`` and ``unrolled_hypergradient``
    returned a gradient for it, taken as 1.0 or 0.0, though a yes/no choice has none."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    for call in _each_entry_point(train_loss, val_loss, params, {"l2": start}, train, val):
        with pytest.raises(TypeError, match="hyperparameter 'l2' is a bool, .*: a yes/no choice has no gradient"):
            call()


def test_a_hypergradient_that_turns_nan_mid_loop_is_named() -> None:
    """A validation loss that becomes nan after some outer steps: the loop stops there with an
    error about the hypergradient, instead of a nan hyperparameter step and then an error that
    blamed the training loss and the inner optimizer's learning rate."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    calls = []

    def flaky_val(p, b):
        calls.append(1)
        return val_loss(p, b) * (float("nan") if len(calls) > 3 else 1.0)

    with pytest.raises(FloatingPointError, match="hypergradient at outer step 1 is not finite"):
        tune(train_loss, flaky_val, params, {"l2": torch.tensor(1e-2, dtype=torch.float64)}, train, val,
             constraints={"l2": "positive"}, options=LoopOptions(outer_steps=4, inner_steps=2))


def test_an_empty_batch_is_named_not_blamed_on_a_diverged_model() -> None:
    """Before: 'val_loss(params, batch) is nan ... (a diverged model, a log of 0, a nan in the data?)'."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    empty = tuple(t[:0] for t in val)
    for given, what in [((train, empty), "validation"), ((empty, val), "training")]:
        for call in _each_entry_point(train_loss, val_loss, params, l2, *given):
            with pytest.raises(ValueError, match=f"the {what} batch is empty"):
                call()


def test_weights_and_hyperparameters_that_are_not_dicts_of_tensors_are_refused() -> None:
    """Before: a model given as params failed with "'Linear' object has no attribute 'items'",
    empty params with a bare StopIteration, empty hparams with torch's "optimizer got an empty
    parameter list" (tune) or returned {} (hypergradient)."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    cases = [(torch.nn.Linear(4, 3), l2, TypeError, "params must be a dict name -> tensor"),
             ({}, l2, ValueError, "params is empty"),
             ({k: v.long() for k, v in params.items()}, l2, TypeError, "are not floating-point tensors"),
             (params, {}, ValueError, "hparams must be a non-empty dict")]
    for p, hp, error, message in cases:
        for call in _each_entry_point(train_loss, val_loss, p, hp, train, val, like=params):
            with pytest.raises(error, match=message):
                call()


def test_a_loss_that_updates_batch_norm_statistics_gets_the_fix() -> None:
    """Before: torch.func's "attempted to call in-place operation (aten::add_.Tensor) that would
    mutate a captured Tensor", which names neither batch norm nor what to do."""
    train, val = _data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3)).double()
    fc = torch.nn.functional

    def train_loss(p, h, b):
        out = torch.func.functional_call(model, p, (b[0],))
        return fc.cross_entropy(out, b[1]) + h["l2"] * p["2.weight"].pow(2).sum()

    def val_loss(p, b):
        return fc.cross_entropy(torch.func.functional_call(model, p, (b[0],)), b[1])

    params = {k: v.detach() for k, v in model.named_parameters()}
    for call in _each_entry_point(train_loss, val_loss, params, {"l2": torch.tensor(1e-2)}, train, val):
        with pytest.raises(RuntimeError, match=r"batch norm updating its running statistics .* copies of its buffers"):
            call()


def test_an_interval_given_as_a_list_is_taken_and_an_infinite_one_refused() -> None:
    """Before: [0, 0.5] (how JSON and YAML write an interval) was refused, and (0, inf) accepted,
    to give inf or nan values (low + inf * sigmoid)."""
    from tunesmith.train.hyperloop import check_constraint

    assert check_constraint("s", [0, 0.5]) == (0.0, 0.5)
    for bad in [(0.0, math.inf), [math.nan, 1.0], (True, 2.0), [0.0, 0.5, 1.0]]:
        with pytest.raises(ValueError, match=r"'s' must be 'real', 'positive' or \(low, high\) with finite low < high"):
            check_constraint("s", bad)
    _, train_loss, val_loss, params, train, val = _small_problem()
    result = tune(train_loss, val_loss, params, {"l2": 0.01}, train, val, constraints={"l2": [0.0, 0.1]},
                  options=LoopOptions(outer_steps=2, inner_steps=2))
    assert 0 < float(result.hparams["l2"]) < 0.1


def test_an_interval_whose_width_overflows_is_refused_as_the_constraint_not_the_start() -> None:
    """(-1e308, 1e308): both bounds finite, their difference inf; before, a start of 1.0 was refused
    as "must start strictly inside it" (its position (value - low) / inf was 0), which it is."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    with pytest.raises(ValueError, match=r"'l2' must be .* and a finite high - low, got \(-1e\+308, 1e\+308\)"):
        tune(train_loss, val_loss, params, {"l2": 1.0}, train, val, constraints={"l2": (-1e308, 1e308)},
             options=LoopOptions(outer_steps=2, inner_steps=2))


def test_a_data_loader_given_to_hypergradient_is_refused_with_the_fix() -> None:
    """Before: the loss met the DataLoader itself ("too many values to unpack")."""
    from torch.utils.data import DataLoader, TensorDataset

    _, train_loss, val_loss, params, train, val = _small_problem()
    loader = DataLoader(TensorDataset(*train), batch_size=8)
    for given, name in [((loader, val), "train_batch"), ((train, iter([val])), "val_batch")]:
        with pytest.raises(TypeError, match=f"hypergradient takes {name} as one batch, got a .*itertools.count"):
            hypergradient(train_loss, val_loss, params, {"l2": 1e-2}, *given)


def test_numpy_integers_are_taken_as_counts_of_iterations() -> None:
    # a count read from a NumPy array or a study's Int was refused: "must be an integer >= 1, got np.int64(5)"
    assert ImplicitOptions(iters=np.int64(5)).iters == 5


@pytest.mark.parametrize("which", ["train", "val"])
def test_a_loss_of_one_value_but_not_0_d_is_refused_with_the_reshape(which) -> None:
    """A loss of shape (1,) or (1, 1) (``loss.view(1)``, a mean over rows of one column) passed the
    scalar check, one value, and every entry point then failed in torch.func with "Expected
    f(*args) to return a scalar Tensor, got tensor with 1 dims" (a RuntimeError traceback)."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    if which == "train":
        train_loss = (lambda tl: lambda p, h, b: tl(p, h, b).reshape(1, 1))(train_loss)
    else:
        val_loss = (lambda vl: lambda p, b: vl(p, b).reshape(1))(val_loss)
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    for call in _each_entry_point(train_loss, val_loss, params, l2, train, val):
        with pytest.raises(ValueError, match=r"must return a scalar tensor, got Tensor of shape \(1(, 1)?,?\); "
                                             r"return loss.reshape\(\(\)\) for its one value"):
            call()


def test_a_hypergradient_that_overflows_is_refused_not_returned_as_nan() -> None:
    """An L2 weight of 1e30 with float32 weights: both losses are finite, and ``hypergradient`` (CG) and
    ``unrolled_hypergradient`` (two steps) returned ``{'l2': nan}`` without a word; ``check=False`` still
    returns it as it is (``tune`` passes it and names the outer step itself)."""
    from tunesmith.train.unrolled import rules_of, unrolled_hypergradient

    _, train_loss, val_loss, params, train, val = _small_problem()
    params = {k: v.float() for k, v in params.items()}
    train, val = (train[0].float(), train[1]), (val[0].float(), val[1])
    w = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    rules = rules_of(torch.optim.SGD(list(w.values()), lr=0.1), w)
    says = r"the hypergradient of \['l2'\] is not finite .* overflowed in torch.float32.*check=False returns it as it is"
    with pytest.raises(FloatingPointError, match=says):
        hypergradient(train_loss, val_loss, params, {"l2": 1e30}, train, val)
    with pytest.raises(FloatingPointError, match=says):
        unrolled_hypergradient(train_loss, val_loss, params, {"l2": 1e30}, [train] * 2, val, rules=rules)
    unchecked = hypergradient(train_loss, val_loss, params, {"l2": 1e30}, train, val, check=False)
    assert not torch.isfinite(unchecked["l2"]).all()


@pytest.mark.parametrize("start", [ts.Float(1e-4, 1e-1, log=True), ts.Categorical([1e-3, 1e-2]), ts.Int(1, 4), "relu",
                                   [1e-3, "x"]], ids=["ts.Float", "ts.Categorical", "ts.Int", "text", "a list of text"])
def test_a_search_space_parameter_or_a_choice_is_refused_with_the_fix(start) -> None:
    """A search-space parameter given as the start failed with torch's "must be real number, not
    Float"; a categorical choice as text with "new(): invalid data type 'str'" in ``hypergradient``."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    says = ("is a search-space parameter, .*: gradient-based tuning moves a start value" if not isinstance(start, (str, list))
            else "must start at a number or a tensor")
    study = ts.Study(hyper_space({"l2": 0.1}), direction="minimize")
    for call in [*_each_entry_point(train_loss, val_loss, params, {"l2": start}, train, val),
                 lambda: hyper_space({"l2": start}),  # hypertune: "Could not infer dtype of Float"
                 lambda: hypertune(study, train_loss, val_loss, params, {"l2": start}, train, val)]:
        with pytest.raises(TypeError, match=f"hyperparameter 'l2' {says}.*a categorical or integer choice has no "
                                            "gradient: search it with a sampler"):
            call()


def test_an_empty_batch_at_a_later_step_is_named() -> None:
    """A batch function that returns an empty batch after the first steps: the validation one gave
    an outer step whose loss was nan and a hyperparameter step taken on a hypergradient of 0, without
    a word; the training one was blamed on the learning rate ("lower the inner optimizer's ...")."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    empty = tuple(t[:0] for t in val)
    opts = LoopOptions(outer_steps=3, inner_steps=2)
    with pytest.raises(ValueError, match=r"val_batch\(1\) is empty \(a tensor in it has 0 rows\)"):
        tune(train_loss, val_loss, params, l2, train, lambda k: empty if k == 1 else val, options=opts)
    with pytest.raises(ValueError, match=r"train_batches\(3\) is empty \(a tensor in it has 0 rows\)"):
        tune(train_loss, val_loss, params, l2, lambda s: empty if s == 3 else train, val, options=opts)


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_a_training_batch_a_hypergradient_is_taken_on_is_named_when_empty_or_not_finite(method: str) -> None:
    """The training batches a hypergradient is taken on (the implicit method's at the end of a phase, every
    one of an unrolled phase): an empty one was trained on without a word (the unrolled steps) or gave a
    hypergradient of 0 (the implicit method's last one); one holding NaN was blamed on the hyperparameter
    step ("a hyperparameter step would make the hyperparameters nan")."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    x_nan = train[0].clone()
    x_nan[3, 1] = math.nan
    opts = LoopOptions(method=method, outer_steps=3, inner_steps=2, unroll_steps=2)
    for s in (2, 5, 6)[: 3 if method == "implicit" else 2]:  # 6: the implicit method's last hypergradient only
        with pytest.raises(ValueError, match=rf"train_batches\({s}\) is empty \(a tensor in it has 0 rows\)"):
            tune(train_loss, val_loss, params, l2, lambda k, s=s: tuple(t[:0] for t in train) if k == s else train,
                 val, options=opts)
    with pytest.raises(FloatingPointError, match=r"hypergradient at outer step \d is not finite .*; the training batch "
                                                 r"it was taken on, train_batches\(2\), holds NaN or inf values "
                                                 r"\(in \['item 0'\]\): clean the data"):
        tune(train_loss, val_loss, params, l2, lambda k: (x_nan, train[1]) if k == 2 else train, val, options=opts)


def test_training_that_diverges_is_named_as_the_cause_not_the_hyperparameter_rate() -> None:
    """Ridge regression in float64 with SGD at too high a rate: the weights grow by 1e40 per outer step,
    the losses stay finite and the hypergradient overflows first. The error advised a lower
    hyperparameter rate, damping or constraints; it now says that the training diverges."""
    train_loss, val_loss, params, train, val = _diverging(torch.float64)
    for method in ("implicit", "unrolled"):  # unrolled: every training step of a phase is an unrolled one
        with pytest.raises(FloatingPointError, match=r"hypergradient at outer step \d is not finite .* the validation "
                                                     r"loss grew from [\d.]+e\+3\d at outer step 0 to [\d.]+e\+1\d\d: "
                                                     "the training diverges; lower the inner optimizer's learning rate"):
            tune(train_loss, val_loss, params, {"l2": 0.3}, train, val, constraints={"l2": "positive"},
                 options=LoopOptions(method=method, outer_steps=10, inner_steps=20, unroll_steps=20,
                                     inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=5.0)))


def test_a_negative_validation_loss_is_not_taken_for_training_that_diverges() -> None:
    """A validation loss below 0 (an offset of -100) and a Neumann series whose fixed ``alpha`` stops
    converging as the L2 weight grows: the hypergradient turns inf at outer step 2 with the loss steady
    near -67. Any later loss is above 1e6 times a negative one, so the error blamed diverging training."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g)
    y = x @ torch.randn(4, generator=g)

    def train_loss(p, h, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2) + h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):  # prefers small weights: the L2 weight grows
        return torch.mean((b[0] @ p["w"] + b[1]) ** 2) - 100

    top = float(torch.linalg.eigvalsh(2 * x.T @ x / 30).max()) + 2 * 0.1
    options = LoopOptions(outer_steps=8, inner_steps=50, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05),
                          hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5),
                          implicit=ImplicitOptions(method="neumann", alpha=1.9 / top, iters=2000))
    with pytest.raises(FloatingPointError, match=r"outer step 2 is not finite \(validation loss there: -6\d\.\d+\); "
                                                 "a hyperparameter step would make") as err:
        tune(train_loss, val_loss, {"w": torch.zeros(4)}, {"l2": 0.1}, (x, y), (x, y),
             constraints={"l2": "positive"}, options=options)
    assert "diverges" not in str(err.value).split(";")[1]


def test_a_weight_only_the_validation_loss_uses_is_refused_by_the_implicit_method() -> None:
    """A weight the training loss does not use (an offset of the validation loss alone) makes the Hessian
    singular: CG's solve turned nan and the error blamed an overflow, advising float64 to float64 weights.
    The unrolled method, for which such a weight just stays fixed, still takes it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randn(30, generator=g, dtype=torch.float64)

    def train_loss(p, h, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2) + h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):
        return torch.mean((b[0] @ p["w"] + p["c"] - b[1]) ** 2)

    params = {"w": torch.zeros(4, dtype=torch.float64), "c": torch.ones((), dtype=torch.float64)}
    *implicit, unrolled, tune_implicit, tune_unrolled = _each_entry_point(train_loss, val_loss, params, {"l2": 0.1},
                                                                          (x, y), (x, y))
    for call in [*implicit, tune_implicit]:
        with pytest.raises(ValueError, match=r"val_loss\(params, batch\) uses the weights \['c'\], which train_loss"
                                             r".* does not: .*Leave them out of params"):
            call()
    assert math.isfinite(float(unrolled()[0]["l2"]))
    assert math.isfinite(tune_unrolled().steps[-1].hypergrad_norm)


def test_a_half_precision_start_next_to_float32_weights_gets_a_float32_hypergradient() -> None:
    """A float16 start with float32 weights: the hypergradient was computed and returned in float16, so
    one above 65504 was inf (refused as an overflow, 'compute in float64') and the rest rounded to 3
    digits. It is now that of the same value in float32 (the start's own rounding kept)."""
    from tunesmith.train.unrolled import rules_of, unrolled_hypergradient

    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g)
    y = 3000 * torch.randn(30, generator=g)

    def train_loss(p, h, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2) + h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):
        return torch.mean((b[0] @ p["w"] - 1.3 * b[1]) ** 2)

    w = {"w": torch.linalg.lstsq(x, y).solution}
    rules = rules_of(torch.optim.SGD([w["w"]], lr=0.01), w)
    for half in (torch.float16, torch.bfloat16):
        start = torch.tensor(0.1, dtype=half)
        as_float32 = {"l2": start.float()}
        got = hypergradient(train_loss, val_loss, w, {"l2": start}, (x, y), (x, y))["l2"]
        assert got.dtype == torch.float32 and float(got) > 65504
        assert torch.equal(got, hypergradient(train_loss, val_loss, w, as_float32, (x, y), (x, y))["l2"])
        unrolled = unrolled_hypergradient(train_loss, val_loss, w, {"l2": start}, [(x, y)] * 3, (x, y), rules=rules)
        want = unrolled_hypergradient(train_loss, val_loss, w, as_float32, [(x, y)] * 3, (x, y), rules=rules)
        assert unrolled[0]["l2"].dtype == torch.float32 and torch.equal(unrolled[0]["l2"], want[0]["l2"])


def test_inside_no_grad_every_entry_point_works_and_inside_inference_mode_it_is_refused() -> None:
    """Called inside ``torch.no_grad()`` (an evaluation block), every entry point refused the problem:
    "train_loss ... depends neither on the weights nor on the hyperparameters (a .detach(), .item() ...?)"."""
    _, train_loss, val_loss, params, train, val = _small_problem()
    l2 = {"l2": torch.tensor(1e-2, dtype=torch.float64)}
    calls = _each_entry_point(train_loss, val_loss, params, l2, train, val)
    outside = [call() for call in calls]
    with torch.no_grad():
        inside = [call() for call in calls]
    for a, b in zip(outside, inside, strict=True):
        got, want = (a.hparams, b.hparams) if hasattr(a, "hparams") else (a, b) if isinstance(a, dict) else (a[0], b[0])
        assert torch.equal(got["l2"], want["l2"])
    with torch.inference_mode():
        for call in calls:
            with pytest.raises(RuntimeError, match=r"called inside torch.inference_mode\(\), where autograd records "
                                                   "nothing.*call it outside that block"):
                call()
