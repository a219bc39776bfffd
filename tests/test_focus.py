"""study.focus: a study in the space of the parameters that matter, warm-started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.cli import build_parser, main
from tunesmith.storage import make_storage
from tunesmith.study.focus import plan_focus
from tunesmith.trial import TrialState

WEIGHTS = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 2.0}  # then four parameters with no effect at all
SPACE = {**{n: ts.Float(0.0, 1.0) for n in WEIGHTS}, **{f"z{i}": ts.Float(0.0, 1.0) for i in range(4)}}


def quadratic(trial: ts.Trial) -> float:
    return sum(w * (trial.params[n] - 0.3) ** 2 for n, w in WEIGHTS.items())


def searched(storage: str | None = None, n: int = 80) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=3, storage=storage, name="wide")
    study.optimize(quadratic, n_trials=n)
    return study


def test_threshold_keeps_the_effective_parameters_and_the_focused_search_improves(storage_url: str | None) -> None:
    wide = searched(storage_url)
    best = wide.best_trial
    narrow = wide.focus(threshold=0.05, seed=1)
    assert narrow.space.free == ("a", "b", "c", "d")
    assert {n: narrow.space[n].value for n in ("z0", "z1", "z2", "z3")} == {f"z{i}": best.params[f"z{i}"]
                                                                           for i in range(4)}
    carried = narrow.trials
    assert len(carried) == 80 and all(t.state is TrialState.COMPLETE for t in carried)
    assert carried[0].params == best.params and carried[0].attrs["focus_source"] == {
        "study": "wide", "number": best.number, "exact": True}
    assert narrow.best_value == wide.best_value and narrow.name == "wide-focus"
    narrow.sampler = ts.samplers.BayesSampler(seed=0)
    narrow.optimize(quadratic, n_trials=20)
    assert narrow.best_value < 0.5 * wide.best_value
    assert wide.space.validate(narrow.best_params) == narrow.best_params  # a whole configuration of the old space


def test_a_focused_search_with_the_parents_seed_draws_new_configurations() -> None:
    """The focused study came back as made, empty, its sampler seeded as a study of no trial: with the
    parent's seed its first new trial drew the parent's first configuration again, already carried."""
    def f(t: ts.Trial) -> float:
        return t.params["a"] + 0.5 * t.params["b"] + 0.001 * t.params["c"]

    wide = ts.Study({n: ts.Float(0.0, 1.0) for n in "abc"}, sampler="random", seed=0)
    wide.optimize(f, n_trials=12)
    narrow = wide.focus(["a", "b"])
    narrow.optimize(f, n_trials=3)
    seen = {(t.params["a"], t.params["b"]) for t in wide.trials}
    assert narrow.session == 12 and len(narrow.trials) == 15
    assert [(t.params["a"], t.params["b"]) in seen for t in narrow.trials[12:]] == [False] * 3


def test_keep_with_exact_carry_takes_the_trials_that_share_the_fixed_values() -> None:
    space = {"x": ts.Float(0.0, 1.0), "k": ts.Categorical(["a", "b", "c"])}
    wide = ts.Study(space, sampler="random", seed=0)
    wide.optimize(lambda t: (t.params["x"] - 0.5) ** 2 + (t.params["k"] == "b") * 0.1, n_trials=30)
    k = wide.best_params["k"]
    same = sum(t.params["k"] == k for t in wide.trials)
    exact = wide.focus(["x"], carry="exact", name="exact")
    assert exact.space.free == ("x",) and len(exact.trials) == same < 30
    assert all(t.params["k"] == k and t.attrs["focus_source"]["exact"] for t in exact.trials)
    assert len(wide.focus(["x"], name="all").trials) == 30
    assert len(wide.focus(["x"], carry="none", name="none").trials) == 0
    assert plan_focus(wide, keep=["x"], carry="exact").skipped == 30 - same


def test_carried_trials_keep_their_attributes_through_a_chain_of_focuses() -> None:
    space = {"x": ts.Float(0.0, 1.0), "y": ts.Float(0.0, 1.0), "k": ts.Categorical(["a", "b"])}

    def objective(t: ts.Trial) -> float:
        t.set_attr("note", f"run {t.number}")
        return (t.params["x"] - 0.5) ** 2 + 0.01 * t.params["y"]

    wide = ts.Study(space, sampler="random", seed=0, name="w")
    wide.optimize(objective, n_trials=10)
    once = wide.focus(["x", "y"])
    twice = once.focus(["x"])
    for t in twice.trials:
        source = once.trials[t.attrs["focus_source"]["number"]]
        assert t.attrs["note"] == source.attrs["note"] == f"run {source.attrs['focus_source']['number']}"
    assert len(twice.trials) == 10


def svm_study() -> ts.Study:
    space = {
        "kernel": ts.Categorical(["linear", "poly", "rbf"]),
        "C": ts.Float(1e-3, 1e3, log=True),
        "gamma": ts.Float(1e-4, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
        "degree": ts.Int(2, 5, when={"kernel": ["poly"]}),
    }
    study = ts.Study(space, sampler="random", seed=2, name="svm")
    for kernel, C, gamma, degree, value in [("rbf", 1.0, 0.1, None, 0.1), ("poly", 10.0, 0.01, 3, 0.2),
                                            ("linear", 0.1, None, None, 0.3), ("rbf", 5.0, 1.0, None, 0.4),
                                            ("poly", 1.0, 1.0, 4, 0.5)]:
        params = {"kernel": kernel, "C": C, "gamma": gamma, "degree": degree}
        study.add_trial({k: v for k, v in params.items() if v is not None}, value)
    return study


def test_conditional_parameters_follow_the_fixed_parent() -> None:
    study = svm_study()  # the best trial is an rbf
    narrow = study.focus(["C", "gamma"])
    assert narrow.space.free == ("C", "gamma") and "degree" not in narrow.space  # never active at rbf
    assert len(narrow.trials) == 4  # the linear trial has no gamma: not a configuration of the new space
    assert narrow.trials[0].params == {"kernel": "rbf", "C": 1.0, "gamma": 0.1}
    with pytest.raises(ValueError, match=r"cannot keep \['degree'\]: .* never active \(degree needs "
                                         r"\{'kernel': \('poly',\)\}\); keep their parents too"):
        study.focus(["C", "degree"], name="bad")
    by_kernel = study.focus(["kernel"], name="k")  # degree is inactive at the best: fixed at the best poly's
    assert by_kernel.space["degree"] == ts.Fixed(3, when={"kernel": ["poly"]})
    assert by_kernel.space["C"] == ts.Fixed(1.0) and by_kernel.space["gamma"].value == 0.1


def test_bad_requests_say_what_to_pass() -> None:
    study = svm_study()
    cases = [
        (dict(keep=["nope"]), r"keep names unknown parameter\(s\) \['nope'\]; the space's free parameters are"),
        (dict(keep=["C"], threshold=0.1), "focus needs keep=\\[names\\] or threshold=<importance>, one of the two"),
        (dict(), "one of the two"),
        (dict(keep=[]), "keep names no parameter"),
        (dict(threshold=0.5), r"importance needs at least 10 complete trials, got 5; run at least 5 more"),
        (dict(threshold=1.5), r"threshold is a fraction of the importance in \[0, 1\)"),
        (dict(keep=["C"], carry="some"), r"carry must be one of \['all', 'exact', 'none'\]"),
        (dict(keep=["C"], name="svm"), r"a study named 'svm' already exists in .*: focus into another name "
                                       r"\(name=..., on the command line --to NEW\), or continue that study"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            study.focus(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"no parameter has importance >= 0.99 \(the largest: "):
        searched(n=12).focus(threshold=0.99)
    with pytest.raises(TypeError, match="keep is a list of parameter names, got the string 'C'; write keep=\\['C'\\]"):
        study.focus("C")  # type: ignore[arg-type]
    fixed = ts.Study({"x": ts.Float(0, 1), "n": 3}, sampler="random", seed=0)
    with pytest.raises(ValueError, match=r"study '.*' has no complete trial yet"):
        fixed.focus(["x"])
    fixed.add_trial({"x": 0.5}, 1.0)
    with pytest.raises(ValueError, match=r"keep names fixed parameter\(s\) \['n'\]: they are constants already"):
        fixed.focus(["n"])
    # a constant objective: 'no parameter has importance >= 0.1 (the largest: x at 0.000)' did not say why
    flat = ts.Study({"x": ts.Float(0, 1), "y": ts.Float(0, 1)}, sampler="random", seed=0)
    flat.optimize(lambda t: 0.5, n_trials=12)
    for method in ("fanova", "ped-anova"):
        with pytest.raises(ValueError, match=r"focus by importance cannot choose: the value was 0.5 in all 12 complete "
                                             r"trials: no parameter can explain a difference; name the parameters"):
            flat.focus(threshold=0.1, method=method)


def test_cli_focus_creates_the_study_and_reports_what_it_carried(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    searched(url, n=30)
    assert main(["focus", "wide", "--keep", "a", "b", "--to", "ab", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "focus on ['a', 'b'] of study 'wide': fixed c=" in out and "carried 30 trials" in out
    assert "carried 30 trials\n" in out  # not "(0 complete trials not carried)"
    stored = ts.Study.load("ab", url)
    assert stored.space.free == ("a", "b") and len(stored.trials) == 30
    assert main(["focus", "wide", "--keep", "q", "--storage", url]) == 2
    assert "keep names unknown parameter(s) ['q']" in capsys.readouterr().err
    assert main(["focus", "wide", "--keep", "a", "--to", "ab", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "'ab' already exists" in err and "--to NEW" in err and "load_if_exists" not in err
    assert main(["focus", "wide", "--keep", "a,b", "--to", "ab2", "--storage", url]) == 0  # as plot's --params a,b
    assert ts.Study.load("ab2", url).space.free == ("a", "b")
    capsys.readouterr()
    assert main(["focus", "wide", "--keep", "a", "--to", "a1", "--storage", url]) == 0
    assert "(1 free parameter);" in capsys.readouterr().out  # was "(1 free parameters)"


def test_cli_focus_says_its_plan_once(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The library logs the plan to stderr; the CLI prints it: a user saw it on both."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    searched(url, n=10)
    cmd = [sys.executable, "-m", "tunesmith", "focus", "wide", "--keep", "a", "--storage", url]
    run = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (run.stdout + run.stderr).count("focus on ['a'] of study 'wide'") == 1


def test_the_focus_summary_shows_fixed_values_rounded_and_keeps_them_exact() -> None:
    """A best trial at a log range's centre printed 'C=1.0000000000000009'."""
    from tunesmith.study.focus import FocusPlan

    centre = 1.0000000000000009  # a value recorded with roundoff (log-scale decoding before it read as written)
    plan = FocusPlan(ts.Space({"x": ts.Float(0, 1)}), ("x",), {"C": centre}, (), (), 0)
    assert "fixed C=1.0;" in plan.summary("s") and plan.fixed["C"] == centre != 1.0


