"""Embedders of the candidate pools: text and image vectors that need no download.

- text ``tfidf-svd`` (default): TF-IDF over the jieba tokens of the caption plus TF-IDF over its
  character 2-3-grams, reduced with a truncated SVD (ARPACK by default, seeded); ``st:<path>`` a sentence-transformers
  model from a local folder (``pools.text_model``).
- image ``descriptor`` (default): a compact descriptor of the stored normalised image: HSV colour
  histogram (square-rooted: Hellinger), a mirror-symmetric 4x4 colour layout, a histogram of
  gradient orientations folded so that a mirrored copy gives the same histogram, gradient
  statistics, and the 64 pHash bits; ``none`` leaves the image block out.

Each embedder returns a float32 matrix, one row per product, with an all-zero row where the product
has no input (empty caption, missing or unreadable image) and a reason for it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...errors import UserError

TEXT_EMBEDDERS = ("tfidf-svd", "st:<path>", "none")
IMAGE_EMBEDDERS = ("descriptor", "none")
IMAGE_DESCRIPTOR_VERSION = 1  # bump when the descriptor changes (it is part of the pools' fingerprint)


class EmbedderError(UserError):
    """A text model that cannot be loaded (its folder is missing, sentence-transformers is not installed);
    the message names the folder or the package."""

Progress = Callable[[str, int, int], None]


def l2_normalise(x: np.ndarray, center: bool = False) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); ``center`` subtracts the mean of non-zero rows first."""
    x = np.asarray(x, dtype=np.float32)
    nonzero = np.abs(x).sum(axis=1) > 0
    if center and nonzero.sum() > 1:
        x = x.copy()
        x[nonzero] -= x[nonzero].mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------------- text
def _identity(tokens):
    return tokens


