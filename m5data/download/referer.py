"""The ``Referer`` header a media request sends: the page that shows the media, as a browser sends it."""

from __future__ import annotations

from yarl import URL


def referer_for(page: str | None, target: str) -> str | None:
    """The ``Referer`` a browser sends from ``page`` for ``target``: the page's http(s) URL without
    its fragment and user info (RFC 9110 10.1.3), none from an https page to an http URL (a
    downgrade) or from no page."""
    if not page:
        return None
    try:
        url = URL(page)
    except (ValueError, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    if url.scheme == "https" and target.lower().startswith("http:"):
        return None
    return str(url.with_fragment(None).with_user(None))
