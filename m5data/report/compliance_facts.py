"""The compliance section's facts and totals (``compliance.py`` draws them): a fact per product kept
beside the others (``compliance`` files under ``derived/report/facts/``, :data:`SCHEMA`: its URL and
host, the licence its page states, the faces found in its pictures, the replacements an export masks in
its title, caption and spec values), and running totals of them per host (:data:`TOTALS`).

A full run makes every fact from the tables (the faces from the ``faces`` facts of ``facts.py``). An
incremental run makes the facts of the products whose products, licenses, captions or specs rows, or
faces rows (theirs before or after), were written since the last complete run: each from the rows
written since of the tables that changed for it (the parts written since), its kept fact for the others
(a new product's rows of a table not written since are read from the parts holding them,
``store.read_groups``), and moves the totals by their facts before and after; the new facts are one
more file whose rows stand in for the earlier ones (``facts._merged``). The small tables (crawl_errors,
optouts) are counted per host only when written since; the products taken down when takedowns or
products were (over the kept facts' URLs); else their counts are the last run's (the state's summary).
"""

from __future__ import annotations

import pyarrow as pa

from ..masking import CANDIDATES_RE2, mask_text
from ..storage.takedowns import HOST_SQL, taken_down_sql
from ..storage.views import sql_str
from . import fact_sql, facts
from .kept_files import TOTAL_SUFFIX, move_between, read_total, register_view, write_file

VERSION = 1  # of the facts' layout and the kept counts
NAME = "compliance"  # its facts' name in the state's facts files
VIEW, WAS = "report_compliance", "report_compliance_was"
FIELDS = ("title", "caption", "specs")
BATCH = 8192
FOUND = sql_str(CANDIDATES_RE2)
SCHEMA = pa.schema([("product_id", pa.string()), ("url", pa.string()), ("host", pa.string()), ("licence", pa.string()),
                    ("faces", pa.int64()), *[(f"m_{x}", pa.int64()) for x in FIELDS]])
# the totals the section is drawn from: name -> the SQL grouping a relation {f} of facts into keys and n
TOTALS = {
    "c_licences": "SELECT host, licence, count(*)::BIGINT AS n FROM {f} GROUP BY ALL",
    "c_faces": "SELECT host, sum(faces)::BIGINT AS n FROM {f} WHERE faces > 0 GROUP BY ALL",
    "c_masked": " UNION ALL ".join(f"SELECT host, '{x}' AS field, sum(m_{x})::BIGINT AS n FROM {{f}} WHERE m_{x} > 0 "
                                   "GROUP BY ALL" for x in FIELDS),
}
SMALL = {"errors": "crawl_errors", "optouts": "optouts"}  # counts per host of a small table's rows


def host_sql(url: str) -> str:
    """The host of ``url`` as the section names it (``(unknown)`` for none)."""
    return f"coalesce(nullif({HOST_SQL.format(url=url)}, ''), '(unknown)')"


def _mask(con, sql: str, into: dict[str, int]) -> None:
    """Per product, the replacements an export makes in the texts of ``sql`` (product_id, text, candidate)."""
    for batch in con.sql(sql).to_arrow_reader(BATCH):
        for pid, text, cand in zip(*(batch.column(i).to_pylist() for i in range(3))):
            if cand and (n := mask_text(text)[1]):
                into[pid] = into.get(pid, 0) + n


# each table's texts an export masks: product_id, the text, whether the masking prefilter finds it
TEXTS = {"title": "SELECT product_id, title, regexp_matches(title, {found}) FROM {t} {where}",
         "caption": "SELECT product_id, text, status = 'ok' AND regexp_matches(text, {found}) FROM {t} {where}",
         "specs": "SELECT product_id, value, regexp_matches(value, {found}) FROM {t} {where}"}
SOURCE = {"title": "products", "caption": "captions", "specs": "specs"}


