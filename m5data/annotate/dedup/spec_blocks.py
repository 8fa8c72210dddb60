"""The spec rule's blocked search (:mod:`.spec_rule`): each product's block keys (a brand spelling and two
of its rarest values), the blocks' pairs checked by the compiled passes, in parts of the key space and
bounded passes; and an incremental run's touched blocks (the keys of changed products, and of the rows
whose rarest entries moved). The compiled loops are in :mod:`.spec_jit`."""

from __future__ import annotations

import numba
import numpy as np

from ... import arrays
from . import near
from .key_runs import member

SPEC_KEY_ENTRIES = 8  # a product's block keys are made of its this many rarest non-brand entries
SPEC_KEYS_PER_PART = 16_000_000  # spec block keys held at once (16 bytes each): parts of the key space beyond
SPEC_PAIRS_PER_PASS = 1 << 20  # passing spec pairs one compiled pass may write (8 bytes each)


def row_numbers(offsets: np.ndarray) -> np.ndarray:
    """The row of each entry of a CSR with ``offsets``."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def spec_blocks(sp, freq: np.ndarray | None, need: int, cap: int, min_shared: int, min_agreement: float,
                min_jaccard: float, touching: np.ndarray | None = None, chosen: np.ndarray | None = None,
                prev_chosen: np.ndarray | None = None, once: bool = False,
                moved: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows sharing a block key (a brand spelling and ``need`` of their rarest entries) that
    have the same brand, ``min_shared`` shared properties agreeing on ``min_agreement`` of them and
    entry sets of Jaccard >= ``min_jaccard``: ``(left, right, [checks, capped])``, each pair once.

    ``freq``: per spec row, the products listing its entry (the rarest entries make the keys; None:
    counted here, for the rows it is needed for). The
    spec rule calls it with its own thresholds; the learned matcher (:mod:`.matcher_pairs`) with
    looser ones, for candidates it then scores.

    ``touching``: a bool mask of rows (an incremental dedup's changed ones): only the pairs with one
    of them as an end, the same ones a search of every block finds: only the blocks holding a
    changed row are sorted and read, whole (their caps act as in the full search).

    ``chosen`` (when given, bool per entry of ``sp``) gets which entries make each row's keys (its
    rarest); with ``prev_chosen`` (the last run's) the rows whose keys moved with them join
    ``touching`` (changed in place; and ``moved``, a bool per row, when given), and so do the rows of blocks over ``cap`` that touching rows
    took over it or head (a full run links them to the first row only). With both ``chosen`` and
    ``touching`` (the spec rule's incremental run) the catalogue's keys are never held: a compiled
    pass makes every row's keys and keeps those of the touching rows' blocks, grouped by a counting
    sort on their position among the wanted keys (:func:`_touched_blocks`), and each pair of those
    blocks with a touching end is checked once, from that end (:func:`spec_jit.spec_touched_pairs`:
    a touching row walks its uncapped blocks' rows, a stamp per row skipping those met in an earlier
    block; every key a pair with a touching row shares is a touching row's). On the 1M replay (40,337
    rows searched: 18,625 changed or over other rules' caps, 1,242 whose keys moved, 20,470 of the 207
    capped blocks they took over the cap or head) the 21.5 million checks cost ~4 s there against
    ~17 s through :func:`spec_jit.spec_block_pairs_once` (its walk of both rows' key lists per pair
    and a call per pair were most of it); the same pairs.

    ``once``: a pair sharing several keys is checked once, in the block of the smallest key it shares
    among the blocks not over ``cap`` (:func:`spec_jit.spec_block_pairs_once`; the same pairs, fewer
    checks: the learned matcher's loose blocks, one rare value, had 21.4 million checks of 10.5
    million distinct pairs on the 100k scale world); ``counts[0]`` then counts the checks made. Only
    when the keys fit one part (16 million; a 1M-product store's loose keys are ~13 million).
    """
    from . import spec_jit

    if freq is None:
        freq = spec_jit.entry_freq(sp.keys, sp.values)
    offsets, keys, values = _rarest_entries(sp, freq, SPEC_KEY_ENTRIES, chosen)
    args = (offsets, keys, values, sp.brand_offsets, sp.brands, sp.brand_key, need)
    counts, found = np.zeros(2, dtype=np.int64), []
    buf = np.empty(SPEC_PAIRS_PER_PASS, dtype=np.uint64)
    check = (sp.offsets, sp.keys, sp.values, sp.brand_offsets, sp.brands, sp.brand_key, min_shared,
             float(min_agreement), min_jaccard - 1e-12)
    if chosen is not None and touching is not None:  # an incremental run: few rows' blocks, whole
        if prev_chosen is not None:  # rows whose rarest entries moved: their keys did
            rows = moved_rows(sp, chosen, prev_chosen, need, touching)  # (a changed row is searched anyway)
            touching[rows] = True
            if moved is not None:
                moved[rows] = True
        key, row = _touched_blocks(args, touching, cap)
        # each pair checked once, from its touching end, which walks its uncapped blocks' rows: every
        # key a pair with a touching row shares is a touching row's, so these blocks hold them all
        packed = spec_jit.spec_touched_pairs(key, row, cap, touching, *check, counts)
        del key, row
        left, right = near.unpack(arrays.unique(packed))
        return left, right, counts
    empty_key, empty_row = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    total = spec_jit.spec_block_keys(*args, 0, 1, empty_key, empty_row)
    parts = max(1, -(-total // SPEC_KEYS_PER_PART))

    def part_keys(part: int) -> tuple[np.ndarray, np.ndarray]:
        n = total if parts == 1 else spec_jit.spec_block_keys(*args, part, parts, empty_key, empty_row)
        key, row = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.int64)
        spec_jit.spec_block_keys(*args, part, parts, key, row)
        return key, row

    for part in range(parts):
        key, row = part_keys(part)
        if touching is not None:  # the blocks holding a changed row, whole
            sel = member(key, arrays.unique(key[touching[row]]))
            key, row = key[sel], row[sel]
        buf = _check_blocks(key, row, cap, check, buf, counts, touching, found,
                            len(sp.offsets) - 1 if once and parts == 1 else None)
        del key, row
    left, right = near.unpack(arrays.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64))
    return left, right, counts


