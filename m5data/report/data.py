"""What the report shows, computed by SQL: one function per section, no drawing here.

The large tables are read through the running totals kept beside the report's facts (:mod:`.facts`:
views of the report's connection named ``report_<total>``: products per platform and breadcrumb, per
merchant and per title length; media rows per kind, status, tier and failure reason; videos per
duration; products per exact combination of modalities; rows per spec value; products per dedup group
and rule), so no statistic reads a row per product; the splits section (:mod:`.splits_data`) and the gallery
(:mod:`.gallery_data`) read ``report_flags`` (each product's breadcrumb and modalities); caption match levels from ``report_levels``; the small tables (label_map,
taxonomy) are read directly; what stage runs left (the dedup matcher's run and model, a training run's
metrics) is read by :mod:`.run_data`.
Every function returns plain Python values (lists of tuples, dicts), so a test can compare the
numbers written into the page with the same SQL over the store. A section whose tables are empty
returns empty values; the page then says which command fills it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

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



def quoted(text: str) -> str:
    return str(text).replace("'", "''")


def fetch(con, sql: str, params: list | None = None) -> list[tuple]:
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
    sums = fetch(con, "SELECT " + ", ".join(f"(SELECT coalesce(sum(n), 0) FROM {v})" for v in totals.values()))[0]
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
        platforms=fetch(con, "SELECT platform, sum(n)::BIGINT FROM report_paths GROUP BY 1 ORDER BY 2 DESC, 1"),
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
    for level, name, n in fetch(con, f"""
            WITH x AS MATERIALIZED ({LABELLED_PATHS})
            SELECT y.level, coalesce(t.name, CAST(y.label AS VARCHAR)) AS name, sum(y.n)::BIGINT AS n
            FROM ({per_level}) y LEFT JOIN taxonomy t ON t.level = y.level AND t.label_id = y.label
            GROUP BY y.level, y.label, t.name ORDER BY y.level, n DESC, name"""):
        out[level].append((name, n))
    return out


def raw_categories(con) -> list[tuple[str, int]]:
    """Products per raw breadcrumb (when the store is not aligned yet)."""
    return fetch(con, "SELECT path AS c, sum(n)::BIGINT AS n FROM report_paths WHERE levels > 0 GROUP BY 1 "
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
    rows = fetch(con, f"SELECT {cols}, sum(n)::BIGINT FROM report_combos GROUP BY ALL")
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

    rows = fetch(con, f"SELECT x, sum(n)::BIGINT FROM ({sql}) t(x, n) WHERE x IS NOT NULL GROUP BY 1 "
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
    return fetch(con, """
        SELECT property, sum(n)::BIGINT AS rows, count(*) AS distinct_values,
               array_to_string(list_transform(min_by({'value': value}, {'neg': -n, 'last': value IS NULL,
                                                                        'value': value}, 3),
                                              lambda x: x.value), ' / ') AS common
        FROM report_spec_values GROUP BY property ORDER BY rows DESC, property LIMIT ?""", [top])


def image_tiers(con) -> list[tuple[str, int]]:
    rows = fetch(con, "SELECT quality_tier, sum(n)::BIGINT FROM report_media WHERE kind = 'image' AND status = 'ok' "
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
    return fetch(con, """
        SELECT kind, status, reason, sum(n)::BIGINT AS n
        FROM report_media WHERE status NOT IN ('ok', 'pending') GROUP BY 1, 2, 3 ORDER BY n DESC, 1, 2, 3""")


def media_status(con) -> list[tuple[str, str, int]]:
    return fetch(con, "SELECT kind, status, sum(n)::BIGINT FROM report_media GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2")


def match_levels(con) -> list[tuple[str, int]]:
    return fetch(con, "SELECT coalesce(level, 'no evidence') AS lv, sum(n)::BIGINT FROM report_levels GROUP BY 1 "
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
    sizes = fetch(con, "SELECT n, count(*) FROM (SELECT group_id, sum(n)::BIGINT AS n FROM report_dedup_groups GROUP BY 1) "
                       "WHERE n > 1 GROUP BY 1 ORDER BY 1")
    return Duplicates(
        products=int(one(con, "SELECT coalesce(sum(n), 0) FROM report_dedup_groups")),
        groups=sum(g for _, g in sizes),
        grouped=sum(n * g for n, g in sizes),
        sizes=sizes,
        rules=fetch(con, "SELECT rule, sum(n)::BIGINT FROM report_dedup_groups WHERE rule IS NOT NULL GROUP BY 1 "
                         "ORDER BY 2 DESC, 1"),
    )


@dataclass
class Alignment:
    methods: list[tuple[str, int]]  # label_map method -> raw paths
    unified: dict[int, int]  # level -> unified labels
    borderline: list[dict] = field(default_factory=list)  # review-file pairs closest to the thresholds
    merged: list[dict] = field(default_factory=list)  # pairs align merged
    review_file: str | None = None


def alignment(con, review_path: Path, top: int) -> Alignment:
    out = Alignment(
        methods=fetch(con, "SELECT method, count(*) FROM label_map GROUP BY 1 ORDER BY 2 DESC, 1"),
        unified=dict(fetch(con, "SELECT level, count(*) FROM taxonomy GROUP BY 1 ORDER BY 1")),
    )
    if review_path.is_file():
        out.review_file = str(review_path)
        with review_path.open(encoding="utf-8-sig", newline="") as fh:
            pairs = list(csv.DictReader(fh))  # sorted by |margin|: the borderline pairs come first
        out.borderline = pairs[:top]
        out.merged = [p for p in pairs if p.get("final") in ("merge", "merged", "accept", "True", "true", "1")][:top]
    return out
