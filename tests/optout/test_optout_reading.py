"""Opt-outs read wherever an owner states them (issue 76, findings 2, 3 and 5): robots.txt for every URL
the download requests, HTML robots meta tags, redirect hops, agent tokens with ``*`` and versions, a
stored file re-checked on a refresh, the ``tdm-policy`` recorded, opted-out products hidden in ``m5data sql``."""

import json

from support.crawl_server import Page, SiteServer
from support.media_server import jpeg_bytes, media_rows

from m5data.config import load
from m5data.download.run import run as download

JPEG = jpeg_bytes(32, 24)


def _download(store, **overrides):
    return download(store, load(overrides={"download.allow_private": True, "download.retries": 0, **overrides},
                                environ={}))


def _by_name(store, table: str, marker: str) -> dict:
    return {r["url"].split(marker)[1]: r for r in store.read(table).to_pylist() if marker in (r["url"] or "")}


def test_download_obeys_robots_txt_for_every_url_it_requests(store):
    """``User-agent: m5data`` / ``Disallow: /img/``: no file under /img/ is requested, neither directly
    nor as a redirect's target; each is ``opted_out`` (reason robots_txt) with an ``optouts`` row. A host
    whose robots.txt answers 503 has nothing fetched (RFC 9309: complete disallow), as a failure, not an
    opt-out; a 404 robots.txt allows everything. Each robots.txt is fetched once per run."""
    shop = SiteServer({"/img/a.jpg": Page(JPEG, "image/jpeg"), "/img/c.jpg": Page(JPEG, "image/jpeg"),
                       "/pub/b.jpg": Page(JPEG, "image/jpeg"),
                       "/pub/hop.jpg": Page(b"", status=302, headers={"Location": "/img/c.jpg"}),
                       "/robots.txt": Page(b"User-agent: otherbot\nDisallow: /\n\nUser-agent: m5data\n"
                                           b"Disallow: /img/\n\nUser-agent: *\nAllow: /\n", "text/plain")})
    down = SiteServer({"/x.jpg": Page(JPEG, "image/jpeg"), "/robots.txt": Page(b"busy", status=503)})
    free = SiteServer({"/y.jpg": Page(JPEG, "image/jpeg")})  # no robots.txt: 404
    with shop, down, free:
        urls = [f"{shop.url}/img/a.jpg", f"{shop.url}/pub/b.jpg", f"{shop.url}/pub/hop.jpg", f"{down.url}/x.jpg",
                f"{free.url}/y.jpg"]
        store.write("media", media_rows(urls))
        stats = _download(store)
    rows = {r["url"].rsplit("/", 1)[1]: r for r in store.read("media").to_pylist()}
    assert {k: (r["status"], r["blob"] is not None) for k, r in rows.items()} == {
        "a.jpg": ("opted_out", False), "b.jpg": ("ok", True), "hop.jpg": ("opted_out", False),
        "x.jpg": ("failed", False), "y.jpg": ("ok", True)}
    assert "robots.txt disallows /img/a.jpg" in rows["a.jpg"]["error"]
    assert "robots.txt" in rows["x.jpg"]["error"] and "5xx" in rows["x.jpg"]["error"]
    assert not any(p.startswith("/img/") for p in shop.requests) and down.requests == ["/robots.txt"]
    assert shop.requests.count("/robots.txt") == 1 and free.requests.count("/robots.txt") == 1
    optouts = {r["url"].rsplit("/", 1)[1]: r for r in store.read("optouts").to_pylist()}
    assert {k: (r["scope"], r["source"], r["directive"]) for k, r in optouts.items()} == {
        "a.jpg": ("media", "robots.txt", "Disallow"), "hop.jpg": ("media", "robots.txt", "Disallow")}
    assert stats.details["optouts"] == {"media": 2, "robots.txt": 2}
    assert stats.n_failed == 1 and dict(stats.failures) == {"failed/robots_unreachable": 1}
    (run,) = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()
    assert json.loads(run["config"])["job"]["optouts"] == {"media": 2, "robots.txt": 2}


