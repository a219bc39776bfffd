"""Replay recorded learning curves through tunesmith's and Optuna's pruners.

Each study is 40 trials on one task of ``record.py``'s recording. A trial's
configuration is the recorded one nearest (in the unit cube, log scale where
the space says so) to what the sampler proposes, and its training seed (one of
the two recorded) is drawn from the study seed; it reports the recorded
validation error (%) after every epoch (steps 1 to 27), asks the pruner, and returns its
last epoch's validation error. Rows with a random sampler share one stream per
study seed: the same 40 recorded configurations, enqueued in both libraries.

Per study: ``epochs``, the epochs trained over 40 x 27 (no pruning's); ``regret``,
the final test error of the trial the study names best (its configuration and
seed) minus the best mean final test error of any recorded configuration (in
percentage points; tunesmith rows also hold ``regret_earliest``, the same for the
trial named best when ties on the value go to the earliest trial, the rule before
ties were ranked by the reports, with ``best`` and ``earliest``, the two trials' numbers); ``reached``, whether the best value is at most the best final
validation error of no-pruning random search on the same stream (40 trials, same
seeds).

    PYTHONPATH=src python benchmarks/pruning_replay/replay.py --seeds 0-99 \
        --methods ts-asha optuna-sh-tpe --out benchmarks/results/pruning-replay-rows.jsonl

``--methods`` takes names of METHODS (``--list`` prints them); ``--tasks`` a subset.
Rows already in ``--out`` (same task, method, seed) are kept and not run again.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

N_TRIALS = 40
CURVES = "benchmarks/results/pruning-replay-curves.json.gz"


@dataclass
class Task:
    name: str
    space: dict[str, list[Any]]  # name -> [low, high, log, integer]
    unit: np.ndarray  # recorded configurations in the unit cube, (n, d)
    configs: list[dict[str, Any]]
    val: np.ndarray  # validation error %, (n, seeds, epochs)
    test: np.ndarray  # test error %, (n, seeds, epochs)
    oracle: float  # best mean (over seeds) final test error

    @property
    def epochs(self) -> int:
        return int(self.val.shape[2])

    def to_unit(self, params: dict[str, Any]) -> np.ndarray:
        out = []
        for name, (lo, hi, log, _) in self.space.items():
            v = float(params[name])
            out.append((np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) if log else (v - lo) / (hi - lo))
        return np.array(out)

    def nearest(self, params: dict[str, Any]) -> int:
        return int(np.argmin(((self.unit - self.to_unit(params)) ** 2).sum(axis=1)))


def load_tasks(path: str = CURVES) -> dict[str, Task]:
    with gzip.open(path, "rt") as f:
        raw = json.load(f)
    tasks = {}
    for name, rec in raw.items():
        curves = np.array(rec["curves"], dtype=float)  # (n, seeds, epochs, 4)
        col = rec["columns"]
        task = Task(name, rec["space"], np.zeros(0), rec["configs"],
                    curves[..., col.index("val_error")], curves[..., col.index("test_error")],
                    float(curves[..., -1, col.index("test_error")].mean(axis=1).min()))  # fmt: skip
        task.unit = np.array([task.to_unit(c) for c in task.configs])
        tasks[name] = task
    return tasks


@dataclass
class Stream:
    """What a study seed fixes for both libraries: training seeds and the random stream."""

    seeds: np.ndarray  # training seed index of trial n
    configs: np.ndarray  # recorded configuration of the n-th random trial

    @classmethod
    def of(cls, task: Task, seed: int) -> Stream:
        rng = np.random.default_rng([seed, sum(map(ord, task.name))])
        # 4x the trials: a pausing pruner's trial numbers go no further, others use 40
        return cls(rng.integers(0, task.val.shape[1], 4 * N_TRIALS), rng.integers(0, len(task.configs), N_TRIALS))

    def target(self, task: Task) -> float:
        """No-pruning random search's best final validation error on this stream."""
        return float(min(task.val[c, s, -1] for c, s in zip(self.configs, self.seeds, strict=False)))


