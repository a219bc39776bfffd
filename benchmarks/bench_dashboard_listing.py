"""The dashboard's list of studies (``/api/studies``: ``cache.listed(r).summary()`` for each study)
with the pruner named as ``tunesmith show`` names it ("asha (pause=True)", the label of the pruner
the stored config builds) against the stored name alone, as the list named it before.

    nice -n 10 python benchmarks/bench_dashboard_listing.py               # 300 studies, 7 rounds
    python benchmarks/bench_dashboard_listing.py --studies 50 --rounds 3  # a quick look

Each round times a fresh ``StudyCache`` (nothing read yet) listing every study of one SQLite
file, once with each labelling, alternating; prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tunesmith as ts
from tunesmith.dashboard import cache


def stored_name(config: Any) -> str:
    """The list's pruner before: the stored name alone."""
    p = config.get("pruner")
    name = p.get("name") if isinstance(p, dict) else p
    return "" if not name or str(name).lower() in ("nop", "none", "noppruner") else str(name)


def listing(db: str) -> float:
    studies = cache.StudyCache(ts.storage.make_storage(db))
    start = time.perf_counter()
    [studies.listed(r).summary() for r in studies.records()]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'many.db'}"
        for i in range(args.studies):
            s = ts.Study(ts.Space({"x": ts.Float(0, 1)}), name=f"s{i}", storage=db, sampler="random",
                         pruner=ts.pruners.ASHA(pause=True, max_resource=9))
            s.tell(s.ask(), 0.5)
        labelled, times = cache.pruner_name, {"stored name": [], "label": []}  # type: dict[str, list[float]]
        for _ in range(args.rounds):
            for what, f in (("stored name", stored_name), ("label", labelled)):
                cache.pruner_name = f  # type: ignore[assignment]
                times[what].append(listing(db))
        cache.pruner_name = labelled
    for what, ts_ in times.items():
        print(f"{what}: median {statistics.median(ts_) * 1e3:.1f} ms to list {args.studies} studies")
    print(f"ratio label / stored name: {statistics.median(times['label']) / statistics.median(times['stored name']):.2f}")


if __name__ == "__main__":
    main()
