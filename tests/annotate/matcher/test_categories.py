"""The matcher beyond milk powder (issue 75, item 9): measures of any kind read from a title (storage,
battery, power, screen, pieces per pack), compared per kind, and the trees blended with a logistic
regression whose share training chooses on its held-out folds."""

import json

import numpy as np

from m5data.annotate.matcher import title as pt
from m5data.annotate.matcher.features import FEATURES, PairFeatures
from m5data.annotate.matcher.linear import Linear
from m5data.annotate.matcher.products import Products
from m5data.annotate.matcher.text import clean
from m5data.annotate.matcher.training import fit
from m5data.config import load as load_settings


def test_measures_of_any_kind_in_one_unit_each():
    assert pt.contents(clean("小米充电宝 20000毫安 22.5W快充")) == ["20000mah", "22.5w"]
    assert pt.contents(clean("Apple iPhone 13 128GB 午夜色")) == ["128gb"]
    assert pt.contents(clean("西部数据 1TB 移动硬盘")) == ["1024gb"]
    assert pt.contents(clean("维达抽纸 3层100抽*24包")) == ["100pcs"] and pt.packs(clean("维达抽纸 3层100抽*24包")) == [24]
    assert pt.contents(clean("TCL 55英寸 4K电视")) == ["55inch"] and pt.contents(clean("数据线 1.5米")) == ["1500mm"]
    assert pt.contents(clean("3M口罩 50片")) == ["50pcs"]  # 3m: a brand, no length
    assert pt.contents(clean("安满智孕宝 0.8kg")) == ["800g"]  # milk powder as before
    assert [pt.kind(v) for v in ("800g", "128gb", "20000mah", "55inch")] == ["g", "gb", "mah", "inch"]


def _features(titles: list[str], pairs: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    n = len(titles)
    p = Products(ids=[str(i) for i in range(n)], title=titles, text=[""] * n, brand=[""] * n,
                 price=np.full(n, np.nan), category=[""] * n)
    x = PairFeatures(p).matrix(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]))
    return {name: x[:, FEATURES.index(name)] for name in FEATURES}


def test_content_conflict_compares_each_kind_with_its_own():
    titles = ["华为 nova 9 8gb 128gb 4300mah 曜金黑", "华为 nova 9 8gb 256gb 4300mah 曜金黑",
              "华为 nova 9 4300mah 8gb 128gb 亮黑色", "海飞丝 洗发水 400ml", "海飞丝 洗发水 750ml", "海飞丝 洗发水 400ml 去屑",
              "奥利奥 饼干 388g", "维达 抽纸 100抽"]
    col = _features(titles, [(0, 1), (0, 2), (3, 4), (3, 5), (6, 7), (0, 7)])
    # 128gb vs 256gb (the battery, last on one and not the other, is its own kind); 400ml vs 750ml
    np.testing.assert_array_equal(col["content_conflict"], [1, 0, 1, 0, 1, 1])
    np.testing.assert_array_equal(col["content_same"], [1, 1, 0, 1, 0, 0])


def test_training_blends_a_logistic_regression_chosen_on_held_out_folds():
    """Few labels whose evidence is additive (each feature a little): the held-out AUC chooses a share of
    the linear part; the model file keeps it and scores as the blend of its two parts."""
    rng = np.random.default_rng(0)
    n = 240
    y = rng.random(n) < 0.4
    x = np.c_[[y + rng.normal(0, 1.2, n) for _ in range(6)]].T
    x[rng.random(x.shape) < 0.1] = np.nan
    s = load_settings(None, {"matcher.trees": 30}, environ={})
    model = fit(x, y, np.ones(n), np.arange(n), s, "blend").model
    v = model.validation
    assert model.linear is not None and v["linear_mix"] in (0.0, 0.5, 1.0) and set(v["mix_auc"]) == {"0.5", "0.0", "1.0"}
    assert v["linear_mix"] > 0 and v["auc"] >= max(v["mix_auc"].values()) - 1e-9
    doc = json.loads(model.dumps())  # the model file's JSON (no pickle): the linear part as numbers
    assert doc["format"] == "m5data-matcher/3" and doc["linear"]["mix"] == v["linear_mix"]
    again = Linear.from_json(doc["linear"], len(model.features))
    np.testing.assert_allclose(again.raw(x), model.linear.raw(x), rtol=1e-12)
    z = model.baseline + model.trees.raw(x)
    lin = model.linear.raw(x)
    m = model.linear.mix
    np.testing.assert_allclose(model.proba(x), 1 / (1 + np.exp(-((1 - m) * z + m * lin))), rtol=1e-12)
