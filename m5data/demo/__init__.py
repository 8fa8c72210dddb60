"""The demo shop: a deterministic, generated two-platform Chinese e-commerce world with ground truth.

    from m5data.demo import generate, serve_in_thread, load_truth

    out = generate("/tmp/shop", products=300, seed=0)   # site/, truth/, serve.json
    with serve_in_thread(out) as shop:                  # http://127.0.0.1:<free port>
        ...  # crawl shop.url; shop.requests is the server's request log
    truth = load_truth(out)                             # products, specs, media, alignment, ...

Imports are lazy (``generate`` excepted: its module is light and shares its name) so that
``import m5data.demo`` costs next to nothing.
"""

from __future__ import annotations

# Eager, so that ``m5data.demo.generate`` is the function, not the submodule of the same name.
from .generate import generate

__all__ = ["generate", "serve_in_thread", "serve", "load_truth", "RunningShop", "WorldConfig",
           "build_world"]

_WHERE = {"serve_in_thread": "server", "serve": "server",
          "RunningShop": "server", "load_truth": "truth", "WorldConfig": "world",
          "build_world": "world"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
