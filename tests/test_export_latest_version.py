"""The split version an export takes by default (the one written last) read from the parts' footers
equals the query over the rows: versions written apart, an older one written again, ties in one write,
and a compacted table whose row groups hold several versions (the query then answers)."""

import pytest

from m5data.export import samples
from m5data.storage import Store


def _rows(version: str, n: int) -> list[dict]:
    return [{"version": version, "split": "train", "product_id": f"a:{i}"} for i in range(n)]


def _by_query(store) -> str | None:
    """The query's answer (the footers' path switched off)."""
    real = samples._latest_from_footers
    samples._latest_from_footers = lambda *a: None
    try:
        return samples.latest_version(store)
    finally:
        samples._latest_from_footers = real


@pytest.mark.parametrize("steps", [
    ["v1", "v2", "v3"],
    ["v2", "v1"],            # written later wins over a higher name
    ["v1", "v2", "v1"],      # an older version written again
    [("v1", "v2")],          # one write of two versions: the tie goes by name
    [("v3", "v1"), "v2"],
])
def test_the_footers_name_the_version_the_query_names(tmp_path, steps):
    store = Store.open(tmp_path / "s", create=True)
    assert samples.latest_version(store) is None
    for step in steps:
        rows = [r for v in (step if isinstance(step, tuple) else (step,)) for r in _rows(v, 3)]
        store.write("splits", rows)
        found = samples._latest_from_footers(store, store.parts("splits"))
        assert samples.latest_version(store) == _by_query(store)
        # a write of one version is its own row groups: the footers say; one of two versions is one row group
        assert found == _by_query(store) if all(isinstance(s, str) for s in steps) else found in (None, _by_query(store))


def test_a_compacted_table_of_several_versions_per_row_group_is_answered_by_the_query(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    for v in ("v1", "v2", "v3", "v2"):
        store.write("splits", _rows(v, 4))
    expected = _by_query(store)
    store.compact("splits")
    assert samples.latest_version(store) == _by_query(store) == expected == "v2"
    found = samples._latest_from_footers(store, store.parts("splits"))
    assert found in (None, expected)  # a row group holding several versions: the footers do not say
