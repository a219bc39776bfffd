"""tunesmith as `pip install tunesmith` leaves it: the optional libraries absent, the
command line light, the metadata and the files a wheel ships."""

from __future__ import annotations

import ast
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


#: (the library's module, an old version, the floor, the distribution and extra that ask for it, one line using it)
BUILT_FOR_NUMPY_1 = [
    ("torch", "2.2.2", "2.6", "torch", "train", "import tunesmith.train"),
    ("matplotlib", "3.8.3", "3.8.4", "matplotlib", "plots",
     "from tunesmith import plots; plots.save(plots.records_of(s, 'history'), 'h.png')"),
    ("sklearn", "1.4.1.post1", "1.4.2", "scikit-learn", "importance", "s.importance('fanova')"),
]


@pytest.mark.parametrize(("module", "old", "floor", "dist", "extra", "use"), BUILT_FOR_NUMPY_1,
                         ids=[case[0] for case in BUILT_FOR_NUMPY_1])
def test_a_library_older_than_its_extra_s_floor_is_named_with_the_version(
        tmp_path: Path, module: str, old: str, floor: str, dist: str, extra: str, use: str) -> None:
    """torch 2.1-2.2, matplotlib 3.7-3.8.3 and scikit-learn 1.3-1.4.1 are built for NumPy 1: under NumPy 2
    training failed on "Numpy is not available", pyplot on "numpy.core.multiarray failed to import", the
    forest on "numpy.dtype size changed". Each is refused when first used, naming the floor, and that
    floor is the one its extra asks for (torch's is 2.6: the test below)."""
    out = run_without(set(), f"""
        import types
        fake = types.ModuleType({module!r})
        fake.__version__ = {old!r}
        sys.modules[{module!r}] = fake
        import tunesmith as ts
        s = ts.Study(ts.Space({{"x": ts.Float(0, 1), "y": ts.Float(0, 1)}}), sampler="random", seed=0)
        s.optimize(lambda t: t.params["x"], n_trials=12)
        try:
            """ + use + """
        except ImportError as e:
            print(e)
    """, cwd=tmp_path)
    assert f"needs {module} >= {floor}, this is {old}: pip install -U 'tunesmith[{extra}]'" in out.stdout, \
        out.stdout + out.stderr
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"{dist}>={floor}" in extras[extra]


def test_a_torch_whose_weights_only_load_can_run_code_is_refused_by_every_extra_and_the_import() -> None:
    """Every checkpoint loads with ``torch.load(weights_only=True)``, which before torch 2.6 handed a
    TorchScript archive to ``torch.jit.load`` and ran its code (CVE-2025-32434); the floor was 2.3, and
    a study's checkpoint named by another writer of its storage could run code with torch 2.5.1."""
    out = run_without(set(), """
        import types
        fake = types.ModuleType("torch")
        fake.__version__ = "2.5.1+cpu"
        sys.modules["torch"] = fake
        try:
            import tunesmith.train
        except ImportError as e:
            print(e)
    """)
    assert "tunesmith.train needs torch >= 2.6, this is 2.5.1+cpu: pip install -U 'tunesmith[train]'" in out.stdout, \
        out.stdout + out.stderr
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    with_torch = {name: [r for r in reqs if r.startswith("torch")] for name, reqs in extras.items()}
    assert {name: reqs for name, reqs in with_torch.items() if reqs} == {
        extra: ["torch>=2.6"] for extra in ("train", "finetune", "lightning", "transformers")}


def test_an_old_scikit_learn_is_named_with_the_version_tunesmith_sklearn_needs() -> None:
    """The importance extra allows scikit-learn 1.4.2; TunedSearchCV needs 1.6 (get_tags) and
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
    assert "needs sklearn >= 1.6, this is 1.5.2: pip install -U 'tunesmith[sklearn]'" in out.stdout, out.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and sdist built (offline, by setuptools' own backend) from a copy of the tree."""
    pytest.importorskip("setuptools", minversion="77")  # the version pyproject's build-system asks for
    import shutil

    tree = tmp_path_factory.mktemp("tree")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.db", ".hypothesis")
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "constraints.txt"):
        shutil.copy(ROOT / name, tree / name)
    for name in ("src", "tests", "examples", "docs"):
        shutil.copytree(ROOT / name, tree / name, ignore=skip)
    code = "from setuptools import build_meta as b; b.build_sdist('dist'); b.build_wheel('dist')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return next((tree / "dist").glob("*.whl")), next((tree / "dist").glob("*.tar.gz"))


