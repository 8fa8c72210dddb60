"""The card of every export layout: ``README.md`` (a Hugging Face dataset card: YAML header, then
what the data is, where it came from, what the pipeline honoured, how to cite) and ``croissant.json``
(Croissant 1.0 JSON-LD describing the layout's files and record sets: ``croissant.py``).

What a card says comes from the store and from the export's own shard stats (:func:`card_facts`):
the licences the exported products' pages state (``licenses``), languages, source domains and crawl
dates of the exported products, and the counts of opt-outs (``optouts``), takedowns, blurred faces
(the shards' stats) and masked fields.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..egress import gate
from ..storage import withheld
from ..storage.takedowns import HOST_SQL

README, CROISSANT = "README.md", "croissant.json"
CARD_FILES = (README, CROISSANT)
# a Creative Commons licence URL -> its Hugging Face licence id (cc-by-4.0, cc0-1.0); any other: "other"
_CC = re.compile(r"creativecommons\.org/(?:licenses/([a-z-]+)|publicdomain/(zero))/(\d\.\d)")
TASKS = ["image-classification", "text-classification", "feature-extraction", "zero-shot-image-classification"]

CITATIONS = """@inproceedings{dong2022m5product,
  title     = {M5Product: Self-harmonized Contrastive Learning for E-commercial Multi-modal Pretraining},
  author    = {Dong, Xiao and Zhan, Xunlin and Wu, Yangxin and Wei, Yunchao and Kampffmeyer, Michael C. and
               Wei, Xiaoyong and Lu, Minlong and Wang, Yaowei and Liang, Xiaodan},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}
