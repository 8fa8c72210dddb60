"""``m5data ARGS`` through the real CLI app in the test's own process, as a ``CompletedProcess``: the
verbs' modules (torch, DuckDB, ...) are imported once per test worker instead of once per call
(3-4 CPU-s each with torch). Output is captured as a pipe would capture it (not a terminal). An
exception the CLI did not turn into an error line comes back as a traceback on stderr, as it would
from ``python -m m5data``."""

from __future__ import annotations

import os
import subprocess
import traceback


def invoke(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    from typer.testing import CliRunner

    from m5data.cli import app

    _fresh_streams()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, list(args), env=env)
    finally:
        os.chdir(old)
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(res.exception))
    return subprocess.CompletedProcess(["m5data", *args], res.exit_code, res.stdout, stderr)


def _fresh_streams() -> None:
    """Before an in-process run: no standard stream left closed, nor one a rich proxy stands for, by an
    earlier test's run in this worker (seen once in a fresh clone's suite: two in-process verbs of one
    xdist worker failed on "I/O operation on closed file" after other tests ran there), so that the m5data
    consoles (which write to the current sys.stdout / sys.stderr) write where CliRunner captures."""
    import sys

    from m5data.console import console, err_console

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        inner = getattr(stream, "rich_proxied_file", stream)
        if getattr(stream, "closed", False) or getattr(inner, "closed", False):
            setattr(sys, name, getattr(sys, f"__{name}__"))
    for c in (console, err_console):
        c._file = None  # the current stream, as at import
