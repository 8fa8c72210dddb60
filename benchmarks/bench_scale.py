"""How every global stage scales with the number of products, on scale worlds.

For each size: generate a scale world (``m5data.demo.scale``), build its store with
``build_scale_store`` (no crawl), then run each global stage as a user would, ``python -m m5data
...`` in its own process, on a fresh copy of the built store (tables copied, blobs and derived
files hard-linked), in order: align, annotate dedup / match-level / pools (the papers' query count
scaled to the size), build-splits, check-splits, export (webdataset, parquet, m5product), report,
stats, doctor, three sql queries, compact.

Printed per stage and size: seconds, microseconds per product, peak RSS of the stage's process
(the sum over its whole process tree, sampled by ``peak_rss.run_measured``), and the
growth of time per product from one size to the next. Last line::

    scale: worst growth X.XXx per product (STAGE) from N1 to N2; whole-tree peak RSS Y.Y GiB (STAGE) at N2

    python benchmarks/bench_scale.py --sizes 10000,100000 --work /tmp/m5scale
    python benchmarks/bench_scale.py --sizes 2000,10000 --stages align,dedup,stats

Worlds and built stores are cached under ``--work`` per size and seed, and reused when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# M5Product's retrieval queries (query-c 24,410 + query-fg 1,991) over its 6,313,067 products
# (shared/papers/README.md), each with a top-500 candidate pool
PAPER_QUERIES, PAPER_PRODUCTS, PAPER_K = 24_410 + 1_991, 6_313_067, 500

SQL = {
    "sql-categories": "SELECT category_path[1] AS category, count(*) AS n FROM products GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "sql-properties": "SELECT property, count(*) AS n, count(DISTINCT value) AS v FROM specs GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "sql-modalities": "SELECT count(*) FROM products p JOIN media m USING (product_id) "
                      "WHERE m.kind = 'image' AND m.status = 'ok' AND p.has_caption",
}
STAGES = ["align", "dedup", "match-level", "pools", "build-splits", "check-splits", "export-webdataset",
          "export-parquet", "export-m5product", "report", "stats", "doctor", *SQL, "compact"]


def pool_queries(n: int) -> int:
    """The papers' query count scaled to ``n`` products (at least 10)."""
    return max(10, round(n * PAPER_QUERIES / PAPER_PRODUCTS))


def stage_argv(stage: str, n: int, world: Path, run: Path) -> list[str]:
    """The ``m5data`` arguments of one stage."""
    if stage == "align":
        return ["align", "--mapping", str(world / "truth" / "level1_mapping.toml"), "--review-out", str(run / "review.csv")]
    if stage in ("dedup", "match-level"):
        return ["annotate", stage]
    if stage == "pools":
        return ["annotate", "pools", "--queries", str(pool_queries(n)), "-k", str(min(PAPER_K, n - 1))]
    if stage in ("build-splits", "check-splits", "stats", "doctor"):
        return [stage]
    if stage.startswith("export-"):
        fmt = stage.split("-", 1)[1]
        return ["export", "--split", "all", "--format", fmt, "--out", str(run / f"export-{fmt}")]
    if stage == "report":
        return ["report", "--out", str(run / "report")]
    if stage in SQL:
        return ["sql", SQL[stage]]
    if stage == "compact":
        return ["compact"]
    raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")


