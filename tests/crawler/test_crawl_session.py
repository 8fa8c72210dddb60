"""Giving the crawl a session (a cookies.txt, per-host headers, a proxy from the environment), and keeping
every credential (URL userinfo, header values, cookies, proxy passwords) out of everything a run writes."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import ProxyHandler, Request, build_opener

import pytest
from support.crawl_server import Page, SiteServer, jsonld_shop
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store

runner = CliRunner()


def _secret(label: str) -> str:
    return f"{label}{uuid.uuid4().hex[:12]}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def gated_shop(n_products: int, *, cookie: str, token: str, auth: str | None = None) -> tuple[SiteServer, list[str]]:
    """A shop whose product pages answer only a logged-in session: the cookie ``sid``, the header
    ``X-Shop-Token`` (and ``Authorization`` when given); anything less is sent to the login page."""
    def gate(path, headers):
        if not path.startswith("/p/"):
            return None
        ok = (f"sid={cookie}" in (headers.get("Cookie") or "") and headers.get("X-Shop-Token") == token
              and (auth is None or headers.get("Authorization") == auth))
        return None if ok else Page(b"", status=302, extra_headers=(("Location", "/login.html"),))

    server = SiteServer({"/login.html": "<html><body><form>please log in</form></body></html>"}, gate=gate)
    return server, jsonld_shop(server, n_products=n_products, per_page=10)


def cookies_file(path: Path, host: str, value: str) -> Path:
    """A Netscape cookies.txt as curl -c writes it (expiry 0: a session cookie)."""
    path.write_text("# Netscape HTTP Cookie File\n# written by a test\n\n"
                    f"{host}\tFALSE\t/\tFALSE\t0\tsid\t{value}\n"
                    f"#HttpOnly_{host}\tFALSE\t/\tFALSE\t0\tother\tx{value}\n")
    return path


class CountingProxy:
    """A plain HTTP forward proxy on 127.0.0.1 (GET of absolute URLs) that counts what it forwards and
    keeps the Proxy-Authorization headers it was sent."""

    def __init__(self):
        self.forwarded: list[str] = []
        self.auth: list[str | None] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                proxy.forwarded.append(self.path)
                proxy.auth.append(self.headers.get("Proxy-Authorization"))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-authorization", "proxy-connection", "connection", "host")}
                try:
                    direct = build_opener(ProxyHandler({}))  # not through http_proxy: that is this proxy
                    with direct.open(Request(self.path, headers=headers), timeout=10) as answer:
                        status, body, ctype = answer.status, answer.read(), answer.headers.get("Content-Type", "text/html")
                except Exception as exc:  # an HTTP error status: pass it on
                    status = getattr(exc, "code", 502)
                    body = exc.read() if hasattr(exc, "read") else b""
                    ctype = "text/html"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def crawl(store_root: Path, *args: str):
    """``m5data crawl`` (``--set`` pairs among ``args`` go before the verb: they are global options)."""
    if not (store_root / "store.json").is_file():
        Store.init(store_root)
    sets, rest, args = [], [], list(args)
    while args:
        arg = args.pop(0)
        (sets.extend([arg, args.pop(0)]) if arg == "--set" else rest.append(arg))
    return runner.invoke(app, ["--store", str(store_root), "--set", "crawl.allow_private=true", *sets, "crawl", *rest])


# --------------------------------------------------------------------------------------- 12: sessions
def test_cookies_and_headers_open_a_logged_in_shop_and_go_only_to_their_host(tmp_path):
    cookie, token = _secret("ck"), _secret("tok")
    shop, skus = gated_shop(5, cookie=cookie, token=token)
    other = SiteServer({}, host="localhost")  # same address, another host name and port
    jsonld_shop(other, n_products=3, per_page=10, prefix="/o")
    jar = cookies_file(tmp_path / "cookies.txt", "127.0.0.1", cookie)
    headers = json.dumps({f"127.0.0.1:{shop.port}": {"X-Shop-Token": token}})
    with shop, other:
        result = crawl(tmp_path / "store", "--cookies", str(jar), "--set", f"crawl.headers={headers}",
                       "--start-url", shop.url + "/list/1.html", "--start-url", other.url + "/o/list/1.html")
    assert result.exit_code == 0, result.output
    store = Store.open(tmp_path / "store")
    stored = {r["source_id"] for r in store.read("products").to_pylist()}
    assert set(skus) <= stored  # every gated product page answered: the session was sent
    assert "/login.html" not in shop.requests
    assert any(p.startswith("/o/p/") for p in other.requests)  # the other host was crawled too ...
    for path, sent in other.headers:  # ... and got neither the cookie nor the header
        assert cookie not in json.dumps(sent) and "X-Shop-Token" not in sent, (path, sent)


def test_without_the_session_the_shop_answers_its_login_page(tmp_path):
    cookie, token = _secret("ck"), _secret("tok")
    shop, _ = gated_shop(3, cookie=cookie, token=token)
    with shop:
        crawl(tmp_path / "store", "--start-url", shop.url + "/list/1.html")
    assert "/login.html" in shop.requests
    assert not Store.open(tmp_path / "store").read("products").num_rows


def test_headers_and_cookie_files_are_checked_before_any_work(tmp_path):
    bad_json = crawl(tmp_path / "s1", "--set", "crawl.headers={not json", "--start-url", "http://127.0.0.1:1/")
    assert bad_json.exit_code == 2 and "crawl.headers" in bad_json.output
    not_a_table = crawl(tmp_path / "s2", "--set", 'crawl.headers={"shop.example": "X-Token: 1"}',
                        "--start-url", "http://127.0.0.1:1/")
    assert not_a_table.exit_code == 2 and "shop.example" in not_a_table.output
    missing = crawl(tmp_path / "s3", "--cookies", str(tmp_path / "nope.txt"), "--start-url", "http://127.0.0.1:1/")
    assert missing.exit_code == 2 and "nope.txt" in missing.output
    broken = tmp_path / "broken.txt"
    broken.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tsecretvalue-not-shown\n")
    bad = crawl(tmp_path / "s4", "--cookies", str(broken), "--start-url", "http://127.0.0.1:1/")
    assert bad.exit_code == 2 and "broken.txt" in bad.output and "line 2" in bad.output
    assert "secretvalue-not-shown" not in bad.output  # the message names the line, never its content


def test_header_hosts_match_host_port_exact_host_and_subdomains():
    from m5data.crawler.session import headers_for, parse_headers

    table = parse_headers(json.dumps({"127.0.0.1:8001": {"A": "1"}, "shop.example": {"B": "2"},
                                      ".tmall.com": {"C": "3"}}))
    assert headers_for(table, "http://127.0.0.1:8001/x") == {"A": "1"}
    assert headers_for(table, "http://127.0.0.1:8002/x") == {}
    assert headers_for(table, "https://shop.example/p") == {"B": "2"}
    assert headers_for(table, "https://www.shop.example/p") == {}
    assert headers_for(table, "https://detail.tmall.com/item.htm") == {"C": "3"}
    assert headers_for(table, "https://tmall.com/") == {"C": "3"}
    assert headers_for(table, "https://nottmall.com/") == {}


def test_proxy_from_the_environment_carries_the_crawl(tmp_path, monkeypatch):
    user, password = _secret("pu"), _secret("pp")
    shop = SiteServer({})
    skus = jsonld_shop(shop, n_products=4, per_page=10)
    with shop, CountingProxy() as proxy:
        for var in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("http_proxy", f"http://{user}:{password}@127.0.0.1:{proxy.port}")
        result = crawl(tmp_path / "store", "--start-url", shop.url + "/list/1.html")
    assert result.exit_code == 0, result.output
    assert Store.open(tmp_path / "store").read("products").num_rows == len(skus)
    assert len(proxy.forwarded) >= len(skus) + 1 and all(u.startswith(shop.url) for u in proxy.forwarded)
    assert set(proxy.auth) == {_basic(user, password)}
    _assert_nowhere([password, user], [tmp_path / "store"], result.output)


# ------------------------------------------------------------------------------ 4: no credential written
def _texts_of(root: Path):
    """Every file under ``root`` as bytes, and every store table's rows as text (Parquet compresses)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield str(path), path.read_bytes()
    if (root / "store.json").is_file():
        store = Store.open(root)
        for table in ("products", "specs", "media", "crawl_errors", "runs"):
            try:
                rows = store.read(table).to_pylist()
            except Exception:
                continue
            yield f"{root}:{table}", json.dumps(rows, default=str, ensure_ascii=False).encode()


