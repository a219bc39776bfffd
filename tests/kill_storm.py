"""A kill storm: SIGKILLs a random child process of this test at random intervals (seeded)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import threading


class Storm:
    """While the ``with`` block runs, SIGKILL a random worker process of this
    test (``multiprocessing`` children) every ``low``-``high`` seconds."""

    def __init__(self, seed: int, low: float = 0.1, high: float = 0.6) -> None:
        self.rng = random.Random(seed)
        self.low, self.high = low, high
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(self.low, self.high)):
            kids = mp.active_children()
            if kids:
                try:
                    os.kill(self.rng.choice(kids).pid, signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass

    def __enter__(self) -> Storm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
