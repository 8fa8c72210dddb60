"""The dedup job: products -> duplicate groups (``dedup`` table), a global job over the store.

Rules, strongest first (each accepted pair is one edge; groups are the connected components):

- ``exact_image``: the same main-image blob (sha256).
- ``exact_title``: the same normalised title (NFKC, lower case, no whitespace) from the same merchant;
  a missing merchant (null, empty, whitespace) is unknown, never "the same", so such products need
  another rule's evidence.
- ``phash``: main images within ``dedup_phash_threshold`` bits of pHash (found by a multi-index).
- ``minhash``: title shingle sets with estimated Jaccard >= ``dedup_minhash_threshold`` (MinHash/LSH).
- ``spec``: the same brand and agreeing values on every property both pages list (at least
  ``dedup_spec_min_shared`` besides the brand); candidates from MinHash/LSH over ``property=value`` sets.

With ``dedup_spec_veto`` a ``phash`` or ``minhash`` pair whose pages name different brands, or
disagree on their shared properties, is rejected: look-alike photos of one sub-class and
boilerplate titles are common, a different brand or model number is not a duplicate.

Spec values as compared (:func:`read_inputs`): NFKC, lower case, no whitespace; a page may list a
property several times, so a property holds the set of all its values, and two pages agree on it
when the sets intersect (one lists the colour it sells, the other all five). Values that look like
ranges, dates or free text (:func:`noisy_value`) are not compared: on real tables they differ
between listings of one product (date first available, "3km-5km", shipping notes) and would veto
every match. The brand is compared with its spellings: ``美的(Midea)`` and ``Midea/美的`` agree.

Each product's row names the strongest accepted pair that touches it (rule, the other product,
distance); ``group_id`` is the smallest product_id of its group, so ids survive re-runs and new
products. The table is replaced whole at the end of a run (atomic): an interrupted run leaves the
previous table, and a re-run computes the same rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import config as cfg
from ..storage import StageStats, record_run
from . import near

Progress = Callable[[str, int, int], None]
RULES = ("exact_image", "exact_title", "phash", "minhash", "spec")  # strongest first


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``annotate.dedup_*`` values before any work."""
    a = s.annotate
    if not 0 <= a.dedup_phash_threshold <= 64:
        raise cfg.ConfigError(f"config annotate.dedup_phash_threshold must be in 0..64, got {a.dedup_phash_threshold!r}")
    if not 1 <= a.dedup_phash_bands <= 64:
        raise cfg.ConfigError(f"config annotate.dedup_phash_bands must be in 1..64, got {a.dedup_phash_bands!r}")
    if a.dedup_phash_threshold // a.dedup_phash_bands > 2:
        raise cfg.ConfigError("config annotate.dedup_phash_threshold // dedup_phash_bands must be <= 2 "
                              "(more bit flips per band probe too many keys): raise dedup_phash_bands")
    if a.dedup_shingle < 1 or a.dedup_num_perm < 2 or a.dedup_bucket_cap < 2:
        raise cfg.ConfigError("config annotate.dedup_shingle must be >= 1, dedup_num_perm >= 2, dedup_bucket_cap >= 2")
    for key in ("dedup_minhash_threshold", "dedup_spec_lsh_threshold", "dedup_spec_min_agreement"):
        v = getattr(a, key)
        if not 0.0 < v <= 1.0:
            raise cfg.ConfigError(f"config annotate.{key} must be in (0, 1], got {v!r}")
    if a.dedup_spec_min_shared < 1:
        raise cfg.ConfigError(f"config annotate.dedup_spec_min_shared must be >= 1, got {a.dedup_spec_min_shared!r}")


@dataclass
class Inputs:
    """What dedup reads, one entry per product, products sorted by product_id."""

    ids: list[str]
    merchants: list[str | None]  # stripped; None when missing (null, empty, whitespace)
    titles: list[str]  # normalised
    sha256: list[str | None]  # main image blob
    phash: list[str | None]
    specs: list[dict[str, frozenset[str]]]  # property -> its comparable normalised values (see read_inputs)
    n_spec_rows: list[int] = field(default_factory=list)  # spec rows with a value, noisy ones included


@dataclass
class DedupReport:
    """What one dedup run found, beyond the stage counts."""

    stats: StageStats
    n_products: int = 0
    n_groups: int = 0  # groups of 2 or more
    n_grouped: int = 0  # products in such groups
    pairs: Counter = field(default_factory=Counter)  # rule -> accepted pairs
    vetoed: Counter = field(default_factory=Counter)  # rule -> pairs rejected by the spec veto
    candidates: Counter = field(default_factory=Counter)  # index -> candidate pairs checked
    rows: list[dict] = field(default_factory=list)


