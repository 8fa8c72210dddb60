"""``build-splits``: assign every product of the store to the splits of one version, in DuckDB SQL
(how a product is placed: ``roles.py``), and write the version's rows, carry and manifest.

Nothing is looped over in Python: the store's size only changes the SQL's input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import config as cfg
from ..errors import UserError
from ..storage import StageStats, withheld
from .carry import carry_sql, cat3_sql, flags_table_sql, lkey_sql, write_carry
from .groups import GROUP_TABLE, GroupSource, load_groups
from .labels import PATH_SEP, cat_key_of, cat_key_sql, cat_name_sql  # noqa: F401 (re-exported)
from .manifest import read_manifest, split_stats, write_manifest
from .plan import Plan, PlanCounts, check_settings, fg_class_ids, make_plan, plan_params
from .roles import assign, sql_literal


def with_splits(settings: cfg.Settings, **values) -> cfg.Settings:
    """A copy of ``settings`` whose ``[splits]`` has ``values`` (those not None): a run's version or seed,
    passed on without writing into the settings object the caller (the flow, the next stage) shares."""
    import dataclasses

    values = {k: v for k, v in values.items() if v is not None}
    return dataclasses.replace(settings, splits=dataclasses.replace(settings.splits, **values)) if values else settings

Progress = Callable[[str], None]
class SplitsError(UserError, ValueError):
    """build-splits cannot start (empty store, a version built with other settings); one line for the user."""


@dataclass
class BuildReport:
    """What one build did, beyond the stage counts."""

    stats: StageStats
    version: str
    plan: Plan
    groups: GroupSource
    splits: dict = field(default_factory=dict)  # split -> manifest entry
    held_out: int = 0  # products in no split (train set to less than the rest)
    excluded: dict = field(default_factory=dict)  # reason -> products left out of an evaluation split
    moved: int = 0  # products of the previous build of this version now in another split (0 unless groups changed)
    reused_plan: bool = False  # the version's own stored plan, or ``carried_from``'s
    carried_from: str | None = None  # the previous version whose plan and roles this new one carries
    manifest: Path | None = None
    placed_again: int | None = None  # products placed again by a build from the previous version's carry; None: all


# the tables a build (and check-splits) reads: a view of each of the store's tables costs ~20 ms
READS = ("products", "label_map", "dedup", "matches", "splits", "media", "captions", "specs", "takedowns", "optouts")


def open_connection(store, settings: cfg.Settings):
    """A store connection (views of :data:`READS`) with the memory limit and spill folder of ``[splits]``."""
    con = store.connect(need=READS, only=READS)
    s = settings.splits
    con.execute(f"SET memory_limit = {sql_literal(s.memory_limit)}")
    con.execute(f"SET temp_directory = {sql_literal(str(store.work_dir('splits', 'tmp')))}")
    con.execute("SET preserve_insertion_order = false")
    if s.threads:
        con.execute(f"SET threads = {int(s.threads)}")
    return con


def create_base(con, settings: cfg.Settings, seed: int, grouped: bool = True, keep: bool = False) -> None:
    """Temp table ``split_base``: one row per product with its labels, its group and the group's hash.

    ``grouped`` False (no duplicate groups) takes a single pass without the group joins. ``keep``: also
    each product's level-3 label ``cat3`` and label key ``lkey``, for the version's carry (``carry.py``).
    """
    s = settings.splits
    more = f", {cat3_sql('l')} AS cat3, {lkey_sql('p')} AS lkey" if keep else ""
    passed = ", lab.cat3, lab.lkey" if keep else ""
    fg = ", ".join(str(i) for i in fg_class_ids(s)) or "NULL"
    # the group hash's four 32-bit limbs are kept apart, so that later steps need no 128-bit arithmetic
    limbs = ", ".join(f"((h >> {32 * i}) & 4294967295)::UINTEGER AS u{i}" for i in range(4))
    if not grouped:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE split_base AS SELECT * EXCLUDE (h), {limbs} FROM (
            SELECT p.product_id, l.class_id, {cat_key_sql(s.coarse_level, 'l')} AS cat_c,
                   {cat_key_sql(s.cls_level, 'l')} AS cat_k, NULL::VARCHAR AS grp,
                   coalesce(l.class_id IN ({fg}), false) AS g_fg, l.class_id IS NOT NULL AS g_lab,
                   {cat_key_sql(s.cls_level, 'l')} AS g_cat, 1 AS g_n,
                   md5_number('{seed}:' || p.product_id) AS h{more}
            FROM products p
            LEFT JOIN label_map l
              ON l.platform = coalesce(p.platform, '')
             AND l.raw_path = coalesce(array_to_string(p.category_path, '{PATH_SEP}'), '')
            )
        """)
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE split_base AS SELECT * EXCLUDE (h), {limbs} FROM (
        WITH lab AS (
            SELECT p.product_id, l.class_id, l.sub_class_id, l.subsub_class_id{more}
            FROM products p
            LEFT JOIN label_map l
              ON l.platform = coalesce(p.platform, '')
             AND l.raw_path = coalesce(array_to_string(p.category_path, '{PATH_SEP}'), '')
        ), b AS (
            SELECT lab.product_id, lab.class_id,
                   {cat_key_sql(s.coarse_level, 'lab')} AS cat_c,
                   {cat_key_sql(s.cls_level, 'lab')} AS cat_k,
                   g.grp{passed}
            FROM lab LEFT JOIN {GROUP_TABLE} g ON g.product_id = lab.product_id
        ), ga AS (
            SELECT grp, bool_or(coalesce(class_id IN ({fg}), false)) AS g_fg,
                   bool_and(class_id IS NOT NULL) AS g_lab, min(cat_k) AS g_cat, count(*) AS g_n
            FROM b WHERE grp IS NOT NULL GROUP BY grp
        )
        SELECT b.product_id, b.class_id, b.cat_c, b.cat_k, b.grp,
               coalesce(ga.g_fg, coalesce(b.class_id IN ({fg}), false)) AS g_fg,
               coalesce(ga.g_lab, b.class_id IS NOT NULL) AS g_lab,
               coalesce(ga.g_cat, b.cat_k) AS g_cat, coalesce(ga.g_n, 1) AS g_n,
               md5_number('{seed}:' || coalesce(b.grp, b.product_id)) AS h{passed.replace('lab.', 'b.')}
        FROM b LEFT JOIN ga ON ga.grp = b.grp  -- grp is null for a product alone: it is its own group
        )
    """)


def plan_counts(con, settings: cfg.Settings, seed: int) -> tuple[PlanCounts, list[str]]:
    """The counts a plan is made from, and the eligible classification categories in seeded order."""
    s = settings.splits
    products, labeled, domain, domain_multi = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE class_id IS NOT NULL), count(*) FILTER (WHERE g_fg),
               count(*) FILTER (WHERE g_fg AND grp IS NOT NULL)
        FROM split_base
    """).fetchall()[0]
    rows = con.execute(f"""
        SELECT {cat_name_sql('cat_k')} AS name, count(*) AS n FROM split_base
        WHERE cat_k IS NOT NULL GROUP BY cat_k
        ORDER BY md5_number('{seed}:cls-class:' || name), name
    """).fetchall()
    categories = {name: n for name, n in rows}
    order = [name for name, n in rows if n >= s.cls_min_per_class]
    return PlanCounts(products, labeled, domain, domain_multi, categories), order


