"""The pipeline's splits stage over ``storage/changes.py``: a run with nothing new does no global work
(the version stands, ``new 0, changed 0, unchanged N``), a grown store gets a new version, ``full``
builds again, a run that did not complete leaves the old state."""

import json

import pyarrow as pa
import pytest
from support.splits_store import write_synthetic

from m5data import config as cfg
from m5data.splits import stage
from m5data.stages import RunContext, call
from m5data.storage import Store, changes


def _ctx(root, **options):
    settings = cfg.load(None, {"store.path": str(root), "splits.subset": "0.1", "splits.min_queries": 20}, environ={})
    return RunContext(settings).with_options(**options)


@pytest.fixture
def root(tmp_path):
    store = Store.init(tmp_path / "store")
    write_synthetic(store, 1500, n_categories=60)
    return store.root


def test_nothing_new_does_no_work_and_a_grown_store_gets_a_new_version(root):
    first = call("splits", _ctx(root))
    assert first.details["changes"] == {"new": 1500, "changed": 0, "unchanged": 0}
    store = Store.open(root)
    parts = store.parts("splits")
    again = call("splits", _ctx(root))
    assert again.details["unchanged"] and again.details["changes"] == {"new": 0, "changed": 0, "unchanged": 1500}
    assert again.details["version"] == first.details["version"] and again.details["splits"] == first.details["splits"]
    assert store.parts("splits") == parts  # nothing written but its runs row
    full = call("splits", _ctx(root, full=True))
    assert "unchanged" not in full.details and full.details["version"] == first.details["version"]
    write_synthetic(store, 100, start=1500, n_categories=60)
    grown = call("splits", _ctx(root))
    assert grown.details["changes"] == {"new": 100, "changed": 0, "unchanged": 1500}
    assert grown.details["version"] != first.details["version"]
    assert sum(grown.details["splits"].values()) > sum(first.details["splits"].values())


def test_a_run_that_fails_keeps_the_old_state(root, monkeypatch):
    call("splits", _ctx(root))
    before = changes.load_state(Store.open(root), "splits")
    write_synthetic(Store.open(root), 50, start=1500, n_categories=60)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(stage, "next_version", killed)  # after the watermarks, before the build
        with pytest.raises(KeyboardInterrupt):
            call("splits", _ctx(root))
    assert changes.load_state(Store.open(root), "splits") == before
    again = call("splits", _ctx(root))
    assert again.details["changes"]["new"] == 50 and "unchanged" not in again.details


def _dedup(store, groups: dict[str, list[str]]):
    """dedup rows: each listed product in its group (group_id: the smallest id), as annotate writes them."""
    rows = [{"product_id": p, "group_id": min(members), "rule": "exact_title" if len(members) > 1 else None}
            for members in groups.values() for p in members]
    store.write("dedup", rows)


def _rows(store, version) -> dict[str, str]:
    """product -> split of a version (subset rows aside)."""
    rows = store.read("splits", where=f"version = '{version}' AND split <> 'subset'").to_pylist()
    return {r["product_id"]: r["split"] for r in rows}


