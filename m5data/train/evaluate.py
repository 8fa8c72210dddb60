"""``m5data evaluate``: the papers' table for a trained run, with random and text-only TF-IDF baselines.

Splits read from the export folder (each a set of ``<split>-*.tar`` shards): coarse retrieval
``query-c`` against ``gallery-c`` (relevant = same category), fine-grained ``query-fg`` against
``gallery-fg`` (relevant = same instance / duplicate group), classification on ``cls-train`` /
``cls-test`` (linear probe), clustering (k-means) on ``cls-test``. A split that is absent is
reported as such. Writes ``metrics.json`` and ``metrics.md`` into the run folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import MODALITIES
from .data import ShardError, loader
from .metrics import clustering, linear_probe, retrieval_scores

# the default rows, like the papers' Table 4: each modality added in turn (text and image alone first)
DEFAULT_COMBOS = [("text",), ("image",), ("text", "image"), ("text", "image", "table"), MODALITIES]
RETRIEVAL = {"coarse": ("query-c", "gallery-c", "category"), "fine": ("query-fg", "gallery-fg", "instance")}
# the scores each split enters; a split of fewer than SMALL_SPLIT products gives them too little to stand on
SCORES_OF = {"query-c": "coarse retrieval", "gallery-c": "coarse retrieval", "query-fg": "fine-grained retrieval",
             "gallery-fg": "fine-grained retrieval", "cls-train": "linear-probe", "cls-test": "linear-probe and clustering"}
SMALL_SPLIT = 10
COLUMNS = ["model", "modalities", "accuracy", "coarse mAP@1", "coarse mAP@5", "coarse mAP@10", "coarse Prec@5",
           "coarse Prec@10", "fine mAP@1", "fine mAP@5", "fine mAP@10", "NMI", "purity", "cluster_acc"]


@dataclass
class SplitFeatures:
    x: np.ndarray
    category: list
    instance: list
    caption: list[str]
    ids: list[str] = field(default_factory=list)


def extract(model, shards: str | Path, split: str, use: tuple[str, ...], batch_size: int = 64) -> SplitFeatures | None:
    """Fused features of every sample of a split (None when the export has no such split)."""
    import torch

    try:
        batches = loader(shards, split, model.cfg, batch_size=batch_size)
    except ShardError:
        return None
    xs, cat, inst, cap, ids = [], [], [], [], []
    with torch.no_grad():
        for batch in batches:
            xs.append(model.fused(batch, use).cpu().numpy())
            cat += batch["category"]
            inst += batch["instance"]
            cap += batch["caption"]
            ids += batch["product_id"]
    if not xs:
        return None
    return SplitFeatures(np.concatenate(xs), cat, inst, cap, ids)


def _text_features(splits: dict[str, SplitFeatures]) -> dict[str, np.ndarray]:
    """The text-only baseline: TF-IDF over character 1-2 grams of the captions, fitted on all evaluated splits."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    names = [s for s in splits if splits[s] is not None]
    corpus = [c for s in names for c in splits[s].caption]
    if not corpus:
        return {}
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=1).fit(corpus)
    return {s: vec.transform(splits[s].caption).toarray().astype(np.float32) for s in names}


def _row(name: str, modalities: str, feats: dict[str, np.ndarray], splits: dict[str, SplitFeatures], seed: int) -> dict:
    row: dict = {"model": name, "modalities": modalities}
    for task, (q, g, label) in RETRIEVAL.items():
        if splits.get(q) is None or splits.get(g) is None or q not in feats:
            continue
        ql, gl = getattr(splits[q], label), getattr(splits[g], label)
        if all(v is None for v in ql):
            continue
        scores = retrieval_scores(feats[q], ql, feats[g], gl)
        for key, value in scores.items():
            row[f"{task} {key}"] = value
    train, test = splits.get("cls-train"), splits.get("cls-test")
    if train is not None and test is not None and "cls-train" in feats:
        row["accuracy"] = linear_probe(feats["cls-train"], train.category, feats["cls-test"], test.category, seed)
        row.update(clustering(feats["cls-test"], test.category, seed))
    return row


