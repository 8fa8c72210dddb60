"""URL safety: only http(s), and by default no host that resolves to a non-public address.

Two checks, both on every hop of a redirect chain:

* :func:`check_url` (before a request): the scheme is http or https, there is a host, and a host
  written as an IP literal is public (aiohttp never calls the resolver for IP literals);
* :class:`GuardedResolver` (inside aiohttp's connector): a host name is resolved, and addresses
  that are private, loopback, link-local, multicast, reserved or unspecified are dropped. When
  none is left the connection fails with :class:`UnsafeURL`; so the check is made on the address
  that is actually connected to, which defeats DNS names that point at internal services.

``allow_private=True`` (``download.allow_private``; the demo shop and tests on 127.0.0.1 turn it
on) switches the address check off; the scheme check always applies.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from .addresses import is_public

ALLOWED_SCHEMES = ("http", "https")


class UnsafeURL(aiohttp.ClientError):
    """A URL refused by the safety policy; the message says why."""


def _ip_literal(host: str) -> str | None:
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return host


def check_url(url: str | URL, allow_private: bool) -> URL:
    """Parse ``url`` and refuse it (:class:`UnsafeURL`) unless it is fetchable under the policy."""
    try:
        parsed = url if isinstance(url, URL) else URL(str(url).strip())
    except (ValueError, TypeError) as exc:
        raise UnsafeURL(f"malformed URL {url!r}: {exc}") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"scheme {scheme or '(none)'!r} refused (only http and https): {url}")
    if not parsed.host:
        raise UnsafeURL(f"no host in URL: {url}")
    literal = _ip_literal(parsed.host)
    if literal is not None and not allow_private and not is_public(literal):
        raise UnsafeURL(f"address {literal} is not public (set download.allow_private to allow it): {url}")
    return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops non-public addresses unless ``allow_private`` is set."""

    def __init__(self, allow_private: bool = False, resolver: AbstractResolver | None = None):
        self.allow_private = allow_private
        self._resolver = resolver or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        results = await self._resolver.resolve(host, port, family)
        if self.allow_private:
            return results
        public = [r for r in results if is_public(r["host"])]
        if not public:
            addresses = ", ".join(sorted({r["host"] for r in results}))
            raise UnsafeURL(f"host {host} resolves only to non-public addresses ({addresses}); "
                            "set download.allow_private to allow them")
        return public

    async def close(self) -> None:
        await self._resolver.close()
