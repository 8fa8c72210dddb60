"""Write the demo shop's HTML: home, category indexes, paginated listings, product pages,
robots.txt and sitemaps, plus the fault list the server reads (``serve.json``, never served).

URL scheme (served root = ``<out>/site``)::

    /                                   home, links both platforms
    /shopa/  /shopb/                    category index of each platform
    /shopa/list/<code>/<n>.html         shopa listing pages (20 products a page)
    /shopb/list.html?cat=<code>&page=n  shopb listing pages (30 a page; page 1 has no page=)
    /shopa/item/<id>.html  /shopb/item/<id>.html
    /robots.txt  /sitemap.xml  /shopa/sitemap.xml  /shopb/sitemap.xml   (``__BASE__`` -> base URL)
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .pages import AD_HOST, e, page_charsets, shopa_page, shopb_page
from .taxonomy import PLATFORMS, Category, Taxonomy
from .world import Product, World

BASE = "__BASE__"
BLANK_GIF = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b")
PLATFORM_NAMES = {"shopa": "天猫Tmall（演示）", "shopb": "京东JD（演示）"}
PAGE_CHARSET = {"shopa": "utf-8", "shopb": "gbk"}
ROBOTS = f"""# m5data demo shop
User-agent: BadBot
Disallow: /

User-agent: *
Disallow: /cart
Disallow: /login
Disallow: /shopa/cart
Disallow: /shopa/login
Disallow: /shopa/search
Disallow: /shopb/cart
Disallow: /shopb/login
Disallow: /shopb/search
Allow: /

Sitemap: {BASE}/sitemap.xml
"""


def level1_anchor(platform: str, class_id: int) -> str:
    return f"cat{class_id}" if platform == "shopa" else f"cat-{1300 + 17 * class_id}"


def listing_url(platform: str, code: str, page: int = 1) -> str:
    """The URL of page ``page`` of a leaf category's listing."""
    if platform == "shopa":
        return f"/shopa/list/{code}/{page}.html"
    return f"/shopb/list.html?cat={code}" + (f"&page={page}" if page > 1 else "")


def listing_file(platform: str, code: str, page: int) -> str:
    """Where a listing page lies under the site root (shopb's query URL maps onto a file)."""
    return f"{platform}/list/{code.replace(',', '-')}/{page}.html"


def category_links(taxonomy: Taxonomy, cat: Category) -> list[tuple[str, str]]:
    """Breadcrumb (name, href) pairs: level 1 and inner nodes link the index, the leaf its listing."""
    links = [(cat.path[0], f"/{cat.platform}/#{level1_anchor(cat.platform, cat.class_id)}")]
    if len(cat.path) == 3:
        links.append((cat.path[1], f"/{cat.platform}/#c{taxonomy.code(cat.platform, cat.sub_id)}"))
    links.append((cat.path[-1], listing_url(cat.platform, cat.code)))
    return links


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding, errors="xmlcharrefreplace"))


def _nav(platform: str) -> str:
    return (f'<div id="site-nav"><a href="/{platform}/login">请登录</a> | <a href="/{platform}/cart">购物车</a>'
            f' | <a href="/">首页</a> | <a href="{AD_HOST}/click?slot={platform}-nav">广告</a></div>\n')


def _html(platform: str, title: str, body: str) -> str:
    charset = PAGE_CHARSET[platform]
    return ('<!DOCTYPE html>\n<html>\n<head>\n'
            f'<meta http-equiv="Content-Type" content="text/html; charset={charset}" />\n'
            f"<title>{e(title)}</title>\n</head>\n<body>\n{_nav(platform)}{body}</body>\n</html>\n")


def listing_item(p: Product) -> str:
    """One product's entry on a listing page."""
    main = e(p.images[0].url) if p.images else ""
    title = "" if p.page_fault == "missing_title" else e(p.title)
    if p.platform == "shopa":
        return (f'<div class="product" data-id="{p.source_id}"><div class="product-iWrap">'
                f'<div class="productImg-wrap"><a href="{p.url}" class="productImg">'
                f'<img data-ks-lazyload="{main}" src="/shopa/static/blank.gif"></a></div>'
                f'<p class="productPrice"><em title="{p.price:.2f}"><b>¥</b>{p.price:.2f}</em></p>'
                f'<p class="productTitle"><a href="{p.url}" title="{title}">{title}</a></p>'
                f'<div class="productShop"><a class="productShop-name" '
                f'href="http://shop{p.merchant_id}.shopa.example.invalid/">{e(p.shop_name)}</a></div>'
                "</div></div>\n")
    return (f'<li class="gl-item" data-sku="{p.source_id}"><div class="gl-i-wrap">'
            f'<div class="p-img"><a href="{p.url}" target="_blank"><img width="220" height="220" '
            f'data-lazy-img="{main}" src="{AD_HOST}/blank.gif"></a></div>'
            f'<div class="p-price"><strong class="J_{p.source_id}"><em>￥</em><i>{p.price:.2f}</i></strong></div>'
            f'<div class="p-name p-name-type-2"><a href="{p.url}" title="{title}"><em>{title}</em></a></div>'
            f'<div class="p-shop"><a href="http://mall.shopb.example.invalid/index-{p.merchant_id}.html">'
            f"{e(p.shop_name)}</a></div></div></li>\n")


