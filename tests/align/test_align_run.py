"""The align stage over a store: tables, scores, stable ids, untitled and unmapped labels, review files.

The catalogue is ``support.align_world`` (seeded, two platforms, known alignment); products
are written into the store directly, without a crawl.
"""

import csv
import dataclasses
import shutil
from collections import defaultdict

import pytest
from support.align_world import make_world

from m5data import config as cfg
from m5data.align.labels import product_labels
from m5data.align.run import align
from m5data.align.score import score_against
from m5data.storage import Store


@pytest.fixture(scope="module")
def world():
    return make_world(seed=1, n_classes=3, subs_per_class=8, titles_per_sub=150)


@pytest.fixture(scope="module")
def aligned_once(world, tmp_path_factory):
    """One aligned store per module; each test gets its own copy (align costs ~2 s of jieba)."""
    root = tmp_path_factory.mktemp("aligned")
    store = Store.init(root / "store")
    store.write("products", world.products())
    mapping = world.write_mapping(root / "mapping.toml")
    truth = world.write_truth(root / "truth.jsonl")
    settings = cfg.load(environ={}, cwd=root)
    report = align(store, settings, mapping=mapping)
    return root, settings, mapping, truth, report


@pytest.fixture
def aligned(aligned_once, tmp_path):
    root, settings, mapping, truth, report = aligned_once
    shutil.copytree(root / "store", tmp_path / "store")
    store = Store.open(tmp_path / "store")
    report = dataclasses.replace(report, review_path=tmp_path / report.review_path.relative_to(root))
    return store, settings, mapping, truth, report


def tables(store):
    key = lambda r: tuple(str(v) for v in r.values())
    return (sorted(store.read("taxonomy").to_pylist(), key=key), sorted(store.read("label_map").to_pylist(), key=key))


def test_taxonomy_and_label_map_are_consistent(aligned, world):
    store, _, _, _, report = aligned
    taxonomy, label_map = tables(store)
    by_level = defaultdict(dict)
    for row in taxonomy:
        by_level[row["level"]][row["label_id"]] = row
    assert sorted(by_level[1]) == sorted(world.classes)
    assert all(r["parent_id"] in by_level[1] for r in by_level[2].values())
    assert all(r["parent_id"] in by_level[2] and by_level[2][r["parent_id"]]["class_id"] == r["class_id"]
               for r in by_level[3].values())
    assert by_level[3] and min(by_level[3]) > max(by_level[2])  # level-3 ids in their own range
    classes_of_sub = defaultdict(set)
    for row in label_map:
        classes_of_sub[row["sub_class_id"]].add(row["class_id"])
        if row["raw_level3"]:
            assert row["subsub_class_id"] in by_level[3]
            assert by_level[3][row["subsub_class_id"]]["name"] == row["raw_level3"]
        else:
            assert row["subsub_class_id"] == 0  # MEP-3M's placeholder
    assert all(len(c) == 1 for c in classes_of_sub.values())  # no merge crosses level-1 classes
    assert report.stats.n_in == len(label_map) == report.stats.n_out
    runs = store.read("runs").to_pylist()
    assert [r["stage"] for r in runs] == ["align"] and runs[0]["status"] == "ok"


def test_scores_against_the_known_alignment(aligned):
    store, _, _, truth, _ = aligned
    score = score_against(store, truth)
    assert score.precision >= 0.95 and score.cross_class_merges == 0
    assert score.class_accuracy == 1.0
    for kind in ("exact", "near", "finer"):  # "different" names fail S_label >= 0.50 by design
        found, total = score.recall_by_kind[kind]
        assert total and found == total, kind
    assert score.recall_by_kind["different"][0] == 0
    assert score.level3_units and score.level3_precision == score.level3_recall == 1.0


def test_every_product_gets_its_labels(aligned, world):
    store = aligned[0]
    labels = product_labels(store).to_pylist()
    assert len(labels) == len(world.products())
    assert all(r["class_id"] is not None and r["sub_class_id"] is not None for r in labels)


def test_rerun_with_the_same_inputs_gives_identical_ids(aligned):
    store, settings, mapping, _, _ = aligned
    before = tables(store)
    align(store, settings, mapping=mapping)
    assert tables(store) == before


def test_ids_do_not_shuffle_when_a_subclass_appears(aligned, world):
    store, settings, mapping, _, _ = aligned
    _, before = tables(store)
    first_class = world.level1["shopx"][1]
    store.write("products", [{"product_id": f"shopx:new-{i}", "platform": "shopx", "source_id": f"new-{i}",
                              "title": f"一号新品 测试标题 {i}", "category_path": [first_class, "一号新品"]}
                             for i in range(3)])
    report = align(store, settings, mapping=mapping)
    taxonomy, after = tables(store)
    ids = {(r["platform"], r["raw_path"]): (r["sub_class_id"], r["subsub_class_id"]) for r in after}
    assert all(ids[(r["platform"], r["raw_path"])] == (r["sub_class_id"], r["subsub_class_id"]) for r in before)
    new = ids[("shopx", f"{first_class} > 一号新品")][0]
    assert new == max(r["label_id"] for r in taxonomy if r["level"] in (2, 3)) and report.n_groups == len(
        {r["sub_class_id"] for r in after})
    align(store, settings, mapping=mapping, renumber=True)  # a fresh numbering does shift ids
    _, renumbered = tables(store)
    moved = {(r["platform"], r["raw_path"]): r["sub_class_id"] for r in renumbered}
    assert any(moved[(r["platform"], r["raw_path"])] != r["sub_class_id"] for r in before)


