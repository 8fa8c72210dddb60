"""Is the data loader ever the bottleneck of training? Samples/s of the loader alone vs a training step.

    python benchmarks/bench_train.py [--samples 512] [--workers 2] [--batch 32] [--preset small] [--device cpu|cuda]

Writes synthetic shards in the export's layout (JPEG image, caption, specs, 1-fps frames, MFCC),
then measures in one process: (1) the DataLoader alone (decode + collate, ``--workers`` processes),
(2) training steps (forward, SIMCL + masked losses, backward, AdamW) on batches already in memory.
Target: loader >= 3x step, so that training is never waiting for data. Prints the peak RSS of the
process tree (this process and the loader's workers: RSS summed, sampled by ``peak_rss.PeakRSS``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]  # tests/support: the shards


def main() -> None:
    import torch
    from peak_rss import PeakRSS
    from support.train_shards import write_shards

    from m5data.train.config import load_config
    from m5data.train.data import loader
    from m5data.train.loop import device_of, seed_everything
    from m5data.train.model import Scale, losses

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    cfg = load_config(args.preset)
    seed_everything(0)
    dev = device_of(args.device)
    with tempfile.TemporaryDirectory() as tmp, PeakRSS(tree=True) as mem:
        shards = write_shards(Path(tmp), sizes={"train": args.samples}, per_shard=max(1, args.samples // 8))
        t = time.perf_counter()
        n = 0
        batches = []
        for batch in loader(shards, "train", cfg.model, batch_size=args.batch, workers=args.workers):
            n += len(batch["product_id"])
            if len(batches) < args.steps:
                batches.append(batch)
        load_rate = n / (time.perf_counter() - t)
        model = Scale(cfg.model).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)
        total, _ = losses(model, batches[0], gen)  # warm-up step (allocations, kernels)
        total.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        m = 0
        for batch in batches:
            total, _ = losses(model, batch, gen)
            opt.zero_grad()
            total.backward()
            opt.step()
            m += len(batch["product_id"])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        step_rate = m / (time.perf_counter() - t)
    print(f"device {dev}, config {cfg.name} (dim {cfg.model.dim}), batch {args.batch}, loader workers {args.workers}")
    print(f"data loader alone: {load_rate:,.1f} samples/s ({n} samples)")
    print(f"training step:     {step_rate:,.1f} samples/s ({m} samples)")
    print(f"loader / step:     {load_rate / step_rate:.2f}x (target >= 3x)")
    print(f"tree peak RSS (this process and the loader's workers): {mem.peak / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
