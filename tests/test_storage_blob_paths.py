"""resolve_blob: a blob path read from a table never leads outside the store's blob areas."""

from __future__ import annotations

import os

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
