"""Spec pairs and titles read from plain HTML, for pages that publish no structured spec data.

Spec blocks recognised (see docs/crawl.md, "Spec tables in plain HTML"):

- a ``table`` whose rows are two cells (``th``/``td`` or ``td``/``td``), or four cells as two
  label/value pairs (eBay's item-specifics); group header rows (one cell, ``colspan``) skipped;
- a ``dl`` of ``dt``/``dd`` pairs (a ``dd`` that is help text, such as JD's ``Ptable-tips``, skipped);
- a ``ul``/``ol`` whose items read ``key: value`` or ``key：value`` (the value from the item's
  ``title`` attribute when it holds the untruncated text);
- label/value element pairs (eBay's ``ux-labels-values``).

Guards: a block counts only with at least two pairs making up most of its rows (a nav list with
one ``Sale: 20%`` item is not a spec list); keys are short (<= 40 characters) and not sentences;
blocks inside ``nav``, ``header``, ``footer``, ``aside``, ARIA navigation/banner/contentinfo or
an element whose id/class names navigation, menus, footers, breadcrumbs, carts, accounts,
reviews, related products, shipping, returns or payment are ignored, and so are recommendation
widgets (carousels, sponsored or similar items, a block under a "Customers who bought..." heading); when the page marks a main
content area (``main``, ``[role=main]``, ``#main``, ``#content``, a schema.org Product element),
only blocks inside it count. Property names are de-duplicated (first wins).
"""

from __future__ import annotations

import re

_KEY_MAX = 40
_VALUE_MAX = 500
_PAIR = re.compile(r"^\s*([^:：\n]{1,40}?)\s*[:：]\s*(.+?)\s*$", re.S)
_SENTENCE = re.compile(r"[.!?。！？]\s|https?://|[.!?。！？]$")
# id/class words of blocks that hold no specs: long words anywhere in a name ("glbfooter"), short
# ones as a whole dash/underscore-separated part ("main-nav", "nav_bar" but not "canvas")
_BAD_WORDS = re.compile(r"footer|header|breadcrumb|sidebar|cookie|newsletter|pagination|recommend|related|navigation|"
                        r"masthead|shipping|delivery|payment|review|comment|megamenu|sitemap|carousel|sponsored|similarit|"
                        r"also-?bought|also-?viewed", re.I)
_BAD_PARTS = {"nav", "navbar", "menu", "cart", "basket", "foot", "share", "social", "login", "account", "returns", "return",
              "rating", "ratings", "similar", "recently", "pager", "toolbar", "crumb", "crumbs", "filters", "filter", "bc", "gh",
              "sims", "p13n"}
# headings of recommendation widgets: their product lists read like "Title: Subtitle Author 4.1 out of 5 stars"
_RECOMMENDS = re.compile(r"customers (?:who )?(?:also|bought|viewed)|also (?:bought|viewed|like)|sponsored|similar (?:items|products)|"
                         r"related to this item|frequently bought|recommended for you|猜你喜欢|看了又看|为你推荐|相似商品|大家都在买", re.I)
_HEADING = "preceding::*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6][1]"
_BAD_TAGS = {"nav", "header", "footer", "aside", "form", "select", "script", "style", "noscript", "template"}
_BAD_ROLES = {"navigation", "banner", "contentinfo", "menu", "menubar", "search"}
_MAIN = ("//main", "//*[@role='main']", "//*[@id='main']", "//*[@id='content']", "//*[@id='maincontent']",
         "//*[contains(@itemtype, 'schema.org/Product')]")
_NESTED = {"table": ".//table", "dl": ".//dl", "ul": ".//ul|.//ol", "ol": ".//ul|.//ol"}
_SKIP_CELL = ".//script|.//style|.//noscript|.//*[contains(concat(' ', normalize-space(@class), ' '), ' Ptable-tips ')]"


def visible_text(el) -> str:
    """The text of an element without scripts, styles and hidden elements, whitespace collapsed."""
    parts: list[str] = []

    def walk(node) -> None:
        if isinstance(node.tag, str) and not _hidden(node) and node.tag not in ("script", "style", "noscript", "template"):
            parts.append(node.text or "")
            for child in node:
                walk(child)
        if node is not el:
            parts.append(node.tail or "")

    walk(el)
    return re.sub(r"\s+", " ", "".join(parts)).strip()


