"""A batch of pictures -> one L2-normalised float32 feature vector each."""

from __future__ import annotations

import numpy as np

from .backbone import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneError


def embed(backbone: Backbone, pictures: list[np.ndarray]) -> np.ndarray:
    """``(len(pictures), backbone.dim)`` unit vectors of ``(size, size, 3)`` uint8 RGB pictures."""
    import torch

    if not pictures:
        return np.zeros((0, backbone.dim), np.float32)
    x = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        try:
            out = backbone.module(x)
        except Exception as exc:  # a user's scripted module raises what its code raises
            raise BackboneError(f"vision.model {backbone.identity}: failed on a batch of {len(pictures)}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.dim() == 4:
        out = out.mean((2, 3))
    v = out.float().numpy()
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)
