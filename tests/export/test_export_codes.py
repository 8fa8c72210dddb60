"""QR codes blurred in every export layout's copy (export.blur_codes, on by default): a real JD photo with a
QR code pasted on it goes out with the code unreadable and the rest of the photo as sharp as a re-encode
leaves it; a photo without one goes out byte for byte; pictures no ``image_codes`` row covers are scanned
once at export time and their rows kept; the vision stage's rows serve the export as they are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.export_pictures import _exported, _inside_and_outside, _stored
from support.extract_media import add_media
from support.extract_media import settings as extract_settings

from m5data import stages
from m5data.config import load
from m5data.export.run import export
from m5data.extract.run import run as extract

PHOTO = "images/550f6d32Nf6b37d9d.jpg"
URL = "https://u.wechat.com/shop_8899"


def _qr_photo(realdata, tmp_path):
    """The real JD keyboard photo with a QR code of a shop's WeChat pasted on it, and the code's box."""
    img = cv2.imread(str(realdata / "media" / PHOTO))
    code = cv2.QRCodeEncoder.create().encode(URL)
    code = cv2.cvtColor(cv2.resize(code, (code.shape[1] * 5, code.shape[0] * 5), interpolation=cv2.INTER_NEAREST),
                        cv2.COLOR_GRAY2BGR)
    y, x = 500, 550
    img[y:y + code.shape[0], x:x + code.shape[1]] = code
    path = tmp_path / "with-qr.png"  # lossless: the normalised JPEG is the first lossy step, as for a crawled photo
    cv2.imwrite(str(path), img)
    return path, (x, y, x + code.shape[1], y + code.shape[0])


def _store(store, realdata, tmp_path):
    path, box = _qr_photo(realdata, tmp_path)
    store.write("products", [{"product_id": f"shopa:{i}", "platform": "shopa", "source_id": i, "title": "键盘",
                              "category_path": ["数码", "键盘"]} for i in ("qr", "jd")])
    add_media(store, path, "shopa:qr", "image")
    add_media(store, realdata / "media" / PHOTO, "shopa:jd", "image")
    extract(store, extract_settings(kinds="image", detect_faces=False), kinds="image", progress=False)
    store.write("splits", [{"product_id": p, "split": "train", "version": "v1"} for p in ("shopa:qr", "shopa:jd")])
    return store, box


def _settings(store, **over):
    return load(None, {"store.path": str(store.root), "export.workers": 1, **over}, environ={})


def _decodes(data: bytes) -> str:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    value, _, _ = cv2.QRCodeDetector().detectAndDecode(img)
    found, _ = cv2.QRCodeDetectorAruco().detectMulti(img)
    return value or ("found" if found else "")


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "m5product"])
def test_every_layout_blurs_the_qr_code_and_leaves_the_rest(store, realdata, tmp_path, fmt):
    store, box = _store(store, realdata, tmp_path)
    stored, photo = _stored(store, "shopa:qr"), _stored(store, "shopa:jd")
    assert _decodes(stored) == URL  # the stored picture's code reads
    report = export(store, _settings(store), out=tmp_path / "out", fmt=fmt)
    got = _exported(tmp_path / "out", fmt)
    exported = got["shopa~3Aqr"] if fmt != "m5product" else next(v for k, v in got.items() if "qr" in k)
    assert _decodes(exported) == ""  # neither reader finds a code
    scale = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR).shape[1] / 800  # the normalised side
    inside, outside = _inside_and_outside(stored, exported, [v * scale for v in box])
    assert inside > 10 and outside < 1.5  # the code is gone; elsewhere a re-encode at the same quality
    plain = got["shopa~3Ajd"] if fmt != "m5product" else next(v for k, v in got.items() if "jd" in k)
    assert plain == photo  # no code: the very bytes
    d = report.stats.details
    assert d["codes_blurred"] == 1 and d["codes_scanned"] == 2
    assert _stored(store, "shopa:qr") == stored  # the store's media as they were
    rows = {r["product_id"]: r for r in store.read("image_codes").to_pylist()}
    assert rows["shopa:qr"]["qr_codes"] == 1 and rows["shopa:qr"]["value"] == [URL] and rows["shopa:jd"]["n_codes"] == 0
    again = export(store, _settings(store), out=tmp_path / "again", fmt=fmt)
    assert again.stats.details["codes_scanned"] == 0 and again.stats.details["codes_blurred"] == 1  # rows kept


def test_the_vision_stages_rows_serve_the_export_and_blur_codes_off_exports_the_stored_bytes(store, realdata, tmp_path):
    store, _ = _store(store, realdata, tmp_path)
    settings = _settings(store)
    stats = stages.call("vision", stages.RunContext(settings, _store=store))
    assert stats.details["scanned"] == 2 and stats.details["qr_codes"] == 1
    report = export(store, settings, out=tmp_path / "out", fmt="webdataset")
    assert report.stats.details["codes_scanned"] == 0 and report.stats.details["codes_blurred"] == 1
    assert _decodes(_exported(tmp_path / "out", "webdataset")["shopa~3Aqr"]) == ""
    off = export(store, _settings(store, **{"export.blur_codes": False}), out=tmp_path / "off", fmt="webdataset")
    assert not off.stats.details.get("codes_blurred")
    assert _exported(tmp_path / "off", "webdataset")["shopa~3Aqr"] == _stored(store, "shopa:qr")


def test_the_gate_blurs_qr_codes_for_the_report_gallery_and_the_labelling_ui(store, realdata, tmp_path):
    """Every path that shows a store picture passes the egress gate: its QR codes go as an export's do, by the
    picture's image_codes row or scanned then; a video frame (not a still picture) keeps them (not covered)."""
    from m5data.egress import gate
    from m5data.report.build import build

    store, _ = _store(store, realdata, tmp_path)
    blob = store.read("media", where="kind = 'image_norm' AND product_id = 'shopa:qr'").to_pylist()[0]["blob"]
    data = store.read_blob(blob)
    out, n = gate.picture_of(store, blob, data)  # the UI's route: no image_codes row yet, scanned now
    assert n == 1 and _decodes(data) == URL and _decodes(out) == ""
    assert gate.picture(data, {"width": 1, "height": 1, "frame": [], "x0": [], "y0": [], "x1": [], "y1": []})[0] == data
    stats = stages.call("vision", stages.RunContext(_settings(store), _store=store))  # the row now
    assert stats.details["qr_codes"] == 1
    assert gate.picture_of(store, blob, data)[0] == out
    report = build(store, _settings(store), out=tmp_path / "report")  # the gallery's copy
    shown = [p.read_bytes() for p in (report.index.parent / "assets").iterdir()]
    assert len(shown) == 2 and all(_decodes(p) == "" for p in shown)  # both products' main images, no code readable
