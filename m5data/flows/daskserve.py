"""Dask scheduler and workers that serve nothing but their comm ports.

distributed starts an HTTP server in every scheduler and worker whatever the dashboard setting:
``dashboard_address=None`` / ``--no-dashboard`` only leave the Bokeh pages out, and the scheduler
still answers on 8787 (another port when taken) and each worker on a random port, to any Host
header, with ``/metrics``, ``/json/identity.json``, ``/info/main/logs.html`` and the like
(``distributed.node.ServerNode.start_http_server``; no option turns the listener off). The classes
here start that server only when a dashboard is asked for:

- :class:`QuietLocalCluster`: the ``LocalCluster`` of ``--runner dask`` (its scheduler and its
  workers under their nannies; a nanny serves no HTTP).
- ``python -m m5data.flows.daskserve scheduler|worker [dask options]``: ``dask scheduler`` /
  ``dask worker`` with these classes, for a cluster of your own (docs/flows.md).
"""

from __future__ import annotations

import functools
import sys

from distributed import LocalCluster, Nanny, Scheduler, Worker

WORKER_CLASS = "m5data.flows.daskserve.QuietWorker"


class _AskedForHttp:
    """``start_http_server`` that listens only when a dashboard was asked for (``self._http``)."""

    _http = False

    def start_http_server(self, routes, dashboard_address, default_port=0, ssl_options=None):
        if self._http:
            return super().start_http_server(routes, dashboard_address, default_port, ssl_options)
        from distributed.http.routing import RoutingApplication
        from tornado.httpserver import HTTPServer

        # the objects other code may look at, never bound to a socket; "dashboard" stays out of
        # self.services, so identity() advertises no HTTP port
        self.http_application = RoutingApplication(routes)
        self.http_server = HTTPServer(self.http_application)
        return None


class QuietScheduler(_AskedForHttp, Scheduler):
    """A Scheduler with an HTTP server only when its dashboard is on (``dashboard=True``, or a
    ``dashboard_address`` with ``dashboard`` unset: distributed's own rule); ``dask scheduler
    --no-dashboard`` gives none."""

    def __init__(self, *args, dashboard=None, dashboard_address=None, **kwargs):
        self._http = bool(dashboard or (dashboard is None and dashboard_address))
        super().__init__(*args, dashboard=dashboard, dashboard_address=dashboard_address, **kwargs)


class QuietWorker(_AskedForHttp, Worker):
    """A Worker with an HTTP server only when ``dashboard=True``; ``dask worker --no-dashboard`` and
    LocalCluster's workers (no ``worker_dashboard_address``) get none."""

    def __init__(self, *args, dashboard=False, **kwargs):
        self._http = bool(dashboard)
        super().__init__(*args, dashboard=dashboard, **kwargs)


class QuietLocalCluster(LocalCluster):
    """``distributed.LocalCluster`` whose scheduler and workers are the quiet ones.

    ``dashboard_address`` (default None here) still asks for the scheduler's dashboard. LocalCluster
    names its classes inside ``__init__`` and starts the cluster there too (sync mode), so they are
    swapped in ``_start``, the first thing that uses them.
    """

    def __init__(self, *args, dashboard_address=None, **kwargs):
        super().__init__(*args, dashboard_address=dashboard_address, **kwargs)

    async def _start(self):
        if self.scheduler_spec.get("cls") is Scheduler:
            self.scheduler_spec = {**self.scheduler_spec, "cls": QuietScheduler}
        for spec in (self.new_spec, *self.worker_spec.values()):
            if spec["cls"] is Nanny:
                spec["options"] = {**spec["options"], "worker_class": QuietWorker}
            elif spec["cls"] is Worker:
                spec["cls"] = QuietWorker
        return await super()._start()


@functools.cache
def task_runner_class():
    """prefect-dask's ``DaskTaskRunner``, able to use a scheduler that advertises no dashboard.

    ``distributed.Client.dashboard_link`` (which the runner logs once its client is up) looks up
    the scheduler's ``dashboard`` service without a default, so a client connected by address to a
    :class:`QuietScheduler` raised ``KeyError: 'dashboard'`` after connecting. The client is
    there by then; this class returns it (and logs no link: there is none).
    """
    from prefect_dask import DaskTaskRunner

    class QuietDaskTaskRunner(DaskTaskRunner):
        @property
        def client(self):
            try:
                return super().client
            except KeyError as exc:
                if exc.args != ("dashboard",) or self._client is None:
                    raise
                return self._client

    return QuietDaskTaskRunner


def main(argv: list[str]) -> None:
    """``scheduler [options]`` or ``worker ADDRESS [options]``: dask's own command line, quiet classes."""
    if not argv or argv[0] not in ("scheduler", "worker"):
        sys.exit("usage: python -m m5data.flows.daskserve scheduler|worker [dask scheduler / dask worker options]")
    if argv[0] == "scheduler":
        import distributed.cli.dask_scheduler as cli

        cli.Scheduler = QuietScheduler  # the one name the command builds its scheduler from
        args = argv[1:]
    else:
        import distributed.cli.dask_worker as cli

        args = argv[1:] if "--worker-class" in argv else ["--worker-class", WORKER_CLASS, *argv[1:]]
    cli.main(args, prog_name=f"daskserve {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
