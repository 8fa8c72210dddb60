"""An export of a new split version that writes only what changed and takes the rest over.

Every WebDataset and Parquet export folder holds, beside its shards and indexes, two files for the next one:

- ``_manifest.json``: every shard of this version (its stats: path, samples, size, sha256), the
  path relative to this folder;
- ``_samples.parquet``: one row per sample (split, product_id, digest, path of its shard), the
  digest a hash of everything the sample is made of (its split, text, specs, labels, group, media
  paths; media are content-addressed, so a path names its bytes: ``digests.py``);
- ``_labels.parquet``: per category key (platform, raw path) a hash of the labels its samples read.

The next export of the same format and split (``derived/state/export-<fmt>-<split>.json`` names
the folder of the last complete one) into a *sibling* folder for another split version hashes the
new version's samples that may have changed since (``digests.touched_ids``: the products with rows
written since, those of relabelled categories, the members new to the version; every sample where
the base cannot tell) and compares, the others keeping their base digests: a shard of the previous
version whose samples are all there with the same digest is **taken over** (``carry.py``: a hard link
under a name of this folder, a copy across file systems, a server-side copy on S3); a shard that lost
samples (changed, or no longer in the split) is **copied without them** (``webdataset.write_kept``:
its tar streamed once, the kept members' bytes copied as they are; ``hf_parquet.write_kept``: its rows
filtered; no store read); only the new and changed samples are read from the store, into new shards
of this folder. So a changed product is in the new shards only, no key is listed twice, every reader
of the index (the ``wids`` index, the Parquet loader, the training loader, check-shards) sees exactly
the samples of a full export, in other shards, and every folder holds all of its files: no index,
manifest, card or sample list names a path out of it (``../``), so one copied alone is complete.

The base is read once through ``../<previous folder>/`` (its manifest, sample list and files: older
folders listed inherited shards as ``../<folder>/<shard>``, which are followed too). M5Product exports
in full and says why (its item ids are decided over the whole export, and its JSON merges every shard).
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .digests import (
    DIGEST,
    FEW,
    LABEL_TABLES,
    LABELS_SCHEMA,
    TOUCHING,
    digest_table,
    few_digests,
    few_rows,
    label_hashes,
    touched_ids,
)
from .remote import RemoteFolder, is_remote, sibling_name

INCREMENTAL_FORMATS = ("webdataset", "parquet")
MANIFEST = "_manifest.json"
SAMPLES = "_samples.parquet"
LABELS = "_labels.parquet"
SAMPLES_SCHEMA = pa.schema([("split", pa.string()), ("product_id", pa.string()), ("digest", pa.string()),
                            ("path", pa.string())])
# every table a sample is made of (SAMPLE_HEADER_SQL and the media/spec streams), and the takedowns that
# leave samples out (members.py)
READS = ("products", "specs", "captions", "media", "label_map", "taxonomy", "dedup", "splits", "optouts", "licenses",
         "takedowns")
NOT_INCREMENTAL = {
    "m5product": "an M5Product export is written in full: its item ids are decided over the whole export "
                 "and its captions and lists merge every shard",
}


def state_name(fmt: str, split: str) -> str:
    return f"export-{fmt}-{split}"


def inputs(fmt: str, split: str, settings) -> tuple:
    """What beside the tables decides an export's samples and shards (the run's fingerprint: ``StageRun``)."""
    from .plan import format_options

    e = settings.export
    return fmt, split, e.shard_size, e.shard_bytes, format_options(settings), DIGEST


def split_location(out) -> tuple[str, str]:
    """``(parent, name)`` of an export folder or URL."""
    if is_remote(out):
        parent, name = posixpath.split(str(out).rstrip("/"))
        return parent, name
    p = Path(out).absolute()
    return str(p.parent), p.name


STORE_PLACE = "store:"  # a state's name of an export folder inside the store


def place(store, out) -> str:
    """``out`` as the state names it: ``store:exports/<name>`` for a folder inside the store (so a
    copied store, or the same built on S3, holds the same state), else its path or URL."""
    root = str(store.where("exports")).rstrip("/")
    text = str(out) if is_remote(out) else str(Path(out).absolute())
    if not is_remote(root):
        root = str(Path(root).absolute())
    return STORE_PLACE + "exports/" + text[len(root) + 1:] if text.startswith(root + "/") else text


def located(store, named: str) -> str:
    """The path or URL of a state's ``place``."""
    if not named.startswith(STORE_PLACE):
        return named
    where = store.where(named[len(STORE_PLACE):])
    return where if is_remote(where) else str(Path(where).absolute())


