"""Benchmark the learned same-product matcher on the three real ER-Magellan product benchmarks.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_matcher.py [--only Abt-Buy] [--limit N] [--logreg] [--chinese]
        [--seeds N] [--al-only] [--al-start N] [--al-step N] [--al-top N] [--al-how H ...] [--al-auc A ...]
        [--al-first N] [--al-json FILE] [--al-switch N]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_matcher.py --al-print FILE ... [--al-top N]

For each of Amazon-Google, Walmart-Amazon and Abt-Buy (``../shared/realdata/matching/``): every
record becomes a product of a fresh store (tests/support/er_magellan.py), the train split's labels
are written as an ``a,b,label`` file and the matcher is trained from it exactly as
``m5data annotate matcher train --labels`` does (features, 5-fold cross-validation, the saved
precision-target threshold, the final fit); the valid split's scores pick the F1-best threshold;
the test split is scored once. Prints test F1, precision and recall at that threshold (and at the
model's own precision-target threshold), training seconds, seconds to score the test split (the
store's representations built included), pairs scored per second in bulk (100,000 random pairs of
the store's products once its representations and each product's nearest neighbours are built, and
that setup's seconds), the load average, and the targets (F1 >= 0.70 / 0.80 / 0.85, training under 5 minutes). ``--logreg`` adds a
logistic regression on the same features (NaN as 0 plus a missing flag), the model the trees were
chosen against.

Then the Chinese set (``--chinese`` alone, or after the three unless ``--only`` names some): the
MEP-3M sample's 1,000 records as products of a fresh store (tests/support/mep3m_store.py) and its
labelled pairs (benchmarks/data/mep3m_pairs/pairs.csv, ``--pairs``) in 5 folds with no record on both
sides (``mep3m_store.folds``: records grouped by same-brand pairs and identical titles; a pair of two
brands dealt to two folds is trained on, never held out). Each fold's training
labels are written as an ``a,b,label`` file and trained through ``train --labels``'s code, the held-out
fold scored as ``score --pairs`` scores; printed: pooled out-of-fold AUC and recall at precision 0.9,
the same of a character 3-shingle Jaccard of the titles, the learning curve (50 / 100 / 200 / 400
labels drawn from each fold's training part, ``--seeds`` draws, mean; recall at precision 0.9 pooled
over the folds, the target's, and each fold's own averaged beside it) and the active-learning rounds
(``--al-start`` random labels a fold, 50 by default, then rounds of ``--al-step`` up to ``--al-top``, each
``--al-how`` way: ``uncertain`` the pairs ``tasks --uncertain`` would pick among the rest of the training
part (``crowd.uncertain.per_cluster``), ``nearest`` the pairs nearest the threshold (its pick before),
``random`` random ones, and two trials: ``committee`` (``uncertain``'s pick below ``--al-switch`` labels, 60 by default, then the largest
spread of 5 bootstrap trees' P times the pair's density) and ``narrowed`` (``uncertain``'s pick among the
4 x N pairs nearest the threshold); the same start for each way of a draw; per way the AUC after each
round (each draw's printed as it ends), mean and spread over the ``--seeds`` draws (``--al-first``: the
first draw's number, to split a long run over processes), the area under that curve, the labels to each
``--al-auc``, and the draws whose area beats random's and that reach each AUC with fewer labels).
``--al-json FILE`` keeps each way's per-draw AUCs, so that one way a run prints against the random
rounds an earlier run kept there; ``--al-print FILE ...`` runs nothing and prints the rounds such files
kept (two ways run side by side, each its own file), to ``--al-top`` labels. ``--al-only``: the rounds alone. The curve and
the rounds fit on the labelled pairs' features built once (they depend on the store, not on the
labels) with the same ``training.fit``. Targets: AUC >= 0.85 and recall >= 0.40 at precision 0.9
with 400 labels. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the ER-Magellan loader

TARGETS = {"Amazon-Google": 0.70, "Walmart-Amazon": 0.80, "Abt-Buy": 0.85}
CN_TARGETS = {"auc": 0.85, "recall_at_p90": 0.40}  # with CN_TARGET_LABELS training labels
CN_TARGET_LABELS = 400
CN_SIZES = (50, 100, 200, 400)
CN_FOLDS, AL_START, AL_STEP = 5, 50, 50
AL_TARGETS = (0.85, 0.88)  # the AUCs the rounds count labels to
TRAIN_LIMIT_S = 300.0
DITTO = {"Amazon-Google": 75.58, "Abt-Buy": 89.33}


def prf(scores, y, threshold):
    acc = scores >= threshold
    tp = int((acc & y).sum())
    p, r = tp / max(int(acc.sum()), 1), tp / max(int(y.sum()), 1)
    return 2 * p * r / max(p + r, 1e-12), p, r


def best_threshold(scores, y):
    """The valid split's F1-best threshold."""
    import numpy as np

    cands = np.unique(scores)
    f = [prf(scores, y, t)[0] for t in cands]
    return float(cands[int(np.argmax(f))])


