"""`--runner dask` on a real cluster: a scheduler and 2 workers started on their own (not a LocalCluster),
each worker with its own working directory and TMPDIR, sharing only the store folder and the Prefect API.

- crawl -> export gives the store of `--runner local`, row for row (run ids and timestamps aside),
  with one `runs` row per shard;
- a worker SIGKILLed mid-download: its shard runs again on the other worker and the store is the same;
- the scheduler going away (killed, or hung past `flows.scheduler_timeout`): the run fails with a one-line
  message naming it, and the next run resumes the store.
"""

import os
import shutil
import signal

import pytest
from support.cluster_probe import answers_http, comm_ports, listening, port_of, refused, tree
from support.store_compare import TABLES, differences

from m5data.config import load
from m5data.storage import Store

pytest.importorskip("prefect_dask")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = {"download.allow_private": True, "crawl.allow_private": True}
# what these runs compare is the runners, not the pictures: extract does not look for faces (the demo world
# draws none) nor export for the ones it did not (test_flows_dask runs them on a cluster, test_faces.py and
# test_export_faces.py test them); they were a fifth of this module's CPU
NO_FACES = {"extract.detect_faces": False, "export.blur_faces": False}
STAGES = "crawl,download,extract,align,annotate,splits,export"


def worker_env() -> dict:
    """The workers' environment: this checkout first on the path, the test session's Prefect API."""
    from m5data.flows.runners import api_url

    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
            "PREFECT_API_URL": api_url() or ""}


@pytest.fixture
def cluster(prefect_harness, tmp_path_factory):
    from support.loopback import dask_cluster

    with dask_cluster(tmp_path_factory.mktemp("dask"), n_workers=2, env=worker_env()) as running:
        yield running


def run(path, runner, stages, start_urls=(), mapping=None, address="", retry_delay=0, ray_address="",
        scheduler_timeout=60, tls=None, kinds="image,text"):
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    overrides = {**LOOPBACK, **NO_FACES, "store.path": str(path), "flows.runner": runner, "extract.kinds": kinds,
                 "flows.dask_address": address, "flows.ray_address": ray_address, "flows.retry_delay": retry_delay,
                 "flows.dask_workers": 2, "flows.scheduler_timeout": scheduler_timeout}
    if mapping:
        overrides["align.mapping"] = str(mapping)
    if tls:
        overrides.update({"flows.dask_tls_ca_file": tls["ca"], "flows.dask_tls_cert": tls["cert"],
                          "flows.dask_tls_key": tls["key"]})
    settings = load(None, overrides, environ={})
    plan = check_plan(settings, start_urls=list(start_urls), stages=stages)
    return run_pipeline(plan, settings, {k: v for k, v in overrides.items() if k != "store.path"})


@pytest.fixture(scope="module")
def reference(light_shop, prefect_harness, tmp_path_factory):
    """(crawled store, the local runner's download + extract over a copy of it), made once per module;
    each fault test copies the crawled store for its cluster run and compares with the local one."""
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])  # the stages' subprocesses import this checkout
        crawled_copy(light_shop, root, ["local"])
        light_shop.reset_faults()
        assert run(root / "local", "local", "download,extract").ok
    return root / "crawled", root / "local"


def dask_run_mid_download(reference, light_shop, cluster, tmp_path, **options):
    """(local store, dask store, future of the run): a copy of the crawled store run on the cluster in a
    thread, returned once a download shard holds its lock (it has started, it has not finished)."""
    from support.loopback import wait_until

    from m5data.storage.locks import holders

    dask = tmp_path / "dask"
    shutil.copytree(reference[0], dask)
    light_shop.reset_faults()
    future = _in_thread(run, dask, "dask", "download,extract", address=cluster.address, **options)
    wait_until(lambda: any(name.startswith("download.shard-") for name, _ in holders(dask)), 300, what="a shard")
    return reference[1], dask, future


