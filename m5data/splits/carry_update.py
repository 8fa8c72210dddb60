"""``v1``'s carry brought to the store now: every product's label, duplicate group and modalities from
the carry and the rows written since (:func:`read_changes`), the products to place again, and the next
version's rows, figures and carry read off the arrays once they are placed (``incremental.build_next``
drives it; ``place.py`` places them)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import arrays
from .. import config as cfg
from ..storage.main_image import is_main_image
from .carry import ABSENT, FLAGS, SUBSET, lkey_of
from .manifest import MODALITIES
from .place import Products, digest, level_key
from .plan import EXCLUSIVE, SPLITS


def read_changes(store, since: dict, moved: dict, products: pa.Table) -> dict:
    """The rows written since ``since`` that a placement or a figure reads (tables not written since: none)."""
    def changed(table, columns=()):  # which groups, not whether each is new (no lookup in the older parts)
        return store.changed(table, int(since.get(table, 0)), columns, new=False) if moved.get(table, True) else None

    return {"products": products, "dedup": changed("dedup", ("group_id",)),
            "media": changed("media", ("product_id", "kind", "role", "status")),
            "captions": changed("captions", ("text", "status")), "specs": changed("specs")}


class CarryUpdate:
    """Every product id of ``v1``'s carry and of the rows changed since, as arrays, updated to the store now.

    Positions index the carry's rows, then the ids new since; ``code`` and ``cat3`` are the carry's
    until :meth:`settle`; ``lk`` / ``dg`` index the label keys (``lkeys``, a list) and group ids
    (``group_ids``, an Arrow array) of the carry and the changed rows.
    """

    def __init__(self, carry: pa.Table, changes: dict):
        self.changes = changes
        ids = carry.column("product_id").combine_chunks()
        touched = [t.column(c).combine_chunks() for t, c in (
            (changes["products"], "product_id"), (changes["dedup"], "product_id"), (changes["media"], "product_id"),
            (changes["captions"], "product_id"), (changes["specs"], "product_id")) if t is not None and len(t)]
        chg = pc.unique(pa.concat_arrays(touched).drop_null()) if touched else pa.array([], pa.string())
        at = pc.index_in(chg, value_set=ids).fill_null(-1).to_numpy().astype(np.int64)
        new = np.flatnonzero(at < 0)
        at[new] = len(ids) + np.arange(len(new))
        self.ids = pa.concat_arrays([ids, chg.take(pa.array(new, pa.int64()))]) if len(new) else ids
        self.pos = dict(zip(chg.to_pylist(), at.tolist()))
        extra = len(new)

        def grow(a, fill):
            return np.concatenate([a, np.full(extra, fill, a.dtype)])

        self.old_code = grow(carry.column("code").to_numpy().astype(np.int8), ABSENT)
        self.old_cat3 = grow(carry.column("cat3").fill_null(-1).to_numpy().astype(np.int64), -1)
        self.old_flags = grow(carry.column("flags").to_numpy().astype(np.uint8), 0)
        self.flags_now = self.old_flags.copy()
        lk = carry.column("lkey").combine_chunks()
        self.lkeys = lk.dictionary.to_pylist()
        self.lk = grow(lk.indices.fill_null(-1).to_numpy().astype(np.int32), -1)
        dg = carry.column("dgid").combine_chunks()
        self.group_ids = dg.dictionary
        self.old_dg = grow(dg.indices.fill_null(-1).to_numpy().astype(np.int32), -1)
        self.dg = self.old_dg.copy()
        self.was_product = self.old_code != ABSENT
        self.is_product = self.was_product.copy()
        prods = changes["products"]
        self.changed_products = np.array([self.pos[p] for p in prods.column("product_id").to_pylist()], np.int64)
        self.is_product[self.changed_products] = True
        self.n_products = int(self.is_product.sum())
        self.relabelled = np.zeros(len(self.ids), bool)
        self.dedup_changed = np.zeros(0, np.int64)
        self.new_dedup_rows = 0

    def take_down(self, gone: pa.Array) -> None:
        """The taken-down and opted-out products (``gone``: ids, storage/withheld.py) are no products of the
        version, as a full build leaves them out; the groups they were in are placed again (:meth:`_find_affected`)."""
        at = pc.index_in(gone, value_set=self.ids).drop_null().to_numpy().astype(np.int64) if len(gone) else []
        self.is_product[at] = False
        self.n_products = int(self.is_product.sum())

    def ids_of(self, positions) -> list[str]:
        return self.ids.take(pa.array(np.asarray(positions, np.int64))).to_pylist()

    def labels(self, store, label_map_moved: bool) -> None:
        """Every product's label now: a re-written product's from its label key, every product's again
        when ``label_map`` was written since (align re-writes it whole); a relabelled product is affected."""
        index = {k: i for i, k in enumerate(self.lkeys)}
        prods = self.changes["products"]
        for p, platform, path in zip(self.changed_products.tolist(), prods.column("platform").to_pylist(),
                                     prods.column("category_path").to_pylist()):
            key = lkey_of(platform, path)
            if key not in index:
                index[key] = len(self.lkeys)
                self.lkeys.append(key)
            self.lk[p] = index[key]
        unknown = -2
        label = np.full(len(self.lkeys), unknown, np.int64)
        old = self.was_product & (self.lk >= 0)
        label[self.lk[old]] = self.old_cat3[old]
        if label_map_moved or bool(np.any(label[self.lk[self.changed_products]] == unknown)):
            rows = store.read("label_map", columns=["platform", "raw_path", "class_id", "sub_class_id", "subsub_class_id"])
            now = {f"{pl}\x1f{raw}": -1 if c is None else (c << 42) | ((sub or 0) << 21) | (subsub or 0)
                   for pl, raw, c, sub, subsub in zip(*(rows.column(i).to_pylist() for i in range(5)))
                   if pl is not None and raw is not None}
            label = np.array([now.get(k, -1) for k in self.lkeys], np.int64)
        self.cat3 = np.where(self.is_product & (self.lk >= 0), label[np.maximum(self.lk, 0)], -1)
        self.relabelled = self.was_product & (self.cat3 != self.old_cat3)

    def groups(self) -> None:
        """Every id's ``dedup.group_id`` now (the rows written since)."""
        d = self.changes["dedup"]
        if d is None or not len(d):
            return
        gids = d.column("group_id").combine_chunks()
        at = pc.index_in(gids, value_set=self.group_ids)
        fresh = pc.unique(gids.filter(pc.and_(at.is_null(), gids.is_valid())))
        if len(fresh):  # placed after the known ids (one search of the few fresh ones, not of every group id again)
            base = len(self.group_ids)
            self.group_ids = pa.concat_arrays([self.group_ids, fresh])
            at = pc.if_else(at.is_null(), pc.add(pc.index_in(gids, value_set=fresh).cast(pa.int64()), base),
                            at.cast(pa.int64()))
        self.dedup_changed = np.array([self.pos[p] for p in d.column("product_id").to_pylist()], np.int64)
        # a dedup row always has a group: an id without one in the carry had no row (rows are added or re-written;
        # dedup's whole-table rewrite lists every product and is placed whole by the stage)
        self.new_dedup_rows = int(np.count_nonzero(self.old_dg[self.dedup_changed] < 0))
        self.dg[self.dedup_changed] = at.fill_null(-1).to_numpy().astype(np.int32)

    def flags(self, store) -> None:
        """Every id's modalities now: the rows written since decide a modality they give; one they take
        away is read again from the product's rows (``carry.FLAGS``)."""
        f = self.flags_now
        c = self.changes["captions"]
        if c is not None and len(c):
            for p, text, status in zip(*(c.column(k).to_pylist() for k in ("product_id", "text", "status"))):
                has = status == "ok" and (text or "") != ""
                f[self.pos[p]] = (int(f[self.pos[p]]) & (0xFF ^ FLAGS["caption"])) | (FLAGS["caption"] if has else 0)
        sp = self.changes["specs"]
        if sp is not None and len(sp):
            f[[self.pos[p] for p in sp.column("product_id").to_pylist()]] |= FLAGS["table"]
        m = self.changes["media"]
        if m is None or not len(m):
            return
        media_bits = FLAGS["image"] | FLAGS["video"] | FLAGS["audio"]
        now: dict[int, int] = {}
        for p, kind, role, status in zip(*(m.column(k).to_pylist() for k in ("product_id", "kind", "role", "status"))):
            if p is not None:
                now[self.pos[p]] = now.get(self.pos[p], 0) | _media_bits(kind, role, status)
        again = [p for p, bits in now.items() if int(f[p]) & media_bits & ~bits]  # a modality it had may be gone
        for p, bits in now.items():
            f[p] = int(f[p]) | bits
        if again:
            ids = self.ids_of(again)
            quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
            rows = store.read("media", where=f"product_id IN ({quoted})", columns=["product_id", "kind", "role", "status"])
            full = dict.fromkeys(again, 0)
            for p, kind, role, status in zip(*(rows.column(i).to_pylist() for i in range(4))):
                full[self.pos[p]] |= _media_bits(kind, role, status)
            for p, bits in full.items():
                f[p] = (int(f[p]) & (0xFF ^ media_bits)) | bits

    def affected(self) -> np.ndarray:
        if getattr(self, "_affected", None) is None:
            self._affected = self._find_affected()
        return self._affected

    def _find_affected(self) -> np.ndarray:
        """Positions of the products to place again: new or re-written, relabelled, with a changed ``dedup``
        row, and every product of a group (then or now) one of those, or a product taken down since, is in."""
        seeds = self.relabelled.copy()
        seeds[self.changed_products] = True
        seeds[self.dedup_changed] = True
        seeds &= self.is_product
        gone = self.was_product & ~self.is_product  # taken down since: its group lost a product
        touched = np.concatenate([self.old_dg[seeds], self.dg[seeds], self.old_dg[gone], self.dg[gone]])
        mark = np.zeros(len(self.group_ids) + 1, bool)
        mark[touched[touched >= 0]] = True
        mark[-1] = False  # index -1: no group
        hit = seeds | mark[self.dg]  # a product in another group than before has a changed dedup row: a seed
        return np.flatnonzero(hit & self.is_product)

    def _grp(self) -> np.ndarray:
        """Every product's duplicate group (an index of ``group_ids``; -1 alone): two or more products."""
        member = self.is_product & (self.dg >= 0)
        counts = np.bincount(self.dg[member], minlength=len(self.group_ids) + 1)
        return np.where(member & (counts[np.maximum(self.dg, 0)] >= 2), self.dg, -1).astype(np.int32)

    def products(self):
        self.grp = self._grp()
        names = {int(g): self.group_ids[int(g)].as_py() for g in arrays.unique(self.grp[self.affected()]) if g >= 0}
        return Products(self.cat3, self.grp, names, self.old_code, self.old_cat3)

    def settle(self, placed, affected: np.ndarray) -> None:
        self.code = placed.code
        self.flags_now[affected] = (self.flags_now[affected] & np.uint8(0xFF ^ SUBSET)) | \
            np.where(placed.subset, SUBSET, 0).astype(np.uint8)

    def group_counts(self) -> tuple[int, int]:
        grouped = self.grp >= 0
        return int(arrays.unique(self.grp[grouped]).size), int(grouped.sum())

    def count(self, code: int) -> int:
        return int((self.is_product & (self.code == code)).sum())

    def moved(self) -> int:
        """Products of ``v1``'s splits now in another split (or in none, a taken-down one too)."""
        return int((self.was_product & (self.old_code >= 0) & ((self.code != self.old_code) | ~self.is_product)).sum())

    def _members(self, name: str, code: np.ndarray, flags: np.ndarray) -> np.ndarray:
        if name == "subset":
            return (code == 0) & ((flags & SUBSET) != 0)
        return code == EXCLUSIVE.index(name)

    def entries(self, settings: cfg.Settings, before: dict, digests: dict) -> dict:
        """The manifest's per-split figures: counted over the arrays; the checksums are ``v1``'s, less the
        digests of the products that left a split, plus those of the products that joined it."""
        seed = settings.splits.seed
        sums = {name: int(e["checksum"], 16) for name, e in before.items()}
        old_code = np.where(self.was_product, self.old_code, -1)
        new_code = np.where(self.is_product, self.code, -1)
        for name in SPLITS:
            was = self._members(name, old_code, self.old_flags)
            now = self._members(name, new_code, self.flags_now)
            for sign, ps in ((-1, np.flatnonzero(was & ~now)), (1, np.flatnonzero(now & ~was))):
                missing = [int(p) for p in ps if int(p) not in digests]
                for p, pid in zip(missing, self.ids_of(missing)):
                    digests[p] = digest(seed, pid)
                sums[name] = sums.get(name, 0) + sign * sum(digests[int(p)] for p in ps)
        cat = level_key(self.cat3, settings.splits.coarse_level)
        out = {}
        for name in SPLITS:
            m = self._members(name, new_code, self.flags_now)
            n = int(m.sum())
            if not n:
                continue
            c, f = cat[m], self.flags_now[m]
            labelled = c[c >= 0]
            mods = {k: int(np.count_nonzero(f & FLAGS[k])) for k in MODALITIES}
            every = sum(FLAGS[k] for k in MODALITIES)
            out[name] = {"products": n, "classes": int(arrays.unique(labelled).size), "unlabeled": n - len(labelled),
                         "modalities": mods | {"all_five": int(np.count_nonzero((f & every) == every))},
                         "checksum": f"{sums.get(name, 0) % (1 << 128):032x}"}
        return out

    def rows(self, version: str) -> pa.Table:
        """The version's rows: its products' splits, then ``subset``'s."""
        placed = np.flatnonzero(self.is_product & (self.code >= 0))
        sub = np.flatnonzero(self.is_product & (self.code == 0) & ((self.flags_now & SUBSET) != 0))
        names = pa.array(EXCLUSIVE).take(pa.array(self.code[placed].astype(np.int64)))
        ids = self.ids.take(pa.array(np.concatenate([placed, sub])))
        splits = pa.concat_arrays([names, pa.array(["subset"] * len(sub), pa.string())])
        return pa.table({"product_id": ids, "split": splits, "version": pa.repeat(version, len(ids))})

    def carry(self) -> pa.Table:
        """The next version's carry: every id, its code, label, label key, group and flags now."""
        code = np.where(self.is_product, self.code, ABSENT).astype(np.int8)
        cat3 = pa.array(self.cat3, pa.int64(), mask=self.cat3 < 0)
        lkey = pa.DictionaryArray.from_arrays(pa.array(self.lk, mask=self.lk < 0), pa.array(self.lkeys, pa.string()))
        dgid = pa.DictionaryArray.from_arrays(pa.array(self.dg, mask=self.dg < 0), self.group_ids)
        return pa.table({"product_id": self.ids, "code": pa.array(code), "cat3": cat3, "lkey": lkey, "dgid": dgid,
                         "flags": pa.array(self.flags_now, pa.uint8())})


def _media_bits(kind, role, status) -> int:
    """A media row's modalities (``carry.FLAGS``): a main image, a video or an audio with status ok."""
    if status != "ok":
        return 0
    return (FLAGS["image"] if is_main_image(kind, role) else 0) | (FLAGS["video"] if kind == "video" else 0) \
        | (FLAGS["audio"] if kind == "audio" else 0)
