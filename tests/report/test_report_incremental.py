"""The report incremental (``m5data/report/incremental.py``, ``facts.py``): a run with nothing new does
no work and says so; a store grown in two writes, reported after each, gives the page and figures a
full rebuild gives, having made the facts of what changed only; a run killed before it completes,
run again, gives the same; ``full`` rebuilds anyway; on object storage too.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from support.demo_fixtures import copy_store

from m5data.config import load
from m5data.report import compliance_facts, fact_sql, facts, kept_files
from m5data.report import folder as report_folder
from m5data.report.build import build
from m5data.storage import Store, changes


def _products(lo: int, hi: int, title: str = "商品") -> list[dict]:
    return [{"product_id": f"shopa:{i}", "platform": "shopa", "source_id": str(i), "title": f"{title} {i}",
             "category_path": ["服装", f"上衣{i % 3}"], "has_image": False, "has_video": False,
             "has_caption": True, "has_specs": True} for i in range(lo, hi)]


def _specs(lo: int, hi: int) -> list[dict]:
    return [{"product_id": f"shopa:{i}", "position": 0, "property": "品牌", "value": f"牌{i % 4}"} for i in range(lo, hi)]


def _page(result) -> str:
    """The page without its "written" time and its count of ``runs`` rows (each run adds one)."""
    page = re.sub(r"written \d{4}-\d\d-\d\d \d\d:\d\d UTC", "written -", result.index.read_text(encoding="utf-8"))
    return re.sub(r'data-key="table.runs" data-value="\d+">\d+', "runs -", page)


@pytest.fixture
def store(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", _products(0, 20))
    store.write("specs", _specs(0, 20))
    return store


def _settings(store):
    return load(None, {"store.path": str(store.root)}, environ={})


def test_a_run_with_nothing_new_does_no_work(store, tmp_path):
    settings = _settings(store)
    first = build(store, settings, out=tmp_path / "r")
    assert first.stats.details["changes"] == {"new": 20, "changed": 0, "unchanged": 0}
    page = first.index.read_bytes()
    second = build(store, settings, out=tmp_path / "r")
    assert second.stats.details["changes"] == {"new": 0, "changed": 0, "unchanged": 20}
    assert second.stats.details["unchanged"] and second.stats.n_in == 0
    assert second.index.read_bytes() == page and second.sections == first.sections
    assert store.read("runs", where="stage = 'report'").num_rows == 2  # it still says it ran
    third = build(store, settings, out=tmp_path / "r", full=True)
    assert "unchanged" not in third.stats.details and third.stats.n_in == 20


def test_a_grown_store_reported_again_equals_a_full_rebuild(store, tmp_path):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    store.write("products", _products(15, 30, title="新款"))  # 5 changed, 10 new
    store.write("specs", _specs(20, 30))
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["changes"] == {"new": 10, "changed": 5, "unchanged": 15}
    full = build(store, settings, out=tmp_path / "full", full=True)
    assert _page(again) == _page(full)
    assert again.stats.n_in == 30


def test_a_touched_report_folder_is_written_again(store, tmp_path):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    (tmp_path / "r" / "index.html").write_text("edited")
    again = build(store, settings, out=tmp_path / "r")
    assert "unchanged" not in again.stats.details and "edited" not in again.index.read_text()


def test_a_run_killed_before_it_completes_runs_again(store, tmp_path, monkeypatch):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    before = changes.load_state(store, "report")
    store.write("products", _products(20, 25))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(report_folder, "publish", killed)
        with pytest.raises(KeyboardInterrupt):
            build(store, settings, out=tmp_path / "r")
    assert changes.load_state(store, "report") == before
    again = build(store, settings, out=tmp_path / "r")
    again_state = changes.load_state(store, "report")
    assert again.stats.details["changes"] == {"new": 5, "changed": 0, "unchanged": 20}
    assert again.stats.details["facts"] == {"products": 5}  # the killed run's facts were not taken for done
    kept = set(_facts_files(store))
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))
    # the files of this run's state and of the state before it (in force until this one was saved): the killed run's are gone
    assert kept == _named(store, again_state) | _named(store, before)


def test_the_verb_says_unchanged_and_full_writes_again(store, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    argv = ["--store", str(store.root), "report", "--out", str(tmp_path / "r")]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0 and "products since the last report: new 20" in " ".join(first.output.split())
    second = CliRunner().invoke(app, argv)
    assert second.exit_code == 0 and "report: unchanged (new 0, changed 0, unchanged 20)" in " ".join(second.output.split())
    third = CliRunner().invoke(app, argv + ["--full"])
    assert third.exit_code == 0 and "report: unchanged" not in third.output


def _facts_files(store) -> list[str]:
    folder = store.local_root() / facts.KEPT / "facts"
    return sorted(p.name for pattern in ("*.parquet", f"*{facts.TOTAL_SUFFIX}") for p in folder.glob(pattern))


def _named(store, state: dict | None = None) -> set[str]:
    """The facts and totals files the report's state (by default the one in force) names."""
    state = state or changes.load_state(store, "report")
    return {n for names in state["summary"]["facts"].values() for n in names}


