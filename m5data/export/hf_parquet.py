"""Hugging Face Parquet layout: ``data/<split>-00000-of-0000N.parquet`` and a ``README.md`` dataset card.

Split names use underscores (``query-c`` -> ``query_c``: ``datasets`` refuses hyphens). Columns:
ids, texts, the spec table as ``list<struct<property, value>>``, unified labels, the duplicate
group, the main image as an ``Image`` feature (``struct<bytes: binary, path: string>`` plus the
``huggingface`` schema metadata), the 1-fps frames as a list of images, the MFCC array as nested
``float32`` lists of shape ``(frames, n_mfcc, steps)``, the mp3 bytes, the modalities present and the
provenance columns (``page_url``, ``crawled_at``, ``license``, ``acquire_license_page``, ``copyright_notice``).
A missing modality is a null, never placeholder bytes. The card's YAML ``configs`` names every
split (the automatic loader only knows train/validation/test) and ``dataset_info`` describes the
features and split sizes, so ``datasets.load_dataset(DIR)`` reads every split offline. The files sit
where the hub puts them, ``data/<split>-NNNNN-of-NNNNN``, so that ``load_dataset("parquet", data_dir=DIR)``,
which reads no card and takes split names only from files named so below its folder (else it folds
every name holding "train" or "test" into those two, and reads the ``_shards/`` JSON too), gives the
card's splits as well (an export written in the older ``data/data/`` layout is not resumed into).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa

from .faces import blurred
from .media import drop_outside_blobs, frame_files, read_blob
from .samples import PROVENANCE, Sample, hf_split_name

MEDIA_KINDS = ("image_norm", "frames", "mfcc", "audio")
DATA_DIR = "data"  # the Parquet files' folder: the hub's (module docstring)
# in the plan: a folder of an older layout (``data/data/``, or none named) is another export, not resumed
LAYOUT = "data/<split>-NNNNN-of-NNNNN"
ROW_GROUP_ROWS = 64  # rows per Parquet row group: a few MB of images each, so readers can stream

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema([
    ("product_id", pa.string()), ("key", pa.string()), ("platform", pa.string()), ("source_id", pa.string()),
    ("title", pa.string()), ("caption", pa.string()),
    ("specs", pa.list_(pa.struct([("property", pa.string()), ("value", pa.string())]))),
    ("class_id", pa.int32()), ("class_name", pa.string()), ("sub_class_id", pa.int32()), ("sub_class_name", pa.string()),
    ("subsub_class_id", pa.int32()), ("subsub_class_name", pa.string()), ("group_id", pa.string()),
    ("split", pa.string()), ("modalities", pa.list_(pa.string())),
    ("image", _IMAGE), ("frames", pa.list_(_IMAGE)), ("mfcc", pa.list_(pa.list_(pa.list_(pa.float32())))),
    ("mp3", pa.binary()),
    *((key, pa.string()) for key in PROVENANCE),  # where it came from, its owner's licence (docs/compliance.md)
])

# datasets' own JSON for these features (what ``Features(...).arrow_schema.metadata`` holds)
_STR, _I32 = {"dtype": "string", "_type": "Value"}, {"dtype": "int32", "_type": "Value"}
HF_FEATURES = {
    "product_id": _STR, "key": _STR, "platform": _STR, "source_id": _STR, "title": _STR, "caption": _STR,
    "specs": {"feature": {"property": _STR, "value": _STR}, "_type": "List"},
    "class_id": _I32, "class_name": _STR, "sub_class_id": _I32, "sub_class_name": _STR,
    "subsub_class_id": _I32, "subsub_class_name": _STR, "group_id": _STR, "split": _STR,
    "modalities": {"feature": _STR, "_type": "List"},
    "image": {"_type": "Image"}, "frames": {"feature": {"_type": "Image"}, "_type": "List"},
    "mfcc": {"feature": {"feature": {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "List"},
                         "_type": "List"}, "_type": "List"},
    "mp3": {"dtype": "binary", "_type": "Value"},
    **{key: _STR for key in PROVENANCE},
}
# the same features in the dataset card's YAML form
_CARD_FEATURES = (
    [{"name": n, "dtype": "string"} for n in ("product_id", "key", "platform", "source_id", "title", "caption")]
    + [{"name": "specs", "list": [{"name": "property", "dtype": "string"}, {"name": "value", "dtype": "string"}]}]
    + [{"name": n, "dtype": t} for n, t in (("class_id", "int32"), ("class_name", "string"), ("sub_class_id", "int32"),
                                            ("sub_class_name", "string"), ("subsub_class_id", "int32"),
                                            ("subsub_class_name", "string"), ("group_id", "string"), ("split", "string"))]
    + [{"name": "modalities", "list": "string"}, {"name": "image", "dtype": "image"}, {"name": "frames", "list": "image"},
       {"name": "mfcc", "list": {"list": {"list": "float32"}}}, {"name": "mp3", "dtype": "binary"}]
    + [{"name": key, "dtype": "string"} for key in PROVENANCE]
)


def schema() -> pa.Schema:
    return SCHEMA.with_metadata({"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})


def shard_path(split: str, index: int, count: int) -> str:
    return f"{DATA_DIR}/{hf_split_name(split)}-{index:05d}-of-{count:05d}.parquet"


def stats_path(out: Path, shard) -> Path:
    # not under data/: the card's `data/<split>-*` patterns must match Parquet files only
    return out / "_shards" / f"{hf_split_name(shard.split)}-{shard.index:05d}.stats.json"


def _mfcc_list(data: bytes | None, failures: Counter):
    if data is None:
        return None
    import numpy as np

    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:
        failures["unreadable mfcc array"] += 1
        return None
    if arr.ndim != 3:
        failures["mfcc array not 3-d"] += 1
        return None
    return arr.astype("float32", copy=False)


def _nested(arrays: list) -> pa.Array:
    """A ``list<list<list<float32>>>`` array from 3-d numpy arrays (or None) without Python float lists."""
    import numpy as np

    outer, middle, inner, values, valid = [0], [0], [0], [], []
    for arr in arrays:
        valid.append(arr is not None)
        if arr is not None:
            a, b, c = arr.shape
            m0, i0 = middle[-1], inner[-1]
            middle.extend(m0 + b * (i + 1) for i in range(a))
            inner.extend(i0 + c * (i + 1) for i in range(a * b))
            values.append(arr.reshape(-1))
        outer.append(outer[-1] + (arr.shape[0] if arr is not None else 0))
    flat = pa.array(np.concatenate(values) if values else np.zeros(0, "float32"), pa.float32())
    level3 = pa.ListArray.from_arrays(pa.array(inner, pa.int32()), flat)
    level2 = pa.ListArray.from_arrays(pa.array(middle, pa.int32()), level3)
    mask = pa.array([not v for v in valid])
    return pa.ListArray.from_arrays(pa.array(outer, pa.int32()), level2, mask=mask)


def sample_row(store_root: Path, sample: Sample, split: str, options: dict, failures: Counter) -> dict:
    """One product's row (the mfcc column as a numpy array, turned into lists by :func:`_nested`)."""
    drop_outside_blobs(store_root, sample, failures)
    image = read_blob(store_root, sample, "image", "image", failures)
    if image is not None:
        image = blurred(sample, "image", image)
    frames = None
    if sample.frames:
        frames = []
        for i, p in enumerate(frame_files(store_root, sample.frames, failures)):
            try:
                frames.append({"bytes": blurred(sample, "frames", p.read_bytes(), i), "path": f"{sample.key}/{p.name}"})
            except OSError:
                failures["missing frame file"] += 1
        if not frames:
            failures["missing frames folder"] += 1
            frames = sample.frames = None
    if not options.get("mp3", True):
        sample.mp3 = None
    mp3 = read_blob(store_root, sample, "mp3", "mp3", failures)
    mfcc = _mfcc_list(read_blob(store_root, sample, "mfcc", "mfcc", failures), failures)
    if mfcc is None:
        sample.mfcc = None
    return {
        "product_id": sample.product_id, "key": sample.key, "platform": sample.platform, "source_id": sample.source_id,
        "title": sample.title, "caption": sample.caption,
        "specs": [{"property": p, "value": v} for p, v in sample.specs],
        "class_id": sample.class_id, "class_name": sample.class_name, "sub_class_id": sample.sub_class_id,
        "sub_class_name": sample.sub_class_name, "subsub_class_id": sample.subsub_class_id,
        "subsub_class_name": sample.subsub_class_name, "group_id": sample.group_id, "split": split,
        "modalities": sample.modalities(),
        "image": {"bytes": image, "path": f"{sample.key}.jpg"} if image is not None else None,
        "frames": frames, "mfcc": mfcc,
        "mp3": mp3, **{key: sample.provenance.get(key) for key in PROVENANCE},
    }


