"""The export stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, what
beside the tables decides its result (:func:`inputs`) and the state it keeps (:func:`state`: one per
format and split).

Safe to retry: a re-run skips every finished shard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from ..stages import RunContext, StageRun
from ..storage import StageStats


def check(settings, options: dict) -> None:
    """The ``[export]`` settings are usable (ConfigError naming the key); without ``options["out"]``, the
    split and a given ``options["version"]`` are plain names, as they name its folder (ExportError)."""
    from .run import check_settings
    from .samples import plain_name

    check_settings(settings)
    if options.get("out") is None:
        plain_name("split", settings.export.split)
        if options.get("version"):
            plain_name("split version", options["version"])


def inputs(ctx: RunContext) -> Iterable:
    """What beside the tables decides an export's samples and shards (``incremental.inputs``): the format
    and the split (``[export]``, where the verb's ``--format`` and ``--split`` are), the shard sizes, the
    format's options, the digest. Not the folder nor the split version (``options``: out, version): the
    next version's export into a sibling folder builds on this one (``incremental.find_base``); the
    kept state names them (``out``, ``version``)."""
    from .incremental import inputs as export_inputs

    return export_inputs(ctx.settings.export.format, ctx.settings.export.split, ctx.settings)


def state(ctx: RunContext) -> str:
    """The kept state's name: one per format and split (``derived/state/export-<fmt>-<split>.json``)."""
    from .incremental import state_name

    return state_name(ctx.settings.export.format, ctx.settings.export.split)


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Export a split version: ``export.split`` in ``export.format`` (``options``: out, version, full), in
    ``run``, the run the contract opened (its lock, watermarks, state and fingerprint).

    A WebDataset export of a new split version writes only new and changed samples and takes the
    other shards over from the last complete export (``incremental.py``) unless ``full``.

    The folder defaults to ``<store>/exports/<version>-<fmt>-<split>``; the export's counts go into ``details``.
    With ``ctx.progress`` a bar counts the shards.
    """
    import contextlib

    from .run import export

    store, split, fmt = ctx.store, ctx.settings.export.split, ctx.settings.export.format
    version, out = ctx.options.get("version"), ctx.options.get("out")
    if out is None:
        version, out = default_out(store, split, fmt, version)
    with (_shard_bar() if ctx.progress else contextlib.nullcontext(None)) as progress:
        report = export(store, ctx.settings, out=out, split=split, fmt=fmt, version=version, progress=progress,
                        run=run)
    report.stats.details.update(
        out=str(report.out), format=report.fmt, version=report.version, splits=report.splits, shards=report.shards,
        shards_written=report.shards_written, shards_skipped=report.shards_skipped,
        skipped_splits=dict(report.skipped_splits), shards_inherited=report.shards_inherited,
        shards_kept=report.shards_kept, base=report.base,
        changes=report.changes, full_because=report.full_because)
    return report.stats


@contextlib.contextmanager
def _shard_bar():
    """A rich bar of the shards written (or found finished) of all the export's shards."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from ..bars import bar as progress
    from ..console import console

    # shown from the first count on: after the split was read and the output opened, so an export
    # that fails before (no splits, no s3 extra) prints its error alone
    with progress(TextColumn("[bold]export[/] shards"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("shards", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def default_out(store, split: str, fmt: str, version: str | None) -> tuple[str, str]:
    """``(version, folder)``: one folder per version (default: the store's current one), format and split
    (a new split version never meets an old plan)."""
    from .samples import current_version, plain_name

    # both become a folder name: never one that leads out of exports/
    version = plain_name("split version", version or current_version(store))
    plain_name("split", split)
    return version, str(store.where(f"exports/{version}-{fmt}-{split}"))  # on object storage: an s3:// URL
