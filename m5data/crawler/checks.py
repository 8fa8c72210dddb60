"""What the crawl cannot run with, refused before any work: its registered check (``stage.check``, run by
its verb and by ``m5data run`` before any stage) and the job's own call of it (``crawl.run`` called
directly). Apart from crawl.py and stage.py, so that neither imports the other to check."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..storage.redact import redact_url


def check_start_urls(urls: list[str]) -> list[str]:
    """Reject start URLs that are not absolute http(s) URLs, before any work starts."""
    if not urls:
        raise ValueError("give at least one --start-url (or set flows.start_urls)")
    out = []
    for url in urls:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"start URL must be an absolute http(s) URL, got {redact_url(url)!r}")
        out.append(url.strip())
    return out


def check(settings, options: dict) -> None:
    """What the crawl cannot run with, refused before any work (``m5data run``: before any stage): start URLs
    that are not absolute http(s) URLs (``options["start_urls"]``; ValueError), a forced adapter
    (``options["site"]``) that is none (UnknownSite), a ``crawl.headers`` that is not a JSON table or a
    ``crawl.cookies_file`` that cannot be read (SessionError), ``crawl.render`` without a browser to render
    with (ValueError) and a ``crawl.render_timeout`` not above 0 (ConfigError)."""
    from pathlib import Path

    from . import session
    check_start_urls(list(options.get("start_urls") or []))
    if options.get("site"):
        from .adapters import get_adapter

        get_adapter(options["site"])
    session.parse_headers(settings.crawl.headers)
    if settings.crawl.cookies_file:  # a missing or unreadable file
        session.load_cookies(Path(settings.crawl.cookies_file).expanduser().absolute())
    if settings.crawl.render:
        from .render import check_browser

        if why := check_browser():
            raise ValueError(why)
    if not settings.crawl.render_timeout > 0:
        from ..config_checks import ConfigError

        raise ConfigError(f"crawl.render_timeout must be > 0, got {settings.crawl.render_timeout}")
