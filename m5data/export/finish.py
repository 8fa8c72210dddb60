"""The export's last step: the layout's index files and the export's card (``README.md``,
``croissant.json``), and an incremental format's samples' index (``sample_index.py``),
written into the output folder, or into a staging folder and uploaded (a remote ``--out``)."""

from __future__ import annotations

from pathlib import Path

from .members import Members
from .remote import FINISH_READS_SHARD_FILES, RemoteOut
from .sample_index import write_index_files


def finish(mod, fmt: str, out, remote: RemoteOut | None, staging: Path | None, store, version: str, members: Members,
           ordered: list[dict], options: dict, *, index, labels) -> None:
    """Write the layout's index files and (an incremental format's) the samples' index, into the folder or
    staged and uploaded."""
    if remote:
        _finish_remote(mod, fmt, remote, staging, store, version, members, ordered, options)
        if index is not None:
            folder = staging / "_index"
            folder.mkdir()
            for name in write_index_files(folder, ordered, index, labels):
                remote.put(folder / name, name)
    else:
        _card(mod, fmt, out, store, version, members, ordered, options)  # first: a layout's finish may list it (M5Product)
        mod.finish(store, out, version, members, ordered, options)
        if index is not None:
            write_index_files(out, ordered, index, labels)


def _finish_remote(mod, fmt: str, remote: RemoteOut, staging: Path, store, version: str, members: Members,
                   ordered: list[dict], options: dict) -> None:
    """Write the layout's index files and card into staging (fetching the shard files ``finish`` reads)
    and upload them."""
    folder = staging / "_finish"
    folder.mkdir()
    fetched = [st["path"] for st in ordered] if fmt in FINISH_READS_SHARD_FILES else []
    remote.fetch(fetched, folder)
    _card(mod, fmt, folder, store, version, members, ordered, options)
    mod.finish(store, folder, version, members, ordered, options)
    remote.upload_folder(folder, skip=set(fetched))


def _card(mod, fmt: str, folder: Path, store, version: str, members: Members, ordered: list[dict],
          options: dict) -> None:
    """The export's ``README.md`` and ``croissant.json`` (card.py), with the layout's own card part; the
    licence strings it quotes pass the egress gate's masking (``export.mask_personal_data``)."""
    from . import card

    meta, usage = mod.card_parts(ordered) if hasattr(mod, "card_parts") else ({}, "")
    facts = card.card_facts(store, fmt, version, members, ordered, mask=options.get("mask_personal_data", True))
    card.write(folder, facts, meta, usage)
