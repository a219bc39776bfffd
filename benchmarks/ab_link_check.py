"""A/B: what resolving a checkpoint folder's path name by name for links of another user costs
(``paths.foreign_link_on``, one ``lstat`` per name, run by ``checkpoint.check_dir`` on every save), against
the same save with that check made a no-op; the two take turns, so load hits both alike.

Cells: a state of one small tensor (where the check weighs most) and bench_trainer.py's MLP of width 512
with its Adam state, each saved (then ``rotate(folder, 1)``, as the trainer does) into a folder two names
under the temp folder ("shallow") and 14 names under it, reached through a link of the user's own ("deep").
Decided before running: the check costs nothing measurable where, in every cell, the median save with it
is within 2% of the median without it, or within 0.05 ms. Also printed: the median microseconds of one
``foreign_link_on`` call on each path.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/ab_link_check.py --repeats 41
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from bench_trainer import data, make_model

from tunesmith.paths import foreign_link_on
from tunesmith.train import TrainConfig, Trainer, checkpoint


@contextmanager
def checked(check: bool) -> Iterator[None]:
    """checkpoint.check_dir as it is, or with its link walk a no-op."""
    checkpoint.foreign_link_on = foreign_link_on if check else (lambda p: None)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        checkpoint.foreign_link_on = foreign_link_on  # type: ignore[attr-defined]


def alternate(repeats: int, run: Callable[[int], float]) -> dict[bool, float]:
    """Median of ``run(i)`` with and without the check, the two taking turns."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeats):
        for check in (False, True) if i % 2 else (True, False):
            with checked(check):
                times[check].append(run(i))
    return {check: statistics.median(t) for check, t in times.items()}


def ms(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - t0)


def save_and_rotate(folder: Path, state: dict[str, Any], i: int) -> None:
    checkpoint.save(checkpoint.last_path(folder, i), state)
    checkpoint.rotate(folder, 1)


def folders(root: Path) -> dict[str, Path]:
    """"shallow": root/a/ckpt; "deep": 14 names under root, the 3rd a link of the user's own."""
    shallow = root / "a" / "ckpt"
    real = root / "real"
    (real / "b" / "c" / "d" / "e" / "f" / "g" / "h" / "i" / "j" / "k").mkdir(parents=True)
    (root / "via").symlink_to(real)
    return {"shallow": shallow, "deep": root / "via" / "b" / "c" / "d" / "e" / "f" / "g" / "h" / "i" / "j" / "k" / "ckpt"}


def call_us(path: Path, n: int = 2000) -> float:
    return 1000 * statistics.median(ms(lambda: foreign_link_on(path)) for _ in range(n))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=41)
    args = p.parse_args()
    torch.set_num_threads(1)
    trainer = Trainer(make_model(512), TrainConfig(epochs=1, batch_size=64, device="cpu"))
    trainer.fit(data(512))  # Adam state exists
    states = {"tiny": {"w": torch.zeros(16)}, "mlp512": trainer.state_dict()}
    with tempfile.TemporaryDirectory() as d:
        paths = folders(Path(d))
        for where, folder in paths.items():
            checkpoint.secure_dir(folder)
            print(f"{where} ({len(folder.parts)} names): foreign_link_on {call_us(folder):.1f} us a call")
            for name, state in states.items():
                t = alternate(args.repeats, lambda i: ms(lambda: save_and_rotate(folder, state, i)))  # noqa: B023
                print(f"  {name}: a save {t[False]:.3f} ms without the check, {t[True]:.3f} ms with "
                      f"({t[True] - t[False]:+.3f} ms, ratio {t[True] / t[False]:.3f}, median of {args.repeats})")


if __name__ == "__main__":
    main()
