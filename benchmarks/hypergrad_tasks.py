"""The two network tasks of benchmarks/hypergrad.md (tasks 2 and 3), as bilevel problems.

A task holds the data splits, the initial weights, the training and validation losses
(``train_loss(params, hparams, batch)``, ``val_loss(params, batch)``), the starting
hyperparameters with their constraints, the black-box search range of every (flattened)
hyperparameter, and what one full training run is (full-batch Adam for ``run_steps`` steps
from the initial weights).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import tunesmith as ts
from tunesmith.train.hyperlosses import smoothed_cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hypergrad_cost import Cost as Counter  # noqa: E402

Tree = dict[str, torch.Tensor]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclasses.dataclass
class Task:
    name: str
    splits: tuple[Any, Any, Any]  # train, val, test batches
    params: Tree
    hparams: Tree
    constraints: dict[str, Any]
    space: dict[str, ts.Float]  # flattened name -> black-box range
    make_train_loss: Callable[[Counter], Callable[[Tree, Tree, Any], torch.Tensor]]
    val_loss: Callable[[Tree, Any], torch.Tensor]
    run_steps: int
    lr: float
    inner_steps: int  # gradient methods: training steps per hyperparameter step
    unroll: int  # unrolled method: K
    cg_iters: int  # implicit method: conjugate-gradient iterations


def _penalty(p: Tree, h: Tree, dtype: torch.dtype) -> torch.Tensor:
    total = torch.zeros((), dtype=dtype)
    for k, v in h.items():
        if k == "l2_in":  # one weight per input feature: column j of the first layer
            total = total + torch.sum(v * torch.sum(p["0.weight"] ** 2, dim=0))
        elif k.startswith("l2."):
            total = total + v * torch.sum(p[k[3:]] ** 2)
    return total


def _losses(model: nn.Module, forward: Callable[[nn.Module, Tree, Any], torch.Tensor]):
    def make_train_loss(counter: Counter):
        def loss(p: Tree, h: Tree, batch: Any) -> torch.Tensor:
            counter.evals += 1
            out = forward(model, p, batch[0])
            return smoothed_cross_entropy(out, batch[1], h["label_smoothing"]) + _penalty(p, h, out.dtype)
        return loss

    def val_loss(p: Tree, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(forward(model, p, batch[0]), batch[1])

    return make_train_loss, val_loss


def _call(model: nn.Module, p: Tree, x: Any) -> torch.Tensor:
    from torch.func import functional_call

    return functional_call(model, p, (x,))


L2_RANGE = (1e-6, 1.0)
SMOOTHING_RANGE = (0.0, 0.45)
L2_START, SMOOTHING_START = 1e-3, 0.05


def _space(hparams: Tree) -> dict[str, ts.Float]:
    from tunesmith.train.hyperloop import flat_values

    out = {}
    for k in flat_values(hparams):
        out[k] = ts.Float(*SMOOTHING_RANGE) if k == "label_smoothing" else ts.Float(*L2_RANGE, log=True)
    return out


def _hparams(matrices: list[str], dtype: torch.dtype, inputs: int | None = None) -> tuple[Tree, dict[str, Any]]:
    h: Tree = {}
    if inputs is not None:
        h["l2_in"] = torch.full((inputs,), L2_START, dtype=dtype)
    for name in matrices:
        h[f"l2.{name}"] = torch.tensor(L2_START, dtype=dtype)
    h["label_smoothing"] = torch.tensor(SMOOTHING_START, dtype=dtype)
    cons: dict[str, Any] = {k: "positive" for k in h}
    cons["label_smoothing"] = (0.0, 0.5)
    return h, cons


# -- task 2: the loan-default MLP -------------------------------------------------------------
def loan_task(seed: int, *, data_seed: int = 0, rows: int = 4000, train_rows: int = 800, width: int = 64) -> Task:
    """A 3-hidden-layer tanh MLP on the example's synthetic loans: 800 train, the rest of the
    example's training split as validation, its test split as test. Hyperparameters: one L2
    weight per input feature on the first layer, one per later layer, and label smoothing.
    ``data_seed``: the synthetic data and their split (0 registered; others for development)."""
    sys.path.insert(0, str(EXAMPLES))
    from loan_default import synthetic_credit, to_tensors

    data = to_tensors(synthetic_credit(rows, seed=data_seed), "default", seed=data_seed)  # seed: the init
    x, y = data["train"]
    xt, yt = data["test"]
    inputs = x.shape[1]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inputs, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                          nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2))
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    hparams, cons = _hparams(["2.weight", "4.weight", "6.weight"], torch.float32, inputs)
    make, val = _losses(model, _call)
    return Task("loan-mlp", ((x[:train_rows], y[:train_rows]), (x[train_rows:], y[train_rows:]), (xt, yt)),
                params, hparams, cons, _space(hparams), make, val, run_steps=300, lr=1e-2,
                inner_steps=30, unroll=10, cg_iters=10)


# -- task 3: MiniLM fine-tuning, per-block weight decay ----------------------------------------
class Top(nn.Module):
    """The encoder's last ``blocks`` transformer blocks, masked mean pooling and a linear head,
    on the (frozen) hidden states that enter them."""

    def __init__(self, layers: nn.ModuleList, hidden: int) -> None:
        super().__init__()
        self.layers = layers
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        hidden, mask = x
        ext = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            out = layer(hidden, attention_mask=ext)
            hidden = out[0] if isinstance(out, tuple) else out
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * m).sum(1) / m.sum(1).clamp(min=1.0))


def minilm_task(seed: int, *, data_seed: int = 0, texts: int = 600, blocks: int = 1, train_n: int = 96, val_n: int = 128) -> Task:
    """The fine-tuning example's sentiment words; the last ``blocks`` MiniLM blocks and a new
    head are trained on the hidden states of the frozen blocks below (computed once).
    Hyperparameters: one L2 weight per weight matrix of each trained block (6 per block), one
    for the head, and label smoothing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.path.insert(0, str(EXAMPLES))
    from finetune_text import load_sentiment, model_path, tokenize
    from transformers import AutoModel

    words, labels = load_sentiment(texts, seed=data_seed)
    ids, mask, y = tokenize(words, labels, max_length=6)
    encoder = AutoModel.from_pretrained(model_path(), attn_implementation="eager").eval()
    keep = len(encoder.encoder.layer) - blocks
    with torch.no_grad():
        hidden = encoder.embeddings(input_ids=ids)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in encoder.encoder.layer[:keep]:
            out = layer(hidden, attention_mask=ext)
            hidden = out[0] if isinstance(out, tuple) else out
    torch.manual_seed(seed)
    top = Top(encoder.encoder.layer[keep:], encoder.config.hidden_size).eval()
    params = {k: v.detach().clone() for k, v in top.named_parameters()}
    matrices = [k for k, v in params.items() if v.ndim == 2]
    hparams, cons = _hparams(matrices, torch.float32)
    make, val = _losses(top, _call)

    def part(lo: int, hi: int) -> Any:
        return (hidden[lo:hi], mask[lo:hi]), y[lo:hi]

    n = len(y)
    return Task("minilm", (part(0, train_n), part(train_n, train_n + val_n), part(train_n + val_n, n)),
                params, hparams, cons, _space(hparams), make, val, run_steps=30, lr=1e-3,
                inner_steps=5, unroll=3, cg_iters=5)


TASKS = {"loan-mlp": loan_task, "minilm": minilm_task}
