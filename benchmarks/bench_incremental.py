"""What a scheduled run costs when little changed: the incremental global stages against full rebuilds.

Builds a scale-world store as ``bench_scale.py`` does (cached under ``--work``), then on a fresh copy
runs each stage in its own process, through ``stages.call`` as the pipeline flow does:

1. the first run (full: no state yet);
2. the re-run with nothing new (each stage should do no work and say ``new 0, changed 0``);
3. after ``--new-share`` new products (copies of existing ones under new ids, with their specs,
   media and captions rows, each with a model number of its own at the end of its title and as one
   more spec value: the names a real night brings) and ``--changed-share`` re-written ones (a changed title), written in one
   write each through the store API: the incremental run, then a full rebuild (``full``) over the
   same grown store.

Printed per stage: seconds of each run (wall, and CPU: the process's and its waited-for children's,
which a loaded machine does not inflate as it does wall time), peak RSS, what the stage said changed,
and the ratio of the incremental run to the full rebuild. Last lines::

    incremental: global stages X.X s against full Y.Y s (ratio R.RR); worst stage S (ratio r.rr)
    by CPU (the wait for a core left out): global stages X.X s against full Y.Y s (ratio R.RR); worst stage ...

numba's cache (``--numba-cache``): ``install`` (the default) gives the stage processes a cache of their own
that only the install step (``python -m m5data.warm``, as ``make setup`` runs it) has filled: what a fresh
clone, or a cluster worker started from a fresh image, finds on its first night. The incremental run is then
measured twice, on two copies of the grown store: the **first night** (whatever the install step left out
is compiled in it) and the **second night** (every kernel in the cache), printed side by side.
``warm-up`` runs the same stages through one night on a store of 2,000 products first (``WARM_UP``) in the
caller's cache; ``as-is`` uses the caller's cache as it is.

``--profile STAGES`` runs those stages' incremental runs under cProfile (``<run-dir>/<stage>-incremental.prof``).

    python benchmarks/bench_incremental.py --products 10000 --new-share 0.01

Stages (``--stages``, pipeline order): vision (opt-in, as in the flow: the image features and codes of the
normalised images; compared with the full rebuild's vectors), align, dedup, match_level and pools (the curation stages), splits,
export (WebDataset, all splits: the incremental run writes the new version beside the first one; the
full rebuild writes into a folder of its own), report. Each stage's seconds are its ``run(ctx)``'s,
timed in its process (the process's own start, imports and numba's cache, printed beside them; the
imports every stage makes, DuckDB, Arrow and the pandas that Arrow's ``to_numpy`` imports, 0.6 s, are
made before the clock starts, and so are numba's start, 0.5-0.7 s that the first call of any compiled function
pays in a process, and jieba's dictionary with scipy's sparse matrices, 0.5 s that align, match-level and pools
each load: the flow runs its stages in one process and pays them once); the
incremental tables of dedup, match-level and pools are compared with the full rebuild's.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import ROOT, fresh_copy, link_copy, prepare, run_child  # noqa: E402

STAGES = ("align", "dedup", "match_level", "pools", "splits", "export", "report")
# not in the default --stages: the vision stage (per picture, opt-in as in the flow; ``--stages vision``)
OPT_IN = ("vision",)
# the table whose incremental rows are compared with the full rebuild's (agreement, below)
TABLES = {"dedup": "dedup", "match_level": "caption_match", "pools": "pools", "vision": "image_vectors"}


def agreement(stage: str, run: Path) -> str:
    """How far the incremental run's table agrees with the full rebuild's over the same store.

    dedup: same-group pairs (share of the union in common); match_level: products with the same level;
    pools: (query, candidate) entries in common, as a share of the full rebuild's.
    """
    import pyarrow.parquet as pq

    inc, full = (pq.read_table(run / f"{stage}-{k}.parquet").to_pylist() for k in ("incremental", "full"))
    if stage == "dedup":
        def pairs(rows):
            groups: dict[str, list[str]] = {}
            for r in rows:
                groups.setdefault(r["group_id"], []).append(r["product_id"])
            return {(a, b) for g in groups.values() for i, a in enumerate(sorted(g)) for b in sorted(g)[i + 1:]}
        a, b = pairs(inc), pairs(full)
        return f"same-group pairs in common {len(a & b):,} of {len(a | b):,} ({len(a & b) / max(1, len(a | b)):.4f})"
    if stage == "vision":  # the same vector (float32 noise aside) for every image
        import numpy as np

        made = {r["media_id"]: r["vector"] for r in full}
        same = sum(r["vector"] is not None and made.get(r["media_id"]) is not None
                   and bool(np.allclose(r["vector"], made[r["media_id"]], atol=1e-5)) for r in inc)
        return f"same vector {same:,} of {len(full):,} images ({same / max(1, len(full)):.4f})"
    if stage == "match_level":
        levels = {r["product_id"]: r["level"] for r in full}
        same = sum(levels.get(r["product_id"], "?") == r["level"] for r in inc)
        return f"same level {same:,} of {len(full):,} products ({same / max(1, len(full)):.4f})"
    a = {(r["query_id"], r["candidate_id"]) for r in inc}
    b = {(r["query_id"], r["candidate_id"]) for r in full}
    return f"pool entries in common {len(a & b):,} of {len(b):,} ({len(a & b) / max(1, len(b)):.4f})"

CHILD = """
import json, sys, time
import duckdb, pandas, pyarrow.parquet  # noqa: F401 (every stage's; pyarrow's to_numpy imports pandas: 0.6 s,
# which the flow's one process pays once for all its stages): the process's imports, not the stage's
import numba, numpy  # numba's start, its import and its CPU target's first set-up (0.5-0.7 s, in the first
numba.njit(lambda x: x + 1)(numpy.int64(1))  # call of any cached function): the flow's one process pays it once,
# for every stage that compiles with it (extract's librosa, dedup, match-level, pools), so it is the process's too
import jieba  # jieba's dictionary (0.5 s), which align, match-level and pools segment with, and scipy's sparse
jieba.setLogLevel(60)  # matrices: loaded once by the flow's one process, for all of them, as numba's start is
jieba.initialize()
from scipy import sparse  # noqa: F401
from m5data import config as cfg
from m5data.stages import RunContext, call
store, stage, options, snapshot = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
settings = cfg.load(None, {"store.path": store} | json.loads(sys.argv[5]), environ={})
def run(ctx):  # the stage as the flow runs it: the contract opens its run (lock, state, fingerprint) and writes its row
    return call(stage, ctx)