def _figures(result) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (result.index.parent / "figures").glob("*.svg")}


def _grow(src, n_new: int, products: pa.Table | None = None, prefix: str = "n") -> list[str]:
    """``n_new`` copies of the first products (or of ``products``) under new ids, with their specs and
    media, one write per table (as benchmarks/bench_incremental.py's GROW): returns the new ids."""
    products = src.read("products").sort_by("product_id").slice(0, n_new) if products is None else products
    old = products.column("product_id").to_pylist()
    new = {p: p.replace(":", f":{prefix}", 1) for p in old}

    def moved(rows):
        ids = pa.array([new[p] for p in rows.column("product_id").to_pylist()], pa.string())
        return rows.set_column(rows.schema.get_field_index("product_id"), "product_id", ids)

    src.write("products", moved(products))
    keep = pa.array(old)
    for table in ("specs", "media"):
        rows = src.read(table)
        rows = moved(rows.filter(pc.is_in(rows.column("product_id"), keep)))
        if table == "media":
            rows = rows.set_column(rows.schema.get_field_index("media_id"), "media_id",
                                   pc.binary_join_element_wise(rows.column("media_id"), pa.scalar(f"-{prefix}"), ""))
        src.write(table, rows)
    return list(new.values())


def test_a_demo_store_grown_changed_and_reported_again_equals_a_full_rebuild(demo_store_factory, tmp_path):
    """A crawled, extracted, aligned store (every section filled) grown by new products, one product's title
    changed and one image failed: the incremental page and every figure equal a full rebuild's, and the facts
    made are those of the written groups only."""
    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    settings = _settings(store)
    first = build(store, settings, out=tmp_path / "r")
    assert first.stats.details["facts"]["products"] == 60
    new = _grow(store, 6)
    product = store.read("products", where=f"product_id = '{new[0].replace(':n', ':', 1)}'").to_pylist()[0]
    store.write("products", [{**product, "title": product["title"] + " (new)"}])
    image = store.read("media", where="kind = 'image' AND status = 'ok'").sort_by("media_id").slice(0, 1).to_pylist()[0]
    store.write("media", [{**image, "status": "failed", "error": "HTTP 410"}])
    again = build(store, settings, out=tmp_path / "r")
    before = _named(store)
    assert again.stats.details["changes"] == {"new": 6, "changed": 1, "unchanged": 59}
    made = again.stats.details["facts"]
    assert made["products"] == 7 and made["media"] == store.count("media") - first.stats.details["facts"]["media"] + 1
    full = build(store, settings, out=tmp_path / "full", full=True)
    assert full.stats.details["facts"]["products"] == 66
    assert _page(again) == _page(full) and 'data-key="media.image.failed"' in _page(again)
    assert _figures(again) == _figures(full) and len(_figures(full)) >= 7
    named = changes.load_state(store, "report")["summary"]["facts"]
    assert all(len(files) == 1 for files in named.values()) and len(named) == (
        len(fact_sql.SOURCES) + 1 + len(fact_sql.KEPT_TOTALS) + 1 + len(compliance_facts.TOTALS))  # full made each (facts, flags, totals, compliance)
    # table's facts and each running total as one file again
    assert set(_facts_files(store)) == _named(store) | before  # and the files of the state before stay until the next run


