"""annotate (every job, the labelling UI and the verbs), import and train with the store on object storage
(``s3://bucket/prefix``, moto's server on 127.0.0.1): each gives the tables it gives on a local store
built alike, and its kept files (the matcher's model, the simulated workers, the pools' vectors and
checkpoints) are objects of the store.
"""

from __future__ import annotations

import csv
import gc
import json
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from support.demo_fixtures import cached_shop, copy_store  # noqa: E402
from support.store_compare import differences  # noqa: E402

from m5data.config import load  # noqa: E402
from m5data.storage import Store, changes  # noqa: E402
from m5data.storage.copy import copy_store as store_copy  # noqa: E402

ANNOTATED = ("dedup", "caption_match", "pools", "annotations", "matches", "workers")


def _annotate(store, truth: Path, out: Path) -> dict:
    """Every annotate job on ``store``, as the CLI runs them; what each left beside its tables."""
    from m5data.annotate.crowd.job import aggregate
    from m5data.annotate.crowd.score import score_methods
    from m5data.annotate.crowd.simulate import simulate
    from m5data.annotate.crowd.tasks import export_tasks
    from m5data.annotate.dedup.job import dedup
    from m5data.annotate.match_level.job import match_level
    from m5data.annotate.matcher.job import score_file
    from m5data.annotate.matcher.job import train as train_matcher
    from m5data.annotate.matcher.model import load_model
    from m5data.annotate.pools.job import build_pools

    s = load(overrides={"store.path": str(store.root)}, environ={})
    dedup(store, s)
    match_level(store, s)
    first = build_pools(store, s)
    again = build_pools(store, s)  # its kept input state says nothing changed: nothing read again
    simulate(store, s, truth, top=20)
    aggregate(store, s)
    scored = score_methods(store, s, truth, methods=("majority",))  # reads the simulated workers back
    trained = train_matcher(store, s)
    model = load_model(store)
    pairs = out / "pairs.csv"
    ranked = sorted((r["query_id"], r["candidate_id"]) for r in store.read("pools", where="rank <= 2").to_pylist())
    pairs.write_text("a,b\n" + "".join(f"{q},{c}\n" for q, c in ranked))
    score_file(store, s, pairs, out / "scored.csv")
    tasks = export_tasks(store, out / "tasks", top=3)
    least_sure = export_tasks(store, out / "uncertain", uncertain=4, settings=s)  # pairs the crowd did not judge
    dedup(store, s)  # a second dedup uses the learned matcher the store now keeps
    return {"first": first, "again": again, "ability": scored["majority"].get("ability_spearman"),
            "trained": trained, "model": model, "scores": (out / "scored.csv").read_text(),
            "tasks": tasks, "uncertain": (out / "uncertain" / "tasks.csv").read_text(encoding="utf-8"),
            "n_uncertain": least_sure.n_tasks, "task_rows": list(csv.DictReader((out / "tasks" / "tasks.csv").open(encoding="utf-8")))}


def _judge_in_the_ui(store) -> tuple[bytes, dict]:
    """Serve the first task of a worker's session, fetch its candidate's image, and send a judgement."""
    from m5data.annotate.ui.app import RunningUi, Session
    from m5data.annotate.ui.tasks import build_tasks

    session = Session("w1", build_tasks(store, per_query=2, gold=[]))
    task = session.tasks[0]
    with RunningUi(store, session) as ui:
        with urllib.request.urlopen(f"{ui.url}/api/tasks", timeout=10) as res:
            listed = json.loads(res.read())
        with urllib.request.urlopen(f"{ui.url}/api/product/{task.candidate_id}", timeout=10) as res:
            product = json.loads(res.read())
        with urllib.request.urlopen(ui.url + product["image"], timeout=10) as res:
            image = res.read()
        req = urllib.request.Request(ui.url + "/api/judge", method="POST", data=json.dumps(
            {"query_id": task.query_id, "candidate_id": task.candidate_id, "label": "match"}).encode(),
            headers={"Content-Type": "application/json", "X-CSRF-Token": session.token})
        with urllib.request.urlopen(req, timeout=10) as res:
            judged = json.loads(res.read())
    return image, {"listed": len(listed["tasks"]), "reviewed": judged["reviewed"]}


