"""Dedup's learned pairs (``dedup.matcher = learned``): wider candidates that the trained
matcher (:mod:`.matcher`) accepts at its saved threshold.

The rules' pairs are kept whatever the matcher says (they are what the rules are sure of); the
matcher only adds pairs, from candidates the rules' own indexes find at looser settings:

- titles: the same MinHash signatures banded for ``dedup.matcher_minhash_threshold`` (0.3, not 0.7);
- images: pHash within ``dedup.matcher_phash_threshold`` bits (6, the rule's own candidates, which
  the matcher re-judges where the veto rejected them; wider searches again: on the 100k synthetic
  store with its placeholder photo 12 bits cost 13.4 s of CPU, 8 bits 2.7 s, against 0.4 s);
  title and image candidates whose pages name different brands are dropped (the rules' veto);
- specs: the spec rule's exact blocks keyed by a brand spelling and *one* rare value, entry sets of
  Jaccard >= ``dedup.matcher_spec_jaccard``, agreeing on ``dedup.matcher_spec_agreement`` of the
  properties both list (0.75: on a world whose values come from small vocabularies one shared rare
  value is a wide key; the 10k scale world's spec candidates 102,477 -> 6,231), no chance test.

Of each source a product keeps its ``dedup.matcher_per_product`` most similar candidates (the wide
title index alone found 904,808 pairs on the 100k scale world, 12,284 at 10k: unbounded, the
candidates grow faster than the products). Features come from the matcher's bulk code for the products of those pairs only (read from the store
by id), their TF-IDF weighted with the document frequencies the model kept from its training
products (no TF-IDF fitted per run). Its neighbour features ("is each side the other's nearest neighbour?") are searched in the
candidate graph, not in the whole store (that search is products x products): a product's best
other is its most similar candidate partner. Without a trained model, ``learned`` is rules with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import arrays
from ..matcher.model import cascade_features
from . import near, phash, reads
from .phash import hamming
from .reads import Inputs
from .spec_blocks import spec_blocks

MODES = ("rules", "learned")


@dataclass
class Learned:
    """The matcher dedup uses (None: rules only), why, and the wide title index filled while reading."""

    model: object | None
    note: str  # "rules", "learned <version>", or "rules (<why no matcher>)"
    wide: near.LSHIndex | None = None
    phash: tuple | None = None  # the pHash rule's candidates (left, right, bits), before its veto
    text_model: str = ""  # annotate.text_model: the sentence-transformers folder of its embed_* features
    brand_property: str = ""  # annotate.brand_property: the spec property that names the brand

    def fingerprint_part(self) -> str:
        """What of the choice decides the groups (the run's fingerprint): the model's version, or "rules"
        whatever the reason (the reason names the store's folder; a store moved elsewhere stays incremental)."""
        return self.note if self.model is not None else "rules"


def check_settings(a) -> str | None:
    """The first bad ``dedup.matcher*`` value, said in one line; None when all are good."""
    if a.matcher not in MODES:
        return f"config dedup.matcher must be one of {', '.join(MODES)}, got {a.matcher!r}"
    if not 0.0 < a.matcher_minhash_threshold <= 1.0 or not 0.0 <= a.matcher_spec_jaccard <= 1.0 \
            or not 0.0 <= a.matcher_spec_agreement <= 1.0:
        return ("config dedup.matcher_minhash_threshold must be in (0, 1], dedup.matcher_spec_jaccard and "
                "dedup.matcher_spec_agreement in [0, 1]")
    if a.matcher_per_product < 0:
        return f"config dedup.matcher_per_product must be >= 0, got {a.matcher_per_product!r}"
    if a.matcher_bucket_cap < 2:
        return f"config dedup.matcher_bucket_cap must be >= 2, got {a.matcher_bucket_cap!r}"
    if not 0 <= a.matcher_phash_threshold <= 64:
        return f"config dedup.matcher_phash_threshold must be in 0..64, got {a.matcher_phash_threshold!r}"
    return None


def choose(store, settings) -> Learned:
    """The newest trained matcher when ``dedup.matcher`` is learned and one can be used; else rules, with why."""
    a = settings.dedup
    if a.matcher == "rules":
        return Learned(None, "rules")
    from ..matcher.model import MatcherError, load_model

    try:
        model = load_model(store)
    except MatcherError as exc:
        return Learned(None, f"rules ({str(exc).splitlines()[0]})")
    shared = settings.annotate  # the text model the matcher was trained with, applied alike here
    if any(f.startswith("embed_") for f in model.features) and not shared.text_model:
        return Learned(None, f"rules (matcher {model.version} uses text embeddings: set annotate.text_model)")
    return Learned(model, f"learned {model.version}", near.LSHIndex(a.matcher_minhash_threshold, a.num_perm),
                   text_model=shared.text_model, brand_property=shared.brand_property)


def candidates(inp: Inputs, a, learned: Learned, known: np.ndarray, group: np.ndarray | None = None,
               touching: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The wide candidate pairs (``left < right``) not among ``known`` (packed pairs the rules accepted)
    nor, given the rules' ``group`` of each row, inside one group; of each source, a product's
    ``dedup.matcher_per_product`` most similar (:func:`best_per_product`). ``touching`` (a bool mask
    of rows, an incremental run's changed ones): only candidates with one of them as an end."""
    cap = a.bucket_cap
    # the wide title index's buckets capped lower than the rules' (dedup.matcher_bucket_cap, 20): its
    # bands are short, their buckets large, and a product keeps only its best few pairs anyway (100k
    # scale world: 904,808 pairs at 200 -> 678,704 at 20, 2.8 -> 1.8 s; 97.8% of the bounded kept)
    t_left, t_right, _ = learned.wide.pairs(a.matcher_bucket_cap, touching=touching)
    t = a.matcher_phash_threshold
    if learned.phash is not None and t <= a.phash_threshold:  # the rule's own candidates: no second search
        p_left, p_right, bits = learned.phash
        p_left, p_right = p_left[bits <= t], p_right[bits <= t]
    else:
        p_left, p_right, _ = phash.phash_pairs(inp.phash, t, max(a.phash_bands, -(-t // 2)), inp.has_phash, cap,
                                              touching=touching)
    sp = inp.specs
    s_left, s_right, _ = spec_blocks(sp, None, 1, cap, 1, a.matcher_spec_agreement,  # None: counted there
                                     a.matcher_spec_jaccard, touching, once=True)
    k = a.matcher_per_product

    def open_(x, y):  # not yet decided: not a rule's pair, not already in one group of the rules
        x, y = np.minimum(x, y), np.maximum(x, y)
        ok = ~arrays.isin(pack(x, y), known) if group is None else ~arrays.isin(pack(x, y), known) & (group[x] != group[y])
        return x[ok], y[ok]

    (t_left, t_right), (p_left, p_right), (s_left, s_right) = (open_(t_left, t_right), open_(p_left, p_right),
                                                                open_(s_left, s_right))
    t_left, t_right = best_per_product(t_left, t_right, learned.wide.jaccard(t_left, t_right), k)
    p_left, p_right = best_per_product(p_left, p_right, -hamming(inp.phash[p_left], inp.phash[p_right]), k)
    s_left, s_right = best_per_product(s_left, s_right, learned.wide.jaccard(s_left, s_right), k)
    packed = arrays.unique(np.concatenate([pack(np.minimum(x, y), np.maximum(x, y))
                                           for x, y in ((t_left, t_right), (p_left, p_right))]))
    packed = packed[~arrays.isin(packed, known)]
    left, right = near.unpack(packed)
    # pages naming different brands are not one product (the rules' veto): on a store with a
    # placeholder photo its copies are most of the wider pHash candidates (100k synthetic: 202,623)
    same, _, _ = reads.agreement(sp, left, right)
    packed = arrays.union(packed[same != 0], pack(s_left, s_right))
    return near.unpack(packed[~arrays.isin(packed, known)])


def best_per_product(left: np.ndarray, right: np.ndarray, sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs among either product's ``k`` most similar (``sim``; ties: the pair found first); all
    pairs when ``k`` is 0. Bounds the candidates to ``k`` a product: on the 100k scale world the wide
    title index alone found 904,808 pairs (9 a product, 12,284 at 10k), and the candidates, not the
    rules, then set the matcher's cost."""
    if k <= 0 or not len(left):
        return left, right
    from . import near_jit

    keep = np.zeros(len(left), dtype=bool)
    near_jit.best_of_each(np.asarray(left, np.int64), np.asarray(right, np.int64), np.asarray(sim, np.float64), k,
                          int(max(left.max(), right.max())) + 1, keep)
    return left[keep], right[keep]


def pack(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return (np.asarray(left, np.uint64) << np.uint64(32)) | np.asarray(right, np.uint64)


def score_pairs(store, brand_property: str, model, ids, left: np.ndarray, right: np.ndarray, known: np.ndarray,
                text_model: str = "") -> np.ndarray:
    """P(same product) of pairs of dedup rows, from the matcher's features.

    The representations are made for the candidates' products and the products the rules joined
    them to, and nothing else: their TF-IDF weights are the model's own (the training products'
    document frequencies, kept in its file), so no TF-IDF is fitted per run and the scores do not
    depend on which candidates the settings let in. (Before: a seeded sample of 20,000 products
    besides them fixed the weights, tokenised every run: on the 100k synthetic store 90 candidates
    cost 23 s of CPU, nearly all of it jieba on the sample's random titles.)
    The neighbour features look for each side's best other product among all its pairs: these and
    the rules' accepted pairs that touch them (``known``, packed), so a product the rules already
    joined to its duplicate has that duplicate as its nearest neighbour."""
    from ..matcher.features import PairFeatures
    from ..matcher.model import columns
    from ..matcher.products import read_store
    from ..matcher.spaces import rowdot

    if not len(left):
        return np.zeros(0)
    k_left, k_right = near.unpack(known)
    mine = np.zeros(len(ids), dtype=bool)
    mine[left] = mine[right] = True
    touch = mine[k_left] | mine[k_right]
    k_left, k_right = k_left[touch], k_right[touch]
    rows = arrays.unique(np.r_[left, right, k_left, k_right])
    products = read_store(store, brand_property, only=ids.take(rows))
    index = products.index()
    sub = np.array([index[i] for i in ids.take(rows).to_pylist()], dtype=np.int64)
    la, lb = sub[np.searchsorted(rows, left)], sub[np.searchsorted(rows, right)]
    ga, gb = np.r_[la, sub[np.searchsorted(rows, k_left)]], np.r_[lb, sub[np.searchsorted(rows, k_right)]]
    feats = PairFeatures(products, text_model, weights=model.weights)
    feats.set_neighbours({name: graph_top2(len(products), ga, gb, rowdot(x, ga, gb)) for name, x in feats.spaces()})
    return model.proba(feats.matrix(la, lb)[:, columns(model)])


def graph_top2(n: int, a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Per product, its two highest similarities over the pairs that touch it (-1 where it has fewer):
    the neighbour search of the matcher's margin features, restricted to the candidate graph."""
    top = np.full((n, 2), -1.0, dtype=np.float32)
    me, s = np.r_[a, b], np.r_[sim, sim].astype(np.float32)
    order = np.lexsort((-s, me))
    me, s = me[order], s[order]
    start = np.r_[True, me[1:] != me[:-1]]
    first = np.flatnonzero(start)
    top[me[first], 0] = s[first]
    second = first + 1
    ok = second < len(me)
    ok[ok] = ~start[second[ok]]
    top[me[second[ok]], 1] = s[second[ok]]
    return top


def components(n: int, edges: list) -> np.ndarray:
    """Each row's connected component under ``edges`` (the rules' groups, before the matcher's pairs)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    left = np.concatenate([e[0] for e in edges]).astype(np.int64)
    right = np.concatenate([e[1] for e in edges]).astype(np.int64)
    return connected_components(coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n)), directed=False)[1]


def learned_pairs(report, inp: Inputs, a, store, learned: Learned, edges: list,
                  touching: np.ndarray | None = None) -> tuple:
    """The candidates the matcher accepts, as dedup's ``matcher`` edges (distance ``1 - score``).

    A candidate whose products the rules already put in one group is not scored: it could change no
    group (and no product's strongest pair, which is a rule's)."""
    import gc

    # no cyclic garbage collection while the candidates and features are made: their millions of
    # short-lived strings and lists made the collector ~18% of the features' CPU (100k scale world:
    # 6.8 -> 5.6 s); what cycles they leave the next collection finds
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _learned_pairs(report, inp, a, store, learned, edges, touching)
    finally:
        if collecting:
            gc.enable()


def _learned_pairs(report, inp: Inputs, a, store, learned: Learned, edges: list, touching: np.ndarray | None) -> tuple:
    known = arrays.unique(np.concatenate([pack(np.minimum(e[0], e[1]), np.maximum(e[0], e[1])) for e in edges]
                                         or [np.zeros(0, np.uint64)]))
    group = components(len(inp), edges)
    report.n_groups_rules = int((np.bincount(group) >= 2).sum())
    left, right = candidates(inp, a, learned, known, group, touching)
    apart = group[left] != group[right]
    left, right = left[apart], right[apart]
    cascade = learned.model.cascade
    if cascade is not None and len(left):
        # the model's cheap first test over what the rules' pass holds for every pair (title MinHash
        # Jaccard, pHash bits, spec agreement): a pair failing it is not scored, and a product none of
        # whose pairs pass needs no representations (words, n-grams, TF-IDF) at all
        ok = cascade.passes(cascade_features(inp, learned.wide, left, right))
        report.candidates["matcher_wide"] = len(left)
        report.candidates["matcher_wide_products"] = int(len(arrays.unique(np.r_[left, right])))
        left, right = left[ok], right[ok]
        report.candidates["matcher_products"] = int(len(arrays.unique(np.r_[left, right])))
    learned.wide = learned.phash = None
    report.candidates["matcher"] = len(left)
    score = score_pairs(store, learned.brand_property, learned.model, inp.ids, left, right, known, learned.text_model)
    keep = score >= learned.model.threshold
    return left[keep], right[keep], 1.0 - score[keep], "matcher"
