"""Hostile input and disk damage (issue 10): sql --output escapes, the sql sandbox, corrupt parts,
csv/json output of awkward results."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from support.store_samples import file_hashes, filled_store
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store, StoreError

runner = CliRunner()


@pytest.fixture
def filled(tmp_path):
    return filled_store(tmp_path / "store")


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "m5data", *args], capture_output=True, text=True, cwd=cwd, env=env)


def _halve(part):
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------- defect 2: --output escapes
@pytest.mark.parametrize("how", ["dotdot", "symlink_dir", "symlink_file"])
def test_sql_output_cannot_reach_into_the_store_by_dotdot_or_symlink(filled, tmp_path, how):
    part_name = "part-99999999999999999999-injected.parquet"
    target = filled.table_dir("products") / part_name
    (tmp_path / "other").mkdir()
    if how == "dotdot":
        out = tmp_path / "other" / ".." / "store" / "tables" / "products" / part_name
    elif how == "symlink_dir":
        (tmp_path / "link").symlink_to(filled.table_dir("products"))
        out = tmp_path / "link" / part_name
    else:
        (tmp_path / "other" / "x.parquet").symlink_to(target)
        out = tmp_path / "other" / "x.parquet"
    before = file_hashes(filled.root)
    result = m5(filled, "sql", "SELECT * FROM products", "--format", "parquet", "--output", str(out))
    assert result.exit_code == 2, result.output
    assert "inside the store" in result.output
    assert not target.exists() and file_hashes(filled.root) == before
    assert filled.count("products") == 4


# ------------------------------------------------------------------------------- the sql sandbox
@pytest.mark.parametrize("query", [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
])
def test_sql_reads_only_the_store(filled, query):
    result = m5(filled, "sql", query)
    assert result.exit_code == 1, result.output
    assert "SQL error" in result.output and "root:" not in result.output


def test_sql_sandbox_cannot_be_reconfigured_and_loads_no_extension(filled):
    from m5data.storage.sql import run_query

    for statement in ["SELECT current_setting('enable_external_access') AS v",
                      "SELECT current_setting('lock_configuration') AS v",
                      "SELECT current_setting('autoinstall_known_extensions') AS v",
                      "SELECT current_setting('autoload_known_extensions') AS v"]:
        value = run_query(filled, statement).to_pylist()[0]["v"]
        assert value in (False, True)
        assert value is ("lock_configuration" in statement)


def test_sql_reads_store_files_and_unsafe_lifts_the_sandbox(filled, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("hello from outside")
    part = filled.parts("products")[0]
    result = m5(filled, "sql", f"SELECT count(*) AS n FROM read_parquet('{part}')", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.output.splitlines()[0])["n"] == 4
    assert m5(filled, "sql", f"SELECT content FROM read_text('{outside}')").exit_code == 1
    result = m5(filled, "sql", f"SELECT content FROM read_text('{outside}')", "--unsafe", "--format", "json")
    assert result.exit_code == 0 and "hello from outside" in result.output


# -------------------------------------------------------------------- defect 11: csv/json output
def test_csv_with_list_columns_serialises_lists(filled, tmp_path):
    result = m5(filled, "sql", "SELECT product_id, category_path FROM products ORDER BY 1", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5 and json.loads(next(iter(__import__("csv").reader([lines[1]])))[1]) == ["级别0", "子类0"]
    out = tmp_path / "p.csv"
    result = m5(filled, "sql", "SELECT product_id, category_path FROM products", "--format", "csv", "-o", str(out))
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 5


def test_json_output_with_a_trailing_comment(filled, tmp_path):
    out = tmp_path / "p.json"
    result = m5(filled, "sql", "SELECT product_id FROM products ORDER BY 1 -- newest first", "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["product_id"] for line in out.read_text().splitlines()][:1] == ["product_id-值-0"]


# ----------------------------------------------------------------------- defect 6: corrupt parts
def test_corrupt_part_leaves_other_tables_readable_and_is_named(filled, tmp_path):
    part = filled.parts("specs")[0]
    _halve(part)
    proc = cli("--store", str(filled.root), "sql", "SELECT count(*) AS n FROM products", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 4
    proc = cli("--store", str(filled.root), "sql", "SELECT count(*) FROM specs", cwd=tmp_path)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and str(part) in proc.stderr and "Traceback" not in proc.stderr
    assert filled.count("products") == 4  # the store API: other tables too
    with pytest.raises(StoreError, match=str(part)):  # CorruptPart
        filled.read("specs")


@pytest.mark.parametrize("verb", [["compact"], ["compact", "specs"], ["download", "--no-progress"],
                                  ["extract", "--no-progress"]])
def test_stages_fail_in_one_line_naming_a_corrupt_part(filled, tmp_path, verb):
    part = filled.parts("specs")[0]
    _halve(part)
    filled.write("media", [{"media_id": "m1", "product_id": "a:1", "kind": "image", "status": "pending",
                            "url": "http://127.0.0.1:9/x.jpg"}])
    proc = cli("--store", str(filled.root), *verb, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and str(part) in errors[0], proc.stderr
    if verb == ["compact"]:  # the other tables were compacted all the same
        assert Store.open(filled.root).is_compacted("products")


def test_data_page_corruption_is_a_store_error_naming_the_table(filled):
    """A part whose footer is fine but whose data is not: a read fails with one StoreError."""
    part = filled.parts("products")[0]
    data = bytearray(part.read_bytes())
    meta = pq.ParquetFile(part).metadata
    start = meta.row_group(0).column(0).data_page_offset
    for i in range(start + 4, min(start + 60, len(data) - 200)):
        data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="products"):
        filled.read("products")
