"""Which task failures Prefect retries: transient ones (network, stalls, ffmpeg timeouts) only.

A bad option, a bad mapping file, an unreadable store or a bug fails the same way every time, so
retrying it only delays the summary; a site that did not answer or a video whose ffmpeg pass timed
out may work a minute later. Tasks pass :func:`transient` as ``retry_condition_fn``.
"""

from __future__ import annotations

import errno

from ..stages import DownloadFailed, TransientFailure  # raised by the stages: defined below them

# the messages of CrawlFailed (m5data/crawler/crawl.py) that are not worth a second try
_PERMANENT_CRAWL = ("store writes failed", "items could not be stored")

__all__ = ["DownloadFailed", "TransientFailure", "is_transient", "transient"]


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` is a failure that may go away on its own."""
    from ..crawler.crawl import CrawlFailed, CrawlInterrupted

    if exc is None or isinstance(exc, CrawlInterrupted):  # a crawl stopped on purpose (Ctrl-C, SIGTERM)
        return False
    if isinstance(exc, (TransientFailure, DownloadFailed, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, CrawlFailed):
        return not any(text in str(exc) for text in _PERMANENT_CRAWL)
    if isinstance(exc, OSError):  # a full disk or a missing file will not fix itself
        return exc.errno not in (errno.ENOSPC, errno.ENOENT, errno.EACCES, errno.EROFS)
    return False


def transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure's exception is transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result could not be read back: do not guess, do not retry
        return False
    return is_transient(exc if isinstance(exc, BaseException) else None)
