"""Whether two studies a user could create share a checkpoint folder (``checkpoint.study_folder``).

Two kinds of pairs: names a file system may fold together (case on a case-insensitive one; characters the
folder name replaces by ``_``; a name past 64 characters), each compared as a case-insensitive file system
compares names; and many studies of one name in one root (a study per storage: SQLite files, in-memory runs,
CI), each with its own ``copy_id`` (``uuid4().hex``, as tunesmith makes it), counting the folders two of them
share, case folded, against the birthday estimate n^2 / 2^33 of the 8 hex digits.

    PYTHONPATH=src nice -n 10 /work/main/.venv/bin/python benchmarks/bench_study_folder_collisions.py
"""

from __future__ import annotations

import time
import uuid

from tunesmith.paths import study_folder

PAIRS = [("MyStudy", "mystudy"), ("Exp", "EXP"), ("run 1", "run_1"), ("run/1", "run:1"), ("café", "cafe"),
         ("résumé", "resume"), ("a" * 64 + "1", "a" * 64 + "2")]


def folded(name: str, copy_id: str | None) -> str:
    return study_folder("", name, copy_id).name.lower()


def main() -> None:
    print("name pair: folder names (with a copy_id) | the same folder on a case-insensitive file system? "
          "(with a copy_id / without, as a study an earlier tunesmith made)")
    for a, b in PAIRS:
        with_id = folded(a, "x") == folded(b, "x")
        without = folded(a, None) == folded(b, None)
        print(f"{a[:20]!r:24} {b[:20]!r:24} {study_folder('', a, 'x').name[-30:]:32} "
              f"{study_folder('', b, 'x').name[-30:]:32} {with_id} / {without}")
    for n in (1_000, 10_000, 100_000, 1_000_000):
        start = time.perf_counter()
        seen: set[str] = set()
        shared = 0
        for _ in range(n):
            f = folded("exp", uuid.uuid4().hex)
            shared += f in seen
            seen.add(f)
        print(f"{n:>9} studies named 'exp' in one root: {shared} shared folders "
              f"(n^2/2^33 = {n * n / 2 ** 33:.3g}); {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
