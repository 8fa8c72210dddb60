"""Reading a crowd judgements file (CSV or JSONL) record by record, never a line held whole beyond
:data:`MAX_LINE_BYTES`: a record that cannot be read (not UTF-8, bad JSON or CSV, too long) is a
ValueError with the reason and its line number, and the reading goes on.

Used by the judgements import (:mod:`.crowd`) and the labelling UI's gold file (:func:`.ui.tasks.read_gold`);
knows nothing of the fields.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

# bytes of one line of a judgements file (a judgement is a few hundred bytes): a longer line is one
# rejected record, read past in chunks and never held whole
MAX_LINE_BYTES = 1 << 20
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape
NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"


def _bounded_lines(fh, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Each line of a binary file, or None for a line over ``limit`` bytes (skipped in chunks)."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _too_long() -> ValueError:
    return ValueError(f"line longer than {MAX_LINE_BYTES:,} bytes (not read)")


def read_rows(path: Path, header_error: type[Exception] = ValueError):
    """(line number, dict or ValueError) per record of a CSV or JSONL file; a record that cannot be
    read (not UTF-8, bad JSON or CSV, a line over :data:`MAX_LINE_BYTES`) is a ValueError with the
    reason, and the reading goes on. A CSV file whose header cannot be read raises ``header_error``."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as fh:
            for n, raw in enumerate(_bounded_lines(fh), 1):
                if raw is None:
                    yield n, _too_long()
                    continue
                try:
                    line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError:
                    yield n, ValueError(NOT_UTF8)
                    continue
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, ValueError(f"not JSON: {exc.msg}")
                    continue
                except RecursionError:
                    yield n, ValueError("not a judgement: JSON nested too deep")
                    continue
                if not isinstance(rec, dict):
                    yield n, ValueError("not a JSON object")
                    continue
                data = rec.get("data")  # a Label Studio-style task: fields under "data"
                yield n, ({**data, **{k: v for k, v in rec.items() if k != "data"}} if isinstance(data, dict) else rec)
    else:
        with path.open("rb") as fh:
            too_long: list[int] = []  # line numbers of over-long lines, handed to the csv module as blank
            try:
                records = csv_records(_csv_text(fh, too_long))
            except csv.Error as exc:
                raise header_error(f"{path}, line 1: unreadable CSV header ({exc})") from None
            for start, rec in records:
                while too_long and too_long[0] < start:
                    yield too_long.pop(0), _too_long()
                if isinstance(rec, csv.Error):
                    yield start, ValueError(f"unreadable CSV record: {rec}")
                    continue
                if any(_NOT_UTF8.search(str(v)) for kv in rec.items() for v in kv):
                    yield start, ValueError(NOT_UTF8)
                    continue
                yield start, rec
            for line in too_long:
                yield line, _too_long()


def _csv_text(fh, too_long: list[int]) -> Iterator[str]:
    """The lines of a binary CSV file as text for the csv module (surrogateescape: a line in another
    encoding is one bad record, not the end of the file); an over-long line is noted in ``too_long``
    and given as a blank line, which the csv module skips."""
    for n, raw in enumerate(_bounded_lines(fh), 1):
        if raw is None:
            too_long.append(n)
            yield "\n"
            continue
        text = raw.decode("utf-8", errors="surrogateescape")
        yield text.removeprefix("\ufeff") if n == 1 else text


def csv_records(fh) -> Iterator[tuple[int, dict | csv.Error]]:
    """``(line, record)`` of each CSV record after the header, or ``(line, csv.Error)`` for one the
    csv module cannot read (e.g. a field over its 128 KB limit): one bad record, not the file's end.
    An unreadable header raises :class:`csv.Error` here, before the first record."""
    reader = csv.DictReader(fh)
    reader.fieldnames  # reads the header now: line numbers count from it

    def records():
        while True:
            start = reader.line_num + 1
            try:
                yield start, next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, exc

    return records()