def run_child(argv: list[str], log: Path, env: dict) -> tuple[float, int, int]:
    """Run one process; return (seconds, exit status, peak RSS in bytes of its whole process tree)."""
    from peak_rss import run_measured

    with open(log, "wb") as out:
        done = run_measured(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return done.seconds, done.returncode, done.peak


def fresh_copy(base: Path, run: Path) -> None:
    """A copy of the built store whose tables are private and whose blobs are hard links."""
    if run.exists():
        shutil.rmtree(run)
    link_copy(base, run / "store")


def link_copy(src: Path, dst: Path) -> None:
    """Copy the store folder ``src`` to ``dst``: its tables private, its blobs and derived files hard links."""
    def copy(a, b):
        if "/tables/" in a or not any(f"/{d}/" in a for d in ("blobs", "derived")):
            return shutil.copy2(a, b)
        return os.link(a, b)

    shutil.copytree(src, dst, copy_function=copy)


def prepare(n: int, seed: int, work: Path, workers: int, video_share: float, env: dict) -> dict:
    """Generate the world and build its store for size ``n`` (cached); return their timings."""
    world, store = work / f"world-{n}-s{seed}", work / f"store-{n}-s{seed}"
    done = store / ".bench-built.json"
    if done.exists():
        return json.loads(done.read_text()) | {"cached": True}
    t = time.perf_counter()
    code = ("import sys; from m5data.demo.scale import ScaleConfig, generate_scale; "
            f"generate_scale({str(world)!r}, ScaleConfig(products={n}, seed={seed}, video_share={video_share}), "
            f"workers={workers})")
    secs, rc, rss = run_child([sys.executable, "-c", code], work / f"generate-{n}.log", env)
    if rc:
        sys.exit(f"generating {n} failed: see {work / f'generate-{n}.log'}")
    gen = {"generate_s": secs, "generate_rss": rss}
    if store.exists():
        shutil.rmtree(store)
    code = ("from m5data.demo.scale import build_scale_store; "
            f"print(build_scale_store({str(world)!r}, {str(store)!r}, workers={workers}))")
    secs, rc, rss = run_child([sys.executable, "-c", code], work / f"build-{n}.log", env)
    if rc:
        sys.exit(f"building the store of {n} failed: see {work / f'build-{n}.log'}")
    info = gen | {"build_s": secs, "build_rss": rss, "total_s": time.perf_counter() - t}
    done.write_text(json.dumps(info))
    return info


def _size(n: int) -> str:
    """A size as a column label: 10k, 1000k, 300."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-scale"))
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in this order: " + ",".join(STAGES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes for generating and building")
    ap.add_argument("--video-share", type=float, default=0.05)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stages = [s for s in args.stages.split(",") if s]
    for s in stages:
        stage_argv(s, 100, Path("."), Path("."))  # unknown stages fail before any work
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    results: dict[tuple[str, int], tuple[float, int, int]] = {}
    for n in sizes:
        prep = prepare(n, args.seed, args.work, args.workers, args.video_share, env)
        if not prep.get("cached"):
            print(f"size {n:,}: world {prep['generate_s']:.1f} s ({n / prep['generate_s']:,.0f} products/s, "
                  f"whole-tree peak RSS {prep['generate_rss'] / 2**30:.2f} GiB); store {prep['build_s']:.1f} s "
                  f"({n / prep['build_s']:,.0f} products/s, peak {prep['build_rss'] / 2**30:.2f} GiB)", flush=True)
        else:
            print(f"size {n:,}: world and store cached (built in {prep['generate_s']:.1f} s + {prep['build_s']:.1f} s)")
        run = args.work / f"run-{n}"
        fresh_copy(args.work / f"store-{n}-s{args.seed}", run)
        world = args.work / f"world-{n}-s{args.seed}"
        for stage in stages:
            argv = [sys.executable, "-m", "m5data", "--store", str(run / "store"), *stage_argv(stage, n, world, run)]
            secs, rc, rss = run_child(argv, run / f"{stage}.log", env)
            results[(stage, n)] = (secs, rc, rss)
            print(f"  {stage:<18} {secs:9.2f} s {secs / n * 1e6:9.1f} us/product {rss / 2**30:6.2f} GiB tree peak"
                  + ("" if rc == 0 else f"  FAILED (exit {rc}, see {run / f'{stage}.log'})"), flush=True)
    print()
    head = f"{'stage':<18}" + "".join(f"{n:>26,}" for n in sizes) + "".join(
        f"  growth {_size(a)}->{_size(b)}" for a, b in zip(sizes, sizes[1:]))
    print(head)
    print(" " * 18 + "".join(f"{'s   us/prod  tree GiB':>26}" for _ in sizes))
    worst = (0.0, "", 0, 0)
    for stage in stages:
        line = f"{stage:<18}"
        for n in sizes:
            secs, rc, rss = results[(stage, n)]
            line += f"{secs:>10.2f}{secs / n * 1e6:>9.1f}{rss / 2**30:>7.2f}" + ("!" if rc else " ")
        for a, b in zip(sizes, sizes[1:]):
            g = (results[(stage, b)][0] / b) / (results[(stage, a)][0] / a)
            line += f"{g:>18.2f}x"
            if g > worst[0]:
                worst = (g, stage, a, b)
        print(line)
    failed = [f"{s}@{n}" for (s, n), (_, rc, _) in results.items() if rc]
    if failed:
        print("failed: " + ", ".join(failed))
    top = sizes[-1]
    rss_stage = max(stages, key=lambda s: results[(s, top)][2])
    rss = results[(rss_stage, top)][2] / 2**30
    if len(sizes) > 2:  # the bound is on the whole range: smallest to largest size
        a, b = sizes[0], sizes[-1]
        span = {s: (results[(s, b)][0] / b) / (results[(s, a)][0] / a) for s in stages if not results[(s, b)][1]}
        if span:
            s_max = max(span, key=span.get)
            print(f"growth {a} -> {b}: worst {span[s_max]:.2f}x per product ({s_max}); "
                  + ", ".join(f"{s} {g:.2f}x" for s, g in span.items()))
    if len(sizes) > 1:
        print(f"scale: worst growth {worst[0]:.2f}x per product ({worst[1]}) from {worst[2]} to {worst[3]}; "
              f"whole-tree peak RSS {rss:.1f} GiB ({rss_stage}) at {top}")
    else:
        print(f"scale: worst growth n/a (one size); whole-tree peak RSS {rss:.1f} GiB ({rss_stage}) at {top}")


if __name__ == "__main__":
    main()