def tfidf_svd(tokens: list[list[str]], texts: list[str], dim: int = 128, seed: int = 0,
              keep: list | None = None, n_iter: int = 7, svd: str = "randomized") -> np.ndarray:
    """TF-IDF of word tokens and of char 2-3-grams, concatenated and reduced to ``dim`` with SVD.

    Args:
        tokens: jieba tokens per product (``captions.tokens``); empty for a product without caption.
        texts: caption text per product (for the character n-grams).
        dim: SVD components (capped by the corpus size).
        seed: SVD seed.
        n_iter: power iterations of the randomized SVD (more: closer to the exact top ``dim`` subspace,
            so a fit on a slightly grown corpus gives nearly the same vectors).
        svd: the solver (:func:`fit_svd`): ``arpack`` iterates to the converged top components,
            ``randomized`` stops after ``n_iter`` power iterations, ``oversampled`` is randomized with
            a sketch of ``2 * dim`` columns (``pools.svd``; pools pass arpack by default).
        keep: when given, the fitted vectorizers and SVD are appended to it as a :class:`TfidfSvd`
            (whose ``transform`` embeds more captions as these were; nothing when none was fitted).
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    out = np.zeros((n, dim), np.float32)
    have = [i for i in range(n) if texts[i] or tokens[i]]
    if len(have) < 2:
        return out
    words = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, dtype=np.float32)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=True, dtype=np.float32)
    tok = _clean_tokens([tokens[i] for i in have])
    m = sparse.hstack([words.fit_transform(tok), chars.fit_transform([texts[i] or " " for i in have])]).tocsr()
    k = min(dim, m.shape[0] - 1, m.shape[1] - 1)
    if k < 1:
        return out
    model = fit_svd(k, seed, svd, n_iter)
    red = model.fit_transform(m)
    out[np.asarray(have), :k] = red.astype(np.float32)
    if keep is not None:
        keep.append(TfidfSvd(words, chars, model, dim))
    return out


SVDS = ("randomized", "oversampled", "arpack")


def fit_svd(k: int, seed: int, svd: str = "randomized", n_iter: int = 7):
    """An unfitted TruncatedSVD of ``k`` components (call ``fit`` or ``fit_transform``): ``arpack``
    to a tolerance of 1e-6 (the components settle: a refit on a slightly grown corpus finds nearly
    the same ones), ``randomized`` with ``n_iter`` power iterations and scikit-learn's 10 extra
    columns, ``oversampled`` with ``k`` extra columns."""
    from sklearn.decomposition import TruncatedSVD

    if svd == "randomized":
        return TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=n_iter)
    if svd == "oversampled":
        return TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=n_iter, n_oversamples=k)
    if svd == "arpack":
        return TruncatedSVD(n_components=k, random_state=seed, algorithm="arpack", tol=1e-6)
    raise ValueError(f"unknown SVD {svd!r} ({', '.join(SVDS)})")


class TfidfSvd:
    """:func:`tfidf_svd` fitted on a seeded sample of captions and applied to any batch of them
    (large catalogs: the sparse matrix of a sample, not of every product, is held in memory).

    Unlike :func:`tfidf_svd`, terms seen in one sampled caption only are dropped and each
    vocabulary keeps its :data:`MAX_TERMS` most frequent terms, so memory does not follow the
    vocabulary of a large sample (3M character n-grams at 100k synthetic titles: 3 GB of SVD factors).
    """

    MIN_DF = 2  # captions of the sample a term must appear in
    MAX_TERMS = 1 << 18  # terms kept per vocabulary (None: all)

    def __init__(self, words, chars, svd, dim: int):
        self.words, self.chars, self.svd, self.dim = words, chars, svd, dim

    @classmethod
    def fit_sample(cls, tokens, texts, dim: int = 128, seed: int = 0, sample: int = 100_000,
                   n_iter: int = 7, svd: str = "randomized") -> TfidfSvd | None:
        """Fit on up to ``sample`` captions with text (Arrow columns ``tokens``, ``texts``), drawn with ``seed``;
        None when fewer than two have text."""
        import pyarrow.compute as pc
        from sklearn.feature_extraction.text import TfidfVectorizer

        have = np.flatnonzero(pc.or_(pc.greater(pc.utf8_length(texts), 0),
                                     pc.greater(pc.list_value_length(tokens), 0)).to_numpy(zero_copy_only=False))
        if len(have) < 2:
            return None
        if len(have) > sample:
            have = np.sort(np.random.default_rng(seed).choice(have, sample, replace=False))
        take = pa_indices(have)
        tok = _clean_tokens(tokens.take(take).to_pylist())
        txt = [t or " " for t in texts.take(take).to_pylist()]
        # a term of one caption links no two products; the cap bounds the SVD's (terms x dim) factors
        from scipy import sparse

        fitted = []
        for kind, docs in (("words", tok), ("chars", txt)):
            for min_df in dict.fromkeys((cls.MIN_DF, 1)):  # no term in two captions: keep them all
                vec = TfidfVectorizer(analyzer=_identity, min_df=min_df, max_features=cls.MAX_TERMS,
                                      sublinear_tf=True, dtype=np.float32) if kind == "words" else \
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=min_df,
                                    max_features=cls.MAX_TERMS, sublinear_tf=True, dtype=np.float32)
                try:
                    fitted.append((vec, vec.fit_transform(docs)))
                    break
                except ValueError:  # "After pruning, no terms remain"
                    continue
            else:
                return None
        (words, mw), (chars, mc) = fitted
        m = sparse.hstack([mw, mc]).tocsr()
        k = min(dim, m.shape[0] - 1, m.shape[1] - 1)
        if k < 1:
            return None
        return cls(words, chars, fit_svd(k, seed, svd, n_iter).fit(m), dim)

    def transform(self, tokens: list[list[str]], texts: list[str]) -> np.ndarray:
        """(n, dim) float32; zero rows for captions without text or tokens."""
        from scipy import sparse

        out = np.zeros((len(texts), self.dim), np.float32)
        have = [i for i in range(len(texts)) if texts[i] or tokens[i]]
        if not have:
            return out
        m = sparse.hstack([self.words.transform(_clean_tokens([tokens[i] for i in have])),
                           self.chars.transform([texts[i] or " " for i in have])]).tocsr()
        red = self.svd.transform(m)
        out[np.asarray(have), :red.shape[1]] = red.astype(np.float32)
        return out


def pa_indices(rows: np.ndarray):
    import pyarrow as pa

    return pa.array(rows.astype(np.int64))


def _clean_tokens(tokens: list[list[str]]) -> list[list[str]]:
    # lower-cased tokens, whitespace dropped: "Pro" and "pro", "XL " and "XL" are one token
    return [[t.strip().lower() for t in (toks or []) if t.strip()] or ["<empty>"] for toks in tokens]


def sentence_transformer(texts: list[str], model_path: str, batch_size: int = 64) -> np.ndarray:
    """Embed texts with a sentence-transformers model from a local folder (nothing is downloaded)."""
    path = Path(model_path)
    if not path.is_dir():
        raise EmbedderError(f"sentence-transformers model folder not found: {path}")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbedderError(f"the text model {path} needs sentence-transformers "
                            "(pip install sentence-transformers)") from None
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    vec = model.encode([t or "" for t in texts], batch_size=batch_size, normalize_embeddings=True,
                       show_progress_bar=False)
    vec = np.asarray(vec, np.float32)
    vec[[not t for t in texts]] = 0.0
    return vec


# ------------------------------------------------------------------------------------------ image
_HUE, _SAT, _VAL = 18, 3, 3  # HSV histogram bins
_ORIENT = 8  # folded gradient orientation bins over [0, pi/2]
IMAGE_DIM = _HUE * _SAT * _VAL + 48 + _ORIENT + 4 + 64


def phash_bits(phash: str | None) -> np.ndarray:
    """The 64 bits of a hex pHash as +-1 (zeros when there is none)."""
    if not phash:
        return np.zeros(64, np.float32)
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(phash.rjust(16, "0")[-16:]), np.uint8))
    return bits.astype(np.float32) * 2 - 1


def image_descriptor(path: str | Path, phash: str | None = None, size: int = 96) -> np.ndarray:
    """The descriptor of one image file (raises OSError / ValueError for an unreadable one)."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced DCT scale
        im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        hsv = np.asarray(im.convert("HSV"), np.float32) / 256.0
        rgb = np.asarray(im, np.float32) / 255.0
    h = np.minimum((hsv[..., 0] * _HUE).astype(int), _HUE - 1)
    s = np.minimum((hsv[..., 1] * _SAT).astype(int), _SAT - 1)
    v = np.minimum((hsv[..., 2] * _VAL).astype(int), _VAL - 1)
    hist = np.bincount((((h * _SAT) + s) * _VAL + v).ravel(), minlength=_HUE * _SAT * _VAL).astype(np.float32)
    hist = np.sqrt(hist / hist.sum())
    # 4x4 mean colour layout, averaged with its mirror image (listings of one product are mirrored)
    grid = rgb.reshape(4, size // 4, 4, size // 4, 3).mean(axis=(1, 3))
    layout = ((grid + grid[:, ::-1]) / 2).ravel()
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    theta = np.mod(np.arctan2(gy, gx), np.pi)
    folded = np.minimum(theta, np.pi - theta)  # a horizontal mirror maps theta to pi - theta
    orient = np.bincount(np.minimum((folded / (np.pi / 2) * _ORIENT).astype(int), _ORIENT - 1).ravel(),
                         weights=mag.ravel(), minlength=_ORIENT).astype(np.float32)
    orient /= max(orient.sum(), 1e-6)
    stats = np.array([mag.mean(), mag.std(), (mag > 0.1).mean(), grey.std()], np.float32)
    parts = [(hist, 1.0), (layout, 0.8), (orient, 0.5), (stats, 0.3), (phash_bits(phash), 0.5)]
    return np.concatenate([w * p / max(np.linalg.norm(p), 1e-6) for p, w in parts]).astype(np.float32)


def image_descriptors(paths: list[str | None], phashes: list[str | None], workers: int = 0,
                      progress: Progress | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Descriptors of many images (threads: Pillow releases the GIL while decoding).

    Returns the (n, IMAGE_DIM) matrix and a reason per row (None when the image was read).
    """
    import os

    n = len(paths)
    out = np.zeros((n, IMAGE_DIM), np.float32)
    reasons: list[str | None] = [None] * n

    def one(i: int):
        if not paths[i]:
            return i, None, "no image"
        try:
            return i, image_descriptor(paths[i], phashes[i]), None
        except FileNotFoundError:
            return i, None, "image file missing"
        except (OSError, ValueError) as exc:
            return i, None, f"unreadable image: {type(exc).__name__}"

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for done, (i, vec, reason) in enumerate(pool.map(one, range(n)), 1):
            if vec is not None:
                out[i] = vec
            reasons[i] = reason
            if progress and (done % 500 == 0 or done == n):
                progress("image descriptors", done, n)
    return out, reasons
