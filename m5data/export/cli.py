"""``m5data export`` and ``m5data check-shards``.

Exit codes: export 0 done, 1 a bad option, no splits, an output folder of another export, or
object storage that cannot be used; check-shards 0 every indexed shard has its size and sha256,
1 a shard is missing, truncated or altered (each named), no index was found, or the storage
cannot be used. ``--out`` and the folder may be URLs (``s3://bucket/prefix``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..verbs import one_line_errors


def export(
    ctx: typer.Context,
    split: Optional[str] = typer.Option(None, "--split", help="A split name (train, query-c, ...) or all (default export.split: all)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="webdataset (default), parquet or m5product (export.format)."),
    out: str = typer.Option(..., "--out", help="Output folder or URL such as s3://bucket/prefix (an export there is resumed)."),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", help="Products per shard (default 1000)."),
    shard_bytes: Optional[int] = typer.Option(None, "--shard-bytes", help="Cut shards at about this many bytes of media instead."),
    version: Optional[str] = typer.Option(None, "--version", help="Split version (default: the current one, the highest number: v10 after v9)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes writing shards (0 = one per core, inline under 500 samples; 1 = inline)."),
    full: bool = typer.Option(False, "--full", help="Write every shard (default: a WebDataset export of a new split "
                              "version beside the last one writes only new and changed samples)."),
) -> None:
    """Export a split (or all) as WebDataset shards, Hugging Face Parquet or the M5Product layout; resumable.

    \b
    Examples:
      m5data --store st export --split all --out shards/
      m5data --store st export --split query-c --format parquet --out hf/
    """
    from ..console import Table, console, esc
    from ..verbs import run_stage, stage_context
    from .remote import is_remote

    rctx = stage_context(ctx, progress=True, options={"out": out if is_remote(out) else Path(out),
                                                      "version": version, "full": full},
                         **{"export.shard_size": shard_size, "export.shard_bytes": shard_bytes,
                            "export.workers": workers, "export.format": fmt, "export.split": split})
    d = run_stage("export", rctx).details
    for name, why in d["skipped_splits"].items():
        console.print(f"[yellow]skipped[/] split {esc(repr(name))}: not a plain name ({esc(why)}); "
                      "nothing of it was written", highlight=False, soft_wrap=True)
    t = Table(title=esc(f"{d['format']} export of version {d['version']} -> {d['out']}"))
    t.add_column("split")
    t.add_column("products", justify="right")
    for name, n in d["splits"].items():
        t.add_row(esc(name), f"{n:,}")
    console.print(t)
    inherited = f", {d['shards_inherited']} taken over from {esc(d['base'])}" if d.get("shards_inherited") else ""
    if d.get("shards_kept"):
        inherited += f", {d['shards_kept']} copied from earlier shards without the samples that left them"
    console.print(f"shards: {d['shards']} ({d['shards_written']} written, {d['shards_skipped']} already finished"
                  f"{inherited})", highlight=False)
    if d.get("faces_blurred") or d.get("faces_detected") or d.get("videos_withheld"):  # export.blur_faces
        why = ", ".join(f"{esc(r)} {n:,}" for r, n in sorted(d.get("videos_withheld_reasons", {}).items()))
        withheld = (f", {d['videos_withheld']:,} original video(s) left out: {why or 'faces'}"
                    if d.get("videos_withheld") else "")
        console.print(f"faces blurred: {d.get('faces_blurred', 0):,} ({d.get('faces_detected', 0):,} picture(s) "
                      f"looked at for faces now{withheld})", highlight=False)
    if d.get("codes_blurred") or d.get("codes_scanned"):  # export.blur_codes
        console.print(f"QR codes blurred: {d.get('codes_blurred', 0):,} ({d.get('codes_scanned', 0):,} picture(s) "
                      "scanned for codes now)", highlight=False)
    ch = d.get("changes") or {}
    if d.get("base") or d.get("full_because") == "nothing changed":
        console.print(f"samples: new {ch.get('new', 0):,}, changed {ch.get('changed', 0):,}, "
                      f"unchanged {ch.get('unchanged', 0):,}, removed {ch.get('removed', 0):,}", highlight=False)
    if d.get("masked"):
        console.print("personal data masked: " + ", ".join(f"{k} {n:,}" for k, n in d["masked"].items()), highlight=False)
    if d.get("taken_down"):
        console.print(f"taken down: {d['taken_down']:,} sample(s) left out (m5data takedown --list)", highlight=False)


def check_shards(
    folder: str = typer.Argument(..., help="An export folder (WebDataset, Parquet or M5Product), or its URL (s3://bucket/prefix)."),
    no_hash: bool = typer.Option(False, "--no-hash", help="Compare sizes only (fast)."),
) -> None:
    """Verify exported shards against their index: missing, truncated or altered shards (exit 1).

    \b
    Examples:
      m5data check-shards shards/
      m5data check-shards s3://bucket/m5/v1 --no-hash
    """
    from ..console import Table, console, esc, fail
    from .check import check_shards as run_check

    with one_line_errors():
        report = run_check(folder, hash_files=not no_hash)
    unit = report.unit
    if report.problems and not report.checked:  # no index, or one that cannot be read: nothing was checked
        fail(f"{report.problems[0].path}: {report.problems[0].problem}")
    if report.problems:
        t = Table(title=esc(f"{len(report.problems)} bad {unit}(s) in {folder}"))
        t.add_column(unit)
        t.add_column("problem")
        for p in report.problems:  # paths come from index files: data, escaped
            t.add_row(esc(p.path), esc(p.problem))
        console.print(t)
        fail(f"{len(report.problems)} of {report.checked} {unit}(s) failed: "
                    + ", ".join(p.path for p in report.problems[:10]))
    console.print(f"{report.checked} {unit}(s) ok: {report.samples:,} samples, {report.bytes:,} bytes")
