"""Align incremental (``m5data/align/incremental.py``): a store grown in two writes, aligned after each,
equals a full rebuild over the grown store; only pairs of new or changed sub-classes are scored; a
run with nothing new does no work; a run killed before its state is saved, run again, gives the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.align_world import make_world

from m5data import config as cfg
from m5data.align import incremental, tokens
from m5data.align.run import align
from m5data.storage import Store, changes


@pytest.fixture(scope="module")
def world():
    return make_world(seed=3, n_classes=2, subs_per_class=6, titles_per_sub=30)


def _split(world):
    """The first write: every platform sub-class but the last three; the second: all, one product's title changed."""
    rows = world.products()
    late = {(s.platform, s.name) for s in world.subs[-3:]}
    first = [r for r in rows if (r["platform"], r["category_path"][1]) not in late]
    grown = [dict(r) for r in rows]
    moved = grown[0]
    moved["title"] = moved["title"] + " 改版"  # a changed product: its sub-class's text changes
    return first, grown


def _tables(store):
    def rows(name):
        return sorted(store.read(name).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))

    return rows("taxonomy"), rows("label_map")


def _review(path):
    return sorted(line for line in path.read_text(encoding="utf-8").splitlines()[1:])


@pytest.fixture
def grown(world, tmp_path):
    first, grown_rows = _split(world)
    store = Store.init(tmp_path / "store")
    mapping = world.write_mapping(tmp_path / "mapping.toml")
    settings = cfg.load(environ={}, cwd=tmp_path)
    store.write("products", first)
    r1 = align(store, settings, mapping=mapping)
    store.write("products", grown_rows)
    return store, settings, mapping, r1


def _full_copy(store, tmp_path, settings, mapping):
    """A full rebuild over a copy of ``store`` (same products, same previous ids)."""
    copy = tmp_path / "full"
    shutil.copytree(store.root, copy)
    full_store = Store.open(copy)
    report = align(full_store, settings, mapping=mapping, review_out=copy / "review.csv", full=True)
    return full_store, report


def test_incremental_equals_a_full_rebuild_over_the_grown_store(grown, tmp_path):
    store, settings, mapping, r1 = grown
    r2 = align(store, settings, mapping=mapping)
    full_store, full = _full_copy(store, tmp_path, settings, mapping)
    assert _tables(store) == _tables(full_store)
    assert 0 < r2.n_scored < full.n_scored == full.n_pairs
    assert r2.n_pairs == full.n_pairs
    # only the new and changed texts are segmented again (the rest come from derived/align/tokens.parquet)
    assert 0 < r2.stats.details["segmented_texts"] <= 4 < full.stats.details["segmented_texts"]
    # and of those texts only the lines (titles) not seen before: the three new sub-classes' and the changed one
    assert 0 < r2.stats.details["segmented_lines"] <= 3 * 30 + 1 < full.stats.details["segmented_lines"]
    ch = r2.stats.details["changes"]
    assert ch["new"] == 3 and ch["changed"] == 1 and ch["new"] + ch["changed"] + ch["unchanged"] == r2.n_subclasses
    assert r1.stats.details["changes"] == {"new": r1.n_subclasses, "changed": 0, "unchanged": 0}
    inc = {tuple(line.split(",")[:9]) for line in _review(r2.review_path)}
    assert inc == {tuple(line.split(",")[:9]) for line in _review(full.review_path)}


def test_a_run_with_nothing_new_does_no_work(grown):
    store, settings, mapping, _ = grown
    r2 = align(store, settings, mapping=mapping)
    parts = {t: store.parts(t) for t in ("taxonomy", "label_map")}
    review = r2.review_path.read_bytes()
    r3 = align(store, settings, mapping=mapping)
    assert r3.stats.details["changes"] == {"new": 0, "changed": 0, "unchanged": r2.n_subclasses}
    assert r3.stats.n_in == 0 and r3.n_scored == 0
    assert (r3.n_groups, r3.n_pairs, r3.merges) == (r2.n_groups, r2.n_pairs, r2.merges)
    assert {t: store.parts(t) for t in parts} == parts and r2.review_path.read_bytes() == review
    # a changed setting is not "nothing new": the run does its work
    other = cfg.load(environ={}, overrides={"align.content_threshold": 0.9}, cwd=store.local_root())
    assert align(store, other, mapping=mapping).stats.n_in > 0


