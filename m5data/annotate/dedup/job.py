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

Spec values as compared (:mod:`..kernels.values`, read by :func:`..kernels.dedup_inputs.read_inputs`): NFKC, lower case, no whitespace; a page may list a
property several times, so a property holds the set of all its values, and two pages agree on it
when the sets intersect (one lists the colour it sells, the other all five). Values that look like
ranges, dates or free text (:func:`..kernels.values.noisy_value`) are not compared: on real tables they differ
between listings of one product (date first available, "3km-5km", shipping notes) and would veto
every match. The brand is compared with its spellings: ``美的(Midea)`` and ``Midea/美的`` agree.

Each product's row names the strongest accepted pair that touches it (rule, the other product,
distance); ``group_id`` is the smallest product_id of its group, so ids survive re-runs and new
products. A full run replaces the table whole at its end (atomic): an interrupted run leaves the
previous table, and a re-run computes the same rows; an incremental run writes only the rows that
differ from the last run's (:func:`_write_table`).

The spec rule's blocked search and its chance filter: :mod:`.dedup_spec`. Between runs (what a run
keeps, and an incremental run that searches only pairs of changed products): :func:`dedup`,
:mod:`.dedup_kept`, :mod:`.dedup_index`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ... import arrays
from ... import config as cfg
from ...scoring import PairRates
from ...stages import StageRun
from ...storage import StageStats, changes
from ..kernels import dedup_inputs, near, phash
from ..kernels.dedup_inputs import Inputs
from ..kernels.values import norm_value
from . import dedup_index, dedup_index_read, dedup_kept, dedup_learned
from .dedup_spec import spec_rule

Progress = Callable[[str, int, int], None]
RULES = ("exact_image", "exact_title", "phash", "minhash", "spec", "matcher")  # strongest first
VETOED = "spec_chance"  # kept, not accepted: spec pairs likely by chance, which a later run tests again
STAGE = "dedup"  # its state: derived/state/dedup.json (storage/changes.py)
READS = ("products", "media", "specs")  # the tables dedup's groups are made of
KEPT = ("n_products", "n_groups", "n_grouped", "pairs", "vetoed", "candidates", "capped", "matcher", "n_groups_rules")


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
    if bad := dedup_learned.check_settings(a):
        raise cfg.ConfigError(bad)


@dataclass
class DedupReport:
    """What one dedup run found, beyond the stage counts."""

    stats: StageStats
    n_products: int = 0
    n_groups: int = 0  # groups of 2 or more
    n_grouped: int = 0  # products in such groups
    pairs: Counter = field(default_factory=Counter)  # rule -> accepted pairs
    vetoed: Counter = field(default_factory=Counter)  # rule -> pairs rejected by the spec veto (spec: by chance)
    candidates: Counter = field(default_factory=Counter)  # index -> candidate pairs checked
    capped: Counter = field(default_factory=Counter)  # index -> pairs (checks) a bucket over dedup.bucket_cap skipped
    seconds: Counter = field(default_factory=Counter)  # step -> wall seconds (title MinHash counted in minhash)
    cpu_seconds: Counter = field(default_factory=Counter)  # step -> CPU seconds of this process, likewise
    matcher: str = "rules"  # rules, "learned <model version>", or "rules (<why no matcher>)"
    full: str | None = None  # why every product was grouped again (None: only pairs of changed products were searched)
    searched: int = 0  # products whose pairs this run searched (all of them in a full run)
    n_groups_rules: int = 0  # groups of 2+ from the rules' pairs alone (the matcher's pairs join more)
    table: pa.Table | None = None  # the rows written

    @property
    def rows(self) -> list[dict]:
        """The rows written, as dicts (small stores: scoring, tests)."""
        return self.table.to_pylist() if self.table is not None else []


def run(store, settings: cfg.Settings, *, progress: Progress | None = None, full: bool = False) -> StageStats:
    """Stage contract: find duplicate groups and replace the ``dedup`` table; see :func:`dedup`."""
    return dedup(store, settings, progress=progress, full=full).stats


