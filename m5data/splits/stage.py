"""The splits stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, the
tables it reads (:data:`READS`) and what else decides its result (:func:`inputs`).

No retries: the assignment is a deterministic global job; a failure (a version built with other
settings, an empty store) would fail again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable

from .. import config as cfg
from ..stages import RunContext, StageRun
from ..storage import StageStats, changes, withheld
from ..storage.schema import TABLES

STAGE = "splits"
# what a pipeline run's splits depends on: every table but its own output and runs
READS = tuple(t for t in TABLES if t not in ("runs", "splits"))


def check(settings, options: dict) -> None:
    """The ``[splits]`` settings are usable (:func:`.plan.check_settings`: ConfigError naming the key)."""
    from .plan import check_settings

    check_settings(settings)


def inputs(ctx: RunContext) -> Iterable:
    """What beside the tables decides a version: the ``[splits]`` settings, the seed, a replace."""
    return dataclasses.asdict(ctx.settings.splits), ctx.options.get("seed"), bool(ctx.options.get("replace"))


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Build the split version ``options["version"]``, else the one :func:`incremental_version` picks.

    Options: ``seed``, ``replace`` (rebuild an existing version with new settings), ``full``, ``carry``
    (a named version's predecessor, whose plan and roles it carries: ``build.build``'s ``carry``). The
    per-split products go into ``details`` (``entries``: each split's manifest entry; ``targets``: the
    plan's sizes). A pipeline run (no ``version``) does nothing when no table it reads was written
    since its last complete run (``storage/changes.py``) unless ``full``: it reports that run's
    version and says ``new 0, changed 0, unchanged N``; a named version (``build-splits``) is built.
    A pipeline run's next version carries its predecessor's plan and roles (a fresh plan past
    ``splits.replan_share`` of drift, ``incremental.py``); ``full`` builds it with a fresh plan. A
    takedown or an opt-out recorded since that covers a product of its last version is a change too: a
    next version is written without it (no version holds a taken-down or opted-out product it was built
    after: storage/withheld.py, the rule the views and the exports use). It is
    built from the predecessor's carry and the rows written since (``incremental.build_next``:
    ``details["placed_again"]`` products placed again), else in full (``details["built_whole"]`` says
    why); a pipeline run's build writes its version's carry (``carry.py``).
    """
    return _run(ctx, run)


def _run(ctx: RunContext, run: StageRun) -> StageStats:
    from .build import build, with_splits

    store, settings, state, marks = ctx.store, ctx.settings, run.state, run.marks
    named = bool(ctx.options.get("version"))
    full = run.full
    prev = (state or {}).get("details", {}).get("version")
    if not named and run.unchanged() and store.read_text(f"derived/splits/{prev}/manifest.json"):
        return _unchanged(run)
    since = int((state or {}).get("watermarks", {}).get("products", 0))
    # with what a next version built from the carry reads of them (only the rows written since)
    products = store.changed("products", since, ("platform", "category_path"))
    # a later run on a grown store writes a new version and keeps the old ones intact
    incremental = (not named and run.since is not None and bool(prev) and ctx.options.get("seed") is None
                   and bool(store.read_text(f"derived/splits/{prev}/manifest.json")))
    why, carry = None, None
    if incremental:
        from .incremental import drift

        # a takedown or an opt-out of one of prev's products since: a new version without it (prev and its
        # exports stay)
        taken = 0 if len(products) else sum(withheld.in_version(store, prev).values())
        version = next_version(store, prev) if len(products) or taken else prev
        settings = with_splits(settings, version=version)  # a copy: ctx.settings is the flow's, never written to
        why = drift(store, settings, prev, products)  # a fresh plan past splits.replan_share
        carry = None if why else prev
    else:
        version = ctx.options.get("version") or incremental_version(store, settings.splits.version)
        carry = ctx.options.get("carry") if named else None  # build-splits after a takedown (splits/cli.py)
        if not named or full:
            why = run.why_full or ("no earlier complete run" if not prev else "settings changed")
    report, why_built = None, None
    with (_status() if ctx.progress else contextlib.nullcontext(None)) as say:
        if carry is not None and incremental:  # from the predecessor's carry and what changed since (incremental.py)
            from .incremental import build_next

            report = build_next(store, settings, prev=prev, version=version, since=state["watermarks"], marks=marks,
                                products=products, progress=say)
            report, why_built = (None, report) if isinstance(report, str) else (report, None)
        if report is None:  # every product placed (carrying the predecessor's plan and roles when `carry`)
            report = build(store, settings, version=version, seed=ctx.options.get("seed"), keep=not named,
                           replace=bool(ctx.options.get("replace")) or (full and not named), progress=say, carry=carry)
    total = report.stats.n_in
    counts = changes.changed_counts(products, total)
    report.stats.details.update(
        version=report.version, manifest=str(report.manifest), groups=report.groups.source,
        splits={name: entry["products"] for name, entry in report.splits.items()},
        held_out=report.held_out, moved=report.moved, entries=report.splits, targets=report.plan.targets,
        groups_described=report.groups.describe(), reused_plan=report.reused_plan, carried_from=report.carried_from,
        excluded={str(reason): n for reason, n in report.excluded.items()}, changes=counts,
        full=why, placed_again=report.placed_again, built_whole=why_built)
    run.stats = report.stats  # the build's counts are the run's
    config = {**cfg.as_dict(settings), "splits_run": {
        "version": report.version, "seed": settings.splits.seed if ctx.options.get("seed") is None else ctx.options["seed"],
        "replace": bool(ctx.options.get("replace")), "manifest": str(report.manifest)}}
    if named:  # a named version keeps no state: the pipeline's next run compares with its own last one
        return run.record(config)
    return run.complete(config, details=report.stats.details, products=sum(counts.values()))


