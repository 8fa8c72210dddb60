"""The train stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``.

No retries: a resumed run goes on from its checkpoint, so re-running the flow is the retry.
"""

from __future__ import annotations

from pathlib import Path

from ..stages import RunContext, StageError
from ..storage import StageStats

NEEDS_SHARDS = ("train needs WebDataset shards: run the export stage with flows.export_format = webdataset, "
                "or set flows.train_shards")


def run(ctx: RunContext) -> StageStats:
    """Train (or resume) a run on the export's shards (``flows.train_*``), then evaluate it; recorded in ``runs``.

    The shards are ``flows.train_shards``, else the folder the export stage of this run wrote
    (``options["previous"]["export"]``); :class:`StageError` when there are none in WebDataset.
    ``options["evaluate"]`` False skips the evaluation.
    """
    fl = ctx.settings.flows
    exported = (ctx.options.get("previous") or {}).get("export") or {}
    shards = fl.train_shards or exported.get("out")
    if not shards or (exported and exported.get("format", "webdataset") != "webdataset"):
        raise StageError(NEEDS_SHARDS)
    out = fl.train_out or str(ctx.settings.store_path.absolute().parent / "m5data-train")
    return train_and_evaluate(shards, out, config=fl.train_config, epochs=fl.train_epochs,
                              max_steps=fl.train_max_steps or None, store=ctx.store,
                              evaluate=ctx.options.get("evaluate", True))


def train_and_evaluate(shards: str, out: str | Path, config: str = "small", epochs: int = 1,
                       max_steps: int | None = None, store=None, evaluate: bool = True) -> StageStats:
    """Train, then (``evaluate``) the papers' metrics table; the run's counts, with both in ``details``.

    With a ``store`` the run gets a ``runs`` row.
    """
    from ..storage import record_run
    from .config import load_config
    from .loop import train

    stats = StageStats("train")
    cfg = load_config(config)
    result = train(shards, out, cfg, epochs, max_steps=max_steps)
    stats.n_in, stats.n_out = result.steps, 1
    stats.details.update(run=str(result.run), steps=result.steps, first=result.first, last=result.last,
                         samples_per_s=result.samples_per_s, weights=result.weights)
    if evaluate:
        from .evaluate import evaluate as run_eval

        # the backbone of the config this run was given, not the one the run folder names
        stats.details["metrics"] = run_eval(out, shards, image_backbone=cfg.model.image_backbone or None)["rows"]
    stats.finish("ok")
    if store is not None:
        record_run(store, stats, {"shards": shards, "out": str(out), "config": config, "epochs": epochs})
    return stats