def cpu():  # this process's CPU seconds and its waited-for children's (a stage's worker processes)
    import resource
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))
started, cpu0 = time.perf_counter(), cpu()
if sys.argv[6]:  # --profile: this run under cProfile, its stats written there
    import cProfile
    profiler = cProfile.Profile()
    stats = profiler.runcall(run, RunContext(settings).with_options(**options))
    profiler.dump_stats(sys.argv[6])
else:
    stats = run(RunContext(settings).with_options(**options))
d = stats.details
print("RESULT " + json.dumps({"stage_s": time.perf_counter() - started, "stage_cpu": cpu() - cpu0, "changes": d.get("changes"),
                             "n_in": stats.n_in, "status": stats.status,
                             "scored": d.get("scored_pairs"), "pairs": d.get("candidate_pairs"),
                             "shards": d.get("shards"), "written": d.get("shards_written"),
                             "inherited": d.get("shards_inherited"), "kept": d.get("shards_kept"), "refit": d.get("refit"),
                             "searched": d.get("searched"), "why_full": d.get("full"),
                             "rewritten": d.get("rewritten")}))
if snapshot:  # [table, file]: the table as this run left it, for the agreement with the full rebuild
    import pyarrow.parquet as pq
    from m5data.storage import Store
    pq.write_table(Store.open(store).read(snapshot[0]), snapshot[1])
