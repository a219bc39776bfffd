"""``tunesmith focus``: a new study in the space of the parameters that matter."""

from __future__ import annotations

import argparse
import shlex

from ..cv import is_search_trial
from ..importance import METHODS
from ..space.params import plural
from ..storage.base import password_note
from ..study.focus import CARRY, focus_study
from .commands import _load, add_storage_arg


def add_focus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--keep", nargs="+", metavar="PARAM",
                       help="the parameters to keep searching (lr wd, or lr,wd as plot's --params)")
    which.add_argument("--threshold", type=float,
                       help="keep the parameters whose importance (main effect plus pairs) is at least this")
    p.add_argument("--to", dest="new_name", help="the new study's name (default: NAME-focus)")
    add_storage_arg(p)
    p.add_argument("--to-storage", help="database URL of the new study (default: the same storage)")
    p.add_argument("--carry", choices=CARRY, default="all",
                   help="which complete trials to carry over: all (default), exact (fixed parameters equal "
                        "the best's), none")
    p.add_argument("--method", choices=METHODS, default="fanova", help="importance method for --threshold")


def cmd_focus(args: argparse.Namespace) -> int:
    study = _load(args.name, args.storage, write=args.to_storage is None)
    keep = [n.strip() for k in args.keep for n in k.split(",") if n.strip()] if args.keep else args.keep
    new, plan = focus_study(study, keep=keep, threshold=args.threshold, name=args.new_name,
                            storage=args.to_storage, carry=args.carry, method=args.method, seed=None,
                            log=False)
    print(plan.summary(study.name))
    print(f"created study {new.name!r} in {new.storage.display_url} ({plural(len(plan.keep), 'free parameter')}); "
          + (_search_advice(new.name, new.storage.display_url) if any(map(is_search_trial, study.trials))
             else _run_advice(new.name)))
    return 0


def _run_advice(name: str) -> str:
    # --name=NAME: a name that begins with '-' (`--name -x`) is taken for an option
    return (f"run it with `tunesmith run FILE --name={shlex.quote(name)}` (a study file without `space:` uses the "
            f"stored one) or Study.load({name!r}, storage).optimize(objective, ...)")


def _search_advice(name: str, url: str) -> str:
    """A TunedSearchCV's study has no objective to run: a search fitted on the focused study goes on with it."""
    return (f"fit a search on it, with the estimator, data, cv, scoring and refit of the search it focuses: "
            f"TunedSearchCV(estimator, Study.load({name!r}, {url!r}).space, n_trials=..., cv=..., scoring=..., "
            f"refit=..., storage={url!r}, name={name!r}).fit(X, y){password_note(url)} (its carried trials count "
            "toward n_trials)")
