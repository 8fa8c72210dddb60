"""The image half of a product's pool vector: its main image's descriptors, read from the store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..kernels import embed

Progress = Callable[[str, int, int], None]


def image_paths(store_root, blobs: list[str | None]) -> tuple[list[str | None], list[int]]:
    """The files of image blob paths read from ``media`` (None where there is none), and the
    positions whose path leads outside the store's blob areas (left as None: never opened)."""
    from ...storage.blobs import BlobPathError, resolve_blob

    paths: list[str | None] = []
    outside: list[int] = []
    for i, blob in enumerate(blobs):
        try:
            paths.append(str(resolve_blob(store_root, blob)) if blob else None)
        except BlobPathError:
            paths.append(None)
            outside.append(i)
    return paths, outside


def image_block(store, catalog, start: int, stop: int, gaps: Counter, progress: Progress | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Raw image descriptors of products start..stop and whether each was read (gaps counted)."""
    blobs = catalog.column("blob", start, stop)
    with store.local_files(blobs) as root:  # on object storage: copies of these images, removed after
        paths, outside = image_paths(root, blobs)
        image, reasons = embed.image_descriptors(paths, catalog.column("phash", start, stop), progress=progress)
    for i in outside:
        reasons[i] = "image blob path outside the store"
    for r in reasons:
        if r:
            gaps[f"zero image block: {r}"] += 1
    return image, np.array([r is None for r in reasons], bool)
