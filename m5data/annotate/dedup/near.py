"""Near-duplicate candidate search that scales: MinHash/LSH in numpy batches (the pHash multi-index: :mod:`.phash`).

Never all pairs. Both indexes turn rows into *keys*, sort each key column once and read candidate
pairs off runs of equal keys, so memory grows with the rows and the candidates, not with rows².

- :func:`minhash_signatures`: MinHash signatures equal to ``datasketch.MinHash(num_perm, seed)``
  fed the same hash values (scheme ``affine32``: MurmurHash3 finalizer, then ``a * h + b`` in
  uint32), computed for thousands of sets at once instead of one value at a time.
- :func:`lsh_pairs`: banding of the signatures with datasketch's own choice of bands and rows for
  a threshold; candidates are verified with the signatures' Jaccard estimate.
- :func:`title_hashes` / :func:`token_hashes`: the sets (character shingles of a title, or string
  tokens such as ``property=value``) as uint32 hash values in CSR form (values, offsets).

Both read their candidates off runs of equal keys with :mod:`.key_runs`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

import numpy as np

from ... import arrays
from .key_runs import pack, pairs_in_runs, ragged_arange, unpack

__all__ = ["fmix64", "shingle_hash", "normalise_title", "title_hashes", "token_hash", "token_hashes",
           "permutations", "minhash_signatures", "lsh_params", "band_keys", "jaccard_estimate", "LSHIndex",
           "lsh_pairs", "pack", "pairs_in_runs", "unpack"]  # the last three from .key_runs, imported from here

_M64 = (1 << 64) - 1
_FNV = 0x100000001B3
_SPACE = re.compile(r"\s+")


# ------------------------------------------------------------------ hashing helpers
def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (a bijection that spreads every input bit), element-wise, as a
    new uint64 array: :func:`near_jit.mix64_array` (:func:`near_jit.mix64`, the compiled loops', per element)."""
    from . import near_jit

    x = np.asarray(x, dtype=np.uint64)
    return near_jit.mix64_array(np.ascontiguousarray(x).reshape(-1)).reshape(x.shape)


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


def shingle_hash(shingle: str, k: int = 3) -> int:
    """The uint32 hash :func:`title_hashes` gives one shingle (a ``hashfunc`` for datasketch.MinHash).

    A shingle shorter than ``k`` (a title shorter than ``k`` characters) is padded with code point 0.
    """
    h = 0
    for cp in [ord(c) for c in shingle] + [0] * (k - len(shingle)):
        h = ((h ^ cp) * _FNV) & _M64
    return _fmix64_int(h) & 0xFFFFFFFF


def normalise_title(title: str | None) -> str:
    """NFKC, lower case, no whitespace: what title shingles and exact-title keys are made of."""
    if not title:
        return ""
    return _SPACE.sub("", unicodedata.normalize("NFKC", title).lower())