def test_a_focus_cut_short_while_carrying_its_trials_leaves_no_study_behind() -> None:
    # before: the focused study, created before its trials were written, stayed empty after a Ctrl-C
    # (or a full disk) and the same focus again was refused: "a study named 'wide-focus' already exists"
    class CutShort(ts.MemoryStorage):
        def insert_trials(self, study_id: int, records: object) -> list[ts.FrozenTrial]:
            raise KeyboardInterrupt

    wide, target = searched(n=20), CutShort()
    with pytest.raises(KeyboardInterrupt):
        wide.focus(["a", "b"], storage=target)
    assert target.list_studies() == []
    assert len(wide.focus(["a", "b"], storage=ts.MemoryStorage()).trials) == 20


def test_a_focus_that_keeps_every_parameter_says_the_space_is_the_same(caplog: pytest.LogCaptureFixture) -> None:
    """threshold=0 (or every parameter named) made a copy of the study without a word."""
    wide = ts.Study({"x": ts.Float(0.0, 1.0), "y": ts.Float(0.0, 1.0)}, sampler="random", seed=0)
    wide.optimize(lambda t: t.params["x"], n_trials=10)
    plan_focus(wide, keep=["x", "y"])
    assert "keeps every parameter (all named): the new study searches the same space" in caplog.text
    caplog.clear()
    plan_focus(wide, keep=["x"])
    assert "keeps every parameter" not in caplog.text


