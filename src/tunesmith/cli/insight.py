"""The subcommands that look at a study: importance (and plot, report, compare)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from ..importance import METHODS, Importances
from ..storage import make_storage
from ..study import Study
from .studyfile import DEFAULT_STORAGE


def load(name: str, url: str) -> Study:
    return Study.load(name, make_storage(url))


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL (default: {DEFAULT_STORAGE})")


# -- importance ---------------------------------------------------------------------------------


def add_importance_args(p: argparse.ArgumentParser) -> None:
    _study_args(p)
    p.add_argument("--method", choices=METHODS, default="fanova",
                   help="fanova: shares of the variance (default); ped-anova: what sets the good trials apart")
    p.add_argument("--seed", type=int, default=0, help="seed of the forest / the bootstrap (default 0)")
    p.add_argument("--pairs", type=int, default=5, help="how many pairs to list (fanova; default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_importance(args: argparse.Namespace) -> int:
    study = load(args.name, args.storage)
    imp = study.importance(args.method, seed=args.seed)
    if args.json:
        print(json.dumps(imp.to_dict(), indent=2))
        return 0
    Console().print(importance_table(study.name, imp, args.pairs))
    return 0


def importance_table(name: str, imp: Importances, pairs: int) -> Table:
    left = ", ".join(f"{n} {s}" for s, n in imp.left_out.items())
    table = Table(title=f"{name}: importance ({imp.method}, {imp.n_trials} complete trials"
                        f"{'; left out: ' + left if left else ''})")
    for col in ("parameter", "fraction", "± band", ""):
        table.add_column(col, justify="left" if col in ("parameter", "") else "right")
    for e in [*imp.main, *imp.interactions[:pairs]]:
        table.add_row(e.label, f"{e.fraction:.3f}", f"{e.std:.3f}", "█" * round(40 * max(e.fraction, 0.0)))
    return table