def make_all(con, faces: pa.Table) -> pa.Table:
    """Every product's fact; ``con`` has views of products, licenses, captions and specs; ``faces``
    each product's faces (product_id, n)."""
    masks: dict[str, dict[str, int]] = {x: {} for x in FIELDS}
    for x in FIELDS:
        _mask(con, TEXTS[x].format(found=FOUND, t=SOURCE[x], where=f"WHERE regexp_matches({_text(x)}, {FOUND})"), masks[x])
    for x in FIELDS:
        con.register(f"report_m_{x}", pa.table({"product_id": pa.array(list(masks[x]), pa.string()),
                                                "n": pa.array(list(masks[x].values()), pa.int64())}))
    con.register("report_c_faces", faces)
    try:
        joins = " ".join(f"LEFT JOIN report_m_{x} m_{x} ON m_{x}.product_id = p.product_id" for x in FIELDS)
        cols = ", ".join(f"coalesce(m_{x}.n, 0)::BIGINT AS m_{x}" for x in FIELDS)
        return con.sql(f"SELECT p.product_id, p.url, {host_sql('p.url')} AS host, coalesce(l.license, 'none stated') "
                       f"AS licence, coalesce(f.n, 0)::BIGINT AS faces, {cols} FROM products p "
                       "LEFT JOIN licenses l ON l.product_id = p.product_id "
                       f"LEFT JOIN report_c_faces f ON f.product_id = p.product_id {joins}").to_arrow_table().cast(SCHEMA)
    finally:
        for name in ("report_c_faces", *(f"report_m_{x}" for x in FIELDS)):
            con.unregister(name)


def _text(field: str) -> str:
    return {"title": "title", "caption": "text", "specs": "value"}[field]


def faces_of(con, view: str, ids: pa.Table | None = None) -> pa.Table:
    """Per product, the faces its ``faces`` rows found (``view``: of the faces facts, or the table), of ``ids`` only when given."""
    where = ""
    if ids is not None:
        con.register("report_c_ids", ids)
        where = "AND product_id IN (SELECT product_id FROM report_c_ids)"
    try:
        return con.sql(f"SELECT product_id, sum(n_faces)::BIGINT AS n FROM {view} WHERE n_faces > 0 {where} "
                       "GROUP BY 1").to_arrow_table()
    finally:
        if ids is not None:
            con.unregister("report_c_ids")


def totals(con, rows: str) -> dict[str, pa.Table]:
    """:data:`TOTALS` grouped from the relation ``rows`` of facts."""
    return {name: con.sql(sql.format(f=rows)).to_arrow_table() for name, sql in TOTALS.items()}


def small_counts(con, store, moved: set[str], kept: dict) -> dict[str, list]:
    """The counts per host of the small tables, ``[[host, n], ...]``: counted when written since (in
    ``moved``) or not in ``kept``, else ``kept``'s; the products taken down counted over the facts' view
    :data:`VIEW` of ``con`` when takedowns or products were written since."""
    out = {}
    for name, table in SMALL.items():
        if name in kept and table not in moved:
            out[name] = kept[name]
            continue
        con.register("report_small", store.read(table, columns=["url"]))
        try:
            out[name] = [list(r) for r in con.execute(f"SELECT {host_sql('url')}, count(*) FROM report_small "
                                                       "GROUP BY ALL").fetchall()]
        finally:
            con.unregister("report_small")
    if "takedowns" in kept and not {"takedowns", "products"} & moved:
        out["takedowns"] = kept["takedowns"]
        return out
    recorded = store.read("takedowns")
    if not recorded.num_rows:  # none recorded: none of the facts' products is taken down (no scan of them)
        out["takedowns"] = []
        return out
    con.register("report_takedowns", recorded)
    try:
        out["takedowns"] = [list(r) for r in con.execute(
            f"SELECT host, count(*) FROM {VIEW} WHERE product_id IN (SELECT product_id FROM "
            f"({taken_down_sql(VIEW, 'report_takedowns')})) GROUP BY ALL").fetchall()]
    finally:
        con.unregister("report_takedowns")
    return out


def write_totals(folder, token: str, made: dict[str, pa.Table]) -> dict[str, list[str]]:
    return {f"total:{name}": [write_file(folder, f"total-{name}-{token}{TOTAL_SUFFIX}", rows)]
            for name, rows in made.items()}


def kept_totals(kept, previous: dict) -> dict | None:
    """The kept totals' paths (None: one is missing)."""
    out = {}
    for name in TOTALS:
        files = list(previous.get(f"total:{name}") or [])
        path = kept.fetch(f"facts/{files[0]}") if len(files) == 1 else None
        if path is None:
            return None
        out[name] = path
    return out


def moved_totals(con, paths: dict, before: pa.Table, after: pa.Table) -> dict[str, pa.Table]:
    """The kept totals moved from the facts ``before`` to ``after``."""
    return {name: move_between(con, paths[name], sql, before, after) for name, sql in TOTALS.items()}


def read_totals(paths: dict) -> dict[str, pa.Table]:
    return {name: read_total(path) for name, path in paths.items()}


WITHHELD = "withheld"  # the licence the section shows for a product the egress gate withholds


