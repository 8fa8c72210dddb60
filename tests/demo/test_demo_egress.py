"""`m5data demo` over a shop that serves every case of issue 76 (m5data/demo/cases.py, optouts.py, contacts.py):
nothing that must stay in lies in any file it exports or in its report.

One demo run for the module. Its outputs are read whole: every file under the store's export folders and
the report folder, ``.tar`` shards member by member, Parquet files column by column, text after NFKC, HTML and
URL unescaping, with spaces and punctuation dropped before a needle is looked for.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import tarfile
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from m5data.cli import app

pytestmark = pytest.mark.xdist_group("demo_egress")  # one worker runs the module's one demo (--dist loadgroup)

PRODUCTS, SEED = 30, 0  # every case has products of its own; more products only cost time
TEXT = {".json", ".jsonl", ".txt", ".html", ".htm", ".md", ".csv", ".svg", ".js", ".css", ".cls", ".toml", ".xml",
        ".yaml", ".yml", ".tsv"}
PICTURES = {".jpg", ".jpeg", ".png", ".webp"}
VIDEOS = {".mp4", ".webm", ".mkv"}


def squash(text: str) -> str:
    """Text as a needle is looked for: unescaped (HTML, URL, JSON ``\\u``), NFKC, case-folded, letters and
    digits only (so ``1380 0138 003``, ``１３８...`` and ``wangwu＠163.com`` read as their plain forms)."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", html.unescape(unquote(text))).casefold()
    return re.sub(r"[\W_]+", "", text)


