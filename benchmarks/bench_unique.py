"""m5data.arrays' sort-based set operations against NumPy's own, on dedup's kind of keys.

    python benchmarks/bench_unique.py [--sizes 100000,1000000,3000000] [--repeat 3]

The keys are packed candidate pairs (``lo << 32 | hi`` uint64, about 10% of them repeated), as
dedup's indexes make them. For each size: ``np.unique`` against ``arrays.unique``, ``np.union1d``
against ``arrays.union`` (the keys and a third as many others) and ``np.isin`` against
``arrays.isin`` (the keys among a third as many, half of them present); CPU seconds, best of
``--repeat``, and the ratio NumPy / ours. Both answers are checked equal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from m5data import arrays


def pairs(rng: np.random.Generator, n: int) -> np.ndarray:
    lo = rng.integers(0, 1_000_000, n).astype(np.uint64)
    hi = lo + rng.integers(1, 1_000_000, n).astype(np.uint64)
    keys = (lo << np.uint64(32)) | hi
    keys[: n // 10] = keys[n // 10: 2 * (n // 10)]
    return rng.permutation(keys)


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,3000000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}")
    print(f"{'keys':>10} {'operation':<8} {'numpy s':>9} {'ours s':>9} {'numpy/ours':>11}")
    for n in map(int, args.sizes.split(",")):
        keys, others = pairs(rng, n), pairs(rng, n // 3 + 1)
        some = np.r_[keys[: len(others) // 2], others[: len(others) - len(others) // 2]]
        for name, theirs, ours in (
                ("unique", lambda: np.unique(keys), lambda: arrays.unique(keys)),
                ("union", lambda: np.union1d(keys, others), lambda: arrays.union(keys, others)),
                ("isin", lambda: np.isin(keys, some), lambda: arrays.isin(keys, some))):
            t_np, a = best(theirs, args.repeat)
            t_us, b = best(ours, args.repeat)
            assert np.array_equal(a, b), name
            print(f"{n:>10,} {name:<8} {t_np:>9.3f} {t_us:>9.3f} {t_np / max(t_us, 1e-9):>10.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
