"""What the paths a user calls cost as a study's history grows (public API, one process).

Each measurement builds its own study (random search on a 4-parameter space, every
trial with ``--reports`` intermediate reports, written in one transaction) and times
one path on it, ``--repeats`` times, printing the median and the runs:

* ``open``: ``Study.load`` of an N-trial SQLite study, then ``study.trials``;
* ``copy`` / ``focus``: ``study.copy`` and ``study.focus(["x", "n"])`` of it (same file);
* ``ask``: the per-trial cost of ``study.optimize`` with each sampler (random, sobol, tpe,
  auto) after N trials (memory and SQLite; the first ask, which reads the history, timed apart);
* ``reports``: ``trial.report`` per second on SQLite, N reports in one trial;
* ``prune``: ``trial.report`` + ``trial.should_prune`` with the median and ASHA pruners
  after N finished trials;
* ``grid``: a trial of grid search on a 10,000-point grid after N trials;
* ``choices``: reading a stored space of one categorical of N choices (``Space.from_json``),
  and finding its last choice (``Categorical.index``, as each ask does for every trial);
* ``notes``: ``import_study`` of an export file of a 2-trial study with N notes;
* ``wide``: ``importance`` (fANOVA) of 40 random trials over N parameters;
* ``vlines``: drawing an HTML (plotly) learning-curve chart with N vertical lines (N rungs);
* ``show``: ``tunesmith show`` (in this process, output dropped) of an N-trial SQLite study;
* ``fanova``: ``importance`` (fANOVA, the default forest) of the N trials;
* ``reopen``: ``Study(space, storage=..., name=...)`` of a stored study whose space is one
  categorical of N int choices (the given space is compared with the stored one).

Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py open copy focus --sizes 100,1000,5000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py reports --sizes 100,1000,5000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py prune --sizes 2000 --reports 50
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py ask grid --sizes 2000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py choices notes --sizes 20000,100000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py wide --sizes 200,2000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py vlines --sizes 0,30,300
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py show --sizes 5000 --reports 50
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py fanova --sizes 1000,2000,5000
    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_history.py reopen --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402

import tunesmith as ts  # noqa: E402

SPACE = {"x": ts.Float(-5.0, 5.0), "lr": ts.Float(1e-5, 1e-1, log=True), "n": ts.Int(1, 64),
         "act": ts.Categorical(["relu", "tanh", "gelu"])}


def _value(params: dict[str, Any]) -> float:
    return float(params["x"] ** 2 + params["n"] / 64)


def _filled(url: str | None, n: int, reports: int, **kwargs: Any) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="h", **kwargs)
    rng = np.random.default_rng(0)
    records = []
    for _ in range(n):
        params = study.space.sample(rng)
        v = _value(params)
        records.append(ts.FrozenTrial(number=0, state=ts.TrialState.COMPLETE, params=params, value=v, started=1.0,
                                      completed=2.0, intermediate={s: v + 1.0 / s for s in range(1, reports + 1)}))
    if hasattr(study.storage, "insert_trials"):
        study.storage.insert_trials(study._study_id, records)
    else:  # tunesmith before the perf pass (to measure it)
        for r in records:
            study.add_trial(r.params, r.value, intermediate=r.intermediate, started=1.0, completed=2.0)
    return study


def _median(label: str, fn: Callable[[], Any], repeats: int, unit: float = 1e3, what: str = "ms") -> None:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * unit)
    print(f"{label:52s} median {statistics.median(runs):9.2f} {what}  runs {[round(r, 2) for r in runs]}", flush=True)


def bench_open(folder: str, n: int, args: argparse.Namespace) -> None:
    url = f"sqlite:///{folder}/open{n}.db"
    _filled(url, n, args.reports)
    _median(f"open N={n}: Study.load", lambda: ts.Study.load("h", url), args.repeats)
    _median(f"open N={n}: Study.load + trials", lambda: ts.Study.load("h", url).trials, args.repeats)


def bench_copy(folder: str, n: int, args: argparse.Namespace) -> None:
    study = _filled(f"sqlite:///{folder}/copy{n}.db", n, args.reports)
    _ = study.trials  # read once, as a user's session would have
    names = iter(range(10**6))
    _median(f"copy N={n}: study.copy (same SQLite file)", lambda: study.copy(f"c{next(names)}"), args.repeats)


def bench_focus(folder: str, n: int, args: argparse.Namespace) -> None:
    study = _filled(f"sqlite:///{folder}/focus{n}.db", n, args.reports)
    _ = study.trials  # read once, as a user's session would have
    names = iter(range(10**6))
    _median(f"focus N={n}: study.focus(['x', 'n'])", lambda: study.focus(["x", "n"], name=f"f{next(names)}"),
            args.repeats)


def bench_ask(folder: str, n: int, args: argparse.Namespace) -> None:
    for sampler in ("random", "sobol", "tpe", "auto"):
        for where in ("memory", "sqlite"):
            url = None if where == "memory" else f"sqlite:///{folder}/ask{sampler}{n}.db"
            base = _filled(url, n, 0)
            study = ts.Study(storage=base.storage, name="h", sampler=sampler, seed=1)
            t0 = time.perf_counter()
            study.optimize(lambda t: _value(t.params), n_trials=1)
            first = (time.perf_counter() - t0) * 1e3
            k = args.ask_trials
            t0 = time.perf_counter()
            study.optimize(lambda t: _value(t.params), n_trials=k)
            each = (time.perf_counter() - t0) * 1e3 / k
            print(f"ask N={n} {sampler:6s} {where:6s}: first {first:8.2f} ms, then {each:8.2f} ms a trial", flush=True)


def bench_reports(folder: str, n: int, args: argparse.Namespace) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=f"sqlite:///{folder}/rep{n}.db", name="h")

    def one_trial() -> None:
        trial = study.ask()
        for step in range(1, n + 1):
            trial.report(1.0 / step, step)
        study.tell(trial, 1.0)

    _median(f"reports N={n}: trial.report, one SQLite trial", one_trial, args.repeats, unit=1e3 / n,
            what="ms a report")


def bench_prune(folder: str, n: int, args: argparse.Namespace) -> None:
    for pruner in ("median", "asha"):
        study = _filled(f"sqlite:///{folder}/prune{pruner}{n}.db", n, args.reports, pruner=pruner)
        _ = study.trials  # read once, as a user's session would have

        def objective(trial: Any) -> float:
            for step in range(1, args.reports + 1):
                trial.report(-1.0 - step, step)  # better than every trial built: never stopped, every step decided
                if trial.should_prune():
                    raise ts.TrialPruned()
            return -1.0 - args.reports

        runs = []
        for _ in range(args.repeats):
            before = len(study.trials)
            t0 = time.perf_counter()
            study.optimize(objective, n_trials=10)
            steps = sum(len(t.intermediate) for t in study.trials[before:])
            runs.append((time.perf_counter() - t0) * 1e3 / steps)
        print(f"{f'prune N={n} {pruner}: report + should_prune':52s} median {statistics.median(runs):9.2f} ms a step"
              f"  runs {[round(r, 2) for r in runs]}", flush=True)


def bench_grid(folder: str, n: int, args: argparse.Namespace) -> None:
    from tunesmith.samplers.simple import GridSampler

    space = ts.Space({"a": ts.Categorical(list(range(100))), "b": ts.Categorical(list(range(100)))})  # 10,000
    for where in ("memory", "sqlite"):
        base = ts.Study(space, sampler="random", seed=1, name="g",
                        storage=None if where == "memory" else f"sqlite:///{folder}/grid{n}.db")
        for i in range(n):
            base.add_trial({"a": i // 100, "b": i % 100}, 1.0)
        study = ts.Study(storage=base.storage, name="g", sampler=GridSampler(seed=1))
        study.optimize(lambda t: 1.0, n_trials=1)  # the first ask reads the history
        _median(f"grid N={n} {where}: a trial of a 10,000-point grid",
                lambda study=study: study.optimize(lambda t: 1.0, n_trials=20), args.repeats, unit=1e3 / 20)


def bench_choices(folder: str, n: int, args: argparse.Namespace) -> None:
    text = ts.Space({"k": ts.Categorical([f"c{i}" for i in range(n)])}).to_json()
    _median(f"choices N={n}: Space.from_json", lambda: ts.Space.from_json(text), args.repeats)
    k = ts.Space.from_json(text)["k"]
    _median(f"choices N={n}: Categorical.index of the last", lambda: k.index(f"c{n - 1}"), args.repeats, unit=1e6,
            what="us")


def bench_notes(folder: str, n: int, args: argparse.Namespace) -> None:
    from tunesmith.cli.commands import export_json
    from tunesmith.study.manage import import_study

    study = ts.Study(SPACE, sampler="random", seed=0, name="h")
    study.optimize(lambda t: _value(t.params), n_trials=2)
    doc = json.loads(export_json(study))
    doc["study"]["notes"] = [{"time": 1.0, "text": f"note {i}"} for i in range(n)]
    names = iter(range(args.repeats))
    _median(f"notes N={n}: import_study to SQLite",
            lambda: import_study(doc, f"sqlite:///{folder}/notes{n}-{next(names)}.db", "imp"), args.repeats)


def bench_wide(folder: str, n: int, args: argparse.Namespace) -> None:
    from tunesmith.importance import importance

    space = ts.Space({f"w{i}": ts.Float(0, 1) for i in range(n)})
    study = ts.Study(space, sampler="random", seed=0, name="w")
    study.optimize(lambda t: 3 * t.params["w7"] + t.params["w2"], n_trials=40)
    _median(f"wide N={n}: importance of 40 trials", lambda: importance(study.trials, space, seed=0), args.repeats,
            unit=1.0, what="s")


def bench_vlines(folder: str, n: int, args: argparse.Namespace) -> None:
    from tunesmith.plots.plotly_render import to_plotly
    from tunesmith.plots.records import Chart, Series

    chart = Chart("curves", "t", "step", "v", (Series("a", list(range(100)), [float(i) for i in range(100)]),
                  Series("rungs", list(range(1, n + 1)), mode="vline", color="#555555", dash=":")), int_x=True)
    to_plotly(chart)  # imports plotly
    _median(f"vlines N={n}: to_plotly of a curve and N lines", lambda: to_plotly(chart), args.repeats)


def bench_show(folder: str, n: int, args: argparse.Namespace) -> None:
    import contextlib
    import io

    from tunesmith.cli import main as cli

    url = f"sqlite:///{folder}/show{n}.db"
    _filled(url, n, args.reports)

    def show() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            cli(["show", "h", "--storage", url])

    show()  # the command's own imports
    _median(f"show N={n}, {args.reports} reports a trial", show, args.repeats)


def bench_fanova(folder: str, n: int, args: argparse.Namespace) -> None:
    from tunesmith.importance import importance

    study = _filled(None, n, 0)
    importance(study.trials[:50], study.space)  # imports scikit-learn
    _median(f"fanova N={n}: importance", lambda: importance(study.trials, study.space, seed=0), args.repeats,
            unit=1.0, what="s")


def bench_reopen(folder: str, n: int, args: argparse.Namespace) -> None:
    space = ts.Space({"k": ts.Categorical(list(range(n)))})
    url = f"sqlite:///{folder}/reopen{n}.db"
    ts.Study(space, sampler="random", storage=url, name="r")
    _median(f"reopen N={n}: Study(space, storage, name)",
            lambda: ts.Study(space, sampler="random", storage=url, name="r"), args.repeats)


BENCHES = {"open": bench_open, "copy": bench_copy, "focus": bench_focus, "ask": bench_ask,
           "reports": bench_reports, "prune": bench_prune, "grid": bench_grid, "choices": bench_choices,
           "notes": bench_notes, "wide": bench_wide,
           "vlines": bench_vlines, "show": bench_show, "fanova": bench_fanova, "reopen": bench_reopen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="+", choices=sorted(BENCHES))
    parser.add_argument("--sizes", default="100,1000,5000", help="history sizes N, comma-separated")
    parser.add_argument("--reports", type=int, default=10, help="intermediate reports of each trial built")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ask-trials", type=int, default=20, help="trials timed after the first ask")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for which in args.which:
            for n in map(int, args.sizes.split(",")):
                BENCHES[which](folder, n, args)


if __name__ == "__main__":
    main()
