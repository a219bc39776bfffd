"""``tunesmith worker STUDY.yaml`` and ``tunesmith run STUDY.yaml --executor ray --address ADDR``.

A study file names the study, its storage and its objective; any machine that
can reach the storage and import the objective can join with ``worker``::

    name: mlp-search
    storage: postgresql+psycopg://tuner:secret@db.internal/tunesmith
    objective: mypackage.train:objective      # or path/to/file.py:objective
    space: {lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}}  # needed to create it
    direction: minimize
    sampler: tpe
    n_trials: 100            # trials this worker runs (default: until stopped)
    heartbeat_interval: 10   # optional: fail trials of lost workers after grace_period
    grace_period: 60
    requeue_failed: true

``add_commands(subparsers)`` plugs both subcommands into the main CLI's
table; ``main`` runs them standalone (``python -m tunesmith.cli_worker``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .space import Space
from .study import Study

_KEYS = {
    "name", "storage", "objective", "space", "direction", "sampler", "pruner", "seed", "n_trials",
    "timeout", "n_jobs", "heartbeat_interval", "grace_period", "requeue_failed", "executor",
    "ray_address", "resources_per_trial", "trials_per_gpu", "gpus",
}


@dataclass(frozen=True)
class StudyFile:
    """A parsed study file (see the module docstring)."""

    name: str
    storage: str
    objective: str
    space: dict[str, Any] | None = None
    direction: str | None = None
    sampler: Any = None
    pruner: Any = None
    seed: int | None = None
    n_trials: int | None = None
    timeout: float | None = None
    n_jobs: int = 1
    heartbeat_interval: float | None = None
    grace_period: float | None = None
    requeue_failed: bool = False
    executor: str | None = None
    ray_address: str | None = None
    resources_per_trial: dict[str, float] | None = None
    trials_per_gpu: int | None = None
    gpus: Any = None
    base: Path = field(default=Path("."))

    @classmethod
    def load(cls, path: str | Path) -> StudyFile:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"study file {str(p)!r} does not exist")
        data = yaml.safe_load(p.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{p}: a study file is a YAML mapping (name:, storage:, objective:, ...)")
        unknown = set(data) - _KEYS
        if unknown:
            raise ValueError(f"{p}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
        missing = [k for k in ("name", "storage", "objective") if not data.get(k)]
        if missing:
            raise ValueError(f"{p}: missing {missing}; a worker needs the study's name, storage and objective")
        if str(data["storage"]) in ("memory", "None"):
            raise ValueError(f"{p}: workers share a study through a database: storage must be a URL")
        return cls(**data, base=p.resolve().parent)

    def open(self) -> Study:
        return Study(
            None if self.space is None else Space.from_dict(self.space), direction=self.direction, sampler=self.sampler, pruner=self.pruner, seed=self.seed,
            storage=self.storage, name=self.name, heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period, requeue_failed=self.requeue_failed,
        )

    def load_objective(self) -> Callable[..., Any]:
        return import_objective(self.objective, self.base)


def import_objective(ref: str, base: Path = Path(".")) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function``."""
    mod_name, sep, attr = ref.rpartition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"objective {ref!r} must look like 'package.module:function' or 'file.py:function'")
    if mod_name.endswith(".py"):
        path = (base / mod_name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ValueError(f"objective file {str(path)!r} does not exist")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # so forked or Ray workers can pickle its functions
        module.__dict__["__tunesmith_file__"] = str(path)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"objective {ref!r}: {mod_name} has no function {attr!r}")
    return fn


def _options(sf: StudyFile, args: argparse.Namespace) -> dict[str, Any]:
    executor = args.executor or sf.executor
    opts: dict[str, Any] = {}
    if executor == "ray":
        address = args.address or sf.ray_address
        if address:
            opts["ray_address"] = address
        if sf.resources_per_trial:
            opts["resources_per_trial"] = sf.resources_per_trial
    if sf.trials_per_gpu is not None:
        opts["trials_per_gpu"] = sf.trials_per_gpu
    if sf.gpus is not None and executor in (None, "process"):
        opts["gpus"] = sf.gpus
    return opts


def run_study_file(args: argparse.Namespace) -> int:
    """The body of ``worker`` and ``run``: open the study, run its trials."""
    sf = StudyFile.load(args.study)
    if args.address and (args.executor or sf.executor) != "ray":
        raise ValueError("--address is the Ray cluster's address: pass --executor ray with it")
    study = sf.open()
    objective = sf.load_objective()
    if (args.executor or sf.executor) == "ray":
        _ship_by_value(objective)
    n_trials = args.n_trials if args.n_trials is not None else sf.n_trials
    study.optimize(
        objective, n_trials=n_trials, timeout=args.timeout or sf.timeout,
        n_jobs=args.n_jobs or sf.n_jobs, executor=args.executor or sf.executor,
        show_progress=False, **_options(sf, args),
    )
    done = [t for t in study.trials if t.state.is_finished]
    print(f"study {study.name!r}: {len(done)} finished trials in {study.storage.url}", flush=True)
    return 0


def _ship_by_value(objective: Callable[..., Any]) -> None:
    """An objective loaded from a file is not importable on Ray's nodes: send its code along."""
    module = sys.modules.get(getattr(objective, "__module__", ""))
    if module is not None and "__tunesmith_file__" in module.__dict__:
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(module)


def add_commands(subparsers: Any) -> None:
    """Add ``worker`` and ``run`` to the main CLI's subcommand table."""
    for name, text in (
        ("worker", "join an existing study from this machine (storage shared by URL)"),
        ("run", "run a study file here, in local processes, or on a Ray cluster"),
    ):
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("study", help="the study file (YAML): name, storage, objective, ...")
        p.add_argument("--n-trials", type=int, default=None, help="trials to run (default: the file's n_trials)")
        p.add_argument("--timeout", type=float, default=None, help="seconds after which no trial starts")
        p.add_argument("--n-jobs", type=int, default=None, help="parallel workers on this machine")
        p.add_argument("--executor", choices=["inline", "thread", "process", "ray"], default=None)
        p.add_argument("--address", default=None, help="Ray cluster address HOST:PORT (with --executor ray)")
        p.set_defaults(func=run_study_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunesmith")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, ImportError) as exc:
        print(f"tunesmith {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["StudyFile", "add_commands", "import_objective", "main", "run_study_file"]
