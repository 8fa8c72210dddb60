"""Product page templates of the two platforms, modelled on Tmall (shopa) and JD (shopb) pages.

shopa: title in ``<h1>``, spec table in ``<table class="tm-tableAttr">`` (or ``<dl class="tb-attrs">``),
images and the video URL in the JSON object passed to ``TShop.Setup(...)`` in a ``<script>``.
shopb: schema.org ``Product`` and ``BreadcrumbList`` JSON-LD, title in ``<div class="sku-name">``,
specs in ``<ul id="parameter-brand">`` + ``<ul class="parameter2">`` as ``<li>属性：值</li>``.
Page faults (missing fields, broken HTML) are applied here; encoding faults in ``site.py``.
"""

from __future__ import annotations

import json
import random
import re
from html import escape

from .text import noisy_value
from .world import Product

AD_HOST = "http://ads.example.invalid"


def e(value: object) -> str:
    """HTML-escape text for element content and quoted attributes."""
    return escape(str(value), quote=True)


def script_json(obj: object, encoding: str = "utf-8") -> str:
    """JSON for inside a ``<script>``: no ``</`` and, for GBK pages, \\u-escapes for what GBK lacks."""
    out = json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")
    if encoding != "utf-8":
        out = "".join(c if c.isascii() or _encodable(c, encoding) else f"\\u{ord(c):04x}" for c in out)
    return out


def _encodable(c: str, encoding: str) -> bool:
    try:
        c.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False


def page_charsets(p: Product) -> tuple[str, str]:
    """(declared, actual) charset of a product page: shopa utf-8, shopb gbk, swapped bytes on a fault."""
    declared = "utf-8" if p.platform == "shopa" else "gbk"
    if p.page_fault == "wrong_charset":
        return declared, "gbk" if declared == "utf-8" else "utf-8"
    return declared, declared


def spec_value_html(rng: random.Random, value: str) -> str:
    """A spec value as the page spells it: sometimes full-width or padded, NBSP as an entity."""
    return e(noisy_value(rng, value)).replace("\u00a0", "&nbsp;")


def _header_links(platform: str, p: Product, n: int) -> str:
    return (f'<div id="site-nav"><a href="/{platform}/login?redirect={e(p.url)}">请登录</a> | '
            f'<a href="/{platform}/cart">购物车</a> | <a href="/">首页</a> | '
            f'<a href="{AD_HOST}/click?slot={platform}-{n}">广告</a></div>\n'
            f'<div class="ad-banner"><a href="{AD_HOST}/x?id={n}">'
            f'<img src="{AD_HOST}/banner-{n % 7}.gif" alt="推广"></a></div>\n')


