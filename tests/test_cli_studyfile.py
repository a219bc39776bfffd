"""The one study-file parser of ``run`` and ``worker``: what each command accepts, and its errors.

Several cases were accepted by only one of the two former parsers (``run``'s
and the worker's); each such case has a test here.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import tunesmith as ts
from tunesmith import Study
from tunesmith.cli import main
from tunesmith.cli.launch import open_study
from tunesmith.cli.studyfile import StudyFile, StudyFileError, load_objective
from tunesmith.storage.base import who
from tunesmith.study.heartbeat import HeartbeatConfig
from tunesmith.trial import TrialState

OBJ = "def f(trial):\n    return (trial.params['x'] - 0.25) ** 2\n"
SPACE = "space: {x: {type: float, low: 0, high: 1}}\n"


@pytest.fixture(autouse=True)
def quiet() -> object:
    ts.set_verbosity("WARNING")
    yield None
    ts.set_verbosity("INFO")


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# -- errors -----------------------------------------------------------------------------------------


def test_study_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "name: s\nstorage: memory\nobjective: m:f\n")
    assert main(["worker", str(bad)]) == 2
    assert "storage must be a URL, not 'memory'" in capsys.readouterr().err
    write(tmp_path, "name: s\nobjective: m:f\n")
    assert main(["worker", str(bad)]) == 2
    assert "missing key(s) ['storage']; workers share a study through a database" in capsys.readouterr().err
    write(tmp_path, "name: s\nstorage: sqlite:///x.db\n")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['objective'\]"):
        StudyFile.load(bad)
    write(tmp_path, "name: s\nstorage: sqlite:///x.db\nobjective: m:f\ncolour: 3\nseeds: 1\n")
    with pytest.raises(ValueError, match=r"unknown keys \['colour', 'seeds'\] \(did you mean 'seeds' -> 'seed'\?\)"):
        StudyFile.load(bad)
    with pytest.raises(ValueError, match="does not exist"):
        StudyFile.load(tmp_path / "none.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")  # planted in a shared folder: refused unread, not said missing
    with pytest.raises(ValueError, match="'.*fifo.yaml' is a FIFO, not a regular file"):
        StudyFile.load(tmp_path / "fifo.yaml")
    with pytest.raises(ValueError, match="is a folder"):
        StudyFile.load(tmp_path)
    with pytest.raises(StudyFileError, match="study file 'a\\\\x00b.yaml' cannot be read: embedded null byte"):
        StudyFile.load("a\0b.yaml")  # the path is named, as when the check before the open said it did not exist
    with pytest.raises(ValueError, match="module:function"):
        load_objective("no_colon")
    assert main(["worker", str(tmp_path / "none.yaml")]) == 2


def test_a_study_file_is_opened_before_it_is_looked_at_so_a_fifo_never_blocks(tmp_path: Path) -> None:
    """load checked that the path was a regular file, then opened it: a FIFO swapped in between blocked
    the read for good. The file is opened first (non-blocking) and the open file is looked at."""
    import socket

    from conftest import ended_without_blocking

    from tunesmith.paths import NotRegularFile, read_regular

    fifo = tmp_path / "swapped.yaml"
    os.mkfifo(fifo)
    seen = ended_without_blocking(lambda: read_regular(fifo, 100), fifo, "opening a FIFO")  # no check before it
    assert len(seen) == 1 and isinstance(seen[0], NotRegularFile) and seen[0].kind == "a FIFO"
    with pytest.raises(ValueError, match="'/dev/null' is a character device, not a regular file"):
        StudyFile.load("/dev/null")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.yaml"))
        with pytest.raises(ValueError, match="s.yaml' is a socket, not a regular file"):
            StudyFile.load(tmp_path / "s.yaml")


def test_the_export_check_opens_before_it_looks_so_a_fifo_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export -o X` asks whether X is a SQLite database: it checked is_file() and then opened, so a
    FIFO swapped in between blocked the command. is_file() answers True here, as at the swap."""
    from conftest import ended_without_blocking

    from tunesmith.cli.commands import _is_database

    fifo = tmp_path / "swapped.db"
    os.mkfifo(fifo)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    assert ended_without_blocking(lambda: _is_database(str(fifo)), fifo, "the database check") == [False]


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("requeue_failed: sometimes", "requeue_failed must be true or false, got 'sometimes'"),
        ("heartbeat_interval: often", "heartbeat_interval must be a positive, finite number of seconds"),
        ("executor: gpu", "executor must be one of ['inline', 'thread', 'process', 'ray'], got 'gpu'"),
        ("resources_per_trial: {cpu: lots}", "resources_per_trial must map resource names to numbers"),
        ("trials_per_gpu: 0", "trials_per_gpu must be an integer >= 1, got 0"),
        ("seed: -1", "seed must be an integer >= 0, got -1"),  # was the sampler's error, naming no file
        ("gpus: [0.5]", "gpus must be a device count, ids like '0,1', or a list of ids"),
        ("storage: ''", "storage must be a database URL"),
        ("space: [x, y]", "space must be a mapping of parameter name -> definition"),
        ("space: {lr: {typ: float, low: 0, high: 1}}",  # was taken as a fixed dict: every trial failed
         "space: parameter 'lr': unknown key 'typ' (did you mean 'type'?); a definition needs a 'type'"),
        ("space: {lr: {low: 0, high: 1}}", "space: parameter 'lr': a definition needs a 'type'"),
        ("space: {lr: {type: float, low: 0, high: 1, logg: true}}",
         "space: parameter 'lr': unknown key 'logg' in a float parameter (did you mean 'log'?)"),
        ("space: {n: {type: integer, low: 0, high: 1}}",
         "space: parameter 'n': unknown parameter type 'integer' (did you mean 'int'?)"),
        ("space: {k: {type: categorical, choice: [a, b]}}", "unknown key 'choice' in a categorical parameter "
         "(did you mean 'choices'?)"),
        ("direction: minimise", "got 'minimise' (did you mean 'minimize'?)"),
        # before: refused by the study after its database file was created, naming no file
        ("requeue_failed: true", "grace_period and requeue_failed need heartbeats"),
        ("heartbeat_interval: 5\ngrace_period: 5", "grace_period (5) must be longer than heartbeat_interval (5)"),
        # YAML 1.1 reads a float without a dot and a signed exponent as text: "got '1e3'" looked like a number
        ("timeout: 1e3", "got '1e3' (YAML reads 1e3 as text, not a number: write 1000)"),
        ("heartbeat_interval: 1e-05", "got '1e-05' (YAML reads 1e-05 as text, not a number: write 1.0e-05)"),
        ("n_trials: 2e2", "n_trials must be an integer >= 0, got '2e2' (YAML reads 2e2 as text, not a number: write 200)"),
        # before: "YAML reads 1000 as text, not a number: write 1000", as written
        ("timeout: '1000'", "got '1000' (quoted, so read as text: write 1000 without quotes)"),
        ("heartbeat_interval: \"1.0e-05\"", "got '1.0e-05' (quoted, so read as text: write 1.0e-05 without quotes)"),
        # before: "YAML reads 1.50 as text, not a number: write 1.5", though 1.50 unquoted is a number
        ("timeout: '1.50'", "got '1.50' (quoted, so read as text: write 1.50 without quotes)"),
        ("timeout: ' 2.0 '", "got ' 2.0 ' (quoted, so read as text: write 2.0 without quotes)"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, fragment: str) -> None:
    path = write(tmp_path, f"objective: obj.py:f\n{SPACE if 'space' not in line else ''}{line}\n")
    with pytest.raises(StudyFileError, match="^" + re.escape(str(path))) as err:
        StudyFile.load(path)
    assert fragment in str(err.value)


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", "1e400"])
def test_a_text_that_is_no_finite_number_gets_no_spelling_to_write(tmp_path: Path, value: str) -> None:
    # before: "(YAML reads inf as text, not a number: write inf)", which YAML reads as text too
    path = write(tmp_path, f"objective: obj.py:f\n{SPACE}timeout: {value}\n")
    with pytest.raises(StudyFileError) as err:
        StudyFile.load(path)
    assert str(err.value).endswith(f"got {value!r}")


def test_a_study_file_without_n_trials_or_timeout_says_how_it_ends_and_how_to_bound_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Neither n_trials nor timeout: the note said "running until the search is exhausted or Ctrl-C" of a
    random search too, which is never exhausted, and not how to make it stop on its own."""
    (tmp_path / "obj.py").write_text("def f(trial):\n    if trial.number == 2:\n        raise KeyboardInterrupt\n"
                                     "    return trial.params['x']\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = write(tmp_path, f"name: r\nobjective: obj.py:f\nsampler: random\n{SPACE}")
    assert main(["run", str(path), "--storage", url, "--no-progress"]) == 130  # Ctrl-C, as the note says
    assert (f"note: {path} sets no n_trials or timeout: running until Ctrl-C; to stop on its own, write "
            "n_trials: 100 or timeout: 3600 (seconds) in it, or pass --n-trials 100") in capsys.readouterr().err
    path = write(tmp_path, "name: g\nobjective: obj.py:f\nsampler: grid\nspace: {x: [0.1, 0.2]}\n")
    assert main(["run", str(path), "--storage", url, "--no-progress"]) == 0
    assert "note: no n_trials or timeout: running until every point of the grid is tried, or Ctrl-C" in (
        capsys.readouterr().err)
    assert len(ts.load_study("g", url).trials) == 2


def test_a_worker_takes_its_storage_from_the_command_line(tmp_path: Path) -> None:
    # so that a password comes from the environment, not a shared file; before: "unrecognized arguments"
    (tmp_path / "obj.py").write_text(OBJ)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    path = write(tmp_path, f"name: w\nobjective: obj.py:f\n{SPACE}")
    assert main(["worker", str(path), "--storage", url, "--n-trials", "2"]) == 0
    assert len(ts.load_study("w", url).trials) == 2
    # a second study of the same file (`tunesmith run FILE --name w2`) takes workers too; before:
    # "unrecognized arguments: --name", and only an edited copy of the file could join it
    assert main(["run", str(path), "--storage", url, "--name", "w2", "--n-trials", "1", "--no-progress"]) == 0
    assert main(["worker", str(path), "--storage", url, "--name", "w2", "--n-trials", "2"]) == 0
    assert len(ts.load_study("w2", url).trials) == 3 and len(ts.load_study("w", url).trials) == 2


def _machine(folder: Path, url: str, source: bytes, objective: str = "obj.py:f") -> Path:
    """A machine's own copy of the objective (``obj.py``) and of a study file naming ``url``."""
    folder.mkdir()
    (folder / "obj.py").write_bytes(source)
    return write(folder, f"name: w\nstorage: {url}\nobjective: {objective}\n{SPACE}")


def _worker_log(caplog: pytest.LogCaptureFixture, study_file: Path) -> str:
    """What ``tunesmith worker STUDY_FILE --n-trials 1`` logged."""
    caplog.clear()
    assert main(["worker", str(study_file), "--n-trials", "1"]) == 0
    return caplog.text


def test_workers_whose_copies_of_the_objective_differ_are_warned(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Two machines, each with its own copy of the study file and objective, one edited: the
    study ranked the results of both codes together and nothing said so."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    folders = {machine: _machine(tmp_path / machine, url, code.encode())
               for machine, code in (("a", OBJ), ("b", OBJ.replace("** 2", "** 2 * 100")))}

    def worker(machine: str) -> str:
        return _worker_log(caplog, folders[machine])

    assert "other code for its objective" not in worker("a") + worker("a")  # the same code: nothing said
    said = worker("b")
    assert "study 'w' was last run with other code for its objective: obj.py" in said and "--name NEW" in said
    assert "other code for its objective" in worker("a")  # the old copy again: the other way round
    assert ts.load_study("w", url).storage.get_study("w").config["objective_code"]["file"] == "obj.py"