def without_withheld(con, totals: dict[str, pa.Table], gone: frozenset[str]) -> dict[str, pa.Table]:
    """``totals`` with the licences of the products the egress gate withholds counted as :data:`WITHHELD` in
    ``c_licences``: the section names only the licences that products that may leave state (its counts of
    products, pages, opt-outs and takedowns keep the withheld ones: they are the record of what was honoured)."""
    if not gone:
        return totals
    con.register("report_c_gone", pa.table({"product_id": pa.array(sorted(gone), pa.string())}))
    con.register("report_c_licences", totals["c_licences"])
    try:
        licences = con.sql(f"""
            WITH g AS (SELECT host, licence, count(*)::BIGINT AS n FROM {VIEW}
                       WHERE product_id IN (SELECT product_id FROM report_c_gone) GROUP BY ALL)
            SELECT t.host, t.licence, (t.n - coalesce(g.n, 0))::BIGINT AS n FROM report_c_licences t
            LEFT JOIN g ON g.host IS NOT DISTINCT FROM t.host AND g.licence IS NOT DISTINCT FROM t.licence
            WHERE t.n - coalesce(g.n, 0) > 0
            UNION ALL SELECT host, '{WITHHELD}', sum(n)::BIGINT FROM g GROUP BY host""").to_arrow_table()
    finally:
        con.unregister("report_c_gone")
        con.unregister("report_c_licences")
    return {**totals, "c_licences": licences.cast(totals["c_licences"].schema)}


def register(con, folder, files: list[str]) -> None:
    register_view(con, VIEW, [folder / n for n in files], "product_id")


def merged(con, paths: list, old: list[str], after: pa.Table) -> tuple[pa.Table, list[str]]:
    """``after`` as one more facts file, or every fact as one file again (``facts._merged``)."""
    return facts._merged(con, paths, old, after, WAS, "product_id", "report_c_touched")


def update(store, con, large, kept, made: facts.Facts, last, marks: dict[str, int]) -> tuple[dict, dict, dict, dict]:
    """This run's totals (:data:`TOTALS`), small counts (:func:`small_counts`), files (facts and totals, as
    ``facts.Facts.files`` names them) and memo (the state's ``compliance``); the facts registered as :data:`VIEW`."""
    import uuid

    folder, token = kept.path / "facts", uuid.uuid4().hex[:12]
    previous, since = last.facts or {}, last.watermarks
    memo = last.summary.get(NAME) or {}
    memo = memo if memo.get("version") == VERSION else {}
    old = list(previous.get(NAME) or [])
    paths = [kept.fetch(f"facts/{n}") for n in old]
    tpaths = kept_totals(kept, previous)
    moved = {t for t in (*TABLES, *SMALL.values(), "takedowns") if marks.get(t, 0) > int(since.get(t, 0))}
    files: dict[str, list[str]] = {}
    if not old or None in paths or tpaths is None or {"products", "specs", "faces"} & set(made.whole):
        rows = make_all(large(), faces_of(con, fact_sql.KEPT_VIEWS["faces"]))
        files[NAME] = [write_file(folder, f"{NAME}-{token}.parquet", rows)]
        con.register("report_c_all", rows)
        try:
            totals_now = totals(con, "report_c_all")
        finally:
            con.unregister("report_c_all")
        files.update(write_totals(folder, token, totals_now))
        memo = {}
    elif not moved & set(TABLES) and not made.faced:  # no product's compliance fact changed
        files[NAME] = old
        files.update({f"total:{n}": list(previous[f"total:{n}"]) for n in TOTALS})
        totals_now = read_totals(tpaths)
    else:
        register_view(con, WAS, paths, "product_id")
        touched = _touched(store, made, moved, since)
        every = sorted(set().union(*touched.values()))
        con.register("report_c_touched", pa.table({"product_id": pa.array(every, pa.string())}))
        try:
            before = con.sql(f"SELECT * FROM {WAS} WHERE product_id IN (SELECT product_id FROM report_c_touched)"
                             ).to_arrow_table().cast(SCHEMA)
            after = _made_again(store, con, touched, before, made, moved, since)
            totals_now = moved_totals(con, tpaths, before, after)
            files.update(write_totals(folder, token, totals_now))
            files[NAME] = old
            if after.num_rows:
                after, old = merged(con, paths, old, after)
                files[NAME] = old + [write_file(folder, f"{NAME}-{token}.parquet", after)]
        finally:
            con.unregister("report_c_touched")
    register(con, folder, files[NAME])
    counts = small_counts(con, store, moved, memo)
    return totals_now, counts, files, {"version": VERSION, **counts}


