"""Ties on the value: the best is the trial whose reports were better, read from the last backwards,
then the earliest (``tunesmith.trial.tie_key``); every reader of the best uses that one rule."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.cli import main
from tunesmith.trial import FrozenTrial, TrialState, ranked, tie_key

SPACE = {"x": ts.Float(0.0, 1.0)}


def _tell(study: ts.Study, reports: Sequence[float], value: float) -> None:
    trial = study.ask()
    for step, v in enumerate(reports, start=1):
        trial.report(v, step)
    study.tell(trial, value)


def _tied_study(storage: str | None, direction: str = "minimize", name: str = "ties") -> ts.Study:
    """Trials 0-2 end on 0.5; read from the last report backwards trial 2 was better before it
    (0.4 at step 2), trial 1 next (0.5 at step 2, then 0.6 against trial 0's 0.9)."""
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage, name=name, direction=direction)
    s = 1.0 if direction == "minimize" else -1.0
    for reports in ([0.9, 0.5, 0.5], [0.6, 0.5, 0.5], [0.9, 0.4, 0.5]):
        _tell(study, [s * v for v in reports], s * 0.5)
    _tell(study, [s * 0.1, s * 0.1, s * 0.7], s * 0.7)  # better all along, worse at the end: not tied
    return study


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_a_tie_on_the_value_goes_to_the_better_reports_read_from_the_last_backwards(
        storage_url: str | None, direction: str) -> None:
    study = _tied_study(storage_url, direction)
    assert study.best_trial.number == 2 and study.best_value == (0.5 if direction == "minimize" else -0.5)
    assert [t.number for t in ranked(study.trials, study.direction)] == [2, 1, 0, 3]
    if storage_url is not None:  # read back from the database: the same best
        again = ts.load_study("ties", storage_url)
        assert again.best_trial.number == 2
        assert [t.number for t in ranked(again.trials, again.direction)] == [2, 1, 0, 3]


def test_the_value_decides_before_the_reports_and_trials_without_reports_keep_the_earliest() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    _tell(study, [0.1, 0.1], 0.3)
    _tell(study, [0.9, 0.9], 0.2)  # worse reports, better value: the best
    assert study.best_trial.number == 1
    plain = ts.Study(SPACE, sampler="random", seed=0)
    for _ in range(3):
        plain.tell(plain.ask(), 1.0)  # no reports: ties stay with the earliest, as before
    assert plain.best_trial.number == 0
    _tell(plain, [2.0, 1.0], 1.0)  # reports, even worse ones, rank before none
    assert plain.best_trial.number == 3
    assert [t.number for t in ranked(plain.trials, plain.direction)] == [3, 0, 1, 2]


def test_equal_reports_so_far_the_shorter_curve_then_the_earlier_trial() -> None:
    study = ts.Study(SPACE, sampler="random", seed=0)
    _tell(study, [0.3, 0.2, 0.1], 0.1)
    _tell(study, [0.2, 0.1], 0.1)  # equal to trial 0 read backwards (0.1, 0.2), and runs out first
    _tell(study, [0.3, 0.2, 0.1], 0.1)  # the same as trial 0: the earlier stays first
    assert [t.number for t in ranked(study.trials, study.direction)] == [1, 0, 2]