def sibling(out, name: str):
    parent, _ = split_location(out)
    return f"{parent}/{name}" if is_remote(out) else Path(parent) / name


def read_file(folder, rel: str) -> bytes | None:
    """The bytes of ``rel`` in an export folder or under its URL; None when it is not there."""
    if is_remote(folder):
        from .remote import RemoteError

        try:
            reader = RemoteFolder(str(folder))
            if rel not in reader.names():
                return None
            with reader.open(rel) as fh:
                return fh.read()
        except RemoteError:
            return None
    path = Path(folder) / rel
    return path.read_bytes() if path.is_file() else None


@dataclass
class Base:
    """The previous version's export, as the new folder sees it (paths relative to the new folder)."""

    name: str
    shards: list[dict]  # manifest entries, "path" and "stats_path" relative to the new folder
    samples: pa.Table = field(default_factory=SAMPLES_SCHEMA.empty_table)  # SAMPLES_SCHEMA, paths rebased
    labels: pa.Table | None = None  # its _labels.parquet (None: an older folder without one)
    since: dict | None = None  # the watermarks its export read (its state's), None where not known


def rebased(rel: str, name: str) -> str:
    """A path of the previous folder ``name`` as seen from its sibling: its own files are ``../name/...``,
    what it inherited (``../other/...``) stays as it is."""
    return rel if rel.startswith("../") else f"../{name}/{rel}"


