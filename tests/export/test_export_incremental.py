"""Incremental exports (m5data/export/incremental.py): a new split version's WebDataset export
writes only new and changed samples and takes the other shards over from the previous version's
folder beside it; readers (the wids index, check-shards, the training loader) see exactly the
samples of a full export of the same version.

The store is the 60-product demo store, grown twice through the store API (copies of products under
new ids with their specs, captions and media; one re-written title each time), with a split version
per state whose assignment is a hash of the product id (as the splits stage's is a hash of its group).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest
from support.export_helpers import hashed_splits, killed_export, same_members, samples_of, settings_for, written_keys
from support.grow_store import grow, product_ids

from m5data.export.check import check_shards
from m5data.export.run import export
from m5data.export.stage import default_out
from m5data.storage import Store


def sample_list(folder: Path) -> list[tuple]:
    """``(split, product_id, digest)`` of the folder's ``_samples.parquet``, in its order (sorted)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(folder / "_samples.parquet")
    got = list(zip(*(rows.column(c).to_pylist() for c in ("split", "product_id", "digest"))))
    assert got == sorted(got)
    return got


def one_row(store, table: str, pid: str, column: str, value):
    """One row of ``pid`` in ``table`` with ``column`` set to ``value`` (a write of it re-writes the product's rows)."""
    import pyarrow.compute as pc

    rows = store.read(table)
    rows = rows.filter(pc.equal(rows.column("product_id"), pid)).slice(0, 1)
    return rows.set_column(rows.schema.get_field_index(column), column, pa.array([value], rows.schema.field(column).type))


@pytest.fixture(scope="module")
def grown(demo_store_factory, tmp_path_factory):
    """The store and its three exports: v1 in full, v2 and v3 incremental, each in its default folder."""
    from support.demo_fixtures import copy_store

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path_factory.mktemp("inc")))
    ids = sorted(product_ids(store))
    first = ids[:40]
    store.write("splits", hashed_splits(first, "v1"))
    settings = settings_for(store, **{"export.shard_size": 4, "export.workers": 1})
    reports = {"v1": export(store, settings, out=default_out(store, "all", "webdataset", "v1")[1], version="v1")}
    changed = {}
    for version, tag, n in (("v2", "x", 6), ("v3", "y", 4)):
        changed[version] = first[7] if version == "v2" else first[23]
        grow(store, tag, n, changed[version])
        store.write("splits", hashed_splits(first + [p for p in product_ids(store) if p not in ids], version))
        out = default_out(store, "all", "webdataset", None)[1]
        reports[version] = export(store, settings, out=out)
    return store, settings, reports, changed


def v3_last(grown) -> None:
    """Make v3's folder in the store the last complete export again: other tests of this module export
    the shared store elsewhere (the CLI test's tmp folders), and a copy taken after them would find its
    last export outside its own exports/ (xdist may run them first on a worker)."""
    store, settings, reports, _ = grown
    export(store, settings, out=Path(reports["v3"].out))  # nothing written since: no shard written


def test_incremental_versions_hold_the_samples_of_a_full_export(grown, tmp_path):
    store, settings, reports, changed = grown
    v2, v3 = reports["v2"], reports["v3"]
    assert v2.base == "v1-webdataset-all" and v3.base == "v2-webdataset-all"
    assert v2.version == "v2" and v3.version == "v3"
    for r in (v2, v3):
        assert r.shards_inherited > 0 and 0 < r.shards_written < r.shards
        assert r.shards_kept >= 1  # the re-written product's old shard, copied without it
        assert r.changes["changed"] >= 1 and r.changes["new"] >= 4 and r.changes["unchanged"] > 20
    full = export(store, settings, out=tmp_path / "full", version="v3", full=True)
    assert full.shards_inherited == 0 and full.shards_written == full.shards
    got, want = samples_of(Path(v3.out)), samples_of(tmp_path / "full")
    assert sorted(got) == sorted(want)
    for key, fields in want.items():
        assert got[key] == fields, key
    # the sample list holds the digests a full export makes (v3's own hashed only what changed since v2)
    assert sample_list(Path(v3.out)) == sample_list(tmp_path / "full")
    # v3 holds its own files (shards of v1 and v2 taken over under its own names), and checks clean alone
    assert_self_contained(Path(v3.out))
    taken = [json.loads(p.read_text())["inherited_from"] for p in Path(v3.out).glob("*-inherited-*.stats.json")]
    assert {t.split("/")[0] for t in taken} == {"v2-webdataset-all"}  # v2 holds what it took over from v1
    alone = tmp_path / "elsewhere" / "v3"
    import shutil

    shutil.copytree(v3.out, alone)
    report = check_shards(alone)
    assert report.ok, report.problems
    assert report.samples == len(want) and samples_of(alone) == want


