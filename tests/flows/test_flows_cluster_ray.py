"""`--runner ray` on a real Ray cluster: `ray start --head` plus a second node on 127.0.0.1 (one CPU each,
each its own process group, working directory and TMPDIR), sharing only the store folder and the
Prefect API: download + extract in 2 shards give the store of `--runner local`, row for row.
Skipped when ray / prefect-ray are not installed (`pip install '.[ray]'`)."""

import pytest
from support.store_compare import differences
from test_flows_cluster import crawled_copy, run, worker_env

from m5data.storage import Store

pytest.importorskip("ray")
pytest.importorskip("prefect_ray")


def test_ray_cluster_gives_the_store_of_the_local_runner(light_shop, prefect_harness, tmp_path, monkeypatch):
    env = worker_env()
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    local, ray = crawled_copy(light_shop, tmp_path, ["local", "ray"])
    outcome = _local_then_ray(light_shop, tmp_path, env, local, ray)
    assert differences(Store.open(local), Store.open(ray)) == {}
    _assert_two_shards(outcome, Store.open(ray))


def test_ray_cluster_on_an_s3_store_gives_the_store_of_the_local_runner(light_shop, prefect_harness, s3, aws, s3_url,
                                                                        tmp_path, monkeypatch):
    """Issue 37 on the second runner: the store on S3 (moto's server), the Ray nodes sharing no folder
    with each other or the flow (each its own working directory and TMPDIR), the AWS environment of the
    endpoint given to the nodes: download + extract in 2 shards give a local runner's local store."""
    from m5data.storage.copy import copy_store

    env = {**worker_env(), **s3["env"]}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    (local,) = crawled_copy(light_shop, tmp_path, ["local"])
    copy_store(Store.open(local), Store.init(s3_url))  # the same crawl, moved to S3
    outcome = _local_then_ray(light_shop, tmp_path, env, local, s3_url)
    on_s3 = Store.open(s3_url)
    assert differences(Store.open(local), on_s3) == {}
    assert sorted(on_s3.blobs.iter_paths()) == sorted(Store.open(local).blobs.iter_paths())
    _assert_two_shards(outcome, on_s3)


def _local_then_ray(light_shop, tmp_path, env, local, target):
    """download + extract on the local runner into ``local``, then on a 2-node Ray cluster into ``target``."""
    from support.loopback import ray_cluster

    light_shop.reset_faults()
    assert run(local, "local", "download,extract", kinds="image,text,video").ok
    with ray_cluster(tmp_path / "ray-cluster", n_nodes=2, env=env) as cluster:
        light_shop.reset_faults()
        outcome = run(target, "ray", "download,extract", ray_address=cluster.address, kinds="image,text,video")
    assert outcome.ok, (outcome.message, {s: e["message"] for s, e in outcome.results.items()})
    return outcome


def _assert_two_shards(outcome, store) -> None:
    for stage in ("download", "extract"):
        assert [p["shard"] for p in outcome.results[stage]["parts"]] == [0, 1]
        assert len(store.read("runs", where=f"stage = '{stage}'")) == 2
