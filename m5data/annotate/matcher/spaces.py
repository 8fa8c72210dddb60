"""The products' representations the pair features are read from: TF-IDF rows of title and text
character n-grams and words (weights fitted on the products or a trained model's, :class:`TextWeights`),
word, code, number and spec sets as sparse binary rows, and each product's two nearest other products
in a space (:func:`top2`). Built once per set of products by :class:`.features.PairFeatures`."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import scipy.sparse as sp

from . import text as tx
from .products import Products

CONTEXT_BLOCK = 2048  # products per block of the nearest-neighbour search behind the *_margin features
WEIGHTED = ("title_char", "text_char", "title_word", "text_word")  # the TF-IDF spaces (TextWeights)
TEXT_CHAR_MAX = 2 ** 18  # text character n-grams kept when fitting (the most frequent), as before
MAX_TERMS = 2 ** 20  # terms per space a model file keeps (the most common): a 1M-product store's grams


def binary_sets(lists: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """Products x vocabulary, 1 where the product's list holds the token, and the vocabulary (each
    column's token, in order of first sight). The tokens are dictionary-encoded by Arrow in one call
    (a Python dict lookup a token was 14 s of the 100k scale world's profiled 72 s)."""
    cols, terms = _encode(list(chain.from_iterable(lists)))
    return _ones(np.fromiter(map(len, lists), np.int64, len(lists)), cols, len(terms)), terms


def _encode(flat: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each string's index into the distinct strings (in order of first sight), and those strings."""
    import pyarrow as pa

    if not flat:
        return np.zeros(0, np.int64), []
    enc = pa.array(flat, pa.string()).dictionary_encode()
    return enc.indices.to_numpy().astype(np.int64), enc.dictionary.to_pylist()


def _ones(lengths: np.ndarray, cols: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """Rows x columns, 1 at ``cols`` (row ``i`` holds the next ``lengths[i]`` of them; duplicates merged)."""
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    x = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(lengths), max(1, n_cols)))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def remap(x: sp.csr_matrix, to: np.ndarray) -> sp.csr_matrix:
    """The 0/1 matrix of ``x``'s columns mapped by ``to`` (-1: dropped; several onto one: merged)."""
    col = to[x.indices]
    keep = col >= 0
    rows = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))
    return _ones(np.bincount(rows[keep], minlength=x.shape[0]), col[keep], int(to.max(initial=-1)) + 1)