def test_the_next_version_carries_v1s_plan_and_moves_only_what_changed(root):
    """The pipeline's v2 is a build that carries v1's plan and roles: it equals ``build(carry=v1)`` row
    for row and in every manifest figure (checksums included); only changed products and their
    duplicate groups move; v1 stays byte for byte; check-splits passes on v2."""
    from m5data.splits.build import build
    from m5data.splits.check import check

    store = Store.open(root)
    # duplicate groups of three over the old products; the rest alone
    groups = {f"g{k}": [f"syn:{k + i}" for i in range(3)] for k in range(0, 1500, 9)}
    groups |= {p: [p] for p in (f"syn:{i}" for i in range(1500)) if not any(p in g for g in groups.values())}
    _dedup(store, groups)
    store.write("captions", [{"product_id": f"syn:{i}", "text": "a caption", "status": "ok"} for i in range(0, 1500, 2)])
    first = call("splits", _ctx(root))
    v1 = first.details["version"]
    manifest_v1 = store.read_text(f"derived/splits/{v1}/manifest.json")
    rows_v1 = _rows(store, v1)

    write_synthetic(store, 40, start=1500, n_categories=60)  # new products
    _dedup(store, {"a": ["syn:0", "syn:1", "syn:2", "syn:1500"],  # a new product joins an old group
                   "b": ["syn:9", "syn:10"], "c": ["syn:11"],  # an old group splits
                   "d": ["syn:1501", "syn:1502"]})
    store.write("captions", [{"product_id": "syn:1", "text": "a caption", "status": "ok"}])  # a new caption only
    renamed = store.read("products", where="product_id IN ('syn:20', 'syn:21')")  # re-crawled: other categories
    store.write("products", renamed.set_column(renamed.schema.get_field_index("category_path"), "category_path",
                                               renamed.column("category_path").take([1, 0])))
    labels = store.read("label_map")
    store.write("label_map", labels)  # every row re-written as it was (as align does): nothing moves for it
    moved_path = labels.slice(5, 1)  # one category gets another class
    store.write("label_map", moved_path.set_column(moved_path.schema.get_field_index("class_id"), "class_id",
                                                   pa.array([6], moved_path.schema.field("class_id").type)))
    relabelled = {r["product_id"] for r in store.read("products").to_pylist()
                  if r["category_path"] and " > ".join(r["category_path"]) == moved_path.column("raw_path")[0].as_py()}
    second = call("splits", _ctx(root))
    v2 = second.details["version"]
    assert v2 != v1 and second.details["full"] is None and second.details["reused_plan"]  # v1's plan
    assert second.details["built_whole"] is None and second.details["placed_again"] < 1540  # from v1's carry
    assert relabelled
    assert second.details["changes"] == {"new": 40, "changed": 2, "unchanged": 1498}
    assert store.read_text(f"derived/splits/{v1}/manifest.json") == manifest_v1 and _rows(store, v1) == rows_v1

    carried = build(store, _ctx(root).settings, version="carried", carry=v1)
    assert _rows(store, "carried") == _rows(store, v2)
    a = json.loads(store.read_text(f"derived/splits/{v2}/manifest.json"))
    b = json.loads(store.read_text("derived/splits/carried/manifest.json"))
    assert a["splits"] == b["splits"] == carried.splits and a["splits"]["train"]["modalities"]["caption"] > 0
    for key in ("products", "held_out", "excluded", "plan"):
        assert a[key] == (b[key] if key != "plan" else b[key] | {"version": v2}), key
    assert {k: a["groups"][k] for k in ("groups", "grouped_products", "dedup_rows")} == \
        {k: b["groups"][k] for k in ("groups", "grouped_products", "dedup_rows")}
    report = check(store, _ctx(root).settings, version=v2)
    assert report.ok, report.violations
    rows_v2 = _rows(store, v2)
    moved = {p for p, s in rows_v1.items() if rows_v2.get(p) != s}
    changed = {"syn:0", "syn:1", "syn:2", "syn:9", "syn:10", "syn:11", "syn:20", "syn:21"} | relabelled
    assert moved <= changed | {p for g in groups.values() if changed & set(g) for p in g}  # their groups only


def _media(pid: str, kind: str, status: str = "ok", role: str | None = None) -> dict:
    return {"media_id": f"{pid}|{kind}|{role}", "product_id": pid, "kind": kind, "role": role or kind, "status": status}


def _same_as_carried(store, root, version: str, prev: str) -> None:
    """``version`` holds the rows and figures of a full build that carries ``prev``."""
    from m5data.splits.build import build
    from m5data.splits.check import check

    carried = build(store, _ctx(root).settings, version="carried", carry=prev)
    assert _rows(store, "carried") == _rows(store, version)
    subset = {r["product_id"] for r in store.read("splits", where=f"version = '{version}' AND split = 'subset'").to_pylist()}
    assert subset == {r["product_id"] for r in store.read("splits", where="version = 'carried' AND split = 'subset'").to_pylist()}
    a = json.loads(store.read_text(f"derived/splits/{version}/manifest.json"))
    assert a["splits"] == carried.splits
    assert (a["products"], a["held_out"], a["excluded"]) == (carried.stats.n_in, carried.held_out, carried.excluded)
    assert a["groups"] | {"describe": ""} == carried.groups.to_json() | {"describe": ""}
    assert check(store, _ctx(root).settings, version=version).ok


