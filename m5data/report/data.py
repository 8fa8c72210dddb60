"""What the report shows, computed by SQL: one function per section, no drawing here.

The large tables are read through the running totals kept beside the report's facts (:mod:`.facts`:
views of the report's connection named ``report_<total>``: products per platform and breadcrumb, per
merchant and per title length; media rows per kind, status, tier and failure reason; videos per
duration; products per exact combination of modalities; rows per spec value; products per dedup group
and rule), so no statistic reads a row per product; the splits section and the gallery read ``report_flags`` (each product's
breadcrumb and modalities); caption match levels from ``report_levels``; the small tables (label_map,
taxonomy) are read directly.
Every function returns plain Python values (lists of tuples, dicts), so a test can compare the
numbers written into the page with the same SQL over the store. A section whose tables are empty
returns empty values; the page then says which command fills it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..storage.blobs import BlobPathError, resolve_blob

# The papers' five modalities, in their order, under the names the report uses.
MODALITIES = {"image": "image", "caption": "caption", "table": "specs", "video": "video", "audio": "audio"}
LEVELS = {1: "class", 2: "sub-class", 3: "subsub-class"}

# A product's unified labels: its breadcrumb joined by ' > ' is a label_map row of its platform; the
# products per unified label, from the products per breadcrumb
LABELLED_PATHS = """
    SELECT p.n, l.class_id, l.sub_class_id, nullif(l.subsub_class_id, 0) AS subsub_class_id
    FROM report_paths p JOIN label_map l ON l.platform = p.platform AND l.raw_path = p.path
    WHERE l.class_id IS NOT NULL
"""



def _quoted(text: str) -> str:
    return str(text).replace("'", "''")


def _rows(con, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def one(con, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchone()[0]


@dataclass
class Overview:
    products: int
    specs: int
    media: int
    platforms: list[tuple[str, int]]
    merchants: int
    tables: dict[str, int]


def overview(con, tables: list[str], store=None, rows: dict[str, int] | None = None,
             parts: dict[str, list[str]] | None = None) -> Overview:
    """The overview's counts; the rows of each of ``tables`` from ``rows`` (the counts of tables not
    written since they were counted, or counted on from them: the ones counted here are added to it),
    else by ``store.count_parts`` (``store`` given; the parts it counted are added to ``parts``) or by
    counting its view."""
    # the facts are a row per row of these tables: their rows are their totals' sums (one query)
    totals = {"products": "report_paths", "specs": "report_spec_values", "media": "report_media",
              "dedup": "report_dedup_groups", "caption_match": "report_levels"}
    sums = _rows(con, "SELECT " + ", ".join(f"(SELECT coalesce(sum(n), 0) FROM {v})" for v in totals.values()))[0]
    known = {t: int(n) for t, n in zip(totals, sums)}
    products, specs, media = known["products"], known["specs"], known["media"]
    rows = {} if rows is None else rows
    parts = {} if parts is None else parts
    for t in tables:
        if t in rows:
            continue
        if t in known:
            rows[t] = known[t]
        elif store is None:
            rows[t] = one(con, f"SELECT count(*) FROM {t}")
        else:
            rows[t], counted = store.count_parts(t)
            if counted is not None:
                parts[t] = counted
    return Overview(
        products=products, specs=specs, media=media,
        platforms=_rows(con, "SELECT platform, sum(n)::BIGINT FROM report_paths GROUP BY 1 ORDER BY 2 DESC, 1"),
        merchants=one(con, "SELECT count(*) FROM report_merchants WHERE merchant_id IS NOT NULL"),
        tables={t: rows[t] for t in tables},
    )


def product_count(con) -> int:
    """The products of the store, from the report's totals."""
    return int(one(con, "SELECT coalesce(sum(n), 0) FROM report_paths"))


def long_tail(con) -> dict[int, list[tuple[str, int]]]:
    """Per taxonomy level: (label name, products) sorted by products, largest first (the papers' Figure 3).
    One query for the three levels (the labelled paths joined once, where a query per level took 5-6 ms each)."""
    out: dict[int, list[tuple[str, int]]] = {1: [], 2: [], 3: []}
    per_level = " UNION ALL ".join(
        f"SELECT {level} AS level, {column} AS label, n FROM x WHERE {column} IS NOT NULL"
        for level, column in ((1, "class_id"), (2, "sub_class_id"), (3, "subsub_class_id")))
    for level, name, n in _rows(con, f"""
            WITH x AS MATERIALIZED ({LABELLED_PATHS})
            SELECT y.level, coalesce(t.name, CAST(y.label AS VARCHAR)) AS name, sum(y.n)::BIGINT AS n
            FROM ({per_level}) y LEFT JOIN taxonomy t ON t.level = y.level AND t.label_id = y.label
            GROUP BY y.level, y.label, t.name ORDER BY y.level, n DESC, name"""):
        out[level].append((name, n))
    return out


