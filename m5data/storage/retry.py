"""Store calls that wait out a store outage: an endpoint that does not answer, a 5xx or SlowDown, a
full disk. Such an error is the store's, never the fault of the item being written (a media URL,
a row): the call is tried again with backoff, and once the store has failed for ``seconds`` in a row
the caller gets one :class:`StoreUnavailable` line naming the store. Any other error of the store
(refused credentials, a missing bucket, a folder that cannot be written) ends the call at once, as a
StoreError line; an error that is not the store's (a bug) is raised as it is.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import Callable

from .errors import StoreError, StoreUnavailable

MAX_WAIT = 5.0  # seconds: the longest wait between two tries
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                    "ServiceUnavailable", "InternalError", "503", "500"}
_TRANSIENT_ERRNO = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                    errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.ENOSPC, errno.EDQUOT}


def _chain(exc: BaseException):
    """``exc`` and the errors it was raised from (``explained`` and s3fs wrap botocore's)."""
    seen = set()
    while exc is not None and id(exc) not in seen and len(seen) < 8:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _botocore_errors() -> tuple[tuple[type, ...], type | None]:
    try:
        from botocore import exceptions as bce
    except ImportError:  # a folder store only: no object storage client installed
        return (), None
    return (bce.ConnectionError, bce.HTTPClientError), bce.ClientError


def is_store_error(exc: BaseException) -> bool:
    """True when ``exc``, raised by a store call, is the store's (not a bug of the caller)."""
    connection, client_error = _botocore_errors()
    kinds = (StoreError, OSError, TimeoutError, *connection, *((client_error,) if client_error else ()))
    return isinstance(exc, kinds)


def is_transient(exc: BaseException) -> bool:
    """True for a store error that may pass: no connection, a timeout, a 5xx or SlowDown, a full disk."""
    connection, client_error = _botocore_errors()
    for e in _chain(exc):
        if isinstance(e, (ConnectionError, TimeoutError, *connection)):
            return True
        if client_error is not None and isinstance(e, client_error):
            response = getattr(e, "response", None) or {}
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or response.get("Error", {}).get("Code") in _TRANSIENT_CODES
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNO:
            return True
    return False


def one_line(exc: BaseException) -> str:
    """The error as one line (a StoreError already names the object and endpoint)."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, StoreError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


class StoreRetry:
    """Calls to the store ``where`` (its URL or folder) that wait out an outage of up to ``seconds``
    (the setting ``setting``).

    The outage is the store's, not a call's: it starts at the first failure after a success of any
    call and ends at the next success, so concurrent callers share one window. ``on_wait`` is called
    when a wait begins and ends (a download's watchdog counts it as progress).
    """

    def __init__(self, where: str, seconds: float, setting: str, on_wait: Callable[[], None] | None = None):
        self.where = where
        self.seconds = seconds
        self.setting = setting  # the setting that gives ``seconds``, named in the error
        self.on_wait = on_wait or (lambda: None)
        self.since: float | None = None  # monotonic time of the outage's first failure
        self.waits = 0  # tries that failed and were retried

    def unavailable(self, exc: Exception) -> Exception:
        """What to raise for ``exc``, the error of a store call that is not tried again: a StoreError
        as it is (it names its object: StoreBusy, a refused key), another store error as one
        StoreUnavailable line naming the store, an error that is not the store's (a bug) as it is."""
        if isinstance(exc, StoreError) or not is_store_error(exc):
            return exc
        unavailable = StoreUnavailable(f"the store {self.where} failed: {one_line(exc)}")
        unavailable.__cause__ = exc
        return unavailable

    def _wait_after(self, exc: Exception, attempt: int) -> float:
        """Seconds to wait before trying again after ``exc``; raises when the call must not be retried."""
        if not is_transient(exc) or not is_store_error(exc):
            raise self.unavailable(exc)
        now = time.monotonic()
        if self.since is None:
            self.since = now
        left = self.since + self.seconds - now
        if left <= 0:
            raise StoreUnavailable(f"the store {self.where} cannot be reached (still failing after "
                                   f"{self.seconds:g} s, {self.setting}): {one_line(exc)}") from exc
        self.waits += 1
        return min(left, MAX_WAIT, 0.25 * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))

    def _ok(self):
        self.since = None

    def call(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)``, tried again while the store is out (at most ``seconds``)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  sorted by _wait_after: retried, or raised
                delay = self._wait_after(exc, attempt)
                self.on_wait()
                time.sleep(delay)
                self.on_wait()
                continue
            self._ok()
            return result

    async def acall(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` in a worker thread, tried again while the store is out. A try once
        started runs to its end even if the caller is cancelled (a publish is never cut in half), and
        its error is then dropped, never left unretrieved."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await in_thread(fn, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001  sorted by _wait_after: retried, or raised
                delay = self._wait_after(exc, attempt)
                self.on_wait()
                await asyncio.sleep(delay)
                self.on_wait()
                continue
            self._ok()
            return result


async def in_thread(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a worker thread, shielded from the caller's cancellation; a result or
    error that comes after the caller was cancelled is retrieved and dropped (no "Task exception was
    never retrieved" at exit)."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_drop)
        raise


def _drop(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