def test_the_wheel_ships_the_package_its_data_and_license_and_nothing_else(built: tuple[Path, Path]) -> None:
    """The wheel had no license text (pyproject named Apache-2.0, no LICENSE existed) and no
    classifiers; the package's data files (the dashboard's script, py.typed) must stay in it."""
    import zipfile

    names = set(zipfile.ZipFile(built[0]).namelist())
    data = {f"tunesmith/{p.relative_to(SRC / 'tunesmith').as_posix()}" for p in (SRC / "tunesmith").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert data >= {"tunesmith/py.typed", "tunesmith/dashboard/dashboard.js"}
    assert data <= names
    assert {n.split("/")[0] for n in names} == {"tunesmith", "tunesmith-0.1.0.dist-info"}
    assert "tunesmith-0.1.0.dist-info/licenses/LICENSE" in names
    meta = zipfile.ZipFile(built[0]).read("tunesmith-0.1.0.dist-info/METADATA").decode()
    assert f"Version: {tunesmith.__version__}" in meta.splitlines()  # was written twice, in pyproject and __init__
    for line in ("License-Expression: Apache-2.0", "License-File: LICENSE", "Requires-Python: >=3.10",
                 "Classifier: Typing :: Typed", "Classifier: Programming Language :: Python :: 3.10"):
        assert line in meta.splitlines(), line
    entry = zipfile.ZipFile(built[0]).read("tunesmith-0.1.0.dist-info/entry_points.txt").decode()
    assert "tunesmith = tunesmith.cli:main" in entry


def test_the_sdist_holds_a_test_suite_that_can_run(built: tuple[Path, Path]) -> None:
    """The sdist shipped tests/test_*.py without conftest.py, the helpers they import (pg.py,
    workers.py, ...) or the examples they run: not one test module could be collected."""
    import tarfile

    top = "tunesmith-0.1.0/"
    names = {n.removeprefix(top) for n in tarfile.open(built[1]).getnames()}
    assert {"LICENSE", "constraints.txt", "tests/conftest.py", "examples/svm_digits_grid.py"} <= names
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("*.py") if not p.name.startswith("test_bench_")}
    assert wanted <= names, sorted(wanted - names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".db")]


def test_an_old_plotly_is_named_with_the_version_the_plots_need(tmp_path: Path) -> None:
    """The plots and dashboard extras allowed plotly 5.0; an HTML plot or report failed with
    "to_html() got an unexpected keyword argument 'div_id'" (5.5 added it)."""
    out = run_without(set(), """
        import plotly
        plotly.__version__ = "5.4.0"
        import tunesmith as ts
        from tunesmith import plots
        s = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", seed=0)
        s.optimize(lambda t: t.params["x"], n_trials=3)
        try:
            plots.save(plots.records_of(s, "history"), "h.html")
        except ImportError as e:
            print(e)
    """, cwd=tmp_path)
    assert "an interactive plot needs plotly >= 5.5, this is 5.4.0: pip install -U 'tunesmith[plots]'" in out.stdout, out.stderr
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "plotly>=5.5" in extras["plots"] and "plotly>=5.5" in extras["dashboard"]


HEAVY = ("torch", "sklearn", "pandas", "plotly", "matplotlib", "ray", "starlette", "uvicorn", "psycopg", "mlflow",
         "lightning", "transformers", "xgboost", "lightgbm", "tensorboard", "sqlalchemy", "scipy")


def test_the_command_line_help_and_a_study_in_memory_import_no_heavy_library(tmp_path: Path) -> None:
    """``tunesmith --help`` and ``import tunesmith`` imported SQLAlchemy (a third of the import
    time) though neither opens a database; the optional libraries stay unimported too."""
    out = run_without(set(), f"""
        import contextlib, io
        from tunesmith.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        import tunesmith as ts
        s = ts.Study(ts.Space({{"x": ts.Float(0, 1)}}), sampler="random", seed=0)
        s.optimize(lambda t: t.params["x"], n_trials=3)
        print([m for m in {HEAVY!r} if m in sys.modules])
    """, cwd=tmp_path)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_named_study_and_a_search_in_memory_import_no_sqlalchemy(tmp_path: Path) -> None:
    """A named study in memory (every ``TunedSearchCV`` names its study) imported SQLAlchemy to ask
    whether its SQLite file was missing, and the fitted search imported it again to tell a SQL
    storage from memory: a third of a second of a small search's fit."""
    out = run_without(set(), """
        import numpy as np
        import tunesmith as ts
        from tunesmith.sklearn import TunedSearchCV
        from sklearn.linear_model import LogisticRegression
        s = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", seed=0, name="named")
        s.optimize(lambda t: t.params["x"], n_trials=3)
        print("study", "sqlalchemy" in sys.modules)
        X = np.random.default_rng(0).normal(size=(40, 2))
        search = TunedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, random_state=0).fit(X, X[:, 0] > 0)
        print("search", "sqlalchemy" in sys.modules, search.study_.storage.url, len(search.cv_results_["params"]))
    """, cwd=tmp_path)
    assert out.stdout.split() == ["study", "False", "search", "False", "memory", "2"], out.stdout + out.stderr