def raw_categories(con) -> list[tuple[str, int]]:
    """Products per raw breadcrumb (when the store is not aligned yet)."""
    return _rows(con, "SELECT path AS c, sum(n)::BIGINT AS n FROM report_paths WHERE levels > 0 GROUP BY 1 "
                      "ORDER BY n DESC, c")


@dataclass
class Completeness:
    products: int
    single: dict[str, int]  # modality -> products that have it
    combos: list[tuple[tuple[str, ...], int]]  # exact set of modalities present -> products, largest first
    image_text: int
    image_text_table: int
    all_five: int


def completeness(con) -> Completeness:
    """Modality completeness like supplementary F: each modality, each exact combination, and the cumulative sets."""
    cols = ", ".join(f"m_{m}" for m in MODALITIES)
    rows = _rows(con, f"SELECT {cols}, sum(n)::BIGINT FROM report_combos GROUP BY ALL")
    single = dict.fromkeys(MODALITIES, 0)
    combos: dict[tuple[str, ...], int] = {}
    total = image_text = image_text_table = all_five = 0
    for *present, n in rows:
        names = tuple(m for m, has in zip(MODALITIES, present) if has)
        combos[names] = combos.get(names, 0) + n
        total += n
        for m in names:
            single[m] += n
        s = set(names)
        image_text += n if {"image", "caption"} <= s else 0
        image_text_table += n if {"image", "caption", "table"} <= s else 0
        all_five += n if len(s) == len(MODALITIES) else 0
    ordered = sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))
    return Completeness(total, single, ordered, image_text, image_text_table, all_five)


@dataclass
class Series:
    values: list  # every distinct value, ascending
    weights: list[int]  # how many of each
    count: int
    mean: float | None
    median: float | None  # the value at index count // 2 of the sorted values
    max: float | None


@dataclass
class Distributions:
    video_seconds: Series
    caption_chars: Series
    merchant_products: Series


def series(con, sql: str) -> Series:
    """Exact count, mean, median and max of the values counted by ``sql`` (rows of a value and how
    many times it occurs: a kept total), and the distinct values with their counts (the histogram).

    The mean is an exactly rounded sum (``math.fsum``), so it does not depend on the order of the values.
    """
    import math

    rows = _rows(con, f"SELECT x, sum(n)::BIGINT FROM ({sql}) t(x, n) WHERE x IS NOT NULL GROUP BY 1 "
                      "HAVING sum(n) > 0 ORDER BY 1")
    if not rows:
        return Series([], [], 0, None, None, None)
    values, weights = [x for x, _ in rows], [int(w) for _, w in rows]
    count = sum(weights)
    median, seen = values[-1], 0
    for x, w in zip(values, weights):
        seen += w
        if seen > count // 2:
            median = x
            break
    return Series(values, weights, count, math.fsum(x * w for x, w in zip(values, weights)) / count, median, values[-1])


def distributions(con) -> Distributions:
    """Video duration, caption length and products per merchant (supplementary Figure 9)."""
    return Distributions(
        video_seconds=series(con, "SELECT duration, n FROM report_durations"),
        caption_chars=series(con, "SELECT title_chars, n FROM report_titles"),
        merchant_products=series(con, "SELECT n, count(*) FROM report_merchants WHERE merchant_id IS NOT NULL GROUP BY 1"),
    )


def top_properties(con, top: int) -> list[tuple[str, int, int, str]]:
    """(property, rows, distinct values, three most common values) for the most used properties."""
    # each property's three most common values by a top-3 aggregate ordered by (-n, value, NULL last),
    # not a ranking of every value (0.46 -> 0.07 s of 940k spec values at 1M products); a NULL value
    # takes its place among the three and is left out of the text, as a ranking would
    return _rows(con, """
        SELECT property, sum(n)::BIGINT AS rows, count(*) AS distinct_values,
               array_to_string(list_transform(min_by({'value': value}, {'neg': -n, 'last': value IS NULL,
                                                                        'value': value}, 3),
                                              lambda x: x.value), ' / ') AS common
        FROM report_spec_values GROUP BY property ORDER BY rows DESC, property LIMIT ?""", [top])


