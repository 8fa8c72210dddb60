"""The compliance section kept as facts and totals (m5data/report/compliance_facts.py): after writes to
each table it reads, an incremental run draws the section a full run draws (and ``by_domain`` counts
from the tables), having made the facts of the touched products only."""

from __future__ import annotations

import re
from html import unescape

import pytest
from test_report_compliance import NOW, compliance_store

from m5data.config import load
from m5data.report import compliance, compliance_facts
from m5data.report.build import build


def _rows(result) -> list[list[str]]:
    page = result.index.read_text(encoding="utf-8")
    body = re.search(r'<section id="compliance">(.*?)</section>', page, re.S).group(1)
    return [[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "<td" in tr]


def _product(pid: str, url: str, title: str) -> dict:
    return {"product_id": pid, "platform": pid[0], "source_id": pid[2:], "url": url, "title": title, "crawled_at": NOW}


# each step: (table, rows) written before a run
STEPS = [
    ("products", [_product("c:1", "https://new.example.net/p/1", "电话 13912345678"),
                  _product("a:2", "https://m.shop.example.com/p/2", "口红 a@b.cn"),
                  _product("a:3", "https://other.example.org/p/3", "奶粉")]),
    ("licenses", [{"product_id": "a:2", "url": "u", "source": "schema.org", "license": "MIT", "seen_at": NOW},
                  {"product_id": "a:1", "url": "u", "source": "schema.org", "license": None, "seen_at": NOW}]),
    ("captions", [{"product_id": "a:1", "text": "QQ: 87654321", "status": "ok", "lang": "zh"},
                  {"product_id": "a:3", "text": "好物推荐 QQ: 12345678", "status": "empty", "lang": "zh"}]),
    ("specs", [{"product_id": "a:1", "position": 0, "property": "邮箱", "value": "q@example.com 13812345678"}]),
    ("faces", [{"blob": "derived/images/a3.jpg", "product_id": "a:3", "kind": "image_norm", "n_faces": 3},
               {"blob": "derived/images/a1.jpg", "product_id": "a:2", "kind": "image_norm", "n_faces": 1}]),
    ("optouts", [{"url": "https://new.example.net/p/1", "product_id": "c:1", "scope": "page", "source": "tdm-meta",
                  "directive": "tdm-reservation: 1", "seen_at": NOW}]),
    ("crawl_errors", [{"url": "https://new.example.net/p/2", "platform": "c", "reason": "x", "seen_at": NOW}]),
    ("takedowns", [{"kind": "product_id", "value": "a:1", "reason": None, "taken_at": NOW}]),
    # a product's licence, caption and specs written before the product itself
    ("licenses", [{"product_id": "d:1", "url": "u", "source": "schema.org", "license": "CC0", "seen_at": NOW}]),
    ("captions", [{"product_id": "d:1", "text": "wechat abc123", "status": "ok", "lang": "zh"}]),
    ("specs", [{"product_id": "d:1", "position": 0, "property": "手机", "value": "13712345678"}]),
    ("products", [_product("d:1", "https://new.example.net/p/d1", "灯")]),
]


@pytest.mark.parametrize("together", [False, True])
def test_the_section_moved_by_each_tables_writes_equals_a_full_run(tmp_path, monkeypatch, together):
    store = compliance_store(tmp_path / "store")
    settings = load(None, {"store.path": str(store.root)}, environ={})
    build(store, settings, out=tmp_path / "r")
    made = []
    real = compliance_facts.make_all
    monkeypatch.setattr(compliance_facts, "make_all", lambda *a: made.append(1) or real(*a))
    steps = [STEPS] if together else [[s] for s in STEPS]
    for i, step in enumerate(steps):
        made.clear()
        for table, rows in step:
            store.write(table, rows)
        again = build(store, settings, out=tmp_path / "r")
        assert not made, f"step {i}: every fact made again"
        full = build(store, settings, out=tmp_path / f"full{i}", full=True)
        assert _rows(again) == _rows(full), f"step {i}: {step[0][0]}"
        by = compliance.by_domain(store)
        assert [r[0] for r in _rows(again)] == list(by)
    rows = {r[0]: r for r in _rows(again)}
    assert rows["new.example.net"] == ["new.example.net", "3", "2", "1", "CC0 1, none stated 1", "0",
                                       "title 1, caption 1, specs 1", "0"]
    assert rows["shop.example.com"][5:] == ["0", "title 1, caption 1, specs 2", "1"]
