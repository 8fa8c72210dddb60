"""The store: Parquet tables (source of truth), content-addressed blobs, a DuckDB catalog of views."""

from .blobs import BlobRef, BlobStore
from .runs import StageStats, record_run
from .schema import TABLES, TableSpec, table_spec
from .store import Store, StoreError

__all__ = ["BlobRef", "BlobStore", "StageStats", "Store", "StoreError", "TABLES", "TableSpec", "record_run", "table_spec"]
