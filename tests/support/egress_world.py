"""A small store for the egress canary (tests/egress/test_egress_canary.py, issue 76): a few ordinary products, a
canary whose every text field carries personal data and whose image and video show a face, a product opted
out after it was stored and a taken-down one, each of the last two with a marker string of its own.

``build(root, tmp)`` writes the rows with the store's API, extracts the media (faces detected), builds the
split version ``v1`` with every product in it, then records the opt-out and the takedown and builds ``v2``
as ``m5data build-splits`` does. What was planted is in :data:`PERSONAL` (the raw strings and the needle
each leaves after NFKC and whitespace removal) and :data:`MARKERS`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
# the public-domain photo the package ships for its demo shop (a downscaled copy of realdata's astronaut.png:
# docs/demo-shop.md), so that the canary needs nothing outside the repo
FACE = Path(__file__).resolve().parents[2] / "m5data" / "demo" / "astronaut.jpg"
PHOTOS = ["550f6d32Nf6b37d9d.jpg", "550f6d33N19ea687b.jpg", "577c67c9Nefee4677.jpg"]

CRAWLED = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
OPTED_OUT_AT = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # after CRAWLED: a later opt-out

CANARY = "shopa:700100"
OPTED_OUT = "shopa:700200"
TAKEN_DOWN = "shopa:700300"
NORMAL = [f"shopa:7000{i:02d}" for i in range(1, 9)]

OPT_MARK = "QXOPTOUTMARK7741"
TD_MARK = "ZKTAKEDOWNMARK9923"
# what names a withdrawn product: its markers, its id and the id's tar-safe key (export/webdataset.py)
MARKERS = {OPT_MARK: OPTED_OUT, TD_MARK: TAKEN_DOWN, OPTED_OUT: OPTED_OUT, TAKEN_DOWN: TAKEN_DOWN,
           OPTED_OUT.replace(":", "~3A"): OPTED_OUT, TAKEN_DOWN.replace(":", "~3A"): TAKEN_DOWN}
# what shows the canary went through a path (its id, its key, its title's words)
CANARY_SIGNS = (CANARY, CANARY.replace(":", "~3A"), "宇航员手办")


def id_card(body: str) -> str:
    """``body`` (17 digits) with its GB 11643 check digit."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]


ID_NUMBER = id_card("11010819900307123")
ADDRESS = "北京市海淀区中关村大街27号"

# field -> (raw text planted, the needles it carries: what must never leave, NFKC'd, without whitespace)
PERSONAL: dict[str, tuple[str, list[str]]] = {
    "title": ("宇航员手办 Tel13800138001 wangwu＠163.com", ["13800138001", "wangwu@163.com"]),
    "caption": ("正品保证 加我V13800138002 详询", ["13800138002"]),
    "description": ("1380 0138 003 发货地址" + ADDRESS, ["13800138003", ADDRESS]),
    "spec_value": ("电话１３８００１３８０００", ["13800138000"]),
    "spec_property": ("客服电话13800138006", ["13800138006"]),
    "spec_value_id": ("身份证" + ID_NUMBER, [ID_NUMBER]),
    "spec_value_address": ("门店" + ADDRESS, [ADDRESS]),
    "class_name": ("家居13800138004", ["13800138004"]),
    "breadcrumb": ("客服13800138005", ["13800138005"]),
    "page_url": ("http://shop.test/p/700100?tel=13800138009", ["13800138009"]),
    "copyright_notice": ("© 2024 张三 13800138007 zhaoliu@qq.com", ["13800138007", "zhaoliu@qq.com"]),
    "license": ("mailto:wangwu@163.com", ["wangwu@163.com"]),
    "acquire_license_page": ("http://shop.test/licence?tel=13800138008", ["13800138008"]),
    "image_rights": ("摄影 张三 13800138010", ["13800138010"]),
}


def needles() -> dict[str, list[str]]:
    """needle -> the fields it was planted in."""
    out: dict[str, list[str]] = {}
    for name, (_, found) in PERSONAL.items():
        for n in found:
            out.setdefault(n, []).append(name)
    return out


