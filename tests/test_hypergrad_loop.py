"""The outer loop's best step and hyperparameter schedule, and the Hessian-vector product."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from tunesmith.train.hyperloop import LoopOptions, to_raw, tune
from tunesmith.train.hyperlosses import classifier_losses
from tunesmith.train.implicit import ImplicitOptions, hvp_fn


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(80, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.8 * torch.randn(80, generator=g, dtype=torch.float64) > 0).long()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    return classifier_losses(model, l2="tensor", l2_init=1e-4, label_smoothing=0.05), (x[:40], y[:40]), (x[40:], y[40:])


def _tune(problem, train, val, **options):
    opts = LoopOptions(outer_steps=12, inner_steps=20, inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5), **options)
    seen = []
    result = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=opts,
                  callback=lambda step, params: seen.append(float(problem.val_loss(params, val))))
    return result, seen


def test_the_best_step_and_its_weights_are_kept() -> None:
    problem, train, val = _problem()
    result, seen = _tune(problem, train, val, hyper_schedule=lambda k: 0.0)  # fixed hyperparameters: it overfits
    losses = [s.val_loss for s in result.steps]
    assert seen == pytest.approx(losses)  # the callback sees the weights each loss was measured at
    assert result.best == losses.index(min(losses))
    assert result.best < len(losses) - 1  # not the last step: the loop must have kept a copy
    assert result.best_params is not None
    assert float(problem.val_loss(result.best_params, val)) == pytest.approx(min(losses))


def test_the_hyper_schedule_scales_the_hyperparameter_steps() -> None:
    problem, train, val = _problem()
    frozen, _ = _tune(problem, train, val, hyper_schedule=lambda k: 0.0)
    moved, _ = _tune(problem, train, val, hyper_schedule=lambda k: 1.0 / (1 + k))
    for name, start in problem.hparams.items():
        assert torch.allclose(frozen.hparams[name], start)
        assert not torch.allclose(moved.hparams[name], start)


def _raw_moves(problem, result) -> list[float]:
    """The largest move of any raw hyperparameter in each hyperparameter step (log / logit scale)."""
    raw = [torch.cat([to_raw(v, problem.constraints[k]).reshape(-1) for k, v in s.hparams.items()])
           for s in result.steps]
    return [float((b - a).abs().max()) for a, b in zip(raw, raw[1:], strict=False)]


def test_max_hyper_step_limits_each_hyperparameter_step() -> None:
    problem, train, val = _problem()
    free, _ = _tune(problem, train, val)  # Adam at 0.5: its first steps move the raw values by about 0.5
    limited, _ = _tune(problem, train, val, max_hyper_step=0.1)
    assert max(_raw_moves(problem, free)) > 0.3
    moves = _raw_moves(problem, limited)
    assert max(moves) <= 0.1 + 1e-9
    assert min(moves) > 0.05  # limited, not frozen
    with pytest.raises(ValueError, match="max_hyper_step"):
        LoopOptions(max_hyper_step=0.0)


def test_hessian_vector_products_equal_the_full_hessian() -> None:
    problem, train, _ = _problem()
    names = list(problem.params)
    sizes = [problem.params[n].numel() for n in names]

    def tree(v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.reshape(problem.params[n].shape) for n, t in zip(names, v.split(sizes), strict=True)}

    flat = torch.cat([problem.params[n].reshape(-1) for n in names])
    hessian = torch.autograd.functional.hessian(lambda v: problem.train_loss(tree(v), problem.hparams, train), flat)
    hvp = hvp_fn(problem.train_loss, problem.params, problem.hparams, train, damping=0.1)
    for seed in (0, 1):  # the same linearization serves several products
        x = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        got = torch.cat([hvp(tree(x))[n].reshape(-1) for n in names])
        assert torch.allclose(got, hessian @ x + 0.1 * x, atol=1e-10)


def _small_val_problem():
    """Many hyperparameters (one L2 weight per first-layer weight) and 8 validation rows: the
    hypergradient steps fit those 8 rows."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(208, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] - x[:, 1] + 0.8 * torch.randn(208, generator=g, dtype=torch.float64) > 0).long()
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    problem = classifier_losses(model, l2="tensor", l2_init=1e-4, label_smoothing=0.05)
    return problem, (x[:40], y[:40]), (x[40:48], y[40:48]), (x[48:], y[48:])


HELD_OUT = LoopOptions(outer_steps=10, inner_steps=10, inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5))


