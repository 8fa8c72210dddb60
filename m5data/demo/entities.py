"""The demo world's records: its config, instances, product listings and media plans.

They sit below ``world.py`` (which builds them) and the modules that fill them in
(``faults.py``, ``media_plan.py``), so that every arrow between those modules runs one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .taxonomy import Category, SubClass, Taxonomy

GENERATOR_VERSION = "1.0"
IMAGE_SIZES = {"shopa": [(800, 800)] * 6 + [(750, 750), (640, 640), (430, 430)],
               "shopb": [(800, 800)] * 5 + [(750, 750), (500, 500), (350, 350), (220, 220)]}
VIDEO_SIZE = {"shopa": (256, 256), "shopb": (320, 180)}
VIDEO_FPS = 24


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and fault rates of a demo world; the defaults follow the papers' rates.

    Args:
        products: number of product listings over both platforms (at least 10).
        seed: the one seed every choice derives from.
        subclasses: unified level-2 classes; None picks about ``min(products // 4, 200 + products // 10)``
            (at least 14, one per level-1 class, where products allow).
        video_rate / audio_rate: share of products with a video, share of videos with audio.
        duplicate_rate: share of instances listed by several merchants (cosmetics_duplicate_rate in class 6).
        mismatch_rate: share of products whose title describes another product.
        dead_image_rate, corrupt_image_rate, dead_video_rate, corrupt_video_rate: media faults.
        transient_rate, slow_rate: URLs that answer 500 once, or answer slowly.
        page_fault_rate: product pages with a missing field, broken HTML or a wrong charset.
        force_faults: guarantee every fault kind at least once (from 30 products on), for tests.
        page_size_shopa / page_size_shopb: products per listing page (Tmall 20, JD 30; tests use less).
        optouts: a few pages and images state opt-outs (X-Robots-Tag, TDMRep) and licences
            (``demo/optouts.py``; off: the world is byte for byte what it was without the field).
        contact_products: listings with a phone number, e-mail or WeChat/QQ handle in the title or a
            spec row (contacts.py; the truth's ``contacts`` table); 0 (the default) keeps the world as it was.
        egress_cases: what must never leave in an export or the report (cases.py, ``truth/cases.json``): robots.txt
            disallowing two media files for m5data, robots metas, a later opt-out, a face in a video and an
            image, contacts in every field; off (the default) keeps the world as it was.
        image_scale: every listing image's width and height times this (1.0, the default: the platforms'
            sizes, up to 800x800). A lighter world for quick runs: the test suite's light shop uses 0.5,
            a quarter of the pixels to decode, normalise and look for faces in; the world is otherwise the same.
    """

    products: int = 300
    seed: int = 0
    subclasses: int | None = None
    video_rate: float = 0.85
    audio_rate: float = 0.97
    duplicate_rate: float = 0.06
    cosmetics_duplicate_rate: float = 0.35
    mismatch_rate: float = 0.03
    no_image_rate: float = 0.004
    dead_image_rate: float = 0.013
    corrupt_image_rate: float = 0.006
    dead_video_rate: float = 0.005
    corrupt_video_rate: float = 0.015
    transient_rate: float = 0.01
    slow_rate: float = 0.005
    page_fault_rate: float = 0.04
    force_faults: bool = True
    page_size_shopa: int = 20
    page_size_shopb: int = 30
    optouts: bool = False
    contact_products: int = 0
    egress_cases: bool = False
    image_scale: float = 1.0

    def page_size(self, platform: str) -> int:
        """Products per listing page of a platform."""
        return self.page_size_shopa if platform == "shopa" else self.page_size_shopb

    def n_subclasses(self) -> int:
        """The number of unified level-2 classes this world has."""
        if self.subclasses is not None:
            return self.subclasses
        return max(min(14, self.products // 2), min(self.products // 4, 200 + self.products // 10))

    def validate(self) -> None:
        """Reject sizes that cannot make a world: every sub-class needs products on its platforms."""
        if self.products < 10:
            raise ValueError("a demo world needs at least 10 products")
        if not 1 <= self.n_subclasses() <= self.products // 2:
            raise ValueError(f"subclasses must be between 1 and products // 2 ({self.products // 2})")
        if min(self.page_size_shopa, self.page_size_shopb) < 1:
            raise ValueError("page sizes must be at least 1")


@dataclass
class Media:
    """One media URL of a product page and how to render (or break) the file behind it."""

    kind: str
    role: str
    position: int
    url: str
    width: int
    height: int
    render: dict
    fault: str = "none"
    duration_s: float = 0.0
    fps: int = 0
    has_audio: bool = False


@dataclass
class Instance:
    """A physical product; several merchants may list it (ground truth for dedup and instance retrieval)."""

    instance_id: str
    sub: SubClass
    subsub: tuple[int, str] | None
    brand: str
    model: str
    noun: str
    color: str
    specs: list[tuple[str, str]]
    base_price: float
    visual: dict
    listings: list["Product"] = field(default_factory=list)


@dataclass
class Product:
    """One product page: a listing of an instance by a merchant on a platform."""

    platform: str
    source_id: str
    instance: Instance
    category: Category
    seed: int
    price: float = 0.0
    merchant_id: str = ""
    shop_name: str = ""
    title: str = ""
    caption_instance: Instance | None = None
    specs: list[tuple[str, str]] = field(default_factory=list)
    images: list[Media] = field(default_factory=list)
    video: Media | None = None
    template: str = ""
    page_fault: str = "none"
    http_fault: str = "none"
    rank: float = 0.0
    contacts: list[dict] = field(default_factory=list)  # contact details added to it (contacts.py)

    @property
    def product_id(self) -> str:
        return f"{self.platform}:{self.source_id}"

    @property
    def url(self) -> str:
        return f"/{self.platform}/item/{self.source_id}.html"

    @property
    def caption_mismatched(self) -> bool:
        return self.caption_instance is not None


@dataclass
class World:
    """Everything generated from one config: taxonomy, instances and products (sorted by product_id)."""

    config: WorldConfig
    taxonomy: Taxonomy
    instances: list[Instance]
    products: list[Product]
