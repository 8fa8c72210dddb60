"""What an export writes, read as streams: the members of a split version and their samples.

An export of 6.3M products never holds their ids in a Python list: :class:`Members` is a query over
the ``splits`` table, :func:`member_batches` streams its ids in export order (the shard plan is cut
from that stream) and :func:`stream_samples` assembles every sample in one ordered pass over the
store (one scan of ``products``, ``specs`` and ``media``, not one per shard).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..storage.main_image import is_main
from ..storage.takedowns import ids_sql
from ..storage.withheld import opted_out_of_version
from .sample_rows import SAMPLE_HEADER_SQL, first_media, sample_from_row
from .samples import (
    SPLIT_NAMES,
    _split_order,
    current_version,
    pick_split,
    plain_name,
    version_rows,
    version_source,
)

READS = ("splits", "products", "takedowns")  # the tables :meth:`Members.sql` reads


@dataclass(frozen=True)
class Members:
    """The products an export writes: some splits of one version, read from the ``splits`` table as
    a query (never a Python list of every product id: 6.3M ids would be ~1 GiB of strings).

    Attributes:
        version: the split version.
        counts: split -> rows, in the export's split order.
    """

    version: str
    counts: dict
    rows: str | None = None  # SQL of the version's (split, product_id) rows from its own parts (None: the view)
    # taken-down products (storage/takedowns.py) are never members: the rows read from ``splits`` leave
    # them out by a subquery over ``products`` and ``takedowns`` (a domain's may be millions: no id list)
    hidden: bool = False
    taken_down: int = 0  # the version's rows left out for them
    # the version's products opted out since (storage/withheld.py): how many, the first ids (a folder that
    # holds an export of the version may hold them: resume.claim refuses it)
    opted_out: tuple = (0, ())

    def sql(self) -> str:
        """SQL of the members' (split, product_id) rows."""
        names = ", ".join(_sql_str(s) for s in self.counts)
        hidden = f" AND product_id NOT IN ({ids_sql()})" if self.hidden else ""
        if self.rows is not None:
            return f"SELECT split, product_id FROM ({self.rows}) WHERE split IN ({names}){hidden}"
        return (f"SELECT split, product_id FROM splits WHERE version = {_sql_str(self.version)} "
                f"AND split IN ({names}){hidden}")

    def order_sql(self, split: str = "split", product_id: str = "product_id") -> str:
        """ORDER BY terms of the export order: splits in :data:`SPLIT_NAMES` order, then product id
        (DuckDB compares VARCHARs by UTF-8 bytes: the code-point order of Python's ``sorted``)."""
        cases = " ".join(f"WHEN {_sql_str(s)} THEN {i}" for i, s in enumerate(SPLIT_NAMES))
        return f"CASE {split} {cases} ELSE {len(SPLIT_NAMES)} END, {split}, {product_id}"

    def without(self, names) -> Members:
        return replace(self, counts={s: n for s, n in self.counts.items() if s not in names})

    def only(self, name: str) -> Members:
        return replace(self, counts={name: self.counts[name]})


@dataclass(frozen=True)
class Chosen(Members):
    """Some members of a version, held in a table of the connection's in-memory database (its cursors
    see it): :func:`stream_samples` streams only them, in export order, in one pass over the store."""

    table: str = "export_chosen"

    def sql(self) -> str:
        return f"SELECT split, product_id FROM {self.table}"


def choose(con, members: Members, keys: list[tuple[str, str]]) -> Chosen:
    """:class:`Chosen` members ``keys`` (``(split, product_id)``) of ``members``, as a table of ``con``."""
    import pyarrow as pa

    chosen = Chosen(members.version, {s: n for s, n in members.counts.items()})
    rows = pa.table({"split": pa.array([s for s, _ in keys], pa.string()),
                     "product_id": pa.array([p for _, p in keys], pa.string())})
    con.register("export_chosen_rows", rows)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {chosen.table} AS SELECT * FROM export_chosen_rows")
    finally:
        con.unregister("export_chosen_rows")
    return chosen


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def split_counts(store, version: str | None = None, split: str = "all") -> Members:
    """The :class:`Members` of one split or ``all`` splits of a version: the same checks and errors
    as :func:`split_members`, without reading the product ids."""
    named = version or current_version(store)
    own = version_source(store, named)
    if own is not None:  # its rows from only its own parts, not the view's window over every version's rows
        source, found = own
        plain_name("split version", named)
        counts = pick_split(found, split, named)
        return _hide_taken_down(store, Members(named, {name: counts[name] for name in sorted(counts, key=_split_order)},
                                               source))
    version, rows = version_rows(store, named,
                                 "SELECT split, count(*) FROM splits WHERE version = ? GROUP BY split")
    counts = pick_split(dict(rows), split, version)
    return _hide_taken_down(store, Members(version, {name: counts[name] for name in sorted(counts, key=_split_order)}))


