"""A media row's id, made in one place (storage/media_ids.py): byte-identical to the ids existing stores
key their ``media`` rows on (pinned digests, made by the formulas the crawler, the URL lists, the
importer and extract used before they shared it)."""

import hashlib

from m5data.crawler import pipeline
from m5data.download import sources
from m5data.extract import derived
from m5data.storage.media_ids import derived_id, imported_media_id, media_id

URL = "http://127.0.0.1:8000/img/a.jpg"


def test_the_ids_are_the_stores_ids_byte_for_byte():
    assert media_id("demo-a:123", "image", URL) == "c36b53e8379152c0b3a6d719658271016c38f37a"
    assert media_id("p", "video", "http://x/v.mp4?a=1&b=é") == "8f18e29938433ee63b0ac104d3ab0a2887a18923"
    assert imported_media_id("demo-a:123", "image", "images/é 1.jpg") == "aa7374a67a74da24d0a0134a79a669094bfee3b5"
    assert derived_id("0123abcd", "image_norm") == "4134b418c949c1bc2f1cd0e54db93651792353e7"
    # the formulas they pin, as each writer had them
    for pid, kind, url in [("demo-b:9", "image", URL), ("url:0123", "audio", "https://x/ä.mp3"), ("p", "video", "")]:
        assert media_id(pid, kind, url) == hashlib.sha1(f"{pid}|{kind}|{url}".encode()).hexdigest()
        assert imported_media_id(pid, kind, url) == hashlib.sha1(f"{pid}|{kind}|import:{url}".encode()).hexdigest()
        assert derived_id(url, kind) == hashlib.sha1(f"{url}|{kind}".encode()).hexdigest()


def test_every_writer_takes_the_one_function():
    assert pipeline.media_id is media_id and sources.media_id is media_id and derived.derived_id is derived_id


def test_a_crawled_and_a_listed_url_get_one_row_and_an_import_its_own():
    from m5data.importer.run import _media_row

    class Ref:
        path, sha256, bytes = "blobs/ab/ab.jpg", "ab", 1

    row = _media_row("demo-a:123", "image", "main", "images/é 1.jpg", Ref, "image/jpeg")
    assert row["media_id"] == "aa7374a67a74da24d0a0134a79a669094bfee3b5"
    assert row["media_id"] != media_id("demo-a:123", "image", "images/é 1.jpg")
