"""Provenance and licences (docs/compliance.md): what a product page states of its licence
(schema.org license / acquireLicensePage / copyrightNotice on the Product or an ImageObject,
<link rel="license">) and what an image's XMP packet states of its rights."""

import io
import json

import pytest
from PIL import Image
from support.crawl_server import Page, SiteServer, crawl_shop, jsonld_shop, product_pages
from support.media_server import media_rows

from m5data.config import load
from m5data.download.run import run as download

CC = "https://creativecommons.org/licenses/by/4.0/"
STATED = {  # product i -> (what its JSON-LD Product gains, what its <head> gains)
    0: ({"license": CC, "copyrightNotice": "© Shop GmbH 2026"}, ""),
    1: ({"image": [{"@type": "ImageObject", "contentUrl": "https://cdn.example.invalid/x.jpg",
                    "license": {"@type": "CreativeWork", "url": CC}, "acquireLicensePage": "/licensing.html"}]}, ""),
    2: ({}, '<link rel="license" href="/terms/images.html">'),
    3: ({}, ""),
}


def licensed_shop(cdn: str | None = None) -> tuple[SiteServer, list[str]]:
    """The shop of :data:`STATED`; its images on ``cdn`` (a server's URL) when given."""
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=len(STATED), per_page=len(STATED))
    for path, i, page in product_pages(server, skus):
        body = page.body.decode()
        ld_start = body.index('<script type="application/ld+json">') + len('<script type="application/ld+json">')
        ld_end = body.index("</script>", ld_start)
        ld = {**json.loads(body[ld_start:ld_end]), **STATED[i][0]}
        body = body[:ld_start] + json.dumps(ld) + body[ld_end:]
        body = body.replace("https://cdn.example.invalid", cdn) if cdn else body
        server.add(path, body.replace("<head>", "<head>" + STATED[i][1]))
    return server, skus


def test_crawl_keeps_the_licence_a_page_states(store):
    server, skus = licensed_shop()
    stats, ids = crawl_shop(store, server, skus)
    rows = {ids[r["product_id"]]: r for r in store.read("licenses").to_pylist()}
    assert set(rows) == {0, 1, 2}
    assert (rows[0]["license"], rows[0]["copyright_notice"], rows[0]["source"]) == (CC, "© Shop GmbH 2026", "schema.org")
    assert (rows[1]["license"], rows[1]["acquire_license_page"]) == (CC, server.url + "/licensing.html")
    assert (rows[2]["license"], rows[2]["source"]) == (server.url + "/terms/images.html", "link-rel")
    assert all(r["run_id"] == stats.run_id and r["url"].startswith(server.url + "/p/") for r in rows.values())
    # provenance: every product keeps the page it came from and when it was fetched
    assert all(r["url"] and r["crawled_at"] for r in store.read("products").to_pylist())


XMP = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" xmpRights:WebStatement="https://shop.test/rights.html">
<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">&#169; Foto Studio &amp; Co. 2026</rdf:li></rdf:Alt></dc:rights>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def jpeg(xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, "JPEG", **({"xmp": xmp} if xmp else {}))
    return buf.getvalue()


@pytest.mark.parametrize("reencode", [{}] + [{"download.image_max_side": 16, "download.pool": pool, "download.workers": 1}
                                             for pool in ("thread", "process", "mixed")])
def test_download_keeps_the_rights_an_image_states(store, reencode):
    server = SiteServer({"/img/a.jpg": Page(jpeg(XMP), "image/jpeg"), "/img/b.jpg": Page(jpeg(), "image/jpeg")})
    with server:
        store.write("media", media_rows([server.url + "/img/a.jpg", server.url + "/img/b.jpg"]))
        download(store, load(overrides={"download.allow_private": True, "download.retries": 0, **reencode}, environ={}))
    meta = {r["url"].rsplit("/", 1)[1]: json.loads(r["meta"] or "{}") for r in store.read("media").to_pylist()}
    assert meta["a.jpg"]["download"]["rights"] == {"web_statement": "https://shop.test/rights.html",
                                                   "rights": "© Foto Studio & Co. 2026"}
    assert "rights" not in meta["b.jpg"].get("download", {})


