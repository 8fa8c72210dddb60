"""``annotate dedup``: rules on a hand-made store, scores on the default demo world, idempotence, the CLI."""

import json
import re

import numpy as np
import pytest
from support.dedup_rows import image_row as _image
from support.dedup_rows import product_row as _product
from typer.testing import CliRunner

from m5data.annotate.dedup.job import dedup, run
from m5data.annotate.dedup.score import score_groups
from m5data.annotate.dedup.values import brand_spellings, noisy_value
from m5data.cli import app
from m5data.config import ConfigError, load
from m5data.storage.truth_files import truth_rows

runner = CliRunner()


def _settings(path, **over):
    return load(None, {"store.path": str(path), **over}, environ={})


def _specs(pid, pairs):
    return [{"product_id": pid, "position": i, "property": k, "value": v} for i, (k, v) in enumerate(pairs)]


@pytest.fixture
def small(store):
    """Ten products, each pair exercising one rule (or a veto)."""
    store.write("products", [
        _product("a:1", "m1", "同一张图的商品甲"), _product("a:2", "m2", "同一张图的商品乙"),  # exact_image
        _product("a:3", "m3", "美乐 机械 键盘 黑色"), _product("b:4", "m3", "美乐机械键盘黑色"),  # exact_title (same merchant)
        _product("a:5", "m5", "完全不同的标题一号"), _product("a:6", "m6", "另外一个名字二号"),  # phash within 6
        _product("a:7", "m7", "欧星商务A4办公文仪LP-6232办公文仪工厂直销"),
        _product("a:8", "m8", "欧星商务A4办公文仪LP-6232办公文仪工厂直销包邮"),  # minhash
        _product("a:9", "m9", "相似图片但品牌不同甲"), _product("b:10", "m10", "相似图片但品牌不同乙"),  # phash, vetoed
        _product("b:11", "m11", "没有图片的商品"), _product("b:12", "m12", ""),  # no image; empty title
    ])
    store.write("media", [
        _image("a:1", "s1", "0f0f0f0f0f0f0f0f"), _image("a:2", "s1", "0f0f0f0f0f0f0f0f"),
        _image("a:3", "s3", "1234567812345678"), _image("b:4", "s4", "8765432187654321"),
        _image("a:5", "s5", "ffff0000ffff0000"), _image("a:6", "s6", "ffff0000ffff003f"),  # 6 bits apart
        _image("a:7", "s7", "1111111111111111"), _image("a:8", "s8", "2222222222222222"),
        _image("a:9", "s9", "aaaa5555aaaa5555"), _image("b:10", "s10", "aaaa5555aaaa5557"),
        _image("b:12", "s12", "3333333333333333"),
    ])
    store.write("specs", _specs("a:9", [("品牌", "甲牌")]) + _specs("b:10", [("品牌", "乙牌")])
                + _specs("a:5", [("品牌", "丙牌"), ("型号", "X-1")]) + _specs("a:6", [("品牌", "丙牌"), ("型号", "X-1")]))
    return store


def test_each_rule_joins_its_pair_and_the_veto_keeps_different_brands_apart(small):
    report = dedup(small, _settings(small.root))
    rows = {r["product_id"]: r for r in small.read("dedup").to_pylist()}
    assert len(rows) == 12
    assert rows["a:2"]["group_id"] == rows["a:1"]["group_id"] == "a:1"
    assert rows["a:2"]["rule"] == "exact_image" and rows["a:2"]["matched_id"] == "a:1"
    assert rows["b:4"]["group_id"] == "a:3" and rows["b:4"]["rule"] == "exact_title"
    assert rows["a:6"]["group_id"] == "a:5" and rows["a:6"]["rule"] == "phash" and rows["a:6"]["distance"] == 6
    assert rows["a:8"]["group_id"] == "a:7" and rows["a:8"]["rule"] == "minhash"
    assert 0 < rows["a:8"]["distance"] < 0.3
    assert rows["b:10"]["group_id"] == "b:10" and rows["b:10"]["rule"] is None  # vetoed: brands differ
    assert report.vetoed["phash"] == 1
    assert rows["b:11"]["reason"].startswith("no main image") and rows["b:11"]["group_id"] == "b:11"
    assert "empty title" in rows["b:12"]["reason"]
    assert report.n_groups == 4


def test_without_the_veto_the_look_alikes_merge(small):
    dedup(small, _settings(small.root, **{"dedup.spec_veto": "false"}))
    rows = {r["product_id"]: r for r in small.read("dedup").to_pylist()}
    assert rows["b:10"]["group_id"] == "a:9"


