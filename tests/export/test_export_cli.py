"""``m5data export`` from the command line: one split, --shard-bytes, errors in one line, a killed
export that resumes to the same bytes, and the Prefect task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.export_helpers import settings_for, store_with_splits
from typer.testing import CliRunner

from m5data.cli import app
from m5data.export.run import export

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(demo_store_factory, tmp_path_factory):
    return store_with_splits(demo_store_factory(products=60, seed=0), tmp_path_factory.mktemp("cli"))


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def test_export_one_split(store, tmp_path):
    result = m5(store, "export", "--split", "query-c", "--format", "webdataset", "--out", str(tmp_path / "o"),
                "--shard-size", "4", "--workers", "1")
    assert result.exit_code == 0, result.output
    tars = sorted(p.name for p in (tmp_path / "o").glob("*.tar"))
    n = len(json.loads((tmp_path / "o" / "query-c.index.json").read_text())["shardlist"])
    assert tars == [f"query-c-{i:06d}.tar" for i in range(n)] and n == 3  # 12 queries, 4 a shard
    assert "3 written, 0 already finished" in result.output
    again = m5(store, "export", "--split", "query-c", "--out", str(tmp_path / "o"), "--shard-size", "4", "--workers", "1")
    assert again.exit_code == 0 and "0 written, 3 already finished" in again.output


def test_a_resumed_export_removes_what_a_killed_one_left_half_written(store, tmp_path):
    out = tmp_path / "o"
    args = ["export", "--split", "query-c", "--format", "m5product", "--out", str(out), "--shard-size", "4",
            "--workers", "1"]
    assert m5(store, *args).exit_code == 0
    image = next((out / "images").iterdir())
    stale = image.with_name(f".tmp-99999-{image.name}")  # a media copy of a killed process (its pid in the name)
    stale.write_bytes(image.read_bytes()[:100])
    os.utime(stale, (time.time() - 60, time.time() - 60))
    again = m5(store, *args)
    assert again.exit_code == 0 and "0 written, 3 already finished" in again.output
    assert not stale.exists() and image.is_file()


def test_shard_bytes_cuts_by_media_size(store, tmp_path):
    result = m5(store, "export", "--split", "train", "--out", str(tmp_path / "b"), "--shard-bytes", "2000000", "--workers", "1")
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "b" / "train.index.json").read_text())
    sizes = [sh["filesize"] for sh in index["shardlist"]]
    assert len(sizes) >= 2 and sum(sh["nsamples"] for sh in index["shardlist"]) == 36
    assert all(s >= 1_000_000 for s in sizes[:-1])  # every shard but the last reached about the target


@pytest.mark.parametrize("args,message", [
    (["--format", "zip"], "export.format"),
    (["--split", "nope"], "split 'nope' is not in version"),
    (["--version", "v9"], "no split version 'v9'"),
    (["--shard-size", "0"], "export.shard_size"),
])
def test_bad_options_fail_with_one_line(store, tmp_path, args, message):
    result = m5(store, "export", "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_a_store_without_splits_says_so(tmp_path):
    from m5data.storage import Store

    empty = Store.init(tmp_path / "empty")
    result = m5(empty, "export", "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "build-splits" in result.output


def test_a_killed_export_resumes_to_the_same_bytes(store, tmp_path):
    """SIGKILL an export after its first finished shard; the re-run writes only the rest, and the
    result equals an export that was never interrupted."""
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "m5data", "--store", str(store.root), "export", "--split", "train",
           "--out", str(out), "--shard-size", "2", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not markers(out) and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = markers(out)  # not the `.tmp-` file of the marker being written when the kill came
    assert finished and len(finished) < 18, "the export ended before it could be killed"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    result = m5(store, "export", "--split", "train", "--out", str(out), "--shard-size", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert f"{len(finished)} already finished" in result.output
    for name in finished:  # finished shards are never rewritten
        tar = name.replace(".stats.json", ".tar")
        assert (out / tar).stat().st_mtime_ns == mtimes[tar]
    clean = export(store, settings_for(store, **{"export.shard_size": 2, "export.workers": 1}), out=tmp_path / "clean",
                   split="train")
    assert clean.shards == 18
    for p in sorted((tmp_path / "clean").iterdir()):
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "clean").iterdir())


def markers(out):
    """The stats files of finished shards (a killed write leaves a `.tmp-` one: pathlib's `*` matches it)."""
    return {p.name for p in out.glob("*.stats.json") if not p.name.startswith(".")}


def test_prefect_task_exports_and_returns_the_run(store, tmp_path, prefect_harness):
    from m5data.flows.executor import stage_flow

    stats = stage_flow("export", str(store.root), overrides={"export.workers": 1, "export.split": "gallery-c",
                                                             "export.format": "parquet"}, options={"out": str(tmp_path / "p")})
    assert stats.stage == "export" and stats.status == "ok" and stats.details["version"] == "v1"
    assert stats.details["splits"] == {"gallery-c": 12} and stats.n_out == 12
    assert (tmp_path / "p" / "data" / "gallery_c-00000-of-00001.parquet").is_file()


@pytest.mark.parametrize("key", ["export.format", "flows.export_format"])
def test_the_export_stage_writes_export_format(store, tmp_path, key):
    """One answer: the export stage (the flow's, as the verb's) writes ``export.format`` and ``export.split``;
    the old ``flows.export_format`` sets export.format, with a warning."""
    from m5data.stages import RunContext, call

    settings = settings_for(store, **{key: "parquet", "export.split": "gallery-c", "export.workers": 1})
    stats = call("export", RunContext(settings, options={"out": str(tmp_path / "p")}))
    assert (stats.details["format"], stats.details["splits"]) == ("parquet", {"gallery-c": 12})
    assert settings.export.format == "parquet" and bool(settings.warnings) == (key != "export.format")


def test_a_default_export_pools_its_workers_only_for_enough_samples():
    """``export.workers`` 0: inline below POOL_MIN_SAMPLES samples to write or copy (a pool's start costs
    more), one process per core above; an explicit count is kept; finished shards are not counted."""
    from m5data.export.plan import Shard
    from m5data.export.shards import POOL_MIN_SAMPLES, pool_size

    small = [Shard("train", i, 4, size=100) for i in range(4)]
    big = [Shard("train", i, 6, size=100) for i in range(6)]
    cores = os.cpu_count() or 1
    assert POOL_MIN_SAMPLES == 500
    assert pool_size(0, small, {}, []) == 1 and pool_size(3, small, {}, []) == 3
    assert pool_size(0, big, {}, []) == cores
    assert pool_size(0, big, {("train", 0): {}, ("train", 1): {}}, []) == 1  # 400 left to write
    assert pool_size(0, small, {}, [{"ids": ["p"] * 100}]) == cores  # copies count by their samples
    assert pool_size(0, [Shard("train", 0, 1, ("a", "b"))], {}, []) == 1  # a listed shard counts its ids
