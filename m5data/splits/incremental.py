"""The pipeline's next split version (``v1`` -> ``v2``) built from what changed since ``v1``.

``v2`` carries ``v1``'s plan (its rates and sampled categories) and takes every row of a product whose
inputs did not change from ``v1``'s rows file (``rows.py``): its pool, group, labels, checksum term and
modality flags. Only the *affected* products are placed again, through the build's own SQL
(``build.create_base``, ``pool_view``, ``place_roles``):

- products new or re-written since the stage's last complete run (``store.changed("products")``);
- products whose ``dedup`` row was written since, with every member of their group now and in ``v1``
  (a group is placed whole);
- products whose category path maps to a ``label_map`` row written since with another label than
  the one in their row (align re-writes rows whose label it kept).

Every product's role is then decided over the evaluation pools whole (``v1``'s rows and the placed
ones), with ``v1``'s roles kept, so ``v2`` holds exactly the rows of a full build of ``v2`` that carries
``v1``'s plan and roles (``build.build(carry=...)``; tested). The modality flags are read again only for
the affected products and those with ``media``, ``captions`` or ``specs`` rows written since.

:func:`build_next` returns why it cannot run instead (the stage then builds the version in full):
``v1`` has no manifest or rows file, was built with other settings, the duplicate groups involve
accepted ``matches`` (connected components: a change anywhere may join groups), or the store's
product count moved more than ``splits.replan_share`` from the plan's (a fresh plan).
"""

from __future__ import annotations

import pyarrow as pa

from .. import config as cfg
from ..storage import StageStats
from .build import BuildReport, Progress, assigned_view, create_base, finish, place_roles, pool_view, set_cls_rates
from .build import _q as q
from .groups import GROUP_TABLE, GroupSource
from .labels import PATH_SEP, cat_key_sql
from .manifest import FLAG_COLUMNS, MODALITIES, flag_ctes, flag_joins, read_manifest
from .plan import check_settings, plan_params
from .rows import ROWS_TABLE, read_rows, rows_stats, write_rows

READS = ("products", "label_map", "dedup", "media", "captions", "specs")
DRIFT = "drift"  # build_next's answer that starts with this: make a fresh plan


