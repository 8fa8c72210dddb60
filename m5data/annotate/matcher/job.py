"""The matcher's jobs over a store: train (from the crowd's ``matches`` or a labels file) and score pairs.

A trained model lives in ``derived/matcher/<version>/model.json`` (version = UTC time + run id, so
names sort by age); the newest is the one used unless another is named. A labels or pairs file with
bad lines is refused whole, every bad line named with its line number and value: a model silently
trained on part of a file would not be the model the user asked for.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import config as cfg
from ...stages import StageRun, opened
from ...storage.runs import StageStats
from .labels import combined, crowd_labels  # noqa: F401 (job.combined: the tests' name)
from .model import MODELS, MatcherError, Model, load_model, score
from .products import Products, read_store

MAX_LISTED = 200  # bad lines named in one error at most (the count says how many more)


@dataclass
class TrainReport:
    stats: StageStats
    model: Model
    path: Path | str  # where the model went (the store's file; a URL on object storage)
    source: str  # "crowd matches" or the labels file
    n_pairs: int = 0
    n_skipped: dict = field(default_factory=dict)  # reason -> pairs left out (crowd labels only)
    seconds_features: float = 0.0
    seconds_fit: float = 0.0


TREE_SETTINGS = ("trees", "learning_rate", "leaves")  # what of [matcher] the trees are fitted with (model.meta["trees"])


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[matcher]`` settings before any work."""
    a = s.matcher
    if not 0.0 < a.precision <= 1.0:
        raise cfg.ConfigError(f"config matcher.precision must be in (0, 1], got {a.precision!r}")
    for key in ("folds", "trees", "leaves"):
        if getattr(a, key) < (2 if key != "trees" else 1):
            raise cfg.ConfigError(f"config matcher.{key} is too small, got {getattr(a, key)!r}")
    if not 0.0 < a.learning_rate <= 1.0:
        raise cfg.ConfigError(f"config matcher.learning_rate must be in (0, 1], got {a.learning_rate!r}")
    text_model = s.annotate.text_model  # shared with dedup and crowd, which apply the model
    if text_model and not Path(text_model).is_dir():
        raise cfg.ConfigError(f"config annotate.text_model: no model folder at {text_model}")


def _refuse(path: Path, bad: list[str], what: str) -> None:
    if bad:
        more = f"\n... and {len(bad) - MAX_LISTED} more bad lines" if len(bad) > MAX_LISTED else ""
        raise MatcherError(f"{path}: {len(bad)} bad line{'s' * (len(bad) > 1)}, {what}:\n" + "\n".join(bad[:MAX_LISTED]) + more)


