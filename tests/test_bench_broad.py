"""The broad sampler benchmark's registration and harness (benchmarks/samplers-broad.md).

The registered cells are what the page says (a Latin square over instances), a noisy
problem records its noiseless values, the parallel mode keeps exactly ``pending``
suggestions in flight, and the new peers' space mappings give valid configurations of a
conditional space. Needs the ``bench`` extra (and ``bench-broad`` for the peer mappings).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("cocoex")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_samplers_broad  # noqa: E402
from samplerbench import broad, broad_report, optimizers, peers, problems, spaces  # noqa: E402

import tunesmith as ts  # noqa: E402


def test_bbob_cells_are_a_latin_square_over_instances() -> None:
    cells = broad.bbob_cells()
    assert len(cells) == len(set(cells)) == 96
    parsed = [problems._parse_bbob(c) for c in cells]
    assert {f for f, _, _ in parsed} == set(range(1, 25))
    assert Counter(i for _, _, i in parsed) == {1: 32, 3: 32, 5: 32}
    for d in broad.BROAD_DIMS:
        assert Counter(i for _, dd, i in parsed if dd == d) == {1: 8, 3: 8, 5: 8}
    assert problems.bbob_problem("bbob-f15-d20-i3").id == "bbob_f015_i03_d20"


def test_registered_families_and_counts() -> None:
    probs = bench_samplers_broad.registered(["synthetic", "real", "parallel"])
    count = Counter((p.family, p.pending) for p in probs)
    assert count[("bbob", 1)] == 96 and count[("real", 1)] == 9
    assert count[("noisy", 1)] == 12 and count[("int", 1)] == 5 and count[("mixint", 1)] == 12
    assert count[("cond", 1)] == 2
    assert sum(n for (_, k), n in count.items() if k in broad.PENDING) == 20
    assert all(p.name.startswith(f"p{p.pending}:") for p in probs if p.pending > 1)


def test_noisy_problem_records_noiseless_values() -> None:
    name = "noisy-f01-d02"
    rec = optimizers.Recorder(broad.objective(name))
    clean = problems._bbob_objective("bbob-f01-d02")
    rng = np.random.default_rng(0)
    seen = [rec(broad.space(name).sample(rng)) for _ in range(20)]
    f_star = broad.reference(name)[0]
    assert all(v >= f_star for v in rec.values)
    assert seen != rec.values  # the optimizer saw noise ...
    cfg = {"x0": 1.0, "x1": -2.0}
    rec(cfg)
    assert rec.values[-1] == pytest.approx(clean(cfg))  # ... the record is the clean value


def test_fifo_keeps_pending_suggestions_in_flight() -> None:
    in_flight, peak, order = [0], [0], []

    def ask() -> int:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        return len(order) + in_flight[0]

    def tell(item: int, y: float) -> None:
        in_flight[0] -= 1
        order.append(item)

    peers._fifo(ask, float, tell, budget=11, pending=4)
    assert peak[0] == 4 and len(order) == 11


def test_tunesmith_parallel_run_sees_pending_trials() -> None:
    space = problems.bbob_space(2)
    rec = optimizers.Recorder(problems._bbob_objective("bbob-f01-d02"))
    optimizers.parallel_runner("ts-random")(space, rec, 9, 0, 4)
    assert len(rec.values) == 9
    with pytest.raises(ValueError, match="no parallel adapter"):
        optimizers.parallel_runner("skopt-gp")


def test_new_peer_mappings_respect_conditions() -> None:
    space = ts.Space({
        "kernel": ts.Categorical(["linear", "poly"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "degree": ts.Int(2, 5, when={"kernel": ["poly"]}),
        "q": ts.Float(0.0, 1.0, step=0.25),
    })
    ng = pytest.importorskip("nevergrad")
    param = peers.ng_parametrization(space)
    param.random_state = np.random.RandomState(0)
    for _ in range(20):
        cfg = spaces.raw_config(param.sample().value, space)
        assert ("degree" in cfg) == (cfg["kernel"] == "poly") and cfg["q"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert ng is not None
    pytest.importorskip("ConfigSpace")
    cs = peers.configspace(space, 0)
    for c in cs.sample_configuration(20):
        raw = {k: (int(v) if k == "kernel" else v) for k, v in dict(c).items()}
        cfg = spaces.raw_config(raw, space)
        assert ("degree" in cfg) == (cfg["kernel"] == "poly")


def test_report_cuts_runs_at_budget_fractions() -> None:
    run = {"optimizer": "a", "problem": "bbob-f01-d02", "seed": 0, "budget": 8, "values": [9, 7, 8, 5, 6, 6, 4, 6]}
    assert [broad_report.at_fraction([run], f)[0]["values"] for f in (0.25, 0.5, 1.0)] == [[7], [5], [4]]


def test_gp_subsample_is_the_registered_list() -> None:
    page = (Path(__file__).resolve().parents[1] / "benchmarks" / "samplers-broad.md").read_text()
    listed = page.split("every 2nd `mixint` cell")[1].split("```")[1].split()
    assert broad.gp_subsample() == listed and len(listed) == 31
    assert {n.split("-")[2] for n in listed if n.startswith("bbob")} == {"d02", "d05", "d10", "d20"}


def test_report_keeps_widely_run_optimizers_and_holds_out_the_development_cells() -> None:
    dev, other = broad.dev_cells()[0], "bbob-f03-d02-i1"
    runs = [{"optimizer": o, "problem": p, "family": "bbob", "seed": 0, "budget": 2, "values": [v, v],
             "finished": 0.0} for o, p, v in [("a", dev, 1.0), ("b", dev, 2.0), ("a", other, 3.0),
                                              ("b", other, 1.0), ("slow", other, 2.0)]]
    assert broad_report.widely_run(runs) == ["a", "b", "slow"]  # "slow" ran 1 of 2 cells: half counts
    runs = runs + [{**runs[0], "problem": "bbob-f04-d02-i3"}, {**runs[1], "problem": "bbob-f04-d02-i3"}]
    assert broad_report.widely_run(runs) == ["a", "b"]  # 1 of 3: left out
    text = broad_report.markdown(runs, ["# t"])
    held = text.split("Held out")[1].split("Verdict")[0]
    assert "2 (problem, seed) cells" in held  # the two cells outside the development subset


def test_report_says_which_sources_the_tunesmith_rows_are_for_and_compares_them() -> None:
    cell = {"problem": "bbob-f03-d02-i1", "family": "bbob", "seed": 0, "budget": 2}
    runs = [{**cell, "optimizer": "ts-auto", "code": "ts-old", "values": [3.0, 2.0], "finished": 1.0},
            {**cell, "optimizer": "ts-auto", "code": "ts-new", "values": [3.0, 1.0], "finished": 2.0},
            {**cell, "optimizer": "random", "code": "optuna", "values": [4.0, 4.0], "finished": 0.0},
            {**cell, "problem": "bbob-f04-d02-i3", "optimizer": "ts-auto", "code": "ts-old", "values": [5.0, 5.0],
             "finished": 1.0}]
    text = broad_report.markdown(runs, ["# t"])
    listed = text.split("## Sources")[1].split("synthetic, the sources")[0]
    assert "`ts-new`: synthetic 1" in listed and "`ts-old`: synthetic 1" in listed  # the newest row per cell
    pair = text.split("synthetic, the sources against each other")[1].split("## all")[0]
    assert pair.index("`ts-auto@ts-new`") < pair.index("`ts-auto@ts-old`")  # ranked: new found 1.0, old 2.0
    assert "1 (problem, seed) cells" in pair  # only the cell both sources ran


def test_report_only_with_peers_reports_those_optimizers_only(tmp_path: Path) -> None:
    import json

    cell = {"problem": "bbob-f03-d02-i1", "family": "bbob", "pending": 1, "seed": 0, "budget": 2, "code": "c",
            "finished": 0.0, "error": None}
    rows = [{**cell, "optimizer": o, "values": [v, v]} for o, v in (("ts-auto", 1.0), ("random", 3.0), ("slow", 2.0))]
    results, report = tmp_path / "r.jsonl", tmp_path / "r.md"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench_samplers_broad.main(["--report-only", "--peers", "random", "--results", str(results), "--report", str(report)])
    text = report.read_text()
    assert "`ts-auto`" in text and "`random`" in text and "`slow`" not in text
    bench_samplers_broad.main(["--report-only", "--results", str(results), "--report", str(report)])
    assert "`slow`" in report.read_text()  # without --peers: every optimizer


def test_the_logreg_task_fits_without_scikit_learns_penalty_deprecation() -> None:
    """scikit-learn 1.8 deprecates ``LogisticRegression(penalty=...)`` (a FutureWarning at each fit, an error
    from 1.10): the task's space keeps its conditional ``penalty`` and passes it as ``l1_ratio`` there."""
    import warnings

    from samplerbench import tasks
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    zeros = {}
    for cfg in ({"penalty": "l1", "C": 0.05}, {"penalty": "l2", "C": 0.05}, {"penalty": "elasticnet", "C": 0.05, "l1_ratio": 0.5}):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.filterwarnings("ignore", "The max_iter was reached")
            model = LogisticRegression(solver="saga", max_iter=500, **tasks.logreg_args(cfg)).fit(X, y)
        zeros[cfg["penalty"]] = int((model.coef_ == 0).sum())
    assert zeros["l1"] > zeros["elasticnet"] > zeros["l2"] == 0  # L1 still L1, L2 still L2
