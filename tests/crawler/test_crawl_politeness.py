"""What the crawl honours (issue 35, defect 11): a shop's ``Retry-After`` on 429/503, for the whole
host and not only the throttled URL, and robots.txt's ``Crawl-delay``, both capped by settings, and
counted per host in the ``runs`` row and the crawl's summary.

The crawls run for real (Scrapy subprocess) against shops on 127.0.0.1 that log when each request
arrives; the tests assert the gaps between arrivals (lower bounds only) and counts. Delays are kept
at 1 s so that the tests stay fast.
"""

import email.utils
import json
import time

import pytest
from support.crawl_server import Page, SiteServer
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.crawler.crawl import run
from m5data.crawler.politeness import crawl_delay_for
from m5data.download.retry_after import retry_after_seconds

TOLERANCE = 0.05  # seconds: timer slack (a request after a pause is sent after the answer was read)
# A Crawl-delay is kept by Scrapy's download slot, which measures from when it hands a request to the
# connection: one request slower to connect than the next (a loaded machine) arrives later and shortens
# the following gap by as much. Each gap is bounded loosely and the whole span tightly, which a burst
# (gaps of a few ms before the fix) fails by far.
SEND_JITTER = 0.25


def product(sku: str) -> str:
    ld = {"@context": "https://schema.org", "@type": "Product", "sku": sku, "name": f"Mug {sku}",
          "offers": {"@type": "Offer", "price": "9.50", "priceCurrency": "EUR"}}
    return f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head><body></body></html>'


def listing(paths: list[str]) -> str:
    return "<html><body>" + "".join(f'<a href="{p}">{p}</a>' for p in paths) + "</body></html>"


def throttling(status: int, retry_after, times: int, sku: str):
    """A product page answering ``status`` with ``Retry-After`` (a value, or a function giving one)
    to its first ``times`` requests, then the page."""
    def answer(hit: int, headers: dict) -> Page:
        if hit <= times:
            value = retry_after() if callable(retry_after) else retry_after
            return Page(b"slow down\n", "text/plain", status, {"Retry-After": value})
        return Page(product(sku).encode())
    return answer


def http_date_in(seconds: int) -> str:
    """An HTTP date ``seconds`` whole seconds from now (so between seconds - 1 and seconds away)."""
    return email.utils.formatdate(int(time.time()) + seconds, usegmt=True)


def gaps_after(server: SiteServer, throttled: set[tuple[str, int]]) -> list[float]:
    """Seconds from each throttled answer (path, hit number) to the next request the shop received."""
    hits: dict[str, int] = {}
    out = []
    for i, (at, path, _) in enumerate(server.arrivals):
        hits[path] = hits.get(path, 0) + 1
        if (path, hits[path]) in throttled and i + 1 < len(server.arrivals):
            out.append(server.arrivals[i + 1][0] - at)
    return out


def run_row(store) -> dict:
    rows = store.read("runs").to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_retry_after_pauses_the_whole_host_and_is_capped(store):
    pages = {"/p/a.html": throttling(429, "1", 1, "A"),  # delta-seconds
             "/p/b.html": throttling(503, lambda: http_date_in(2), 1, "B"),  # an HTTP date, 1-2 s away
             "/p/c.html": throttling(429, "3600", 2, "C")}  # an hour: capped at crawl.max_retry_after
    server = SiteServer({"/": listing(list(pages)), **pages})
    # one request at a time: every request after a throttled answer was sent after the crawler saw it
    settings = load(overrides={"crawl.allow_private": True, "crawl.obey_robots": False, "crawl.concurrency": 1,
                               "crawl.per_domain": 1, "crawl.max_retry_after": 1.0}, environ={})
    with server:
        stats = run(store, settings, start_urls=[server.url + "/"])
    throttled = {("/p/a.html", 1), ("/p/b.html", 1), ("/p/c.html", 1), ("/p/c.html", 2)}
    gaps = gaps_after(server, throttled)
    assert len(gaps) == 4
    # before the fix: gaps of a few ms (Scrapy's retry does not wait, other pages went at once too)
    assert min(gaps) >= 1.0 - TOLERANCE, gaps
    assert [p for _, p, _ in server.arrivals].count("/p/c.html") == 3  # the cap let it through, not an hour
    assert stats.n_out == 3
    host = f"127.0.0.1:{server.port}"
    throttle = json.loads(run_row(store)["config"])["job"]["throttle"]
    assert throttle[host]["throttled"] == 4 and throttle[host]["retry_after_capped"] >= 2
    assert throttle[host]["retry_after_s"] == pytest.approx(4.0, abs=0.01)  # 4 pauses of the 1 s cap
    assert stats.throttle == throttle