@pytest.mark.parametrize("blocked", ["starlette", "plotly", "uvicorn"])
def test_create_app_without_the_dashboard_extra_names_it(blocked: str) -> None:
    """serve() named the extra; create_app() (to serve the app yourself) failed with a bare
    "No module named 'starlette'", and without plotly made an app whose every plot failed."""
    out = run_without({blocked}, """
        from tunesmith import MemoryStorage
        from tunesmith.dashboard import create_app
        try:
            print(type(create_app(MemoryStorage())).__name__)
        except ImportError as e:
            print(e)
    """)
    if blocked == "uvicorn":  # the app is served by whatever ASGI server one likes
        assert out.stdout.strip() == "Starlette", out.stdout + out.stderr
        return
    assert f"the dashboard needs {blocked}: pip install 'tunesmith[dashboard]'" in out.stdout, out.stdout + out.stderr


def test_type_checkers_see_what_tunesmith_imports_on_first_use(tmp_path: Path) -> None:
    """``ts.train`` is imported on first use (module __getattr__); to mypy it was an ``object``,
    so ``ts.train.objective(...)``, as docs/train.md writes it, was an attr-defined error."""
    pytest.importorskip("mypy")
    user = tmp_path / "user.py"
    user.write_text("import tunesmith as ts\n\nspace = ts.train.adam_space()\nstorage = ts.SQLStorage('sqlite:///a.db')\n"
                    "reveal_type(storage)\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                          "--ignore-missing-imports", "--no-site-packages", "--cache-dir", str(tmp_path / "cache"), str(user)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "MYPYPATH": str(SRC)})
    assert 'Revealed type is "tunesmith.storage.sql.SQLStorage"' in out.stdout, out.stdout
    assert "error" not in out.stdout, out.stdout


def test_the_names_imported_on_first_use_are_listed() -> None:
    """dir(tunesmith) left out BayesSampler, TPESampler, BayesOptions and SQLStorage (imported on
    first use), so tab completion and help(tunesmith) did not show them; train (torch) stays out."""
    import tunesmith.storage

    assert {"BayesSampler", "TPESampler", "BayesOptions", "SQLStorage", "Study"} <= set(dir(tunesmith))
    fresh = run_without(set(), "import tunesmith\nprint('train' in dir(tunesmith))")  # not yet imported by another test
    assert fresh.stdout.strip() == "False", fresh.stderr
    assert {"SQLStorage", "SCHEMA_VERSION", "make_storage"} <= set(dir(tunesmith.storage))
    out = run_without({"torch"}, "import pydoc, tunesmith\ndoc = pydoc.render_doc(tunesmith)\n"
                                 "print('SQLStorage(url' in doc, 'BayesSampler(seed' in doc)")
    assert out.stdout.strip() == "True True", out.stderr


@pytest.mark.parametrize(("module", "integration", "old", "floor"), [
    ("lightning.pytorch", "lightning", "2.5.0", "2.6"),
    ("transformers", "transformers", "4.40.2", "4.41"),
])  # fmt: skip
def test_an_integration_with_a_library_older_than_its_extra_names_the_version(
        module: str, integration: str, old: str, floor: str) -> None:
    """An installed Lightning 2.5 or transformers 4.40 (older than the extras' floors) failed later
    on a missing name (fit's weights_only, TrainingArguments.eval_strategy); now on import."""
    out = run_without(set(), f"""
        import types
        parts = {module!r}.split(".")
        for i in range(len(parts)):
            fake = types.ModuleType(".".join(parts[:i + 1]))
            fake.__version__ = {old!r}
            fake.__path__ = []
            sys.modules[fake.__name__] = fake
        try:
            import tunesmith.integrations.{integration}
        except ImportError as e:
            print(e)
    """)
    package = module.split(".")[0]  # the distribution pip installs (lightning), not the module imported
    want = f"tunesmith.integrations.{integration} needs {package} >= {floor}, this is {old}: pip install -U 'tunesmith[{integration}]'"
    assert want in out.stdout, out.stdout + out.stderr


def test_an_integration_library_that_breaks_on_import_is_named_not_raised_raw(tmp_path: Path) -> None:
    """TensorBoard 2.14-2.17 fail to import under NumPy 2 with an AttributeError (np.string_),
    which came out raw; the extra's floor allowed them. Now the error says the library is
    installed but broken, and the floor is 2.18."""
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "__init__.py").write_text(
        "raise AttributeError('`np.string_` was removed in the NumPy 2.0 release')\n")
    out = run_without(set(), f"""
        sys.path.insert(0, {str(tmp_path)!r})
        try:
            import tunesmith.integrations.tensorboard
        except ImportError as e:
            print(e)
    """)
    assert ("tunesmith.integrations.tensorboard needs the 'tensorboard' package, which is installed but failed "
            "to import: AttributeError: `np.string_` was removed") in out.stdout, out.stdout + out.stderr
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["tensorboard"] == ["tensorboard>=2.18"]


