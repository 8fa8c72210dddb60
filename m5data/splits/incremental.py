"""The pipeline's next split version, from its predecessor's carry and what changed since.

A pipeline run's next version (``v1`` -> ``v2``) carries ``v1``'s plan (its rates and sampled
categories) and roles, so an old product moves only when its labels or duplicate group changed.
:func:`drift` says when that plan no longer fits the store (its product count moved more than
``splits.replan_share`` from the plan's; the stage then makes a fresh plan).

:func:`build_next` builds it without reading the store's tables whole: ``v1``'s carry (``carry.py``,
one row per product) and the rows written since the stage's last complete run (``store.changed``,
which reads only the parts written since) give every product's label, group and modalities now (``carry_update.py``);
only the products whose pool may have changed (new or re-written, relabelled, or in a duplicate group
one of those touches) are placed again (``place.py``), every other keeps its split; the manifest's
figures are counted over the carry's arrays (the checksums updated by the digests of the products that
moved). ``v2`` holds exactly the rows of ``build(..., carry="v1")`` (tested row by row and figure by
figure). It says why it cannot (the stage then makes that full build): ``v1`` has no carry, was built
with other settings, the groups involve accepted ``matches``, or too many products changed.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .. import config as cfg
from ..storage import StageStats, withheld
from .build import BuildReport, carried_plan, finish, labelled
from .carry import EXCLUDED, HELD_OUT, read_carry
from .carry_update import CarryUpdate, read_changes
from .groups import GroupSource
from .manifest import read_manifest
from .place import place
from .plan import check_settings, fg_class_ids, plan_params

DRIFT = "drift"  # drift()'s answer starts with this
FULL_SHARE = 0.25  # more products than this share of the store placed again: a full build is as cheap


def drift(store, settings: cfg.Settings, prev: str, new_products: pa.Table, manifest: dict | None = None) -> str | None:
    """Why the next version after ``prev`` needs a fresh plan (starts with :data:`DRIFT`), else None: the
    store's product count (``prev``'s and those new since) moved past ``splits.replan_share`` of the plan's."""
    manifest = read_manifest(store, prev) if manifest is None else manifest
    if manifest is None:
        return None
    s = settings.splits
    base = int(manifest.get("plan", {}).get("counts", {}).get("products", 0))
    now = int(manifest.get("products", 0)) + _new(new_products)
    if base <= 0 or abs(now - base) > s.replan_share * base:
        return f"{DRIFT}: {now:,} products against the plan's {base:,} (splits.replan_share {s.replan_share})"
    return None


def _new(changed: pa.Table) -> int:
    """How many of ``store.changed``'s groups are new (none of their rows was there before)."""
    return int(pc.sum(changed.column("is_new")).as_py() or 0) if len(changed) else 0


def build_next(store, settings: cfg.Settings, *, prev: str, version: str, since: dict, marks: dict,
               products: pa.Table, progress=None):
    """Build ``version`` from ``prev``'s carry and the rows written since ``since`` (the watermarks of the
    stage's last complete run, which built ``prev``); ``marks``: the watermarks now; ``products``:
    ``store.changed("products", ...)`` with ``platform`` and ``category_path``. Returns the build's
    ``BuildReport``, or why it cannot (a full build is needed)."""
    check_settings(settings)
    s, say = settings.splits, progress or (lambda step: None)
    manifest = read_manifest(store, prev)
    if manifest is None:
        return f"version {prev} has no manifest"
    plan = carried_plan(store, prev, version, plan_params(s) | {"seed": s.seed}, manifest)
    if plan is None:
        return f"version {prev} was built with other settings" if labelled(manifest["plan"]) else \
            f"version {prev}'s plan was made without labels"
    moved_since = {t: int(marks.get(t, 0)) > int(since.get(t, 0)) for t in marks}
    if manifest.get("groups", {}).get("accepted_matches") or moved_since.get("matches"):
        return "duplicate groups join accepted matches (connected components)"
    carry = read_carry(store, prev, manifest.get("run_id"))
    if carry is None:
        return f"version {prev} has no carry"
    say("what changed")
    changes = read_changes(store, since, moved_since, products)
    stats = StageStats("splits")
    st = CarryUpdate(carry, changes)
    st.take_down(withheld.ids(store))
    st.labels(store, moved_since.get("label_map", False))
    st.groups()
    st.flags(store)
    affected = st.affected()
    if len(affected) > FULL_SHARE * max(1, st.n_products):
        return f"{len(affected):,} of {st.n_products:,} products to place again"
    say("assignment")
    placed = place(plan, settings, s.seed, set(fg_class_ids(s)), st.products(), affected, st.ids_of)
    st.settle(placed, affected)
    dedup_rows = int(manifest["groups"].get("dedup_rows", 0)) + st.new_dedup_rows
    groups, grouped = st.group_counts()
    source = GroupSource("dedup" if dedup_rows else "none", dedup_rows, 0, groups, grouped)
    report = BuildReport(stats, version, plan, source, reused_plan=True)
    say("manifest")
    report.splits = st.entries(settings, manifest.get("splits", {}), placed.digests)
    report.excluded = {"classification group member outside the sampled categories": st.count(EXCLUDED)}
    report.held_out, report.moved, report.placed_again = st.count(HELD_OUT), st.moved(), len(affected)
    stats.n_in = st.n_products
    say("writing")
    stats.n_out = _write(store, st.rows(version))
    return finish(store, settings, report, replace=False, carried=prev if prev != version else None, kept=st.carry())


def _write(store, rows: pa.Table) -> int:
    """The version's rows, in one write (the version is replaced whole)."""
    with store.writer("splits") as out:
        out.write(rows)
        return out.rows