def _norm_value(v: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", v or "").lower().split())


# Shapes of spec values that differ between listings of one product on real tables. Matched on the
# NFKC, lower-cased value with its whitespace runs kept as one space.
_RANGE = re.compile(r"\d\s*(?:~|〜|–|—|至|到)\s*\d|以上|以下|以内"  # 136~174mhz, 3至6岁, 6岁以上
                    r"|^\d{1,4}(?:[.,]\d+)?\s*[^\d\s.,~-]*\s*-\s*\d{1,4}(?:[.,]\d+)?\s*[^\d\s.,~-]*$")  # 3km-5km, one dash
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(r"(?:19|20)\d\d\s*(?:年|[-/.]\s*\d{1,2}(?!\d))"  # 2019年春季, 2015-3, 2013/12/02
                   rf"|(?<![a-z]){_MONTH}\s+\d{{1,2}},?\s+(?:19|20)\d\d"  # december 2, 2013
                   rf"|\d{{1,2}}\s+{_MONTH}\s+(?:19|20)\d\d")  # 2 dec 2013
FREE_TEXT_WORDS, FREE_TEXT_CHARS = 5, 32


def noisy_value(value: str) -> bool:
    """A spec value that is a range, a date or free text (5+ words or 32+ characters): not compared."""
    v = " ".join(unicodedata.normalize("NFKC", value).lower().split())
    return (len(v.split()) >= FREE_TEXT_WORDS or len(v.replace(" ", "")) >= FREE_TEXT_CHARS
            or bool(_RANGE.search(v) or _DATE.search(v)))


def brand_spellings(value: str) -> set[str]:
    """A normalised brand and its parts: ``美的(midea)`` and ``midea/美的`` are also ``美的`` and ``midea``."""
    parts = {p for p in re.split(r"[()/]", value) if p}
    return {value, *parts}


@lru_cache(maxsize=65536)
def _spelled(values: frozenset[str]) -> frozenset[str]:
    return frozenset(s for v in values for s in brand_spellings(v))


def read_inputs(store, brand: str = "") -> Inputs:
    """Products, their main image (sha256, pHash) and comparable spec values, from the store.

    Values of ``brand`` (a normalised property name) are all kept; values of other properties that
    are ranges, dates or free text (:func:`noisy_value`) are dropped.
    """
    con = store.connect()
    try:
        rows = con.sql("""
            SELECT p.product_id, p.merchant_id, p.title, m.sha256, m.phash
            FROM products p
            LEFT JOIN (SELECT product_id, sha256, phash,
                              row_number() OVER (PARTITION BY product_id ORDER BY position, media_id) AS k
                       FROM media WHERE kind = 'image' AND role = 'main' AND status = 'ok') m
              ON m.product_id = p.product_id AND m.k = 1
            ORDER BY p.product_id""").fetchall()
        spec_rows = con.sql("SELECT product_id, property, value FROM specs ORDER BY product_id, position").fetchall()
    finally:
        con.close()
    specs: dict[str, dict[str, set[str]]] = {}
    n_rows: Counter = Counter()
    for pid, prop, value in spec_rows:
        key, norm = _norm_value(prop), _norm_value(value)
        if not (key and norm):
            continue
        n_rows[pid] += 1
        if key == brand or not noisy_value(value):  # every value of a repeated property, not only the first
            specs.setdefault(pid, {}).setdefault(key, set()).add(norm)
    return Inputs(ids=[r[0] for r in rows], merchants=[(r[1] or "").strip() or None for r in rows],
                  titles=[near.normalise_title(r[2]) for r in rows], sha256=[r[3] for r in rows],
                  phash=[r[4] for r in rows],
                  specs=[{k: frozenset(v) for k, v in specs.get(r[0], {}).items()} for r in rows],
                  n_spec_rows=[n_rows[r[0]] for r in rows])


def spec_agreement(a: dict[str, frozenset[str]], b: dict[str, frozenset[str]],
                   brand: str) -> tuple[bool | None, int, int]:
    """``(same brand or None when a side lacks it, properties both list besides the brand, agreeing ones)``.

    A property agrees when the two pages share one of its values (the sets intersect); brands agree
    when they share a spelling (:func:`brand_spellings`).
    """
    same_brand = bool(_spelled(a[brand]) & _spelled(b[brand])) if brand in a and brand in b else None
    shared = [k for k in a if k in b and k != brand]
    return same_brand, len(shared), sum(bool(a[k] & b[k]) for k in shared)


def run(store, settings: cfg.Settings, *, progress: Progress | None = None) -> StageStats:
    """Stage contract: find duplicate groups and replace the ``dedup`` table; see :func:`dedup`."""
    return dedup(store, settings, progress=progress).stats


def dedup(store, settings: cfg.Settings, *, progress: Progress | None = None) -> DedupReport:
    """Find duplicate groups among the store's products and replace the ``dedup`` table.

    Args:
        store: the store (reads products, media, specs; writes dedup and runs).
        settings: ``annotate.dedup_*`` thresholds.
        progress: ``progress(step, done, total)`` after each step.
    """
    check_settings(settings)
    a = settings.annotate
    stats = StageStats("dedup")
    report = DedupReport(stats)
    steps = ["read", "exact", "phash", "minhash", "spec", "groups", "write"]

    def step(name: str) -> None:
        if progress:
            progress("dedup", steps.index(name) + 1, len(steps))

    brand = _norm_value(a.dedup_brand_property)
    inp = read_inputs(store, brand)
    n = len(inp.ids)
    report.n_products = stats.n_in = n
    step("read")
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []  # left, right, distance, rule

    # exact rules: equal keys, pairs off the sorted runs
    blob_keys = np.array([s or "" for s in inp.sha256], dtype=object)
    has_blob = np.array([bool(s) for s in inp.sha256])
    _exact(edges, blob_keys, has_blob, a.dedup_bucket_cap, "exact_image")
    title_keys = np.array([f"{m or ''}\x1f{t}" for m, t in zip(inp.merchants, inp.titles)], dtype=object)
    has_title = np.array([bool(t) for t in inp.titles])
    has_merchant = np.array([m is not None for m in inp.merchants])  # unknown merchants are not one merchant
    _exact(edges, title_keys, has_title & has_merchant, a.dedup_bucket_cap, "exact_title")
    step("exact")

    hashes, has_hash = near.parse_phash(inp.phash)
    left, right, dist = near.phash_pairs(hashes, a.dedup_phash_threshold, a.dedup_phash_bands, has_hash,
                                         a.dedup_bucket_cap)
    report.candidates["phash"] = len(left)
    edges.append(_veto(report, inp, brand, a, left, right, dist.astype(float), "phash"))
    step("phash")

    values, offsets = near.title_hashes(inp.titles, a.dedup_shingle)
    left, right, jac = near.lsh_pairs(values, offsets, a.dedup_minhash_threshold, a.dedup_num_perm, has_title,
                                      a.dedup_bucket_cap)
    report.candidates["minhash"] = len(left)
    edges.append(_veto(report, inp, brand, a, left, right, 1.0 - jac, "minhash"))
    step("minhash")

    has_specs = np.array([len(s) > 0 for s in inp.specs])
    values, offsets = near.token_hashes([[f"{k}={v}" for k, vs in s.items() for v in sorted(vs)] for s in inp.specs])
    left, right, _ = near.lsh_pairs(values, offsets, a.dedup_spec_lsh_threshold, a.dedup_num_perm, has_specs,
                                    a.dedup_bucket_cap)
    report.candidates["spec"] = len(left)
    keep, dist_spec = [], []
    for i, j in zip(left.tolist(), right.tolist()):
        same_brand, shared, equal = spec_agreement(inp.specs[i], inp.specs[j], brand)
        if same_brand and shared >= a.dedup_spec_min_shared and equal >= a.dedup_spec_min_agreement * shared:
            keep.append(True)
            dist_spec.append(1.0 - equal / shared)
        else:
            keep.append(False)
    mask = np.asarray(keep, dtype=bool)
    edges.append((left[mask], right[mask], np.asarray(dist_spec, dtype=float), "spec"))
    step("spec")

    rows = _groups(inp, edges, report)
    for i, row in enumerate(rows):
        missing = [what for what, ok in (("no main image", inp.sha256[i]), ("no pHash", inp.phash[i]),
                                         ("empty title", inp.titles[i]), ("no specs", inp.n_spec_rows[i])) if not ok]
        row["reason"] = "; ".join(missing) or None
        if not (inp.phash[i] or inp.sha256[i] or inp.titles[i] or inp.n_spec_rows[i]):
            stats.fail("no evidence (no image, title or specs)")
        row["run_id"] = stats.run_id
    step("groups")
    report.rows = rows
    store.replace("dedup", rows)
    stats.n_out = len(rows) - stats.n_failed
    step("write")
    record_run(store, stats.finish(), {**cfg.as_dict(settings), "dedup_run": {
        "pairs": dict(report.pairs), "vetoed": dict(report.vetoed), "candidates": dict(report.candidates),
        "groups": report.n_groups}})
    return report


def _exact(edges: list, keys: np.ndarray, valid: np.ndarray, cap: int, rule: str) -> None:
    idx = np.flatnonzero(valid)
    packed = near.pairs_in_runs(keys[idx], idx, cap)
    left, right = near.unpack(packed)
    edges.append((left, right, np.zeros(len(left)), rule))


def _veto(report: DedupReport, inp: Inputs, brand: str, a, left: np.ndarray, right: np.ndarray,
          dist: np.ndarray, rule: str):
    """Drop near pairs whose specs contradict them (different brand, or disagreeing values)."""
    if a.dedup_spec_veto and len(left):
        keep = np.ones(len(left), dtype=bool)
        for k, (i, j) in enumerate(zip(left.tolist(), right.tolist())):
            same_brand, shared, equal = spec_agreement(inp.specs[i], inp.specs[j], brand)
            if same_brand is False or (shared and equal < a.dedup_spec_min_agreement * shared):
                keep[k] = False
        report.vetoed[rule] += int((~keep).sum())
        left, right, dist = left[keep], right[keep], dist[keep]
    return left, right, dist, rule


def _groups(inp: Inputs, edges: list, report: DedupReport) -> list[dict]:
    """Connected components of the accepted pairs (union-find); each product's strongest pair."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(inp.ids)
    best: dict[int, tuple] = {}  # product -> (rule rank, distance, other) of its strongest pair
    all_left, all_right = [], []
    for left, right, dist, rule in edges:
        report.pairs[rule] += len(left)
        rank = RULES.index(rule)
        for i, j, d in zip(left.tolist(), right.tolist(), dist.tolist()):
            for me, other in ((i, j), (j, i)):
                cand = (rank, round(d, 6), inp.ids[other])
                if me not in best or cand < best[me][:3]:
                    best[me] = (*cand, rule)
        all_left.append(left)
        all_right.append(right)
    left = np.concatenate(all_left) if all_left else np.zeros(0, dtype=np.int64)
    right = np.concatenate(all_right) if all_right else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    root = np.full(label.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(root, label, np.arange(n))  # ids are sorted: the smallest index is the smallest product_id
    sizes = np.bincount(label) if n else np.zeros(0, dtype=np.int64)
    report.n_groups = int((sizes >= 2).sum())
    report.n_grouped = int(sizes[sizes >= 2].sum())
    rows = []
    for i, pid in enumerate(inp.ids):
        ev = best.get(i)
        rows.append({"product_id": pid, "group_id": inp.ids[root[label[i]]],
                     "rule": ev[3] if ev else None, "matched_id": ev[2] if ev else None,
                     "distance": float(ev[1]) if ev else None})
    return rows


# ------------------------------------------------------------------ scoring against a truth
@dataclass
class PairScore:
    """Pair precision / recall of "same group" against a truth's instances."""

    products: int = 0  # products scored (in both the store and the truth)
    true_pairs: int = 0
    predicted_pairs: int = 0
    correct_pairs: int = 0
    examples_false: list[tuple[str, str]] = field(default_factory=list)
    examples_missed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_truth_products(path: str | Path) -> list[dict]:
    """The demo shop's ``truth/products.parquet`` rows (``path``: the file, the truth folder or the shop)."""
    path = Path(path)
    for cand in (path, path / "products.parquet", path / "truth" / "products.parquet"):
        if cand.is_file():
            import pyarrow.parquet as pq

            rows = pq.read_table(cand).to_pylist()
            if rows and "product_id" not in rows[0]:
                raise ValueError(f"truth {cand} has no product_id column")
            return rows
    raise FileNotFoundError(f"no truth products.parquet at {path} (give the shop's truth folder)")


def _pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    from itertools import combinations

    return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}


def score_groups(rows: list[dict], truth_rows: list[dict], examples: int = 10) -> PairScore:
    """Pair precision and recall of the ``dedup`` rows' groups against the truth's ``instance_id``."""
    instance = {r["product_id"]: r["instance_id"] for r in truth_rows}
    rows = [r for r in rows if r["product_id"] in instance]
    pred: dict[str, list[str]] = {}
    true: dict[str, list[str]] = {}
    for r in rows:
        pred.setdefault(r["group_id"], []).append(r["product_id"])
        true.setdefault(instance[r["product_id"]], []).append(r["product_id"])
    p, t = _pairs_of(pred), _pairs_of(true)
    score = PairScore(products=len(rows), true_pairs=len(t), predicted_pairs=len(p), correct_pairs=len(p & t))
    score.examples_false = sorted(p - t)[:examples]
    score.examples_missed = sorted(t - p)[:examples]
    return score
