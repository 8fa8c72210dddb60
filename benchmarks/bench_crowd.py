"""Benchmark crowd-label aggregation: seconds and accuracy of each method on the same judgements.

    .venv/bin/python benchmarks/bench_crowd.py [--pairs 25000] [--per-pair 5] [--workers 40] [--crowdkit-pairs 25000]

Judgements are drawn from GLAD's generative model as ``m5data annotate simulate`` draws them: a
pool of workers (reliable with ability 0.4..3, 15% spammers with ability 0, one adversarial with
-1.5), each pair judged by ``--per-pair`` distinct workers, inverse difficulty exp(N(0.6, 0.4)),
P(match) ``--match-rate``, 5% of the pairs gold questions. Accuracy is measured on the non-gold
pairs. Methods: ours GLAD with gold clamping (the default of ``m5data annotate aggregate``), ours
GLAD without gold, majority vote, ours Dawid-Skene, and crowd-kit's GLAD and DawidSkene (no gold:
crowd-kit's GLAD accepts none) on the first ``--crowdkit-pairs`` pairs. Also prints the Spearman
correlation of each GLAD's abilities with the true ones.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=25_000)
    parser.add_argument("--per-pair", type=int, default=5)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--match-rate", type=float, default=0.2)
    parser.add_argument("--gold", type=float, default=0.05)
    parser.add_argument("--crowdkit-pairs", type=int, default=25_000, help="0 = skip crowd-kit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np
    from peak_rss import PeakRSS
    from scipy.stats import spearmanr

    from m5data.annotate.crowd.glad import dawid_skene, glad, majority
    from m5data.annotate.crowd.simulate import simulated_workers

    with PeakRSS(tree=True) as mem:
        rng = np.random.default_rng(args.seed)
        _, alpha, _ = simulated_workers(args.workers, 0.15, args.seed)
        n, per = args.pairs, args.per_pair
        z = (rng.random(n) < args.match_rate).astype(np.int64)
        beta = np.exp(rng.normal(0.6, 0.4, n))
        who = np.argsort(rng.random((n, args.workers)), axis=1)[:, :per]
        task, worker = np.repeat(np.arange(n), per), who.ravel()
        right = rng.random(len(task)) < 1 / (1 + np.exp(-alpha[worker] * beta[task]))
        label = np.where(right, z[task], 1 - z[task])
        gold = np.full(n, -1)
        g = rng.choice(n, int(n * args.gold), replace=False)
        gold[g] = z[g]
        test = gold < 0
        print(f"judgements: {len(task):,} ({n:,} pairs x {per}) by {args.workers} workers; "
              f"{int(z.sum()):,} true matches; {len(g):,} gold pairs; accuracy on the {int(test.sum()):,} others")

        rows = []

        def run(name, fn, mask=test, truth_alpha=None):
            t0 = time.perf_counter()
            res = fn()
            secs = time.perf_counter() - t0
            prob = res[0] if isinstance(res, tuple) else res.prob
            acc = float(((prob > 0.5) == z[: len(prob)])[mask[: len(prob)]].mean())
            sp = ""
            if truth_alpha is not None:
                sp = f"{spearmanr(truth_alpha, res.ability).statistic:.4f}"
            rows.append((name, secs, acc, sp))
            print(f"{name:32s} {secs:8.2f} s   accuracy {acc:.4f}   ability Spearman {sp or '-'}", flush=True)

        run("ours GLAD, gold clamped", lambda: glad(task, worker, label, n, args.workers, gold=gold), truth_alpha=alpha)
        run("ours GLAD, no gold", lambda: glad(task, worker, label, n, args.workers), truth_alpha=alpha)
        run("majority vote", lambda: majority(task, worker, label, n, args.workers))
        run("ours Dawid-Skene, gold clamped", lambda: dawid_skene(task, worker, label, n, args.workers, gold=gold))
        if args.crowdkit_pairs:
            import warnings

            import pandas as pd
            from crowdkit.aggregation import GLAD, DawidSkene

            warnings.filterwarnings("ignore")  # crowd-kit 1.4.2 warns on every pandas call under pandas 3
            m = min(args.crowdkit_pairs, n)
            sub = task < m
            df = pd.DataFrame({"task": task[sub], "worker": worker[sub], "label": label[sub]})

            def ck(model):
                fitted = model.fit(df)
                p = fitted.probas_[1].reindex(range(m)).fillna(0.5).to_numpy()
                ab = getattr(fitted, "alphas_", None)

                class R:
                    prob = p
                    ability = ab.reindex(range(args.workers)).to_numpy() if ab is not None else None
                return R

            run(f"crowd-kit GLAD ({m:,} pairs)", lambda: ck(GLAD(n_iter=100)), truth_alpha=alpha)
            run(f"crowd-kit DawidSkene ({m:,} pairs)", lambda: ck(DawidSkene(n_iter=100)))
    base = next(r for r in rows if r[0] == "majority vote")
    ours = rows[0]
    print(f"ours GLAD vs majority: accuracy {ours[2]:.4f} vs {base[2]:.4f}; tree peak RSS "
          f"{mem.peak / 2**20:,.0f} MiB")
    ck_rows = [r for r in rows if r[0].startswith("crowd-kit GLAD")]
    if ck_rows:
        m = min(args.crowdkit_pairs, n)
        print(f"seconds per 1,000 pairs: crowd-kit GLAD {1000 * ck_rows[0][1] / m:.2f}, ours GLAD (no gold) "
              f"{1000 * rows[1][1] / n:.2f}: {ck_rows[0][1] / m / (rows[1][1] / n):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
