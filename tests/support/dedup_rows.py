"""Rows of the tables dedup reads, made small for the dedup tests."""

from __future__ import annotations


def product_row(pid, merchant, title):
    return {"product_id": pid, "platform": pid.split(":")[0], "source_id": pid.split(":")[1],
            "merchant_id": merchant, "title": title}


def image_row(pid, sha, phash):
    return {"media_id": f"m-{pid}", "product_id": pid, "kind": "image", "role": "main", "position": 0,
            "sha256": sha, "phash": phash, "status": "ok"}
