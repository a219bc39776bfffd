"""Boosting-round compute to reach random search's best score: tunesmith's XGBoost/LightGBM
callbacks with ASHA against Optuna's integration callbacks with its SuccessiveHalvingPruner.

Task: scikit-learn's breast cancer table (569 rows, 30 features), split 70/30 into training
and validation rows by the seed; binary classification; the validation log-loss is reported
after every boosting round (one round is the unit of compute). Both sides search the same space
(tunesmith.integrations.xgboost_space / lightgbm_space, through Optuna's suggest API for Optuna).

Reference: full-budget random search, ``--trials`` trials of ``--rounds`` rounds, from its own
seed stream. Its best validation log-loss (any trial, any round) is the target. Every method
runs trial after trial until one of its reports reaches the target, or until it has spent the
reference's whole compute ("not reached": counted as the whole cap). Measured per method and
seed: rounds summed over all trials until the target. Same definition as bench_pruning.py.

Run: ``PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_integrations.py
--seeds 20 --results benchmarks/results/integrations.jsonl --report /tmp/integrations.md``
(``--libs xgboost`` for one library, ``--time-limit S`` to stop after S seconds; more seeds
later: ``--first-seed 9 --seeds 20 --resume results/integrations.jsonl --results F.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruning_harness import paired  # noqa: E402

import tunesmith as ts  # noqa: E402
from tunesmith.pruners import ASHA  # noqa: E402

ts.set_verbosity(logging.ERROR)
MIN_RESOURCE, ETA = 4, 3


class Done(Exception):
    """The target was reached or the compute cap spent: stop the method."""


@dataclass
class Meter:
    """Counts rounds over a method's trials; stops it at the target or the cap."""

    target: float
    cap: int
    rounds: int = 0
    best: float = float("inf")
    last: float = float("inf")
    reached_at: int | None = None

    def tick(self, loss: float) -> None:
        self.rounds += 1
        self.last = loss
        self.best = min(self.best, loss)
        if loss <= self.target and self.reached_at is None:
            self.reached_at = self.rounds
        if self.reached_at is not None or self.rounds >= self.cap:
            raise Done


# -- the task: one library's training with a callback that reports each round -----------------
def split(seed: int) -> tuple[np.ndarray, ...]:
    X, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y))


def train_xgboost(params: dict[str, Any], data: tuple[np.ndarray, ...], rounds: int, callbacks: list[Any]) -> None:
    import xgboost as xgb

    X_tr, X_va, y_tr, y_va = data
    p = {**params, "objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1}
    xgb.train(p, xgb.DMatrix(X_tr, label=y_tr), rounds, evals=[(xgb.DMatrix(X_va, label=y_va), "valid")],
              callbacks=callbacks, verbose_eval=False)


def train_lightgbm(params: dict[str, Any], data: tuple[np.ndarray, ...], rounds: int, callbacks: list[Any]) -> None:
    import lightgbm as lgb

    X_tr, X_va, y_tr, y_va = data
    p = {**params, "objective": "binary", "metric": "binary_logloss", "num_threads": 1, "verbose": -1}
    dtrain = lgb.Dataset(X_tr, label=y_tr)
    lgb.train(p, dtrain, rounds, valid_sets=[lgb.Dataset(X_va, label=y_va, reference=dtrain)], callbacks=callbacks)


def space(lib: str) -> ts.Space:
    if lib == "xgboost":
        from tunesmith.integrations.xgboost import xgboost_space

        return xgboost_space()
    from tunesmith.integrations.lightgbm import lightgbm_space

    return lightgbm_space()


def meter_callback(lib: str, meter: Meter) -> Any:
    """A callback (before the pruning one) that feeds each round's validation loss to the meter."""
    if lib == "xgboost":
        import xgboost as xgb

        class Tick(xgb.callback.TrainingCallback):  # type: ignore[misc]
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                meter.tick(float(evals_log["valid"]["logloss"][-1]))
                return False

        return Tick()

    def tick(env: Any) -> None:
        meter.tick(float(env.evaluation_result_list[0][2]))

    tick.order = 10  # type: ignore[attr-defined]
    return tick


TRAIN = {"xgboost": train_xgboost, "lightgbm": train_lightgbm}


# -- the methods ------------------------------------------------------------------------------
def reference(lib: str, seed: int, trials: int, rounds: int) -> dict[str, Any]:
    """Full-budget random search (tunesmith's random sampler, another seed stream)."""
    data, meter = split(seed), Meter(target=-float("inf"), cap=trials * rounds + 1)
    study = ts.Study(space(lib), sampler="random", seed=10_000 + seed)
    study.optimize(lambda t: TRAIN[lib](t.params, data, rounds, [meter_callback(lib, meter)]) or 0.0,
                   n_trials=trials, show_progress=False)
    return {"lib": lib, "method": "reference", "seed": seed, "target": meter.best, "rounds": meter.rounds}


def run_tunesmith(lib: str, sampler: str, seed: int, meter: Meter, rounds: int) -> None:
    data = split(seed)
    pruner = ASHA(min_resource=MIN_RESOURCE, reduction_factor=ETA, max_resource=rounds)
    study = ts.Study(space(lib), sampler=sampler, pruner=pruner, seed=seed)
    if lib == "xgboost":
        from tunesmith.integrations.xgboost import XGBoostPruningCallback as Pruning
    else:
        from tunesmith.integrations.lightgbm import LightGBMPruningCallback as Pruning  # type: ignore[assignment]

    def objective(trial: ts.Trial) -> float:
        TRAIN[lib](trial.params, data, rounds, [meter_callback(lib, meter), Pruning(trial)])
        return meter.last  # the trial's last round

    while True:
        study.optimize(objective, n_trials=1, catch=(), show_progress=False)


def run_optuna(lib: str, sampler: str, seed: int, meter: Meter, rounds: int) -> None:
    import optuna
    from optuna_integration import LightGBMPruningCallback, XGBoostPruningCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    data, sp = split(seed), space(lib)
    sampler_obj: Any = (optuna.samplers.TPESampler(seed=seed) if sampler == "tpe"
                        else optuna.samplers.RandomSampler(seed=seed))
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=MIN_RESOURCE, reduction_factor=ETA)
    study = optuna.create_study(direction="minimize", sampler=sampler_obj, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, sp)
        cb: Any = (XGBoostPruningCallback(trial, "valid-logloss") if lib == "xgboost"
                   else LightGBMPruningCallback(trial, "binary_logloss", valid_name="valid_0"))
        TRAIN[lib](params, data, rounds, [meter_callback(lib, meter), cb])
        return meter.last  # the trial's last round

    while True:
        study.optimize(objective, n_trials=1, catch=())