def test_the_focus_summary_prints_a_stored_name_s_control_characters_escaped() -> None:
    """A parameter name read from the database reached the terminal as it was (a cleared screen)."""
    from tunesmith.study.focus import FocusPlan

    plan = FocusPlan(ts.Space({"x": ts.Float(0, 1)}), ("x",), {"C\x1b[2J": 1.0, "ü": 2.0}, (), (), 0)
    text = plan.summary("s")
    assert "fixed C\\x1b[2J=1.0, ü=2.0;" in text and "\x1b" not in text


def test_a_focus_under_the_same_name_in_another_storage_has_a_checkpoint_folder_of_its_own(tmp_path: Path) -> None:
    """Its trials wrote to the folder named after the study, where the study's own trials of the same
    numbers keep their checkpoints (a new trial starting there deletes the other's files)."""
    from tunesmith.train import checkpoint, retention

    pytest.importorskip("torch")
    wide = ts.Study({"x": ts.Float(0.0, 1.0), "y": ts.Float(0.0, 1.0)}, sampler="random", seed=0, name="s",
                    storage=f"sqlite:///{tmp_path / 'a.db'}")
    wide.optimize(lambda t: t.params["x"], n_trials=10)
    narrow = wide.focus(keep=["x"], name="s", storage=f"sqlite:///{tmp_path / 'b.db'}")
    folders = {retention.trial_folder(tmp_path, study.ask()) for study in (wide, narrow)}
    assert len(folders) == 2 and checkpoint.study_folder(tmp_path, "s", wide.copy_id) / "trial-10" in folders
    assert ts.load_study("s", f"sqlite:///{tmp_path / 'b.db'}").copy_id == narrow.copy_id is not None


