"""The labelling UI hides taken-down products (issue 76, finding 9): its real server on 127.0.0.1 answers
404 for ``/image/<id>`` and ``/api/product/<id>`` of a product a takedown covers, leaves its pairs out of the
task list and refuses a judgement of them, through storage/takedowns.py (the rule the store's views use),
for a takedown recorded before the server started and for one recorded while it runs."""

import json
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from support.demo_fixtures import copy_store
from support.ui_world import store_with_pools, ui_get

from m5data.annotate.ui import app as ui_app
from m5data.annotate.ui.app import RunningUi, Session
from m5data.annotate.ui.tasks import Task, build_tasks
from m5data.storage import takedowns


@pytest.fixture
def ui_store(demo_store_factory, tmp_path):
    return store_with_pools(copy_store(demo_store_factory(products=60, seed=0), tmp_path))


def _url_of(store, pid):
    return store.read("products", where=f"product_id = '{pid}'").to_pylist()[0]["url"]


def test_a_taken_down_product_is_not_served(ui_store, monkeypatch):
    store, queries, gallery = ui_store
    session = Session("w1", [Task(q, c) for q in queries for c in gallery[:3]])
    shown, later = gallery[0], gallery[1]
    # by URL, in another case with a trailing / and a fragment: the canonical rule of the views
    url = _url_of(store, shown).replace("https://", "HTTPS://").split("#")[0].rstrip("/") + "/#top"
    takedowns.record(store, "url", url)
    monkeypatch.setattr(ui_app, "TAKEDOWN_TTL", 0.0)  # a takedown while it runs is read at the next request
    with RunningUi(store, session) as ui:
        for pid in (shown, later):
            assert ui_get(f"{ui.url}/api/product/{quote(pid, safe='')}")[0] == (404 if pid == shown else 200)
            assert ui_get(f"{ui.url}/image/{quote(pid, safe='')}")[0] == (404 if pid == shown else 200)
        tasks = json.loads(ui_get(ui.url + "/api/tasks")[1])["tasks"]
        assert tasks and all(shown not in (t["query_id"], t["candidate_id"]) for t in tasks)
        assert any(later == t["candidate_id"] for t in tasks)

        takedowns.record(store, "product_id", later)  # recorded while the server runs
        time.sleep(0.05)
        assert ui_get(f"{ui.url}/api/product/{quote(later, safe='')}")[0] == 404
        assert ui_get(f"{ui.url}/image/{quote(later, safe='')}")[0] == 404
        tasks = json.loads(ui_get(ui.url + "/api/tasks")[1])["tasks"]
        assert tasks and all(later not in (t["query_id"], t["candidate_id"]) for t in tasks)
        req = urllib.request.Request(ui.url + "/api/judge", method="POST", headers={
            "Content-Type": "application/json", "X-CSRF-Token": session.token},
            data=json.dumps({"query_id": queries[0], "candidate_id": later, "label": "match"}).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 400 and store.count("annotations") == 0


def test_the_task_list_leaves_taken_down_products_out(ui_store):
    store, queries, gallery = ui_store
    takedowns.record(store, "product_id", queries[1])
    tasks = build_tasks(store, per_query=3, gold=[Task(queries[1], gallery[0], True, "match")])
    assert tasks and {t.query_id for t in tasks} == {queries[0]}
