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
    m5data_items.json             {item_id: {product_id, labels, group_id, splits}} (what the layout cannot carry)

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
from collections import Counter
from pathlib import Path

from ..storage.blobs import resolve_blob
from .samples import Sample, drop_outside_blobs, safe_key

MEDIA_KINDS = ("image_norm", "audio", "video")
CAPTIONS = "captions.json"
ID_LABEL = "m5product_id_label.json"
LABEL_LIST = "m5product_label_list.json"
ITEMS = "m5data_items.json"
PV_PAIR, PV_KV = "#;#", "#:#"
# split -> list file; the retrieval pairs SCALE reads as (query.txt, train.txt = gallery)
LIST_FILES = {"train": "train.txt", "query-c": "query.txt", "gallery-c": "gallery.txt", "query-fg": "query_fg.txt",
              "gallery-fg": "gallery_fg.txt", "cls-train": "cls_train.txt", "cls-test": "cls_test.txt",
              "subset": "subset.txt"}
RETRIEVAL = {"coarse": ("query-c", "gallery-c"), "fine": ("query-fg", "gallery-fg")}
_FILE_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ITEM_ID_MAX = 120  # characters of an item id (a file name: images/<item_id>.jpg, .tmp-<pid>-<item_id>.mp4)


def list_file(split: str) -> str:
    return LIST_FILES.get(split, split.replace("-", "_") + ".txt")


def stats_path(out: Path, shard) -> Path:
    return out / "_shards" / f"{shard.split}-{shard.index:05d}.stats.json"


def pv_string(specs: list[tuple[str, str]]) -> str:
    """The authors' table string; separators inside a property or value are cut to one '#'."""
    def clean(text: str) -> str:
        return text.replace(PV_PAIR, "#;").replace(PV_KV, "#:")

    return PV_PAIR.join(f"{clean(p)}{PV_KV}{clean(v)}" for p, v in specs)


def parse_pv(pv: str | None) -> list[tuple[str, str]]:
    """``prop#:#value#;#...`` -> [(prop, value)]; a string of length <= 1 means no table (the toolkit's rule)."""
    if not pv or len(pv) <= 1:
        return []
    out = []
    for pair in pv.split(PV_PAIR):
        if not pair:
            continue
        prop, sep, value = pair.partition(PV_KV)
        out.append((prop, value) if sep else ("", prop))
    return out


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
    return {**options, "item_ids": "source_id" if safe else "key"}


def item_id(sample: Sample, options: dict) -> str:
    return sample.source_id if options.get("item_ids") == "source_id" else key_item_id(sample.product_id)


def key_item_id(product_id: str) -> str:
    """The item id of a product in ``key`` mode: its safe key, or for a key over ``ITEM_ID_MAX``
    characters the key cut to 100 + ``~~`` + 16 hex digits of the product id's sha256.

    Item ids are file names (``images/<item_id>.jpg``): a 300-character id would make the file
    system refuse the file (ENAMETOOLONG). ``~~`` never occurs in a safe key (``~`` is always
    followed by two hex digits), so a cut id cannot equal another product's full key;
    ``m5data_items.json`` maps every item id back to its product id (the importer reads it there).
    """
    key = safe_key(product_id)
    if len(key) <= ITEM_ID_MAX:
        return key
    return f"{key[:100]}~~{hashlib.sha256(product_id.encode('utf-8')).hexdigest()[:16]}"


def _copy(src: Path, dst: Path, what: str, failures: Counter) -> int | None:
    """Copy a blob to ``dst`` atomically (unique temp name: two shards may write the same item);
    the bytes written, or None with the reason counted: ``missing <what> blob`` when the blob
    cannot be read, ``cannot write <what> file: <strerror>`` when ``dst`` cannot be written."""
    try:
        size = src.stat().st_size
        if dst.is_file() and dst.stat().st_size == size:
            return 0
        data = src.read_bytes()
    except OSError:
        failures[f"missing {what} blob"] += 1
        return None
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
    return len(data)