def _check_blocks(key: np.ndarray, row: np.ndarray, cap: int, check: tuple, buf: np.ndarray, counts: np.ndarray,
                  touching: np.ndarray | None, found: list, once_rows: int | None = None,
                  presorted: bool = False) -> np.ndarray:
    """The pairs of the blocks of ``key`` (``row``: each key's row) that pass ``check``
    (:func:`spec_jit.spec_block_pairs_once`) appended to ``found`` packed; with ``touching``, only those
    with one of its rows as an end; with ``once_rows`` (the rows' count), each pair of the uncapped
    blocks checked once (:func:`_rows_keys`, made from the keys sorted here; ``presorted``: the
    caller's, by key then row). Returns the pair buffer (grown when one capped block needed it)."""
    from . import spec_jit

    n = len(key)
    mine = touching if touching is not None else np.zeros(0, dtype=np.bool_)
    if not presorted:
        order = np.argsort(key, kind="stable")
        key, row = key[order], row[order]
        del order
    if once_rows is not None:  # sorted by key: what _rows_keys reads the blocks' sizes from
        rows_keys = _rows_keys(key, row, cap, once_rows)
    else:
        rows_keys = (np.zeros(0, np.int64), key[:0], np.zeros(0, np.bool_), key[:0])
    pos = 0
    while pos < n:  # the pairs are checked as they are made: memory holds the keys and what passed
        pos2, m = spec_jit.spec_block_pairs_once(key, row, pos, cap, *check, buf, counts, mine, *rows_keys)
        if pos2 == pos:  # one capped block longer than the buffer
            buf = np.empty(2 * len(buf), dtype=np.uint64)
            continue
        packed = arrays.unique(buf[:m])
        if touching is not None:
            lo, hi = near.unpack(packed)
            packed = packed[touching[lo] | touching[hi]]
        found.append(packed)
        pos = pos2
    return buf


