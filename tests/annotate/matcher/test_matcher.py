"""The learned same-product matcher: its model file is JSON (a pickle is refused, never run), its
exported trees predict as scikit-learn's, its threshold reaches the precision target on held-out
folds, a model trained on one store scores another (real ER-Magellan Abt-Buy pairs), a labels file
with bad lines is refused with one error per line, and it trains from the crowd's ``matches``."""

import csv
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from support import er_magellan as er
from support.demo_fixtures import copy_store
from typer.testing import CliRunner

from m5data.annotate.crowd import uncertain
from m5data.annotate.crowd.uncertain import nearest_threshold, per_cluster
from m5data.annotate.matcher import job
from m5data.annotate.matcher import model as pair_model
from m5data.annotate.matcher import products as pair_products
from m5data.annotate.matcher.model import FORMAT, MatcherError, Model, Trees, load
from m5data.annotate.matcher.training import choose_threshold
from m5data.cli import app
from m5data.config import load as load_settings
from m5data.storage import Store

runner = CliRunner()
ABT = Path(__file__).resolve().parents[3].parent / "shared" / "realdata" / "matching" / "Abt-Buy"
if not ABT.is_dir():
    ABT = Path("/work/shared/realdata/matching/Abt-Buy")

BRANDS = ["aurora", "beltron", "cosmo", "dyna", "elkin", "fuji-ko", "gantz", "helio"]
NOUNS = ["blender", "kettle", "monitor", "speaker", "router", "toaster", "camera", "drill"]
EXTRA = ["new", "sale", "2024", "official", "fast shipping", "genuine", "hot"]


def synthetic(store, n_families: int, seed: int) -> list[tuple[str, str, int]]:
    """Families of sibling products (one brand and noun, model codes a character or a size apart), each
    product listed twice with reworded titles, reordered words, codes with or without a hyphen (or
    none: 40% of listings name no code, 40% no size) and near pHashes; siblings often share a stock
    photo and differ in price by 10, so some pairs cannot be told apart (AUC below 1). Returns labelled pairs: the two listings of a
    product (1), and listings of siblings or strangers (0)."""
    rng = np.random.default_rng(seed)
    products, specs, media, members = [], [], [], []
    for f in range(n_families):
        brand, noun = BRANDS[rng.integers(len(BRANDS))], NOUNS[rng.integers(len(NOUNS))]
        stem = "".join(rng.choice(list("abcdefghkmnprstx"), 2)) + str(rng.integers(100, 999))
        photo = int(rng.integers(0, 2 ** 63))
        fam = []
        for s in range(int(rng.integers(2, 4))):
            code, size = stem + "abcdef"[s], int(rng.choice([24, 27, 32, 40])) + s * 2
            own = photo if rng.random() < 0.5 else int(rng.integers(0, 2 ** 63))
            listings = []
            for k in range(2):
                written = code if rng.random() < 0.5 else f"{code[:2]}-{code[2:]}"
                words = [brand, noun, *([written] if rng.random() < 0.6 else []),  # many listings name no code
                         *([f"{size}inch"] if rng.random() < 0.6 else []), *rng.choice(EXTRA, 2, replace=False)]
                head, tail = words[:1], words[1:]
                rng.shuffle(tail)
                if rng.random() < 0.3:
                    tail.pop()  # a listing that leaves something out
                pid = f"syn{seed}:{f}-{s}-{k}"
                products.append({"product_id": pid, "platform": f"syn{seed}", "source_id": pid.split(":")[1],
                                 "merchant_id": f"m{k}", "title": " ".join(head + tail),
                                 "price": float(round(100 + 10 * s + rng.normal(0, 3), 2))})
                specs.append({"product_id": pid, "position": 0, "property": "品牌", "value": brand})
                bits = own ^ int(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(0, 4)), replace=False)))
                media.append({"media_id": f"m-{pid}", "product_id": pid, "kind": "image", "role": "main", "position": 0,
                              "sha256": f"{bits:016x}", "phash": f"{bits:016x}", "status": "ok"})
                listings.append(pid)
            fam.append(listings)
        members.append(fam)
    store.write("products", products)
    store.write("specs", specs)
    store.write("media", media)
    pairs = []
    for f, fam in enumerate(members):
        for s, (x, y) in enumerate(fam):
            pairs.append((x, y, 1))
            other = fam[(s + 1) % len(fam)]
            pairs.append((x, other[int(rng.integers(2))], 0))  # a sibling: same brand and noun, another code
            g = members[int(rng.integers(len(members)))]
            stranger = g[int(rng.integers(len(g)))][int(rng.integers(2))]
            if stranger not in (x, y):
                pairs.append((y, stranger, 0))
    return pairs