def build_next(store, settings: cfg.Settings, state: dict, prev: str, version: str, new_products: pa.Table,
               progress: Progress | None = None) -> BuildReport | str:
    """Build ``version`` from ``prev`` and what changed since ``state`` (the stage's last complete run).

    Args:
        state: the stage's saved state (its ``watermarks`` say what is new).
        prev: the version that run built.
        version: the version to write.
        new_products: ``store.changed("products", ...)`` since ``state``.

    Returns the build's report, or why it cannot be built so (a full build is needed; a reason
    starting with :data:`DRIFT`: with a fresh plan).
    """
    from .build import carried_plan

    check_settings(settings)
    say = progress or (lambda step: None)
    s = settings.splits
    since = {t: int(w) for t, w in state.get("watermarks", {}).items()}
    manifest = read_manifest(store, prev)
    if manifest is None:
        return f"version {prev} has no manifest"
    plan = carried_plan(store, prev, version, plan_params(s) | {"seed": s.seed}, manifest)
    if plan is None:
        return f"version {prev} was built with other settings"
    if "matches" in str(manifest.get("groups", {}).get("source", "")):
        return "duplicate groups join accepted matches (connected components)"
    changed_matches = store.changed("matches", since.get("matches", 0))
    if len(changed_matches):
        return "matches were written since"
    if (why := drift(store, settings, prev, new_products, manifest)) is not None:
        return why
    rows = read_rows(store, prev, manifest)
    if rows is None:
        return f"version {prev} has no rows file"

    say("what changed")
    # which groups only (new=False: whether each is new is not looked up in the older parts)
    dedup = store.changed("dedup", since.get("dedup", 0), new=False)
    labels = store.changed("label_map", since.get("label_map", 0), new=False)
    flagged = [store.changed(t, since.get(t, 0), new=False).column("product_id") for t in ("captions", "specs")]
    media = store.changed("media", since.get("media", 0), new=False).column("media_id")

    stats = StageStats("splits")
    con = store.connect(need=READS, only=READS)
    try:
        con.execute(f"SET memory_limit = {q(s.memory_limit)}")
        con.execute(f"SET temp_directory = {q(str(store.work_dir('splits', 'tmp')))}")
        con.execute("SET preserve_insertion_order = false")
        if s.threads:
            con.execute(f"SET threads = {int(s.threads)}")
        con.register("split_prev_in", rows)
        con.execute("CREATE OR REPLACE TEMP TABLE split_prev AS SELECT * FROM split_prev_in")
        con.unregister("split_prev_in")
        ids = pa.chunked_array([new_products.column("product_id").combine_chunks(),
                                dedup.column("product_id").combine_chunks()], pa.string()).combine_chunks()
        con.register("split_changed_in", pa.table({"product_id": ids}))
        relabelled = ""
        if len(labels):
            con.register("split_labels_in", labels.select(["platform", "raw_path"]))
            # a label_map row re-written with the same label moves nothing (align re-writes rows it kept):
            # only a product whose label keys differ from its row's is placed again
            relabelled = f"""UNION SELECT p.product_id FROM (
                    SELECT product_id, coalesce(platform, '') AS platform,
                           coalesce(array_to_string(category_path, '{PATH_SEP}'), '') AS raw_path FROM products
                ) p
                JOIN split_labels_in c ON c.platform = p.platform AND c.raw_path = p.raw_path
                LEFT JOIN label_map l ON l.platform = p.platform AND l.raw_path = p.raw_path
                LEFT JOIN split_prev o ON o.product_id = p.product_id
                WHERE o.product_id IS NULL OR {cat_key_sql(s.coarse_level, 'l')} IS DISTINCT FROM o.cat_c
                   OR {cat_key_sql(s.cls_level, 'l')} IS DISTINCT FROM o.cat_k"""
        say("affected products")
        # a changed product's groups (now and in prev) are placed whole: a group's draw is one draw
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE split_affected AS
            WITH a1 AS (SELECT product_id FROM split_changed_in {relabelled}),
            g_now AS (SELECT DISTINCT group_id FROM dedup WHERE product_id IN (SELECT product_id FROM a1)),
            g_prev AS (SELECT DISTINCT grp FROM split_prev WHERE grp IS NOT NULL AND product_id IN (SELECT product_id FROM a1)),
            every AS (
                SELECT product_id FROM a1
                UNION SELECT product_id FROM dedup WHERE group_id IN (SELECT group_id FROM g_now)
                UNION SELECT product_id FROM split_prev WHERE grp IN (SELECT grp FROM g_prev)
            )
            SELECT DISTINCT product_id FROM products WHERE product_id IN (SELECT product_id FROM every)
        """)
        con.unregister("split_changed_in")
        if len(labels):
            con.unregister("split_labels_in")
        # the affected products' groups, as load_groups makes them (the groups with 2+ products in the store)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {GROUP_TABLE} AS
            SELECT product_id, group_id AS grp FROM dedup WHERE product_id IN (SELECT product_id FROM split_affected)
            QUALIFY count(*) OVER (PARTITION BY group_id) > 1
        """)
        say("labels and hashes")
        create_base(con, settings, s.seed, grouped=True, only="split_affected")
        say("assignment")
        set_cls_rates(con, plan)
        pool_view(con, plan, settings, "split_base", "split_pooled_new")
        kept_cols = "product_id, cat_c, cat_k, grp, g_n, pool, in_subset, c0, c1, c2, c3"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE split_pooled AS
            SELECT {kept_cols} FROM split_pooled_new
            UNION ALL
            SELECT {kept_cols} FROM split_prev WHERE product_id NOT IN (SELECT product_id FROM split_affected)
        """)
        place_roles(con, plan, settings, "split_pooled",
                    "SELECT product_id, split AS prev_split, pool AS prev_pool FROM split_prev WHERE split IS NOT NULL")
        assigned_view(con, plan, "split_pooled")
        say("modality flags")
        media_ids = media.combine_chunks()
        con.register("split_flag_ids", pa.table({"product_id": pa.chunked_array(
            [c.combine_chunks() for c in flagged], pa.string()).combine_chunks()}))
        con.register("split_media_ids", pa.table({"media_id": media_ids}))
        con.execute("""
            CREATE OR REPLACE TEMP TABLE split_flagged AS
            SELECT product_id FROM split_affected
            UNION SELECT product_id FROM split_flag_ids
            UNION SELECT product_id FROM media WHERE media_id IN (SELECT media_id FROM split_media_ids)
        """)
        con.unregister("split_flag_ids")
        con.unregister("split_media_ids")
        mods = ", ".join(f'"{m}"' for m in MODALITIES)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE split_flags AS
            WITH {flag_ctes('split_flagged')}
            SELECT g.product_id, {FLAG_COLUMNS} FROM split_flagged g {flag_joins('g')}
            UNION ALL
            SELECT product_id, {mods} FROM split_prev WHERE product_id NOT IN (SELECT product_id FROM split_flagged)
        """)
        from .rows import all_rows

        all_rows(con, "split_flags")
        say("manifest")
        n_in, held, excluded, moved, groups, grouped = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE pool IS NULL), count(*) FILTER (WHERE pool IS NOT NULL AND split IS NULL),
                   (SELECT count(*) FROM {ROWS_TABLE} r JOIN split_prev p ON p.product_id = r.product_id
                     WHERE r.split IS DISTINCT FROM p.split),
                   count(DISTINCT grp), count(grp)
            FROM {ROWS_TABLE}
        """).fetchall()[0]
        stats.n_in = n_in
        dedup_rows = con.execute("SELECT count(*) FROM dedup").fetchall()[0][0]
        source = GroupSource("dedup" if dedup_rows else "none", dedup_rows, 0, groups, grouped)
        report = BuildReport(stats, version, plan, source, reused_plan=True)
        report.excluded = {"classification group member outside the sampled categories": excluded}
        report.held_out, report.moved = held, moved
        report.splits = rows_stats(con, ROWS_TABLE, subset=plan.r_subset > 0)
        report.affected = con.execute("SELECT count(*) FROM split_affected").fetchall()[0][0]
        rows_file = write_rows(store, con, version, stats.run_id)
        say("writing")
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW split_out AS
            SELECT product_id, split FROM {ROWS_TABLE} WHERE split IS NOT NULL
            {"UNION ALL SELECT product_id, 'subset' FROM " + ROWS_TABLE + " WHERE in_subset" if plan.r_subset > 0 else ""}
        """)
        from .build import _write

        stats.n_out = _write(store, con, version, "split_out")
    finally:
        con.close()
    return finish(store, settings, report, replace=False, carried=prev if prev != version else None, rows_file=rows_file)


def drift(store, settings: cfg.Settings, prev: str, new_products: pa.Table, manifest: dict | None = None) -> str | None:
    """Why the next version after ``prev`` needs a fresh plan (starts with :data:`DRIFT`), else None: the
    store's product count (``prev``'s and those new since) moved past ``splits.replan_share`` of the plan's."""
    manifest = read_manifest(store, prev) if manifest is None else manifest
    if manifest is None:
        return None
    s = settings.splits
    base = int(manifest.get("plan", {}).get("counts", {}).get("products", 0))
    now = int(manifest.get("products", 0)) + _new(new_products)
    if base <= 0 or abs(now - base) > s.replan_share * base:
        return f"{DRIFT}: {now:,} products against the plan's {base:,} (splits.replan_share {s.replan_share})"
    return None


def _new(changed: pa.Table) -> int:
    """How many of ``store.changed``'s groups are new (none of their rows was there before)."""
    import pyarrow.compute as pc

    return int(pc.sum(changed.column("is_new")).as_py() or 0) if len(changed) else 0
