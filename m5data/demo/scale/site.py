"""``write_scale_site(world_dir)``: the HTML a crawler reads, for a scale world (opt-in: ~10 KB a product).

The same pages as the demo shop's (:mod:`m5data.demo.site`), so ``m5data demo-shop serve`` serves a
scale world and ``m5data run`` crawls it: product pages from each chunk's products (rebuilt from the
seed: chunks are pure functions of it, nothing of the world is held), then listing pages of every
leaf category in rank order, each platform's category index, home page, robots.txt and sitemaps.

Memory stays bounded at any size: product pages are written chunk by chunk in worker processes,
each of which also writes its products' listing entries to ``chunks/listings/chunk-NNNNN.parquet``;
the listing pages and the sitemaps are then streamed out of DuckDB's sort of those entries (which
spills to disk), one category at a time. ``chunks/pages-NNNNN.json`` marks a chunk's pages done,
so an interrupted run resumes. ``truth/pages.parquet`` and the manifest's ``listing_pages`` are
filled in at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .workers import chunk_map
from .world import ScaleConfig, build_chunk, scale_taxonomy

LISTING_SIZE = {"shopa": 20, "shopb": 30}  # products per listing page (the demo shop's defaults)


def _listing_schema():
    import pyarrow as pa

    return pa.schema([("platform", pa.string()), ("category_code", pa.string()), ("rank", pa.float64()),
                      ("source_id", pa.string()), ("url", pa.string()), ("item", pa.string())])


def write_chunk_pages(cfg: ScaleConfig, out: str, index: int) -> dict:
    """Write chunk ``index``'s product pages and listing entries; return (and mark) its counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..site import listing_item, write_product_page
    from .generate import _atomic_write

    root = Path(out)
    tax = scale_taxonomy(cfg).tax
    rows, no_charset = [], []
    for p in build_chunk(cfg, index).products:
        declared, actual = write_product_page(root / "site", tax, p)
        if declared != actual:
            no_charset.append(p.url)
        rows.append({"platform": p.platform, "category_code": p.category.code, "rank": p.rank,
                     "source_id": p.source_id, "url": p.url, "item": listing_item(p)})
    path = root / "chunks" / "listings" / f"chunk-{index:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=_listing_schema()), tmp, compression="zstd")
    os.replace(tmp, path)
    counts = {"index": index, "product_pages": len(rows), "no_charset": no_charset}
    _atomic_write(root / "chunks" / f"pages-{index:05d}.json", json.dumps(counts).encode())
    return counts


