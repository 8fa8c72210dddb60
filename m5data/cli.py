"""``m5data <verb>``: the entry point. The verbs are mounted from the registry (m5data/stages.py);
each lives in its stage's package and keeps its heavy imports inside. Nothing imports this module
but ``python -m m5data``: the verbs' shared services are in m5data/verbs.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import config as cfg
from . import verbs
from .console import console, esc

# Before any verb imports Prefect: with no PREFECT_API_URL it starts a temporary API server, given 20 s
# by default, too tight on a busy 2-core machine (a fresh database's first flow run takes 15-20 s); and no telemetry from a dataset tool.
for _key, _value in (("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"), ("DO_NOT_TRACK", "1"),
                     ("PREFECT_SERVER_ANALYTICS_ENABLED", "false")):
    os.environ.setdefault(_key, _value)


# plain help (rich_markup_mode=None, for every verb below): click wraps a help text at its words in
# a column of ~45 characters at 80 columns, where rich's option tables left ~20 and cut longer words
# (`(crawl.download_de…`)
app = typer.Typer(
    help="Build M5Product-style five-modality e-commerce datasets: crawl, download, extract, align, split, export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    cls=verbs.VerbGroup,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config", cls=verbs.VerbGroup)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata

        try:
            version = importlib.metadata.version("m5data")
        except importlib.metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
            from . import __version__ as version
        typer.echo(f"m5data {version}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config file (default: ./m5data.toml if present)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store folder (overrides store.path)."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: --set download.concurrency=32 (repeatable)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version and exit."),
) -> None:
    ctx.obj = {"config": config, "overrides": {"store.path": str(store) if store else None, **cfg.parse_assignments(set_)}}


# the verbs' shared services live below the CLI (m5data/verbs.py); named here for old callers
settings = verbs.settings
open_store = verbs.open_store


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    section: Optional[str] = typer.Argument(None, help="Only this section: store, crawl, download, ... (default: all)."),
) -> None:
    """Print every setting, its value, where it came from (default, file, env or flag) and its variable.

    \b
    Examples:
      m5data config show
      m5data config show download
      m5data --set crawl.max_pages=10 config show crawl
    """
    from .console import fail

    s = settings(ctx)
    if section is not None:
        try:
            cfg.check_section(section)
        except cfg.ConfigError as exc:
            fail(str(exc), code=2)
    for name in [section] if section else cfg.sections():
        console.print(_settings_table(s, name, console.width))
    if section is None:
        console.print(f"one section: m5data config show SECTION ({', '.join(cfg.sections())})", style="dim",
                      highlight=False)


VALUE_FLOOR = 12  # the value column narrower than this: the variable goes under the key instead


def _settings_table(s: cfg.Settings, section: str, width: int):
    """One section's settings: key, value, source, variable; when the four do not fit ``width``, each
    variable under its key. Keys and variable names are never wrapped (a value or a path may be)."""
    from rich.text import Text

    from .console import Table
    from .storage.redact import redact

    rows = [(key, repr(redact({key: value})[key]), s.source(key), cfg.env_name(key))
            for key, value in s.items() if key.startswith(section + ".")]
    # an env source is the row's own variable: "env" says it
    rows = [(key, value, "env" if source.startswith("env ") else source, var) for key, value, source, var in rows]
    longest = [max(len(row[i]) for row in rows) for i in range(4)]
    wide = longest[0] + min(longest[1], VALUE_FLOOR) + min(longest[2], 7) + longest[3] + 13 <= width
    table = Table(title=f"[{section}]", title_justify="left")
    table.add_column("key" if wide else "key / env variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    if wide:
        table.add_column("env variable", no_wrap=True)
    for key, value, source, var in rows:
        style = None if source == "default" else "bold"
        if wide:
            table.add_row(key, value, source, var, style=style)
        else:
            table.add_row(Text.assemble(key, "\n", (var, "dim")), value, source, style=style)
    return table


@app.command()
def init(ctx: typer.Context) -> None:
    """Create an empty store (tables, blobs, catalog) at store.path."""
    from .storage import Store

    s = settings(ctx)
    store = Store.init(s.store_path, compression=s.store.compression, part_rows=s.store.part_rows)
    console.print(f"store ready at [bold]{esc(str(store.root))}[/]")


verbs.mount(app)


def main() -> None:
    from .errors import UserError

    try:
        app()
    except UserError as exc:  # one a verb did not print itself (m5data/errors.py): one line, exit 1
        from .console import error

        error(str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
