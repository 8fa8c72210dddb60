"""The demo shop: generated world, truth, and the served site (real server on 127.0.0.1)."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import pytest

from m5data.demo.text import normalize

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def fetch(url: str, headers: dict | None = None, method: str = "GET", timeout: float = 10):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def decode_page(body: bytes) -> str:
    """What a careful crawler does: strict utf-8 first, else GB18030 (a superset of GBK)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030")


def extract(platform: str, html_text: str) -> dict:
    """A reference extraction of one product page, as the crawler should do it."""
    import lxml.html

    doc = lxml.html.fromstring(html_text)
    text = lambda nodes: normalize(" ".join(n.text_content() for n in nodes))  # noqa: E731
    title_of = lambda nodes: " ".join(" ".join(n.text_content() for n in nodes).split())  # noqa: E731
    if platform == "shopa":
        title = title_of(doc.xpath("//h1"))
        crumbs = [normalize(a.text_content()) for a in doc.xpath('//*[@id="J_Breadcrumb"]/a')][1:]
        specs = [(text([r.xpath("th")[0]]), text([r.xpath("td")[0]]))
                 for r in doc.xpath('//table[@class="tm-tableAttr"]//tr[td and th]')]
        specs += [(text([dt]), text([dt.getnext()])) for dt in doc.xpath('//dl[@class="tb-attrs"]/dt')]
        script = " ".join(s.text or "" for s in doc.xpath("//script"))
        setup = json.loads(re.search(r"TShop\.Setup\((\{.*\})\);", script).group(1))
        images = setup["propertyPics"]["default"]
        video = setup.get("video", {}).get("videoUrl")
    else:
        title = title_of(doc.xpath('//div[@class="sku-name"]'))
        lds = [json.loads(s.text) for s in doc.xpath('//script[@type="application/ld+json"]')]
        product = next(ld for ld in lds if ld["@type"] == "Product")
        crumbs = [i["name"] for ld in lds if ld["@type"] == "BreadcrumbList"
                  for i in ld["itemListElement"]]
        specs = [tuple(normalize(li.text_content()).split(":", 1)) for li in
                 doc.xpath('//ul[@id="parameter-brand"]/li | //ul[contains(@class,"parameter2")]/li')]
        specs = [(k.strip(), v.strip()) for k, v in specs]
        images = product["image"]
        video = product.get("subjectOf", {}).get("contentUrl")
    return {"title": title, "crumbs": crumbs, "specs": specs, "images": images, "video": video}


# --- the world and its truth -------------------------------------------------------------------

def test_truth_covers_every_product(demo_shop):
    truth = demo_shop.truth
    ids = [r["product_id"] for r in truth.products]
    assert len(ids) == len(set(ids)) == truth.manifest["counts"]["products"] == 60
    for r in truth.products:
        assert r["product_id"] == f"{r['platform']}:{r['source_id']}"
        assert re.fullmatch(r"\d{11,12}", r["source_id"])
        assert r["url"] == f"/{r['platform']}/item/{r['source_id']}.html"
        assert (demo_shop.site_dir / r["url"].lstrip("/")).is_file()
        assert r["instance_id"] and r["class_id"] in range(1, 15) and r["sub_class_id"] > 0
    assert {r["product_id"] for r in truth.specs} <= set(ids)
    assert {r["product_id"] for r in truth.media} <= set(ids)
    per_instance = Counter(r["instance_id"] for r in truth.products)
    assert any(n > 1 for n in per_instance.values()), "duplicate listings exist"
    cross = [i for i in truth.instances if len({p.split(":")[0] for p in i["product_ids"]}) == 2]
    assert cross, "some instance is listed on both platforms"
    merchants = Counter((r["platform"], r["merchant_id"]) for r in truth.products)
    assert max(merchants.values()) <= 10
    assert not (demo_shop.site_dir / "truth").exists()


def test_titles_and_specs_look_real(demo_shop):
    truth = demo_shop.truth
    for r in truth.products:
        if r["page_fault"] != "missing_title":
            assert 20 <= len(r["title"]) <= 60
    n_specs = Counter(r["product_id"] for r in truth.specs)
    assert all(5 <= n <= 20 for n in n_specs.values())
    assert all(r["property"] == normalize(r["property"]) and r["value"] == normalize(r["value"])
               for r in truth.specs)
    assert {r["property"] for r in truth.specs if r["position"] == 0} == {"品牌"}


