"""The report's compliance section: per source domain (the host of a product page's URL), the pages
seen, the opt-outs, licences, blurred faces, personal data an export masks, and takedowns.

Opt-outs come from ``optouts`` (by the host of the page or file that stated them), licences from
``licenses`` (the licence a product page states; ``none stated`` for a product without one), faces
from ``faces`` (the faces found in a domain's pictures: what an export with ``export.blur_faces``
blurs), takedowns from ``takedowns``; the fields masked are what an export would mask now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..storage.views import sql_str
from . import compliance_facts as cf
from .page import Html, empty, html, table

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


def connect(store):
    """A connection with the views of :data:`TABLES` (:func:`by_domain`'s), DuckDB's memory held to
    :data:`MEMORY` (its joins and aggregates grow with the store; past it they spill into the store's work folder)."""
    con = store.connect(need=TABLES, only=TABLES)
    con.execute(f"SET memory_limit = {sql_str(MEMORY)}")
    con.execute(f"SET temp_directory = {sql_str(str(store.work_dir('report', 'tmp')))}")
    return con


def by_domain(store) -> dict[str, Domain]:
    """Every source domain's :class:`Domain` counted from the tables as they are now (what a report run
    draws from its kept facts and totals), the domains with the most pages first."""
    con = connect(store)
    try:
        rows = cf.make_all(con, cf.faces_of(con, "faces"))
        con.register("report_c_all", rows)
        con.execute(f"CREATE TEMP VIEW {cf.VIEW} AS SELECT * FROM report_c_all")
        from ..egress.gate import withheld_ids

        totals = cf.without_withheld(con, cf.totals(con, "report_c_all"), withheld_ids(store))
        return domains_of(totals, cf.small_counts(con, store, set(), {}))
    finally:
        con.close()


def domains_of(totals: dict, counts: dict[str, list]) -> dict[str, Domain]:
    """The domains from the totals (:data:`.compliance_facts.TOTALS`) and the small tables' counts per host."""
    domains: dict[str, Domain] = {}
    licences = sorted(zip(*(totals["c_licences"].column(c).to_pylist() for c in ("host", "licence", "n"))),
                      key=lambda r: (-r[2], r[1]))
    for host, lic, n in licences:
        d = domains.setdefault(host, Domain())
        d.products += n
        d.licences[lic] = n
    for host, n in zip(*(totals["c_faces"].column(c).to_pylist() for c in ("host", "n"))):
        domains.setdefault(host, Domain()).faces = n
    masked = {(h, x): n for h, x, n in zip(*(totals["c_masked"].column(c).to_pylist() for c in ("host", "field", "n")))}
    for x in cf.FIELDS:
        for (h, field_), n in sorted(masked.items()):
            if field_ == x:
                domains.setdefault(h, Domain()).masked[x] = n
    for name in ("errors", "optouts", "takedowns"):
        for host, n in counts.get(name, []):
            setattr(domains.setdefault(host, Domain()), name, n)
    return dict(sorted(domains.items(), key=lambda kv: (-kv[1].pages, kv[0])))


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:,}" for k, v in value.items()) or "none"
    return f"{value:,}"


def section(store) -> tuple[Html, bool]:
    """The section of the tables as they are now (:func:`by_domain`)."""
    return section_of(by_domain(store))


def section_of(domains: dict[str, Domain]) -> tuple[Html, bool]:
    """The section's body (a row per source domain) and whether it only holds guidance."""
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