def test_bad_settings_are_rejected_before_work(small):
    with pytest.raises(ConfigError, match="dedup.minhash_threshold"):
        run(small, _settings(small.root, **{"dedup.minhash_threshold": "0"}))
    with pytest.raises(ConfigError, match="dedup.phash_bands"):
        run(small, _settings(small.root, **{"dedup.phash_threshold": "12"}))
    assert small.count("dedup") == 0


def _rows(store) -> dict[str, dict]:
    return {r["product_id"]: r for r in store.read("dedup").to_pylist()}


def test_a_missing_merchant_is_unknown_not_one_merchant(store):
    """Same title, no seller id (null, empty, whitespace): not ``exact_title``; the vetoed ``minhash`` decides."""
    title = "无线蓝牙耳机运动跑步入耳式降噪超长续航"
    store.write("products", [
        _product("c:1", None, title), _product("c:2", "", title), _product("c:3", "  ", title),
        _product("c:4", None, title), _product("d:1", "m1", "同店同名的商品甲乙"), _product("d:2", "m1", "同店同名的商品甲乙"),
    ])
    store.write("specs", _specs("c:1", [("品牌", "甲牌")]) + _specs("c:2", [("品牌", "乙牌")])
                + _specs("c:3", [("品牌", "丙牌")]) + _specs("c:4", [("品牌", "甲牌")]))
    report = dedup(store, _settings(store.root))
    rows = _rows(store)
    assert report.pairs["exact_title"] == 1  # only the known merchant's pair
    assert rows["d:2"]["group_id"] == "d:1" and rows["d:2"]["rule"] == "exact_title"
    assert rows["c:4"]["group_id"] == "c:1" and rows["c:4"]["rule"] == "minhash"  # no brand conflict
    assert rows["c:2"]["group_id"] == "c:2" and rows["c:3"]["group_id"] == "c:3"  # brands differ: vetoed
    assert report.vetoed["minhash"] == 5


KEYBOARD = "乐达无线机械键盘RGB背光游戏办公两用键盘"


def test_every_value_of_a_repeated_property_is_compared(store):
    """A page listing 颜色 five times agrees with a page listing one of those colours; a model still differs."""
    store.write("products", [_product("e:1", "m1", KEYBOARD), _product("e:2", "m2", KEYBOARD + "包邮"),
                             _product("e:3", "m3", KEYBOARD + "正品"),
                             _product("f:1", "m4", "北欧实木书架落地置物架"), _product("f:2", "m5", "简约收纳柜客厅储物")])
    colours = [("颜色", c) for c in ("黑色", "白色", "红色", "蓝色", "灰色")]
    store.write("specs", _specs("e:1", [("品牌", "乐达"), *colours, ("型号", "K-100")])
                + _specs("e:2", [("品牌", "乐达"), ("颜色", " 红色 "), ("型号", "Ｋ-100")])
                + _specs("e:3", [("品牌", "乐达"), ("颜色", "黑色"), ("型号", "K-200")])
                + _specs("f:1", [("品牌", "森宜"), *colours, ("型号", "S-9")])  # the spec rule alone: titles differ
                + _specs("f:2", [("品牌", "森宜"), ("颜色", "蓝色"), ("型号", "S-9")]))
    report = dedup(store, _settings(store.root))
    rows = _rows(store)
    assert rows["e:2"]["group_id"] == "e:1" and rows["e:2"]["rule"] == "minhash"
    assert rows["e:3"]["group_id"] == "e:3"  # 型号 K-200 against K-100: vetoed
    assert report.vetoed["minhash"] == 2
    assert rows["f:2"]["group_id"] == "f:1" and rows["f:2"]["rule"] == "spec" and rows["f:2"]["distance"] == 0


@pytest.mark.parametrize("value, noisy", [
    # real values (Amazon, AliExpress tables) and the demo shop's shapes
    ("VHF 136~174MHz UHF 400~520MHz", True), ("3km-5km", True), ("2019-2020", True), ("0-6个月", True),
    ("6岁以上", True), ("December 2, 2013", True), ("2019年春季", True), ("2015-3", True), ("2013/12/02", True),
    ("Within 1-2 Days After Payment", True), ('12.2"D x 13.38"W x 12.48"H', True),
    ("112-0170-01", False), ("KF-35GW", False), ("ADP-330AB D", False), ("19,5 V", False), ("Ｘ７ Ｐｒｏ", False),
    ("9787111234567", False), ("810028585201", False), ("国妆备进字J2019123456", False), ("20191234", False),
    ("Red/Black/Blue/Transparent", False), ("11.8 Pounds", False), ("20x30x10cm", False), ("黑色", False),
])
def test_noisy_values_are_ranges_dates_and_free_text_not_model_numbers(value, noisy):
    assert noisy_value(value) is noisy


