"""The egress canary (issue 76): every path that writes or serves product data, run as a user runs it over
one small store, and every byte it gives grepped for what must not leave.

The store (tests/support/egress_world.py) holds a canary product whose every text field carries personal
data (phones in several forms, e-mails, an ID card number, a street address; in the title, caption,
description, spec names and values, category names, breadcrumb, page URL query, licence strings and the
image's rights) and whose image and video show a face, a product opted out after it was stored and a
taken-down one (each with a marker string of its own). Each path below is run once (a module-wide
collection, shared by the xdist workers through a file lock) and its output is expanded (tar members,
Parquet values, JSON re-read without escapes, HTML entities and percent-encoding undone, NFKC, no
whitespace); three tests per path then say what leaked, where:

- ``test_no_personal_data[path]``: no raw personal-data string of the canary;
- ``test_no_withheld_product[path]``: no marker (nor image bytes) of the opted-out or taken-down product;
- ``test_no_face[path]``: no picture with the canary's face unblurred (the detector re-run on every picture
  given; a face found must differ from the raw photo inside its box) and no video showing it (a frame every
  0.2 s);
- ``test_no_qr_code[path]``: no picture in which either OpenCV QR reader still finds a code (one is pasted
  on a normal product's picture: a QR code is a contact).

Not asserted on, as documented owner records: ``m5data sql`` over ``raw.<table>``, the views ``takedowns``,
``optouts``, ``opted_out``, ``taken_down`` and ``m5data takedown --list``.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
import traceback
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from support import egress_world as world
from support.cli_inprocess import invoke

pytestmark = pytest.mark.xdist_group("egress_canary")


def _sql_tables() -> list[str]:
    """Every table's default view of ``m5data sql`` but the owner's records of withdrawals (not asserted on)."""
    from m5data.storage import TABLES

    return [t for t in TABLES if t not in ("optouts", "takedowns")]


SQL_TABLES = _sql_tables()
PATHS = (["export-webdataset", "export-parquet", "export-m5product", "export-webdataset-old-version",
          "pipeline-export-webdataset", "pipeline-export-parquet", "check-shards", "report", "annotate-ui",
          "annotate-tasks", "stats", "check-splits", "doctor", "api-read",
          "loader-webdataset", "loader-datasets", "loader-train", "croissant-records"]
         + [f"sql-{t}" for t in SQL_TABLES])
# the paths that must carry the canary (masked): a pass there is a real pass
CARRIES = {"export-webdataset", "export-parquet", "export-m5product", "export-webdataset-old-version",
           "pipeline-export-webdataset", "pipeline-export-parquet", "annotate-ui", "annotate-tasks", "api-read",
           "loader-webdataset", "loader-datasets", "loader-train", "croissant-records",
           "sql-products", "sql-specs", "sql-media", "sql-captions", "sql-licenses", "sql-splits", "sql-faces"}

FACE_DIFF = 8.0  # mean grey-level change inside a face box below which the face counts as not blurred
CONTEXT = 24


# ---------------------------------------------------------------------------------------------- scanning
@dataclass
class Findings:
    """What one path gave away: ``personal``, ``withheld`` and ``faces`` lines (``needle in file: context``)."""

    personal: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    faces: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # QR codes a reader still finds in a picture given
    files: int = 0
    seconds: float = 0.0
    canary: bool = False  # whether the canary went through at all (else a pass means little)
    error: str | None = None


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


_UESC = re.compile(r"\\u([0-9a-fA-F]{4})")


def _forms(text: str) -> list[str]:
    """The text as a reader sees it: as written, JSON re-read, HTML entities and percent-encoding undone,
    ``\\uXXXX`` escapes decoded; each NFKC'd, without whitespace."""
    forms = [text, html.unescape(text), unquote(text), _UESC.sub(lambda m: chr(int(m.group(1), 16)), text)]
    try:
        forms.append(json.dumps(json.loads(text), ensure_ascii=False))
    except ValueError:
        pass
    return [_flat(f) for f in forms]


