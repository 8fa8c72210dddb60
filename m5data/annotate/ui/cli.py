"""``m5data annotate serve``: the labelling web app on 127.0.0.1 (elsewhere only behind a secret token)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from ...verbs import one_line_errors


def serve(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback exposes the store's products "
                                                         "to the network: every request then needs the worker's secret token "
                                                         "(printed at start as ?token= in the URL, then kept in a cookie "
                                                         "scoped to the URL's random path)."),
    worker: str = typer.Option("worker-1", "--worker", help="The annotator's id, stored with every judgement (ids starting with @ are reserved)."),
    per_query: int = typer.Option(10, "--per-query", help="Candidates of each query's pool to review (top ranks first)."),
    gold: Optional[Path] = typer.Option(None, "--gold", help="Gold questions (CSV/JSONL: query_id, candidate_id, label); "
                                                            "default: the store's gold judgements."),
    gold_every: int = typer.Option(5, "--gold-every", help="Mix in one gold question after this many tasks."),
    require_token: bool = typer.Option(False, "--require-token", help="Want the secret token on loopback too (other users of this machine)."),
    allow_host: Optional[List[str]] = typer.Option(None, "--allow-host", help="A name the Host header may carry besides the bound "
                                                                             "address (e.g. this machine's DNS name); repeatable."),
) -> None:
    """Serve the match-annotation UI: query and candidate side by side; keys 1/2/3 and arrows.

    Requests whose Host header is not the bound address (or localhost on loopback) are refused (421),
    and so are those from another Origin (403): a web page cannot reach the UI through DNS rebinding.

    \b
    Examples:
      m5data --store st annotate serve --worker alice
    """
    from m5data.annotate.crowd.judgement_fields import worker_id_problem
    from m5data.console import console, fail
    from m5data.verbs import open_store

    from ...console import esc
    from .app import RunningUi, Session
    from .tasks import build_tasks, read_gold

    worker = worker.strip()
    if not worker or per_query < 1 or gold_every < 0:
        fail("--worker must be non-empty, --per-query >= 1 and --gold-every >= 0")
    problem = worker_id_problem(worker)
    if problem:
        fail(f"--worker {worker!r}: {problem}")
    store, _ = open_store(ctx)
    with one_line_errors(OSError):
        tasks = build_tasks(store, per_query, read_gold(gold) if gold else None, gold_every)
        ui = RunningUi(store, Session(worker, tasks), host=host, port=port,
                       require_token=True if require_token else None, allow_hosts=allow_host or ())
    gold_n = sum(t.is_gold for t in tasks)
    console.print(f"annotation UI for [bold]{esc(worker)}[/]: {len(tasks)} pairs ({gold_n} gold) at "
                  f"[bold]{esc(ui.login_url)}[/]  (Ctrl-C stops)", highlight=False, soft_wrap=True)
    if ui.requires_token:
        console.print("every request needs the token of that URL (then kept in a cookie sent to its path only): keep it "
                      f"secret; from another machine use this machine's address (or an --allow-host name) with port {ui.port} "
                      "and the same path and ?token=",
                      highlight=False, soft_wrap=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ui.stop()
