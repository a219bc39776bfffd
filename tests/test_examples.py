"""The worked examples run for real (small versions)."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tunesmith as ts
from tunesmith.cli import main as cli_main

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
SVM = ROOT / "examples" / "svm_digits_grid.py"


def example_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(SVM.parent))
    try:
        import svm_digits_grid
    finally:
        sys.path.remove(str(SVM.parent))
    return svm_digits_grid


def run_example(*args: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run([sys.executable, str(SVM), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_svm_digits_quick(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = run_example("--quick", "--n-jobs", "2", env=subprocess_env, cwd=tmp_path)
    assert "8x8 digits (scikit-learn): train 1437, test 360" in out
    assert "grid of 10 configurations, 5-fold cross-validation" in out and "searched 10 configurations" in out
    # the default storage is the embedded SQLite file in the current folder
    study = ts.load_study("svm-digits-grid-quick", f"sqlite:///{tmp_path / 'tunesmith.db'}")
    trials = study.trials
    assert len(trials) == 10 and all(t.state is ts.TrialState.COMPLETE for t in trials)
    assert len({study.space.key(t.params) for t in trials}) == 10
    best = example_module().pick_best(study)
    assert f"best configuration: {best.params}" in out
    assert all(sorted(t.intermediate) == [1, 2, 3, 4, 5] and len(t.attrs["cv"]["scores"]["score"]) == 5
               for t in trials)  # each fold reported, the per-fold scores recorded
    test_acc = float(out.split("  test        ")[1].split()[0])
    assert study.best_value > 0.95 and test_acc > 0.95
    assert f"gap {best.value - test_acc:+.4f}" in out and "baseline    test accuracy" in out
    tested = ts.study.evaluate.test_results(study)  # the top 3, recorded apart from the search
    assert len(tested) == 3 and tested[best.number].mean == pytest.approx(test_acc, abs=1e-4)


def test_svm_digits_resumes_a_finished_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # in process this time: the default storage is ./tunesmith.db
    ex = example_module()
    assert ex.main(["--quick", "--n-jobs", "2"]) == 0
    first = capsys.readouterr().out
    assert ex.main(["--quick"]) == 0  # the grid is finished: nothing new is evaluated
    again = capsys.readouterr().out
    assert "searched 10 configurations" in first
    assert "nothing searched: study 'svm-digits-grid-quick' has tried every configuration" in again
    assert "searched 10" not in again
    assert first.split("best configuration")[1] == again.split("best configuration")[1]
    assert len(ts.load_study("svm-digits-grid-quick", f"sqlite:///{tmp_path / 'tunesmith.db'}").trials) == 10


def _mnist_like(folder: Path) -> tuple[np.ndarray, ...]:
    """The 8x8 digits in MNIST's formats (28x28 uint8), so the --mnist path runs for real."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = np.zeros((len(d.images), 28, 28), np.uint8)
    img[:, 10:18, 10:18] = (d.images * 15.9).astype(np.uint8)
    parts = (img[:1400], d.target[:1400].astype(np.uint8), img[1400:], d.target[1400:].astype(np.uint8))
    for stem, arr in zip(("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), parts, strict=True):
        header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
        (folder / (stem + ".gz")).write_bytes(gzip.compress(header + arr.tobytes()))
    np.savez(folder / "mnist.npz", x_train=parts[0], y_train=parts[1], x_test=parts[2], y_test=parts[3])
    return parts


def test_svm_with_local_mnist_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _mnist_like(tmp_path)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert example_module().main(["--quick", "--mnist", str(tmp_path), "--samples", "800", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert f"MNIST {tmp_path}: train 800, test 397" in out
    assert len(ts.load_study("svm-mnist-grid-quick", db).trials) == 10


def test_mnist_npz_and_idx_formats_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _mnist_like(tmp_path)
    ex = example_module()

    (xtr, ytr), (xte, yte) = ex.load_mnist(tmp_path / "mnist.npz")
    (xtr2, ytr2), (xte2, yte2) = ex.load_mnist(tmp_path)
    assert xtr.shape == (1400, 784) and xte.shape == (397, 784) and xtr.max() <= 1.0
    for a, b in ((xtr, xtr2), (ytr, ytr2), (xte, xte2), (yte, yte2)):
        assert np.array_equal(a, b)
    assert np.array_equal(ytr, parts[1])
    with pytest.raises(SystemExit, match="no t10k-images-idx3-ubyte"):
        (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
        ex.load_mnist(tmp_path)


def test_svm_yaml_with_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["run", str(ROOT / "examples" / "svm_digits.yaml"), "--seed", "1", "--n-trials", "3", "--no-progress"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "3 trials run now" in out and "best configuration" in out
    study = ts.load_study("svm-digits-yaml", f"sqlite:///{tmp_path / 'tunesmith.db'}")
    assert study.direction is ts.Direction.MAXIMIZE and len(study.trials) == 3
    assert isinstance(study.sampler, ts.GridSampler) and study.sampler.seed == 1
