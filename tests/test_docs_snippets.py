"""The Python blocks of docs/*.md run as written, so the user guide stays true.

A page's blocks (README.md's too) run in order in one namespace, as a reader pastes them into
one script, in a fresh folder. Two HTML comments, invisible on the rendered page, mark what a reader
does not paste:

- ``<!-- not run: REASON -->`` on the line before a block: a fragment or a signature, or a
  block that needs what a test cannot have (a database server on another machine, a Ray
  cluster, a GPU, a download); REASON says which.
- ``<!-- run first:`` ... ``-->``: code run where it stands, standing for what the page
  assumes the reader has (their model, their data), kept small so the page runs in seconds.

An objective that fails with a programming error (a name the page never defined, a parameter
the space does not have) fails the test, though the study itself goes on.

Every fenced block says what it is, so none is left out unseen: ``python``; ``bash``, commands a
reader types, run where they stand in the page's folder (``tunesmith`` as ``python -m tunesmith``,
each command's status 0 or the test fails); ``yaml``, a study file (it has ``objective:``) read as
``tunesmith run`` reads it, or else a space read by ``ts.Space.from_yaml``; ``text``, what a command
prints or a synopsis, not run. ``<!-- not run: REASON -->`` leaves out a bash or yaml block too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!-- not run: .+-->\s*$")
_RUN_FIRST = "<!-- run first:"
_BAD_TRIAL = re.compile(r"trial \d+ failed: (NameError|AttributeError|ImportError|ModuleNotFoundError|SyntaxError|KeyError|TypeError)")


LANGUAGES = ("python", "bash", "yaml", "text")
BASH_TIMEOUT = 300  # seconds for one bash block


@dataclass
class Block:
    line: int  # 1-based line of the block's first code line
    code: str
    run: bool
    lang: str = "python"


def blocks(text: str) -> list[Block]:
    """The page's fenced blocks (``lang`` "" where the fence names none) and ``run first`` comments, in order."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == _RUN_FIRST:
            end = lines.index("-->", i)
            found.append(Block(i + 2, "\n".join(lines[i + 1:end]), True))
            i = end + 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, tag = len(m.group(1)), m.group(2)
        end = i + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        skipped = tag == "text" or i > 0 and bool(_NOT_RUN.match(lines[i - 1]))
        found.append(Block(i + 2, "\n".join(line[indent:] for line in lines[i + 1:end]), not skipped, tag))
        i = end + 1
    return found


def python_blocks(text: str) -> list[Block]:
    """The page's Python blocks and ``run first`` comments, in order."""
    return [b for b in blocks(text) if b.lang == "python"]


