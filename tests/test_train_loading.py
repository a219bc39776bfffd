"""The trainer's data loading: shuffle, drop_last (auto for batch norm), workers, pinned memory."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _train_util import Net, blobs, mlp, snapshot, split  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.train import TrainConfig, Trainer, objective  # noqa: E402
from tunesmith.train.data import Loader, index_batches, resolve_drop_last  # noqa: E402


class Pairs(Dataset):
    """A map-style Dataset over two tensors (what a user's Dataset returns)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def bn_net() -> Net:
    torch.manual_seed(0)
    return Net()


def test_a_batch_norm_model_trains_when_the_last_batch_has_one_row() -> None:
    x, y = blobs(97)  # 97 = 3 * 32 + 1
    trainer = Trainer(bn_net(), TrainConfig(epochs=2, batch_size=32, device="cpu"))
    history = trainer.fit((x, y), (x[:20], y[:20]))
    assert len(history.records) == 2 and trainer.steps_per_epoch == 3  # the single row is left out
    # a model without batch norm keeps every row: auto drops nothing
    plain = Trainer(mlp(), TrainConfig(epochs=1, batch_size=32, device="cpu"))
    plain.fit((x, y))
    assert plain.steps_per_epoch == 4


def test_a_batch_norm_model_in_a_study_completes_every_batch_size(tmp_path: Path) -> None:
    x, y = blobs(161)  # 161 % 16 == 161 % 32 == 1
    data = ((x[:129], y[:129]), (x[129:], y[129:]))  # 129 % 16 == 129 % 32 == 129 % 64 == 1
    study = ts.Study({"batch_size": ts.Categorical([16, 32, 64])}, sampler="grid", seed=0)
    obj = objective(lambda p: Net(), data, base=TrainConfig(epochs=2, device="cpu"), checkpoint_root=tmp_path)
    study.optimize(obj, n_trials=3)
    assert [str(t.state) for t in study.trials] == ["complete"] * 3, [t.error for t in study.trials]


def test_drop_last_true_drops_every_short_batch_and_false_keeps_it() -> None:
    x, y = blobs(100)
    drop = Trainer(mlp(), TrainConfig(epochs=1, batch_size=32, drop_last=True, device="cpu"))
    drop.fit((x, y))
    assert drop.steps_per_epoch == 3
    keep = Trainer(mlp(), TrainConfig(epochs=1, batch_size=32, drop_last=False, device="cpu"))
    keep.fit((x, y))
    assert keep.steps_per_epoch == 4
    assert [len(b) for b in index_batches(100, 32, 0, 0, drop_last=True)] == [32, 32, 32]


def test_drop_last_errors_name_the_problem_and_the_fix() -> None:
    with pytest.raises(ValueError, match="last batch of 1 sample.*drop_last=None"):
        resolve_drop_last(False, n=33, batch_size=32, model=bn_net())
    with pytest.raises(ValueError, match="fewer than batch_size=32"):
        resolve_drop_last(True, n=20, batch_size=32, model=mlp())
    with pytest.raises(ValueError, match="1 sample, .*more samples"):
        resolve_drop_last(None, n=1, batch_size=32, model=bn_net())
    assert resolve_drop_last(None, n=20, batch_size=32, model=bn_net()) is False  # one short batch of 20 is fine
    # before: torch's "Expected more than 1 value per channel when training" at the first step
    with pytest.raises(ValueError, match=r"batch_size=1 gives batches of one sample.*batch_size >= 2"):
        Trainer(bn_net(), TrainConfig(epochs=1, batch_size=1, device="cpu")).fit(blobs(32))
    assert resolve_drop_last(None, n=20, batch_size=1, model=mlp()) is False  # without batch norm: fine
    for bad in ({"drop_last": "auto"}, {"shuffle": 1}, {"num_workers": -1}, {"persistent_workers": True}):
        with pytest.raises(ValueError, match=f"TrainConfig.{next(iter(bad))}"):
            TrainConfig(**bad)


class ConvBN(torch.nn.Module):
    """A convolution with BatchNorm2d over 4x4 maps: one sample gives it 16 values per channel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.head = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Linear(64, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x.view(-1, 1, 4, 4)))).flatten(1))


def test_batch_size_one_is_refused_only_where_batch_norm_gets_one_value_per_channel() -> None:
    """Before: batch_size=1 was refused for any batch norm, though torch trains a BatchNorm2d over feature
    maps on one sample; a batch norm frozen now that GradualUnfreezing thaws later is refused at once."""
    from tunesmith.train import GradualUnfreezing, freeze

    x, y = blobs(16, d=16)
    conv = ConvBN()
    before = snapshot(conv)
    Trainer(conv, TrainConfig(epochs=1, batch_size=1, device="cpu")).fit((x, y))
    assert not torch.equal(before["bn.weight"], conv.bn.weight.detach())
    net = bn_net()
    freeze(net.backbone)
    Trainer(net, TrainConfig(epochs=1, batch_size=1, device="cpu")).fit(blobs(16))  # stays frozen: trains
    net = bn_net()
    freeze(net.backbone)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"batch_size=1 gives batches of one sample.*one value per channel"):
        Trainer(net, TrainConfig(epochs=3, batch_size=1, device="cpu"),
                callbacks=[GradualUnfreezing(list(net.backbone), start=0)]).fit(blobs(16))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # refused before any step


def test_shuffle_false_reads_in_order_and_shuffle_changes_with_the_epoch() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    data = (x, torch.zeros(10, dtype=torch.long))
    in_order = [b[0].flatten().tolist() for b in Loader(data, 4, shuffle=False).epoch(3)]
    assert in_order == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader = Loader(data, 4, seed=1)
    e0, e1 = (torch.cat([b[0] for b in loader.epoch(e)]).flatten().tolist() for e in (0, 1))
    assert sorted(e0) == sorted(e1) == list(range(10)) and e0 != e1


def test_worker_processes_train_the_same_weights_as_in_process() -> None:
    x, y = blobs(90)
    weights = []
    for workers in (0, 2):
        model = mlp(seed=3)
        Trainer(model, TrainConfig(epochs=2, batch_size=16, num_workers=workers, device="cpu")).fit(
            Pairs(x, y), Pairs(x[:30], y[:30]))
        weights.append(snapshot(model))
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=0, atol=0)


def test_a_dataset_resumes_exactly_with_workers(tmp_path: Path) -> None:
    x, y = blobs(80)
    cfg = TrainConfig(epochs=3, batch_size=16, num_workers=1, checkpoint_dir=str(tmp_path), device="cpu")
    whole = mlp(seed=1)
    Trainer(whole, cfg).fit(Pairs(x, y))
    first = mlp(seed=1)
    Trainer(first, cfg.with_params({"epochs": 1, "checkpoint_dir": str(tmp_path / "a")})).fit(Pairs(x, y))
    resumed = mlp(seed=1)
    last = sorted((tmp_path / "a").glob("last-*.pt"))[-1]
    Trainer(resumed, cfg.with_params({"checkpoint_dir": str(tmp_path / "a")})).fit(Pairs(x, y), resume_from=last)
    for k, v in snapshot(whole).items():
        torch.testing.assert_close(snapshot(resumed)[k], v)


class Noisy(Pairs):
    """Pairs with a random augmentation (noise from torch's and NumPy's generators)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import numpy as np

        noise = 0.3 * torch.randn(self.x.shape[1]) + float(np.random.uniform(-0.1, 0.1))
        return self.x[i] + noise, self.y[i]


@pytest.mark.parametrize("persistent", [False, True])
def test_random_augmentations_in_workers_resume_mid_epoch_exactly(tmp_path: Path, persistent: bool) -> None:
    """Before: workers were seeded once per epoch, and a run resumed mid-epoch handed its batches to
    other workers than the run it continued, so their augmentations (and weights) differed."""
    (x, y), val = split(96)
    cfg = TrainConfig(epochs=2, batch_size=8, eval_every=4, num_workers=2, persistent_workers=persistent,
                      checkpoint_dir=str(tmp_path / "whole"), keep_last=10, device="cpu")
    whole = mlp()
    reference = Trainer(whole, cfg).fit(Noisy(x, y), val)
    mid = tmp_path / "whole" / "last-000000004.pt"  # step 4 of 9 batches an epoch: mid-epoch
    resumed = mlp(seed=5)
    history = Trainer(resumed, cfg.with_params({"checkpoint_dir": str(tmp_path / "resumed")})).fit(
        Noisy(x, y), val, resume_from=mid)
    assert [r.train_loss for r in history.records] == [r.train_loss for r in reference.records]
    for k, v in snapshot(whole).items():
        torch.testing.assert_close(snapshot(resumed)[k], v, rtol=0, atol=0)
    one = mlp()  # each batch's augmentation is its own, whichever worker reads it
    Trainer(one, cfg.with_params({"num_workers": 1, "checkpoint_dir": None})).fit(Noisy(x, y), val)
    for k, v in snapshot(whole).items():
        torch.testing.assert_close(snapshot(one)[k], v, rtol=0, atol=0)


def test_data_in_the_wrong_form_says_how_to_convert() -> None:
    """NumPy arrays, float64 tensors, a bare tensor or a DataLoader met torch's messages
    ("mat1 and mat2 must have the same dtype") or "got tuple of 2 items"."""
    import numpy as np
    import torch

    x, y = blobs(64)
    model = mlp()
    cases = [
        ((x.numpy(), y.numpy()), ValueError, r"\(numpy.ndarray, numpy.ndarray\); convert the arrays: item 0 is float32: "
                                             r"torch.as_tensor\(x, dtype=torch.float32\); item 1 is int64: torch.as_tensor\(y\) "
                                             r"for class labels \(int64\)$"),
        ((x.double(), y), ValueError, r"input 0 is torch.float64 but the model's weights are torch.float32"),
        (x, TypeError, r"got Tensor; pass the inputs with their targets"),
        (torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8), TypeError, r"loader.dataset"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit(data, None)
    with pytest.raises(ValueError, match="val: input 0 is torch.float64"):
        Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit((x, y), (x.double(), y))
    assert np.isfinite(Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit((x, y), None).records[-1].train_loss)


def test_a_list_of_samples_is_told_in_one_line_how_to_stack_it() -> None:
    """Before: a list of 48 ``(x, y)`` tuples was refused naming every item's type ("builtins.tuple" 48 times);
    now it is named as samples, with the line that stacks them, which then trains."""
    import numpy as np
    import torch

    x, y = blobs(48)
    samples = [(x[i], int(y[i])) for i in range(48)]
    with pytest.raises(ValueError, match=r"got a list of 48 samples of 2 items each; stack each position into one "
                                         r"tensor: data = tuple\(torch.stack\(\[torch.as_tensor\(s\[i\]\) for s in data\]\) "
                                         r"for i in range\(2\)\)$") as refused:
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit(samples, None)
    assert "builtins.tuple" not in str(refused.value)
    rows = [r.numpy() for r in x[:10]]  # ten arrays: their type named once, three conversions at most
    with pytest.raises(ValueError, match=r"got list of 10 items \(10 x numpy.ndarray\); convert the arrays: item 0 .*; "
                                         r"item 1 .*; and 8 more alike$"):
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit(rows, None)
    data = tuple(torch.stack([torch.as_tensor(s[i]) for s in samples]) for i in range(2))
    assert np.isfinite(Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit(data, None).records[-1].train_loss)


def test_a_list_of_samples_without_targets_is_told_it_has_none() -> None:
    """Before: a list of one-item samples ``[(x,), ...]`` was told "samples of 1 items each" and a line that
    stacks them into a tuple of one tensor, which is then refused (no target)."""
    x, _ = blobs(20)
    with pytest.raises(ValueError, match=r"got a list of 20 samples of 1 item each, inputs without targets: each "
                                         r"sample is \(x, \.\.\., y\), the target last") as refused:
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit([(row,) for row in x], None)
    assert "range(1)" not in str(refused.value)


def test_integer_feature_arrays_are_told_to_become_float32_naming_the_dtype() -> None:
    """NumPy integer features (counts, pixel values) were told the float advice meant for float inputs, and
    float regression targets torch.as_tensor(y), which keeps float64; each array now gets the advice for the
    dtype seen, and converted as told the model trains."""
    import numpy as np
    import torch

    x, y = blobs(64)
    counts, target = np.rint(x.numpy() * 10).astype(np.int32), y.numpy()
    with pytest.raises(ValueError, match=r"item 0 is int32: torch.as_tensor\(x, dtype=torch.float32\) for integer features "
                                         r"\(a model of Linear layers\), or torch.as_tensor\(x, dtype=torch.long\) for indices an nn.Embedding "
                                         r"takes \(it refuses uint8, int16\); "
                                         r"item 1 is int64: torch.as_tensor\(y\) for class labels"):
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit((counts, target), None)
    with pytest.raises(ValueError, match=r"item 1 is float64: torch.as_tensor\(y, dtype=torch.float32\) for regression targets"):
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16), loss="mse").fit((x, target.astype(np.float64)), None)
    data = (torch.as_tensor(counts, dtype=torch.float32), torch.as_tensor(target))
    assert np.isfinite(Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit(data, None).records[-1].train_loss)