def test_a_category_that_enters_the_top_ones_from_the_reserve_is_shown_without_a_store_read(
        demo_store_factory, tmp_path, monkeypatch):
    """The gallery keeps the picks and samples of the categories after the shown ones: one of them grown
    into the top ones is shown from the kept samples (no part of the store read for it), as a full rebuild
    shows it."""
    from m5data.report import build as report_build
    from m5data.report import gallery

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    cats = list(dict.fromkeys(s["category"] for s in changes.load_state(store, "report")["summary"]["gallery"]["samples"]))
    assert len(cats) > gallery.CATEGORIES  # the first run kept spare categories
    spare = cats[gallery.CATEGORIES]
    products = store.read("products")
    mine = products.filter(pa.array([" > ".join(p) == spare for p in products.column("category_path").to_pylist()]))
    for prefix in ("n", "m", "o", "q"):  # copies sort after the originals: the category's picks stay its own
        _grow(store, 0, mine, prefix)
    reads = []
    real = report_build.Large.of
    monkeypatch.setattr(report_build.Large, "of", lambda self, con, ids: reads.append(ids) or real(self, con, ids))
    again = build(store, settings, out=tmp_path / "r")
    shown = list(dict.fromkeys(s["category"] for s in changes.load_state(store, "report")["summary"]["gallery"]["samples"]))
    assert spare in shown[:gallery.CATEGORIES] and reads == []
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


def test_figures_whose_values_did_not_change_are_copied_not_drawn(demo_store_factory, tmp_path):
    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    settings = _settings(store)
    first = build(store, settings, out=tmp_path / "r")
    assert "completeness_upset" in first.stats.details["figures_drawn"]
    ids = [r["product_id"] for r in store.read("products", columns=["product_id"]).to_pylist()][:4]
    store.write("caption_match", [{"product_id": p, "score": 0.9, "level": "well"} for p in ids])
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["figures_drawn"] == ["match_levels"]  # the only figure whose values changed
    assert again.stats.details["facts"] == {"caption_match": 4}  # only the facts of the four rows written
    full = build(store, settings, out=tmp_path / "full", full=True)
    assert len(full.stats.details["figures_drawn"]) == len(_figures(full))
    assert _page(again) == _page(full) and _figures(again) == _figures(full)


def test_the_facts_are_written_as_one_file_again_past_their_limit(store, tmp_path, monkeypatch):
    settings = _settings(store)
    monkeypatch.setattr(facts, "MAX_FILES", 2)
    build(store, settings, out=tmp_path / "r")
    counts = []
    for k in range(3):  # each write one more file of products' facts; never more than MAX_FILES
        store.write("products", _products(30 + k, 31 + k))
        build(store, settings, out=tmp_path / "r")
        counts.append(len(changes.load_state(store, "report")["summary"]["facts"]["products"]))
    assert counts == [2, 1, 2]
    again = build(store, settings, out=tmp_path / "r", full=False)
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


def test_on_object_storage_the_facts_are_kept_in_the_bucket(s3_url, tmp_path):
    store = Store.init(s3_url)
    store.write("products", _products(0, 20))
    store.write("specs", _specs(0, 20))
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    store.write("products", _products(15, 30, title="新款"))
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["changes"] == {"new": 10, "changed": 5, "unchanged": 15}
    assert again.stats.details["facts"] == {"products": 15}
    named = changes.load_state(store, "report")["summary"]["facts"]
    for table, names in named.items():
        for name in names:
            assert store.read_bytes(f"{facts.KEPT}/facts/{name}") is not None, (table, name)
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_the_duplicates_section_shows_the_last_dedup_run_and_the_newest_matcher_model(where, store, s3_url, tmp_path):
    import json

    from m5data.storage import StageStats, record_run

    store = Store.init(s3_url) if where == "s3" else store
    store.write("products", _products(0, 4))
    store.write("dedup", [{"product_id": f"jd:{i}", "group_id": "jd:0" if i < 2 else f"jd:{i}", "rule": "phash" if i == 1 else None}
                          for i in range(4)])
    record_run(store, StageStats("dedup"), {"dedup_run": {"matcher": "learned v2", "pairs": {"matcher": 5}, "groups": 1}})
    for version, threshold in (("v1", 0.25), ("v2", 0.75)):  # the newest version's model is shown
        store.write_bytes(f"derived/matcher/{version}/model.json", json.dumps({
            "version": version, "threshold": threshold,
            "validation": {"pairs": 40, "matches": 12, "precision": 0.9, "recall": 0.8, "auc": 0.95,
                           "pr_curve": [[0.5, 1.0], [0.8, 0.9]]}}).encode())
    page = build(store, _settings(store), out=tmp_path / "r").index.read_text(encoding="utf-8")
    assert 'data-key="dedup.matcher.added" data-value="5"' in page
    assert 'data-key="matcher.threshold" data-value="0.75"' in page and "Matcher v2" in page