def _plan_for(store, settings: cfg.Settings, version: str, seed: int, con, replace: bool,
              carry: str | None = None) -> tuple[Plan, bool]:
    """The version's stored plan when it was built before with the same settings, else ``carry``'s
    (a previous version's, the pipeline's next version), else a new one."""
    params = plan_params(settings.splits) | {"seed": seed}
    old = read_manifest(store, version)
    if old is not None and not replace and labelled(old["plan"]):  # a plan made without labels is made again
        stored = Plan.from_json(old["plan"])
        if stored.params != params:
            diff = sorted(k for k in params if stored.params.get(k) != params[k])
            raise SplitsError(
                f"split version {version!r} was built with other settings ({', '.join(diff)}); build a new "
                f"--version, or pass --replace to rebuild {version!r} from scratch (its products may move)")
        return stored, True
    if carry is not None and not replace:
        carried = carried_plan(store, carry, version, params)
        if carried is not None:
            return carried, True
    counts, order = plan_counts(con, settings, seed)
    if counts.products == 0:
        raise SplitsError(f"store {store.root} has no products: crawl (or import) products first")
    if counts.labeled == 0:  # a plan frozen now would keep every product in train after align
        raise SplitsError(f"no product of store {store.root} has a unified label (label_map has none of its "
                          f"{counts.products:,} products' category paths): run `m5data align` first; nothing was "
                          f"written for split version {version!r}")
    return make_plan(version, settings.splits, counts, order), False


def labelled(plan: dict) -> bool:
    """The stored ``plan`` was made from labelled products (an older build before align froze one without:
    every product in train, no evaluation split); such a plan is never reused or carried."""
    return int(plan.get("counts", {}).get("labeled", 1)) > 0


def carried_plan(store, prev: str, version: str, params: dict, manifest: dict | None = None) -> Plan | None:
    """``prev``'s plan for ``version`` (its rates and sampled categories as they are), or None when
    ``prev`` has no manifest, was built with other settings or without labels (:func:`labelled`)."""
    import dataclasses

    old = manifest if manifest is not None else read_manifest(store, prev)
    if old is None or not labelled(old["plan"]):
        return None
    plan = Plan.from_json(old["plan"])
    return dataclasses.replace(plan, version=version) if plan.params == params else None


