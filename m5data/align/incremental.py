"""Align without re-scoring what it scored before: only sub-classes not seen before (or whose text changed).

A pair's S_label depends on the two names, its S_content on the two sub-classes' texts only (the
bulk engine's shared vocabulary adds nothing a pair's texts lack; see ``similarity.py``). So the
scores of the last complete run are kept (``derived/align/scores.parquet``: the pair, its scores
and a hash of each side's text) and reused for every pair whose two texts hash the same: an
incremental run scores only the pairs that touch a new sub-class or one whose first
``content_chars`` characters of titles changed. Decisions, groups, ids and tables are then made
from all the scores exactly as in a full run, so the result equals a full rebuild over the same
store (S_content may differ in the last bits of a float: the sparse sums run over another
vocabulary order).

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
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import changes
from .candidates import PairKey
from .inventory import SubClass

STAGE = "align"
READS = ("products",)  # what align reads (taxonomy and label_map are its own output)
KEPT = "scores.parquet"
TOKENS = "tokens.parquet"
LINES = "lines.parquet"
_SIDES = ("platform_a", "level1_a", "name_a", "platform_b", "level1_b", "name_b")


def text_hash(sub: SubClass) -> str:
    return _hash_text(sub.text)


@functools.lru_cache(maxsize=65536)  # a text is hashed once per run, not once per pair (str caches its own hash)
def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sub_hash(sub: SubClass) -> str:
    """What of a sub-class reaches align's output: its text, its product and level-3 counts, its class."""
    return hashlib.sha256(repr((sub.text, sub.n_products, sub.n_titled, sorted(sub.children.items()),
                                sub.class_id)).encode("utf-8")).hexdigest()[:16]


def inputs(settings, mapping, review, renumber: bool, review_out: Path | str) -> str:
    """The fingerprint of everything beside ``products`` that decides align's result (and where its review file goes:
    a path, or a str naming the store's own place, the same wherever the store lives)."""
    a = {k: v for k, v in asdict(settings.align).items() if k not in ("workers", "mapping")}
    return changes.fingerprint(a, f"file:{mapping}", f"file:{review}" if review else None, bool(renumber),
                               review_out if isinstance(review_out, str) else str(Path(review_out).absolute()))


def scoring(settings) -> str:
    """The fingerprint of what decides a pair's scores beside its texts (kept scores of another are dropped)."""
    a = settings.align
    return changes.fingerprint(a.engine, a.weighting, a.content_chars)


def load_kept(store, settings) -> dict[PairKey, tuple[float, float, str, str]]:
    """The last complete run's scores by pair, with each side's text hash; {} when none or of other settings."""
    table = _read(store, KEPT)
    if table is None:
        return {}
    meta = table.schema.metadata or {}
    if meta.get(b"m5data.align.scoring", b"").decode() != scoring(settings):
        return {}
    cols = [table.column(c).to_pylist() for c in (*_SIDES, "s_label", "s_content", "text_a", "text_b")]
    return {tuple(row[:6]): (row[6], math.nan if row[7] is None else row[7], row[8], row[9]) for row in zip(*cols)}


def reuse(subs: Sequence[SubClass], pairs, keys, kept) -> tuple[list[float], list[float], list[int]]:
    """Scores from ``kept`` where both texts are unchanged; the indexes of the pairs still to score.

    A kept pair whose text changed keeps its S_label (a pair's key holds both names, all S_label reads):
    only its S_content is still to compute (``s_label`` is not NaN there)."""
    s_label = [math.nan] * len(pairs)
    s_content = [math.nan] * len(pairs)
    todo = []
    for k, (i, j) in enumerate(pairs):
        old = kept.get(keys[k])
        if old is not None:
            s_label[k] = old[0]
            if (text_hash(subs[i]), text_hash(subs[j])) == (old[2], old[3]):  # text_hash is cached
                s_content[k] = old[1]
                continue
        todo.append(k)
    return s_label, s_content, todo


def save_kept(store, settings, subs, pairs, keys, s_label, s_content) -> None:
    """Keep every pair's scores for the next run (atomic: a killed run leaves the previous file)."""
    cols = {name: [key[n] for key in keys] for n, name in enumerate(_SIDES)}
    cols["s_label"] = list(s_label)
    cols["s_content"] = [None if math.isnan(v) else v for v in s_content]
    cols["text_a"] = [text_hash(subs[i]) for i, _ in pairs]
    cols["text_b"] = [text_hash(subs[j]) for _, j in pairs]
    schema = pa.schema([pa.field(n, pa.string()) for n in _SIDES] + [
        pa.field("s_label", pa.float64()), pa.field("s_content", pa.float64()),
        pa.field("text_a", pa.string()), pa.field("text_b", pa.string())],
        metadata={"m5data.align.scoring": scoring(settings)})
    _write(store, KEPT, pa.table(cols, schema=schema))