def test_a_killed_runs_temp_facts_file_is_known_to_doctor_and_removed_by_the_next_run(store, tmp_path):
    """A facts file is written under the store's temp name (``storage.files.temp_path``): a killed
    writer's is found by doctor (and the stages' sweep, the same ``find_temps``) and removed by the
    next complete run; one whose writer still runs is kept."""
    import os
    import subprocess
    import sys

    from m5data.storage.doctor import run as doctor

    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    folder = store.local_root() / facts.KEPT / "facts"
    dead = folder / f".tmp-{proc.pid}-{'ab' * 16}.parquet"
    live = folder / f".tmp-{os.getpid()}-{'cd' * 16}.parquet"
    for path in (dead, live):
        path.write_bytes(b"half a parquet file")
    found = {f.path: f.problem for f in doctor(store, verify_blobs=False).findings if f.check == "temp"}
    assert found[f"{facts.KEPT}/facts/{dead.name}"].startswith("left by a dead run")
    assert found[f"{facts.KEPT}/facts/{live.name}"].startswith("in use by a running process")
    store.write("products", _products(20, 22))
    build(store, settings, out=tmp_path / "r")
    assert not dead.exists() and live.exists()


def test_only_the_tables_written_since_are_counted_again(store, tmp_path, monkeypatch):
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    counted, grown = [], []
    real_count, real_grown = type(store).count_parts, type(store).count_grown
    monkeypatch.setattr(type(store), "count_parts", lambda s, name: counted.append(name) or real_count(s, name))
    monkeypatch.setattr(type(store), "count_grown", lambda s, name, *a: grown.append(name) or real_grown(s, name, *a))
    store.write("dedup", [{"product_id": "shopa:1", "group_id": "g", "rule": "same title", "run_id": "x"}])
    again = build(store, settings, out=tmp_path / "r")
    assert counted == []  # products, specs, media and dedup from their facts; the rest kept ...
    assert grown == ["runs"]  # ... or counted on from the parts written since (runs: every stage writes it)
    page = again.index.read_text(encoding="utf-8")
    assert 'data-key="table.dedup" data-value="1"' in page
    assert f'data-key="table.runs" data-value="{store.count("runs") - 1}"' in page  # counted before its own run
    store.write("dedup", [{"product_id": p, "group_id": "g", "rule": "same title", "run_id": "y"}
                          for p in ("shopa:1", "shopa:2", "shopa:3")])  # one row again, two new
    again = build(store, settings, out=tmp_path / "r")
    assert 'data-key="table.dedup" data-value="3"' in again.index.read_text(encoding="utf-8")
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


def _media(ids, status: str = "ok", shift: float = 0.0) -> list[dict]:
    """An image (quality tier by id) and a video (a duration by id) per product id number."""
    rows = []
    for i in ids:
        rows += [{"media_id": f"i{i}", "product_id": f"shopa:{i}", "kind": "image", "role": "main", "position": 0,
                  "status": "ok", "quality_tier": 1 + i % 3},
                 {"media_id": f"v{i}", "product_id": f"shopa:{i}", "kind": "video", "role": "main", "position": 0,
                  "status": status, "duration": 1.5 * (i % 7) + 0.25 + shift,
                  "error": None if status == "ok" else f"https://cdn.example/v{i}.mp4: HTTP 404"}]
    return rows


def _kept_totals(store) -> dict[str, list]:
    """The running totals the report's state names, each as sorted rows."""
    named = changes.load_state(store, "report")["summary"]["facts"]
    folder = store.local_root() / facts.KEPT / "facts"
    return {k: sorted(map(repr, facts.read_total(folder / v[0]).to_pylist())) for k, v in named.items()
            if k.startswith("total:") and k[6:] in fact_sql.KEPT_TOTALS}  # (the compliance totals: test_report_compliance_incremental)


