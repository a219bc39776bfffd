"""``tunesmith focus``: a new study in the space of the parameters that matter."""

from __future__ import annotations

import argparse
import shlex

from ..importance import METHODS
from ..space.params import plural
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
    # --name=NAME: a name that begins with '-' (`--name -x`) is taken for an option
    print(f"created study {new.name!r} in {new.storage.display_url} ({plural(len(plan.keep), 'free parameter')}); "
          f"run it with `tunesmith run FILE --name={shlex.quote(new.name)}` (a study file without `space:` uses the stored "
          f"one) or Study.load({new.name!r}, storage).optimize(objective, ...)")
    return 0
