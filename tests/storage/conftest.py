"""Fixtures of the store's tests only."""

from pathlib import Path

import pytest


@pytest.fixture
def scratch_tmpdir(tmp_path_factory, monkeypatch) -> Path:
    """A short folder made this test's TMPDIR (tempfile's cached choice reset). Short: worker processes
    put multiprocessing's socket under it, AF_UNIX paths end at 107 bytes, and a test's own tmp_path
    passed that once pytest numbered its folders past 99 (multiprocessing keeps the folder for the
    process, so later tests of the worker failed too)."""
    scratch = tmp_path_factory.mktemp("t")
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    return scratch
