"""``m5data annotate serve``: the labelling web app on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def serve(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback exposes the store's products."),
    worker: str = typer.Option("worker-1", "--worker", help="The annotator's id, stored with every judgement."),
    per_query: int = typer.Option(10, "--per-query", help="Candidates of each query's pool to review (top ranks first)."),
    gold: Optional[Path] = typer.Option(None, "--gold", help="Gold questions (CSV/JSONL: query_id, candidate_id, label); "
                                                            "default: the store's gold judgements."),
    gold_every: int = typer.Option(5, "--gold-every", help="Mix in one gold question after this many tasks."),
) -> None:
    """Serve the match-annotation UI: query and candidate side by side; keys 1/2/3 and arrows."""
    from m5data.cli import open_store
    from m5data.console import console, fail

    from .app import RunningUi, Session, UiError, build_tasks, read_gold

    store, _ = open_store(ctx)
    if not worker.strip() or per_query < 1 or gold_every < 0:
        fail("--worker must be non-empty, --per-query >= 1 and --gold-every >= 0")
    try:
        tasks = build_tasks(store, per_query, read_gold(gold) if gold else None, gold_every)
        ui = RunningUi(store, Session(worker.strip(), tasks), host=host, port=port)
    except (UiError, OSError) as exc:
        fail(str(exc))
    gold_n = sum(t.is_gold for t in tasks)
    console.print(f"annotation UI for [bold]{worker}[/]: {len(tasks)} pairs ({gold_n} gold) at [bold]{ui.url}/[/]  (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ui.stop()
