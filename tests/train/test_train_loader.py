"""Reading a real export with more loader workers than shards (issue 75, 15): a default demo export
has one shard per split, and both the documented webdataset reader (docs/export.md) and
``m5data.train.data.loader`` read every sample once with ``num_workers=2``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def one_shard_export(demo_store_factory, tmp_path_factory):
    from support.demo_fixtures import copy_store

    from m5data import config as cfg
    from m5data.export.run import export
    from m5data.splits import build
    from m5data.storage import Store

    tmp = tmp_path_factory.mktemp("one-shard-export")
    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp))
    settings = cfg.load(None, {"store.path": str(store.root)}, environ={})
    build(store, settings)
    export(store, settings, out=tmp / "shards", fmt="webdataset")
    return tmp / "shards"


def _keys(folder: Path, split: str) -> list[str]:
    """The product ids of the split, from its shards' own records."""
    import webdataset as wds

    index = json.loads((folder / f"{split}.index.json").read_text())
    urls = [str(folder / s["url"]) for s in index["shardlist"]]
    return sorted(json.loads(s["json"])["product_id"] for s in wds.WebDataset(urls, shardshuffle=False))


def test_the_documented_reader_works_with_two_workers_on_one_shard(one_shard_export):
    index = json.loads((one_shard_export / "train.index.json").read_text())
    assert len(index["shardlist"]) == 1  # what a default demo export writes
    doc = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```", doc, re.S) if "WebLoader" in block)
    code = code.replace("DIR", str(one_shard_export))
    seen = []
    code = code.replace('    sample["__key__"]', '    seen.append(sample["json"]["product_id"]); sample["__key__"]')
    exec(compile(code, "docs/export.md", "exec"), {"seen": seen})  # noqa: S102  (the docs' own example)
    assert sorted(seen) == _keys(one_shard_export, "train")


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_training_loader_reads_every_sample_once_with_more_workers_than_shards(one_shard_export, shuffle):
    from m5data.train.config import load_config
    from m5data.train.data import loader

    cfg = load_config("small").model
    for split in ("train", "gallery-c"):
        batches = loader(one_shard_export, split, cfg, batch_size=4, workers=2, shuffle=shuffle, seed=3)
        assert batches.num_workers == 2
        ids = [pid for batch in batches for pid in batch["product_id"]]
        assert sorted(ids) == _keys(one_shard_export, split), split
