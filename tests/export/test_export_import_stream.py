"""``m5data import m5product`` streams: the JSON files are parsed as streams into a staging database,
items are checked and written ``BATCH`` at a time, and everything reads as the whole-file importer
read it (``json.loads``: a repeated key's last value, item id order, the first claimant of a product
id, split lines of failed items dropped), with the batch size and read size set small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.import_layout import IDS, make_layout, rows, write_json
from support.store_samples import query
from typer.testing import CliRunner

from m5data.cli import app
from m5data.importer import layout_files, limits, staging
from m5data.importer.layout_folder import LayoutError, LayoutFolder
from m5data.importer.run import import_m5product
from m5data.storage import Store
from m5data.storage.schema import TABLES


@pytest.fixture
def layout(tmp_path) -> Path:
    return make_layout(tmp_path / "m5p")


def test_a_repeated_key_takes_its_last_value(tmp_path):
    root = tmp_path / "m5p"
    root.mkdir()
    (root / "captions.json").write_text(
        '{"b1": {"title": "first", "pv": ""}, "a1": {"title": "a", "pv": "k#:#v", "pv": ""}, '
        '"b1": {"title": "last", "pv": "颜色#:#红"}}', encoding="utf-8")
    write_json(root / "m5product_label_list.json", ["x > y", "z > w"])
    (root / "m5product_id_label.json").write_text('{"b1": 0, "a1": 0, "b1": 1}', encoding="utf-8")
    (root / "m5data_items.json").write_text(
        '{"items": {"b1": {"product_id": "shop:x"}, "b1": {"product_id": "shop:b1"}}}', encoding="utf-8")
    store = Store.init(tmp_path / "store")
    report = import_m5product(store, root)
    assert report.products == 2 and report.stats.n_in == 2 and report.failed == []
    assert query(store, "SELECT product_id, title, category_path FROM products ORDER BY 1") == [
        ("m5product:a1", "a", ["x", "y"]), ("shop:b1", "last", ["z", "w"])]
    assert query(store, "SELECT product_id, property, value FROM specs") == [("shop:b1", "颜色", "红")]


@pytest.mark.parametrize("name", ["captions.json", "m5data_items.json", "m5product_id_label.json"])
def test_a_file_broken_in_its_last_bytes_writes_nothing(layout, tmp_path, name):
    data = (layout / name).read_bytes()
    (layout / name).write_bytes(data[:-2])  # valid JSON up to here, then cut
    store = Store.init(tmp_path / "store")
    with pytest.raises(LayoutError, match=f"{name} is not valid JSON"):
        import_m5product(store, layout)
    assert all(store.parts(t) == [] for t in TABLES)  # no row, no runs row
    assert not [p for p in (store.local_root() / "blobs").rglob("*") if p.is_file()]
    assert not any((store.local_root() / "derived").rglob("*.*"))  # the staging folder is gone


@pytest.mark.parametrize("text, error", [
    ('{"version": "v1"}', None), ('{"items": {}, "version": "v1"}', None), ('{"a": [{"items": 1}], "items": {}}', None),
    ('{"a": [{"items": 1}], "items": null}', "'items' is not a JSON object"), ('[]', "is not a JSON object"),
    ('{"items": {"a1": {"product_id": "shop:a1"}}, "x": 1} {}', "is not valid JSON"),
])
def test_m5data_items_shapes(tmp_path, text, error):
    root = tmp_path / "m5p"
    root.mkdir()
    write_json(root / "captions.json", {"a1": {"title": "t", "pv": ""}})
    (root / "m5data_items.json").write_text(text, encoding="utf-8")
    store = Store.init(tmp_path / "store")
    if error:
        with pytest.raises(LayoutError, match=error):
            import_m5product(store, root)
    else:
        assert import_m5product(store, root).products == 1


def test_small_batches_write_the_same_rows_and_keep_the_order_rules(layout, tmp_path, monkeypatch):
    whole = Store.init(tmp_path / "whole")
    expected = import_m5product(whole, layout)
    monkeypatch.setattr(limits, "BATCH", 3)
    monkeypatch.setattr(limits, "READ_BYTES", 5)
    small = Store.init(tmp_path / "small")
    done = []
    report = import_m5product(small, layout, progress=lambda n, total: done.append((n, total)))
    assert rows(small) == rows(whole)
    assert len(small.parts("products")) > 1 and len(whole.parts("products")) == 1
    assert done == [(n, len(IDS)) for n in range(1, len(IDS) + 1)]
    assert report.failed == expected.failed == [
        "item 'q1': label 7 is not an index into m5product_label_list.json (2 labels)",
        "item 'shop~3Ap1': 'shop:p1' is item 'p1''s product id",
        "item 'u1': 'shop:u1' is item 'shop~3Au1''s product id",
        "train.txt: 2 line(s) not an item id",
    ]
    assert report.stats.failures == expected.stats.failures
    products = {pid for (pid,) in query(small, "SELECT product_id FROM products")}
    assert {"shop:p1", "shop:q1", "shop:u1"} <= products and len(products) == len(IDS) - 3
    # each image belongs to the item that holds its product id: p1's, not shop~3Ap1's
    sha = dict(query(small, "SELECT product_id, sha256 FROM media"))
    assert set(sha) == {"m5product:a2", "shop:p1", "m5product:w1"}
    assert len(set(sha.values())) == 3
    assert report.media == {"image": 3} and report.stats.bytes == sum(r[7] for r in rows(small)["media"])
    # the import is idempotent: a second run reads the same rows
    import_m5product(small, layout)
    assert rows(small) == rows(whole)


def test_split_lines_follow_their_items_across_batches(layout, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "BATCH", 2)
    monkeypatch.setattr(limits, "READ_BYTES", 7)
    monkeypatch.setattr(limits, "MAX_LINE", 40)
    with open(layout / "query.txt", "ab") as fh:  # too long for an id; then spaces and an id
        fh.write(b"   " + b"x" * 300 + b"\r\n\n" + b" " * 100 + b"v1\n" + b"y" * 50 + b"\n" + b"a1")
    store = Store.init(tmp_path / "store")
    report = import_m5product(store, layout, split_version="v7")
    assert report.splits == {"train": 4, "query-c": 4} and report.split_version == "v7"
    got = {}
    for split, pid in query(store, "SELECT split, product_id FROM splits WHERE version = 'v7'"):
        got.setdefault(split, set()).add(pid)
    # q1, shop~3Ap1 and u1 failed: their lines go; zz9 has no caption entry: <platform>:zz9
    assert got == {"train": {"m5product:a1", "m5product:zz9", "shop:u1", "m5product:v1"},
                   "query-c": {"m5product:w1", "m5product:zz9", "m5product:v1", "m5product:a1"}}
    assert report.stats.failures == {
        "label not an index into the label list": 1, "product id taken by another item": 2,
        "train.txt: line not a valid item id": 2,  # "bad id!", and the bytes \xff\xfe
        "query.txt: line not a valid item id": 2}  # the lines over MAX_LINE
    assert report.failed[-2:] == ["train.txt: 2 line(s) not an item id", "query.txt: 2 line(s) not an item id"]


def test_failure_lines_are_capped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FAILED", 5)
    monkeypatch.setattr(limits, "BATCH", 4)
    root = tmp_path / "m5p"
    root.mkdir()
    ids = [f"bad{n:02d}" for n in range(30)] + ["good1", "good2"]
    write_json(root / "captions.json", {iid: {"title": iid, "pv": ""} for iid in ids})
    write_json(root / "m5product_label_list.json", ["a > b"])
    write_json(root / "m5product_id_label.json", {iid: 0 if iid.startswith("good") else 3 for iid in ids})
    (root / "train.txt").write_text("good1\n../x\n", encoding="utf-8")
    report = import_m5product(Store.init(tmp_path / "s1"), root)
    assert report.products == 2 and report.stats.n_failed == 31
    assert report.failed_total == 31 and len(report.failed) == 5
    assert report.failed[0].startswith("item 'bad00': label 3") and report.failed[4].startswith("item 'bad04'")
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "s2"), "import", "m5product", str(root)])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert shown[:5] == [f"failed: {line}" for line in report.failed]
    assert shown[5:] == ["failed: ... and 11 more"]  # 31 lines, 20 shown at most


def test_not_utf8_is_named_at_its_byte_whatever_the_read_size(tmp_path, monkeypatch):
    root = tmp_path / "m5p"
    root.mkdir()
    data = json.dumps({f"i{n}": {"title": "标题" * n, "pv": ""} for n in range(20)}, ensure_ascii=False).encode()
    cut = data.index("标".encode(), 300) + 1
    for bad in (data[:cut] + b"\xff" + data[cut + 1:], data[:cut]):  # a bad byte, then a file cut inside a character
        (root / "captions.json").write_bytes(bad)
        try:
            bad.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"captions.json is not UTF-8 text ({exc.reason} at byte {exc.start})"
        for size in (1, 3, 7, 1 << 20):
            monkeypatch.setattr(limits, "READ_BYTES", size)
            with pytest.raises(LayoutError) as info:
                import_m5product(Store.init(tmp_path / "store"), root)
            assert str(info.value).endswith(message)


def test_find_captions_reads_only_the_start(tmp_path):
    root = tmp_path / "m5p"
    root.mkdir()
    write_json(root / "a.json", {"items": {"x": {"product_id": "p:x"}}})  # values without a title
    (root / "b.json").write_text('{"x": {"title": "t"}, ' + ", ".join(f'"k{n}": {{"title": "t{n}"}}' for n in range(30))
                                 + ", broken", encoding="utf-8")  # its first 20 values are enough
    with LayoutFolder(root) as folder:
        assert layout_files.find_captions(folder) == "b.json"
    (root / "b.json").write_text('{"x": {"title": "t"}, "y": ["title"]}', encoding="utf-8")
    with LayoutFolder(root) as folder, pytest.raises(LayoutError, match="no caption JSON"):
        layout_files.find_captions(folder)


TEXT = st.lists(st.sampled_from(["a", "中", "😀", "\ud800", "\udc00", "\ud83d", "\ude00", "\\", '"', "\\ud800",
                                 "\\u", "\n", "\x00", "é"]), max_size=6).map("".join)
VALUE = st.one_of(TEXT, st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.floats(allow_nan=False, allow_infinity=False),
                  st.none(), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(TEXT, st.dictionaries(TEXT, VALUE, max_size=3)), max_size=6),
       ascii_only=st.booleans(), size=st.integers(min_value=1, max_value=40))
@example(entries=[("k", {"t": "\\ud83d\ude00"})], ascii_only=True, size=40)  # the text \ud83d, then a lone low one
@example(entries=[("k", {"t": "\ud83d\ude00\ud800"})], ascii_only=True, size=6)  # a pair cut by reads, a lone high one
def test_staged_entries_read_as_json_loads_reads_them(tmp_path, monkeypatch, entries, ascii_only, size):
    """Whatever the escapes (lone surrogates, pairs cut by a read), numbers and repeated keys: the
    entries come back as ``json.loads`` gives them, sorted, or the same error."""
    monkeypatch.setattr(limits, "READ_BYTES", size)
    root = tmp_path / "m5p"
    root.mkdir(exist_ok=True)
    text = "{" + ", ".join(f"{json.dumps(k, ensure_ascii=ascii_only)}: {json.dumps(v, ensure_ascii=ascii_only)}"
                           for k, v in entries) + "}"
    data = text.encode("utf-8", "surrogatepass")
    (root / "captions.json").write_bytes(data)
    try:
        expected = sorted(json.loads(data.decode("utf-8")).items())
    except UnicodeDecodeError:
        expected = "UTF-8"
    store = Store.open(tmp_path / "store", create=True)
    with LayoutFolder(root) as folder, staging.Staging(store) as stage:
        try:
            stage.json(folder, "captions.json", "captions")
        except LayoutError as exc:
            assert expected == "UTF-8" and "is not UTF-8 text" in str(exc)
            return
        got = [(iid, rec) for iid, rec, _entry, _label in stage.entries()]
    assert got == expected