def write_shard(store_root: Path, out: Path, shard, samples: list[Sample], options: dict) -> dict:
    """Write one Parquet file (temp name, rename), then its stats file (the completion marker)."""
    import pyarrow.parquet as pq

    from .json_stream import write_json_atomic

    rel = shard_path(shard.split, shard.index, shard.count)
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}")
    failures: Counter = Counter()
    modalities: Counter = Counter()
    sch = schema()
    with pq.ParquetWriter(tmp, sch, compression="zstd") as writer:
        for start in range(0, len(samples), ROW_GROUP_ROWS):
            rows = [sample_row(store_root, s, shard.split, options, failures) for s in samples[start:start + ROW_GROUP_ROWS]]
            for s in samples[start:start + ROW_GROUP_ROWS]:
                modalities.update(s.modalities())
            mfcc = _nested([r.pop("mfcc") for r in rows])
            cols = {f.name: (mfcc if f.name == "mfcc" else pa.array([r[f.name] for r in rows], f.type)) for f in sch}
            writer.write_table(pa.table(cols, schema=sch))
        if not samples:
            writer.write_table(sch.empty_table())
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    from .folder_reader import file_sha256

    size = target.stat().st_size
    stats = {"shard": target.name, "path": rel, "split": shard.split, "index": shard.index, "count": shard.count,
             "nsamples": len(samples), "size": size, "sha256": file_sha256(target),
             "first_key": samples[0].key if samples else None, "last_key": samples[-1].key if samples else None,
             "modalities": dict(sorted(modalities.items())), "failures": dict(sorted(failures.items())),
             "faces_blurred": sum(s.blurred for s in samples), "codes_blurred": sum(s.codes_blurred for s in samples),
             "masked": options.get("masked", {})}  # personal data masked per field (m5data/masking.py)
    write_json_atomic(stats_path(out, shard), stats)
    return stats


