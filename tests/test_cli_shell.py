"""The ``tunesmith`` command as a shell script drives it: output into a pipe whose reader stopped
(``| head -1``), into a full disk (``> /dev/full``), with standard streams closed (``>&-``), each in a
subprocess with and without ``PYTHONUNBUFFERED`` (Python buffers a pipe's output unless it is set)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_faults_storage import _fill, small_fs  # noqa: F401 - the 1 MiB tmpfs fixture

import tunesmith as ts

COMMANDS = [
    ["studies"], ["studies", "--json"], ["show", "s"], ["export", "s"], ["export", "s", "--format", "json"],
    ["importance", "s", "--json"], ["note", "s", "a note"], ["--help"], ["show", "--help"], ["--version"],
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose default storage holds study ``s`` of 12 trials."""
    path = tmp_path_factory.mktemp("shell")
    study = ts.Study({"x": ts.Float(0, 1), "k": ts.Categorical(["a", "b"])}, storage=f"sqlite:///{path / 'tunesmith.db'}",
                     name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] ** 2, n_trials=12)
    return path


def env_of(base: dict[str, str], unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k != "PYTHONUNBUFFERED"}
    return {**env, "PYTHONUNBUFFERED": "1"} if unbuffered else env


def shell(line: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``line`` run by sh in ``folder``, ``TS`` standing for the command."""
    tunesmith = f"{sys.executable} -m tunesmith"
    return subprocess.run(["sh", "-c", line.replace("TS", tunesmith)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_reader_that_stopped_ends_the_command_quietly_with_141(folder: Path, subprocess_env: dict[str, str],
                                                                 argv: list[str], unbuffered: bool) -> None:
    """As `| head -0`: every write meets a closed pipe. Was status 1 from show and studies (rich's own exit),
    120 and "Exception ignored ... BrokenPipeError" from export, note and --help without PYTHONUNBUFFERED."""
    child = subprocess.Popen([sys.executable, "-m", "tunesmith", *argv], cwd=folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env_of(subprocess_env, unbuffered))
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    assert (child.wait(timeout=120), err) == (141, "")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_reader_that_stops_midway_ends_the_export_with_141(tmp_path: Path, subprocess_env: dict[str, str],
                                                             unbuffered: bool) -> None:
    """`TS export NAME | head -1` on an export larger than a pipe holds: under PYTHONUNBUFFERED the
    system's partial write was taken as the whole, the rest dropped, status 0."""
    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'tunesmith.db'}", name="big",
                     sampler="random", seed=0)
    for i in range(1500):  # about 150 KB of CSV: more than a pipe holds (64 KB)
        study.add_trial(params={"x": 1 / (i + 3)}, value=1 / (i + 7))
    child = subprocess.Popen([sys.executable, "-m", "tunesmith", "export", "big"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_of(subprocess_env, unbuffered))
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline().startswith(b"number,state,value")
    child.stdout.close()
    err = child.stderr.read().decode()
    assert (child.wait(timeout=120), err) == (141, "")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_full_disk_on_standard_output_is_one_line_and_status_2(folder: Path, subprocess_env: dict[str, str],
                                                                 argv: list[str], unbuffered: bool) -> None:
    """Was status 120 with "Exception ignored in: <_io.TextIOWrapper name='<stdout>'...", or 0 (--help);
    under PYTHONUNBUFFERED, "error: [Errno 28] No space left on device", not naming standard output."""
    out = shell(f"TS {' '.join(repr(a) for a in argv)} > /dev/full", folder, env_of(subprocess_env, unbuffered))
    assert out.returncode == 2, out.stderr
    assert out.stderr.endswith("error: cannot write to standard output: No space left on device\n"), out.stderr
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [a for a in COMMANDS if "--version" not in a], ids=" ".join)
def test_a_closed_standard_output_is_said_not_ignored(folder: Path, subprocess_env: dict[str, str],
                                                      argv: list[str]) -> None:
    """`TS show s >&-`: was status 0 with nothing said (studies, show, importance), a traceback (export)."""
    out = shell(f"TS {' '.join(repr(a) for a in argv)} >&-", folder, env_of(subprocess_env, False))
    assert out.returncode == 2, out.stderr
    assert out.stderr.endswith("error: cannot write to standard output: it is closed\n"), out.stderr


