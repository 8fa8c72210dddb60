"""Issue 75, 1: every stage that starts processes runs inside a daemonic process, as a stock ``dask worker``
(under its nanny) runs its tasks; and a pool's workers end with the process that started them.

Each case runs in a daemonic child started by ``multiprocessing`` (what distributed's nanny does,
``distributed.worker.daemon``), where ``multiprocessing`` refused to start a pool's workers
(``AssertionError: daemonic processes are not allowed to have children``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from support.extract_media import add_media, make_video, settings


def _in_daemon(target, *args, timeout: float = 240):
    """``target(*args)`` in a daemonic spawned process; returns what it returned (or raises what it raised)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_report, args=(queue, target, args), daemon=True)
    child.start()
    try:
        ok, value = queue.get(timeout=timeout)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    if not ok:
        raise AssertionError(value)
    return value


def _report(queue, target, args) -> None:
    import traceback

    try:
        assert multiprocessing.current_process().daemon  # as a Dask worker process under its nanny
        queue.put((True, target(*args)))
    except BaseException:  # noqa: BLE001 - handed to the test
        queue.put((False, traceback.format_exc(limit=4)))


def _upper(batch: list[str]) -> list[str]:
    return [s.upper() for s in batch]


def _extract_pool(store_root: str) -> list:
    from m5data.config import load
    from m5data.extract.pool import WorkerPool
    from m5data.extract.worker import Context

    pool = WorkerPool(2, Context(store_root, load(None, {"store.path": store_root}, environ={}).extract))
    try:
        return sorted(r for _, r in pool.imap("text", _upper, [["a"], ["b"], ["c"]]))
    finally:
        pool.close()


def _export_pool() -> list:
    from m5data.export.shards import write_all

    got = []
    write_all(2, [], [(_upper, (["x"],)), (_upper, (["y"],)), (_upper, (["z"],))], got.append, units=3)
    return sorted(got)


def _align_pool() -> int:
    from m5data.align.similarity import PARALLEL_CHARS, segment_all

    texts = ["连衣裙女夏季新款" * 40] * max(8, PARALLEL_CHARS // 300)
    return len(segment_all(texts, 2, None))


def _download_pool() -> list:
    import asyncio
    import io

    from PIL import Image

    from m5data.download.resize import ImagePool

    png = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(png, "PNG")  # not a JPEG: the process pool decodes it

    async def main():
        pool = ImagePool(2, 256, 85, kind="process")
        try:
            return [(r.width, r.height) for r in await asyncio.gather(*(pool.reencode(png.getvalue()) for _ in range(3)))]
        finally:
            pool.close()

    return asyncio.run(main())


def _extract_videos(store_root: str) -> dict:
    from m5data.extract.run import run
    from m5data.storage import Store

    stats = run(Store.open(store_root), settings(workers=2, video_decode="fast"), kinds="video", progress=False)
    return {f"{kind}/{status}": n for (kind, status), n in stats.by_kind.items()}


def test_extract_export_align_and_download_pools_start_inside_a_daemonic_process(tmp_path):
    assert _in_daemon(_extract_pool, str(tmp_path / "store")) == [["A"], ["B"], ["C"]]
    assert _in_daemon(_download_pool) == [(256, 192)] * 3
    assert _in_daemon(_export_pool) == [["X"], ["Y"], ["Z"]]
    assert _in_daemon(_align_pool) >= 8


def test_extract_of_videos_runs_in_a_daemonic_process_as_outside_it(store, tmp_path):
    """The failure of issue 75: every extract shard of a stock Dask worker failed. ``fast`` decodes in
    isolated worker processes whatever ``extract.workers`` says; the frames equal those of a plain process."""
    from m5data.extract.run import run

    for i in range(3):
        add_media(store, make_video(tmp_path / f"v{i}.mp4", 2), f"shopa:{i}", "video")
    assert _in_daemon(_extract_videos, str(store.root)) == {"video/ok": 3}
    inside = {r["media_id"]: r["frame_count"] for r in store.read("media", where="kind = 'frames'").to_pylist()}
    again = store.local_root().parent / "plain"
    again.mkdir()
    from m5data.storage import Store

    plain = Store.init(again / "store")
    for i in range(3):
        add_media(plain, tmp_path / f"v{i}.mp4", f"shopa:{i}", "video")
    run(plain, settings(workers=2, video_decode="fast"), kinds="video", progress=False)
    outside = {r["media_id"]: r["frame_count"] for r in plain.read("media", where="kind = 'frames'").to_pylist()}
    assert inside == outside and len(inside) == 3 and all(n > 0 for n in inside.values())


def _pool_then_wait(path: str) -> None:
    from m5data.process_pool import ProcessPool

    pool = ProcessPool(1)
    Path(path).write_text(str(pool.submit(os.getpid).result()))
    time.sleep(600)  # killed by the test


def test_a_pool_worker_ends_with_its_daemonic_parent(tmp_path):
    """A daemonic process is ended abruptly (the reason multiprocessing refuses it children): its pool's
    workers must not outlive it."""
    import psutil

    context = multiprocessing.get_context("spawn")
    note = tmp_path / "worker.pid"
    parent = context.Process(target=_pool_then_wait, args=(str(note),), daemon=True)
    parent.start()
    deadline = time.monotonic() + 120
    while not (note.exists() and note.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(note.read_text())
    assert psutil.pid_exists(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.join(30)
    try:
        psutil.Process(worker).wait(30)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the pool's worker outlived its daemonic parent by 30 s")