def _image(path: Path, seed: int) -> Path:
    """A face-free product picture of its own (a colour gradient with stripes)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:300, 0:400]
    rgb = np.stack([(x * (seed + 1)) % 256, (y * 3 + seed * 40) % 256, ((x // 20 + y // 20) % 2) * 200], -1)
    Image.fromarray(rgb.astype("uint8")).save(path, quality=92)
    return path


QR_VALUE = "https://u.wechat.com/canary_qr_7000"  # a shop's contact, pasted on one normal product's picture
QR_PRODUCT = NORMAL[3]


def qr_image(path: Path, seed: int) -> Path:
    """A product picture of its own (:func:`_image`) with a QR code of :data:`QR_VALUE` pasted on it."""
    import cv2

    _image(path, seed)
    img = cv2.imread(str(path))
    code = cv2.QRCodeEncoder.create().encode(QR_VALUE)
    code = cv2.copyMakeBorder(code, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=255)  # its quiet zone, as printed
    code = cv2.cvtColor(cv2.resize(code, (code.shape[1] * 4, code.shape[0] * 4), interpolation=cv2.INTER_NEAREST),
                        cv2.COLOR_GRAY2BGR)
    img[130:130 + code.shape[0], 220:220 + code.shape[1]] = code
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def face_video(path: Path) -> Path:
    """A 3-second MP4 of the astronaut's photo (her face on every frame)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(FACE), "-t", "3", "-r", "4",
                    "-vf", "scale=320:320", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def add_media(store, path: Path, pid: str, kind: str, meta: dict | None = None) -> dict:
    ref = store.blobs.put_file(path, path.suffix.lstrip("."))
    url = f"http://shop.test/m/{pid.split(':')[1]}/{path.name}"
    row = {"media_id": hashlib.sha1(f"{pid}|{kind}|{url}".encode()).hexdigest(), "product_id": pid, "kind": kind,
           "role": "main" if kind == "image" else "video", "position": 0, "url": url, "blob": ref.path,
           "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok", "meta": json.dumps(meta) if meta else None}
    store.write("media", [row])
    return row


def _product(pid: str, title: str, url: str, path: list[str], description: str | None = None) -> dict:
    return {"product_id": pid, "platform": "shopa", "source_id": pid.split(":")[1], "url": url, "title": title,
            "category_path": path, "description": description, "crawled_at": CRAWLED, "has_image": True}


NORMAL_PATH = ["家电", "厨房电器"]
CANARY_PATH = ["家居", PERSONAL["breadcrumb"][0]]


