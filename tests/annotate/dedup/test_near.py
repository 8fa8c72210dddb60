"""The scalable near-duplicate indexes: pHash multi-index and numpy MinHash/LSH against their baselines."""

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from m5data.annotate.dedup import near, phash

TITLES = ["宜乐婴儿儿童婴幼儿奶粉X-7649GW婴幼儿奶粉现货优选人气", "宜乐 3段 婴儿 婴幼儿奶粉 现货", "ab", "",
          "欧星商务A4办公文仪LP-6232办公文仪工厂直销", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮", "Ｘ７ Pro 手机"]


def _shingles(title: str, k: int) -> list[str]:
    if not title:
        return []
    return [title[i:i + k] for i in range(len(title) - k + 1)] if len(title) >= k else [title]


@pytest.mark.parametrize("k", [2, 3])
def test_minhash_signatures_equal_datasketch(k):
    titles = [near.normalise_title(t) for t in TITLES]
    values, offsets = near.title_hashes(titles, k)
    perms = near.permutations(64, seed=1)
    sig = near.minhash_signatures(values, offsets, perms, batch_values=5)  # several batches
    for i, title in enumerate(titles):
        m = MinHash(num_perm=64, seed=1, hashfunc=lambda s: near.shingle_hash(s, k))
        for sh in _shingles(title, k):
            m.update(sh)
        assert np.array_equal(m.hashvalues, sig[i]), title


def test_normalised_titles_ignore_width_case_and_spaces():
    assert near.normalise_title("Ｘ７ Pro  手机") == near.normalise_title("x7pro手机") == "x7pro手机"
    assert near.normalise_title(None) == ""


def _random_titles(rng: random.Random, n: int) -> list[str]:
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]
    base = ["".join(rng.choice(pool) for _ in range(rng.randint(15, 40))) for _ in range(n)]
    out = list(base)
    for t in base[: n // 4]:  # near copies: a few characters changed or appended
        chars = list(t)
        for _ in range(rng.randint(0, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(pool)
        out.append("".join(chars) + rng.choice(["", "包邮", "正品"]))
    return out


def test_lsh_pairs_agree_with_datasketch_lsh():
    rng = random.Random(3)
    titles = _random_titles(rng, 400)
    values, offsets = near.title_hashes(titles, 3)
    sig = near.minhash_signatures(values, offsets, near.permutations(128, seed=1))
    left, right, jac = near.lsh_pairs(values, offsets, 0.6, 128, batch=97, bits=32)  # several batches
    ours = set(zip(left.tolist(), right.tolist()))
    assert len(ours) >= 50  # the near copies are found

    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    minhashes = []
    for i in range(len(titles)):
        m = MinHash(num_perm=128, seed=1, hashvalues=sig[i], scheme="affine32")
        minhashes.append(m)
        lsh.insert(i, m)
    theirs = set()
    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if i < j and m.jaccard(minhashes[j]) >= 0.6:
                theirs.add((i, j))
    assert ours == theirs
    assert np.all(jac >= 0.6)
    # 16-bit signature values (the default) find the same pairs, estimates within chance collisions
    left16, right16, jac16 = near.lsh_pairs(values, offsets, 0.6, 128)
    assert set(zip(left16.tolist(), right16.tolist())) == ours
    assert np.abs(jac16 - jac).max() < 0.02


@pytest.mark.parametrize("threshold,bands", [(3, 4), (6, 4), (7, 4), (10, 4), (4, 2)])
def test_phash_multi_index_finds_exactly_the_brute_force_pairs(threshold, bands):
    rng = random.Random(threshold)
    h = np.array([rng.getrandbits(64) for _ in range(3000)], dtype=np.uint64)
    for i in range(300):  # near copies at distances 0..12
        flips = rng.sample(range(64), rng.randint(0, 12))
        h[1000 + i] = h[i] ^ np.uint64(sum(1 << b for b in flips))
    valid = np.ones(len(h), dtype=bool)
    valid[5] = False  # a product without a hash takes no part
    left, right, dist = phash.phash_pairs(h, threshold, bands, valid)
    brute = {(a, b, d) for a, b, d in phash.brute_force_phash_pairs(h, threshold) if a != 5 and b != 5}
    assert set(zip(left.tolist(), right.tolist(), dist.tolist())) == brute
    assert len(brute) > 50


def test_pairs_in_runs_caps_big_buckets():
    keys = np.array([1, 2, 1, 3, 1, 2] + [9] * 10)
    pairs = set(zip(*[x.tolist() for x in near.unpack(near.pairs_in_runs(keys, cap=5))]))
    assert {(0, 2), (0, 4), (2, 4), (1, 5)} <= pairs
    big = {p for p in pairs if p[0] >= 6}
    assert big == {(6, j) for j in range(7, 16)}  # a run over the cap: a star on its first row


def test_parse_phash_marks_missing_and_bad_hashes():
    h, ok = phash.parse_phash(["ff00ff00ff00ff00", None, "zz"])
    assert ok.tolist() == [True, False, False]
    assert int(h[0]) == 0xFF00FF00FF00FF00


def test_phash_cap_links_a_placeholder_cluster_as_a_star_and_counts_what_it_skipped():
    """1,000 copies of one placeholder photo (0-2 bits apart) among random hashes: one component, not 500k pairs."""
    rng = np.random.default_rng(5)
    base = np.uint64(0x9A3C5E7F1B2D4C6E)
    cluster = np.array([base ^ (np.uint64(1) << np.uint64(rng.integers(64))) for _ in range(1000)], dtype=np.uint64)
    h = np.concatenate([cluster, rng.integers(0, 2**63, 2000, dtype=np.int64).astype(np.uint64)])
    capped = [0]
    left, right, dist = phash.phash_pairs(h, 6, 4, cap=50, capped=capped)
    assert capped[0] > 0 and len(left) < 20_000 and (dist <= 6).all()
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, label = connected_components(coo_matrix((np.ones(len(left)), (left, right)), shape=(len(h), len(h))))
    assert len(set(label[:1000].tolist())) == 1  # the cluster is still one group
    # over the cap nothing is skipped: exactly the brute-force pairs
    small = h[:300]
    capped = [0]
    left, right, dist = phash.phash_pairs(small, 6, 4, cap=1000, capped=capped)
    assert capped[0] == 0
    assert set(zip(left.tolist(), right.tolist(), dist.tolist())) == set(phash.brute_force_phash_pairs(small, 6))


def test_lsh_blocks_pair_only_sets_that_share_a_block():
    titles = ["欧星商务A4办公文仪LP-6232办公文仪工厂直销"] * 4
    values, offsets = near.title_hashes(titles, 3)
    index = near.LSHIndex(0.7, 128)
    index.add(values, offsets)
    blocks = (np.array([0, 1, 3, 4, 4]), np.array([7, 8, 7, 9]))  # rows 0,1 share 7; row 2: 9; row 3: none
    left, right, _ = index.pairs(blocks=blocks)
    assert set(zip(left.tolist(), right.tolist())) == {(0, 1)}
    left, right, _ = index.pairs()
    assert len(left) == 6


def test_lsh_pairs_of_no_sets_are_none():
    """A store with no products: no set goes in, no pair comes out (it raised on concatenating nothing)."""
    left, right, jaccard = near.lsh_pairs(np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64), 0.7)
    assert len(left) == len(right) == len(jaccard) == 0
