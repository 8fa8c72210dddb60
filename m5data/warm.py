"""Compile the package's numba kernels into numba's on-disk cache once, at install time.

``python -m m5data.warm`` (``make setup`` runs it) calls each kernel family's ``warm_up`` on tiny inputs:
the near-duplicate index, the pair features, the spec rule, the matcher's trees and librosa's MFCC code (extract's audio).
Compiled cold they cost about 50 CPU-seconds; every process after this one loads them from the cache
in about 2.5 s. Without it, the first processes of a fresh install (a test session's workers and their
subprocesses, a nightly flow on fresh cluster workers) each compile them again while the cache is
still empty. The cache is ``NUMBA_CACHE_DIR`` (the Makefile keeps it in the checkout's ``.cache/numba``;
point it at shared storage for a cluster's workers, docs/flows.md); numba keys its entries by each
source file's path and modification time, so an edited kernel is compiled again on its first call.

The kernels' own warm-ups cover the functions with the argument types they are written for; a stage
calls some with other types, or calls functions no warm-up names (dedup's incremental search: ~1 CPU-s
of compiling on a fresh install's first night, measured by ``benchmarks/bench_incremental.py``). So the
step then runs one night of the curation stages (:data:`NIGHT`) on a generated store of a few hundred
products (``m5data.demo.scale``): their full run, a growth by new products, their incremental run, with
the types the real runs use. The store is a temporary folder, removed after.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from pathlib import Path

# (what, module, function): each compiles its family's kernels on tiny inputs, or loads them cached
KERNELS = (
    ("near-duplicate index", "m5data.annotate.dedup.near_jit", "warm_up"),
    ("pair features", "m5data.annotate.matcher.features_jit", "warm_up"),
    ("spec rule", "m5data.annotate.dedup.spec_jit", "warm_up"),
    ("matcher trees", "m5data.annotate.matcher.trees_jit", "warm_up"),
    ("MFCC (librosa)", "m5data.extract.preload", "_warm"),
)


# the stages whose full and incremental runs the night runs, in pipeline order, and the store's size
NIGHT = ("dedup", "match_level", "pools")
NIGHT_PRODUCTS = 400


def warm() -> list[tuple[str, float]]:
    """Compile (or load) every kernel family of :data:`KERNELS`, then run :func:`night`; (what, CPU seconds) of each."""
    spent = []
    for what, module, function in KERNELS:
        start = time.process_time()
        getattr(importlib.import_module(module), function)()
        spent.append((what, time.process_time() - start))
    start = time.process_time()
    night()
    spent.append((f"a night of {', '.join(NIGHT)} on {NIGHT_PRODUCTS} products", time.process_time() - start))
    return spent


def night(products: int = NIGHT_PRODUCTS) -> None:
    """The full runs of :data:`NIGHT` on a generated store, 5% new products, then their incremental runs."""
    import tempfile

    from . import config as cfg
    from .demo.scale import ScaleConfig, build_scale_store, generate_scale
    from .stages import RunContext, call
    from .storage import Store

    with tempfile.TemporaryDirectory(prefix="m5data-warm-") as tmp:
        world, root = Path(tmp) / "world", Path(tmp) / "store"
        generate_scale(world, ScaleConfig(products=products, seed=0, video_share=0.0), workers=1)
        build_scale_store(world, root, workers=1)
        settings = cfg.load(None, {"store.path": str(root)}, environ={})
        for full in (True, False):
            for stage in NIGHT:
                call(stage, RunContext(settings).with_options(full=full))
            if full:
                _grow(Store.open(root), max(1, products // 20))


def _grow(store, n: int) -> None:
    """``n`` products again under new ids, with their specs, captions and media rows: a night's new products."""
    import pyarrow as pa
    import pyarrow.compute as pc

    new = store.read("products").slice(0, n)
    ids = {p: f"{p}-new" for p in new.column("product_id").to_pylist()}

    def renamed(table, column="product_id"):
        values = pa.array([ids[v] for v in table.column(column).to_pylist()], pa.string())
        return table.set_column(table.schema.get_field_index(column), column, values)

    keep = pa.array(list(ids))
    rows = {"products": renamed(new)}
    for name in ("specs", "captions", "media"):
        table = store.read(name)
        rows[name] = renamed(table.filter(pc.is_in(table.column("product_id"), keep)))
    media = rows["media"]
    rows["media"] = media.set_column(media.schema.get_field_index("media_id"), "media_id",
                                     pc.binary_join_element_wise(media.column("media_id"), pa.scalar("-new"), ""))
    for name, table in rows.items():
        store.write(name, table)