def _settings(store, **over):
    return load_settings(None, {"store.path": str(store.root), "matcher.trees": 150, **over}, environ={})


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A synthetic store, its labelled pairs as a file, and a matcher trained from them."""
    root = tmp_path_factory.mktemp("matcher-synth")
    store = Store.init(root / "store")
    pairs = synthetic(store, 150, seed=1)
    labels = er.write_labels(root / "labels.csv", pairs)
    report = job.train(store, _settings(store), labels)
    return store, pairs, report


def test_threshold_reaches_the_precision_target_on_held_out_folds(synth, tmp_path):
    store, pairs, report = synth
    v = report.model.validation
    assert v["pairs"] == len(pairs) and v["matches"] == sum(y for _, _, y in pairs)
    assert v["target_reached"] and v["precision"] >= 0.9 and v["recall"] >= 0.5, v
    # ... and on products it never saw: a second synthetic store, scored with the saved threshold
    fresh = Store.init(tmp_path / "fresh")
    new = synthetic(fresh, 100, seed=2)
    products = pair_products.read_store(fresh, "品牌")
    idx = products.index()
    s = pair_model.score(report.model, products, np.array([idx[a] for a, _, _ in new]), np.array([idx[b] for _, b, _ in new]))
    y = np.array([lab for _, _, lab in new], bool)
    acc = s >= report.model.threshold
    assert (acc & y).sum() / acc.sum() >= 0.85 and (acc & y).sum() / y.sum() >= 0.5


def test_choose_threshold_is_the_best_f1_that_reaches_the_precision():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    scores = np.round(np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1), 2)  # ties on purpose
    t, ok = choose_threshold(scores, y, 0.9)
    prec = lambda th: (y & (scores >= th)).sum() / (scores >= th).sum()
    f1 = lambda th: 2 * (y & (scores >= th)).sum() / ((scores >= th).sum() + y.sum())
    assert ok and prec(t) >= 0.9
    assert all(f1(u) <= f1(t) for u in np.unique(scores) if prec(u) >= 0.9)
    assert all(f1(u) < f1(t) for u in np.unique(scores) if prec(u) >= 0.9 and u < t)
    separable = np.r_[np.full(5, 0.9), np.full(20, 0.1)], np.r_[np.ones(5), np.zeros(20)].astype(bool)
    assert choose_threshold(*separable, 0.2) == (0.9, True)  # not 0.1, where precision is exactly 0.2
    t, ok = choose_threshold(np.zeros(10), np.r_[np.ones(2), np.zeros(8)].astype(bool), 0.9)
    assert not ok and t == 0.0


def test_the_trees_fit_on_one_openmp_thread_in_a_fresh_process():
    """The limit reaches scikit-learn's own OpenMP runtime even when the trees' code is first imported
    for the fit (a fresh process's first training): set before that runtime loaded, it did not, and
    the fits spun for threads another process held (Amazon-Google's training 185-221 s against 8 s)."""
    import subprocess
    import sys

    code = ("import json, threadpoolctl\n"
            "from m5data.annotate.matcher.trees import one_thread\n"
            "with one_thread():\n"
            "    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401\n"
            "    print(json.dumps([(i['filepath'], i['num_threads']) for i in threadpoolctl.threadpool_info()\n"
            "                      if i['user_api'] == 'openmp']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    runtimes = json.loads(out.stdout.strip().splitlines()[-1])
    assert runtimes and all(n == 1 for _, n in runtimes), runtimes


def test_exported_trees_predict_as_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.random((2000, 5))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 4] = np.where(rng.random(2000) < 0.5, np.nan, 1.0)  # a split on "missing or not"
    y = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1], nan=0.5) + np.isnan(x[:, 4]) * 0.3 > 1
    m = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    model = Model("t", list("abcde"), float(np.ravel(m._baseline_prediction)[0]), Trees.from_sklearn(m), 0.5)
    np.testing.assert_allclose(model.proba(x), m.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_model_file_is_json_and_a_pickle_is_refused_unrun(synth, tmp_path):
    store, _, report = synth
    files = [p for p in (store.local_root() / "derived" / "matcher").rglob("*") if p.is_file()]
    assert files == [report.path]
    data = report.path.read_bytes()
    doc = json.loads(data)
    assert doc["format"] == FORMAT and doc["features"] == report.model.features and doc["threshold"] == report.model.threshold
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "model.json"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(MatcherError, match="pickle"):
        load(bad)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\nsyn1:0-0-0,syn1:0-0-1\n", encoding="utf-8")
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "matcher", "score", "--pairs", str(pairs),
                                 "--out", str(tmp_path / "out.csv"), "--model", str(bad)])
    assert result.exit_code == 1 and "pickle" in result.output
    assert not marker.exists() and not (tmp_path / "out.csv").exists()
    bad.write_text(json.dumps({"format": FORMAT, "version": "x", "features": [], "baseline": 0, "threshold": 0.5,
                               "trees": {"roots": [5], "feature": [0], "threshold": [0], "missing_left": [0], "left": [0],
                                         "right": [0], "leaf": [0], "value": [0], "depth": 1}}))
    with pytest.raises(MatcherError, match="out of range"):
        load(bad)
    loop = {"roots": [0], "feature": [0, 0], "threshold": [0.5, 0], "missing_left": [1, 0], "left": [0, 0],
            "right": [1, 0], "leaf": [0, 1], "value": [0, 1], "depth": 1}  # node 0's left child is itself
    bad.write_text(json.dumps({"format": FORMAT, "version": "x", "features": [], "baseline": 0, "threshold": 0.5,
                               "trees": loop}))
    with pytest.raises(MatcherError, match="child before its parent"):
        load(bad)


