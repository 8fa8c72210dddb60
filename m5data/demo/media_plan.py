"""Which media a product page links to: URLs, sizes, durations and the parameters to render them."""

from __future__ import annotations

import random
import string

from .entities import IMAGE_SIZES, VIDEO_FPS, VIDEO_SIZE, Media, Product, WorldConfig

_ALNUM = string.ascii_letters + string.digits
GALLERY_VIEWS = ["detail", "angle", "swatch", "scene"]


def _token(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def image_url(rng: random.Random, p: Product, fmt: str) -> str:
    """A Tmall-like (``O1CN01..._!!seller.jpg``) or JD-like (``jfs/t1/.../hex.jpg``) image path."""
    if p.platform == "shopa":
        return (f"/shopa/img/i{rng.randint(1, 4)}/{p.merchant_id}/"
                f"O1CN01{_token(rng, 22)}_!!{p.merchant_id}.{fmt}")
    return (f"/shopb/img/n1/jfs/t1/{rng.randint(10000, 250000)}/{rng.randint(1, 40)}/"
            f"{rng.randint(1000, 30000)}/{rng.randint(20000, 300000)}/"
            f"{_token(rng, 24, '0123456789abcdef')}.{fmt}")


def video_url(rng: random.Random, p: Product) -> str:
    """A Tmall-like cloud-video path or a JD-like vod path."""
    if p.platform == "shopa":
        return f"/shopa/video/{p.merchant_id}/p/1/e/6/t/1/{rng.randint(10**11, 10**12 - 1)}.mp4"
    return f"/shopb/video/vod/{rng.randint(1000, 9999)}/{_token(rng, 32, '0123456789abcdef')}.mp4"


def plan_media(rng: random.Random, cfg: WorldConfig, p: Product) -> None:
    """Plan the main image, 0-4 gallery images and the (optional) video of one listing.

    The instance's ``visual`` fixes what the product looks and sounds like; the listing's own
    variant (crop, size, JPEG quality, brightness) makes duplicate listings differ as re-encoded,
    resized and cropped copies of one product's photos.
    """
    inst = p.instance
    n_images = 0 if rng.random() < cfg.no_image_rate else \
        1 + rng.choices(range(5), weights=[15, 20, 25, 20, 20])[0]
    width, height = rng.choice(IMAGE_SIZES[p.platform])
    variant = {
        "crop": [round(rng.uniform(0, 0.1), 3) for _ in range(4)],
        "quality": rng.randint(72, 95),
        "brightness": round(rng.uniform(0.9, 1.1), 3),
        "mirror": rng.random() < 0.15,
    }
    views = list(GALLERY_VIEWS)
    rng.shuffle(views)
    for i in range(n_images):
        fmt = "png" if rng.random() < 0.04 else "jpg"
        size = (width, height)
        if i > 0 and inst.sub.class_id == 9 and rng.random() < 0.5:
            size = (750, 1000)  # clothing detail shots are portrait
        if cfg.image_scale != 1.0:  # after the draws: the same world, smaller pictures
            size = (max(16, round(size[0] * cfg.image_scale)), max(16, round(size[1] * cfg.image_scale)))
        render = {"type": "image", "visual": inst.visual, "view": "main" if i == 0 else views[i - 1],
                  "variant": variant, "fmt": fmt, "size": size}
        p.images.append(Media("image", "main" if i == 0 else "gallery", i, image_url(rng, p, fmt),
                              size[0], size[1], render))
    if rng.random() < cfg.video_rate:
        frames = round(VIDEO_FPS * (3 + 27 * rng.random() ** 3))  # 3-30 s, mean ~10 s
        width, height = VIDEO_SIZE[p.platform]
        has_audio = rng.random() < cfg.audio_rate
        render = {"type": "video", "visual": inst.visual, "frames": frames, "fps": VIDEO_FPS,
                  "size": (width, height), "audio": has_audio, "phase": rng.randint(0, 99)}
        p.video = Media("video", "video", 0, video_url(rng, p), width, height, render,
                        duration_s=round(frames / VIDEO_FPS, 3), fps=VIDEO_FPS, has_audio=has_audio)
