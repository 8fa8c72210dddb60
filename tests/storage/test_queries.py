"""The queries every stage needs, defined once beside the store (storage/queries.py)."""

import pytest

from m5data.splits import versions
from m5data.storage import Store, queries
from m5data.storage.queries import current_version, image_preference, main_image_sql, shard_sql


@pytest.fixture
def store(tmp_path):
    return Store.init(tmp_path / "store")


def _media(pid, mid, role, position, status="ok", kind="image"):
    return {"media_id": mid, "product_id": pid, "kind": kind, "role": role, "position": position, "status": status,
            "sha256": mid}


def test_the_shards_of_a_table_hold_each_row_once(store):
    store.write("media", [_media(f"p{i}", f"m{i:03d}", "main", 0) for i in range(60)])
    con = store.connect()
    try:
        shards = [{r for r, in con.execute(f"SELECT media_id FROM media m WHERE {shard_sql('m.media_id', (i, 3))}")
                   .fetchall()} for i in range(3)]
    finally:
        con.close()
    assert sum(map(len, shards)) == 60 and set().union(*shards) == {f"m{i:03d}" for i in range(60)}
    assert all(shards)  # 60 rows over 3 shards: none empty
    assert shard_sql("media_id", ("1", "4")) == "hash(media_id) % 4 = 1"


def test_the_main_image_is_the_first_ok_main_image_and_the_preference_falls_back(store):
    store.write("media", [
        _media("a", "a-gallery", "gallery", 0), _media("a", "a-main2", "main", 2), _media("a", "a-main1", "main", 1),
        _media("b", "b-failed", "main", 0, status="failed"), _media("b", "b-gallery", "gallery", 3),
        _media("c", "c-video", "main", 0, kind="video"),
    ])
    con = store.connect()
    try:
        main = dict(con.execute(f"SELECT product_id, sha256 FROM ({main_image_sql('product_id, sha256')})").fetchall())
        shown = dict(con.execute(f"SELECT product_id, media_id FROM media s WHERE s.kind = 'image' AND s.status = 'ok' "
                                 f"QUALIFY row_number() OVER (PARTITION BY s.product_id ORDER BY {image_preference('s')}) = 1"
                                 ).fetchall())
    finally:
        con.close()
    assert main == {"a": "a-main1"}
    assert shown == {"a": "a-main1", "b": "b-gallery"}


def test_the_current_split_version_is_defined_once_beside_the_store(store):
    assert versions.current_version is queries.current_version and versions.current is queries.current
    assert current_version(store) is None
    for version in ("v2", "v10", "imported", "../x"):
        store.write("splits", [{"version": version, "split": "train", "product_id": "p"}])
    assert current_version(store) == "v10"