def crawled_copy(light_shop, tmp_path, names):
    """One crawl of the demo shop, copied to one store per name."""
    from m5data.crawler.crawl import run as crawl

    crawled = tmp_path / "crawled"
    crawl(Store.init(crawled), load(None, {"store.path": str(crawled), **LOOPBACK}, environ={}),
          start_urls=[f"{light_shop.url}/"])
    for name in names:
        shutil.copytree(crawled, tmp_path / name)
    return [tmp_path / name for name in names]


def test_crawl_to_export_on_two_separate_workers_gives_the_store_of_the_local_runner(
        light_shop, demo_shop_factory, prefect_harness, tmp_path, monkeypatch):
    """Two shops on two hosts: crawl runs one shard per host, download and extract 2 shards each, on
    the separately started workers; align, annotate, splits and export run in the flow. The failure of issue 22 was
    here: the second download shard found the first shard's lock (StoreBusy). The workers are distributed's
    stock ``dask worker`` under its nanny (daemonic processes), and extract decodes videos in its pool's
    processes: the failure of issue 75 (every extract shard failed: daemonic processes may not have children)."""
    from support.loopback import dask_cluster

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    other = demo_shop_factory(products=20, seed=1, image_scale=0.5)  # shared with test_flows_incremental
    start = [f"{light_shop.url}/", f"http://localhost:{other.port}/"]  # two host names: two crawl shards
    mapping = str(light_shop.truth_dir / "level1_mapping.toml")  # level-1 names are the same in every demo world
    outcomes = {}
    with dask_cluster(tmp_path / "cluster", n_workers=2, env=worker_env(), stock=True) as cluster:
        for runner in ("local", "dask"):
            for shop in (light_shop, other):
                shop.reset_faults()
            outcomes[runner] = run(tmp_path / runner, runner, STAGES, start_urls=start, mapping=mapping,
                                   address=cluster.address if runner == "dask" else "", kinds="image,text,video")
            assert outcomes[runner].ok, (runner, outcomes[runner].message,
                                         {s: e["message"] for s, e in outcomes[runner].results.items()})
    local, dask = Store.open(tmp_path / "local"), Store.open(tmp_path / "dask")
    hosts = {r["url"].split("/")[2].split(":")[0] for r in dask.read("products", columns=["url"]).to_pylist()}
    assert hosts == {"127.0.0.1", "localhost"}
    assert all(dask.read(t).num_rows for t in ("dedup", "caption_match", "pools", "splits"))  # annotate ran
    assert dask.read("media", where="kind = 'frames' AND status = 'ok'").num_rows > 0  # videos decoded on the workers
    assert differences(local, dask, TABLES + ("dedup", "caption_match", "pools", "splits")) == {}
    crawl = outcomes["dask"].results["crawl"]["parts"]
    assert [p["shard"] for p in crawl] == [0, 1] and all(p["n_out"] > 0 for p in crawl)
    for stage in ("crawl", "download", "extract"):
        runs = dask.read("runs", where=f"stage = '{stage}'").to_pylist()
        assert len(runs) == 2 and {r["status"] for r in runs} == {"ok"}, (stage, runs)
    for stage in ("download", "extract"):
        parts = outcomes["dask"].results[stage]["parts"]
        assert [p["shard"] for p in parts] == [0, 1] and all(p["n_in"] > 0 for p in parts)
    assert len(local.read("runs", where="stage = 'crawl'")) == 1  # the local runner: one crawl, both hosts


def _download_worker(cluster):
    """(worker address, PID) of a worker running a download shard now, or None."""
    busy = [addr for addr, keys in cluster.processing().items() if any("download" in str(k) for k in keys)]
    return (busy[0], cluster.worker_pids()[busy[0]]) if busy else None