def test_closed_standard_input_and_error(folder: Path, subprocess_env: dict[str, str]) -> None:
    """`delete` with stdin closed was an AttributeError traceback; with stderr closed, the message of
    `export -o` went to standard output (print's file=None is stdout), mixed with what a script reads."""
    env = env_of(subprocess_env, False)
    out = shell("TS delete s <&-", folder, env)
    assert out.returncode == 2 and "pass --yes to confirm" in out.stderr and "Traceback" not in out.stderr
    out = shell("TS export s -o trials.csv 2>&-", folder, env)
    assert (out.returncode, out.stdout) == (0, "")
    assert (folder / "trials.csv").read_text().startswith("number,")


@pytest.mark.parametrize("into", ["closed", "pipe"])
def test_process_workers_whose_output_goes_nowhere_do_not_crash(tmp_path: Path, subprocess_env: dict[str, str],
                                                               into: str) -> None:
    """`TS run s.yaml --n-jobs 2 >&-` or `| head -0`, the objective printing: each worker process crashed at its
    last flush (a traceback, "worker process died"), sys.stdout being None or the pipe closed; now every
    trial completes and the command ends as any does when its output cannot be written."""
    (tmp_path / "obj.py").write_text("def objective(trial):\n    print('trial', trial.number)\n"
                                     "    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text("objective: obj.py:objective\nsampler: random\nn_trials: 4\nn_jobs: 2\n"
                                     "space:\n  x: {type: float, low: 0, high: 1}\n")
    env = env_of(subprocess_env, False)
    if into == "closed":
        out = shell("TS run s.yaml --no-progress >&-", tmp_path, env)
        status, err = out.returncode, out.stderr
        assert "cannot write to standard output: it is closed" in err
    else:
        child = subprocess.Popen([sys.executable, "-m", "tunesmith", "run", "s.yaml", "--no-progress"], cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        err = child.stderr.read()
        status = child.wait(timeout=120)
    assert "Traceback" not in err and "died" not in err, err
    assert status == {"closed": 2, "pipe": 141}[into]
    study = ts.load_study("s", f"sqlite:///{tmp_path / 'tunesmith.db'}")
    assert [t.state for t in study.trials] == [ts.TrialState.COMPLETE] * 4


def test_show_into_a_pipe_keeps_every_value_of_a_wide_table_whole(tmp_path: Path,
                                                                  subprocess_env: dict[str, str]) -> None:
    """`TS show NAME | grep ...`: a table wider than 1,000 columns (14 parameters of 91 characters) had
    its values cut to "aaaa…" though no terminal was there to fit."""
    space = {f"p{i}": ts.Categorical(["a" * 90 + f"{i:x}", "b" * 90 + f"{i:x}"]) for i in range(14)}
    study = ts.Study(space, storage=f"sqlite:///{tmp_path / 'tunesmith.db'}", name="wide", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    out = shell("TS show wide | cat", tmp_path, env_of(subprocess_env, False))
    assert out.returncode == 0 and "…" not in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and all(v in rows[0] for v in study.trials[0].params.values())


def test_each_subcommands_help_ends_with_an_example_that_parses(tmp_path: Path,
                                                                subprocess_env: dict[str, str]) -> None:
    """`TS CMD --help` listed the options and no command line to start from; the example is printed
    whole on a line of its own (argparse folded it, so that it could not be copied), and is a command
    line the parser takes."""
    import shlex

    from tunesmith.cli import SUBCOMMANDS, build_parser

    names = [cmd.name for cmd in SUBCOMMANDS]
    env = {**env_of(subprocess_env, False), "COLUMNS": "60"}
    out = shell("; ".join(f"echo '@@ {n}'; TS {n} --help" for n in names), tmp_path, env)
    assert out.returncode == 0, out.stderr
    helps = dict(part.split("\n", 1) for part in out.stdout.split("@@ ")[1:])
    for name in names:
        example = helps[name].rstrip("\n").rsplit("\n", 1)[1].strip()
        assert helps[name].rstrip("\n").endswith(f"example:\n  {example}") and example.startswith(f"tunesmith {name} ")
        words = shlex.split(example, comments=True)
        build_parser().parse_args(words[1:words.index(">")] if ">" in words else words[1:])  # no SystemExit


def test_the_command_alone_lists_the_commands_and_a_misspelt_choice_gets_the_closest(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`TS` alone printed the usage line and "the following arguments are required: COMMAND", not the
    commands; `TS shwo` and `--kind histry` listed every choice and not the one meant."""
    env = env_of(subprocess_env, False)
    out = shell("TS", tmp_path, env)
    assert out.returncode == 2 and out.stdout == ""
    assert "    show      print a study's best trials as a table\n" in out.stderr
    assert out.stderr.endswith("tunesmith: error: name a command (tunesmith COMMAND --help lists its options)\n")
    out = shell("TS shwo s; echo $?; TS plot s --kind histry -o h.png; echo $?", tmp_path, env)
    assert out.stdout == "2\n2\n"
    assert "tunesmith: error: argument COMMAND: invalid choice: 'shwo' (choose from " in out.stderr
    # the quotes around the choices are argparse's, and differ between Python versions (3.13.1 dropped them)
    assert re.search(r"import'?\) \(did you mean 'show'\?\)\n", out.stderr)
    assert re.search(r"process'?\) \(did you mean 'history'\?\)\n", out.stderr)
    out = shell("TS studies --sort zzz", tmp_path, env)  # nothing close: argparse's message as it was
    assert out.returncode == 2 and re.search(r"\(choose from '?created'?, .*'?last'?\)\n$", out.stderr)
    assert "did you mean" not in out.stderr


def test_an_output_file_that_cannot_be_written_is_named(folder: Path, subprocess_env: dict[str, str]) -> None:
    """`TS export s -o /dev/full` said "No space left on device" and no file; a read-only folder named the
    temporary file beside the output (".t.csv.2b0e96fa181e.tmp"), a name the user never gave."""
    out = shell("TS export s -o /dev/full", folder, env_of(subprocess_env, False))
    assert (out.returncode, out.stderr) == (2, "tunesmith export: error: [Errno 28] No space left on device: "
                                               "'/dev/full'\n")


def test_export_to_standard_output_is_utf8_whatever_the_locale(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`TS export NAME > trials.csv` under a Latin-1 (or Windows' cp1252) encoding failed on the first
    '日' ("'latin-1' codec can't encode characters"); it now writes the bytes -o writes."""
    study = ts.Study({"kind": ts.Categorical(["日本語", "café"])}, storage=f"sqlite:///{tmp_path / 'tunesmith.db'}",
                     name="u", sampler="grid")
    study.optimize(lambda t: 1.0, n_trials=2)
    env = {**env_of(subprocess_env, False), "PYTHONIOENCODING": "latin-1"}
    out = subprocess.run([sys.executable, "-m", "tunesmith", "export", "u"], cwd=tmp_path, env=env,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert shell("TS export u -o u.csv", tmp_path, env).returncode == 0
    assert out.stdout == (tmp_path / "u.csv").read_bytes() and "日本語" in out.stdout.decode("utf-8")


def test_studies_matching_nothing_leaves_standard_output_empty(folder: Path, subprocess_env: dict[str, str]) -> None:
    """`TS studies mlp | grep -q mlp` was true with no study mlp: "no study matches 'mlp' ..." went to
    stdout. The note now goes to stderr, as "no studies in ..." of an empty storage."""
    env = env_of(subprocess_env, False)
    out = shell("TS studies mlp | grep -q mlp", folder, env)
    assert out.returncode == 1 and "no study matches 'mlp'" in out.stderr
    out = shell("touch empty.db && TS studies --storage sqlite:///empty.db", folder, env)
    assert (out.returncode, out.stdout) == (0, "") and "no studies in" in out.stderr
    out = shell("TS studies --storage sqlite:///emtpy.db", folder, env)  # a typo: no such file, an error
    assert (out.returncode, out.stdout) == (2, "") and "there is no such database file" in out.stderr


def test_studies_json_lists_the_table_s_columns_for_a_script(folder: Path, subprocess_env: dict[str, str]) -> None:
    """`studies` had no machine-readable form; `--json` prints the rows as a list of objects, `[]` for none."""
    env = env_of(subprocess_env, False)
    out = shell("TS studies --json", folder, env)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    best = min(t.value for t in ts.Study.load("s", f"sqlite:///{folder / 'tunesmith.db'}").trials)
    assert {k: row[k] for k in ("name", "direction", "sampler", "trials", "complete", "best_value", "test_results")} == {
        "name": "s", "direction": "minimize", "sampler": "random", "trials": 12, "complete": 12, "best_value": best,
        "test_results": None}
    assert isinstance(row["last_trial"], float)
    for line in ("TS studies 'zz-*' --json", "touch empty.db && TS studies --json --storage sqlite:///empty.db"):
        out = shell(line, folder, env)
        assert (out.returncode, out.stdout) == (0, "[]\n") and out.stderr


def test_output_dash_is_standard_output_for_export_and_refused_where_the_suffix_picks_the_format(
    folder: Path, subprocess_env: dict[str, str]
) -> None:
    """`export -o -` wrote a file named '-', and `report -o -` (always HTML) refused '-' as a file
    without a suffix: both write to standard output now; plot and compare, whose suffix picks the
    format, refuse it saying so."""
    env = env_of(subprocess_env, False)
    for fmt in ("csv", "json"):
        out, plain = shell(f"TS export s --format {fmt} -o -", folder, env), shell(f"TS export s --format {fmt}", folder, env)
        assert (out.returncode, out.stdout) == (0, plain.stdout) and out.stdout
    report = shell("TS report s -o -", folder, env)
    assert report.returncode == 0 and report.stdout.startswith("<!DOCTYPE html>") and "</html>" in report.stdout
    assert not (folder / "-").exists()
    for line in ("TS plot s -o -", "TS compare s.yaml -o -"):
        out = shell(line, folder, env)
        assert out.returncode == 2 and "'-' (standard output): the file's suffix picks what is written" in out.stderr
        assert "./-" not in out.stderr and "such as out." in out.stderr  # ./- has no suffix: refused as well


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_show_and_studies_under_a_locale_that_cannot_encode_a_name(tmp_path: Path, subprocess_env: dict[str, str],
                                                                    encoding: str) -> None:
    """Both failed with "'ascii' codec can't encode characters" (status 2) on a '日' in a name or value; what
    the encoding cannot hold is now written as \\u65e5, as Python writes it to stderr."""
    storage = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    study = ts.Study({"kind": ts.Categorical(["日本語"])}, storage=storage, name="研究", sampler="grid")
    study.optimize(lambda t: 1.0, n_trials=1)
    env = {**env_of(subprocess_env, False), "PYTHONIOENCODING": encoding}
    for argv, shown in ((["show", "研究"], b"\\u65e5\\u672c\\u8a9e"), (["studies"], b"\\u7814\\u7a76")):
        out = subprocess.run([sys.executable, "-m", "tunesmith", *argv], cwd=tmp_path, env=env, capture_output=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert shown in out.stdout and b"\\u7814\\u7a76" in out.stdout  # the value, the name


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_an_output_file_that_cannot_be_replaced_is_left_whole_and_named(folder: Path, small_fs: Path,  # noqa: F811
                                                                        subprocess_env: dict[str, str],
                                                                        how: str) -> None:
    """`TS export s -o t.csv` over an old t.csv on a full disk, or in a folder remounted read-only: the old
    file is left whole and no temporary file stays; the error named no file (full) or the temporary file
    beside it (".t.csv.2b0e96fa181e.tmp", read-only)."""
    old = small_fs / "t.csv"
    old.write_text("the old export\n")
    if how == "full":
        _fill(small_fs)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    out = shell(f"TS export s -o {old}", folder, env_of(subprocess_env, False))
    why = "No space left on device" if how == "full" else "Read-only file system"
    assert (out.returncode, out.stderr) == (2, f"tunesmith export: error: [Errno {28 if how == 'full' else 30}] {why}: "
                                               f"'{old}'\n")
    assert old.read_text() == "the old export\n" and sorted(p.name for p in small_fs.iterdir()) == \
        sorted(["t.csv"] + (["filler"] if how == "full" else []))


@pytest.mark.parametrize("answer", ["n", "y"])
def test_delete_asks_on_stderr_when_stdout_is_redirected(tmp_path: Path, subprocess_env: dict[str, str],
                                                         answer: str) -> None:
    """`TS delete NAME > log` at a terminal: the question went into log (input() writes it to stdout), and
    the command seemed to hang. It is asked on stderr now, as rm -i asks; the answer still decides."""
    import os
    import pty

    storage = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=storage, name="s")
    leader, follower = pty.openpty()  # the terminal the user types at
    try:
        child = subprocess.Popen([sys.executable, "-m", "tunesmith", "delete", "s"], cwd=tmp_path, stdin=follower,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_of(subprocess_env, False),
                                 text=True)
        os.write(leader, f"{answer}\n".encode())
        out, err = child.communicate(timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    assert "delete study 's' and its 0 trials from" in err and "[y/N]" in err and "[y/N]" not in out
    deleted = answer == "y"
    assert (child.returncode, out.startswith("deleted study 's'" if deleted else "nothing deleted")) == (1 - deleted, True)
    assert [r.name for r in ts.SQLStorage(storage).list_studies()] == ([] if deleted else ["s"])


def test_export_refuses_to_write_over_a_database(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`TS export s -o tunesmith.db` (a slip of tab completion) replaced the database, and every study in it,
    with the CSV; it is refused before any work, naming the file, and the database is left as it was."""
    storage = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=storage, name="s").optimize(lambda t: t.params["x"], n_trials=2)
    out = shell("TS export s -o tunesmith.db", tmp_path, env_of(subprocess_env, False))
    assert out.returncode == 2 and "'tunesmith.db' is a SQLite database" in out.stderr
    assert len(ts.load_study("s", storage).trials) == 2


def test_export_refuses_to_write_over_a_databases_write_ahead_log(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`TS export s -o tunesmith.db-wal` replaced the log of trials committed but not yet copied into the
    database (a process has it open): refused like the database itself, and the log left as it was."""
    storage = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=storage, name="s")
    study.optimize(lambda t: t.params["x"], n_trials=2)  # the study kept open: its log stays
    wal = tmp_path / "tunesmith.db-wal"
    before = wal.read_bytes()
    out = shell("TS export s -o tunesmith.db-wal", tmp_path, env_of(subprocess_env, False))
    assert out.returncode == 2 and "'tunesmith.db-wal' is a file of the SQLite database" in out.stderr, out.stderr
    assert wal.read_bytes() == before
    assert len(study.trials) == 2


def test_export_to_dev_stdout_into_a_pipe(folder: Path, subprocess_env: dict[str, str]) -> None:
    """`TS export s -o /dev/stdout | cat` failed: "No such file or directory: '/proc/N/fd/pipe:[...]'", the
    link resolved to a pipe's name, which no file has."""
    out = shell("TS export s -o /dev/stdout | cat", folder, env_of(subprocess_env, False))
    assert out.returncode == 0 and out.stdout.startswith("number,state,value") and out.stdout.count("\n") == 13


class _Writer:
    """A notebook's kind of standard output: write and flush, no encoding, no file descriptor."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_export_in_process_to_a_standard_output_without_encoding_or_descriptor(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`main(["export", ...])` from a program whose sys.stdout is its own writer: failed with
    AttributeError (no `encoding`) where it wrote the CSV."""
    from tunesmith.cli import main

    out = _Writer()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["export", "s", "--storage", f"sqlite:///{folder / 'tunesmith.db'}"]) == 0
    assert "".join(out.parts).count("\n") == 13


def test_a_broken_pipe_that_is_not_standard_output_leaves_the_callers_output_alone(
        folder: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`export -o FIFO` whose reader left, run in-process: the broken pipe was taken for standard output's,
    which was pointed at /dev/null for good (the calling program printed nothing after) and the error went
    unsaid. Now it is said, status 2, and the caller's standard output still writes."""
    import os
    import threading

    from tunesmith.cli import main

    big = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'big.db'}", name="big", sampler="random")
    big.optimize(lambda t: t.params["x"], n_trials=2000)  # more than a pipe holds
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_RDONLY)))
    reader.start()
    status = main(["export", "big", "--storage", f"sqlite:///{tmp_path / 'big.db'}", "-o", str(fifo)])
    reader.join()
    print("still here")
    out, err = capfd.readouterr()
    assert (status, out) == (2, "still here\n")
    assert "Broken pipe" in err and str(fifo) in err


def test_export_in_process_leaves_the_callers_encoding_as_it_was(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`main(["export", ...])` from a program whose standard output is Latin-1: the CSV is UTF-8, and
    what the program prints after is Latin-1 again (its stdout stayed UTF-8 for good)."""
    import io

    from tunesmith.cli import main

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="latin-1", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["export", "s", "--storage", f"sqlite:///{folder / 'tunesmith.db'}"]) == 0
    print("é", end="")
    out.flush()
    assert raw.getvalue().endswith(b"\n\xe9")
    assert (out.encoding, out.errors) == ("latin-1", "strict")


@pytest.mark.parametrize("argv", [["studies"], ["show", "s"], ["export", "s"], ["--version"]], ids=" ".join)
def test_main_in_process_with_standard_output_closed_says_so(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """A program that closed its sys.stdout, then called main: "I/O operation on closed file." said as the
    command's error, then raised from main's last flush (a ValueError traceback in the program)."""
    import io

    from tunesmith.cli import main

    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        status = main([*argv, "--storage", f"sqlite:///{folder / 'tunesmith.db'}"] if argv[0] != "--version" else argv)
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    assert capsys.readouterr().err.endswith("error: cannot write to standard output: it is closed\n")
    assert main(["show", "nosuch", "--storage", f"sqlite:///{folder / 'tunesmith.db'}"]) == 2  # said once, as itself
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("cmd", ["run", "worker"])
def test_a_terminal_that_hangs_up_ends_run_and_worker_with_129(tmp_path: Path, subprocess_env: dict[str, str],
                                                              cmd: str) -> None:
    """The terminal closed under the command (an ssh session dropped): the running trial was recorded as
    stopped by SIGHUP, but writing the summary to the gone terminal failed (EIO), then the error about it,
    and the command ended with status 1 instead of the documented 129."""
    import fcntl
    import os
    import termios
    import time

    (tmp_path / "obj.py").write_text("import time\ndef objective(trial):\n    time.sleep(0.3)\n"
                                     "    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text("objective: obj.py:objective\nsampler: random\nn_trials: 200\n"
                                     f"storage: sqlite:///{tmp_path / 'tunesmith.db'}\n"
                                     "space:\n  x: {type: float, low: 0, high: 1}\n")
    leader, follower = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen([sys.executable, "-m", "tunesmith", cmd, "s.yaml"], cwd=tmp_path, stdin=follower,
                             stdout=follower, stderr=follower, env=env_of(subprocess_env, False),
                             preexec_fn=own_terminal)
    os.close(follower)
    url = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a trial done: the command is running its trials
        try:
            if any(t.state is ts.TrialState.COMPLETE for t in ts.load_study("s", url).trials):
                break
        except ts.StudyNotFound:
            pass
        time.sleep(0.1)
    os.close(leader)  # the terminal hangs up: SIGHUP to its foreground group
    assert child.wait(timeout=60) == 129
    trials = ts.load_study("s", url).trials  # the running one failed as stopped (none, were it between two)
    assert {(t.state, t.error) for t in trials} <= {(ts.TrialState.COMPLETE, None),
                                                    (ts.TrialState.FAILED, "interrupted (SIGHUP)")}


def test_main_in_process_under_unbuffered_output_gives_the_program_its_standard_output_back(
        folder: Path, subprocess_env: dict[str, str]) -> None:
    """Under PYTHONUNBUFFERED, main wraps the process's standard output so that a write is whole or an
    error; called from a program, it left that wrapper as the program's sys.stdout for good, and
    dropping it (a program setting sys.stdout to its own writer) closed the process's descriptor 1."""
    program = (
        "import os, sys\n"
        "from tunesmith.cli import main\n"
        "before = sys.stdout\n"
        "assert main(['studies', '--storage', 'sqlite:///tunesmith.db']) == 0\n"
        "same = sys.stdout is before\n"
        "sys.stdout = open(os.devnull, 'w')\n"
        "import gc; gc.collect()\n"
        "os.fstat(1)\n"
        "sys.stdout = before\n"
        "print('same' if same else 'replaced')\n"
    )
    run = subprocess.run([sys.executable, "-c", program], cwd=folder, env=env_of(subprocess_env, True),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "same"


@pytest.mark.parametrize("cmd", [["export", "s", "--format", "csv", "-o", "-"], ["export", "s"], ["report", "s", "-o", "-"]])
def test_export_and_report_to_a_terminal_write_a_stored_name_s_escapes_as_text(
        tmp_path: Path, subprocess_env: dict[str, str], cmd: list[str]) -> None:
    """A worker name of another program's ("\\x1b]52;c;...\\a": a write to the reader's clipboard, or a
    cleared screen) reached the terminal raw through ``export -o -`` (CSV) and ``report -o -``, which
    ``show`` and ``studies`` print escaped. To a terminal they are written as ``\\x1b`` now; a pipe or a
    file gets the data as stored (the report's page writes them as escapes itself, to any output)."""
    import os
    import sqlite3

    db = tmp_path / "tunesmith.db"
    study = ts.Study({"x": ts.Float(0, 1)}, name="s", storage=f"sqlite:///{db}", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=2)
    evil = "\x1b]52;c;aGk=\x07\x1b[2J\x9b2J\rfake"
    with sqlite3.connect(db) as c:  # the CSV has the workers, the report the study's name
        c.execute("UPDATE ts_trials SET worker = ?", (evil,))
        c.execute("UPDATE ts_studies SET name = ?", ("s" + evil,))
    args = [sys.executable, "-m", "tunesmith", *cmd[:1], "s" + evil, *cmd[2:], "--storage", f"sqlite:///{db}"]
    leader, follower = os.openpty()
    child = subprocess.Popen(args, stdout=follower, stderr=subprocess.DEVNULL, env=subprocess_env)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command closed the terminal's other end
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert child.wait(timeout=60) == 0
    text = shown.decode("utf-8")
    assert "\\x1b]52;c;aGk=\\x07\\x1b[2J\\x9b2J\\rfake" in text  # as written, to be read
    assert not any(c in text for c in "\x1b\x07\x9b") and "\rfake" not in text
    piped = subprocess.run(args, capture_output=True, env=subprocess_env, check=True).stdout.decode("utf-8")
    if cmd[0] == "report":  # the page writes control characters as escapes itself, to any output
        assert "s\\x1b]52;c;aGk=\\x07\\x1b[2J\\x9b2J" in piped and not any(c in piped for c in "\x1b\x07\x9b")
    else:
        assert evil in piped or json.dumps(evil)[1:-1] in piped  # the data, whole (JSON escapes it itself)


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()] if tasks.exists() else []


def _alive(pid: int) -> bool:
    try:  # an exited orphan not yet reaped by its new parent is a zombie: gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _start_two_workers(tmp_path: Path, env: dict[str, str], objective: str, progress: str) -> subprocess.Popen[bytes]:
    """`tunesmith run` of ``objective`` (obj.py's f) with `n_jobs: 2` in ``tmp_path``, its stderr in err.txt."""
    (tmp_path / "obj.py").write_text(objective)
    (tmp_path / "s.yaml").write_text("objective: obj.py:f\nn_jobs: 2\nsampler: random\n"
                                     "space: {x: {type: float, low: 0, high: 1}}\n")
    with open(tmp_path / "err.txt", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "tunesmith", "run", "s.yaml", progress], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=err, env=env)


@contextlib.contextmanager
def _two_workers(tmp_path: Path, env: dict[str, str], objective: str, progress: str = "--no-progress") -> Any:
    """The run of :func:`_start_two_workers` and the list its worker processes are kept in, all killed after."""
    import os
    import signal

    workers: list[int] = []
    run = _start_two_workers(tmp_path, env, objective, progress)
    try:
        yield run, workers
    finally:
        run.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_and_wait(run: subprocess.Popen[bytes], pids: list[int], seconds: float) -> bool:
    """`kill -9` of the run; whether the processes ``pids`` were gone within ``seconds`` after."""
    import signal
    import time

    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(map(_alive, pids))


def _wait_for(run: subprocess.Popen[bytes], workers: list[int], db: str, state: str, count: int) -> None:
    """Until study s has ``count`` trials in ``state``, ``workers`` kept the run's worker processes (two)."""
    import time

    deadline, seen = time.monotonic() + 120, 0
    while time.monotonic() < deadline and (len(workers) < 2 or seen < count):
        workers[:] = _children(run.pid)
        with contextlib.suppress(ts.exceptions.StudyNotFound, ts.StorageError):
            seen = len(ts.load_study("s", db).trials_in(state))
        time.sleep(0.05)
    assert len(workers) == 2 and seen >= count, (workers, seen)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the processes' children from /proc")
def test_a_killed_run_leaves_no_worker_process_running_trials(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`kill -9` of `tunesmith run` with `n_jobs: 2` left its two worker processes behind for good: with the
    progress bar's callbacks each waited forever for its parent's answer (the other worker, forked holding
    that pipe's end, kept the read from ending); without, each went on running trials for no one, until
    `n_trials`, or forever under a run with neither n_trials nor timeout. Each now records the trial it ran
    and exits, saying so."""
    db = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    for progress in ("--progress", "--no-progress"):  # with the progress bar's callbacks, and without
        with _two_workers(tmp_path, subprocess_env, "import time\n\ndef f(trial):\n    time.sleep(0.3)\n"
                          "    return trial.params['x']\n", progress) as (run, workers):
            _wait_for(run, workers, db, "complete", 4)
            assert _kill_and_wait(run, workers, 30), (progress, (tmp_path / "err.txt").read_text()[-2000:])
            trials = ts.load_study("s", db).trials
            assert all(t.state is ts.TrialState.COMPLETE for t in trials), [t.state for t in trials]
            said = (tmp_path / "err.txt").read_text()
            assert f"the run's process {run.pid} is gone (killed); this worker stops after recording trial" in said


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the processes' children from /proc")
def test_a_worker_whose_trial_ends_after_its_run_was_killed_exits_without_waiting_on_its_sibling(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A trial that ended after `kill -9` of its run handed a record larger than the pipe holds to a parent
    gone: the other worker, forked holding the pipe's end, kept the write blocked until that worker's own trial
    ended (here 60 s). The worker now looks for its parent before it hands the record over, and exits."""
    objective = (
        "import os, time\nfrom pathlib import Path\n\ndef f(trial):\n"
        "    kids = [int(c) for t in Path(f'/proc/{os.getppid()}/task').iterdir() for c in (t / 'children').read_text().split()]\n"
        "    if os.getpid() != min(kids):\n        time.sleep(60)\n        return 0.0\n"
        "    time.sleep(2)\n    trial.set_attr('blob', 'x' * 4_000_000)\n    return trial.params['x']\n")
    db = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    with _two_workers(tmp_path, subprocess_env, objective) as (run, workers):
        _wait_for(run, workers, db, "running", 2)
        assert _kill_and_wait(run, [min(workers)], 20), (tmp_path / "err.txt").read_text()[-2000:]
        done = ts.load_study("s", db).trials_in("complete")
        assert len(done) == 1 and len(done[0].attrs["blob"]) == 4_000_000, done


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the processes' children from /proc")
def test_a_run_killed_as_its_workers_start_leaves_none_running_trials(tmp_path: Path,
                                                                       subprocess_env: dict[str, str]) -> None:
    """Each worker read its parent's process id once it had started: a run killed in between (here a fork hook
    that sleeps) left workers whose 'parent' was the process that adopted them, and they ran trials for no one,
    forever under a run with no n_trials. The run gives its id to each worker."""
    objective = ("import os, time\n\nos.register_at_fork(after_in_child=lambda: time.sleep(2))\n\n"
                 "def f(trial):\n    time.sleep(0.2)\n    return trial.params['x']\n")
    db = f"sqlite:///{tmp_path / 'tunesmith.db'}"
    with _two_workers(tmp_path, subprocess_env, objective) as (run, workers):
        _wait_for(run, workers, db, "running", 0)
        assert _kill_and_wait(run, workers, 20), (tmp_path / "err.txt").read_text()[-2000:]
        trials = ts.load_study("s", db).trials
        assert trials and all(t.state is ts.TrialState.COMPLETE for t in trials), [t.state for t in trials]
