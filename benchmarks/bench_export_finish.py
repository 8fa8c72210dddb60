"""Benchmark: the M5Product export's ``finish`` (the shards' records merged into ``captions.json``,
the label files, the split lists and ``m5data_items.json``) at growing sizes, streamed (today's
``m5product.finish``) against the in-memory merge it replaced (kept below as the baseline).

For each ``--items`` size it writes a synthetic export's ``_shards/*.part.json`` directly (the
records ``write_shard`` writes: a Chinese title, a four-pair spec string, labels from
``--sub-classes`` sub-classes, a duplicate group for a third of the products; every product in
train, query-c or gallery-c, every 3rd also in cls-train, every 7th in cls-test, like
``tests/support/export_helpers.split_rows``; ``--shard-size`` records a shard), then runs each side's
``finish`` in a fresh child process on its own hard-linked copy of the shards and prints seconds,
us/item and the peak RSS of the child's whole process tree (``peak_rss.run_measured``), the growth of us/item from the smallest size, and
whether both sides wrote the same bytes (sha256 of every file).

    python benchmarks/bench_export_finish.py --items 100000,1000000 --root /work/scratch/me/finish
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the old merge, kept once as the tests' reference

from support.m5product_reference import finish_in_memory  # noqa: E402

WORDS = ["机械", "键盘", "无线", "蓝牙", "耳机", "降噪", "黑色", "白色", "男士", "女士", "夏季", "新款", "正品",
         "包邮", "Pro", "Max", "mini", "2026", "RGB", "\"限量\"", "C:\\path"]


# ------------------------------------------------------------------------------------------ the export


def record(n: int, rng: random.Random, n_sub: int) -> dict:
    from m5data.export.m5product_format import pv_string

    sub = min(int(rng.paretovariate(1.2)) - 1, n_sub - 1)  # long-tailed sub-classes, as in M5Product
    return {"title": "".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 14))),
            "pv": pv_string([(rng.choice(WORDS), rng.choice(WORDS)) for _ in range(4)]),
            "product_id": f"pa:{n:09d}", "class_id": sub % 14, "class_name": f"类目{sub % 14}",
            "sub_class_id": None if n % 50 == 49 else 100 + sub, "sub_class_name": None if n % 50 == 49 else f"子类{sub}",
            "subsub_class_id": None, "subsub_class_name": None, "group_id": f"g{n // 3}" if n % 3 == 0 else None}


def build(folder: Path, n: int, shard_size: int, n_sub: int) -> list[dict]:
    """Write the parts of ``n`` products; the shards' stats (path, split) in plan order (``shards.json``)."""
    from m5data.export.json_stream import write_json_atomic

    members: dict[str, list[int]] = {"train": [], "query-c": [], "gallery-c": [], "cls-train": [], "cls-test": []}
    for i in range(n):
        members[{0: "query-c", 1: "gallery-c"}.get(i % 5, "train")].append(i)
        if i % 7 == 0:
            members["cls-test"].append(i)
        elif i % 3 == 0:
            members["cls-train"].append(i)
    shards = []
    for split, ids in members.items():
        for index, lo in enumerate(range(0, len(ids), shard_size)):
            path = Path("_shards") / f"{split}-{index:05d}.part.json"
            part = {str(1_000_000_000 + (i * 7919) % 999_999_937): record(i, random.Random(i), n_sub)
                    for i in ids[lo:lo + shard_size]}
            write_json_atomic(folder / path, part)
            shards.append({"path": str(path), "split": split, "index": index})
    (folder / "shards.json").write_text(json.dumps(shards), encoding="utf-8")
    return shards


# ------------------------------------------------------------------------------------------ measuring


def child(side: str, folder: Path, memory: str | None) -> None:
    from m5data.export import m5product

    if memory:
        m5product.FINISH_MEMORY = memory

    shards = json.loads((folder / "shards.json").read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    if side == "old":
        finish_in_memory(folder, "v1", shards, {"item_ids": "source_id"})
    else:
        m5product.finish(None, folder, "v1", None, shards, {"item_ids": "source_id"})
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def run_side(side: str, base: Path, work: Path, memory: str | None = None) -> dict:
    """``finish`` of one side in a fresh process on a hard-linked copy of ``base``: seconds, peak RSS, file hashes."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work, copy_function=os.link)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, __file__, "--child", side, str(work)] + (["--memory", memory] if memory else [])
    from peak_rss import run_measured

    proc = run_measured(cmd, stdout=subprocess.PIPE, env=env)
    if proc.returncode:
        raise SystemExit(f"{side} finish failed (exit {proc.returncode})")
    hashes = {p.relative_to(work).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(work.rglob("*")) if p.is_file() and "_shards" not in p.parts and p.name != "shards.json"}
    shutil.rmtree(work)
    return {**json.loads(proc.stdout), "rss_mb": proc.peak / 2**20, "hashes": hashes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", default="100000,1000000", help="comma-separated sizes (products)")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--sub-classes", type=int, default=600)
    ap.add_argument("--root", default="/tmp/bench_export_finish")
    ap.add_argument("--sides", default="old,new")
    ap.add_argument("--memory", help="the new side's DuckDB memory limit (default m5product.FINISH_MEMORY)")
    ap.add_argument("--child", nargs=2, metavar=("SIDE", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]), args.memory)
    root = Path(args.root)
    sides = args.sides.split(",")
    rows = []
    for n in [int(s) for s in args.items.split(",")]:
        base = root / f"parts-{n}"
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        shards = build(base, n, args.shard_size, args.sub_classes)
        mb = sum((base / s["path"]).stat().st_size for s in shards) / 1e6
        print(f"{n:,} products: {len(shards):,} shards, {mb:,.0f} MB of part files, built in {time.perf_counter() - t0:.1f} s",
              flush=True)
        results = {side: run_side(side, base, root / f"{side}-{n}", args.memory) for side in sides}
        shutil.rmtree(base)
        for side, r in results.items():
            rows.append((n, side, r["seconds"], r["seconds"] / n * 1e6, r["rss_mb"]))
            print(f"  {side}: {r['seconds']:.1f} s, {r['seconds'] / n * 1e6:.1f} us/product, whole-tree peak RSS {r['rss_mb']:,.0f} MiB",
                  flush=True)
        if len(results) == 2:
            a, b = results.values()
            both = sorted(set(a["hashes"]) & set(b["hashes"]))
            extra = sorted(set(a["hashes"]) ^ set(b["hashes"]))  # the new side's _stats.json: the export's file index
            same = all(a["hashes"][f] == b["hashes"][f] for f in both)
            print(f"  same bytes in every file both write: {same} ({len(both)} files)"
                  + (f"; written by one side only: {', '.join(extra)}" if extra else ""), flush=True)
    print(f"\n{'products':>10} {'side':>4} {'seconds':>8} {'us/product':>10} {'tree peak RSS MiB':>17} {'us/product growth':>17}")
    first = {}
    for n, side, sec, us, rss in rows:
        first.setdefault(side, us)
        print(f"{n:>10,} {side:>4} {sec:>8.1f} {us:>10.1f} {rss:>17,.0f} {us / first[side]:>17.2f}")


if __name__ == "__main__":
    main()
