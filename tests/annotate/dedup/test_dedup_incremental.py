"""Incremental dedup (issue 38): after a complete run, only pairs with a changed product as an end are
searched, the kept pairs of unchanged products stand, and the groups equal a full rebuild's."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from support.dedup_rows import image_row as _image
from support.dedup_rows import product_row as _product
from support.grow import copies as _copies

from m5data.annotate.dedup import kept_inputs, kept_inputs_read, kept_pairs, reads
from m5data.annotate.dedup.job import dedup
from m5data.config import load
from m5data.storage import Store, changes


def _settings(path, **over):
    return load(None, {"store.path": str(path), "dedup.matcher": "rules", **over}, environ={})


def _rows(store):
    return sorted((tuple(v for k, v in r.items() if k != "run_id") for r in store.read("dedup").to_pylist()), key=str)


def _groups(store) -> dict[str, str]:
    return {r["product_id"]: r["group_id"] for r in store.read("dedup", columns=["product_id", "group_id"]).to_pylist()}


def _by_id(store) -> dict[str, dict]:
    return {r["product_id"]: r for r in store.read("dedup").to_pylist()}


def _product_row(store, pid: str) -> pa.Table:
    products = store.read("products")
    return products.filter(pc.equal(products.column("product_id"), pid))


def _retitle(store, pid: str, title: str) -> None:
    row = _product_row(store, pid)
    store.write("products", row.set_column(row.schema.get_field_index("title"), "title", pa.array([title])))


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_a_grown_demo_store_grouped_incrementally_equals_a_full_rebuild(demo300_copy):
    store_dir, _ = demo300_copy
    store, settings = Store.open(store_dir), _settings(store_dir)
    first = dedup(store, settings)
    assert first.full == "no earlier complete run" and first.searched == 300
    before = _by_id(store)
    grouped = sorted(p for p, r in before.items() if r["group_id"] != p)[:6]  # products with a duplicate
    alone = sorted(p for p, r in before.items() if r["rule"] is None)
    new = _copies(store, grouped + alone[:4], "n")  # second write: copies (of grouped and lone products) ...
    _retitle(store, alone[4], _product_row(store, grouped[0]).column("title")[0].as_py())  # ... and a retitle
    inc = dedup(store, settings)
    assert inc.full is None and inc.searched == len(new) + 1 < 300
    assert inc.stats.details["changes"] == {"new": 10, "changed": 1, "unchanged": 299}
    assert inc.stats.details["kept_pairs"] > 0 and inc.stats.details["dropped_pairs"] >= 0
    rows = _by_id(store)
    for old, copy in zip(grouped + alone[:4], new):  # every copy joins its original (an exact image at least)
        assert rows[copy]["group_id"] == rows[old]["group_id"]
    # the copies move the spec values' frequencies: rows whose block keys moved were searched too
    assert inc.stats.details["spec_searched"] > inc.searched
    incremental = _rows(store)
    full = dedup(store, settings, full=True)
    assert full.full == "full run asked" and full.searched == 310
    assert _rows(store) == incremental  # the rows of a rebuild: groups, strongest pairs, distances
    assert dict(full.pairs) == dict(inc.pairs)


def test_a_retitled_product_leaves_its_group_and_joins_the_new_one_and_its_old_pairs_go(store):
    store.write("products", [_product("a:1", "m1", "欧星商务A4办公文仪LP-6232办公文仪工厂直销"),
                             _product("a:2", "m1", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮"),
                             _product("a:3", "m3", "美乐机械键盘黑色青轴八十七键有线游戏"),
                             _product("a:4", "m4", "美乐机械键盘黑色青轴八十七键有线游戏款"),
                             _product("a:5", "m5", "完全不同的标题一号")])
    far = ("0f0f0f0f0f0f0f0f", "f0f0f0f0f0f0f0f0", "ffff0000ffff0000", "0000ffff0000ffff", "aaaa5555aaaa5555")
    store.write("media", [_image(f"a:{i}", f"s{i}", h) for i, h in enumerate(far, 1)])  # 32+ bits apart
    settings = _settings(store.root)
    dedup(store, settings)
    rows = _by_id(store)
    assert rows["a:2"]["group_id"] == "a:1" and rows["a:4"]["group_id"] == "a:3" and rows["a:2"]["rule"] == "minhash"
    kept = _kept_pairs(store)
    assert sorted(zip(kept.column("left_id").to_pylist(), kept.column("right_id").to_pylist())) == [
        ("a:1", "a:2"), ("a:3", "a:4")]
    _retitle(store, "a:2", "美乐机械键盘黑色青轴八十七键有线游戏")
    report = dedup(store, settings)
    assert report.full is None and report.searched == 1
    assert report.stats.details["dropped_pairs"] == 1 and report.stats.details["kept_pairs"] == 1
    rows = _by_id(store)
    assert rows["a:1"]["group_id"] == "a:1" and rows["a:1"]["rule"] is None  # left alone
    assert rows["a:2"]["group_id"] == "a:2" and {rows["a:3"]["group_id"], rows["a:4"]["group_id"]} == {"a:2"}
    kept = _kept_pairs(store)
    pairs = set(zip(kept.column("left_id").to_pylist(), kept.column("right_id").to_pylist()))
    assert ("a:1", "a:2") not in pairs and {("a:3", "a:4"), ("a:2", "a:3")} <= pairs
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental

    # a product gone from the store: its kept pairs go (a replace rewrites every row: all changed, so
    # only a full share of 1 keeps the run incremental)
    products = store.read("products")
    store.replace("products", products.filter(pc.not_equal(products.column("product_id"), "a:3")))
    gone = dedup(store, _settings(store.root, **{"dedup.full_share": 1.0}))
    assert gone.full is None and gone.stats.details["removed"] == 1
    rows = _by_id(store)
    assert "a:3" not in rows and rows["a:4"]["group_id"] == "a:2" and rows["a:2"]["matched_id"] == "a:4"
    # over the share (4 of 4 changed > 0.2): a full run, and it says why
    store.replace("products", store.read("products"))
    assert "over dedup.full_share" in dedup(store, settings).full


def _kept_pairs(store) -> pa.Table:
    """The kept pairs as product ids: their rows placed through the kept inputs' ids (and their digest checked)."""
    state = changes.load_state(store, "dedup")
    table = kept_pairs.load_edges(store, state["edges"])
    ids = kept_inputs_read.kept_ids(kept_inputs.load(store, state["inputs_files"], "品牌"))
    assert table.schema.metadata[kept_pairs.IDS].decode() == kept_pairs.ids_digest(ids)
    return kept_pairs.pair_ids(table, ids)