def _products(platform, level1, name, titles):
    return [{"product_id": f"{platform}:{level1}-{name}-{i}", "platform": platform, "source_id": f"{level1}-{name}-{i}",
             "title": t, "category_path": [level1, name]} for i, t in enumerate(titles)]


def test_untitled_subclass_is_reported_not_merged_by_name(store, tmp_path, world):
    x1, y1 = world.level1["shopx"][1], world.level1["shopy"][1]
    store.write("products", _products("shopx", x1, "茶杯", ["玻璃茶杯 加厚 500ml", "陶瓷茶杯 家用"])
                + _products("shopy", y1, "茶杯", ["", None]))
    mapping = world.write_mapping(tmp_path / "m.toml")
    settings = cfg.load(environ={}, cwd=tmp_path)
    report = align(store, settings, mapping=mapping)
    assert report.untitled == [("shopy", y1, "茶杯")]
    assert len({r["sub_class_id"] for r in store.read("label_map").to_pylist()}) == 2
    rows = list(csv.DictReader(open(report.review_path, encoding="utf-8-sig")))
    assert [(r["reason"], r["final"], r["s_content"]) for r in rows] == [("no-content", "keep", "")]
    settings = cfg.load(environ={}, cwd=tmp_path, overrides={"align.merge_empty_by_name": "true"})
    align(store, settings, mapping=mapping)
    assert len({r["sub_class_id"] for r in store.read("label_map").to_pylist()}) == 1


def test_unmapped_level1_names_are_reported_and_kept(store, tmp_path, world):
    x1 = world.level1["shopx"][1]
    store.write("products", _products("shopx", x1, "茶杯", ["玻璃茶杯 加厚"]) + _products("shopx", "神秘类目", "茶杯", ["茶杯"])
                + [{"product_id": "shopx:bare", "platform": "shopx", "source_id": "bare", "title": "无路径", "category_path": []}])
    settings = cfg.load(environ={}, cwd=tmp_path)
    report = align(store, settings, mapping=world.write_mapping(tmp_path / "m.toml"))
    assert report.unmapped == {("shopx", "神秘类目"): 1}
    methods = {r["raw_path"]: (r["method"], r["class_id"]) for r in store.read("label_map").to_pylist()}
    assert methods["神秘类目 > 茶杯"] == ("unmapped", None)
    assert methods[""] == ("empty", None)
    assert methods[f"{x1} > 茶杯"] == ("own", 1)
    assert report.stats.failures == {"unmapped level-1 name": 1, "no category path": 1}


def _read(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path, rows):
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)


def test_review_file_is_sorted_and_reapplied_without_recomputing(aligned, tmp_path):
    store, settings, mapping, _, report = aligned
    rows = _read(report.review_path)
    assert [abs(float(r["margin"])) for r in rows] == sorted(abs(float(r["margin"])) for r in rows)
    merged = next(r for r in rows if r["reason"] == "thresholds")
    kept = next(r for r in rows if r["reason"] == "below-both" and r["class_id"] != merged["class_id"])
    taken = {merged["sub_class_a"], merged["sub_class_b"], kept["sub_class_a"], kept["sub_class_b"]}
    cheat = next(r for r in rows if r["reason"] == "below-both" and not {r["sub_class_a"], r["sub_class_b"]} & taken)
    merged["review"] = "reject"
    kept["review"], kept["rename"] = "accept", "统一新名"
    cheat["s_label"], cheat["s_content"] = "0.9", "0.99"  # scores in the file are used as they are
    rows[-1]["review"] = "maybe"
    edited = tmp_path / "reviewed.csv"
    _write(edited, rows)
    again = align(store, settings, mapping=mapping, review=edited, review_out=tmp_path / "out.csv")
    assert again.n_scored == 0 and again.overrides["accept"] == 1 and again.overrides["reject"] == 1
    assert any("maybe" in p for p in again.problems)
    lm = {(r["platform"], r["raw_level1"], r["raw_level2"]): r for r in store.read("label_map").to_pylist()}
    side = lambda r, s: lm[(r[f"platform_{s}"], r[f"level1_{s}"], r[f"sub_class_{s}"])]
    assert side(merged, "a")["sub_class_id"] != side(merged, "b")["sub_class_id"]
    assert side(kept, "a")["sub_class_id"] == side(kept, "b")["sub_class_id"]
    assert side(kept, "a")["method"] == "review"
    assert side(cheat, "a")["sub_class_id"] == side(cheat, "b")["sub_class_id"]
    names = {r["label_id"]: r["name"] for r in store.read("taxonomy", where="level = 2").to_pylist()}
    assert names[side(kept, "a")["sub_class_id"]] == "统一新名"
    out = {tuple(r[c] for c in ("sub_class_a", "sub_class_b")): r for r in _read(tmp_path / "out.csv")}
    assert out[(kept["sub_class_a"], kept["sub_class_b"])]["review"] == "accept"  # edits carry over


