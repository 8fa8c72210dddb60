"""A refresh crawl that finds a new opt-out for a stored product takes it out of later exports (and the
download fetches none of its media); an opt-out older than the product's last stored version does not."""

import tarfile
from datetime import datetime, timedelta, timezone

from support.crawl_server import Page, SiteServer, jsonld_shop
from support.export_helpers import settings_for, split_rows
from support.media_server import media_rows

from m5data.crawler.crawl import run as crawl
from m5data.download.run import run as download
from m5data.export.run import export
from m5data.export.samples import product_id_from_key


def exported(store, out) -> set[str]:
    export(store, settings_for(store, **{"export.shard_size": 100}), out=out, fmt="webdataset", full=True)
    keys = set()
    for shard in out.glob("*.tar"):
        with tarfile.open(shard) as tar:
            keys |= {product_id_from_key(m.name.split(".")[0]) for m in tar.getmembers()}
    return keys


def test_refresh_finding_an_optout_removes_the_product_from_exports(store, tmp_path):
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=4, per_page=4)
    settings = settings_for(store, **{"crawl.allow_private": True})
    with server:
        crawl(store, settings, start_urls=[server.url + "/list/1.html"])
        ids = sorted(r["product_id"] for r in store.read("products").to_pylist())
        store.write("splits", split_rows(ids))
        before = exported(store, tmp_path / "before")
        assert before == set(ids)
        # the shop now opts product 0 out; product 1's opt-out was seen before its page was stored again
        path = next(p for p in server.routes if p.startswith(f"/p/{skus[0]}."))
        server.add(path, Page(server.routes[path].body, headers={"X-Robots-Tag": "noai"}))
        crawl(store, settings, start_urls=[server.url + "/list/1.html"], refresh=True)
    gone, old = f"127.0.0.1:{skus[0]}", f"127.0.0.1:{skus[1]}"
    store.write("optouts", [{"url": "http://x.test/1", "product_id": old, "scope": "page", "source": "tdm-meta",
                             "directive": "tdm-reservation: 1", "seen_at": datetime.now(timezone.utc) - timedelta(days=9)}])
    assert gone in {r["product_id"] for r in store.read("products").to_pylist()}  # still stored
    assert exported(store, tmp_path / "after") == set(ids) - {gone}
    # nor is any of its media fetched
    store.write("media", media_rows([server.url + "/img/a.jpg"], product_id=gone))
    download(store, settings_for(store, **{"download.allow_private": True, "download.retries": 0}))
    status = {r["product_id"]: r["status"] for r in store.read("media").to_pylist()}
    assert status[gone] == "pending" and status[old] != "pending"