"""

GROW = """
import sys
import pyarrow as pa, pyarrow.compute as pc
from m5data.storage import Store
store, new_share, changed_share = Store.open(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
products = store.read("products")
products = products.take(pc.sort_indices(products, [("product_id", "ascending")]))  # a read's row order varies
n = products.num_rows
new = products.slice(0, max(1, round(n * new_share)))
renamed = {}
for row in new.column("product_id").to_pylist():
    platform, source = row.split(":", 1)
    renamed[row] = f"{platform}:n{source}"
def moved(table):
    ids = [renamed[p] for p in table.column("product_id").to_pylist()]
    return table.set_column(table.schema.get_field_index("product_id"), "product_id", pa.array(ids, pa.string()))
keep = pa.array(list(renamed))
grown = {"products": moved(new).set_column(products.schema.get_field_index("source_id"), "source_id",
                                           pa.array([renamed[p].split(":", 1)[1] for p in new.column("product_id").to_pylist()]))}
for t in ("specs", "captions"):  # one read each: two reads of a table may come in other row orders
    rows = store.read(t)
    grown[t] = moved(rows.filter(pc.is_in(rows.column("product_id"), keep)))
# A real night's new products bring names the store has not seen: each new product gets a model number of
# its own, at the end of its title and as one more spec value (a new word for align's segmentation, a
# new value among dedup's spec codes and the report's spec totals; copies alone brought none)
ids = grown["products"].column("product_id").to_pylist()
models = [f"NX{i:05d}" for i in range(len(ids))]
titles = pc.binary_join_element_wise(grown["products"].column("title"), pa.array(models), " ")
grown["products"] = grown["products"].set_column(products.schema.get_field_index("title"), "title", titles)
specs = grown["specs"]
last = {}
for p, k in zip(specs.column("product_id").to_pylist(), specs.column("position").to_pylist()):
    last[p] = max(last.get(p, -1), k)
extra = [{"product_id": p, "position": last.get(p, -1) + 1, "property": "型号", "value": m} for p, m in zip(ids, models)]
grown["specs"] = pa.concat_tables([specs, pa.Table.from_pylist(extra, schema=specs.schema)])
media = store.read("media")
media = media.filter(pc.is_in(media.column("product_id"), keep))
media = moved(media)
grown["media"] = media.set_column(media.schema.get_field_index("media_id"), "media_id",
                                  pc.binary_join_element_wise(media.column("media_id"), pa.scalar("-n"), ""))
for t, rows in grown.items():
    store.write(t, rows)
changed = products.slice(n - max(1, round(n * changed_share)))
titles = pc.binary_join_element_wise(changed.column("title"), pa.scalar(" (new)"), "")
store.write("products", changed.set_column(changed.schema.get_field_index("title"), "title", titles))
print(f"new {len(renamed)}, changed {changed.num_rows}")
"""


def options(stage: str, world: Path, run: Path, full: bool, label: str) -> dict:
    out = {"full": full}
    if stage == "align":
        out["review_out"] = str(run / "review.csv")  # the mapping file is a setting: align.mapping (main)
    if stage == "report":
        out["out"] = str(run / "report")
    if stage == "export" and label == "full":  # beside the store's exports/: not the incremental one's base
        out["out"] = str(run / "export-full")
    return out


def run_stage(stage: str, run: Path, world: Path, full: bool, label: str, env: dict, overrides: dict,
              profile: str = "") -> dict:
    log = run / f"{stage}-{label}.log"
    table = TABLES.get(stage)
    snapshot = [table, str(run / f"{stage}-{label}.parquet")] if table and label in ("incremental", "full") else None
    argv = [sys.executable, "-c", CHILD, str(run / "store"), stage,
            json.dumps(options(stage, world, run, full, label)), json.dumps(snapshot), json.dumps(overrides), profile]
    secs, rc, rss = run_child(argv, log, env)
    result = {"s": secs, "rss": rss, "rc": rc}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result |= json.loads(line[7:])
    note = ", ".join(f"{k} {v:,}" for k, v in (result.get("changes") or {}).items())
    if result.get("pairs") is not None:  # align: how many candidate pairs this run scored
        note += f"; scored {result['scored']:,} of {result['pairs']:,} pairs"
    if result.get("shards") is not None:  # export: shards written and taken over
        note += f"; wrote {result['written']:,} of {result['shards']:,} shards ({result['inherited'] or 0:,} inherited"
        note += f", {result['kept']:,} copied without the samples that left them)" if result.get("kept") else ")"
    if result.get("refit") is not None:  # match-level, pools: whether the classifier / embedder was fitted again
        note += f"; refit: {result['refit']}"
    if result.get("rewritten") is not None:  # pools: queries searched against the whole gallery, pools written
        note += f"; searched {result['searched']:,}, wrote {result['rewritten']:,} pools"
    elif result.get("searched") is not None:  # dedup: the products whose pairs were searched
        note += f"; searched {result['searched']:,}"
    if result.get("why_full"):  # dedup: why every product was grouped again
        note += f"; full: {result['why_full']}"
    result.setdefault("stage_s", secs)  # a failed child: its process time
    result.setdefault("stage_cpu", float("nan"))
    print(f"  {label:<12} {stage:<12} {result['stage_s']:8.2f} s (CPU {result['stage_cpu']:7.2f} s, process {secs:6.2f} s) "
          f"{rss / 2**30:6.2f} GiB  {note}"
          + ("" if rc == 0 else f"  FAILED (exit {rc}, see {log})"), flush=True)
    return result


# Numba compiles a function the first time a process calls it and keeps it in its cache (``__pycache__``,
# or NUMBA_CACHE_DIR) for every later process: a nightly service pays that once, on its first night. The
# incremental paths call functions the full runs do not (dedup's incremental search: 19 CPU s of
# compiling on a fresh checkout, where its run is 2): so the bench first runs the same stages through a
# night on a store of this many products, and measures with the cache as a second night finds it.
WARM_UP = 2_000


def warm_up(args, stages: list[str], env: dict) -> None:
    """One night of ``stages`` on a small store (first run, growth, incremental run) to fill numba's cache."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--products", str(WARM_UP), "--work", str(args.work),
            "--run-dir", str(args.work / f"warm-up-{WARM_UP}"), "--stages", ",".join(stages), "--full-stages", "none",
            "--no-warm-up", "--numba-cache", "as-is", "--workers", str(args.workers)] + [x for kv in args.set for x in ("--set", kv)]
    secs, rc, _ = run_child(argv, args.work / "warm-up.log", env)
    print(f"warm-up: a night on {WARM_UP:,} products, {secs:.0f} s" + ("" if rc == 0 else f" (failed: {args.work / 'warm-up.log'})"))


