"""Benchmark the whole dedup job on stores of growing size: products/s, us/product, peak RSS, growth.

    .venv/bin/python benchmarks/bench_dedup_scale.py [--sizes 10000,100000,1000000] [--root DIR]
    .venv/bin/python benchmarks/bench_dedup_scale.py --store PATH   # an existing store (a scale world)
    .venv/bin/python benchmarks/bench_dedup_scale.py --store PATH --matcher rules,learned   # both, one process each
    .venv/bin/python benchmarks/bench_dedup_scale.py --store S10K --store S100K --matcher rules,learned \
        --train-from-truth WORLD10K --score-against WORLD10K --score-against WORLD100K   # the scale-world model

``--train-from-truth WORLD`` first trains the scale-world matcher on the first ``--store`` (a copy of
that world's store: it writes the model there) with ``m5data annotate matcher train --labels``, from
:func:`truth_labels` (1,500 same-instance pairs and 3,200 others, seeded), and copies the model
(``derived/matcher/<version>/``) into every other ``--store``. ``--rounds N`` (with it) adds N - 1
active-learning rounds on that first store, as a user would run them with the crowd: learned dedup's
wide candidates scored by the full model (the cascade off), the ones it accepts and the ``--ask`` it
is least sure of (nearest its threshold in log-odds, as ``annotate tasks --uncertain`` picked before it
took the least sure of each cluster) labelled
from the same world's truth, added to the labels, trained again. ``--near-images N`` (400; 0 gives
the recipe before it) adds N non-matches to the first labels: listings of two instances of one brand
and sub-class with the nearest main images (:func:`image_negatives`). ``--score-against WORLD`` (once per
``--store``, in order) scores each run's groups against that world's truth (pair precision/recall).

For each size a synthetic store is built once under ``--root`` (kept for re-runs): products
(titles of Chinese characters), one main image per product (sha256, 64-bit pHash) and about four
spec rows (brand, model number, colour, material). ``--dup-rate`` of the products are listings of
an earlier product: same specs, the title with 0-3 characters changed (a quarter at the same
merchant with the very same title), the pHash 0-9 bits away (a tenth the same blob). A share
``--placeholder`` of products show one placeholder photo (pHashes within 2 bits of one value) and
carry one boilerplate title: the big buckets a real catalogue has.

Each size runs ``dedup()`` in a fresh process and prints the seconds
of each step, the title and image rules together (exact + phash + minhash) and the whole job, as
products/s and us/product, the peak RSS of the process tree while ``dedup()`` runs (it and any
workers: RSS summed, sampled by ``peak_rss.PeakRSS``), and the growth of us/product against the smallest size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

POOL = 3000  # CJK characters titles are drawn from


def build_store(path: Path, n: int, dup_rate: float, placeholder: float, seed: int = 0, batch: int = 200_000) -> None:
    """A store of ``n`` synthetic products with duplicates, written in batches (see the module doc)."""
    import numpy as np
    import pyarrow as pa

    from m5data.storage import Store

    rng = np.random.default_rng(seed)
    store = Store.init(path)
    # per product: its source (an earlier product it lists again, or itself)
    src = np.arange(n)
    dup = (rng.random(n) < dup_rate) & (np.arange(n) > 10)
    src[dup] = (rng.random(dup.sum()) * np.flatnonzero(dup)).astype(np.int64)
    while True:  # a copy of a copy lists the original
        nxt = src[src]
        if (nxt == src).all():
            break
        src = nxt
    merchant = rng.integers(0, max(10, n // 50), n)
    same_shop = dup & (rng.random(n) < 0.25)
    merchant[same_shop] = merchant[src[same_shop]]
    lengths = rng.integers(15, 46, n)
    lengths[dup] = lengths[src[dup]]
    base = rng.integers(0x4E00, 0x4E00 + POOL, (n, 45)).astype(np.uint32)
    base[dup] = base[src[dup]]
    edit = dup & ~same_shop
    for _ in range(3):
        rows = np.flatnonzero(edit & (rng.random(n) < 0.6))
        base[rows, (rng.random(len(rows)) * lengths[rows]).astype(np.int64)] = rng.integers(0x4E00, 0x4E00 + POOL, len(rows))
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    hashes[dup] = hashes[src[dup]]
    for _ in range(9):
        rows = np.flatnonzero(dup & (rng.random(n) < 0.5))
        hashes[rows] ^= np.uint64(1) << rng.integers(0, 64, len(rows)).astype(np.uint64)
    blob = np.arange(n)
    same_blob = dup & (rng.random(n) < 0.1)
    blob[same_blob] = blob[src[same_blob]]
    ph = rng.random(n) < placeholder
    hashes[ph] = np.uint64(0x9A3C5E7F1B2D4C6E) ^ (np.uint64(1) << rng.integers(0, 64, ph.sum()).astype(np.uint64)) \
        ^ (np.uint64(1) << rng.integers(0, 64, ph.sum()).astype(np.uint64))
    brands = rng.integers(0, 2000, n)
    brands[dup] = brands[src[dup]]
    colour = rng.integers(0, 12, n)
    colour[dup] = colour[src[dup]]
    material = rng.integers(0, 30, n)
    material[dup] = material[src[dup]]
    colours = ["黑色", "白色", "红色", "蓝色", "灰色", "绿色", "黄色", "粉色", "紫色", "银色", "金色", "棕色"]
    for s in range(0, n, batch):
        e = min(n, s + batch)
        ids = [f"syn:{i:09d}" for i in range(s, e)]
        titles = []
        for i in range(s, e):
            titles.append("正品包邮热卖新款限时特价" if ph[i] else base[i, :lengths[i]].tobytes().decode("utf-32-le"))
        store.write("products", pa.table({"product_id": ids, "platform": ["syn"] * (e - s),
                                          "source_id": [f"{i:09d}" for i in range(s, e)],
                                          "merchant_id": [f"shop{m}" for m in merchant[s:e]], "title": titles}))
        store.write("media", pa.table({
            "media_id": [f"m{i:09d}" for i in range(s, e)], "product_id": ids, "kind": ["image"] * (e - s),
            "role": ["main"] * (e - s), "position": pa.array([0] * (e - s), pa.int32()),
            "sha256": [f"{b:064x}" for b in blob[s:e]], "phash": [f"{h:016x}" for h in hashes[s:e].tolist()],
            "status": ["ok"] * (e - s)}))
        pid, pos, prop, val = [], [], [], []
        for i in range(s, e):
            for k, (p, v) in enumerate((("品牌", f"品牌{brands[i]}"), ("型号", f"M-{src[i]}"),
                                        ("颜色", colours[colour[i]]), ("材质", f"材质{material[i]}"))):
                pid.append(ids[i - s])
                pos.append(k)
                prop.append(p)
                val.append(v)
        store.write("specs", pa.table({"product_id": pid, "position": pa.array(pos, pa.int32()),
                                       "property": prop, "value": val}))


def truth_labels(world: Path, ids: set[str], positives: int = 1500, negatives: int = 3200, seed: int = 0) -> list[tuple]:
    """Labelled pairs ``(a, b, 1|0)`` drawn from a scale world's truth (``truth/instances.parquet``: the
    listings of one instance are one product), of products in ``ids``: ``positives`` pairs of two
    listings of one instance (distinct pairs; an instance of many listings may give several), ``negatives`` pairs of two instances' listings,
    half of them the most alike pairs (title character 3-gram Jaccard) of two instances of one brand and
    sub-class (variants: the kind the rules' wide candidates hold), half at random; seeded."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    inst = pq.read_table(world / "truth" / "instances.parquet", columns=["sub_class_id", "brand", "product_ids"]).to_pylist()
    lists = [([p for p in r["product_ids"] if p in ids], r["sub_class_id"], r["brand"]) for r in inst]
    lists = [x for x in lists if x[0]]
    multi = [ps for ps, _, _ in lists if len(ps) >= 2]
    out, same = [], set()
    possible = sum(len(ps) * (len(ps) - 1) // 2 for ps in multi)
    while len(same) < min(positives, possible):
        ps = multi[rng.integers(len(multi))]
        a, b = sorted(rng.choice(len(ps), 2, replace=False).tolist())
        if (ps[a], ps[b]) not in same:
            same.add((ps[a], ps[b]))
            out.append((ps[a], ps[b], 1))
    # the hard kind: listings of two instances of one brand and sub-class (variants) whose titles are
    # most alike (character 3-gram Jaccard), the kind the rules' wide candidates hold
    titles = dict(zip(*pq.read_table(world / "truth" / "products.parquet", columns=["product_id", "title"]).to_pydict().values()))
    grams = {p: {t[i:i + 3] for i in range(max(1, len(t) - 2))} for p in ids if (t := titles.get(p) or "")}
    by_kind: dict[tuple, list[int]] = {}
    for k, (_, c, brand) in enumerate(lists):
        by_kind.setdefault((c, brand), []).append(k)
    near_pairs = []
    for pool in by_kind.values():
        members = [(p, k) for k in pool for p in lists[k][0] if p in grams]
        for x, (a, ka) in enumerate(members):
            for b, kb in members[x + 1:]:
                if ka != kb:
                    near_pairs.append((len(grams[a] & grams[b]) / len(grams[a] | grams[b]), rng.random(), a, b))
    near_pairs.sort(reverse=True)
    seen = set()
    for _, _, a, b in near_pairs[:negatives // 2]:
        seen.add((a, b))
        out.append((a, b, 0))
    while len(seen) < negatives:  # the rest at random
        i, j = rng.choice(len(lists), 2, replace=False).tolist()
        a, b = lists[i][0][rng.integers(len(lists[i][0]))], lists[j][0][rng.integers(len(lists[j][0]))]
        if (a, b) not in seen and (b, a) not in seen:
            seen.add((a, b))
            out.append((a, b, 0))
    return out


def image_negatives(world: Path, store_path: Path, labelled: set, n: int) -> list[tuple]:
    """``n`` more non-matches of the kind the first labels lack: listings of two instances of one brand
    and sub-class whose main images are the nearest (pHash bits, from the store's media), nearest first,
    pairs already ``labelled`` left out. (The scale world's variants share near photos: the 10k labels'
    matches are all within 12 bits, their other pairs all 18 or more, and the model learnt that line.)"""
    import numpy as np
    import pyarrow.parquet as pq

    from m5data.storage import Store

    media = Store.open(store_path).read("media", columns=["product_id", "role", "position", "phash"]).to_pylist()
    phash = {}
    for r in sorted(media, key=lambda r: (r["role"] != "main", r["position"] or 0)):
        if r["phash"] and r["product_id"] not in phash:
            phash[r["product_id"]] = int(r["phash"], 16)
    inst = pq.read_table(world / "truth" / "instances.parquet", columns=["sub_class_id", "brand", "product_ids"]).to_pylist()
    by_kind: dict[tuple, list[tuple[str, int]]] = {}
    for k, r in enumerate(inst):
        by_kind.setdefault((r["sub_class_id"], r["brand"]), []).extend((p, k) for p in r["product_ids"] if p in phash)
    near = []
    for members in by_kind.values():
        for x, (a, ka) in enumerate(members):
            for b, kb in members[x + 1:]:
                if ka != kb and (a, b) not in labelled and (b, a) not in labelled:
                    near.append((bin(phash[a] ^ phash[b]).count("1"), a, b))
    near.sort()
    out = [(a, b, 0) for _, a, b in near[:n]]
    bits = np.array([d for d, _, _ in near[:n]])
    if len(bits):
        print(f"  {len(out):,} near-image non-matches of {len(near):,} two-instance pairs of one brand and sub-class: "
              f"pHash bits {bits.min()}-{bits.max()} (median {np.median(bits):.0f})", flush=True)
    return out


def fit(store_path: Path, labels_path: Path, rows: list[tuple]) -> str:
    """Write ``rows`` as ``labels_path`` and train the matcher on ``store_path`` with them (the CLI's
    ``annotate matcher train --labels``); the new model's version."""
    import csv

    with open(labels_path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("a", "b", "label"), *rows])
    out = subprocess.run([sys.executable, "-m", "m5data", "--store", str(store_path), "annotate", "matcher", "train",
                          "--labels", str(labels_path)], capture_output=True, text=True)
    print(out.stdout[-3000:])
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return sorted(p.name for p in (store_path / "derived" / "matcher").iterdir())[-1]


def wide_scores(store_path: Path) -> tuple[list[tuple], float]:
    """Every wide candidate learned dedup leaves open on ``store_path`` (the rules' pairs and groups
    aside), scored by the full model with the cascade off: ``[(a, b, score)]`` and the model's
    threshold (a child process: ``--child-wide``)."""
    out = subprocess.run([sys.executable, __file__, "--child-wide", str(store_path)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return [tuple(x) for x in r["pairs"]], r["threshold"]


def child_wide(path: str) -> None:
    """Learned dedup on ``path`` with the matcher's cascade off; print one JSON line of every scored
    candidate ``(a, b, score)`` (product ids) and the threshold."""
    from m5data.annotate.dedup import matcher_pairs
    from m5data.annotate.dedup.job import dedup
    from m5data.config import load
    from m5data.storage import Store

    got, choose, scorer = {}, matcher_pairs.choose, matcher_pairs.score_pairs

    def no_cascade(store, settings):
        learned = choose(store, settings)
        if learned.model is not None:
            learned.model.cascade = None
            got["threshold"] = learned.model.threshold
        return learned

    def keep(store, a, model, ids, left, right, known):
        s = scorer(store, a, model, ids, left, right, known)
        got["pairs"] = [(ids[int(x)].as_py(), ids[int(y)].as_py(), float(v)) for x, y, v in zip(left, right, s)]
        return s

    matcher_pairs.choose, matcher_pairs.score_pairs = no_cascade, keep
    dedup(Store.open(path), load(None, {"store.path": path, "dedup.matcher": "learned"}, environ={}), full=True)
    print(json.dumps({"threshold": got["threshold"], "pairs": got.get("pairs", [])}))


def ask_crowd(scored: list[tuple], threshold: float, labelled: set, world: Path, ask: int) -> list[tuple]:
    """One active-learning round, the crowd answering from ``world``'s truth: of the scored candidate
    pairs not yet ``labelled``, every one the model accepts and the ``ask`` it is least sure of
    (nearest its threshold in log-odds, as ``annotate tasks --uncertain`` picked before it took the least
    sure of each cluster), labelled 1 when both
    are listings of one instance."""
    import numpy as np
    import pyarrow.parquet as pq

    from m5data.annotate.crowd.uncertain import _logit

    inst = dict(zip(*pq.read_table(world / "truth" / "products.parquet", columns=["product_id", "instance_id"])
                    .to_pydict().values()))
    fresh = [(a, b, s) for a, b, s in scored if (a, b) not in labelled and (b, a) not in labelled]
    s = np.array([x[2] for x in fresh])
    accepted = set(np.flatnonzero(s >= threshold).tolist())
    near = [i for i in np.argsort(np.abs(_logit(s) - _logit(np.array([threshold]))), kind="stable").tolist()
            if i not in accepted][:ask]
    out = [(fresh[i][0], fresh[i][1], int(inst[fresh[i][0]] == inst[fresh[i][1]])) for i in sorted(accepted | set(near))]
    wrong = sum(1 for i in accepted if inst[fresh[i][0]] != inst[fresh[i][1]])
    print(f"  asked {len(out):,} pairs of {len(fresh):,} scored: {len(accepted):,} accepted ({wrong:,} of them two "
          f"instances), {len(near):,} least sure; {sum(x[2] for x in out):,} matches, "
          f"{sum(1 - x[2] for x in out):,} non-matches", flush=True)
    return out


def train_from_truth(world: Path, store_path: Path, others: list[Path], rounds: int = 1, ask: int = 500,
                     near_images: int = 0) -> str:
    """Train the scale-world matcher on ``store_path`` from :func:`truth_labels` of ``world``, then
    ``rounds - 1`` active-learning rounds (:func:`ask_crowd` on :func:`wide_scores`, the answers added
    to the labels, trained again); ``near_images``: that many :func:`image_negatives` added to the first
    labels; copy the last model into ``others``; its version."""
    import shutil

    from m5data.storage import Store

    ids = set(Store.open(store_path).read("products", columns=["product_id"]).column(0).to_pylist())
    rows = truth_labels(world, ids)
    if near_images:
        rows += image_negatives(world, store_path, {(a, b) for a, b, _ in rows}, near_images)
    version = fit(store_path, store_path / "truth-labels.csv", rows)
    for r in range(2, rounds + 1):
        scored, threshold = wide_scores(store_path)
        print(f"round {r}: model {version}, threshold {threshold:.4f}", flush=True)
        rows += ask_crowd(scored, threshold, {(a, b) for a, b, _ in rows}, world, ask)
        version = fit(store_path, store_path / f"truth-labels-{r}.csv", rows)
    for other in others:
        dest = other / "derived" / "matcher" / version
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(store_path / "derived" / "matcher" / version, dest)
    return version


def child(path: str, matcher: str = "learned", truth: str | None = None) -> None:
    """Run dedup on the store at ``path``; print one JSON line of step times and the tree's peak RSS."""
    from peak_rss import PeakRSS

    from m5data.annotate.dedup import near_jit, spec_jit
    from m5data.annotate.dedup.job import dedup
    from m5data.annotate.matcher import features_jit
    from m5data.config import load
    from m5data.storage import Store

    near_jit.warm_up()  # compiled (or loaded from numba's cache) before the clock starts
    spec_jit.warm_up()
    features_jit.warm_up()
    cpu0 = time.process_time()
    store = Store.open(path)
    settings = load(None, {"store.path": path, "dedup.matcher": matcher}, environ={})
    t0 = time.perf_counter()
    with PeakRSS(tree=True) as mem:
        report = dedup(store, settings, full=True)  # every product grouped, whatever ran before
    print(json.dumps({"n": report.n_products, "matcher": report.matcher, "times": dict(report.seconds), "cpu_times": dict(report.cpu_seconds), "total": time.perf_counter() - t0,
                      "cpu": time.process_time() - cpu0, "groups": report.n_groups, "pairs": dict(report.pairs),
                      "candidates": dict(report.candidates), "vetoed": dict(report.vetoed),
                      "capped": dict(report.capped),
                      "tree_peak_mib": mem.peak / 2**20,
                      "score": score(store, truth) if truth else None}))


def score(store, world: str) -> dict:
    """Pair precision and recall of the store's dedup groups against a scale world's truth."""
    from m5data.annotate.dedup.score import score_groups
    from m5data.storage.truth_files import truth_rows

    s = score_groups(store.read("dedup", columns=["product_id", "group_id"]).to_pylist(),
                     truth_rows(Path(world) / "truth", "products.parquet"))
    return {"precision": s.precision, "recall": s.recall, "predicted": s.predicted_pairs, "true": s.true_pairs,
            "correct": s.correct_pairs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--root", type=Path, default=Path("/work/scratch/dedup/bench"))
    parser.add_argument("--store", action="append", default=[], help="an existing store instead (repeatable)")
    parser.add_argument("--dup-rate", type=float, default=0.1)
    parser.add_argument("--placeholder", type=float, default=0.01)
    parser.add_argument("--matcher", default="learned", help="dedup.matcher: rules, learned or both (comma)")
    parser.add_argument("--train-from-truth", type=Path, help="a scale world: train its matcher on the first --store")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --train-from-truth: labelling rounds (2+: active learning on the first --store)")
    parser.add_argument("--ask", type=int, default=500,
                        help="per active-learning round: the least-sure pairs asked besides the accepted ones")
    parser.add_argument("--near-images", type=int, default=400,
                        help="with --train-from-truth: this many more non-matches (400; 0: the h41 recipe), two instances of one brand and "
                             "sub-class with the nearest main images")
    parser.add_argument("--score-against", type=Path, action="append", default=[],
                        help="a scale world per --store (in order): pair precision/recall against its truth")
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-wide", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_wide:
        child_wide(args.child_wide)
        return 0
    if args.child:
        child(args.child, args.matcher, args.truth)
        return 0
    stores = [Path(s) for s in args.store]
    if not stores:
        for n in (int(x) for x in args.sizes.split(",")):
            path = args.root / f"syn-{n}"
            if not (path / "tables").is_dir():
                t0 = time.perf_counter()
                build_store(path, n, args.dup_rate, args.placeholder)
                print(f"built {path} in {time.perf_counter() - t0:.1f} s", flush=True)
            stores.append(path)
    if args.score_against and len(args.score_against) != len(stores):
        parser.error("--score-against: one world per --store")
    if args.train_from_truth:
        t0 = time.perf_counter()
        version = train_from_truth(args.train_from_truth, stores[0], stores[1:], args.rounds, args.ask,
                                   args.near_images)
        print(f"trained matcher {version} on {stores[0]} from {args.train_from_truth}'s truth in "
              f"{time.perf_counter() - t0:.1f} s; copied into {len(stores) - 1} other stores", flush=True)
    worlds = dict(zip(stores, args.score_against))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = []
    for path, matcher in ((p, m) for p in stores for m in args.matcher.split(",")):
        truth = ["--truth", str(worlds[path])] if path in worlds else []
        out = subprocess.run([sys.executable, __file__, "--child", str(path), "--matcher", matcher, *truth],
                             capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        t, c = r["times"], r["cpu_times"]
        rules = t["exact"] + t["phash"] + t["minhash"]
        c_rules = c["exact"] + c["phash"] + c["minhash"]
        print(f"\n{path}: {r['n']:,} products, matcher {r['matcher']}, load average {os.getloadavg()[0]:.1f}")
        print("  steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
        print("  steps, CPU (s): " + ", ".join(f"{k} {v:.2f}" for k, v in c.items()))
        print(f"  title + image rules (exact, phash, minhash): {rules:7.2f} s  {r['n'] / rules:10,.0f} products/s  "
              f"{rules / r['n'] * 1e6:7.1f} us/product")
        print(f"  whole job:                                   {r['total']:7.2f} s  {r['n'] / r['total']:10,.0f} products/s  "
              f"{r['total'] / r['n'] * 1e6:7.1f} us/product  (CPU {r['cpu']:.1f} s)")
        print(f"  by CPU time (what the job used, the wait for a core left out): title + image rules {c_rules:.2f} s "
              f"{r['n'] / c_rules:10,.0f} products/s {c_rules / r['n'] * 1e6:6.1f} us/product; whole job {r['cpu']:.2f} s "
              f"{r['n'] / r['cpu']:10,.0f} products/s {r['cpu'] / r['n'] * 1e6:6.1f} us/product")
        print(f"  tree peak RSS {r['tree_peak_mib']:,.0f} MiB; groups of 2+ {r['groups']:,}; pairs {r['pairs']}; "
              f"candidates {r['candidates']}; vetoed {r['vetoed']}; capped {r['capped']}")
        if r.get("score"):
            sc = r["score"]
            print(f"  against the truth: precision {sc['precision']:.4f}, recall {sc['recall']:.4f} "
                  f"(predicted {sc['predicted']:,}, true {sc['true']:,}, correct {sc['correct']:,})")
    if len(results) > 1:
        def per(r, clock):
            rules = sum(r[clock][k] for k in ("exact", "phash", "minhash")) / r["n"]
            return rules, (r["total"] if clock == "times" else r["cpu"]) / r["n"]

        print("\ngrowth of us/product against the smallest size (wall; CPU):")
        for r in results:
            (w_rules, w_all), (c_rules, c_all) = per(r, "times"), per(r, "cpu_times")
            (w0_rules, w0_all), (c0_rules, c0_all) = per(results[0], "times"), per(results[0], "cpu_times")
            print(f"  {r['n']:>10,}: title + image rules {w_rules / w0_rules:5.2f}x; {c_rules / c0_rules:5.2f}x   "
                  f"whole job {w_all / w0_all:5.2f}x; {c_all / c0_all:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