class Counter:
    def __init__(self) -> None:
        self.epochs = 0
        self.chosen: dict[int, int] = {}  # trial number -> recorded configuration
        self.stopped_last: list[float] = []  # final values of trials stopped at the last epoch
        self.trained: dict[int, int] = {}  # trial number -> epochs trained
        self.earliest: int | None = None  # tunesmith: the best by value, ties to the earliest trial

    def play(self, trial: Any, curve: np.ndarray, start: int, stop: type[BaseException]) -> float:
        """Report ``curve`` from epoch ``start`` on, asking the pruner after each epoch."""
        for epoch in range(start, len(curve) + 1):
            trial.report(float(curve[epoch - 1]), epoch)
            self.epochs += 1
            self.trained[trial.number] = epoch
            if trial.should_prune():
                if epoch == len(curve):
                    self.stopped_last.append(float(curve[-1]))
                raise stop()
        return float(curve[-1])


# -- tunesmith -------------------------------------------------------------------------------
def ts_space(task: Task) -> Any:
    import tunesmith as ts

    return {
        name: (ts.Int(int(lo), int(hi), log=bool(log)) if integer else ts.Float(lo, hi, log=bool(log)))
        for name, (lo, hi, log, integer) in task.space.items()
    }


def run_tunesmith(task: Task, stream: Stream, seed: int, opts: dict[str, Any]) -> tuple[Counter, int]:
    import tunesmith as ts

    count = Counter()

    def objective(trial: ts.Trial) -> float:
        idx = count.chosen.setdefault(trial.number, task.nearest(trial.params))
        curve = task.val[idx, stream.seeds[trial.number]]
        return count.play(trial, curve, max(trial.start_step, 1), ts.TrialPruned)

    pruner = opts["pruner"](task) if callable(opts["pruner"]) else opts["pruner"]
    sampler = opts.get("sampler")
    if sampler in CANDIDATES:
        sampler = _candidate_samplers()[sampler](seed)
    study = ts.Study(ts_space(task), pruner=pruner, sampler=sampler, seed=seed)
    if opts.get("random"):
        for c in stream.configs:
            study.enqueue(task.configs[c])
    study.optimize(objective, n_trials=N_TRIALS)
    done = [t for t in study.trials if t.state is ts.TrialState.COMPLETE]
    count.earliest = min(done, key=lambda t: (float(t.value), t.number)).number  # type: ignore[arg-type]
    return count, study.best_trial.number


# -- Optuna ------------------------------------------------------------------------------------
def run_optuna(task: Task, stream: Stream, seed: int, opts: dict[str, Any]) -> tuple[Counter, int]:
    import optuna

    count = Counter()

    def objective(trial: optuna.Trial) -> float:
        params = {
            name: (trial.suggest_int(name, int(lo), int(hi), log=bool(log)) if integer
                   else trial.suggest_float(name, lo, hi, log=bool(log)))
            for name, (lo, hi, log, integer) in task.space.items()
        }  # fmt: skip
        idx = count.chosen.setdefault(trial.number, task.nearest(params))
        curve = task.val[idx, stream.seeds[trial.number]]
        return count.play(trial, curve, 1, optuna.TrialPruned)

    random = opts.get("random", False)
    sampler = optuna.samplers.RandomSampler(seed=seed) if random else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=opts["pruner"]())
    if random:
        for c in stream.configs:
            study.enqueue_trial(task.configs[c])
    study.optimize(objective, n_trials=N_TRIALS)
    return count, study.best_trial.number


# -- the methods ---------------------------------------------------------------------------------
def _optuna(pruner: Callable[[], Any], random: bool) -> dict[str, Any]:
    return {"lib": "optuna", "pruner": pruner, "random": random}


def _ts(pruner: Any, sampler: Any = None, random: bool = False) -> dict[str, Any]:
    return {"lib": "tunesmith", "pruner": pruner, "sampler": "random" if random else sampler, "random": random}


