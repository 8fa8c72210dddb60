"""Sample rows for every store table, and file hashes of a store (shared by tests)."""

import hashlib
import os
from datetime import datetime, timezone

import pyarrow as pa

from m5data.storage import TABLES, Store

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def sample_value(field: pa.Field, i: int):
    t = field.type
    if pa.types.is_list(t):
        item = t.value_type
        if pa.types.is_integer(item) or pa.types.is_floating(item):
            return [i, i + 1]
        return [f"级别{i}", f"子类{i}"]
    if pa.types.is_string(t):
        return f"{field.name}-值-{i}"
    if pa.types.is_boolean(t):
        return i % 2 == 0
    if pa.types.is_integer(t):
        return i + 1
    if pa.types.is_floating(t):
        return i + 0.25
    if pa.types.is_timestamp(t):
        return NOW
    raise AssertionError(f"no sample for {t}")


def as_map(store, table, key, value) -> dict:
    return {r[key]: r[value] for r in store.read(table, columns=[key, value]).to_pylist()}


def query(store, sql: str) -> list[tuple]:
    """The rows of one SQL query over a store's views."""
    with store.connect(cursor=True) as con:
        return con.execute(sql).fetchall()


def sample_rows(name: str, n: int = 3, start: int = 0) -> list[dict]:
    return [{f.name: sample_value(f, i) for f in TABLES[name].schema} for i in range(start, start + n)]


def filled_store(root) -> Store:
    """A new store at ``root``: four sample products, two specs each (品牌, 颜色; values alternate)."""
    store = Store.init(root)
    store.write("products", sample_rows("products", 4))
    store.write("specs", [{"product_id": f"a:{i}", "position": j, "property": p, "value": f"{p}{i % 2}"}
                          for i in range(4) for j, p in enumerate(["品牌", "颜色"])])
    return store


def file_hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out