def _live_totals(store) -> dict[str, list]:
    """The same totals grouped from the store's tables as they are now."""
    con = store.connect()
    try:
        fact_sql.live(con)
        views = {**{f"total:{k}": v for k, v in fact_sql.TOTAL_VIEWS.items()},
                 **{f"total:{k}": view for k, (_, view) in fact_sql.FLAG_TOTALS.items()}}
        return {k: sorted(map(repr, con.sql(f"SELECT * FROM {v}").to_arrow_table().to_pylist())) for k, v in views.items()}
    finally:
        con.close()


def test_running_totals_moved_by_rewritten_rows_equal_totals_grouped_from_the_store(store, tmp_path):
    """Products moved to another category and merchant, a title blanked, a video failed and later ok again with
    another duration, an image's tier changed, a product's spec rows replaced, new products: after each
    incremental run every kept total equals the same total grouped from the store, the page equals a full
    rebuild's, and only the written groups' facts were made."""
    settings = _settings(store)
    store.write("products", [{**p, "merchant_id": f"m{i % 3}"} for i, p in enumerate(_products(0, 20))])
    store.write("media", _media(range(20)))
    store.write("caption_match", [{"product_id": f"shopa:{i}", "level": ("well", "poor", None)[i % 3]} for i in range(20)])
    build(store, settings, out=tmp_path / "r")
    assert len(_kept_totals(store)) == len(fact_sql.KEPT_TOTALS)

    moved = _products(3, 5)
    moved[0].update(category_path=["家电", "冰箱"], merchant_id="m9")
    moved[1].update(title=" ", merchant_id="m9")
    store.write("products", moved + _products(20, 24))
    store.write("media", _media([5], status="failed") + [{**_media([6])[0], "quality_tier": 3}] + _media(range(20, 24)))
    store.write("specs", [{"product_id": "shopa:7", "position": k, "property": "颜色", "value": v}
                          for k, v in enumerate(["红", "蓝"])])
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["facts"] == {"products": 6, "media": 11, "specs": 2}
    assert _kept_totals(store) == _live_totals(store)
    page = _page(again)
    assert 'data-key="media.video.failed" data-value="1"' in page and 'data-key="captions" data-value="23"' in page
    assert page == _page(build(store, settings, out=tmp_path / "full1", full=True))

    store.write("products", _products(3, 4))  # back where it was
    store.write("media", _media([5], shift=0.5))
    store.write("caption_match", [{"product_id": "shopa:1", "level": "well"},  # poor -> well, and one new
                                  {"product_id": "shopa:22", "level": "partial"}])
    third = build(store, settings, out=tmp_path / "r")
    assert third.stats.details["facts"] == {"products": 1, "media": 2, "caption_match": 2}
    assert 'data-key="match_level.partial" data-value="1"' in _page(third)
    assert _kept_totals(store) == _live_totals(store)
    assert _page(third) == _page(build(store, settings, out=tmp_path / "full2", full=True))
    assert _figures(third) == _figures(build(store, settings, out=tmp_path / "full3", full=True))


def test_a_product_whose_spec_rows_came_before_it_has_its_spec_table_counted(store, tmp_path):
    """Its spec rows written in one run and its product row in a later one: the later run's flags (made
    without a scan of every spec fact) still see its specs, as a full rebuild does."""
    settings = _settings(store)
    store.write("specs", _specs(30, 32))  # spec rows of products not crawled yet
    build(store, settings, out=tmp_path / "r")
    store.write("products", _products(30, 33))  # 30 and 31 have spec rows from before, 32 none
    store.write("specs", [{"product_id": "shopa:3", "position": 0, "property": "品牌", "value": "新"}])
    again = build(store, settings, out=tmp_path / "r")
    assert _kept_totals(store) == _live_totals(store)
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))
    con = store.connect()
    try:
        fact_sql.live(con)
        assert con.execute("SELECT count(*) FROM report_flags WHERE m_table").fetchone()[0] == 22
    finally:
        con.close()


