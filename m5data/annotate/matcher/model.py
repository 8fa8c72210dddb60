"""The matcher's model as data: gradient-boosted trees exported to JSON and evaluated with numpy.

No pickle anywhere: scikit-learn's fitted trees are copied into flat arrays (feature, threshold,
where a missing value goes, children, leaf value), written as JSON, and predicted here, so a model
file is data that is parsed, never code that is run. :func:`load` refuses anything that is not such
a JSON document (a pickle, whose first byte is 0x80, is named as such).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MatcherError
from .linear import Linear, mixed

FORMAT = "m5data-matcher/3"  # /3: a linear part blended with the trees (linear.py); /2: the TF-IDF weights
READ_FORMATS = (FORMAT, "m5data-matcher/2")  # /2: trees alone, read as before
OLD_FORMATS = ("m5data-matcher/1",)  # refused with "retrain": no text weights, which dedup needs



@dataclass
class Trees:
    """All trees' nodes in flat arrays; tree ``t``'s root is node ``roots[t]``."""

    roots: np.ndarray  # int64
    feature: np.ndarray  # int64 column of the feature matrix
    threshold: np.ndarray  # float64: go left when value <= threshold
    missing_left: np.ndarray  # bool: where NaN goes
    left: np.ndarray  # int64 node (global index)
    right: np.ndarray  # int64
    leaf: np.ndarray  # bool
    value: np.ndarray  # float64 leaf value (log-odds contribution)
    depth: int

    @classmethod
    def from_sklearn(cls, model) -> Trees:
        """Copy a fitted binary ``HistGradientBoostingClassifier``'s trees (numeric features only)."""
        parts, roots, start = [], [], 0
        for (pred,) in model._predictors:
            n = pred.nodes
            if n["is_categorical"].any():
                raise MatcherError("categorical splits are not exported")
            parts.append(n)
            roots.append(start)
            start += len(n)
        offsets = np.repeat(np.asarray(roots, np.int64), [len(p) for p in parts])
        nodes = np.concatenate(parts)
        leaf = nodes["is_leaf"].astype(bool)
        return cls(roots=np.asarray(roots, np.int64), feature=nodes["feature_idx"].astype(np.int64),
                   threshold=_finite(np.where(leaf, 0.0, nodes["num_threshold"])), missing_left=nodes["missing_go_to_left"].astype(bool),
                   left=np.where(leaf, 0, nodes["left"].astype(np.int64) + offsets),
                   right=np.where(leaf, 0, nodes["right"].astype(np.int64) + offsets), leaf=leaf,
                   value=nodes["value"].astype(np.float64), depth=int(nodes["depth"].max()) if len(nodes) else 0)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values per row of ``x`` (a compiled loop: a pair walks each tree from
        root to leaf, ~400 trees x depth 8 steps; numpy over all trees at once was 5x slower than
        scikit-learn, this is faster)."""
        from .trees_jit import raw

        out = np.zeros(len(x), dtype=np.float64)
        raw(np.ascontiguousarray(x, dtype=np.float64), self.roots, self.feature, self.threshold, self.missing_left,
            self.left, self.right, self.leaf, self.value, out)
        return out

    def to_json(self) -> dict:
        return {"roots": self.roots.tolist(), "feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                "missing_left": self.missing_left.astype(int).tolist(), "left": self.left.tolist(),
                "right": self.right.tolist(), "leaf": self.leaf.astype(int).tolist(), "value": self.value.tolist(),
                "depth": self.depth}

    @classmethod
    def from_json(cls, d: dict) -> Trees:
        arr = lambda k, t: np.asarray(d[k], dtype=t)
        t = cls(roots=arr("roots", np.int64), feature=arr("feature", np.int64), threshold=arr("threshold", np.float64),
                missing_left=arr("missing_left", bool), left=arr("left", np.int64), right=arr("right", np.int64),
                leaf=arr("leaf", bool), value=arr("value", np.float64), depth=int(d["depth"]))
        n = len(t.feature)
        if not all(len(x) == n for x in (t.threshold, t.missing_left, t.left, t.right, t.leaf, t.value)):
            raise ValueError("node arrays of different lengths")
        inner = np.flatnonzero(~t.leaf)
        if (t.roots < 0).any() or (t.roots >= max(n, 1)).any() or (t.left[inner] >= n).any() or (t.right[inner] >= n).any() \
                or (t.feature[inner] < 0).any():
            raise ValueError("node index out of range")
        # children after their parent: every walk ends at a leaf (a file with a cycle would loop forever)
        if (t.left[inner] <= inner).any() or (t.right[inner] <= inner).any():
            raise ValueError("node index out of range (a child before its parent)")
        return t


def _finite(x: np.ndarray) -> np.ndarray:
    """JSON has no infinity: a split on "missing or not" (threshold +inf) becomes float64's largest value,
    the same split for every finite feature value."""
    big = np.finfo(np.float64).max
    return np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=big, neginf=-big)


# the cascade's features, in order: cascade_features computes them
CASCADE_FEATURES = ["title_minhash_jaccard", "phash_bits", "brand_same", "spec_shared", "spec_agree", "spec_conflict",
                    "spec_agree_share"]


def cascade_features(inp, titles, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The cascade's features (:data:`CASCADE_FEATURES`) of pairs of dedup rows, pairs x features, from
    dedup's inputs ``inp`` (:class:`..dedup.reads.Inputs`) and title index ``titles`` (a
    :class:`.near.LSHIndex` holding every row's signature); NaN where a side lacks the evidence."""
    from ..dedup.phash import hamming
    from ..dedup.reads import agreement

    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    x = np.full((len(left), len(CASCADE_FEATURES)), np.nan)
    if not len(left):
        return x
    has_t = inp.has_title[left] & inp.has_title[right]
    x[:, 0] = np.where(has_t, titles.jaccard(left, right), np.nan)
    has_p = inp.has_phash[left] & inp.has_phash[right]
    x[:, 1] = np.where(has_p, hamming(inp.phash[left], inp.phash[right]), np.nan)
    same, shared, agree = agreement(inp.specs, left, right)
    shared, agree = shared.astype(np.float64), agree.astype(np.float64)
    x[:, 2] = np.where(same >= 0, same, np.nan)
    x[:, 3], x[:, 4], x[:, 5] = shared, agree, shared - agree
    x[:, 6] = np.where(shared > 0, agree / np.maximum(shared, 1), np.nan)
    return x