_HIDDEN_CLASS = re.compile(r"(^|\s)(g-hdn|visually-?hidden|sr-only|screen-reader-text|clipped|u-hidden|hidden|hide|"
                           r"a-offscreen|offscreen|invisible|d-none)(\s|$)", re.I)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _hidden(el) -> bool:
    if not isinstance(el.tag, str):
        return False
    get = el.attrib.get
    return bool((get("class") and _HIDDEN_CLASS.search(get("class"))) or (get("style") and _HIDDEN_STYLE.search(get("style")))
                or "hidden" in el.attrib or get("aria-hidden") == "true")


def strip_hidden(tree, xpath: str = "//h1|//*[@itemprop='name']|//title") -> None:
    """Drop visually hidden elements (``g-hdn``, ``sr-only``, ``display:none``...) inside the title
    elements, so that a title reads what a visitor sees ("Details about" prefixes go)."""
    for holder in tree.xpath(xpath):
        for el in list(holder.iterdescendants()):
            if _hidden(el):
                el.drop_tree()


def _guarded(el) -> bool:
    """Whether ``el`` sits in navigation, header, footer or another block that holds no specs."""
    node = el
    while node is not None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _BAD_TAGS:
            return True
        get = node.attrib.get
        if get("role") in _BAD_ROLES:
            return True
        names = f"{get('id') or ''} {get('class') or ''}".strip()
        if names and (_BAD_WORDS.search(names) or any(p.lower() in _BAD_PARTS for p in re.split(r"[\s_-]+", names))):
            return True
        if "data-a-carousel-options" in node.attrib or _RECOMMENDS.search(get("aria-label") or ""):
            return True
        node = node.getparent()
    return _under_recommendation_heading(el)


def _under_recommendation_heading(el, levels: int = 3) -> bool:
    """Whether the nearest heading before ``el``, within its ``levels`` nearest ancestors, names a
    recommendation widget ("Customers who bought this item also bought", "Sponsored products...")."""
    scope = el
    for _ in range(levels):
        if scope.getparent() is None:
            break
        scope = scope.getparent()
    heading = el.xpath(_HEADING)
    if not heading or scope not in heading[0].iterancestors():
        return False
    return bool(_RECOMMENDS.search(heading[0].text_content()))


def _cell(el) -> str:
    for junk in el.xpath(_SKIP_CELL):
        if junk is not el:
            junk.drop_tree()
    return re.sub(r"\s+", " ", el.text_content()).strip()


def _good(key: str, value: str) -> bool:
    return (0 < len(key) <= _KEY_MAX and 0 < len(value) <= _VALUE_MAX and not _SENTENCE.search(key)
            and any(c.isalnum() for c in key))


def _table_rows(table):
    """Each row's candidate pairs: two cells, or four as two label/value pairs (eBay item
    specifics); a group header row (one cell, ``colspan``) is no row."""
    for tr in table.xpath("./tr|./thead/tr|./tbody/tr|./tfoot/tr"):
        cells = tr.xpath("./th|./td")
        if len(cells) == 1 or any(c.get("colspan") not in (None, "1") for c in cells):
            continue
        texts = [_cell(c) for c in cells]
        yield list(zip(texts[0::2], texts[1::2])) if len(texts) in (2, 4) else []


def _dl_rows(dl):
    """Each ``dt`` and the last ``dd`` before the next ``dt`` that is not help text."""
    for dt in dl.xpath("./dt|./div/dt"):
        value = None
        for dd in (el for el in dt.itersiblings() if isinstance(el.tag, str)):
            if dd.tag == "dt":
                break
            if dd.tag == "dd" and "Ptable-tips" not in (dd.get("class") or ""):
                value = dd
        yield [] if value is None else [(_cell(dt), _cell(value))]


