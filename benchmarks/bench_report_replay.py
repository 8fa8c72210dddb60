"""The report's incremental run against its full one, from the same state, for one or more code trees.

Copies ``--store`` (a store the global stages have run on, e.g. a ``bench_incremental.py`` run folder's
``store``), writes a full report into the copy, grows it by ``--new-share`` new and ``--changed-share``
re-written products (as ``bench_incremental.py`` does, under new ids of their own), and keeps that as
the start. Then, for each code tree (a checkout: ``git archive REV | tar -x -C DIR``), ``--rounds``
times: the incremental report run and the full one, each from a fresh copy of the start and in a
process of its own. Printed per run: wall and CPU seconds of ``run`` (user + system of the process,
DuckDB's threads included: steadier than wall on a loaded machine) and the figures it drew; with
``--profile``, a cProfile file per code tree and run beside the copies::

    python benchmarks/bench_report_replay.py --store /work/scratch/me/inc/store --work /work/scratch/me/replay \\
        /tmp/base $PWD
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import GROW  # noqa: E402
from bench_scale import fresh_copy  # noqa: E402

CHILD = """
import cProfile, json, os, sys, time
import pandas  # noqa: F401 (imported by Arrow's to_numpy on first use: 0.37 s, before the clock as bench_incremental has it)
from m5data import config as cfg
from m5data.storage import Store
from m5data.report.build import run
store, out, full, prof = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
settings = cfg.load(None, {"store.path": store}, environ={})
opened = Store.open(store)
profile = cProfile.Profile() if prof else None
wall, cpu = time.perf_counter(), os.times()
if profile:
    profile.enable()
stats = run(opened, settings, out=out, full=full)
if profile:
    profile.disable()
    profile.dump_stats(prof)
end = os.times()
print("RESULT " + json.dumps({"wall": round(time.perf_counter() - wall, 2),
                              "cpu": round(end.user + end.system - cpu.user - cpu.system, 2),
                              "changes": stats.details.get("changes"), "drawn": stats.details.get("figures_drawn")}))
"""


def copy(src: Path, dst: Path) -> None:
    """A copy of a run folder whose blobs are hard links."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True,
                    copy_function=lambda s, d: os.link(s, d) if f"{os.sep}blobs{os.sep}" in s else shutil.copy2(s, d))


def report(code: Path, folder: Path, full: bool, prof: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    r = subprocess.run([sys.executable, "-c", CHILD, str(folder / "store"), str(folder / "report"), "1" if full else "0",
                        str(prof or "")], env=env, capture_output=True, text=True)
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    return json.loads(line[7:]) if line else {"failed": r.stderr[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("code", nargs="+", type=Path, help="code trees to compare (the first also makes the start)")
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="a folder of your own: the start and the copies")
    ap.add_argument("--new-share", type=float, default=0.01)
    ap.add_argument("--changed-share", type=float, default=0.001)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    start, live = args.work / "start", args.work / "live"
    if not start.exists():
        fresh_copy(args.store, live)
        print("full report:", report(args.code[0], live, True, None).get("changes"), flush=True)
        grow = GROW.replace(':n{source}', ':r{source}')  # ids of their own: the bench's growth used :n
        env = {**os.environ, "PYTHONPATH": str(args.code[0])}
        subprocess.run([sys.executable, "-c", grow, str(live / "store"), str(args.new_share), str(args.changed_share)],
                       env=env, check=True)
        copy(live, start)
    for _ in range(args.rounds):
        for code in args.code:
            for label, full in (("incremental", False), ("full", True)):
                copy(start, live)
                prof = args.work / f"{code.name}-{label}.prof" if args.profile else None
                res = report(code.resolve(), live, full, prof)
                print(f"{code.name:<14} {label:<12} wall {res.get('wall', 0):6.2f} s  cpu {res.get('cpu', 0):6.2f} s  "
                      f"load {os.getloadavg()[0]:4.1f}  drew {len(res.get('drawn') or [])} figures"
                      + (f"  FAILED {res['failed']}" if "failed" in res else ""), flush=True)


if __name__ == "__main__":
    main()
