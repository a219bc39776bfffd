"""classifier_losses on the models people tune: batch norm, dropout, frozen layers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tunesmith.train import LoopOptions, classifier_losses, tune


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return (x[:40], y[:40]), (x[40:], y[40:])


def _tune(problem, train, val, **options):
    opts = LoopOptions(outer_steps=2, inner_steps=4, **options)
    return tune(problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                constraints=problem.constraints, options=opts)


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_a_batch_norm_model_is_tuned_and_left_as_it_was(method: str) -> None:
    """Before: torch.func refused batch norm's in-place update of its running statistics
    ("attempted to call in-place operation ... that would mutate a captured Tensor")."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    before = {k: b.clone() for k, b in model.named_buffers()}
    train, val = _data()
    result = _tune(classifier_losses(model, label_smoothing=0.1), train, val, method=method, unroll_steps=2)
    assert len(result.steps) == 2 and all(torch.isfinite(v).all() for v in result.hparams.values())
    assert all(torch.equal(b, before[k]) for k, b in model.named_buffers())
    assert model.training


def test_the_validation_loss_has_no_dropout() -> None:
    """Before: the validation loss ran with the model's dropout active, so it (and every
    hypergradient) was a random draw: two calls at the same weights differed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    problem = classifier_losses(model)
    _, val = _data()
    assert float(problem.val_loss(problem.params, val)) == float(problem.val_loss(problem.params, val))
    model.eval()
    with torch.no_grad():
        plain = float(nn.functional.cross_entropy(model(val[0]), val[1]))
    assert float(problem.val_loss(problem.params, val)) == plain
    assert not model.training  # the mode the model was in is restored


def test_frozen_layers_are_neither_trained_nor_penalized() -> None:
    """Before: every parameter went into ``params``, so tune trained the frozen layer and
    gave it an L2 weight of its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    problem = classifier_losses(model)
    assert sorted(problem.params) == ["2.bias", "2.weight"] and sorted(problem.hparams) == ["l2.2.weight"]
    train, val = _data()
    frozen = model[0].weight.clone()
    result = _tune(problem, train, val)
    assert sorted(result.params) == ["2.bias", "2.weight"] and torch.equal(model[0].weight, frozen)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        classifier_losses(model)


@pytest.mark.parametrize("l2_init", [0.0, -1e-3, float("nan"), float("inf"), True])
def test_an_l2_start_that_is_not_positive_is_refused_where_it_is_given(l2_init: float) -> None:
    """Before: accepted, and tune failed later naming the first layer's hyperparameter."""
    with pytest.raises(ValueError, match="classifier_losses: l2_init must be a finite number > 0"):
        classifier_losses(nn.Linear(3, 2), l2_init=l2_init)
    classifier_losses(nn.Linear(3, 2), l2=None, l2_init=l2_init)  # no L2 weights: nothing to start


def test_batches_of_the_wrong_dtype_or_shape_say_what_to_convert() -> None:
    """Before: torch's "mat1 and mat2 must have the same dtype", "gather(): Expected dtype
    int32/int64 for index" or "0D or 1D target tensor expected, multi-target not supported"
    (a column of labels, (n, 1), is now taken as (n,))."""
    problem = classifier_losses(nn.Linear(6, 2), label_smoothing=0.1)
    (x, y), val = _data()
    cases = [((x.double(), y), r"the inputs are torch.float64 but the weights are torch.float32"),
             ((x, y.float()), r"class indices, an integer tensor of shape \(n,\), got torch.float32 of shape \(40,\)"),
             ((x, y[:, None, None]), r"got torch.int64 of shape \(40, 1, 1\); convert them \(y.long\(\).reshape\(-1\)\)"),
             # NumPy batches (scikit-learn's datasets) were told to call y.long(), which a NumPy array lacks
             ((x, y.numpy()), r"got numpy.ndarray; convert them \(torch.as_tensor\(y\).long\(\).reshape\(-1\)\)"),
             ((x.numpy(), y.numpy()), r"the inputs are numpy.ndarray.*torch.as_tensor\(x, dtype=torch.float32\)")]
    for train, message in cases:
        with pytest.raises(ValueError, match=message):
            _tune(problem, train, val)
        with pytest.raises(ValueError, match=message):
            _tune(problem, val, train)
    column = _tune(problem, (x, y[:, None]), (val[0], val[1][:, None]))
    assert [s.val_loss for s in column.steps] == [s.val_loss for s in _tune(problem, (x, y), val).steps]


