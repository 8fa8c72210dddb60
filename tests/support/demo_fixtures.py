"""Pytest fixtures of the demo shop; ``tests/conftest.py`` does ``from support.demo_fixtures import *``
(the 300-product world's fixtures, which only the annotate tests use: ``tests/annotate/conftest.py``).

- ``demo_shop_dir``: a small generated shop (60 products in 14 sub-classes, seed 0, 3 products a
  listing page so that pagination shows), generated once and cached under pytest's cache folder,
  keyed by the demo package's source and the config.
- ``demo_shop``: that shop served on a free 127.0.0.1 port for the whole session, a
  ``RunningShop``: ``.url``, ``.site_dir``, ``.truth_dir``, ``.truth``, ``.requests``,
  ``.clear_requests()``, ``.reset_faults()`` (re-arm the answer-500-once URLs).
- ``demo_shop_factory``: ``make(products=40, seed=1, **world_config) -> RunningShop`` for tests
  that need another world; each is generated once (cached) and served until the session ends.
- ``light_shop``: the small shop's world with half-size pictures (``LIGHT_SHOP_CONFIG``), for the
  tests that compare two whole runs' stores (flow runners, S3 against a folder).
- ``demo_store_factory``: ``make(products=60, seed=0, kinds="video,audio,image,text", **world_config)
  -> Path`` of a store built from that shop by crawl, download, extract and align (the input of the
  stages after align: annotate, splits, export, train, report). Built once and cached on disk,
  keyed by the config and the source of the stages that build it. Treat it as read-only: a test
  that writes copies it first (``copy_store(path, tmp_path)``).
- ``demo300`` / ``demo300_copy``: the 300-product store (read-only path, truth) and a writable copy;
  ``demo300_judged``: that store with pools of every product and simulated judgements (built once a
  session: the crowd's, the matcher's and the learned dedup's tests start from it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import m5data.demo

DEMO_SHOP_CONFIG = {"products": 60, "seed": 0, "subclasses": 14, "page_size_shopa": 3, "page_size_shopb": 3}
SLOW_SECONDS = 0.3
_DEMO = Path(m5data.demo.__file__).resolve().parent  # the demo package, whose code keys the caches

__all__ = ["demo_shop_dir", "demo_shop", "demo_shop_factory", "light_shop", "LIGHT_SHOP_CONFIG", "demo_store_factory",
           "DEMO_SHOP_CONFIG",
           "cached_shop", "build_demo_store", "copy_store"]


def _fingerprint(config: dict) -> str:
    """Digest of the demo package's source and a world config: the cache key of a generated shop."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted(_DEMO.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def cached_shop(cache_root: Path, **config) -> Path:
    """Generate a shop for ``config`` once under ``cache_root``; reuse it while the code is unchanged."""
    from m5data.demo.generate import generate
    from m5data.demo.world import WorldConfig

    out = cache_root / f"shop-{_fingerprint(config)}"
    with _building(out):
        if (out / ".complete").exists():
            os.utime(out)  # marks it as in use for _prune
            return out
        tmp = cache_root / f"{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        generate(tmp, config=WorldConfig(**config))
        (tmp / ".complete").touch()
        tmp.rename(out)  # atomic: a reader without the lock never sees half a shop
    _prune(cache_root, keep=out)
    return out


@contextlib.contextmanager
def _building(out: Path):
    """Hold ``<out>.lock`` while ``out`` is checked and built: the test workers (pytest-xdist) that
    need the same shop or store wait for the one building it instead of building it again (on a
    fresh clone two workers used to build every shared store twice, side by side)."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prune(cache_root: Path, keep: Path, max_age_s: float = 6 * 3600) -> None:
    """Drop shops and stores (and half-written ones) of older code that no session has touched for
    six hours (every use touches its entry: a long session's stores are never pruned under it)."""
    now = time.time()
    for old in [*cache_root.glob("shop-*"), *cache_root.glob("store-*")]:
        if old != keep and now - old.stat().st_mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)


def _cache_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("m5data-demo-shop") if cache is not None else tmp_path_factory.mktemp("demo")
    return Path(root)


