"""torch's threads while training beside the DataLoader's workers: ours (the cores less the workers, at
least one: ``m5data.train.loop.cpu_threads``) against torch's default (one per core), in one process.

    python benchmarks/bench_train_threads.py [--shards DIR | --samples 512] [--steps 40] [--workers 2] [--preset small]

Reads an export's shards (``--shards``: a WebDataset export folder, e.g. the demo's) or writes synthetic ones
in the export's layout, then trains ``--steps`` steps on the CPU twice from the same
seed, torch's default first, ours second; prints wall time and CPU time (this process and its reaped
loader workers) of each, and the ratios. On a machine with more cores than workers + 1 the two differ less.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]  # tests/support: the shards


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    import torch
    from support.train_shards import write_shards

    from m5data.train import loop
    from m5data.train.config import load_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, default=None, help="a WebDataset export folder (default: synthetic shards)")
    for name, default in (("--samples", 512), ("--steps", 40), ("--workers", 2)):
        ap.add_argument(name, type=int, default=default)
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()
    default = torch.get_num_threads()
    ours = loop.cpu_threads(args.workers, default)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards or write_shards(Path(tmp) / "shards", sizes={"train": args.samples},
                                             per_shard=max(1, args.samples // 8))
        for name, threads in (("torch default", default), ("ours", ours)):
            cfg = load_config(args.preset)
            cfg.train.workers, cfg.train.checkpoint_every = args.workers, 10**6
            real = loop.cpu_threads
            loop.cpu_threads = lambda workers, current, n=threads: n  # noqa: E731  (this run's choice)
            try:
                wall, cpu = time.perf_counter(), _cpu()
                result = loop.train(shards, Path(tmp) / name.replace(" ", "-"), cfg, epochs=100, max_steps=args.steps, device="cpu")
                rows.append((name, threads, time.perf_counter() - wall, _cpu() - cpu, result.last.get("loss")))
            finally:
                loop.cpu_threads = real
    print(f"{args.shards or 'synthetic shards'}: {args.steps} steps, preset {args.preset}, {args.workers} loader workers, "
          f"{len(__import__('os').sched_getaffinity(0))} cores")
    for name, threads, wall, cpu, loss in rows:
        print(f"{name:14s} {threads} threads: {wall:6.1f} s, {cpu:6.1f} CPU-s, last loss {loss:.4f}")
    (_, _, w0, c0, _), (_, _, w1, c1, _) = rows
    print(f"ours / torch default: wall {w1 / w0:.2f}x, CPU {c1 / c0:.2f}x")


if __name__ == "__main__":
    main()