def assert_self_contained(folder: Path) -> None:
    """No index, manifest, stats, plan, card or sample list of ``folder`` names a path out of it, and taken-over
    files are hard links (local: the same inode as the previous folder's)."""
    import pyarrow.parquet as pq

    for path in folder.rglob("*"):
        if path.suffix in (".json", ".md"):
            assert "../" not in path.read_text(), path
    assert not [p for p in pq.read_table(folder / "_samples.parquet").column("path").to_pylist() if "../" in p]


def test_a_changed_product_replaces_its_old_sample(grown):
    store, _, reports, changed = grown
    pid = changed["v2"]
    from m5data.export.samples import safe_key

    mine = {k: v for k, v in samples_of(Path(reports["v2"].out)).items() if k[1] == safe_key(pid)}
    assert mine, "the changed product is in the new version"
    for fields in mine.values():
        assert json.loads(fields["json"])["title"].endswith("(x)")
    old = {k: v for k, v in samples_of(Path(reports["v1"].out)).items() if k[1] == safe_key(pid)}
    assert all(not json.loads(f["json"])["title"].endswith("(x)") for f in old.values())  # v1 stands as it was
    # its old shard is not taken over: the v2 index names no v1 shard that holds it
    for index in Path(reports["v2"].out).glob("*.index.json"):
        for entry in json.loads(index.read_text())["shardlist"]:
            if "-inherited-" in entry["url"]:
                with tarfile.open(Path(reports["v2"].out) / entry["url"]) as tar:
                    assert not any(m.name.startswith(safe_key(pid) + ".") for m in tar)


def test_an_export_with_nothing_new_writes_no_shard(grown):
    store, settings, reports, _ = grown
    v3 = Path(reports["v3"].out)
    tars = {p.name: p.stat().st_mtime_ns for p in v3.glob("*.tar")}
    again = export(store, settings, out=v3)  # (another test may have exported v3 elsewhere since)
    assert again.shards_written == 0 and again.shards_skipped == reports["v3"].shards_written
    assert {p.name: p.stat().st_mtime_ns for p in v3.glob("*.tar")} == tars
    before = {p.name: p.stat().st_mtime_ns for p in v3.iterdir()}
    third = export(store, settings, out=v3)  # the last complete export, nothing written since: no work at all
    assert third.shards_written == 0 and third.full_because == "nothing changed"
    assert third.changes == {"new": 0, "changed": 0, "unchanged": third.stats.n_in, "removed": 0}
    assert {p.name: p.stat().st_mtime_ns for p in v3.iterdir()} == before


def test_check_shards_names_a_missing_inherited_shard_and_a_key_twice(grown, tmp_path):
    import shutil

    _, _, reports, _ = grown
    parent = tmp_path / "exports"
    for r in ("v1", "v2", "v3"):
        shutil.copytree(reports[r].out, parent / Path(reports[r].out).name)
    v3 = parent / "v3-webdataset-all"
    inherited = next(u["url"] for u in json.loads((v3 / "train.index.json").read_text())["shardlist"]
                     if "-inherited-" in u["url"])
    (v3 / inherited).unlink()
    report = check_shards(v3)
    assert [p.path for p in report.problems if p.problem == "missing"] == [inherited]
    # a sample list that names one product twice in a split
    import pyarrow.parquet as pq

    rows = pq.read_table(v3 / "_samples.parquet")
    pq.write_table(pa.concat_tables([rows, rows.slice(0, 1)]), v3 / "_samples.parquet")
    assert any("listed 2 times" in p.problem for p in check_shards(v3).problems)


