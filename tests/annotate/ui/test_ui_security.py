"""The labelling UI against a hostile network and hostile store text: real HTTP requests with forged Host /
Origin headers, a bind on every address that needs the worker's secret token, a malformed gold file, and
script payloads in every text field the page shows, checked in Debian's headless Chromium."""

import http.client
import json
import os
import subprocess
import sys

import pytest
from support.browser import chromium_page
from support.demo_fixtures import copy_store
from support.ui_world import first_pair, store_with_pools

from m5data.annotate.ui.app import RunningUi, Session
from m5data.annotate.ui.tasks import UiError, build_tasks, read_gold


@pytest.fixture
def ui_store(demo_store_factory, tmp_path):
    """A demo store with pools: two queries, six candidates each, every product with an image."""
    return store_with_pools(copy_store(demo_store_factory(products=60, seed=0), tmp_path))


def request(port, method, path, *, host=None, body=None, **headers):
    """(status, headers, body text) of one request to 127.0.0.1:port with the given Host and other headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        hdrs = {"Host": f"127.0.0.1:{port}" if host is None else host, **{k.replace("_", "-"): v for k, v in headers.items()}}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        res = conn.getresponse()
        return res.status, res.headers, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def judge(ui, session, pair, label="match", **headers):
    return request(ui.port, "POST", "/api/judge", body={**pair, "label": label},
                   X_CSRF_Token=session.token, **headers)


def test_a_foreign_host_header_is_refused(ui_store):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 gets neither the page nor a write."""
    store, session, pair = first_pair(ui_store)
    with RunningUi(store, session) as ui:
        p = ui.port
        status, _, body = request(p, "GET", "/", host=f"evil.example:{p}")
        assert status == 421 and session.token not in body
        for bad in (f"evil.example:{p}", "evil.example", f"127.0.0.1:{p + 1}", f"127.0.0.1.evil.example:{p}", ""):
            assert request(p, "GET", "/api/tasks", host=bad)[0] == 421, bad
        status, _, _ = judge(ui, session, pair, host=f"evil.example:{p}", Origin=f"http://evil.example:{p}")
        assert status == 421
        assert store.count("annotations") == 0
        for good in (f"127.0.0.1:{p}", f"localhost:{p}", f"LOCALHOST:{p}"):
            status, _, body = request(p, "GET", "/", host=good)
            assert status == 200 and session.token in body, good
        assert judge(ui, session, pair, host=f"localhost:{p}", Origin=f"http://localhost:{p}")[0] == 200
    assert store.count("annotations") == 1


def test_a_foreign_origin_is_refused(ui_store):
    store, session, pair = first_pair(ui_store)
    with RunningUi(store, session) as ui:
        p = ui.port
        for origin in ("http://evil.example", f"http://evil.example:{p}", "null", f"https://127.0.0.1:{p}",
                       f"http://localhost:{p}"):  # localhost is another origin than the page's 127.0.0.1
            status, _, _ = judge(ui, session, pair, Origin=origin)
            assert status == 403, origin
        assert request(p, "GET", "/api/tasks", Origin="http://evil.example")[0] == 403
        assert store.count("annotations") == 0
        assert judge(ui, session, pair, Origin=f"http://127.0.0.1:{p}")[0] == 200
        assert judge(ui, session, pair, label="mismatch")[0] == 200  # no Origin header (curl): the CSRF token decides
        # a CSRF token with non-ASCII characters is a refusal, not a server error
        assert request(p, "POST", "/api/judge", body={**pair, "label": "match"}, X_CSRF_Token="é" * 32)[0] == 403
    rows = store.read("annotations").to_pylist()
    assert [r["label"] for r in rows] == ["mismatch"]


def test_loopback_bind_needs_no_token(ui_store):
    store, _, _ = ui_store
    session = Session("w1", build_tasks(store, per_query=2, gold=[]))
    with RunningUi(store, session) as ui:
        assert not ui.requires_token and ui.login_url == ui.url + "/"
        assert request(ui.port, "GET", "/")[0] == 200


