"""A real multi-node Ray cluster on 127.0.0.1 with token auth, as separate processes.

One head and ``workers`` worker nodes, each a ``ray start --block`` process in its
own session (process group) with a private ``--temp-dir``, ``HOME`` and explicit
ports, so the cluster is independent of any ``ray.init()`` in the test process
and of other Ray instances on the machine. Talk to it only over HTTP (the Jobs
API at :attr:`LocalRayCluster.address`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
_NODE_SCRIPT = Path(__file__).with_name("_ray_node.py")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together, then freed)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class LocalRayCluster:
    """Head + worker nodes on loopback; start with :meth:`start`, end with :meth:`stop`."""

    workers: int = 2
    cpus_per_node: int = 1
    object_store_mib: int = 100
    startup_timeout_s: float = 90.0
    base: Path = field(init=False)
    token: str = field(init=False, repr=False)
    token_path: Path = field(init=False)
    env: dict[str, str] = field(init=False, repr=False)
    """Environment of the Ray processes (also usable for ``ray`` CLI calls)."""
    address: str = field(init=False, default="")
    """Jobs API / dashboard URL, ``http://127.0.0.1:PORT``."""
    gcs_address: str = field(init=False, default="")
    _procs: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # Short path: Ray's unix sockets live below it (108-byte limit).
        self.base = Path(tempfile.mkdtemp(prefix="hrvmn", dir="/tmp"))
        (self.base / "home").mkdir()
        self.token = secrets.token_hex(32)
        self.token_path = self.base / "auth_token"
        self.token_path.write_text(self.token)
        self.token_path.chmod(0o600)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "AWS_")) and k != "PYTHONPATH"}
        env.update(
            HOME=str(self.base / "home"),
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_USAGE_STATS_ENABLED="0",
            # Ray's switch for loopback clusters: every Ray process uses 127.0.0.1
            # (see _ray_node.py for why `ray start` itself needs a wrapper).
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            # The job entrypoint and workers resolve `python` through PATH.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        self.env = env

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate to this cluster."""
        return {"Authorization": f"Bearer {self.token}"}

    def get_json(self, path: str, *, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(self.address + path,
                                         headers=self.headers if headers is None else headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def alive_nodes(self) -> list[dict[str, Any]]:
        summary = self.get_json("/nodes?view=summary")["data"]["summary"]
        return [n for n in summary if n["raylet"].get("state") == "ALIVE"]

    def _spawn(self, args: list[str], log_name: str, ports: list[int]) -> subprocess.Popen[bytes]:
        common = [
            "--block", "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(self.cpus_per_node), "--num-gpus", "0",
            "--object-store-memory", str(self.object_store_mib * 2**20),
            # One temp dir per node: nodes starting at once in one session dir race
            # for the same socket names (raylet dies with "bind: Address already in use").
            "--temp-dir", str(self.base / log_name.removesuffix(".log")), "--disable-usage-stats",
            # Explicit ports: the defaults (e.g. dashboard agent 52365) collide with
            # other Ray instances on the machine and between our own nodes.
            "--node-manager-port", str(ports[0]), "--object-manager-port", str(ports[1]),
            "--dashboard-agent-listen-port", str(ports[2]),
            "--dashboard-agent-grpc-port", str(ports[3]),
            "--runtime-env-agent-port", str(ports[4]), "--metrics-export-port", str(ports[5]),
        ]
        log = open(self.base / log_name, "ab")  # noqa: SIM115  (closed with the cluster)
        proc = subprocess.Popen(
            [sys.executable, str(_NODE_SCRIPT), "start", *args, *common],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.base, start_new_session=True,
        )
        log.close()
        self._procs.append(proc)
        return proc

    def _wait(self, what: str, ready: Any, procs: list[subprocess.Popen[bytes]],
              deadline: float) -> bool:
        """True once ``ready()``; False as soon as one of ``procs`` has exited."""
        while time.monotonic() < deadline:
            if any(proc.poll() is not None for proc in procs):
                return False
            try:
                if ready():
                    return True
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{what} did not come up; logs in {self.base}")

    def start(self) -> LocalRayCluster:
        """Start the head, then all workers at once (a worker that dies is retried once)."""
        deadline = time.monotonic() + self.startup_timeout_s
        ports = _free_ports(3 + 6 * (self.workers + 1))  # all distinct, allocated together
        gcs_port, dash_port, client_port = ports[:3]
        node_ports = [ports[3 + 6 * i: 9 + 6 * i] for i in range(self.workers + 1)]
        self.gcs_address = f"127.0.0.1:{gcs_port}"
        self.address = f"http://127.0.0.1:{dash_port}"
        head = self._spawn(["--head", "--port", str(gcs_port), "--dashboard-host", "127.0.0.1",
                            "--dashboard-port", str(dash_port),
                            "--ray-client-server-port", str(client_port)],
                           "head.log", node_ports[0])
        if not self._wait("head", lambda: len(self.alive_nodes()) >= 1, [head], deadline):
            raise RuntimeError(f"Ray head exited with {head.returncode}; see {self.base}/head.log")
        workers = [self._spawn(["--address", self.gcs_address], f"worker{i}.log", node_ports[i + 1])
                   for i in range(self.workers)]
        want = self.workers + 1
        if not self._wait("workers", lambda: len(self.alive_nodes()) >= want, workers, deadline):
            # A port that was free when picked may have been taken meanwhile: retry once.
            for i, proc in enumerate(workers):
                if proc.poll() is not None:
                    workers[i] = self._spawn(["--address", self.gcs_address],
                                             f"worker{i}.log", _free_ports(6))
            if not self._wait("workers", lambda: len(self.alive_nodes()) >= want, workers,
                              deadline):
                raise RuntimeError(f"Ray worker nodes failed twice; see {self.base}/worker*.log")
        return self

    def add_worker(self) -> None:
        """Start one more worker node and wait until the cluster counts it."""
        want = len(self.alive_nodes()) + 1
        proc = self._spawn(["--address", self.gcs_address], f"worker{len(self._procs) - 1}.log", _free_ports(6))
        if not self._wait("added worker", lambda: len(self.alive_nodes()) >= want, [proc],
                          time.monotonic() + self.startup_timeout_s):
            raise RuntimeError(f"the added Ray worker exited with {proc.returncode}; see {self.base}")

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker node ``index`` and every process it started (raylet, agents, and the
        worker processes, which Ray puts in process groups of their own): a lost node."""
        proc = self._procs[1 + index]
        tree, todo = [], [proc.pid]
        while todo:  # the whole descendant tree, from /proc, before anything dies
            pid = todo.pop()
            tree.append(pid)
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        todo.append(int(stat.parent.name))
                except (OSError, ValueError, IndexError):
                    continue
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()

    def stop(self, grace_s: float = 3.0) -> None:
        """End the nodes this object started (workers first), by process group id."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group also holds gcs/raylet/agents; make sure none survive
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        self._procs.clear()
        # Killed processes may still flush logs for a moment: retry the cleanup.
        for _ in range(10):
            shutil.rmtree(self.base, ignore_errors=True)
            if not self.base.exists():
                break
            time.sleep(0.5)

    def __enter__(self) -> LocalRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
