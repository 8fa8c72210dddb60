"""The report's facts: narrow Parquet files kept in the store, one row per product, media row or
product's spec value, from which every statistic of the page is a cheap GROUP BY.

- ``products``: product_id, platform, merchant_id, ``path`` (the breadcrumb joined by ``' > '``),
  ``levels`` (its length), ``title_chars`` (the title's length; NULL for a blank title).
- ``media``: media_id, product_id, kind, status, quality_tier, duration and ``reason`` (a failed
  row's error without the file, URL or size it names: :data:`~.data.FAILURE_REASON`).
- ``specs``: product_id, property, value, ``n`` (that product's rows of that value).

Each fact is made from its own table's rows alone, so a kept fact stays true until a row of its
group is written again: an incremental run asks the store what was written since its last
complete run (``store.changed``: products and specs by product, media by media_id), makes the
facts of just those groups and writes them as one more file of the table's facts, whose rows stand
in for every earlier row of their groups (at :data:`MAX_FILES` files, or facts of over
:data:`MAX_SHARE` of the rows in one run, the table's facts are written as one file again). The first run, a run with ``full``, or one
whose kept facts are missing, makes every fact. The files live under ``derived/report/facts/``
(``Store.kept``: on object storage a local copy written back when the block ends) under names of
their own per run; the report's state (``derived/state/report.json``, saved last) names the ones in
force, so a killed run leaves the previous ones in force (its own files are removed by the next).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from .data import FAILURE_REASON

KEPT = "derived/report"
VERSION = 1  # of the facts' layout: another version makes every fact again

# the table's changed-group column and the SQL of the facts of its rows (in no order: every statistic
# of the page is a GROUP BY with a total order, the same whatever order the facts are in)
SOURCES = {
    "products": ("product_id", """
        SELECT product_id, platform, merchant_id, array_to_string(category_path, ' > ') AS path,
               len(category_path)::INTEGER AS levels,
               CASE WHEN length(trim(title)) > 0 THEN length(title) END::INTEGER AS title_chars
        FROM products {where}"""),
    "media": ("media_id", """
        SELECT media_id, product_id, kind, status, quality_tier, duration,
               CASE WHEN status NOT IN ('ok', 'pending') THEN """ + FAILURE_REASON + """ END AS reason
        FROM media {where}"""),
    "specs": ("product_id", """
        SELECT product_id, property, value, count(*)::BIGINT AS n FROM specs {where} GROUP BY ALL"""),
}
KEPT_VIEWS = {t: f"report_{t}_kept" for t in SOURCES}  # views of the kept files in the report's connection
HELD = {t: f"report_{t}" for t in ("products", "media")}  # ... and the facts held in its memory, read by .data

# Held once per run beside the facts, as read by several sections: the modalities of each product
# (``storage.stats.MODALITY_SQL``, over the facts) and the rows per spec value.
DERIVED = {
    "report_flags": """
        SELECT p.product_id, coalesce(m.m_image, false) AS m_image, p.title_chars IS NOT NULL AS m_caption,
               s.product_id IS NOT NULL AS m_table, coalesce(m.m_video, false) AS m_video,
               coalesce(m.m_audio, false) AS m_audio
        FROM report_products p
        LEFT JOIN (SELECT product_id, bool_or(kind = 'image' AND status = 'ok') AS m_image,
                          bool_or(kind = 'video' AND status = 'ok') AS m_video,
                          bool_or(kind = 'audio' AND status = 'ok') AS m_audio
                   FROM report_media GROUP BY 1) m ON m.product_id = p.product_id
        LEFT JOIN report_spec_products_kept s ON s.product_id = p.product_id""",
    "report_spec_values": "SELECT property, value, n FROM report_spec_values_kept",
}

# Sums of the spec facts (the largest: a row per product and spec value), kept beside them and
# updated by what changed (less the changed products' old rows, plus their new ones), so that a run
# does not group every spec fact again: rows per spec value, and per product that has spec rows.
SUMS = {"spec_values": "property, value", "spec_products": "product_id"}


# An incremental run writes the facts of what changed as a file of its own, whose rows stand in for
# every earlier row of the same groups; when a table has this many files already, or the run's facts
# are over this share of its rows, the run writes the table's facts as one file again.
MAX_FILES = 8
MAX_SHARE = 0.25


@dataclass
class Facts:
    """The facts of this run: their files (under the kept folder), and what changed per table."""

    files: dict[str, list[str]] = field(default_factory=dict)  # table -> file names under facts/, oldest first
    changed: dict[str, pa.Table] = field(default_factory=dict)  # table -> store.changed rows (incremental)
    made: dict[str, int] = field(default_factory=dict)  # table -> facts made this run
    whole: list[str] = field(default_factory=list)  # tables whose facts were all made again
    touched: set[str] = field(default_factory=set)  # products whose rows of any table changed (when none is whole)


def update(store, con, kept, previous: dict | None, since: dict[str, int], marks: dict[str, int]) -> Facts:
    """Make this run's facts in ``kept.path / "facts"`` and register them as views of ``con``.

    ``previous``: the last complete run's facts files (None: make every fact); ``since``: its
    watermarks. A table written since gets its changed groups' facts made again; the others keep theirs.
    """
    out = Facts()
    folder = kept.path / "facts"
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    delta = None  # (the changed products' spec facts before, after)
    for table, (group, sql) in SOURCES.items():
        old = list((previous or {}).get(table) or [])
        paths = [kept.fetch(f"facts/{n}") for n in old]
        if not old or None in paths:  # the first run, full, or a file gone: every fact
            facts = con.sql(sql.replace("{where}", "")).to_arrow_table()
            out.files[table] = [_write(folder, f"{table}-{token}.parquet", facts)]
            out.made[table], out.whole = facts.num_rows, out.whole + [table]
            _register(con, table, [folder / n for n in out.files[table]], group)
            continue
        _register(con, table, paths, group)
        out.files[table] = old
        if marks.get(table, 0) <= int(since.get(table, 0)):
            continue  # nothing of this table written since: its facts stand
        changed = store.changed(table, int(since.get(table, 0)))
        out.changed[table] = changed
        con.register("report_keys", changed.select([group]))
        try:
            fresh = _fresh(store, con, table, sql.replace("{where}", f"WHERE {group} IN (SELECT {group} FROM report_keys)"),
                           int(since.get(table, 0)), changed.select([group]))
            if table == "media":  # a changed media row's product, before and after
                out.touched.update(r[0] for r in con.sql(f"SELECT product_id FROM {KEPT_VIEWS[table]} WHERE media_id IN "
                                                         "(SELECT media_id FROM report_keys)").fetchall())
                out.touched.update(fresh.column("product_id").to_pylist())
            else:
                out.touched.update(changed.column(group).to_pylist())
            out.made[table] = fresh.num_rows
            if table == "specs":  # the changed products' spec facts before and after, for the sums
                delta = (con.sql(f"SELECT * FROM {KEPT_VIEWS[table]} WHERE product_id IN (SELECT product_id FROM report_keys)"
                                 ).to_arrow_table(), fresh)
            if not fresh.num_rows:
                continue
            total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
            if len(old) >= MAX_FILES or fresh.num_rows > MAX_SHARE * max(total, 1):  # one file again
                rest = con.sql(f"SELECT * FROM {KEPT_VIEWS[table]} WHERE {group} NOT IN (SELECT {group} FROM report_keys)"
                               ).to_arrow_table()
                fresh, old = pa.concat_tables([rest, fresh.cast(rest.schema)]), []
        finally:
            con.unregister("report_keys")
        out.files[table] = old + [_write(folder, f"{table}-{token}.parquet", fresh)]
        _register(con, table, [folder / n for n in out.files[table]], group)
    _sums(con, kept, folder, token, previous, out, delta)
    hold(con)
    return out


def _fresh(store, con, table: str, sql: str, since: int, keys: pa.Table) -> pa.Table:
    """The rows of ``sql`` (the facts of the changed groups ``keys``), read from the parts written
    since ``since`` only: a group written since has its newest write there whole, so the view over
    those parts gives its rows as the table's view does (the other parts are not scanned). A store on
    object storage reads its view of every part."""
    import duckdb

    from ..storage.changes import part_seq
    from ..storage.objects import is_store_url
    from ..storage.schema import table_spec

    if is_store_url(str(store.root)):
        return con.sql(sql).to_arrow_table()
    recent = [p for p in store.parts(table) if part_seq(p) > since]
    own = duckdb.connect()  # a connection of its own: the view's temp tables must not replace those of ``con``'s view
    try:
        own.execute("SET enable_progress_bar = false")  # as the store's connections: no bar of DuckDB's own on stdout
        own.execute(f"CREATE TEMP VIEW {table} AS {store.read_sql(own, table_spec(table), parts=recent)}")
        own.register("report_keys", keys)
        return own.sql(sql).to_arrow_table()
    finally:
        own.close()


def _sums(con, kept, folder, token: str, previous: dict | None, out: Facts, delta) -> None:
    """This run's :data:`SUMS` of the spec facts: kept, updated by ``delta``, or made from every spec fact."""
    for name, keys in SUMS.items():
        old = list((previous or {}).get(name) or [])
        path = kept.fetch(f"facts/{old[0]}") if len(old) == 1 else None
        if path is not None and "specs" not in out.whole and delta is None:
            out.files[name] = old  # no spec fact made this run: the sums stand
            _register_sum(con, name, path)
            continue
        if path is None or "specs" in out.whole:
            rows = con.sql(f"SELECT {keys}, sum(n)::BIGINT AS n FROM {KEPT_VIEWS['specs']} GROUP BY ALL").to_arrow_table()
        else:
            con.register("report_before", delta[0])
            con.register("report_after", delta[1])
            try:
                rows = con.sql(f"""
                    SELECT {keys}, sum(n)::BIGINT AS n FROM (
                        SELECT {keys}, n FROM read_parquet('{_quoted(path)}')
                        UNION ALL SELECT {keys}, -n FROM report_before
                        UNION ALL SELECT {keys}, n FROM report_after)
                    GROUP BY ALL HAVING sum(n) <> 0""").to_arrow_table()
            finally:
                con.unregister("report_before")
                con.unregister("report_after")
        out.files[name] = [_write(folder, f"{name}-{token}.parquet", rows)]
        _register_sum(con, name, folder / out.files[name][0])