def moved_rows(sp, chosen: np.ndarray, prev_chosen: np.ndarray, need: int, skip: np.ndarray) -> np.ndarray:
    """The rows of ``sp`` whose block keys (``need``: as the spec rule makes them) from the entries
    ``chosen`` differ from those from ``prev_chosen`` (bool per entry: the last run's, its rows'
    entries being the same; ``skip``: rows not to test, bool). Only the keys of the rows where the
    two differ are made and compared (their sums of :func:`near.fmix64`): before, a compiled pass
    made every row's keys to compare their sums with the kept ones, and codes that moved with a new
    name (codes are ranks of the names) moved every row above it; entries and masks do not move."""
    rows = np.unique(np.searchsorted(sp.offsets, np.flatnonzero(chosen != prev_chosen), side="right") - 1)
    rows = rows[~skip[rows]]
    if not len(rows):
        return rows
    at, bat = _ragged(sp.offsets, rows), _ragged(sp.brand_offsets, rows)
    boff = np.r_[0, np.cumsum(sp.brand_offsets[rows + 1] - sp.brand_offsets[rows])].astype(np.int64)
    owner = np.repeat(np.arange(len(rows)), sp.offsets[rows + 1] - sp.offsets[rows])
    sums = []
    for mask in (chosen[at], prev_chosen[at]):
        off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner[mask], minlength=len(rows)), out=off[1:])
        args = (off, sp.keys[at][mask], sp.values[at][mask], boff, sp.brands[bat], sp.brand_key, need)
        sums.append(_key_sums(args, len(rows)))
    return rows[sums[0] != sums[1]]


def _key_sums(args: tuple, n: int) -> np.ndarray:
    """Per row of ``args`` (the block keys' CSR arguments), its keys' :func:`near.fmix64` summed."""
    key, row = _block_keys(args)
    out = np.zeros(n, dtype=np.uint64)
    np.add.at(out, row, near.fmix64(key))
    return out


def _sub(args: tuple, rows: np.ndarray) -> tuple:
    """``args`` (the block keys' CSR arguments) of rows ``rows`` only, numbered 0.. in that order."""
    offsets, keys, values, brand_offsets, brands, brand_key, need = args
    off, boff = (np.r_[0, np.cumsum(o[rows + 1] - o[rows])].astype(np.int64) for o in (offsets, brand_offsets))
    at, bat = _ragged(offsets, rows), _ragged(brand_offsets, rows)
    return off, keys[at], values[at], boff, brands[bat], brand_key, need


