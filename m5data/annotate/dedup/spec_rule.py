"""The ``spec`` rule of dedup: pairs of the same brand agreeing on enough shared properties, found
in exact blocks of rare spec values (never all pairs) and kept only when such an agreement is
unlikely by chance within the brand. Called by :func:`.job.dedup`; the blocked search is in
:mod:`.spec_blocks`, the compiled loops in :mod:`.spec_jit`.
"""

from __future__ import annotations

import math

import numpy as np

from . import reads
from .reads import Inputs
from .report import DedupReport
from .spec_blocks import (
    _block_keys,
    spec_blocks,
)

SPEC_CHANCE_PRIOR = 5.0  # rows of the whole catalogue's value frequency a brand's own frequency is shrunk with


def spec_rule(report: DedupReport, inp: Inputs, a, touching: np.ndarray | None = None, kept: tuple | None = None,
              vetoed: tuple | None = None):
    """Pairs of the same brand agreeing on enough shared properties, with ``property=value`` sets of
    Jaccard >= ``dedup.spec_lsh_threshold``.

    Candidates come from exact blocks, not from an index whose buckets grow with the catalogue: a
    pair can only pass when it shares a brand spelling and agrees on at least ``need`` properties
    (``ceil(min_agreement * min_shared)``, 1 or 2), so each product is keyed by every brand spelling
    and every ``need`` of its :data:`SPEC_KEY_ENTRIES` rarest non-brand entries
    (:func:`spec_jit.spec_block_keys`), and only products sharing a key are compared: two listings
    of one product share their rare values (a model number), while values every listing of a
    sub-class carries (after-sales terms, "imported: yes") would make blocks of a whole brand. A
    block over ``dedup.bucket_cap`` rows links its rows to its first one. The keys are made in parts
    of the key space, and each block's pairs are checked as they are made
    (:func:`spec_jit.spec_block_pairs`): memory holds one part's keys and the pairs that passed,
    never the candidates (230M of them in a 1M-product scale world).

    ``touching`` (a bool mask of rows, an incremental run's changed ones): only the pairs with one of
    them as an end (:func:`spec_blocks`); the chance test still counts the whole catalogue, but
    only what those pairs look up (the entries of their rows, the rows of their brands).

    Which of each row's entries make its block keys (its rarest) goes to ``inp.spec_chosen`` (kept for
    the next run). In an incremental run (``inp.spec_chosen_prev``: the last run's, False for rows it
    did not have) the rows whose chosen entries, and so their keys, moved with the catalogue's value
    frequencies (``inp.spec_moved``) are searched as changed ones too, and so
    are the rows of blocks that changed rows take over the cap (:func:`spec_blocks`); ``kept`` (the
    last run's spec pairs, ``(left, right)``) and ``vetoed`` (its pairs likely by chance) of rows not
    searched again are tested for chance again with the new pairs (the counts move with every new
    product of their brand). Afterwards ``inp.spec_touching`` holds the rows searched,
    ``inp.spec_kept_ok`` which kept pairs stand, and ``inp.spec_vetoed`` the pairs now likely by
    chance (kept for the next run); the pairs returned are the new ones and the kept likely ones
    that no longer are.
    """
    from . import spec_jit

    sp = inp.specs
    need = max(1, min(2, math.ceil(a.spec_min_agreement * a.spec_min_shared - 1e-9)))
    # per (property, value) entry, the products listing it: the rarest-entry keys and the chance of an
    # agreement both read these counts
    freq = spec_jit.entry_freq(sp.keys, sp.values)
    inp.spec_chosen = np.empty(len(sp.keys), dtype=np.bool_)
    inp.spec_moved = np.zeros(len(sp.offsets) - 1, dtype=np.bool_)
    if touching is not None:
        touching = touching.copy()  # grows by the rows whose keys moved and of blocks gone over the cap
    left, right, counts = spec_blocks(sp, freq, need, a.bucket_cap, a.spec_min_shared,
                                      a.spec_min_agreement, a.spec_lsh_threshold, touching,
                                      inp.spec_chosen, getattr(inp, "spec_chosen_prev", None), moved=inp.spec_moved)
    report.candidates["spec"] = int(counts[0])
    report.capped["spec"] = int(counts[1])
    n_new, n_kept = len(left), 0
    stand = np.zeros(0, dtype=bool)
    if touching is not None:
        inp.spec_touching = touching
        # the kept pairs (accepted or likely by chance last time) of rows not searched again: their
        # chance moves with the catalogue's counts, so they are tested again with the new ones
        again = [np.zeros(0, np.int64)] * 2
        for pairs in (kept, vetoed):
            if pairs is not None:
                stand = np.r_[stand, ~(touching[pairs[0]] | touching[pairs[1]])]
                again = [np.r_[again[0], pairs[0]], np.r_[again[1], pairs[1]]]
        n_kept = len(kept[0]) if kept is not None else 0
        left, right = np.r_[left, again[0][stand]], np.r_[right, again[1][stand]]
    chance = _spec_chance(sp, left, right, freq, touching is not None)
    del freq
    likely = chance > a.spec_chance + 1e-12
    if touching is not None:
        ok = np.zeros(len(stand), dtype=bool)
        ok[np.flatnonzero(stand)] = ~likely[n_new:]
        inp.spec_kept_ok = ok[:n_kept]  # kept accepted pairs that stand
        report.vetoed["spec"] += int(likely[:n_new].sum())
        was_vetoed = np.r_[np.zeros(n_kept, dtype=bool), np.ones(len(stand) - n_kept, dtype=bool)][stand]
        likely_again = likely[n_new:]
        # pairs likely by chance now: the new ones, and the kept ones (accepted or not) that stand
        inp.spec_vetoed = (np.r_[left[:n_new][likely[:n_new]], left[n_new:][likely_again]],
                           np.r_[right[:n_new][likely[:n_new]], right[n_new:][likely_again]])
        # accepted: the new pairs and the kept likely ones that are no longer (the kept accepted
        # ones that stand are the caller's)
        take = np.r_[~likely[:n_new], was_vetoed & ~likely_again]
        left, right = left[take], right[take]
    else:
        report.vetoed["spec"] += int(likely.sum())
        inp.spec_vetoed = (left[likely], right[likely])
        left, right = left[~likely], right[~likely]
    same, shared, equal = reads.agreement(sp, left, right)
    return left, right, 1.0 - equal / np.maximum(shared, 1), "spec"


