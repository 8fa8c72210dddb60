"""Caption cleaning and jieba segmentation on real-looking Chinese and English titles."""

import json

import pytest

from m5data.extract.text import caption_row, clean_caption, language, tokenize

# MEP-3M's example record (papers/004, section 3.1), as the paper's text prints it: line breaks inside
MEP3M_EXAMPLE = ("【第 2 件 9.8 , 2 件共发带\n箱 10 斤】脆甜冰糖心红富士苹果 5 斤鲜果时令\n"
                 "大果新鲜水果陕西洛川一整箱非烟台 5 斤装 (净\n重 5 斤) ")


def test_mep3m_example_title():
    text = clean_caption(MEP3M_EXAMPLE)
    assert "\n" not in text and "  " not in text and text == text.strip()
    assert text.startswith("【第 2 件 9.8 , 2 件共发带 箱 10 斤】脆甜冰糖心红富士苹果")
    tokens = tokenize(text)
    for word in ["红富士", "苹果", "新鲜", "水果", "陕西", "洛川", "烟台", "9.8"]:
        assert word in tokens
    assert not {"【", "】", "(", ")", ",", " "} & set(tokens)
    stripped = clean_caption(MEP3M_EXAMPLE, strip_brackets=True)
    assert stripped.startswith("脆甜冰糖心红富士苹果") and "【" not in stripped


def test_real_mep3m_titles(realdata):
    titles = [r["title"] for r in json.loads((realdata / "mep3m/annotations-1k.json").read_text())]
    rows = [caption_row(f"mep3m:{i}", t) for i, t in enumerate(titles)]
    assert all(r["status"] == "ok" and r["lang"] == "zh" and r["tokens"] for r in rows)
    assert not any("（" in r["text"] or "）" in r["text"] for r in rows)  # NFKC: full-width parentheses folded
    first = rows[0]
    assert titles[0] == "【安满孕妈奶粉】安满（Anmum）智孕宝 孕妇配方奶粉800克（新西兰原装进口）"
    assert first["text"] == "【安满孕妈奶粉】安满(Anmum)智孕宝 孕妇配方奶粉800克(新西兰原装进口)"
    assert first["tokens"][:3] == ["安满", "孕妈", "奶粉"] and "Anmum" in first["tokens"] and "800" in first["tokens"]
    assert first["n_chars"] == len(first["text"])
    # segmentation is stable across the set: tokens re-join to the text without spaces and punctuation
    for r in rows[:200]:
        joined = "".join(r["tokens"])
        assert all(ch in r["text"] for ch in joined) and len(joined) >= 0.6 * len(r["text"].replace(" ", ""))


def test_html_entities_tags_emoji_and_whitespace():
    raw = ("<p>🔥<b>爆款</b>&nbsp;&amp;amp; 新品&#x3000;ＬＥＤ台灯</p>\u200b ★护眼★ ❤️<!-- tracking -->\t"
           "&lt;限时&gt;   ")
    assert clean_caption(raw) == "爆款 & 新品 LED台灯 护眼 <限时>"
    assert clean_caption("a < b and c > d") == "a < b and c > d"  # not tags: kept
    assert clean_caption("   ") == "" and clean_caption(None) == ""


def test_length_limit_and_empty_caption():
    long = "超长标题" * 200
    assert len(clean_caption(long, max_chars=50)) == 50
    row = caption_row("shopa:1", "🔥🔥 ")
    assert row == {"product_id": "shopa:1", "text": "", "tokens": [], "n_chars": 0, "lang": "und", "status": "empty"}


def test_english_titles_pass_through():
    title = "Instant Pot Duo 7-in-1 Electric Pressure Cooker, 6 Quart &amp; Steamer"
    row = caption_row("amazon:1", title)
    assert row["text"] == "Instant Pot Duo 7-in-1 Electric Pressure Cooker, 6 Quart & Steamer"
    assert row["lang"] == "en"
    assert row["tokens"] == ["Instant", "Pot", "Duo", "7", "in", "1", "Electric", "Pressure", "Cooker", "6", "Quart",
                             "Steamer"]
    assert language("12345") == "und" and language("Anmum 奶粉") == "zh"


def test_user_dictionary_keeps_brand_names_whole(tmp_path):
    title = "佳贝艾特（Kabrita）孕产妇哺乳期 成人奶粉 美素佳儿妈妈粉"
    plain = tokenize(clean_caption(title))
    assert "佳贝艾特" not in plain and "美素佳儿" not in plain  # jieba's own dictionary splits them
    words = tmp_path / "brands.txt"
    words.write_text("佳贝艾特 1000 nz\n美素佳儿\n", encoding="utf-8")
    tokens = tokenize(clean_caption(title), str(words))
    assert tokens[0] == "佳贝艾特" and "美素佳儿" in tokens and "Kabrita" in tokens
    assert tokenize(clean_caption(title)) == plain  # the default tokenizer is left untouched


@pytest.mark.parametrize("strip, expected", [(False, "【包邮】 纯棉T恤 〖官方〗"), (True, "纯棉T恤")])
def test_marketing_brackets_kept_or_stripped(strip, expected):
    assert clean_caption("【包邮】 纯棉Ｔ恤 〖官方〗", strip_brackets=strip) == expected