def test_a_worker_killed_mid_download_has_its_shard_run_again(light_shop, reference, cluster, tmp_path, monkeypatch):
    from support.loopback import wait_until

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    local, dask, future = dask_run_mid_download(reference, light_shop, cluster, tmp_path)
    address, pid = wait_until(lambda: _download_worker(cluster), 60, what="a worker running download")
    os.kill(pid, signal.SIGKILL)
    killed_before_its_row = len(Store.open(dask).read("runs", where="stage = 'download'")) < 2
    outcome = future.result(timeout=600)
    assert killed_before_its_row
    assert outcome.ok, (outcome.message, {s: e["message"] for s, e in outcome.results.items()})
    assert pid not in cluster.worker_pids().values()  # that process is gone: the shard ran on another one
    assert differences(Store.open(local), Store.open(dask)) == {}
    rows = Store.open(dask).read("runs", where="stage = 'download'").to_pylist()
    assert sorted(r["status"] for r in rows) == ["ok", "ok"]  # one row per shard; the killed attempt wrote none


def test_shards_of_one_run_share_the_stage_lock_and_a_second_run_is_refused(store):
    """Locks are per process: the other shard and the other runs are tried from a second process."""
    import subprocess
    import sys

    probe = """
import sys
from m5data.storage import Store
from m5data.storage.store import StoreBusy
store = Store.open(sys.argv[1])
for shard in ((1, 2), None, (0, 2)):
    try:
        with store.stage_lock("download", shard):
            print(shard, "ok")
    except StoreBusy as exc:
        print(shard, "busy", "PID" in str(exc))
"""
    with store.stage_lock("download", (0, 2)):
        out = subprocess.run([sys.executable, "-c", probe, str(store.root)], capture_output=True, text=True,
                             env=worker_env(), timeout=120)
    assert out.stdout.splitlines() == ["(1, 2) ok", "None busy True", "(0, 2) busy True"], out.stderr[-2000:]
    with store.stage_lock("download"):  # a whole-stage run excludes every shard
        out = subprocess.run([sys.executable, "-c", probe, str(store.root)], capture_output=True, text=True,
                             env=worker_env(), timeout=120)
    assert out.stdout.splitlines() == ["(1, 2) busy True", "None busy True", "(0, 2) busy True"], out.stderr[-2000:]


def _in_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a daemon thread, as a Future: a run that hangs cannot keep pytest alive."""
    import threading
    from concurrent.futures import Future

    future: Future = Future()

    def target():
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the test through the future
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


def test_the_scheduler_going_away_fails_the_run_and_the_next_run_resumes(light_shop, reference, cluster, tmp_path,
                                                                         monkeypatch):
    from m5data.storage.locks import holders
    from m5data.storage.schema import TABLES as SPECS

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    local, dask, future = dask_run_mid_download(reference, light_shop, cluster, tmp_path)
    cluster.stop_scheduler(signal.SIGKILL)
    outcome = future.result(timeout=240)  # bounded: the client gives up on the lost scheduler
    assert not outcome.ok and outcome.fatal == "download"
    message = outcome.results["download"]["message"]
    assert "\n" not in message and len(message) < 400, message
    assert f"scheduler {cluster.address}" in message and "went away during download" in message, message
    assert outcome.results["extract"]["status"] == "not run"
    # the workers lost their scheduler and may still run a shard: stop them; their locks go with them
    cluster.stop()
    assert holders(dask) == []
    lost = Store.open(dask).read("runs", where="stage = 'download' AND status <> 'ok'").to_pylist()
    assert any("went away" in r["failures"] for r in lost), lost  # the lost run's row, with its reason
    resumed = run(dask, "local", "download,extract")
    assert resumed.ok, (resumed.message, {s: e["message"] for s, e in resumed.results.items()})
    store = Store.open(dask)
    assert differences(Store.open(local), store) == {}
    for name in TABLES:
        keys = [tuple(r[k] for k in SPECS[name].key) for r in store.read(name).to_pylist()]
        assert len(keys) == len(set(keys)), name


def test_a_scheduler_that_stops_answering_fails_the_run_after_the_scheduler_timeout(light_shop, reference, cluster,
                                                                                     tmp_path, monkeypatch):
    """SIGSTOP: the scheduler's connections stay open, so only flows.scheduler_timeout ends the wait."""
    from m5data.storage.locks import holders

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    local, dask, future = dask_run_mid_download(reference, light_shop, cluster, tmp_path, scheduler_timeout=10)
    os.kill(cluster.scheduler.pid, signal.SIGSTOP)
    try:
        outcome = future.result(timeout=240)
    finally:
        os.kill(cluster.scheduler.pid, signal.SIGCONT)
    assert not outcome.ok and outcome.fatal == "download"
    message = outcome.results["download"]["message"]
    assert "\n" not in message and f"scheduler {cluster.address} went away during download" in message, message
    assert "did not answer for 10 s" in message, message
    cluster.stop()  # the workers ran on without their scheduler; their locks go with them
    assert holders(dask) == []
    assert run(dask, "local", "download,extract").ok
    assert differences(Store.open(local), Store.open(dask)) == {}