def test_an_index_may_not_lead_into_a_folder_its_plan_does_not_name(grown, tmp_path):
    import shutil

    _, _, reports, _ = grown
    v2 = tmp_path / "v2"
    shutil.copytree(reports["v2"].out, v2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.tar").write_bytes(b"x" * 10240)
    index = json.loads((v2 / "train.index.json").read_text())
    index["shardlist"].append({"url": "../other/x.tar", "nsamples": 1, "filesize": 10240, "sha256": None})
    (v2 / "train.index.json").write_text(json.dumps(index))
    problems = check_shards(v2).problems
    assert any(p.path == "../other/x.tar" and "outside the export folder" in p.problem for p in problems)


def test_a_killed_incremental_export_resumes_to_the_same_samples(grown, tmp_path):
    """Killed after its first new shard, run again: the rest is written, the samples are the full export's."""
    from support.demo_fixtures import copy_store

    store, settings, reports, _ = grown
    v3_last(grown)
    copy = Store.open(copy_store(store.root, tmp_path))  # the store with the states of v1..v3
    grow(copy, "z", 3, sorted(product_ids(copy))[2])
    copy.write("splits", hashed_splits(product_ids(copy), "v4"))
    # the copy's state names v3's folder as a place in the store: the copy's own, beside the new one
    out = Path(copy.where("exports/v4-webdataset-all"))
    killed_export(copy, settings, out)
    assert (out / "_export.json").is_file() and not (out / "_manifest.json").exists()
    resumed = export(copy, settings, out=out)
    assert resumed.shards_skipped == 1 and resumed.base == "v3-webdataset-all"
    full = export(copy, settings, out=tmp_path / "full", full=True)
    assert samples_of(out) == samples_of(tmp_path / "full") and full.shards > resumed.shards_written
    assert check_shards(out).ok


def test_a_shard_that_only_lost_samples_is_copied_without_reading_the_store(grown, tmp_path):
    """A previous shard whose only change is that a sample left it (here: re-written, so it moved into
    the new shards) is copied member by member from the previous tar: the blobs of the samples it keeps
    are deleted from the store first, and the copy still holds them, byte for byte."""
    import pyarrow.compute as pc
    from support.demo_fixtures import copy_store

    from m5data.export.samples import safe_key

    store, settings, reports, _ = grown
    v3_last(grown)
    copy = Store.open(copy_store(store.root, tmp_path))
    v3 = Path(copy.where("exports/v3-webdataset-all"))
    ids = {safe_key(p): p for p in product_ids(copy)}
    media = copy.read("media")

    def exclusive_blobs(url):  # (its keys, the blob files only the shard's samples but keys[1] use)
        with tarfile.open(v3 / url) as tar:
            keys = sorted({m.name.split(".", 1)[0] for m in tar})
        mine = pc.is_in(media.column("product_id"), pa.array([ids[k] for k in keys if k != keys[1]]))
        others = set(media.filter(pc.invert(mine)).column("blob").to_pylist())
        return keys, {b for b in media.filter(mine).column("blob").to_pylist()
                      if b and b not in others and (copy.local_root() / b).is_file()}

    train = [u["url"] for u in json.loads((v3 / "train.index.json").read_text())["shardlist"]]
    source = max(train, key=lambda u: len(exclusive_blobs(u)[1]))  # a shard of v3 (its own or inherited)
    keys, gone = exclusive_blobs(source)
    assert gone, "the kept samples have blobs of their own"
    changed = ids[keys[1]]  # re-written: it leaves its shard for the new ones
    grow(copy, "k", 1, changed)
    copy.write("splits", hashed_splits(product_ids(copy), "v4"))
    for blob in gone:
        (copy.local_root() / blob).unlink()
    out = Path(copy.where("exports/v4-webdataset-all"))
    two = settings_for(copy, **{"export.shard_size": 4, "export.workers": 2})  # the copies run in the pool's workers
    report = export(copy, two, out=out)
    assert report.shards_kept >= 1 and report.base == "v3-webdataset-all"
    index = json.loads((out / "train.index.json").read_text())["shardlist"]
    names = [u["url"] for u in index]
    assert "train-kept-000000.tar" in names
    assert f"v3-webdataset-all/{source}" not in [json.loads(p.read_text())["inherited_from"]
                                                  for p in out.glob("*-inherited-*.stats.json")]
    stats = json.loads((out / "train-kept-000000.stats.json").read_text())
    assert stats["kept_from"] == f"v3-webdataset-all/{source}" and stats["nsamples"] == len(keys) - 1 and stats["failures"] == {}
    with tarfile.open(v3 / source) as tar:
        want = [(m.name, tar.extractfile(m).read()) for m in tar if m.name.split(".", 1)[0] != keys[1]]
    with tarfile.open(out / "train-kept-000000.tar") as tar:
        got = [(m.name, tar.extractfile(m).read()) for m in tar]
    assert got == want  # every kept member, in order, byte for byte (their images too: not read from the store)
    assert [k for k in samples_of(out) if k[1] == safe_key(changed)] == [("train", safe_key(changed))]  # once, new
    assert check_shards(out).ok


def test_the_tar_reader_gives_tarfiles_members_and_bytes(tmp_path):
    """tar_blocks.TarReader (the kept copies' parser) against tarfile: names (a GNU long name too),
    data and the raw ranges, with blocks smaller than a member (its buffer drops what was read)."""
    import io

    from m5data.export import tar_blocks

    members = [("a.json", b"{}"), ("b" * 120 + ".txt", b"x" * 700), ("c.jpg", bytes(range(256)) * 9), ("d.txt", b"")]
    raw = b"".join(tar_blocks.tar_header(n, len(d)) + d + b"\0" * (-len(d) % 512) for n, d in members) + b"\0" * 10240
    for block in (513, 1024, 1 << 20):
        reader = tar_blocks.TarReader(io.BytesIO(raw), block=block)
        got = [(n, reader.data(), reader.raw()) for n, _, _ in reader.members()]
        assert [(n, d) for n, d, _ in got] == members, block
        assert b"".join(r for *_, r in got) == raw[:len(raw) - 10240]
        assert reader.sha.hexdigest() == hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert [m.name for m in tar] == [n for n, _ in members]
    bad = bytearray(raw)
    bad[512 * 4 + 5] ^= 1  # in the header of the long-named member (after a.json and its long-name entry)
    with pytest.raises(ValueError, match="checksum"):
        list(tar_blocks.TarReader(io.BytesIO(bytes(bad))).members())


def test_the_training_loader_reads_an_incremental_version(grown, tmp_path):
    pytest.importorskip("torch")
    from m5data.train.config import load_config
    from m5data.train.data import loader

    store, settings, reports, _ = grown
    full = tmp_path / "full"
    export(store, settings, out=full, version="v3", split="train", full=True)
    cfg = load_config("small").model
    seen = sorted(pid for b in loader(reports["v3"].out, "train", cfg, batch_size=16) for pid in b["product_id"])
    want = sorted(pid for b in loader(full, "train", cfg, batch_size=16) for pid in b["product_id"])
    assert seen == want and len(seen) == len(set(seen)) > 20


def test_formats_that_cannot_inherit_export_in_full_and_say_so(grown, tmp_path):
    store, settings, _, _ = grown
    parent = tmp_path / "exports"
    export(store, settings, out=parent / "a", fmt="m5product", version="v2")
    r = export(store, settings, out=parent / "b", fmt="m5product", version="v3")
    assert r.shards_inherited == 0 and r.shards_written == r.shards and "M5Product" in r.full_because
    assert r.changes == {"new": r.stats.n_in, "changed": 0, "unchanged": 0, "removed": 0}
    again = export(store, settings, out=parent / "b", fmt="m5product", version="v3")  # its shards all done: they stand
    assert again.shards_written == 0 and again.changes == {"new": 0, "changed": 0, "unchanged": r.stats.n_in,
                                                           "removed": 0}


def test_incremental_versions_on_object_storage(grown, aws, tmp_path):
    """The same on s3:// (moto's server on 127.0.0.1): v1 in full, v3 beside it takes v1's unchanged
    shards over (CopyObject into its own prefix); its objects, read back with boto3, hold the samples of a
    full local export; check-shards and the training loader read it; it stands once v1 is removed."""
    pytest.importorskip("s3fs")
    from m5data.export.check import check_shards

    store, settings, _, _ = grown
    parent = f"s3://{aws['bucket']}/inc-{tmp_path.name}"
    first = export(store, settings, out=f"{parent}/v1-webdataset-all", version="v1")
    assert first.base is None
    v3 = export(store, settings, out=f"{parent}/v3-webdataset-all", version="v3")
    assert v3.base == "v1-webdataset-all" and v3.shards_inherited > 0 and v3.shards_written < v3.shards
    mirror = mirrored(aws, parent, tmp_path / "mirror")
    client, prefix = aws["client"], parent.split("/", 3)[3]
    export(store, settings, out=tmp_path / "full", version="v3", full=True)
    assert samples_of(mirror / "v3-webdataset-all") == samples_of(tmp_path / "full")
    report = check_shards(f"{parent}/v3-webdataset-all")
    assert report.ok and report.samples == len(samples_of(tmp_path / "full")), report.problems
    if importlib.util.find_spec("torch"):
        from m5data.train.config import load_config
        from m5data.train.data import loader

        cfg = load_config("small").model
        got = sorted(p for b in loader(f"{parent}/v3-webdataset-all", "train", cfg, batch_size=16) for p in b["product_id"])
        assert got == sorted(p for b in loader(tmp_path / "full", "train", cfg, batch_size=16) for p in b["product_id"])
    # v3's prefix holds its own objects (v1's taken over by server-side copies): no path out of it, and
    # removing v1's objects (a takedown's old release) leaves v3 whole
    assert_self_contained(mirror / "v3-webdataset-all")
    assert v3.stats.details["taken_over"] == {"server copy": v3.shards_inherited}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=aws["bucket"], Prefix=f"{prefix}/v1-webdataset-all/"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=aws["bucket"], Key=obj["Key"])
    report = check_shards(f"{parent}/v3-webdataset-all")
    assert report.ok and report.samples == len(samples_of(tmp_path / "full")), report.problems


