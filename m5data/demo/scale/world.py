"""The scale world: the demo world's taxonomy, titles and specs, generated chunk by chunk.

A world of N products is cut into chunks of ``chunk_size`` products; chunk ``k`` is a pure function
of (seed, k) and the world's taxonomy (itself a function of the seed and N), so chunks can be made
in any order, in parallel, and the same seed gives the same bytes. Duplicate groups (one instance
listed by several merchants), merchants and mismatched titles live inside one chunk.

Categories follow a Zipf-like long tail over the unified leaf categories (level-2 classes without
children and level-3 classes): about ``6232 * sqrt(N / 1M)`` of them, M5Product's 6,232 at 1M.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import asdict, dataclass
from functools import lru_cache

from .. import vocab
from ..entities import VIDEO_FPS, VIDEO_SIZE, Instance, Media, Product, WorldConfig
from ..media_plan import image_url, video_url
from ..taxonomy import PLATFORMS, Category, SubClass, Taxonomy
from ..world import describe_listing, make_instance

SCALE_VERSION = "1.0"
M5PRODUCT_CATEGORIES = 6232  # leaf categories of M5Product (6M products)
CLIP_FRAMES = 72  # 3 s at the demo's 24 fps: fidelity is not the point of this world
_SID_STEP = 999_999_937  # a prime: g -> (g * step) mod M is a bijection, so source ids never collide
_MERCHANT_SIZES = list(range(1, 11))
_MERCHANT_WEIGHTS = [30, 18, 12, 9, 7, 6, 5, 5, 4, 4]


@dataclass(frozen=True)
class ScaleConfig:
    """Size and rates of a scale world.

    Args:
        products: product listings over both platforms (at least 100).
        seed: the one seed every chunk derives from.
        chunk_size: products per chunk (the unit of parallel work and of the truth files).
        video_share: share of products with a (short, shared per class) video.
        leaf_categories: unified leaf categories; None: ``6232 * sqrt(products / 1M)`` (at least 30).
        duplicate_rate / cosmetics_duplicate_rate / mismatch_rate: the demo world's rates.
        missing_merchant_rate: share of products whose page names no merchant.
        zipf_offset: category k (by rank) has weight ``1 / (k + zipf_offset)``.
    """

    products: int = 10_000
    seed: int = 0
    chunk_size: int = 10_000
    video_share: float = 0.05
    leaf_categories: int | None = None
    duplicate_rate: float = WorldConfig.duplicate_rate
    cosmetics_duplicate_rate: float = WorldConfig.cosmetics_duplicate_rate
    mismatch_rate: float = WorldConfig.mismatch_rate
    missing_merchant_rate: float = 0.01
    zipf_offset: float = 10.0

    def n_leaf_categories(self) -> int:
        if self.leaf_categories is not None:
            return self.leaf_categories
        return max(30, round(M5PRODUCT_CATEGORIES * math.sqrt(self.products / 1_000_000)))

    def n_chunks(self) -> int:
        return -(-self.products // self.chunk_size)

    def chunk_range(self, index: int) -> tuple[int, int]:
        """Global product numbers ``[start, stop)`` of chunk ``index``."""
        start = index * self.chunk_size
        return start, min(self.products, start + self.chunk_size)

    def validate(self) -> None:
        if self.products < 100:
            raise ValueError("a scale world needs at least 100 products")
        if self.chunk_size < 100:
            raise ValueError("chunk_size must be at least 100")
        if not 0 <= self.video_share <= 1:
            raise ValueError("video_share must be between 0 and 1")
        if not 14 <= self.n_leaf_categories() <= self.products:
            raise ValueError(f"leaf categories must be between 14 and the product count ({self.products})")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Leaf:
    """A unified leaf category: a level-2 class and, where it has children, one level-3 class."""

    sub: SubClass
    subsub: tuple[int, str] | None
    categories: dict[str, Category]  # platform -> the category its products sit in there


class ScaleTaxonomy:
    """The demo taxonomy grown to the world's leaf count, its leaves ranked for the long tail."""

    def __init__(self, cfg: ScaleConfig):
        rng = random.Random(f"m5data-scale-taxonomy:{cfg.seed}:{cfg.products}")
        target = cfg.n_leaf_categories()
        n_sub = max(14, target - 76 if target > 676 else round(target * 599 / 676))
        self.tax = Taxonomy(rng, n_sub)
        subs = list(self.tax.subs)
        # sub-classes both platforms name slightly differently head the ranking: their alignment
        # rests on title content, so they need products (as in the demo world's allocation)
        near = [s for s in subs if len(s.presence) == 2 and s.kind == "near"]
        rest = [s for s in subs if s not in near]
        rng.shuffle(rest)
        leaves: list[Leaf] = []
        for sub in near + rest:
            for subsub in (sub.children or [None]):
                cats = {p: self.tax.category(p, sub, subsub) for p in sub.presence}
                leaves.append(Leaf(sub, subsub, cats))
        self.leaves = leaves
        cum, acc = [], 0.0
        for k in range(len(leaves)):
            acc += 1.0 / (k + cfg.zipf_offset)
            cum.append(acc)
        self.cum = cum

    def draw(self, rng: random.Random) -> Leaf:
        """One leaf, by its Zipf-like weight."""
        return self.leaves[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


@lru_cache(maxsize=2)
def scale_taxonomy(cfg: ScaleConfig) -> ScaleTaxonomy:
    """The world's taxonomy (built once per process: every chunk of a world shares it)."""
    return ScaleTaxonomy(cfg)


def source_id(platform: str, g: int) -> str:
    """The page id of global product number ``g``: 12 digits on shopa, 11 on shopb, never repeated."""
    if platform == "shopa":
        return str(6 * 10**11 + (g * _SID_STEP) % (4 * 10**11))
    return str(6 * 10**10 + (g * _SID_STEP) % (4 * 10**10))


@dataclass
class Chunk:
    """The instances and products of one chunk (products sorted by product_id)."""

    index: int
    instances: list[Instance]
    products: list[Product]


def _listing_platforms(rng: random.Random, sub: SubClass, size: int) -> list[str]:
    """Platforms of a group's listings: a duplicate group spans both platforms when it can."""
    if len(sub.presence) == 1:
        return [sub.presence[0]] * size
    first = list(PLATFORMS) if size > 1 else [rng.choice(PLATFORMS)]
    rng.shuffle(first)
    return first + [rng.choice(PLATFORMS) for _ in range(size - len(first))]


def _assign_merchants(rng: random.Random, cfg: ScaleConfig, index: int, products: list[Product]) -> None:
    """Merchants of 1-10 listings, never two of one instance; a few pages name no merchant."""
    for pi, platform in enumerate(PLATFORMS):
        items = [p for p in products if p.platform == platform]
        rng.shuffle(items)
        merchants: list[list[Product]] = []
        while items:
            size = rng.choices(_MERCHANT_SIZES, weights=_MERCHANT_WEIGHTS)[0]
            group, items = items[:size], items[size:]
            seen, kept, moved = set(), [], []
            for p in group:
                (moved if p.instance.instance_id in seen else kept).append(p)
                seen.add(p.instance.instance_id)
            merchants.append(kept)
            merchants += [[p] for p in moved]  # a repeat of an instance goes to a merchant of its own
        base = (10**9 if platform == "shopa" else 10**5) + index * 40_000
        suffixes = (["旗舰店", "专营店", "专卖店", "官方旗舰店", "企业店"] if platform == "shopa"
                    else ["京东自营旗舰店", "官方旗舰店", "专营店", "自营店"])
        for m, group in enumerate(merchants):
            name = (rng.choice(vocab.BRAND_HEAD) + rng.choice(vocab.BRAND_TAIL) +
                    rng.choice(vocab.BRAND_TAIL) + rng.choice(suffixes))
            for p in group:
                p.merchant_id, p.shop_name = str(base + m), name
                if rng.random() < cfg.missing_merchant_rate:
                    p.merchant_id = ""


def build_chunk(cfg: ScaleConfig, index: int) -> Chunk:
    """Instances and products of chunk ``index`` (pure: same config and index, same chunk)."""
    st = scale_taxonomy(cfg)
    rng = random.Random(f"m5data-scale-chunk:{cfg.seed}:{index}")
    start, stop = cfg.chunk_range(index)
    instances: list[Instance] = []
    products: list[Product] = []
    g = start
    while g < stop:
        leaf = st.draw(rng)
        rate = cfg.cosmetics_duplicate_rate if leaf.sub.class_id == 6 else cfg.duplicate_rate
        size = min(stop - g, rng.randint(2, 4) if rng.random() < rate else 1)
        inst = make_instance(rng, f"I{index:05d}{len(instances):06d}", leaf.sub, leaf.subsub, sound=False)
        instances.append(inst)
        for platform in _listing_platforms(rng, leaf.sub, size):
            p = Product(platform, source_id(platform, g), inst, leaf.categories[platform],
                        rng.getrandbits(32), rank=rng.random())
            inst.listings.append(p)
            products.append(p)
            g += 1
    _assign_merchants(rng, cfg, index, products)
    for p in products:
        _describe(rng, cfg, p, instances)
    products.sort(key=lambda p: p.product_id)
    return Chunk(index, instances, products)


def _describe(rng: random.Random, cfg: ScaleConfig, p: Product, instances: list[Instance]) -> None:
    """Caption instance, title, price, specs, template (``describe_listing``) and media URLs of one listing."""
    inst = p.instance
    if rng.random() < cfg.mismatch_rate:
        for _ in range(8):  # another sub-class's instance of this chunk describes it
            other = instances[rng.randrange(len(instances))]
            if other.sub.sub_id != inst.sub.sub_id:
                p.caption_instance = other
                break
    describe_listing(rng, p)
    size = rng.randint(48, 64)
    variant = {"crop": rng.randint(0, 3), "quality": rng.randint(75, 95),
               "brightness": round(rng.uniform(0.95, 1.05), 3)}
    render = {"type": "image", "visual": inst.visual, "variant": variant, "size": (size, size)}
    p.images.append(Media("image", "main", 0, image_url(rng, p, "jpg"), size, size, render))
    if rng.random() < cfg.video_share:
        w, h = VIDEO_SIZE[p.platform]
        p.video = Media("video", "video", 0, video_url(rng, p), w, h, {"type": "video", "clip": clip_url(p)},
                        duration_s=CLIP_FRAMES / VIDEO_FPS, fps=VIDEO_FPS, has_audio=True)


def clip_url(p: Product) -> str:
    """The shared clip a product's video is a copy of: one per platform and level-1 class."""
    return f"/clips/{p.platform}-class{p.instance.sub.class_id:02d}.mp4"
