"""`--runner ray` on a real Ray cluster: `ray start --head` plus a second node on 127.0.0.1 (one CPU each,
each its own process group, working directory and TMPDIR), sharing only the store folder and the
Prefect API: download + extract in 2 shards give the store of `--runner local`, row for row.
Skipped when ray / prefect-ray are not installed (`pip install '.[ray]'`)."""

import pytest
from store_compare import differences
from test_flows_cluster import crawled_copy, run, worker_env

from m5data.storage import Store

pytest.importorskip("ray")
pytest.importorskip("prefect_ray")


def test_ray_cluster_gives_the_store_of_the_local_runner(demo_shop, prefect_harness, tmp_path, monkeypatch):
    from support.loopback import ray_cluster

    env = worker_env()
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    local, ray = crawled_copy(demo_shop, tmp_path, ["local", "ray"])
    demo_shop.reset_faults()
    assert run(local, "local", "download,extract").ok
    with ray_cluster(tmp_path / "ray-cluster", n_nodes=2, env=env) as cluster:
        demo_shop.reset_faults()
        outcome = run(ray, "ray", "download,extract", ray_address=cluster.address)
    assert outcome.ok, (outcome.message, {s: e["message"] for s, e in outcome.results.items()})
    assert differences(Store.open(local), Store.open(ray)) == {}
    for stage in ("download", "extract"):
        assert [p["shard"] for p in outcome.results[stage]["parts"]] == [0, 1]
        assert len(Store.open(ray).read("runs", where=f"stage = '{stage}'")) == 2
