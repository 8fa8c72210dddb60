"""Pools after a store grew: the incremental run against a full rebuild, in time and in pool membership.

On a fresh copy of a built store (``bench_scale.py``'s cache; blobs hard-linked, tables private):
a first, full pools run; the store grown as ``bench_incremental.py`` grows it (``--new-share`` copies
of products under new ids, ``--changed-share`` re-written titles); the incremental run, whose pools
are kept aside; a full rebuild over the same grown store. Printed: each run's seconds (the call of
``build_pools`` in this process: no interpreter start), its phases, and the share of the full
rebuild's (query, candidate) entries that the incremental pools hold::

    python benchmarks/bench_pools_incremental.py --store /tmp/m5data-bench-scale/store-100000-s0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import GROW  # noqa: E402
from bench_scale import fresh_copy  # noqa: E402


def timed(store, settings, **kwargs):
    from m5data.annotate.pools.job import build_pools

    t = time.perf_counter()
    report = build_pools(store, settings, **kwargs)
    return report, time.perf_counter() - t


def line(label: str, report, secs: float) -> None:
    d = report
    print(f"{label:<12} {secs:8.2f} s  changes {json.dumps(d.changes)}; refit {d.refit}; searched {d.searched:,}; "
          f"wrote {d.rewritten:,} pools; phases {json.dumps(d.timings)}", flush=True)


def entries(store) -> dict[tuple[str, str], int]:
    """{(query, candidate): rank} of the pools table."""
    t = store.read("pools", columns=["query_id", "candidate_id", "rank"])
    return dict(zip(zip(t.column("query_id").to_pylist(), t.column("candidate_id").to_pylist()), t.column("rank").to_pylist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="a built store (copied, never written)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-pools-incremental"))
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--changed-share", type=float, default=0.001)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting, e.g. pools.k=100")
    args = ap.parse_args()
    from m5data import config as cfg
    from m5data.storage import Store

    args.work.mkdir(parents=True, exist_ok=True)
    fresh_copy(args.store, args.work)
    root = args.work / "store"
    store = Store.open(root)
    settings = cfg.load(None, {"store.path": str(root), **dict(kv.split("=", 1) for kv in args.set)}, environ={})
    line("first", *timed(store, settings))
    grown = subprocess.run([sys.executable, "-c", GROW, str(root), str(args.new_share), str(args.changed_share)],
                           capture_output=True, text=True, check=True)
    print("grown:", grown.stdout.strip().splitlines()[-1])
    store = Store.open(root)
    inc, inc_s = timed(store, settings)
    line("incremental", inc, inc_s)
    kept = entries(store)
    full, full_s = timed(store, settings, full=True)
    line("full", full, full_s)
    rebuilt = entries(store)
    agree = sum(e in kept for e in rebuilt) / max(1, len(rebuilt))
    print(f"incremental {inc_s:.2f} s against full {full_s:.2f} s (ratio {inc_s / full_s:.3f}); pool membership "
          f"agreement {agree:.4f} of {len(rebuilt):,} entries")
    # where they differ: the full rebuild's top k entries found anywhere in the incremental pools
    for k in (10, 100, settings.pools.k // 2):
        top = [e for e, r in rebuilt.items() if r <= k]
        print(f"  full rebuild's top {k}: {sum(e in kept for e in top) / max(1, len(top)):.4f} in the incremental pools")


if __name__ == "__main__":
    main()
