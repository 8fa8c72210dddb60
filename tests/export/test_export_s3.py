"""Exports, check-shards and training on object storage, against a real S3 endpoint on 127.0.0.1
(moto's server in its own process, with IAM authentication on: refused keys are refused).

Round trips through all three layouts (every object equals the local export's file), check-shards
on the remote export (intact, truncated, altered), ``train --shards s3://...``, a SIGKILLed export
that resumes to the bytes of an uninterrupted one, and one-line errors for a missing bucket,
refused credentials and an endpoint that does not answer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from support.export_helpers import settings_for, store_with_splits  # noqa: E402

from m5data.cli import app  # noqa: E402
from m5data.export.run import export  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "m5data-test"
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store(demo_store_factory, tmp_path_factory):
    return store_with_splits(demo_store_factory(products=60, seed=0), tmp_path_factory.mktemp("s3store"))


def objects(s3, prefix: str) -> dict[str, bytes]:
    """``{key below prefix: bytes}`` of every object under ``prefix``, read with boto3 (not our code)."""
    client, out = s3["client"], {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) + 1:]] = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def m5(store, *args, env=None):
    return runner.invoke(app, ["--store", str(store.root), *args], env=env)


def _comparable(name: str, data: bytes, fmt: str) -> bytes:
    # an M5Product shard counts bytes_written as it copied: locally a file a previous shard wrote
    # counts 0, remotely each shard stages its own copy; every other byte is the same
    if fmt == "m5product" and name.endswith(".stats.json"):
        stats = json.loads(data)
        stats.pop("bytes_written")
        return json.dumps(stats, sort_keys=True).encode()
    return data


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "m5product"])
def test_a_remote_export_holds_the_local_exports_bytes_and_resumes(aws, store, tmp_path, fmt):
    settings = settings_for(store, **{"export.shard_size": 8, "export.workers": 1})
    url = f"s3://{BUCKET}/rt-{fmt}"
    report = export(store, settings, out=url, split="all", fmt=fmt)
    assert report.shards_written == report.shards > 5 and report.out == url
    local = export(store, settings, out=tmp_path / "local", split="all", fmt=fmt)
    want = local_files(tmp_path / "local")
    got = objects(aws, f"rt-{fmt}")
    assert sorted(got) == sorted(want)  # no temp keys, nothing left out
    for name, data in want.items():
        assert _comparable(name, got[name], fmt) == _comparable(name, data, fmt), name
    again = export(store, settings, out=url, split="all", fmt=fmt)
    assert again.shards_written == 0 and again.shards_skipped == local.shards


def test_a_parallel_remote_export_equals_an_inline_local_one(aws, store, tmp_path):
    export(store, settings_for(store, **{"export.shard_size": 8, "export.workers": 2}), out=f"s3://{BUCKET}/par",
           split="all")
    export(store, settings_for(store, **{"export.shard_size": 8, "export.workers": 1}), out=tmp_path / "inline",
           split="all")
    assert objects(aws, "par") == local_files(tmp_path / "inline")


def test_check_shards_reads_a_remote_export_and_names_a_bad_shard(aws, store):
    export(store, settings_for(store, **{"export.shard_size": 8, "export.workers": 1}),
           out=f"s3://{BUCKET}/chk", split="query-c")
    ok = runner.invoke(app, ["check-shards", f"s3://{BUCKET}/chk"])
    assert ok.exit_code == 0, ok.output
    assert "2 shard(s) ok: 12 samples" in ok.output
    client = aws["client"]
    key = "chk/query-c-000001.tar"
    data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=data[:10240])
    bad = runner.invoke(app, ["check-shards", f"s3://{BUCKET}/chk"])
    assert bad.exit_code == 1 and "query-c-000001.tar" in bad.output and "truncated" in bad.output
    client.put_object(Bucket=BUCKET, Key=key, Body=data[:-1] + bytes([data[-1] ^ 1]))
    assert runner.invoke(app, ["check-shards", f"s3://{BUCKET}/chk", "--no-hash"]).exit_code == 0
    altered = runner.invoke(app, ["check-shards", f"s3://{BUCKET}/chk"])
    assert altered.exit_code == 1 and "sha256 differs" in altered.output


def test_an_index_entry_leading_out_of_the_prefix_is_not_read(aws, tmp_path):
    client = aws["client"]
    client.put_object(Bucket=BUCKET, Key="victim.tar", Body=b"x" * 1024)
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "t",
             "shardlist": [{"url": "../victim.tar", "nsamples": 1, "filesize": 1024, "sha256": None}]}
    client.put_object(Bucket=BUCKET, Key="out/t.index.json", Body=json.dumps(index).encode())
    result = runner.invoke(app, ["check-shards", f"s3://{BUCKET}/out"])
    assert result.exit_code == 1 and "path outside the export folder (not checked)" in result.output


def test_train_streams_the_remote_export(aws, store, tmp_path):
    """A DataLoader over s3:// gives the batches of the same shards on disk; ``train --shards s3://``
    runs its steps."""
    from m5data.train.config import load_config
    from m5data.train.data import loader

    local = tmp_path / "local"
    settings = settings_for(store, **{"export.shard_size": 8, "export.workers": 1})
    export(store, settings, out=local, split="train")
    export(store, settings, out=f"s3://{BUCKET}/train-run", split="train")
    cfg = load_config("small").model
    remote_batches = list(loader(f"s3://{BUCKET}/train-run", "train", cfg, batch_size=16))
    local_batches = list(loader(local, "train", cfg, batch_size=16))
    assert [b["product_id"] for b in remote_batches] == [b["product_id"] for b in local_batches]
    assert sum(len(b["product_id"]) for b in remote_batches) == 36
    for remote, local_batch in zip(remote_batches, local_batches):
        for m in ("text", "image", "video", "audio", "table"):
            assert bool((remote[m] == local_batch[m]).all()), m
    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\ncheckpoint_every = 2\nworkers = 0\nbatch_size = 16\n")
    result = runner.invoke(app, ["train", "--shards", f"s3://{BUCKET}/train-run", "--config", str(conf),
                                 "--max-steps", "3", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and (tmp_path / "run" / "model.pt").is_file()


def test_a_killed_remote_export_resumes_to_the_bytes_of_an_uninterrupted_one(aws, store, tmp_path):
    """SIGKILL a remote export after its first finished shard: the prefix holds finished shards
    only (no partial object, no temp key); the re-run writes the rest; every object equals the
    file of a local export that was never interrupted."""
    client = aws["client"]
    cmd = [sys.executable, "-m", "m5data", "--store", str(store.root), "export", "--split", "train",
           "--out", f"s3://{BUCKET}/killed", "--shard-size", "2", "--workers", "1"]
    env = {**os.environ, **aws["env"], "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def markers():
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix="killed/").get("Contents", [])
        return {o["Key"][len("killed/"):] for o in listed if o["Key"].endswith(".stats.json")}

    try:
        deadline = time.time() + 120
        while time.time() < deadline and not markers() and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = markers()
    assert finished and len(finished) < 18, "the export ended before it could be killed"
    before = objects(aws, "killed")
    for name in finished:  # a marker is uploaded only after its whole shard
        stats = json.loads(before[name])
        assert len(before[stats["path"]]) == stats["size"]
    assert not any(Path(k).name.startswith(".") for k in before)
    result = m5(store, "export", "--split", "train", "--out", f"s3://{BUCKET}/killed", "--shard-size", "2",
                "--workers", "1", env=aws["env"])
    assert result.exit_code == 0, result.output
    assert f"{18 - len(finished)} written, {len(finished)} already finished" in result.output
    clean = export(store, settings_for(store, **{"export.shard_size": 2, "export.workers": 1}),
                   out=tmp_path / "clean", split="train")
    assert clean.shards == 18
    assert objects(aws, "killed") == local_files(tmp_path / "clean")


def test_a_prefix_holding_other_files_is_refused(aws, store):
    aws["client"].put_object(Bucket=BUCKET, Key="busy/notes.txt", Body=b"mine")
    result = m5(store, "export", "--split", "query-c", "--out", f"s3://{BUCKET}/busy", "--workers", "1")
    assert result.exit_code == 1 and "is not empty and holds no m5data export" in result.output
    assert objects(aws, "busy") == {"notes.txt": b"mine"}


def _one_line_error(result, *parts):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for part in parts:
        assert part in " ".join(result.output.split()), (part, result.output)


def test_a_missing_bucket_is_one_line_naming_it(aws, store, tmp_path):
    url = "s3://no-such-bucket/x"
    _one_line_error(m5(store, "export", "--split", "query-c", "--out", url, "--workers", "1"),
                    "no such bucket 'no-such-bucket'", aws["url"])
    _one_line_error(runner.invoke(app, ["check-shards", url]), "no such bucket 'no-such-bucket'")
    _one_line_error(runner.invoke(app, ["train", "--shards", url, "--out", str(tmp_path / "run"), "--max-steps", "1"]),
                    "no such bucket 'no-such-bucket'")


def test_refused_credentials_are_one_line(aws, store, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAKEY000000000")
    url = f"s3://{BUCKET}/rt-webdataset"
    _one_line_error(m5(store, "export", "--split", "query-c", "--out", f"s3://{BUCKET}/denied", "--workers", "1"),
                    f"s3://{BUCKET}/denied", "access refused", "AWS_ACCESS_KEY_ID")
    _one_line_error(runner.invoke(app, ["check-shards", url]), url, "access refused")
    _one_line_error(runner.invoke(app, ["train", "--shards", url, "--out", str(tmp_path / "run"), "--max-steps", "1"]),
                    "access refused")


def test_an_endpoint_that_does_not_answer_is_one_line_naming_it(aws, store, monkeypatch, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own setting: no retries against a closed port
    url = f"s3://{BUCKET}/x"
    _one_line_error(m5(store, "export", "--split", "query-c", "--out", url, "--workers", "1"),
                    f"{url}: cannot reach the storage endpoint {dead}")
    _one_line_error(runner.invoke(app, ["check-shards", url]), f"cannot reach the storage endpoint {dead}")
    _one_line_error(runner.invoke(app, ["train", "--shards", url, "--out", str(tmp_path / "run"), "--max-steps", "1"]),
                    f"cannot reach the storage endpoint {dead}")


def test_a_prefix_holding_a_version_with_a_product_opted_out_since_is_not_resumed(aws, demo_store_factory, tmp_path):
    """As a local folder (tests/optout/test_optout_flow.py): the prefix's shards may hold the product, so the export
    of that version into it is refused in one line naming it, never "already finished" (issue 76, 2)."""
    from datetime import timedelta

    from m5data.export.samples import ExportError

    store = store_with_splits(demo_store_factory(products=20, seed=0), tmp_path)
    settings = settings_for(store, **{"export.shard_size": 8, "export.workers": 1})
    url = f"s3://{BUCKET}/opted"
    export(store, settings, out=url, split="all", fmt="webdataset")
    product = store.read("products", columns=["product_id", "url", "crawled_at"]).to_pylist()[0]
    store.write("optouts", [{"url": product["url"], "product_id": product["product_id"], "scope": "page",
                             "source": "x-robots-tag", "directive": "noai",
                             "seen_at": product["crawled_at"] + timedelta(days=1)}])
    with pytest.raises(ExportError, match="opted out since") as err:
        export(store, settings, out=url, split="all", fmt="webdataset")
    assert product["product_id"] in str(err.value) and "m5data build-splits" in str(err.value)