def test_review_file_rows_are_in_order_and_their_scores_read_back_exactly(aligned):
    """Rows by |margin|, then class id, then the two sides' (platform, level-1 name, name) in code-point
    order (the review table is sorted in numpy by sub-class rank: this is the Python sort it must equal);
    every score in the CSV reads back to the float align kept (derived/align/scores.parquet)."""
    import math

    import pyarrow.parquet as pq

    store, _, _, _, report = aligned
    sides = ("platform_a", "level1_a", "sub_class_a", "platform_b", "level1_b", "sub_class_b")
    rows = _read(report.review_path)
    assert len(rows) == report.n_pairs and len({tuple(r[c] for c in sides) for r in rows}) == len(rows)
    assert rows == sorted(rows, key=lambda r: (abs(float(r["margin"])), int(r["class_id"]), tuple(r[c] for c in sides)))
    kept = pq.read_table(store.local_root() / "derived" / "align" / "scores.parquet").to_pylist()
    scores = {tuple(k[c] for c in ("platform_a", "level1_a", "name_a", "platform_b", "level1_b", "name_b")):
              (k["s_label"], k["s_content"]) for k in kept}
    for r in rows:
        label, content = scores[tuple(r[c] for c in sides)]
        assert float(r["s_label"]) == label
        assert (r["s_content"] == "") if content is None or math.isnan(content) else float(r["s_content"]) == content


def test_review_file_as_parquet_round_trips(aligned, tmp_path):
    store, settings, mapping, _, _ = aligned
    first = tables(store)
    path = tmp_path / "review.parquet"
    align(store, settings, mapping=mapping, review_out=path)
    report = align(store, settings, mapping=mapping, review=path, review_out=tmp_path / "again.parquet")
    assert report.n_scored == 0 and tables(store) == first


def test_simtext_engine_gives_the_bulk_numbers(store, tmp_path):
    small = make_world(seed=3, n_classes=1, subs_per_class=3, titles_per_sub=4,
                       kinds={"exact": 1, "near": 1, "different": 0, "finer": 0, "single": 0})
    store.write("products", small.products())
    mapping = small.write_mapping(tmp_path / "m.toml")
    scores = {}
    for engine in ("bulk", "simtext"):
        settings = cfg.load(environ={}, cwd=tmp_path, overrides={"align.engine": engine})
        report = align(store, settings, mapping=mapping, review_out=tmp_path / f"{engine}.csv", renumber=True)
        scores[engine] = {(r["sub_class_a"], r["sub_class_b"]): float(r["s_content"]) for r in _read(report.review_path)}
    assert len(scores["bulk"]) == 9 and scores["bulk"].keys() == scores["simtext"].keys()
    assert max(abs(scores["bulk"][k] - scores["simtext"][k]) for k in scores["bulk"]) < 1e-12


def test_bad_engine_and_weighting_combination_is_refused(store, tmp_path, world):
    settings = cfg.load(environ={}, cwd=tmp_path, overrides={"align.engine": "simtext", "align.weighting": "counts"})
    with pytest.raises(cfg.ConfigError, match="binary"):
        align(store, settings, mapping=world.write_mapping(tmp_path / "m.toml"))


def test_names_are_compared_without_surrounding_spaces(store, tmp_path, world):
    from m5data.align.inventory import read_inventory
    from m5data.align.mapping import Level1Mapping

    x1 = world.level1["shopx"][1]
    store.write("products", [
        {"product_id": "shopx:1", "platform": "shopx", "title": "玻璃茶杯", "category_path": [f" {x1}\u00a0", "\u3000茶杯 "]},
        {"product_id": "shopx:2", "platform": "shopx", "title": "陶瓷茶杯", "category_path": [x1, "茶杯"]},
    ])
    mapping = Level1Mapping.load(world.write_mapping(tmp_path / "m.toml"))
    inv = read_inventory(store, mapping, 100)
    assert [(s.key, s.n_products, s.text) for s in inv.subclasses] == [(("shopx", x1, "茶杯"), 2, "玻璃茶杯\n陶瓷茶杯")]
    assert len(inv.paths) == 2 and {p.raw_path for p in inv.paths} == {f" {x1}\u00a0 > \u3000茶杯 ", f"{x1} > 茶杯"}
