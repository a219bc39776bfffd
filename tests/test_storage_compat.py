"""Databases written by earlier tunesmith versions, opened by this one.

``data/schema1-e1372f5.sqlite`` (a SQLite file, not named ``.db``: .gitignore and the sdist leave
those out) was written by tunesmith at commit e1372f5 (the last with schema version 1) running,
with ``sqlite:///...`` as its storage::

    space = {"kind": Categorical(["a", "b"]), "x": Float(0, 1), "k": Int(1, 4, when={"kind": ["b"]})}
    study "old": random, seed 0, ASHA(min_resource=1, reduction_factor=2, max_resource=4, pause=True);
        16 trials reporting steps 0-3 (trial 2 raises), set_attr("note"), set_attr("checkpoint");
        then one trial asked and left running, one enqueued, evaluate_best(k=2)
    study "two ü": maximize, 3 trials
    study "grid": {"x": Float(0.0, 0.99), "lr": Float(1e-4, 1e-1, log=True)}, sampler "grid", run to exhaustion
        (25 trials; that version wrote the points 0.7424999999999999 and 0.0005623413251903491)
    study "equal choices": {"c": Categorical([2, 2.0, "a"])}, 3 trials (a space refused since 1382a6c)

``data/export-e1372f5.json`` is ``tunesmith export old --format json`` of that database, by the
same version (a file of that time: no pruner, no notes, bookkeeping keys in the trials' attrs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.trial import SystemState, TrialState

DATA = Path(__file__).parent / "data"


def _schema1(tmp_path: Path) -> str:
    path = tmp_path / "old.db"
    shutil.copyfile(DATA / "schema1-e1372f5.sqlite", path)
    return f"sqlite:///{path}"


def test_a_schema_1_database_written_by_tunesmith_e1372f5_reads_back_and_resumes(tmp_path: Path) -> None:
    url = _schema1(tmp_path)
    with pytest.raises(ts.SchemaVersionError, match="schema version 1.*Upgrade it in place once"):
        ts.SQLStorage(url, read_only=True)
    study = ts.load_study("old", url)
    states = [t.state for t in study.trials]
    assert len(states) == 18 and states.count(TrialState.PAUSED) == 10 and states.count(TrialState.COMPLETE) == 5
    assert study.trials[2].state is TrialState.FAILED and "boom" in (study.trials[2].error or "")
    assert (states[16], states[17]) == (TrialState.RUNNING, TrialState.WAITING)
    resumed = study.trials[11]  # schema 1 kept the bookkeeping in attrs: moved to system
    assert resumed.system == SystemState(resumed_step=1, n_resumes=1)
    assert resumed.attrs == {"note": {"by": "old", "n": 11}, "checkpoint": "ck-11-2"}
    assert resumed.intermediate == {0: pytest.approx(resumed.params["x"] + 1), 1: pytest.approx(resumed.params["x"] + 0.5),
                                    2: pytest.approx(resumed.params["x"] + 1 / 3)}
    assert isinstance(study.pruner, ts.pruners.ASHA) and study.pruner.pause
    assert study.copy_id is None  # made before ids: its trainer trials' checkpoints stay in <root>/old-<hash of the name>
    assert len(ts.load_study("old:test", url).trials) == 2
    assert [t.value for t in ts.load_study("two ü", url).trials] == [t.params["y"] for t in ts.load_study("two ü", url).trials]

    def objective(trial: ts.Trial) -> float:
        start = (trial.system.resumed_step or 0) + 1 if trial.is_resumed else 0
        for step in range(start, 4):
            trial.report(trial.params["x"] + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return float(trial.params["x"])

    before = {t.number: t for t in study.trials}
    study.optimize(objective, n_trials=8)
    for n, t in before.items():  # nothing recorded is lost: reports and attrs stay as written
        after = study.trials[n]
        assert {k: after.intermediate[k] for k in t.intermediate} == t.intermediate
        if t.state.is_finished:
            assert (after.state, after.value, after.attrs) == (t.state, t.value, t.attrs)
    assert any(t.system.n_resumes for t in study.trials[:16] if before[t.number].state is TrialState.PAUSED)


@pytest.mark.parametrize("attrs", ["{not json", "null", '{"resumed_step": "x"}'])
def test_a_schema_1_row_changed_outside_tunesmith_does_not_stop_the_upgrade(tmp_path: Path, attrs: str,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Before, one such row ended every open of the file with json's bare message (or a TypeError).
    The warning named the row by its trial_id alone, not by the trial's number and study."""
    import sqlite3

    url = _schema1(tmp_path)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE ts_trials SET attrs = ? WHERE number = 4 AND study_id = 1", (attrs,))
    with caplog.at_level("WARNING", logger="tunesmith"):
        study = ts.load_study("old", url)
    assert "the attrs of trial 4 of study 'old' (trial_id=5 in table ts_trials) left as they are" in caplog.text
    assert "upgraded" in caplog.text and len(study.trials) == 18
    assert study.trials[0].attrs == {"note": {"by": "old", "n": 0}, "checkpoint": "ck-0-3"}
    if attrs == '{"resumed_step": "x"}':  # readable: kept as the user's attrs
        assert study.trials[4].attrs == {"resumed_step": "x"} and study.trials[4].state is TrialState.COMPLETE
    else:  # read as unreadable, its column named
        assert study.trials[4].state is TrialState.FAILED and "column attrs of trial 4" in (study.trials[4].error or "")