class Scanner:
    """Expands a path's outputs and greps them; the results go into ``found``."""

    def __init__(self, ref, hidden_bytes: dict[str, bytes]):
        self.found = Findings()
        self.ref = ref  # the raw face photo (BGR), resized to each picture compared
        self.hidden_bytes = hidden_bytes
        self.needles = world.needles()

    def text(self, name: str, text: str) -> None:
        seen = set()
        for form in _forms(text):
            self.found.canary = self.found.canary or any(sign in form for sign in world.CANARY_SIGNS)
            for needle, fields in self.needles.items():
                key = ("p", needle)
                if key not in seen and needle in form:
                    seen.add(key)
                    self.found.personal.append(f"{needle!r} (planted in {', '.join(fields)}) in {name}: "
                                               f"...{_context(form, needle)}...")
            for mark, pid in world.MARKERS.items():
                key = ("w", mark)
                if key not in seen and mark in form:
                    seen.add(key)
                    self.found.withheld.append(f"{mark!r} ({pid}) in {name}: ...{_context(form, mark)}...")

    def data(self, name: str, data: bytes) -> None:
        self.found.files += 1
        for what, blob in self.hidden_bytes.items():
            if blob and blob in data:
                self.found.withheld.append(f"{what} in {name}")
        if data[:262].find(b"ustar") == 257:
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    for m in tar.getmembers():
                        if m.isfile():
                            self.data(f"{name}:{m.name}", tar.extractfile(m).read())
                return
            except tarfile.TarError:
                pass
        if data[:4] == b"PAR1" and data[-4:] == b"PAR1":
            self.parquet(name, data)
            return
        if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n" or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            self.image(name, data)
            return
        if _is_video(name, data):
            self.video(name, data)
        self.text(name, data.decode("utf-8", "replace"))

    def parquet(self, name: str, data: bytes) -> None:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        meta = table.schema.metadata or {}
        self.text(f"{name}:schema-metadata", " ".join(v.decode("utf-8", "replace") for v in meta.values()))
        for col in table.column_names:
            self.value(f"{name}:{col}", table.column(col).to_pylist())

    def value(self, name: str, value) -> None:
        """Every string and bytes value inside ``value`` (lists, dicts), grepped or expanded."""
        strings: list[str] = []

        def walk(v, where):
            if isinstance(v, str):
                strings.append(v)
            elif isinstance(v, bytes | bytearray):
                self.data(where, bytes(v))
            elif isinstance(v, dict):
                for k, x in v.items():
                    strings.append(str(k))
                    walk(x, f"{where}.{k}")
            elif isinstance(v, list | tuple):
                for i, x in enumerate(v):
                    walk(x, f"{where}[{i}]")
            elif v is not None and not isinstance(v, int | float | bool):
                if _is_pil(v):
                    buf = io.BytesIO()
                    v.convert("RGB").save(buf, format="PNG")
                    self.image(where, buf.getvalue())
                elif hasattr(v, "tolist") and getattr(v, "dtype", None) is not None and v.dtype.kind in "US":
                    walk(v.tolist(), where)
                elif not hasattr(v, "dtype"):
                    strings.append(str(v))

        walk(value, name)
        if strings:
            self.text(name, "\n".join(strings))

    def image(self, name: str, data: bytes) -> None:
        bgr = _decode(data)
        if bgr is None:
            return
        self.picture(name, bgr)

    def picture(self, name: str, bgr) -> None:
        import cv2
        import numpy as np

        from m5data.faces.detect import THRESHOLD, detect

        value, _, _ = cv2.QRCodeDetector().detectAndDecode(bgr)
        seen, _ = cv2.QRCodeDetectorAruco().detectMulti(bgr)
        if value or seen:
            self.found.codes.append(f"QR code {value or '(found, not decoded)'!r} readable in {name}")
        for face in detect(bgr):
            if face.score < THRESHOLD:
                continue
            h, w = bgr.shape[:2]
            ref = cv2.resize(self.ref, (w, h), interpolation=cv2.INTER_AREA)
            x0, y0 = max(0, int(face.x0)), max(0, int(face.y0))
            x1, y1 = min(w, int(face.x1)), min(h, int(face.y1))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            a = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[y0:y1, x0:x1].astype(np.int16)
            b = cv2.cvtColor(ref, cv2.COLOR_BGR2GRAY)[y0:y1, x0:x1].astype(np.int16)
            diff = float(np.abs(a - b).mean())
            if diff < FACE_DIFF:
                self.found.faces.append(f"unblurred face (score {face.score:.2f}, box {x0},{y0}-{x1},{y1}, "
                                        f"{diff:.1f} grey levels from the raw photo) in {name}")

    def video(self, name: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "v.bin"
            src.write_bytes(data)
            done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-vf", "fps=5", str(Path(tmp) / "f%04d.png")],
                                  capture_output=True)
            frames = sorted(Path(tmp).glob("f*.png"))
            if done.returncode and not frames:
                return
            before = len(self.found.faces)
            for frame in frames:
                self.image(f"{name}@{frame.stem}", frame.read_bytes())
            if len(self.found.faces) > before:
                self.found.faces[before:] = [f"video showing the face: {self.found.faces[before]} "
                                             f"({len(self.found.faces) - before} of {len(frames)} frames)"]

    def folder(self, root: Path, label: str) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.data(f"{label}/{path.relative_to(root)}", path.read_bytes())


