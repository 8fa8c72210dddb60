"""The vision stage (m5data/vision): an image feature vector per normalised image and model, readable with
SQL; on the real JD photos of ../shared/realdata the two keyboard shots are each other's nearest
neighbours; a picture the model cannot read gets its reason and the run goes on; a re-run makes only
what is new; a user's own model file gives rows of its own identity."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from m5data import stages
from m5data.cli import app
from m5data.config import load
from m5data.storage import Store

REAL = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "media"
KEYBOARD = ("550f6d32Nf6b37d9d.jpg", "550f6d33N19ea687b.jpg")  # two JD photos of one keyboard, other angles


def _put(store, name: str, data: bytes, product: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    rel = f"derived/images/{sha[:2]}/{sha}.jpg"
    store.put_blob(rel, data)
    store.write("media", [{"media_id": f"{name}-n", "source_media_id": name, "product_id": product, "kind": "image_norm",
                           "status": "ok", "blob": rel, "position": 0}])
    return f"{name}-n"


def _real_store(tmp_path) -> tuple[Store, dict[str, str]]:
    store = Store.init(tmp_path / "store")
    files = sorted((REAL / "images").glob("*.jpg")) + [REAL / "faces" / "astronaut.png"]
    ids = {f.name: _put(store, f.stem, f.read_bytes(), f"jd:{i}") for i, f in enumerate(files)}
    return store, ids


def _call(store, **overrides):
    settings = load(None, {"store.path": str(store.root), **overrides}, environ={})
    ctx = stages.RunContext(settings, _store=store)
    stages.check("vision", settings, {})
    return stages.call("vision", ctx)


def _vectors(store) -> dict[str, np.ndarray]:
    rows = store.read("image_vectors", where="vector IS NOT NULL").to_pylist()
    return {r["media_id"]: np.array(r["vector"], np.float32) for r in rows}


def test_the_keyboard_photos_are_each_others_nearest_neighbours_by_sql(tmp_path, monkeypatch):
    store, ids = _real_store(tmp_path)
    stats = _call(store)
    assert stats.n_out == len(ids) and not stats.n_failed
    got = _vectors(store)
    assert all(v.shape == (1280,) and abs(np.linalg.norm(v) - 1) < 1e-4 for v in got.values())
    a, b = (ids[k] for k in KEYBOARD)
    # the route the docs show: m5data sql, nearest first; and DuckDB's array function over the cast vector
    monkeypatch.chdir(tmp_path)
    for expr in ("list_cosine_similarity(vector, q.v)", "array_cosine_similarity(vector::FLOAT[1280], q.v::FLOAT[1280])"):
        sql = (f"SELECT media_id, {expr} AS s FROM image_vectors, (SELECT vector AS v FROM image_vectors "
               f"WHERE media_id = '{a}') q WHERE media_id <> '{a}' ORDER BY s DESC LIMIT 3")
        out = CliRunner().invoke(app, ["--store", str(store.root), "sql", "--format", "json", sql])
        assert out.exit_code == 0, out.output
        rows = [json.loads(line) for line in out.output.splitlines()]  # JSON lines
        assert rows[0]["media_id"] == b
        assert rows[0]["s"] == pytest.approx(float(got[a] @ got[b]), abs=1e-5)
    for me, other in ((a, b), (b, a)):  # each is the other's nearest among every real picture
        sims = {k: float(got[me] @ v) for k, v in got.items() if k != me}
        assert max(sims, key=sims.get) == other
        assert sims[other] - sorted(sims.values())[-2] > 0.2  # by a wide margin (0.89 against 0.55 measured)


def _png16(w: int, h: int) -> bytes:
    from PIL import Image

    arr = (np.arange(w * h, dtype=np.uint16).reshape(h, w) * 37).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")  # uint16: Pillow's 16-bit greyscale
    return buf.getvalue()


def _gif(w: int, h: int, frames: int) -> bytes:
    from PIL import Image

    imgs = [Image.new("RGB", (w, h), (40 * i, 80, 160)) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100)
    return buf.getvalue()


def test_pictures_the_model_cannot_read_get_their_reason_and_the_run_goes_on(tmp_path):
    from PIL import Image

    store = Store.init(tmp_path / "store")
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(tiny, "JPEG")
    header_only = bytearray((REAL / "images" / KEYBOARD[0]).read_bytes()[:600])  # a JPEG cut after its header
    cases = {
        "truncated": (REAL / "broken" / "truncated_jpeg.jpg").read_bytes(),
        "not-an-image": b"<html>not a picture</html>",
        "tiny": tiny.getvalue(),
        "header-only": bytes(header_only),
        "cmyk": (REAL / "images" / "pil_sample_cmyk.jpg").read_bytes(),
        "sixteen-bit": _png16(64, 48),
        "animated": _gif(40, 30, 3),
        "good": (REAL / "images" / KEYBOARD[0]).read_bytes(),
    }
    ids = {name: _put(store, name, data, f"p:{name}") for name, data in cases.items()}
    stats = _call(store)
    rows = {r["media_id"]: r for r in store.read("image_vectors").to_pylist()}
    assert set(rows) == set(ids.values())
    refused = {name for name, mid in ids.items() if rows[mid]["vector"] is None}
    assert refused == {"truncated", "not-an-image", "tiny", "header-only"}
    assert "too small" in rows[ids["tiny"]]["error"] and "not an image" in rows[ids["not-an-image"]]["error"]
    assert all(rows[ids[n]]["error"] for n in refused) and stats.n_failed == 4 and stats.n_out == 4
    assert all(ids[n] in reason for n in refused for reason in [next(r for r in stats.failures if ids[n] in r)])
    assert _call(store).n_in == 0  # a refused picture is not tried again


def test_a_rerun_makes_only_the_new_images_and_a_shared_file_is_shown_once(tmp_path, monkeypatch):
    from m5data.vision import stage as vision_stage

    store, ids = _real_store(tmp_path)
    first = _call(store)
    before = {r["media_id"]: r["made_at"] for r in store.read("image_vectors").to_pylist()}
    assert _call(store).n_in == 0
    data = (REAL / "images" / KEYBOARD[1]).read_bytes()
    shown = []
    real = vision_stage.pending
    monkeypatch.setattr(vision_stage, "pending", lambda *a, **k: shown.extend(real(*a, **k)) or real(*a, **k))
    _put(store, "copy-a", data, "jd:new1")
    _put(store, "copy-b", data, "jd:new2")  # the same file under two media rows
    again = _call(store)
    assert again.n_in == 2 and again.n_out == 2 and again.details["pictures"] == 1
    assert first.n_out == len(ids)
    rows = {r["media_id"]: r for r in store.read("image_vectors").to_pylist()}
    assert all(rows[m]["made_at"] == t for m, t in before.items())  # nothing made again
    assert rows["copy-a-n"]["vector"] == rows["copy-b-n"]["vector"] == rows[ids[KEYBOARD[1]]]["vector"]


def test_a_users_own_model_file_gives_rows_of_its_own_identity(tmp_path):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self, seed: int):
            super().__init__()
            torch.manual_seed(seed)
            self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

        def forward(self, x):
            return torch.relu(self.conv(x))  # (N, 8, h, w): averaged into 8-d vectors

    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny(0)), str(path))
    store, ids = _real_store(tmp_path)
    built_in = _call(store).details["model"]
    mine = _call(store, **{"vision.model": str(path), "vision.image_size": 64})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert mine.n_out == len(ids) and mine.details["dim"] == 8 and digest in mine.details["model"]
    rows = store.read("image_vectors").to_pylist()
    assert {r["model"] for r in rows} == {mine.details["model"], built_in}
    assert all(r["dim"] == 8 for r in rows if r["model"] == mine.details["model"])
    # the same path written again with other weights: another model, every row made again, by the new weights
    torch.jit.save(torch.jit.script(Tiny(1)), str(path))
    other = _call(store, **{"vision.model": str(path), "vision.image_size": 64})
    assert other.details["model"] != mine.details["model"] and other.n_out == len(ids)
    by = {}
    for r in store.read("image_vectors").to_pylist():
        by.setdefault(r["model"], {})[r["media_id"]] = np.array(r["vector"])
    assert all(not np.allclose(by[mine.details["model"]][m], by[other.details["model"]][m]) for m in ids.values())


def test_a_missing_model_file_is_refused_before_any_run(tmp_path):
    from m5data.vision.stage import VisionError

    store = Store.init(tmp_path / "store")
    with pytest.raises(VisionError, match="vision.model .*no such file"):
        _call(store, **{"vision.model": str(tmp_path / "nothing.pt2")})
    assert store.read("runs").num_rows == 0
    out = CliRunner().invoke(app, ["--store", str(store.root), "--set", f"vision.model={tmp_path / 'nothing.pt2'}", "vision"])
    assert out.exit_code == 1 and "vision.model" in out.output and "Traceback" not in out.output


def test_a_run_killed_after_a_write_resumes_without_duplicates(tmp_path, monkeypatch):
    from m5data.vision import vectors

    store, ids = _real_store(tmp_path)
    real, calls = vectors.embed, []

    def dies_second_time(backbone, pictures):
        calls.append(len(pictures))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(backbone, pictures)

    monkeypatch.setattr(vectors, "embed", dies_second_time)
    with pytest.raises(KeyboardInterrupt):
        _call(store, **{"vision.batch": 2, "vision.write_rows": 2})
    assert store.read("runs", where="stage = 'vision'").to_pylist()[0]["status"] == "interrupted"
    kept = store.count("image_vectors")
    assert kept == 2
    monkeypatch.setattr(vectors, "embed", real)
    again = _call(store, **{"vision.batch": 2, "vision.write_rows": 2})
    assert again.n_in == len(ids) - kept
    rows = store.read("image_vectors").to_pylist()
    assert len(rows) == len({r["media_id"] for r in rows}) == len(ids)


def test_a_full_run_makes_every_row_again(tmp_path):
    store, ids = _real_store(tmp_path)
    _call(store)
    before = {r["media_id"]: r["made_at"] for r in store.read("image_vectors").to_pylist()}
    scanned = {r["blob"]: r["scanned_at"] for r in store.read("image_codes").to_pylist()}
    settings = load(None, {"store.path": str(store.root)}, environ={})
    full = stages.call("vision", stages.RunContext(settings, options={"full": True}, _store=store))
    assert full.n_in == full.n_out == len(ids) and full.details["scanned"] == len(ids)
    after = {r["media_id"]: r for r in store.read("image_vectors").to_pylist()}
    assert set(after) == set(before) and all(after[m]["made_at"] > t for m, t in before.items())
    assert all(r["scanned_at"] > scanned[r["blob"]] for r in store.read("image_codes").to_pylist())
