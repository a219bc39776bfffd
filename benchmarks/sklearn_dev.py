"""Development checks behind benchmarks/sklearn.md, on seeds the registered run never uses (10-19).

``--mode selection``: per (cell, seed, sampler) one TunedSearchCV search (16 configurations,
unpruned), and the test score of *every* configuration it tried (refitted on the training
split), so that rules choosing the best from noisy CV means can be compared on the same
searches, and fold racing simulated (exactly for the random sampler: it ignores history).
``--mode racing``: real searches with and without fold racing / the median rule.
``--mode sampler``: the test score of the configuration TunedSearchCV picks, by sampler
setting (``--heldout``: on the large-test cells of bench_sklearn_heldout.py).
``--mode distinct``: the same, for the near-duplicate checks of the third round (``--heldout``):
"auto" as it is, "auto" with proposals closer than 0.05 / 0.1 to a tried configuration replaced
by the farthest of 256 random points (:class:`Distinct`; "f-0.05": asked again first, with the
near-copies as pending trials), expected improvement from the observed
best ("obs"), and random search; each row also holds every trial's distance to its nearest
earlier trial.
``--mode trace``: every trial of TunedSearchCV and of skopt's BayesSearchCV in the order they ran
(``--variants``: "auto", "skopt-bayes", and the fourth round's "gap-0.05", "init10-gap", "xi-0.01").
``--analyse FILE`` prints the comparisons. Results: benchmarks/results/sklearn-dev-*.jsonl;
what they showed: benchmarks/LOG.md, "TunedSearchCV: why it ranks low, what was tried".

    OMP_NUM_THREADS=1 nice -n 10 PYTHONPATH=src python benchmarks/sklearn_dev.py --mode selection \\
        --cells svc-digits logreg-breast-cancer forest-classification --out benchmarks/results/sklearn-dev-selection.jsonl
    PYTHONPATH=src python benchmarks/sklearn_dev.py --analyse benchmarks/results/sklearn-dev-selection.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sklearn as B  # noqa: E402

#: racing as every round before the seventh ran it, ties=0 (pruner="folds" stops ties since, 2026-12-06):
#: the "-folds" rows of the results files, and the baseline the "-t2" rows are compared with
NO_TIES = {"name": "folds", "ties": 0}
RACING = {"bayes": ("bayes", None), "bayes-folds": ("bayes", NO_TIES), "tpe": ("tpe", None),
          "tpe-folds": ("tpe", NO_TIES), "bayes-median": ("bayes", {"name": "median", "n_startup_trials": 4}),
          # the sixth round (LOG.md, "fold racing with a tolerance that follows the folds' spread")
          "auto": ("auto", None),  # what the registered `tunesmith` row runs
          "bayes-folds-s0.5": ("bayes", {**NO_TIES, "spread": 0.5}),
          "bayes-folds-s1": ("bayes", {**NO_TIES, "spread": 1.0}),
          # the seventh round (LOG.md, "fold racing: ties and the sampler"): racing with "auto"'s
          # sampler (what the unpruned row runs), and stopping configurations tied fold by fold
          "auto-folds": ("auto", NO_TIES), "auto-folds-t2": ("auto", {"name": "folds", "ties": 2}),
          "bayes-folds-t2": ("bayes", {"name": "folds", "ties": 2})}


def run(mode: str, names: list[str], seeds: list[int], samplers: list[str], out: Path,
        variants_: list[str] | None = None, heldout: bool = False) -> None:
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from tunesmith.sklearn import TunedSearchCV

    B.quiet()
    for cell, size in _cells(names, heldout):
        x, y = cell.data()
        for seed in seeds:
            xtr, xte, ytr, yte = train_test_split(x, y, **size, stratify=y, random_state=seed)
            cv = StratifiedKFold(B.FOLDS, shuffle=True, random_state=seed)
            variants = {s: (s, None) for s in samplers} if mode == "selection" else RACING
            variants = _samplers(seed) if mode == "sampler" else variants
            variants = _distinct(seed) if mode == "distinct" else variants
            if mode == "trace":
                _trace(cell, seed, cv, (xtr, ytr, xte, yte), out, variants_ or ["auto", "skopt-bayes"])
                continue
            variants = {k: v for k, v in variants.items() if variants_ is None or k in variants_}
            for name, (sampler, pruner) in variants.items():
                s = TunedSearchCV(cell.estimator(seed), B.scipy_space(cell.space), n_trials=B.N_TRIALS, cv=cv,
                                  random_state=seed, sampler=sampler, pruner=pruner, refit=mode != "selection")
                s.fit(xtr, ytr)
                row: dict[str, Any] = {"cell": cell.name, "seed": seed, "v": name}
                if mode in ("sampler", "distinct"):
                    row |= {"cv": float(s.best_score_), "test": float(s.score(xte, yte))}
                if mode == "distinct":
                    U = s.study_.space.encode_many([t.params for t in s.study_.trials])
                    row |= {"near": [float(gaps(s.study_.space, U[:i], U[i]).min()) for i in range(1, len(U))],
                            "skipped": getattr(sampler, "skipped", None)}
                elif mode == "racing":
                    row |= {"test": float(s.score(xte, yte)), "cv": float(s.best_score_),
                            "fits": int(sum(len(t.intermediate) for t in s.study_.trials))}
                else:
                    r = s.cv_results_
                    row["folds"] = [[float(r[f"split{k}_test_score"][i]) for k in range(B.FOLDS)]
                                    for i in range(len(r["params"]))]
                    row["test"] = [float(clone(cell.estimator(seed)).set_params(**p).fit(xtr, ytr).score(xte, yte))
                                   for p in r["params"]]
                    row["raw"] = [dict(t.params) for t in s.study_.trials]
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(cell.name, seed, name, flush=True)


def _trace(cell: Any, seed: int, cv: Any, data: tuple[Any, ...], out: Path, names: list[str]) -> None:
    """``--mode trace``: every trial of TunedSearchCV ("auto", or a sampler name) and of skopt's
    BayesSearchCV in the order they ran: unit coordinates, mean CV score, and the choice's test score."""
    from tunesmith.sklearn import TunedSearchCV

    xtr, ytr, xte, yte = data
    for name in names:
        np.random.seed(seed)  # liblinear (logreg, random_state=None) draws from NumPy's global generator
        if name == "skopt-bayes":
            s = B.build(name, cell, seed, cv)
        else:
            sampler = {"gap-0.05": lambda: gap_sampler(seed), "init10-gap": lambda: gap_sampler(seed, n_init=10),
                       "xi-0.01": lambda: xi_sampler(seed),
                       # the seventh round: "auto" with the worse half of the scores rank-warped
                       "half-rank": lambda: {"name": "auto", "bayes": {"ei_margin": 0.01, "half_rank": True}}}
            s = TunedSearchCV(cell.estimator(seed), B.scipy_space(cell.space), n_trials=B.N_TRIALS, cv=cv,
                              random_state=seed, sampler=sampler[name]() if name in sampler else name)
        s.fit(xtr, ytr)
        r = s.cv_results_
        raw = [{k: (v if isinstance(v, (int, float, str)) else v.item()) for k, v in p.items()} for p in r["params"]]
        row = {"cell": cell.name, "seed": seed, "v": name, "cv": float(s.best_score_), "test": float(s.score(xte, yte)),
               "raw": raw, "values": [float(v) for v in r["mean_test_score"]]}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(cell.name, seed, name, flush=True)