@dataclass
class Cascade:
    """dedup's cheap first test (``matcher/cascade.py`` fits it): a candidate pair is scored by the
    full model only when ``proba(features) >= threshold``."""

    baseline: float
    trees: Trees
    threshold: float
    features: list[str] = field(default_factory=lambda: list(CASCADE_FEATURES))
    validation: dict = field(default_factory=dict)

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = self.baseline + self.trees.raw(np.asarray(x, dtype=np.float64))
        return 1.0 / (1.0 + np.exp(-z))

    def passes(self, x: np.ndarray) -> np.ndarray:
        return self.proba(x) >= self.threshold

    def to_json(self) -> dict:
        return {"features": self.features, "baseline": self.baseline, "threshold": self.threshold,
                "validation": self.validation, "trees": self.trees.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Cascade:
        features = [str(f) for f in d["features"]]
        if features != CASCADE_FEATURES:
            raise ValueError(f"cascade features {features} are not this m5data's {CASCADE_FEATURES}")
        return cls(baseline=float(d["baseline"]), trees=Trees.from_json(d["trees"]), threshold=float(d["threshold"]),
                   features=features, validation=dict(d.get("validation") or {}))


@dataclass
class Model:
    """A trained matcher: trees over :attr:`features`, the operating threshold and how it was validated."""

    version: str
    features: list[str]  # columns the trees read, by name (features.FEATURES order, unused ones left out)
    baseline: float  # log-odds before the trees
    trees: Trees
    threshold: float  # P(same product) >= this: accepted as a match
    validation: dict = field(default_factory=dict)  # held-out figures (training.validate)
    meta: dict = field(default_factory=dict)  # where the labels came from, settings, seconds
    weights: object = None  # features.TextWeights: the training products' TF-IDF document frequencies
    cascade: Cascade | None = None  # dedup's cheap first test (None: every candidate scored)
    linear: Linear | None = None  # the logistic regression blended with the trees (None: trees alone)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """P(same product) per row of ``x`` (columns in :attr:`features` order): the trees' log-odds,
        blended with the linear part's where the model has one."""
        x = np.asarray(x, dtype=np.float64)
        z = self.baseline + self.trees.raw(x)
        if self.linear is None:
            return 1.0 / (1.0 + np.exp(-z))
        return mixed(z, self.linear.raw(x), self.linear.mix)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": self.version, "features": self.features, "baseline": self.baseline,
                "threshold": self.threshold, "validation": self.validation, "meta": self.meta,
                "trees": self.trees.to_json(), "weights": self.weights.to_json() if self.weights is not None else None,
                "cascade": self.cascade.to_json() if self.cascade is not None else None,
                "linear": self.linear.to_json() if self.linear is not None else None}

    def dumps(self) -> bytes:
        """The ``model.json`` bytes (JSON, no pickle)."""
        return json.dumps(self.to_json(), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def save(self, path: Path) -> int:
        """Write ``model.json`` atomically; returns its bytes."""
        from ...storage.files import write_atomic

        return write_atomic(path, self.dumps())


def load(path: str | Path) -> Model:
    """A model from its JSON file; anything else (a pickle, a truncated file, a foreign JSON) is refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MatcherError(f"cannot read matcher model {path}: {exc.strerror}") from None
    return loads(data, path)


def loads(data: bytes, path: str | Path) -> Model:
    """A model from the bytes of its JSON file (``path`` names it in errors); a pickle is refused."""
    if data[:1] == b"\x80":
        raise MatcherError(f"{path} is a pickle, not a matcher model: pickles are never loaded (they run code)")
    try:
        d = json.loads(data.decode("utf-8"))
        if isinstance(d, dict) and d.get("format") in OLD_FORMATS:
            raise MatcherError(f"{path}: matcher {d.get('version', '?')} was saved in the older format {d['format']} (no text "
                               "weights): retrain it with `m5data annotate matcher train`")
        if not isinstance(d, dict) or d.get("format") not in READ_FORMATS:
            raise ValueError(f"format is not {FORMAT!r}")
        from .spaces import TextWeights

        trees = Trees.from_json(d["trees"])
        return Model(version=str(d["version"]), features=[str(f) for f in d["features"]], baseline=float(d["baseline"]),
                     trees=trees, threshold=float(d["threshold"]),
                     validation=dict(d.get("validation") or {}), meta=dict(d.get("meta") or {}),
                     weights=TextWeights.from_json(d["weights"]),
                     cascade=Cascade.from_json(d["cascade"]) if d.get("cascade") else None,
                     linear=Linear.from_json(d["linear"], len(d["features"])) if d.get("linear") else None)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise MatcherError(f"{path} is not a matcher model: {exc}") from None


MODELS = "derived/matcher"  # <version>/model.json below it


def _is_file_name(name: str | None) -> bool:
    return bool(name) and (Path(name).is_file() or name.endswith(".json"))


def _model_rel(store, name: str | None) -> str:
    """The store's file of model version ``name``; the newest version's when None."""
    if name:
        return f"{MODELS}/{name}/model.json"
    versions = sorted(rel.split("/")[2] for rel in store.files(MODELS + "/")
                      if rel.count("/") == 3 and rel.endswith("/model.json"))
    if not versions:
        raise MatcherError(f"no trained matcher in {store.where(MODELS)}: run `m5data annotate matcher train` first")
    return f"{MODELS}/{versions[-1]}/model.json"


def model_path(store, name: str | None = None) -> Path | str:
    """The model file of version ``name`` (or a path to a model.json); the newest version when None.
    A store's file is named by ``store.where`` (a path, or a URL on object storage)."""
    if _is_file_name(name):
        return Path(name)
    return store.where(_model_rel(store, name))


def load_model(store, name: str | None = None) -> Model:
    """The model of version ``name`` (or of a model.json path); the newest version when None."""
    if _is_file_name(name):
        return load(Path(name))
    rel = _model_rel(store, name)
    data = store.read_bytes(rel)
    if data is None:
        raise MatcherError(f"cannot read matcher model {store.where(rel)}: no such file")
    return loads(data, store.where(rel))


def columns(model: Model) -> np.ndarray:
    """Where the model's features sit in :data:`.features.FEATURES` (a model naming an unknown feature is refused)."""
    from .features import FEATURES

    unknown = [f for f in model.features if f not in FEATURES]
    if unknown:
        raise MatcherError(f"matcher model {model.version} uses features this m5data does not compute: {', '.join(unknown)}")
    return np.array([FEATURES.index(f) for f in model.features], dtype=np.int64)


def features(model: Model, products, ia: np.ndarray, ib: np.ndarray, text_model: str = "") -> np.ndarray:
    """The model's feature columns of pairs of rows of ``products`` (:class:`.products.Products`)."""
    from .features import PairFeatures

    cols = columns(model)
    if any(f.startswith("embed_") for f in model.features) and not text_model:
        raise MatcherError(f"matcher model {model.version} uses text embeddings: set annotate.text_model")
    return PairFeatures(products, text_model).matrix(ia, ib)[:, cols]


def score(model: Model, products, ia: np.ndarray, ib: np.ndarray, text_model: str = "") -> np.ndarray:
    """P(same product) of pairs of rows of ``products`` (:class:`.products.Products`)."""
    return model.proba(features(model, products, ia, ib, text_model))