def test_a_tls_scheduler_runs_the_flow_and_refuses_what_holds_no_certificate_of_its_ca(
        light_shop, reference, tmp_path, monkeypatch):
    """Issue 35, 7: a scheduler and a worker started with TLS files (``python -m m5data.flows.daskserve``, as
    docs/flows.md shows) serve only their comm ports, no HTTP; the flow runs through them with
    flows.dask_tls_* (m5data's own client certificate) and gives the store of the local runner; a client
    with a certificate of another CA, or none, is refused; no key material reaches the store."""
    from distributed import Client
    from distributed.security import Security
    from support.loopback import dask_cluster
    from support.tls_certs import issue, make_ca

    from m5data.flows.runners import PipelineError, check_runner

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    ca = make_ca(tmp_path / "pki")
    nodes, client = issue(ca, tmp_path / "pki", "cluster"), issue(ca, tmp_path / "pki", "m5data")
    stranger = issue(make_ca(tmp_path / "other", "another CA"), tmp_path / "other", "stranger")
    with dask_cluster(tmp_path / "cluster", n_workers=1, env=worker_env(), tls=nodes) as cluster:
        assert cluster.address.startswith("tls://127.0.0.1:")
        with Client(cluster.address, timeout=60, security=cluster.security) as probe:
            ports = comm_ports(probe)
        opened = listening(tree(cluster.scheduler.pid, *(w.pid for w in cluster.workers)))
        assert {port for _, port in opened} == ports and port_of(cluster.address) in ports, (opened, ports)
        for _, port in opened:
            assert not answers_http(port).startswith(b"HTTP/"), port
        assert refused(cluster.address, Security(tls_ca_file=stranger["ca"], tls_client_cert=stranger["cert"],
                                                 tls_client_key=stranger["key"], require_encryption=True))
        assert refused(cluster.address.replace("tls://", "tcp://"))

        dask = tmp_path / "dask"
        shutil.copytree(reference[0], dask)
        light_shop.reset_faults()
        outcome = run(dask, "dask", "download,extract", address=cluster.address, tls=client)
        assert outcome.ok, (outcome.message, {s: e["message"] for s, e in outcome.results.items()})
        assert differences(Store.open(reference[1]), Store.open(dask)) == {}
        runs = str(Store.open(dask).read("runs").to_pylist())
        assert "PRIVATE KEY" not in runs and "BEGIN" not in runs

        # a tls:// scheduler without the files, or files for a plain one: refused before any work
        for overrides in ({"flows.dask_address": cluster.address},
                          {"flows.dask_address": "tcp://127.0.0.1:8786", "flows.dask_tls_ca_file": client["ca"]},
                          {"flows.dask_address": cluster.address, "flows.dask_tls_ca_file": client["ca"],
                           "flows.dask_tls_cert": client["cert"], "flows.dask_tls_key": str(tmp_path / "nothing")}):
            with pytest.raises(PipelineError, match="flows.dask_"):
                check_runner(load(None, {"store.path": str(dask), "flows.runner": "dask", **overrides}, environ={}))



def _secret_in_prefect_database(secret: str) -> tuple[int, list[str]]:
    """(rows read, tables holding ``secret``) of the session's Prefect database: every row of every table
    (flow and task runs with their parameters, logs, artifacts, events ...)."""
    import sqlite3

    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    path = PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        n, found = 0, []
        for name in names:
            for row in con.execute(f'SELECT * FROM "{name}"'):
                n += 1
                if secret in repr(row):
                    found.append(name)
        return n, sorted(set(found))
    finally:
        con.close()


