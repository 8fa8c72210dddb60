"""M5Product layout, as the authors' toolkit and SCALE code read it (shared/papers/m5product-format.md).

::

    captions.json                 {item_id: {"title": ..., "pv": "prop#:#value#;#prop#:#value"}}
    images/<item_id>.jpg          the normalised main image
    videos/<item_id>.mp4          the original video (its own extension when it is not MP4)
    audios/<item_id>.mp3          the soundtrack
    m5product_id_label.json       {item_id: label} (index into the label list: the unified sub-class)
    m5product_label_list.json     ["class > sub-class", ...]
    train.txt, query.txt, gallery.txt, query_fg.txt, gallery_fg.txt, cls_train.txt, cls_test.txt, subset.txt
    retrieval/coarse/{query,train}.txt, retrieval/fine/{query,train}.txt   SCALE's query / gallery lists
    m5data_items.json             {item_id: {product_id, labels, group_id, provenance, splits}} (what the layout cannot carry)
    _stats.json                   what check-shards verifies: each shard's record and media index, these files

A shard writes its media, ``_shards/<split>-<index>.files.json`` (``{path: [size, sha256]}`` of the
media files of its items), its records (``.part.json``), then its stats (the completion marker).

Item ids are the platforms' own ids (``source_id``) when they are unique over the export and
file-safe, else the safe key of the product id. Split lists hold one item id a line, in product
id order. SCALE's evaluation reads ``train.txt`` as the gallery and ``query.txt`` as the queries:
point it at ``retrieval/coarse`` (gallery-c / query-c) or ``retrieval/fine`` (gallery-fg / query-fg).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from functools import partial
from pathlib import Path

from ..storage.blobs import resolve_blob
from .card import CARD_FILES
from .faces import blurred
from .json_stream import ObjectWriter, atomic_text
from .m5product_format import CAPTIONS, ID_LABEL, ITEMS, LABEL_LIST, RETRIEVAL, STATS, key_item_id, list_file, pv_string
from .media import drop_outside_blobs
from .samples import Sample
from .video_gate import check_videos, forget_verdicts, video_verdicts, withheld_why

MEDIA_KINDS = ("image_norm", "audio", "video")
_FILE_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FINISH_MEMORY = "256MB"  # DuckDB's memory limit for finish's sort of the shards' records (it spills past it)
FINISH_BATCH = 8192  # sorted rows handed to Python at a time


def stats_path(out: Path, shard) -> Path:
    return out / "_shards" / f"{shard.split}-{shard.index:05d}.stats.json"


def prepare(store, members, options: dict) -> dict:
    """Decide the item ids for the whole export: platform ids when unique and file-safe, else safe keys.

    ``members`` is the export's :class:`~m5data.export.members.Members`; the ids are counted in SQL
    and the source ids checked in streamed batches (never a list of every product).
    """
    con = store.connect()
    try:
        ids = f"SELECT DISTINCT product_id FROM ({members.sql()})"
        n_ids, n_sources, n_distinct = con.execute(
            f"SELECT (SELECT count(*) FROM ({ids})), count(*), count(DISTINCT source_id) "
            f"FROM products WHERE product_id IN ({ids})").fetchall()[0]
        # a null source id is not counted as distinct: it makes the ids non-unique, as in Python
        unique = n_sources == n_ids and n_distinct == n_sources
        safe = unique
        if unique:
            reader = con.sql(f"SELECT source_id FROM products WHERE product_id IN ({ids})").to_arrow_reader(65_536)
            for batch in reader:
                if not all(s and _FILE_SAFE.match(s) for s in batch.column(0).to_pylist()):
                    safe = False
                    break
    finally:
        con.close()
    return {**options, "item_ids": "source_id" if safe else "key", **check_videos(store, members, options)}


def item_id(sample: Sample, options: dict) -> str:
    return sample.source_id if options.get("item_ids") == "source_id" else key_item_id(sample.product_id)


def _copy(src: Path, dst: Path, what: str, failures: Counter, edit=None) -> tuple[int, int, str] | None:
    """Copy a blob to ``dst`` atomically (unique temp name: two shards may write the same item), through
    ``edit`` (bytes -> bytes: the faces blurred) when given; (bytes written, size, sha256), or None with the
    reason counted: ``missing <what> blob`` when the blob cannot be read, ``cannot write <what> file:
    <strerror>`` when ``dst`` cannot be written."""
    try:
        data = src.read_bytes()
    except OSError:
        failures[f"missing {what} blob"] += 1
        return None
    if edit is not None:
        data = edit(data)
    digest = hashlib.sha256(data).hexdigest()
    try:
        if dst.is_file() and dst.stat().st_size == len(data):
            return 0, len(data), digest
    except OSError:
        pass
    tmp = dst.with_name(f".tmp-{os.getpid()}-{dst.name}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, dst)
    except OSError as exc:
        failures[f"cannot write {what} file: {exc.strerror or type(exc).__name__}"] += 1
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None
    return len(data), len(data), digest


def write_shard(store_root: Path, out: Path, shard, samples: list[Sample], options: dict) -> dict:
    """Copy each item's media, then write the shard's media index (``_shards/*.files.json``), its
    records (``_shards/*.part.json``) and its stats."""
    from .folder_reader import file_sha256
    from .json_stream import write_json_atomic

    failures: Counter = Counter()
    modalities: Counter = Counter()
    written = 0
    withheld: Counter = Counter()  # videos not copied, by why (export.blur_faces: a face, or not checked)
    verdicts = video_verdicts(options)
    records, files = {}, {}
    for s in samples:
        iid = item_id(s, options)
        drop_outside_blobs(store_root, s, failures)
        media = [("image", "image", f"images/{iid}.jpg")]
        if options.get("video", True) and s.video and (why := withheld_why(s, verdicts)):
            withheld[why] += 1
            s.video = None
        elif options.get("video", True):
            media.append(("video", "video", f"videos/{iid}{_video_ext(s.video)}"))
        if options.get("mp3", True):
            media.append(("mp3", "mp3", f"audios/{iid}.mp3"))
        for what, attr, target in media:
            if not getattr(s, attr):
                continue
            copied = _copy(resolve_blob(store_root, getattr(s, attr)), out / target, what, failures,
                           edit=partial(blurred, s, "image") if attr == "image" else None)
            if copied is None:  # not in the layout: not a modality of the item either
                setattr(s, attr, None)
            else:
                written += copied[0]
                files[target] = list(copied[1:])
        modalities.update(s.modalities())
        records[iid] = {
            "title": s.title or "", "pv": pv_string(s.specs), "product_id": s.product_id,
            "class_id": s.class_id, "class_name": s.class_name, "sub_class_id": s.sub_class_id,
            "sub_class_name": s.sub_class_name, "subsub_class_id": s.subsub_class_id,
            "subsub_class_name": s.subsub_class_name, "group_id": s.group_id, "provenance": s.provenance,
        }
    media = out / "_shards" / f"{shard.split}-{shard.index:05d}.files.json"
    write_json_atomic(media, files)
    part = out / "_shards" / f"{shard.split}-{shard.index:05d}.part.json"
    write_json_atomic(part, records)
    stats = {"shard": part.name, "path": str(part.relative_to(out)), "split": shard.split, "index": shard.index,
             "count": shard.count, "nsamples": len(samples), "size": part.stat().st_size, "sha256": file_sha256(part),
             "media": _file_entry(out, media.relative_to(out).as_posix()),
             "bytes_written": written + part.stat().st_size, "modalities": dict(sorted(modalities.items())),
             "failures": dict(sorted(failures.items())), "item_ids": options.get("item_ids"),
             "faces_blurred": sum(s.blurred for s in samples), "codes_blurred": sum(s.codes_blurred for s in samples),
             "videos_withheld": sum(withheld.values()),
             "videos_withheld_reasons": dict(sorted(withheld.items())),
             "masked": options.get("masked", {})}  # personal data masked per field (m5data/masking.py)
    write_json_atomic(stats_path(out, shard), stats)
    return stats


def _file_entry(out: Path, rel: str) -> dict:
    from .folder_reader import file_sha256

    return {"path": rel, "size": (out / rel).stat().st_size, "sha256": file_sha256(out / rel)}


def _video_ext(rel: str | None) -> str:
    ext = Path(rel or "").suffix.lower()
    return ".mp4" if ext in ("", ".mp4", ".m4v") else ext


def finish(store, out: Path, version: str, members, shards: list[dict], options: dict) -> None:
    """Merge the shards' records into the caption JSON, label files, split lists and ``m5data_items.json``,
    then write ``_stats.json`` (what ``check-shards`` verifies).

    Memory is one shard's records plus the label list, at any export size: each shard's
    ``_shards/*.part.json`` is read once, in plan order, its rows appended to one Parquet file and
    its ids to its split's list (temp files under ``_shards/.finish``); DuckDB sorts the rows by
    item id (spilling past ``FINISH_MEMORY``) and the JSON files are written from that sorted
    stream by :class:`~m5data.export.json_stream.ObjectWriter`. One sort rather than a k-way merge
    of the shards: 6,300 shards at M5Product's size would be 6,300 open files, past the usual
    limit of 1,024. The files are byte for byte what ``json.dumps(..., sort_keys=True, indent=1)``
    of the whole merge writes (an item in several shards keeps its last shard's record; tested).
    """
    from .json_stream import write_json_atomic

    work = out / "_shards" / ".finish"
    shutil.rmtree(work, ignore_errors=True)  # what a killed finish left
    work.mkdir(parents=True)
    try:
        splits = _gather_parts(out, shards, work)
        labels = _write_records(out, work, version, options, splits)
        label_index = {(c, s): n for n, (c, s, _name) in enumerate(labels)}
        write_json_atomic(out / LABEL_LIST, [name for _c, _s, name in labels])
        with atomic_text(out / ID_LABEL) as fh, open(work / "labels.jsonl", encoding="utf-8") as lines:
            id_label = ObjectWriter(fh)
            for line in lines:
                iid, class_id, sub_class_id = json.loads(line)
                id_label.add(iid, label_index[(class_id, sub_class_id)])
            id_label.close()
            fh.write("\n")
        lists = _place_lists(out, work, splits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    card = [name for name in CARD_FILES if (out / name).is_file()]  # the export's card (card.py), checked too
    _write_stats(out, version, shards, [CAPTIONS, ITEMS, ID_LABEL, LABEL_LIST, *lists, *card])
    if path := options.get("video_verdicts"):  # every shard is written: the check's verdicts file goes
        forget_verdicts(path)


def _write_stats(out: Path, version: str, shards: list[dict], layout_files: list[str]) -> None:
    """``_stats.json``: per split its shards' records (with their sample counts) and media indexes,
    and the size and sha256 of the layout's files, for ``check-shards``."""
    from .json_stream import write_json_atomic

    splits: dict[str, dict] = {}
    for st in shards:
        agg = splits.setdefault(st["split"], {"nsamples": 0, "shards": 0, "files": [], "media": []})
        agg["nsamples"] += st.get("nsamples", 0)
        agg["shards"] += 1
        agg["files"].append({k: st.get(k) for k in ("path", "nsamples", "size", "sha256")})
        if st.get("media"):  # a shard an older export wrote has none
            agg["media"].append(st["media"])
    write_json_atomic(out / STATS, {"version": version, "format": "m5product", "splits": splits,
                                    "files": [_file_entry(out, rel) for rel in sorted(set(layout_files))]})


def _gather_parts(out: Path, shards: list[dict], work: Path) -> list[str]:
    """Read each shard's records once, in plan order: its rows go to ``work/records.parquet``
    (item id, split rank, shard number, the record as JSON), its ids (in product id order) to its
    split's list ``work/list-<rank>.txt``. The splits, in the order they first appear."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("iid", pa.string()), ("split", pa.int32()), ("seq", pa.int32()), ("record", pa.string())])
    splits: dict[str, int] = {}
    with pq.ParquetWriter(work / "records.parquet", schema, compression="zstd") as writer:
        for seq, st in enumerate(shards):  # plan order: each split's shards in turn, each shard's products in id order
            part = json.loads((out / st["path"]).read_text(encoding="utf-8"))
            rank = splits.setdefault(st["split"], len(splits))
            with open(work / f"list-{rank}.txt", "a", encoding="utf-8") as fh:
                fh.write("".join(f"{iid}\n" for iid in sorted(part, key=lambda iid: part[iid]["product_id"])))
            if part:  # UTF-8 JSON (half the bytes of escaped CJK text): parts hold no lone surrogate, as the files do
                records = [json.dumps(r, ensure_ascii=False) for r in part.values()]
                writer.write_table(pa.table({"iid": list(part), "split": [rank] * len(part), "seq": [seq] * len(part),
                                             "record": records}, schema=schema))
    return list(splits)


def _final_records(work: Path, splits: list[str]):
    """``(item_id, record, splits)`` per item id in sorted order: the record of the item's last shard
    in plan order (``dict.update`` of the shards in turn), its splits in plan order."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{FINISH_MEMORY}'")
        con.execute(f"SET temp_directory = '{_sql_text(work / 'spill')}'")
        reader = con.sql(f"SELECT iid, split, seq, record FROM read_parquet('{_sql_text(work / 'records.parquet')}') "
                         "ORDER BY iid, split, seq").to_arrow_reader(FINISH_BATCH)
        iid, seq, record, its_splits = None, -1, "", []
        for batch in reader:
            for row_iid, rank, row_seq, row_record in zip(*(col.to_pylist() for col in batch.columns)):
                if row_iid != iid:
                    if iid is not None:
                        yield iid, json.loads(record), its_splits
                    iid, seq, record, its_splits = row_iid, row_seq, row_record, []
                elif row_seq > seq:
                    seq, record = row_seq, row_record
                its_splits.append(splits[rank])
        if iid is not None:
            yield iid, json.loads(record), its_splits
    finally:
        con.close()


def _write_records(out: Path, work: Path, version: str, options: dict, splits: list[str]) -> list[tuple]:
    """Write ``captions.json`` and ``m5data_items.json`` from the sorted stream, each labelled item
    to ``work/labels.jsonl``; the label list ``[(class_id, sub_class_id, name)]`` in label order."""
    labels = set()
    with atomic_text(out / CAPTIONS) as cap_fh, atomic_text(out / ITEMS) as items_fh, \
            open(work / "labels.jsonl", "w", encoding="utf-8") as label_fh:
        captions = ObjectWriter(cap_fh)
        top = ObjectWriter(items_fh)
        top.add("item_ids", options.get("item_ids"))
        items = top.open("items")
        for iid, r, its_splits in _final_records(work, splits):
            captions.add(iid, {"title": r["title"], "pv": r["pv"]})
            items.add(iid, {k: v for k, v in r.items() if k not in ("title", "pv")} | {"splits": its_splits})
            if r["sub_class_id"] is not None:
                labels.add((r["class_id"], r["sub_class_id"], f"{r['class_name']} > {r['sub_class_name']}"))
                label_fh.write(json.dumps([iid, r["class_id"], r["sub_class_id"]]) + "\n")
        captions.close()
        cap_fh.write("\n")
        items.close()
        top.add("version", version)
        top.close()
        items_fh.write("\n")
    return sorted(labels, key=lambda t: (t[1], t[0]))


def _place_lists(out: Path, work: Path, splits: list[str]) -> list[str]:
    """Move each split's list into place, and copy SCALE's retrieval pairs from them; the files written."""
    rank = {split: n for n, split in enumerate(splits)}
    placed = []
    for name, (query, gallery) in RETRIEVAL.items():
        if query in rank and gallery in rank:
            for split, target in ((query, "query.txt"), (gallery, "train.txt")):
                path = out / "retrieval" / name / target
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(work / f"list-{rank[split]}.txt", path.with_name(f".tmp-{target}"))
                os.replace(path.with_name(f".tmp-{target}"), path)
                placed.append(path.relative_to(out).as_posix())
    for split, n in rank.items():  # two splits with one list file name (cls-train, cls_train): the later wins
        os.replace(work / f"list-{n}.txt", out / list_file(split))
        placed.append(list_file(split))
    return placed


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")
