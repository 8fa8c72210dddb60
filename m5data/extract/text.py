"""Captions: clean a product title and segment it with jieba.

Cleaning, in order (each step documented in docs/extract.md):

1. HTML entities decoded (repeatedly, for double-escaped ``&amp;amp;``) and HTML tags/comments removed;
2. Unicode NFKC: full-width ASCII and punctuation become half-width (``（Anmum）`` -> ``(Anmum)``,
   ``８００`` -> ``800``), the ideographic space becomes a space;
3. control and format characters (zero-width joiners, BOM, bidi marks) removed;
4. emoji and pictographs (``🔥``, ``❤``, ``★``, flags, keycaps) removed;
5. marketing brackets ``【...】`` / ``〖...〗`` kept by default (they often name the brand or the
   product line), removed with ``text.strip_brackets = true``;
6. runs of whitespace collapsed to one space, ends trimmed;
7. cut to ``text.max_caption_chars`` characters.

Tokens: ``jieba.lcut`` (accurate mode, HMM on) of the cleaned text, dropping tokens that are only
whitespace, punctuation or symbols. Latin words and numbers pass through as their own tokens, so
English titles work unchanged. A user dictionary (``text.jieba_user_dict``, jieba's format:
``word [freq] [tag]`` per line) keeps brand names in one piece.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>", re.S)
_EMOJI = re.compile(
    "["
    "\U0001F000-\U0001FAFF"  # mahjong .. symbols and pictographs extended-A (emoji proper, flags)
    "\u2600-\u27BF"  # miscellaneous symbols and dingbats (★ ☆ ❤ ✔ ✨)
    "\u2B00-\u2BFF"  # arrows and stars used as decoration (⭐ ⬆)
    "\uFE0E\uFE0F\u20E3"  # variation selectors, combining keycap
    "\U000E0020-\U000E007F"  # tag characters (subdivision flags)
    "]+"
)
_BRACKETS = re.compile(r"【[^【】]*】|〖[^〖〗]*〗")
_SPACE = re.compile(r"\s+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_LATIN = re.compile(r"[A-Za-z]")

_tokenizers: dict[str, object] = {}  # user dictionary path ("" = none) -> jieba tokenizer


def clean_caption(title: str | None, *, strip_brackets: bool = False, max_chars: int = 512) -> str:
    """The cleaned caption ("" when nothing usable is left)."""
    if not title:
        return ""
    text = title
    for _ in range(3):  # double-escaped entities: &amp;lt;b&amp;gt;
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    # line/paragraph breaks and control characters become spaces; format characters (ZWJ, BOM) vanish
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in text if unicodedata.category(ch) != "Cf")
    text = _EMOJI.sub(" ", text)
    if strip_brackets:
        text = _BRACKETS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rstrip()
    return text


def language(text: str) -> str:
    """``zh`` when the text has Han characters, ``en`` when it has Latin letters only, else ``und``."""
    if _HAN.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return "und"


def tokenizer(user_dict: str = ""):
    """jieba's default tokenizer, or (with a user dictionary) a private one, so the words added
    for extract never change segmentation elsewhere in the process (e.g. simtext in align)."""
    tok = _tokenizers.get(user_dict)
    if tok is None:
        import jieba

        jieba.setLogLevel(60)  # its "Building prefix dict" chatter goes to stderr otherwise
        if user_dict:
            tok = jieba.Tokenizer()
            tok.load_userdict(user_dict)
        else:
            tok = jieba.dt
        _tokenizers[user_dict] = tok
    return tok


def _is_noise(token: str) -> bool:
    return all(ch.isspace() or unicodedata.category(ch)[0] in "PSZ" for ch in token)


def tokenize(text: str, user_dict: str = "") -> list[str]:
    """jieba tokens of a cleaned caption, without whitespace, punctuation or symbol tokens."""
    return [tok for tok in tokenizer(user_dict).lcut(text) if not _is_noise(tok)]


def caption_row(product_id: str, title: str | None, *, strip_brackets: bool = False, max_chars: int = 512,
                user_dict: str = "") -> dict:
    """One ``captions`` row (without ``updated_at``): status ``ok``, or ``empty`` when no text is left."""
    text = clean_caption(title, strip_brackets=strip_brackets, max_chars=max_chars)
    if not text:
        return {"product_id": product_id, "text": "", "tokens": [], "n_chars": 0, "lang": "und", "status": "empty"}
    return {"product_id": product_id, "text": text, "tokens": tokenize(text, user_dict), "n_chars": len(text),
            "lang": language(text), "status": "ok"}
