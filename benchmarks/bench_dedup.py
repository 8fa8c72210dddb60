"""Benchmark the dedup indexes on synthetic titles + 64-bit hashes (no media), against brute force.

    .venv/bin/python benchmarks/bench_dedup.py [--rows 1000000] [--sample 20000] [--batch 20000]

Rows are generated and indexed batch by batch (titles of Chinese characters, 15-45 long; random
64-bit "pHashes"); ``--dup-rate`` of each batch are near copies of an earlier row of the batch
(0-3 characters changed, maybe a suffix; 0-9 hash bits flipped). Only the hashes (8 bytes a row)
and the LSH index (band keys + 16-bit signature values) are kept, never the titles. Prints:

* rows/s of each part (title shingles + MinHash + band keys; pHash multi-index; LSH pairs;
  connected components) and of the whole, and the peak RSS so far of the process tree (RSS summed,
  sampled by ``peak_rss.PeakRSS``);
* on the first ``--sample`` rows: the pHash multi-index against all pairs (same pairs? time ratio),
  and MinHash/LSH against the exact Jaccard of every pair (a sparse shingle-incidence product:
  the brute-force pass) and against datasketch's own MinHash + MinHashLSH (agreement, time ratio).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from peak_rss import PeakRSS

POOL = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]


def make_batch(rng: random.Random, n: int, dup_rate: float) -> tuple[list[str], list[int], list[int]]:
    """``n`` titles and hashes; a ``dup_rate`` share are near copies; returns titles, hashes, source row (-1 = fresh)."""
    titles, hashes, source = [], [], []
    for i in range(n):
        if i > 10 and rng.random() < dup_rate:
            j = rng.randrange(i)
            chars = list(titles[j])
            for _ in range(rng.randint(0, 3)):
                chars[rng.randrange(len(chars))] = rng.choice(POOL)
            titles.append("".join(chars) + rng.choice(["", "", "包邮", "正品现货"]))
            flips = rng.sample(range(64), rng.randint(0, 9))
            hashes.append(hashes[j] ^ sum(1 << b for b in flips))
            source.append(j)
        else:
            titles.append("".join(rng.choice(POOL) for _ in range(rng.randint(15, 45))))
            hashes.append(rng.getrandbits(64))
            source.append(-1)
    return titles, hashes, source


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="rows compared with the brute-force passes")
    parser.add_argument("--batch", type=int, default=20_000, help="rows generated and indexed at once")
    parser.add_argument("--dup-rate", type=float, default=0.1)
    parser.add_argument("--phash-threshold", type=int, default=6)
    parser.add_argument("--minhash-threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--shingle", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from m5data.annotate.dedup import near, phash

    with PeakRSS(tree=True) as mem:
        rng = random.Random(args.seed)
        n = args.rows
        hashes = np.empty(n, dtype=np.uint64)
        index = near.LSHIndex(args.minhash_threshold, args.num_perm)
        sample_titles: list[str] = []
        t_gen = t_sig = 0.0
        t_all = time.perf_counter()
        c_all = time.process_time()
        for s in range(0, n, args.batch):
            t0 = time.perf_counter()
            titles, hs, _ = make_batch(rng, min(args.batch, n - s), args.dup_rate)
            hashes[s:s + len(hs)] = np.array(hs, dtype=np.uint64)
            if s < args.sample:
                sample_titles.extend(titles[: args.sample - s])
            t1 = time.perf_counter()
            values, offsets = near.title_hashes([near.normalise_title(t) for t in titles], args.shingle)
            index.add(values, offsets)
            t_gen += t1 - t0
            t_sig += time.perf_counter() - t1
        t0 = time.perf_counter()
        pl, pr, _ = phash.phash_pairs(hashes, args.phash_threshold)
        t_phash = time.perf_counter() - t0
        t0 = time.perf_counter()
        ml, mr, _ = index.pairs()
        t_lsh = time.perf_counter() - t0
        t0 = time.perf_counter()
        left, right = np.concatenate([pl, ml]), np.concatenate([pr, mr])
        _, label = connected_components(coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n)), directed=False)
        groups = int((np.bincount(label) >= 2).sum())
        t_cc = time.perf_counter() - t0
        work = t_sig + t_phash + t_lsh + t_cc
        cpu = time.process_time() - c_all
        print(f"rows {n:,} (batch {args.batch:,}, dup rate {args.dup_rate}); generating titles took {t_gen:.1f} s (not counted)")
        print(f"  shingles + MinHash + band keys  {t_sig:7.1f} s  {n / t_sig:12,.0f} rows/s")
        print(f"  pHash multi-index (<= {args.phash_threshold} bits)  {t_phash:7.1f} s  {n / t_phash:12,.0f} rows/s  {len(pl):,} pairs")
        print(f"  LSH pairs (J >= {args.minhash_threshold}, {index.bands} bands x {index.rows} rows)  {t_lsh:7.1f} s  "
              f"{n / t_lsh:12,.0f} rows/s  {len(ml):,} pairs")
        print(f"  connected components            {t_cc:7.1f} s  {groups:,} groups of 2+")
        print(f"  total (indexing, no generation) {work:7.1f} s  {n / work:12,.0f} rows/s; wall {time.perf_counter() - t_all:.1f} s, "
              f"CPU {cpu:.1f} s (generation included; the machine is shared: wall > CPU means waiting for a core)")
        print(f"  tree peak RSS so far {mem.peak / 2**20:,.0f} MiB (now {mem.sample() / 2**20:,.0f} MiB)")
        del index

        m = min(args.sample, n)
        h = hashes[:m]
        t0 = time.perf_counter()
        il, ir, _ = phash.phash_pairs(h, args.phash_threshold)
        t_idx = time.perf_counter() - t0
        t0 = time.perf_counter()
        brute = {(a, b) for a, b, _ in phash.brute_force_phash_pairs(h, args.phash_threshold)}
        t_brute = time.perf_counter() - t0
        same = brute == set(zip(il.tolist(), ir.tolist()))
        print(f"sample {m:,} rows, pHash <= {args.phash_threshold}: multi-index {t_idx:.2f} s, all pairs {t_brute:.2f} s "
              f"-> {t_brute / t_idx:.1f}x faster; pairs {len(il):,} vs {len(brute):,}: {'same pairs' if same else 'DIFFERENT'}")

        titles = [near.normalise_title(t) for t in sample_titles[:m]]
        t0 = time.perf_counter()
        values, offsets = near.title_hashes(titles, args.shingle)
        ll, lr, _ = near.lsh_pairs(values, offsets, args.minhash_threshold, args.num_perm)
        t_ours = time.perf_counter() - t0
        ours = set(zip(ll.tolist(), lr.tolist()))
        t0 = time.perf_counter()
        exact = exact_jaccard_pairs(values, offsets, args.minhash_threshold)
        t_exact = time.perf_counter() - t0
        both = len(ours & exact)
        print(f"sample {m:,} titles, J >= {args.minhash_threshold}: LSH {t_ours:.2f} s found {len(ours):,} pairs; exact Jaccard "
              f"of all pairs (sparse product) {t_exact:.2f} s found {len(exact):,}; recall {both / max(1, len(exact)):.4f}, "
              f"precision {both / max(1, len(ours)):.4f}")
        t0 = time.perf_counter()
        theirs = datasketch_pairs(titles, args.shingle, args.num_perm, args.minhash_threshold)
        t_ds = time.perf_counter() - t0
        agree = len(ours & theirs) / max(1, len(ours | theirs))
        print(f"  datasketch MinHash + MinHashLSH on the same titles {t_ds:.2f} s -> ours {t_ds / t_ours:.1f}x faster; "
              f"{len(theirs):,} pairs, agreement (|both| / |either|) {agree:.4f}")
    print(f"tree peak RSS {mem.peak / 2**20:,.0f} MiB (this process and any children, sampled)")
    return 0 if same else 1


def exact_jaccard_pairs(values, offsets, threshold: float) -> set[tuple[int, int]]:
    """Every pair with exact Jaccard >= threshold of the shingle-hash sets: one sparse product X X^T."""
    import numpy as np
    from scipy.sparse import csr_matrix, triu

    n = len(offsets) - 1
    rows = np.repeat(np.arange(n), np.diff(offsets))
    uniq, cols = np.unique(values, return_inverse=True)
    x = csr_matrix((np.ones(len(values)), (rows, cols)), shape=(n, len(uniq)))
    x.data[:] = 1.0  # sets, not multisets (sum_duplicates added repeats up)
    x.sum_duplicates()
    x.data[:] = 1.0
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = triu(x @ x.T, k=1).tocoo()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = jac >= threshold
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist()))


def datasketch_pairs(titles: list[str], k: int, num_perm: int, threshold: float) -> set[tuple[int, int]]:
    """The same search with datasketch's MinHash (one update per shingle) and MinHashLSH."""
    from datasketch import MinHash, MinHashLSH

    from m5data.annotate.dedup import near

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    for i, t in enumerate(titles):
        m = MinHash(num_perm=num_perm, seed=1, hashfunc=lambda s: near.shingle_hash(s, k))
        shingles = [t[j:j + k] for j in range(len(t) - k + 1)] if len(t) >= k else ([t] if t else [])
        m.update_batch(shingles)
        hashes.append(m)
        lsh.insert(i, m)
    out = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if i < j and m.jaccard(hashes[j]) >= threshold:
                out.add((i, j))
    return out


if __name__ == "__main__":
    sys.exit(main())
