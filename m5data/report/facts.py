"""The report's facts: narrow Parquet files kept in the store, one row per product, media row or
product's spec value, from which every statistic of the page is a cheap GROUP BY.

- ``products``: product_id, platform, merchant_id, ``path`` (the breadcrumb joined by ``' > '``),
  ``levels`` (its length), ``title_chars`` (the title's length; NULL for a blank title).
- ``media``: media_id, product_id, kind, status, quality_tier, duration and ``reason`` (a failed
  row's error without the file, URL or size it names: :data:`~.data.FAILURE_REASON`).
- ``specs``: product_id, property, value, ``n`` (that product's rows of that value).
- ``dedup``: product_id, group_id, rule; ``caption_match``: product_id, level.

Each fact is made from its own table's rows alone, so a kept fact stays true until a row of its
group is written again: an incremental run asks the store what was written since its last
complete run (``store.changed``: products and specs by product, media by media_id), makes the
facts of just those groups and writes them as one more file of the table's facts, whose rows stand
in for every earlier row of their groups (at :data:`MAX_FILES` files, or facts of over
:data:`MAX_SHARE` of the rows in one run, the table's facts are written as one file again). The first run, a run with ``full``, or one
whose kept facts are missing, makes every fact.

The page is drawn from running totals kept beside the facts (:data:`.fact_sql.TOTALS`: counts per platform and
breadcrumb, merchant, title length, media kind / status / tier / reason, video duration, spec value,
dedup group and rule, caption match level; and the products per exact
combination of modalities), one file each. A full run groups every fact; an incremental run moves the
kept totals by the changed groups' old facts (taken away) and new ones (added), and the combinations
by the flags of the products whose rows changed, before and after: it reads what changed and the
totals, never every fact. Integer sums, so both ways give the same totals.

The files live under ``derived/report/facts/``
(``Store.kept``: on object storage a local copy written back when the block ends) under names of
their own per run; the report's state (``derived/state/report.json``, saved last) names the ones in
force, so a killed run leaves the previous ones in force (its own files are removed by the next).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .changed_facts import SHOWN, Recent, with_hidden
from .fact_sql import FLAG_TABLES, FLAG_TOTALS, FLAGS, FLAGS_VIEW, KEPT_VIEWS, SOURCES, TOTAL_VIEWS, TOTALS
from .kept_files import TOTAL_SUFFIX, move_between, move_total, read_total, register_view, view_sql, write_file

KEPT = "derived/report"
VERSION = 4  # of the facts' and totals' layout: another version makes every fact again (4: totals as Arrow files)

WAS_FLAGS = "report_flags_was"  # every product's flags (FLAGS_VIEW) as the files in force before this run hold them
WAS_TOUCHED = "report_flags_touched"  # ... of the products touched this run, held while their flags are made

# An incremental run writes the facts of what changed as a file of its own, whose rows stand in for
# every earlier row of the same groups; when a table has this many files already, or the run's facts
# are over this share of its rows, the run writes the table's facts as one file again.
MAX_FILES = 8
MAX_SHARE = 0.25


@dataclass
class Facts:
    """The facts of this run: their files (under the kept folder), and what changed per table."""

    files: dict[str, list[str]] = field(default_factory=dict)  # table or "total:<name>" -> file names under facts/, oldest first
    changed: dict[str, pa.Table] = field(default_factory=dict)  # table -> store.changed rows (incremental)
    made: dict[str, int] = field(default_factory=dict)  # table -> facts made this run
    whole: list[str] = field(default_factory=list)  # tables whose facts were all made again
    touched: set[str] = field(default_factory=set)  # products whose rows of FLAG_TABLES changed (when none is whole)
    after: pa.Table | None = None  # the touched products' flags now (an incremental run that made them)
    faced: set[str] = field(default_factory=set)  # products whose faces rows changed (before or after)


def update(store, con, large, kept, previous: dict | None, since: dict[str, int], marks: dict[str, int],
           gone: frozenset[str] = frozenset(), newly: frozenset[str] = frozenset()) -> Facts:
    """Make this run's facts and totals in ``kept.path / "facts"`` and register them as views of ``con``.

    ``large()``: a connection with the views of the products, media and specs tables (called only to
    make every fact of a table, or, on object storage, the facts of its changed groups).
    ``previous``: the last complete run's files (None: make every fact); ``since``: its watermarks.
    A table written since gets its changed groups' facts made again and its totals moved by their
    delta; the others keep theirs. ``gone``: the products the egress gate withholds (taken down, opted
    out), of which no fact is made; ``newly``: those of them the last run did not withhold, whose kept
    facts are taken away as a changed group's (the caller makes every fact again when a product the last
    run withheld is withheld no more).
    """
    out = Facts()
    folder = kept.path / "facts"
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    deltas: dict[str, tuple[pa.Table, pa.Table]] = {}  # table -> its changed groups' facts (before, after)
    recent = Recent(store, large, gone)
    con.register("report_withheld", recent.gone)
    con.register("report_newly", pa.table({"product_id": pa.array(sorted(newly), pa.string())}))
    try:
        try:
            _tables(store, con, recent, kept, out, token, previous, since, marks, deltas, bool(newly))
        finally:
            recent.close()
        _totals(con, kept, folder, token, previous or {}, out, deltas)
    finally:
        con.unregister("report_withheld")
        con.unregister("report_newly")
    return out


def _tables(store, con, recent: Recent, kept, out: Facts, token: str, previous: dict | None, since: dict[str, int],
            marks: dict[str, int], deltas: dict, newly: bool = False) -> None:
    """Each table's facts: all made, kept, or those of its changed groups added (their old and new ones in ``deltas``)."""
    folder = kept.path / "facts"
    for table, (group, sql) in SOURCES.items():
        old = list((previous or {}).get(table) or [])
        paths = [kept.fetch(f"facts/{n}") for n in old]
        if not old or None in paths:  # the first run, full, or a file gone: every fact
            facts = recent.every(sql)
            out.files[table] = [write_file(folder, f"{table}-{token}.parquet", facts)]
            out.made[table], out.whole = facts.num_rows, out.whole + [table]
            register_view(con, KEPT_VIEWS[table], [folder / n for n in out.files[table]], group)
            continue
        out.files[table] = old
        kept_rows = f"({view_sql(paths, group)})"  # the kept facts, read here without a view (registered once, below)
        # the groups of the products withheld since the last run: their kept facts are taken away (their
        # fresh ones are none)
        hidden = (con.sql(f"SELECT DISTINCT {group} FROM {kept_rows} WHERE product_id IN "
                          "(SELECT product_id FROM report_newly)").to_arrow_table() if newly else None)
        moved = marks.get(table, 0) > int(since.get(table, 0))
        if not moved and (hidden is None or not hidden.num_rows):
            register_view(con, KEPT_VIEWS[table], paths, group)
            continue  # nothing of this table written since: its facts stand
        # is_new (from the older parts' key sidecars, sorted hashes searched: 0.05 s for the specs at 1M
        # products) counts the products new and changed, and spares the search of the kept facts for the
        # old facts of groups that have none (a new product's specs among 12.7 million spec facts, its
        # media among 3 million: 0.16 s at 1M)
        changed = store.changed(table, int(since.get(table, 0)), new=True) if moved else None
        if moved:
            out.changed[table] = changed
        changed = with_hidden(changed, hidden, group)
        con.register("report_keys", changed.select([group]))
        try:
            fresh = recent.facts(table, sql.replace("{where}", f"WHERE {group} IN (SELECT {group} FROM report_keys) AND {SHOWN}"),
                                 int(since.get(table, 0)), changed.select([group]))
            seen = changed.filter(pc.invert(changed.column("is_new"))).select([group])  # a new group has no kept fact
            if seen.num_rows:
                con.register("report_seen", seen)
                try:
                    was = con.sql(f"SELECT * FROM {kept_rows} WHERE {group} IN (SELECT {group} FROM report_seen)"
                                  ).to_arrow_table()
                finally:
                    con.unregister("report_seen")
            else:
                was = fresh.schema.empty_table()
            deltas[table] = (was, fresh)
            if table in FLAG_TABLES:
                out.touched.update((fresh.column("product_id").to_pylist() + was.column("product_id").to_pylist())
                                   if table == "media" else changed.column(group).to_pylist())
            if table == "faces":  # a faces row of no product (written by hand, or its media row gone) touches none
                out.faced.update(p for p in fresh.column("product_id").to_pylist() + was.column("product_id").to_pylist()
                                 if p is not None)
            out.made[table] = fresh.num_rows
            if not fresh.num_rows:
                register_view(con, KEPT_VIEWS[table], paths, group)
                continue
            fresh, old = _merged(con, paths, old, fresh, kept_rows, group, "report_keys")
        finally:
            con.unregister("report_keys")
        out.files[table] = old + [write_file(folder, f"{table}-{token}.parquet", fresh)]
        register_view(con, KEPT_VIEWS[table], [folder / n for n in out.files[table]], group)


