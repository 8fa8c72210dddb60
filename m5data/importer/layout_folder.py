"""Reading a layout folder that someone else made (``m5data import``): only regular files inside it.

A downloaded dataset folder is data, not a place to trust. :class:`LayoutFolder` lists the folder
and its media subfolders once, and answers name lookups from those listings (no path or glob is
ever built from an item id); a file is opened through the folder's own descriptor, component by
component, with ``O_NOFOLLOW``, and must be a regular file (``fstat``), so a symlink, a ``..`` or an
absolute name cannot lead outside, even if the folder changes between the listing and the open.
A file with more than one name (``st_nlink > 1``, a hard link) is refused as well: a hard link is a
regular file inside the folder, but its bytes may be those of a file elsewhere that the importing
user can read and the folder's author could never have shipped (a key, another user's data).
Ids read from the folder are checked with :func:`check_item_id` and :func:`check_product_id`;
:class:`FolderMedia` finds an item's image, video and audio by name and sniffs them before any is
stored (:func:`m5data.download.sniff.sniff`, the download stage's content sniffer).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..download.sniff import SNIFF_BYTES, Sniffed, sniff
from ..errors import UserError
from ..export.m5product_format import key_item_id
from ..export.samples import safe_key

# An item id is a file name stem: the platforms' ids, or the safe keys an m5data export writes.
ITEM_ID = re.compile(r"^[A-Za-z0-9_~-]{1,200}$")
# A platform name: an adapter's name or a host name (letters, digits, dots, dashes, underscores).
PLATFORM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SOURCE_ID = 1000
# the sniffed kinds a file of each media folder may be: the download stage's rule (a container that
# sniffs as video may carry sound only; an audio file may be such a container)
ACCEPTS = {"image": {"image"}, "video": {"video", "audio"}, "audio": {"audio", "video"}}
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO never hangs the open


class LayoutError(UserError):
    """A folder that is not in the expected layout; the message names the file."""


class HardLinkError(OSError):
    """A file of the folder that has other names too (``st_nlink > 1``)."""


class ItemError(Exception):
    """One item that cannot be imported: ``reason`` is the short key counted in the stage's stats,
    ``detail`` names the item and the file."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_item_id(iid) -> str:
    """``iid`` if it is a file-safe item id; else :class:`ItemError` (``bad item id``)."""
    if not isinstance(iid, str) or not ITEM_ID.match(iid):
        raise ItemError("bad item id", f"item {iid!r}: not an item id (1-200 of A-Z a-z 0-9 _ ~ -)")
    return iid


def valid_source_id(source: str) -> bool:
    """A platform's own id: printable text without outer spaces or control characters. It may hold
    any other character (``/`` included): a product id is never a path (exports name files by
    ``safe_key`` / ``key_item_id``)."""
    return 0 < len(source) <= MAX_SOURCE_ID and source.isprintable() and source == source.strip()


def check_product_id(iid: str, entry, platform: str) -> str:
    """The product id of item ``iid``: from its ``m5data_items.json`` ``entry``, else ``<platform>:<iid>``.

    An entry's product id must be ``<platform>:<source id>`` with both parts valid, and must belong
    to the item: the item id is its source id, or its safe key or key item id (what an m5data export writes), so a
    folder cannot file an item under another product's id.
    """
    if entry is None or (isinstance(entry, dict) and entry.get("product_id") is None):
        return f"{platform}:{iid}"
    pid = entry.get("product_id") if isinstance(entry, dict) else None
    if not isinstance(pid, str):
        raise ItemError("bad product id in m5data_items.json", f"item {iid!r}: its entry holds no product id text")
    plat, sep, source = pid.partition(":")
    if not sep or not PLATFORM.match(plat) or not valid_source_id(source):
        raise ItemError("bad product id in m5data_items.json", f"item {iid!r}: {pid!r} is not <platform>:<source id>")
    if iid not in (source, safe_key(pid), key_item_id(pid)):
        raise ItemError("bad product id in m5data_items.json", f"item {iid!r}: {pid!r} is not this item's product id")
    return pid


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "folder"
    return "file" if entry.is_file(follow_symlinks=False) else "special file"