def test_labels_file_with_bad_lines_is_refused_one_error_per_line(synth, tmp_path):
    store, pairs, _ = synth
    before = sorted((store.local_root() / "derived" / "matcher").iterdir())
    runs = set(store.read("runs").column("run_id").to_pylist())
    a, b, _ = pairs[0]
    labels = tmp_path / "labels.csv"
    labels.write_text("a,b,label\n"
                      f"{a},{b},1\n"
                      f"{a},nope:1,0\n"          # 3: unknown id
                      f"{a},{b},yes\n"           # 4: bad label
                      f"{a},{b}\n"               # 5: two fields
                      f"{a},{a},1\n"             # 6: itself
                      f"ghost:2,ghost:3,2\n",    # 7: two unknown ids and a bad label, one line
                      encoding="utf-8")
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "matcher", "train", "--labels", str(labels)])
    assert result.exit_code == 1
    out = result.output
    assert "5 bad lines" in out
    assert re.search(r"line 3: unknown product id 'nope:1'", out)
    assert "line 4: label 'yes' is not 0 or 1" in out
    assert "line 5: expected 3 fields a,b,label, got 2" in out
    assert "line 6: a product paired with itself" in out
    assert "line 7: unknown product id 'ghost:2'; unknown product id 'ghost:3'; label '2' is not 0 or 1" in out
    assert [ln for ln in out.splitlines() if re.match(r"\s*line \d+:", ln)].__len__() == 5
    assert "line 2:" not in out
    assert sorted((store.local_root() / "derived" / "matcher").iterdir()) == before  # no model written
    failed = [r for r in store.read("runs").to_pylist() if r["run_id"] not in runs]  # the row of the run the file ended
    assert [r["status"] for r in failed] == ["failed"] and "MatcherError" in failed[0]["failures"]
    # a text model that is not there is one line, before any work
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "matcher", "train", "--labels",
                                 str(tmp_path / "missing.csv"), "--text-model", str(tmp_path / "no-model")])
    assert result.exit_code == 1 and "annotate.text_model: no model folder" in result.output
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "matcher", "train", "--labels",
                                 str(tmp_path / "missing.csv")])
    assert result.exit_code == 1 and "no such file" in result.output


