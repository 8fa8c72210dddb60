"""A stage's staged and kept folders (``Store.staged`` / ``Store.kept``) on a folder store and on S3
(moto on 127.0.0.1): a block that fails (a refused commit, a lost lease) writes nothing into the
store; the previous files stay."""

from __future__ import annotations

import pytest

from m5data.storage import Store


class Refused(Exception):
    """What ends the block: as a Conflict or a lost lease would."""


@pytest.fixture(params=["folder", "s3"])
def any_store(request, tmp_path):
    if request.param == "folder":
        return Store.init(tmp_path / "store")
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    return Store.init(request.getfixturevalue("s3_url"))


def test_a_staged_block_that_fails_leaves_the_previous_files(any_store):
    store = any_store
    with store.staged("derived/align") as folder:
        (folder / "review.csv").write_text("good")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("good b")
    assert store.read_bytes("derived/align/review.csv") == b"good"
    with pytest.raises(Refused):
        with store.staged("derived/align") as folder:
            (folder / "review.csv").write_text("stale")
            (folder / "sub").mkdir(exist_ok=True)
            (folder / "sub" / "b.txt").write_text("stale b")
            (folder / "extra.txt").write_text("stale")
            raise Refused("align: the commit of taxonomy was refused")
    assert store.read_bytes("derived/align/review.csv") == b"good"
    assert store.read_bytes("derived/align/sub/b.txt") == b"good b"
    assert store.files("derived/") == ["derived/align/review.csv", "derived/align/sub/b.txt"]
    with store.staged("derived/align") as folder:  # a block that ends well replaces them
        (folder / "review.csv").write_text("new")
    assert store.read_bytes("derived/align/review.csv") == b"new"
    assert store.read_bytes("derived/align/sub/b.txt") == b"good b"
    assert store.files("derived/") == ["derived/align/review.csv", "derived/align/sub/b.txt"]


def test_a_partial_staged_block_keeps_its_files_when_it_fails(any_store):
    """A run's own log folder (crawl's): what it wrote explains the failure."""
    store = any_store
    with pytest.raises(Refused):
        with store.staged("logs/crawl/run1", partial=True) as folder:
            (folder / "crawl.log").write_text("why it failed")
            raise Refused("the crawl was interrupted")
    assert store.read_bytes("logs/crawl/run1/crawl.log") == b"why it failed"


def test_a_kept_block_that_fails_on_s3_uploads_and_deletes_nothing_but_what_it_pushed(s3_url):
    pytest.importorskip("s3fs")
    store = Store.init(s3_url)
    with store.kept("derived/k") as kept:
        (kept.path / "vectors.npy").write_bytes(b"good")
        (kept.path / "old.npy").write_bytes(b"old")
    with pytest.raises(Refused):
        with store.kept("derived/k") as kept:
            (kept.path / "vectors.npy").write_bytes(b"stale")
            (kept.path / "new.npy").write_bytes(b"stale")
            (kept.path / "marker").write_bytes(b"done")
            kept.push(kept.path / "marker")  # made durable at once: a killed run's next run resumes from it
            kept.remove("old.npy")
            raise Refused("pools: its lease was lost")
    assert store.read_bytes("derived/k/vectors.npy") == b"good"
    assert store.read_bytes("derived/k/old.npy") == b"old"
    assert store.read_bytes("derived/k/marker") == b"done"
    assert store.files("derived/k/") == ["derived/k/marker", "derived/k/old.npy", "derived/k/vectors.npy"]
