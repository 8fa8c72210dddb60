"""The demo shop's world: instances, product listings, merchants and media, all from one seed.

``build_world(WorldConfig(products=300, seed=0))`` is pure and deterministic: it touches no files,
draws every choice from one ``random.Random(seed)`` and never iterates a set or hashes a string.
Rendering (``site.py``, ``media.py``) and the truth (``truth.py``) only read the result.
"""

from __future__ import annotations

import colorsys
import random

from . import faults, media_plan, text, vocab
from .contacts import add_contacts
from .entities import (  # noqa: F401 (re-exported)
    GENERATOR_VERSION,
    IMAGE_SIZES,
    VIDEO_FPS,
    VIDEO_SIZE,
    Instance,
    Media,
    Product,
    World,
    WorldConfig,
)
from .taxonomy import PLATFORMS, SubClass, Taxonomy


def hsv_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """A 0-255 (r, g, b) colour from a hue in degrees (any, taken mod 360), a saturation and a value in 0..1."""
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _zipf_counts(rng: random.Random, n_items: int, total: int, s: float = 0.9) -> list[int]:
    """Split ``total`` draws over ``n_items`` ranks with Zipf-like weights 1 / rank**s."""
    cum, acc = [], 0.0
    for r in range(n_items):
        acc += 1.0 / (r + 1) ** s
        cum.append(acc)
    counts = [0] * n_items
    for i in rng.choices(range(n_items), cum_weights=cum, k=total):
        counts[i] += 1
    return counts


RENAMED_TITLES_PER_PLATFORM = 8  # titles a renamed sub-class gets per platform when the budget allows