def _context(form: str, needle: str) -> str:
    i = form.find(needle)
    return form[max(0, i - CONTEXT): i + len(needle) + CONTEXT]


def _is_video(name: str, data: bytes) -> bool:
    return (name.lower().endswith((".mp4", ".webm", ".mkv", ".mov", ".avi", ".flv"))
            or data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3")


def _is_pil(v) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(v, Image.Image)


def _decode(data: bytes):
    import cv2
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        try:
            from PIL import Image

            bgr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :, ::-1].copy()
        except Exception:
            return None
    return bgr


# ------------------------------------------------------------------------------------------------ paths
def _cli(ctx, *args) -> str:
    res = invoke("--store", str(ctx["store"]), *args)
    out = f"$ m5data {' '.join(args)}\n[exit {res.returncode}]\n{res.stdout}\n{res.stderr}"
    if res.returncode not in (0,):
        ctx["notes"].append(out[-2000:])
    return out


def _export(ctx, sc: Scanner, fmt: str, *extra: str) -> None:
    out = ctx["tmp"] / f"out-{fmt}{'-'.join(extra)}"
    printed = _cli(ctx, "export", "--split", "all", "--format", fmt, "--out", str(out), "--workers", "1", *extra)
    sc.text("stdout of m5data export", printed)
    if not out.is_dir():
        raise AssertionError(f"export wrote no folder:\n{printed[-3000:]}")
    sc.folder(out, out.name)
    ctx["exports"][fmt + "".join(extra)] = out


def path_export_webdataset(ctx, sc):
    _export(ctx, sc, "webdataset")


def path_export_parquet(ctx, sc):
    _export(ctx, sc, "parquet")


def path_export_m5product(ctx, sc):
    _export(ctx, sc, "m5product")


def path_export_webdataset_old_version(ctx, sc):
    """v1 was built before the opt-out and the takedown: an export of it (into a new folder) must leave
    them out all the same (export/members.py, the sample header query)."""
    _export(ctx, sc, "webdataset", "--version", "v1")


def _pipeline_export(ctx, sc, fmt):
    """The pipeline's export stage (``run_stage("export")``, what ``m5data run`` calls) after the opt-out and
    the takedown: the new version ``v2`` into its own folder beside ``v1``'s (exported before them), the
    unchanged shards taken over and the ones that held a withdrawn product copied without it."""
    from m5data.api import run_stage

    stats = run_stage("export", ctx["store"], overrides={"export.format": fmt, "export.workers": 1})
    out = Path(stats.details["out"])
    sc.text(f"details of run_stage('export') {fmt}", json.dumps(stats.details, ensure_ascii=False, default=str))
    if out == ctx["pre_exports"].get(fmt):
        raise AssertionError(f"the pipeline exported into v1's folder again: {out}")
    sc.folder(out, f"exports/{out.name}")


def path_pipeline_export_webdataset(ctx, sc):
    _pipeline_export(ctx, sc, "webdataset")


def path_pipeline_export_parquet(ctx, sc):
    _pipeline_export(ctx, sc, "parquet")


def path_check_splits(ctx, sc):
    sc.text("stdout of m5data check-splits", _cli(ctx, "check-splits"))


def path_doctor(ctx, sc):
    sc.text("stdout of m5data doctor --all", _cli(ctx, "doctor", "--all"))


def path_check_shards(ctx, sc):
    for out in list(ctx["exports"].values()):
        sc.text(f"stdout of m5data check-shards {out.name}", _cli(ctx, "check-shards", str(out)))


