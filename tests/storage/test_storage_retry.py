"""storage/retry.py: which store errors are waited out, the shared outage window, and a cancelled
store call whose error is never left unretrieved."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import time

import pytest

from m5data.storage.errors import StoreBusy, StoreError, StoreUnavailable
from m5data.storage.retry import StoreRetry, in_thread, is_transient

botocore = pytest.importorskip("botocore.exceptions")


def client_error(code: str, status: int):
    return botocore.ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def wrapped(exc: BaseException) -> StoreError:
    """As ObjectStore.explained raises it."""
    try:
        raise StoreError("s3://b/p/x: wrapped") from exc
    except StoreError as e:
        return e


@pytest.mark.parametrize("exc, transient", [
    (wrapped(botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")), True),
    (wrapped(botocore.ReadTimeoutError(endpoint_url="http://127.0.0.1:1")), True),
    (wrapped(client_error("SlowDown", 503)), True),
    (wrapped(client_error("InternalError", 500)), True),
    (wrapped(client_error("AccessDenied", 403)), False),
    (wrapped(OSError(errno.EIO, "x")), False),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (PermissionError(errno.EACCES, "Permission denied"), False),
    (StoreBusy("locks/download: in use"), False),
])
def test_only_an_outage_of_the_store_is_waited_out(exc, transient):
    assert is_transient(exc) is transient


def test_a_store_call_is_tried_again_until_the_store_answers_and_past_the_window_it_is_one_line():
    down = {"until": time.monotonic() + 0.6}
    waits = []

    def put():
        if time.monotonic() < down["until"]:
            raise wrapped(botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
        return "etag"

    retry = StoreRetry("s3://b/p", 5.0, "download.store_retry_seconds", on_wait=lambda: waits.append(1))
    assert retry.call(put) == "etag" and retry.waits >= 1 and len(waits) == 2 * retry.waits
    down["until"] = time.monotonic() + 60
    with pytest.raises(StoreUnavailable, match=r"^the store s3://b/p cannot be reached \(still failing after 0.5 s, "
                                               r"download.store_retry_seconds\): s3://b/p/x: wrapped$"):
        StoreRetry("s3://b/p", 0.5, "download.store_retry_seconds").call(put)
    with pytest.raises(StoreUnavailable, match=r"^the store /s failed: PermissionError: \[Errno 13\] Permission denied$"):
        StoreRetry("/s", 60, "x").call(lambda: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied")))
    with pytest.raises(KeyError):  # not the store's: raised as it is, at once
        StoreRetry("/s", 60, "x").call(lambda: {}["k"])


def test_a_cancelled_store_call_that_fails_later_leaves_no_unretrieved_error(caplog):
    def slow_failure():
        time.sleep(0.2)
        raise OSError(errno.ECONNREFUSED, "refused")

    async def main():
        task = asyncio.ensure_future(in_thread(slow_failure))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)  # the thread's error arrives after its caller is gone

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    assert "never retrieved" not in caplog.text
