"""``m5data import m5product`` reads an attacker's folder: nothing outside it may reach the store.

Each test builds a small M5Product-layout folder (two good items with a real JPEG, MP4 and MP3
each) next to an ``outside/`` folder of real media the attacker wants to steal, adds one attack,
imports it through the CLI and checks: no traceback, the bad item failed with its reason (counted
in the ``runs`` row and named in the output), the good items imported with their media, and no
byte of an outside file in the store (blob contents, media rows) or in an ``export --format
m5product`` of the result; no blob that no media row names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from support.export_helpers import settings_for
from support.media_samples import make_sample
from support.store_samples import query
from typer.testing import CliRunner

from m5data.cli import app
from m5data.export.run import export
from m5data.storage import Store

GOOD = ("good1", "good2")
COLOURS = {"good1": (200, 30, 30), "good2": (30, 200, 30), "secret": (1, 2, 3), "stolen": (4, 5, 6), "mine": (9, 9, 90)}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Real media, made once: ``<name>.jpg``, ``<name>.mp4``, ``<name>.mp3`` (distinct bytes per name)."""
    folder = tmp_path_factory.mktemp("media")
    for n, (name, colour) in enumerate(COLOURS.items()):
        Image.new("RGB", (32, 24), colour).save(folder / f"{name}.jpg", quality=90)
        make_sample(folder, "tone.mp3", seconds=0.5, freq=300 + 100 * n).rename(folder / f"{name}.mp3")
        make_sample(folder, "audio_only.mp4", seconds=0.5, freq=300 + 100 * n).rename(folder / f"{name}.mp4")
    return folder