def path_report(ctx, sc):
    out = ctx["tmp"] / "report"
    sc.text("stdout of m5data report", _cli(ctx, "report", "--out", str(out)))
    sc.folder(out, "report")


def path_annotate_ui(ctx, sc):
    from support.ui_world import ui_get

    from m5data.annotate.ui.app import RunningUi, Session
    from m5data.annotate.ui.tasks import build_tasks
    from m5data.storage import Store

    store = Store.open(ctx["store"])
    session = Session("w1", build_tasks(store, per_query=10, gold=[]))
    with RunningUi(store, session) as ui:
        urls = ["/", "/api/tasks", "/api/summary"]
        for pid in (world.CANARY, world.OPTED_OUT, world.TAKEN_DOWN, world.NORMAL[0]):
            urls += [f"/api/product/{quote(pid, safe='')}", f"/image/{quote(pid, safe='')}"]
        for url in urls:
            status, body = ui_get(ui.url + url)
            if status == 200:
                sc.data(f"GET {url} [{status}]", body)


def path_annotate_tasks(ctx, sc):
    out = ctx["tmp"] / "tasks"
    sc.text("stdout of m5data annotate tasks", _cli(ctx, "annotate", "tasks", "--out", str(out), "--top", "10"))
    if out.is_dir():
        sc.folder(out, "tasks")
        # the pictures a labelling tool opens: the tasks' image paths (store files, or blurred copies)
        for line in (out / "tasks.jsonl").read_text(encoding="utf-8").splitlines():
            task = json.loads(line)["data"]
            for side in ("query_image", "candidate_image"):
                if task[side] and Path(task[side]).is_file():
                    sc.image(f"tasks {task['id']} {side}", Path(task[side]).read_bytes())


def path_stats(ctx, sc):
    sc.text("stdout of m5data stats", _cli(ctx, "stats"))


def path_api_read(ctx, sc):
    """README "Python API": ``m5data.api.read(table, store)``, the reader through the egress gate (the store's
    own ``open_store().read`` and ``store.connect()`` are its raw record, documented so, as ``raw.<table>``)."""
    from m5data.api import read

    for table in ("products", "specs", "captions", "licenses", "splits", "taxonomy", "label_map", "media", "pools",
                  "faces", "dedup"):
        sc.value(f"api.read({table!r})", read(table, ctx["store"]).to_pylist())


def path_loader_webdataset(ctx, sc):
    """docs/export.md's WebDataset reading snippet, over the export's every split index."""
    import webdataset as wds

    out = ctx["exports"].get("webdataset") or _need_export(ctx, sc, "webdataset")
    for index in sorted(out.glob("*.index.json")):
        shards = [str(out / s["url"]) for s in json.loads(index.read_text())["shardlist"]]
        ds = wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil")
        for sample in wds.WebLoader(ds, batch_size=None, num_workers=0):
            sc.value(f"wds {index.name} {sample['__key__']}", {k: v for k, v in sample.items() if k != "__url__"})


def path_loader_datasets(ctx, sc):
    """docs/export.md: ``datasets.load_dataset(DIR)`` over the Parquet export."""
    from datasets import load_dataset

    out = ctx["exports"].get("parquet") or _need_export(ctx, sc, "parquet")
    ds = load_dataset(str(out), cache_dir=str(ctx["tmp"] / "hf-cache"))
    for split in ds:
        for i, row in enumerate(ds[split]):
            sc.value(f"load_dataset {split}[{i}]", row)


def path_loader_train(ctx, sc):
    """What ``m5data train`` reads with (m5data.train.data.loader): its batches' texts (its pictures are
    64-pixel patch vectors, not looked at for faces)."""
    from m5data.train.config import ModelConfig
    from m5data.train.data import loader

    out = ctx["exports"].get("webdataset") or _need_export(ctx, sc, "webdataset")
    cfg = ModelConfig()
    for index in sorted(out.glob("*.index.json")):
        split = index.name[: -len(".index.json")]
        for batch in loader(out, split, cfg, batch_size=4):
            sc.value(f"train loader {split}", {k: v for k, v in batch.items() if not hasattr(v, "dtype")})


