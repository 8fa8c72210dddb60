"""Compile the package's numba kernels into numba's on-disk cache once, at install time.

``python -m m5data.warm`` (``make setup`` runs it) calls each kernel family's ``warm_up`` on tiny inputs:
the near-duplicate index, the pair features, the spec rule and librosa's MFCC code (extract's audio).
Compiled cold they cost about 50 CPU-seconds; every process after this one loads them from the cache
in about 2.5 s. Without it, the first processes of a fresh install (a test session's workers and their
subprocesses, a nightly flow on fresh cluster workers) each compile them again while the cache is
still empty. The cache is ``NUMBA_CACHE_DIR`` (the Makefile keeps it in the checkout's ``.cache/numba``;
point it at shared storage for a cluster's workers, docs/flows.md); numba keys its entries by each
source file's path and modification time, so an edited kernel is compiled again on its first call.
"""

from __future__ import annotations

import importlib
import time

# (what, module, function): each compiles its family's kernels on tiny inputs, or loads them cached
KERNELS = (
    ("near-duplicate index", "m5data.annotate.kernels.near_jit", "warm_up"),
    ("pair features", "m5data.annotate.kernels.pair_features_jit", "warm_up"),
    ("spec rule", "m5data.annotate.kernels.spec_jit", "warm_up"),
    ("MFCC (librosa)", "m5data.extract.preload", "_warm"),
)


def warm() -> list[tuple[str, float]]:
    """Compile (or load) every kernel family of :data:`KERNELS`; (what, CPU seconds) of each."""
    spent = []
    for what, module, function in KERNELS:
        start = time.process_time()
        getattr(importlib.import_module(module), function)()
        spent.append((what, time.process_time() - start))
    return spent


def main() -> None:
    import os

    spent = warm()
    where = os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache (__pycache__ beside each kernel)"
    print(f"numba kernels compiled into {where}: " + ", ".join(f"{what} {s:.1f} CPU-s" for what, s in spent))


if __name__ == "__main__":
    main()
