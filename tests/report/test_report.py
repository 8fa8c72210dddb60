"""The HTML report: every section present, figures drawn, the numbers beside them equal to SQL."""

import re
from html.parser import HTMLParser

import pytest
from support.demo_fixtures import copy_store
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.report.build import ReportError, build
from m5data.storage import Store
from m5data.storage.stats import MODALITY_SQL

SECTIONS = ["overview", "long-tail", "completeness", "distributions", "specs", "images", "failures",
            "match-levels", "duplicates", "alignment", "splits", "compliance", "training", "gallery"]


class _Page(HTMLParser):
    """Collects tagged numbers, section ids, image sources and text of a report page."""

    def __init__(self):
        super().__init__()
        self.numbers: dict[str, str] = {}
        self.sections: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and "data-key" in a:
            self.numbers[a["data-key"]] = a["data-value"]
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "img":
            self.images.append(a["src"])
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def demo_report(demo_store_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), root))
    # a caption with markup: the page must show it as text
    store.write("products", [{**store.read("products", where="product_id = (SELECT min(product_id) FROM products)").to_pylist()[0],
                              "title": "<script>alert('x')</script> 面霜 & <b>bold</b>"}])
    settings = load(None, {"store.path": str(store.root)}, environ={})
    result = build(store, settings, out=root / "report")
    return store, result


def test_every_section_is_present_and_figures_are_real_svg(demo_report):
    store, result = demo_report
    page = _parse(result.index)
    assert page.sections == SECTIONS
    assert page.scripts == 0  # no script at all: nothing to fail, nothing to fetch
    # a crawled, extracted, aligned store fills everything but the later stages' sections
    assert set(result.empty_sections) == {"match-levels", "duplicates", "splits", "training"}
    assert {"long_tail_level1.svg", "long_tail_level2.svg", "completeness_upset.svg", "video_duration.svg",
            "caption_length.svg", "merchant_products.svg", "image_tiers.svg"} <= set(result.figures)
    for name in result.figures:
        svg = (result.index.parent / "figures" / name).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and ("<path" in svg or "<rect" in svg)
    for src in page.images:  # every image is a local file beside the page
        assert not re.match(r"^[a-z]+://", src) and (result.index.parent / src).is_file()
    text = " ".join(page.text)
    for command in ("m5data annotate match-level", "m5data annotate dedup", "m5data build-splits"):
        assert command in text