def test_a_non_loopback_bind_needs_the_workers_token_on_every_route(ui_store):
    """Bound to 0.0.0.0 (reached here through 127.0.0.1): nothing answers without the secret token, and the UI
    lives under a random path that a request without the token is not told."""
    store, session, pair = first_pair(ui_store)
    with RunningUi(store, session, host="0.0.0.0") as ui:
        p, secret, base = ui.port, session.access_token, ui.base_path
        assert ui.requires_token and secret in ui.login_url and ui.login_url.startswith(f"{ui.url}{base}/?token=")
        assert len(base) > 16 and secret not in base
        routes = ["/", "/static/app.js", "/static/app.css", "/favicon.ico", "/api/tasks", "/api/summary",
                  f"/api/product/{pair['query_id']}", f"/image/{pair['query_id']}", "/nowhere"]
        wrong = ("x" if secret[0] != "x" else "y") + secret[1:]  # the same length, one character off
        cookie = f"{ui.cookie_name}={wrong}"
        for path in routes:
            assert request(p, "GET", base + path)[0] == 401, path
            assert request(p, "GET", base + path, Cookie=cookie)[0] == 401, path
            assert request(p, "GET", base + path, Authorization=f"Bearer {wrong}")[0] == 401, path
        assert request(p, "GET", f"{base}/?token={wrong}")[0] == 401
        assert request(p, "GET", f"{base}/?token=")[0] == 401
        assert request(p, "POST", base + "/api/judge", body={**pair, "label": "match"}, X_CSRF_Token=session.token)[0] == 401
        assert store.count("annotations") == 0

        # the printed URL: the token once in the query, then an HttpOnly SameSite=Strict cookie scoped to the
        # random path, holding a value bound to this server (not the token)
        status, headers, _ = request(p, "GET", f"{base}/?token={secret}")
        assert status == 303 and headers["Location"] == base + "/"
        set_cookie = headers["Set-Cookie"]
        name, value = set_cookie.split(";", 1)[0].split("=", 1)
        assert name == ui.cookie_name and value and secret not in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and f"Path={base}/" in set_cookie
        good = f"{ui.cookie_name}={value}"
        for path in routes[:-1]:
            status, _, body = request(p, "GET", base + path, Cookie=good)
            assert status == (302 if path == "/favicon.ico" else 200), (path, status)
        assert request(p, "GET", base + "/nowhere", Cookie=good)[0] == 404
        assert request(p, "GET", base + "/api/tasks", Authorization=f"Bearer {secret}")[0] == 200
        assert request(p, "POST", base + "/api/judge", body={**pair, "label": "match"}, X_CSRF_Token=session.token,
                       Cookie=good)[0] == 200
        # the cookie value is no token: as a bearer it opens nothing, and the token is no cookie
        assert request(p, "GET", base + "/api/tasks", Authorization=f"Bearer {value}")[0] == 401
        assert request(p, "GET", base + "/api/tasks", Cookie=f"{ui.cookie_name}={secret}")[0] == 401
        # outside the random path nothing answers, the right token included, and no answer names the path
        for path in routes:
            for creds in ({"Cookie": good}, {"Authorization": f"Bearer {secret}"}, {}):
                status, headers, body = request(p, "GET", path, **creds)
                assert status == 401 and base not in body and base not in str(headers), (path, creds)
        status, headers, body = request(p, "GET", f"/?token={secret}")
        assert status == 401 and base not in body and "Set-Cookie" not in headers
        # the Host guard still holds with the token
        assert request(p, "GET", base + "/", host=f"evil.example:{p}", Cookie=good)[0] == 421
    assert store.count("annotations") == 1


