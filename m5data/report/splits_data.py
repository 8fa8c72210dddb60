"""The report's splits section: the current split version's rows (read from only the parts that hold
it where it can), each split's size and completeness, and the version's manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..storage.blobs import BlobPathError, resolve_blob
from .data import MODALITIES, fetch, quoted


@dataclass
class SplitInfo:
    version: str | None
    sizes: list[tuple[str, int, int]]  # split, products, classes
    completeness: list[tuple]  # split, image, caption, table, video, audio, all five
    manifest: dict | None


def split_versions(con, store=None) -> list[str]:
    """The split version the report shows, as a list: none before build-splits. It is the store's current
    one (``splits.versions.current``: the newest by the number its name ends with, v10 after v9).
    Its rows (split, product_id) are the TEMP view ``report_split_rows``, read once by :func:`splits`. With ``store``
    (a local one) they are read from only the parts that hold that version (``splits.versions.version_parts``),
    else from the view (whose window over every version costs 1.8 CPU-s of 4.1 million rows at 1M; made
    here with ``store``: the report's connection has none)."""
    from ..splits.versions import current, version_parts

    found = version_parts(store) if store is not None else None
    if found is None and store is not None:  # the report's connection makes no view of splits (0.02 s)
        from ..storage.schema import table_spec

        con.execute(f"CREATE OR REPLACE TEMP VIEW splits AS {store.read_sql(con, table_spec('splits'))}")
    if found is None:
        versions = [v for v, in fetch(con, "SELECT DISTINCT version FROM splits")]
    else:
        versions = list(found)
    version = current(versions)
    if version is None:
        return []
    if found is None:
        con.execute("CREATE OR REPLACE TEMP VIEW report_split_rows AS SELECT version, split, product_id "
                    f"FROM splits WHERE version = '{quoted(version)}'")
        return [version]
    from ..storage.schema import SEQ_COLUMN

    # Every row of the version lies in the parts that hold it, and the view holds the rows of its newest
    # write (a version is one group), each key once: those rows, without the view's window per key.
    files = ", ".join(f"'{quoted(p)}'" for p in found[version])
    rows = f"SELECT * FROM read_parquet([{files}], union_by_name = true) WHERE version = '{quoted(version)}'"
    if len(found[version]) == 1 and _one_write(found[version][0]):
        # one part, one write of the version and each key once (its key sidecar): its rows as they are (made
        # DISTINCT over the newest write, 101k rows cost 0.02 s)
        con.execute(f"CREATE OR REPLACE TEMP VIEW report_split_rows AS SELECT version, split, product_id FROM ({rows})")
        return [version]
    con.execute("CREATE OR REPLACE TEMP VIEW report_split_rows AS SELECT DISTINCT version, split, product_id FROM ("
                f"{rows} QUALIFY {SEQ_COLUMN} = max({SEQ_COLUMN}) OVER ())")
    return [version]


def _one_write(part) -> bool:
    """The part holds each key of its splits once, each version from one write (its key sidecar)."""
    from ..storage import keyindex
    from ..storage.schema import table_spec

    [(_, keys)] = keyindex.parts_keys([part], table_spec("splits"))
    return keys is not None and keys.unique


def splits(con, store_root: Path, versions: list[str] | None = None) -> SplitInfo:
    """The newest split version's sizes and completeness (``versions``: :func:`split_versions`, when
    the caller called it on ``con``: it holds the version's rows)."""
    versions = split_versions(con) if versions is None else versions
    if not versions:
        con.execute("DROP VIEW IF EXISTS report_split_rows")
        return SplitInfo(None, [], [], None)
    version = versions[0]
    # one join of the version's products with their flags and labels for both tables (the sizes count
    # every product of a split; the completeness, as a join with the flags, the splits with flagged ones)
    rows = fetch(con, f"""
        SELECT s.split, count(*), count(DISTINCT l.sub_class_id), count(f.product_id),
               {', '.join(f'count(*) FILTER (WHERE f.m_{m})' for m in MODALITIES)},
               count(*) FILTER (WHERE {' AND '.join('f.m_' + m for m in MODALITIES)})
        FROM report_split_rows s LEFT JOIN report_flags f USING (product_id)
        LEFT JOIN label_map l ON l.platform = f.platform AND l.raw_path = f.path AND l.class_id IS NOT NULL
        GROUP BY 1 ORDER BY 1""")
    sizes = [(r[0], r[1], r[2]) for r in rows]
    comp = [(r[0], *r[4:]) for r in rows if r[3]]
    con.execute("DROP VIEW IF EXISTS report_split_rows")
    manifest = None
    try:  # the version is a table value: it must not lead the path out of the store
        path = resolve_blob(store_root, f"derived/splits/{version}/manifest.json")
    except BlobPathError:
        path = None
    if path is not None and path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
    return SplitInfo(version, sizes, comp, manifest)
