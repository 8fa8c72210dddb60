"""What the ``splits`` parts' footers say of the versions they hold, without reading their rows.

A split version is written in one go (one group of the table), so a part's row groups usually each
hold one version, and Parquet's row-group statistics (min = max of ``version``) say which. The
store's versions (``queries.py``: which is current, which parts hold the report's) and export (the
parts holding one version) read them instead of the table's view, whose window over every version's
rows cost 1.8-2.7 CPU s at 1M products in each of those reads.
"""

from __future__ import annotations


def group_versions(part) -> list[str] | None:
    """The version of each non-empty row group of a local ``splits`` part, where its statistics say it
    holds one version (min = max, no null); None where one does not, or the footer cannot be read (the
    caller reads the rows)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(part).metadata
        at_version = meta.schema.names.index("version")
    except (OSError, ValueError):
        return None
    out = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if not group.num_rows:
            continue
        st = group.column(at_version).statistics
        if st is None or not st.has_min_max or st.null_count or st.min != st.max:
            return None
        out.append(st.min)
    return out
