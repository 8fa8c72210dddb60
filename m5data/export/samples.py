"""Export samples: one :class:`Sample` per product of a split, its file-safe key, and which split
version and members an export reads; the samples are assembled from the store by :mod:`.sample_rows`.

A sample holds what every layout needs: the product's text (title, cleaned caption, spec table),
its unified labels and duplicate group, and the paths of its media (normalised main image, 1-fps
frames, MFCC array, mp3, the original video). Layouts read the bytes themselves, so nothing
larger than one shard's rows is held at a time.

Which split version: the one named, or the store's current one (``splits.versions``: the newest by
the number its name ends with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError
from ..storage.names import BadNameError, check_name, name_problem, shown

SPLIT_NAMES = ("train", "query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test", "subset")


class ExportError(UserError):
    """An export that cannot run (no split version, an unknown split, a foreign output folder ...)."""


# ---------------------------------------------------------------------------------------------- keys

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def safe_key(product_id: str) -> str:
    """A tar-safe, file-safe, reversible form of a product id: no dots, slashes or colons.

    Every character outside ``[A-Za-z0-9_-]`` becomes ``~XX`` per UTF-8 byte (``shopa:123`` ->
    ``shopa~3A123``), so the key never contains the dot that ends a WebDataset key.
    """
    out = []
    for ch in product_id:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"~{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def product_id_from_key(key: str) -> str:
    """The inverse of :func:`safe_key`."""
    raw = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "~":
            raw.append(int(key[i + 1:i + 3], 16))
            i += 3
        else:
            raw.extend(key[i].encode())
            i += 1
    return raw.decode("utf-8")


def hf_split_name(split: str) -> str:
    """Split name as Hugging Face ``datasets`` accepts it (``^\\w+(\\.\\w+)*$``): ``query-c`` -> ``query_c``."""
    return split.replace("-", "_")


# ---------------------------------------------------------------------------------------------- versions


def current_version(store, con=None) -> str:
    """The store's current split version (``splits.versions.current_version``: the newest by the number
    its name ends with, not the last written); :class:`ExportError` for a store without splits, or one
    whose version names are none of them plain names."""
    from ..splits.versions import current, stored_versions

    versions = stored_versions(store, con)
    version = current(versions)
    if version is None:
        if versions:  # names that would become folder names: say why the first is refused
            plain_name("split version", versions[0])
        raise ExportError(f"the store {store.root} has no splits: run `m5data build-splits` first")
    return version


def version_source(store, version: str) -> tuple[str, dict] | None:
    """``(sql, counts)``: SQL of split version ``version``'s (split, product_id) rows read from only the
    parts that hold it, and its rows per split; None where the parts' footers do not say which hold it
    (a row group of two versions, no statistics, a store on object storage) or none does: read the view.

    The view keeps, of a version (one group), the rows of its newest write, each key once: here the
    rows of the version's newest ``_seq`` in its parts, distinct. The view's window over every
    version's rows (16 versions of 1.2M products) cost 2.7 CPU s at 1M, in each read of the members."""
    import duckdb

    from ..storage.footers import group_versions
    from ..storage.readdb import read_cursor
    from ..storage.schema import SEQ_COLUMN

    parts = store.local_parts("splits")  # None on object storage: the view is read there
    if parts is None:
        return None
    holding = []
    for part in parts:
        found = group_versions(part)
        if found is None:
            return None
        if version in found:
            holding.append(part)
    if not holding:
        return None
    files = ", ".join(_quoted(str(p)) for p in holding)
    source = (f"SELECT DISTINCT split, product_id FROM (SELECT split, product_id FROM read_parquet([{files}], "
              f"union_by_name = true) WHERE version = {_quoted(version)} QUALIFY {SEQ_COLUMN} = max({SEQ_COLUMN}) OVER ())")
    con = read_cursor()  # a cursor of the process's read database, not a database of its own (~16 ms)
    try:
        counts = dict(con.execute(f"SELECT split, count(*) FROM ({source}) GROUP BY split").fetchall())
    except duckdb.Error:
        return None
    finally:
        con.close()
    return (source, counts) if counts else None


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def split_members(store, version: str | None = None, split: str = "all") -> tuple[str, dict[str, list[str]]]:
    """``(version, {split: sorted product ids})`` for one split or ``all`` splits of a version.

    Raises:
        ExportError: no splits at all, an unknown version, a split with no products, or a version
            or asked split that is not a plain name (``storage.names``: names become file names).
    """
    version, rows = version_rows(
        store, version, "SELECT split, product_id FROM splits WHERE version = ? ORDER BY split, product_id")
    members: dict[str, list[str]] = {}
    for name, pid in rows:
        members.setdefault(name, []).append(pid)
    members = pick_split(members, split, version)
    return version, {name: sorted(ids) for name, ids in sorted(members.items(), key=lambda kv: _split_order(kv[0]))}


