"""Thin SCALE: metrics against hand-computed and library values, training, resume after a kill, evaluation."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from m5data.train.config import MODALITIES, TrainConfigError, load_config
from m5data.train.metrics import cluster_accuracy, purity, retrieval, retrieval_scores

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ metrics
def test_retrieval_hand_computed():
    # query 1: relevant at ranks 1 and 3; query 2: relevant at rank 2 only
    rel = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]], dtype=bool)
    m = retrieval(rel, ks=(1, 3, 5))
    assert m["mAP@1"] == pytest.approx((1 + 0) / 2) == m["Prec@1"]
    # AP@3: q1 (1/1 + 2/3) / 2 = 0.8333, q2 (1/2) / 1 = 0.5
    assert m["mAP@3"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert m["Prec@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["Prec@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)


def test_retrieval_equals_brute_force():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(20, 8)), rng.normal(size=(60, 8))
    ql, gl = rng.integers(0, 4, 20).tolist(), rng.integers(0, 4, 60).tolist()
    got = retrieval_scores(q, ql, g, gl, ks=(1, 5, 10))
    for k in (1, 5, 10):
        aps, precs = [], []
        for i in range(20):
            sims = [(-(q[i] @ g[j]) / (np.linalg.norm(q[i]) * np.linalg.norm(g[j])), j) for j in range(60)]
            top = [j for _, j in sorted(sims)][:k]
            hits, ap = 0, 0.0
            for r, j in enumerate(top, 1):
                if gl[j] == ql[i]:
                    hits += 1
                    ap += hits / r
            aps.append(ap / hits if hits else 0.0)
            precs.append(hits / k)
        assert got[f"mAP@{k}"] == pytest.approx(np.mean(aps))
        assert got[f"Prec@{k}"] == pytest.approx(np.mean(precs))


def test_clustering_metrics_against_sklearn_and_brute_force():
    from sklearn.metrics import accuracy_score, normalized_mutual_info_score

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 40)
    clusters = np.where(rng.random(40) < 0.7, (labels + 1) % 3, rng.integers(0, 3, 40))
    best = max(accuracy_score(labels, [p[c] for c in clusters]) for p in itertools.permutations(range(3)))
    assert cluster_accuracy(labels.tolist(), clusters) == pytest.approx(best)
    majority = sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters)) / 40
    assert purity(labels.tolist(), clusters) == pytest.approx(majority)
    from m5data.train.metrics import clustering

    x = np.eye(3)[labels] + rng.normal(0, 0.01, (40, 3))
    m = clustering(x, labels.tolist())
    assert m["NMI"] == pytest.approx(1.0) and m["purity"] == pytest.approx(1.0) and m["cluster_acc"] == pytest.approx(1.0)
    assert normalized_mutual_info_score(labels, clusters) < 1


def test_config_presets_and_errors(tmp_path):
    assert load_config("small").model.dim == 128
    paper = load_config("paper")
    assert (paper.model.dim, paper.model.modality_layers, paper.model.joint_layers, paper.model.text_len,
            paper.model.table_len, paper.train.batch_size) == (768, 6, 6, 36, 64, 64)
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ndimm = 3\n")
    with pytest.raises(TrainConfigError, match="model.dimm"):
        load_config(bad)
    with pytest.raises(TrainConfigError, match="small, paper"):
        load_config("nope")


@pytest.mark.parametrize("flag", ["--preset", "--config"])
def test_train_takes_the_preset_as_preset_and_as_the_old_config_name(flag, tmp_path):
    """``--preset`` names the model preset; ``--config``, its old name, still works (hidden from --help)."""
    from support.cli_inprocess import invoke

    done = invoke("train", "--shards", str(tmp_path), flag, "nope", "--out", str(tmp_path / "run"))
    assert done.returncode != 0 and "--preset must be small, paper or a TOML file" in done.stdout + done.stderr
    assert not (tmp_path / "run").exists()
    shown = invoke("train", "--help")
    assert "--preset" in shown.stdout and "--config" not in shown.stdout


# ------------------------------------------------------------------------------------------ model
@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from support.train_shards import write_shards

    return write_shards(tmp_path_factory.mktemp("shards"))


def test_batches_zero_impute_missing_modalities(shards):
    from m5data.train.data import loader

    cfg = load_config("small").model
    batch = next(iter(loader(shards, "train", cfg, batch_size=32)))
    assert batch["text"].shape == (32, 36) and batch["image"].shape == (32, 16, 768)
    assert batch["audio"].shape == (32, 16, 80) and batch["table"].shape == (32, 64, 2)
    assert bool(batch["image_present"].all())
    assert not bool(batch["video_present"].all()) and bool(batch["video_present"].any())
    missing = ~batch["video_present"]
    assert float(batch["video"][missing].abs().sum()) == 0.0


def test_simcl_weights_start_at_one_and_losses_cover_every_pair(shards):
    import torch

    from m5data.train.data import loader
    from m5data.train.model import Scale, losses

    cfg = load_config("small").model
    model = Scale(cfg)
    w = model.weights()
    assert torch.allclose(torch.triu(w), torch.triu(torch.ones(5, 5))) and float(torch.tril(w, -1).abs().sum()) == 0
    batch = next(iter(loader(shards, "train", cfg, batch_size=32)))
    total, parts = losses(model, batch, torch.Generator().manual_seed(0))
    assert total.requires_grad
    assert {f"cl:{a}-{b}" for a, b in itertools.combinations(MODALITIES, 2)} <= set(parts)
    assert {"mlm", "mrp", "mem", "mfp", "mam"} <= set(parts)


def test_training_lowers_every_loss_beats_random_and_prints_the_text_baseline(shards, tmp_path):
    from m5data.train.evaluate import evaluate
    from m5data.train.loop import train

    cfg = load_config("small")
    cfg.train.workers = 0
    cfg.train.checkpoint_every = 1000
    result = train(shards, tmp_path / "run", cfg, epochs=8)
    assert result.steps == 8 * 3
    for key in ("loss", "cl:text-image", "cl:image-table", "mlm", "mrp", "mem"):
        assert result.last[key] < result.first[key], (key, result.first[key], result.last[key])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 24 and set(log[-1]["weights"]) >= {"text", "text-image", "video-audio"}
    assert any(abs(v - 1.0) > 1e-6 for v in log[-1]["weights"].values())  # the weights are learned
    out = evaluate(tmp_path / "run", shards)
    rows = {r["model"]: r for r in out["rows"]}
    ours, rnd = rows["SCALE (thin)"], rows["random"]
    assert ours["coarse mAP@10"] > rnd["coarse mAP@10"] and ours["accuracy"] > rnd["accuracy"]
    assert "TF-IDF" in rows and (tmp_path / "run" / "metrics.md").read_text().startswith("| model")


def test_resume_after_sigkill(shards, tmp_path):
    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\ncheckpoint_every = 2\nworkers = 0\nbatch_size = 16\n")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "m5data", "train", "--shards", str(shards), "--preset", str(conf), "--epochs", "2", "--out", str(run)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    import torch

    killed_at = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert killed_at >= 2 and not (run / "model.pt").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed from step" in done.stdout
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 2 * 6 and set(range(1, 13)) <= set(steps)  # every step trained, the last ones once more at most
    assert torch.load(run / "model.pt", weights_only=True)["step"] == 12



def test_max_steps_is_a_total_that_a_rerun_into_the_same_folder_keeps(shards, tmp_path):
    import torch
    from support.cli_inprocess import invoke

    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\nworkers = 0\nbatch_size = 16\n")
    run = tmp_path / "run"

    def train_to(n: int):
        done = invoke("train", "--shards", str(shards), "--preset", str(conf), "--epochs", "5", "--max-steps", str(n),
                      "--out", str(run))
        assert done.returncode == 0, done.stdout + done.stderr
        steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
        return done.stdout, steps, torch.load(run / "model.pt", weights_only=True)["step"]

    out, steps, at = train_to(2)
    assert steps == [1, 2] and at == 2
    out, steps, at = train_to(2)  # again: the checkpoint is at 2 already
    assert steps == [1, 2] and at == 2
    assert "nothing to train" in out and "at step 2, --max-steps 2 (a total) reached" in out
    out, steps, at = train_to(3)  # a larger total trains the difference
    assert steps == [1, 2, 3] and at == 3 and "resumed from step 2" in out

def test_torchrun_ddp_shares_the_split_and_writes_one_model(shards, tmp_path):
    """Two processes under torchrun (gloo on the CPU): each trains on half of the train split."""
    conf = tmp_path / "ddp.toml"
    conf.write_text("[train]\nworkers = 0\nbatch_size = 16\ncheckpoint_every = 1000\n")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "m5data",
           "train", "--shards", str(shards), "--preset", str(conf), "--epochs", "1", "--out", str(run), "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    # 96 train samples, 48 per process, batches of 16: 3 steps (one process alone takes 6)
    assert [r["step"] for r in log] == [1, 2, 3] and {r["world_size"] for r in log} == {2}
    assert done.stdout.count("modality weights") == 1  # rank 0 alone reports
    import torch

    state = torch.load(run / "model.pt", weights_only=False)
    assert state["step"] == 3 and not any(k.startswith("module.") for k in state["model"])
    assert json.loads((run / "config.json").read_text())["world_size"] == 2


def test_a_large_jpeg_decodes_at_a_reduced_scale_to_the_same_features(monkeypatch):
    """Image and frame features of a large JPEG come from libjpeg's scaled decode (1/2 .. 1/8): the
    same picture as a full decode resized, without decoding every pixel; grey and CMYK JPEGs give RGB."""
    import io

    from PIL import Image

    from m5data.train.config import ModelConfig
    from m5data.train.features import frame_features, image_patches

    cfg = ModelConfig()
    y, x = np.mgrid[0:768, 0:1024]
    rgb = np.stack([x * 255 // 1023, y * 255 // 767, (x + y) * 255 // 1790], axis=-1).astype(np.uint8)
    encoded = {}
    for mode in ("RGB", "L", "CMYK"):
        buf = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(buf, "JPEG", quality=95)
        encoded[mode] = buf.getvalue()
    from PIL import JpegImagePlugin

    decoded = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def record(im, mode, size):  # the real draft, and the size libjpeg will decode at
        out = draft(im, mode, size)
        decoded.append(im.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", record)
    full = Image.open(io.BytesIO(encoded["RGB"])).convert("RGB")
    want = np.asarray(full.resize((cfg.image_size, cfg.image_size), Image.BILINEAR), np.float32) / 255.0
    g = cfg.image_size // cfg.patch
    got = image_patches(encoded["RGB"], cfg).reshape(g, g, cfg.patch, cfg.patch, 3).transpose(0, 2, 1, 3, 4)
    assert np.abs(got.reshape(want.shape) - want).mean() < 0.01
    assert decoded == [(128, 96)]  # 1/8 of 1024 x 768, still at least 64 x 64
    for mode in ("L", "CMYK"):
        feats = image_patches(encoded[mode], cfg)
        assert feats.shape == (g * g, cfg.patch * cfg.patch * 3) and 0.2 < feats.mean() < 0.8
    frames = frame_features([encoded["RGB"], encoded["L"]], cfg)
    assert frames.shape == (2, cfg.frame_size * cfg.frame_size * 3)
    small = np.asarray(full.resize((cfg.frame_size, cfg.frame_size), Image.BILINEAR), np.float32).reshape(-1) / 255.0
    assert np.abs(frames[0] - small).mean() < 0.02
    assert decoded[-2:] == [(128, 96)] * 2  # a 16 px frame feature: 1/8 is the smallest scale libjpeg has


def test_a_local_torchscript_image_backbone_gives_the_image_tokens(shards, tmp_path):
    import torch

    from m5data.train.data import loader
    from m5data.train.loop import train

    class Tiny(torch.nn.Module):  # stands in for a torchvision/open_clip backbone saved with torch.jit
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 24, kernel_size=8, stride=8)

        def forward(self, x):
            return torch.relu(self.conv(x))  # (B, 24, 4, 4) on a 32 x 32 image

    program = torch.export.export(Tiny().eval(), (torch.zeros(1, 3, 32, 32),))
    torch.export.save(program, tmp_path / "tiny.pt2")
    conf = tmp_path / "bb.toml"
    conf.write_text('[model]\nimage_backbone = "tiny.pt2"\nimage_size = 32\n[train]\nworkers = 0\nbatch_size = 16\n')
    cfg = load_config(conf)
    assert cfg.model.image_backbone == str(tmp_path / "tiny.pt2")  # relative to the config file
    batch = next(iter(loader(shards, "train", cfg.model, batch_size=4)))
    assert batch["image"].shape == (4, 16, 24) and bool(batch["image_present"].all())
    result = train(shards, tmp_path / "run", cfg, epochs=1, max_steps=2)
    assert result.steps == 2 and "mrp" in result.last

    with pytest.warns(DeprecationWarning):  # TorchScript files load too
        torch.jit.save(torch.jit.script(Tiny()), tmp_path / "tiny.pt")
    conf.write_text('[model]\nimage_backbone = "tiny.pt"\nimage_size = 32\n')
    assert load_config(conf).model.image_backbone.endswith("tiny.pt")

    (tmp_path / "broken.pt").write_bytes(b"not a model")
    conf.write_text('[model]\nimage_backbone = "broken.pt"\n')
    with pytest.raises(TrainConfigError, match="broken.pt"):
        load_config(conf)
    conf.write_text('[model]\nimage_backbone = "missing.pt"\n')
    with pytest.raises(TrainConfigError, match="missing.pt: no such file"):
        load_config(conf)


def test_simcl_embeddings_see_only_their_own_modality(shards):
    """SIMCL's f_m is taken before the joint co-transformer: changing the image changes the image's
    embedding and the JCT's outputs, never the text's embedding (after the JCT every output sees every
    modality, and the contrastive losses could be met by copying)."""
    import torch

    from m5data.train.data import loader
    from m5data.train.model import Scale

    torch.manual_seed(0)
    model = Scale(load_config("small").model).eval()
    batch = next(iter(loader(shards, "train", model.cfg, batch_size=8)))
    other = dict(batch, image=torch.rand_like(batch["image"]))
    with torch.no_grad():
        a, b = model(batch), model(other)
    text, image = MODALITIES.index("text"), MODALITIES.index("image")
    assert torch.equal(a.unimodal[:, text], b.unimodal[:, text])
    assert not torch.allclose(a.unimodal[:, image], b.unimodal[:, image])
    assert not torch.allclose(a.joint[:, text], b.joint[:, text])


def test_pool_and_feature_settings(tmp_path, shards):
    import torch

    from m5data.train.data import loader
    from m5data.train.model import Scale

    for key, value in (("pool", "max"), ("feature", "fused")):
        conf = tmp_path / f"{key}.toml"
        conf.write_text(f'[model]\n{key} = "{value}"\n')
        with pytest.raises(TrainConfigError, match=f"model.{key}"):
            load_config(conf)
    cfg = load_config("small").model
    batch = next(iter(loader(shards, "train", cfg, batch_size=8)))
    torch.manual_seed(0)
    model = Scale(cfg).eval()
    with torch.no_grad():
        mean = model.fused(batch)
        model.cfg.feature = "joint"
        joint = model.fused(batch)
        model.cfg.pool = "cls"
        cls = model.fused(batch)
    assert mean.shape == joint.shape == cls.shape == (8, cfg.dim)
    assert torch.allclose(mean.norm(dim=1), torch.ones(8), atol=1e-5)
    assert not torch.allclose(mean, joint) and not torch.allclose(joint, cls)


@pytest.mark.slow
@pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
def test_on_the_default_demo_world_scale_beats_tfidf_on_coarse_retrieval(demo_store_factory, tmp_path):
    """The issue's measure: the default demo world (300 products, seed 0) split as `m5data demo` splits
    it (dedup groups), exported, the small config trained for the demo's 80 steps on the CPU, then the
    papers' table: every loss falls, and the fused text+image feature beats random and the text-only
    TF-IDF baseline on coarse retrieval."""
    from support.demo_fixtures import copy_store

    from m5data import config as cfg
    from m5data.annotate.dedup import job as dedup
    from m5data.export.run import export
    from m5data.splits import build
    from m5data.storage import Store
    from m5data.train.evaluate import evaluate
    from m5data.train.loop import train

    store = Store.open(copy_store(demo_store_factory(products=300, seed=0, faces=False), tmp_path))
    # the store was extracted without looking for faces (the demo world draws none: support.demo_fixtures.demo300)
    settings = cfg.load(None, {"store.path": str(store.root), "export.blur_faces": False}, environ={})
    dedup.run(store, settings)
    build(store, settings)
    export(store, settings, out=tmp_path / "shards", fmt="webdataset")
    config = load_config("small")
    config.train.checkpoint_every = 1000
    result = train(tmp_path / "shards", tmp_path / "run", config, epochs=20, max_steps=80, device="cpu")
    assert result.steps == 80
    for key, first in result.first.items():
        assert result.last[key] < first, (key, first, result.last[key])
    out = evaluate(tmp_path / "run", tmp_path / "shards", combos=[("text", "image"), MODALITIES], device="cpu")
    rows = {(r["model"], r["modalities"]): r for r in out["rows"]}
    ours, tfidf, rnd = rows[("SCALE (thin)", "text+image")], rows[("TF-IDF", "text")], rows[("random", "-")]
    print({name: {k: round(v, 4) for k, v in r.items() if k.startswith("coarse")} for name, r in rows.items()})
    assert out["counts"]["query-c"] >= 5
    for k in ("coarse mAP@5", "coarse mAP@10"):
        assert ours[k] > tfidf[k] > rnd[k], (k, ours[k], tfidf[k])
    assert ours["coarse mAP@1"] >= tfidf["coarse mAP@1"]


def test_training_inside_a_prefect_flow_survives_the_epoch_ends(shards, tmp_path, prefect_harness):
    """The pipeline's train stage runs in a Prefect task. The DataLoader workers are forks of that
    process; each epoch's workers must exit cleanly (they once inherited Prefect's thread exit hooks,
    exited with code 1, and the run died at the end of the first epoch)."""
    from m5data.flows.executor import stage_flow
    from m5data.storage import Store

    Store.init(tmp_path / "store")
    stats = stage_flow("train", str(tmp_path / "store"), options={"evaluate": False},
                       overrides={"train.shards": str(shards), "train.out": str(tmp_path / "run"),
                                  "train.config": "small", "train.epochs": 3})
    assert stats.details["steps"] == 9 and stats.status == "ok"
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 9


def test_a_run_from_before_pooling_loads_with_the_features_it_was_trained_for(tmp_path):
    """model.pt files written before ``pool`` / ``feature`` existed used the JCT's [CLS] outputs."""
    import dataclasses

    import torch

    from m5data.train.loop import load_model
    from m5data.train.model import Scale

    cfg = load_config("small")
    raw = cfg.as_dict()
    old = {k: v for k, v in raw["model"].items() if k not in ("pool", "feature", "table_property")}
    torch.save({"model": Scale(cfg.model).state_dict(), "config": {**raw, "model": old}, "step": 1}, tmp_path / "model.pt")
    _, loaded = load_model(tmp_path, "cpu")
    assert (loaded.model.pool, loaded.model.feature, loaded.model.table_property) == ("cls", "joint", False)
    assert dataclasses.replace(loaded.model, pool="mean", feature="encoders", table_property=True) == cfg.model


