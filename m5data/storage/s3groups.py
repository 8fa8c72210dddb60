"""Rewriting several tables as one on object storage (align's taxonomy and label_map): all or none.

The writer takes each table's lease, in name order; every lease but the first table's (the
*primary*'s) names the primary (``"group"``). It uploads every table's new parts, then commits the
primary's entry, which carries the whole group: for each other table, the parts it removes and adds
and the lease the writer holds on it. That entry is the commit. Each other table's own entry follows
and releases the lease. Until it lands the table is *pending*: its lease is still the one the
primary's group names, and

- a reader folds the pending change into what it reads (:func:`table_state`): from the moment the
  primary's entry lands, every reader sees the whole group;
- whoever next takes the table's lease (a later run, a compaction, ``doctor --repair``'s sweep)
  commits the pending change first (:func:`finish`): a writer killed or fenced half way never leaves
  the tables mixed, and its uploads are never garbage;
- ``doctor`` reports a pending change and ``--repair`` commits it.

The folder store's way is ``groups.py``.
"""

from __future__ import annotations

import contextlib
import uuid

import pyarrow as pa

from .errors import DamagedLog
from .logstate import TableState
from .parts import conform
from .s3parts import ObjectStream
from .schema import TABLES, table_spec


def replace_tables(store, tables: dict) -> dict[str, int]:
    """As :meth:`GroupRewrites.replace_tables` on a store on object storage (see the module)."""
    names = sorted(table_spec(n).name for n in tables)
    primary, others = names[0], names[1:]
    what = f"replace {', '.join(names)}"
    changes: dict[str, dict] = {}
    rows: dict[str, int] = {}
    with contextlib.ExitStack() as held:
        holders = {n: held.enter_context(store._leased(n, what, 600.0, group=None if n == primary else primary))
                   for n in names}
        streams = []
        try:
            for name in names:
                spec = table_spec(name)
                old = sorted(store.log(name).state().parts)
                stream = ObjectStream(store, spec)
                streams.append(stream)
                data = tables[name]
                for batch in (data if isinstance(data, pa.RecordBatchReader) else [conform(spec, data)]):
                    stream.write(batch)
                if not stream.rows:
                    stream.write(spec.schema.empty_table())
                changes[name] = {"remove": old, "add": stream.close(), "lease": holders[name]}
                rows[name] = stream.rows
            group = {"id": uuid.uuid4().hex, "tables": {n: changes[n] for n in others}}
            rewrite = store._rewrite_entry("replace", primary, set(changes[primary]["remove"]),
                                           changes[primary]["add"], holders[primary])
            store._commit(primary, lambda state: {**rewrite(state), "group": group})  # the commit
        except BaseException:
            for stream in streams:
                stream.abort()
            raise
        store._drop_parts(primary, changes[primary]["remove"])
        for name in others:
            store._commit(name, _finish_entry(name, group))
            store._drop_parts(name, changes[name]["remove"])
    return rows


def pending(store, name: str, state: TableState) -> dict | None:
    """The group whose change to table ``name`` is committed (in its primary's log) and not yet in
    ``name``'s own log, or None (no request unless ``name``'s lease names a primary)."""
    lease = state.lease
    if not lease or lease.get("group") not in TABLES:
        return None
    try:
        group = store.log(lease["group"]).state().group
    except DamagedLog:  # the primary's log cannot be read: the table reads as its own log says
        return None
    change = (group or {}).get("tables", {}).get(name)
    return group if change and change["lease"] == lease.get("holder") else None


def table_state(store, name: str) -> TableState:
    """Table ``name`` as readers see it: its log's state with a pending group change folded in."""
    state = store.log(name).state()
    if (group := pending(store, name, state)) is None:
        return state
    change = group["tables"][name]
    for part in change["remove"]:
        state.parts.pop(part, None)
    for part in change["add"]:
        state.parts[part] = state.n + 1  # as the entry that finishes it will number them: newer than any row
    state.compacted = set(state.parts) == set(change["add"])
    return state


def finish(store, name: str) -> bool:
    """Commit table ``name``'s pending group change, if any (its writer was killed or fenced half
    way); True when this call committed it."""
    group = pending(store, name, store.log(name).state())
    if group is None:
        return False
    if store.log(name).commit(_finish_entry(name, group)) is None:
        return False  # another process finished it meanwhile
    store._drop_parts(name, group["tables"][name]["remove"])
    return True


def settle(store, name: str, state: TableState) -> None:
    """Before a lease is taken on table ``name`` (whose log is at ``state``): commit its own pending
    change (its run-out lease names a group) and those of the group its last replace made (a rewrite
    of the primary alone would drop the group that readers complete the others from)."""
    if pending(store, name, state) is not None:
        finish(store, name)
    for other in sorted((state.group or {}).get("tables", {})):
        finish(store, other)


def _finish_entry(name: str, group: dict):
    change = group["tables"][name]

    def make(state: TableState) -> dict | None:
        if not state.lease or state.lease.get("holder") != change["lease"]:
            return None  # finished already (its entry released the lease)
        return {"kind": "replace", "remove": sorted(set(change["remove"]) & set(state.parts)), "add": change["add"],
                "release": change["lease"], "group_id": group["id"]}
    return make
