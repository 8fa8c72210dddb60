"""Benchmark: ``m5data import m5product`` of a large layout, streamed (today's importer), against
what the whole-file importer had to hold before it did anything: ``json.loads`` of
``captions.json`` and ``m5data_items.json`` (the baseline, in the same invocation).

For each ``--items`` size it writes a synthetic M5Product layout (no media files): ``captions.json``
with a Chinese title of about 30 characters and a ``pv`` string of about 5 ``key#:#value`` pairs
joined by ``#;#`` per item, in generation order (not sorted); ``m5data_items.json`` mapping every
item to a product id; ``m5product_id_label.json``; a label list of ``--labels`` labels; a
``train.txt`` of every item id. Then, each in a fresh child process, it runs the import into a new
store and the baseline, and prints seconds, items/s and the peak RSS of each child's whole process
tree (``peak_rss.run_measured``), and a last line ``import: whole-tree peak RSS X.XX GiB at N items
(json.loads of the index files alone: Y.YY GiB); time per item Z.ZZx from N1 to N2``.

    python benchmarks/bench_import.py --items 100000,1000000 --root /tmp/bench_import
"""

from __future__ import annotations

import argparse
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

WORDS = ["机械", "键盘", "无线", "蓝牙", "耳机", "降噪", "黑色", "白色", "男士", "女士", "夏季", "新款", "正品", "包邮",
         "旗舰店", "官方", "纯棉", "宽松", "短袖", "连衣裙", "运动鞋", "透气", "防水", "大容量", "保温杯", "不锈钢",
         "儿童", "学生", "办公", "家用", "智能", "手表", "充电宝", "快充", "数据线", "Pro", "Max", "2026", "RGB"]
PROPS = ["品牌", "颜色分类", "尺码", "材质", "适用季节", "风格", "货号", "产地", "上市时间", "适用对象", "功能"]
PLATFORM = "taobao"
GIB = 1024 ** 3


def item_id(i: int) -> str:
    return str(500_000_000_000 + (i * 7919) % 100_000_000_000)  # unique, 12 digits, not in sorted order


def title(rng: random.Random) -> str:
    words = []
    while sum(map(len, words)) < 28:
        words.append(rng.choice(WORDS))
    return "".join(words)


def pv(rng: random.Random) -> str:
    from m5data.export.m5product_format import pv_string

    return pv_string([(p, rng.choice(WORDS) + rng.choice(WORDS)) for p in rng.sample(PROPS, rng.randint(4, 6))])