def test_kept_pairs_of_other_products_are_not_placed_and_the_run_is_a_full_one(store):
    """The kept pairs are row numbers: a file kept for other products (its ids' digest is not the kept
    inputs') is not read as this store's pairs; the run groups every product again."""
    store.write("products", [_product("a:1", "m1", "美乐机械键盘黑色青轴八十七键有线游戏款"),
                             _product("a:2", "m2", "美乐机械键盘黑色青轴八十七键有线游戏"),
                             _product("a:3", "m3", "完全不同的标题一号")])
    settings = _settings(store.root, **{"dedup.full_share": 0.5})
    dedup(store, settings)
    assert _kept_pairs(store).num_rows == 1
    state = changes.load_state(store, "dedup")
    # the same rows, kept for products in another order: a row number would name another product
    state["edges"] = kept_pairs.save_edges(store, pa.array(["a:2", "a:1", "a:3"]),
                                           [(np.array([1]), np.array([2]), np.zeros(1), "minhash")])
    store.write_text(changes.state_file("dedup"), json.dumps(state))
    store.write("products", [_product("b:4", "m4", "另外一个名字二号")])
    report = dedup(store, settings)
    assert report.full == "the kept pairs do not fit the kept inputs"
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental and _by_id(store)["a:2"]["group_id"] == "a:1"