def test_numbers_beside_the_charts_equal_sql(demo_report):
    store, result = demo_report
    numbers = _parse(result.index).numbers
    con = store.connect()
    try:
        def q(sql):
            return con.execute(sql).fetchone()[0]

        assert int(numbers["products"]) == q("SELECT count(*) FROM products")
        assert int(numbers["completeness.products"]) == q("SELECT count(*) FROM products")
        for name, src in [("image", "image"), ("caption", "caption"), ("table", "specs"), ("video", "video"), ("audio", "audio")]:
            assert int(numbers[f"completeness.{name}"]) == q(f"SELECT count(*) FROM products p WHERE {MODALITY_SQL[src]}")
        all_five = " AND ".join(f"({s})" for s in MODALITY_SQL.values())
        assert int(numbers["completeness.all_five"]) == q(f"SELECT count(*) FROM products p WHERE {all_five}")
        assert int(numbers["videos"]) == q("SELECT count(*) FROM media WHERE kind = 'video' AND status = 'ok' AND duration IS NOT NULL")
        assert int(numbers["merchants.count"]) == q("SELECT count(DISTINCT merchant_id) FROM products")
        assert int(numbers["long_tail.1.labels"]) == q("SELECT count(*) FROM taxonomy WHERE level = 1 AND label_id IN "
                                                       "(SELECT class_id FROM label_map)")
        top_property, rows = con.execute("SELECT property, count(*) FROM specs GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
        assert int(numbers[f"specs.rows.{top_property}"]) == rows
        for kind, status, n in con.execute("SELECT kind, status, count(*) FROM media GROUP BY 1, 2").fetchall():
            assert int(numbers[f"media.{kind}.{status}"]) == n
    finally:
        con.close()


def test_untrusted_caption_is_escaped(demo_report):
    _, result = demo_report
    html = result.index.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html


def test_filled_sections_with_curation_tables(demo_report, tmp_path):
    store, _ = demo_report
    ids = [r[0] for r in store.connect().execute("SELECT product_id FROM products ORDER BY 1 LIMIT 6").fetchall()]
    store2 = Store.open(copy_store(store.root, tmp_path))
    store2.write("dedup", [{"product_id": p, "group_id": ids[0] if k < 3 else p, "rule": "phash" if 0 < k < 3 else None}
                           for k, p in enumerate(ids)])
    store2.write("caption_match", [{"product_id": p, "score": 0.9, "level": "well" if k else "poor"} for k, p in enumerate(ids)])
    store2.write("splits", [{"product_id": p, "split": "train" if k < 5 else "query-c", "version": "v0"} for k, p in enumerate(ids)])
    store2.write("splits", [{"product_id": p, "split": "train" if k < 4 else "query-c", "version": "v1"} for k, p in enumerate(ids)])
    from m5data.storage import StageStats, record_run

    for started, added in ((2e9, 7), (1e9, 3)):  # the newest dedup run by its start is shown, whatever the write order
        record_run(store2, StageStats("dedup", started=started),
                   {"dedup_run": {"matcher": "learned m1", "pairs": {"matcher": added}, "groups": 4, "groups_rules": 2}})
    settings = load(None, {"store.path": str(store2.root)}, environ={})
    result = build(store2, settings, out=tmp_path / "r")
    numbers = _parse(result.index).numbers
    assert numbers["dedup.matcher.added"] == "7" and numbers["dedup.matcher.groups_rules"] == "2"
    assert set(result.empty_sections) == {"training"}
    assert numbers["dedup.groups"] == "1" and numbers["dedup.grouped"] == "3" and numbers["dedup.rule.phash"] == "2"
    assert numbers["match_level.well"] == "5" and numbers["match_level.poor"] == "1"
    assert numbers["split.train"] == "4" and numbers["split.query-c"] == "2"  # the newest version's only
    assert "<code>v1</code>" in result.index.read_text(encoding="utf-8")


def test_splits_section_shows_the_newest_version_by_its_number_read_from_its_parts_only(demo_report, tmp_path):
    """v10 is newer than v9 (as build-splits counts them), a version written twice shows its newest
    write, and the rows read from the version's own parts equal those of the view's window."""
    from m5data.report import splits_data
    from m5data.splits import versions

    store, _ = demo_report
    ids = [r[0] for r in store.connect().execute("SELECT product_id FROM products ORDER BY 1 LIMIT 6").fetchall()]
    store2 = Store.open(copy_store(store.root, tmp_path))
    for version, train in (("v9", 3), ("v10", 1), ("v10", 2), ("v2", 5)):  # v10 written twice: the second stands
        store2.write("splits", [{"product_id": p, "split": "train" if k < train else "query-c", "version": version}
                                for k, p in enumerate(ids)])
    result = build(store2, load(None, {"store.path": str(store2.root)}, environ={}), out=tmp_path / "r")
    numbers = _parse(result.index).numbers
    assert "<code>v10</code>" in result.index.read_text(encoding="utf-8")
    assert numbers["split.train"] == "2" and numbers["split.query-c"] == "4"
    held = {}
    for way in ("parts", "view"):
        con = store2.connect(only=("splits",))
        try:
            assert splits_data.split_versions(con, store2 if way == "parts" else None) == ["v10"]
            held[way] = con.execute("SELECT version, split, product_id FROM report_split_rows ORDER BY ALL").fetchall()
        finally:
            con.close()
    assert held["parts"] == held["view"] and len(held["parts"]) == 6
    assert set(versions.version_parts(store2)) == {"v2", "v9", "v10"}
    store2.compact("splits")  # one part of every version, whose row group's statistics name no one version
    assert {v: len(p) for v, p in versions.version_parts(store2).items()} == {"v2": 1, "v9": 1, "v10": 1}
    con = store2.connect(only=("splits",))
    try:
        assert splits_data.split_versions(con, store2) == ["v10"]
        assert con.execute("SELECT version, split, product_id FROM report_split_rows ORDER BY ALL").fetchall() == held["view"]
    finally:
        con.close()


def test_top_properties_rank_values_as_a_full_ranking_does_ties_and_nulls_included():
    import duckdb

    from m5data.report import data

    con = duckdb.connect()
    con.execute("CREATE TABLE report_spec_values AS SELECT * FROM (VALUES ('p', 'a', 2), ('p', NULL, 2), ('p', 'b', 2), "
                "('p', 'c', 1), ('q', NULL, 5), ('q', 'z', 1), ('r', 'x', 1), ('r', NULL, 1), ('s', NULL, 1), "
                "('t', 'm', 3), ('t', 'k', 3), ('t', 'l', 3), ('t', 'j', 3)) v(property, value, n)")
    ranked = con.execute("""
        WITH r AS (SELECT property, value, n, row_number() OVER (PARTITION BY property ORDER BY n DESC, value) AS k
                   FROM report_spec_values)
        SELECT property, sum(n)::BIGINT, count(*), string_agg(value, ' / ' ORDER BY k) FILTER (WHERE k <= 3)
        FROM r GROUP BY property ORDER BY 2 DESC, property""").fetchall()
    assert data.top_properties(con, 10) == ranked
    assert dict((p, c) for p, _, _, c in ranked) == {"t": "j / k / l", "p": "a / b", "q": "z", "r": "x", "s": None}


def test_training_section_shows_the_evaluation_in_percent(tmp_path):
    import json

    store = Store.init(tmp_path / "store")
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"model": "SCALE (thin)", "modalities": "text+image", "coarse mAP@1": 0.9615384, "accuracy": 0.75},
            {"model": "TF-IDF", "modalities": "text", "coarse mAP@1": 0.8846154, "accuracy": 0.5}]
    (run / "metrics.json").write_text(json.dumps({"columns": ["model", "modalities", "accuracy", "coarse mAP@1", "NMI"],
                                                  "rows": rows}))
    settings = load(None, {"store.path": str(store.root)}, environ={})
    result = build(store, settings, out=tmp_path / "r", train_run=run)
    assert "training" not in result.empty_sections
    html = result.index.read_text(encoding="utf-8")
    section = html[html.index('id="training"'):]
    section = section[: section.index("</section>")]
    assert "<th>accuracy</th><th>coarse mAP@1</th>" in section and "NMI" not in section  # the run's column order
    assert '<td class="r">96.15</td>' in section and '<td class="r">88.46</td>' in section
    assert "0.96" not in section


