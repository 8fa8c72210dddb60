"""Align without re-scoring what it scored before: only sub-classes not seen before (or whose term vectors changed).

A pair's S_label depends on the two names, its S_content on the two sub-classes' term vectors only (the
bulk engine's shared vocabulary adds nothing a pair's texts lack; see ``similarity.py``). So the
scores of the last complete run are kept (``derived/align/scores.parquet``: the pair, its scores
and each side's :func:`.tokens.content_hash`) and reused for every pair whose two content hashes are the same:
an incremental run scores only the pairs that touch a new sub-class or one whose vectors of the first
``content_chars`` characters of titles changed (a new title that adds no term changes the text, not
the vectors). Every pair is matched, decided and written in numpy and Arrow, not a Python row per pair.
Decisions, groups, ids and tables are then made from all the scores exactly as in a full run, so the
result equals a full rebuild over the same store (S_content may differ in the last bits of a float:
the sparse sums run over another vocabulary order). The segmented texts are kept too (``tokens.py``).

When nothing align reads was written since its last complete run (the ``products`` watermark,
``storage/changes.py``) and its settings, mapping and review file are the same, it does no work.
``--full`` (``full=True``) ignores both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..stages import fingerprint
from .inventory import SubClass
from .tokens import read_kept_table, write_kept_table

STAGE = "align"
READS = ("products",)  # what align reads (taxonomy and label_map are its own output)
KEPT = "scores.parquet"
_SIDES = ("platform_a", "level1_a", "name_a", "platform_b", "level1_b", "name_b")


def sub_hash(sub: SubClass) -> str:
    """What of a sub-class reaches align's output: its text, its product and level-3 counts, its class."""
    return hashlib.sha256(repr((sub.text, sub.n_products, sub.n_titled, sorted(sub.children.items()),
                                sub.class_id)).encode("utf-8")).hexdigest()[:16]


def inputs(settings, mapping, review, renumber: bool, review_out: Path | str) -> tuple:
    """Everything beside ``products`` that decides align's result (and where its review file goes: a path,
    or a str naming the store's own place, the same wherever the store lives): the run's fingerprint."""
    a = {k: v for k, v in asdict(settings.align).items() if k not in ("workers", "mapping")}
    return (a, f"file:{mapping}", f"file:{review}" if review else None, bool(renumber),
            review_out if isinstance(review_out, str) else str(Path(review_out).absolute()))


def scoring(settings) -> str:
    """The fingerprint of what decides a pair's scores beside its texts (kept scores of another are dropped)."""
    a = settings.align
    return fingerprint(a.engine, a.weighting, a.content_chars)


def load_kept(store, settings) -> pa.Table | None:
    """The last complete run's scores (a row per pair: its sides, scores and each side's content hash);
    None when there are none or they are of other settings."""
    table = read_kept_table(store, KEPT, dictionary=_SIDES)  # sides as dictionaries: ~3,500 names, not 378k strings each
    if table is None:
        return None
    meta = table.schema.metadata or {}
    if meta.get(b"m5data.align.scoring", b"").decode() != scoring(settings):
        return None
    if any(c not in table.column_names or table.schema.field(c).type != pa.int64() for c in ("content_a", "content_b")):
        table = table.drop_columns([c for c in ("content_a", "content_b") if c in table.column_names])
        for c in ("content_a", "content_b"):  # kept by an older version (text hashes): S_label only
            table = table.append_column(c, pa.array(np.zeros(table.num_rows, dtype=np.int64)))
    return table


def sub_index(subs: Sequence[SubClass], platform, level1, name) -> np.ndarray:
    """The index in ``subs`` of each (platform, level-1 name, name) of three Arrow string columns; -1: none.

    Each column is coded by its value's place among the sub-classes' values of that column (exact: no
    separator that a name could hold), and the three codes are matched against the sub-classes' own."""
    if not subs:
        return np.full(len(platform), -1, dtype=np.int64)
    theirs, mine, width = [], [], []
    for n, column in enumerate((platform, level1, name)):
        values = sorted({s.key[n] for s in subs})
        where = {v: k for k, v in enumerate(values)}
        theirs.append(_codes(column, pa.array(values, pa.string())))
        mine.append(np.array([where[s.key[n]] for s in subs], dtype=np.int64))
        width.append(len(values))

    def code(c):
        return (c[0] * width[1] + c[1]) * width[2] + c[2]

    missing = (theirs[0] < 0) | (theirs[1] < 0) | (theirs[2] < 0)
    return np.where(missing, -1, lookup(code(mine), code(theirs)))