def build(folder: Path, n: int, n_labels: int) -> None:
    """Write the layout of ``n`` items, streaming (the writer holds no file whole)."""
    folder.mkdir(parents=True)
    rng = random.Random(n)
    labels = [f"类目{k // 100} > 子类{k}" for k in range(n_labels)]
    (folder / "m5product_label_list.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    with open(folder / "captions.json", "w", encoding="utf-8") as cap, \
            open(folder / "m5data_items.json", "w", encoding="utf-8") as items, \
            open(folder / "m5product_id_label.json", "w", encoding="utf-8") as lab, \
            open(folder / "train.txt", "w", encoding="utf-8") as train:
        items.write('{"item_ids": "source_id", "items": {')
        for f in (cap, lab):
            f.write("{")
        for i in range(n):
            iid = item_id(i)
            sep = ", " if i else ""
            cap.write(f'{sep}"{iid}": {json.dumps({"title": title(rng), "pv": pv(rng)}, ensure_ascii=False)}')
            items.write(f'{sep}"{iid}": {{"product_id": "{PLATFORM}:{iid}"}}')
            lab.write(f'{sep}"{iid}": {min(int(rng.paretovariate(1.1)) - 1, n_labels - 1)}')
            train.write(f"{iid}\n")
        cap.write("}\n")
        lab.write("}\n")
        items.write('}, "version": "v1"}\n')


def child(side: str, folder: Path, store_path: Path) -> None:
    from m5data.importer.run import import_m5product
    from m5data.storage import Store

    t0 = time.perf_counter()
    if side == "import":
        report = import_m5product(Store.init(store_path), folder, platform=PLATFORM)
        out = {"products": report.products, "specs": report.specs, "splits": sum(report.splits.values()),
               "failed": report.stats.n_failed}
    else:  # what the whole-file importer held before its first item: both index files, parsed
        captions = json.loads((folder / "captions.json").read_bytes().decode("utf-8"))
        items = json.loads((folder / "m5data_items.json").read_bytes().decode("utf-8"))
        out = {"products": len(captions), "items": len(items["items"])}
    print(json.dumps({**out, "seconds": time.perf_counter() - t0}))


def run_side(side: str, folder: Path, store_path: Path) -> dict:
    """One side in a fresh process: its report, seconds and peak RSS."""
    shutil.rmtree(store_path, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    from peak_rss import run_measured

    proc = run_measured([sys.executable, __file__, "--child", side, str(folder), str(store_path)],
                        stdout=subprocess.PIPE, env=env)
    if proc.returncode:
        raise SystemExit(f"{side} failed (exit {proc.returncode})")
    shutil.rmtree(store_path, ignore_errors=True)
    return {**json.loads(proc.stdout.splitlines()[-1]), "rss": proc.peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", default="100000,1000000", help="comma-separated sizes (items)")
    ap.add_argument("--labels", type=int, default=6000, help="labels in the label list")
    ap.add_argument("--root", default="/tmp/bench_import")
    ap.add_argument("--child", nargs=3, metavar=("SIDE", "DIR", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]), Path(args.child[2]))
    root = Path(args.root)
    rows = []
    for n in [int(s) for s in args.items.split(",")]:
        folder = root / f"layout-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        build(folder, n, args.labels)
        mb = {p.name: p.stat().st_size / 1e6 for p in folder.iterdir()}
        print(f"{n:,} items: captions.json {mb['captions.json']:,.0f} MB, m5data_items.json "
              f"{mb['m5data_items.json']:,.0f} MB, id->label {mb['m5product_id_label.json']:,.0f} MB, "
              f"train.txt {mb['train.txt']:,.0f} MB; written in {time.perf_counter() - t0:.1f} s", flush=True)
        imp = run_side("import", folder, root / f"store-{n}")
        assert imp["products"] == imp["splits"] == n and imp["failed"] == 0, imp
        base = run_side("json.loads", folder, root / f"store-{n}")
        shutil.rmtree(folder)
        rows.append((n, imp, base))
        print(f"  import: {imp['seconds']:.1f} s, {n / imp['seconds']:,.0f} items/s, whole-tree peak RSS {imp['rss'] / GIB:.2f} GiB "
              f"({imp['products']:,} products, {imp['specs']:,} spec rows, {imp['splits']:,} split rows)", flush=True)
        print(f"  baseline json.loads of captions.json + m5data_items.json: {base['seconds']:.1f} s, "
              f"peak RSS {base['rss'] / GIB:.2f} GiB", flush=True)
    print(f"\n{'items':>10} {'import s':>9} {'items/s':>9} {'us/item':>8} {'tree peak GiB':>14} {'json.loads GiB':>14} "
          f"{'us/item growth':>14}")
    first = rows[0][1]["seconds"] / rows[0][0]
    for n, imp, base in rows:
        per = imp["seconds"] / n
        print(f"{n:>10,} {imp['seconds']:>9.1f} {n / imp['seconds']:>9,.0f} {per * 1e6:>8.1f} {imp['rss'] / GIB:>14.2f} "
              f"{base['rss'] / GIB:>14.2f} {per / first:>14.2f}")
    n, imp, base = rows[-1]
    growth = (imp["seconds"] / n) / first
    print(f"import: whole-tree peak RSS {imp['rss'] / GIB:.2f} GiB at {n} items (json.loads of the index files alone: "
          f"{base['rss'] / GIB:.2f} GiB); time per item {growth:.2f}x from {rows[0][0]} to {n}")


if __name__ == "__main__":
    main()
