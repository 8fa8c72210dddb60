"""A logged-in session for the crawl: a cookies.txt, request headers per host, credentials of start URLs.

Many product pages (Taobao and Tmall detail pages among them) answer only a logged-in browser. The
crawl is given that session three ways, each sent only to the host it belongs to:

- ``crawl.cookies_file`` (``--cookies FILE``): a Netscape ``cookies.txt`` (what ``curl -c`` and the
  browsers' cookies.txt export add-ons write), loaded into Scrapy's cookie jar, whose domain and
  path rules decide which request gets which cookie;
- ``crawl.headers``: JSON ``{"host" | "host:port" | ".domain": {"Header": "value"}}`` (``.tmall.com``
  also matches ``detail.tmall.com``), set on every request to that host by
  ``session_middleware.SessionMiddleware`` and removed from requests to any other host (a redirect copies a request's headers);
- a start URL's userinfo (``http://user:pass@host/``): becomes that host and port's
  ``Authorization: Basic`` header; the URL is crawled and recorded without it.

All of it is secret (m5data/storage/redact.py): header values travel to the crawl subprocess on its stdin,
never in the job file; cookies are read by the subprocess from the user's file; every value is
registered with the log redaction. Proxies are Scrapy's own: ``http_proxy`` / ``https_proxy`` /
``no_proxy`` in the environment (docs/crawl.md "Giving the crawl a session").
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import UserError
from ..storage import redact

NETSCAPE_HEADER = "# Netscape HTTP Cookie File"


class SessionError(UserError, ValueError):
    """A cookies file or ``crawl.headers`` value that cannot be used; names the file or host, never a secret."""


# ------------------------------------------------------------------------------------------ headers
def parse_headers(text: str) -> dict[str, dict[str, str]]:
    """``crawl.headers`` (JSON ``{host: {name: value}}``) as a dict with lower-case host keys; SessionError
    when it is not that shape (the message names the host, never a value)."""
    if not text or not text.strip():
        return {}
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise SessionError(f"crawl.headers must be JSON {{\"host\": {{\"Header\": \"value\"}}}}: {exc.msg} at "
                           f"character {exc.pos}") from None
    if not isinstance(table, dict):
        raise SessionError('crawl.headers must be a JSON object {"host": {"Header": "value"}}')
    out: dict[str, dict[str, str]] = {}
    for host, names in table.items():
        if not isinstance(host, str) or not host.strip() or "/" in host:
            raise SessionError(f"crawl.headers: {host!r} is not a host (host, host:port or .domain)")
        if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
            raise SessionError(f"crawl.headers: the value for {host!r} must be an object of header names to string values")
        for name in names:
            if not name or any(c in name for c in ":\r\n \t"):
                raise SessionError(f"crawl.headers: {name!r} (for {host!r}) is not a header name")
        if any(c in v for v in names.values() for c in "\r\n"):
            raise SessionError(f"crawl.headers: a value for {host!r} holds a line break")
        out.setdefault(host.strip().lower(), {}).update(names)
    return out


def _origin(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def headers_for(table: dict[str, dict[str, str]], url: str) -> dict[str, str]:
    """The headers of ``table`` that belong to ``url``'s host: ``host:port`` first, then ``host``, then
    ``.domain`` entries (the domain itself and its subdomains); later, more exact entries win."""
    host, port = _origin(url)
    if not host:
        return {}
    out: dict[str, str] = {}
    for key in sorted((k for k in table if k.startswith(".")), key=len):  # shorter domain first: longer wins
        if host == key[1:] or host.endswith(key):
            out.update(table[key])
    out.update(table.get(host, {}))
    if port is not None:
        out.update(table.get(f"{host}:{port}", {}))
    return out


def split_credentials(urls: list[str]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Start URLs without their userinfo, and ``{host:port: {"Authorization": "Basic ..."}}`` for those
    that had one (the credentials are sent to that host and port only, as curl does)."""
    clean, table = [], {}
    for url in urls:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            clean.append(url)
            continue
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        host, port = _origin(url)
        netloc = parts.netloc.rsplit("@", 1)[1]
        clean.append(urlunsplit(parts._replace(netloc=netloc)))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        table[f"{host}:{port}"] = {"Authorization": f"Basic {token}"}
        redact.register(user, password, token)
    return clean, table


