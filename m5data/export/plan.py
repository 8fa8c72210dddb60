"""The export plan: which products each shard holds, cut the same way on every run of a store and
version (``export.shard_size`` products, or about ``export.shard_bytes`` bytes of media a shard),
and the plan record (``_export.json``) that says so, with a hash of every shard's products."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from .. import config as cfg
from .members import Members, member_batches
from .samples import plain_name

__all__ = ["Planned", "Shard", "ShardPlan", "format_options", "plan_export", "plan_file", "plan_keys", "plan_record",
           "origin", "plan_run", "plan_shards", "shard_samples"]


@dataclass(frozen=True)
class Shard:
    """One shard of one split: its position, the count of shards of its split and its products.

    A planned shard names its products by range (``size`` rows of its split, the last one ``last``);
    ``product_ids`` is filled only by :func:`plan_shards` (lists in memory, for small callers).
    """

    split: str
    index: int
    count: int
    product_ids: tuple[str, ...] = ()
    last: str = ""
    size: int = 0

    def __post_init__(self):  # every layout builds file names from the split: never one that leads elsewhere
        plain_name("split", self.split)


def plan_shards(members: dict[str, list[str]], shard_size: int, shard_bytes: int = 0,
                sizes: dict[str, int] | None = None) -> list[Shard]:
    """Cut each split's sorted ids into shards of ``shard_size`` products or about ``shard_bytes`` bytes.

    Args:
        members: split -> product ids.
        shard_size: products per shard (used when ``shard_bytes`` is 0).
        shard_bytes: estimated bytes per shard; a shard closes once it reaches this size.
        sizes: estimated bytes per product (needed with ``shard_bytes``).
    """
    shards: list[Shard] = []
    for split, ids in members.items():
        ids = sorted(ids)
        groups: list[list[str]] = []
        if shard_bytes:
            current: list[str] = []
            total = 0
            for pid in ids:
                current.append(pid)
                total += (sizes or {}).get(pid, 0) + 1024  # + headers and text
                if total >= shard_bytes:
                    groups.append(current)
                    current, total = [], 0
            if current:
                groups.append(current)
        else:
            groups = [ids[i:i + shard_size] for i in range(0, len(ids), shard_size)]
        shards += [Shard(split, i, len(groups), tuple(g)) for i, g in enumerate(groups)]
    return shards


class ShardPlan:
    """Cuts shards from the export-ordered stream of (split, product_id, bytes) and hashes the plan.

    The cut is :func:`plan_shards`'s (``shard_size`` products, or a shard closes once its estimated
    bytes reach ``shard_bytes``) and so is ``products_sha256``; only each shard's last id is kept.
    """

    def __init__(self, shard_size: int, shard_bytes: int = 0):
        self.shard_size, self.shard_bytes = shard_size, shard_bytes
        self.digest = hashlib.sha256()
        self.cut: list[tuple[str, int, int, str]] = []  # (split, index, size, last id)
        self.split: str | None = None
        self.index = -1
        self.n = self.total = 0
        self.last = ""

    def add(self, split: str, ids, sizes=None) -> None:
        """Add a run of ids of one split (``sizes``: their media bytes, with ``shard_bytes``)."""
        if split != self.split:
            self._close()
            self.split, self.index = split, -1
        for k, pid in enumerate(ids):
            if not self.n:
                self.index += 1
                self.digest.update(f"{split}\t{self.index}\t".encode())
            self.digest.update(pid.encode() + b"\n")
            self.n += 1
            self.last = pid
            if self.shard_bytes:
                self.total += (sizes[k] if sizes is not None else 0) + 1024  # + headers and text
                if self.total >= self.shard_bytes:
                    self._close()
            elif self.n >= self.shard_size:
                self._close()

    def _close(self) -> None:
        if self.n:
            self.cut.append((self.split, self.index, self.n, self.last))
            self.n = self.total = 0

    def shards(self) -> list[Shard]:
        self._close()
        count = Counter(split for split, *_ in self.cut)
        return [Shard(split, index, count[split], last=last, size=size) for split, index, size, last in self.cut]


def plan_export(store, members: Members, shard_size: int, shard_bytes: int = 0,
                kinds: tuple[str, ...] = (), keep: set | None = None, con=None) -> tuple[list[Shard], str]:
    """The shards of ``members`` and the plan's ``products_sha256``, from one stream of their ids
    (``keep``: only these ``(split, product_id)`` members, an incremental export's new shards; ``con``:
    a store connection to use, else one of its own)."""
    plan = ShardPlan(shard_size, shard_bytes)
    own = con is None
    con = store.connect(cursor=True) if own else con  # a cursor of the process's read database
    try:
        for batch in member_batches(con, members, kinds if shard_bytes else None):
            splits = batch.column(0).to_pylist()
            ids = batch.column(1).to_pylist()
            sizes = batch.column(2).to_pylist() if shard_bytes else None
            if keep is not None:
                picked = [k for k in range(len(ids)) if (splits[k], ids[k]) in keep]
                splits, ids = [splits[k] for k in picked], [ids[k] for k in picked]
                sizes = [sizes[k] for k in picked] if sizes is not None else None
            start = 0
            for k in range(1, len(ids) + 1):  # runs of one split (a batch may hold the end of one)
                if k == len(ids) or splits[k] != splits[start]:
                    plan.add(splits[start], ids[start:k], sizes[start:k] if sizes is not None else None)
                    start = k
    finally:
        if own:
            con.close()
    shards = plan.shards()
    return shards, plan.digest.hexdigest()


def plan_keys(keys: list[tuple[str, str]], shard_size: int) -> tuple[list[Shard], str]:
    """:func:`plan_export`'s shards and ``products_sha256`` for ``(split, product_id)`` keys already in
    export order, cut by ``shard_size`` (no store read: an incremental export's new shards)."""
    plan = ShardPlan(shard_size)
    start = 0
    for k in range(1, len(keys) + 1):  # runs of one split
        if k == len(keys) or keys[k][0] != keys[start][0]:
            plan.add(keys[start][0], [pid for _, pid in keys[start:k]])
            start = k
    shards = plan.shards()
    return shards, plan.digest.hexdigest()


def plan_record(fmt: str, version: str, shards: list[Shard], settings: cfg.Settings, digest: str | None = None) -> dict:
    if digest is None:  # shards from plan_shards, ids in memory
        hashed = hashlib.sha256()
        for sh in shards:
            hashed.update(f"{sh.split}\t{sh.index}\t".encode() + "\n".join(sh.product_ids).encode() + b"\n")
        digest = hashed.hexdigest()
    per_split = Counter()
    for sh in shards:
        per_split[sh.split] += sh.size or len(sh.product_ids)
    return {"format": fmt, "version": version, "shard_size": settings.export.shard_size,
            "shard_bytes": settings.export.shard_bytes, "splits": dict(per_split),
            "shards": {sp: sum(1 for sh in shards if sh.split == sp) for sp in per_split},
            "options": format_options(settings), "products_sha256": digest}


def format_options(settings: cfg.Settings) -> dict:
    """The export settings a format writes by (part of the plan: a change means another export)."""
    return {"mp3": settings.export.mp3, "video": settings.export.video, "blur_faces": settings.export.blur_faces,
            "blur_codes": settings.export.blur_codes,
            "mask_personal_data": settings.export.mask_personal_data}


def shard_samples(rows, shards: list[Shard]):
    """``(shard, samples)`` for each planned shard, cut from the ordered ``(split, id, sample)`` rows:
    a shard takes its split's rows up to its last id (a member missing from ``products`` has no sample)."""
    rows = iter(rows)
    row = next(rows, None)
    for sh in shards:
        ids, samples = [], []
        while row is not None and row[0] == sh.split and row[1] <= sh.last:
            ids.append(row[1])
            if row[2] is not None:
                samples.append(row[2])
            row = next(rows, None)
        yield Shard(sh.split, sh.index, sh.count, tuple(ids), sh.last, sh.size), samples


@dataclass
class Planned:
    """The shards one export writes, and what it takes over from the previous version's folder."""

    shards: list[Shard]
    digest: str
    inherited: list[dict]  # the previous version's shards taken over as they are (linked or copied in)
    kept: list[dict]  # previous shards copied without the samples that left them
    fresh_order: list  # the new and changed samples' keys, in export order

    @property
    def samples(self) -> int:
        """The samples of the export: in its new shards, the inherited ones and the kept copies."""
        return (sum(sh.size for sh in self.shards) + sum(st["nsamples"] for st in self.inherited)
                + sum(len(k["ids"]) for k in self.kept))


def plan_run(store, settings: cfg.Settings, mod, members: Members, delta, shared) -> Planned:
    """Cut the shards: every sample's (a full export), or only the new and changed ones (``delta``)."""
    e = settings.export
    if delta is None:  # on the export's connection where it has one (a connection of every view: 4.9 s at 100k)
        shards, digest = plan_export(store, members, e.shard_size, e.shard_bytes, mod.MEDIA_KINDS, con=shared)
        return Planned(shards, digest, [], [], [])
    if e.shard_bytes:  # cut by the media's bytes: read with the members
        shards, digest = plan_export(store, members, e.shard_size, e.shard_bytes, mod.MEDIA_KINDS,
                                     keep=delta.fresh, con=shared)
    else:  # cut by count: from the new and changed keys, in export order already
        shards, digest = plan_keys(delta.order, e.shard_size)
    shards, inherited, kept = carried(mod, delta, shards)
    return Planned(shards, digest, inherited, kept, delta.order)


def carried(mod, delta, shards: list[Shard]) -> tuple[list[Shard], list[dict], list[dict]]:
    """The new shards, and the previous shards this folder takes over (``inherited``: linked or copied
    as they are) or copies without the samples that left them (``kept``), each under a name of this
    folder (``mod.carried_name``). The carried shards of a split come first, in the previous version's
    order; a layout whose names hold a split's position and count (Parquet: ``-NNNNN-of-NNNNN``) numbers
    its new shards after them."""
    dirty = {st["path"]: ids for st, ids in delta.kept}
    taken = {st["path"] for st in delta.inherited}
    kept_or_taken = [st for st in delta.base_shards if st["path"] in dirty or st["path"] in taken]
    before, fresh = Counter(st["split"] for st in kept_or_taken), Counter(sh.split for sh in shards)
    position, kinds = Counter(), Counter()
    inherited: list[dict] = []
    kept: list[dict] = []
    for st in kept_or_taken:
        split, kind = st["split"], ("kept" if st["path"] in dirty else "inherited")
        name = mod.carried_name(split, kind, kinds[(split, kind)], position[split], before[split] + fresh[split])
        position[split] += 1
        kinds[(split, kind)] += 1
        if kind == "kept":
            kept.append({"from": st["path"], "name": name, "split": split, "ids": dirty[st["path"]],
                         "sha256": st.get("sha256")})
        else:
            inherited.append({**st, "from": st["path"], "name": name})
    if getattr(mod, "NAMES_BY_POSITION", False):
        shards = [Shard(sh.split, sh.index + before[sh.split], before[sh.split] + fresh[sh.split], sh.product_ids,
                        sh.last, sh.size) for sh in shards]
    return shards, inherited, kept


def origin(path: str) -> str:
    """A previous shard's path (``../<folder>/<file>``, as the new folder sees it) as ``<folder>/<file>``:
    what a taken-over shard's stats and the plan record (never a path out of the folder)."""
    return path[3:] if path.startswith("../") else path


def plan_file(fmt: str, version: str, settings: cfg.Settings, mod, base, planned: Planned) -> dict:
    """The plan written first into the output (``_export.json``)."""
    plan = plan_record(fmt, version, planned.shards, settings, planned.digest)
    if getattr(mod, "LAYOUT", None):  # a folder written in an older layout is refused, not resumed into a mix
        plan["layout"] = mod.LAYOUT
    if base is not None:
        plan["base"] = {"folder": base.name, "inherited": [[origin(st["from"]), st["name"]] for st in planned.inherited],
                        "kept": [[origin(k["from"]), k["name"], len(k["ids"])] for k in planned.kept]}
    return plan
