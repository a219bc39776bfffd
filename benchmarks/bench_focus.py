"""Focus on what matters: 4 effective parameters among 20, against Optuna's GP and TPE.

One command runs every (problem, method, seed), appends one JSON line per run to
``benchmarks/results/focus.jsonl`` and rewrites the results section of ``benchmarks/focus.md``:

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_focus.py

Options: ``--problems hartmann4-irrelevant ...``, ``--methods tunesmith optuna-gp ...``,
``--seeds 5`` (``--first-seed 0``), ``--budget 100``, ``--reuse`` (skip runs already in the results file),
``--report-only``. Problems and the deciding summary are described in benchmarks/focus.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
D, EFFECTIVE = 20, 4
SMALL = 0.01  # the small variant: SMALL * sd(f) * sum_k (z_k - c_k)^2 over the 16 others

# -- the 4-d functions, on the unit cube ---------------------------------------------------------

_HA = np.array([[10, 3, 17, 3.5], [0.05, 10, 17, 0.1], [3, 3.5, 1.7, 10], [17, 8, 0.05, 10]])
_HP = 1e-4 * np.array([[1312, 1696, 5569, 124], [2329, 4135, 8307, 3736],
                       [2348, 1451, 3522, 2883], [4047, 8828, 8732, 5743]])
_HALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann4(x: np.ndarray) -> float:
    """Hartmann-4 (Picheny et al. 2013), on [0, 1]^4."""
    inner = np.sum(_HA * (x[None, :] - _HP) ** 2, axis=1)
    return float((1.1 - np.sum(_HALPHA * np.exp(-inner))) / 0.839)


def styblinski4(x: np.ndarray) -> float:
    """Styblinski-Tang in 4 dimensions, x in [-5, 5]^4 mapped from the unit cube, divided by 4."""
    z = 10.0 * x - 5.0
    return float(0.5 * np.sum(z**4 - 16 * z**2 + 5 * z) / 4.0)


FUNCTIONS: dict[str, Callable[[np.ndarray], float]] = {"hartmann4": hartmann4, "styblinski4": styblinski4}


def minimum(f: Callable[[np.ndarray], float]) -> float:
    """The global minimum, by L-BFGS-B from 200 random starts (fixed seed)."""
    import scipy.optimize

    rng = np.random.default_rng(0)
    best = math.inf
    for x0 in rng.random((200, EFFECTIVE)):
        res = scipy.optimize.minimize(f, x0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * EFFECTIVE)
        best = min(best, float(res.fun))
    return best


def spread(f: Callable[[np.ndarray], float]) -> float:
    """sd of f under the uniform measure (fixed sample)."""
    return float(np.std([f(x) for x in np.random.default_rng(1).random((4000, EFFECTIVE))]))


@dataclass(frozen=True)
class Problem:
    """f on 4 of 20 coordinates (which ones: drawn per seed), plus, in the small variant,
    ``SMALL * sd(f) * sum (z_k - c_k)^2`` over the other 16 (c_k drawn per seed)."""

    name: str
    f: Callable[[np.ndarray], float]
    small: bool
    f_min: float
    sd: float

    def instance(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(1000 + seed)
        order = rng.permutation(D)
        return np.sort(order[:EFFECTIVE]), rng.uniform(0.2, 0.8, D)

    def full(self, seed: int) -> Callable[[np.ndarray], float]:
        eff, centre = self.instance(seed)
        others = np.setdiff1d(np.arange(D), eff)

        def g(x: np.ndarray) -> float:
            extra = SMALL * self.sd * float(np.sum((x[others] - centre[others]) ** 2)) if self.small else 0.0
            return self.f(x[eff]) + extra

        return g


def problems() -> dict[str, Problem]:
    out = {}
    for fname, f in FUNCTIONS.items():
        lo, sd = minimum(f), spread(f)
        for variant in ("irrelevant", "small"):
            out[f"{fname}-{variant}"] = Problem(f"{fname}-{variant}", f, variant == "small", lo, sd)
    return out


# -- the methods ------------------------------------------------------------------------------


def run_tunesmith(g: Callable[[np.ndarray], float], dims: int, budget: int, seed: int, **options: object) -> list[float]:
    import tunesmith as ts

    study = ts.Study({f"x{i:02d}": ts.Float(0.0, 1.0) for i in range(dims)},
                     sampler=ts.samplers.BayesSampler(seed=seed, **options))  # type: ignore[arg-type]
    study.optimize(lambda t: g(np.array([t.params[f"x{i:02d}"] for i in range(dims)])), n_trials=budget)
    return [float(t.value) for t in study.trials]  # type: ignore[arg-type]


def run_study_focus(g: Callable[[np.ndarray], float], budget: int, seed: int) -> list[float]:
    """Half the budget in the whole space, then ``study.focus(threshold=0.05)`` and the rest."""
    import tunesmith as ts

    names = [f"x{i:02d}" for i in range(D)]
    study = ts.Study({n: ts.Float(0.0, 1.0) for n in names}, sampler=ts.samplers.BayesSampler(seed=seed),
                     name="wide")

    def objective(t: ts.Trial) -> float:
        return g(np.array([t.params[n] for n in names]))

    study.optimize(objective, n_trials=budget // 2)
    narrow = study.focus(threshold=0.05, seed=seed)
    narrow.optimize(objective, n_trials=budget - budget // 2)
    new = [t for t in narrow.trials if "focus_source" not in t.attrs]  # the carried ones ran in ``study``
    return [float(t.value) for t in [*study.trials, *new]]  # type: ignore[arg-type]


def run_optuna(g: Callable[[np.ndarray], float], budget: int, seed: int, kind: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GPSampler(seed=seed) if kind == "gp" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: g(np.array([t.suggest_float(f"x{i:02d}", 0.0, 1.0) for i in range(D)])),
                   n_trials=budget)
    return [float(t.value) for t in study.trials]  # type: ignore[arg-type]


def run(method: str, problem: Problem, budget: int, seed: int) -> list[float]:
    g = problem.full(seed)
    if method == "reference-4d":
        return run_tunesmith(problem.f, EFFECTIVE, budget, seed)
    if method == "tunesmith":
        return run_tunesmith(g, D, budget, seed)
    if method == "tunesmith-nofocus":
        return run_tunesmith(g, D, budget, seed, focus=False)
    if method == "tunesmith-study.focus":
        return run_study_focus(g, budget, seed)
    return run_optuna(g, budget, seed, "gp" if method == "optuna-gp" else "tpe")


METHODS = ["tunesmith", "tunesmith-nofocus", "tunesmith-study.focus", "optuna-gp", "optuna-tpe", "reference-4d"]
PEERS = ["tunesmith-nofocus", "optuna-gp", "optuna-tpe"]


# -- results and report -----------------------------------------------------------------------


def load(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def regret_table(rows: list[dict[str, object]], budget: int) -> str:
    probs = sorted({str(r["problem"]) for r in rows})
    head = "| problem | " + " | ".join(METHODS) + " | tunesmith / 4-d alone | tunesmith below every peer |"
    lines = [head, "|" + "---|" * (len(METHODS) + 3)]
    met_ref = met_peers = 0
    for p in probs:
        med = {}
        for m in METHODS:
            regrets = [float(r["regret"]) for r in rows  # type: ignore[arg-type]
                       if r["problem"] == p and r["method"] == m and r["budget"] == budget]
            med[m] = (float(np.median(regrets)), len(regrets)) if regrets else (math.nan, 0)
        ratio = med["tunesmith"][0] / med["reference-4d"][0] if med["reference-4d"][0] > 0 else math.inf
        below = all(med["tunesmith"][0] < med[q][0] for q in PEERS)
        met_ref += ratio <= 1.2
        met_peers += below
        cells = [f"{v:.3g} ({n})" if n else "-" for v, n in med.values()]
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {ratio:.2f}x {'**met**' if ratio <= 1.2 else 'missed'} | "
                     f"{'**yes**' if below else 'no'} |")
    lines.append("")
    lines.append(f"Median simple regret after {budget} trials over seeds (number of seeds in brackets). "
                 f"Targets met: within 1.2x of the 4-d function alone on {met_ref} of {len(probs)} problems; "
                 f"below every peer on {met_peers} of {len(probs)}.")
    return "\n".join(lines)


def checkpoints(rows: list[dict[str, object]], budget: int) -> str:
    marks = sorted({budget // 4, budget // 2, 3 * budget // 4, budget})
    lines = ["| problem | method | " + " | ".join(f"@{k}" for k in marks) + " | seconds (median) |",
             "|" + "---|" * (len(marks) + 3)]
    for p in sorted({str(r["problem"]) for r in rows}):
        for m in METHODS:
            rs = [r for r in rows if r["problem"] == p and r["method"] == m and r["budget"] == budget]
            if not rs:
                continue
            at = [float(np.median([r["trace"][k - 1] for r in rs])) for k in marks]  # type: ignore[index]
            secs = float(np.median([float(r["seconds"]) for r in rs]))  # type: ignore[arg-type]
            lines.append(f"| {p} | {m} | " + " | ".join(f"{v:.3g}" for v in at) + f" | {secs:.1f} |")
    return "\n".join(lines)


def report(rows: list[dict[str, object]], budget: int, page: Path) -> None:
    text = page.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    body = (f"{start}\n\n{regret_table(rows, budget)}\n\nBest-so-far regret (median over seeds) along the "
            f"run:\n\n{checkpoints(rows, budget)}\n\n{end}")
    if start in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    page.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", default=None)
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed ... first-seed + seeds - 1")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--results", type=Path, default=HERE / "results" / "focus.jsonl")
    ap.add_argument("--page", type=Path, default=HERE / "focus.md")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.report_only:
        probs = problems()
        chosen = args.problems or list(probs)
        done = {(r["problem"], r["method"], r["seed"], r["budget"]) for r in load(args.results)} if args.reuse else set()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for p in chosen:
                for m in args.methods:
                    if (p, m, seed, args.budget) in done:
                        continue
                    t0 = time.perf_counter()
                    values = run(m, probs[p], args.budget, seed)
                    secs = time.perf_counter() - t0
                    trace = (np.minimum.accumulate(values) - probs[p].f_min).tolist()
                    row = {"problem": p, "method": m, "seed": seed, "budget": args.budget, "regret": trace[-1],
                           "trace": trace, "seconds": secs, "f_min": probs[p].f_min}
                    with args.results.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"{p} {m} seed {seed}: regret {trace[-1]:.4g} in {secs:.1f}s", flush=True)
    report(load(args.results), args.budget, args.page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