def test_the_next_version_follows_every_input_as_a_full_build(root):
    """Modalities gained and lost (a main image that failed: the product's other rows read again), rows of
    a product written before the product (its dedup group, media and caption), groups merged, split and
    joined across categories, a product re-crawled into another category: v2 from v1's carry is the
    full build that carries v1, row for row and figure for figure (subset and checksums included); v3
    after it too."""
    store = Store.open(root)
    groups = {f"g{k}": [f"syn:{k + i}" for i in range(2 + k % 3)] for k in range(0, 1500, 11)}
    _dedup(store, groups)
    media = [_media(f"syn:{i}", "image", role="main") for i in range(0, 1500, 3)]
    media += [_media(f"syn:{i}", "video") for i in range(0, 1500, 5)] + [_media(f"syn:{i}", "audio") for i in range(0, 1500, 7)]
    media += [_media(f"syn:{i}", "image", role="gallery") for i in range(0, 30)]
    store.write("media", media)
    store.write("captions", [{"product_id": f"syn:{i}", "text": "a caption", "status": "ok"} for i in range(0, 1500, 2)])
    store.write("specs", [{"product_id": f"syn:{i}", "position": 0, "property": "p", "value": "v"} for i in range(0, 1500, 4)])
    # rows of syn:1510 and syn:1511 before the products themselves (a crawl's other tables first)
    _dedup(store, {"early": ["syn:1510", "syn:1511", "syn:40"]})
    store.write("media", [_media("syn:1510", "image", role="main"), _media("syn:1511", "video")])
    store.write("captions", [{"product_id": "syn:1511", "text": "early", "status": "ok"}])
    first = call("splits", _ctx(root))
    assert first.details["placed_again"] is None and first.details["version"] == "v1"

    train = sorted((p for p, split in _rows(store, "v1").items() if split == "train"), key=lambda p: int(p[4:]))
    lost = next(p for p in train if int(p[4:]) % 15 == 0)  # a main image and a video, in train
    gained = [p for p in train if int(p[4:]) % 3 and int(p[4:]) % 5 and int(p[4:]) % 4][:2]  # neither, no specs
    write_synthetic(store, 40, start=1500, n_categories=60)
    store.write("media", [_media(lost, "image", "failed", role="main"),  # lost: its other rows are read again
                          _media("syn:3", "image", "failed", role="gallery"),  # nothing lost
                          _media(gained[0], "video"), _media(gained[1], "image", role="main")])  # gained
    store.write("captions", [{"product_id": "syn:2", "text": "", "status": "ok"},  # an empty caption is none
                             {"product_id": "syn:5", "text": "new", "status": "ok"}])
    store.write("specs", [{"product_id": gained[0], "position": 0, "property": "p", "value": "v"}])
    _dedup(store, {"m": ["syn:11", "syn:12", "syn:22", "syn:23"],  # two groups merged
                   "s1": ["syn:33"], "s2": ["syn:34", "syn:35"],  # a group split
                   "j": ["syn:44", "syn:45", "syn:1500"],  # a new product joins
                   "l": ["syn:100", "syn:1501"]})  # a lone product gets a duplicate
    moved_cat = store.read("products", where="product_id IN ('syn:55', 'syn:56')")
    store.write("products", moved_cat.set_column(moved_cat.schema.get_field_index("category_path"), "category_path",
                                                 moved_cat.column("category_path").take([1, 0])))
    second = call("splits", _ctx(root))
    assert second.details["version"] == "v2" and second.details["built_whole"] is None
    assert 40 <= second.details["placed_again"] < 100  # the changed products and their groups only
    _same_as_carried(store, root, "v2", "v1")
    assert _rows(store, "v2")[lost] == "train" and "subset" in second.details["entries"]  # its image counts no more

    write_synthetic(store, 20, start=1540, n_categories=60)
    _dedup(store, {"again": ["syn:11", "syn:1541"]})
    third = call("splits", _ctx(root))
    assert third.details["version"] == "v3" and third.details["built_whole"] is None
    _same_as_carried(store, root, "v3", "v2")


def test_a_takedown_since_gets_a_next_version_without_it(root):
    """A takedown of products of v1 (one in a duplicate group, one alone) is a change: v2 is v1 without them,
    from v1's carry, as the full build that carries v1 (only the taken-down products' groups placed again);
    a run after it does nothing; ``full`` after another takedown builds the next version too."""
    from m5data.storage import takedowns

    store = Store.open(root)
    groups = {f"g{k}": [f"syn:{k + i}" for i in range(3)] for k in range(0, 1500, 9)}
    _dedup(store, groups)
    first = call("splits", _ctx(root))
    v1 = first.details["version"]
    rows_v1, manifest_v1 = _rows(store, v1), store.read_text(f"derived/splits/{v1}/manifest.json")
    gone = {"syn:9", "syn:5"}
    assert gone <= set(rows_v1)
    for pid in sorted(gone):
        takedowns.record(store, "product_id", pid)
    second = call("splits", _ctx(root))
    v2 = second.details["version"]
    assert v2 != v1 and second.details["built_whole"] is None and second.details["placed_again"] == 2  # syn:10, 11
    assert second.details["changes"] == {"new": 0, "changed": 0, "unchanged": 1498}
    rows_v2 = _rows(store, v2)
    assert set(rows_v1) - set(rows_v2) == gone and not set(rows_v2) - set(rows_v1)
    assert {p for p in rows_v2 if rows_v2[p] != rows_v1[p]} <= {"syn:10", "syn:11"}
    assert _rows(store, v1) == rows_v1 and store.read_text(f"derived/splits/{v1}/manifest.json") == manifest_v1
    _same_as_carried(store, root, v2, v1)
    again = call("splits", _ctx(root))
    assert again.details["unchanged"] and again.details["version"] == v2
    takedowns.record(store, "product_id", "syn:30")
    full = call("splits", _ctx(root, full=True))
    assert full.details["version"] not in (v1, v2) and "syn:30" not in _rows(store, full.details["version"])
    assert "syn:30" in _rows(store, v2)


