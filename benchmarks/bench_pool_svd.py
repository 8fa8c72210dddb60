"""The pools' text SVD: how much a refit on a store grown by 1% moves the pools, per SVD solver, and its fit time.

On a built store with a complete pools run (its kept vectors give the image block, which a refit
does not change but for its centring mean), for each solver: the text model is fitted on the store's
captions (``old``) and on the captions of the store grown as ``bench_incremental.py`` grows it
(``--new-share`` of the products, first by id, copied under new ids). The *incremental* vectors are
the old model's (old products keep theirs, the copies are projected with it, the old centring mean);
the *full* vectors are the refit's. Each query's top K over each set is searched exactly and the
share of the full pools' (query, candidate) entries in the incremental pools printed, with the fit's
seconds (wall and CPU) on the grown store: the agreement ``bench_pools_incremental.py`` measures,
but for the image block's centring mean, without embedding any image::

    python benchmarks/bench_pool_svd.py --store RUN/store --work /tmp/x --solvers randomized:7,randomized:40,arpack

The store is copied (tables copied, blobs and kept files hard-linked) and never written.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import fresh_copy  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="a built store with a complete pools run (copied)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-pool-svd"))
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--solvers", default="randomized:7,randomized:40,arpack",
                    help="comma-separated pools.svd values (solver[:iterations])")
    ap.add_argument("--queries", type=float, default=0.1, help="pools.queries")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    import pyarrow as pa

    from m5data import config as cfg
    from m5data.annotate.kernels import embed
    from m5data.annotate.kernels.search import exact_search
    from m5data.annotate.pools import next_run
    from m5data.annotate.pools.rows import sample_queries
    from m5data.annotate.pools.vectors import IN_MEMORY_ROWS, read_catalog, titles_as_captions
    from m5data.storage import Store, changes

    args.work.mkdir(parents=True, exist_ok=True)
    fresh_copy(args.store, args.work)
    store = Store.open(args.work / "store")
    s = cfg.load(None, {"store.path": str(store.root), **dict(kv.split("=", 1) for kv in args.set)}, environ={})
    a = s.pools
    catalog = read_catalog(store)
    titles_as_captions(catalog, s)
    ids = catalog.column("product_id")
    files = changes.load_state(store, "pools")["files"]
    kept = store.local_root() / "derived" / "pools"
    kept_ids = next_run._load_ids(kept / files["ids"]).to_pylist()
    assert kept_ids == ids, "the kept vectors are not of this store's products"
    vec = np.load(kept / files["vectors"], mmap_mode="r")
    dt = a.text_dim
    image = embed.l2_normalise(np.asarray(vec[:, dt:]))  # the centred, normalised image block (zero: no image)

    # grown: the first new_share of the products by id, copied under new ids (bench_incremental's GROW)
    n = len(ids)
    copied = list(range(max(1, round(n * args.new_share))))
    new_ids = [f"{ids[i].split(':', 1)[0]}:n{ids[i].split(':', 1)[1]}" for i in copied]
    order = np.argsort(np.array(ids + new_ids, dtype=object), kind="stable")
    src = np.concatenate([np.arange(n), np.array(copied)])[order]  # grown row -> old row
    g_ids = [(ids + new_ids)[i] for i in order]
    texts, tokens = catalog.column("text"), catalog.column("tokens")
    tcol, kcol = catalog.table.column("text"), catalog.table.column("tokens")
    g_texts, g_tokens = [texts[i] for i in src], [tokens[i] for i in src]
    is_new = order >= n
    has_text = np.array([bool(t) for t in g_texts])
    g_image = image[src]
    usable = has_text | (np.abs(g_image).sum(axis=1) > 0)
    queries = [q for q in sample_queries(g_ids, args.queries, s.annotate.seed)]
    row = {p: i for i, p in enumerate(g_ids)}
    q_rows = np.array([row[q] for q in queries if usable[row[q]]])
    g_rows = np.flatnonzero(usable)
    pos = np.full(len(g_ids), -1)
    pos[g_rows] = np.arange(len(g_rows))
    print(f"store {n:,} products, grown by {len(copied):,}; {len(q_rows):,} queries, K {a.k}; "
          f"{'in-memory fit on every caption' if n + len(copied) <= IN_MEMORY_ROWS else f'fit on a sample of {a.fit_sample:,}'}",
          flush=True)

    def vectors(text, mean):
        t = np.array(text, np.float32)
        nz = np.abs(t).sum(axis=1) > 0
        t[nz] -= mean
        t = embed.l2_normalise(t)
        t[~has_text] = 0
        return embed.l2_normalise(np.concatenate([np.sqrt(a.text_weight) * t, np.sqrt(a.image_weight) * g_image], 1))

    def pools(v):
        out = set()
        for hits in exact_search(v[q_rows], v[g_rows], a.k, self_index=pos[q_rows]):
            for i, idx in enumerate(hits.index):
                q = q_rows[hits.start + i]
                out.update((q, int(g_rows[j])) for j in idx if j >= 0)
        return out

    g_tcol = pa.chunked_array([pa.array(g_texts, pa.string())])
    g_kcol = pa.chunked_array([pa.array(g_tokens, kcol.type)])
    for solver in args.solvers.split(","):
        kind, _, it = solver.partition(":")
        svd = {"svd": kind, "n_iter": int(it) if it else a.svd_iter}
        if n + len(copied) <= IN_MEMORY_ROWS:  # vectors' in-memory path: fit on all, fit_transform for the fitted
            fitted: list = []
            old = embed.tfidf_svd([list(t) for t in tokens], texts, dim=dt, seed=s.annotate.seed, keep=fitted, **svd)
            inc_text = old[src]
            inc_text[is_new] = fitted[0].transform([g_tokens[i] for i in np.flatnonzero(is_new)],
                                                   [g_texts[i] for i in np.flatnonzero(is_new)])
            mean = embed_mean(old)
            w, c = time.perf_counter(), cpu()
            full_text = embed.tfidf_svd([list(t) for t in g_tokens], g_texts, dim=dt, seed=s.annotate.seed, **svd)
            fit_w, fit_c = time.perf_counter() - w, cpu() - c
        else:  # the chunked path: a fit on a seeded sample, every caption projected
            model = embed.TfidfSvd.fit_sample(kcol, tcol, dim=dt, seed=s.annotate.seed, sample=a.fit_sample, **svd)
            inc_text = model.transform(g_tokens, g_texts)
            mean = embed_mean(inc_text[~is_new])
            w, c = time.perf_counter(), cpu()
            refit = embed.TfidfSvd.fit_sample(g_kcol, g_tcol, dim=dt, seed=s.annotate.seed, sample=a.fit_sample, **svd)
            fit_w, fit_c = time.perf_counter() - w, cpu() - c
            full_text = refit.transform(g_tokens, g_texts)
        inc, full = pools(vectors(inc_text, mean)), pools(vectors(full_text, embed_mean(full_text)))
        print(f"{solver:<16} agreement {len(inc & full) / max(1, len(full)):.4f} of {len(full):,} entries; "
              f"fit on the grown store {fit_w:7.1f} s wall, {fit_c:7.1f} s CPU", flush=True)


def embed_mean(x: np.ndarray) -> np.ndarray:
    from m5data.annotate.pools.embedder import nonzero_mean

    return nonzero_mean(np.asarray(x, np.float32))


if __name__ == "__main__":
    main()
