"""Charset of CJK pages: meta charsets deep in <head>, strict CJK decoding over single-byte guesses."""

import pytest

from m5data.crawler.charset import cjk_guess, declared_encoding, detect_encoding, meta_charset

ZH = "美的(Midea) 1.5匹 变频冷暖 空调挂机 新一级能效，静音省电，品牌：美的，型号：KFR-35GW"
ZH_TW = "華碩 ASUS 筆記型電腦 輕薄 效能強 品牌：華碩 型號：UX425 顏色：灰色 重量：一公斤"


def long_head_page(text: str, charset: str, padding: int = 160_000) -> str:
    """A page whose <meta charset> sits past ``padding`` bytes of inline script in <head>."""
    script = "<script>var cfg = {" + ",".join(f"k{i}: {i}" for i in range(padding // 10)) + "};</script>\n"
    return (f"<!DOCTYPE html><html><head>{script}<meta charset=\"{charset}\"><title>{text}</title></head>"
            f"<body><h1>{text}</h1><p>{text}</p></body></html>")


def test_meta_charset_found_anywhere_in_head_but_not_in_body():
    body = long_head_page(ZH, "gbk").encode("gbk")
    assert body.index(b"<meta charset") > 150_000
    assert meta_charset(body) == "gbk"
    assert declared_encoding(None, body) == "gbk"
    assert declared_encoding("text/html; charset=utf-8", body) == "utf-8"  # the header wins
    assert meta_charset(b"<html><head></head><body><meta charset='big5'></body></html>") is None
    assert meta_charset(b'<head><meta http-equiv="Content-Type" content="text/html; charset=GB2312"></head>') == "GB2312"


@pytest.mark.parametrize("charset, text", [("gbk", ZH), ("gb18030", ZH + " 𠀀€"), ("big5", ZH_TW)])
def test_cjk_pages_with_a_late_meta_charset_decode_right(charset, text):
    body = long_head_page(text, charset).encode(charset)
    encoding = detect_encoding(body, declared_encoding(None, body))
    assert body.decode(encoding) == long_head_page(text, charset)


@pytest.mark.parametrize("charset, text", [("gbk", ZH), ("gb18030", ZH + " 𠀀"), ("big5", ZH_TW)])
def test_cjk_bytes_without_any_declaration_beat_single_byte_guesses(charset, text):
    # mostly ASCII (a long script) with a little Chinese: byte detectors lean to a Latin charset
    page = long_head_page(text, charset, padding=40_000).replace(f'<meta charset="{charset}">', "")
    body = page.encode(charset)
    encoding = detect_encoding(body, None)
    assert body.decode(encoding) == page


def test_declared_label_too_narrow_for_its_bytes_uses_its_family():
    body = long_head_page(ZH + " 𠀀", "gb2312", padding=1000).encode("gb18030")  # GB18030-only characters
    assert detect_encoding(body, "gb2312") == "gb18030"


def test_latin_text_is_not_taken_for_cjk():
    for text in ("Größe und Gewicht: schön, übergroß", "Café crème brûlée à la française, très élégant"):
        body = f"<html><body><p>{text}</p></body></html>".encode("cp1252")
        assert cjk_guess(body) is None
        assert detect_encoding(body, "cp1252") == "cp1252"
