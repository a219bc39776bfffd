"""Helpers for the reliability tests: study files and real worker processes.

Workers are started as ``python -m tunesmith worker STUDY.yaml``,
exactly as a user starts them on another machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

SRC = Path(__file__).resolve().parents[1] / "src"

OBJECTIVES = textwrap.dedent(
    '''
    import os, signal, time

    def value_of(params):
        return float(params["x"]) * 3.0 + float(params.get("y", 0)) * 0.5

    def objective(trial):
        v = value_of(trial.params)
        trial.report(v, 0)
        return v

    def slow(trial):
        v = value_of(trial.params)
        trial.report(v, 0)
        time.sleep(0.01)
        return v

    def victim(trial):
        """Reports, leaves its pid and trial number, then hangs until killed."""
        trial.report(123.0, 0)
        marker = os.environ["VICTIM_MARKER"]
        with open(marker + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {trial.number}")
        os.replace(marker + ".tmp", marker)
        time.sleep(600)
        return 0.0
    '''
)


def write_study(tmp: Path, storage: str, *, name: str = "s", **extra: Any) -> Path:
    (tmp / "objectives.py").write_text(OBJECTIVES)
    spec = {"name": name, "storage": storage, "objective": "objectives.py:objective", **extra}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "1"
    e.update(extra)
    return e


def start_worker(study_file: Path, *args: str, **env_extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tunesmith", "worker", str(study_file), *args]
    return subprocess.Popen(cmd, env=env(**env_extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen[bytes]], timeout: float = 240.0) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out.decode(errors="replace"))
        assert p.returncode == 0, outs[-1][-3000:]
    return outs