def card_parts(shards: list[dict]) -> tuple[dict, str]:
    """The dataset card's (``card.py``) own part for this layout: YAML ``configs`` naming every split and
    ``dataset_info``, and the usage text (the split names the Hub gives, how to load them)."""
    splits = _split_totals(shards)
    meta = {
        "configs": [{"config_name": "default", "data_files": [
            {"split": hf_split_name(s), "path": f"{DATA_DIR}/{hf_split_name(s)}-*"} for s in splits]}],
        "dataset_info": {"features": _CARD_FEATURES, "splits": [
            {"name": hf_split_name(s), "num_bytes": v["bytes"], "num_examples": v["nsamples"]} for s, v in splits.items()]},
    }
    lines = [f"| {hf_split_name(s)} | {s} | {v['nsamples']:,} | {v['shards']} |" for s, v in splits.items()]
    return meta, ("One row per product; missing modalities are nulls.\n\n"
                  "| split | m5data split | products | files |\n|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
                  "```python\nfrom datasets import load_dataset\nds = load_dataset(\"path/to/this/folder\")\n"
                  "# the same splits: load_dataset(\"parquet\", data_dir=\"path/to/this/folder\")\n```\n")


def _split_totals(shards: list[dict]) -> dict[str, dict]:
    splits: dict[str, dict] = {}
    for st in shards:
        agg = splits.setdefault(st["split"], {"nsamples": 0, "bytes": 0, "shards": 0, "files": [], "modalities": Counter()})
        agg["nsamples"] += st["nsamples"]
        agg["bytes"] += st["size"]
        agg["shards"] += 1
        agg["files"].append({"path": st["path"], "nsamples": st["nsamples"], "size": st["size"], "sha256": st["sha256"]})
        agg["modalities"].update(st["modalities"])
    return splits


