"""A run folder, trusted for nothing: someone may share one, and ``m5data train`` may be pointed at any folder.

- Weight files (``model.pt``, ``checkpoint.pt``) are read with ``torch.load(weights_only=True)``:
  tensors and plain containers of numbers and strings; a file that needs any other object (a
  pickle that would run code) is refused, naming it. Their shape is checked before use. A file
  is bounded before it is unpickled (:data:`MAX_WEIGHT_BYTES` in all, :data:`MAX_PICKLE_BYTES` for its
  pickled part) and its tensors are memory-mapped (file pages the kernel can drop), not copied.
- ``train --out`` writes only into a new or empty folder, one holding the run marker
  (``m5data-run.json``, written when a run starts) or a run folder from before the marker
  (recognised by its ``config.json`` of a run beside its ``log.jsonl`` or weights).
- What is written into a run folder never follows a link planted there: whole files are written
  to a fresh temporary file and renamed over the name; the log is opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError

RUN_MARKER = "m5data-run.json"
# A weight file of the thin SCALE model is a few MB to a few hundred MB (docs/train.md); a shared file
# over this is refused before torch reads it.
MAX_WEIGHT_BYTES = 4 << 30
# The pickled part of a weight file (names, config, numbers; tensors live in records of their own) is
# a few KB; the weights-only unpickler still holds every string and list it names in memory.
MAX_PICKLE_BYTES = 16 << 20
WEIGHT_FILES = ("model.pt", "checkpoint.pt")


class RunFolderError(UserError, ValueError):
    """A run folder, or a file in it, that is refused; the message names it."""


# ------------------------------------------------------------------------------------------ --out
def claim(run: Path, *, write: bool) -> None:
    """Refuse ``run`` as ``train --out`` unless it is new, empty or a run folder; mark it (``write``:
    rank 0 only, the other ranks of a torchrun job check and write nothing)."""
    if run.exists() and not run.is_dir():
        raise RunFolderError(f"--out {run} is a file, not a run folder")
    if run.is_dir() and not (run / RUN_MARKER).exists() and any(run.iterdir()) and not is_old_run(run):
        raise RunFolderError(f"--out {run} is not empty and is not a run folder of m5data train (no {RUN_MARKER}, "
                             "no config.json of a run beside log.jsonl); nothing was written: use a new or empty folder")
    if not write:
        return
    run.mkdir(parents=True, exist_ok=True)
    try:  # "x": created here or already there; never written through a planted link
        with (run / RUN_MARKER).open("x", encoding="utf-8") as fh:
            fh.write(json.dumps({"written_by": "m5data train", "format": 1}) + "\n")
    except FileExistsError:
        pass


def is_old_run(run: Path) -> bool:
    """A run folder written before the marker existed: what it always held, a ``config.json`` whose
    ``model`` and ``train`` objects use only this project's keys, beside ``log.jsonl`` or weights."""
    from .config import ModelConfig, TrainConfig

    path = run / "config.json"
    if path.is_symlink() or not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    if not isinstance(raw, dict):
        return False
    for section, kind in (("model", ModelConfig), ("train", TrainConfig)):
        known = {f.name for f in dataclasses.fields(kind)}
        if not isinstance(raw.get(section), dict) or not set(raw[section]) <= known:
            return False
    return any((run / name).is_file() for name in ("log.jsonl", *WEIGHT_FILES))


# ------------------------------------------------------------------------------------------ writing
def write_file(path: Path, data: bytes | str) -> None:
    """Replace ``path`` whole: a fresh temporary file beside it, renamed over it (a planted link is
    replaced, not followed; a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: Path, obj) -> None:
    """``torch.save`` to a fresh temporary file, renamed over ``path`` (see :func:`write_file`)."""
    import torch

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_log(path: Path):
    """``log.jsonl`` opened for appending, refused when it is a link (it would append elsewhere)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot be appended to ({exc.strerror}; a link is refused)") from None
    return os.fdopen(fd, "a", encoding="utf-8")


# ------------------------------------------------------------------------------------------ reading
def load_weights(path: Path, device=None) -> dict:
    """A weight file as weights only, or :class:`RunFolderError` naming it."""
    import torch

    _check_size(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=True)
    except Exception as exc:  # UnpicklingError for a forbidden object; RuntimeError, EOFError ... for a damaged file
        raise RunFolderError(f"{path}: refused: {_why(exc)}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "config" not in state:
        raise RunFolderError(f"{path}: not a weight file of m5data train (expected model weights and a config)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        raise RunFolderError(f"{path}: its model holds something other than named tensors")
    return state


def _check_size(path: Path) -> None:
    """Refuse a weight file, or its pickled part, over the caps before anything is unpickled."""
    import zipfile

    size = path.stat().st_size
    if size > MAX_WEIGHT_BYTES:
        raise RunFolderError(f"{path}: refused: {size:,} bytes is over the {MAX_WEIGHT_BYTES:,}-byte cap "
                             "on a weight file")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith(".pkl")]
    except (zipfile.BadZipFile, OSError):
        return  # not a zip archive: torch.load refuses it with its own reason
    for info in pickles:
        if info.file_size > MAX_PICKLE_BYTES or info.compress_type != zipfile.ZIP_STORED:
            raise RunFolderError(f"{path}: refused: its pickled part {info.filename} is "
                                 f"{info.file_size:,} bytes (cap {MAX_PICKLE_BYTES:,}, stored uncompressed)")


def _why(exc: Exception) -> str:
    text = str(exc)
    if "Weights only load failed" in text or "Unsupported global" in text:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)  # torch's advice after it does not apply here
        return ("it holds Python objects beyond tensors, numbers and strings, and loading them could run code"
                + (f" (it names {found.group(1)[:120]})" if found else ""))
    return f"not a torch weight file torch can read ({(text.splitlines() or [type(exc).__name__])[0][:200]})"


def integer(state: dict, key: str, path: Path) -> int:
    value = state.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RunFolderError(f"{path}: {key} must be a non-negative integer, not {value!r}"[:300])
    return value


def check_fits(model, weights: dict, path: Path) -> None:
    """The weights have the names and shapes of ``model``'s (a skeleton on the meta device will do)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise RunFolderError(f"{path}: its weights do not fit its configuration "
                             f"({len(diff)} tensors missing, extra or of another shape, e.g. {diff[0]})")


# ------------------------------------------------------------------------------------------ RNG
def rng_state() -> dict:
    """The torch, numpy and Python generators' states as a tensor and lists (no pickled objects)."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "python": [int(version), list(internal), gauss]}


def restore_rng(state, path: Path) -> None:
    """Set the generators from :func:`rng_state`'s dict, or from the torch byte tensor older checkpoints held."""
    import torch

    try:
        if isinstance(state, torch.Tensor):
            torch.set_rng_state(state)
            return
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise RunFolderError(f"{path}: unusable random generator state ({str(exc)[:200]})") from None
