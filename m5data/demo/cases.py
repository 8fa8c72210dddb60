"""What must never leave in an export or the report (issue 76; ``WorldConfig.egress_cases``, off by default).

With the field on, on products that carry no fault, no opt-out and no licence of ``optouts.py``:

- **robots for media**: robots.txt gets a ``User-agent: m5data`` group (the ``*`` group's rules, which
  it replaces for us) that disallows one image and one video: the download records both ``opted_out``
  (source ``robots.txt``); every page is still allowed;
- **robots metas**: one page carries ``<meta name="robots" content="noai, noimageai">``, another
  ``<meta name="m5data" content="noai">`` (product not stored);
- **a later opt-out**: one page answers ``X-Robots-Tag: noai`` only once the server is told
  (``RunningShop.opt_out_later``, ``serve.json`` ``later``): ``m5data demo`` crawls, flips it, then
  runs the flow with a refresh crawl, which records the opt-out for a product already stored;
- **faces**: one video shows the astronaut (``astronaut.jpg``: NASA's photograph of Eileen Collins,
  public domain, 256x256), one main image too;
- **contacts in every field**: the title (so the caption), the description, a spec property name, spec
  values (spaced, full-width, a full-width ``＠``, an ID card number, a street address), a copyright
  notice and a ``mailto:`` licence, a breadcrumb name and the page URL's query string.

Drawn from a random stream of their own after the opt-outs; the truth is ``truth/cases.json`` (each case,
and each contact with its ``needle``: the digits, address or e-mail that must not appear anywhere
written), and the contacts are rows of ``truth/contacts.parquet`` too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from . import optouts
from .pages import page_charsets, script_json, shopa_page, shopb_page
from .site import category_links

TRUTH = "cases.json"
LATER = {"X-Robots-Tag": "noai"}
METAS = {"robots-meta": '<meta name="robots" content="noai, noimageai">',
         "m5data-meta": '<meta name="m5data" content="noai">'}
QUERY = "ref=Tel13800138009"
# (field, kind, text, needle): what each contact product shows, where, and what must never leave
TITLE = ("title", "phone", "Tel13800138001", "13800138001")
DESCRIPTION = ("description", "contact", "加我V13800138002 了解更多", "13800138002")
SPEC_ROWS = (  # (property, value) rows of one page; field spec-property or spec:<property>
    ("客服电话13800138006", "7x24小时", "spec-property", "phone", "客服电话13800138006", "13800138006"),
    ("联系电话", "1380 0138 003", "spec:联系电话", "phone", "1380 0138 003", "13800138003"),
    ("售后热线", "１３８００１３８０００", "spec:售后热线", "phone", "１３８００１３８０００", "13800138000"),
    ("联系邮箱", "wangwu＠163.com", "spec:联系邮箱", "email", "wangwu＠163.com", "wangwu@163.com"),
    ("身份证号", "11010819850101002X", "spec:身份证号", "id", "11010819850101002X", "11010819850101002X"),
    ("发货地址", "北京市海淀区中关村大街27号", "spec:发货地址", "address", "北京市海淀区中关村大街27号",
     "中关村大街27号"),
)
COPYRIGHT = "© 2024 张三 13800138007 zhaoliu@qq.com"
LICENSE = "mailto:zhaoliu@qq.com"
CRUMB = " 微信wx13800138004"


def _pool(world) -> list:
    """Products the cases may take: no page or HTTP fault, untouched by ``optouts.plan``, shuffled."""
    chosen = optouts.plan(world)
    used = set(chosen["pages"]) | set(chosen["licensed"]) | {
        p.product_id for p in world.products for m in p.images if m.url in chosen["media"]}
    free = sorted((p for p in world.products if p.page_fault == "none" and p.http_fault == "none"
                   and p.title and p.specs and p.product_id not in used), key=lambda p: p.product_id)
    random.Random(f"cases:{world.config.seed}").shuffle(free)
    return free


def _take(free: list, test) -> object | None:
    for i, p in enumerate(free):
        if test(p):
            return free.pop(i)
    return None


def _ok(m) -> bool:
    return m is not None and m.fault == "none"


def apply(world, site: Path, faults: dict) -> dict:
    """Put every case into the world and the written site (before the media are rendered: the face
    jobs are marked here); return the truth to write. ``faults`` gains ``later`` (path -> headers)."""
    free = _pool(world)
    truth: dict = {"robots_media": [], "pages": {}, "later": {}, "faces": {}, "contacts": []}
    img = _take(free, lambda p: len(p.images) > 1 and _ok(p.images[1]))
    vid = _take(free, lambda p: _ok(p.video))
    media = ([img.images[1].url] if img else []) + ([vid.video.url] if vid else [])
    robots = (site / "robots.txt").read_text(encoding="utf-8")
    star = robots.split("User-agent: *\n", 1)[1].split("\n\n", 1)[0]
    ours = "User-agent: m5data\n" + "".join(f"Disallow: {u}\n" for u in media) + star + "\n\n"
    (site / "robots.txt").write_text(robots.replace("User-agent: *\n", ours + "User-agent: *\n", 1), encoding="utf-8")
    truth["robots_media"] = media
    for kind, tag in METAS.items():
        if p := _take(free, lambda p: True):
            _insert(site, p, tag)
            truth["pages"][p.product_id] = {"kind": kind, "opted_out": True, "url": p.url}
    if p := _take(free, lambda p: p.images and _ok(p.images[0])):
        faults["later"] = {p.url: LATER}
        truth["later"][p.product_id] = {"url": p.url, "headers": LATER}
    if p := _take(free, lambda p: p.platform == "shopa" and _ok(p.video)):
        p.video.render["face"] = True
        truth["faces"]["video"] = {"product_id": p.product_id, "url": p.video.url}
    if p := _take(free, lambda p: p.images and _ok(p.images[0])):
        p.images[0].render["face"] = True
        truth["faces"]["image"] = {"product_id": p.product_id, "url": p.images[0].url}
    _contacts(world, site, free, truth)
    return truth


def _contacts(world, site: Path, free: list, truth: dict) -> None:
    def note(p, field, kind, text, needle):
        p.contacts.append({"kind": kind, "field": field, "text": text})
        truth["contacts"].append({"product_id": p.product_id, "field": field, "kind": kind, "text": text,
                                  "needle": needle})

    if p := _take(free, lambda p: True):  # the title, which the caption is made of
        field, kind, text, needle = TITLE
        p.title = f"{p.title} {text}"
        _rewrite(world, site, p)
        note(p, field, kind, text, needle)
    if p := _take(free, lambda p: p.platform == "shopa"):  # no JSON-LD description to go first
        field, kind, text, needle = DESCRIPTION
        _insert(site, p, f'<meta name="description" content="{text}"><meta property="og:description" '
                         f'content="{text}">')
        note(p, field, kind, text, needle)
    if p := _take(free, lambda p: True):
        p.specs = [*p.specs, *((prop, value) for prop, value, *_ in SPEC_ROWS)]
        _rewrite(world, site, p)
        for *_, field, kind, text, needle in SPEC_ROWS:
            note(p, field, kind, text, needle)
    if p := _take(free, lambda p: p.platform == "shopb"):  # schema.org Product's copyrightNotice and license
        path = site / p.url.lstrip("/")
        encoding = page_charsets(p)[1]
        extra = script_json({"copyrightNotice": COPYRIGHT, "license": LICENSE}, encoding)[1:-1]
        body = path.read_bytes()
        path.write_bytes(body.replace(b'"@type": "Product"', b'"@type": "Product", ' + extra.encode(encoding), 1))
        note(p, "copyright", "phone", COPYRIGHT, "13800138007")
        note(p, "license", "email", LICENSE, "zhaoliu@qq.com")
    if p := _take(free, lambda p: True):  # this page's breadcrumb only: the listing keeps the name
        links = category_links(world.taxonomy, p.category)
        links[-1] = (links[-1][0] + CRUMB, links[-1][1])
        _rewrite(world, site, p, links)
        note(p, "breadcrumb", "contact", links[-1][0], "13800138004")
    if p := _take(free, lambda p: True):  # the link the crawl follows (listing pages and sitemap)
        for path in [*site.glob(f"{p.platform}/list/**/*.html"), site / p.platform / "sitemap.xml"]:
            body = path.read_bytes()
            new = body.replace(f'href="{p.url}"'.encode(), f'href="{p.url}?{QUERY}"'.encode()) \
                      .replace(f"{p.url}</loc>".encode(), f"{p.url}?{QUERY}</loc>".encode())
            if new != body:
                path.write_bytes(new)
        note(p, "url-query", "phone", f"{p.url}?{QUERY}", "13800138009")


def _rewrite(world, site: Path, p, links=None) -> None:
    """Write ``p``'s product page again (after its title or specs changed; ``links``: another breadcrumb)."""
    links = links or category_links(world.taxonomy, p.category)
    html = shopa_page(p, links) if p.platform == "shopa" else shopb_page(p, links)
    (site / p.url.lstrip("/")).write_bytes(html.encode(page_charsets(p)[1], errors="xmlcharrefreplace"))


def _insert(site: Path, p, tag: str) -> None:
    """Put ``tag`` right after ``<head>`` of ``p``'s page, in the page's encoding."""
    path = site / p.url.lstrip("/")
    body = path.read_bytes()
    path.write_bytes(body.replace(b"<head>", b"<head>" + tag.encode(page_charsets(p)[1], "xmlcharrefreplace"), 1))


def write_truth(truth: dict, truth_dir: Path) -> None:
    """``truth/cases.json``: every case with what must not leave."""
    (truth_dir / TRUTH).write_text(json.dumps(truth, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                                   encoding="utf-8")