def _spec_chance(sp, left: np.ndarray, right: np.ndarray, freq: np.ndarray, only_theirs: bool = False) -> np.ndarray:
    """Per pair, the rows of its brand expected to agree as much by chance (:func:`spec_jit.spec_chance`);
    ``freq``: per spec entry, the whole catalogue's rows listing it.

    Counts rows per brand spelling and per ``(spelling, property, value)``: in full, one key per row,
    spelling and non-brand entry, sorted and counted once (a pass over the specs, no per-product
    objects); with ``only_theirs`` (an incremental run) only the keys the pairs look up are counted
    (:func:`spec_jit.chance_keys`, :func:`spec_jit.count_chance_keys`: a pass over the rows of the
    pairs' spellings, no sort): the counts looked up are the same.
    """
    from . import spec_jit

    out = np.zeros(len(left))
    if not len(left):
        return out
    spelling_rows = np.bincount(sp.brands, minlength=1).astype(np.int64)
    if only_theirs:  # the keys the pairs look up, counted over every row of their spellings (no sort of all)
        left, right = (np.ascontiguousarray(x, dtype=np.int64) for x in (left, right))
        table, spellings, *records = spec_jit.chance_keys(left, right, sp.offsets, sp.keys, sp.values,
                                                          sp.brand_offsets, sp.brands, sp.brand_key, spelling_rows,
                                                          freq)
        tcounts = np.zeros(len(table), dtype=np.int64)
        spec_jit.count_chance_keys(sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key, table,
                                   spellings, tcounts)
        spec_jit.chance_from(*records, table, tcounts, len(sp.offsets) - 1, SPEC_CHANCE_PRIOR, out)
        return out
    else:
        key, row = _block_keys((sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key, 1))
        del row
        ukeys, counts = np.unique(key, return_counts=True)
        del key
    spec_jit.spec_chance(left, right, sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key,
                         spelling_rows, ukeys, counts.astype(np.int64), freq,
                         len(sp.offsets) - 1, SPEC_CHANCE_PRIOR, out)
    return out
