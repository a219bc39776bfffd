"""``tunesmith worker STUDY.yaml``: one more worker on a study shared through a database.

Any machine that reaches the storage and can import the objective joins with
the same study file (see :mod:`tunesmith.cli.studyfile`)::

    name: mlp-search
    storage: postgresql+psycopg://tuner:secret@db.internal/tunesmith   # required here
    objective: mypackage.train:objective      # or path/to/file.py:objective
    space: {lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}}  # needed to create it
    n_trials: 100            # trials this worker runs (default: until stopped)
    heartbeat_interval: 10   # optional: fail trials of lost workers after grace_period
    grace_period: 60
    requeue_failed: true

``tunesmith run STUDY.yaml --executor ray --address HOST:PORT`` runs the same
file on a Ray cluster (see :mod:`tunesmith.cli.commands`).
"""

from __future__ import annotations

import argparse
from collections import Counter

from ..space.params import plural
from ..trial import FrozenTrial, TrialState
from .launch import EVERY_TRIAL_FAILED, optimize_options, prepare, run_trials
from .studyfile import EXECUTORS, StudyFile, StudyFileError


def add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_file", metavar="STUDY.yaml", help="the study file (YAML): name, storage, objective, ...")
    p.add_argument("--name", default=None,
                   help="the study to join (default: the file's name; as run --name, for a second study of one file)")
    p.add_argument("--storage", default=None,
                   help="database URL (overrides the file's storage:, e.g. from an environment variable, "
                        "so that a password need not be written in a shared file)")
    p.add_argument("--n-trials", type=int, default=None, help="trials to run (default: the file's n_trials)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds after which no trial starts (default: the file's, else none)")
    p.add_argument("--trial-timeout", type=float, default=None,
                   help="seconds a trial may run before it is stopped and failed")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel workers on this machine (default: the file's n_jobs, else 1)")
    p.add_argument("--executor", choices=EXECUTORS, default=None, help="where trials run (default: as for run)")
    p.add_argument("--address", default=None, help="Ray cluster address HOST:PORT (with --executor ray)")


def check_shared_storage(sf: StudyFile) -> None:
    """A worker must name the database it shares: no default file, no memory."""
    if sf.storage is None:
        raise StudyFileError(
            f"{sf.source}: missing key(s) ['storage']; workers share a study through a database: set storage: "
            "to its URL (or pass --storage URL), e.g. postgresql+psycopg://user:password@host/db or "
            "sqlite:////shared/folder/study.db"
        )
    if sf.storage.strip().lower() == "memory":
        raise StudyFileError(
            f"{sf.source}: workers share a study through a database: storage must be a URL, not 'memory' "
            "(e.g. sqlite:///tunesmith.db or postgresql+psycopg://user:password@host/db)"
        )


def cmd_worker(args: argparse.Namespace) -> int:
    """Open (or create) the study the file names and run its trials here."""
    sf, study, objective = prepare(args, check=check_shared_storage)
    ran: dict[int, TrialState] = {}
    status = run_trials(study, objective, optimize_options(sf, show_progress=False), ran)
    trials = study.trials
    done = [t for t in trials if t.state.is_finished]
    failed = f"; every trial this worker ran failed (exit status {status})" if status == EVERY_TRIAL_FAILED else ""
    try:
        print(f"{_ran_here(ran)}; study {study.name!r}: {plural(len(done), 'finished trial')} in "
              f"{study.storage.display_url}{_unfinished(trials)}{failed}", flush=True)
    except OSError:
        if status <= 128:  # stopped by a signal: a terminal that closed (SIGHUP) takes no summary, the status says it
            raise
    return status


def _ran_here(ran: dict[int, TrialState]) -> str:
    """What this worker did ("this worker ran 5 trials (3 complete, 2 pruned)"): the study's totals
    alone left a team unable to tell, after a kill or an outage, what one machine had run."""
    if not ran:
        return "this worker ran no trial"
    counts = Counter(state.value for state in ran.values())
    return (f"this worker ran {plural(len(ran), 'trial')} ("
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")")


def _unfinished(trials: list[FrozenTrial]) -> str:
    """The trials not finished, by state ("; 16 paused, 1 waiting"): a worker under a pausing
    pruner that ran 12 trials said "4 finished trials" alone, as if the others were lost."""
    counts = Counter(t.state.value for t in trials if not t.state.is_finished)
    return "; " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) if counts else ""
