"""resolve_blob: a blob path read from a table never leads outside the store's blob areas."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from m5data.storage.blobs import BlobPathError, resolve_blob


@pytest.fixture()
def store_root(tmp_path):
    root = tmp_path / "store"
    (root / "blobs" / "ab").mkdir(parents=True)
    (root / "derived" / "frames" / "x").mkdir(parents=True)
    (root / "tables").mkdir()
    (root / "blobs" / "ab" / "abcd.jpg").write_bytes(b"jpeg")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def test_paths_inside_the_blob_and_derived_areas_resolve(store_root):
    assert resolve_blob(store_root, "blobs/ab/abcd.jpg") == (store_root / "blobs/ab/abcd.jpg").resolve()
    assert resolve_blob(store_root, "derived/frames/x").is_dir()


@pytest.mark.parametrize("rel", [
    "", "/etc/passwd", "../secret.txt", "blobs/../../secret.txt", "blobs/../tables/products",
    "tables/x.parquet", "blobs", "derived", "blobs/ab/\x00.jpg",
])
def test_paths_outside_the_blob_areas_are_refused(store_root, rel):
    with pytest.raises(BlobPathError):
        resolve_blob(store_root, rel)


def test_a_symlink_inside_blobs_that_points_out_is_refused(store_root):
    os.symlink(store_root.parent / "secret.txt", store_root / "blobs" / "ab" / "link.jpg")
    with pytest.raises(BlobPathError, match="link.jpg"):
        resolve_blob(store_root, "blobs/ab/link.jpg")


def test_a_folder_replaced_by_a_symlink_after_a_first_resolve_is_refused(store_root):
    # the folder blobs/ab/ is resolved once and remembered: a later swap for a link out must not pass
    assert resolve_blob(store_root, "blobs/ab/abcd.jpg").read_bytes() == b"jpeg"
    outside = store_root.parent / "outside"
    outside.mkdir()
    (outside / "abcd.jpg").write_text("outside")
    (store_root / "blobs" / "ab" / "abcd.jpg").unlink()
    (store_root / "blobs" / "ab").rmdir()
    os.symlink(outside, store_root / "blobs" / "ab")
    with pytest.raises(BlobPathError, match="abcd.jpg"):
        resolve_blob(store_root, "blobs/ab/abcd.jpg")


def test_paths_of_one_folder_resolve_alike_whatever_the_working_folder(store_root, monkeypatch):
    # a relative store root names another store from another working folder: never one remembered folder
    other = store_root.parent / "elsewhere" / "store"
    (other / "blobs" / "ab").mkdir(parents=True)
    monkeypatch.chdir(store_root.parent)
    assert resolve_blob(Path("store"), "blobs/ab/abcd.jpg") == (store_root / "blobs/ab/abcd.jpg").resolve()
    monkeypatch.chdir(other.parent)
    assert resolve_blob(Path("store"), "blobs/ab/abcd.jpg") == (other / "blobs/ab/abcd.jpg").resolve()


def test_a_folder_of_a_blob_path_may_be_an_area_but_a_path_may_not(store_root):
    (store_root / "blobs" / "top.jpg").write_bytes(b"x")
    assert resolve_blob(store_root, "blobs/top.jpg") == (store_root / "blobs" / "top.jpg").resolve()
    for rel in ("blobs/ab/..", "blobs/.", "blobs/ab/../..", "blobs/ab/../../tables/x"):
        with pytest.raises(BlobPathError):
            resolve_blob(store_root, rel)