def build(store, settings: cfg.Settings, *, version: str | None = None, seed: int | None = None,
          replace: bool = False, progress: Progress | None = None, carry: str | None = None,
          keep: bool = False) -> BuildReport:
    """Write the ``splits`` rows of one version and its manifest.

    Args:
        version: split version name (default ``splits.version``).
        seed: hash salt (default ``splits.seed``).
        replace: rebuild an existing version with new settings (its stored plan is dropped).
        progress: ``progress(step)`` callback, called as each step starts.
        carry: a previous version (the pipeline's next version): a new ``version`` takes its plan (when
            built with the same settings) and every product keeps its role there while its pool is the
            same (docs/splits.md, "Stability and versions").
        keep: also write the version's carry (``carry.py``: the pipeline's runs), from which its next version
            is built from what changed (``incremental.build_next``).
    """
    # a copy with the version and seed asked: the caller's settings are never written to
    settings = with_splits(settings, version=version, seed=seed)
    check_settings(settings)
    version, seed = settings.splits.version, settings.splits.seed
    say = progress or (lambda step: None)
    stats = StageStats("splits")
    con = open_connection(store, settings)
    kept = None
    try:
        # a taken-down or opted-out product is no product of the version (nor of its groups)
        withheld.hide(store, con)
        say("groups")
        groups = load_groups(con)
        say("labels and hashes")
        create_base(con, settings, seed, grouped=groups.grouped_products > 0, keep=keep)
        own = read_manifest(store, version) is not None and not replace
        plan, reused = _plan_for(store, settings, version, seed, con, replace, carry)
        carried = carry if reused and not own else None
        say("assignment")
        # a first build has no previous rows to keep (and need not scan the splits of other versions)
        assign(con, plan, settings, version, keep_previous=reused, prev_version=carried,
               extra=", b.cat3, b.lkey" if keep else "")
        report = BuildReport(stats, version, plan, groups, reused_plan=reused)
        stats.n_in = con.execute("SELECT count(*) FROM split_base").fetchall()[0][0]
        report.excluded = {"classification group member outside the sampled categories": con.execute(
            "SELECT count(*) FROM split_roles WHERE excluded").fetchall()[0][0]}
        if reused:
            report.moved = con.execute(f"""
                SELECT count(*) FROM splits p LEFT JOIN split_assigned a
                  ON a.product_id = p.product_id AND a.split <> 'subset'
                WHERE p.version = {sql_literal(carried or version)} AND p.split <> 'subset' AND a.split IS DISTINCT FROM p.split
            """).fetchall()[0][0]
        say("manifest")
        if keep:  # every product's modalities once: for the figures and the carry
            con.execute(f"CREATE OR REPLACE TEMP TABLE split_flags AS {flags_table_sql()}")
        report.splits = split_stats(con, "split_assigned", flags="split_flags" if keep else None)
        if keep:
            kept = con.sql(carry_sql()).to_arrow_table()
        placed = sum(e["products"] for name, e in report.splits.items() if name != "subset")
        report.held_out = stats.n_in - placed - sum(report.excluded.values())
        say("writing")
        stats.n_out = _write(store, con, version)
    finally:
        con.close()
    return finish(store, settings, report, replace=replace, carried=carried, kept=kept)


def finish(store, settings: cfg.Settings, report: BuildReport, *, replace: bool, carried: str | None,
           kept=None) -> BuildReport:
    """The version's carry (``kept``, when given) and its manifest (last of its files)."""
    stats, version, seed = report.stats, report.version, settings.splits.seed
    stats.finish()
    if kept is not None:  # before the manifest, which names the run that wrote it
        write_carry(store, version, kept, stats.run_id)
    manifest = {
        "version": version, "seed": seed, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": stats.run_id, "products": stats.n_in, "held_out": report.held_out, "excluded": report.excluded,
        "moved_from_previous_build": report.moved, "reused_plan": report.reused_plan, "groups": report.groups.to_json(),
        "plan": report.plan.to_json(), "splits": report.splits,
    }
    if carried:
        manifest["carried_from"] = report.carried_from = carried  # the plan and the kept roles are that version's
    report.manifest = write_manifest(store, version, manifest)
    return report  # its runs row: the stage's run writes it (splits/stage.py, StageRun)


def _write(store, con, version: str) -> int:
    """Stream the version's rows into the store (one write sequence: the version is replaced whole)."""
    import pyarrow as pa

    reader = con.sql("SELECT product_id, split FROM split_assigned").to_arrow_reader(1_000_000)
    with store.writer("splits") as out:
        for batch in reader:
            out.write(pa.table({"product_id": batch.column(0), "split": batch.column(1),
                                "version": pa.repeat(version, batch.num_rows)}))
        rows = out.rows
    return rows