@article{chen2023mep3m,
  title   = {MEP-3M: A Large-scale Multi-modal E-Commerce Products Dataset},
  author  = {Chen, Delong and Liu, Fan and Du, Xiaoyu and Gao, Ruizhuo and Xu, Feng},
  journal = {Pattern Recognition},
  year    = {2023}
}"""


@dataclass
class CardFacts:
    """What an export's card reports."""

    version: str
    fmt: str
    splits: dict[str, int]  # split -> samples
    samples: int = 0
    licences: dict[str, int] = field(default_factory=dict)  # licence stated ("": none) -> exported products
    languages: list[str] = field(default_factory=lambda: ["zh"])
    domains: dict[str, int] = field(default_factory=dict)  # source host -> products
    crawled: tuple[str, str] | None = None  # first and last crawl date (YYYY-MM-DD)
    optouts: int = 0
    takedowns: int = 0
    faces_blurred: int = 0
    masked: dict[str, int] = field(default_factory=dict)  # field -> replacements

    @property
    def licence(self) -> str:
        """The card's ``license``: the Hugging Face id of the products' one licence (a Creative Commons
        URL), else ``other`` (several, none stated, or one the Hub has no id for)."""
        if len(self.licences) != 1 or not (m := _CC.search(next(iter(self.licences)).lower())):
            return "other"
        kind, zero, version = m.groups()
        return f"cc0-{version}" if zero else f"cc-{kind}-{version}"

    @property
    def size_category(self) -> str:
        for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                            (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
            if self.samples < limit:
                return name
        return "n>10M"


def _faces_blurred(shards: list[dict]) -> int:
    """Blurred faces: what the shards' stats counted (0 with ``export.blur_faces`` off)."""
    return sum(st.get("faces_blurred") or 0 for st in shards)


def card_facts(store, fmt: str, version: str, members, shards: list[dict], *, mask: bool = True) -> CardFacts:
    """The card's facts of an export of ``members`` written as ``shards`` (their stats); the licences the
    pages state pass the egress gate (``mask``: ``export.mask_personal_data``): an owner's copyright
    notice may name a person, a ``mailto:`` licence give an address."""
    splits: dict[str, int] = {}
    masked: dict[str, int] = {}
    for st in shards:
        splits[st["split"]] = splits.get(st["split"], 0) + st.get("nsamples", 0)
        for name, n in (st.get("masked") or {}).items():
            masked[name] = masked.get(name, 0) + n
    facts = CardFacts(version, fmt, splits, sum(splits.values()), masked=dict(sorted(masked.items())),
                      optouts=store.count("optouts"), takedowns=store.count("takedowns"),
                      faces_blurred=_faces_blurred(shards))
    # the members' SQL reads the takedowns; a version built before an opt-out or takedown still holds its
    # products, which no shard holds: the egress gate's withheld products are none of the card's facts
    sqls, _ = withheld.sources(store)
    tables = ("products", "splits", "captions", "takedowns", "optouts", "licenses")
    con = store.connect(need=tables, only=tables, cursor=True)
    try:
        shown = f" WHERE product_id NOT IN ({withheld.ids_sql(sqls)})" if sqls else ""
        ids = f"(SELECT DISTINCT product_id FROM ({members.sql()}){shown})"
        rows = con.execute(f"SELECT {HOST_SQL.format(url='p.url')} AS host, count(*), min(crawled_at), max(crawled_at) "
                           f"FROM products p WHERE product_id IN {ids} GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        facts.domains = {h or "(unknown)": n for h, n, _, _ in rows}
        dates = [d for r in rows for d in r[2:] if d is not None]
        if dates:
            facts.crawled = (min(dates).date().isoformat(), max(dates).date().isoformat())
        stated = con.execute(f"SELECT coalesce(l.license, ''), count(*) FROM products p LEFT JOIN licenses l "
                             f"USING (product_id) WHERE p.product_id IN {ids} GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        for licence, n in stated:  # two licences may read the same once masked
            licence = gate.text(licence, mask) or ""
            facts.licences[licence] = facts.licences.get(licence, 0) + n
        if con.execute(f"SELECT count(*) FROM captions WHERE lang = 'en' AND product_id IN {ids}").fetchall()[0][0]:
            facts.languages = ["zh", "en"]
    finally:
        con.close()
    return facts


def header(facts: CardFacts, extra: dict | None = None) -> dict:
    """The card's YAML header: the Hub's keys, then ``extra`` (a layout's ``configs``, ``dataset_info``)."""
    meta = {
        "license": facts.licence, "language": facts.languages, "task_categories": TASKS,
        "size_categories": [facts.size_category], "pretty_name": f"M5Product-style products ({facts.version})",
        "tags": ["e-commerce", "multimodal", "m5data"],
    }
    return {**meta, **(extra or {})}


def readme(facts: CardFacts, extra_meta: dict | None = None, usage: str = "") -> str:
    """The whole ``README.md``."""
    import yaml

    splits = "\n".join(f"| {s} | {n:,} |" for s, n in facts.splits.items())
    domains = ", ".join(f"{h} ({n:,})" for h, n in facts.domains.items()) or "none"
    licences = (", ".join(f"{k or 'none stated'} ({n:,})" for k, n in facts.licences.items())
                if facts.licences else "none")
    masked = ", ".join(f"{k} {n:,}" for k, n in facts.masked.items()) or "none"
    crawled = f"{facts.crawled[0]} to {facts.crawled[1]}" if facts.crawled else "unknown"
    return ("---\n" + yaml.safe_dump(header(facts, extra_meta), sort_keys=False, allow_unicode=True) + "---\n\n"
            "# M5Product-style five-modality products (m5data export)\n\n"
            f"Split version `{facts.version}`, layout `{facts.fmt}`: {facts.samples:,} samples. One sample per product "
            "and split: image, caption, spec table, 1-fps video frames and MFCC audio features, unified "
            "category labels. Missing modalities are missing, never placeholders. `croissant.json` describes "
            "the files (Croissant 1.0).\n\n"
            f"| split | samples |\n|---|---|\n{splits}\n\n"
            "## Sources\n\n"
            f"- source domains (products): {domains}\n- crawled: {crawled}\n- licences: {licences}\n\n"
            "## Compliance\n\n"
            f"- opt-outs honoured: {facts.optouts:,}\n- takedowns: {facts.takedowns:,}\n"
            f"- faces blurred: {facts.faces_blurred:,}\n- personal data masked (per field): {masked}\n\n"
            + (f"## Use\n\n{usage}\n" if usage else "")
            + f"## Citation\n\n```bibtex\n{CITATIONS}\n```\n")


def write(out: Path, facts: CardFacts, extra_meta: dict | None = None, usage: str = "") -> None:
    """Write ``README.md`` and ``croissant.json`` into the export folder ``out`` (temp names, renamed)."""
    from .croissant import croissant
    from .json_stream import write_json_atomic

    tmp = out / f".tmp-{README}"
    tmp.write_text(readme(facts, extra_meta, usage), encoding="utf-8")
    os.replace(tmp, out / README)
    write_json_atomic(out / CROISSANT, croissant(facts, CITATIONS))