def test_a_throttling_host_gets_one_request_at_a_time_until_it_answers_again(store):
    def answer(hit: int, headers: dict) -> Page:  # every page: 429 first; the page itself slowly (0.3 s)
        if hit == 1:
            return Page(b"slow down\n", "text/plain", 429, {"Retry-After": "1"})
        time.sleep(0.3)
        return Page(product("P").encode())
    paths = [f"/p/{i}.html" for i in range(6)]
    server = SiteServer({"/": listing(paths), **{p: answer for p in paths}})
    settings = load(overrides={"crawl.allow_private": True, "crawl.obey_robots": False}, environ={})
    with server:  # 8 requests per host in flight: the six first requests go at once
        run(store, settings, start_urls=[server.url + "/"])
    seen: set[str] = set()
    firsts, retries = [], []
    for at, path, _ in server.arrivals:
        if not path.startswith("/p/"):  # the listing, the host's tdmrep.json
            continue
        (retries if path in seen else firsts).append(at)
        seen.add(path)
    assert len(firsts) == len(retries) == 6
    assert retries[0] >= max(firsts) + 1.0 - TOLERANCE  # the pause holds every page of the host
    # the first request after the pause goes alone; the others wait for its answer (0.3 s), not a burst
    assert retries[1] >= retries[0] + 0.3 - TOLERANCE, [b - retries[0] for b in retries]


def delay_shop(crawl_delay: str) -> SiteServer:
    paths = [f"/p/{i}.html" for i in range(4)]
    server = SiteServer({"/": listing(paths), **{p: product(f"S{i}") for i, p in enumerate(paths)}})
    server.add("/robots.txt", Page(f"User-agent: *\nCrawl-delay: {crawl_delay}\nDisallow: /cart\n".encode(),
                                   "text/plain"))
    return server


def assert_spaced(times: list[float], delay: float) -> None:
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= delay - SEND_JITTER, gaps
    assert times[-1] - times[0] >= len(gaps) * delay - SEND_JITTER, gaps


def test_crawl_delay_of_robots_txt_spaces_requests_and_is_shown(store):
    server = delay_shop("1")
    with server:  # default concurrency (16, 8 per domain): before the fix 4 pages went out within ms
        result = CliRunner().invoke(app, ["--store", str(store.root), "--set", "crawl.allow_private=true",
                                          "crawl", "--start-url", server.url + "/"])
    assert result.exit_code == 0, result.output
    paths = [p for _, p, _ in server.arrivals]
    # the host's TDMRep rules (docs/compliance.md) are a request too, spaced like the others
    assert paths[:3] == ["/robots.txt", "/.well-known/tdmrep.json", "/"] and len(paths) == 7
    assert_spaced([at for at, _, _ in server.arrivals], 1.0)
    host = f"127.0.0.1:{server.port}"
    assert json.loads(run_row(store)["config"])["job"]["throttle"] == {host: {"crawl_delay_s": 1.0}}
    assert "Crawl-delay" in result.output and host in result.output


def test_crawl_delay_is_capped(store):
    server = delay_shop("30")  # 30 s between requests: 2.5 minutes for this shop
    settings = load(overrides={"crawl.allow_private": True, "crawl.max_crawl_delay": 1.0}, environ={})
    with server:
        stats = run(store, settings, start_urls=[server.url + "/"])
    times = [at for at, _, _ in server.arrivals]
    assert len(times) == 7 and stats.n_out == 4  # robots.txt, tdmrep.json, the listing, 4 pages
    assert_spaced(times, 1.0)
    assert stats.throttle == {f"127.0.0.1:{server.port}": {"crawl_delay_s": 1.0, "crawl_delay_asked_s": 30.0}}


def test_crawl_delay_policy():
    settings = load(environ={}).crawl
    assert crawl_delay_for(2.0, settings) == 2.0
    assert crawl_delay_for(None, settings) == 0.0
    assert crawl_delay_for(1e9, settings) == settings.max_crawl_delay  # capped
    override = load(overrides={"crawl.crawl_delay": 0.5}, environ={}).crawl
    assert crawl_delay_for(30.0, override) == 0.5 and crawl_delay_for(None, override) == 0.0


def test_retry_after_values():
    assert retry_after_seconds("4") == 4.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert 1.0 <= retry_after_seconds(email.utils.formatdate(time.time() + 3, usegmt=True)) <= 3.0
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0  # in the past
    for bad in (None, "", "soon", "-5", "1e9999", "nan"):
        assert retry_after_seconds(bad) is None
