"""Prefect task (and a one-task flow) for the align stage: thin wrappers over align.run.align."""

from __future__ import annotations

from prefect import flow, task


@task(name="align", retries=0)
def align_task(store_path: str, mapping: str | None = None, review: str | None = None,
               overrides: dict | None = None, config_file: str | None = None) -> dict:
    """Align the store's category labels; returns the run's ``runs`` row plus align's own counts.

    No retries: align is a deterministic global job, so a failure (bad mapping or review file)
    would fail again; re-running after a fix keeps ids stable.
    """
    from ..align.run import align
    from ..config import load
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    report = align(store, settings, mapping=mapping, review=review)
    row = report.stats.row()
    row["failures"] = dict(report.stats.failures)
    row.update(subclasses=report.n_subclasses, unified_subclasses=report.n_groups,
               level3_labels=report.n_children, merged_pairs=dict(report.merges),
               unmapped_level1=len(report.unmapped), untitled_subclasses=len(report.untitled),
               review_file=str(report.review_path))
    return row


@flow(name="m5data-align")
def align_flow(store_path: str, mapping: str | None = None, review: str | None = None,
               overrides: dict | None = None) -> dict:
    """Align one store's labels into its taxonomy and label map."""
    return align_task(store_path, mapping, review, overrides)
