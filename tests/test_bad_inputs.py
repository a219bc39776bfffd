"""What a rushed user gets wrong, refused at the call: a class for an instance, a set or a dict
for a list, a function that takes no trial, a study's name for the study, an option misspelt, a
seed, a count or a step out of range. Each entry raises there, naming the argument, what was
given and what is accepted; before, each was taken silently for something else, or failed later
(in every trial, or deep inside NumPy, logging or torch) with a message that named none of it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith import cv, plots
from tunesmith.cli import main
from tunesmith.report import build_report

SPACE = {"x": ts.Float(0, 1), "y": ts.Float(0, 1)}


def _study(n: int = 4) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] + t.params["y"], n_trials=n)
    return study


def _trial() -> ts.Trial:
    return ts.Study(SPACE, sampler="random", seed=0).ask()


def _options(kind: str, **fields: Any) -> Any:
    from tunesmith import importance

    return getattr(importance, kind)(**fields)


def _executor_class() -> Any:
    from tunesmith.execution import ThreadExecutor

    return ThreadExecutor


def _no_trial_objective() -> float:
    return 1.0


CORE: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("a parameter class for a parameter", lambda: ts.Space({"x": ts.Float}), TypeError, "ts.Float(low, high)"),
    ("a set of choices, ordered by hash", lambda: ts.Space({"k": ts.Categorical({"b", "a"})}), ValueError,
     "a set has no fixed order"),
    ("a dict of choices to weights", lambda: ts.Space({"k": ts.Categorical({"a": 0.7, "b": 0.3})}), ValueError,
     "prior=Prior(weight="),
    ("a YAML definition with a misspelt type", lambda: ts.Space({"x": {"type": "flaot", "low": 0, "high": 1}}),
     ValueError, "did you mean 'float'"),
    ("a YAML range without its type", lambda: ts.Space({"x": {"low": 0, "high": 1}}), ValueError,
     "a definition as YAML writes it"),
    ("YAML braces for choices", lambda: ts.Space.from_yaml("k: {a, b}\n"), ValueError, "write [a, b] for choices"),
    ("a prior's width as text", lambda: ts.Prior(mode=0.5, width="0.1"), ValueError,
     "prior width must be a number in (0, 1], got '0.1'"),
    ("choice weights for a Float", lambda: ts.Space({"x": ts.Float(0, 1, prior=ts.Prior(weight={"a": 1.0}))}),
     ValueError, "weight= is for a Categorical's choices"),
    ("a count of trees as text", lambda: _options("FanovaOptions", n_trees="64"), ValueError,
     "FanovaOptions.n_trees must be an integer, got '64'"),
    ("a depth as text", lambda: _options("FanovaOptions", max_depth="8"), ValueError,
     "FanovaOptions.max_depth must be an integer >= 1 or None"),
    ("a quantile as text", lambda: _options("PedAnovaOptions", target_quantile="0.1"), ValueError,
     "PedAnovaOptions.target_quantile must be a number"),
    ("a Bayes flag as a word", lambda: ts.BayesOptions(focus="no"), ValueError, "BayesOptions.focus must be True or False"),
    ("a Bayes count as text", lambda: ts.BayesOptions(n_local="256"), ValueError,
     "BayesOptions.n_local must be an integer"),
    ("an integer step of 0", lambda: ts.Space({"n": ts.Int(1, 3, step=0)}), ValueError,
     "step must be a positive number, got 0"),
    ("load_if_exists as a word", lambda: ts.Study(SPACE, load_if_exists="no"), TypeError,
     "load_if_exists must be True or False, got 'no'"),
    ("skip_if_exists as a word", lambda: ts.Study(SPACE).enqueue({"x": 0.5}, skip_if_exists="no"), TypeError,
     "skip_if_exists must be True or False, got 'no'"),
    ("a TPE flag as a word", lambda: ts.TPESampler(multivariate="no"), TypeError,
     "multivariate must be True or False, got 'no'"),
    ("a TPE count as a flag", lambda: ts.TPESampler(n_startup=True), ValueError,
     "n_startup must be None or an integer >= 1, got True"),
    ("TPE candidates as a flag", lambda: ts.TPESampler(n_candidates=True), ValueError,
     "n_candidates must be an integer >= 1, got True"),
    ("a TPE gamma as text", lambda: ts.TPESampler(gamma="0.1"), ValueError, "gamma must be a number in (0, 1), got '0.1'"),
    ("a Bayes n_init as a flag", lambda: ts.BayesOptions(n_init=True), ValueError,
     "n_init must be None or an integer >= 1, got True"),
    ("a Bayes prior_beta of NaN", lambda: ts.BayesOptions(prior_beta=float("nan")), ValueError,
     "prior_beta must be a finite number >= 0, got nan"),
    ("an infinite Bayes prior_beta", lambda: ts.BayesOptions(prior_beta=float("inf")), ValueError,
     "prior_beta must be a finite number >= 0, got inf"),
    ("a Bayes prior_beta past the largest float", lambda: ts.BayesOptions(prior_beta=10**400), ValueError,
     "prior_beta must be a finite number >= 0, got 1000000000"),  # taken, then an OverflowError at the first ask
    ("an auto budget as text", lambda: ts.samplers.AutoSampler(budget="10"), ValueError,
     "budget must be None or an integer >= 1, got '10'"),
    ("a negative auto budget", lambda: ts.samplers.AutoSampler(budget=-1), ValueError,
     "budget must be None or an integer >= 1, got -1"),
    ("auto's bayes options as a list", lambda: ts.samplers.AutoSampler(bayes=[("ei_margin", 0.1)]), TypeError,
     "AutoSampler's bayes takes a mapping of BayesSampler options"),
    ("multifidelity points as a flag", lambda: ts.samplers.MultiFidelitySampler(min_points=True), ValueError,
     "min_points must be None or an integer >= 1, got True"),
    ("a study's name for its space", lambda: ts.Study("my-study"), TypeError, "Study's first argument is the space"),
    ("the objective for the space", lambda: ts.Study(_no_trial_objective), TypeError,
     "the objective goes to study.optimize(objective, n_trials=...)"),
    ("a function for its space", lambda: ts.Space(_no_trial_objective), TypeError,
     "a function that returns the space's dict: call it"),
    ("the storage before the name", lambda: ts.load_study("sqlite:///x.db", "s"), ValueError,
     "the study's name comes first, then its storage"),
    ("a list for a trial's attrs", lambda: _study().add_trial({"x": 0.5, "y": 0.5}, 1.0, attrs=[1]), TypeError,
     "add_trial: attrs must be a dict {name: value}, got list"),
    ("a list of states", lambda: _study().trials_in(["complete", "pruned"]), TypeError,
     "write trials_in('complete', 'pruned')"),
    ("a heartbeat that never beats", lambda: ts.Study(SPACE, heartbeat_interval=float("inf")), ValueError,
     "heartbeat_interval must be a finite number of seconds, got inf"),
    ("a misspelt executor", lambda: ts.Study(SPACE).optimize(lambda t: 1.0, n_trials=1, executor="Ray"), ValueError,
     "got 'Ray' (did you mean 'ray'?)"),
    ("an executor class", lambda: ts.Study(SPACE).optimize(lambda t: 1.0, n_trials=1, executor=_executor_class()),
     TypeError, "executor=ThreadExecutor is the class; pass an instance"),
    ("a list for copy's fill", lambda: _study().copy("c", space={**SPACE, "z": ts.Float(0, 1)}, fill=[0.5]),
     TypeError, "fill= is a dict of parameter name -> the value the trials ran with"),
    ("a grid of a count, not a mapping", lambda: ts.GridSampler(5), TypeError, "mapping of parameter name"),
    ("a path for SQLStorage's URL", lambda: ts.SQLStorage(Path("x.db")), TypeError, "SQLStorage takes a database URL"),
    ("a level logging does not know", lambda: ts.set_verbosity("loud"), ValueError,
     "set_verbosity: unknown level 'loud'"),
    ("a negative seed of kfold", lambda: cv.kfold(10, 3, seed=-1), ValueError, "kfold: seed must be a non-negative"),
    ("a text seed of stratified", lambda: cv.stratified([0, 1] * 5, 2, seed="a"), ValueError,
     "stratified: seed must be"),
    ("a negative seed of importance", lambda: _study().importance(seed=-1), ValueError,
     "seed must be a non-negative integer"),
    ("a study's name for the study", lambda: plots.records_of("s", "history"), TypeError,
     "ts.load_study(name, storage)"),
    ("a misspelt plot option", lambda: plots.records_of(_study(), "history", logy=True), TypeError,
     "unknown option 'logy' (did you mean 'log_y'?)"),
    ("no parameters to draw", lambda: plots.records_of(_study(), "slice", params=[]), ValueError,
     "params names no parameter"),
    ("a misspelt importance method", lambda: plots.records_of(_study(), "importance", method="fanov"), ValueError,
     "did you mean 'fanova'"),
    ("a study for the records to save", lambda: plots.save(_study(), "x.html"), TypeError,
     "save takes the records to draw"),
    ("one study to compare", lambda: plots.comparison(_study()), TypeError,
     "comparison takes a list of studies ([study] for one)"),
    ("a report of no rows", lambda: build_report(_study(), top=0), ValueError, "top must be a positive integer"),
    ("a report's sections as one string", lambda: build_report(_study(), sections="history"), TypeError,
     "sections=['history']"),
    ("show_progress as a word", lambda: ts.Study(SPACE).optimize(lambda t: 1.0, n_trials=1, show_progress="no"),
     TypeError, "show_progress must be True, False or None"),
    ("a misspelt key of cross_validate",
     lambda: cv.cross_validate(_trial(), lambda a, b: {"acc": 1.0}, cv.kfold(6, 2), key="accc"), ValueError,
     "key='accc' is not a value the fold function returned (did you mean 'acc'?)"),
    ("a key of cross_validate for a plain number",  # before: key= ignored, the number reported as "score"
     lambda: cv.cross_validate(_trial(), lambda a, b: 0.5, cv.kfold(6, 2), key="acc"), ValueError,
     "key='acc' names a value of a dict the fold function returns, but it returned 0.5: return {'acc': ...}"),
    ("no jobs for cross_validate", lambda: cv.cross_validate(_trial(), lambda a, b: 1.0, cv.kfold(6, 2), n_jobs=0),
     ValueError, "n_jobs must be a non-zero integer"),
    ("a list for Space.from_dict", lambda: ts.Space.from_dict([1]), TypeError, "Space.from_dict takes a mapping"),
    ("a file's name for Space.from_yaml", lambda: ts.Space.from_yaml("space.yaml"), ValueError,
     "ts.Space.from_yaml(Path('space.yaml').read_text())"),
    ("a misspelt count of trials",  # before: "does not take (it takes: none)", no word of n_trials
     lambda: _study().optimize(lambda t: 1.0, ntrials=3), TypeError,
     "optimize() got an unexpected keyword argument: ntrials: did you mean 'n_trials'?"),
    ("an option of another executor",  # before: "resources_per_trial: did you mean 'resources_per_trial'?"
     lambda: _study().optimize(lambda t: 1.0, n_trials=1, resources_per_trial={"cpu": 1}), TypeError,
     "executor 'inline' does not take (it takes: none); resources_per_trial: an option of executor='ray'"),
    ("a misspelt callbacks", lambda: _study().optimize(lambda t: 1.0, n_trials=1, n_jobs=2, callback=print),
     TypeError, "callback: did you mean 'callbacks'?"),
]


@pytest.mark.parametrize(("call", "error", "says"), [c[1:] for c in CORE], ids=[c[0] for c in CORE])
def test_a_bad_argument_is_refused_at_the_call(call: Callable[[], Any], error: type[Exception], says: str) -> None:
    with pytest.raises(error) as err:
        call()
    assert says in str(err.value)


def test_an_objective_that_takes_no_trial_is_refused_before_any_trial_runs() -> None:
    """It failed every trial (a line of log and a failed record each) and the call returned."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    with pytest.raises(TypeError, match=r"objective must take one argument, the trial.*_no_trial_objective\(\)"):
        study.optimize(_no_trial_objective, n_trials=3)
    assert study.trials == []
    study.optimize(lambda trial, scale=2.0: scale, n_trials=1)  # a default beside the trial is fine
    assert study.trials[0].value == 2.0