def _own_keys(args: tuple, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows``' block keys, distinct."""
    return arrays.unique(_block_keys(_sub(args, rows))[0])


def _block_keys(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Every block key of ``args`` (the block keys' CSR arguments) with its row: counted, then made."""
    from . import spec_jit

    total = spec_jit.spec_block_keys(*args, 0, 1, np.zeros(0, np.uint64), np.zeros(0, np.int64))
    key, row = np.empty(total, dtype=np.uint64), np.empty(total, dtype=np.int64)
    spec_jit.spec_block_keys(*args, 0, 1, key, row)
    return key, row


def _keys_in(args: tuple, wanted: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's block keys that are among ``wanted`` (distinct: the keys of rows ``rows``), as their
    positions in ``wanted``, with their rows, rows in order (:func:`spec_jit.spec_row_keys`: the keys
    are made row by row, only these kept; of a row's entries, only those whose one-entry key ``rows``
    share make pairs, and only those of a value ``rows``' entries have are looked up)."""
    from . import spec_jit

    entries = _own_keys((*args[:-1], 1), rows) if args[-1] == 2 else np.zeros(0, dtype=np.uint64)
    marked = np.zeros(0, dtype=np.bool_)
    if args[-1] == 2 and len(args[2]):
        marked = np.zeros(int(args[2].max()) + 1, dtype=np.bool_)
        marked[args[2][_ragged(args[0], rows)]] = True
    size = max(1 << 16, 64 * len(wanted))  # a guess: the buffers grow in the pass when it is short
    n, at, row = spec_jit.spec_row_keys(*args, wanted, entries, marked, np.empty(size, dtype=np.int64),
                                        np.empty(size, dtype=np.int64))
    return at[:n], row[:n]


def _touched_blocks(args: tuple, touching: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """An incremental run's blocks, grouped, a block's rows in order: ``(block, row)``, ``block`` a
    number per key (sorted), for the keys of every block holding a ``touching`` row (the touching
    rows' keys made first, then every row's keys kept only when among them: memory holds those
    blocks, not the catalogue's keys, and a counting sort by block groups them, no sort of the
    keys), and the rows of capped blocks that touching rows take over the cap or head joined too
    (:func:`.kept_pairs.crossing`), with their blocks. ``touching`` is changed in place."""
    from .kept_pairs import crossing

    rows = np.flatnonzero(touching)
    wanted = _own_keys(args, rows)  # the touching rows' keys, then every row's among them
    block, row = _counting_sort(*_keys_in(args, wanted, rows), len(wanted))  # a block's rows stay in order
    star = crossing(block, row, touching, cap, np.ones(len(block), dtype=bool), presorted=True)
    star = arrays.unique(star[~touching[star]])
    if len(star):  # the stars' other blocks join: every row's keys among the stars' keys not read yet
        touching[star] = True
        more = _own_keys(args, star)
        more = more[~arrays.isin(more, wanted)]
        more_block, more_row = _keys_in(args, more, star)
        block, row = _counting_sort(np.concatenate([block, more_block + len(wanted)]), np.concatenate([row, more_row]),
                                    len(wanted) + len(more))
    return block, row


@numba.njit(cache=True, nogil=True)
def _counting_sort(block: np.ndarray, row: np.ndarray, n_blocks: int):  # pragma: no cover - compiled
    """``block`` and ``row`` ordered by ``block`` (< ``n_blocks``), stable: one counting pass, one scatter."""
    at = np.zeros(n_blocks + 1, dtype=np.int64)
    for t in range(len(block)):
        at[block[t] + 1] += 1
    for b in range(n_blocks):
        at[b + 1] += at[b]
    out_block = np.empty(len(block), dtype=np.int64)
    out_row = np.empty(len(row), dtype=np.int64)
    for t in range(len(block)):
        k = at[block[t]]
        out_block[k] = block[t]
        out_row[k] = row[t]
        at[block[t]] = k + 1
    return out_block, out_row


def _rows_keys(key: np.ndarray, row: np.ndarray, cap: int, n_rows: int) -> tuple:
    """(``key`` sorted.) Each row's block keys sorted, CSR ``(offsets, keys, not capped)``, and its uncapped keys as bits
    ``1 << (key >> 58)``, from the keys sorted by key (``row``: each key's row): what
    :func:`spec_jit.spec_block_pairs_once` finds a pair's first key in."""
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, len(key)])
    full = np.repeat(size <= cap, size)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=offsets[1:])
    by_row = _by_row(row, offsets)  # by row, then key (the keys are sorted): a counting sort, not a lexsort
    bits = np.zeros(n_rows, dtype=np.uint64)
    np.bitwise_or.at(bits, row[full], np.uint64(1) << (key[full] >> np.uint64(58)))
    return offsets, np.ascontiguousarray(key[by_row]), np.ascontiguousarray(full[by_row]), bits


@numba.njit(cache=True, nogil=True)
def _by_row(row: np.ndarray, offsets: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The stable order of ``row`` (rows < ``len(offsets) - 1``, ``offsets`` their CSR starts): a counting sort."""
    at = offsets[:-1].copy()
    order = np.empty(len(row), dtype=np.int64)
    for t in range(len(row)):
        order[at[row[t]]] = t
        at[row[t]] += 1
    return order


def _ragged(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The positions of rows ``rows``' entries in a CSR with ``offsets``."""
    from .key_runs import ragged_arange

    cnt = offsets[rows + 1] - offsets[rows]
    return np.repeat(offsets[rows], cnt) + ragged_arange(cnt)


def _rarest_entries(sp, freq: np.ndarray, keep: int,
                    chosen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each product's ``keep`` rarest non-brand ``(property, value)`` entries (``freq``: products
    listing each entry; fewest first, ties by code), in CSR form sorted by property then value
    (:func:`spec_jit.rarest_mask`: a row's entries are already in that order); ``chosen``: gets which
    entries of ``sp`` they are (else made here)."""
    from . import spec_jit

    chosen = np.empty(len(sp.keys), dtype=np.bool_) if chosen is None else chosen
    spec_jit.rarest_mask(sp.offsets, sp.keys, sp.values, np.ascontiguousarray(freq, dtype=np.int64), sp.brand_key,
                         keep, chosen)
    n = len(sp.offsets) - 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_numbers(sp.offsets)[chosen], minlength=n), out=offsets[1:])
    return offsets, sp.keys[chosen], sp.values[chosen]