def _tune_held_out(opts: LoopOptions = HELD_OUT):
    problem, train, val, held = _small_val_problem()
    return tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                constraints=problem.constraints, options=opts, select_batch=held)


def test_a_held_out_batch_chooses_the_best_step() -> None:
    problem, train, val, held = _small_val_problem()
    opts = HELD_OUT
    result = _tune_held_out()
    held_losses = [s.select_loss for s in result.steps]
    assert all(isinstance(v, float) for v in held_losses)
    assert [s.score for s in result.steps] == held_losses
    assert result.best == held_losses.index(min(held_losses))  # type: ignore[type-var]
    val_losses = [s.val_loss for s in result.steps]
    assert result.best != val_losses.index(min(val_losses))  # the fitted rows would have chosen another step
    assert result.best_params is not None
    assert float(problem.val_loss(result.best_params, held)) == pytest.approx(min(held_losses))  # type: ignore[type-var]
    plain = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                 constraints=problem.constraints, options=opts)
    assert [s.val_loss for s in plain.steps] == pytest.approx(val_losses)  # holding out changes no step
    assert all(s.select_loss is None for s in plain.steps) and plain.best == val_losses.index(min(val_losses))


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_a_validation_minibatch_per_hyperparameter_step(method: str) -> None:
    """``val_batch=fn(k)``: step k's hypergradient and validation loss use batch k; a function
    that returns the whole batch every time is the plain loop."""
    problem, train, val = _problem()
    halves = [(val[0][i::2], val[1][i::2]) for i in range(2)]
    asked: list[int] = []

    def val_at(k: int):
        asked.append(k)
        return halves[k % 2]

    opts = LoopOptions(outer_steps=6, inner_steps=5, method=method, unroll_steps=1,
                       inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.5))
    seen: list[float] = []
    result = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val_at,
                  constraints=problem.constraints, options=opts,
                  callback=lambda step, params: seen.append(float(problem.val_loss(params, halves[step.step % 2]))))
    assert asked == list(range(6))
    assert [s.val_loss for s in result.steps] == pytest.approx(seen)
    fixed = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                 constraints=problem.constraints, options=opts)
    same = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, lambda _k: val,
                constraints=problem.constraints, options=opts)
    assert [s.val_loss for s in same.steps] == [s.val_loss for s in fixed.steps]
    assert not torch.allclose(result.hparams["label_smoothing"], fixed.hparams["label_smoothing"])


def test_a_data_loader_or_an_iterator_is_refused_with_the_fix() -> None:
    """Before: taken as one batch, and the loss failed with 'too many values to unpack'."""
    from torch.utils.data import DataLoader, TensorDataset

    problem, train, val = _problem()
    loader = DataLoader(TensorDataset(*train), batch_size=8)
    for given, where in [((loader, val), "train_batches"), ((train, iter([val])), "val_batch")]:
        with pytest.raises(TypeError, match=f"tune takes {where} as one batch or a function step -> batch"):
            tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, *given,
                 constraints=problem.constraints, options=LoopOptions(outer_steps=1, inner_steps=1))
    it = (b for _ in itertools.count() for b in loader)  # the fix the message gives
    result = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, lambda _s: tuple(next(it)),
                  val, constraints=problem.constraints, options=LoopOptions(outer_steps=2, inner_steps=3))
    assert len(result.steps) == 2


def test_an_empty_held_out_batch_is_refused() -> None:
    """Before: its loss was nan at every step, so the loop ran to the end and returned best=None."""
    problem, train, val, held = _small_val_problem()
    with pytest.raises(ValueError, match="select_batch is empty"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
             constraints=problem.constraints, options=LoopOptions(outer_steps=2, inner_steps=2),
             select_batch=tuple(t[:0] for t in held))


def test_lbfgs_as_the_hyperparameter_optimizer_is_refused_before_training() -> None:
    """Before: the first hyperparameter step failed, after the warm start, inside torch's LBFGS
    ("step() missing 1 required positional argument: 'closure'")."""
    problem, train, val = _problem()
    with pytest.raises(ValueError, match="LoopOptions.hyper_optimizer: LBFGS re-evaluates its objective"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
             constraints=problem.constraints,
             options=LoopOptions(outer_steps=1, inner_steps=1, hyper_optimizer=lambda ps: torch.optim.LBFGS(ps)))


