"""Crowd labels: GLAD against crowd-kit's, GLAD against majority vote on simulated judgements of the
default demo world (accuracy and recovered abilities), import of judgements with bad rows, reruns."""

import json
import re

import numpy as np
import pytest
from support.demo_fixtures import copy_store
from typer.testing import CliRunner

from m5data.annotate.crowd.glad import dawid_skene, glad, majority
from m5data.annotate.crowd.job import aggregate
from m5data.annotate.crowd.judgement_import import import_judgements
from m5data.annotate.crowd.score import score_methods
from m5data.annotate.crowd.simulate import simulate
from m5data.cli import app
from m5data.config import load
from m5data.storage import Store

runner = CliRunner()


def glad_world(n_tasks=300, n_workers=15, seed=0):
    """Judgements drawn from GLAD's own model: 5 distinct workers per task, two spammers, one adversary."""
    rng = np.random.default_rng(seed)
    alpha = np.concatenate([rng.uniform(0.5, 3.0, n_workers - 3), [0.0, 0.0, -1.5]])
    beta = np.exp(rng.normal(0.3, 0.5, n_tasks))
    z = (rng.random(n_tasks) < 0.3).astype(int)
    who = np.argsort(rng.random((n_tasks, n_workers)), axis=1)[:, :5]
    task, worker = np.repeat(np.arange(n_tasks), 5), who.ravel()
    right = rng.random(len(task)) < 1 / (1 + np.exp(-alpha[worker] * beta[task]))
    return task, worker, np.where(right, z[task], 1 - z[task]), z, alpha


@pytest.mark.filterwarnings("ignore")  # crowd-kit 1.4.2 warns on every pandas call under pandas 3
def test_glad_agrees_with_crowdkit_without_gold():
    pd = pytest.importorskip("pandas")
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    task, worker, label, z, _ = glad_world()
    ours = glad(task, worker, label, 300, 15, prior=0.5)  # crowd-kit: uniform label prior, alpha ~ N(1,1), log beta ~ N(1,1)
    ck = crowdkit.GLAD(n_iter=100).fit(pd.DataFrame({"task": task, "worker": worker, "label": label}))
    theirs = ck.probas_[1].reindex(range(300)).to_numpy()
    assert np.abs(theirs - ours.prob).max() < 0.02
    assert ((theirs > 0.5) == (ours.prob > 0.5)).mean() >= 0.99
    assert np.corrcoef(ck.alphas_.reindex(range(15)).to_numpy(), ours.ability)[0, 1] > 0.99


def test_gold_clamping_and_other_methods():
    task, worker, label, z, alpha = glad_world(seed=1)
    gold = np.full(300, -1)
    gold[:30] = z[:30]
    res = glad(task, worker, label, 300, 15, gold=gold)
    assert (res.prob[:30] == z[:30]).all()  # gold questions keep their known label
    assert res.ability[-1] < 0  # the adversary is found
    mv = majority(task, worker, label, 300, 15)
    ds = dawid_skene(task, worker, label, 300, 15)
    acc = lambda p: ((p > 0.5) == z)[30:].mean()
    assert acc(res.prob) > acc(mv.prob)
    assert acc(ds.prob) > acc(mv.prob)