def logreg(products, pairs, text_model: str):
    """Test F1 of a logistic regression on the same features (valid-chosen threshold)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from m5data.annotate.matcher.features import PairFeatures

    feats = PairFeatures(products, text_model)
    idx = products.index()
    xy = {}
    for split, rows in pairs.items():
        x = feats.matrix(np.array([idx[a] for a, _, _ in rows]), np.array([idx[b] for _, b, _ in rows]))
        xy[split] = (np.c_[np.nan_to_num(x), np.isnan(x)], np.array([y for _, _, y in rows], bool))
    m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(*xy["train"])
    t = best_threshold(m.predict_proba(xy["valid"][0])[:, 1], xy["valid"][1])
    return prf(m.predict_proba(xy["test"][0])[:, 1], xy["test"][1], t)[0]


BULK = 100_000  # random pairs scored for the throughput figure


def bulk_rate(model, products, text_model: str) -> tuple[float, float]:
    """Seconds to score :data:`BULK` seeded random pairs once the per-product representations and
    nearest neighbours exist, and seconds to build those."""
    import numpy as np

    from m5data.annotate.matcher.features import PairFeatures
    from m5data.annotate.matcher.model import columns

    t0 = time.perf_counter()
    feats = PairFeatures(products, text_model)
    feats.neighbours()  # per product, not per pair: counted in the setup
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(products), BULK), rng.integers(0, len(products), BULK)
    model.proba(feats.matrix(a, b)[:, columns(model)])
    return time.perf_counter() - t1, t1 - t0


def run_one(name: str, folder: Path, work: Path, limit: int | None, text_model: str, with_logreg: bool) -> dict:
    import numpy as np
    from support import er_magellan as er

    from m5data.annotate.matcher import job
    from m5data.annotate.matcher import model as pair_model
    from m5data.annotate.matcher import products as pair_products
    from m5data.config import load
    from m5data.storage import Store

    records, pairs = er.read(folder, limit)
    store = Store.init(work / name)
    er.write_store(store, records)
    s = load(None, {"store.path": str(store.root), "annotate.brand_property": er.BRAND_PROPERTY,
                    "annotate.text_model": text_model}, environ={})
    t0 = time.perf_counter()
    report = job.train(store, s, er.write_labels(work / f"{name}-train.csv", pairs["train"]))
    train_s = time.perf_counter() - t0
    products = pair_products.read_store(store, er.BRAND_PROPERTY)
    idx = products.index()
    scores, ys = {}, {}
    for split in ("valid", "test"):
        rows = pairs[split]
        t1 = time.perf_counter()
        scores[split] = pair_model.score(report.model, products, np.array([idx[a] for a, _, _ in rows]),
                                  np.array([idx[b] for _, b, _ in rows]), text_model)
        if split == "test":
            test_s = time.perf_counter() - t1
        ys[split] = np.array([y for _, _, y in rows], bool)
    bulk_s, setup_s = bulk_rate(report.model, products, text_model)
    t = best_threshold(scores["valid"], ys["valid"])
    f1, p, r = prf(scores["test"], ys["test"], t)
    f1m, pm, rm = prf(scores["test"], ys["test"], report.model.threshold)
    out = {"benchmark": name, "products": len(products), "train pairs": len(pairs["train"]), "f1": f1, "p": p, "r": r,
           "threshold": t, "f1_model": f1m, "p_model": pm, "r_model": rm, "train_s": train_s, "test_s": test_s,
           "pairs_per_s": BULK / bulk_s, "setup_s": setup_s,
           "cv_auc": report.model.validation["auc"], "features": len(report.model.features)}
    if with_logreg:
        out["logreg_f1"] = logreg(products, pairs, text_model)
    c = report.model.cascade
    if c is not None:  # dedup's cheap first test on the test split: a pair failing it would not be scored
        from m5data.annotate.matcher import cascade
        from m5data.annotate.matcher.model import cascade_features

        rows = pairs["test"]
        inp, titles = cascade.read_inputs(store, s, np.array([x for a, b, _ in rows for x in (a, b)]))
        ok = c.passes(cascade_features(inp, titles, cascade.rows_of(inp, [a for a, _, _ in rows]),
                                    cascade.rows_of(inp, [b for _, b, _ in rows])))
        out["cascade"] = {**c.validation, "test_dropped": int((~ok).sum()), "test_pairs": len(rows),
                          "test_matches_dropped": int((~ok & ys["test"]).sum()),
                          "f1_through": prf(np.where(ok, scores["test"], 0.0), ys["test"], t)[0]}
    return out


def ranked(scores, y) -> tuple[float, float]:
    """AUC and the best recall among thresholds of precision >= 0.9 (0: none reaches it)."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    pr, rc, _ = precision_recall_curve(y, scores)
    return float(roc_auc_score(y, scores)), float(np.max(rc[pr >= 0.9], initial=0.0))


