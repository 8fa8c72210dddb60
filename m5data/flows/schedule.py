"""What ``m5data serve`` / ``deploy`` need around Prefect: finding a real API, and leaving no mess.

Prefect schedules nothing on its ephemeral API, so both refuse to start without a real server.
Stopping ``serve`` pauses its deployment (unless ``pause_on_shutdown=False``) and can leave a flow
run RUNNING whose process is gone; :func:`tidy` resumes the deployment and ends such runs, on
start (what a crash left) and on stop (what the stop interrupted).
"""

from __future__ import annotations

import asyncio
import os

FLOW_NAME = "m5data-pipeline"

EPHEMERAL_HELP = ("Prefect schedules nothing on its temporary (ephemeral) API. Start a server first: "
                  "`m5data --store STORE server start`, or set PREFECT_API_URL to a running Prefect server.")


def resolve_api(settings) -> str | None:
    """The real Prefect API to use: PREFECT_API_URL (env or Prefect profile), else this store's running server."""
    from .runners import api_url
    from .server import running_api

    return os.environ.get("PREFECT_API_URL") or api_url() or running_api(settings)


def use_api(url: str):
    """Point this process (and the subprocesses it starts) at ``url``; returns a settings context."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    return temporary_settings({PREFECT_API_URL: url})


async def _tidy(deployment: str, end_as: str, why: str) -> tuple[bool, int]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Crashed

    async with get_client() as client:
        try:
            dep = await client.read_deployment_by_name(f"{FLOW_NAME}/{deployment}")
        except ObjectNotFound:
            return False, 0
        resumed = False
        if dep.paused:
            await client.resume_deployment(dep.id)
            resumed = True
        stuck = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]))))
        for run in stuck:
            state = Crashed(message=why) if end_as == "crashed" else Cancelled(message=why)
            await client.set_flow_run_state(run.id, state, force=True)
        return resumed, len(stuck)


def tidy(deployment: str, end_as: str = "crashed", why: str = "its serve process is gone") -> tuple[bool, int]:
    """Resume the deployment if paused and end its RUNNING/PENDING runs; returns (resumed, runs ended).

    Only one ``m5data serve`` may serve a deployment: a run of it that is RUNNING when serve starts
    belongs to a serve process that died.
    """
    return asyncio.run(_tidy(deployment, end_as, why))


def end_children(grace: float = 10.0) -> int:
    """Stop the processes this process started (flow runs of the Runner, their crawls), by PID."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return len(children)


def ensure_pool(pool: str) -> bool:
    """Create a ``process`` work pool named ``pool`` when none exists; returns True when created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async def go() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(pool)
                return False
            except ObjectNotFound:
                await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
                return True

    return asyncio.run(go())