@pytest.fixture(scope="session")
def demo_shop_dir(request, tmp_path_factory) -> Path:
    """The generated small shop (site/, truth/, serve.json); generated once, then cached."""
    return cached_shop(_cache_root(request, tmp_path_factory), **DEMO_SHOP_CONFIG)


@pytest.fixture(scope="session")
def demo_shop(demo_shop_dir):
    """The small shop served on 127.0.0.1 for the session (a ``RunningShop``)."""
    from m5data.demo.server import serve_in_thread

    with serve_in_thread(demo_shop_dir, slow_seconds=SLOW_SECONDS) as shop:
        yield shop


# the light shops: the small shop's world with half-size pictures (demo WorldConfig.image_scale)
LIGHT_SHOP_CONFIG = {**DEMO_SHOP_CONFIG, "image_scale": 0.5}


@pytest.fixture(scope="session")
def light_shop(demo_shop_factory):
    """The small shop's world with pictures at half their sides, served for the session: the shop of
    the tests that compare two whole runs' stores (one runner's with another's, S3's with a folder's),
    whose subject is not the pictures. A quarter of the pixels to decode, normalise and look for
    faces in: face detection was a third of such a test's CPU."""
    return demo_shop_factory(**LIGHT_SHOP_CONFIG)


@pytest.fixture(scope="session")
def demo_shop_factory(request, tmp_path_factory):
    """``make(products=40, seed=1, **world_config)`` -> a served ``RunningShop`` (cached per config)."""
    from m5data.demo.server import serve_in_thread

    running: dict[str, object] = {}

    def make(products: int = 40, seed: int = 1, **config):
        config = {"products": products, "seed": seed, **config}
        key = json.dumps(config, sort_keys=True)
        if key not in running:
            out = cached_shop(_cache_root(request, tmp_path_factory), **config)
            running[key] = serve_in_thread(out, slow_seconds=SLOW_SECONDS)
        return running[key]

    yield make
    for shop in running.values():
        shop.stop()


_STORE_SOURCES = ("storage", "crawler", "download", "extract", "faces", "align", "demo")


