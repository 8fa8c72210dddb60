"""What a shop title says beyond its words (issue 58): shop and promotion noise, brand aliases, net
content, pack counts and stage numbers, read from Chinese and Latin titles.

Every function takes text already :func:`.text.clean` (NFKC, lower case: ``（`` is ``(``, ``８００克``
is ``800克``). A title without the thing asked for gives None or an empty list: the pair features then
say NaN, never "differs".
"""

from __future__ import annotations

import re

# promotion, shipping and shop words: removed from titles before the text features (one place, short)
NOISE = ("新老包装随机发货", "随机发货", "跨境直邮", "海外直邮", "直邮", "包邮", "包税", "正品", "现货", "官方旗舰店",
         "旗舰店", "保税仓发", "保税仓", "保税", "免税", "品牌授权", "品牌直营", "官方品质", "直发", "仓发", "新鲜效期")
_HAN = "\u3400-\u9fff"
_NOISE_WORD = re.compile("|".join(sorted(map(re.escape, NOISE), key=len, reverse=True)))
_BRACKETS = re.compile(r"【[^】]*】|\[[^\]]*\]|\([^)]*\)")
_LEADING = re.compile(rf"^\s*(?:【[^】]*】\s*|\[[^\]]*[{_HAN}][^\]]*\]\s*)+")  # a shop's 【...】 / [...] (Chinese) first
_DATE = re.compile(r"\d{2,4}年\d{1,2}月(?:\d{1,2}日)?产?|效期至?[\d年月/.-]*")
_SPACES = re.compile(r"\s+")

# a measure of the unit sold, per kind in one base unit: mass, volume, storage, battery, power, length,
# screen and pieces per unit (100抽, 60粒, 30片: tissues, capsules, masks); not the pack count (罐, 袋, 盒 ...)
_UNITS = {"千克": ("g", 1000.0), "公斤": ("g", 1000.0), "kg": ("g", 1000.0), "克": ("g", 1.0), "g": ("g", 1.0),
          "斤": ("g", 500.0), "毫克": ("mg", 1.0), "mg": ("mg", 1.0),
          "毫升": ("ml", 1.0), "ml": ("ml", 1.0), "升": ("ml", 1000.0), "l": ("ml", 1000.0),
          "tb": ("gb", 1024.0), "gb": ("gb", 1.0), "mb": ("mb", 1.0), "毫安": ("mah", 1.0), "mah": ("mah", 1.0),
          "千瓦": ("w", 1000.0), "kw": ("w", 1000.0), "瓦": ("w", 1.0), "w": ("w", 1.0),
          "毫米": ("mm", 1.0), "mm": ("mm", 1.0), "厘米": ("mm", 10.0), "cm": ("mm", 10.0), "米": ("mm", 1000.0),
          "英寸": ("inch", 1.0), "寸": ("inch", 1.0), "inch": ("inch", 1.0),
          "片": ("pcs", 1.0), "粒": ("pcs", 1.0), "抽": ("pcs", 1.0), "张": ("pcs", 1.0), "颗": ("pcs", 1.0)}
_CONTENT = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)\s*("
                      + "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True)) + r")(?![a-z])")
_MEASURE = "罐|袋|盒|瓶|包|桶|听|支|件|套|箱|条"
_PACK = re.compile(rf"(?<![0-9a-z.])(\d+)\s*(?:{_MEASURE})装?"  # 3罐装, 2袋; *2罐, ×3, x3 (not x4gb, not 1920x1080)
                   rf"|(?:[*×]|(?<![0-9a-z])x)\s*(\d+)(?![\d.]*\s*[a-z千公毫克斤升])(?:\s*(?:{_MEASURE})装?)?")