def test_the_objective_passed_as_a_callback_is_refused_before_any_trial_runs() -> None:
    """``callbacks=objective`` failed with the objective's own TypeError once the first trial had run."""
    study = ts.Study(SPACE, sampler="random", seed=0)

    def objective(trial: Any) -> float:
        return float(trial.params["x"])

    with pytest.raises(TypeError, match=r"callbacks= takes functions of two arguments.*objective\(trial"):
        study.optimize(objective, n_trials=2, callbacks=objective)
    assert study.trials == []


def test_optimize_without_a_count_or_a_timeout_says_it_runs_until_stopped(caplog: Any) -> None:
    """``study.optimize(objective)`` (n_trials forgotten) ran without end and without a word."""
    study = ts.Study(SPACE, sampler="random", seed=0)

    def stop_at_two(study: ts.Study, record: Any) -> None:
        if len(study.trials) >= 2:
            study.stop()

    with caplog.at_level(logging.INFO, logger="tunesmith"):
        study.optimize(lambda t: t.params["x"], callbacks=[stop_at_two])
    assert any("no n_trials or timeout, so trials run until the run is stopped" in r.getMessage()
               for r in caplog.records)


def test_the_value_given_before_the_trial_fails_no_trial() -> None:
    """``study.tell(0.5, trial)`` took 0.5 for trial number 0 and recorded it failed with the Trial
    as its "value": the result was lost and the trial could not be told again."""
    study = ts.Study(SPACE, sampler="random", seed=0)
    trial = study.ask()
    with pytest.raises(TypeError, match=r"the trial comes first.*got float 0.5"):
        study.tell(0.5, trial)  # type: ignore[arg-type]
    assert study.trials[0].state is ts.TrialState.RUNNING
    assert study.tell(trial, 0.5).value == 0.5


