"""Align without re-scoring what it scored before: only sub-classes not seen before (or whose term vectors changed).

A pair's S_label depends on the two names, its S_content on the two sub-classes' term vectors only (the
bulk engine's shared vocabulary adds nothing a pair's texts lack; see ``similarity.py``). So the
scores of the last complete run are kept (``derived/align/scores.parquet``: the pair, its scores
and each side's :func:`content_hash`) and reused for every pair whose two content hashes are the same:
an incremental run scores only the pairs that touch a new sub-class or one whose vectors of the first
``content_chars`` characters of titles changed (a new title that adds no term changes the text, not
the vectors). Every pair is matched, decided and written in numpy and Arrow, not a Python row per pair.
Decisions, groups, ids and tables are then made from all the scores exactly as in a full run, so the
result equals a full rebuild over the same store (S_content may differ in the last bits of a float:
the sparse sums run over another vocabulary order).

Segmenting the texts (jieba) is most of a full run's time, and a changed sub-class is paired with
every sub-class of the other platforms in its class, so the segmented texts are kept too
(``derived/align/tokens.parquet``: per text hash its distinct tokens in order of first appearance
and their counts, which give the same term vectors), and so are their lines (``lines.parquet``:
per line hash its tokens): an incremental run segments only lines (titles) not seen before.

When nothing align reads was written since its last complete run (the ``products`` watermark,
``storage/changes.py``) and its settings, mapping and review file are the same, it does no work.
``--full`` (``full=True``) ignores both.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..stages import fingerprint
from .inventory import SubClass

STAGE = "align"
READS = ("products",)  # what align reads (taxonomy and label_map are its own output)
KEPT = "scores.parquet"
TOKENS = "tokens.parquet"
LINES = "lines.parquet"
_SIDES = ("platform_a", "level1_a", "name_a", "platform_b", "level1_b", "name_b")


@functools.lru_cache(maxsize=65536)  # a text is hashed once per run, not once per pair (str caches its own hash)
def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def content_hash(text: str, terms: Sequence[str], counts: Sequence[int], weighting: str) -> int:
    """What of a text reaches S_content: whether it has a CJK character (simtext segments a pair's texts
    when its first one has), its segmented term vector and its unsegmented one (the presence set for
    ``binary``, the counts for ``counts``). Two texts with the same hash give every pair the same S_content
    (a title that adds no term, e.g. a second product under a title the sub-class has, changes its text,
    not its hash). ``terms``/``counts``: the segmented text's distinct tokens and their counts. A signed
    64-bit int (never 0, which stands for a sub-class without titles)."""
    from .similarity import contains_cjk, tokens

    raw = tokens(text, False)
    if weighting == "binary":
        seg_vec, raw_vec = sorted(terms), sorted(set(raw))
    else:
        seg_vec = sorted(zip(terms, counts))
        raw_counts: dict[str, int] = {}
        for tok in raw:
            raw_counts[tok] = raw_counts.get(tok, 0) + 1
        raw_vec = sorted(raw_counts.items())
    data = repr((contains_cjk(text), seg_vec, raw_vec)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True) or 1


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
    table = _read(store, KEPT, dictionary=_SIDES)  # sides as dictionaries: ~3,500 names, not 378k strings each
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
    when both sides' content hashes (:func:`content_hash`) are the ones it was scored with. All in numpy
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
    _write(store, KEPT, pa.Table.from_arrays(cols, schema=schema))


class TokenCache:
    """Segmented texts by text hash, their lines by line hash: kept ones are reused, new lines segmented.

    A text (a sub-class's titles joined by newlines, cut) is segmented line by line: a newline is a
    block boundary for jieba and for the analyser, so its tokens are its lines' tokens in order (checked
    on the 100k scale world's texts). A sub-class that gained one product then costs one title's
    segmentation, not its whole text's: at 100k products, +1% new products changed 557 of 3,478
    texts, whose segmentation was 26 s of the incremental run.

    Both kept tables stay Arrow: a text's tokens become Python lists only when this run needs them (the
    texts it scores or hashes), and saving filters and appends in Arrow. Kept lines are only appended to
    between prunes: a line no current text holds is dropped by a full run, or once the file has grown by
    a quarter since it was last pruned (``PRUNE_GROWTH``), so an incremental run does not hash every
    line of every text to find the current ones.
    """

    PRUNE_GROWTH = 1.25

    def __init__(self, store, full: bool = False, weighting: str = "binary"):
        self.store = store
        self.full = full
        self.weighting = weighting
        self.contents: dict[str, int] = {}  # text hash -> content_hash (kept ones of this weighting, then made)
        self.kept: dict[str, tuple[list, list]] = {}  # text hash -> (terms, counts): read or made this run
        self.made: set[str] = set()  # texts this run made (not in the kept table)
        self.table = None if full else _read(store, TOKENS)  # the kept texts' tokens, as Arrow
        self.rows: dict[str, int] = {}  # text hash -> its row in self.table
        if self.table is not None:
            texts = self.table.column("text").to_pylist()
            self.rows = {t: n for n, t in enumerate(texts)}
            meta = self.table.schema.metadata or {}
            if ("content" in self.table.column_names and self.table.schema.field("content").type == pa.int64()
                    and meta.get(b"m5data.align.content", b"").decode() == self.weighting):
                self.contents = dict(zip(texts, self.table.column("content").to_pylist()))
        self.lines = None if full else _read(store, LINES)  # line hash (int64) -> its tokens, kept as Arrow
        self.line_tokens: dict[int, list[str]] = {}  # lines this run read or segmented
        self.new_lines: set[int] = set()  # lines this run segmented
        self.segmented = 0  # texts this run made (from kept or new lines)
        self.segmented_lines = 0  # lines this run segmented

    def _read_kept(self, keys: list[str]) -> None:
        """The kept tokens of ``keys`` (all in the kept table) into ``self.kept``, in one take."""
        if keys:
            rows = self.table.take(pa.array([self.rows[k] for k in keys], pa.int64()))
            self.kept.update(zip(keys, zip(rows.column("terms").to_pylist(), rows.column("counts").to_pylist())))

    def _segment_lines(self, texts: list[str], workers: int, progress) -> None:
        """Tokens of every line of ``texts`` into ``line_tokens``: from the kept lines, else segmented."""
        from .similarity import segment_all

        needed = {line_hash(line): line for text in texts for line in text.split("\n")}
        needed = {k: v for k, v in needed.items() if k not in self.line_tokens}
        if self.lines is not None and needed:
            import pyarrow.compute as pc

            found = self.lines.filter(pc.is_in(self.lines.column("line"), pa.array(list(needed), pa.int64())))
            self.line_tokens.update(zip(found.column("line").to_pylist(), found.column("tokens").to_pylist()))
        missing = sorted((k, line) for k, line in needed.items() if k not in self.line_tokens)
        for (k, _), toks in zip(missing, segment_all([line for _, line in missing], workers, progress)):
            self.line_tokens[k] = toks
        self.new_lines.update(k for k, _ in missing)
        self.segmented_lines += len(missing)

    TAIL_LINES = 4  # lines a text may have gained at its end and still be made from a kept text

    def _kept_head(self, text: str) -> tuple[str, int] | None:
        """A kept text that ``text`` extends by up to ``TAIL_LINES`` whole lines: (its hash, where it ends).

        Titles are in product id order, so a new product whose id sorts last (ids that grow with time)
        adds its title at the end of its sub-class's text. The kept text's tokens are then the first
        ones of ``text`` (a text's tokens are its lines' tokens in order; the kept text may end in a title
        cut at ``content_chars``, which is a line of ``text`` as well), and only the new lines are counted."""
        cut = len(text)
        for _ in range(self.TAIL_LINES):
            cut = text.rfind("\n", 0, cut)
            if cut <= 0:
                return None
            head = hashlib.sha256(text[:cut].encode("utf-8")).hexdigest()[:16]  # _hash_text, uncached
            if head in self.kept or head in self.rows:
                return head, cut
        return None

    def _make(self, texts: list[str], workers: int, progress) -> list[str]:
        """The tokens (distinct terms, counts) of every text of ``texts`` into ``self.kept``: read from the
        kept table, else made from a kept text it extends and its new lines, else from all its lines;
        returns the texts' hashes."""
        keys = [_hash_text(t) for t in texts]
        self._read_kept(sorted({k for k in keys if k not in self.kept and k in self.rows}))
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.kept}.items())
        heads = {k: head for k, text in missing if (head := self._kept_head(text)) is not None}
        self._read_kept(sorted({h for h, _ in heads.values() if h not in self.kept}))
        tails = {k: text[heads[k][1] + 1:] if k in heads else text for k, text in missing}
        self._segment_lines(list(tails.values()), workers, progress)
        for k, _ in missing:
            counts: dict[str, int] = dict(zip(*self.kept[heads[k][0]])) if k in heads else {}
            for line in tails[k].split("\n"):
                for tok in self.line_tokens[line_hash(line)]:
                    counts[tok] = counts.get(tok, 0) + 1
            self.kept[k] = (list(counts), list(counts.values()))
            self.made.add(k)
        self.segmented += len(missing)
        return keys

    def __call__(self, texts: list[str], workers: int, progress) -> list[list[str]]:
        keys = self._make(texts, workers, progress)
        return [[term for term, n in zip(*self.kept[k]) for _ in range(n)] for k in keys]

    def counted(self, texts: list[str], workers: int, progress) -> list[tuple[list, list]]:
        """Each text's distinct tokens in order of first appearance and their counts (what ``__call__``'s
        token lists count up to)."""
        return [self.kept[k] for k in self._make(texts, workers, progress)]

    def content(self, subs: Sequence[SubClass], workers: int = 1, progress=None) -> list[int]:
        """Each sub-class's :func:`content_hash` (0 without titles): kept by text hash, else made from its
        tokens (segmenting only lines not seen before)."""
        texts = sorted({s.text for s in subs if s.text and _hash_text(s.text) not in self.contents})
        for k, text in zip(self._make(texts, workers, progress), texts):
            self.contents[k] = content_hash(text, *self.kept[k], self.weighting)
        return [self.contents[_hash_text(s.text)] if s.text else 0 for s in subs]

    def save(self, subs: Sequence[SubClass]) -> None:
        """Keep the lines this run segmented, then the tokens of the sub-classes' current texts (each file atomic).

        Lines first: a run killed between the two writes leaves texts the next run makes again from
        kept lines; the other order would leave kept texts whose lines the next run never reads
        (it needs none), and it would keep no line of them.
        """
        import pyarrow.compute as pc

        self.content(subs)  # every current text has its tokens and content hash (a full run has made most)
        new = sorted(self.new_lines)
        kept_lines = 0 if self.lines is None else self.lines.num_rows
        pruned = int((self.lines.schema.metadata or {}).get(b"m5data.align.pruned", b"0")) if self.lines is not None else 0
        if new or self.lines is None:
            table = pa.table({"line": pa.array(new, pa.int64()),
                              "tokens": pa.array([self.line_tokens[k] for k in new], pa.list_(pa.string()))})
            if self.lines is not None:  # appended after the kept lines (in line order among themselves)
                table = pa.concat_tables([self.lines.select(["line", "tokens"]).replace_schema_metadata(None), table])
            if self.lines is None or kept_lines + len(new) > self.PRUNE_GROWTH * pruned:
                current = pa.array(sorted({line_hash(line) for s in subs if s.text for line in s.text.split("\n")}),
                                   pa.int64())
                table = table.filter(pc.is_in(table.column("line"), current))
                pruned = table.num_rows
            table = table.replace_schema_metadata({"m5data.align.pruned": str(pruned)})
            _write(self.store, LINES, table)
        current = sorted({_hash_text(s.text) for s in subs if s.text})
        parts = []
        if self.table is not None:  # the kept texts still current, as Arrow
            parts.append(self.table.filter(pc.is_in(self.table.column("text"), pa.array(current, pa.string())))
                         .select(["text", "terms", "counts"]).replace_schema_metadata(None))
        made = [k for k in current if k not in self.rows]
        parts.append(pa.table({"text": pa.array(made, pa.string()),
                               "terms": pa.array([self.kept[k][0] for k in made], pa.list_(pa.string())),
                               "counts": pa.array([self.kept[k][1] for k in made], pa.list_(pa.int32()))}))
        table = pa.concat_tables(parts).sort_by("text")
        table = table.append_column("content", pa.array([self.contents[k] for k in table.column("text").to_pylist()],
                                                        pa.int64()))
        _write(self.store, TOKENS, table.replace_schema_metadata({"m5data.align.content": self.weighting}))


@functools.lru_cache(maxsize=1 << 20)
def line_hash(line: str) -> int:
    """A signed 64-bit hash of one line of a text (the kept lines' key)."""
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _read(store, name: str, dictionary=None) -> pa.Table | None:
    """The kept table ``derived/align/<name>``; None when there is none or it cannot be read.
    ``dictionary``: string columns to read as dictionary arrays."""
    data = store.read_bytes(f"derived/align/{name}")
    try:
        return None if data is None else pq.read_table(pa.BufferReader(data), read_dictionary=dictionary)
    except (OSError, pa.ArrowInvalid):
        return None


def _write(store, name: str, table: pa.Table) -> None:
    """Keep ``table`` as ``derived/align/<name>`` whole (a killed run leaves the previous file)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.write_bytes(f"derived/align/{name}", sink.getvalue().to_pybytes())


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
