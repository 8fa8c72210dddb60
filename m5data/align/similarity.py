"""S_label and S_content, the two scores of MEP-3M's level-2 alignment (section 3.1).

``S_label`` is difflib's ``SequenceMatcher.ratio()`` of two sub-class names (2.0*M/T).

``S_content`` is the cosine of the term vectors of two sub-classes' title texts, computed exactly as
simtext 1.2's ``similarity().compute(a, b)['Sim_Cosine']``:

* when the FIRST text contains a CJK character (U+4E00..U+9FFF), both texts are segmented with
  ``jieba.lcut`` and re-joined with spaces; otherwise both stay as they are;
* scikit-learn's ``CountVectorizer(binary=True)`` with its defaults (lower-casing, token pattern
  ``(?u)\\b\\w\\w+\\b``, so one-character tokens are dropped) turns each text into a presence vector;
* the cosine is sklearn's: rows L2-normalised, then a dot product; a text without tokens gives 0.

The bulk engine tokenises every text once, builds one sparse matrix over a shared vocabulary and
computes the cosines of many pairs with sparse products. A vocabulary shared by all texts gives the
same cosine as simtext's per-pair vocabulary, because a term absent from both texts adds nothing to
the dot product or the norms. ``weighting="counts"`` uses term counts instead of presence: the
paper's literal term-frequency formula (simtext itself has no such mode).

The simtext engine calls the library pair by pair (slow: about 2.6 s per pair of 22,000-character
texts) for audits on small sets. Importing simtext installs ``warnings.filterwarnings('ignore')``
for the whole process; :func:`simtext_similarity` undoes that.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

WEIGHTINGS = ("binary", "counts")
ENGINES = ("bulk", "simtext")


def label_similarity(a: str, b: str) -> float:
    """S_label: difflib's ratio 2.0*M/T of two sub-class names (1.0 when identical)."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def contains_cjk(text: str) -> bool:
    """simtext's ``check_contain_chinese``: any character in U+4E00..U+9FFF."""
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def content_text(titles: Iterable[str], chars: int) -> str:
    """A sub-class's text for S_content: its titles joined by newlines, cut to the first ``chars`` characters."""
    out: list[str] = []
    size = 0
    for title in titles:
        if not title:
            continue
        out.append(title)
        size += len(title) + 1
        if size >= chars:
            break
    return "\n".join(out)[:chars]


# What scikit-learn's CountVectorizer(binary=True).build_analyzer() does with its defaults (input
# "content", lower-case, no accent stripping, token pattern (?u)\b\w\w+\b, no stop words, unigrams):
# lower-case, then findall. Done here without importing sklearn (~2 s of an incremental run's imports);
# tests/align/test_align_similarity.py checks the two give the same tokens.
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")


def _analyze(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text.lower())


def tokens(text: str, segment: bool) -> list[str]:
    """The tokens simtext's vectoriser sees for ``text`` (jieba-segmented first when ``segment``)."""
    if segment:
        import jieba

        text = " ".join(jieba.lcut(text))
    return _analyze(text)


def warm_up():
    """Load jieba's dictionary and import scipy's sparse matrices in a background thread; returns it.

    Both are fixed costs of any run that segments or scores (~1 s and ~0.3 s at load 5), paid
    while the caller reads the store (DuckDB and Parquet reads release the GIL). ``jieba.lcut``
    waits for the load under jieba's own lock, so a caller that segments earlier loses nothing."""
    import threading

    def load():
        import jieba
        from scipy import sparse  # noqa: F401

        jieba.initialize()

    thread = threading.Thread(target=load, name="align-warm-up", daemon=True)
    thread.start()
    return thread


def _segment_worker(texts: list[str]) -> list[list[str]]:
    return [tokens(t, True) for t in texts]


