"""A demo store with match pools, for the labelling UI's tests (tests/annotate/ui/test_ui*.py)."""

from __future__ import annotations

import urllib.error
import urllib.request

from m5data.annotate.ui.app import Session
from m5data.annotate.ui.tasks import build_tasks
from m5data.storage import Store


def store_with_pools(store_dir) -> tuple[Store, list[str], list[str]]:
    """(store, queries, gallery) of the store at ``store_dir`` given pools: two queries, six candidates
    each, every product with an image (so the UI shows a picture for each)."""
    store = Store.open(store_dir)
    con = store.connect(need=("media",), only=("media",), cursor=True)
    try:
        ids = [r[0] for r in con.execute(
            "SELECT DISTINCT product_id FROM media WHERE kind = 'image' AND status = 'ok' ORDER BY 1 LIMIT 8").fetchall()]
    finally:
        con.close()
    queries, gallery = ids[:2], ids[2:]
    store.write("pools", [{"query_id": q, "candidate_id": c, "rank": r, "score": 1.0 - r / 10, "embedder": "test"}
                          for q in queries for r, c in enumerate(gallery, 1)])
    return store, queries, gallery


def first_pair(ui_store, worker: str = "w1") -> tuple[Store, Session, dict[str, str]]:
    """(store, ``worker``'s session of two candidates per query, the first query's first candidate as
    a judge request's pair) of a :func:`store_with_pools` triple."""
    store, queries, gallery = ui_store
    session = Session(worker, build_tasks(store, per_query=2, gold=[]))
    return store, session, {"query_id": queries[0], "candidate_id": gallery[0]}


def ui_get(url: str, timeout: float = 20) -> tuple[int, bytes]:
    """(status, body) of a GET to a running UI (:class:`~m5data.annotate.ui.app.RunningUi`): an HTTP
    error's status and body too, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
