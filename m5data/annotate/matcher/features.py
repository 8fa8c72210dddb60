"""Pair features in bulk: every product's text, codes, numbers and specs become sparse rows once, and a
pair's feature is a row-wise product of two gathered sparse matrices, so thousands of pairs cost a few
scipy calls, not a Python loop each (only model-code containment is a loop over the pairs' codes).

Missing evidence is NaN (the model routes it), never 0: "no brand on one page" is not "brands differ".
Brand, net content and stage are read from titles without shop and promotion noise
(:mod:`.title`); brands through the aliases the titles teach, and from the title where no spec
names one.
"""

from __future__ import annotations

from os.path import commonprefix

import numpy as np

from ... import arrays
from . import text as tx
from . import title as pt
from .features_jit import rowdot_csr, tfidf_matrix
from .products import Products
from .spaces import (
    TEXT_CHAR_MAX,
    TextWeights,
    Words,
    binary_sets,
    char_counts_of,
    doc_freq,
    l2_rows,
    padded,
    remap,
    rowdot,
    smooth_idf,
    spec_sets,
    top2,
)

FEATURES = [
    "title_char_cos", "title_word_cos", "text_char_cos", "text_word_cos",
    "idf_overlap_min", "idf_overlap_union", "unshared_idf_max", "word_jaccard", "title_len_ratio", "first_word_same",
    "code_shared", "code_stem_shared", "code_conflict", "code_in_other", "code_only_one",
    "num_shared", "num_conflict", "num_jaccard",
    "content_same", "content_conflict", "stage_same", "stage_conflict",
    "brand_same", "brand_in_other_title", "tail_conflict",
    "spec_agree", "spec_conflict", "spec_missing", "spec_agree_share",
    "phash_distance", "price_ratio", "category_same",
    "char_margin_a", "char_margin_b", "char_rank_mean", "word_margin_a", "word_margin_b",
    "embed_cos", "embed_margin_a", "embed_margin_b",
]


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

        w = Words(p)
        (indptr, term, count, df, grams), full_counts = char_counts_of(w, titles, full)
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
        self.title_terms = vocab
        self.idf = padded(idf("title_word", vocab, doc_freq(self.title_bin, len(vocab))), self.title_bin.shape[1])
        self.title_word = l2_rows(self.title_bin.multiply(self.idf).tocsr())
        text_bin, vocab = w.text, w.text_terms
        text_idf = padded(idf("text_word", vocab, doc_freq(text_bin, len(vocab))), text_bin.shape[1])
        self.text_word = l2_rows(text_bin.multiply(text_idf).tocsr())
        self.weights = weights or TextWeights.fitted(len(p), fit)
        self.n_words = np.asarray(self.title_bin.sum(axis=1)).ravel()
        self.title_idf = np.asarray(self.title_bin @ self.idf).ravel()  # each title's words' IDF summed
        self.first = w.first  # each title's first word (a column of title_bin; -1: none)
        # model codes: each distinct word of the texts judged once, a product's codes read off its words
        code_of = [next(iter(tx.codes([t])), None) for t in vocab]
        self.code_terms = sorted({c for c in code_of if c is not None})
        code_id = {c: i for i, c in enumerate(self.code_terms)}
        to_code = np.array([-1 if c is None else code_id[c] for c in code_of] + [-1], dtype=np.int64)
        self.codes = remap(text_bin, to_code)
        stem_of = [next(iter(tx.stems([c])), None) for c in self.code_terms]
        stem_id = {c: i for i, c in enumerate(dict.fromkeys(x for x in stem_of if x is not None))}
        self.stems = remap(self.codes, np.array([-1 if c is None else stem_id[c] for c in stem_of] + [-1], np.int64))
        self.squashed = [tx.squash_clean(t) for t in full]
        self.nums = binary_sets([tx.numbers_clean(pt.strip_packs(t)) for t in titles])[0]  # a pack count is no number
        self.brand_title = titles
        # brand, content and stage are read without shop and promotion noise; the text features keep it (on
        # the Chinese set, TF-IDF of denoised titles lost half the recall at precision 0.9: a shop's prefixes
        # and dates tell one merchant's copies of a listing from another's variants of it)
        quiet = [pt.denoise(t) for t in titles]
        brands = pt.Brands(quiet)
        self.brand_named = [set(brands.in_title(t)) for t in quiet]
        self.brand_key = [brands.key(b) if b else next(iter(brands.in_title(t)), "") for b, t in zip(p.brand, quiet)]
        title_values = [f"{t} {v}" for t, v in zip(quiet, values)]
        self.quiet = [pt.strip_packs(t) for t in quiet]
        self._word_idf: dict[str, float] | None = None  # title word -> IDF, made when first asked
        self.contents, self.content_last = kind_lasts([pt.contents(t) for t in title_values])
        self.stages, self.stage_last = lasts([pt.stages(t) for t in title_values])
        self.props, self.pairs_pv = spec_sets(p.specs, len(p))
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
            top[todo] = top2(x, todo)
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
        # the rarest word one title has and the other lacks: one listing's variants differ by one (全脂 / 脱脂)
        diff = abs(self.title_bin[a] - self.title_bin[b]).multiply(self.idf).tocsr()
        f["unshared_idf_max"] = np.where(has_title, diff.max(axis=1).toarray().ravel(), np.nan)
        n_shared = rowdot_csr(self.title_bin, a, b)
        na, nb = self.n_words[a], self.n_words[b]
        f["word_jaccard"] = np.where(has_title, n_shared / np.maximum(na + nb - n_shared, 1), np.nan)
        f["title_len_ratio"] = np.where(has_title, np.minimum(na, nb) / np.maximum(np.maximum(na, nb), 1), np.nan)
        f["first_word_same"] = np.where(has_title, self.first[a] == self.first[b], np.nan)
        f.update(self._codes(a, b))
        f.update(self._numbers(a, b))
        f.update(kind_conflict("content", self.contents, self.content_last, a, b))
        f.update(same_conflict("stage", self.stages, self.stage_last, a, b))
        f.update(self._brand(a, b))
        f["tail_conflict"] = self._tail_conflict(a, b)
        f.update(self._specs(a, b))
        p = self.p
        if p.phash is not None and p.has_phash is not None:
            from ..dedup.phash import hamming

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
            from .features_jit import codes_inside

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
        """Same brand: the spec's (else the title's) brand, aliases one brand (``安满`` = ``anmum``), or one
        spelling inside the other; a side's brand, or its alias, in the other's title."""
        br, key, named, title = self.p.brand, self.brand_key, self.brand_named, self.brand_title
        same = [np.nan if not (key[i] and key[j]) else float(key[i] == key[j] or key[i] in key[j] or key[j] in key[i])
                for i, j in zip(a, b)]
        inside = [np.nan if not (key[i] or key[j]) else
                  float(any((br[x] and br[x] in title[y]) or (key[x] and key[x] in named[y]) for x, y in ((i, j), (j, i))))
                  for i, j in zip(a, b)]
        return {"brand_same": np.array(same), "brand_in_other_title": np.array(inside)}

    def _tail_conflict(self, a, b) -> np.ndarray:
        """Of two titles that start alike (one listing: their first :data:`TAIL_PREFIX` characters the same,
        shop noise and pack counts aside), the rarest word (largest title IDF) of one title's rest, after
        the characters both start with, that the other's rest lacks; counts, numbers and one-character
        words aside (content and stage have their own features). 0: no such word; NaN: the titles do not
        start alike. A shop title ends with the variant sold, its listing's words (every variant's) before
        it: variants end differently (``... 全脂高钙奶粉1kg`` / ``... 脱脂高钙奶粉1kg``, ``蓝臻妈妈850克`` /
        ``铂睿妈妈850克``), a shop's copy of a listing ends as it does, or with a pack count or a promotion."""
        if self._word_idf is None:
            self._word_idf = dict(zip(self.title_terms, self.idf[:len(self.title_terms)].tolist()))
        q, idf = self.quiet, self._word_idf
        top = max(idf.values(), default=0.0)  # a word no title has whole (jieba cuts a rest anew): rarest
        out = np.full(len(a), np.nan)
        for k in (k for k, (i, j) in enumerate(zip(a, b)) if len(q[i]) >= TAIL_PREFIX and q[i][:TAIL_PREFIX] == q[j][:TAIL_PREFIX]):
            x, y = q[a[k]], q[b[k]]
            n = len(commonprefix((x, y)))
            wa, wb = ({w for w in tx.words_clean(t[n:]) if len(w) > 1 and not pt.is_count(w)} for t in (x, y))
            out[k] = max((idf.get(w, top) for w in wa ^ wb), default=0.0)
        return out

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
    from ..kernels.embed import EmbedderError, sentence_transformer
    from .errors import MatcherError

    try:
        return sentence_transformer(texts, model_path)
    except EmbedderError as exc:  # no sentence-transformers, no model folder: said in one line
        raise MatcherError(f"annotate.text_model: {exc}") from None