def test_a_nan_in_a_later_batch_is_named_not_blamed_on_the_learning_rate() -> None:
    """Before: "lower the inner optimizer's learning rate or constrain the hyperparameters", for
    a batch whose inputs held a NaN (the check at the start sees only step 0's batch)."""
    problem, train, val = _problem()
    dirty = (train[0].clone(), train[1])
    dirty[0][2, 1] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step 3; that step's batch holds NaN or inf values \(in \['item 0'\]\)"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams,
             lambda s: dirty if s == 3 else train, val, constraints=problem.constraints,
             options=LoopOptions(outer_steps=2, inner_steps=4))


def test_patience_stops_the_outer_loop_after_steps_without_a_new_best() -> None:
    """Before: no way to stop: the loop ran every outer step after the held-out loss turned up."""
    full = _tune_held_out()
    scores = [s.score for s in full.steps]
    patience = 2
    stop = next(k for k in range(len(scores))
                if k - min(range(k + 1), key=lambda i: (scores[i], i)) >= patience)  # first step `patience` past the best
    early = _tune_held_out(dataclasses.replace(HELD_OUT, patience=patience))
    assert stop < len(scores) - 1 and [s.score for s in early.steps] == scores[:stop + 1]
    assert early.best == full.best and early.best == stop - patience
    with pytest.raises(ValueError, match="LoopOptions.patience must be an integer >= 1 or None, got 0"):
        LoopOptions(patience=0)


def test_a_function_as_select_batch_is_refused_before_training() -> None:
    """Before: after the first inner phase, "cannot unpack non-iterable function object"."""
    problem, train, val, held = _small_val_problem()
    with pytest.raises(TypeError, match="select_batch as one fixed batch .* got a function"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
             constraints=problem.constraints, options=HELD_OUT, select_batch=lambda _k: held)


def test_a_batch_function_that_runs_out_says_to_cycle_the_loader() -> None:
    """Before: a bare StopIteration from tune when iter(loader) ended after one pass."""
    from torch.utils.data import DataLoader, TensorDataset

    problem, train, val = _problem()
    it = iter(DataLoader(TensorDataset(*train), batch_size=20))  # 2 batches, then StopIteration
    with pytest.raises(ValueError, match=r"train_batches\(2\) ran out of batches \(StopIteration\).*itertools.count"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, lambda _s: tuple(next(it)), val,
             constraints=problem.constraints, options=LoopOptions(outer_steps=2, inner_steps=3))


def _breast_cancer(dtype: torch.dtype):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=dtype)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).to(dtype)
    return classifier_losses(model, l2="tensor"), (x[:300], torch.tensor(y[:300])), (x[300:450], torch.tensor(y[300:450]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_hyperparameters_take_small_steps_and_stay_positive(dtype: torch.dtype) -> None:
    # the raw hyperparameters were float16/bfloat16 tensors: Adam's eps and its second moment rounded
    # to 0 in float16 (an L2 weight stepped to exp(-inf) = 0), a step of 0.01 rounded away in bfloat16
    problem, train, val = _breast_cancer(dtype)
    result = tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints,
                  options=LoopOptions(outer_steps=6, inner_steps=5, warm_start_steps=5,
                                      implicit=ImplicitOptions(iters=5, damping=1e-3),
                                      inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1),
                                      hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.01)))
    for name, start in problem.hparams.items():
        trajectory = [float(s.hparams[name]) for s in result.steps]
        assert len(set(trajectory)) > 1, (name, trajectory)  # it moves
        # by Adam's steps of about 0.01 on the log scale, no more (5 of them, and the half-precision rounding)
        assert all(abs(math.log(v / float(start))) < 0.06 for v in trajectory), (name, trajectory)
        assert result.hparams[name].dtype == dtype


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_float16_adam_with_its_default_eps_is_named_as_the_cause_of_a_nan(method: str) -> None:
    # implicit: the nan appears in a training step; unrolled with every step unrolled: in the hypergradient
    problem, train, val = _breast_cancer(torch.float16)
    with pytest.raises(FloatingPointError, match=r"float16, where the inner optimizer's eps \(1e-08\) rounds to 0"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
             constraints=problem.constraints,
             options=LoopOptions(outer_steps=1, inner_steps=5, method=method, unroll_steps=5))


def test_an_inf_in_a_later_validation_batch_is_named_not_blamed_on_the_rates() -> None:
    """Before: "Lower the hyperparameter optimizer's rate ... add damping" for a validation
    minibatch whose inputs held an inf (the check at the start sees only step 0's)."""
    problem, train, val = _problem()
    dirty = (val[0].clone(), val[1])
    dirty[0][0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"outer step 1 is not finite \(validation loss there: [^)]*\); "
                                                 r"that step's validation batch holds NaN or inf values \(in \['item 0'\]\)"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train,
             lambda k: dirty if k == 1 else val, constraints=problem.constraints,
             options=LoopOptions(outer_steps=2, inner_steps=4))