@pytest.fixture(scope="module")
def judged(demo300_judged, tmp_path_factory):
    """Default demo world: pools for every product, simulated judgements of each pool's top 20."""
    path, truth, report = demo300_judged
    store = Store.open(copy_store(path, tmp_path_factory.mktemp("crowd")))
    s = load(None, {"store.path": str(store.root), "pools.queries": 1.0}, environ={})
    return store, truth, s, report


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_glad_beats_majority_and_recovers_abilities(judged):
    store, truth, s, sim = judged
    assert sim.n_pairs == 300 * 20 and sim.n_judgements == 5 * sim.n_pairs
    assert sim.n_true_matches >= 50 and sim.n_gold >= 100
    kinds = [w["kind"] for w in sim.workers.values()]
    assert kinds.count("adversarial") == 1 and kinds.count("spammer") >= 3
    scores = score_methods(store, s, truth)
    assert scores["glad"]["accuracy"] > scores["majority"]["accuracy"] + 0.005
    assert scores["glad"]["ability_spearman"] > 0.9
    report = aggregate(store, s)
    matches = store.read("matches").to_pydict()
    assert len(matches["query_id"]) == sim.n_pairs and set(matches["method"]) == {"glad"}
    workers = store.read("workers").to_pydict()
    assert len(workers["worker_id"]) == 40 and "@gold" not in workers["worker_id"]
    assert all(g is not None for g in workers["gold_accuracy"])  # every worker met gold questions
    assert report.n_accepted == sum(matches["accepted"])


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_reruns_leave_the_same_tables(judged):
    store, truth, s, _ = judged
    before = store.read("annotations").sort_by([("query_id", "ascending"), ("candidate_id", "ascending"),
                                                ("worker_id", "ascending")])
    simulate(store, s, truth, top=20)
    after = store.read("annotations").sort_by([("query_id", "ascending"), ("candidate_id", "ascending"),
                                               ("worker_id", "ascending")])
    assert after.equals(before)
    cols = ["query_id", "candidate_id", "prob", "accepted"]
    aggregate(store, s)
    one = store.read("matches", columns=cols).sort_by([("query_id", "ascending"), ("candidate_id", "ascending")])
    aggregate(store, s)
    two = store.read("matches", columns=cols).sort_by([("query_id", "ascending"), ("candidate_id", "ascending")])
    assert one.equals(two)


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_cli_aggregate_prints_every_method(judged):
    store, truth, _, _ = judged
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "aggregate", "--method", "majority",
                                 "--score-against", str(truth)])
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"│ (glad|majority|dawid_skene)\s*│\s*([0-9.]+)", result.output))
    assert set(rows) == {"glad", "majority", "dawid_skene"}
    assert set(store.read("matches").column("method").to_pylist()) == {"majority"}


def _judgements_csv(store, tmp_path, text: str):
    """The store's settings and a judgements CSV file of ``text``."""
    csv_file = tmp_path / "judgements.csv"
    csv_file.write_text(text, encoding="utf-8")
    return load(None, {"store.path": str(store.root)}, environ={}), csv_file


def test_import_keeps_good_rows_and_names_bad_ones(store, tmp_path):
    s, csv_file = _judgements_csv(
        store, tmp_path,
        "query_id,candidate_id,worker_id,label,is_gold\n"
        "q1,c1,w1,match,false\n"
        "q1,c1,w2,Mismatch,0\n"
        "q1,c2,w1,uncertain,\n"
        "q1,c2,,match,false\n"
        "q1,q1,w1,match,false\n"
        "q1,c3,w1,maybe,false\n"
        "q1,c3,w2,match,perhaps\n")
    report = import_judgements(store, s, csv_file)
    assert report.n_rows == 7 and report.stats.n_out == 3
    assert dict(report.rejects) == {5: "missing worker_id", 6: "query_id equals candidate_id",
                                    7: "unknown label 'maybe' (match, mismatch, uncertain)",
                                    8: "is_gold is not a boolean: 'perhaps'"}
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [
        {"query_id": "q2", "candidate_id": "c9", "worker_id": "w1", "label": "match", "is_gold": True, "gold_label": "match"},
        {"data": {"query_id": "q2", "candidate_id": "c8", "worker_id": "w1"}, "label": "no"},
    ]) + "\n{not json\n", encoding="utf-8")
    report = import_judgements(store, s, jsonl)
    assert report.stats.n_out == 3 and report.n_gold_answers == 1  # two judgements + the @gold answer
    assert report.rejects[0][0] == 3 and report.rejects[0][1].startswith("not JSON")
    import_judgements(store, s, csv_file)  # re-import: same keys, nothing added
    rows = store.read("annotations").to_pydict()
    assert len(rows["query_id"]) == 6
    assert set(rows["source"]) == {"import"}
    agg = aggregate(store, s)
    assert agg.n_gold == 1 and agg.n_pairs == 4  # q1|c2 has only an "uncertain": kept, counted
    assert agg.stats.failures["pair with only uncertain judgements"] == 1


