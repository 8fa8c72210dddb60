"""`--runner dask`: download and extract in shards on a local Dask cluster give the store of the default runner."""

import os
import shutil

from m5data.config import load
from m5data.storage import Store

from store_compare import differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dask_runner_gives_the_same_store_as_the_local_runner(demo_shop, prefect_harness, tmp_path, monkeypatch):
    from m5data.crawler.crawl import run as crawl
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    # the Dask workers are new processes: they must import this checkout's m5data
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    crawled = tmp_path / "crawled"
    crawl(Store.init(crawled), load(None, {"store.path": str(crawled), "crawl.allow_private": True}, environ={}), start_urls=[f"{demo_shop.url}/"])
    overrides = {"download.allow_private": True, "crawl.allow_private": True}
    outcomes = {}
    for runner in ("local", "dask"):
        path = tmp_path / runner
        shutil.copytree(crawled, path)
        demo_shop.reset_faults()
        settings = load(None, {**overrides, "store.path": str(path), "flows.runner": runner, "flows.kinds": "image,text",
                               "flows.dask_workers": 2}, environ={})
        plan = check_plan(settings, stages="download,extract")
        outcomes[runner] = run_pipeline(plan, settings, {**overrides, "flows.kinds": "image,text"})
        assert outcomes[runner].ok, (runner, outcomes[runner].message, outcomes[runner].results)
    local, dask = Store.open(tmp_path / "local"), Store.open(tmp_path / "dask")
    assert differences(local, dask) == {}
    # dask really ran 2 shards of each stage, each with its part of the work, adding up to the local run
    for stage in ("download", "extract"):
        parts = outcomes["dask"].results[stage]["parts"]
        assert [p["shard"] for p in parts] == [0, 1] and all(p["n_in"] > 0 for p in parts)
        assert sum(p["n_in"] for p in parts) == outcomes["local"].results[stage]["n_in"] > 0
        assert len(dask.read("runs", where=f"stage = '{stage}'")) == 2
