"""From merge decisions to the unified taxonomy: union-find groups, names, level 3 and stable ids.

* **Groups.** Every merged pair joins its two sub-classes (union-find, so merges are transitive).
  Pairs only exist inside one unified class, so a group never spans two classes.
* **Names.** A group whose members share one name keeps it. Otherwise the proposed name is the
  member name that covers the most products; ties go to the longer name, then to the name that
  sorts first. A reviewer's ``rename`` overrides it.
* **Level 3.** A platform whose breadcrumb goes one level deeper than the other's (水果 > 苹果 vs
  水果) keeps the coarse sub-class as level 2; the deeper names become its level-3 children
  (identical names from several platforms are one child). A path without a level-3 name, or a
  sub-class without children, gets ``subsub_class_id = 0``, MEP-3M's placeholder.
* **Stable ids.** Level-1 ids come from the mapping file. Level-2 and level-3 ids share one number
  space and are never reused for something else: a group keeps the id its members had in the
  previous ``label_map`` (the id most of them had; then the id of a previous level-2 label of the
  same class and name); a level-3 child keeps the id of the previous child of the same parent and
  name. Everything new is numbered after the largest id ever stored, level 2 first, each in sorted
  order. On a first run this gives MEP-3M's layout: level-2 ids 1..N, level-3 ids N+1...
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .inventory import Inventory, SubClass
from .mapping import Level1Mapping


class UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is its smallest member (deterministic)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


@dataclass
class Group:
    """A unified level-2 label: the platform sub-classes merged into it."""

    class_id: int
    members: list[int]
    name: str
    method: str  # own, identical, merged, review
    sub_id: int = 0
    children: dict[str, int] = field(default_factory=dict)  # level-3 name -> subsub id


def propose_name(members: list[SubClass]) -> str:
    """The group name rule: most products, then longer, then first in code-point order."""
    weight: Counter = Counter()
    for sub in members:
        weight[sub.name] += sub.n_products
    return min(weight, key=lambda n: (-weight[n], -len(n), n))


def build_groups(subclasses: list[SubClass], merges: list[tuple[int, int]], reviewed: set[int],
                 renames: dict[int, str]) -> tuple[list[Group], dict[int, int]]:
    """Groups of the mapped sub-classes and the group index of each sub-class index.

    Args:
        merges: index pairs to join.
        reviewed: sub-class indices touched by a review override (their group's method is ``review``).
        renames: sub-class index -> reviewer's name for the group it ends up in.
    """
    uf = UnionFind(len(subclasses))
    for a, b in merges:
        if subclasses[a].class_id != subclasses[b].class_id:
            raise ValueError(f"refusing to merge across level-1 classes: {subclasses[a].key} / {subclasses[b].key}")
        uf.union(a, b)
    members: dict[int, list[int]] = {}
    for i, sub in enumerate(subclasses):
        if sub.class_id is not None:
            members.setdefault(uf.find(i), []).append(i)
    groups: list[Group] = []
    of: dict[int, int] = {}
    for root in sorted(members):
        idx = members[root]
        subs = [subclasses[i] for i in idx]
        names = {s.name for s in subs}
        if any(i in reviewed for i in idx):
            method = "review"
        elif len(idx) == 1:
            method = "own"
        else:
            method = "identical" if len(names) == 1 else "merged"
        name = next((renames[i] for i in idx if i in renames), None) or propose_name(subs)
        for i in idx:
            of[i] = len(groups)
        groups.append(Group(subs[0].class_id, idx, name, method))
    return groups, of


@dataclass
class PreviousIds:
    """Ids of the previous alignment, read from the store (empty on a first run)."""

    members: dict[tuple[str, str, str], int] = field(default_factory=dict)  # raw sub-class -> sub id
    sub_names: dict[tuple[int, str], int] = field(default_factory=dict)  # (class id, name) -> sub id
    subsub: dict[tuple[int, str], int] = field(default_factory=dict)  # (sub id, name) -> subsub id
    max_id: int = 0

    @classmethod
    def from_store(cls, store) -> PreviousIds:
        prev = cls()
        for row in store.read("taxonomy").to_pylist():
            if row["level"] == 2:
                prev.sub_names.setdefault((row["class_id"], row["name"]), row["label_id"])
            elif row["level"] == 3:
                prev.subsub[(row["parent_id"], row["name"])] = row["label_id"]
            if row["level"] in (2, 3):
                prev.max_id = max(prev.max_id, row["label_id"])
        for row in store.read("label_map", where="sub_class_id IS NOT NULL").to_pylist():
            prev.members[(row["platform"], row["raw_level1"], row["raw_level2"])] = row["sub_class_id"]
            prev.max_id = max(prev.max_id, row["sub_class_id"], row["subsub_class_id"] or 0)
        return prev


def assign_ids(groups: list[Group], subclasses: list[SubClass], previous: PreviousIds) -> None:
    """Give every group its level-2 id and every child its level-3 id (see the module docstring)."""
    order = sorted(range(len(groups)), key=lambda g: (groups[g].class_id, groups[g].name,
                                                      [subclasses[i].key for i in groups[g].members]))
    used: set[int] = set()
    claims = []  # (-votes, position in order, id, group)
    for pos, g in enumerate(order):
        votes = Counter(previous.members[subclasses[i].key] for i in groups[g].members
                        if subclasses[i].key in previous.members)
        claims.extend((-n, pos, sid, g) for sid, n in votes.items())
    for _, _, sid, g in sorted(claims):
        if not groups[g].sub_id and sid not in used:
            groups[g].sub_id = sid
            used.add(sid)
    for g in order:
        sid = previous.sub_names.get((groups[g].class_id, groups[g].name))
        if not groups[g].sub_id and sid is not None and sid not in used:
            groups[g].sub_id = sid
            used.add(sid)
    next_id = max([previous.max_id, *used, 0]) + 1
    for g in order:
        if not groups[g].sub_id:
            groups[g].sub_id = next_id
            next_id += 1
    for g in order:
        names = sorted({c for i in groups[g].members for c in subclasses[i].children})
        for name in names:
            sid = previous.subsub.get((groups[g].sub_id, name))
            groups[g].children[name] = sid if sid is not None and sid not in used else 0
            used.add(groups[g].children[name])
    next_id = max([next_id - 1, *used]) + 1
    for g in order:
        for name in sorted(groups[g].children):
            if not groups[g].children[name]:
                groups[g].children[name] = next_id
                next_id += 1


def taxonomy_rows(mapping: Level1Mapping, groups: list[Group]) -> list[dict]:
    """Rows of the ``taxonomy`` table: every class, sub-class and subsub-class."""
    # Ids of the levels below a row are 0 ("none at that level"), as docs/store.md describes.
    rows = [{"level": 1, "label_id": cid, "name": name, "parent_id": None, "class_id": cid,
             "sub_class_id": 0, "subsub_class_id": 0} for cid, name in sorted(mapping.classes.items())]
    for g in sorted(groups, key=lambda g: g.sub_id):
        rows.append({"level": 2, "label_id": g.sub_id, "name": g.name, "parent_id": g.class_id,
                     "class_id": g.class_id, "sub_class_id": g.sub_id, "subsub_class_id": 0})
    for g in sorted(groups, key=lambda g: g.sub_id):
        for name, cid in sorted(g.children.items(), key=lambda kv: kv[1]):
            rows.append({"level": 3, "label_id": cid, "name": name, "parent_id": g.sub_id, "class_id": g.class_id,
                         "sub_class_id": g.sub_id, "subsub_class_id": cid})
    return rows


def label_map_rows(inventory: Inventory, mapping: Level1Mapping, groups: list[Group],
                   group_of: dict[int, int]) -> list[dict]:
    """Rows of the ``label_map`` table: every raw path with its unified ids and how it got them."""
    index = inventory.index()
    rows = []
    for p in inventory.paths:
        row = {"platform": p.platform, "raw_path": p.raw_path, "raw_level1": p.level1 or None,
               "raw_level2": p.level2 or None, "raw_level3": p.level3 or None,
               "class_id": None, "sub_class_id": None, "subsub_class_id": None}
        i = index.get((p.platform, p.level1, p.level2))
        if not p.level1:
            row["method"] = "empty"
        elif not p.level2:
            row["method"] = "level1"
            row["class_id"] = mapping.class_of(p.platform, p.level1)
            if row["class_id"] is None:
                row["method"] = "unmapped"
        elif i is None or i not in group_of:
            row["method"] = "unmapped"
        else:
            g = groups[group_of[i]]
            row.update(class_id=g.class_id, sub_class_id=g.sub_id,
                       subsub_class_id=g.children[p.level3] if p.level3 else 0, method=g.method)
        rows.append(row)
    return rows