def shingle_jaccard(ta: list[str], tb: list[str], k: int = 3):
    """Jaccard of the cleaned titles' character ``k``-shingles (dedup's title test, exact)."""
    import numpy as np

    from m5data.annotate.matcher.text import clean

    def sh(t):
        t = clean(t)
        return {t[i:i + k] for i in range(max(len(t) - k + 1, 1))}

    return np.array([len(x & y) / max(len(x | y), 1) for x, y in ((sh(a), sh(b)) for a, b in zip(ta, tb))])


@dataclass
class ChineseSet:
    """The labelled pairs' features (built once: they depend on the store, not on the labels), labels,
    groups (the first product, as training groups them) and folds, for the curve and the rounds."""

    x: object
    y: object
    groups: object
    folds: list
    tested: object
    settings: object

    def trained(self, rows):
        """The model ``training.fit`` makes of these labelled pairs, and its feature columns."""
        import numpy as np

        from m5data.annotate.matcher.model import columns
        from m5data.annotate.matcher.training import fit

        m = fit(self.x[rows], self.y[rows], np.ones(len(rows)), self.groups[rows], self.settings, "bench").model
        return m, columns(m)

    def drawn(self, rng, rows, n):
        """``n`` of ``rows`` at random, with at least 2 of each class (the folds inside training need them)."""
        while True:
            pick = rng.choice(rows, min(n, len(rows)), replace=False)
            if min(self.y[pick].sum(), (~self.y[pick]).sum()) >= 2:
                return pick


@dataclass
class ALRounds:
    """The active-learning rounds: ``start`` random labels a fold, ``step`` more a round up to ``top``, the
    pairs picked each of the ``how`` ways; the labels counted to each AUC of ``targets``."""

    start: int
    step: int
    top: int
    how: tuple
    targets: tuple
    first: int = 0  # the first draw (a long run split over processes)
    switch: int = 60  # `committee`: the labels from which it leaves `uncertain`'s pick for the committee's


