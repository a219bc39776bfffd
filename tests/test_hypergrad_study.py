"""Gradient-based tuning as a study strategy: each outer step a trial in the study's storage."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import tunesmith as ts  # noqa: E402
from tunesmith.train import LoopOptions, classifier_losses, hyper_space, hypertune, values_of  # noqa: E402
from tunesmith.train.hyperloop import TuneDiverged, tune  # noqa: E402

SRC = Path(__file__).parent.parent / "src"


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(6, 3, generator=g, dtype=torch.float64)
         + 1.5 * torch.randn(120, 3, generator=g, dtype=torch.float64)).argmax(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    problem = classifier_losses(model, l2="tensor", l2_init=1e-3, label_smoothing=0.1)
    return problem, (x[:40], y[:40]), (x[40:], y[40:])


OPTIONS = LoopOptions(outer_steps=6, inner_steps=50, warm_start_steps=300,
                      inner_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05),
                      hyper_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.3))


def test_each_outer_step_is_a_trial_that_show_and_importance_read(tmp_path: Path) -> None:
    problem, train, val = _problem()
    url = f"sqlite:///{tmp_path / 'hyper.db'}"
    space = hyper_space(problem.hparams, problem.constraints)
    assert set(space) == {"l2.0.weight", "l2.2.weight", "label_smoothing"}
    study = ts.Study(space, direction="minimize", storage=url, name="hyper")
    ten = dataclasses.replace(OPTIONS, outer_steps=10)  # importance needs 10 complete trials
    result = hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                       constraints=problem.constraints, options=ten)
    trials = ts.Study.load("hyper", url).trials
    assert [t.state.value for t in trials] == ["complete"] * 10
    assert [t.value for t in trials] == pytest.approx([s.val_loss for s in result.steps])
    assert all(t.attrs["hypergrad_norm"] > 0 and t.attrs["method"] == "cg" for t in trials)
    # each trial's time is its outer step's (before: none, so show's "seconds" column stayed empty)
    assert all(t.duration is not None and t.duration > 0 for t in trials)
    assert all(a.completed == b.started for a, b in itertools.pairwise(trials))
    first = values_of(trials[0].params, problem.hparams)
    assert all(torch.allclose(first[k], problem.hparams[k]) for k in first)
    assert trials[-1].value < trials[0].value  # the validation loss went down
    assert set(study.importance("fanova").fractions) == set(space)
    out = subprocess.run([sys.executable, "-m", "tunesmith", "show", "hyper", "--storage", url],
                         capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, check=True).stdout
    assert "label_smoothing" in out


def test_importance_of_too_few_steps_says_how_to_record_more_steps() -> None:
    """Importance of 8 hypertune steps told the user to run study.optimize(objective, n_trials=2), an
    objective a hypertune study does not have (and whose trials would sit among the steps)."""
    problem, train, val = _problem()
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize")
    hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
              constraints=problem.constraints, options=dataclasses.replace(OPTIONS, outer_steps=8, inner_steps=5))
    with pytest.raises(ValueError, match=r"got 8; .*at least 2 more outer steps \(hypertune\(\.\.\., append=True\)"):
        study.importance()


def test_importance_of_a_run_whose_only_step_failed_says_to_record_outer_steps() -> None:
    """A hypertune study whose steps all failed (diverged at the first) was told to run
    study.optimize(objective, n_trials=10): only the complete steps were looked at."""
    train_loss, val_loss, params, train, val = _diverging(torch.float32)
    study = ts.Study(hyper_space({"l2": 0.3}, {"l2": "positive"}), direction="minimize")
    options = LoopOptions(outer_steps=3, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=50.0))
    with pytest.raises(FloatingPointError):
        hypertune(study, train_loss, val_loss, params, {"l2": 0.3}, train, val, constraints={"l2": "positive"},
                  options=options)
    assert [t.state.value for t in study.trials] == ["failed"]
    with pytest.raises(ValueError, match=r"got 0 \(left out: 1 failed\).*at least 10 more outer steps \(hypertune"):
        study.importance()


def test_a_study_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    problem, train, val = _problem()
    wrong = ts.Study(ts.Space({"l2": ts.Float(1e-6, 1.0, log=True)}), direction="minimize")
    with pytest.raises(ValueError, match="lacks the hyperparameters .*hyper_space"):
        hypertune(wrong, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val)
    # before: refused only at the first record, after the warm start and an inner phase of training
    space = hyper_space(problem.hparams, problem.constraints)
    wider = ts.Study(ts.Space({**{k: space[k] for k in space}, "width": ts.Categorical([16, 32])}), direction="minimize")
    with pytest.raises(ValueError, match=r"parameters that hypertune does not tune, \['width'\]"):
        hypertune(wider, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=OPTIONS)
    maxi = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="maximize")
    with pytest.raises(ValueError, match="direction='minimize'"):
        hypertune(maxi, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val)


@pytest.mark.parametrize("kind", ["int", "categorical", "fixed", "step"])
def test_a_space_whose_parameters_cannot_hold_the_steps_is_refused_before_training(kind: str) -> None:
    """A space with the hyperparameters' names as integers recorded every step at the range's end
    (1 for an L2 weight of 1e-3, the exact values only in attrs), a categorical, a fixed one (a focused
    study) or a Float with a step failed at the first record, after the warm start's training."""
    problem, train, val = _problem()
    space = hyper_space(problem.hparams, problem.constraints)
    name = "l2.0.weight"
    other = {"int": ts.Int(1, 5), "categorical": ts.Categorical([1e-3, 1e-2]), "fixed": ts.Fixed(1e-3),
             "step": ts.Float(0.0, 1.0, step=0.1)}[kind]
    study = ts.Study(ts.Space({**{k: space[k] for k in space}, name: other}), direction="minimize")
    trained = []
    with pytest.raises(ValueError, match=rf"'{name}' .*continuous.*hyper_space"):
        hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=dataclasses.replace(OPTIONS, outer_steps=1),
                  select_batch=_Counted(val, trained))
    assert not trained and not study.trials  # refused before any training, nothing recorded