def _totals(con, kept, folder, token: str, previous: dict, out: Facts, deltas: dict) -> None:
    """This run's :data:`TOTALS`, flags and combinations: kept, moved by the changed groups' ``deltas``,
    or grouped from every fact; registered as :data:`TOTAL_VIEWS`, :data:`FLAGS_VIEW` and those of :data:`FLAG_TOTALS`."""
    for name, (table, sql) in TOTALS.items():
        old = list(previous.get(f"total:{name}") or [])
        path = kept.fetch(f"facts/{old[0]}") if len(old) == 1 else None
        if path is not None and table not in out.whole and table not in deltas:
            out.files[f"total:{name}"] = old  # nothing of its table changed: the totals stand
            rows = read_total(path)
        else:
            rows = (move_between(con, path, sql, *deltas[table]) if path is not None and table not in out.whole
                    else con.sql(sql.format(f=KEPT_VIEWS[table])).to_arrow_table())
            out.files[f"total:{name}"] = [write_file(folder, f"total-{name}-{token}{TOTAL_SUFFIX}", rows)]
        con.register(TOTAL_VIEWS[name], rows)  # the rows written, not read back (1 ms a file)
    _flags(con, kept, folder, token, previous, out, deltas)


def _flags(con, kept, folder, token: str, previous: dict, out: Facts, deltas: dict) -> None:
    """Every product's flags (facts of their own, ``flags``) and the totals of them (:data:`FLAG_TOTALS`):
    made from every fact, or kept with those of the touched products made again and the totals moved by
    their flags before (the kept flags) and after."""
    old = list(previous.get("flags") or [])
    paths = [kept.fetch(f"facts/{n}") for n in old]
    kept_totals = {}
    for name in FLAG_TOTALS:
        files = list(previous.get(f"total:{name}") or [])
        kept_totals[name] = (files, kept.fetch(f"facts/{files[0]}") if len(files) == 1 else None)
    every = FLAGS.format(p=KEPT_VIEWS["products"], m=KEPT_VIEWS["media"], s=KEPT_VIEWS["specs"])
    made: dict[str, pa.Table] = {}  # the totals written this run (registered as they are, not read back)
    if (not old or None in paths or any(path is None for _, path in kept_totals.values())
            or set(out.whole) & set(FLAG_TABLES)):
        flags = con.sql(every).to_arrow_table()
        out.files["flags"] = [write_file(folder, f"flags-{token}.parquet", flags)]
        con.register("report_new_flags", flags)
        try:
            for name, (sql, _) in FLAG_TOTALS.items():
                made[name] = con.sql(sql.format(flags="SELECT * FROM report_new_flags")).to_arrow_table()
                out.files[f"total:{name}"] = [write_file(folder, f"total-{name}-{token}{TOTAL_SUFFIX}", made[name])]
        finally:
            con.unregister("report_new_flags")
    elif not out.touched:  # no product's rows changed: the flags and their totals stand
        out.files["flags"] = old
        out.files.update({f"total:{name}": files for name, (files, _) in kept_totals.items()})
        out.after = pa.table({"product_id": pa.array([], pa.string())})
    else:  # the touched products' flags before (the kept files in force) and after (made from the facts now)
        register_view(con, WAS_FLAGS, paths, "product_id")
        con.register("report_touched", pa.table({"product_id": pa.array(sorted(out.touched), pa.string())}))
        # the touched products' kept flags, read once (the specs relation, the lone products and the
        # totals before read them)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {WAS_TOUCHED} AS SELECT * FROM {WAS_FLAGS} "
                    "WHERE product_id IN (SELECT product_id FROM report_touched)")
        try:
            only = "(SELECT * FROM {} WHERE product_id IN (SELECT product_id FROM report_touched))"
            after = con.sql(FLAGS.format(p=_with_products(con, deltas), m=only.format(KEPT_VIEWS["media"]),
                                         s=_with_specs(con, out, deltas))).to_arrow_table()
            out.after = after
            con.register("report_after", after)
            for name, (sql, _) in FLAG_TOTALS.items():
                made[name] = move_total(con, kept_totals[name][1], sql.format(flags=f"SELECT * FROM {WAS_TOUCHED}"),
                                    sql.format(flags="SELECT * FROM report_after"))
                out.files[f"total:{name}"] = [write_file(folder, f"total-{name}-{token}{TOTAL_SUFFIX}", made[name])]
            after, old = _merged(con, paths, old, after, WAS_FLAGS, "product_id", "report_touched")
        finally:
            for name in ("report_touched", "report_after", "report_spec_fresh", "report_spec_changed", "report_p_fresh"):
                con.unregister(name)
            con.execute(f"DROP TABLE IF EXISTS {WAS_TOUCHED}")
        out.files["flags"] = old + [write_file(folder, f"flags-{token}.parquet", after)]
    register_view(con, FLAGS_VIEW, [folder / n for n in out.files["flags"]], "product_id")
    for name, (_, view) in FLAG_TOTALS.items():
        con.register(view, made[name] if name in made else read_total(folder / out.files[f"total:{name}"][0]))


