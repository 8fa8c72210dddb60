"""The labelling UI's network guard: which requests reach the app at all (one aiohttp middleware).

- **Host** (DNS rebinding): the Host header must name the address the server is bound to (for a bind
  on every address, 0.0.0.0, the address the connection came in on), ``localhost`` when that address
  is loopback, or a name given with ``--allow-host``, and the server's port. Anything else is a page
  of another site whose name was pointed at this machine: 421, before any route runs.
- **Origin**: a request that carries an Origin header must come from the page's own origin
  (``http://`` + its Host): 403 otherwise, ``null`` included.
- **Token**: a server bound to anything but loopback (or started with ``--require-token``) wants
  the worker's secret token on every request, static files and images included: 401 without it.
  It is given once as ``?token=`` in the URL that ``m5data annotate serve`` prints, answered by a
  redirect that drops it from the address bar and sets an HttpOnly, SameSite=Strict cookie named
  after the port; scripts may send ``Authorization: Bearer <token>`` instead. Every comparison is
  ``hmac.compare_digest`` over bytes.
"""

from __future__ import annotations

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
    """The rules of one running server: where it is bound and which token (None: none) it wants."""

    bound_host: str
    port: int
    token: str | None = None
    extra_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def make(cls, bound_host: str, port: int, token: str | None, extra_hosts: Iterable[str] = ()) -> "Guard":
        return cls(bound_host.strip().lower(), port, token, frozenset(h.strip().lower() for h in extra_hosts))

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
        from_query = request.query.get("token")
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if from_query is not None:
            if not same_secret(from_query, self.token):
                raise _unauthorized()
            if request.method in ("GET", "HEAD"):
                rest = {k: v for k, v in request.query.items() if k != "token"}
                response = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(rest))})
                response.set_cookie(cookie_name(self.port), self.token, httponly=True, samesite="Strict", path="/")
                return response
            return None
        if same_secret(bearer, self.token) or same_secret(request.cookies.get(cookie_name(self.port)), self.token):
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
        text="this annotation UI needs its access token: open the URL that `m5data annotate serve` printed (…/?token=…)\n",
        headers={"WWW-Authenticate": 'Bearer realm="m5data annotation UI"'})