def _product_pages(world: Path, cfg, workers: int | None) -> tuple[list, int]:
    """Write the product pages of every chunk not written yet (in ``workers`` processes); the pages
    served without a charset and the count of product pages, over every chunk."""
    missing = [k for k in range(cfg.n_chunks()) if not (world / "chunks" / f"chunk-{k:05d}.json").exists()]
    if missing:
        raise ValueError(f"{world}: the world is incomplete ({len(missing)} of {cfg.n_chunks()} chunks missing); "
                         "run generate again to finish it")
    todo = [k for k in range(cfg.n_chunks()) if not (world / "chunks" / f"pages-{k:05d}.json").exists()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    for _ in chunk_map(write_chunk_pages, [(cfg, str(world), k) for k in todo], workers=workers, per_worker=8):
        pass
    no_charset, product_pages = [], 0
    for k in range(cfg.n_chunks()):
        marker = json.loads((world / "chunks" / f"pages-{k:05d}.json").read_text())
        no_charset += marker["no_charset"]
        product_pages += marker["product_pages"]
    return no_charset, product_pages


def _write_serve_and_counts(world: Path, charsets: dict, no_charset: list, listing_pages: int,
                            product_pages: int) -> None:
    """The world's ``serve.json`` (how the server serves its pages) and its manifest's page counts."""
    (world / "serve.json").write_text(json.dumps(
        {"format": 1, "charset": charsets, "no_charset": sorted(no_charset), "slow": [], "transient_500": []},
        ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    manifest = world / "truth" / "manifest.json"
    man = json.loads(manifest.read_text(encoding="utf-8"))
    man["counts"]["listing_pages"] = listing_pages
    man["counts"]["product_pages"] = product_pages
    manifest.write_text(json.dumps(man, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_scale_site(world_dir: str | Path, *, workers: int | None = None) -> dict:
    """Write (or finish) the HTML site of a generated scale world; return its page counts.

    Args:
        world_dir: a world written by ``generate_scale`` (every chunk complete).
        workers: processes writing product pages (default: CPU count).
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..site import PAGE_CHARSET, _write, index_page, listing_url, write_listing_page, write_root
    from ..taxonomy import PLATFORMS
    from .generate import truth_schema
    from .store import load_config

    world = Path(world_dir)
    cfg = load_config(world)
    no_charset, product_pages = _product_pages(world, cfg, workers)

    st = scale_taxonomy(cfg)
    categories = {(platform, cat.code): cat for leaf in st.leaves for platform, cat in leaf.categories.items()}
    site = world / "site"
    tmpdir = world / "chunks" / ".duckdb-tmp"
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '1GB'; SET threads = 1; SET temp_directory = '{tmpdir}'")
    listings = str(world / "chunks" / "listings" / "chunk-*.parquet").replace("'", "''")
    pages_file = world / "truth" / "pages.parquet"
    pages_tmp = pages_file.with_name(f".pages.{os.getpid()}.tmp")
    schema = truth_schema("pages")
    listing_pages, seen = 0, {p: [] for p in PLATFORMS}
    with pq.ParquetWriter(pages_tmp, schema, compression="zstd") as pages_out:
        def page_rows(rows: list[dict]) -> None:
            if rows:
                pages_out.write_table(pa.Table.from_pylist(rows, schema=schema))

        reader = con.sql(f"SELECT platform, category_code, url, item FROM read_parquet('{listings}') "
                         "ORDER BY platform, category_code, rank, source_id").to_arrow_reader(50_000)
        current, items = None, []

        def flush(key, items: list[tuple[str, str]]) -> None:
            nonlocal listing_pages
            if key is None:
                return
            platform, code = key
            cat, size = categories[key], LISTING_SIZE[platform]
            n_pages = (len(items) + size - 1) // size
            rows = []
            for page in range(1, n_pages + 1):
                part = items[(page - 1) * size: page * size]
                write_listing_page(site, st.tax, cat, [item for _, item in part], page, n_pages)
                rows.append({"url": listing_url(platform, code, page), "platform": platform, "kind": "listing",
                             "category_code": code, "page": page, "n_products": len(part), "http_fault": "none"})
            rows += [{"url": url, "platform": platform, "kind": "product", "category_code": code, "page": 0,
                      "n_products": 1, "http_fault": "none"} for url, _ in items]
            page_rows(rows)
            listing_pages += n_pages
            seen[platform].append(cat)

        for batch in reader:
            cols = batch.to_pydict()
            for platform, code, url, item in zip(cols["platform"], cols["category_code"], cols["url"], cols["item"]):
                if (platform, code) != current:
                    flush(current, items)
                    current, items = (platform, code), []
                items.append((url, item))
        flush(current, items)
        for platform in PLATFORMS:
            _write(site / platform / "index.html", index_page(st.tax, platform, seen[platform]), PAGE_CHARSET[platform])
        page_rows([{"url": f"/{p}/", "platform": p, "kind": "index", "category_code": "", "page": 0,
                    "n_products": 0, "http_fault": "none"} for p in PLATFORMS])
    os.replace(pages_tmp, pages_file)

    def urls(platform: str):  # sitemap order: index, listings, products
        yield f"/{platform}/"
        for kind in ("listing", "product"):
            rel = con.sql(f"SELECT url FROM read_parquet('{str(pages_file).replace(chr(39), chr(39) * 2)}') "
                          f"WHERE platform = '{platform}' AND kind = '{kind}'").to_arrow_reader(100_000)
            for batch in rel:
                yield from batch.column(0).to_pylist()

    write_root(site, {p: urls(p) for p in PLATFORMS})
    con.close()
    _write_serve_and_counts(world, PAGE_CHARSET, no_charset, listing_pages, product_pages)
    return {"product_pages": product_pages, "listing_pages": listing_pages,
            "categories": sum(len(v) for v in seen.values())}
