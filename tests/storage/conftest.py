"""Fixtures of the store's tests only."""

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def scratch_tmpdir(tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """A short folder made this test's TMPDIR (tempfile's cached choice reset). Short: worker processes
    put multiprocessing's socket under it, AF_UNIX paths end at 107 bytes, and a test's own tmp_path
    passed that once pytest numbered its folders past 99 (multiprocessing keeps the folder for the
    process, so later tests of the worker failed too)."""
    scratch = tmp_path_factory.mktemp("t")
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    yield scratch
    _forget_multiprocessing_folder_under(scratch)


def _forget_multiprocessing_folder_under(scratch: Path) -> None:
    """multiprocessing made its folder (``pymp-*``) under this test's TMPDIR and keeps it for the process,
    removing it at exit, after pytest has removed the test folders ("No such file or directory" at the end of
    the run): remove it now, so the next test's processes make one under their own TMPDIR."""
    from multiprocessing import util

    for finalizer in list(util._finalizer_registry.values()):
        args = getattr(finalizer, "_args", None) or ()
        if getattr(finalizer, "_callback", None) is util._remove_temp_dir and len(args) > 1 \
                and str(args[1]).startswith(str(scratch)):
            finalizer()  # removes the folder and forgets it, once