def random_pairs(d: ChineseSet, m, cols, rest, have, rng, n):
    return rng.choice(rest, min(n, len(rest)), replace=False)


def nearest_pairs(d: ChineseSet, m, cols, rest, have, rng, n):
    from m5data.annotate.crowd.uncertain import nearest_threshold

    return rest[nearest_threshold(m.proba(d.x[rest][:, cols]), m.threshold, n)]


def uncertain_pairs(d: ChineseSet, m, cols, rest, have, rng, n):
    from m5data.annotate.crowd.uncertain import per_cluster

    x = d.x[rest][:, cols]
    return rest[per_cluster(m.proba(x), m.threshold, x, n, int(rng.integers(1 << 31)))]


KMEANS_UNTIL, NARROW = 60, 4  # the committee way's default switch; the narrowed trial's pool (x n)


def committee_pairs(d: ChineseSet, m, cols, rest, have, rng, n, switch: int = KMEANS_UNTIL):
    """``uncertain``'s pick while fewer than ``switch`` labels, then ``crowd.uncertain.committee``'s (what
    ``tasks --uncertain`` does with ``switch`` at its ``SWITCH``): the largest spread of the P of its trees
    fitted on bootstrap draws of the labels, times the pair's density (its standardised features' mean
    cosine to the rest)."""
    from m5data.annotate.crowd.uncertain import committee

    if len(have) < switch:
        return uncertain_pairs(d, m, cols, rest, have, rng, n)
    return rest[committee(d.x[have][:, cols], d.y[have], d.x[rest][:, cols], d.settings.matcher, n, rng)]


def narrowed_pairs(d: ChineseSet, m, cols, rest, have, rng, n):
    """Trial: ``uncertain``'s pick among the NARROW x n pairs nearest the threshold (ties drawn at random)."""
    from m5data.annotate.crowd.uncertain import nearest_threshold, per_cluster

    x = d.x[rest][:, cols]
    s = m.proba(x)
    mix = rng.permutation(len(rest))
    near = mix[nearest_threshold(s[mix], m.threshold, NARROW * n)]
    return rest[near[per_cluster(s[near], m.threshold, x[near], n, int(rng.integers(1 << 31)))]]


# a round's pairs, from (set, model, its columns, unlabelled rows, labelled rows, rng, n): `tasks --uncertain`'s
# (the least sure of each k-means cluster), the least sure of all (`tasks --uncertain` before), random ones;
# trials: k-means then a committee weighted by density, `uncertain` among the least sure
CHOOSERS = {"uncertain": uncertain_pairs, "nearest": nearest_pairs, "random": random_pairs,
            "committee": committee_pairs, "narrowed": narrowed_pairs}


def active_learning(d: ChineseSet, choose, seeds: int, steps: list[int], first: int = 0):
    """Held-out AUC (pooled over the folds) after each round, one row a draw (draws ``first`` to
    ``first + seeds - 1``; a draw's rounds do not depend on the others, nor on the last step): each fold starts from
    ``steps[0]`` random labels of its training part (the same for every chooser of a draw) and adds the
    pairs ``choose`` picks among the rest of it up to each of ``steps``."""
    import numpy as np

    auc = np.zeros((seeds, len(steps)))
    for row, seed in enumerate(range(first, first + seeds)):
        sc = np.zeros((len(steps), len(d.y)))
        for k, (tr, te) in enumerate(d.folds):
            rng = np.random.default_rng(1000 * seed + k)
            have = d.drawn(rng, tr, steps[0])
            for j in range(len(steps)):
                m, cols = d.trained(have)
                sc[j, te] = m.proba(d.x[te][:, cols])
                if j + 1 < len(steps):
                    rest = np.setdiff1d(tr, have)
                    have = np.r_[have, choose(d, m, cols, rest, have, rng, steps[j + 1] - len(have))]
        auc[row] = [ranked(sc[j, d.tested], d.y[d.tested])[0] for j in range(len(steps))]
        print(f"    draw {seed}: " + " ".join(f"{a:.4f}" for a in auc[row]), flush=True)  # a long run's progress
    return auc


