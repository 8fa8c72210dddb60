"""Pair features in bulk: every product's text, codes, numbers and specs become sparse rows once, and a
pair's feature is a row-wise product of two gathered sparse matrices, so thousands of pairs cost a few
scipy calls, not a Python loop each (only model-code containment is a loop over the pairs' codes).

Missing evidence is NaN (the model routes it), never 0: "no brand on one page" is not "brands differ".
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import scipy.sparse as sp

from ... import arrays
from . import pair_text as tx
from .pair_features_jit import rowdot_csr, tfidf_matrix
from .pair_products import Products

FEATURES = [
    "title_char_cos", "title_word_cos", "text_char_cos", "text_word_cos",
    "idf_overlap_min", "idf_overlap_union", "word_jaccard", "title_len_ratio", "first_word_same",
    "code_shared", "code_stem_shared", "code_conflict", "code_in_other", "code_only_one",
    "num_shared", "num_conflict", "num_jaccard",
    "brand_same", "brand_in_other_title",
    "spec_agree", "spec_conflict", "spec_missing", "spec_agree_share",
    "phash_distance", "price_ratio", "category_same",
    "char_margin_a", "char_margin_b", "char_rank_mean", "word_margin_a", "word_margin_b",
    "embed_cos", "embed_margin_a", "embed_margin_b",
]
CONTEXT_BLOCK = 2048  # products per block of the nearest-neighbour search behind the *_margin features
WEIGHTED = ("title_char", "text_char", "title_word", "text_word")  # the TF-IDF spaces (TextWeights)
TEXT_CHAR_MAX = 2 ** 18  # text character n-grams kept when fitting (the most frequent), as before
MAX_TERMS = 2 ** 20  # terms per space a model file keeps (the most common): a 1M-product store's grams


def _binary(lists: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
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


def _remap(x: sp.csr_matrix, to: np.ndarray) -> sp.csr_matrix:
    """The 0/1 matrix of ``x``'s columns mapped by ``to`` (-1: dropped; several onto one: merged)."""
    col = to[x.indices]
    keep = col >= 0
    rows = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))
    return _ones(np.bincount(rows[keep], minlength=x.shape[0]), col[keep], int(to.max(initial=-1)) + 1)


