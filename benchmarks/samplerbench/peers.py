"""More peers for the broad benchmark, and the parallel adapters.

Peers (each with its library's default settings, driven through its ask/tell API):
``optuna-cmaes`` (Optuna CmaEsSampler), ``ngopt`` (Nevergrad NGOpt), ``smac-hpo``
(SMAC3's HyperparameterOptimizationFacade: random forest, conditions native),
``ax`` (Ax's Client: BoTorch GP). Nevergrad and Ax see a flat space (inactive
conditional coordinates are sampled and ignored, as for skopt).

Parallel (``pending`` > 1): the optimizer keeps ``pending`` suggestions in flight;
the oldest is evaluated and told, then one more is asked (first in, first out), until
``budget`` evaluations. Adapters: tunesmith samplers, Optuna's samplers, NGOpt
(``num_workers=pending``) and random.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

import tunesmith as ts
from tunesmith.space.params import Categorical, Fixed, Float, Int, Param

from . import spaces
from .optimizers import _optuna_gp, _optuna_random, _optuna_tpe, run_optuna

if TYPE_CHECKING:
    from .optimizers import Recorder


def _flat_names(space: ts.Space) -> list[str]:
    return [n for n in spaces.dependency_order(space) if not isinstance(space[n], Fixed)]


def _stepped(p: Param) -> bool:
    return isinstance(p, (Float, Int)) and p.step is not None and not (isinstance(p, Int) and p.step == 1)


def _levels(p: Float | Int) -> int:
    assert p.step is not None
    return round((p.high - p.low) / p.step) + 1


# -- Optuna CMA-ES -------------------------------------------------------------------
def _optuna_cmaes(seed: int) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


# -- Nevergrad -------------------------------------------------------------------------
def ng_parametrization(space: ts.Space) -> Any:
    import nevergrad as ng

    params: dict[str, Any] = {}
    for n in _flat_names(space):
        p = space[n]
        if isinstance(p, Categorical):
            params[n] = ng.p.Choice(list(range(len(p.choices))))
        elif _stepped(p):
            params[n] = ng.p.Scalar(lower=0, upper=_levels(p) - 1).set_integer_casting()  # type: ignore[arg-type]
        else:
            assert isinstance(p, (Float, Int))
            kind = ng.p.Log if p.log else ng.p.Scalar
            par = kind(lower=p.low, upper=p.high)
            params[n] = par.set_integer_casting() if isinstance(p, Int) else par
    return ng.p.Dict(**params)


def _scalar(x: Any) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def _ngopt(space: ts.Space, budget: int, seed: int, workers: int) -> Any:
    import nevergrad as ng
    from nevergrad.optimization import metamodel

    # nevergrad 1.0.12's metamodel calls float() on a 1-element array, an error since
    # numpy 2.4 (NGOpt then crashes on smooth functions); the same value, read as numpy 2 wants
    metamodel.float = _scalar  # type: ignore[attr-defined]

    param = ng_parametrization(space)
    param.random_state = np.random.RandomState(seed)
    return ng.optimizers.NGOpt(parametrization=param, budget=budget, num_workers=workers)


def run_ngopt(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
    run_ngopt_parallel(space, rec, budget, seed, 1)


def run_ngopt_parallel(space: ts.Space, rec: Recorder, budget: int, seed: int, pending: int) -> None:
    opt = _ngopt(space, budget, seed, pending)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fifo(lambda: opt.ask(), lambda c: rec(spaces.raw_config(c.value, space)),
              lambda c, y: opt.tell(c, y), budget, pending)


def _fifo(ask: Callable[[], Any], evaluate: Callable[[Any], float], tell: Callable[[Any, float], None],
          budget: int, pending: int) -> None:
    """``pending`` suggestions in flight; evaluate and tell the oldest, ask one more."""
    queue: deque[Any] = deque(ask() for _ in range(min(pending, budget)))
    asked = len(queue)
    while queue:
        item = queue.popleft()
        tell(item, evaluate(item))
        if asked < budget:
            queue.append(ask())
            asked += 1


# -- SMAC3 -------------------------------------------------------------------------------
def configspace(space: ts.Space, seed: int) -> Any:
    from ConfigSpace import Categorical as CsCat
    from ConfigSpace import ConfigurationSpace, InCondition
    from ConfigSpace import Float as CsFloat
    from ConfigSpace import Integer as CsInt

    cs = ConfigurationSpace(seed=seed)
    for n in _flat_names(space):
        p = space[n]
        if isinstance(p, Categorical):
            cs.add(CsCat(n, [str(i) for i in range(len(p.choices))]))
        elif _stepped(p):
            cs.add(CsInt(n, (0, _levels(p) - 1)))  # type: ignore[arg-type]
        elif isinstance(p, Int):
            cs.add(CsInt(n, (p.low, p.high), log=p.log))
        else:
            assert isinstance(p, Float)
            cs.add(CsFloat(n, (p.low, p.high), log=p.log))
    for n in _flat_names(space):
        for parent, values in space[n].when.items():
            par = space[parent]
            assert isinstance(par, Categorical), "SMAC mapping: conditions on categoricals only"
            idx = [str(i) for i, c in enumerate(par.choices) if any(c == v for v in values)]
            cs.add(InCondition(cs[n], cs[parent], idx))
    return cs


def run_smac(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
    from smac import HyperparameterOptimizationFacade as HPO
    from smac import Scenario
    from smac.runhistory.dataclasses import TrialValue

    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(configspace(space, seed), deterministic=True, n_trials=budget, seed=seed,
                            output_directory=tmp)
        smac = HPO(scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=40,
                   intensifier=HPO.get_intensifier(scenario, max_config_calls=1))
        for _ in range(budget):
            info = smac.ask()
            raw = {k: (int(v) if isinstance(space[k], Categorical) else v) for k, v in dict(info.config).items()}
            smac.tell(info, TrialValue(cost=rec(spaces.raw_config(raw, space))))


# -- Ax (BoTorch) -----------------------------------------------------------------------
def ax_parameters(space: ts.Space) -> list[Any]:
    from ax import ChoiceParameterConfig, RangeParameterConfig

    out: list[Any] = []
    for n in _flat_names(space):
        p = space[n]
        if isinstance(p, Categorical):
            out.append(ChoiceParameterConfig(name=n, values=list(range(len(p.choices))), parameter_type="int",
                                             is_ordered=False))
        elif _stepped(p):
            out.append(RangeParameterConfig(name=n, parameter_type="int", bounds=(0, _levels(p) - 1)))
        else:
            assert isinstance(p, (Float, Int))
            kind = "int" if isinstance(p, Int) else "float"
            out.append(RangeParameterConfig(name=n, parameter_type=kind, bounds=(p.low, p.high),
                                            scaling="log" if p.log else "linear"))
    return out


def run_ax(space: ts.Space, rec: Recorder, budget: int, seed: int) -> None:
    from ax import Client

    logging.getLogger("ax").setLevel(logging.WARNING)
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=ax_parameters(space))
    client.configure_optimization(objective="-loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(budget):
            ((index, params),) = client.get_next_trials(max_trials=1).items()
            value = rec(spaces.raw_config(dict(params), space))
            client.complete_trial(trial_index=index, raw_data={"loss": value if math.isfinite(value) else 1e300})


# -- parallel adapters ---------------------------------------------------------------------
def ts_parallel(sampler: str) -> Callable[[ts.Space, Recorder, int, int, int], None]:
    def run(space: ts.Space, rec: Recorder, budget: int, seed: int, pending: int) -> None:
        ts.set_verbosity(logging.WARNING)
        study = ts.Study(space, direction="minimize", sampler=sampler, seed=seed)
        study.sampler.set_budget(budget)
        _fifo(study.ask, lambda t: rec(dict(t.params)), study.tell, budget, pending)

    return run


def optuna_parallel(make: Callable[[int], Any]) -> Callable[[ts.Space, Recorder, int, int, int], None]:
    def run(space: ts.Space, rec: Recorder, budget: int, seed: int, pending: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction="minimize", sampler=make(seed))

        def ask() -> tuple[Any, dict[str, Any]]:
            trial = study.ask()
            return trial, spaces.optuna_config(trial, space)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fifo(ask, lambda item: rec(item[1]), lambda item, y: study.tell(item[0], y), budget, pending)

    return run


PEERS = {
    "optuna-cmaes": run_optuna(_optuna_cmaes),
    "ngopt": run_ngopt,
    "smac-hpo": run_smac,
    "ax": run_ax,
}
PARALLEL: dict[str, Any] = {
    "ts": ts_parallel,
    "optuna-tpe": optuna_parallel(_optuna_tpe),
    "optuna-gp": optuna_parallel(_optuna_gp),
    "optuna-cmaes": optuna_parallel(_optuna_cmaes),
    "random": optuna_parallel(_optuna_random),
    "ngopt": run_ngopt_parallel,
}