def _assert_nowhere(secrets: list[str], roots: list[Path], *outputs: str) -> int:
    n = 0
    for root in roots:
        for name, data in _texts_of(root):
            n += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{secret!r} written in {name}"
                assert base64.b64encode(secret.encode()) not in data, f"{secret!r} (base64) written in {name}"
    for text in outputs:
        for secret in secrets:
            assert secret not in text, f"{secret!r} printed"
    return n


def test_no_credential_is_written_anywhere(tmp_path, monkeypatch, prefect_harness):
    import prefect.settings

    user, password, cookie, token = _secret("usr"), _secret("pwd"), _secret("ck"), _secret("tok")
    proxy_user, proxy_password, s3_key, s3_secret = _secret("pu"), _secret("pp"), _secret("AKIA"), _secret("s3s")
    secrets = [user, password, cookie, token, proxy_user, proxy_password, s3_key, s3_secret]
    shop, skus = gated_shop(4, cookie=cookie, token=token, auth=_basic(user, password))
    jar = cookies_file(tmp_path / "cookies.txt", "127.0.0.1", cookie)
    outputs = []
    with shop, CountingProxy() as proxy:
        for var in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("http_proxy", f"http://{proxy_user}:{proxy_password}@127.0.0.1:{proxy.port}")
        monkeypatch.setenv("M5DATA_CRAWL_HEADERS", "")  # `m5data run` puts the headers here: gone after the test
        headers = json.dumps({f"127.0.0.1:{shop.port}": {"X-Shop-Token": token}})
        start = f"http://{user}:{password}@127.0.0.1:{shop.port}/list/1.html"
        store_a, store_b = tmp_path / "crawled", tmp_path / "flowed"
        result = crawl(store_a, "--cookies", str(jar), "--set", f"crawl.headers={headers}", "--start-url", start,
                       "--start-url", f"http://{user}:{password}@127.0.0.1:1/dead.html")  # fails: a crawl_errors row
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        assert Store.open(store_a).read("products").num_rows == len(skus)  # the session worked
        assert proxy.forwarded and set(proxy.auth) == {_basic(proxy_user, proxy_password)}
        monkeypatch.delenv("http_proxy")  # Prefect's client would send its API calls to the proxy too
        flow = runner.invoke(app, ["--store", str(store_b), "--set", "crawl.allow_private=true",
                                   "--set", f"crawl.cookies_file={jar}", "--set", f"crawl.headers={headers}",
                                   "run", "--stages", "crawl", "--start-url", start, "--no-progress"])
        outputs.append(flow.output)
        assert flow.exit_code == 0, flow.output
        assert Store.open(store_b).read("products").num_rows == len(skus)
    s3 = runner.invoke(app, ["--store", str(store_a), "export", "--out", f"s3://{s3_key}:{s3_secret}@bucket/m5"])
    outputs.append(s3.output)
    assert s3.exit_code != 0 and "AWS_ACCESS_KEY_ID" in s3.output and "profile" in s3.output, s3.output

    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)  # the flow's log rows reach the database
    db = Path(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    assert db.is_file()
    home = Path(os.environ["PREFECT_HOME"])
    n = _assert_nowhere(secrets, [store_a, store_b, db.parent, home], *outputs)
    assert n > 20
    # what is kept says what was used, without the secret
    config = json.loads(Store.open(store_a).read("runs", where="stage = 'crawl'").to_pylist()[0]["config"])
    assert config["crawl"]["headers"] == json.dumps({f"127.0.0.1:{shop.port}": {"X-Shop-Token": "***"}})
    assert config["job"]["start_urls"][0] == f"http://***@127.0.0.1:{shop.port}/list/1.html"
    errors = [r["url"] for r in Store.open(store_a).read("crawl_errors").to_pylist()]
    assert "http://127.0.0.1:1/dead.html" in errors
    job = next((store_a / "logs" / "crawl").glob("*/job.json"))
    assert job.stat().st_mode & 0o777 == 0o600


def test_redaction_of_urls_text_and_nested_values():
    from m5data.storage.redact import redact, redact_url

    assert redact_url("http://user:pass@host:8080/a?b=1") == "http://***@host:8080/a?b=1"
    assert redact_url("s3://KEY:SECRET@bucket/prefix") == "s3://***@bucket/prefix"
    assert redact_url("http://host/a@b") == "http://host/a@b"
    assert redact_url("/plain/path") == "/plain/path"
    text = "failed http://u:p@h/x and s3://k:s@b/y; mail a@b.org"
    assert redact(text) == "failed http://***@h/x and s3://***@b/y; mail a@b.org"
    nested = {"job": {"start_urls": ["http://u:p@h/"]}, "crawl": {"headers": '{"h": {"X-Key": "v"}}'},
              "overrides": {"crawl.headers": '{"h": {"Cookie": "v"}}'}, "n": 3}
    assert redact(nested) == {"job": {"start_urls": ["http://***@h/"]}, "crawl": {"headers": '{"h": {"X-Key": "***"}}'},
                              "overrides": {"crawl.headers": '{"h": {"Cookie": "***"}}'}, "n": 3}


def test_s3_urls_with_credentials_are_refused():
    from m5data.export.remote import RemoteError, RemoteFolder

    with pytest.raises(RemoteError) as info:
        RemoteFolder("s3://KEYID123:TOPSECRET@bucket/prefix")
    assert "TOPSECRET" not in str(info.value) and "AWS_ACCESS_KEY_ID" in str(info.value)
    assert "s3://***@bucket/prefix" in str(info.value)
