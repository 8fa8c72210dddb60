"""Pools and roles of a split version, in DuckDB SQL (docs/splits.md, "The assignment").

How a product is placed (docs/splits.md):

1. its *group* (duplicate group from ``dedup`` / accepted ``matches``, else the product itself) is
   hashed with the seed: ``md5(seed:group)`` gives four independent uniform numbers, compared with
   the plan's thresholds to pick the group's *pool*: fine-grained (domain groups only),
   classification (sampled categories), coarse (labelled groups), train, or held out;
2. inside a pool, bits 96-127 of ``md5(seed:product_id)`` pick the product's *role* (query or gallery,
   cls-test or cls-train); a product already in this version keeps its role (stability), and the
   one data-dependent rule, "every query has a match in its gallery", demotes a new query to the
   gallery when its category (coarse) or group (fine) would have no gallery product.
"""

from __future__ import annotations

from .. import config as cfg
from .labels import cat_key_of
from .plan import Plan

POOL_OF = {"train": "train", "query-c": "coarse", "gallery-c": "coarse", "query-fg": "fine",
           "gallery-fg": "fine", "cls-train": "cls", "cls-test": "cls"}


def _u(i: int) -> str:
    """The i-th (0..3) uniform number in [0, 1) of the group hash (bits 32i .. 32i + 31 of the md5)."""
    return f"(b.u{i}::DOUBLE / 4294967296.0)"


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def assign(con, plan: Plan, settings: cfg.Settings, version: str, keep_previous: bool = True,
           prev_version: str | None = None, extra: str = "") -> None:
    """Views ``split_pooled`` (every product's pool) and ``split_assigned`` (product_id, split, cat), and
    the temp table ``split_roles`` (the evaluation pools' products, a fifth of the store, with roles).

    With ``keep_previous`` a product already in ``prev_version`` (default: ``version`` itself) keeps its
    role while its pool is unchanged.
    """
    set_cls_rates(con, plan)
    pool_view(con, plan, settings, "split_base", "split_pooled", extra)
    if keep_previous:
        pools = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in POOL_OF.items())
        prev = (f"SELECT product_id, split AS prev_split, CASE split {pools} END AS prev_pool "
                f"FROM splits WHERE version = {sql_literal(prev_version or version)} AND split <> 'subset'")
    else:  # not even a filtered read: the splits view is a window over every version's rows
        prev = "SELECT NULL::VARCHAR AS product_id, NULL::VARCHAR AS prev_split, NULL::VARCHAR AS prev_pool WHERE false"
    place_roles(con, plan, settings, "split_pooled", prev)
    assigned_view(con, plan, "split_pooled")


def set_cls_rates(con, plan: Plan) -> None:
    """Temp table ``split_cls`` (cat_k, rate): the plan's sampled classification categories."""
    con.execute("CREATE OR REPLACE TEMP TABLE split_cls (cat_k BIGINT, rate DOUBLE)")
    if plan.cls_rates:
        # one statement: executemany runs one INSERT per category (1,805 of them took 0.3 s)
        keys, rates = zip(*((cat_key_of(k), float(r)) for k, r in plan.cls_rates.items()))
        con.execute("INSERT INTO split_cls SELECT unnest(?::BIGINT[]), unnest(?::DOUBLE[])", [list(keys), list(rates)])