def test_text_arrays_are_told_to_be_encoded_as_numbers_first() -> None:
    """A DataFrame with a text column and class names were told torch.as_tensor(x, dtype=torch.float32) and
    ".long() for class labels", which fail on text ("can't convert np.ndarray of type numpy.object_")."""
    import numpy as np
    import pandas as pd
    import torch

    x, y = blobs(64)
    frame = pd.DataFrame({"size": x[:, 0].numpy(), "color": np.where(y.numpy() == 1, "red", "blue")})
    names = np.array(["cat", "dog"])[y.numpy()]
    with pytest.raises(ValueError, match=r"item 0 is object: encode its text columns as numbers, then torch.as_tensor\(x, "
                                         r"dtype=torch.float32\); item 1 is <U3: class names: their indices, np.unique\(y, "
                                         r"return_inverse=True\)\[1\], then torch.as_tensor\(...\)$"):
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16)).fit((frame, names), None)
    with pytest.raises(TypeError, match="numpy.object_"):
        torch.as_tensor(np.asarray(frame), dtype=torch.float32)  # the advice it got before
    encoded = frame.assign(color=(frame["color"] == "red").astype(float)).to_numpy()
    data = (torch.as_tensor(encoded, dtype=torch.float32), torch.as_tensor(np.unique(names, return_inverse=True)[1]))
    assert np.isfinite(Trainer(mlp(d=2), TrainConfig(epochs=1, batch_size=16)).fit(data, None).records[-1].train_loss)