def test_truth_matches_pages(demo_shop):
    """Titles, breadcrumbs, spec pairs and media URLs of every page are what the truth says."""
    truth = demo_shop.truth
    specs = defaultdict(list)
    for r in truth.specs:
        specs[r["product_id"]].append((r["property"], r["value"]))
    media = defaultdict(list)
    for r in truth.media:
        media[r["product_id"]].append(r)
    for r in truth.products:
        body = (demo_shop.site_dir / r["url"].lstrip("/")).read_bytes()
        got = extract(r["platform"], decode_page(body))
        assert got["title"] == r["title"], r["product_id"]
        assert got["crumbs"] == r["category_path"], r["product_id"]
        assert got["specs"] == specs[r["product_id"]], r["product_id"]
        images = [m["url"] for m in sorted(media[r["product_id"]], key=lambda m: m["position"])
                  if m["kind"] == "image"]
        assert got["images"] == images
        videos = [m["url"] for m in media[r["product_id"]] if m["kind"] == "video"]
        assert ([got["video"]] if got["video"] else []) == videos


def test_wrong_charset_pages(demo_shop):
    truth = demo_shop.truth
    wrong = [r for r in truth.products if r["page_fault"] == "wrong_charset"]
    assert wrong
    for r in wrong:
        assert r["page_charset"] != r["page_encoding"]
        status, headers, body = fetch(demo_shop.url + r["url"])
        assert status == 200 and "charset" not in headers["Content-Type"]
        assert re.search(r'charset="?%s"' % r["page_charset"], body.decode("latin-1"))
        assert r["title"] in body.decode(r["page_encoding"])
        assert r["title"] not in body.decode(r["page_charset"], errors="replace")
    normal_b = next(r for r in truth.products if r["platform"] == "shopb" and r["page_fault"] == "none")
    status, headers, body = fetch(demo_shop.url + normal_b["url"])
    assert headers["Content-Type"] == "text/html; charset=gbk" and normal_b["title"] in body.decode("gbk")


def test_alignment_truth(demo_shop):
    truth = demo_shop.truth
    kinds = Counter(r["pair_kind"] for r in truth.level2_pairs)
    assert {"exact", "near", "different", "finer"} <= set(kinds)
    for r in truth.level2_pairs:
        ratio = difflib.SequenceMatcher(None, r["shopa_level2"], r["shopb_level2"]).ratio()
        assert abs(ratio - r["label_ratio"]) < 1e-3
        if r["pair_kind"] == "exact":
            assert r["shopa_level2"] == r["shopb_level2"]
        elif r["pair_kind"] == "near":
            assert 0.5 <= ratio < 0.99
        elif r["pair_kind"] == "different":
            assert ratio < 0.5
    finer = [r for r in truth.alignment if r["pair_kind"] == "finer"]
    assert any(r["level3_name"] and r["subsub_class_id"] >= 600 for r in finer)
    assert any(not r["level3_name"] for r in finer)
    rows = {(r["platform"], r["level1_name"], r["level2_name"], r["level3_name"]): r
            for r in truth.alignment}
    for p in truth.products:
        path = p["listing_path"] + [""] * (3 - len(p["listing_path"]))
        row = rows[(p["platform"], *path)]
        assert (row["class_id"], row["sub_class_id"]) == (p["class_id"], p["sub_class_id"])
    mapping = truth.level1_mapping
    for p in truth.products:
        assert mapping[p["platform"]][p["listing_path"][0]] == p["class_id"]
    assert any(mapping["shopa"].get(n) is None for n in mapping["shopb"])  # phrasings differ


