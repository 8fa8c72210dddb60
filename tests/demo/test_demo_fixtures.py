"""The test stores' copies: media hard-linked, and a medium written in place through a copy caught."""

import os

import pytest
from support import demo_fixtures
from support.demo_fixtures import copy_store, written_in_place


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """These tests' links are their own: the session's check of the cached stores never sees them."""
    monkeypatch.setattr(demo_fixtures, "_linked", {})


def _store(root):
    (root / "derived" / "frames" / "ab").mkdir(parents=True)
    (root / "derived" / "frames" / "ab" / "000001.jpg").write_bytes(b"frame")
    (root / "tables" / "media").mkdir(parents=True)
    (root / "tables" / "media" / "part-1.parquet").write_bytes(b"rows")
    return root


def test_media_are_linked_tables_copied_and_a_rename_in_the_copy_leaves_the_source(tmp_path):
    src = _store(tmp_path / "src")
    copy = copy_store(src, tmp_path / "c1")
    frame, part = "derived/frames/ab/000001.jpg", "tables/media/part-1.parquet"
    assert os.path.samefile(src / frame, copy / frame) and not os.path.samefile(src / part, copy / part)
    tmp = copy / "derived" / "frames" / "ab" / ".tmp"
    tmp.write_bytes(b"other frame")
    os.replace(tmp, copy / frame)  # how the store replaces a file
    assert (src / frame).read_bytes() == b"frame" and str(src / frame) not in written_in_place()


def test_a_medium_written_in_place_through_a_copy_is_named(tmp_path):
    src = _store(tmp_path / "src")
    copy = copy_store(src, tmp_path / "c1")
    (copy / "derived" / "frames" / "ab" / "000001.jpg").write_bytes(b"written in place")
    assert str(src / "derived" / "frames" / "ab" / "000001.jpg") in written_in_place()