def test_download_robots_txt_setting(store):
    shop = SiteServer({"/img/a.jpg": Page(JPEG, "image/jpeg"),
                       "/robots.txt": Page(b"User-agent: m5data\nDisallow: /img/\n", "text/plain")})
    with shop:
        store.write("media", media_rows([f"{shop.url}/img/a.jpg"]))
        _download(store, **{"download.obey_robots": False})
    assert [r["status"] for r in store.read("media").to_pylist()] == ["ok"]
    assert "/robots.txt" not in shop.requests


ROBOTS_METAS = {  # product i -> (the tag put in its <head>, the directive its optouts row records, or None)
    0: ('<meta name="robots" content="noai, noimageai">', "noai, noimageai"),
    1: ('<meta name="M5Data" content="noai">', "noai"),  # our agent's name, any case
    2: ('<meta name="otherbot" content="noai">', None),  # another agent's
    3: ('<meta name="robots" content="index, follow">', None),
    4: ("", None),
}


def test_crawl_reads_robots_meta_tags(store):
    """``<meta name="robots">`` and ``<meta name="m5data">`` opt a product page out as X-Robots-Tag does:
    nothing of the product stored, an ``optouts`` row with source ``robots-meta``."""
    from support.crawl_server import crawl_shop, jsonld_shop, product_pages

    server = SiteServer({})
    skus = jsonld_shop(server, n_products=len(ROBOTS_METAS), per_page=len(ROBOTS_METAS))
    for path, i, page in product_pages(server, skus):
        server.add(path, Page(page.body.replace(b"<head>", b"<head>" + ROBOTS_METAS[i][0].encode())))
    stats, ids = crawl_shop(store, server, skus)
    kept = {ids[r["product_id"]] for r in store.read("products").to_pylist()}
    assert kept == {i for i, (_, said) in ROBOTS_METAS.items() if said is None}
    assert not {ids[r["product_id"]] for r in store.read("media").to_pylist()} - kept
    rows = {ids[r["product_id"]]: (r["source"], r["directive"]) for r in store.read("optouts").to_pylist()}
    assert rows == {i: ("robots-meta", said) for i, (_, said) in ROBOTS_METAS.items() if said}
    assert stats.details["optouts"] == {"page": 2}


def test_x_robots_tag_scoped_to_every_agent_or_to_a_versioned_token():
    from m5data.optout import DEFAULT_DIRECTIVES, robots_optout

    def said(*values):
        found = robots_optout(list(values), "m5data", DEFAULT_DIRECTIVES)
        return found.directive if found else None

    assert said("*: noai") == "noai"
    assert said("m5data/0.1: noimageai") == "noimageai"
    assert said("M5Data/2.0: noai, noindex") == "noai, noindex"
    assert said("googlebot: noindex, *: noai") == "noai"
    assert said("m5data-other/1: noai") is None and said("otherbot/0.1: noai") is None
    assert said("otherbot: noai, nofollow") is None


def test_an_optout_sent_only_on_a_redirect_hop_is_the_pages_and_the_files(store):
    """A product link answering 301 with ``X-Robots-Tag: noai`` to a page that says nothing stores
    nothing of the product; an image URL answering 302 with ``noimageai`` to a plain image is opted out."""
    from support.crawl_server import crawl_shop, jsonld_shop

    server = SiteServer({})
    skus = jsonld_shop(server, n_products=3, per_page=3)
    server.add("/q/SKU-0001.html", server.routes.pop("/p/SKU-0001.html?ref=list1"))
    server.add("/p/SKU-0001.html?ref=list1", Page(b"", status=301, headers={"Location": "/q/SKU-0001.html",
                                                                            "X-Robots-Tag": "noai"}))
    stats, ids = crawl_shop(store, server, skus)
    assert "/q/SKU-0001.html" in server.requests  # followed: the page said nothing itself
    assert {ids[r["product_id"]] for r in store.read("products").to_pylist()} == {0, 2}
    (row,) = store.read("optouts").to_pylist()
    assert (ids[row["product_id"]], row["source"], row["directive"], row["url"]) == (
        1, "x-robots-tag", "noai", server.url + "/p/SKU-0001.html?ref=list1")

    media = SiteServer({"/img/a.jpg": Page(JPEG, "image/jpeg"), "/img/b.jpg": Page(JPEG, "image/jpeg"),
                        "/hop/a.jpg": Page(b"", status=302, headers={"Location": "/img/a.jpg",
                                                                     "X-Robots-Tag": "noimageai"}),
                        "/hop/b.jpg": Page(b"", status=302, headers={"Location": "/img/b.jpg"})})
    with media:
        store.write("media", media_rows([f"{media.url}/hop/a.jpg", f"{media.url}/hop/b.jpg"], product_id="x:1"))
        _download(store)
    status = {r["url"]: r["status"] for r in store.read("media", where="product_id = 'x:1'").to_pylist()}
    assert status == {f"{media.url}/hop/a.jpg": "opted_out", f"{media.url}/hop/b.jpg": "ok"}
    assert "/img/a.jpg" not in media.requests
    assert _by_name(store, "optouts", "/hop/")["a.jpg"]["directive"] == "noimageai"