def mirrored(aws, parent: str, mirror: Path) -> Path:
    """The objects under ``parent`` (s3://bucket/prefix), read back with boto3 into ``mirror``."""
    client, prefix = aws["client"], parent.split("/", 3)[3]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=aws["bucket"], Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            path = mirror / obj["Key"][len(prefix) + 1:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(client.get_object(Bucket=aws["bucket"], Key=obj["Key"])["Body"].read())
    return mirror


def test_a_shard_that_lost_a_sample_is_copied_on_object_storage(grown, aws, tmp_path):
    """On s3://: a re-written product's old shard is read back from the previous version's prefix and
    copied without it; the new version holds the samples of a full local export and checks clean."""
    pytest.importorskip("s3fs")
    from support.demo_fixtures import copy_store

    store, settings, _, _ = grown
    copy = Store.open(copy_store(store.root, tmp_path))
    parent = f"s3://{aws['bucket']}/kept-{tmp_path.name}"
    export(copy, settings, out=f"{parent}/v3-webdataset-all", version="v3")
    grow(copy, "s", 1, sorted(product_ids(copy))[3])
    copy.write("splits", hashed_splits(product_ids(copy), "v5"))
    two = settings_for(copy, **{"export.shard_size": 4, "export.workers": 2})  # copies and uploads in the workers
    r = export(copy, two, out=f"{parent}/v5-webdataset-all")
    assert r.base == "v3-webdataset-all" and r.shards_kept >= 1 and r.changes["changed"] == 1
    export(copy, settings, out=tmp_path / "full", version="v5", full=True)
    assert samples_of(mirrored(aws, parent, tmp_path / "mirror") / "v5-webdataset-all") == samples_of(tmp_path / "full")
    report = check_shards(f"{parent}/v5-webdataset-all")
    assert report.ok, report.problems


def test_the_cli_says_what_it_took_over_and_full_writes_every_shard(grown, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    store = grown[0]
    args = ["--store", str(store.root), "export", "--shard-size", "4", "--workers", "1"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "v2"), "--version", "v2"])
    assert first.exit_code == 0, first.output
    inc = runner.invoke(app, [*args, "--out", str(tmp_path / "v3"), "--version", "v3"])
    assert inc.exit_code == 0 and "taken over from v2" in inc.output and "samples: new " in inc.output, inc.output
    full = runner.invoke(app, [*args, "--out", str(tmp_path / "v3-full"), "--version", "v3", "--full"])
    assert full.exit_code == 0 and "taken over" not in full.output, full.output
    assert not list((tmp_path / "v3-full").glob("*.index.json"))[0].read_text().count("../")



