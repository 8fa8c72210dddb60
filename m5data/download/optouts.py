"""The download's side of owners' opt-outs (m5data/optout.py): a media file that states one is not stored.

A response's ``X-Robots-Tag`` (the directives of ``download.optout_directives``, scoped to our agent
or to none) or ``tdm-reservation: 1``, or a reserving rule of its host's ``/.well-known/tdmrep.json``
(fetched once per host and run, ``download.tdmrep``), makes the file's outcome ``opted_out``: no
body read, no blob, one ``optouts`` row (scope ``media``); not a failure, never retried. So does a
redirect hop that says so (its headers are read as the file's), and a URL (the file's or a hop's)
that its host's robots.txt disallows for our agent (:mod:`.robots`): that one is not requested.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import aiohttp
from yarl import URL

from ..optout import TDMREP_MAX_BYTES, TDMREP_PATH, OptOut, agent_token, robots_optout, tdm_optout, tdmrep_rules
from .outcome import Outcome
from .robots import RobotsRules, read_at_most
from .safety import check_url

log = logging.getLogger(__name__)
OPTED_OUT = "opted_out"  # the media status of a file whose owner opted out


class MediaOptOuts:
    """The opt-out check of one download run (its tdmrep.json rules cached per host).

    Args:
        opts: the ``download`` settings section.
        user_agent: the run's User-Agent (its product token is the agent X-Robots-Tag may name).
    """

    def __init__(self, opts, user_agent: str):
        self.opts = opts
        self.agent = agent_token(user_agent)
        self.directives = [d.strip().lower() for d in opts.optout_directives.split(",") if d.strip()]
        self.rules: dict[str, asyncio.Future] = {}
        self.robots = RobotsRules(opts, self.agent)

    async def refusal(self, session: aiohttp.ClientSession, url: URL) -> Outcome | None:
        """The outcome of a URL not to be requested at all (robots.txt), or None: request it."""
        verdict = await self.robots.verdict(session, url)
        if verdict == "disallowed":
            return Outcome(OPTED_OUT, "robots_txt", f"opted out: robots.txt disallows {url.raw_path} for {self.agent}",
                           meta={"optout": {"source": "robots.txt", "directive": "Disallow"}})
        if verdict == "unreachable":
            return Outcome("failed", "robots_unreachable", f"robots.txt of {url.origin()} answered 5xx or not at all: "
                           "nothing of the host is fetched this run (RFC 9309 2.3.1.4)")
        return None

    async def check(self, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse) -> OptOut | None:
        """The opt-out a media response states, or None."""
        if found := robots_optout(resp.headers.getall("X-Robots-Tag", []), self.agent, self.directives):
            return found
        if not self.opts.tdmrep:
            return None
        url = resp.url
        header = resp.headers.get("tdm-reservation")
        rules = None if header is not None else await self._rules(session, url)
        return tdm_optout(header, None, rules, url.raw_path_qs, resp.headers.get("tdm-policy"))

    async def outcome(self, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse) -> Outcome | None:
        """:meth:`check` as the file's outcome (``opted_out``, no body read), or None."""
        if found := await self.check(session, resp):
            return Outcome(OPTED_OUT, OPTED_OUT, f"opted out: {found.source}: {found.directive}", http_status=resp.status,
                           meta={"optout": {"source": found.source, "directive": found.directive}})
        return None

    async def _rules(self, session: aiohttp.ClientSession, url: URL) -> list:
        origin = str(url.origin())
        if origin not in self.rules:
            self.rules[origin] = asyncio.get_running_loop().create_future()
            self.rules[origin].set_result(await self._fetch(session, url.origin().with_path(TDMREP_PATH)))
        return await asyncio.shield(self.rules[origin])

    async def _fetch(self, session: aiohttp.ClientSession, url: URL) -> list:
        """A host's rules; none when it has no readable tdmrep.json (404, an error, not a rules array)."""
        try:
            target = check_url(str(url), self.opts.allow_private)
            timeout = aiohttp.ClientTimeout(total=self.opts.connect_timeout + self.opts.read_timeout)
            async with session.get(target, allow_redirects=False, timeout=timeout) as resp:
                if resp.status != 200:
                    return []
                return tdmrep_rules(await read_at_most(resp.content, TDMREP_MAX_BYTES + 1))
        except Exception as exc:  # noqa: BLE001  no readable rules: none for the host
            log.info("no TDMRep rules from %s: %s: %s", url, type(exc).__name__, exc)
            return []


def write_statuses(store, rows: list[dict], run_id: str) -> None:
    """Write media status rows, after the ``optouts`` rows of those whose file opted out."""
    now = datetime.now(timezone.utc)
    opted = [{"url": r["url"], "product_id": r["product_id"], "scope": "media", "run_id": run_id, "seen_at": now,
              **json.loads(r["meta"])["download"]["optout"]} for r in rows if r["status"] == OPTED_OUT]
    if opted:
        store.write("optouts", opted)
    store.write("media", rows)
