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
