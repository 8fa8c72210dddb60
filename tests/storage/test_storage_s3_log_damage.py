"""A damaged commit log on object storage (a real S3 endpoint: moto's server on 127.0.0.1).

What a reader trusts of a table's log: a checkpoint is checked against the log (its entry exists, its
digest holds) and ignored when it does not agree, so a checkpoint that leaves out a committed part
never empties the table; one damaged log entry (garbage JSON, a gap in the numbering, a part named
outside its table, an entry past the size cap) stops only its own table, with an error naming the
object, and `doctor` reports it and goes on; `doctor --repair` never removes a part that a log entry
adds and no later entry removes, and says what it cannot repair.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from m5data.cli import app  # noqa: E402
from m5data.storage import Store, StoreError  # noqa: E402
from m5data.storage.commitlog import MAX_ENTRY_BYTES, entry_rel  # noqa: E402

runner = CliRunner()

SPECS = [{"product_id": f"a:{i}", "position": 0, "property": "品牌", "value": f"v{i}"} for i in range(5)]


def _key(url: str, rel: str) -> str:
    return f"{url.split('/', 3)[3]}/{rel}"


def _put(aws, url: str, rel: str, body: bytes) -> None:
    aws["client"].put_object(Bucket=aws["bucket"], Key=_key(url, rel), Body=body)


def _requested(aws, text: str) -> list[str]:
    """The server's request lines that name ``text``."""
    return [line for line in aws["log"].read_text(errors="replace").splitlines() if text in line]


def _seeded(url: str) -> Store:
    store = Store.init(url)
    store.write("specs", SPECS)
    store.write("products", [{"product_id": "a:1", "title": "one"}])
    store.write("crawl_errors", [{"url": "http://x/1", "reason": "boom"}])
    store.write("crawl_errors", [{"url": "http://x/2", "reason": "boom"}])
    store.write("crawl_errors", [{"url": "http://x/3", "reason": "boom"}])
    return store


def test_a_checkpoint_that_leaves_out_a_committed_part_is_not_trusted_and_repair_keeps_the_part(s3_url, aws):
    store = _seeded(s3_url)
    [part] = store.log("specs").state().parts
    forged = {"n": 1, "parts": {}, "compacted": True, "last_tag": None, "lease": None}
    _put(aws, s3_url, "tables/specs/_checkpoint.json", json.dumps(forged).encode())
    fresh = Store.open(s3_url)
    assert fresh.count("specs") == len(SPECS)  # the log says entry 1 adds a part: it is read
    checked = runner.invoke(app, ["--store", s3_url, "doctor"])
    assert checked.exit_code == 1 and "checkpoint" in checked.output, checked.output
    repaired = runner.invoke(app, ["--store", s3_url, "--set", "store.garbage_grace=0", "doctor", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert any(k.endswith(part) for k in _keys(aws, s3_url, "tables/specs/"))  # never garbage: entry 1 names it
    assert Store.open(s3_url).count("specs") == len(SPECS)
    again = runner.invoke(app, ["--store", s3_url, "doctor"])
    assert again.exit_code == 0 and "store ok" in again.output, again.output


def test_a_checkpoint_claiming_an_entry_past_the_end_of_the_log_is_not_trusted(s3_url, aws):
    _seeded(s3_url)
    forged = {"n": 1000, "parts": {}, "compacted": True, "last_tag": None, "lease": None}
    _put(aws, s3_url, "tables/specs/_checkpoint.json", json.dumps(forged).encode())
    fresh = Store.open(s3_url)
    assert fresh.count("specs") == len(SPECS) and fresh.watermark("specs") == 1
    fresh.write("specs", [{"product_id": "b:1", "position": 0, "property": "p", "value": "x"}])
    assert Store.open(s3_url).count("specs") == len(SPECS) + 1 and Store.open(s3_url).watermark("specs") == 2


def _keys(aws, url: str, rel_prefix: str) -> list[str]:
    out = []
    for page in aws["client"].get_paginator("list_objects_v2").paginate(Bucket=aws["bucket"],
                                                                        Prefix=_key(url, rel_prefix)):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


@pytest.mark.parametrize("damage", ["garbage", "gap"])
def test_one_damaged_log_stops_only_its_own_table(s3_url, aws, damage):
    _seeded(s3_url)
    parts_before = set(_keys(aws, s3_url, "tables/crawl_errors/part-"))
    rel = entry_rel("crawl_errors", 2)
    if damage == "garbage":
        _put(aws, s3_url, rel, b'{"n": 2, "kind": "write", "add": ["part-')
    else:
        aws["client"].delete_object(Bucket=aws["bucket"], Key=_key(s3_url, rel))
    query = runner.invoke(app, ["--store", s3_url, "sql", "SELECT count(*) AS n FROM specs", "--format", "csv"])
    assert query.exit_code == 0 and query.output.replace('"', "").split() == ["n", str(len(SPECS))], query.output
    joined = runner.invoke(app, ["--store", s3_url, "sql", "SELECT count(*) FROM products JOIN specs USING (product_id)"])
    assert joined.exit_code == 0, joined.output
    broken = runner.invoke(app, ["--store", s3_url, "sql", "SELECT count(*) FROM crawl_errors"])
    assert broken.exit_code == 1 and broken.exception is None or isinstance(broken.exception, SystemExit)
    assert "crawl_errors/_log/" in broken.output and "Traceback" not in broken.output, broken.output
    with pytest.raises(StoreError, match="crawl_errors/_log/"):
        Store.open(s3_url).read("crawl_errors")
    assert Store.open(s3_url).count("specs") == len(SPECS)
    stats = runner.invoke(app, ["--store", s3_url, "stats"])
    assert isinstance(stats.exception, (SystemExit, type(None))), stats.exception
    assert "specs" in stats.output and "crawl_errors/_log/" in stats.output, stats.output
    checked = runner.invoke(app, ["--store", s3_url, "doctor"])
    assert isinstance(checked.exception, (SystemExit, type(None))) and checked.exit_code == 1, checked.output
    assert "crawl_errors/_log/" in " ".join(checked.output.split()), checked.output
    repaired = runner.invoke(app, ["--store", s3_url, "--set", "store.garbage_grace=0", "doctor", "--repair"])
    assert repaired.exit_code == 1 and "cannot" in repaired.output, repaired.output
    # nothing of the damaged table is garbage while its log cannot be read
    assert set(_keys(aws, s3_url, "tables/crawl_errors/part-")) == parts_before


def test_a_part_named_outside_its_table_is_refused_before_any_request(s3_url, aws):
    store = _seeded(s3_url)
    entry = {"n": 2, "kind": "write", "add": ["../../../secret/part-x.parquet"], "id": "x", "at": 0}
    _put(aws, s3_url, entry_rel("products", 2), json.dumps(entry).encode())
    with pytest.raises(StoreError, match=r"products/_log/0+2\.json.*part-x"):
        Store.open(s3_url).read("products")
    assert store.count("specs") == len(SPECS)
    assert not _requested(aws, "secret")


def test_a_log_entry_past_the_size_cap_is_refused_without_reading_it(s3_url, aws):
    _seeded(s3_url)
    rel = entry_rel("products", 2)
    body = b'{"n": 2, "kind": "write", "add": [], "pad": "' + b"x" * MAX_ENTRY_BYTES + b'"}'
    _put(aws, s3_url, rel, body)
    with pytest.raises(StoreError, match=r"products/_log/0+2\.json.*(larger|size)"):
        Store.open(s3_url).read("products")
    assert not [line for line in _requested(aws, _key(s3_url, rel)) if '"GET ' in line]
