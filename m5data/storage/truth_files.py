"""Where a demo world's ground truth is (``<shop>/truth/<name>``, written by m5data/demo/truth.py), the one
reader every ``--truth`` / ``--score-against`` option goes through: the user may name the file, the truth
folder or the shop folder, and a missing file is one error naming where it was looked for.

Here, beside the store, because stages score against it (align, dedup, match_level, pools, crowd) and the
demo writes it: the stages do not import the demo."""

from __future__ import annotations

from pathlib import Path

FOLDER = "truth"


def truth_folder(path: str | Path) -> Path:
    """The truth folder of ``path``: the shop folder's ``truth/``, else ``path`` itself."""
    path = Path(path)
    return path / FOLDER if (path / FOLDER).is_dir() else path


def truth_file(path: str | Path, *names: str) -> Path:
    """The first of ``names`` (``products.parquet``, ...) in the truth of ``path``, or ``path`` itself when it
    is a file; FileNotFoundError naming the folder looked in when there is none."""
    path = Path(path)
    if path.is_file():
        return path
    folder = truth_folder(path)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no truth {' or '.join(names)} in {folder} (give the demo shop's folder or its truth folder)")


def truth_rows(path: str | Path, name: str, columns: list[str] | None = None) -> list[dict]:
    """The rows of the truth table ``name`` (``products.parquet``, ...) of ``path`` (see :func:`truth_file`)."""
    import pyarrow.parquet as pq

    return pq.read_table(truth_file(path, name), columns=columns).to_pylist()


def true_instances(path: str | Path) -> dict[str, str]:
    """product_id -> instance_id: which listings are one real product, from ``truth/products.parquet``."""
    import pyarrow.parquet as pq

    table = pq.read_table(truth_file(path, "products.parquet"), columns=["product_id", "instance_id"]).to_pydict()
    return dict(zip(table["product_id"], table["instance_id"]))
