"""What code a study's objective runs: its file and the local modules it imports, as digests.

``tunesmith run`` and ``worker`` store them with the study (:func:`tunesmith.study.manage.record_objective_code`)
and warn when a machine's copy differs; ``tunesmith compare --storage`` marks its runs with them (a layer below
both faces, beside :mod:`tunesmith.paths`). Files are read and parsed, never run.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import re
import sys
import sysconfig
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .paths import NotRegularFile, open_regular

#: the most local modules digested beside the objective's file (followed from module to module)
MAX_MODULES = 100
#: bytes of local modules digested by their tokens (layout and comments aside; about 0.5 s); past it, by their bytes
MODULES_TOKENIZED = 300_000
#: the most bytes read of all local modules together (four files of :data:`MAX_READ`); the modules past it are
#: digested by their sizes (and what is left of it): 100 sparse files of 16 GB named by imports never taken, each
#: read up to MAX_READ, took 93 s; no project's modules come near it
MODULES_READ = 4 * 64 * 2**20


def objective_code(objective: Callable[..., Any]) -> tuple[str, str, str, dict[str, str]] | None:
    """The name of the file that defines ``objective``, the function's name, the digest of its code and
    each file's :func:`code_digest` by its path from the imports' folder (None where it has no file: a
    built-in, a compiled module, a callable object). The code is the file and the local modules it imports
    (:func:`local_modules`); with none, the digest is the file's alone."""
    try:
        path = Path(inspect.getsourcefile(objective) or "").resolve()
        digest = code_digest(*read_code(path))
    except (TypeError, OSError, NotRegularFile):
        return None
    name = f"{path.parent.name}/{path.name}" if path.name == "__init__.py" else path.name
    root = _root(path)
    files, budget, left = {_shown(path, root): digest}, MODULES_TOKENIZED, MODULES_READ
    for module in local_modules(path, root):
        try:  # CRLF as LF: a checkout's line endings move no module across the budget nor change its bytes
            source, size = read_code(module, min(MAX_READ, left))
        except (OSError, NotRegularFile):  # gone (or swapped for a FIFO) since it was found: as no module
            continue
        left -= len(source)
        cut = len(source) < size  # past MAX_READ, or past what all modules may read: by its size and those bytes
        source = source.replace(b"\r\n", b"\n")
        budget -= len(source)
        files[_shown(module, root)] = code_digest(source, size if cut else None) if budget >= 0 or cut else \
            hashlib.sha256(source).hexdigest()
    return name, getattr(objective, "__qualname__", ""), _of_all(digest, files), files


def _of_all(digest: str, files: dict[str, str]) -> str:
    """The objective file's ``digest`` where it imports no local module, else one of every file's."""
    if len(files) == 1:
        return digest
    whole = hashlib.sha256()
    for shown in sorted(files):
        whole.update(f"{shown}:{files[shown]}\n".encode("utf-8", "surrogatepass"))
    return whole.hexdigest()


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _root(path: Path) -> Path:
    """The folder the objective's own imports are found from: its file's, or the one holding its top package."""
    root = path.parent
    while _is_file(root / "__init__.py") and root.parent != root:
        root = root.parent
    return root


def local_modules(path: Path, root: Path) -> list[Path]:
    """The Python files under ``root`` (not an installed package's) that ``path`` imports, and those they
    import, at most :data:`MAX_MODULES`: ``import helpers``, ``from lib.util import f``, ``from . import
    x`` (inside functions too), each where such a file exists; a name that is no file there (an installed
    package's) is passed over. A file over :data:`MAX_TOKENIZED` bytes is digested but not followed."""
    seen, todo, found = {path}, [path], list[Path]()
    while todo and len(found) < MAX_MODULES:
        current = todo.pop()
        for module in _imported(current, root):
            if module not in seen and not _installed(module) and len(found) < MAX_MODULES:
                seen.add(module)
                found.append(module)
                todo.append(module)
    return found


