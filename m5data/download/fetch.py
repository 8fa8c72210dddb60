"""One media URL -> one :class:`Outcome`: the aiohttp client with limits, retries and deadlines.

For each URL the :class:`Fetcher`

* checks the URL and every redirect target (:mod:`.safety`) and follows at most
  ``download.max_redirects`` redirects itself;
* bounds each attempt by ``download.request_deadline`` (connect, redirects and body together), by
  the connect and per-chunk read timeouts and by a minimum transfer rate (``download.min_rate``
  bytes/s over every ``download.rate_window`` seconds, :class:`.pace.Pace`), and all attempts and retry
  waits of one URL together by ``download.url_deadline``;
* retries 5xx, 408, 429, timeouts, dropped connections and truncated bodies up to
  ``download.retries`` times with exponential backoff and jitter, waiting at least what a
  ``Retry-After`` header asks (capped at :data:`~.outcome.MAX_RETRY_DELAY`); 404, 410 and other 4xx are final;
* streams the body, aborting past the kind's size limit, sniffs the first bytes (:mod:`.sniff`),
  hashes while streaming, reads an image's size from its header, and then, outside the URL's
  deadlines, commits the blob atomically to its content address, without an fsync of its own (the
  caller syncs the blob area once per batch of outcomes, before it records them:
  :meth:`m5data.storage.blobs.BlobStore.sync`); with ``download.image_max_side`` set, images are
  re-encoded in the image pool (:mod:`.resize`) before they are stored.

The store's own errors are never a URL's outcome: a blob that cannot be stored is tried again while
the store is out (:class:`~m5data.storage.retry.StoreRetry`, ``download.store_retry_seconds``), and
past that :meth:`Fetcher.fetch` raises the StoreError, which ends the run with the URL still pending.

Nothing here touches the ``media`` table: :mod:`.run` turns outcomes into status rows.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import aiohttp
from yarl import URL

from ..storage.errors import StoreError
from ..storage.retry import StoreRetry
from .optouts import MediaOptOuts
from .outcome import Outcome, backoff_delay, outcome_of_error
from .pace import PACE, Pace
from .referer import referer_for
from .resize import ImageDecodeError, ImagePool, ImageTooLarge, image_size
from .retry_after import retry_after_seconds
from .rights import image_rights
from .safety import GuardedResolver, check_url
from .sniff import SNIFF_BYTES, sniff

CHUNK = 1 << 16
ONE_READ_BYTES = 1 << 20  # re-encoded images up to this size are read in one call, not chunk by chunk
REDIRECTS = {301, 302, 303, 307, 308}
TRANSIENT_STATUS = {408, 429}  # plus every 5xx
# sniffed kinds a row of each kind takes: a container sniffed as video may hold sound only (an
# audio row of a WebM); a product video that is only a soundtrack is kept (extract takes its
# audio and records the picture absent)
ACCEPTS = {"image": {"image"}, "video": {"video", "audio"}, "audio": {"audio", "video"}}


class Fetcher:
    """An aiohttp session plus the download policy; use as ``async with Fetcher(...) as f``.

    Args:
        store: the store whose blob area receives the bodies.
        opts: the ``download`` settings section.
        pool: an :class:`ImagePool` when images are re-encoded, else None.
        on_bytes: called with each received chunk's length (progress and the watchdog).
        on_activity: called when a retry wait starts and ends (the watchdog).
        user_agent: the User-Agent header.
        store_retry: how blobs are stored while the store is out (default: no waiting).
    """

    def __init__(self, store, opts, pool: ImagePool | None = None,
                 on_bytes: Callable[[int], None] | None = None,
                 on_activity: Callable[[], None] | None = None, user_agent: str = "m5data-download",
                 store_retry: StoreRetry | None = None):
        self.store = store
        self.opts = opts
        self.pool = pool
        self.on_bytes = on_bytes or (lambda n: None)
        self.on_activity = on_activity or (lambda: None)
        self.user_agent = user_agent
        self.store_retry = store_retry or StoreRetry(str(store.root), 0.0, "download.store_retry_seconds")
        self.session: aiohttp.ClientSession | None = None
        self.optouts = MediaOptOuts(opts, user_agent)

    async def __aenter__(self) -> Fetcher:
        connector = aiohttp.TCPConnector(
            limit=self.opts.concurrency, limit_per_host=0,  # run.py enforces per-host slots before the deadline starts
            resolver=GuardedResolver(self.opts.allow_private), ttl_dns_cache=300,
        )
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": self.user_agent},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.opts.connect_timeout,
                                          sock_read=self.opts.read_timeout),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    # ------------------------------------------------------------------ one URL, all attempts
    async def fetch(self, url: str, kind: str, referer: str | None = None) -> Outcome:
        """Fetch ``url`` (a media row of ``kind`` image, video or audio) with retries and store its body.

        Every fault of the URL or its body is an outcome; only the store's own error is raised (a
        StoreError, once ``download.store_retry_seconds`` passed without the store answering).

        ``referer``: the URL of the page that shows the media (its product's page), sent as a
        browser would (:func:`.referer.referer_for`): shop CDNs that refuse hotlinking answer 403 without it.
        All attempts and retry waits together end within ``download.url_deadline`` seconds: an
        attempt gets at most what is left of it, and a retry whose wait would pass it is not made.
        """
        opts = self.opts
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + opts.url_deadline
        attempt = 0
        while True:
            attempt += 1
            left = give_up_at - loop.time()
            cut = left < opts.request_deadline  # this attempt is bounded by the URL's deadline
            deadline = asyncio.timeout(max(left, 0.0) if cut else opts.request_deadline)
            pace = Pace(opts.min_rate, opts.rate_window) if opts.min_rate > 0 else None
            token = PACE.set(pace)
            try:
                async with deadline:
                    if pace is None:
                        outcome = await self._attempt(url, kind, referer)
                    else:
                        async with asyncio.timeout(None) as pace.timer:
                            pace.start(loop)
                            outcome = await self._attempt(url, kind, referer)
            except StoreError:  # the store's, not the URL's: the run waits for the store or ends
                raise
            except Exception as exc:  # noqa: BLE001  every error becomes a status row, never a crash
                if isinstance(exc, TimeoutError) and deadline.expired():
                    outcome = (Outcome("failed", "deadline", f"no complete response within the "
                                       f"{opts.url_deadline:g} s URL deadline")
                               if cut else
                               Outcome("failed", "timeout", f"no complete response within the "
                                       f"{opts.request_deadline:g} s request deadline", transient=True))
                elif isinstance(exc, TimeoutError) and pace is not None and pace.timer.expired():
                    outcome = Outcome("failed", "too_slow", f"transfer slower than {opts.min_rate:,} B/s: "
                                      f"{pace.window_bytes:,} bytes in {opts.rate_window:g} s", transient=True)
                else:
                    outcome = outcome_of_error(exc, opts)
            finally:
                PACE.reset(token)
            if outcome.transient and attempt <= opts.retries:
                delay = backoff_delay(attempt, opts.backoff, outcome.retry_after)
                if loop.time() + delay < give_up_at:
                    # a scheduled wait is not a stall: tell the watchdog before and after it
                    self.on_activity()
                    await asyncio.sleep(delay)
                    self.on_activity()
                    continue
                outcome.error = f"{outcome.error} (after {attempt} attempts; the next would pass the " \
                                f"{opts.url_deadline:g} s URL deadline)"
                outcome.attempts = attempt
                return outcome
            outcome.attempts = attempt
            if (outcome.transient or outcome.reason == "deadline") and attempt > 1:
                outcome.error = f"{outcome.error} (after {attempt} attempts)"
            if outcome.stored is not None:
                await self._store(outcome)
            return outcome

    async def _store(self, outcome: Outcome) -> None:
        """Put an ok outcome's body in the store, outside the URL's deadlines (the store's time is not
        the URL's); tried again while the store is out."""
        stored, outcome.stored = outcome.stored, None
        if isinstance(stored, (bytes, bytearray)):
            ref = await self.store_retry.acall(functools.partial(self.store.blobs.put_bytes, stored, "jpg", sync=False))
        else:
            try:
                ref = await self.store_retry.acall(stored.commit)
            finally:
                stored.abort()  # after a commit: nothing left to remove
        outcome.blob, outcome.sha256, outcome.bytes = ref.path, ref.sha256, ref.bytes

    def _received(self, n: int) -> None:
        """Count ``n`` body bytes: for progress and the watchdog, and for this attempt's rate guard."""
        self.on_bytes(n)
        pace = PACE.get()
        if pace is not None:
            pace.feed(n)

    @staticmethod
    def _body_done() -> None:
        """The whole body is in: re-encoding or committing it is not a transfer, the rate guard stops."""
        pace = PACE.get()
        if pace is not None:
            pace.stop()

    # ------------------------------------------------------------------ one attempt
    async def _attempt(self, url: str, kind: str, referer: str | None = None) -> Outcome:
        target = check_url(url, self.opts.allow_private)
        for hop in range(self.opts.max_redirects + 1):
            if refused := await self.optouts.refusal(self.session, target):  # robots.txt: not requested
                return refused
            sent = referer_for(referer, str(target))  # per hop: a redirect to http drops it
            async with self.session.get(target, allow_redirects=False,
                                        headers={"Referer": sent} if sent else None) as resp:
                if resp.status in REDIRECTS:
                    if opted := await self.optouts.outcome(self.session, resp):  # said on the hop: the file's
                        return opted
                    location = resp.headers.get("Location")
                    if not location:
                        return Outcome("failed", "bad_redirect", f"HTTP {resp.status} without a Location header",
                                       http_status=resp.status)
                    target = check_url(target.join(URL(location)), self.opts.allow_private)
                    continue
                outcome = await self._response(resp, kind)
                if outcome.status == "ok" and hop:
                    outcome.meta["final_url"] = str(target)
                return outcome
        return Outcome("failed", "redirects", f"more than {self.opts.max_redirects} redirects (last: {target})")

    async def _response(self, resp: aiohttp.ClientResponse, kind: str) -> Outcome:
        status = resp.status
        if status >= 500 or status in TRANSIENT_STATUS:
            return Outcome("failed", f"http_{status}", f"HTTP {status}", http_status=status, transient=True,
                           retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        if not 200 <= status < 300:
            return Outcome("failed", f"http_{status}", f"HTTP {status}", http_status=status)
        if opted := await self.optouts.outcome(self.session, resp):  # the owner opted the file out: no body read
            return opted
        limit = self.opts.max_image_bytes if kind == "image" else self.opts.max_video_bytes
        if resp.content_length is not None and resp.content_length > limit:
            return Outcome("too_large", "too_large", f"Content-Length {resp.content_length:,} exceeds the "
                           f"{kind} limit of {limit:,} bytes", http_status=status)
        outcome = await self._body(resp, kind, limit)
        outcome.http_status = status
        return outcome

    async def _body(self, resp: aiohttp.ClientResponse, kind: str, limit: int) -> Outcome:
        buffered = kind == "image" and self.pool is not None
        chunks = None
        if buffered and _plain(resp) and resp.content_length is not None and resp.content_length <= ONE_READ_BYTES:
            # one read: Content-Length is within the limit (checked), the body is not content-encoded
            # (Content-Length counts the bytes read) and aiohttp reads no byte past it; only for
            # small bodies, so that a big slow one still reports progress chunk by chunk
            head = await resp.read()
            self._received(len(head))
        else:
            chunks = resp.content.iter_chunked(CHUNK)
            head = bytearray()
            async for chunk in chunks:
                self._received(len(chunk))
                head += chunk
                if len(head) >= SNIFF_BYTES:
                    break
        if not head:
            return Outcome("not_media", "empty", "empty body (0 bytes)")
        sniffed = sniff(bytes(head[:SNIFF_BYTES]))
        if sniffed is None:
            return Outcome("not_media", "not_media", f"body is no known {kind} format "
                           f"(declared {resp.content_type or 'no type'}; starts {bytes(head[:12])!r})")
        if sniffed.kind not in ACCEPTS[kind]:
            return Outcome("not_media", "not_media", f"expected {kind}, body is {sniffed.mime}")
        if len(head) > limit:
            return Outcome("too_large", "too_large", f"body exceeds the {kind} limit of {limit:,} bytes")
        if buffered:
            return await self._reencoded(head, chunks, limit, sniffed)
        writer = self._local(self.store.blobs.writer, sniffed.ext, sync=False)
        try:
            self._local(writer.write, bytes(head))
            async for chunk in chunks:
                self._received(len(chunk))
                if writer.bytes + len(chunk) > limit:
                    return Outcome("too_large", "too_large", f"body exceeds the {kind} limit of {limit:,} bytes")
                self._local(writer.write, chunk)
            self._body_done()
            out = Outcome("ok", mime=sniffed.mime, bytes=writer.bytes)
            if kind == "image":  # from the body as received: an image's size is never the store's to lose
                try:
                    out.width, out.height, rights = await asyncio.to_thread(_written_image_facts, writer)
                    out.meta.update({"rights": rights} if rights else {})
                except ImageDecodeError as exc:
                    return Outcome("corrupt", "corrupt", f"{sniffed.mime} header does not parse: {exc}",
                                   mime=sniffed.mime, bytes=writer.bytes)
                except ImageTooLarge as exc:
                    return Outcome("too_large", "too_large", str(exc))
            out.stored, writer = writer, None  # committed by fetch(), outside the deadlines
            return out
        finally:
            if writer is not None:
                writer.abort()

    def _local(self, fn, *args, **kwargs):
        """A call of the blob area's local temp file (a write while streaming): its error is the
        store's (a full disk), which ends the run; a body half streamed cannot be written again."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  sorted: the store's error is raised as one, a bug as it is
            error = self.store_retry.unavailable(exc)
            if error is exc:
                raise
            raise error  # its cause is set: the store's own error

    async def _reencoded(self, head: bytes | bytearray, chunks, limit: int, sniffed) -> Outcome:
        # The body is needed whole for decoding, so it is buffered (images are small; the limit
        # still applies while reading). The stored blob's sha256 is computed when it is written.
        body = head
        if chunks is not None:
            async for chunk in chunks:
                self._received(len(chunk))
                if len(body) + len(chunk) > limit:
                    return Outcome("too_large", "too_large", f"body exceeds the image limit of {limit:,} bytes")
                body += chunk
        self._body_done()
        try:
            image = await self.pool.reencode(body)
        except ImageDecodeError as exc:
            return Outcome("corrupt", "corrupt", f"{sniffed.mime} does not decode: {exc}", mime=sniffed.mime,
                           bytes=len(body))
        except ImageTooLarge as exc:
            return Outcome("too_large", "too_large", str(exc))
        # the source's rights, read by the pool from its header (the re-encoded JPEG has no XMP)
        return Outcome("ok", stored=image.data, mime="image/jpeg", width=image.width, height=image.height,
                       meta={**({"rights": image.rights} if image.rights else {}), "reencoded": {"mime": sniffed.mime, "bytes": len(body), "mode": image.orig_mode,
                                           "width": image.orig_width, "height": image.orig_height}})


def _plain(resp: aiohttp.ClientResponse) -> bool:
    """Whether the body arrives as sent: no Content-Encoding that aiohttp inflates.

    An encoded body's Content-Length counts compressed bytes: 1 MB of gzip inflates to 1 GiB. Such
    a body is only read chunk by chunk (aiohttp inflates it a bounded piece at a time as it is
    read), so that the size limit counts inflated bytes and stops the body while it inflates.
    """
    return resp.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")


def _written_image_facts(writer) -> tuple[int, int, dict]:
    """The width, height and XMP rights of the image a blob writer holds, from its header (a local file)."""
    with writer.reader() as fh:
        width, height = image_size(fh)
        fh.seek(0)
        return width, height, image_rights(fh)
