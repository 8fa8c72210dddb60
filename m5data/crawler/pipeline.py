"""The item pipeline: normalise items and write them to the store in batches.

Per batch of ``crawl.batch_rows`` products, the writes go ``specs`` -> ``media`` ->
``page_validators`` -> ``products``: a product row is the commit mark of its page, so a crash
between the writes leaves a product
without its row (crawled again on resume) but never a product row without its specs and media.
``crawl_errors`` rows are written with each batch. Everything buffered is flushed when the
spider closes.

Duplicates: a page whose product id, or whose content hash, was already stored (in this crawl,
or - when resuming - in the store) is counted and not stored again: ``stored_elsewhere`` when its
product id was stored before this crawl (a resume skips stored URLs only, so these are pages of stored
products under another URL: the same shop on another host or port), else ``duplicate``. A page refused
(too long a URL, no id, taken down, no product data) is counted ``not_stored``. With ``new``,
``changed`` and ``unchanged`` these add up to the product pages fetched (``crawl.py``'s summary).

Changes (a refresh, ``revalidate.py``): each product is counted ``new`` (not in the store),
``changed`` (stored with other content or URL, or with rows missing: written again as before) or
``unchanged`` (a 304, or a 200 with the stored content: nothing written but, when they differ from the
stored ones, the page's validators). ``page_validators`` rows are written before the products
rows (a killed crawl's resume writes both again); a refresh uses only those of stored products.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from ..config import CrawlSettings
from ..storage.media_ids import media_id
from ..storage.redact import redact
from ..storage.takedowns import covering
from ..storage.takedowns import rows as takedown_rows
from .items import Caps, NotModified, PageError, ProductItem
from .licence import COLUMNS as LICENCE
from .licence import stated
from .optouts import OptedOut
from .revalidate import stored_validators, stored_versions

log = logging.getLogger(__name__)
PAGES = "pages/"  # + stored_elsewhere, duplicate, not_stored: product pages not counted new/changed/unchanged


def stored_products(store) -> tuple[set[str], set[str], set[str]]:
    """(product ids, content hashes, canonical URLs) of the products already in the store."""
    from w3lib.url import canonicalize_url

    con = store.connect(need=("products",), only=("products",), cursor=True)  # one view, a cursor: ~2 ms, not ~45
    try:
        rows = con.sql("SELECT product_id, content_hash, url FROM products").fetchall()
    finally:
        con.close()
    return ({r[0] for r in rows}, {r[1] for r in rows if r[1]}, {canonicalize_url(r[2]) for r in rows if r[2]})


def product_rows(item: ProductItem, run_id: str, now: datetime, content_hash: str) -> tuple[dict, list[dict], list[dict]]:
    """The ``products`` row, ``specs`` rows and ``media`` rows (status pending) of a normalised item."""
    pid = item.product_id
    product = {
        "product_id": pid, "platform": item.platform, "source_id": item.source_id, "url": item.url,
        "merchant_id": item.merchant_id, "title": item.title, "price": item.price, "currency": item.currency,
        "category_path": item.category_path, "description": item.description, "crawled_at": now,
        "content_hash": content_hash, "has_image": bool(item.images), "has_video": bool(item.videos),
        "has_caption": bool(item.title), "has_specs": bool(item.specs), "run_id": run_id,
    }
    specs = [{"product_id": pid, "position": i, "property": p, "value": v} for i, (p, v) in enumerate(item.specs)]
    media = []
    for kind, urls in (("image", item.images), ("video", item.videos)):
        for i, url in enumerate(urls):
            role = "video" if kind == "video" else ("main" if i == 0 else "gallery")
            meta = item.media_meta.get(url)
            media.append({
                "media_id": media_id(pid, kind, url), "product_id": pid, "kind": kind, "role": role,
                "position": i, "url": url, "status": "pending", "attempts": 0,
                "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else None, "updated_at": now,
            })
    return product, specs, media


class StorePipeline:
    """Scrapy item pipeline into an m5data store (settings ``M5DATA_STORE``, ``M5DATA_RUN_ID``, ...)."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        s = crawler.settings
        self.store_path = s.get("M5DATA_STORE")
        self.compression = s.get("M5DATA_STORE_COMPRESSION", "zstd")
        self.run_id = s.get("M5DATA_RUN_ID", "")
        self.batch_rows = s.getint("M5DATA_BATCH_ROWS", 500)
        self.resume = s.getbool("M5DATA_RESUME", True)
        caps = s.getdict("M5DATA_CAPS")
        self.caps = Caps(**caps) if caps else Caps.from_settings(CrawlSettings())
        self.store = None
        self.closing = False
        self.seen_ids: set[str] = set()
        self.seen_hashes: set[str] = set()
        self.stored_ids: set[str] = set()  # a resume: the product ids stored before this crawl
        self.versions: dict[str, tuple] = {}  # product_id -> (content_hash, url, whole, licence) of stored products
        self.validators: dict[str, tuple] = {}  # canonical link -> (product_id, etag, last_modified), stored
        self.takedowns: list[dict] = []
        self._reset()

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _reset(self) -> None:
        self.products: list[dict] = []
        self.specs: list[dict] = []
        self.media: list[dict] = []
        self.errors: dict[str, dict] = {}
        self.validator_rows: dict[str, dict] = {}
        self.optouts: list[dict] = []
        self.licenses: list[dict] = []

    def open_spider(self) -> None:
        from ..storage import Store

        self.store = Store.open(self.store_path, compression=self.compression)
        if self.resume:
            self.seen_ids, self.seen_hashes, _ = stored_products(self.store)
            self.stored_ids = set(self.seen_ids)
        else:  # a refresh: what is stored decides new / changed / unchanged
            spider_versions = getattr(self.crawler.spider, "versions", None)  # a revalidating refresh read them
            self.versions = spider_versions if spider_versions is not None else stored_versions(self.store)
        # a refresh's spider holds the validators it sends (those of whole products): shared, not loaded
        # twice (about 365 MB per million pages); other products' rows are written again anyway
        self.validators = getattr(self.crawler.spider, "validators", None) or stored_validators(self.store)
        self.takedowns = takedown_rows(self.store)  # a product taken down is never stored again

    def process_item(self, item):
        try:
            return self._process(item)
        except Exception as exc:  # a bug must not lose the page silently: count it, record it, fail the run
            log.exception("cannot store item from %s", getattr(item, "url", "?"))
            self.stats.inc_value("m5data/pipeline_errors")
            url = getattr(item, "url", None)
            if url:
                self._error(url, getattr(item, "platform", None), f"pipeline error: {type(exc).__name__}: {str(exc)[:200]}",
                            None, datetime.now(timezone.utc))
            return item

    def _process(self, item):
        now = datetime.now(timezone.utc)
        if isinstance(item, PageError):
            self._error(item.url, item.platform, item.reason, item.http_status, now)
            return item
        if isinstance(item, OptedOut):  # the page's owner opted out: its row says so, nothing else is stored
            self.optouts.append({"url": redact(item.url), "product_id": item.product_id, "scope": "page",
                                 "source": item.optout.source, "directive": item.optout.directive,
                                 "run_id": self.run_id, "seen_at": now})
            return item
        if isinstance(item, NotModified):
            self._not_modified(item)
            return item
        if not isinstance(item, ProductItem):
            return item
        if len(item.url) > self.caps.url_chars:  # a redirect can land on a URL no link would be followed to
            return self._refuse(item, f"url too long: {len(item.url)} characters, over crawl.max_url_chars "
                                f"({self.caps.url_chars}); not stored", now, url=item.url[:self.caps.url_chars])
        item = item.normalised(self.caps)
        if not item.source_id:
            return self._refuse(item, "bad id: the page's product id is empty once control characters and "
                                "whitespace are removed; not stored", now)
        if (taken := self._taken_down(item)) is not None:
            return self._refuse(item, f"taken down: {taken['kind']} {taken['value']}; not stored", now)
        if not (item.title or item.images or item.price is not None):
            return self._refuse(item, "no product data: no title, image or price", now)
        digest = item.content_hash()
        change = self._change(item, digest)
        if item.problems and change != "unchanged":  # an unchanged page's row is stored already
            self._error(item.url, item.platform, "; ".join(dict.fromkeys(item.problems))[:1000], None, now)
        if item.product_id in self.seen_ids:
            self.stats.inc_value("m5data/duplicates/product_id")
            self._duplicate(item.product_id)
            return item
        if digest in self.seen_hashes:
            self.stats.inc_value("m5data/duplicates/content")
            self._duplicate(item.product_id)
            return item
        self.seen_ids.add(item.product_id)
        self.seen_hashes.add(digest)
        self._keep_validators(item, now)
        self.stats.inc_value(f"m5data/changes/{change}")
        if change == "unchanged":
            self.stats.inc_value("m5data/unchanged/same_content")
        else:
            product, specs, media = product_rows(item, self.run_id, now, digest)
            self.products.append(product)
            self.specs.extend(specs)
            self.media.extend(media)
            if (licence := self._licence_row(item, now)) is not None:
                self.licenses.append(licence)
        if max(len(self.products), len(self.validator_rows)) >= self.batch_rows:
            self.flush()
        return item

    def _refuse(self, item: ProductItem, reason: str, now, url: str | None = None):
        """A product page not stored (its ``crawl_errors`` row says why): counted ``not_stored``."""
        self._error(url or item.url, item.platform, reason, None, now)
        self.stats.inc_value(f"m5data/{PAGES}not_stored")
        return item

    def _duplicate(self, product_id: str) -> None:
        """A product page not stored again: its product id was stored before this crawl under another URL
        (a resume skips stored URLs only: the same shop on another host or port), or it is one more page
        of a product (or content) this crawl has already met."""
        kind = "stored_elsewhere" if product_id in self.stored_ids else "duplicate"
        self.stats.inc_value(f"m5data/{PAGES}{kind}")

    def _taken_down(self, item: ProductItem) -> dict | None:
        """The takedown of ``item``'s product id or URL (a redirect may land on a taken-down page), or None."""
        for t in self.takedowns:
            if t["kind"] == "product_id" and t["value"] == item.product_id:
                return t
        return covering(item.url, self.takedowns) if self.takedowns else None

    def _change(self, item: ProductItem, digest: str) -> str:
        """``new``, ``changed`` or ``unchanged``: the item against the stored product (a refresh); a
        page whose licence is all that changed is changed (the licence is part of its record)."""
        stored = self.versions.get(item.product_id)
        if stored is None:
            return "new"
        content_hash, url, whole, licence = stored
        same = whole and (content_hash, url, licence) == (digest, item.url, stated(item.license))
        return "unchanged" if same else "changed"

    def _licence_row(self, item: ProductItem, now) -> dict | None:
        """The ``licenses`` row of a product stored (again): what its page states (docs/compliance.md);
        a row of nulls when it states nothing now but its stored row did (the newest row is what the
        page states: one per product), None when it states nothing and nothing is stored."""
        found = item.license
        if not found:
            if (stored := self.versions.get(item.product_id)) is None or stored[3] is None:
                return None
            found = dict.fromkeys((*LICENCE, "source"))
        return {"product_id": item.product_id, "url": item.url, **found, "run_id": self.run_id, "seen_at": now}

    def _not_modified(self, item: NotModified) -> None:
        """A 304: the product is unchanged (counted once, however many links lead to it)."""
        if item.product_id in self.seen_ids:
            self.stats.inc_value("m5data/duplicates/product_id")
            self.stats.inc_value(f"m5data/{PAGES}duplicate")
            return
        self.seen_ids.add(item.product_id)
        if (stored := self.versions.get(item.product_id)) and stored[0]:
            self.seen_hashes.add(stored[0])
        self.stats.inc_value("m5data/changes/unchanged")

    def _keep_validators(self, item: ProductItem, now) -> None:
        """Buffer the page's validators row when they differ from the stored ones of its link."""
        from w3lib.url import canonicalize_url

        found = item.validators or {}
        link = redact(found.get("link") or item.url)  # a URL's user:pass or a session secret is never stored
        try:
            key = canonicalize_url(link)
        except ValueError:
            return
        pid, etag, modified = item.product_id, found.get("etag"), found.get("last_modified")
        stored = self.validators.get(key)
        if (stored is None and etag is None and modified is None) or stored == (pid, etag, modified):
            return
        self.validators[key] = (pid, etag, modified)
        self.validator_rows[key] = {"url": link, "product_id": pid, "etag": etag, "last_modified": modified,
                                    "run_id": self.run_id, "seen_at": now}

    def _error(self, url, platform, reason, http_status, now) -> None:
        url, reason = redact(url), redact(reason)  # a URL's user:pass or a session secret is never stored
        self.errors[url] = {"url": url, "platform": platform, "reason": reason, "http_status": http_status,
                            "run_id": self.run_id, "seen_at": now}
        self.stats.inc_value("m5data/error_rows")
        self.stats.inc_value(f"m5data/errors/{PageError(url, platform, reason).kind}")
        if len(self.errors) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered: specs, media (only new keys), validators, then products; then errors."""
        try:
            if self.specs:
                self.store.write("specs", self.specs)
            if self.media:
                self.stats.inc_value("m5data/media_rows", self.store.write("media", self.media, if_absent=True))
            if self.licenses:
                self.store.write("licenses", self.licenses)
            if self.validator_rows:  # before the products, their commit mark: a resume writes them again
                self.store.write("page_validators", list(self.validator_rows.values()))
            if self.products:
                self.store.write("products", self.products)
            if self.errors:
                self.store.write("crawl_errors", list(self.errors.values()))
            if self.optouts:
                self.store.write("optouts", self.optouts)
        except Exception as exc:  # the store cannot take rows: stop the crawl rather than lose pages silently
            log.error("store write failed in %s: %s: %s", self.store_path, type(exc).__name__, exc)
            self.stats.inc_value("m5data/store_write_failed")
            if not self.closing and self.crawler.engine is not None:
                from scrapy.utils.defer import deferred_from_coro

                self.closing = True
                deferred_from_coro(self.crawler.engine.close_spider_async(reason="store_write_failed"))
            raise
        self.stats.inc_value("m5data/products_stored", len(self.products))
        self.stats.inc_value("m5data/spec_rows", len(self.specs))
        self._reset()

    def close_spider(self) -> None:
        self.closing = True
        if self.store is not None:
            now = datetime.now(timezone.utc)
            for url, t in getattr(self.crawler.spider, "taken_down", {}).items():  # links the spider did not follow
                self._error(url, None, f"taken down: {t['kind']} {t['value']}; not fetched", None, now)
            self.flush()