def test_a_nan_in_the_held_out_batch_is_refused_before_training() -> None:
    """Before: every step's held-out loss was nan, so no step was the best (``result.best`` None)
    and hypertune recorded every step as a failed trial, without a word on the data."""
    problem, train, val = _problem()
    held = (val[0].clone(), val[1])
    held[0][3, 2] = float("nan")
    seen = []
    with pytest.raises(ValueError, match=r"select_batch holds NaN or inf values \(in \['item 0'\]\): clean the data"):
        tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
             constraints=problem.constraints, select_batch=held, callback=lambda step, _p: seen.append(step),
             options=LoopOptions(outer_steps=2, inner_steps=4))
    assert seen == []


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_hyperparameter_driven_to_its_bound_stays_inside_and_restarts(dtype: torch.dtype) -> None:
    """Before: the sigmoid of a large raw value rounded to 1 (bfloat16 already at 0.4995 of 0.5), so the
    recorded value sat on the bound of its open interval and tune refused to start from it ("must start
    strictly inside it"), the restart from a recorded trial that docs/hypergradients.md shows."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    def val_loss(p, _batch):
        return -p["w"].sum()  # always wants a larger s: the hypergradient drives it to its bound

    params, start, cons = {"w": torch.zeros(3, dtype=dtype)}, {"s": torch.tensor(0.25, dtype=dtype)}, {"s": (0.0, 0.5)}
    opts = LoopOptions(outer_steps=30, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.25),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=1.0))
    result = tune(train_loss, val_loss, params, start, (), (), constraints=cons, options=opts)
    values = [float(s.hparams["s"]) for s in result.steps]
    assert values[-1] > 0.49 and all(0 < v < 0.5 for v in values), values
    again = tune(train_loss, val_loss, params, result.hparams, (), (), constraints=cons,
                 options=dataclasses.replace(opts, outer_steps=1))
    assert float(again.steps[0].hparams["s"]) < 0.5


@pytest.mark.parametrize("sign", [-1, 1], ids=["to the upper bound", "to the lower bound"])
def test_a_float32_hyperparameter_next_to_a_bound_float32_cannot_hold_restarts(sign: int) -> None:
    """Before: 0.2 and 0.7 are no float32 numbers; driven there, the value was recorded as float32's
    nearest inside (0.69999999, 0.20000000298), which the start check, subtracting the bound in
    float32, took for the bound itself: tune refused to restart from it."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    def val_loss(p, _batch):
        return sign * p["w"].sum()

    params, cons = {"w": torch.zeros(3)}, {"s": (0.2, 0.7)}
    opts = LoopOptions(outer_steps=30, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.25),
                       hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=10.0))
    result = tune(train_loss, val_loss, params, {"s": 0.45}, (), (), constraints=cons, options=opts)
    end = float(result.hparams["s"])
    assert end == float(torch.tensor(0.7 if sign < 0 else 0.2)), end  # float32's nearest to the bound
    again = tune(train_loss, val_loss, params, result.hparams, (), (), constraints=cons,
                 options=dataclasses.replace(opts, outer_steps=1))
    assert float(again.steps[0].hparams["s"]) == end  # started where it ended: not moved by the start


@pytest.mark.parametrize("bound", [0.2, 0.7])
def test_a_start_on_a_bound_float32_cannot_hold_is_still_refused(bound: float) -> None:
    """Before: a start of exactly 0.7 on (0.2, 0.7) with float32 weights was taken silently (float32's
    0.69999999, measured in float64, is inside) and tuned from the bound itself."""
    with pytest.raises(ValueError, match=rf"constrained to \(0.2, 0.7\) and must start strictly inside it, got {bound}$"):
        tune(lambda p, h, _b: ((p["w"] - h["s"]) ** 2).sum(), lambda p, _b: p["w"].sum(), {"w": torch.zeros(3)},
             {"s": bound}, (), (), constraints={"s": (0.2, 0.7)}, options=LoopOptions(outer_steps=1, inner_steps=1))


