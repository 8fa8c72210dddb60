"""The report is safe to write from a store or a run folder someone else made.

Stored XSS: every text field the page shows carries script payloads; in headless Chromium none runs
and each is shown as literal text. The output folder: the report writes only into a new or empty
folder or one it wrote before, and never deletes what it did not write. Blob paths: a media row
whose path leads outside the store's blob areas is skipped and counted, nothing outside is copied.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timezone
from xml.etree import ElementTree

import pytest
from support.store_samples import file_hashes
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.report.build import ReportError, build
from m5data.storage import Store

TITLE = "m5data dataset report"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
# a small real JPEG (1x1): the gallery's images are files, Chromium must decode them
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a"
    "1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f"
    "0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203"
    "00041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a343536373839"
    "3a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4"
    "a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    "ffda0008010100003f00fbd3ffd9")


def payload(field: str) -> str:
    """Every injection shape at once, tagged with the field: any that runs records ``field`` in window.__xss.

    It starts with ``<span`` because the page once passed any cell starting so through unescaped.
    """
    hit = f"(window.__xss=window.__xss||[]).push('{field}');document.title='pwned {field}'"
    return (f'<span><img src=x onerror="{hit}"></span> <script>{hit}</script> "><svg onload="{hit}"> '
            f"'><img src=x onerror=\"{hit}\"> </script><script>{hit}</script> "
            f'<span onmouseover="{hit}">{field}</span> $\\undefinedmacro{{x}}$ [bold]{field}[/]')


def _settings(store):
    return load(None, {"store.path": str(store.root)}, environ={})


def _image(store, name: str, data: bytes = JPEG) -> str:
    rel = f"blobs/ab/{name}"
    (store.local_root() / "blobs" / "ab").mkdir(parents=True, exist_ok=True)
    (store.local_root() / rel).write_bytes(data)
    return rel


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A store whose every shown text field is a payload, a review file and a metrics.json likewise."""
    root = tmp_path_factory.mktemp("hostile")
    store = Store.init(root / "store")
    P = payload
    platform, cats = P("platform"), [P("category level 1"), P("category level 2"), P("category level 3")]
    ids = [P("product_id"), "shop:2", "shop:3"]
    store.write("products", [
        {"product_id": pid, "platform": platform, "source_id": str(k), "merchant_id": P("merchant"),
         "title": P("title") if k == 0 else f"caption {k}", "category_path": cats, "crawled_at": NOW}
        for k, pid in enumerate(ids)])
    store.write("specs", [{"product_id": pid, "position": 0, "property": P("spec property"), "value": P("spec value")}
                          for pid in ids])
    store.write("label_map", [{"platform": platform, "raw_path": " > ".join(cats), "raw_level1": cats[0],
                               "class_id": 1, "sub_class_id": 2, "subsub_class_id": 3, "method": P("label_map method")}])
    store.write("taxonomy", [{"level": lv, "label_id": lv, "name": P(f"taxonomy level {lv}")} for lv in (1, 2, 3)])
    # the main image's blob name carries an attribute breakout in its extension
    evil_name = "img.jpg\" onerror=\"(window.__xss=window.__xss||[]).push('blob suffix')\" x=\"y"
    media = [{"media_id": f"m{k}", "product_id": pid, "kind": "image", "role": "main", "position": 0,
              "blob": _image(store, evil_name if k == 0 else f"img{k}.jpg"), "status": "ok", "quality_tier": 1}
             for k, pid in enumerate(ids)]
    frames = store.local_root() / "derived" / "frames" / "f0"
    frames.mkdir(parents=True)
    for i in range(4):
        (frames / f"{i:03d}.jpg").write_bytes(JPEG)
    media.append({"media_id": "f0", "product_id": ids[0], "kind": "frames", "role": "derived", "position": 0,
                  "blob": "derived/frames/f0", "status": "ok"})
    media.append({"media_id": "bad", "product_id": ids[1], "kind": P("media kind"), "status": P("media status"),
                  "error": P("error reason")})
    store.write("media", media)
    store.write("caption_match", [{"product_id": pid, "score": 0.5, "level": P("match level")} for pid in ids])
    store.write("dedup", [{"product_id": pid, "group_id": ids[0], "rule": P("dedup rule")} for pid in ids])
    # a version is current only when its name is a plain name (splits/versions.py): the report shows the
    # current one, so the payload version sits beside a plain v1 whose split names are the payload
    store.write("splits", [{"product_id": pid, "split": P("split name"), "version": "v1"} for pid in ids])
    store.write("splits", [{"product_id": pid, "split": "train", "version": P("split version")} for pid in ids])
    review = store.local_root() / "derived" / "align" / "review.csv"
    review.parent.mkdir(parents=True)
    cols = ["class_name", "platform_a", "sub_class_a", "platform_b", "sub_class_b", "s_label", "s_content", "final"]
    with review.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        writer.writerow({c: P(f"review {c}") for c in cols} | {"final": "merge"})
        writer.writerow({c: P(f"review {c} borderline") for c in cols})
    table_run, flat_run = root / "run-table", root / "run-flat"
    table_run.mkdir()
    flat_run.mkdir()
    (table_run / "metrics.json").write_text(json.dumps({
        "columns": ["model", "modalities", P("metric column"), "accuracy"],
        "rows": [{"model": P("metric row model"), "modalities": P("metric row modalities"),
                  P("metric column"): P("metric value"), "accuracy": 0.5}]}))
    (flat_run / "metrics.json").write_text(json.dumps({P("flat metric key"): P("flat metric value")}))
    return store, table_run, flat_run


