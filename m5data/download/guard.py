"""The JPEG fast path's threads, guarded against an image that crashes its decoder.

``download.pool = "mixed"`` decodes ordinary JPEGs in threads of the downloader: a crash inside
libjpeg-turbo there ends the whole run, not one image, and the next run would meet the same image
first. So a run marks in the store that it decodes in threads (``logs/download/threads-<shard>.json``)
and marks its end; a run that finds the mark of one that never ended (a crash, a kill, a lost
machine) re-encodes every image in spawned processes, where a crash costs one image (``corrupt``),
and the run after it goes back to threads (docs/download.md, "Re-encoding images").
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

__all__ = ["decoding_pool"]

_ISOLATED = "this run re-encodes every image in processes"


def _marker(shard: tuple[int, int] | None) -> str:
    return f"logs/download/threads-{'all' if shard is None else f'{shard[0]}-of-{shard[1]}'}.json"


@contextlib.contextmanager
def decoding_pool(store, kind: str, shard: tuple[int, int] | None, call) -> Iterator[tuple[str, str | None]]:
    """``(the pool kind this run uses, why it is not the one asked for or None)`` while the run lasts;
    ``call(fn, *args)`` makes the "running" mark's write (the run's store retry: an outage is waited out)."""
    if kind != "mixed":
        yield kind, None
        return
    rel = _marker(shard)

    def ended(**state) -> None:
        try:  # not waited for: a store still out leaves the mark "running" and the next run isolates, no harm
            store.write_text(rel, json.dumps({"state": "ended", **state, "at": time.time()}))
        except Exception:  # noqa: BLE001  the run's own error (if any) is the one to raise
            pass

    why = _last_run_did_not_end(store, rel)
    if why is not None:
        try:
            yield "process", why
        finally:  # whatever ends this one, a crash in a process cost one image: the next run uses threads
            ended(isolated=True)
        return
    call(store.write_text, rel, json.dumps({"state": "running", "pid": os.getpid(), "at": time.time()}))
    try:
        yield kind, None
    finally:  # an exception ends the run here too; only a crash (or a kill) leaves the mark "running"
        ended()


def _last_run_did_not_end(store, rel: str) -> str | None:
    """Why this run must isolate its decoders (the mark ``rel`` says a threaded run never ended, or
    cannot be read), or None (no mark, or the last one ended)."""
    try:
        last = json.loads(store.read_text(rel) or "{}")
    except ValueError:  # a half-written mark (or not text): its run did not end well either
        return f"the mark {rel} does not parse (half-written: its run did not end); {_ISOLATED}"
    if not isinstance(last, dict):  # valid JSON, yet not what a run writes: damaged, so trusted no more than that
        return (f"the mark {rel} is not a JSON object (a {type(last).__name__}: damaged), so whether the last "
                f"download ended is unknown; {_ISOLATED}")
    if last.get("state") == "running":
        return f"the last download that decoded in threads (PID {last.get('pid', '?')}) did not end: {_ISOLATED}"
    return None
