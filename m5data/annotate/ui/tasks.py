"""The labelling UI's task list: the pools' top candidates with gold questions mixed in, taken-down products left out.

:func:`build_tasks` reads the store's ``pools`` (and its gold judgements when no gold file is given);
:func:`read_gold` reads a gold file. The running app (app.py) serves the list and drops a product
taken down while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...egress import gate
from ...errors import UserError
from ..crowd.judgement_files import read_rows


class UiError(UserError, ValueError):
    """The UI cannot start (no pools, a bad gold file); one line for the user."""


@dataclass(frozen=True)
class Task:
    query_id: str
    candidate_id: str
    is_gold: bool = False
    gold_label: str | None = None  # never sent to the page


def read_gold(path: str | Path) -> list[Task]:
    """Gold questions from a CSV or JSONL file with query_id, candidate_id, label (match or mismatch).

    Any flaw (not UTF-8, bad JSON or CSV, a missing field, another label) is a UiError naming the
    file and its line: the UI does not start on half a gold set. The file is read as the judgements
    import reads one (:func:`..judgement_files.read_rows`), record by record.
    """
    path = Path(path)
    out = []
    try:
        for line, row in read_rows(path, header_error=UiError):
            if isinstance(row, ValueError):
                raise UiError(f"gold file {path}, line {line}: {row}")
            label = str(row.get("label") or "").strip().lower()
            if not row.get("query_id") or not row.get("candidate_id") or label not in ("match", "mismatch"):
                raise UiError(f"gold file {path}, line {line}: needs query_id, candidate_id and label match|mismatch")
            out.append(Task(str(row["query_id"]), str(row["candidate_id"]), True, label))
    except OSError as exc:
        raise UiError(f"cannot read gold file {path}: {exc}") from None
    return out


def build_tasks(store, per_query: int, gold: list[Task] | None = None, gold_every: int = 5) -> list[Task]:
    """The worker's task list: the top ``per_query`` candidates of every query's pool, a gold question every
    ``gold_every`` tasks. Without a gold file, the store's own gold judgements (``is_gold``) are used."""
    tables = ("pools", "annotations", "products")  # the views it reads, on a cursor of the read database
    con = store.connect(need=tables, only=tables, cursor=True)
    try:
        pairs = con.execute("SELECT query_id, candidate_id FROM pools WHERE rank <= ? ORDER BY query_id, rank, candidate_id",
                            [per_query]).fetchall()
        if gold is None:
            gold = [Task(q, c, True, lbl) for q, c, lbl in con.execute(
                "SELECT query_id, candidate_id, any_value(label) FROM annotations WHERE is_gold AND label IN ('match', 'mismatch') "
                "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()]
        known = {r[0] for r in con.execute("SELECT product_id FROM products").fetchall()}
    finally:
        con.close()
    if not pairs:
        raise UiError("no candidate pools in the store: run `m5data annotate pools` first")
    gone = gate.withheld_ids(store)  # taken-down and opted-out products (the egress gate's) are no task
    known = known - gone
    pairs = [(q, c) for q, c in pairs if q not in gone and c not in gone]
    gold = [g for g in gold if g.query_id in known and g.candidate_id in known]
    plain = [Task(q, c) for q, c in pairs]
    gold_pairs = {(g.query_id, g.candidate_id) for g in gold}
    plain = [t for t in plain if (t.query_id, t.candidate_id) not in gold_pairs]
    tasks: list[Task] = []
    pending_gold = list(gold)
    for k, task in enumerate(plain, 1):
        tasks.append(task)
        if gold_every and k % gold_every == 0 and pending_gold:
            tasks.append(pending_gold.pop(0))
    tasks.extend(pending_gold)
    return tasks