#: ``from X import a, b`` (names in brackets over several lines too; ``from .x``, ``from . x`` and ``from.x``
#: alike) and ``import a.b as c, d``, each at a line's start or after a ``;``; names in any script (``\w`` of text)
#: (each dot, space and name can be matched one way only: where two parts could take the same dots or spaces,
#: a line of them took time quadratic in its length, seconds for 16 KB)
_FROM = re.compile(r"(?:^|;)[ \t]*from(?=[ \t.])((?:[ \t]*\.)*)(?:[ \t]*(\w[\w.]*))?[ \t]+import(?=[ \t(])[ \t]*"
                   r"(\([^)]*\)|[^\n#;]*)", re.MULTILINE)
_IMPORT = re.compile(r"(?:^|;)[ \t]*import[ \t]+([^\n#;]*)", re.MULTILINE)
#: a comment inside an import's brackets (``from x import (a,  # the first``)
_COMMENT = re.compile(r"#[^\n]*")


def _names(listed: str) -> list[str]:
    """The module names of an import's list: ``a.b as c, d`` -> ``a.b``, ``d`` (comments in brackets aside)."""
    text = _COMMENT.sub("", listed).strip("() \t\r\n\\")
    names = (item.split()[0] for item in text.split(",") if item.split())
    return [n for n in names if all(part.isidentifier() for part in n.split("."))]


def _imported(path: Path, root: Path) -> Iterator[Path]:
    """The files under ``root`` that ``path``'s import statements name: found by their lines (a regular
    expression: cheap on a large project, where parsing every file took seconds; an import written in a
    string at a line's start adds a file, an import after a backslash continuation is missed)."""
    try:
        with open_regular(path) as f:  # opened, then looked at: a FIFO swapped in after the look never blocks
            if os.fstat(f.fileno()).st_size > MAX_TOKENIZED:  # generated data, not code to follow (and seconds)
                return
            source = f.read(MAX_TOKENIZED + 1).decode("utf-8", "replace")  # a name in another encoding is missed
    except (OSError, NotRegularFile):
        return
    for listed in _IMPORT.findall(source):
        for name in _names(listed):
            if not _imported_installed(name):
                yield from _files(root, name.split("."))
    for relative, name, listed in _FROM.findall(source):
        dots = relative.count(".")
        if not dots and _imported_installed(name):
            continue
        base = root
        if dots:
            base = path.parent
            for _ in range(dots - 1):
                base = base.parent
        parts = name.split(".") if name else []
        if not all(part.isidentifier() for part in parts):
            continue
        yield from _files(base, parts)
        for alias in _names(listed):  # a name imported from a package may be its module
            yield from _files(base, [*parts, alias], whole_only=True)


def _files(base: Path, parts: list[str], *, whole_only: bool = False) -> Iterator[Path]:
    """The files module ``parts`` (and, unless ``whole_only``, each package above it) is found in under ``base``."""
    for depth in range(len(parts) if whole_only else 1, len(parts) + 1):
        folder = base.joinpath(*parts[:depth])
        for candidate in (folder.with_name(folder.name + ".py"), folder / "__init__.py"):
            if parts[:depth] and _is_file(candidate):  # a regular file: a FIFO is never opened
                yield candidate.resolve()


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; False where it cannot be told (a folder this user may not enter:
    ``Path.is_file`` raises PermissionError there, which stopped ``tunesmith run``)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _imported_installed(name: str) -> bool:
    """Whether this process imported top-level module ``name`` from the interpreter or an installed package
    (a file of that name beside the objective is then not what runs: the objective's folder comes after
    the installed packages on ``sys.path``)."""
    top = sys.modules.get(name.partition(".")[0])
    if top is None:
        return False
    file = getattr(top, "__file__", None)
    return _installed(Path(file)) if isinstance(file, str) else not getattr(top, "__path__", None)