def finish(store, out: Path, version: str, members, shards: list[dict], options: dict) -> None:
    """Write ``_stats.json`` (the dataset card is the export's: ``card.py``, with :func:`card_parts`)."""
    from .json_stream import write_json_atomic

    splits = _split_totals(shards)
    for agg in splits.values():
        agg["modalities"] = dict(sorted(agg["modalities"].items()))
    write_json_atomic(out / "_stats.json", {"version": version, "format": "parquet", "splits": splits})


# ------------------------------------------------------------------------------- carried files (incremental)

NAMES_BY_POSITION = True  # a file's name holds its position and its split's count: new files follow the carried


def carried_name(split: str, kind: str, n: int, position: int, total: int) -> str:
    """The name in a new version's folder of a previous file it takes over or copies without the samples
    that left it: the Hub's ``data/<split>-NNNNN-of-NNNNN.parquet`` at its ``position`` of ``total``."""
    return shard_path(split, position, total)


def kept_stats_path(out: Path, name: str) -> Path:
    """The stats file (completion marker) of a carried file (not under data/: see :func:`stats_path`)."""
    return out / "_shards" / (name.rsplit("/", 1)[-1][: -len(".parquet")] + ".stats.json")


def write_kept(source, out: Path, name: str, split: str, keep: set[str], *, source_name: str,
               source_sha256: str | None = None) -> dict:
    """Copy the rows of the samples ``keep`` (their keys) of the Parquet file ``source`` (a seekable binary
    reader) into ``out/name`` (temp name, rename), then its stats file (the completion marker): the rows
    as they are, one row group per row group of the source, no store read. The source must hash to
    ``source_sha256`` (when given) and hold every kept key, else :class:`~m5data.export.samples.ExportError`."""
    import hashlib

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .folder_reader import file_sha256
    from .json_stream import write_json_atomic
    from .samples import ExportError

    again = "export this version with --full"
    if source_sha256:
        sha = hashlib.sha256()
        while block := source.read(4 << 20):
            sha.update(block)
        if sha.hexdigest() != source_sha256:
            raise ExportError(f"the previous file {source_name} is not the file its version indexed (sha256 "
                              f"differs): {again}")
        source.seek(0)
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}")
    wanted = pa.array(sorted(keep), pa.string())
    seen: list[str] = []
    modalities: Counter = Counter()
    sch = schema()
    try:
        reader = pq.ParquetFile(source)
        with pq.ParquetWriter(tmp, sch, compression="zstd") as writer:
            for i in range(reader.num_row_groups):
                group = reader.read_row_group(i)
                group = group.filter(pc.is_in(group.column("key"), value_set=wanted))
                if group.num_rows:
                    writer.write_table(group.select(sch.names).cast(sch))
                    seen += group.column("key").to_pylist()
                    modalities.update(m for ms in group.column("modalities").to_pylist() for m in ms or ())
            if not seen:
                writer.write_table(sch.empty_table())
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot read the previous file {source_name} ({exc}): {again}") from None
    if set(seen) != keep or len(seen) != len(keep):
        tmp.unlink(missing_ok=True)
        missing = sorted(keep - set(seen))[:3]
        raise ExportError(f"the previous file {source_name} does not hold the samples its version lists "
                          f"(missing {', '.join(missing) or 'none'}): {again}")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    stats = {"shard": target.name, "path": name, "split": split, "index": None, "kept_from": source_name,
             "nsamples": len(seen), "size": target.stat().st_size, "sha256": file_sha256(target),
             "first_key": seen[0] if seen else None, "last_key": seen[-1] if seen else None,
             "modalities": dict(sorted(modalities.items())), "failures": {}}
    write_json_atomic(kept_stats_path(out, name), stats)
    return stats
