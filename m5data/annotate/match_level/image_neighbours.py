"""Image evidence of match-level: a colour-histogram + pHash descriptor per main image, and the
class votes of each product's nearest other labelled products by that descriptor.

Used by :mod:`.match_level` (the ``image_score`` evidence); no store access of its own beyond
opening the blobs it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Progress = Callable[[str, int, int], None]


@dataclass
class Described:
    """Descriptors of a run of images and why a row has none (what :func:`describe_batch` fills)."""

    desc: np.ndarray  # (n, DESC_DIM) float32, zeros where missing or unreadable
    img_reason: np.ndarray  # int16 index into img_reasons (0: the image was read)
    img_reasons: list[str | None]


DESC_DIM = 64 + 64
_PHASH_WEIGHT = 0.5 / 8.0


def image_descriptor(path, phash: str | None) -> np.ndarray:
    """L2-normalised descriptor of one image file: 4x4x4 colour histogram at 32x32, pHash bits as +-1.

    Raises OSError / ValueError for an unreadable image.
    """
    from PIL import Image

    with Image.open(path) as im:
        px = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)).reshape(-1, 3)
    out = np.zeros(DESC_DIM, np.float32)
    q = (px // 64).astype(np.int64)
    hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float32)
    out[:64] = hist / np.linalg.norm(hist)
    try:
        bits = int(phash or "", 16)
        if bits >> 64:
            raise ValueError("pHash longer than 64 bits")
        raw = np.unpackbits(np.frombuffer(bits.to_bytes(8, "little"), np.uint8), bitorder="little")
        out[64:] = (raw.astype(np.float32) * 2 - 1) * _PHASH_WEIGHT
    except (ValueError, OverflowError):
        pass
    return out / np.linalg.norm(out)


def _describe_one(store_root, blob: str | None, phash: str | None):
    from ...storage.blobs import BlobPathError, resolve_blob

    if not blob:
        return None, "no image"
    try:
        return image_descriptor(resolve_blob(store_root, blob), phash), None
    except BlobPathError:  # a media row naming a file outside the store: never opened
        return None, "image blob path outside the store"
    except (OSError, ValueError) as exc:
        return None, f"image unreadable ({type(exc).__name__})"


def describe_batch(store_root, blobs: list, phashes: list, out, pos: int) -> None:
    """Descriptors of one batch's main images into ``out.desc[pos:]`` (threads: Pillow decodes without the GIL).

    ``out`` has the fields of :class:`Described` (match-level's own inputs do).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        for i, (vec, reason) in enumerate(pool.map(lambda bp: _describe_one(store_root, *bp), zip(blobs, phashes),
                                                   chunksize=64)):
            if vec is not None:
                out.desc[pos + i] = vec
            else:
                if reason not in out.img_reasons:
                    out.img_reasons.append(reason)
                out.img_reason[pos + i] = out.img_reasons.index(reason)


def image_descriptors(store_root, blobs: list[str | None], phashes: list[str | None]) -> tuple[np.ndarray, list[str | None]]:
    """Descriptors of main images (a row of zeros where missing or unreadable) and a reason per row."""
    inp = Described(desc=np.zeros((len(blobs), DESC_DIM), np.float32), img_reason=np.zeros(len(blobs), np.int16),
                    img_reasons=[None])
    describe_batch(store_root, blobs, phashes, inp, 0)
    return inp.desc, [inp.img_reasons[r] for r in inp.img_reason]


def image_votes(desc: np.ndarray, has: np.ndarray, labels: np.ndarray, k: int, *, gallery: int = 0,
                seed: int = 0, block: int = 2048, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each product with an image: class votes of its ``k`` nearest other labelled products (cosine).

    The neighbours come from the blocked exact search (:func:`.search.exact_search`), query block by
    query block; the gallery is the labelled products with an image, or a seeded sample of
    ``gallery`` of them when there are more (so a product's cost does not grow with the store).

    Returns ``(label, weight)``, both (n, k): the neighbours' labels (-1: none) and their share
    of the vote (cosine similarity, clipped at 0, over the row's total; 0 where none).
    """
    from ..kernels.search import exact_search

    n = len(desc)
    vote_label = np.full((n, k), -1, np.int32)
    vote_w = np.zeros((n, k), np.float32)
    pool = np.flatnonzero(has & (labels >= 0))
    queries = np.flatnonzero(has)
    if len(pool) < 2 or not len(queries):
        return vote_label, vote_w
    if gallery and len(pool) > gallery:
        pool = np.sort(np.random.default_rng(seed).choice(pool, gallery, replace=False))
    where = np.full(n, -1, np.int64)
    where[pool] = np.arange(len(pool))
    gal = desc[pool]
    step = block * 8
    for qs in range(0, len(queries), step):
        rows = queries[qs:qs + step]
        for hits in exact_search(desc[rows], gal, k, block=block, self_index=where[rows]):
            r = rows[hits.start:hits.start + len(hits.index)]
            w = np.clip(hits.scores, 0.0, None).astype(np.float32)
            w[~np.isfinite(hits.scores)] = 0.0
            total = w.sum(axis=1, keepdims=True)
            kk = hits.index.shape[1]
            vote_label[r, :kk] = np.where(w > 0, labels[pool[hits.index]], -1)
            vote_w[r, :kk] = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        if progress:
            progress("image neighbours", min(qs + step, len(queries)), len(queries))
    return vote_label, vote_w