class _GapKeys(set):  # type: ignore[type-arg]
    """The sampler's set of tried configurations' keys, where a key also counts as taken when its
    row lies within ``gap`` (Chebyshev, unit cube) of a tried one: the Bayesian sampler then skips
    such candidates and proposes its best candidate outside every gap (``--mode trace``, gap-*)."""

    def __init__(self, keys: Any, gap: float) -> None:
        super().__init__(keys)
        rows = [np.frombuffer(k, dtype=float) for k in self]
        self.rows, self.gap = (np.array(rows) if rows else np.empty((0, 0))), gap

    def __contains__(self, key: object) -> bool:
        if set.__contains__(self, key):
            return True
        if not len(self.rows):
            return False
        u = np.frombuffer(key, dtype=float)  # type: ignore[arg-type]
        return bool(np.min(np.max(np.abs(self.rows - u), axis=1)) < self.gap)


def gap_sampler(seed: int, gap: float = 0.05, n_init: int | None = None) -> Any:
    """"auto"'s Bayesian sampler proposing only configurations ``gap`` away from every tried one."""
    from tunesmith.samplers import BayesSampler

    class Gap(BayesSampler):
        def _model_point(self, space: Any, trials: Any, done: Any, bad: Any, losses: Any, rows: Any,
                         taken: Any, prior: Any) -> Any:
            return super()._model_point(space, trials, done, bad, losses, rows, _GapKeys(taken, gap), prior)

        def _design(self, space: Any, index: int, taken: Any, prior: Any) -> Any:
            return super()._design(space, index, _GapKeys(taken, gap), prior)

    return Gap(seed=seed, n_init=n_init)