@dataclass
class Outputs:
    """What the demo wrote: squashed text per place, sha256 per place, pictures and videos per place."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    hashes: list[tuple[str, str]] = field(default_factory=list)
    media: list[tuple[str, str, bytes]] = field(default_factory=list)  # (place, suffix, bytes)

    def add(self, place: str, name: str, data: bytes) -> None:
        suffix = Path(name).suffix.lower()
        self.hashes.append((place, hashlib.sha256(data).hexdigest()))
        self.texts.append((place + " (name)", squash(name)))
        if suffix == ".tar":
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        self.add(f"{place}::{member.name}", member.name, tar.extractfile(member).read())
        elif suffix == ".parquet":
            self.add_table(place, pq.read_table(io.BytesIO(data)))
        elif suffix in TEXT:
            text = data.decode("utf-8", errors="replace")
            if suffix == ".json":
                try:
                    text = json.dumps(json.loads(text), ensure_ascii=False)
                except ValueError:
                    pass
            self.texts.append((place, squash(text)))
        elif suffix in PICTURES | VIDEOS:
            self.media.append((place, suffix, data))
        else:  # .npy, .mp3 ...: only their hash; their bytes may still hold text
            self.texts.append((place + " (bytes)", squash(data.decode("utf-8", errors="ignore"))))

    def add_table(self, place: str, table: pa.Table) -> None:
        ids = table.column("product_id").to_pylist() if "product_id" in table.column_names else None
        for name in table.column_names:
            column = table.column(name)
            kind = column.type
            if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
                for i, value in enumerate(column.to_pylist()):
                    if value:
                        row = f"{place}[{name}][{ids[i] if ids else i}]"
                        self.hashes.append((row, hashlib.sha256(value).hexdigest()))
                        self.media.append((row, ".bin", value))
            else:
                values = column.to_pylist()
                self.texts.append((f"{place}[{name}]", squash(json.dumps(values, ensure_ascii=False, default=str))))


@pytest.fixture(scope="module")
def demo(prefect_harness, tmp_path_factory):
    """(out folder, CLI result, cases truth, optouts truth, media truth rows, outputs by root)."""
    out = tmp_path_factory.mktemp("egress") / "demo"
    result = CliRunner().invoke(app, ["demo", "--products", str(PRODUCTS), "--seed", str(SEED), "--out", str(out)])
    truth = out / "shop" / "truth"
    cases = json.loads((truth / "cases.json").read_text(encoding="utf-8"))
    optouts = json.loads((truth / "optouts.json").read_text(encoding="utf-8"))
    media = pq.read_table(truth / "media.parquet").to_pylist()
    outputs = {}
    for root in ("exports", "report"):
        folder = out / "store" / "exports" if root == "exports" else out / "report"
        found = Outputs()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
            found.add(str(path.relative_to(out)), path.name, path.read_bytes())
        outputs[root] = found
    return out, result, cases, optouts, media, outputs


def _leaks(outputs: dict, needles: dict[str, str]) -> list[str]:
    """``"<case>: <needle> in <place>"`` for every needle (squashed) found in any text written."""
    found = []
    for root, got in outputs.items():
        for case, needle in needles.items():
            key = squash(needle)
            found += [f"{case}: {needle!r} in {place}" for place, text in got.texts if key and key in text]
    return found


def test_the_demo_serves_every_case_and_its_flow_meets_them(demo):
    out, result, cases, optouts, _, outputs = demo
    assert result.exit_code == 0, result.output[-3000:]
    assert "refresh" in result.output
    assert len(cases["robots_media"]) == 2
    assert {v["kind"] for v in cases["pages"].values()} == {"robots-meta", "m5data-meta"}
    assert len(cases["later"]) == 1 and set(cases["faces"]) == {"video", "image"}
    fields = {c["field"] for c in cases["contacts"]}
    assert {"title", "description", "spec-property", "copyright", "license", "breadcrumb", "url-query"} <= fields
    assert {c["kind"] for c in cases["contacts"]} >= {"phone", "email", "contact", "id", "address"}
    from m5data.storage import Store

    store = Store.open(out / "store")
    con = store.connect()
    try:
        rows = con.execute("SELECT url, product_id, scope, source FROM optouts").fetchall()
    finally:
        con.close()
    media_sources = {url.split("//", 1)[1].split("/", 1)[1]: source for url, _, scope, source in rows if scope == "media"}
    assert {"/" + k: v for k, v in media_sources.items() if "/" + k in cases["robots_media"]} == \
        {u: "robots.txt" for u in cases["robots_media"]}
    page_sources = {pid: source for _, pid, scope, source in rows if scope == "page"}
    assert {pid: page_sources.get(pid) for pid in cases["pages"]} == {pid: "robots-meta" for pid in cases["pages"]}
    assert set(cases["later"]) <= set(page_sources)  # the refresh crawl saw the later opt-out
    assert outputs["exports"].texts and outputs["report"].texts, "the demo wrote no export or no report"


def test_the_cases_that_stay_stored_are_exported(demo):
    """The checks below mean something only where the case's product is in the export: each stored product
    that carries a case (a contact, a face, a disallowed file) is found there by its source id."""
    _, _, cases, _, media, outputs = demo
    by_url = {m["url"]: m["product_id"] for m in media}
    carriers = {c["product_id"]: f"contact in {c['field']}" for c in cases["contacts"]}
    carriers |= {v["product_id"]: f"face {kind}" for kind, v in cases["faces"].items()}
    carriers |= {by_url[u]: f"robots.txt-disallowed {u}" for u in cases["robots_media"]}
    texts = [text for _, text in outputs["exports"].texts]
    missing = [f"{why}: {pid}" for pid, why in carriers.items()
               if not any(squash(pid.split(":", 1)[1]) in text for text in texts)]
    assert not missing, "not exported, so not checked: " + "; ".join(missing)


def test_no_opted_out_product_leaves(demo):
    _, _, cases, optouts, media, outputs = demo
    opted = {pid: f"page opt-out {v['kind']}" for pid, v in optouts["pages"].items() if v["opted_out"]}
    opted |= {pid: f"page opt-out {v['kind']}" for pid, v in cases["pages"].items()}
    opted |= {pid: "later opt-out (refresh crawl)" for pid in cases["later"]}
    needles = {f"{why} {pid}": pid.split(":", 1)[1] for pid, why in opted.items()}
    needles |= {f"{opted[m['product_id']]} {m['product_id']} {m['kind']}": Path(m["url"]).stem
                for m in media if m["product_id"] in opted}
    leaks = _leaks(outputs, needles)
    shas = {m["sha256"]: f"{opted[m['product_id']]} {m['product_id']} {m['url']}" for m in media
            if m["product_id"] in opted and m["sha256"]}
    leaks += [f"{shas[sha]}: its file in {place}" for got in outputs.values() for place, sha in got.hashes if sha in shas]
    assert not leaks, "\n".join(leaks[:40])


def test_no_robots_disallowed_media_leaves(demo):
    _, _, cases, _, media, outputs = demo
    by_url = {m["url"]: m for m in media}
    disallowed = [by_url[u] for u in cases["robots_media"]]
    leaks = _leaks(outputs, {f"robots.txt-disallowed {m['kind']} {m['url']}": Path(m["url"]).stem for m in disallowed})
    shas = {m["sha256"]: m["url"] for m in disallowed}
    leaks += [f"robots.txt-disallowed {shas[sha]}: its file in {place}"
              for got in outputs.values() for place, sha in got.hashes if sha in shas]
    assert not leaks, "\n".join(leaks[:40])


def test_no_face_leaves_unblurred(demo):
    import cv2
    import numpy as np

    from m5data.faces.detect import detect

    _, _, cases, _, media, outputs = demo
    by_url = {m["url"]: m for m in media}
    faces = {kind: by_url[v["url"]] for kind, v in cases["faces"].items()}
    out = demo[0]
    for m in faces.values():  # the detector sees the face in what the shop serves
        picture = cv2.imread(str(out / "shop" / "site" / m["url"].lstrip("/"))) if m["kind"] == "image" else None
        if m["kind"] == "video":
            capture = cv2.VideoCapture(str(out / "shop" / "site" / m["url"].lstrip("/")))
            picture = capture.read()[1]
            capture.release()
        assert detect(picture), f"no face found in the served {m['url']}"
    shas = {m["sha256"]: f"face {kind} {m['url']}" for kind, m in faces.items()}
    leaks = [f"{shas[sha]}: copied as it was served, in {place}"
             for got in outputs.values() for place, sha in got.hashes if sha in shas]
    keys = {m["product_id"].split(":", 1)[1] for m in faces.values()}
    looked = 0
    for root, got in outputs.items():
        for place, suffix, data in got.media:
            if root == "exports" and not any(k in place for k in keys):
                continue  # an export's pictures of other products: no face was put there
            looked += 1
            if suffix in VIDEOS:
                path = Path(tempfile.mkstemp(suffix=suffix)[1])
                path.write_bytes(data)
                capture, frames = cv2.VideoCapture(str(path)), []
                ok, frame = capture.read()
                while ok:
                    frames.append(frame)
                    for _ in range(23):
                        ok, frame = capture.read()
                    ok, frame = capture.read()
                capture.release()
                path.unlink()
            else:
                picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                frames = [] if picture is None else [picture]
            if any(detect(frame) for frame in frames):
                leaks.append(f"a face, unblurred, in {place}")
    assert not leaks, "\n".join(leaks[:40])
    assert looked, "no picture of the face products was written: nothing was checked"


def test_no_contact_leaves(demo):
    out, _, cases, _, _, outputs = demo
    needles = {f"contact in {c['field']} of {c['product_id']} ({c['text']})": c["needle"] for c in cases["contacts"]}
    contacts = pq.read_table(out / "shop" / "truth" / "contacts.parquet").to_pylist()
    for c in contacts:  # the contacts.py ones: their digits, their address or handle
        if not any(c["text"] == k["text"] for k in cases["contacts"]):
            digits = re.sub(r"\D", "", c["text"])
            needles[f"contact in {c['field']} of {c['product_id']} ({c['text']})"] = \
                digits if c["kind"] == "phone" and len(digits) >= 10 else c["text"]
    leaks = _leaks(outputs, needles)
    assert not leaks, "\n".join(leaks[:60])
