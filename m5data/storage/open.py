"""The one factory of stores: which backend serves a location, and opening (or creating) the store there.

A location is a folder (a path) or a URL whose scheme names a backend (:data:`STORE_CLASSES`, as Scrapy's
``FEED_STORAGES`` maps a scheme to a storage class: ``s3://bucket/prefix`` is
:class:`~m5data.storage.s3store.S3Store`); an unknown scheme is a one-line StoreError. :func:`open_store`
is what every ``Store.open`` and ``Store.from_settings`` comes to: no store class decides another's
backend. Each backend class opens and creates only its own kind (``_open_here`` / ``_init_here``) and
is handed only the options it takes (the commit log's belong to a store on object storage).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StoreError

if TYPE_CHECKING:
    from .protocol import TableStore

# URL scheme -> the class of a store there ("": a local folder); classes named, imported when used
STORE_CLASSES = {
    "": "m5data.storage.store:Store",
    "s3": "m5data.storage.s3store:S3Store",
}
# options only some backends take (the commit log's): dropped for a class whose constructor does not name them
BACKEND_OPTIONS = ("lease_seconds", "garbage_grace", "checkpoint_every")


def store_class(location: str | Path) -> type:
    """The store class of ``location``: by its URL's scheme (``s3://bucket/prefix``), a folder without one.
    Raises StoreError naming a scheme no store class serves."""
    scheme = str(location).split("://", 1)[0] if isinstance(location, str) and "://" in location else ""
    if scheme not in STORE_CLASSES:
        raise StoreError(f"no store for {location}: its scheme {scheme!r} is none of "
                         f"{', '.join(repr(s) for s in STORE_CLASSES if s)} (or a folder)")
    module, name = STORE_CLASSES[scheme].split(":")
    return getattr(importlib.import_module(module), name)


def _options(kind: type, options: dict) -> dict:
    """``options`` less the backend options ``kind`` does not take (a folder has no commit log)."""
    takes = inspect.signature(kind.__init__).parameters
    return {k: v for k, v in options.items() if k in takes or k not in BACKEND_OPTIONS}


def open_store(location: str | Path, *, create: bool = False, **options) -> TableStore:
    """The store at ``location`` (a folder or ``s3://bucket/prefix``); ``create``: make it when there is
    none (else StoreError). ``options``: ``compression``, ``part_rows`` and the backend's own."""
    kind = store_class(location)
    return kind._open_here(location, create=create, **_options(kind, options))


def init_store(location: str | Path, **options) -> TableStore:
    """Create the store at ``location`` (an existing one is opened as it is) and return it."""
    kind = store_class(location)
    return kind._init_here(location, **_options(kind, options))


def open_from_settings(settings, *, create: bool = False) -> TableStore:
    """:func:`open_store` of ``settings.store_path`` with the store settings (``store.*``)."""
    return open_store(settings.store_path, create=create, compression=settings.store.compression,
                      part_rows=settings.store.part_rows, lease_seconds=settings.store.lease_seconds,
                      garbage_grace=settings.store.garbage_grace)
