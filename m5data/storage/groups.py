"""Rewriting several tables as one (align's taxonomy and label_map): all of them land, or none.

On a folder store the new parts of every table are written into a hidden folder of the store
(``.tmp-<pid>-<hex>.group``: a killed writer's goes with its other temp files), with ``intent.json``
naming each table's parts to remove and to add. Renaming that folder to ``groups/<id>`` is the
commit: from then on the rewrite is finished by whoever gets there first. Each table's parts are
moved in and its old ones removed (idempotent: a step already done is skipped), then the folder goes.
A writer killed after the commit leaves the folder; the next process that opens the store finishes
it (:meth:`GroupRewrites.finish_groups`, under the tables' locks), and ``doctor`` reports one it
cannot finish. The object store's way (the first table's log entry carries the group) is ``s3groups.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

from . import keyindex
from .errors import StoreBusy
from .parts import PART_GLOB, OpenWrite, conform, fsync_dir
from .schema import table_spec
from .temps import TMP_PREFIX, temp_name

GROUPS = "groups"  # <root>/groups/<id>/{intent.json, <table>/part-*.parquet}
INTENT = "intent.json"
FINISH_WAIT = 30.0  # seconds a process opening the store waits for a group's locks (its writer applying it)


class GroupRewrites:
    """The :class:`~m5data.storage.store.Store` methods that rewrite several tables as one."""

    def replace_tables(self, tables: dict) -> dict[str, int]:
        """Make each ``tables[name]`` (rows, an Arrow table or a RecordBatchReader) the whole content of
        its table, all tables or none (a writer killed half way leaves a rewrite the next opener finishes);
        returns the rows written per table."""
        from .writing import StreamingWriter

        names = sorted(table_spec(n).name for n in tables)
        with contextlib.ExitStack() as held:
            for name in names:  # sorted: two group writers never wait on each other in a cycle
                held.enter_context(self.table_lock(name, f"replace {', '.join(names)}"))
            self._finish_groups_held(names)
            staging = self.folder / temp_name(".group", prefix=TMP_PREFIX)
            markers = [OpenWrite(self.table_dir(n)) for n in names]  # readers of changes wait (parts.py)
            try:
                intent, rows = {"tables": {}}, {}
                for name in names:
                    spec = table_spec(name)
                    (staging / name).mkdir(parents=True)
                    stream = StreamingWriter(self, spec, directory=staging / name)
                    data = tables[name]
                    for batch in (data if hasattr(data, "read_next_batch") else [conform(spec, data)]):
                        stream.write(batch)
                    if not stream.rows:
                        stream.write(spec.schema.empty_table())
                    stream.close()
                    rows[name] = stream.rows
                    intent["tables"][name] = {"remove": [p.name for p in self.parts(name)],
                                              "add": sorted(p.name for p in stream._done)}
                (staging / INTENT).write_text(json.dumps(intent, sort_keys=True))
                fsync_dir(staging)
                (self.folder / GROUPS).mkdir(exist_ok=True)
                committed = self.folder / GROUPS / uuid.uuid4().hex
                os.replace(staging, committed)  # the commit: from here the rewrite is finished by someone
                fsync_dir(committed.parent)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            finally:
                for marker in markers:
                    marker.close()
            self._finish_group(committed)
        self.refresh_catalog(quiet=True)
        return rows

    def unfinished_groups(self) -> list[Path]:
        """The committed group rewrites not yet applied (a writer killed while applying one)."""
        folder = self.folder / GROUPS
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def finish_groups(self, wait: float = FINISH_WAIT) -> int:
        """Apply the group rewrites a killed writer committed and left (under the locks of their tables);
        returns how many. Left for later when their locks stay taken for ``wait`` seconds."""
        done = 0
        for group in self.unfinished_groups():
            try:
                names = sorted(json.loads((group / INTENT).read_text())["tables"])
            except (OSError, ValueError, KeyError):
                continue  # finished (removed) meanwhile by another process
            try:
                with contextlib.ExitStack() as held:
                    for name in names:
                        held.enter_context(self.table_lock(name, "finish a group rewrite", wait))
                    if group.is_dir():
                        self._finish_group(group)
                        done += 1
            except StoreBusy:
                continue
        if done:
            self.refresh_catalog(quiet=True)
        return done

    def _finish_groups_held(self, names: list[str]) -> None:
        """Under the table locks ``names`` of a group writer: apply what an earlier one left on those tables."""
        for group in self.unfinished_groups():
            try:
                if set(json.loads((group / INTENT).read_text())["tables"]) <= set(names):
                    self._finish_group(group)
            except (OSError, ValueError, KeyError):
                continue

    def _finish_group(self, group: Path) -> None:
        """Apply a committed group (its tables' locks held): move each table's parts in, remove the old ones."""
        intent = json.loads((group / INTENT).read_text())
        for name, change in sorted(intent["tables"].items()):
            directory = self.table_dir(name)
            for part in sorted((group / name).glob(PART_GLOB)):
                side = keyindex.sidecar_path(part)
                if side.is_file():
                    keyindex.sidecar_path(directory / part.name).parent.mkdir(exist_ok=True)
                    os.replace(side, keyindex.sidecar_path(directory / part.name))
                os.replace(part, directory / part.name)
            fsync_dir(directory)
            self._swap_parts(name, [directory / p for p in change["remove"]], [directory / p for p in change["add"]])
        shutil.rmtree(group)