def xi_sampler(seed: int, xi: float = 0.01) -> Any:
    """"auto"'s Bayesian sampler with skopt's EI margin: the incumbent lowered by ``xi`` score units."""
    from tunesmith.samplers import BayesSampler

    class Xi(BayesSampler):
        def _model_point(self, space: Any, trials: Any, done: Any, bad: Any, losses: Any, *rest: Any) -> Any:
            self.margin = xi / max(float(np.std(losses)), 1e-12)
            return super()._model_point(space, trials, done, bad, losses, *rest)

        def _incumbent(self, gp: Any, n_done: int) -> float:
            return super()._incumbent(gp, n_done) - self.margin

    return Xi(seed=seed)


def _samplers(seed: int) -> dict[str, tuple[Any, None]]:
    """``--mode sampler``: "bayes" is what "auto" was before its initial design grew (5 points
    here); "bayes-init8" is what it is now at 16 trials."""
    from tunesmith.samplers import BayesSampler

    return {"bayes": ("bayes", None), "tpe": ("tpe", None), "random": ("random", None),
            "bayes-init8": (BayesSampler(seed=seed, n_init=8), None)}


def _distinct(seed: int) -> dict[str, tuple[Any, None]]:
    from tunesmith.samplers import AutoSampler, BayesSampler

    return {"auto": ("auto", None), "d-0.05": (Distinct(AutoSampler(seed=seed), 0.05, seed), None),
            "d-0.1": (Distinct(AutoSampler(seed=seed), 0.1, seed), None), "random": ("random", None),
            "f-0.05": (Distinct(AutoSampler(seed=seed), 0.05, seed, reask=4), None),
            "obs": (BayesSampler(seed=seed, plugin_incumbent=False), None)}


