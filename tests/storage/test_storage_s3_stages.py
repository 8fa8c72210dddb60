"""The pipeline's stages on a store on object storage (``s3://bucket/prefix``), against a real S3
endpoint (moto's server on 127.0.0.1): a stage's lock is a lease in the log ``locks/<stage>`` (no fcntl,
right across machines), and crawl's run folder becomes objects.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from support.s3_server import keys  # noqa: E402
from support.store_compare import TABLES, differences  # noqa: E402

from m5data.config import load  # noqa: E402
from m5data.storage import Store, StoreBusy  # noqa: E402
from m5data.storage.commitlog import TableLog  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CRAWLED_AT = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def url(s3_url):
    return s3_url


def test_a_stage_lock_on_s3_is_a_lease_a_second_run_is_refused_and_a_dead_one_expires(url):
    store = Store.init(url)
    with store.stage_lock("download"):
        with pytest.raises(StoreBusy, match=r"download: the store s3://.* is in use by download \(host .*PID"):
            with Store.open(url).stage_lock("download"):
                pass
        with Store.open(url).stage_lock("extract"):  # another stage runs beside it
            pass
        with pytest.raises(StoreBusy, match="download.shard-0-of-2"):  # a whole run excludes its shards
            with Store.open(url).stage_lock("download", (0, 2)):
                pass
    with Store.open(url).stage_lock("download"):  # released at the end
        pass
    with Store.open(url).stage_lock("align", (0, 2)), Store.open(url).stage_lock("align", (1, 2)):
        with pytest.raises(StoreBusy, match="align.shard-1-of-2"):
            with Store.open(url).stage_lock("align", (1, 2)):
                pass
        with pytest.raises(StoreBusy, match=r"align: .* in use by align.shard-\d-of-2"):  # shards exclude a whole run
            with Store.open(url).stage_lock("align"):
                pass
    with Store.open(url).stage_lock("align"):  # the shards ended: a whole run may start
        pass
    code = ("import sys, time\nfrom m5data.storage import Store\n"
            "with Store.open(sys.argv[1], lease_seconds=2).stage_lock('crawl'):\n"
            "    print('holding', flush=True)\n    time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "holding"
    with pytest.raises(StoreBusy, match=f"PID {proc.pid};"):  # alive: its lease holds
        with Store.open(url).stage_lock("crawl"):
            pass
    proc.send_signal(signal.SIGKILL)  # killed: never released
    proc.wait()
    with Store.open(url).stage_lock("crawl"):  # its process is gone from this machine: free at once
        pass
    # a holder on another machine (its PID cannot be checked from here) holds until its lease runs out
    # (its lease's end is written, not waited for: a loaded machine may take seconds between two steps)
    elsewhere = {"holder": "other", "what": "crawl", "host": "elsewhere", "pid": os.getpid(), "pidns": "pid:[1]",
                 "until": time.time() + 60}
    leases = TableLog(Store.open(url).objects, "crawl", base="locks/crawl")
    leases.commit(lambda s: {"kind": "lease", "lease": elsewhere})
    with pytest.raises(StoreBusy, match=r"host elsewhere, PID \d+;"):
        with Store.open(url).stage_lock("crawl"):
            pass
    leases.commit(lambda s: {"kind": "lease", "lease": elsewhere | {"until": time.time() - 1}})
    with Store.open(url).stage_lock("crawl"):  # the other machine's lease ran out
        pass


def test_a_long_stage_renews_its_lease(url):
    # a lease of 3 s renewed every second: over two lease lengths pass, so it lives only if renewed. Under
    # load (a test suite and a benchmark on both cores) a 2 s lease once ran out: its renewals came late
    from m5data.storage.commitlog import TableLog

    store = Store.open(url, create=True, lease_seconds=3.0)

    def until() -> float:
        return float(TableLog(store.objects, "align", base="locks/align").state().lease["until"])

    with store.stage_lock("align"):
        first = until()
        time.sleep(7.0)
        assert until() > first + 3.0  # extended, not only still running
        with pytest.raises(StoreBusy, match="align"):
            with Store.open(url).stage_lock("align"):
                pass


def test_crawl_on_s3_stores_the_products_and_its_run_folder_as_objects(url, aws, light_shop, tmp_path):
    from m5data.crawler.crawl import run as crawl

    settings = load(overrides={"crawl.allow_private": True, "store.path": url}, environ={})
    s3 = Store.init(url)
    stats = crawl(s3, settings, start_urls=[light_shop.url + "/"])
    local = Store.init(tmp_path / "local")
    crawl(local, load(overrides={"crawl.allow_private": True}, environ={}), start_urls=[light_shop.url + "/"])
    assert differences(s3, local, ("products", "specs", "media", "crawl_errors", "page_validators")) == {}
    assert s3.count("products") == local.count("products") > 0
    prefix = url.split("/", 3)[3] + "/"
    run_keys = sorted(k[len(prefix):] for k in keys(aws, prefix + "logs/crawl/"))
    assert {k.rsplit("/", 1)[1] for k in run_keys} >= {"job.json", "stats.json", "crawl.log"}
    assert {k.split("/")[2] for k in run_keys} == {stats.run_id}
    body = aws["client"].get_object(Bucket=aws["bucket"], Key=f"{prefix}logs/crawl/{stats.run_id}/stats.json")
    assert json.loads(body["Body"].read())  # the crawl's own stats, readable
    assert not keys(aws, prefix + "locks/crawl/_log/") == []  # the lease and its release


def test_download_on_s3_stores_the_same_rows_and_blobs_as_on_a_local_store(url, aws, light_shop, tmp_path):
    from m5data.crawler.crawl import run as crawl
    from m5data.download.run import run as download

    overrides = {"crawl.allow_private": True, "download.allow_private": True}
    s3, local = Store.init(url), Store.init(tmp_path / "local")
    for store in (s3, local):
        settings = load(overrides={**overrides, "store.path": str(store.root)}, environ={})
        crawl(store, settings, start_urls=[light_shop.url + "/"])
        download(store, settings)
    assert differences(s3, local, ("products", "media")) == {}
    ok = [r for r in s3.read("media").to_pylist() if r["status"] == "ok"]
    assert ok and all(r["blob"].startswith("blobs/") for r in ok)
    assert sorted(s3.blobs.iter_paths()) == sorted(local.blobs.iter_paths())
    assert all(s3.blobs.verify(p) for p in s3.blobs.iter_paths())


def _derived_files(store) -> dict[str, str]:
    """Every derived file of a store (frames, mp3 blobs, MFCC, normalised images, the review file, the
    stages' states less their watermarks, which count each store's own commits) -> its sha256 (split
    manifests are left out: they hold their build's time)."""
    import hashlib

    def digest(rel: str, data: bytes) -> str:
        if rel.startswith("derived/state/"):
            state = json.loads(data)
            state.pop("watermarks")
            data = json.dumps(state, sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()

    if store.local_root() is None:
        rels = [o.rel for o in store.objects.listing("derived/")] + [r for r in store.blobs.iter_paths()
                                                                      if r.endswith(".mp3")]
        return {r: digest(r, store.objects.get(r)[0]) for r in rels if not r.startswith("derived/splits/")}
    root = store.local_root()
    files = [*(root / "derived").rglob("*"), *(root / "blobs").rglob("*.mp3")]
    return {p.relative_to(root).as_posix(): digest(p.relative_to(root).as_posix(), p.read_bytes()) for p in files
            if p.is_file() and "/." not in p.relative_to(root).as_posix()
            and not p.relative_to(root).as_posix().startswith("derived/splits/")}


def _export_files(out: str) -> dict[str, bytes]:
    """Every file of an export (a local folder or an s3:// prefix) -> its bytes."""
    if out.startswith("s3://"):
        from m5data.storage.objects import ObjectStore

        objects = ObjectStore(out)
        return {o.rel: objects.get(o.rel)[0] for o in objects.listing("")}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}


def test_the_pipeline_on_s3_equals_a_local_run_row_for_row_and_byte_for_byte(url, aws, light_shop,
                                                                             tmp_path, scratch_tmpdir, monkeypatch):
    """crawl -> download -> extract -> align -> build-splits -> export on an S3 store and on a local one."""
    from m5data.align.run import align
    from m5data.crawler.crawl import run as crawl
    from m5data.download.run import run as download
    from m5data.export.run import export
    from m5data.export.stage import default_out
    from m5data.extract.run import run as extract
    from m5data.splits.build import build

    scratch = scratch_tmpdir  # extract's mirror and export's shard media live in TMPDIR, removed after
    overrides = {"crawl.allow_private": True, "download.allow_private": True, "extract.workers": 2,
                 "export.workers": 2, "export.shard_size": 8}
    s3, local = Store.init(url), Store.init(tmp_path / "local")
    outs = []
    for store in (s3, local):
        settings = load(overrides={**overrides, "store.path": str(store.root)}, environ={})
        crawl(store, settings, start_urls=[light_shop.url + "/"])
        # what two crawls cannot share, when each product was read, goes into every sample (its provenance,
        # docs/compliance.md): the same time on both stores, so that their exports compare byte for byte
        store.write("products", [{**r, "crawled_at": CRAWLED_AT} for r in store.read("products").to_pylist()])
        download(store, settings)
        extract(store, settings, progress=False)
        align(store, settings, mapping=light_shop.truth_dir / "level1_mapping.toml")
        build(store, settings, version="v1")
        out = default_out(store, "all", "webdataset", "v1")[1]
        assert export(store, settings, out=out, fmt="webdataset", version="v1").stats.n_failed == 0
        outs.append(out)
    assert differences(s3, local, (*TABLES, "splits")) == {}
    derived = _derived_files(local)
    assert any(r.startswith("derived/frames/") for r in derived) and any(r.endswith(".npy") for r in derived)
    assert _derived_files(s3) == derived  # byte for byte (review.csv too)
    manifests = [json.loads(store.read_text("derived/splits/v1/manifest.json")) for store in (s3, local)]
    differing = {k: (manifests[0].get(k), manifests[1].get(k)) for k in {*manifests[0], *manifests[1]}
                 if manifests[0].get(k) != manifests[1].get(k) and k not in ("created_at", "run_id")}
    assert differing == {}
    assert outs[0].startswith(url + "/exports/")
    shards = _export_files(outs[1])
    assert any(name.endswith(".tar") for name in shards) and _export_files(outs[0]) == shards
    # a product re-written and a new split version: its export builds on v1 on either store (the changed
    # products' rows read by product from the store's parts, on S3 too), the same files
    again = []
    for store in (s3, local):
        settings = load(overrides={**overrides, "store.path": str(store.root)}, environ={})
        first = store.read("products").sort_by("product_id").slice(0, 1).to_pylist()[0]
        store.write("products", [{**first, "title": first["title"] + " (new)"}])
        build(store, settings, version="v2")
        out = default_out(store, "all", "webdataset", "v2")[1]
        result = export(store, settings, out=out, fmt="webdataset", version="v2")
        assert result.base == "v1-webdataset-all" and result.shards_inherited > 0 and result.stats.n_failed == 0
        assert result.stats.details["hashed"] == 1  # the re-written product alone
        again.append(out)
    assert _export_files(again[0]) == _export_files(again[1])
    s3 = None  # its scratch folder (build-splits' and export's DuckDB spill) goes with the store object
    gc.collect()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("m5data-")] == []  # no local copies left