def _methods() -> dict[str, dict[str, Any]]:
    """Rows without a sampler in their name use ``"auto"`` (before commit da988ad it picked
    ``MultiFidelitySampler("tpe")`` behind a pruner, since then TPE; the ``-mf`` and ``-tpe``
    rows name theirs)."""
    import optuna

    from tunesmith.pruners import ASHA, Hyperband

    sh, hb, med = (optuna.pruners.SuccessiveHalvingPruner, optuna.pruners.HyperbandPruner,
                   optuna.pruners.MedianPruner)  # fmt: skip
    out = {
        "optuna-sh-tpe": _optuna(sh, False), "optuna-sh-random": _optuna(sh, True),
        "optuna-hb-tpe": _optuna(hb, False), "optuna-hb-random": _optuna(hb, True),
        "optuna-median-tpe": _optuna(med, False), "optuna-median-random": _optuna(med, True),
        "ts-asha": _ts("asha"), "ts-asha-random": _ts("asha", random=True),
        "ts-hyperband": _ts("hyperband"), "ts-hyperband-random": _ts("hyperband", random=True),
        "ts-median": _ts("median"), "ts-median-random": _ts("median", random=True),
    }  # fmt: skip
    for rule, (peers, theirs) in MEDIAN_RULES.items():  # prune9 pass: what the median compares
        out[f"ts-median-{rule}-random"] = _ts(_median_rule(peers, theirs)(), random=True)
    # candidate defaults (see pruning-replay.md): reduction factor, curve score, budget, sampler
    for eta in (2, 3, 4):
        for curve in ("best", "last"):
            out[f"ts-asha-eta{eta}-{curve}"] = _ts(ASHA(reduction_factor=eta, curve=curve))
            out[f"ts-asha-eta{eta}-{curve}-random"] = _ts(ASHA(reduction_factor=eta, curve=curve), random=True)
            out[f"ts-asha-eta{eta}-{curve}-tpe"] = _ts(ASHA(reduction_factor=eta, curve=curve), "tpe")
            out[f"ts-asha-eta{eta}-{curve}-mf"] = _ts(ASHA(reduction_factor=eta, curve=curve), "multifidelity")
            given = ASHA(reduction_factor=eta, curve=curve, max_resource=27)
            out[f"ts-asha-eta{eta}-{curve}-max27-random"] = _ts(given, random=True)
    out["ts-asha-eta4-min1-last-qrung-optstart-random"] = _ts(_optuna_start()(reduction_factor=4, min_resource=1), random=True)
    for eta in (2, 3, 4):
        for n in (2, 3, 4):
            for curve in ("best", "last"):
                hb = Hyperband(reduction_factor=eta, n_brackets=n, curve=curve)
                out[f"ts-hyperband-eta{eta}-b{n}-{curve}-random"] = _ts(hb, random=True)
    return out


# the median rule's variants (prune9 pass): a trial's best-so-far at step s against the others'
# "best" (best-so-far at s) or "last" (value at s), the others being "all" that reported (every
# state but failed) or "complete" ones only (then n_startup_trials counts complete trials only)
MEDIAN_RULES = {"r0": ("all", "best"), "r1": ("all", "last"), "r2": ("complete", "best"),
                "r3": ("complete", "last")}  # fmt: skip


def _median_rule(peers: str, theirs: str) -> type:
    """``MedianPruner`` comparing with ``peers``' ``theirs`` score at the step (MEDIAN_RULES)."""
    from tunesmith.pruners import MedianPruner
    from tunesmith.pruners.curves import Runs
    from tunesmith.trial import TrialState

    class TheirRuns(Runs):
        def of(self, trial: Any, direction: Any, how: str) -> Any:
            return super().of(trial, direction, theirs)

    class MedianRule(MedianPruner):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self._runs = TheirRuns()

        def decide(self, trial: Any, trials: Any, direction: Any) -> Any:
            if peers == "complete":
                trials = [t for t in trials if t.state is TrialState.COMPLETE or t.number == trial.number]
            return super().decide(trial, trials, direction)

    return MedianRule


