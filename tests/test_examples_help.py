"""The examples' --help: a description for every option and its default."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


@pytest.mark.parametrize("name", ["finetune_text", "finetune_digits", "adam_in_action"])
def test_every_option_says_what_it_does_and_its_default(name: str) -> None:
    module = __import__(name)
    p = module.parser()
    assert p.formatter_class is argparse.ArgumentDefaultsHelpFormatter and p.description
    options = [a for a in p._actions if a.option_strings and a.dest != "help"]
    assert options and all(a.help for a in options), [a.dest for a in options if not a.help]
    text = p.format_help()
    for a in options:
        if a.default is not None:
            assert f"(default: {a.default})" in " ".join(text.split()), a.dest


@pytest.mark.parametrize("module", ["svm_digits_grid", "loan_default"])
def test_every_option_has_a_description_and_its_default(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = __import__(module)
    seen: list[argparse.ArgumentParser] = []
    real = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: object = None) -> object:
        seen.append(self)
        return real(self, args, namespace)  # type: ignore[arg-type]

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    ex.parse([])
    parser = seen[0]
    assert parser.description
    text = parser.format_help()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{module}: {action.option_strings} has no description"
        if action.default not in (None, False):
            assert f"(default: {action.default})" in " ".join(text.split()), f"{module}: {action.option_strings}"


def test_the_summary_says_what_the_search_changed_without_float_noise() -> None:
    from _summary import changes

    from tunesmith.train import TrainConfig

    found = {"lr": 0.0010000000000000002, "schedule": "cosine", "weight_decay": 3.0000000000000004e-05, "layers": 3}
    assert changes(found, TrainConfig()) == ["lr = 0.001", "schedule constant -> cosine", "weight_decay 0 -> 3e-05",
                                             "layers = 3"]


@pytest.mark.parametrize(("module", "argv", "message"), [
    ("svm_digits_grid", ["--folds", "1"], "--folds must be at least 2, got 1"),
    ("svm_digits_grid", ["--top", "0"], "--top must be at least 1, got 0"),
    ("svm_digits_grid", ["--n-jobs", "0"], "--n-jobs must be at least 1 (or -1: all cores), got 0"),
    ("loan_default", ["--trials", "0"], "--trials must be at least 1, got 0"),
    ("loan_default", ["--folds", "1"], "--folds must be at least 2, got 1"),
    ("loan_default", ["--test-seeds", "0"], "--test-seeds must be at least 1, got 0"),
    ("loan_default", ["--csv", "no-such-loans.csv"], "--csv no-such-loans.csv: no such file"),
    ("loan_default", ["--label", "defaulted"], "--label defaulted names a column of your --csv FILE"),
    ("finetune_digits", ["--trials", "0"], "--trials must be at least 1, got 0"),
    ("finetune_digits", ["--labels", "0"], "--labels must be at least 1, got 0"),
    ("finetune_text", ["--epochs", "0"], "--epochs must be at least 1, got 0"),
])
def test_a_wrong_option_is_a_usage_error_naming_it(module: str, argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Before the search starts, not as a traceback from deep inside it (--folds 1 used to fail every
    trial and then report that evaluate_best's k must be positive)."""
    with pytest.raises(SystemExit) as exit_:
        __import__(module).parse(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert __import__(module).parse([])