def dedup(store, settings: cfg.Settings, *, progress: Progress | None = None, full: bool = False) -> DedupReport:
    """Find duplicate groups among the store's products and replace the ``dedup`` table.

    Unless ``full``, a run when no ``products``, ``media`` or ``specs`` row was written since the last
    complete one, with the same ``[dedup]`` settings and matcher, does nothing: its groups stand
    (``details["unchanged"]``). Otherwise, after a complete run with the same settings and matcher,
    it is incremental: the *changed* products are those with such a row written since (at most
    ``dedup.full_share`` of them), every rule (and the learned matcher's candidates)
    searches only for pairs with a changed product as an end, against every product, the pairs the
    last run kept (:mod:`.dedup_kept`) stand unless one of their products changed or is gone, and
    the groups are the connected components of both. Anything else groups every product again
    (``report.full`` says why).

    Args:
        store: the store (reads products, media, specs; writes dedup and runs).
        settings: the ``[dedup]`` thresholds.
        progress: ``progress(step, done, total)`` after each step.
        full: group every product even when nothing changed since the last complete run.
    """
    check_settings(settings)
    learned = dedup_learned.choose(store, settings)
    sections = cfg.as_dict(settings)
    decides = {"dedup": {k: v for k, v in sections["dedup"].items() if k != "full_share"},  # full_share: when, not what
               "matcher": sections["matcher"], "annotate": sections["annotate"]}
    # the matcher that decides: its version, or "rules" whatever the reason (the reason names the
    # store's folder: a store moved or copied elsewhere would group every product again)
    with StageRun(store, STAGE, reads=READS, inputs=(decides, learned.note if learned.model is not None else "rules",
                                                     dedup_kept.FORMAT)) as run:
        return _dedup(run, settings, learned, progress, full)


