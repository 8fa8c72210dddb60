"""The store: Parquet tables (source of truth), content-addressed blobs, a DuckDB catalog of views."""

from .blobs import BlobRef, BlobStore
from .open import init_store, open_from_settings, open_store
from .protocol import TableStore
from .runs import StageStats, record_run
from .schema import TABLES, TableSpec, table_spec
from .store import CorruptPart, Store, StoreBusy, StoreError

__all__ = ["BlobRef", "BlobStore", "StageStats", "CorruptPart", "Store", "StoreBusy", "StoreError", "TABLES", "TableSpec",
           "TableStore", "init_store", "open_from_settings", "open_store", "record_run", "table_spec"]