def shopa_page(p: Product, category_links: list[tuple[str, str]]) -> str:
    """A Tmall-like product page (utf-8 text; the writer encodes it)."""
    rng = random.Random(p.seed)
    missing = p.page_fault
    title = "" if missing == "missing_title" else p.title
    images = [m.url for m in p.images]
    head_title = f"{e(title)}-tmall.com天猫" if title else "tmall.com天猫"
    out = ['<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n',
           f"<title>{head_title}</title>\n",
           f'<meta name="keywords" content="{e(p.instance.brand)},{e(p.category.path[-1])}">\n',
           f'<link rel="canonical" href="{p.url}">\n</head>\n<body>\n',
           _header_links("shopa", p, p.seed % 97)]
    if missing != "missing_breadcrumb":
        crumbs = ['<a href="/shopa/">首页</a>'] + [f'<a href="{href}">{e(name)}</a>'
                                                   for name, href in category_links]
        out.append('<div id="J_Breadcrumb" class="breadcrumb">' +
                   '<span class="sep">&gt;</span>'.join(crumbs) + "</div>\n")
    out.append(f'<div id="detail" data-item-id="{p.source_id}">\n<div class="tb-gallery">\n')
    if images:
        out.append(f'<div class="tb-booth"><img id="J_ImgBooth" src="{e(images[0])}" '
                   f'alt="{e(title)}"></div>\n<ul id="J_UlThumb" class="tb-thumb">' +
                   "".join(f'<li><a href="#"><img src="{e(u)}"></a></li>' for u in images) + "</ul>\n")
    if p.video is not None:
        out.append(f'<div class="tb-video" id="J_VideoBox" data-video-id="{p.video.url.rsplit("/", 1)[1][:-4]}">'
                   '<span class="play-btn">播放视频</span></div>\n')
    out.append('</div>\n<div class="tb-property">\n')
    if title:
        out.append(f'<div class="tb-detail-hd"><h1 data-spm="1000983">{e(title)}</h1></div>\n')
    out.append(f'<div class="tm-price-panel"><em class="tm-yen">¥</em>'
               f'<span class="tm-price">{p.price:.2f}</span></div>\n'
               f'<div class="tb-shop"><a class="slogo-shopname" data-seller-id="{p.merchant_id}" '
               f'href="http://shop{p.merchant_id}.shopa.example.invalid/">{e(p.shop_name)}</a></div>\n'
               f'<div class="tb-action"><a id="J_LinkBasket" href="/shopa/cart?add={p.source_id}">'
               f'加入购物车</a> <a href="/shopa/login?buy={p.source_id}">立即购买</a></div>\n'
               "</div>\n</div>\n")
    if missing != "missing_specs":
        out.append('<div id="J_AttrList" class="attributes">\n')
        if p.template == "shopa-dl":
            out.append('<h3 class="attr-title">产品参数：</h3>\n<dl class="tb-attrs">\n' +
                       "".join(f"<dt>{e(k)}</dt><dd>{spec_value_html(rng, v)}</dd>\n" for k, v in p.specs)
                       + "</dl>\n")
        else:
            rows = [f'<tr><th>{e(k)}</th><td>{spec_value_html(rng, v)}</td></tr>\n' for k, v in p.specs]
            rows.insert(0, '<tr class="tm-tableAttrSub"><th colspan="2">基本信息</th></tr>\n')
            if len(rows) > 6:  # Tmall groups longer tables under a second header row
                rows.insert(5, '<tr class="tm-tableAttrSub"><th colspan="2">规格参数</th></tr>\n')
            out.append('<table class="tm-tableAttr"><thead><tr><td colspan="2">规格参数</td></tr>'
                       "</thead>\n<tbody>\n" + "".join(rows) + "</tbody></table>\n")
        out.append("</div>\n")
    setup = {"itemDO": {"itemId": p.source_id, "categoryId": p.category.code,
                        "brand": p.instance.brand, "sellerId": p.merchant_id,
                        "shopName": p.shop_name, "reservePrice": f"{p.price:.2f}"},
             "propertyPics": {"default": images}}
    if title:
        setup["itemDO"]["title"] = title
    if p.video is not None:
        setup["video"] = {"videoId": p.video.url.rsplit("/", 1)[1][:-4], "videoUrl": p.video.url,
                          "duration": round(p.video.duration_s)}
    out.append('<div id="description"><p>' + e(p.instance.noun) + "，品质保证，欢迎选购。</p></div>\n"
               '<script type="text/javascript">\n'
               f'window.g_config = {{"appId": 1, "itemId": "{p.source_id}", "sellerId": "{p.merchant_id}"}};\n'
               f"TShop.Setup({script_json(setup, page_charsets(p)[1])});\n</script>\n</body>\n</html>\n")
    page = "".join(out)
    return broken(page, rng) if missing == "broken_html" else page