def path_croissant_records(ctx, sc):
    """docs/export.md: ``mlcroissant.Dataset(jsonld=DIR/croissant.json).records(...)`` of each layout."""
    import mlcroissant as mlc

    for fmt, rs in (("webdataset", "samples"), ("parquet", "products"), ("m5product", "images")):
        out = ctx["exports"].get(fmt) or _need_export(ctx, sc, fmt)
        for i, rec in enumerate(mlc.Dataset(jsonld=str(out / "croissant.json")).records(rs)):
            sc.value(f"croissant {fmt} {rs}[{i}]", {k: v for k, v in rec.items()})


def _need_export(ctx, sc, fmt):
    _export(ctx, Scanner(sc.ref, {}), fmt)
    return ctx["exports"][fmt]


def _sql(table):
    def run(ctx, sc):
        sc.text(f"m5data sql 'SELECT * FROM {table}' --format json",
                _cli(ctx, "sql", f"SELECT * FROM {table}", "--format", "json"))
    return run


RUNNERS = {p: globals().get("path_" + p.replace("-", "_")) or _sql(p[4:]) for p in PATHS}


# ---------------------------------------------------------------------------------------------- the run
def _build(root: Path) -> dict:
    """The world, every path run over it, and each path's findings (JSON-ready)."""
    from m5data.storage import Store

    tmp = root / "work"
    tmp.mkdir(parents=True, exist_ok=True)
    store_dir = tmp / "store"
    store = Store.init(store_dir)
    files = world.write_rows(store, tmp)
    world.extract(store)
    ctx = {"store": store_dir, "tmp": tmp, "exports": {}, "notes": [], "pre_exports": {}}
    setup = [_cli(ctx, "build-splits")]
    from m5data.api import run_stage

    for fmt in ("webdataset", "parquet"):  # the pipeline's exports of v1, before the withdrawals
        stats = run_stage("export", store_dir, overrides={"export.format": fmt, "export.workers": 1})
        ctx["pre_exports"][fmt] = Path(stats.details["out"])
        setup.append(f"run_stage('export') {fmt} -> {stats.details['out']}\n[exit 0]")
    world.record_withdrawals(store)
    setup.append(_cli(ctx, "takedown", "--product-id", world.TAKEN_DOWN, "--reason", "owner request"))
    setup.append(_cli(ctx, "build-splits"))
    import cv2

    ref = cv2.imread(str(world.FACE), cv2.IMREAD_COLOR)
    hidden = {}
    for pid in (world.OPTED_OUT, world.TAKEN_DOWN):
        hidden[f"image file of {pid}"] = files[pid][0].read_bytes()
        for row in store.read("media", where=f"product_id = '{pid}' AND status = 'ok'").to_pylist():
            if row["kind"] == "image_norm":
                hidden[f"normalised image of {pid}"] = (store_dir / row["blob"]).read_bytes()
    members = {v: sorted({r["product_id"] for r in store.read("splits", where=f"version = '{v}'").to_pylist()})
               for v in ("v1", "v2")}
    results = {}
    for name in PATHS:
        sc = Scanner(ref, hidden)
        start = time.monotonic()
        try:
            RUNNERS[name](ctx, sc)
        except Exception:
            sc.found.error = traceback.format_exc(limit=6)[-3000:]
        sc.found.seconds = round(time.monotonic() - start, 2)
        results[name] = sc.found.__dict__
    return {"results": results, "setup": setup, "notes": ctx["notes"], "members": members}


