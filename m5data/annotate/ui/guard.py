"""The labelling UI's network guard: which requests reach the app at all (one aiohttp middleware).

- **Host** (DNS rebinding): the Host header must name the address the server is bound to (for a bind
  on every address, 0.0.0.0, the address the connection came in on), ``localhost`` when that address
  is loopback, or a name given with ``--allow-host``, and the server's port. Anything else is a page
  of another site whose name was pointed at this machine: 421, before any route runs.
- **Origin**: a request that carries an Origin header must come from the page's own origin
  (``http://`` + its Host): 403 otherwise, ``null`` included.
- **Token**: a server bound to anything but loopback (or started with ``--require-token``) serves
  the UI only under a random path of its own (``/<22 random characters>/``, the server's ``base``)
  and wants the worker's secret token on every request, static files and images included: 401
  without it, and 401 for every path outside ``base``, so the path is never told to anyone. The
  token is given once as ``?token=`` in the URL that ``m5data annotate serve`` prints, answered by a
  redirect that drops it from the address bar and sets an HttpOnly, SameSite=Strict cookie whose
  Path is ``base``; scripts may send ``Authorization: Bearer <token>`` instead. Every comparison is
  ``hmac.compare_digest`` over bytes.

  Why the path: browsers do not scope cookies by port, so a cookie of 127.0.0.1 with Path=/ goes to
  every other server on 127.0.0.1 the browser visits (a notebook, a dev server), which could then
  open the UI. A cookie whose Path is an unguessable prefix is sent only to URLs under that prefix,
  which no other service knows to ask for. Its value is not the printed token either but an HMAC of
  it bound to this server's port and path (``cookie_value``): the browser never stores the secret
  that opens the UI from scripts or another machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

WILDCARD = ("0.0.0.0", "", "::")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); host names are not resolved."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret sent by a client (any text, even non-ASCII) with ours."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def cookie_name(port: int) -> str:
    """The token cookie's name: one per port, since browsers share cookies between ports of one host."""
    return f"m5data_ui_{port}"


def cookie_value(token: str, port: int, base: str) -> str:
    """What the token cookie holds: an HMAC of the token bound to this server's port and path, so the
    browser keeps a value that opens this server alone, never the printed token itself."""
    mac = hmac.new(token.encode("utf-8"), f"m5data-ui-cookie\0{port}\0{base}".encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode("ascii").rstrip("=")


def _host_and_port(value: str) -> tuple[str, int] | None:
    """(name, port) of a Host header value (port 80 when absent); None when it does not parse."""
    try:
        parts = urlsplit("//" + value.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return name, port if port is not None else 80


@dataclass(frozen=True)
class Guard:
    """The rules of one running server: where it is bound, which token (None: none) it wants, and the
    path it serves under when it wants one (``base``, e.g. ``/Xy…``; "" without a token)."""

    bound_host: str
    port: int
    token: str | None = None
    extra_hosts: frozenset[str] = field(default_factory=frozenset)
    base: str = ""

    @classmethod
    def make(cls, bound_host: str, port: int, token: str | None, extra_hosts: Iterable[str] = (),
             base: str = "") -> "Guard":
        if token is not None and not (base.startswith("/") and len(base) > 16 and "/" not in base[1:]):
            raise ValueError("a server that wants a token serves under a random path: base='/<random>'")
        return cls(bound_host.strip().lower(), port, token, frozenset(h.strip().lower() for h in extra_hosts), base)

    def allowed_names(self, local_ip: str | None) -> set[str]:
        """Host names this connection may use: the bound address (or the local one of a wildcard bind)."""
        names = set(self.extra_hosts)
        if self.bound_host not in WILDCARD:
            names.add(self.bound_host)
        if local_ip:
            names.add(local_ip.lower())
        if any(is_loopback(n) for n in names):
            names |= {"localhost", "127.0.0.1"}
        return names

    def check_host(self, request: web.Request) -> None:
        parsed = _host_and_port(request.headers.get("Host", ""))
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        local_ip = sock[0] if sock else None
        if parsed is None or parsed[1] != self.port or parsed[0] not in self.allowed_names(local_ip):
            raise web.HTTPMisdirectedRequest(text="this server does not answer for that Host header\n")

    def check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None:
            return
        name, port = _host_and_port(request.headers["Host"])  # checked before
        try:
            o = urlsplit(origin)
            ok = o.scheme == "http" and o.hostname == name and (o.port or 80) == port and o.path in ("", "/")
        except ValueError:
            ok = False
        if not ok:
            raise web.HTTPForbidden(text="requests from another origin are refused\n")

    def check_token(self, request: web.Request) -> web.StreamResponse | None:
        """None when the request carries the token; a redirect that sets the cookie when it came as ``?token=``."""
        if self.token is None:
            return None
        if not request.rel_url.raw_path.startswith(self.base + "/"):
            raise _unauthorized()  # the same answer as a wrong token: the path is not told
        from_query = request.query.get("token")
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if from_query is not None:
            if not same_secret(from_query, self.token):
                raise _unauthorized()
            if request.method in ("GET", "HEAD"):
                rest = {k: v for k, v in request.query.items() if k != "token"}
                response = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(rest))})
                # Path: sent back to this server's base only, never to another port's service
                response.set_cookie(cookie_name(self.port), cookie_value(self.token, self.port, self.base),
                                    httponly=True, samesite="Strict", path=self.base + "/")
                return response
            return None
        if same_secret(bearer, self.token):
            return None
        if same_secret(request.cookies.get(cookie_name(self.port)), cookie_value(self.token, self.port, self.base)):
            return None
        raise _unauthorized()

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        self.check_host(request)
        self.check_origin(request)
        redirect = self.check_token(request)
        if redirect is not None:
            return redirect
        return await handler(request)


def _unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text="this annotation UI needs its access token: open the URL that `m5data annotate serve` printed (…/<path>/?token=…)\n",
        headers={"WWW-Authenticate": 'Bearer realm="m5data annotation UI"'})
