"""Study files: a study described in YAML (or JSON), and the objective it names.

One parser for every command (``run``, ``worker``). Example ``study.yaml``::

    name: svm-digits                            # default: the file's name without .yaml
    objective: svm_digits_grid.py:objective     # or a module: mypkg.train:objective
    direction: maximize
    sampler: grid                               # or {name: grid, points: {C: 4}}
    pruner: median                              # optional: a pruner name or {name: ..., options}
    seed: 0
    n_trials: 100
    n_jobs: 2
    storage: sqlite:///tunesmith.db             # default (current folder); a worker must name its database
    retry_window: 120                           # seconds of retries through a database outage (default 30)
    space:                                      # needed to create the study, not to resume it
      kernel: [linear, poly, rbf]
      C: {type: float, low: 0.1, high: 100, log: true, grid: [0.1, 1, 10, 100]}
    # optional: lost workers, and where trials run
    heartbeat_interval: 10
    grace_period: 60
    requeue_failed: true
    trial_timeout: 600                          # seconds a trial may run (process or ray executor)
    executor: ray                               # inline, thread, process or ray
    ray_address: 10.0.0.5:6379
    resources_per_trial: {cpu: 2, gpu: 0.25}
    trials_per_gpu: 4
    gpus: [0, 1]                                # process executor: devices to use
    allow_missing_gpus: false                   # true: run even where those devices are missing

A script path is relative to the study file's folder (then to the current one).
So is a relative SQLite path in ``storage`` (``sqlite:///studies/mlp.db``, ``mlp.db``):
whoever runs the file, from whatever folder, opens the same database. Absolute paths,
server URLs and ``--storage`` (relative to the current folder) are used as they are.
"""

from __future__ import annotations

import atexit
import difflib
import functools
import importlib
import importlib.machinery
import importlib.util
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ..execution.optimize import MAX_JOBS
from ..paths import NotRegularFile, every_user_may_add, read_regular
from ..space import Space
from ..space.params import did_you_mean
from ..space.space import load_yaml
from ..storage.base import pid_alive
from ..study.heartbeat import HeartbeatConfig
from ..trial import Direction