class _Counted(tuple):  # type: ignore[type-arg]
    """A held-out batch that notes each use (tune scores it after each outer step)."""

    def __new__(cls, batch: tuple, seen: list) -> _Counted:  # type: ignore[type-arg]
        self = super().__new__(cls, batch)
        self.seen = seen
        return self

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        self.seen.append(i)
        return super().__getitem__(i)


def test_with_a_held_out_batch_the_trial_value_is_the_held_out_loss() -> None:
    problem, train, val = _problem()
    fit, held = (val[0][:40], val[1][:40]), (val[0][40:], val[1][40:])
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize")
    result = hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, fit,
                       constraints=problem.constraints, options=OPTIONS, select_batch=held)
    trials = study.trials
    assert [t.value for t in trials] == pytest.approx([s.select_loss for s in result.steps])
    assert [t.attrs["val_loss"] for t in trials] == pytest.approx([s.val_loss for s in result.steps])
    assert study.best_trial.attrs["outer_step"] == result.best  # the study and the loop keep the same step


def test_hyper_space_refuses_a_start_that_tune_would_refuse() -> None:
    """A start outside its constraint: before, a 'positive' 0 gave "low (0.0) must be smaller than
    high (0.0)", a negative one "low (-0.0001) must be smaller than high (-10000.0)", and 0.7 for a
    (0, 0.5) hyperparameter was accepted, to be refused only later by tune."""
    with pytest.raises(ValueError, match=r"hyperparameter 'l2' is constrained 'positive' and must start > 0, got 0.0"):
        hyper_space({"l2": 0.0}, {"l2": "positive"})
    with pytest.raises(ValueError, match=r"'l2' is constrained 'positive' and must start > 0, got -1.0"):
        hyper_space({"l2": -1.0}, {"l2": "positive"})
    with pytest.raises(ValueError, match=r"'s' is constrained to \(0.0, 0.5\) and must start strictly inside it, got 0.7"):
        hyper_space({"s": 0.7}, {"s": (0.0, 0.5)})
    with pytest.raises(ValueError, match="'s' must start at finite values"):
        hyper_space({"s": float("nan")})
    assert set(hyper_space({"l2": [1e-3, 1e-2]}, {"l2": "positive"})) == {"l2[0]", "l2[1]"}


def test_hyper_space_refuses_a_constraint_for_a_name_it_does_not_have() -> None:
    """Before: a misspelt name's constraint was ignored, and the L2 weight it meant got a
    'real' range of -9999..10001 instead of a log-uniform positive one (tune refused it)."""
    with pytest.raises(ValueError, match=r"constraints name unknown hyperparameters \['l2.fc'\]; have \['l2.fc.weight'\]"):
        hyper_space({"l2.fc.weight": 1e-3}, {"l2.fc": "positive"})


