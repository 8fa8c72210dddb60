"""``m5data server start|stop|status``: a local Prefect server whose database lives in the store.

``start`` runs ``prefect server start --host 127.0.0.1 --port P`` in the background with
``PREFECT_HOME`` = ``flows.server_home`` (default ``<store>/prefect``), so its SQLite database,
its log and its PID file sit beside the data they describe. It waits until ``/api/health``
answers, writes ``server.json`` (pid, port, API URL) and prints ``PREFECT_API_URL`` and the UI.
``stop`` ends that process (and the process group it leads) by its PID; ``status`` says whether
it runs and answers. ``m5data serve`` and ``m5data deploy`` find the server through ``server.json``
when ``PREFECT_API_URL`` is not set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..console import esc

app = typer.Typer(help="Start, stop or check the local Prefect server used for schedules.", no_args_is_help=True)

STATE_FILE = "server.json"
LOG_FILE = "server.log"


def server_home(settings) -> Path:
    """The server's PREFECT_HOME: ``flows.server_home``, or ``<store>/prefect``."""
    return Path(settings.flows.server_home).expanduser().absolute() if settings.flows.server_home \
        else settings.store_path.absolute() / "prefect"


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when the Prefect API at ``api_url`` answers its health check."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child not yet reaped) is not running
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return True


def read_state(home: Path) -> dict | None:
    """The running server's ``server.json`` (pid, host, port, api_url), or None when none runs."""
    path = home / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if _alive(int(state.get("pid", 0))) else None


def running_api(settings) -> str | None:
    """The API URL of this store's running ``m5data server``, or None."""
    state = read_state(server_home(settings))
    return state["api_url"] if state and healthy(state["api_url"]) else None


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start_server(home: Path, host: str = "127.0.0.1", port: int = 4200, wait: float = 90.0) -> dict:
    """Start ``prefect server start`` in the background; return its state once healthy.

    Raises RuntimeError (naming the log) when it exits or does not answer within ``wait`` seconds.
    """
    home.mkdir(parents=True, exist_ok=True)
    if port == 0:
        port = _free_port(host)
    elif not _port_free(host, port):
        raise RuntimeError(f"port {port} on {host} is in use (give --port, or 0 for a free one)")
    env = {**os.environ, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}"}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another one
    log = open(home / LOG_FILE, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # its own process group: stop ends uvicorn with it
    log.close()
    api = f"http://{host}:{port}/api"
    state = {"pid": proc.pid, "host": host, "port": port, "api_url": api, "ui_url": f"http://{host}:{port}",
             "home": str(home), "database": str(home / "prefect.db"), "log": str(home / LOG_FILE)}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}; see {home / LOG_FILE}")
        if healthy(api, timeout=1.0):
            (home / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
            return state
        time.sleep(0.5)
    _kill_group(proc.pid)
    raise RuntimeError(f"prefect server did not answer on {api} within {wait:.0f} s; see {home / LOG_FILE}")


def _kill_group(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid`` (ours: started with a new session), SIGKILL after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.2)


def stop_server(home: Path) -> dict | None:
    """Stop the server recorded in ``home``; returns its state, or None when none was running."""
    state = read_state(home)
    (home / STATE_FILE).unlink(missing_ok=True)
    if state is None:
        return None
    _kill_group(int(state["pid"]))
    return state


@app.command()
def start(
    ctx: typer.Context,
    port: Optional[int] = typer.Option(None, "--port", help="Port on the host (default flows.server_port; 0 = a free one)."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default flows.server_host, 127.0.0.1)."),
    wait: float = typer.Option(180.0, "--wait", help="Seconds to wait for the server to answer."),
) -> None:
    """Start a Prefect server in the background, its SQLite database inside the store folder."""
    from ..console import console, fail
    from ..verbs import settings

    s = settings(ctx, **{"flows.server_port": port, "flows.server_host": host})
    home = server_home(s)
    if (state := read_state(home)) is not None:
        console.print(f"already running (pid {state['pid']})")
        _print_state(state)
        return
    try:
        with console.status(f"starting prefect server on {s.flows.server_host}:{s.flows.server_port} ..."):
            state = start_server(home, s.flows.server_host, s.flows.server_port, wait)
    except RuntimeError as exc:
        fail(str(exc))
    console.print(f"prefect server running (pid {state['pid']}), database {esc(str(state['database']))}")
    _print_state(state)


def _print_state(state: dict) -> None:
    from ..console import console

    console.print(f"  export PREFECT_API_URL={esc(str(state['api_url']))}", highlight=False, soft_wrap=True)
    console.print(f"  UI: {esc(str(state['ui_url']))}   log: {esc(str(state['log']))}", highlight=False, soft_wrap=True)


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the Prefect server started by `m5data server start` (by its PID)."""
    from ..console import console
    from ..verbs import settings

    home = server_home(settings(ctx))
    state = stop_server(home)
    console.print(f"stopped prefect server (pid {state['pid']})" if state else f"no server running for {esc(str(home))}")


@app.command()
def status(ctx: typer.Context) -> None:
    """Say whether the store's Prefect server runs and answers (exit 1 when it does not)."""
    from ..console import console
    from ..verbs import settings

    home = server_home(settings(ctx))
    state = read_state(home)
    if state is None:
        console.print(f"no server running for {esc(str(home))}")
        raise typer.Exit(1)
    ok = healthy(state["api_url"])
    console.print(f"prefect server pid {state['pid']}: {'healthy' if ok else 'NOT answering'}")
    _print_state(state)
    if not ok:
        raise typer.Exit(1)
