"""What every ``m5data`` verb shares: its effective settings and its store, from the global options.

Below the CLI: the verbs' modules import this, never ``m5data.cli`` (the entry point, which mounts
them from the registry in m5data/stages.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from . import config as cfg


def settings(ctx: typer.Context, **flags) -> cfg.Settings:
    """The effective settings for a verb: defaults < file < env < global flags < the verb's own flags."""
    root = ctx.find_root().obj or {}
    overrides = dict(root.get("overrides", {}))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    loaded = cfg.load(root.get("config"), overrides)
    if not root.get("warned"):  # once per command, however many times a verb asks for its settings
        from .console import warn

        for warning in loaded.warnings:
            warn(warning)
        if ctx.find_root().obj is not None:
            ctx.find_root().obj["warned"] = True
    return loaded


def open_store(ctx: typer.Context, create: bool = False, **flags):
    """``(store, settings)`` for a verb: the store at the effective ``store.path`` (created when ``create``)."""
    from .storage import Store

    s = settings(ctx, **flags)
    return Store.from_settings(s, create=create), s


@contextlib.contextmanager
def one_line_errors(*errors: type[BaseException]) -> Iterator[None]:
    """A verb's expected errors (a bad option, a missing file, a store problem) as one line and exit 1, no traceback."""
    from .console import fail

    try:
        yield
    except errors as exc:
        fail(str(exc))