def test_brand_spellings():
    assert brand_spellings("美的(midea)") & brand_spellings("midea/美的") == {"美的", "midea"}
    assert not brand_spellings("美的(midea)") & brand_spellings("格力(gree)")


def _real_item(url: str, body):
    from scrapy.http import HtmlResponse

    from m5data.crawler.adapters import AdapterChooser
    from m5data.crawler.extraction import read_page

    response = HtmlResponse(url, body=body.encode() if isinstance(body, str) else body, encoding="utf-8")
    return AdapterChooser()(url, response).product(response, read_page(response.text, url)).normalised()


def _write_real(store, items: list[tuple[str, str | None, str, list[tuple[str, str]]]], media=()):
    store.write("products", [_product(pid, merchant, title) for pid, merchant, title, _ in items])
    store.write("specs", [row for pid, _, _, specs in items for row in _specs(pid, specs)])
    if media:
        store.write("media", list(media))


def test_the_veto_ignores_dates_and_free_text_of_a_real_spec_table(store, realdata):
    """The real Amazon table (Item Weight listed twice) on two listings whose listing dates differ."""
    item = _real_item("https://www.amazon.com/dp/B00FLYWNYQ",
                      (realdata / "pages/amazon/amazon_instant_pot_duo.html").read_bytes())
    specs = item.specs
    assert [k for k, _ in specs].count("Item Weight") == 2 and ("Date First Available", "December 2, 2013") in specs
    # the second listing: its own date, the box spelled another way, Item Weight listed once
    changed = {"Date First Available": "March 5, 2019", "Product Dimensions": "13.38 x 12.2 x 12.48 inches"}
    other = [(k, changed.get(k, v)) for k, v in specs if (k, v) != ("Item Weight", "11.8 pounds")]
    _write_real(store, [(item.product_id, item.merchant_id, item.title, specs),
                        ("shopb:77", "seller-77", item.title + " (Renewed)", other)])
    report = dedup(store, _settings(store.root, **{"annotate.brand_property": "Brand"}))
    rows = _rows(store)
    assert rows["shopb:77"]["group_id"] == item.product_id and rows["shopb:77"]["rule"] == "minhash"
    assert report.vetoed["minhash"] == 0 and report.pairs["spec"] == 1


def test_the_veto_still_rejects_real_look_alikes_that_differ(store, realdata):
    """Two real AliExpress cables of one brand and shop (USB A 2.4 A, USB-C 5 A) with look-alike photos."""
    items = []
    for n in ("1005005709028962", "1005005714394639"):
        raw = json.loads((realdata / f"pages/aliexpress/item-{n}.json").read_text(encoding="utf-8"))
        body = f"<html><body><script>window.runParams = {{data: {json.dumps(raw['data'])}}};</script></body></html>"
        it = _real_item(f"http://127.0.0.1/item/{n}.html", body)
        items.append((it.product_id, it.merchant_id, it.title, it.specs))
    _write_real(store, items, media=[_image(items[0][0], "s1", "aaaa5555aaaa5555"),
                                     _image(items[1][0], "s2", "aaaa5555aaaa5557")])
    settings = _settings(store.root, **{"annotate.brand_property": "Nombre de la marca"})
    report = dedup(store, settings)
    rows = _rows(store)
    assert rows[items[1][0]]["group_id"] == items[1][0] and report.vetoed["phash"] == 1
    dedup(store, _settings(store.root, **{"annotate.brand_property": "Nombre de la marca",
                                          "dedup.spec_veto": "false"}))
    assert _rows(store)[items[1][0]]["group_id"] == items[0][0]  # the photos alone would join them


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_default_demo_world_pair_precision_and_recall(demo300_copy):
    store_dir, truth = demo300_copy
    settings = _settings(store_dir)
    from m5data.storage import Store

    store = Store.open(store_dir)
    report = dedup(store, settings)
    rows = store.read("dedup").to_pylist()
    score = score_groups(rows, truth_rows(truth, "products.parquet"))
    assert score.products == 300 and score.true_pairs >= 25
    assert score.precision >= 0.97  # target 0.95
    assert score.recall >= 0.88  # target 0.80
    for r in rows:  # group ids are the smallest member
        assert r["group_id"] == min(x["product_id"] for x in rows if x["group_id"] == r["group_id"])
    # idempotent: a re-run writes the same rows (but its own run id)
    dedup(store, settings)
    again = store.read("dedup").to_pylist()
    strip = lambda rs: sorted((tuple(v for k, v in r.items() if k != "run_id") for r in rs), key=str)
    assert strip(again) == strip(rows)
    runs = store.read("runs", where="stage = 'dedup'").to_pylist()
    assert len(runs) == 2 and runs[0]["n_in"] == 300 and report.pairs["spec"] > 0


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_cli_prints_the_score(demo300_copy, tmp_path):
    store_dir, truth = demo300_copy
    result = runner.invoke(app, ["--store", str(store_dir), "annotate", "dedup", "--score-against", str(truth)])
    assert result.exit_code == 0, result.output
    precision = float(re.search(r"pair precision\s*│\s*([0-9.]+)", result.output).group(1))
    recall = float(re.search(r"pair recall\s*│\s*([0-9.]+)", result.output).group(1))
    assert precision >= 0.95 and recall >= 0.80
    bad = runner.invoke(app, ["--store", str(store_dir), "annotate", "dedup", "--score-against", str(tmp_path / "nope")])
    assert bad.exit_code == 1 and "no truth products.parquet" in bad.output