_DIGIT = {"零": "0", "一": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6"}
_STAGE = re.compile(rf"(?<![0-9a-z.])([0-6零一二三四五六])\s*(?:段|阶段)|stage\s*([0-6])(?![0-9])|(?<![0-9a-z])p([1-4])(?=\s*[{_HAN}*])")
_ALIAS_PAREN = re.compile(rf"^([{_HAN}]{{2,8}})\s*[(\[]\s*([a-z][a-z0-9&'. -]{{1,30}}?)\s*[)\]]")
_ALIAS_LATIN_FIRST = re.compile(rf"^([a-z][a-z0-9&'-]{{2,20}})\s*([{_HAN}]{{2,8}})")
_ALIAS_HAN_FIRST = re.compile(rf"^([{_HAN}]{{2,8}}?)\s*([a-z][a-z0-9&'-]{{2,20}})(?![a-z0-9])")


def denoise(s: str) -> str:
    """``s`` without shop prefixes (a leading 【...】 / [...]), bracketed notes that hold a :data:`NOISE`
    word or a production date, the noise words themselves and dates (``19年8月产``, ``效期至21年6月``)."""
    s = _LEADING.sub(" ", s)
    s = _BRACKETS.sub(lambda m: " " if _NOISE_WORD.search(m.group()) or _DATE.search(m.group()) else m.group(), s)
    s = _DATE.sub(" ", _NOISE_WORD.sub(" ", s))
    return _SPACES.sub(" ", s).strip()


def packs(s: str) -> list[int]:
    """Pack counts (``*2罐``, ``x3``, ``3罐装``, ``2袋``): how many units, never the unit's size."""
    return [int(a or b) for a, b in _PACK.findall(s)]


_COUNT = re.compile(rf"[0-9一二两三四五六七八九十单双]+(?:{_MEASURE})?装?|(?:{_MEASURE})装?")


def is_count(word: str) -> bool:
    """A word that is only a number or a count (``800g``, ``两罐``, ``三桶装``, ``单罐装``, ``罐装``)."""
    return any(c.isdigit() for c in word) or _COUNT.fullmatch(word) is not None


def strip_packs(s: str) -> str:
    return _PACK.sub(" ", s)


def contents(s: str) -> list[str]:
    """Measures of the unit sold in order, each in its kind's base unit (``800克``, ``800g``, ``0.8kg``:
    ``800g``; ``1tb``: ``1024gb``; ``20000毫安``: ``20000mah``; ``55寸``: ``55inch``; ``100抽``: ``100pcs``),
    pack counts aside (``900g*2罐``: ``900g``). :func:`kind` names a value's kind."""
    out = []
    for num, unit in _CONTENT.findall(s):
        kind, factor = _UNITS[unit]
        v = round(float(num) * factor, 3)
        if v > 0:
            out.append(f"{v:g}{kind}")
    return out


_KIND = re.compile(r"[a-z]+$")


def kind(value: str) -> str:
    """The kind of a :func:`contents` value (its unit: ``800g`` is ``g``)."""
    m = _KIND.search(value)
    return m.group() if m else ""


def stages(s: str) -> list[str]:
    """Stage numbers in order (``1段``, ``一段``, ``1阶段``, ``stage 1``, ``0段``; Anmum's ``P1孕期``)."""
    return [_DIGIT.get(a, a) or b or f"p{c}" for a, b, c in _STAGE.findall(s)]


class Brands:
    """Brand aliases learnt from a store's own (cleaned, :func:`denoise`-d) titles: a Chinese name at a
    title's start directly followed by a parenthesised Latin one (``安满(anmum)``, ``美赞臣[meadjohnson]``),
    and a Latin name beside a Chinese name so learnt as a title's first words (``maxigenes美可卓``). Names
    of one brand form a group (a name that starts another of its script joins it: ``美素佳儿妈妈`` and
    ``美素佳儿``); :meth:`key` is a brand's group, :meth:`in_title` the groups a title names."""

    def __init__(self, titles: list[str]):
        self.parent: dict[str, str] = {}
        found = [m.groups() for m in map(_ALIAS_PAREN.match, titles) if m]
        for han, latin in found:
            self._union(han, latin.strip())
        known = sorted((k for k in self.parent if not k.isascii()), key=len, reverse=True)
        seen = {m.groups() for t in titles for r in (_ALIAS_LATIN_FIRST, _ALIAS_HAN_FIRST) if (m := r.match(t))}
        for pair in sorted(seen):  # co-occurring first words: the Chinese one must start with a name learnt above
            latin, han = pair if pair[0].isascii() else pair[::-1]
            han = next((k for k in known if han.startswith(k)), None)
            if han is not None:
                self._union(han, latin)
        names = sorted(self.parent)
        for i, x in enumerate(names):  # a name that starts a longer one of its script: one brand
            for y in names[i + 1:]:  # (sorted: the names x starts follow it)
                if not y.startswith(x):
                    break
                if x.isascii() == y.isascii() and len(x) >= (3 if x.isascii() else 2):
                    self._union(x, y)
        self._lengths = {latin: sorted({len(n) for n in names if n.isascii() == latin}, reverse=True) for latin in (True, False)}

    def _find(self, x: str) -> str:
        p = self.parent.setdefault(x, x)
        while p != self.parent.setdefault(p, p):
            p = self.parent[p]
        self.parent[x] = p
        return p

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def key(self, brand: str) -> str:
        """A brand spelling's group (the spelling itself when no alias is known)."""
        return self._find(brand) if brand in self.parent else brand

    def in_title(self, title: str) -> list[str]:
        """The groups a title names, in order of first mention: at each place the longest name there, a
        Latin one as a whole word (``a2`` is not in ``ba2x``). Dictionary lookups a place, not a regular
        expression of every name (4,000 names: 1.2 ms a title)."""
        found: dict[str, None] = {}
        i, n, names = 0, len(title), self.parent
        while i < n:
            c = title[i]
            latin = c.isascii() and c.isalnum()
            if latin and i and title[i - 1].isascii() and title[i - 1].isalnum():
                i += 1
                continue
            for size in self._lengths[latin] if (latin or c >= "\u3400") else ():
                w = title[i:i + size]
                end = i + size
                if w in names and len(w) == size and not (latin and end < n and title[end].isascii() and title[end].isalnum()):
                    found.setdefault(self._find(w), None)
                    i = end - 1
                    break
            i += 1
        return list(found)