def member_digests(store, members) -> dict:
    """``(split, product_id) -> digest`` of every sample of ``members``, in export order (``digest_table``)."""
    from m5data.export.digests import digest_table

    con = store.connect()
    try:
        t = digest_table(con, members.sql(), members.order_sql("m.split", "m.product_id"))
    finally:
        con.close()
    return dict(zip(zip(t.column("split").to_pylist(), t.column("product_id").to_pylist()), t.column("digest").to_pylist()))


def test_a_sample_digest_changes_with_every_input_of_its_sample_and_only_then(demo_store_factory, tmp_path):
    """The digests are computed by DuckDB from the rows a sample is made of (no sample assembled): each
    kind of change to one product moves its digest and no other's; a change outside the sample does not."""
    import pyarrow.compute as pc
    from support.demo_fixtures import copy_store

    from m5data.export.members import split_counts

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    ids = sorted(product_ids(store))
    store.write("splits", hashed_splits(ids, "v1"))

    def digests():
        return member_digests(store, split_counts(store, "v1"))

    def one_row(table, pid, column, value):
        rows = store.read(table)
        rows = rows.filter(pc.equal(rows.column("product_id"), pid))
        if table == "media":  # a row a sample is made of (a read's order is not the parts')
            rows = rows.filter(pc.and_(pc.equal(rows.column("kind"), "image_norm"), pc.equal(rows.column("status"), "ok")))
        rows = rows.slice(0, 1)
        return rows.set_column(rows.schema.get_field_index(column), column, pa.array([value], rows.schema.field(column).type))

    before = digests()
    assert before == digests() and len(before) == len(hashed_splits(ids, "v1"))  # the same store, the same digests
    with_specs = sorted({r["product_id"] for r in store.read("specs").to_pylist()} & set(ids))
    with_image = sorted({r["product_id"] for r in store.read("media").to_pylist()
                         if r["kind"] == "image_norm" and r["status"] == "ok"} & set(ids))
    edits = [
        ("products", ids[0], "title", "another title"),
        ("specs", with_specs[1], "value", "another value"),
        ("media", with_image[2], "blob", "blobs/00/another.jpg"),
        ("dedup", ids[3], "group_id", "another group"),
    ]
    for table, pid, column, value in edits:
        if table == "dedup" and not store.count("dedup"):
            store.write("dedup", [{"product_id": p, "group_id": p} for p in ids])
            before = digests()
        store.write(table, one_row(table, pid, column, value))
        after = digests()
        moved = {key for key in before if after.get(key) != before[key]}
        assert moved and {p for _, p in moved} == {pid}, (table, column, moved)
        before = after
    # a column no sample is made of (the crawl run that stored it) moves nothing; crawled_at is one now
    # (the sample's provenance: docs/compliance.md)
    store.write("products", one_row("products", ids[4], "run_id", "another run"))
    assert digests() == before
    store.write("products", one_row("products", ids[4], "crawled_at", None))
    assert {key[1] for key, d in digests().items() if d != before[key]} == {ids[4]}