@pytest.fixture
def world(media, tmp_path):
    """``tmp/outside/`` (the files to steal) and ``tmp/dl/m5p/`` (the downloaded layout, two good items)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("secret", "stolen"):
        for ext in ("jpg", "mp4", "mp3"):
            shutil.copy(media / f"{name}.{ext}", outside / f"{name}.{ext}")
    root = tmp_path / "dl" / "m5p"
    for sub in ("images", "videos", "audios"):
        (root / sub).mkdir(parents=True)
    for iid in GOOD:
        shutil.copy(media / f"{iid}.jpg", root / "images" / f"{iid}.jpg")
        shutil.copy(media / f"{iid}.mp4", root / "videos" / f"{iid}.mp4")
        shutil.copy(media / f"{iid}.mp3", root / "audios" / f"{iid}.mp3")
    captions = {iid: {"title": f"title of {iid}", "pv": "颜色#:#红色"} for iid in GOOD}
    write_json(root / "captions.json", captions)
    write_json(root / "m5product_label_list.json", ["服装 > 上衣"])
    write_json(root / "m5product_id_label.json", {iid: 0 for iid in GOOD})
    (root / "train.txt").write_text("".join(f"{iid}\n" for iid in GOOD), encoding="utf-8")
    return tmp_path, root, outside


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def add_item(root: Path, iid: str, title: str = "bad", split: bool = True) -> None:
    """Add a caption entry (and a train.txt line) for ``iid``, written as the attacker wrote it."""
    captions = json.loads((root / "captions.json").read_text(encoding="utf-8"))
    captions[iid] = {"title": title, "pv": ""}
    write_json(root / "captions.json", captions)
    if split:
        with open(root / "train.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{iid}\n")


def run_import(tmp_path: Path, root: Path, *extra: str):
    target = tmp_path / "store"
    result = CliRunner().invoke(app, ["--store", str(target), "import", "m5product", str(root), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result, target


def import_with_bad_item(world, iid: str):
    """``(result, target)`` of importing the world's folder with item ``iid`` added: the import
    succeeds with the item, alone, refused as a bad id."""
    tmp_path, root, _ = world
    add_item(root, iid)
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"bad item id": 1}
    return result, target


def failures(target: Path) -> dict[str, int]:
    (raw,) = query(Store.open(target), "SELECT failures FROM runs WHERE stage = 'import'")[0]
    return json.loads(raw)


def assert_good_items(target: Path, platform: str = "m5product") -> None:
    """Both good items are products with their own image, video and audio, byte for byte."""
    store = Store.open(target)
    titles = dict(query(store, "SELECT product_id, title FROM products"))
    for iid in GOOD:
        assert titles[f"{platform}:{iid}"] == f"title of {iid}"
    rows = query(store, "SELECT product_id, kind, blob, status FROM media")
    for iid in GOOD:
        kinds = {kind: blob for pid, kind, blob, status in rows if pid == f"{platform}:{iid}" and status == "ok"}
        assert set(kinds) == {"image", "video", "audio"}
    splits = {pid for (pid,) in query(store, "SELECT product_id FROM splits WHERE version = 'imported'")}
    assert {f"{platform}:{iid}" for iid in GOOD} <= splits


def assert_nothing_outside(tmp_path: Path, target: Path, outside: Path) -> None:
    """No outside file's bytes in the store, in a media row, or in an M5Product export of the store;
    every blob file is named by a media row (no orphans)."""
    secrets = {p.name: p.read_bytes() for p in outside.iterdir() if p.is_file()}
    hashes = {hashlib.sha256(b).hexdigest() for b in secrets.values()}
    store = Store.open(target)
    rows = query(store, "SELECT blob, sha256 FROM media")
    assert not {sha for _blob, sha in rows} & hashes
    blob_files = {p.relative_to(target).as_posix() for p in (target / "blobs").rglob("*") if p.is_file()}
    assert blob_files == {blob for blob, _sha in rows if blob and blob.startswith("blobs/")}, "orphan blobs"
    assert_no_secret_in(target, secrets)
    out = tmp_path / "exported"
    export(store, settings_for(store, **{"export.workers": 1}), out=out, fmt="m5product", version="imported")
    assert {f"{iid}.jpg" for iid in GOOD} <= {p.name for p in (out / "images").iterdir()}
    assert_no_secret_in(out, secrets)


def assert_no_secret_in(folder: Path, secrets: dict[str, bytes]) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for name, secret in secrets.items():
                assert secret not in data, f"{path} holds the bytes of outside/{name}"


def test_symlinks_out_of_the_folder_are_not_followed(world):
    tmp_path, root, outside = world
    add_item(root, "linked")
    (root / "audios" / "linked.mp3").symlink_to(outside / "secret.mp3")
    (root / "images" / "linked.jpg").symlink_to(outside / "secret.jpg")
    add_item(root, "vlinked")
    (root / "videos" / "vlinked.mp4").symlink_to(outside / "stolen.mp4")
    add_item(root, "fifo")
    os.mkfifo(root / "audios" / "fifo.mp3")  # opening it for reading would hang the run
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"media not a regular file inside the folder": 3}
    assert "linked" in result.output and "symlink" in result.output
    ids = {pid for (pid,) in query(Store.open(target), "SELECT product_id FROM products")}
    assert ids == {f"m5product:{iid}" for iid in GOOD}
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


def test_a_symlinked_media_folder_is_refused_before_anything_is_written(world):
    tmp_path, root, outside = world
    shutil.rmtree(root / "audios")
    shutil.copy(root / "videos" / "good1.mp4", outside / "good1.mp3")  # what a followed link would take
    (root / "audios").symlink_to(outside)
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 1 and "audios" in result.output and "Traceback" not in result.output
    assert not (target / "blobs").exists() or not any((target / "blobs").rglob("*.*"))


@pytest.mark.parametrize("iid", ["../../../outside/stolen", "../../outside/stolen", "..", "a/../../../../outside/stolen"])
def test_dot_dot_item_ids_are_refused(world, iid):
    tmp_path, _, outside = world
    result, target = import_with_bad_item(world, iid)
    assert "outside/stolen" in result.output or iid in result.output
    assert query(Store.open(target), "SELECT count(*) FROM products")[0][0] == len(GOOD)
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


@pytest.mark.parametrize("iid", ["*", "good*", "../../../outside/sec*", "[gs]*", "?ood1"])
def test_glob_item_ids_take_no_other_file(world, iid):
    tmp_path, _, outside = world
    _, target = import_with_bad_item(world, iid)
    store = Store.open(target)
    # no product holds another item's video (each good video is held once, by its own item)
    videos = query(store, "SELECT sha256, count(*) FROM media WHERE kind = 'video' GROUP BY sha256")
    assert sorted(n for _sha, n in videos) == [1, 1]
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


def test_absolute_item_ids_are_refused_without_a_traceback_or_orphan_blob(world):
    tmp_path, _, outside = world
    result, target = import_with_bad_item(world, str(outside / "secret"))  # images/<abs>.jpg: the outside file itself
    assert "NotImplementedError" not in result.output
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)  # checks for orphan blobs too


def test_evil_product_ids_in_m5data_items_are_refused(world, media):
    tmp_path, root, outside = world
    thief = "shop~3Agood1"  # the safe key of shop:good1: an export's other spelling of good1's id
    for iid in ("evil", thief, "wrongtype", "mismatch", "ok3"):
        add_item(root, iid)
        shutil.copy(media / "mine.jpg", root / "images" / f"{iid}.jpg")
    write_json(root / "m5data_items.json", {"version": "v1", "items": {
        "good1": {"product_id": "shop:good1"},
        "good2": {"product_id": "shop:good2"},
        "evil": {"product_id": "../../../evil:evil"},  # a platform that is a path
        thief: {"product_id": "shop:good1"},  # would overwrite good1's product
        "wrongtype": {"product_id": ["shop", "x"]},
        "mismatch": {"product_id": "shop:other"},  # the item id is neither the source id nor its key
        "ok3": {"product_id": "shop:ok3"},
    }})
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"bad product id in m5data_items.json": 3, "product id taken by another item": 1}
    store = Store.open(target)
    products = dict(query(store, "SELECT product_id, title FROM products"))
    assert products == {"shop:good1": "title of good1", "shop:good2": "title of good2", "shop:ok3": "bad"}
    assert_good_items(target, platform="shop")
    assert_nothing_outside(tmp_path, target, outside)


def test_wrong_json_types_fail_their_item_only(world):
    tmp_path, root, outside = world
    captions = json.loads((root / "captions.json").read_text(encoding="utf-8"))
    captions |= {"notobj": ["title", "pv"], "titledict": {"title": {"a": 1}, "pv": ""},
                 "pvint": {"title": "t", "pv": 7}, "badlabel": {"title": "t", "pv": ""},
                 "boollabel": {"title": "t", "pv": ""}, "far": {"title": "t", "pv": ""},
                 "itemwrong": {"title": "t", "pv": ""}}
    write_json(root / "captions.json", captions)
    id_label = {**{iid: 0 for iid in GOOD}, "badlabel": "0", "boollabel": True, "far": 99}
    write_json(root / "m5product_id_label.json", id_label)
    write_json(root / "m5data_items.json", {"items": {"itemwrong": "not an object"}})
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"caption entry not an object": 1, "caption entry: title or pv not text": 2,
                                "label not an index into the label list": 3, "bad product id in m5data_items.json": 1}
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


@pytest.mark.parametrize("name, data", [
    ("captions.json", ["a list", "not an object"]),
    ("m5product_label_list.json", {"not": "a list"}),
    ("m5product_label_list.json", ["ok > ok", 3]),
    ("m5product_id_label.json", [0, 1]),
    ("m5data_items.json", {"items": ["a", "list"]}),
    ("m5data_items.json", ["a list"]),
])
def test_a_file_of_the_wrong_shape_is_a_clear_error(world, name, data):
    tmp_path, root, outside = world
    write_json(root / name, data)
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 1, result.output
    assert name in result.output and "Traceback" not in result.output
    assert not (target / "blobs").exists() or not any((target / "blobs").rglob("*.*"))


def test_non_utf8_files_are_clear_errors_or_failed_lines(world):
    tmp_path, root, outside = world
    # a title that JSON can carry but UTF-8 cannot (a lone surrogate): the item fails
    captions = json.loads((root / "captions.json").read_text(encoding="utf-8"))
    text = json.dumps(captions, ensure_ascii=False)[:-1] + ', "surrogate": {"title": "x\\ud800y", "pv": ""}}'
    (root / "captions.json").write_text(text, encoding="utf-8")
    # a split list line that is not UTF-8: the line is dropped, the good ids stay
    with open(root / "train.txt", "ab") as fh:
        fh.write(b"\xff\xfe\xc3\x28bad\n")
    # a second JSON that is not UTF-8 is no candidate for the caption file
    (root / "extra.json").write_bytes('{"x": {"title": "é"}}'.encode("latin-1"))
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"caption entry not valid Unicode": 1, "train.txt: line not a valid item id": 1}
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)

    latin = tmp_path / "latin"
    shutil.copytree(root, latin)
    (latin / "captions.json").write_bytes('{"a": {"title": "café", "pv": ""}}'.encode("latin-1"))
    result, target = run_import(tmp_path / "l", latin)
    assert result.exit_code == 1 and "captions.json" in result.output and "UTF-8" in result.output
    assert "Traceback" not in result.output


def test_garbage_media_fail_their_item_and_leave_no_blob(world, media):
    tmp_path, root, outside = world
    garbage = {"images/junk.jpg": os.urandom(4096), "videos/html.mp4": b"<!doctype html><title>404</title>",
               "audios/text.mp3": b"just some text, not an mp3 at all\n" * 20,
               "videos/picture.mp4": (media / "mine.jpg").read_bytes()}  # real media, the wrong kind
    for rel, data in garbage.items():
        iid = Path(rel).stem
        add_item(root, iid)
        (root / rel).write_bytes(data)
    # a good image beside a garbage audio: the item fails whole, so its image leaves no blob either
    shutil.copy(media / "stolen.jpg", root / "images" / "text.jpg")
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"media not a known format": 3, "media of the wrong kind": 1}
    assert "junk" in result.output and "images/junk.jpg" in result.output
    store = Store.open(target)
    assert {pid for (pid,) in query(store, "SELECT product_id FROM products")} == {f"m5product:{i}" for i in GOOD}
    shas = {sha for (sha,) in query(store, "SELECT sha256 FROM media")}
    assert not shas & {hashlib.sha256(d).hexdigest() for d in garbage.values()}
    secrets = dict(garbage) | {"text.jpg": (media / "stolen.jpg").read_bytes()}
    assert_no_secret_in(target, secrets)
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


def test_hard_links_fail_their_item_and_take_no_outside_byte(world):
    """Issue 35: a hard link is a regular file inside the folder whose bytes may be a file the importing
    user can read elsewhere; every media file with more than one name fails its item, with that reason."""
    tmp_path, root, outside = world
    for rel, target in (("images/hlinked.jpg", "secret.jpg"), ("videos/vhlinked.mp4", "stolen.mp4"),
                        ("audios/ahlinked.mp3", "secret.mp3")):
        add_item(root, Path(rel).stem)
        os.link(outside / target, root / rel)
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 0, result.output
    assert failures(target) == {"media file is a hard link": 3}
    assert "images/hlinked.jpg is a hard link (2 names" in result.output.replace("\n", "")
    assert_good_items(target)
    assert_nothing_outside(tmp_path, target, outside)


def test_a_hard_linked_layout_file_is_a_clear_error(world):
    tmp_path, root, outside = world
    write_json(outside / "labels.json", ["家居 > 厨具"])
    (root / "m5product_label_list.json").unlink()
    os.link(outside / "labels.json", root / "m5product_label_list.json")
    result, target = run_import(tmp_path, root)
    assert result.exit_code == 1, result.output
    output = result.output.replace("\n", "")
    assert "m5product_label_list.json" in output and "hard link" in output and "Traceback" not in output
    assert not (target / "blobs").exists() or not any((target / "blobs").rglob("*.*"))


def test_media_files_over_the_download_caps_fail_their_item(world, media):
    """Import folders' file sizes are capped per kind by download.max_image_bytes / max_video_bytes
    (audio too); a larger file fails its item with the sizes named, and none of it is stored."""
    tmp_path, root, outside = world
    big_image = os.urandom(200_000)  # sniffs as JPEG: a real JPEG start, then noise
    big_image = (media / "mine.jpg").read_bytes()[:-2] + big_image + b"\xff\xd9"
    add_item(root, "bigimage")
    (root / "images" / "bigimage.jpg").write_bytes(big_image)
    add_item(root, "bigvideo")
    video = make_sample(tmp_path, "audio_only.mp4", seconds=8, freq=500)
    shutil.copy(video, root / "videos" / "bigvideo.mp4")
    good = max((root / sub / f"{iid}.{ext}").stat().st_size
               for iid in GOOD for sub, ext in (("images", "jpg"), ("videos", "mp4"), ("audios", "mp3")))
    cap = 3 * good
    assert video.stat().st_size > cap and len(big_image) > cap
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["--store", str(store), "--set", f"download.max_image_bytes={cap}",
                                      "--set", f"download.max_video_bytes={cap}", "import", "m5product", str(root)])
    assert result.exit_code == 0, result.output
    assert failures(store) == {"media file too large": 2}
    output = result.output.replace("\n", "")
    assert f"images/bigimage.jpg is {len(big_image):,} bytes, over the image cap of {cap:,}" in output, output
    assert "videos/bigvideo.mp4" in output
    assert_good_items(store)
    shas = {sha for (sha,) in query(Store.open(store), "SELECT sha256 FROM media")}
    assert hashlib.sha256(big_image).hexdigest() not in shas
    assert hashlib.sha256(video.read_bytes()).hexdigest() not in shas
