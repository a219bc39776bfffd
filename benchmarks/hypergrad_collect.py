"""Collect one task's results from several processes of bench_hypergrad_nets.py into one file
that ``bench_hypergrad_nets.py --summarize`` reads: whole results files, and the per-trial lines
a black-box method prints to stderr (``  METHOD trial N: VAL / TEST``) where its process was cut
at the deadline (its curve then ends at the last finished trial; its budget is that count).

    python benchmarks/hypergrad_collect.py --task minilm --out FILE \\
        --json a.json b.json:random,optuna-tpe --trials SEED:FILE.err ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hypergrad_nets import AT, best_within, cpu_within  # noqa: E402

TRIAL = re.compile(r"^\s+(\S+) trial (\d+): ([-\d.naif]+) / ([-\d.naif]+)$")


def from_trials(seed: int, path: Path, skip: set[str]) -> list[dict[str, Any]]:
    """Black-box curves from the per-trial lines of ``path`` (methods in ``skip`` left out)."""
    curves: dict[str, list[tuple[float, ...]]] = {}
    for line in path.read_text().splitlines():
        m = TRIAL.match(line)
        if m and m.group(1) not in skip:
            c = curves.setdefault(m.group(1), [])
            if int(m.group(2)) == len(c) + 1:
                c.append((float(m.group(2)), float(m.group(3)), float(m.group(4))))
    return [entry(method, seed, c, float(len(c)), cut=True) for method, c in curves.items()]


def from_json(spec: str) -> list[dict[str, Any]]:
    path, _, only = spec.partition(":")
    keep = set(only.split(",")) if only else None
    return [r for r in json.loads(Path(path).read_text())["results"] if keep is None or r["method"] in keep]


def entry(method: str, seed: int, curve: list[Any], budget: float, *, cut: bool = False) -> dict[str, Any]:
    return {"method": method, "seed": seed, "curve": curve, "budget": budget, "cut": cut,
            "at": {str(a): best_within(curve, a, budget) for a in AT},
            "cpu_at": {str(a): cpu_within(curve, a) for a in AT}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--json", nargs="*", default=[], help="results files: PATH (every method) or PATH:M1,M2")
    ap.add_argument("--trials", nargs="*", default=[], help="SEED:FILE: per-trial lines of methods not in --json")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = [r for spec in args.json for r in from_json(spec)]
    have = {(r["method"], r["seed"]) for r in results}
    for spec in args.trials:
        seed, path = spec.split(":", 1)
        skip = {m for m, s in have if s == int(seed)}
        results += from_trials(int(seed), Path(path), skip)
    args.out.write_text(json.dumps({"task": args.task, "sources": args.json + args.trials,
                                    "results": results}, indent=1))


if __name__ == "__main__":
    main()
