"""A base install without the ``s3`` extra: a store or an export on ``s3://`` is refused in one line
that names the URL and the extra to install (issue 75, item 10), before any request is made."""

from __future__ import annotations

import os
import subprocess
import sys

# as if s3fs and aiobotocore were not installed (importing them raises ImportError), then the CLI
WITHOUT_S3 = ("import sys\n"
              "for name in ('s3fs', 'aiobotocore', 'aiobotocore.session'):\n"
              "    sys.modules[name] = None\n"
              "from m5data.cli import main\n"
              "sys.argv = ['m5data', *sys.argv[1:]]\n"
              "main()\n")


def m5data_without_s3(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never reached: refused before any request
    return subprocess.run([sys.executable, "-c", WITHOUT_S3, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _one_line(res, url: str) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "never awaited" not in res.stderr
    assert lines[0].startswith(f"error: {url}") and "pip install 'm5data[s3]'" in lines[0], lines[0]
    return lines[0]


def test_store_on_s3_without_the_extra_names_it():
    res = m5data_without_s3("--store", "s3://bucket/m5", "stats")
    assert "the s3 extra (s3fs is not installed)" in _one_line(res, "s3://bucket/m5")


def test_export_to_s3_without_the_extra_names_it(tmp_path):
    store = str(tmp_path / "st")
    assert subprocess.run([sys.executable, "-m", "m5data", "--store", store, "init"], capture_output=True).returncode == 0
    url = "s3://bucket/exports/v1"
    _one_line(m5data_without_s3("--store", store, "export", "--split", "all", "--format", "parquet", "--out", url), url)
    _one_line(m5data_without_s3("--store", store, "check-shards", url), url)
