"""URL lists given on the command line (img2dataset style) -> pending ``media`` rows.

Formats, by file extension:

* ``.txt`` (or anything else): one URL per line; blank lines and lines starting with ``#`` skipped;
* ``.csv`` / ``.tsv``: a header row; the URL column is ``url`` unless told otherwise;
* ``.parquet``: the URL column as above.

Optional columns: ``product_id`` (or the column named by ``product_column``) and ``kind``
(image, video or audio; otherwise the ``kind`` argument). Rows without a product id get a stable one
derived from the URL: ``url:<first 16 hex digits of sha1(url)>`` (so listing the same URL again
gives the same product and the same media row). ``media_id`` is sha1 of ``product_id|kind|url``,
as for crawled media (``storage.media_ids``). Rows are written with ``if_absent``: a URL already in the store keeps its
status, so a list can be re-run to resume it. No ``products`` rows are created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ..storage.media_ids import media_id

KINDS = ("image", "video", "audio")
BATCH = 10_000
ROLES = {"image": "main", "video": "video", "audio": "audio"}  # media.role of a listed URL, by kind


def url_product_id(url: str) -> str:
    """The product id given to a listed URL that came without one."""
    return "url:" + hashlib.sha1(url.encode()).hexdigest()[:16]


def _batches(path: Path, url_column: str, product_column: str | None) -> Iterator[list[dict]]:
    """Yield lists of ``{"url", "product_id"?, "kind"?}`` dicts from the file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        yield from _table_batches((pa.Table.from_batches([b]) for b in pf.iter_batches(BATCH)), names,
                                  url_column, product_column, path)
    elif suffix in (".csv", ".tsv"):
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
                                convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
                                read_options=pacsv.ReadOptions(block_size=1 << 22))
        names = reader.schema.names
        yield from _table_batches((pa.Table.from_batches([b]) for b in reader), names, url_column,
                                  product_column, path)
    else:
        batch: list[dict] = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    batch.append({"url": line})
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
        if batch:
            yield batch


def _table_batches(tables, names: list[str], url_column: str, product_column: str | None,
                   path: Path) -> Iterator[list[dict]]:
    if url_column not in names:
        raise ValueError(f"{path}: no column {url_column!r} (columns: {', '.join(names)}); name it with --url-col")
    if product_column is not None and product_column not in names:
        raise ValueError(f"{path}: no column {product_column!r} (columns: {', '.join(names)})")
    product_column = product_column or ("product_id" if "product_id" in names else None)
    columns = [c for c in (url_column, product_column, "kind" if "kind" in names else None) if c]
    for table in tables:
        rows = table.select(columns).to_pylist()
        yield [{"url": r[url_column], "product_id": r.get(product_column) if product_column else None,
                "kind": r.get("kind")} for r in rows]


def register_source(store, path: Path, *, kind: str = "image", url_column: str = "url",
                    product_column: str | None = None) -> pa.Table:
    """Write the file's URLs as pending media rows (if absent); return their ``media_id`` column."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not path.is_file():
        raise ValueError(f"URL list not found: {path}")
    ids: list[pa.Array] = []
    for batch in _batches(path, url_column, product_column):
        rows: dict[str, dict] = {}
        for item in batch:
            url = (item.get("url") or "").strip()
            if not url:
                continue
            row_kind = (item.get("kind") or kind).strip().lower()
            if row_kind not in KINDS:
                raise ValueError(f"{path}: kind must be one of {', '.join(KINDS)}, not {row_kind!r} (URL {url})")
            product = item.get("product_id") or url_product_id(url)
            mid = media_id(product, row_kind, url)
            rows[mid] = {"media_id": mid, "product_id": product, "kind": row_kind, "url": url,
                         "role": ROLES[row_kind], "status": "pending"}
        if rows:
            store.write("media", list(rows.values()), if_absent=True)
            ids.append(pa.array(list(rows), pa.string()))
    media_ids = pa.chunked_array(ids, pa.string()) if ids else pa.chunked_array([], pa.string())
    return pa.table({"media_id": media_ids}).group_by("media_id").aggregate([])
