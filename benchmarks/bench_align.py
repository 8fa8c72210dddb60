"""Benchmark S_content: the bulk engine over all candidate pairs vs simtext pair by pair.

    .venv/bin/python benchmarks/bench_align.py [--subclasses 3000] [--classes 14] [--sample 6]

Builds a seeded synthetic catalogue (``support.align_world``: jieba-dictionary words, Zipf
word frequencies, brands, specs, marketing words) of ``--subclasses`` platform sub-classes on two
platforms under ``--classes`` classes, each with ``--chars`` characters of titles (MEP-3M: 22,000).
Candidate pairs are all cross-platform pairs inside a class. Prints:

* the bulk time (jieba once per sub-class, one sparse matrix, one sparse product per class);
* simtext's ``compute()`` (the MEP-3M tool) on ``--sample`` random pairs, extrapolated to all
  pairs, and the same for the library's cosine alone (``transform`` + ``cosine_similarity``);
* the speed-up ratios (target >= 50x) and the largest |bulk - simtext| on the sampled pairs
  (target < 1e-9).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the seeded catalogue


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subclasses", type=int, default=3000, help="platform sub-classes over both platforms")
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--chars", type=int, default=22_000, help="title characters per sub-class")
    parser.add_argument("--sample", type=int, default=6, help="pairs timed with simtext")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="jieba processes for the bulk engine")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jieba
    import numpy as np
    from support.align_world import make_world

    from m5data.align.similarity import ContentVectors, content_text, simtext_similarity

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    per_class = max(1, round(args.subclasses / (2 * args.classes)))
    t0 = time.perf_counter()
    world = make_world(seed=args.seed, n_classes=args.classes, subs_per_class=per_class, title_chars=args.chars,
                       kinds={"exact": 0.6, "near": 0.25, "different": 0.05, "finer": 0.1, "single": 0.0})
    texts = [content_text((t for t, _ in s.titles), args.chars) for s in world.subs]
    by_class: dict[int, dict[str, list[int]]] = {}
    for i, s in enumerate(world.subs):
        by_class.setdefault(s.class_id, {}).setdefault(s.platform, []).append(i)
    pairs = [(a, b) for platforms in by_class.values() for a in platforms.get("shopx", [])
             for b in platforms.get("shopy", [])]
    print(f"catalogue: {len(world.subs):,} sub-classes, {args.classes} classes, "
          f"{sum(map(len, texts)) / len(texts):,.0f} chars each, {len(pairs):,} candidate pairs "
          f"(generated in {time.perf_counter() - t0:.1f} s)")

    # Bulk: segment every text once, then one sparse product per class block.
    t0 = time.perf_counter()
    vectors = ContentVectors(texts, workers=args.workers)
    t_segment = time.perf_counter() - t0
    bulk: dict[tuple[int, int], float] = {}
    for platforms in by_class.values():
        left, right = platforms.get("shopx", []), platforms.get("shopy", [])
        if left and right:
            block = vectors.block(left, right)
            for r, a in enumerate(left):
                for c, b in enumerate(right):
                    bulk[(a, b)] = block[r, c]
    t_bulk = time.perf_counter() - t0
    print(f"bulk:    {t_bulk:8.1f} s for all pairs (jieba {t_segment:.1f} s with {args.workers} process(es), "
          f"cosines {t_bulk - t_segment:.2f} s; vocabulary {vectors.segmented.vocabulary_size:,} terms)")

    sample = random.Random(args.seed).sample(pairs, min(args.sample, len(pairs)))
    diffs = []
    t0 = time.perf_counter()
    for a, b in sample:
        diffs.append(abs(simtext_similarity(texts[a], texts[b], full=True) - bulk[(a, b)]))
    per_full = (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    for a, b in sample:
        diffs.append(abs(simtext_similarity(texts[a], texts[b]) - bulk[(a, b)]))
    per_cos = (time.perf_counter() - t0) / len(sample)
    full_all, cos_all = per_full * len(pairs), per_cos * len(pairs)
    print(f"simtext compute(): {per_full:6.2f} s/pair on {len(sample)} pairs -> {full_all:,.0f} s for all pairs "
          f"({full_all / 3600:,.1f} h); ratio {full_all / t_bulk:,.0f}x")
    print(f"simtext cosine only (transform + cosine_similarity): {per_cos:6.3f} s/pair -> {cos_all:,.0f} s; "
          f"ratio {cos_all / t_bulk:,.0f}x")
    worst = max(diffs)
    print(f"max |bulk - simtext| on sampled pairs: {worst:.3e} (target < 1e-9); "
          f"sampled S_content {np.round([bulk[p] for p in sample], 3).tolist()}")
    ok = full_all / t_bulk >= 50 and worst < 1e-9
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