class Killed(Exception):
    pass


def test_a_run_killed_after_its_table_write_leaves_the_last_state_and_the_next_run_agrees(store, monkeypatch):
    store.write("products", [_product("a:1", "m1", "欧星商务A4办公文仪LP-6232办公文仪工厂直销"),
                             _product("a:2", "m2", "美乐机械键盘黑色青轴八十七键有线游戏")])
    store.write("media", [_image("a:1", "s1", "00000000000000ff"), _image("a:2", "s2", "ffffffff00000000")])
    settings = _settings(store.root, **{"dedup.full_share": 0.5})  # 2 of 4 changed: still incremental
    dedup(store, settings)
    state = changes.load_state(store, "dedup")
    store.write("products", [_product("b:3", "m3", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮")])
    store.write("media", [_image("a:4", "s2", "ffffffff00000000")])  # a:4 has no products row yet

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(changes, "save_state", killed)
        with pytest.raises(Killed):
            dedup(store, settings)
    assert changes.load_state(store, "dedup") == state  # the previous state, naming the previous pairs
    assert _by_id(store)["b:3"]["group_id"] == "a:1"  # the table was written
    store.write("products", [_product("a:4", "m4", "另外一个名字")])
    again = dedup(store, settings)
    assert again.full is None and again.searched == 2  # b:3 (again: the state was not saved) and a:4
    state = changes.load_state(store, "dedup")  # the killed run's files are gone, the state names what is left
    assert store.files("derived/dedup") == sorted([state["edges"], *state["inputs_files"]])
    rows = _by_id(store)
    assert rows["b:3"]["group_id"] == "a:1" and rows["a:4"]["group_id"] == "a:2" and rows["a:4"]["rule"] == "exact_image"
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_the_kept_inputs_with_the_changed_products_read_are_what_a_full_read_gives(demo300_copy):
    """The incremental read (kept arrays + the changed products from the store) equals a full read:
    ids, image and title codes, pHashes, spec codes and names, MinHash band keys and signatures."""
    from m5data.annotate.dedup import near
    from m5data.annotate.dedup.reads import read_inputs
    from m5data.annotate.dedup.values import norm_value

    store_dir, _ = demo300_copy
    store, settings = Store.open(store_dir), _settings(store_dir)
    dedup(store, settings)
    state = changes.load_state(store, "dedup")
    ids = sorted(store.read("products", columns=["product_id"]).column("product_id").to_pylist())
    _copies(store, ids[:5], "n")
    _retitle(store, ids[7], "一个全新的标题 with new words")
    specs = store.read("specs")
    one = specs.filter(pc.equal(specs.column("product_id"), ids[9]))
    store.write("specs", one.set_column(one.schema.get_field_index("value"), "value",
                                        pa.array([f"新值{i}" for i in range(one.num_rows)])))  # values never seen
    changed, products = kept_pairs.changed_ids(store, state["watermarks"])
    assert sorted(changed.to_pylist()) == sorted([ids[7], ids[9], *(p.replace(":", ":n", 1) for p in ids[:5])])
    brand = norm_value("品牌")
    a = settings.dedup
    part, whole = (near.LSHIndex(a.minhash_threshold, a.num_perm) for _ in range(2))
    inc = kept_inputs_read.read_incremental(store, kept_inputs.load(store, state["inputs_files"], brand), brand, changed, part,
                                       None, a.shingle)

    def index(batch):
        values, offsets = near.title_hashes(batch, a.shingle)
        whole.add(values, offsets, np.fromiter(map(bool, batch), dtype=bool, count=len(batch)))

    full = read_inputs(store, brand, index)
    assert inc.ids.equals(full.ids) and len(full) == 305
    # no products part went: the store's ids are the kept files' and the products written since
    assert kept_inputs_read.store_ids(kept_inputs.load(store, state["inputs_files"], brand), products.column("product_id")).equals(full.ids)
    for name in ("blob", "title_key", "sha_hash", "title_hash", "has_title", "phash", "has_phash", "phash_given",
                 "n_spec_rows"):
        assert np.array_equal(getattr(inc, name), getattr(full, name)), name
    for name in ("offsets", "brand_offsets"):
        assert np.array_equal(getattr(inc.specs, name), getattr(full.specs, name)), name
    # the same names; a name no product lists any more (ids[9]'s old values) may stay among the kept
    # ones, so codes may differ, but never in their order (ties of the rarest values break alike)
    for name, which in (("keys", 0), ("values", 1), ("brands", 2)):
        named = [np.asarray(x.specs.names[which], dtype=object)[getattr(x.specs, name)] for x in (inc, full)]
        assert np.array_equal(*named), name
        assert set(full.specs.names[which]) <= set(inc.specs.names[which])
        assert list(inc.specs.names[which]) == sorted(inc.specs.names[which])
    assert inc.specs.names[0][inc.specs.brand_key] == full.specs.names[0][full.specs.brand_key] == "品牌"
    assert "新值0" in inc.specs.names[1]
    assert np.array_equal(part._keys[0], np.concatenate(whole._keys))
    assert np.array_equal(part._sigs[0], np.concatenate(whole._sigs))
    # the changed products' rows from store.changed's (ids[9]'s, whose specs alone changed, from its
    # parts): the same read
    fresh = pa.array(sorted(changed.to_pylist()))
    con = store.connect(need=("products", "media"), only=("products", "media"))
    try:
        rows = reads.product_rows(store, fresh, products)
        every = con.sql(reads._PRODUCTS.format(only="", where="")).to_arrow_table()
        assert rows.num_rows == 7 and rows.equals(every.filter(pc.is_in(every.column("product_id"), value_set=fresh)))
    finally:
        con.close()
    written = kept_inputs_read.read_incremental(store, kept_inputs.load(store, state["inputs_files"], brand), brand, changed,
                                           near.LSHIndex(a.minhash_threshold, a.num_perm), None,
                                           a.shingle, written=products)
    for name in ("blob", "title_key", "sha_hash", "title_hash", "has_title", "phash", "has_phash", "phash_given",
                 "n_spec_rows"):
        assert np.array_equal(getattr(written, name), getattr(full, name)), name


def test_an_incremental_dedup_on_s3_keeps_its_files_as_objects(aws, s3_url):
    pytest.importorskip("s3fs")
    store = Store.init(s3_url)
    store.write("products", [_product("a:1", "m1", "欧星商务A4办公文仪LP-6232办公文仪工厂直销"),
                             _product("a:2", "m2", "美乐机械键盘黑色青轴八十七键有线游戏"),
                             _product("a:3", "m3", "完全不同的标题一号"), _product("a:4", "m4", "另外一个名字二号"),
                             _product("a:5", "m5", "第五个商品的标题")])
    settings = _settings(s3_url)
    dedup(store, settings)
    kept = store.files("derived/dedup")
    assert any(f.startswith("derived/dedup/edges-") for f in kept) and any(f.startswith("derived/dedup/inputs-") for f in kept)
    store.write("products", [_product("b:6", "m6", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮")])
    report = dedup(store, settings)
    assert report.full is None and report.searched == 1 and _by_id(store)["b:6"]["group_id"] == "a:1"
    state = changes.load_state(store, "dedup")
    assert store.files("derived/dedup") == sorted([state["edges"], *state["inputs_files"]]) != kept  # its pairs went, a delta came


def test_a_bucket_taken_over_the_cap_by_new_products_is_searched_again_as_a_rebuild_does(store):
    """Near-identical photos in buckets of a small ``dedup.bucket_cap``: new products take buckets over
    the cap, where a full run links their rows to the first row only (pairs it would keep are lost);
    the incremental run searches those buckets' rows again and gives the rebuild's groups."""
    rng = np.random.default_rng(1)  # a draw where keeping the last run's pairs would give other groups
    bases = rng.integers(0, 2**63, size=4, dtype=np.int64).astype(np.uint64)

    def near_photo(i):
        flips = rng.choice(64, size=int(rng.integers(0, 6)), replace=False)
        return int(bases[i % len(bases)] ^ np.uint64(sum(1 << int(b) for b in flips)))

    def write(first, last):
        ids = [f"a:{i:03d}" for i in range(first, last)]
        store.write("products", [_product(p, f"m{i}", "") for i, p in zip(range(first, last), ids)])
        store.write("media", [_image(p, f"s{p}", f"{near_photo(i):016x}") for i, p in zip(range(first, last), ids)])

    settings = _settings(store.root, **{"dedup.bucket_cap": 3, "dedup.full_share": 0.5})
    write(0, 18)
    dedup(store, settings)
    write(18, 24)
    inc = dedup(store, settings)
    assert inc.full is None and inc.searched > 6  # rows of buckets the new ones took over the cap, too
    incremental = _groups(store)
    dedup(store, settings, full=True)
    assert _groups(store) == incremental


def test_the_kept_inputs_grow_by_deltas_of_the_rows_read_again_and_are_compacted_into_a_new_base(store, monkeypatch):
    """An incremental run appends a delta of the products it read again (not every product's arrays)
    and writes the dedup rows that differ only; past ``COMPACT_SHARE`` of the base's rows a run
    writes a new base and the old files go; the groups equal a rebuild's all along."""
    from m5data.annotate.dedup import kept_inputs

    def spec_rows(pid, i):
        return [{"product_id": pid, "position": 0, "property": "品牌", "value": f"牌子{i % 3}"},
                {"product_id": pid, "position": 1, "property": "型号", "value": f"XK-{i:04d}"},
                {"product_id": pid, "position": 2, "property": "颜色", "value": "黑色"}]

    def add(pid, i):
        store.write("products", [_product(pid, f"m{i}", f"第{i}号商品的标题 model XK-{i:04d}")])
        store.write("specs", spec_rows(pid, i))
        store.write("media", [_image(pid, f"s{i}", f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}")])

    for i in range(40):
        add(f"a:{i:02d}", i)
    settings = _settings(store.root, **{"dedup.full_share": 0.5})
    dedup(store, settings)
    base = changes.load_state(store, "dedup")["inputs_files"]
    assert len(base) == 1 and base[0].endswith("-base.npz")
    for step in range(3):  # a copy of a:0i under a new id: its own delta each time
        add(f"b:{step:02d}", step)
        mark = store.watermark("dedup")
        report = dedup(store, settings)
        assert report.full is None
        # the table too: only the rows that differ were written (the copy, and its original's pair)
        assert sorted(store.changed("dedup", mark).column("product_id").to_pylist()) == [f"a:{step:02d}", f"b:{step:02d}"]
        files = changes.load_state(store, "dedup")["inputs_files"]
        assert files[0] == base[0] and len(files) == 2 + step and files[-1].endswith("-delta.npz")
        assert _groups(store)[f"b:{step:02d}"] == f"a:{step:02d}"
    kept = kept_inputs.load(store, files, "品牌")
    assert len(kept[0]) == 40 and all(len(d) <= 2 for d in kept[1:])  # a delta: the copy and its original's new pair
    assert "b:02" in kept[-1].z["ids"].to_pylist() and "b:02" not in kept[1].z["ids"].to_pylist()
    assert store.files("derived/dedup") == sorted([changes.load_state(store, "dedup")["edges"], *files])
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental
    monkeypatch.setattr(kept_inputs, "COMPACT_SHARE", 0.01)  # the deltas pass the share: a new base
    add("b:03", 3)
    dedup(store, settings)
    state = changes.load_state(store, "dedup")
    assert len(state["inputs_files"]) == 1 and state["inputs_files"][0].endswith("-base.npz")
    assert len(kept_inputs.load(store, state["inputs_files"], "品牌")[0]) == 44
    assert store.files("derived/dedup") == sorted([state["edges"], *state["inputs_files"]])  # the old ones went
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental


def test_a_store_copied_elsewhere_stays_incremental(store, tmp_path):
    """Without a trained matcher the learned setting falls back to the rules with a reason naming the
    store's folder; the state's fingerprint holds "rules" only, so a copied store neither groups
    every product again with nothing new nor runs in full after a write."""
    import shutil

    store.write("products", [_product("a:1", "m1", "欧星商务A4办公文仪LP-6232办公文仪工厂直销"),
                             _product("a:2", "m2", "美乐机械键盘黑色青轴八十七键有线游戏"),
                             _product("a:3", "m3", "完全不同的标题一号"), _product("a:4", "m4", "另外一个名字二号"),
                             _product("a:5", "m5", "第五个商品的标题")])
    learned = {"dedup.matcher": "learned", "dedup.full_share": 0.5}
    first = dedup(store, _settings(store.root, **learned))
    assert first.matcher.startswith("rules (no trained matcher in ") and str(store.root) in first.matcher
    shutil.copytree(store.root, tmp_path / "copy")
    moved = Store.open(tmp_path / "copy")
    settings = _settings(moved.root, **learned)
    assert dedup(moved, settings).stats.details.get("unchanged")
    moved.write("products", [_product("b:6", "m6", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮")])
    report = dedup(moved, settings)
    assert report.full is None and report.searched == 1 and _by_id(moved)["b:6"]["group_id"] == "a:1"


def test_a_damaged_kept_inputs_file_is_not_read_and_the_next_run_rebuilds(store):
    """A kept inputs file is read as views of its bytes (no copy): its members' checksums are still
    checked, so a flipped byte is not read as data; the next run reads every product again, keeps them
    again and equals a rebuild."""
    import io
    import struct
    import zipfile

    from m5data.annotate.dedup import kept_inputs

    for i in range(12):
        pid = f"a:{i:02d}"
        store.write("products", [_product(pid, f"m{i}", f"第{i % 6}号商品的标题 model XK-{i % 6:04d}")])
        store.write("media", [_image(pid, f"s{i}", f"{(i % 6 * 0x9E3779B97F4A7C15) % 2**64:016x}")])
    settings = _settings(store.root)
    dedup(store, settings)
    files = changes.load_state(store, "dedup")["inputs_files"]
    assert kept_inputs.load(store, files, "品牌") is not None
    path = store.local_root() / files[0]
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:  # the last byte of the largest member's array
        info = max(zf.infolist(), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    data[info.header_offset + 30 + name_len + extra_len + info.file_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert kept_inputs.load(store, files, "品牌") is None
    store.write("products", [_product("b:00", "mb", "第0号商品的标题 model XK-0000")])
    dedup(store, settings)  # the kept inputs unreadable: every product read from the store again
    files = changes.load_state(store, "dedup")["inputs_files"]
    assert kept_inputs.load(store, files, "品牌") is not None  # and kept again
    rows = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == rows and _groups(store)["b:00"] == _groups(store)["a:00"]


def test_a_new_spec_value_that_moves_every_code_moves_no_unchanged_row(store):
    """Spec codes are ranks of the names, so a new value sorting first moves every value code; the
    rows whose block keys moved are found from the entries that made them (kept per entry), not from
    the keys' codes: no unchanged row is searched again (before: every row with keys), the delta
    holds the new product only, and the rows are a rebuild's."""
    def add(pid, i, model):
        store.write("products", [_product(pid, f"m{i}", f"第{i}号商品 {model}")])
        store.write("specs", [{"product_id": pid, "position": 0, "property": "品牌", "value": f"牌子{i % 3}"},
                              {"product_id": pid, "position": 1, "property": "型号", "value": model},
                              {"product_id": pid, "position": 2, "property": "颜色", "value": "黑色"}])
        store.write("media", [_image(pid, f"s{i}", f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}")])

    for i in range(40):
        add(f"a:{i:02d}", i, f"XK-{i:04d}")
    settings = _settings(store.root, **{"dedup.full_share": 0.5})
    dedup(store, settings)
    add("b:00", 40, "AAA-0001")  # "aaa-0001" sorts before every value: every value code moves by one
    inc = dedup(store, settings)
    assert inc.full is None and inc.searched == 1
    assert inc.stats.details["spec_searched"] == 1
    files = changes.load_state(store, "dedup")["inputs_files"]
    kept = kept_inputs.load(store, files, "品牌")
    assert len(files) == 2 and kept[-1].z["ids"].to_pylist() == ["b:00"]
    incremental = _rows(store)
    dedup(store, settings, full=True)
    assert _rows(store) == incremental


def test_the_kept_spec_entries_that_made_the_keys_are_the_rarest_a_full_run_chooses(store):
    """``spec_chosen`` read back from the kept files (after an incremental run's delta) equals the
    mask a full run computes for the same rows."""
    for i in range(12):
        store.write("products", [_product(f"a:{i:02d}", f"m{i}", f"商品{i}")])
        store.write("specs", [{"product_id": f"a:{i:02d}", "position": p, "property": f"属性{p}",
                               "value": f"值{(i * (p + 1)) % (p + 2)}"} for p in range(11)]
                    + [{"product_id": f"a:{i:02d}", "position": 11, "property": "品牌", "value": "牌子"}])
    settings = _settings(store.root, **{"dedup.full_share": 0.5})
    dedup(store, settings)
    store.write("specs", [{"product_id": "a:00", "position": 0, "property": "属性0", "value": "新值"}])
    dedup(store, settings)
    state = changes.load_state(store, "dedup")
    kept = kept_inputs.load(store, state["inputs_files"], "品牌")
    ids = kept_inputs_read.kept_ids(kept)
    src, srow, _ = kept_inputs_read._sources(ids, kept)
    merged = kept_inputs_read._merge([k.z for k in kept], src, srow, ids, "品牌")
    from m5data.annotate.dedup.reads import read_inputs
    from m5data.annotate.dedup.spec_blocks import SPEC_KEY_ENTRIES, _rarest_entries
    from m5data.annotate.dedup.spec_jit import entry_freq
    from m5data.annotate.dedup.values import norm_value

    full = read_inputs(store, norm_value("品牌"))
    chosen = np.empty(len(full.specs.keys), dtype=bool)
    _rarest_entries(full.specs, entry_freq(full.specs.keys, full.specs.values), SPEC_KEY_ENTRIES, chosen)
    assert np.array_equal(merged["spec_offsets"], full.specs.offsets)
    assert chosen.sum() < len(chosen) and np.array_equal(merged["spec_chosen"], chosen)


def test_exact_codes_from_kept_hashes_are_a_dictionary_encodings_and_a_collision_codes_the_strings():
    """The exact rules' codes made from the strings' hashes (kept with the inputs) are the codes of
    a dictionary encoding of the strings; two strings of one hash (forced here) are coded apart."""
    strings = pa.array(["b", "a", None, "b", "c", "a", "", None, ""], pa.string())
    codes = reads._codes([strings])
    hashes = reads.string_hashes(strings)
    assert (hashes[[2, 7]] == 0).all() and (np.delete(hashes, [2, 7]) != 0).all()
    assert np.array_equal(reads.hash_codes(strings, hashes), codes)
    assert np.array_equal(reads.string_hashes(strings.slice(3)), hashes[3:])  # an offset array
    collided = hashes.copy()
    collided[collided == hashes[4]] = hashes[0]  # "c" hashed as "b"
    assert np.array_equal(reads.hash_codes(strings, collided), codes)