def _optuna_start() -> type:
    """ASHA with Optuna SuccessiveHalving's start-up (fifth selection, (a)): the trials that
    finished before the first complete one was known (``min_resource="auto"`` unknown) record
    no rung value, so they never compete at a rung."""
    from tunesmith.pruners import ASHA
    from tunesmith.trial import TrialState

    class OptunaStartASHA(ASHA):
        def competitors(self, trials: Any) -> Any:
            done = [t.number for t in trials if t.state is TrialState.COMPLETE]
            return [t for t in super().competitors(trials) if not done or t.number > min(done)]

    return OptunaStartASHA


def _candidate_samplers() -> dict[str, Callable[[int], Any]]:
    """Samplers tried behind a pruner in the third selection (pruning-replay.md), by row suffix."""
    from tunesmith.samplers import MultiFidelitySampler
    from tunesmith.samplers.tpe import TPESampler
    from tunesmith.trial import TrialState

    def startup(space: Any) -> int:  # TPE's: Sobol points until this many complete trials
        return min(max(10, 2 * space.ndim), 25)

    class MFStartup(MultiFidelitySampler):
        """BOHB's rule with as many observations at the budget as TPE needs before it models;
        ``at_rung``: a trial's value there is its report at the budget, not its best so far."""

        def __init__(self, seed: int | None = None, *, at_rung: bool = False) -> None:
            super().__init__("tpe", seed)
            self.at_rung = at_rung

        def suggest(self, space: Any, trials: Any, direction: Any) -> Any:
            from tunesmith.samplers.fidelity import fidelity_history

            hist = fidelity_history(trials, direction, min_points=startup(space))
            if self.at_rung:
                by = {t.number: t for t in trials}
                moved = [h for h in hist if h.state is TrialState.COMPLETE and by[h.number].state is not TrialState.COMPLETE]
                if moved:
                    b = min(by[h.number].last_step or 0 for h in moved)  # the budget: every one reached it
                    b = max(s for s in by[moved[0].number].intermediate if s <= b)
                    hist = [h.replace(value=by[h.number].intermediate[max(s for s in by[h.number].intermediate if s <= b)])
                            if h in moved else h for h in hist]
            return self.base.suggest(space, hist, direction)

    class DepthTPE(TPESampler):
        """Optuna's way: every finished trial counts toward the startup; stopped trials rank
        after complete ones, deeper first, then by value."""

        def suggest(self, space: Any, trials: Any, direction: Any) -> Any:
            fin = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            if len(fin) < startup(space):
                return super().suggest(space, trials, direction)
            sign = direction.sign()
            order = sorted(fin, key=lambda t: (t.state is not TrialState.COMPLETE, -(t.last_step or 0),
                                               sign * (t.value if t.value is not None else float("inf"))))
            rank = {t.number: float(i) for i, t in enumerate(order)}
            view = [t.replace(state=TrialState.COMPLETE, value=sign * rank[t.number]) if t.number in rank
                    else t for t in trials]
            return super().suggest(space, view, direction)

    return {"mfs": lambda seed: MFStartup(seed), "mfsl": lambda seed: MFStartup(seed, at_rung=True),
            "depth": lambda seed: DepthTPE(seed)}


SAMPLERS = {"random": None, "rnd": "random", "tpe": "tpe", "mf": "multifidelity", "sobol": "sobol", "auto": None,
            "mfs": "mfs", "mfsl": "mfsl", "depth": "depth"}
CANDIDATES = ("mfs", "mfsl", "depth")
OPTIONS = {"eta": "reduction_factor", "min": "min_resource", "max": "max_resource", "b": "n_brackets",
           "cal": "calibrate"}


