"""The papers' evaluation metrics: retrieval mAP@k and Prec@k, linear-probe accuracy, k-means NMI, purity, accuracy.

Retrieval, as the papers report it (mAP@1 equals Prec@1 in every table): for a query, the gallery is
ranked by cosine similarity; Prec@k is the share of relevant items in the top k; AP@k is the mean of
the precision at each rank r <= k where a relevant item sits (averaged over the relevant items found
in the top k, 0 when none is found); mAP@k and Prec@k are means over the queries.
"""

from __future__ import annotations

import numpy as np


def rank(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top ``k`` gallery rows per query by cosine similarity (ties: lower index first)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    sims = q @ g.T
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")
    return order[:, :k]


def retrieval(relevant: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """mAP@k and Prec@k from a boolean matrix [queries, ranked results]: relevant[q, r] for the r-th result."""
    out: dict[str, float] = {}
    n = relevant.shape[0]
    if not n:
        return {f"{m}@{k}": float("nan") for k in ks for m in ("mAP", "Prec")}
    rel = relevant.astype(np.float64)
    hits = np.cumsum(rel, axis=1)
    prec_at_r = hits / np.arange(1, rel.shape[1] + 1)
    for k in ks:
        kk = min(k, rel.shape[1])
        found = hits[:, kk - 1]
        ap = np.where(found > 0, (prec_at_r[:, :kk] * rel[:, :kk]).sum(1) / np.maximum(found, 1), 0.0)
        out[f"mAP@{k}"] = float(ap.mean())
        out[f"Prec@{k}"] = float((found / k).mean())
    return out


def retrieval_scores(queries: np.ndarray, query_labels: list, gallery: np.ndarray, gallery_labels: list,
                     ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Rank the gallery for each query; a result is relevant when its label equals the query's."""
    top = rank(queries, gallery, max(ks))
    g = np.asarray(gallery_labels, dtype=object)
    q = np.asarray(query_labels, dtype=object)[:, None]
    relevant = (g[top] == q) & (g[top] != None) & (q != None)  # noqa: E711 (elementwise): no label, no match
    return retrieval(relevant, ks)


def linear_probe(train_x: np.ndarray, train_y: list, test_x: np.ndarray, test_y: list, seed: int = 0) -> float:
    """Accuracy of a logistic-regression classifier trained on frozen features (the papers' linear classifier)."""
    from sklearn.linear_model import LogisticRegression

    if len(set(train_y)) < 2 or not len(test_x):
        return float("nan")
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(train_x, np.asarray(train_y, dtype=str))
    return float((clf.predict(test_x) == np.asarray(test_y, dtype=str)).mean())


def purity(labels: list, clusters: np.ndarray) -> float:
    """Share of items whose cluster's majority label is their own label."""
    labels = np.asarray(labels, dtype=str)
    total = 0
    for c in np.unique(clusters):
        _, counts = np.unique(labels[clusters == c], return_counts=True)
        total += counts.max()
    return total / len(labels) if len(labels) else float("nan")


def cluster_accuracy(labels: list, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one cluster -> label assignment (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    labels = np.asarray(labels, dtype=str)
    names, y = np.unique(labels, return_inverse=True)
    cl, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((len(cl), len(names)), dtype=np.int64)
    np.add.at(table, (c, y), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(labels)) if len(labels) else float("nan")


def clustering(x: np.ndarray, labels: list, seed: int = 0) -> dict[str, float]:
    """k-means with k = number of labels; NMI, purity and Hungarian accuracy of the clusters."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(set(labels))
    if k < 2 or len(x) < k:
        return {"NMI": float("nan"), "purity": float("nan"), "cluster_acc": float("nan")}
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"NMI": float(normalized_mutual_info_score(np.asarray(labels, dtype=str), clusters)),
            "purity": purity(labels, clusters), "cluster_acc": cluster_accuracy(labels, clusters)}