def test_uint8_index_arrays_converted_as_told_train_an_embedding() -> None:
    """Byte codes for an nn.Embedding were told torch.as_tensor(x), a uint8 tensor the Embedding refuses
    ("Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int")."""
    import numpy as np
    import torch

    codes = np.random.default_rng(0).integers(0, 256, size=(64, 3)).astype(np.uint8)
    y = blobs(64)[1]
    model = torch.nn.Sequential(torch.nn.Embedding(256, 4), torch.nn.Flatten(), torch.nn.Linear(12, 2))
    with pytest.raises(ValueError, match=r"item 0 is uint8: .* or torch.as_tensor\(x, dtype=torch.long\) for indices"):
        Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit((codes, y.numpy()), None)
    data = (torch.as_tensor(codes, dtype=torch.long), y)
    assert np.isfinite(Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit(data, None).records[-1].train_loss)


def test_empty_data_says_what_to_pass() -> None:
    """An empty validation split (a split index past the data's end) said only "val: no samples"."""
    x, y = blobs(64)
    model = mlp()
    cases = [((x, y), (x[:0], y[:0]), r"val: no samples \(its tensors have 0 rows\); pass data with rows .*, or val=None"),
             ((x[:0], y[:0]), None, r"train: no samples \(its tensors have 0 rows\); pass data with rows"),
             (Pairs(x[:0], y[:0]), None, r"train: no samples \(the Dataset's len\(\) is 0\); pass data with rows")]
    for train, val, message in cases:
        with pytest.raises(ValueError, match=message):
            Trainer(model, TrainConfig(epochs=1, batch_size=16)).fit(train, val)