def test_the_registry_runs_the_stage(small):
    from m5data.config import load
    from m5data.stages import RunContext, call

    stats = call("dedup", RunContext(load(None, {"store.path": str(small.root)})))
    assert stats.stage == "dedup" and stats.n_in == 12 and stats.status == "ok"
    assert small.count("dedup") == 12


def test_cli_prints_ids_and_paths_as_text_not_rich_markup(small, tmp_path):
    """Product ids and paths come from pages and users: ``[red]`` in them is printed, not eaten."""
    from rich.console import Console

    from m5data.annotate.dedup.cli import score_table
    from m5data.annotate.dedup.score import PairScore

    score = PairScore(examples_false=[("a:[red]1", "b:[/]2")], examples_missed=[("c:[bold]3", "d:4")])
    console = Console(record=True, width=200)
    console.print(score_table(score, tmp_path / "[bold]truth"))
    text = console.export_text()
    assert "a:[red]1 ~ b:[/]2" in text and "c:[bold]3 ~ d:4" in text and "[bold]truth" in text
    bad = runner.invoke(app, ["--store", str(small.root), "annotate", "dedup", "--score-against", str(tmp_path / "[red]nope")])
    assert bad.exit_code == 1 and "[red]nope" in bad.output


def test_compiled_spec_agreement_equals_the_rule_on_dicts(store):
    """Random spec tables (repeated properties, brand spellings, noisy values, blanks): the compiled
    per-pair agreement of every pair equals ``spec_agreement`` on the pages' property -> values dicts."""
    import random

    from m5data.annotate.dedup.reads import agreement, read_inputs
    from m5data.annotate.dedup.values import norm_value, spec_agreement

    rng = random.Random(7)
    choices = {"品牌": ["美的(Midea)", "Midea/美的", "格力", "美的", " 格力 "], "颜色": ["黑色", "白色", "红色"],
               "型号": ["K-100", "Ｋ-100", "K-200"], "尺寸": ["3km-5km", "10cm", "2019年春季"], " ": ["x"], "材质": ["", "铝"]}
    ids = [f"r:{i:03d}" for i in range(60)]
    store.write("products", [_product(pid, "m", f"商品{pid}") for pid in ids])
    rows = []
    for pid in ids:
        pairs = [(k, rng.choice(vs)) for k, vs in choices.items() for _ in range(rng.randint(0, 2))]
        rng.shuffle(pairs)
        rows += _specs(pid, pairs)
    store.write("specs", rows)
    brand = norm_value("品牌")
    inp = read_inputs(store, brand)
    dicts = {pid: {} for pid in ids}
    for r in store.read("specs").to_pylist():
        key, value = norm_value(r["property"]), norm_value(r["value"])
        if key and value and (key == brand or not noisy_value(r["value"])):
            dicts[r["product_id"]].setdefault(key, set()).add(value)
    dicts = {pid: {k: frozenset(v) for k, v in d.items()} for pid, d in dicts.items()}
    left = np.array([i for i in range(60) for j in range(i + 1, 60)])
    right = np.array([j for i in range(60) for j in range(i + 1, 60)])
    same, shared, equal = agreement(inp.specs, left, right)
    order = inp.ids.to_pylist()
    expected = [spec_agreement(dicts[order[i]], dicts[order[j]], brand) for i, j in zip(left, right)]
    got = [({1: True, 0: False, -1: None}[int(s)], int(n), int(e)) for s, n, e in zip(same, shared, equal)]
    assert got == expected
    assert {g[0] for g in got} == {True, False, None} and max(g[1] for g in got) >= 2


