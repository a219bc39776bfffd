"""A/B: what syncing a checkpoint to disk costs (checkpoint.save with its os.fsync calls, and the same
save with os.fsync made a no-op, as it was written before), alternating so load hits both alike.

Per model of bench_trainer.py (MLP width 512 and 2048, with Adam state): the median time of one save
followed by ``rotate(folder, 1)``, as the trainer does; then whole runs (width 512, 8,192 samples,
3 epochs, a checkpoint each epoch), the median samples/s of each and their ratio.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/ab_checkpoint_sync.py --repeats 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_trainer import data, make_model, trainer_loop

from tunesmith.train import TrainConfig, Trainer, checkpoint


@contextmanager
def synced(sync: bool) -> Iterator[None]:
    """checkpoint.save as it is, or with os.fsync a no-op."""
    real = os.fsync
    os.fsync = real if sync else (lambda fd: None)
    try:
        yield
    finally:
        os.fsync = real


def alternate(repeats: int, run: Callable[[int], float]) -> dict[bool, float]:
    """Median of ``run(i)`` with and without syncing, the two taking turns."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeats):
        for sync in (False, True):
            with synced(sync):
                times[sync].append(run(i))
    return {sync: statistics.median(t) for sync, t in times.items()}


def save_ms(state: dict, repeats: int) -> dict[bool, float]:
    """Median milliseconds of a save and the rotation after it, with and without syncing."""
    with tempfile.TemporaryDirectory() as d:
        def save(i: int) -> float:
            t0 = time.perf_counter()
            checkpoint.save(checkpoint.last_path(d, i), state)
            checkpoint.rotate(d, 1)
            return 1000 * (time.perf_counter() - t0)
        return alternate(repeats, save)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(1)
    x, y = data(8192)
    for width in (512, 2048):
        trainer = Trainer(make_model(width), TrainConfig(epochs=1, batch_size=64, device="cpu"))
        trainer.fit((x[:512], y[:512]))  # Adam state exists
        ms = save_ms(trainer.state_dict(), args.repeats)
        print(f"width={width}: a save {ms[False]:.1f} ms without fsync, {ms[True]:.1f} ms with "
              f"(+{ms[True] - ms[False]:.1f} ms, median of {args.repeats})")

    def run(i: int) -> float:
        with tempfile.TemporaryDirectory() as d:
            return trainer_loop(make_model(512), x, y, 3, 64, ckpt_dir=str(Path(d)))
    rate = alternate(args.repeats, run)
    print(f"whole runs: {rate[False]:.0f} samples/s without fsync, {rate[True]:.0f} with, "
          f"ratio {rate[True] / rate[False]:.3f}")


if __name__ == "__main__":
    main()
