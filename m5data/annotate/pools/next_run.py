"""Pools between full runs: the kept embedder, vectors and pools search only what changed (the
incremental run itself: :mod:`.update_run`).

A full run (the first, ``--full`` or the flow's ``full``, ``--fresh``, other pool settings, a kept
file missing, or a store grown past its fit) embeds every product and searches every query for its
top ``K + M`` (``M`` = ``pools.margin``; the table gets the top ``K``), and keeps in
``derived/pools/`` (a kept folder: on S3 too):

- ``vectors-<x>.npy`` / ``.usable.npy``: every product's vector (rows in product_id order);
- ``vectors-<x>.embedder.npz``: the fitted embedder (``embedder.py``: arrays only);
- ``ids-<tag>.arrow``: the product ids of those rows;
- ``lists-<tag>.npz``: per query, its ``K + M`` best gallery rows and scores, and a *floor*: no gallery
  product outside the list scores above it (-inf: the list holds the whole gallery);

and saves its state last, through the :class:`~m5data.stages.StageRun` the contract opened
(``derived/state/pools.json``: the watermarks it read, the settings' hash, those files, how many products
the embedder was fitted on, its report, and a full run's input state, :mod:`.input_state`).

A later run reads what changed since (``store.changed`` on products and captions, the products of
changed media rows). Nothing, with the same settings: **no work and no write**. Else only the new
and changed products are embedded, with the kept embedder; their vectors replace theirs in a copy
of the kept ones. Then, with ``C`` the changed and removed products and ``N`` the new and changed
ones now in the gallery:

- a kept query (not in ``C``) loses the entries of ``C`` from its list and gets the best ``K + M`` of
  ``N`` merged in; the floor rises to the best score left out. Every entry above the floor is exact
  (nothing outside scores higher), so while at least ``K`` entries stand above it the top ``K`` is
  the full search's; otherwise (a pool that lost more than ``M`` entries) the query is searched
  again against the whole gallery;
- a new or changed query is searched against the whole gallery.

Only the pools whose top ``K`` changed are written (``pools`` is replaced per query); pools of
products that are no longer queries are removed. With the same vectors the result is the full
search's (ties by product_id, scores to 6 decimals); a full rebuild fits the embedder again on the
grown store, so it differs by what the refit moves (docs/annotate.md gives the measured agreement).
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from ... import config as cfg
from ...stages import StageRun
from ..kernels import embed
from .candidate_lists import Lists, save_lists
from .input_state import REPORTED

STAGE = "pools"
READS = ("products", "captions", "media", "image_vectors")  # image_vectors: read with pools.image = vectors
FORMAT = 1  # the kept files' layout; another one means a full run
LAZY = ("vectors-*.npy", "vectors-*.npz", "ids-*", "lists-*", "*/block-*.npz")  # large kept files: fetched when used
KEPT_FILES = ("vectors-*", "ids-*", "lists-*")  # a complete run's kept files: those its state names stay


def inputs(settings: cfg.Settings, split_version: str | None, code: str, image_model: str = "") -> tuple:
    """What, beside the tables, decides the pools: the run's fingerprint (the block size and refit share do
    not); the registry's ``inputs`` (``stage.py``). ``image_model``: with ``pools.image = vectors``, the
    model whose vectors make the image block (another one: a full run)."""
    from .vectors import VERSION

    pool = {k: v for k, v in dataclasses.asdict(settings.pools).items() if k not in ("block", "refit_share", "compact_share")}
    if not pool["image_model"]:  # unset: the fingerprint a store's pools had before the setting was (no full run)
        del pool["image_model"]
    ex = settings.text  # what a caption is (extract's too)
    out = (FORMAT, code, VERSION, embed.IMAGE_DESCRIPTOR_VERSION, pool, settings.annotate.seed,
           ex.strip_brackets, ex.max_caption_chars, f"file:{ex.jieba_user_dict}" if ex.jieba_user_dict else "",
           split_version)
    return (*out, f"image model:{image_model}") if image_model else out  # others: the fingerprints they had


def run_config(settings: cfg.Settings, split_version: str | None, fp: str, up_to_date: bool = False) -> dict:
    """The ``config`` of a pools run's ``runs`` row."""
    sections = cfg.as_dict(settings)
    config = {"annotate": sections["annotate"], "pools": sections["pools"], "split_version": split_version,
              "fingerprint": fp}
    if up_to_date:
        config["up_to_date"] = True
    return config


