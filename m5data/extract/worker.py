"""An extract worker process's state: the Context its jobs read, set once by the pool's initializer."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ExtractSettings, FacesSettings, TextSettings

__all__ = ["Context", "init_worker", "worker_context"]


@dataclass(frozen=True)
class Context:
    """What every job needs: the store folder, the extract settings and the shared ``[text]`` (what a
    caption is) and ``[faces]`` (the faces table's frame policy) sections."""

    store_root: str
    settings: ExtractSettings
    text: TextSettings = field(default_factory=TextSettings)
    faces: FacesSettings = field(default_factory=FacesSettings)


_CTX: Context | None = None


def init_worker(ctx: Context) -> None:
    """Process initializer: remember the context, load the jieba user dictionary."""
    global _CTX
    import warnings

    _CTX = ctx
    warnings.filterwarnings("ignore", category=UserWarning, module="moviepy")
    from .text import tokenizer

    tokenizer(ctx.text.jieba_user_dict)  # load the dictionary once per worker, not per batch


def worker_context() -> Context:
    """The context :func:`init_worker` gave this process."""
    if _CTX is None:
        raise RuntimeError("extract worker used before init_worker()")
    return _CTX
