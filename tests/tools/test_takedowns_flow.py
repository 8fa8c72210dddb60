"""A takedown between two scheduled runs (issue 57): the splits stage writes a new split version without the
taken-down product and the run's export exports it incrementally, rewriting only the shards that held it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.export_helpers import folder_files, samples_of, shard_of, version_ids, written_keys

from m5data.config import load
from m5data.export.samples import safe_key
from m5data.storage import Store, takedowns

STAGES = "splits,export"


def _run(store: Store):
    """The stages splits and export, as a scheduled run of the pipeline flow runs them."""
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    overrides = {"export.shard_size": 4, "export.workers": 1}
    settings = load(None, {"store.path": str(store.root), **overrides}, environ={})
    return run_pipeline(check_plan(settings, stages=STAGES), settings, overrides)


@pytest.mark.xdist_group("demo60")
def test_a_scheduled_run_after_a_takedown_exports_a_new_version_without_it(demo_store_factory, prefect_harness, tmp_path):
    from support.demo_fixtures import copy_store

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    first = _run(store)
    assert first.ok, first.results
    v1, old = first.results["splits"]["details"]["version"], Path(first.results["export"]["details"]["out"])
    before = folder_files(old)
    exported = sorted(key for _, key in samples_of(old))
    gone = sorted(p for p in version_ids(store, v1) if safe_key(p) in exported)[3]
    held = {(split, shard_of(old, split, safe_key(gone))) for split, key in samples_of(old) if key == safe_key(gone)}
    assert held
    takedowns.record(store, "product_id", gone, "owner request")

    second = _run(store)
    assert second.ok, (second.message, second.results)
    v2 = second.results["splits"]["details"]["version"]
    assert v2 != v1  # a new split version, without the product
    v2_ids = version_ids(store, v2)
    assert v2_ids and gone not in v2_ids and version_ids(store, v1) - v2_ids == {gone}  # v1 as it was, less it
    details = second.results["export"]["details"]
    new = Path(details["out"])
    assert new != old and details["version"] == v2 and details["base"]
    keys = samples_of(new)
    assert safe_key(gone) not in {key for _, key in keys}
    assert len(keys) == len(samples_of(old)) - len(held)
    # only the shards that held it are written again: copied without it, nothing read from the store
    assert details["shards_written"] == details["shards_kept"] == len(held) and written_keys(new) == set()
    assert details["shards_inherited"] == details["shards"] - len(held)
    assert folder_files(old) == before  # the old export folder is untouched
    assert json.loads((old / "_export.json").read_text())["version"] == v1


def _kept_shards(folder: Path) -> int:
    return sum(1 for index in folder.glob("*.index.json") for entry in json.loads(index.read_text())["shardlist"]
               if "-kept-" in entry["url"])


@pytest.mark.xdist_group("demo60")
def test_build_splits_and_export_after_a_takedown(demo_store_factory, tmp_path):
    """The verbs do the same: ``build-splits`` (no --version) writes the next version without the product,
    carrying the old one's plan and roles; ``export`` (no --version) of it beside the old export rewrites only
    the shards that held it; the old folder refuses both the new version and the old one, saying why."""
    from support.cli_inprocess import invoke
    from support.demo_fixtures import copy_store

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))

    def m5(*args):
        res = invoke("--store", str(store.root), *args)
        return res.returncode, " ".join((res.stdout + res.stderr).split())

    export = ("export", "--shard-size", "4", "--workers", "1", "--out")
    assert m5("build-splits")[0] == 0
    old, new = tmp_path / "out" / "first", tmp_path / "out" / "second"
    code, text = m5(*export, str(old))
    assert code == 0, text
    before = folder_files(old)
    gone = sorted(p for p in version_ids(store, "v1") if safe_key(p) in {key for _, key in samples_of(old)})[7]
    held = {(split, shard_of(old, split, safe_key(gone))) for split, key in samples_of(old) if key == safe_key(gone)}
    assert m5("takedown", "--product-id", gone)[0] == 0

    code, text = m5("build-splits")
    assert code == 0 and "version 'v1' holds 1 taken-down product(s)" in text and "built 'v2' without them" in text, text
    # v2 is new: it says it carries v1's plan, never that it "existed" (issue 75, item 13)
    assert "'v2' existed" not in text and "version 'v2' is new: it carries the plan and roles of 'v1'" in text, text
    assert version_ids(store, "v2") == version_ids(store, "v1") - {gone}
    code, text = m5(*export, str(old))  # the current version into the old folder
    assert code == 1 and "holds an export of split version 'v1', not 'v2'" in text, text
    code, text = m5(*export, str(old), "--version", "v1")  # the old version into its folder
    assert code == 1 and "1 sample(s) of version v1 are taken down" in text and "a split version built since" in text
    assert folder_files(old) == before

    code, text = m5(*export, str(new))
    assert code == 0, text
    keys = samples_of(new)
    assert safe_key(gone) not in {key for _, key in keys} and len(keys) == len(samples_of(old)) - len(held)
    assert written_keys(new) == set() and _kept_shards(new) == len(held)
    assert folder_files(old) == before
