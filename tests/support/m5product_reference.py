"""The M5Product merge as it was before issue 21, kept as the reference the streamed ``finish()`` must
equal byte for byte: tests/export/test_export_m5product_finish.py and benchmarks/bench_export_finish.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from m5data.export.json_stream import write_json_atomic


def finish_in_memory(out: Path, version: str, shards: list[dict], options: dict) -> None:
    """The merge as it was before issue 21: every shard's records in one dict, each file one json.dumps."""
    from m5data.export.m5product_format import CAPTIONS, ID_LABEL, ITEMS, LABEL_LIST, RETRIEVAL, list_file

    def write_lines(path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        os.replace(tmp, path)

    records: dict[str, dict] = {}
    split_ids: dict[str, list[str]] = {}
    for st_ in shards:
        part = json.loads((out / st_["path"]).read_text(encoding="utf-8"))
        records.update(part)
        ids = split_ids.setdefault(st_["split"], [])
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
        write_lines(out / list_file(split), ids)
    for name, (query, gallery) in RETRIEVAL.items():
        if query in split_ids and gallery in split_ids:
            write_lines(out / "retrieval" / name / "query.txt", split_ids[query])
            write_lines(out / "retrieval" / name / "train.txt", split_ids[gallery])
    items = {i: {k: v for k, v in records[i].items() if k not in ("title", "pv")} | {"splits": splits_of.get(i, [])}
             for i in order}
    write_json_atomic(out / ITEMS, {"version": version, "item_ids": options.get("item_ids"), "items": items})
