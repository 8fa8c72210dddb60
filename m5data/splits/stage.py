"""The splits stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``.

No retries: the assignment is a deterministic global job; a failure (a version built with other
settings, an empty store) would fail again.
"""

from __future__ import annotations

import contextlib

from ..stages import RunContext
from ..storage import StageStats


def run(ctx: RunContext) -> StageStats:
    """Build the split version ``options["version"]``, else the one :func:`incremental_version` picks.

    Options: ``seed``, ``replace`` (rebuild an existing version with new settings). The per-split
    products go into ``details`` (``entries``: each split's manifest entry; ``targets``: the plan's sizes).
    """
    from .build import build

    store, settings = ctx.store, ctx.settings
    # a later run on a grown store writes a new version and keeps the old ones intact
    version = ctx.options.get("version") or incremental_version(store, settings.splits.version)
    with (_status() if ctx.progress else contextlib.nullcontext(None)) as say:
        report = build(store, settings, version=version, seed=ctx.options.get("seed"),
                       replace=bool(ctx.options.get("replace")), progress=say)
    report.stats.details.update(
        version=report.version, manifest=str(report.manifest), groups=report.groups.source,
        splits={name: entry["products"] for name, entry in report.splits.items()},
        held_out=report.held_out, moved=report.moved, entries=report.splits, targets=report.plan.targets,
        groups_described=report.groups.describe(), reused_plan=report.reused_plan,
        excluded={str(reason): n for reason, n in report.excluded.items()})
    return report.stats


@contextlib.contextmanager
def _status():
    """The build's steps on a rich status line."""
    from ..console import console

    with console.status("[bold]splits[/] ...") as status:
        yield lambda step: status.update(f"[bold]splits[/] {step}")


def incremental_version(store, default: str) -> str:
    """The split version a pipeline run builds, so that a later run on a grown store keeps the old version intact.

    A store without splits gets ``default``. Otherwise the newest version (by the number it ends
    with) is built again when the store still holds what it was built from (same product count, no
    product crawled since its manifest was written): a re-run changes nothing. When products were
    added or re-crawled since, the next version is built (``v1`` -> ``v2``) and the old one is kept.
    """
    import json
    import re
    from datetime import datetime

    from .names import name_problem

    con = store.connect()
    try:
        # a version name is a folder name (derived/splits/<version>/): one that is not plain is ignored
        versions = [r[0] for r in con.execute("SELECT DISTINCT version FROM splits").fetchall() if not name_problem(r[0])]
        products, newest = con.execute("SELECT count(*), max(crawled_at) FROM products").fetchone()
    finally:
        con.close()
    if not versions:
        return default

    def number(v: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", v)
        return (int(m.group(1)) if m else 0, v)

    latest = max(versions, key=number)
    manifest = store.root / "derived" / "splits" / latest / "manifest.json"
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        built = datetime.fromisoformat(info["created_at"])
        unchanged = info.get("products") == products and (newest is None or newest <= built)
    except (OSError, ValueError, KeyError, TypeError):
        unchanged = False
    if unchanged:
        return latest
    m = re.search(r"(\d+)$", latest)
    stem, n = (latest[: m.start()], int(m.group(1))) if m else (latest + "-", 1)
    candidate = f"{stem}{n + 1}"
    while candidate in versions:
        n += 1
        candidate = f"{stem}{n + 1}"
    return candidate