def test_every_annotate_job_the_ui_and_the_verbs_on_s3_equal_a_local_store(url, aws, demo_store_factory, tmp_path,
                                                                           scratch_tmpdir):
    scratch = scratch_tmpdir  # kept folders, image copies and import staging live in TMPDIR, removed after
    source = demo_store_factory(products=60, seed=0)
    truth = cached_shop(source.parent, products=60, seed=0) / "truth"
    local = Store.open(copy_store(source, tmp_path))
    s3 = Store.init(url)
    store_copy(local, s3)
    results = []
    for store, name in ((s3, "s3"), (local, "local")):
        (tmp_path / name).mkdir()
        results.append(_annotate(store, truth, tmp_path / name))
    got, want = results
    assert differences(s3, local, ANNOTATED) == {}
    assert s3.count("pools") > 0 and s3.count("matches") > 0 and s3.read("dedup", where="rule = 'matcher'").num_rows >= 0
    assert got["again"].up_to_date and not got["first"].up_to_date and got["again"].fingerprint == got["first"].fingerprint
    assert got["ability"] is not None and got["ability"] == want["ability"]  # the simulated workers, read back
    assert got["model"].to_json()["trees"] == want["model"].to_json()["trees"]
    assert str(got["trained"].path).startswith(url + "/derived/matcher/") and got["scores"] == want["scores"]
    assert got["tasks"].n_tasks == want["tasks"].n_tasks > 0 and got["n_uncertain"] == want["n_uncertain"] == 4
    assert got["uncertain"].replace(url, "<store>") == want["uncertain"].replace(str(local.root), "<store>")
    images = [r["query_image"] for r in got["task_rows"] if r["query_image"]]
    assert images and all(i.startswith(url + "/blobs/") or i.startswith(url + "/derived/") for i in images)
    kept = s3.files("derived/pools/")
    # the full run's input state is kept in its state (derived/state/pools.json), no file beside it
    assert "derived/pools/inputs.json" not in kept and any(k.endswith(".done") for k in kept)
    assert "input_state" in changes.load_state(s3, "pools")
    assert any(k.startswith("derived/pools/vectors-") for k in kept)
    assert kept == local.files("derived/pools/")  # the same files in the same places (no scratch among them)
    assert [f.rsplit("/", 2)[0] for f in s3.files("derived/matcher/")] == ["derived/matcher"]
    assert [f.rsplit("/", 2)[0] for f in local.files("derived/matcher/")] == ["derived/matcher"]
    assert s3.read_text("derived/crowd/simulated_workers.json") == local.read_text("derived/crowd/simulated_workers.json")

    served = [_judge_in_the_ui(store) for store in (Store.open(url), local)]  # the app outlives its server
    assert served[0] == served[1] and served[0][0][:2] == b"\xff\xd8"  # the same JPEG from the object
    assert differences(s3, local, ("annotations",)) == {}

    _verbs(url, got["model"].version, tmp_path)
    s3 = None
    gc.collect()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("m5data-")] == []


def _verbs(url: str, version: str, tmp_path: Path) -> None:
    """The CLI's annotate verbs with ``--store s3://...``: they open the store as the stages do."""
    from typer.testing import CliRunner

    from m5data.cli import app

    store = Store.open(url)
    pair = store.read("pools", where="rank = 1").to_pylist()[0]
    judged = tmp_path / "judged.csv"
    judged.write_text(f"query_id,candidate_id,worker_id,label\n{pair['query_id']},{pair['candidate_id']},cli,match\n")
    runner = CliRunner()

    def verb(*args: str) -> str:
        out = runner.invoke(app, ["--store", url, "annotate", *args], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return " ".join(out.output.split())

    assert "1 judgements kept" in verb("import", str(judged))
    assert store.read("annotations", where="worker_id = 'cli'").num_rows == 1
    assert "pools up to date" in verb("pools")
    assert version in verb("matcher", "score", "--pairs", str(tmp_path / "s3" / "pairs.csv"),
                           "--out", str(tmp_path / "cli-scored.csv"), "--model", version)
    assert (tmp_path / "cli-scored.csv").read_text() == (tmp_path / "s3" / "scored.csv").read_text()


def test_import_and_train_on_s3_equal_a_local_store(url, aws, demo_store_factory, tmp_path, scratch_tmpdir, monkeypatch):
    from support.import_layout import make_layout, rows
    from typer.testing import CliRunner

    from m5data.cli import app
    from m5data.export.run import export
    from m5data.export.stage import default_out
    from m5data.importer.run import import_m5product
    from m5data.splits.build import build
    from m5data.stages import opened
    from m5data.train.stage import train_and_evaluate

    scratch = scratch_tmpdir
    layout = make_layout(tmp_path / "m5p")
    s3, local = Store.init(url), Store.init(tmp_path / "local")
    imported = CliRunner().invoke(app, ["--store", url, "import", "m5product", str(layout)], catch_exceptions=False)
    assert imported.exit_code == 0, imported.output
    report = import_m5product(local, layout)
    assert report.products > 0 and "import run" in imported.output
    assert rows(s3) == rows(local)
    assert differences(s3, local, ("products", "specs", "media", "splits")) == {}

    store_url = url + "/demo"
    demo = Store.init(store_url)
    store_copy(Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path)), demo)
    settings = load(overrides={"store.path": store_url, "export.shard_size": 16}, environ={})
    build(demo, settings, version="v1")
    out = default_out(demo, "train", "webdataset", "v1")[1]
    assert out.startswith(store_url + "/exports/")
    assert export(demo, settings, out=out, split="train", fmt="webdataset", version="v1").stats.n_failed == 0
    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\ncheckpoint_every = 2\nworkers = 0\nbatch_size = 8\n")
    with opened("train", demo, settings) as run:  # the contract's run: its runs row in the S3 store
        stats = train_and_evaluate(out, tmp_path / "run", config=str(conf), max_steps=2, run=run, evaluate=False,
                                   device="cpu", seed=0)
    assert stats.details["steps"] == 2 and (tmp_path / "run" / "model.pt").is_file()
    runs = demo.read("runs", where="stage = 'train'").to_pylist()
    assert len(runs) == 1 and json.loads(runs[0]["config"])["shards"] == out
    demo = s3 = run = None  # the run holds the store too
    gc.collect()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("m5data-")] == []