def test_a_misspelt_keep_is_named_before_the_new_name_is_checked(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`tunesmith focus wide --keep A` a second time said that 'wide-focus' already exists, and only
    after a --to NEW that 'A' is no parameter; the typo now comes first, with the closest name."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    searched(url, n=12)
    assert main(["focus", "wide", "--keep", "a", "--storage", url]) == 0
    capsys.readouterr()
    assert main(["focus", "wide", "--keep", "A", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "keep names unknown parameter(s) ['A'] (did you mean 'a'?); the space's free parameters are" in err
    assert "already exists" not in err
    # two or more misspelt: each its own suggestion (before: none at all)
    assert main(["focus", "wide", "--keep", "A,B", "zz", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert ("keep names unknown parameter(s) ['A', 'B', 'zz'] ('A': did you mean 'a'?; 'B': did you mean 'b'?; "
            "'zz': nothing close); the space's free parameters are") in err, err


def test_cli_focus_prints_a_command_that_runs_the_new_study_whatever_its_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--name {name}` was printed unquoted: a name with a space broke the command, and one of a shared
    storage holding `$(...)` or `;` ran what follows when the printed command was pasted."""
    import shlex

    url = f"sqlite:///{tmp_path / 'f.db'}"
    searched(url, n=12)
    new = "wide $(touch pwned); b"
    assert main(["focus", "wide", "--keep", "a", f"--to={new}", "--storage", url]) == 0
    out = capsys.readouterr().out
    command = out.split("run it with `", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[:3] == ["tunesmith", "run", "FILE"]
    assert build_parser().parse_args([*words[1:], "--storage", url]).name == new  # as the command reads it
    # a new name beginning with '-' (`--name -x`: "expected one argument") is refused before a study is made
    assert main(["focus", "wide", "--keep", "a", "--to=-x", "--storage", url]) == 2
    assert "study name '-x' starts with '-'" in capsys.readouterr().err
    assert sorted(r.name for r in make_storage(url).list_studies()) == sorted(["wide", new])
