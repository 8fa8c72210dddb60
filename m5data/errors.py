"""The package's one error hierarchy: what a verb and a flow do with a failure is decided by its type.

- :class:`UserError`: an error the user can act on (a bad option or setting, a missing or bad file, a
  store problem, a stage that cannot run with what it was given). The message says what and names the
  file, URL, object or product. A verb prints it as one line and exits 1; a flow fails the stage with
  the message alone and never retries it (it would fail the same way). Every such class of the package
  derives from it (``ConfigError``, ``StoreError``, ``AlignError``, ...), keeping a builtin base
  (``ValueError``) where code catches that.
- :class:`TransientFailure`: a failure worth one more try (a site that did not answer, a download that
  stalled, items whose ffmpeg pass timed out), with the run's ``stats``. A flow retries the stage's task
  (m5data/flows/retry.py, as it does ``TimeoutError``, ``ConnectionError`` and most ``OSError``); a verb
  does not retry: it prints what the run did. A class deriving from both (a crawl whose items could not
  be stored, a crawl stopped by Ctrl-C) is a UserError: never retried.
- The item errors: a failure of one item, request or parse, caught where it is raised and counted as
  that item's failure reason (the run goes on): ``MediaError``, ``ImageDecodeError``, ``ImageTooLarge``,
  ``UnsafeURL``, ``RefusedRequest``, ``JSSyntaxError``, ``BlobPathError``, the importer's ``ItemError``,
  ``HardLinkError``, ``NotUtf8``, ``NeedsExact``, extract's ``Unsupported`` (a video the in-process
  frame pass leaves to the ffmpeg pass), and two private signals of the store. They reach no verb and
  no flow (tests/contract/test_errors.py holds the list).

Anything else (a ``KeyError``, a ``RuntimeError`` from a library) is a bug: a traceback in a verb, a
fatal stage in a flow, never retried. This module imports nothing of the package: every module, the
store included, may import it.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can act on: a verb prints the message as one line and exits 1, a flow fails the
    stage with it and never retries it."""


class TransientFailure(RuntimeError):
    """A stage result worth one more try (e.g. extract items that timed out); the retry redoes only them.

    ``stats``: the run's StageStats, which a verb (no retry) prints as the result.
    """

    def __init__(self, message: str, stats=None):
        super().__init__(message)
        self.stats = stats


class DownloadFailed(TransientFailure):
    """The download run stalled or failed more URLs than ``download.max_failure_rate`` allows."""


StageError = UserError  # the contract's earlier name: a stage that cannot run with what it was given
