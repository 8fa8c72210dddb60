"""Benchmark the pools' exact top-k search against faiss ``IndexFlatIP`` on the same vectors.

    .venv/bin/python benchmarks/bench_pools.py [--queries 25000] [--gallery 250000] [--dim 256] [--k 500]

The paper's 25k queries x 1.2M gallery scaled by 1/5. Vectors are L2-normalised, random or
clustered (``--clustered``: gallery around 5,000 centres, so that top-500 lists are not noise).
Prints, for our blocked exact search (m5data.annotate.search.exact_search: matmul + a numba-compiled
per-row reservoir by default; ``--backend torch`` for matmul + topk, ``numpy`` for argpartition) and
for faiss IndexFlatIP searched in the same query blocks:

* wall seconds, and the ratio ours / faiss (target <= 1.1);
* peak RSS of the process tree above the vectors (RSS summed, sampled every 20 ms), and the bound the block sizes give
  (block x gallery_block float32 scores);
* agreement of the two top-k lists on the first block (share of identical neighbours).

With ``--score STORE --truth DIR`` it measures instead the pools of a demo store against its world's truth,
one full pools run per image block (``--images descriptor,vectors,none``; the same store, the same text
side, every product a query, K = ``--k``), and prints side by side the recall of true instance matches at
k = 1, 5, 10, 50 and K (``m5data annotate pools --score-against``'s figure), the mean reciprocal rank of
the true matches and each run's seconds. ``vectors`` needs the vision stage's ``image_vectors``: when the
store has none, the vision stage runs first (``vision.model``: the built-in EfficientNet-Lite0, or
``--vision-model FILE``). The pools table of STORE is rewritten by each run (use a copy)::

    .venv/bin/python benchmarks/bench_pools.py --score STORE --truth SHOP/truth [--images descriptor,vectors,none]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from peak_rss import PeakRSS


def vectors(n: int, dim: int, rng, centres=None, spread: float = 0.35):
    import numpy as np

    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 50_000):  # in chunks: no float64 copy of the whole matrix
        m = min(50_000, n - s)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        if centres is not None:
            x = centres[rng.integers(0, len(centres), m)] + spread * x / np.sqrt(dim)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=25_000)
    parser.add_argument("--gallery", type=int, default=250_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--block", type=int, default=2048, help="queries per block (both searches)")
    parser.add_argument("--gallery-block", type=int, default=None, help="gallery rows per chunk (ours; default per backend)")
    parser.add_argument("--backend", default="auto", help="ours: reservoir, torch, numpy or auto")
    parser.add_argument("--clustered", action="store_true", help="gallery around 5,000 centres (else uniform random)")
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", default=None, help="a demo store: score its pools per image block (see above)")
    parser.add_argument("--truth", default=None, help="with --score: the demo world's truth folder (or its shop)")
    parser.add_argument("--images", default="descriptor,vectors,none", help="with --score: pools.image values")
    parser.add_argument("--text-weights", default="1", help="with --score: pools.text_weight values (0: the image block alone)")
    parser.add_argument("--vision-model", default="", help="with --score: vision.model when the store has no vectors")
    args = parser.parse_args(argv)
    if args.score:
        return score_images(args)

    import numpy as np

    from m5data.annotate.kernels.search import default_backend, exact_search, faiss_search

    rng = np.random.default_rng(args.seed)
    centres = vectors(5000, args.dim, rng) if args.clustered else None
    t0 = time.perf_counter()
    gallery = vectors(args.gallery, args.dim, rng, centres)
    queries = vectors(args.queries, args.dim, rng, centres)
    base = PeakRSS(tree=True).sample()
    backend = args.backend if args.backend != "auto" else default_backend()
    if args.backend == "reservoir" or backend == "reservoir":  # compile the kernels outside the timing
        list(exact_search(queries[:4], gallery[:600], 5, backend="reservoir"))
    args.gallery_block = args.gallery_block or (4096 if backend == "reservoir" else 16384)
    print(f"vectors: {args.queries:,} queries x {args.gallery:,} gallery, dim {args.dim}, top-{args.k}, "
          f"{'clustered' if args.clustered else 'random'}; {(gallery.nbytes + queries.nbytes) / 2**20:,.0f} MiB "
          f"(made in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores; RSS {base / 2**20:,.0f} MiB")

    with PeakRSS(tree=True) as mem:
        t0 = time.perf_counter()
        first_ours = None
        n = 0
        for hits in exact_search(queries, gallery, args.k, block=args.block, gallery_block=args.gallery_block,
                                 backend=backend):
            if first_ours is None:
                first_ours = hits.index
            n += len(hits.index)
        ours = time.perf_counter() - t0
    bound = args.block * min(args.gallery_block, args.gallery) * 4
    print(f"ours exact ({backend}, block {args.block} x {args.gallery_block}): {ours:.1f} s, "
          f"{n / ours:,.0f} queries/s; tree peak RSS {mem.peak / 2**20:,.0f} MiB "
          f"(+{(mem.peak - base) / 2**20:,.0f} MiB over the vectors; score block {bound / 2**20:,.0f} MiB)")
    if args.skip_faiss:
        return 0
    with PeakRSS(tree=True) as mem:
        t0 = time.perf_counter()
        first_faiss = None
        for hits in faiss_search(queries, gallery, args.k, kind="flat", block=args.block):
            if first_faiss is None:
                first_faiss = hits.index
        theirs = time.perf_counter() - t0
    print(f"faiss IndexFlatIP (same blocks): {theirs:.1f} s, {args.queries / theirs:,.0f} queries/s; "
          f"tree peak RSS {mem.peak / 2**20:,.0f} MiB (+{(mem.peak - base) / 2**20:,.0f} MiB over the vectors, index copy included)")
    same = np.mean([len(np.intersect1d(a, b)) / len(a) for a, b in zip(first_ours, first_faiss)])
    print(f"ratio ours / faiss: {ours / theirs:.3f} (target <= 1.1); identical neighbours on the first block: {same:.4f}")
    return 0


def score_images(args) -> int:
    """Full pools runs of one demo store per ``pools.image``, scored against its truth, printed side by side."""
    from m5data import stages
    from m5data.annotate.pools.job import build_pools, score_pools
    from m5data.config import load
    from m5data.storage import Store

    store = Store.open(args.score)
    images = [x.strip() for x in args.images.split(",") if x.strip()]
    ks = tuple(sorted({1, 5, 10, 50, args.k}))
    if "vectors" in images and not store.count("image_vectors"):
        over = {"store.path": str(store.root), **({"vision.model": args.vision_model} if args.vision_model else {})}
        s = load(None, over, environ={})
        stages.check("vision", s, {})
        t0 = time.perf_counter()
        made = stages.call("vision", stages.RunContext(s, _store=store))
        print(f"vision: {made.n_out:,} image vectors of {made.details['model']} in {time.perf_counter() - t0:.1f} s "
              f"({made.n_failed} failed)")
    print(f"store {store.root}: {store.count('products'):,} products, every one a query, K = {args.k}")
    head = "".join(f"{'recall@' + str(x):>12}" for x in ks)
    print(f"{'pools.image':<12}{'text w':>7}{head}{'MRR':>8}{'pairs':>7}{'seconds':>9}  embedder; zero image blocks")
    runs = [(i, float(w)) for w in args.text_weights.split(",") for i in images if not (float(w) == 0 and i == "none")]
    for image, weight in runs:
        s = load(None, {"store.path": str(store.root), "pools.queries": 1.0, "pools.k": args.k, "pools.image": image,
                        "pools.text_weight": weight}, environ={})
        t0 = time.perf_counter()
        report = build_pools(store, s, full=True)
        seconds = time.perf_counter() - t0
        score = score_pools(store, args.truth, ks=ks)
        mrr = _mean_reciprocal_rank(store, args.truth)
        zero = {r.split(": ", 1)[1]: n for r, n in report.gaps.items() if r.startswith("zero image block") and n}
        cells = "".join(f"{score['recall'][x]:>12.4f}" for x in ks)
        print(f"{image:<12}{weight:>7g}{cells}{mrr:>8.4f}{score['pairs']:>7}{seconds:>9.1f}  {report.embedder}; {zero or 'none'}")
    return 0


def _mean_reciprocal_rank(store, truth) -> float:
    """Mean of 1 / rank of each true pair (query, other listing of its instance) in the query's pool (0: not in it)."""
    from m5data.storage.truth_files import true_instances

    inst = true_instances(truth)
    rows = store.read("pools", columns=["query_id", "candidate_id", "rank"]).to_pylist()
    ranks = {(r["query_id"], r["candidate_id"]): r["rank"] for r in rows}
    members: dict[str, list[str]] = {}
    for p, i in inst.items():
        members.setdefault(i, []).append(p)
    queries = {r["query_id"] for r in rows}
    pairs = [(q, p) for q in queries if q in inst for p in members[inst[q]] if p != q]
    return sum(1 / ranks[pair] for pair in pairs if pair in ranks) / len(pairs) if pairs else float("nan")


if __name__ == "__main__":
    sys.exit(main())