def test_a_placeholder_photo_over_the_cap_is_one_star_and_counted(store):
    """300 listings with one placeholder photo (pHash 0-1 bits apart), no specs: one group, capped pairs counted."""
    ids = [f"p:{i:03d}" for i in range(300)]
    store.write("products", [_product(pid, f"m{i}", f"商品编号{i}号独特名称{i * 7919}") for i, pid in enumerate(ids)])
    base = 0x9A3C5E7F1B2D4C6E
    store.write("media", [_image(pid, f"s{i}", f"{base ^ ((1 << (i % 64)) if i % 2 else 0):016x}")
                          for i, pid in enumerate(ids)])
    report = dedup(store, _settings(store.root, **{"dedup.bucket_cap": "20"}))
    rows = _rows(store)
    assert {r["group_id"] for r in rows.values()} == {"p:000"}
    assert report.capped["phash"] > 0 and report.pairs["phash"] < 300 * 299 // 2


def test_spec_pairs_must_be_unlikely_by_chance_in_their_brand(tmp_path):
    """One brand of 1,200 products whose specs are drawn from small pools (4 colours, 3 audiences,
    imported or not): any two with the same three values agree on every property they list (Jaccard
    1.0), and by that alone chained the brand into 24 groups of ~50. Only the 6 pairs of listings
    that also share a model number no other product lists are duplicates."""
    import random

    from m5data.storage import Store

    rng = random.Random(7)
    store = Store.init(tmp_path / "store")
    n = 1200
    store.write("products", [_product(f"p:{i:05d}", f"m{i}", f"t{i}") for i in range(n)])
    values = [(rng.randrange(4), rng.randrange(3), rng.randrange(2)) for _ in range(n)]
    twins = {2 * k: 2 * k + 1 for k in range(6)}  # listings 0-1, 2-3, ...: one product each
    for a, b in twins.items():
        values[b] = values[a]
    rows = []
    for i in range(n):
        c, who, imported = values[i]
        rows += [{"product_id": f"p:{i:05d}", "position": 0, "property": "品牌", "value": "牌子"},
                 {"product_id": f"p:{i:05d}", "position": 1, "property": "颜色", "value": f"色{c}"},
                 {"product_id": f"p:{i:05d}", "position": 2, "property": "适用人群", "value": f"人{who}"},
                 {"product_id": f"p:{i:05d}", "position": 3, "property": "是否进口", "value": "是否"[imported]}]
        if i < 2 * len(twins):
            rows.append({"product_id": f"p:{i:05d}", "position": 4, "property": "型号", "value": f"X-{i // 2}"})
    store.write("specs", rows)
    report = dedup(store, _settings(store.root))
    groups: dict[str, set[str]] = {}
    for r in _rows(store).values():
        groups.setdefault(r["group_id"], set()).add(r["product_id"])
    assert sorted(g for g in groups.values() if len(g) > 1) == [{f"p:{a:05d}", f"p:{b:05d}"} for a, b in twins.items()]
    assert report.pairs["spec"] == len(twins) and report.vetoed["spec"] > 1000
    # with the chance bound off, the common values alone make duplicates of most of the brand
    loose = dedup(store, _settings(store.root, **{"dedup.spec_chance": 1e9}))
    assert loose.n_grouped > n // 2


