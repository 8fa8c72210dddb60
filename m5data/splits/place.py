"""Placing the products a next version must place again, in Python, as ``roles.py``'s SQL places them.

``incremental.build_next`` hands over every product of the store as arrays (its label, duplicate group,
split in the previous version) and the *affected* ones: those whose pool may differ from the previous
version's (new or re-written, relabelled, or in a duplicate group one of those touches: a group is
drawn whole). Every other product keeps its pool and role. :func:`place` draws the affected products'
pools and roles with the same hashes and thresholds as ``roles.pool_view`` / ``place_roles``, then applies
the data-dependent rules to every category and group an affected product is or was in, over all of
their products, kept ones included (docs/splits.md, "The assignment").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import arrays
from .labels import cat_key_of
from .plan import EXCLUSIVE, Plan

SPLIT_CODE = {s: i for i, s in enumerate(EXCLUSIVE)}
TRAIN = SPLIT_CODE["train"]
QUERY_CODES = (SPLIT_CODE["query-c"], SPLIT_CODE["query-fg"], SPLIT_CODE["cls-test"])
# pool of each split code (index), as roles.POOL_OF: 0 none, 1 train, 2 coarse, 3 fine, 4 cls
NONE, TRAIN_POOL, COARSE, FINE, CLS = 0, 1, 2, 3, 4
POOL_OF_CODE = np.array([TRAIN_POOL, COARSE, COARSE, FINE, FINE, CLS, CLS], np.int8)
ROLE_CODE = {COARSE: (SPLIT_CODE["gallery-c"], SPLIT_CODE["query-c"]), FINE: (SPLIT_CODE["gallery-fg"], SPLIT_CODE["query-fg"]),
             CLS: (SPLIT_CODE["cls-train"], SPLIT_CODE["cls-test"])}
SCALE = 4294967296.0
NO_CAT = -1  # a label key of no label


def digest(seed: int, key: str) -> int:
    """``md5("<seed>:<key>")`` as a 128-bit little-endian integer (the build's ``md5_number``)."""
    return int.from_bytes(hashlib.md5(f"{seed}:{key}".encode()).digest(), "little")


def limb(h: int, i: int) -> int:
    return (h >> (32 * i)) & 0xFFFFFFFF


def level_key(cat3: np.ndarray, level: int) -> np.ndarray:
    """Label keys at ``level`` (``labels.cat_key_sql``) from level-3 keys; :data:`NO_CAT` stays."""
    mask = {1: ~((1 << 42) - 1), 2: ~((1 << 21) - 1), 3: -1}[level]
    return np.where(cat3 >= 0, cat3 & mask, NO_CAT)


@dataclass
class Products:
    """Every product of the store (arrays of one length) as the next version sees them."""

    cat3: np.ndarray  # int64 level-3 label key, NO_CAT without a label
    grp: np.ndarray  # int32 duplicate group (an index), -1 alone
    group_names: list  # group index -> group key (its dedup.group_id), for the affected products' groups
    old_code: np.ndarray  # int8 split code in the previous version (carry.py codes; < 0 in none)
    old_cat3: np.ndarray  # int64 the label the previous version placed it with


@dataclass
class Placed:
    """The affected products' draws and every product's split code after the data-dependent rules."""

    code: np.ndarray  # int8, every product
    subset: np.ndarray  # bool, the affected products (by position in ``affected``)
    digests: dict  # position -> md5 digest of the products hashed here


def place(plan: Plan, settings, seed: int, fg: set[int], st: Products, affected: np.ndarray,
          ids_of) -> Placed:
    """Draw the pools and roles of ``affected`` (positions) and apply the data-dependent rules.

    Args:
        ids_of: ``ids_of(positions) -> list[str]``: product ids of positions (any product's, for the
            hashes of kept products a rule compares).
    """
    s = settings.splits
    cat_c, cat_k = level_key(st.cat3, s.coarse_level), level_key(st.cat3, s.cls_level)
    code = st.old_code.copy()
    pool = np.where(code >= 0, POOL_OF_CODE[np.maximum(code, 0)], NONE).astype(np.int8)
    pool[code == -2] = CLS  # excluded: a classification group's member (never in a rule)
    query = np.isin(code, QUERY_CODES)
    kept = np.ones(len(code), bool)
    excluded = np.zeros(len(code), np.int8)  # 0 no, 1 yes, 2 null (a member without a label)
    excluded[code == -2] = 1
    rates = {cat_key_of(k): float(r) for k, r in plan.cls_rates.items()}
    digests: dict[int, int] = {}
    subset, *drawn = _draw(plan, s, seed, fg, st, affected, ids_of(affected), cat_k, rates, digests)
    pool[affected], query[affected], kept[affected], excluded[affected] = drawn

    def v_of(ps: np.ndarray) -> np.ndarray:
        missing = [int(p) for p in ps if int(p) not in digests]
        if missing:
            for p, pid in zip(missing, ids_of(np.array(missing))):
                digests[p] = digest(seed, pid)
        return np.array([limb(digests[int(p)], 3) / SCALE for p in ps])

    _keep_a_match(st, affected, cat_c, level_key(st.old_cat3, s.coarse_level), pool, query, kept, v_of)
    _test_and_train(affected, cat_k, pool, query, kept, excluded, v_of)
    # the codes of the affected products, and of kept products a rule moved
    aff = np.zeros(len(code), bool)
    aff[affected] = True
    touched = aff | (query != np.isin(code, QUERY_CODES))
    for p in np.flatnonzero(touched):
        pl = int(pool[p])
        if pl == TRAIN_POOL:
            code[p] = TRAIN
        elif pl == NONE or (pl == CLS and excluded[p] == 2):
            code[p] = -1
        elif pl == CLS and excluded[p] == 1:
            code[p] = -2
        else:
            code[p] = ROLE_CODE[pl][int(query[p])]
    return Placed(code, subset, digests)


def _draw(plan: Plan, s, seed: int, fg: set[int], st: Products, affected: np.ndarray, ids: list[str],
          cat_k: np.ndarray, rates: dict, digests: dict) -> tuple[np.ndarray, ...]:
    """The affected products' draws (``roles.pool_view`` / ``place_roles``' hashes and thresholds): their
    subset draw, pool, role (query), whether they keep their role and whether they are excluded; each
    one's own digest into ``digests``."""
    pos = affected.tolist()
    a_cat3, a_grp, a_catk = st.cat3[affected].tolist(), st.grp[affected].tolist(), cat_k[affected].tolist()
    a_old = st.old_code[affected].tolist()
    # the groups of the affected products (each group's products are all affected)
    members: dict[int, list[int]] = {}
    for k, g in enumerate(a_grp):
        if g >= 0:
            members.setdefault(g, []).append(k)
    attrs = {}
    for g, ks in members.items():
        cls_ = [a_cat3[k] for k in ks]
        cks = [a_catk[k] for k in ks if a_catk[k] >= 0]
        attrs[g] = (any(c >= 0 and (c >> 42) in fg for c in cls_), all(c >= 0 for c in cls_),
                    min(cks) if cks else NO_CAT, len(ks))
    n = len(pos)
    subset, a_pool, a_query, a_keep, a_excl = (np.zeros(n, bool), np.zeros(n, np.int8), np.zeros(n, bool),
                                               np.zeros(n, bool), np.zeros(n, np.int8))
    cut = plan.r_train * plan.r_subset
    fine_rate = (plan.r_fine_single, plan.r_fine)
    for k, p in enumerate(pos):
        own = digests[p] = digest(seed, ids[k])
        g = a_grp[k]
        if g >= 0:
            g_fg, g_lab, g_cat, g_n = attrs[g]
            h = digest(seed, st.group_names[g])
        else:
            c3 = a_cat3[k]
            g_fg, g_lab, g_cat, g_n = c3 >= 0 and (c3 >> 42) in fg, c3 >= 0, a_catk[k], 1
            h = own
        rate = rates.get(g_cat) if g_cat >= 0 else None
        if g_fg and limb(h, 0) / SCALE < fine_rate[g_n >= 2]:
            pl = FINE
        elif rate is not None and limb(h, 1) / SCALE < rate:
            pl = CLS
        elif g_lab and limb(h, 2) / SCALE < plan.r_coarse:
            pl = COARSE
        elif limb(h, 3) / SCALE < plan.r_train:
            pl = TRAIN_POOL
        else:
            pl = NONE
        subset[k] = pl == TRAIN_POOL and limb(h, 3) / SCALE < cut
        old = a_old[k]
        keep = old >= 0 and int(POOL_OF_CODE[old]) == pl
        v = limb(own, 3) / SCALE
        if pl == CLS:  # 2: null (a member without a label of a sampled group: in no split, not counted)
            a_excl[k] = 2 if a_catk[k] < 0 else int(a_catk[k] not in rates)
        if keep and pl in (COARSE, FINE):
            q = old in QUERY_CODES
        elif pl == COARSE:
            q = v < plan.q_coarse
        elif pl == FINE:
            q = g_n >= 2 and v < plan.q_fine
        elif pl == CLS and keep:
            q = old == SPLIT_CODE["cls-test"]
        elif pl == CLS:
            q = v < s.cls_test
        else:
            q = False
        a_pool[k], a_query[k], a_keep[k] = pl, q, keep
    return subset, a_pool, a_query, a_keep, a_excl


def _keep_a_match(st: Products, affected: np.ndarray, cat_c: np.ndarray, old_cat_c: np.ndarray, pool: np.ndarray,
                  query: np.ndarray, kept: np.ndarray, v_of) -> None:
    """Every query keeps a match: a category (coarse) or group (fine) of queries only gives its
    not-kept product with the largest role hash (else its kept one) to the gallery (``query``, in place)."""
    coarse_cats = arrays.union(cat_c[affected][pool[affected] == COARSE],
                               old_cat_c[affected][np.isin(st.old_code[affected], ROLE_CODE[COARSE])])
    in_c = (pool == COARSE) & np.isin(cat_c, coarse_cats)
    alone = np.where(st.grp >= 0, st.grp.astype(np.int64), -2 - np.arange(len(pool), dtype=np.int64))
    in_f = (pool == FINE) & np.isin(alone, alone[affected][pool[affected] == FINE])
    for where, by in ((in_c, cat_c), (in_f, alone)):
        ps = np.flatnonzero(where)
        if not len(ps):
            continue
        keys, inv = np.unique(by[ps], return_inverse=True)
        all_q = np.bincount(inv, weights=query[ps], minlength=len(keys)) == np.bincount(inv, minlength=len(keys))
        for j in np.flatnonzero(all_q):
            cand = ps[inv == j]
            score = (~kept[cand]).astype(float) + v_of(cand)
            query[cand[int(np.argmax(score))]] = False


def _test_and_train(affected: np.ndarray, cat_k: np.ndarray, pool: np.ndarray, query: np.ndarray, kept: np.ndarray,
                    excluded: np.ndarray, v_of) -> None:
    """Classification: a category with two or more products gets a test and a train product, chosen
    among its products not kept (``query``, in place)."""
    ok = (pool == CLS) & (excluded == 0)
    cats = arrays.unique(cat_k[affected][ok[affected]])
    ps = np.flatnonzero(ok & np.isin(cat_k, cats))
    if len(ps):
        ps = ps[np.argsort(cat_k[ps], kind="stable")]
        groups = np.split(ps, np.flatnonzero(np.diff(cat_k[ps])) + 1)
        for want in (True, False):
            for cand in groups:
                fresh = cand[~kept[cand]]
                if len(cand) >= 2 and len(fresh) and not np.any(query[cand] == want):
                    v = v_of(fresh)
                    query[fresh[int(np.argmin(v) if want else np.argmax(v))]] = want
