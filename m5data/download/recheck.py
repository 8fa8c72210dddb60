"""``m5data download --refresh``: ask again what each stored file says of itself (docs/compliance.md).

A file downloaded before its owner opted it out (an image that now answers ``X-Robots-Tag: noimageai``)
would otherwise never be looked at again. A refresh sends one conditional request per stored file
(status ``ok``, downloaded, not derived): a ``GET`` with ``If-Modified-Since`` its ``updated_at``,
whose body is never read (a 304 or a 200, only the headers count), following redirects itself and
reading every hop as the download does (:class:`~.optouts.MediaOptOuts`: X-Robots-Tag, TDMRep,
robots.txt). A file that now opts out becomes ``opted_out``, as a new one would: its row loses its
blob (the blob area keeps the bytes until a clean-up; no export reads a row that is not ``ok``), an
``optouts`` row (scope ``media``) records it, and the rows derived from it (a video's frames and
sound) become ``opted_out`` too. A file that cannot be asked now (an error, a 4xx, a 5xx, an
unreachable robots.txt) is left as it is: nothing was learnt. The run is a ``download`` run
(``runs`` row, ``details["refresh"]``: files checked, opted out).
"""

from __future__ import annotations

import asyncio
from datetime import timezone
from email.utils import format_datetime

import aiohttp
from yarl import URL

from .. import config as cfg
from ..stage_run import StageRun
from ..storage.queries import shard_sql
from .fetch import REDIRECTS
from .optouts import OPTED_OUT, MediaOptOuts, write_statuses
from .outcome import Outcome, status_row
from .safety import GuardedResolver, check_url

KINDS = ("image", "video", "audio")


def recheck(run: StageRun, store, settings: cfg.Settings, shard: tuple[int, int] | None = None):
    """Re-check the stored files of ``store`` in ``run``, the download's run (its ``runs`` row is a download
    run's); returns ``run.stats`` (the run's DownloadStats: ``n_in`` files asked, ``n_out`` still stored,
    ``statuses["opted_out"]`` opted out since)."""
    stats = run.stats
    where = f"status = 'ok' AND kind IN {KINDS} AND source_media_id IS NULL AND url IS NOT NULL"
    if shard is not None:
        where += f" AND {shard_sql('media_id', shard)}"
    rows = store.read("media", where=where).to_pylist()
    stats.selected = len(rows)
    outcomes = asyncio.run(_ask_all(settings, rows))
    opted = [status_row(row, out) for row, out in zip(rows, outcomes) if out is not None]
    stats.n_in, stats.n_out = len(rows), len(rows) - len(opted)
    stats.statuses[OPTED_OUT] = len(opted)
    if opted:
        write_statuses(store, opted, stats.run_id)
        _opt_out_derived(store, {r["media_id"] for r in opted})
    stats.details["refresh"] = {"checked": len(rows), "opted_out": len(opted)}
    stats.details["optouts"] = {"media": len(opted)}
    stats.finish("ok")
    run.record({**cfg.as_dict(settings), "job": {"refresh": stats.details["refresh"],
                                                 "optouts": stats.details["optouts"]}})
    return stats

def _opt_out_derived(store, sources: set[str]) -> None:
    """The rows derived from opted-out files (frames, sound, MFCC) are opted out with them."""
    derived = [r for r in store.read("media", where="source_media_id IS NOT NULL").to_pylist()
               if r["source_media_id"] in sources and r["status"] != OPTED_OUT]
    for row in derived:
        row.update(status=OPTED_OUT, error="opted out: the file it was derived from opted out", blob=None)
    if derived:
        store.write("media", derived)


async def _ask_all(settings: cfg.Settings, rows: list[dict]) -> list[Outcome | None]:
    opts = settings.download
    optouts = MediaOptOuts(opts, settings.http.user_agent)
    slots = asyncio.Semaphore(opts.concurrency)
    connector = aiohttp.TCPConnector(limit=opts.concurrency, resolver=GuardedResolver(opts.allow_private))
    timeout = aiohttp.ClientTimeout(total=opts.connect_timeout + opts.read_timeout, sock_connect=opts.connect_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"User-Agent": settings.http.user_agent}) as session:
        async def one(row: dict) -> Outcome | None:
            async with slots:
                try:
                    return await _ask(session, optouts, opts, row)
                except Exception:  # noqa: BLE001  not answered now: nothing learnt, the file stays
                    return None

        return await asyncio.gather(*(one(row) for row in rows))


async def _ask(session: aiohttp.ClientSession, optouts: MediaOptOuts, opts, row: dict) -> Outcome | None:
    """The opt-out outcome a stored file's URL (or a hop of its redirects) states now, or None."""
    target = check_url(row["url"], opts.allow_private)
    stamp = row.get("updated_at")
    since = {"If-Modified-Since": format_datetime(stamp.astimezone(timezone.utc), usegmt=True)} if stamp else None
    for _ in range(opts.max_redirects + 1):
        if refused := await optouts.refusal(session, target):
            return refused if refused.status == OPTED_OUT else None
        async with session.get(target, allow_redirects=False, headers=since) as resp:
            if resp.status in REDIRECTS and resp.headers.get("Location"):
                if opted := await optouts.outcome(session, resp):
                    return opted
                target = check_url(target.join(URL(resp.headers["Location"])), opts.allow_private)
                continue
            if 200 <= resp.status < 300 or resp.status == 304:
                opted = await optouts.outcome(session, resp)
                if opted is not None:
                    opted.meta["refresh"] = True
                return opted
            return None
    return None
