"""The examples' --help describes every option and states its default."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


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