@pytest.mark.parametrize("small", [8 << 20, 0])  # 0: every file streamed (s3fs get_file / put_file, multipart)
def test_a_kept_folder_on_s3_is_a_local_copy_written_back_and_fetches_lazy_files_when_used(url, aws, small,
                                                                                           monkeypatch):
    monkeypatch.setattr("m5data.storage.s3folders.SMALL_OBJECT", small)
    store = Store.init(url)
    for rel, data in (("derived/k/state.json", b"{}"), ("derived/k/a/block-0.done", b"0"),
                      ("derived/k/vectors-1.npy", b"big 1"), ("derived/k/vectors-2.npy", b"big 2")):
        store.write_bytes(rel, data)
    with store.kept("derived/k", lazy=("vectors-*.npy",)) as kept:
        assert (kept.path / "state.json").read_bytes() == b"{}" and (kept.path / "a" / "block-0.done").is_file()
        assert not (kept.path / "vectors-1.npy").exists()  # lazy: not downloaded until fetched
        assert kept.names("vectors-*") == ["vectors-1.npy", "vectors-2.npy"]
        assert kept.fetch("vectors-1.npy").read_bytes() == b"big 1" and kept.fetch("vectors-9.npy") is None
        kept.remove("vectors-2.npy")  # never fetched: its object goes at the end
        (kept.path / "a" / "block-1.done").write_text("1")
        kept.push(kept.path / "a" / "block-1.done")
        assert store.read_bytes("derived/k/a/block-1.done") == b"1"  # pushed: there before the block ends
        (kept.path / "state.json").write_text('{"new": 1}')
        (kept.path / "a" / "block-0.done").unlink()
        (kept.path / ".tmp-1-x").write_text("half")  # a temp file: never uploaded
        folder = kept.path
    assert not folder.exists()
    assert store.files("derived/k/") == ["derived/k/a/block-1.done", "derived/k/state.json", "derived/k/vectors-1.npy"]
    assert store.read_text("derived/k/state.json") == '{"new": 1}'


def test_the_train_stage_on_an_s3_store_wants_a_local_run_folder():
    from m5data.stages import RunContext, StageError, call

    settings = load(overrides={"store.path": "s3://bucket/m5", "train.shards": "s3://bucket/m5/exports/v1"},
                    environ={})
    with pytest.raises(StageError, match=r"train: the store s3://bucket/m5 is on object storage.*train.out"):
        call("train", RunContext(settings, options={"evaluate": False, "record": False}))  # no store to record in


@pytest.fixture
def url(s3_url):
    return s3_url


def test_incremental_pools_on_s3_equal_a_local_store(url, aws, demo_store_factory, tmp_path, scratch_tmpdir, monkeypatch):
    """Pools grown incrementally on an S3 store: the same pools as on a local store, the kept embedder,
    vectors and lists objects of the store; nothing new afterwards reads no kept file and writes nothing."""
    from support.grow_store import grow, product_ids

    from m5data.annotate.pools.job import build_pools
    from m5data.storage import changes

    local = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    s3 = Store.init(url)
    store_copy(local, s3)
    reports = []
    for store in (s3, local):
        s = load(overrides={"store.path": str(store.root), "pools.queries": "1.0", "pools.k": "20",
                            "pools.margin": "5"}, environ={})
        build_pools(store, s)
        grow(store, "x", 6, sorted(product_ids(store))[2])
        reports.append(build_pools(store, s))
    got, want = reports
    assert got.refit is None and got.changes == want.changes == {"new": 6, "changed": 1, "unchanged": 59}
    assert got.rewritten == want.rewritten > 0 and differences(s3, local, ("pools",)) == {}
    files = changes.load_state(s3, "pools")["files"]
    assert all(f"derived/pools/{f}" in s3.files("derived/pools/") for f in files.values())
    mark = s3.watermark("pools")
    monkeypatch.setattr(type(s3), "kept", lambda *a, **k: pytest.fail("a run with nothing new opened the kept files"))
    again = build_pools(s3, load(overrides={"store.path": url, "pools.queries": "1.0", "pools.k": "20",
                                            "pools.margin": "5"}, environ={}))
    assert again.up_to_date and s3.watermark("pools") == mark