SHOWN = ["platform", "title", "product_id", "category level 1", "category level 2", "category level 3",
         "spec property", "spec value", "taxonomy level 1", "taxonomy level 2", "taxonomy level 3",
         "label_map method", "media kind", "media status", "match level", "dedup rule", "split name",
         *[f"review {c}" for c in ("class_name", "platform_a", "sub_class_a", "platform_b",
                                                     "sub_class_b", "s_label", "s_content")], "review final borderline",
         "metric column", "metric row model", "metric row modalities", "metric value"]


def _load(index) -> dict:
    """Open the page in headless Chromium: what ran, the title, the text, attributes and elements that could run."""
    from support.browser import chromium_page

    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(index.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # an onerror of a missing image fires after load
        # a mouseover or click handler, if any survived, runs now
        page.evaluate("""() => document.querySelectorAll('body *').forEach(e => ['mouseover', 'click'].forEach(
            t => e.dispatchEvent(new MouseEvent(t, {bubbles: true, cancelable: true}))))""")
        return page.evaluate("""() => ({
            xss: window.__xss || [], title: document.title, text: document.body.innerText,
            handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].filter(a => a.name.startsWith('on'))
                        .map(a => e.tagName + ' ' + a.name)),
            scripts: document.querySelectorAll('script, svg, iframe, object, embed').length,
            images: [...document.images].map(i => i.getAttribute('src')),
        })""") | {"errors": errors}


def _assert_inert(seen: dict, shown: list[str]) -> None:
    assert seen["xss"] == [] and seen["title"] == TITLE and not seen["errors"], (seen["xss"], seen["title"], seen["errors"])
    assert seen["handlers"] == [] and seen["scripts"] == 0
    assert all(src.startswith(("figures/", "assets/")) and '"' not in src and " " not in src for src in seen["images"])
    text = " ".join(seen["text"].split())
    missing = [field for field in shown if " ".join(payload(field).split()) not in text]
    assert not missing, f"not shown literally: {missing}"


def test_no_payload_in_any_store_field_runs_and_each_is_shown_as_text(hostile, tmp_path):
    store, table_run, _ = hostile
    result = build(store, _settings(store), out=tmp_path / "r", train_run=table_run)
    assert "gallery" not in result.empty_sections and "training" not in result.empty_sections
    _assert_inert(_load(result.index), SHOWN)


def test_flat_metrics_json_is_shown_as_text(hostile, tmp_path):
    store, _, flat_run = hostile
    result = build(store, _settings(store), out=tmp_path / "r", train_run=flat_run)
    _assert_inert(_load(result.index), ["flat metric key", "flat metric value"])


def test_chart_labels_with_markup_and_math_stay_text(hostile, tmp_path):
    """Failure reasons and match levels are drawn as chart labels: the SVG holds them escaped, never as markup."""
    store, _, _ = hostile
    result = build(store, _settings(store), out=tmp_path / "r")
    assert {"media_failures.svg", "match_levels.svg"} <= set(result.figures)
    for name in result.figures:
        svg = ElementTree.parse(tmp_path / "r" / "figures" / name)  # well-formed: the labels did not break out
        tags = {e.tag.rsplit("}", 1)[-1] for e in svg.iter()}
        handlers = [a for e in svg.iter() for a in e.attrib if a.lower().startswith("on")]
        assert not tags & {"script", "foreignObject", "img", "iframe"} and not handlers, (name, tags, handlers)


def test_store_folder_name_is_escaped_in_the_subtitle(tmp_path):
    name = "s<img src=x onerror=\"document.title='pwned root'\">"
    store = Store.init(tmp_path / name)
    result = build(store, _settings(store), out=tmp_path / "r")
    seen = _load(result.index)
    _assert_inert(seen, [])
    assert name in seen["text"]


# ---------------------------------------------------------------------------------------------- the output folder

def _empty_store(tmp_path):
    store = Store.init(tmp_path / "store")
    return store, _settings(store)


def _unrelated(folder):
    (folder / "figures").mkdir(parents=True)
    (folder / "assets").mkdir()
    (folder / "figures" / "plot.svg").write_text("<svg>mine</svg>")
    (folder / "assets" / "photo.jpg").write_bytes(JPEG)
    (folder / "notes.txt").write_text("keep me")


def test_a_non_empty_unrelated_folder_is_refused_and_left_intact(tmp_path):
    store, settings = _empty_store(tmp_path)
    folder = tmp_path / "mine"
    _unrelated(folder)
    before = file_hashes(folder)
    with pytest.raises(ReportError, match="not empty and was not written by m5data report"):
        build(store, settings, out=folder)
    assert file_hashes(folder) == before
    result = CliRunner().invoke(app, ["--store", str(store.root), "report", "--out", str(folder)])
    assert result.exit_code != 0 and "not written by m5data report" in result.output
    assert file_hashes(folder) == before


def test_rerunning_into_its_own_output_replaces_it(tmp_path):
    store, settings = _empty_store(tmp_path)
    out = tmp_path / "r"
    first = build(store, settings, out=out)
    (out / "figures" / "stale.svg").write_text("<svg/>")  # as if an earlier run drew a figure this one does not
    marker = json.loads((out / ".m5data-report.json").read_text())
    marker["files"].append("figures/stale.svg")
    (out / ".m5data-report.json").write_text(json.dumps(marker))
    second = build(store, settings, out=out)
    assert second.index == first.index and second.index.is_file()
    assert not (out / "figures" / "stale.svg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "store"]  # no temp folder left beside


def test_an_empty_existing_folder_is_used(tmp_path):
    store, settings = _empty_store(tmp_path)
    (tmp_path / "r").mkdir()
    assert build(store, settings, out=tmp_path / "r").index.is_file()


def test_a_file_added_to_a_report_folder_is_not_deleted(tmp_path):
    store, settings = _empty_store(tmp_path)
    out = tmp_path / "r"
    build(store, settings, out=out)
    (out / "assets" / "my-notes.txt").write_text("mine")
    before = file_hashes(out)
    with pytest.raises(ReportError, match="my-notes.txt"):
        build(store, settings, out=out)
    assert file_hashes(out) == before


def test_out_dot_inside_the_store_is_refused(tmp_path, monkeypatch):
    store, _ = _empty_store(tmp_path)
    before = _data_hashes(store.root)
    monkeypatch.chdir(store.root)
    result = CliRunner().invoke(app, ["--store", str(store.root), "report", "--out", "."])
    assert result.exit_code != 0 and "inside the store" in result.output
    assert _data_hashes(store.root) == before


def test_out_dot_above_a_store_named_assets_is_refused(tmp_path, monkeypatch):
    """The reported wipe: cwd holds a store named ``assets``; ``--out .`` used to rmtree ./assets."""
    store = Store.init(tmp_path / "work" / "assets")
    store.write("products", [{"product_id": "shop:1", "platform": "shop", "title": "t", "crawled_at": NOW}])
    before = _data_hashes(store.root)
    monkeypatch.chdir(tmp_path / "work")
    result = CliRunner().invoke(app, ["--store", "assets", "report", "--out", "."])
    assert result.exit_code != 0 and "holds the store" in result.output
    assert _data_hashes(store.root) == before


def _data_hashes(root) -> dict:
    """The store's files but its locks (the report holds its stage lock: ``locks/`` gets its lock files)."""
    return {k: v for k, v in file_hashes(root).items() if not k.startswith("locks")}


def test_an_out_folder_that_holds_the_working_directory_is_refused(tmp_path, monkeypatch):
    store, settings = _empty_store(tmp_path)
    (tmp_path / "r").mkdir()
    monkeypatch.chdir(tmp_path / "r")
    with pytest.raises(ReportError, match="current directory"):
        build(store, settings, out=".")
    assert list((tmp_path / "r").iterdir()) == []


# ---------------------------------------------------------------------------------------------- blob paths

def test_blob_paths_outside_the_store_are_skipped_and_counted(tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG + b"SECRET-OUTSIDE-THE-STORE")
    (tmp_path / "outside-frames").mkdir()
    (tmp_path / "outside-frames" / "000.jpg").write_bytes(JPEG + b"SECRET-FRAME")
    store = Store.init(tmp_path / "store")
    (store.local_root() / "blobs" / "ab").mkdir(parents=True, exist_ok=True)
    os.symlink(secret, store.local_root() / "blobs" / "ab" / "link.jpg")
    (store.local_root() / "derived" / "frames" / "in").mkdir(parents=True)
    os.symlink(tmp_path / "outside-frames" / "000.jpg", store.local_root() / "derived" / "frames" / "in" / "000.jpg")
    bad = {"shop:1": str(secret), "shop:2": "../secret.jpg", "shop:3": "blobs/ab/link.jpg"}
    store.write("products", [{"product_id": pid, "platform": "shop", "title": f"caption {pid}", "category_path": ["a", "b"],
                              "crawled_at": NOW} for pid in [*bad, "shop:4"]])
    media = [{"media_id": f"i{pid}", "product_id": pid, "kind": "image", "role": "main", "position": 0, "blob": rel,
              "status": "ok"} for pid, rel in bad.items()]
    media.append({"media_id": "i4", "product_id": "shop:4", "kind": "image", "role": "main", "position": 0,
                  "blob": _image(store, "good.jpg"), "status": "ok"})
    media.append({"media_id": "f1", "product_id": "shop:1", "kind": "frames", "position": 0, "status": "ok",
                  "blob": "../outside-frames"})
    media.append({"media_id": "f4", "product_id": "shop:4", "kind": "frames", "position": 0, "status": "ok",
                  "blob": "derived/frames/in"})
    store.write("media", media)
    settings = load(None, {"store.path": str(store.root), "report.samples_per_category": 5}, environ={})
    result = build(store, settings, out=tmp_path / "r")
    assert "gallery" not in result.empty_sections
    copied = [p.read_bytes() for p in (tmp_path / "r" / "assets").iterdir()]
    assert copied == [JPEG]  # the one good image; nothing from outside
    assert result.stats.failures["blob path outside the store"] == 5  # 3 images, 1 frames folder, 1 frame file
    html = result.index.read_text(encoding="utf-8")
    assert "5 media paths outside the store" in html
    assert all(pid in html for pid in bad)  # the products still show, without their image


# ---------------------------------------------------------------------------------------------- the page's markup type

def test_a_cell_that_looks_like_markup_is_text():
    """The old pass-through: any cell starting with '<span' went into the page as is."""
    from m5data.report.page import n, table

    page = table(["a", "b"], [["<span onmouseover=x>hi</span>", n("k", 3)]])
    assert "<span onmouseover" not in page and "&lt;span onmouseover=x&gt;hi&lt;/span&gt;" in page
    assert '<span class="n" data-key="k" data-value="3">3</span>' in page  # the page's own span stays markup


def test_plain_strings_joined_to_markup_are_escaped():
    from m5data.report.page import Html, html, join

    made = html("<p>{}</p>", '"><b>x</b>')
    assert made == "<p>&quot;&gt;&lt;b&gt;x&lt;/b&gt;</p>" and isinstance(made, Html)
    assert "<i>" + made == "&lt;i&gt;" + str(made) and made + "<i>" == str(made) + "&lt;i&gt;"
    assert join(["<a>", made], "<br>") == "&lt;a&gt;&lt;br&gt;" + str(made)


def test_only_the_page_module_makes_markup():
    """Html(...) is called only in page.py: every other module builds markup through its builders."""
    from pathlib import Path

    import m5data.report

    folder = Path(m5data.report.__file__).parent
    makers = [p.name for p in folder.glob("*.py") if p.name != "page.py" and "Html(" in p.read_text(encoding="utf-8")]
    assert makers == []
