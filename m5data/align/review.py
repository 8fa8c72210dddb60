"""The review file: every candidate pair with its scores and decision, for a person to check.

One row per candidate pair (CSV, UTF-8 with BOM so spreadsheets show Chinese, or Parquet by the
file's extension), sorted by ``|margin|`` so the borderline pairs come first. A reviewer edits two
columns and re-applies the file with ``m5data align --review FILE``:

* ``review``: empty (keep the automatic decision), ``accept`` (merge this pair) or ``reject``
  (keep it apart; a group that other accepted pairs still connect stays connected);
* ``rename``: a name for the unified sub-class this pair's merged group becomes.

Re-applying reads ``s_label`` and ``s_content`` from the file instead of recomputing them (a pair
the file lacks, e.g. for a sub-class that appeared since, is scored anew), re-derives the automatic
decisions with the current thresholds, then applies the overrides.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..errors import UserError
from .candidates import PairKey

COLUMNS = [
    "class_id", "class_name",
    "platform_a", "level1_a", "sub_class_a", "products_a",
    "platform_b", "level1_b", "sub_class_b", "products_b",
    "s_label", "s_content", "decision", "reason", "margin",
    "review", "rename", "final", "sub_class_id", "group_name",
]
_INT = {"class_id", "products_a", "products_b", "sub_class_id"}
_FLOAT = {"s_label", "s_content", "margin"}
_ACCEPT = {"accept", "accepted", "merge", "yes", "y", "1", "true"}
_REJECT = {"reject", "rejected", "keep", "no", "n", "0", "false"}


class ReviewError(UserError, ValueError):
    """A review file that cannot be read at all; the message names the file."""


@dataclass
class Reviewed:
    """What a review file holds: scores and overrides by pair, plus per-row problems."""

    scores: dict[PairKey, tuple[float, float]] = field(default_factory=dict)
    review: dict[PairKey, str] = field(default_factory=dict)  # "accept" | "reject"
    rename: dict[PairKey, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # "FILE row N: ..." lines


TYPES = {c: pa.int64() if c in _INT else pa.float64() if c in _FLOAT else pa.string() for c in COLUMNS}


def write(path: str | Path, table: pa.Table) -> int:
    """Write the review table (``COLUMNS``; CSV or Parquet by extension) atomically; returns its size in bytes.

    CSV: UTF-8 with a BOM, written by Arrow (every string quoted, an empty cell for a missing value or
    NaN, a float in the shortest form that reads back to the same number, e.g. ``1`` for 1.0)."""
    import pyarrow.compute as pc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    parquet = path.suffix.lower() == ".parquet"
    columns = []
    for c in COLUMNS:
        col = table.column(c)
        if parquet or not pa.types.is_dictionary(col.type):  # the CSV writer spells a dictionary's strings out
            col = col.cast(TYPES[c])
        if c in _FLOAT:  # NaN -> missing
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col)
        columns.append(col)
    table = pa.Table.from_arrays(columns, names=COLUMNS)
    if parquet:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    else:
        import pyarrow.csv as pcsv

        with open(tmp, "wb") as fh:
            fh.write("\ufeff".encode())  # the BOM: spreadsheets then read the file as UTF-8
            pcsv.write_csv(table, fh, pcsv.WriteOptions(quoting_style="needed"))
    tmp.replace(path)
    return path.stat().st_size


def read(path: str | Path) -> Reviewed:
    """Read a (possibly edited) review file; bad rows are listed in ``problems``, not fatal."""
    path = Path(path)
    if not path.is_file():
        raise ReviewError(f"review file not found: {path}")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            records = [{k: ("" if v is None else v) for k, v in r.items()} for r in pq.read_table(path).to_pylist()]
        else:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                records = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, pa.ArrowException, csv.Error) as exc:
        raise ReviewError(f"review file {path} cannot be read: {exc}") from None
    needed = {"platform_a", "level1_a", "sub_class_a", "platform_b", "level1_b", "sub_class_b", "s_label", "s_content"}
    if records and (missing := needed - set(records[0])):
        raise ReviewError(f"review file {path} lacks column(s) {', '.join(sorted(missing))}")
    out = Reviewed()
    for n, rec in enumerate(records, start=2):  # row 1 is the header in a spreadsheet
        where = f"{path} row {n}"
        try:
            key = tuple(str(rec[c]) for c in ("platform_a", "level1_a", "sub_class_a",
                                              "platform_b", "level1_b", "sub_class_b"))
            s_label = float(rec["s_label"])
            s_content = float(rec["s_content"]) if str(rec["s_content"]).strip() != "" else math.nan
        except (TypeError, ValueError):
            out.problems.append(f"{where}: s_label/s_content is not a number; pair ignored")
            continue
        out.scores[key] = (s_label, s_content)
        verdict = str(rec.get("review") or "").strip().lower()
        if verdict in _ACCEPT:
            out.review[key] = "accept"
        elif verdict in _REJECT:
            out.review[key] = "reject"
        elif verdict:
            out.problems.append(f"{where}: review {rec['review']!r} is not accept or reject; automatic decision kept")
        name = str(rec.get("rename") or "").strip()
        if name:
            out.rename[key] = name
    return out
