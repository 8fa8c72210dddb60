"""The image block from the vision stage's vectors (``pools.image = vectors``): each product's block is
the ``image_vectors`` vector of its main image's normalised copy, of one image model.

A product's main image is :mod:`m5data.storage.main_image`'s; its normalised copy is the ``image_norm``
media row (status ok) whose ``source_media_id`` is the main image's ``media_id``. The model is
``pools.image_model``, or, when that is empty, the one model the table holds (several: refused, naming
the setting and the models; none: refused, naming ``m5data vision``). A product without a vector (no
normalised main image, no row of the model, a row with the picture's error) gets a zero image block
with its reason counted, as a product without an image gets one on the descriptor path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ...errors import UserError
from ...storage.main_image import main_image_sql
from ..kernels import embed
from .images import image_block

IMAGES = (*embed.IMAGE_EMBEDDERS, "vectors")  # pools.image's values: the descriptor, none, the vision vectors
VECTORS = "vectors"
REASONS = {"none": "no image", "row": "no image vector of the model", "error": "image vector error"}


class ImageVectorsError(UserError, ValueError):
    """``pools.image = vectors`` cannot run with the store's image vectors; one line naming what to do."""


@dataclass(frozen=True)
class ImageModel:
    """The image model whose vectors make the image block, and their length."""

    name: str
    dim: int


def models(store) -> dict[str, int]:
    """``{model: its vectors' length}`` of every model the ``image_vectors`` table holds (0: no vector, errors only)."""
    if not store.count("image_vectors"):
        return {}
    con = store.connect(need=("image_vectors",), only=("image_vectors",), cursor=True)
    try:
        rows = con.execute("SELECT model, coalesce(max(dim), 0) FROM image_vectors GROUP BY model ORDER BY model").fetchall()
    finally:
        con.close()
    return {m: int(d) for m, d in rows}


def resolve(store, settings) -> ImageModel | None:
    """The image model of ``pools.image = vectors`` (None for another ``pools.image``); ImageVectorsError (one line)
    when the table holds none, several and none is named, or not the one named."""
    a = settings.pools
    if a.image != VECTORS:
        return None
    found = models(store)
    if not found:
        raise ImageVectorsError("pools.image = vectors: the store has no image vectors (image_vectors is empty): "
                         "run `m5data vision` first, or set pools.image to descriptor or none")
    if a.image_model:
        if a.image_model not in found:
            raise ImageVectorsError(f"pools.image_model {a.image_model!r} has no image vectors in the store; "
                             f"models found: {', '.join(repr(m) for m in found)}")
        name = a.image_model
    elif len(found) > 1:
        raise ImageVectorsError(f"pools.image = vectors: the store holds image vectors of {len(found)} models: "
                         f"{', '.join(repr(m) for m in found)}; name one with pools.image_model")
    else:
        name = next(iter(found))
    if not found[name]:
        raise ImageVectorsError(f"pools.image = vectors: the model {name!r} made no vector (every picture failed): "
                         "see the vision stage's failures")
    return ImageModel(name, found[name])


def catalog_sql(model: str, only: str = "") -> str:
    """SQL of each product's main image's normalised copy and its row of ``model`` (``product_id``,
    ``vec_media``, ``vec_mark``: when the row was made, ``error:`` its error, null when there is none);
    ``only``: more of the media rows' filter (``AND ...``)."""
    quoted = model.replace("'", "''")
    main = main_image_sql("product_id, media_id", only)
    return f"""
        SELECT m.product_id, d.media_id AS vec_media,
               CASE WHEN v.media_id IS NULL THEN NULL
                    WHEN v.vector IS NULL THEN 'error:' || coalesce(v.error, '')
                    ELSE CAST(v.made_at AS VARCHAR) END AS vec_mark
        FROM ({main}) m JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm' AND d.status = 'ok'
        LEFT JOIN image_vectors v ON v.media_id = d.media_id AND v.model = '{quoted}'
        QUALIFY row_number() OVER (PARTITION BY m.product_id ORDER BY v.vector IS NULL, d.media_id) = 1"""


def vector_block(store, catalog, start: int, stop: int, gaps: Counter) -> tuple[np.ndarray, np.ndarray]:
    """Raw image blocks of products start..stop (their vectors of ``catalog.image_model``; zeros where there
    is none, its reason counted in ``gaps``) and whether each has one."""
    model = catalog.image_model
    media = catalog.column("vec_media", start, stop)
    marks = catalog.column("vec_mark", start, stop)
    out = np.zeros((stop - start, model.dim), np.float32)
    has = np.zeros(stop - start, bool)
    wanted = [m for m, k in zip(media, marks) if m is not None and k is not None and not k.startswith("error:")]
    found: dict[str, int] = {}
    if wanted:
        con = store.connect(need=("image_vectors",), only=("image_vectors",), cursor=True)
        try:
            t = con.sql("SELECT media_id, vector FROM image_vectors WHERE model = ? AND vector IS NOT NULL "
                        "AND media_id IN (SELECT unnest(?::VARCHAR[]))", params=[model.name, wanted]).to_arrow_table()
        finally:
            con.close()
        vectors = t.column("vector").combine_chunks()
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if t.num_rows and len(flat) != t.num_rows * model.dim:
            raise ImageVectorsError(f"image vectors of {model.name!r} are not all {model.dim} long: run `m5data vision` "
                             "with one model file version")
        matrix = flat.reshape(t.num_rows, model.dim)
        found = {m: i for i, m in enumerate(t.column("media_id").to_pylist())}
    for i, (m, k) in enumerate(zip(media, marks)):
        j = found.get(m) if m is not None else None
        if j is not None:
            out[i], has[i] = matrix[j], True
        else:
            gaps[f"zero image block: {REASONS['none' if m is None else 'error' if k and k.startswith('error:') else 'row']}"] += 1
    return out, has


def image_dim(s, catalog) -> int:
    """Width of the image block: the descriptor's, the vectors' model's, or 0 (``pools.image`` none)."""
    if s.pools.image == VECTORS:
        return catalog.image_model.dim
    return embed.IMAGE_DIM if s.pools.image == "descriptor" else 0


def image_of(store, catalog, s, start: int, stop: int, gaps: Counter,
             progress) -> tuple[np.ndarray, np.ndarray]:
    """The raw image blocks of products start..stop and whether each has one: descriptors of the main
    image's normalised file, or that image's vision vectors (``pools.image``)."""
    if s.pools.image == VECTORS:
        return vector_block(store, catalog, start, stop, gaps)
    return image_block(store, catalog, start, stop, gaps, progress)
