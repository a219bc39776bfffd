"""What another user of a shared database, folder or machine can hand tunesmith: rows with
terminal escapes, files that are not databases, hostile environment values, forged dashboard
forms. Each is refused with a clear message or shown harmlessly; nothing is run or lost."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith import plots
from tunesmith.cli import main

SPACE = {"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"])}
ESCAPES = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\n[tunesmith] trial 9 complete"  # a clipboard write, a cleared screen, a fake line


def _sqlite_study(tmp_path: Path, **kw: Any) -> tuple[str, ts.Study]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0, **kw)
    study.optimize(lambda t: t.params["x"], n_trials=3)
    return url, study


def _plain(messages: list[str]) -> None:
    for m in messages:
        assert "\x1b" not in m and "\x07" not in m and "\n" not in m, m


# -- the terminal ------------------------------------------------------------------------------


def _ask_and_die(url: str) -> None:
    ts.Study(SPACE, storage=url, name="s", heartbeat_interval=0.05, grace_period=0.1).ask()
    os._exit(0)


def test_a_worker_name_with_terminal_escapes_is_logged_escaped(tmp_path: Path, caplog: Any) -> None:
    """A running trial's worker name is read from the database and logged when the trial is
    judged lost: escapes in it reached the terminal as they were (clearing it, writing the
    clipboard, printing a line that looks like tunesmith's)."""
    url, study = _sqlite_study(tmp_path, heartbeat_interval=0.05, grace_period=0.1)
    # a worker that took a trial and died: no heartbeat of this process keeps its trial alive (one
    # asked here beat again within 0.05 s, and a loaded machine reaped after that beat: nothing lost)
    worker = mp.get_context("fork").Process(target=_ask_and_die, args=(url,))
    worker.start()
    worker.join()
    (running,) = study.trials_in("running")
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET worker = ?, heartbeat = 0 WHERE number = ?", (ESCAPES, running.number))
    other = ts.Study(SPACE, storage=url, name="s", heartbeat_interval=0.05, grace_period=0.1)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        other.optimize(lambda t: t.params["x"], n_trials=1)
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert lost and "\\x1b]52" in lost[0]
    _plain(lost)


def test_show_prints_a_failed_trial_s_worker_and_error_escaped(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith show`` lists the last failed trials with their worker and error, both read from
    the database (an objective's message may hold anything): their escapes reached the terminal."""
    url, study = _sqlite_study(tmp_path)
    study.add_trial({"x": 0.5, "k": "a"}, state="failed", error=ESCAPES.replace("\n", " "))
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET worker = ? WHERE number = 3", (ESCAPES.replace("\n", " "),))
    assert main(["show", "s", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "failed trials" in out and "\\x1b]52" in out and "\x1b" not in out and "\x07" not in out


def test_show_lists_a_failed_trial_s_error_up_to_its_line_end_only(tmp_path: Path, capsys: Any) -> None:
    """The error's first line was taken with splitlines, which also ends a line at \\x1c, \\x85 and
    U+2028: "a\\x1cb" was listed as "a"."""
    url, study = _sqlite_study(tmp_path)
    study.add_trial({"x": 0.5, "k": "a"}, state="failed", error="bad \x1cfield\u2028 here\r\nTraceback ...")
    assert main(["show", "s", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert ": bad \\x1cfield\\u2028 here\n" in out and "Traceback" not in out


def test_show_prints_unicode_line_separators_and_direction_marks_escaped(tmp_path: Path, capsys: Any) -> None:
    """``show`` escaped control characters only: a U+2028 or U+2029 in a name or an error reached the
    terminal raw (a space or nothing there), and U+202E showed the rest of its line reversed."""
    url = f"sqlite:///{tmp_path / 'u.db'}"
    study = ts.Study({"x\u2029y": ts.Categorical(["a\u202eb"])}, storage=url, name="s\u2028t", sampler="random")
    study.add_trial({"x\u2029y": "a\u202eb"}, state="failed", error="bad\u2066 value\u2028 here")
    study.add_trial({"x\u2029y": "a\u202eb"}, value=1.0)
    assert main(["show", "s\u2028t", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "s\\u2028t" in out and "x\\u2029y" in out and "a\\u202eb" in out and "bad\\u2066 value\\u2028 here" in out
    assert not any(c in out for c in "\u2028\u2029\u202e\u2066"), out


@pytest.mark.parametrize("kind", ["slice", "contour"])
def test_plot_prints_the_titles_and_reasons_naming_a_stored_parameter_escaped(
    tmp_path: Path, capsys: Any, kind: str
) -> None:
    """``tunesmith plot`` said what it drew and what it could not by the plots' titles and reasons,
    which name the study's parameters: a name another program stored wrote the reader's clipboard
    and cleared the screen ("wrote the slice of 's' (s: value against ESC]52;c;...)")."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    evil = "\x1b]52;c;aGk=\x07\x1b[2J\u202ex"
    study = ts.Study({evil: ts.Float(0, 1), "y": ts.Float(0, 1)}, storage=url, name="s", sampler="random")
    study.optimize(lambda t: t.params[evil] + t.params["y"], n_trials=4)
    assert main(["plot", "s", "--storage", url, "--kind", kind, "-o", str(tmp_path / "p.html")]) == 0
    err = capsys.readouterr().err
    assert "\\x1b]52;c;aGk=\\x07\\x1b[2J\\u202ex" in err, err
    assert not any(c in err for c in "\x1b\x07\u202e"), err


def test_plot_prints_the_title_of_a_plot_not_drawn_escaped(tmp_path: Path, capsys: Any) -> None:
    """``not drawn: TITLE: REASON``: the slice of a conditional parameter no complete trial had active is
    titled by its name, which another program stored (``ESC]52;c;...``); the reason repr()s it."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    evil = "\x1b]52;c;aGk=\x07\u202ex"
    space = {"b": ts.Categorical(["a", "z"]), "x": ts.Float(0, 1), evil: ts.Float(0, 1, when={"b": ["z"]})}
    study = ts.Study(space, storage=url, name="s", sampler="random", seed=0)
    for _ in range(3):
        study.enqueue({"b": "a", "x": 0.5})
    study.optimize(lambda t: t.params["x"], n_trials=3)
    assert main(["plot", "s", "--storage", url, "--kind", "slice", "-o", str(tmp_path / "p.html")]) == 0
    err = capsys.readouterr().err
    assert "not drawn: s: value against \\x1b]52;c;aGk=\\x07\\u202ex" in err, err
    assert not any(c in err for c in "\x1b\x07\u202e"), err


@pytest.mark.parametrize("config", [{"sampler": {"name": "ran\x1b]52;c;aGk=\x07dom"}},
                                    {"sampler": {"name": "auto"}, "sampler_picked": "tpe\x1b]52;c;aGk=\x07"}])
def test_show_prints_a_stored_sampler_name_escaped(tmp_path: Path, capsys: Any, config: dict) -> None:
    """``show``'s first line names the sampler the study's settings hold (or what "auto" picked), as
    stored: another program's name wrote the reader's clipboard ("sampler ranESC]52;c;...dom"), though
    ``studies`` listed it escaped."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        stored = json.loads(db.execute("SELECT config FROM ts_studies").fetchone()[0])
        db.execute("UPDATE ts_studies SET config = ?", (json.dumps({**stored, **config}),))
    assert main(["show", "s", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "\\x1b]52;c;aGk=\\x07" in out and not any(c in out for c in "\x1b\x07"), out


def test_a_stored_sampler_name_with_terminal_escapes_is_logged_escaped(tmp_path: Path, caplog: Any) -> None:
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.sampler', json(?))",
                   (json.dumps({"name": ESCAPES}),))
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        ts.Study(SPACE, storage=url, name="s", sampler="tpe")
    recorded = [r.getMessage() for r in caplog.records if "recorded" in r.getMessage()]
    assert recorded and "\\x1b]52" in recorded[0]
    _plain(recorded)



def test_an_error_another_writer_stored_on_a_running_trial_is_logged_escaped(tmp_path: Path, caplog: Any) -> None:
    """A trial ended by another writer while it ran here is logged with the error stored on it
    ("trial 0 ended elsewhere ... (ERROR)"): its escapes reached the terminal as they were."""
    url, study = _sqlite_study(tmp_path)

    def objective(trial: ts.Trial) -> float:
        with sqlite3.connect(tmp_path / "shared.db") as db:  # another writer of the database, meanwhile
            db.execute("UPDATE ts_trials SET state = 'failed', error = ? WHERE number = ?", (ESCAPES, trial.number))
        return 0.5

    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        study.optimize(objective, n_trials=1)
    ended = [r.getMessage() for r in caplog.records if "ended elsewhere" in r.getMessage()]
    assert ended and "\\x1b]52" in ended[0] and "\\n[tunesmith] trial 9" in ended[0]
    _plain(ended)


def test_a_missing_checkpoint_path_stored_for_a_resumed_trial_is_logged_escaped(tmp_path: Path, caplog: Any) -> None:
    """A resumed trial whose checkpoint (a path inside its own folder, read from the database) is
    missing is said in a warning naming the path: its escapes reached the terminal as they were."""
    pytest.importorskip("torch")
    from _train_util import mlp, split

    from tunesmith.train import TrainConfig, checkpoint, objective

    db, root = tmp_path / "s.db", tmp_path / "ck"
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0, storage=f"sqlite:///{db}",
                     name="victim")
    study.enqueue({"lr": 0.01})
    path = str(checkpoint.study_folder(root, "victim", study.copy_id) / "trial-0" / f"last-000000001{ESCAPES}.pt")
    with sqlite3.connect(db) as con:  # as if the study had paused and resumed it
        con.execute("UPDATE ts_trials SET attrs = ?, system = ? WHERE number = 0",
                    (json.dumps({"checkpoint": path}), json.dumps({"resumed_step": 0})))
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        study.optimize(objective(lambda p: mlp(), split(64), base=TrainConfig(epochs=1, batch_size=16),
                                 checkpoint_root=root), n_trials=1)
    missing = [r.getMessage() for r in caplog.records if "is missing" in r.getMessage()]
    assert missing and "\\x1b]52" in missing[0]
    _plain(missing)
    assert study.trials[0].state is ts.TrialState.COMPLETE  # trained from the start


def test_the_default_log_line_writes_control_characters_as_escapes() -> None:
    """tunesmith's own log handler writes every message with its control characters escaped (line
    breaks and tabs kept): a value read from storage and logged by any message cannot drive the terminal."""
    code = ("import logging, tunesmith\n"
            "logging.getLogger('tunesmith').warning('stored: %s', '\\x1b]52;c;cHduZWQ=\\x07\\r\\u202eb\\nnext\\tline')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stderr
    assert err == "[tunesmith] stored: \\x1b]52;c;cHduZWQ=\\x07\\r\\u202eb\nnext\tline\n", err



#: what ``tunesmith show`` may use while a stored pruner is refused: a few seconds of CPU time (it took
#: about 1 s) and memory to spare; a power being computed is stopped by the kernel within these
SHOW_CPU_S, SHOW_MEMORY = 20, 4 << 30
#: NumPy's and SciPy's BLAS each start a thread per core, with its own stack and buffers: on a machine of
#: many cores their address space alone would come near SHOW_MEMORY
ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _bounded() -> None:
    """In the child before it runs: at most :data:`SHOW_CPU_S` seconds of CPU time (then SIGXCPU; SIGKILL 5 s on) and
    :data:`SHOW_MEMORY` bytes of address space (then MemoryError), so that a regression fails in seconds."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (SHOW_CPU_S, SHOW_CPU_S + 5))
    resource.setrlimit(resource.RLIMIT_AS, (SHOW_MEMORY, SHOW_MEMORY))


@pytest.mark.parametrize("pruner", [
    {"name": "asha", "max_resource": 100, "min_early_stopping_rate": 10**12},
    {"name": "asha", "min_early_stopping_rate": 10**12},
    {"name": "hyperband", "max_resource": 100, "n_brackets": 10**12},
])
def test_a_stored_pruner_setting_of_a_huge_power_is_refused_not_computed(tmp_path: Path, pruner: dict) -> None:
    """A study's stored pruner whose first rung is ``reduction_factor ** min_early_stopping_rate`` (or
    Hyperband's ``reduction_factor ** n_brackets``) with an exponent of 10**12, 40 bytes written into
    the database: rebuilding it computed the power, which fills the memory and never ends, so
    ``tunesmith show``, the dashboard's list of studies and every worker hung. Refused now: the study
    opens without its pruner, said."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.pruner', json(?))", (json.dumps(pruner),))
    shown = subprocess.run([sys.executable, "-m", "tunesmith", "show", "s", "--storage", url], capture_output=True,
                           text=True, timeout=120, preexec_fn=_bounded,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **ONE_BLAS_THREAD})
    assert shown.returncode == 0 and "its stored pruner cannot be rebuilt here" in shown.stderr, (
        f"exit status {shown.returncode} (-{int(signal.SIGXCPU)} or -9: past {SHOW_CPU_S} s of CPU time, a power "
        f"being computed): {shown.stderr[-2000:]}")
    assert "must be at most" in shown.stderr and "3 trials" in shown.stdout


# -- files that are not databases ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "FIFO", "character device"])
def test_a_database_path_that_is_no_regular_file_is_refused_by_name(tmp_path: Path, kind: str, capsys: Any) -> None:
    """A path swapped for a directory, a FIFO or a link to /dev/zero was read as an empty storage
    by the reading commands ("no studies") and failed with "disk i/o error" when written."""
    path = tmp_path / "shared.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    url = f"sqlite:///{path}"
    assert main(["studies", "--storage", url]) != 0
    assert f"is a {kind}, not a SQLite database file" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"is a {kind}, not a SQLite database file"):
        ts.Study(SPACE, storage=url, name="s")


# -- the dashboard's write forms -----------------------------------------------------------------


def test_a_forged_token_that_is_not_ascii_is_a_403_not_a_500(tmp_path: Path) -> None:
    """compare_digest refuses a str that is not ASCII with a TypeError: a forged form with
    token=é was a 500 (the server's error page) rather than the refusal."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage

    url, _ = _sqlite_study(tmp_path)
    c = TestClient(create_app(open_storage(url, allow_writes=True), allow_writes=True), raise_server_exceptions=False)
    for token in ("é", "令牌", "x" * 10_000):
        r = c.post("/studies/s/delete", data={"token": token, "confirm": "yes"})
        assert r.status_code == 403 and "token" in r.text, (token, r.status_code)
    assert [s.name for s in open_storage(url).list_studies()] == ["s"]



@pytest.mark.parametrize("pruner", [{"name": "percentile", "percentile": 10**400},
                                    {"name": "folds", "margin": 10**400}, {"name": "folds", "spread": -(10**400)}])
def test_a_stored_pruner_setting_beyond_a_float_hides_no_study(tmp_path: Path, capsys: Any, pruner: dict) -> None:
    """A pruner setting JSON keeps whole beyond a float's range (10**400) in one study's row: its
    OverflowError made the dashboard's list of studies (every study) a 500, and ``show`` a traceback.
    The study now opens without its pruner, said, as for any pruner that cannot be rebuilt."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app

    url, _ = _sqlite_study(tmp_path)
    ts.Study(SPACE, storage=url, name="other", sampler="random")
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.pruner', json(?)) WHERE name = 'other'",
                   (json.dumps(pruner),))
    c = TestClient(create_app(url), base_url="http://localhost", raise_server_exceptions=False)
    listed = c.get("/api/studies")
    assert listed.status_code == 200 and sorted(s["name"] for s in listed.json()["studies"]) == ["other", "s"]
    assert c.get("/").status_code == 200 and c.get("/studies/other").status_code == 200
    assert main(["show", "other", "--storage", url]) == 0
    assert "study other" in capsys.readouterr().out



def test_a_stored_sampler_count_past_64_bits_is_refused_by_name(tmp_path: Path) -> None:
    """A stored TPE whose ``n_startup`` is 10**19 (JSON keeps it whole) was rebuilt, then the first
    ask ended optimize in islice()'s "Stop argument ... must be ... <= sys.maxsize"; counts past
    2**63 - 1 are refused, so the stored sampler is a StorageError naming the study and the setting."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.sampler', json(?))",
                   (json.dumps({"name": "tpe", "n_startup": 10**19}),))
    with pytest.raises(ts.StorageError, match=r"'s'.*sampler.*n_startup must be at most 2\*\*63 - 1"):
        ts.load_study("s", url).optimize(lambda t: t.params["x"], n_trials=1)
    assert len(ts.Study(SPACE, storage=url, name="s", sampler="tpe").trials) == 3  # the owner's own sampler opens it


@pytest.mark.parametrize("option", ["ls_penalty", "plugin_max_noise", "ei_margin"])
def test_a_stored_bayes_option_beyond_a_float_is_refused_by_name(tmp_path: Path, option: str) -> None:
    """A stored Bayesian sampler whose ``ls_penalty`` or ``plugin_max_noise`` is 10**400 (JSON keeps it
    whole) was rebuilt, then every ask that fitted the model ended optimize in a bare OverflowError
    ("int too large to convert to float"); it is a StorageError naming the study and the option."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.sampler', json(?))",
                   (json.dumps({"name": "bayes", "seed": 0, "n_init": 1, option: 10**400}),))
    with pytest.raises(ts.StorageError, match=rf"'s'.*sampler.*{option} must be a finite number"):
        ts.load_study("s", url).optimize(lambda t: t.params["x"], n_trials=2)


# -- the environment -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["4,2", "", "auto", "0", "9" * 40, "\u00b2", "9" * 5000])
def test_a_worker_starts_whatever_omp_num_threads_holds(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker passes the environment's OMP_NUM_THREADS to torch: a list (valid for
    OpenMP), an empty or a non-numeric value ended every worker at its start, and so did "²" (a
    digit to str.isdigit, none to int()) and 5,000 digits (past int()'s limit)."""
    torch = pytest.importorskip("torch")
    from tunesmith.execution.ray_worker import _setup

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    try:
        _setup(0)
        assert torch.get_num_threads() == (4 if value == "4,2" else before)
    finally:
        torch.set_num_threads(before)


# -- output files ----------------------------------------------------------------------------------


def _outputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    return [(["report", "s"], "out.html"), (["plot", "s", "--kind", "history"], "out.png"),
            (["export", "s", "--format", "csv"], "out.csv")]


def test_an_output_hard_linked_to_another_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    """Someone who can write the output folder links ``out.html`` to a file of the user's (a
    hard link needs no write access to the folder the file is in): the report overwrote it."""
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    url, _ = _sqlite_study(tmp_path)
    victim = tmp_path / "victim.txt"
    for args, name in _outputs(tmp_path):
        victim.write_text("precious")
        out = tmp_path / name
        out.unlink(missing_ok=True)
        os.link(victim, out)
        assert main([*args, "--storage", url, "-o", str(out)]) == 0
        assert victim.read_text() == "precious", name
        assert out.stat().st_size > 100 and out.stat().st_ino != victim.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_an_output_written_again_keeps_its_permissions(tmp_path: Path) -> None:
    """A report or export the user made private (chmod 600) stays private when written again: the
    new file that replaces it took the umask's mode (readable by all)."""
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    url, _ = _sqlite_study(tmp_path)
    for args, name in _outputs(tmp_path):
        out = tmp_path / name
        out.write_text("old")
        out.chmod(0o600)
        assert main([*args, "--storage", url, "-o", str(out)]) == 0
        assert out.stat().st_size > 100 and oct(out.stat().st_mode & 0o777) == oct(0o600), name


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link of another user needs root")
def test_an_output_that_is_a_link_of_another_user_is_refused(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    url, _ = _sqlite_study(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for args, name in _outputs(tmp_path):
        out = tmp_path / name
        out.symlink_to(victim)
        os.lchown(out, 65534, 65534)
        assert main([*args, "--storage", url, "-o", str(out)]) != 0
        err = capsys.readouterr().err  # as a database's link is refused: the file it would overwrite named
        assert f"{out} is a link owned by another user (uid 65534), who chose the file it writes to ({victim})" in err
        assert victim.read_text() == "precious", name


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link of another user needs root")
def test_a_path_another_user_may_have_chosen_is_refused_with_one_class_a_permission_error(tmp_path: Path) -> None:
    """Before: another user's link at an output, database or TensorBoard path raised a ValueError, while the
    same kind of refusal elsewhere (a Ray token's folder others may write) raised a PermissionError."""
    from tunesmith.integrations.tensorboard import _check_log_dir
    from tunesmith.plots import replace_file
    from tunesmith.storage.sql import _check_beside

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    links = []
    for name in ("out.html", "s.db", "tb"):
        links.append(tmp_path / name)
        links[-1].symlink_to(victim)
        os.lchown(links[-1], 65534, 65534)
    open_db = tmp_path / "open.db"
    sqlite3.connect(open_db).close()
    (tmp_path / "open.db-wal").write_bytes(b"")
    os.chown(tmp_path / "open.db-wal", 65534, 65534)
    refusals = [lambda: replace_file(links[0], lambda f: f.write(b"x")),
                lambda: ts.Study(SPACE, storage=f"sqlite:///{links[1]}", name="s"),
                lambda: _check_log_dir(links[2]),
                lambda: _check_beside(open_db, "sqlite:///open.db")]
    for refused in refusals:
        with pytest.raises(PermissionError, match="another user|belongs to uid 65534") as err:
            refused()
        assert isinstance(err.value, ts.UntrustedPathError) and isinstance(err.value, ValueError)  # as before
    assert victim.read_text() == "precious"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link of another user needs root")
def test_a_database_that_is_a_link_of_another_user_is_not_written_through(tmp_path: Path) -> None:
    """Before: a link another user planted at a study's database path (a shared folder) was followed: the
    study's tables went into the file they chose, another database of this user's."""
    victim = tmp_path / "victim.db"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE mine (x)")
    link = tmp_path / "shared.db"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    with pytest.raises(ts.UntrustedPathError, match=rf"{link} is a link owned by another user \(uid 65534\), who "
                                                   rf"chose the file it writes to \({victim}\)"):
        ts.Study(SPACE, storage=f"sqlite:///{link}", name="s")
    with sqlite3.connect(victim) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
    assert ts.storage.make_storage(f"sqlite:///{link}", read_only=True).list_studies() == []  # read: as before
    os.lchown(link, os.getuid(), os.getgid())  # the user's own link: followed, as before
    ts.Study(SPACE, storage=f"sqlite:///{link}", name="s")
    assert ts.storage.make_storage(f"sqlite:///{victim}").list_studies()[0].name == "s"


def test_an_output_of_the_users_own_link_or_a_device_is_written_as_before(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    url, _ = _sqlite_study(tmp_path)
    real = tmp_path / "real.html"
    (tmp_path / "mine.html").symlink_to(real)
    assert main(["report", "s", "--storage", url, "-o", str(tmp_path / "mine.html")]) == 0
    assert (tmp_path / "mine.html").is_symlink() and "<html>" in real.read_text()
    assert main(["export", "s", "--storage", url, "-o", os.devnull]) == 0


# -- sizes read from storage -----------------------------------------------------------------------


class _CountedStr(str):
    """A text choice that counts the comparisons made with it (a real ``str`` otherwise)."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountedStr.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_space_of_many_choices_is_read_in_linear_time(tmp_path: Path, capsys: Any) -> None:
    """Each choice was compared with every earlier one: a stored space of 50,000 choices took
    each worker, ``show`` and the report about a minute to read (100,000: minutes). The
    comparisons are counted (timed by benchmarks/bench_history.py choices)."""
    url, _ = _sqlite_study(tmp_path)
    space = {"x": {"type": "float", "low": 0, "high": 1},
             "k": {"type": "categorical", "choices": ["a", "b", *(f"c{i}" for i in range(50_000))]}}
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET space = ?", (json.dumps(space),))
    assert main(["show", "s", "--storage", url]) == 0
    assert "best 3 of 3" in capsys.readouterr().out
    _CountedStr.compared = 0
    ts.Space({"k": ts.Categorical([_CountedStr(f"c{i}") for i in range(5_000)])})
    assert _CountedStr.compared < 5_000, _CountedStr.compared  # before: 12.5 million, each with every earlier
    with pytest.raises(ValueError, match="listed twice"):  # the duplicate check still holds, None included
        ts.Space({"k": ts.Categorical([None, "a", None])})
    assert len(ts.load_study("s", url).trials) == 3


# -- study files from a shared folder --------------------------------------------------------------


@pytest.mark.parametrize("objective", ["colorsys:rgb_to_hls", "train.py:f"])
def test_a_file_planted_beside_a_study_file_replaces_no_installed_module(
        objective: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study file's folder went first on sys.path: a ``colorsys.py`` planted there replaced
    the installed module the file names, and a ``wave.py`` any module imported later."""
    import importlib

    from tunesmith.cli.studyfile import load_objective

    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("colorsys", "wave", "train"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    ran = tmp_path / "ran"
    for name in ("colorsys", "wave"):
        (tmp_path / f"{name}.py").write_text(f"open({str(ran)!r}, 'a').write('{name}')\n")
    (tmp_path / "train.py").write_text("def f(trial):\n    return 0.0\n")
    fn = load_objective(objective, tmp_path)
    assert callable(fn) and importlib.import_module("wave").__file__ != str(tmp_path / "wave.py")
    assert not ran.exists(), ran.read_text()
    for name in ("colorsys", "wave", "train"):
        sys.modules.pop(name, None)


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_an_error_holding_a_nul_is_recorded_on_postgresql(pg_url: str) -> None:
    """PostgreSQL's text cannot hold NUL: an objective whose error message held one (a byte
    of a data file) ended optimize with a StorageError and left its trial running."""
    study = ts.Study(SPACE, storage=pg_url, name="nul", sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        trial.set_attr("row", "a\x00b")  # JSON escapes it: fine before too
        raise RuntimeError("cannot parse record '\x00\x01'")

    study.optimize(objective, n_trials=2, catch=(RuntimeError,))
    trials = ts.load_study("nul", pg_url).trials
    assert [t.state.value for t in trials] == ["failed", "failed"]
    assert trials[0].error is not None and "cannot parse record '\ufffd\x01'" in trials[0].error
    assert trials[0].attrs["row"] == "a\x00b"


@pytest.mark.parametrize("name", ["select", "a'b\"c", "x; DROP TABLE ts_trials;--", "back\\slash", "%s %(x)s"])
def test_study_names_that_are_sql_are_only_names_on_postgresql(pg_url: str, name: str) -> None:
    study = ts.Study(SPACE, storage=pg_url, name=name, sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    assert [s.name for s in ts.load_study(name, pg_url).storage.list_studies()] == [name]
    assert len(ts.load_study(name, pg_url).trials) == 2


def test_a_trial_of_a_million_reports_draws_a_plot_file_of_bounded_size(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith plot`` drew every report: a trial row of 2 million reports (60 MB) made a
    78 MB HTML file in 32 s; the report and the dashboard already thinned each series."""
    pytest.importorskip("plotly")
    url, _ = _sqlite_study(tmp_path)
    reports = json.dumps({str(i): (i % 97) / 97 for i in range(300_000)})
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET intermediate = ? WHERE number = 1", (reports,))
    out = tmp_path / "curves.html"
    assert main(["plot", "s", "--kind", "curves", "--storage", url, "-o", str(out)]) == 0
    assert out.stat().st_size < 8_000_000  # plotly.js embedded (4.6 MB) and 2,000 points; before: 15.6 MB
    assert "drawn with 2,000" in capsys.readouterr().err


def _rename_parameter(db: Path, old: str, new: str) -> None:
    """``old`` renamed ``new`` in the stored space and in every trial's parameters, as a writer of the database may."""
    with sqlite3.connect(db) as c:
        space = json.loads(c.execute("SELECT space FROM ts_studies").fetchone()[0])
        c.execute("UPDATE ts_studies SET space = ?", (json.dumps({new if k == old else k: v for k, v in space.items()}),))
        for trial_id, params in c.execute("SELECT trial_id, params FROM ts_trials").fetchall():
            params = json.loads(params)
            params[new] = params.pop(old)
            c.execute("UPDATE ts_trials SET params = ? WHERE trial_id = ?", (json.dumps(params), trial_id))


def test_a_word_of_a_megabyte_is_cut_into_lines_measuring_about_it_not_it_once_a_line() -> None:
    """Titles are cut into lines by measuring them: each line cut from a long word measured all that was
    left of it, so a word of n characters cost about n * n / (a line) measured: a parameter name of a
    megabyte, stored by a writer of the database, held a slice plot (the report, the dashboard's page of
    the study) for hours. Now each cut measures at most twice the line it makes."""
    from tunesmith.plots.records import longest_fit, wrap_to_width

    measured = 0

    def measure(text: str) -> float:
        nonlocal measured
        measured += len(text)
        if measured > 100 * 200_000:
            raise AssertionError(f"measured {measured:,} characters of a 200,000-character word")
        return float(len(text))

    word = "ab" * 100_000
    lines = wrap_to_width(f"study: {word} end", 40, measure)
    assert lines[0] == "study:" and lines[-1] == "end" and "".join(lines[1:-1]) == word
    assert all(len(line) <= 40 for line in lines)
    assert longest_fit(word, 40, len) == 40 and longest_fit(word, 40, len, 199_990) == 10
    assert longest_fit("abc", 0.5, len) == 1  # at least one: a line shows something


@pytest.mark.timeout(120)
@pytest.mark.parametrize("output", ["html", "png", "dashboard"])
def test_a_parameter_name_a_writer_made_a_megabyte_long_draws_a_slice_whose_title_is_cut_short(
    tmp_path: Path, capsys: Any, output: str
) -> None:
    """A slice's title names its parameter: a name of 10**6 characters, stored by another writer of the
    database, drew a title of 10**6 characters cut into 25,000 lines (hours, a worker thread of the
    dashboard held each time its page asked). Titles now keep their start and end, 1,200 characters in all."""
    pytest.importorskip("plotly")
    url, _ = _sqlite_study(tmp_path)
    long = "x" * 300_000
    capsys.readouterr()
    _rename_parameter(tmp_path / "shared.db", "x", long)
    if output == "dashboard":
        pytest.importorskip("starlette")
        from starlette.testclient import TestClient

        from tunesmith.dashboard import create_app, open_storage

        answer = TestClient(create_app(open_storage(url))).get("/api/studies/s/plots/slice")
        assert answer.status_code == 200, answer.text[:300]
        titles = [p["figure"]["layout"]["meta"]["title"] for p in answer.json()["plots"]]
    else:
        out = tmp_path / f"slice.{output}"
        assert main(["plot", "s", "--kind", "slice", "--storage", url, "-o", str(out)]) == 0
        assert out.stat().st_size > 0
        text = out.read_text("utf-8") if output == "html" else ""
        titles = [json.loads(t)["title"] for t in re.findall(r'"meta":(\{"title":"(?:[^"\\]|\\.)*","top":\d+\})', text)]
    if output != "png":
        assert titles and all(len(t) <= 2_000 for t in titles), [len(t) for t in titles]
        assert any(t.startswith("s: value against xxx") and "…" in t for t in titles), [t[:40] for t in titles]
    assert len(capsys.readouterr().err) < 10_000  # "wrote the slice of 's' (TITLE; ...)"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("output", ["html", "png"])
def test_two_parameter_names_of_a_megabyte_alike_in_their_ends_draw_parallel_axes_titled_short(
    tmp_path: Path, capsys: Any, output: str
) -> None:
    """Parameter names are drawn with their middle cut out unless that makes two read alike: then they were
    drawn whole. Two names of 10**6 characters a writer of the database made alike in their first and last
    characters were each cut into 3 lines of a parallel axis' title by measuring the whole name, line by line:
    an image of parallel coordinates took about 5 minutes. Such names are now cut as titles are (their start,
    "…" and their end, 1,200 characters) before their lines are made."""
    from tunesmith.plots.records import MAX_TITLE, short_labels

    url, _ = _sqlite_study(tmp_path)
    one, two = "a" * 10**6, "a" * 30 + "b" + "a" * (10**6 - 31)
    assert short_labels([one, "x"], 48)[0] == "a" * 23 + "…" + "a" * 24  # cut where the names stay apart
    shown = short_labels([one, two], 48)
    assert [len(name) for name in shown] == [MAX_TITLE] * 2 and shown[1].startswith("a" * 30 + "b"), shown
    _rename_parameter(tmp_path / "shared.db", "x", one)
    _rename_parameter(tmp_path / "shared.db", "k", two)
    capsys.readouterr()
    out = tmp_path / f"parallel.{output}"
    assert main(["plot", "s", "--kind", "parallel", "--storage", url, "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    if output == "html":
        labels = [json.loads(f'"{label}"') for label in re.findall(r'"label":"((?:[^"\\]|\\.)*)"', out.read_text("utf-8"))]
        assert len(labels) == 3 and all(len(label) < 200 and label.count("<br>") == 2 for label in labels[:2]), labels
    assert len(capsys.readouterr().err) < 10_000


@pytest.mark.timeout(120)
def test_a_parameter_name_a_writer_made_a_megabyte_long_is_written_cut_everywhere_a_file_or_a_line_shows_it(
    tmp_path: Path, capsys: Any
) -> None:
    """Past the titles, the name was written whole in the report's tables (the space, the best trials, the
    importance's hover, the list of plots not drawn), an HTML slice's x-axis title, the dashboard's plot titles,
    ``show``'s column and "nothing to draw: WHY"; an image's title of 1,200 characters took 27 lines and ran off
    its top with the start that says what the plot is. Each is now cut as the titles are (start, "…", end)."""
    pytest.importorskip("plotly")
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, open_storage
    from tunesmith.plots.mpl_render import TITLE_LINES, to_matplotlib

    url, _ = _sqlite_study(tmp_path)
    long = "x" * 300_000
    _rename_parameter(tmp_path / "shared.db", "x", long)
    capsys.readouterr()
    whole = "x" * 2_000
    assert main(["report", "s", "--storage", url, "-o", str(tmp_path / "r.html")]) == 0
    assert main(["plot", "s", "--kind", "slice", "--storage", url, "-o", str(tmp_path / "s.html")]) == 0
    assert main(["plot", "s", "--kind", "contour", "--storage", url, "-o", str(tmp_path / "c.html")]) == 1
    assert main(["show", "s", "--storage", url]) == 0
    said = capsys.readouterr()
    for name in ("r.html", "s.html"):
        assert whole not in (tmp_path / name).read_text("utf-8"), name
    assert whole not in said.out + said.err and "nothing to draw" in said.err
    answer = TestClient(create_app(open_storage(url))).get("/api/studies/s/plots/slice")
    assert answer.status_code == 200 and whole not in answer.text
    (chart, *_) = plots.slices(ts.load_study("s", url))
    ax = to_matplotlib(chart)
    try:
        title = ax.get_title().split("\n")
        assert len(title) <= TITLE_LINES and title[0].startswith("s: value against"), title[:2]
    finally:
        import matplotlib.pyplot as plt

        plt.close(ax.figure)


# -- checkpoint folders ----------------------------------------------------------------------------


def test_a_checkpoint_folder_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    """Its folder is 0700, but whoever can write the folder above can rename it and put a link
    to another folder in its place (``<temp>/tunesmith-lightning`` made first by someone else)."""
    pytest.importorskip("torch")
    from tunesmith.train import checkpoint

    shared = tmp_path / "tunesmith-lightning"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(checkpoint.CheckpointError, match="others can write.*chmod o-w"):
        checkpoint.secure_dir(shared / "study")
    os.chmod(shared, 0o1777)  # sticky, as /tmp: no one renames another's entry
    assert checkpoint.secure_dir(shared / "study").is_dir()
    os.chmod(shared, 0o775)  # a private group's folder (umask 002)
    assert checkpoint.secure_dir(shared / "study").is_dir()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
def test_a_checkpoint_folder_in_a_folder_a_primary_group_every_user_shares_may_write_is_refused() -> None:
    """A checkpoint folder's parent writable by any group was taken (a team's group, or a private one: umask
    002); where it is the user's primary group and others share it (nobody's nogroup, also _apt's and sync's;
    ``users`` elsewhere), any of them could swap the checkpoint folder for a link of theirs."""
    import grp
    import pwd
    import shutil
    import tempfile

    from conftest import said_as_nobody

    pytest.importorskip("torch")
    from tunesmith.train import checkpoint

    if len([u for u in pwd.getpwall() if u.pw_gid == 65534]) + len(grp.getgrgid(65534).gr_mem) < 2:
        pytest.skip("needs a primary group other users share")
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        os.chown(shared, 65534, 65534)

        def secure() -> None:
            checkpoint.secure_dir(shared / "study")

        shared.chmod(0o775)
        said = said_as_nobody(secure)
        assert f"is in '{shared}', which can be written by your primary group (gid 65534, mode 775), which other " \
               f"users may share: another user could swap it" in said and f"chmod g-w '{shared}'" in said, said
        shared.chmod(0o1775)  # sticky: no one renames another's entry
        assert said_as_nobody(secure) == "ok"
        shared.chmod(0o755)
        assert said_as_nobody(secure) == "ok"
    finally:
        shutil.rmtree(shared)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_checkpoint_folder_swapped_for_a_link_by_another_user_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tunesmith.train import checkpoint

    theirs = tmp_path / "tunesmith-lightning"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(checkpoint.CheckpointError, match="belongs to uid 65534"):
        checkpoint.secure_dir(theirs / "study")
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (tmp_path / "study").symlink_to(mine)
    os.lchown(tmp_path / "study", 65534, 65534)
    with pytest.raises(checkpoint.CheckpointError, match="a link of uid 65534"):
        checkpoint.secure_dir(tmp_path / "study")


def test_a_study_named_with_terminal_escapes_by_another_program_can_be_shown_and_deleted(
        tmp_path: Path, capsys: Any) -> None:
    """Names are checked when a study is made; one written under a name with control characters
    by another program could then be neither shown nor deleted ("contains the control character")."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET name = ?", (ESCAPES,))
    assert main(["show", ESCAPES, "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]52" in out
    assert main(["delete", ESCAPES, "--storage", url, "--yes"]) == 0
    assert "\x1b" not in capsys.readouterr().out
    from tunesmith.storage import make_storage

    assert make_storage(url).list_studies() == []
    with pytest.raises(ValueError, match="control character"):  # making one is refused as before
        ts.Study(SPACE, storage=url, name=ESCAPES)


def test_a_study_named_in_bytes_that_are_not_utf8_by_another_program_can_be_shown_and_deleted(
        tmp_path: Path, capsys: Any) -> None:
    """Such a name is read with U+FFFD for the bytes, so it was listed as "bad\\ufffd" but could be
    neither shown nor deleted: "no study named 'bad\\ufffd' ... (did you mean 'bad\\ufffd'?)"."""
    url, _ = _sqlite_study(tmp_path)
    ts.Study(SPACE, storage=url, name="other", sampler="random", seed=0)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET name = CAST(X'626164ff' AS TEXT) WHERE name = 's'")
    from tunesmith.storage import make_storage

    assert [r.name for r in make_storage(url).list_studies()] == ["bad\ufffd", "other"]
    assert main(["show", "bad\ufffd", "--storage", url]) == 0
    assert "study bad\ufffd" in capsys.readouterr().out
    assert main(["delete", "bad\ufffd", "--storage", url, "--yes"]) == 0
    assert [r.name for r in make_storage(url).list_studies()] == ["other"]
    ts.Study(SPACE, storage=url, name="third", sampler="random", seed=0)
    with sqlite3.connect(tmp_path / "shared.db") as db:  # two names read alike: neither is taken for the other
        db.execute("UPDATE ts_studies SET name = CAST(X'626164fe' AS TEXT) WHERE name = 'other'")
        db.execute("UPDATE ts_studies SET name = CAST(X'626164ff' AS TEXT) WHERE name = 'third'")
    assert main(["delete", "bad\ufffd", "--storage", url, "--yes"]) != 0
    assert len(make_storage(url).list_studies()) == 2


@pytest.mark.parametrize("home", ["rel/home", "."])
def test_a_relative_home_does_not_put_checkpoints_under_the_starting_folder(
        home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    import pwd

    from tunesmith.train import checkpoint

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", home)
    root = checkpoint.default_root()
    assert root.is_absolute() and root == Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache/tunesmith/checkpoints"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to make a file of another user")
@pytest.mark.parametrize("suffix", ["-wal", "-journal"])
def test_a_journal_planted_beside_the_database_by_a_user_who_cannot_write_it_is_refused(
        tmp_path: Path, suffix: str, capsys: Any) -> None:
    """In a folder where anyone may create files (/tmp), a ``db-wal`` made by another user is
    read by SQLite as part of the database and copied into it: its maker changed results they
    could not write."""
    url, study = _sqlite_study(tmp_path)
    study.storage.close()  # its WAL folded into the file and removed
    db = tmp_path / "shared.db"
    os.chmod(db, 0o644)
    planted = tmp_path / f"shared.db{suffix}"
    planted.write_bytes(b"")
    os.chown(planted, 65534, 65534)
    with pytest.raises(ts.UntrustedPathError, match=f"shared.db{suffix} belongs to uid 65534, who may not write "
                                                    "the database"):
        ts.load_study("s", url)
    assert main(["studies", "--storage", url]) != 0 and "uid 65534" in capsys.readouterr().err
    from tunesmith.storage.sql import _check_beside

    os.chmod(db, 0o666)  # a database its users share: their journals are theirs
    _check_beside(db, url)
    planted.unlink()
    assert len(ts.load_study("s", url).trials) == 3


def _a_user_of_a_group_not_their_own() -> tuple[int, int, int] | None:
    """(uid, their primary gid, another group of theirs) from the system's group database, or None."""
    import grp
    import pwd

    for group in grp.getgrall():
        for name in group.gr_mem:
            try:
                user = pwd.getpwnam(name)
            except KeyError:
                continue
            if user.pw_uid not in (0, os.getuid()) and user.pw_gid != group.gr_gid:
                return user.pw_uid, user.pw_gid, group.gr_gid
    return None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to make a file of another user")
def test_a_teammate_s_wal_with_their_own_group_is_read_and_refused_for_writing_with_the_folder_s_fix() -> None:
    """A database shared by a group, in a folder without the setgid bit: a teammate's run makes the WAL with their
    own group, which the other users of the database cannot write (SQLite: "attempt to write a readonly database").
    It was refused as made by a user "who may not write the database" (a teammate, who may), with the advice to move
    the database to a folder only its users can write (it is in one); reading commands were refused too. A user who
    may write the WAL (root here) was refused as well, with the claim that they could not."""
    import shutil
    import tempfile

    from conftest import said_as

    found = _a_user_of_a_group_not_their_own()
    if found is None:
        pytest.skip("no user of the system's group database is in a group besides their own")
    uid, own_gid, team = found
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone: the team could not reach it
    try:
        shared.chmod(0o755)
        folder = shared / "team"
        folder.mkdir()
        os.chown(folder, 0, team)
        folder.chmod(0o775)  # the team's, without the setgid bit
        url, study = _sqlite_study(folder)
        study.storage.close()
        db = folder / "shared.db"
        os.chown(db, 0, team)
        db.chmod(0o664)
        wal = folder / "shared.db-wal"
        wal.write_bytes(b"")  # as a teammate's running study leaves it (SQLite copies the database's mode)
        os.chown(wal, uid, own_gid)
        wal.chmod(0o664)
        said = said_as(65534, team, lambda: ts.load_study("s", url))  # another user of the team
        assert f"belongs to uid {uid}, a user of the database's group (gid {team}), but has their group (gid " \
               f"{own_gid})" in said and f"chgrp {team} {str(folder)!r} and chmod g+s {str(folder)!r}" in said, said
        assert said_as(65534, team, lambda: len(ts.load_study("s", ts.SQLStorage(url, read_only=True)).trials)) \
            == "ok"  # read as any reader reads it
        assert wal.exists()
        assert len(ts.load_study("s", url).trials) == 3  # root may write it: nothing to refuse (its close takes it)
        wal.write_bytes(b"")
        os.chown(wal, 65534, 65534)  # a user not in the group: as before
        with pytest.raises(ts.UntrustedPathError, match="belongs to uid 65534, who may not write the database"):
            ts.SQLStorage(url, read_only=True)
    finally:
        shutil.rmtree(shared)


def test_a_study_file_of_megabytes_is_refused_before_it_is_parsed(tmp_path: Path, capsys: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """YAML parsing is slow: a 15 MB list in a study file took 100 s and 1.6 GB to refuse."""
    import yaml

    path = tmp_path / "study.yaml"
    path.write_text("objective: x.py:f\nspace:\n  x: [" + ",".join(map(str, range(250_000))) + "]\n")
    parsed = []
    load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda *a, **kw: parsed.append(1) or load(*a, **kw))
    assert main(["run", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}"]) != 0
    assert parsed == []  # not parsed at all (before: 100 s of parsing)
    assert "more than 1,048,576 bytes; a study file holds settings" in capsys.readouterr().err


def test_a_choice_of_a_space_of_many_is_found_by_hash(tmp_path: Path) -> None:
    """Each ask maps every trial's choices to positions: a scan of 100,000 choices cost each ask
    0.3-1.2 s on a stored space of that size. The comparisons are counted (timed by
    benchmarks/bench_history.py choices)."""
    counted = ts.Space({"k": ts.Categorical([_CountedStr(f"c{i}") for i in range(100_000)])})["k"]
    _CountedStr.compared = 0
    for _ in range(20):
        assert counted.index(_CountedStr("c99999")) == 99_999
    assert _CountedStr.compared <= 20, _CountedStr.compared  # before: 100,000 a look, each choice in turn
    space = ts.Space({"k": ts.Categorical([f"c{i}" for i in range(100_000)] + [1, 2.5, (1, 2), None])})
    k = space["k"]
    assert k.index("c99999") == 99_999
    assert k.index(1.0) == 100_000 and k.index(2.5) == 100_001 and k.index([1, 2]) == 100_002
    assert k.index(None) == 100_003 and k.index(np.str_("c5")) == 5
    with pytest.raises(ValueError, match="not one of the choices"):
        k.index(True)  # equal to 1, but a bool is no number choice


def test_an_output_in_a_folder_the_user_may_not_add_files_to_is_written_in_place(tmp_path: Path) -> None:
    """A new file beside the output cannot be made there: the file itself is written, as before,
    unless another name shares it (a hard link: refused)."""
    import shutil
    import subprocess

    url, _ = _sqlite_study(tmp_path)
    folder = tmp_path / "fixed"
    folder.mkdir()
    out = folder / "out.csv"
    out.write_text("")
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("no chattr +i here to forbid new files in a folder")
    try:
        assert main(["export", "s", "--storage", url, "-o", str(out)]) == 0
        assert out.read_text().startswith("number,")
        os.link(out, tmp_path / "other")
        assert main(["export", "s", "--storage", url, "-o", str(out)]) != 0
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_stored_heartbeat_interval_of_a_nanosecond_is_refused_not_a_loop_of_writes(tmp_path: Path) -> None:
    """A worker opening a study without its own heartbeat settings beats as stored: an interval
    of 1e-9 written into the database made each worker's heartbeat thread write without pause."""
    url, study = _sqlite_study(tmp_path, heartbeat_interval=0.5)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.heartbeat.interval', 1e-9, "
                   "'$.heartbeat.grace', 1e-8)")
    with pytest.raises(ts.StorageError, match="heartbeat_interval must be at least 0.001 s"):
        ts.Study(storage=url, name="s")
    with pytest.raises(ValueError, match="at least 0.001 s"):
        ts.Study(SPACE, name="mine", heartbeat_interval=1e-9)


def test_a_heartbeat_interval_too_long_to_wait_is_refused_not_a_dead_heartbeat_thread(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """An interval of 1e300 (stored, or typed) was taken: the first trial's heartbeat thread died at once
    with "OverflowError: timestamp out of range for platform time_t", a traceback amid the run."""
    url, study = _sqlite_study(tmp_path, heartbeat_interval=0.5)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.heartbeat.interval', 1e300, "
                   "'$.heartbeat.grace', 1e301)")
    with pytest.raises(ts.StorageError, match=r"heartbeat_interval must be at most 4\.61e\+09 s, got 1e\+300"):
        ts.Study(storage=url, name="s")
    with pytest.raises(ValueError, match="heartbeat_interval must be at most"):
        ts.Study(SPACE, name="mine", heartbeat_interval=1e300)
    assert "OverflowError" not in capfd.readouterr().err


def test_the_longest_heartbeat_interval_taken_is_one_the_heartbeat_thread_can_sleep(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Before: the bound was threading.TIMEOUT_MAX (9.22e9 s) itself, and at it the heartbeat thread died at
    its first sleep with "OSError: [Errno 22] Invalid argument" (the sleep ends at the monotonic clock, counted
    from the machine's start, plus the interval: past what the clock holds), and no beat was written."""
    import threading
    import time

    with pytest.raises(ValueError, match="heartbeat_interval must be at most"):
        ts.Study(SPACE, name="mine", heartbeat_interval=threading.TIMEOUT_MAX)
    from tunesmith.study.heartbeat import MAX_INTERVAL

    def objective(t: ts.Trial) -> float:
        time.sleep(0.3)  # the heartbeat thread's first sleep has begun
        assert any(th.name == "tunesmith-heartbeat" for th in threading.enumerate())
        return t.params["x"]

    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 'long.db'}", name="s", heartbeat_interval=MAX_INTERVAL)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE
    assert "Error" not in capfd.readouterr().err


@pytest.mark.parametrize("key", ["interval", "grace"])
def test_a_stored_heartbeat_setting_beyond_a_float_is_named_not_a_traceback(
        tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: an interval or grace period of 10**400 (JSON keeps such an int whole) written into a study's
    settings ended `tunesmith show` and every open of the study with "OverflowError: int too large to convert
    to float"."""
    url, _ = _sqlite_study(tmp_path, heartbeat_interval=0.5)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute(f"UPDATE ts_studies SET config = json_set(config, '$.heartbeat.{key}', json('1{'0' * 400}'))")
    with pytest.raises(ts.StorageError, match=r"its stored heartbeat cannot be rebuilt \((heartbeat_interval|"
                                              r"grace_period) must be a number of seconds a float holds"):
        ts.Study(storage=url, name="s")
    assert main(["show", "s", "--storage", url]) == 2
    assert "a number of seconds a float holds" in capsys.readouterr().err


@pytest.mark.parametrize("requeue", ['"no"', '"false"', "0", "[]"])
def test_a_stored_requeue_that_is_not_true_or_false_is_refused_naming_the_study(
        tmp_path: Path, requeue: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a study's stored heartbeat setting ``"requeue": "no"`` (another program's, or a hand edit) was
    read by its truthiness: every worker opening the study re-queued its lost trials. Now refused, naming the
    study, the value and the fix; ``false`` itself still reads as no re-queue."""
    url, _ = _sqlite_study(tmp_path, heartbeat_interval=0.5, requeue_failed=True)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute(f"UPDATE ts_studies SET config = json_set(config, '$.heartbeat.requeue', json('{requeue}'))")
    got = repr(json.loads(requeue))
    with pytest.raises(ts.StorageError, match=rf"study 's' in sqlite:///.*its stored heartbeat cannot be rebuilt "
                                              rf"\(\"requeue\" is {re.escape(got)}, not true or false; write true"):
        ts.Study(storage=url, name="s")
    assert main(["show", "s", "--storage", url]) == 2
    assert "not true or false" in capsys.readouterr().err
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET config = json_set(config, '$.heartbeat.requeue', json('false'))")
    assert ts.Study(storage=url, name="s").heartbeat_config.requeue is False


@pytest.mark.parametrize(("marks", "why"), [
    ([[0] * 101], r" must be a list of paths \(lists of at most 100 keys and indices\), got \[\[0, 0, .*\(305 characters\)"),
    ([["shape"], ["name"]], r": the path \['name'\] marks 'abc', not a list"),
    ([["shape", 2]], r": the path \['shape', 2\] marks nothing in the value"),
    ([["name", 0]], r": the path \['name', 0\] marks nothing in the value"),
    ([["missing"]], r": the path \['missing'\] marks nothing in the value"),
    ([[0]], r": the path \[0\] marks nothing in the value"),
])
def test_a_stored_fixed_value_s_tuple_marks_that_fit_no_list_are_refused(tmp_path: Path, marks: Any, why: str) -> None:
    """Where a fixed value held tuples is stored as paths (``"tuples": [["shape"]]``). Another program's
    path of 30,000 indices took 12 s and 3.5 GB to read (each of its prefixes kept: 100,000 ran out of
    memory), and one into a string or past the value was dropped unsaid. Each is refused, naming it,
    and the study's trials are all still there."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = ts.Study({"f": ts.Fixed({"shape": (3, 4), "name": "abc"}), "x": ts.Float(0, 1)}, storage=url,
                     name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    stored = json.loads(study.space.to_json())
    assert stored["f"]["tuples"] == [["shape"]]
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_studies SET space = ?", (json.dumps({**stored, "f": {**stored["f"], "tuples": marks}}),))
    with pytest.raises(ts.StorageError, match=rf"stored space is unreadable \(parameter 'f': tuples{why}\)"):
        ts.Study.load("s", url)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        assert db.execute("SELECT count(*) FROM ts_trials").fetchone()[0] == 2
    assert ts.Space.from_json(study.space.to_json()) == study.space  # the marks tunesmith writes still read


# -- error lines -----------------------------------------------------------------------------------


def test_an_error_line_writes_the_control_characters_of_a_study_file_s_path_as_escapes(
    tmp_path: Path, capsys: Any
) -> None:
    """A study file from a shared folder naming an objective script that is not there: the error
    named the path it looked for raw ("looked for /dir/ob" ESC "[2J.py"), so the file cleared the
    screen of whoever ran it. Every error line writes control characters as escapes; its line
    breaks stay."""
    study_file = tmp_path / "s.yaml"
    study_file.write_text('name: s\nobjective: "ob\\e]52;c;aGk=\\a.py:objective"\nspace: {x: {type: float, low: 0, high: 1}}\n')
    assert main(["run", str(study_file), "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "ob\\x1b]52;c;aGk=\\x07.py" in err, err
    assert not any(c in err for c in "\x1b\x07"), err


def test_a_stored_branch_name_of_a_digit_no_int_reads_is_shown_as_stored(tmp_path: Path, capsys: Any) -> None:
    """Names of a list-of-dicts space (``0:C``, ``1:C``) are shown as ``C [branch 0]``: a stored name
    ``²:C`` (a digit to str.isdigit, none to int()) made ``show`` of the study end in a bare
    "invalid literal for int() with base 10: '²'"; it is shown as it is stored."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    space = {"branch": ts.Categorical([0, 1]), "0:C": ts.Float(0, 1, when={"branch": [0]}),
             "1:C": ts.Float(0, 1, when={"branch": [1]})}
    ts.Study(space, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: 1.0, n_trials=2)
    with sqlite3.connect(tmp_path / "b.db") as db:
        db.execute("UPDATE ts_studies SET space = replace(space, '\"0:C\"', '\"\u00b2:C\"')")
    assert main(["show", "s", "--storage", url]) == 0
    assert "invalid literal" not in capsys.readouterr().err


def test_a_deleted_study_id_written_as_a_digit_no_int_reads_blocks_no_new_study(tmp_path: Path) -> None:
    """ts_meta's largest deleted study id, read before every new study: another writer's '²' (a digit
    to str.isdigit, none to int()) made every new study of the database a bare "invalid literal for
    int()". It is read as no deleted id, as any other text there is."""
    url, _ = _sqlite_study(tmp_path)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("INSERT OR REPLACE INTO ts_meta VALUES ('deleted_study_id', '\u00b2')")
    assert ts.Study(SPACE, storage=url, name="new").name == "new"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link of another user needs root")
@pytest.mark.parametrize("through", ["chain", "folder"])
def test_a_link_of_another_user_further_on_the_way_is_not_written_through(tmp_path: Path, through: str) -> None:
    """Only the path's own last link was looked at: the user's own link to a link of another user's in a folder
    of theirs ("chain"), or a path through a folder that is their link ("folder"), wrote the study's tables into
    the file they chose, another database of this user's."""
    victim = tmp_path / "victim.db"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE mine (x)")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    if through == "chain":
        (theirs / "next.db").symlink_to(victim)
        os.lchown(theirs / "next.db", 65534, 65534)
        path = tmp_path / "mine.db"
        path.symlink_to(theirs / "next.db")  # the user's own link
        leads = theirs / "next.db"
    else:
        (theirs / "dir").symlink_to(tmp_path)
        os.lchown(theirs / "dir", 65534, 65534)
        path = theirs / "dir" / "victim.db"
        leads = theirs / "dir"
    with pytest.raises(ts.UntrustedPathError, match=rf"{path} leads through {leads}, a link owned by another user "
                                                   rf"\(uid 65534\), who chose where it leads \({victim}\)"):
        ts.Study(SPACE, storage=f"sqlite:///{path}", name="s")
    with sqlite3.connect(victim) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
    os.lchown(leads, 0, 0)  # root's links (as the system's own): followed, as before
    ts.Study(SPACE, storage=f"sqlite:///{path}", name="s")
    assert ts.storage.make_storage(f"sqlite:///{victim}").list_studies()[0].name == "s"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link of another user needs root")
def test_links_on_the_way_are_followed_as_the_system_follows_them(tmp_path: Path, monkeypatch: Any) -> None:
    """``link/..`` is the link target's parent, not the link's folder; a loop of links ends; a relative path
    from a working folder that was deleted names nothing."""
    from tunesmith.paths import foreign_link_on

    (tmp_path / "theirs" / "deep").mkdir(parents=True)
    (tmp_path / "theirs" / "x").symlink_to(tmp_path / "victim")
    os.lchown(tmp_path / "theirs" / "x", 65534, 65534)
    (tmp_path / "a").symlink_to(tmp_path / "theirs" / "deep")
    assert foreign_link_on(tmp_path / "a" / ".." / "x") == (tmp_path / "theirs" / "x", 65534)
    assert foreign_link_on(tmp_path / "x") is None  # what a lexical "a/.." would have looked at
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert foreign_link_on(tmp_path / "loop" / "y") is None  # opening it fails (ELOOP)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert foreign_link_on("x") is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to make a file of another user")
def test_a_wal_planted_after_the_storage_was_made_and_before_it_connects_is_refused(tmp_path: Path) -> None:
    """The journals beside the database were looked at when the storage was made, and SQLite opens them at
    its first read, later (``Study(...)`` then ``optimize``, the dashboard, a forked worker's connection): another
    user's WAL planted in between was read as part of the database. Here it changes trial 0's value to -1e9
    (made as the attacker would: a copy of the database, changed under a connection kept open, its WAL taken)."""
    import shutil

    from tunesmith.storage import SQLStorage

    url, study = _sqlite_study(tmp_path)
    study.storage.close()
    db = tmp_path / "shared.db"
    os.chmod(db, 0o644)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    shutil.copy(db, theirs / "copy.db")
    held = sqlite3.connect(theirs / "copy.db")
    held.execute("PRAGMA journal_mode=WAL")
    held.execute("PRAGMA wal_autocheckpoint=0")
    held.execute("UPDATE ts_trials SET value = -1e9 WHERE number = 0")
    held.commit()
    wal = (theirs / "copy.db-wal").read_bytes()
    held.close()
    planted = tmp_path / "shared.db-wal"
    armed = [True]

    def plant(event: str, args: tuple[Any, ...]) -> None:  # as SQLite opens the file, after the storage's look
        if event == "sqlite3.connect" and armed and str(args[0]) == str(db):
            armed.clear()
            planted.write_bytes(wal)
            os.chown(planted, 65534, 65534)

    sys.addaudithook(plant)  # stays for the session, disarmed after its one plant
    with pytest.raises(ts.UntrustedPathError, match="shared.db-wal belongs to uid 65534, who may not write"):
        SQLStorage(url)  # its schema read at once: SQLite opens the planted WAL
    assert not armed
    planted.unlink()
    assert sorted(t.value for t in ts.load_study("s", url).trials) == sorted(t.value for t in study.trials)
    assert min(t.value for t in study.trials) > -1  # the database kept what it held


# -- held trials (system.held) -------------------------------------------------------------------


def _held_study(tmp_path: Path, held: str, copies: int = 1) -> str:
    """A SQLite study of 3 complete trials and ``copies`` paused ones at step 1 whose ``system.held`` a writer of
    the database set to ``held`` (rows written as another program would: SQL, no tunesmith)."""
    url, study = _sqlite_study(tmp_path)
    study.add_trial({"x": 0.5, "k": "a"}, state="pruned", intermediate={1: 0.3})
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET state = 'paused', system = ? WHERE number = 3", (json.dumps({"held": held}),))
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 4 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO ts_trials (study_id, number, state, params, value, intermediate, attrs, system, token, started) "
            "SELECT study_id, i, state, params, value, intermediate, attrs, system, lower(hex(randomblob(16))), started "
            "FROM ts_trials, n WHERE number = 3 AND ? > 1", (copies + 2, copies))
    return url


@pytest.mark.parametrize("top", ["10", "1"])  # every trial read whole; the heads, and the held trials by the storage
def test_show_names_a_held_trial_s_stored_signal_literally(tmp_path: Path, capsys: Any, top: str) -> None:
    """``show`` names what stopped each held trial from its ``system.held`` (``interrupted (SIGHUP)``: "stopped by
    SIGHUP"), which a writer of the database can set: rich markup in it ("[/bold]") failed ``show`` with a
    MarkupError, and escapes in it reached the terminal (the clipboard written, the screen cleared)."""
    url = _held_study(tmp_path, "interrupted (\x1b]52;c;cHduZWQ=\x07\x1b[2J[/bold][link=file:///etc]x)")
    assert main(["show", "s", "--storage", url, "--top", top]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "#3 stopped by \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J[/bold][link=file:///etc]x" in out, out
    assert not any(c in out for c in "\x1b\x07"), out


class _CountedRow(tuple):
    """A row of ``Storage.get_last_steps`` (state, step) that counts how often it is compared."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountedRow.compared += 1
        return tuple(self) == other

    __hash__ = tuple.__hash__


def test_the_budget_line_counts_many_held_trials_in_linear_time(tmp_path: Path) -> None:
    """``show``'s budget line counts each held trial as running: each looked for its paused row from the start of
    the rows (``in``, then ``index``), so 20,000 held trials a writer of the database made took 26 s, 100,000 about
    ten minutes. Here the rows of a real study of 2,000 held trials, each counting how often it is compared."""
    from tunesmith.report import budget_of_steps, unheld

    url = _held_study(tmp_path, "interrupted (KeyboardInterrupt)", copies=2000)
    with sqlite3.connect(tmp_path / "shared.db") as db:  # 2,000 pruned trials before them, each at step 1
        db.execute("UPDATE ts_trials SET number = number + 2000 WHERE state = 'paused'")
        db.execute("WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 2002) "
                   "INSERT INTO ts_trials (study_id, number, state, params, value, intermediate, attrs, token, started) "
                   "SELECT study_id, i, 'pruned', params, value, intermediate, attrs, lower(hex(randomblob(16))), started "
                   "FROM ts_trials, n WHERE number = 2003")
    storage = ts.load_study("s", url).storage
    sid = storage.get_study("s").study_id
    held = storage.get_held(sid)
    rows = [_CountedRow(row) for row in storage.get_last_steps(sid)]
    _CountedRow.compared = 0  # the class's count: this run's alone (a rerun in one process)
    assert len(held) == 2000 and len(rows) == 4000
    out = unheld(rows, held)
    assert _CountedRow.compared <= 10 * len(rows), _CountedRow.compared  # 8,000,000 with a look from the start each
    assert out == [(ts.TrialState.PRUNED, 1)] * 2000 + [(ts.TrialState.RUNNING, 1)] * 2000
    assert budget_of_steps(out).startswith("4,000 steps trained by 4,000 trials; 2,000 stopped early")  # not 4,000 stopped


def test_the_held_trials_are_read_at_once_not_one_read_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Storage.get_held`` (``show`` with more trials than ``--top``) read each held trial by itself: 20,000 held
    trials a writer of the database made took 12 s of ``show``'s 18. Now the paused trials' ``system`` column, then
    the held ones whole in one transaction (512 a statement)."""
    url = _held_study(tmp_path, "interrupted (SIGTERM)", copies=600)
    storage = ts.load_study("s", url).storage
    sid = storage.get_study("s").study_id
    reads: list[int] = []
    real = ts.SQLStorage._tx
    monkeypatch.setattr(ts.SQLStorage, "_tx", lambda self, fn, *, write: reads.append(write) or real(self, fn, write=write))
    held = storage.get_held(sid)
    assert [t.number for t in held] == list(range(3, 603)) and {t.system.held for t in held} == {"interrupted (SIGTERM)"}
    assert len(reads) <= 2, len(reads)  # 601 before


def test_show_names_a_few_of_the_held_trials_stored_signals_and_counts_the_rest(tmp_path: Path, capsys: Any) -> None:
    """Each held trial's signal is read from the database: 20,000 held trials a writer gave each its own (of 1,000
    characters) made ``show`` print a line of 20 MB naming every one. It names four (Ctrl-C, SIGTERM, SIGHUP and a
    dead worker are all tunesmith writes), then counts the others."""
    url = _held_study(tmp_path, "interrupted (SIGTERM)", copies=30)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET system = json_object('held', 'interrupted (S' || number || ')') "
                   "WHERE state = 'paused' AND number > 3")
    assert main(["show", "s", "--storage", url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "#3 stopped by SIGTERM; #4 stopped by S4; #5 stopped by S5; #6 stopped by S6; #7, #8, " in out, out
    assert "#26, ... held for 26 other reasons" in out and "S7" not in out, out


def test_show_counts_a_dead_worker_s_held_trials_past_four_signals_as_held_for_another_reason(
        tmp_path: Path, capsys: Any) -> None:
    """Past the four reasons ``show`` names, the held trials are counted: a trial whose worker died (its
    ``system.held`` no interrupt) after four signals a writer of the database gave others was counted as
    "stopped by 1 other signals"."""
    url = _held_study(tmp_path, "interrupted (SIGTERM)", copies=5)
    with sqlite3.connect(tmp_path / "shared.db") as db:
        db.execute("UPDATE ts_trials SET system = json_object('held', 'interrupted (S' || number || ')') "
                   "WHERE state = 'paused' AND number BETWEEN 4 AND 6")
        db.execute("UPDATE ts_trials SET system = json_object('held', 'lost worker') WHERE number = 7")
    assert main(["show", "s", "--storage", url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "#6 stopped by S6; #7 held for 1 other reason" in out and "signal" not in out, out


def test_show_says_a_trial_held_as_its_worker_ended_before_the_interrupt_as_such(tmp_path: Path, capsys: Any) -> None:
    """The interrupt holds the trial of a worker that had ended just before it ("interrupted (worker exit code
    -9)"): show said "#3 stopped by worker exit code -9", as if a signal of that name had stopped it."""
    url = _held_study(tmp_path, "interrupted (worker exit code -9)", copies=1)
    assert main(["show", "s", "--storage", url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "#3 whose worker ended (exit code -9) as the run was interrupted" in out, out
    assert "stopped by worker" not in out, out


def test_grid_points_whose_claims_a_database_writer_moved_onto_other_trials_end_the_ask_with_an_error(
    shared_storage_url: str,
) -> None:
    """A writer of the database gives the claims of every untried grid point to copies of a tried trial (parameters
    in the space: nothing warns of them). The grid keeps proposing those points (their parameters are untried) and
    each write, its pick and the three points after it (``Suggestion.then``, ``Storage.create_first_free``), finds
    every claim held: the ask stops after its bounded number of proposals with an error, writing no trial, rather
    than asking forever. SQLite and PostgreSQL alike."""
    import sqlalchemy as sa

    url = shared_storage_url
    study = ts.Study({"a": ts.Int(0, 3), "b": ts.Int(0, 3)}, storage=url, name="g", sampler="grid", seed=0)
    study.optimize(lambda t: 0.0, n_trials=4)
    untried = sorted({study.space.key(c) for c in study.sampler.grid(study.space)}
                     - {study.space.key(t.params) for t in study.trials})
    assert len(untried) == 12
    engine = sa.create_engine(url)
    with engine.begin() as c:  # as another program writes them
        row = dict(c.execute(sa.text("SELECT * FROM ts_trials WHERE number = 0")).mappings().one())
        row.pop("trial_id")
        for n, key in enumerate(untried, start=4):
            c.execute(sa.text(f"INSERT INTO ts_trials ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"),
                      {**row, "number": n, "claim": key, "token": f"planted-{n}"})
    engine.dispose()
    opened = ts.load_study("g", url)
    with pytest.raises(RuntimeError, match="proposed 1000 configurations in a row that trials of study 'g' already"):
        opened.ask()
    assert len(ts.load_study("g", url).trials) == 16