def test_the_tdm_policy_is_recorded_with_its_reservation(store):
    """A page's ``<meta name="tdm-policy">`` (or ``tdm-policy`` header) and a tdmrep.json rule's
    ``tdm-policy`` are kept in the ``optouts`` row's directive, for the crawl and the download."""
    from support.crawl_server import crawl_shop, jsonld_shop, product_pages

    policy = "https://shop.test/policies/tdm.json"
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=3, per_page=3)
    for path, i, page in product_pages(server, skus):
        if i == 0:
            server.add(path, Page(page.body.replace(b"<head>", b'<head><meta name="tdm-reservation" content="1">'
                                                    b'<meta name="TDM-Policy" content="' + policy.encode() + b'">')))
        elif i == 1:
            server.add(path, Page(page.body, headers={"tdm-reservation": "1", "tdm-policy": policy}))
    rules = [{"location": "/p/SKU-0002*", "tdm-reservation": 1, "tdm-policy": policy},
             {"location": "/img/b", "tdm-reservation": 1, "tdm-policy": policy}]
    server.add("/.well-known/tdmrep.json", Page(json.dumps(rules).encode(), "application/json"))
    cdn = SiteServer({"/img/a.jpg": Page(JPEG, "image/jpeg", headers={"tdm-reservation": "1", "tdm-policy": policy}),
                      "/img/b.jpg": Page(JPEG, "image/jpeg"), "/.well-known/tdmrep.json": Page(json.dumps(rules).encode())})
    _, ids = crawl_shop(store, server, skus)
    said = {ids[r["product_id"]]: (r["source"], r["directive"]) for r in store.read("optouts").to_pylist()}
    assert said == {0: ("tdm-meta", f"tdm-reservation: 1 (tdm-policy {policy})"),
                    1: ("tdm-header", f"tdm-reservation: 1 (tdm-policy {policy})"),
                    2: ("tdmrep.json", f"tdm-reservation: 1 (location /p/SKU-0002*; tdm-policy {policy})")}
    with cdn:
        store.write("media", media_rows([f"{cdn.url}/img/a.jpg", f"{cdn.url}/img/b.jpg"], product_id="x:1"))
        _download(store)
    media = _by_name(store, "optouts", "/img/")
    assert {k: r["directive"] for k, r in media.items()} == {
        "a.jpg": f"tdm-reservation: 1 (tdm-policy {policy})",
        "b.jpg": f"tdm-reservation: 1 (location /img/b; tdm-policy {policy})"}


