"""storage/truth_files.py: a demo world's truth is found the same way by every option that reads it (the
file, the truth folder or the shop folder), and a missing one is one error naming where it looked."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m5data.storage.truth_files import true_instances, truth_file, truth_rows


@pytest.fixture
def shop(tmp_path):
    (tmp_path / "truth").mkdir()
    pq.write_table(pa.table({"product_id": ["a", "b", "c"], "instance_id": ["i1", "i1", "i2"]}),
                   tmp_path / "truth" / "products.parquet")
    (tmp_path / "truth" / "alignment.jsonl").write_text("{}\n")
    return tmp_path


def test_the_shop_the_truth_folder_and_the_file_name_the_same_table(shop):
    file = shop / "truth" / "products.parquet"
    assert truth_file(shop, "products.parquet") == truth_file(shop / "truth", "products.parquet") == file
    assert truth_file(file, "anything") == file
    assert true_instances(shop) == {"a": "i1", "b": "i1", "c": "i2"} == true_instances(file)
    assert [r["product_id"] for r in truth_rows(shop / "truth", "products.parquet")] == ["a", "b", "c"]


def test_the_first_of_several_names_is_taken(shop):
    assert truth_file(shop, "alignment.parquet", "alignment.jsonl").name == "alignment.jsonl"


def test_a_missing_truth_names_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no truth products.parquet in {tmp_path}"):
        true_instances(tmp_path)
