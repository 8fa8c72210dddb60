"""Growing a store through the store API, as a later crawl would: copies of products under new ids."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def product_ids(store) -> list[str]:
    return store.read("products", columns=["product_id"]).column("product_id").to_pylist()


def grow(store, tag: str, n: int, changed: str) -> None:
    """Copy ``n`` products under new ids (``<platform>:<tag><source>``) with their rows, re-write
    ``changed``'s title: one store write per table."""
    products = store.read("products")
    originals = sorted(p for p in products.column("product_id").to_pylist() if ":" + tag not in p)[:n]  # the same every run: a read's row order is not
    renamed = {p: f"{p.split(':', 1)[0]}:{tag}{p.split(':', 1)[1]}" for p in originals}
    keep = pa.array(list(renamed))

    def moved(table):
        ids = [renamed[p] for p in table.column("product_id").to_pylist()]
        return table.set_column(table.schema.get_field_index("product_id"), "product_id", pa.array(ids, pa.string()))

    new = moved(products.filter(pc.is_in(products.column("product_id"), keep)))
    store.write("products", new.set_column(new.schema.get_field_index("source_id"), "source_id",
                                           pa.array([p.split(":", 1)[1] for p in new.column("product_id").to_pylist()])))
    for t in ("specs", "captions"):
        rows = store.read(t)
        store.write(t, moved(rows.filter(pc.is_in(rows.column("product_id"), keep))))
    media = store.read("media")
    media = moved(media.filter(pc.is_in(media.column("product_id"), keep)))
    store.write("media", media.set_column(media.schema.get_field_index("media_id"), "media_id",
                                          pc.binary_join_element_wise(media.column("media_id"), pa.scalar("-" + tag), "")))
    row = products.filter(pc.equal(products.column("product_id"), changed))
    store.write("products", row.set_column(row.schema.get_field_index("title"), "title",
                                           pa.array([f"{row.column('title')[0].as_py()} ({tag})"])))