def test_a_copy_that_differs_in_comments_and_layout_only_is_not_warned_another_function_is(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The digest was of the file's bytes: a copy checked out with CRLF, reindented or with a comment
    edited warned "other code" for the same code; a copy naming another function of the same file
    (obj.py:g for obj.py:f) was taken for the same objective. A study the API created, then run by
    ``worker``, is recorded without a word; an objective given as a module is digested the same."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="w", sampler="random").optimize(lambda t: 0.0, n_trials=1)
    code = OBJ + "def g(trial):\n    return trial.params['x']\n"
    layout = ("# the team's objective\r\n" + code.replace("    ", "\t").replace("\n", "  # edited\n\n")
              .replace("\n", "\r\n")).encode()
    (tmp_path / "pkg" / "objpkg").mkdir(parents=True)
    (tmp_path / "pkg" / "objpkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "objpkg" / "obj.py").write_text(code)
    folders = {"pkg": write(tmp_path / "pkg", f"name: w\nstorage: {url}\nobjective: objpkg.obj:f\n{SPACE}")}
    for machine, source, function in (("a", code.encode(), "f"), ("b", layout, "f"), ("c", code.encode(), "g")):
        folders[machine] = _machine(tmp_path / machine, url, source, f"obj.py:{function}")

    def worker(machine: str) -> str:
        return _worker_log(caplog, folders[machine])

    assert "other code" not in worker("a") + worker("b") + worker("pkg") + worker("a")
    said = worker("c")
    assert "other code for its objective: obj.py:f (sha256" in said and "then, obj.py:g (sha256" in said, said
    stored = ts.load_study("w", url).storage.get_study("w").config["objective_code"]
    assert stored["file"] == "obj.py" and stored["function"] == "g"


def test_a_local_module_the_objective_imports_edited_on_one_machine_is_warned_naming_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The digest covered the objective's own file: a helper module beside it (``helpers.py``, a local
    package's module imported inside the function), edited on one machine, went unseen. Each local module
    the file imports, and those they import, is digested too, and the warning names the files that differ;
    an installed package's module (the same name as no file beside it) is not."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    code = ("import json\nfrom helpers import scale\n\ndef f(trial):\n    from lib import util\n"
            "    return util.shift(scale(trial.params['x']))\n")
    folders = {}
    for machine, factor, offset in (("a", "2.0", "1.0"), ("b", "2.0", "1.0"), ("c", "3.0", "1.0"), ("d", "2.0", "5.0")):
        folders[machine] = _machine(tmp_path / machine, url, code.encode())
        (tmp_path / machine / "helpers.py").write_text(f"def scale(x):\n    return x * {factor}\n")
        (tmp_path / machine / "lib").mkdir()
        (tmp_path / machine / "lib" / "__init__.py").write_text("")
        (tmp_path / machine / "lib" / "util.py").write_text("from .const import OFFSET\ndef shift(x):\n    return x + OFFSET\n")
        (tmp_path / machine / "lib" / "const.py").write_text(f"OFFSET = {offset}\n")
    (tmp_path / "b" / "json.py").write_text("# not the json imported: an installed module's name\n")

    def worker(machine: str) -> str:
        return _worker_log(caplog, folders[machine])

    assert "other code" not in worker("a") + worker("b")
    said = worker("c")
    assert "other code for its objective" in said and "(files that differ: helpers.py)" in said, said
    said = worker("d")  # a module the local package's module imports
    assert "(files that differ: helpers.py, lib/const.py)" in said, said
    stored = ts.load_study("w", url).storage.get_study("w").config["objective_code"]
    assert sorted(stored["files"]) == ["helpers.py", "lib/__init__.py", "lib/const.py", "lib/util.py", "obj.py"]


def test_a_study_last_run_before_local_modules_were_covered_is_told_so_once_not_warned_of_other_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A study whose record an earlier tunesmith wrote (the objective's file digest alone, no ``files``) run
    now with an objective that imports a local module: the digests differ though no code did, and the user
    was warned "last run with other code", which sent them hunting for an edit. An unchanged file is said
    once as an info line (the modules now covered); a changed file is warned of, naming it."""
    from tunesmith.code import code_digest
    from tunesmith.study.manage import record_objective_code

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    code = b"from helpers import scale\n\ndef f(trial):\n    return scale(trial.params['x'])\n"
    study_file = _machine(tmp_path / "a", url, code)
    (tmp_path / "a" / "helpers.py").write_text("def scale(x):\n    return x * 2.0\n")
    ts.set_verbosity("INFO")
    assert "other code" not in _worker_log(caplog, study_file)
    record_objective_code(ts.load_study("w", url), "obj.py", "f", code_digest(code))  # as the earlier one did
    said = _worker_log(caplog, study_file)
    assert "other code" not in said and "objective obj.py:f is unchanged since it last ran" in said, said
    assert "also covers the local modules it imports (helpers.py)" in said, said
    assert "unchanged since" not in _worker_log(caplog, study_file)  # once: the files are recorded now
    record_objective_code(ts.load_study("w", url), "obj.py", "f", code_digest(code + b"# a comment\nX = 1\n"))
    said = _worker_log(caplog, study_file)
    assert "other code for its objective" in said and "unchanged since" not in said, said
    assert "(files that differ: obj.py; the modules it imports were not recorded then)" in said, said


def test_a_crlf_checkout_of_local_modules_past_the_tokenized_budget_is_the_same_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past ``MODULES_TOKENIZED`` bytes of local modules the rest were digested by their bytes, counted with
    their line endings: a Windows checkout (CRLF) of the same project warned "other code", naming modules no
    one edited. Line endings are the same code there too; an edit past the budget still is not."""
    from tunesmith.code import MODULES_TOKENIZED

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    code = "from big import A\nfrom small import scale\n\ndef f(trial):\n    return scale(trial.params['x']) + A\n"
    big = "A = 1\n" + "".join(f"B{i} = {i}  # a line of data\n" for i in range(MODULES_TOKENIZED // 20))
    small = "def scale(x):\n    return x * 2.0\n"
    folders = {}
    for machine, newline, edit in (("lf", "\n", ""), ("crlf", "\r\n", ""), ("edited", "\n", "C = 3\n")):
        folders[machine] = _machine(tmp_path / machine, url, code.replace("\n", newline).encode())
        (tmp_path / machine / "big.py").write_bytes(big.replace("\n", newline).encode())
        (tmp_path / machine / "small.py").write_bytes((small + edit).replace("\n", newline).encode())
    assert len(big) > MODULES_TOKENIZED
    said = _worker_log(caplog, folders["lf"]) + _worker_log(caplog, folders["crlf"])
    assert "other code" not in said, said
    said = _worker_log(caplog, folders["edited"])
    assert "(files that differ: small.py)" in said, said


@pytest.mark.timeout(120)
def test_the_import_finder_reads_imports_as_python_writes_them_and_never_stops_the_run(tmp_path: Path) -> None:
    """Imports the finder missed: a name after a comment inside brackets, a module named in another script
    (``from café import x``), ``from . x import y`` and ``from.x import y``, a second statement after ``;``.
    A name too long for a file name (or a folder this user may not enter) raised OSError out of
    ``Path.is_file`` and stopped ``tunesmith run``; now it is no module. A file over 1 MB is digested, not
    followed. A long line of dots or spaces after ``from`` took the regular expression time quadratic in
    its length (70 s for 64 KB): ``tunesmith run`` hung. Nothing is imported or run: each module writes a
    file if it is."""
    from tunesmith.code import MAX_TOKENIZED, local_modules

    ran = tmp_path / "ran"
    body = f"open({str(ran)!r}, 'w').close()\n"
    files = {
        "obj.py": "from pkg import (\n    a,  # the first\n    b,\n)\nfrom café import x\nfrom . rel import y\n"
                  "from.other import z\nimport os; import semi\nimport " + "n" * 300 + "\nimport big\n",
        "pkg/__init__.py": body, "pkg/a.py": body, "pkg/b.py": body, "café.py": body, "rel.py": body,
        "other.py": "from " + "." * 200_000 + " x\nfrom" + " " * 200_000 + "y\nimport odd\n" + body,
        "semi.py": body, "odd.py": body,
        "big.py": "import tail\n" + "X = 1\n" * (MAX_TOKENIZED // 6 + 1), "tail.py": body,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    found = sorted(path.relative_to(tmp_path).as_posix() for path in local_modules(tmp_path / "obj.py", tmp_path))
    assert found == ["big.py", "café.py", "odd.py", "other.py", "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "rel.py",
                     "semi.py"]
    assert not ran.exists()


def test_a_study_under_the_home_folder_is_resumed_without_its_space(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # before: "missing key(s) ['space']: there is no study": the file check did not expand "~"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "obj.py").write_text(OBJ)
    ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'home.db'}", name="h")
    path = write(tmp_path, "name: h\nobjective: obj.py:f\nstorage: sqlite:///~/home.db\n")
    assert main(["worker", str(path), "--n-trials", "1"]) == 0
    assert len(ts.load_study("h", f"sqlite:///{tmp_path / 'home.db'}").trials) == 1


def test_a_missing_gpu_names_the_study_file_key_that_allows_it(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # before: only "pass allow_missing_gpus=True", the Python argument
    (tmp_path / "obj.py").write_text(OBJ)
    path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'g.db'}\n{SPACE}gpus: [97]\n")
    assert main(["run", str(path), "--n-trials", "1"]) == 2
    assert "(in a study file, allow_missing_gpus: true)" in capsys.readouterr().err


def test_a_negative_n_trials_is_refused_before_the_study_is_created(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # before: the study was created in the database, then optimize refused the count, unnamed
    (tmp_path / "obj.py").write_text(OBJ)
    db = tmp_path / "db.db"
    path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{db}\n{SPACE}n_trials: -2\n")
    assert main(["worker", str(path)]) == 2
    assert f"{path}: n_trials must be an integer >= 0, got -2" in capsys.readouterr().err
    write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{db}\n{SPACE}")
    assert main(["run", str(path), "--n-trials", "-3"]) == 2
    assert "command line: --n-trials must be an integer >= 0, got -3" in capsys.readouterr().err  # the flag given
    assert not db.exists()


@pytest.mark.parametrize(("choices", "said"), [
    ("[2024-01-01, 2024-06-01]", "datetime.date(2024, 1, 1) is a date (YAML reads an unquoted date as one: quote it)"),
    ("[!!binary aGk=, b]", "b'hi' is of type bytes"),
])  # fmt: skip
def test_a_choice_json_cannot_store_is_refused_before_the_study_is_created(
        tmp_path: Path, choices: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the space was stored with each such choice as its repr ("datetime.date(2024, 1, 1)"), then
    the first trial failed with "Object of type date is not JSON serializable"; a run of the file
    again found "a different space"."""
    (tmp_path / "obj.py").write_text("def f(trial):\n    return 0.0\n")
    url = f"sqlite:///{tmp_path / 'db.db'}"
    path = write(tmp_path, f"objective: obj.py:f\nn_trials: 2\nspace: {{cut: {{type: categorical, choices: {choices}}}}}\n")
    assert main(["run", str(path), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert f"parameter 'cut': {said}" in err and "not JSON serializable" not in err
    assert ts.storage.make_storage(url).list_studies() == []


def test_an_integer_of_thousands_of_digits_names_the_study_file(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # before: int()'s "Exceeds the limit (4300 digits) ...; use sys.set_int_max_str_digits()", naming no file
    path = write(tmp_path, f"objective: obj.py:f\n{SPACE}n_trials: {'9' * 5000}\n")
    assert main(["run", str(path), "--storage", f"sqlite:///{tmp_path / 'db.db'}"]) == 2
    assert f"{path}: not valid YAML: a value cannot be read (Exceeds the limit" in capsys.readouterr().err
    write(tmp_path, f"objective: obj.py:f\n{SPACE}name: 2024-13-45\n")
    assert main(["run", str(path), "--storage", f"sqlite:///{tmp_path / 'db.db'}"]) == 2
    assert f"{path}: not valid YAML: a value cannot be read (month must be in 1..12)" in capsys.readouterr().err


def test_a_value_yaml_cannot_read_is_said_as_yaml_s_error_by_every_reader(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Before: only a study file named it; `copy --fill wd=2024-13-45` said "error: month must be in 1..12"
    (which flag?), and Space.from_yaml raised int()'s "use sys.set_int_max_str_digits()"."""
    url = f"sqlite:///{tmp_path / 'db.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0).optimize(
        lambda t: t.params["x"], n_trials=1)
    path = write(tmp_path, "objective: obj.py:f\nspace:\n  x: {type: float, low: 0, high: 1}\n"
                           "  wd: {type: float, low: 0, high: 1}\n")
    assert main(["copy", "s", "s2", "--storage", url, "--space", str(path), "--fill", "wd=2024-13-45"]) == 2
    assert "--fill 'wd=2024-13-45': the value is not read as YAML (a value cannot be read (month must be in " \
           "1..12))" in capsys.readouterr().err
    with pytest.raises(yaml.YAMLError, match=r"a value cannot be read \(Exceeds the limit \(4300 digits\)"):
        ts.Space.from_yaml(f"x: {{type: int, low: 0, high: {'9' * 5000}}}")


def test_retry_window_in_a_study_file_sets_how_long_a_worker_rides_out_an_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: no way from the command line; a worker always retried for the default 30 s
    import socket

    pytest.importorskip("psycopg")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    (tmp_path / "obj.py").write_text(OBJ)
    url = f"postgresql+psycopg://u:p@127.0.0.1:{port}/db"
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {url}\nretry_window: 0.5\n{SPACE}")
    start = time.monotonic()
    assert main(["worker", str(path), "--n-trials", "1"]) == 2
    assert time.monotonic() - start < 15
    assert "still failing after retry_window=0.5 s" in capsys.readouterr().err
    bad = write(tmp_path, f"objective: obj.py:f\n{SPACE}retry_window: -1\n")
    with pytest.raises(StudyFileError, match="retry_window must be a positive, finite number of seconds"):
        StudyFile.load(bad)


def test_a_misspelt_sampler_or_pruner_names_the_closest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "obj.py").write_text(OBJ)
    for line, fragment in [("sampler: tpee", "unknown sampler 'tpee' (did you mean 'tpe'?)"),
                           ("pruner: mediam", "unknown pruner 'mediam' (did you mean 'median'?)"),
                           ("sampler: {name: tpe, n_startp: 5}",  # was the constructor's TypeError
                            "sampler 'tpe': unknown option 'n_startp' (did you mean 'n_startup'?)"),
                           ("pruner: {name: asha, reduction_factr: 2}",
                            "pruner 'asha': unknown option 'reduction_factr' (did you mean 'reduction_factor'?)"),
                           ("sampler: {nme: tpe}", "a sampler description needs a 'name'")]:  # was a KeyError traceback
        path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{SPACE}{line}\n")
        assert main(["run", str(path), "--n-trials", "1"]) == 2
        err = capsys.readouterr().err
        assert fragment in err and f"{path}: {line.partition(':')[0]}: " in err, err  # the file was not named
    assert main(["run", str(path), "--n-trials", "1", "--sampler", "rnadom"]) == 2
    assert "--sampler: unknown sampler 'rnadom' (did you mean 'random'?)" in capsys.readouterr().err


def test_a_mapping_is_still_a_fixed_value_when_it_is_not_a_definition() -> None:
    space = ts.Space.from_dict({"opts": {"momentum": 0.9}, "f": {"type": "fixed", "value": {"low": 1}}})
    assert space["opts"].value == {"momentum": 0.9} and space["f"].value == {"low": 1}


def test_missing_space_for_a_new_study_creates_no_database(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "obj.py").write_text(OBJ)
    path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'new.db'}\n")
    for cmd in ("run", "worker"):
        assert main([cmd, str(path), "--n-trials", "1"]) == 2
        err = capsys.readouterr().err
        assert "missing key(s) ['space']: there is no study 's' in" in err and "space: {lr:" in err, err
    assert not (tmp_path / "new.db").exists()


# -- a relative SQLite path is beside the study file ---------------------------------------------


def test_a_relative_sqlite_path_in_a_study_file_is_the_same_database_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two users start the shared file from different folders: one database, beside the
    file (before: one in each current folder)."""
    shared, alice, bob = tmp_path / "shared", tmp_path / "alice", tmp_path / "bob"
    for folder in (shared / "dbs", alice, bob):
        folder.mkdir(parents=True)
    (shared / "obj.py").write_text(OBJ)
    path = write(shared, f"objective: obj.py:f\nstorage: sqlite:///dbs/s.db\n{SPACE}n_trials: 2\nsampler: random\n")
    for user in (alice, bob):
        monkeypatch.chdir(user)
        assert main(["run", str(path), "--no-progress"]) == 0
    assert f"in sqlite:///{shared / 'dbs' / 's.db'}: 2 trials run now, 4 in all" in capsys.readouterr().out
    assert not list(alice.iterdir()) and not list(bob.iterdir())
    monkeypatch.chdir(bob)  # a path given on the command line is the current folder's, as any
    assert main(["run", str(path), "--no-progress", "--storage", "sqlite:///mine.db"]) == 0
    assert len(ts.load_study("s", f"sqlite:///{bob / 'mine.db'}").trials) == 2


@pytest.mark.parametrize(("written", "expected"), [
    ("sqlite:///s.db", "sqlite:///{base}/s.db"),
    ("sqlite:///../up/s.db?synchronous=full", "sqlite:///{parent}/up/s.db?synchronous=full"),
    ("sqlite+pysqlite:///s.db", "sqlite+pysqlite:///{base}/s.db"),
    ("s.sqlite", "{base}/s.sqlite"),
    ("sqlite:////abs/s.db", "sqlite:////abs/s.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite://", "sqlite://"),
    ("memory", "memory"),
    ("postgresql+psycopg://u:p@127.0.0.1/db", "postgresql+psycopg://u:p@127.0.0.1/db"),
])
def test_only_a_relative_sqlite_file_in_a_study_file_is_anchored(tmp_path: Path, written: str, expected: str) -> None:
    base = tmp_path / "files"
    base.mkdir()
    sf = StudyFile.load(write(base, f"objective: obj.py:f\nstorage: {written!r}\n"))
    assert sf.storage == expected.format(base=base, parent=tmp_path)
    assert sf.storage_written == written


def test_a_database_left_in_the_current_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database an earlier run made in the current folder (where the path meant that folder)
    is neither opened nor lost: the warning says where it is and how to keep using it."""
    shared, here = tmp_path / "shared", tmp_path / "here"
    shared.mkdir()
    here.mkdir()
    (shared / "obj.py").write_text(OBJ)
    Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{here / 'old.db'}", name="s")
    path = write(shared, f"objective: obj.py:f\nstorage: sqlite:///old.db\n{SPACE}n_trials: 1\n")
    monkeypatch.chdir(here)
    assert main(["run", str(path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (f"storage 'sqlite:///old.db' is relative to the study file's folder, so it is {shared / 'old.db'}, "
            f"which does not exist yet; {here / 'old.db'} in the current folder does") in err
    assert f"storage: sqlite:///{here / 'old.db'}" in err
    assert main(["run", str(path), "--no-progress"]) == 0  # the one beside the file exists now: no warning
    assert "relative to the study file's folder" not in capsys.readouterr().err


# -- accepted by one former parser only, now by both commands ------------------------------------


def test_run_resumes_a_study_without_space_direction_or_sampler(tmp_path: Path) -> None:
    """The worker's parser allowed resuming without ``space``; ``run``'s defaulted direction and sampler."""
    (tmp_path / "obj.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    Study({"x": ts.Float(0, 1)}, direction="maximize", sampler="random", seed=3, storage=db, name="s")
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\nn_trials: 4\n")
    study = open_study(StudyFile.load(path))
    assert study.direction.value == "maximize" and study.sampler.name == "random"
    assert main(["run", str(path), "--no-progress"]) == 0
    assert len(ts.load_study("s", db).trials) == 4


def test_run_takes_heartbeat_and_executor_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Keys only the worker's parser knew: stored with the study and used by ``run`` too."""
    (tmp_path / "obj.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    path = write(tmp_path, f"""
        objective: obj.py:f
        storage: {db}
        {SPACE}
        n_trials: 6
        n_jobs: 2
        executor: thread
        heartbeat_interval: 2
        requeue_failed: true
        resources_per_trial: {{cpu: 1}}   # Ray-only: ignored by other executors, with a warning
    """)
    assert main(["run", str(path), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "6 trials run now" in out
    assert err.count("warning:") == 1
    assert "ignored with executor 'thread': resources_per_trial (only the Ray executor takes it)" in err
    study = ts.load_study("s", db)
    assert study.heartbeat_config == HeartbeatConfig(2.0, 10.0, True)
    assert all(t.worker.endswith(f":{os.getpid()}") for t in study.trials)  # threads here, not processes


def test_options_the_executor_does_not_take_are_named_in_one_warning(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "obj.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    path = write(tmp_path, f"""
        objective: obj.py:f
        storage: {db}
        {SPACE}
        n_trials: 2
        ray_address: 10.0.0.5:6379
        resources_per_trial: {{cpu: 2}}
    """)
    assert main(["worker", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "ignored with the default executor" in err
    assert "ray_address (only the Ray executor takes it), resources_per_trial (only the Ray" in err
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\n{SPACE}n_trials: 1\nexecutor: thread\ngpus: [0]\n")
    assert main(["run", str(path), "--no-progress"]) == 0
    assert "ignored with executor 'thread': gpus (only the process executor takes it)" in capsys.readouterr().err
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\n{SPACE}n_trials: 1\nexecutor: thread\n")
    assert main(["run", str(path), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err


HANGS = "import time\ndef f(trial):\n    if trial.number == 1:\n        time.sleep(60)\n    return trial.params['x']\n"


def test_trial_timeout_from_the_study_file_and_the_command_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """optimize's trial_timeout had no study-file key nor flag: a hung trial held a CLI worker for good."""
    (tmp_path / "obj.py").write_text(HANGS)
    db = f"sqlite:///{tmp_path / 't.db'}"
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\n{SPACE}n_trials: 4\nn_jobs: 2\ntrial_timeout: 1.5\n")
    assert main(["run", str(path), "--no-progress"]) == 0
    hung = ts.load_study("s", db).trials[1]
    assert hung.state is ts.TrialState.FAILED and hung.error.startswith("trial_timeout: the trial ran longer than 1.5 s")
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\n{SPACE}n_trials: 1\nexecutor: thread\n")
    assert main(["worker", str(path), "--trial-timeout", "5"]) == 2
    assert "trial_timeout needs an executor that can stop a running objective" in capsys.readouterr().err


def test_run_with_an_executor_keeps_the_other_flags(tmp_path: Path) -> None:
    """``run --executor`` used to go to the worker's code, which dropped --name, --sampler, --seed."""
    (tmp_path / "obj.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'e.db'}"
    path = write(tmp_path, f"objective: obj.py:f\nstorage: {db}\n{SPACE}sampler: random\n")
    argv = ["run", str(path), "--executor", "thread", "--n-jobs", "2", "--n-trials", "3", "--name", "other",
            "--sampler", "sobol", "--seed", "4", "--no-progress"]
    assert main(argv) == 0
    study = ts.load_study("other", db)
    assert len(study.trials) == 3 and study.sampler.name == "sobol" and study.sampler.seed == 4


def test_address_needs_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f"objective: obj.py:f\n{SPACE}")
    for cmd in ("run", "worker"):
        assert main([cmd, str(path), "--address", "127.0.0.1:6379"]) == 2
        assert "--address is the Ray cluster's address: pass --executor ray" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["x", "10.0.0.5", "ray://head", "10.0.0.5:0", "10.0.0.5:²", "head:６３７９"])
def test_a_malformed_ray_address_names_the_flag_or_key_and_the_form(tmp_path: Path, address: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # before: Ray's own "Invalid address format: x", naming neither --address nor what a valid one looks like
    (tmp_path / "obj.py").write_text(OBJ)
    path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'a.db'}\n{SPACE}")
    for cmd in ("run", "worker"):
        assert main([cmd, str(path), "--n-trials", "1", "--executor", "ray", "--address", address]) == 2
        err = capsys.readouterr().err
        assert "--address must be the Ray cluster's address: HOST:PORT of its head node" in err, err
        assert f"got {address!r}" in err and "Invalid address format" not in err
    in_file = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'a.db'}\n{SPACE}"
                              f"executor: ray\nray_address: {address!r}\n")
    assert main(["run", str(in_file), "--n-trials", "1"]) == 2
    assert "ray_address must be the Ray cluster's address: HOST:PORT" in capsys.readouterr().err


def test_worker_name_defaults_and_module_beside_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``run``'s parser: name = the file's stem, and a module found in the study file's folder."""
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "beside_mod_cli.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    path = write(folder, f"objective: beside_mod_cli:f\nstorage: {db}\n{SPACE}", name="mlp.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["worker", str(path), "--n-trials", "2"]) == 0
    assert "study 'mlp': 2 finished trials" in capsys.readouterr().out
    sys.modules.pop("beside_mod_cli", None)


def _pausing_study(tmp_path: Path, resumed: str) -> tuple[Path, str]:
    """A study file whose objective pauses each new trial at step 1 (ASHA, pause=True) and runs ``resumed``
    (a line of Python) for a resumed one; the file and its storage's URL."""
    (tmp_path / "pausing.py").write_text(textwrap.dedent(f"""
        import tunesmith as ts

        def f(trial):
            if trial.is_resumed:
                {resumed}
            trial.report(trial.params["x"], 1)
            raise ts.TrialPaused()
        """))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    pruner = "pruner: {name: asha, pause: true, min_resource: 1, reduction_factor: 3, max_resource: 9}\n"
    return write(tmp_path, f"objective: pausing.py:f\nstorage: {db}\n{SPACE}{pruner}sampler: random\nseed: 0\n"), db


def test_a_worker_counts_the_paused_trials_it_leaves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Under a pausing pruner trials end paused: the summary said "4 finished trials" alone
    after the worker ran 6, as if 2 were lost."""
    path, db = _pausing_study(tmp_path, "return trial.params['x']")
    assert main(["worker", str(path), "--n-trials", "6"]) == 0
    states = [t.state.value for t in ts.load_study("s", db).trials]
    done, paused = states.count("complete"), states.count("paused")
    assert len(states) == 6 and done >= 1 and paused >= 2 and done + paused == 6, states
    out = capsys.readouterr().out
    finished = f"{done} finished trial{'s' if done > 1 else ''}"  # "1 finished trials" before
    assert f"study 's': {finished} in sqlite:///{tmp_path / 'p.db'}; {paused} paused\n" in out


def test_a_resume_refused_under_the_cli_names_the_command_that_ends_the_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resumed trial whose checkpoint does not fit (ts.ResumeRefused) stops `tunesmith run`, advising
    study.tell(n, state='pruned'): Python, which a study file's user has no session for, and no command did
    it. The message names `tunesmith tell`, which ends the trial; a trial that is not paused is refused."""
    import shlex

    path, db = _pausing_study(tmp_path, (  # as tunesmith.train's objective words it (train/bridge.py)
        "raise ts.ResumeRefused(f\"trial {trial.number} cannot resume: another model. It stays paused: end the "
        "trial for good with study.tell({trial.number}, state='pruned')\")"))
    assert main(["run", str(path), "--n-trials", "6"]) == 2
    said = capsys.readouterr().err
    found = re.search(r"`(tunesmith tell s (\d+) --state pruned --storage \S+)`", said)
    assert found and "study.tell(" not in said, said
    number = int(found[2])
    assert ts.load_study("s", db).trials[number].state is ts.TrialState.PAUSED
    assert main(shlex.split(found[1])[1:]) == 0  # the command as the message gives it
    assert f"study 's': 1 paused trial pruned: {number}" in capsys.readouterr().out
    assert ts.load_study("s", db).trials[number].state is ts.TrialState.PRUNED
    assert main(["tell", "s", str(number), "99", "--state", "failed", "--storage", db]) == 2
    assert f"trial {number} of study 's': it is pruned; tunesmith tell ends paused trials" in capsys.readouterr().err


def test_a_resume_refused_of_a_study_in_memory_names_no_command_that_would_find_no_study() -> None:
    """Under `tunesmith run` with `storage: memory` the advice was `tunesmith tell s 3 --state pruned
    --storage memory`, which finds no study: the run took it with it."""
    from tunesmith.cli.launch import tell_as_command

    said = "trial 3 cannot resume. It stays paused: end the trial for good with study.tell(3, state='pruned')"
    study = ts.Study(ts.Space({"x": ts.Float(0.0, 1.0)}), name="s")
    assert "--storage memory" not in tell_as_command(said, study)
    assert "this study was in memory, gone with this run" in tell_as_command(said, study)


def _three_paused(url: str) -> Study:
    """A study of ``url`` whose trials 0, 1 and 2 are paused at step 1 (ASHA, pause=True)."""
    study = ts.Study(ts.Space({"x": ts.Float(0.0, 1.0)}), name="s", storage=url, sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(pause=True, min_resource=1, reduction_factor=3, max_resource=9))
    for trial in [study.ask() for _ in range(3)]:
        trial.set_attr("checkpoint", "none")
        trial.report(trial.params["x"], 1)
        study.tell(trial, state="paused")
    return study


def test_tell_never_ends_a_trial_a_worker_resumed_after_it_read_the_study(
        shared_storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """tunesmith tell checked the trials were paused, then told each by its number, which study.tell looks up
    again: one a worker resumed in between was ended while it ran. A number given twice was ended, then refused
    as 'already pruned', the command failing after it had done what was asked."""
    from tunesmith.cli.commands import end_paused

    study = _three_paused(shared_storage_url)
    read = study.trials
    resumed = ts.load_study("s", shared_storage_url).ask()  # another worker, since the trials were read
    assert resumed.is_resumed
    ended: list[ts.Trial] = []
    (refused,) = end_paused(study, read, [resumed.number], "pruned", ended)
    assert not ended and refused.startswith(f"trial {resumed.number} is no longer paused but running: this process "
                                            f"(pid {os.getpid()}: another Study object or thread of it) changed it")
    assert study.trials[resumed.number].state is TrialState.RUNNING
    left = next(t.number for t in read if t.number != resumed.number)
    assert main(["tell", "s", str(left), str(left), "--state", "failed", "--storage", shared_storage_url]) == 0
    assert f"study 's': 1 paused trial failed: {left}\n" in capsys.readouterr().out
    assert study.trials[left].state is TrialState.FAILED and study.trials[left].error == "ended by tunesmith tell"


RESUMES_ONE = """
import sys
sys.path[:0] = [{src!r}]
import tunesmith as ts
trial = ts.load_study("s", {url!r}).ask()
print(trial.number, trial.is_resumed, flush=True)
sys.stdin.read()  # runs the trial until the test closes its input
"""


def test_tell_s_refusal_names_the_process_of_this_machine_that_resumed_the_trial_running_or_ended(
        shared_storage_url: str) -> None:
    """Before: tell's refusal said "another worker changed it" whoever it was: here a process of this machine (a
    run of the user's own), running, then ended. It names what the stored worker tells: the process, whether it
    still runs, or the host."""
    from tunesmith.cli.commands import end_paused

    study = _three_paused(shared_storage_url)
    read = study.trials
    code = RESUMES_ONE.format(src=str(Path(__file__).parent.parent / "src"), url=shared_storage_url)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        number, resumed = proc.stdout.readline().split()
        assert resumed == "True"
        (refused,) = end_paused(study, read, [int(number)], "pruned", [])
        assert refused == (f"trial {number} is no longer paused but running: process {proc.pid} of this machine "
                           "(running now) changed it"), refused
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
    (refused,) = end_paused(study, read, [int(number)], "pruned", [])
    assert refused == (f"trial {number} is no longer paused but running: process {proc.pid} of this machine (an "
                       "earlier run, no longer running) changed it"), refused
    assert study.trials[int(number)].state is TrialState.RUNNING
    assert who("gpu-7:4242") == "process 4242 of host 'gpu-7'" and who(None) == who("hand-edited") == "another worker"


PID_USED_AGAIN_CHECK = """
import os, subprocess, sys, time
sys.path[:0] = [{src!r}]
import tunesmith as ts
from tunesmith.cli.commands import end_paused
study = ts.load_study("s", {url!r})
read = study.trials
resumer = subprocess.Popen([sys.executable, "-c", {resumes!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
number = int(resumer.communicate("")[0].split()[0])
assert resumer.returncode == 0
time.sleep(4)  # the later process starts past STARTED_SLACK_S after the resume
with open("/proc/sys/kernel/ns_last_pid", "w") as f:  # this pid namespace's next pid: the resumer's again
    f.write(str(resumer.pid - 1))
later = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
try:
    assert later.pid == resumer.pid, (later.pid, resumer.pid)
    (refused,) = end_paused(study, read, [number], "pruned", [])
    print(resumer.pid, number, refused, sep="\\n")
finally:
    later.stdin.close()
    later.wait()
"""


def test_tell_s_refusal_never_says_a_later_process_given_the_resumer_s_pid_is_the_resumer_running_now(
        shared_storage_url: str) -> None:
    """A pid is used again once its process ended (in a container whose runs each start at pid 1, at once): tell's
    refusal named the stored worker's pid "running now" when any process had it, here a later one (in a pid
    namespace of its own, where the next pid can be set: the resumer's). A process started after the worker's
    heartbeat is not that worker: the refusal says that run ended."""
    if sys.platform != "linux":
        pytest.skip("pid namespaces are Linux's")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no pid namespace here (unshare: {probe.stderr.decode(errors='replace').strip()})")
    _three_paused(shared_storage_url)
    src = str(Path(__file__).parent.parent / "src")
    code = PID_USED_AGAIN_CHECK.format(src=src, url=shared_storage_url,
                                       resumes=RESUMES_ONE.format(src=src, url=shared_storage_url))
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pid, number, refused = done.stdout.splitlines()
    assert refused == (f"trial {number} is no longer paused but running: process {pid} of this machine (an earlier "
                       "run, no longer running: its pid is a later process's) changed it"), refused


def test_show_lists_the_paused_trials_and_the_tell_it_prints_runs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """tell's error said "tunesmith show lists them", but show printed "6 paused" with no number, and its advice
    ("a later optimize resumes those") named no command: a study file's user had no way to the numbers."""
    import shlex

    path, db = _pausing_study(tmp_path, "return trial.params['x']")
    assert main(["worker", str(path), "--n-trials", "6"]) == 0
    paused = [t.number for t in ts.load_study("s", db).trials if t.state is TrialState.PAUSED]
    assert len(paused) >= 2, paused
    capsys.readouterr()
    assert main(["show", "s", "--storage", db]) == 0
    out = capsys.readouterr().out
    listed = re.search(r"(\d+) paused \(([#\d, ]+)\): a later optimize \(tunesmith run or worker\) resumes those it "
                       r"promotes; (tunesmith tell s N --state pruned --storage \S+) ends one for good", out)
    assert listed, out
    assert [int(n) for n in re.findall(r"#(\d+)", listed[2])] == paused and int(listed[1]) == len(paused)
    command = shlex.split(listed[3].replace(" N ", f" {paused[0]} "))
    assert main(command[1:]) == 0  # the command as show prints it
    assert ts.load_study("s", db).trials[paused[0]].state is TrialState.PRUNED
    capsys.readouterr()
    assert main(["tell", "s", str(paused[0]), "--state", "pruned", "--storage", db]) == 2
    err = capsys.readouterr().err  # the error names the trials it does end, as tell takes them
    assert f"it is pruned; tunesmith tell ends paused trials (paused now: {', '.join(map(str, paused[1:]))})" in err


def test_tell_of_a_study_with_no_paused_trial_says_none_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "one.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'one.db'}"
    assert main(["worker", str(write(tmp_path, f"objective: one.py:f\nstorage: {db}\n{SPACE}")), "--n-trials", "1"]) == 0
    assert main(["tell", "s", "0", "--state", "failed", "--storage", db]) == 2
    assert ("trial 0 of study 's': it is complete; tunesmith tell ends paused trials (none is paused now)"
            in capsys.readouterr().err)  # the study named once (it read "none of 's''s is paused now")


def test_copy_of_a_study_with_paused_trials_prints_the_tell_that_ends_them_in_the_copy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """copy and rename warned that paused trials fail when promoted there, advising study.tell(n, state='pruned'):
    Python, which a study file's user has no session for. The warning gives the command, numbers and all."""
    import shlex

    path, db = _pausing_study(tmp_path, "return trial.params['x']")
    script = tmp_path / "pausing.py"  # each trial records a checkpoint before it pauses
    script.write_text(script.read_text().replace("trial.report(", "trial.set_attr('checkpoint', 'c')\n    trial.report("))
    assert main(["worker", str(path), "--n-trials", "6"]) == 0
    for done, args in (("copied as 'my copy'", ["copy", "s", "my copy"]), ("renamed 'r'", ["rename", "my copy", "r"])):
        caplog.clear()
        with caplog.at_level("WARNING", logger="tunesmith"):
            assert main([*args, "--storage", db]) == 0
        said = re.search(rf"{done}: .*\(or `(tunesmith tell [^`]+)`\)", caplog.text)
        assert said, caplog.text
    paused = [t.number for t in ts.load_study("r", db).trials if t.state is TrialState.PAUSED]
    assert paused and main(shlex.split(said[1])[1:]) == 0  # the rename's command, as printed
    assert all(ts.load_study("r", db).trials[n].state is TrialState.PRUNED for n in paused)
    assert ts.load_study("s", db).trials_in("paused")  # the study copied from keeps its own


def test_the_worker_help_says_the_first_worker_creates_the_study(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`tunesmith --help` said a worker joins "an existing study", while the first worker on a new database
    creates it (docs/distributed.md), so a user created one with `run` first for nothing."""
    with pytest.raises(SystemExit):
        main(["--help"])
    line = " ".join(capsys.readouterr().out.split("worker", 1)[1].split("delete")[0].split())
    assert "existing" not in line and "the first creates it" in line, line
    (tmp_path / "one.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["worker", str(write(tmp_path, f"objective: one.py:f\nstorage: {db}\n{SPACE}")), "--n-trials", "1"]) == 0
    assert len(ts.load_study("s", db).trials) == 1


def test_a_misspelt_objective_script_is_answered_with_the_closest_one(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelt function name got the closest one, a misspelt script only the paths looked at."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "trainer.py").write_text(OBJ)
    for written, meant in (("sub/trainr.py", "sub/trainer.py"), (str(tmp_path / "sub" / "trainr.py"),
                                                                  str(tmp_path / "sub" / "trainer.py"))):
        path = write(tmp_path, f"objective: {written}:f\nstorage: sqlite:///{tmp_path / 'm.db'}\n{SPACE}")
        assert main(["run", str(path), "--n-trials", "1"]) == 2
        err = capsys.readouterr().err
        assert f"objective script {written!r} not found" in err and f"(did you mean {meant!r}?)" in err, err


def test_a_changed_space_advises_a_copy_that_runs_from_another_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The advice was `tunesmith copy NAME NEW_NAME --space STUDY.yaml`: the copy reads the current folder's
    tunesmith.db, not the study file's database (relative to the file's folder), so it found no study."""
    import shlex

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    (project / "obj.py").write_text(OBJ)
    path = write(project, f"objective: obj.py:f\nstorage: sqlite:///s.db\nsampler: random\n{SPACE}")
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(path), "--n-trials", "2"]) == 0
    path.write_text(path.read_text().replace("high: 1}", "high: 2}"))
    capsys.readouterr()
    assert main(["run", str(path), "--n-trials", "1"]) == 2
    said = re.search(r"(tunesmith copy s NEW_NAME --space STUDY.yaml[^;]*?)(;|$)", capsys.readouterr().err, re.M)
    assert said, said
    command = shlex.split(said[1].replace("NEW_NAME", "s2").replace("STUDY.yaml", shlex.quote(str(path))))
    assert main(command[1:]) == 0  # as printed, from the folder the run was in
    assert len(ts.load_study("s2", f"sqlite:///{project / 's.db'}").trials) == 2


def test_delete_of_a_trained_study_names_the_checkpoint_folder_it_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A trial of ts.train.objective that ends keeps best.pt and sets attrs["checkpoint"] to None: `tunesmith
    delete` of a study whose trials all completed named no folder, and its checkpoints stayed unmentioned."""
    pytest.importorskip("torch")
    (tmp_path / "trainer.py").write_text(textwrap.dedent("""
        import torch
        import tunesmith as ts
        from tunesmith.train import TrainConfig

        x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
        data = (torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)),) * 2
        objective = ts.train.objective(lambda p: torch.nn.Linear(3, 1), data, loss="mse", checkpoint_root="ckpts",
                                       base=TrainConfig(epochs=2, batch_size=32, device="cpu"))
        """))
    path = write(tmp_path, "objective: trainer.py:objective\nstorage: sqlite:///t.db\nsampler: random\n"
                           "space: {lr: {type: float, low: 0.001, high: 0.1, log: true}}\n")
    monkeypatch.chdir(tmp_path)  # checkpoint_root is relative to the folder the trials run in
    assert main(["run", str(path), "--n-trials", "2"]) == 0
    trials = ts.load_study("s", f"sqlite:///{tmp_path / 't.db'}").trials
    assert all(t.attrs["checkpoint"] is None and t.attrs["best_checkpoint"] for t in trials)
    folder = Path(trials[0].attrs["best_checkpoint"]).parent.parent
    with caplog.at_level("WARNING", logger="tunesmith"):
        assert main(["delete", "s", "--yes", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 0
    assert f"its trials' checkpoint files are not deleted: they are in {folder}" in caplog.text
    assert Path(trials[0].attrs["best_checkpoint"]).exists()  # named, never touched


def test_a_worker_that_ran_one_trial_says_so_in_the_singular(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "one.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'one.db'}"
    path = write(tmp_path, f"objective: one.py:f\nstorage: {db}\n{SPACE}")
    assert main(["worker", str(path), "--n-trials", "1"]) == 0
    assert f"study 's': 1 finished trial in sqlite:///{tmp_path / 'one.db'}\n" in capsys.readouterr().out


def test_script_found_in_the_file_folder_then_the_current_one(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "near.py").write_text(OBJ)
    (tmp_path / "cwd_only.py").write_text(OBJ.replace("0.25", "0.5"))
    (tmp_path / "nodot").write_text(OBJ)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    base = tmp_path / "elsewhere"
    base.mkdir()
    (base / "sub").mkdir()
    (base / "sub" / "near.py").write_text(OBJ.replace("0.25", "0.75"))
    trial = SimpleNamespace(params={"x": 0.0})
    assert load_objective("sub/near.py:f", base)(trial) == pytest.approx(0.75**2)  # the file's folder first
    assert load_objective("cwd_only.py:f", base)(trial) == pytest.approx(0.25)  # then the current one
    assert load_objective(f"{tmp_path / 'nodot'}:f", base)(trial) == pytest.approx(0.0625)  # any file name


def test_a_script_objective_pickles_by_reference_and_hides_no_module(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's parser registered a script under its own name (for spawned processes)."""
    import json

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "picklable_obj_cli.py").write_text(OBJ)
    fn = load_objective("picklable_obj_cli.py:f", tmp_path)
    assert fn.__module__ == "picklable_obj_cli" and pickle.loads(pickle.dumps(fn)) is fn
    (tmp_path / "json.py").write_text(OBJ)
    shadow = load_objective("json.py:f", tmp_path)
    assert sys.modules["json"] is json and shadow.__module__ == "tunesmith_objective_json"
    for name in ("picklable_obj_cli", "tunesmith_objective_json"):
        monkeypatch.delitem(sys.modules, name)


def test_a_script_named_as_an_installed_module_not_yet_imported_hides_it_not(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``scipy.py`` objective was registered as ``scipy``: the bayes sampler's later ``import
    scipy.special`` failed ("'scipy' is not a package"). An installed package, imported after the script."""
    site = tmp_path / "site"
    (site / "installedpkg_sec6").mkdir(parents=True)
    (site / "installedpkg_sec6" / "__init__.py").write_text("REAL = True\n")
    (site / "installedpkg_sec6" / "part.py").write_text("PART = 1\n")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    (tmp_path / "installedpkg_sec6.py").write_text(OBJ)
    fn = load_objective("installedpkg_sec6.py:f", tmp_path)
    assert fn(SimpleNamespace(params={"x": 0.25})) == 0.0
    assert fn.__module__ == "tunesmith_objective_installedpkg_sec6"
    from installedpkg_sec6 import part  # type: ignore[import-not-found]

    assert part.PART == 1 and sys.modules["installedpkg_sec6"].REAL
    for name in ("installedpkg_sec6", "installedpkg_sec6.part", "tunesmith_objective_installedpkg_sec6"):
        monkeypatch.delitem(sys.modules, name)


def test_a_json_study_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "obj.py").write_text(OBJ)
    db = f"sqlite:///{tmp_path / 'j.db'}"
    doc = {"objective": "obj.py:f", "storage": db, "n_trials": 3, "sampler": "random",
           "space": {"x": {"type": "float", "low": 0, "high": 1}}}
    path = write(tmp_path, json.dumps(doc), name="j.json")
    assert main(["worker", str(path)]) == 0
    assert "study 'j': 3 finished trials" in capsys.readouterr().out


@pytest.mark.parametrize("line", [
    "space: {x: !!python/object/apply:os.system ['touch {marker}']}",
    "sampler: {name: tpe, seed: !!python/object/apply:os.system ['touch {marker}']}",
    "sampler: {name: 'os:system'}",
    "pruner: {name: 'subprocess.run'}",
])
def test_a_study_file_runs_no_code_but_its_named_objective(tmp_path: Path, line: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """docs/security.md: YAML's safe loader builds no Python object; samplers and pruners come
    from tunesmith's registry by name; only the ``objective:`` module is imported."""
    marker = tmp_path / "ran"
    (tmp_path / "obj.py").write_text(OBJ)
    text = f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{SPACE if 'space' not in line else ''}"
    path = write(tmp_path, text + line.replace("{marker}", str(marker)) + "\n")
    for cmd in ("run", "worker"):
        assert main([cmd, str(path), "--n-trials", "1"]) == 2
        assert "error" in capsys.readouterr().err
    assert not marker.exists()


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 387 million values from a 500-byte file."""
    lines = ['  a: &a {v: ["x","x","x","x","x","x","x","x","x"]}']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} {{v: [{','.join([f'*{prev}'] * 9)}]}}")
    return "space:\n" + "\n".join(lines)


@pytest.mark.parametrize("text, fragment", [
    (_alias_bomb(), "more than 1,000,000 values once its aliases"),
    ("space: {x: " + "[" * 50_000 + "]" * 50_000 + "}", "nests deeper than 100 levels"),
    ("space: {x: {v: " + "[" * 500 + "]" * 500 + "}}", "nests deeper than 100 levels"),  # the parser copes
])
def test_a_study_file_that_expands_or_nests_without_end_is_refused(tmp_path: Path, text: str, fragment: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the alias bomb filled the memory (1 GB in 25 s, growing), deep nesting ended in a
    RecursionError's traceback."""
    (tmp_path / "obj.py").write_text(OBJ)
    path = write(tmp_path, f"objective: obj.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{text}\n")
    for cmd in ("run", "worker"):
        assert main([cmd, str(path), "--n-trials", "1"]) == 2
        assert fragment in capsys.readouterr().err
    assert not (tmp_path / "db.db").exists()


def test_a_study_file_that_is_not_utf8_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"objective: obj.py:f\nname: '\xff'\n" + SPACE.encode())
    assert main(["run", str(path), "--n-trials", "1"]) == 2
    assert f"{path}: not UTF-8 text (byte 0xff at offset 27); save it as UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("cmd, jobs, sig", [("worker", "1", "SIGINT"), ("run", "2", "SIGINT"), ("worker", "1", "SIGTERM"),
                                          ("worker", "2", "SIGTERM"), ("worker", "2", "SIGTERM to the group"),
                                          ("run", "1", "SIGHUP to the group"), ("worker", "2", "SIGHUP to the group")])
def test_ctrl_c_or_sigterm_fails_the_running_trials_and_exits_128_plus_the_signal(
        tmp_path: Path, subprocess_env: dict[str, str], cmd: str, jobs: str, sig: str) -> None:
    """As documented (Ctrl-C: the running trial failed, "interrupted", not re-queued), and the command
    says so in its exit status: a script's ``tunesmith worker a.yaml && ...`` stops there. SIGTERM
    (``kill``, a scheduler) the same way: it left the trial running until a heartbeat check."""
    import signal
    import subprocess
    import time

    (tmp_path / "slow.py").write_text("import time\ndef f(trial):\n    time.sleep(60)\n    return 1.0\n")
    url = f"sqlite:///{tmp_path / 'db.db'}"
    path = write(tmp_path, f"objective: slow.py:f\nstorage: {url}\n{SPACE}requeue_failed: true\nheartbeat_interval: 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", cmd, str(path), "--n-trials", "4", "--n-jobs", jobs],
                            env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until every worker's trial runs
        if (tmp_path / "db.db").exists() and sum(t.state.value == "running" for t in _trials(url)) == int(jobs):
            break
        time.sleep(0.2)
    signum = getattr(signal, sig.split()[0])
    if sig == "SIGINT" or sig.endswith("group"):
        os.killpg(proc.pid, signum)  # a terminal's Ctrl-C, systemd's stop, a batch scheduler's: the whole group
    else:
        os.kill(proc.pid, signum)  # `kill PID`: the command's process only
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + signum, out
    trials = _trials(url)
    assert len(trials) == int(jobs) and all(t.state.value == "failed" and "interrupted" in (t.error or "")
                                            for t in trials), [(t.state, t.error) for t in trials]
    # each trial says what stopped it (a SIGTERM was recorded as a KeyboardInterrupt; with --n-jobs 2, in the
    # worker processes, which the command stops with a Ctrl-C of their own)
    # SIGHUP (the terminal closed, as an ssh session dropping) killed the command, its trials left running
    assert {t.error for t in trials} == {"interrupted (KeyboardInterrupt)" if sig == "SIGINT" else
                                         f"interrupted ({sig.split()[0]})"}


def test_trials_that_end_before_a_sigterm_reaches_the_workers_are_not_said_to_be_failed(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """``kill PID`` of ``worker --n-jobs 2``: the command passes the signal on to its workers 2 s later, and
    trials that end meanwhile are recorded complete. It said "running trials marked failed" all the same."""
    import signal
    import time

    proc, url, go = _gated_worker(tmp_path, subprocess_env, "--n-trials", "4", "--n-jobs", "2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers' trials run
        if (tmp_path / "db.db").exists() and sum(t.state.value == "running" for t in _trials(url)) == 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)  # the command alone
    go.touch()  # both trials end at once, within the 2 s before the workers get the signal
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 143, out
    trials = _trials(url)
    if all(t.state.value == "complete" for t in trials):  # as on any machine not starved for 2 s
        assert len(trials) == 2 and "the running trials ended before it reached them" in out, out
        assert "marked failed" not in out, out
    else:
        assert "running trials marked failed" in out, out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_background_job_s_workers_stop_with_the_signal_its_command_got(
        tmp_path: Path, subprocess_env: dict[str, str], sig: str) -> None:
    """A script's background job (``tunesmith worker a.yaml --n-jobs 2 &``, SIGINT ignored) stopped by
    ``kill -HUP PID``: its workers, told with a Ctrl-C they ignore, ran on until killed with a SIGTERM
    12 s later, and recorded "interrupted (SIGTERM)" for a SIGHUP."""
    import signal
    import subprocess
    import time

    (tmp_path / "slow.py").write_text("import time\ndef f(trial):\n    time.sleep(60)\n    return 1.0\n")
    url = f"sqlite:///{tmp_path / 'db.db'}"
    path = write(tmp_path, f"objective: slow.py:f\nstorage: {url}\n{SPACE}")
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "worker", str(path), "--n-trials", "4", "--n-jobs", "2"],
                            env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers' trials run
        if (tmp_path / "db.db").exists() and sum(t.state.value == "running" for t in _trials(url)) == 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, getattr(signal, sig))
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + getattr(signal, sig), out
    assert {t.error for t in _trials(url)} == {f"interrupted ({sig})"}, out


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_sigterm_to_the_group_stops_the_objective_s_own_processes_as_before(
        tmp_path: Path, subprocess_env: dict[str, str], jobs: str) -> None:
    """A process the objective forks (a multiprocessing pool, a data loader's workers) dies of a SIGTERM
    sent to the command's process group, as it did: it was raised there as the command's Terminated,
    a traceback on the command's output ("Process ForkProcess-1: ... Terminated: SIGTERM") from a
    process the objective owns, which may catch it and live on."""
    import signal
    import subprocess
    import time

    (tmp_path / "forks.py").write_text(
        "import multiprocessing as mp, os, time\n"
        "def f(trial):\n"
        "    p = mp.get_context('fork').Process(target=time.sleep, args=(60,))\n"
        "    p.start()\n"
        "    open(os.path.join(os.path.dirname(__file__), f'child-{p.pid}'), 'w').close()\n"
        "    p.join()\n"
        "    return 1.0\n")
    url = f"sqlite:///{tmp_path / 'db.db'}"
    path = write(tmp_path, f"objective: forks.py:f\nstorage: {url}\n{SPACE}")
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "worker", str(path), "--n-trials", "4", "--n-jobs", jobs],
                            env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("child-*"))) < int(jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 143 and "Traceback" not in out and "Terminated" not in out, out
    assert {t.error for t in _trials(url)} == {"interrupted (SIGTERM)"}


def test_a_sigterm_to_one_worker_process_alone_is_a_killed_worker_as_documented(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A SIGTERM to one worker process of the command (``kill PID``, an out-of-memory killer), not to
    the command: as a killed worker (docs/distributed.md), its trial failed "worker process died"
    and re-queued with requeue_failed, and the run goes on. It was "interrupted (SIGTERM)", as if the
    command had been stopped, and not re-queued."""
    import signal
    import time

    url = f"sqlite:///{tmp_path / 'db.db'}"
    proc = _two_workers(tmp_path, subprocess_env, 3, "requeue_failed: true\nheartbeat_interval: 1\n", n_trials=3)
    deadline = time.monotonic() + 60
    running: list[ts.FrozenTrial] = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = [t for t in _trials(url) if t.state.value == "running"] if (tmp_path / "db.db").exists() else []
    os.kill(int(str(running[0].worker).rsplit(":", 1)[1]), signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    killed = next(t for t in _trials(url) if t.number == running[0].number)
    assert killed.state.value == "failed" and killed.error == "worker process died (exit code -15)", killed.error
    assert killed.system.requeued_as is not None


def test_a_second_sigterm_while_a_busy_database_holds_the_stop_leaves_no_trial_running(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A second SIGTERM (or Ctrl-C) to the group while the workers waited to record their trials (a
    database another writer held) ended the parent's stop before it failed what they left, and a
    worker it reached in its own write exited 0: the trials stayed "running" for good."""
    import signal
    import sqlite3

    url = f"sqlite:///{tmp_path / 'db.db'}"
    proc = _two_workers(tmp_path, subprocess_env, 60)
    deadline = time.monotonic() + 60
    while sum(t.state.value == "running" for t in _trials(url)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = sqlite3.connect(tmp_path / "db.db", isolation_level=None)
    busy.execute("BEGIN EXCLUSIVE")  # another writer
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(2.5)  # the parent has passed it on to the workers still writing
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(3)
    busy.execute("ROLLBACK")
    busy.close()
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode in (143, -signal.SIGTERM), out
    assert [t.state.value for t in _trials(url)] == ["failed", "failed"], out


def _two_workers(tmp_path: Path, env: dict[str, str], sleep: float, more: str = "", n_trials: int = 4) -> subprocess.Popen[bytes]:
    """``tunesmith worker --n-jobs 2`` in a session of its own, on an objective that sleeps ``sleep`` s."""
    (tmp_path / "slow.py").write_text(f"import time\ndef f(trial):\n    time.sleep({sleep})\n    return 1.0\n")
    path = write(tmp_path, f"objective: slow.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{SPACE}{more}")
    return subprocess.Popen([sys.executable, "-m", "tunesmith", "worker", str(path), "--n-trials", str(n_trials),
                             "--n-jobs", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _gated_worker(tmp_path: Path, env: dict[str, str], *options: str, **popen: Any) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``tunesmith worker ... OPTIONS`` on an objective whose trials wait until the file ``go`` exists: the
    process, the database's URL and ``go``."""
    (tmp_path / "gated.py").write_text(
        "import os, time\ndef f(trial):\n    while not os.path.exists(os.environ['GO']):\n"
        "        time.sleep(0.01)\n    return 1.0\n")
    url = f"sqlite:///{tmp_path / 'db.db'}"
    path = write(tmp_path, f"objective: gated.py:f\nstorage: {url}\n{SPACE}")
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "worker", str(path), *options],
                            env={**env, "GO": str(go)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)
    return proc, url, go


def _trials(url: str) -> list[ts.FrozenTrial]:
    try:
        return ts.load_study("s", url).trials
    except ts.StudyNotFound:
        return []


def test_an_ignored_sigint_stays_ignored(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A script's background job (``tunesmith worker a.yaml &``) starts with SIGINT ignored: a
    Ctrl-C meant for the script must not stop it (the handler of Ctrl-C is installed only otherwise)."""
    import signal
    import time

    proc, url, go = _gated_worker(tmp_path, subprocess_env, "--n-trials", "2",
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60  # until the first trial runs, past where a handler would be installed
    while not ((tmp_path / "db.db").exists() and any(t.state.value == "running" for t in _trials(url))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0].decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)  # (a sleep of 2.5 s stood for that wait: under load it came first)
    go.touch()
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert [t.state.value for t in _trials(url)] == ["complete", "complete"]


def test_a_home_folder_path_in_a_study_file_elsewhere_is_not_anchored_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a relative SQLite path is relative to the study file's folder, but "~/a.db" is the home folder's
    monkeypatch.setenv("HOME", str(tmp_path))
    project = tmp_path / "project"
    project.mkdir()
    (project / "obj.py").write_text(OBJ)
    ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'home.db'}", name="h")
    path = write(project, "name: h\nobjective: obj.py:f\nstorage: sqlite:///~/home.db\n")
    assert main(["worker", str(path), "--n-trials", "1"]) == 0
    assert len(ts.load_study("h", f"sqlite:///{tmp_path / 'home.db'}").trials) == 1
    assert not (project / "~").exists()


@pytest.mark.parametrize("mode", [0o1777, 0o777])
def test_a_folder_others_may_add_modules_to_is_not_imported_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  mode: int) -> None:
    """A study file's or script's folder every user may add files to (/tmp, sticky or not) went on ``sys.path``
    (after the installed packages): an optional module a script probes (``try: import X``) was found there,
    another user's, and ran. Such a folder is left off; a module that is then not found names it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    (shared / "probing_sec8.py").write_text(
        "try:\n    import optional_sec8\nexcept ImportError:\n    optional_sec8 = None\n"
        "def f(trial):\n    return 0.0 if optional_sec8 is None else optional_sec8.VALUE\n")
    (shared / "optional_sec8.py").write_text("VALUE = 42.0\n")  # planted by another user
    (shared / "module_sec8.py").write_text(OBJ)
    monkeypatch.chdir(tmp_path)
    fn = load_objective("probing_sec8.py:f", shared)
    assert "optional_sec8" not in sys.modules and fn(SimpleNamespace(params={})) == 0.0
    assert str(shared) not in sys.path
    with pytest.raises(StudyFileError, match=rf"no module named 'module_sec8'\) \(not looked for in {shared}, which can "
                                             rf"be written by every user \(mode {mode:o}\), so a module"):
        load_objective("module_sec8:f", shared)
    monkeypatch.chdir(shared)  # the working folder as well: named once
    with pytest.raises(StudyFileError) as said:
        load_objective("module_sec8:f", shared)
    assert str(said.value).count(str(shared)) == 1, said.value
    shared.chmod(0o755)  # the user's own folder: imported from, as before
    assert load_objective("module_sec8:f", shared)(SimpleNamespace(params={"x": 0.25})) == 0.0
    for name in ("probing_sec8", "module_sec8", "optional_sec8"):
        sys.modules.pop(name, None)  # not monkeypatch.delitem: that would put them back


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="runs as another user: root only")
@pytest.mark.parametrize("uid", [65534, 54321], ids=["shared-group", "unlisted-user"])
def test_a_folder_a_primary_group_other_users_share_may_write_is_not_imported_from(uid: int) -> None:
    """Group-writable by the user's primary group, where other users share it (nobody's nogroup is also _apt's
    and sync's on Debian; ``users`` elsewhere): any of them may add a module, as in /tmp. So is one of a
    container's ``--user 54321`` (no entry in /etc/passwd) under umask 002: no database says its group is its
    alone. The message names the fix in the user's hands for a folder of theirs (it named only moving the
    files): chmod g-w."""
    import grp
    import pwd
    import shutil
    import tempfile

    from conftest import said_as

    if os.geteuid() != 0:
        pytest.skip("needs root (setuid)")
    if uid == 65534 and len([u for u in pwd.getpwall() if u.pw_gid == 65534]) + len(grp.getgrgid(65534).gr_mem) < 2:
        pytest.skip("needs a primary group other users share")
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's root is root's alone
    try:
        shared.chmod(0o775)
        os.chown(shared, uid, uid)
        (shared / "module_group_sec8.py").write_text(OBJ)

        def load() -> None:
            load_objective("module_group_sec8:f", shared)

        said = said_as(uid, uid, load)  # grp and pwd imported above: an unlisted uid may not read the stdlib here
        assert f"not looked for in {shared}, which can be written by your primary group (gid {uid}, mode 775)" in said, said
        assert f"or install them, or keep others out of a folder of yours: chmod g-w {shared})" in said, said
        shared.chmod(0o755)
        assert said_as(uid, uid, load) == "ok"
    finally:
        shutil.rmtree(shared)


def test_a_script_left_off_the_path_is_still_imported_by_spawned_processes(tmp_path: Path,
                                                                           subprocess_env: dict[str, str]) -> None:
    """With its folder left off ``sys.path`` (every user may add files there, as /tmp), a process started with
    spawn (a DataLoader's workers or a ``spawn`` pool on macOS) could not import the script its functions
    pickle by: the pool waited forever for its worker. The script alone stays importable by its name (its
    neighbours do not), through a private folder removed when the command ends. That folder holds a copy of
    what the command ran: through a link, a script replaced in the shared folder while the study ran was what
    the spawned processes imported. Folders left by killed processes of this machine are removed."""
    from tunesmith.cli.studyfile import _host

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "spawning_rev91.py").write_text(textwrap.dedent("""\
        import multiprocessing, os
        def square(v):
            return v * v
        def f(trial):
            planted = __file__ + ".new"  # another user replaces the script once it runs
            with open(planted, "w") as out:
                out.write("def square(v):\\n    return -1.0\\n")
            os.replace(planted, __file__)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                return pool.map_async(square, [trial.params["x"]]).get(timeout=60)[0]
        """))
    (shared / "neighbour_rev91.py").write_text("VALUE = 1\n")
    (shared / "probe_rev91.py").write_text("import neighbour_rev91\n")
    path = write(shared, f"objective: spawning_rev91.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{SPACE}")
    temp = tmp_path / "temp"
    temp.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    killed = temp / f"tunesmith-script-{_host()}-{ended.pid}-abc"  # a SIGKILLed run's folder
    live = temp / f"tunesmith-script-{_host()}-{os.getpid()}-abc"  # a running one's
    for folder in (killed, live):
        folder.mkdir(mode=0o700)
        (folder / "spawning_rev91.py").write_text(OBJ)
    env = {**subprocess_env, "TMPDIR": str(temp)}
    run = subprocess.run([sys.executable, "-m", "tunesmith", "run", str(path), "--n-trials", "1"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    (trial,) = _trials(f"sqlite:///{tmp_path / 'db.db'}")
    assert trial.state.value == "complete" and trial.value == pytest.approx(trial.params["x"] ** 2)
    assert os.listdir(temp) == [live.name]  # its own private folder is gone, and the killed run's
    probe = write(shared, f"objective: probe_rev91.py:f\n{SPACE}", name="p.yaml")
    run = subprocess.run([sys.executable, "-m", "tunesmith", "run", str(probe), "--n-trials", "1"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "No module named 'neighbour_rev91' (not looked for in" in run.stderr, run.stderr


def test_a_script_named_as_an_imported_module_is_imported_by_spawned_processes(tmp_path: Path,
                                                                               subprocess_env: dict[str, str]) -> None:
    """A script named like a module the process imported (``json.py``) is loaded as ``tunesmith_objective_json``
    and its functions pickle by that name; in a folder of the user's own (on ``sys.path``) no file had that
    name, so a process started with spawn could not import it and the pool waited for a worker that died."""
    mine = tmp_path / "mine"  # not the working folder, which ``python -m`` puts first on the path
    mine.mkdir()
    (mine / "json.py").write_text(textwrap.dedent("""\
        import multiprocessing
        def square(v):
            return v * v
        def f(trial):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                return pool.map_async(square, [trial.params["x"]]).get(timeout=30)[0]
        """))
    path = write(mine, f"objective: json.py:f\nstorage: sqlite:///{tmp_path / 'db.db'}\n{SPACE}")
    temp = tmp_path / "temp"
    temp.mkdir()
    run = subprocess.run([sys.executable, "-m", "tunesmith", "run", str(path), "--n-trials", "1"], cwd=tmp_path,
                         env={**subprocess_env, "TMPDIR": str(temp)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    (trial,) = _trials(f"sqlite:///{tmp_path / 'db.db'}")
    assert trial.state.value == "complete" and trial.value == pytest.approx(trial.params["x"] ** 2), trial.error
    assert os.listdir(temp) == []  # its private folder is gone with the command


def test_a_script_runs_from_its_source_not_from_a_pycache_file_beside_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An objective script was loaded as Python imports a module: from ``__pycache__/<name>.cpython-*.pyc``
    beside it where that file's recorded size and time match the script's. In a folder every user may add
    files to (/tmp), another user could plant that file, and their code ran in place of the script."""
    import importlib.util
    import py_compile

    monkeypatch.setattr(sys, "path", list(sys.path))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    script = shared / "cached_rev100.py"
    script.write_text("def f(trial):\n    return 1.0\n")
    planted = tmp_path / "planted.py"
    planted.write_text("def f(trial):\n    return 6.0\n")  # the same size
    st = script.stat()
    os.utime(planted, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same time
    cached = importlib.util.cache_from_source(str(script))
    py_compile.compile(str(planted), cfile=cached, dfile=str(script), doraise=True)
    try:
        assert load_objective("cached_rev100.py:f", shared)(SimpleNamespace(params={})) == 1.0
    finally:
        sys.modules.pop("cached_rev100", None)


def test_a_worker_s_summary_says_what_it_ran_beside_the_study_s_totals(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A second worker on a shared study printed the study's totals alone ("5 finished trials"): after a kill
    or an outage a team could not tell what this machine had run. It now says both."""
    path, db = _pausing_study(tmp_path, "return trial.params['x']")

    def said(out: str) -> Counter[str]:
        ran = re.search(r"this worker ran (\d+) trials? \(([^)]*)\); study 's': \d+ finished trials? in ", out)
        assert ran, out
        counts = Counter({state: int(n) for n, state in (part.split(" ") for part in ran[2].split(", "))})
        assert counts.total() == int(ran[1]), out
        return counts

    assert main(["worker", str(path), "--n-trials", "3"]) == 0
    first = said(capsys.readouterr().out)
    assert first == Counter(t.state.value for t in ts.load_study("s", db).trials)  # all of them its own
    assert main(["worker", str(path), "--n-trials", "2"]) == 0
    second = said(capsys.readouterr().out)
    trials = ts.load_study("s", db).trials
    assert len(trials) == 5 and 2 <= second.total() <= 2 + sum(t.system.n_resumes for t in trials[:3]), second


def test_a_file_with_a_line_too_long_to_tokenize_cheaply_is_digested_by_its_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From Python 3.12 the tokenizer copies a token's whole line into each token: the code digest of a 400 KB
    file of one line of 80,000 f"" took 45 s on 3.12.1 (quadratic in the line). A line over MAX_LINE bytes makes
    the file digested by its bytes, on every Python (digests stay the same from one to another): the tokens
    visited are counted, not timed; a file of ordinary lines is still digested by its tokens, comments aside."""
    import tokenize

    from tunesmith import code

    visited = [0]
    tokens = tokenize.generate_tokens

    def counted(readline: Any) -> Any:
        for tok in tokens(readline):
            visited[0] += 1
            yield tok

    monkeypatch.setattr(tokenize, "generate_tokens", counted)
    line = ("x = [" + ", ".join('f""' for _ in range(80_000)) + "]\n").encode()
    assert len(line) < code.MAX_TOKENIZED
    assert code.code_digest(line) == hashlib.sha256(line).hexdigest()
    assert visited[0] == 0, visited  # before: 80,003 tokens of a 400 KB line
    # a CRLF checkout of the same long-lined file: the same code (as the objective's modules past the budget)
    assert code.code_digest(line.replace(b"\n", b"\r\n")) == code.code_digest(line)
    ordinary = ("y = [" + ", ".join('f"{a}"' for _ in range(1_000)) + "]\n").encode()  # 7 KB a line
    assert code.code_digest(ordinary + b"# a note\n") == code.code_digest(ordinary.replace(b"\n", b"\r\n"))
    assert visited[0] > 2_000


#: an objective that names a local module in a branch it never takes: the digest reads that module, Python does not
_NEVER_IMPORTS = ("def f(trial):\n    if trial.params['x'] > 2:  # never\n        import helpers\n"
                  "    return trial.params['x']\n")


def _worker_limited(study_file: Path, env: dict[str, str], limit: int) -> subprocess.CompletedProcess[str]:
    """``tunesmith worker STUDY_FILE --n-trials 1`` in a process of at most ``limit`` bytes of address space."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "tunesmith", "worker", str(study_file), "--n-trials", "1"],
                          env=env, capture_output=True, text=True, timeout=120, preexec_fn=cap, check=False)


def test_a_sparse_file_named_as_a_local_module_is_not_read_whole(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The code digest read each local module the objective names whole (``Path.read_bytes``): a sparse file of
    16 GB that another writer of the project's folder named ``helpers.py`` (no disk of theirs spent), which the
    objective imports in a branch it never takes, stopped ``tunesmith worker`` with MemoryError (or, without a
    limit, filled the machine's memory). A file over MAX_READ bytes is digested by its size and its first bytes."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study_file = _machine(tmp_path / "a", url, _NEVER_IMPORTS.encode())
    with open(tmp_path / "a" / "helpers.py", "wb") as f:
        f.truncate(16 * 2**30)  # sparse: 16 GB of zeros, no block written
    done = _worker_limited(study_file, subprocess_env, 6 * 2**30)
    assert done.returncode == 0, done.stderr[-3000:]
    stored = ts.load_study("w", url).storage.get_study("w").config["objective_code"]
    assert sorted(stored["files"]) == ["helpers.py", "obj.py"]
    assert [t.state for t in ts.load_study("w", url).trials] == [TrialState.COMPLETE]


def _bytes_read() -> int:
    """The bytes this process has read with read(2) and the like (Linux's /proc/self/io), or -1."""
    try:
        return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return -1


def test_many_sparse_files_named_as_local_modules_are_read_no_more_than_four_max_reads_together(
        tmp_path: Path) -> None:
    """Each local module was read up to MAX_READ (64 MiB), however many: 100 sparse files of 16 GB named by imports
    the objective never takes took 93 s of the digest. All modules together are read up to MODULES_READ now; the
    rest are digested by their sizes, each still named (a change of size is still seen)."""
    import importlib.util

    from tunesmith import code

    if _bytes_read() < 0:
        pytest.skip("no /proc/self/io to count the bytes read")
    folder = tmp_path / "p"
    folder.mkdir()
    names = [f"big{i:02d}" for i in range(12)]
    (folder / "obj.py").write_text("def f(trial):\n    if trial is None:  # never\n"
                                   + "".join(f"        import {n}\n" for n in names) + "    return 1.0\n")
    for i, name in enumerate(names):
        with open(folder / f"{name}.py", "wb") as f:
            f.truncate(2**30 + i)  # sparse: a GB each, no disk spent
    spec = importlib.util.spec_from_file_location("obj_of_big_modules", folder / "obj.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = _bytes_read()
    found = code.objective_code(module.f)
    read = _bytes_read() - before
    assert found is not None and sorted(found[3]) == sorted(["obj.py", *(f"{n}.py" for n in names)])
    assert len(set(found[3].values())) == len(names) + 1  # each module its own digest, by its size past the bound
    assert code.MODULES_READ <= read < code.MODULES_READ + 2**20, read  # before: 12 x 64 MiB


OPENS_A_TERMINAL = """
import os, sys
sys.path[:0] = [{src!r}]
from pathlib import Path
from tunesmith.code import read_code
from tunesmith.paths import NotRegularFile
try:
    read_code(Path({name!r}))
except NotRegularFile as exc:
    print("passed over:", exc.kind)
try:
    os.close(os.open("/dev/tty", os.O_RDONLY))
    print("a controlling terminal")
except OSError:
    print("no controlling terminal")
"""


@pytest.mark.skipif(not hasattr(os, "openpty") or not hasattr(os, "O_NOCTTY"), reason="no terminals to open")
def test_a_terminal_in_a_local_module_s_place_never_becomes_the_worker_s_controlling_terminal() -> None:
    """A module (or checkpoint) is opened first and looked at as opened: a terminal swapped in was opened without
    O_NOCTTY, so a worker started as a session leader with none (a daemon, setsid) took it as its controlling
    terminal, whose owner could then stop it with a hang-up or read its keyboard signals, though the file was
    passed over as no regular file."""
    master, slave = os.openpty()
    try:
        code = OPENS_A_TERMINAL.format(src=str(Path(__file__).parent.parent / "src"), name=os.ttyname(slave))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              start_new_session=True, stdin=subprocess.DEVNULL, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "passed over: a character device\nno controlling terminal\n", done.stdout


def test_a_local_module_swapped_for_a_fifo_after_it_was_found_is_passed_over(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A local module is found as a regular file, then read: a FIFO put in its place between the two (by another
    writer of the project's folder) was opened for reading and ``tunesmith worker`` waited for a writer forever. The
    file is opened first and looked at as opened (a FIFO never blocks the open): it is passed over, as a module
    gone since it was found. The swap is made where it can land, as the digest opens the module."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study_file = _machine(tmp_path / "a", url, _NEVER_IMPORTS.encode())
    module = tmp_path / "a" / "helpers.py"
    module.write_text("SCALE = 2\n")
    swap = tmp_path / "swap.py"  # run in the worker before tunesmith: swaps at the module's first open
    swap.write_text(textwrap.dedent(f"""
        import os, sys
        target = {str(module)!r}
        def hook(event, args):
            if event == "open" and args and str(args[0]) == target and os.path.isfile(target):
                os.unlink(target)
                os.mkfifo(target)
        sys.addaudithook(hook)
        from tunesmith.cli import main
        sys.exit(main(["worker", {str(study_file)!r}, "--n-trials", "1"]))
    """))
    try:
        done = subprocess.run([sys.executable, str(swap)], env=subprocess_env, capture_output=True, text=True, timeout=60,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("tunesmith worker waited on the FIFO put in place of helpers.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert module.is_fifo()  # the swap happened, and was passed over
    stored = ts.load_study("w", url).storage.get_study("w").config["objective_code"]
    assert sorted(stored["files"]) == ["obj.py"]


def _project_of_each_size(folder: Path) -> Any:
    """An objective whose file names a local module of each way the digest reads one (tokens, CRLF, past the
    budget, over MAX_TOKENIZED, a line over MAX_LINE, exactly MAX_READ bytes and one more), loaded from
    ``folder``: the objective function."""
    from tunesmith import code

    folder.mkdir()
    names = ["tiny", "crlf", "tokens", "budget", "huge", "longline", "exact", "over"]
    (folder / "obj.py").write_text("def f(trial):  # the objective\n    if trial is None:  # never\n"
                                   + "".join(f"        import {n}\n" for n in names) + "    return 1.0\n")
    generated = "".join(f"x{i} = {i * 7919 % 1000003}  # note {i}\n" for i in range(30_000)).encode()  # 900 KB
    modules = {"tiny": b"SCALE = 2\n", "crlf": "名前 = 'ü'  # a note\r\ndef g():\r\n\treturn 名前\r\n".encode(),
               "tokens": generated[:50_000].rpartition(b"\n")[0] + b"\n", "budget": generated,
               "huge": generated * 2, "longline": b"y = '" + b"a" * 12_000 + b"'\r\nz = 1\r\n"}
    for name, source in modules.items():
        (folder / f"{name}.py").write_bytes(source)
    for name, size in (("exact", code.MAX_READ), ("over", code.MAX_READ + 1)):
        with open(folder / f"{name}.py", "wb") as f:  # sparse: no disk spent
            f.truncate(size)
    import importlib.util

    spec = importlib.util.spec_from_file_location("obj_of_each_size", folder / "obj.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.f


def test_the_code_digest_of_each_kind_of_file_stays_what_earlier_versions_stored(tmp_path: Path) -> None:
    """A study stores its objective's digests, and a machine whose copy differs warns: an upgrade that digested the
    same files otherwise would warn of every study's code. These are the digests the versions before MAX_READ
    stored (and the same on Python 3.10 to 3.13); a file over MAX_READ bytes, which they read whole, by its size
    and first MAX_READ bytes."""
    from tunesmith import code

    found = code.objective_code(_project_of_each_size(tmp_path / "p"))
    assert found is not None
    name, function, whole, files = found
    assert (name, function) == ("obj.py", "f")
    assert files == {  # as the versions before MAX_READ stored them
        "obj.py": "6a2d6ac0aabd484ac95b204cf74c631d9b2e9a35800f7b74eb90d70bc4d62139",
        "tiny.py": "e58183b5cf5411757bd29a6f1e8e49b8f38617196be8642fd75dbf10420bfad5",
        "crlf.py": "59f8d1aa77bcfc4bb94f841ab1aec0387052feb5fa828457b279201f7a9c33e1",
        "tokens.py": "554d05564d2a6080274a427bd7fe005d8130918bd99d83812807e1aac72fb4b4",
        "budget.py": "4e05ff024bc9d6f12f1ca7f144154fb958f978147155e594c7423f88b8b88220",
        "huge.py": "269ee3f39ebe0eda8d11bca7644d639a939277f336701f26a665671dc28bd078",
        "longline.py": "e39cc6d7e3237487c2c61ebdbfbe1d78e583f35340b3d96d926ebfcc31b6f864",
        "exact.py": "3b6a07d0d404fab4e23b6d34bc6696a6a312dd92821332385e5af7c01c421351",
        "over.py": "1b3e65020bd624918e39e1f5eeafb6974eeff367b11fc92fa830863b0b4c4c3b",  # its size and first bytes
    }
    assert files["budget.py"] == hashlib.sha256((tmp_path / "p" / "budget.py").read_bytes()).hexdigest()
    assert whole == "371281e7be321cebd95ae380ffb8125539011b995eddc23f8bb630a2acdbf4c7"