def install_cache(work: Path, env: dict) -> dict:
    """A numba cache that only the install step has filled (``python -m m5data.warm``): the env of the stages."""
    cache = work / "numba-install"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**env, "NUMBA_CACHE_DIR": str(cache)}
    secs, rc, _ = run_child([sys.executable, "-m", "m5data.warm"], work / "numba-install.log", env)
    print(f"numba cache: filled by the install step alone (python -m m5data.warm, {secs:.0f} s) at {cache}"
          + ("" if rc == 0 else f" (failed: {work / 'numba-install.log'})"))
    return env


def main() -> int | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=10_000)
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--changed-share", type=float, default=0.001)
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-scale"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="the folder the store is copied to and run in (default <work>/incremental-<products>)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, of " + ", ".join(OPT_IN + STAGES))
    ap.add_argument("--full-stages", default=None,
                    help="stages whose full rebuild over the grown store is run (default: every stage); the others' "
                         "ratio is taken against their first run, a full build over the store before it grew (at 1M "
                         "match-level's and pools' rebuilds cost ~40 minutes: their agreement is then not measured)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for every stage's run, as m5data's --set (e.g. pools.queries=4190, the "
                         "papers' query count at 1M that bench_scale uses)")
    ap.add_argument("--numba-cache", choices=("install", "warm-up", "as-is"), default="install",
                    help="install: a cache only `python -m m5data.warm` filled, first and second night measured; "
                         "warm-up: a night on a small store first (see WARM_UP); as-is: the caller's cache")
    ap.add_argument("--no-warm-up", action="store_true", help=argparse.SUPPRESS)  # the warm-up night's own child
    ap.add_argument("--profile", default="", metavar="STAGES",
                    help="comma-separated stages whose incremental run runs under cProfile (its stats in "
                         "<run-dir>/<stage>-incremental.prof; its seconds then include the profiler's overhead)")
    args = ap.parse_args()
    stages = [s for s in OPT_IN + STAGES if s in args.stages.split(",")]  # pipeline order: vision before align
    full_stages = stages if args.full_stages is None else [s for s in stages if s in args.full_stages.split(",")]
    n = args.products
    overrides = {"align.mapping": str(args.work / f"world-{n}-s{args.seed}" / "truth" / "level1_mapping.toml"),
                 **dict(kv.split("=", 1) for kv in args.set)}
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    # the package's bytecode as an installed one has it: where PYTHONDONTWRITEBYTECODE is set (this machine's
    # sandbox), every stage process compiled the modules it imports from source, 0.03 CPU s of a report run
    compileall.compile_dir(str(ROOT / "m5data"), quiet=1)
    nights = ("incremental",)
    if args.numba_cache == "install" and not args.no_warm_up:
        env, nights = install_cache(args.work, env), ("incremental", "second")
    elif args.numba_cache == "warm-up" and not args.no_warm_up and n > WARM_UP:
        warm_up(args, stages, env)
    prep = prepare(n, args.seed, args.work, args.workers, 0.05, env)
    print(f"size {n:,}: world and store {'cached' if prep.get('cached') else 'built'}"
          + (f"; settings {' '.join(args.set)}" if args.set else ""))
    run = args.run_dir or args.work / f"incremental-{n}"
    fresh_copy(args.work / f"store-{n}-s{args.seed}", run)
    world = args.work / f"world-{n}-s{args.seed}"
    res = {}
    for label, full in (("first", True), ("nothing-new", False)):
        for stage in stages:
            res[(label, stage)] = run_stage(stage, run, world, full, label, env, overrides)
    secs, rc, _ = run_child([sys.executable, "-c", GROW, str(run / "store"), str(args.new_share), str(args.changed_share)],
                            run / "grow.log", env)
    print(f"  grown: {(run / 'grow.log').read_text().strip().splitlines()[-1]} ({secs:.1f} s)" if rc == 0
          else f"  growing failed: see {run / 'grow.log'}")
    if "second" in nights:  # the grown store kept for the second night's incremental run
        link_copy(run / "store", run / "grown")
    for label, full in [(night, False) for night in nights] + [("full", True)]:
        if label == "second":  # the first night's store aside, the grown one in its place
            (run / "store").rename(run / "store-first-night")
            (run / "grown").rename(run / "store")
        for stage in stages if label != "full" else full_stages:
            profile = str(run / f"{stage}-{label}.prof") if label == "incremental" and stage in args.profile.split(",") else ""
            res[(label, stage)] = run_stage(stage, run, world, full, label, env, overrides, profile)
    for stage in set(stages) - set(full_stages):  # no rebuild over the grown store: the first (full) run stands in
        res[("full", stage)] = res[("first", stage)]
    failed = sorted(f"{stage} ({label})" for (label, stage), r in res.items() if r["rc"] != 0)
    if failed:  # a ratio of failed runs is no figure at all
        print(f"\n{len(failed)} stage runs failed, so no ratio is printed: {', '.join(failed)} (logs in {run})")
        return 1
    print()
    print("seconds of each stage's run(ctx) in its process (the flow runs every stage in one process);"
          " the process's own start and imports aside" + ("; * full = the first run (no rebuild over the grown store)"
                                                           if set(stages) - set(full_stages) else ""))
    second = "second" in nights
    print(f"{'stage':<12}{'first s':>10}{'nothing s':>11}{'incr s':>9}{'full s':>9}{'incr/full':>11}"
          f"{'incr CPU s':>12}{'full CPU s':>12}{'CPU ratio':>11}"
          + (f"{'2nd night s':>13}{'2nd CPU s':>11}{'2nd CPU ratio':>15}" if second else ""))
    ratios, cpu_ratios = {}, {}
    for stage in stages:
        first, none, inc, full = (res[(k, stage)]["stage_s"] for k in ("first", "nothing-new", "incremental", "full"))
        inc_cpu, full_cpu = (res[(k, stage)]["stage_cpu"] for k in ("incremental", "full"))
        ratios[stage], cpu_ratios[stage] = inc / full, inc_cpu / full_cpu
        mark = "" if stage in full_stages else "*"
        print(f"{stage:<12}{first:>10.2f}{none:>11.2f}{inc:>9.2f}{full:>8.2f}{mark:1}{ratios[stage]:>11.2f}"
              f"{inc_cpu:>12.2f}{full_cpu:>12.2f}{cpu_ratios[stage]:>11.2f}"
              + (f"{res[('second', stage)]['stage_s']:>13.2f}{res[('second', stage)]['stage_cpu']:>11.2f}"
                 f"{res[('second', stage)]['stage_cpu'] / full_cpu:>15.2f}" if second else ""))
    if second:  # the measure: on a fresh install's cache, no night costs more than a full build
        over = [s for s in stages if cpu_ratios[s] > 1.0]
        print("first night on the install step's cache (incr) beside the second (2nd night): stages whose incremental "
              f"run cost more CPU than their full build: {', '.join(over) or 'none'}")
    for stage in full_stages:
        if stage in TABLES and all((run / f"{stage}-{k}.parquet").exists() for k in ("incremental", "full")):
            print(f"agreement {stage}: {agreement(stage, run)}")
    total = {k: sum(res[(k, s)]["stage_s"] for s in stages) for k in ("incremental", "full")}
    procs = {k: sum(res[(k, s)]["s"] for s in stages) for k in ("incremental", "full")}
    worst = max(ratios, key=ratios.get)
    print(f"processes, start and imports included: incremental {procs['incremental']:.1f} s against full "
          f"{procs['full']:.1f} s (ratio {procs['incremental'] / procs['full']:.2f})")
    print(f"incremental: global stages {total['incremental']:.1f} s against full {total['full']:.1f} s "
          f"(ratio {total['incremental'] / total['full']:.2f}); worst stage {worst} (ratio {ratios[worst]:.2f})")
    cpu_total = {k: sum(res[(k, s)]["stage_cpu"] for s in stages) for k in ("incremental", "full")}
    worst = max(cpu_ratios, key=cpu_ratios.get)
    print(f"by CPU (the wait for a core left out): global stages {cpu_total['incremental']:.1f} s against full "
          f"{cpu_total['full']:.1f} s (ratio {cpu_total['incremental'] / cpu_total['full']:.2f}); worst stage {worst} "
          f"(ratio {cpu_ratios[worst]:.2f})")


if __name__ == "__main__":
    sys.exit(main())
