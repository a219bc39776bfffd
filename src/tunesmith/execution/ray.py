"""Ray executor: trials run in long-lived Ray actors on a local instance or a cluster.

Each actor is one concurrent trial slot with the per-trial resources (CPUs,
GPUs or a fraction of one, custom resources). The study's record stays in
tunesmith's storage:

* SQL storage: each actor opens the study by URL and loops ask, evaluate,
  tell itself; the driver only hands out the budget, one trial per call,
  two calls in flight per actor so an actor never waits for the driver.
* In-memory storage: the driver asks and tells; actors only evaluate and
  send back the value, the reports and the attributes.

An actor that dies (its process killed, its node lost) has its running trial
failed (re-queued if the study re-queues lost trials) and is replaced. An
actor whose trial ran out of GPU memory retires, so its device carries one
trial fewer; the trial is queued again.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import math
import os
import re
import secrets
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import SearchExhausted, StorageError, UntrustedPathError, WorkersLost, interrupted
from ..paths import kind_of, others_may_change, own_group, refuse_foreign_link
from ..storage import MemoryStorage
from ..storage.base import local_pid, process_runs, worker_gone
from ..study.lifecycle import held_promotions
from ..study.trial import say_no_pruner
from ..trial import FrozenTrial, TrialState
from .base import Executor, Job
from .callbacks import Callbacks
from .local import STOPS, _held, fail_stopped, left_running, said_stopped
from .loop import Budget, units_back
from .process import check_trial_timeout
from .ray_worker import (
    NOTE_PREFIX,
    NOTES,
    EvalWorker,
    Outcome,
    StudySpec,
    StudyWorker,
    apply_outcome,
    fail_or_unqueue,
    note_job,
    note_key_for,
    retry_if_oom,
    uncaught_error,
)

logger = logging.getLogger("tunesmith")

IN_FLIGHT = 2  # calls queued per actor: one running, one waiting (one only with callbacks, see _Driver)
MAX_REPLACEMENTS = 20
INTERRUPT_GRACE = 5.0  # seconds Ctrl-C waits for the stopped actors' calls to end
#: seconds without a node that has the resources of one trial before the cluster counts as lost
LOST_AFTER = 60.0
#: seconds an actor may wait to start, while the cluster's nodes could hold it, before a warning says what holds its resources
START_WARN_AFTER = 30.0
#: seconds optimize, as it ends, gives an actor still starting to come up before it kills it (see _Driver._stop_actors)
START_GRACE = 30.0  # a worker took over 10 s to start on a loaded 2-core machine
#: seconds optimize, as it ends, waits for the processes of the actors it killed to end (their resources come back then)
EXIT_WAIT = 15.0
#: seconds before Ray's own end of a driver whose head node (GCS) it cannot reach (Ray's
#: ``gcs_rpc_server_reconnect_timeout_s``, 60 by default) that optimize gives up on it: the time it takes to end
#: cleanly (``ray.shutdown`` took 7.7 s on a loaded 2-core machine) and to fail the running trials
GCS_MARGIN = 30.0
#: the variable of Ray's own limit, in seconds, on a head node it cannot reach
RAY_GCS_LIMIT = "RAY_gcs_rpc_server_reconnect_timeout_s"


def ended_line(ended: Sequence[FrozenTrial], finished: int = 0) -> str:
    """What became of the running trials of lost actors (``ended``, as :meth:`_Driver._lost` returns them), as
    the user reads it: those failed, those held to go on from a checkpoint (not failed), and ``finished``
    trials whose result came back just before (recorded as they ended)."""
    failed = sum(t.state is TrialState.FAILED for t in ended)
    held = len(ended) - failed
    return (f"{failed} running trial(s) failed" + (f", {held} paused to go on from a checkpoint" if held else "")
            + (f", {finished} that had just ended recorded with their results" if finished else ""))


class ClusterLost(WorkersLost):
    """The Ray cluster can no longer run a trial: no node has had the resources for one
    for ``lost_after`` seconds (its nodes died, or it cannot be reached)."""


class ActorsNotStarted(WorkersLost):
    """No actor of optimize's could start for ``start_timeout`` seconds, though the cluster's
    nodes could hold one: other work holds the resources its trials need."""


#: the oldest Ray the executor is tested with (the ``ray`` extra asks for it): Ray 2.9 imports ``pkg_resources``,
#: which setuptools 81 and later do not have, so its dashboard failed to start and its node had no CPUs; from 2.10
#: to 2.48 the driver's ``ray.get`` raised "Broken pipe" (RaySystemError, OSError) once the only node was lost,
#: which ended optimize there rather than failing the running trials as lost (``ClusterLost``)
MIN_RAY = (2, 49)


def import_ray() -> Any:
    ray_gcs_limit()  # (before Ray is imported: Ray reads it as it loads, and ends the process on a malformed one)
    try:
        import ray
    except ImportError:
        raise ImportError(
            "executor='ray' needs Ray: pip install 'tunesmith[ray]'"
        ) from None
    version = getattr(ray, "__version__", "0")
    found = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])
    if found < MIN_RAY:
        raise ImportError(
            f"executor='ray' needs Ray >= {'.'.join(map(str, MIN_RAY))}, found Ray {version}: "
            "pip install -U 'tunesmith[ray]' (every node of the cluster needs the same Ray)")
    return ray


#: how Ray (``num_cpus``, ``num_gpus``) and its placement groups (``CPU``, ``GPU``) name what tunesmith calls cpu and gpu
ALIASES = {"CPU": "cpu", "num_cpus": "cpu", "GPU": "gpu", "num_gpus": "gpu"}


def check_resources(resources: Mapping[str, Any] | None, trials_per_gpu: int | None) -> dict[str, float]:
    """Per-trial resources as Ray options: ``{"cpu": 1, "gpu": 0.25, "custom": 1}``."""
    res: dict[str, Any] = {}
    for k, v in (resources or {}).items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not math.isfinite(v):
            raise ValueError(f"resources_per_trial[{k!r}] must be a number >= 0, got {v!r}")
        name = ALIASES.get(k, k)
        if name == "object_store_memory":
            raise ValueError("resources_per_trial['object_store_memory'] cannot be reserved per trial in Ray; "
                             "leave it out ('memory' reserves bytes of a node's memory)")
        if name in res:
            raise ValueError(f"resources_per_trial names {name!r} twice ({k!r} is another name for it): give it once")
        res[name] = v
    if trials_per_gpu is not None:
        if isinstance(trials_per_gpu, bool) or not isinstance(trials_per_gpu, int) or trials_per_gpu < 1:
            raise ValueError(f"trials_per_gpu must be an integer >= 1, got {trials_per_gpu!r}")
        if res.get("gpu"):
            raise ValueError("give either resources_per_trial['gpu'] or trials_per_gpu, not both")
        res["gpu"] = 1.0 / trials_per_gpu
    gpu = float(res.get("gpu", 0.0))
    if gpu > 1 and gpu != int(gpu):
        raise ValueError(f"resources_per_trial['gpu'] above 1 must be whole GPUs, got {gpu}")
    res.setdefault("cpu", 1.0)
    return {k: float(v) for k, v in res.items()}


def _ray_name(key: str) -> str:
    return {"cpu": "CPU", "gpu": "GPU"}.get(key, key)


def fit_workers(nodes: Mapping[str, float] | Sequence[Mapping[str, float]], need: Mapping[str, float]) -> int:
    """How many trials of ``need`` the cluster's nodes (each node's resources; one mapping:
    a single node) hold at once: an actor runs on one node, so a trial needing 3 CPUs
    never starts on two nodes of 2."""
    nodes = [nodes] if isinstance(nodes, Mapping) else list(nodes)
    needed = {_ray_name(k): v for k, v in need.items() if v > 0}
    if not needed:
        return 1
    n = sum(min(int(node.get(k, 0.0) / v + 1e-9) for k, v in needed.items()) for node in nodes)
    if n < 1:
        most = {k: max((x.get(k, 0.0) for x in nodes), default=0.0) for k in needed}
        short = [f"{k} {v:g} per trial, the largest node has {most[k]:g}" for k, v in needed.items()
                 if v > most[k] + 1e-9] or [f"{k} {v:g} per trial" for k, v in needed.items()]
        raise ValueError(
            f"no node of the Ray cluster can run one trial needing {dict(need)} ({'; '.join(short)}): "
            "lower resources_per_trial, or add a node that has them (custom resources: "
            "ray start --resources='{\"NAME\": 1}')")
    return n


@dataclass
class _Actor:
    handle: Any
    who: Any = None  # ref to the actor's host:pid (answered first, kept if it dies)
    worker: str = ""
    calls: dict[Any, list[int]] = field(default_factory=dict)  # ref -> trial numbers (memory mode)
    since: float | None = None  # when its current call started (None: not up yet)
    up: bool = False  # it has started (got its resources): only then does it get trials
    spawned: float = field(default_factory=time.monotonic)  # when it was asked for
    warned: bool = False  # a warning said it waits long to start
    done: set[int] = field(default_factory=set)  # SQL mode: the trials whose outcome came back


class RayExecutor(Executor):
    """Run trials as Ray actors.

    Args:
        address: an existing cluster's address (``"10.0.0.5:6379"``,
            ``"ray://..."``); None: the cluster ``RAY_ADDRESS`` names, else a
            private local instance (never joins another one by chance), unless
            Ray is already initialized.
        n_workers: concurrent trials; None: as many as the cluster's
            resources fit (capped by the number of trials).
        resources_per_trial: ``{"cpu": 1, "gpu": 0.25, ...}``.
        trials_per_gpu: shorthand for ``gpu = 1 / trials_per_gpu``.
        ray_init: more keyword arguments for ``ray.init``.
        lost_after: seconds without a node that can run a trial (the cluster's
            nodes died, or it cannot be reached) after which the running trials
            are failed and :class:`ClusterLost` is raised.
        trial_timeout: seconds a trial may run; then its actor is killed, the
            trial failed with the reason (never re-queued) and the actor replaced.
        start_timeout: seconds optimize waits with no actor started while the
            cluster's nodes could hold one (other work holds the resources a trial
            needs) before it raises :class:`ActorsNotStarted`; None: it waits, and
            says what holds the resources after ``START_WARN_AFTER`` seconds.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        resources_per_trial: Mapping[str, Any] | None = None,
        trials_per_gpu: int | None = None,
        ray_init: Mapping[str, Any] | None = None,
        trial_timeout: float | None = None,
        lost_after: float = LOST_AFTER,
        start_timeout: float | None = None,
    ) -> None:
        check_address(address, "address")
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"n_workers must be a positive integer or None, got {n_workers!r}")
        self.address = address
        self.n_workers = n_workers
        self.resources = check_resources(resources_per_trial, trials_per_gpu)
        self.ray_init = dict(ray_init or {})
        self.trial_timeout = check_trial_timeout(trial_timeout)
        try:  # None is no limit for the others, not for this one
            lost = check_trial_timeout(lost_after, "lost_after")
        except ValueError:
            lost = None
        if lost is None:  # it said "trial_timeout must be ..." for lost_after="x"
            raise ValueError(f"lost_after must be a positive number of seconds, got {lost_after!r}")
        self.lost_after = lost
        self.start_timeout = check_trial_timeout(start_timeout, "start_timeout")

    # -- connection ------------------------------------------------------------------
    def _connect(self, ray: Any) -> tuple[bool, bool]:
        """Initialize Ray if needed: whether this call started it (and must stop it), and whether what
        it started is a private instance (that stopping it ends), not a connection to a cluster."""
        if ray.is_initialized():
            if self.address is not None:
                check_same_cluster(self.address, ray.get_runtime_context().gcs_address)
            if self.ray_init:
                logger.warning("ray_init %s ignored: Ray is already initialized in this process (ray.init was "
                               "called before); call ray.shutdown() first for these to apply", sorted(self.ray_init))
            return False, False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, **self.ray_init}
        address = self.address or env_address()
        if address:
            check_reachable(address)
            check_token(address)
        host = (address or "127.0.0.1").split("://")[-1].rsplit(":", 1)[0]
        if host.startswith("127."):  # a cluster on loopback: keep this driver on it too
            kwargs.setdefault("_node_ip_address", host)
        if not address:
            keep_token_private()
        ray.init(address=address or "local", **kwargs)
        return True, not address

    def _options(self) -> dict[str, Any]:
        res = dict(self.resources)
        opts: dict[str, Any] = {"num_cpus": res.pop("cpu"), "num_gpus": res.pop("gpu", 0.0), "max_restarts": 0}
        if "memory" in res:  # bytes of the node's memory: Ray takes it as an option, not a resource
            opts["memory"] = res.pop("memory")
        if res:
            opts["resources"] = res
        return opts

    # -- running ---------------------------------------------------------------------------
    def run(self, job: Job) -> str | None:
        ray = import_ray()
        started, private = self._connect(ray)
        try:
            return _Driver(ray, self, job, instance_ends=private).run()
        finally:
            if started:
                ray.shutdown()