TAIL_PREFIX = 10  # characters two titles start with in common to be read as one listing's


def lasts(lists: list[list[str]]):
    """Products x the distinct values of ``lists`` (0/1, :func:`binary_sets`), and each product's last
    value as a column (-1: none): a shop title ends with the variant sold (``... 800克罐装 150克盒装 ...
    150克*1``), its listing's words before it."""
    x, terms = binary_sets(lists)
    col = {t: i for i, t in enumerate(terms)}
    return x, np.array([col[v[-1]] if v else -1 for v in lists], dtype=np.int64)


def kind_lasts(lists: list[list[str]]):
    """:func:`lasts` per kind of measure (:func:`.title.kind`: grams, millilitres, gigabytes, mAh ...):
    products x values, and kind -> each product's last value of that kind (-1: none)."""
    x, terms = binary_sets(lists)
    col = {t: i for i, t in enumerate(terms)}
    kinds: dict[str, np.ndarray] = {}
    for i, values in enumerate(lists):
        for v in values:  # in order: the last of a kind stays
            kinds.setdefault(pt.kind(v), np.full(len(lists), -1, np.int64))[i] = col[v]
    return x, kinds


def kind_conflict(name: str, x, kinds: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``<name>_same``: a value in common; ``<name>_conflict``: of the kinds both name, one whose last values
    differ (``128gb`` / ``256gb``; a phone's ``5000mah`` beside them is another kind), or no kind in common
    (``900g`` / ``250ml``); NaN where a side names none."""
    _, _, shared, both = overlap(x, a, b)
    conflict = np.zeros(len(a), bool)
    common = np.zeros(len(a), bool)
    for last in kinds.values():
        la, lb = last[a], last[b]
        has = (la >= 0) & (lb >= 0)
        common |= has
        conflict |= has & (la != lb)
    return {f"{name}_same": np.where(both, shared > 0, np.nan), f"{name}_conflict": np.where(both, conflict | ~common, np.nan)}


def same_conflict(name: str, x, last: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``<name>_same``: a value in common; ``<name>_conflict``: the two last values differ (NaN where a
    side has none)."""
    _, _, shared, both = overlap(x, a, b)
    return {f"{name}_same": np.where(both, shared > 0, np.nan), f"{name}_conflict": np.where(both, last[a] != last[b], np.nan)}


def overlap(x, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of pairs ``(a[i], b[i])`` of rows of a sparse 0/1 matrix: the entries of each side, the entries both
    share, and where both sides have any (a feature that compares nothing is NaN, not 0)."""
    n = np.diff(x.indptr)
    na, nb = n[a], n[b]
    shared = rowdot_csr(x, a, b)
    return na, nb, shared, (na > 0) & (nb > 0)