def run_chinese(pairs_path: Path, work: Path, seeds: int, al: ALRounds, al_only: bool = False) -> dict:
    """The Chinese set: 5-fold figures through the verbs' code, the Jaccard baseline, the learning curve
    and the active-learning rounds (see the module's docstring); ``al_only``: the rounds alone."""
    import numpy as np
    from support import er_magellan as er
    from support import mep3m_store as mp
    from support.mep3m_pairs import records

    from m5data.annotate.matcher import job
    from m5data.annotate.matcher import model as pair_model
    from m5data.annotate.matcher import products as pair_products
    from m5data.annotate.matcher.features import PairFeatures
    from m5data.config import load
    from m5data.storage import Store

    store = Store.init(work / "mep3m")
    mp.write_store(store, records())
    s = load(None, {"store.path": str(store.root)}, environ={})
    pairs = mp.read_pairs(pairs_path)
    products = pair_products.read_store(store, s.annotate.brand_property)
    idx = products.index()
    ia, ib = np.array([idx[p[0]] for p in pairs]), np.array([idx[p[1]] for p in pairs])
    y = np.array([p[2] for p in pairs], bool)
    folds = [(np.array(tr), np.array(te)) for tr, te in mp.folds(pairs, dict(zip(products.ids, products.title)), CN_FOLDS)]
    tested = np.sort(np.concatenate([te for _, te in folds]))  # the pairs some fold holds out
    out = {"pairs": len(y), "matches": int(y.sum()), "tested": len(tested), "tested_matches": int(y[tested].sum()),
           "train_labels": [len(tr) for tr, _ in folds]}
    x = PairFeatures(products).matrix(ia, ib)  # the features train and score compute: the store's, not the labels'
    d = ChineseSet(x=x, y=y, groups=ia, folds=folds, tested=tested, settings=s)
    if not al_only:
        oof, train_s = np.zeros(len(y)), 0.0
        for k, (tr, te) in enumerate(folds):  # exactly `train --labels` and `score --pairs`
            labels = er.write_labels(work / f"mep3m-fold{k}.csv", [pairs[i][:3] for i in tr])
            t0 = time.perf_counter()
            model = job.train(store, s, labels, products=products).model
            train_s += time.perf_counter() - t0
            oof[te] = pair_model.score(model, products, ia[te], ib[te])
        jac = shingle_jaccard([products.title[i] for i in ia], [products.title[i] for i in ib])
        out.update(full=ranked(oof[tested], y[tested]), train_s=train_s, jaccard=ranked(jac[tested], y[tested]))
        curve = {}
        for n in CN_SIZES:
            got = []
            for seed in range(seeds):
                sc = np.zeros(len(y))
                for k, (tr, te) in enumerate(folds):
                    m, cols = d.trained(d.drawn(np.random.default_rng(1000 * seed + k), tr, n))
                    sc[te] = m.proba(x[te][:, cols])
                # pooled: one precision curve over the folds' scores (five models' scores on one scale: a
                # negative one fold's model scores 0.999 is above every other fold's matches); per fold: each
                # model's own curve, the recalls averaged (~90 pairs a fold: one negative on top can make it 0)
                got.append((*ranked(sc[tested], y[tested]), np.mean([ranked(sc[te], y[te])[1] for _, te in folds])))
            curve[n] = (min(n, min(len(tr) for tr, _ in folds)), *np.mean(got, axis=0))
        out["curve"] = curve
    steps = list(range(al.start, min(al.top, min(len(tr) for tr, _ in folds)) + 1, al.step))
    out["al"] = {"steps": steps, "first": al.first, "targets": al.targets, "auc": {}}
    for how in al.how:
        print(f"  {how} rounds, the AUC of each:", flush=True)
        choose = partial(committee_pairs, switch=al.switch) if how == "committee" else CHOOSERS[how]
        out["al"]["auc"][how] = active_learning(d, choose, seeds, steps, al.first)
    return out


