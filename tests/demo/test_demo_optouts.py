"""The demo shop's opt-outs and licences (WorldConfig.optouts, m5data/demo/optouts.py): a crawl and a
download of it honour each kind as its truth says; without the field the world is unchanged."""

import json

import pytest

from m5data.config import load
from m5data.crawler.crawl import run as crawl
from m5data.demo.entities import WorldConfig
from m5data.demo.generate import generate
from m5data.demo.server import serve_in_thread
from m5data.download.run import run as download


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = generate(tmp_path_factory.mktemp("optout_shop"), workers=1,
                   config=WorldConfig(products=30, seed=3, video_rate=0.0, optouts=True))
    return out, json.loads((out / "truth" / "optouts.json").read_text())


def test_truth_names_every_kind(shop):
    _, truth = shop
    kinds = {v["kind"] for v in truth["pages"].values()}
    assert kinds == {"x-robots-tag", "tdm-header", "tdm-meta", "tdmrep.json", "other-agent"}
    assert truth["media"] and truth["licensed"]
    manifest = json.loads((shop[0] / "truth" / "manifest.json").read_text())
    assert manifest["config"]["optouts"] is True


def test_crawl_and_download_honour_the_demo_shops_optouts(shop, store):
    out, truth = shop
    settings = load(overrides={"crawl.allow_private": True, "download.allow_private": True, "download.retries": 0},
                    environ={})
    with serve_in_thread(out) as running:
        stats = crawl(store, settings, start_urls=[running.url + "/"])
        download(store, settings)
    stored = {r["product_id"] for r in store.read("products").to_pylist()}
    pages = {r["product_id"]: r["source"] for r in store.read("optouts").to_pylist() if r["scope"] == "page"}
    opted = {pid: v["kind"] for pid, v in truth["pages"].items() if v["opted_out"]}
    assert pages == opted and not set(opted) & stored
    assert {pid for pid, v in truth["pages"].items() if not v["opted_out"]} <= stored  # another agent's: stored
    assert stats.details["optouts"] == {"page": len(opted)}
    media = {r["url"].removeprefix(running.url): r["status"] for r in store.read("media").to_pylist()}
    assert all(media[url] == "opted_out" for url in truth["media"])
    licences = {r["product_id"]: r["license"] for r in store.read("licenses").to_pylist()}
    assert licences == truth["licensed"]


def test_without_the_field_the_manifest_does_not_name_it(tmp_path):
    out = generate(tmp_path / "plain", workers=1, config=WorldConfig(products=12, seed=3, video_rate=0.0,
                                                                     force_faults=False))
    assert "optouts" not in json.loads((out / "truth" / "manifest.json").read_text())["config"]
    assert not (out / "truth" / "optouts.json").exists() and not (out / "site" / ".well-known").exists()