def image_tiers(con) -> list[tuple[str, int]]:
    rows = _rows(con, "SELECT quality_tier, sum(n)::BIGINT FROM report_media WHERE kind = 'image' AND status = 'ok' "
                      "AND quality_tier IS NOT NULL GROUP BY 1 ORDER BY 1")
    names = {1: "1 (high)", 2: "2 (medium)", 3: "3 (low)"}
    return [(names.get(t, str(t)), n) for t, n in rows]


# A failure's reason without what names its one file, so that a reason is one bar, not one per file:
# URLs, blob paths and long hex hashes become placeholders, a leading "<path or URL>: " goes (extract
# writes "blobs/21/ab….mp4: unreadable video: ffprobe: …"), sizes and counts of 4+ digits become N
# ("Content-Length 20,000,000 exceeds …"), and the detail after the first ':' goes (ffmpeg's stderr).
FAILURE_REASON = r"""trim(regexp_replace(split_part(
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(coalesce(error, ''),
        '[A-Za-z][A-Za-z0-9+.-]*://[^\s]*[^\s:;,.)]', '<url>', 'g'),  -- not its trailing ':'
        '[^\s:]*(blobs|derived)/[^\s:]*', '<file>', 'g'),
        '^\s*(<url>|<file>|[^\s:]*/[^\s:]*)\s*:\s*', ''),
        '\b[0-9a-fA-F]{16,}\b', '<hash>', 'g'),
        '\d{1,3}(,\d{3})+|\d{4,}', 'N', 'g'),
    ':', 1), '\s+', ' ', 'g'))"""


def media_failures(con) -> list[tuple[str, str, str, int]]:
    """(kind, status, reason, media) for every media row that is not ok or pending, one per reason
    (``FAILURE_REASON``: the error without the file, URL or size it names)."""
    return _rows(con, """
        SELECT kind, status, reason, sum(n)::BIGINT AS n
        FROM report_media WHERE status NOT IN ('ok', 'pending') GROUP BY 1, 2, 3 ORDER BY n DESC, 1, 2, 3""")


def media_status(con) -> list[tuple[str, str, int]]:
    return _rows(con, "SELECT kind, status, sum(n)::BIGINT FROM report_media GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2")


def match_levels(con) -> list[tuple[str, int]]:
    return _rows(con, "SELECT coalesce(level, 'no evidence') AS lv, sum(n)::BIGINT FROM report_levels GROUP BY 1 "
                      "ORDER BY CASE lv WHEN 'well' THEN 1 WHEN 'partial' THEN 2 WHEN 'poor' THEN 3 ELSE 4 END, lv")


@dataclass
class Duplicates:
    products: int  # products in the dedup table
    groups: int  # groups of two or more products
    grouped: int  # products in such groups
    sizes: list[tuple[int, int]]  # group size -> groups
    rules: list[tuple[str, int]]  # rule -> products joined by it


def duplicates(con) -> Duplicates:
    """The dedup table's groups, from the products per group and rule kept beside the facts (``report_dedup_groups``)."""
    sizes = _rows(con, "SELECT n, count(*) FROM (SELECT group_id, sum(n)::BIGINT AS n FROM report_dedup_groups GROUP BY 1) "
                       "WHERE n > 1 GROUP BY 1 ORDER BY 1")
    return Duplicates(
        products=int(one(con, "SELECT coalesce(sum(n), 0) FROM report_dedup_groups")),
        groups=sum(g for _, g in sizes),
        grouped=sum(n * g for n, g in sizes),
        sizes=sizes,
        rules=_rows(con, "SELECT rule, sum(n)::BIGINT FROM report_dedup_groups WHERE rule IS NOT NULL GROUP BY 1 "
                         "ORDER BY 2 DESC, 1"),
    )


@dataclass
class DedupMatcher:
    used: str  # the last dedup run's matcher: rules, "learned <version>" or "rules (<why>)"
    added: int  # pairs the matcher added to the rules' pairs
    groups: int  # groups of 2+ of that run
    groups_rules: int  # ... of the rules' pairs alone
    model: dict | None  # the newest model.json's version, threshold and held-out validation