DEFAULT_STORAGE = "sqlite:///tunesmith.db"
EXECUTORS = ("inline", "thread", "process", "ray")
SPACE_EXAMPLE = "space: {lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}}"
_NOT_KEYS = {"base_dir", "source", "storage_written"}
#: bytes a study file may have: settings, not data (a 15 MB list took 100 s and 1.6 GB to refuse)
MAX_STUDY_FILE = 1 << 20
_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?", re.DOTALL)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StudyFileError(ValueError):
    """A study file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class StudyFile:
    """The settings of a study file (command-line flags override them).

    ``None`` means "not given": ``storage`` then is :data:`DEFAULT_STORAGE`
    (see :attr:`storage_url`); ``space``, ``direction``, ``sampler`` and
    ``pruner`` are taken from the stored study when it exists.
    """

    objective: str
    name: str
    space: Mapping[str, Any] | None = None
    direction: str | None = None
    sampler: str | Mapping[str, Any] | None = None
    pruner: str | Mapping[str, Any] | None = None
    seed: int | None = None
    n_trials: int | None = None
    timeout: float | None = None
    trial_timeout: float | None = None
    n_jobs: int = 1
    storage: str | None = None
    retry_window: float | None = None
    heartbeat_interval: float | None = None
    grace_period: float | None = None
    requeue_failed: bool = False
    executor: str | None = None
    ray_address: str | None = None
    resources_per_trial: Mapping[str, float] | None = None
    trials_per_gpu: int | None = None
    gpus: int | str | list[int | str] | None = None
    allow_missing_gpus: bool = False
    base_dir: Path = field(default=Path("."), compare=False)
    source: str = field(default="study file", compare=False)
    storage_written: str | None = field(default=None, compare=False)  # ``storage`` before anchor_sqlite

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a study file may have."""
        return sorted(f.name for f in fields(cls) if f.name not in _NOT_KEYS)

    @classmethod
    def load(cls, path: str | Path) -> StudyFile:
        path = Path(path)
        raw = _read(path)
        if len(raw) > MAX_STUDY_FILE:
            raise StudyFileError(f"{path}: more than {MAX_STUDY_FILE:,} bytes; a study file holds settings (a "
                                 "space of that size is better made in Python with ts.Space)")
        try:
            data = load_yaml(raw.decode("utf-8"))  # YAML's own encoding, whatever the locale
        except yaml.YAMLError as exc:
            raise StudyFileError(f"{path}: not valid YAML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise StudyFileError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                 f"{exc.start}); save it as UTF-8") from None
        return cls.from_dict(data, source=str(path), base_dir=path.resolve().parent, default_name=path.stem)

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "study file", base_dir: Path = Path("."), default_name: str = "study"
    ) -> StudyFile:
        if not isinstance(data, Mapping):
            raise StudyFileError(f"{source}: expected a mapping of settings (name, objective, space, ...)")
        _check_keys(data, source, cls.keys())
        if data.get("objective") is None:
            raise StudyFileError(
                f"{source}: missing key(s) ['objective']; name the function to optimize, e.g. "
                "objective: train.py:objective (a script beside the study file) or mypkg.train:objective"
            )
        settings = {"name": default_name, **{k: v for k, v in data.items() if v is not None}}
        if isinstance(settings.get("storage"), str):  # a relative SQLite path: beside the study file
            settings["storage_written"] = settings["storage"]
            settings["storage"] = anchor_sqlite(settings["storage"], base_dir)
        sf = cls(base_dir=base_dir, source=source, **settings)
        sf.check(source)
        return sf

    @property
    def storage_url(self) -> str:
        """The database URL: the file's ``storage``, else :data:`DEFAULT_STORAGE`."""
        return self.storage if self.storage is not None else DEFAULT_STORAGE

    def check(self, source: str = "study file", names: Mapping[str, str] | None = None) -> None:
        """Raise StudyFileError for a bad value, naming the key (as ``names`` gives it: the flag that set it)."""
        if not isinstance(self.objective, str) or ":" not in self.objective:
            raise StudyFileError(
                f"{source}: objective must be 'module:function' or 'path/to/script.py:function', "
                f"got {self.objective!r}"
                + (f": name the function after a colon, e.g. '{self.objective}:objective'"
                   if isinstance(self.objective, str) and self.objective else "")
            )
        if not isinstance(self.name, str) or not self.name:
            raise StudyFileError(f"{source}: name must be a non-empty string, got {self.name!r}")
        if self.space is not None:
            if not isinstance(self.space, Mapping):
                raise StudyFileError(f"{source}: space must be a mapping of parameter name -> definition, "
                                     f"e.g. {SPACE_EXAMPLE}")
            try:
                self.build_space()
            except (ValueError, TypeError) as exc:
                raise StudyFileError(f"{source}: space: {exc}") from None
        for key, problem in _value_problems(self):
            given: Any = getattr(self, key)
            choices = {"direction": ["minimize", "maximize"], "executor": list(EXECUTORS)}.get(key)
            hint = did_you_mean(str(given).lower(), choices) if choices else ""
            if key == "direction" and not hint:  # "max": difflib finds nothing, the API says 'maximize'
                try:
                    Direction.parse(given)
                except ValueError as exc:
                    raise StudyFileError(f"{source}: {exc}") from None
            raise StudyFileError(f"{source}: {(names or {}).get(key, key)} {problem}, got {given!r}{hint}"
                                 f"{_yaml_text_number(given)}")
        try:  # before the storage is opened (a database file was created, then the study refused)
            HeartbeatConfig.build(self.heartbeat_interval, self.grace_period, self.requeue_failed)
        except (ValueError, TypeError) as exc:
            raise StudyFileError(f"{source}: {exc}") from None

    def build_space(self) -> Space | None:
        return None if self.space is None else Space.from_dict(self.space)

    def override(self, **changes: Any) -> StudyFile:
        """A copy with the given settings replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def load_objective(self) -> Callable[..., Any]:
        return load_objective(self.objective, self.base_dir)


def _read(path: Path) -> bytes:
    """A study file's bytes (at most one over the limit: the file may grow as it is read); a folder, a
    FIFO planted in a shared folder, a device or a socket is refused unread, naming what it is."""
    try:
        return read_regular(path, MAX_STUDY_FILE + 1)
    except NotRegularFile as exc:
        what = "a folder" if exc.kind == "a directory" else exc.kind
        raise StudyFileError(f"study file {str(path)!r} is {what}, not a regular file; name a study file "
                             "(YAML)") from None
    except FileNotFoundError:
        raise StudyFileError(f"study file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise StudyFileError(f"study file {str(path)!r} cannot be read: {exc.strerror}") from None
    except ValueError as exc:  # a NUL in the path, which no file name holds
        raise StudyFileError(f"study file {str(path)!r} cannot be read: {exc}") from None


def sqlite_path(url: str) -> tuple[str, str, str] | None:
    """(scheme, file path, query) of a SQLite database file given as a URL
    (``sqlite:///a.db?synchronous=full``) or a bare path ending in ``.db``; None for any
    other URL, an in-memory database and a ``file:`` URI."""
    m = _SQLITE_URL.fullmatch(url)
    if m:
        scheme, path, query = m.group(1), m.group(2), m.group(3) or ""
    elif "://" not in url and url.endswith(SQLITE_SUFFIXES):
        scheme, path, query = "", url, ""
    else:
        return None
    return None if path in ("", ":memory:") or path.startswith("file:") else (scheme, path, query)


def anchor_sqlite(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite file path made relative to ``folder`` (a study
    file's): everyone who runs the file opens the same database. Any other URL, and
    an absolute path or one under the home folder (``~/a.db``), as it is."""
    parts = sqlite_path(url)
    if parts is None or Path(parts[1]).expanduser().is_absolute():
        return url
    scheme, path, query = parts
    return f"{scheme}{os.path.normpath(folder / path)}{query}"


def _check_keys(data: Mapping[Any, Any], source: str, known: list[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if not unknown:
        return
    close = {k: m[0] for k in unknown if (m := difflib.get_close_matches(k, known, n=1))}
    if len(unknown) == 1:
        what = f"unknown key {unknown[0]!r}" + (f" (did you mean {close[unknown[0]]!r}?)" if close else "")
    else:
        hints = ", ".join(f"{k!r} -> {m!r}" for k, m in close.items())
        what = f"unknown keys {unknown}" + (f" (did you mean {hints}?)" if close else "")
    raise StudyFileError(f"{source}: {what}; allowed keys are {known}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_gpus(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and all(_is_int(x) or isinstance(x, str) for x in v)
    return _is_int(v) or isinstance(v, str)


def _is_resources(v: Any) -> bool:
    return isinstance(v, Mapping) and all(isinstance(k, str) and _is_number(x) for k, x in v.items())


def _is_seconds(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v) and v > 0


_RULES: list[tuple[tuple[str, ...], Callable[[Any], bool], str]] = [
    (("n_trials", "seed"), lambda v: _is_int(v) and v >= 0, "must be an integer >= 0"),
    (("n_jobs",), lambda v: _is_int(v) and (v == -1 or 1 <= v <= MAX_JOBS),
     f"must be an integer from 1 to {MAX_JOBS}, or -1 for one worker per core"),
    (("timeout", "trial_timeout", "heartbeat_interval", "grace_period", "retry_window"), _is_seconds, "must be a positive, finite number of seconds"),
    (("direction",), lambda v: str(v).lower() in ("minimize", "maximize"), "must be 'minimize' or 'maximize'"),
    (("storage",), lambda v: isinstance(v, str) and bool(v),
     "must be a database URL such as sqlite:///tunesmith.db or postgresql+psycopg://user:password@host/db"),
    (("sampler", "pruner"), lambda v: isinstance(v, (str, Mapping)), "must be a name or {name: ..., options}"),
    (("requeue_failed", "allow_missing_gpus"), lambda v: isinstance(v, bool), "must be true or false"),
    (("executor",), lambda v: v in EXECUTORS, f"must be one of {list(EXECUTORS)}"),
    (("ray_address",), lambda v: _is_ray_address(v),
     "must be the Ray cluster's address: HOST:PORT of its head node (e.g. 10.0.0.5:6379; `ray start --head` "
     "prints it) or ray://HOST:PORT (Ray Client)"),
    (("resources_per_trial",), _is_resources, "must map resource names to numbers, e.g. {cpu: 2, gpu: 0.25}"),
    (("trials_per_gpu",), lambda v: _is_int(v) and v >= 1, "must be an integer >= 1"),
    (("gpus",), _is_gpus, "must be a device count, ids like '0,1', or a list of ids"),
]


def _is_ray_address(value: Any) -> bool:
    """Whether ``value`` is a cluster address (the Ray adapter is imported only when a file names one)."""
    from ..execution.ray import is_cluster_address

    return is_cluster_address(value)


def _yaml_text_number(value: Any) -> str:
    """A hint for a number YAML read as text: its floats need a dot and a signed exponent (``1e3``,
    ``1.0e5`` are text; the error said "got '1e3'", which looks like a number)."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):  # "inf", "nan", "1e400": YAML reads each as text too
        return ""
    written = str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)
    mantissa, e, exponent = written.partition("e")
    if e and "." not in mantissa:
        written = f"{mantissa}.0e{exponent}"
    if _yaml_number(value.strip()):  # YAML reads it as a number unless quoted
        return f" (quoted, so read as text: write {value.strip()} without quotes)"
    return f" (YAML reads {value} as text, not a number: write {written})"


def _yaml_number(text: str) -> bool:
    """Whether YAML reads ``text``, written as it is, as a number (``1.50``, ``1_000``: not ``1e3``)."""
    try:
        read = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(read, (int, float)) and not isinstance(read, bool)


def _value_problems(sf: StudyFile) -> list[tuple[str, str]]:
    """(key, what is wrong) for each given value of the wrong type."""
    out = []
    for keys, ok, problem in _RULES:
        for key in keys:
            v = getattr(sf, key)
            if v is not None and not ok(v):
                out.append((key, problem))
    return out


# -- the objective ------------------------------------------------------------------------------


def load_objective(spec: str, base_dir: Path = Path(".")) -> Callable[..., Any]:
    """The function named by ``module:function`` or ``path/to/script.py:function``.

    A script path (ends in ``.py`` or has a slash) is looked up in ``base_dir``
    (the study file's folder), then in the current folder; a module is
    imported with both folders on ``sys.path``, after the installed packages
    (a file there adds a module, never replaces an installed one), each only where not every
    user may add files to it (not ``/tmp``).
    """
    target, _, func = spec.rpartition(":")
    if not target or not func:
        raise StudyFileError(f"objective {spec!r}: write it as 'module:function' or 'script.py:function'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_script(target, base_dir)
    else:
        module = _import_module(target, base_dir)
    fn = getattr(module, func, None)
    if fn is None:
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise StudyFileError(f"objective {spec!r}: {target} has no function {func!r}{did_you_mean(func, functions)}")
    if not callable(fn):
        raise StudyFileError(f"objective {spec!r}: {func!r} is not callable")
    return fn


def _import_script(target: str, base_dir: Path) -> ModuleType:
    path = Path(target)
    candidates = [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]
    found = next((p.resolve() for p in candidates if p.is_file()), None)
    if found is None:
        looked = list(dict.fromkeys(str(p.resolve()) for p in candidates))  # each folder once
        scripts = sorted({str(path.parent / q.name) for p in candidates if p.parent.is_dir() for q in p.parent.glob("*.py")})
        raise StudyFileError(f"objective script {target!r} not found (looked for {' and '.join(looked)})"
                             f"{did_you_mean(str(path), scripts)}")
    name = _module_name(found)
    try:
        source = found.read_bytes()
    except OSError as exc:
        raise StudyFileError(f"objective script {str(found)!r} cannot be read: {exc.strerror or exc}") from None
    loader = _ScriptLoader(name, str(found), source)  # any file name, .py or not
    spec = importlib.util.spec_from_file_location(name, found, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__tunesmith_file__"] = str(found)  # marks it for shipping by value to Ray
    sys.modules[name] = module  # so its functions pickle by reference (spawned processes)
    left_off = _importable(found.parent)  # the script may import its neighbours
    if left_off or name != found.stem:  # its folder left off the path, or it holds the script by another name
        _importable_alone(name, source)
    try:
        loader.exec_module(module)
    except Exception as exc:
        hint = left_off if isinstance(exc, ImportError) else ""
        raise StudyFileError(f"objective script {str(found)!r} failed to import: {type(exc).__name__}: {exc}"
                             f"{hint}") from exc
    return module


def _module_name(path: Path) -> str:
    """The script's own name, unless that would hide a real module: one imported (``json.py``) or one
    installed and not yet imported (a ``scipy.py`` objective was scipy for the rest of the process,
    and the bayes sampler's ``import scipy.special`` failed: "'scipy' is not a package")."""
    current = sys.modules.get(path.stem)
    if current is None and not _installed_elsewhere(path):
        return path.stem
    if current is not None and "__tunesmith_file__" in current.__dict__:
        return path.stem
    return f"tunesmith_objective_{path.stem}"


def _installed_elsewhere(path: Path) -> bool:
    """Whether ``import <path's stem>`` would find a module other than the script itself."""
    try:
        spec = importlib.util.find_spec(path.stem)
    except (ImportError, ValueError):  # a stem with dots whose first part is no package, or no name
        return False
    return spec is not None and (spec.origin is None or Path(spec.origin).resolve() != path)


def _importable(*folders: Path) -> str:
    """Let modules be imported from ``folders``, after the installed ones: first on the path, a
    file planted beside a shared study file (``mypkg.py``, ``scipy.py``) replaced the installed
    module the file names, or one that tunesmith imports later, and ran on every machine. A folder
    every user may add files to (``/tmp``, sticky or not, or writable by a primary group all users
    share) is left off: a module not installed that anything imports later (``try: import X``) would
    be found there, anyone's. A team's folder is searched, as Python searches a script's: those who
    may add a module there may change the study file and script too. Returns what was left off and
    why, for an error to name ("" where nothing)."""
    left, mine = [], []
    for folder in dict.fromkeys(folders):  # the study file's folder is often the working folder
        why = _every_user_may_add(folder)
        if why is not None:
            left.append(f"{folder}, which {why}")
            if why.startswith("can be written by your primary group") and _owner(folder) == os.getuid():
                mine.append(str(folder))  # umask 002 with a shared or unlisted group (a container's --user)
        elif str(folder) not in sys.path:
            sys.path.append(str(folder))
    if not left:
        return ""
    chmod = f", or keep others out of a folder of yours: chmod g-w {' '.join(mine)}" if mine else ""
    return (f" (not looked for in {'; '.join(left)}, so a module there may be another user's: move the study "
            f"file and its modules to a folder of your own, or install them{chmod})")


def _owner(folder: Path) -> int | None:
    try:
        return folder.resolve().stat().st_uid
    except OSError:
        return None


class _ScriptLoader(importlib.machinery.SourceFileLoader):
    """Runs the script from the ``source`` read once, never from a ``__pycache__`` file beside it: in a folder
    others may write (/tmp), a ``.pyc`` planted there with the script's size and time was run in its place."""

    def __init__(self, name: str, path: str, source: bytes) -> None:
        super().__init__(name, path)
        self.source = source

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.source, self.path)


#: the private folders that keep scripts importable: ``<temp>/tunesmith-script-<host>-<pid>-<random>``
_ALONE = "tunesmith-script-"


@functools.cache  # once per script and name in a process
def _importable_alone(name: str, source: bytes) -> None:
    """Let a process started with spawn (a DataLoader's workers or a ``spawn`` pool on macOS) import the script by
    its module ``name``, which its functions pickle by, though its folder is left off ``sys.path`` or holds it by
    another name (``json.py`` loaded as ``tunesmith_objective_json``): a private
    folder holding a copy of the ``source`` this process ran, alone, goes on the path (without it such a pool
    waited forever). A copy, not a link: the script could be replaced in that folder while the study runs.
    Folders left by this machine's processes that were killed (SIGKILL) are removed first."""
    prefix = f"{_ALONE}{_host()}-"
    _sweep(prefix)
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")  # 0700: no one else adds a module there
    atexit.register(_remove_folder, folder, os.getpid())
    fd = os.open(os.path.join(folder, f"{name}.py"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(source)
    sys.path.append(folder)


def _host() -> str:
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # pids are this host's


def _sweep(prefix: str) -> None:
    """Remove this user's ``prefix<pid>-*`` folders in the temp folder whose process has ended."""
    temp = tempfile.gettempdir()
    try:
        names = os.listdir(temp)
    except OSError:
        return
    for entry in names:
        pid = entry[len(prefix):].partition("-")[0]
        if not entry.startswith(prefix) or not pid.isdigit() or pid_alive(int(pid)):
            continue
        path = os.path.join(temp, entry)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():  # a link or another user's: left alone
            shutil.rmtree(path, ignore_errors=True)


def _remove_folder(folder: str, pid: int) -> None:
    if os.getpid() == pid:  # not a forked worker's exit: the process that made it may still spawn
        shutil.rmtree(folder, ignore_errors=True)


def _every_user_may_add(folder: Path) -> str | None:
    """Why any user may have put a module in ``folder`` (see :func:`paths.every_user_may_add`), else None."""
    try:
        return every_user_may_add(folder.resolve().stat())
    except OSError:
        return None  # nothing there to import from


def _import_module(target: str, base_dir: Path) -> ModuleType:
    left_off = _importable(base_dir, Path.cwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise StudyFileError(
                f"objective module {target!r} cannot be imported (no module named {exc.name!r}){left_off}; "
                "check the name, install it, or give a script path like 'train.py:objective'"
            ) from None
        raise StudyFileError(f"objective module {target!r} failed to import: {exc}{left_off}") from exc
    except Exception as exc:
        raise StudyFileError(f"objective module {target!r} failed to import: {type(exc).__name__}: {exc}") from exc
