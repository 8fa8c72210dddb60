"""The matcher across benchmarks and categories (issue 75, item 9): 5-fold figures of ours against a plain
logistic regression over the same features on the same folds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_matcher_categories.py [--only NAME ...] [--limit N]

Sets: the three ER-Magellan benchmarks (``../shared/realdata/matching/``, their train, valid and test
pairs pooled: English, software (Amazon-Google), consumer electronics (Abt-Buy) and the 25 Walmart
categories of Walmart-Amazon) and the MEP-3M Chinese set (benchmarks/data/mep3m_pairs: one sub-class,
孕妈奶粉). Each set's records become a fresh store; the labelled pairs' features are what
``annotate matcher train --labels`` computes (:class:`PairFeatures` of the store's products). Folds:
ER pairs in 5 folds grouped by connected component of the pairs' products where that leaves 5 folds
(else by the first product, as training groups them); MEP-3M's own folds (no record on both sides).
Each fold's training part is fitted by ``training.fit`` (the model ``train`` saves: its own inner
cross-validation and threshold included) and the held-out part scored by the model (``score --pairs``'s
``proba``); the logistic regression (standardised features, NaN as 0 plus a missing flag per column,
C=1) is fitted on the same training part. Printed per set and per category (the left record's: Walmart's
category; categories with at least 10 matches and 10 non-matches), pooled over the folds: pairs,
matches, AUC and the best recall at precision >= 0.9, ours and the regression's, and the spread (min and
max over the categories) of each. Exit code 1 when ours is below the regression's AUC by more than 0.02
on any set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the ER-Magellan and MEP-3M loaders
sys.path.insert(0, str(ROOT / "benchmarks"))

MATCHING = ROOT.parent / "shared" / "realdata" / "matching"
FOLDS = 5
MIN_CLASS = 10  # a category is reported with at least this many matches and non-matches
MARGIN = 0.02  # ours may trail the regression's AUC by this much


def logreg_scores(x, y, tr, te):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = np.c_[np.nan_to_num(x), np.isnan(x)]
    m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(z[tr], y[tr])
    return m.predict_proba(z[te])[:, 1]


def ours_scores(x, y, groups, tr, te, settings):
    import numpy as np

    from m5data.annotate.matcher.model import columns
    from m5data.annotate.matcher.training import fit

    m = fit(x[tr], y[tr], np.ones(len(tr)), groups[tr], settings, "bench").model
    return m.proba(x[te][:, columns(m)])


def component_folds(ia, ib, y, n: int = FOLDS, seed: int = 0):
    """Folds with no product on both sides where the pairs' products fall into enough components (the
    largest under a fifth of the pairs), else grouped by the first product (as training does)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.model_selection import StratifiedGroupKFold

    m = int(max(ia.max(), ib.max())) + 1
    _, comp = connected_components(coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(m, m)), directed=False)
    groups = comp[ia]
    if np.bincount(groups).max() > len(ia) / n:
        groups = ia
    return list(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(ia, y, groups))


def evaluate(x, y, groups, folds, settings) -> tuple:
    import numpy as np

    ours, lr = np.full(len(y), np.nan), np.full(len(y), np.nan)
    for tr, te in folds:
        tr, te = np.asarray(tr), np.asarray(te)
        ours[te] = ours_scores(x, y, groups, tr, te, settings)
        lr[te] = logreg_scores(x, y, tr, te)
    return ours, lr


