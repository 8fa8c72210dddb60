"""Credentials never reach a file: the one redaction rule for everything m5data writes or logs.

A URL's userinfo (``http://user:pass@host/``, ``s3://KEY:SECRET@bucket/``) becomes ``***``; the
values of ``crawl.headers`` (``{host: {name: value}}``) become ``***`` (host and header names stay,
so a run's ``runs.config`` still says what was sent where); and every secret registered with
:func:`register` (header values, cookie values, proxy passwords) is masked wherever it appears in a
log line. ``runs.config`` (``storage.runs``), ``crawl_errors`` rows, the crawl's job file and log,
and the Prefect flow's parameters and log rows all go through here (docs/security.md "Credentials").
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlsplit

MASK = "***"
# scheme://userinfo@ : userinfo holds no '/', '?', '#', '@' or white space (RFC 3986 percent-encodes them)
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/?#@\s\"'<>]+@")
SECRET_KEYS = frozenset({"headers", "crawl.headers"})  # settings whose values are per-host header tables
MIN_SECRET_CHARS = 4  # a shorter registered secret would mask ordinary text; URLs and headers are redacted anyway
_secrets: set[str] = set()


def redact_url(url: str) -> str:
    """``url`` with its userinfo (user name and password) replaced by ``***``."""
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", url) if isinstance(url, str) else url


def has_userinfo(url: str) -> bool:
    """True when ``url`` carries a user name or password (``scheme://user:pass@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None


def strip_userinfo(url: str) -> str:
    """``url`` without its userinfo at all (``http://u:p@host/x`` -> ``http://host/x``)."""
    if not has_userinfo(url):
        return url
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def mask_headers(value):
    """A ``crawl.headers`` value with every header value replaced by ``***`` (hosts and names kept)."""
    table = value
    if isinstance(value, str):
        if not value.strip():
            return value
        try:
            table = json.loads(value)
        except ValueError:
            return MASK
    if not isinstance(table, dict):
        return MASK
    masked = {str(host): ({str(name): MASK for name in names} if isinstance(names, dict) else MASK)
              for host, names in table.items()}
    return json.dumps(masked) if isinstance(value, str) else masked


def register(*values: str) -> None:
    """Secrets (header values, cookie values, proxy passwords) that :func:`redact` masks in any text."""
    for value in values:
        if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS:
            _secrets.add(value)


def redact(value):
    """``value`` (a string, or dicts and lists of them) with URL userinfo, header values and registered
    secrets masked; other values are returned as they are."""
    if isinstance(value, str):
        text = redact_url(value)
        for secret in sorted(_secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text
    if isinstance(value, dict):
        return {k: (mask_headers(v) if k in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A log filter that masks credentials in the formatted message (and its traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave the record to logging's own error handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put :class:`RedactingFilter` on every handler there is now (root, Scrapy's log file, Prefect's
    API handler that writes log rows to its database); idempotent."""
    loggers = [logging.getLogger()] + [lg for lg in list(logging.Logger.manager.loggerDict.values())
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def refuse_credentials(url: str, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` for an object-storage URL that carries credentials (s3fs ignores them, and a
    URL is stored and logged): they belong in the environment or a profile."""
    if has_userinfo(url):
        raise error(f"{what} {redact_url(url)}: credentials in the URL are refused (they would be stored "
                         "with the run and s3fs ignores them); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in "
                         "the environment, or use a profile (AWS_PROFILE)")
