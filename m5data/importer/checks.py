"""What can be wrong with one item of the layout, checked before anything of it is stored: its ids,
caption entry, label and media files (:class:`~.layout_folder.ItemError` naming the item)."""

from __future__ import annotations

import json

from ..export.m5product_format import LABEL_LIST
from .layout_folder import FolderMedia, ItemError, MediaFile, check_item_id, check_product_id


def check_caption(iid: str, rec) -> None:
    """:class:`ItemError` unless the caption entry is an object with text (or no) title and pv."""
    if not isinstance(rec, dict):
        raise ItemError("caption entry not an object", f"item {iid!r}: caption entry is not an object")
    if not all(isinstance(rec.get(k), (str, type(None))) for k in ("title", "pv")):
        raise ItemError("caption entry: title or pv not text", f"item {iid!r}: title or pv is not a string")
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): valid JSON, no valid text
        raise ItemError("caption entry not valid Unicode", f"item {iid!r}: caption holds a lone surrogate") from None


def category_path(iid: str, label, labels: list[str]) -> list[str]:
    if label is None:
        return []
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(labels):
        raise ItemError("label not an index into the label list",
                        f"item {iid!r}: label {label!r} is not an index into {LABEL_LIST} ({len(labels)} labels)")
    return labels[label].split(" > ")


def check_item(iid: str, rec, entry, label, labels: list[str], platform: str,
                item_of: dict[str, str], media_files: FolderMedia) -> tuple[str, list[str], list[MediaFile]]:
    """Everything about one item that can be wrong, checked before anything is stored:
    its product id, category path and open, sniffed media files (:class:`ItemError` if one is bad).
    ``entry`` is its ``m5data_items.json`` entry, ``label`` its label index (None when absent)."""
    check_item_id(iid)
    check_caption(iid, rec)
    pid = check_product_id(iid, entry, platform)
    if pid in item_of:
        raise ItemError("product id taken by another item", f"item {iid!r}: {pid!r} is item {item_of[pid]!r}'s product id")
    path = category_path(iid, label, labels)
    opened = media_files.open(iid)
    item_of[pid] = iid
    return pid, path, opened