def _rebased_column(paths: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """:func:`rebased` over a column (one Arrow pass: 1.1M paths at 1M products)."""
    import pyarrow.compute as pc

    own = pc.invert(pc.starts_with(paths, "../"))
    return pc.if_else(own, pc.binary_join_element_wise(f"../{name}/", paths, ""), paths)


def _parquet(data: bytes | None, schema: pa.Schema) -> pa.Table | None:
    import pyarrow.parquet as pq

    if data is None:
        return None
    try:
        return pq.read_table(io.BytesIO(data)).select(schema.names).cast(schema)
    except (ValueError, KeyError, TypeError, OSError, pa.ArrowException):
        return None


def load_base(out, name: str) -> Base | None:
    """The export in the sibling folder ``name`` of ``out``, or None (no manifest or sample list: a full export)."""
    folder = sibling(out, name)
    manifest = read_file(folder, MANIFEST)
    rows = _parquet(read_file(folder, SAMPLES), SAMPLES_SCHEMA)
    if manifest is None or rows is None:
        return None
    try:
        entries = json.loads(manifest)["shards"]
    except (ValueError, KeyError, TypeError):
        return None
    shards = []
    for st in entries:
        st = dict(st)
        st["path"] = rebased(st["path"], name)
        if st.get("stats_path"):
            st["stats_path"] = rebased(st["stats_path"], name)
        if sibling_name(st["path"]) is None:
            return None  # not a path this layout writes: never follow it
        shards.append(st)
    rows = rows.set_column(3, "path", _rebased_column(rows.column("path"), name))
    return Base(name, shards, rows, _parquet(read_file(folder, LABELS), LABELS_SCHEMA))


# why an export cannot build on its last complete one, as the run says it (``StageRun.why_full``)
WHY_FULL = {"full run asked": "full export asked", "no earlier complete run": "no earlier complete export",
            "settings changed": "the earlier export was made with other settings"}


def find_base(run, out, fmt: str, version: str, *, existing_plan: dict | None) -> tuple[Base | None, str]:
    """The previous export this one builds on, and why not when None.

    A folder that holds a plan already (a resumed run) keeps the base its plan names; a new folder
    builds on the last complete export of this format and split (``run.state``) when it is a sibling
    folder of another split version made with the same settings (``run.why_full``: none). The base's
    ``since`` is the watermarks its export read (``run.since``) where the state is still its own (else
    every sample is hashed).
    """
    store, state = run.store, run.state
    if run.full:
        return None, WHY_FULL["full run asked"]
    if fmt not in INCREMENTAL_FORMATS:
        return None, NOT_INCREMENTAL.get(fmt, f"{fmt} exports are written in full")
    if existing_plan is not None:
        name = (existing_plan.get("base") or {}).get("folder")
        if not name:
            return None, "the folder holds a full export (resumed as one)"
    else:
        if run.why_full:
            return None, WHY_FULL.get(run.why_full, run.why_full)
        prev = located(store, state["out"]) if state.get("out") else None
        if not prev or prev == str(out) or state.get("version") == version:
            return None, "the earlier export is of this split version"
        parent, name = split_location(prev)
        if parent != split_location(out)[0]:
            return None, "the earlier export is not in a sibling folder"
    base = load_base(out, name)
    if base is None:
        return None, f"the earlier export {name} has no manifest"
    if run.since is not None and state.get("out") and located(store, state["out"]) == str(sibling(out, name)):
        base.since = run.since
    return base, ""


@dataclass
class Diff:
    """What a new version keeps of its base: inherited shards, shards to copy without the samples
    that left them, the samples to write, the counts."""

    inherited: list[dict]
    kept: list[tuple[dict, list[str]]]  # (previous shard, the product ids it keeps): copied minus the others
    fresh: set  # (split, product_id) written into this folder's new shards: the new and changed samples
    counts: dict
    order: list = field(default_factory=list)  # the fresh keys in export order
    digests: pa.Table = field(default_factory=SAMPLES_SCHEMA.empty_table)  # (split, product_id, digest) of the fresh
    standing: pa.Table = field(default_factory=SAMPLES_SCHEMA.empty_table)  # the base's rows that stand, as they are
    hashed: int = 0  # samples hashed (the others kept their base digests)
    rows: object = None  # a DuckDB connection holding the hashed products' rows (digests.few_rows), or None
    base_shards: list = field(default_factory=list)  # the base's shards, in its order


# Every member of the version and every sample of the base, side by side: ``rehash`` where the member
# is new to the version or its product was touched since the base (every member without ``touched``)
_COMPARE_SQL = """
CREATE OR REPLACE TEMP TABLE export_cmp AS
WITH mm AS ({members})
SELECT coalesce(mm.split, b.split) AS split, coalesce(mm.product_id, b.product_id) AS product_id,
       mm.product_id IS NOT NULL AS member, b.digest AS was, b.path AS path,
       mm.product_id IS NOT NULL AND (b.product_id IS NULL OR {touched}) AS rehash
FROM mm FULL JOIN export_base b ON b.split = mm.split AND b.product_id = mm.product_id
"""

_NOW_SQL = """
CREATE OR REPLACE TEMP TABLE export_now AS
SELECT c.split, c.product_id, c.was, c.path, CASE WHEN c.rehash THEN h.digest WHEN c.member THEN c.was END AS digest
FROM export_cmp c LEFT JOIN export_hashed h ON h.split = c.split AND h.product_id = c.product_id
"""


def compare(store, con, members, base: Base, marks: dict, labels: pa.Table) -> Diff:
    """The new version's samples against the base's, on ``con`` (views of the export's tables).

    Only the samples :func:`~m5data.export.digests.touched_ids` names and the members new to the
    version are hashed (every member where the base cannot tell); the others keep the base's digest.
    A previous shard whose samples all stand is inherited; one that lost samples (changed, or no
    longer in the version) keeps the others in a copy of it (:func:`webdataset.write_kept`); only new
    and changed samples are written from the store. Joins in DuckDB over the base's Arrow rows: no
    Python object per sample.
    """
    touched = None if base.since is None else touched_ids(store, con, base.since, marks, base.labels, labels)
    rows = None
    con.register("export_base", base.samples)
    registered = ["export_base"]
    try:
        if touched is not None:
            con.register("export_touched", touched)
            registered.append("export_touched")
            rule = "mm.product_id IN (SELECT product_id FROM export_touched)"
        else:
            rule = "true"
        con.execute(_COMPARE_SQL.format(members=members.sql(), touched=rule))
        order = members.order_sql("m.split", "m.product_id")
        rehash = con.sql("SELECT split, product_id FROM export_cmp WHERE rehash").to_arrow_table()
        if touched is not None and rehash.num_rows <= FEW * sum(members.counts.values()):
            rows = few_rows(store, rehash)
            hashed = few_digests(rows, rehash, order)
        else:
            hashed = digest_table(con, "SELECT split, product_id FROM export_cmp WHERE rehash", order)
        con.register("export_hashed", hashed)
        registered.append("export_hashed")
        con.execute(_NOW_SQL)
        fresh = con.sql(f"""SELECT split, product_id, digest FROM export_now
                            WHERE digest IS NOT NULL AND digest IS DISTINCT FROM was
                            ORDER BY {members.order_sql()}""").to_arrow_table()
        new, changed, present, gone = con.execute("""
            SELECT count(*) FILTER (WHERE digest IS NOT NULL AND was IS NULL),
                   count(*) FILTER (WHERE digest IS NOT NULL AND was IS NOT NULL AND digest <> was),
                   count(*) FILTER (WHERE digest IS NOT NULL), count(*) FILTER (WHERE digest IS NULL AND was IS NOT NULL)
            FROM export_now""").fetchone()
        dirty = {r[0] for r in con.execute("SELECT DISTINCT path FROM export_now WHERE was IS NOT NULL "
                                           "AND digest IS DISTINCT FROM was").fetchall()}
        standing = con.sql("SELECT split, product_id, digest, path FROM export_now WHERE digest = was").to_arrow_table()
        keeps = dict(con.execute("SELECT path, list(product_id ORDER BY product_id) FROM export_now "
                                 "WHERE digest = was AND path IN (SELECT DISTINCT path FROM export_now "
                                 "WHERE was IS NOT NULL AND digest IS DISTINCT FROM was) GROUP BY path").fetchall())
    except BaseException:
        if rows is not None:
            rows.close()
        raise
    finally:
        for name in registered:
            con.unregister(name)
        con.execute("DROP TABLE IF EXISTS export_cmp")
        con.execute("DROP TABLE IF EXISTS export_now")
    inherited = [st for st in base.shards if st["path"] not in dirty]
    kept = [(st, keeps[st["path"]]) for st in base.shards if st["path"] in dirty and keeps.get(st["path"])]
    order = list(zip(fresh.column("split").to_pylist(), fresh.column("product_id").to_pylist()))
    return Diff(inherited, kept, set(order), {"new": new, "changed": changed, "unchanged": present - new - changed,
                                              "removed": gone},
                order, fresh, standing.cast(SAMPLES_SCHEMA), hashed.num_rows, rows, base.shards)


__all__ = ["DIGEST", "INCREMENTAL_FORMATS", "LABEL_TABLES", "LABELS", "MANIFEST", "NOT_INCREMENTAL", "READS",
           "SAMPLES", "TOUCHING", "WHY_FULL", "Base", "Diff", "compare", "find_base", "inputs", "label_hashes",
           "load_base", "place", "sibling_name", "state_name"]
