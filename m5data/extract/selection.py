"""What an extract run selects: the items not extracted yet, per kind, in SQL over the store's tables.

Work selection (idempotent: a re-run picks only what is missing):

- video (frames): media rows ``kind = 'video'``, ``status = 'ok'`` without a ``frames`` row, or whose
  frames row was made from another blob (the video was downloaded again);
- audio (mp3 + MFCC): the same videos without an ``mfcc`` row (``absent`` counts as done), and
  audio inputs (``kind = 'audio'`` rows that are not extract's own mp3) without one;
- image: ``kind = 'image'`` rows of the roles in ``extract.image_roles`` without an ``image_norm`` row
  (a row without a role is of none: not a main image, ``storage/main_image.py``);
- text: products without a ``captions`` row, or crawled again after their caption was made.

``retry_failed`` also re-selects derived rows with status ``failed`` (timeouts, worker crashes).
Inputs found broken are marked on their own row (``corrupt`` / ``too_large``) and so leave the
``status = 'ok'`` selection for good.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..storage.queries import shard_sql


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.strip().replace("'", "''") + "'" for v in values if v.strip())


def video_sql(frames: bool, audio: bool, retry: bool) -> str:
    def need(alias: str) -> str:
        retry_sql = f" OR {alias}.status = 'failed'" if retry else ""
        return (f"({alias}.media_id IS NULL OR json_extract_string({alias}.meta, '$.source_blob') "
                f"IS DISTINCT FROM m.blob{retry_sql})")

    return f"""
        SELECT * FROM (
          SELECT m.*, f.frame_count AS _frames_done, f.status AS _frames_status,
                 {need('f') if frames else 'false'} AS _need_frames,
                 {need('a') if audio else 'false'} AS _need_audio
          FROM media m
          LEFT JOIN media f ON f.source_media_id = m.media_id AND f.kind = 'frames'
          LEFT JOIN media a ON a.source_media_id = m.media_id AND a.kind = 'mfcc'
          WHERE m.kind = 'video' AND m.status = 'ok' AND m.blob IS NOT NULL
        ) WHERE _need_frames OR _need_audio ORDER BY media_id"""


def audio_sql(retry: bool) -> str:
    """Audio inputs (kind audio, not extract's own mp3 rows) without an MFCC made from their blob."""
    retry_sql = " OR a.status = 'failed'" if retry else ""
    return f"""
        SELECT m.* FROM media m
        LEFT JOIN media a ON a.source_media_id = m.media_id AND a.kind = 'mfcc'
        WHERE m.kind = 'audio' AND m.source_media_id IS NULL AND m.status = 'ok' AND m.blob IS NOT NULL
          AND (a.media_id IS NULL OR json_extract_string(a.meta, '$.source_blob') IS DISTINCT FROM m.blob{retry_sql})
        ORDER BY m.media_id"""


def image_sql(roles: str, retry: bool) -> str:
    retry_sql = " OR d.status = 'failed'" if retry else ""
    return f"""
        SELECT m.* FROM media m
        LEFT JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm'
        WHERE m.kind = 'image' AND m.status = 'ok' AND m.blob IS NOT NULL
          AND m.role IN ({_sql_list(roles.split(','))})
          AND (d.media_id IS NULL OR json_extract_string(d.meta, '$.source_blob') IS DISTINCT FROM m.blob{retry_sql})
        ORDER BY m.media_id"""


TEXT_SQL = """
    SELECT p.product_id, p.title FROM products p LEFT JOIN captions c ON c.product_id = p.product_id
    WHERE c.product_id IS NULL OR c.updated_at < p.crawled_at ORDER BY p.product_id"""


def _sharded(sql: str, key: str, shard: tuple[int, int] | None) -> str:
    """``sql`` restricted to shard ``(i, n)`` of its rows by ``hash(key)``; unchanged when ``shard`` is None."""
    if shard is None:
        return sql
    return f"SELECT * FROM ({sql}) WHERE {shard_sql(key, shard)} ORDER BY {key}"


def item_rows(con, sql: str, limit: int | None) -> Iterator[dict]:
    """The rows of ``sql`` (at most ``limit``), read in batches."""
    if limit is not None:
        sql = f"SELECT * FROM ({sql}) LIMIT {int(limit)}"
    for batch in con.sql(sql).to_arrow_reader(256):
        yield from batch.to_pylist()


def item_count(con, sql: str, limit: int | None) -> int:
    """How many rows ``sql`` selects (at most ``limit``)."""
    n = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    return min(n, limit) if limit is not None else n


def plan_phases(con, wanted: tuple[str, ...], ex, retry_failed: bool, limit: int | None,
            shard: tuple[int, int] | None) -> list[tuple[str, str, tuple | None]]:
    """The run's phases in order: (kind, the SQL of its items, the counts of its bars: for the videos,
    (frames, soundtracks); for the audio inputs, (0, items); else None)."""
    phases = []
    if {"video", "audio"} & set(wanted):
        vsql = _sharded(video_sql("video" in wanted, "audio" in wanted, retry_failed), "media_id", shard)
        limited = vsql if limit is None else f"SELECT * FROM ({vsql}) LIMIT {int(limit)}"
        counts = con.execute(f"SELECT count(*) FILTER (WHERE _need_frames), count(*) FILTER (WHERE _need_audio) "
                             f"FROM ({limited})").fetchall()[0]
        phases.append(("video", vsql, counts))
    if "audio" in wanted:
        asql = audio_sql(retry_failed)
        phases.append(("audio", asql, (0, item_count(con, asql, limit))))
    if "image" in wanted:
        phases.append(("image", _sharded(image_sql(ex.image_roles, retry_failed), "media_id", shard), None))
    if "text" in wanted:
        phases.append(("text", _sharded(TEXT_SQL, "product_id", shard), None))
    return phases