def test_float32_inputs_to_a_float64_model_say_how_to_convert() -> None:
    """Before: torch's "mat1 and mat2 must have the same dtype, but got Float and Double"."""
    x, y = blobs(64)
    model = mlp().double()
    with pytest.raises(ValueError, match=r"train: input 0 is torch.float32 but the model's weights are torch.float64; "
                                         r"convert it \(x.to\(torch.float64\)"):
        Trainer(model, TrainConfig(epochs=1, batch_size=16, device="cpu")).fit((x, y), None)
    history = Trainer(model, TrainConfig(epochs=1, batch_size=16, device="cpu")).fit((x.double(), y), (x.double(), y))
    assert history.records[-1].val_loss > 0


def test_integer_inputs_to_a_float_model_say_how_to_convert() -> None:
    """Before: torch's "mat1 and mat2 must have the same dtype, but got Long and Float", which
    does not say which tensor or what to do."""
    x, y = blobs(64)
    with pytest.raises(ValueError, match=r"failed on input 0, which is torch.int64 .*convert it: x.float\(\)"):
        Trainer(mlp(), TrainConfig(epochs=1, batch_size=16, device="cpu")).fit(((x * 10).long(), y), None)
    with pytest.raises(ValueError, match="failed on input 0, which is torch.int64"):
        Trainer(mlp(), TrainConfig(device="cpu")).evaluate(((x * 10).long(), y))


