"""The dedup job: products -> duplicate groups (``dedup`` table), a global job over the store.

Rules, strongest first (each accepted pair is one edge; groups are the connected components):

- ``exact_image``: the same main-image blob (sha256).
- ``exact_title``: the same normalised title (NFKC, lower case, no whitespace) from the same merchant;
  a missing merchant (null, empty, whitespace) is unknown, never "the same", so such products need
  another rule's evidence.
- ``phash``: main images within ``dedup.phash_threshold`` bits of pHash (found by a multi-index).
- ``minhash``: title shingle sets with estimated Jaccard >= ``dedup.minhash_threshold`` (MinHash/LSH).
- ``spec``: the same brand and agreeing values on every property both pages list (at least
  ``dedup.spec_min_shared`` besides the brand) and ``property=value`` sets of Jaccard >=
  ``dedup.spec_lsh_threshold``; candidates from exact blocks (a brand spelling and two of a
  product's rarest values), so their number grows with the products, not with their square. The
  agreement must also be unlikely by chance: at most ``dedup.spec_chance`` other products of the
  brand expected to agree as much at the brand's own value frequencies (a shared model number
  passes; two values every listing of a sub-class carries, in a brand of thousands, do not).

With ``dedup.spec_veto`` a ``phash`` or ``minhash`` pair whose pages name different brands, or
disagree on their shared properties, is rejected: look-alike photos of one sub-class and
boilerplate titles are common, a different brand or model number is not a duplicate.

Spec values as compared (:mod:`.values`, read by :func:`.reads.read_inputs`): NFKC, lower case, no whitespace; a page may list a
property several times, so a property holds the set of all its values, and two pages agree on it
when the sets intersect (one lists the colour it sells, the other all five). Values that look like
ranges, dates or free text (:func:`.values.noisy_value`) are not compared: on real tables they differ
between listings of one product (date first available, "3km-5km", shipping notes) and would veto
every match. The brand is compared with its spellings: ``美的(Midea)`` and ``Midea/美的`` agree.

Each product's row names the strongest accepted pair that touches it (rule, the other product,
distance); ``group_id`` is the smallest product_id of its group, so ids survive re-runs and new
products. A full run replaces the table whole at its end (atomic): an interrupted run leaves the
previous table, and a re-run computes the same rows; an incremental run writes only the rows that
differ from the last run's (:func:`.groups.write_table`).

The rules' pairs of a run: :mod:`.pairs`; the groups and the table: :mod:`.groups`; what a run found and
its steps' seconds: :mod:`.report`; its groups scored against a demo truth: :mod:`.score`. The
spec rule and its chance filter: :mod:`.spec_rule` (its blocked search :mod:`.spec_blocks`).
Between runs (what a run keeps, and an incremental run that searches only pairs of changed products):
:func:`dedup`, :mod:`.kept_pairs`, :mod:`.kept_inputs` (read back by :mod:`.kept_inputs_read`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...stages import StageRun, opened
from ...storage import StageStats, changes
from . import kept_inputs, kept_inputs_read, kept_pairs, matcher_pairs, near, reads
from .groups import RULES, groups, with_reasons, write_table
from .pairs import VETOED, search_pairs
from .reads import Inputs
from .report import DedupReport, Progress, Steps
from .values import norm_value

STAGE = "dedup"  # its state: derived/state/dedup.json (storage/changes.py)
READS = ("products", "media", "specs")  # the tables dedup's groups are made of


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[dedup]`` values before any work."""
    a = s.dedup
    if not 0 <= a.phash_threshold <= 64:
        raise cfg.ConfigError(f"config dedup.phash_threshold must be in 0..64, got {a.phash_threshold!r}")
    if not 1 <= a.phash_bands <= 64:
        raise cfg.ConfigError(f"config dedup.phash_bands must be in 1..64, got {a.phash_bands!r}")
    if a.phash_threshold // a.phash_bands > 2:
        raise cfg.ConfigError("config dedup.phash_threshold // dedup.phash_bands must be <= 2 "
                              "(more bit flips per band probe too many keys): raise dedup.phash_bands")
    if a.shingle < 1 or a.num_perm < 2 or a.bucket_cap < 2:
        raise cfg.ConfigError("config dedup.shingle must be >= 1, dedup.num_perm >= 2, dedup.bucket_cap >= 2")
    for key in ("minhash_threshold", "spec_lsh_threshold", "spec_min_agreement"):
        v = getattr(a, key)
        if not 0.0 < v <= 1.0:
            raise cfg.ConfigError(f"config dedup.{key} must be in (0, 1], got {v!r}")
    if not a.spec_chance >= 0.0:
        raise cfg.ConfigError(f"config dedup.spec_chance must be >= 0, got {a.spec_chance!r}")
    if not 0.0 <= a.full_share <= 1.0:
        raise cfg.ConfigError(f"config dedup.full_share must be in [0, 1], got {a.full_share!r}")
    if a.spec_min_shared < 1:
        raise cfg.ConfigError(f"config dedup.spec_min_shared must be >= 1, got {a.spec_min_shared!r}")
    if bad := matcher_pairs.check_settings(a):
        raise cfg.ConfigError(bad)


