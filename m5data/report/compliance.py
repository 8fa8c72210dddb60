"""The report's compliance section: per source domain (the host of a product page's URL), the pages
seen, the opt-outs, licences, blurred faces, personal data an export masks, and takedowns.

Opt-outs come from ``optouts`` (by the host of the page or file that stated them), licences from
``licenses`` (the licence a product page states; ``none stated`` for a product without one), faces
from ``faces`` (the faces found in a domain's pictures: what an export with ``export.blur_faces``
blurs), takedowns from ``takedowns``; the fields masked are what an export would mask now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..masking import CANDIDATES_RE2, mask_text
from ..storage.takedowns import HOST_SQL, taken_down_sql
from ..storage.views import sql_str
from .page import Html, empty, html, table

BATCH = 8192
MEMORY = "256MB"  # DuckDB's limit for the section's joins and aggregates (it spills past it: docs/report.md)
TABLES = ("products", "crawl_errors", "captions", "specs", "takedowns", "optouts", "licenses", "faces")


@dataclass
class Domain:
    """What the section shows of one source domain."""

    products: int = 0  # product pages stored
    errors: int = 0  # pages recorded in crawl_errors
    optouts: int = 0
    licences: dict[str, int] = field(default_factory=dict)  # licence -> products
    faces: int = 0  # faces found in its pictures
    masked: dict[str, int] = field(default_factory=dict)  # field -> replacements an export makes
    takedowns: int = 0  # products taken down

    @property
    def pages(self) -> int:
        return self.products + self.errors


def _host(col: str) -> str:
    return HOST_SQL.format(url=col)


# each product's id and host: the small side of the joins that count other tables' rows by domain
_HOSTS = f"(SELECT product_id, {_host('url')} AS host FROM products)"


def _optouts(con, domains: dict[str, Domain]) -> None:
    for host, n in con.execute(f"SELECT {_host('url')}, count(*) FROM optouts GROUP BY 1").fetchall():
        domains.setdefault(host or "(unknown)", Domain()).optouts = n


def _licences(con, domains: dict[str, Domain]) -> None:
    for h, lic, n in con.execute(f"SELECT {_host('p.url')}, coalesce(l.license, 'none stated'), count(*) FROM products p "
                                 "LEFT JOIN licenses l USING (product_id) GROUP BY 1, 2 ORDER BY 3 DESC, 2").fetchall():
        domains.setdefault(h or "(unknown)", Domain()).licences[lic] = n


def _faces(con, domains: dict[str, Domain]) -> None:
    for h, n in con.execute(f"SELECT p.host, sum(f.n_faces) FROM faces f JOIN {_HOSTS} p USING (product_id) "
                            "WHERE f.n_faces > 0 GROUP BY 1").fetchall():
        domains.setdefault(h or "(unknown)", Domain()).faces = int(n)


def _masked(con, domains: dict[str, Domain]) -> None:
    """Per domain and field, what an export would mask (only the texts :data:`CANDIDATES_RE2` finds are masked)."""
    found = sql_str(CANDIDATES_RE2)
    sources = (("title", f"SELECT {_host('p.url')}, p.title FROM products p WHERE regexp_matches(p.title, {found})"),
               ("caption", f"SELECT p.host, c.text FROM captions c JOIN {_HOSTS} p USING (product_id) "
                           f"WHERE c.status = 'ok' AND regexp_matches(c.text, {found})"),
               ("specs", f"SELECT p.host, s.value FROM specs s JOIN {_HOSTS} p USING (product_id) "
                         f"WHERE regexp_matches(s.value, {found})"))
    for name, sql in sources:
        for batch in con.sql(sql).to_arrow_reader(BATCH):
            for h, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                found = mask_text(text)[1]
                if found:
                    masked = domains.setdefault(h or "(unknown)", Domain()).masked
                    masked[name] = masked.get(name, 0) + found


def connect(store):
    """The section's connection: the views of :data:`TABLES`, DuckDB's memory held to :data:`MEMORY`
    (its joins and aggregates grow with the store; past it they spill into the store's work folder)."""
    con = store.connect(need=TABLES, only=TABLES)
    con.execute(f"SET memory_limit = {sql_str(MEMORY)}")
    con.execute(f"SET temp_directory = {sql_str(str(store.work_dir('report', 'tmp')))}")
    return con


def by_domain(store) -> dict[str, Domain]:
    """Every source domain's :class:`Domain`, the domains with the most pages first."""
    con = connect(store)
    try:
        domains: dict[str, Domain] = {}
        for h, n in con.execute(f"SELECT {_host('url')}, count(*) FROM products GROUP BY 1").fetchall():
            domains[h or "(unknown)"] = Domain(products=n)
        for h, n in con.execute(f"SELECT {_host('url')}, count(*) FROM crawl_errors GROUP BY 1").fetchall():
            domains.setdefault(h or "(unknown)", Domain()).errors = n
        _optouts(con, domains)
        _licences(con, domains)
        _faces(con, domains)
        # a semi-join: the taken-down ids are the small side (a second join of products held them all)
        for h, n in con.execute(f"SELECT {_host('url')}, count(*) FROM products WHERE product_id IN "
                                f"(SELECT product_id FROM ({taken_down_sql()})) GROUP BY 1").fetchall():
            domains.setdefault(h or "(unknown)", Domain()).takedowns = n
        _masked(con, domains)
    finally:
        con.close()
    return dict(sorted(domains.items(), key=lambda kv: (-kv[1].pages, kv[0])))


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:,}" for k, v in value.items()) or "none"
    return f"{value:,}"


def section(store) -> tuple[Html, bool]:
    """The section's body (a row per source domain) and whether it only holds guidance."""
    domains = by_domain(store)
    if not domains:
        return empty("No page has been crawled yet.", "m5data crawl --start-url URL (or m5data demo)"), True
    rows = [[host, d.pages, d.products, _shown(d.optouts), _shown(d.licences), _shown(d.faces), _shown(d.masked),
             d.takedowns] for host, d in domains.items()]
    body = (html("<p>Per source domain: pages seen (product pages stored and pages recorded with an error), "
                 "opt-outs, licences found, faces blurred, personal data an export masks (per field, "
                 "export.mask_personal_data) and products taken down (m5data takedown). "
                 "&ldquo;-&rdquo;: not recorded in this store.</p>")
            + table(["domain", "pages seen", "products", "opted out", "licences", "faces blurred", "fields masked",
                     "taken down"], rows, {1, 2, 7}))
    return body, False