def check_address(address: Any, name: str) -> None:
    """A ValueError naming ``name`` (the argument, flag or key that gave it) and the forms a cluster
    address takes, for an ``address`` Ray cannot use (Ray said only "Invalid address format: x")."""
    if address is None or is_cluster_address(address):
        return
    auto = "; 'auto' is refused because it can join any instance" if address == "auto" else ""
    raise ValueError(
        f"{name} must be a Ray cluster's address: HOST:PORT of its head node (e.g. '10.0.0.5:6379'; "
        f"`ray start --head` prints it) or 'ray://HOST:PORT' (Ray Client), got {address!r}{auto}; "
        "leave it out to start a private instance on this machine")


def is_cluster_address(address: Any) -> bool:
    """HOST:PORT (a port from 1 to 65535), ``ray://HOST:PORT``, or another ``SCHEME://...`` (left to Ray)."""
    if not isinstance(address, str):
        return False
    scheme, sep, rest = address.partition("://")
    if sep and scheme != "ray":
        return scheme.isidentifier() and bool(rest)
    host, _, port = (rest if sep else address).rpartition(":")
    return bool(host) and not any(c.isspace() for c in host) and _is_port(port)


def _is_port(text: str) -> bool:
    """1 to 65535 in ASCII digits ('²' passed isdigit and then failed int(); '６３７９' reached Ray)."""
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def check_same_cluster(asked: str, running: str) -> None:
    """A ValueError naming both addresses when Ray, already initialized in this process, is connected
    to another cluster than ``ray_address`` asks for (the running instance was used silently)."""
    def split(address: str) -> tuple[str, str]:
        host, _, port = address.split("://")[-1].rpartition(":")
        try:
            host = socket.gethostbyname(host.strip("[]"))
        except OSError:
            pass
        return host, port

    (a_host, a_port), (r_host, r_port) = split(asked), split(running)
    client = asked.startswith("ray://")  # the Ray client's port is not the cluster's GCS port
    if a_host != r_host or (not client and a_port != r_port):
        raise ValueError(
            f"ray_address={asked!r}, but Ray is already initialized in this process and connected to "
            f"{running!r}: call ray.shutdown() first to use {asked!r}, or pass ray_address=None to run "
            f"on the instance already connected")


def env_address() -> str | None:
    """The cluster RAY_ADDRESS names (``ray job submit`` sets it for the script it runs), or None."""
    address = os.environ.get("RAY_ADDRESS") or None
    if address in ("auto", "local"):
        raise ValueError(
            f"RAY_ADDRESS={address!r}: tunesmith needs the cluster's HOST:PORT there (or pass ray_address=); "
            "unset RAY_ADDRESS to start a private instance")
    check_address(address, "RAY_ADDRESS")
    if address:
        logger.info("Ray cluster from RAY_ADDRESS: %s", address)
    return address