def _allocate(rng: random.Random, subs: list[SubClass], products: int) -> dict[int, dict[str, int]]:
    """Products per sub-class and platform: long-tailed, at least one per platform it is on.

    Sub-classes that the two platforms name slightly differently (``near``) head the ranking and
    get a floor of titles per platform, as far as the budget allows: their alignment rests on
    title content (MEP-3M's sub-classes averaged hundreds of titles), while identically named ones
    align by name whatever their size.
    """
    showcase, rest = list(subs[:14]), list(subs[14:])  # Taxonomy lists the showcase ones first
    rng.shuffle(rest)
    ranked: list[SubClass] = []
    while showcase or rest:  # showcase sub-classes sit near the head so both platforms list them
        for part in (showcase, rest):
            if part:
                ranked.append(part.pop(0))
    # only near pairs need content: different names never pass S_label >= 0.50 and finer labels
    # come from the breadcrumb, so the title budget goes to near pairs first
    renamed = [s for s in ranked if len(s.presence) == 2 and s.kind == "near"]
    ranked = renamed + [s for s in ranked if s not in renamed]
    minimum = sum(len(s.presence) for s in ranked)
    floor = min(RENAMED_TITLES_PER_PLATFORM - 1, (products - minimum) // (2 * len(renamed) or 1))
    extra = _zipf_counts(rng, len(ranked), products - minimum - 2 * floor * len(renamed))
    out: dict[int, dict[str, int]] = {}
    for sub, n in zip(ranked, extra):
        if len(sub.presence) == 1:
            out[sub.sub_id] = {sub.presence[0]: 1 + n}
        else:
            base = 1 + (floor if sub in renamed else 0)
            n_a = base + sum(rng.random() < 0.5 for _ in range(n))
            out[sub.sub_id] = {"shopa": n_a, "shopb": 2 * base + n - n_a}
    return out


def _instances_of(rng: random.Random, cfg: WorldConfig, sub: SubClass, slots: list[str],
                  next_id: int, force_dup: bool) -> list[tuple[Instance, list[str]]]:
    """Group a sub-class's listing slots into instances, some listed several times.

    With ``force_dup`` the first instance is listed up to three times, on both platforms if the
    sub-class is on both, so that even a small world has duplicate listings to find.
    """
    rng.shuffle(slots)
    if force_dup and all(p in slots for p in PLATFORMS):
        first = [slots.index(p) for p in PLATFORMS]
        slots[:] = list(PLATFORMS) + [s for i, s in enumerate(slots) if i not in first]
    dup_rate = cfg.cosmetics_duplicate_rate if sub.class_id == 6 else cfg.duplicate_rate
    children = list(sub.children)
    rng.shuffle(children)
    out = []
    while slots:
        size = rng.randint(2, 4) if rng.random() < dup_rate else 1
        if force_dup and not out:
            size = 3
        group, slots = slots[:size], slots[size:]
        subsub = None
        if children:  # level-3 classes are long-tailed too
            subsub = rng.choices(children, weights=[1 / (i + 1) for i in range(len(children))])[0]
        out.append((make_instance(rng, f"I{next_id + len(out):06d}", sub, subsub), group))
    return out


def make_instance(rng: random.Random, iid: str, sub: SubClass, subsub: tuple | None, *, sound: bool = True) -> Instance:
    """One product of ``sub`` (level-3 class ``subsub`` or None): noun, brand, model, colour, base
    price, specs and the look of its media; ``sound`` adds its audio's tones (the scale world has no audio).
    The scale world builds its instances here too, so both worlds' products are the same kind of thing."""
    style = vocab.CLASS_STYLE[sub.class_id]
    noun = rng.choice(sub.child_nouns[subsub[0]]) if subsub else rng.choice(sub.nouns)
    brand, model = rng.choice(sub.brands), text.model_code(rng)
    color = rng.choice(sub.colors)
    low, high = style[3]
    price = round(low * (high / low) ** (rng.random() ** 1.5), 0)
    visual = {
        "bg": hsv_rgb(style[0] + rng.uniform(-12, 12), 0.18, 0.96),
        "fg": hsv_rgb(sub.sub_id * 47, 0.65, 0.75),
        "shape": sub.sub_id % 8,
        "stripes": (subsub[0] % 5 + 1) if subsub else 0,
        "accent": hsv_rgb(rng.uniform(0, 360), 0.85, 0.9),
        "seed": rng.getrandbits(31),
        "label": model[:12],
    }
    if sound:  # drawn after the look, before the specs: the demo world's random stream as it always was
        visual["tone"] = 180 + (sub.sub_id * 37) % 500
        visual["tone2"] = 200 + rng.randint(0, 600)
        visual["tremolo"] = round(rng.uniform(1.0, 8.0), 2)
    return Instance(iid, sub, subsub, brand, model, noun, color,
                    text.instance_specs(rng, sub.class_id, brand, model, color), price, visual)


def _assign_merchants(rng: random.Random, products: list[Product]) -> None:
    """Give each platform's products to merchants of 1-10 listings, never two of one instance."""
    for platform in PLATFORMS:
        items = [p for p in products if p.platform == platform]
        rng.shuffle(items)
        merchants: list[list[Product]] = []
        while items:
            size = rng.choices(range(1, 11), weights=[30, 18, 12, 9, 7, 6, 5, 5, 4, 4])[0]
            merchants.append(items[:size])
            items = items[size:]
        for group in list(merchants):  # a merchant lists an instance once: move repeats elsewhere
            seen: set[str] = set()
            for p in list(group):
                iid = p.instance.instance_id
                if iid in seen:
                    group.remove(p)
                    target = next((g for g in merchants
                                   if all(q.instance.instance_id != iid for q in g)), None)
                    if target is None:
                        target = []
                        merchants.append(target)
                    target.append(p)
                seen.add(iid)
        ids = rng.sample(range(10**9, 10**10) if platform == "shopa" else range(10**5, 10**8),
                         len(merchants))
        suffixes = (["旗舰店", "专营店", "专卖店", "官方旗舰店", "企业店"] if platform == "shopa"
                    else ["京东自营旗舰店", "官方旗舰店", "专营店", "自营店"])
        for mid, group in zip(ids, merchants):
            name = (rng.choice(vocab.BRAND_HEAD) + rng.choice(vocab.BRAND_TAIL) +
                    rng.choice(vocab.BRAND_TAIL) + rng.choice(suffixes))
            for p in group:
                p.merchant_id, p.shop_name = str(mid), name


def build_world(cfg: WorldConfig) -> World:
    """Generate the whole world (no files): taxonomy, instances, products, media plans, faults."""
    cfg.validate()
    rng = random.Random(cfg.seed)
    tax = Taxonomy(random.Random(rng.getrandbits(64)), cfg.n_subclasses())
    counts = _allocate(rng, tax.subs, cfg.products)
    instances: list[Instance] = []
    products: list[Product] = []
    used_ids: set[str] = set()
    biggest = sorted(tax.subs, key=lambda s: -sum(counts[s.sub_id].values()))[:3]
    forced = {s.sub_id for s in biggest} if cfg.force_faults and cfg.products >= 30 else set()
    for sub in tax.subs:
        slots = [p for p in PLATFORMS for _ in range(counts[sub.sub_id].get(p, 0))]
        for inst, platforms in _instances_of(rng, cfg, sub, slots, len(instances) + 1,
                                             sub.sub_id in forced):
            instances.append(inst)
            for platform in platforms:
                while True:
                    digits = 12 if platform == "shopa" or rng.random() < 0.5 else 11
                    sid = str(rng.randrange(6 * 10 ** (digits - 1), 10**digits))
                    if sid not in used_ids:
                        used_ids.add(sid)
                        break
                p = Product(platform, sid, inst, tax.category(platform, sub, inst.subsub),
                            rng.getrandbits(32), rank=rng.random())
                inst.listings.append(p)
                products.append(p)
    _assign_merchants(rng, products)
    for p in products:
        _describe(rng, cfg, p, instances)
        media_plan.plan_media(rng, cfg, p)
    products.sort(key=lambda p: p.product_id)
    faults.assign_faults(rng, cfg, products)
    if cfg.contact_products:
        add_contacts(cfg, products)
    return World(cfg, tax, instances, products)


def _describe(rng: random.Random, cfg: WorldConfig, p: Product, instances: list[Instance]) -> None:
    """Title, price, specs and page template of one listing."""
    inst = p.instance
    if rng.random() < cfg.mismatch_rate:
        others = [i for i in instances if i.sub.sub_id != inst.sub.sub_id]
        p.caption_instance = rng.choice(others) if others else None
    describe_listing(rng, p)


def describe_listing(rng: random.Random, p: Product) -> None:
    """Title, price, specs and page template of listing ``p``, its caption instance already chosen
    (the demo and the scale world both)."""
    inst = p.instance
    p.title = text.title(rng, p.platform, p.caption_instance or inst)
    price = max(1.0, round(inst.base_price * rng.uniform(0.85, 1.15), 0) - rng.choice([0, 0.1, 0.01]))
    p.price = round(price, 2)
    p.specs = text.listing_specs(rng, inst.specs)
    p.template = "shopb" if p.platform == "shopb" else ("shopa-table" if rng.random() < 0.7 else "shopa-dl")