def test_the_registry_opens_the_same_run_as_align_called_directly(grown):
    """``stages.call("align", ctx)`` (the contract opens the run: ``stage.inputs``) and ``align(...)`` (opened
    through ``stages.opened``) make the same fingerprint: after either, the other finds nothing new;
    one ``runs`` row per run."""
    from m5data import stages

    store, settings, mapping, _ = grown
    align(store, settings, mapping=mapping)
    ctx = stages.RunContext(cfg.load(environ={}, overrides={"align.mapping": str(mapping), "store.path": str(store.root)},
                                     cwd=store.local_root()))
    stats = stages.call("align", ctx)
    assert stats.details.get("unchanged") and stats.n_in == 0
    assert align(store, settings, mapping=mapping).stats.details.get("unchanged")
    full = stages.call("align", ctx.with_options(full=True))
    assert not full.details.get("unchanged") and full.n_in > 0
    statuses = store.read("runs", where="stage = 'align'", columns=["status"]).column("status").to_pylist()
    assert statuses == ["ok"] * 5  # the fixture's, the grown store's, two unchanged and the full run


def test_a_run_killed_before_its_state_is_saved_gives_the_same_when_run_again(grown, tmp_path, monkeypatch):
    store, settings, mapping, _ = grown
    before = changes.load_state(store, "align")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(incremental, "save_kept", killed)  # after the tables, before the kept scores and the state
        with pytest.raises(KeyboardInterrupt):
            align(store, settings, mapping=mapping)
    assert changes.load_state(store, "align") == before  # the old state is left
    again = align(store, settings, mapping=mapping)
    assert again.stats.n_in > 0
    full_store, _ = _full_copy(store, tmp_path, settings, mapping)
    assert _tables(store) == _tables(full_store)


