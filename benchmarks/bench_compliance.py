"""The report's compliance section and an export's load of the ``faces`` rows, at the papers' size.

    python benchmarks/bench_compliance.py --sizes 10000,100000,1000000 [--compact] [--root /work/scratch/compliance] [--keep]

Per size ``n``, a store of ``n`` products is built (``tests/support/compliance_store.build``: titles,
specs and captions some holding phone numbers, e-mails or QQ ids; crawl errors, opt-outs, licences,
takedowns; ``faces`` rows, 5% with faces), written in batches so the generator stays small.

Then, each in a process of its own (``peak_rss.run_measured``: its CPU seconds and its whole process tree's peak RSS, or its own VmHWM if higher): the compliance
section alone (``report.compliance.section``), and the faces-row load an export with
``export.blur_faces`` does (``export.faces.load_boxes`` on the export's stream connection); an
``idle`` child (the imports and the store opened) gives the RSS that is not the work's, ``views`` and
``stream`` the connections alone (the store's views: with tables not compacted, their key plans). Prints per
size the wall and CPU seconds, microseconds per product and peak RSS, and their growth between sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]  # tests/support
WORKS = ("idle", "views", "compliance", "stream", "faces")


def child(work: str, root: Path) -> None:
    """One measured piece of work on the store at ``root`` (run in a process of its own)."""
    from m5data.storage import Store

    store = Store.open(root)
    out: dict = {}
    if work == "views":  # the store connection the section opens, alone (its views' key plans)
        from m5data.report.compliance import TABLES

        store.connect(need=TABLES, only=TABLES).close()
    elif work == "stream":  # the export's stream connection, alone
        from m5data.export.run import _stream_connection

        _stream_connection(store).close()
    elif work == "compliance":
        from m5data.report.compliance import section

        body, _ = section(store)
        out = {"section_sha1": hashlib.sha1(str(body).encode()).hexdigest()[:12]}
    elif work == "faces":
        from m5data.export.faces import load_boxes
        from m5data.export.run import _stream_connection

        con = _stream_connection(store)
        try:
            load_boxes(store, con)
            out = {"rows": con.execute("SELECT count(*) FROM export_faces").fetchone()[0]}
        finally:
            con.close()
    # the peak of this process's own memory (the exec'd image's: ru_maxrss would keep the forking parent's)
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"peak_kib": int(hwm.split()[1]), **out}))


def timed(work: str, root: Path) -> dict:
    """Wall and CPU seconds, peak RSS (MiB) and output of one child doing ``work``."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    from peak_rss import run_measured

    proc = run_measured([sys.executable, __file__, "--child", work, str(root)], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{work} on {root} failed: {proc.stderr[-2000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # the tree held at least the child's own high-water mark (VmHWM: a spike between two samples)
    rss = max(proc.peak / 2**20, found.pop("peak_kib") / 1024)
    return {"wall": proc.seconds, "cpu": proc.cpu, "rss": rss, "out": found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000])
    ap.add_argument("--root", type=Path, default=Path("/work/scratch/compliance"))
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    ap.add_argument("--compact", action="store_true", help="compact the tables first (their views skip the key plans)")
    ap.add_argument("--child", nargs=2, metavar=("WORK", "ROOT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]))
    from support.compliance_store import build

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows: dict[int, dict] = {}
    for n in args.sizes:
        root = args.root / f"store-{n}"
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        store = build(root, n)
        if args.compact:
            for name in ("products", "specs", "captions", "licenses", "faces"):
                store.compact(name)
        disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"\n== {n:,} products: built in {time.perf_counter() - t:.1f} s, {disk / 1e6:.1f} MB ==", flush=True)
        rows[n] = {work: timed(work, root) for work in WORKS}
        for work, r in rows[n].items():
            print(f"  {work:<11} {r['wall']:7.2f} s wall {r['cpu']:7.2f} s CPU {r['cpu'] / n * 1e6:8.1f} us/product "
                  f"whole-tree peak RSS {r['rss']:7.1f} MiB  {r['out'] or ''}", flush=True)
        if not args.keep:
            shutil.rmtree(root)
    sizes = list(rows)
    for a, b in zip(sizes, sizes[1:]):
        print(f"\n{a:,} -> {b:,} ({b / a:g}x products):")
        for work in WORKS[1:]:
            ra, rb = rows[a][work], rows[b][work]
            extra_a, extra_b = ra["rss"] - rows[a]["idle"]["rss"], rb["rss"] - rows[b]["idle"]["rss"]
            print(f"  {work:<11} CPU per product x{(rb['cpu'] / b) / (ra['cpu'] / a):.2f}, "
                  f"peak RSS x{rb['rss'] / ra['rss']:.2f} ({ra['rss']:.0f} -> {rb['rss']:.0f} MiB; above idle "
                  f"{extra_a:.0f} -> {extra_b:.0f} MiB)")


if __name__ == "__main__":
    main()