def spec_sets(specs: list[dict[str, str]], n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Products x properties and products x (property, value) pairs, 1 where the product lists them."""
    lengths = np.fromiter(map(len, specs), np.int64, len(specs)) if specs else np.zeros(n, np.int64)
    keys, _ = _encode(list(chain.from_iterable(specs)))
    values, distinct = _encode(list(chain.from_iterable(s.values() for s in specs)))
    _, pair = np.unique(keys * max(1, len(distinct)) + values, return_inverse=True)
    return _ones(lengths, keys, int(keys.max(initial=-1)) + 1), _ones(lengths, pair.ravel(), int(pair.max(initial=-1)) + 1)


def _char_counts(texts: list[str]) -> tuple:
    """Character 2-4-gram counts (``char_wb``, as scikit-learn's analyser) of cleaned texts:
    ``(indptr, term, count, df, grams)`` (:func:`.char_grams_jit.char_grams`); counted in Python where
    the texts hold more distinct characters than the compiled keys take."""
    from .char_grams_jit import char_grams

    try:
        return char_grams(texts, 2, 4)
    except ValueError:
        from sklearn.feature_extraction.text import TfidfVectorizer

        grams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False).build_analyzer()
        vocab: dict[str, int] = {}
        indptr, term, count = [0], [], []
        for t in texts:
            c: dict[int, int] = {}
            for g in grams(t):
                k = vocab.setdefault(g, len(vocab))
                c[k] = c.get(k, 0) + 1
            term.extend(c)
            count.extend(c.values())
            indptr.append(len(term))
        term_a = np.asarray(term, np.int64)
        return (np.asarray(indptr, np.int64), term_a, np.asarray(count, np.int64),
                np.bincount(term_a, minlength=len(vocab)), list(vocab))


def smooth_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """scikit-learn's smooth IDF: ``ln((1 + n) / (1 + df)) + 1``."""
    return (np.log((n_docs + 1) / (np.asarray(df, np.float64) + 1)) + 1).astype(np.float32)


@dataclass
class TextWeights:
    """The training products' document frequencies per TF-IDF space (the model file keeps them): dedup
    weights its candidates' text with these instead of fitting a TF-IDF per run. A term the training
    products never held weighs as the rarest (``df`` 0)."""

    n_docs: int
    spaces: dict[str, tuple[list[str], np.ndarray]]  # space -> (terms, df)

    def idf(self, space: str, terms: list[str]) -> np.ndarray:
        """The smoothed IDF of ``terms`` under these frequencies, looked up by Arrow (a Python dict lookup a
        term was ~0.4 s of the 100k scale world's 780,000 n-grams and words)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        known, df = self._index(space)
        at = pc.index_in(pa.array(terms, pa.string()), value_set=known).fill_null(-1).to_numpy(zero_copy_only=False)
        return smooth_idf(np.where(at >= 0, np.r_[df, 0][at], 0), self.n_docs)

    def _index(self, space: str):
        """The space's terms as an Arrow array (the last of a repeated term's counts wins, as a dict's) and
        their counts."""
        import pyarrow as pa

        cache = self.__dict__.setdefault("_cache", {})
        if space not in cache:
            terms, df = self.spaces[space]
            df = np.asarray(df, np.int64)
            if len(set(terms)) < len(terms):  # a file with a term twice: keep its last count
                last = {t: i for i, t in enumerate(terms)}
                keep = np.array(sorted(last.values()), dtype=np.int64)
                terms, df = [terms[i] for i in keep.tolist()], df[keep]
            cache[space] = (pa.array(terms, pa.string()), df)
        return cache[space]

    def to_json(self) -> dict:
        return {"n_docs": self.n_docs, "spaces": {k: {"terms": t, "df": d.tolist()} for k, (t, d) in self.spaces.items()}}

    @classmethod
    def from_json(cls, d: dict) -> TextWeights:
        n = int(d["n_docs"])
        spaces = {}
        for name in WEIGHTED:
            terms, df = [str(t) for t in d["spaces"][name]["terms"]], np.asarray(d["spaces"][name]["df"], dtype=np.int64)
            if len(terms) != len(df) or (df < 0).any() or (df > n).any():
                raise ValueError(f"text weights {name}: terms and document counts do not agree")
            spaces[name] = (terms, df)
        return cls(n, spaces)

    @classmethod
    def fitted(cls, n_docs: int, spaces: dict[str, tuple[list[str], np.ndarray]]) -> TextWeights:
        """From a fit's terms and counts, each space cut to its :data:`MAX_TERMS` most common terms."""
        out = {}
        for name, (terms, df) in spaces.items():
            df = np.asarray(df, np.int64)[:len(terms)]
            if len(terms) > MAX_TERMS:
                keep = np.sort(np.argsort(-df, kind="stable")[:MAX_TERMS])
                terms, df = [terms[i] for i in keep], df[keep]
            out[name] = (list(terms), df)
        return cls(n_docs, out)


def doc_freq(b: sp.csr_matrix, n_terms: int) -> np.ndarray:
    return np.asarray(b.sum(axis=0)).ravel()[:n_terms].astype(np.int64)


def padded(idf: np.ndarray, n: int) -> np.ndarray:
    """``idf`` to ``n`` columns (a matrix of no terms has one empty column)."""
    return np.r_[idf, np.ones(n - len(idf), np.float32)] if len(idf) < n else idf


def l2_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1 / np.where(norms > 0, norms, 1)).dot(x).tocsr()  # unsorted as it comes: the neighbour
    # search's sums (x @ x.T) follow the order of its columns


def rowdot(x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of rows ``a`` and ``b`` of ``x`` (sparse or dense)."""
    if sp.issparse(x):
        from .features_jit import rowdot_csr

        return rowdot_csr(x, a, b)
    return np.einsum("ij,ij->i", x[a], x[b])


def top2(x, rows: np.ndarray) -> np.ndarray:
    """Per product in ``rows``: its two highest cosines to other products (x L2-normalised), in blocks."""
    out = np.zeros((len(rows), 2), dtype=np.float32)
    xt = x.T.tocsc() if sp.issparse(x) else x.T
    for s in range(0, len(rows), CONTEXT_BLOCK):
        r = rows[s:s + CONTEXT_BLOCK]
        sim = x[r] @ xt
        sim = sim.toarray() if sp.issparse(sim) else np.asarray(sim)
        sim[np.arange(len(r)), r] = -1.0
        k = min(2, sim.shape[1] - 1) if sim.shape[1] > 1 else 0
        if k <= 0:
            continue
        part = -np.partition(-sim, k - 1, axis=1)[:, :2] if k == 2 else np.c_[sim.max(1), np.full(len(r), -1.0)]
        out[s:s + len(r)] = np.sort(part, axis=1)[:, ::-1]
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a Python loop."""
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))


