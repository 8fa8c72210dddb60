"""Local folders whose files become objects of a store on object storage, for code that works on files by
path (the stages' needs beside their leases, which are ``s3stages.py``).

Files a stage writes as a folder (crawl's ``logs/crawl/<run>/``, ``derived/align/review.csv`` ...) are
written into a local temp folder (under ``TMPDIR``) and uploaded below the same key when the stage
leaves it (:func:`staged_folder`): a reader never sees half a file. A folder a stage keeps and reads
again (pools' vectors and checkpoints) is copied into a local temp folder first and written back
when the stage leaves it: new and changed files uploaded, removed ones deleted (:func:`kept_folder`).
A block that fails (an error, a refused commit, a lost lease) uploads and deletes nothing: a fenced
run never writes its leftovers over the files of the run that took its place (only the files it
pushed while it ran, and a ``partial`` staged folder: a run's own log, are kept).
Files that code opens by path (Pillow's images) are copied into a temp folder for as long as they are
read (:func:`local_files`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from .files import KeptFolder
from .s3fence import delete_unchanged, etags, put_unchanged
from .temps import scratch_dir


@contextlib.contextmanager
def staged_folder(objects, rel: str, partial: bool = False, fence: Callable[[], None] | None = None) -> Iterator[Path]:
    """A local temp folder whose files are uploaded below ``rel`` when the block ends well; a block
    that fails uploads nothing, unless ``partial`` (a failed crawl's log is what explains it). The
    folder is removed. ``fence``: called before the uploads of a block that ended well (the store's
    lease check: a run whose stage lease was taken over uploads nothing, LeaseLost)."""
    local = scratch_dir("staged")
    ended = False
    # what is there before the fence's check: a fenced upload is conditional on it (s3fence.put_unchanged)
    seen = {} if fence is None else etags(objects, rel.strip("/") + "/")
    try:
        yield local
        if fence is not None:
            fence()
        ended = True
    finally:
        try:
            for path in sorted(p for p in local.rglob("*") if p.is_file()) if ended or partial else ():
                key = f"{rel.strip('/')}/{path.relative_to(local).as_posix()}"
                if fence is None:
                    objects.put(key, path.read_bytes())
                else:
                    put_unchanged(objects, key, path.read_bytes(), seen.get(key, (0, None))[1])
        finally:
            shutil.rmtree(local, ignore_errors=True)


SMALL_OBJECT = 8 << 20  # a kept file up to this size goes in one GET / PUT; a larger one is streamed


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _kept_files(local: Path) -> list[Path]:
    """The files of a kept folder, temp files and other dot-names left out (never uploaded)."""
    return sorted(p for p in local.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(local).parts))


@contextlib.contextmanager
def kept_folder(objects, rel: str, lazy: tuple[str, ...] = (), fence: Callable[[], None] | None = None
                ) -> Iterator[KeptFolder]:
    """A local temp folder holding the objects below ``rel`` (those whose names match a ``lazy``
    pattern only once fetched); when the block ends well its new and changed files are uploaded and
    the objects of the files removed from it are deleted. A block that fails uploads and deletes
    nothing: what it pushed (``KeptFolder.push``: a checkpoint's block markers, which let a killed
    run's next one resume) is all it leaves. The folder is removed. ``fence``: called before each push
    and before the block's uploads and deletes (a run whose lease was taken over writes nothing more)."""
    local = scratch_dir("kept")
    prefix = rel.strip("/") + "/"
    synced: dict[Path, tuple[int, int]] = {}
    remote: dict[str, int] = {}  # lazy objects not fetched: name below rel -> size
    seen: dict[str, str] = {}  # key -> the ETag this run listed or wrote (a fenced write's condition)
    gone: set[str] = set()  # lazy objects removed without being fetched

    def key(path: Path) -> str:
        return prefix + path.relative_to(local).as_posix()

    def upload(path: Path) -> None:
        if fence is not None:
            fence()
        sig = _signature(path)
        if sig[0] <= SMALL_OBJECT:  # fenced: only over what this run listed or last wrote (s3fence.put_unchanged)
            seen[key(path)] = put_unchanged(objects, key(path), path.read_bytes(), seen.get(key(path)))
        else:  # large files (pools' vectors) are named by their content's inputs: another run's is the same
            with objects.explained(key(path)):
                objects.fs.put_file(str(path), objects.path(key(path)))  # multipart: whole or not at all
        synced[path] = sig

    def download(name: str, size: int) -> None:
        dest = local / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if size <= SMALL_OBJECT:
            found = objects.get(prefix + name)
            if found is None:
                return
            dest.write_bytes(found[0])
        else:
            with objects.explained(prefix + name):
                objects.fs.get_file(objects.path(prefix + name), str(dest))
        synced[dest] = _signature(dest)

    def fetch(name: str) -> None:
        if name in remote:
            download(name, remote.pop(name))

    def forget(name: str) -> None:
        if remote.pop(name, None) is not None:
            gone.add(prefix + name)

    try:
        found = etags(objects, prefix)
        seen.update({k: etag for k, (_, etag) in found.items()})
        listed = {k[len(prefix):]: size for k, (size, _) in found.items()}
        remote.update({n: size for n, size in listed.items() if any(fnmatch.fnmatchcase(n, p) for p in lazy)})
        small = sorted(prefix + n for n, size in listed.items() if n not in remote and size <= SMALL_OBJECT)
        for k, data in objects.get_many(small).items():
            (local / k[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
            (local / k[len(prefix):]).write_bytes(data)
        synced.update({p: _signature(p) for p in _kept_files(local)})
        for n, size in listed.items():
            if n not in remote and size > SMALL_OBJECT:
                download(n, size)
        yield KeptFolder(local, push=upload, fetch=fetch, remote=lambda: sorted(remote), forget=forget)
        for path in _kept_files(local):
            if synced.get(path) != _signature(path):
                upload(path)
        removed = sorted(gone | {key(p) for p in synced if not p.exists()})
        if removed and fence is not None:
            fence()
        for rel_key in removed:  # each only if it is still what this run listed or wrote
            if rel_key in seen:
                delete_unchanged(objects, rel_key, seen[rel_key])
            else:
                objects.delete([rel_key])
    finally:
        shutil.rmtree(local, ignore_errors=True)


@contextlib.contextmanager
def local_files(blobs, rels) -> Iterator[Path]:
    """A temp folder laid out as the store holding copies of the blobs and derived files ``rels``
    (a path leading out of the blob areas, or a missing object, is left out); removed at the end."""
    local = scratch_dir("files")
    try:
        blobs.mirror(rels, local)
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)