TABLES = ("products", "licenses", "captions", "specs")  # a product's fact is made from its rows of these (and faces)


def _touched(store, made: facts.Facts, moved: set[str], since: dict) -> dict[str, set[str]]:
    """The products whose rows of :data:`TABLES` were written since, per table (``""``: through their faces)."""
    out = {"": set(made.faced)}
    for t in TABLES:
        if t in made.changed:
            out[t] = set(made.changed[t].column("product_id").to_pylist())
        elif t in moved:
            out[t] = set(store.changed(t, int(since.get(t, 0)), new=False).column("product_id").to_pylist())
    return out


def _made_again(store, con, touched: dict[str, set[str]], before: pa.Table, made: facts.Facts, moved: set[str],
                since: dict) -> pa.Table:
    """The touched products' facts now: each field from its table's rows written since when that table
    changed for the product, else from its kept fact (a product new since: read from the parts holding its rows)."""
    kept = {r["product_id"]: r for r in before.to_pylist()}
    every = set().union(*touched.values())
    lonely = [p for p in touched.get("products", ()) if p not in kept]
    where = "WHERE product_id IN (SELECT product_id FROM report_c_ids)"
    got: dict[str, dict] = {}
    for t, sql in (("products", f"SELECT product_id, url, {host_sql('url')}, title, regexp_matches(title, {FOUND}) "
                                "FROM {t} {where}"),
                   ("licenses", "SELECT product_id, license FROM {t} {where}"),
                   ("captions", TEXTS["caption"]), ("specs", TEXTS["specs"])):
        changed = sorted(touched.get(t, ()))
        need = set(changed) | set(lonely)
        written = set(changed)
        rows = _read(store, t, int(since.get(t, 0)), changed, [p for p in lonely if p not in written],
                     sql.replace("{found}", FOUND).replace("{where}", where))
        if t == "products":
            got[t] = {r[0]: (r[1], r[2], mask_text(r[3])[1] if r[4] else 0) for r in rows}
        elif t == "licenses":
            got[t] = {r[0]: r[1] for r in rows}
        else:
            counts: dict[str, int] = {}
            for pid, text, cand in rows:
                if cand and (n := mask_text(text)[1]):
                    counts[pid] = counts.get(pid, 0) + n
            got[t] = counts
        got[t + ":read"] = need
    fa = faces_of(con, fact_sql.KEPT_VIEWS["faces"], pa.table({"product_id": pa.array(sorted(every), pa.string())}))
    faces = dict(zip(fa.column("product_id").to_pylist(), fa.column("n").to_pylist()))
    out = []
    for pid in sorted(every):
        k = kept.get(pid)
        if pid in got["products"]:
            url, host, m_title = got["products"][pid]
        elif k is not None:
            url, host, m_title = k["url"], k["host"], k["m_title"]
        else:
            continue  # no products row: no fact
        lic = (got["licenses"].get(pid) if pid in got["licenses:read"] else k["licence"])
        out.append({"product_id": pid, "url": url, "host": host, "licence": "none stated" if lic is None else lic,
                    "faces": faces.get(pid, 0), "m_title": m_title,
                    **{f"m_{x}": got[t].get(pid, 0) if pid in got[t + ":read"] else k[f"m_{x}"]
                       for x, t in (("caption", "captions"), ("specs", "specs"))}})
    return pa.Table.from_pylist(out, schema=SCHEMA)


def _read(store, table: str, since: int, changed: list[str], lonely: list[str], sql: str) -> list[tuple]:
    """The rows of ``sql`` (over ``{t}``, filtered to report_c_ids) of the products ``changed`` (read from the
    parts written since ``since``; on object storage from those holding them) and ``lonely`` (from the parts holding them)."""
    from ..storage.readdb import read_cursor
    from ..storage.schema import table_spec

    out: list[tuple] = []
    c = read_cursor()
    try:
        for ids, recent in ((changed, True), (lonely, False)):
            if not ids:
                continue
            parts = store.parts_since(table, since) if recent else None
            if parts is not None:
                c.execute(f"CREATE OR REPLACE TEMP VIEW report_src AS "
                          f"{store.read_sql(c, table_spec(table), parts=parts)}")
                src = "report_src"
            else:
                c.register("report_grp", store.read_groups(table, ids))
                src = "report_grp"
            c.register("report_c_ids", pa.table({"product_id": pa.array(ids, pa.string())}))
            out += c.sql(sql.replace("{t}", src)).fetchall()
            c.unregister("report_c_ids")
    finally:
        c.close()
    return out
