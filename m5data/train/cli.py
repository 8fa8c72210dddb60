"""``m5data train`` (the train stage's ``run``, m5data/train/stage.py) and ``m5data evaluate`` (train.evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import esc
from ..verbs import one_line_errors


def train(
    ctx: typer.Context,
    shards: str = typer.Option(..., "--shards", help="Export folder or URL (s3://bucket/prefix) with the train split's WebDataset shards (train-*.tar)."),
    preset: str = typer.Option("small", "--preset", help="Model preset: small, paper, or a TOML file ([model], [train], base = small|paper)."),
    old_preset: Optional[str] = typer.Option(None, "--config", hidden=True, help="Deprecated name of --preset."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Passes over the train split."),
    out: Path = typer.Option(..., "--out", help="Run folder: log.jsonl, checkpoint.pt, model.pt (resumed when it has a checkpoint)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda when available)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps in total, counting the resumed checkpoint (a re-run at N trains nothing)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of everything (default: the preset's)."),
) -> None:
    """Train the thin SCALE model on exported shards; every loss and the modality weights are logged.

    Several processes (GPUs, or CPU processes over gloo): under torchrun, as in the second example.

    \b
    Examples:
      m5data train --shards shards/ --out run/ --epochs 5
      torchrun --nproc-per-node 2 -m m5data train --shards shards/ --out run/
    """
    from m5data.console import console

    from ..console import Table
    from ..verbs import run_stage, stage_context
    from .distributed import distributed_from_env

    main = distributed_from_env().main  # under torchrun, rank 0 alone reports
    rctx = stage_context(ctx, store=False, progress=main, options={
        "shards": shards, "out": out, "preset": old_preset or preset, "epochs": epochs, "max_steps": max_steps,
        "device": device, "seed": seed, "evaluate": False, "record": False})
    d = run_stage("train", rctx, summary=False).details  # a bad preset, shard or run folder: UserErrors
    if not main:
        return
    if d["resumed_from"] and d["steps"] == d["resumed_from"]:
        why = (f"--max-steps {max_steps} (a total) reached" if max_steps and d["steps"] >= max_steps
               else f"all {epochs} epochs done")
        console.print(f"nothing to train: the checkpoint in {esc(str(out))} is at step {d['steps']}, {why}; "
                      f"model {esc(str(out / 'model.pt'))}", soft_wrap=True)
        return
    if d["resumed_from"]:
        console.print(f"resumed from step {d['resumed_from']} (checkpoint in {esc(str(out))})", soft_wrap=True)
    table = Table(title=f"train {out} ({d['steps']} steps)")
    for col in ("loss", "first steps", "last steps"):
        table.add_column(col, justify="right" if col != "loss" else "left")
    for key in d["first"]:
        table.add_row(key, f"{d['first'][key]:.4f}", f"{d['last'][key]:.4f}")
    console.print(table)
    if d["weights"]:
        console.print("modality weights: " + ", ".join(f"{k} {v:.3f}" for k, v in d["weights"].items()))
    console.print(f"{d['samples_per_s']:.1f} samples/s; log {esc(str(out / 'log.jsonl'))}; "
                  f"model {esc(str(out / 'model.pt'))}")


def evaluate(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", help="A run folder written by `m5data train`."),
    shards: str = typer.Option(..., "--shards", help="Export folder or URL with query-c, gallery-c, query-fg, gallery-fg, cls-train, cls-test shards."),
    modalities: Optional[list[str]] = typer.Option(None, "--modalities", help="A combination such as image,text (repeatable: one row each; default: text, image, text+image, text+image+table, all five)."),
    device: Optional[str] = typer.Option(None, "--device"),
    features_out: Optional[Path] = typer.Option(None, "--features-out", help="Also write fused features as CSV lines item_id,f1,f2,... (the authors' format)."),
    image_backbone: Optional[Path] = typer.Option(None, "--image-backbone", help="The image backbone file of a run trained with one (never taken from the run folder: it is code)."),
) -> None:
    """The papers' table: retrieval mAP/Prec@1,5,10, linear-probe accuracy, k-means NMI/purity; with baselines.

    \b
    Examples:
      m5data evaluate --run run/ --shards shards/
      m5data evaluate --run run/ --shards shards/ --modalities text,image
    """
    from m5data.console import console, fail, warn

    from ..console import Table
    from .config import MODALITIES
    from .evaluate import evaluate as run_eval
    from .evaluate import format_cell, shown_columns, split_sizes, write_features

    combos = None
    if modalities:
        combos = []
        for spec in modalities:
            names = tuple(m.strip() for m in spec.split(",") if m.strip())
            bad = [m for m in names if m not in MODALITIES]
            if bad or not names:
                fail(f"--modalities: unknown {', '.join(bad) or spec!r} (known: {', '.join(MODALITIES)})")
            combos.append(names)
    with one_line_errors(FileNotFoundError):  # --features-out in a folder that is not there
        result = run_eval(run, shards, combos=combos, device=device, image_backbone=image_backbone)
        if features_out:
            n = write_features(run, shards, features_out, device=device, image_backbone=image_backbone)
            console.print(f"wrote {n} feature lines to {esc(str(features_out))}")
    cols = shown_columns(result["columns"], result["rows"])
    table = Table(title=f"evaluation of {esc(str(run))}")
    for c in cols:
        table.add_column(c, justify="left" if c in ("model", "modalities") else "right")
    for r in result["rows"]:
        table.add_row(*(format_cell(r.get(c)) for c in cols))
    console.print(table)
    console.print(f"split sizes: {split_sizes(result['counts'])}", highlight=False)
    for warning in result["warnings"]:
        warn(warning)
    console.print(f"written {esc(str(run / 'metrics.json'))} and {esc(str(run / 'metrics.md'))}", soft_wrap=True)
