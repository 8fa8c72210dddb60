"""What every ``m5data`` verb shares: its effective settings and its store, from the global options,
and for a stage's verb the :class:`~m5data.stages.RunContext` its stage's ``run`` gets.

Below the CLI: the verbs' modules import this, never ``m5data.cli`` (the entry point, which mounts
them from the registry in m5data/stages.py). A stage's verb is its flags and its printing around
:func:`run_stage`: the same ``run(ctx)`` the pipeline flow calls, with a context built here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from . import config as cfg
from . import stages
from .errors import TransientFailure, UserError


class VerbGroup(typer.core.TyperGroup):
    """A verb group (``m5data``, ``m5data annotate``, ...) whose command list shows each command's
    first sentence whole, wrapped to the width (click's default cuts it to one line with '...')."""

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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
def one_line_errors(*errors: type[BaseException], handles: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """A verb's expected errors as one line and exit 1, no traceback: every
    :class:`~m5data.errors.UserError` (a bad option, a missing file, a store problem) and ``errors``
    (a builtin the verb expects); ``handles``: errors the verb handles itself, raised as they are."""
    from .console import fail

    try:
        yield
    except handles:
        raise
    except (UserError, *errors) as exc:
        fail(str(exc))


def stage_context(ctx: typer.Context, create: bool = False, options: dict | None = None,
                  progress: bool | None = None, store: bool = True, **flags) -> stages.RunContext:
    """The RunContext of a stage's verb: settings built once (with the verb's ``flags``), the store opened.

    Args:
        create: create the store when it is missing.
        options: the verb's own options, which the stage's ``run`` reads from ``ctx.options``.
        progress: show the stage's progress displays (default: when the console is a terminal).
        store: open the store now (False: the verb works without one, as ``train`` does).
        flags: the verb's setting flags (``{"crawl.max_pages": 10}``; None: not given).

    The store is opened here, before the stage runs, so that a store error is the verb's one-line
    error whatever the stage's own errors are.
    """
    from .console import console

    rctx = stages.RunContext(settings(ctx, **flags), options=dict(options or {}), create=create,
                             progress=console.is_terminal if progress is None else progress)
    if store:
        rctx.store  # noqa: B018  (opened now: see above)
    return rctx


def run_stage(name: str, rctx: stages.RunContext, *errors: type[BaseException], summary: bool = True,
              handles: tuple[type[BaseException], ...] = ()):
    """Run the registered stage ``name``'s ``run(rctx)`` for a verb; its StageStats.

    A :class:`~m5data.errors.UserError` (and ``errors``, builtins the verb expects) is one line and
    exit 1 (:func:`one_line_errors`); ``handles``: errors the verb handles itself, raised as they are.
    A failure worth a retry in a flow (:class:`~m5data.errors.TransientFailure`, with the run's stats)
    is the result here: a verb does not retry, it prints what the run did and decides its exit code
    from it. ``summary``: print the stage summary (in / out / failed by reason).
    """
    from .console import console, stage_summary

    with one_line_errors(*errors, handles=handles):
        try:
            stages.check(name, rctx.settings, rctx.options)
            stats = stages.call(name, rctx)
        except TransientFailure as exc:
            if exc.stats is None or isinstance(exc, (UserError, *handles)):
                raise
            stats = exc.stats
    if summary:
        console.print(stage_summary(stats))
    return stats


def mount(app: typer.Typer, parent: str | None = None) -> None:
    """Mount the registry's verbs (m5data/stages.py) of ``m5data`` (``parent`` None) or of the group verb
    ``parent`` on ``app``: a verb whose module fails to import is an error, never a verb that vanishes."""
    for verb in stages.verbs(parent):
        target = stages.load(verb.target)
        if verb.group:
            app.add_typer(target, name=verb.name, help=verb.help, cls=VerbGroup)
        else:
            app.command(verb.name)(target)
