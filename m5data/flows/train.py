"""Prefect tasks for training and evaluation: thin wrappers over train.loop.train and train.evaluate.evaluate."""

from __future__ import annotations

from prefect import task


@task(name="train", retries=0)
def train_task(shards: str, out: str, config: str = "small", epochs: int = 1, max_steps: int | None = None,
               store_path: str | None = None, evaluate: bool = False) -> dict:
    """Train (or resume) a run, then optionally evaluate it; returns the counts (and a ``runs`` row when a store is given).

    No retries: a resumed run goes on from its checkpoint, so re-running the flow is the retry.
    """
    from ..storage import StageStats, Store, record_run
    from ..train.config import load_config
    from ..train.loop import train

    stats = StageStats("train")
    cfg = load_config(config)
    result = train(shards, out, cfg, epochs, max_steps=max_steps)
    stats.n_in, stats.n_out = result.steps, 1
    row = {"run": str(result.run), "steps": result.steps, "first": result.first, "last": result.last,
           "samples_per_s": result.samples_per_s, "weights": result.weights}
    if evaluate:
        from ..train.evaluate import evaluate as run_eval

        # the backbone of the config this task was given, not the one the run folder names
        row["metrics"] = run_eval(out, shards, image_backbone=cfg.model.image_backbone or None)["rows"]
    stats.finish("ok")
    if store_path:
        record_run(Store.open(store_path), stats, {"shards": shards, "out": out, "config": config, "epochs": epochs})
    return {**stats.row(), **row}


@task(name="evaluate", retries=0)
def evaluate_task(run: str, shards: str) -> dict:
    """The papers' metrics table for a run (also written as metrics.json / metrics.md in the run folder)."""
    from ..train.evaluate import evaluate

    return evaluate(run, shards)