def parse_ts(name: str) -> dict[str, Any]:
    """A tunesmith row from its name: ``ts-{asha|hyperband|sh}`` then ``-``-separated settings,
    e.g. ``ts-asha-eta3-min3-best-random``: ``eta``/``min``/``max``/``b``/``cal`` + an integer
    (reduction factor, min_resource, max_resource, n_brackets, calibrate), a curve (best, last, ema), the
    quota (qrung, qfirst), ``pause`` (a stopped trial is paused and resumed where it stopped
    when promoted; resumes do not count against the 40 trials, epochs count what was trained), and
    last the sampler (random: the shared stream; rnd: random proposals, mapped to the nearest
    recorded configuration like every other sampler's; tpe; sobol; mf: MultiFidelitySampler("tpe");
    auto or nothing: the default sampler). Settings not named take the pruner's defaults of the
    checkout that runs: rows written before ``quota`` existed (results files up to the fourth
    selection) had the per-rung quota, ``qrung`` now."""
    from tunesmith.pruners import make_pruner

    kind, *parts = name.removeprefix("ts-").split("-")
    sampler = parts.pop() if parts and parts[-1] in SAMPLERS else "auto"
    opts: dict[str, Any] = {"name": kind}
    for part in parts:
        key = next((k for k in sorted(OPTIONS, key=len, reverse=True) if part.startswith(k)
                    and part[len(k):].isdigit()), None)  # fmt: skip
        if key:
            opts[OPTIONS[key]] = int(part[len(key):])
        elif part in ("best", "last", "ema"):
            opts["curve"] = part
        elif part in ("qrung", "qfirst"):
            opts["quota"] = part[1:]
        elif part == "pause":
            opts["pause"] = True
        else:
            raise ValueError(f"unknown setting {part!r} in {name!r}")
    return _ts(make_pruner(opts), SAMPLERS[sampler], random=sampler == "random")


def run_one(task: Task, method: str, opts: dict[str, Any], seed: int) -> dict[str, Any]:
    stream = Stream.of(task, seed)
    start = time.perf_counter()
    run = run_optuna if opts["lib"] == "optuna" else run_tunesmith
    count, best = run(task, stream, seed, opts)
    idx, s = count.chosen[best], stream.seeds[best]
    best_val = float(task.val[idx, s, -1])
    row = {
        "task": task.name, "method": method, "seed": seed,
        "epochs": count.epochs / (N_TRIALS * task.epochs),
        "regret": float(task.test[idx, s, -1]) - task.oracle,
        "reached": bool(best_val <= stream.target(task)), "best_val": best_val,
        # trials stopped after their last epoch with a better final value than the named best
        "lost_finished": sum(v < best_val for v in count.stopped_last),
        "wall": round(time.perf_counter() - start, 3),
    }  # fmt: skip
    if count.earliest is not None:  # the same study's best under the old tie rule (decisions do not depend on it)
        e = count.earliest
        row.update(best=best, earliest=e,
                   regret_earliest=float(task.test[count.chosen[e], stream.seeds[e], -1]) - task.oracle)
    return row


METHODS_HELP = "names of METHODS (replay.py --list) or ts- rows parsed by parse_ts"


def resolve(names: list[str]) -> dict[str, dict[str, Any]]:
    """The methods named, the ``ts-`` rows parsed from their names; exits naming unknown ones."""
    methods = _methods()
    for m in names:
        if m not in methods and m.startswith("ts-"):
            methods[m] = parse_ts(m)
    unknown = set(names) - set(methods)
    if unknown:
        sys.exit(f"unknown methods {sorted(unknown)}; replay.py --list prints them")
    return methods


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curves", default=CURVES)
    ap.add_argument("--methods", nargs="+", default=[], help=METHODS_HELP)
    ap.add_argument("--tasks", nargs="+")
    ap.add_argument("--seeds", default="0-99", help="a range, e.g. 0-99")
    ap.add_argument("--out", default="benchmarks/results/pruning-replay-rows.jsonl")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    import optuna

    import tunesmith as ts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ts.set_verbosity(logging.ERROR)
    if args.list:
        print("\n".join(_methods()))
        return
    methods = resolve(args.methods)
    tasks = load_tasks(args.curves)
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["task"], r["method"], r["seed"]) for r in map(json.loads, f) if r}
    with open(args.out, "a") as out:
        for seed in seed_range(args.seeds):
            for name in args.tasks or list(tasks):
                for method in args.methods:
                    if (name, method, seed) not in done:
                        row = run_one(tasks[name], method, methods[method], seed)
                        out.write(json.dumps(row) + "\n")
                        out.flush()


if __name__ == "__main__":
    main()