def test_empty_store_renders_with_guidance(tmp_path):
    store = Store.init(tmp_path / "store")
    result = CliRunner().invoke(app, ["--store", str(store.root), "report", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    page = _parse(tmp_path / "r" / "index.html")
    assert page.sections == SECTIONS
    text = " ".join(page.text)
    assert "m5data crawl" in text and "m5data build-splits" in text
    assert "file://" in result.output
    con = store.connect()
    try:
        assert con.execute("SELECT stage, status FROM runs").fetchall() == [("report", "ok")]
    finally:
        con.close()


def test_report_folder_inside_the_store_is_refused(tmp_path):
    store = Store.init(tmp_path / "store")
    with pytest.raises(ReportError, match="inside the store"):
        build(store, load(None, {"store.path": str(store.root)}, environ={}), out=store.local_root() / "derived" / "report")


def test_a_report_folder_inside_the_store_is_refused_by_the_check_before_any_run(tmp_path):
    """The report's check (``stages.check``, run by the verb and the plan check) refuses the folder before the
    contract opens a run: ``stages.call`` after it would write a failed row, the check writes none."""
    from m5data import stages

    store = Store.init(tmp_path / "store")
    settings = load(None, {"store.path": str(store.root)}, environ={})
    with pytest.raises(ReportError, match="inside the store"):
        stages.check("report", settings, {"out": str(store.local_root() / "derived" / "report")})
    stages.check("report", settings, {"out": str(tmp_path / "report")})
    assert store.count("runs") == 0
    with pytest.raises(ReportError, match="inside the store"):  # the run checks it again
        stages.call("report", stages.RunContext(settings, options={"out": str(store.local_root() / "derived" / "report")}))
    assert store.read("runs", columns=["status"]).column("status").to_pylist() == ["failed"]


def test_report_page_loads_in_a_browser_offline(demo_report, tmp_path):
    from support.browser import chromium_page

    _, result = demo_report
    with chromium_page() as page:
        errors, outside = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith("file://") else None)
        page.goto(result.index.resolve().as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert not errors and not outside and not broken
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_a_store_of_many_media_parts_gives_the_same_report_in_a_fixed_number_of_reads(demo_report, tmp_path,
                                                                                     monkeypatch):
    """A crawl's store holds hundreds of small media parts. The report holds the media columns it
    reads once (past HOLD_MEDIA_PARTS parts) and reads the gallery's images, specs and frames in one
    query each, not three per sample: the page is the same as read through the store's views."""
    from m5data.report import build as report_build
    from m5data.report import gallery_data

    store, _ = demo_report
    many = Store.open(copy_store(store.root, tmp_path))
    media = many.read("media").to_pylist()
    for k in range(0, len(media), 20):  # the same rows again, 20 a part: newest wins, nothing changes
        many.write("media", media[k:k + 20])
    monkeypatch.setattr(report_build, "HOLD_MEDIA_PARTS", 8)
    assert len(many.parts("media")) > report_build.HOLD_MEDIA_PARTS
    settings = load(None, {"store.path": str(many.root)}, environ={})
    reads = []
    real_rows = gallery_data.fetch
    monkeypatch.setattr(gallery_data, "fetch", lambda con, sql, params=None: reads.append(sql) or real_rows(con, sql, params))
    held = build(many, settings, out=tmp_path / "held")
    gallery_reads = len(reads) - sum("FROM media m\n" not in q and "specs WHERE list_contains" not in q
                                     and "kind = 'frames'" not in q for q in reads)
    assert gallery_reads == 3
    monkeypatch.setattr(report_build, "HOLD_MEDIA_PARTS", 10**9)
    plain = build(many, settings, out=tmp_path / "plain")
    strip = lambda page: re.sub(r'written [0-9-]+ [0-9:]+ UTC|data-key="table.runs" data-value="\d+">\d+', "",
                                page.read_text(encoding="utf-8"))
    assert strip(held.index) == strip(plain.index)
    assert len(_parse(held.index).images) > 5


SVG = "{http://www.w3.org/2000/svg}"
LOG_TICK = re.compile(r"10(⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")  # 10², 10⁻¹
POWERS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def svg_texts(path) -> list[str]:
    """The text of every ``<text>`` of an SVG, as a reader sees it (the XML unescaped)."""
    from xml.etree import ElementTree

    return ["".join(t.itertext()) for t in ElementTree.parse(path).iter(SVG + "text")]


def log_ticks(path) -> list[int]:
    """The exponents of the log tick labels (10ⁿ) of one SVG, in the order drawn."""
    return [int(m.group(1).translate(POWERS)) for t in svg_texts(path) if (m := LOG_TICK.fullmatch(t))]


def test_log_axes_label_their_ticks_as_powers_of_ten(demo_report):
    """The long-tail and merchant charts' log axes are labelled 10⁰, 10¹, ... (a run of decades covering the
    largest count); every figure is well-formed SVG with a title, and no TeX markup reaches a chart."""
    _, result = demo_report
    folder = result.index.parent / "figures"
    log_charts = [n for n in result.figures if n.startswith("long_tail") or n == "merchant_products.svg"]
    assert {"long_tail_level1.svg", "merchant_products.svg"} <= set(log_charts)
    for name in log_charts:
        ticks = log_ticks(folder / name)
        steps = {b - a for a, b in zip(ticks, ticks[1:])}
        assert len(ticks) >= 2 and len(steps) == 1 and steps.pop() > 0, (name, ticks)
    for name in result.figures:
        texts = svg_texts(folder / name)
        assert texts and not any("$" in t or "mathdefault" in t for t in texts), (name, texts)


def test_chart_text_from_data_is_literal_and_ticks_stay_numbers(tmp_path):
    """A category named ``$\\undefinedmacro$``, one with two dollar signs, one with markup and one with a control
    character (which XML cannot hold) are drawn character for character (the control character as U+FFFD),
    beside log ticks 10⁰..10³; the same values give the same bytes."""
    from m5data.report.charts import Charts

    charts = Charts(tmp_path)
    macro, dollars, markup = r"$\undefinedmacro$", "a $5 and $6 b", '<b onclick="x">&amp;</b>'
    assert charts.bars("b", [macro, dollars, markup, "bell\x07"], [3, 1, 2, 1], f"per {dollars}") == "b.svg"
    assert charts.bars("v", [dollars, "x"], [3, 1], macro, horizontal=False, xlabel=dollars) == "v.svg"
    assert charts.long_tail("lt", [1000, 100, 10, 2], f"products per {macro}") == "lt.svg"
    assert charts.histogram("h", [1, 10, 100, 1000, 1000], dollars, macro, bins=3, log_y=True) == "h.svg"
    drawn = {name: svg_texts(tmp_path / f"{name}.svg") for name in ("b", "v", "lt", "h")}
    assert {macro, dollars, markup, "bell\ufffd", f"per {dollars}"} <= set(drawn["b"]), drawn["b"]
    assert {macro, dollars, "x"} <= set(drawn["v"]) and f"products per {macro}" in drawn["lt"]
    assert {dollars, macro} <= set(drawn["h"])
    assert log_ticks(tmp_path / "lt.svg") == [0, 1, 2, 3]
    assert log_ticks(tmp_path / "h.svg")[:2] == [0, 1]
    first = (tmp_path / "b.svg").read_bytes()
    Charts(tmp_path / "again").bars("b", [macro, dollars, markup, "bell\x07"], [3, 1, 2, 1], f"per {dollars}")
    assert (tmp_path / "again" / "b.svg").read_bytes() == first


def test_failure_reasons_are_grouped_without_the_file_and_cut_at_a_word(tmp_path):
    """Extract writes ``<blob>: <reason>: <detail>``, the downloader sizes and URLs: one bar per reason, not per
    file (the chart had one bar per blob path), and a long reason is cut after a whole word, with an ellipsis."""
    from m5data.report import data, fact_sql

    store = Store.init(tmp_path / "store")
    long_reason = "the container declares an audio stream whose sample format nobody here has ever heard of"
    errors = ([("video", "corrupt", f"blobs/{k:02x}/{k:064x}.mp4: unreadable video: ffprobe: moov atom not found")
               for k in range(5)]
              + [("image", "too_large", f"Content-Length {n:,} exceeds the image limit of 10,485,760 bytes")
                 for n in (20_000_000, 30_000_001, 123_456_789)]
              + [("image", "failed", "HTTP 404")] * 2
              + [("audio", "corrupt", f"blobs/aa/{k:064x}.m4a: {long_reason}: exit 1") for k in range(2)]
              + [("image", "failed", f"https://shop.example/img/{k}.jpg: redirect loop") for k in range(2)])
    store.write("media", [{"media_id": f"m{i}", "product_id": "shop:1", "kind": k, "role": "main", "position": i,
                           "status": s, "error": e} for i, (k, s, e) in enumerate(errors)])
    con = store.connect()
    fact_sql.live(con)  # the report reads media through its facts
    try:
        fails = data.media_failures(con)
    finally:
        con.close()
    assert fails == [("video", "corrupt", "unreadable video", 5),
                     ("image", "too_large", "Content-Length N exceeds the image limit of N bytes", 3),
                     ("audio", "corrupt", long_reason, 2),
                     ("image", "failed", "HTTP 404", 2),
                     ("image", "failed", "redirect loop", 2)]
    settings = load(None, {"store.path": str(store.root)}, environ={})
    result = build(store, settings, out=tmp_path / "report")
    labels = [t for t in svg_texts(result.index.parent / "figures" / "media_failures.svg") if ":" in t]
    assert len(labels) == 5 and not any("blobs/" in t for t in labels), labels
    cut = next(t for t in labels if t.startswith("audio corrupt: "))
    assert cut.endswith("…") and len(cut) <= 60, cut
    assert ("audio corrupt: " + long_reason).startswith(cut[:-1].rstrip() + " "), cut  # ends after a whole word


def test_a_long_tail_of_thousands_of_categories_is_one_outline_not_a_bar_each(tmp_path):
    """At 100k products a level has ~3,400 categories: a bar each took 9 s to draw and made a 1 MB SVG."""
    from m5data.report.charts import BARS_UP_TO, Charts

    charts = Charts(tmp_path)
    few = [100 - i for i in range(BARS_UP_TO)]
    many = [max(1, 5000 // (i + 1)) for i in range(3000)]
    assert charts.long_tail("few", few, "few") == "few.svg"
    assert charts.long_tail("many", many, "many") == "many.svg"
    shapes = {name: (tmp_path / f"{name}.svg").read_text().count("<rect") for name in ("few", "many")}
    assert shapes["few"] >= BARS_UP_TO  # a bar a category
    assert shapes["many"] < 5 and (tmp_path / "many.svg").read_text().count("<path") == 1  # one outline
    assert (tmp_path / "many.svg").stat().st_size < (tmp_path / "few.svg").stat().st_size  # a step per distinct count


def test_the_last_runs_config_is_its_newest_by_start_across_parts_as_the_view_says(tmp_path):
    import json as _json

    from m5data.report.run_data import last_run_config
    from m5data.storage import StageStats, record_run

    store = Store.init(tmp_path / "store")
    assert last_run_config(store, "dedup") is None
    for k, started in enumerate((100.0, 300.0, 200.0)):  # written out of start order, a part each
        record_run(store, StageStats("dedup", started=started), {"dedup_run": {"groups": k}})
        record_run(store, StageStats("align", started=400.0 + k), {"k": k})
    assert _json.loads(last_run_config(store, "dedup"))["dedup_run"]["groups"] == 1
    assert _json.loads(last_run_config(store, "align"))["k"] == 2
    con = store.connect(only=("runs",))
    try:
        assert con.execute("SELECT max_by(config, started_at) FROM runs WHERE stage = 'dedup'").fetchone()[0] \
            == last_run_config(store, "dedup")
    finally:
        con.close()
    store.compact("runs")
    assert _json.loads(last_run_config(store, "dedup"))["dedup_run"]["groups"] == 1
    assert last_run_config(store, "export") is None


def test_the_report_stage_writes_into_report_out(tmp_path):
    """The report stage's folder is its own key, ``report.out``; the old ``flows.report_out`` sets it, with a warning."""
    from m5data.report.stage import report_folder

    settings = load(None, {"store.path": str(tmp_path / "store"), "report.out": str(tmp_path / "r")}, environ={})
    assert report_folder(settings) == str(tmp_path / "r")
    old = load(None, {"store.path": str(tmp_path / "store"), "flows.report_out": str(tmp_path / "o")}, environ={})
    assert report_folder(old) == str(tmp_path / "o") and old.warnings == ["flows.report_out is now report.out "
                                                                          "(set in flag): the old key still works, for now"]


def test_report_out_is_no_input_of_the_report_beside_its_folder(tmp_path):
    """Where the page goes is an input already (the folder): ``report.out`` set or not, the same fingerprint,
    so the flow (report.out) and the verb (--out) writing one folder do not rebuild each other's page."""
    from m5data.report import incremental

    base = {"store.path": str(tmp_path / "store")}
    plain, routed = load(None, base, environ={}), load(None, {**base, "report.out": str(tmp_path / "r")}, environ={})
    assert incremental.inputs(plain, tmp_path / "r", None, None) == incremental.inputs(routed, tmp_path / "r", None, None)
