"""Owners' opt-outs and licences in the demo shop (``WorldConfig.optouts``; docs/compliance.md).

With the field on, a few products' pages carry each kind of opt-out: an ``X-Robots-Tag: noai``
header, a ``tdm-reservation: 1`` header, a ``<meta name="tdm-reservation" content="1">``, a
location of ``/.well-known/tdmrep.json``, and (not an opt-out) an ``X-Robots-Tag`` scoped to
another agent; a few images answer ``X-Robots-Tag: noimageai``; a few pages state a licence
(``<link rel="license">``). They are drawn from their own random stream, after the world is made,
so a world without the field is byte for byte what it was. The truth is ``truth/optouts.json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# page kind -> (the response headers it adds, whether it opts out)
PAGE_KINDS = {
    "x-robots-tag": ({"X-Robots-Tag": "noai, noimageai"}, True),
    "tdm-header": ({"tdm-reservation": "1"}, True),
    "tdm-meta": ({}, True),
    "tdmrep.json": ({}, True),
    "other-agent": ({"X-Robots-Tag": "otherbot: noai"}, False),
}
LICENSE = "https://creativecommons.org/licenses/by-nc/4.0/"
TDMREP = ".well-known/tdmrep.json"
TRUTH = "optouts.json"
_FREE = frozenset({"none"})  # products without a page fault, so that each kind is read as it is


def plan(world) -> dict:
    """Which products and images carry what: ``{"pages": {product_id: kind}, "media": [urls],
    "licensed": [product_ids]}`` (one product per page kind, two images, two licensed pages)."""
    rng = random.Random(f"optouts:{world.config.seed}")
    free = sorted((p for p in world.products if p.page_fault in _FREE and p.http_fault in _FREE),
                  key=lambda p: p.product_id)
    rng.shuffle(free)
    pages = {}
    for kind in PAGE_KINDS:
        if free:
            pages[free.pop().product_id] = kind
    with_images = [p for p in free if any(m.fault in _FREE for m in p.images)]
    media = sorted(next(m.url for m in p.images if m.fault in _FREE) for p in with_images[:2])
    licensed = sorted(p.product_id for p in with_images[2:4])
    return {"pages": pages, "media": media, "licensed": licensed}


def apply(world, site: Path, faults: dict) -> dict:
    """Write the plan into the site (metas, licence links, tdmrep.json) and the server's headers
    (``faults["headers"]``: path -> headers); return the plan, the truth to write."""
    chosen = plan(world)
    by_id = {p.product_id: p for p in world.products}
    headers: dict[str, dict[str, str]] = {}
    locations = []
    for pid, kind in chosen["pages"].items():
        url = by_id[pid].url
        if PAGE_KINDS[kind][0]:
            headers[url] = PAGE_KINDS[kind][0]
        if kind == "tdm-meta":
            _insert_in_head(site / url.lstrip("/"), b'<meta name="tdm-reservation" content="1">')
        elif kind == "tdmrep.json":
            locations.append({"location": url, "tdm-reservation": 1})
    for pid in chosen["licensed"]:
        _insert_in_head(site / by_id[pid].url.lstrip("/"), f'<link rel="license" href="{LICENSE}">'.encode())
    for url in chosen["media"]:
        headers[url] = {"X-Robots-Tag": "noimageai"}
    (site / TDMREP).parent.mkdir(parents=True, exist_ok=True)
    (site / TDMREP).write_text(json.dumps(locations + [{"location": "/", "tdm-reservation": 0}], indent=1) + "\n")
    faults["headers"] = headers
    return chosen


def write_truth(chosen: dict, truth_dir: Path) -> None:
    """``truth/optouts.json``: the plan, with each page kind's verdict (``opted_out``)."""
    # a kind not of PAGE_KINDS (the robots metas of cases.py, added by generate) opts out
    out = {"pages": {pid: {"kind": kind, "opted_out": PAGE_KINDS.get(kind, ({}, True))[1]}
                     for pid, kind in sorted(chosen["pages"].items())},
           "media": chosen["media"], "licensed": {pid: LICENSE for pid in chosen["licensed"]}}
    (truth_dir / TRUTH).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _insert_in_head(path: Path, tag: bytes) -> None:
    """Put ``tag`` right after ``<head>`` (ASCII: the same bytes in the page's GBK or UTF-8)."""
    body = path.read_bytes()
    path.write_bytes(body.replace(b"<head>", b"<head>" + tag, 1))