def test_spec_candidates_grow_with_the_products_not_their_square(tmp_path):
    """One brand, 3,000 products, each with its own model number and one of 12 colours and 30
    materials: the spec rule compares only products that share the brand and two agreeing values
    (here colour and material, ~100 per pair of values), not every pair of the brand that an index
    of similar sets would pair (the spec LSH at Jaccard 0.2 did: any two products of one colour have
    Jaccard 2/6: it checked 435,359 pairs here)."""
    import random

    from m5data.storage import Store

    rng = random.Random(5)
    store = Store.init(tmp_path / "store")
    n = 3000
    store.write("products", [{"product_id": f"p:{i:05d}", "platform": "p", "source_id": str(i), "title": f"t{i}",
                              "merchant_id": f"m{i}"} for i in range(n)])
    colour = [rng.randrange(12) for _ in range(n)]
    material = [rng.randrange(30) for _ in range(n)]
    store.write("specs", [row for i in range(n) for row in (
        {"product_id": f"p:{i:05d}", "position": 0, "property": "品牌", "value": "牌子"},
        {"product_id": f"p:{i:05d}", "position": 1, "property": "型号", "value": f"M-{i}"},
        {"product_id": f"p:{i:05d}", "position": 2, "property": "颜色", "value": f"色{colour[i]}"},
        {"product_id": f"p:{i:05d}", "position": 3, "property": "材质", "value": f"料{material[i]}"})])
    report = dedup(store, _settings(store.root))
    same_values = sum(1 for i in range(n) for j in range(i + 1, n)
                      if colour[i] == colour[j] and material[i] == material[j])
    assert report.candidates["spec"] == same_values < 20_000
    # each such pair agrees on colour and material but its model numbers differ: never a duplicate
    assert report.pairs["spec"] == 0


