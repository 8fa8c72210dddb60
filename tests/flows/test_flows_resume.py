"""`m5data run` killed with SIGKILL mid-way and run again ends with the store of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

from support.store_compare import differences

from m5data.storage import Store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = "crawl,download,extract,align"


def _run_cmd(store, shop):
    return [sys.executable, "-m", "m5data", "--store", str(store), "--set", "download.allow_private=true", "--set", "crawl.allow_private=true",
            "run", "--start-url", f"{shop.url}/", "--stages", STAGES, "--kinds", "image,text",
            "--mapping", str(shop.truth_dir / "level1_mapping.toml"), "--no-progress"]


def _stage_rows(store_path, stage):
    try:
        return Store.open(store_path).read("runs", where=f"stage = '{stage}'").to_pylist()
    except Exception:
        return []


def _uninterrupted(shop, store_path):
    """The same stages over the same served shop (same URLs, so same media ids), run straight through."""
    from m5data.align.run import align
    from m5data.config import load
    from m5data.crawler.crawl import run as crawl
    from m5data.download.run import run as download
    from m5data.extract.run import run as extract

    settings = load(None, {"store.path": str(store_path), "download.allow_private": True, "crawl.allow_private": True}, environ={})
    store = Store.init(store_path)
    shop.reset_faults()
    crawl(store, settings, start_urls=[f"{shop.url}/"])
    download(store, settings)
    extract(store, settings, kinds="image,text", progress=False)
    align(store, settings, mapping=shop.truth_dir / "level1_mapping.toml")
    return store


def test_a_run_killed_mid_way_resumes_to_the_store_of_an_uninterrupted_run(light_shop, prefect_harness, tmp_path):
    reference = _uninterrupted(light_shop, tmp_path / "reference")
    store_path = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": ROOT}
    light_shop.reset_faults()
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(_run_cmd(store_path, light_shop), stdout=log, stderr=subprocess.STDOUT, env=env,
                             cwd=ROOT, start_new_session=True)
    try:  # kill the flow process once download finished, while extract works
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and first.poll() is None and not _stage_rows(store_path, "download"):
            time.sleep(0.3)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert _stage_rows(store_path, "download"), "download did not finish in time"
        time.sleep(1.0)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        try:  # what the killed process started (its Prefect server, extract workers): our group, by its id
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not _stage_rows(store_path, "align"), "the first run ended before it was killed"
    crawled = Store.open(store_path).count("products")

    light_shop.reset_faults()
    second = subprocess.run(_run_cmd(store_path, light_shop), capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Completed" in second.stdout
    # nothing finished was redone: no product page stored again, no media fetched again
    crawls = sorted((r for r in _stage_rows(store_path, "crawl") if r["status"] == "ok"), key=lambda r: r["started_at"])
    assert len(crawls) == 2 and crawls[1]["n_out"] == 0 and Store.open(store_path).count("products") == crawled
    downloads = sorted(_stage_rows(store_path, "download"), key=lambda r: r["started_at"])
    assert len(downloads) == 2 and downloads[1]["n_in"] == 0
    assert differences(Store.open(store_path), reference) == {}