def test_hyper_space_refuses_a_span_that_is_not_above_1() -> None:
    """Before: span=0 raised ZeroDivisionError, span <= 1 an error about a parameter's low and high."""
    for span in (0, 1, 0.5, -10, math.inf, math.nan):
        with pytest.raises(ValueError, match="hyper_space: span must be a finite number > 1"):
            hyper_space({"a": 1e-3}, {"a": "positive"}, span=span)
    assert hyper_space({"a": 1e-3}, {"a": "positive"}, span=10)["a"].high == pytest.approx(1e-2)


def test_values_of_names_the_hyperparameters_a_trial_lacks() -> None:
    """Before: a bare KeyError 'b[0]'."""
    with pytest.raises(ValueError, match=r"values_of: the trial's parameters lack \['b\[0\]', 'b\[1\]'\]"):
        values_of({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": torch.zeros(2)})
    assert values_of({"a": 1.0, "b[0]": 2.0, "b[1]": 3.0}, {"a": 1.0, "b": torch.zeros(2)})["b"].tolist() == [2.0, 3.0]


def test_values_of_a_trial_gives_the_exact_values_that_left_the_space() -> None:
    """Before: only the clipped record could be turned back into tensors; the exact values sat in
    attrs["outside_space"] for the user to merge by hand."""
    problem, train, val = _problem()
    narrow = hyper_space(problem.hparams, problem.constraints, span=1.01)
    study = ts.Study(narrow, direction="minimize")
    result = hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                       constraints=problem.constraints, options=OPTIONS)
    last = study.trials[-1]
    assert last.attrs.get("outside_space")  # the steps left the narrow range
    exact = values_of(last, problem.hparams)
    assert all(torch.allclose(exact[k], result.steps[-1].hparams[k]) for k in exact)
    clipped = values_of(last.params, problem.hparams)
    assert not all(torch.allclose(clipped[k], result.steps[-1].hparams[k]) for k in clipped)


def test_float32_hyperparameters_are_recorded_as_their_short_decimals() -> None:
    """Before: 1e-3 in float32 was recorded (and exported, and bounded in hyper_space) as its
    float64 expansion 0.0009999999310821295; values_of still gives back the same float32."""
    start = {"l2": torch.tensor(1e-3), "w": torch.tensor([0.1, 3e-5])}
    space = hyper_space(start, {"l2": "positive"})
    assert (space["l2"].low, space["l2"].high) == (1e-7, 10.0)
    from tunesmith.train.hyperloop import flat_values

    assert flat_values(start) == {"l2": 1e-3, "w[0]": 0.1, "w[1]": 3e-5}
    back = values_of(flat_values(start), start)
    assert all(torch.equal(back[k], start[k]) for k in start)
    assert flat_values({"l2": torch.tensor(1e-3, dtype=torch.float64)}) == {"l2": 1e-3}


def _diverging(dtype: torch.dtype):
    """Ridge regression trained by SGD at too high a rate: float64 weights grow by 1e40 per outer step
    until the hypergradient overflows; in float32 the training loss itself becomes inf first."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g, dtype=dtype)
    y = x @ torch.randn(6, generator=g, dtype=dtype)

    def train_loss(p, h, b):
        return 0.5 * torch.mean((b[0] @ p["w"] - b[1]) ** 2) + 0.5 * h["l2"] * torch.sum(p["w"] ** 2)

    def val_loss(p, b):
        return torch.mean((b[0] @ p["w"] - b[1]) ** 2)

    return train_loss, val_loss, {"w": torch.zeros(6, dtype=dtype)}, (x[:20], y[:20]), (x[20:], y[20:])


@pytest.mark.parametrize(("dtype", "lr", "says"), [(torch.float64, 5.0, r"the hypergradient at outer step \d is not finite"),
                                                   (torch.float32, 1.5, r"the training loss became inf at step \d+")],
                         ids=["hypergradient", "training loss"])
def test_the_step_that_diverges_is_a_failed_trial_that_show_and_report_list(
        shared_storage_url: str, dtype: torch.dtype, lr: float, says: str, tmp_path: Path) -> None:
    """Before: the error left the study with the steps before it only, as if the run had been stopped."""
    train_loss, val_loss, params, train, val = _diverging(dtype)
    study = ts.Study(hyper_space({"l2": 0.3}, {"l2": "positive"}), direction="minimize", storage=shared_storage_url,
                     name="diverged")
    options = LoopOptions(outer_steps=10, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=lr))
    with pytest.raises(FloatingPointError, match=says) as err:
        hypertune(study, train_loss, val_loss, params, {"l2": 0.3}, train, val, constraints={"l2": "positive"},
                  options=options)
    trials = ts.Study.load("diverged", shared_storage_url).trials
    *done, last = trials
    assert done and [t.state.value for t in done] == ["complete"] * len(done) and last.state.value == "failed"
    assert last.error == str(err.value) and last.attrs["outer_step"] == len(done)
    assert last.params["l2"] == pytest.approx(err.value.step.hparams["l2"].item(), rel=1e-6)
    env = {"PYTHONPATH": str(SRC)}
    shown = subprocess.run([sys.executable, "-m", "tunesmith", "show", "diverged", "--storage", shared_storage_url],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert f"{len(trials)} trials ({len(done)} complete, 1 failed)" in shown
    assert f"#{last.number} at hypertune's outer step {len(done)}: {str(err.value).splitlines()[0][:60]}" in shown
    assert "no worker" not in shown  # it said "on no worker": no worker runs a hypertune step
    report = tmp_path / "report.html"
    subprocess.run([sys.executable, "-m", "tunesmith", "report", "diverged", "--storage", shared_storage_url,
                    "-o", str(report)], capture_output=True, text=True, env=env, check=True)
    assert "1 failed" in report.read_text() and f"at hypertune&#x27;s outer step {len(done)}" in report.read_text()


def test_hyper_space_takes_numbers_as_float64_as_tune_does_with_float64_weights() -> None:
    """Python numbers were made float32 tensors: 1e300 became inf and 1e-50 became 0, refused as
    "low must be a finite number, got nan" and "low (0.0) must be smaller than high (0.0)", though
    tune takes both with float64 weights. A float32 tensor still gives its short decimals."""
    assert hyper_space({"a": 1e300})["a"].high == pytest.approx(1e300 + 1e304)
    assert hyper_space({"l2": 1e-50}, {"l2": "positive"})["l2"].low == pytest.approx(1e-54)
    assert hyper_space({"l2": torch.tensor(1e-3)}, {"l2": "positive"})["l2"].high == 10.0


def _tune_diverging(trial) -> float:
    train_loss, val_loss, params, train, val = _diverging(torch.float64)
    options = LoopOptions(outer_steps=10, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=5.0))
    tune(train_loss, val_loss, params, {"l2": trial.params["l2"]}, train, val, options=options)
    return 0.0


def test_a_divergence_raised_in_a_worker_process_comes_back_as_itself(tmp_path: Path) -> None:
    """``catch=()`` passes the objective's TuneDiverged on from a worker process, pickled: its
    unpickling failed for want of ``step``, so it came back as a RuntimeError, not the FloatingPointError
    that the guide says to catch (and a Ray driver could not read it at all)."""
    url = f"sqlite:///{tmp_path / 'diverged.db'}"
    study = ts.Study({"l2": ts.Float(0.2, 0.4)}, sampler="random", seed=0, storage=url, name="diverged")
    with pytest.raises(TuneDiverged, match=r"the hypergradient at outer step \d is not finite") as err:
        study.optimize(_tune_diverging, n_trials=2, n_jobs=2, catch=())
    assert err.value.step.step >= 1 and err.value.step.hparams["l2"].dtype == torch.float64


def test_a_second_run_on_the_same_study_is_refused_unless_appended(tmp_path: Path) -> None:
    """Running the same hypertune script again on its study recorded a second run beside the
    first under the same step numbers (outer steps 0-5 twice), with nothing to tell them apart."""
    problem, train, val = _problem()
    url = f"sqlite:///{tmp_path / 'hyper.db'}"
    options = LoopOptions(outer_steps=2, inner_steps=5, warm_start_steps=10)
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize", storage=url,
                     name="again")
    hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
              constraints=problem.constraints, options=options)
    again = ts.Study.load("again", url)
    with pytest.raises(ValueError, match=r"already holds 2 steps of an earlier hypertune run \(outer steps 0-1\)"
                                         r".*append=True .*attrs\['run'\] = 2"):
        hypertune(again, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=options)
    assert len(ts.Study.load("again", url).trials) == 2  # nothing recorded, no training run
    with pytest.raises(TypeError, match="append must be True or False"):
        hypertune(again, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=options, append="yes")
    for run in (2, 3):
        hypertune(again, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=options, append=True)
        trials = ts.Study.load("again", url).trials
        assert [t.attrs.get("run") for t in trials][-2:] == [run, run]
        assert [t.attrs["outer_step"] for t in trials][-2:] == [0, 1]
    assert [t.attrs.get("run") for t in trials[:2]] == [None, None]  # the first run's records are left as they were
    with pytest.raises(ValueError, match="steps of 3 earlier hypertune runs"):
        hypertune(again, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=options)


def _old_steps(study: ts.Study, runs: int, steps: int, *, failed_last: bool = False) -> None:
    """Steps as hypertune recorded them before attrs["run"]: a rerun's steps under the same numbers."""
    for _ in range(runs):
        for s in range(steps):
            params = {k: study.space[k].low for k in study.space}  # type: ignore[attr-defined]
            attrs = {"train_steps": 10 + s, "outer_step": s, "method": "cg"}
            if failed_last and s == steps - 1:
                study.add_trial(params, state="failed", attrs=attrs, error="the hypergradient at outer step 0 is not finite")
            else:
                study.add_trial(params, 1.0 - s / 10, attrs=attrs)


def test_runs_recorded_before_run_numbers_count_by_their_repeated_steps(shared_storage_url: str) -> None:
    """A study an older hypertune ran twice (outer steps 0-1 twice, no attrs["run"]) was called "an earlier
    run" and append=True numbered the next run 2, the number of the second; one holding a single failed
    step was refused as "1 steps ... (outer steps 0-0)", without saying the step failed."""
    problem, train, val = _problem()
    space = hyper_space(problem.hparams, problem.constraints)
    options = LoopOptions(outer_steps=2, inner_steps=5, warm_start_steps=10)
    twice = ts.Study(space, direction="minimize", storage=shared_storage_url, name="twice")
    _old_steps(twice, runs=2, steps=2)
    run = lambda study, **kw: hypertune(study, problem.train_loss, problem.val_loss, problem.params,  # noqa: E731
                                        problem.hparams, train, val, constraints=problem.constraints,
                                        options=options, **kw)
    with pytest.raises(ValueError, match=r"holds 4 steps of 2 earlier hypertune runs \(outer steps 0-1\).*"
                                         r"attrs\['run'\] = 3\)"):
        run(twice)
    run(ts.Study.load("twice", shared_storage_url), append=True)
    trials = ts.Study.load("twice", shared_storage_url).trials
    assert [(t.attrs.get("run"), t.attrs["outer_step"]) for t in trials] == [(None, 0), (None, 1)] * 2 + [(3, 0), (3, 1)]
    diverged = ts.Study(space, direction="minimize", storage=shared_storage_url, name="diverged")
    _old_steps(diverged, runs=1, steps=1, failed_last=True)
    with pytest.raises(ValueError, match=r"holds 1 step, 1 failed, of an earlier hypertune run \(outer step 0\); "):
        run(ts.Study.load("diverged", shared_storage_url))
    assert len(ts.Study.load("diverged", shared_storage_url).trials) == 1


@pytest.mark.parametrize("run", [int("9" * 4300), 2**63, 0, -5], ids=["4300-nines", "2**63", "0", "-5"])
def test_a_stored_run_number_no_run_takes_counts_for_none(tmp_path: Path, run: int) -> None:
    """A step whose attrs["run"] another writer set to 4,300 nines (JSON keeps it whole) made
    append=True number the next run 10**4300, which Python cannot write as text: a bare ValueError
    ("Exceeds the limit (4300 digits)"); 2**63 gave run 2**63 + 1. Such a number counts for no run."""
    problem, train, val = _problem()
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize",
                     storage=f"sqlite:///{tmp_path / 'h.db'}", name="h")
    params = {k: study.space[k].low for k in study.space}  # type: ignore[attr-defined]
    study.add_trial(params, 1.0, attrs={"train_steps": 10, "outer_step": 0, "method": "cg", "run": run})
    hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
              constraints=problem.constraints, options=LoopOptions(outer_steps=1, inner_steps=3, warm_start_steps=3),
              append=True)
    assert [t.attrs.get("run") for t in study.trials][1:] == [2]  # after the one earlier run that step makes


