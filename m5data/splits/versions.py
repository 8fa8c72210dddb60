"""Which split versions a store holds, and which one is *current*: defined once beside the store
(``m5data/storage/queries.py``, docs/splits.md "Which version is current"); the names splits/ and its
readers import."""

from ..storage.queries import current, current_version, stored_versions, version_parts

__all__ = ["current", "current_version", "stored_versions", "version_parts"]
