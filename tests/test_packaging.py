"""tunesmith as `pip install tunesmith` leaves it: the optional libraries absent, the
command line light, the metadata and the files a wheel ships."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tunesmith

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(tunesmith.__file__).resolve().parents[1]  # the sources under test (PYTHONPATH's)

#: imported first in each child: hides the named top-level packages, as an install without them
BLOCKER = """
import sys
BLOCKED = set({blocked!r})
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def run_without(blocked: set[str], code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which the ``blocked`` packages cannot be imported."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    program = BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def cli(blocked: set[str], *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_without(blocked, f"from tunesmith.cli import main\nraise SystemExit(main({list(argv)!r}))", cwd)


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    (tmp_path / "obj.py").write_text(textwrap.dedent("""
        from pathlib import Path
        def objective(trial):
            Path(__file__).with_name("ran").touch()
            return (trial.params["x"] - 1) ** 2
    """))
    (tmp_path / "s.yaml").write_text("name: q\nobjective: obj.py:objective\nn_trials: 4\nseed: 0\nsampler: random\n"
                                     "space:\n  x: {type: float, low: -5, high: 5}\n")
    return tmp_path / "s.yaml"


@pytest.mark.parametrize(("blocked", "output"), [({"matplotlib"}, "c.png"), ({"plotly"}, "c.html")])
def test_compare_without_the_plotting_library_stops_before_running_and_names_the_extra(
        study_file: Path, blocked: set[str], output: str) -> None:
    """compare ran every sampler, then failed on drawing with a bare "No module named
    'matplotlib'" (plotly: the right message, but only after every run)."""
    out = cli(blocked, "compare", str(study_file), "-o", output, "--budget", "2", "--seeds", "1", cwd=study_file.parent)
    assert out.returncode == 2, out.stderr
    assert "pip install 'tunesmith[plots]'" in out.stderr
    assert not (study_file.parent / "ran").exists()


def test_an_image_plot_without_matplotlib_names_the_extra(study_file: Path) -> None:
    folder = study_file.parent
    assert cli(set(), "run", str(study_file), cwd=folder).returncode == 0
    out = cli({"matplotlib"}, "plot", "q", "--kind", "history", "-o", "h.png", cwd=folder)
    assert out.returncode == 2
    assert "image plots need matplotlib: pip install 'tunesmith[plots]'" in out.stderr, out.stderr


def test_an_old_scikit_learn_is_named_with_the_version_tunesmith_sklearn_needs() -> None:
    """The importance extra allows scikit-learn 1.3; TunedSearchCV needs 1.6 (get_tags) and
    failed with "cannot import name 'get_tags' from 'sklearn.utils'"."""
    out = run_without(set(), """
        import types
        sys.modules["sklearn"] = types.ModuleType("sklearn")
        sys.modules["sklearn"].__version__ = "1.5.2"
        try:
            import tunesmith.sklearn
        except ImportError as e:
            print(e)
    """)
    assert "needs scikit-learn >= 1.6, this is 1.5.2: pip install -U 'tunesmith[sklearn]'" in out.stdout, out.stderr
