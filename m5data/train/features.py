"""One exported sample (WebDataset keys: jpg, txt, json, frameNNN.jpg, mfcc.npy) -> the model's input arrays.

No downloaded backbone: text is hashed characters, the table hashed property:value entities (each
with its property's id, so that entities of one property share part of their token), the
image a grid of raw pixel patches of the stored normalised image (or, with ``image_backbone``, the
output of a local TorchScript backbone), the video one small pixel vector
per 1-fps frame, the audio the mean and spread of each per-second MFCC block. A missing modality
gives an empty array and ``present = False``; the model zero-imputes and masks it.
"""

from __future__ import annotations

import io
import json
import zlib
from typing import TYPE_CHECKING

import numpy as np

from ..vision.backbone import IMAGENET_MEAN as _IMAGENET_MEAN
from ..vision.backbone import IMAGENET_STD as _IMAGENET_STD
from ..vision.backbone import BackboneError, load_module  # noqa: F401  (BackboneError: raised from here too)

if TYPE_CHECKING:  # a type only: config.py asks this module to probe a backbone
    from .config import ModelConfig


PAD, MASK = 0, 1  # reserved ids of the text and table vocabularies


def hashed_id(text: str, vocab: int) -> int:
    """A stable id in [2, vocab) for a character or an entity (crc32: the same in every process)."""
    return 2 + zlib.crc32(text.encode("utf-8")) % (vocab - 2)


def text_ids(text: str, cfg: ModelConfig) -> np.ndarray:
    chars = [c for c in text if not c.isspace()][: cfg.text_len]
    return np.array([hashed_id(c, cfg.text_vocab) for c in chars], dtype=np.int64)


def table_ids(specs: list, cfg: ModelConfig) -> np.ndarray:
    """(entities, 2): each property:value entity's id and its property's id (one vocabulary)."""
    rows = [(hashed_id(f"{p}:{v}", cfg.table_vocab), hashed_id(f"{p}\x00", cfg.table_vocab)) for p, v in specs[: cfg.table_len]]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _rgb(data: bytes, size: int) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            # a JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers ``size`` (libjpeg's DCT
            # scaling): a 16 px frame feature from a 320 px frame no longer decodes every pixel
            im.draft("RGB", (size, size))
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError):
        return None


# the image models' one home (m5data/vision/backbone.py): loaded there, once per process and file version
# (DataLoader workers load their own)
IMAGENET_MEAN = np.array(_IMAGENET_MEAN, np.float32)
IMAGENET_STD = np.array(_IMAGENET_STD, np.float32)


