"""The queries every stage needs, defined once beside the store (storage/queries.py)."""

import pytest

from m5data.splits import versions
from m5data.storage import Store, queries
from m5data.storage.main_image import image_preference, main_image_sql
from m5data.storage.queries import current_version, shard_sql


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


def _main_and_shown(store) -> tuple[dict[str, str], dict[str, str]]:
    """Each product's main image (:func:`main_image_sql`) and the image shown for it (the first ok image
    by :func:`image_preference`), as product_id -> media_id (its sha256 in :func:`_media`)."""
    con = store.connect()
    try:
        main = dict(con.execute(f"SELECT product_id, sha256 FROM ({main_image_sql('product_id, sha256')})").fetchall())
        shown = dict(con.execute(f"SELECT product_id, media_id FROM media s WHERE s.kind = 'image' AND s.status = 'ok' "
                                 f"QUALIFY row_number() OVER (PARTITION BY s.product_id ORDER BY {image_preference('s')}) = 1"
                                 ).fetchall())
    finally:
        con.close()
    return main, shown


def test_the_main_image_is_the_first_ok_main_image_and_the_preference_falls_back(store):
    store.write("media", [
        _media("a", "a-gallery", "gallery", 0), _media("a", "a-main2", "main", 2), _media("a", "a-main1", "main", 1),
        _media("b", "b-failed", "main", 0, status="failed"), _media("b", "b-gallery", "gallery", 3),
        _media("c", "c-video", "main", 0, kind="video"),
    ])
    main, shown = _main_and_shown(store)
    assert main == {"a": "a-main1"}
    assert shown == {"a": "a-main1", "b": "b-gallery"}


def test_the_current_split_version_is_defined_once_beside_the_store(store):
    assert versions.current_version is queries.current_version and versions.current is queries.current
    assert current_version(store) is None
    for version in ("v2", "v10", "imported", "../x"):
        store.write("splits", [{"version": version, "split": "train", "product_id": "p"}])
    assert current_version(store) == "v10"


def test_an_image_without_a_role_is_not_main_but_is_shown_after_the_main_one(store):
    from m5data.storage.main_image import MAIN_IMAGE, is_main, is_main_image, main_image_mask

    store.write("media", [
        _media("a", "a-none", None, 0), _media("a", "a-main", "main", 1),
        _media("b", "b-none", None, 0), _media("b", "b-gallery", "gallery", 1),
    ])
    main, shown = _main_and_shown(store)
    con = store.connect()
    try:
        flags = dict(con.execute(f"SELECT media_id, {is_main()} FROM media").fetchall())
        rows = store.read("media")
    finally:
        con.close()
    assert main == {"a": "a-main"}
    assert shown == {"a": "a-main", "b": "b-none"}  # no main image: the first image by position
    assert flags == {"a-none": False, "a-main": True, "b-none": False, "b-gallery": False}  # false, never null
    kept = rows.filter(main_image_mask(rows)).column("media_id").to_pylist()
    assert kept == ["a-main"] and "status = 'ok'" in MAIN_IMAGE
    assert is_main_image("image", "main") and not is_main_image("image", None) and not is_main_image("video", "main")
