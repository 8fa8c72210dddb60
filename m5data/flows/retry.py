"""Which task failures Prefect retries: transient ones (network, stalls, ffmpeg timeouts) only, by type.

A bad option, a bad mapping file, an unreadable store or a bug fails the same way every time, so
retrying it only delays the summary; a site that did not answer or a video whose ffmpeg pass timed
out may work a minute later. The type says which (m5data/errors.py): a :class:`UserError` never, a
:class:`TransientFailure` (a crawl that fetched nothing, a stalled download) always. Tasks pass
:func:`transient` as ``retry_condition_fn``.
"""

from __future__ import annotations

import errno

from ..errors import DownloadFailed, TransientFailure, UserError  # raised by the stages: defined below them

__all__ = ["DownloadFailed", "TransientFailure", "is_transient", "transient"]

# a full disk, a missing file or a refused write will not fix itself
_PERMANENT_ERRNOS = (errno.ENOSPC, errno.ENOENT, errno.EACCES, errno.EROFS)


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` is a failure that may go away on its own."""
    if exc is None or isinstance(exc, UserError):  # first: a class of both kinds (a crawl stopped on purpose) is the user's
        return False
    if isinstance(exc, (TransientFailure, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    return False


def transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure's exception is transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result could not be read back: do not guess, do not retry
        return False
    return is_transient(exc if isinstance(exc, BaseException) else None)