def _list_rows(ul):
    """Each item reading ``key: value``, the value from the item's ``title`` when the text shows
    a truncated form of it."""
    for li in ul.xpath("./li"):
        text = re.sub(r"\s+", " ", li.text_content().replace("\xa0", " ")).strip()
        m = _PAIR.match(text)
        if not m:
            yield []
            continue
        key, value = m.group(1), m.group(2)
        title = re.sub(r"\s+", " ", (li.get("title") or "").replace("\xa0", " ")).strip()
        if title and len(title) > len(value) and (title.startswith(value.rstrip(".… ")) or value.endswith(("...", "…"))):
            value = title  # the item shows a truncated value; its title attribute holds all of it
        yield [(key, value)]


def _read(block, rows) -> tuple[list, int]:
    """A block's good pairs and its row count (the share of rows that are pairs decides whether
    the block is a spec block)."""
    pairs, count = [], 0
    for candidates in rows(block):
        count += 1
        pairs += [(k, v) for k, v in candidates if _good(k.rstrip(":： "), v)]
    return pairs, count


def _label_value_pairs(root) -> list:
    pairs = []
    for label in root.xpath("//*[contains(@class, 'labels-values__labels')]"):
        value = label.xpath("following-sibling::*[contains(@class, 'labels-values__values')][1]")
        if value and not _guarded(label):
            k, v = _cell(label), _cell(value[0])
            if _good(k.rstrip(":： "), v):
                pairs.append((k, v))
    return pairs


def _blocks(roots) -> list[list[tuple[str, str]]]:
    blocks, seen = [], set()
    for root in roots:
        for el in root.xpath(".//table|.//dl|.//ul|.//ol"):
            if el in seen:
                continue
            seen.add(el)
            if el.xpath(_NESTED[el.tag]):  # an outer layout block (a menu of menus): its inner blocks count
                continue
            pairs, rows = _read(el, {"table": _table_rows, "dl": _dl_rows}.get(el.tag, _list_rows))
            if len(pairs) >= 2 and len(pairs) >= 0.6 * rows and not _guarded(el):
                blocks.append(pairs)
    return blocks


def spec_pairs(tree) -> list[tuple[str, str]]:
    """The spec pairs of a page's plain-HTML spec blocks (see the module docstring), page order."""
    if tree is None:
        return []
    roots = []
    for xp in _MAIN:
        roots = [r for r in tree.xpath(xp) if not _guarded(r)]
        if roots:
            break
    blocks = _blocks(roots) if roots else []
    if not blocks:  # no main area marked, or the specs sit outside it (eBay's item specifics)
        blocks = _blocks([tree])
    out = [p for block in blocks for p in block] + _label_value_pairs(tree)
    seen_keys: set[str] = set()
    unique = []
    for k, v in out:
        key = k.strip(":： ").lower()
        if key not in seen_keys:
            seen_keys.add(key)
            unique.append((k, v))
    return unique


_PRICE = r"(?:[A-Z]{1,3}\s?)?[$€£¥￥₹]\s?\d[\d.,]*|\d[\d.,]*\s?(?:USD|EUR|GBP|CNY|RMB|元|円)"
_TITLE_NOISE = re.compile(
    rf"^(?:\s*(?:(?:{_PRICE})(?:\s*[-–~]\s*(?:{_PRICE}|\d[\d.,]*))?|(?:up to\s+)?-?\d{{1,3}}\s?%\s*(?:off|rabatt|de descuento|de réduction)?"
    rf"|\d(?:\.\d)?折|【[^】]{{0,40}}】|\[[^\]]{{0,40}}\]|(?:sale|deal|hot|clearance|free shipping)\b)\s*[|:\-–—,/·•]?)+\s*", re.I)


def clean_title(title: str | None, site_name: str | None = None) -> str | None:
    """A page title without price and discount prefixes (``$19.99 | 50% OFF | ...``, ``【限时】``)
    and without a ``| Site`` / ``- Site`` suffix naming ``site_name``."""
    if not title:
        return title
    text = re.sub(r"\s+", " ", title).strip()
    stripped = _TITLE_NOISE.sub("", text)
    text = stripped if len(stripped) >= 3 else text
    if site_name:
        m = re.match(rf"(.+?)\s*[|\-–—:·]\s*{re.escape(site_name.strip())}\s*$", text, re.I)
        if m:
            text = m.group(1)
    return text or None
