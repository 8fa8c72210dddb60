"""build-splits on a store without unified labels (before ``align``) freezes no plan: it is refused, and
the first build after align has the query, gallery and classification splits; a plan that an older
build froze without labels is made again."""

import json

import pytest
from support.align_world import make_world
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.splits.build import SplitsError
from m5data.splits.manifest import manifest_path, read_manifest
from m5data.storage import Store

runner = CliRunner()
EVALUATION = {"query-c", "gallery-c", "cls-train", "cls-test"}


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


@pytest.fixture
def unaligned(tmp_path):
    """(store of 640 products and no label_map, the world's level-1 mapping file)."""
    world = make_world(seed=2, n_classes=2, subs_per_class=4, titles_per_sub=40)
    store = Store.init(tmp_path / "store")
    store.write("products", world.products())
    return store, world.write_mapping(tmp_path / "mapping.toml")


def _align(store, mapping):
    result = m5(store, "align", "--mapping", str(mapping))
    assert result.exit_code == 0, result.output


def test_build_splits_before_align_is_refused_and_freezes_nothing(unaligned):
    store, mapping = unaligned
    result = m5(store, "build-splits")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "m5data align" in text and "has a unified label" in text and str(store.root) in text, text
    assert read_manifest(store, "v1") is None and store.count("splits") == 0
    _align(store, mapping)
    result = m5(store, "build-splits")
    assert result.exit_code == 0, result.output
    assert "its stored plan was reused" not in result.output
    splits = json.loads(manifest_path(store, "v1").read_text())["splits"]
    assert EVALUATION <= set(splits) and all(splits[name]["products"] for name in EVALUATION), splits


def test_the_pipeline_splits_stage_before_align_freezes_nothing(unaligned):
    from m5data.stages import RunContext, call
    from m5data.storage import changes

    store, mapping = unaligned
    settings = load(None, {"store.path": str(store.root)}, environ={})
    with pytest.raises(SplitsError, match="m5data align"):
        call("splits", RunContext(settings, options={}))  # as `m5data run --stages splits` runs it
    assert store.count("splits") == 0 and read_manifest(store, "v1") is None
    assert changes.load_state(store, "splits") is None
    _align(store, mapping)
    stats = call("splits", RunContext(load(None, {"store.path": str(store.root)}, environ={}), options={}))
    assert stats.details["version"] == "v1" and EVALUATION <= set(stats.details["splits"]), stats.details


def test_a_plan_frozen_without_labels_is_made_again_after_align(unaligned):
    """A store whose v1 an older build froze before align (every product in train): its next build
    makes a plan from the labels, not the stored one."""
    from m5data.splits.build import BuildReport, finish
    from m5data.splits.groups import GroupSource
    from m5data.splits.plan import PlanCounts, make_plan
    from m5data.storage import StageStats

    store, mapping = unaligned
    settings = load(None, {"store.path": str(store.root)}, environ={})
    n = store.count("products")
    ids = [r[0] for r in store.connect().execute("SELECT product_id FROM products").fetchall()]
    store.write("splits", [{"product_id": p, "split": "train", "version": "v1"} for p in ids])
    plan = make_plan("v1", settings.splits, PlanCounts(n, 0, 0, 0, {}), [])  # what a build before align planned
    stats = StageStats("splits")
    stats.n_in = n
    finish(store, settings, BuildReport(stats, "v1", plan, GroupSource("none", 0, 0, 0, 0),
                                        splits={"train": {"products": n}}), replace=False, carried=None)
    _align(store, mapping)
    result = m5(store, "build-splits")
    assert result.exit_code == 0, result.output
    assert "its stored plan was reused" not in result.output
    manifest = json.loads(manifest_path(store, "v1").read_text())
    assert manifest["plan"]["counts"]["labeled"] > 0
    assert EVALUATION <= set(manifest["splits"]), manifest["splits"]
