"""A throwaway multi-node Ray cluster on this machine, on loopback addresses.

For tests and benchmarks of the Ray engine (``tests/test_engines_ray_cluster.py``,
``benchmarks/scale.py --engines ray-2nodes``); a real cluster is started with ``ray start`` on
each machine instead. Needs Ray (``semclust[distributed]``); nothing imports it at package level.

Each node is one ``ray start --block`` process started in its own session, so the node
(raylet, GCS on the head, agents, worker processes) is exactly that process group: killing
the group kills the node and nothing else. Nothing here calls ``ray stop``, which would stop
every Ray on the machine, other users' included.

Ray turns ``127.0.0.1`` into the machine's outward address, so the nodes use other loopback
addresses (``127.0.0.2``, ``127.0.0.3``, ...), which Ray keeps as given. Every process gets a
fresh cluster token (``RAY_AUTH_TOKEN``) so no token file under ``~/.ray`` is read or written.
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
from pathlib import Path

import semclust

REPO = Path(semclust.__file__).resolve().parents[1]
RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]

QUERY_MARKER = "SEMCLUST-QUERY-RESULT "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRayCluster:
    """Head plus ``add_node()`` workers, each with ``cpus`` CPUs; use as a context manager."""

    def __init__(self, cpus: int = 1, object_store_mb: int = 200, start_timeout_s: float = 90.0) -> None:
        self.cpus, self.object_store_mb, self.start_timeout_s = cpus, object_store_mb, start_timeout_s
        # Short, private root: Ray's unix socket paths under it must stay under 107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="semclust-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            OMP_NUM_THREADS="1",
            # A SIGTERMed node drains for at most this long (default 30 s) before it exits.
            RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="5",
            # The GCS declares a silent node dead after about 3 s instead of about 15 s.
            RAY_health_check_period_ms="1000",
            RAY_health_check_failure_threshold="3",
        )
        self.nodes: list[subprocess.Popen] = []
        self.killed: list[subprocess.Popen] = []
        self._logs: list[Path] = []

    # ------------------------------------------------------------------ nodes
    def _start_node(self, extra: list[str]) -> subprocess.Popen:
        index = len(self.nodes)
        log = self.temp_dir / f"node{index}.log"
        args = [
            *RAY_CLI, "start", "--block", "--disable-usage-stats",
            "--node-ip-address", f"127.0.0.{index + 2}",
            "--num-cpus", str(self.cpus), "--num-gpus", "0",
            "--object-store-memory", str(self.object_store_mb * 2**20),
            "--dashboard-agent-listen-port", str(free_port()),
            *extra,
        ]  # fmt: skip
        with log.open("w") as out:
            node = subprocess.Popen(
                args,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the node, and only it
            )
        self.nodes.append(node)
        self._logs.append(log)
        return node

    def start_head(self) -> None:
        self._start_node(
            ["--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", str(self.temp_dir / "r")]
        )
        self.wait_for_nodes(1)

    def add_node(self) -> subprocess.Popen:
        node = self._start_node(["--address", self.address])
        self.wait_for_nodes(len(self.alive_nodes()) + 1)
        return node

    def kill_node(self, node: subprocess.Popen) -> None:
        """SIGKILL a node's whole process group, as if its machine died."""
        self.killed.append(node)
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)

    def driver_env(self) -> dict[str, str]:
        """What a driver process needs in ``os.environ`` to join (the cluster's token)."""
        return {key: self.env[key] for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}

    # ------------------------------------------------------------------ queries
    def query(self, code: str) -> object:
        """Run ``code`` in a fresh driver joined to the cluster; it must set ``result`` to a JSON-able value.

        The value comes back on a marked line: Ray may print warnings (e.g. lagging heartbeats on a
        busy machine) to stdout after it."""
        script = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR')\n"
            + code
            + f"\nprint({QUERY_MARKER!r} + json.dumps(result), flush=True)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster query failed:\n{done.stderr[-3000:]}\n{self.logs()}")
        marked = [line for line in done.stdout.splitlines() if line.startswith(QUERY_MARKER)]
        if not marked:
            raise RuntimeError(f"cluster query printed no result:\n{done.stdout[-2000:]}")
        return json.loads(marked[-1][len(QUERY_MARKER) :])

    def alive_nodes(self) -> list[str]:
        for node in self.nodes:
            if node not in self.killed and node.poll() is not None:
                raise RuntimeError(f"a Ray node exited with {node.returncode}:\n{self.logs()}")
        nodes = self.query("result = [n['NodeID'] for n in ray.nodes() if n['Alive']]")
        assert isinstance(nodes, list)
        return [str(n) for n in nodes]

    def wait_for_nodes(self, count: int) -> None:
        """Until exactly ``count`` nodes are alive (the GCS notices a dead node after its health checks)."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            try:
                if len(self.alive_nodes()) == count:
                    return
            except RuntimeError:
                if any(node not in self.killed and node.poll() is not None for node in self.nodes):
                    raise
            time.sleep(1.0)
        raise TimeoutError(f"Ray cluster did not reach {count} node(s) in {self.start_timeout_s:.0f}s:\n{self.logs()}")

    def actors(self) -> list[dict]:
        """Every actor the GCS remembers (dead ones included): class name, job, node, state."""
        code = (
            "from ray._private import state\n"
            "result = [{'class': a['ActorClassName'], 'job': a['JobID'], 'node': a['Address']['NodeID'],"
            " 'state': a['State']} for a in state.actors().values()]"
        )
        actors = self.query(code)
        assert isinstance(actors, list)
        return actors

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in self._logs if log.exists())

    # ------------------------------------------------------------------ cleanup
    def processes(self) -> list[str]:
        """Live (non-zombie) processes of this cluster: in a node's session or naming its temp dir."""
        sessions = {node.pid for node in self.nodes}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            state, session = fields[0], int(fields[3])
            if state != "Z" and (session in sessions or str(self.temp_dir) in cmdline):
                found.append(f"{entry.name} {cmdline[:160]}")
        return found

    def stop(self) -> list[str]:
        """SIGTERM every node (workers first), SIGKILL what is left after a grace period.

        Returns the processes still alive after that (killed then, by pid): none when the
        nodes shut down cleanly. The cluster's temp dir is removed."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(self.nodes):
            try:
                node.wait(timeout=45)
            except subprocess.TimeoutExpired:
                pass
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if node.poll() is None:
                node.wait(timeout=30)
        deadline = time.monotonic() + 20
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        strays = self.processes()
        for line in strays:  # only ours, by pid
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return strays

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start_head()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
