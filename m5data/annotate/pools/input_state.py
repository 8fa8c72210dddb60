"""The input state of a pools run: how a re-run knows, without reading the catalog, that nothing changed.

A store's parts are immutable files with unique names, so the names and sizes of the parts of the
tables pools reads (products, captions, media; splits with a split version), the settings it uses
(``[pools]`` and ``annotate.seed``, and ``[text]`` for the captions it makes from titles), the files settings name
(the jieba user dictionary, a local text model), the folders of the image files it read (a
folder's mtime changes when a file in it is added, removed or replaced), the code versions of the
vectors and, after the run, the ``pools`` table's parts and the run's block markers name one state.
A complete full run keeps that state with its report in the run's own state (``input_state`` of
``derived/state/pools.json``, written last by the contract's ``run.complete``; an incremental run's
state holds none); a later run that finds the same state returns the saved report at once (the
catalog read, the vectors and the query sample cost tens of seconds at 1M products). Anything
else (a new, deleted or compacted part, another setting, a lost image, a pools part rewritten, a
block marker removed, an unreadable file) is not the same state and the full run goes on.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path, PurePosixPath

import pyarrow as pa

from ... import __version__
from ... import config as cfg
from ...storage.location import local_folder
from ..kernels import embed
from .vectors import VERSION as VECTORS_VERSION

LEGACY_FILE = "inputs.json"  # where an older m5data kept this state, beside the run's (a full run removes it)
FORMAT = "pools-inputs-v1"
MODEL_FILES = 10_000  # files of a local text model folder stated at most (more: never up to date)
REPORTED = ("embedder", "n_products", "n_queries", "n_gallery", "n_blocks", "from_titles", "fingerprint")


def _plain(value):
    """``value`` as JSON gives it back (tuples as lists, keys as strings): saved and fresh states compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _stat(path: str | os.PathLike) -> list[int] | None:
    """[size, mtime_ns] of a file or folder, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _never() -> str:
    """A value no later snapshot repeats: what cannot be stated cheaply is never up to date."""
    return os.urandom(8).hex()


def part_name(part) -> str:
    """The file name of a part (a Path, or an object's URL on object storage)."""
    return PurePosixPath(str(part)).name if isinstance(part, str) else part.name


def parts_listing(store, table: str) -> list[list]:
    """[name, size] of each part of ``table`` (size -1: removed while listed, e.g. by a compaction; 0 on
    object storage, where a live part is the log's and an object never changes under its name)."""
    out = []
    for p in store.parts(table):
        st = _stat(p) if isinstance(p, Path) else [0]
        out.append([part_name(p), st[0] if st else -1])
    return out


def _setting_files(settings: cfg.Settings) -> dict:
    """The files that settings name and whose content the pools depend on."""
    files = {}
    if settings.text.jieba_user_dict:
        files["jieba_user_dict"] = _stat(settings.text.jieba_user_dict)
    model = settings.pools.text_model
    if model:
        found = {}
        try:
            for n, f in enumerate(sorted(Path(model).rglob("*")) if Path(model).is_dir() else []):
                if n >= MODEL_FILES:
                    found["(too many files)"] = _never()
                    break
                found[str(f.relative_to(model))] = _stat(f)
        except OSError:  # an unreadable folder: the run itself will say what is wrong with it
            found = {"(unreadable)": _never()}
        files["pool_text_model"] = {"folder": _stat(model), "files": found}
    return files


def snapshot(store, settings: cfg.Settings, split_version: str | None, code: str) -> dict:
    """The state of what a pools run reads, taken before it reads anything (a part written after
    this is seen by the next run as a change, whether or not this run read it)."""
    sections = cfg.as_dict(settings)
    tables = ["products", "captions", "media"] + (["splits"] if split_version else []) \
        + (["image_vectors"] if settings.pools.image == "vectors" else [])  # its parts: the vectors pools read
    return _plain({
        "format": FORMAT, "code": [__version__, code, VECTORS_VERSION, embed.IMAGE_DESCRIPTOR_VERSION],
        "split_version": split_version,
        "settings": {"annotate": sections["annotate"], "pools": sections["pools"], "text": sections["text"]},
        "files": _setting_files(settings),
        "tables": {t: parts_listing(store, t) for t in tables},
    })


def image_dirs(store_root: Path | str, blobs: pa.ChunkedArray) -> dict:
    """The mtime of each folder holding an image blob of the catalog (a few hundred folders:
    blobs are spread by the first two hex digits of their hash), None where there is none; none on
    object storage."""
    import pyarrow.compute as pc

    folder = local_folder(store_root)
    if folder is None:  # object storage: a blob is written once and never removed in place
        return {}
    return dir_mtimes(folder, pc.unique(pc.replace_substring_regex(blobs.drop_null(), r"/[^/]*$", "")).to_pylist())


def dir_mtimes(store_root: Path, dirs: list[str]) -> dict:
    """{folder: mtime_ns or None} of folders given relative to the store."""
    out = {}
    for d in sorted(dirs):
        if os.path.isabs(d) or ".." in Path(d).parts:
            out[d] = None  # never read (outside the store): a constant, changes nothing
            continue
        st = _stat(Path(store_root) / d)
        out[d] = st[1] if st else None
    return out


def _blocks(work: Path, fingerprint: str) -> list[str]:
    return sorted(p.name for p in (work / fingerprint).glob("block-*.done"))


def kept_state(store, work: Path, state: dict, fingerprint: str, report) -> dict:
    """What a complete full run keeps in its state (``run.complete(..., input_state=...)``): its input state,
    the pools parts and block markers it left, and what an up-to-date re-run reports of it (``report``: its
    ``PoolsReport``)."""
    full = _plain({**state, "fingerprint": fingerprint, "pools": parts_listing(store, "pools"),
                   "blocks": _blocks(work, fingerprint)})
    s = report.stats
    report = {**{k: getattr(report, k) for k in REPORTED}, "gaps": dict(report.gaps),
              "stats": {"n_in": s.n_in, "n_out": s.n_out, "failures": dict(s.failures)}}
    return {"state": full, "report": _plain(report)}


def saved_report(store, work: Path, saved: dict | None, state: dict) -> dict | None:
    """The report of the last complete full run (``saved``: the input state its run's state keeps) when the
    store is still in the state it left, else None."""
    if saved is None:
        return None
    try:
        old, report = saved["state"], saved["report"]
        if not {*REPORTED, "gaps"} <= set(report) or not {"n_in", "n_out", "failures"} <= set(report["stats"]):
            return None
        if any(old.get(k) != v for k, v in state.items()):
            return None
        if old["image_dirs"] != _plain(dir_mtimes(store.root, list(old["image_dirs"]))):
            return None
        if old["pools"] != parts_listing(store, "pools") or old["blocks"] != _blocks(work, old["fingerprint"]):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no state, or one this code cannot read: run
    return report


def restore(report, saved: dict) -> None:
    """Fill an up-to-date re-run's ``PoolsReport`` (and its stage counts) from the saved one: every block done."""
    for k in REPORTED:
        setattr(report, k, saved[k])
    report.gaps = Counter(saved["gaps"])
    report.n_resumed, report.vectors_reused, report.up_to_date = report.n_blocks, True, True
    s = report.stats
    s.n_in, s.n_out = saved["stats"]["n_in"], saved["stats"]["n_out"]
    for reason, n in saved["stats"]["failures"].items():
        s.fail(reason, n)