def test_the_verbs_on_an_s3_store_align_splits_report_sql_stats(url, aws, light_shop, tmp_path,
                                                               monkeypatch):
    """align, build-splits, check-splits, report, sql and stats through the CLI with ``--store s3://...``."""
    from typer.testing import CliRunner

    from m5data.cli import app
    from m5data.crawler.crawl import run as crawl
    from m5data.download.run import run as download

    store = Store.init(url)
    settings = load(overrides={"crawl.allow_private": True, "download.allow_private": True, "store.path": url},
                    environ={})
    crawl(store, settings, start_urls=[light_shop.url + "/"])
    download(store, settings)
    runner = CliRunner()

    def verb(*args: str):
        out = runner.invoke(app, ["--store", url, *args], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.output

    verb("align", "--mapping", str(light_shop.truth_dir / "level1_mapping.toml"))
    assert store.read_text("derived/align/review.csv").count("\n") > 1  # an object, written by align
    verb("build-splits", "--version", "v1")
    assert json.loads(store.read_text("derived/splits/v1/manifest.json"))["version"] == "v1"
    verb("check-splits", "--version", "v1")
    from m5data import stages
    from m5data.stages import RunContext

    first = stages.call("splits", RunContext(settings))  # the pipeline's way (no version named): its state is kept
    again = stages.call("splits", RunContext(settings))  # nothing written since: the version stands (its manifest is found)
    assert again.details.get("unchanged") and again.details["version"] == first.details["version"]

    monkeypatch.chdir(tmp_path)  # the flow's report stage: no folder beside an S3 store, so the working directory
    stages.call("report", RunContext(settings))
    assert "splits" in (tmp_path / "m5data-report" / "index.html").read_text()
    verb("report", "--out", str(tmp_path / "report"))
    page = (tmp_path / "report" / "index.html").read_text()
    assert "No manifest file found" not in page and "No products with a downloaded image yet" not in page
    assert any((tmp_path / "report" / "assets").iterdir())  # gallery images copied from the S3 store
    n = json.loads(verb("sql", "SELECT count(*) AS n FROM splits WHERE version = 'v1'", "--format", "json"))["n"]
    assert n == store.count("products") > 0
    assert "splits" in verb("stats")


def test_store_copy_moves_a_store_to_s3_and_back_reading_the_same(url, aws, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    local = Store.init(tmp_path / "a")
    local.write("products", [{"product_id": "a:1", "title": "old"}, {"product_id": "a:2", "title": "二"}])
    local.write("products", [{"product_id": "a:1", "title": "new"}])  # last write wins: the copy reads "new"
    local.write("specs", [{"product_id": "a:1", "position": 0, "property": "p", "value": "v"}])
    ref = local.blobs.put_bytes(b"image bytes", "jpg")
    local.write_text("derived/align/review.csv", "pair,score\n")
    (local.local_root() / "derived" / "frames" / "ab" / ".tmp-1-x").mkdir(parents=True)  # a temp folder: not copied
    from m5data.storage import changes

    # a stage's state: its watermarks count this store's commits (ns here, entry numbers on S3): not copied,
    # else the S3 store's small entry numbers would stay below it and the stage never run again
    changes.save_state(local, "splits", changes.watermarks(local, ("products",)), "inputs")
    runner = CliRunner()
    out = runner.invoke(app, ["store", "copy", str(local.root), url])
    assert out.exit_code == 0, out.output
    assert "copied 3 rows, 1 blobs and 1 files" in " ".join(out.output.split())
    s3 = Store.open(url)
    assert differences(s3, local, TABLES) == {}
    assert s3.read_bytes(ref.path) == b"image bytes" and s3.read_text("derived/align/review.csv") == "pair,score\n"
    assert changes.load_state(s3, "splits") is None and changes.load_state(local, "splits") is not None
    back = tmp_path / "b"
    assert runner.invoke(app, ["store", "copy", url, str(back)]).exit_code == 0
    again = Store.open(back)
    assert differences(again, local, TABLES) == {}
    assert again.blobs.verify(ref.path) and again.files("derived/") == ["derived/align/review.csv"]
    refused = runner.invoke(app, ["store", "copy", str(local.root), url])  # never merged into a store with rows
    assert refused.exit_code == 1 and "already holds rows" in refused.output


def test_a_killed_runs_local_scratch_is_swept_and_a_live_ones_kept(tmp_path, monkeypatch):
    """Scratch folders under TMPDIR name their owner (PID namespace and PID): the next stage on the machine
    removes a killed run's, never a live one's nor one of another PID namespace (another container)."""
    from m5data.storage.temps import scratch_dir, sweep_scratch

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    code = ("import sys, time\nfrom m5data.storage.temps import scratch_dir\n"
            "d = scratch_dir('extract'); (d / 'blob.mp4').write_bytes(b'x' * 1000)\n"
            "print(d, flush=True)\ntime.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    killed, live = (Path(p.stdout.readline().strip()) for p in procs)
    mine = scratch_dir("work")
    ns, _, pid = killed.name.split("-")[2].partition(".")
    foreign = tmp_path / f"m5data-staged-{int(ns) + 1}.{pid}-abc"  # the same PID in another namespace
    foreign.mkdir()
    try:
        procs[0].kill()
        procs[0].wait(30)
        assert killed.is_dir() and str(procs[0].pid) in killed.name
        assert sweep_scratch() == [killed]
        assert not killed.exists() and live.is_dir() and mine.is_dir() and foreign.is_dir()
    finally:
        procs[1].kill()
        procs[1].wait(30)
