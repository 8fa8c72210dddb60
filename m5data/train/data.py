"""Streaming the exported WebDataset shards into padded batches (webdataset + a torch DataLoader).

A batch is a dict of tensors, one group per modality: ``<m>`` the token features (or ids), ``<m>_mask``
True where a token is real, ``<m>_present`` True where the sample has that modality at all.
Shards are local files or objects under a URL (``s3://bucket/prefix``), streamed through fsspec.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .config import MODALITIES, ModelConfig
from .features import PAD, sample_arrays


class ShardError(UserError, ValueError):
    """No shards for a split, or an unreadable shard; the message names the folder or file."""


def indexed_shards(shards: str | Path, split: str) -> list[str] | None:
    """The shards the split's ``wids`` index lists (paths relative to the folder; an incremental
    export's inherited shards as ``../<folder>/<shard>``), or None without an index. A path that
    leads out of the folder, other than into a folder the export inherits from, is an error."""
    import json

    from m5data.export.folder_reader import reader_of
    from m5data.export.remote import OutsideFolder, RemoteError

    try:
        reader = reader_of(str(shards) if not isinstance(shards, Path) else shards)
        if f"{split}.index.json" not in reader.names():
            return None
        index = json.loads(reader.read_text(f"{split}.index.json"))
        paths = [entry["url"] for entry in index.get("shardlist", [])]
        for rel in paths:
            reader._inside(rel)
    except RemoteError as exc:
        raise ShardError(str(exc)) from None
    except OutsideFolder as exc:
        raise ShardError(f"the index of split {split!r} in {shards} names a shard outside the export: {exc}") from None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ShardError(f"unreadable index of split {split!r} in {shards}: {exc}") from None
    return paths


def shard_urls(shards: str | Path, split: str) -> list[str]:
    """The tar shards of one split in an export folder or under an export URL: those its index lists
    (an incremental export's inherited shards too), else ``<split>-000000.tar`` ... sorted."""
    from m5data.export.remote import RemoteError, RemoteFolder, is_remote

    if is_remote(shards):
        try:
            folder = RemoteFolder(shards)
            listed = indexed_shards(shards, split)
            if listed:
                return [folder.full_url(n) for n in listed]
            names = folder.glob(f"{split}-*.tar")
        except RemoteError as exc:
            raise ShardError(str(exc)) from None
        if not names:
            raise ShardError(f"no shards for split {split!r} under {folder.url} (expected {split}-000000.tar ...; "
                             "run `m5data export`)")
        return [folder.full_url(n) for n in names]
    root = Path(shards)
    if not root.is_dir():
        raise ShardError(f"shard folder {root} does not exist")
    listed = indexed_shards(root, split)
    if listed:
        return [os.path.normpath(root / rel) for rel in listed]
    urls = sorted(glob.glob(str(root / f"{split}-*.tar")))
    if not urls:
        raise ShardError(f"no shards for split {split!r} in {root} (expected {split}-000000.tar ...; run `m5data export`)")
    return urls


def _image_shape(cfg: ModelConfig) -> tuple[int, int]:
    if cfg.image_backbone:
        from .features import backbone_shape

        return backbone_shape(cfg)
    g = cfg.image_size // cfg.patch
    return g * g, cfg.patch * cfg.patch * 3


def lengths(cfg: ModelConfig) -> dict[str, int]:
    return {"text": cfg.text_len, "image": _image_shape(cfg)[0], "table": cfg.table_len, "video": cfg.video_len,
            "audio": cfg.audio_len}


def feature_dims(cfg: ModelConfig) -> dict[str, int]:
    return {"image": _image_shape(cfg)[1], "video": cfg.frame_size * cfg.frame_size * 3, "audio": 2 * cfg.n_mfcc}


def collate(items: list[dict], cfg: ModelConfig) -> dict:
    """Pad a list of :func:`sample_arrays` dicts to the configured lengths and stack them."""
    import torch

    size = lengths(cfg)
    dims = feature_dims(cfg)
    batch: dict = {}
    n = len(items)
    for m in MODALITIES:
        length = size[m]
        mask = np.zeros((n, length), dtype=bool)
        if m == "text":
            values = np.full((n, length), PAD, dtype=np.int64)
        elif m == "table":
            values = np.full((n, length, 2), PAD, dtype=np.int64)
        else:
            values = np.zeros((n, length, dims[m]), dtype=np.float32)
        for i, item in enumerate(items):
            arr = item[m][:length]
            values[i, : len(arr)] = arr
            mask[i, : len(arr)] = True
        batch[m] = torch.from_numpy(values)
        batch[f"{m}_mask"] = torch.from_numpy(mask)
        batch[f"{m}_present"] = torch.from_numpy(mask.any(axis=1))
    batch["product_id"] = [it["product_id"] for it in items]
    batch["category"] = [it["category"] for it in items]
    batch["instance"] = [it["instance"] for it in items]
    batch["caption"] = [it["caption"] for it in items]
    return batch


def _decode(cfg: ModelConfig):
    def decode(sample: dict) -> dict:
        return sample_arrays(sample, cfg)

    return decode


def _is_remote(shards) -> bool:
    from m5data.export.remote import is_remote

    return is_remote(shards)


class _RemoteTarSamples:
    """Pipeline stage: stream each shard URL through fsspec and expand it into samples, as
    ``wds.tarfile_to_samples`` does for files (webdataset's own opener has no ``s3://`` handler).
    Each process (a DataLoader worker too) opens its own filesystem."""

    def __init__(self, shards: str):
        from m5data.export.folder_reader import reader_of

        self.folder = reader_of(shards)  # follows the index into the folders the export inherits from

    def _streams(self, sources):
        from m5data.export.remote import RemoteError

        for source in sources:
            rel = source["url"][len(self.folder.url) + 1:]
            try:
                yield {**source, "stream": self.folder.open(rel)}
            except RemoteError as exc:
                raise ShardError(str(exc)) from None

    def __call__(self, sources):
        from webdataset.handlers import reraise_exception
        from webdataset.tariterators import group_by_keys, tar_file_expander

        return group_by_keys(tar_file_expander(self._streams(sources), handler=reraise_exception), handler=reraise_exception)


class _EveryNth:
    """Keep samples ``rank``, ``rank + world``, ... of a stream (one DDP process's share)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def __call__(self, samples):
        for i, sample in enumerate(samples):
            if i % self.world == self.rank:
                yield sample


class _WorkersShare:
    """Keep every n-th sample of the stream from the DataLoader worker's id on (n: the workers), when
    there are more workers than shards: each worker reads every shard and decodes its share."""

    def __call__(self, samples):
        import torch

        info = torch.utils.data.get_worker_info()
        if info is None or info.num_workers <= 1:
            yield from samples
            return
        yield from _EveryNth(info.id, info.num_workers)(samples)


def loader(shards: str | Path, split: str, cfg: ModelConfig, *, batch_size: int, workers: int = 0,
           shuffle: bool = False, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1):
    """A DataLoader over a split's shards: shards are split across workers; optional seeded shuffling.

    Args:
        shuffle: shuffle shard order and samples (a buffer of 256) with ``seed + epoch``.
        workers: DataLoader worker processes (0: decode in this process). With at least as many
            shards, each worker reads its shards (round robin); with more workers than shards (a
            default demo export has one shard per split) each worker reads every shard and keeps
            every ``workers``-th sample, so every worker decodes and none is left without work.
        rank, world: under DDP, this process's rank and the number of processes: every process reads
            the same seeded stream and keeps every ``world``-th sample from its ``rank`` on, so the
            processes share the split without overlap however few shards there are.
    """
    import functools

    import torch
    import webdataset as wds

    urls = shard_urls(shards, split)
    pipeline = [wds.SimpleShardList(urls)]
    if shuffle:
        pipeline.append(wds.detshuffle(len(urls), len(urls), seed=seed, epoch=epoch))
    by_sample = workers > len(urls)
    if not by_sample:
        pipeline.append(wds.split_by_worker)
    pipeline.append(_RemoteTarSamples(shards) if _is_remote(shards) else wds.tarfile_to_samples(handler=wds.reraise_exception))
    if shuffle:
        pipeline.append(wds.detshuffle(256, 64, seed=seed + 1, epoch=epoch))
    if world > 1:
        pipeline.append(_EveryNth(rank, world))
    if by_sample:
        pipeline.append(_WorkersShare())
    pipeline.append(wds.map(_decode(cfg)))
    dataset = wds.DataPipeline(*pipeline)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers,
        collate_fn=functools.partial(collate, cfg=cfg), persistent_workers=False, worker_init_fn=_forked_worker_init)


def _forked_worker_init(_worker_id: int) -> None:
    """A DataLoader worker is a fork of the training process, which may be inside a Prefect flow
    (``m5data run``, ``m5data demo --train``). Prefect registers threading exit hooks that drain its
    service threads; in the child those threads do not exist, the hooks fail an assertion when the
    worker exits, the worker exits with code 1, and the DataLoader aborts the run at the end of the
    first epoch. The child has none of the parent's threads, so it runs none of their exit hooks."""
    import threading

    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list behind threading._register_atexit
    if isinstance(hooks, list):
        hooks.clear()