def suggest(trial: Any, sp: ts.Space) -> dict[str, Any]:
    """The same space through Optuna's suggest API (fixed values passed as they are)."""
    out: dict[str, Any] = {}
    for name in sp:
        p: Any = sp[name]
        if isinstance(p, ts.Fixed):
            out[name] = p.value
        elif isinstance(p, ts.Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


METHODS: dict[str, tuple[Callable[..., None], str]] = {
    "tunesmith random + ASHA": (run_tunesmith, "random"),
    "Optuna random + SH": (run_optuna, "random"),
    "tunesmith TPE + ASHA": (run_tunesmith, "tpe"),
    "Optuna TPE + SH": (run_optuna, "tpe"),
}


def run_method(lib: str, name: str, seed: int, target: float, cap: int, rounds: int) -> dict[str, Any]:
    fn, sampler = METHODS[name]
    meter, start = Meter(target=target, cap=cap), time.perf_counter()
    try:
        fn(lib, sampler, seed, meter, rounds)
    except Done:
        pass
    return {"lib": lib, "method": name, "seed": seed, "epochs": meter.reached_at, "best": meter.best,
            "wall": time.perf_counter() - start, "cap": cap}


# -- the report -------------------------------------------------------------------------------
def report(rows: list[dict[str, Any]], lib: str, cap: int) -> str:
    refs = {r["seed"]: r for r in rows if r["lib"] == lib and r["method"] == "reference"}
    runs = {(r["method"], r["seed"]): r for r in rows if r["lib"] == lib and r["method"] != "reference"}
    names = list(METHODS)
    seeds = [s for s in sorted(refs) if all((n, s) in runs for n in names)]
    lines = [f"### {lib}: {len(seeds)} seeds, cap {cap} rounds", "",
             f"| method | reached (of {len(seeds)}) | median rounds to target (miss = {cap}) | / random's {cap} | mean rounds |",
             "|---|---|---|---|---|"]
    for n in names:
        got = [runs[n, s]["epochs"] or cap for s in seeds]
        if got:
            med = statistics.median(got)
            lines.append(f"| {n} | {sum(runs[n, s]['epochs'] is not None for s in seeds)}/{len(seeds)} | "
                         f"{med:.0f} | {med / cap:.2f} | {statistics.mean(got):.0f} |")
    lines += ["", *[ln.replace("epochs", "rounds") for ln in paired(runs, names, seeds, cap)]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--libs", nargs="+", default=["xgboost", "lightgbm"], choices=list(TRAIN))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--resume", help="earlier --results rows to include in the report (not rerun)")
    ap.add_argument("--trials", type=int, default=30, help="the reference's trials")
    ap.add_argument("--rounds", type=int, default=100, help="full budget of boosting rounds")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--results", help="write every row here (JSON lines)")
    ap.add_argument("--report", help="write the tables here (Markdown)")
    args = ap.parse_args()
    cap, start = args.trials * args.rounds, time.monotonic()
    rows = [json.loads(line) for line in open(args.resume) if line.strip()] if args.resume else []
    out = open(args.results, "w") if args.results else None  # noqa: SIM115
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if args.time_limit and time.monotonic() - start > args.time_limit:
            print(f"time limit: stopped before seed {seed}", flush=True)
            break
        for lib in args.libs:
            ref = reference(lib, seed, args.trials, args.rounds)
            new = [ref] + [run_method(lib, n, seed, ref["target"], cap, args.rounds) for n in METHODS]
            for r in new:
                print(json.dumps(r), flush=True)
                if out:
                    out.write(json.dumps(r) + "\n")
                    out.flush()
            rows += new
    text = "\n".join(report(rows, lib, cap) for lib in args.libs)
    text = f"{time.monotonic() - start:.0f} s\n\n" + text
    print(text)
    if args.report:
        Path(args.report).write_text(text)


if __name__ == "__main__":
    main()