def _pager(platform: str, code: str, page: int, pages: int) -> str:
    """Page links: previous, numbers (the current one unlinked), next, and the page count."""
    def link(n: int, text: str, cls: str = "") -> str:
        attr = f' class="{cls}"' if cls else ""
        return f'<a{attr} href="{e(listing_url(platform, code, n))}">{text}</a>'

    prev_cls, next_cls = ("ui-page-prev", "ui-page-next") if platform == "shopa" else ("pn-prev", "pn-next")
    parts = [link(page - 1, "上一页", prev_cls)] if page > 1 else []
    parts += [f'<b class="curr">{n}</b>' if n == page else link(n, str(n)) for n in range(1, pages + 1)]
    if page < pages:
        parts.append(link(page + 1, "下一页", next_cls))
    wrap = "ui-page" if platform == "shopa" else "p-wrap"
    return f'<div class="{wrap}" id="J_bottomPage">{" ".join(parts)} <em>共<b>{pages}</b>页</em></div>\n'


def write_site(world: World, site: Path) -> tuple[list[dict], dict]:
    """Write every page under ``site``; return the pages table and the server's fault config."""
    pages: list[dict] = []
    faults: dict[str, list[str]] = {"transient_500": [], "slow": [], "no_charset": []}
    by_cat: dict[tuple[str, str], list[Product]] = defaultdict(list)
    cats: dict[tuple[str, str], Category] = {}
    for p in world.products:
        by_cat[(p.platform, p.category.code)].append(p)
        cats[(p.platform, p.category.code)] = p.category
        declared, actual = write_product_page(site, world.taxonomy, p)
        if declared != actual:
            faults["no_charset"].append(p.url)
        if p.http_fault != "none":
            faults[p.http_fault].append(p.url)
        pages.append({"url": p.url, "platform": p.platform, "kind": "product",
                      "category_code": p.category.code, "page": 0, "n_products": 1,
                      "http_fault": p.http_fault})
    for platform in PLATFORMS:
        keys = sorted(k for k in by_cat if k[0] == platform)
        biggest = max(keys, key=lambda k: (len(by_cat[k]), k), default=None)
        for key in keys:
            cat, items = cats[key], sorted(by_cat[key], key=lambda p: (p.rank, p.source_id))
            size = world.config.page_size(platform)
            n_pages = (len(items) + size - 1) // size
            for page in range(1, n_pages + 1):
                chunk = items[(page - 1) * size: page * size]
                url = listing_url(platform, cat.code, page)
                fault = "none"
                if (world.config.force_faults and len(world.products) >= 30 and key == biggest
                        and page == min(2, n_pages)):
                    fault = "transient_500"  # one listing page per platform flakes once
                    faults["transient_500"].append(url)
                write_listing_page(site, world.taxonomy, cat, [listing_item(p) for p in chunk], page, n_pages)
                pages.append({"url": url, "platform": platform, "kind": "listing",
                              "category_code": cat.code, "page": page, "n_products": len(chunk),
                              "http_fault": fault})
        _write(site / platform / "index.html", index_page(world.taxonomy, platform, [cats[k] for k in keys]),
               PAGE_CHARSET[platform])
        pages.append({"url": f"/{platform}/", "platform": platform, "kind": "index",
                      "category_code": "", "page": 0, "n_products": 0, "http_fault": "none"})
    order = {"index": 0, "listing": 1, "product": 2}
    write_root(site, {platform: [p["url"] for p in sorted(pages, key=lambda p: order[p["kind"]])
                                 if p["platform"] == platform] for platform in PLATFORMS})
    return pages, faults