def shopb_page(p: Product, category_links: list[tuple[str, str]]) -> str:
    """A JD-like product page (text; the writer encodes it, GBK by default)."""
    rng = random.Random(p.seed)
    charset, encoding = page_charsets(p)
    missing = p.page_fault
    title = "" if missing == "missing_title" else p.title
    images = [m.url for m in p.images]
    brand = p.instance.brand
    ld: dict = {"@context": "https://schema.org", "@type": "Product", "sku": p.source_id,
                "productID": p.source_id, "image": images,
                "brand": {"@type": "Brand", "name": brand},
                "offers": {"@type": "Offer", "price": f"{p.price:.2f}", "priceCurrency": "CNY",
                           "availability": "https://schema.org/InStock", "url": p.url,
                           "seller": {"@type": "Organization", "name": p.shop_name,
                                      "identifier": p.merchant_id}}}
    if title:
        ld["name"] = title
    if missing != "missing_breadcrumb":
        ld["category"] = " > ".join(name for name, _ in category_links)
    if p.video is not None:
        ld["subjectOf"] = {"@type": "VideoObject", "name": title or brand, "contentUrl": p.video.url,
                           "duration": f"PT{round(p.video.duration_s)}S",
                           "thumbnailUrl": images[0] if images else "",
                           "uploadDate": "2024-01-01"}
    out = ['<!DOCTYPE html>\n<html>\n<head>\n',
           f'<meta http-equiv="Content-Type" content="text/html; charset={charset}" />\n',
           f"<title>{e(title)}【行情 报价 价格 评测】-京东</title>\n" if title else "<title>-京东</title>\n",
           f'<script type="application/ld+json">{script_json(ld, encoding)}</script>\n']
    if missing != "missing_breadcrumb":
        crumb_ld = {"@context": "https://schema.org", "@type": "BreadcrumbList",
                    "itemListElement": [{"@type": "ListItem", "position": i + 1, "name": name,
                                         "item": href} for i, (name, href) in enumerate(category_links)]}
        out.append(f'<script type="application/ld+json">{script_json(crumb_ld, encoding)}</script>\n')
    out += ["</head>\n<body>\n", _header_links("shopb", p, p.seed % 89)]
    if missing != "missing_breadcrumb":
        items = [f'<div class="item{" first" if i == 0 else ""}"><a href="{href}">{e(name)}</a></div>'
                 for i, (name, href) in enumerate(category_links)]
        items.append(f'<div class="item ellipsis" title="{e(brand)}">{e(brand)}</div>')
        out.append('<div class="crumb-wrap"><div class="crumb fl clearfix">' +
                   '<div class="item sep">&gt;</div>'.join(items) + "</div></div>\n")
    out.append('<div class="product-intro clearfix">\n<div class="preview-wrap">\n')
    if images:
        out.append(f'<div id="spec-n1" class="jqzoom main-img"><img id="spec-img" '
                   f'data-origin="{e(images[0])}" src="{e(images[0])}" alt="{e(title)}"></div>\n'
                   '<div id="spec-list"><ul class="lh">' +
                   "".join(f'<li><img src="{e(u)}" data-url="{e(u)}"></li>' for u in images) +
                   "</ul></div>\n")
    if p.video is not None:
        out.append('<div class="video-icon J-video-icon"><video id="v-player" preload="none" '
                   f'poster="{e(images[0]) if images else ""}"><source src="{e(p.video.url)}" '
                   'type="video/mp4"></video></div>\n')
    out.append('</div>\n<div class="itemInfo-wrap">\n')
    if title:
        out.append(f'<div class="sku-name">{e(title)}</div>\n')
    out.append(f'<div class="summary-price"><span class="p-price"><span>￥</span>'
               f'<span class="price J-p-{p.source_id}">{p.price:.2f}</span></span></div>\n'
               f'<div class="choose-btns"><a id="InitCartUrl" href="/cart?pid={p.source_id}">加入购物车</a></div>\n'
               '</div>\n</div>\n'
               f'<div class="popbox-inner"><div class="mt"><h3><a href="http://mall.shopb.example.invalid/'
               f'index-{p.merchant_id}.html" title="{e(p.shop_name)}">{e(p.shop_name)}</a></h3></div>'
               f'<div class="J-hove-wrap" data-vender-id="{p.merchant_id}"></div></div>\n')
    if missing != "missing_specs":
        first, rest = p.specs[0], p.specs[1:]
        out.append('<div class="p-parameter">\n<ul id="parameter-brand" class="p-parameter-list">'
                   f'<li title="{e(first[1])}">{e(first[0])}： <a href="/shopb/search?keyword='
                   f'{e(first[1])}" target="_blank">{spec_value_html(rng, first[1])}</a></li></ul>\n'
                   '<ul class="parameter2 p-parameter-list">\n' +
                   "".join(f'<li title="{e(v)}">{e(k)}：{spec_value_html(rng, v)}</li>\n' for k, v in rest)
                   + "</ul>\n</div>\n")
    out.append('<script>\nvar pageConfig = {product: {skuid: ' + p.source_id +
               f", venderId: {p.merchant_id}, cat: [{p.category.code}]}}}};\n</script>\n</body>\n</html>\n")
    page = "".join(out)
    return broken(page, rng) if missing == "broken_html" else page


def broken(page: str, rng: random.Random) -> str:
    """Malformed but recoverable HTML: optional end tags dropped, stray closers, no </body></html>.

    Only tags whose end tag HTML lets a parser imply (li, td, th, tr, dt, dd, p) lose it, so a
    lenient parser (lxml, html5lib) still recovers every field listed in the truth.
    """
    page = re.sub(r"</(li|td|th|tr|dt|dd|p)>", "", page)
    page = page.replace("<body>\n", "<body>\n</span></div><div class=unclosed>\n", 1)
    page = page.replace("<div class=\"tb-gallery\">", "<DIV class=tb-gallery>", 1)
    if rng.random() < 0.5:
        page = page.replace('<div class="tb-property">', "<div class=tb-property>", 1)
    return page[: page.rfind("</body>")] + "<!-- truncated -->\n"
