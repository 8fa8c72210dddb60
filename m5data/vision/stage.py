"""The vision stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` and its
``check(settings, options)``.

One ``image_vectors`` row per normalised product image (``media.kind = 'image_norm'``, status ok) and
image model: the images without a row of the configured model (``vision.model``, by its identity:
``backbone.identity``) are decoded (``pictures.decode``), shown to the model in batches of
``vision.batch`` and written every ``vision.write_rows`` rows, so a killed run loses at most that many
and its re-run goes on from the rows written. A picture that cannot be read gets a row with its reason in
``error`` and no vector: it is not tried again (``--set vision.model`` of another model makes every row anew).
Images sharing one normalised file are shown to the model once. ``options["shard"] = [i, n]``: only shard
i of n (by ``media_id``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ..errors import UserError
from ..stages import RunContext, StageRun
from ..storage import StageStats
from ..storage.queries import shard_sql
from ..storage.views import sql_str

PENDING = """
    SELECT d.media_id, d.product_id, d.blob FROM media d
    WHERE d.kind = 'image_norm' AND d.status = 'ok' AND d.blob IS NOT NULL
      AND d.media_id NOT IN (SELECT media_id FROM image_vectors WHERE model = {model})
"""


class VisionError(UserError, ValueError):
    """A ``[vision]`` setting the stage cannot run with; the message names the key."""


def check(settings, options: dict) -> None:
    """The model is there (the built-in one's packages installed, or the file given), refused before any work."""
    from .backbone import BackboneError, identity

    try:
        identity(settings.vision.model)
    except BackboneError as exc:
        raise VisionError(str(exc)) from None
    if not 32 <= settings.vision.image_size <= 1024:
        raise VisionError(f"config vision.image_size must be in 32..1024, got {settings.vision.image_size!r}")


def pending(store, model: str, shard: tuple[int, int] | None = None) -> list[tuple[str, str, str]]:
    """``(media_id, product_id, blob)`` of the normalised images without a row of ``model``, by media_id."""
    sql = PENDING.format(model=sql_str(model))
    if shard is not None:
        sql = f"SELECT * FROM ({sql}) WHERE {shard_sql('media_id', shard)}"
    con = store.connect(cursor=True)
    try:
        return con.execute(f"{sql} ORDER BY media_id").fetchall()
    finally:
        con.close()


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Make the ``image_vectors`` rows the store lacks for ``vision.model``."""
    from .backbone import identity

    vs = ctx.settings.vision
    stats = run.stats
    model = identity(vs.model)
    todo = pending(ctx.store, model, ctx.shard)
    stats.n_in = len(todo)
    stats.details.update(model=model, pending=len(todo))
    if todo:
        _make(ctx.store, vs, todo, stats, ctx.progress)
    stats.details["changes"] = {"new": stats.n_in, "changed": 0, "unchanged": 0}
    return stats


def _make(store, vs, todo: list[tuple[str, str, str]], stats: StageStats, progress: bool) -> None:
    import torch

    from .backbone import load
    from .pictures import PictureError, decode
    from .vectors import embed

    if vs.threads:
        torch.set_num_threads(vs.threads)
    backbone = load(vs.model, vs.image_size)
    stats.details["dim"] = backbone.dim
    rows: list[dict] = []
    made: dict[str, tuple[list[float] | None, str | None]] = {}  # blob -> (vector, error): a shared file once
    seconds = {"decode": 0.0, "model": 0.0}

    def flush(force: bool = False) -> None:
        if rows and (force or len(rows) >= vs.write_rows):
            stats.bytes += store.write("image_vectors", rows)
            rows.clear()

    with _bar(progress, len(todo)) as advance:
        for start in range(0, len(todo), vs.batch):
            batch = todo[start:start + vs.batch]
            fresh = sorted({blob for _, _, blob in batch if blob not in made})
            pictures, shown = [], []
            t = time.perf_counter()
            for blob in fresh:
                data = store.read_blob(blob)
                try:
                    if data is None:
                        raise PictureError("its file is missing from the store")
                    pictures.append(decode(data, backbone.size, vs.max_bytes, vs.max_pixels))
                    shown.append(blob)
                except PictureError as exc:
                    made[blob] = (None, str(exc))
            t2 = time.perf_counter()
            for blob, vector in zip(shown, embed(backbone, pictures)):
                made[blob] = (vector.tolist(), None)
            seconds["decode"] += t2 - t
            seconds["model"] += time.perf_counter() - t2
            now = datetime.now(timezone.utc)
            for media_id, product_id, blob in batch:
                vector, error = made[blob]
                rows.append({"media_id": media_id, "model": backbone.identity, "product_id": product_id, "blob": blob,
                             "dim": backbone.dim if vector is not None else None, "vector": vector, "error": error,
                             "made_at": now})
                if error:
                    stats.fail(f"image {media_id} ({blob}): {error}")
                else:
                    stats.n_out += 1
            flush()
            advance(len(batch))
        flush(force=True)
    stats.details["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    stats.details["pictures"] = sum(1 for v, _ in made.values() if v is not None)


class _bar:
    """A rich bar of the images done (none without ``progress``): ``with _bar(...) as advance: advance(n)``."""

    def __init__(self, progress: bool, total: int):
        self.progress, self.total, self.bar = progress, total, None

    def __enter__(self):
        if not self.progress:
            return lambda n: None
        from ..bars import bar

        self.bar = bar()
        self.bar.start()
        task = self.bar.add_task("vision: image features", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