def test_new_shards_cut_from_the_keys_are_the_shards_cut_from_the_store(grown):
    """plan_keys (the new and changed keys, in export order, no store read) gives plan_export's shards
    and plan hash for the same members."""
    from m5data.export.members import split_counts
    from m5data.export.plan import plan_export, plan_keys

    store = grown[0]
    members = split_counts(store, "v3")
    keys = list(member_digests(store, members))
    picked = keys[::3]
    for size in (1, 4, 7):
        assert plan_keys(picked, size) == plan_export(store, members, size, keep=set(picked))


def test_only_the_products_written_since_the_base_are_hashed_and_written(grown, tmp_path):
    """A spec row, a caption, a media row and a dedup group of four products written after the base
    export: exactly those four are hashed and written into new shards, every other sample keeps its
    base digest and shard; the version holds the samples and digests of a full export."""
    import pyarrow.compute as pc
    from support.demo_fixtures import copy_store

    from m5data.export.samples import safe_key

    store, settings, _, _ = grown
    v3_last(grown)
    copy = Store.open(copy_store(store.root, tmp_path))
    ids = sorted(product_ids(copy))
    copy.write("dedup", [{"product_id": p, "group_id": p} for p in ids])  # every product in a group, as after dedup
    same_members(copy, "v3", "v4")
    export(copy, settings, out=copy.where("exports/v4-webdataset-all"))
    members = same_members(copy, "v4", "v5")
    in_version = sorted({p for _, p in members})
    specs, media, captions = copy.read("specs"), copy.read("media"), copy.read("captions")
    with_specs = sorted(set(specs.column("product_id").to_pylist()) & set(in_version))
    norm = media.filter(pc.and_(pc.equal(media.column("kind"), "image_norm"), pc.equal(media.column("status"), "ok")))
    with_image = sorted(set(norm.column("product_id").to_pylist()) & set(in_version))
    with_caption = sorted(set(captions.filter(pc.equal(captions.column("status"), "ok")).column("product_id").to_pylist())
                          & set(in_version))
    spec_pid = with_specs[0]
    caption_pid = next(p for p in with_caption if p != spec_pid)
    media_pid = next(p for p in with_image if p not in (spec_pid, caption_pid))
    dedup_pid = next(p for p in reversed(in_version) if p not in (spec_pid, caption_pid, media_pid))
    copy.write("specs", one_row(copy, "specs", spec_pid, "value", "another value"))
    copy.write("captions", one_row(copy, "captions", caption_pid, "text", "another caption"))
    row = norm.filter(pc.equal(norm.column("product_id"), media_pid)).slice(0, 1)
    blob = row.column("blob")[0].as_py()
    other = next(b for b in norm.column("blob").to_pylist() if b != blob)  # a duplicate product may share the image
    copy.write("media", row.set_column(row.schema.get_field_index("blob"), "blob", pa.array([other])))  # another image
    copy.write("dedup", one_row(copy, "dedup", dedup_pid, "group_id", in_version[0]))
    touched = {spec_pid, caption_pid, media_pid, dedup_pid}
    assert len(touched) == 4
    out = Path(copy.where("exports/v5-webdataset-all"))
    r = export(copy, settings, out=out)
    n = sum(1 for _, p in members if p in touched)
    assert r.base == "v4-webdataset-all" and r.stats.details["hashed"] == n
    assert r.changes == {"new": 0, "changed": n, "unchanged": len(members) - n, "removed": 0}
    assert written_keys(out) == {(s, safe_key(p)) for s, p in members if p in touched}
    export(copy, settings, out=tmp_path / "full", version="v5", full=True)
    assert samples_of(out) == samples_of(tmp_path / "full")
    assert sample_list(out) == sample_list(tmp_path / "full")
    assert check_shards(out).ok


