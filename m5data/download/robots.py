"""robots.txt for the download: every URL it requests (a media file and each hop of its redirects).

Each host's ``/robots.txt`` is fetched once per run (``download.obey_robots``), before the host's
first file, and cached for the run; it is parsed by Protego (Scrapy's parser, the crawl's) and
matched against our agent's product token (``m5data``: the token of ``http.user_agent``). What a
fetch gives follows RFC 9309 (Robots Exclusion Protocol, 2.3.1):

- **2xx**: the rules of the body's first :data:`MAX_BYTES` (the RFC asks a parser to read at least
  500 KiB; what is past it is not read);
- **4xx** ("unavailable"): no rules, everything allowed;
- **5xx** or **unreachable** (a connection error, a timeout; 429 counted here too): "the crawler MUST
  assume complete disallow": nothing of the host is fetched this run. That is not an owner's
  opt-out: such a file fails (reason ``robots_unreachable``) and ``--retry-failed`` tries it again;
- redirects are followed up to five hops (2.3.1.2), each checked by the URL safety policy.

A URL the rules disallow is not requested: its outcome is ``opted_out`` (reason ``robots_txt``),
with an ``optouts`` row (source ``robots.txt``, directive ``Disallow``).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from protego import Protego
from yarl import URL

from .safety import UnsafeURL, check_url

log = logging.getLogger(__name__)
ROBOTS_PATH = "/robots.txt"
MAX_BYTES = 512_000  # RFC 9309 2.5: a parsing limit of at least 500 KiB
MAX_HOPS = 5  # RFC 9309 2.3.1.2: follow at least five consecutive redirects
UNREACHABLE = None  # a host whose robots.txt could not be read: everything disallowed this run


class RobotsRules:
    """The robots.txt rules of one download run, fetched once per host (origin) and cached.

    Args:
        opts: the ``download`` settings section (``obey_robots``, timeouts, ``allow_private``).
        agent: our product token (``m5data``).
    """

    def __init__(self, opts, agent: str):
        self.opts = opts
        self.agent = agent
        self.rules: dict[str, asyncio.Task] = {}

    async def verdict(self, session: aiohttp.ClientSession, url: URL) -> str | None:
        """None when ``url`` may be fetched; else ``"disallowed"`` (the rules refuse it) or
        ``"unreachable"`` (its host's robots.txt answered 5xx or not at all)."""
        if not self.opts.obey_robots or url.scheme not in ("http", "https") or url.raw_path == ROBOTS_PATH:
            return None
        origin = str(url.origin())
        if origin not in self.rules:  # a task of its own: a URL cancelled (its deadline) leaves it to the others
            self.rules[origin] = asyncio.ensure_future(self._fetch(session, url.origin().with_path(ROBOTS_PATH)))
        rules = await asyncio.shield(self.rules[origin])
        if rules is UNREACHABLE:
            return "unreachable"
        return None if rules.can_fetch(str(url), self.agent) else "disallowed"

    async def _fetch(self, session: aiohttp.ClientSession, url: URL) -> Protego | None:
        """A host's rules (:data:`UNREACHABLE` when they could not be read)."""
        timeout = aiohttp.ClientTimeout(total=self.opts.connect_timeout + self.opts.read_timeout)
        try:
            for _ in range(MAX_HOPS + 1):
                target = check_url(str(url), self.opts.allow_private)
                async with session.get(target, allow_redirects=False, timeout=timeout) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        url = target.join(URL(resp.headers["Location"]))
                        continue
                    if 200 <= resp.status < 300:
                        body = await read_at_most(resp.content, MAX_BYTES)  # read(n) gives what has arrived
                        return Protego.parse(body.decode("utf-8", errors="replace"))
                    if 400 <= resp.status < 500 and resp.status != 429:
                        return Protego.parse("")  # unavailable: no rules
                    log.info("robots.txt %s answered HTTP %s: nothing of the host is fetched", url, resp.status)
                    return UNREACHABLE
            log.info("robots.txt %s: more than %d redirects: taken as unavailable", url, MAX_HOPS)
            return Protego.parse("")
        except UnsafeURL:  # the safety policy refuses the host: its files are refused as such (unsafe_url)
            return Protego.parse("")
        except Exception as exc:  # noqa: BLE001  unreachable: complete disallow (RFC 9309 2.3.1.4)
            log.info("robots.txt %s unreachable (%s: %s): nothing of the host is fetched", url, type(exc).__name__, exc)
            return UNREACHABLE


async def read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """A body's first ``limit`` bytes, or all of it when shorter. (``content.read(limit)`` gives what has
    arrived so far: a rules file longer than one chunk came back cut, unreadable, and so no rules.)"""
    chunks, size = [], 0
    while size < limit and (chunk := await content.read(limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
