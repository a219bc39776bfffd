"""The sampler benchmark harness (benchmarks/bench_samplers.py) keeps working.

Runs the real harness end to end on one BBOB function with two optimizers and
a budget of 8, checks the results file, --reuse and the report; and checks
that each peer's space mapping yields valid configurations of a conditional
space. Needs the ``bench`` extra (skipped without it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("hyperopt")
pytest.importorskip("skopt")
pytest.importorskip("cocoex")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_samplers  # noqa: E402
from samplerbench import optimizers, problems, report, spaces  # noqa: E402


def _run(tmp_path: Path, *extra: str) -> list[dict]:
    results = tmp_path / "runs.jsonl"
    bench_samplers.main([
        "--families", "bbob", "--functions", "1", "--dims", "2", "--seeds", "1",
        "--budget-bbob", "8", "--samplers", "random", "--peers", "optuna-tpe", "--jobs", "1",
        "--results", str(results), "--report", str(tmp_path / "report.md"),
        "--overhead-results", str(tmp_path / "none.json"), *extra,
    ])
    return [json.loads(line) for line in results.read_text().splitlines()]


@pytest.mark.slow  # ~10-60 s: imports of every peer, real runs
def test_harness_runs_reuses_and_reports(tmp_path: Path) -> None:
    runs = _run(tmp_path)
    assert sorted(r["optimizer"] for r in runs) == ["optuna-tpe", "ts-random"]
    f_star = problems.bbob_optimum("bbob-f01-d02")
    for r in runs:
        assert r["error"] is None and len(r["values"]) == 8
        assert min(r["values"]) >= f_star  # nobody beats the known optimum
    assert len(_run(tmp_path, "--reuse")) == 2  # nothing rerun
    assert len(_run(tmp_path)) == 4  # without --reuse, rerun and appended
    text = (tmp_path / "report.md").read_text()
    assert "`ts-random`" in text and "`optuna-tpe`" in text and "regret@8" in text


def test_bbob_optimum_and_regret() -> None:
    assert problems.bbob_optimum("bbob-f01-d02") == pytest.approx(79.48)
    ref = (79.48, 100.0)
    assert report.regret([120.0, 79.48, 90.0], 3, ref) == 0.0
    assert report.regret([120.0, 89.74, 79.48], 2, ref) == pytest.approx(0.5, abs=1e-9)


def _check_svm(cfg: dict) -> None:
    space = problems.svm_space()
    assert space.validate(cfg) == cfg
    assert ("gamma" in cfg) == (cfg["kernel"] in ("poly", "rbf"))
    assert ("degree" in cfg) == (cfg["kernel"] == "poly")


@pytest.mark.slow
def test_peer_space_mappings_respect_conditions() -> None:
    import optuna
    from hyperopt.pyll import stochastic
    from skopt.space import Space as SkSpace

    space = problems.svm_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    hp = spaces.hyperopt_space(space)
    names, dims = spaces.skopt_dimensions(space)
    rng = np.random.default_rng(0)
    kernels = set()
    for i in range(20):
        trial = study.ask()
        _check_svm(spaces.optuna_config(trial, space))
        cfg = spaces.hyperopt_config(stochastic.sample(hp, rng=rng), space)
        _check_svm(cfg)
        kernels.add(cfg["kernel"])
        x = SkSpace(dims).rvs(n_samples=1, random_state=i)[0]
        _check_svm(spaces.skopt_config(x, names, space))
    assert kernels == {"linear", "poly", "rbf"}
    for p in (space["C"], space["gamma"]):  # log scale kept: values spread over decades
        assert p.log


def test_unknown_optimizer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.runner("nevergrad")
    with pytest.raises(ValueError, match="unknown real task"):
        problems.problems("real", tasks=("svm-mnist",))
