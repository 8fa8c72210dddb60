"""A demo shop's truth (``truth/products.parquet``: each product's instance), for the ``--score-against``
option of the dedup and match-level verbs."""

from __future__ import annotations

from pathlib import Path

from ...verbs import one_line_errors


def read_truth_products(path: str | Path) -> list[dict]:
    """The demo shop's ``truth/products.parquet`` rows (``path``: the file, the truth folder or the shop)."""
    from ...storage.truth_files import truth_rows

    rows = truth_rows(path, "products.parquet")
    if rows and "product_id" not in rows[0]:
        raise ValueError(f"truth {path} has no product_id column")
    return rows


def read_truth(path: Path | None) -> list[dict] | None:
    """A demo shop's truth products (``--score-against``), or None without one; a bad path is one line, exit 1."""
    if path is None:
        return None
    with one_line_errors(FileNotFoundError, ValueError):  # plain text: the path is the user's
        return read_truth_products(path)
