"""The crawl's subprocess (``python -m m5data.crawler.child JOB.json``, started by ``crawl.run``): one
Scrapy crawl described by a job file, then its Scrapy stats written to JSON for the parent to judge.

It never imports pandas: pyarrow's converter of Python lists imports it (~0.3 CPU-s, about 1,000
modules) at the first rows a process writes, only to recognise pandas' missing-value objects, which
a crawl never holds. A library that asked for pandas here would get a ModuleNotFoundError naming this
module, never a silently different answer.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from .. import lifeline
from ..storage.files import write_atomic

PARENT_GONE_GRACE = 15.0  # seconds Scrapy gets to stop cleanly once the crawl's parent process is gone


class _NoPandas:
    """A meta path finder that refuses pandas (see the module's docstring)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not imported in the crawl's subprocess (m5data.crawler.child)",
                                      name=name)
        return None


def refuse_pandas() -> None:
    """From now on, this process refuses to import pandas (unless it already has)."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


LISTENERS = ("scrapy.extensions.telnet.", "scrapy.extensions.remote_control.")


def without_listeners(settings: dict) -> dict:
    """``settings`` with Scrapy's base extensions less the two that open a port, the telnet console and
    remote control (Scrapy 2.19's HTTP endpoint that runs Python code sent to it). Left out of the base
    list, not set to None in EXTENSIONS: Scrapy imports every key it names there to compare them, and
    remote control imports aiohttp's web server (~0.3 CPU-s of a small crawl's subprocess)."""
    from scrapy.settings import default_settings

    base = {path: order for path, order in default_settings.EXTENSIONS_BASE.items() if not path.startswith(LISTENERS)}
    return {**settings, "EXTENSIONS_BASE": base}


def _die_with_parent(parent_pid: int) -> None:
    """End with the parent: SIGTERM (a clean Scrapy shutdown) when it dies, SIGKILL :data:`PARENT_GONE_GRACE`
    seconds later if this process still runs (busy in a C call that never returns to Python's signal
    handler: m5data/lifeline.py)."""
    if not lifeline.end_with_parent(parent_pid, PARENT_GONE_GRACE):  # the parent died before it took effect
        raise SystemExit(3)


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry: run one crawl described by a job file, then write its stats JSON."""
    refuse_pandas()
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    secrets = json.loads(sys.stdin.read() or "{}") if sys.stdin and not sys.stdin.isatty() else {}
    _die_with_parent(job["parent_pid"])
    if job.get("parent_handles_sigint"):  # until the reactor runs too (see below)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    from scrapy.crawler import CrawlerProcess

    from ..storage import Store, takedowns
    from ..storage.redact import install_log_redaction
    from . import session
    from .pipeline import stored_products
    from .revalidate import refresh_validators, stored_versions
    from .spider import ProductSpider

    session.SECRET_HEADERS.update(secrets.get("headers") or {})
    session.register_headers(session.SECRET_HEADERS)
    session.register_proxy_credentials(os.environ)
    settings = without_listeners(job["scrapy_settings"])
    done = stored_products(Store.open(job["store"]))[2] if settings["M5DATA_RESUME"] else set()
    versions, validators = None, {}
    if settings.get("M5DATA_REVALIDATE"):
        store = Store.open(job["store"])
        versions = stored_versions(store)
        validators = refresh_validators(store, versions)
    process = CrawlerProcess(settings=settings)
    install_log_redaction()  # on the handler of Scrapy's log file, made just now
    crawler = process.create_crawler(ProductSpider)
    process.crawl(crawler, start_urls=job["start_urls"], site=job["site"], done_urls=done, validators=validators, versions=versions,
                  takedowns=[t for t in takedowns.rows(Store.open(job["store"])) if t["kind"] != "product_id"],  # pages, not ids
                  render=bool(settings.get("M5DATA_RENDER")), render_timeout=float(settings.get("M5DATA_RENDER_TIMEOUT", 30.0)))
    if job.get("parent_handles_sigint"):
        from twisted.internet import reactor  # the one crawl() installed

        # after Scrapy's shutdown handlers (installed once the reactor has started): a terminal's
        # Ctrl-C reaches the parent, which sends SIGTERM (its first stop sets SIGINT again, to force)
        reactor.callWhenRunning(reactor.callLater, 0, signal.signal, signal.SIGINT, signal.SIG_IGN)
    process.start()
    write_atomic(Path(job["stats_file"]),
                 json.dumps(crawler.stats.get_stats(), indent=2, sort_keys=True, default=str).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
