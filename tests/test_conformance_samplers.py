"""Sampler conformance suite: every registered sampler must pass every test here.

The suite runs once per name in the sampler registry (``samplers.make_sampler``
knows them), so a new sampler registered there inherits it and is done when it
passes: valid configurations on a conditional space, the same trials for the
same seed (in this process and in a fresh one) and other trials for another
seed, pending trials respected, spaces of zero dimensions and of one point,
and a description that rebuilds the same sampler (as a stored study needs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.samplers import _BUILTIN, make_sampler
from tunesmith.trial import Direction, FrozenTrial, TrialState

NAMES = sorted(_BUILTIN)
N = 14  # past every model-based sampler's initial design, so the model runs too
MIN = Direction.MINIMIZE


def conditional_space() -> ts.Space:
    return ts.Space({
        "kernel": ts.Categorical(["linear", "poly", "rbf"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "gamma": ts.Float(1e-5, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
        "degree": ts.Int(2, 5, when={"kernel": ["poly"]}),
        "layers": ts.Int(1, 4),
    })


def loss(params: dict) -> float:
    """A smooth loss over the conditional space: every sampler can run on it."""
    import math

    kernel = {"linear": 0.5, "poly": 0.2, "rbf": 0.0}[params["kernel"]]
    extra = math.log10(params.get("gamma", 1.0)) ** 2 / 50 + 0.1 * params.get("degree", 2)
    return kernel + (math.log10(params["C"]) - 1) ** 2 / 10 + extra + 0.05 * params["layers"]


def run(name: str, seed: int, n: int = N, space: ts.Space | None = None) -> list[dict]:
    study = ts.Study(space or conditional_space(), sampler=name, seed=seed)
    study.optimize(lambda t: loss(t.params) if "kernel" in t.params else 0.0, n_trials=n)
    return [dict(t.params) for t in study.trials]


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_configurations_are_valid_on_a_conditional_space(name: str) -> None:
    space = conditional_space()
    configs = run(name, seed=1)
    assert len(configs) == N
    for c in configs:
        assert space.validate(c) == c  # inside the bounds, on the steps, canonical
        assert ("gamma" in c) == (c["kernel"] in ("poly", "rbf"))  # inactive parameters absent
        assert ("degree" in c) == (c["kernel"] == "poly")


def test_same_seed_same_trials_other_seed_other_trials(name: str) -> None:
    first = run(name, seed=3)
    assert run(name, seed=3) == first
    assert run(name, seed=4) != first


def test_same_seed_same_trials_in_sqlite_and_when_resumed_the_same_way(name: str, tmp_path: Path) -> None:
    """docs/guide.md, ``seed``: SQLite gives the trials memory gives; a study reopened after 6
    trials for 8 more repeats itself run again that way (a resumed session draws fresh)."""
    def stored(db: str, stops: Sequence[int]) -> list[dict]:
        url = f"sqlite:///{tmp_path / db}"
        for n in stops:
            ts.Study(conditional_space(), sampler=name, seed=3, storage=url, name="s").optimize(
                lambda t: loss(t.params), n_trials=n)
        return [dict(t.params) for t in ts.load_study("s", url).trials]

    assert stored("one.db", [N]) == run(name, seed=3)
    resumed = stored("a.db", [6, N - 6])
    assert stored("b.db", [6, N - 6]) == resumed
    assert (resumed == run(name, seed=3)) == (name in ("sobol", "grid"))  # their picks follow the count


def test_same_seed_same_trials_in_a_fresh_process(name: str, subprocess_env: dict[str, str]) -> None:
    code = (
        "import json, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_conformance_samplers import run\n"
        f"print(json.dumps(run({name!r}, seed=5)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True,
                         text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(run(name, seed=5)))


def test_pending_trials_are_respected(name: str) -> None:
    """With trials running, a suggestion is none of their configurations (a grid
    point or a model's maximizer is not handed to a second worker)."""
    space = ts.Space({"a": ts.Categorical(["x", "y", "z"]), "b": ts.Int(0, 3)})
    sampler = make_sampler(name, seed=7)
    sampler.set_budget(6)
    done = [FrozenTrial(number=i, state=TrialState.COMPLETE, params=p, value=float(i))
            for i, p in enumerate([{"a": "x", "b": 0}, {"a": "y", "b": 1}, {"a": "z", "b": 2}])]
    pending: list[FrozenTrial] = []
    for i in range(3):
        s = sampler.suggest(space, [*done, *pending], MIN)
        assert s is not None
        if _respects_pending(name):
            assert dict(s.params) not in [dict(t.params) for t in pending]
        pending.append(FrozenTrial(number=3 + i, state=TrialState.RUNNING, params=s.params))


def _respects_pending(name: str) -> bool:
    """Random and quasi-random draws are independent of running trials by design
    (a repeat is a coincidence, not a rule); every other sampler must avoid them."""
    return name not in ("random", "sobol")


def test_zero_dimensions(name: str) -> None:
    """Every parameter fixed (nothing left to search, as after focusing a study)."""
    space = ts.Space({"lr": ts.Fixed(0.01), "opt": ts.Fixed("adam")})
    assert space.ndim == 0
    configs = run(name, seed=0, n=3, space=space)
    # the one configuration, once for a grid ("auto" runs a grid when the space fits the budget)
    expected = 1 if name in ("grid", "auto") else 3
    assert configs == [{"lr": 0.01, "opt": "adam"}] * expected


def test_one_point(name: str) -> None:
    space = ts.Space({"only": ts.Categorical(["x"]), "k": ts.Categorical([2])})
    configs = run(name, seed=0, n=3, space=space)
    assert configs == [{"only": "x", "k": 2}] * (1 if name in ("grid", "auto") else 3)


def test_describe_rebuilds_the_same_sampler(name: str, tmp_path) -> None:
    sampler = make_sampler(name, seed=11)
    again = make_sampler(json.loads(json.dumps(sampler.describe())))
    assert again.describe() == sampler.describe()
    url = f"sqlite:///{tmp_path / 's.db'}"
    ts.Study(conditional_space(), sampler=name, seed=11, storage=url, name="s")
    reopened = ts.Study.load("s", url)
    assert reopened.sampler.describe() == sampler.describe()
    assert _suggestions(reopened.sampler) == _suggestions(again)


def _suggestions(sampler: ts.Sampler) -> Sequence[dict]:
    space = conditional_space()
    sampler.reseed(0, 0)
    trials: list[FrozenTrial] = []
    for i in range(3):
        s = sampler.suggest(space, trials, MIN)
        assert s is not None
        trials.append(FrozenTrial(number=i, state=TrialState.COMPLETE, params=s.params, value=loss(dict(s.params))))
    return [dict(t.params) for t in trials]
