"""Where pruning loses the best trial: how often the random stream's winner ranks in the top
``1/eta`` of the 40 trials at an epoch (full information, no pruning), per task.

A *winner* is a trial whose final validation error is the stream's best (ties count: any of
them). An early rung at epoch ``e`` keeping ``1/eta`` can only keep a winner that ranks there.

    PYTHONPATH=src python benchmarks/pruning_replay/winners.py --seeds 0-49
"""

from __future__ import annotations

import argparse

import numpy as np
from replay import N_TRIALS, Stream, load_tasks, seed_range

EPOCHS = (1, 2, 3, 4, 8, 16)
KEEP = (2, 3, 4)


def kept(val: np.ndarray, epoch: int, eta: int) -> bool:
    """Whether some winner is among the best ``N // eta`` at ``epoch`` (val: trials x epochs)."""
    final = val[:, -1]
    winners = np.flatnonzero(final <= final.min())
    rank = min(int((val[:, epoch - 1] < val[w, epoch - 1]).sum()) for w in winners)
    return rank < len(val) // eta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-49")
    args = ap.parse_args()
    tasks = load_tasks()
    print("| task | keep | " + " | ".join(f"epoch {e}" for e in EPOCHS) + " |")
    print("|---|---|" + "---|" * len(EPOCHS))
    for name, task in tasks.items():
        vals = []
        for seed in seed_range(args.seeds):
            st = Stream.of(task, seed)
            vals.append(np.array([task.val[c, s] for c, s in zip(st.configs, st.seeds[:N_TRIALS], strict=True)]))
        for eta in KEEP:
            cells = [f"{np.mean([kept(v, e, eta) for v in vals]):.2f}" for e in EPOCHS]
            print(f"| {name} | 1/{eta} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
