"""Real-world faults of the demo shop: dead links, corrupt media, malformed pages, flaky URLs.

Media and page faults are drawn at the configured rates; with ``force_faults`` every kind occurs
at least once (from 30 products on) so that a small test world exercises each of them.
"""

from __future__ import annotations

import random

from .entities import Media, Product, WorldConfig

IMAGE_FAULTS = ["dead_404", "corrupt_truncated", "corrupt_not_image", "corrupt_zero_bytes",
                "transient_500", "slow"]
VIDEO_FAULTS = ["dead_404", "corrupt_truncated", "corrupt_zero_bytes", "transient_500", "slow"]
PAGE_FAULTS = ["missing_title", "missing_specs", "missing_breadcrumb", "broken_html", "wrong_charset"]
HTTP_FAULTS = ["transient_500", "slow"]
# Faults after which the media still arrives intact (a retry or patience gets it).
MEDIA_OK = frozenset({"none", "transient_500", "slow"})


def _pick(rng: random.Random, rates: list[tuple[str, float]]) -> str:
    r = rng.random()
    for name, rate in rates:
        if r < rate:
            return name
        r -= rate
    return "none"


def _ensure(rng: random.Random, items: list, kinds: list[str], attr: str) -> None:
    """Give each fault kind that did not occur to one item that has no fault yet."""
    for kind in kinds:
        if not any(getattr(i, attr) == kind for i in items):
            free = [i for i in items if getattr(i, attr) == "none"]
            if free:
                setattr(rng.choice(free), attr, kind)


def assign_faults(rng: random.Random, cfg: WorldConfig, products: list[Product]) -> None:
    """Draw media, page and HTTP faults for every product, in product_id order."""
    images: list[Media] = [m for p in products for m in p.images]
    videos: list[Media] = [p.video for p in products if p.video is not None]
    corrupt = cfg.corrupt_image_rate / 3
    image_rates = [("dead_404", cfg.dead_image_rate), ("corrupt_truncated", corrupt),
                   ("corrupt_not_image", corrupt), ("corrupt_zero_bytes", corrupt),
                   ("transient_500", cfg.transient_rate), ("slow", cfg.slow_rate)]
    video_rates = [("dead_404", cfg.dead_video_rate),
                   ("corrupt_truncated", cfg.corrupt_video_rate * 2 / 3),
                   ("corrupt_zero_bytes", cfg.corrupt_video_rate / 3),
                   ("transient_500", cfg.transient_rate), ("slow", cfg.slow_rate)]
    page_rates = [(k, cfg.page_fault_rate / len(PAGE_FAULTS)) for k in PAGE_FAULTS]
    http_rates = [("transient_500", cfg.transient_rate), ("slow", cfg.slow_rate)]
    for m in images:
        m.fault = _pick(rng, image_rates)
    for m in videos:
        m.fault = _pick(rng, video_rates)
    for p in products:
        p.page_fault = _pick(rng, page_rates)
        p.http_fault = _pick(rng, http_rates)
    if cfg.force_faults and len(products) >= 30:
        _ensure(rng, images, IMAGE_FAULTS, "fault")
        _ensure(rng, videos, VIDEO_FAULTS, "fault")
        _ensure(rng, products, PAGE_FAULTS, "page_fault")
        _ensure(rng, products, HTTP_FAULTS, "http_fault")
        if not any(p.caption_mismatched for p in products):
            _mismatch_one(rng, products)
    for p in products:
        if p.page_fault == "missing_title":
            p.caption_instance = None  # no title, so no caption to mismatch


def _mismatch_one(rng: random.Random, products: list[Product]) -> None:
    """Make one title describe a product of another sub-class (a poorly matched caption)."""
    from . import text

    p = rng.choice([p for p in products if p.page_fault != "missing_title"])
    others = [q.instance for q in products if q.instance.sub.sub_id != p.instance.sub.sub_id]
    if not others:
        return
    p.caption_instance = rng.choice(others)
    p.title = text.title(rng, p.platform, p.caption_instance)


def expected_modalities(p: Product) -> dict[str, bool]:
    """The five modalities a correct pipeline should end up with for this product."""
    video_ok = p.video is not None and p.video.fault in MEDIA_OK
    return {
        "expect_image": any(m.fault in MEDIA_OK for m in p.images),
        "expect_text": p.page_fault != "missing_title" and bool(p.title),
        "expect_video": video_ok,
        "expect_audio": video_ok and p.video.has_audio,
        "expect_table": p.page_fault != "missing_specs" and bool(p.specs),
    }
