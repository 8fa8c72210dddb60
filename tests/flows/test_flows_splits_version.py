"""The pipeline's splits stage: the same version while the store is unchanged, a new one when it grew."""

import json
from datetime import datetime, timedelta, timezone

from m5data.splits.stage import incremental_version


def _product(pid, when):
    return {"product_id": pid, "platform": "p", "source_id": pid, "title": pid, "crawled_at": when}


def test_new_version_only_when_the_store_changed(store):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert incremental_version(store, "v1") == "v1"  # no splits yet
    store.write("products", [_product("p:1", t0), _product("p:2", t0)])
    store.write("splits", [{"product_id": "p:1", "split": "train", "version": "v1"},
                           {"product_id": "p:2", "split": "query-c", "version": "v1"}])
    folder = store.local_root() / "derived" / "splits" / "v1"
    folder.mkdir(parents=True)
    folder.joinpath("manifest.json").write_text(json.dumps({"products": 2, "created_at": (t0 + timedelta(hours=1)).isoformat()}))
    assert incremental_version(store, "v1") == "v1"  # unchanged: rebuilding v1 changes nothing
    store.write("products", [_product("p:3", t0 + timedelta(hours=2))])
    assert incremental_version(store, "v1") == "v2"  # grown: v1 stays as it is
    store.write("splits", [{"product_id": "p:3", "split": "train", "version": "v2"}])
    assert incremental_version(store, "v1") == "v3"  # v2 has no manifest: never reuse a version of unknown origin
