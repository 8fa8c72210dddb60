"""The products a matcher compares, as columns: text, brand, price, category, specs, main-image pHash.

One list entry or array element per product; the row number is the product's index. The store's
tables fill it (:func:`read_store`); the benchmark fills it from the ER-Magellan files directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...storage.main_image import main_image_sql


@dataclass
class Products:
    """Products by row: ``ids[i]`` is product ``i``."""

    ids: list[str]
    title: list[str]
    text: list[str]  # caption / description beyond the title ("" when none)
    brand: list[str]  # normalised brand spelling ("" when none)
    price: np.ndarray  # float64, NaN when none
    category: list[str]  # leaf category ("" when none)
    specs: list[dict[str, str]] = field(default_factory=list)  # normalised property -> value, brand excluded
    phash: np.ndarray | None = None  # uint64 main-image pHash
    has_phash: np.ndarray | None = None  # bool

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.ids)}


_PRODUCTS = f"""
    SELECT p.product_id, p.title, p.description, p.price, p.category_path, c.text AS caption, m.phash
    FROM products p
    LEFT JOIN captions c ON c.product_id = p.product_id
    LEFT JOIN ({main_image_sql("product_id, phash")}) m ON m.product_id = p.product_id
    ORDER BY p.product_id"""


def read_store(store, brand_property: str, only=None) -> Products:
    """Every product of ``store`` with its caption, main-image pHash and spec values (``brand_property``
    gives the brand); ``only`` (product ids, an Arrow array or list): those products alone (dedup reads
    just the products of its candidate pairs, not a million)."""
    from ..dedup.phash import parse_phash

    # a cursor of the read database: its TEMP views (information_schema lists them) and "wanted" are its own
    con = store.connect(need=("products",), only=("products", "media", "specs", "captions"), cursor=True)
    try:
        tables = {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}
        sql = _PRODUCTS
        if only is not None:
            import pyarrow as pa

            con.register("wanted", pa.table({"product_id": pa.array(only, pa.string())}))
            sql = sql.replace("FROM products p", "FROM (SELECT * FROM products WHERE product_id IN "
                              "(SELECT product_id FROM wanted)) p")
        if "captions" not in tables:
            sql = sql.replace("c.text AS caption", "NULL AS caption").replace(
                "LEFT JOIN captions c ON c.product_id = p.product_id", "")
        if "media" not in tables:
            sql = sql.replace("m.phash", "NULL AS phash").split("LEFT JOIN (SELECT")[0] + " ORDER BY p.product_id"
        t = con.sql(sql).fetchnumpy()
        wanted = "" if only is None else " AND product_id IN (SELECT product_id FROM wanted)"
        specs = (con.sql("SELECT product_id, property, value FROM specs WHERE property IS NOT NULL AND value IS NOT NULL"
                         f"{wanted} ORDER BY product_id, position").to_arrow_table() if "specs" in tables else None)
    finally:
        con.close()
    ids = [str(x) for x in t["product_id"].tolist()]
    brands, spec_rows = _specs(ids, specs, norm(brand_property))
    texts = [" ".join(x for x in (c, d) if x) for c, d in zip(_strs(t["caption"]), _strs(t["description"]))]
    ph, ok = parse_phash(_strs(t["phash"]))
    price = np.array([np.nan if v is None else float(v) for v in _objs(t["price"])], dtype=np.float64)
    cats = [str(c[-1]) if c is not None and len(c) else "" for c in _objs(t["category_path"])]
    return Products(ids=ids, title=_strs(t["title"]), text=texts, brand=brands, price=price, category=cats,
                    specs=spec_rows, phash=ph, has_phash=ok)


def _specs(ids: list[str], specs, brand: str) -> tuple[list[str], list[dict[str, str]]]:
    """Each product's brand (its first non-empty ``brand`` value) and its other properties (the first
    non-empty value of each, in spec order), properties and values :func:`norm`-ed. Vectorised: each
    distinct property and value spelling is normalised once (the 100k scale world: 2.1 million spec
    rows, ~16,000 distinct values), rows are matched to products and first values found by numpy."""
    import pyarrow as pa
    import pyarrow.compute as pc

    brands, rows = [""] * len(ids), [{} for _ in ids]
    if specs is None or not specs.num_rows:
        return brands, rows
    specs = specs.combine_chunks()
    row = pc.index_in(specs["product_id"], value_set=pa.array(ids, pa.string())).fill_null(-1)
    row = row.to_numpy().astype(np.int64)

    def codes(col) -> tuple[np.ndarray, list[str]]:  # each row's normalised spelling, as an index into names
        enc = pc.dictionary_encode(col.combine_chunks())
        names = [norm(x) for x in enc.dictionary.to_pylist()]
        first = {}
        canon = np.fromiter((first.setdefault(x, len(first)) for x in names), np.int64, len(names))
        return canon[enc.indices.to_numpy(zero_copy_only=False)], list(first)

    prop, props = codes(specs["property"])
    value, values = codes(specs["value"])
    empty_p = np.array([not x for x in props], dtype=bool)
    empty_v = np.array([not x for x in values], dtype=bool)
    ok = (row >= 0) & ~empty_v[value]
    is_brand = np.array([x == brand for x in props], dtype=bool)[prop]
    b = np.flatnonzero(ok & is_brand)
    _, first = np.unique(row[b], return_index=True)  # the first non-empty brand value of each product
    for i, v in zip(row[b[first]].tolist(), value[b[first]].tolist()):
        brands[i] = values[v]
    k = np.flatnonzero(ok & ~is_brand & ~empty_p[prop])
    _, first = np.unique(row[k] * len(props) + prop[k], return_index=True)  # a property's first value
    k = np.sort(k[first])  # spec order: rows of a product are together, in position order
    r, names, vals = row[k], [props[i] for i in prop[k].tolist()], [values[i] for i in value[k].tolist()]
    bounds = np.flatnonzero(np.r_[True, r[1:] != r[:-1], True]).tolist() if len(r) else [0]
    for s, e in zip(bounds[:-1], bounds[1:]):
        rows[int(r[s])] = dict(zip(names[s:e], vals[s:e]))
    return brands, rows


def norm(s: str) -> str:
    """Lower case, outer whitespace and trailing colons off: how properties and values are compared."""
    return s.strip().rstrip(":：").strip().lower()


def _objs(col) -> list:
    if isinstance(col, np.ma.MaskedArray):
        return [None if m else v for v, m in zip(col.data.tolist(), np.ma.getmaskarray(col).tolist())]
    return list(col.tolist()) if hasattr(col, "tolist") else list(col)


def _strs(col) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in _objs(col)]
