"""The segmented texts align keeps between runs.

Segmenting the texts (jieba) is most of a full run's time, and a changed sub-class is paired with
every sub-class of the other platforms in its class, so the segmented texts are kept too
(``derived/align/tokens.parquet``: per text hash its distinct tokens in order of first appearance
and their counts, which give the same term vectors), and so are their lines (``lines.parquet``:
per line hash its tokens): an incremental run segments only lines (titles) not seen before.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .inventory import SubClass

TOKENS = "tokens.parquet"
LINES = "lines.parquet"


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
        self.table = None if full else read_kept_table(store, TOKENS)  # the kept texts' tokens, as Arrow
        self.rows: dict[str, int] = {}  # text hash -> its row in self.table
        if self.table is not None:
            texts = self.table.column("text").to_pylist()
            self.rows = {t: n for n, t in enumerate(texts)}
            meta = self.table.schema.metadata or {}
            if ("content" in self.table.column_names and self.table.schema.field("content").type == pa.int64()
                    and meta.get(b"m5data.align.content", b"").decode() == self.weighting):
                self.contents = dict(zip(texts, self.table.column("content").to_pylist()))
        self.lines = None if full else read_kept_table(store, LINES)  # line hash (int64) -> its tokens, kept as Arrow
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
        """Tokens of every line of ``texts`` into ``line_tokens``: from the kept lines, else segmented
        (``progress(done, total)``: lines segmented of the lines not kept, one title a line)."""
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
            write_kept_table(self.store, LINES, table)
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
        write_kept_table(self.store, TOKENS, table.replace_schema_metadata({"m5data.align.content": self.weighting}))


@functools.lru_cache(maxsize=1 << 20)
def line_hash(line: str) -> int:
    """A signed 64-bit hash of one line of a text (the kept lines' key)."""
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def read_kept_table(store, name: str, dictionary=None) -> pa.Table | None:
    """The kept table ``derived/align/<name>``; None when there is none or it cannot be read.
    ``dictionary``: string columns to read as dictionary arrays."""
    data = store.read_bytes(f"derived/align/{name}")
    try:
        return None if data is None else pq.read_table(pa.BufferReader(data), read_dictionary=dictionary)
    except (OSError, pa.ArrowInvalid):
        return None


def write_kept_table(store, name: str, table: pa.Table) -> None:
    """Keep ``table`` as ``derived/align/<name>`` whole (a killed run leaves the previous file). Its chunks
    are combined first, and its lists' items named as Arrow names them: a run that resumed from a killed one's
    kept rows holds them as a chunk of their own, read back from Parquet, and would write the same rows as
    other bytes (benchmarks/chaos.py compares the files byte for byte)."""
    sink = pa.BufferOutputStream()
    pq.write_table(_arrow_lists(table).combine_chunks(), sink)
    store.write_bytes(f"derived/align/{name}", sink.getvalue().to_pybytes())


def _arrow_lists(table: pa.Table) -> pa.Table:
    """``table`` with every list column's items named as Arrow names them (``item``): rows read back from a
    kept file name them as Parquet does (``element``), and the file keeps its Arrow schema, so a run that kept
    rows would write the same rows as other bytes than a run that made them all."""
    fields = [pa.field(f.name, pa.list_(f.type.value_type), f.nullable, f.metadata) if pa.types.is_list(f.type) else f
              for f in table.schema]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table.cast(schema)  # (Schema.equals does not compare the items' names)