def _merged(con, paths: list, old: list[str], fresh: pa.Table, kept: str, group: str,
            changed: str) -> tuple[pa.Table, list[str]]:
    """``fresh`` as one more file of the kept ones (``old``, read as ``kept``), or, at :data:`MAX_FILES` files
    or fresh rows over :data:`MAX_SHARE` of the kept ones, as one file again: the kept rows of the groups
    not in ``changed`` (a view of their ``group``) with ``fresh``, and no old file."""
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    if len(old) >= MAX_FILES or fresh.num_rows > MAX_SHARE * max(total, 1):  # one file again
        rest = con.sql(f"SELECT * FROM {kept} WHERE {group} NOT IN (SELECT {group} FROM {changed})").to_arrow_table()
        return pa.concat_tables([rest, fresh.cast(rest.schema)]), []
    return fresh, old


def _with_products(con, deltas: dict) -> str:
    """The touched products' facts of their own, as a relation for :data:`FLAGS`' ``{p}``, without a scan of
    every product fact (8.5 ms of 101k at 100k products): those whose rows were written since have their
    new facts; the others (touched through their media or specs) the fields their kept flag holds (the
    breadcrumb, and whether the title is blank: all :data:`FLAGS` reads of ``title_chars``). A product
    with neither has no product row, and no flag."""
    fresh = (deltas["products"][1] if "products" in deltas else pa.table({
        "product_id": pa.array([], pa.string()), "platform": pa.array([], pa.string()), "path": pa.array([], pa.string()),
        "levels": pa.array([], pa.int32()), "title_chars": pa.array([], pa.int32())}))
    con.register("report_p_fresh", fresh.select(["product_id", "platform", "path", "levels", "title_chars"]))
    return ("(SELECT product_id, platform, path, levels, title_chars FROM report_p_fresh UNION ALL "
            "SELECT product_id, platform, path, levels, CASE WHEN m_caption THEN 1 END::INTEGER AS title_chars "
            f"FROM {WAS_TOUCHED} WHERE product_id NOT IN (SELECT product_id FROM report_p_fresh) "
            "AND product_id NOT IN (SELECT product_id FROM report_withheld))")


