"""Task runners for ``flows.runner``: local (in-process), dask (prefect-dask) or ray (prefect-ray).

Only the sharded stages (download, extract) are submitted to the task runner; every other stage
runs in the flow's own process. Workers of a Dask or Ray cluster run Prefect tasks, so they must
reach the same Prefect API as the flow: with no ``PREFECT_API_URL`` each Dask worker would start a
temporary Prefect server of its own (15-20 s each). :func:`api_for_workers` makes sure there is
one API and that the workers inherit its URL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator

from ..errors import UserError

RUNNERS = ("local", "dask", "ray")


class PipelineError(UserError, ValueError):
    """Pipeline parameters that cannot work (unknown stage, no start URL, no mapping); one line."""


def check_runner(settings) -> None:
    """Reject an unknown runner, or one whose package is not installed, before any work."""
    fl = settings.flows
    if fl.runner not in RUNNERS:
        raise PipelineError(f"unknown runner {fl.runner!r}; choose from {', '.join(RUNNERS)}")
    if fl.runner == "dask" and importlib.util.find_spec("prefect_dask") is None:
        raise PipelineError("runner dask needs prefect-dask: pip install prefect-dask")
    if fl.runner == "ray" and (importlib.util.find_spec("prefect_ray") is None or importlib.util.find_spec("ray") is None):
        raise PipelineError("runner ray needs prefect-ray and ray, which are not installed: "
                            "pip install prefect-ray (it brings ray, about 300 MB); see docs/flows.md")
    if fl.dask_workers < 1:
        raise PipelineError(f"flows.dask_workers must be >= 1, got {fl.dask_workers}")
    if fl.scheduler_timeout <= 0:
        raise PipelineError(f"flows.scheduler_timeout must be > 0 seconds, got {fl.scheduler_timeout}")
    if fl.shards < 0:
        raise PipelineError(f"flows.shards must be >= 0, got {fl.shards}")
    if fl.runner == "dask":
        check_tls(fl)


TLS_FILES = ("dask_tls_ca_file", "dask_tls_cert", "dask_tls_key")


def check_tls(fl) -> None:
    """A ``tls://`` scheduler needs all three TLS files, and they are only for one: else one line naming the setting."""
    given = [name for name in TLS_FILES if getattr(fl, name)]
    tls = fl.dask_address.startswith("tls://")
    if tls and len(given) < len(TLS_FILES):
        missing = ", ".join(f"flows.{n}" for n in TLS_FILES if n not in given)
        raise PipelineError(f"flows.dask_address {fl.dask_address} is a TLS scheduler: set {missing} (docs/flows.md)")
    if given and not tls:
        raise PipelineError(f"flows.{given[0]} is set but flows.dask_address {fl.dask_address or '(a LocalCluster)'} "
                            "is not tls://host:port: the files would not be used")
    for name in given:
        path = getattr(fl, name)
        if not os.path.isfile(path):
            raise PipelineError(f"flows.{name}: no such file {path}")


def dask_security(fl):
    """The client's ``distributed.security.Security`` for a ``tls://`` scheduler (paths only), else None.

    Encryption is required and the client shows its certificate: a scheduler started with
    ``--tls-ca-file`` refuses clients and workers without one signed by its CA (docs/security.md).
    """
    if not fl.dask_address.startswith("tls://"):
        return None
    from distributed.security import Security

    return Security(tls_ca_file=fl.dask_tls_ca_file, tls_client_cert=fl.dask_tls_cert,
                    tls_client_key=fl.dask_tls_key, require_encryption=True)


def shard_count(settings) -> int:
    """Shards of the pending rows per sharded stage: 1 for the local runner, else flows.shards or one per worker."""
    fl = settings.flows
    if fl.runner == "local":
        return 1
    return fl.shards or fl.dask_workers


def task_runner(settings):
    """The Prefect task runner for ``flows.runner`` (None: the flow's default thread pool)."""
    fl = settings.flows
    if fl.runner == "dask":
        from .daskserve import task_runner_class

        DaskTaskRunner = task_runner_class()
        # the client's connect (and reconnect) timeout: a scheduler that is not there fails the run after it
        client_kwargs = {"timeout": fl.scheduler_timeout}
        if fl.dask_address:
            security = dask_security(fl)
            return DaskTaskRunner(address=fl.dask_address,
                                  client_kwargs={**client_kwargs, **({"security": security} if security else {})})
        # one thread per worker process: the stages hold the GIL for long stretches (jieba, Pillow);
        # QuietLocalCluster: no HTTP server unless flows.dask_dashboard asks for one; security=True: TLS
        # with a certificate made for this cluster, held in memory (the client takes it from the cluster)
        return DaskTaskRunner(cluster_class="m5data.flows.daskserve.QuietLocalCluster",
                              cluster_kwargs={"n_workers": fl.dask_workers, "threads_per_worker": 1,
                                              "processes": True, "host": "127.0.0.1",
                                              "dashboard_address": fl.dask_dashboard or None,
                                              "security": True if fl.dask_local_tls else None},
                              client_kwargs=client_kwargs)
    if fl.runner == "ray":
        from prefect_ray import RayTaskRunner

        return RayTaskRunner(address=fl.ray_address or None)
    return None


def api_url() -> str | None:
    """The Prefect API this process talks to, or None for the ephemeral one."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


@contextlib.contextmanager
def api_for_workers(runner: str) -> Iterator[str | None]:
    """For dask/ray: make sure a real Prefect API runs and put its URL in the environment workers inherit.

    Without ``PREFECT_API_URL`` this starts Prefect's local API server in a subprocess (what the
    ephemeral mode starts anyway, but shared with the workers) for the rest of this process.
    """
    if runner == "local":
        yield api_url()
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    url = api_url()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start(timeout=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        url = server.api_url
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