def test_table_entities_carry_their_property():
    from m5data.train.features import table_ids

    cfg = load_config("small").model
    ids = table_ids([["品牌", "森邦邦"], ["品牌", "卓丽"], ["颜色", "粉色"]], cfg)
    assert ids.shape == (3, 2) and len(set(ids[:, 0].tolist())) == 3
    assert ids[0, 1] == ids[1, 1] != ids[2, 1]  # one property, one property id
    assert table_ids([], cfg).shape == (0, 2)


def test_evaluate_prints_each_split_size_and_warns_of_a_split_too_small(tmp_path):
    """The demo's query-fg can hold one product: its 100% scores mean nothing, and evaluate says so."""
    from support.cli_inprocess import invoke
    from support.train_shards import SPLITS, write_shards

    shards = write_shards(tmp_path / "shards", sizes={**SPLITS, "query-fg": 1})
    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\nworkers = 0\nbatch_size = 8\ncheckpoint_every = 1000\n")
    done = invoke("train", "--shards", str(shards), "--preset", str(conf), "--max-steps", "1", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    done = invoke("evaluate", "--run", str(tmp_path / "run"), "--shards", str(shards), "--modalities", "text")
    assert done.returncode == 0, done.stderr
    out = " ".join((done.stdout + done.stderr).split())
    for split in ("query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test"):
        n = 1 if split == "query-fg" else SPLITS[split]
        assert f"{split} {n}" in out, (split, out)
    warning = next(line for line in done.stderr.splitlines() if "query-fg" in line)
    assert warning.startswith("warning:") and "1 product" in warning and "fine" in warning, warning
    assert not [line for line in done.stderr.splitlines() if "gallery-c" in line]  # 48: not warned about


def test_the_train_stage_reads_its_own_section(tmp_path):
    """The train stage's shards, run folder, preset, epochs and steps are ``[train]`` keys; without shards
    (none set, no export before it in the run) it says which key to set."""
    from m5data.config import load
    from m5data.stages import RunContext, StageError, call

    settings = load(None, {"store.path": str(tmp_path / "store")}, environ={})
    with pytest.raises(StageError, match=r"export\.format = webdataset, or set train\.shards$"):
        call("train", RunContext(settings, options={"evaluate": False}))
    assert [f"train.{k}" for k in ("shards", "out", "config", "epochs", "max_steps")] == \
        [key for key, _ in settings.items() if key.startswith("train.")]


def test_training_leaves_the_loader_workers_their_cores(monkeypatch):
    """torch's threads while training: the cores less the DataLoader's workers, at least one; a set
    OMP_NUM_THREADS is the user's choice (torch has read it) and stays."""
    import os

    from m5data.train.loop import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert (cpu_threads(2, 8), cpu_threads(0, 8), cpu_threads(8, 8), cpu_threads(20, 8)) == (6, 8, 1, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(2, 3) == 3
