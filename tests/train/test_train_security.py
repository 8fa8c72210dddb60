"""A run folder someone shares is untrusted: its weight files are read as weights only, its config is
checked, ``train --out`` leaves unrelated folders alone, and what evaluate writes cannot be aimed
elsewhere. Every refusal is a one-line CLI error naming the file, with no traceback."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_inprocess import invoke

from m5data.train.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TINY = """[model]
dim = 32
heads = 2
joint_layers = 1
text_vocab = 512
table_vocab = 512
[train]
workers = 0
batch_size = 16
checkpoint_every = 2
"""
STEPS_PER_EPOCH = 96 // 16  # the synthetic train split, batch 16


class Plant:
    """A pickled object whose loading creates a file: what a hostile run folder would use to run code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from support.train_shards import write_shards

    return write_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture()
def tiny(tmp_path):
    conf = tmp_path / "tiny.toml"
    conf.write_text(TINY)
    return conf


def cli(*args: str) -> subprocess.CompletedProcess:
    """``m5data ARGS`` in this process (tests/support/cli_inprocess.py): torch is imported once per test worker."""
    return invoke(*args)


def refused(done: subprocess.CompletedProcess, name: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    assert "error:" in done.stderr and name in done.stderr, out


def old_run(run: Path, conf: Path, shards: Path, *, with_model: bool = True) -> dict:
    """A run folder laid out exactly as m5data train wrote it before run folders were distrusted: no
    marker, config.json, log.jsonl, a checkpoint after one real step (model, AdamW, LambdaLR, the
    torch RNG as a byte tensor, the config as a dict) and model.pt."""
    import torch

    from m5data.train.data import loader
    from m5data.train.model import Objective, Scale, losses

    cfg = load_config(conf)
    torch.manual_seed(cfg.train.seed)
    model = Scale(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.train.warmup_steps)))
    batch = next(iter(loader(shards, "train", cfg.model, batch_size=cfg.train.batch_size)))
    total, _ = losses(Objective(model), batch, torch.Generator().manual_seed(7))
    total.backward()
    opt.step()
    sched.step()
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**cfg.as_dict(), "shards": str(shards), "epochs": 1, "world_size": 1}))
    (run / "log.jsonl").write_text(json.dumps({"step": 1, "epoch": 0, "batch": 0, "loss": float(total.detach())}) + "\n")
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "step": 1, "epoch": 0, "batch": 1, "rng": torch.get_rng_state(), "config": cfg.as_dict()}
    torch.save(state, run / "checkpoint.pt")
    if with_model:
        torch.save({"model": model.state_dict(), "config": cfg.as_dict(), "step": 1}, run / "model.pt")
    return state


def test_the_planted_pickle_runs_code_when_loaded_without_weights_only(tmp_path):
    """The payload the other tests use is live: loaded the old way, it creates its marker."""
    import torch

    torch.save({"model": {"w": Plant(tmp_path / "ran")}}, tmp_path / "model.pt")
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["model.pt", "checkpoint.pt"])
def test_evaluate_refuses_a_weight_file_whose_pickle_runs_code(shards, tiny, tmp_path, name):
    import torch

    run, marker = tmp_path / "shared", tmp_path / "pwned"
    run.mkdir()
    torch.save({"model": {"w": Plant(marker)}, "config": load_config(tiny).as_dict(), "step": 1}, run / name)
    done = cli("evaluate", "--run", str(run), "--shards", str(shards))
    refused(done, name)
    assert not marker.exists()
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize("marked", [False, True])
def test_train_resume_refuses_a_checkpoint_whose_pickle_runs_code(shards, tiny, tmp_path, marked):
    """Both an old-style run folder (config.json, log.jsonl) and one with the run marker."""
    import torch

    run, marker = tmp_path / "shared", tmp_path / "pwned"
    old_run(run, tiny, shards, with_model=False)
    torch.save({"model": {"w": Plant(marker)}, "config": load_config(tiny).as_dict(), "step": 1, "epoch": 0,
                "batch": 1}, run / "checkpoint.pt")
    if marked:
        (run / "m5data-run.json").write_text("{}")
    log_before = (run / "log.jsonl").read_bytes()
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(run), "--max-steps", "2")
    refused(done, "checkpoint.pt")
    assert not marker.exists()
    assert (run / "log.jsonl").read_bytes() == log_before and not (run / "model.pt").exists()