def kept_rounds(al: dict, path: Path) -> None:
    """Merge the rounds into ``path`` (JSON: steps, first draw, targets, each way's AUC a draw a row): this
    run's ways replace the file's, the file's other ways (run earlier on the same steps and draws) join
    ``al``, so one way a run still prints against random."""
    import json

    import numpy as np

    old = json.loads(path.read_text()) if path.is_file() else {}
    if (old.get("steps"), old.get("first", 0)) == (al["steps"], al.get("first", 0)):
        for how, a in old["auc"].items():
            if how not in al["auc"] and len(a) == len(next(iter(al["auc"].values()))):
                al["auc"][how] = np.array(a)
    path.write_text(json.dumps({"steps": al["steps"], "first": al.get("first", 0), "targets": list(al["targets"]),
                                "auc": {h: np.asarray(a).tolist() for h, a in al["auc"].items()}}))


def printed_kept(paths: list[Path], top: int) -> None:
    """Print the rounds kept in ``paths`` (``--al-json`` files of the same steps and draws; a way in several:
    the last file's) to ``top`` labels, each way against random: two ways run side by side, each its own file."""
    import json

    import numpy as np

    kept = [json.loads(Path(p).read_text()) for p in paths]
    if len({(json.dumps(k["steps"]), k.get("first", 0)) for k in kept}) > 1:
        raise SystemExit("--al-print: the files' rounds differ (steps or first draw)")
    keep = [j for j, n in enumerate(kept[0]["steps"]) if n <= top]
    al = {"steps": [kept[0]["steps"][j] for j in keep], "first": kept[0].get("first", 0),
          "targets": kept[0]["targets"], "auc": {}}
    for k in kept:
        al["auc"].update({h: np.asarray(a)[:, keep] for h, a in k["auc"].items()})
    print_rounds(al)


def print_rounds(al: dict) -> None:
    """The active-learning lines: per chooser, the AUC after each round (mean and standard deviation over
    the draws), the area under that curve (mean AUC over the labels), the labels to each target AUC (of
    the mean curve, and of each draw), and against random the draws whose area is larger and those that
    reach each target with fewer labels."""
    import numpy as np

    steps = al["steps"]

    def area(a):  # the mean AUC over the labels from the first round to the last, one a draw
        return np.trapezoid(a, steps, axis=-1) / max(steps[-1] - steps[0], 1)

    def first(curve, t):  # the round a curve first reaches t (len(steps): never)
        hit = np.flatnonzero(curve >= t)
        return int(hit[0]) if len(hit) else len(steps)

    def labels_to(curve, t):
        return str(steps[first(curve, t)]) if first(curve, t) < len(steps) else "-"

    base = al["auc"].get("random")
    print(f"  active learning (start {steps[0]} random labels a fold, rounds of {steps[1] - steps[0] if len(steps) > 1 else 0} "
          f"to {steps[-1]}; pooled held-out AUC, mean +- sd of {len(base if base is not None else next(iter(al['auc'].values())))} draws):")
    for how, a in al["auc"].items():
        sd = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(len(steps))
        ar = area(a)
        line = (f"    {how:10s}: " + " ".join(f"{n}:{m:.3f}+-{e:.3f}" for n, m, e in zip(steps, a.mean(axis=0), sd))
                + f"; area {ar.mean():.4f}+-{ar.std(ddof=1) if len(a) > 1 else 0:.4f}")
        for t in al["targets"]:
            line += f"; to AUC {t:.2f}: {labels_to(a.mean(axis=0), t)} (draws {'/'.join(labels_to(r, t) for r in a)})"
        if base is not None and how != "random":
            line += f"; area above random's in {int((ar > area(base)).sum())} of {len(a)} draws"
            for t in al["targets"]:
                r = np.array([first(c, t) for c in a]) - np.array([first(c, t) for c in base])
                line += f"; to {t:.2f} in fewer labels than random in {int((r < 0).sum())} of {len(a)} draws ({int((r == 0).sum())} as many)"
        print(line)