class OtherServer:
    """Another local service on another port of 127.0.0.1 (a notebook, a dev server): it records the
    path and headers of every request the browser sends it."""

    def __init__(self):
        import http.server
        import threading

        seen = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, dict(self.headers)))
                body = b"<!DOCTYPE html><title>other</title><p>another local service</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_another_port_of_the_host_receives_nothing_that_opens_the_ui(ui_store):
    """Browsers share cookies between the ports of one host: after opening the UI, Chromium visiting
    another local service must send it no credential of the UI (the cookie is scoped to the UI's
    random path, and holds a value bound to this server, not the printed token)."""
    store, queries, _ = ui_store
    session = Session("w1", build_tasks(store, per_query=2, gold=[]))
    with RunningUi(store, session, require_token=True) as ui, OtherServer() as other, chromium_page() as page:
        page.goto(ui.login_url)
        page.wait_for_function("() => document.querySelector('#candidate .meta')?.textContent.length > 0")
        img = page.locator("#query img").element_handle()
        page.wait_for_function("(img) => img.complete", arg=img)
        assert page.evaluate("(img) => img.naturalWidth", img) > 0  # images pass the guard through the cookie
        page.keyboard.press("1")
        page.wait_for_function("() => document.querySelector('#status').textContent === 'saved: match'")
        assert store.count("annotations") == 1
        assert session.access_token not in page.url  # the token left the address bar
        # every path another service could think of (the UI's own routes, at the other port)
        for path in ("/", "/api/tasks", "/static/app.js", "/favicon.ico", f"/image/{queries[0]}"):
            page.goto(f"http://127.0.0.1:{other.port}{path}")
        page.goto(f"http://localhost:{other.port}/")
    assert len(other.requests) >= 6
    received = [(path, h) for path, h in other.requests for k, h in h.items() if k.lower() in ("cookie", "authorization")]
    assert not any(session.access_token in v for _, v in received), received
    # whatever it got, replayed to the UI (cookies and all), opens nothing
    for _, value in received:
        assert request(ui.port, "GET", "/api/tasks", Cookie=value)[0] == 401, value
        assert request(ui.port, "GET", ui.base_path + "/api/tasks", Cookie=value)[0] == 401, value
    assert received == []


def test_every_worker_gets_its_own_token(ui_store):
    store, _, _ = ui_store
    tasks = build_tasks(store, per_query=2, gold=[])
    one, two = Session("w1", tasks), Session("w2", tasks)
    assert one.access_token != two.access_token and len(one.access_token) >= 32