def _installed(path: Path) -> bool:
    """Whether ``path`` belongs to an installed package or the interpreter's standard library (a virtual
    environment inside the project's folder holds them too). Not the whole of ``sys.prefix``: with the
    system's Python it is ``/usr``, which holds projects too (``/usr/src/app``)."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    return any(path.is_relative_to(folder) for folder in _STANDARD)


#: the folders of the standard library (its compiled modules too), of this interpreter and its base
_STANDARD = frozenset(Path(sysconfig.get_paths(vars=v).get(key, "/nonexistent")).resolve()
                      for v in ({"base": sys.prefix, "platbase": sys.prefix},
                                {"base": sys.base_prefix, "platbase": sys.base_prefix})
                      for key in ("stdlib", "platstdlib"))


#: tokens that carry no code: a comment, a line break inside brackets or of a blank line, the encoding
_NO_CODE = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING})
#: a token kept by its kind alone: how a line ends or how deep it is indented (tabs or spaces) is layout
_LAYOUT = {tokenize.NEWLINE: "<newline>", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
#: Python 3.12 splits an f-string (3.14 a t-string) into tokens; it is kept whole, as before 3.12
_OPEN = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n)}
_CLOSE = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n)}


#: the largest file digested by its tokens (about 1.5 s on Python 3.11); a larger one by its bytes
MAX_TOKENIZED = 1_000_000
#: the longest line of a file digested by its tokens; a file with a longer one by its bytes, on every Python:
#: from 3.12 the tokenizer copies a token's whole line into each token, so a line's cost grows with its length
#: times its tokens (a 400 KB line of 80,000 f"" took 45 s on 3.12.1, 10 KB about 0.015 s)
MAX_LINE = 10_000


def code_digest(source: bytes, size: int | None = None) -> str:
    """SHA-256 of the code in ``source`` (a Python file), comments and layout aside: a comment, a blank
    line, another indentation or line ending (a checkout with CRLF) gives the same digest, the same on
    Python 3.10 to 3.13; any change to a name, a number, a string or an operator another. A file that
    does not tokenize: of its bytes; one over ``MAX_TOKENIZED`` bytes or with a line over ``MAX_LINE`` bytes: of its
    bytes with CRLF as LF. ``size``: the file's, where ``source`` is only its first bytes (:func:`read_code`: at most
    :data:`MAX_READ`): a larger file is digested by its size and those bytes."""
    if size is not None and size > len(source):
        return hashlib.sha256(f"{size}:".encode() + source).hexdigest()
    if len(source) > MAX_TOKENIZED or _longest_line(source) > MAX_LINE:  # line endings aside, as the tokens
        return hashlib.sha256(source.replace(b"\r\n", b"\n")).hexdigest()
    digest = hashlib.sha256()
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(source).readline)[0]
        text = source.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
        lines = io.StringIO(text).readlines()  # rows as the tokenizer counts them (at "\n" only)
        depth, start = 0, (0, 0)
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in _OPEN:
                depth, start = depth + 1, start if depth else tok.start
                continue
            if tok.type in _CLOSE:
                depth -= 1
                if depth:
                    continue
                piece = "".join(lines[start[0] - 1:tok.end[0]])
                piece = piece[start[1]:len(piece) - len(lines[tok.end[0] - 1]) + tok.end[1]]
            elif depth or tok.type in _NO_CODE:
                continue
            else:
                piece = _LAYOUT.get(tok.type, tok.string)
            digest.update(f"{len(piece)}:{piece}".encode("utf-8", "surrogatepass"))
    except (SyntaxError, tokenize.TokenError, UnicodeDecodeError, LookupError):
        return hashlib.sha256(source).hexdigest()
    return digest.hexdigest()


#: the most bytes of a file read for its digest: a larger one (no module is; a sparse file of 20 GB named as a
#: module the objective imports in a function it never calls was read whole into memory, and MemoryError stopped
#: ``tunesmith run``) is digested by its size and its first MAX_READ bytes
MAX_READ = 64 * 2**20


def read_code(path: Path, most: int = MAX_READ) -> tuple[bytes, int]:
    """The first ``most`` bytes (:data:`MAX_READ`) of the regular file ``path`` and its size. It is opened first, then looked
    at as opened (:func:`~tunesmith.paths.open_regular`): a FIFO or device swapped in for a module found as a file
    raises :class:`~tunesmith.paths.NotRegularFile`, never waiting for a writer nor reading without end; a file of
    the kernel's that says it is empty (``/proc/self/...``) reads as empty."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        return f.read(min(size, most)), size


def _longest_line(source: bytes) -> int:
    """The length in bytes of ``source``'s longest line (lines end at a line feed or a carriage return)."""
    return max(map(len, source.replace(b"\r", b"\n").split(b"\n")), default=0)