def _first_seen(lengths: np.ndarray, cols: np.ndarray, terms: list[str]) -> tuple[sp.csr_matrix, np.ndarray, list[str]]:
    """Rows x the terms they use (columns in order of first sight), 1 where a row holds a term; each
    entry's new column; the terms."""
    from .features_jit import first_seen

    new, used = first_seen(np.ascontiguousarray(cols, dtype=np.int64), len(terms))
    return _ones(lengths, new, len(used)), new, [terms[i] for i in used.tolist()]


class Words:
    """Each product's title words and the words of its whole text (title, text, spec values) as 0/1
    matrices: the words of ``clean(f"{title} {text} {values}")``, made part by part (tokens never cross
    the spaces between the parts) with each distinct part cut once and its words dictionary-encoded
    once (spec values and captions repeat; on the scale worlds a caption is its title); a product's
    rows are its parts' word ranges gathered by numpy, so no Python list a product is built (that, a
    dict lookup a token and a tokeniser run a text were ~4 s of the 100k scale world's scoring)."""

    def __init__(self, p: Products):
        values = [list(s.values()) for s in p.specs] if p.specs else [[] for _ in p.ids]
        part, distinct = _encode(list(chain.from_iterable([t, d, *vs] for t, d, vs in zip(p.title, p.text, values))))
        n_parts = np.fromiter(map(len, values), np.int64, len(values)) + 2
        self.part, self.n_parts = part, n_parts  # each product's parts (its title first), as distinct parts
        self.cleaned = [tx.clean(x) for x in distinct]
        words = tx.words_many(self.cleaned)
        cols, terms = _encode(list(chain.from_iterable(words)))
        n_words = np.fromiter(map(len, words), np.int64, len(words))
        start = np.cumsum(n_words) - n_words
        title = part[np.cumsum(n_parts) - n_parts] if len(part) else np.zeros(0, np.int64)
        self.title, title_cols, self.title_terms = _first_seen(n_words[title], cols[_ranges(start[title], n_words[title])],
                                                               terms)
        per_product = np.add.reduceat(n_words[part], np.cumsum(n_parts) - n_parts) if len(part) else n_parts * 0
        self.text, _, self.text_terms = _first_seen(per_product, cols[_ranges(start[part], n_words[part])], terms)
        lead = np.cumsum(n_words[title]) - n_words[title]  # each title's first word
        self.first = np.where(n_words[title] > 0, title_cols[np.minimum(lead, max(len(title_cols) - 1, 0))], -1)


def char_counts_of(w: Words, titles: list[str], full: list[str]) -> tuple[tuple, tuple]:
    """:func:`_char_counts` of the titles and of the whole texts, from the n-grams of each distinct part
    counted once (:func:`.char_grams_jit.char_grams_of_parts`: the 100k scale world's 13.9 million
    characters of titles and whole texts are 3.5 million of distinct parts); the texts themselves where
    the compiled counting cannot take them."""
    from .char_grams_jit import char_grams_of_parts

    first = np.cumsum(w.n_parts) - w.n_parts
    try:
        title, whole = char_grams_of_parts(w.cleaned, [np.arange(len(titles) + 1), np.r_[0, np.cumsum(w.n_parts)]],
                                           [w.part[first] if len(w.part) else first, w.part])
    except ValueError:
        return _char_counts(titles), _char_counts(full)
    return title, whole
