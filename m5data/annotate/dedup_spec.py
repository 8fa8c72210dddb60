"""The ``spec`` rule of dedup: pairs of the same brand agreeing on enough shared properties, found
in exact blocks of rare spec values (never all pairs) and kept only when such an agreement is
unlikely by chance within the brand. Called by :func:`.dedup.dedup`; the compiled loops are in
:mod:`.spec_jit`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from . import dedup_inputs, near
from .dedup_inputs import Inputs

if TYPE_CHECKING:  # the report is only written to here
    from .dedup import DedupReport


SPEC_KEY_ENTRIES = 8  # a product's block keys are made of its this many rarest non-brand entries
SPEC_CHANCE_PRIOR = 5.0  # rows of the whole catalogue's value frequency a brand's own frequency is shrunk with
SPEC_KEYS_PER_PART = 16_000_000  # spec block keys held at once (16 bytes each): parts of the key space beyond
SPEC_PAIRS_PER_PASS = 1 << 20  # passing spec pairs one compiled pass may write (8 bytes each)


def spec_rule(report: DedupReport, inp: Inputs, a, touching: np.ndarray | None = None):
    """Pairs of the same brand agreeing on enough shared properties, with ``property=value`` sets of
    Jaccard >= ``dedup_spec_lsh_threshold``.

    Candidates come from exact blocks, not from an index whose buckets grow with the catalogue: a
    pair can only pass when it shares a brand spelling and agrees on at least ``need`` properties
    (``ceil(min_agreement * min_shared)``, 1 or 2), so each product is keyed by every brand spelling
    and every ``need`` of its :data:`SPEC_KEY_ENTRIES` rarest non-brand entries
    (:func:`spec_jit.spec_block_keys`), and only products sharing a key are compared: two listings
    of one product share their rare values (a model number), while values every listing of a
    sub-class carries (after-sales terms, "imported: yes") would make blocks of a whole brand. A
    block over ``dedup_bucket_cap`` rows links its rows to its first one. The keys are made in parts
    of the key space, and each block's pairs are checked as they are made
    (:func:`spec_jit.spec_block_pairs`): memory holds one part's keys and the pairs that passed,
    never the candidates (230M of them in a 1M-product scale world).

    ``touching`` (a bool mask of rows, an incremental run's changed ones): only the pairs with one of
    them as an end (:func:`spec_blocks`); the chance test still counts the whole catalogue.
    """
    sp = inp.specs
    need = max(1, min(2, math.ceil(a.dedup_spec_min_agreement * a.dedup_spec_min_shared - 1e-9)))
    # each (property, value) entry's code and the products listing it: the rarest-entry keys and the
    # chance of an agreement both read these counts
    entries, which, listed = np.unique((sp.keys.astype(np.uint64) << np.uint64(32)) | sp.values.astype(np.uint64),
                                       return_inverse=True, return_counts=True)
    listed = listed.astype(np.int64)
    left, right, counts = spec_blocks(sp, listed[which], need, a.dedup_bucket_cap, a.dedup_spec_min_shared,
                                      a.dedup_spec_min_agreement, a.dedup_spec_lsh_threshold, touching)
    del which
    report.candidates["spec"] = int(counts[0])
    report.capped["spec"] = int(counts[1])
    chance = _spec_chance(sp, left, right, entries, listed)
    likely = chance > a.dedup_spec_chance + 1e-12
    report.vetoed["spec"] += int(likely.sum())
    left, right = left[~likely], right[~likely]
    same, shared, equal = dedup_inputs.agreement(sp, left, right)
    return left, right, 1.0 - equal / np.maximum(shared, 1), "spec"


def spec_blocks(sp, freq: np.ndarray, need: int, cap: int, min_shared: int, min_agreement: float,
                min_jaccard: float, touching: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows sharing a block key (a brand spelling and ``need`` of their rarest entries) that
    have the same brand, ``min_shared`` shared properties agreeing on ``min_agreement`` of them and
    entry sets of Jaccard >= ``min_jaccard``: ``(left, right, [checks, capped])``, each pair once.

    ``freq``: per spec row, the products listing its entry (the rarest entries make the keys). The
    spec rule calls it with its own thresholds; the learned matcher (:mod:`.dedup_learned`) with
    looser ones, for candidates it then scores.

    ``touching``: a bool mask of rows (an incremental dedup's changed ones): only the pairs with one
    of them as an end, the same ones a search of every block finds. A row shares a block with a
    changed row only when it lists that row's key entries, so the keys are made for the changed rows
    and the rows listing one of their :data:`SPEC_KEY_ENTRIES` rarest entries (at the whole
    catalogue's frequencies), and only blocks holding a changed row are read, whole (their caps act
    as in the full search).
    """
    from . import spec_jit

    rows = None
    if touching is not None:
        offsets, keys, values = _rarest_entries(sp, freq, SPEC_KEY_ENTRIES, touching)
        near_rows = np.repeat(np.arange(len(sp.offsets) - 1, dtype=np.int64), np.diff(sp.offsets))
        entry = (sp.keys.astype(np.uint64) << np.uint64(32)) | sp.values.astype(np.uint64)
        mine = np.unique((keys.astype(np.uint64) << np.uint64(32)) | values.astype(np.uint64))
        rows = touching.copy()
        rows[near_rows[np.isin(entry, mine)]] = True
        del near_rows, entry
    offsets, keys, values = _rarest_entries(sp, freq, SPEC_KEY_ENTRIES, rows)
    args = (offsets, keys, values, sp.brand_offsets, sp.brands, sp.brand_key, need)
    empty_key, empty_row = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    total = spec_jit.spec_block_keys(*args, 0, 1, empty_key, empty_row)
    parts = max(1, -(-total // SPEC_KEYS_PER_PART))
    counts, found = np.zeros(2, dtype=np.int64), []
    buf = np.empty(SPEC_PAIRS_PER_PASS, dtype=np.uint64)
    check = (sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key, min_shared,
             float(min_agreement), min_jaccard - 1e-12)
    for part in range(parts):
        n = total if parts == 1 else spec_jit.spec_block_keys(*args, part, parts, empty_key, empty_row)
        key, row = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.int64)
        spec_jit.spec_block_keys(*args, part, parts, key, row)
        order = np.argsort(key, kind="stable")
        key, row = key[order], row[order]
        del order
        if touching is not None:  # the blocks holding a changed row, whole
            sel = np.isin(key, key[touching[row]])
            key, row = key[sel], row[sel]
            n = len(key)
        pos = 0
        while pos < n:  # the pairs are checked as they are made: memory holds the keys and what passed
            pos2, m = spec_jit.spec_block_pairs(key, row, pos, cap, *check, buf, counts)
            if pos2 == pos:  # one capped block longer than the buffer
                buf = np.empty(2 * len(buf), dtype=np.uint64)
                continue
            packed = np.unique(buf[:m])
            if touching is not None:
                lo, hi = near.unpack(packed)
                packed = packed[touching[lo] | touching[hi]]
            found.append(packed)
            pos = pos2
        del key, row
    left, right = near.unpack(np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64))
    return left, right, counts


def _spec_chance(sp, left: np.ndarray, right: np.ndarray, entries: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Per pair, the rows of its brand expected to agree as much by chance (:func:`spec_jit.spec_chance`);
    ``entries`` (sorted ``property << 32 | value`` codes) and ``listed`` (rows listing each) are the
    whole catalogue's counts.

    Counts rows per brand spelling and per ``(spelling, property, value)``: one key per row, spelling
    and non-brand entry, sorted and counted once (a pass over the specs, no per-product objects).
    """
    from . import spec_jit

    out = np.zeros(len(left))
    if not len(left):
        return out
    args = (sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key, 1)
    empty_key, empty_row = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    total = spec_jit.spec_block_keys(*args, 0, 1, empty_key, empty_row)
    key, row = np.empty(total, dtype=np.uint64), np.empty(total, dtype=np.int64)
    spec_jit.spec_block_keys(*args, 0, 1, key, row)
    del row
    ukeys, counts = np.unique(key, return_counts=True)
    del key
    spelling_rows = np.bincount(sp.brands, minlength=1).astype(np.int64)
    spec_jit.spec_chance(left, right, sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key,
                         spelling_rows, ukeys, counts.astype(np.int64), entries, listed,
                         len(sp.offsets) - 1, SPEC_CHANCE_PRIOR, out)
    return out


def _rarest_entries(sp, freq: np.ndarray, keep: int, rows: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each product's ``keep`` rarest non-brand ``(property, value)`` entries (``freq``: products
    listing each entry; fewest first, ties by code), in CSR form sorted by property then value;
    ``rows`` (a bool mask): those rows' only, the others none."""
    n = len(sp.offsets) - 1
    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(sp.offsets))
    other = sp.keys != sp.brand_key
    if rows is not None:
        other &= rows[row]
    row, freq, k, v = row[other], freq[other], sp.keys[other], sp.values[other]
    order = np.lexsort((v, k, freq, row))
    row, k, v = row[order], k[order], v[order]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=starts[1:])
    rank = np.arange(len(row)) - starts[row]
    chosen = rank < keep
    row, k, v = row[chosen], k[chosen], v[chosen]
    order = np.lexsort((v, k, row))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    return offsets, k[order], v[order]