def test_a_relabelled_category_rewrites_its_samples_and_the_same_labels_written_again_none(grown, tmp_path):
    """label_map and taxonomy written whole again with the same rows (as align does every night): no
    sample hashed or written. One category mapped to another class: exactly its products' samples
    are written. A base folder without its _labels.parquet: every sample hashed (none written)."""
    import pyarrow.compute as pc
    from support.demo_fixtures import copy_store

    from m5data.export.samples import safe_key

    store, settings, _, _ = grown
    v3_last(grown)
    copy = Store.open(copy_store(store.root, tmp_path))
    for table in ("taxonomy", "label_map"):
        copy.replace(table, copy.read(table))
    members = same_members(copy, "v3", "v4")
    same = export(copy, settings, out=copy.where("exports/v4-webdataset-all"))
    assert same.base == "v3-webdataset-all" and same.stats.details["hashed"] == 0 and same.shards_written == 0
    assert same.changes == {"new": 0, "changed": 0, "unchanged": len(members), "removed": 0}

    products = copy.read("products", columns=["product_id", "platform", "category_path"])
    paths = {p: (pl, " > ".join(c or [])) for p, pl, c in zip(*(products.column(c).to_pylist()
                                                                   for c in products.column_names))}
    labels = copy.read("label_map")
    pid = sorted(p for _, p in members)[5]
    platform, raw = paths[pid]
    row = labels.filter(pc.and_(pc.equal(labels.column("platform"), platform), pc.equal(labels.column("raw_path"), raw)))
    classes = sorted(set(labels.column("class_id").to_pylist()) - {row.column("class_id")[0].as_py()} - {None})
    copy.write("label_map", row.set_column(row.schema.get_field_index("class_id"), "class_id",
                                           pa.array([classes[0]], pa.int32())))
    same_members(copy, "v4", "v5")
    out = Path(copy.where("exports/v5-webdataset-all"))
    r = export(copy, settings, out=out)
    mine = {(s, p) for s, p in members if paths[p] == (platform, raw)}
    assert r.stats.details["hashed"] == len(mine) and r.changes["changed"] == len(mine) > 0
    assert written_keys(out) == {(s, safe_key(p)) for s, p in mine}

    (out / "_labels.parquet").unlink()  # an older folder: what its samples' labels were is not known
    copy.replace("label_map", copy.read("label_map"))
    same_members(copy, "v5", "v6")
    again = export(copy, settings, out=copy.where("exports/v6-webdataset-all"))
    assert again.base == "v5-webdataset-all" and again.stats.details["hashed"] == len(members)
    assert again.shards_written == 0
    export(copy, settings, out=tmp_path / "full", version="v5", full=True)
    assert samples_of(out) == samples_of(tmp_path / "full")
    assert sample_list(out) == sample_list(tmp_path / "full")
