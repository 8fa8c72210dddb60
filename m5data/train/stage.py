"""The train stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``.

No retries: a resumed run goes on from its checkpoint, so re-running the flow is the retry.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..stages import RunContext, StageError, StageRun
from ..storage import StageStats

NEEDS_SHARDS = ("train needs WebDataset shards: run the export stage with export.format = webdataset, "
                "or set train.shards")


def check(settings, options: dict) -> None:
    """The model preset (``options["preset"]``, else ``train.config``: small, paper or a TOML file;
    TrainConfigError) reads, and the run has a folder (:func:`run_folder`; StageError)."""
    from .config import load_config

    load_config(options.get("preset") or settings.train.config)
    run_folder(settings, options)


def run_folder(settings, options: dict) -> str:
    """The run folder: ``options["out"]``, else ``train.out``, else ``m5data-train`` beside the store (a store
    on object storage has no folder beside it: StageError)."""
    out = options.get("out") or settings.train.out
    if out:
        return out
    if not isinstance(settings.store_path, Path):
        raise StageError(f"train: the store {settings.store_path} is on object storage, so there is no folder "
                         "beside it for the run folder: set train.out (a local folder)")
    return str(settings.store_path.absolute().parent / "m5data-train")


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Train (or resume) a run on the export's shards (the ``[train]`` section), then evaluate it; recorded in ``runs``.

    The shards are ``train.shards``, else the folder the export stage of this run wrote
    (``options["previous"]["export"]``); :class:`StageError` when there are none in WebDataset.
    The ``train`` verb gives its own in ``options`` (``shards``, ``out``, ``preset``, ``epochs``,
    ``max_steps``, ``device``, ``seed``) and runs without a store (``record`` False).
    ``options["evaluate"]`` False skips the evaluation. With ``ctx.progress`` each step's losses are shown.
    """
    tr, o = ctx.settings.train, ctx.options
    exported = (o.get("previous") or {}).get("export") or {}
    shards = o.get("shards") or tr.shards or exported.get("out")
    if not shards or (exported and exported.get("format", "webdataset") != "webdataset"):
        raise StageError(NEEDS_SHARDS)
    out = run_folder(ctx.settings, o)
    epochs = o.get("epochs") or tr.epochs
    with _live(epochs) if ctx.progress else contextlib.nullcontext(None) as progress:
        return train_and_evaluate(shards, out, config=o.get("preset") or tr.config, epochs=epochs,
                                  max_steps=o.get("max_steps") or tr.max_steps or None,
                                  run=run if o.get("record", True) else None,
                                  evaluate=o.get("evaluate", True), device=o.get("device"), seed=o.get("seed"),
                                  progress=progress)


@contextlib.contextmanager
def _live(epochs: int):
    """One live line: the epoch, the step, the loss and each objective's, samples/s."""
    from rich.live import Live

    from ..console import console

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        def show(rec: dict) -> None:
            parts = " ".join(f"{k}={v:.3f}" for k, v in rec.items() if k.startswith("cl:") or k in ("mlm", "mrp", "mem", "mfp", "mam"))
            live.update(f"epoch {rec['epoch'] + 1}/{epochs} step {rec['step']} loss {rec['loss']:.3f} "
                        f"{rec['samples_per_s']:.1f} samples/s  {parts}")

        yield show


def train_and_evaluate(shards: str, out: str | Path, config: str = "small", epochs: int = 1,
                       max_steps: int | None = None, run: StageRun | None = None, evaluate: bool = True,
                       device: str | None = None, seed: int | None = None, progress=None) -> StageStats:
    """Train, then (``evaluate``) the papers' metrics table; the run's counts, with both in ``details``.

    In the train stage's ``run`` (the contract's: it takes no lock, training reads shards, not the store)
    the run gets a ``runs`` row. ``seed`` replaces the preset's; ``progress(record)`` gets each logged step.
    """
    from .config import load_config
    from .loop import train

    stats = run.stats if run is not None else StageStats("train")
    cfg = load_config(config)
    if seed is not None:
        cfg.train.seed = seed
    result = train(shards, out, cfg, epochs, device=device, max_steps=max_steps, progress=progress)
    stats.n_in, stats.n_out = result.steps, 1
    stats.details.update(run=str(result.run), steps=result.steps, first=result.first, last=result.last,
                         samples_per_s=result.samples_per_s, weights=result.weights,
                         resumed_from=result.resumed_from)
    if evaluate:
        from .evaluate import evaluate as run_eval

        # the backbone of the config this run was given, not the one the run folder names
        result = run_eval(out, shards, image_backbone=cfg.model.image_backbone or None)
        stats.details["metrics"], stats.details["split_warnings"] = result["rows"], result["warnings"]
    stats.finish("ok")
    if run is not None:
        run.record({"shards": shards, "out": str(out), "config": config, "epochs": epochs})
    return stats