@pytest.mark.parametrize("name, text, where", [
    ("gold.jsonl", '{"query_id": "a:1", "candidate_id": "a:2", "label": "match"}\n{"query_id": "a:3", oops\n', "line 2"),
    ("gold.jsonl", '{"query_id": "a:1", "candidate_id": "a:2", "label": "match"}\n["a:3", "a:4"]\n', "line 2"),
    ("gold.csv", "query_id,candidate_id,label\na:1,a:2,match\na:3,a:4,vielleicht\n", "line 3"),
    ("gold.csv", "query_id,candidate_id,label\na:1,a:2,match\na:3,a:4,mismatch caf\xe9\n", "line 3"),
    ("gold.csv", "query_id,candidate_id,label\na:1,a:2," + "m" * 140_000 + "\n", "line 2"),
])
def test_a_malformed_gold_file_is_one_clear_error(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1") if "caf\xe9" in text else text.encode("utf-8"))
    with pytest.raises(UiError) as info:
        read_gold(path)
    assert str(path) in str(info.value) and where in str(info.value)


@pytest.mark.parametrize("worker", ["@gold", "\u200b@gold", "\u202e@gold", "w\x001"])
def test_a_session_refuses_reserved_or_invisible_worker_ids(worker):
    with pytest.raises(UiError, match="reserved|control or format"):
        Session(worker, [])


def serve(store, *args):
    """``m5data annotate serve`` in a subprocess (a run that wrongly starts serving is killed after 60 s)."""
    cmd = [sys.executable, "-m", "m5data", "--store", str(store.root), "annotate", "serve", "--port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


def test_cli_serve_with_a_malformed_gold_file_exits_with_the_file_and_line(ui_store, tmp_path):
    store, _, _ = ui_store
    gold = tmp_path / "gold[1].jsonl"
    gold.write_text('{"query_id": "a:1", "candidate_id": "a:2", "label": "match"}\nnot json\n', encoding="utf-8")
    result = serve(store, "--gold", str(gold))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "gold[1].jsonl" in result.stderr and "line 2" in result.stderr


def test_cli_serve_refuses_the_reserved_gold_worker(ui_store):
    store, _, _ = ui_store
    for name in ("@gold", "@GOLD", "\uff20gold", "\u200b@gold", "\u202e@gold", "\x01@gold"):
        result = serve(store, "--worker", name)
        assert result.returncode == 1 and "reserved" in result.stderr, result.stderr
    result = serve(store, "--worker", "w\u200b1")
    assert result.returncode == 1 and "control or format" in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------- XSS
PAYLOADS = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>", '"><svg onload="window.__xss=3">',
            "{{csrf}}</title><script>window.__xss=4</script>", "[bold]markup[/] '; window.__xss=5; //"]


def hostile_world(store, queries, gallery):
    """Copies of real products whose every shown text field carries a payload (ids too), with pools and images."""
    products = {r["product_id"]: r for r in store.read("products").to_pylist()}
    media = store.read("media").to_pylist()
    rows, specs, new_media, ids = [], [], [], []
    for k, src in enumerate([queries[0], gallery[0], gallery[1]]):
        payload = PAYLOADS[k % len(PAYLOADS)]
        pid = f"{products[src]['platform']}:{PAYLOADS[(k + 1) % len(PAYLOADS)]}#{k}?x=/.."
        ids.append(pid)
        rows.append({**products[src], "product_id": pid, "title": f"title {payload} 面霜",
                     "platform": payload, "currency": payload, "category_path": [payload, f"sub {payload}"]})
        specs += [{"product_id": pid, "position": i, "property": f"prop {p}", "value": f"value {p}"}
                  for i, p in enumerate(PAYLOADS)]
        for m in media:
            if m["product_id"] == src:
                new_media.append({**m, "product_id": pid, "media_id": f"{m['media_id']}-{k}",
                                  "source_media_id": m["source_media_id"] and f"{m['source_media_id']}-{k}"})
    store.write("products", rows)
    store.write("specs", specs)
    store.write("media", new_media)
    store.write("pools", [{"query_id": ids[0], "candidate_id": c, "rank": r, "score": 0.9, "embedder": "test"}
                          for r, c in enumerate(ids[1:], 1)])
    return ids


def test_browser_shows_every_payload_as_text_and_runs_none(ui_store):
    store, queries, gallery = ui_store
    ids = hostile_world(store, queries, gallery)
    worker = PAYLOADS[2] + PAYLOADS[0]
    tasks = [t for t in build_tasks(store, per_query=2, gold=[]) if t.query_id == ids[0]]
    assert len(tasks) == 2
    session = Session(worker, tasks)
    with RunningUi(store, session) as ui, chromium_page() as page:
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(ui.login_url)
        for k, task in enumerate(tasks):
            page.wait_for_function("(id) => document.querySelector('#candidate .meta')?.textContent.startsWith(id)",
                                   arg=task.candidate_id)
            assert page.inner_text("#worker") == "worker: " + worker
            for side, pid in (("#query", task.query_id), ("#candidate", task.candidate_id)):
                box = page.locator(f"{side} .product")
                n = ids.index(pid)
                payload = PAYLOADS[n % len(PAYLOADS)]
                assert box.locator(".title").text_content() == f"title {payload} 面霜"
                meta = box.locator(".meta").text_content()
                assert meta.startswith(pid) and f"{payload} > sub {payload}" in meta and meta.endswith(payload)
                cells = box.locator("td").all_text_contents()
                assert cells == [x for p in PAYLOADS for x in (f"prop {p}", f"value {p}")]
                # nothing but the product image was made from the text: no svg, script, iframe or stray img
                assert box.locator("svg, script, iframe, object, embed").count() == 0
                imgs = box.locator("img")
                assert imgs.count() == 1 and imgs.get_attribute("alt") == "image of " + pid
                # the image route takes the hostile id (quoted) and serves the file: once the browser is
                # done with the image (loaded or broken), it has pixels (the text appears before the image)
                img = imgs.element_handle()
                page.wait_for_function("(img) => img.complete", arg=img)
                assert page.evaluate("(img) => img.naturalWidth", img) > 0
            if k == 0:
                page.keyboard.press("ArrowRight")
        assert page.evaluate("window.__xss") is None
        assert page.title() == "m5data · match annotation"
        assert not dialogs and not errors
