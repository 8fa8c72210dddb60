"""The fitted embedder of the candidate pools, kept so that an incremental run embeds new products
as the last full run embedded the others.

What a full run fits: the text model (TF-IDF vocabularies with their IDF and the SVD's components;
none for a sentence-transformers model, which is not fitted here) and the centring mean of each
block (text, image) over the products that have it. :class:`Embedder` holds them and applies them
to any batch of products: raw blocks, each centred with its kept mean, L2-normalised, zeroed where
the product has no input, weighted, concatenated and normalised again (the full run's own steps).

Kept as ``.npz`` (numpy arrays only, read with ``allow_pickle=False``; never a pickle): the
vocabularies as UTF-8 bytes with offsets, the IDF and component matrices as float arrays.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..kernels import embed

FORMAT = 1  # the .npz layout; another one is no kept embedder (a full run)


class Components:
    """The projection of a fitted TruncatedSVD (its ``transform``: ``X @ components.T``)."""

    def __init__(self, components: np.ndarray):
        self.components_ = components

    def transform(self, m):
        from sklearn.utils.extmath import safe_sparse_dot

        return safe_sparse_dot(m, self.components_.T)


@dataclass
class Embedder:
    """The fitted parts of a full run's embedding; ``vectors`` embeds more products with them."""

    text_kind: str  # "tfidf" or "st" (a sentence-transformers folder: nothing fitted)
    text_dim: int
    text_model: object | None  # embed.TfidfSvd (None: fewer than two captions at the fit, text raw = zeros)
    means: list[np.ndarray] = field(default_factory=list)  # per block: text, then image when there is one
    image: bool = True
    image_kind: str = "descriptor"  # pools.image of the fit: descriptor or vectors (none: image False)
    image_model: str = ""  # vectors: the image model whose vectors the image block is (its identity)

    def vectors(self, store, catalog, s, progress=None) -> tuple[np.ndarray, Counter, np.ndarray]:
        """(n, d) vectors of ``catalog``'s products, their gaps by reason and whether each has a vector."""
        from .image_vectors import image_of

        a = s.pools
        n = len(catalog)
        texts = catalog.column("text")
        has_text = np.array([bool(t) for t in texts], bool)
        if self.text_kind == "st":
            raw_text = embed.sentence_transformer(texts, a.text_model) if n else np.zeros((0, self.text_dim), np.float32)
        elif self.text_model is None:
            raw_text = np.zeros((n, self.text_dim), np.float32)
        else:
            raw_text = self.text_model.transform(catalog.column("tokens"), texts)
        gaps: Counter = Counter()
        gaps["zero text block: empty caption"] = int((~has_text).sum())
        blocks = [(raw_text, has_text, a.text_weight)]
        has_image = np.zeros(n, bool)
        if self.image:
            raw_image, has_image = image_of(store, catalog, s, 0, n, gaps, progress)
            blocks.append((raw_image, has_image, a.image_weight))
        parts = []
        for (x, has, w), mean in zip(blocks, self.means):
            x = np.array(x, np.float32)
            nonzero = np.abs(x).sum(axis=1) > 0
            x[nonzero] -= mean
            x = embed.l2_normalise(x)
            x[~has] = 0.0
            parts.append(np.sqrt(w) * x)
        vec = embed.l2_normalise(np.concatenate(parts, axis=1)) if n else np.zeros((0, sum(p.shape[1] for p in parts)), np.float32)
        return vec, +gaps, has_text | has_image


def nonzero_mean(x: np.ndarray) -> np.ndarray:
    """The mean of the non-zero rows (as ``embed.l2_normalise(center=True)`` subtracts it; zeros for one row or none)."""
    nonzero = np.abs(x).sum(axis=1) > 0
    if nonzero.sum() <= 1:
        return np.zeros(x.shape[1], np.float32)
    return x[nonzero].mean(axis=0).astype(np.float32)


def _pack(terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    data = [t.encode("utf-8") for t in terms]
    offsets = np.zeros(len(data) + 1, np.int64)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return np.frombuffer(b"".join(data), np.uint8), offsets


def _unpack(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    return [raw[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


def dumps(e: Embedder) -> bytes:
    """The embedder as ``.npz`` bytes (arrays only)."""
    arrays = {"format": np.array([FORMAT]), "text_kind": np.array([e.text_kind]), "text_dim": np.array([e.text_dim]),
              "image": np.array([e.image]), "n_means": np.array([len(e.means)]),
              "image_kind": np.array([e.image_kind]), "image_model": np.array([e.image_model])}
    for i, m in enumerate(e.means):
        arrays[f"mean{i}"] = np.asarray(m, np.float32)
    m = e.text_model
    if m is not None:
        for kind, vec in (("words", m.words), ("chars", m.chars)):
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)  # by column
            arrays[f"{kind}_terms"], arrays[f"{kind}_offsets"] = _pack(terms)
            arrays[f"{kind}_idf"] = np.asarray(vec.idf_, np.float32)
        arrays["components"] = np.asarray(m.svd.components_)
        arrays["model_dim"] = np.array([m.dim])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def loads(data: bytes | None) -> Embedder | None:
    """The embedder of :func:`dumps`'s bytes; None when there are none or they are not this format."""
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if int(arrays["format"][0]) != FORMAT:
            return None
        model = None
        if "components" in arrays:
            from sklearn.feature_extraction.text import TfidfVectorizer

            vecs = []
            for kind in ("words", "chars"):
                terms = _unpack(arrays[f"{kind}_terms"], arrays[f"{kind}_offsets"])
                vocab = {t: i for i, t in enumerate(terms)}
                vec = (TfidfVectorizer(analyzer=embed._identity, sublinear_tf=True, dtype=np.float32, vocabulary=vocab)
                       if kind == "words" else
                       TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=True, dtype=np.float32,
                                       vocabulary=vocab))
                vec.idf_ = arrays[f"{kind}_idf"]
                vecs.append(vec)
            model = embed.TfidfSvd(vecs[0], vecs[1], Components(arrays["components"]), int(arrays["model_dim"][0]))
        # an embedder kept before the vision vectors had descriptors (or none) and no model
        kind = str(arrays["image_kind"][0]) if "image_kind" in arrays else "descriptor" if arrays["image"][0] else "none"
        return Embedder(str(arrays["text_kind"][0]), int(arrays["text_dim"][0]), model,
                        [arrays[f"mean{i}"] for i in range(int(arrays["n_means"][0]))], bool(arrays["image"][0]),
                        kind, str(arrays["image_model"][0]) if "image_model" in arrays else "")
    except (ValueError, OSError, KeyError, IndexError):
        return None