def title_hashes(titles: list[str], k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Character ``k``-shingles of already normalised titles as uint32 hashes, CSR form.

    Returns ``(values, offsets)``: title ``i``'s shingle hashes are ``values[offsets[i]:offsets[i+1]]``
    (with repeats; a minimum does not care). A title shorter than ``k`` is one padded shingle, an
    empty title has none. Chinese is shingled by character, so no word segmentation is needed.
    """
    lengths = np.fromiter(map(len, titles), dtype=np.int64, count=len(titles))  # code points = utf-32 units
    n_sh = np.where(lengths >= k, lengths - k + 1, (lengths > 0).astype(np.int64))
    offsets = np.zeros(len(titles) + 1, dtype=np.int64)
    np.cumsum(n_sh, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint32), offsets
    flat = np.frombuffer("".join(titles).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.zeros(len(titles), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    owner = np.repeat(np.arange(len(titles)), n_sh)
    pos = starts[owner] + (np.arange(total) - offsets[owner])
    end = (starts + lengths)[owner]
    h = np.zeros(total, dtype=np.uint64)
    for o in range(k):
        p = pos + o
        c = np.where(p < end, flat[np.minimum(p, len(flat) - 1)], np.uint64(0))
        h = (h ^ c) * np.uint64(_FNV)
    return (fmix64(h) & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets


def token_hash(token: str) -> int:
    """uint32 hash of a string token (blake2b), e.g. ``'颜色=黑色'``."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def token_hashes(sets: list[Iterable[str]]) -> tuple[np.ndarray, np.ndarray]:
    """String token sets as uint32 hashes in CSR form ``(values, offsets)``."""
    values: list[int] = []
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    for i, tokens in enumerate(sets):
        values.extend(token_hash(t) for t in tokens)
        offsets[i + 1] = len(values)
    return np.asarray(values, dtype=np.uint32), offsets


# ------------------------------------------------------------------ MinHash
def permutations(num_perm: int = 128, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` uint32 permutation parameters of ``datasketch.MinHash(num_perm, seed)``."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def minhash_signatures(values: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray],
                       batch_values: int = 65_536) -> np.ndarray:
    """MinHash signatures ``(n_sets, num_perm)`` uint32 of sets given as hash values in CSR form.

    Equal to ``datasketch.MinHash(num_perm, seed, hashfunc=...)`` updated with each value (affine32
    scheme). An empty set keeps datasketch's empty value (all ``2**32 - 1``). One compiled pass
    (:func:`near_jit.minhash`): no ``values x num_perm`` temporary.

    Args:
        values: uint32 hash values of every set, concatenated.
        offsets: ``n_sets + 1`` offsets into ``values``.
        perms: from :func:`permutations`.
        batch_values: unused (kept for callers of the numpy version, which worked in blocks).
    """
    from . import near_jit

    a, b = perms
    n = len(offsets) - 1
    sig = np.full((n, len(a)), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    near_jit.minhash(np.ascontiguousarray(values, dtype=np.uint32), np.ascontiguousarray(offsets, dtype=np.int64),
                     np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32), sig)
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows per band for a Jaccard threshold, as datasketch's MinHashLSH chooses them."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``(n, bands)`` uint64 keys: band ``j`` hashes signature columns ``j*rows .. (j+1)*rows``."""
    from . import near_jit

    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    near_jit.band_keys(np.ascontiguousarray(sig), bands, rows, keys)
    return keys


def jaccard_estimate(sig: np.ndarray, left: np.ndarray, right: np.ndarray, batch: int = 200_000) -> np.ndarray:
    """Share of equal signature columns for each pair ``(left[i], right[i])``."""
    from . import near_jit

    out = np.empty(len(left), dtype=np.float64)
    near_jit.equal_share(np.ascontiguousarray(sig), np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64), out)
    return out


class LSHIndex:
    """MinHash/LSH over sets added in batches; memory per set: ``8 * bands + num_perm * bits / 8`` bytes.

    Signatures are computed per batch (:func:`minhash_signatures`) and reduced to what the search
    needs: one 64-bit key per band (datasketch's choice of bands and rows for the threshold) and
    the low ``bits`` bits of each signature value, which estimate the Jaccard of a candidate pair
    (b-bit minwise hashing, Li & Koenig 2010: equal by chance with probability ``2**-bits``, which
    the estimate corrects for).

    Args:
        threshold: Jaccard threshold (sets the bands and rows, and the verification).
        num_perm: MinHash permutations.
        seed: permutation seed (datasketch's ``seed``).
        bits: bits of each signature value kept for verification (8, 16 or 32).
        params: ``(bands, rows)`` instead of datasketch's choice.
    """

    def __init__(self, threshold: float, num_perm: int = 128, seed: int = 1, bits: int = 16,
                 params: tuple[int, int] | None = None):
        self.threshold, self.num_perm, self.seed = threshold, num_perm, seed
        self._perms: tuple[np.ndarray, np.ndarray] | None = None  # made when first needed (datasketch's
        self._params = params  # import costs ~0.5 s: an incremental dedup takes both from its kept arrays)
        self.dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
        self.bits = bits
        self._keys: list[np.ndarray] = []
        self._sigs: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []

    @property
    def perms(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(a, b)`` permutation parameters (:func:`permutations`, unless set)."""
        if self._perms is None:
            self._perms = permutations(self.num_perm, self.seed)
        return self._perms

    @perms.setter
    def perms(self, value: tuple[np.ndarray, np.ndarray]) -> None:
        self._perms = (np.asarray(value[0], dtype=np.uint32), np.asarray(value[1], dtype=np.uint32))

    @property
    def params(self) -> tuple[int, int]:
        """``(bands, rows)``: the given ones, else :func:`lsh_params` of the threshold."""
        if self._params is None:
            self._params = lsh_params(self.threshold, self.num_perm)
        return self._params

    @params.setter
    def params(self, value: tuple[int, int]) -> None:
        self._params = (int(value[0]), int(value[1]))

    @property
    def bands(self) -> int:
        return self.params[0]

    @property
    def rows(self) -> int:
        return self.params[1]

    def add(self, values: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add the next ``len(offsets) - 1`` sets (CSR hash values); ``valid`` False rows take no part
        (default: the non-empty sets)."""
        sig = minhash_signatures(values, offsets, self.perms)
        self._keys.append(band_keys(sig, self.bands, self.rows))
        self._sigs.append(sig.astype(self.dtype) if self.bits < 32 else sig)
        self._valid.append(np.diff(offsets) > 0 if valid is None else np.asarray(valid, dtype=bool))

    def __len__(self) -> int:
        return sum(len(v) for v in self._valid)

    def jaccard(self, left: np.ndarray, right: np.ndarray, batch: int = 200_000) -> np.ndarray:
        """Estimated Jaccard of pairs of added sets (row numbers in the order added)."""
        sig = self._sigs[0] if len(self._sigs) == 1 else np.concatenate(self._sigs)
        self._sigs = [sig]
        if not isinstance(sig, np.ndarray):  # gathered where read (an incremental dedup's kept rows): the pairs' rows
            rows, at = np.unique(np.r_[left, right].astype(np.int64), return_inverse=True)
            sig, left, right = sig[rows], at[:len(left)], at[len(left):]
        share = jaccard_estimate(sig, left, right, batch)
        if self.bits < 32:
            chance = 2.0 ** -self.bits
            share = np.clip((share - chance) / (1 - chance), 0.0, 1.0)
        return share

    def pairs(self, cap: int = 200, capped: list[int] | None = None,
              blocks: tuple[np.ndarray, np.ndarray] | None = None,
              touching: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs whose estimated Jaccard is ``>= threshold``: ``(left, right, jaccard)``, ``left < right``.

        Args:
            cap, capped: see :func:`pairs_in_runs` (per band bucket).
            blocks: ``(offsets, codes)``, each set's block codes in CSR form: only sets sharing a
                block are paired (a set is banded once per block it is in: its band key mixed with
                the block's code), so a common band of different blocks is never one bucket.
            touching: a bool mask of sets (an incremental dedup's changed rows): only the pairs with
                one of them as an end, read off the whole buckets they are in (so a bucket's cap
                acts as in a search of every pair).
        """
        if not self._keys:  # no set was added (a store with no products): no pair
            left, right = unpack(np.zeros(0, dtype=np.uint64))
            return left, right, np.zeros(0, dtype=np.float64)
        keys = self._keys[0] if len(self._keys) == 1 else np.concatenate(self._keys)
        self._keys = [keys]
        valid = np.concatenate(self._valid) if self._valid else np.zeros(0, dtype=bool)
        idx = np.flatnonzero(valid)
        mix = None
        if blocks is not None:
            b_off, codes = blocks
            cnt = np.diff(b_off)[idx]
            at = np.repeat(b_off[idx], cnt) + ragged_arange(cnt)
            idx = np.repeat(idx, cnt)
            mix = fmix64(codes[at].astype(np.uint64) + np.uint64(1))
        found = []
        for j in range(self.bands):  # verified band by band: memory holds the kept pairs, not all candidates
            band = keys[idx, j] if mix is None else keys[idx, j] ^ mix
            if touching is not None:  # only the buckets of changed rows, whole; then their pairs
                mine = touching[idx]
                sel = arrays.isin(band, band[mine])
                packed = pairs_in_runs(band[sel], idx[sel], cap, capped)
                left, right = unpack(packed)
                packed = packed[touching[left] | touching[right]]
            else:
                packed = pairs_in_runs(band, idx, cap, capped)
            left, right = unpack(packed)
            found.append(packed[self.jaccard(left, right) >= self.threshold - 1e-12])
        packed = arrays.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)
        left, right = unpack(packed)
        return left, right, self.jaccard(left, right)


def lsh_pairs(values: np.ndarray, offsets: np.ndarray, threshold: float, num_perm: int = 128,
              valid: np.ndarray | None = None, cap: int = 200, batch: int = 20_000,
              bits: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of sets (CSR hash values) with estimated Jaccard ``>= threshold``, via :class:`LSHIndex`.

    Sets go in by batches of ``batch``, so only one batch's full signatures exist at a time.
    """
    index = LSHIndex(threshold, num_perm, bits=bits)
    n = len(offsets) - 1
    for s in range(0, n, batch):
        e = min(n, s + batch)
        lo, hi = int(offsets[s]), int(offsets[e])
        index.add(values[lo:hi], offsets[s:e + 1] - lo, None if valid is None else valid[s:e])
    return index.pairs(cap)
