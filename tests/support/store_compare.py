"""Compare two stores' tables, ignoring what differs between equal runs (run ids, timestamps, attempts)."""

from __future__ import annotations

import json

import pyarrow as pa

# columns that record when or how often, not what: they differ between two equal runs
VOLATILE = {"run_id", "attempts", "meta", "error", "http_status", "seconds"}
TABLES = ("products", "specs", "media", "captions", "crawl_errors", "taxonomy", "label_map")


def table_rows(store, name: str) -> list[str]:
    """A table's rows as sorted JSON strings, without volatile columns; the store's path becomes <store>."""
    table = store.read(name)
    keep = [f.name for f in table.schema if f.name not in VOLATILE and not pa.types.is_timestamp(f.type)]
    root = str(store.root)
    rows = [json.dumps(r, sort_keys=True, default=str, ensure_ascii=False).replace(root, "<store>")
            for r in table.select(keep).to_pylist()]
    return sorted(rows)


def differences(a, b, tables=TABLES) -> dict[str, tuple[int, int, list[str]]]:
    """``{table: (rows in a, rows in b, a few rows only one side has)}`` for the tables that differ."""
    out = {}
    for name in tables:
        ra, rb = table_rows(a, name), table_rows(b, name)
        if ra != rb:
            only = sorted(set(ra) ^ set(rb))
            out[name] = (len(ra), len(rb), only[:4])
    return out
