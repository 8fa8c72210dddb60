"""``m5data annotate pools``: candidate pools.

Exit codes: 0 done; 1 a bad option, split version or truth folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...console import esc
from ...verbs import one_line_errors


def pools(
    ctx: typer.Context,
    split_version: Optional[str] = typer.Option(None, "--split-version", help="Queries from this split version's query splits (default: a seeded sample, pools.queries)."),
    queries: Optional[float] = typer.Option(None, "--queries", help="Query sample: a share of products (<= 1; 1 = all) or a count (> 1); default 0.1."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="Candidates per query (default 500)."),
    search: Optional[str] = typer.Option(None, "--search", help="exact (blocked matmul, default), faiss-flat or faiss-hnsw (approximate; recall against exact printed)."),
    text_model: Optional[str] = typer.Option(None, "--text-model", help="Local sentence-transformers model folder for the text block (default TF-IDF + SVD)."),
    image: Optional[str] = typer.Option(None, "--image", help="Image block: descriptor (default), vectors (the vision stage's image_vectors of the main image) or none."),
    image_model: Optional[str] = typer.Option(None, "--image-model", help="With --image vectors: the image_vectors model (default: the one model the table holds)."),
    block: Optional[int] = typer.Option(None, "--block", help="Queries per search block (memory and resume unit; default 2048)."),
    ann_check: int = typer.Option(0, "--ann-check", help="Also search this many queries with faiss HNSW and print its recall against exact."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore finished blocks of an interrupted run with the same inputs."),
    full: bool = typer.Option(False, "--full", help="Embed every product and search every query again (default: only what changed since the last complete run, with its kept embedder)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Demo shop (or its truth folder): print recall of true instance matches at k = 10, 50 and K."),
) -> None:
    """Build each query's candidate pool: top-K gallery products by cosine of image + text embeddings -> pools.

    \b
    Examples:
      m5data --store st annotate pools
      m5data --store st annotate pools --queries 0.1 -k 100
    """
    import logging

    import jieba

    from ...console import console, stage_summary
    from ...verbs import run_stage, stage_context

    jieba.setLogLevel(logging.WARNING)
    rctx = stage_context(ctx, progress=True, options={"full": full, "split_version": split_version, "fresh": fresh}, **{
        "pools.queries": queries, "pools.k": k, "pools.search": search,
        "pools.text_model": text_model, "pools.image": image, "pools.image_model": image_model, "pools.block": block,
    })
    store, s = rctx.store, rctx.settings
    if search and search != "exact" and not ann_check:
        ann_check = min(s.pools.block, 1000)  # an approximate search always reports its recall
    rctx.options["ann_check"] = ann_check
    stats = run_stage("pools", rctx, summary=False)
    d = stats.details
    if d["up_to_date"]:
        console.print(f"pools up to date: nothing changed since the run that made them ({d['n_blocks']:,} blocks "
                      f"of {d['n_queries']:,} queries, fingerprint {esc(d['fingerprint'])}); --full embeds and searches again")
    console.print(stage_summary(stats))
    console.print(summary_table(d, s))
    if score_against is not None:
        from .job import score_pools

        with one_line_errors(FileNotFoundError, ValueError):
            score = score_pools(store, score_against, ks=tuple(sorted({10, 50, s.pools.k})))
        for kk, r in score["recall"].items():
            console.print(f"recall@{kk} of true instance matches: [bold]{r:.4f}[/] "
                          f"({score['pairs']} true pairs of {score['queries']} queries)")


def summary_table(d: dict, s):
    """The pools run's counts, from its stage run's ``details``, and the search settings ``s``."""
    from ...console import Table

    t = Table(title="candidate pools")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for name, value in [("embedder", d["embedder"]), ("search", s.pools.search),
                        ("K", f"{s.pools.k:,}"), ("products", f"{d['n_products']:,}"),
                        ("queries", f"{d['n_queries']:,}"), ("gallery", f"{d['n_gallery']:,}"),
                        ("vectors", "not read (pools up to date)" if d["up_to_date"]
                         else "reused (same inputs)" if d["vectors_reused"] else "embedded"),
                        ("blocks", f"{d['n_blocks']:,}"), ("blocks resumed", f"{d['n_resumed']:,}"),
                        ("stale pools dropped", f"{d['dropped_queries']:,}"),
                        ("run", f"full ({d['refit']})" if d.get("refit") else "incremental"),
                        ("queries searched against the whole gallery", f"{d.get('searched', 0):,}"),
                        ("pools written", f"{d.get('rewritten', 0):,}"),
                        ("table compacted (rows before -> after)",
                         f"{d['compacted'][0]:,} -> {d['compacted'][1]:,}" if d.get("compacted") else "no"),
                        ("captions made from titles (extract not run)", f"{d['from_titles']:,}")]:
        t.add_row(name, esc(str(value)))  # the embedder names a model folder: user data
    for reason, n in sorted(d["gaps"].items()):
        t.add_row(f"  {esc(reason)}", f"{n:,}")
    if d["ann_recall"] is not None:
        t.add_row("approximate search recall vs exact", f"{d['ann_recall']:.4f}")
    return t
