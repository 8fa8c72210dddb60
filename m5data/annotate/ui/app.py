"""The labelling web app: one query and one candidate of its pool side by side, match / mismatch / uncertain.

The papers' matching task (M5Product Figures 7-8) on a local aiohttp server. The task list is the
``pools`` table (the first ``per_query`` candidates of each query) with gold questions mixed in;
every click is one row of ``annotations`` (key query, candidate, worker: a re-click updates it),
written atomically by the store. Safety: bound to 127.0.0.1 by default; every request passes the
network guard (guard.py: the Host and Origin headers, and the worker's secret token when bound to
anything but loopback); every product text goes to the page as JSON and is shown with
``textContent`` (captions are untrusted HTML); writes need the session's CSRF token and name a pair
of the task list; every asset is served from this package.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from ...egress.gate import Gate, picture_of
from ...storage.main_image import image_preference
from ...threaded_app import ThreadedApp
from .guard import WILDCARD, Guard, cookie_name, is_loopback, same_secret
from .tasks import Task, UiError

STATIC = Path(__file__).parent / "static"
LABELS = ("match", "mismatch", "uncertain")
HOST = "127.0.0.1"
TAKEDOWN_TTL = 2.0  # seconds a read of the withheld products is reused (the gate of LabellingApp)


@dataclass
class Session:
    """One worker's session: the task list, the page's CSRF token and the secret access token (the
    one printed at start; required on every request when the server is not on loopback)."""

    worker: str
    tasks: list[Task]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    access_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self):
        from ..crowd.judgement_fields import worker_id_problem

        problem = worker_id_problem(self.worker)  # the id goes into every row of annotations
        if problem:
            raise UiError(f"worker {self.worker!r}: {problem}")
        self.by_pair = {(t.query_id, t.candidate_id): t for t in self.tasks}


class LabellingApp:
    """The aiohttp application over one store and one worker session."""

    def __init__(self, store, session: Session):
        self.store = store
        self.session = session
        self.base = ""  # the path the routes are under (set by app())
        # the egress gate (egress/gate.py): taken-down and opted-out products are unknown here, texts masked,
        # faces blurred in the images it serves
        self.gate = Gate.of(store, getattr(session, "settings", None), ttl=TAKEDOWN_TTL)
        self.products = {pid: p for pid, p in self._load_products().items() if pid not in self._taken_down()}
        self.lock = asyncio.Lock()

    def _load_products(self) -> dict[str, dict]:
        ids = sorted({p for t in self.session.tasks for p in (t.query_id, t.candidate_id)})
        con = self.store.connect(cursor=True)  # its "wanted" is the cursor's own
        try:
            con.register("wanted", __import__("pyarrow").table({"product_id": ids}))
            rows = con.execute("SELECT p.product_id, p.title, p.platform, p.price, p.currency, array_to_string(p.category_path, ' > ') "
                               "FROM products p JOIN wanted USING (product_id)").fetchall()
            specs = con.execute("SELECT s.product_id, s.property, s.value FROM specs s JOIN wanted USING (product_id) "
                                "ORDER BY s.product_id, s.position").fetchall()
            images = con.execute(f"""
                SELECT m.product_id, coalesce(d.blob, m.blob) FROM media m JOIN wanted USING (product_id)
                LEFT JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm' AND d.status = 'ok'
                WHERE m.kind = 'image' AND m.status = 'ok'
                QUALIFY row_number() OVER (PARTITION BY m.product_id ORDER BY {image_preference('m')}) = 1
            """).fetchall()
        finally:
            con.close()
        text = self.gate.text
        out = {pid: {"product_id": pid, "title": text(title) or "", "platform": platform, "price": price,
                     "currency": currency, "category": text(category) or "", "specs": [], "image": None}
               for pid, title, platform, price, currency, category in rows}
        for pid, prop, value in specs:
            out[pid]["specs"].append([text(prop), text(value)])
        for pid, blob in images:
            out[pid]["image"] = blob
        return out

    def _taken_down(self) -> frozenset[str]:
        """The taken-down and opted-out products (the gate's withheld ones), read again at most every
        :data:`TAKEDOWN_TTL` seconds: a takedown or opt-out recorded while the UI runs hides its products too."""
        return self.gate.withheld()

    async def _shown(self, *ids: str) -> bool:
        """Whether none of the products ``ids`` is withheld (else the UI answers as for an unknown one)."""
        gone = await asyncio.get_running_loop().run_in_executor(None, self._taken_down)
        return not any(pid in gone for pid in ids)

    # ------------------------------------------------------------------ routes
    def app(self, guard: Guard) -> web.Application:
        """The routes behind ``guard`` (Host, Origin, token), under its ``base`` path, every answer with the
        security headers. The page's own URLs are relative, so it works under any base."""
        self.base = base = guard.base
        app = web.Application(client_max_size=64 * 1024, middlewares=[_security_headers, guard.middleware])
        app.router.add_get(base + "/", self.index)
        app.router.add_get(base + "/static/{name}", self.static)
        app.router.add_get(base + "/favicon.ico", self.favicon)
        app.router.add_get(base + "/api/tasks", self.tasks)
        # product ids are store text: any characters, "/" included (sent percent-encoded)
        app.router.add_get(base + "/api/product/{product_id:.+}", self.product)
        app.router.add_get(base + "/image/{product_id:.+}", self.image)
        app.router.add_post(base + "/api/judge", self.judge)
        app.router.add_get(base + "/api/summary", self.summary)
        return app

    async def index(self, request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{csrf}}", self.session.token).replace("{{worker}}", _attr(self.session.worker))
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file() or name == "index.html":
            raise web.HTTPNotFound()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return web.Response(body=path.read_bytes(), content_type=ctype)

    async def favicon(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.base + "/static/favicon.svg")

    async def tasks(self, request: web.Request) -> web.Response:
        done = self._labels()
        gone = await asyncio.get_running_loop().run_in_executor(None, self._taken_down)
        shown = [t for t in self.session.tasks if t.query_id not in gone and t.candidate_id not in gone]
        return web.json_response({"worker": self.session.worker, "tasks": [
            {"index": k, "query_id": t.query_id, "candidate_id": t.candidate_id, "label": done.get((t.query_id, t.candidate_id))}
            for k, t in enumerate(shown)]})

    async def product(self, request: web.Request) -> web.Response:
        product = self.products.get(request.match_info["product_id"])
        if product is None or not await self._shown(product["product_id"]):
            raise web.HTTPNotFound(text="unknown product")
        # the id is store text (any characters): one quoted path segment
        image = self.base + "/image/" + quote(product["product_id"], safe="") if product["image"] else None
        return web.json_response({**product, "image": image})

    async def image(self, request: web.Request) -> web.StreamResponse:
        product = self.products.get(request.match_info["product_id"])
        if product is None or not product["image"] or not await self._shown(product["product_id"]):
            raise web.HTTPNotFound()
        rel = product["image"]
        data = await asyncio.get_running_loop().run_in_executor(None, self._gated_image, rel)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data[0], content_type=data[1])

    def _gated_image(self, rel: str) -> tuple[bytes, str] | None:
        """The image blob ``rel`` as the gate lets it leave (its faces blurred: a JPEG then), and its type."""
        data = self.store.read_blob(rel)  # None: missing, or its path leads out of the blob areas
        if data is None:
            return None
        ctype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        if not self.gate.blur:
            return data, ctype
        out, blurred = picture_of(self.store, rel, data)
        return (out, "image/jpeg") if blurred else (data, ctype)

    async def judge(self, request: web.Request) -> web.Response:
        if not same_secret(request.headers.get("X-CSRF-Token"), self.session.token):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        try:
            body = await request.json()
            pair = (str(body["query_id"]), str(body["candidate_id"]))
            label = str(body["label"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text="expected JSON with query_id, candidate_id, label") from None
        task = self.session.by_pair.get(pair)
        if task is None or not await self._shown(*pair):
            raise web.HTTPBadRequest(text=f"unknown query/candidate pair {pair[0]} / {pair[1]}")
        if label not in LABELS:
            raise web.HTTPBadRequest(text=f"label must be one of {', '.join(LABELS)}")
        row = {"query_id": pair[0], "candidate_id": pair[1], "worker_id": self.session.worker, "label": label,
               "is_gold": task.is_gold, "source": "ui", "created_at": datetime.now(timezone.utc)}
        async with self.lock:  # one writer of the table at a time; the store write itself is atomic
            await asyncio.get_running_loop().run_in_executor(None, self.store.write, "annotations", [row])
        return web.json_response({"ok": True, **self._progress()})

    async def summary(self, request: web.Request) -> web.Response:
        return web.json_response(self._progress())

    # ------------------------------------------------------------------ state
    def _labels(self) -> dict[tuple[str, str], str]:
        con = self.store.connect(need=("annotations",), only=("annotations",), cursor=True)
        try:
            rows = con.execute("SELECT query_id, candidate_id, label FROM annotations WHERE worker_id = ?",
                               [self.session.worker]).fetchall()
        finally:
            con.close()
        return {(q, c): lbl for q, c, lbl in rows}

    def _progress(self) -> dict:
        done = self._labels()
        tasks = self.session.tasks
        reviewed = sum((t.query_id, t.candidate_id) in done for t in tasks)
        gold = [t for t in tasks if t.is_gold]
        answered = [t for t in gold if (t.query_id, t.candidate_id) in done]
        right = sum(done[(t.query_id, t.candidate_id)] == t.gold_label for t in answered)
        return {"reviewed": reviewed, "total": len(tasks), "gold_answered": len(answered), "gold_total": len(gold),
                "gold_correct": right, "gold_accuracy": right / len(answered) if answered else None}


def _attr(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


SECURITY_HEADERS = {
    # everything the page needs comes from this server: no inline script, no other origin
    "Content-Security-Policy": ("default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",  # no other site embeds our images or scripts
    "Cache-Control": "no-store",  # the page holds the CSRF token
}


@web.middleware
async def _security_headers(request: web.Request, handler):
    """The same headers on every answer, refusals (421, 403, 401, 404) included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


class RunningUi(ThreadedApp):
    """The app served on ``host:port`` (0: a free port) in a background thread; ``with`` it to stop it.

    Args:
        require_token: want the session's access token on every request; default: when ``host`` is
            not loopback.
        allow_hosts: more names the Host header may carry (e.g. this machine's DNS name on a LAN).

    Attributes: ``url`` (loopback for a wildcard bind), ``base_path`` (the random path the UI is served
    under when a token is required, "" otherwise: see guard.py), ``login_url`` (``url`` + ``base_path``
    + ``/``, with ``?token=`` when one is required), ``requires_token``, ``cookie_name``.
    """

    def __init__(self, store, session: Session, host: str = HOST, port: int = 0, *,
                 require_token: bool | None = None, allow_hosts: Iterable[str] = ()):
        self.app = LabellingApp(store, session)
        self.requires_token = not is_loopback(host) if require_token is None else require_token
        # the token cookie's Path: browsers send it to no other service of this host (guard.py)
        self.base_path = "/" + secrets.token_urlsafe(16) if self.requires_token else ""
        self._bound, self._allow = host, tuple(allow_hosts)
        try:  # the app is made in the server thread, after the bind: the guard knows the port
            super().__init__(self._make_app, host, port, "annotation UI")
        except RuntimeError as exc:
            raise UiError(str(exc)) from None
        self.cookie_name = cookie_name(self.port)
        if host.strip() in WILDCARD:
            self.url = f"http://127.0.0.1:{self.port}"

    def _make_app(self) -> web.Application:
        token = self.app.session.access_token if self.requires_token else None
        return self.app.app(Guard.make(self._bound, self.port, token, self._allow, self.base_path))

    @property
    def login_url(self) -> str:
        """The URL to open: with the access token as ``?token=`` when one is required."""
        root = f"{self.url}{self.base_path}/"
        return f"{root}?token={self.app.session.access_token}" if self.requires_token else root