class LayoutFolder:
    """A layout folder, listed once; files are opened by listed name only. Use as a context manager."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:  # the root itself is the operator's choice: it may be reached through a symlink
            self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise LayoutError(f"no such folder {self.root}") from None
        self._subfds: dict[str, int] = {}
        self.names = self._list(self._fd)
        self._listings: dict[str, dict[str, str]] = {}

    def __enter__(self) -> LayoutFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for fd in [*self._subfds.values(), self._fd]:
            os.close(fd)
        self._subfds.clear()

    @staticmethod
    def _list(fd: int) -> dict[str, str]:
        with os.scandir(fd) as it:
            return {e.name: _kind(e) for e in it}

    def listing(self, sub: str) -> dict[str, str]:
        """``{name: kind}`` of the subfolder ``sub`` (kind: file, folder, symlink, special file); {} if absent.

        Raises :class:`LayoutError` when ``sub`` is there but is no real folder (a symlink to one
        elsewhere is not read).
        """
        if sub not in self._listings:
            kind = self.names.get(sub)
            if kind is None:
                self._listings[sub] = {}
            elif kind != "folder":
                raise LayoutError(f"{self.root / sub} is a {kind}, not a folder: not read")
            else:
                try:
                    fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
                except OSError as exc:
                    raise LayoutError(f"{self.root / sub} cannot be opened as a folder: {exc.strerror}") from None
                self._subfds[sub] = fd
                self._listings[sub] = self._list(fd)
        return self._listings[sub]

    def open(self, rel: str) -> BinaryIO:
        """Open ``name`` or ``sub/name`` (a listed entry) for reading; :class:`OSError` unless it is a
        regular file inside the folder."""
        sub, _, name = rel.rpartition("/")
        kind = (self.listing(sub) if sub else self.names).get(name)
        if kind != "file":
            raise OSError(f"{rel} is {'not there' if kind is None else 'a ' + kind} (only regular files are read)")
        fd = os.open(name, _OPEN_FLAGS, dir_fd=self._subfds[sub] if sub else self._fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{rel} is not a regular file")
            if st.st_nlink > 1:
                raise HardLinkError(f"{rel} is a hard link ({st.st_nlink} names for one file): its bytes may be "
                                    "a file from outside the folder (not read)")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as fh:
            return fh.read()


@dataclass
class MediaFile:
    """One of an item's media files, open and sniffed, not yet in the store."""

    kind: str
    rel: str
    fh: BinaryIO
    size: int = 0  # bytes when checked (fstat): the copy into the store stops there, if the file grows after
    sniffed: Sniffed | None = None  # set once the first bytes are checked


class FolderMedia:
    """An item's files in images/, videos/ and audios/, looked up by name in the folder's listings.

    Args:
        max_bytes: the largest file of each kind (image, video, audio) imported; a larger one fails its item.
    """

    def __init__(self, folder: LayoutFolder, max_bytes: dict[str, int] | None = None):
        self.folder = folder
        self.max_bytes = dict(max_bytes or {})
        self.images = folder.listing("images")
        self.audios = folder.listing("audios")
        self.videos: dict[str, str] = {}  # item id -> the first name <id>.<ext>, as the layout's glob found it
        for name in sorted(folder.listing("videos")):
            stem, _, ext = name.partition(".")
            if stem and ext:
                self.videos.setdefault(stem, name)

    def names(self, iid: str) -> list[tuple[str, str]]:
        """(kind, path in the folder) of each file the item has (``iid`` is a checked item id)."""
        found = []
        if f"{iid}.jpg" in self.images:
            found.append(("image", f"images/{iid}.jpg"))
        if iid in self.videos:
            found.append(("video", f"videos/{self.videos[iid]}"))
        if f"{iid}.mp3" in self.audios:
            found.append(("audio", f"audios/{iid}.mp3"))
        return found

    def open(self, iid: str) -> list[MediaFile]:
        """Open and sniff every file of the item; :class:`ItemError` (all closed) if one is unsafe or no such media."""
        files: list[MediaFile] = []
        try:
            for kind, rel in self.names(iid):
                try:
                    fh = self.folder.open(rel)
                except HardLinkError as exc:
                    raise ItemError("media file is a hard link", f"item {iid!r}: {exc}") from None
                except OSError as exc:
                    raise ItemError("media not a regular file inside the folder", f"item {iid!r}: {exc}") from None
                size = os.fstat(fh.fileno()).st_size
                files.append(MediaFile(kind, rel, fh, size))
                cap = self.max_bytes.get(kind)
                if cap is not None and size > cap:
                    raise ItemError("media file too large",
                                    f"item {iid!r}: {rel} is {size:,} bytes, over the {kind} cap of {cap:,}")
                head = fh.read(SNIFF_BYTES)
                sniffed = sniff(head)
                if sniffed is None:
                    raise ItemError("media not a known format",
                                    f"item {iid!r}: {rel} is no known {kind} format (starts {head[:12]!r})")
                if sniffed.kind not in ACCEPTS[kind]:
                    raise ItemError("media of the wrong kind", f"item {iid!r}: {rel} is {sniffed.mime}, not {kind}")
                files[-1].sniffed = sniffed
        except BaseException:
            for f in files:
                f.fh.close()
            raise
        return files