def test_kept_scores_of_other_settings_are_not_reused(grown):
    store, settings, mapping, r1 = grown
    other = cfg.load(environ={}, overrides={"align.weighting": "counts"}, cwd=store.local_root())
    r2 = align(store, other, mapping=mapping)
    assert r2.n_scored == r2.n_pairs


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from m5data import config as cfg
from m5data.align import incremental
from m5data.align.run import align
from m5data.storage import Store
incremental.save_kept = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # after the tables, before the state
align(Store.open(sys.argv[1]), cfg.load(environ={}, cwd=Path(sys.argv[1])), mapping=sys.argv[2])
"""


def test_a_run_sigkilled_mid_run_gives_the_same_when_run_again(grown, tmp_path):
    import os
    import subprocess
    import sys

    store, settings, mapping, _ = grown
    before = changes.load_state(store, "align")
    root = Path(__file__).resolve().parents[2]  # the child imports this checkout's m5data
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(store.root), str(mapping)], env=env)
    assert proc.returncode == -9
    assert changes.load_state(store, "align") == before
    again = align(store, settings, mapping=mapping)
    assert again.stats.n_in > 0 and again.stats.details["changes"]["new"] == 3
    full_store, _ = _full_copy(store, tmp_path, settings, mapping)
    assert _tables(store) == _tables(full_store)


def test_a_run_killed_between_its_kept_lines_and_texts_keeps_every_line(grown, tmp_path):
    """The kept lines are written before the kept texts: killed between the two, the next run makes its
    texts again from the kept lines, and both files end as an uninterrupted run leaves them (the other
    order left a run that needs no line keeping none: chaos on S3 found such a file differing)."""
    import pyarrow.parquet as pq

    store, settings, mapping, _ = grown
    align(store, settings, mapping=mapping)
    kept = {name: pq.read_table(store.local_root() / "derived" / "align" / name) for name in (tokens.LINES, tokens.TOKENS)}
    assert kept[tokens.LINES].num_rows > 0
    for name in (tokens.TOKENS, incremental.KEPT):  # a first run killed after its lines, before its texts
        (store.local_root() / "derived" / "align" / name).unlink()
    (store.local_root() / "derived" / "state" / "align.json").unlink()
    again = align(store, settings, mapping=mapping)
    assert again.stats.details["segmented_lines"] == 0 < again.stats.details["segmented_texts"]
    for name, table in kept.items():
        assert pq.read_table(store.local_root() / "derived" / "align" / name).equals(table), name


def test_a_text_whose_term_vector_is_unchanged_is_not_scored_again(grown, tmp_path):
    """A new product under a title its sub-class already has changes the sub-class's text (and its product
    count in the review file) but not its presence vector: none of its pairs is scored again with binary
    weighting, and the tables and review rows equal a full rebuild's; with counts weighting the vector
    changed, so its pairs are scored again."""
    store, settings, mapping, _ = grown
    align(store, settings, mapping=mapping)
    rows = store.read("products").to_pylist()
    source = min((r for r in rows if r["title"] and len(r["category_path"]) >= 2), key=lambda r: r["product_id"])
    store.write("products", [{**source, "product_id": source["product_id"] + "-copy", "source_id": "copy"}])
    again = align(store, settings, mapping=mapping)
    assert again.stats.details["changes"]["changed"] == 1 and again.n_scored == 0
    full_store, full = _full_copy(store, tmp_path, settings, mapping)
    assert _tables(store) == _tables(full_store)
    assert _review(again.review_path) == _review(full.review_path)
    counts = cfg.load(environ={}, overrides={"align.weighting": "counts"}, cwd=store.local_root())
    align(store, counts, mapping=mapping)  # kept scores of the counts weighting
    store.write("products", [{**source, "product_id": source["product_id"] + "-copy2", "source_id": "copy2"}])
    assert align(store, counts, mapping=mapping).n_scored > 0


def test_kept_files_of_the_previous_format_are_read_and_replaced(grown, tmp_path):
    """Kept scores keyed on text hashes (string text_a/text_b, no content hashes) and kept tokens without
    content hashes, as the previous version wrote them: their S_label are reused, every S_content is
    computed again, the tables equal a full rebuild's, and the files are written in the new format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, settings, mapping, _ = grown
    folder = store.local_root() / "derived" / "align"
    scores = pq.read_table(folder / incremental.KEPT)
    old = scores.drop_columns(["content_a", "content_b"])
    old = old.append_column("text_a", pa.array(["0" * 16] * old.num_rows)).append_column("text_b", pa.array(["0" * 16] * old.num_rows))
    pq.write_table(old.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
                                       for f in old.schema], metadata=scores.schema.metadata)), folder / incremental.KEPT)
    kept_tokens = pq.read_table(folder / tokens.TOKENS)
    pq.write_table(kept_tokens.drop_columns(["content"]), folder / tokens.TOKENS)
    again = align(store, settings, mapping=mapping)
    assert again.n_scored == again.n_pairs
    full_store, _ = _full_copy(store, tmp_path, settings, mapping)
    assert _tables(store) == _tables(full_store)
    assert pq.read_table(folder / incremental.KEPT).schema.field("content_a").type == pa.int64()
    assert "content" in pq.read_table(folder / tokens.TOKENS).column_names


def test_a_text_that_gained_lines_at_its_end_is_made_from_its_kept_head(tmp_path):
    """A text that extends a kept one by whole lines (new products whose ids sort last) is made from the
    kept text's tokens and its new lines: the same terms, in the same order, and counts as a text made
    from all its lines; the kept text may end in a title cut short (content_chars)."""
    from m5data.align.inventory import SubClass

    store = Store.init(tmp_path / "store")
    head = "红富士苹果 5斤 新鲜水果 陕西洛川\n赣南脐橙 10斤 新鲜水果 当季 橙子\n美素佳儿妈妈粉 400g 孕"  # cut mid-title
    sub = lambda text: SubClass("a", "L1", "水果", 1, 3, 3, text)
    first = tokens.TokenCache(store)
    first.content([sub(head)])
    first.save([sub(head)])
    for tail in ("Apple iPhone 15 Pro 手机 新鲜水果", "惠氏 妈妈奶粉\n佳贝艾特 孕产妇 妈妈 配方羊奶粉 橙子"):
        text = head + "\n" + tail
        kept = tokens.TokenCache(store)
        assert kept._kept_head(text) is not None
        fresh = tokens.TokenCache(store, full=True)
        assert kept.counted([text], 1, None) == fresh.counted([text], 1, None)
        assert kept.segmented_lines == len(tail.split("\n")) < fresh.segmented_lines