def test_same_subclass_shares_title_vocabulary():
    """Title term frequencies: same unified sub-class across platforms beats different ones."""
    from m5data.demo.world import WorldConfig, build_world

    world = build_world(WorldConfig(products=300, seed=0))
    docs = defaultdict(Counter)
    for p in world.products:
        if not p.caption_mismatched:
            t = p.title
            docs[(p.platform, p.instance.sub.sub_id)].update(t[i:i + 2] for i in range(len(t) - 1))

    def cos(a: Counter, b: Counter) -> float:
        dot = sum(v * b[k] for k, v in a.items())
        return dot / ((sum(v * v for v in a.values()) * sum(v * v for v in b.values())) ** 0.5)

    both = [s for s in world.taxonomy.subs if ("shopa", s.sub_id) in docs and ("shopb", s.sub_id) in docs]
    same = [cos(docs[("shopa", s.sub_id)], docs[("shopb", s.sub_id)]) for s in both]
    other = [cos(docs[("shopa", s.sub_id)], docs[("shopb", t.sub_id)])
             for s in both for t in both if s.class_id == t.class_id and s is not t]
    assert sum(same) / len(same) > 2 * sum(other) / len(other)


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    from m5data.demo.generate import generate
    from m5data.demo.site import write_site
    from m5data.demo.world import WorldConfig, build_world

    a, b = generate(tmp_path / "a", products=10, seed=3), generate(tmp_path / "b", products=10, seed=3)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert any(str(f).endswith(".mp4") for f in files_a) and any(str(f).endswith(".jpg") for f in files_a)
    for f in files_a:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    write_site(build_world(WorldConfig(products=10, seed=4)), tmp_path / "c")
    other = {p.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("*.html")}
    assert other != {p.relative_to(a / "site") for p in (a / "site").rglob("*.html")}


# --- media ---------------------------------------------------------------------------------------

def ffprobe(path) -> dict | None:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_media_decode_exactly_as_planned(demo_shop):
    from PIL import Image

    truth = demo_shop.truth
    faults = Counter(r["fault"] for r in truth.media)
    assert {"dead_404", "corrupt_truncated", "corrupt_not_image", "corrupt_zero_bytes"} <= set(faults)
    for r in truth.media:
        path = demo_shop.site_dir / r["url"].lstrip("/")
        if r["fault"] == "dead_404":
            assert not path.exists()
            continue
        if r["kind"] == "image":
            ok = True
            try:
                with Image.open(path) as img:
                    img.load()
                    size = img.size
            except Exception:
                ok = False
            assert ok == r["decodable"], r
            if ok:
                assert size == (r["width"], r["height"])
        else:
            info = ffprobe(path)
            assert (info is not None) == r["decodable"], r
            if info:
                streams = {s["codec_type"]: s for s in info["streams"]}
                assert streams["video"]["codec_name"] == "h264"
                assert streams["video"]["r_frame_rate"] == "24/1"
                assert abs(float(streams["video"]["duration"]) - r["duration_s"]) < 0.05
                assert 3 <= r["duration_s"] <= 30
                assert ("audio" in streams) == r["has_audio"]
                if "audio" in streams:
                    assert streams["audio"]["codec_name"] == "aac"
    shortest = sorted((r for r in truth.media if r["kind"] == "video" and r["decodable"]),
                      key=lambda r: r["duration_s"])[:3]
    for r in shortest:  # a full decode, not just the container
        run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(demo_shop.site_dir / r["url"].lstrip("/")),
                              "-f", "null", "-"], capture_output=True, text=True)
        assert run.returncode == 0 and not run.stderr.strip()
    videos = [r for r in truth.media if r["kind"] == "video"]
    assert any(not r["has_audio"] for r in videos) or len(videos) < 30


def test_duplicate_listings_have_their_own_photos(demo_shop):
    truth = demo_shop.truth
    main = {r["product_id"]: r for r in truth.media if r["role"] == "main"}
    dup = next(i for i in truth.instances if sum(p in main for p in i["product_ids"]) > 1)
    shas = {main[p]["sha256"] for p in dup["product_ids"] if p in main}
    assert len(shas) == len([p for p in dup["product_ids"] if p in main])


# --- the served site -----------------------------------------------------------------------------

def test_robots_and_sitemap(demo_shop):
    status, headers, body = fetch(demo_shop.url + "/robots.txt")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for path in ("/cart", "/login", "/shopa/cart", "/shopb/login"):
        assert f"Disallow: {path}\n" in text
    assert f"Sitemap: {demo_shop.url}/sitemap.xml" in text
    index = ET.fromstring(fetch(demo_shop.url + "/sitemap.xml")[2])
    locs = [e.text for e in index.iter(SITEMAP_NS + "loc")]
    assert locs == [f"{demo_shop.url}/shopa/sitemap.xml", f"{demo_shop.url}/shopb/sitemap.xml"]
    listed = {e.text[len(demo_shop.url):] for loc in locs
              for e in ET.fromstring(fetch(loc)[2]).iter(SITEMAP_NS + "loc")}
    assert {r["url"] for r in demo_shop.truth.products} <= listed
    assert {r["url"] for r in demo_shop.truth.pages if r["kind"] == "listing"} <= listed


