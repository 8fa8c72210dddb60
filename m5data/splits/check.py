"""``check-splits``: the invariants of a split version, checked against the store as it is now.

1. a product is in at most one of train, query-c, gallery-c, query-fg, gallery-fg, cls-train,
   cls-test; ``subset`` lies inside train;
2. no duplicate group (``dedup`` + accepted ``matches``) has products both in train and in a
   retrieval split (query/gallery), nor both in a query split and in classification;
3. every query-c product has a gallery-c product of the same unified category, every query-fg
   product a gallery-fg product of its duplicate group;
4. the manifest's figures (products, classes, modality counts, checksums) equal SQL over the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import config as cfg
from .build import PATH_SEP, SplitsError, cat_key_sql, open_connection, with_splits
from .groups import GROUP_TABLE, GroupSource, load_groups
from .manifest import label_sql, manifest_path, read_manifest, split_stats
from .plan import EXCLUSIVE, check_settings

RETRIEVAL = ("query-c", "gallery-c", "query-fg", "gallery-fg")
QUERIES = ("query-c", "query-fg")
CLS = ("cls-train", "cls-test")


@dataclass
class Violation:
    rule: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    version: str
    groups: GroupSource
    rules: list[tuple[str, int]] = field(default_factory=list)  # (rule, violations), every rule checked
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _in(names) -> str:
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


def check(store, settings: cfg.Settings, *, version: str | None = None) -> CheckReport:
    """Check one split version (default ``splits.version``); raises SplitsError when it does not exist."""
    settings = with_splits(settings, version=version)  # a copy: the caller's settings are never written to
    check_settings(settings)
    version = settings.splits.version
    manifest = read_manifest(store, version)
    level = (manifest or {}).get("plan", {}).get("params", {}).get("coarse_level", settings.splits.coarse_level)
    con = open_connection(store, settings)
    try:
        v = version.replace("'", "''")
        con.execute(f"CREATE OR REPLACE TEMP TABLE chk AS SELECT product_id, split FROM splits WHERE version = '{v}'")
        if not con.execute("SELECT count(*) FROM chk").fetchall()[0][0]:
            known = [r[0] for r in con.execute("SELECT DISTINCT version FROM splits ORDER BY 1").fetchall()]
            raise SplitsError(f"no split version {version!r} in {store.root} "
                              f"(versions: {', '.join(known) or 'none; run `m5data build-splits`'})")
        report = CheckReport(version, load_groups(con))
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE chk_g AS
            SELECT c.product_id, c.split, coalesce(g.grp, c.product_id) AS grp, lab.cat
            FROM chk c LEFT JOIN {GROUP_TABLE} g ON g.product_id = c.product_id
            LEFT JOIN (SELECT p.product_id, {cat_key_sql(level, 'l')} AS cat FROM products p LEFT JOIN label_map l
                       ON l.platform = coalesce(p.platform, '')
                      AND l.raw_path = coalesce(array_to_string(p.category_path, '{PATH_SEP}'), '')) lab
              ON lab.product_id = c.product_id
        """)
        rules = {
            "a product in two exclusive splits": f"""
                SELECT product_id FROM chk WHERE split IN {_in(EXCLUSIVE)} GROUP BY product_id HAVING count(*) > 1""",
            "a subset product not in train": """
                SELECT product_id FROM chk WHERE split = 'subset'
                EXCEPT SELECT product_id FROM chk WHERE split = 'train'""",
            "a duplicate group in both train and a retrieval split": f"""
                SELECT grp FROM chk_g GROUP BY grp
                HAVING bool_or(split IN ('train', 'subset')) AND bool_or(split IN {_in(RETRIEVAL)})""",
            "a duplicate group in both a query split and classification": f"""
                SELECT grp FROM chk_g GROUP BY grp
                HAVING bool_or(split IN {_in(QUERIES)}) AND bool_or(split IN {_in(CLS)})""",
            "a query-c product without a gallery-c product of its category": """
                SELECT q.product_id FROM chk_g q WHERE q.split = 'query-c' AND NOT EXISTS (
                    SELECT 1 FROM chk_g g WHERE g.split = 'gallery-c' AND g.cat = q.cat)""",
            "a query-fg product without a gallery-fg product of its duplicate group": """
                SELECT q.product_id FROM chk_g q WHERE q.split = 'query-fg' AND NOT EXISTS (
                    SELECT 1 FROM chk_g g WHERE g.split = 'gallery-fg' AND g.grp = q.grp)""",
        }
        for rule, sql in rules.items():
            n = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
            report.rules.append((rule, n))
            if n:
                examples = [str(r[0]) for r in con.execute(f"SELECT * FROM ({sql}) ORDER BY 1 LIMIT 5").fetchall()]
                report.violations.append(Violation(rule, n, examples))
        _check_manifest(con, store, version, manifest, report)
    finally:
        con.close()
    return report


def _check_manifest(con, store, version: str, manifest: dict | None, report: CheckReport) -> None:
    rule = "the manifest's figures equal SQL over the store"
    if manifest is None:
        report.rules.append((rule, 1))
        report.violations.append(Violation(rule, 1, [f"no manifest at {manifest_path(store, version)}"]))
        return
    level = manifest.get("plan", {}).get("params", {}).get("coarse_level", 3)
    seed = manifest.get("plan", {}).get("params", {}).get("seed", manifest.get("seed", 0))
    actual = split_stats(con, "chk", label_sql(level), seed=seed)
    stored = manifest.get("splits", {})
    bad = []
    for split in sorted(set(actual) | set(stored)):
        a, s = actual.get(split), stored.get(split)
        if a != s:
            fields = sorted(k for k in set(a or {}) | set(s or {}) if (a or {}).get(k) != (s or {}).get(k)) if a and s else ["split"]
            bad.append(f"{split}: {', '.join(fields)} differ (manifest {'missing' if s is None else 'has it'}, "
                       f"store {'missing' if a is None else 'has it'})")
    report.rules.append((rule, len(bad)))
    if bad:
        report.violations.append(Violation(rule, len(bad), bad[:5]))