class TokenCache:
    """Segmented texts by text hash, their lines by line hash: kept ones are reused, new lines segmented.

    A text (a sub-class's titles joined by newlines, cut) is segmented line by line: a newline is a
    block boundary for jieba and for the analyser, so its tokens are its lines' tokens in order (checked
    on the 100k scale world's texts). A sub-class that gained one product then costs one title's
    segmentation, not its whole text's: at 100k products, +1% new products changed 557 of 3,478
    texts, whose segmentation was 26 s of the incremental run.
    """

    def __init__(self, store, full: bool = False):
        self.store = store
        self.kept: dict[str, tuple[list, list]] = {} if full else self._load()
        self.lines = None if full else _read(store, LINES)  # line hash (int64) -> its tokens, kept as Arrow
        self.line_tokens: dict[int, list[str]] = {}  # lines this run read or segmented
        self.segmented = 0  # texts this run made (from kept or new lines)
        self.segmented_lines = 0  # lines this run segmented

    def _load(self) -> dict[str, tuple[list, list]]:
        t = _read(self.store, TOKENS)
        if t is None:
            return {}
        return dict(zip(t.column("text").to_pylist(), zip(t.column("terms").to_pylist(), t.column("counts").to_pylist())))

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
        self.segmented_lines += len(missing)

    def __call__(self, texts: list[str], workers: int, progress) -> list[list[str]]:
        keys = [_hash_text(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.kept}.items())
        self._segment_lines([t for _, t in missing], workers, progress)
        for k, text in missing:
            counts: dict[str, int] = {}
            for line in text.split("\n"):
                for tok in self.line_tokens[line_hash(line)]:
                    counts[tok] = counts.get(tok, 0) + 1
            self.kept[k] = (list(counts), list(counts.values()))
        self.segmented += len(missing)
        return [[term for term, n in zip(*self.kept[k]) for _ in range(n)] for k in keys]

    def save(self, subs: Sequence[SubClass]) -> None:
        """Keep the tokens of the sub-classes' current lines, then of their texts (each file atomic).

        Lines first: a run killed between the two writes leaves texts the next run makes again from
        kept lines; the other order would leave kept texts whose lines the next run never reads
        (it needs none), and it would keep no line of them.
        """
        import pyarrow.compute as pc

        current = pa.array(sorted({line_hash(line) for s in subs if s.text for line in s.text.split("\n")}), pa.int64())
        parts = []
        if self.lines is not None:  # the kept lines still in a text, as Arrow (never turned into Python)
            parts.append(self.lines.filter(pc.is_in(self.lines.column("line"), current)).select(["line", "tokens"]))
        new = pa.array(sorted(self.line_tokens), pa.int64())
        if parts:  # the lines this run read or segmented that the kept ones lack (in Arrow: no set of every line)
            new = new.filter(pc.invert(pc.is_in(new, parts[0].column("line"))))
        new = new.to_pylist()
        new_table = pa.table({"line": pa.array(new, pa.int64()),
                              "tokens": pa.array([self.line_tokens[k] for k in new], pa.list_(pa.string()))})
        parts.append(new_table.filter(pc.is_in(new_table.column("line"), current)))
        _write(self.store, LINES, pa.concat_tables(parts).sort_by("line"))
        keys = sorted({text_hash(s) for s in subs} & set(self.kept))
        table = pa.table({"text": keys, "terms": [self.kept[k][0] for k in keys],
                          "counts": pa.array([self.kept[k][1] for k in keys], pa.list_(pa.int32()))})
        _write(self.store, TOKENS, table)


@functools.lru_cache(maxsize=1 << 20)
def line_hash(line: str) -> int:
    """A signed 64-bit hash of one line of a text (the kept lines' key)."""
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _read(store, name: str) -> pa.Table | None:
    """The kept table ``derived/align/<name>``; None when there is none or it cannot be read."""
    data = store.read_bytes(f"derived/align/{name}")
    try:
        return None if data is None else pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowInvalid):
        return None


def _write(store, name: str, table: pa.Table) -> None:
    """Keep ``table`` as ``derived/align/<name>`` whole (a killed run leaves the previous file)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.write_bytes(f"derived/align/{name}", sink.getvalue().to_pybytes())


def sub_changes(subs: Sequence[SubClass], previous: dict | None) -> dict[str, int]:
    """``new``/``changed``/``unchanged`` sub-classes against the last complete run's."""
    before = (previous or {}).get("subclasses") or {}
    out = {"new": 0, "changed": 0, "unchanged": 0}
    for sub in subs:
        old = before.get("\t".join(sub.key))
        out["new" if old is None else "unchanged" if old == sub_hash(sub) else "changed"] += 1
    return out


def sub_hashes(subs: Sequence[SubClass]) -> dict[str, str]:
    return {"\t".join(s.key): sub_hash(s) for s in subs}
