"""A local media server with fault routes, for the download tests and benchmark (127.0.0.1 only).

Routes (``name`` is a key of the ``files`` dict; ``key`` is any string that makes a URL unique):

================================  ============================================================
``/f/<name>``                     the file, 200, declared type ``image/jpeg`` whatever it is
``/chunked/<name>``               the file without Content-Length (chunked transfer)
``/status/<code>/<key>``          that status, a short text body
``/flaky/<n>/<name>``             HTTP 500 for the first ``n`` requests of this path, then the file
``/ratelimit/<secs>/<name>``      HTTP 429 with ``Retry-After: secs`` once, then the file
``/truncated/<name>``             Content-Length of the whole file, half of it sent, connection closed
``/slow/<ms>/<name>``             the file after ``ms`` milliseconds
``/drip/<ms>/<name>``             the file in 1 KiB pieces, ``ms`` milliseconds apart
``/loris/<ms>/<name>``            slow-loris: the file one byte at a time, ``ms`` milliseconds apart
``/hang/<key>``                   never answers
``/held/<name>``                  the file once ``server.release()`` is called (a run kept busy for
                                  exactly as long as a test needs, whatever the machine's load)
``/redirect/<n>/<name>``          ``n`` redirects, then the file
``/redirect-to?to=<url>``         one redirect to ``url`` (any scheme)
``/gzip/<name>``                  the file as it is, sent with ``Content-Encoding: gzip`` (the
                                  file must be gzip data: :func:`gzip_bomb` makes one)
================================  ============================================================

Every request's path is appended to ``server.requests``. Run in a background thread with its own
event loop (``with MediaServer(files) as server: server.url("/f/a.jpg")``), or as a process:
``PYTHONPATH=tests python -m support.media_server --dir FOLDER --port PORT`` serves the folder's files.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections import Counter
from pathlib import Path

from aiohttp import web


class MediaServer:
    def __init__(self, files: dict[str, bytes] | None = None, host: str = "127.0.0.1", port: int = 0):
        self.files = dict(files or {})
        self.host = host
        self.port = port
        self.requests: list[str] = []
        self._hits: Counter = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._released = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/f/{name}", self._file)
        app.router.add_get("/chunked/{name}", self._chunked)
        app.router.add_get("/status/{code}/{key}", self._status)
        app.router.add_get("/flaky/{n}/{name}", self._flaky)
        app.router.add_get("/ratelimit/{secs}/{name}", self._ratelimit)
        app.router.add_get("/truncated/{name}", self._truncated)
        app.router.add_get("/slow/{ms}/{name}", self._slow)
        app.router.add_get("/drip/{ms}/{name}", self._drip)
        app.router.add_get("/loris/{ms}/{name}", self._loris)
        app.router.add_get("/hang/{key}", self._hang)
        app.router.add_get("/held/{name}", self._held)
        app.router.add_get("/redirect/{n}/{name}", self._redirect)
        app.router.add_get("/redirect-to", self._redirect_to)
        app.router.add_get("/gzip/{name}", self._gzip)
        return app

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> MediaServer:
        ready = threading.Event()
        error: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001  reported to the starting thread
                error.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            pending = asyncio.all_tasks(self._loop)  # handlers that never answer (/hang)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="media-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            raise error[0]
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str) -> int:
        """How many requests asked for ``path`` (query string ignored) since the last ``clear``."""
        with self._lock:
            return self._hits[path]

    def release(self) -> None:
        """Let every ``/held/`` request, waiting or to come, have its file."""
        self._released.set()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._hits.clear()

    # ------------------------------------------------------------------ handlers
    def _log(self, request: web.Request) -> int:
        with self._lock:
            self.requests.append(request.path_qs if request.query_string else request.path)
            self._hits[request.path] += 1
            return self._hits[request.path]

    def _data(self, request: web.Request) -> bytes:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound(text=f"no file {name}")
        return self.files[name]

    async def _file(self, request: web.Request) -> web.Response:
        self._log(request)
        return web.Response(body=self._data(request), content_type="image/jpeg")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        self._log(request)
        data = self._data(request)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(data), 1 << 16):
            await resp.write(data[i:i + (1 << 16)])
        await resp.write_eof()
        return resp

    async def _status(self, request: web.Request) -> web.Response:
        self._log(request)
        return web.Response(status=int(request.match_info["code"]), text="error page\n")

    async def _flaky(self, request: web.Request) -> web.Response:
        hit = self._log(request)
        if hit <= int(request.match_info["n"]):
            return web.Response(status=500, text="temporary failure\n")
        return web.Response(body=self._data(request), content_type="image/jpeg")

    async def _ratelimit(self, request: web.Request) -> web.Response:
        hit = self._log(request)
        if hit == 1:
            return web.Response(status=429, text="slow down\n", headers={"Retry-After": request.match_info["secs"]})
        return web.Response(body=self._data(request), content_type="image/jpeg")

    async def _stream(self, request: web.Request) -> tuple[web.StreamResponse, bytes]:
        """Log ``request`` and start its answer: the file's headers (Content-Length of the whole file)
        sent, the body left to the route, which sends it its own way."""
        self._log(request)
        data = self._data(request)
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = len(data)
        await resp.prepare(request)
        return resp, data

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        resp, data = await self._stream(request)
        await resp.write(data[: len(data) // 2])
        request.transport.close()  # the peer sees the connection drop before Content-Length bytes
        return resp

    async def _slow(self, request: web.Request) -> web.Response:
        self._log(request)
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return web.Response(body=self._data(request), content_type="image/jpeg")

    async def _held(self, request: web.Request) -> web.Response:
        self._log(request)
        while not self._released.is_set():
            await asyncio.sleep(0.02)
        return web.Response(body=self._data(request), content_type="image/jpeg")

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        resp, data = await self._stream(request)
        for i in range(0, len(data), 1024):
            await resp.write(data[i:i + 1024])
            await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        await resp.write_eof()
        return resp

    async def _loris(self, request: web.Request) -> web.StreamResponse:
        resp, data = await self._stream(request)
        try:
            for i in range(len(data)):
                await resp.write(data[i:i + 1])
                await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        except (ConnectionError, RuntimeError):  # the client gave up: what slow-loris tests expect
            pass
        return resp

    async def _hang(self, request: web.Request) -> web.Response:
        self._log(request)
        await asyncio.Event().wait()  # never set: only the server's shutdown ends this
        raise AssertionError("unreachable")

    async def _redirect(self, request: web.Request) -> web.Response:
        self._log(request)
        n, name = int(request.match_info["n"]), request.match_info["name"]
        target = f"/redirect/{n - 1}/{name}" if n > 1 else f"/f/{name}"
        raise web.HTTPFound(target)

    async def _redirect_to(self, request: web.Request) -> web.Response:
        self._log(request)
        raise web.HTTPFound(request.query["to"])

    async def _gzip(self, request: web.Request) -> web.Response:
        self._log(request)
        return web.Response(body=self._data(request), content_type="image/jpeg", headers={"Content-Encoding": "gzip"})


def gzip_bomb(inflated: int, head: bytes = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00") -> bytes:
    """Gzip data that inflates to ``inflated`` bytes: ``head`` (a JPEG start, so the body sniffs
    as an image) then zeros. About 1 MB per GiB inflated; built in 1 MiB steps (never held whole)."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip wrapper
    out = [packer.compress(head)]
    left, zeros = inflated - len(head), bytes(1 << 20)
    while left > 0:
        out.append(packer.compress(zeros[:min(left, len(zeros))]))
        left -= len(zeros)
    out.append(packer.flush())
    return b"".join(out)


def jpeg_bytes(width: int = 640, height: int = 480, seed: int = 0, quality: int = 85) -> bytes:
    """A JPEG photo-like test image (gradient plus noise blocks), distinct for each seed."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    im = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 150)],
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def media_rows(urls: list[str], kind: str = "image", product_id: str = "test:1") -> list[dict]:
    """Pending media rows for ``urls`` as the crawl writes them (media_id = sha1 of product|kind|url)."""
    from m5data.storage.media_ids import media_id

    return [{"media_id": media_id(product_id, kind, u), "product_id": product_id, "kind": kind, "url": u,
             "role": "gallery", "position": i, "status": "pending"} for i, u in enumerate(urls)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="serve every file of this folder under /f/<name>")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args()
    files = {p.name: p.read_bytes() for p in sorted(args.dir.iterdir()) if p.is_file()}
    server = MediaServer(files, port=args.port)

    async def serve() -> None:
        await server.start_async()
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(str(server.port))
            tmp.replace(args.port_file)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
