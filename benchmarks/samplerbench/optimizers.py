"""One adapter per optimizer: run ``budget`` evaluations of a loss on a space.

Every adapter drives the same :class:`Recorder`, which evaluates the loss,
keeps each value in call order and times the evaluations, so that
"overhead" (wall time minus evaluation time) means the same for everyone.

Names: ``ts-<sampler>`` for tunesmith samplers (any name tunesmith knows at
run time: bayes, tpe, auto, random, sobol, ...), and the peers below.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import tunesmith as ts

from . import spaces
from .problems import Objective

Runner = Callable[[ts.Space, "Recorder", int, int], None]


class Recorder:
    """Evaluates configurations, recording values and evaluation seconds."""

    def __init__(self, loss: Objective) -> None:
        self.loss = loss
        self.values: list[float] = []
        self.eval_seconds = 0.0

    def __call__(self, cfg: dict[str, Any]) -> float:
        """The loss the optimizer sees; a noisy loss returns (observed, noiseless) and
        the noiseless value is recorded."""
        t0 = time.perf_counter()
        out = self.loss(cfg)
        seen, true = (float(out[0]), float(out[1])) if isinstance(out, tuple) else (float(out), float(out))
        self.eval_seconds += time.perf_counter() - t0
        self.values.append(true)
        return seen


# -- tunesmith -----------------------------------------------------------------------
def run_tunesmith(sampler: str) -> Runner:
    def run(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
        ts.set_verbosity(logging.WARNING)
        study = ts.Study(space, direction="minimize", sampler=sampler, seed=seed)
        study.optimize(lambda trial: rec(dict(trial.params)), n_trials=budget, show_progress=False)

    return run


# -- Optuna ---------------------------------------------------------------------------
def run_optuna(make: Callable[[int], Any]) -> Runner:
    def run(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction="minimize", sampler=make(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning, multivariate fallbacks
            study.optimize(lambda trial: rec(spaces.optuna_config(trial, space)), n_trials=budget)

    return run


def _optuna_tpe(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _optuna_tpe_mv(seed: int) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _optuna_tpe_indep(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=False)


def _optuna_gp(seed: int) -> Any:
    import optuna
    import torch

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.samplers.GPSampler(seed=seed)


def _optuna_random(seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


# -- Hyperopt ------------------------------------------------------------------------------
def run_hyperopt(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    hp_space = spaces.hyperopt_space(space)

    def fn(sample: dict[str, Any]) -> dict[str, Any]:
        return {"loss": rec(spaces.hyperopt_config(sample, space)), "status": STATUS_OK}

    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    fmin(fn, hp_space, algo=tpe.suggest, max_evals=budget, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)


# -- scikit-optimize ----------------------------------------------------------------------------
def run_skopt(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
    """gp_minimize's exact defaults, driven through ask/tell."""
    from skopt import Optimizer
    from skopt.utils import cook_estimator, normalize_dimensions

    names, dims = spaces.skopt_dimensions(space)
    rng = np.random.RandomState(seed)
    sk_space = normalize_dimensions(dims)
    gp = cook_estimator("GP", space=sk_space, random_state=rng.randint(0, np.iinfo(np.int32).max),
                        noise="gaussian")
    opt = Optimizer(sk_space, gp, n_initial_points=min(10, budget), initial_point_generator="random",
                    acq_func="gp_hedge", acq_optimizer="auto", random_state=rng,
                    acq_func_kwargs={"xi": 0.01, "kappa": 1.96},
                    acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(budget):
            x = opt.ask()
            y = rec(spaces.skopt_config(x, names, space))
            opt.tell(x, y)


PEERS: dict[str, Runner] = {
    "optuna-tpe": run_optuna(_optuna_tpe),
    "optuna-tpe-indep": run_optuna(_optuna_tpe_indep),
    "optuna-tpe-mv": run_optuna(_optuna_tpe_mv),
    "optuna-gp": run_optuna(_optuna_gp),
    "hyperopt-tpe": run_hyperopt,
    "skopt-gp": run_skopt,
    "random": run_optuna(_optuna_random),
}
# Optuna >= 5 makes TPESampler multivariate by default (single objective), so
# "optuna-tpe-mv" repeats "optuna-tpe" exactly; the independent TPE (Optuna < 5's
# default) is the informative second variant.
DEFAULT_PEERS = ("optuna-tpe", "optuna-tpe-indep", "optuna-gp", "hyperopt-tpe", "skopt-gp", "random")
DEFAULT_SAMPLERS = ("bayes", "tpe", "auto", "random", "sobol")


def tunesmith_samplers() -> list[str]:
    """Sampler names the tunesmith on the path knows (varies by branch)."""
    from tunesmith.samplers import _BUILTIN

    return sorted(_BUILTIN)


def _more_peers() -> None:
    from .peers import PARALLEL
    from .peers import PEERS as MORE

    PEERS.update(MORE)
    PARALLEL_RUNNERS.update(PARALLEL)


PARALLEL_RUNNERS: dict[str, Any] = {}


def parallel_runner(name: str) -> Any:
    """A runner with ``pending`` suggestions in flight: (space, rec, budget, seed, pending)."""
    _more_peers()
    if name.startswith("ts-"):
        runner(name)  # unknown names fail here
        return PARALLEL_RUNNERS["ts"](name[3:])
    if name not in PARALLEL_RUNNERS:
        raise ValueError(f"{name!r} has no parallel adapter; those with one: ts-<name>, {sorted(PARALLEL_RUNNERS)}")
    return PARALLEL_RUNNERS[name]


def runner(name: str) -> Runner:
    if name.startswith("ts-"):
        sampler = name[3:]
        if sampler not in tunesmith_samplers():
            raise ValueError(f"tunesmith has no sampler {sampler!r}; it knows {tunesmith_samplers()}")
        return run_tunesmith(sampler)
    _more_peers()
    if name not in PEERS:
        raise ValueError(f"unknown optimizer {name!r}; peers are {sorted(PEERS)}, tunesmith ones 'ts-<name>'")
    return PEERS[name]


def is_tunesmith(name: str) -> bool:
    return name.startswith("ts-")