def _codes(column, values: pa.Array) -> np.ndarray:
    """The place of each value of ``column`` (strings, or a dictionary of strings) in ``values``; -1: none."""
    import pyarrow.compute as pc

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        if isinstance(chunk, pa.DictionaryArray):  # the dictionary's few values, then its indexes
            codes = pc.fill_null(pc.index_in(chunk.dictionary, value_set=values), -1).to_numpy(zero_copy_only=False)
            indices = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
            found = np.where(chunk.is_null().to_numpy(zero_copy_only=False), -1, codes.astype(np.int64)[indices])
        else:
            found = pc.fill_null(pc.index_in(chunk, value_set=values), -1).to_numpy(zero_copy_only=False)
        out.append(np.asarray(found, dtype=np.int64))
    return np.concatenate(out)


def lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The position in ``keys`` (unique int64) of each of ``wanted``; -1 where it is not there."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], wanted).clip(0, len(keys) - 1)
    found = keys[order][pos] == wanted
    return np.where(found, order[pos], -1)


def reuse(subs: Sequence[SubClass], left: np.ndarray, right: np.ndarray, contents: Sequence[int],
          kept: pa.Table | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S_label and S_content of the pairs (``left[k]``, ``right[k]``) from ``kept`` (NaN: not there); the
    indexes of the pairs still to score.

    A kept pair keeps its S_label (a pair's key holds both names, all S_label reads) and its S_content
    when both sides' content hashes (:func:`.tokens.content_hash`) are the ones it was scored with. All in numpy
    and Arrow: a pair is the int ``left * n + right``, matched by a sorted search."""
    n_pairs = len(left)
    s_label = np.full(n_pairs, np.nan)
    s_content = np.full(n_pairs, np.nan)
    if kept is None or not kept.num_rows or not n_pairs:
        return s_label, s_content, np.arange(n_pairs)
    n = len(subs)
    ka = sub_index(subs, kept.column("platform_a"), kept.column("level1_a"), kept.column("name_a"))
    kb = sub_index(subs, kept.column("platform_b"), kept.column("level1_b"), kept.column("name_b"))
    known = (ka >= 0) & (kb >= 0)
    rows = np.flatnonzero(known)
    at = lookup(ka[rows] * n + kb[rows], left * n + right)  # the kept row of each pair, -1: none
    hit = at >= 0
    src = rows[at[hit]]
    s_label[hit] = kept.column("s_label").to_numpy(zero_copy_only=False)[src]
    mine = np.asarray(contents, dtype=np.int64)
    same = ((mine[left[hit]] == kept.column("content_a").to_numpy()[src])
            & (mine[right[hit]] == kept.column("content_b").to_numpy()[src]))
    content = kept.column("s_content").to_numpy(zero_copy_only=False)[src]  # a null (no content) reads NaN
    both = np.flatnonzero(hit)[same]
    s_content[both] = content[same]
    done = np.zeros(n_pairs, dtype=bool)
    done[both] = True
    return s_label, s_content, np.flatnonzero(~done)


def save_kept(store, settings, subs, left, right, s_label, s_content, contents) -> None:
    """Keep every pair's scores for the next run (atomic: a killed run leaves the previous file). A side's
    names are dictionary columns (indexes into each column's distinct names), as they are read back."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    mine = np.asarray(contents, dtype=np.int64)
    cols = []
    for rows in (left, right):
        for n in range(3):
            values = sorted({s.key[n] for s in subs})
            where = {v: k for k, v in enumerate(values)}
            code = np.array([where[s.key[n]] for s in subs], dtype=np.int32)
            cols.append(pa.DictionaryArray.from_arrays(pa.array(code[rows] if len(rows) else np.zeros(0, np.int32)),
                                                       pa.array(values, pa.string())))
    cols += [pa.array(np.asarray(s_label, dtype=np.float64)),
             pa.array(np.asarray(s_content, dtype=np.float64), from_pandas=True),  # NaN -> null
             pa.array(mine[left] if len(left) else np.zeros(0, np.int64)),
             pa.array(mine[right] if len(right) else np.zeros(0, np.int64))]
    schema = pa.schema([pa.field(n, pa.dictionary(pa.int32(), pa.string())) for n in _SIDES] + [
        pa.field("s_label", pa.float64()), pa.field("s_content", pa.float64()),
        pa.field("content_a", pa.int64()), pa.field("content_b", pa.int64())],
        metadata={"m5data.align.scoring": scoring(settings)})
    write_kept_table(store, KEPT, pa.Table.from_arrays(cols, schema=schema))


def sub_changes(hashes: dict[str, str], previous: dict | None) -> dict[str, int]:
    """``new``/``changed``/``unchanged`` sub-classes (``hashes``: :func:`sub_hashes`) against the last complete run's."""
    before = (previous or {}).get("subclasses") or {}
    out = {"new": 0, "changed": 0, "unchanged": 0}
    for key, now in hashes.items():
        old = before.get(key)
        out["new" if old is None else "unchanged" if old == now else "changed"] += 1
    return out


def sub_hashes(subs: Sequence[SubClass]) -> dict[str, str]:
    return {"\t".join(s.key): sub_hash(s) for s in subs}
