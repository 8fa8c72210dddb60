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
    SELECT media_id, product_id, blob, need_vector, need_codes FROM (
        SELECT d.media_id, d.product_id, d.blob,
               d.media_id NOT IN (SELECT media_id FROM image_vectors WHERE model = {model}) AS need_vector,
               d.blob NOT IN (SELECT blob FROM image_codes) AS need_codes
        FROM media d
        WHERE d.kind = 'image_norm' AND d.status = 'ok' AND d.blob IS NOT NULL)
    WHERE need_vector OR need_codes
"""


ALL = """
    SELECT media_id, product_id, blob, true AS need_vector, true AS need_codes FROM media
    WHERE kind = 'image_norm' AND status = 'ok' AND blob IS NOT NULL
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


def pending(store, model: str, shard: tuple[int, int] | None = None,
            full: bool = False) -> list[tuple[str, str, str, bool, bool]]:
    """``(media_id, product_id, blob, need_vector, need_codes)`` of the normalised images without a vector
    of ``model`` or without an ``image_codes`` row, by media_id; ``full``: every normalised image, both made again."""
    sql = (ALL if full else PENDING).format(model=sql_str(model))
    if shard is not None:
        sql = f"SELECT * FROM ({sql}) WHERE {shard_sql('media_id', shard)}"
    con = store.connect(cursor=True)
    try:
        # by file: the rows of one shared file are neighbours, so a run keeps only its last batch's vectors
        return con.execute(f"{sql} ORDER BY blob, media_id").fetchall()
    finally:
        con.close()


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Make the ``image_vectors`` rows the store lacks for ``vision.model`` and the ``image_codes`` rows of
    the pictures not scanned yet: one decode per picture serves both."""
    from .backbone import identity

    vs = ctx.settings.vision
    stats = run.stats
    model = identity(vs.model)
    todo = pending(ctx.store, model, ctx.shard, full=run.full)  # full (options["full"]): every image made again
    stats.n_in = len(todo)
    stats.details.update(model=model, pending=len(todo), vectors=0, scanned=0, qr_codes=0)
    if todo:
        _make(ctx.store, vs, todo, stats, ctx.progress)
    stats.details["changes"] = {"new": stats.n_in, "changed": 0, "unchanged": 0}
    return stats


class _Rows:
    """Rows of one table, written every ``every``."""

    def __init__(self, store, table: str, every: int, stats: StageStats):
        self.store, self.table, self.every, self.stats, self.rows = store, table, every, stats, []

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def flush(self, force: bool = False) -> None:
        if self.rows and (force or len(self.rows) >= self.every):
            self.stats.bytes += self.store.write(self.table, self.rows)
            self.rows = []


def _make(store, vs, todo: list[tuple], stats: StageStats, progress: bool) -> None:
    import torch

    from .backbone import load
    from .codes import codes_row
    from .pictures import PictureError, fit, read
    from .vectors import embed

    if vs.threads:
        torch.set_num_threads(vs.threads)
    backbone = load(vs.model, vs.image_size) if any(need for *_, need, _ in todo) else None
    stats.details["dim"] = backbone.dim if backbone else None
    vectors, codes = _Rows(store, "image_vectors", vs.write_rows, stats), _Rows(store, "image_codes", vs.write_rows, stats)
    # blob -> (vector, error) and the blobs scanned, of this batch and the last file of the one before (the
    # rows come by file: a file shared by several rows is shown once; memory stays one batch's, whatever the store)
    made: dict[str, tuple[list[float] | None, str | None]] = {}
    scanned: set[str] = set()
    stats.details["pictures"] = 0
    seconds = {"decode": 0.0, "model": 0.0, "codes": 0.0}
    with _bar(progress, len(todo)) as advance:
        for start in range(0, len(todo), vs.batch):
            batch = todo[start:start + vs.batch]
            pictures, shown = [], []
            for media_id, product_id, blob, need_vector, need_codes in batch:
                vec_now = need_vector and blob not in made
                codes_now = need_codes and blob not in scanned
                if not (vec_now or codes_now):
                    continue
                t = time.perf_counter()
                data = store.read_blob(blob)
                try:
                    if data is None:
                        raise PictureError("its file is missing from the store")
                    rgb = read(data, vs.max_bytes, vs.max_pixels)
                except PictureError as exc:
                    made.setdefault(blob, (None, str(exc)))
                    if codes_now:  # read no better at export: recorded unread (n_codes null), not scanned again here
                        scanned.add(blob)
                        codes.add({"blob": blob, "media_id": media_id, "product_id": product_id, "kind": "image_norm",
                                   "scanned_at": datetime.now(timezone.utc)})
                    seconds["decode"] += time.perf_counter() - t
                    continue
                seconds["decode"] += time.perf_counter() - t
                if vec_now and backbone is not None:
                    pictures.append(fit(rgb, backbone.size))
                    shown.append(blob)
                    made[blob] = (None, None)  # taken: its vector comes with the batch's
                if codes_now:
                    t = time.perf_counter()
                    row = codes_row(blob, rgb[:, :, ::-1].copy(), kind="image_norm", media_id=media_id,
                                    product_id=product_id)
                    seconds["codes"] += time.perf_counter() - t
                    scanned.add(blob)
                    codes.add(row)
                    stats.details["scanned"] += 1
                    stats.details["qr_codes"] += row["qr_codes"]
            t = time.perf_counter()
            if shown:
                for blob, vector in zip(shown, embed(backbone, pictures)):
                    made[blob] = (vector.tolist(), None)
            seconds["model"] += time.perf_counter() - t
            _vector_rows(batch, made, backbone, vectors, stats)
            stats.details["pictures"] += len(shown)
            last = batch[-1][2]
            made = {last: made[last]} if last in made else {}
            scanned = {last} & scanned
            vectors.flush()
            codes.flush()
            advance(len(batch))
        vectors.flush(force=True)
        codes.flush(force=True)
    stats.details["seconds"] = {k: round(v, 3) for k, v in seconds.items()}


def _vector_rows(batch: list[tuple], made: dict, backbone, vectors: _Rows, stats: StageStats) -> None:
    now = datetime.now(timezone.utc)
    for media_id, product_id, blob, need_vector, _ in batch:
        if not need_vector:
            continue
        vector, error = made[blob]
        vectors.add({"media_id": media_id, "model": backbone.identity, "product_id": product_id, "blob": blob,
                     "dim": backbone.dim if vector is not None else None, "vector": vector, "error": error,
                     "made_at": now})
        if error:
            stats.fail(f"image {media_id} ({blob}): {error}")
        else:
            stats.n_out += 1
            stats.details["vectors"] += 1


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