def dedup_matcher(store) -> DedupMatcher | None:
    """What the learned matcher did in the last dedup run, and the newest model's held-out figures
    (``derived/matcher/<version>/model.json``, read as JSON data); None before any dedup run."""
    config = last_run_config(store, "dedup")
    try:
        run = json.loads(config).get("dedup_run", {}) if config else None
    except ValueError:
        run = None
    if run is None:
        return None
    model = None
    # the newest version's file, through the store (a path on a folder store, an object on S3)
    models = sorted(rel for rel in store.files("derived/matcher/") if rel.count("/") == 3 and rel.endswith("/model.json"))
    if models:
        try:
            d = json.loads(store.read_bytes(models[-1]) or b"")
            model = {"version": str(d["version"]), "threshold": float(d["threshold"]), "validation": dict(d["validation"])}
        except (ValueError, KeyError, TypeError, OSError):
            model = None
    return DedupMatcher(used=str(run.get("matcher", "rules")), added=int(run.get("pairs", {}).get("matcher", 0)),
                        groups=int(run.get("groups", 0)), groups_rules=int(run.get("groups_rules", run.get("groups", 0))),
                        model=model)


def last_run_config(store, stage: str) -> str | None:
    """The ``config`` of ``stage``'s newest run (by its start) in ``runs``. A local store's parts are
    read as they are: a run's row is written once, under an id of its own, so no key has rows in two
    parts and the view's window is not needed (its plan over the ~30 parts ``runs`` holds between
    compactions cost 0.2 s, the stage's largest read on a night with little new); on object storage
    through the view."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..storage.objects import is_store_url

    columns = ["started_at", "config"]
    rows = None
    if not is_store_url(str(store.root)):
        parts = [str(p) for p in store.parts("runs")]
        if not parts:
            return None
        try:
            rows = pq.read_table(parts, columns=columns, filters=[("stage", "=", stage)])
        except (pa.ArrowException, OSError):  # a damaged part: the view's read names it (StoreError)
            rows = None
    if rows is None:
        rows = store.read("runs", where=f"stage = '{_quoted(stage)}'", columns=columns)
    if not rows.num_rows:
        return None
    return rows.column("config")[pc.index(rows.column("started_at"), pc.max(rows.column("started_at"))).as_py()].as_py()


@dataclass
class Alignment:
    methods: list[tuple[str, int]]  # label_map method -> raw paths
    unified: dict[int, int]  # level -> unified labels
    borderline: list[dict] = field(default_factory=list)  # review-file pairs closest to the thresholds
    merged: list[dict] = field(default_factory=list)  # pairs align merged
    review_file: str | None = None


def alignment(con, review_path: Path, top: int) -> Alignment:
    out = Alignment(
        methods=_rows(con, "SELECT method, count(*) FROM label_map GROUP BY 1 ORDER BY 2 DESC, 1"),
        unified=dict(_rows(con, "SELECT level, count(*) FROM taxonomy GROUP BY 1 ORDER BY 1")),
    )
    if review_path.is_file():
        out.review_file = str(review_path)
        with review_path.open(encoding="utf-8-sig", newline="") as fh:
            pairs = list(csv.DictReader(fh))  # sorted by |margin|: the borderline pairs come first
        out.borderline = pairs[:top]
        out.merged = [p for p in pairs if p.get("final") in ("merge", "merged", "accept", "True", "true", "1")][:top]
    return out


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
        versions = [v for v, in _rows(con, "SELECT DISTINCT version FROM splits")]
    else:
        versions = list(found)
    version = current(versions)
    if version is None:
        return []
    if found is None:
        con.execute("CREATE OR REPLACE TEMP VIEW report_split_rows AS SELECT version, split, product_id "
                    f"FROM splits WHERE version = '{_quoted(version)}'")
        return [version]
    from ..storage.schema import SEQ_COLUMN

    # Every row of the version lies in the parts that hold it, and the view holds the rows of its newest
    # write (a version is one group), each key once: those rows, without the view's window per key.
    files = ", ".join(f"'{_quoted(p)}'" for p in found[version])
    rows = f"SELECT * FROM read_parquet([{files}], union_by_name = true) WHERE version = '{_quoted(version)}'"
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
    rows = _rows(con, f"""
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


def training_metrics(run_dir: Path | None) -> dict | None:
    """The metrics table a training run's evaluation wrote (``metrics.json`` in the run folder), if any."""
    if run_dir is None:
        return None
    for name in ("metrics.json", "eval.json", "evaluation.json"):
        path = Path(run_dir) / name
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                return None
    return None


@dataclass
class Sample:
    product_id: str
    title: str
    category: str
    image: str | None  # blob path relative to the store
    specs: list[tuple[str, str]]
    frames: str | None  # the frames folder (blob path relative to the store), if any


def top_categories(con, n: int) -> list[str]:
    """The ``n`` breadcrumbs with the most products with a downloaded image (the kept ``imaged`` total)."""
    return [c for c, _ in _rows(con, "SELECT path, n FROM report_imaged_paths ORDER BY n DESC, path LIMIT ?", [n])]


