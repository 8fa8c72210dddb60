"""The matcher's compiled parts give what the Python they replace gave: the words of many texts, scipy's row dot
products, the TF-IDF rows, and the spec rows read from the store."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from m5data.annotate.matcher import features, products
from m5data.annotate.matcher import spaces as pair_spaces
from m5data.annotate.matcher import text as tx
from m5data.annotate.matcher.features_jit import rowdot_csr, tfidf_matrix

jieba = pytest.importorskip("jieba")
jieba.setLogLevel(60)

TITLES = ["朗星(LOLE)整箱早餐家庭装进口牛奶乳品深空灰进口牛奶乳品年货官方正品", "森莱迪农家早餐低糖无添加进口厨房调料藏青色",
          "华为笔记本电脑轻薄本锐龙版16GB内存512固态", "小米手机红米充电宝移动电源超薄大容量", "儿童保温杯不锈钢吸管杯防摔学生水杯"]


def _runs(seed: int, n: int) -> list[str]:
    """Runs of Chinese characters: from product titles (mostly dictionary words), any character of
    U+3400..U+9FFF (mostly unknown: jieba's HMM and its ties), and a mix with the characters jieba's
    re_han leaves alone (U+3400..U+4DFF, U+9FD6..U+9FFF)."""
    rng = random.Random(seed)
    common = sorted({c for t in TITLES for c in t if "\u3400" <= c <= "\u9fff"})
    out = []
    for _ in range(n):
        k, kind = rng.randint(1, 30), rng.randrange(3)
        if kind == 0:
            out.append("".join(rng.choice(common) for _ in range(k)))
        elif kind == 1:
            out.append("".join(chr(rng.randint(0x3400, 0x9FFF)) for _ in range(k)))
        else:
            out.append("".join(rng.choice(common + ["\u3400", "\u4dbf", "\u9fd6", "\u9fff", "\u9fa5"]) for _ in range(k)))
    return out + [han for t in TITLES for _, han in tx._TOKEN.findall(tx.clean(t)) if han]


def test_words_of_mixed_text_as_before_and_after_the_run_cache_is_cleared(monkeypatch):
    def reference(s: str) -> list[str]:  # the words as words_clean made them with jieba in Python
        out = []
        for latin, han in tx._TOKEN.findall(s):
            out.extend([latin] if latin else [w for w in jieba.lcut(han) if w.strip()])
        return out

    texts = [tx.clean(t) for t in ["索尼(SONY) DVD-3800BDCI 蓝光播放器 24寸", "Apple iPhone 15 Pro 256GB 黑色钛金属", "",
                                   "ｍｂ13-pnk-see-v2 粉色 儿童保温杯", *TITLES]]
    assert tx.words_many(texts) == [reference(t) for t in texts]
    monkeypatch.setattr(tx, "_CUTS_MAX", 3)  # past the bound the cache starts again: still every run cut
    tx._CUTS.clear()
    assert tx.words_many(texts) == [reference(t) for t in texts]
    assert len(tx._CUTS) > 3
    assert [tx.words_clean(t) for t in texts] == [reference(t) for t in texts]


def test_rowdot_is_scipys_to_the_bit():
    rng = np.random.default_rng(1)
    x = sp.random(300, 500, density=0.05, format="csr", dtype=np.float32, random_state=2)
    x.sort_indices()
    a, b = rng.integers(0, 300, 2000), rng.integers(0, 300, 2000)
    want = np.asarray(x[a].multiply(x[b]).sum(axis=1)).ravel()
    np.testing.assert_array_equal(rowdot_csr(x, a, b), want)
    w = rng.random(500).astype(np.float32)
    np.testing.assert_array_equal(rowdot_csr(x, a, b, w), np.asarray(x[a].multiply(x[b]) @ w).ravel())
    np.testing.assert_array_equal(pair_spaces.rowdot(x, a, a), np.asarray(x[a].multiply(x[a]).sum(axis=1)).ravel())


def test_compiled_tfidf_rows_equal_the_numpy_formula():
    indptr, term, count, df, grams = pair_spaces._char_counts([tx.clean(t) for t in TITLES * 3 + ["", "ab ab ab cd"]])
    idf = pair_spaces.smooth_idf(df, 17)
    got = tfidf_matrix(indptr, term, count, idf)
    n = len(indptr) - 1
    data = (1.0 + np.log(count)).astype(np.float32) * idf[term]
    rows = np.repeat(np.arange(n), np.diff(indptr))
    norms = np.sqrt(np.bincount(rows, weights=data.astype(np.float64) ** 2, minlength=n))
    want = sp.csr_matrix(((data / np.where(norms > 0, norms, 1.0)[rows]).astype(np.float32), term, indptr),
                         shape=got.shape)
    want.sort_indices()
    assert got.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_spec_rows_first_value_per_normalised_property_and_first_brand():
    specs = pa.table({
        "product_id": ["p1", "p1", "p1", "p1", "p1", "p2", "p2", "px", "p3"],
        "property": ["品牌", "颜色:", "颜色", " 材质 ", "品牌", "品牌", "颜色", "颜色", ""],
        "value": ["  ", "黑色", "白色", "Steel", "Sony", "", "RED ", "蓝色", "空"],
    })
    brands, rows = products._specs(["p1", "p2", "p3"], specs, products.norm("品牌"))
    assert brands == ["sony", "", ""]  # the first non-empty brand value; none on p2 (empty) or p3
    assert rows == [{"颜色": "黑色", "材质": "steel"}, {"颜色": "red"}, {}]  # px is no product asked for
    assert list(rows[0]) == ["颜色", "材质"]  # in spec order
    assert products._specs(["p1"], specs.slice(0, 0), "品牌") == ([""], [{}])


def test_word_and_code_sets_are_those_of_each_products_whole_text():
    specs = [{"型号": "DVD-3800BDCI", "颜色": "黑色"}, {"颜色": "黑色", "材质": "不锈钢 304"}, {}, {"型号": "lds4821ww"}]
    p = products.Products(ids=["a", "b", "c", "d"], title=["索尼 DVD-3800 蓝光播放器", "儿童保温杯不锈钢", "", "海尔 冰箱 LDS4821WW"],
                          text=["蓝光播放器", "", "只有描述 ab12cd", "海尔 冰箱 LDS4821WW"], brand=["", "", "", ""],
                          price=np.full(4, np.nan), category=["", "", "", ""], specs=specs)
    f = features.PairFeatures(p)
    full = [tx.clean(f"{t} {d} {' '.join(s.values())}") for t, d, s in zip(p.title, p.text, specs)]

    def row(x, terms, i):
        return {terms[c] for c in x.indices[x.indptr[i]:x.indptr[i + 1]]}

    w = pair_spaces.Words(p)
    for i, (t, whole) in enumerate(zip(p.title, full)):
        assert row(f.title_bin, w.title_terms, i) == set(tx.words(t))
        assert row(w.text, w.text_terms, i) == set(tx.words_clean(whole))
        assert (w.title_terms[f.first[i]] if f.first[i] >= 0 else "") == (tx.words(t) or [""])[0]
        codes = set(tx.codes(tx.words_clean(whole)))
        assert row(f.codes, f.code_terms, i) == codes
        assert np.diff(f.stems.indptr)[i] == len(set(tx.stems(sorted(codes))))
    assert row(f.codes, f.code_terms, 0) == {"dvd3800bdci", "dvd3800"} and row(f.codes, f.code_terms, 2) == {"ab12cd"}
    assert np.diff(f.props.indptr).tolist() == [2, 2, 0, 1]
    x = f.matrix(np.array([0, 3, 0]), np.array([1, 3, 2]))
    col = features.FEATURES.index
    assert x[1, col("code_shared")] == 1 and x[2, col("code_conflict")] == 1  # dvd3800bdci is not in c's text
    assert np.isnan(x[2, col("first_word_same")]) and x[1, col("first_word_same")] == 1  # c has no title


def test_codes_inside_is_pythons_substring_test():
    from m5data.annotate.matcher.features_jit import codes_inside

    rng = random.Random(3)
    alphabet = "ab12中x"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(60)]
    codes = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(40)})
    rows = [rng.sample(range(len(codes)), rng.randint(0, 3)) for _ in texts]
    x = sp.csr_matrix((np.ones(sum(map(len, rows)), np.float32), (np.repeat(np.arange(len(rows)), [len(r) for r in rows]),
                                                                    [c for r in rows for c in r])), shape=(len(texts), len(codes)))
    x.sort_indices()
    a, b = np.array([rng.randrange(60) for _ in range(500)]), np.array([rng.randrange(60) for _ in range(500)])
    want = [any(codes[c] in texts[j] for c in rows[i]) or any(codes[c] in texts[i] for c in rows[j]) for i, j in zip(a, b)]
    assert codes_inside(texts, codes, x, a, b).tolist() == want
    assert 0 < sum(want) < len(want)


def test_first_seen_numbers_columns_as_unique_by_first_index():
    """The compiled renumbering gives each column its rank of first sight, as ``np.unique`` with the
    first indexes sorted did (the word matrices' column order, which the features' sums follow)."""
    from m5data.annotate.matcher.features_jit import first_seen

    cols = np.random.default_rng(3).integers(0, 50, 2000)
    cols[:3] = [49, 7, 49]
    used, first = np.unique(cols, return_index=True)
    used = used[np.argsort(first, kind="stable")]
    expected = np.full(60, -1)
    expected[used] = np.arange(len(used))
    new, old = first_seen(cols.astype(np.int64), 60)
    assert old.tolist() == used.tolist() and old[:2].tolist() == [49, 7]
    assert new.tolist() == expected[cols].tolist()
