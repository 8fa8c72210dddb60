"""Download the demo shop's media (rows from its truth) and score the statuses against the faults."""

import pyarrow.parquet as pq

from m5data.config import load
from m5data.download.run import run
from m5data.storage.media_ids import media_id

# truth fault -> status when images are stored as served (no re-encoding)
AS_IS = {"none": "ok", "slow": "ok", "transient_500": "ok", "dead_404": "failed",
         "corrupt_not_image": "not_media", "corrupt_zero_bytes": "not_media",
         "corrupt_truncated": "ok"}  # sniffs as its format; extract finds it does not decode


def _rows(shop, kinds=("image", "video")):
    truth = pq.read_table(shop.truth_dir / "media.parquet").to_pylist()
    rows, faults = [], {}
    for i, t in enumerate(r for r in truth if r["kind"] in kinds):
        url = shop.url + t["url"]
        mid = media_id(t["product_id"], t["kind"], url)
        rows.append({"media_id": mid, "product_id": t["product_id"], "kind": t["kind"], "role": t["role"],
                     "position": t["position"], "url": url, "status": "pending"})
        faults[mid] = t
    return rows, faults


def _settings(tmp_path, **extra):
    return load(overrides={"download.allow_private": True, "download.backoff": 0.05,
                           "download.max_failure_rate": 1.0, **extra}, environ={}, cwd=tmp_path)


def test_demo_shop_media_end_in_the_status_its_fault_implies(demo_shop, store, tmp_path):
    demo_shop.reset_faults()
    rows, truth = _rows(demo_shop)
    store.write("media", rows)
    stats = run(store, _settings(tmp_path))
    got = {r["media_id"]: r for r in store.read("media").to_pylist()}
    assert stats.n_in == len(rows)
    seen_faults = set()
    for mid, t in truth.items():
        row, fault = got[mid], t["fault"]
        seen_faults.add(fault)
        assert row["status"] == AS_IS[fault], (t["url"], fault, row["error"])
        if fault == "dead_404":
            assert row["http_status"] == 404 and row["attempts"] == 1
        if fault == "transient_500":
            assert row["attempts"] == 2
        if row["status"] == "ok" and fault != "corrupt_truncated":
            assert row["sha256"] == t["sha256"] and row["bytes"] == t["bytes"]
            assert row["mime"] == {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}[t["format"]]
            if t["kind"] == "image":
                assert (row["width"], row["height"]) == (t["width"], t["height"])
    assert {"dead_404", "corrupt_not_image", "corrupt_zero_bytes", "transient_500", "slow"} <= seen_faults
    assert all(store.blobs.verify(b) for b in store.blobs.iter_paths())


def test_demo_shop_images_reencoded(demo_shop, store, tmp_path):
    demo_shop.reset_faults()
    rows, truth = _rows(demo_shop, kinds=("image",))
    store.write("media", rows)
    run(store, _settings(tmp_path, **{"download.image_max_side": 256, "download.workers": 2}))
    for row in store.read("media").to_pylist():
        t = truth[row["media_id"]]
        if t["decodable"]:
            assert row["status"] == "ok" and max(row["width"], row["height"]) == min(256, max(t["width"], t["height"]))
        elif t["fault"] == "corrupt_truncated":
            assert row["status"] == "corrupt" and "does not decode" in row["error"]
        else:
            assert row["status"] == AS_IS[t["fault"]]
