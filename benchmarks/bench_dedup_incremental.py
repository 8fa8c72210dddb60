"""Incremental dedup against a full rebuild on a scale-world store: time in the process and agreement.

On a fresh copy of a built scale store (``bench_scale.py``'s, cached under ``--work``): a first
(full) dedup, then ``bench_incremental.py``'s growth (``--new-share`` new products, copies of
existing ones under new ids, and ``--changed-share`` re-written titles), then the incremental run
and a full rebuild over the same grown store, each timed around ``dedup()`` in this one process
(numba compiled beforehand: no interpreter start, no compilation). Printed: both runs' seconds
(wall and CPU of this process: on a shared machine the CPU seconds are the steadier), CPU per step, the ratio, and the pair agreement of the incremental groups with the full rebuild's (pairs
of products in one group: precision and recall of the incremental run's against the full's), per
rule of the full run's strongest pair::

    python benchmarks/bench_dedup_incremental.py --products 100000 --work /work/scratch/scale
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import GROW  # noqa: E402
from bench_scale import ROOT, fresh_copy  # noqa: E402


def same_group_pairs(table) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for pid, gid in zip(table.column("product_id").to_pylist(), table.column("group_id").to_pylist()):
        groups.setdefault(gid, []).append(pid)
    return {p for members in groups.values() if len(members) > 1 for p in combinations(sorted(members), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--changed-share", type=float, default=0.001)
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-scale"))
    ap.add_argument("--out", type=Path, default=None, help="where the copy goes (default: --work)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--matcher", default="rules", help="dedup.matcher (learned needs a trained model)")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the incremental run into this file (CPU seconds of the process: the steadier clock on a shared machine)")
    args = ap.parse_args()

    from m5data import config as cfg
    from m5data.annotate.dedup import near_jit, spec_jit
    from m5data.annotate.dedup.job import dedup
    from m5data.storage import Store

    base = args.work / f"store-{args.products}-s{args.seed}"
    if not base.is_dir():
        sys.exit(f"no built store at {base}: run bench_scale.py --sizes {args.products} first")
    run = (args.out or args.work) / f"dedup-incremental-{args.products}"
    fresh_copy(base, run)
    path = str(run / "store")
    settings = cfg.load(None, {"store.path": path, "dedup.matcher": args.matcher}, environ={})
    near_jit.warm_up()
    spec_jit.warm_up()
    store = Store.open(path)

    def timed(label: str, profile: Path | None = None, **kw):
        prof = None
        if profile is not None:
            import cProfile

            prof = cProfile.Profile(time.process_time)
        t, c = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        report = dedup(store, settings, **kw)
        if prof is not None:
            prof.disable()
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        if prof is not None:
            prof.dump_stats(str(profile))
        steps = ", ".join(f"{k} {v:.2f}" for k, v in report.cpu_seconds.items())
        spec = report.stats.details.get("spec_searched")
        print(f"  {label:<12} {secs:7.2f} s ({cpu:.2f} s CPU)  searched {report.searched:,} of {report.n_products:,}"
              + (f" (spec rule: {spec:,})" if spec is not None else "") + "; "
              f"changes {report.stats.details.get('changes')}; CPU s per step: {steps}", flush=True)
        return report, secs, cpu

    timed("first", full=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    grown = subprocess.run([sys.executable, "-c", GROW, path, str(args.new_share), str(args.changed_share)],
                           env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"  grown: {grown.stdout.strip().splitlines()[-1]}")
    inc, inc_s, inc_c = timed("incremental", args.profile)
    inc_pairs = same_group_pairs(inc.table)
    full, full_s, full_c = timed("full", full=True)
    full_pairs = same_group_pairs(full.table)
    both = len(inc_pairs & full_pairs)
    print(f"incremental {inc_s:.2f} s against full {full_s:.2f} s (ratio {inc_s / full_s:.2f}; CPU {inc_c:.2f} s against "
          f"{full_c:.2f} s, ratio {inc_c / full_c:.2f}); same-group pairs: "
          f"incremental {len(inc_pairs):,}, full {len(full_pairs):,}, both {both:,}: precision "
          f"{both / max(1, len(inc_pairs)):.5f}, recall {both / max(1, len(full_pairs)):.5f}")
    rule = dict(zip(full.table.column("product_id").to_pylist(), full.table.column("rule").to_pylist()))
    for r in sorted({x for x in rule.values() if x}):
        mine = {p for p in full_pairs if rule[p[0]] == r or rule[p[1]] == r}
        missed = len(mine - inc_pairs)
        print(f"  rule {r:<12} full pairs touching it {len(mine):>8,}  missed by incremental {missed:>6,}")
    extra = inc_pairs - full_pairs
    print(f"  pairs only the incremental run has: {len(extra):,}" + (f" e.g. {sorted(extra)[:3]}" if extra else ""))


if __name__ == "__main__":
    main()