def test_an_incremental_align_on_s3_equals_a_full_rebuild(world, aws, s3_url, tmp_path):
    """On object storage: the kept files are objects, the review file (written in a thread, uploaded when
    the block ends) is an object, and the incremental run's tables and review file equal a full rebuild's
    over the same store."""
    first, _ = _split(world)
    store = Store.init(s3_url)
    mapping = world.write_mapping(tmp_path / "mapping.toml")
    settings = cfg.load(environ={}, overrides={"store.path": s3_url}, cwd=tmp_path)
    store.write("products", first)
    align(store, settings, mapping=mapping)
    assert store.read_bytes(f"derived/align/{incremental.KEPT}") is not None
    row = min((r for r in first if r["title"]), key=lambda r: r["product_id"])
    store.write("products", [{**row, "title": row["title"] + " ZX9000"}])  # a term its sub-class lacks
    again = align(store, settings, mapping=mapping)
    assert again.stats.details["changes"]["changed"] == 1 and 0 < again.n_scored < again.n_pairs
    review = store.read_text("derived/align/review.csv")
    tables = _tables(store)
    full = align(store, settings, mapping=mapping, full=True)
    assert full.n_scored == full.n_pairs
    assert _tables(store) == tables and store.read_text("derived/align/review.csv") == review


def test_a_review_file_that_cannot_be_written_fails_the_run_before_its_state(grown, monkeypatch):
    """The review file is written in a thread beside the kept files: its error is the run's error, raised
    before the state is saved, so the next run does the work again (and writes the file)."""
    from m5data.align import review as review_file

    store, settings, mapping, _ = grown
    before = changes.load_state(store, "align")
    write = review_file.write

    def refused(path, table):
        raise OSError(f"{path}: no space left on device")

    with monkeypatch.context() as m:
        m.setattr(review_file, "write", refused)
        with pytest.raises(OSError, match="no space left"):
            align(store, settings, mapping=mapping)
    assert changes.load_state(store, "align") == before
    assert review_file.write is write
    again = align(store, settings, mapping=mapping)
    assert again.stats.n_in > 0 and again.review_path.is_file()


def test_progress_never_reports_more_done_than_its_total(world, tmp_path):
    """Each step counts in one unit: segmenting counts titles against the titles to segment (issue
    75, 15: it counted lines against sub-classes, 290/136), a full run's and an incremental one's."""
    first, grown_rows = _split(world)
    store = Store.init(tmp_path / "store")
    mapping = world.write_mapping(tmp_path / "mapping.toml")
    settings = cfg.load(environ={}, cwd=tmp_path)
    calls = []

    def progress(step, done, total):
        calls.append((step, done, total))

    store.write("products", first)
    align(store, settings, mapping=mapping, progress=progress)
    store.write("products", grown_rows)
    align(store, settings, mapping=mapping, progress=progress)
    steps = {step for step, _, _ in calls}
    assert "segmenting titles" in steps and "cosines" in steps, steps
    assert [c for c in calls if c[1] > c[2]] == [], sorted({c for c in calls if c[1] > c[2]})[:5]
    segmenting = [c for c in calls if c[0] == "segmenting titles"]
    assert any(done == total for _, done, total in segmenting)  # it ends at its total


def test_kept_rows_read_back_are_written_as_the_same_bytes_as_rows_made_now(store):
    """A run that kept some texts' tokens (read back from the kept file: Parquet names list items
    ``element``) writes the file a run that made them all writes (``item``), byte for byte: chaos compares
    kept files so (one S3 chaos run in seven differed after a run resumed from a paused one's file)."""
    import pyarrow as pa

    from m5data.align.tokens import read_kept_table, write_kept_table

    def rows(texts):
        return pa.table({"text": texts, "terms": pa.array([[t, t * 2] for t in texts], pa.list_(pa.string())),
                         "counts": pa.array([[1, 2] for _ in texts], pa.list_(pa.int32()))})

    write_kept_table(store, "kept.parquet", rows(["a", "b"]))
    kept = read_kept_table(store, "kept.parquet")
    assert kept.schema.field("terms").type.value_field.name != "item"  # as Parquet names them
    write_kept_table(store, "resumed.parquet", pa.concat_tables([kept, rows(["c"])]).sort_by("text"))
    write_kept_table(store, "made.parquet", rows(["a", "b", "c"]))
    assert store.read_bytes("derived/align/resumed.parquet") == store.read_bytes("derived/align/made.parquet")