def keep_token_private() -> None:
    """Before a private instance starts. Ray turns token authentication on for it and, when the user
    has no token, writes one to ``~/.ray/auth_token`` with the umask's mode (0644 in a 0755 folder):
    another user of the machine who read it could connect to the instance on 127.0.0.1 and run code
    as this user. The token is written here first, 0600 (its folder, when new, 0700), as Ray would
    write it; a token of this user's that others may read is made 0600, said. A token another user
    chose (a file or link of theirs, one others may write, or one in a folder others may change: a
    home in a shared folder) is refused: its token is theirs, and with it the instance."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN") \
            or not hasattr(os, "getuid"):
        return
    custom = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(custom) if custom else Path.home() / ".ray" / "auth_token"
    if not custom:
        _sweep_token_drafts(path)
    if not custom and not os.path.lexists(path):
        _write_token(path)  # then checked as any other: another process starting Ray may have written it first
    elif not custom and path.is_symlink() and not path.exists():
        _write_through_link(path)
    try:
        st = path.stat()
    except FileNotFoundError:  # none (Ray writes one), or a link to nothing, which Ray would write through
        if path.is_symlink():
            refuse_foreign_link(path, path.lstat(), "Ray's token", _TOKEN_FIX)
            _check_mine(path.parent.resolve(), "the folder of Ray's token")
        return
    except OSError:
        return
    _take_token(path, st, custom=bool(custom))


def _write_through_link(path: Path) -> None:
    """A new token where ``path``, a link to nothing, points (Ray writes its own through the link, with the
    umask's mode), when the link is this user's and the folder it points into exists and is this user's
    alone; nothing where that folder is missing (Ray's to say)."""
    refuse_foreign_link(path, path.lstat(), "Ray's token", _TOKEN_FIX)
    target = Path(os.path.realpath(path))
    if target.parent.is_dir():
        _check_mine(path.parent.resolve(), "the folder of Ray's token")
        _write_token(target)


def _take_token(path: Path, st: os.stat_result, *, custom: bool) -> None:
    """Ray's token at ``path`` (``st``: its stat) made 0600 where others may read it; refused where it is no
    file, or another user may have chosen it or know it (root's, readable by others: not this user's to change)."""
    if not stat.S_ISREG(st.st_mode):  # RAY_AUTH_TOKEN_PATH=~/.ray: the folder was made 0700, "made it 0600"
        fix = ("point RAY_AUTH_TOKEN_PATH at the token file itself (as ~/.ray/auth_token), or unset it" if custom
               else "move it away")
        raise ValueError(f"Ray's token {path} is {kind_of(st.st_mode)}, not a file: Ray reads the token from a "
                         f"file; {fix} for tunesmith to write one only you can read")
    _check_token_owned(path)
    if st.st_uid != os.getuid():  # root's (as `sudo` leaves one in a home): not this user's to make 0600
        if st.st_mode & stat.S_IROTH or st.st_mode & stat.S_IRGRP and not own_group(st.st_gid):
            raise UntrustedPathError(f"Ray's token {path} is root's and can be read by other users (mode "
                                  f"{stat.S_IMODE(st.st_mode):o}), so they know the token with which a private "
                                  f"Ray instance of yours lets code in; {_TOKEN_FIX}")
        return
    if st.st_mode & 0o077:
        path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
        logger.warning("Ray's token %s could be read by other users (mode %o), and with it they could run code "
                       "through your Ray instances: made it 0600", path, stat.S_IMODE(st.st_mode))


#: what a refused token's message ends with
_TOKEN_FIX = ("remove it and start again (tunesmith writes a new token only you can read), or point "
              "RAY_AUTH_TOKEN_PATH at a token file of your own in a folder only you can change")


def _check_token_owned(path: Path) -> None:
    """An UntrustedPathError (a PermissionError) where Ray's token at ``path`` may be another user's choice: the file, a link to it
    or its folder is theirs (root aside), or others may write the file or change the folder (replace the
    file), so they may know the token that a new private instance would let in."""
    refuse_foreign_link(path, path.lstat(), "Ray's token", _TOKEN_FIX)
    _check_mine(path.resolve(), "Ray's token")
    for folder in dict.fromkeys((path.parent.resolve(), path.resolve().parent)):  # a link's own, and its file's
        _check_mine(folder, "the folder of Ray's token")


def _check_mine(where: Path, what: str) -> None:
    """An UntrustedPathError (a PermissionError) where ``where`` is another user's (root aside) or others may write it."""
    why = others_may_change(where.stat())
    if why is not None:
        raise UntrustedPathError(f"{what} {where} {why}, so they may know the token with which a private Ray "
                              f"instance of yours lets code in; {_TOKEN_FIX}")


def _write_token(path: Path) -> None:
    """A new token at ``path``, there whole or not at all: written to a private file beside it, then linked
    in place, which fails where another process starting Ray wrote one meanwhile (created, then written, a
    process starting at the same moment could read it empty). Nothing where the home is not writable: Ray's
    to say."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:  # a home not writable: Ray's to say
        return
    _check_mine(path.parent.resolve(), "the folder of Ray's token")  # one another user made first (a home in /tmp)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    except OSError:
        return
    token = secrets.token_hex(32)  # Ray's own kind of token: 256 bits as hex
    try:
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token)
        except OSError:  # a full disk: no token rather than one cut short; Ray's to say
            return
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process's, whole
            pass
        except OSError:  # a file system without hard links: created 0600, then written (Ray would write it 0644)
            _create_token(path, token)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


#: how old a draft of the token (``_write_token``'s temporary file) must be to be taken for one left by a killed
#: process: one being written is linked and removed within milliseconds
DRAFT_AGE_S = 60.0


def _sweep_token_drafts(path: Path) -> None:
    """Remove the drafts of the token at ``path`` that a process killed while writing it left (before its link:
    a token that never became one; after it: a second name of the token): this user's regular files,
    ``DRAFT_AGE_S`` old. Private (0600 in the token's folder) and never read, they were kept for good, one a kill."""
    with contextlib.suppress(OSError):
        for draft in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                st = draft.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and time.time() - st.st_mtime > DRAFT_AGE_S:
                    draft.unlink()


def _create_token(path: Path, token: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # written meanwhile by another process starting Ray: Ray's to say
        return
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token)
    except OSError:  # a full disk: the part written would be read as the token; Ray's to say
        with contextlib.suppress(OSError):
            os.unlink(path)


def start_hint(cause: str) -> str:
    """What to do about an actor that could not start: its storage (each actor opens the study's
    database itself, with its node's environment) or, else, the objective's module."""
    if f"{StorageError.__name__}:" in cause:
        return ("Each Ray worker opens the study's storage itself, with its node's environment: every node "
                "must reach the database and find its password (PGPASSWORD or ~/.pgpass where `ray start` "
                "ran on each node, or in the URL)")
    return ("The objective and its module must be importable on every node: install it there, ship it with "
            "ray_init={'runtime_env': {'py_modules': [mymodule]}} (where this process starts Ray), or define "
            "the objective in the driver script")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ConnectionError naming ``address`` and what to do when nothing listens there: Ray itself
    retried a wrong address for minutes, printing only its own connection warnings."""
    hostport = address.split("://")[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray understands and this does not check
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address!r}: {why}. Check the address (HOST:PORT of the head "
            f"node, `ray start --head` prints it) or start a cluster there; without an address tunesmith "
            "starts a private one on this machine") from None


def check_token(address: str, timeout: float = 5.0) -> None:
    """A ConnectionError in one line where the cluster at ``address`` (HOST:PORT of its GCS) refuses
    this process for its token: Ray retried for 20 s, printing a line of "InvalidAuthToken" each second,
    then said only "Failed to connect to Ray cluster". A cluster of `ray start` asks for a token where
    ``~/.ray/auth_token`` exists, but a driver given an address sends one only with RAY_AUTH_MODE=token
    (Ray does not send a user's token to an address on its own, nor does this)."""
    if address.startswith("ray://") or "://" in address:
        return  # Ray Client's server, or a form left to Ray
    try:
        import grpc
        from ray._private.authentication.grpc_authentication_client_interceptor import (
            _get_authentication_metadata_tuple,
        )
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # another Ray: its own errors
        return
    try:
        metadata = _get_authentication_metadata_tuple()
    except Exception:  # a token Ray cannot read: Ray's to say  # noqa: BLE001
        return
    with grpc.insecure_channel(address) as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), metadata=metadata, timeout=timeout)  # type: ignore[attr-defined]
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                return  # anything else is Ray's to say, as before
        else:
            return
    if metadata:
        raise ConnectionError(
            f"the Ray cluster at {address!r} refused this process's token: give the token of the cluster (the "
            "head node's ~/.ray/auth_token, or RAY_AUTH_TOKEN_PATH there) in ~/.ray/auth_token, "
            "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN here") from None
    raise ConnectionError(
        f"the Ray cluster at {address!r} asks for a token (`ray start` turns token authentication on where "
        "~/.ray/auth_token exists) and this process sends none: set RAY_AUTH_MODE=token here, with the "
        "cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN") from None


@dataclass(frozen=True)
class Holders:
    """optimize's own actors that may hold a trial's resources: those up, those still starting (Ray holds an
    actor's resources from when its worker process is leased, before it is up), and those it killed whose
    process on this machine still ends."""

    up: int = 0
    starting: int = 0
    ending: int = 0


def held_resources(need: Mapping[str, float], free: Mapping[str, Any], total: Mapping[str, Any], own: Holders) -> str:
    """Why an actor waits to start: what a trial needs, what the cluster has free and in all, and who holds the
    rest: optimize's own actors (``own``; starting ones take long on a loaded machine, and nothing is to be
    freed) or, beyond what they can hold, other work (and what to do then)."""
    now_free = {k: round(float(free.get(k, 0.0)), 6) for k in need}
    in_all = {k: round(float(total.get(k, 0.0)), 6) for k in need}
    said = f"a trial needs {need}, the cluster has {now_free} free of {in_all}"
    mine = [f"{n} {what}" for n, what in ((own.up, "up"), (own.starting, "still starting"),
                                          (own.ending, "killed, their processes still ending")) if n]
    said += f"; this optimize's actors: {', '.join(mine)}" if mine else ""
    # what its actors up or ending hold for sure; a starting one holds a trial's whole need (leased) or nothing
    rest = {k: in_all[k] - now_free[k] - (own.up + own.ending) * v for k, v in need.items()}
    leased = max(0, min([own.starting, *(math.floor(rest[k] / v + 1e-9) for k, v in need.items())]))
    other = {k: round(max(0.0, rest[k] - leased * v), 6) for k, v in need.items()}
    if need and not any(v > 1e-6 for v in other.values()):
        return (f"{said}. This optimize's own actors may hold all of it: Ray holds an actor's resources while its "
                "worker process starts (slow on a loaded machine) and a killed one's until its process has ended; "
                "they come back without anything to free (fewer n_jobs start fewer at once)")
    return (f"{said}. Other work on the cluster holds {other}: another driver's tasks or actors, or a Ray worker "
            "process left holding an actor's resources after Ray ignored its kill as it started (ray-project/ray#27743; "
            "`ray list actors` or `ray status` shows it). Free them (end that work; on an instance this process "
            "started, ray.shutdown() then start Ray again), or lower resources_per_trial")


def lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """What Ray raises for a call whose actor's process is gone: besides RayActorError, its memory
    monitor's OutOfMemoryError (which ended optimize, its trial left running), a crashed worker, a dead node."""
    ex = ray.exceptions
    return (ex.RayActorError, ex.OutOfMemoryError, ex.WorkerCrashedError, ex.NodeDiedError)


def lost_worker(exc: BaseException) -> str:
    """A lost actor's trial's error: Ray's error and its first line (for the memory monitor: what
    the node had used against its limit)."""
    return f"ray worker lost: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


def gcs_after(lost_after: float) -> float:
    """Seconds without the GCS that :class:`GcsWatch` counts its loss: ``lost_after``, at most :data:`GCS_MARGIN`
    seconds before Ray's own end (:func:`ray_gcs_limit`), and at most half of it where that is
    short: a blip Ray outlives (a GCS restarted) must not end a healthy study (a bound of 1 s under a short Ray
    limit ended it)."""
    ray_limit = ray_gcs_limit()
    return max(1.0, min(lost_after, max(ray_limit - GCS_MARGIN, ray_limit / 2)))


def ray_gcs_limit() -> float:
    """Ray's own limit on a lost head node, ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s unset), as Ray reads it
    (an unsigned 32-bit number: -1 is 2**32 - 1 s); a ValueError naming the variable and what it takes where Ray
    cannot read it: ``import ray`` ended the process with a segmentation fault, and no word of why, on an empty
    value, ``1.5``, ``"60 "`` or ``abc``."""
    text = os.environ.get(RAY_GCS_LIMIT)
    if text is None:
        return 60.0
    if not re.fullmatch(r"\s*[+-]?[0-9]+", text, re.ASCII):
        raise ValueError(f"{RAY_GCS_LIMIT}={text!r}: Ray's limit on a lost head node must be a whole number of "
                         f"seconds, such as 60 (Ray's default), with no space after it (Ray cannot load with another "
                         f"value: importing it ends the process); set it so, or unset it")
    seconds = int(text)
    return float(seconds % 2**32 if seconds < 0 else min(seconds, 2**32 - 1))  # (as C++ reads an unsigned int)


class GcsWatch:
    """Beside the driver's loop: looks at the head node's GCS port twice a second. Where nothing listens there for
    ``lost_after`` seconds (at most :data:`GCS_MARGIN` seconds before Ray ends the process itself) it sets
    :attr:`lost`, which the driver's loop reads, and where ``interrupts`` it interrupts the main thread too, as a
    Ctrl-C would (the driver may wait inside Ray). Ray's own calls cannot say it in time: they wait on the GCS until
    Ray ends the process itself (``RAY_gcs_rpc_server_reconnect_timeout_s``, 60 s by default)."""

    def __init__(self, address: tuple[str, int] | None, after: float, interrupts: bool = False) -> None:
        self.address, self.after, self.interrupts = address, after, interrupts
        self.lost: str | None = None
        self.down = False  # nothing listened there when last looked at: a Ray call that needs the GCS would wait
        self.lock = threading.Lock()
        self.done = threading.Event()

    @classmethod
    def start(cls, ray: Any, lost_after: float) -> GcsWatch:
        """A watch of the GCS ``ray`` is connected to, started; one that watches nothing where its address is not
        HOST:PORT (Ray Client)."""
        try:
            host, _, port = str(ray.get_runtime_context().gcs_address).rpartition(":")
            address: tuple[str, int] | None = (host.strip("[]"), int(port)) if host and port.isdigit() else None
        except Exception:  # noqa: BLE001 - a Ray Client, or another Ray
            address = None
        return cls.watching(address, gcs_after(lost_after))

    @classmethod
    def watching(cls, address: tuple[str, int] | None, after: float) -> GcsWatch:
        """A watch of ``address``, started. It interrupts only an optimize that runs on the main thread with
        Python's own SIGINT handler: another thread's (a web server's, a notebook's pool) would hit the main thread,
        which runs something else, and a handler of the user's (a server's graceful stop) would take it for a
        Ctrl-C. Elsewhere the driver's loop, which waits at most a second at a time, reads :attr:`lost`."""
        interrupts = threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        watch = cls(address, after, interrupts)
        if address is not None:
            threading.Thread(target=watch._run, name="tunesmith-gcs-watch", daemon=True).start()
        return watch

    def _run(self) -> None:
        down_since: float | None = None
        while not self.done.wait(0.5):  # (a Ray call made before it says the GCS is down waits on it)
            assert self.address is not None
            try:
                socket.create_connection(self.address, timeout=1.0).close()
                down_since, self.down = None, False
                continue
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
            self.down = True
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since >= self.after:
                with self.lock:
                    if not self.done.is_set():
                        self.lost = (f"the Ray cluster is lost: its head node (GCS at {self.address[0]}:"
                                     f"{self.address[1]}) did not answer for {self.after:g} s ({why})")
                        if self.interrupts:
                            _thread.interrupt_main()
                return

    def stop(self) -> None:
        with self.lock:
            self.done.set()


def _gcs_client() -> Any | None:
    """The driver's own client of the head node's GCS, whose calls take a timeout; None under Ray Client (its calls
    go through the client's server). Ray's other calls (``ray.nodes()``, ``jobs()``, the key-value store's) wait on
    a lost GCS until Ray ends the process, with no exception: a call made as the head node died, or made once it
    was gone, ended the driver at Ray's own limit, whatever :class:`GcsWatch` found."""
    from ray.experimental import internal_kv

    return internal_kv.internal_kv_get_gcs_client() if internal_kv._internal_kv_initialized() else None


def _read_key(key: str) -> bytes | None:
    """The value of ``key`` in the actors' namespace of Ray's key-value store, waiting at most a second where the
    GCS can be reached directly (:func:`_gcs_client`)."""
    client = _gcs_client()
    if client is None:
        from ray.experimental import internal_kv

        return internal_kv._internal_kv_get(key, namespace=NOTES)
    return client.internal_kv_get(key.encode(), NOTES.encode(), timeout=1.0)


def _job_id(ray: Any) -> str:
    """This driver's Ray job id in hex ("" where Ray cannot say: its notes' keys then name no job)."""
    try:
        return str(ray.get_runtime_context().get_job_id())
    except Exception:  # noqa: BLE001 - a Ray Client or another Ray that does not say
        return ""


#: the Ray jobs (cluster, job: a new cluster numbers its jobs from 1 again) of no-pruner notes this process found
#: dead in the GCS's job table (for good), and those it found running (or not there) with when: looked up again
#: only :data:`JOBS_RECHECK` seconds later
_DEAD_JOBS: set[tuple[str, str]] = set()
_LIVE_JOBS: dict[tuple[str, str], float] = {}
JOBS_RECHECK = 300.0


def sweep_notes() -> int:
    """Delete the no-pruner notes (:func:`tell_driver`) of drivers that are gone: a driver killed before it deleted
    its key left it in the cluster's key-value store until the cluster stopped, one a kill. Only the keys whose
    job the GCS counts dead go, never a running driver's, nor a key that names no job; how many went. The job
    table is read only for a key whose job this process has not looked up in the last :data:`JOBS_RECHECK`
    seconds (each optimize call read it while any key was there: a running driver's, or one naming no job). Each
    GCS call waits at most a second. Never raises: a Ray that cannot list its keys or jobs (Ray Client) keeps them."""
    client = _gcs_client()
    if client is None:
        return 0
    try:
        keys = client.internal_kv_keys(NOTE_PREFIX.encode(), NOTES.encode(), timeout=1.0)
        cluster = str(client.cluster_id)
        jobs = {(cluster, job) for job in map(note_job, keys) if job is not None}
        now = time.monotonic()
        if any(now - _LIVE_JOBS.get(job, -math.inf) > JOBS_RECHECK for job in jobs - _DEAD_JOBS):
            table = client.get_all_job_info(timeout=1.0, skip_submission_job_info_field=True,
                                            skip_is_running_tasks_field=True)
            dead = {(cluster, job_id.hex()) for job_id, info in table.items() if info.is_dead}
            _DEAD_JOBS.update(jobs & dead)
            _LIVE_JOBS.update(dict.fromkeys(jobs - dead, now))
        gone = [k for k in keys if (cluster, note_job(k)) in _DEAD_JOBS]
        for key in gone:
            client.internal_kv_del(key, False, NOTES.encode(), timeout=1.0)
    except Exception as exc:  # noqa: BLE001 - kept for a later driver
        logger.debug("could not delete the notes of Ray drivers that are gone: %s", exc)
        return 0
    return len(gone)


class _Driver:
    """Hands out the budget to actors, collects records, replaces lost actors."""

    def __init__(self, ray: Any, ex: RayExecutor, job: Job, instance_ends: bool = False) -> None:
        self.ray = ray
        self.instance_ends = instance_ends  # a private instance this call started, stopped as it ends
        self.ex = ex
        self.job = job
        self.study = job.study
        self.memory = isinstance(self.study.storage, MemoryStorage)
        self.budget = Budget(job.n_trials, job.timeout)
        self.calls = Callbacks(job.study, job.callbacks, self.budget)
        self.actors: list[_Actor] = []
        self.killed: list[_Actor] = []  # actors replaced or retired (killed) during the run
        self.exhausted: str | None = None
        self.error: BaseException | None = None  # an exception the study does not catch, raised at the end
        self.replacements = 0
        self.index = 0
        self.checked = 0.0  # when the cluster's resources were last looked at
        self.starved_since: float | None = None  # since when no node can run a trial
        self.unstartable = False  # ActorsNotStarted was raised: the starting actors wait for resources held elsewhere
        self.interrupted = False  # Ctrl-C or SIGTERM: every actor is killed at once, as the user asked to stop
        self.unreachable = False  # the cluster could not be reached when last looked at (_watch_cluster)
        self.gcs_gone = False  # the head node's GCS cannot be reached (GcsWatch): no Ray call may wait on it
        self.watch = GcsWatch(None, 0.0)  # (started as run starts)
        # where actors note should_prune() without a pruner (None: none do)
        self.note_key = note_key_for(self.study, _job_id(ray))
        self.note_read = 0.0  # when it was last read
        before = [] if self.memory else self.study.trials
        # the trials of earlier calls, but for those waiting: this call may run them (they count in n_trials)
        self.first = min([t.number for t in before if t.state is TrialState.WAITING], default=len(before))
        # a callback may stop the study (study.stop(), or by raising): a call queued behind the running
        # one would start a trial after it, so with callbacks each actor holds one call at a time
        self.in_flight = 1 if job.callbacks else IN_FLIGHT

    def run(self) -> str | None:
        if self.memory and self.study.pruner.name != "none":
            logger.warning(
                "study %r: its pruner %r stops no trial under Ray with an in-memory study (the actors only "
                "evaluate: should_prune() is always False there). Use a SQL storage, storage='sqlite:///study.db', "
                "for pruning, or leave the pruner out", self.study.name, self.study.pruner.name)
        watch = self.watch = GcsWatch.start(self.ray, self.ex.lost_after)
        try:
            try:
                n = self._how_many()
                if not watch.down:
                    sweep_notes()
                for _ in range(n):  # a signal while they start stops those started too
                    self._spawn()
                self._loop()
                self._finish_promoted()
            finally:
                watch.stop()  # (its interrupt, if it came, is raised above: after this, none comes)
        except KeyboardInterrupt as exc:
            if watch.lost:  # not a Ctrl-C: the watch found the head node gone
                self._gcs_lost(watch.lost)
            self.interrupted = True  # stop now: no grace for actors still starting
            self.job.interrupted = interrupted(exc)
            with _held(STOPS):  # a second Ctrl-C or SIGTERM waits until the running trials are recorded
                self.budget.stop()
                failed, left = self._interrupt(interrupted(exc))
            said_stopped(failed > 0, left_running(failed, left, "actor"))
        except ClusterLost as exc:
            with _held(STOPS):  # a Ctrl-C waits until the trials are failed (it cut the wait for the actors short)
                self.budget.stop()
                error = f"ray cluster lost: {exc.args[0]}"
                finished = self._take_answered()  # in memory: a trial that ended keeps its result
                ended = [t for a in self.actors for t in self._lost(a, error)]
                ended += self._outlived(lambda a: self._lost(a, error))
            raise ClusterLost(f"{exc.args[0]}; {ended_line(ended, finished)}. {exc.args[1]}") from None
        except WorkersLost as exc:  # the other actors' trials would stay running for good
            self.budget.stop()
            self._interrupt(f"stopped: {str(exc).splitlines()[0][:200]}")
            raise
        finally:
            if not self.gcs_gone:  # every Ray call below waits on the GCS, until Ray ends the process
                try:
                    self._stop_actors()
                finally:
                    self._drop_note()  # after the kills: a trial that asked as it was stopped has noted it
        self.calls.raise_error(self.error)
        return self.exhausted

    def _how_many(self) -> int:
        """How many actors to start: ``n_workers``, at most as many as the cluster's nodes fit."""
        fit = fit_workers(self._first_nodes(), self.ex.resources)
        n = self.ex.n_workers or fit
        if n > fit:  # the actors beyond would wait for resources forever, holding their trials
            logger.warning("n_jobs=%d, but the Ray cluster's nodes fit %d trial(s) of %s at once: starting %d",
                           n, fit, self.ex.resources, fit)
            n = fit
        if self.job.n_trials is not None:
            n = max(1, min(n, self.job.n_trials))
        return n

    def _gcs_lost(self, why: str) -> None:
        """The head node's GCS cannot be reached (:class:`GcsWatch`): end with :class:`ClusterLost` before Ray ends
        this process (its own limit: no exception, nothing more recorded), making no Ray call that waits on the
        GCS: the answers that came back are taken, a private instance is stopped (its actors' processes with it),
        then the running trials are failed."""
        self.gcs_gone = self.unreachable = True  # (no read of the actors' note either)
        with _held(STOPS):
            self.budget.stop()
            error = f"ray cluster lost: {why}"
            finished = self._take_answered()
            if self.instance_ends:
                with contextlib.suppress(Exception):
                    self.ray.shutdown()
            ended = [t for a in self.actors for t in self._lost(a, error, wait=False)]
            ended += self._outlived(lambda a: self._lost(a, error, wait=False))
        raise ClusterLost(f"{why}; {ended_line(ended, finished)}. Restart the cluster (its head node) and call "
                          "optimize again: the study resumes where it stopped") from None

    def _stop_actors(self) -> None:
        """Kill every actor. One still starting is first given time to come up (its resources granted, a
        worker process taking it on), until :data:`START_GRACE` seconds after it was asked for: Ray
        ignores a kill that reaches the worker just before the actor does (ray-project/ray#27743), and
        the worker then becomes the actor anyway, holding its resources until Ray stops, so that a later
        optimize on the same instance whose actors need them waits for good. One asked for longer ago
        waits for resources held elsewhere (its kill is a cancelled request). No wait while no node can
        hold a trial, after :class:`ActorsNotStarted` (none will start), after Ctrl-C or SIGTERM (the user
        stops now), nor on a private instance this call started (it stops as the call ends, with every worker
        of it)."""
        starting = [a for a in self.actors if not a.up]
        try:
            for a in self.actors:
                if a.up:
                    self.ray.kill(a.handle)
            if self.starved_since is None and not (self.unstartable or self.instance_ends or self.interrupted):
                self._await_starting(starting)
        finally:
            for a in starting:
                self.ray.kill(a.handle)
        # not after Ctrl-C or SIGTERM (nor one that cut the grace above short: it propagates from there)
        if self.starved_since is None and not (self.instance_ends or self.interrupted):
            self._await_exits()

    def _await_exits(self) -> None:
        """Once the actors are killed: wait, up to :data:`EXIT_WAIT` seconds, for their processes on this machine
        to end. Ray's kill only asks; the resources of an actor come back once its process has ended, which every
        optimize returned before (about 0.1 s before, on a 2-core machine at load 22), so that a second optimize
        (or anything else on the same ``ray.init()``) started as this one returned found its CPUs held. Another machine's
        processes cannot be watched from here. No wait on a private instance this call started (it stops), while
        no node can hold a trial (a lost node's actors outlive their raylet, which no kill reaches), nor after
        Ctrl-C or SIGTERM (the user stops now). The wait is :data:`EXIT_WAIT` in all, however many actors."""
        pids = self._pids(self.actors + self.killed)
        end = time.monotonic() + EXIT_WAIT
        while any(map(process_runs, pids)) and time.monotonic() < end:
            time.sleep(0.05)  # Ctrl-C works meanwhile
        left = [pid for pid in pids if process_runs(pid)]
        if left:
            logger.info("%d killed Ray actor process(es) still ran %g s after optimize stopped them (pids %s): "
                        "their resources come back once they end", len(left), EXIT_WAIT, left)

    def _pids(self, actors: list[_Actor]) -> list[int]:
        """The pids of ``actors``' processes on this machine (of those that said who they are)."""
        return [pid for pid in map(local_pid, map(self._worker_of, actors)) if pid]

    def _worker_of(self, actor: _Actor) -> str:
        """``host:pid`` of ``actor``'s process; "" where it never said (it never started, or died first)."""
        if not actor.worker:
            try:
                actor.worker = self.ray.get(actor.who, timeout=0)
            except Exception:  # noqa: BLE001 - not up, or gone before it answered
                return ""
        return actor.worker

    def _await_starting(self, starting: list[_Actor]) -> None:
        """Wait, a second at a time (Ctrl-C stops it), until each of ``starting`` is up or
        :data:`START_GRACE` seconds old."""
        until = {a.who: a.spawned + START_GRACE for a in starting}
        pending = [who for who, end in until.items() if end > time.monotonic()]
        if pending:
            logger.info("waiting up to %.0f s for %d Ray actor(s) still starting before stopping them (Ray may "
                        "leak the worker of an actor killed as it starts; Ctrl-C stops waiting)",
                        max(until[w] for w in pending) - time.monotonic(), len(pending))
        with contextlib.suppress(Exception):  # the cluster is gone: the kills after say nothing more
            while pending:
                now = time.monotonic()
                pending = [w for w in pending if until[w] > now]
                if pending:
                    timeout = min(1.0, max(until[w] for w in pending) - now)
                    pending = self.ray.wait(pending, num_returns=len(pending), timeout=timeout)[1]

    def _nodes(self) -> list[dict[str, float]]:
        """The resources of each live node of the cluster, asked for at most a second (Ray's RpcError past it) where
        the GCS's own client can be asked (:func:`_gcs_client`)."""
        client = _gcs_client()
        if client is None:
            return [dict(node["Resources"]) for node in self.ray.nodes() if node.get("Alive")]
        return [dict(node.resources_total) for node in client.get_all_node_info(timeout=1.0).values()
                if node.state == node.ALIVE]

    def _first_nodes(self) -> list[dict[str, float]]:
        """:meth:`_nodes` as optimize starts, asked again until the GCS answers or :class:`GcsWatch` counts it lost
        (a head node lost before optimize, or as it starts: the call waited until Ray ended the process). Another
        error, or one that goes on past the watch's bound while the GCS's port answers, is raised."""
        end = time.monotonic() + self.watch.after + 5.0
        while True:
            try:
                return self._nodes()
            except self.ray.exceptions.RpcError:
                self._check_gcs()
                if time.monotonic() > end:
                    raise

    def _interrupt(self, error: str) -> tuple[int, int]:
        """Ctrl-C (or giving up on lost workers): stop every actor, then fail the trials
        it was running with ``error``; how many it failed, and of how many actors the trials stay
        running (the storage refused a write).

        The queued calls are cancelled and the actors killed first, and their trials
        failed once their calls have ended (at most :data:`INTERRUPT_GRACE` seconds):
        calls go to an actor directly, so one that outlives its node's raylet (or a
        kill that cannot reach it) may otherwise start its queued call after the
        sweep and leave that trial running."""
        self._take_answered()
        refs = [r for a in self.actors for r in a.calls]
        for ref in refs:
            with contextlib.suppress(Exception):  # already ended, or its actor is gone
                self.ray.cancel(ref)
        for a in self.actors:
            if a.up:  # one still starting holds no call: it is killed as run() ends (see _stop_actors)
                with contextlib.suppress(Exception):
                    self.ray.kill(a.handle)
        if refs:
            with contextlib.suppress(Exception):
                self.ray.wait(refs, num_returns=len(refs), timeout=INTERRUPT_GRACE)
        failed, left = fail_stopped(self.actors, lambda a: self._recorded_lost(a, error))
        if not left:
            failed += self._outlived(lambda a: self._recorded_lost(a, error) or [])
        return len(failed), len(left)

    def _outlived(self, fail: Callable[[_Actor], list[FrozenTrial]]) -> list[FrozenTrial]:
        """SQL mode, once the stopped actors' trials were failed (``fail``): an actor's process that
        outlived its node's raylet, or the kill, still runs the calls queued to it and claims a trial
        after that sweep. Wait for the actors' processes of this machine to end (at most
        :data:`INTERRUPT_GRACE` seconds), then fail what they left running. Another machine's cannot
        be watched from here: the study's heartbeat fails the trial its stray process left running."""
        here = [a for a in self.actors if not self.memory and local_pid(a.worker) is not None]
        end = time.monotonic() + INTERRUPT_GRACE
        while not all(worker_gone(a.worker) for a in here) and time.monotonic() < end:
            time.sleep(0.05)
        return [t for a in here for t in fail(a)]

    def _take_answered(self) -> int:
        """Before an interrupt or a lost cluster fails the actors' trials: take the answers that came back but
        were not collected yet; how many trials they recorded as ended (in memory). In memory the driver records
        an actor's trial: one that had ended was failed as interrupted (or as lost with the cluster), its value
        lost, and a stopped actor's late call's trial too, though it ran nothing."""
        taken = 0
        for ref in self._answered([r for a in self.actors for r in a.calls]):
            actor = self._owner(ref)
            try:
                out: Outcome = self.ray.get(ref)
            except Exception:  # noqa: BLE001 - lost with its actor: failed with the running ones
                continue
            del actor.calls[ref]
            self._heard(out)
            if out.late and out.sent is not None:
                self.study.unstart(out.sent.number)  # back to the queue, as after a timeout
            elif self.memory and not out.late:
                apply_outcome(self.study, out)
                taken += 1
        return taken

    def _recorded_lost(self, actor: _Actor, error: str) -> list[FrozenTrial] | None:
        """:meth:`_lost` of a stopped actor; None when the storage refused the write (said): its
        StorageError ended optimize there, the other actors' trials left running."""
        try:
            return self._lost(actor, error, requeue=False, dead=False)
        except StorageError as exc:
            logger.warning("could not mark the interrupted trial failed: %s", exc)
            return None

    def _spawn(self) -> None:
        cls = EvalWorker if self.memory else StudyWorker
        remote = self.ray.remote(cls).options(**self.ex._options())
        handle = remote.remote(StudySpec.of(self.study, self.note_key), self.job.objective, self.job.catch, self.index)
        self.index += 1
        self.actors.append(_Actor(handle, handle.whoami.remote()))  # its calls come once it is up

    def _start_up(self) -> None:
        """Give calls to the actors that have started, up to ``in_flight`` each. An actor waiting
        for resources (its node lost, the cluster full) holds no trial meanwhile, so it
        never keeps optimize waiting for trials that cannot run."""
        waiting = {a.who: a for a in self.actors if not a.up}
        if waiting:
            ready, _ = self.ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
            for ref in ready:
                waiting[ref].up, waiting[ref].since = True, time.monotonic()
        for actor in self.actors:
            while actor.up and len(actor.calls) < self.in_flight and self._submit(actor):
                pass

    def _wait_up(self) -> None:
        """Wait up to a second for an actor to start (watching for a lost cluster)."""
        if not self.ray.wait([a.who for a in self.actors if not a.up], num_returns=1, timeout=1.0)[0]:
            self._watch_cluster()
        self._start_up()

    def _may_take(self) -> bool:
        if self.budget.take():
            self.budget.give_back()
            return True
        return False

    def _submit(self, actor: _Actor) -> bool:
        """Queue one more trial on ``actor``; whether the budget allowed it."""
        if not self.budget.take():
            return False
        if self.memory:
            try:
                trial = self.study.ask()
            except SearchExhausted as exc:
                self.budget.give_back()
                self.budget.stop(exhausted=True)
                self.exhausted = str(exc)
                return False
            actor.calls[actor.handle.evaluate.remote(trial.record, self._deadline())] = [trial.number]
        else:
            actor.calls[actor.handle.run_one.remote(self._deadline())] = []
        return True

    def _deadline(self) -> float | None:
        """optimize's timeout as wall-clock time, for the actors (a call waits in an actor's queue)."""
        end = self.budget.deadline
        return None if end is None else time.time() + (end - time.monotonic())

    def _loop(self) -> None:
        while True:
            self._check_gcs()
            self._stop_overdue()
            self.calls.check_stop()
            self._start_up()
            refs = [r for a in self.actors for r in a.calls]
            starting = [a.who for a in self.actors if not a.up]
            if not refs and not (starting and self._may_take()):
                return
            ready, _ = self.ray.wait(refs + starting, num_returns=1, timeout=1.0)
            if self.job.poll is not None and not ready:
                self.job.poll()
            if not ready:
                self._watch_cluster()
            for ref in ready:
                if ref not in starting:
                    self._collect(ref)
            self._read_note()

    def _finish_promoted(self) -> None:
        """SQL mode, once no new trial may start: run the promotions the last trials
        earned, in rounds over the actors, and after an exhausted search the
        waiting trials within the budget (as ``worker_loop``)."""
        if self.memory:
            return
        while self.actors and self.budget.may_drain:
            self._loop()  # first what replaced actors took on
            up = [a for a in self.actors if a.up]
            if not up:  # only replacements that wait for resources: wait for one
                self._wait_up()
                continue
            # None: the actor died running it (its trial failed, or held; a new actor started)
            outs: list[Outcome | None] = []
            if self.study.pruner.pauses:
                calls = [(a, a.handle.run_only.remote("promoted")) for a in up]
                outs = [out for a, ref in calls
                        if (out := self._run_only(a, ref)) is None or out.record or out.lost or out.late]
            if not outs and up and self.budget.exhausted and self.budget.take(exhausted_ok=True):
                actor = up[0]
                waiting = self._run_only(actor, actor.handle.run_only.remote("waiting"))
                if waiting is not None and not (waiting.record or waiting.lost):
                    self.budget.give_back()  # none was waiting, or none ran (its actor outlived its raylet)
                    outs += [waiting] if waiting.late else []
                else:
                    outs.append(waiting)  # a trial that failed keeps its unit, as in the main loop
            records = [out.record for out in outs if out is not None and out.record is not None]
            for record in records:
                self.calls(record)
            held = self.study.pruner.pauses and held_promotions(self.study.trials)  # else none resumes
            # a trial failed meanwhile, or an actor that outlived its raylet ran nothing (replaced): look again
            lost = any(out is None or out.lost or out.late for out in outs)
            if self.error is not None or not (records or lost or held or any(a.calls for a in self.actors)):
                return

    def _run_only(self, actor: _Actor, ref: Any) -> Outcome | None:
        """The answer to one ``run_only`` call; None when the actor was lost (its
        trial is failed, or held if it was resumed from a checkpoint; a new actor). An actor
        that outlived its raylet answers ``late``, having run nothing: it is replaced."""
        while not self.ray.wait([ref], num_returns=1, timeout=1.0)[0]:  # Ctrl-C works meanwhile
            self._watch_cluster()
            self._read_note()
        try:
            out: Outcome = self.ray.get(ref)
        except lost_worker_errors(self.ray) as exc:
            self._replace(actor, lost_worker(exc))
            return None
        actor.worker = out.worker
        self._refunded(actor, out)
        if out.late:  # its raylet is gone (its node lost), it outliving it: it runs nothing more
            self._replace(actor, "its node's raylet is gone; the actor's process outlived it")
            return out
        if out.uncaught:  # no promotion starts after it; raised at the end
            self._uncaught(out.raised or uncaught_error(None if out.record is None else out.record.number, out.error))
        return out

    def _owner(self, ref: Any) -> _Actor:
        return next(a for a in self.actors if ref in a.calls)

    def _collect(self, ref: Any) -> None:
        actor = self._owner(ref)
        try:
            out: Outcome = self.ray.get(ref)
        except lost_worker_errors(self.ray) as exc:
            if getattr(exc, "actor_init_failed", False):
                self._unstart_all()
                cause = [line.strip() for line in str(exc).splitlines() if line.strip()][-1]
                raise WorkersLost(f"a tunesmith worker could not start in Ray: {cause}. {start_hint(cause)}") from None
            self._replace(actor, lost_worker(exc))
            return
        except self.ray.exceptions.RayTaskError as exc:  # tunesmith's own code failed in the actor: raised at the end
            del actor.calls[ref]
            raised = getattr(exc, "cause", None)
            self._uncaught(raised if isinstance(raised, BaseException) else exc)
            return
        del actor.calls[ref]
        record = self._take(actor, out)
        if out.late:
            return
        if record is not None and retry_if_oom(self.study, record) and len(self.actors) > 1:
            self._retire(actor)
            return
        self._submit(actor)

    def _heard(self, out: Outcome) -> None:
        """Say the no-pruner warning where ``out`` notes its objective asked ``should_prune()`` without a
        pruner: once per study object, as inline (no other answer, nor a later optimize, says it again). The
        driver says it, not the actor: one lost after saying it, before its answer came back, had another say
        it again, and one named to say it that ran no such trial left it unsaid."""
        if out.asked_no_pruner:
            self._say_no_pruner()

    def _say_no_pruner(self) -> None:
        if not self.study._said_no_pruner:
            self.study._said_no_pruner = True
            say_no_pruner(self.study.name)

    def _read_note(self, *, last: bool = False) -> None:
        """Say the no-pruner warning where an actor noted in Ray's key-value store that its objective asked
        ``should_prune()`` without a pruner (:func:`tell_driver`): read once a second while optimize runs and
        as it ends (``last``), so that a trial that never answers (its actor lost, stopped by ``trial_timeout``,
        interrupted) still has it said, once."""
        now = time.monotonic()
        if self.note_key is None or self.study._said_no_pruner or self.unreachable or self.watch.down or (
                now - self.note_read < 1.0 and not last):
            return  # (a GCS out of reach would keep the read waiting)
        self.note_read = now
        try:
            noted = _read_key(self.note_key)
        except Exception:  # noqa: BLE001 - a Ray without it: the answers' notes say it
            return
        if noted:
            self._say_no_pruner()

    def _drop_note(self) -> None:
        """Read the actors' note a last time, then remove it from Ray's key-value store."""
        self._read_note(last=True)
        if self.note_key is None or self.unreachable:
            return
        with contextlib.suppress(Exception):
            client = _gcs_client()
            if client is None:
                from ray.experimental.internal_kv import _internal_kv_del

                _internal_kv_del(self.note_key, namespace=NOTES)
            else:  # (the head node may die as optimize ends, the watch stopped)
                client.internal_kv_del(self.note_key.encode(), False, NOTES.encode(), timeout=1.0)

    def _take(self, actor: _Actor, out: Outcome) -> FrozenTrial | None:
        """Record the answer of one of ``actor``'s calls (collected, its call removed); the trial's record."""
        actor.worker = out.worker
        actor.since = time.monotonic()  # its next call starts now
        if out.late:  # past optimize's timeout: it ran nothing
            if out.sent is not None:
                self.study.unstart(out.sent.number)
            self.budget.give_back()
            return None
        record = apply_outcome(self.study, out) if self.memory else out.record
        self._heard(out)
        if out.interrupted:
            logger.warning("the objective raised KeyboardInterrupt in a Ray worker (no Ctrl-C came): the run stops")
            self.job.interrupted = self.job.interrupted or interrupted()  # study.interrupted as inline
        if out.stop:  # from the objective in the actor: as from a callback, no trial starts after it
            self.study.stop()  # (its trial failed elsewhere too: no record, the actor is given its next call below)
            self.calls.check_stop()
        if out.uncaught:  # (no record: it came from outside the objective, e.g. the storage in an actor)
            self._uncaught(out.raised or uncaught_error(None if record is None else record.number, out.error))
        if record is not None:
            actor.done.add(record.number)
        if not record.system.took_unit if record is not None else out.resumed:  # (ended elsewhere: no record)
            self.budget.give_back()  # a promotion continued a trial, or a lost trial's copy ran free: n_trials counts new ones
        self._refunded(actor, out)
        if out.exhausted:
            self.budget.give_back()
            self.budget.stop(exhausted=True)
            self.exhausted = out.exhausted
        if record is not None:
            self.calls(record)
            if self.job.on_trial is not None:
                self.job.on_trial(record)
        return record

    def _refunded(self, actor: _Actor, out: Outcome) -> None:
        """SQL mode: an answer whose trial ended elsewhere as it ran (no record): answered all the same (were
        ``actor`` lost later, it is not counted again among the trials it started, :meth:`_started_unanswered`),
        its unit given back if it was re-queued (the copy counts, not it)."""
        if out.ended_elsewhere is not None:
            actor.done.add(out.ended_elsewhere)
        self.budget.refund(out.refunded)

    def _take_ended(self, actor: _Actor) -> None:
        """In memory, before a lost actor's first queued trial is failed as the one it was running:
        take the answers of the calls it ended before it died, not collected yet (in the order it ran
        them), so that a trial that finished keeps its result."""
        for ref in self._answered(list(actor.calls)):
            try:
                out: Outcome = self.ray.get(ref)
            except Exception:  # noqa: BLE001 - the call it died in: the calls after it never ran
                return
            del actor.calls[ref]
            record = self._take(actor, out)
            if record is not None:
                retry_if_oom(self.study, record)  # its actor is replaced all the same

    def _answered(self, refs: list[Any]) -> list[Any]:
        """The calls of ``refs`` that have ended, in their order; none when Ray cannot say (its
        connection broke: the trials are failed as running)."""
        try:
            ready = set(self.ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        except Exception:  # noqa: BLE001 - the driver's Ray connection is gone
            return []
        return [r for r in refs if r in ready]

    def _uncaught(self, exc: BaseException) -> None:
        """The objective raised what the study does not catch: no new trial starts, the
        running ones end, then optimize raises it (as under the other executors)."""
        if self.error is None:
            self.error = exc
        self.budget.stop()

    def _unstart_all(self) -> None:
        """In-memory mode: put the trials asked for every actor back in the queue (none ran)."""
        for actor in self.actors:
            for numbers in actor.calls.values():
                for n in numbers:
                    self.study.unstart(n)
            actor.calls.clear()

    def _lost(
        self, actor: _Actor, error: str, *, requeue: bool | None = None, dead: bool = True, wait: bool = True
    ) -> list[FrozenTrial]:
        """Fail the trials a lost actor was running; their records (a resumed trial
        goes back to paused, holding its promotion). ``wait``: ask an actor that never said who it is (not
        once the GCS is gone: it ran nothing, or outlives the stopped instance)."""
        if self.memory:
            numbers = [n for ns in actor.calls.values() for n in ns]  # in order: the first was running
            again = self.study.heartbeat_config.requeue if requeue is None else requeue
            ended = [fail_or_unqueue(self.study, n, error, requeue=again, started=i == 0) for i, n in enumerate(numbers)]
            return [t for t in ended if t is not None]
        if not actor.up:
            return []  # never started: ran nothing
        if not actor.worker and not wait:
            return []
        if not actor.worker:
            try:
                actor.worker = self.ray.get(actor.who, timeout=5.0)
            except Exception:  # noqa: BLE001 - died before it said who it was: ran nothing
                return []
        return self.study.fail_worker(actor.worker, error, requeue=requeue, dead=dead)

    def _check_gcs(self) -> None:
        """Raise the interrupt :meth:`run` takes as the head node's loss where :class:`GcsWatch` found it lost, for
        an optimize its interrupt does not reach (not on the main thread, or under a SIGINT handler of the user's)."""
        if self.watch.lost:
            raise KeyboardInterrupt(self.watch.lost)

    def _watch_cluster(self) -> None:
        """Raise :class:`ClusterLost` once no node has had the resources of one trial
        for ``lost_after`` seconds (looked at once a second, while no result comes)."""
        self._check_gcs()
        now = time.monotonic()
        if now - self.checked < 1.0:
            return
        self.checked = now
        try:
            if self.watch.down:  # ray.nodes() would wait on the GCS (GcsWatch ends the run)
                raise ConnectionError("its head node (GCS) does not answer")
            total: Any = self._nodes()
            fit_workers(total, self.ex.resources)
        except ValueError:  # no node fits a trial
            pass
        except Exception as exc:  # noqa: BLE001 - the cluster cannot be reached
            total = f"unreachable: {type(exc).__name__}"
            self.unreachable = True
        else:
            self.starved_since = None
            self.unreachable = False
            self._watch_starting(now)
            return
        self.starved_since = self.starved_since or now
        if now - self.starved_since > self.ex.lost_after:
            raise ClusterLost(
                f"the Ray cluster is lost: for {self.ex.lost_after:g} s no node had the resources of one "
                f"trial ({self.ex.resources}; resources of its live nodes: {total})",
                "Restart the cluster (or its nodes) and call optimize again: the study resumes "
                "where it stopped",
            )

    def _watch_starting(self, now: float) -> None:
        """The cluster's nodes could hold a trial, yet an actor waits to start: after
        :data:`START_WARN_AFTER` seconds a warning says what holds the resources its trial needs;
        with no actor up for ``start_timeout`` seconds, :class:`ActorsNotStarted` is raised."""
        waiting = [a for a in self.actors if not a.up]
        longest = max((now - a.spawned for a in waiting), default=0.0)
        limit = self.ex.start_timeout
        stuck = limit is not None and longest > limit and not any(a.up for a in self.actors)
        late = [a for a in waiting if not a.warned and now - a.spawned > START_WARN_AFTER]
        if not (stuck or late):
            return
        held = self._held_resources()
        if stuck:
            self.unstartable = True
            raise ActorsNotStarted(f"no Ray actor could start in {limit:g} s (ray_start_timeout): {held}")
        for a in late:
            a.warned = True
        logger.warning("%d Ray actor(s) waited over %g s to start: %s. optimize(..., ray_start_timeout=SECONDS) "
                       "fails instead of waiting", len(late), START_WARN_AFTER, held)

    def _held_resources(self) -> str:
        """What a trial needs against what the cluster has free and in all, whose actors hold it, and what to do."""
        need = {_ray_name(k): float(v) for k, v in self.ex.resources.items() if v > 0}
        try:
            free, total = self.ray.available_resources(), self.ray.cluster_resources()
        except Exception as exc:  # noqa: BLE001 - the cluster cannot be reached this once
            return f"a trial needs {need}; what the cluster has free could not be read ({type(exc).__name__})"
        ending = sum(map(process_runs, self._pids(self.killed)))
        up = sum(a.up for a in self.actors)
        return held_resources(need, free, total, Holders(up, len(self.actors) - up, ending))

    def _stop_overdue(self) -> None:
        """Replace the actors whose trial has run longer than ``trial_timeout``."""
        limit = self.ex.trial_timeout
        if limit is None:
            return
        now = time.monotonic()
        for actor in list(self.actors):
            if actor.since is not None and actor.calls and now - actor.since > limit:
                error = f"trial_timeout: the trial ran longer than {limit:g} s; its Ray worker was stopped"
                self._replace(actor, error, requeue=False, dead=False, lost=False)

    def _replace(
        self, actor: _Actor, error: str, *, requeue: bool | None = None, dead: bool = True, lost: bool = True
    ) -> None:
        """Kill ``actor``, fail its trial, start another; ``lost``: it died (a
        timeout is not), which counts towards giving up."""
        if self.memory:
            self._take_ended(actor)
        ended = self._lost(actor, error, requeue=requeue, dead=dead)  # first: it asks the actor who it was
        self.ray.kill(actor.handle)
        self.killed.append(actor)
        for t in ended:
            self.calls(t)
        logger.warning("a Ray worker was lost (%s); %s; starting another", error, ended_line(ended))
        # the calls it never answered give their units back, but for the trials they started
        # (one may have ended just before the actor died, its answer lost with it); in memory,
        # not a resumed trial's either: its answer would have given its unit back (a resume takes none)
        unanswered = [] if self.memory else self._started_unanswered(actor, ended)
        new = [t for t in ended if t.state is TrialState.FAILED and t.system.took_unit]
        used = len(new) if self.memory else len(unanswered)
        # a re-queued trial runs again under this call's budget: its failed attempt is not counted
        # (a lost copy is not copied again: it gives no unit back), nor is one that another process failed and
        # re-queued as it ran here (its heartbeat taken for lost), its answer lost with the actor
        here = {t.number for t in ended}
        retried = units_back(self.study, ended + [t for t in unanswered if t.number not in here])
        self.budget.give_back(max(0, len(actor.calls) - used) + retried)
        self.actors.remove(actor)
        self.replacements += lost
        if self.replacements > MAX_REPLACEMENTS:
            raise WorkersLost(f"{self.replacements} Ray workers were lost; giving up (see the failed trials' errors)")
        if not self.budget.expired and (not self.budget.stopped or self.budget.exhausted):
            self._spawn()  # after an exhausted search, to run held promotions and re-queued copies

    def _started_unanswered(self, actor: _Actor, ended: list[FrozenTrial]) -> list[FrozenTrial]:
        """SQL mode: new trials a lost actor started whose outcome never came back (as stored now), those of
        ``ended`` (its trials :meth:`_lost` ended) held back to paused too: a hold clears the worker, and the
        trial's unit was given back, one new trial more than ``n_trials``."""
        if not actor.worker:
            return []
        trials = {t.number: t for t in self.study.trials[self.first:]}
        mine = {n for n, t in trials.items() if t.worker == actor.worker and t.system.took_unit}
        mine |= {t.number for t in ended if t.number >= self.first and t.system.took_unit}
        return [trials[n] for n in sorted(mine - actor.done) if n in trials]

    def _retire(self, actor: _Actor) -> None:
        self.budget.give_back(len(actor.calls))
        self.actors.remove(actor)
        self.ray.kill(actor.handle)
        self.killed.append(actor)
        logger.warning("a Ray worker retired after an out-of-memory trial: one trial fewer per device")
