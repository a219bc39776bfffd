"""The final evaluation: re-evaluate the search's top configurations on data it never saw.

    results = study.evaluate_best(lambda trial: test_score(trial.params), k=5)
    print(results)            # validation next to test, the gap, the winner by test

The best validation value of a search is the maximum of many noisy scores, so it
is optimistic; the gap between it and the test score says by how much.

Where the results live: a finished trial never changes, and the search's
samplers and pruners must never read test scores. So the test results are the
trials of a companion study, ``"<name>:test"``, in the same storage: one
complete trial per evaluated configuration (its value the mean test score, its
``attrs`` the search trial's number, its validation value, every seed's score).
:func:`test_results` reads them back; ``study.best_trial`` stays what the search
found.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import StudyNotFound
from ..storage.base import MAX_NAME_LENGTH
from ..trial import Direction, FrozenTrial, TrialState, mean_and_spread
from ..trial import ranked as ranked_trials
from .trial import _as_float_or_nan, short_repr

if TYPE_CHECKING:
    from ..space import Space
    from .study import Study

SUFFIX = ":test"


logger = logging.getLogger("tunesmith")
TestFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One configuration evaluated on the test split.

    trial: the search trial's number. validation: its value in the search.
    values: the test score per seed (one value without seeds). mean, std: of
    ``values`` (std 0 for one value). gap: how much the validation value
    overstated the test score (validation - test when maximizing, test -
    validation when minimizing; positive: the search was optimistic).
    """

    trial: int
    params: Mapping[str, Any]
    validation: float
    values: tuple[float, ...]
    seeds: tuple[int | None, ...]
    mean: float
    std: float
    gap: float


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The top-k configurations by validation, each with its test results; ``winner`` is
    the best by test (ties: the better validation). ``metric``: the score both are of, where known (a
    TunedSearchCV's scorer, with several ``refit``'s), which heads the columns."""

    direction: Direction
    results: tuple[TestResult, ...]
    metric: str | None = None

    @property
    def winner(self) -> TestResult:
        sign = self.direction.sign()
        return min(self.results, key=lambda r: sign * r.mean)

    def __str__(self) -> str:
        gaps = [f"{r.gap:+.3g}" for r in self.results]
        wide = max(8, *map(len, gaps))  # -0.000774 is 9 wide: the params column stays in line
        tests = [f"{r.mean:.4g}" + (f" ± {r.std:.2g}" if len(r.values) > 1 else "") for r in self.results]
        of = "" if self.metric is None else f" ({self.metric})"  # "validation (roc_auc)"
        vw = max(10, len(f"validation{of}"))
        tw = max(vw, *map(len, tests))  # as wide as its widest: a single score's column no wider than validation's
        lines = [f"{'trial':>5}  {f'validation{of}':>{vw}}  {f'test{of}':>{tw}}  {'gap':>{wide}}  params"]
        for r, test, gap in zip(self.results, tests, gaps, strict=True):
            mark = "  <- winner by test" if r is self.winner else ""
            lines.append(f"{r.trial:>5}  {r.validation:>{vw}.4g}  {test:>{tw}}  {gap:>{wide}}  {_short(r.params)}{mark}")
        return "\n".join(lines)


def evaluate_best(study: Study, fn: TestFn, *, k: int = 5, seeds: Sequence[int] | None = None) -> Evaluation:
    """Evaluate the ``k`` best complete trials with ``fn`` and record the results.

    ``fn(trial)`` returns the test score of a search trial (a
    :class:`~tunesmith.FrozenTrial`: its ``params``, and its ``attrs`` such as a
    checkpoint); with ``seeds``, ``fn(trial, seed)`` is called once per seed (for
    noisy objectives: retrain with new seeds) and the mean and spread are kept.
    """
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer (how many of the best trials to evaluate), got {k!r}")
    seeds = _seeds(seeds)
    _check_fn(fn, seeds)
    top, repeats = distinct_best(study, int(k))
    if not top:
        raise ValueError(f"study {study.name!r} has no complete trial to evaluate")
    if repeats:
        logger.info("evaluate_best: study %r, %d trial(s) %s%s repeat the configuration of a better trial; each "
                    "configuration is tested once, so the next ones are evaluated", study.name, len(repeats),
                    repeats[:10], " ..." if len(repeats) > 10 else "")  # thousands, of a space of few configurations
    if len(top) < k:  # e.g. fold racing, which stops most configurations before their last fold
        logger.warning("evaluate_best: study %r has %d complete trial(s) of distinct configurations, fewer than "
                       "k=%d; evaluating those", study.name, len(top), k)
    book = _companion(study)
    results = []
    for t in top:
        try:
            values = [_score(fn, t, s) for s in (seeds if seeds is not None else [None])]
        except Exception:
            _say_stopped(study, t, results, len(top))
            raise
        results.append(_result(t, values, list(seeds) if seeds is not None else [None], study.direction))
        _record(book, results[-1])
    return Evaluation(study.direction, tuple(results))


def _say_stopped(study: Study, trial: FrozenTrial, done: Sequence[TestResult], k: int) -> None:
    """Which configuration stopped an evaluation, and which results it recorded before."""
    rest = k - len(done)
    recorded = (f"the test results of trial(s) {[r.trial for r in done]} are recorded, the other {rest} of the top {k} "
                f"{'is' if rest == 1 else 'are'} not evaluated" if done
                else "no test result is recorded" + (f" (the top {k} are not evaluated)" if k > 1 else ""))
    logger.warning("evaluate_best: study %r, the test function failed for trial %d (%s); %s", study.name,
                   trial.number, _short(trial.params), recorded)


def test_results(study: Study) -> dict[int, TestResult]:
    """The recorded test results by search-trial number (the latest evaluation of each)."""
    from .study import Study

    name = book_name(study.name)
    if name is None:
        return {}
    try:
        book = Study.load(name, study.storage)
    except StudyNotFound:
        return {}
    return results_from(book.trials_in(TrialState.COMPLETE), study.direction, where=book.name)


def results_from(
    trials: Iterable[FrozenTrial], direction: Direction, *, where: str, quiet: bool = False
) -> dict[int, TestResult]:
    """The test results held by ``trials``, the trials of the companion study ``where``,
    by search-trial number (the latest evaluation of each). Anyone can write that study:
    a trial that is not complete or not what :func:`evaluate_best` writes is left out
    (and logged unless ``quiet``: the dashboard reads it again at every refresh)."""
    out: dict[int, TestResult] = {}
    for t in trials:
        if t.state is not TrialState.COMPLETE:
            continue
        a = t.attrs
        try:
            number, values = int(a["trial"]), [float(v) for v in a["values"]]
            out[number] = _result_from(number, t.params, float(a["validation"]), values, list(a["seeds"]), direction)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # not what evaluate_best writes
            if not quiet:
                logger.warning("study %r, trial %d: not a test result that evaluate_best wrote (%s: %s); left out",
                               where, t.number, type(exc).__name__, str(exc)[:80])
    return out


def ranked(study: Study) -> list[FrozenTrial]:
    """Complete trials, best validation value first (ties: as ``best_trial`` ranks them)."""
    return ranked_trials(study.trials, study.direction)


def distinct_best(study: Study, k: int) -> tuple[list[FrozenTrial], list[int]]:
    """The ``k`` best complete trials of distinct configurations (equal ``params``: the better one, as
    :func:`ranked` orders them), and the numbers of the trials passed over as repeats (two deterministic
    hypertune runs record equal steps, a sampler may suggest a configuration again)."""
    top: list[FrozenTrial] = []
    repeats: list[int] = []
    for trial in ranked(study):
        if len(top) == k:
            break
        if any(trial.params == kept.params for kept in top):
            repeats.append(trial.number)
        else:
            top.append(trial)
    return top, repeats


def _seeds(seeds: Any) -> list[int] | None:
    """``seeds`` as a list of Python integers (a NumPy array or a range works too)."""
    if seeds is None:
        return None
    values = list(seeds) if isinstance(seeds, Iterable) and not isinstance(seeds, (str, bytes)) else []
    if not values or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in values):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return [int(s) for s in values]


def _check_fn(fn: TestFn, seeds: Sequence[int] | None) -> None:
    if not callable(fn):
        raise TypeError(f"evaluate_best takes fn(trial) -> test score, got {fn!r}")
    try:
        sig = inspect.signature(fn)
        sig.bind(None, 0) if seeds is not None else sig.bind(None)
    except TypeError:
        want = "fn(trial, seed)" if seeds is not None else "fn(trial)"
        raise TypeError(f"evaluate_best calls {want}; {fn!r} does not take those arguments") from None
    except ValueError:  # no signature (a builtin): call it and see
        pass


def _score(fn: TestFn, trial: FrozenTrial, seed: int | None) -> float:
    value = fn(trial) if seed is None else fn(trial, seed)
    out = _as_float_or_nan(value)  # as a trial's value: 10**400 is inf, a boolean is no score
    if out is None:
        raise TypeError(f"the test function returned {short_repr(value)} for trial {trial.number}; return a number")
    if not math.isfinite(out):
        raise ValueError(f"the test function returned {out} for trial {trial.number}; return a finite number")
    return out


def _result(t: FrozenTrial, values: list[float], seeds: list[int | None], direction: Direction) -> TestResult:
    return _result_from(t.number, t.params, float(t.value), values, seeds, direction)  # type: ignore[arg-type]


def _result_from(
    number: int, params: Mapping[str, Any], validation: float, values: list[float], seeds: list[int | None],
    direction: Direction,
) -> TestResult:  # fmt: skip
    mean, spread = mean_and_spread(values)  # scores near the float limit: their sum overflowed to inf
    gap = (validation - mean) if direction is Direction.MAXIMIZE else (mean - validation)
    return TestResult(number, dict(params), validation, tuple(values), tuple(seeds), mean, spread, gap)


def _companion(study: Study) -> Study:
    from .manage import making_companion
    from .study import Study

    name = room_for_book(study.name)
    with making_companion():
        return Study(study.space, direction=study.direction, sampler="random", storage=study.storage, name=name)


def room_for_book(name: str) -> str:
    """:func:`book_name`, or a ValueError saying that ``name`` is too long to keep test results."""
    book = book_name(name)
    if book is None:
        raise ValueError(f"{name[:40]!r}... has {len(name)} characters: the study's test results (evaluate_best) "
                         f"would be kept in the study NAME{SUFFIX}, over the limit of {MAX_NAME_LENGTH}; use a name "
                         f"of at most {MAX_NAME_LENGTH - len(SUFFIX)} characters (study.rename(...), tunesmith rename)")
    return book


def book_name(name: str) -> str | None:
    """The name of the study holding study ``name``'s test results; None where ``name`` (508 to
    512 characters) leaves no room for the suffix, so there is none."""
    return name + SUFFIX if len(name + SUFFIX) <= MAX_NAME_LENGTH else None


def _record(book: Study, r: TestResult) -> None:
    from .manage import insert_record

    # one write: queued, taken and told (three), a process killed between them left a queued result that the
    # next evaluate_best took for its own (another trial's numbers, its value), its own left queued for good
    insert_record(book.storage, book._study_id, book_record(book.space, r))


def book_record(space: Space, r: TestResult) -> FrozenTrial:
    """The companion's trial that holds ``r`` (its params checked against ``space``, as add_trial checks them)."""
    from .manage import known_result

    attrs = {"trial": r.trial, "validation": r.validation, "values": list(r.values), "seeds": list(r.seeds),
             "std": r.std}
    return known_result(space, r.params, r.mean, attrs=attrs)


def _short(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
