"""Pytest fixtures of the demo shop; ``tests/conftest.py`` does ``from m5data.demo.fixtures import *``.

- ``demo_shop_dir``: a small generated shop (60 products in 14 sub-classes, seed 0, 3 products a
  listing page so that pagination shows), generated once and cached under pytest's cache folder,
  keyed by the demo package's source and the config.
- ``demo_shop``: that shop served on a free 127.0.0.1 port for the whole session, a
  ``RunningShop``: ``.url``, ``.site_dir``, ``.truth_dir``, ``.truth``, ``.requests``,
  ``.clear_requests()``, ``.reset_faults()`` (re-arm the answer-500-once URLs).
- ``demo_shop_factory``: ``make(products=40, seed=1, **world_config) -> RunningShop`` for tests
  that need another world; each is generated once (cached) and served until the session ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

DEMO_SHOP_CONFIG = {"products": 60, "seed": 0, "subclasses": 14, "page_size_shopa": 3, "page_size_shopb": 3}
SLOW_SECONDS = 0.3

__all__ = ["demo_shop_dir", "demo_shop", "demo_shop_factory", "DEMO_SHOP_CONFIG", "cached_shop"]


def _fingerprint(config: dict) -> str:
    """Digest of the demo package's source and a world config: the cache key of a generated shop."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def cached_shop(cache_root: Path, **config) -> Path:
    """Generate a shop for ``config`` once under ``cache_root``; reuse it while the code is unchanged."""
    from .generate import generate
    from .world import WorldConfig

    out = cache_root / f"shop-{_fingerprint(config)}"
    if (out / ".complete").exists():
        os.utime(out)  # marks it as in use for _prune
        return out
    tmp = cache_root / f"{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, config=WorldConfig(**config))
    (tmp / ".complete").touch()
    try:
        tmp.rename(out)  # atomic: parallel test workers never see half a shop
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another worker won the race
    _prune(cache_root, keep=out)
    return out


def _prune(cache_root: Path, keep: Path, max_age_s: float = 3600) -> None:
    """Drop shops (and half-written ones) of older code that no session has touched for an hour."""
    now = time.time()
    for old in cache_root.glob("shop-*"):
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
    from .server import serve_in_thread

    with serve_in_thread(demo_shop_dir, slow_seconds=SLOW_SECONDS) as shop:
        yield shop


@pytest.fixture(scope="session")
def demo_shop_factory(request, tmp_path_factory):
    """``make(products=40, seed=1, **world_config)`` -> a served ``RunningShop`` (cached per config)."""
    from .server import serve_in_thread

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
