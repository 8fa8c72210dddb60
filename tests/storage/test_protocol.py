"""The declared store interface (storage/protocol.py): both store classes implement it, method by method."""

import inspect

import pytest

from m5data.storage.open import store_class
from m5data.storage.protocol import TableStore
from m5data.storage.s3store import S3Store
from m5data.storage.store import Store, StoreError

METHODS = sorted(n for n, v in vars(TableStore).items() if inspect.isfunction(v) and not n.startswith("_"))


def _params(func) -> list[tuple]:
    """A signature as callers see it: names, kinds and defaults (annotations may name a backend's types)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


def test_the_protocol_declares_the_methods_stages_use():
    assert {"write", "writer", "read", "count", "connect", "replace", "replace_tables", "compact", "watermark",
            "changed", "read_bytes", "write_bytes", "files", "staged", "kept", "local_files", "work_dir",
            "stage_lock", "table_lock", "where", "local_root", "read_blob", "put_blob", "parts_since",
            "local_parts"} <= set(METHODS)
    assert {"root", "blobs"} <= set(TableStore.__protocol_attrs__ if hasattr(TableStore, "__protocol_attrs__")
                                    else TableStore.__annotations__)


@pytest.mark.parametrize("cls", [Store, S3Store], ids=["folder", "s3"])
@pytest.mark.parametrize("method", METHODS)
def test_each_store_class_implements_each_method_with_the_protocols_signature(cls, method):
    assert callable(getattr(cls, method, None)), f"{cls.__name__} has no {method}"
    assert _params(getattr(cls, method)) == _params(getattr(TableStore, method)), f"{cls.__name__}.{method}"


def test_a_folder_store_is_a_table_store(tmp_path):
    assert isinstance(Store.init(tmp_path / "s"), TableStore)


def test_the_scheme_picks_the_store_class(tmp_path):
    assert store_class(tmp_path) is Store
    assert store_class(str(tmp_path)) is Store
    assert store_class("s3://bucket/prefix") is S3Store
    with pytest.raises(StoreError, match="gs://bucket/x"):
        store_class("gs://bucket/x")
