"""The store: Parquet tables (source of truth), content-addressed blobs, a DuckDB catalog of views."""

from .blobs import BlobRef, BlobStore
from .protocol import TableStore
from .runs import StageStats, record_run
from .schema import TABLES, TableSpec, table_spec
from .store import CorruptPart, Store, StoreBusy, StoreError

__all__ = ["BlobRef", "BlobStore", "StageStats", "CorruptPart", "Store", "StoreBusy", "StoreError", "TABLES", "TableSpec", "TableStore", "record_run", "table_spec"]