def _with_specs(con, out: Facts, deltas: dict) -> str:
    """The touched products that have spec rows now, as a relation for :data:`FLAGS`' ``{s}``, without a
    scan of every spec fact (12.7 million rows at 1M products): those whose spec rows were written since
    have them when their new facts do; the others as their kept flag says; only a touched product with
    neither (new since, its spec rows written before it) is looked up in the kept spec facts."""
    fresh = deltas["specs"][1].select(["product_id"]) if "specs" in deltas else pa.table({"product_id": pa.array([], pa.string())})
    changed = (out.changed["specs"].select(["product_id"]) if "specs" in out.changed
               else pa.table({"product_id": pa.array([], pa.string())}))
    con.register("report_spec_fresh", fresh)
    con.register("report_spec_changed", changed)
    touched = "SELECT product_id FROM report_touched WHERE product_id NOT IN (SELECT product_id FROM report_spec_changed)"
    lonely = con.sql(f"SELECT product_id FROM ({touched}) WHERE product_id NOT IN (SELECT product_id FROM {WAS_TOUCHED})"
                     ).fetchall()
    rel = ("(SELECT product_id FROM report_spec_fresh UNION ALL "
           f"SELECT product_id FROM {WAS_TOUCHED} WHERE m_table AND product_id IN ({touched})")
    if lonely:
        rel += (f" UNION ALL SELECT product_id FROM {KEPT_VIEWS['specs']} WHERE product_id IN "
                f"(SELECT product_id FROM ({touched}) WHERE product_id NOT IN (SELECT product_id FROM {WAS_TOUCHED}))")
    return rel + ")"


def forget_others(kept, *current: dict[str, list[str]] | None) -> None:
    """Remove the kept facts files that none of ``current`` names (older runs', killed runs')."""
    from ..storage.temps import TMP_PREFIX, owner_pid, pid_alive

    keep = {f"facts/{n}" for files in current for names in (files or {}).values() for n in names}
    for name in kept.names("facts/*.parquet") + kept.names(f"facts/*{TOTAL_SUFFIX}"):
        if name not in keep and not name.startswith(f"facts/{TMP_PREFIX}"):  # the glob lists temp files too
            kept.remove(name)
    for tmp in (kept.path / "facts").glob(f"{TMP_PREFIX}*"):  # a killed run's temp files (doctor and the
        pid = owner_pid(tmp.name)                              # stages' sweep know them too)
        if pid is None or not pid_alive(pid):  # not those of a run writing now
            tmp.unlink(missing_ok=True)
