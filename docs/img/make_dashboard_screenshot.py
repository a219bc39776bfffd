"""Make docs/img/dashboard.png: the dashboard's study page, served by ``tunesmith dashboard`` and
shot in headless chromium (Debian's /usr/bin/chromium, driven by Playwright's Python package).

    PYTHONPATH=src OMP_NUM_THREADS=1 python docs/img/make_dashboard_screenshot.py
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import tunesmith as ts
from tunesmith.pruners import ASHA

OUT = Path(__file__).resolve().parent
SPACE = {
    "optimizer": ts.Categorical(["adam", "sgd"]),
    "lr": ts.Float(1e-5, 1e-1, log=True),
    "dropout": ts.Float(0.0, 0.6),
    "layers": ts.Int(1, 6),
}


def objective(trial: ts.Trial) -> float:
    """A made-up validation loss curve over 12 epochs: lr matters most, dropout some."""
    p = trial.params
    if p["dropout"] > 0.58:
        raise RuntimeError("loss became NaN at epoch 3")
    floor = 0.25 * (math.log10(p["lr"]) + 3) ** 2 + 1.2 * (p["dropout"] - 0.2) ** 2 + 0.02 * p["layers"]
    floor += 0.1 if p["optimizer"] == "sgd" else 0.0
    for epoch in range(1, 13):
        trial.report(floor + 1.2 / epoch, epoch)
        if trial.should_prune():
            raise ts.TrialPruned()
    return floor + 0.1


def main() -> None:
    from playwright.sync_api import sync_playwright

    logging.getLogger("tunesmith").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        study = ts.Study(SPACE, storage=url, name="mlp-finetune", sampler="tpe", seed=3, pruner=ASHA(max_resource=12))
        study.optimize(objective, n_trials=120, catch=(RuntimeError,))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(Path(ts.__file__).parents[1])}
        proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "dashboard", "--storage", url, "--port", str(port)],
                                env=env)
        try:
            _wait(f"http://127.0.0.1:{port}/api/studies")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1200, "height": 1250})
                page.goto(f"http://127.0.0.1:{port}/studies/mlp-finetune")
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                page.screenshot(path=str(OUT / "dashboard.png"))
                browser.close()
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait()
    print(f"wrote {OUT / 'dashboard.png'}")


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the dashboard did not answer at {url}")


if __name__ == "__main__":
    main()