def _dedup(run: StageRun, settings: cfg.Settings, learned, progress: Progress | None, full: bool) -> DedupReport:
    store, state, inputs = run.store, run.state, run.inputs
    a = settings.dedup
    product_parts = sorted(Path(str(p)).name for p in store.parts("products"))  # what the next run checks are all there
    if run.unchanged(full) and store.count("dedup"):
        return _unchanged(run)
    brand = norm_value(a.brand_property)
    changed, kept_inputs, con, why = None, None, None, "full run asked" if full else "no earlier complete run"
    if not full and state is not None:
        if state.get("inputs") != inputs:
            why = "settings or matcher changed"
        else:  # the products to search again, and what the last run read (when they are few)
            changed, changed_products = dedup_kept.changed_ids(store, state["watermarks"])
            ids = None
            if set(state.get("product_parts") or [None]) <= set(product_parts):
                # no products part went since the last run (only a replace or a compaction removes
                # one), so no product did: the store's ids are the kept files' and the products
                # written since (no scan of the products' view)
                kept_inputs = dedup_index.load(store, state.get("inputs_files"), brand)
                if kept_inputs is not None:
                    ids = dedup_index_read.store_ids(kept_inputs, changed_products.column("product_id"))
            # no connection with the ids known: the changed products' rows, main images and specs are read
            # from the parts (the media view's connection and read cost 0.19 CPU s at 100k, that read 0.07)
            if ids is None:  # the products' ids, sorted: their count, and the rows of the incremental read below
                con = store.connect(need=("products",), only=("products",))
                ids = con.sql("SELECT product_id FROM products ORDER BY product_id").to_arrow_table().column(0)
            total = len(ids)
            counts = changes.changed_counts(changed_products, total)
            if len(changed) > a.full_share * total:
                kept_inputs = None
            elif kept_inputs is None:
                kept_inputs = dedup_index.load(store, state.get("inputs_files"), brand)
            why = ""
    if changed is None:
        counts = changes.product_changes(store, state)
    stats = run.stats
    report = DedupReport(stats)
    steps = ["read", "exact", "phash", "minhash", "spec", "matcher", "groups", "write"]
    clock = [time.perf_counter(), time.process_time()]

    def step(name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        report.seconds[name] += now - clock[0]
        report.cpu_seconds[name] += cpu - clock[1]
        clock[:] = [now, cpu]
        if progress:
            progress("dedup", steps.index(name) + 1, len(steps))

    titles = near.LSHIndex(a.minhash_threshold, a.num_perm)
    report.matcher = learned.note

    def index_titles(batch: list[str]) -> None:  # each batch of titles is MinHashed, then dropped
        t0, c0 = time.perf_counter(), time.process_time()
        values, offsets = near.title_hashes(batch, a.shingle)
        valid = np.fromiter(map(bool, batch), dtype=bool, count=len(batch))
        titles.add(values, offsets, valid)
        if learned.wide is not None:  # the learned matcher's wider title candidates, from the same shingles
            learned.wide.add(values, offsets, valid)
        for clocks, spent in ((report.seconds, time.perf_counter() - t0), (report.cpu_seconds, time.process_time() - c0)):
            clocks["minhash"] += spent  # the title rule's work, done while reading: counted as its own
            clocks["read"] -= spent

    inp, before = None, None
    if kept_inputs is not None:  # the kept arrays, and only the changed products read from the store
        inp = dedup_index_read.read_incremental(store, kept_inputs, brand, changed, titles, learned.wide, a.shingle,
                                           con, ids=ids,
                                           written=changed_products)
        if inp is None:  # they do not fit this read (a wide index they lack): their ids still place the kept pairs
            before = dedup_index_read.kept_ids(kept_inputs)
        kept_inputs = None
    if con is not None:
        con.close()
    if inp is None:
        inp = dedup_inputs.read_inputs(store, brand, index_titles)
        inp.prev = None if before is None else dedup_index_read.placed(before, inp.ids)
    n = len(inp)
    report.n_products = stats.n_in = n
    plan, report.full = (None, why) if changed is None else dedup_kept.plan(store, state, inp.ids, changed, RULES + (VETOED,),
                                                                            a.full_share, inp.prev)
    touching = plan.touching if plan is not None else None  # None: every pair is searched
    if touching is not None:  # a bucket a changed row takes over the cap (or heads) turns into a star
        touching = dedup_kept.over_cap(inp, titles, a, plan)
    report.full = report.full or None
    report.searched = n if plan is None else int(touching.sum())
    step("read")
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []  # left, right, distance, rule
    vetoed = None
    if plan is not None:
        vetoed = next(((e[0], e[1]) for e in plan.kept if e[3] == VETOED), None)
        plan.kept = [e for e in plan.kept if e[3] != VETOED]
        edges += plan.kept

    # exact rules: equal key codes, pairs off the sorted runs
    _exact(report, edges, inp.blob, a.bucket_cap, "exact_image", touching)
    _exact(report, edges, inp.title_key, a.bucket_cap, "exact_title", touching)  # -1: unknown merchant, empty title
    step("exact")

    capped = [0]
    left, right, dist = phash.phash_pairs(inp.phash, a.phash_threshold, a.phash_bands, inp.has_phash,
                                         a.bucket_cap, capped, touching)
    report.candidates["phash"] = len(left)
    report.capped["phash"] = capped[0]
    learned.phash = (left, right, dist) if learned.model is not None else None
    edges.append(_veto(report, inp, a, left, right, dist.astype(float), "phash"))
    step("phash")

    capped = [0]
    left, right, jac = titles.pairs(a.bucket_cap, capped, touching=touching)
    kept_titles, titles = titles, None  # its band keys and signatures are kept for the next run (saved below)
    report.candidates["minhash"] = len(left)
    report.capped["minhash"] = capped[0]
    edges.append(_veto(report, inp, a, left, right, 1.0 - jac, "minhash"))
    step("minhash")

    n_kept = len(plan.kept) if plan is not None else 0
    k_spec = next((i for i, e in enumerate(edges[:n_kept]) if e[3] == "spec"), None)  # the kept spec pairs
    edges.append(spec_rule(report, inp, a, touching, None if k_spec is None else edges[k_spec][:2], vetoed))
    if k_spec is not None:  # kept spec pairs of rows whose block keys moved, or now likely by chance, go
        left, right, d, rule = edges[k_spec]
        ok = inp.spec_kept_ok
        edges[k_spec] = (left[ok], right[ok], d[ok], rule)
        plan.dropped += int((~ok).sum())
    step("spec")

    if learned.model is not None:
        rules = [e for e in edges if e[3] != "matcher"]  # the kept matcher pairs are not the rules'
        scored = touching
        if touching is not None:  # a changed product moves its partners' nearest-neighbour features:
            scored = dedup_kept.reach(touching, edges)  # their kept matcher pairs are scored again
            edges = rules + [(lo[keep], hi[keep], d[keep], r) for lo, hi, d, r in edges if r == "matcher"
                             for keep in [~(scored[lo] | scored[hi])]]
        edges.append(dedup_learned.learned_pairs(report, inp, a, store, learned, rules, scored))
    step("matcher")

    table = _groups(inp, edges, report)
    report.n_groups_rules = report.n_groups_rules if learned.model is not None else report.n_groups
    missing = np.stack([inp.blob < 0, ~inp.phash_given, ~inp.has_title, inp.n_spec_rows == 0], axis=1)
    names = ("no main image", "no pHash", "empty title", "no specs")
    combo = missing @ (1 << np.arange(4))  # the reasons as one code, then one string per code
    text = pa.array(["; ".join(w for b, w in enumerate(names) if c >> b & 1) or None for c in range(16)], pa.string())
    n_bad = int(missing.all(axis=1).sum())
    if n_bad:
        stats.fail("no evidence (no image, title or specs)", n_bad)
    table = table.append_column("reason", text.take(pa.array(combo))).append_column(
        "run_id", pa.array([stats.run_id] * n, pa.string()))
    step("groups")
    report.table = table
    differ = _write_table(store, state, inp, table, plan)
    inputs_files = dedup_index.keep(store, inp, brand, kept_titles, learned.wide, stats.run_id, table, differ)
    kept_titles = None  # for the next run, with the rows written
    unlikely = inp.spec_vetoed  # kept too, to be tested for chance again
    kept_file = dedup_kept.save_edges(store, inp.ids, edges + [(*unlikely, np.ones(len(unlikely[0])), VETOED)])
    stats.n_out = n - stats.n_failed
    step("write")
    incremental = {"full": report.full} if plan is None else {
        "searched": report.searched, "spec_searched": int(inp.spec_touching.sum()),
        "kept_pairs": sum(len(e[0]) for e in edges[:n_kept]), "dropped_pairs": plan.dropped,
        "removed": plan.removed}
    stats.details["changes"] = counts
    stats.details.update(incremental)
    kept = {k: dict(v) if isinstance(v, Counter) else v for k, v in ((k, getattr(report, k)) for k in KEPT)}
    run.complete({**cfg.as_dict(settings), "dedup_run": {
        "pairs": dict(report.pairs), "vetoed": dict(report.vetoed), "candidates": dict(report.candidates),
        "capped": dict(report.capped), "groups": report.n_groups,
        "groups_rules": report.n_groups_rules, "matcher": report.matcher, **incremental}}, "ok",
        report=kept, n_out=stats.n_out, edges=kept_file, inputs_files=inputs_files, table_mark=store.watermark("dedup"),
        product_parts=product_parts)  # the state last: a killed run leaves the previous state and the files it names
    dedup_kept.prune(store, (kept_file, *inputs_files))  # the last run's files, now named by no state
    return report


def _unchanged(run: StageRun) -> DedupReport:
    """Nothing dedup reads changed since its last complete run: its groups stand, nothing is done."""
    kept = run.state.get("report", {})
    report = DedupReport(run.stats, **{k: Counter(v) if isinstance(v, dict) else v for k, v in kept.items() if k in KEPT})
    run.stats.n_in, run.stats.n_out = report.n_products, int(run.state.get("n_out", report.n_products))
    run.skip(report.n_products)
    return report


def _write_table(store, state: dict | None, inp: Inputs, table: pa.Table, plan) -> np.ndarray | None:
    """Write the ``dedup`` table: after an incremental read, only the rows that differ from the last
    run's (``inp.written``; an upsert by product_id, none when none differ), when the table is as that
    run left it (its watermark is the state's ``table_mark``: no write since, a killed run's
    included) and no product is gone; else the whole table (``store.replace``). Which rows differ
    (None: written whole)."""
    prev = inp.written
    if plan is None or prev is None or inp.gone or state is None or state.get("table_mark") != store.watermark("dedup"):
        store.replace("dedup", table)
        return None
    differ = np.zeros(len(table), dtype=bool)
    for c in dedup_index.OUT:
        new, old = table.column(c), prev.column(c)
        same = pc.fill_null(pc.equal(new, old), False).to_numpy(zero_copy_only=False)
        both_null = pc.is_null(new).to_numpy(zero_copy_only=False) & pc.is_null(old).to_numpy(zero_copy_only=False)
        differ |= ~(same | both_null)
    d_new = table.column("distance").to_numpy(zero_copy_only=False).astype(np.float64)
    d_old = prev.column("distance").to_numpy(zero_copy_only=False).astype(np.float64)
    differ |= ~((d_new == d_old) | (np.isnan(d_new) & np.isnan(d_old)))
    if differ.any():
        store.write("dedup", table.filter(pa.array(differ)))
    return differ


def _exact(report: DedupReport, edges: list, codes: np.ndarray, cap: int, rule: str,
           touching: np.ndarray | None = None) -> None:
    """Pairs of rows of one key code (>= 0); with ``touching``, those with a changed row as an end
    (read off the whole runs of the changed rows' codes, so the cap acts as on every row)."""
    idx = np.flatnonzero(codes >= 0)
    if touching is not None:
        idx = idx[arrays.isin(codes[idx], codes[idx[touching[idx]]])]
    capped = [0]
    left, right = near.unpack(near.pairs_in_runs(codes[idx], idx, cap, capped))
    if touching is not None:
        mine = touching[left] | touching[right]
        left, right = left[mine], right[mine]
    report.capped[rule] = capped[0]
    edges.append((left, right, np.zeros(len(left)), rule))


def _veto(report: DedupReport, inp: Inputs, a, left: np.ndarray, right: np.ndarray, dist: np.ndarray, rule: str):
    """Drop near pairs whose specs contradict them (different brand, or disagreeing values)."""
    if a.spec_veto and len(left):
        same, shared, equal = dedup_inputs.agreement(inp.specs, left, right)
        keep = ~((same == 0) | ((shared > 0) & (equal < a.spec_min_agreement * shared)))
        report.vetoed[rule] += int((~keep).sum())
        left, right, dist = left[keep], right[keep], dist[keep]
    return left, right, dist, rule


def _groups(inp: Inputs, edges: list, report: DedupReport) -> pa.Table:
    """Connected components of the accepted pairs; each product's strongest pair.

    The strongest pair of a product is the smallest ``(rule rank, distance, other product_id)``:
    row numbers follow product_id, so comparing them compares the ids.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(inp)
    me, other, rank, dist = [], [], [], []
    for left, right, d, rule in edges:
        report.pairs[rule] += len(left)
        r = np.full(2 * len(left), RULES.index(rule), dtype=np.int8)
        me += [left, right]
        other += [right, left]
        rank.append(r)
        dist += [np.round(d, 6)] * 2
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
    me, other, rank, dist = cat(me, np.int64), cat(other, np.int64), cat(rank, np.int8), cat(dist, np.float64)
    order = np.lexsort((other, dist, rank, me))
    first = order[np.r_[True, me[order][1:] != me[order][:-1]]] if len(order) else order
    best_rank = np.full(n, -1, dtype=np.int64)
    best_other = np.full(n, -1, dtype=np.int64)
    best_dist = np.full(n, np.nan)
    best_rank[me[first]], best_other[me[first]], best_dist[me[first]] = rank[first], other[first], dist[first]
    half = len(me) // 2  # each edge once (the first direction of each rule's block)
    lefts = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, dtype=np.int64)
    rights = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, dtype=np.int64)
    assert len(lefts) == half
    graph = coo_matrix((np.ones(len(lefts), dtype=np.int8), (lefts, rights)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    root = np.full(label.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(root, label, np.arange(n))  # ids are sorted: the smallest index is the smallest product_id
    sizes = np.bincount(label) if n else np.zeros(0, dtype=np.int64)
    report.n_groups = int((sizes >= 2).sum())
    report.n_grouped = int(sizes[sizes >= 2].sum())
    alone = best_rank < 0
    rules = pa.array(list(RULES), pa.string())
    return pa.table({
        "product_id": inp.ids,
        "group_id": inp.ids.take(pa.array(root[label] if n else np.zeros(0, dtype=np.int64))),
        "rule": rules.take(pa.array(np.where(alone, 0, best_rank), mask=alone)),
        "matched_id": inp.ids.take(pa.array(np.where(alone, 0, best_other), mask=alone)),
        "distance": pa.array(best_dist, mask=alone, type=pa.float64()),
    })


# ------------------------------------------------------------------ scoring against a truth
@dataclass
class PairScore(PairRates):
    """Pair precision / recall of "same group" against a truth's instances."""

    products: int = 0  # products scored (in both the store and the truth)
    true_pairs: int = 0
    predicted_pairs: int = 0
    correct_pairs: int = 0
    examples_false: list[tuple[str, str]] = field(default_factory=list)
    examples_missed: list[tuple[str, str]] = field(default_factory=list)


def _pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    from itertools import combinations

    return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}


def score_groups(rows: list[dict], truth_rows: list[dict], examples: int = 10) -> PairScore:
    """Pair precision and recall of the ``dedup`` rows' groups against the truth's ``instance_id``."""
    instance = {r["product_id"]: r["instance_id"] for r in truth_rows}
    rows = [r for r in rows if r["product_id"] in instance]
    pred: dict[str, list[str]] = {}
    true: dict[str, list[str]] = {}
    for r in rows:
        pred.setdefault(r["group_id"], []).append(r["product_id"])
        true.setdefault(instance[r["product_id"]], []).append(r["product_id"])
    p, t = _pairs_of(pred), _pairs_of(true)
    score = PairScore(products=len(rows), true_pairs=len(t), predicted_pairs=len(p), correct_pairs=len(p & t))
    score.examples_false = sorted(p - t)[:examples]
    score.examples_missed = sorted(t - p)[:examples]
    return score
