"""Private Ray instances for tests, on loopback only, stopped by pid (never `ray stop`).

Every Ray process gets the same environment: token authentication off
(RAY_AUTH_MODE must match across processes), usage stats off, and no
cluster-on-this-OS guard; each instance has its own short temp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}


# a multi-node cluster (two loopback "machines") needs the OS guard on, not off
CLUSTER_ENV = {**RAY_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}

# For an instance whose raylet a test kills: its GCS checks each node's health every second and marks it
# dead after 3 failed checks in a row (Ray's defaults: every 3 s, 5 failures, 15 s or more before the
# driver sees the node gone). A dead raylet refuses the check at once; a live but slow one is still
# given Ray's 10 s per check, so a loaded machine does not lose a node that is up. Only for a test whose outcome
# waits for that verdict: one whose Ctrl-C must come while Ray still counts the node alive keeps Ray's defaults.
FAST_NODE_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}


def set_ray_env() -> None:
    os.environ.update(RAY_ENV)


def quiet_home(temp: Path) -> str:
    """A HOME for Ray's processes that holds ``~/ray_bootstrap_config.yaml``.

    Without that file Ray's dashboard asks the cloud metadata servers
    (169.254.169.254) which cloud it runs on, even with usage stats off; with it,
    it reads the provider from the file and sends nothing."""
    home = temp / "home"
    home.mkdir(exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    return str(home)


def short_tmp(prefix: str) -> Path:
    # Ray's unix sockets live under the temp dir: keep the path short
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def pids_under(temp_dir: Path) -> list[int]:
    """Processes whose command line or environment names our temp dir: all our Ray daemons, and the workers
    (actors) they started, which Ray renames (``ray::StudyWorker.run_one``: their command line no longer names
    it) and which inherit the HOME of :func:`quiet_home` or the driver's temp dir. Zombies are left out."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes() if cmd.startswith(b"ray::") else b""
            zombie = (d / "stat").read_bytes().rpartition(b")")[2].split()[:1] == [b"Z"]
        except OSError:
            continue
        if not zombie and str(temp_dir).encode() in cmd + env:
            out.append(int(d.name))
    return out


def kill_all_under(temp_dir: Path, within: float = 20.0) -> None:
    """SIGKILL every process :func:`pids_under` names (one gone meanwhile is passed over), and wait up to
    ``within`` seconds for them to end: an actor left running would go on writing its trial's heartbeats."""
    end = time.monotonic() + within
    while True:
        pids = pids_under(temp_dir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids or time.monotonic() > end:
            return
        time.sleep(0.1)


class TwoNodeCluster:
    """A head and a worker node, both on 127.0.0.2 (``ray start --block``)."""

    def __init__(self, *, cpus_per_node: int = 1, ip: str = "127.0.0.2") -> None:
        from pg import free_port

        self.ip = ip
        self.port = free_port(ip)
        self.temp = short_tmp("tsray")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cpus = cpus_per_node

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def _start(self, *args: str) -> None:
        env = {**os.environ, **CLUSTER_ENV, "HOME": quiet_home(self.temp)}
        log = open(self.temp / f"node{len(self.procs)}.log", "wb")  # noqa: SIM115 - kept open for the daemon
        self.procs.append(subprocess.Popen(
            [_ray_bin(), "start", "--block", f"--node-ip-address={self.ip}", f"--num-cpus={self.cpus}",
             "--num-gpus=0", *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))

    def __enter__(self) -> TwoNodeCluster:
        try:
            self._start("--head", f"--port={self.port}", f"--temp-dir={self.temp}", "--include-dashboard=false",
                        "--dashboard-agent-listen-port=0")
            self._wait_nodes(1)
            self._start(f"--address={self.address}")
            self._wait_nodes(2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_nodes(self, n: int, timeout: float = 120.0) -> None:
        code = (
            "import ray,sys; ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], log_to_driver=False);"
            "print(len([x for x in ray.nodes() if x['Alive']]))"
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"ray start exited: {self.logs()}")
            res = subprocess.run([sys.executable, "-c", code, self.address, self.ip], capture_output=True,
                                 env={**os.environ, **CLUSTER_ENV}, timeout=120)
            if res.returncode == 0 and res.stdout.strip().splitlines()[-1:] == [str(n).encode()]:
                return
            time.sleep(1.0)
        probe = (res.stdout + res.stderr).decode(errors="replace")[-2000:]
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes: {probe}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in self.temp.glob("node*.log"))

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        kill_all_under(self.temp)  # daemons that outlived their `ray start`
        shutil.rmtree(self.temp, ignore_errors=True)


def wait_all_free(ray: object, within: float = 60.0) -> str:
    """Wait up to ``within`` seconds for every resource of the Ray instance to be free (an earlier test's
    killed actors give theirs back once their processes end); "" once they are, else what holds them: the
    resources free of the total, and each actor still alive or whose process outlived its death."""
    end = time.monotonic() + within
    while True:
        free, total = ray.available_resources(), ray.cluster_resources()  # type: ignore[attr-defined]
        held = {k: v - free.get(k, 0.0) for k, v in total.items() if free.get(k, 0.0) < v - 1e-9
                and not k.startswith(("node:", "memory", "object_store_memory"))}
        if not held or time.monotonic() > end:
            break
        time.sleep(0.2)
    if not held:
        return ""
    from ray._private import state  # the GCS's actor table: no dashboard needed

    holders = []
    for actor_id, a in state.actors().items():
        pid = a.get("Pid") or 0
        if a["State"] != "DEAD" or (pid and Path(f"/proc/{pid}").exists()):
            holders.append(f"{a['ActorClassName']} {actor_id[:8]} {a['State']} pid {pid or '-'}")
    kinds = {k: (free.get(k, 0.0), total[k]) for k in held}
    return f"held after {within:g} s: {held} (free, of all: {kinds}); actors: {holders or 'none alive'}"


class TokenHead:
    """A one-node cluster on 127.0.0.1 with token authentication on (``ray start --head --block``,
    RAY_AUTH_MODE=token, its token in a file of its own temp dir)."""

    def __init__(self) -> None:
        from pg import free_port

        self.port = free_port("127.0.0.1")
        self.temp = short_tmp("tstok")
        self.token = os.urandom(32).hex()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TokenHead:
        token_file = self.temp / "token"
        token_file.write_text(self.token)
        env = {**os.environ, **RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file),
               "HOME": quiet_home(self.temp)}
        log = open(self.temp / "head.log", "wb")  # noqa: SIM115 - kept open for the daemon
        self.proc = subprocess.Popen(
            [_ray_bin(), "start", "--block", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
             f"--temp-dir={self.temp}", "--include-dashboard=false", "--dashboard-agent-listen-port=0",
             "--num-cpus=1", "--num-gpus=0"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self, timeout: float = 120.0) -> None:
        """Until the GCS answers a call that carries the token."""
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.temp / 'head.log').read_text(errors='replace')}")
            with grpc.insecure_channel(self.address) as channel:
                try:
                    gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                        gcs_service_pb2.GetClusterIdRequest(), timeout=2.0,
                        metadata=(("authorization", f"Bearer {self.token}"),))
                    return
                except grpc.RpcError:
                    time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not answer: {(self.temp / 'head.log').read_text(errors='replace')}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        kill_all_under(self.temp)  # daemons that outlived their `ray start`
        shutil.rmtree(self.temp, ignore_errors=True)
