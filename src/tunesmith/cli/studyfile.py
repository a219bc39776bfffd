"""Study files: a study described in YAML, and the objective it names.

Example ``study.yaml``::

    name: svm-digits
    objective: svm_digits_grid.py:objective     # or a module: mypkg.train:objective
    direction: maximize
    sampler: grid                               # or {name: grid, points: {C: 4}}
    pruner: median                              # optional: a pruner name or {name: ..., options}
    seed: 0
    n_trials: 100
    n_jobs: 2
    storage: sqlite:///tunesmith.db
    space:
      kernel: [linear, poly, rbf]
      C: {type: float, low: 0.1, high: 100, log: true, grid: [0.1, 1, 10, 100]}

A script path is relative to the YAML file's folder (then to the current one).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ..space import Space

DEFAULT_STORAGE = "sqlite:///tunesmith.db"


class StudyFileError(ValueError):
    """A study file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class StudyFile:
    """The settings of a study file (command-line flags override them)."""

    objective: str
    space: Mapping[str, Any]
    name: str
    direction: str = "minimize"
    sampler: str | Mapping[str, Any] = "auto"
    pruner: str | Mapping[str, Any] | None = None
    seed: int | None = None
    n_trials: int | None = None
    timeout: float | None = None
    n_jobs: int = 1
    storage: str = DEFAULT_STORAGE
    base_dir: Path = field(default=Path("."), compare=False)

    @classmethod
    def load(cls, path: str | Path) -> StudyFile:
        path = Path(path)
        if not path.is_file():
            raise StudyFileError(f"study file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise StudyFileError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path), base_dir=path.resolve().parent, default_name=path.stem)

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "study file", base_dir: Path = Path("."), default_name: str = "study"
    ) -> StudyFile:
        if not isinstance(data, Mapping):
            raise StudyFileError(f"{source}: expected a mapping of settings (name, objective, space, ...)")
        known = {f.name for f in fields(cls)} - {"base_dir"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudyFileError(f"{source}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
        missing = [k for k in ("objective", "space") if data.get(k) is None]
        if missing:
            raise StudyFileError(
                f"{source}: missing key(s) {missing}; e.g. objective: train.py:objective and "
                "space: {lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}}"
            )
        settings = {"name": default_name, **{k: v for k, v in data.items() if v is not None}}
        sf = cls(base_dir=base_dir, **settings)
        sf.check(source)
        return sf

    def check(self, source: str = "study file") -> None:
        """Raise StudyFileError for a bad value, naming the key."""
        if not isinstance(self.objective, str) or ":" not in self.objective:
            raise StudyFileError(
                f"{source}: objective must be 'module:function' or 'path/to/script.py:function', "
                f"got {self.objective!r}"
            )
        if not isinstance(self.space, Mapping):
            raise StudyFileError(f"{source}: space must be a mapping of parameter name -> definition")
        try:
            self.build_space()
        except (ValueError, TypeError) as exc:
            raise StudyFileError(f"{source}: space: {exc}") from None
        for key in ("n_trials", "n_jobs", "seed"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise StudyFileError(f"{source}: {key} must be an integer, got {v!r}")
        if self.timeout is not None and not isinstance(self.timeout, (int, float)):
            raise StudyFileError(f"{source}: timeout must be a number of seconds, got {self.timeout!r}")
        if not isinstance(self.name, str) or not self.name:
            raise StudyFileError(f"{source}: name must be a non-empty string, got {self.name!r}")

    def build_space(self) -> Space:
        return Space.from_dict(self.space)

    def override(self, **changes: Any) -> StudyFile:
        """A copy with the given settings replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def load_objective(self) -> Callable[..., Any]:
        return load_objective(self.objective, self.base_dir)


def load_objective(spec: str, base_dir: Path = Path(".")) -> Callable[..., Any]:
    """The function named by ``module:function`` or ``path/to/script.py:function``."""
    target, _, func = spec.rpartition(":")
    if not target or not func:
        raise StudyFileError(f"objective {spec!r}: write it as 'module:function' or 'script.py:function'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_script(target, base_dir)
    else:
        module = _import_module(target, base_dir)
    fn = getattr(module, func, None)
    if fn is None:
        raise StudyFileError(f"objective {spec!r}: {target} has no function {func!r}")
    if not callable(fn):
        raise StudyFileError(f"objective {spec!r}: {func!r} is not callable")
    return fn


def _import_script(target: str, base_dir: Path) -> Any:
    path = Path(target)
    candidates = [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise StudyFileError(f"objective script {target!r} not found (looked in {[str(p) for p in candidates]})")
    name = f"tunesmith_objective_{found.stem}"
    spec = importlib.util.spec_from_file_location(name, found)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(found.parent))  # the script may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise StudyFileError(f"objective script {str(found)!r} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(target: str, base_dir: Path) -> Any:
    for folder in (str(base_dir), str(Path.cwd())):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise StudyFileError(
                f"objective module {target!r} cannot be imported (no module named {exc.name!r}); "
                "check the name, install it, or give a script path like 'train.py:objective'"
            ) from None
        raise StudyFileError(f"objective module {target!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise StudyFileError(f"objective module {target!r} failed to import: {type(exc).__name__}: {exc}") from exc