def test_every_reader_of_the_best_names_the_same_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The dashboard's list (which reads trials without their reports unless the best is tied),
    its study page and trials table, ``tunesmith show`` (which reads the top trials whole, the last
    one's ties too), focus and evaluate_best's order: all follow ``best_trial``."""
    from tunesmith.dashboard.aggregate import page
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.study.evaluate import ranked as evaluate_ranked
    from tunesmith.study.focus import best_first

    url = f"sqlite:///{tmp_path / 'ties.db'}"
    study = _tied_study(url)
    cache = StudyCache(ts.storage.make_storage(url))
    record = next(r for r in cache.records() if r.name == "ties")
    assert cache.listed(record).summary()["best"]["number"] == 2
    assert cache.view("ties").best().number == 2  # type: ignore[union-attr]
    assert [t.number for t in page(cache.view("ties"), order="best")[1]] == [2, 1, 0, 3]
    assert best_first(study)[0].number == 2 and evaluate_ranked(study)[0].number == 2
    for top in ("1", "2"):
        assert main(["show", "ties", "--storage", url, "--top", top]) == 0
        rows = re.findall(r"^\W*(\d)\s*│\s*0\.5\b", capsys.readouterr().out, flags=re.M)
        assert rows == ["2", "1"][: int(top)], rows


def test_the_list_of_studies_reads_the_tied_trials_whole_and_no_other(shared_storage_url: str) -> None:
    """The list reads trials without their reports; where trials tie for the best it reads those
    trials whole (their reports rank them), not the study's whole history. 600 more ties: past
    the 512 numbers SQLite's query of listed trials takes at once."""
    from tunesmith.dashboard.cache import StudyCache
    from tunesmith.trial import FrozenTrial

    study = _tied_study(shared_storage_url)
    cache = StudyCache(ts.storage.make_storage(shared_storage_url))
    listed = cache.listed(next(r for r in cache.records() if r.name == "ties"))
    assert listed.summary()["best"]["number"] == 2
    assert [bool(t.intermediate) for t in listed.trials] == [True, True, True, False]  # trial 3: its head
    assert listed.trials[3].params == {} and listed.trials[2].params == study.trials[2].params
    more = [FrozenTrial(number=0, state="complete", params={"x": 0.5}, value=0.5,
                        intermediate={1: 0.3 if i == 550 else 0.6, 2: 0.5}) for i in range(600)]
    study.storage.insert_trials(study._study_id, more)  # trial 554 was better than trial 2 before the last report
    assert study.best_trial.number == 554
    cache = StudyCache(ts.storage.make_storage(shared_storage_url))
    listed = cache.listed(next(r for r in cache.records() if r.name == "ties"))
    assert listed.summary()["best"]["number"] == 554 and not listed.trials[3].intermediate


def test_a_report_that_is_no_number_ranks_as_the_worst(tmp_path: Path) -> None:
    """A row written by hand may hold NaN among a trial's reports (``report`` takes none): it ranks
    as the worst report, so the trial ranks after the tied trials whose reports are numbers, and
    ``best_trial`` and the ranking agree (NaN compares unequal to everything: the earliest trial
    held on to the best whatever the others reported)."""
    import sqlite3

    path = tmp_path / "nan.db"
    _tied_study(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE ts_trials SET intermediate = '{"1": 0.9, "2": NaN, "3": 0.5}' WHERE number = 0""")
    study = ts.load_study("ties", f"sqlite:///{path}")
    assert study.trials[0].intermediate[2] != study.trials[0].intermediate[2]  # read back as NaN
    assert study.best_trial.number == 2
    assert [t.number for t in ranked(study.trials, study.direction)] == [2, 1, 0, 3]


def _history(rng: random.Random, n: int) -> list[FrozenTrial]:
    """``n`` complete trials of few values, their reports drawn from few numbers (0.0 and -0.0, NaN, infinities
    among them), some of them none, some a prefix or a copy of another's, steps out of order: ties past every depth."""
    pool = [0.5, 0.25, 0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 3]
    curves: list[dict[int, float]] = []
    for _ in range(n):
        kind = rng.random()
        if curves and kind < 0.3:  # a copy of an earlier curve, cut short or extended
            curve = dict(rng.choice(curves))
            for step in sorted(curve)[rng.randrange(len(curve) + 1):] if rng.random() < 0.5 else []:
                del curve[step]
            if rng.random() < 0.5:
                curve[max(curve, default=0) + 1] = rng.choice(pool)
        elif kind < 0.4:
            curve = {}
        else:
            steps = rng.sample(range(1, 12), rng.randrange(1, 8))
            curve = {step: rng.choice(pool[:3]) if rng.random() < 0.8 else rng.choice(pool) for step in steps}
        curves.append(curve)
    return [FrozenTrial(number=number, state=TrialState.COMPLETE, params={}, value=rng.choice([0.1, 0.2, 0.3, 0.0, -0.0]),
                        intermediate=curve) for number, curve in enumerate(curves)]


def _reports_key(t: FrozenTrial, sign: float) -> tuple[bool, tuple[float, ...], int]:
    """tie_key's rule, one report at a time: ``sign * float(report)`` latest first, NaN as the worst."""
    reports = tuple(math.inf if math.isnan(sign * float(t.intermediate[s])) else sign * float(t.intermediate[s])
                    for s in sorted(t.intermediate, reverse=True))
    return not reports, reports, t.number


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_ranked_and_its_best_few_order_each_tie_as_tie_key_s_rule(seed: int, direction: str) -> None:
    rng = random.Random(seed)
    trials = _history(rng, rng.choice([30, 300, 1500]))
    if seed % 4 < 2:  # no two values equal (nothing to rank by the reports), or one tie only
        trials = [t.replace(value=t.number * rng.choice([1e-3, -1e-3])) for t in trials]
        if seed % 4 == 1:
            trials = [t.replace(value=trials[-1].value) if t.number == 3 else t for t in trials]
    rng.shuffle(trials)
    sign = ts.Direction.parse(direction).sign()
    want = [t.number for t in sorted(trials, key=lambda t: (sign * t.value, _reports_key(t, sign)))]  # type: ignore[operator]
    assert [t.number for t in ranked(trials, direction)] == want
    assert [tie_key(t, sign) for t in trials] == [_reports_key(t, sign) for t in trials]
    for top in (0, 1, 10, rng.randrange(len(trials)), len(trials), len(trials) + 5):
        assert [t.number for t in ranked(trials, direction, top)] == want[:top]
    with pytest.raises(ValueError, match="top must be an integer >= 0"):  # not want[:-1], nor [] where tied
        ranked(trials, direction, -1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_dashboard_s_pages_by_best_rank_each_tie_they_show_and_only_those(
        seed: int, direction: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trials table ordered by best, page by page in any order, is the complete trials as ``ranked`` orders
    them, then the rest by value; a page ranks the ties it shows (a tie across its edge whole), not the study's."""
    from tunesmith.dashboard import aggregate

    rng = random.Random(seed)
    trials = _history(rng, rng.choice([40, 400]))
    others = [TrialState.FAILED, TrialState.RUNNING, TrialState.PRUNED]  # the rest, after the complete ones
    trials = [t.replace(state=rng.choice(others), value=None) if rng.random() < 0.2 else t for t in trials]
    if seed % 3 == 0:  # no two values equal: nothing to rank by the reports
        trials = [t if t.value is None else t.replace(value=t.number * 1e-3) for t in trials]
    sign = ts.Direction.parse(direction).sign()
    done = ranked(trials, direction)
    first_numbers = {t.number for t in done}
    rest = sorted((t for t in trials if t.number not in first_numbers), key=lambda t: (t.state is not TrialState.COMPLETE, t.number))
    want = [t.number for t in done + rest]
    calls: list[int] = []

    def counted(t: FrozenTrial, s: float) -> tuple[bool, tuple[float, ...], int]:
        calls.append(t.number)
        return tie_key(t, s)

    monkeypatch.setattr(aggregate, "tie_key", counted)
    rows = aggregate.ByBest(trials, ts.Direction.parse(direction))
    assert len(rows) == len(want)
    limit = rng.choice([1, 7, 50])
    offsets = list(range(0, len(want) + limit, limit))
    first = rng.choice(offsets)
    got = [t.number for t in rows[first:first + limit]]
    assert got == want[first:first + limit]
    tied_values = {sign * t.value for t in done if sum(sign * u.value == sign * t.value for u in done) > 1}  # type: ignore[operator]
    shown = {sign * t.value for t in done[first:first + limit]}  # type: ignore[operator]
    assert sorted(calls) == sorted(t.number for t in done if sign * t.value in shown & tied_values)  # type: ignore[operator]
    rng.shuffle(offsets)
    for offset in offsets:
        assert [t.number for t in rows[offset:offset + limit]] == want[offset:offset + limit]
    assert [t.number for t in rows] == want and rows[-1].number == want[-1] and rows[0].number == want[0]
    assert len(calls) == len(set(calls))  # each tie ranked once


def test_a_page_of_trials_that_all_tie_says_they_tie_and_how_they_are_ordered(tmp_path: Path) -> None:
    """A study whose trials all tied on the value showed, ordered by best, a first page of one value in an
    order nothing on the page explained. The order is ``best_trial``'s (reports from the last backwards, those
    with none after, then by number: the same on every read and page) and the page now says which values its
    trials tie on, how many trials of the study hold each, and that order; a page of no tie says nothing."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app
    from tunesmith.dashboard.aggregate import page
    from tunesmith.dashboard.cache import StudyCache

    url = f"sqlite:///{tmp_path / 'ties.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="ties")
    for i in range(60):  # every trial ends on 1.0; trials 10-19 reported, the better the later
        _tell(study, [2.0 - i / 100] if 10 <= i < 20 else [], 1.0)
    _tell(study, [], 3.0)  # trial 60: no tie
    want = [*range(19, 9, -1), *range(10), *range(20, 60), 60]
    assert [t.number for t in ranked(study.trials, study.direction)] == want
    for _ in range(2):  # a fresh cache each time: the same order on every read
        view = StudyCache(ts.storage.make_storage(url)).view("ties")
        assert [t.number for t in page(view, order="best", offset=0, limit=50)[1]] == want[:50]
        assert [t.number for t in page(view, order="best", offset=50, limit=50)[1]] == want[50:]
    with TestClient(create_app(ts.storage.make_storage(url))) as c:
        first = c.get("/studies/ties?order=best&limit=50").text
        last = c.get("/studies/ties?order=best&offset=60&limit=50").text
        by_number = c.get("/studies/ties?limit=50").text
        live = c.get("/api/studies/ties/changes?since=x&order=best&limit=50").json()["html"]["trials"]
    line = "trials tie on the value here: 1 (60 trials). Tied trials are ordered as <code>study.best_trial</code>"
    assert line in first and line in live and "then by trial number, the earliest first" in first
    assert "tie on the value" not in last and "tie on the value" not in by_number


def test_the_trials_api_says_which_values_its_page_ties_on_as_the_page_does(tmp_path: Path) -> None:
    """The trials page ordered by best says which values its trials tie on and how a tie is ordered; the JSON
    trials API, which serves the same page of rows, said nothing of it: a script could not tell tied trials'
    order from a ranking. It now gives ``ties`` (each tied value with how many trials of the study hold it:
    empty where the page ties on none, or is not ordered by best) and the order's words."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from tunesmith.dashboard import create_app

    url = f"sqlite:///{tmp_path / 'ties.db'}"
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="ties")
    for value in [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]:
        _tell(study, [], value)
    with TestClient(create_app(ts.storage.make_storage(url))) as c:
        best = c.get("/api/studies/ties/trials?order=best&limit=4").json()
        rest = c.get("/api/studies/ties/trials?order=best&offset=5&limit=4").json()
        by_number = c.get("/api/studies/ties/trials?limit=4").json()
        page = c.get("/studies/ties?order=best&limit=4").text
    assert [t["number"] for t in best["trials"]] == [0, 1, 2, 3]
    assert best["ties"] == [{"value": 1.0, "trials": 3}, {"value": 2.0, "trials": 2}], best
    assert best["tie_order"].startswith("by their reports, the last one first") and best["tie_order"] in page
    assert "1 (3 trials), 2 (2 trials)" in page  # what the page says of the same rows
    assert rest["ties"] == [] and "tie_order" not in rest, rest  # trial 5 (3.0) ties with none
    assert by_number["ties"] == [] and "tie_order" not in by_number, by_number
