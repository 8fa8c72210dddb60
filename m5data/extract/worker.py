"""An extract worker process's state: the Context its jobs read, set once by the pool's initializer."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ExtractSettings

__all__ = ["Context", "init_pool_worker", "init_worker", "worker_context"]


@dataclass(frozen=True)
class Context:
    """What every job needs: the store folder and the extract settings."""

    store_root: str
    settings: ExtractSettings


_CTX: Context | None = None


def init_worker(ctx: Context) -> None:
    """Process initializer: remember the context, load the jieba user dictionary."""
    global _CTX
    import warnings

    _CTX = ctx
    warnings.filterwarnings("ignore", category=UserWarning, module="moviepy")
    from .text import tokenizer

    tokenizer(ctx.settings.jieba_user_dict)  # load the dictionary once per worker, not per batch


def init_pool_worker(ctx: Context) -> None:
    """Initializer of a pool's worker process: :func:`init_worker`, and end with the parent."""
    _exit_with_parent()
    init_worker(ctx)


def _exit_with_parent() -> None:
    """End this worker when the process that started the pool dies (SIGKILL, the OOM killer).

    A pool worker waits for its next job on a queue whose write end it holds itself, so it never
    sees its parent go: it would wait forever, with the fork server and the resource tracker
    beside it. A thread watches the parent's sentinel (a pipe the parent holds) instead.
    """
    import multiprocessing
    import os
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="m5data-exit-with-parent", daemon=True).start()


def worker_context() -> Context:
    """The context :func:`init_worker` gave this process."""
    if _CTX is None:
        raise RuntimeError("extract worker used before init_worker()")
    return _CTX
