"""An ``.npz`` whose arrays are read in place: each ``.npy`` member stored (not compressed) with its
data aligned in the file (:func:`npz_bytes`), read back as views of the file's bytes or memory map
(:func:`read_views`), strings as UTF-8 bytes and offsets (:func:`pack_strings`). What ``np.savez``
writes and ``np.load`` reads, without their copies: dedup's kept inputs (:mod:`.kept_inputs`).
"""

from __future__ import annotations

import io
import mmap
import zipfile
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ALIGN = 64  # a kept array's data starts at a multiple of this in its file (read as a view, not copied)
_PAD = 0xD935  # the extra-field id of the local headers' padding (zipalign's)


def npz_bytes(arrays: dict) -> bytes:
    """``arrays`` as an ``.npz`` file's bytes, each member stored with its data aligned (:func:`_write_aligned`)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            _write_aligned(zf, f"{name}.npy", np.asanyarray(arr))
    return buf.getvalue()


def _write_aligned(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    """``arr`` as the ``.npy`` member ``name`` of ``zf`` (what ``np.savez`` writes, ``np.load`` reads it),
    its local header's extra field padded so that the array's data starts at a multiple of
    :data:`ALIGN` of the file (the npy header is a multiple of 64 bytes): :func:`read_views` reads it
    without a copy."""
    npy = io.BytesIO()
    np.lib.format.write_array(npy, arr, allow_pickle=False)
    data = npy.getvalue()
    header = len(data) - arr.nbytes  # the npy header (magic, dict, padding) before the array's bytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    start = zf.fp.tell() + 30 + len(name.encode()) + 4 + header
    info.extra = np.array([_PAD, (-start) % ALIGN], dtype="<u2").tobytes() + bytes((-start) % ALIGN)
    zf.writestr(info, data)


def read_views(data) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (``np.savez``'s: members stored, not compressed) as read-only views of
    ``data`` (bytes, or a folder store's memory map of the file: no copy of it either), not copies
    where their data is aligned (a base is ~800 MB at 1M products: ``np.load`` reads it through the
    zip module, checksums and copies it, ~1.3 s; the others are copied, a memcpy); a compressed member
    is read by ``np.load``'s way; one of objects is refused."""
    out = {}
    with zipfile.ZipFile(data if isinstance(data, mmap.mmap) else io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
                continue
            # the member's data follows its local header (30 bytes, then name and extra field)
            head = info.header_offset
            name_len, extra_len = np.frombuffer(data, dtype="<u2", count=2, offset=head + 26)
            start = head + 30 + int(name_len) + int(extra_len)
            # its checksum, as the zip module's read would check it (0.12 s for 800 MB): a damaged
            # file is not read, and the run rebuilds what it held
            if zlib.crc32(memoryview(data)[start:start + info.file_size]) != info.CRC:
                raise ValueError(f"{info.filename}: checksum mismatch")
            f = io.BytesIO(data[start:start + min(info.file_size, 65536)])
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError("object arrays are not read")
            count = int(np.prod(shape, dtype=np.int64))
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=start + f.tell())
            if not arr.flags.aligned:  # numba and Arrow want aligned data: a copy (memcpy, not a parse)
                arr = arr.copy()
            out[name] = arr.reshape(shape, order="F" if fortran else "C")
    return out


def pack_strings(name: str, arr: pa.Array | pa.ChunkedArray, out: dict) -> None:
    """``arr`` as three arrays of ``out``: ``<name>__off`` (int64 offsets from 0), ``<name>__data``
    (the UTF-8 bytes) and ``<name>__null``."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8) if len(arr) else \
        np.zeros(1, np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0]:offsets[-1]] if len(arr) and bufs[2] is not None else \
        np.zeros(0, np.uint8)
    out[f"{name}__off"] = offsets - offsets[0]
    out[f"{name}__data"] = data
    out[f"{name}__null"] = arr.is_null().to_numpy(zero_copy_only=False)


def unpack_strings(name: str, z: dict) -> pa.Array:
    """The string array :func:`pack_strings` wrote as ``name`` into ``z``."""
    offsets, data, null = z[f"{name}__off"], z[f"{name}__data"], z[f"{name}__null"]
    arr = pa.LargeStringArray.from_buffers(len(null), pa.py_buffer(np.ascontiguousarray(offsets)),
                                           pa.py_buffer(np.ascontiguousarray(data)))
    arr = arr.cast(pa.string())
    return pc.if_else(pa.array(null), pa.scalar(None, pa.string()), arr) if null.any() else arr
