"""Masking takes time linear in a value's length (issue 76, 8): a spec value of ``微信`` and 3,000
spaces took export and report 87-88 s each, three adjacent ``\\s*`` of the contact pattern trying
every split of the spaces. Run in a subprocess with a timeout the old pattern runs far past (cubic:
the 100,000 spaces below are ~10^13 steps), asserting completion and output, never a time."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

from m5data import masking
from m5data.masking import CONTACT, mask_text

ROOT = Path(__file__).resolve().parents[2]
SPACES = " " * 100_000

# ~200 KB of adversarial text around contacts that must still be masked
VALUE = ("微信" + SPACES + "。客服电话13812345678 邮箱 shop.owner@example.com QQ: 12345678 "
         + "微信号" + " " * 50_000 + "：" + " " * 50_000 + "wx_shop2020 下单 " + "微信 " * 1_000 + "型号WXR-2797")
EXPECTED = ("微信" + SPACES + "。客服电话[PHONE] 邮箱 [EMAIL] [CONTACT] "
            + "[CONTACT] 下单 " + "微信 " * 1_000 + "型号WXR-2797")

SCRIPT = """
import json, sys
from m5data.masking import mask_text
value = json.loads(sys.stdin.read())
print(json.dumps(mask_text(value)))
"""


def test_adversarial_value_masked_in_bounded_time():
    out = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(VALUE), capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True)
    text, n = json.loads(out.stdout)
    assert n == 4
    assert text == EXPECTED


def test_long_gaps_still_join_a_keyword_to_its_handle():
    for gap in (" " * 40, "号码 ", " 群 ： ", "号:", "  ：  ", "号 号 ", ""):
        assert mask_text(f"微信{gap}shop_8888")[0] == CONTACT, gap
    for gap in ("号 号 号 ", ":号", "：：", "群号码"):  # not the old gap either
        assert mask_text(f"微信{gap}shop_8888")[0] != CONTACT, gap


def test_rewritten_gap_masks_what_the_old_one_did():
    """The old contact pattern (three adjacent ``\\s*``, cubic) and today's find the same spans on
    every text of up to 7 pieces from keywords, gap pieces and handles (short: the old one is fast there)."""
    old = re.compile(masking._KEYWORD + r"\s*(?:号|号码|群)?\s*[:：]?\s*(?:[A-Za-z][-_A-Za-z0-9]{5,19}|\d{5,12})"
                     + masking._EDGE_R)
    pieces = ["微信", "微信号", "加", "V", "QQ", " ", "  ", "号", "码", "群", ":", "：", "ab", "shop_8888", "12345", "6"]
    rng = random.Random(76)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))
        assert [m.span() for m in masking._CONTACT.finditer(text)] == [m.span() for m in old.finditer(text)], text