def version_rows(store, version: str | None, sql: str) -> tuple[str, list[tuple]]:
    """``(version, rows)`` of ``sql`` (over ``splits``, the version its one parameter) for
    ``version`` or the current one; :class:`ExportError` for a store without splits, a version
    without rows (naming the versions there are) or a version that is not a plain name."""
    con = store.connect(need=("splits",), only=("splits",))
    try:
        version = version or current_version(store, con)
        rows = con.execute(sql, [version]).fetchall()
        versions = [] if rows else [r[0] for r in con.execute("SELECT DISTINCT version FROM splits ORDER BY 1").fetchall()]
    finally:
        con.close()
    if not rows:
        raise ExportError(f"no split version {shown(version)} in {store.root} (versions: {', '.join(versions) or 'none'})")
    plain_name("split version", version)
    return version, rows


def pick_split(found: dict, split: str, version: str) -> dict:
    """``found`` (split -> its members or count) cut to ``split`` (``all``: kept whole);
    :class:`ExportError` for a split that is not a plain name or not in the version."""
    if split == "all":
        return found
    plain_name("split", split)
    if split not in found:
        raise ExportError(f"split {split!r} is not in version {version!r} (splits: {', '.join(sorted(found))})")
    return {split: found[split]}


def plain_name(kind: str, name: str) -> str:
    """``name`` when it is a plain split/version name (it becomes part of file names), else ExportError."""
    try:
        return check_name(kind, name)
    except BadNameError as exc:
        raise ExportError(str(exc)) from None


def bad_split_names(members: dict[str, list[str]]) -> dict[str, str]:
    """``{split: why}`` for the splits of ``members`` whose names are not plain names (the export skips them)."""
    return {name: problem for name in members if (problem := name_problem(name)) is not None}


def _split_order(name: str) -> tuple[int, str]:
    return (SPLIT_NAMES.index(name) if name in SPLIT_NAMES else len(SPLIT_NAMES), name)


# ---------------------------------------------------------------------------------------------- samples


@dataclass
class Sample:
    """One product's export sample. Media are paths relative to the store root, None when missing."""

    product_id: str
    platform: str | None
    source_id: str | None
    title: str | None
    caption: str | None  # cleaned caption (extract), else the title
    specs: list[tuple[str, str]] = field(default_factory=list)
    class_id: int | None = None
    class_name: str | None = None
    sub_class_id: int | None = None
    sub_class_name: str | None = None
    subsub_class_id: int | None = None
    subsub_class_name: str | None = None
    group_id: str | None = None  # duplicate group (annotate dedup), when present
    image: str | None = None  # normalised main image (JPEG)
    frames: str | None = None  # folder of 000001.jpg ...
    mfcc: str | None = None  # .npy
    mp3: str | None = None
    video: str | None = None  # the original video (M5Product layout)
    # where it came from and what its owner states (docs/compliance.md): page_url, crawled_at (UTC,
    # ISO 8601), license, acquire_license_page, copyright_notice (None where the page states none),
    # image_web_statement, image_rights (the main image's XMP rights; None where it states none)
    provenance: dict = field(default_factory=dict)
    faces: dict = field(default_factory=dict)  # image/frames -> (size, {frame: boxes}): blurred in the export's copy
    blurred: int = 0  # faces blurred in what the export wrote of this sample
    codes: tuple = ()  # the main image's (size, QR boxes) (export/codes.py): blurred in the export's copy
    codes_blurred: int = 0  # QR codes blurred in what the export wrote of this sample

    @property
    def key(self) -> str:
        return safe_key(self.product_id)

    def modalities(self) -> list[str]:
        """Modalities present, in the papers' order (image, caption, table, video, audio)."""
        present = [("image", self.image), ("caption", self.caption), ("table", self.specs),
                   ("video", self.frames or self.video), ("audio", self.mfcc or self.mp3)]
        return [name for name, value in present if value]

    def meta(self, split: str) -> dict:
        """The sample's JSON record (WebDataset ``json``)."""
        out = {
            "product_id": self.product_id, "platform": self.platform, "source_id": self.source_id,
            "title": self.title, "specs": [[p, v] for p, v in self.specs],
            "class_id": self.class_id, "class_name": self.class_name,
            "sub_class_id": self.sub_class_id, "sub_class_name": self.sub_class_name,
            "subsub_class_id": self.subsub_class_id, "subsub_class_name": self.subsub_class_name,
            "split": split, "modalities": self.modalities(),
        }
        if self.group_id is not None:
            out["group_id"] = self.group_id
        out["provenance"] = self.provenance
        return out


PROVENANCE = ("page_url", "crawled_at", "license", "acquire_license_page", "copyright_notice",  # Sample.provenance
              "image_web_statement", "image_rights")