def write_shard(store_root: Path, out: Path, shard, samples: list[Sample], options: dict) -> dict:
    """Copy each item's media, then write the shard's records (``_shards/*.part.json``) and its stats."""
    from .run import write_json_atomic
    from .check import file_sha256

    failures: Counter = Counter()
    modalities: Counter = Counter()
    written = 0
    records = {}
    for s in samples:
        iid = item_id(s, options)
        drop_outside_blobs(store_root, s, failures)
        media = [("image", "image", f"images/{iid}.jpg")]
        if options.get("video", True):
            media.append(("video", "video", f"videos/{iid}{_video_ext(s.video)}"))
        if options.get("mp3", True):
            media.append(("mp3", "mp3", f"audios/{iid}.mp3"))
        for what, attr, target in media:
            if not getattr(s, attr):
                continue
            n = _copy(resolve_blob(store_root, getattr(s, attr)), out / target, what, failures)
            if n is None:  # not in the layout: not a modality of the item either
                setattr(s, attr, None)
            else:
                written += n
        modalities.update(s.modalities())
        records[iid] = {
            "title": s.title or "", "pv": pv_string(s.specs), "product_id": s.product_id,
            "class_id": s.class_id, "class_name": s.class_name, "sub_class_id": s.sub_class_id,
            "sub_class_name": s.sub_class_name, "subsub_class_id": s.subsub_class_id,
            "subsub_class_name": s.subsub_class_name, "group_id": s.group_id,
        }
    part = out / "_shards" / f"{shard.split}-{shard.index:05d}.part.json"
    write_json_atomic(part, records)
    stats = {"shard": part.name, "path": str(part.relative_to(out)), "split": shard.split, "index": shard.index,
             "count": shard.count, "nsamples": len(samples), "size": part.stat().st_size, "sha256": file_sha256(part),
             "bytes_written": written + part.stat().st_size, "modalities": dict(sorted(modalities.items())),
             "failures": dict(sorted(failures.items())), "item_ids": options.get("item_ids")}
    write_json_atomic(stats_path(out, shard), stats)
    return stats


def _video_ext(rel: str | None) -> str:
    ext = Path(rel or "").suffix.lower()
    return ".mp4" if ext in ("", ".mp4", ".m4v") else ext


def finish(store, out: Path, version: str, members, shards: list[dict], options: dict) -> None:
    """Merge the shards' records into the caption JSON, label files, split lists and ``m5data_items.json``."""
    from .run import write_json_atomic

    records: dict[str, dict] = {}
    split_ids: dict[str, list[str]] = {}
    for st in shards:  # in plan order: each split's shards in turn, each shard's products in id order
        part = json.loads((out / st["path"]).read_text(encoding="utf-8"))
        records.update(part)
        ids = split_ids.setdefault(st["split"], [])
        ids += sorted(part, key=lambda iid: part[iid]["product_id"])
    order = sorted(records)
    write_json_atomic(out / CAPTIONS, {i: {"title": records[i]["title"], "pv": records[i]["pv"]} for i in order})
    labels = sorted({(r["class_id"], r["sub_class_id"], f"{r['class_name']} > {r['sub_class_name']}")
                     for r in records.values() if r["sub_class_id"] is not None}, key=lambda t: (t[1], t[0]))
    label_index = {(c, s): n for n, (c, s, _name) in enumerate(labels)}
    write_json_atomic(out / LABEL_LIST, [name for _c, _s, name in labels])
    write_json_atomic(out / ID_LABEL, {i: label_index[(records[i]["class_id"], records[i]["sub_class_id"])]
                                       for i in order if records[i]["sub_class_id"] is not None})
    splits_of: dict[str, list[str]] = {}
    for split, ids in split_ids.items():
        for iid in ids:
            splits_of.setdefault(iid, []).append(split)
        _write_lines(out / list_file(split), ids)
    for name, (query, gallery) in RETRIEVAL.items():
        if query in split_ids and gallery in split_ids:
            _write_lines(out / "retrieval" / name / "query.txt", split_ids[query])
            _write_lines(out / "retrieval" / name / "train.txt", split_ids[gallery])
    items = {i: {k: v for k, v in records[i].items() if k not in ("title", "pv")} | {"splits": splits_of.get(i, [])}
             for i in order}
    write_json_atomic(out / ITEMS, {"version": version, "item_ids": options.get("item_ids"), "items": items})


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)
