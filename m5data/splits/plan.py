"""Split sizes: the paper's proportions scaled to a store, turned into frozen hash thresholds (a plan).

A size setting is a count (``"24410"``), a fraction of the store's products (``"0.003867"``) or,
for train, ``"rest"``. :func:`make_plan` turns the sizes and the store's counts into *rates*: the
probability thresholds that the hash of a product's stable key is compared against. The plan is
written into the version's manifest; rebuilding the same version reuses it unchanged, so a product
added later never moves the thresholds (and never moves an existing product).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .. import config as cfg
from ..storage.names import name_problem, shown

PAPER_PRODUCTS = 6_313_067  # M5Product's products; the default fractions are the paper's counts over it
SIZE_KEYS = ("train", "query_c", "gallery_c", "query_fg", "gallery_fg", "cls_products", "subset")
# the settings that define a version: rebuilding a version with other values needs a new version name
PLAN_KEYS = SIZE_KEYS + ("seed", "min_queries", "coarse_level", "fg_classes", "cls_classes", "cls_test",
                         "cls_min_per_class", "cls_level")
SPLITS = ("train", "query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test", "subset")
EXCLUSIVE = SPLITS[:-1]  # a product is in at most one of these per version (subset lies inside train)


@dataclass(frozen=True)
class Size:
    """One size setting: ``kind`` is count, fraction or rest."""

    kind: str
    value: float = 0.0

    def target(self, base: int) -> float:
        """The number of products this size asks for out of ``base``."""
        if self.kind == "count":
            return float(self.value)
        if self.kind == "fraction":
            return self.value * base
        return float(base)


def parse_size(key: str, text: str, *, allow_rest: bool = False) -> Size:
    """Parse ``splits.<key>``: an integer is a count, a number with a point a fraction in [0, 1]."""
    raw = str(text).strip().replace("_", "").replace(",", "")
    if allow_rest and raw.lower() == "rest":
        return Size("rest")
    try:
        if any(c in raw for c in ".eE"):
            value = float(raw)
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise ValueError
            return Size("fraction", value)
        value = int(raw)
        if value < 0:
            raise ValueError
        return Size("count", value)
    except ValueError:
        rest = " or 'rest'" if allow_rest else ""
        raise cfg.ConfigError(f"config splits.{key} must be a count (24410), a fraction in [0, 1] (0.0039){rest}; "
                              f"got {text!r}") from None


def fg_class_ids(s: cfg.SplitsSettings) -> list[int]:
    try:
        ids = sorted({int(x) for x in str(s.fg_classes).replace(" ", "").split(",") if x})
    except ValueError:
        raise cfg.ConfigError(f"config splits.fg_classes must be comma-separated class ids, got {s.fg_classes!r}") from None
    return ids


def check_settings(settings: cfg.Settings) -> None:
    """Reject bad ``[splits]`` values before any work."""
    s = settings.splits
    for key in SIZE_KEYS:
        parse_size(key, getattr(s, key), allow_rest=key == "train")
    parse_size("cls_classes", s.cls_classes)
    fg_class_ids(s)
    for key in ("coarse_level", "cls_level"):
        if getattr(s, key) not in (1, 2, 3):
            raise cfg.ConfigError(f"config splits.{key} must be 1, 2 or 3, got {getattr(s, key)!r}")
    if not 0.0 < s.cls_test < 1.0:
        raise cfg.ConfigError(f"config splits.cls_test must be in (0, 1), got {s.cls_test!r}")
    for key in ("min_queries", "threads"):
        if getattr(s, key) < 0:
            raise cfg.ConfigError(f"config splits.{key} must be >= 0, got {getattr(s, key)!r}")
    if not s.replan_share >= 0:
        raise cfg.ConfigError(f"config splits.replan_share must be >= 0, got {s.replan_share!r}")
    if s.cls_min_per_class < 2:
        raise cfg.ConfigError(f"config splits.cls_min_per_class must be >= 2 (one train and one test product), "
                              f"got {s.cls_min_per_class!r}")
    if (problem := name_problem(s.version)) is not None:  # it names a folder: derived/splits/<version>/
        raise cfg.ConfigError(f"config splits.version must be a plain name ({problem}), got {shown(s.version)}")


def plan_params(s: cfg.SplitsSettings) -> dict:
    """The settings that define a version (compared when a version is rebuilt)."""
    out = {k: getattr(s, k) for k in PLAN_KEYS}
    out["fg_classes"] = ",".join(str(i) for i in fg_class_ids(s))
    return out


@dataclass
class PlanCounts:
    """What the plan is computed from (one SQL pass over the store at the version's first build)."""

    products: int
    labeled: int  # products with a unified label
    domain: int  # products whose duplicate group touches the fine-grained domain
    domain_multi: int  # ... and whose group has two or more products (possible fine-grained queries)
    categories: dict[str, int]  # classification category key ("class/sub/subsub") -> products


@dataclass
class Plan:
    """Frozen thresholds of one split version (stored in its manifest)."""

    version: str
    params: dict
    counts: dict
    targets: dict = field(default_factory=dict)  # expected products per split
    r_fine: float = 0.0  # share of the domain's duplicate groups (2+ products) in the fine-grained pool
    q_fine: float = 0.0  # share of those pooled grouped products drawn as query-fg
    r_fine_single: float = 0.0  # share of the domain's lone products in the pool (gallery-fg distractors)
    cls_rates: dict = field(default_factory=dict)  # category key -> share of its groups in classification
    r_coarse: float = 0.0  # share of the remaining labelled groups in the coarse pool
    q_coarse: float = 0.0  # share of the coarse pool drawn as query-c
    r_train: float = 1.0  # share of the remaining groups in train (1 = rest)
    r_subset: float = 0.0  # share of train's groups also in subset

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _rate(want: float, have: float) -> float:
    return 0.0 if have <= 0 or want <= 0 else min(1.0, want / have)


def make_plan(version: str, s: cfg.SplitsSettings, counts: PlanCounts, category_order: list[str]) -> Plan:
    """Turn sizes and counts into thresholds.

    Args:
        version: the split version.
        s: the ``[splits]`` settings.
        counts: the store's counts at this first build.
        category_order: eligible classification categories in seeded hash order (the sample is a prefix).
    """
    n = counts.products
    size = {k: parse_size(k, getattr(s, k), allow_rest=k == "train") for k in SIZE_KEYS}
    plan = Plan(version, plan_params(s), dataclasses.asdict(counts) | {"categories": len(counts.categories)})
    t = plan.targets

    # fine-grained pool: the domain's duplicate groups give the queries and their matches (about two
    # grouped products per query, half drawn as queries); lone domain products are the distractors.
    # Without duplicate groups there is no instance query: the domain stays in the other splits.
    want_q = max(size["query_fg"].target(n), s.min_queries) if counts.domain_multi else 0.0
    plan.r_fine = _rate(2 * want_q, counts.domain_multi)
    grouped = plan.r_fine * counts.domain_multi
    plan.q_fine = _rate(want_q, grouped)
    t["query-fg"] = min(want_q, grouped / 2)  # a group keeps at least one gallery product
    matched = grouped - t["query-fg"]
    want_g = size["gallery_fg"].target(n) if counts.domain_multi else 0.0
    single = counts.domain - counts.domain_multi
    plan.r_fine_single = _rate(want_g - matched, single)
    t["gallery-fg"] = matched + plan.r_fine_single * single
    fine = grouped + plan.r_fine_single * single

    # classification: a seeded sample of the eligible categories, about t_per_class products each
    eligible = category_order
    k = parse_size("cls_classes", s.cls_classes)
    n_cls = int(min(len(eligible), k.value if k.kind == "count" else round(k.value * len(eligible))))
    if k.kind == "fraction" and k.value > 0 and eligible:
        n_cls = max(n_cls, 1)
    chosen = eligible[:n_cls]
    want = size["cls_products"].target(n)
    per_class = max(float(s.cls_min_per_class), want / n_cls) if n_cls else 0.0
    plan.cls_rates = {c: _rate(per_class, counts.categories[c]) for c in chosen}
    cls = sum(min(per_class, counts.categories[c]) for c in chosen)
    t["cls-test"] = cls * s.cls_test
    t["cls-train"] = cls - t["cls-test"]

    # coarse retrieval: labelled groups left after the fine-grained and classification pools
    t["query-c"] = max(size["query_c"].target(n), s.min_queries)
    t["gallery-c"] = size["gallery_c"].target(n)
    left = max(0.0, counts.labeled - fine - cls)
    plan.r_coarse = _rate(t["query-c"] + t["gallery-c"], left)
    plan.q_coarse = _rate(t["query-c"], t["query-c"] + t["gallery-c"])
    coarse = plan.r_coarse * left
    t["query-c"] = min(t["query-c"], coarse * plan.q_coarse)
    t["gallery-c"] = coarse - t["query-c"]

    # train: everything else (or a share of it); subset: a share of train
    rest = max(0.0, n - fine - cls - coarse)
    plan.r_train = 1.0 if size["train"].kind == "rest" else _rate(size["train"].target(n), rest)
    t["train"] = plan.r_train * rest
    sub = size["subset"]
    plan.r_subset = sub.value if sub.kind == "fraction" else _rate(sub.value, t["train"])
    t["subset"] = plan.r_subset * t["train"]
    plan.targets = {k2: round(v, 1) for k2, v in t.items()}
    return plan
