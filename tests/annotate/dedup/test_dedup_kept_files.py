"""dedup's kept pairs file carries its FORMAT and is refused when read with another (the next run is then a
full one), and the exact rules' keys are one list that the search and the bucket cap both read."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m5data.annotate.dedup import kept_pairs
from m5data.storage import Store


def test_a_kept_pairs_file_of_another_format_is_not_read(tmp_path):
    store = Store.init(tmp_path / "store")
    ids = pa.array(["a", "b", "c"])
    edges = [(np.array([0]), np.array([1]), np.array([0.0]), "exact_title")]
    rel = kept_pairs.save_edges(store, ids, edges)
    table = kept_pairs.load_edges(store, rel)
    assert table is not None and table.num_rows == 1
    assert table.schema.metadata[kept_pairs.FORMAT_KEY] == str(kept_pairs.FORMAT).encode()
    older = table.replace_schema_metadata({**table.schema.metadata, kept_pairs.FORMAT_KEY: b"1"})
    buf = io.BytesIO()
    pq.write_table(older, buf)
    store.write_bytes("derived/dedup/edges-older.parquet", buf.getvalue())
    assert kept_pairs.load_edges(store, "derived/dedup/edges-older.parquet") is None


def test_the_exact_keys_are_the_exact_rules():
    from m5data.annotate.dedup.groups import RULES
    from m5data.annotate.dedup.reads import Inputs

    n = 3
    inp = Inputs(ids=pa.array(["a", "b", "c"]), blob=np.arange(n), title_key=np.arange(n) + 10,
                 has_title=np.ones(n, bool), phash=np.zeros(n, np.uint64), has_phash=np.zeros(n, bool),
                 phash_given=np.zeros(n, bool), n_spec_rows=np.zeros(n, np.int64))
    rules = [rule for rule, _ in inp.exact_keys()]
    assert rules == [r for r in RULES if r.startswith("exact_")]
    assert [codes.tolist() for _, codes in inp.exact_keys()] == [[0, 1, 2], [10, 11, 12]]
