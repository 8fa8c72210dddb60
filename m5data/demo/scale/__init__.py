"""The scale world: the demo shop's taxonomy, titles, specs and duplicates at up to millions of products.

Made for size, not media fidelity: every product has one small main image, a share has a short
video copied from a few shared clips. ``generate_scale`` writes the world chunk by chunk in
parallel (bounded memory); ``write_scale_site`` (opt-in, ``--site``) writes its HTML pages so a real
crawl reads it; ``build_scale_store`` writes the store a crawl, download and extract of it would
have written, without crawling (``docs/demo-shop.md``, "Scale worlds").
"""

from __future__ import annotations

from .world import ScaleConfig


def __getattr__(name: str):
    if name == "generate_scale":
        from .generate import generate_scale

        return generate_scale
    if name == "build_scale_store":
        from .store import build_scale_store

        return build_scale_store
    raise AttributeError(name)


__all__ = ["ScaleConfig", "build_scale_store", "generate_scale"]