def gaps(space: Any, U: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Chebyshev distance in the unit cube from ``u`` to each row of ``U``: a categorical that
    differs counts 1, a parameter active in one and not the other counts 1."""
    cat = np.array([space[n].kind == "categorical" for n in space.free])
    D = np.abs(U - u)
    D[:, cat] = (U[:, cat] != u[cat]).astype(float)
    a, b = np.isnan(U), np.isnan(u)[None, :]
    return np.where(a & b, 0.0, np.where(a ^ b, 1.0, D)).max(1)


def _distinct_class() -> Any:
    from tunesmith.samplers import Sampler, Suggestion
    from tunesmith.trial import FrozenTrial, TrialState

    class Distinct(Sampler):
        """Wraps a sampler: a proposal closer than ``min_gap`` to a tried configuration is asked
        again up to ``reask`` times with the near-copies added as pending trials (the Gaussian
        process's fantasies there lower the acquisition), then replaced by the farthest of 256
        random configurations."""

        name = "distinct"

        def __init__(self, inner: Sampler, min_gap: float, seed: int, reask: int = 0) -> None:
            super().__init__(seed)
            self.inner, self.min_gap, self.reask, self.skipped = inner, min_gap, reask, 0

        def reseed(self, *key: int) -> None:
            super().reseed(*key)
            self.inner.reseed(*key)

        def set_budget(self, n_trials: int | None) -> None:
            self.inner.set_budget(n_trials)

        def suggest(self, space: Any, trials: Any, direction: Any) -> Any:
            s = self.inner.suggest(space, trials, direction)
            if s is None or not trials:
                return s
            U = space.encode_many([t.params for t in trials])
            if gaps(space, U, space.encode(s.params)).min() >= self.min_gap:
                return s
            self.skipped += 1
            near: list[FrozenTrial] = []
            for _ in range(self.reask):
                near.append(FrozenTrial(10_000 + len(trials) + len(near), TrialState.RUNNING, dict(s.params)))
                s = self.inner.suggest(space, [*trials, *near], direction)
                if s is None:
                    break
                if gaps(space, U, space.encode(s.params)).min() >= self.min_gap:
                    return s
            C = space.encode_many([space.decode(c) for c in self.rng.random((256, space.ndim))])
            return Suggestion(space.decode(C[int(np.argmax([gaps(space, U, c).min() for c in C]))]), unique=True)

    return Distinct


def Distinct(inner: Any, min_gap: float, seed: int, reask: int = 0) -> Any:  # noqa: N802 - built on first use
    return _distinct_class()(inner, min_gap, seed, reask)


def _cells(names: list[str], heldout: bool) -> list[tuple[Any, dict[str, Any]]]:
    """(cell, split size): the registered cells (a 30% test split), or with
    ``heldout`` those of bench_sklearn_heldout.py (a training set of the same size, the rest
    of a larger data set as the test split)."""
    if heldout:
        import bench_sklearn_heldout as H

        return [(h.cell, {"train_size": h.n_train}) for h in H.cells() if h.cell.name in names]
    return [(c, {"test_size": 0.3}) for c in B.cells() if c.name in names]


# -- analysis -------------------------------------------------------------------------------------


def _unit(cell: str, raw: dict[str, Any]) -> list[tuple[str, Any]]:
    import bench_sklearn_heldout as H

    space = {c.name: c.space for c in [*B.cells(), *(h.cell for h in H.cells())]}[cell]
    out: list[tuple[str, Any]] = []
    for k, p in space.items():
        v = raw[k]
        if p.kind == "cat":
            out.append(("c", v))
        elif p.log:
            out.append(("n", (math.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))))
        else:
            out.append(("n", (v - p.low) / (p.high - p.low)))
    return out


def choices(row: dict[str, Any]) -> dict[str, int]:
    """The configuration each rule picks: argmax of the mean (TunedSearchCV's), kernel-smoothed
    means (bandwidth h in the unit cube), a lower bound mean - std/sqrt(k), the best mean fold rank."""
    F = np.array(row["folds"])
    m, sd = F.mean(1), F.std(1)
    U = [_unit(row["cell"], r) for r in row["raw"]]
    D = np.array([[sum((a[1] - b[1]) ** 2 if a[0] == "n" else float(a[1] != b[1]) for a, b in zip(u, w, strict=True))
                   for w in U] for u in U])
    out = {"argmax": int(np.argmax(m)), "lower-bound": int(np.argmax(m - sd / np.sqrt(F.shape[1])))}
    for h in (0.05, 0.1, 0.2):
        W = np.exp(-D / (2 * h * h))
        out[f"smoothed h={h}"] = int(np.argmax((W @ m) / W.sum(1)))
    out["fold rank"] = int(np.argmin(np.argsort(np.argsort(-F, axis=0), axis=0).mean(1)))
    return out


def race(F: np.ndarray, margin: float = 0.0) -> tuple[list[int], list[bool]]:
    """Fold racing replayed on full fold scores: folds used and finished, per trial in order."""
    used: list[int] = []
    done: list[bool] = []
    for f in F:
        finished = [j for j in range(len(used)) if done[j]]
        stop = len(f)
        if finished:
            inc = F[max(finished, key=lambda j: F[j].mean())]
            stop = next((k for k in range(1, len(f)) if f[:k].mean() < inc[:k].mean() - margin - 1e-12), len(f))
        used.append(stop)
        done.append(stop == len(f))
    return used, done


def analyse(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows and "near" in rows[0]:
        return _analyse_distinct(rows)
    if rows and "values" in rows[0] and "raw" in rows[0]:
        return _analyse_trace(rows)
    if rows and "fits" not in rows[0] and "folds" not in rows[0]:
        return _analyse_sampler(rows)
    if rows and "folds" not in rows[0]:
        return _analyse_racing(rows)
    picked: dict[tuple[str, str], list[float]] = defaultdict(list)
    fits: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        t, F = np.array(r["test"]), np.array(r["folds"])
        for rule, i in choices(r).items():
            picked[(r["v"], rule)].append(t[i])
        picked[(r["v"], "oracle (best test)")].append(t.max())
        for margin in (0.0, 0.01):
            used, done = race(F, margin)
            best = max((i for i in range(len(F)) if done[i]), key=lambda i: F[i].mean())
            picked[(r["v"], f"racing margin {margin}")].append(t[best])
            fits[(r["v"], f"racing margin {margin}")].append(sum(used))
    for (v, rule), xs in sorted(picked.items()):
        extra = f", fits {np.mean(fits[(v, rule)]):.1f} of 80" if (v, rule) in fits else ""
        print(f"{v:7s} {rule:22s} n={len(xs)} mean test {np.mean(xs):.4f}{extra}")
    by: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        by[(r["cell"], r["seed"])][r["v"]] = r["test"][int(np.argmax(np.array(r["folds"]).mean(1)))]
    _paired_print(by, [("tpe", "bayes"), ("random", "bayes")], None)


def _analyse_sampler(rows: list[dict[str, Any]]) -> None:
    by: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        by[(r["cell"], r["seed"])][r["v"]] = r["test"]
    _paired_print(by, [("bayes-init8", "bayes"), ("tpe", "bayes"), ("random", "bayes")], None)


def _analyse_distinct(rows: list[dict[str, Any]]) -> None:
    by: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        by[(r["cell"], r["seed"])][r["v"]] = r["test"]
    pairs = [(v, "auto") for v in ("d-0.05", "d-0.1", "f-0.05", "obs", "random")]
    _paired_print(by, pairs, None)
    for v, _ in pairs:
        cells = {c: [b[v] - b["auto"] for (cc, _), b in by.items() if cc == c and v in b and "auto" in b]
                 for c in dict.fromkeys(c for c, _ in by)}
        print(f"  {v} per cell: " + ", ".join(f"{c} {np.mean(x):+.4f} ({len(x)})" for c, x in cells.items() if x))
    for v in dict.fromkeys(r["v"] for r in rows):
        near = [sum(n < 0.05 for n in r["near"]) for r in rows if r["v"] == v]
        print(f"{v}: trials within 0.05 of an earlier one, per search of 16: {np.mean(near):.2f}")


def _trace_stats(row: dict[str, Any]) -> dict[str, float]:
    """Per search: near-copies (Chebyshev < 0.05 in the unit cube, a different category counts 1),
    coordinates at a bound (< 0.01 or > 0.99), the best CV after 5 / 10 / 16 trials."""
    U = [_unit(row["cell"], r) for r in row["raw"]]

    def gap(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> float:
        return max(abs(x[1] - y[1]) if x[0] == "n" else float(x[1] != y[1]) for x, y in zip(a, b, strict=True))

    near = [min(gap(U[i], U[j]) for j in range(i)) for i in range(1, len(U))]
    num = [x[1] for u in U for x in u if x[0] == "n"]
    v = np.maximum.accumulate(np.array(row["values"]))
    return {"near": sum(n < 0.05 for n in near), "near after 10": sum(n < 0.05 for n in near[9:]),
            "at bound": float(np.mean([x < 0.01 or x > 0.99 for x in num])),
            "cv@5": float(v[4]), "cv@10": float(v[9]), "cv@16": float(v[-1]), "test": row["test"]}


def _analyse_trace(rows: list[dict[str, Any]]) -> None:
    stats: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        for key in (r["cell"], "all"):
            stats[(key, r["v"])].append(_trace_stats(r))
    for (cell, v), xs in sorted(stats.items()):
        print(f"{cell:24s} {v:12s} n={len(xs)} " + " ".join(f"{k} {np.mean([x[k] for x in xs]):.4f}" for k in xs[0]))
    by: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        by[(r["cell"], r["seed"])][r["v"]] = r["test"]
    names = list(dict.fromkeys(r["v"] for r in rows))
    _paired_print(by, [(v, "auto") for v in names if v != "auto"], None)
    for v in names:
        if v != "auto":
            d = {c: [b[v] - b["auto"] for (cc, _), b in by.items() if cc == c and v in b and "auto" in b]
                 for c in dict.fromkeys(c for c, _ in by)}
            print(f"  {v} - auto per cell: " + ", ".join(f"{c} {np.mean(x):+.4f}" for c, x in d.items() if x))
    for r in rows:
        if r["cell"].startswith("logreg"):
            pen = [p.get("logisticregression__penalty") or ("l1" if p["logisticregression__l1_ratio"] == 1.0 else "l2")
                   for p in r["raw"]]  # rows run before the cell searched l1_ratio name penalty
            good = sum(p == "l1" and 0.01 <= q["logisticregression__C"] <= 1 for p, q in zip(pen, r["raw"], strict=True))
            print(f"  logreg seed {r['seed']} {r['v']:12s} l1 trials {pen.count('l1')}, l1 with C in [0.01, 1] {good}, "
                  f"cv {r['cv']:.4f} test {r['test']:.4f}")


def _analyse_racing(rows: list[dict[str, Any]]) -> None:
    by: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    nfits: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for r in rows:
        by[(r["cell"], r["seed"])][r["v"]] = r["test"]
        nfits[(r["cell"], r["seed"])][r["v"]] = r["fits"]
    _paired_print(by, [("bayes-folds", "bayes"), ("tpe-folds", "tpe"), ("bayes-median", "bayes"), ("tpe", "bayes")],
                  nfits)
    racers = sorted({v for r in by.values() for v in r if "-folds" in v})
    for base in ("auto", "bayes"):
        for v in racers:
            _target3(by, nfits, v, base)


def _target3(by: dict[Any, dict[str, float]], nfits: Any, v: str, base: str) -> None:
    """Target 3's rule per cell (fits summed over seeds at most half of ``base``'s, mean test
    score difference >= -0.005), on the (cell, seed) pairs where both ran."""
    ks = [k for k, r in by.items() if v in r and base in r]
    if not ks:
        return
    met = []
    for cell in sorted({c for c, _ in ks}):
        cs = [k for k in ks if k[0] == cell]
        d = float(np.mean([by[k][v] - by[k][base] for k in cs]))
        ratio = sum(nfits[k][v] for k in cs) / sum(nfits[k][base] for k in cs)
        ok = ratio <= 0.5 and d >= -0.005
        met.append(ok)
        print(f"  {v} vs {base} {cell:24s} n={len(cs)} test {d:+.4f} fits {ratio:.2f} {'met' if ok else '-'}")
    total = sum(nfits[k][v] for k in ks) / sum(nfits[k][base] for k in ks)
    print(f"{v} vs {base}: target 3 met in {sum(met)} of {len(met)} cells, fits {total:.2f}")


def _paired_print(by: dict[Any, dict[str, float]], pairs: list[tuple[str, str]], nfits: Any) -> None:
    for a, b in pairs:
        ks = [k for k, v in by.items() if a in v and b in v]
        x = np.array([by[k][a] - by[k][b] for k in ks])
        if len(x) < 2:
            continue
        ratio = f", fits {sum(nfits[k][a] for k in ks) / sum(nfits[k][b] for k in ks):.2f}" if nfits else ""
        print(f"{a} - {b}: n={len(x)} mean {x.mean():+.4f} (se {x.std(ddof=1) / np.sqrt(len(x)):.4f}), "
              f"better {(x > 0).sum()}, worse {(x < 0).sum()}{ratio}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["selection", "racing", "sampler", "distinct", "trace"], default="selection")
    ap.add_argument("--cells", nargs="+", default=None, help="default: all six")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10, 20)))
    ap.add_argument("--samplers", nargs="+", default=["bayes", "random", "tpe"])
    ap.add_argument("--variants", nargs="+", default=None, help=f"racing mode: a subset of {sorted(RACING)}")
    ap.add_argument("--heldout", action="store_true", help="the cells of bench_sklearn_heldout.py (large test sets)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--analyse", type=Path, default=None)
    args = ap.parse_args()
    if args.analyse:
        analyse(args.analyse)
        return 0
    out = args.out or B.HERE / "results" / f"sklearn-dev-{args.mode}.jsonl"
    import bench_sklearn_heldout as H

    names = args.cells or [h.cell.name if args.heldout else c.name for h, c in zip(H.cells(), B.cells(), strict=True)]
    run(args.mode, names, args.seeds, args.samplers, out, args.variants, args.heldout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