def _unchanged(run: StageRun) -> StageStats:
    """Nothing splits reads changed since its last complete run: its version stands, nothing is done."""
    run.stats.details.update(run.state["details"])
    run.stats.details.pop("full", None)  # what that run said; this one did nothing
    return run.skip(int(run.state.get("products", 0)), version=run.stats.details.get("version"))


@contextlib.contextmanager
def _status():
    """The build's steps on a rich status line."""
    from ..console import console

    with console.status("[bold]splits[/] ...") as status:
        yield lambda step: status.update(f"[bold]splits[/] {step}")


def incremental_version(store, default: str) -> str:
    """The split version a pipeline run builds, so that a later run on a grown store keeps the old version intact.

    A store without splits gets ``default``. Otherwise the current version (``versions.py``: the
    newest by the number it ends with) is built again when the store still holds what it was built
    from (same product count, no product crawled since its manifest was written, none of its products
    taken down or opted out): a re-run changes nothing. When products were added or re-crawled or taken down
    or opted out since, the next version is built (``v1`` -> ``v2``) and the old one is kept.
    """
    import json
    from datetime import datetime

    from .versions import current, stored_versions

    # a version name is a folder name (derived/splits/<version>/): one that is not plain is never current
    versions = stored_versions(store)
    latest = current(versions)
    if latest is None:
        return default
    con = store.connect(need=("products",), only=("products",))
    try:
        products, newest = con.execute("SELECT count(*), max(crawled_at) FROM products").fetchone()
    finally:
        con.close()

    try:
        info = json.loads(store.read_text(f"derived/splits/{latest}/manifest.json") or "")
        built = datetime.fromisoformat(info["created_at"])
        unchanged = info.get("products") == products and (newest is None or newest <= built)
    except (OSError, ValueError, KeyError, TypeError):
        unchanged = False
    return latest if unchanged and not withheld.in_version(store, latest) else _after(latest, versions)


def next_version(store, prev: str) -> str:
    """The first version after ``prev`` (the pipeline's last one: ``v1`` -> ``v2``), and after the store's
    current one when that has a manifest (a version built by hand since, ``v5``: ``v6``), that no manifest
    names: the version a pipeline run builds becomes the current one (what its export takes), and a
    build killed before its manifest is built again under its name."""
    from .versions import current, current_version

    newest = current([prev, current_version(store) or prev]) or prev
    if newest != prev and store.read_text(f"derived/splits/{newest}/manifest.json") is None:
        newest = prev  # the rows of a build killed before its manifest: built again under that name
    version = _after(newest, [])
    while store.read_text(f"derived/splits/{version}/manifest.json") is not None:
        version = _after(version, [])
    return version


def _after(latest: str, versions: list[str]) -> str:
    """The version after ``latest`` (``v1`` -> ``v2``, ``x`` -> ``x-2``) that ``versions`` does not hold."""
    import re

    m = re.search(r"(\d+)$", latest)
    stem, n = (latest[: m.start()], int(m.group(1))) if m else (latest + "-", 1)
    candidate = f"{stem}{n + 1}"
    while candidate in versions:
        n += 1
        candidate = f"{stem}{n + 1}"
    return candidate