def _rows(path: Path):
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            yield from enumerate(csv.reader(fh), start=1)
    except FileNotFoundError:
        raise MatcherError(f"no such file: {path}") from None
    except UnicodeDecodeError as exc:
        raise MatcherError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_labels(path: Path, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a,b,label`` lines (an ``a,b,label`` header is skipped) as product rows and 0/1 labels."""
    a, b, y, bad = [], [], [], []
    for n, row in _rows(path):
        if n == 1 and [c.strip().lower() for c in row] == ["a", "b", "label"]:
            continue
        if not row or not "".join(row).strip():
            continue
        if len(row) != 3:
            bad.append(f"line {n}: expected 3 fields a,b,label, got {len(row)}: {','.join(row)[:80]!r}")
            continue
        ia, ib = index.get(row[0].strip()), index.get(row[1].strip())
        problems = [f"unknown product id {v.strip()!r}" for v, i in ((row[0], ia), (row[1], ib)) if i is None]
        if row[2].strip() not in ("0", "1"):
            problems.append(f"label {row[2].strip()!r} is not 0 or 1")
        if ia is not None and ia == ib:
            problems.append(f"a product paired with itself {row[0].strip()!r}")
        if problems:
            bad.append(f"line {n}: " + "; ".join(problems))
            continue
        a.append(ia)
        b.append(ib)
        y.append(row[2].strip() == "1")
    _refuse(path, bad, "nothing trained (fix or remove them)")
    return np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(y, bool)


def train(store, settings: cfg.Settings, labels: Path | None = None, products: Products | None = None,
          run: StageRun | None = None) -> TrainReport:
    """Fit a matcher on the store's crowd labels (or ``labels``) and save it as the newest version (``run``:
    the matcher stage's run, stages.call's; None: the contract opens one, its lock held)."""
    if run is None:
        with opened("matcher", store, settings, labels=labels) as run:
            return train(store, settings, labels, products, run)
    from .features import PairFeatures
    from .training import fit

    check_settings(settings)
    a = settings.matcher
    stats = run.stats
    products = products or read_store(store, settings.annotate.brand_property)
    index = products.index()
    skipped: dict = {}
    if labels is not None:
        ia, ib, y = read_labels(Path(labels), index)
        w = np.ones(len(y))
    else:
        ia, ib, y, w = crowd_labels(store, index, skipped)
    for reason, n in skipped.items():
        stats.fail(reason, n)
    t0 = time.perf_counter()
    feats = PairFeatures(products, settings.annotate.text_model)
    x = feats.matrix(ia, ib)
    t1 = time.perf_counter()
    version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + stats.run_id[:6]
    result = fit(x, y, w, ia, settings, version)
    model = result.model
    model.weights = feats.weights  # dedup weights its candidates' text with these (no TF-IDF fit per run)
    t2 = time.perf_counter()
    model.cascade = _cascade(store, settings, products, ia, ib, y, w, result.oof >= model.threshold)
    t3 = time.perf_counter()
    model.meta = {"labels": str(labels) if labels else "matches", "products": len(products), "run_id": stats.run_id,
                  "seconds_features": round(t1 - t0, 3), "seconds_fit": round(result.seconds, 3),
                  "seconds_cascade": round(t3 - t2, 3),
                  "text_model": Path(settings.annotate.text_model).name if settings.annotate.text_model else "",
                  # the trees' settings it was fitted with: crowd's committee fits trees of its kind from them
                  # (uncertain.trained_with), reading what the matcher kept rather than the [matcher] section
                  "trees": {k: getattr(a, k) for k in TREE_SETTINGS}}
    rel = f"{MODELS}/{version}/model.json"
    data = model.dumps()
    store.write_bytes(rel, data)
    stats.bytes, path = len(data), store.where(rel)
    stats.n_in, stats.n_out = len(y) + sum(skipped.values()), len(y)
    sections = cfg.as_dict(settings)
    run.record(
        {"annotate": sections["annotate"], "matcher": sections["matcher"],
         "labels": str(labels) if labels else "matches", "version": version}, "ok")
    return TrainReport(stats=stats, model=model, path=path, source=str(labels) if labels else "crowd matches",
                       n_pairs=len(y), n_skipped=skipped, seconds_features=t1 - t0, seconds_fit=result.seconds)


def _cascade(store, settings, products: Products, ia, ib, y, w, accepted):
    """dedup's cheap first test (:mod:`.cascade`), fitted on the labelled pairs' features from dedup's own
    inputs; None when the full model accepts no held-out pair."""
    import pyarrow as pa

    from . import cascade
    from .model import cascade_features

    ids = pa.array(products.ids, pa.string())
    inp, titles = cascade.read_inputs(store, settings, pa.concat_arrays([ids.take(ia), ids.take(ib)]))
    ra, rb = cascade.rows_of(inp, ids.take(ia)), cascade.rows_of(inp, ids.take(ib))
    if (ra < 0).any() or (rb < 0).any():  # products without a stored row (not read as dedup reads them)
        return None
    x = cascade_features(inp, titles, ra, rb)
    return cascade.fit(x, y, w, ia, accepted, settings)


@dataclass
class ScoreReport:
    model: Model
    n_pairs: int
    seconds: float
    n_accepted: int


def score_file(store, settings: cfg.Settings, pairs: Path, out: Path, name: str | None = None) -> ScoreReport:
    """Copy the CSV ``pairs`` (a header, product ids in columns ``a`` and ``b`` or else the first two)
    to ``out`` with a ``score`` column added."""
    model = load_model(store, name)
    products = read_store(store, settings.annotate.brand_property)
    index = products.index()
    header, rows, bad = None, [], []
    for n, row in _rows(Path(pairs)):
        if header is None:
            header = row
            ca, cb = (header.index("a"), header.index("b")) if {"a", "b"} <= set(header) else (0, 1)
            continue
        if not row:
            continue
        ids = [row[c].strip() if c < len(row) else "" for c in (ca, cb)]
        unknown = [f"unknown product id {v!r}" for v in ids if v not in index]
        if unknown:
            bad.append(f"line {n}: " + "; ".join(unknown))
        rows.append((row, ids))
    if header is None:
        raise MatcherError(f"{pairs} is empty: expected a header and one pair a line")
    _refuse(Path(pairs), bad, "nothing scored")
    t0 = time.perf_counter()
    ia = np.array([index[i] for _, (i, _) in rows], dtype=np.int64)
    ib = np.array([index[j] for _, (_, j) in rows], dtype=np.int64)
    s = score(model, products, ia, ib, settings.annotate.text_model)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*header, "score"])
        for (row, _), v in zip(rows, s):
            w.writerow([*row, f"{v:.6f}"])
    return ScoreReport(model=model, n_pairs=len(rows), seconds=seconds, n_accepted=int((s >= model.threshold).sum()))
