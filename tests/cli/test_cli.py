"""The CLI: init, config show, sql (read-only), stats, compact; one-line errors."""

import json
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from support.store_samples import file_hashes, filled_store, sample_rows
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store

runner = CliRunner()


@pytest.fixture
def filled(tmp_path):
    store = filled_store(tmp_path / "store")
    store.refresh_catalog()
    return store


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def test_sql_prints_a_table_and_writes_files(filled, tmp_path):
    result = m5(filled, "sql", "SELECT property, count(*) AS n, count(DISTINCT value) AS d FROM specs GROUP BY 1 ORDER BY 1")
    assert result.exit_code == 0, result.output
    assert "品牌" in result.output and "颜色" in result.output
    out = tmp_path / "specs.parquet"
    assert m5(filled, "sql", "SELECT * FROM specs", "--format", "parquet", "--output", str(out)).exit_code == 0
    assert pq.read_table(out).num_rows == 8
    out_json = tmp_path / "p.json"
    assert m5(filled, "sql", "SELECT product_id FROM products ORDER BY 1", "--format", "json", "-o", str(out_json)).exit_code == 0
    assert [json.loads(line)["product_id"] for line in out_json.read_text().splitlines()][0] == "product_id-值-0"
    result = m5(filled, "sql", "SELECT product_id FROM products ORDER BY 1 LIMIT 2", "--format", "csv")
    assert result.output.splitlines()[0].strip('"') == "product_id" and len(result.output.splitlines()) == 3


def test_sql_shows_wide_rows_as_records_and_narrow_ones_as_a_table(filled):
    import io

    from rich.console import Console

    from m5data.console import arrow_table

    wide = m5(filled, "sql", "SELECT * FROM products ORDER BY product_id LIMIT 2")
    assert wide.exit_code == 0, wide.output
    lines = wide.output.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith("row ")] == [["row", "1"], ["row", "2"]]
    for column in ("product_id", "title", "crawled_at", "content_hash"):  # one line per column and row
        assert sum(line.startswith(column + " ") for line in lines) == 2
    assert max(len(line) for line in lines) <= 80 + 2  # nothing folded into one-character columns
    narrow = m5(filled, "sql", "SELECT platform, count(*) AS n FROM products GROUP BY 1")
    assert "┃ platform" in narrow.output and "row 1" not in narrow.output
    table = filled.connect().sql("SELECT * FROM products LIMIT 1").to_arrow_table()
    wide_terminal = Console(width=400, file=io.StringIO())  # the same wide row has room for columns at 400 cells
    wide_terminal.print(arrow_table(table, width=400))
    assert "row 1" not in wide_terminal.file.getvalue() and "┃ product_id" in wide_terminal.file.getvalue()


REFUSED = [
    "INSERT INTO products (product_id) VALUES ('x:1')",
    "UPDATE products SET title = 'x'",
    "DELETE FROM specs",
    "DROP VIEW products",
    "CREATE TABLE t AS SELECT 1",
    "COPY products TO '{tmp}/out.csv'",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "PRAGMA enable_profiling",
    "PRAGMA threads = 1",
    "SET threads = 1",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '{tmp}/dump'",
    "CHECKPOINT",
    "SELECT 1; DELETE FROM specs",
    "EXPLAIN ANALYZE DELETE FROM specs",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_sql_refuses_writes_and_leaves_the_store_unchanged(filled, tmp_path, statement):
    before = file_hashes(filled.root)
    result = m5(filled, "sql", statement.format(tmp=tmp_path))
    assert result.exit_code == 2, result.output
    assert "refused" in result.output and "read-only" in result.output
    assert file_hashes(filled.root) == before
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_sql_refuses_output_inside_the_store(filled):
    result = m5(filled, "sql", "SELECT 1", "--format", "csv", "--output", str(filled.local_root() / "x.csv"))
    assert result.exit_code == 2 and not (filled.local_root() / "x.csv").exists()


def test_read_only_pragma_is_allowed(filled):
    result = m5(filled, "sql", "PRAGMA show_tables")
    assert result.exit_code == 0 and "products" in result.output


def test_stats_and_compact(filled):
    filled.write("products", sample_rows("products", 2, start=10))
    result = m5(filled, "stats")
    assert result.exit_code == 0, result.output
    assert re.search(r"\(all products\)\s*│\s*6\s*│", result.output), result.output
    assert "品牌" in result.output
    result = m5(filled, "compact")
    assert result.exit_code == 0 and "products: 2 part(s) -> 1" in result.output


def test_init_and_config_show(tmp_path):
    result = runner.invoke(app, ["--store", str(tmp_path / "new"), "--set", "download.retries=5", "init"])
    assert result.exit_code == 0 and (tmp_path / "new" / "store.json").is_file()
    result = runner.invoke(app, ["--set", "download.retries=5", "config", "show"])
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if "download.retries" in line)
    assert "5" in line and "flag" in line


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "m5data.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args, needle", [
    (["--store", "{tmp}/missing", "stats"], "no m5data store at {tmp}/missing"),
    (["--store", "{tmp}/store", "sql", "SELEC oops"], "SQL does not parse"),
    (["--store", "{tmp}/store", "sql", "SELECT * FROM no_such_table"], "no_such_table"),
    (["--set", "download.concurrency=lots", "config", "show"], "download.concurrency: expected int"),
])
def test_errors_are_one_line(tmp_path, args, needle):
    Store.init(tmp_path / "store")
    proc = cli(*[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle.format(tmp=tmp_path) in lines[0] and "Traceback" not in proc.stderr


def test_corrupt_part_is_one_line_naming_the_file(tmp_path):
    store = Store.init(tmp_path / "store")
    store.write("products", sample_rows("products", 1))
    part = store.parts("products")[0]
    part.write_bytes(b"garbage")
    proc = cli("--store", str(store.root), "stats", cwd=tmp_path)
    assert proc.returncode != 0 and str(part) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