@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_the_registry_runs_the_crowd_and_pools_stages(judged):
    from m5data.stages import RunContext, call

    store, _, _, _ = judged
    settings = load(None, {"store.path": str(store.root)})
    stats = call("crowd", RunContext(settings, options={"method": "dawid_skene"}))
    assert stats.stage == "crowd" and stats.status == "ok"
    assert set(store.read("matches").column("method").to_pylist()) == {"dawid_skene"}
    settings = load(None, {"store.path": str(store.root), "pools.queries": "1.0"})
    stats = call("pools", RunContext(settings))
    assert stats.stage == "pools" and stats.n_out == 300


def test_import_of_a_latin1_file_and_an_oversized_field_rejects_those_rows(store, tmp_path):
    s = load(None, {"store.path": str(store.root)}, environ={})
    csv_file = tmp_path / "judgements.csv"
    csv_file.write_bytes(
        b"query_id,candidate_id,worker_id,label\n"
        b"q1,c1,w1,match\n"
        b"q1,c2,w\xe9ronique,match\n"  # latin-1, not UTF-8
        b"q1,c3,w1," + b"m" * 140_000 + b"\n"  # over the csv module's 128 KB field limit
        b"q1,c4,w1,mismatch\n")
    report = import_judgements(store, s, csv_file)
    assert report.n_rows == 4 and report.stats.n_out == 2
    reasons = dict(report.rejects)
    assert set(reasons) == {3, 4}
    assert "UTF-8" in reasons[3] and "field" in reasons[4]
    jsonl = tmp_path / "judgements.jsonl"
    jsonl.write_bytes(b'{"query_id": "q2", "candidate_id": "c1", "worker_id": "w1", "label": "match"}\n'
                      b'{"query_id": "q2", "candidate_id": "c2", "worker_id": "w\xe9", "label": "match"}\n'
                      b'{"query_id": "q2", "candidate_id": "c3", "worker_id": "' + b"w" * 2000 + b'", "label": "match"}\n')
    report = import_judgements(store, s, jsonl)
    assert report.stats.n_out == 1 and [line for line, _ in report.rejects] == [2, 3]
    assert "UTF-8" in report.rejects[0][1] and "longer than" in report.rejects[1][1]
    assert sorted(store.read("annotations").column("candidate_id").to_pylist()) == ["c1", "c1", "c4"]


def test_import_drops_conflicting_duplicates_and_names_them(store, tmp_path):
    s, csv_file = _judgements_csv(
        store, tmp_path,
        "query_id,candidate_id,worker_id,label,is_gold,gold_label\n"
        "q1,c1,w1,match,,\n"
        "q1,c1,w2,match,,\n"
        "q1,c1,w1,mismatch,,\n"  # w1 said both: neither is kept
        "q1,c1,w2,yes,,\n"  # the same judgement twice: kept once
        "q1,c2,w1,match,true,match\n"
        "q1,c2,w2,match,true,mismatch\n"  # two known answers for one gold pair: no answer is kept
        "q1,c3,w1,match,true,match\n"
        "q1,c3,w2,mismatch,true,match\n")
    report = import_judgements(store, s, csv_file)
    assert report.n_rows == 8
    assert report.stats.failures == {"conflicting labels of one worker for one pair": 2,
                                     "conflicting gold_label for one pair": 2}
    assert [(c.key, c.lines) for c in report.conflicts] == [("q1 / c1 / w1", [2, 4]), ("q1 / c2", [6, 7])]
    assert report.n_gold_answers == 1
    rows = {(r["query_id"], r["candidate_id"], r["worker_id"]): r["label"] for r in store.read("annotations").to_pylist()}
    assert rows == {("q1", "c1", "w2"): "match", ("q1", "c2", "w1"): "match", ("q1", "c2", "w2"): "match",
                    ("q1", "c3", "w1"): "match", ("q1", "c3", "w2"): "mismatch", ("q1", "c3", "@gold"): "match"}
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "import", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "conflict" in result.output and "q1 / c1 / w1" in result.output and "lines 2, 4" in result.output


