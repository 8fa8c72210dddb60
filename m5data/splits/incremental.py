"""When the pipeline's next split version needs a fresh plan.

A pipeline run's next version (``v1`` -> ``v2``) is a full build that carries ``v1``'s plan (its rates
and sampled categories) and roles (``build.build(carry=...)``), so an old product moves only when its
labels or duplicate group changed. :func:`drift` says when that plan no longer fits the store: its
product count moved more than ``splits.replan_share`` from the plan's; the stage then makes a fresh plan.
"""

from __future__ import annotations

import pyarrow as pa

from .. import config as cfg
from .manifest import read_manifest

DRIFT = "drift"  # drift()'s answer starts with this


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
    import pyarrow.compute as pc

    return int(pc.sum(changed.column("is_new")).as_py() or 0) if len(changed) else 0
