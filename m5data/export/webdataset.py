"""WebDataset layout: ``<split>-000000.tar`` shards, per-shard stats, a ``wids`` index per split.

One sample per product, its members named ``<key>.<field>`` with the key from
:func:`~m5data.export.samples.safe_key` (no dots) and the fields, in sorted order:

- ``frame000.jpg`` ... 1-fps frames (``frameNNN`` aligned with ``mfcc.npy[NNN]``)
- ``jpg`` the normalised main image, ``json`` the record (id, title, specs, labels, group, split,
  modalities), ``mfcc.npy`` the MFCC array, ``mp3`` the soundtrack, ``txt`` the caption.

A missing modality is a missing member, never placeholder bytes. Tar headers are fixed (mtime 0,
uid/gid 0, empty user/group names, mode 0444, GNU format), so the same store and version give
byte-identical shards.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from pathlib import Path

from .faces import blurred
from .media import drop_outside_blobs, frame_field, frame_files, read_blob
from .samples import Sample
from .tar_blocks import TarReader, tar_header, tar_into

MEDIA_KINDS = ("image_norm", "frames", "mfcc", "audio")  # what --shard-bytes counts
INDEX_SUFFIX = ".index.json"


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def stats_path(out: Path, shard) -> Path:
    return out / f"{shard.split}-{shard.index:06d}.stats.json"


def index_path(out: Path, split: str) -> Path:
    return out / f"{split}{INDEX_SUFFIX}"


def sample_members(store_root: Path, sample: Sample, split: str, options: dict, failures: Counter) -> list[tuple[str, bytes]]:
    """The ``(field, bytes)`` members of one sample, sorted by field; missing media are left out.

    A blob missing from the store, or whose path leads outside it, is counted in ``failures`` and
    cleared from ``sample``, so the ``json`` record's ``modalities`` (built last) lists what the
    sample really holds.
    """
    fields: dict[str, bytes] = {}
    drop_outside_blobs(store_root, sample, failures)
    if (image := read_blob(store_root, sample, "image", "image", failures)) is not None:
        fields["jpg"] = blurred(sample, "image", image)
    if sample.caption:
        fields["txt"] = sample.caption.encode("utf-8")
    if sample.frames:
        files = frame_files(store_root, sample.frames, failures)
        if not files:
            failures["missing frames folder"] += 1
            sample.frames = None
        for i, path in enumerate(files):
            try:
                fields[frame_field(i, len(files))] = blurred(sample, "frames", path.read_bytes(), i)
            except OSError:
                failures["missing frame file"] += 1
    if (mfcc := read_blob(store_root, sample, "mfcc", "mfcc", failures)) is not None:
        fields["mfcc.npy"] = mfcc
    if not options.get("mp3", True):
        sample.mp3 = None
    elif (mp3 := read_blob(store_root, sample, "mp3", "mp3", failures)) is not None:
        fields["mp3"] = mp3
    fields["json"] = json.dumps(sample.meta(split), ensure_ascii=False, sort_keys=True).encode("utf-8")
    return sorted(fields.items())


def write_shard(store_root: Path, out: Path, shard, samples: list[Sample], options: dict) -> dict:
    """Write one tar shard (temp name, rename), then its stats file (the completion marker).

    Headers are the bytes ``tarfile`` writes (:func:`tar_header`); each sample goes to a background
    thread as one block that is written and hashed there while the next sample is read; the end
    is tarfile's: two zero blocks, padded to a 10,240-byte record.
    """
    out.mkdir(parents=True, exist_ok=True)
    name = shard_name(shard.split, shard.index)
    tmp = out / f".tmp-{name}"
    failures: Counter = Counter()
    field_counts: Counter = Counter()
    field_bytes: Counter = Counter()
    modalities: Counter = Counter()
    with tar_into(tmp) as writer:
        for sample in samples:
            chunks = []
            for field, data in sample_members(store_root, sample, shard.split, options, failures):
                chunks.append(tar_header(f"{sample.key}.{field}", len(data)))
                chunks.append(data)
                if len(data) % tarfile.BLOCKSIZE:
                    chunks.append(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
                group = "frames" if field.startswith("frame") else field
                field_counts[group] += 1
                field_bytes[group] += len(data)
            modalities.update(sample.modalities())
            writer.put(b"".join(chunks))
        size, digest = writer.end_tar()
    os.replace(tmp, out / name)
    from .json_stream import write_json_atomic

    stats = {
        "shard": name, "path": name, "split": shard.split, "index": shard.index, "count": shard.count,
        "nsamples": len(samples), "size": size, "sha256": digest,
        "first_key": samples[0].key if samples else None, "last_key": samples[-1].key if samples else None,
        "fields": dict(sorted(field_counts.items())), "field_bytes": dict(sorted(field_bytes.items())),
        "modalities": dict(sorted(modalities.items())), "failures": dict(sorted(failures.items())),
        "faces_blurred": sum(s.blurred for s in samples), "codes_blurred": sum(s.codes_blurred for s in samples),
        "masked": options.get("masked", {}),  # personal data masked per field (m5data/masking.py)
    }
    write_json_atomic(stats_path(out, shard), stats)
    return stats


def finish(store, out: Path, version: str, members, shards: list[dict], options: dict) -> None:
    """Write one ``wids`` index per split and ``_stats.json`` (all shards, per split totals)."""
    from .json_stream import write_json_atomic

    by_split: dict[str, list[dict]] = {}
    for st in shards:
        by_split.setdefault(st["split"], []).append(st)
    summary = {"version": version, "format": "webdataset", "splits": {}}
    for split, sts in by_split.items():
        index = {
            "__kind__": "wids-shard-index-v1", "wids_version": 1, "name": split,
            "shardlist": [{"url": st["path"], "nsamples": st["nsamples"], "filesize": st["size"], "sha256": st["sha256"]}
                          for st in sts],
        }
        write_json_atomic(index_path(out, split), index)
        modalities: Counter = Counter()
        for st in sts:
            modalities.update(st["modalities"])
        summary["splits"][split] = {
            "shards": len(sts), "nsamples": sum(st["nsamples"] for st in sts), "bytes": sum(st["size"] for st in sts),
            "modalities": dict(sorted(modalities.items())), "index": index_path(out, split).name,
            "shard_stats": [st.get("stats_path") or stats_path(out, _Ref(st["split"], st["index"])).name for st in sts],
        }
    write_json_atomic(out / "_stats.json", summary)


class _Ref:
    def __init__(self, split: str, index: int):
        self.split, self.index = split, index


# ------------------------------------------------------------------------------- kept shards (incremental)

def kept_name(split: str, index: int) -> str:
    """A shard of an incremental version that holds what is left of one previous shard (``incremental.py``)."""
    return f"{split}-kept-{index:06d}.tar"


def carried_name(split: str, kind: str, n: int, position: int, total: int) -> str:
    """The name in a new version's folder of its ``n``-th previous shard of ``kind`` (``inherited``: taken
    over as it is; ``kept``: copied without the samples that left it); its new shards keep their names."""
    return kept_name(split, n) if kind == "kept" else f"{split}-inherited-{n:06d}.tar"


def kept_stats_path(out: Path, name: str) -> Path:
    """The stats file (completion marker) of a carried shard (kept or inherited)."""
    return out / (name[: -len(".tar")] + ".stats.json")


def write_kept(source, out: Path, name: str, split: str, keep: set[str], *, source_name: str,
               source_sha256: str | None = None) -> dict:
    """Copy the members of the samples ``keep`` (their keys) from the tar ``source`` (a binary reader,
    streamed once in large blocks) into ``out/name`` (temp name, rename), then its stats file (the
    completion marker).

    The members' bytes are copied as they are (their headers are the writer's, :func:`tar_header`): no
    store read, no sample assembled. The source must hold every kept key and hash to
    ``source_sha256`` (when given), else :class:`~m5data.export.samples.ExportError` naming it.
    """
    from .json_stream import write_json_atomic
    from .samples import ExportError

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{name}"
    field_counts: Counter = Counter()
    field_bytes: Counter = Counter()
    modalities: Counter = Counter()
    seen: list[str] = []
    reader = TarReader(source)
    with tar_into(tmp) as writer:
        pending: list[bytes] = []
        queued = 0
        try:
            for member, kind, size in reader.members():
                key, _, field = member.partition(".")
                if key not in keep or kind not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    continue
                if not seen or seen[-1] != key:
                    seen.append(key)
                raw = reader.raw()
                pending.append(raw)
                queued += len(raw)
                if queued >= 4 << 20:
                    writer.put(b"".join(pending))
                    pending, queued = [], 0
                group = "frames" if field.startswith("frame") else field
                field_counts[group] += 1
                field_bytes[group] += size
                if field == "json":
                    modalities.update(json.loads(reader.data()).get("modalities") or [])
        except (ValueError, tarfile.TarError) as exc:
            raise ExportError(f"cannot read the previous shard {source_name} ({exc}): export this version with --full") from None
        if pending:
            writer.put(b"".join(pending))
        if set(seen) != keep or len(seen) != len(keep):
            missing = sorted(keep - set(seen))[:3]
            raise ExportError(f"the previous shard {source_name} does not hold the samples its version lists "
                              f"(missing {', '.join(missing) or 'none'}): export this version with --full")
        if source_sha256 and reader.sha.hexdigest() != source_sha256:
            raise ExportError(f"the previous shard {source_name} is not the file its version indexed "
                              "(sha256 differs): export this version with --full")
        size, digest = writer.end_tar()
    os.replace(tmp, out / name)
    stats = {
        "shard": name, "path": name, "split": split, "index": None, "kept_from": source_name,
        "nsamples": len(seen), "size": size, "sha256": digest,
        "first_key": seen[0] if seen else None, "last_key": seen[-1] if seen else None,
        "fields": dict(sorted(field_counts.items())), "field_bytes": dict(sorted(field_bytes.items())),
        "modalities": dict(sorted(modalities.items())), "failures": {},
    }
    write_json_atomic(kept_stats_path(out, name), stats)
    return stats