class TermMatrix:
    """Row-normalised term vectors of many texts over one shared vocabulary (scipy CSR)."""

    def __init__(self, token_lists: Sequence[Sequence[str]] | None, weighting: str = "binary", counted=None):
        """``token_lists``: each text's tokens; or ``counted``: each text's distinct tokens in order of first
        appearance with their counts (the same matrix, without spelling every token out)."""
        from scipy import sparse

        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r}")
        vocab: dict[str, int] = {}
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        rows = counted if counted is not None else [(toks, [1] * len(toks)) for toks in token_lists]
        for terms, ns in rows:
            counts: dict[int, int] = {}
            for tok, n in zip(terms, ns):
                j = vocab.setdefault(tok, len(vocab))
                counts[j] = counts.get(j, 0) + n
            cols = sorted(counts)
            indices.extend(cols)
            data.extend(1.0 if weighting == "binary" else float(counts[j]) for j in cols)
            indptr.append(len(indices))
        matrix = sparse.csr_matrix(
            (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(indptr) - 1, max(len(vocab), 1)),
        )
        # sklearn.preprocessing.normalize (what cosine_similarity does): divide each row by its L2 norm.
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        self.matrix = sparse.diags(1.0 / norms) @ matrix
        self.matrix = self.matrix.tocsr()
        self.n_terms = np.diff(matrix.indptr)  # distinct terms per text
        self.vocabulary_size = len(vocab)

    def block(self, rows_a: Sequence[int], rows_b: Sequence[int]) -> np.ndarray:
        """Dense cosines of every row in ``rows_a`` against every row in ``rows_b``."""
        a = self.matrix[np.asarray(rows_a, dtype=np.int64)]
        b = self.matrix[np.asarray(rows_b, dtype=np.int64)]
        return np.asarray((a @ b.T).todense())

    def pairs(self, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
        """Cosines of the row pairs (left[k], right[k])."""
        if not len(left):
            return np.zeros(0)
        a = self.matrix[np.asarray(left, dtype=np.int64)]
        b = self.matrix[np.asarray(right, dtype=np.int64)]
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()


class ContentVectors:
    """Term vectors of many texts, ready for bulk S_content of any pairs among them.

    Args:
        texts: one text per sub-class (see :func:`content_text`).
        weighting: ``binary`` (simtext's presence vectors) or ``counts`` (term frequencies).
        workers: processes for jieba segmentation (1 = in this process).
        progress: optional callable ``progress(done, total)`` called as the segmenter makes progress,
            in its own unit: texts here, the titles (lines) not kept before with align's TokenCache.
    """

    def __init__(self, texts: Sequence[str], weighting: str = "binary", workers: int = 1, progress=None,
                 segment=None):
        self.texts = list(texts)
        self.weighting = weighting
        self.cjk = np.array([contains_cjk(t) for t in self.texts], dtype=bool)
        # segment(texts, workers, progress) -> token lists: jieba here, or align's kept tokens (incremental.py),
        # which also give each text's distinct tokens and counts (segment.counted) without spelling them out
        if hasattr(segment, "counted"):
            self.segmented = TermMatrix(None, weighting, counted=segment.counted(self.texts, workers, progress))
        else:
            self.segmented = TermMatrix((segment or segment_all)(self.texts, workers, progress), weighting)
        # Pairs whose first text has no CJK use simtext's "raw" mode: tokens without jieba.
        self._raw: TermMatrix | None = None

    def _raw_matrix(self) -> TermMatrix:
        if self._raw is None:
            self._raw = TermMatrix([tokens(t, False) for t in self.texts], self.weighting)
        return self._raw

    def similarity(self, first: Sequence[int], second: Sequence[int]) -> np.ndarray:
        """S_content of the pairs (first[k], second[k]); simtext's mode depends on the first text."""
        first = np.asarray(first, dtype=np.int64)
        second = np.asarray(second, dtype=np.int64)
        out = np.zeros(len(first))
        if not len(first):
            return out
        seg = self.cjk[first]
        if seg.any():
            out[seg] = self.segmented.pairs(first[seg], second[seg])
        if (~seg).any():
            out[~seg] = self._raw_matrix().pairs(first[~seg], second[~seg])
        return out

    def block(self, rows_a: Sequence[int], rows_b: Sequence[int]) -> np.ndarray:
        """S_content of every (a, b), a first; rows whose text has no CJK fall back to the pair path."""
        rows_a = np.asarray(rows_a, dtype=np.int64)
        rows_b = np.asarray(rows_b, dtype=np.int64)
        out = self.segmented.block(rows_a, rows_b)
        raw_rows = np.flatnonzero(~self.cjk[rows_a])
        if len(raw_rows) and len(rows_b):
            out[raw_rows] = self._raw_matrix().block(rows_a[raw_rows], rows_b)
        return out


PARALLEL_CHARS = 300_000  # characters to segment (about 2-3 s of jieba) before worker processes pay


def segment_all(texts: list[str], workers: int, progress) -> list[list[str]]:
    """Every text's tokens (jieba, then simtext's analyser), in ``workers`` processes when there is
    enough to segment (:data:`PARALLEL_CHARS`): each worker pays ~3 s of imports, more than jieba
    takes for an incremental run's few hundred new titles. ``progress(done, total)``: texts segmented, of all."""
    if workers <= 1 or len(texts) < 2 * workers or sum(map(len, texts)) < PARALLEL_CHARS:
        out = []
        for i, text in enumerate(texts):
            out.append(tokens(text, True))
            if progress is not None:
                progress(i + 1, len(texts))
        return out
    from ..process_pool import ProcessPool

    size = max(1, min(64, len(texts) // (workers * 4)))
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    out = []
    # spawn, not fork: the caller may run threads (rich's progress refresh, Prefect), and a forked
    # child can inherit a lock one of them held. Each worker pays ~3 s of imports once.
    with ProcessPool(workers) as pool:  # spawned; starts inside a daemonic process too
        for chunk in pool.map(_segment_worker, chunks):
            out.extend(chunk)
            if progress is not None:
                progress(len(out), len(texts))
    return out


_SIMTEXT = None


def _simtext():
    """simtext's ``similarity`` object, imported once with the process-wide warning filters restored."""
    global _SIMTEXT
    if _SIMTEXT is None:
        # Import what simtext imports first, so that the restore below drops only simtext's own
        # filterwarnings('ignore'), not filters that sklearn or numpy install when first imported.
        import jieba  # noqa: F401
        import sklearn.feature_extraction.text  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.metrics.pairwise  # noqa: F401

        saved = list(warnings.filters)
        try:
            from simtext import similarity
        finally:
            warnings.filters[:] = saved
            warnings._filters_mutated()  # invalidate the per-module "already warned" caches
        _SIMTEXT = similarity()
    return _SIMTEXT


def simtext_similarity(a: str, b: str, full: bool = False) -> float:
    """S_content of one pair computed by simtext itself; 0.0 when neither text has a token.

    By default this runs the library's own ``transform`` and ``cosine_similarity`` methods, which is
    exactly how ``compute()`` obtains ``Sim_Cosine``; ``full=True`` calls ``compute()`` itself, which
    also runs the edit-distance measures MEP-3M's tool computed (the slow part, ~2.6 s per long pair).
    """
    sim = _simtext()
    try:
        if full:
            return float(sim.compute(a, b)["Sim_Cosine"])
        _, _, vec1, vec2 = sim.transform(a, b)
        return float(sim.cosine_similarity(vec1, vec2))
    except ValueError as exc:  # sklearn: "empty vocabulary" when neither text has a token
        if "empty vocabulary" in str(exc):
            return 0.0
        raise
