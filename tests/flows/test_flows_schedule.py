"""Schedules on a real Prefect server: `m5data server start`, `m5data serve --interval`, `m5data deploy`, stop by PID."""

import asyncio
import os
import signal
import subprocess
import sys
import time

from m5data.flows.server import healthy, read_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": ROOT, "PREFECT_RUNNER_POLL_FREQUENCY": "2", **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def _m5data(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "m5data", *args], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout, cwd=ROOT)


async def _runs(api_url: str, deployment: str):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        async with get_client() as client:
            dep = await client.read_deployment_by_name(f"m5data-pipeline/{deployment}")
            runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
            return dep, runs


def test_serve_refuses_the_ephemeral_api(tmp_path):
    result = _m5data("--store", str(tmp_path / "store"), "serve", "--interval", "10", "--start-url", "http://127.0.0.1:9/",
                     "--stages", "crawl")
    assert result.returncode == 1
    assert "server start" in result.stderr and "ephemeral" in result.stderr


def test_server_serve_runs_twice_on_a_schedule_and_stops_clean(demo_shop, tmp_path):
    store = tmp_path / "store"
    home = store / "prefect"
    started = _m5data("--store", str(store), "server", "start", "--port", "0", "--wait", "400", timeout=420)
    assert started.returncode == 0, started.stdout + started.stderr
    state = read_state(home)
    assert state is not None and (home / "prefect.db").is_file()
    assert f"PREFECT_API_URL={state['api_url']}" in started.stdout and healthy(state["api_url"])
    serve = None
    try:
        assert "healthy" in _m5data("--store", str(store), "server", "status").stdout
        log = open(tmp_path / "serve.log", "w")
        serve = subprocess.Popen(
            [sys.executable, "-m", "m5data", "--store", str(store), "--set", "download.allow_private=true", "--set", "crawl.allow_private=true",
             "serve", "--interval", "5", "--name", "every5", "--start-url", f"{demo_shop.url}/",
             "--stages", "crawl,download"], stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
        deadline = time.monotonic() + 480
        completed = []
        while time.monotonic() < deadline and len(completed) < 2:
            time.sleep(3)
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                _, runs = asyncio.run(_runs(state["api_url"], "every5"))
            except Exception:  # the deployment is not registered yet
                continue
            completed = [r for r in runs if r.state_type.value == "COMPLETED"]
            assert not [r for r in runs if r.state_type.value in ("FAILED", "CRASHED")], \
                (tmp_path / "serve.log").read_text()[-3000:]
        assert len(completed) >= 2, (tmp_path / "serve.log").read_text()[-3000:]
        # stop it while a run is in flight: the Runner would wait for that run, serve ends it first
        while time.monotonic() < deadline:
            _, runs = asyncio.run(_runs(state["api_url"], "every5"))
            if [r for r in runs if r.state_type.value == "RUNNING"]:
                break
            time.sleep(0.5)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        dep, runs = asyncio.run(_runs(state["api_url"], "every5"))
        assert dep.paused is False  # Prefect's default pauses it on shutdown
        assert not [r for r in runs if r.state_type.value in ("RUNNING", "PENDING")]
        # the runs crawled the shop into the store: the first found every product, the later ones none new
        from m5data.storage import Store

        con = Store.open(store).connect()
        try:
            crawls = con.execute("SELECT count(*) FROM runs WHERE stage = 'crawl' AND status = 'ok'").fetchone()[0]
            products = con.execute("SELECT count(*) FROM products").fetchone()[0]
        finally:
            con.close()
        assert crawls >= 2 and products >= sum(p["reachable"] for p in demo_shop.truth.products) > 0

        # a deployment for a work pool, on the same server
        deployed = _m5data("--store", str(store), "deploy", "--pool", "m5data-test-pool", "--name", "nightly",
                           "--cron", "0 3 * * *", "--start-url", f"{demo_shop.url}/", "--stages", "crawl")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        dep, _ = asyncio.run(_runs(state["api_url"], "nightly"))
        assert dep.work_pool_name == "m5data-test-pool"
        assert dep.parameters["start_urls"] == [f"{demo_shop.url}/"] and dep.parameters["stages"] == ["crawl"]
    finally:
        if serve is not None and serve.poll() is None:
            serve.kill()
            serve.wait()
        stopped = _m5data("--store", str(store), "server", "stop")
    assert stopped.returncode == 0 and f"pid {state['pid']}" in stopped.stdout
    assert read_state(home) is None and not healthy(state["api_url"])
    import psutil  # the server is gone: no process, or a zombie its parent has not reaped yet

    try:
        assert psutil.Process(state["pid"]).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
