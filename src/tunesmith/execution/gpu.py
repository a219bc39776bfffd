"""Packing trials onto GPUs: device assignment and out-of-memory retries (pure logic).

Each concurrent trial gets its own worker process and one device, named in
``CUDA_VISIBLE_DEVICES``; ``trials_per_gpu`` workers share a device and no
device gets more. A trial that dies of CUDA out-of-memory is queued again
(same parameters) and its worker retires, so the device it ran on carries one
neighbour fewer from then on; a device's last worker is replaced, not retired,
so the retry can run alone.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import StorageError, describe_exception
from ..trial import FrozenTrial, as_count

MAX_OOM_RETRIES = 2

logger = logging.getLogger("tunesmith")
EXIT_OOM = 75  # a worker's exit code after an out-of-memory trial: "retire me"


@dataclass(frozen=True)
class Slot:
    """A worker's place: its index and the device it may see (None: CPU only)."""

    index: int
    device: str | None = None
    share: float = 1.0  # fraction of the device this worker may count on

    def env(self, threads: int | None = 1) -> dict[str, str]:
        """Environment a worker process sets before its first trial."""
        env: dict[str, str] = {}
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
            env["MKL_NUM_THREADS"] = str(threads)
        if self.device is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.device
            env["TUNESMITH_GPU_SHARE"] = f"{self.share:.6g}"
        return env