def write_rows(store, tmp: Path) -> dict[str, list[Path]]:
    """Every row of the world, before extract; the media files each product was given."""
    p = PERSONAL
    products = [_product(pid, f"不锈钢电热水壶 {i} 号", f"http://shop.test/p/{pid.split(':')[1]}", NORMAL_PATH,
                         "1.7L 大容量")
                for i, pid in enumerate(NORMAL)]
    products.append(_product(CANARY, p["title"][0], p["page_url"][0], CANARY_PATH, p["description"][0]))
    products.append(_product(OPTED_OUT, f"保温杯 {OPT_MARK}", f"http://shop.test/p/{OPT_MARK}", NORMAL_PATH,
                             f"描述 {OPT_MARK}"))
    products.append(_product(TAKEN_DOWN, f"台灯 {TD_MARK}", f"http://shop.test/p/{TD_MARK}", NORMAL_PATH,
                             f"描述 {TD_MARK}"))
    store.write("products", products)
    specs = [{"product_id": pid, "position": 0, "property": "品牌", "value": "美的"} for pid in NORMAL]
    specs += [{"product_id": CANARY, "position": 0, "property": "联系", "value": p["spec_value"][0]},
              {"product_id": CANARY, "position": 1, "property": p["spec_property"][0], "value": "工作日"},
              {"product_id": CANARY, "position": 2, "property": "证件", "value": p["spec_value_id"][0]},
              {"product_id": CANARY, "position": 3, "property": "地址", "value": p["spec_value_address"][0]}]
    specs += [{"product_id": pid, "position": 0, "property": f"型号{mark}", "value": f"值{mark}"}
              for pid, mark in ((OPTED_OUT, OPT_MARK), (TAKEN_DOWN, TD_MARK))]
    store.write("specs", specs)
    captions = [{"product_id": pid, "text": "好用的电热水壶", "status": "ok", "lang": "zh"} for pid in NORMAL]
    captions += [{"product_id": CANARY, "text": p["caption"][0], "status": "ok", "lang": "zh"},
                 {"product_id": OPTED_OUT, "text": f"说明 {OPT_MARK}", "status": "ok", "lang": "zh"},
                 {"product_id": TAKEN_DOWN, "text": f"说明 {TD_MARK}", "status": "ok", "lang": "zh"}]
    store.write("captions", captions)
    store.write("licenses", [{"product_id": CANARY, "url": p["page_url"][0], "license": p["license"][0],
                              "acquire_license_page": p["acquire_license_page"][0],
                              "copyright_notice": p["copyright_notice"][0], "source": "schema.org",
                              "seen_at": CRAWLED},
                             {"product_id": OPTED_OUT, "url": f"http://shop.test/p/{OPT_MARK}",
                              "license": f"https://lic.test/{OPT_MARK}", "source": "schema.org", "seen_at": CRAWLED},
                             {"product_id": TAKEN_DOWN, "url": f"http://shop.test/p/{TD_MARK}",
                              "license": f"https://lic.test/{TD_MARK}", "source": "schema.org", "seen_at": CRAWLED}])
    store.write("label_map", [
        {"platform": "shopa", "raw_path": " > ".join(NORMAL_PATH), "raw_level1": NORMAL_PATH[0],
         "raw_level2": NORMAL_PATH[1], "class_id": 1, "sub_class_id": 1, "subsub_class_id": 0, "method": "own"},
        {"platform": "shopa", "raw_path": " > ".join(CANARY_PATH), "raw_level1": CANARY_PATH[0],
         "raw_level2": CANARY_PATH[1], "class_id": 2, "sub_class_id": 2, "subsub_class_id": 0, "method": "own"}])
    store.write("taxonomy", [
        {"level": 1, "label_id": 1, "name": "家电", "class_id": 1},
        {"level": 2, "label_id": 1, "name": "厨房电器", "parent_id": 1, "class_id": 1, "sub_class_id": 1},
        {"level": 1, "label_id": 2, "name": p["class_name"][0], "class_id": 2},
        {"level": 2, "label_id": 2, "name": p["class_name"][0] + "用品", "parent_id": 2, "class_id": 2,
         "sub_class_id": 2}])
    files: dict[str, list[Path]] = {}
    photos = [p for p in (REALDATA / "media" / "images" / name for name in PHOTOS) if p.is_file()]  # else made
    for i, pid in enumerate(NORMAL):
        src = (photos[i] if i < len(photos) else qr_image(tmp / f"normal{i}.jpg", i) if pid == QR_PRODUCT
               else _image(tmp / f"normal{i}.jpg", i))
        add_media(store, src, pid, "image")
        files[pid] = [src]
    rights = {"download": {"rights": {"rights": p["image_rights"][0], "web_statement": p["page_url"][0]}}}
    add_media(store, FACE, CANARY, "image", meta=rights)
    video = face_video(tmp / "canary.mp4")
    add_media(store, video, CANARY, "video")
    files[CANARY] = [FACE, video]
    for pid, seed in ((OPTED_OUT, 11), (TAKEN_DOWN, 17)):
        src = _image(tmp / f"{pid.split(':')[1]}.jpg", seed)
        add_media(store, src, pid, "image")
        files[pid] = [src]
    # a candidate pool for the labelling UI: the canary asks about every other product
    others = [OPTED_OUT, TAKEN_DOWN, *NORMAL[:4]]
    store.write("pools", [{"query_id": CANARY, "candidate_id": c, "rank": r, "score": 1.0 - r / 10,
                           "embedder": "test"} for r, c in enumerate(others, 1)]
                + [{"query_id": NORMAL[5], "candidate_id": c, "rank": r, "score": 1.0 - r / 10, "embedder": "test"}
                   for r, c in enumerate([TAKEN_DOWN, OPTED_OUT, CANARY], 1)])
    return files


def extract(store) -> None:
    from m5data.config import load
    from m5data.extract.run import run

    kinds = "image,video"
    settings = load(overrides={"extract.workers": 1, "extract.frame_max_side": 320, "extract.kinds": kinds,
                               "extract.detect_faces": True}, environ={}, cwd=Path(__file__).parent)
    run(store, settings, kinds=kinds, progress=False)


def record_withdrawals(store) -> None:
    """The opt-out a refresh crawl found after the product was stored (scope page, seen after its
    ``crawled_at``); the takedown is recorded by the test through ``m5data takedown``."""
    store.write("optouts", [{"url": f"http://shop.test/p/{OPT_MARK}", "product_id": OPTED_OUT, "scope": "page",
                             "source": "x-robots-tag", "directive": "noai", "run_id": "refresh",
                             "seen_at": OPTED_OUT_AT}])
