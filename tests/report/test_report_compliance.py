"""The report's compliance section (m5data/report/compliance.py): per source domain, the pages seen,
opt-outs, licences, faces blurred, the personal data an export masks (per field) and takedowns."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import unescape

from m5data.config import load
from m5data.report.build import build
from m5data.report.compliance import by_domain
from m5data.storage import Store

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def compliance_store(root) -> Store:
    """Two shops: shop.example.com (three products, one error page; a phone in a title, an e-mail in a
    spec value, a QQ id in a caption; a page opt-out, a CC licence, two faces in a picture; its image
    host a media opt-out) and other.example.org (one product, taken down by its domain)."""
    store = Store.init(root)
    rows = [("a:1", "https://shop.example.com/p/1", "面霜 客服13812345678"), ("a:2", "https://m.shop.example.com/p/2", "口红"),
            ("a:3", "https://shop.example.com/p/3", "奶粉800克 2023-10-01 ¥199"),
            ("b:1", "https://other.example.org/p/1", "手机 电话 010-62345678")]
    store.write("products", [{"product_id": p, "platform": p[0], "source_id": p[2:], "url": u, "title": t, "crawled_at": NOW}
                             for p, u, t in rows])
    store.write("specs", [{"product_id": "a:2", "position": 0, "property": "邮箱", "value": "x.y@example.com"},
                          {"product_id": "a:2", "position": 1, "property": "型号", "value": "SM-G9980"}])
    store.write("captions", [{"product_id": "a:3", "text": "好物推荐 QQ: 12345678", "status": "ok", "lang": "zh"}])
    store.write("crawl_errors", [{"url": "https://shop.example.com/p/9", "platform": "a", "reason": "no product data",
                                  "seen_at": NOW}])
    store.write("takedowns", [{"kind": "domain", "value": "other.example.org", "reason": None, "taken_at": NOW}])
    store.write("optouts", [{"url": "https://shop.example.com/p/7", "product_id": "a:7", "scope": "page",
                             "source": "x-robots-tag", "directive": "noai", "seen_at": NOW},
                            {"url": "https://img.shop.example.com/7.jpg", "product_id": "a:1", "scope": "media",
                             "source": "tdm-header", "directive": "tdm-reservation: 1", "seen_at": NOW}])
    store.write("licenses", [{"product_id": "a:1", "url": "https://shop.example.com/p/1", "source": "schema.org",
                              "license": "https://creativecommons.org/licenses/by/4.0/", "seen_at": NOW}])
    store.write("faces", [{"blob": "derived/images/a1.jpg", "product_id": "a:1", "kind": "image_norm", "n_faces": 2},
                          {"blob": "derived/images/a3.jpg", "product_id": "a:3", "kind": "image_norm", "n_faces": 0}])
    return store


def test_compliance_counts_per_source_domain(tmp_path):
    domains = by_domain(compliance_store(tmp_path / "store"))
    shop, msite, other = domains["shop.example.com"], domains["m.shop.example.com"], domains["other.example.org"]
    assert (shop.pages, shop.products, shop.errors) == (3, 2, 1)
    assert shop.masked == {"title": 1, "caption": 1} and msite.masked == {"specs": 1}
    assert other.masked == {"title": 1} and other.takedowns == 1 and shop.takedowns == 0
    assert shop.optouts == 1 and msite.optouts == 0 and domains["img.shop.example.com"].optouts == 1
    assert shop.licences == {"https://creativecommons.org/licenses/by/4.0/": 1, "none stated": 1}
    # other.example.org's one product is taken down: its licence is no licence a product that may leave states
    assert shop.faces == 2 and other.faces == 0 and other.licences == {"withheld": 1}
    assert list(domains)[0] == "shop.example.com"  # most pages first


def test_the_report_shows_a_row_per_source_domain(tmp_path):
    store = compliance_store(tmp_path / "store")
    result = build(store, load(None, {"store.path": str(store.root)}, environ={}), out=tmp_path / "report")
    assert "compliance" in result.sections and "compliance" not in result.empty_sections
    page = result.index.read_text(encoding="utf-8")
    body = re.search(r'<section id="compliance">(.*?)</section>', page, re.S).group(1)
    rows = [[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "<td" in tr]
    assert rows[0] == ["shop.example.com", "3", "2", "1", "https://creativecommons.org/licenses/by/4.0/ 1, none stated 1",
                       "2", "title 1, caption 1", "0"]
    assert ["other.example.org", "1", "1", "0", "withheld 1", "0", "title 1", "1"] in rows


def test_the_figures_are_what_the_tables_hold_on_a_store_of_thousands(tmp_path):
    """The section's SQL against the same figures counted in Python, row by row, on the benchmark's store
    (tests/support/compliance_store.py: 20 domains, contact data in titles, specs and captions, a domain
    and products taken down, faces in 5% of the pictures)."""
    from support.compliance_store import build

    from m5data.masking import mask_text
    from m5data.storage.takedowns import covering, host_of

    store = build(tmp_path / "store", 3000)
    products = store.read("products").to_pylist()
    host = {p["product_id"]: host_of(p["url"]) for p in products}
    expected: dict[str, dict] = {}

    def domain(h):
        return expected.setdefault(h, {"products": 0, "errors": 0, "optouts": 0, "licences": {}, "faces": 0,
                                       "masked": {}, "takedowns": 0})

    licences = {r["product_id"]: r["license"] for r in store.read("licenses").to_pylist()}
    takedowns = store.read("takedowns").to_pylist()
    down = {t["value"] for t in takedowns if t["kind"] == "product_id"}
    # a product taken down, or whose page opted out after it was stored, counts its licence as "withheld"
    opted: dict = {}
    for r in store.read("optouts", where="scope = 'page' AND seen_at IS NOT NULL").to_pylist():  # the last one seen
        opted[r["product_id"]] = max(opted.get(r["product_id"], r["seen_at"]), r["seen_at"])
    for p in products:
        d = domain(host[p["product_id"]])
        d["products"] += 1
        taken = p["product_id"] in down or covering(p["url"], takedowns) is not None
        seen = opted.get(p["product_id"])
        lic = ("withheld" if taken or (seen is not None and p["crawled_at"] is not None and seen > p["crawled_at"])
               else licences.get(p["product_id"], "none stated"))
        d["licences"][lic] = d["licences"].get(lic, 0) + 1
        d["takedowns"] += taken
    for r in store.read("crawl_errors").to_pylist():
        domain(host_of(r["url"]))["errors"] += 1
    for r in store.read("optouts").to_pylist():
        domain(host_of(r["url"]))["optouts"] += 1
    for r in store.read("faces", where="n_faces > 0").to_pylist():
        domain(host[r["product_id"]])["faces"] += r["n_faces"]
    texts = ([("title", p["product_id"], p["title"]) for p in products]
             + [("caption", r["product_id"], r["text"]) for r in store.read("captions", where="status = 'ok'").to_pylist()]
             + [("specs", r["product_id"], r["value"]) for r in store.read("specs").to_pylist()])
    for name, pid, text in texts:
        if n := mask_text(text)[1]:
            masked = domain(host[pid])["masked"]
            masked[name] = masked.get(name, 0) + n
    got = {h: {"products": d.products, "errors": d.errors, "optouts": d.optouts, "licences": d.licences,
               "faces": d.faces, "masked": d.masked, "takedowns": d.takedowns} for h, d in by_domain(store).items()}
    assert got == expected
    assert sum(d["takedowns"] for d in got.values()) > 100
    assert all(sum(d["masked"].get(f, 0) for d in got.values()) > 10 for f in ("title", "caption", "specs"))


def test_the_section_reads_within_a_memory_limit_and_spills_into_the_work_folder(tmp_path):
    """Its joins and aggregates grow with the store: DuckDB holds them under a fixed limit and writes the
    rest to the store's work folder, so the report's memory does not grow with the store."""
    import duckdb

    from m5data.report import compliance

    store = compliance_store(tmp_path / "store")
    con, same = compliance.connect(store), duckdb.connect()
    try:
        limit, tmp = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
        same.execute(f"SET memory_limit = '{compliance.MEMORY}'")
        assert limit == same.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()
        same.close()
    assert tmp == str(store.work_dir("report", "tmp"))