def print_chinese(r: dict) -> bool:
    """The Chinese section's lines; whether its targets are met (the rounds alone: True)."""
    import numpy as np

    print(f"\nChinese set (MEP-3M sample): {r['pairs']} labelled pairs ({r['matches']} matches); 5 folds with no record on "
          f"both sides hold out {r['tested']} ({r['tested_matches']} matches) and train on "
          f"{'/'.join(map(str, r['train_labels']))}")
    if "full" not in r:
        print_rounds(r["al"])
        return True
    auc, rec = r["full"]
    print(f"  matcher (train --labels / score --pairs, pooled out-of-fold): AUC {auc:.3f}, recall at precision 0.9 "
          f"{rec:.3f}; training {r['train_s'] / CN_FOLDS:.1f} s a fold")
    print(f"  title 3-shingle Jaccard (the held-out pairs): AUC {r['jaccard'][0]:.3f}, recall at precision 0.9 {r['jaccard'][1]:.3f}")
    print("  learning curve (labels drawn from each fold's training part; mean of the seeds; R@P0.9 pooled over the "
          "folds, then each fold's own averaged): "
          + "; ".join(f"{n} -> {used} labels: AUC {a:.3f}, R@P0.9 {rc:.3f} (per fold {pf:.3f})"
                      for n, (used, a, rc, pf) in r["curve"].items()))
    print_rounds(r["al"])
    used, a, rc, _ = r["curve"].get(CN_TARGET_LABELS, (0, 0.0, 0.0, 0.0))  # the target: the pooled recall
    ok = a >= CN_TARGETS["auc"] and rc >= CN_TARGETS["recall_at_p90"]  # (a fold's training part may hold fewer)
    print(f"  target with {CN_TARGET_LABELS} labels: AUC >= {CN_TARGETS['auc']:.2f} and recall >= "
          f"{CN_TARGETS['recall_at_p90']:.2f} at precision 0.9: " + ("met" if ok else "MISSED")
          + f" (AUC {a:.3f}, recall {rc:.3f}, {used} labels a fold)")
    return bool(ok and np.isfinite(a))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "realdata" / "matching")
    parser.add_argument("--only", action="append", choices=sorted(TARGETS), help="run only this benchmark (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each split (a quick run)")
    parser.add_argument("--text-model", default="", help="local sentence-transformers folder for the embedding features")
    parser.add_argument("--logreg", action="store_true", help="also fit a logistic regression on the same features")
    parser.add_argument("--chinese", action="store_true", help="the Chinese set (alone, or with the --only ones)")
    parser.add_argument("--pairs", type=Path, default=None, help="the Chinese set's labelled pairs (a,b,label CSV)")
    parser.add_argument("--seeds", type=int, default=3, help="draws of the learning curve and active-learning runs")
    parser.add_argument("--al-auc", type=float, nargs="+", default=list(AL_TARGETS), help="AUCs the rounds count labels to")
    parser.add_argument("--al-start", type=int, default=AL_START, help="random labels a fold the rounds start from")
    parser.add_argument("--al-step", type=int, default=AL_STEP, help="labels a round adds")
    parser.add_argument("--al-top", type=int, default=max(CN_SIZES), help="labels a fold the rounds stop at")
    parser.add_argument("--al-how", nargs="+", choices=sorted(CHOOSERS), default=["uncertain", "random"],
                        help="how a round picks its pairs (each one a line)")
    parser.add_argument("--al-only", action="store_true", help="the Chinese set's active-learning rounds alone")
    parser.add_argument("--al-switch", type=int, default=KMEANS_UNTIL,
                        help="committee: the labels a fold from which it leaves uncertain's pick for the committee's")
    parser.add_argument("--al-first", type=int, default=0, help="the rounds' first draw (draws --al-first .. + --seeds - 1)")
    parser.add_argument("--al-json", type=Path, default=None,
                        help="keep each way's per-draw AUCs in this JSON file; ways an earlier run of the same rounds "
                             "kept there (and this run lacks) are printed beside this run's")
    parser.add_argument("--al-print", type=Path, nargs="+", default=None,
                        help="run nothing: print the rounds these --al-json files kept (to --al-top labels)")
    args = parser.parse_args(argv)
    if args.al_print:
        printed_kept(args.al_print, args.al_top)
        return 0
    names = args.only or ([] if args.chinese else list(TARGETS))
    chinese = args.chinese or not args.only
    if chinese and args.pairs is None:
        from support import mep3m_store as mp

        args.pairs = mp.PAIRS
    if not args.data.is_dir():
        alt = Path("/work/shared/realdata/matching")
        args.data = alt if alt.is_dir() else args.data
    from rich.console import Console
    from rich.table import Table

    rows, cn = [], None
    with tempfile.TemporaryDirectory(prefix="bench-matcher-") as tmp:
        for name in names:
            rows.append(run_one(name, args.data / name, Path(tmp), args.limit, args.text_model, args.logreg))
        if chinese and args.pairs.is_file():
            al = ALRounds(args.al_start, args.al_step, args.al_top, tuple(args.al_how), tuple(args.al_auc), args.al_first,
                         args.al_switch)
            cn = run_chinese(args.pairs, Path(tmp), args.seeds, al, args.al_only)
            if args.al_json is not None:
                kept_rounds(cn["al"], args.al_json)
    load1, load5, _ = os.getloadavg()
    t = Table(title=f"matcher on ER-Magellan (test split; {os.cpu_count()} CPUs, load average {load1:.1f} / {load5:.1f})")
    cols = ["benchmark", "products", "test F1", "P", "R", "target F1", "F1 / P / R at model threshold", "train s",
            "test s", "pairs/s (setup s)", "CV AUC", "Ditto F1"] + (["logreg F1"] if args.logreg else [])
    for c in cols:
        t.add_column(c, justify="left" if c == "benchmark" else "right")
    ok = True
    for r in rows:
        met = r["f1"] >= TARGETS[r["benchmark"]] and r["train_s"] < TRAIN_LIMIT_S
        ok &= met
        t.add_row(r["benchmark"], f"{r['products']:,}", f"{r['f1']:.4f}", f"{r['p']:.4f}", f"{r['r']:.4f}",
                  f"{TARGETS[r['benchmark']]:.2f} {'met' if met else 'MISSED'}",
                  f"{r['f1_model']:.4f} / {r['p_model']:.4f} / {r['r_model']:.4f}", f"{r['train_s']:.1f}",
                  f"{r['test_s']:.2f}", f"{r['pairs_per_s']:,.0f} ({r['setup_s']:.1f})", f"{r['cv_auc']:.4f}", str(DITTO.get(r["benchmark"], "")),
                  *([f"{r['logreg_f1']:.4f}"] if args.logreg else []))
    if rows:
        Console(width=200).print(t)
    for r in rows:
        if "cascade" in r:
            c = r["cascade"]
            print(f"{r['benchmark']}: dedup's cheap first test (held-out: keeps {c['accepted_kept']} of the {c['accepted']} "
                  f"pairs the model accepts, drops {c['pairs_dropped']} of {c['pairs']} labelled); on the test split it "
                  f"drops {c['test_dropped']:,} of {c['test_pairs']:,} pairs ({c['test_matches_dropped']} matches): test "
                  f"F1 through it {c['f1_through']:.4f} (without {r['f1']:.4f})")
        else:
            print(f"{r['benchmark']}: no cheap first test saved")
    if rows:
        print(f"targets: test F1 >= {', '.join(f'{k} {v:.2f}' for k, v in TARGETS.items())}; training < "
              f"{TRAIN_LIMIT_S:.0f} s each: " + ("all met" if ok else "MISSED"))
    if chinese:
        if cn is None:
            print(f"Chinese set: no pairs file at {args.pairs}: not run")
            ok &= not args.chinese
        else:
            ok &= print_chinese(cn)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