def er_set(name: str, work: Path, limit: int | None):
    """Features, labels, groups, folds and each pair's category of one ER-Magellan benchmark."""
    import numpy as np
    from support import er_magellan as er

    from m5data.annotate.matcher import products as pair_products
    from m5data.annotate.matcher.features import PairFeatures
    from m5data.config import load
    from m5data.storage import Store

    records, pairs = er.read(MATCHING / name, limit)
    store = Store.init(work / name)
    er.write_store(store, records)
    s = load(None, {"store.path": str(store.root), "annotate.brand_property": er.BRAND_PROPERTY}, environ={})
    rows = [p for split in er.SPLITS for p in pairs[split]]
    products = pair_products.read_store(store, er.BRAND_PROPERTY)
    idx = products.index()
    ia, ib = np.array([idx[a] for a, _, _ in rows]), np.array([idx[b] for _, b, _ in rows])
    y = np.array([lab for _, _, lab in rows], bool)
    x = PairFeatures(products).matrix(ia, ib)
    cats = [records[a].get("category") or "" for a, _, _ in rows]
    return x, y, ia, component_folds(ia, ib, y), cats, s


def mep3m_set(work: Path):
    import numpy as np
    from support import mep3m_store as mp
    from support.mep3m_pairs import records

    from m5data.annotate.matcher import products as pair_products
    from m5data.annotate.matcher.features import PairFeatures
    from m5data.config import load
    from m5data.storage import Store

    store = Store.init(work / "mep3m")
    mp.write_store(store, records())
    s = load(None, {"store.path": str(store.root)}, environ={})
    pairs = mp.read_pairs(mp.PAIRS)
    products = pair_products.read_store(store, s.annotate.brand_property)
    idx = products.index()
    ia, ib = np.array([idx[p[0]] for p in pairs]), np.array([idx[p[1]] for p in pairs])
    y = np.array([p[2] for p in pairs], bool)
    folds = mp.folds(pairs, dict(zip(products.ids, products.title)), FOLDS)
    x = PairFeatures(products).matrix(ia, ib)
    return x, y, ia, folds, [""] * len(y), s


def figures(ours, lr, y, cats) -> list[tuple]:
    """``(name, pairs, matches, ours AUC, ours recall, regression AUC, regression recall)``: the set (held-out
    pairs), then each category with enough of both classes."""
    import numpy as np
    from bench_matcher import ranked

    held = ~np.isnan(ours)
    rows = [("all", int(held.sum()), int(y[held].sum()), *ranked(ours[held], y[held]), *ranked(lr[held], y[held]))]
    cats = np.array(cats, object)
    for c in sorted(set(cats[held]) - {""}):
        k = held & (cats == c)
        if y[k].sum() >= MIN_CLASS and (~y[k]).sum() >= MIN_CLASS:
            rows.append((c, int(k.sum()), int(y[k].sum()), *ranked(ours[k], y[k]), *ranked(lr[k], y[k])))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="set names: Amazon-Google Walmart-Amazon Abt-Buy MEP-3M")
    ap.add_argument("--limit", type=int, default=None, help="the first N pairs of each ER split (a quick run)")
    args = ap.parse_args(argv)
    names = args.only or ["Abt-Buy", "Amazon-Google", "Walmart-Amazon", "MEP-3M"]
    ok = True
    print("set / category | pairs | matches | ours AUC | ours R@P0.9 | logreg AUC | logreg R@P0.9")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t0 = time.perf_counter()
            x, y, groups, folds, cats, s = mep3m_set(Path(tmp)) if name == "MEP-3M" else er_set(name, Path(tmp), args.limit)
            ours, lr = evaluate(x, y, groups, folds, s)
            rows = figures(ours, lr, y, cats)
            for c, n, m, oa, orc, la, lrc in rows:
                print(f"{name} / {c} | {n} | {m} | {oa:.3f} | {orc:.3f} | {la:.3f} | {lrc:.3f}")
            if len(rows) > 2:
                spread = [(min(r[k] for r in rows[1:]), max(r[k] for r in rows[1:])) for k in (3, 4, 5, 6)]
                print(f"{name} / spread over {len(rows) - 1} categories (min-max) | | | "
                      + " | ".join(f"{lo:.3f}-{hi:.3f}" for lo, hi in spread))
            print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
            ok &= rows[0][3] >= rows[0][5] - MARGIN
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