def run_bash(block: Block, where: str, folder: Path) -> None:
    """A bash block's commands, as a reader types them, in ``folder``; the first to fail fails the test."""
    # no empty entry where none is set ("src:"): python reads one as the current folder, the block's own
    given = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *([given] if given else [])]),
           "COLUMNS": "120", "OMP_NUM_THREADS": "1",
           "PYTHONSAFEPATH": "1"}  # nor the folder python -m puts first (3.11 on), which the console script does not
    script = f'tunesmith() {{ "{sys.executable}" -m tunesmith "$@"; }}\nset -euo pipefail\n{block.code}\n'
    # a session of its own: a command still running at the timeout is stopped with the shell, not left behind
    shell = subprocess.Popen(["bash", "-c", script], cwd=folder, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = shell.communicate(timeout=BASH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        out, err = shell.communicate()
        pytest.fail(f"{where}: still running after {BASH_TIMEOUT} s (stopped)\n{out[-2000:]}\n{err[-2000:]}")
    assert shell.returncode == 0, f"{where}: status {shell.returncode}\n{out[-2000:]}\n{err[-2000:]}"


def check_yaml(block: Block, where: str, folder: Path) -> None:
    """A study file as ``tunesmith run`` reads it (keys, values, space; the objective is not imported) and its
    study made in memory (sampler, pruner and direction by name; its storage is not opened), else a space.
    Nothing is written: a file named after the study (``name: team/mlp``) could land outside ``folder``."""
    import yaml

    import tunesmith as ts
    from tunesmith.cli.studyfile import StudyFile
    from tunesmith.space.space import load_yaml

    try:
        data = load_yaml(block.code)
        if isinstance(data, dict) and "objective" in data:
            sf = StudyFile.from_dict(data, base_dir=folder)
            given = {k: dict(v) if isinstance(v, dict) else v for k, v in
                     {"direction": sf.direction, "sampler": sf.sampler, "pruner": sf.pruner}.items() if v is not None}
            ts.Study(sf.build_space(), seed=sf.seed, **given)
        else:
            assert len(ts.Space.from_yaml(block.code)) > 0, where
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        pytest.fail(f"{where}: {exc}")


PAGES = sorted(p.name for p in DOCS.glob("*.md"))
# the README's quickstart searches an SVM on digits with cross-validation: tens of seconds
SLOW_PAGES = {"README.md"}


def test_every_page_is_checked() -> None:
    assert PAGES and all(python_blocks((DOCS / p).read_text()) for p in PAGES)


def test_every_block_says_what_it_is() -> None:
    """A fence without a language (or one this test does not know) is a block nobody runs or reads;
    an indented code block hides commands from it the same way."""
    unnamed = [f"{page}, line {b.line}: ```{b.lang}" for page in [*PAGES, *SLOW_PAGES]
               for b in blocks(page_path(page).read_text()) if b.lang not in LANGUAGES]
    indented = [f"{page}: {line.strip()}" for page in [*PAGES, *SLOW_PAGES]
                for line in re.sub(r"```.*?```|<!--.*?-->", "", page_path(page).read_text(), flags=re.S).splitlines()
                if re.match(r" {4}\S", line) and not re.match(r" {4}(?:[-*]|\d+\.)\s", line)]
    assert unnamed == [] and indented == []


def test_a_block_can_be_left_out_and_set_up() -> None:
    page = ("```python\nx = 1\n```\n<!-- not run: a fragment -->\n```python\nrun(x)\n```\n"
            "<!-- run first:\ny = 2\n-->\n  ```python\n  print(y)\n  ```\n```bash\nls\n```\n"
            "<!-- not run: a server -->\n```bash\nserve\n```\n```text\nout\n```\n")
    assert [(b.line, b.code, b.run) for b in python_blocks(page)] == [
        (2, "x = 1", True), (6, "run(x)", False), (9, "y = 2", True), (12, "print(y)", True)]
    assert [(b.line, b.code, b.run, b.lang) for b in blocks(page) if b.lang != "python"] == [
        (15, "ls", True, "bash"), (19, "serve", False, "bash"), (22, "out", False, "text")]


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_failing_command_fails_its_page_and_a_slow_one_is_stopped(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a command's failure fails the block with its own message (the next command not
    run); a block past its time fails, its commands stopped with it, none left running."""
    with pytest.raises(AssertionError, match=r"page, block at line 3: status 2[\s\S]*no study named 'svm-toi'"):
        run_bash(Block(3, "tunesmith show svm-toi\ntouch after", True, "bash"), "page, block at line 3", tmp_path)
    assert not (tmp_path / "after").exists()
    monkeypatch.setattr(sys.modules[__name__], "BASH_TIMEOUT", 5)
    with pytest.raises(pytest.fail.Exception, match="still running after 5 s"):
        run_bash(Block(1, "sleep 600 & echo $! > sleeper\nwait", True, "bash"), "page", tmp_path)
    sleeper = int((tmp_path / "sleeper").read_text())
    for _ in range(50):  # SIGKILL is delivered at once; the process table may lag a moment
        if not _running(sleeper):
            break
        time.sleep(0.1)
    assert not _running(sleeper)


def test_a_study_file_is_read_as_run_reads_it_and_nothing_is_written(tmp_path: Path) -> None:
    """A misspelt sampler, which the file's own reading lets pass, fails the block, naming it; a study
    named with a slash (a name ``Study`` takes) is read without a file made for it, in or out of the folder."""
    space = "space:\n  C: {type: float, low: 0.1, high: 10, log: true}\n"
    with pytest.raises(pytest.fail.Exception, match=r"guide.md, block at line 9: .*unknown sampler 'gird'"):
        check_yaml(Block(9, f"objective: a.py:f\nsampler: gird\n{space}", True, "yaml"), "guide.md, block at line 9",
                   tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"page: study file: direction must be .* 'maximise'"):
        check_yaml(Block(1, f"objective: a.py:f\ndirection: maximise\n{space}", True, "yaml"), "page", tmp_path)
    check_yaml(Block(1, f"name: team/mlp\nobjective: a.py:f\nsampler: {{name: tpe}}\n{space}", True, "yaml"),
               "page", tmp_path)
    assert list(tmp_path.iterdir()) == []


def page_path(page: str) -> Path:
    return ROOT / page if page in SLOW_PAGES else DOCS / page


@pytest.mark.parametrize("page", [*PAGES, *(pytest.param(p, marks=pytest.mark.slow) for p in sorted(SLOW_PAGES))])
def test_page_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capfd: pytest.CaptureFixture[str]) -> None:
    path = page_path(page)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks(path.read_text()):
        where = f"{path.relative_to(ROOT)}, block at line {block.line}"
        if not block.run:
            continue
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), namespace)
        elif block.lang == "bash":
            run_bash(block, where, tmp_path)
        elif block.lang == "yaml":
            check_yaml(block, where, tmp_path)
    out, err = capfd.readouterr()
    bad = _BAD_TRIAL.search(err)
    assert bad is None, f"{path.relative_to(ROOT)}: an objective failed: {err[bad.start():bad.start() + 300]}"


def test_every_public_name_has_a_docstring_and_a_place_in_the_docs() -> None:
    import tunesmith as ts

    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *DOCS.glob("*.md")])
    undocumented = [name for name in ts.__all__ if not getattr(ts, name).__doc__]
    unmentioned = [name for name in ts.__all__ if not re.search(rf"\b{name}\b", text)]
    assert undocumented == [] and unmentioned == []


def test_every_dotted_name_the_docs_give_exists() -> None:
    """``ts.space.space.MAX_GRID``, ``tunesmith.train.checkpoint.latest``: each resolves."""
    import importlib

    def resolves(dotted: str) -> bool:
        obj: object = importlib.import_module("tunesmith")
        path = "tunesmith"
        for part in dotted.split(".")[1:]:
            path += f".{part}"
            try:
                obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(path)
            except ImportError:
                return False
        return True

    # MLflow tags and a file name read like dotted names
    not_names = {"tunesmith.db", "tunesmith.error", "tunesmith.param_names", "tunesmith.state", "tunesmith.study_id",
                 "tunesmith.best", "tunesmith.best_trial"}
    missing = sorted({f"{page}: {m.group(1)}"
                      for page in [*PAGES, *SLOW_PAGES]
                      for m in re.finditer(r"\b((?:ts|tunesmith)(?:\.[A-Za-z_]\w*)+)", page_path(page).read_text())
                      if m.group(1) not in not_names and not resolves(m.group(1))})
    assert missing == []


def test_the_guides_command_synopsis_names_every_subcommand_and_option() -> None:
    """docs/guide.md, section 7, against the parser that ``--help`` prints: a line per command
    (indented lines continue it) naming each of its options, long or short."""
    import argparse

    from tunesmith.cli import build_parser

    guide = (DOCS / "guide.md").read_text()
    block = guide[guide.index("## 7. Command line"):guide.index("## 8.")].split("```")[1]
    entries: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("tunesmith "):
            name = line.split()[1]
            entries[name] = line
        elif line.startswith(" ") and entries:
            entries[name] += line
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.option_strings}" for name, parser in sub.choices.items()
               for action in parser._actions if action.option_strings and action.dest != "help"
               if not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", entries.get(name, ""))
                          for o in action.option_strings)]
    assert sorted(entries) == sorted(sub.choices) and missing == []


def test_the_sampler_options_help_names_every_built_in_sampler() -> None:
    """``run --sampler`` and ``compare --samplers`` take every built-in sampler by name; their help
    left out "multifidelity", which docs/guide.md's table and docs/pruning.md name."""
    import argparse

    from tunesmith.cli import build_parser
    from tunesmith.samplers import _BUILTIN

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {f"{cmd} {opt}": next(a.help or "" for a in sub.choices[cmd]._actions if opt in a.option_strings)
             for cmd, opt in [("run", "--sampler"), ("compare", "--samplers")]}
    # tunesmith's own: a sampler another test registered (samplers.register) is in _BUILTIN too
    built_in = [name for name, cls in _BUILTIN.items() if isinstance(cls, str) or cls.__module__.startswith("tunesmith.")]
    missing = [f"{where}: {name}" for where, text in helps.items() for name in built_in
               if not re.search(rf"\b{name}\b", text)]
    assert {"grid", "multifidelity", "auto"} <= set(built_in) and missing == []


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (``## 1. Search spaces``: ``1-search-spaces``;
    a repeated heading's gets ``-1``, ``-2``, ...), and those written as ``<a id="...">``."""
    count: dict[str, int] = {}
    anchors = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#{1,6}\s+(.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(f"{slug}-{count[slug]}" if slug in count else slug)
        count[slug] = count.get(slug, 0) + 1
    return anchors


def test_every_link_anchor_and_picture_resolves() -> None:
    """The pages' relative links (to another page, a benchmark page, a picture in docs/img) name a file
    that exists, and an anchor (``pruning.md#multi-fidelity-...``) names a heading of that page."""
    pages = [ROOT / "README.md", *DOCS.glob("*.md"), *(ROOT / "benchmarks").glob("*.md")]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    # a file named in the text (`tests/test_storage.py::TestStorageConformance`, benchmarks/LOG.md)
    named = {m.rstrip(".,") for page in pages if page.parent != ROOT / "benchmarks"
             for m in re.findall(r"\b(?:benchmarks|docs|examples|scripts|tests)/[\w./-]+", page.read_text())}
    assert broken == [] and sorted(f for f in named if not (ROOT / f).exists()) == []


def test_every_error_class_the_docs_name_is_a_tunesmith_error() -> None:
    """docs/guide.md: "tunesmith's own errors derive from ts.TunesmithError", so that one ``except``
    catches them; ``CheckpointError`` (a refused checkpoint) and ``TuneDiverged`` (a diverged
    ``tune``) were a bare ValueError and FloatingPointError."""
    import importlib
    import pkgutil

    import tunesmith as ts

    pytest.importorskip("torch")
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *DOCS.glob("*.md")])
    classes = {}
    for info in pkgutil.walk_packages(ts.__path__, "tunesmith."):
        if info.name.endswith("__main__") or ".integrations." in info.name or ".dashboard" in info.name:
            continue  # the command itself; modules of optional libraries
        module = importlib.import_module(info.name)
        classes.update({n: c for n, c in vars(module).items() if isinstance(c, type) and issubclass(c, Exception)
                        and c.__module__.startswith("tunesmith") and re.search(rf"`(?:[\w.]+\.)?{n}`", text)})
    assert {"CheckpointError", "TuneDiverged", "StorageError", "ClusterLost"} <= set(classes)
    assert sorted(n for n, c in classes.items() if not issubclass(c, ts.TunesmithError)) == []


def test_the_guide_names_every_tunesmith_variable_the_examples_read() -> None:
    """docs/guide.md: "tunesmith reads no ``TUNESMITH_*`` environment variable" (it sets
    ``TUNESMITH_GPU_SHARE``), and names those a reader meets in the examples as the examples' own;
    it named ``TUNESMITH_MNIST`` and left out ``TUNESMITH_MINILM`` (examples/finetune_text.py)."""
    guide = (DOCS / "guide.md").read_text()
    src = {m for f in (ROOT / "src").rglob("*.py") for m in re.findall(r"TUNESMITH_[A-Z_]+", f.read_text())}
    examples = {m for f in (ROOT / "examples").iterdir() if f.suffix in (".py", ".yaml")
                for m in re.findall(r"TUNESMITH_[A-Z_]+", f.read_text())}
    assert src == {"TUNESMITH_GPU_SHARE"} and sorted(v for v in examples if f"`{v}`" not in guide) == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -m puts the folder first before 3.11 (PYTHONSAFEPATH)")
def test_a_bash_block_imports_from_the_checkout_not_from_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no PYTHONPATH set, the blocks ran with ``PYTHONPATH=src:``, and ``tunesmith`` as ``python -m``: both
    put the block's folder first on python's path (the console script a reader types does not), and a module a
    block or a page's file left there (``json.py``) was imported in place of the library's."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    (tmp_path / "json.py").write_text("raise SystemExit('the folder was on the path')\n")
    run_bash(Block(1, 'case ":$PYTHONPATH:" in *::*) exit 3;; esac\ntunesmith --version', True, "bash"), "here", tmp_path)