def merge(*tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for table in tables:
        for host, names in table.items():
            out.setdefault(host, {}).update(names)
    return out


def register_headers(table: dict[str, dict[str, str]]) -> None:
    """Every header value of ``table`` is a secret to the log redaction (a Basic token's payload too)."""
    for names in table.values():
        for value in names.values():
            redact.register(value, *value.split()[1:2])


# ------------------------------------------------------------------------------------------ cookies
def load_cookies(path: str | Path) -> list:
    """The cookies of a Netscape cookies.txt (``http.cookiejar.Cookie`` objects), expired ones left out.

    Expiry 0, as curl and the export add-ons write a browser's session cookie, is a session cookie
    (``MozillaCookieJar`` alone would drop it as expired in 1970). SessionError names the file and the
    line, never the line's content: it holds a cookie value.
    """
    import time
    from http.cookiejar import LoadError, MozillaCookieJar

    path = Path(path).expanduser()
    if not path.is_file():
        raise SessionError(f"cookies file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read cookies file {path}: {type(exc).__name__}") from None
    if not lines or not lines[0].startswith(("# Netscape HTTP Cookie File", "# HTTP Cookie File")):
        raise SessionError(f"cookies file {path} is not a Netscape cookies.txt: its first line must be "
                           f"{NETSCAPE_HEADER!r} (as curl -c and the browsers' cookies.txt exports write)")
    for n, line in enumerate(lines, 1):
        body = line[len("#HttpOnly_"):] if line.startswith("#HttpOnly_") else line
        if not body.strip() or body.lstrip().startswith(("#", "$")):
            continue
        fields = body.split("\t")
        if len(fields) != 7 or fields[1] not in ("TRUE", "FALSE") or (fields[1] == "TRUE") != fields[0].startswith("."):
            raise SessionError(f"cookies file {path}, line {n}: not a cookies.txt line (7 tab-separated fields: "
                               "domain, include-subdomains TRUE/FALSE matching a leading dot, path, secure, expiry, "
                               "name, value)")
    jar = MozillaCookieJar()
    try:
        with warnings.catch_warnings():  # cookiejar warns with the failing line (a cookie value) on stderr
            warnings.simplefilter("ignore")
            jar.load(str(path), ignore_discard=True, ignore_expires=True)
    except (LoadError, OSError) as exc:
        raise SessionError(f"cookies file {path} cannot be read as a Netscape cookies.txt ({type(exc).__name__})") from None
    now = time.time()
    cookies = []
    for cookie in jar:
        if cookie.expires == 0:
            cookie.expires, cookie.discard = None, True
        elif cookie.is_expired(now):
            continue
        cookies.append(cookie)
        redact.register(cookie.value or "")
    return cookies


# ------------------------------------------------------------------------------------------ headers on requests
SECRET_HEADERS: dict[str, dict[str, str]] = {}  # set by the crawl subprocess from its stdin (child.main)


def add_settings(scrapy_settings: dict, cookies_file: str) -> dict:
    """Put the session's middlewares into a crawl's Scrapy settings (``crawl.build_settings``'s dict):
    the per-host headers just after the safety check (45), the cookie jar from ``cookies_file`` in place
    of Scrapy's own (700). Only the file's path is a setting: header values come on stdin."""
    middlewares = dict(scrapy_settings.get("DOWNLOADER_MIDDLEWARES") or {})
    middlewares.update({"m5data.crawler.session_middleware.SessionMiddleware": 50,
                        "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
                        "m5data.crawler.session_middleware.SessionCookiesMiddleware": 700})
    scrapy_settings["DOWNLOADER_MIDDLEWARES"] = middlewares
    scrapy_settings["M5DATA_COOKIES_FILE"] = cookies_file
    return scrapy_settings


def register_proxy_credentials(environ) -> None:
    """The user, password and Basic token of the proxies in ``environ`` (``http_proxy`` ...) are secrets
    to the log redaction (Scrapy sends them as ``Proxy-Authorization``)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        url = environ.get(var) or ""
        try:
            parts = urlsplit(url if "://" in url else f"http://{url}")
        except ValueError:
            continue
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            redact.register(user, password, base64.b64encode(f"{user}:{password}".encode()).decode())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600, also when the file was there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        f.write(text)
