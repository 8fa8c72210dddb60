"""`--runner dask`: download and extract in shards on a local Dask cluster give the store of the default runner."""

import os
import shutil

from support.cluster_probe import answers_http, comm_ports, listening, refused, tree
from support.store_compare import differences

from m5data.config import load
from m5data.storage import Store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_dask_runner_gives_the_same_store_as_the_local_runner(light_shop, prefect_harness, tmp_path, monkeypatch):
    from m5data.crawler.crawl import run as crawl
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    # the Dask workers are new processes: they must import this checkout's m5data
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    crawled = tmp_path / "crawled"
    crawl(Store.init(crawled), load(None, {"store.path": str(crawled), "crawl.allow_private": True}, environ={}), start_urls=[f"{light_shop.url}/"])
    overrides = {"download.allow_private": True, "crawl.allow_private": True}
    outcomes = {}
    for runner in ("local", "dask"):
        path = tmp_path / runner
        shutil.copytree(crawled, path)
        light_shop.reset_faults()
        settings = load(None, {**overrides, "store.path": str(path), "flows.runner": runner, "extract.kinds": "image,text",
                               "flows.dask_workers": 2}, environ={})
        plan = check_plan(settings, stages="download,extract")
        outcomes[runner] = run_pipeline(plan, settings, {**overrides, "extract.kinds": "image,text"})
        assert outcomes[runner].ok, (runner, outcomes[runner].message, outcomes[runner].results)
    local, dask = Store.open(tmp_path / "local"), Store.open(tmp_path / "dask")
    assert differences(local, dask) == {}
    # dask really ran 2 shards of each stage, each with its part of the work, adding up to the local run
    for stage in ("download", "extract"):
        parts = outcomes["dask"].results[stage]["parts"]
        assert [p["shard"] for p in parts] == [0, 1] and all(p["n_in"] > 0 for p in parts)
        assert sum(p["n_in"] for p in parts) == outcomes["local"].results[stage]["n_in"] > 0
        assert len(dask.read("runs", where=f"stage = '{stage}'")) == 2



def test_the_dask_runner_serves_only_its_comm_ports(tmp_path, monkeypatch):
    """Issue 35, 7: the LocalCluster of `--runner dask` (as `m5data run` builds it) listens on the scheduler's,
    the workers' and the nannies' comm ports only: no HTTP server (was: the scheduler on 127.0.0.1:8787 and
    every worker on a random port, /metrics, /json/identity.json and logs to any Host header); its comms
    are TLS with the cluster's own certificate (flows.dask_local_tls), so a client without it is refused."""
    from distributed.security import Security

    from m5data.flows.runners import task_runner

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    settings = load(None, {"store.path": str(tmp_path / "s"), "flows.runner": "dask", "flows.dask_workers": 2},
                    environ={})
    before = listening(tree(os.getpid()))
    dashboard_port_free = not answers_http(8787)  # another cluster on this machine may hold it
    with task_runner(settings) as runner:
        ports = comm_ports(runner.client)
        opened = listening(tree(os.getpid())) - before
        assert len(runner.client.scheduler_info()["workers"]) == 2
        assert {port for _, port in opened} == ports, (opened, ports)
        for _, port in opened:
            assert not answers_http(port).startswith(b"HTTP/"), port
        if dashboard_port_free:
            assert not answers_http(8787)
        assert "dashboard" not in runner.client.scheduler_info()["services"]
        address = runner.client.scheduler.address
        assert address.startswith("tls://127.0.0.1:"), address
        assert refused(address, Security.temporary()) and refused(address.replace("tls://", "tcp://"))
