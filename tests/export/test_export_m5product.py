"""M5Product layout: the authors' files (caption JSON with title/pv, images/videos/audios, label files,
lists), and the round trip export -> ``m5data import m5product`` -> same titles, specs, image bytes."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from support.export_helpers import export_demo
from support.store_samples import query
from typer.testing import CliRunner

from m5data.cli import app
from m5data.export.m5product_format import parse_pv, pv_string
from m5data.storage import Store


@pytest.fixture(scope="module")
def exported(demo_store_factory, tmp_path_factory):
    return export_demo(demo_store_factory, tmp_path_factory.mktemp("m5p"), "m5product", shard_size=16, workers=2)


def test_pv_strings_follow_the_toolkit():
    pairs = [("品牌", "KBDfans"), ("颜色", "黑色")]
    assert pv_string(pairs) == "品牌#:#KBDfans#;#颜色#:#黑色"
    assert parse_pv("品牌#:#KBDfans#;#颜色#:#黑色") == pairs
    assert parse_pv("") == [] and parse_pv("x") == []  # length <= 1: no table, as the toolkit reads it


def test_layout_holds_the_authors_files(exported):
    store, root, report = exported
    out = root / "out"
    captions = json.loads((out / "captions.json").read_text())
    items = json.loads((out / "m5data_items.json").read_text())
    assert items["item_ids"] == "source_id"  # the demo's platform ids are unique and file-safe
    products = {pid: (title, source) for pid, title, source in query(store, "SELECT product_id, title, source_id FROM products")}
    exported_ids = {r[0] for r in query(store, "SELECT DISTINCT product_id FROM splits")}
    assert len(captions) == len(exported_ids)
    for iid, rec in captions.items():
        pid = items["items"][iid]["product_id"]
        assert set(rec) == {"title", "pv"} and rec["title"] == (products[pid][0] or "") and iid == products[pid][1]
    specs = {}
    for pid, prop, value in query(store, "SELECT product_id, property, value FROM specs ORDER BY product_id, position"):
        specs.setdefault(pid, []).append((prop, value))
    with_specs = [i for i in captions if captions[i]["pv"]]
    assert with_specs
    for iid in with_specs:
        assert parse_pv(captions[iid]["pv"]) == specs[items["items"][iid]["product_id"]]
    labels = json.loads((out / "m5product_label_list.json").read_text())
    id_label = json.loads((out / "m5product_id_label.json").read_text())
    assert labels and all(" > " in name for name in labels)
    for iid, label in id_label.items():
        assert labels[label].endswith(items["items"][iid]["sub_class_name"])
    norm = dict(query(store, "SELECT product_id, blob FROM media WHERE kind = 'image_norm' AND status = 'ok'"))
    images = sorted(p.stem for p in (out / "images").glob("*.jpg"))
    assert images and all(items["items"][i]["product_id"] in norm for i in images)
    assert sorted(p.stem for p in (out / "videos").iterdir()) and sorted(p.stem for p in (out / "audios").glob("*.mp3"))
    for split, name in [("train", "train.txt"), ("query-c", "query.txt"), ("gallery-c", "gallery.txt"),
                        ("cls-test", "cls_test.txt")]:
        lines = (out / name).read_text().split()
        assert len(lines) == report.splits[split] and set(lines) <= set(captions)
    assert (out / "retrieval" / "coarse" / "query.txt").read_text() == (out / "query.txt").read_text()
    assert (out / "retrieval" / "coarse" / "train.txt").read_text() == (out / "gallery.txt").read_text()


def test_round_trip_through_import(exported, tmp_path):
    store, root, report = exported
    runner = CliRunner()
    target = tmp_path / "imported"
    result = runner.invoke(app, ["--store", str(target), "import", "m5product", str(root / "out")])
    assert result.exit_code == 0, result.output
    new = Store.open(target)
    ids = [r[0] for r in query(store, "SELECT DISTINCT product_id FROM splits")]
    old_titles = {pid: t for pid, t in query(store, "SELECT product_id, title FROM products")}
    new_titles = dict(query(new, "SELECT product_id, title FROM products"))
    assert set(new_titles) == set(ids)
    assert all(new_titles[p] == old_titles[p] for p in ids)
    old_specs = query(store, "SELECT product_id, position, property, value FROM specs ORDER BY ALL")
    assert query(new, "SELECT product_id, position, property, value FROM specs ORDER BY ALL") == \
        [r for r in old_specs if r[0] in set(ids)]
    old_images = dict(query(store, "SELECT product_id, sha256 FROM media WHERE kind = 'image_norm' AND status = 'ok'"))
    new_images = {pid: (sha, blob) for pid, sha, blob in query(new, "SELECT product_id, sha256, blob FROM media WHERE kind = 'image'")}
    assert set(new_images) == set(old_images) & set(ids)
    for pid, (sha, blob) in new_images.items():
        assert sha == old_images[pid] == hashlib.sha256((target / blob).read_bytes()).hexdigest()
    old_videos = dict(query(store, "SELECT product_id, sha256 FROM media WHERE kind = 'video' AND status = 'ok'"))
    new_videos = dict(query(new, "SELECT product_id, sha256 FROM media WHERE kind = 'video'"))
    assert new_videos and all(new_videos[p] == old_videos[p] for p in new_videos)
    # category paths come back at the unified level the layout carries (class > sub-class)
    paths = dict(query(new, "SELECT product_id, category_path FROM products"))
    labelled = query(store, "SELECT p.product_id, t1.name, t2.name FROM products p JOIN label_map l ON l.platform = p.platform "
                             "AND l.raw_path = array_to_string(p.category_path, ' > ') JOIN taxonomy t1 ON t1.level = 1 "
                             "AND t1.label_id = l.class_id JOIN taxonomy t2 ON t2.level = 2 AND t2.label_id = l.sub_class_id")
    assert labelled and all(paths[p] == [c, s] for p, c, s in labelled if p in paths)
    # the split lists come back as a split version
    assert sorted(query(new, "SELECT split, product_id FROM splits WHERE version = 'imported'")) == \
        sorted(query(store, "SELECT split, product_id FROM splits WHERE version = 'v1'"))
    runs = query(new, "SELECT stage, status, n_out FROM runs")
    assert runs == [("import", "ok", len(ids))]
    n_media = new.count("media")
    again = runner.invoke(app, ["--store", str(target), "import", "m5product", str(root / "out")])
    assert again.exit_code == 0 and new.count("products") == len(ids) and new.count("media") == n_media  # upserts


def test_import_of_the_authors_layout_uses_the_platform_name(exported, tmp_path):
    store, root, _ = exported
    plain = tmp_path / "authors"
    shutil.copytree(root / "out", plain)
    (plain / "m5data_items.json").unlink()  # the authors' data carries no m5data ids
    (plain / "captions.json").rename(plain / "m5product_caption.json")  # nor our file name
    runner = CliRunner()
    result = runner.invoke(app, ["--store", str(tmp_path / "s"), "import", "m5product", str(plain), "--platform", "taobao"])
    assert result.exit_code == 0, result.output
    new = Store.open(tmp_path / "s")
    rows = query(new, "SELECT product_id, platform, source_id FROM products")
    assert rows and all(pid == f"taobao:{src}" and plat == "taobao" for pid, plat, src in rows)
    bad = runner.invoke(app, ["--store", str(tmp_path / "s2"), "import", "m5product", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and "no such folder" in bad.output


def test_check_shards_verifies_every_file_of_the_layout_and_names_a_damaged_one(exported, tmp_path):
    from support.cli_inprocess import invoke

    store, root, report = exported
    out = tmp_path / "m5p"
    shutil.copytree(root / "out", out)
    done = invoke("check-shards", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    # every file but the plan, the stats and the shards' completion markers: records, media indexes,
    # media, the JSON files and the lists
    files = [p for p in out.rglob("*") if p.is_file() and p.name not in ("_export.json", "_stats.json")
             and not p.name.endswith(".stats.json")]
    assert len(files) > 100
    assert f"{len(files)} file(s) ok: {sum(report.splits.values()):,} samples" in done.stdout
    image = sorted((out / "images").glob("*.jpg"))[0]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    image.write_bytes(bytes(data))
    bad = invoke("check-shards", str(out))
    said = bad.stdout + bad.stderr
    assert bad.returncode == 1 and f"1 of {len(files)} file(s) failed: images/{image.name}" in said
    assert "sha256 differs" in said
    with open(out / "captions.json", "r+b") as fh:
        fh.truncate(10)
    bad = invoke("check-shards", "--no-hash", str(out))
    said = bad.stdout + bad.stderr
    assert bad.returncode == 1 and "1 of" in said and "failed: captions.json" in said and "truncated" in said
    (out / "_stats.json").unlink()  # as an export from before m5data kept it
    bad = invoke("check-shards", str(out))
    assert bad.returncode == 1 and "an M5Product export without _stats.json" in bad.stdout + bad.stderr