def test_an_old_run_folder_evaluates_and_resumes(shards, tiny, tmp_path):
    """What the old code wrote (config dict, torch RNG byte tensor, AdamW and LambdaLR states) loads
    as weights only, and training goes on from its checkpoint."""
    import torch

    from m5data.train.loop import load_model

    run = tmp_path / "old"
    state = old_run(run, tiny, shards)
    model, cfg = load_model(run, "cpu")
    assert cfg.as_dict() == load_config(tiny).as_dict()
    assert torch.equal(model.state_dict()["embed.text.weight"], state["model"]["embed.text.weight"])
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from step 1" in done.stdout
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS_PER_EPOCH + 1))  # the old line kept, the others appended
    assert torch.load(run / "model.pt", weights_only=True)["step"] == STEPS_PER_EPOCH
    assert (run / "m5data-run.json").is_file()  # recognised, and marked from now on


def test_a_new_checkpoint_holds_weights_only_and_restores_every_rng(shards, tiny, tmp_path):
    import random

    import numpy as np
    import torch

    from m5data.train.loop import train

    cfg = load_config(tiny)
    train(shards, tmp_path / "run", cfg, 1, max_steps=2)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # raises on any other object
    rng = state["rng"]
    assert isinstance(rng["torch"], torch.Tensor) and isinstance(rng["numpy"], list) and isinstance(rng["python"], list)
    random.seed(123)
    np.random.seed(123)
    from m5data.train.runfolder import restore_rng

    restore_rng(rng, tmp_path / "run" / "checkpoint.pt")
    after = (random.random(), float(np.random.random_sample()))
    restore_rng(rng, tmp_path / "run" / "checkpoint.pt")
    assert (random.random(), float(np.random.random_sample())) == after  # the saved states, not the seeds above
    assert json.loads((tmp_path / "run" / "m5data-run.json").read_text())["written_by"] == "m5data train"


def test_train_out_refuses_an_unrelated_folder_and_leaves_it_alone(shards, tiny, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    files = {"config.json": '{"lr": 0.1, "notes": "mine"}', "log.jsonl": '{"event": "mine"}\n', "notes.txt": "keep"}
    for name, text in files.items():
        (folder / name).write_text(text)
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(folder), "--max-steps", "1")
    refused(done, str(folder.name))
    assert {p.name: p.read_text() for p in folder.iterdir()} == files

    (folder / "config.json").write_text("{not json")  # a malformed config.json: not a run folder either
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(folder), "--max-steps", "1")
    refused(done, str(folder.name))
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)

    empty, new = tmp_path / "empty", tmp_path / "new" / "run"
    empty.mkdir()
    for out in (empty, new):
        done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(out), "--max-steps", "1")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (out / "m5data-run.json").is_file() and (out / "model.pt").is_file()
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(new), "--max-steps", "2")
    assert done.returncode == 0 and "resumed from step 1" in done.stdout, done.stdout + done.stderr


def _saved_model(run: Path, conf: Path, config=None) -> None:
    import torch

    from m5data.train.model import Scale

    cfg = load_config(conf)
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Scale(cfg.model).state_dict(), "config": cfg.as_dict() if config is None else config,
                "step": 1}, run / "model.pt")


@pytest.mark.parametrize("config, words", [
    ("not a dict", "config"),
    ({"name": "x", "model": {"dim": "32"}, "train": {}}, "model.dim"),
    ({"name": "x", "model": {"dim": 32, "heads": 2, "surprise": 1}, "train": {}}, "model.surprise"),
    ({"name": "x", "model": {"dim": 64, "heads": 2}, "train": {}}, "do not fit"),
])
def test_evaluate_refuses_a_config_of_the_wrong_shape_naming_it(shards, tiny, tmp_path, config, words):
    run = tmp_path / "run"
    _saved_model(run, tiny, config)
    done = cli("evaluate", "--run", str(run), "--shards", str(shards))
    refused(done, "model.pt")
    assert words in done.stderr


def test_evaluate_never_loads_a_backbone_named_by_the_run(shards, tiny, tmp_path):
    """A backbone file is a program (torch.export.load unpickles): a run's config naming one is refused
    unless the user names the file with --image-backbone."""
    import torch

    run = tmp_path / "run"
    _saved_model(run, tiny)
    state = torch.load(run / "model.pt", weights_only=True)
    state["config"]["model"]["image_backbone"] = str(tmp_path / "evil.pt2")
    torch.save(state, run / "model.pt")
    done = cli("evaluate", "--run", str(run), "--shards", str(shards))
    refused(done, "evil.pt2")
    assert "--image-backbone" in done.stderr