def test_every_export_layout_carries_provenance_and_licence(store, tmp_path):
    import tarfile

    import pyarrow.parquet as pq
    from support.export_helpers import settings_for, split_rows

    from m5data.export.run import export

    server, skus = licensed_shop()
    crawl_shop(store, server, skus)
    products = {r["product_id"]: r for r in store.read("products").to_pylist()}
    store.write("splits", split_rows(list(products)))
    first = f"127.0.0.1:{skus[0]}"
    want = {"page_url": products[first]["url"], "crawled_at": products[first]["crawled_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "license": CC, "acquire_license_page": None, "copyright_notice": "© Shop GmbH 2026",
            "image_web_statement": None, "image_rights": None}
    none = f"127.0.0.1:{skus[3]}"
    for fmt in ("webdataset", "parquet", "m5product"):
        export(store, settings_for(store), out=tmp_path / fmt, fmt=fmt, full=True)
    found = {}
    for shard in (tmp_path / "webdataset").glob("*.tar"):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(m).read())
                    found[meta["product_id"]] = meta["provenance"]
    assert found[first] == want and found[none]["license"] is None and found[none]["page_url"]
    rows = {r["product_id"]: r for f in (tmp_path / "parquet").rglob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert {key: rows[first][key] for key in want} == want
    items = json.loads((tmp_path / "m5product" / "m5data_items.json").read_text())["items"]
    assert next(i["provenance"] for i in items.values() if i["product_id"] == first) == want


def test_every_export_layout_carries_the_rights_its_image_states(store, tmp_path):
    """An image's XMP rights (media.meta download.rights of the product's main image) go into each
    layout's per-sample provenance beside the licence its page states."""
    import tarfile

    import pyarrow.parquet as pq
    from support.export_helpers import settings_for, split_rows

    from m5data.export.run import export

    marked = ("/SKU-0000/", "/SKU-0003/")  # products 0 (a licence on its page) and 3 (none) serve XMP rights
    cdn = SiteServer({}, gate=lambda path, _h: Page(jpeg(XMP if path.startswith(marked) else None), "image/jpeg"))
    server, skus = licensed_shop(cdn.url)
    crawl_shop(store, server, skus)
    with cdn:
        download(store, load(overrides={"download.allow_private": True, "download.retries": 0}, environ={}))
    assert {r["status"] for r in store.read("media").to_pylist()} == {"ok"}
    store.write("splits", split_rows([r["product_id"] for r in store.read("products").to_pylist()]))
    for fmt in ("webdataset", "parquet", "m5product"):
        export(store, settings_for(store, **{"export.blur_faces": False}), out=tmp_path / fmt, fmt=fmt, full=True)
    rights = {"image_web_statement": "https://shop.test/rights.html", "image_rights": "© Foto Studio & Co. 2026"}
    unstated = {"image_web_statement": None, "image_rights": None}
    want = {0: {"license": CC, **rights}, 2: {"license": server.url + "/terms/images.html", **unstated},
            3: {"license": None, **rights}}
    keys = {f"127.0.0.1:{skus[i]}": i for i in want}
    found = {}
    for shard in (tmp_path / "webdataset").glob("*.tar"):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json") and (meta := json.loads(tar.extractfile(m).read()))["product_id"] in keys:
                    found[keys[meta["product_id"]]] = {k: meta["provenance"][k] for k in ("license", *rights)}
    assert found == want
    rows = {keys[r["product_id"]]: {k: r[k] for k in ("license", *rights)}
            for f in (tmp_path / "parquet").glob("data/*.parquet") for r in pq.read_table(f).to_pylist()
            if r["product_id"] in keys}  # data/: the folder also keeps _samples.parquet for the next version
    assert rows == want
    items = json.loads((tmp_path / "m5product" / "m5data_items.json").read_text())["items"]
    assert {keys[i["product_id"]]: {k: i["provenance"][k] for k in ("license", *rights)}
            for i in items.values() if i["product_id"] in keys} == want


def test_a_refresh_that_finds_only_the_licence_changed_updates_it(store):
    """A page whose licence is all that changed is a changed product: stored again with its new
    ``licenses`` row; a page that no longer states one gets a row of nulls (the table is keyed by
    product: the newest row says what the page states now); the others are unchanged."""
    from m5data.crawler.crawl import run as crawl

    server, skus = licensed_shop()
    settings = load(overrides={"crawl.allow_private": True}, environ={})
    ids = {f"127.0.0.1:{sku}": i for i, sku in enumerate(skus)}
    with server:
        crawl(store, settings, start_urls=[server.url + "/list/1.html"])
        for path, i, page in list(product_pages(server, skus)):
            if i == 0:  # another licence, the rest of the page as it was
                server.add(path, page.body.replace(CC.encode(), b"https://creativecommons.org/licenses/by-nc/4.0/"))
            elif i == 2:  # the <link rel="license"> is gone
                server.add(path, page.body.replace(b'<link rel="license" href="/terms/images.html">', b""))
        again = crawl(store, settings, start_urls=[server.url + "/list/1.html"], refresh=True)
    assert again.details["changes"] == {"new": 0, "changed": 2, "unchanged": 2}
    rows = {ids[r["product_id"]]: r for r in store.read("licenses").to_pylist()}
    assert rows[0]["license"] == "https://creativecommons.org/licenses/by-nc/4.0/" and rows[0]["run_id"] == again.run_id
    assert rows[0]["copyright_notice"] == "© Shop GmbH 2026"
    assert (rows[2]["license"], rows[2]["source"], rows[2]["run_id"]) == (None, None, again.run_id)
    assert rows[1]["run_id"] != again.run_id and 3 not in rows  # unchanged: not written again
    crawled = {ids[r["product_id"]]: r["run_id"] for r in store.read("products").to_pylist()}
    assert {i for i, run in crawled.items() if run == again.run_id} == {0, 2}