@pytest.mark.parametrize("at", [1, 3, 6, 9, 10, 11])
def test_a_run_killed_while_writing_its_facts_or_totals_runs_again_to_the_full_result(store, tmp_path, monkeypatch, at):
    """Killed at the ``at``-th facts or totals file it writes (after the files before it are in place, none
    named by the state yet), the next run gives the totals grouped from the store and a full rebuild's page."""
    settings = _settings(store)
    store.write("media", _media(range(20)))
    build(store, settings, out=tmp_path / "r")
    store.write("products", _products(5, 25, title="改"))
    store.write("media", _media([2, 3], status="failed") + _media(range(20, 25)))
    store.write("specs", _specs(18, 25))
    written, real = [], facts.write_file

    def killed(folder, name, rows):
        written.append(name)
        if len(written) == at:
            raise KeyboardInterrupt("killed")
        return real(folder, name, rows)

    with monkeypatch.context() as m:
        m.setattr(facts, "write_file", killed)
        with pytest.raises(KeyboardInterrupt):
            build(store, settings, out=tmp_path / "r")
    again = build(store, settings, out=tmp_path / "r")
    assert again.stats.details["changes"] == {"new": 5, "changed": 15, "unchanged": 5}
    assert _kept_totals(store) == _live_totals(store)
    assert _page(again) == _page(build(store, settings, out=tmp_path / "full", full=True))


def test_kept_totals_moved_by_a_delta_equal_duckdbs_sum_of_both():
    """merge_delta (the totals' move, in Arrow) against the sum DuckDB groups: null keys matched as
    values, a key summing to 0 left out, keys new to the totals added, the others as they were."""
    import duckdb

    kept = pa.table({"property": ["colour", "colour", None, "size", "size", None],
                     "value": ["red", "blue", "x", None, "L", None],
                     "n": pa.array([5, 2, 1, 3, 4, 7], pa.int64())})
    delta = pa.table({"property": ["colour", None, "size", "weight", None, "colour"],
                      "value": ["blue", "x", None, "1 kg", None, "green"],
                      "n": pa.array([-2, 4, -1, 6, -7, 1], pa.int64())})
    got = kept_files.merge_delta(kept, delta)
    con = duckdb.connect()
    want = con.sql("SELECT property, value, sum(n)::BIGINT AS n FROM (SELECT * FROM kept UNION ALL SELECT * FROM delta) "
                   "GROUP BY ALL HAVING sum(n) <> 0").to_arrow_table()
    def rows(t):
        return sorted(t.to_pylist(), key=str)
    assert rows(got) == rows(want)
    assert got.schema == kept.schema
    assert {"colour/blue", "None/None"}.isdisjoint(f"{r['property']}/{r['value']}" for r in got.to_pylist())
    assert kept_files.merge_delta(kept, delta.slice(0, 0)) is kept


def test_gallery_pictures_made_from_the_same_bytes_and_faces_are_linked_not_gated_again(
        demo_store_factory, tmp_path, monkeypatch):
    """A re-run links each gallery picture the last run made from the same bytes, ``faces`` row and blur rules
    (no decode, no detection); a picture whose ``faces`` row was written since is gated again, and blurred;
    every picture equals a full rebuild's."""
    import hashlib

    from m5data.egress import gate

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    settings = _settings(store)
    build(store, settings, out=tmp_path / "r")
    gated = []
    real = gate.picture
    monkeypatch.setattr(gate, "picture", lambda data, row, *args: gated.append(row) or real(data, row, *args))
    ids = [r["product_id"] for r in store.read("products", columns=["product_id"]).to_pylist()][:4]
    store.write("caption_match", [{"product_id": p, "score": 0.9, "level": "well"} for p in ids])
    again = build(store, settings, out=tmp_path / "r")
    assets = sorted((again.index.parent / "assets").iterdir())
    assert len(assets) >= 6 and gated == []

    image = next(s["image"] for s in changes.load_state(store, "report")["summary"]["gallery"]["samples"] if s["image"])
    name = hashlib.sha1(image.encode()).hexdigest()[:16] + ".jpg"
    before = (tmp_path / "r" / "assets" / name).read_bytes()
    # a row of no product_id, as a hand-written one may be: it touches no product's compliance fact
    store.write("faces", [{"blob": image, "kind": "image_norm", "width": 100, "height": 100, "n_faces": 1, "frame": [0],
                           "x0": [10.0], "y0": [10.0], "x1": [60.0], "y1": [60.0], "score": [0.9]}])
    third = build(store, settings, out=tmp_path / "r")
    assert [row["blob"] for row in gated] == [image]
    assert (tmp_path / "r" / "assets" / name).read_bytes() != before  # blurred now
    full = build(store, settings, out=tmp_path / "full", full=True)
    mine = {p.name: p.read_bytes() for p in (third.index.parent / "assets").iterdir()}
    assert mine == {p.name: p.read_bytes() for p in (full.index.parent / "assets").iterdir()}