@pytest.mark.parametrize("append", [False, True])
def test_runs_started_at_once_on_one_study_never_share_a_run_number(shared_storage_url: str, append: bool,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Two runs started at once on an empty study (or appended at once) took the same run number,
    read before either recorded a step: their steps were mixed under one run (outer steps 0-1 twice).
    The second run starts here while the first trains its first step, on its own handle."""
    problem, train, val = _problem()
    options = LoopOptions(outer_steps=2, inner_steps=5, warm_start_steps=10)
    study = ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize",
                     storage=shared_storage_url, name="at-once")
    run = lambda study, batches, **kw: hypertune(study, problem.train_loss, problem.val_loss,  # noqa: E731
                                                 {k: v.detach().clone() for k, v in problem.params.items()},
                                                 problem.hparams, batches, val, constraints=problem.constraints,
                                                 options=options, **kw)
    other = [False]

    def batches(step: int) -> object:
        if not other[0]:
            other[0] = True
            run(ts.Study.load("at-once", shared_storage_url), train, append=append)
        return train

    if not append:
        with pytest.raises(ValueError, match=r"another hypertune run started at the same time recorded its steps "
                                             r"first \(run 1\), so this run records none"):
            run(study, batches)
        assert [t.attrs.get("run") for t in ts.Study.load("at-once", shared_storage_url).trials] == [None, None]
        return
    with caplog.at_level("WARNING", logger="tunesmith"):
        run(study, batches, append=True)
    trials = ts.Study.load("at-once", shared_storage_url).trials
    assert [(t.attrs.get("run"), t.attrs["outer_step"]) for t in trials] == [(None, 0), (None, 1), (2, 0), (2, 1)]
    assert "run 1 was taken by another hypertune run started at the same time; this run records its steps as run 2" \
        in caplog.text


def test_evaluate_best_after_two_identical_runs_tests_distinct_configurations() -> None:
    """Two deterministic hypertune runs record equal steps, so evaluate_best(k=2) tested the best
    configuration twice (its two equal trials); each configuration is tested once now, the next one
    taking the repeat's place."""
    options = LoopOptions(outer_steps=2, inner_steps=5, warm_start_steps=10)
    study = None
    for append in (False, True):
        problem, train, val = _problem()  # the same seeds: the same run
        study = study or ts.Study(hyper_space(problem.hparams, problem.constraints), direction="minimize")
        hypertune(study, problem.train_loss, problem.val_loss, problem.params, problem.hparams, train, val,
                  constraints=problem.constraints, options=options, append=append)
    first, second = study.trials[:2], study.trials[2:]
    assert [t.params for t in first] == [t.params for t in second] and [t.value for t in first] == [t.value for t in second]
    tested: list[int] = []
    result = study.evaluate_best(lambda t: tested.append(t.number) or 1.0, k=2)
    assert len(result.results) == 2 and result.results[0].params != result.results[1].params
    assert len(tested) == 2 and {study.trials[n].attrs["outer_step"] for n in tested} == {0, 1}


def test_a_failed_step_of_a_later_run_is_listed_with_its_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs that diverge at the same outer step were both listed by show as "at hypertune's outer step N":
    the second run's step (attrs["run"] = 2) now says which run it was."""
    from tunesmith.cli import main

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    train_loss, val_loss, params, train, val = _diverging(torch.float64)
    study = ts.Study(hyper_space({"l2": 0.3}, {"l2": "positive"}), direction="minimize", storage=url, name="runs")
    options = LoopOptions(outer_steps=10, inner_steps=20, inner_optimizer=lambda ps: torch.optim.SGD(ps, lr=5.0))
    for append in (False, True):
        with pytest.raises(FloatingPointError):
            hypertune(study, train_loss, val_loss, {k: v.clone() for k, v in params.items()}, {"l2": 0.3}, train, val,
                      constraints={"l2": "positive"}, options=options, append=append)
    first, second = [t for t in study.trials if t.state is ts.TrialState.FAILED]
    assert second.attrs["run"] == 2 and first.attrs["outer_step"] == second.attrs["outer_step"]
    assert main(["show", "runs", "--storage", url]) == 0
    shown = capsys.readouterr().out
    step = first.attrs["outer_step"]
    assert f"#{first.number} at hypertune's outer step {step}: " in shown
    assert f"#{second.number} at hypertune's outer step {step} of run 2: " in shown