def _register_sum(con, name: str, path) -> None:
    con.execute(f"CREATE OR REPLACE VIEW report_{name}_kept AS SELECT * FROM read_parquet('{_quoted(path)}')")


def hold(con) -> None:
    """Facts of ``con``'s kept views (:data:`KEPT_VIEWS`) as tables in its memory: :data:`HELD` and
    :data:`DERIVED` (the spec facts, the largest, are read through their :data:`SUMS` only)."""
    for table, name in HELD.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {KEPT_VIEWS[table]}")
    for name, sql in DERIVED.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")


def _write(folder, name: str, rows: pa.Table) -> str:
    from ..storage.files import temp_path

    tmp = temp_path(folder / name)  # the store's temp name: a killed writer's is swept by the next stage or doctor
    try:
        pq.write_table(rows, tmp, compression="zstd")
        tmp.replace(folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def live(con) -> None:
    """Views of the facts made from the store's tables as they are now, in ``con`` (a store
    connection): for reading :mod:`.data` without kept facts (tests, one-off queries)."""
    for table, (_, sql) in SOURCES.items():
        con.execute(f"CREATE OR REPLACE VIEW {KEPT_VIEWS[table]} AS {sql.replace('{where}', '')}")
    for name, keys in SUMS.items():
        con.execute(f"CREATE OR REPLACE VIEW report_{name}_kept AS "
                    f"SELECT {keys}, sum(n)::BIGINT AS n FROM {KEPT_VIEWS['specs']} GROUP BY ALL")
    hold(con)


def _register(con, table: str, paths: list, group: str) -> None:
    """The view of ``table``'s facts over its files: each file's rows but those of groups a later file holds."""
    files = [f"'{_quoted(p)}'" for p in paths]
    parts = []
    for i, f in enumerate(files):
        later = files[i + 1:]
        parts.append(f"SELECT * FROM read_parquet({f})" + (
            f" WHERE {group} NOT IN (SELECT {group} FROM read_parquet([{', '.join(later)}]))" if later else ""))
    con.execute(f"CREATE OR REPLACE VIEW {KEPT_VIEWS[table]} AS {' UNION ALL '.join(parts)}")


def _quoted(path) -> str:
    return str(path).replace("'", "''")


def forget_others(kept, *current: dict[str, list[str]] | None) -> None:
    """Remove the kept facts files that none of ``current`` names (older runs', killed runs')."""
    from ..storage.temps import TMP_PREFIX, owner_pid, pid_alive

    keep = {f"facts/{n}" for files in current for names in (files or {}).values() for n in names}
    for name in kept.names("facts/*.parquet"):
        if name not in keep and not name.startswith(f"facts/{TMP_PREFIX}"):  # the glob lists temp files too
            kept.remove(name)
    for tmp in (kept.path / "facts").glob(f"{TMP_PREFIX}*"):  # a killed run's temp files (doctor and the
        pid = owner_pid(tmp.name)                              # stages' sweep know them too)
        if pid is None or not pid_alive(pid):  # not those of a run writing now
            tmp.unlink(missing_ok=True)
