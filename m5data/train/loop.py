"""``m5data train``: stream the train split's shards, optimise SCALE, log every loss, checkpoint, resume.

The run folder holds the marker ``m5data-run.json``, ``config.json``, ``log.jsonl`` (one line per
step: every loss and the learned modality weights), ``checkpoint.pt`` (model, optimiser, position; written atomically every
``checkpoint_every`` steps and at each epoch's end) and ``model.pt`` (the final weights). Started
again on the same folder, a run resumes from its checkpoint: it skips the batches of the current
epoch already done (the data order is a function of the seed and the epoch) and goes on.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import MODALITIES, Config
from .distributed import Distributed, data_parallel, distributed_from_env, even, join, leave
from .runfolder import (
    RunFolderError,
    check_fits,
    claim,
    integer,
    load_weights,
    open_log,
    restore_rng,
    rng_state,
    save_torch,
    write_file,
)

Progress = Callable[[dict], None]


@dataclass
class TrainResult:
    run: Path
    steps: int
    epochs: int
    resumed_from: int  # step of the checkpoint the run resumed from (0: a fresh run)
    first: dict[str, float] = field(default_factory=dict)  # each loss, mean of the first steps
    last: dict[str, float] = field(default_factory=dict)  # each loss, mean of the last steps
    samples_per_s: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device_of(name: str | None = None):
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weight_names() -> list[tuple[int, int, str]]:
    out = []
    for i, a in enumerate(MODALITIES):
        for j in range(i, len(MODALITIES)):
            out.append((i, j, a if i == j else f"{a}-{MODALITIES[j]}"))
    return out


def train(shards: str | Path, run: str | Path, cfg: Config, epochs: int, *, device: str | None = None,
          max_steps: int | None = None, progress: Progress | None = None) -> TrainResult:
    """Train (or resume) a run.

    Args:
        shards: the export folder holding ``train-*.tar``.
        run: the run folder (created; resumed when it holds a checkpoint). A folder that is not
            empty and not a run folder is refused (``runfolder.claim``) before anything is written.
        cfg: model and training configuration (``load_config``).
        epochs: passes over the train split.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...; default cuda when available.
        max_steps: stop after this many steps in total, counting the steps of the checkpoint resumed
            from (a run folder already there trains nothing more; for short runs and tests).
        progress: called with each step's log record.
    """
    run = Path(run)
    dist = distributed_from_env()
    claim(run, write=dist.main)  # before torch (3-4 CPU-s to import): a refused --out fails at once

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(cfg.train.workers, before))
    try:
        return _train(shards, run, cfg, epochs, dist, device, max_steps, progress)
    finally:
        torch.set_num_threads(before)


def cpu_threads(workers: int, current: int) -> int:
    """torch's threads for the CPU's share of training: the cores this process may run on less the
    DataLoader's ``workers`` (processes decoding the next batches beside it), at least one; ``current``
    when ``OMP_NUM_THREADS`` is set (the user's choice, which torch has read).

    On 2 cores with the small preset's 2 workers (benchmarks/bench_train_threads.py, 2026-11-29): the demo
    world's shards, 80 steps, 60.9 s and 108 CPU-s with torch's default of 2 threads, 53.8 s and 58.6 CPU-s
    with 1; synthetic shards (smaller samples), 40 steps, 23.5 s / 41.7 CPU-s against 25.5 s / 27.0."""
    if os.environ.get("OMP_NUM_THREADS"):
        return current
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - max(0, workers))


def _train(shards, run: Path, cfg: Config, epochs: int, dist: Distributed, device, max_steps, progress) -> TrainResult:
    """:func:`train`'s loop, with torch's threads set."""
    import torch

    from .data import loader
    from .model import Objective, Scale, losses

    seed_everything(cfg.train.seed)
    dev = join(device_of(device), dist)
    model = Scale(cfg.model).to(dev)
    objective = data_parallel(Objective(model), dist, dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.train.warmup_steps)))
    step, epoch0, skip, resumed = 0, 0, 0, 0
    ckpt_path = run / "checkpoint.pt"
    if ckpt_path.exists():
        step, epoch0, skip = _resume(ckpt_path, cfg, model, opt, sched, dev)
        resumed = step
    log = _open_run_log(run, cfg, shards, epochs, dist)
    generator = torch.Generator().manual_seed(cfg.train.seed * 1000 + step + 7919 * dist.rank)
    history: list[dict] = []
    seen, t0 = 0, time.perf_counter()

    def checkpoint(epoch: int, batch: int) -> None:
        if not dist.main:  # DDP keeps every process's weights equal: rank 0 writes them
            return
        save_torch(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                               "step": step, "epoch": epoch, "batch": batch, "rng": rng_state(), "config": cfg.as_dict()})

    try:
        for epoch in range(epoch0, epochs):
            if max_steps and step >= max_steps:  # a total: a run resumed at it trains no step more
                break
            model.train()
            batches = loader(shards, "train", cfg.model, batch_size=cfg.train.batch_size, workers=cfg.train.workers,
                             shuffle=True, seed=cfg.train.seed, epoch=epoch, rank=dist.rank, world=dist.world)
            done_in_epoch = 0
            for b, batch in enumerate(even(batches, dist)):
                if epoch == epoch0 and b < skip:
                    continue  # resumed: this batch was trained before the checkpoint
                total, parts = losses(objective, batch, generator)
                opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                done_in_epoch = b + 1
                seen += len(batch["product_id"]) * dist.world
                w = model.weights().detach().cpu()
                record = {"step": step, "epoch": epoch, "batch": b, "loss": float(total.detach()), **parts,
                          "weights": {name: round(float(w[i, j]), 6) for i, j, name in weight_names()},
                          "lr": sched.get_last_lr()[0], "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                          "world_size": dist.world}
                history.append(record)
                if log is not None and step % cfg.train.log_every == 0:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if progress and dist.main:
                    progress(record)
                if step % cfg.train.checkpoint_every == 0:
                    checkpoint(epoch, b + 1)
                if max_steps and step >= max_steps:
                    break
            if max_steps and step >= max_steps:
                checkpoint(epoch, done_in_epoch)
                break
            checkpoint(epoch + 1, 0)
            skip = 0
    finally:
        if log is not None:
            log.close()
    if dist.main:
        save_torch(run / "model.pt", {"model": model.state_dict(), "config": cfg.as_dict(), "step": step})
    leave(dist)
    return _summary(run, history, step, epochs, resumed)


def _open_run_log(run: Path, cfg: Config, shards, epochs: int, dist: Distributed):
    """The run's step log, opened for appending, and its ``config.json`` written (by the main process
    only; None in the others)."""
    if not dist.main:
        return None
    log = open_log(run / "log.jsonl")  # first: a planted link refuses the run, nothing written
    try:
        write_file(run / "config.json", json.dumps({**cfg.as_dict(), "shards": str(shards), "epochs": epochs,
                                                    "world_size": dist.world}, indent=2))
    except BaseException:
        log.close()
        raise
    return log


def _resume(path: Path, cfg: Config, model, opt, sched, dev) -> tuple[int, int, int]:
    """Load a checkpoint (weights only, checked) into the model, optimiser and scheduler; returns
    (step, epoch, batch) to go on from."""
    state = load_weights(path, dev)
    if state["config"] != cfg.as_dict():
        raise RunFolderError(f"run {path.parent} was started with another configuration; use a new --out folder")
    for key in ("optimizer", "scheduler"):
        if not isinstance(state.get(key), dict):
            raise RunFolderError(f"{path}: no {key} state")
    check_fits(model, state["model"], path)
    position = tuple(integer(state, key, path) for key in ("step", "epoch", "batch"))
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RunFolderError(f"{path}: unusable optimiser or scheduler state ({str(exc).splitlines()[0][:200]})") from None
    if "rng" in state:
        restore_rng(state["rng"], path)
    return position


def _summary(run: Path, history: list[dict], steps: int, epochs: int, resumed: int) -> TrainResult:
    result = TrainResult(run, steps, epochs, resumed)
    if not history:
        return result
    keys = sorted({k for r in history for k in r if k == "loss" or k.startswith("cl:") or k in ("mlm", "mrp", "mem", "mfp", "mam")})
    n = max(1, len(history) // 5)
    for key in keys:
        first = [r[key] for r in history[:n] if key in r]
        last = [r[key] for r in history[-n:] if key in r]
        if first and last:
            result.first[key], result.last[key] = float(np.mean(first)), float(np.mean(last))
    result.samples_per_s = history[-1]["samples_per_s"]
    result.weights = history[-1]["weights"]
    return result


def load_model(run: str | Path, device: str | None = None, image_backbone: str | Path | None = None):
    """The trained model of a run folder (``model.pt``, else its last checkpoint) and its configuration.

    The weight file is read as weights only and its config checked (``config_from_dict``). A run
    whose model used an image backbone needs ``image_backbone``: the backbone file is a program,
    so it is never loaded because a run folder names it, only when the caller names it.
    """
    import torch

    from .config import TrainConfigError, config_from_dict
    from .model import Scale

    run = Path(run)
    path = run / "model.pt" if (run / "model.pt").exists() else run / "checkpoint.pt"
    if not path.exists():
        raise RunFolderError(f"no model.pt or checkpoint.pt in {run} (train first: m5data train --out {run})")
    state = load_weights(path, device_of(device))
    raw = state["config"]
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict) and "pool" not in raw["model"]:
        # trained before pooling, encoder-level SIMCL and property tokens
        raw["model"] = {**raw["model"], "pool": "cls", "feature": "joint", "table_property": False}
    try:
        cfg = config_from_dict(raw, str(path))
    except TrainConfigError as exc:
        raise RunFolderError(str(exc)) from None
    if cfg.model.image_backbone:
        _use_backbone(cfg, path, image_backbone)
    with torch.device("meta"):  # the shapes its config implies, before allocating anything
        check_fits(Scale(cfg.model), state["model"], path)
    model = Scale(cfg.model).to(device_of(device))
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg


def _use_backbone(cfg: Config, path: Path, image_backbone: str | Path | None) -> None:
    from .features import BackboneError, backbone_shape

    if not image_backbone:
        raise RunFolderError(f"{path}: its model used the image backbone {cfg.model.image_backbone}; a backbone file "
                             "is a program that runs when loaded, so it is not taken from a run folder: pass "
                             "--image-backbone FILE naming the backbone you trust")
    cfg.model.image_backbone = str(Path(image_backbone).expanduser().resolve())
    try:
        backbone_shape(cfg.model)
    except BackboneError as exc:
        raise RunFolderError(str(exc)) from None
