"""Pair features in bulk: every product's text, codes, numbers and specs become sparse rows once, and a
pair's feature is a row-wise product of two gathered sparse matrices, so thousands of pairs cost a few
scipy calls, not a Python loop each (only model-code containment is a loop over the pairs' codes).

Missing evidence is NaN (the model routes it), never 0: "no brand on one page" is not "brands differ".
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import text as tx
from .products import Products

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


def _binary(lists: list[list[str]]) -> sp.csr_matrix:
    """Products x vocabulary, 1 where the product's list holds the token."""
    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for toks in lists:
        indices.extend(sorted({vocab.setdefault(t, len(vocab)) for t in toks}))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
                         shape=(len(lists), max(1, len(vocab))))


def _idf(b: sp.csr_matrix) -> np.ndarray:
    df = np.asarray(b.sum(axis=0)).ravel()
    return (np.log((b.shape[0] + 1) / (df + 1)) + 1).astype(np.float32)


def _l2(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1 / np.where(norms > 0, norms, 1)).dot(x).tocsr()


def rowdot(x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of rows ``a`` and ``b`` of ``x`` (sparse or dense)."""
    if sp.issparse(x):
        return np.asarray(x[a].multiply(x[b]).sum(axis=1)).ravel()
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


class PairFeatures:
    """Per-product representations of one set of products; :meth:`matrix` gives the features of pairs."""

    def __init__(self, products: Products, embed_model: str = ""):
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.p = products
        # spec values (a 型号 / model number row) are text too: codes and numbers are looked for in them
        values = [" ".join(s.values()) for s in p.specs] if p.specs else [""] * len(p.ids)
        full = [f"{t} {d} {v}" for t, d, v in zip(p.title, p.text, values)]
        char = dict(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, preprocessor=tx.clean, dtype=np.float32)
        self.title_char = TfidfVectorizer(**char).fit_transform([t or " " for t in p.title]).tocsr()
        self.text_char = TfidfVectorizer(**char, max_features=2 ** 18).fit_transform([t or " " for t in full]).tocsr()
        title_words = [tx.words(t) for t in p.title]
        self.title_bin = _binary(title_words)
        self.idf = _idf(self.title_bin)
        self.title_word = _l2(self.title_bin.multiply(self.idf).tocsr())
        full_words = [tx.words(t) for t in full]  # tokenised once: the text's words and its model codes
        text_bin = _binary(full_words)
        self.text_word = _l2(text_bin.multiply(_idf(text_bin)).tocsr())
        self.n_words = np.asarray(self.title_bin.sum(axis=1)).ravel()
        self.first = [w[0] if w else "" for w in title_words]
        code_lists = [tx.codes(w) for w in full_words]
        self.codes = _binary(code_lists)
        self.code_lists = code_lists
        self.stems = _binary([tx.stems(c) for c in code_lists])
        self.squashed = [tx.squash(t) for t in full]
        self.nums = _binary([tx.numbers(t) for t in p.title])
        self.brand_title = [tx.clean(t) for t in p.title]
        self.props = _binary([list(s) for s in p.specs] if p.specs else [[] for _ in p.ids])
        self.pairs_pv = _binary([[f"{k}\x1f{v}" for k, v in s.items()] for s in p.specs] if p.specs else [[] for _ in p.ids])
        self.embed = None if not embed_model else embed_texts(p.title, embed_model)
        self._top: dict[str, np.ndarray] = {}  # per neighbour space: each product's two best cosines (NaN: not yet)

    def neighbours(self, rows: np.ndarray | None = None) -> None:
        """Find the two nearest other products of ``rows`` (default all) in every neighbour space now;
        :meth:`matrix` otherwise finds them for the products of its pairs, once per product."""
        rows = np.arange(len(self.p)) if rows is None else np.unique(np.asarray(rows, np.int64))
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
        wa, wb = self.title_bin[a], self.title_bin[b]
        common = wa.multiply(wb)
        shared = np.asarray(common @ self.idf).ravel()
        ta, tb = np.asarray(wa @ self.idf).ravel(), np.asarray(wb @ self.idf).ravel()
        f["idf_overlap_min"] = np.where(has_title, shared / np.maximum(np.minimum(ta, tb), 1e-9), np.nan)
        f["idf_overlap_union"] = np.where(has_title, shared / np.maximum(ta + tb - shared, 1e-9), np.nan)
        n_shared = np.asarray(common.sum(axis=1)).ravel()
        na, nb = self.n_words[a], self.n_words[b]
        f["word_jaccard"] = np.where(has_title, n_shared / np.maximum(na + nb - n_shared, 1), np.nan)
        f["title_len_ratio"] = np.where(has_title, np.minimum(na, nb) / np.maximum(np.maximum(na, nb), 1), np.nan)
        f["first_word_same"] = np.where(has_title, [self.first[i] == self.first[j] for i, j in zip(a, b)], np.nan)
        f.update(self._codes(a, b))
        f.update(self._numbers(a, b))
        f.update(self._brand(a, b))
        f.update(self._specs(a, b))
        p = self.p
        if p.phash is not None and p.has_phash is not None:
            from ..near import hamming

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
        na, nb, shared, both = overlap(self.codes[a], self.codes[b])
        stem = np.asarray(self.stems[a].multiply(self.stems[b]).sum(axis=1)).ravel()
        # a code written with spaces on the other page (``dvd 3800bdci``) is still found in its squashed text
        inside = np.array([any(c in self.squashed[j] for c in self.code_lists[i])
                           or any(c in self.squashed[i] for c in self.code_lists[j]) for i, j in zip(a, b)], dtype=bool)
        return {"code_shared": np.where(both, shared, np.nan), "code_stem_shared": np.where(both, stem, np.nan),
                "code_conflict": np.where(both, (shared == 0) & ~inside, np.nan),
                "code_in_other": np.where((na > 0) | (nb > 0), inside, np.nan),
                "code_only_one": ((na > 0) != (nb > 0)).astype(np.float64)}

    def _numbers(self, a, b) -> dict[str, np.ndarray]:
        na, nb, shared, both = overlap(self.nums[a], self.nums[b])
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
        na, nb, shared, both = overlap(self.props[a], self.props[b])
        agree = np.asarray(self.pairs_pv[a].multiply(self.pairs_pv[b]).sum(axis=1)).ravel()
        return {"spec_agree": np.where(both, agree, np.nan), "spec_conflict": np.where(both, shared - agree, np.nan),
                "spec_missing": np.where(both, na + nb - 2 * shared, np.nan),
                "spec_agree_share": np.where(both & (shared > 0), agree / np.maximum(shared, 1), np.nan)}

    def _context(self, a, b, name: str, x, sim: np.ndarray) -> dict[str, np.ndarray]:
        """How the pair's similarity compares with each side's best other product in the whole set: a
        pair that is each side's nearest neighbour is likelier a match than one of two similar siblings."""
        top = self._top2_of(name, x, np.unique(np.r_[a, b]))

        def margin(i, j):
            best_other = np.where(top[i, 0] > sim + 1e-6, top[i, 0], top[i, 1])
            return sim - best_other

        out = {f"{name}_margin_a": margin(a, b), f"{name}_margin_b": margin(b, a)}
        if name == "char":
            out["char_rank_mean"] = ((top[a, 0] > sim + 1e-6).astype(float) + (top[b, 0] > sim + 1e-6)) / 2
        return out


def embed_texts(texts: list[str], model_path: str) -> np.ndarray:
    """L2-normalised sentence embeddings from a local model folder (never a download)."""
    from ..embed import sentence_transformer
    from .model import MatcherError

    try:
        return sentence_transformer(texts, model_path)
    except RuntimeError as exc:  # no sentence-transformers, no model folder: said in one line
        raise MatcherError(f"annotate.matcher_text_model: {exc}") from None


def overlap(xa, xb) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of two row-aligned sparse 0/1 matrices (a pair a row): the entries of each side, the entries both
    share, and where both sides have any (a feature that compares nothing is NaN, not 0)."""
    na, nb = np.diff(xa.indptr), np.diff(xb.indptr)
    shared = np.asarray(xa.multiply(xb).sum(axis=1)).ravel()
    return na, nb, shared, (na > 0) & (nb > 0)