def test_a_grid_study_written_by_an_older_tunesmith_is_not_run_again(tmp_path: Path) -> None:
    """Grid points are now written as they read (0.7425, a log point to 15 digits); before, the
    older study's 25 points, all tried, left 16 to run again, each a second trial of a tried point."""
    url = _schema1(tmp_path)
    study = ts.load_study("grid", url)
    assert len(study.trials) == 25 and 0.7424999999999999 in {t.params["x"] for t in study.trials}
    study.optimize(lambda t: t["x"], n_trials=5)
    assert len(study.trials) == 25


def test_an_export_written_by_tunesmith_e1372f5_imports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    doc = json.loads((DATA / "export-e1372f5.json").read_text())
    done = subprocess.run([sys.executable, "-m", "tunesmith", "import", str(DATA / "export-e1372f5.json"), "--storage", url],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert done.returncode == 0, done.stderr
    study = ts.load_study("old", url)
    assert len(study.trials) == len(doc["trials"]) == 18
    assert "test_results" not in doc  # exports of that time left evaluate_best's results out
    for t, written in zip(study.trials, doc["trials"], strict=True):  # paused: pruned; running: failed; waiting: queued again
        state = {"paused": "pruned", "running": "failed"}.get(written["state"], written["state"])
        assert (t.state.value, t.params) == (state, written["params"])
        assert {str(k): v for k, v in t.intermediate.items()} == written["intermediate"]
        if state != "waiting":
            assert t.attrs == written["attrs"] and t.value == (None if state == "failed" else written["value"])


def test_a_trainer_trial_paused_by_a_tunesmith_before_2026_12_03_fails_saying_why(tmp_path: Path) -> None:
    """Those versions checkpointed in ``<root>/<study>/trial-<n>`` (pickled). Resumed now, the
    trial failed with "not inside the trial's own checkpoint folder ... pass the same
    checkpoint_root": advice that does not help, the root being the same."""
    import sqlite3

    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, objective

    db, root = tmp_path / "s.db", tmp_path / "ck"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, storage=f"sqlite:///{db}",
                     name="tr")
    study.enqueue({"lr": 0.01})
    old = root / "tr" / "trial-0" / "last-000000024.pt"  # where 05823f4 (2026-11-27) wrote it
    old.parent.mkdir(parents=True)
    old.write_bytes(b"an old pickled checkpoint")
    with sqlite3.connect(db) as con:  # trial 0 as the study resumes it: paused then, promoted now
        con.execute("UPDATE ts_trials SET attrs = ?, system = ?, intermediate = ? WHERE number = 0",
                    (json.dumps({"checkpoint": str(old)}), json.dumps({"resumed_step": 3}), '{"0": 1.5}'))
    study.optimize(objective(lambda p: mlp(), split(64), base=TrainConfig(epochs=1, batch_size=16),
                             checkpoint_root=root), n_trials=1)
    t = study.trials[0]
    assert t.state is TrialState.FAILED and t.intermediate == {0: 1.5}
    assert "paused by a tunesmith older than 2026-12-03" in (t.error or "") and "state='pruned'" in (t.error or "")
    assert old.exists()


def test_a_space_an_older_tunesmith_accepted_is_refused_saying_how_to_keep_its_trials(tmp_path: Path) -> None:
    """e1372f5 stored Categorical([2, 2.0, "a"]); before, the refusal said the study was "changed
    outside tunesmith: restore it from a backup or delete the study"."""
    url = _schema1(tmp_path)
    with pytest.raises(ts.StorageError, match=r"choices 2 and 2.0 are equal.*An older tunesmith may have accepted "
                                              r"it.*its trials are still stored.*tunesmith export NAME --format json"):
        ts.load_study("equal choices", url)
    assert len(ts.load_study("old", url).trials) == 18  # the file's other studies open


def test_the_upgrade_refusal_on_postgresql_says_to_put_the_password_back(pg_url: str) -> None:
    """The refusal of a read-only open names the command that upgrades the database, with the URL
    as messages show it: a password there is `***`, which the command cannot connect with."""
    import sqlalchemy as sa

    ts.Study({"x": ts.Float(0, 1)}, storage=pg_url, name="old").optimize(lambda t: t.params["x"], n_trials=2)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # back to schema version 1: no system column
        conn.execute(sa.text("ALTER TABLE ts_trials DROP COLUMN system"))
        conn.execute(sa.text("UPDATE ts_meta SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()
    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # the test server trusts any password
    with pytest.raises(ts.SchemaVersionError) as refused:
        ts.SQLStorage(with_password, read_only=True)
    said = str(refused.value)
    assert "s3cret" not in said and "ts.SQLStorage('postgresql+psycopg://postgres:***@" in said
    assert said.endswith(" (with the password in place of ***)")
    assert len(ts.load_study("old", with_password).trials) == 2  # upgraded by a writer, as the refusal says