@pytest.fixture(scope="module")
def egress(tmp_path_factory):
    """Every path's findings, computed once per session (the xdist workers share them through a lock)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "egress-canary"
    done = root / "findings.json"
    with FileLock(str(base / "egress-canary.lock")):
        if not done.exists():
            root.mkdir(exist_ok=True)
            done.write_text(json.dumps(_build(root), ensure_ascii=False, indent=1), encoding="utf-8")
    return json.loads(done.read_text(encoding="utf-8"))


def _result(egress, path) -> Findings:
    found = Findings(**egress["results"][path])
    if found.error:
        pytest.fail(f"{path}: the path did not run:\n{found.error}")
    return found


def _fail(path, what, lines):
    shown = "\n  ".join(lines[:25])
    more = f"\n  ... and {len(lines) - 25} more" if len(lines) > 25 else ""
    pytest.fail(f"{path}: {what}:\n  {shown}{more}", pytrace=False)


# ------------------------------------------------------------------------------------------------- tests
def test_the_canary_strings_are_personal_data_to_the_masking_rules():
    """Each planted string is changed by m5data.masking.mask_text: a leak below is the gate's miss, not a
    string the rules would let through."""
    from m5data.masking import mask_text

    for fld, (raw, found) in world.PERSONAL.items():
        masked, n = mask_text(raw)
        assert n >= 1 and masked != raw, (fld, raw, masked)
        for needle in found:
            assert needle not in _flat(masked), (fld, raw, masked)
    assert world.ID_NUMBER[-1] == world.id_card(world.ID_NUMBER[:17])[-1]


def test_the_checks_find_what_they_look_for(tmp_path):
    """The scanner's own positive controls: the raw photo and video show an unblurred face, a raw title
    gives its needles, a withdrawn product's marker is found inside a tar member's JSON with escapes."""
    import cv2

    sc = Scanner(cv2.imread(str(world.FACE), cv2.IMREAD_COLOR), {"bytes": b"HIDDENBYTES"})
    sc.data("raw.png", world.FACE.read_bytes())
    assert len(sc.found.faces) == 1
    sc.data("raw.mp4", world.face_video(tmp_path / "v.mp4").read_bytes())
    assert len(sc.found.faces) == 2 and sc.found.faces[1].startswith("video showing the face")
    sc.data("qr.jpg", world.qr_image(tmp_path / "qr.jpg", 3).read_bytes())
    assert len(sc.found.codes) == 1 and world.QR_VALUE in sc.found.codes[0]
    sc.text("t", world.PERSONAL["title"][0] + world.PERSONAL["spec_value"][0])
    assert {line.split(" ")[0] for line in sc.found.personal} == {"'13800138001'", "'wangwu@163.com'", "'13800138000'"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = json.dumps({"title": world.OPT_MARK, "x": "HIDDENBYTES"}).encode()
        info = tarfile.TarInfo("k.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    sc.data("shard.tar", buf.getvalue())
    assert any(world.OPT_MARK in line for line in sc.found.withheld)
    assert any(line.startswith("bytes in shard.tar") for line in sc.found.withheld)


def test_the_world_was_set_up(egress):
    """The setup verbs succeeded and v2 leaves out the two withdrawn products (else the checks mean little)."""
    for out in egress["setup"]:
        assert "[exit 0]" in out, out[-2000:]
    v1, v2 = set(egress["members"]["v1"]), set(egress["members"]["v2"])
    withdrawn = {world.OPTED_OUT, world.TAKEN_DOWN}
    assert withdrawn | {world.CANARY} <= v1  # v1, built before the withdrawals, holds them: the old-version path
    assert world.CANARY in v2 and not withdrawn & v2


@pytest.mark.parametrize("path", sorted(CARRIES, key=PATHS.index))
def test_the_canary_went_through(egress, path):
    """The canary (masked) is in what the path gives: the other checks of the path looked at it."""
    assert _result(egress, path).canary, f"{path}: the canary product is not in its output"


# ``m5data sql``'s default views are the store owner's query of its own store (docs/compliance.md, "The egress
# gate"): they hide the withheld products (asserted below) and give the text as stored; masking is for what leaves
UNMASKED = {f"sql-{t}" for t in SQL_TABLES}


@pytest.mark.parametrize("path", [p for p in PATHS if p not in UNMASKED])
def test_no_personal_data(egress, path):
    found = _result(egress, path)
    assert found.files or not path.startswith(("export-", "pipeline-", "report", "annotate-")), \
        f"{path} wrote no file to check"
    if found.personal:
        _fail(path, "raw personal data of the canary left the store", found.personal)


@pytest.mark.parametrize("path", PATHS)
def test_no_withheld_product(egress, path):
    found = _result(egress, path)
    if found.withheld:
        _fail(path, "the opted-out or taken-down product left the store", found.withheld)


@pytest.mark.parametrize("path", PATHS)
def test_no_face(egress, path):
    found = _result(egress, path)
    if found.faces:
        _fail(path, "the canary's face left the store unblurred", found.faces)


@pytest.mark.parametrize("path", PATHS)
def test_no_qr_code(egress, path):
    """No picture given with a QR code either OpenCV reader finds (one is pasted on a product's picture)."""
    found = _result(egress, path)
    if found.codes:
        _fail(path, "a QR code (a contact) left the store readable", found.codes)
