"""Labelling tasks from the pools (``m5data annotate tasks``): one task per (query, candidate) pair.

Written as ``tasks.jsonl`` (one ``{"id": ..., "data": {...}}`` per line), ``tasks.json`` (the same
tasks as one JSON list: Label Studio's import format), ``tasks.csv`` (one flat row per task: Label
Studio, CVAT-style spreadsheets, crowd platforms) and ``label_config.xml`` (a Label Studio labelling
interface: both images and captions, choices match / mismatch / uncertain). Image fields are the
normalised images' paths (absolute; ``s3://`` URLs on object storage; or ``image_prefix`` + the path
relative to the store root, e.g. a URL the labelling tool can fetch). An image that shows a face leaves
through the egress gate: a copy with the faces blurred under ``<out>/images/`` (its absolute path), or,
with ``image_prefix``, none. A product without an image gets an empty image field and ``query_note`` /
``candidate_note`` says why. Taken-down and opted-out products are in no task; captions are masked. Judgements come back through ``m5data annotate import``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ...egress import gate
from ...storage.main_image import image_preference

FIELDS = ["id", "query_id", "candidate_id", "rank", "score", "query_image", "query_caption", "query_note",
          "candidate_image", "candidate_caption", "candidate_note"]

LABEL_CONFIG = """<View>
  <Header value="Is the candidate the same product as the query?"/>
  <View style="display: flex; gap: 2em">
    <View><Header value="query $query_id"/><Image name="query_img" value="$query_image" maxWidth="360px"/><Text name="query_text" value="$query_caption"/></View>
    <View><Header value="candidate $candidate_id (rank $rank)"/><Image name="cand_img" value="$candidate_image" maxWidth="360px"/><Text name="cand_text" value="$candidate_caption"/></View>
  </View>
  <Choices name="label" toName="query_text" choice="single" required="true">
    <Choice value="match"/><Choice value="mismatch"/><Choice value="uncertain"/>
  </Choices>
