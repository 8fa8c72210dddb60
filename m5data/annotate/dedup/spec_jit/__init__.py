"""The compiled loops of dedup's spec rule (numba), by what they compute: the agreement of two products'
specs (:mod:`.agreement`), the spec block keys (:mod:`.block_keys`), the pairs of each block that pass
(:mod:`.block_pairs`), the chance of an agreement within a brand and the entries' frequencies
(:mod:`.chance`); and :func:`warm_up`, which compiles them all.

Each loop is the per-row or per-pair work that numpy would do through temporaries of
``rows x candidates``; compiled, it runs in one pass with no temporary. Callers are
:mod:`..spec_rule` and :mod:`..reads`; the index loops (MinHash, pHash) are in :mod:`.near_jit`.
"""

from __future__ import annotations

import numpy as np

from .agreement import entry_jaccard, spec_agreement
from .block_keys import spec_block_keys, spec_row_keys
from .block_pairs import spec_block_pairs, spec_block_pairs_once, spec_touched_pairs
from .chance import chance_from, chance_keys, count_chance_keys, entry_freq, rarest_mask, spec_chance

__all__ = ["chance_from", "chance_keys", "count_chance_keys", "entry_freq", "entry_jaccard", "rarest_mask",
           "spec_agreement", "spec_block_keys", "spec_block_pairs", "spec_block_pairs_once", "spec_chance",
           "spec_row_keys", "spec_touched_pairs", "warm_up"]


def warm_up() -> None:
    """Compile every spec loop once on tiny inputs (or load it from numba's cache), e.g. before timing."""
    z = np.zeros(1, dtype=np.int64)
    i32 = np.zeros(0, dtype=np.int32)
    u0 = np.zeros(0, dtype=np.uint64)
    spec_agreement(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1)
    spec_block_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, 2, 0, 1, u0, z[:0])
    entry_jaccard(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(1))
    spec_block_pairs(u0, z[:0], 0, 200, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1,
                     2, 1.0, 0.25, u0, np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.bool_))
    spec_block_pairs_once(u0, z[:0], 0, 200, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32,
                          -1, 2, 1.0, 0.25, u0, np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.bool_),
                          np.zeros(1, dtype=np.int64), u0, np.zeros(0, dtype=np.bool_), u0)
    spec_touched_pairs(z[:0], z[:0], 200, np.zeros(1, dtype=np.bool_), np.zeros(2, dtype=np.int64), i32, i32,
                       np.zeros(2, dtype=np.int64), i32, -1, 2, 1.0, 0.25, np.zeros(2, dtype=np.int64))
    spec_chance(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, z, u0,
                z, z[:0], 1, 5.0, np.zeros(1))
    rarest_mask(np.zeros(2, dtype=np.int64), i32, i32, z[:0], -1, 8, np.zeros(0, dtype=np.bool_))
    entry_freq(i32, i32)
    spec_row_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, 2, u0, u0,
                  np.zeros(0, dtype=np.bool_), z[:0], z[:0])
    table, _, start, pair_n, slot, g = chance_keys(z, z, np.zeros(2, dtype=np.int64), i32, i32,
                                                   np.zeros(2, dtype=np.int64), i32, -1, z, z)
    chance_from(start, pair_n, slot, g, table, np.zeros(len(table), dtype=np.int64), 1, 5.0, np.zeros(1))
    count_chance_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, table,
                      np.zeros(1, dtype=np.bool_), np.zeros(len(table), dtype=np.int64))
