"""``catalog.duckdb``: DuckDB on it reads what the store reads, after every kind of write and stage,
and from a copied or moved store folder (issue 55, item 8)."""

import shutil

import duckdb
import pytest
from support.store_samples import sample_rows

from m5data.storage import TABLES, Store


def catalog_counts(catalog, **config) -> dict[str, int]:
    """Rows of every table's view, as a plain DuckDB client reads the catalog file."""
    con = duckdb.connect(str(catalog), read_only=True, config=config)
    try:
        return {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in TABLES}
    finally:
        con.close()


def store_counts(store) -> dict[str, int]:
    return {name: store.count(name) for name in TABLES}


def test_the_catalog_counts_what_the_store_reads_after_each_kind_of_write(store):
    assert catalog_counts(store.catalog_path) == store_counts(store)
    store.write("products", sample_rows("products", 3))  # a table's first part
    assert catalog_counts(store.catalog_path) == store_counts(store)
    store.write("captions", sample_rows("captions", 2))  # a table first written after the others
    assert catalog_counts(store.catalog_path)["captions"] == 2
    store.compact("products")
    store.write("products", sample_rows("products", 1))  # a key written again after a compaction
    assert store.count("products") == 3
    assert catalog_counts(store.catalog_path) == store_counts(store)
    store.replace("splits", sample_rows("splits", 4))  # a table first written whole
    with store.writer("pools") as out:  # and one streamed
        out.write(sample_rows("pools", 5))
    store.replace("captions", sample_rows("captions", 1))
    store.write("captions", sample_rows("captions", 2, start=5))
    counts = catalog_counts(store.catalog_path)
    assert counts == store_counts(store)
    assert (counts["splits"], counts["pools"], counts["captions"]) == (4, 5, 3)


def test_every_view_has_its_tables_columns_empty_or_not(store):
    """An empty table's view globs too: its columns and types are the store's before and after its first part."""
    def described(con, name):
        return [row[:2] for row in con.execute(f"DESCRIBE {name}").fetchall()]

    def catalog_rows(name):
        con = duckdb.connect(str(store.catalog_path), read_only=True)
        try:
            return described(con, name), sorted(map(repr, con.execute(f"SELECT * FROM {name}").fetchall()))
        finally:
            con.close()

    def store_rows(name):
        with store.connect() as con:
            return described(con, name), sorted(map(repr, con.execute(f"SELECT * FROM {name}").fetchall()))

    for name in TABLES:
        assert catalog_rows(name) == store_rows(name), name
        store.write(name, sample_rows(name, 3))
        assert catalog_rows(name) == store_rows(name), name


def test_a_stage_verb_leaves_the_catalog_current(tmp_path):
    from support.cli_inprocess import invoke
    from support.splits_store import write_synthetic

    store = Store.init(tmp_path / "store")
    write_synthetic(store, 400, n_categories=20)
    res = invoke("--store", str(store.root), "build-splits")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = catalog_counts(store.catalog_path)
    assert counts == store_counts(store)
    assert counts["splits"] == 400 and counts["runs"] >= 1


def test_a_stage_of_the_flow_leaves_the_catalog_current(tmp_path, prefect_harness):
    from support.splits_store import write_synthetic
    from typer.testing import CliRunner

    from m5data.cli import app

    store = Store.init(tmp_path / "store")
    write_synthetic(store, 400, n_categories=20)
    store.write("runs", sample_rows("runs", 2))
    store.compact("runs")  # the flow's runs row then lands beside a compacted part
    result = CliRunner().invoke(app, ["--store", str(store.root), "run", "--stages", "splits", "--no-progress"])
    assert result.exit_code == 0, result.output
    counts = catalog_counts(store.catalog_path)
    assert counts == store_counts(store)
    assert counts["splits"] == 400 and counts["runs"] == 3


def test_a_copied_store_reads_the_copy_not_the_original(tmp_path):
    original = Store.init(tmp_path / "original")
    original.write("products", sample_rows("products", 3))
    copy = tmp_path / "copy"
    shutil.copytree(original.root, copy)
    original.write("products", sample_rows("products", 4, start=3))  # the original changes after the copy
    original.write("captions", sample_rows("captions", 2))
    assert catalog_counts(original.catalog_path)["products"] == 7
    counts = catalog_counts(copy / "catalog.duckdb")
    assert (counts["products"], counts["captions"]) == (3, 0)
    assert counts == store_counts(Store.open(copy))
    shutil.rmtree(original.root)
    assert catalog_counts(copy / "catalog.duckdb")["products"] == 3


def test_a_moved_store_reads_from_any_working_directory(tmp_path, monkeypatch):
    store = Store.init(tmp_path / "here")
    store.write("products", sample_rows("products", 3))
    store.write("specs", sample_rows("specs", 2))
    (tmp_path / "there").mkdir()
    moved = tmp_path / "there" / "store"
    shutil.move(store.root, moved)
    expected = store_counts(Store.open(moved))
    assert expected["products"] == 3
    monkeypatch.chdir(tmp_path)
    assert catalog_counts("there/store/catalog.duckdb") == expected
    monkeypatch.chdir(moved)
    assert catalog_counts("catalog.duckdb") == expected
    monkeypatch.chdir("/")
    assert catalog_counts(moved / "catalog.duckdb") == expected


def test_a_catalog_opened_another_way_says_how_to_open_it(store, tmp_path):
    """The views find their store from the catalog file's place: where DuckDB does not say it (ATTACH,
    a temp_directory set), a read fails naming the way that works instead of reading somewhere else."""
    store.write("products", sample_rows("products", 2))
    with pytest.raises(duckdb.Error, match=r"catalog\.duckdb.*read_only=True"):
        catalog_counts(store.catalog_path, temp_directory=str(tmp_path / "spill"))
    con = duckdb.connect()
    con.execute(f"ATTACH '{store.catalog_path}' AS m (READ_ONLY)")
    with pytest.raises(duckdb.Error, match=r"catalog\.duckdb.*read_only=True"):
        con.execute("SELECT count(*) FROM m.products").fetchall()
    con.close()


def test_a_process_takes_the_views_from_their_record_while_the_catalog_file_is_the_one_recorded(store):
    """``catalog.views.json`` records the views with the catalog file's identity: a process reads them
    there (no DuckDB connection to the file); once other bytes are written into the file, or another file
    replaces it, the record is not that file's and the file itself is read; ``m5data doctor`` always reads it."""
    import json

    from m5data.storage import catalog

    record_path = store.local_root() / catalog.CATALOG_VIEWS
    record = json.loads(record_path.read_text())
    assert tuple(record["catalog"]) == catalog._identity(store.catalog_path.stat())
    assert record["views"] == store.catalog_views()
    # a record that names this very file is believed: its (here altered) views are what the process sees
    record["views"]["products"] = "SELECT 1"
    record_path.write_text(json.dumps(record))
    catalog._read.clear()
    assert store._catalog_views()["products"] == "SELECT 1"
    assert store._catalog_views(verify=True) == store.catalog_views()  # doctor's read opens the file
    # the same bytes written again: the file's times changed, the record is not its own any more
    catalog._read.clear()
    store.catalog_path.write_bytes(store.catalog_path.read_bytes())
    assert store._catalog_views() == store.catalog_views()
    # a rebuild writes the record again
    assert store.refresh_catalog()
    store.write("workers", [{"worker_id": "w", "ability": 1.0}])
    store.compact("workers")
    assert json.loads(record_path.read_text())["views"] == store.catalog_views()
