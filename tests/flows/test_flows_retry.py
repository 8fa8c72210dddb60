"""Which failures the flow retries (m5data/flows/retry.py): decided by the exception's type alone."""

from __future__ import annotations

import errno

import pytest

from m5data.crawler.crawl import INTERRUPTED, CrawlFailed, CrawlInterrupted, CrawlNotStored
from m5data.errors import DownloadFailed, TransientFailure, UserError
from m5data.flows.retry import is_transient
from m5data.storage import StageStats, StoreBusy, StoreError
from m5data.storage.errors import StoreUnavailable


@pytest.mark.parametrize("exc", [
    CrawlFailed("no page could be fetched (3 errors); see log", StageStats("crawl")),
    CrawlFailed("store writes failed; see log", StageStats("crawl")),  # the text does not decide: the type does
    DownloadFailed("stalled"), TransientFailure("ffmpeg timeout"),
    ConnectionResetError(), TimeoutError(), OSError(errno.ECONNABORTED, "aborted"),
])
def test_a_transient_failure_is_retried(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    CrawlNotStored("store writes failed; see log", StageStats("crawl")),
    CrawlNotStored("3 items could not be stored; see log", StageStats("crawl")),
    CrawlInterrupted(INTERRUPTED, StageStats("crawl")),  # a crawl stopped on purpose (Ctrl-C)
    UserError("a bad option"), StoreError("no store"), StoreBusy("crawl is running (PID 1)"),
    StoreUnavailable("the store s3://b failed"),
    ValueError("bad mapping"), RuntimeError("a bug"), KeyError("a bug"), None,
    OSError(errno.ENOSPC, "No space left on device"), FileNotFoundError(errno.ENOENT, "gone"),
])
def test_a_user_error_a_bug_or_a_lasting_os_error_is_not_retried(exc):
    assert not is_transient(exc)


def test_the_crawl_failures_are_crawl_failures_of_either_kind():
    """The crawl verb shows every crawl failure with its stats; the flow retries only the transient one."""
    stats = StageStats("crawl")
    for cls in (CrawlNotStored, CrawlInterrupted):
        exc = cls("x", stats)
        assert isinstance(exc, CrawlFailed) and isinstance(exc, UserError) and exc.stats is stats
    assert not isinstance(CrawlFailed("x", stats), UserError)


def test_a_fatal_user_error_shows_its_message_alone_and_a_bug_its_type():
    from prefect.states import Failed

    from m5data.align.mapping import MappingError
    from m5data.flows.executor import _from_state

    entry = _from_state("align", Failed(data=MappingError("mapping m.toml: line 1: not TOML")))
    assert entry["status"] == "fatal" and entry["message"] == "mapping m.toml: line 1: not TOML"
    assert _from_state("align", Failed(data=KeyError("x")))["message"] == "KeyError: 'x'"