def write_product_page(site: Path, taxonomy: Taxonomy, p: Product) -> tuple[str, str]:
    """Write ``p``'s product page; return its (declared, actual) charsets."""
    links = category_links(taxonomy, p.category)
    html = shopa_page(p, links) if p.platform == "shopa" else shopb_page(p, links)
    declared, actual = page_charsets(p)
    _write(site / p.url.lstrip("/"), html, actual)
    return declared, actual


def write_listing_page(site: Path, taxonomy: Taxonomy, cat: Category, items: list[str], page: int,
                       n_pages: int) -> None:
    """Write page ``page`` of ``n_pages`` of ``cat``'s listing, ``items`` its products' listing entries."""
    platform = cat.platform
    crumb = " &gt; ".join(f'<a href="{e(h)}">{e(n)}</a>' for n, h in category_links(taxonomy, cat))
    wrap = ('<div id="J_ItemList" class="view">\n{}</div>\n' if platform == "shopa" else
            '<div id="J_goodsList" class="goods-list-v2"><ul class="gl-warp clearfix">\n{}</ul></div>\n')
    body = (f'<div class="crumb">{crumb}</div>\n' + wrap.format("".join(items)) +
            _pager(platform, cat.code, page, n_pages))
    _write(site / listing_file(platform, cat.code, page),
           _html(platform, f"{cat.path[-1]}-{PLATFORM_NAMES[platform]}", body), PAGE_CHARSET[platform])


def index_page(taxonomy: Taxonomy, platform: str, categories: list[Category]) -> str:
    """The category index: level 1 -> level 2 (-> level 3) links to each leaf's first listing page."""
    tree: dict[int, dict[str, list[Category]]] = defaultdict(lambda: defaultdict(list))
    for cat in categories:
        tree[cat.class_id][cat.path[1]].append(cat)
    out = ['<div id="J_Category" class="category-tab">\n']
    for class_id in sorted(tree):
        first = next(iter(tree[class_id].values()))[0]
        out.append(f'<dl class="cat" id="{level1_anchor(platform, class_id)}"><dt>{e(first.path[0])}</dt><dd>\n')
        for level2 in sorted(tree[class_id]):
            leaves = sorted(tree[class_id][level2], key=lambda c: c.path)
            if len(leaves[0].path) == 2:
                out.append(f'<a href="{e(listing_url(platform, leaves[0].code))}">{e(level2)}</a>\n')
                continue
            code = taxonomy.code(platform, leaves[0].sub_id)
            out.append(f'<span class="sub" id="c{code}">{e(level2)}：' + " ".join(
                f'<a href="{e(listing_url(platform, c.code))}">{e(c.path[2])}</a>' for c in leaves)
                + "</span>\n")
        out.append("</dd></dl>\n")
    out.append("</div>\n")
    return _html(platform, PLATFORM_NAMES[platform], "".join(out))


def write_root(site: Path, urls: dict) -> None:
    """Home page, robots.txt, sitemap index and one urlset per platform (``urls[platform]``: its URLs
    in sitemap order, any iterable: written as they come), static blank.gif."""
    body = "".join(f'<p><a href="/{p}/">{e(PLATFORM_NAMES[p])}</a></p>\n' for p in PLATFORMS)
    body += f'<p><a href="{AD_HOST}/x?home=1">合作推广</a> <a href="/login">登录</a> <a href="/cart">购物车</a></p>\n'
    _write(site / "index.html", _html("shopa", "m5data 演示商城", body))
    _write(site / "robots.txt", ROBOTS)
    _write(site / "sitemap.xml", '<?xml version="1.0" encoding="UTF-8"?>\n'
           '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' +
           "".join(f"<sitemap><loc>{BASE}/{p}/sitemap.xml</loc></sitemap>\n" for p in PLATFORMS) +
           "</sitemapindex>\n")
    for platform in PLATFORMS:
        (site / platform).mkdir(parents=True, exist_ok=True)
        with open(site / platform / "sitemap.xml", "w", encoding="utf-8", errors="xmlcharrefreplace") as out:
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                      '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n')
            for u in urls[platform]:
                out.write(f"<url><loc>{BASE}{e(u)}</loc></url>\n")
            out.write("</urlset>\n")
        (site / platform / "static").mkdir(parents=True, exist_ok=True)
        (site / platform / "static" / "blank.gif").write_bytes(BLANK_GIF)


def write_serve_config(faults: dict, path: Path) -> None:
    """The server's fault list: URLs that answer 500 once, answer slowly, or omit the charset."""
    config = {"format": 1, "charset": PAGE_CHARSET,
              **{k: sorted(v) if isinstance(v, list) else v for k, v in faults.items()}}
    path.write_text(json.dumps(config, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