@pytest.mark.parametrize("worker", ["@gold", "@GOLD", " @Gold ", "\uff20gold", "@admin",
                                    # invisible control and format characters before the @ (Unicode Cc, Cf)
                                    "\x00@gold", "\u200b@gold", "\u202e@gold", "\ufeff@gold", "\u2060 @gold"])
def test_import_refuses_reserved_worker_ids(store, tmp_path, worker):
    s = load(None, {"store.path": str(store.root)}, environ={})
    jsonl = tmp_path / "judgements.jsonl"
    jsonl.write_text(json.dumps({"query_id": "q1", "candidate_id": "c1", "worker_id": worker, "label": "match"}) + "\n",
                     encoding="utf-8")
    report = import_judgements(store, s, jsonl)
    assert report.stats.n_out == 0 and "reserved" in report.rejects[0][1]
    assert store.count("annotations") == 0


@pytest.mark.parametrize("worker", ["w\x001", "w\u200b1", "w1\u202e", "w\x1b[31m1", "\u00ad" + "w1"])
def test_import_refuses_worker_ids_holding_control_or_format_characters(store, tmp_path, worker):
    """An id with characters nobody sees would pass for another worker ("w1") in every table and chart."""
    s = load(None, {"store.path": str(store.root)}, environ={})
    jsonl = tmp_path / "judgements.jsonl"
    rows = [{"query_id": "q1", "candidate_id": "c1", "worker_id": worker, "label": "match"},
            {"query_id": "q1", "candidate_id": "c2", "worker_id": "w1", "label": "match"}]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = import_judgements(store, s, jsonl)
    assert report.stats.n_out == 1 and report.rejects[0][0] == 1
    assert "control or format characters" in report.rejects[0][1]
    assert [r["worker_id"] for r in store.read("annotations").to_pylist()] == ["w1"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_import_reads_a_giant_line_in_bounded_memory_and_rejects_it_alone(store, tmp_path, suffix):
    """One 300 MB line (no newline inside) is one rejected record read in bounded memory, not 300 MB held;
    a JSON record nested 100,000 deep is a rejected record, not a RecursionError."""
    import resource

    s = load(None, {"store.path": str(store.root)}, environ={})
    path = tmp_path / f"judgements{suffix}"
    good = (b'{"query_id": "q1", "candidate_id": "c%d", "worker_id": "w1", "label": "match"}\n' if suffix == ".jsonl"
            else b"q1,c%d,w1,match\n")
    with path.open("wb") as fh:
        if suffix == ".csv":
            fh.write(b"query_id,candidate_id,worker_id,label\n")
        fh.write(good % 1)
        for _ in range(300):
            fh.write(b"x" * (1 << 20))
        fh.write(b"\n")
        fh.write(good % 2)
        if suffix == ".jsonl":
            fh.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        fh.write(good % 3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = import_judgements(store, s, path)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
    assert report.stats.n_out == 3, report.rejects
    reasons = dict(report.rejects)
    first = 3 if suffix == ".csv" else 2
    assert "longer than" in reasons[first], reasons
    if suffix == ".jsonl":
        assert "nested" in reasons[first + 2], reasons
    assert grown < 100 << 10, f"peak RSS grew {grown} KiB over a 300 MB line"