def pool_view(con, plan: Plan, settings: cfg.Settings, base: str, name: str, extra: str = "") -> None:
    """View ``name``: the products of ``base`` (as :func:`create_base` makes) with their pool, subset
    draw and checksum limbs (and ``extra``, more of ``base``'s columns as ``, b.col``)."""
    s = settings.splits
    # pools are pure arithmetic on the group hash: a view, never a copy of the store's rows.
    # c0..c3: limbs of the product's own md5(seed:product_id): the checksum's terms, and c3 the role
    # uniform v; for a product alone it is the group hash (its limb 3 decides only train, never a
    # role), so only grouped products are hashed twice
    own = ", ".join(f"CASE WHEN b.grp IS NULL THEN b.u{i} ELSE ((md5_number('{int(s.seed)}:' || b.product_id) "
                    f">> {32 * i}) & 4294967295)::UINTEGER END AS c{i}" for i in range(4))
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {name} AS
        SELECT b.product_id, b.cat_c, b.cat_k, b.grp, b.g_n{extra},
               CASE
                 WHEN b.g_fg AND {_u(0)} < CASE WHEN b.g_n >= 2 THEN {plan.r_fine!r}
                                                ELSE {plan.r_fine_single!r} END THEN 'fine'
                 WHEN c.rate IS NOT NULL AND {_u(1)} < c.rate THEN 'cls'
                 WHEN b.g_lab AND {_u(2)} < {plan.r_coarse!r} THEN 'coarse'
                 WHEN {_u(3)} < {plan.r_train!r} THEN 'train'
               END AS pool,
               {_u(3)} < {plan.r_train * plan.r_subset!r} AS in_subset, {own}
        FROM {base} b LEFT JOIN split_cls c ON c.cat_k = b.g_cat
    """)


def place_roles(con, plan: Plan, settings: cfg.Settings, pooled: str, prev: str) -> None:
    """Temp table ``split_roles``: the evaluation pools' products of ``pooled`` with their role (``query``).

    ``prev``: SQL of (product_id, prev_split, prev_pool), the rows whose role a product keeps while its
    pool is unchanged.
    """
    s = settings.splits
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE split_roles AS
        WITH prev AS ({prev}), kept AS (
            SELECT p.product_id, p.cat_c, p.cat_k, p.grp, p.g_n, p.pool, p.c0, p.c1, p.c2, p.c3, prev.prev_split,
                   prev.prev_pool = p.pool AS kept,
                   p.c3::DOUBLE / 4294967296.0 AS v
            FROM {pooled} p LEFT JOIN prev ON prev.product_id = p.product_id
            WHERE p.pool IN ('coarse', 'fine', 'cls')
        )
        SELECT *,
               pool = 'cls' AND cat_k NOT IN (SELECT cat_k FROM split_cls) AS excluded,
               CASE
                 WHEN kept AND pool IN ('coarse', 'fine') THEN prev_split IN ('query-c', 'query-fg')
                 WHEN pool = 'coarse' THEN v < {plan.q_coarse!r}
                 WHEN pool = 'fine' THEN g_n >= 2 AND v < {plan.q_fine!r}
                 WHEN pool = 'cls' AND kept THEN prev_split = 'cls-test'
                 WHEN pool = 'cls' THEN v < {s.cls_test!r}
                 ELSE false
               END AS query
        FROM kept
    """)
    # every query needs a match in its gallery: where a category (coarse) or group (fine) would have
    # queries only, its new product with the largest role hash goes to the gallery instead
    for pool, by in (("coarse", "cat_c"), ("fine", "coalesce(grp, product_id)")):
        con.execute(f"""
            UPDATE split_roles SET query = false WHERE product_id IN (
                SELECT arg_max(product_id, (NOT coalesce(kept, false))::INT + v) FROM split_roles
                WHERE pool = '{pool}' GROUP BY {by} HAVING bool_and(query)
            )
        """)
    # classification: a category with two or more products gets a test and a train product
    # (chosen among its new products, so that an existing product never moves)
    for want, pick in ((True, "arg_min(product_id, v)"), (False, "arg_max(product_id, v)")):
        con.execute(f"""
            UPDATE split_roles SET query = {str(want).lower()} WHERE product_id IN (
                SELECT {pick} FILTER (WHERE NOT coalesce(kept, false)) FROM split_roles
                WHERE pool = 'cls' AND NOT excluded GROUP BY cat_k
                HAVING count(*) >= 2 AND NOT bool_or(query = {str(want).lower()})
                   AND count(*) FILTER (WHERE NOT coalesce(kept, false)) > 0
            )
        """)


ROLE_SPLIT = """CASE pool
                 WHEN 'coarse' THEN CASE WHEN query THEN 'query-c' ELSE 'gallery-c' END
                 WHEN 'fine' THEN CASE WHEN query THEN 'query-fg' ELSE 'gallery-fg' END
                 WHEN 'cls' THEN CASE WHEN query THEN 'cls-test' ELSE 'cls-train' END
               END"""


def assigned_view(con, plan: Plan, pooled: str) -> None:
    """View ``split_assigned`` (product_id, split, cat, c0..c3): ``pooled``'s train and ``split_roles``."""
    subset = (f"UNION ALL SELECT product_id, 'subset', cat_c, c0, c1, c2, c3 FROM {pooled} "
              "WHERE pool = 'train' AND in_subset") if plan.r_subset > 0 else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW split_assigned AS
        SELECT product_id, 'train' AS split, cat_c AS cat, c0, c1, c2, c3 FROM {pooled} WHERE pool = 'train'
        UNION ALL
        SELECT product_id, {ROLE_SPLIT}, cat_c, c0, c1, c2, c3
        FROM split_roles WHERE NOT excluded
        {subset}
    """)