def run(store, settings: cfg.Settings, *, progress: Progress | None = None, full: bool = False) -> StageStats:
    """Stage contract: find duplicate groups and replace the ``dedup`` table; see :func:`dedup`."""
    return dedup(store, settings, progress=progress, full=full).stats


def inputs(store, settings: cfg.Settings) -> tuple:
    """What beside the tables decides the groups (the run's fingerprint): the ``[dedup]`` settings but
    ``full_share`` (when, not what), ``[matcher]``, ``[annotate]``, the matcher that decides (its version,
    or "rules" whatever the reason: the reason names the store's folder, and a store moved or copied
    elsewhere would group every product again), the kept files' format and the rules (a rule added or
    removed: the next run is a full one, since the kept pairs hold no pair of a new rule)."""
    learned = matcher_pairs.choose(store, settings)  # the run reads it back (run.given): one model read a run
    sections = cfg.as_dict(settings)
    # the matcher's text model and the brand property are [annotate]'s (shared with the matcher); the model
    # itself is the learned note's version
    decides = {"dedup": {k: v for k, v in sections["dedup"].items() if k != "full_share"},
               "annotate": sections["annotate"]}
    return decides, learned, kept_pairs.FORMAT, RULES


def dedup(store, settings: cfg.Settings, *, progress: Progress | None = None, full: bool = False,
          run: StageRun | None = None) -> DedupReport:
    """Find duplicate groups among the store's products and replace the ``dedup`` table.

    Unless ``full``, a run when no ``products``, ``media`` or ``specs`` row was written since the last
    complete one, with the same ``[dedup]`` settings and matcher, does nothing: its groups stand
    (``details["unchanged"]``). Otherwise, after a complete run with the same settings and matcher,
    it is incremental: the *changed* products are those with such a row written since (at most
    ``dedup.full_share`` of them), every rule (and the learned matcher's candidates)
    searches only for pairs with a changed product as an end, against every product, the pairs the
    last run kept (:mod:`.kept_pairs`) stand unless one of their products changed or is gone, and
    the groups are the connected components of both. Anything else groups every product again
    (``report.full`` says why).

    Args:
        store: the store (reads products, media, specs; writes dedup and runs).
        settings: the ``[dedup]`` thresholds.
        progress: ``progress(step, done, total)`` after each step.
        full: group every product even when nothing changed since the last complete run.
        run: the run the contract opened (``stages.call``); None: opened here (``stages.opened``),
            a full one with ``full``.
    """
    check_settings(settings)
    if run is None:
        with opened(STAGE, store, settings, full=full) as run:
            return dedup(store, settings, progress=progress, run=run)
    learned = run.given[1] if len(run.given) > 1 else matcher_pairs.choose(store, settings)
    return _dedup(run, settings, learned, progress)


def _dedup(run: StageRun, settings: cfg.Settings, learned, progress: Progress | None) -> DedupReport:
    store, state = run.store, run.state
    a = settings.dedup
    product_parts = sorted(Path(str(p)).name for p in store.parts("products"))  # what the next run checks are all there
    if run.unchanged() and store.count("dedup"):
        return _unchanged(run)
    brand = norm_value(settings.annotate.brand_property)
    since = _since_last(run, a, brand, product_parts)
    stats = run.stats
    report = DedupReport(stats)
    step = Steps(report, progress)
    titles = near.LSHIndex(a.minhash_threshold, a.num_perm)
    report.matcher = learned.note
    inp = _read(store, since, brand, titles, learned, a.shingle, step)
    n = len(inp)
    report.n_products = stats.n_in = n
    plan, report.full = (None, since.why) if since.changed is None else kept_pairs.plan(
        store, state, inp.ids, since.changed, RULES + (VETOED,), a.full_share, inp.prev)
    touching = plan.touching if plan is not None else None  # None: every pair is searched
    if touching is not None:  # a bucket a changed row takes over the cap (or heads) turns into a star
        touching = kept_pairs.over_cap(inp, titles, a, plan)
    report.full = report.full or None
    report.searched = n if plan is None else int(touching.sum())
    step("read")
    # titles: its band keys and signatures are kept for the next run (saved below)
    edges, n_kept = search_pairs(report, inp, a, store, plan, touching, titles, learned, step)

    table = groups(inp, edges, report)
    report.n_groups_rules = report.n_groups_rules if learned.model is not None else report.n_groups
    table = with_reasons(table, inp, stats)
    step("groups")
    report.table = table
    differ = write_table(store, state, inp, table, plan)
    inputs_files = kept_inputs.keep(store, inp, brand, titles, learned.wide, stats.run_id, table, differ)
    titles = None  # for the next run, with the rows written
    unlikely = inp.spec_vetoed  # kept too, to be tested for chance again
    kept_file = kept_pairs.save_edges(store, inp.ids, edges + [(*unlikely, np.ones(len(unlikely[0])), VETOED)])
    stats.n_out = n - stats.n_failed
    step("write")
    incremental = {"full": report.full} if plan is None else {
        "searched": report.searched, "spec_searched": int(inp.spec_touching.sum()),
        "kept_pairs": sum(len(e[0]) for e in edges[:n_kept]), "dropped_pairs": plan.dropped,
        "removed": plan.removed}
    stats.details["changes"] = since.counts
    stats.details.update(incremental)
    run.complete({**cfg.as_dict(settings), "dedup_run": {
        "pairs": dict(report.pairs), "vetoed": dict(report.vetoed), "candidates": dict(report.candidates),
        "capped": dict(report.capped), "groups": report.n_groups,
        "groups_rules": report.n_groups_rules, "matcher": report.matcher, **incremental}}, "ok",
        report=report.kept(), n_out=stats.n_out, edges=kept_file, inputs_files=inputs_files, table_mark=store.watermark("dedup"),
        product_parts=product_parts)  # the state last: a killed run leaves the previous state and the files it names
    kept_pairs.prune(store, (kept_file, *inputs_files))  # the last run's files, now named by no state
    return report