def test_spec_block_pairs_checks_the_same_candidates_as_pairs_in_runs():
    """The compiled pass that checks each block's pairs as it makes them finds exactly the pairs that
    the candidate list of ``pairs_in_runs`` (all pairs of a small block, a star over a capped one)
    keeps after the same checks, counts every candidate check and capped pair, and goes on when a
    capped block is longer than its buffer."""
    from m5data.annotate.dedup import near, spec_blocks, spec_jit

    rng = np.random.default_rng(11)
    n, brand_key = 400, 0
    lens = rng.integers(0, 7, n)
    offsets = np.r_[0, np.cumsum(lens)].astype(np.int64)
    keys, values = [], []
    for ln in lens:  # properties 0 (the brand) .. 4, a few values each, sorted by property then value
        entries = sorted({(int(rng.integers(0, 5)), int(rng.integers(0, 3))) for _ in range(ln)})
        entries += [(9, 100 + k) for k in range(ln - len(entries))]  # keep the row's length
        keys += [k for k, _ in sorted(entries)]
        values += [v for _, v in sorted(entries)]
    keys, values = np.array(keys, dtype=np.int32), np.array(values, dtype=np.int32)
    blens = rng.integers(0, 3, n)
    brand_offsets = np.r_[0, np.cumsum(blens)].astype(np.int64)
    brands = np.concatenate([np.sort(rng.choice(3, b, replace=False)) for b in blens]).astype(np.int32)
    row = rng.integers(0, n, 3000).astype(np.int64)
    key = rng.integers(0, 120, 3000)
    key[:400] = 7  # one block far over the cap
    key = rng.integers(0, 2 ** 63, 120, dtype=np.int64).astype(np.uint64)[key] * np.uint64(2)  # keys as hashes
    cap, min_shared, min_agreement, min_jac = 30, 1, 0.5, 0.2

    capped = [0]
    left, right = near.unpack(near.pairs_in_runs(key, row, cap, capped))
    same, shared, equal = spec_jit.spec_agreement(left, right, offsets, keys, values, brand_offsets, brands, brand_key)
    jac = np.empty(len(left))
    spec_jit.entry_jaccard(left, right, offsets, keys, values, jac)
    ok = (same == 1) & (shared >= min_shared) & (equal >= min_agreement * shared) & (jac >= min_jac)
    expected = set(zip(left[ok].tolist(), right[ok].tolist()))
    assert 0 < len(expected) < len(left)  # the checks keep some candidates, not all

    order = np.argsort(key, kind="stable")
    skey, srow = key[order], row[order]
    checks, no_rows = [], np.zeros(0, dtype=np.bool_)  # no_rows: every pair checked
    for once in (False, True):  # once: a pair sharing several uncapped keys checked in its first one's block
        rows_keys = spec_blocks._rows_keys(skey, srow, cap, n) if once else (
            np.zeros(0, np.int64), skey[:0], np.zeros(0, np.bool_), skey[:0])
        counts, found, pos = np.zeros(2, dtype=np.int64), [], 0
        buf = np.empty(64, dtype=np.uint64)  # smaller than the capped block's 399 pairs: it must grow
        while pos < len(skey):
            args = (skey, srow, pos, cap, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                    min_agreement, min_jac, buf, counts, no_rows)
            pos2, m = (spec_jit.spec_block_pairs_once(*args, *rows_keys) if once else spec_jit.spec_block_pairs(*args))
            if pos2 == pos:
                buf = np.empty(2 * len(buf), dtype=np.uint64)
                continue
            found.append(buf[:m].copy())
            pos = pos2
        got_l, got_r = near.unpack(np.unique(np.concatenate(found)))
        assert set(zip(got_l.tolist(), got_r.tolist())) == expected
        assert len(buf) > 64 and counts[1] == capped[0] > 0
        checks.append(int(counts[0]))
    assert checks[0] > checks[1] >= len(left)  # every candidate once per key it shares, then (nearly) once

    # with ``mine`` (an incremental run's changed rows) only the pairs with one of them as an end
    mine = rng.random(n) < 0.05
    buf, found, pos = np.empty(1 << 16, dtype=np.uint64), [], 0
    while pos < len(skey):
        pos, m = spec_jit.spec_block_pairs(skey, srow, pos, cap, offsets, keys, values, brand_offsets, brands,
                                           brand_key, min_shared, min_agreement, min_jac, buf, np.zeros(2, np.int64), mine)
        found.append(buf[:m].copy())
    got_l, got_r = near.unpack(np.unique(np.concatenate(found)))
    theirs = {(lo, hi) for lo, hi in expected if mine[lo] or mine[hi]}
    assert set(zip(got_l.tolist(), got_r.tolist())) == theirs and 0 < len(theirs) < len(expected)

    # spec_blocks._check_blocks takes the keys in its caller's order (row by row, as the incremental
    # blocks come): it sorts them before it reads the blocks' sizes for ``once`` (a once made from
    # unsorted keys took capped blocks for uncapped ones and lost their pairs)
    check = (offsets, keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement, min_jac)
    for once_rows, touching, want in ((None, None, expected), (n, None, expected), (n, mine, theirs)):
        counts, found = np.zeros(2, dtype=np.int64), []
        spec_blocks._check_blocks(key, row, cap, check, np.empty(64, dtype=np.uint64), counts, touching, found,
                                 once_rows)
        got_l, got_r = near.unpack(np.unique(np.concatenate(found)))
        assert set(zip(got_l.tolist(), got_r.tolist())) == want

    # the incremental run's pass (spec_jit.spec_touched_pairs: row by row, each pair once from its
    # ``mine`` end) finds those pairs too, from keys sorted by key then row (a key's rows distinct)
    uniq = np.unique(np.stack([key, row.astype(np.uint64)], axis=1), axis=0)
    ukey, urow = uniq[:, 0].copy(), uniq[:, 1].astype(np.int64)
    counts, found = np.zeros(2, dtype=np.int64), []
    spec_blocks._check_blocks(ukey, urow, cap, check, np.empty(64, dtype=np.uint64), counts, mine, found, n)
    want = set(zip(*(x.tolist() for x in near.unpack(np.unique(np.concatenate(found))))))
    assert len(want)
    for keyed in (ukey, np.unique(ukey, return_inverse=True)[1].astype(np.int64)):  # hashes or block numbers
        got = spec_jit.spec_touched_pairs(keyed, urow, cap, mine, *check, np.zeros(2, dtype=np.int64))
        assert set(zip(*(x.tolist() for x in near.unpack(np.unique(got))))) == want


def test_spec_codes_do_not_depend_on_the_order_rows_were_written(tmp_path):
    """Property and value codes break the rarest-entry ties of the spec blocks, so they must not
    follow the order DuckDB's DISTINCT happens to return: the same spec rows written in another
    order and other parts give the same codes."""
    from m5data.annotate.dedup.reads import read_inputs
    from m5data.annotate.dedup.values import norm_value
    from m5data.storage import Store

    ids = [f"q:{i:04d}" for i in range(2000)]
    rows = [r for i, pid in enumerate(ids) for r in _specs(pid, [("品牌", f"牌{i % 7}"), (f"属性{i % 50}", f"值{i % 97}"),
                                                                  ("颜色", f"色{i % 13}")])]
    codes = []
    for name, order in (("a", rows), ("b", rows[::-1])):
        store = Store.init(tmp_path / name)
        store.write("products", [_product(pid, "m", pid) for pid in ids])
        for start in range(0, len(order), 1500):
            store.write("specs", order[start:start + 1500])
        sp = read_inputs(store, norm_value("品牌")).specs
        codes.append((sp.keys.tolist(), sp.values.tolist(), sp.brands.tolist()))
    assert codes[0] == codes[1]


