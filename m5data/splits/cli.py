"""``m5data build-splits`` and ``m5data check-splits``.

Exit codes: build-splits 0 done, 1 a bad option or a version built with other settings;
check-splits 0 every invariant holds, 1 a bad option or no such version, 2 a violated invariant.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..console import esc
from ..verbs import one_line_errors

_VERSION = typer.Option(None, "--version", help="Split version name (default splits.version, v1).")


def build_splits(
    ctx: typer.Context,
    version: Optional[str] = _VERSION,
    seed: Optional[int] = typer.Option(None, "--seed", help="Hash salt of the assignment (default splits.seed)."),
    replace: bool = typer.Option(False, "--replace", help="Rebuild an existing version with new settings (its products may move)."),
) -> None:
    """Assign products to train / query-c / gallery-c / query-fg / gallery-fg / cls-train / cls-test / subset; write the manifest.

    Without --version it builds splits.version, or, when that version holds products taken down
    since (m5data takedown) or whose pages opted out since (a refresh crawl), the next version
    (v1 -> v2) without them, carrying its plan and roles.

    \b
    Examples:
      m5data --store st build-splits
      m5data --store st build-splits --version v2 --seed 1
    """
    from ..console import console
    from ..storage import withheld
    from ..verbs import run_stage, stage_context
    from .stage import next_version

    rctx = stage_context(ctx, progress=True, options={"seed": seed, "replace": replace})
    named = version or rctx.settings.splits.version  # the verb builds no new version by itself,
    taken = {} if version else withheld.in_version(rctx.store, named)
    if taken:  # but for a takedown or an opt-out: the default version and its exports stay, the next one leaves them out
        rctx.options["carry"], named = named, next_version(rctx.store, named)
    rctx.options["version"] = named
    d = run_stage("splits", rctx).details
    if taken:
        console.print(f"version {esc(repr(rctx.options['carry']))} holds {esc(withheld.described(taken))}: "
                      f"built {esc(repr(named))} without them, with its plan and roles "
                      f"(export it beside the old one's export: only the shards that held them are written)",
                      highlight=False, soft_wrap=True)
    console.print(manifest_table(d["version"], d["entries"], d["targets"]))
    console.print(f"groups: {esc(d['groups_described'])}", highlight=False, soft_wrap=True)
    if d.get("carried_from"):  # a new version: the plan it reused is its predecessor's, not its own
        console.print(f"version {esc(repr(d['version']))} is new: it carries the plan and roles of "
                      f"{esc(repr(d['carried_from']))}, {d['moved']:,} product(s) in another split than there", highlight=False)
    elif d["reused_plan"]:
        console.print(f"version {esc(repr(d['version']))} existed: its stored plan was reused, "
                      f"{d['moved']:,} product(s) moved split", highlight=False)
    if d["held_out"]:
        console.print(f"held out (in no split, splits.train below the rest): {d['held_out']:,}")
    for reason, n in d["excluded"].items():
        if n:
            console.print(f"[yellow]excluded[/] {esc(reason)}: {n:,}")
    console.print(f"manifest: [bold]{esc(d['manifest'])}[/]")


def manifest_table(version: str, splits: dict, targets: dict | None = None):
    """The rich summary of a manifest's splits: sizes, then modality completeness (two narrow tables)."""
    from rich.console import Group

    from ..console import Table

    sizes = Table(title=f"splits {version}")
    for col in ("split", "products", "target", "classes", "checksum"):
        sizes.add_column(col, justify="left" if col in ("split", "checksum") else "right", no_wrap=True)
    modal = Table(title=f"splits {version}: modality completeness (products with it)")
    for col in ("split", "image", "caption", "table", "video", "audio", "all five"):
        modal.add_column(col, justify="left" if col == "split" else "right", no_wrap=True)
    for name, e in splits.items():
        m = e["modalities"]
        target = (targets or {}).get(name)
        sizes.add_row(name, f"{e['products']:,}", "" if target is None else f"{target:,.0f}", f"{e['classes']:,}",
                      e["checksum"][:16])
        modal.add_row(name, *(f"{m[k]:,}" for k in ("image", "caption", "table", "video", "audio", "all_five")))
    return Group(sizes, modal)


def check_splits(
    ctx: typer.Context,
    version: Optional[str] = _VERSION,
) -> None:
    """Check a split version: no group across boundaries, a match for every query, the manifest equal to the store.

    \b
    Examples:
      m5data --store st check-splits --version v2
    """
    from rich.text import Text

    from ..console import Table, console
    from ..verbs import open_store
    from .check import check

    store, s = open_store(ctx)
    with one_line_errors():
        report = check(store, s, version=version)
    t = Table(title=f"check-splits {report.version}")
    t.add_column("invariant")
    t.add_column("violations", justify="right")
    for rule, n in report.rules:
        t.add_row(rule, Text(f"{n:,}", style="red") if n else "0")
    console.print(t)
    console.print(f"groups: {esc(report.groups.describe())}", highlight=False, soft_wrap=True)
    for v in report.violations:
        console.print(f"[red]violated[/] {v.rule}: {v.count:,}, e.g. {esc('; '.join(v.examples))}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(2)
    console.print("[green]all invariants hold[/]")