def marker() -> Path:
    """The file that says this install's cache holds every kernel: named by what numba keys its entries on
    (each kernel module's path and modification time, numba's and Python's versions), so an edited kernel,
    an upgrade or another interpreter asks for a new warm-up. In ``NUMBA_CACHE_DIR`` when set, else beside
    the package (numba's default cache is ``__pycache__`` beside each source), else in the user's cache."""
    import hashlib
    import os
    import sys

    import numba

    package = Path(__file__).resolve().parent
    sources = sorted(p for p in package.rglob("*.py") if "numba" in p.read_text(errors="ignore"))
    key = hashlib.sha256(repr((numba.__version__, sys.version, sys.executable,
                               [(str(p), p.stat().st_mtime_ns) for p in sources])).encode()).hexdigest()[:16]
    for folder in (os.environ.get("NUMBA_CACHE_DIR"), package / "__pycache__",
                   Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "m5data"):
        if folder and (os.access(folder, os.W_OK) or not Path(folder).exists() and os.access(Path(folder).parent, os.W_OK)):
            return Path(folder) / f"m5data-warm-{key}.done"
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"m5data-warm-{key}.done"


def is_warm() -> bool:
    """Whether ``python -m m5data.warm`` has filled this install's cache (:func:`marker`)."""
    return marker().exists()


def start_in_background(command: list[str] | None = None):
    """The first run on a fresh install (``pip install`` runs nothing after it): ``python -m m5data.warm``
    started beside the run, at a lower priority, so the kernels compile on the cores the run leaves idle (a
    crawl and a download wait on the network much of the time) and are cached before the curation stages
    need them, instead of each stage process compiling them in turn (the README's pip route measured
    156 s for the first demo against 79 s for the next). Returns the process (wait for it before leaving),
    or None when the cache is warm or ``M5DATA_WARM=0`` (the test suite's processes: ``make setup`` warmed
    the cache). Its output goes to a log beside the marker."""
    import os
    import subprocess
    import sys

    if (command is None and os.environ.get("M5DATA_WARM") == "0") or is_warm():
        return None
    done = marker()
    done.parent.mkdir(parents=True, exist_ok=True)
    log = open(done.with_suffix(".log"), "ab")
    try:
        return subprocess.Popen(command or [sys.executable, "-m", "m5data.warm"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10))
    finally:
        log.close()


@contextlib.contextmanager
def beside_the_run(command: list[str] | None = None) -> Iterator[None]:
    """``m5data demo`` and ``m5data run`` on a fresh install: :func:`start_in_background` (``command``: the
    warm-up's, by default ``python -m m5data.warm``), said in one line, and waited for at the end (a process
    of the run's is never left behind)."""
    from .console import console

    warming = start_in_background(command)
    if warming is not None:
        console.print("first run of this install: m5data's numba kernels are being compiled beside it, once "
                      "(about 65 CPU-s at a lower priority; `python -m m5data.warm` does it ahead)", highlight=False)
    try:
        yield
    finally:
        if warming is not None and warming.poll() is None:
            with console.status("finishing the one-time compile of the numba kernels ..."):
                warming.wait()


def main() -> None:
    import os

    spent = warm()
    where = os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache (__pycache__ beside each kernel)"
    done = marker()
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text("".join(f"{what}\t{s:.1f}\n" for what, s in spent))
    print(f"numba kernels compiled into {where}: " + ", ".join(f"{what} {s:.1f} CPU-s" for what, s in spent))


if __name__ == "__main__":
    main()
