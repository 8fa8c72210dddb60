"""A real Dask or Ray cluster on 127.0.0.1, started as separate processes (tests, benchmarks, trying it out).

Not a LocalCluster: ``dask scheduler`` and ``dask worker ... --nthreads 1`` (through
:mod:`m5data.flows.daskserve`, so they serve no HTTP; with TLS when given certificates), or ``ray start --head``
plus a second ``ray start --address``) run as their own process groups, each worker with its own
working directory and ``TMPDIR`` as on separate machines; they share only what the caller shares
(the store folder and the Prefect API given in ``env``). docs/flows.md shows the same commands for
a real cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """The console script ``name`` of this interpreter's environment (dask, ray)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@dataclass
class DaskCluster:
    """A scheduler and its workers, each a process group of its own."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    folder: Path | None = None
    security: object = None  # the distributed.security.Security a client needs (TLS), or None

    def worker_pids(self) -> dict[str, int]:
        """Scheduler's view: worker address -> PID of the process that runs tasks."""
        from distributed import Client

        with Client(self.address, timeout=30, security=self.security) as client:
            return client.run(os.getpid)

    def processing(self) -> dict[str, list[str]]:
        """Worker address -> keys of the tasks it runs or has queued now."""
        from distributed import Client

        with Client(self.address, timeout=30, security=self.security) as client:
            return {addr: list(keys) for addr, keys in client.processing().items()}

    def stop_scheduler(self, sig: int = signal.SIGTERM) -> None:
        """Stop the scheduler's process group: SIGTERM (SIGKILL after a grace), or at once with ``sig=SIGKILL``."""
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.scheduler.pid, signal.SIGKILL)
            self.scheduler.wait()
            return
        _stop(self.scheduler)

    def stop(self) -> None:
        """Stop every worker, then the scheduler (what leaving ``dask_cluster`` does)."""
        for proc in [*self.workers, self.scheduler]:
            _stop(proc)


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _spawn(cmd: list[str], cwd: Path, env: dict, cpus: set[int] | None = None,
           own_home: bool = False) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "tmp").mkdir(exist_ok=True)
    env = {**env, "TMPDIR": str(cwd / "tmp")}
    if own_home:  # nothing on disk in common with the other processes: home, Prefect's home, caches
        home = cwd / "home"
        home.mkdir(exist_ok=True)
        env.update({"HOME": str(home), "PREFECT_HOME": str(home / ".prefect"), "XDG_CACHE_HOME": str(home / ".cache"),
                    "NUMBA_CACHE_DIR": str(home / ".cache" / "numba")})
    log = open(cwd / "log.txt", "ab")
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None  # inherited by its children (ffmpeg)
    try:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pin)
    finally:
        log.close()


def _wait_workers(address: str, n: int, timeout: float, security=None) -> None:
    from distributed import Client

    with Client(address, timeout=timeout, security=security) as client:
        client.wait_for_workers(n, timeout=timeout)