def test_a_version_rebuilt_since_is_not_carried_from_its_old_carry(root):
    """``build-splits --version v1`` after the run that built v1 writes a new manifest and no carry: the
    next version is the carried full build, whose figures it then keeps."""
    from m5data.splits.build import build

    call("splits", _ctx(root))
    store = Store.open(root)
    _dedup(store, {"g": ["syn:1", "syn:2"]})
    build(store, _ctx(root).settings, version="v1")  # v1's rows again, a new manifest
    write_synthetic(store, 30, start=1500, n_categories=60)
    second = call("splits", _ctx(root))
    assert second.details["built_whole"] == "version v1 has no carry" and second.details["placed_again"] is None
    _same_as_carried(store, root, "v2", "v1")
    write_synthetic(store, 10, start=1530, n_categories=60)
    third = call("splits", _ctx(root))
    assert third.details["built_whole"] is None and third.details["placed_again"] == 10
    _same_as_carried(store, root, "v3", "v2")


def test_a_grown_store_or_full_gets_a_fresh_plan(root):
    first = call("splits", _ctx(root))
    store = Store.open(root)
    write_synthetic(store, 300, start=1500, n_categories=60)  # 20% more: past splits.replan_share 0.1
    grown = call("splits", _ctx(root))
    assert grown.details["full"].startswith("drift") and not grown.details["reused_plan"]
    manifest = json.loads(store.read_text(f"derived/splits/{grown.details['version']}/manifest.json"))
    assert manifest["plan"]["counts"]["products"] == 1800 and "carried_from" not in manifest
    write_synthetic(store, 10, start=1800, n_categories=60)
    small = call("splits", _ctx(root))  # a build that carries the plan and roles
    assert small.details["full"] is None and small.details["reused_plan"]
    assert json.loads(store.read_text(f"derived/splits/{small.details['version']}/manifest.json"))["carried_from"] \
        == grown.details["version"]
    full = call("splits", _ctx(root, full=True))
    assert full.details["version"] == small.details["version"] and not full.details["reused_plan"]
    assert first.details["version"] != grown.details["version"]


@pytest.mark.parametrize("module, name", [("m5data.splits.incremental", "_write"),  # before its rows
                                          ("m5data.splits.build", "write_carry"),  # rows written, no carry
                                          ("m5data.splits.build", "write_manifest")])  # carry written, no manifest
def test_a_build_killed_before_its_manifest_is_built_again_as_the_same_version(root, monkeypatch, module, name):
    """Killed before the version's rows, its carry or its manifest: the re-run builds the same version from
    the same predecessor's carry, and its rows and figures are those of an uninterrupted build."""
    import importlib

    from m5data.splits.build import build

    first = call("splits", _ctx(root))
    store = Store.open(root)
    write_synthetic(store, 50, start=1500, n_categories=60)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    owner = importlib.import_module(module)  # the package exports its function `build`
    if "." in name:
        owner, name = getattr(owner, name.split(".")[0]), name.split(".")[1]
    with monkeypatch.context() as m:
        m.setattr(owner, name, killed)
        with pytest.raises(KeyboardInterrupt):
            call("splits", _ctx(root))
    again = call("splits", _ctx(root))
    assert again.details["full"] is None and again.details["version"] == "v2" != first.details["version"]
    assert again.details["changes"]["new"] == 50 and again.details["placed_again"] == 50  # from v1's carry
    carried = build(store, _ctx(root).settings, version="carried", carry="v1")
    assert _rows(store, "carried") == _rows(store, "v2") and carried.splits == again.details["entries"]


def test_the_next_version_on_object_storage(s3_url, aws):
    """On an S3 store the next version carries v1's plan and roles, as on a local store."""
    pytest.importorskip("moto")
    from m5data.splits.build import build
    from m5data.splits.check import check

    store = Store.init(s3_url)
    write_synthetic(store, 600, n_categories=30)
    first = call("splits", _ctx(s3_url))
    assert first.details["version"] == "v1"
    write_synthetic(store, 20, start=600, n_categories=30)
    second = call("splits", _ctx(s3_url))
    assert second.details["full"] is None and second.details["version"] == "v2"
    assert second.details["reused_plan"] and second.details["changes"]["new"] == 20
    assert second.details["placed_again"] == 20  # from v1's carry, read and written on the bucket
    carried = build(store, _ctx(s3_url).settings, version="carried", carry="v1")
    assert _rows(store, "carried") == _rows(store, "v2") and carried.splits == second.details["entries"]
    assert check(store, _ctx(s3_url).settings, version="v2").ok
