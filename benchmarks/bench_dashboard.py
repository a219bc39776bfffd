"""The dashboard on a 100,000-trial study, side by side with optuna-dashboard on an Optuna study
of the same trials, both on SQLite, in one run (see benchmarks/dashboard.md).

    nice -n 10 python benchmarks/bench_dashboard.py                # 100,000 trials, 5 loads each
    python benchmarks/bench_dashboard.py --trials 5000 --loads 3   # a quick look

Measured, in headless chromium (/usr/bin/chromium), each load in a fresh browser context (no
HTTP cache): the time until a study page is fully drawn, (1) the first load right after the
server starts (the server reads the study then) and (2) the median of ``--loads`` later loads;
and the median time and size of each JSON endpoint (urllib, ``--loads`` requests each).
"Fully drawn": tunesmith: every plot of the page drawn (``body[data-ready]``), its history
covering every trial; optuna-dashboard: its history plot holding a point for every trial.

The tunesmith study is written with ``study.add_trial`` (the public API). The Optuna one is
created with ``optuna.create_study`` and one ``add_trial``, then the remaining rows are written in
bulk into Optuna's own tables (its ``add_trials`` takes ~25 ms a trial, over 40 minutes for
100,000), and checked by ``optuna.load_study`` (count and best value) before timing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
STUDY = "bench-100k"


def workload(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The same ``n`` finished trials for both: params, value, three reports, timestamps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x, lr, kind = rng.random(), 10 ** rng.uniform(-4, -1), rng.choice(["a", "b"])
        value = (x - 0.3) ** 2 + (0.1 if kind == "b" else 0.0) + 0.01 * abs(math.log10(lr) + 2.5)
        out.append({"params": {"x": x, "lr": lr, "kind": kind}, "value": value,
                    "reports": {s: value + 1.0 / s for s in (1, 2, 3)}, "started": 1.7e9 + i, "completed": 1.7e9 + i + 0.5})
    return out


def make_tunesmith(path: Path, trials: list[dict[str, Any]]) -> float:
    import tunesmith as ts

    s = ts.Study({"x": ts.Float(0, 1), "lr": ts.Float(1e-4, 1e-1, log=True), "kind": ts.Categorical(["a", "b"])},
                 storage=f"sqlite:///{path}", name=STUDY, sampler="random", seed=0)
    if len(s.trials) != len(trials):
        for t in trials:
            s.add_trial(t["params"], t["value"], intermediate=t["reports"], started=t["started"],
                        completed=t["completed"])
    return s.best_value


def make_optuna(path: Path, trials: list[dict[str, Any]]) -> float:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{path}"
    dists = {"x": FloatDistribution(0, 1), "lr": FloatDistribution(1e-4, 1e-1, log=True),
             "kind": CategoricalDistribution(["a", "b"])}
    checked = path.with_suffix(".checked")  # the best value load_study read back last time
    if checked.exists():
        return float(checked.read_text())
    study = optuna.create_study(storage=url, study_name=STUDY, load_if_exists=True)
    if not study.trials:
        t = trials[0]
        study.add_trial(optuna.trial.create_trial(params=t["params"], distributions=dists, value=t["value"],
                                                  intermediate_values=t["reports"]))
        _bulk_optuna(path, trials[1:], {k: optuna.distributions.distribution_to_json(d)
                                        for k, d in dists.items()})
    loaded = optuna.load_study(study_name=STUDY, storage=url)
    assert len(loaded.trials) == len(trials), (len(loaded.trials), len(trials))
    checked.write_text(repr(float(loaded.best_value)))
    return float(loaded.best_value)


def _bulk_optuna(path: Path, trials: list[dict[str, Any]], dist_json: dict[str, str]) -> None:
    """Rows of ``trials`` (numbers 1..) into Optuna's tables, one transaction."""
    db = sqlite3.connect(path)
    study_id = db.execute("SELECT study_id FROM studies WHERE study_name = ?", (STUDY,)).fetchone()[0]
    first = db.execute("SELECT MAX(trial_id) FROM trials").fetchone()[0] + 1
    day = datetime(2024, 1, 1)
    rows_t, rows_p, rows_v, rows_i = [], [], [], []
    for k, t in enumerate(trials):
        tid = first + k
        start = day + timedelta(seconds=k)
        rows_t.append((tid, k + 1, study_id, "COMPLETE", start.isoformat(" "), (start + timedelta(seconds=0.5)).isoformat(" ")))
        for name, v in t["params"].items():
            internal = float(["a", "b"].index(v)) if name == "kind" else float(v)
            rows_p.append((tid, name, internal, dist_json[name]))
        rows_v.append((tid, 0, t["value"], "FINITE"))
        rows_i += [(tid, s, v, "FINITE") for s, v in t["reports"].items()]
    with db:
        db.executemany("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                       "VALUES (?, ?, ?, ?, ?, ?)", rows_t)
        db.executemany("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                       "VALUES (?, ?, ?, ?)", rows_p)
        db.executemany("INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, ?, ?, ?)", rows_v)
        db.executemany("INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, "
                       "intermediate_value_type) VALUES (?, ?, ?, ?)", rows_i)
    db.close()


# -- servers and the browser ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], probe: str) -> tuple[subprocess.Popen[bytes], float]:
    """The server process and when it was started (perf_counter), once ``probe`` answers."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(probe, timeout=5):
                return proc, t0
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not answer {probe} within 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


TS_READY = "document.body.dataset.ready === '1'"  # the first screen drawn (history of every trial)
TS_ALL = "document.body.dataset.all === '1'"  # every plot of the page drawn (a viewport tall enough for all)
OPTUNA_READY = ("n => { const d = document.getElementById('plot-history');"
                " return !!(d && d.data && d.data.some(t => t.x && t.x.length >= n)); }")


def load(browser: Any, url: str, ready: str, arg: Any, timeout_s: float, height: int = 1000) -> dict[str, Any]:
    """One load of ``url`` in a fresh context: seconds until ``ready`` holds, bytes received."""
    ctx = browser.new_context(viewport={"width": 1400, "height": height})
    page = ctx.new_page()
    outside: list[str] = []
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1:")
               else (outside.append(r.request.url), r.abort()))
    t0 = time.perf_counter()
    try:
        page.goto(url, timeout=timeout_s * 1000)
        page.wait_for_function(ready, arg=arg, timeout=timeout_s * 1000, polling=50)
        seconds = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a timeout is a result: "slower than the limit"
        seconds = math.inf if "Timeout" in type(exc).__name__ or "Timeout" in str(exc) else math.nan
    size = page.evaluate("performance.getEntriesByType('resource').reduce((n, e) => n + e.encodedBodySize, 0)"
                         " + performance.getEntriesByType('navigation')[0].encodedBodySize")
    ctx.close()
    assert not outside, outside
    return {"seconds": seconds, "bytes": size}


def plotly_alone(browser: Any, js_url: str, loads: int) -> float:
    """Median seconds for a blank page to load and run plotly.js alone (both dashboards ship it):
    the floor this machine sets on any page that draws plotly plots."""
    times = []
    for _ in range(loads):
        ctx = browser.new_context()
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.set_content(f"<script src='{js_url}'></script>")
        page.wait_for_function("window.Plotly !== undefined", polling=50)
        times.append(time.perf_counter() - t0)
        ctx.close()
    return statistics.median(times)


def time_json(url: str, repeat: int, budget_s: float = 60.0) -> dict[str, Any]:
    """Median seconds of ``repeat`` requests (fewer once they took ``budget_s`` in all) and the size."""
    times: list[float] = []
    size = 0
    for _ in range(repeat):
        if sum(times) > budget_s:
            break
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as r:
            size = len(r.read())
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "requests": len(times), "bytes": size}


def with_version(url: str) -> str:
    """``url`` with ``{version}`` replaced by the study's current version, read from the study's
    summary (the URL up to ``/changes``): the "what changed since" poll a live page makes when
    nothing changed. Versions start at the server's start time, so no fixed number is current."""
    if "{version}" not in url:
        return url
    with urllib.request.urlopen(url.split("/changes")[0], timeout=600) as r:
        return url.format(version=json.loads(r.read())["version"])


def tunesmith_endpoints(base: str) -> dict[str, str]:
    """The JSON requests timed on tunesmith's dashboard at ``base``, by label (``{version}``: filled
    in by :func:`with_version`)."""
    return {
        "studies list": f"{base}/api/studies",
        "what changed since": f"{base}/api/studies/{STUDY}/changes?since={{version}}",
        "history plot": f"{base}/api/studies/{STUDY}/plots/history",
        "trials page (50)": f"{base}/api/studies/{STUDY}/trials?limit=50&order=best",
    }


def warm_browser(browser: Any) -> None:
    """Open and close one blank page, so that no dashboard's first load pays for the browser's
    own first page (its renderer and compositor starting)."""
    ctx = browser.new_context()
    ctx.new_page().set_content("<p>warm</p>")
    ctx.close()


def measure(browser: Any, name: str, cmd: list[str], probe: str, page_url: str, ready: str, arg: Any,
            endpoints: dict[str, str], loads: int, timeout_s: float) -> dict[str, Any]:
    warm_browser(browser)
    proc, t0 = start(cmd, probe)
    try:
        first = load(browser, page_url, ready, arg, timeout_s)
        first["from_start_s"] = time.perf_counter() - t0
        later = [load(browser, page_url, ready, arg, timeout_s) for _ in range(loads)] if math.isfinite(first["seconds"]) else []
        out: dict[str, Any] = {"first": first, "loads": [x["seconds"] for x in later]}
        out["median_s"] = statistics.median(out["loads"]) if later else math.inf
        out["page_bytes"] = later[-1]["bytes"] if later else first["bytes"]
        if ready == TS_READY:  # the floor, and until every plot of the page is drawn
            out["plotly_js_alone_median_s"] = plotly_alone(browser, probe.replace("/api/studies", "/static/plotly.min.js"),
                                                           loads)
            out["all_plots_loads"] = [load(browser, page_url, TS_ALL, None, timeout_s, height=6000)["seconds"]
                                      for _ in range(loads)]
            out["all_plots_median_s"] = statistics.median(out["all_plots_loads"])
        out["json"] = {label: time_json(with_version(url), loads) for label, url in endpoints.items()}
        print(name, json.dumps(out), flush=True)
        return out
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100_000)
    ap.add_argument("--loads", type=int, default=5, help="page loads (and JSON requests) after the first")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds one page load may take")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tunesmith-bench-dashboard"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dashboard.json")
    ap.add_argument("--only", choices=["tunesmith", "optuna-dashboard"], help="measure one dashboard only")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.workdir.mkdir(parents=True, exist_ok=True)
    trials = workload(args.trials)
    ts_db, op_db = args.workdir / f"tunesmith-{args.trials}.db", args.workdir / f"optuna-{args.trials}.db"
    t0 = time.perf_counter()
    best = make_tunesmith(ts_db, trials)
    print(f"tunesmith study ready ({time.perf_counter() - t0:.1f} s)", flush=True)
    if args.only != "tunesmith":
        assert abs(make_optuna(op_db, trials) - best) < 1e-12, "the two studies differ"
    p1, p2 = free_port(), free_port()
    ts_base, op_base = f"http://127.0.0.1:{p1}", f"http://127.0.0.1:{p2}"
    bindir = Path(sys.executable).parent
    results: dict[str, Any] = {"trials": args.trials, "loads": args.loads, "chromium": CHROMIUM,
                               "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            if args.only != "optuna-dashboard":
                results["tunesmith"] = measure(
                    browser, "tunesmith", [sys.executable, "-m", "tunesmith", "dashboard", "--storage", f"sqlite:///{ts_db}",
                                           "--port", str(p1)], ts_base + "/api/studies", f"{ts_base}/studies/{STUDY}",
                    TS_READY, None, tunesmith_endpoints(ts_base), args.loads, args.timeout)
            if args.only != "tunesmith":
                results["optuna-dashboard"] = measure(
                    browser, "optuna-dashboard", [str(bindir / "optuna-dashboard"), f"sqlite:///{op_db}", "--host",
                                                  "127.0.0.1", "--port", str(p2), "--quiet"], op_base + "/api/studies",
                    f"{op_base}/dashboard/studies/1", OPTUNA_READY, args.trials, {
                        "studies list": f"{op_base}/api/studies",
                        "what changed since": f"{op_base}/api/studies/1?after={args.trials}",
                        "study with all trials": f"{op_base}/api/studies/1?after=0",
                    }, args.loads, args.timeout)
        finally:
            browser.close()
    results["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