@contextlib.contextmanager
def dask_cluster(folder: Path, n_workers: int = 2, env: dict | None = None, nanny: bool = True,
                 timeout: float = 120.0, pin_cores: bool = False, tls: dict | None = None,
                 own_home: bool = False, stock: bool = False) -> Iterator[DaskCluster]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker --nthreads 1`` on 127.0.0.1; stop them after.

    Both run through ``python -m m5data.flows.daskserve``: no HTTP server, only comm ports; ``stock``:
    distributed's own ``dask scheduler`` / ``dask worker`` commands, as a user's cluster runs them (each
    worker a daemonic process under its nanny; their dashboards on 127.0.0.1 ports of their own).

    Args:
        folder: each process gets a working directory under it (``scheduler/``, ``worker-i/``) with its log.
        env: the workers' environment (default: this process's); give PYTHONPATH and PREFECT_API_URL here.
        nanny: run each worker under a nanny (dask's default, which restarts a worker that died).
        pin_cores: worker i (and every process it starts: ffmpeg, Scrapy) runs on CPU core
            ``i % cores`` only, as if each worker were a one-core machine (for benchmarks: without it,
            one worker's ffmpeg threads already use every core of this machine).
        tls: ``{"ca": PEM file, "cert": ..., "key": ...}`` for the scheduler and the workers: the
            address is ``tls://`` and every comm needs a certificate signed by that CA
            (``cluster.security`` is this process's client side, with the same files).
        own_home: each process also gets its own ``HOME``, ``PREFECT_HOME`` and caches (numba, XDG) in
            its folder, so that the processes share no folder at all (a store on object storage).
    """
    env = dict(os.environ if env is None else env)
    port = free_port()
    address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{port}"
    serve = [os.path.join(os.path.dirname(sys.executable), "dask")] if stock else \
        [sys.executable, "-m", "m5data.flows.daskserve"]
    quiet = ["--dashboard-address", "127.0.0.1:0"] if stock else ["--no-dashboard"]
    tls_args = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]] if tls else []
    scheduler = _spawn([*serve, "scheduler", "--host", "127.0.0.1", "--port", str(port), *quiet, *tls_args],
                       Path(folder) / "scheduler", env, own_home=own_home)
    security = None
    if tls:
        from distributed.security import Security

        security = Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"], tls_client_key=tls["key"],
                            require_encryption=True)
    cluster = DaskCluster(address, scheduler, folder=Path(folder), security=security)
    try:
        for i in range(n_workers):
            cluster.workers.append(_spawn(
                [*serve, "worker", address, "--nthreads", "1", *quiet, "--host", "127.0.0.1",
                 "--name", f"worker-{i}", *tls_args, *([] if nanny else ["--no-nanny"])],
                Path(folder) / f"worker-{i}", env,
                cpus={sorted(os.sched_getaffinity(0))[i % len(os.sched_getaffinity(0))]} if pin_cores else None,
                own_home=own_home))
        _wait_workers(address, n_workers, timeout, security)
        yield cluster
    finally:
        cluster.stop()


@dataclass
class RayCluster:
    address: str
    nodes: list[subprocess.Popen] = field(default_factory=list)


@contextlib.contextmanager
def ray_cluster(folder: Path, n_nodes: int = 2, env: dict | None = None, timeout: float = 180.0) -> Iterator[RayCluster]:
    """``ray start --head --block`` plus ``n_nodes - 1`` ``ray start --address --block`` nodes, one CPU each.

    Each node is a process group of its own (its raylet and workers included), stopped by PID after;
    every node has its own ``TMPDIR`` and working directory, as on separate machines.
    """
    env = dict(os.environ if env is None else env)
    folder = Path(folder)
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}")
    # Ray puts its AF_UNIX sockets under --temp-dir, and such a path may not exceed 107 bytes: a folder
    # under pytest's tmp_path is too deep, so the session lives in a short folder of its own.
    ray_temp = tempfile.mkdtemp(prefix="m5ray-", dir="/tmp")
    try:
        for i in range(n_nodes):
            node_env = {**env, "RAY_USAGE_STATS_ENABLED": "0"}
            where = ["--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                     "--temp-dir", ray_temp] if i == 0 else ["--address", cluster.address]
            node = _spawn([_bin("ray"), "start", *where, "--num-cpus", "1", "--block", "--disable-usage-stats"],
                          folder / f"node-{i}", node_env)
            cluster.nodes.append(node)

            def up(i=i, node=node):
                if node.poll() is not None:
                    log = (folder / f"node-{i}" / "log.txt").read_text(errors="replace").strip().splitlines()
                    raise RuntimeError(f"ray node {i} exited with {node.returncode}: {log[-1] if log else 'no output'}"
                                       f" (log: {folder / f'node-{i}' / 'log.txt'})")
                return _ray_nodes(cluster.address, env) >= i + 1

            wait_until(up, timeout, step=1.0, what=f"ray node {i}")
        yield cluster
    finally:
        for proc in reversed(cluster.nodes):
            _stop(proc, grace=20)
        shutil.rmtree(ray_temp, ignore_errors=True)


def _ray_nodes(address: str, env: dict) -> int:
    """Alive nodes of the Ray cluster at ``address`` (0 while it does not answer)."""
    code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    try:
        out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return 0


def wait_until(predicate, timeout: float, step: float = 0.2, what: str = "condition"):
    """Poll ``predicate()`` until it returns something truthy; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"{what}: not reached in {timeout:g} s")
