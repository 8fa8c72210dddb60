"""What a scheduled run costs when little changed: the incremental global stages against full rebuilds.

Builds a scale-world store as ``bench_scale.py`` does (cached under ``--work``), then on a fresh copy
runs each stage in its own process, through the registry's ``run(ctx)`` as the pipeline flow does:

1. the first run (full: no state yet);
2. the re-run with nothing new (each stage should do no work and say ``new 0, changed 0``);
3. after ``--new-share`` new products (copies of existing ones under new ids, with their specs,
   media and captions rows) and ``--changed-share`` re-written ones (a changed title), written in one
   write each through the store API: the incremental run, then a full rebuild (``full``) over the
   same grown store.

Printed per stage: seconds of each run, peak RSS, what the stage said changed, and the ratio of the
incremental run to the full rebuild. Last line::

    incremental: global stages X.X s against full Y.Y s (ratio R.RR); worst stage S (ratio r.rr)

    python benchmarks/bench_incremental.py --products 10000 --new-share 0.01

Stages (``--stages``, pipeline order): align, match_level and pools (annotate jobs), splits, export
(WebDataset, all splits: the incremental run writes the new version beside the first one; the full
rebuild writes into a folder of its own), report. Each line also gives the stage's run alone
("in process": no interpreter start or imports).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import ROOT, fresh_copy, prepare, run_child  # noqa: E402

STAGES = ("align", "match_level", "pools", "splits", "export", "report")
JOBS = {"match_level": ("annotate", {"job": "match_level"}),  # an annotate job: the stage and its option
        "pools": ("annotate", {"job": "pools"})}

CHILD = """
import importlib, json, sys, time
from m5data import config as cfg
from m5data.stages import RunContext, get
store, stage, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
settings = cfg.load(None, {"store.path": store}, environ={})
module, fn = get(stage).run.split(":")
run = getattr(importlib.import_module(module), fn)
t = time.perf_counter()
stats = run(RunContext(settings).with_options(**options))
run_s = time.perf_counter() - t  # the stage's run alone: no interpreter start, no imports of the stage module
d = stats.details
print("RESULT " + json.dumps({"changes": d.get("changes"), "n_in": stats.n_in, "status": stats.status,
                             "scored": d.get("scored_pairs"), "pairs": d.get("candidate_pairs"),
                             "shards": d.get("shards"), "written": d.get("shards_written"),
                             "inherited": d.get("shards_inherited"), "refit": d.get("refit"), "run_s": run_s,
                             "searched": d.get("searched"), "rewritten": d.get("rewritten")}))
"""

GROW = """
import sys
import pyarrow as pa, pyarrow.compute as pc
from m5data.storage import Store
store, new_share, changed_share = Store.open(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
products = store.read("products")
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
    out = {"full": full} | JOBS.get(stage, (None, {}))[1]
    if stage == "align":
        out |= {"mapping": str(world / "truth" / "level1_mapping.toml"), "review_out": str(run / "review.csv")}
    if stage == "report":
        out["out"] = str(run / "report")
    if stage == "export" and label == "full":  # beside the store's exports/: not the incremental one's base
        out["out"] = str(run / "export-full")
    return out


def run_stage(stage: str, run: Path, world: Path, full: bool, label: str, env: dict) -> dict:
    log = run / f"{stage}-{label}.log"
    argv = [sys.executable, "-c", CHILD, str(run / "store"), JOBS.get(stage, (stage,))[0],
            json.dumps(options(stage, world, run, full, label))]
    secs, rc, rss = run_child(argv, log, env)
    result = {"s": secs, "rss": rss, "rc": rc}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result |= json.loads(line[7:])
    note = ", ".join(f"{k} {v:,}" for k, v in (result.get("changes") or {}).items())
    if result.get("pairs") is not None:  # align: how many candidate pairs this run scored
        note += f"; scored {result['scored']:,} of {result['pairs']:,} pairs"
    if result.get("shards") is not None:  # export: shards written and taken over
        note += f"; wrote {result['written']:,} of {result['shards']:,} shards ({result['inherited'] or 0:,} inherited)"
    if result.get("refit") is not None:  # match-level, pools: whether the classifier / embedder was fitted again
        note += f"; refit: {result['refit']}"
    if result.get("rewritten") is not None:  # pools: queries searched against the whole gallery, pools written
        note += f"; searched {result['searched']:,}, wrote {result['rewritten']:,} pools"
    if result.get("run_s") is not None:
        note += f"; in process {result['run_s']:.2f} s"
    print(f"  {label:<12} {stage:<12} {secs:8.2f} s {rss / 2**30:6.2f} GiB  {note}"
          + ("" if rc == 0 else f"  FAILED (exit {rc}, see {log})"), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=10_000)
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--changed-share", type=float, default=0.001)
    ap.add_argument("--work", type=Path, default=Path("/tmp/m5data-bench-scale"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, of " + ", ".join(STAGES))
    args = ap.parse_args()
    stages = [s for s in STAGES if s in args.stages.split(",")]
    n = args.products
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    prep = prepare(n, args.seed, args.work, args.workers, 0.05, env)
    print(f"size {n:,}: world and store {'cached' if prep.get('cached') else 'built'}")
    run = args.work / f"incremental-{n}"
    fresh_copy(args.work / f"store-{n}-s{args.seed}", run)
    world = args.work / f"world-{n}-s{args.seed}"
    res = {}
    for label, full in (("first", True), ("nothing-new", False)):
        for stage in stages:
            res[(label, stage)] = run_stage(stage, run, world, full, label, env)
    secs, rc, _ = run_child([sys.executable, "-c", GROW, str(run / "store"), str(args.new_share), str(args.changed_share)],
                            run / "grow.log", env)
    print(f"  grown: {(run / 'grow.log').read_text().strip().splitlines()[-1]} ({secs:.1f} s)" if rc == 0
          else f"  growing failed: see {run / 'grow.log'}")
    for label, full in (("incremental", False), ("full", True)):
        for stage in stages:
            res[(label, stage)] = run_stage(stage, run, world, full, label, env)
    print()
    print(f"{'stage':<12}{'first s':>10}{'nothing s':>11}{'incr s':>9}{'full s':>9}{'incr/full':>11}")
    ratios = {}
    for stage in stages:
        first, none, inc, full = (res[(k, stage)]["s"] for k in ("first", "nothing-new", "incremental", "full"))
        ratios[stage] = inc / full
        print(f"{stage:<12}{first:>10.2f}{none:>11.2f}{inc:>9.2f}{full:>9.2f}{ratios[stage]:>11.2f}")
    inc = sum(res[("incremental", s)]["s"] for s in stages)
    full = sum(res[("full", s)]["s"] for s in stages)
    worst = max(ratios, key=ratios.get)
    print(f"incremental: global stages {inc:.1f} s against full {full:.1f} s (ratio {inc / full:.2f}); "
          f"worst stage {worst} (ratio {ratios[worst]:.2f})")


if __name__ == "__main__":
    main()