def test_evaluate_writes_through_no_symlink_of_the_run_folder(shards, tiny, tmp_path):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    _saved_model(run, tiny)
    victim.write_text("precious")
    (run / "metrics.json").symlink_to(victim)
    (run / "metrics.md").symlink_to(victim)
    done = cli("evaluate", "--run", str(run), "--shards", str(shards), "--modalities", "text")
    assert done.returncode == 0, done.stdout + done.stderr
    assert victim.read_text() == "precious"
    assert not (run / "metrics.json").is_symlink() and json.loads((run / "metrics.json").read_text())["rows"]


def test_train_appends_to_no_symlinked_log(shards, tiny, tmp_path):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    (run / "m5data-run.json").write_text("{}")
    victim.write_text("precious")
    (run / "log.jsonl").symlink_to(victim)
    done = cli("train", "--shards", str(shards), "--preset", str(tiny), "--out", str(run), "--max-steps", "1")
    refused(done, "log.jsonl")
    assert victim.read_text() == "precious"


def test_features_out_quotes_a_product_id_with_commas(tiny, tmp_path):
    import numpy as np
    import webdataset as wds
    from support.train_shards import sample

    from m5data.train.evaluate import write_features

    shards = tmp_path / "shards"
    shards.mkdir()
    rng = np.random.default_rng(0)
    ids = ["comma,1.0,2.0", 'quote"d', "plain:1"]
    with wds.TarWriter(str(shards / "query-c-000000.tar"), mtime=0) as tar:
        for k, pid in enumerate(ids):
            item = sample(rng, "query-c", k, 4)
            meta = json.loads(item["json"])
            item["json"] = json.dumps({**meta, "product_id": pid}).encode()
            tar.write(item)
    run = tmp_path / "run"
    _saved_model(run, tiny)
    out = tmp_path / "features.csv"
    assert write_features(run, shards, out, device="cpu") == 3
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert [r[0] for r in rows] == ids
    assert {len(r) for r in rows} == {1 + load_config(tiny).model.dim}
    assert all(float(v) == float(v) for r in rows for v in r[1:])


def test_a_refused_out_folder_fails_before_torch_is_imported(tmp_path):
    """Importing torch costs 3-4 CPU-seconds: a --out that is refused says so before that."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    code = ("import sys\n"
            "from m5data.train.config import load_config\n"
            "from m5data.train.loop import train\n"
            "from m5data.train.runfolder import RunFolderError\n"
            "try:\n"
            f"    train({str(tmp_path / 'shards')!r}, {str(folder)!r}, load_config('small'), 1)\n"
            "except RunFolderError as exc:\n"
            "    print('refused:', exc)\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "refused: --out" in done.stdout and "torch imported: False" in done.stdout, done.stdout + done.stderr


def test_evaluate_refuses_a_weight_file_whose_pickled_part_is_over_its_cap(shards, tiny, tmp_path):
    """A 40 MB string in the config: the weights-only unpickler would hold it all; refused unread."""
    import torch

    from m5data.train import runfolder

    run = tmp_path / "shared"
    run.mkdir()
    config = {**load_config(tiny).as_dict(), "padding": "x" * (40 << 20)}
    torch.save({"model": {}, "config": config, "step": 1}, run / "model.pt")
    done = cli("evaluate", "--run", str(run), "--shards", str(shards))
    refused(done, "model.pt")
    assert f"cap {runfolder.MAX_PICKLE_BYTES:,}" in done.stderr, done.stderr


def test_evaluate_refuses_a_weight_file_over_the_size_cap(shards, tiny, tmp_path, monkeypatch):
    import torch

    from m5data.train import runfolder

    run = tmp_path / "shared"
    run.mkdir()
    torch.save({"model": {"w": torch.zeros(1 << 20)}, "config": load_config(tiny).as_dict(), "step": 1},
               run / "model.pt")
    monkeypatch.setattr(runfolder, "MAX_WEIGHT_BYTES", 1 << 20)  # the file holds 4 MB of tensor
    done = cli("evaluate", "--run", str(run), "--shards", str(shards))
    refused(done, "model.pt")
    assert "over the 1,048,576-byte cap" in done.stderr, done.stderr