def test_a_positive_hyperparameter_driven_towards_0_stays_positive_in_float16() -> None:
    """Before: exp of the raw value fell below float16's smallest number and was recorded as 0, which
    tune refused as a start ("constrained 'positive' and must start > 0")."""
    def train_loss(p, h, _batch):
        return ((p["w"] - 1) ** 2).sum() + h["l2"] * (p["w"] ** 2).sum()

    def val_loss(p, _batch):
        return -p["w"].sum()  # always wants a smaller L2 weight (w = 1 / (1 + l2))

    params, start, cons = {"w": torch.zeros(3, dtype=torch.float16)}, {"l2": 1e-3}, {"l2": "positive"}
    opts = LoopOptions(outer_steps=3, inner_steps=10, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.25),
                       hyper_optimizer=lambda ps: torch.optim.SGD(ps, lr=1e5))  # a step far down the log scale
    result = tune(train_loss, val_loss, params, start, (), (), constraints=cons, options=opts)
    values = [float(s.hparams["l2"]) for s in result.steps]
    assert values[-1] < 1e-7 and all(v > 0 for v in values), values
    again = tune(train_loss, val_loss, params, result.hparams, (), (), constraints=cons,
                 options=dataclasses.replace(opts, outer_steps=1))
    assert float(again.steps[0].hparams["l2"]) > 0


@pytest.mark.parametrize("start", [np.True_, np.array([True, False]), [True, False]], ids=["np.bool_", "array", "list"])
def test_a_numpy_or_listed_yes_no_start_is_refused_as_a_bool(start) -> None:
    """Before: only True and a bool tensor were refused; NumPy's bools (a value read from an array)
    and a list of bools were tuned as 1.0 and 0.0."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    with pytest.raises(TypeError, match="hyperparameter 's' is a bool, .*: a yes/no choice has no gradient"):
        tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2)}, {"s": start}, (), (),
             options=LoopOptions(outer_steps=1, inner_steps=1))


@pytest.mark.parametrize(("start", "constraint", "shown"), [(1e-8, "positive", "0.0"), (0.4999, (0.0, 0.5), "0.5")])
def test_a_start_the_weights_dtype_rounds_onto_a_bound_is_refused_with_the_value_given(start, constraint, shown) -> None:
    """Before: "must start > 0, got 0.0" for a start of 1e-8 (float16's 0): the message named the
    rounded value, not the one given, nor the rounding."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    with pytest.raises(ValueError, match=rf"hyperparameter 's' starts at {start}, which is {shown} in torch.float16 "
                                         r"\(the weights' dtype\), on a bound of its constraint"):
        tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2, dtype=torch.float16)}, {"s": start}, (), (),
             constraints={"s": constraint}, options=LoopOptions(outer_steps=1, inner_steps=1))
    with pytest.raises(ValueError, match=r"must start > 0, got -1.0"):  # off its constraint as given: as before
        tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2, dtype=torch.float16)}, {"s": -1.0}, (), (),
             constraints={"s": "positive"}, options=LoopOptions(outer_steps=1, inner_steps=1))


def test_a_start_the_weights_dtype_rounds_past_a_bound_is_said_to_be_past_it() -> None:
    """Before: "on a bound of its constraint" also for 0.69999999 of (0.2, 0.7), float16's 0.7001953125."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    with pytest.raises(ValueError, match=r"starts at 0.69999999, which is 0.7001953125 in torch.float16 \(the weights' dtype\), "
                                         r"past a bound of its constraint \(0.2, 0.7\): start it further inside"):
        tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2, dtype=torch.float16)}, {"s": 0.69999999}, (),
             (), constraints={"s": (0.2, 0.7)}, options=LoopOptions(outer_steps=1, inner_steps=1))


def test_a_constraint_with_no_value_of_the_weights_dtype_inside_is_refused_as_such() -> None:
    """Before: (0, 2e-300) with float32 weights said the start 1e-300 was "not finite" (it is 0 there,
    and so is every value of the interval); the constraint is named as holding no float32 value."""
    def train_loss(p, h, _batch):
        return ((p["w"] - h["s"]) ** 2).sum()

    with pytest.raises(ValueError, match=r"constraint \(0.0, 2e-300\) of hyperparameter 's' holds no value of "
                                         r"torch.float32 \(the weights' dtype\) strictly inside it: widen it"):
        tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2)}, {"s": 1e-300}, (), (),
             constraints={"s": (0, 2e-300)}, options=LoopOptions(outer_steps=1, inner_steps=1))
    result = tune(train_loss, lambda p, _b: p["w"].sum(), {"w": torch.zeros(2, dtype=torch.float64)}, {"s": 1e-300},
                  [()], (), constraints={"s": (0, 2e-300)}, options=LoopOptions(outer_steps=1, inner_steps=1))
    assert 0 < float(result.hparams["s"]) < 2e-300  # in float64 the interval holds values: tuned as before
