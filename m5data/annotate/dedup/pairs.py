"""The rules' pairs of one dedup run (:mod:`.job` lists the rules): the kept pairs that stand, then
the exact keys, pHash, MinHash and spec pairs this run searches (every pair, or with ``touching``
only those with a changed product as an end), near pairs vetoed by contradicting specs, and the
learned matcher's pairs."""

from __future__ import annotations

import numpy as np

from ... import arrays
from . import kept_pairs, matcher_pairs, near, phash, reads
from .reads import Inputs
from .report import DedupReport
from .spec_rule import spec_rule

VETOED = "spec_chance"  # kept, not accepted: spec pairs likely by chance, which a later run tests again


def search_pairs(report: DedupReport, inp: Inputs, a, store, plan, touching: np.ndarray | None, titles: near.LSHIndex,
                 learned, step) -> tuple[list, int]:
    """``(edges, n_kept)``: every rule's accepted pairs as ``(left, right, distance, rule)``, the first
    ``n_kept`` the last run's that stand (``plan``: an incremental run's; None: a full run);
    ``step(name)`` after each rule."""
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []  # left, right, distance, rule
    vetoed = None
    if plan is not None:
        vetoed = next(((e[0], e[1]) for e in plan.kept if e[3] == VETOED), None)
        plan.kept = [e for e in plan.kept if e[3] != VETOED]
        edges += plan.kept

    # exact rules: equal key codes, pairs off the sorted runs (-1: no key, e.g. an unknown merchant's title)
    for rule, codes in inp.exact_keys():
        _exact(report, edges, codes, a.bucket_cap, rule, touching)
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
            scored = kept_pairs.reach(touching, edges)  # their kept matcher pairs are scored again
            edges = rules + [(lo[keep], hi[keep], d[keep], r) for lo, hi, d, r in edges if r == "matcher"
                             for keep in [~(scored[lo] | scored[hi])]]
        edges.append(matcher_pairs.learned_pairs(report, inp, a, store, learned, rules, scored))
    step("matcher")
    return edges, n_kept


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
        same, shared, equal = reads.agreement(inp.specs, left, right)
        keep = ~((same == 0) | ((shared > 0) & (equal < a.spec_min_agreement * shared)))
        report.vetoed[rule] += int((~keep).sum())
        left, right, dist = left[keep], right[keep], dist[keep]
    return left, right, dist, rule