def evaluate(run: str | Path, shards: str | Path, *, combos: list[tuple[str, ...]] | None = None,
             device: str | None = None, seed: int = 0, image_backbone: str | Path | None = None) -> dict:
    """Evaluate a run; returns ``{"rows": [...], "columns": [...]}`` and writes metrics.json / metrics.md.

    Args:
        combos: modality combinations, one row each (default: ``DEFAULT_COMBOS``: text, image,
            text+image, text+image+table, all five).
        image_backbone: the backbone file of a run trained with one (never taken from the run folder).
    """
    from .loop import load_model
    from .runfolder import write_file

    model, _ = load_model(run, device, image_backbone)
    names = ["query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test"]
    rows = []
    base_splits: dict[str, SplitFeatures] | None = None
    for use in combos or DEFAULT_COMBOS:
        splits = {s: extract(model, shards, s, use) for s in names}
        if base_splits is None:
            base_splits = splits
        rows.append(_row("SCALE (thin)", "+".join(use), {s: f.x for s, f in splits.items() if f is not None}, splits, seed))
    if base_splits is None or all(v is None for v in base_splits.values()):
        raise ShardError(f"no evaluation splits (query-c, gallery-c, cls-train, ...) in {shards}: export them first")
    rng = np.random.default_rng(seed)
    random_feats = {s: rng.standard_normal((len(f.x), 64)).astype(np.float32) for s, f in base_splits.items() if f is not None}
    rows.append(_row("random", "-", random_feats, base_splits, seed))
    rows.append(_row("TF-IDF", "text", _text_features(base_splits), base_splits, seed))
    counts = {s: (len(f.x) if f is not None else 0) for s, f in base_splits.items()}
    out = {"columns": COLUMNS, "rows": rows, "counts": counts, "warnings": small_splits(counts)}
    run = Path(run)
    write_file(run / "metrics.json", json.dumps(out, indent=2))  # replaced whole: a link planted there is not followed
    write_file(run / "metrics.md", markdown(out))
    return out


def small_splits(counts: dict[str, int]) -> list[str]:
    """A warning for each evaluated split too small for the scores computed on it to mean much."""
    return [f"{split} has only {n} product{'' if n == 1 else 's'}: its {SCORES_OF.get(split, '')} scores mean "
            f"little (one product moves them by up to {100 / n:.0f} points; at least {SMALL_SPLIT} products wanted)"
            for split, n in counts.items() if 0 < n < SMALL_SPLIT]


def shown_columns(columns: list[str], rows: list[dict]) -> list[str]:
    """The columns, in order, that at least one row fills."""
    return [c for c in columns if any(c in r for r in rows)]


def markdown(result: dict) -> str:
    cols = shown_columns(result["columns"], result["rows"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        lines.append("| " + " | ".join(format_cell(r.get(c)) for c in cols) + " |")
    lines += ["", "Split sizes: " + split_sizes(result["counts"]) + "."]
    lines += [f"- warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines) + "\n"


def split_sizes(counts: dict[str, int]) -> str:
    """``query-c 12, gallery-c 48, ...`` (a split the export lacks: ``absent``)."""
    return ", ".join(f"{split} {n:,}" if n else f"{split} absent" for split, n in counts.items())


def format_cell(v) -> str:
    """A metrics table cell: a float (a fraction) in percent with two decimals, empty for None."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if v != v else f"{100 * v:.2f}"
    return str(v)


def write_features(run: str | Path, shards: str | Path, out: str | Path, splits: tuple[str, ...] = ("query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test"),
                   device: str | None = None, image_backbone: str | Path | None = None) -> int:
    """Fused features as CSV lines ``item_id,f1,f2,...`` (the authors' evaluation toolkit's format); returns lines.

    Written with the csv module: an id holding a comma, a quote or a line break is quoted, so every
    line reads back as one id and ``dim`` features.
    """
    import csv

    from .loop import load_model

    model, _ = load_model(run, device, image_backbone)
    n = 0
    with Path(out).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for split in splits:
            feats = extract(model, shards, split, MODALITIES)
            if feats is None:
                continue
            for pid, row in zip(feats.ids, feats.x):
                writer.writerow([str(pid), *(f"{v:.6f}" for v in row)])
                n += 1
    return n
