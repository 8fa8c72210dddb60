"""The queries every stage needs, defined once beside the store: a shard of the pending work and the
store's split versions (which one is *current*, docs/splits.md).

The current version is the newest by :func:`~m5data.storage.names.version_order`: the number its name
ends with, then its name (``v10`` after ``v9``, ``v1`` after ``imported``), among the versions whose
names are plain names (a name that cannot be a folder name is never current). It does not depend on
the order the versions were written in: building ``v1`` again after ``v2`` leaves ``v2`` current.
Export (its default ``--version`` and the flow's export), the report and the pipeline's splits stage
(the version it builds after) all take it from here.
"""

from __future__ import annotations

from .names import name_problem, version_order


def shard_sql(key: str, shard: tuple[int, int]) -> str:
    """The SQL predicate of shard ``(i, n)`` of rows by the column ``key``: ``hash(key) % n = i`` (the
    flows' task runners fan the n shards of a sharded stage out to workers; docs/flows.md)."""
    i, n = (int(x) for x in shard)
    return f"hash({key}) % {n} = {i}"


# ------------------------------------------------------------------ split versions
def current(versions) -> str | None:
    """The current one of ``versions`` (names), or None when none is a plain name."""
    plain = [v for v in versions if name_problem(v) is None]
    return max(plain, key=version_order) if plain else None


def version_parts(store) -> dict[str, list] | None:
    """Every split version the splits table holds, each with the parts that hold rows of it (a part's
    Parquet statistics where each row group holds one version, else its distinct versions: a read of
    that one column); None on object storage (the view is read) or where a part cannot be read (the
    view's read then says which)."""
    import duckdb

    from .footers import group_versions

    if store.local_root() is None:  # no part files to read footers of (object storage)
        return None
    out: dict[str, list] = {}
    con = None  # made only for a part whose statistics do not say its versions (a new database: ~25 ms)
    try:
        for part in store.parts("splits"):
            found = group_versions(part)
            if found is None:
                con = con or duckdb.connect()
                quoted = str(part).replace("'", "''")
                found = [v for v, in con.execute(f"SELECT DISTINCT version FROM read_parquet('{quoted}')").fetchall()]
            for v in set(found):  # a version of several row groups: the part once
                if v is not None:
                    out.setdefault(v, []).append(part)
    except duckdb.Error:
        return None
    finally:
        if con is not None:
            con.close()
    return out


def stored_versions(store, con=None) -> list[str]:
    """The names of every split version in the store's ``splits`` table: from the local parts' footers
    (:func:`version_parts`), else the parts' ``version`` column on object storage (every version in a
    part is in the table's view: rows are never removed; the view's window over every version's rows
    cost 1.8 CPU-s at 1M), else the view (a local part that cannot be read: its read says which);
    on ``con`` when given."""
    parts = store.parts("splits")
    if not parts:
        return []
    found = version_parts(store)
    if found is not None:
        return sorted(found)
    if store.local_root() is None:
        sql, params = "SELECT DISTINCT version FROM read_parquet(?, union_by_name = true)", [[str(p) for p in parts]]
    else:
        sql, params = "SELECT DISTINCT version FROM splits", []
    own = con is None
    con = con or store.connect(need=("splits",), only=("splits",))  # one view: a connection of every table costs ~0.3 s
    try:
        return sorted(v for v, in con.execute(sql, params).fetchall() if v is not None)
    finally:
        if own:
            con.close()


def current_version(store, con=None) -> str | None:
    """The store's current split version (:func:`current` of :func:`stored_versions`), None without one."""
    return current(stored_versions(store, con))