def test_sql_views_hide_products_opted_out_after_their_last_crawl(tmp_path):
    """As takedowns do: ``m5data sql``'s and the catalog's product views leave out a product whose page
    opted out after its last stored version (what exports leave out), listed by ``opted_out``; the raw
    tables and the ``optouts`` record keep every row. An older page opt-out and a file's opt-out hide nothing."""
    from datetime import datetime, timedelta, timezone

    import duckdb
    from support.cli_inprocess import invoke

    from m5data.storage import Store

    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    store = Store.init(tmp_path / "store")
    store.write("products", [{"product_id": pid, "platform": "a", "source_id": pid[2:], "url": f"https://s.test/p/{pid}",
                              "title": pid, "crawled_at": now} for pid in ("a:1", "a:2", "a:3")])
    store.write("specs", [{"product_id": pid, "position": 0, "property": "p", "value": "v"} for pid in ("a:1", "a:2", "a:3")])
    store.write("optouts", [
        {"url": "https://s.test/p/a:1", "product_id": "a:1", "scope": "page", "source": "x-robots-tag",
         "directive": "noai", "run_id": "r", "seen_at": now + timedelta(days=1)},  # a refresh found it
        {"url": "https://s.test/p/a:2", "product_id": "a:2", "scope": "page", "source": "x-robots-tag",
         "directive": "noai", "run_id": "r", "seen_at": now - timedelta(days=1)},  # the page was published again
        {"url": "https://s.test/a3.jpg", "product_id": "a:3", "scope": "media", "source": "x-robots-tag",
         "directive": "noimageai", "run_id": "r", "seen_at": now + timedelta(days=1)}])

    def query(sql):
        res = invoke("--store", str(store.root), "sql", sql, "--format", "json")
        assert res.returncode == 0, res.stdout + res.stderr
        return [json.loads(line) for line in res.stdout.splitlines()]

    assert query("SELECT product_id FROM products ORDER BY 1") == [{"product_id": "a:2"}, {"product_id": "a:3"}]
    assert query("SELECT DISTINCT product_id FROM specs ORDER BY 1") == [{"product_id": "a:2"}, {"product_id": "a:3"}]
    assert query("SELECT product_id, source, directive FROM opted_out") == [
        {"product_id": "a:1", "source": "x-robots-tag", "directive": "noai"}]
    assert query("SELECT count(*) AS n FROM raw.products") == [{"n": 3}]
    assert query("SELECT count(*) AS n FROM optouts") == [{"n": 3}]  # the record stays readable
    store.refresh_catalog()
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        assert con.sql("SELECT product_id FROM products ORDER BY 1").fetchall() == [("a:2",), ("a:3",)]
        assert con.sql("SELECT product_id FROM opted_out").fetchall() == [("a:1",)]
        assert con.sql("SELECT count(*) FROM raw.specs").fetchall() == [(3,)]
    finally:
        con.close()


def test_a_refresh_rechecks_stored_files_and_records_a_later_optout(store):
    """An image stored before its owner opted it out: ``download --refresh`` asks each stored file
    again (a conditional request, no body read); the one now answering ``noimageai`` becomes
    ``opted_out`` (no blob in its row, an ``optouts`` row), its derived rows with it; the others stay."""
    later = {"X-Robots-Tag": None}

    def image(hit, headers):
        extra = {"X-Robots-Tag": later["X-Robots-Tag"]} if later["X-Robots-Tag"] else {}
        return Page(JPEG, "image/jpeg", headers=extra)

    server = SiteServer({"/img/a.jpg": image, "/img/b.jpg": Page(JPEG, "image/jpeg")})
    with server:
        store.write("media", media_rows([f"{server.url}/img/a.jpg", f"{server.url}/img/b.jpg"]))
        _download(store)
        rows = _by_name(store, "media", "/img/")
        assert {k: r["status"] for k, r in rows.items()} == {"a.jpg": "ok", "b.jpg": "ok"}
        frames = {"media_id": "f" * 40, "product_id": "test:1", "kind": "frames", "role": "derived",
                  "source_media_id": rows["a.jpg"]["media_id"], "status": "ok", "blob": "derived/x"}
        store.write("media", [frames])
        later["X-Robots-Tag"] = "m5data/0.1: noimageai"  # the owner opts the image out afterwards
        server.requests.clear()
        server.headers.clear()
        stats = download(store, load(overrides={"download.allow_private": True}, environ={}), refresh=True)
        assert sorted(p for p in server.requests if p.startswith("/img/")) == ["/img/a.jpg", "/img/b.jpg"]
        assert all("If-Modified-Since" in h for p, h in server.headers if p.startswith("/img/"))
    rows = _by_name(store, "media", "/img/")
    assert (rows["a.jpg"]["status"], rows["a.jpg"]["blob"]) == ("opted_out", None)
    assert rows["b.jpg"]["status"] == "ok" and rows["b.jpg"]["blob"]
    assert store.read("media", where="kind = 'frames'").to_pylist()[0]["status"] == "opted_out"
    (row,) = store.read("optouts").to_pylist()
    assert (row["url"].endswith("/img/a.jpg"), row["scope"], row["directive"]) == (True, "media", "noimageai")
    assert stats.details["refresh"] == {"checked": 2, "opted_out": 1} and stats.n_failed == 0
    (run,) = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()
    assert json.loads(run["config"])["job"]["refresh"] == {"checked": 2, "opted_out": 1}
