"""One ``Retry-After`` reading for both HTTP clients: the download's fetcher (aiohttp) and the
crawl's politeness middleware (Scrapy) must wait the same for the same header value.

Each value is sent for real: by a local media server to the fetcher (one attempt, so the outcome
keeps what the 429 asked), and as a Scrapy response to the middleware (no cap, so its count is
what it read).
"""

import asyncio
import email.utils
import math
import time
from urllib.parse import quote

import pytest
from scrapy.http import Request, Response
from scrapy.utils.test import get_crawler
from support.media_server import MediaServer, jpeg_bytes

from m5data.config import load
from m5data.crawler.politeness import PolitenessMiddleware, throttle_by_host
from m5data.download.fetch import Fetcher
from m5data.download.retry_after import retry_after_seconds


def header_values() -> dict[str, float | None]:
    """value -> what both clients read: seconds (approx for dates), or None for "no pause asked".
    Made when the test runs: the dates count from now."""
    in_30_s = email.utils.formatdate(int(time.time()) + 30, usegmt=True)
    return {
        "4": 4.0,
        " 7 ": 7.0,
        in_30_s: 30.0,  # an HTTP date: seconds from now
        in_30_s.replace("GMT", "-0000"): 30.0,  # "-0000": UTC, whatever the local zone
        "Wed, 21 Oct 2015 07:28:00 GMT": 0.0,  # a date in the past: no wait
        "-5": None,  # negative
        "99999999999": 99999999999.0,  # huge but a number: read as is, the callers cap it
        "9" * 400: math.inf,  # past a float's range
        "soon": None,  # garbage
        "1.5": None,  # delay-seconds is a whole number
        "nan": None,
        "Sat, 01 Jan 99999 00:00:00 GMT": None,  # a year no date holds
        "\u00b2": None,  # "²": str.isdigit() says yes, float() raises
    }


def _approx(value, slack: float = 2.0):
    return value if value is None or math.isinf(value) else pytest.approx(value, abs=slack)


def fetcher_reads(store, values: list[str]) -> list[float | None]:
    """What the download's fetcher keeps of each value, sent with a 429 by a local server (an
    outcome of the 429, not of an error reading it)."""
    opts = load(overrides={"download.allow_private": True, "download.retries": 0}, environ={}).download

    async def fetch_all(server):
        async with Fetcher(store, opts) as fetcher:
            outcomes = [await fetcher.fetch(server.url(f"/ratelimit/{quote(v, safe='')}/a.jpg"), "image")
                        for v in values]
        assert [o.reason for o in outcomes] == ["http_429"] * len(values), [o.error for o in outcomes]
        return [o.retry_after for o in outcomes]

    with MediaServer({"a.jpg": jpeg_bytes(8, 8)}) as server:
        return asyncio.run(fetch_all(server))


def middleware_reads(values: list[str | bytes]) -> list[float | None]:
    """What the crawl's politeness middleware pauses a host for on each value (uncapped), None
    where it pauses nothing; a str goes on the wire as UTF-8, as the media server sends it."""
    out = []
    for i, value in enumerate(values):
        crawler = get_crawler()
        mw = PolitenessMiddleware(crawler, max_retry_after=math.inf, crawl_delay=-1.0, max_crawl_delay=30.0)
        url = f"http://127.0.0.1:9/p/{i}.html"
        mw.process_response(Request(url), Response(url, status=429, headers={"Retry-After": value}))
        seen = next(iter(throttle_by_host(crawler.stats.get_stats()).values()))
        assert seen["throttled"] == 1
        out.append(seen.get("retry_after_s"))
    return out


def test_both_clients_read_retry_after_alike(store):
    """Each client reads values made just before its pass, within the seconds the pass took (a date
    counts from now: on a loaded machine the fetcher's pass alone took over 2 s, and the crawl's, read
    against dates made before it, found 27.995 s where 30 were asked)."""
    for reads in (lambda values: fetcher_reads(store, values), middleware_reads):
        expected = header_values()
        started = time.monotonic()
        got = reads(list(expected))
        slack = max(2.0, time.monotonic() - started + 1.0)  # the pass's seconds, and the date's whole seconds
        for (value, want), read in zip(expected.items(), got):
            assert read == _approx(want, slack), (value, read)


def test_a_latin_1_superscript_does_not_break_the_crawl():
    # b"\xb2" is "²" in latin-1, as Scrapy decodes header values: a digit to str.isdigit(), not to float()
    assert middleware_reads([b"\xb2", b"\xb9\xb2"]) == [None, None]


def test_retry_after_values_outside_the_rfc_are_refused():
    assert retry_after_seconds(b"12") == 12.0  # Scrapy hands header values as bytes
    for bad in ("\u0663", "\u00b2", "1_000", "+5", "0x10", "1e3", "", " "):  # "٣": a digit, not an ASCII one
        assert retry_after_seconds(bad) is None, bad
