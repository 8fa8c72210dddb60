"""``m5data <verb>``: the entry point. The verbs are mounted from the registry (m5data/stages.py);
each lives in its stage's package and keeps its heavy imports inside. Nothing imports this module
but ``python -m m5data``: the verbs' shared services are in m5data/verbs.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import config as cfg
from . import stages, verbs
from .console import console, esc

# Before any verb imports Prefect: with no PREFECT_API_URL it starts a temporary API server, given 20 s
# by default, too tight on a busy 2-core machine (a fresh database's first flow run takes 15-20 s); and no telemetry from a dataset tool.
for _key, _value in (("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"), ("DO_NOT_TRACK", "1"),
                     ("PREFECT_SERVER_ANALYTICS_ENABLED", "false")):
    os.environ.setdefault(_key, _value)

app = typer.Typer(
    help="Build M5Product-style five-modality e-commerce datasets: crawl, download, extract, align, split, export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config file (default: ./m5data.toml if present)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store folder (overrides store.path)."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: --set download.concurrency=32 (repeatable)."),
) -> None:
    ctx.obj = {"config": config, "overrides": {"store.path": str(store) if store else None, **cfg.parse_assignments(set_)}}


# the verbs' shared services live below the CLI (m5data/verbs.py); named here for old callers
settings = verbs.settings
open_store = verbs.open_store


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print every setting, its value and where it came from (default, file, env or flag)."""
    from .console import Table

    s = settings(ctx)
    table = Table(title="m5data config")
    for col in ("key", "value", "source", "env variable"):
        table.add_column(col)
    from .redact import redact

    for key, value in s.items():
        source = s.source(key)
        table.add_row(key, repr(redact({key: value})[key]), source, cfg.env_name(key), style=None if source == "default" else "bold")
    console.print(table)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create an empty store (tables, blobs, catalog) at store.path."""
    from .storage import Store

    s = settings(ctx)
    store = Store.init(s.store_path, compression=s.store.compression, part_rows=s.store.part_rows)
    console.print(f"store ready at [bold]{esc(str(store.root))}[/]")


def _mount() -> None:
    """Mount every verb of the registry (m5data/stages.py): a verb whose module fails to import is an error."""
    for verb in stages.verbs():
        target = stages.load(verb.target)
        if verb.group:
            app.add_typer(target, name=verb.name, help=verb.help)
        else:
            app.command(verb.name)(target)


_mount()


def main() -> None:
    from .config import ConfigError
    from .storage import StoreError

    try:
        app()
    except (ConfigError, StoreError) as exc:
        from .console import error

        error(str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