def test_pagination_reaches_every_product(demo_shop):
    """Following the index and 下一页 links reaches every product exactly through its category."""
    truth = demo_shop.truth
    found = defaultdict(set)
    multi = 0
    for platform in ("shopa", "shopb"):
        index = decode_page(fetch(f"{demo_shop.url}/{platform}/")[2])
        first_pages = re.findall(r'href="(/%s/list[^"]+)"' % platform, index)
        assert first_pages
        for url in first_pages:
            url = url.replace("&amp;", "&")
            pages = 0
            while url:
                status, _, body = fetch(demo_shop.url + url)
                if status == 500:  # a listing page that flakes once
                    status, _, body = fetch(demo_shop.url + url)
                assert status == 200, url
                html = decode_page(body)
                pages += 1
                found[platform] |= set(re.findall(r'href="(/%s/item/\d+\.html)"' % platform, html))
                nxt = re.search(r'class="(?:pn-next|ui-page-next)" href="([^"]+)"', html)
                url = nxt.group(1).replace("&amp;", "&") if nxt else None
            multi += pages > 1
    assert multi >= 2
    for platform in ("shopa", "shopb"):
        assert found[platform] == {r["url"] for r in truth.products if r["platform"] == platform}
    assert fetch(demo_shop.url + "/shopb/list.html?cat=1,2&page=99")[0] == 404
    some = next(r for r in truth.pages if r["kind"] == "listing" and r["platform"] == "shopb" and r["page"] == 2)
    assert "&page=2" in some["url"] and fetch(demo_shop.url + some["url"])[0] in (200, 500)


def test_range_requests_and_headers(demo_shop):
    video = next(r for r in demo_shop.truth.media
                 if r["kind"] == "video" and r["fault"] == "none" and r["bytes"] > 1000)
    url = demo_shop.url + video["url"]
    status, headers, body = fetch(url, method="HEAD")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert int(headers["Content-Length"]) == video["bytes"] and headers["Accept-Ranges"] == "bytes"
    etag = headers["ETag"]
    status, headers, body = fetch(url, {"Range": "bytes=100-199"})
    assert status == 206 and len(body) == 100
    assert headers["Content-Range"] == f"bytes 100-199/{video['bytes']}"
    full = (demo_shop.site_dir / video["url"].lstrip("/")).read_bytes()
    assert body == full[100:200]
    assert fetch(url, {"If-None-Match": etag})[0] == 304
    image = next(r for r in demo_shop.truth.media if r["kind"] == "image" and r["fault"] == "none")
    status, headers, body = fetch(demo_shop.url + image["url"])
    assert headers["Content-Type"] == f"image/{'png' if image['format'] == 'png' else 'jpeg'}"
    assert len(body) == image["bytes"]


def test_faulty_urls(demo_shop):
    truth = demo_shop.truth
    demo_shop.reset_faults()
    demo_shop.clear_requests()
    flaky = [r["url"] for r in truth.media if r["fault"] == "transient_500"]
    flaky += [r["url"] for r in truth.pages if r["http_fault"] == "transient_500"]
    assert any("/item/" in u for u in flaky) and any("/list" in u for u in flaky)
    for url in flaky:
        assert fetch(demo_shop.url + url)[0] == 500
        assert fetch(demo_shop.url + url)[0] == 200
    assert [s for _, _, s in demo_shop.requests] == [500, 200] * len(flaky)
    dead = next(r for r in truth.media if r["fault"] == "dead_404")
    assert fetch(demo_shop.url + dead["url"])[0] == 404
    slow = next(r for r in truth.media if r["fault"] == "slow")
    with pytest.raises(OSError):  # the delay is longer than this client waits
        urllib.request.urlopen(demo_shop.url + slow["url"], timeout=0.05).read()
    assert fetch(demo_shop.url + slow["url"])[0] == 200


def test_traps_and_bad_paths(demo_shop):
    page = (demo_shop.site_dir / demo_shop.truth.products[0]["url"].lstrip("/")).read_bytes().decode("latin-1")
    assert "http://ads.example.invalid/" in page and "/cart" in page and "/login" in page
    assert fetch(demo_shop.url + "/shopa/cart?add=1")[0] == 200  # served: only the log tells
    assert fetch(demo_shop.url + "/nope.html")[0] == 404
    assert fetch(demo_shop.url + "/shopa/../serve.json")[0] == 404
    assert fetch(demo_shop.url + "/shopa/item/1.html", method="POST")[0] == 405
    assert fetch(demo_shop.url + "/")[0] == 200
