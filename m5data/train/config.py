"""Model and training configurations: ``small`` (default, CPU-friendly), ``paper`` (the papers' sizes) or a TOML file."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MODALITIES = ("text", "image", "table", "video", "audio")


class TrainConfigError(UserError, ValueError):
    """A training configuration that cannot be used; the message names the key or file."""


@dataclass
class ModelConfig:
    dim: int = 128  # hidden size of every transformer (paper: 768)
    heads: int = 4
    modality_layers: int = 1  # transformer layers of each modality encoder (paper: 6)
    joint_layers: int = 2  # layers of the joint co-transformer (paper: 6)
    dropout: float = 0.1
    text_len: int = 36  # caption tokens (paper: 36)
    text_vocab: int = 8192  # hashed character vocabulary (ids 0 pad, 1 mask, 2.. characters)
    table_len: int = 64  # property/value entities (paper: 64)
    table_vocab: int = 16384  # hashed entity vocabulary
    image_size: int = 64  # the normalised image is resized to this square (paper-sized: 224)
    patch: int = 16  # patch side: (image_size / patch)^2 patch tokens
    # a local image backbone: a torch.export program (.pt2) or a TorchScript file, e.g. a torchvision
    # ResNet or an open_clip visual tower exported elsewhere; its output on the ImageNet-normalised
    # image becomes the image tokens. Empty: raw pixel patches. Nothing is downloaded.
    image_backbone: str = ""
    video_len: int = 16  # frames (1 fps) at most
    frame_size: int = 16  # a frame's feature: its pixels at frame_size x frame_size
    audio_len: int = 16  # MFCC blocks (1 per second) at most
    n_mfcc: int = 40  # MFCC coefficients per block (extract.n_mfcc)
    temperature: float = 0.07  # SIMCL's tau
    mask_rate: float = 0.15  # masked tasks (the papers: 15%)
    table_property: bool = True  # a table entity's token adds its property's embedding to its property:value one
    pool: str = "mean"  # a modality's embedding: "mean" of its token outputs, or its "cls" output
    feature: str = "encoders"  # the product feature: the modality "encoders'" embeddings, or the "joint" co-transformer's


@dataclass
class TrainConfig:
    batch_size: int = 32  # paper: 64
    lr: float = 3e-4  # paper: 1e-4 with warm-up
    warmup_steps: int = 20
    weight_decay: float = 0.01
    workers: int = 2  # DataLoader workers
    checkpoint_every: int = 50  # steps
    log_every: int = 1  # steps
    seed: int = 0


@dataclass
class Config:
    model: ModelConfig
    train: TrainConfig
    name: str = "small"

    def as_dict(self) -> dict:
        return {"name": self.name, "model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}


PRESETS = {
    "small": {},
    "paper": {"model": {"dim": 768, "heads": 12, "modality_layers": 6, "joint_layers": 6, "image_size": 224, "patch": 32,
                        "video_len": 36, "audio_len": 36, "text_vocab": 30522},
              "train": {"batch_size": 64, "lr": 1e-4, "warmup_steps": 1000}},
}


def load_config(spec: str | Path) -> Config:
    """``small``, ``paper``, or a TOML file with ``[model]`` / ``[train]`` tables (and ``base = "small"|"paper"``)."""
    spec = str(spec)
    if spec in PRESETS:
        values, name = PRESETS[spec], spec
    else:
        path = Path(spec)
        if not path.is_file():
            raise TrainConfigError(f"--preset must be small, paper or a TOML file; {spec!r} is none of these")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TrainConfigError(f"config file {path} is not valid TOML: {exc}") from None
        base = PRESETS.get(raw.pop("base", "small"))
        if base is None:
            raise TrainConfigError(f"config file {path}: base must be small or paper")
        values = {k: {**base.get(k, {}), **raw.get(k, {})} for k in ("model", "train")}
        unknown = set(raw) - {"model", "train"}
        if unknown:
            raise TrainConfigError(f"config file {path}: unknown tables {sorted(unknown)} (known: model, train)")
        name = path.stem
    model, train = ModelConfig(), TrainConfig()
    for obj, section in ((model, "model"), (train, "train")):
        for key, value in values.get(section, {}).items():
            if not hasattr(obj, key):
                names = ", ".join(f.name for f in dataclasses.fields(obj))
                raise TrainConfigError(f"unknown key {section}.{key} (known in [{section}]: {names})")
            setattr(obj, key, type(getattr(obj, key))(value))
    if model.image_backbone and spec not in PRESETS:  # relative to the config file, kept absolute in the run
        model.image_backbone = str((Path(spec).parent / Path(model.image_backbone).expanduser()).resolve())
    cfg = Config(model, train, name)
    _validate(cfg)
    return cfg


def config_from_dict(raw, source: str) -> Config:
    """The configuration a run folder holds (``as_dict``'s layout), checked key by key and type by type:
    a run folder may come from someone else. Keys it lacks (older runs) take their defaults; the
    caller fills those whose default changed since."""
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), dict) for k in ("model", "train")):
        raise TrainConfigError(f"{source}: its config must be an object with model and train objects")
    name = raw.get("name", "small")
    if not isinstance(name, str):
        raise TrainConfigError(f"{source}: its config's name must be a string")
    model, train = ModelConfig(), TrainConfig()
    for obj, section in ((model, "model"), (train, "train")):
        for key, value in raw[section].items():
            if not hasattr(obj, key):
                shown = key if str(key).isidentifier() else repr(key)
                raise TrainConfigError(f"{source}: unknown key {section}.{shown}"[:300])
            default = getattr(obj, key)
            if not _same_kind(value, default):
                raise TrainConfigError(f"{source}: {section}.{key} must be of type {type(default).__name__}, not {value!r}"[:300])
            setattr(obj, key, type(default)(value))
    cfg = Config(model, train, name)
    _validate(cfg, backbone=False)  # a backbone file is a program: never loaded because a run folder names it
    return cfg


def _same_kind(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _validate(cfg: Config, backbone: bool = True) -> None:
    """Refuse a configuration that cannot train; ``backbone``: also load and run the image backbone once."""
    m, t = cfg.model, cfg.train
    for key in ("dim", "heads", "text_len", "text_vocab", "table_len", "table_vocab",
                "image_size", "patch", "video_len", "frame_size", "audio_len", "n_mfcc"):
        if getattr(m, key) < 1 or (key in ("text_vocab", "table_vocab") and getattr(m, key) < 3):
            raise TrainConfigError(f"model.{key} must be >= 1 (the vocabularies >= 3), not {getattr(m, key)}")
    if m.image_backbone and backbone:
        from .features import BackboneError, backbone_shape

        try:
            backbone_shape(m)  # a missing or unusable file is refused here, naming it
        except BackboneError as exc:
            raise TrainConfigError(str(exc)) from None
    if m.dim % m.heads:
        raise TrainConfigError(f"model.dim ({m.dim}) must be a multiple of model.heads ({m.heads})")
    if m.image_size % m.patch:
        raise TrainConfigError(f"model.image_size ({m.image_size}) must be a multiple of model.patch ({m.patch})")
    if m.pool not in ("mean", "cls"):
        raise TrainConfigError(f"model.pool must be mean or cls, not {m.pool!r}")
    if m.feature not in ("encoders", "joint"):
        raise TrainConfigError(f"model.feature must be encoders or joint, not {m.feature!r}")
    if not 0 < m.mask_rate < 1 or m.temperature <= 0:
        raise TrainConfigError("model.mask_rate must be in (0, 1) and model.temperature > 0")
    for key in ("batch_size", "checkpoint_every", "log_every"):
        if getattr(t, key) < 1:
            raise TrainConfigError(f"train.{key} must be >= 1")
    if t.batch_size < 2:
        raise TrainConfigError("train.batch_size must be >= 2 (contrastive pairs need negatives)")