def _store_fingerprint(config: dict, kinds: str, faces: bool = True) -> str:
    """Digest of a store's inputs: the shop config, the extract kinds, whether extract looked for faces and
    the code of every stage that builds it."""
    pkg = _DEMO.parent
    digest = hashlib.sha256(json.dumps({"config": config, "kinds": kinds, "faces": faces}, sort_keys=True).encode())
    for path in sorted([*(pkg / f"{name}.py" for name in ("config", "config_checks", "config_sections", "config_curation")), *(p for sub in _STORE_SOURCES for p in (pkg / sub).rglob("*.py"))]):
        digest.update(str(path.relative_to(pkg)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_demo_store(shop_dir: Path, store_dir: Path, kinds: str = "video,audio,image,text", faces: bool = True) -> Path:
    """Serve ``shop_dir`` on loopback and run crawl, download, extract (``extract.detect_faces`` = ``faces``)
    and align into ``store_dir``."""
    from m5data.align.run import align
    from m5data.config import load
    from m5data.crawler.crawl import run as crawl
    from m5data.demo.server import serve_in_thread
    from m5data.download.run import run as download
    from m5data.extract.run import run as extract
    from m5data.storage import Store

    settings = load(None, {"store.path": str(store_dir), "download.allow_private": True,
                               "crawl.allow_private": True, "extract.detect_faces": faces}, environ={})
    store = Store.init(store_dir)
    with serve_in_thread(shop_dir) as running:
        crawl(store, settings, start_urls=[f"{running.url}/"], progress=False)
        download(store, settings)
    extract(store, settings, kinds=kinds, progress=False)
    align(store, settings, mapping=shop_dir / "truth" / "level1_mapping.toml")
    return store_dir


# Hard-linked into a copy: the blobs, and extract's derived media (content-addressed folders and files
# that the store only ever replaces by a rename, never writes in place). A test that unlinks one or
# writes a new one leaves the cached store as it was; tables, logs, state and the catalog are copied.
LINKED = ("blobs/", "derived/frames/", "derived/images/", "derived/mfcc/")


_linked: dict[str, tuple[int, int, int]] = {}  # path -> (inode, size, mtime) when first linked this session


def copy_store(src: Path, dst_parent: Path, name: str = "store") -> Path:
    """A private, writable copy of a cached store (its media hard-linked: see :data:`LINKED`)."""
    src, dst = Path(src), Path(dst_parent) / name

    def link_or_copy(a, b):
        if Path(a).relative_to(src).as_posix().startswith(LINKED):
            try:
                os.link(a, b)
                st = os.stat(a)
                _linked.setdefault(a, (st.st_ino, st.st_size, st.st_mtime_ns))
                return b
            except OSError:
                pass
        return shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)
    return dst


def written_in_place() -> list[str]:
    """Linked files whose inode is still in place but whose size or time changed: some code wrote a
    medium in place, through a copy, into the cached store (a rename in the copy leaves it alone)."""
    changed = []
    for path, (ino, size, mtime) in _linked.items():
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if st.st_ino == ino and (st.st_size, st.st_mtime_ns) != (size, mtime):
                changed.append(path)
    return changed


@pytest.fixture(scope="session")
def demo_store_factory(request, tmp_path_factory):
    """``make(products=60, seed=0, kinds=..., faces=True, **world_config)`` -> Path of a crawled, downloaded,
    extracted and aligned store (cached on disk; read-only: copy it with ``copy_store`` to write);
    ``faces=False``: extract made without face detection (no ``faces`` table)."""
    built: dict[str, Path] = {}

    def check_linked():
        assert not (changed := written_in_place()), f"cached store media written in place: {changed[:5]}"

    request.addfinalizer(check_linked)

    def make(products: int = 60, seed: int = 0, kinds: str = "video,audio,image,text", faces: bool = True,
             **config) -> Path:
        config = {"products": products, "seed": seed, **config}
        key = _store_fingerprint(config, kinds, faces)
        if key in built:
            os.utime(built[key])  # in use: see _prune
            return built[key]
        root = _cache_root(request, tmp_path_factory)
        out = root / f"store-{key}"
        with _building(out):
            if not (out / ".complete").exists():
                shop = cached_shop(root, **config)
                tmp = root / f"{out.name}.tmp-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                build_demo_store(shop, tmp, kinds, faces)
                (tmp / ".complete").touch()
                tmp.rename(out)
            os.utime(out)  # in use: see _prune
        built[key] = out
        return out

    return make


@pytest.fixture(scope="session")
def demo300(demo_store_factory):
    """(read-only store path, truth folder) of the 300-product demo world, seed 0: the annotate
    tests that measure a stage against the world's truth (mark them ``xdist_group("demo300")``).

    Extracted without face detection: the demo world draws no faces (the 537 pictures of this store, looked
    at, gave 537 faces rows of 0 boxes), and looking was 43 of the build's ~100 CPU-s, a fresh clone's
    longest setup. No ``faces`` table then: a test that exports it sets ``export.blur_faces`` off, or the
    export would look for them itself. Faces have their own tests (tests/faces/test_faces.py, test_export_faces.py)."""
    path = demo_store_factory(products=300, seed=0, faces=False)
    return path, cached_shop(path.parent, products=300, seed=0) / "truth"


@pytest.fixture(scope="session")
def demo300_judged(demo300, tmp_path_factory):
    """(read-only store path, truth folder, simulate's report) of the :func:`demo300` store with pools of
    every product (``pools.queries`` 1.0) and simulated judgements of each pool's top 20: where the crowd's,
    the matcher's and the learned dedup's tests start (built once per session; copy it to write)."""
    from m5data.annotate.crowd.simulate import simulate
    from m5data.annotate.pools.job import build_pools
    from m5data.config import load
    from m5data.storage import Store

    path, truth = demo300
    store = Store.open(copy_store(path, tmp_path_factory.mktemp("demo300-judged")))
    settings = load(None, {"store.path": str(store.root), "pools.queries": 1.0}, environ={})
    build_pools(store, settings)
    return store.root, truth, simulate(store, settings, truth, top=20)


@pytest.fixture
def demo300_copy(demo300, tmp_path):
    """(writable copy of the :func:`demo300` store, its truth folder)."""
    path, truth = demo300
    return copy_store(path, tmp_path), truth