def parse_gpus(gpus: Sequence[int | str] | int | str | None) -> list[str] | None:
    """``[0, 1]``, ``"0,1"``, a count ``2`` (devices 0..1), or None (no GPU)."""
    if gpus is None:
        return None
    if isinstance(gpus, bool):
        raise TypeError(f"gpus must be device ids, a count or None, got {gpus!r}")
    if isinstance(gpus, int):
        if gpus < 1:
            raise ValueError(f"gpus as a count must be >= 1, got {gpus}")
        return [str(i) for i in range(gpus)]
    items = gpus.split(",") if isinstance(gpus, str) else list(gpus)
    ids = [str(g).strip() for g in items if str(g).strip() != ""]
    if not ids:
        raise ValueError(f"gpus must name at least one device, got {gpus!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"gpus lists a device twice: {gpus!r}")
    return ids


def check_trials_per_gpu(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"trials_per_gpu must be an integer >= 1, got {k!r}")
    return k


def plan_slots(n_jobs: int | None, gpus: Sequence[str] | None, trials_per_gpu: int = 1) -> list[Slot]:
    """One slot per concurrent trial; devices filled round-robin, never beyond capacity.

    Without GPUs: ``n_jobs`` CPU slots. With GPUs: ``len(gpus) * trials_per_gpu``
    slots, or ``n_jobs`` if that is fewer.
    """
    check_trials_per_gpu(trials_per_gpu)
    if not gpus:
        return [Slot(i) for i in range(n_jobs or 1)]
    capacity = len(gpus) * trials_per_gpu
    n = capacity if n_jobs is None else min(n_jobs, capacity)
    return [Slot(i, gpus[i % len(gpus)], 1.0 / trials_per_gpu) for i in range(n)]


class SlotPool:
    """Live slots by device; decides what replaces a worker that exited."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.live: dict[int, Slot] = {s.index: s for s in slots}
        self._next = max((s.index for s in slots), default=-1) + 1

    def on_device(self, device: str | None) -> int:
        return sum(1 for s in self.live.values() if s.device == device)

    def exited(self, slot: Slot, *, oom: bool, replace: bool = False) -> Slot | None:
        """Forget ``slot``; return a replacement if ``replace`` (a worker died
        and its trial was re-queued: the copy needs a worker) or, after an
        out-of-memory exit, when the device has no other worker left (the
        retry runs alone)."""
        self.live.pop(slot.index, None)
        if replace and not oom:
            return self.successor(slot)
        if oom and slot.device is not None and self.on_device(slot.device) == 0:
            return self.successor(slot, share=1.0)
        return None

    def successor(self, slot: Slot, *, share: float | None = None) -> Slot:
        """A new live slot on ``slot``'s device (its share unless ``share``); ``slot`` stays
        live until :meth:`exited` forgets it (a worker may replace a dead one at once)."""
        new = Slot(self._next, slot.device, slot.share if share is None else share)
        self._next += 1
        self.live[new.index] = new
        return new


def is_oom_error(error: str | None) -> bool:
    """Whether a failed trial's stored error says CUDA ran out of memory."""
    return error is not None and (
        error.startswith("OutOfMemoryError") or "CUDA out of memory" in error or "CUBLAS_STATUS_ALLOC_FAILED" in error
    )


def may_retry_oom(record: FrozenTrial) -> bool:
    """Whether a trial that ran out of GPU memory may run again (fewer neighbours on
    its device): at most MAX_OOM_RETRIES times per configuration."""
    return record.system.oom_retries < MAX_OOM_RETRIES


def retry_queued_first(objective: Callable[[Any], Any], study: Any) -> Callable[[Any], Any]:
    """``objective``, whose trial that runs out of GPU memory (and :func:`may_retry_oom`) is queued again
    before its failure is written: a worker killed between the two writes (SIGKILL, the kernel's OOM killer),
    and its run with it, leaves the copy waiting for the next run rather than a failed trial nobody retries;
    killed in the copy's own write, the trial is left running, a lost worker's. ``study.requeue``'s claim
    keeps it to one copy (the lost-worker copy of that trial is the same). A storage that refuses the copy
    leaves the out-of-memory error to be recorded as it is, and the copy to the after-trial hooks (their
    worker retires, or dies: its parent queues it)."""

    @functools.wraps(objective)
    def run(trial: Any) -> Any:
        try:
            return objective(trial)
        except Exception as exc:
            if is_oom_error(describe_exception(exc)) and may_retry_oom(trial.record):
                try:
                    n = study.requeue(trial.number, oom=True)
                except StorageError as error:  # recorded in place of the out-of-memory error, it lost the retry
                    logger.warning("trial %d ran out of GPU memory; its copy is queued once its failure is "
                                   "written (the storage refused it now: %s)", trial.number, error)
                else:
                    if n is not None:  # else queued already (its lost-worker copy)
                        logger.warning("trial %d ran out of GPU memory; re-queued as %d", trial.number, n)
            raise

    return run


def apply_env(env: Mapping[str, str]) -> None:
    """Set a worker's environment; limit torch's threads if torch is loaded."""
    os.environ.update(env)
    import sys

    threads = _threads(env.get("OMP_NUM_THREADS", ""))
    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _threads(value: str) -> int | None:
    """The thread count of an ``OMP_NUM_THREADS`` value: its first number (OpenMP also takes a
    list per nesting level, ``4,2``); None for one that is not a positive number (``""``,
    ``auto``, ``0``, ``²``), which ended every worker at its start with int()'s ValueError."""
    first = as_count(value.split(",", 1)[0].strip())
    return first if first is not None and 0 < first < 1 << 16 else None


# -- which devices exist ------------------------------------------------------------------------


def parse_nvidia_smi(listing: str) -> set[str]:
    """Device ids in the output of ``nvidia-smi -L``: each GPU's index and UUID, and MIG UUIDs."""
    ids = {m.group(1) for m in re.finditer(r"^GPU (\d+):", listing, re.MULTILINE)}
    return ids | set(re.findall(r"UUID: ([^)\s]+)", listing))


def present_gpus() -> set[str]:
    """Ids of this machine's NVIDIA GPUs (indices and UUIDs); empty without a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is not None:
        try:
            out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            return parse_nvidia_smi(out.stdout)
    return {m.group(1) for m in (re.fullmatch(r"nvidia(\d+)", n) for n in _dev_entries()) if m}


def _dev_entries() -> list[str]:
    try:
        return os.listdir("/dev")
    except OSError:
        return []


def _listed(ids: Sequence[str]) -> str:
    """Device ids as a study file writes them: ``[0, 1]``, not ``['0', '1']``."""
    return "[" + ", ".join(ids) + "]"


def check_gpus_present(gpus: Sequence[str], *, allow_missing: bool = False) -> None:
    """Refuse device ids this machine does not have, unless ``allow_missing``: the
    trials would silently run on the CPU (``CUDA_VISIBLE_DEVICES`` naming no device)."""
    if allow_missing:
        return
    present = present_gpus()
    missing = [g for g in gpus if g not in present]
    if missing:
        have = f"it has {_listed(sorted(present, key=lambda x: (len(x), x)))}" if present else "it has no NVIDIA GPU"
        raise ValueError(
            f"gpus={_listed(gpus)}: this machine has no GPU {_listed(missing)} ({have}, per nvidia-smi), so the trials "
            "would run on the CPU; name devices it has, leave gpus out to run on the CPU, or pass "
            "allow_missing_gpus=True (in a study file, allow_missing_gpus: true) to run anyway"
        )