@pytest.fixture(scope="module")
def abt_stores(tmp_path_factory):
    """Two stores of real Abt-Buy records: one of the train split's pairs, one of the test split's."""
    if not ABT.is_dir():
        pytest.skip(f"no ER-Magellan data at {ABT}")
    root = tmp_path_factory.mktemp("matcher-abt")
    records, pairs = er.read(ABT)
    stores = {}
    for split in ("train", "test"):
        ids = {x for a, b, _ in pairs[split] for x in (a, b)}
        store = Store.init(root / split)
        er.write_store(store, {k: records[k] for k in ids})
        stores[split] = store
    return root, stores, pairs


def test_a_matcher_trained_on_one_store_scores_another(abt_stores):
    root, stores, pairs = abt_stores
    train, test = stores["train"], stores["test"]
    labels = er.write_labels(root / "train.csv", pairs["train"][:3000])
    common = ["--set", f"annotate.brand_property={er.BRAND_PROPERTY}", "--set", "matcher.trees=150"]
    result = runner.invoke(app, ["--store", str(train.root), *common, "annotate", "matcher", "train", "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output
    runs = train.read("runs").to_pydict()
    assert runs["stage"] == ["matcher"] and runs["n_out"] == [3000] and runs["status"] == ["ok"]
    model_file = next((train.local_root() / "derived" / "matcher").glob("*/model.json"))
    with open(root / "test-pairs.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "label"])
        w.writerows(pairs["test"])
    out = root / "scored.csv"
    result = runner.invoke(app, ["--store", str(test.root), *common, "annotate", "matcher", "score", "--pairs",
                                 str(root / "test-pairs.csv"), "--out", str(out), "--model", str(model_file)])
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(pairs["test"]) and list(rows[0]) == ["a", "b", "label", "score"]
    s, y = np.array([float(r["score"]) for r in rows]), np.array([r["label"] == "1" for r in rows])
    assert ((0 <= s) & (s <= 1)).all()
    threshold = json.loads(model_file.read_text())["threshold"]
    acc = s >= threshold
    precision, recall = (acc & y).sum() / acc.sum(), (acc & y).sum() / y.sum()
    assert precision >= 0.8 and recall >= 0.7, (precision, recall)
    # the test store has no model of its own: score without --model finds none, and says so
    result = runner.invoke(app, ["--store", str(test.root), "annotate", "matcher", "score", "--pairs",
                                 str(root / "test-pairs.csv"), "--out", str(root / "x.csv")])
    assert result.exit_code == 1 and "no trained matcher" in result.output


@pytest.mark.xdist_group("demo300")  # the 300-product demo store annotate/crowd/test_crowd builds (Makefile: --dist loadgroup)
def test_trains_from_the_crowds_matches(demo300_judged, tmp_path_factory, monkeypatch):
    from m5data.annotate.crowd.job import aggregate

    path, _, _ = demo300_judged
    store = Store.open(copy_store(path, tmp_path_factory.mktemp("matcher-crowd")))
    s = load_settings(None, {"store.path": str(store.root), "pools.queries": 1.0}, environ={})
    aggregate(store, s)
    matches = store.read("matches").to_pydict()
    result = runner.invoke(app, ["--store", str(store.root), "--set", "matcher.trees=150",
                                 "annotate", "matcher", "train"])
    assert result.exit_code == 0, result.output
    model = load(pair_model.model_path(store))
    v = model.validation
    judged: dict = {}  # a pair in both pools is judged twice, (a, b) and (b, a): one training pair
    for q, c, p in zip(matches["query_id"], matches["candidate_id"], matches["prob"]):
        if p is not None:
            judged.setdefault(frozenset((q, c)), []).append(p)
    assert v["pairs"] == len(judged) < sum(p is not None for p in matches["prob"])
    assert v["matches"] == sum(job.combined(ps) >= 0.5 for ps in judged.values())
    assert v["auc"] >= 0.9 and v["target_reached"], v
    assert "phash_distance" in model.features and "title_char_cos" in model.features
    runs = store.read("runs", where="stage = 'matcher'").to_pydict()
    assert runs["status"] == ["ok"] and runs["n_out"] == [v["pairs"]] and runs["bytes"][0] == pair_model.model_path(store).stat().st_size
    # active learning: below uncertain.SWITCH crowd labels, the next round asks the least sure unjudged pool
    # pair of each k-means cluster of their features; from it on, a committee's (tests below)
    monkeypatch.setattr(uncertain, "SWITCH", v["pairs"] + 1)
    asked, rest, x, sc = _next_round(store, s, model, matches, tmp_path_factory.mktemp("uncertain"))
    picked = per_cluster(sc, model.threshold, x, 30, s.annotate.seed)
    assert asked == [rest[i] for i in picked]
    logit = lambda p: np.log(np.clip(p, 1e-9, 1 - 1e-9) / (1 - np.clip(p, 1e-9, 1 - 1e-9)))
    dist = np.abs(logit(sc[picked]) - logit(model.threshold))
    assert list(dist) == sorted(dist)  # nearest the threshold first
    assert set(picked) != set(nearest_threshold(sc, model.threshold, 30))  # not the 30 least sure of all
    # with the crowd's labels at SWITCH or more: the largest spread of a committee fitted on them x density
    monkeypatch.setattr(uncertain, "SWITCH", v["pairs"])
    asked, rest, x, sc = _next_round(store, s, model, matches, tmp_path_factory.mktemp("committee"))
    products = pair_products.read_store(store, s.annotate.brand_property)
    la, lb, ly, _ = job.crowd_labels(store, products.index(), {})
    xl = pair_model.features(model, products, la, lb)
    kept = uncertain.trained_with(model)  # the trees' settings the matcher kept in its file, not [matcher]'s
    assert kept.trees == 150 and s.matcher.trees != 150
    picked = uncertain.committee(xl, ly, x, kept, 30, np.random.default_rng(s.annotate.seed))
    assert asked == [rest[i] for i in picked] and set(picked) != set(per_cluster(sc, model.threshold, x, 30, s.annotate.seed))
    got = uncertain.spread(xl, ly, x, kept, np.random.default_rng(s.annotate.seed)) * uncertain.density(x)
    assert list(got[picked]) == sorted(got, reverse=True)[:30]


def _next_round(store, s, model, matches, out):
    """``tasks --uncertain 30`` of the pools' top 40: the pairs asked, the unjudged pool pairs in the order
    tasks reads them, their features and scores."""
    result = runner.invoke(app, ["--store", str(store.root), "annotate", "tasks", "--out", str(out), "--top", "40",
                                 "--uncertain", "30"])
    assert result.exit_code == 0, result.output
    asked = [json.loads(line)["data"] for line in (out / "tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    judged = set(zip(matches["query_id"], matches["candidate_id"]))
    judged |= {(c, q) for q, c in judged}  # a pair judged one way round is judged: one training pair
    assert len(asked) == 30 and not {(t["query_id"], t["candidate_id"]) for t in asked} & judged
    pools = store.read("pools", where="rank <= 40", columns=["query_id", "candidate_id", "rank"]).to_pylist()
    rest = [(r["query_id"], r["candidate_id"]) for r in sorted(pools, key=lambda r: (r["query_id"], r["rank"]))
            if (r["query_id"], r["candidate_id"]) not in judged]  # in the order tasks reads them
    products = pair_products.read_store(store, s.annotate.brand_property)
    idx = products.index()
    x = pair_model.features(model, products, np.array([idx[q] for q, _ in rest]), np.array([idx[c] for _, c in rest]))
    return [(t["query_id"], t["candidate_id"]) for t in asked], rest, x, model.proba(x)


def test_a_pair_judged_both_ways_is_one_training_pair_with_its_verdicts_combined(store):
    """``matches`` holds (a, b) and (b, a) when each is in the other's pool: one question judged twice by
    other workers. Training sees one pair, its verdicts' log-odds added: a sure verdict outweighs a
    less sure contrary one (the crowd wrong one way round), two unsure ones agreeing make a surer one."""
    import pyarrow as pa

    rows = [("p1", "p2", 0.05), ("p2", "p1", 1.0),  # wrong one way round: a match
            ("p1", "p3", 0.97), ("p3", "p1", 0.0),  # wrong the other way: no match
            ("p3", "p2", 0.7), ("p2", "p3", 0.7),  # two unsure yes: surer
            ("p4", "p1", 0.2), ("p2", "p4", None), ("p1", "gone", 0.9)]
    store.replace("matches", pa.table({
        "query_id": [r[0] for r in rows], "candidate_id": [r[1] for r in rows], "prob": [r[2] for r in rows],
        "accepted": [bool(r[2] and r[2] >= 0.5) for r in rows], "method": ["glad"] * len(rows),
        "n_judgements": pa.array([5] * len(rows), pa.int32()), "run_id": ["r"] * len(rows)}))
    skipped: dict = {}
    a, b, y, w = job.crowd_labels(store, {"p1": 0, "p2": 1, "p3": 2, "p4": 3}, skipped)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 2)]  # one row a pair, in product order
    assert y.tolist() == [True, False, False, True]
    assert w[0] > 0.99 and w[1] > 0.99 and w[2] == pytest.approx(0.8)
    assert w[3] == pytest.approx(0.49 / (0.49 + 0.09))  # 0.7 and 0.7: 0.845
    assert skipped == {"no probability (only uncertain judgements)": 1, "product no longer in the store": 1}


def test_compiled_char_ngrams_weigh_as_scikit_learns_tfidf():
    """The compiled char_wb n-grams (and the Python fallback past 65,534 distinct characters) give
    scikit-learn's TF-IDF rows: equal cosines, equal vocabulary."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from m5data.annotate.matcher.features_jit import tfidf_matrix
    from m5data.annotate.matcher.spaces import _char_counts, smooth_idf
    from m5data.annotate.matcher.text import clean

    rng = np.random.default_rng(0)
    pieces = ["索尼 WH-1000XM4", "a", "ab", "  spaced\tout\n text ", "", "24寸 显示器 lg 24mk430h", "１２３ＡＢＣ",
              "x y z", "café crème", "dvd-3800 bdci 黑色"]
    texts = [clean(" ".join(rng.choice(pieces, int(rng.integers(0, 4))))) for _ in range(300)] + pieces
    huge = "".join(chr(c) for c in range(0x20000, 0x20000 + 66_000))  # more characters than 16-bit symbols
    for docs in (texts, [*texts[:50], huge]):
        ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=False,
                              dtype=np.float32).fit(docs)
        want = ref.transform(docs)
        indptr, term, count, df, grams = _char_counts(docs)
        got = tfidf_matrix(indptr, term, count, smooth_idf(df, len(docs)))
        assert sorted(grams) == sorted(ref.vocabulary_)
        np.testing.assert_allclose((got @ got.T).toarray(), (want @ want.T).toarray(), atol=1e-5)


def test_model_keeps_its_text_weights_and_an_old_model_says_retrain(synth, tmp_path):
    """The model file holds the training products' TF-IDF document frequencies: features made with them
    on those products are the training features exactly. A model file of the old format (no weights)
    is refused in one line that says to retrain, and dedup then runs the rules and says so."""
    from m5data.annotate.dedup.job import dedup
    from m5data.annotate.matcher.features import FEATURES, PairFeatures

    store, pairs, report = synth
    model = load(report.path)
    products = pair_products.read_store(store, "品牌")
    assert model.weights.n_docs == len(products) and json.loads(report.path.read_text())["format"] == FORMAT
    idx = products.index()
    a, b = np.array([idx[p] for p, _, _ in pairs]), np.array([idx[q] for _, q, _ in pairs])
    fitted = PairFeatures(products).matrix(a, b)
    np.testing.assert_array_equal(PairFeatures(products, weights=model.weights).matrix(a, b), fitted)
    # ... and on fewer products (dedup's candidates) the text features do not move with the set
    part = pair_products.read_store(store, "品牌", only=products.ids[:40])
    few = PairFeatures(part, weights=model.weights).matrix(np.arange(0, 40, 2), np.arange(1, 40, 2))
    cols = [i for i, f in enumerate(FEATURES) if f.endswith("_cos") and "embed" not in f]
    np.testing.assert_allclose(few[:, cols], PairFeatures(products, weights=model.weights).matrix(
        np.arange(0, 40, 2), np.arange(1, 40, 2))[:, cols], atol=1e-6)

    doc = json.loads(report.path.read_text())
    doc["format"] = "m5data-matcher/1"
    del doc["weights"]
    copy = copy_store(store.root, tmp_path)
    old = copy / "derived" / "matcher" / "99991231T000000Z-old" / "model.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps(doc))
    with pytest.raises(MatcherError) as err:
        load(old)
    assert "retrain" in str(err.value) and "\n" not in str(err.value)
    ran = dedup(Store.open(copy), _settings(Store.open(copy)))
    assert ran.matcher.startswith("rules (") and "retrain" in ran.matcher and "matcher" not in ran.pairs