def test_crawl_to_export_on_s3_with_no_shared_folder_gives_the_store_of_the_local_runner(
        light_shop, prefect_harness, s3, aws, s3_url, tmp_path, monkeypatch):
    """Issue 37: a cluster with no shared disk. The store is on S3 (moto's server); the scheduler and each
    worker have their own working directory, TMPDIR, HOME, PREFECT_HOME and caches, and no folder in
    common with each other or with the flow's process; the workers get the AWS environment of the
    endpoint (the flow passes no credential). ``m5data run --runner dask`` crawl -> export gives the
    store of ``--runner local`` on a local store, row for row (annotate's tables too). No credential (the secret key's
    value) reaches the Prefect database, the store's objects, its runs rows or the workers' logs."""
    from support.loopback import dask_cluster
    from support.s3_server import keys

    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    mapping = str(light_shop.truth_dir / "level1_mapping.toml")
    light_shop.reset_faults()
    local = run(tmp_path / "local", "local", STAGES, start_urls=[f"{light_shop.url}/"], mapping=mapping,
                kinds="image,text,video")
    assert local.ok, (local.message, {s: e["message"] for s, e in local.results.items()})
    env = {**worker_env(), **s3["env"]}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    # distributed's stock commands: each worker a daemonic process under its nanny (issue 75, 1)
    with dask_cluster(tmp_path / "cluster", n_workers=2, env=env, own_home=True, stock=True) as cluster:
        light_shop.reset_faults()
        outcome = run(s3_url, "dask", STAGES, start_urls=[f"{light_shop.url}/"], mapping=mapping,
                      address=cluster.address, kinds="image,text,video")
        assert outcome.ok, (outcome.message, {s: e["message"] for s, e in outcome.results.items()})
    on_s3 = Store.open(s3_url)
    assert all(on_s3.read(t).num_rows for t in ("dedup", "caption_match", "pools", "splits"))  # annotate ran
    assert differences(Store.open(tmp_path / "local"), on_s3, TABLES + ("dedup", "caption_match", "pools", "splits")) == {}
    assert on_s3.read("media", where="kind = 'frames' AND status = 'ok'").num_rows > 0  # videos decoded on the workers
    for stage in ("download", "extract"):  # each of the 2 shards ran on the cluster and wrote its runs row
        parts = outcome.results[stage]["parts"]
        assert [p["shard"] for p in parts] == [0, 1] and all(p["n_in"] > 0 for p in parts), (stage, parts)
        runs = on_s3.read("runs", where=f"stage = '{stage}'").to_pylist()
        assert len(runs) == 2 and {r["status"] for r in runs} == {"ok"}, (stage, runs)
    assert keys(s3, f"{s3_url[len('s3://') + len(s3['bucket']) + 1:]}/exports/")  # export wrote its shards there
    for proc in ("scheduler", "worker-0", "worker-1"):  # no scratch of the stages left (dask's and jieba's aside)
        left = [p for p in (tmp_path / "cluster" / proc / "tmp").rglob("m5data-*")]
        assert left == [], (proc, left[:5])

    secret = s3["env"]["AWS_SECRET_ACCESS_KEY"]
    n, found = _secret_in_prefect_database(secret)
    assert n > 100 and found == [], found  # the database holds this run's flow, tasks and logs, no secret
    prefix = s3_url[len("s3://") + len(s3["bucket"]) + 1:]
    objects = keys(s3, f"{prefix}/")
    assert any("/logs/crawl/" in k for k in objects) and any("/_log/" in k for k in objects)
    for key in objects:
        body = s3["client"].get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
        assert secret.encode() not in body, key
    assert secret not in str(on_s3.read("runs").to_pylist())
    for log in (tmp_path / "cluster").glob("*/log.txt"):
        assert secret not in log.read_text(errors="replace"), log