def test_a_run_with_nothing_new_keeps_the_groups_and_a_write_or_full_groups_again(small):
    """Issue 38's first step for dedup: no products / media / specs row written since its last complete
    run (same settings, same matcher) -> no work, its groups stand; a new product, other settings or
    ``full`` -> grouped again, and the state is written only when a run completes."""
    from m5data.storage import changes

    settings = _settings(small.root)
    first = dedup(small, settings)
    assert first.stats.details["changes"] == {"new": 12, "changed": 0, "unchanged": 0}
    groups, mark = _rows(small), small.watermark("dedup")
    again = dedup(small, settings)
    assert again.stats.details.get("unchanged") and again.table is None and small.watermark("dedup") == mark
    assert again.n_groups == first.n_groups and dict(again.pairs) == dict(first.pairs)
    assert again.stats.details["changes"] == {"new": 0, "changed": 0, "unchanged": 12}
    assert not dedup(small, settings, full=True).stats.details.get("unchanged")
    assert not dedup(small, _settings(small.root, **{"dedup.phash_threshold": 4})).stats.details.get("unchanged")
    dedup(small, settings)  # back to the first settings: grouped again, then kept
    assert dedup(small, settings).stats.details.get("unchanged")
    small.write("products", [_product("a:13", "m13", "欧星商务A4办公文仪LP-6232办公文仪工厂直销")])  # a copy of a:7
    grown = dedup(small, settings)
    assert not grown.stats.details.get("unchanged")
    assert grown.stats.details["changes"] == {"new": 1, "changed": 0, "unchanged": 12}
    rows = _rows(small)
    assert rows["a:13"]["group_id"] == rows["a:7"]["group_id"] and len(rows) == len(groups) + 1
    assert changes.load_state(small, "dedup")["report"]["n_products"] == 13


def test_the_touched_blocks_key_pass_keeps_every_rows_keys_among_the_wanted():
    """``spec_blocks._keys_in`` (each row's pair keys made only of the entries whose one-entry key the
    wanted keys' rows have) keeps every row's block keys that are among the wanted ones, with their
    rows: what making every row's keys and testing each gives, for ``need`` 2 and 1."""
    from m5data.annotate.dedup import spec_blocks

    rng = np.random.default_rng(5)
    n, brand_key = 600, 0
    keys, values, counts = [], [], []
    for ln in rng.integers(0, 9, n):  # properties 0 (the brand) .. 6, few values each: many rows share keys
        entries = sorted({(int(rng.integers(0, 7)), int(rng.integers(0, 4))) for _ in range(ln)})
        keys += [k for k, _ in entries]
        values += [v for _, v in entries]
        counts.append(len(entries))
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    keys, values = np.array(keys, dtype=np.int32), np.array(values, dtype=np.int32)
    blens = rng.integers(0, 3, n)
    brand_offsets = np.r_[0, np.cumsum(blens)].astype(np.int64)
    brands = np.concatenate([np.sort(rng.choice(3, b, replace=False)) for b in blens]).astype(np.int32)
    for need in (2, 1):
        args = (offsets, keys, values, brand_offsets, brands, brand_key, need)
        every_key, every_row = spec_blocks._block_keys(args)
        rows = np.flatnonzero(rng.random(n) < 0.02)
        wanted = spec_blocks._own_keys(args, rows)
        at, row = spec_blocks._keys_in(args, wanted, rows)
        key = wanted[at]
        hit = np.isin(every_key, wanted)
        assert len(key) and sorted(zip(key.tolist(), row.tolist())) == sorted(
            zip(every_key[hit].tolist(), every_row[hit].tolist())), need


def test_a_rule_added_makes_the_next_run_a_full_one(small, monkeypatch):
    """The kept pairs hold no pair of a rule the last run did not have: after a rule is added (or removed),
    the next run groups every product again, whatever changed in the store."""
    from m5data.annotate.dedup import job

    settings = _settings(small.root)
    dedup(small, settings)
    assert dedup(small, settings).stats.details.get("unchanged")
    monkeypatch.setattr(job, "RULES", (*job.RULES, "exact_barcode"))
    again = dedup(small, settings)
    assert not again.stats.details.get("unchanged") and again.full == "settings, matcher or rules changed"