def _spec_sets(specs: list[dict[str, str]], n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Products x properties and products x (property, value) pairs, 1 where the product lists them."""
    lengths = np.fromiter(map(len, specs), np.int64, len(specs)) if specs else np.zeros(n, np.int64)
    keys, _ = _encode(list(chain.from_iterable(specs)))
    values, distinct = _encode(list(chain.from_iterable(s.values() for s in specs)))
    _, pair = np.unique(keys * max(1, len(distinct)) + values, return_inverse=True)
    return _ones(lengths, keys, int(keys.max(initial=-1)) + 1), _ones(lengths, pair.ravel(), int(pair.max(initial=-1)) + 1)


def _char_counts(texts: list[str]) -> tuple:
    """Character 2-4-gram counts (``char_wb``, as scikit-learn's analyser) of cleaned texts:
    ``(indptr, term, count, df, grams)`` (:func:`.features_jit.char_grams`); counted in Python where
    the texts hold more distinct characters than the compiled keys take."""
    from .pair_features_jit import char_grams

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


def _df(b: sp.csr_matrix, n_terms: int) -> np.ndarray:
    return np.asarray(b.sum(axis=0)).ravel()[:n_terms].astype(np.int64)


def _pad(idf: np.ndarray, n: int) -> np.ndarray:
    """``idf`` to ``n`` columns (a matrix of no terms has one empty column)."""
    return np.r_[idf, np.ones(n - len(idf), np.float32)] if len(idf) < n else idf


def _l2(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1 / np.where(norms > 0, norms, 1)).dot(x).tocsr()  # unsorted as it comes: the neighbour
    # search's sums (x @ x.T) follow the order of its columns


def rowdot(x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of rows ``a`` and ``b`` of ``x`` (sparse or dense)."""
    if sp.issparse(x):
        from .pair_features_jit import rowdot_csr

        return rowdot_csr(x, a, b)
    return np.einsum("ij,ij->i", x[a], x[b])


def _top2(x, rows: np.ndarray) -> np.ndarray:
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
    from .pair_features_jit import first_seen

    new, used = first_seen(np.ascontiguousarray(cols, dtype=np.int64), len(terms))
    return _ones(lengths, new, len(used)), new, [terms[i] for i in used.tolist()]


class _Words:
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


def _char_counts_of(w: _Words, titles: list[str], full: list[str]) -> tuple[tuple, tuple]:
    """:func:`_char_counts` of the titles and of the whole texts, from the n-grams of each distinct part
    counted once (:func:`.features_jit.char_grams_of_parts`: the 100k scale world's 13.9 million
    characters of titles and whole texts are 3.5 million of distinct parts); the texts themselves where
    the compiled counting cannot take them."""
    from .pair_features_jit import char_grams_of_parts

    first = np.cumsum(w.n_parts) - w.n_parts
    try:
        title, whole = char_grams_of_parts(w.cleaned, [np.arange(len(titles) + 1), np.r_[0, np.cumsum(w.n_parts)]],
                                           [w.part[first] if len(w.part) else first, w.part])
    except ValueError:
        return _char_counts(titles), _char_counts(full)
    return title, whole


class PairFeatures:
    """Per-product representations of one set of products; :meth:`matrix` gives the features of pairs."""

    def __init__(self, products: Products, embed_model: str = "", weights: TextWeights | None = None):
        """``weights``: the TF-IDF document frequencies to use (a trained model's); None fits them on
        ``products`` (training, scoring a file), and :attr:`weights` then holds the fit."""
        p = self.p = products
        # spec values (a 型号 / model number row) are text too: codes and numbers are looked for in them
        values = [" ".join(s.values()) for s in p.specs] if p.specs else [""] * len(p.ids)
        titles = [tx.clean(t) for t in p.title]  # cleaned once: every representation below starts from it
        full = [tx.clean(f"{t} {d} {v}") for t, d, v in zip(p.title, p.text, values)]
        fit: dict[str, tuple[list[str], np.ndarray]] = {}

        def idf(space: str, terms: list[str], df: np.ndarray) -> np.ndarray:
            fit[space] = (terms, df)
            return smooth_idf(df, len(p)) if weights is None else weights.idf(space, terms)

        w = _Words(p)
        (indptr, term, count, df, grams), full_counts = _char_counts_of(w, titles, full)
        self.title_char = tfidf_matrix(indptr, term, count, idf("title_char", grams, df))
        indptr, term, count, df, grams = full_counts
        if weights is None and len(grams) > TEXT_CHAR_MAX:  # the most frequent n-grams (ties: first seen)
            keep = np.sort(np.argsort(-np.bincount(term, weights=count, minlength=len(grams)), kind="stable")[:TEXT_CHAR_MAX])
            new = np.full(len(grams), -1, dtype=np.int64)
            new[keep] = np.arange(len(keep))
            mask = new[term] >= 0
            indptr = np.r_[0, np.cumsum(np.bincount(np.repeat(np.arange(len(full)), np.diff(indptr))[mask],
                                                    minlength=len(full)))]
            term, count, df, grams = new[term[mask]], count[mask], df[keep], [grams[i] for i in keep]
        self.text_char = tfidf_matrix(indptr, term, count, idf("text_char", grams, df))
        self.title_bin, vocab = w.title, w.title_terms
        self.idf = _pad(idf("title_word", vocab, _df(self.title_bin, len(vocab))), self.title_bin.shape[1])
        self.title_word = _l2(self.title_bin.multiply(self.idf).tocsr())
        text_bin, vocab = w.text, w.text_terms
        text_idf = _pad(idf("text_word", vocab, _df(text_bin, len(vocab))), text_bin.shape[1])
        self.text_word = _l2(text_bin.multiply(text_idf).tocsr())
        self.weights = weights or TextWeights.fitted(len(p), fit)
        self.n_words = np.asarray(self.title_bin.sum(axis=1)).ravel()
        self.title_idf = np.asarray(self.title_bin @ self.idf).ravel()  # each title's words' IDF summed
        self.first = w.first  # each title's first word (a column of title_bin; -1: none)
        # model codes: each distinct word of the texts judged once, a product's codes read off its words
        code_of = [next(iter(tx.codes([t])), None) for t in vocab]
        self.code_terms = sorted({c for c in code_of if c is not None})
        code_id = {c: i for i, c in enumerate(self.code_terms)}
        to_code = np.array([-1 if c is None else code_id[c] for c in code_of] + [-1], dtype=np.int64)
        self.codes = _remap(text_bin, to_code)
        stem_of = [next(iter(tx.stems([c])), None) for c in self.code_terms]
        stem_id = {c: i for i, c in enumerate(dict.fromkeys(x for x in stem_of if x is not None))}
        self.stems = _remap(self.codes, np.array([-1 if c is None else stem_id[c] for c in stem_of] + [-1], np.int64))
        self.squashed = [tx.squash_clean(t) for t in full]
        self.nums = _binary([tx.numbers_clean(t) for t in titles])[0]
        self.brand_title = titles
        self.props, self.pairs_pv = _spec_sets(p.specs, len(p))
        self.embed = None if not embed_model else embed_texts(p.title, embed_model)
        self._top: dict[str, np.ndarray] = {}  # per neighbour space: each product's two best cosines (NaN: not yet)

    def neighbours(self, rows: np.ndarray | None = None) -> None:
        """Find the two nearest other products of ``rows`` (default all) in every neighbour space now;
        :meth:`matrix` otherwise finds them for the products of its pairs, once per product."""
        rows = np.arange(len(self.p)) if rows is None else arrays.unique(np.asarray(rows, np.int64))
        for name, x in self.spaces():
            self._top2_of(name, x, rows)

    def set_neighbours(self, top: dict[str, np.ndarray]) -> None:
        """Each product's two best cosines per neighbour space, found elsewhere (dedup: in its candidate
        graph, where the whole-set search would be products x products); :meth:`matrix` then uses them."""
        self._top.update(top)

    def spaces(self):
        """The neighbour spaces: ``(name, L2-normalised product rows)``."""
        yield "char", self.title_char
        yield "word", self.title_word
        if self.embed is not None:
            yield "embed", self.embed

    def _top2_of(self, name: str, x, rows: np.ndarray) -> np.ndarray:
        top = self._top.setdefault(name, np.full((len(self.p), 2), np.nan, dtype=np.float32))
        todo = rows[np.isnan(top[rows, 0])]
        if len(todo):
            top[todo] = _top2(x, todo)
        return top

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Features of pairs ``(a[i], b[i])`` (product rows), float32, columns in :data:`FEATURES` order."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        f: dict[str, np.ndarray] = {}
        nan = np.full(len(a), np.nan, dtype=np.float64)
        has_title = (self.n_words[a] > 0) & (self.n_words[b] > 0)
        f["title_char_cos"] = np.where(has_title, rowdot(self.title_char, a, b), np.nan)
        f["title_word_cos"] = np.where(has_title, rowdot(self.title_word, a, b), np.nan)
        f["text_char_cos"] = rowdot(self.text_char, a, b)
        f["text_word_cos"] = rowdot(self.text_word, a, b)
        shared = rowdot_csr(self.title_bin, a, b, self.idf)
        ta, tb = self.title_idf[a], self.title_idf[b]
        f["idf_overlap_min"] = np.where(has_title, shared / np.maximum(np.minimum(ta, tb), 1e-9), np.nan)
        f["idf_overlap_union"] = np.where(has_title, shared / np.maximum(ta + tb - shared, 1e-9), np.nan)
        n_shared = rowdot_csr(self.title_bin, a, b)
        na, nb = self.n_words[a], self.n_words[b]
        f["word_jaccard"] = np.where(has_title, n_shared / np.maximum(na + nb - n_shared, 1), np.nan)
        f["title_len_ratio"] = np.where(has_title, np.minimum(na, nb) / np.maximum(np.maximum(na, nb), 1), np.nan)
        f["first_word_same"] = np.where(has_title, self.first[a] == self.first[b], np.nan)
        f.update(self._codes(a, b))
        f.update(self._numbers(a, b))
        f.update(self._brand(a, b))
        f.update(self._specs(a, b))
        p = self.p
        if p.phash is not None and p.has_phash is not None:
            from .phash import hamming

            ok = p.has_phash[a] & p.has_phash[b]
            f["phash_distance"] = np.where(ok, hamming(p.phash[a], p.phash[b]), np.nan)
        else:
            f["phash_distance"] = nan
        pa, pb = p.price[a], p.price[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            f["price_ratio"] = np.where((pa > 0) & (pb > 0), np.minimum(pa, pb) / np.maximum(pa, pb), np.nan)
        f["category_same"] = np.array([np.nan if not (p.category[i] and p.category[j]) else float(p.category[i] == p.category[j])
                                       for i, j in zip(a, b)])
        f.update(self._context(a, b, "char", self.title_char, f["title_char_cos"]))
        f.update(self._context(a, b, "word", self.title_word, f["title_word_cos"]))
        if self.embed is not None:
            f["embed_cos"] = rowdot(self.embed, a, b)
            f.update(self._context(a, b, "embed", self.embed, f["embed_cos"]))
        else:
            f["embed_cos"] = f["embed_margin_a"] = f["embed_margin_b"] = nan
        return np.column_stack([np.asarray(f[n], dtype=np.float64) for n in FEATURES]).astype(np.float32)

    def _codes(self, a, b) -> dict[str, np.ndarray]:
        na, nb, shared, both = overlap(self.codes, a, b)
        stem = rowdot_csr(self.stems, a, b)
        # a code written with spaces on the other page (``dvd 3800bdci``) is still found in its squashed text
        # (a code both list is: its characters stand together in the other's squashed text too)
        inside = shared > 0
        todo = np.flatnonzero(~inside & ((na > 0) | (nb > 0)))
        if len(todo):
            from .pair_features_jit import codes_inside

            inside[todo] = codes_inside(self.squashed, self.code_terms, self.codes, a[todo], b[todo])
        return {"code_shared": np.where(both, shared, np.nan), "code_stem_shared": np.where(both, stem, np.nan),
                "code_conflict": np.where(both, (shared == 0) & ~inside, np.nan),
                "code_in_other": np.where((na > 0) | (nb > 0), inside, np.nan),
                "code_only_one": ((na > 0) != (nb > 0)).astype(np.float64)}

    def _numbers(self, a, b) -> dict[str, np.ndarray]:
        na, nb, shared, both = overlap(self.nums, a, b)
        return {"num_shared": np.where(both, shared, np.nan),
                "num_conflict": np.where(both, np.minimum(na, nb) - shared, np.nan),
                "num_jaccard": np.where(both, shared / np.maximum(na + nb - shared, 1), np.nan)}

    def _brand(self, a, b) -> dict[str, np.ndarray]:
        br = self.p.brand
        same = [np.nan if not (br[i] and br[j]) else float(br[i] == br[j] or br[i] in br[j] or br[j] in br[i])
                for i, j in zip(a, b)]
        inside = [np.nan if not (br[i] or br[j]) else
                  float(bool(br[i] and br[i] in self.brand_title[j]) or bool(br[j] and br[j] in self.brand_title[i]))
                  for i, j in zip(a, b)]
        return {"brand_same": np.array(same), "brand_in_other_title": np.array(inside)}

    def _specs(self, a, b) -> dict[str, np.ndarray]:
        na, nb, shared, both = overlap(self.props, a, b)
        agree = rowdot_csr(self.pairs_pv, a, b)
        return {"spec_agree": np.where(both, agree, np.nan), "spec_conflict": np.where(both, shared - agree, np.nan),
                "spec_missing": np.where(both, na + nb - 2 * shared, np.nan),
                "spec_agree_share": np.where(both & (shared > 0), agree / np.maximum(shared, 1), np.nan)}

    def _context(self, a, b, name: str, x, sim: np.ndarray) -> dict[str, np.ndarray]:
        """How the pair's similarity compares with each side's best other product in the whole set: a
        pair that is each side's nearest neighbour is likelier a match than one of two similar siblings."""
        top = self._top2_of(name, x, arrays.unique(np.r_[a, b]))

        def margin(i, j):
            best_other = np.where(top[i, 0] > sim + 1e-6, top[i, 0], top[i, 1])
            return sim - best_other

        out = {f"{name}_margin_a": margin(a, b), f"{name}_margin_b": margin(b, a)}
        if name == "char":
            out["char_rank_mean"] = ((top[a, 0] > sim + 1e-6).astype(float) + (top[b, 0] > sim + 1e-6)) / 2
        return out


def embed_texts(texts: list[str], model_path: str) -> np.ndarray:
    """L2-normalised sentence embeddings from a local model folder (never a download)."""
    from .embed import sentence_transformer
    from .errors import MatcherError

    try:
        return sentence_transformer(texts, model_path)
    except RuntimeError as exc:  # no sentence-transformers, no model folder: said in one line
        raise MatcherError(f"matcher.text_model: {exc}") from None


def overlap(x, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of pairs ``(a[i], b[i])`` of rows of a sparse 0/1 matrix: the entries of each side, the entries both
    share, and where both sides have any (a feature that compares nothing is NaN, not 0)."""
    n = np.diff(x.indptr)
    na, nb = n[a], n[b]
    shared = rowdot_csr(x, a, b)
    return na, nb, shared, (na > 0) & (nb > 0)
