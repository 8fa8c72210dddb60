"""Smaller pictures (WorldConfig.image_scale): the same world, every listing image's sides scaled;
at the default the world and its manifest are as they were without the field."""

from __future__ import annotations

from m5data.demo import truth
from m5data.demo.world import WorldConfig, build_world


def _images(world):
    return [(m.url, m.width, m.height) for p in world.products for m in p.images]


def test_a_scaled_world_has_the_same_media_with_smaller_sides():
    plain, half = build_world(WorldConfig(products=60, seed=0)), build_world(WorldConfig(products=60, seed=0, image_scale=0.5))
    a, b = _images(plain), _images(half)
    assert len(a) == len(b) > 50 and [u for u, _, _ in a] == [u for u, _, _ in b]
    assert all((w2, h2) == (max(16, round(w * 0.5)), max(16, round(h * 0.5))) for (_, w, h), (_, w2, h2) in zip(a, b))
    assert [p.title for p in plain.products] == [p.title for p in half.products]
    assert [p.video.url if p.video else None for p in plain.products] == [p.video.url if p.video else None for p in half.products]
    assert "image_scale" not in truth.manifest(plain, truth._rows(plain, [], {}))["config"]
    assert truth.manifest(half, truth._rows(half, [], {}))["config"]["image_scale"] == 0.5
