"""The store's exceptions, shared by every part of the store (and caught by every stage)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import locks


class StoreError(UserError):
    """A store that is missing or unusable; the message names the path."""


class StoreUnavailable(StoreError):
    """The store could not be reached or written for longer than a run waits (``storage/retry.py``);
    what the run had not recorded stays as it was (a download's media stay pending)."""


class StoreBusy(StoreError, locks.LockHeld):
    """Another process holds the lock this operation needs; the message names its PID."""


class CorruptPart(StoreError):
    """A Parquet part that cannot be read; the message names the part."""

    def __init__(self, table: str, part: Path, reason: str):
        self.table, self.part, self.reason = table, part, reason
        super().__init__(f"corrupt Parquet part {part} (table {table}): {reason}; "
                         f"run `m5data doctor --repair` to move it aside")


class DamagedLog(StoreError):
    """A table's commit log on object storage cannot be read as it stands: an entry that is not one, a
    gap, a part named outside its table, an object past its size cap (``commitlog.py``). The message
    names the object; only that table is affected."""


class LeaseLost(StoreError):
    """A stage's lease on object storage is no longer its own (another run took it over, or it ran out
    while the stage was paused): the stage's next commit is refused, nothing more of it is written."""