@pytest.mark.parametrize(("item", "match"), [
    (lambda x, y: {"x": x, "labels": y}, r"train: the Dataset's items must be tuples .* dicts \(keys \['x', 'labels'\]\)"),
    (lambda x, y: x, r"train: the Dataset's items must be tuples .* items are Tensor; return a tuple"),
])
def test_a_dataset_of_dicts_or_bare_tensors_is_refused_before_training(item, match) -> None:
    """Before: a dict item reached the model as its keys ("linear(): argument 'input' must be Tensor,
    not str"), a bare tensor as its rows ("forward() takes 2 positional arguments but 32 were given")."""
    (x, y), val = split(64)

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, i):
            return item(x[i], y[i])

    with pytest.raises(ValueError, match=match):
        Trainer(mlp(), TrainConfig(epochs=1, device="cpu")).fit(Items(), val)


def test_batch_norm_frozen_by_freeze_trains_on_a_last_batch_of_one() -> None:
    """Before: a backbone frozen with freeze() keeps its batch norm in eval mode, which takes one sample,
    yet drop_last=False was refused and auto dropped a sample each epoch; with GradualUnfreezing, which
    thaws that batch norm later, the one-sample batch is still dropped."""
    from tunesmith.train import GradualUnfreezing, freeze

    x, y = blobs(33, 8)  # batch 32 leaves 1
    net = Net()
    freeze(net.backbone)
    kept = Trainer(net, TrainConfig(epochs=1, batch_size=32, drop_last=False, device="cpu"), head="head")
    kept.fit((x, y))
    assert kept.steps_per_epoch == 2
    assert Trainer(net, TrainConfig(epochs=1, batch_size=32, device="cpu")).train_loader((x, y)).batches == 2
    thawing = Trainer(net, TrainConfig(epochs=1, batch_size=32, device="cpu"), callbacks=[GradualUnfreezing(net.backbone)])
    assert thawing.train_loader((x, y)).batches == 1