def test_a_dataset_for_a_batch_is_refused_with_what_to_pass() -> None:
    """The README's training block takes train and val as tensors or a Dataset (Trainer.fit reads both), and
    its hypertune block passes the same; a Dataset failed with "too many values to unpack (expected 2)", and
    one of two samples unpacked into them."""
    from torch.utils.data import TensorDataset

    problem = classifier_losses(nn.Linear(6, 2), label_smoothing=0.1)
    (x, y), val = _data()
    for train in [TensorDataset(x, y), TensorDataset(x[:2], y[:2])]:
        for batches in [(train, val), (val, train)]:
            with pytest.raises(TypeError, match=r"got a TensorDataset, which holds samples, not a batch; pass the "
                                                r"batch itself, e.g. \(x_train, y_train\) \(a TensorDataset's: "
                                                r"dataset.tensors\), or a function of the step"):
                _tune(problem, *batches)
    assert len(_tune(problem, TensorDataset(x, y).tensors, val).steps) == 2  # as the message says


def test_numpy_indices_for_an_embedding_are_told_to_stay_integers() -> None:
    """NumPy token indices were told torch.as_tensor(x, dtype=torch.float32), which nn.Embedding refuses;
    converted as told, the model tunes."""
    torch.manual_seed(0)
    problem = classifier_losses(nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2)))
    x = torch.randint(0, 10, (60, 3), generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 4).long()
    val = (x[40:], y[40:])
    with pytest.raises(ValueError, match=r"the inputs are numpy.ndarray, not a tensor; convert them \(torch.as_tensor\(x\)\)"):
        _tune(problem, (x[:40].numpy(), y[:40]), val)
    assert len(_tune(problem, (torch.as_tensor(x[:40].numpy()), y[:40]), val).steps) == 2


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_class_labels_of_any_integer_dtype_are_taken(dtype: torch.dtype) -> None:
    """Before: int32 labels failed with "expected target dtype to be Long or Byte", uint8 and int16
    with "gather(): Expected dtype int32/int64 for index"."""
    problem = classifier_losses(nn.Linear(6, 2), label_smoothing=0.1)
    train, val = _data()
    as_long = _tune(problem, train, val)
    other = _tune(problem, (train[0], train[1].to(dtype)), (val[0], val[1].to(dtype)))
    assert [s.val_loss for s in other.steps] == [s.val_loss for s in as_long.steps]


@pytest.mark.parametrize("head", [nn.Linear(6, 1), nn.Sequential(nn.Linear(6, 1), nn.Flatten(0))])
def test_a_single_logit_binary_model_is_refused_with_the_fix(head: nn.Module) -> None:
    """Before: torch's "index 1 is out of bounds for dimension 1 with size 1" or "Index tensor must
    have the same number of dimensions as input tensor" (with one logit the cross-entropy is 0)."""
    train, val = _data()
    with pytest.raises(ValueError, match=r"one logit per class, \(n, classes >= 2\), got shape \(40,( 1)?\); a binary"):
        _tune(classifier_losses(head), train, val)


def test_a_one_row_batch_of_a_batch_norm_model_is_refused_with_the_reason() -> None:
    """Before: torch's "Expected more than 1 value per channel when training" from the
    validation loss, of a model the user had never put in training mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    train, val = _data()
    with pytest.raises(ValueError, match="batch norm normalizes each batch with its own statistics, in the validation "
                                         "loss too, so a batch needs 2 rows or more; this one has 1"):
        _tune(classifier_losses(model), train, (val[0][:1], val[1][:1]))


@pytest.mark.parametrize(("kw", "said"), [({"l2_init": 1e-8}, "l2_init=1e-08 is 0.0"),
                                          ({"l2": None, "label_smoothing": 0.4999}, "label_smoothing=0.4999 is 0.5")])
def test_a_start_that_the_models_dtype_rounds_onto_a_bound_is_refused_by_name(kw, said) -> None:
    """Before: accepted, and tune then refused "hyperparameter 'l2.0.weight' ... must start > 0, got
    0.0", a value the user never gave."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).half()
    with pytest.raises(ValueError, match=f"classifier_losses: {said} in torch.float16, the model's dtype, on a bound"):
        classifier_losses(model, **kw)
    classifier_losses(model.float(), **kw)  # float32 holds them


def test_a_printed_result_is_a_summary_not_every_weight() -> None:
    """Before: ``print(result)`` printed the dataclass's repr, every weight tensor twice (``params``
    and ``best_params``) and each step's hyperparameters: hundreds of lines for a small MLP."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    train, val = _data()
    result = _tune(classifier_losses(model, l2="weight", label_smoothing=0.1), train, val)
    text = repr(result)
    assert len(text.splitlines()) == 1 and len(text) < 400, text
    assert text.startswith(f"TuneResult(2 outer steps; best: steps[{result.best}] (score ")
    assert "'l2.0.weight': tensor of (32, 6) in [" in text and "'label_smoothing': 0.1" in text
    assert "params: 4 tensors, 290 weights" in text
    one = dataclasses.replace(result, steps=result.steps[:1], best=0)
    assert repr(one).startswith("TuneResult(1 outer step; best: steps[0] (score "), repr(one)  # was "1 outer steps"
    assert repr(dataclasses.replace(result, steps=[], best=None)).startswith("TuneResult(0 outer steps; best: none;")