def rank_picks(con, categories: list[str], per_category: int) -> dict[str, list[str]]:
    """Each of ``categories``' first ``per_category`` products by id with a downloaded image, from every
    product's flags (read once; only those categories' products ranked)."""
    if not categories:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE report_imaged AS SELECT path AS cat, product_id FROM report_flags "
                "WHERE levels > 0 AND m_image")
    con.register("report_top", pa.table({"cat": pa.array(categories, pa.string())}))
    try:
        out: dict[str, list[str]] = {}
        for pid, cat in _rows(con, """
                WITH c AS (SELECT cat, product_id, row_number() OVER (PARTITION BY cat ORDER BY product_id) AS k
                           FROM report_imaged WHERE cat IN (SELECT cat FROM report_top))
                SELECT product_id, cat FROM c WHERE k <= ? ORDER BY cat, k""", [per_category]):
            out.setdefault(cat, []).append(pid)
        return out
    finally:
        con.unregister("report_top")
        con.execute("DROP TABLE report_imaged")


def moved_picks(categories: list[str], per_category: int, kept: list[tuple[str, str]], touched: set[str],
                after: pa.Table) -> dict[str, list[str]]:
    """The picks of those of ``categories`` that can be moved from the last run's (``kept``: each
    category's first ``per_category`` products by id, all of them when it had fewer) by the flags now of
    the products touched since (``after``): a category's first products now are among its kept picks not
    touched and its touched products with an image now. A category is left out where that cannot tell:
    one the last run did not pick, or a full one that lost a pick (its next product by id is not known)."""
    mine: dict[str, list[str]] = {}
    for pid, cat in kept:
        mine.setdefault(cat, []).append(pid)
    now: dict[str, set[str]] = {}
    columns = ("product_id", "path", "levels", "m_image")
    for pid, path, levels, image in zip(*(after.column(c).to_pylist() for c in columns)) if after.num_rows else ():
        if levels and levels > 0 and image:
            now.setdefault(path, set()).add(pid)
    out = {}
    for cat in categories:
        if cat not in mine:
            continue
        picked, added = mine[cat], now.get(cat, set())
        if len(picked) >= per_category and any(p in touched and p not in added for p in picked):
            continue
        out[cat] = sorted({p for p in picked if p not in touched} | added)[:per_category]
    return out


def gallery(con, picks: list[tuple[str, str]]) -> list[Sample]:
    """The picked products' image, caption, spec table and frames folder.

    Blob paths are returned as the tables hold them: the caller resolves them (they are untrusted).
    """
    titles = dict(_rows(con, "SELECT product_id, title FROM products WHERE list_contains(?, product_id)",
                        [[pid for pid, _ in picks]]))
    picked = [(pid, titles.get(pid), cat) for pid, cat in picks]
    # one query per kind for all picked products (a query per product scanned the media table each
    # time: 2 s apiece on a store of 600 uncompacted media parts, 150 s for a gallery of 24)
    ids = [pid for pid, _, _ in picked]
    image = dict(_rows(con, """
        SELECT product_id, blob FROM (
            SELECT m.product_id, coalesce(d.blob, m.blob) AS blob, row_number() OVER (
                       PARTITION BY m.product_id
                       ORDER BY CASE m.role WHEN 'main' THEN 0 ELSE 1 END, m.position, m.media_id, d.blob) AS k
            FROM media m
            LEFT JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm' AND d.status = 'ok'
            WHERE list_contains(?, m.product_id) AND m.kind = 'image' AND m.status = 'ok')
        WHERE k = 1""", [ids]))
    specs: dict[str, list[tuple[str, str]]] = {}
    for pid, prop, value in _rows(con, """
            SELECT product_id, property, value FROM (
                SELECT product_id, property, value, position,
                       row_number() OVER (PARTITION BY product_id ORDER BY position) AS k
                FROM specs WHERE list_contains(?, product_id))
            WHERE k <= 12 ORDER BY product_id, position""", [ids]):
        specs.setdefault(pid, []).append((prop, value))
    frames = dict(_rows(con, """
        SELECT product_id, blob FROM (
            SELECT product_id, blob, row_number() OVER (PARTITION BY product_id ORDER BY position, media_id) AS k
            FROM media WHERE list_contains(?, product_id) AND kind = 'frames' AND status = 'ok')
        WHERE k = 1""", [ids]))
    return [Sample(pid, title or "", cat, image.get(pid), specs.get(pid, []), frames.get(pid))
            for pid, title, cat in picked]