def _backbone_tokens(rgb: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """The backbone's output on one (H, W, 3) image in [0, 1]: (C, h, w) maps become h*w tokens of C,
    (N, C) token sequences stay, a (C,) vector is one token."""
    import torch

    x = torch.from_numpy(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())[None]
    try:
        with torch.no_grad():
            out = load_module(cfg.image_backbone)(x)
    except BackboneError:
        raise
    except Exception as exc:  # a scripted module raises what its code raises
        raise BackboneError(f"model.image_backbone {cfg.image_backbone}: failed on a {cfg.image_size}x{cfg.image_size} "
                            f"image: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    out = out[0].float()
    if out.dim() == 3:
        out = out.flatten(1).T
    elif out.dim() == 1:
        out = out[None]
    if out.dim() != 2:
        raise BackboneError(f"model.image_backbone {cfg.image_backbone}: output of shape {tuple(out.shape)}; "
                            "expected (C, h, w), (N, C) or (C,) per image")
    return out.numpy().astype(np.float32)


_SHAPES: dict[tuple[str, int], tuple[int, int]] = {}


def backbone_shape(cfg: ModelConfig) -> tuple[int, int]:
    """(tokens, features) of the configured backbone, found once by running it on a grey image."""
    from pathlib import Path

    key = (cfg.image_backbone, cfg.image_size)
    if key not in _SHAPES:
        if not Path(cfg.image_backbone).is_file():
            raise BackboneError(f"model.image_backbone {cfg.image_backbone}: no such file")
        tokens = _backbone_tokens(np.full((cfg.image_size, cfg.image_size, 3), 0.5, np.float32), cfg)
        _SHAPES[key] = tokens.shape
    return _SHAPES[key]


def image_patches(data: bytes, cfg: ModelConfig) -> np.ndarray:
    """(patches, patch*patch*3) pixel patches in raster order, or the backbone's tokens; empty when the
    image does not decode."""
    rgb = _rgb(data, cfg.image_size)
    if cfg.image_backbone:
        if rgb is None:
            return np.zeros((0, backbone_shape(cfg)[1]), np.float32)
        return _backbone_tokens(rgb, cfg)
    if rgb is None:
        return np.zeros((0, cfg.patch * cfg.patch * 3), np.float32)
    g = cfg.image_size // cfg.patch
    return rgb.reshape(g, cfg.patch, g, cfg.patch, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, -1)


def frame_features(frames: list[bytes], cfg: ModelConfig) -> np.ndarray:
    """(frames, frame_size*frame_size*3): at most video_len frames, evenly spaced over the video."""
    if len(frames) > cfg.video_len:
        keep = np.linspace(0, len(frames) - 1, cfg.video_len).round().astype(int)
        frames = [frames[k] for k in keep]
    feats = [f for f in (_rgb(b, cfg.frame_size) for b in frames) if f is not None]
    if not feats:
        return np.zeros((0, cfg.frame_size * cfg.frame_size * 3), np.float32)
    return np.stack([f.reshape(-1) for f in feats])


def audio_features(data: bytes, cfg: ModelConfig) -> np.ndarray:
    """(blocks, 2*n_mfcc): mean and standard deviation over time of each per-second MFCC block."""
    try:
        mfcc = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        return np.zeros((0, 2 * cfg.n_mfcc), np.float32)
    if mfcc.ndim == 2:  # (n_mfcc, frames): one block
        mfcc = mfcc[None]
    if mfcc.ndim != 3 or mfcc.shape[1] != cfg.n_mfcc or not len(mfcc):
        return np.zeros((0, 2 * cfg.n_mfcc), np.float32)
    if len(mfcc) > cfg.audio_len:
        mfcc = mfcc[np.linspace(0, len(mfcc) - 1, cfg.audio_len).round().astype(int)]
    feats = np.concatenate([mfcc.mean(axis=2), mfcc.std(axis=2)], axis=1) / 100.0  # MFCCs are O(100): rescale
    return feats.astype(np.float32)


def meta_of(sample: dict) -> dict:
    raw = sample.get("json")
    if raw is None:
        return {}
    try:
        return json.loads(raw if isinstance(raw, (str, bytes)) else bytes(raw))
    except ValueError:
        return {}


def label_of(meta: dict, *names: str):
    """The first of ``names`` found in the sample's JSON, at the top level or under ``labels``."""
    for name in names:
        for where in (meta, meta.get("labels") or {}):
            if isinstance(where, dict) and where.get(name) is not None:
                return where[name]
    return None


def sample_arrays(sample: dict, cfg: ModelConfig) -> dict:
    """The model's inputs and the sample's labels, from one WebDataset sample of raw bytes."""
    meta = meta_of(sample)
    text = sample.get("txt")
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or meta.get("title") or "")
    frames = [sample[k] for k in sorted(k for k in sample if k.startswith("frame") and k.endswith(".jpg"))]
    out = {
        "text": text_ids(text, cfg),
        "image": image_patches(sample["jpg"], cfg) if sample.get("jpg") else np.zeros((0, cfg.patch * cfg.patch * 3), np.float32),
        "table": table_ids(meta.get("specs") or [], cfg),
        "video": frame_features(frames, cfg),
        "audio": audio_features(sample["mfcc.npy"], cfg) if sample.get("mfcc.npy") else np.zeros((0, 2 * cfg.n_mfcc), np.float32),
        "product_id": meta.get("product_id") or sample.get("__key__", ""),
        "category": label_of(meta, "sub_class_id", "class_id"),
        "instance": label_of(meta, "group_id", "dedup_group", "instance_id"),
        "caption": text,
    }
    return out
