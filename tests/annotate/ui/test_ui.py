"""The match-annotation UI: a real headless Chromium labels pairs with mouse and keyboard; writes are guarded."""

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect
from support.browser import chromium_page
from support.demo_fixtures import copy_store
from support.ui_world import first_pair, store_with_pools

from m5data.annotate.ui.app import RunningUi, Session
from m5data.annotate.ui.tasks import Task, UiError, build_tasks
from m5data.storage import Store

XSS = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss=2\">面霜 50ml"


@pytest.fixture
def ui_store(demo_store_factory, tmp_path):
    store, queries, gallery = store_with_pools(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    first = store.read("products", where=f"product_id = '{queries[0]}'").to_pylist()[0]
    store.write("products", [{**first, "title": XSS}])
    return store, queries, gallery


def _post(url, body, token=None):
    req = urllib.request.Request(url + "/api/judge", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **({"X-CSRF-Token": token} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_task_list_mixes_in_gold_and_needs_pools(ui_store, tmp_path):
    store, queries, gallery = ui_store
    gold = [Task(queries[1], gallery[0], True, "mismatch")]
    tasks = build_tasks(store, per_query=3, gold=gold, gold_every=2)
    assert [t.is_gold for t in tasks].count(True) == 1
    assert tasks[2].is_gold and len(tasks) == 6  # 2 queries x 3 candidates, the gold pair replaces its plain twin
    with pytest.raises(UiError, match="annotate pools"):
        build_tasks(Store.init(tmp_path / "empty"), per_query=3)


def test_writes_need_the_token_and_a_known_pair(ui_store):
    store, session, pair = first_pair(ui_store)
    with RunningUi(store, session) as ui:
        assert _post(ui.url, {**pair, "label": "match"})[0] == 403
        assert _post(ui.url, {**pair, "label": "match"}, "wrong")[0] == 403
        assert _post(ui.url, {**pair, "candidate_id": "nope:1", "label": "match"}, session.token)[0] == 400
        assert _post(ui.url, {**pair, "label": "maybe"}, session.token)[0] == 400
        assert store.count("annotations") == 0
        status, body = _post(ui.url, {**pair, "label": "match"}, session.token)
        assert status == 200 and body["reviewed"] == 1
        _post(ui.url, {**pair, "label": "mismatch"}, session.token)  # a re-click updates the judgement
        rows = store.read("annotations").to_pylist()
        assert [(r["label"], r["source"], r["worker_id"]) for r in rows] == [("mismatch", "ui", "w1")]


def test_browser_labels_three_pairs_with_mouse_and_keyboard(ui_store, tmp_path):
    store, queries, gallery = ui_store
    gold = [Task(queries[0], gallery[2], True, "match")]  # the third task is gold (gold_every=2)
    session = Session("alice", build_tasks(store, per_query=3, gold=gold, gold_every=2))
    with RunningUi(store, session) as ui, chromium_page() as page:
        errors, outside = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(ui.url) else None)
        page.goto(ui.url + "/")
        page.wait_for_selector("#query .title")
        # the caption with markup is shown as text, and its script never ran
        assert page.inner_text("#query .title") == XSS
        assert page.evaluate("window.__xss") is None
        page.click("#btn-match")  # mouse
        expect(page.locator("#progress")).to_contain_text("reviewed 1 /")
        page.keyboard.press("2")  # keyboard
        expect(page.locator("#progress")).to_contain_text("reviewed 2 /")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("1")  # the gold question, answered right
        expect(page.locator("#progress")).to_contain_text("reviewed 3 /")
        page.screenshot(path=str(tmp_path / "annotate-ui.png"), full_page=True)
        summary = json.loads(urllib.request.urlopen(ui.url + "/api/summary").read())
    rows = {(r["query_id"], r["candidate_id"]): r for r in store.read("annotations").to_pylist()}
    t = session.tasks
    assert {k: (v["label"], v["is_gold"]) for k, v in rows.items()} == {
        (t[0].query_id, t[0].candidate_id): ("match", False),
        (t[1].query_id, t[1].candidate_id): ("mismatch", False),
        (t[2].query_id, t[2].candidate_id): ("match", True)}
    assert summary["gold_answered"] == 1 and summary["gold_accuracy"] == 1.0
    assert not errors and not outside
    assert (tmp_path / "annotate-ui.png").stat().st_size > 10_000