def up_to_date(run: StageRun) -> dict | None:
    """The saved report when nothing pools read was written since its last complete run (and the last
    run was not a full one, whose own input state decides: it also sees a lost image file)."""
    store, state = run.store, run.state
    if state is None or "report" not in state or not run.unchanged():
        return None
    if "input_state" in state or not table_as_left(store, state):
        return None
    there = set(store.files("derived/pools"))
    return state if all(f"derived/pools/{f}" in there for f in state.get("files", {}).values()) else None


def table_as_left(store, state: dict) -> bool:
    """Whether the ``pools`` table is as the last complete run left it (no part removed, nothing written since)."""
    return state.get("pools_mark") == store.watermark("pools")


def _save_ids(path, ids: pa.Array) -> None:
    import pyarrow.feather as feather

    feather.write_feather(pa.table({"product_id": ids}), str(path), compression="uncompressed")


def _load_ids(path) -> pa.Array | None:
    import pyarrow.feather as feather

    try:
        return feather.read_table(str(path)).column("product_id").combine_chunks()
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowInvalid):
        return None


def save(run: StageRun, kept, config: dict, tag: str, ids: pa.Array, vectors: str, lists: Lists, fitted_on: int,
         report, **keep) -> None:
    """Keep the ids and lists of a complete run beside its vectors (``vectors-<x>``); complete the run (its
    ``runs`` row with ``config``, then its state, with ``keep``: a full run's input state), then drop the
    kept files no state names."""
    work = kept.path
    _save_ids(work / f"ids-{tag}.arrow", ids)
    save_lists(work / f"lists-{tag}.npz", lists)
    files = {"vectors": f"{vectors}.npy", "usable": f"{vectors}.usable.npy", "embedder": f"{vectors}.embedder.npz",
             "ids": f"ids-{tag}.arrow", "lists": f"lists-{tag}.npz"}
    s = report.stats
    saved = {k: getattr(report, k) for k in REPORTED}
    saved |= {"gaps": dict(report.gaps), "stats": {"n_in": s.n_in, "n_out": s.n_out, "failures": dict(s.failures)}}
    run.complete(config, files=files, fitted_on=fitted_on, report=saved, pools_mark=run.store.watermark("pools"),
                 **keep)
    keep = set(files.values()) | {f"{vectors}.json"}
    for pattern in KEPT_FILES:
        for name in kept.names(pattern):
            if name not in keep:
                kept.remove(name)
    kept.remove(WRITING)


def changed_products(store, since: dict[str, int], image_model: str = "") -> set[str]:
    """Products with ``products``, ``captions`` or ``media`` rows written since the watermarks ``since``
    (``run.since``), and, with ``image_model`` (``pools.image = vectors``), those with ``image_vectors``
    rows of that model written since."""
    import pyarrow.compute as pc

    ids: set[str] = set()
    for table in ("products", "captions"):
        ids.update(store.changed(table, int(since.get(table, 0))).column("product_id").to_pylist())
    if image_model:
        made = store.changed("image_vectors", int(since.get("image_vectors", 0)), columns=("product_id",), new=False)
        made = made.filter(pc.equal(made.column("model"), image_model))
        ids.update(p for p in made.column("product_id").to_pylist() if p is not None)
    media = store.changed("media", int(since.get("media", 0))).column("media_id").to_pylist()
    if media:
        con = store.connect(need=("media",), only=("media",), cursor=True)
        try:
            ids.update(r[0] for r in con.execute(
                "SELECT DISTINCT product_id FROM media WHERE media_id IN (SELECT unnest(?::VARCHAR[]))", [media]).fetchall()
                if r[0] is not None)
        finally:
            con.close()
    return ids


WRITING = "writing.json"  # in the kept folder while an incremental run writes pools (a killed one leaves it)


def why_full(run: StageRun, settings: cfg.Settings, kept) -> str | None:
    """Why this run cannot be incremental from ``run.since`` (None: it can): ``run.why_full``, or what of
    the last complete run it cannot start from."""
    store, state = run.store, run.state
    if run.since is None:
        return run.why_full
    if "files" not in state:
        return "settings changed"
    if not table_as_left(store, state) and not (kept.path / WRITING).is_file():  # not by a killed run of ours
        return "the pools table was written or compacted since the last complete run"
    total = store.count("products")
    if state.get("fitted_on", 0) < settings.pools.refit_share * total:
        return (f"fitted on {state.get('fitted_on', 0):,} products, below {settings.pools.refit_share:.0%} "
                f"of {total:,}")
    return None


__all__ = ["FORMAT", "LAZY", "Lists", "STAGE", "changed_products", "inputs", "run_config", "save", "up_to_date",
           "why_full"]