def test_importance_without_scikit_learn_names_the_extra_and_the_method_that_needs_none(study_file: Path) -> None:
    """A plain install's `tunesmith importance NAME` said only to install scikit-learn, though
    the PED-ANOVA method runs without it."""
    folder = study_file.parent
    study_file.write_text(study_file.read_text().replace("n_trials: 4", "n_trials: 12"))
    assert cli(set(), "run", str(study_file), cwd=folder).returncode == 0
    out = cli({"sklearn"}, "importance", "q", cwd=folder)
    assert out.returncode == 2
    assert "pip install 'tunesmith[importance]' (the ped-anova method needs no extra)" in out.stderr, out.stderr
    assert cli({"sklearn"}, "importance", "q", "--method", "ped-anova", cwd=folder).returncode == 0


def test_the_example_study_file_without_scikit_learn_stops_before_any_trial(tmp_path: Path) -> None:
    """`tunesmith run examples/svm_digits.yaml` in a plain install failed all 36 trials, each on
    "No module named 'sklearn'"; now loading the objective names the extra."""
    out = cli({"sklearn"}, "run", str(ROOT / "examples" / "svm_digits.yaml"), "--storage",
              f"sqlite:///{tmp_path / 'a.db'}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "this example needs scikit-learn: pip install 'tunesmith[sklearn]'" in out.stderr
    assert "trial" not in out.stderr


def test_hasattr_train_is_false_without_torch_and_the_import_names_the_extra() -> None:
    """``hasattr(tunesmith, "train")`` raised the ImportError (module ``__getattr__`` must raise
    AttributeError for a name it cannot give)."""
    out = run_without({"torch"}, """
        import tunesmith
        print(hasattr(tunesmith, "train"))
        try:
            import tunesmith.train
        except ImportError as e:
            print(e)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "False"
    assert "pip install 'tunesmith[train]'" in out.stdout


@pytest.mark.parametrize(("example", "blocked", "message"), [
    ("loan_default", "pandas", "this example needs pandas: pip install 'tunesmith[sklearn,train]'"),
    ("loan_default", "torch", "this example needs torch: pip install 'tunesmith[sklearn,train]'"),
    ("adam_in_action", "torch", "this example needs torch: pip install 'tunesmith[train]'"),
    ("finetune_digits", "torch", "this example needs torch: pip install 'tunesmith[finetune]'"),
    ("finetune_text", "torch", "this example needs torch: pip install 'tunesmith[finetune]'"),
])
def test_a_pytorch_example_without_its_library_names_the_extra(example: str, blocked: str, message: str) -> None:
    """The PyTorch examples stopped on a bare "No module named 'torch'" (or 'pandas')."""
    script = ROOT / "examples" / f"{example}.py"
    out = run_without({blocked}, f"""
        import runpy
        sys.path.insert(0, {str(script.parent)!r})
        sys.argv = [{str(script)!r}, "--help"]
        runpy.run_path({str(script)!r}, run_name="__main__")
    """)
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]


def _defined_twice(path: Path) -> list[str]:
    """A module's functions and classes defined more than once in one scope, its top level or a class's body (a
    test class's second method of a name drops the first test); ``@overload`` stubs and a property's setter
    or deleter aside."""
    import collections

    tree = ast.parse(path.read_text(encoding="utf-8"))
    scopes = [("", tree.body)] + [(f"{n.name}.", n.body) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    twice = []
    for prefix, body in scopes:
        defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        real = [n.name for n in defs if not any(_redefines(d) for d in n.decorator_list)]
        twice += [prefix + name for name, count in collections.Counter(real).items() if count > 1]
    return sorted(twice)


def _redefines(decorator: ast.expr) -> bool:
    """Whether a decorator makes a second ``def`` of a name right: ``@overload`` (``@typing.overload``),
    ``@name.setter``, ``@name.deleter``."""
    if isinstance(decorator, ast.Name):
        return decorator.id == "overload"
    return isinstance(decorator, ast.Attribute) and decorator.attr in ("overload", "setter", "deleter")


def test_no_module_defines_a_function_or_class_twice() -> None:
    """A second ``def`` of a name silently replaces the first for every caller, those above it too (ruff's F811 is
    quiet once the first was used): a test helper's 30 s sleep once became another test's 1.5 s one that way, and
    the tests that signalled a running trial found it finished under load."""
    found = {str(p.relative_to(ROOT)): twice for folder in ("src", "tests", "benchmarks", "examples")
             for p in sorted((ROOT / folder).rglob("*.py")) if (twice := _defined_twice(p))}
    assert not found, f"defined twice (rename one): {found}"
