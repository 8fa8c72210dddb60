"""S_label (difflib) and S_content (bulk engine vs the simtext library itself)."""

import subprocess
import sys

import numpy as np
import pytest

from m5data.align.similarity import (
    ContentVectors,
    contains_cjk,
    content_text,
    label_similarity,
    simtext_similarity,
    tokens,
)

# MEP-3M Table 3: sub-class name, sub-class name, S_label (two decimals).
TABLE3 = [
    ("儿童餐具", "儿童餐具", 1.00), ("孕妈奶粉", "孕妈奶粉", 1.00), ("空调", "空调", 1.00),
    ("骑行装备", "骑行装备", 1.00), ("洗澡用具", "洗澡用具", 1.00), ("婴幼奶粉", "婴幼儿奶粉", 0.89),
    ("婴儿湿巾", "湿巾", 0.67), ("咖啡/奶茶", "咖啡", 0.57), ("饮料", "饮料饮品", 0.67),
    ("办公文具", "办公文仪", 0.75),
]


@pytest.mark.parametrize("a,b,expected", TABLE3)
def test_s_label_reproduces_mep3m_table3(a, b, expected):
    assert round(label_similarity(a, b), 2) == expected


# Short texts only: simtext's compute() also runs a slow word edit distance.
TEXTS = [
    "【官方正品】安满孕妈奶粉 孕妇配方奶粉800克 新西兰原装进口\n佳贝艾特 孕产妇哺乳期 妈妈配方羊奶粉 800克",
    "美素佳儿妈妈粉 400g 孕妇奶粉\n惠氏 妈妈奶粉 孕期 哺乳期 配方奶粉 900g 罐装 新西兰",
    "红富士苹果 5斤 新鲜水果 陕西洛川 脆甜冰糖心\n赣南脐橙 10斤 新鲜水果 当季 橙子",
    "Apple iPhone 15 Pro 256GB 手机 5G 全网通\niPhone15 手机壳 防摔 透明",
    "Anmum Materna milk powder 800g imported from New Zealand",  # no CJK: simtext skips jieba
    "苹果",  # one token
    "的 了 吗 a b c",  # only one-character tokens: no term at all
]


def _pairs():
    for i, a in enumerate(TEXTS):
        for j, b in enumerate(TEXTS):
            yield i, j, a, b


def test_bulk_s_content_equals_simtext_sim_cosine():
    vectors = ContentVectors(TEXTS)
    first, second, expected = [], [], []
    for i, j, a, b in _pairs():
        first.append(i)
        second.append(j)
        expected.append(simtext_similarity(a, b, full=True))  # the library's own compute()
    got = vectors.similarity(first, second)
    assert np.max(np.abs(got - np.array(expected))) < 1e-12
    # The pairs are not all trivial: identical, partial and zero overlaps occur.
    assert {round(v, 6) for v in expected} >= {1.0, 0.0} and any(0.05 < v < 0.95 for v in expected)


def test_first_text_decides_segmentation_as_in_simtext():
    latin, chinese = TEXTS[4], "Anmum Materna 奶粉 milk powder"
    assert not contains_cjk(latin) and contains_cjk(chinese)
    vectors = ContentVectors([latin, chinese])
    ab, ba = vectors.similarity([0, 1], [1, 0])
    assert ab == pytest.approx(simtext_similarity(latin, chinese), abs=1e-12)
    assert ba == pytest.approx(simtext_similarity(chinese, latin), abs=1e-12)


def test_block_and_pairs_agree():
    vectors = ContentVectors(TEXTS)
    block = vectors.block(range(len(TEXTS)), range(len(TEXTS)))
    for i, j, _, _ in _pairs():
        assert block[i, j] == pytest.approx(vectors.similarity([i], [j])[0], abs=1e-12)


def test_counts_weighting_is_the_term_frequency_cosine():
    from collections import Counter

    vectors = ContentVectors(TEXTS[:4], weighting="counts")
    a, b = Counter(tokens(TEXTS[0], True)), Counter(tokens(TEXTS[1], True))
    dot = sum(a[t] * b[t] for t in a)
    expected = dot / (np.sqrt(sum(v * v for v in a.values())) * np.sqrt(sum(v * v for v in b.values())))
    assert vectors.similarity([0], [1])[0] == pytest.approx(expected, abs=1e-12)
    assert vectors.similarity([0], [1])[0] != pytest.approx(ContentVectors(TEXTS[:4]).similarity([0], [1])[0])


def test_segmentation_in_worker_processes_gives_the_same_vectors(monkeypatch):
    from m5data.align import similarity

    one = ContentVectors(TEXTS * 3).block(range(21), range(21))
    monkeypatch.setattr(similarity, "PARALLEL_CHARS", 0)  # so few characters would be segmented in this process
    two = ContentVectors(TEXTS * 3, workers=2).block(range(21), range(21))
    assert np.array_equal(one, two)


def test_content_text_takes_the_first_characters_of_nonempty_titles():
    titles = ["甲" * 10, "", "乙" * 10, "丙" * 10]
    assert content_text(titles, 15) == "甲" * 10 + "\n" + "乙" * 4
    assert content_text(titles, 1000) == "\n".join(t for t in titles if t)
    assert content_text([], 10) == ""


def test_importing_simtext_leaves_the_warning_filters_alone():
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "before = list(warnings.filters)\n"
        "from m5data.align.similarity import simtext_similarity\n"
        "assert simtext_similarity('苹果 手机', '苹果 手机') > 0.99\n"
        "import simtext  # imported now; the global 'ignore' it installed must be gone\n"
        "after = warnings.filters\n"
        "assert ('ignore', None, Warning, None, 0) not in after, after[:3]\n"
        "assert [f for f in after if f in before] == before  # the user's filters, in order\n"
        "assert after.index(before[0]) < len(after)\n"
        "try:\n"
        "    warnings.warn('still an error', DeprecationWarning)\n"
        "except DeprecationWarning:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the error filter no longer applies')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_tokens_equal_sklearns_count_vectorizer_analyzer():
    """align's analyser (lower-case, findall of (?u)\\b\\w\\w+\\b; no sklearn import) gives the tokens of
    sklearn's CountVectorizer(binary=True).build_analyzer(), which simtext uses, on mixed scripts,
    case, digits, accents, underscores and full-width forms."""
    from sklearn.feature_extraction.text import CountVectorizer

    sklearn_tokens = CountVectorizer(binary=True).build_analyzer()
    odd = ["ÉCOLE Café_au_lait x2 ß straße İstanbul ǅemal", "ＡＢＣ１２３ 全角 Ⅻ ½ ²³ a_b _ __ 9",
           "tab\there\nnew-line, dots... e.g. U.S.A. 3.14 1,000 don't", "", "   ", "Ω ω Σσς ĳ ﬁ"]
    for text in TEXTS + odd:
        for segment in (False, True):
            source = " ".join(__import__("jieba").lcut(text)) if segment else text
            assert tokens(text, segment) == sklearn_tokens(source), (text, segment)