</View>
"""


@dataclass
class TasksReport:
    out_dir: Path
    n_tasks: int = 0
    n_queries: int = 0
    no_image: int = 0
    empty_caption: int = 0


def export_tasks(store, out_dir: str | Path, *, top: int = 0, queries: int = 0, image_prefix: str | None = None,
                 uncertain: int = 0, settings=None) -> TasksReport:
    """Write the labelling tasks of the ``pools`` table into ``out_dir``.

    Args:
        top: candidates per query (0 = the whole pool).
        queries: first this many queries by query_id (0 = all).
        image_prefix: prefix for image paths relative to the store root (default: absolute paths, or the
            objects' URLs on object storage).
        uncertain: only the this many pairs (of those chosen by ``top`` / ``queries``, not yet in
            ``matches``) that active learning asks next: the newest matcher's least sure pair of each of
            ``uncertain`` k-means clusters of their features, least sure first; from ``uncertain.SWITCH``
            crowd labels on, the largest spread of a committee of trees x density (needs ``settings``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = TasksReport(out)
    mask = gate.Gate.of(store, settings).mask  # the egress gate's masking policy, every way out's (not crowd's to set)
    con = store.connect()
    try:
        where = f"WHERE rank <= {int(top)}" if top else ""
        qsel = (f"JOIN (SELECT DISTINCT query_id FROM pools ORDER BY query_id LIMIT {int(queries)}) qs USING (query_id)"
                if queries else "")
        pairs = con.sql(f"SELECT query_id, candidate_id, rank, score FROM pools {qsel} {where} "
                        "ORDER BY query_id, rank").fetchall()
        info = {r[0]: (r[1], r[2]) for r in con.sql(f"""
            WITH img AS (
                SELECT s.product_id, d.blob,
                       row_number() OVER (PARTITION BY s.product_id ORDER BY {image_preference('s')}) AS rn
                FROM media s JOIN media d ON d.source_media_id = s.media_id
                WHERE s.kind = 'image' AND d.kind = 'image_norm' AND d.status = 'ok')
            SELECT p.product_id, img.blob, coalesce(c.text, '')
            FROM products p LEFT JOIN captions c USING (product_id)
            LEFT JOIN img ON img.product_id = p.product_id AND img.rn = 1""").fetchall()}
    finally:
        con.close()
    gone = gate.withheld_ids(store)  # the egress gate: no task shows a taken-down or opted-out product
    pairs = [p for p in pairs if p[0] not in gone and p[1] not in gone]
    if uncertain:
        from .uncertain import least_sure

        pairs, _ = least_sure(store, settings, pairs, uncertain)

    shown = {p for pair in pairs for p in pair[:2]}
    blurred = _blurred(store, out, {info[p][0] for p in shown if p in info and info[p][0]}, image_prefix)

    def side(pid: str) -> tuple[str, str, str]:
        blob, text = info.get(pid, (None, ""))
        notes = []
        if blob and blob in blurred and blurred[blob] is None:
            notes.append("image shows a face: left out (the egress gate; tasks with --image-prefix)")
            blob = None
        elif not blob:
            notes.append("no image")
            report.no_image += 1
        if not text:
            notes.append("empty caption")
            report.empty_caption += 1
        path = ("" if not blob else blurred[blob] if blob in blurred
                else image_prefix + blob if image_prefix is not None else str(store.where(blob)))
        return path, gate.text(text, mask), "; ".join(notes)  # the caption as the egress gate lets it leave

    tasks = []
    for q, c, rank, score in pairs:
        qi, qt, qn = side(q)
        ci, ct, cn = side(c)
        tasks.append({"id": f"{q}|{c}", "query_id": q, "candidate_id": c, "rank": rank, "score": round(score, 6),
                      "query_image": qi, "query_caption": qt, "query_note": qn,
                      "candidate_image": ci, "candidate_caption": ct, "candidate_note": cn})
    report.n_tasks = len(tasks)
    report.n_queries = len({t["query_id"] for t in tasks})
    _write_atomic(out / "tasks.jsonl", "".join(json.dumps({"id": t["id"], "data": t}, ensure_ascii=False) + "\n"
                                               for t in tasks))
    _write_atomic(out / "tasks.json", json.dumps([{"data": t} for t in tasks], ensure_ascii=False, indent=1) + "\n")
    tmp = out / ".tasks.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(tasks)
    tmp.replace(out / "tasks.csv")
    _write_atomic(out / "label_config.xml", LABEL_CONFIG)
    return report


def _blurred(store, out: Path, blobs: set[str], image_prefix: str | None) -> dict[str, str | None]:
    """The images of ``blobs`` that show a face or a QR code (by their ``faces`` and ``image_codes`` rows; looked
    for now where a picture has none), as the egress gate lets them leave: a copy with them blurred under ``out/images/`` (its
    absolute path), or, for tasks whose images a tool fetches by ``image_prefix`` from the store, None (left
    out). The others are not in the result (their store path is used)."""
    import hashlib

    from ...storage.blobs import BlobPathError, resolve_blob

    rows, codes = gate.face_rows(store, blobs), gate.code_rows(store, blobs)
    # a picture may show a face or a QR code unless its rows say none (image_codes: n_codes 0, or only barcodes)
    maybe = sorted(b for b in blobs if b not in rows or rows[b].get("n_faces") or b not in codes
                   or codes[b].get("n_codes") is None or "qr" in (codes[b].get("code_kind") or []))
    if not maybe:
        return {}
    out_blurred: dict[str, str | None] = {}
    with store.local_files(maybe) as root:
        for blob in maybe:
            try:
                data = resolve_blob(root, blob).read_bytes()
            except (BlobPathError, OSError):
                continue  # a missing picture: its path as any other (the tool finds nothing there)
            picture, n = gate.picture(data, rows.get(blob), codes=codes.get(blob), still=True)
            if not n:
                continue
            if image_prefix is not None:
                out_blurred[blob] = None
                continue
            target = out / "images" / (hashlib.sha1(blob.encode()).hexdigest()[:20] + ".jpg")
            target.parent.mkdir(exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(picture)
            tmp.replace(target)
            out_blurred[blob] = str(target.resolve())
    return out_blurred


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