@dataclass
class _Since:
    """What changed since the last complete run, and what of the store an incremental read starts from."""

    why: str  # why every product is grouped again ("": only pairs of changed products are searched)
    counts: dict  # products new, changed, unchanged (the runs row's ``changes``)
    changed: np.ndarray | None = None  # the changed products (None: a full run)
    written: pa.Table | None = None  # their rows written since
    kept_inputs: list | None = None  # the last run's kept inputs, when few products changed
    ids: pa.Array | pa.ChunkedArray | None = None  # the store's product ids, sorted
    con: object = None  # a connection with the products' view, when the ids were read through it


def _since_last(run: StageRun, a, brand: str, product_parts: list[str]) -> _Since:
    """What changed since the last complete run (``run.since``): the products to search again, and what
    the last run read (when they are few); a full run when asked, after none, or with other settings or
    matcher (``run.why_full``)."""
    store, state = run.store, run.state
    if run.since is None:
        why = "settings, matcher or rules changed" if run.why_full == "settings changed" else run.why_full
        return _Since(why, changes.product_changes(store, state))
    changed, changed_products = kept_pairs.changed_ids(store, run.since)
    since = _Since("", {}, changed, changed_products)
    if set(state.get("product_parts") or [None]) <= set(product_parts):
        # no products part went since the last run (only a replace or a compaction removes
        # one), so no product did: the store's ids are the kept files' and the products
        # written since (no scan of the products' view)
        since.kept_inputs = kept_inputs.load(store, state.get("inputs_files"), brand)
        if since.kept_inputs is not None:
            since.ids = kept_inputs_read.store_ids(since.kept_inputs, changed_products.column("product_id"))
    # no connection with the ids known: the changed products' rows, main images and specs are read
    # from the parts (the media view's connection and read cost 0.19 CPU s at 100k, that read 0.07)
    if since.ids is None:  # the products' ids, sorted: their count, and the rows of the incremental read below
        since.con = store.connect(need=("products",), only=("products",))
        since.ids = since.con.sql("SELECT product_id FROM products ORDER BY product_id").to_arrow_table().column(0)
    total = len(since.ids)
    since.counts = changes.changed_counts(changed_products, total)
    if len(changed) > a.full_share * total:
        since.kept_inputs = None
    elif since.kept_inputs is None:
        since.kept_inputs = kept_inputs.load(store, state.get("inputs_files"), brand)
    return since


def _read(store, since: _Since, brand: str, titles: near.LSHIndex, learned, shingle: int, step: Steps) -> Inputs:
    """The products' inputs: the kept arrays and only the changed products read from the store, or all
    of them read (their titles MinHashed into ``titles`` and the matcher's wide index as they are read)."""
    inp, before = None, None
    if since.kept_inputs is not None:  # the kept arrays, and only the changed products read from the store
        inp = kept_inputs_read.read_incremental(store, since.kept_inputs, brand, since.changed, titles, learned.wide,
                                                shingle, since.con, ids=since.ids, written=since.written)
        if inp is None:  # they do not fit this read (a wide index they lack): their ids still place the kept pairs
            before = kept_inputs_read.kept_ids(since.kept_inputs)
        since.kept_inputs = None
    if since.con is not None:
        since.con.close()
    if inp is None:
        inp = reads.read_inputs(store, brand, step.title_indexer(titles, learned.wide, shingle))
        inp.prev = None if before is None else kept_inputs_read.placed(before, inp.ids)
    return inp


def _unchanged(run: StageRun) -> DedupReport:
    """Nothing dedup reads changed since its last complete run: its groups stand, nothing is done."""
    report = DedupReport.from_kept(run.stats, run.state.get("report", {}))
    run.stats.n_in, run.stats.n_out = report.n_products, int(run.state.get("n_out", report.n_products))
    run.skip(report.n_products)
    return report