def _hide_taken_down(store, members: Members) -> Members:
    """``members`` without the taken-down products (storage/takedowns.py), their counts those left."""
    members = replace(members, opted_out=opted_out_of_version(store, members.version))
    if not store.count("takedowns"):
        return members
    left = replace(members, hidden=True)
    con = store.connect(need=READS, only=READS)
    try:
        counts = dict(con.execute(f"SELECT split, count(*) FROM ({left.sql()}) GROUP BY split").fetchall())
    finally:
        con.close()
    gone = sum(members.counts.values()) - sum(counts.values())
    return replace(left, counts={s: counts.get(s, 0) for s in members.counts}, taken_down=gone)


def member_batches(con, members: Members, sizes_of: tuple[str, ...] | None = None, batch: int = 65_536):
    """Arrow batches of the members' (split, product_id[, bytes]) in export order.

    Args:
        sizes_of: media kinds whose ``media.bytes`` are summed per product (the ``bytes`` column),
            for ``--shard-bytes``; None: no sizes.
    """
    if sizes_of is None:
        sql = f"SELECT split, product_id FROM ({members.sql()}) ORDER BY {members.order_sql()}"
    else:
        kinds = ", ".join(_sql_str(k) for k in sizes_of)
        sql = f"""
            WITH m AS ({members.sql()}),
            b AS (SELECT product_id, sum(coalesce(bytes, 0)) AS bytes FROM media
                  WHERE status = 'ok' AND kind IN ({kinds}) AND product_id IN (SELECT product_id FROM m)
                  GROUP BY product_id)
            SELECT m.split, m.product_id, coalesce(b.bytes, 0)::BIGINT AS bytes FROM m LEFT JOIN b USING (product_id)
            ORDER BY {members.order_sql('m.split', 'm.product_id')}"""
    return con.sql(sql).to_arrow_reader(batch)


# the store's part of every sample column, as three streams in the export order: the sample headers
# (one row per member), their spec rows and their media rows. Each is a flat sort that DuckDB spills
# to disk past its memory limit; the lists of specs and media are assembled in Python, one member at
# a time. (One query that aggregated each product's specs and media into lists and then sorted those
# rows ran out of DuckDB's 2 GB at 1M products: a sort of nested lists.)
_HEADER_SQL = """
WITH m AS ({members}),
ids AS (SELECT DISTINCT product_id FROM m),
s AS (
""" + SAMPLE_HEADER_SQL + """
)
SELECT m.split, m.product_id AS member_id, s.*
FROM m LEFT JOIN s ON s.product_id = m.product_id
ORDER BY {order}
"""

_SPEC_STREAM_SQL = """
WITH m AS ({members})
SELECT m.split, m.product_id, coalesce(property, '') AS p, coalesce(value, '') AS v
FROM specs JOIN m ON m.product_id = specs.product_id
ORDER BY {order}, position
"""

# the media rows a sample is made of (first_media picks among them)
MEDIA_FILTER = ("status = 'ok' AND blob IS NOT NULL AND kind IN ('image', 'image_norm', 'frames', 'mfcc', 'audio', 'video') "
                f"AND (kind <> 'image' OR {is_main()})")

_MEDIA_STREAM_SQL = """
WITH m AS ({members})
SELECT m.split, m.product_id, kind AS k, blob AS b, mime AS m
FROM media JOIN m ON m.product_id = media.product_id
WHERE """ + MEDIA_FILTER + """
ORDER BY {order}, kind, position, media_id
"""


def _rows(con, sql: str, batch: int):
    """The rows of ``sql`` as dicts, read one Arrow batch at a time."""
    for rb in con.sql(sql).to_arrow_reader(batch):
        yield from rb.to_pylist()


class _Follower:
    """The rows of an ordered stream that belong to one member after another (the stream is sorted
    in the members' order, so a member's rows are the run of rows that carry its key)."""

    def __init__(self, rows):
        self._rows = rows
        self._next = next(rows, None)

    def take(self, split: str, product_id: str) -> list[dict]:
        out = []
        while self._next is not None and self._next["split"] == split and self._next["product_id"] == product_id:
            out.append(self._next)
            self._next = next(self._rows, None)
        return out


def stream_samples(con, members: Members, batch: int = 4096):
    """``(split, product_id, Sample | None)`` of every member in export order, one pass over the store.

    None for a member that is not in ``products`` (skipped, as :func:`load_samples` skips it).
    Three sorted streams (headers, specs, media: each a cursor of ``con``) are merged member by
    member; DuckDB sorts them, spilling to its temp folder past its memory limit, and Python holds
    one batch of each.
    """
    fmt = dict(members=members.sql(), order=members.order_sql("m.split", "m.product_id"))
    specs = _Follower(_rows(con.cursor(), _SPEC_STREAM_SQL.format(**fmt), batch * 8))
    media = _Follower(_rows(con.cursor(), _MEDIA_STREAM_SQL.format(**fmt), batch * 2))
    for r in _rows(con.cursor(), _HEADER_SQL.format(**fmt), batch):
        split, member = r["split"], r["member_id"]
        sp = specs.take(split, member)
        md = media.take(split, member)
        if r["product_id"] is None:
            yield split, member, None
            continue
        yield split, member, sample_from_row(r, [(x["p"], x["v"]) for x in sp], first_media(md))