def test_a_level_named_in_lower_case_is_set() -> None:
    """``set_verbosity("warning")`` raised logging's "Unknown level: 'warning'"."""
    log = logging.getLogger("tunesmith")
    before = log.level
    try:
        ts.set_verbosity("warning")
        assert log.level == logging.WARNING
    finally:
        log.setLevel(before)


def test_a_negative_seed_on_the_command_line_names_the_option(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith importance --seed -1`` said NumPy's "expected non-negative integer"."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=3)
    with pytest.raises(SystemExit):
        main(["importance", "s", "--storage", url, "--seed", "-1"])
    assert "argument --seed: must be at least 0, got -1" in capsys.readouterr().err


# -- scikit-learn ---------------------------------------------------------------------------------


def _search(**options: Any) -> Any:
    pytest.importorskip("sklearn")
    from scipy.stats import loguniform
    from sklearn.linear_model import LogisticRegression

    from tunesmith.sklearn import TunedSearchCV

    x = np.random.default_rng(0).normal(size=(40, 3))
    space = {"C": loguniform(0, 1) if options.pop("space", None) else ts.Float(0.1, 10, log=True)}
    search = TunedSearchCV(LogisticRegression(), space, n_trials=2, **options)
    return search.fit(x, (x[:, 0] > 0).astype(int))


SEARCH: list[tuple[str, dict[str, Any], str]] = [
    ("one fold", {"cv": 1}, "cv must be a number of folds >= 2"),
    ("folds as text", {"cv": "5"}, "got cv='5'"),
    ("verbose as a word", {"verbose": "yes"}, "verbose must be an integer"),
    ("a negative random_state", {"random_state": -1}, "random_state must be a non-negative integer"),
    ("a loguniform from 0", {"space": "loguniform(0, 1)"}, "scipy.stats.loguniform(0, 1) is not a valid distribution"),
]


@pytest.mark.parametrize(("options", "says"), [s[1:] for s in SEARCH], ids=[s[0] for s in SEARCH])
def test_a_bad_search_option_is_named(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError) as err:
        _search(**options)
    assert says in str(err.value)


# -- the trainer ----------------------------------------------------------------------------------


TRAIN = ["a callback class", "a number for the callbacks", "a metric that is no function", "a number to monitor",
         "a model for build_model", "(x, y) for (train, val)", "more folds than samples", "folds as text",
         "zero threads", "a misspelt loss", "a number for the checkpoint folder", "a learning rate for its range",
         "a hyperparameter's start as text", "a model class for classifier_losses", "a callback that is no function",
         "a tuned start as text", "a tuned start of None", "label smoothing as text", "no training batch",
         "no study for hypertune", "a list for hyper_space", "None for values_of", "no rules to unroll",
         "a yes/no hyperparameter", "another model's optimizer state", "an optimizer state of numbers",
         "an optimizer state that is a list", "an optimizer state of one number a weight",
         "an optimizer state holding None"]


def _losses(model: Any) -> tuple[Any, ...]:
    from tunesmith.train import classifier_losses

    p = classifier_losses(model)
    return p.train_loss, p.val_loss, p.params, p.hparams


def _unrolled_with_another_models_state(x: Any, y: Any) -> Any:
    """Before: torch's "The size of tensor a (8) must match the size of tensor b (4)" from inside the unroll."""
    import torch

    from tunesmith.train.unrolled import rules_of, state_of, unrolled_hypergradient

    other = torch.nn.Linear(8, 2)
    opt = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    other(torch.randn(3, 8)).sum().backward()
    opt.step()
    train_loss, val_loss, params, hparams = _losses(torch.nn.Linear(4, 2))
    rules = rules_of(torch.optim.SGD(list(params.values()), lr=0.1, momentum=0.9), params)
    return unrolled_hypergradient(train_loss, val_loss, params, hparams, [(x, y)], (x, y), rules=rules,
                                  state=state_of(opt, dict(other.named_parameters())))


def _unrolled_with_state(x: Any, y: Any, state: Any) -> Any:
    import torch

    from tunesmith.train.unrolled import rules_of, unrolled_hypergradient

    train_loss, val_loss, params, hparams = _losses(torch.nn.Linear(4, 2))
    rules = rules_of(torch.optim.Adam(list(params.values()), lr=0.1), params)
    return unrolled_hypergradient(train_loss, val_loss, params, hparams, [(x, y)], (x, y), rules=rules, state=state)


def _train_calls() -> dict[str, tuple[Callable[[], Any], type[Exception], str]]:
    torch = pytest.importorskip("torch")
    from tunesmith.train import (
        GradualUnfreezing,
        LoopOptions,
        Trainer,
        adam_space,
        classifier_losses,
        hyper_space,
        hypertune,
        objective,
        tune,
        values_of,
    )
    from tunesmith.train.unrolled import unrolled_hypergradient

    x = torch.randn(32, 4)
    y = (x[:, 0] > 0).long()
    data = ((x, y), (x, y))

    def build(params: dict[str, Any]) -> Any:
        return torch.nn.Linear(4, 2)

    def tuned(**change: Any) -> Any:
        p = classifier_losses(torch.nn.Linear(4, 2))
        args = {"params": p.params, "hparams": p.hparams, "options": LoopOptions(outer_steps=1, inner_steps=1), **change}
        return tune(p.train_loss, p.val_loss, args.pop("params"), args.pop("hparams"), (x, y), (x, y), **args)

    calls = [
        ("a callback class", lambda: Trainer(torch.nn.Linear(4, 2), callbacks=[GradualUnfreezing]), TypeError,
         "GradualUnfreezing is the class"),
        ("a number for the callbacks", lambda: Trainer(torch.nn.Linear(4, 2), callbacks=5), TypeError,
         "callbacks is a callback or a list of them, got 5"),
        ("a metric that is no function", lambda: Trainer(torch.nn.Linear(4, 2), metrics={"acc": 5}), TypeError,
         "metric 'acc' must be a callable(output, target)"),
        ("a number to monitor", lambda: objective(build, data, monitor=5), TypeError, "monitor is the name of"),
        ("a model for build_model", lambda: objective(torch.nn.Linear(4, 2), data), TypeError,
         "build_model is a function params -> a new model"),
        ("(x, y) for (train, val)", lambda: objective(build, (x, y)), ValueError, "data is (train, val)"),
        ("more folds than samples", lambda: objective(build, (x, y), folds=100), ValueError,
         "folds=100: cannot make 100 folds from 32 samples"),
        ("folds as text", lambda: objective(build, (x, y), folds="5"), TypeError, "folds is a number of folds"),
        ("zero threads", lambda: objective(build, data, threads=0), ValueError, "threads must be a positive integer"),
        ("a misspelt loss", lambda: objective(build, data, loss="mse2"), ValueError, "unknown loss 'mse2'"),
        ("a number for the checkpoint folder", lambda: objective(build, data, checkpoint_root=5), TypeError,
         "checkpoint_root must be a folder"),
        ("a learning rate for its range", lambda: adam_space(lr=0.01), ValueError,
         "adam_space: lr must be a (low, high) range, got 0.01"),
        ("a hyperparameter's start as text", lambda: hyper_space({"lr": "0.1"}), TypeError,
         "hyperparameter 'lr' must start at a number"),
        ("a model class for classifier_losses", lambda: classifier_losses(torch.nn.Linear), TypeError,
         "classifier_losses takes the model (a torch.nn.Module instance), got the class"),
        ("a callback that is no function", lambda: tuned(callback=5), TypeError,
         "tune's callback must be a function callback(step, params) or None, got 5"),
        ("a tuned start as text", lambda: tuned(hparams={"l2.weight": "0.1"}), TypeError,
         "hyperparameter 'l2.weight' must start at a number"),
        ("a tuned start of None", lambda: tuned(hparams={"l2.weight": None}), TypeError,
         "hyperparameter 'l2.weight' must start at a number or a tensor (or numbers), got None"),
        ("label smoothing as text", lambda: classifier_losses(torch.nn.Linear(4, 2), label_smoothing="0.1"), ValueError,
         "label_smoothing must be a number in (0, 0.5) (its start), got '0.1'"),
        ("no training batch", lambda: tune(*_losses(torch.nn.Linear(4, 2)), None, (x, y)), TypeError,
         "tune takes train_batches as one batch or a function step -> batch, got None"),
        ("no study for hypertune", lambda: hypertune(None, *_losses(torch.nn.Linear(4, 2)), (x, y), (x, y)), TypeError,
         "hypertune records each step as a trial of a study: pass a tunesmith.Study"),
        ("a yes/no hyperparameter", lambda: tuned(hparams={"l2.weight": True}), TypeError,
         "hyperparameter 'l2.weight' is a bool, True: a yes/no choice has no gradient"),
        ("a list for hyper_space", lambda: hyper_space([1e-3]), ValueError,
         "hyper_space: hparams must be a non-empty dict name -> start value, got [0.001]"),
        ("None for values_of", lambda: values_of(None, {"l2": 1e-3}), TypeError,
         "values_of takes a trial (study.best_trial) or its params, got NoneType"),
        ("no rules to unroll", lambda: unrolled_hypergradient(*_losses(torch.nn.Linear(4, 2)), [(x, y)], (x, y), rules={}),
         ValueError, "rules has no update rule for the weights ['weight', 'bias']; read them from the optimizer"),
        ("another model's optimizer state", lambda: _unrolled_with_another_models_state(x, y), ValueError,
         "state['weight']['momentum_buffer'] has the shape (2, 8), not the weight's (2, 4): pass the state of"),
        # before: AttributeError's "'int' object has no attribute 'detach'" / "'list' object has no attribute 'items'"
        ("an optimizer state of numbers", lambda: _unrolled_with_state(x, y, {"weight": {"step": 3}}), TypeError,
         "state['weight']['step'] is 3, not a tensor: pass state=state_of(optimizer, params), or None"),
        ("an optimizer state that is a list", lambda: _unrolled_with_state(x, y, [{"step": 3}]), TypeError,
         "state is a dict of weight name -> dict of buffer name -> tensor, got a list: pass state=state_of("),
        # was "got a int among its values", and "got dict" for a None among them
        ("an optimizer state of one number a weight", lambda: _unrolled_with_state(x, y, {"weight": 3}), TypeError,
         "got an int among its values: pass state=state_of("),
        ("an optimizer state holding None", lambda: _unrolled_with_state(x, y, {"weight": None}), TypeError,
         "got None among its values: pass state=state_of("),
    ]
    return {label: rest for label, *rest in calls}  # type: ignore[misc]


@pytest.mark.parametrize("label", TRAIN)
def test_a_bad_training_argument_is_refused_before_any_trial(label: str) -> None:
    """Each of these failed every trial of the study, or deep inside torch."""
    call, error, says = _train_calls()[label]
    with pytest.raises(error) as err:
        call()
    assert says in str(err.value)


def test_a_negative_training_seed_trains_on_folds_as_it_trains_alone(tmp_path: Path) -> None:
    """TrainConfig takes a negative seed (the trainer reduces it modulo 2**32), but with
    ``objective(..., folds=k)`` every trial failed in NumPy ("expected non-negative integer")."""
    torch = pytest.importorskip("torch")
    from tunesmith.train import TrainConfig, objective

    x = torch.randn(24, 4)
    y = (x[:, 0] > 0).long()
    fn = objective(lambda p: torch.nn.Linear(4, 2), (x, y), folds=2, checkpoint_root=tmp_path,
                   base=TrainConfig(epochs=1, batch_size=8, seed=-1))
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0)
    study.optimize(fn, n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error


def test_a_numpy_count_of_folds_is_a_count_of_folds(tmp_path: Path) -> None:
    """``objective(folds=np.int64(2))`` was refused: "folds is a number of folds, ... got 2"."""
    torch = pytest.importorskip("torch")
    from tunesmith.train import TrainConfig, objective

    x = torch.randn(24, 4)
    y = (x[:, 0] > 0).long()
    fn = objective(lambda p: torch.nn.Linear(4, 2), (x, y), folds=np.int64(2), checkpoint_root=tmp_path,
                   base=TrainConfig(epochs=1, batch_size=8))
    study = ts.Study({"lr": ts.Float(1e-3, 1e-1, log=True)}, sampler="random", seed=0)
    study.optimize(fn, n_trials=1)
    assert study.trials[0].state is ts.TrialState.COMPLETE, study.trials[0].error
    assert study.trials[0].attrs["cv"]["folds"] == 2


def test_a_loop_option_of_the_wrong_kind_is_named() -> None:
    """``LoopOptions(reset_inner="no")`` was kept and read as true; ``implicit=`` and
    ``hyper_schedule=`` of the wrong kind failed inside the loop."""
    pytest.importorskip("torch")
    from tunesmith.train import LoopOptions

    with pytest.raises(ValueError, match="LoopOptions.reset_inner must be True or False, got 'no'"):
        LoopOptions(reset_inner="no")
    with pytest.raises(TypeError, match="LoopOptions.implicit must be an ImplicitOptions, got dict"):
        LoopOptions(implicit={"method": "cg"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LoopOptions.hyper_schedule must be a function"):
        LoopOptions(hyper_schedule=0.5)  # type: ignore[arg-type]


def test_numpy_numbers_are_taken_by_every_check_of_the_options() -> None:
    """check_field_types takes a NumPy integer for a count and a NumPy float for a number, but the
    options' own checks then refused them: "max_train must be a positive integer, got
    np.int64(64)", "ei_margin must be a finite number >= 0 ..., got np.float32(0.5)"."""
    options = ts.BayesOptions(max_train=np.int64(64), n_random=np.int64(512), ls_penalty=np.int64(1),
                              ei_margin=np.float32(0.5), plugin_max_noise=np.float32(0.1))
    assert options.max_train == 64 and options.ei_margin == 0.5
    with pytest.raises(ValueError, match="plugin_max_noise must be a finite number > 0 or None, got True"):
        ts.BayesOptions(plugin_max_noise=True)
    from tunesmith.importance import FanovaOptions

    assert FanovaOptions(max_depth=np.int64(4), max_pair_params=np.int64(8)).max_depth == 4
    with pytest.raises(ValueError, match="FanovaOptions.max_depth must be an integer >= 1 or None"):
        FanovaOptions(max_depth=True)
    pytest.importorskip("torch")
    from tunesmith.train import LoopOptions

    assert LoopOptions(outer_steps=np.int64(3), patience=np.int64(2)).outer_steps == 3


def test_every_count_of_the_bayes_options_is_checked_with_its_least_value() -> None:
    """``n_local=-5`` was kept and failed at the first model suggestion inside NumPy ("negative
    dimensions are not allowed"); the counts were kept as NumPy integers in the frozen options."""
    with pytest.raises(ValueError, match="n_local must be an integer >= 0, got -5"):
        ts.BayesOptions(n_local=-5)
    with pytest.raises(ValueError, match="max_train must be an integer >= 16, got 8"):
        ts.BayesOptions(max_train=8)
    with pytest.raises(ValueError, match="maxiter must be an integer >= 1, got 0"):
        ts.BayesOptions(maxiter=0)
    options = ts.BayesOptions(n_local=0, n_starts=np.int64(2))
    assert options.n_local == 0 and type(options.n_starts) is int
    study = ts.Study({"x": ts.Float(0, 1)}, sampler=ts.BayesSampler(seed=0, n_init=2, n_local=0, n_random=64))
    study.optimize(lambda t: (t.params["x"] - 0.3) ** 2, n_trials=4)
    assert len(study.trials) == 4


def test_a_numpy_bool_is_taken_for_load_if_exists_and_show_progress(tmp_path: Path) -> None:
    """The flags refuse a word ("no" is true), but refused NumPy's bool too, which check_field_types
    takes for a flag: ``load_if_exists=n > 0`` of a NumPy count was "must be True or False, got True"."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", load_if_exists=np.False_)
    study.optimize(lambda t: t.params["x"], n_trials=2, show_progress=np.False_)
    again = ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", load_if_exists=np.int64(2) > 0)
    assert len(again.trials) == 2


def test_a_study_name_for_the_transformers_search_study_is_named() -> None:
    """``search(..., study="my-study")`` raised "'str' object has no attribute 'space'"."""
    from tunesmith.integrations.transformers import search

    with pytest.raises(TypeError, match=r"search\(study=...\) takes an existing Study"):
        search(lambda args, params: None, base=None, n_trials=1, study="my-study")


CALLBACKS: list[tuple[str, str, str, dict[str, Any], str]] = [
    # (id, package, integration module and class, options, message); each raised inside (monitor=5:
    # "'int' object has no attribute 'lower'"), or was kept and refused at the first iteration
    # (metric=5, data=5), or read as true (maximize="yes")
    ("lightning monitor", "lightning", "lightning.PruningCallback", {"monitor": 5},
     "PruningCallback: monitor is the name of a logged metric"),
    ("lightning folder", "lightning", "lightning.PruningCallback", {"checkpoint_dir": 5},
     "PruningCallback: checkpoint_dir must be a folder"),
    ("lightgbm metric", "lightgbm", "lightgbm.LightGBMPruningCallback", {"metric": 5},
     "LightGBMPruningCallback: metric must be a name"),
    ("xgboost data", "xgboost", "xgboost.XGBoostPruningCallback", {"data": 5}, "XGBoostPruningCallback: data must be a name"),
    ("xgboost maximize", "xgboost", "xgboost.XGBoostPruningCallback", {"maximize": "yes"},
     "XGBoostPruningCallback: maximize must be True, False or None"),
]


@pytest.mark.parametrize(("package", "where", "options", "says"), [c[1:] for c in CALLBACKS],
                         ids=[c[0] for c in CALLBACKS])
def test_a_training_callback_given_a_number_for_a_name_is_refused_when_made(
        package: str, where: str, options: dict[str, Any], says: str) -> None:
    pytest.importorskip(package)
    import importlib

    module, cls = where.split(".")
    callback = getattr(importlib.import_module(f"tunesmith.integrations.{module}"), cls)
    with pytest.raises(TypeError) as err:
        callback(ts.Study(SPACE).ask(), **options)
    assert says in str(err.value)


def test_a_scheduler_or_batch_size_given_alone_is_one_choice() -> None:
    """``trainer_space(lr_scheduler_type="cosine")`` was read letter by letter and refused as
    ['c', 'o', 's', ...]; a plain batch size raised "'int' object is not iterable"."""
    from tunesmith.integrations.transformers import trainer_space

    space = trainer_space(lr_scheduler_type="cosine", per_device_train_batch_size=16)
    assert space["lr_scheduler_type"].choices == ("cosine",)
    assert space["per_device_train_batch_size"].choices == (16,)


def test_a_misspelt_objective_function_of_a_study_file_gets_a_did_you_mean(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text("name: s\nobjective: obj.py:objectiv\nn_trials: 1\n"
                                     "space:\n  x: {type: float, low: 0, high: 1}\n")
    assert main(["run", str(tmp_path / "s.yaml"), "--storage", f"sqlite:///{tmp_path / 's.db'}"]) != 0
    assert "obj.py has no function 'objectiv' (did you mean 'objective'?)" in capsys.readouterr().err


@pytest.mark.parametrize(("line", "says"), [
    ("direction: max", "direction must be 'minimize' or 'maximize', got 'max'; did you mean 'maximize'?"),
    ("executor: proces", "executor must be one of ['inline', 'thread', 'process', 'ray'], got 'proces' "
                         "(did you mean 'process'?)"),
])
def test_a_misspelt_word_of_a_study_file_gets_a_did_you_mean(tmp_path: Path, capsys: Any, line: str, says: str) -> None:
    (tmp_path / "obj.py").write_text("def objective(trial):\n    return trial.params['x']\n")
    (tmp_path / "s.yaml").write_text(f"name: s\nobjective: obj.py:objective\n{line}\n"
                                     "space:\n  x: {type: float, low: 0, high: 1}\n")
    assert main(["run", str(tmp_path / "s.yaml"), "--storage", f"sqlite:///{tmp_path / 's.db'}"]) != 0
    assert says in capsys.readouterr().err


def test_importing_the_csv_export_says_which_export_import_reads(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith import trials.csv`` said only "Expecting value: line 1 column 1"."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "trials.csv")]) == 0
    assert main(["import", str(tmp_path / "trials.csv"), "--storage", f"sqlite:///{tmp_path / 't.db'}"]) != 0
    assert "it is the CSV export" in capsys.readouterr().err


def test_importing_a_fifo_is_refused_unread_and_standard_input_is_read_by_dash(tmp_path: Path, capsys: Any,
                                                                               monkeypatch: Any) -> None:
    """``tunesmith import FIFO`` waited for a writer for good (read_text); it is refused unread, naming '-',
    which reads standard input (the pipe from ``tunesmith export``)."""
    import io
    import os
    import threading

    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "s.json")]) == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    returned, let_go = threading.Event(), threading.Event()

    def unblock() -> None:  # a reader still waiting after 30 s is let go (an empty file), so the test fails, not hangs
        if not returned.wait(30):
            let_go.set()
            os.close(os.open(fifo, os.O_WRONLY))

    helper = threading.Thread(target=unblock)
    helper.start()
    status = main(["import", str(fifo), "t", "--storage", f"sqlite:///{tmp_path / 't.db'}"])
    returned.set()
    helper.join()
    assert (status, let_go.is_set()) == (2, False)
    assert "it is a FIFO, not a regular file; name the file tunesmith export wrote, or '-'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO((tmp_path / "s.json").read_bytes())))
    assert main(["import", "-", "t", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 0
    assert "imported study 't' (2 trials)" in capsys.readouterr().out


def test_importing_a_file_past_the_size_limit_names_the_option_that_raises_it(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith import`` read any file whole, however large; past ``--max-mb`` it is refused unparsed."""
    (tmp_path / "big.json").write_text('{"study": {}, "trials": [' + "0," * 600_000 + "0]}")
    assert main(["import", str(tmp_path / "big.json"), "--max-mb", "1", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    assert "is larger than 1 MB (1,000,000 bytes), the limit of --max-mb" in capsys.readouterr().err
    # a megabyte is 10**6 bytes, as the help and the error say: a file of exactly 1,000,000 bytes is read
    (tmp_path / "edge.json").write_bytes(b"[" + b" " * (1_000_000 - 2) + b"]")
    assert main(["import", str(tmp_path / "edge.json"), "--max-mb", "1", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    assert "larger than" not in capsys.readouterr().err  # read, then refused for what it holds
    (tmp_path / "edge.json").write_bytes(b"[" + b" " * (1_000_000 - 1) + b"]")
    assert main(["import", str(tmp_path / "edge.json"), "--max-mb", "1", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    assert "in megabytes of 1,000,000 bytes" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "big.json"), "--max-mb", "2", "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    assert "needs 'study' and 'trials'" not in capsys.readouterr().err  # read, then refused for what it holds


def test_importing_a_file_with_a_5000_digit_number_says_so_in_its_own_words(tmp_path: Path, capsys: Any) -> None:
    """json's error told a command-line user to call sys.set_int_max_str_digits()."""
    (tmp_path / "big.json").write_text('{"study": {"name": "s"}, "trials": [{"value": 1' + "0" * 5000 + "}]}")
    assert main(["import", str(tmp_path / "big.json"), "--storage", f"sqlite:///{tmp_path / 't.db'}"]) != 0
    err = capsys.readouterr().err
    assert "holds an integer of more than 4300 digits, which no tunesmith export writes" in err
    assert "set_int_max_str_digits" not in err


def test_importing_a_step_written_as_a_digit_no_int_reads_names_the_step(tmp_path: Path, capsys: Any) -> None:
    """An imported trial's report at step "²" (a digit to str.isdigit, none to int()) was refused with
    int()'s "invalid literal for int() with base 10"; the step check names it as for any other key."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.report(1.0, 0) or t.params["x"], n_trials=1)
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "s.json")]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    data["trials"][0]["intermediate"] = {"\u00b2": 1.0}
    (tmp_path / "s.json").write_text(json.dumps(data))
    assert main(["import", str(tmp_path / "s.json"), "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    err = capsys.readouterr().err
    assert "intermediate step must be an integer >= 0, got '\u00b2'" in err and "invalid literal" not in err, err


@pytest.mark.parametrize("digits", [20, 300, 5000])
def test_importing_a_step_past_2_63_says_it_is_too_large(tmp_path: Path, capsys: Any, digits: int) -> None:
    """An imported step of 20 digits or more was named as no integer (``must be an integer >= 0, got
    '10000000000000000000'``), its thousands of digits written out whole; it is too large, cut short."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0)
    study.optimize(lambda t: t.report(1.0, 0) or t.params["x"], n_trials=1)
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "s.json")]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    data["trials"][0]["intermediate"] = {"1" + "0" * (digits - 1): 1.0}
    (tmp_path / "s.json").write_text(json.dumps(data))
    assert main(["import", str(tmp_path / "s.json"), "--storage", f"sqlite:///{tmp_path / 't.db'}"]) == 2
    err = capsys.readouterr().err
    said = "is too large; steps must be below 2**63" if digits < 1000 else "must be an integer >= 0"
    assert said in err and len(err) < 500, err
    assert ("characters)" in err) is (digits > 60), err


def test_export_writes_the_format_its_output_file_names(tmp_path: Path, capsys: Any) -> None:
    """``tunesmith export NAME -o trials.json`` wrote CSV into trials.json; ``--format json -o
    trials.csv`` wrote JSON into a .csv file."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="s", sampler="random", seed=0).optimize(lambda t: t.params["x"], n_trials=2)
    assert main(["export", "s", "--storage", url, "-o", str(tmp_path / "trials.json")]) == 0
    assert (tmp_path / "trials.json").read_text().startswith("{")
    assert main(["export", "s", "--storage", url, "--format", "json", "-o", str(tmp_path / "trials.csv")]) != 0
    assert "--format json writes JSON, but --output" in capsys.readouterr().err
    assert not (tmp_path / "trials.csv").exists()


# -- the dashboard --------------------------------------------------------------------------------


def test_the_dashboard_app_takes_a_url_as_serve_does_and_refuses_what_is_no_storage(tmp_path: Path) -> None:
    """``create_app(url)`` and ``create_app(5)`` were accepted, and every page then failed;
    ``poll_seconds=0`` made each study page poll without pause, ``serve(port=99999)`` failed
    inside uvicorn with a traceback."""
    pytest.importorskip("starlette")
    pytest.importorskip("plotly")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app, serve

    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(SPACE, storage=url, name="visible", sampler="random", seed=0).optimize(lambda t: 1.0, n_trials=1)
    page = TestClient(create_app(url)).get("/")
    assert page.status_code == 200 and "visible" in page.text
    with pytest.raises(TypeError, match="create_app takes a Storage or a database URL, got int 5"):
        create_app(5)
    with pytest.raises(ValueError, match=r"poll_seconds must be a positive number of seconds, at most 2,147,483 \(.*\), got 0"):
        create_app(url, poll_seconds=0)
    with pytest.raises(ValueError, match="port must be an integer from 1 to 65535, got 99999"):
        serve(url, port=99999)


# -- trackers -------------------------------------------------------------------------------------


def test_a_tracker_given_a_number_or_a_study_name_names_the_argument(tmp_path: Path) -> None:
    """``TensorBoardCallback(5)`` said pathlib's "expected str, bytes or os.PathLike object",
    ``write_hparams("s", ...)`` "'str' object has no attribute 'trials'" and
    ``MLflowCallback(tracking_uri=5)`` "'int' object has no attribute 'decode'"."""
    pytest.importorskip("tensorboard")
    from tunesmith.integrations.tensorboard import TensorBoardCallback, write_hparams

    with pytest.raises(TypeError, match="TensorBoardCallback: log_dir must be a folder"):
        TensorBoardCallback(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"write_hparams takes a Study \(ts.load_study"):
        write_hparams("s", tmp_path)
    pytest.importorskip("mlflow")
    from tunesmith.integrations.mlflow import MLflowCallback

    with pytest.raises(TypeError, match="MLflowCallback: tracking_uri must be a string or None, got int 5"):
        MLflowCallback(tracking_uri=5)  # type: ignore[arg-type]
